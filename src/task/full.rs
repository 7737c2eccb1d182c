//! The full pass: read the IdP and every workspace (all or nothing for the IdP, each
//! workspace on its own), evaluate through the same pure function as `check`
//! ([`crate::reconcile::evaluate_pass`]), log access changes, enforce, record, keep the
//! snapshots for the next targeted pass and the change log, publish.
//!
//! Contract:
//! - A pass that could not read the IdP changes nothing.
//! - A workspace that could not be read (or whose Entra provisioning is quarantined) keeps
//!   its findings; the others are recorded, and the pass still fails, naming it.
//! - A consistency set with an unread workspace is not checked: its open
//!   `workspace_inconsistent` findings are kept as they are, not resolved.
//! - Enforcement runs only after a pass that read everything.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::status::{FullCounts, SourceFailures, WorkspaceFailure};
use super::Reconciler;
use crate::config::WorkspaceConfig;
use crate::idp::Idp;
use crate::model::WorkspaceSnapshot;
use crate::output::WorkspaceSummary;
use crate::reconcile::history::{self, IdpMembership};
use crate::reconcile::{read, sort, Finding, Kind};
use crate::segment::SegmentClient;

pub(super) const IDP_MEMBERSHIP: &str = "idp.membership";
pub(super) const IDP_OBSERVED: &str = "idp.observed_events";
/// Entra ID: the group ids the delta poller watches (mapped and nested), from the last
/// full pass.
pub(super) const GRAPH_SCOPE: &str = "graph.delta_scope";
/// When the last successful pass (full or targeted) ran.
pub(super) const LAST_PASS: &str = "reconciler.last_pass";

/// What a full pass learned besides its counts, for the activation.
#[derive(Debug, Default)]
pub(super) struct FullPass {
    pub failures: SourceFailures,
    /// The pass recorded its findings.
    pub recorded: bool,
    /// Enforcement wrote to Segment in this pass.
    pub wrote: bool,
    /// Critical findings enforcement reverted in this pass.
    pub reverted: BTreeSet<String>,
}

impl Reconciler {
    /// Reads everything, evaluates, records. Returns the counts; `pass` learns what could
    /// not be read and what enforcement did.
    pub(super) async fn full_pass(
        &self,
        now: DateTime<Utc>,
        pass: &mut FullPass,
    ) -> anyhow::Result<FullCounts> {
        let selected: Vec<(&WorkspaceConfig, &SegmentClient)> =
            self.clients.iter().map(|(w, c)| (w, c)).collect();
        // The IdP side as the last pass read it: what changed since, and the groups that
        // must not read empty without a removal in the log.
        let prev_membership: Option<IdpMembership> = self
            .store
            .snapshot_get(IDP_MEMBERSHIP)
            .await?
            .and_then(|v| serde_json::from_value(v).ok());
        let reading = match read::read_all_since(
            &self.idp,
            &selected,
            &self.mappings,
            &self.settings,
            prev_membership.as_ref(),
            now,
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                pass.failures.idp = Some(crate::error::chain(&e));
                return Err(e.into());
            }
        };
        let membership = IdpMembership::from_read(&reading.idp.groups);
        let observed = self
            .observed_events(prev_membership.as_ref(), &membership, now)
            .await?;
        let nested = reading.nested;
        let jobs = self.provisioning_jobs().await;
        let mut idp = reading.idp;
        idp.events = history::merge_events(&idp.events, &observed);

        // The workspaces that were read (and are not quarantined).
        let mut failed: Vec<WorkspaceFailure> = Vec::new();
        let mut snapshots: Vec<(&WorkspaceConfig, WorkspaceSnapshot)> = Vec::new();
        for ((ws, _), (_, snap)) in self.clients.iter().zip(reading.workspaces) {
            let unavailable = jobs.get(&ws.name).and_then(|j| j.unavailable.clone());
            match (snap, unavailable) {
                (Ok(_), Some(why)) => {
                    pass.failures
                        .workspaces
                        .insert(ws.name.clone(), why.clone());
                    failed.push(WorkspaceFailure {
                        workspace: ws.name.clone(),
                        error: why,
                    });
                }
                (Ok(s), None) => snapshots.push((ws, s)),
                (Err(e), _) => {
                    tracing::error!(workspace = %ws.name, error = %crate::error::chain(&e), "Workspace read failed; its findings stay as they were.");
                    pass.failures
                        .workspaces
                        .insert(ws.name.clone(), crate::error::chain(&e));
                    failed.push(WorkspaceFailure {
                        workspace: ws.name.clone(),
                        error: e.to_string(),
                    });
                }
            }
        }

        // The pure core over what was read: the same function `check` runs.
        let empty = Default::default();
        let mapping_of = |name: &str| self.mappings.workspaces.get(name).unwrap_or(&empty);
        let inputs: Vec<_> = snapshots
            .iter()
            .map(|(ws, snap)| (*ws, mapping_of(&ws.name), snap))
            .collect();
        // The daemon's memory: an audit event explains a finding only if it came before
        // the daemon first saw the state (a finding seen for the first time: now).
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
            &nested,
            &self.settings,
            Some(&first_seen),
            now,
        );
        let mut findings: Vec<Finding> = evaluated
            .workspaces
            .iter()
            .flat_map(|(_, e)| e.findings.iter().cloned())
            .collect();
        findings.extend(evaluated.consistency);
        let summaries: Vec<WorkspaceSummary> = snapshots
            .iter()
            .map(|(ws, snap)| WorkspaceSummary {
                name: ws.name.clone(),
                users: snap.users.len(),
                groups: snap.groups.len(),
            })
            .collect();

        // The change log: each snapshot against the last one kept.
        let mut changes = Vec::new();
        for (ws, snap) in &snapshots {
            let Some(prev) = self.store.snapshot_get(&segment_key(&ws.name)).await? else {
                continue;
            };
            let Ok(prev) = serde_json::from_value::<Kept>(prev) else {
                continue;
            };
            let mirror_to_idp: BTreeMap<String, String> = mapping_of(&ws.name)
                .groups
                .iter()
                .filter_map(|g| {
                    g.segment_group
                        .clone()
                        .map(|m| (m, g.idp_group.text().to_string()))
                })
                .collect();
            let actors = history::Actors {
                self_actor: ws.self_actor.as_deref(),
                automation: &ws.automation_actors,
                scim: &ws.scim_actors,
            };
            changes.extend(history::access_changes(
                &prev.snapshot,
                snap,
                prev.at,
                &idp.events,
                &mirror_to_idp,
                &actors,
                now,
            ));
        }

        // A consistency set with a workspace that could not be read keeps its findings.
        let read_names: BTreeSet<&str> = snapshots.iter().map(|(w, _)| w.name.as_str()).collect();
        let unchecked: BTreeSet<&str> = self
            .settings
            .policy
            .consistent
            .iter()
            .filter(|set| set.iter().any(|w| !read_names.contains(w.as_str())))
            .filter_map(|set| set.first().map(String::as_str))
            .collect();
        if !unchecked.is_empty() {
            for kept in self.store.findings_open().await? {
                if kept.finding.kind == Kind::WorkspaceInconsistent
                    && unchecked.contains(kept.finding.workspace.as_str())
                {
                    findings.push(kept.finding);
                }
            }
        }

        // Enforcement, only after a pass that read everything.
        let ok_workspaces: Vec<String> = snapshots.iter().map(|(w, _)| w.name.clone()).collect();
        let mut read: Vec<(String, WorkspaceSnapshot, crate::reconcile::Evaluation)> = snapshots
            .into_iter()
            .zip(evaluated.workspaces)
            .map(|((ws, snap), (_, evaluation))| (ws.name.clone(), snap, evaluation))
            .collect();
        if failed.is_empty() {
            let done = self
                .enforce(&mut read, &mut findings, &mut changes, now)
                .await;
            pass.wrote = done.wrote;
            pass.reverted = done.reverted;
        }
        for (name, snap, _) in &read {
            self.store
                .snapshot_put(
                    &segment_key(name),
                    &serde_json::to_value(KeptRef {
                        at: now,
                        snapshot: snap,
                    })?,
                )
                .await?;
        }

        let ids: Vec<String> = findings.iter().map(|f| f.id.clone()).collect();
        let first_seen = self.store.findings_first_seen(&ids).await?;
        history::apply_first_seen(&mut findings, &first_seen, now);
        self.attach_evidence(&mut findings, &idp, &jobs).await?;
        sort(&mut findings);
        let transitions = self
            .store
            .findings_record_full(&ok_workspaces, &findings, now)
            .await?;
        pass.recorded = true;
        self.after_pass(&transitions, &changes).await?;
        self.chain_upkeep(now).await;
        self.store
            .snapshot_put(IDP_MEMBERSHIP, &serde_json::to_value(&membership)?)
            .await?;
        self.store
            .snapshot_put(IDP_OBSERVED, &serde_json::to_value(&observed)?)
            .await?;
        if matches!(self.idp, Idp::Azure(_)) {
            let scope = crate::triggers::graph::scope_of(
                membership
                    .groups
                    .keys()
                    .chain(nested.values().flatten().map(|n| &n.id)),
            );
            if *self.graph_scope.borrow() != scope {
                self.store
                    .snapshot_put(GRAPH_SCOPE, &serde_json::to_value(&scope)?)
                    .await?;
                self.graph_scope.send_replace(scope);
            }
        }
        if failed.is_empty() {
            self.store
                .snapshot_put(LAST_PASS, &serde_json::to_value(now)?)
                .await?;
            // Everything was read: the rolling refresh's window starts over.
            let views: Vec<(&str, &WorkspaceSnapshot)> =
                read.iter().map(|(n, s, _)| (n.as_str(), s)).collect();
            // A full pass replaces every part of the kept state: nothing to read first.
            self.finish_refresh(
                now,
                super::tick::RefreshState::default(),
                super::tick::Done::Full,
                &membership,
                &views,
            )
            .await?;
        }
        let report = self.publish_findings(now, Some(summaries)).await?;
        if failed.is_empty() {
            self.metrics.set_last_success(now);
            if let Ok(mut r) = self.server.ready.write() {
                r.last_full_success = Some(now);
            }
        }
        if !failed.is_empty() {
            anyhow::bail!(
                "{} of {} workspaces could not be read: {}",
                failed.len(),
                self.clients.len(),
                serde_json::to_string(&failed).unwrap_or_default()
            );
        }
        Ok(FullCounts {
            findings: report.findings.len(),
            opened: transitions.opened.len(),
            resolved: transitions.resolved.len(),
            changes: changes.len(),
            failed_workspaces: failed,
            verified: None,
        })
    }

    /// The IdP changes the daemon has seen in its own snapshots over the look-back: those
    /// kept from earlier passes plus what changed between `prev` and `now_read`.
    pub(super) async fn observed_events(
        &self,
        prev: Option<&IdpMembership>,
        now_read: &IdpMembership,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<crate::model::IdpEvent>> {
        let mut observed: Vec<crate::model::IdpEvent> = self
            .store
            .snapshot_get(IDP_OBSERVED)
            .await?
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        if let Some(prev) = prev {
            observed.extend(history::observe_idp_changes(prev, now_read, now));
        }
        observed.retain(|e| e.published >= now - self.settings.event_lookback);
        Ok(observed)
    }
}

/// The store key of a workspace's kept snapshot.
pub(super) fn segment_key(workspace: &str) -> String {
    format!("segment.{workspace}")
}

/// [`Kept`] as written, without copying the snapshot.
#[derive(serde::Serialize)]
pub(super) struct KeptRef<'a> {
    pub at: DateTime<Utc>,
    pub snapshot: &'a WorkspaceSnapshot,
}

/// A workspace snapshot kept for the next change-log comparison and targeted pass.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Kept {
    pub at: DateTime<Utc>,
    pub snapshot: WorkspaceSnapshot,
}
