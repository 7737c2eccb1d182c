//! Desired vs actual → mismatches, for one workspace. Pure.
//!
//! Why one file (~600 lines): the precedence rules between kinds are one decision and
//! must be read together; splitting them by kind would hide the order they apply in.
//!
//! A [`Mismatch`] is a fact ("this person is in that group and should not be"), not yet a
//! finding: `classify` adds the history (IdP events, audit trail, the clock). Precedence
//! between kinds is decided here, so that one fact yields one mismatch:
//! - `deactivated_user_present` hides `membership_unexpected` and `unmanaged_user` for
//!   that user;
//! - `user_not_provisioned` hides `membership_missing` for that user;
//! - `group_not_provisioned` hides `membership_missing` for its members;
//! - `exception_expired` hides `direct_grant` (and `membership_unexpected`) for what the
//!   exception covered;
//! - `membership_unexpected` hides `unmanaged_user` for that user (the membership is the
//!   more specific fact; our extension, see the README);
//! - `exception_expired` hides `unmanaged_user` for that user (the expired exception was
//!   what accounted for them; our extension, see the README).
//!
//! Account hygiene (`personal_account`, `too_many_owners`) and `exception_expiring` are
//! facts of their own and hide nothing.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::config::UnmanagedUsers;
use crate::mapping::resolve::{
    atoms, covers, in_domains, regroup, Desired, DesiredException, Unresolved,
};
use crate::model::{
    Email, Grant, IdpEvent, IdpEventKind, IdpStatus, IdpUser, NestedGroups, SegmentGroup,
    SegmentUser, UserLookup, WorkspaceSnapshot,
};

/// The mapped group a mismatch is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCtx {
    pub idp_id: String,
    pub idp_name: String,
    pub mirror: String,
    /// The Segment group's id, when it exists.
    pub segment_id: Option<String>,
    /// Whether the group grants Workspace Owner (mapped or actual).
    pub owner: bool,
}

/// How a user is gone from the IdP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gone {
    Suspended,
    Deprovisioned,
    /// A lookup answered 404 and the IdP log shows the deletion.
    Deleted,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    UserNotProvisioned {
        user: Email,
        idp_user_id: String,
        groups: Vec<GroupCtx>,
    },
    MembershipMissing {
        group: GroupCtx,
        user: Email,
        idp_user_id: String,
    },
    MembershipUnexpected {
        group: GroupCtx,
        user: Email,
        idp_user_id: Option<String>,
        inactive: Option<IdpStatus>,
    },
    DeactivatedUserPresent {
        user: Email,
        idp_user_id: Option<String>,
        segment_user_id: String,
        gone: Gone,
    },
    GroupNotProvisioned {
        group: GroupCtx,
    },
    GroupPermissionsDrift {
        group: GroupCtx,
        extra: Vec<Grant>,
        missing: Vec<Grant>,
    },
    DirectGrant {
        user: Email,
        segment_user_id: String,
        grant: Grant,
    },
    UnmanagedUser {
        user: Email,
        segment_user_id: String,
        not_in_idp: bool,
    },
    UnmappedGroup {
        name: String,
        segment_id: String,
        extra: Vec<Grant>,
    },
    ExceptionExpired {
        user: Email,
        segment_user_id: Option<String>,
        exception: Box<DesiredException>,
        /// Direct grants the expired exception covered and that are still held.
        grants: Vec<Grant>,
        /// Mirror groups the person is still in by hand.
        groups: Vec<String>,
        owner: bool,
    },
    /// An active exception within `expiry_notice` of its `expires`.
    ExceptionExpiring {
        user: Email,
        exception: Box<DesiredException>,
        /// When the notice window opened (`expires - expiry_notice`).
        notice_from: DateTime<Utc>,
        /// Direct grants it covers that are held now.
        grants: Vec<Grant>,
        /// Mirror groups the person is in by hand under it now.
        groups: Vec<String>,
    },
    /// A member whose email is outside `corporate_domains` and not allow-listed.
    PersonalAccount {
        user: Email,
        segment_user_id: String,
        domains: Vec<String>,
    },
    /// More Workspace Owners than `max_owners`.
    TooManyOwners {
        /// Each owner with how they hold it ("directly", "through <group>"), sorted.
        owners: Vec<(Email, Vec<String>)>,
        max: u32,
    },
    MappingUnresolved(Unresolved),
    /// Entra ID: a nested group inside a mapped group; its people are never provisioned.
    NestedGroupNotProvisioned {
        group: GroupCtx,
        nested_id: String,
        nested_name: String,
        /// Enabled people it reaches who are not enabled direct members of the group.
        people_left_out: u32,
    },
}

/// What the IdP says about everyone this workspace involves.
pub struct IdpView<'a> {
    /// key → IdP user, from the mapped groups' member lists and the lookups.
    pub users: BTreeMap<Email, IdpUser>,
    /// Keys a lookup answered 404 for.
    pub not_found: BTreeSet<Email>,
    pub events: &'a [IdpEvent],
}

impl<'a> IdpView<'a> {
    pub fn new(
        groups: impl IntoIterator<Item = &'a crate::model::IdpGroup>,
        lookups: &'a BTreeMap<Email, UserLookup>,
        events: &'a [IdpEvent],
    ) -> Self {
        let mut users = BTreeMap::new();
        for g in groups {
            for m in &g.members {
                users.insert(m.key.clone(), m.clone());
            }
        }
        let mut not_found = BTreeSet::new();
        for (k, l) in lookups {
            match l {
                UserLookup::Found(u) => {
                    users.entry(k.clone()).or_insert_with(|| u.clone());
                }
                UserLookup::NotFound => {
                    not_found.insert(k.clone());
                }
            }
        }
        IdpView {
            users,
            not_found,
            events,
        }
    }

    fn deleted(&self, key: &Email) -> bool {
        self.not_found.contains(key)
            && self.events.iter().any(|e| {
                e.kind == IdpEventKind::UserDeleteInitiated && e.user_login.as_ref() == Some(key)
            })
    }
}

/// Compares one workspace's desired state with what Segment holds.
pub fn diff(
    desired: &Desired,
    actual: &WorkspaceSnapshot,
    idp: &IdpView<'_>,
    now: DateTime<Utc>,
) -> Vec<Mismatch> {
    let mut out: Vec<Mismatch> = desired
        .unresolved
        .iter()
        .cloned()
        .map(Mismatch::MappingUnresolved)
        .collect();

    let users: BTreeMap<&Email, &SegmentUser> =
        actual.users.iter().map(|u| (&u.email, u)).collect();
    let groups: BTreeMap<&str, &SegmentGroup> =
        actual.groups.iter().map(|g| (g.name.as_str(), g)).collect();
    let role_names: BTreeMap<String, String> = actual
        .catalog
        .roles
        .iter()
        .map(|r| (r.id.clone(), r.name.clone()))
        .collect();

    let (active_exc, expired_exc): (Vec<&DesiredException>, Vec<&DesiredException>) = desired
        .exceptions
        .iter()
        .partition(|e| e.rule.is_active(now));

    // Who the mappings expect in the workspace, and who we cannot judge.
    let mut expected: BTreeSet<&Email> = BTreeSet::new();
    let mut in_mapped_group: BTreeSet<&Email> = BTreeSet::new();
    let mut unjudged: BTreeSet<&Email> = BTreeSet::new();
    for d in &desired.groups {
        match &d.idp {
            Some(g) => {
                for m in &g.members {
                    in_mapped_group.insert(&m.key);
                    if m.status.is_active() {
                        expected.insert(&m.key);
                    }
                }
            }
            None => {
                // "Nothing is said about its mirror group or members."
                if let Some(sg) = d.mirror.as_deref().and_then(|m| groups.get(m)) {
                    unjudged.extend(sg.members.iter());
                }
            }
        }
    }
    for e in &active_exc {
        expected.insert(&e.rule.user);
    }

    // Users gone from the IdP, decided once.
    let mut gone: BTreeMap<&Email, Gone> = BTreeMap::new();
    for u in &actual.users {
        let g = match idp.users.get(&u.email).map(|x| &x.status) {
            Some(IdpStatus::Suspended) => Some(Gone::Suspended),
            Some(IdpStatus::Deprovisioned) => Some(Gone::Deprovisioned),
            _ if idp.deleted(&u.email) => Some(Gone::Deleted),
            _ => None,
        };
        if let Some(g) = g {
            gone.insert(&u.email, g);
        }
    }

    let mut not_provisioned: BTreeMap<&Email, (String, Vec<GroupCtx>)> = BTreeMap::new();
    let mut unexpected_members: BTreeSet<&Email> = BTreeSet::new();
    let mut expired_hits: BTreeMap<usize, (Vec<Grant>, Vec<String>)> = BTreeMap::new();
    // What each active exception covers now (for exception_expiring).
    let mut active_hits: BTreeMap<usize, (Vec<Grant>, Vec<String>)> = BTreeMap::new();

    for d in &desired.groups {
        let (Some(g), Some(mirror)) = (&d.idp, &d.mirror) else {
            continue;
        };
        let seg = groups.get(mirror.as_str()).copied();
        let actual_owner = seg.is_some_and(|s| s.grants.iter().any(Grant::is_owner));
        let ctx = GroupCtx {
            idp_id: g.id.clone(),
            idp_name: g.name.clone(),
            mirror: mirror.clone(),
            segment_id: seg.map(|s| s.id.clone()),
            owner: d.grants_owner() || actual_owner,
        };
        let Some(seg) = seg else {
            out.push(Mismatch::GroupNotProvisioned { group: ctx.clone() });
            for m in g.members.iter().filter(|m| m.status.is_active()) {
                if !users.contains_key(&m.key) {
                    not_provisioned
                        .entry(&m.key)
                        .or_insert_with(|| (m.id.clone(), vec![]))
                        .1
                        .push(ctx.clone());
                }
            }
            continue;
        };
        let seg_members: BTreeSet<&Email> = seg.members.iter().collect();
        for m in g.members.iter().filter(|m| m.status.is_active()) {
            if !users.contains_key(&m.key) {
                not_provisioned
                    .entry(&m.key)
                    .or_insert_with(|| (m.id.clone(), vec![]))
                    .1
                    .push(ctx.clone());
            } else if !seg_members.contains(&m.key) {
                out.push(Mismatch::MembershipMissing {
                    group: ctx.clone(),
                    user: m.key.clone(),
                    idp_user_id: m.id.clone(),
                });
            }
        }
        let idp_members: BTreeMap<&Email, &IdpUser> =
            g.members.iter().map(|m| (&m.key, m)).collect();
        for email in &seg.members {
            let listed = idp_members.get(email);
            if listed.is_some_and(|m| m.status.is_active()) {
                continue;
            }
            if gone.contains_key(email) {
                continue; // deactivated_user_present says it
            }
            if listed.is_some_and(|m| matches!(m.status, IdpStatus::NotActivated(_))) {
                continue; // STAGED / PROVISIONED: neither expected nor flagged
            }
            if let Some(i) = active_index(&desired.exceptions, now, |e| {
                &e.rule.user == email && e.mirror_groups.contains(mirror)
            }) {
                active_hits.entry(i).or_default().1.push(mirror.clone());
                continue;
            }
            if let Some(i) = expired_index(&desired.exceptions, now, |e| {
                &e.rule.user == email && e.mirror_groups.contains(mirror)
            }) {
                expired_hits.entry(i).or_default().1.push(mirror.clone());
                unexpected_members.insert(email);
                continue;
            }
            unexpected_members.insert(email);
            out.push(Mismatch::MembershipUnexpected {
                group: ctx.clone(),
                user: email.clone(),
                idp_user_id: listed
                    .map(|m| m.id.clone())
                    .or_else(|| idp.users.get(email).map(|u| u.id.clone())),
                inactive: listed.map(|m| m.status.clone()),
            });
        }
        if let Some(want) = &d.grants {
            let want = atoms(want);
            let have = atoms(&seg.grants);
            let extra: BTreeSet<_> = have.difference(&want).cloned().collect();
            let missing: BTreeSet<_> = want.difference(&have).cloned().collect();
            if !extra.is_empty() || !missing.is_empty() {
                let mut names = role_names.clone();
                for gr in d.grants.iter().flatten().chain(&seg.grants) {
                    names.insert(gr.role_id.clone(), gr.role_name.clone());
                }
                out.push(Mismatch::GroupPermissionsDrift {
                    group: ctx.clone(),
                    extra: regroup(&extra, &names),
                    missing: regroup(&missing, &names),
                });
            }
        }
    }

    for (user, (idp_user_id, groups)) in not_provisioned {
        out.push(Mismatch::UserNotProvisioned {
            user: user.clone(),
            idp_user_id,
            groups,
        });
    }

    // Groups no mapping names.
    let named = desired.mirror_names();
    for g in &actual.groups {
        if named.contains(g.name.as_str()) {
            continue;
        }
        let extra: Vec<Grant> = g
            .grants
            .iter()
            .filter(|x| !x.is_neutral())
            .cloned()
            .collect();
        if !extra.is_empty() {
            out.push(Mismatch::UnmappedGroup {
                name: g.name.clone(),
                segment_id: g.id.clone(),
                extra,
            });
        }
    }

    // Users: gone, unmanaged, direct grants.
    let mut unmanaged: Vec<Mismatch> = Vec::new();
    for u in &actual.users {
        if let Some(how) = gone.get(&u.email) {
            out.push(Mismatch::DeactivatedUserPresent {
                user: u.email.clone(),
                idp_user_id: idp.users.get(&u.email).map(|x| x.id.clone()),
                segment_user_id: u.id.clone(),
                gone: how.clone(),
            });
        } else if !expected.contains(&u.email)
            && !desired.allow.contains(&u.email)
            && !unjudged.contains(&u.email)
            && !unexpected_members.contains(&u.email)
            && !matches!(
                idp.users.get(&u.email).map(|x| &x.status),
                Some(IdpStatus::NotActivated(_))
            )
            && desired.unmanaged_users == UnmanagedUsers::Alert
        {
            unmanaged.push(Mismatch::UnmanagedUser {
                user: u.email.clone(),
                segment_user_id: u.id.clone(),
                not_in_idp: idp.not_found.contains(&u.email),
            });
        }
        for grant in u.direct.iter().filter(|g| !g.is_neutral()) {
            let grant_atoms = atoms([grant]);
            let covered_by = |e: &DesiredException| {
                e.rule.user == u.email
                    && grant_atoms
                        .iter()
                        .all(|a| e.grants.iter().any(|eg| covers(eg, a, &actual.catalog)))
            };
            if let Some(i) = active_index(&desired.exceptions, now, covered_by) {
                active_hits.entry(i).or_default().0.push(grant.clone());
                continue;
            }
            if let Some(i) = expired_index(&desired.exceptions, now, covered_by) {
                expired_hits.entry(i).or_default().0.push(grant.clone());
                continue;
            }
            out.push(Mismatch::DirectGrant {
                user: u.email.clone(),
                segment_user_id: u.id.clone(),
                grant: grant.clone(),
            });
        }
    }

    let _ = &expired_exc;
    let expired_users: BTreeSet<&Email> = expired_hits
        .keys()
        .map(|i| &desired.exceptions[*i].rule.user)
        .collect();
    out.extend(unmanaged.into_iter().filter(|m| match m {
        Mismatch::UnmanagedUser { user, .. } => !expired_users.contains(user),
        _ => true,
    }));
    for (i, e) in desired.exceptions.iter().enumerate() {
        let notice_from = e.rule.expires - desired.expiry_notice;
        if e.rule.is_active(now) && now >= notice_from {
            let (grants, groups_held) = active_hits.remove(&i).unwrap_or_default();
            out.push(Mismatch::ExceptionExpiring {
                user: e.rule.user.clone(),
                exception: Box::new(e.clone()),
                notice_from,
                grants,
                groups: groups_held,
            });
        }
    }
    out.extend(hygiene(desired, actual));
    for (i, (grants, groups_held)) in expired_hits {
        let e = &desired.exceptions[i];
        let owner = grants.iter().any(Grant::is_owner)
            || groups_held.iter().any(|m| {
                groups
                    .get(m.as_str())
                    .is_some_and(|g| g.grants.iter().any(Grant::is_owner))
                    || desired
                        .groups
                        .iter()
                        .any(|d| d.mirror.as_deref() == Some(m) && d.grants_owner())
            });
        out.push(Mismatch::ExceptionExpired {
            user: e.rule.user.clone(),
            segment_user_id: users.get(&e.rule.user).map(|u| u.id.clone()),
            exception: Box::new(e.clone()),
            grants,
            groups: groups_held,
            owner,
        });
    }
    out
}

/// The first active exception matching `pred`.
fn active_index(
    exceptions: &[DesiredException],
    now: DateTime<Utc>,
    pred: impl Fn(&DesiredException) -> bool,
) -> Option<usize> {
    exceptions
        .iter()
        .position(|e| e.rule.is_active(now) && pred(e))
}

/// `personal_account` and `too_many_owners` for one workspace, from what Segment holds.
fn hygiene(desired: &Desired, actual: &WorkspaceSnapshot) -> Vec<Mismatch> {
    let mut out = Vec::new();
    if let Some(domains) = &desired.corporate_domains {
        for u in &actual.users {
            if !desired.allow.contains(&u.email) && !in_domains(&u.email, domains) {
                out.push(Mismatch::PersonalAccount {
                    user: u.email.clone(),
                    segment_user_id: u.id.clone(),
                    domains: domains.clone(),
                });
            }
        }
    }
    if let Some(max) = desired.max_owners {
        let owners = owners(actual);
        if owners.len() > usize::try_from(max).unwrap_or(usize::MAX) {
            out.push(Mismatch::TooManyOwners {
                owners: owners.into_iter().collect(),
                max,
            });
        }
    }
    out
}

/// Entra ID semantics: one mismatch per (mapped group, nested group). Entra provisions
/// only the direct members of an assigned group, so everyone reached only through the
/// nested group is silently left out; `people_left_out` counts the enabled ones who are
/// not also enabled direct members (someone reached through two nested groups counts in
/// both: each one alone leaves them out). Reported even when it leaves nobody out today,
/// since whoever joins it later will not arrive either.
pub fn nested(
    desired: &Desired,
    actual: &WorkspaceSnapshot,
    nested: &NestedGroups,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    if nested.is_empty() {
        return out;
    }
    for d in &desired.groups {
        let (Some(g), Some(mirror)) = (&d.idp, &d.mirror) else {
            continue;
        };
        let Some(inner) = nested.get(&g.id) else {
            continue;
        };
        let seg = actual.groups.iter().find(|s| s.name == *mirror);
        let ctx = GroupCtx {
            idp_id: g.id.clone(),
            idp_name: g.name.clone(),
            mirror: mirror.clone(),
            segment_id: seg.map(|s| s.id.clone()),
            owner: d.grants_owner() || seg.is_some_and(|s| s.grants.iter().any(Grant::is_owner)),
        };
        let direct: BTreeSet<&Email> = g
            .members
            .iter()
            .filter(|m| m.status.is_active())
            .map(|m| &m.key)
            .collect();
        let mut seen_names = BTreeSet::new();
        for n in inner {
            // Two nested groups may share a display name; the subject names one finding.
            if !seen_names.insert(n.name.as_str()) {
                continue;
            }
            let same_name = inner.iter().filter(|o| o.name == n.name);
            let left: BTreeSet<&Email> = same_name
                .flat_map(|o| o.people.iter())
                .filter(|p| p.status.is_active() && !direct.contains(&p.key))
                .map(|p| &p.key)
                .collect();
            out.push(Mismatch::NestedGroupNotProvisioned {
                group: ctx.clone(),
                nested_id: n.id.clone(),
                nested_name: n.name.clone(),
                people_left_out: u32::try_from(left.len()).unwrap_or(u32::MAX),
            });
        }
    }
    out
}

/// Every member holding Workspace Owner, with how: "directly" and/or "through <group>".
pub fn owners(actual: &WorkspaceSnapshot) -> BTreeMap<Email, Vec<String>> {
    let members: BTreeSet<&Email> = actual.users.iter().map(|u| &u.email).collect();
    let mut out: BTreeMap<Email, Vec<String>> = BTreeMap::new();
    for u in &actual.users {
        if u.direct.iter().any(Grant::is_owner) {
            out.entry(u.email.clone())
                .or_default()
                .push("directly".into());
        }
    }
    for g in actual
        .groups
        .iter()
        .filter(|g| g.grants.iter().any(Grant::is_owner))
    {
        for m in g.members.iter().filter(|m| members.contains(m)) {
            out.entry(m.clone())
                .or_default()
                .push(format!("through {}", g.name));
        }
    }
    out
}

/// The first expired exception matching `pred`.
fn expired_index(
    exceptions: &[DesiredException],
    now: DateTime<Utc>,
    pred: impl Fn(&DesiredException) -> bool,
) -> Option<usize> {
    exceptions
        .iter()
        .position(|e| !e.rule.is_active(now) && pred(e))
}
