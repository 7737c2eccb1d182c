//! Enforcement (issue 7): make each mirror group's permissions equal to its mapping, and
//! (opt-in) take back the direct grants of expired exceptions.
//!
//! Planner vs executor (STYLE.md): [`plan_workspace`] is pure — from one workspace's
//! resolved mappings ([`Desired`]) and Segment's state it builds a [`WorkspacePlan`] value;
//! `apply.rs` carries a plan out through Segment's replace-permissions endpoints.
//!
//! Scope and safety stops (each tested):
//! - Only the permissions of mirror groups the mappings name, and, with
//!   `enforce.revert_expired`, users' direct grants an expired exception covered. Never
//!   membership (SCIM owns it), never users, never groups the mappings do not name.
//! - A mapping whose IdP group, role or resource did not resolve leaves its group out of
//!   the plan (the plan says so): a typo or a renamed source never strips real grants. A
//!   mirror group Segment does not have yet is left to SCIM.
//! - One change per added or removed grant (role on one resource); one replace call per
//!   group or user, so nothing is ever half-written.
//! - The last holders of Workspace Owner keep it: a change that would leave the workspace
//!   without any Owner is held, with the reason.
//! - Over `enforce.max_changes` the daemon applies nothing ([`WorkspacePlan::over_limit`]);
//!   a person running `scimwatch apply` may.

pub mod apply;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::mapping::resolve::{atoms, covers, regroup, Atom, Desired};
use crate::model::{Catalog, Email, Grant, WorkspaceSnapshot};
use crate::reconcile::finding::{format_time, GrantView};

/// What one write would change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// `group` (a mirror group's permissions) or `user` (a user's direct grants).
    pub target: &'static str,
    /// The group's name or the user's email.
    pub name: String,
    /// Segment's id of the group or user.
    pub id: String,
    /// Why: the mapping (`file:line`) or the expired exception (`file:line`, ticket).
    pub source: String,
    /// One line per grant added: "Source Admin on source web-prod".
    pub add: Vec<String>,
    /// One line per grant removed.
    pub remove: Vec<String>,
    /// The whole list the replace call writes.
    pub permissions: Vec<GrantView>,
    /// Why this change is held back (the last Owner guard); held changes are never written.
    pub held: Option<String>,
    /// The ticket of the mapping or exception that asks for it.
    pub ticket: Option<String>,
    /// The mapping's `justification`, or the exception's reason.
    pub justification: Option<String>,
}

impl Change {
    /// Grants added plus removed: what `enforce.max_changes` counts.
    pub fn size(&self) -> usize {
        self.add.len() + self.remove.len()
    }
    pub fn removes_owner(&self) -> bool {
        self.remove
            .iter()
            .any(|l| l.starts_with(crate::model::WORKSPACE_OWNER))
    }
}

/// A mapping the plan leaves out, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Skipped {
    pub group: String,
    pub source: String,
    pub reason: String,
}

/// The plan for one workspace.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkspacePlan {
    pub workspace: String,
    pub changes: Vec<Change>,
    pub skipped: Vec<Skipped>,
    /// Grants added or removed by the changes that are not held.
    pub size: usize,
    /// `enforce.max_changes` at planning time.
    pub max_changes: u32,
}

impl WorkspacePlan {
    /// The daemon applies nothing of a plan this big.
    pub fn over_limit(&self) -> bool {
        self.size > self.max_changes as usize
    }
    /// Changes that may be written.
    pub fn writable(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.held.is_none())
    }
    pub fn held(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.held.is_some())
    }
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Knobs from `[enforce]`.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub max_changes: u32,
    pub revert_expired: bool,
}

fn describe(atom: &Atom, names: &BTreeMap<String, String>, catalog: &Catalog) -> String {
    let g = Grant {
        role_id: atom.0.clone(),
        role_name: names
            .get(&atom.0)
            .cloned()
            .unwrap_or_else(|| atom.0.clone()),
        resources: [atom.1.clone()].into(),
    };
    g.describe_with(catalog)
}

/// Role id → name from everything in view.
fn role_names<'a>(grants: impl IntoIterator<Item = &'a Grant>) -> BTreeMap<String, String> {
    grants
        .into_iter()
        .map(|g| (g.role_id.clone(), g.role_name.clone()))
        .collect()
}

/// The plan for one workspace (pure).
pub fn plan_workspace(
    desired: &Desired,
    snap: &WorkspaceSnapshot,
    opts: Options,
    now: DateTime<Utc>,
) -> WorkspacePlan {
    let mut changes = Vec::new();
    let mut skipped = Vec::new();
    let groups: BTreeMap<&str, &crate::model::SegmentGroup> =
        snap.groups.iter().map(|g| (g.name.as_str(), g)).collect();
    for d in &desired.groups {
        let source = d.origin.to_string();
        let Some(mirror) = &d.mirror else {
            skipped.push(Skipped {
                group: d.idp_name(),
                source,
                reason: "its IdP group did not resolve, so its mirror group's name is unknown"
                    .into(),
            });
            continue;
        };
        let Some(want) = &d.grants else {
            skipped.push(Skipped {
                group: mirror.clone(),
                source,
                reason: "a role or resource it names did not resolve (see mapping_unresolved); its group is left as it is".into(),
            });
            continue;
        };
        if d.idp.is_none() {
            skipped.push(Skipped {
                group: mirror.clone(),
                source,
                reason: "its IdP group did not resolve (see mapping_unresolved); its group is left as it is".into(),
            });
            continue;
        }
        let Some(seg) = groups.get(mirror.as_str()) else {
            skipped.push(Skipped {
                group: mirror.clone(),
                source,
                reason: "Segment has no such group yet; SCIM creates it when the IdP pushes it"
                    .into(),
            });
            continue;
        };
        let want_atoms = atoms(want);
        let have_atoms = atoms(&seg.grants);
        if want_atoms == have_atoms {
            continue;
        }
        let names = role_names(want.iter().chain(&seg.grants));
        // Neutral grants the group holds stay: they are not the mapping's business.
        let mut permissions: Vec<Grant> = regroup(&want_atoms, &names);
        permissions.extend(seg.grants.iter().filter(|g| g.is_neutral()).cloned());
        changes.push(Change {
            target: "group",
            name: mirror.clone(),
            id: seg.id.clone(),
            source,
            add: want_atoms
                .difference(&have_atoms)
                .map(|a| describe(a, &names, &snap.catalog))
                .collect(),
            remove: have_atoms
                .difference(&want_atoms)
                .map(|a| describe(a, &names, &snap.catalog))
                .collect(),
            permissions: permissions.iter().map(GrantView::from).collect(),
            held: None,
            ticket: d.ticket.clone(),
            justification: d.justification.clone(),
        });
    }

    if opts.revert_expired {
        let mut by_user: BTreeMap<&Email, Vec<&crate::mapping::resolve::DesiredException>> =
            BTreeMap::new();
        for e in &desired.exceptions {
            if !e.rule.is_active(now) {
                by_user.entry(&e.rule.user).or_default().push(e);
            }
        }
        for user in &snap.users {
            let Some(expired) = by_user.get(&user.email) else {
                continue;
            };
            let held = atoms(&user.direct);
            // Still covered by an active exception: not ours to take back.
            let active: Vec<&crate::mapping::resolve::DesiredException> = desired
                .exceptions
                .iter()
                .filter(|e| e.rule.user == user.email && e.rule.is_active(now))
                .collect();
            let take: BTreeSet<Atom> = held
                .iter()
                .filter(|a| {
                    expired
                        .iter()
                        .any(|e| e.grants.iter().any(|g| covers(g, a, &snap.catalog)))
                        && !active
                            .iter()
                            .any(|e| e.grants.iter().any(|g| covers(g, a, &snap.catalog)))
                })
                .cloned()
                .collect();
            if take.is_empty() {
                continue;
            }
            let names = role_names(&user.direct);
            let keep: BTreeSet<Atom> = held.difference(&take).cloned().collect();
            let mut permissions = regroup(&keep, &names);
            permissions.extend(user.direct.iter().filter(|g| g.is_neutral()).cloned());
            let sources: Vec<String> = expired
                .iter()
                .map(|e| {
                    format!(
                        "exception {} (ticket {}, expired {})",
                        e.rule.origin,
                        e.rule.ticket,
                        format_time(&e.rule.expires)
                    )
                })
                .collect();
            changes.push(Change {
                target: "user",
                name: user.email.to_string(),
                id: user.id.clone(),
                source: sources.join("; "),
                add: Vec::new(),
                remove: take
                    .iter()
                    .map(|a| describe(a, &names, &snap.catalog))
                    .collect(),
                permissions: permissions.iter().map(GrantView::from).collect(),
                held: None,
                ticket: Some(
                    expired
                        .iter()
                        .map(|e| e.rule.ticket.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                justification: Some(
                    expired
                        .iter()
                        .map(|e| format!("expired exception: {}", e.rule.reason))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            });
        }
    }

    guard_last_owner(&mut changes, snap);
    let size = changes
        .iter()
        .filter(|c| c.held.is_none())
        .map(Change::size)
        .sum();
    WorkspacePlan {
        workspace: desired.workspace.clone(),
        changes,
        skipped,
        size,
        max_changes: opts.max_changes,
    }
}

/// Holds the changes that would leave the workspace with no Workspace Owner at all.
fn guard_last_owner(changes: &mut [Change], snap: &WorkspaceSnapshot) {
    let owner_after = |views: &[GrantView]| {
        views.iter().any(|g| {
            g.role_id == crate::model::WORKSPACE_OWNER_ROLE_ID
                || g.role == crate::model::WORKSPACE_OWNER
        })
    };
    // Who holds Owner once every change is written.
    let mut owners: BTreeSet<&Email> = BTreeSet::new();
    for u in &snap.users {
        let after = changes
            .iter()
            .find(|c| c.target == "user" && c.id == u.id)
            .map(|c| owner_after(&c.permissions))
            .unwrap_or_else(|| u.direct.iter().any(Grant::is_owner));
        if after {
            owners.insert(&u.email);
        }
    }
    for g in &snap.groups {
        let after = changes
            .iter()
            .find(|c| c.target == "group" && c.id == g.id)
            .map(|c| owner_after(&c.permissions))
            .unwrap_or_else(|| g.grants.iter().any(Grant::is_owner));
        if after {
            owners.extend(g.members.iter());
        }
    }
    if !owners.is_empty() {
        return;
    }
    for c in changes.iter_mut().filter(|c| c.removes_owner()) {
        c.held = Some(
            "it would leave the workspace without any Workspace Owner; grant Owner to someone else first".into(),
        );
    }
}

/// Renders plans as the readable diff `plan` and `apply` print.
pub fn render_text(plans: &[WorkspacePlan], daemon_limit: bool) -> String {
    let mut out = String::new();
    for p in plans {
        out.push_str(&format!("workspace {}", p.workspace));
        if p.is_empty() {
            out.push_str(": nothing to change\n");
        } else {
            out.push_str(&format!(
                ": {} change{}\n",
                p.size,
                if p.size == 1 { "" } else { "s" }
            ));
        }
        for c in &p.changes {
            let what = match c.target {
                "group" => format!("group {:?}", c.name),
                _ => format!("user {} (direct grants)", c.name),
            };
            out.push_str(&format!("  {what}  ← {}\n", c.source));
            for a in &c.add {
                out.push_str(&format!("    + {a}\n"));
            }
            for r in &c.remove {
                out.push_str(&format!("    - {r}\n"));
            }
            if let Some(h) = &c.held {
                out.push_str(&format!("    (held: {h})\n"));
            }
        }
        for s in &p.skipped {
            out.push_str(&format!(
                "  left out: group {:?} ({}): {}\n",
                s.group, s.source, s.reason
            ));
        }
        if daemon_limit && p.over_limit() {
            out.push_str(&format!(
                "  over enforce.max_changes = {}: the daemon would apply none of it and raise enforce_blocked; `scimwatch apply` may\n",
                p.max_changes
            ));
        }
    }
    out
}

/// The JSON of `plan --output json` (and of `enforce_blocked`'s `plan`).
pub fn render_json(plans: &[WorkspacePlan]) -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "workspaces": plans,
        "changes": plans.iter().map(|p| p.size).sum::<usize>(),
    })
}
