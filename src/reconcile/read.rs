//! The read of one full pass: the IdP and every selected workspace (IO), all or nothing,
//! before the snapshots go to the pure core ([`super::evaluate_pass`]). `check`, `explain`,
//! `report`, `plan`/`apply` and the daemon's full passes all read through [`read_all`].
//!
//! Contract: either every read succeeded and the result is a [`Reading`], or the pass
//! fails as a whole with a [`PassError`] that names the service and the request (a
//! workspace's failure is that workspace's alone: the daemon goes on with the others). No
//! partial snapshot ever reaches `evaluate`. An IdP read in which every mapped group is
//! unresolved or empty is a failure too: it is what Okta answers (200, `[]`) to a service
//! app that lacks an admin role, and must never read as "everyone lost access". The same
//! answer for one group is caught too: a mapped group that reads empty while its last
//! read (the daemon's) or its Segment mirror had members is read again, and if it is still
//! empty and the IdP's log has no removal from it, the pass fails naming the group
//! ([`suspect_empty_groups`]). A group emptied on purpose has its removals in the log, and
//! is believed.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;

use super::history::IdpMembership;
use super::Settings;
use crate::config::WorkspaceConfig;
use crate::idp::{IdentityProvider, IdpError};
use crate::mapping::{GrantScope, MappingSet, WorkspaceMapping};
use crate::model::{
    CatalogNeeds, Email, GroupRead, GroupRef, IdpEvent, IdpEventKind, IdpSnapshot, NestedGroups,
    WorkspaceSnapshot,
};
use crate::segment::{SegmentClient, SegmentError};

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Idp(#[from] IdpError),
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// Every mapped group came back unresolved or empty.
    #[error(
        "{idp}: every mapped group is unresolved or has no members ({detail}); refusing to \
         report on partial data. A service app without an admin role gets exactly this \
         (200 with empty lists): check its admin role and scopes"
    )]
    SuspectIdp { idp: &'static str, detail: String },
    /// One mapped group came back empty where members were expected, twice.
    #[error(
        "{idp}: the mapped group {group} reads empty (read twice) although {had}, and the \
         IdP's log has no removal from it; refusing to report on partial data (a group \
         emptied on purpose has its removals in the log within idp.event_lookback)"
    )]
    EmptyGroup {
        idp: &'static str,
        group: String,
        had: String,
    },
}

/// Which catalog kinds a workspace's mappings name (roles are always read).
pub fn catalog_needs(mapping: &WorkspaceMapping) -> CatalogNeeds {
    let mut needs = CatalogNeeds::default();
    let grants = mapping
        .groups
        .iter()
        .flat_map(|g| &g.grants)
        .chain(mapping.exceptions.iter().flat_map(|e| &e.grants));
    for g in grants {
        match &g.scope {
            GrantScope::Workspace => {}
            GrantScope::Sources(_) => needs.sources = true,
            // Labels live on sources and spaces as well as in /labels.
            GrantScope::Labels(_) => {
                needs.labels = true;
                needs.sources = true;
            }
            GrantScope::Warehouses(_) => needs.warehouses = true,
            GrantScope::Functions(_) => needs.functions = true,
            GrantScope::Spaces(_) => needs.spaces = true,
        }
    }
    // Exceptions on labels are checked against source labels.
    if mapping
        .exceptions
        .iter()
        .flat_map(|e| &e.grants)
        .any(|g| matches!(g.scope, GrantScope::Labels(_)))
    {
        needs.sources = true;
    }
    needs
}

/// Every mapped IdP group reference of the given workspaces, each once, in file order.
pub fn group_refs<'a>(mappings: impl IntoIterator<Item = &'a WorkspaceMapping>) -> Vec<GroupRef> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for m in mappings {
        for g in &m.groups {
            if seen.insert(g.idp_group.clone()) {
                out.push(g.idp_group.clone());
            }
        }
    }
    out
}

/// Fails when every mapped group is unresolved or empty (pure). A group whose only
/// members are nested groups (Entra ID) is not empty: Graph listed them.
pub fn check_idp_read(
    idp: &'static str,
    groups: &[(GroupRef, GroupRead)],
    nested: &NestedGroups,
) -> Result<(), PassError> {
    if groups.is_empty() {
        return Ok(());
    }
    let usable = groups.iter().any(|(_, g)| {
        matches!(g, GroupRead::Found(g)
            if !g.members.is_empty() || nested.get(&g.id).is_some_and(|n| !n.is_empty()))
    });
    if usable {
        return Ok(());
    }
    let unresolved = groups
        .iter()
        .filter(|(_, g)| matches!(g, GroupRead::Unresolved { .. }))
        .count();
    Err(PassError::SuspectIdp {
        idp,
        detail: format!(
            "{} groups: {unresolved} unresolved, {} empty",
            groups.len(),
            groups.len() - unresolved
        ),
    })
}

/// A mapped group that read empty where members were expected: the reference to read
/// again, and what we expected (for the error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuspectGroup {
    pub group: GroupRef,
    pub had: String,
}

/// The mapped groups that read empty although their last read (`previous`, the daemon's
/// kept membership) or their Segment mirror in a workspace read in the same pass had
/// members, and whose removals are not in `events` (pure). A group holding nested groups
/// (Entra ID) is not empty.
pub fn suspect_empty_groups(
    groups: &[(GroupRef, GroupRead)],
    nested: &NestedGroups,
    events: &[IdpEvent],
    previous: Option<&IdpMembership>,
    mirrors: &[(&WorkspaceMapping, &WorkspaceSnapshot)],
) -> Vec<SuspectGroup> {
    let mut out = Vec::new();
    for (r, read) in groups {
        let GroupRead::Found(g) = read else {
            continue;
        };
        if !g.members.is_empty() || nested.get(&g.id).is_some_and(|n| !n.is_empty()) {
            continue;
        }
        let removed = events.iter().any(|e| {
            e.kind == IdpEventKind::MembershipRemove
                && (e.group_id.as_deref() == Some(g.id.as_str())
                    || e.group_name.as_deref() == Some(g.name.as_str()))
        });
        if removed {
            continue;
        }
        let before = previous
            .and_then(|p| p.groups.get(&g.id))
            .map(|(_, m)| m.len())
            .unwrap_or(0);
        let had = if before > 0 {
            Some(format!("its last read had {before} members"))
        } else {
            mirrors.iter().find_map(|(mapping, snap)| {
                let mirror = mapping
                    .groups
                    .iter()
                    .find(|m| &m.idp_group == r)
                    .map(|m| m.segment_group.clone().unwrap_or_else(|| g.name.clone()))?;
                let sg = snap.groups.iter().find(|sg| sg.name == mirror)?;
                (!sg.members.is_empty()).then(|| {
                    format!(
                        "its Segment mirror {mirror:?} in workspace {} has {} members",
                        snap.name,
                        sg.members.len()
                    )
                })
            })
        };
        if let Some(had) = had {
            out.push(SuspectGroup {
                group: r.clone(),
                had,
            });
        }
    }
    out
}

/// What one pass read: the IdP (all or nothing) and each workspace (each on its own).
pub struct Reading {
    pub idp: IdpSnapshot,
    /// Entra ID: the groups nested in the mapped groups (empty for Okta).
    pub nested: NestedGroups,
    /// In the order asked; a workspace that could not be read carries its error.
    pub workspaces: Vec<(String, Result<WorkspaceSnapshot, SegmentError>)>,
}

/// Reads the IdP and every workspace. An IdP failure (or an IdP read in which every
/// mapped group is unresolved or empty) fails the whole read: it would make every
/// workspace look wrong. A workspace failure is that workspace's alone.
pub async fn read_all<P: IdentityProvider>(
    idp: &P,
    workspaces: &[(&WorkspaceConfig, &SegmentClient)],
    mappings: &MappingSet,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Reading, PassError> {
    read_all_since(idp, workspaces, mappings, settings, None, now).await
}

/// [`read_all`], with the IdP membership the last pass read (the daemon keeps it), so a
/// group that reads empty after having members is suspected (see the module).
pub async fn read_all_since<P: IdentityProvider>(
    idp: &P,
    workspaces: &[(&WorkspaceConfig, &SegmentClient)],
    mappings: &MappingSet,
    settings: &Settings,
    previous: Option<&IdpMembership>,
    now: DateTime<Utc>,
) -> Result<Reading, PassError> {
    let empty = WorkspaceMapping::default();
    let mapping_of = |name: &str| mappings.workspaces.get(name).unwrap_or(&empty);
    let refs = group_refs(workspaces.iter().map(|(w, _)| mapping_of(&w.name)));
    let since = now - settings.event_lookback;

    let idp_reads = async {
        let groups = idp.read_mapped_groups(&refs).await?;
        let events = idp.events_since(since).await?;
        Ok::<_, IdpError>((groups, events))
    };
    let segment_reads = join_all(workspaces.iter().map(|(w, client)| {
        let mut needs = catalog_needs(mapping_of(&w.name));
        if settings
            .policy
            .consistent
            .iter()
            .flatten()
            .any(|n| *n == w.name)
        {
            // Resources are compared across workspaces by slug or name.
            needs = CatalogNeeds {
                sources: true,
                warehouses: true,
                functions: true,
                spaces: true,
                labels: needs.labels,
            };
        }
        client.read_workspace(needs, since)
    }));
    let (idp_read, snapshots) = tokio::join!(idp_reads, segment_reads);
    let (crate::model::MappedGroups { mut groups, nested }, events) = idp_read?;
    check_idp_read(idp.kind().as_str(), &groups, &nested)?;

    // One mapped group reading empty where members were expected: read it again, and
    // refuse to go on if it is still empty.
    let mirrors: Vec<(&WorkspaceMapping, &WorkspaceSnapshot)> = workspaces
        .iter()
        .zip(&snapshots)
        .filter_map(|((w, _), s)| Some((mapping_of(&w.name), s.as_ref().ok()?)))
        .collect();
    let suspects = suspect_empty_groups(&groups, &nested, &events, previous, &mirrors);
    if !suspects.is_empty() {
        let refs: Vec<GroupRef> = suspects.iter().map(|s| s.group.clone()).collect();
        tracing::warn!(groups = ?refs.iter().map(GroupRef::to_string).collect::<Vec<_>>(), "Mapped groups read empty where members were expected; reading them again.");
        let again = idp.read_groups(&refs).await?;
        for (r, read) in again {
            if let Some(slot) = groups.iter_mut().find(|(g, _)| *g == r) {
                slot.1 = read;
            }
        }
        let still = suspect_empty_groups(&groups, &nested, &events, previous, &mirrors);
        if let Some(s) = still.into_iter().next() {
            return Err(PassError::EmptyGroup {
                idp: idp.kind().as_str(),
                group: s.group.to_string(),
                had: s.had,
            });
        }
    }

    // Segment members no mapped group lists: ask the IdP who they are.
    let listed: BTreeSet<&Email> = groups
        .iter()
        .filter_map(|(_, g)| match g {
            GroupRead::Found(g) => Some(g),
            GroupRead::Unresolved { .. } => None,
        })
        .flat_map(|g| g.members.iter().map(|m| &m.key))
        .collect();
    let unknown: BTreeSet<Email> = snapshots
        .iter()
        .filter_map(|s| s.as_ref().ok())
        .flat_map(|s| s.users.iter().map(|u| &u.email))
        .filter(|e| !listed.contains(e))
        .cloned()
        .collect();
    let unknown: Vec<Email> = unknown.into_iter().collect();
    let lookups = if unknown.is_empty() {
        Default::default()
    } else {
        idp.lookup_users(&unknown).await?
    };
    Ok(Reading {
        idp: IdpSnapshot {
            groups,
            lookups,
            events,
        },
        nested,
        workspaces: workspaces
            .iter()
            .map(|(w, _)| w.name.clone())
            .zip(snapshots)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IdpGroup;

    #[test]
    fn all_unresolved_or_empty_fails_the_pass() {
        let no_nested = NestedGroups::new();
        let empty = |n: &str| {
            (
                GroupRef::Name(n.into()),
                GroupRead::Found(IdpGroup {
                    id: n.into(),
                    name: n.into(),
                    members: vec![],
                }),
            )
        };
        let unresolved = |n: &str| {
            (
                GroupRef::Name(n.into()),
                GroupRead::Unresolved {
                    reason: "no such group".into(),
                },
            )
        };
        assert!(check_idp_read("okta", &[empty("a"), unresolved("b")], &no_nested).is_err());
        assert!(check_idp_read("okta", &[unresolved("b")], &no_nested).is_err());
        assert!(check_idp_read("okta", &[], &no_nested).is_ok());
        let mut ok = empty("c");
        if let GroupRead::Found(g) = &mut ok.1 {
            g.members.push(crate::model::IdpUser {
                id: "u".into(),
                login: "u@x".into(),
                key: Email::new("u@x"),
                status: crate::model::IdpStatus::Active,
            });
        }
        assert!(check_idp_read("okta", &[empty("a"), ok], &no_nested).is_ok());
        // Entra: a group holding only a nested group is not empty.
        let nested: NestedGroups = [(
            "a".to_string(),
            vec![crate::model::NestedGroup {
                id: "n".into(),
                name: "Contractors".into(),
                people: vec![],
            }],
        )]
        .into();
        assert!(check_idp_read("azure_ad", &[empty("a")], &nested).is_ok());
    }
}
