//! Who holds what in one workspace, and where each grant comes from. Pure.
//!
//! Segment's effective access is the union of a member's direct policies and the
//! policies of every user group they are in. [`holdings`] lists those (Minimal Workspace
//! Access left out: it is neutral everywhere), each with its source: a direct policy and
//! the exception that covers it, or a group with the mapping that mirrors it and whether
//! the IdP lists the person in it. `consistency` and `explain` read these.

use chrono::{DateTime, Utc};

use crate::mapping::resolve::{atoms, covers, Atom, Desired};
use crate::model::{Catalog, Email, Grant, ResourceType, WorkspaceSnapshot};

/// Where a held grant comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// A direct (user-level) policy.
    Direct,
    /// Membership of the Segment user group of this name.
    Group(String),
}

/// One non-neutral policy a member holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    pub grant: Grant,
    pub via: Via,
    /// For a group: the index in `desired.groups` of the mapping that mirrors it.
    pub mapping: Option<usize>,
    /// For a group of a mapping: whether the IdP lists the person as an active member
    /// (`false`: a membership made by hand).
    pub in_idp_group: Option<bool>,
    /// The index in `desired.exceptions` of the exception that covers this (an active
    /// one when there is one, else an expired one).
    pub exception: Option<usize>,
}

/// The member's non-neutral policies in `actual`, direct ones first, then per group in
/// Segment's order. Empty when `user` is not a member.
pub fn holdings(
    user: &Email,
    desired: &Desired,
    actual: &WorkspaceSnapshot,
    now: DateTime<Utc>,
) -> Vec<Holding> {
    let Some(member) = actual.users.iter().find(|u| &u.email == user) else {
        return Vec::new();
    };
    let mine = |i: &usize| desired.exceptions[*i].rule.user == *user;
    // Active exceptions first, so an active one is named when both cover.
    let mut order: Vec<usize> = (0..desired.exceptions.len()).filter(mine).collect();
    order.sort_by_key(|i| !desired.exceptions[*i].rule.is_active(now));
    let mut out = Vec::new();
    for g in member.direct.iter().filter(|g| !g.is_neutral()) {
        let grant_atoms = atoms([g]);
        let exception = order.iter().copied().find(|i| {
            let e = &desired.exceptions[*i];
            grant_atoms
                .iter()
                .all(|a| e.grants.iter().any(|eg| covers(eg, a, &actual.catalog)))
        });
        out.push(Holding {
            grant: g.clone(),
            via: Via::Direct,
            mapping: None,
            in_idp_group: None,
            exception,
        });
    }
    for sg in actual.groups.iter().filter(|sg| sg.members.contains(user)) {
        let mapping = desired
            .groups
            .iter()
            .position(|d| d.mirror.as_deref() == Some(sg.name.as_str()));
        let in_idp_group = mapping
            .and_then(|i| desired.groups[i].idp.as_ref())
            .map(|g| {
                g.members
                    .iter()
                    .any(|m| &m.key == user && m.status.is_active())
            });
        let exception = order
            .iter()
            .copied()
            .find(|i| desired.exceptions[*i].mirror_groups.contains(&sg.name));
        for g in sg.grants.iter().filter(|g| !g.is_neutral()) {
            out.push(Holding {
                grant: g.clone(),
                via: Via::Group(sg.name.clone()),
                mapping,
                in_idp_group,
                exception,
            });
        }
    }
    out
}

/// A role on a resource named the same way in every workspace: the role's name and the
/// resource by slug or name ("the whole workspace", "source web-prod", "resources
/// labelled environment:prod"), so that workspaces can be compared.
pub type PortableAtom = (String, String);

pub fn portable(atom: &Atom, grant: &Grant, catalog: &Catalog) -> PortableAtom {
    let role = if grant.role_id == atom.0 && !grant.role_name.is_empty() {
        grant.role_name.clone()
    } else {
        catalog
            .roles
            .iter()
            .find(|r| r.id == atom.0)
            .map(|r| r.name.clone())
            .unwrap_or_else(|| atom.0.clone())
    };
    let r = &atom.1;
    let resource = match r.kind {
        ResourceType::Workspace if r.labels.is_empty() => "the whole workspace".to_string(),
        ResourceType::Workspace => {
            let l: Vec<String> = r
                .labels
                .iter()
                .map(|l| format!("{}:{}", l.key, l.value))
                .collect();
            format!("resources labelled {}", l.join(" and "))
        }
        k => format!(
            "{} {}",
            k.as_str().to_lowercase(),
            catalog.display_name(k, &r.id)
        ),
    };
    (role, resource)
}

/// Whether a holding of `atom` is explained for the consistency check: a direct grant by
/// an active exception of the person that covers the atom; a group by its mapping's
/// `justification`, or by an active exception allowing that membership. Returns what
/// explains it.
pub fn explained_by(
    h: &Holding,
    atom: &Atom,
    desired: &Desired,
    catalog: &Catalog,
    user: &Email,
    now: DateTime<Utc>,
) -> Option<String> {
    match &h.via {
        Via::Direct => desired
            .exceptions
            .iter()
            .find(|e| {
                &e.rule.user == user
                    && e.rule.is_active(now)
                    && e.grants.iter().any(|eg| covers(eg, atom, catalog))
            })
            .map(|e| format!("exception {}", e.rule.ticket)),
        Via::Group(name) => {
            let by_mapping = h.mapping.and_then(|i| {
                let d = &desired.groups[i];
                d.justification
                    .as_ref()
                    .map(|_| format!("the justification of {} at {}", d.idp_name(), d.origin))
            });
            by_mapping.or_else(|| {
                desired
                    .exceptions
                    .iter()
                    .find(|e| {
                        &e.rule.user == user
                            && e.rule.is_active(now)
                            && e.mirror_groups.contains(name)
                    })
                    .map(|e| format!("exception {}", e.rule.ticket))
            })
        }
    }
}
