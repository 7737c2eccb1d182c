//! `[enforce] mode` in the daemon (issue 7), run by a full pass that read everything,
//! between evaluating and recording.
//!
//! - `plan`: each workspace's plan is kept for `/status` (`enforce`) and the metrics.
//! - `apply`: each workspace's plan is written (`enforce::apply`), unless it is over
//!   `enforce.max_changes`: then nothing is written and an `enforce_blocked` finding
//!   carries the plan and the reason; a change held by the last-Owner guard raises it too.
//!   What was written:
//!   - is recorded in the change log, one record per change, actor `scimwatch`, with the
//!     mapping (or exception) that asked for it; the snapshot kept for the next
//!     comparison is patched so the observed change is not logged a second time;
//!   - drops the findings it fixed when they are below critical; a critical one stays,
//!     its message saying "reverted by scimwatch at T" (someone escalated privileges and
//!     may have used them), so it pages — and the pass that follows at once (the
//!     verifying re-read) resolves it.
//!
//! Failed writes change nothing here: their findings page as usual.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::Reconciler;
use crate::config::EnforceMode;
use crate::enforce::{self, apply, Options, WorkspacePlan};
use crate::model::WorkspaceSnapshot;
use crate::reconcile::finding::{finding_id, format_time, Subject};
use crate::reconcile::{Evaluation, Finding, Kind, Severity, State};
use crate::store::ChangeRecord;

/// What enforcement did in one pass.
#[derive(Debug, Default)]
pub(super) struct Enforced {
    /// Something was written: the activation re-reads at once to verify.
    pub wrote: bool,
    /// Critical findings scimwatch reverted (they page, then resolve on the re-read).
    pub reverted: BTreeSet<String>,
}

impl Reconciler {
    /// Plans (and in `apply` mode writes) every workspace of a pass that read everything.
    /// Adjusts `findings` and appends to `changes` as the module says.
    pub(super) async fn enforce(
        &self,
        read: &mut [(String, WorkspaceSnapshot, Evaluation)],
        findings: &mut Vec<Finding>,
        changes: &mut Vec<ChangeRecord>,
        now: DateTime<Utc>,
    ) -> Enforced {
        let mut done = Enforced::default();
        let mode = self.config.enforce.mode;
        if mode == EnforceMode::Off {
            return done;
        }
        let opts = Options {
            max_changes: self.config.enforce.max_changes,
            revert_expired: self.config.enforce.revert_expired,
        };
        let mut plans: Vec<WorkspacePlan> = Vec::new();
        let mut applied: Vec<apply::Applied> = Vec::new();
        for (name, snap, evaluation) in read.iter_mut() {
            let plan = enforce::plan_workspace(&evaluation.desired, snap, opts, now);
            self.metrics.set_enforce_plan(name, plan.size);
            if mode == EnforceMode::Apply && !plan.is_empty() {
                applied.extend(
                    self.apply_plan(&plan, snap, findings, changes, &mut done, now)
                        .await,
                );
            }
            plans.push(plan);
        }
        if let Ok(mut s) = self.enforce_status.lock() {
            *s = Some(json!({
                "mode": match mode { EnforceMode::Plan => "plan", _ => "apply" },
                "at": format_time(&now),
                "plan": enforce::render_json(&plans),
                "applied": applied,
            }));
        }
        done
    }

    async fn apply_plan(
        &self,
        plan: &WorkspacePlan,
        snap: &mut WorkspaceSnapshot,
        findings: &mut Vec<Finding>,
        changes: &mut Vec<ChangeRecord>,
        done: &mut Enforced,
        now: DateTime<Utc>,
    ) -> Option<apply::Applied> {
        let ws = plan.workspace.as_str();
        if plan.over_limit() {
            tracing::warn!(
                workspace = ws,
                changes = plan.size,
                max = plan.max_changes,
                "Plan over enforce.max_changes: nothing applied."
            );
            findings.push(blocked(
                plan,
                &format!(
                    "the plan has {} changes, more than enforce.max_changes = {}; nothing was applied",
                    plan.size, plan.max_changes
                ),
                now,
            ));
            return None;
        }
        let client = self
            .clients
            .iter()
            .find(|(w, _)| w.name == ws)
            .map(|(_, c)| c)?;
        let applied = apply::apply_workspace(client, plan).await;
        if let Some(h) = plan.held().next() {
            findings.push(blocked(
                plan,
                &format!(
                    "{} {:?} was not changed: {}",
                    h.target,
                    h.name,
                    h.held.as_deref().unwrap_or("held")
                ),
                now,
            ));
        }
        for (c, w) in plan.changes.iter().zip(&applied.changes) {
            if w.result != "applied" {
                continue;
            }
            done.wrote = true;
            self.metrics.enforce_written(ws, c.target);
            // The change log: one record, scimwatch as the actor, the rule that asked.
            let subject = match c.target {
                "group" => format!("group {}", c.name),
                _ => c.name.clone(),
            };
            changes.push(ChangeRecord {
                id: 0,
                at: now,
                workspace: ws.to_string(),
                user: subject,
                before: describe(&c.remove, "none removed"),
                after: format!(
                    "{} (applied by scimwatch per {})",
                    describe(&c.add, "none added"),
                    c.source
                ),
                actor: Some("scimwatch".into()),
                attribution: Some("self".into()),
                idp_event: None,
                latency_ms: None,
                ticket: c.ticket.clone(),
                justification: c.justification.clone(),
            });
            // Keep the snapshot in step, so the next comparison does not log it again.
            patch(snap, c);
            // The findings this write fixed.
            let fixed: Vec<usize> = findings
                .iter()
                .enumerate()
                .filter(|(_, f)| f.workspace == ws && fixes(c, f))
                .map(|(i, _)| i)
                .collect();
            for i in fixed.into_iter().rev() {
                if findings[i].severity < Severity::Critical {
                    findings.remove(i);
                } else {
                    let f = &mut findings[i];
                    f.message = format!(
                        "Reverted by scimwatch at {}: {}",
                        format_time(&now),
                        f.message
                    );
                    done.reverted.insert(f.id.clone());
                }
            }
        }
        Some(applied)
    }
}

fn describe(lines: &[String], none: &str) -> String {
    if lines.is_empty() {
        none.to_string()
    } else {
        lines.join("; ")
    }
}

/// Whether writing `c` fixes finding `f`.
fn fixes(c: &enforce::Change, f: &Finding) -> bool {
    match c.target {
        "group" => {
            matches!(f.kind, Kind::GroupPermissionsDrift) && f.group.as_deref() == Some(&c.name)
        }
        _ => {
            matches!(f.kind, Kind::ExceptionExpired | Kind::DirectGrant)
                && f.user.as_ref().is_some_and(|u| u.as_str() == c.name)
        }
    }
}

/// Writes the replaced permissions into the kept snapshot.
fn patch(snap: &mut WorkspaceSnapshot, c: &enforce::Change) {
    let grants: Vec<crate::model::Grant> = c.permissions.iter().map(to_grant).collect();
    match c.target {
        "group" => {
            if let Some(g) = snap.groups.iter_mut().find(|g| g.id == c.id) {
                g.grants = grants;
            }
        }
        _ => {
            if let Some(u) = snap.users.iter_mut().find(|u| u.id == c.id) {
                u.direct = grants;
            }
        }
    }
}

fn to_grant(v: &crate::reconcile::finding::GrantView) -> crate::model::Grant {
    crate::model::Grant {
        role_id: v.role_id.clone(),
        role_name: v.role.clone(),
        resources: v
            .resources
            .iter()
            .map(|r| crate::model::Resource {
                kind: r.kind,
                id: r.id.clone(),
                labels: r.labels.clone().unwrap_or_default().into_iter().collect(),
            })
            .collect(),
    }
}

/// The `enforce_blocked` finding of a workspace (product.md): error, drift, carrying the
/// plan (as `plan --output json` prints it) and the reason.
fn blocked(plan: &WorkspacePlan, reason: &str, now: DateTime<Utc>) -> Finding {
    let ws = plan.workspace.clone();
    let subject = Subject::Workspace(ws.clone());
    Finding {
        id: finding_id(&ws, Kind::EnforceBlocked, &subject),
        kind: Kind::EnforceBlocked,
        state: State::Drift,
        severity: Severity::Error,
        workspace: ws.clone(),
        user: None,
        group: None,
        grant: None,
        since: now,
        deadline: None,
        attribution: None,
        reverted_by_scim: Some(false),
        nested_group: None,
        people_left_out: None,
        plan: Some(enforce::render_json(std::slice::from_ref(plan))),
        reason: Some(reason.to_string()),
        evidence: None,
        message: format!("scimwatch did not apply the plan for workspace {ws}: {reason}."),
        remedy: "Review it with `scimwatch plan`, then run `scimwatch apply` (a person may apply any size), or raise enforce.max_changes; for the last Owner, grant Workspace Owner to someone else first.".into(),
        extra: None,
        missing: None,
        mapping: None,
    }
}
