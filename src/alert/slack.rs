//! Slack incoming webhooks (alerting.md §2): `{text, blocks}` with the same facts as the
//! PagerDuty event; 200 `ok` is accepted. The webhook URL *is* the secret: it is never
//! logged, never in an error (transport errors are reduced to their kind) and `Debug`
//! shows `***`.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{classify, no_answer, one_line, sink_http, Action, Alert, AlertSink, SendFuture};
use crate::http::{Http, RequestStats, RetryConfig};
use crate::secret::Secret;

/// Slack's answers that mean the hook is gone or refused for good.
const BROKEN: [&str; 10] = [
    "no_service",
    "no_service_id",
    "no_team",
    "team_disabled",
    "invalid_token",
    "no_active_hooks",
    "channel_not_found",
    "channel_is_archived",
    "action_prohibited",
    "posting_to_general_channel_denied",
];

pub struct Slack {
    name: String,
    webhook_url: Secret,
    http: Http,
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slack")
            .field("name", &self.name)
            .field("webhook_url", &self.webhook_url)
            .finish()
    }
}

impl Slack {
    pub fn new(
        name: &str,
        webhook_url: Secret,
        retry: RetryConfig,
        stats: Arc<RequestStats>,
    ) -> Slack {
        Slack {
            name: name.to_string(),
            webhook_url,
            http: sink_http("slack", retry, stats).hiding_urls(),
        }
    }
}

/// Cuts `s` at `max` characters (with an ellipsis), keeping its line breaks.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Escapes Slack mrkdwn control characters.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn plain(v: &Value) -> String {
    match v {
        Value::Null => "—".to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        Value::Array(a) if a.is_empty() => "none".to_string(),
        Value::Array(a) => a
            .iter()
            .map(
                |g| match (g.get("role").and_then(Value::as_str), g.get("resources")) {
                    (Some(role), Some(Value::Array(rs))) => {
                        let on: Vec<String> = rs
                            .iter()
                            .map(|r| {
                                format!(
                                    "{}:{}",
                                    r.get("type").and_then(Value::as_str).unwrap_or("?"),
                                    r.get("id").and_then(Value::as_str).unwrap_or("?")
                                )
                            })
                            .collect();
                        format!("{role} on {}", on.join(", "))
                    }
                    _ => g.to_string(),
                },
            )
            .collect::<Vec<_>>()
            .join("; "),
        Value::Object(o) => match (
            o.get("actor_email").and_then(Value::as_str),
            o.get("actor").and_then(Value::as_str),
        ) {
            (Some(e), _) => format!(
                "{e} ({})",
                o.get("event").and_then(Value::as_str).unwrap_or("")
            ),
            (None, Some(a)) => format!(
                "{a} ({})",
                o.get("event").and_then(Value::as_str).unwrap_or("")
            ),
            _ => v.to_string(),
        },
        other => other.to_string(),
    }
}

/// The Slack message for `alert` (pure).
pub fn message(alert: &Alert) -> Value {
    let label = if alert.is_test() { "[TEST] " } else { "" };
    if alert.action == Action::Resolve {
        let text = format!(":white_check_mark: {label}Resolved: {}", alert.summary);
        return json!({
            "text": text,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": esc(&text)}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("dedup `{}`", esc(&alert.key))}]},
            ]
        });
    }
    let text = format!(
        ":rotating_light: {label}scimwatch {}: {}",
        alert.severity.as_str(),
        alert.summary
    );
    let title = match alert.family {
        super::Family::SourceUnavailable => "scimwatch cannot read a source",
        super::Family::SinkFailing => "scimwatch alert sink failing",
        _ => "Segment access drift",
    };
    let header = one_line(&format!("{label}{title}: {}", alert.workspace), 150);
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": header}}),
        json!({"type": "section", "text": {"type": "mrkdwn",
               "text": format!("*{}* {}", alert.severity.as_str(), esc(&alert.summary))}}),
    ];
    let d = alert.details();
    if alert.finding.is_some() {
        let field = |title: &str, key: &str| json!({"type": "mrkdwn", "text": one_line(&format!("*{title}*\n{}", esc(&plain(&d[key]))), 1900)});
        blocks.push(json!({"type": "section", "fields": [
            field("Expected", "expected"),
            field("Actual", "actual"),
            field("Attribution", "attribution"),
            field("Reverted by SCIM", "reverted_by_scim"),
            field("Deadline", "deadline"),
            field("Subject", "subject"),
        ]}));
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
            "text": one_line(&format!("*Remedy* {}", esc(&plain(&d["remedy"]))), 2900)}}));
    }
    if let Some(extra) = &alert.extra {
        // Digests list their first subjects; the others say what failed and how often.
        let mut lines = Vec::new();
        if let Some(subjects) = extra.get("subjects").and_then(Value::as_array) {
            let count = extra.get("count").and_then(Value::as_u64).unwrap_or(0);
            let names: Vec<String> = subjects.iter().map(|s| esc(&plain(s))).collect();
            let more = (count as usize).saturating_sub(names.len());
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            lines.push(format!("*Subjects* ({count}): {}{tail}", names.join(", ")));
        }
        for (title, key) in [
            ("Service", "service"),
            ("Error", "error"),
            ("Failed passes", "failed_passes"),
            ("Sink", "sink"),
            ("Remedy", "remedy"),
        ] {
            if let Some(v) = extra.get(key) {
                lines.push(format!("*{title}* {}", esc(&plain(v))));
            }
        }
        if !lines.is_empty() {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
                "text": cut(&lines.join("\n"), 2900)}}));
        }
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
        "text": format!("{} · dedup `{}`", esc(&alert.kind), esc(&alert.key))}]}));
    json!({"text": one_line(&text, 3000), "blocks": blocks})
}

impl AlertSink for Slack {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "slack"
    }
    fn send<'a>(&'a self, alert: &'a Alert) -> SendFuture<'a> {
        Box::pin(async move {
            let body = message(alert).to_string();
            let url = self.webhook_url.expose();
            let answer = self
                .http
                .send("POST /slack/webhook", &|c: &reqwest::Client| {
                    c.post(url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                })
                .await
                .map_err(|e| no_answer(&self.name, &e, false))?;
            classify(&self.name, &answer, &|b| BROKEN.contains(&b))
        })
    }
}
