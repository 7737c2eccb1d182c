//! What `check` prints: the JSON document of `findings.md`, or a table for people.
//!
//! Both are built from a [`Report`], a plain value, so they can be snapshot-tested.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::IdpKind;
use crate::reconcile::finding::format_time;
use crate::reconcile::{Finding, State};

/// Counts for one workspace (`workspaces[]` in the JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkspaceSummary {
    pub name: String,
    pub users: usize,
    pub groups: usize,
}

/// One pass's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub generated_at: DateTime<Utc>,
    pub idp: IdpKind,
    pub workspaces: Vec<WorkspaceSummary>,
    /// Sorted: drift first, worst first.
    pub findings: Vec<Finding>,
}

impl Report {
    /// `check`'s exit code when the pass completed: 1 when any drift finding of severity
    /// warning or above exists, else 0.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.findings.iter().any(Finding::is_actionable))
    }

    pub fn summary(&self) -> Summary {
        let mut by_kind = BTreeMap::new();
        for f in &self.findings {
            *by_kind.entry(f.kind.as_str().to_string()).or_insert(0) += 1;
        }
        Summary {
            drift: self
                .findings
                .iter()
                .filter(|f| f.state == State::Drift)
                .count(),
            pending: self
                .findings
                .iter()
                .filter(|f| f.state == State::Pending)
                .count(),
            by_kind,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub drift: usize,
    pub pending: usize,
    pub by_kind: BTreeMap<String, usize>,
}

#[derive(Serialize)]
struct JsonDoc<'a> {
    schema: u32,
    generated_at: String,
    idp: &'static str,
    workspaces: &'a [WorkspaceSummary],
    summary: Summary,
    findings: &'a [Finding],
}

/// The JSON document of findings.md, pretty-printed.
pub fn json(report: &Report) -> String {
    let doc = JsonDoc {
        schema: 1,
        generated_at: format_time(&report.generated_at),
        idp: report.idp.as_str(),
        workspaces: &report.workspaces,
        summary: report.summary(),
        findings: &report.findings,
    };
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// The table: kind, state, severity, subject, message; drift first; then a summary line.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    if report.findings.is_empty() {
        let _ = writeln!(
            out,
            "No findings: every workspace matches the IdP and the mappings."
        );
    } else {
        let headers = ["KIND", "STATE", "SEVERITY", "WORKSPACE", "SUBJECT"];
        let rows: Vec<[String; 5]> = report
            .findings
            .iter()
            .map(|f| {
                [
                    f.kind.as_str().to_string(),
                    f.state.as_str().to_string(),
                    f.severity.as_str().to_string(),
                    f.workspace.clone(),
                    f.subject(),
                ]
            })
            .collect();
        let mut widths = headers.map(str::len);
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: [&str; 5]| {
            let mut s = String::new();
            for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(c);
                } else {
                    let _ = write!(s, "{c:<w$}  ");
                }
            }
            s
        };
        let _ = writeln!(out, "{}", line(headers));
        for (r, f) in rows.iter().zip(&report.findings) {
            let _ = writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
            let _ = writeln!(out, "    {}", f.message);
            let _ = writeln!(out, "    fix: {}", f.remedy);
        }
        let _ = writeln!(out);
    }
    let s = report.summary();
    let ws: Vec<String> = report
        .workspaces
        .iter()
        .map(|w| format!("{} ({} users, {} groups)", w.name, w.users, w.groups))
        .collect();
    let actionable = report.findings.iter().filter(|f| f.is_actionable()).count();
    let _ = writeln!(
        out,
        "{} drift, {} pending in {} at {}; {} need action.",
        s.drift,
        s.pending,
        ws.join(", "),
        format_time(&report.generated_at),
        actionable
    );
    out
}
