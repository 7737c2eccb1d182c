//! What one activation did, as typed values: the driver (`daemon/`) and the tests read
//! these; `/status` and the store's activation log get them serialized, in the shape they
//! have always had (`scope`, `result`, and a `detail` that holds the counts of a pass that
//! succeeded or the error chain of one that failed).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::triggers::Reason;

/// How much one pass read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Everything: the IdP's mapped groups and every workspace.
    Full,
    /// Only what the events since the last pass touched (Okta).
    Targeted,
    /// A periodic tick: what the events touched, the open findings' subjects and the
    /// rolling refresh's share (Okta).
    Tick,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Full => "full",
            Scope::Targeted => "targeted",
            Scope::Tick => "tick",
        }
    }
}

/// A workspace a full pass could not read (or that Entra quarantined), with why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkspaceFailure {
    pub workspace: String,
    pub error: String,
}

/// What a full pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FullCounts {
    /// Open findings after the pass.
    pub findings: usize,
    pub opened: usize,
    pub resolved: usize,
    /// Change-log records appended.
    pub changes: usize,
    pub failed_workspaces: Vec<WorkspaceFailure>,
    /// The verifying re-read after scimwatch wrote to Segment (`enforce.mode = "apply"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<Box<FullCounts>>,
}

/// What a targeted pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TargetedCounts {
    pub touched_users: usize,
    pub touched_groups: usize,
    /// Findings of the touched subjects after the pass.
    pub findings_updated: usize,
    pub opened: usize,
    pub changes: usize,
    /// Subjects read (users, groups, IdP groups and users, catalogs), events and the
    /// rolling refresh together.
    pub subjects_read: usize,
}

/// The counts of a pass that succeeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Counts {
    Full(FullCounts),
    Targeted(TargetedCounts),
}

/// Which sources one activation could not read, for the alert planner and `/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceFailures {
    /// The IdP read failed (the pass read nothing): the error chain.
    pub idp: Option<String>,
    /// Workspaces whose read failed (or whose Entra provisioning is quarantined).
    pub workspaces: BTreeMap<String, String>,
    /// Workspaces a failed tick never got to read: neither failed nor read.
    pub unread: BTreeSet<String>,
}

impl SourceFailures {
    /// No source failed.
    pub fn is_empty(&self) -> bool {
        self.idp.is_none() && self.workspaces.is_empty()
    }
}

/// One activation, as the driver records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivationStatus {
    /// What woke it (reasons coalesce).
    pub reasons: BTreeSet<Reason>,
    pub scope: Scope,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// The counts, or the error chain of a pass that failed (findings stay as they were,
    /// except those of the workspaces a partly failed full pass did read).
    pub outcome: Result<Counts, String>,
    pub failures: SourceFailures,
    /// The store could not record what the pass found: the daemon must not run on
    /// without it (it exits, and its supervisor restarts it). What to do, in one line.
    pub fatal: Option<String>,
}

impl ActivationStatus {
    pub fn ok(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The trigger labels, each once, sorted (`okta_hook`, `periodic`, ...).
    pub fn labels(&self) -> Vec<&'static str> {
        self.reasons
            .iter()
            .map(Reason::label)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// `ok` or `error`.
    pub fn result(&self) -> &'static str {
        if self.ok() {
            "ok"
        } else {
            "error"
        }
    }

    /// The `detail` of the activation log: the counts as JSON, or the error chain.
    pub fn detail_text(&self) -> String {
        match &self.outcome {
            Ok(counts) => serde_json::to_string(counts).unwrap_or_default(),
            Err(e) => e.clone(),
        }
    }

    /// One entry of `/status`'s `last_activation`.
    pub fn status_entry(&self) -> serde_json::Value {
        let detail = match &self.outcome {
            Ok(counts) => serde_json::to_value(counts).unwrap_or_default(),
            Err(e) => serde_json::Value::String(e.clone()),
        };
        serde_json::json!({
            "at": self.started,
            "scope": self.scope,
            "result": self.result(),
            "detail": detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_keeps_its_documented_shape() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let ok = ActivationStatus {
            reasons: [Reason::Periodic, Reason::Startup].into(),
            scope: Scope::Full,
            started: at,
            finished: at,
            outcome: Ok(Counts::Full(FullCounts {
                findings: 3,
                opened: 1,
                failed_workspaces: vec![WorkspaceFailure {
                    workspace: "staging".into(),
                    error: "down".into(),
                }],
                ..FullCounts::default()
            })),
            failures: SourceFailures::default(),
            fatal: None,
        };
        assert_eq!(ok.labels(), ["periodic", "startup"]);
        assert_eq!(
            ok.status_entry(),
            serde_json::json!({"at": "2026-12-07T10:00:00Z", "scope": "full", "result": "ok",
                "detail": {"findings": 3, "opened": 1, "resolved": 0, "changes": 0,
                    "failed_workspaces": [{"workspace": "staging", "error": "down"}]}})
        );
        let failed = ActivationStatus {
            scope: Scope::Targeted,
            outcome: Err("okta: no answer".into()),
            ..ok
        };
        assert_eq!(failed.result(), "error");
        assert_eq!(failed.detail_text(), "okta: no answer");
        assert_eq!(failed.status_entry()["detail"], "okta: no answer");
        assert_eq!(failed.status_entry()["scope"], "targeted");
    }
}
