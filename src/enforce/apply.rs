//! The executor, and the read that feeds the planner (IO).
//!
//! - [`plan_all`] reads the IdP and every selected workspace like `check` (all or nothing:
//!   a workspace that cannot be read fails the whole plan, so nothing is ever applied on
//!   partial data) and plans each workspace.
//! - [`apply_workspace`] writes one workspace's plan, one replace call per group or user,
//!   in plan order, paced by the Segment client (60 IAM writes a minute). The first write
//!   that fails stops the rest for that workspace; what was written stays and is
//!   reported. Held changes are never written.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{plan_workspace, Options, WorkspacePlan};
use crate::config::WorkspaceConfig;
use crate::idp::IdentityProvider;
use crate::mapping::{MappingSet, WorkspaceMapping};
use crate::reconcile::{evaluate_nested_workspace, read, Settings};
use crate::segment::SegmentClient;

/// Plans every selected workspace from one successful read. Fails when anything could not
/// be read.
pub async fn plan_all<P: IdentityProvider>(
    idp: &P,
    workspaces: &[(&WorkspaceConfig, &SegmentClient)],
    mappings: &MappingSet,
    settings: &Settings,
    opts: Options,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<WorkspacePlan>> {
    let reading = read::read_all(idp, workspaces, mappings, settings, now).await?;
    let empty = WorkspaceMapping::default();
    let mut plans = Vec::new();
    for ((ws, _), (_, snap)) in workspaces.iter().zip(reading.workspaces) {
        let snap = snap?;
        let mapping = mappings.workspaces.get(&ws.name).unwrap_or(&empty);
        let evaluation = evaluate_nested_workspace(
            ws,
            mapping,
            &snap,
            &reading.idp,
            &reading.nested,
            settings,
            now,
        );
        plans.push(plan_workspace(&evaluation.desired, &snap, opts, now));
    }
    Ok(plans)
}

/// What happened to one change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Written {
    pub target: &'static str,
    pub name: String,
    /// `applied`, `failed`, `not attempted` (after a failure) or `held`.
    pub result: &'static str,
    pub detail: Option<String>,
}

/// What applying one workspace's plan did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Applied {
    pub workspace: String,
    pub changes: Vec<Written>,
}

impl Applied {
    pub fn all_applied(&self) -> bool {
        self.changes.iter().all(|c| c.result == "applied")
    }
    pub fn count(&self, result: &str) -> usize {
        self.changes.iter().filter(|c| c.result == result).count()
    }
}

/// Writes `plan` through `client`.
pub async fn apply_workspace(client: &SegmentClient, plan: &WorkspacePlan) -> Applied {
    let mut out = Vec::new();
    let mut stopped: Option<String> = None;
    for c in &plan.changes {
        if let Some(h) = &c.held {
            out.push(Written {
                target: c.target,
                name: c.name.clone(),
                result: "held",
                detail: Some(h.clone()),
            });
            continue;
        }
        if let Some(why) = &stopped {
            out.push(Written {
                target: c.target,
                name: c.name.clone(),
                result: "not attempted",
                detail: Some(format!("an earlier write failed: {why}")),
            });
            continue;
        }
        match client
            .replace_permissions(c.target, &c.id, &c.permissions)
            .await
        {
            Ok(()) => {
                tracing::info!(workspace = %plan.workspace, target = c.target, name = %c.name, source = %c.source, added = c.add.len(), removed = c.remove.len(), "Permissions replaced.");
                out.push(Written {
                    target: c.target,
                    name: c.name.clone(),
                    result: "applied",
                    detail: None,
                });
            }
            Err(e) => {
                let msg = crate::error::chain(&e);
                tracing::error!(workspace = %plan.workspace, target = c.target, name = %c.name, error = %msg, "Write failed; the rest of this workspace's plan is not attempted.");
                out.push(Written {
                    target: c.target,
                    name: c.name.clone(),
                    result: "failed",
                    detail: Some(msg.clone()),
                });
                stopped = Some(format!("{} {:?}", c.target, c.name));
            }
        }
    }
    Applied {
        workspace: plan.workspace.clone(),
        changes: out,
    }
}

/// The text `apply` prints after writing.
pub fn render_applied(applied: &[Applied]) -> String {
    let mut s = String::new();
    for a in applied {
        if a.changes.is_empty() {
            continue;
        }
        s.push_str(&format!(
            "workspace {}: {} applied, {} failed, {} not attempted, {} held\n",
            a.workspace,
            a.count("applied"),
            a.count("failed"),
            a.count("not attempted"),
            a.count("held")
        ));
        for c in &a.changes {
            s.push_str(&format!("  {:<13} {} {:?}", c.result, c.target, c.name));
            if let Some(d) = &c.detail {
                s.push_str(&format!(": {d}"));
            }
            s.push('\n');
        }
    }
    s
}
