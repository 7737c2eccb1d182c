//! Targeted passes: when only events woke the reconciler (the Okta hook, the System Log
//! or an audit-trail poller), re-read only what those events touch, on both sides, and
//! update the findings of those subjects alone.
//!
//! Contract:
//! - What was touched comes from what this activation reads back — the System Log and the
//!   audit trail since the last successful pass (minus a minute of slack for late
//!   persistence) — never from a hook body.
//! - The touched IdP groups, users, Segment groups and users are read afresh and merged
//!   into the snapshots the last pass kept; the pure core evaluates the merged state, and
//!   only findings about touched users or groups are kept.
//! - A targeted pass adds, updates and resolves the findings of the subjects it read
//!   (touched users, and touched groups with their memberships); it never resolves any
//!   other finding, and never counts as a full pass.
//! - A touched mapped group that reads empty after a non-empty snapshot fails the pass
//!   (Okta's silent `200 []`).
//! - With nothing kept yet (no earlier full pass) it declines, and a full pass runs.
//! - Okta only: it reads the System Log. Under Entra ID it always declines, so every
//!   event-woken activation (delta poller, `/hooks/graph`, audit trail) is a full pass.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::full::{segment_key, Kept, IDP_MEMBERSHIP, IDP_OBSERVED, LAST_PASS};
use super::status::TargetedCounts;
use super::Reconciler;
use crate::idp::{IdentityProvider, Idp};
use crate::model::{
    Email, GroupRead, GroupRef, IdpGroup, IdpSnapshot, IdpUser, SegmentGroup, SegmentUser,
};
use crate::reconcile::history::{self, IdpMembership};
use crate::reconcile::{evaluate, Finding};

/// Slack for events persisted after the last pass read the logs.
const SLACK: chrono::Duration = chrono::Duration::seconds(60);

impl Reconciler {
    /// Runs a targeted pass; `Ok(None)` when it cannot (nothing kept yet) and a full pass
    /// must run instead.
    pub(super) async fn targeted_pass(
        &self,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<TargetedCounts>> {
        // Targeted passes read the Okta System Log; under Entra ID every event-woken
        // activation is a full pass (directory audits lag and are paced to 4 per 10 s, and
        // a targeted read would miss the nested groups).
        let Idp::Okta(okta) = &self.idp else {
            return Ok(None);
        };
        let Some(last) = self.store.snapshot_get(LAST_PASS).await? else {
            return Ok(None);
        };
        let Ok(last) = serde_json::from_value::<DateTime<Utc>>(last) else {
            return Ok(None);
        };
        let Some(kept_idp) = self.store.snapshot_get(IDP_MEMBERSHIP).await? else {
            return Ok(None);
        };
        let kept_idp: IdpMembership = serde_json::from_value(kept_idp)?;
        let mut kept = Vec::new();
        for (ws, _) in &self.clients {
            let Some(k) = self.store.snapshot_get(&segment_key(&ws.name)).await? else {
                return Ok(None);
            };
            kept.push(serde_json::from_value::<Kept>(k)?);
        }
        let since = last - SLACK;

        // What changed, as the logs tell it.
        let events = okta
            .events_since(now - self.settings.event_lookback)
            .await?;
        let fresh_events: Vec<_> = events.iter().filter(|e| e.published >= since).collect();
        let touched_logins: BTreeSet<Email> = fresh_events
            .iter()
            .filter_map(|e| e.user_login.clone())
            .collect();
        let touched_idp_groups: BTreeSet<(Option<String>, Option<String>)> = fresh_events
            .iter()
            .filter(|e| e.group_id.is_some() || e.group_name.is_some())
            .map(|e| (e.group_id.clone(), e.group_name.clone()))
            .collect();

        // The IdP side: re-read the touched mapped groups, look up the touched users.
        let mut refs: Vec<GroupRef> = Vec::new();
        for m in self.mappings.workspaces.values() {
            for g in &m.groups {
                let kept_id = kept_idp
                    .groups
                    .iter()
                    .find(|(_, (name, _))| GroupRef::Name(name.clone()) == g.idp_group)
                    .map(|(id, _)| id.clone());
                let hit = touched_idp_groups.iter().any(|(id, name)| {
                    (id.is_some()
                        && (id.as_deref() == kept_id.as_deref()
                            || GroupRef::Id(id.clone().unwrap_or_default()) == g.idp_group))
                        || name
                            .as_ref()
                            .is_some_and(|n| GroupRef::Name(n.clone()) == g.idp_group)
                });
                if hit && !refs.contains(&g.idp_group) {
                    refs.push(g.idp_group.clone());
                }
            }
        }
        let reread = if refs.is_empty() {
            Vec::new()
        } else {
            okta.read_groups(&refs).await?
        };
        for (r, g) in &reread {
            if let GroupRead::Found(g) = g {
                let before = kept_idp
                    .groups
                    .get(&g.id)
                    .map(|(_, m)| m.len())
                    .unwrap_or(0);
                if g.members.is_empty() && before > 0 {
                    anyhow::bail!(
                        "okta: the mapped group {r} reads empty after {before} members at the last pass; refusing to act on it (a service app without an admin role gets exactly this)"
                    );
                }
            }
        }
        let mut groups = kept_groups(&kept_idp, &self.mappings);
        for (r, g) in reread {
            match groups.iter_mut().find(|(kr, _)| *kr == r) {
                Some(slot) => slot.1 = g,
                None => groups.push((r, g)),
            }
        }
        let listed: BTreeSet<Email> = groups
            .iter()
            .filter_map(|(_, g)| match g {
                GroupRead::Found(g) => Some(g.members.iter().map(|m| m.key.clone())),
                GroupRead::Unresolved { .. } => None,
            })
            .flatten()
            .collect();

        // The Segment side, per workspace.
        let mut touched_emails: BTreeSet<Email> = touched_logins.clone();
        let mut touched_groups: BTreeSet<(String, String)> = BTreeSet::new(); // (workspace, mirror name)
        let mut merged_all = Vec::new();
        for ((ws, client), kept) in self.clients.iter().zip(kept) {
            let mut snap = kept.snapshot.clone();
            // The kept snapshot's ids tell the events whose type does not name their
            // subject (a "Policy Created" on a user or a group).
            let known_users: std::collections::HashSet<String> =
                snap.users.iter().map(|u| u.id.clone()).collect();
            let known_groups: std::collections::HashSet<String> =
                snap.groups.iter().map(|g| g.id.clone()).collect();
            let audit = client
                .audit_events_knowing(since, &known_users, &known_groups)
                .await?;
            let ws_id = snap.id.clone();
            // Members now (one cheap list), then the touched users and groups in full.
            let members = client.list_users().await?;
            let by_id: BTreeMap<&str, &Email> =
                members.iter().map(|(id, e)| (id.as_str(), e)).collect();
            let mut user_ids: BTreeSet<String> = BTreeSet::new();
            let mut group_ids: BTreeSet<String> = BTreeSet::new();
            for e in &audit {
                match e.resource_type.as_str() {
                    "user" => {
                        user_ids.insert(e.resource_id.clone());
                    }
                    "user_group" => {
                        group_ids.insert(e.resource_id.clone());
                    }
                    _ => {}
                }
            }
            for (id, email) in &members {
                let known = snap.users.iter().any(|u| &u.id == id);
                if !known || touched_logins.contains(email) {
                    user_ids.insert(id.clone());
                }
            }
            let mapping = self.mappings.workspaces.get(&ws.name);
            for (r, g) in &groups {
                let touched = refs.contains(r);
                if !touched {
                    continue;
                }
                let mirror = mapping
                    .and_then(|m| m.groups.iter().find(|x| &x.idp_group == r))
                    .and_then(|x| x.segment_group.clone())
                    .or_else(|| match g {
                        GroupRead::Found(g) => Some(g.name.clone()),
                        GroupRead::Unresolved { .. } => None,
                    });
                if let Some(m) = mirror {
                    if let Some(sg) = snap.groups.iter().find(|sg| sg.name == m) {
                        group_ids.insert(sg.id.clone());
                    }
                    touched_groups.insert((ws.name.clone(), m));
                }
            }
            let mut fresh_users: BTreeMap<String, Option<SegmentUser>> = BTreeMap::new();
            for id in &user_ids {
                fresh_users.insert(id.clone(), client.read_user(id, &ws_id).await?);
            }
            let mut fresh_groups: BTreeMap<String, Option<SegmentGroup>> = BTreeMap::new();
            for id in &group_ids {
                fresh_groups.insert(id.clone(), client.read_group(id, &ws_id).await?);
            }

            // Merge: membership of the workspace from the fresh list; touched users and
            // groups from their fresh reads; everything else as the last pass kept it.
            let kept_users: BTreeMap<String, SegmentUser> =
                snap.users.drain(..).map(|u| (u.id.clone(), u)).collect();
            for (id, email) in &members {
                let user = match fresh_users.get(id) {
                    Some(Some(u)) => Some(u.clone()),
                    Some(None) => None,
                    None => kept_users.get(id).cloned().or(Some(SegmentUser {
                        id: id.clone(),
                        email: (*email).clone(),
                        name: String::new(),
                        direct: vec![],
                    })),
                };
                if let Some(u) = user {
                    snap.users.push(u);
                }
            }
            // Segment drops every membership of a user removed from the workspace.
            let present: BTreeSet<&Email> = members.iter().map(|(_, e)| e).collect();
            for g in snap.groups.iter_mut() {
                g.members.retain(|m| present.contains(m));
            }
            for (id, g) in &fresh_groups {
                let old_name = snap
                    .groups
                    .iter()
                    .find(|x| &x.id == id)
                    .map(|x| x.name.clone());
                snap.groups.retain(|x| &x.id != id);
                if let Some(name) = old_name {
                    touched_groups.insert((ws.name.clone(), name));
                }
                if let Some(g) = g {
                    touched_groups.insert((ws.name.clone(), g.name.clone()));
                    snap.groups.push(g.clone());
                }
            }
            for id in user_ids.iter() {
                if let Some(e) = by_id.get(id.as_str()) {
                    touched_emails.insert((*e).clone());
                } else if let Some(u) = kept_users.get(id) {
                    touched_emails.insert(u.email.clone()); // gone from the workspace
                }
            }
            snap.audit = audit;
            merged_all.push((ws.clone(), kept.at, kept.snapshot, snap));
        }

        // Who are the touched people in the IdP now? Their status may have changed even
        // where no group they are in was touched (a suspension, a deactivation).
        let wanted: Vec<Email> = merged_all
            .iter()
            .flat_map(|(_, _, _, s)| s.users.iter().map(|u| u.email.clone()))
            .filter(|e| touched_emails.contains(e))
            .chain(touched_logins.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let fresh = if wanted.is_empty() {
            Default::default()
        } else {
            okta.lookup_users(&wanted).await?
        };
        for (_, g) in groups.iter_mut() {
            if let GroupRead::Found(g) = g {
                for m in g.members.iter_mut() {
                    if let Some(crate::model::UserLookup::Found(u)) = fresh.get(&m.key) {
                        m.status = u.status.clone();
                    }
                }
            }
        }
        let lookups: BTreeMap<Email, crate::model::UserLookup> = fresh
            .into_iter()
            .filter(|(k, _)| !listed.contains(k))
            .collect();

        let membership = IdpMembership::from_read(&groups);
        let observed = self
            .observed_events(Some(&kept_idp), &membership, now)
            .await?;
        let idp = IdpSnapshot {
            groups,
            lookups,
            events: history::merge_events(&events, &observed),
        };

        let empty = Default::default();
        let in_scope = |f: &Finding| {
            // Findings that span workspaces are left to full passes.
            !matches!(
                f.kind,
                crate::reconcile::Kind::MappingUnresolved
                    | crate::reconcile::Kind::WorkspaceInconsistent
            ) && (f.user.as_ref().is_some_and(|u| touched_emails.contains(u))
                || f.group
                    .as_ref()
                    .is_some_and(|g| touched_groups.contains(&(f.workspace.clone(), g.clone()))))
        };
        let mut findings: Vec<Finding> = Vec::new();
        let mut changes = Vec::new();
        for (ws, kept_at, before, snap) in &merged_all {
            let mapping = self.mappings.workspaces.get(&ws.name).unwrap_or(&empty);
            let all = evaluate(ws, mapping, snap, &idp, &self.settings, now);
            findings.extend(all.into_iter().filter(|f| in_scope(f)));
            let actors = history::Actors {
                self_actor: ws.self_actor.as_deref(),
                automation: &ws.automation_actors,
                scim: &ws.scim_actors,
            };
            changes.extend(history::access_changes(
                before,
                snap,
                *kept_at,
                &idp.events,
                &BTreeMap::new(),
                &actors,
                now,
            ));
        }
        let ids: Vec<String> = findings.iter().map(|f| f.id.clone()).collect();
        let first_seen = self.store.findings_first_seen(&ids).await?;
        history::apply_first_seen(&mut findings, &first_seen, now);
        let transitions = self
            .store
            .findings_record_targeted(&findings, &in_scope, now)
            .await?;
        self.after_pass(&transitions, &changes).await?;
        for (ws, _, _, snap) in merged_all {
            self.store
                .snapshot_put(
                    &segment_key(&ws.name),
                    &serde_json::to_value(Kept {
                        at: now,
                        snapshot: snap,
                    })?,
                )
                .await?;
        }
        self.store
            .snapshot_put(IDP_MEMBERSHIP, &serde_json::to_value(&membership)?)
            .await?;
        self.store
            .snapshot_put(IDP_OBSERVED, &serde_json::to_value(&observed)?)
            .await?;
        self.store
            .snapshot_put(LAST_PASS, &serde_json::to_value(now)?)
            .await?;
        self.publish_findings(now, None).await?;
        Ok(Some(TargetedCounts {
            touched_users: touched_emails.len(),
            touched_groups: touched_groups.len(),
            findings_updated: findings.len(),
            opened: transitions.opened.len(),
            changes: changes.len(),
        }))
    }
}

/// The kept IdP membership as group reads, keyed by the mappings' references.
fn kept_groups(
    kept: &IdpMembership,
    mappings: &crate::mapping::MappingSet,
) -> Vec<(GroupRef, GroupRead)> {
    let mut out: Vec<(GroupRef, GroupRead)> = Vec::new();
    for m in mappings.workspaces.values() {
        for g in &m.groups {
            if out.iter().any(|(r, _)| *r == g.idp_group) {
                continue;
            }
            let found = kept
                .groups
                .iter()
                .find(|(id, (name, _))| match &g.idp_group {
                    GroupRef::Name(n) => n == name,
                    GroupRef::Id(i) => i == *id,
                });
            let read = match found {
                Some((id, (name, members))) => GroupRead::Found(IdpGroup {
                    id: id.clone(),
                    name: name.clone(),
                    members: members
                        .iter()
                        .map(|(key, m)| IdpUser {
                            id: m.id.clone(),
                            login: key.to_string(),
                            key: key.clone(),
                            status: m.status.clone(),
                        })
                        .collect(),
                }),
                None => GroupRead::Unresolved {
                    reason: "not resolved at the last full pass".into(),
                },
            };
            out.push((g.idp_group.clone(), read));
        }
    }
    out
}
