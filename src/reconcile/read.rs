//! The read of one full pass: the IdP and every selected workspace (IO), all or nothing,
//! before the snapshots go to the pure core ([`super::evaluate_pass`]). `check`, `explain`,
//! `report`, `plan`/`apply` and the daemon's full passes all read through [`read_all`].
//!
//! Contract: either every read succeeded and the result is a [`Report`], or the pass
//! fails as a whole with a [`PassError`] that names the service and the request. No
//! partial snapshot ever reaches `evaluate`. An IdP read in which every mapped group is
//! unresolved or empty is a failure too: it is what Okta answers (200, `[]`) to a service
//! app that lacks an admin role, and must never read as "everyone lost access".

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;

use super::Settings;
use crate::config::WorkspaceConfig;
use crate::idp::{IdentityProvider, IdpError};
use crate::mapping::{GrantScope, MappingSet, WorkspaceMapping};
use crate::model::{
    CatalogNeeds, Email, GroupRead, GroupRef, IdpSnapshot, NestedGroups, WorkspaceSnapshot,
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
    let (crate::model::MappedGroups { groups, nested }, events) = idp_read?;
    check_idp_read(idp.kind().as_str(), &groups, &nested)?;

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
