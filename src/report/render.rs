//! The access review as Markdown (for a ticket or a wiki page) and as CSV (for the
//! spreadsheet an auditor filters). Pure.

use std::fmt::Write as _;

use super::{duration_words, AccessReview, ChangeLogSource, Latency, WorkspaceReview};
use crate::reconcile::finding::format_time;
use crate::store::csv_field;

/// The CSV header: one row per fact, `section` saying which part of the review it is.
pub const REPORT_CSV_HEADER: &str = "section,workspace,user,item,via,source,detail";

/// Where the latency figures come from, in words.
pub fn change_log_words(r: &AccessReview) -> String {
    match &r.change_log {
        ChangeLogSource::NoStore(path) => format!(
            "no store at {path} (the daemon, `scimwatch run`, keeps the change log), so no latency figures"
        ),
        ChangeLogSource::Read { path, records } => format!(
            "{records} access changes recorded since {} in {path}",
            format_time(&r.since)
        ),
    }
}

/// "1 change", "3 changes".
pub fn changes(n: usize) -> String {
    if n == 1 {
        "1 change".into()
    } else {
        format!("{n} changes")
    }
}

pub fn latency_words(l: &Latency) -> String {
    match (l.p50_ms, l.p95_ms) {
        (Some(p50), Some(p95)) => format!(
            "p50 {}, p95 {} over {} an IdP event explains",
            duration_words(p50),
            duration_words(p95),
            changes(l.samples)
        ),
        _ => "no change an IdP event explains in the window".into(),
    }
}

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn days(d: i64) -> String {
    match d {
        1 => "1 day left".into(),
        d if d >= 0 => format!("{d} days left"),
        -1 => "expired 1 day ago".into(),
        d => format!("expired {} days ago", -d),
    }
}

/// The review as Markdown.
pub fn markdown(r: &AccessReview) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Segment access review");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Generated {} from {} and Segment; change log: {}.",
        format_time(&r.generated_at),
        r.idp.display(),
        change_log_words(r)
    );
    for w in &r.workspaces {
        workspace_md(&mut s, w);
    }
    s
}

fn workspace_md(s: &mut String, w: &WorkspaceReview) {
    let _ = writeln!(s);
    let _ = writeln!(s, "## Workspace {}", w.name);
    let _ = writeln!(s);
    let by_kind = w.findings_by_kind();
    let _ = writeln!(
        s,
        "{} members, {} Workspace Owners, {} over-privileged, {} open findings; propagation latency: {}.",
        w.members.len(),
        w.owners.len(),
        w.over_privileged.len(),
        w.findings.len(),
        latency_words(&w.latency)
    );

    let _ = writeln!(s, "\n### Workspace Owners\n");
    if w.owners.is_empty() {
        let _ = writeln!(s, "None.");
    } else {
        let _ = writeln!(s, "| owner | via | justification or exception |");
        let _ = writeln!(s, "|---|---|---|");
        for o in &w.owners {
            let mark = if o.justified { "" } else { "**unjustified** " };
            let _ = writeln!(
                s,
                "| {} | {} | {mark}{} |",
                o.email,
                md_cell(&o.via),
                md_cell(&o.basis)
            );
        }
    }

    let _ = writeln!(s, "\n### Over-privileged accounts\n");
    flagged_md(s, &w.over_privileged);

    let _ = writeln!(s, "\n### Personal accounts\n");
    match &w.personal_accounts {
        None => {
            let _ = writeln!(s, "Not checked: no `corporate_domains` for this workspace.");
        }
        Some(p) => flagged_md(s, p),
    }

    let _ = writeln!(s, "\n### Exceptions\n");
    if w.exceptions.is_empty() {
        let _ = writeln!(s, "None.");
    } else {
        let _ = writeln!(
            s,
            "| user | ticket | approved by | reason | expires | status | allows |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for e in &w.exceptions {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} ({}) | {} | {} |",
                e.user,
                md_cell(&e.ticket),
                md_cell(&e.approved_by),
                md_cell(&e.reason),
                format_time(&e.expires),
                days(e.days_left),
                e.status,
                md_cell(&e.allows.join(", "))
            );
        }
    }

    let _ = writeln!(s, "\n### Open findings\n");
    if w.findings.is_empty() {
        let _ = writeln!(s, "None.");
    } else {
        let counts: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(s, "By kind: {}.\n", counts.join(", "));
        let _ = writeln!(s, "| state | severity | kind | subject | message |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        for f in &w.findings {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                f.state.as_str(),
                f.severity.as_str(),
                f.kind.as_str(),
                md_cell(&f.subject()),
                md_cell(&f.message)
            );
        }
    }

    let _ = writeln!(s, "\n### Propagation latency\n");
    let _ = writeln!(
        s,
        "IdP change → seen in Segment: {}.",
        latency_words(&w.latency)
    );
    if w.latency.samples > 0 {
        let _ = writeln!(s);
        let _ = writeln!(s, "| IdP → Segment | changes |");
        let _ = writeln!(s, "|---|---|");
        for ((_, label), n) in super::LATENCY_BUCKETS.iter().zip(&w.latency.buckets) {
            let _ = writeln!(s, "| {label} | {n} |");
        }
    }

    let _ = writeln!(s, "\n### Members and their effective grants\n");
    let _ = writeln!(s, "| member | grant | via | source |");
    let _ = writeln!(s, "|---|---|---|---|");
    for m in &w.members {
        if m.grants.is_empty() {
            let _ = writeln!(s, "| {} | Minimal Workspace Access only | | |", m.email);
        }
        for g in &m.grants {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                m.email,
                md_cell(&g.text),
                md_cell(&g.via),
                md_cell(&g.source)
            );
        }
    }
}

fn flagged_md(s: &mut String, items: &[super::Flagged]) {
    if items.is_empty() {
        let _ = writeln!(s, "None.");
        return;
    }
    let _ = writeln!(s, "| account | kind | severity | detail |");
    let _ = writeln!(s, "|---|---|---|---|");
    for f in items {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            f.email,
            f.kind,
            f.severity,
            md_cell(&f.detail)
        );
    }
}

/// The review as CSV ([`REPORT_CSV_HEADER`]); RFC 4180 quoting, `\n` line ends.
/// Sections: `member` (one row per grant, or one "Minimal Workspace Access only"),
/// `owner`, `over_privileged`, `personal_account`, `exception`, `finding`, `latency`
/// (`p50_ms`, `p95_ms`, `samples`, then one row per histogram bucket).
pub fn csv(r: &AccessReview) -> String {
    let mut out = String::new();
    out.push_str(REPORT_CSV_HEADER);
    out.push('\n');
    let mut row = |fields: [&str; 7]| {
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    };
    for w in &r.workspaces {
        let ws = w.name.as_str();
        for m in &w.members {
            if m.grants.is_empty() {
                row([
                    "member",
                    ws,
                    m.email.as_str(),
                    "Minimal Workspace Access only",
                    "",
                    "",
                    "",
                ]);
            }
            for g in &m.grants {
                row([
                    "member",
                    ws,
                    m.email.as_str(),
                    &g.text,
                    &g.via,
                    &g.source,
                    "",
                ]);
            }
        }
        for o in &w.owners {
            let justified = if o.justified {
                "justified"
            } else {
                "unjustified"
            };
            row([
                "owner",
                ws,
                o.email.as_str(),
                "Workspace Owner",
                &o.via,
                &o.basis,
                justified,
            ]);
        }
        for f in &w.over_privileged {
            row([
                "over_privileged",
                ws,
                &f.email,
                f.kind,
                "",
                f.severity,
                &f.detail,
            ]);
        }
        for f in w.personal_accounts.iter().flatten() {
            row([
                "personal_account",
                ws,
                &f.email,
                f.kind,
                "",
                f.severity,
                &f.detail,
            ]);
        }
        for e in &w.exceptions {
            let detail = format!(
                "{}; expires {} ({}); allows {}; {}",
                e.status,
                format_time(&e.expires),
                days(e.days_left),
                e.allows.join(", "),
                e.at
            );
            row([
                "exception",
                ws,
                e.user.as_str(),
                &e.ticket,
                &e.approved_by,
                &e.reason,
                &detail,
            ]);
        }
        for f in &w.findings {
            let user = f.user.as_ref().map_or("", |u| u.as_str());
            let state = format!("{} {}", f.state.as_str(), f.severity.as_str());
            row([
                "finding",
                ws,
                user,
                f.kind.as_str(),
                &f.subject(),
                &state,
                &f.message,
            ]);
        }
        let l = &w.latency;
        let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        row(["latency", ws, "", "p50_ms", "", "", &opt(l.p50_ms)]);
        row(["latency", ws, "", "p95_ms", "", "", &opt(l.p95_ms)]);
        row(["latency", ws, "", "samples", "", "", &l.samples.to_string()]);
        for ((_, label), n) in super::LATENCY_BUCKETS.iter().zip(&l.buckets) {
            row(["latency", ws, "", label, "", "", &n.to_string()]);
        }
    }
    out
}
