//! The access review as one self-contained HTML file: inline CSS (with print rules: A4,
//! page breaks between workspaces, table headers repeated on every page), inline SVG
//! charts (findings by kind, the latency distribution), no script and nothing fetched.
//! Every figure a chart shows is also in a table beside it, so the printed text says it.
//! Pure.

use std::fmt::Write as _;

use super::render::{change_log_words, latency_words};
use super::{AccessReview, Flagged, Latency, WorkspaceReview, LATENCY_BUCKETS};
use crate::reconcile::finding::format_time;

const CSS: &str = r#"
:root { --ink: #1d2430; --muted: #5b6473; --line: #d5dae1; --bad: #b42318; --warn: #b54708; --ok: #067647; --bar: #3559c7; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--ink); margin: 2rem auto; max-width: 72rem; padding: 0 1.5rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.3rem; margin: 2.5rem 0 .5rem; padding-bottom: .25rem; border-bottom: 2px solid var(--ink); }
h3 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
p.meta { color: var(--muted); margin: 0 0 1rem; }
.summary { display: flex; flex-wrap: wrap; gap: .75rem; margin: .75rem 0; }
.summary div { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .75rem; min-width: 9rem; }
.summary b { display: block; font-size: 1.3rem; }
table { border-collapse: collapse; width: 100%; margin: .25rem 0 1rem; }
th, td { text-align: left; vertical-align: top; padding: .3rem .5rem; border-bottom: 1px solid var(--line); }
th { background: #f3f5f8; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: var(--bad); font-weight: 600; }
.warn { color: var(--warn); font-weight: 600; }
.ok { color: var(--ok); }
.charts { display: flex; flex-wrap: wrap; gap: 2rem; }
.charts figure { margin: 0; }
figcaption { font-weight: 600; margin-bottom: .25rem; }
svg text { font: 11px system-ui, "DejaVu Sans", sans-serif; fill: var(--ink); }
svg rect.bar { fill: var(--bar); }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { margin: 0; max-width: none; padding: 0; font-size: 10.5pt; }
  section.workspace { break-before: page; }
  h2, h3 { break-after: avoid; }
  tr, figure, .summary div { break-inside: avoid; }
  thead { display: table-header-group; }
  th { background: #eee !important; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  svg rect.bar { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn html(r: &AccessReview) -> String {
    let mut s = String::with_capacity(32 * 1024);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Segment access review {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&format_time(&r.generated_at))
    );
    let _ = writeln!(s, "<h1>Segment access review</h1>");
    let _ = writeln!(
        s,
        "<p class=\"meta\">Generated {} from {} and Segment. Change log: {}.</p>",
        esc(&format_time(&r.generated_at)),
        esc(r.idp.display()),
        esc(&change_log_words(r))
    );
    let _ = writeln!(s, "<table><thead><tr><th>workspace</th><th>members</th><th>Workspace Owners</th><th>over-privileged</th><th>open findings</th><th>latency p50</th><th>latency p95</th></tr></thead><tbody>");
    for w in &r.workspaces {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&w.name),
            w.members.len(),
            w.owners.len(),
            w.over_privileged.len(),
            w.findings.len(),
            w.latency.p50_ms.map_or("–".into(), super::duration_words),
            w.latency.p95_ms.map_or("–".into(), super::duration_words),
        );
    }
    let _ = writeln!(s, "</tbody></table>");
    for w in &r.workspaces {
        workspace(&mut s, w);
    }
    s.push_str("</body>\n</html>\n");
    s
}

fn workspace(s: &mut String, w: &WorkspaceReview) {
    let _ = writeln!(s, "<section class=\"workspace\">");
    let _ = writeln!(s, "<h2>Workspace {}</h2>", esc(&w.name));
    let unjustified = w.owners.iter().filter(|o| !o.justified).count();
    let _ = writeln!(
        s,
        "<div class=\"summary\"><div><b>{}</b>members</div><div><b>{}</b>Workspace Owners{}</div><div><b>{}</b>over-privileged</div><div><b>{}</b>open findings</div><div><b>{}</b>exceptions</div></div>",
        w.members.len(),
        w.owners.len(),
        if unjustified > 0 {
            format!(" <span class=\"bad\">({unjustified} unjustified)</span>")
        } else {
            String::new()
        },
        w.over_privileged.len(),
        w.findings.len(),
        w.exceptions.len()
    );

    let _ = writeln!(s, "<div class=\"charts\">");
    findings_chart(s, w);
    latency_chart(s, &w.latency);
    let _ = writeln!(s, "</div>");

    let _ = writeln!(s, "<h3>Workspace Owners</h3>");
    if w.owners.is_empty() {
        let _ = writeln!(s, "<p>None.</p>");
    } else {
        let _ = writeln!(s, "<table><thead><tr><th>owner</th><th>via</th><th>justification or exception</th></tr></thead><tbody>");
        for o in &w.owners {
            let basis = if o.justified {
                esc(&o.basis)
            } else {
                format!("<span class=\"bad\">Unjustified:</span> {}", esc(&o.basis))
            };
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{basis}</td></tr>",
                esc(o.email.as_str()),
                esc(&o.via)
            );
        }
        let _ = writeln!(s, "</tbody></table>");
    }

    let _ = writeln!(s, "<h3>Over-privileged accounts</h3>");
    flagged(s, &w.over_privileged);
    let _ = writeln!(s, "<h3>Personal accounts</h3>");
    match &w.personal_accounts {
        None => {
            let _ = writeln!(
                s,
                "<p>Not checked: no <code>corporate_domains</code> for this workspace.</p>"
            );
        }
        Some(p) => flagged(s, p),
    }

    let _ = writeln!(s, "<h3>Exceptions</h3>");
    if w.exceptions.is_empty() {
        let _ = writeln!(s, "<p>None.</p>");
    } else {
        let _ = writeln!(s, "<table><thead><tr><th>user</th><th>ticket</th><th>approved by</th><th>reason</th><th>expires</th><th>days left</th><th>allows</th></tr></thead><tbody>");
        for e in &w.exceptions {
            let class = match e.status {
                "expired" => "bad",
                "expiring" => "warn",
                _ => "ok",
            };
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num {class}\">{} ({})</td><td>{}</td></tr>",
                esc(e.user.as_str()),
                esc(&e.ticket),
                esc(&e.approved_by),
                esc(&e.reason),
                esc(&format_time(&e.expires)),
                e.days_left,
                e.status,
                esc(&e.allows.join(", "))
            );
        }
        let _ = writeln!(s, "</tbody></table>");
    }

    let _ = writeln!(s, "<h3>Open findings</h3>");
    if w.findings.is_empty() {
        let _ = writeln!(s, "<p>None.</p>");
    } else {
        let _ = writeln!(s, "<table><thead><tr><th>state</th><th>severity</th><th>kind</th><th>message</th></tr></thead><tbody>");
        for f in &w.findings {
            let class = match f.severity.as_str() {
                "critical" | "error" => "bad",
                "warning" => "warn",
                _ => "",
            };
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td>{}</td></tr>",
                f.state.as_str(),
                f.severity.as_str(),
                f.kind.as_str(),
                esc(&f.message)
            );
        }
        let _ = writeln!(s, "</tbody></table>");
    }

    let _ = writeln!(s, "<h3>Propagation latency</h3>");
    let _ = writeln!(
        s,
        "<p>IdP change → seen in Segment: {}.</p>",
        esc(&latency_words(&w.latency))
    );

    let _ = writeln!(s, "<h3>Members and their effective grants</h3>");
    let _ = writeln!(s, "<table><thead><tr><th>member</th><th>grant</th><th>via</th><th>source</th></tr></thead><tbody>");
    for m in &w.members {
        if m.grants.is_empty() {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>Minimal Workspace Access only</td><td></td><td></td></tr>",
                esc(m.email.as_str())
            );
        }
        for g in &m.grants {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(m.email.as_str()),
                esc(&g.text),
                esc(&g.via),
                esc(&g.source)
            );
        }
    }
    let _ = writeln!(s, "</tbody></table>");
    let _ = writeln!(s, "</section>");
}

fn flagged(s: &mut String, items: &[Flagged]) {
    if items.is_empty() {
        let _ = writeln!(s, "<p>None.</p>");
        return;
    }
    let _ = writeln!(s, "<table><thead><tr><th>account</th><th>kind</th><th>severity</th><th>detail</th></tr></thead><tbody>");
    for f in items {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.email),
            f.kind,
            f.severity,
            esc(&f.detail)
        );
    }
    let _ = writeln!(s, "</tbody></table>");
}

/// Horizontal bars: open findings per kind.
fn findings_chart(s: &mut String, w: &WorkspaceReview) {
    let by_kind = w.findings_by_kind();
    let _ = writeln!(s, "<figure><figcaption>Open findings by kind</figcaption>");
    if by_kind.is_empty() {
        let _ = writeln!(s, "<p>No open findings.</p></figure>");
        return;
    }
    let max = by_kind.values().copied().max().unwrap_or(1).max(1);
    let (label_w, bar_w, row_h) = (170.0, 220.0, 20.0);
    let height = row_h * by_kind.len() as f64 + 4.0;
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"Open findings by kind\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\">",
        label_w + bar_w + 40.0,
        label_w + bar_w + 40.0
    );
    for (i, (kind, n)) in by_kind.iter().enumerate() {
        let y = i as f64 * row_h + 2.0;
        let w = bar_w * (*n as f64) / (max as f64);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{kind}</text><rect class=\"bar\" x=\"{label_w}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\"/><text x=\"{:.1}\" y=\"{}\">{n}</text>",
            label_w - 6.0,
            y + 13.0,
            y + 2.0,
            row_h - 6.0,
            label_w + w + 4.0,
            y + 13.0
        );
    }
    let _ = writeln!(s, "</svg></figure>");
}

/// Vertical bars: changes per latency bucket.
fn latency_chart(s: &mut String, l: &Latency) {
    let _ = writeln!(
        s,
        "<figure><figcaption>Propagation latency (IdP change → seen in Segment)</figcaption>"
    );
    if l.samples == 0 {
        let _ = writeln!(
            s,
            "<p>No change an IdP event explains in the window.</p></figure>"
        );
        return;
    }
    let max = l.buckets.iter().copied().max().unwrap_or(1).max(1);
    let (col_w, chart_h, top, bottom) = (62.0, 120.0, 16.0, 22.0);
    let width = col_w * LATENCY_BUCKETS.len() as f64;
    let height = chart_h + top + bottom;
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"Propagation latency distribution\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    );
    for (i, ((_, label), n)) in LATENCY_BUCKETS.iter().zip(&l.buckets).enumerate() {
        let x = i as f64 * col_w;
        let h = chart_h * (*n as f64) / (max as f64);
        let y = top + chart_h - h;
        let _ = writeln!(
            s,
            "<rect class=\"bar\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{n}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x + 6.0,
            col_w - 12.0,
            x + col_w / 2.0,
            y - 3.0,
            x + col_w / 2.0,
            top + chart_h + 15.0,
            esc(label)
        );
    }
    let _ = writeln!(s, "</svg>");
    let _ = writeln!(
        s,
        "<p>p50 {}, p95 {}, max {} over {}.</p></figure>",
        l.p50_ms.map_or("–".into(), super::duration_words),
        l.p95_ms.map_or("–".into(), super::duration_words),
        l.max_ms.map_or("–".into(), super::duration_words),
        super::render::changes(l.samples)
    );
}
