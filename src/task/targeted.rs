//! Targeted passes and ticks: re-read only what the events since the last pass touch (the
//! Okta hook, the System Log or an audit-trail poller woke it) and, in a periodic tick, what
//! the rolling-refresh plan names, on both sides, and update the findings of those subjects
//! alone.
//!
//! Contract:
//! - What was touched comes from what this activation reads back — the System Log and the
//!   audit trail since the last successful pass (minus a minute of slack for late
//!   persistence) — never from a hook body.
//! - The touched IdP groups, users, Segment groups and users — and, in a periodic tick,
//!   the subjects the refresh plan names (`tick.rs`) — are read afresh and merged into the
//!   snapshots the last pass kept; the pure core evaluates the merged state (the same
//!   `evaluate_pass` as a full pass), and only findings about the subjects read are kept.
//!   The kept audit trail is merged with what came since, so attribution survives ticks.
//! - It adds, updates and resolves the findings of the subjects it read (touched users,
//!   the members of re-read IdP groups before and after, touched groups with their
//!   memberships; in a tick also the workspace-wide kinds); it never resolves any other.
//! - A touched mapped group that reads empty after a non-empty snapshot, with no removal in
//!   the System Log, is read once more and then fails the pass (Okta's silent `200 []`).
//! - With nothing kept yet (no earlier full pass), or a last pass older than the events
//!   reach back (`idp.event_lookback`, at most 90 days), it declines and a full pass runs.
//! - A failure names its source (`SourceFailures`): the alert planner counts it.
//! - Okta only: it reads the System Log. Under Entra ID it always declines, so every
//!   event-woken activation (delta poller, `/hooks/graph`, audit trail) is a full pass.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::full::{segment_key, Kept, IDP_MEMBERSHIP, IDP_OBSERVED, LAST_PASS};
use super::refresh::FrontRequest;
use super::status::{SourceFailures, TargetedCounts};
use super::tick::{Done, Subjects};
use super::Reconciler;
use crate::idp::{IdentityProvider, Idp};
use crate::model::{
    Email, GroupRead, GroupRef, IdpGroup, IdpSnapshot, IdpUser, SegmentGroup, SegmentUser,
};
use crate::reconcile::history::{self, IdpMembership};
use crate::reconcile::read::suspect_empty_groups;
use crate::reconcile::Finding;

/// Slack for events persisted after the last pass read the logs.
const SLACK: chrono::Duration = chrono::Duration::seconds(60);

/// The longest gap since the last pass that events can cover: Okta keeps its System Log
/// and Segment its audit trail for 90 days. Older, a full pass runs.
const EVENT_RETENTION: chrono::Duration = chrono::Duration::days(90);

/// The finding kinds whose subject is a workspace: re-checked by every periodic tick from
/// what it reads anyway (the member list, the kept groups, the people they name).
fn workspace_kind(k: crate::reconcile::Kind) -> bool {
    use crate::reconcile::Kind;
    matches!(
        k,
        Kind::TooManyOwners
            | Kind::UnmappedGroup
            | Kind::MappingUnresolved
            | Kind::WorkspaceInconsistent
    )
}

/// What a targeted pass or a tick did, for the activation.
pub(super) struct Targeted {
    pub counts: TargetedCounts,
    /// The emails and (workspace, group name) pairs whose findings it re-evaluated, and
    /// whether workspace-level findings were in scope: the alert planner counts a clean
    /// read for exactly these.
    pub emails: BTreeSet<Email>,
    pub groups: BTreeSet<(String, String)>,
    pub workspace_kinds: bool,
}

impl Targeted {
    /// Whether `f`'s subject was read by this pass.
    pub fn covers(&self, f: &Finding) -> bool {
        use crate::reconcile::Kind;
        // Findings that span workspaces or the mappings: periodic ticks only.
        let spans = matches!(
            f.kind,
            Kind::MappingUnresolved | Kind::WorkspaceInconsistent
        );
        (self.workspace_kinds && workspace_kind(f.kind))
            || (!spans
                && (f.user.as_ref().is_some_and(|u| self.emails.contains(u))
                    || f.group
                        .as_ref()
                        .is_some_and(|g| self.groups.contains(&(f.workspace.clone(), g.clone())))))
    }
}

/// Records the failing source of a targeted pass (the alert planner counts it) and passes
/// the error on.
fn idp_failed<T, E: Into<anyhow::Error>>(
    failures: &mut SourceFailures,
    r: Result<T, E>,
) -> anyhow::Result<T> {
    r.map_err(|e| {
        let e = e.into();
        failures.idp = Some(crate::error::chain(e.as_ref()));
        e
    })
}

fn ws_failed<T, E: Into<anyhow::Error>>(
    failures: &mut SourceFailures,
    ws: &str,
    r: Result<T, E>,
) -> anyhow::Result<T> {
    r.map_err(|e| {
        let e = e.into();
        failures
            .workspaces
            .insert(ws.to_string(), crate::error::chain(e.as_ref()));
        e
    })
}

impl Reconciler {
    /// Runs a targeted pass; `Ok(None)` when it cannot (nothing kept yet, or kept too long
    /// ago for the event sources to cover the gap) and a full pass must run instead.
    /// `tick`: a periodic tick, which also reads the open findings' subjects and its share
    /// of the rolling refresh, and re-checks the workspace-level findings.
    pub(super) async fn targeted_pass(
        &self,
        now: DateTime<Utc>,
        tick: bool,
        failures: &mut SourceFailures,
    ) -> anyhow::Result<Option<Targeted>> {
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
        // The events must cover the gap since the last pass: the look-back the System Log
        // is read over, and what the sources keep.
        let reach = self.settings.event_lookback.min(EVENT_RETENTION);
        if now - last > reach - SLACK {
            tracing::info!(last_pass = %last, "The last pass is older than the event sources reach back; a full pass runs instead.");
            return Ok(None);
        }
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

        // A tick's own share: open findings' subjects and the rolling refresh.
        let tick_plan = if tick {
            let views: Vec<(&str, &crate::model::WorkspaceSnapshot)> = self
                .clients
                .iter()
                .zip(&kept)
                .map(|((ws, _), k)| (ws.name.as_str(), &k.snapshot))
                .collect();
            Some(self.plan_tick(now, &kept_idp, &views).await?)
        } else {
            None
        };
        let empty_plan = Subjects::default();
        let planned = tick_plan.as_ref().map_or(&empty_plan, |t| &t.reads);
        let mut read = Subjects::default();
        let mut front: Vec<FrontRequest> = Vec::new();

        // What changed, as the logs tell it.
        let events = idp_failed(
            failures,
            okta.events_since(now - self.settings.event_lookback).await,
        )?;
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

        // The IdP side: re-read the touched and planned mapped groups, look up the
        // touched users.
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
                let hit = hit || planned.idp_groups.contains(g.idp_group.text());
                if hit && !refs.contains(&g.idp_group) {
                    refs.push(g.idp_group.clone());
                }
            }
        }
        for r in &refs {
            read.idp_groups.insert(r.text().to_string());
        }
        let reread = if refs.is_empty() {
            Vec::new()
        } else {
            idp_failed(failures, okta.read_groups(&refs).await)?
        };
        // The same guard as a full pass: a group that reads empty after members, with no
        // removal in the System Log, is read once more and then refused (Okta's silent
        // `200 []`); a group emptied on purpose has its removals in the log.
        let mut reread = reread;
        let no_nesting = Default::default();
        let suspects = suspect_empty_groups(&reread, &no_nesting, &events, Some(&kept_idp), &[]);
        if !suspects.is_empty() {
            let again: Vec<GroupRef> = suspects.iter().map(|s| s.group.clone()).collect();
            tracing::warn!(groups = ?again.iter().map(GroupRef::to_string).collect::<Vec<_>>(), "Mapped groups read empty where members were expected; reading them again.");
            for (r, g) in idp_failed(failures, okta.read_groups(&again).await)? {
                if let Some(slot) = reread.iter_mut().find(|(x, _)| *x == r) {
                    slot.1 = g;
                }
            }
            let still = suspect_empty_groups(&reread, &no_nesting, &events, Some(&kept_idp), &[]);
            if let Some(s) = still.into_iter().next() {
                return idp_failed(
                    failures,
                    Err(crate::reconcile::read::PassError::EmptyGroup {
                        idp: "okta",
                        group: s.group.to_string(),
                        had: s.had,
                    }),
                );
            }
        }
        // The members of a re-read group, before and after: joiners and leavers.
        let mut group_members: BTreeSet<Email> = BTreeSet::new();
        for (r, g) in &reread {
            if let GroupRead::Found(g) = g {
                group_members.extend(g.members.iter().map(|m| m.key.clone()));
                if let Some((_, before)) = kept_idp.groups.get(&g.id) {
                    group_members.extend(before.keys().cloned());
                }
            } else if let Some((_, (_, before))) = kept_idp.groups.iter().find(|(id, (name, _))| {
                GroupRef::Name((*name).clone()) == *r || GroupRef::Id((*id).clone()) == *r
            }) {
                group_members.extend(before.keys().cloned());
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
        touched_emails.extend(group_members.iter().cloned());
        touched_emails.extend(planned.idp_users.iter().cloned());
        let mut touched_groups: BTreeSet<(String, String)> = BTreeSet::new(); // (workspace, mirror name)
        let mut merged_all = Vec::new();
        failures.unread = self.clients.iter().map(|(w, _)| w.name.clone()).collect();
        for ((ws, client), kept) in self.clients.iter().zip(kept) {
            let mut snap = kept.snapshot.clone();
            // The kept snapshot's ids tell the events whose type does not name their
            // subject (a "Policy Created" on a user or a group).
            let known_users: std::collections::HashSet<String> =
                snap.users.iter().map(|u| u.id.clone()).collect();
            let known_groups: std::collections::HashSet<String> =
                snap.groups.iter().map(|g| g.id.clone()).collect();
            let audit = ws_failed(
                failures,
                &ws.name,
                client
                    .audit_events_knowing(since, &known_users, &known_groups)
                    .await,
            )?;
            let ws_id = snap.id.clone();
            // Members now (one cheap list), then the touched users and groups in full.
            let members = ws_failed(failures, &ws.name, client.list_users().await)?;
            let by_id: BTreeMap<&str, &Email> =
                members.iter().map(|(id, e)| (id.as_str(), e)).collect();
            let mut user_ids: BTreeSet<String> = BTreeSet::new();
            let mut group_ids: BTreeSet<String> = BTreeSet::new();
            let mut unknown_iam: Option<&crate::model::AuditEvent> = None;
            for e in &audit {
                match e.resource_type.as_str() {
                    "user" => {
                        user_ids.insert(e.resource_id.clone());
                    }
                    "user_group" => {
                        group_ids.insert(e.resource_id.clone());
                    }
                    "iam" => {
                        // Tied to no known id: try the name (an email or a group name).
                        let name = e.resource_name.trim();
                        if let Some((id, _)) = members
                            .iter()
                            .find(|(_, m)| m.as_str().eq_ignore_ascii_case(name))
                        {
                            user_ids.insert(id.clone());
                        } else if let Some(g) = snap.groups.iter().find(|g| g.name == name) {
                            group_ids.insert(g.id.clone());
                        } else if unknown_iam.is_none_or(|u| e.at > u.at) {
                            unknown_iam = Some(e);
                        }
                    }
                    _ => {}
                }
            }
            if let Some(e) = unknown_iam {
                tracing::info!(workspace = %ws.name, kind = %e.kind, "An IAM audit event names no person or group scimwatch knows.");
                front.push(FrontRequest {
                    workspace: ws.name.clone(),
                    since: e.at,
                });
            }
            for (id, email) in &members {
                let known = snap.users.iter().any(|u| &u.id == id);
                if !known || touched_logins.contains(email) {
                    user_ids.insert(id.clone());
                }
            }
            if let Some(ids) = planned.users.get(&ws.name) {
                // A planned user no longer in the list left the workspace: nothing to read.
                user_ids.extend(
                    ids.iter()
                        .filter(|id| by_id.contains_key(id.as_str()))
                        .cloned(),
                );
            }
            if let Some(ids) = planned.groups.get(&ws.name) {
                group_ids.extend(ids.iter().cloned());
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
            if planned.catalogs.contains(&ws.name) {
                let needs = mapping
                    .map(crate::reconcile::read::catalog_needs)
                    .unwrap_or_default();
                let (_, catalog) = ws_failed(failures, &ws.name, client.read_catalog(needs).await)?;
                snap.catalog = catalog;
                read.catalogs.insert(ws.name.clone());
            }
            let mut fresh_users: BTreeMap<String, Option<SegmentUser>> = BTreeMap::new();
            for id in &user_ids {
                let u = ws_failed(failures, &ws.name, client.read_user(id, &ws_id).await)?;
                fresh_users.insert(id.clone(), u);
            }
            let mut fresh_groups: BTreeMap<String, Option<SegmentGroup>> = BTreeMap::new();
            for id in &group_ids {
                let g = ws_failed(failures, &ws.name, client.read_group(id, &ws_id).await)?;
                fresh_groups.insert(id.clone(), g);
            }
            read.users
                .entry(ws.name.clone())
                .or_default()
                .extend(user_ids.iter().cloned());
            read.groups
                .entry(ws.name.clone())
                .or_default()
                .extend(group_ids.iter().cloned());

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
            // A user who left the workspace since the last pass: their findings are
            // re-evaluated (and resolve) now.
            for (id, u) in &kept_users {
                if !by_id.contains_key(id.as_str()) {
                    touched_emails.insert(u.email.clone());
                }
            }
            // The audit trail the attribution reads: what was kept within the look-back,
            // plus what came since (an event read twice counts once).
            let horizon = now - self.settings.event_lookback;
            let mut trail: Vec<crate::model::AuditEvent> = kept
                .snapshot
                .audit
                .iter()
                .filter(|e| e.at >= horizon)
                .cloned()
                .collect();
            let ids: BTreeSet<String> = trail.iter().map(|e| e.id.clone()).collect();
            trail.extend(audit.into_iter().filter(|e| !ids.contains(&e.id)));
            snap.audit = trail;
            failures.unread.remove(&ws.name);
            merged_all.push((ws.clone(), kept.at, kept.snapshot, snap));
        }

        // Who are the touched people in the IdP now? Their status may have changed even
        // where no group they are in was touched (a suspension, a deactivation).
        let wanted: Vec<Email> = merged_all
            .iter()
            .flat_map(|(_, _, _, s)| s.users.iter().map(|u| u.email.clone()))
            // A mapped group's members carry their status in its read (kept or fresh;
            // an event about one of them is in touched_logins): only people no mapped
            // group lists need a lookup.
            .filter(|e| touched_emails.contains(e) && !listed.contains(e))
            .chain(touched_logins.iter().cloned())
            .chain(planned.idp_users.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let fresh = if wanted.is_empty() {
            Default::default()
        } else {
            idp_failed(failures, okta.lookup_users(&wanted).await)?
        };
        for e in &wanted {
            if !listed.contains(e) {
                read.idp_users.insert(e.clone());
            }
        }
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

        let scope = Targeted {
            counts: TargetedCounts::default(),
            emails: touched_emails,
            groups: touched_groups,
            workspace_kinds: tick,
        };
        let in_scope = |f: &Finding| scope.covers(f);
        // The same evaluation as a full pass and `check`, over the merged state.
        let empty = Default::default();
        let inputs: Vec<_> = merged_all
            .iter()
            .map(|(ws, _, _, snap)| {
                (
                    ws,
                    self.mappings.workspaces.get(&ws.name).unwrap_or(&empty),
                    snap,
                )
            })
            .collect();
        let first_seen: crate::reconcile::FirstSeen = self
            .store
            .findings_open()
            .await?
            .into_iter()
            .map(|s| (s.finding.id, s.first_seen))
            .collect();
        let evaluated = crate::reconcile::evaluate_pass(
            &inputs,
            &idp,
            &Default::default(),
            &self.settings,
            Some(&first_seen),
            now,
        );
        let mut findings: Vec<Finding> = evaluated
            .workspaces
            .into_iter()
            .flat_map(|(_, e)| e.findings)
            .chain(evaluated.consistency)
            .filter(|f| in_scope(f))
            .collect();
        let mut changes = Vec::new();
        for (ws, kept_at, before, snap) in &merged_all {
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
        self.chain_upkeep_if(!changes.is_empty(), now).await;
        for (ws, _, _, snap) in &merged_all {
            self.store
                .snapshot_put(
                    &segment_key(&ws.name),
                    &serde_json::to_value(super::full::KeptRef {
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
        let views: Vec<(&str, &crate::model::WorkspaceSnapshot)> = merged_all
            .iter()
            .map(|(ws, _, _, snap)| (ws.name.as_str(), snap))
            .collect();
        let (state, plan) = match &tick_plan {
            Some(t) => (t.state.clone(), Some(&t.plan)),
            None => (self.refresh_state().await?, None),
        };
        self.finish_refresh(
            now,
            state,
            Done::Partial {
                plan,
                read: &read,
                front,
            },
            &membership,
            &views,
        )
        .await?;
        self.publish_findings(now, None).await?;
        if tick {
            // A tick read every source (the logs, each workspace's members): the daemon is
            // keeping up.
            self.metrics.set_last_success(now);
            if let Ok(mut r) = self.server.ready.write() {
                r.last_full_success = Some(now);
            }
        }
        let counts = TargetedCounts {
            touched_users: scope.emails.len(),
            touched_groups: scope.groups.len(),
            findings_updated: findings.len(),
            opened: transitions.opened.len(),
            changes: changes.len(),
            subjects_read: read.len(),
        };
        Ok(Some(Targeted { counts, ..scope }))
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
