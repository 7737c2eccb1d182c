//! What an unresolved IdP group name causes, and nothing more, is held back (pure).
//!
//! A mapping whose IdP group does not resolve (a typo, a renamed group) says nothing about
//! its mirror group or members (product.md). But the Segment group the IdP pushed under
//! the real name is still there: no mapping names it, so without this step it is reported
//! as `unmapped_group` (an error, critical for Owner) and each of its members as
//! `unmanaged_user` — one typo in our own config paging as a dozen access problems.
//!
//! Contract:
//! - The *carrier* of an unresolved IdP group mapping is the Segment group named exactly
//!   as its mirror (`segment_group`, default `idp_group`), else the one Segment group that
//!   no mapping names and whose name is near the mirror name (or the IdP name), as
//!   "did you mean" measures it. No near name: no carrier, nothing is held back.
//! - Exactly these findings are removed: `unmapped_group` about the carrier, and
//!   `unmanaged_user` about the carrier's members. Anything else about them (a direct
//!   grant, a deactivated user, a personal account) is still reported.
//! - Each removed finding is listed in the `mapping_unresolved` finding's
//!   `mapping.suppressed`, and its message says what was held back and why.
//! - Pure: no IO, no clock.

use std::collections::BTreeSet;

use crate::config::strict::did_you_mean;
use crate::mapping::resolve::{Desired, DesiredGroup, Unresolved};
use crate::model::{SegmentGroup, WorkspaceSnapshot};

use super::finding::{Finding, Kind, Suppressed};

/// The `what` of an unresolved IdP group in [`Unresolved`].
const IDP_GROUP: &str = "IdP group";

/// Adds "did you mean …" to each unresolved IdP group name that has a near name among
/// `candidates` (the IdP groups that did resolve, and the workspace's Segment groups,
/// which the IdP pushed under their real names).
pub fn suggest_idp_groups<'c>(
    unresolved: &mut [Unresolved],
    candidates: impl IntoIterator<Item = &'c str> + Clone,
) {
    for u in unresolved.iter_mut().filter(|u| u.what == IDP_GROUP) {
        if u.reason.contains("did you mean") {
            continue;
        }
        if let Some(near) = did_you_mean(&u.name, candidates.clone()) {
            u.reason.push_str(&format!(" (did you mean {near:?}?)"));
        }
    }
}

/// The mapped group an unresolved IdP group entry came from.
fn mapped_group<'d>(desired: &'d Desired, u: &Unresolved) -> Option<&'d DesiredGroup> {
    desired
        .groups
        .iter()
        .find(|g| g.idp.is_none() && g.origin == u.origin && g.idp_ref.text() == u.name)
}

/// The Segment group that carries an unresolved mapping's name (see the module note).
fn carrier<'s>(
    group: &DesiredGroup,
    snapshot: &'s WorkspaceSnapshot,
    mapped: &BTreeSet<&str>,
) -> Option<&'s SegmentGroup> {
    let mirror = group.mirror.as_deref()?;
    if let Some(exact) = snapshot.groups.iter().find(|g| g.name == mirror) {
        return Some(exact);
    }
    let unmapped: Vec<&str> = snapshot
        .groups
        .iter()
        .map(|g| g.name.as_str())
        .filter(|n| !mapped.contains(n))
        .collect();
    let idp_name = group.idp_ref.text();
    let near = did_you_mean(mirror, unmapped.iter().copied()).or_else(|| {
        (idp_name != mirror)
            .then(|| did_you_mean(idp_name, unmapped.iter().copied()))
            .flatten()
    })?;
    snapshot.groups.iter().find(|g| g.name == near)
}

/// Removes the findings each unresolved IdP group causes and records them on its
/// `mapping_unresolved` finding. Order is kept.
pub fn apply(
    mut findings: Vec<Finding>,
    desired: &Desired,
    snapshot: &WorkspaceSnapshot,
) -> Vec<Finding> {
    let mapped = desired.mirror_names();
    for u in desired.unresolved.iter().filter(|u| u.what == IDP_GROUP) {
        let Some(group) = mapped_group(desired, u) else {
            continue;
        };
        let Some(carrier) = carrier(group, snapshot, &mapped) else {
            continue;
        };
        let mut held = Vec::new();
        findings.retain(|f| {
            let caused = match f.kind {
                Kind::UnmappedGroup => f.group.as_deref() == Some(carrier.name.as_str()),
                Kind::UnmanagedUser => f
                    .user
                    .as_ref()
                    .is_some_and(|user| carrier.members.contains(user)),
                _ => false,
            };
            if caused {
                held.push(Suppressed {
                    kind: f.kind,
                    user: f.user.as_ref().map(|e| e.as_str().to_string()),
                    group: f.group.clone(),
                });
            }
            !caused
        });
        if held.is_empty() {
            continue;
        }
        let Some(f) = findings.iter_mut().find(|f| {
            f.kind == Kind::MappingUnresolved
                && f.mapping
                    .as_ref()
                    .is_some_and(|m| m.file == u.origin.file && m.name == u.name)
        }) else {
            continue;
        };
        let group_held = held.iter().any(|s| s.kind == Kind::UnmappedGroup);
        let users_held = held
            .iter()
            .filter(|s| s.kind == Kind::UnmanagedUser)
            .count();
        let mut parts = Vec::new();
        if group_held {
            parts.push(format!(
                "unmapped_group for the Segment group {:?}",
                carrier.name
            ));
        }
        if users_held > 0 {
            parts.push(format!(
                "unmanaged_user for {users_held} of its member{}",
                if users_held == 1 { "" } else { "s" }
            ));
        }
        f.message.push_str(&format!(
            " Held back until the name resolves, since they follow from it: {}.",
            parts.join(" and ")
        ));
        if let Some(m) = f.mapping.as_mut() {
            m.suppressed = held;
        }
    }
    findings
}
