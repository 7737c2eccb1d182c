//! Alert delivery: the [`Alert`] value built from a finding, the [`AlertSink`] trait and
//! the three sinks of `alerting.md` (PagerDuty Events v2, Slack incoming webhooks, the
//! Standard-Webhooks-signed generic webhook).
//!
//! Contract:
//! - An alert's `key` is the finding id (the same dedup key for every sink), so a
//!   re-sent trigger never opens a second incident and resolves are idempotent.
//! - Sinks send through [`Http`](crate::http::Http) (the one place that retries 429/5xx)
//!   and classify what is left into [`SinkError`]: `Rejected` (the payload was refused:
//!   dead-letter it), `Broken` (the sink itself is misconfigured or revoked: raise it on
//!   another sink), `Transient` (retries ran out: try again later, honouring
//!   `retry_after`).
//! - Must never: put a routing key, a Slack URL or a webhook secret into an error, a log
//!   line or `Debug` output (sinks implement `Debug` by hand).
//!
//! What decides *when* to alert is [`plan`] (pure: dedup, hysteresis, grouping,
//! inhibition, `source_unavailable`); what delivers is [`outbox`] (one worker per sink
//! draining the durable outbox in the store, with backoff, dead letters and broken
//! sinks).

pub mod outbox;
pub mod pagerduty;
pub mod plan;
pub mod slack;
pub mod store;
pub mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::config::{AlertTarget, AlertsConfig};
use crate::http::{
    retry_after_header, Answer, Http, HttpError, RequestStats, RetryConfig, ServicePolicy,
};
use crate::reconcile::finding::{format_time, Finding, GrantView, Severity};

/// PagerDuty caps `payload.summary` at 1024 characters.
pub const MAX_SUMMARY: usize = 1024;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Trigger,
    Resolve,
}

/// What an alert is about. The webhook's event type is `scimwatch.<family>.<status>`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// One finding; the key is the finding id.
    Finding,
    /// Many new drift findings of one kind in one workspace in one pass.
    Digest,
    /// A source (IdP or workspace) failed `source_down_after` full passes in a row.
    SourceUnavailable,
    /// A sink is broken or dead-letters alerts; raised on the other sinks.
    SinkFailing,
    /// `scimwatch alerts test`.
    Test,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Finding => "finding",
            Family::Digest => "digest",
            Family::SourceUnavailable => "source_unavailable",
            Family::SinkFailing => "sink_failing",
            Family::Test => "test",
        }
    }
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Trigger => "trigger",
            Action::Resolve => "resolve",
        }
    }
}

/// One thing to tell a sink. Kept as JSON in the outbox until delivered.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    /// Dedup key: the finding id (or a test key).
    pub key: String,
    pub action: Action,
    pub severity: Severity,
    /// One line, at most [`MAX_SUMMARY`] characters.
    pub summary: String,
    pub finding: Option<Finding>,
    pub workspace: String,
    /// The finding kind (`direct_grant`, ...), or the family for the others.
    pub kind: String,
    pub family: Family,
    /// The facts of a digest, a `source_unavailable` or a `sink_failing` alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
    /// The webhook's `webhook-id`: the outbox sets it so every retry carries the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub at: DateTime<Utc>,
}

impl Alert {
    /// The alert for `finding` (pure).
    pub fn from_finding(finding: &Finding, action: Action, at: DateTime<Utc>) -> Alert {
        // Severity travels in its own field everywhere: the title says what and where.
        let summary = format!(
            "{} in workspace {}: {}",
            finding.kind, finding.workspace, finding.message
        );
        Alert {
            key: finding.id.clone(),
            action,
            severity: finding.severity,
            summary: one_line(&summary, MAX_SUMMARY),
            finding: Some(finding.clone()),
            workspace: finding.workspace.clone(),
            kind: finding.kind.as_str().to_string(),
            family: Family::Finding,
            extra: None,
            message_id: None,
            at,
        }
    }

    /// The clearly-labelled alert of `scimwatch alerts test` (pure; `at` makes the key).
    pub fn test(action: Action, at: DateTime<Utc>) -> Alert {
        Alert {
            key: format!("scimwatch-test-{}", at.timestamp()),
            action,
            severity: Severity::Info,
            summary: "TEST ALERT from `scimwatch alerts test`: no action needed, this checks delivery only".to_string(),
            finding: None,
            workspace: "test".to_string(),
            kind: "test".to_string(),
            family: Family::Test,
            extra: None,
            message_id: None,
            at,
        }
    }

    /// A `scimwatch alerts test` alert: labelled as such everywhere.
    pub fn is_test(&self) -> bool {
        self.family == Family::Test
    }

    /// The same alert as a resolve (the key is what matters to the sinks).
    pub fn resolving(&self, at: DateTime<Utc>) -> Alert {
        Alert {
            action: Action::Resolve,
            at,
            message_id: None,
            ..self.clone()
        }
    }

    /// The facts every sink shows: expected, actual, attribution, reverted_by_scim,
    /// deadline, remedy (and the finding's identity).
    pub fn details(&self) -> Value {
        let Some(f) = &self.finding else {
            if let Some(extra) = &self.extra {
                return extra.clone();
            }
            return json!({"test": self.is_test(), "note": "a delivery test from `scimwatch alerts test`"});
        };
        let grants = |g: &Option<Vec<GrantView>>| g.clone().unwrap_or_default();
        let mut actual = grants(&f.extra);
        if actual.is_empty() {
            actual.extend(f.grant.clone());
        }
        json!({
            "finding_id": f.id,
            "kind": f.kind,
            "state": f.state,
            "subject": f.subject(),
            "expected": grants(&f.missing),
            "actual": actual,
            "attribution": f.attribution,
            "reverted_by_scim": f.reverted_by_scim,
            "since": format_time(&f.since),
            "deadline": f.deadline.as_ref().map(format_time),
            "remedy": f.remedy,
            "message": f.message,
        })
    }
}

/// Collapses whitespace to one line and cuts at `max` characters (with an ellipsis).
pub fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Why a sink did not take an alert. Never carries a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// The sink refused this payload (400): do not retry; dead-letter it.
    #[error("sink {sink}: rejected ({status}): {detail}")]
    Rejected {
        sink: String,
        status: u16,
        detail: String,
    },
    /// The sink is misconfigured or revoked (401/403/404/410, Slack's revoked answers):
    /// do not retry; raise a "sink failing" alert elsewhere.
    #[error("sink {sink}: broken ({status}): {detail}")]
    Broken {
        sink: String,
        status: u16,
        detail: String,
    },
    /// 429/5xx/no answer after the retries: try again later.
    #[error("sink {sink}: unavailable{}: {detail}", status.map(|s| format!(" ({s})")).unwrap_or_default())]
    Transient {
        sink: String,
        status: Option<u16>,
        /// What the server asked for (`Retry-After`), if anything.
        retry_after: Option<Duration>,
        detail: String,
    },
}

impl SinkError {
    pub fn status(&self) -> Option<u16> {
        match self {
            SinkError::Rejected { status, .. } | SinkError::Broken { status, .. } => Some(*status),
            SinkError::Transient { status, .. } => *status,
        }
    }
}

/// What a sink answered when it took the alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub status: u16,
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Delivered, SinkError>> + Send + 'a>>;

/// A place alerts go.
pub trait AlertSink: Send + Sync + std::fmt::Debug {
    /// The sink's `name` in the config.
    fn name(&self) -> &str;
    /// `pagerduty`, `slack` or `webhook`.
    fn kind(&self) -> &'static str;
    fn send<'a>(&'a self, alert: &'a Alert) -> SendFuture<'a>;
}

/// Sinks honour `Retry-After` on 429 and 503; they announce no budgets.
struct SinkPolicy;

impl ServicePolicy for SinkPolicy {
    fn retry_after(&self, _: StatusCode, headers: &HeaderMap, _: &[u8]) -> Option<Duration> {
        retry_after_header(headers)
    }
    fn pause_after(&self, _: &HeaderMap) -> Option<Duration> {
        None
    }
}

/// A paced client for one sink: at most one request a second, no burst (alerting.md §8).
pub(crate) fn sink_http(
    service: &'static str,
    retry: RetryConfig,
    stats: Arc<RequestStats>,
) -> Http {
    Http::new(service, Arc::new(SinkPolicy), None, retry, stats).strictly_paced(60)
}

/// The retry knobs for a one-off send (`scimwatch alerts test`): a few quick retries
/// within the call, the configured backoff cap, 10 s per request (alerting.md §3).
pub fn retry_config(cfg: &AlertsConfig) -> RetryConfig {
    RetryConfig {
        max_backoff: cfg.retry_max_backoff,
        timeout: Duration::from_secs(10),
        ..RetryConfig::default()
    }
}

/// The knobs for the daemon's sinks: no retries within a call — the outbox owns every
/// retry, durably, with its own backoff (see [`outbox`]).
pub fn outbox_retry_config() -> RetryConfig {
    RetryConfig {
        max_retries: 0,
        max_rate_limited: 0,
        timeout: Duration::from_secs(10),
        ..RetryConfig::default()
    }
}

/// One sink per `[[alerts.sink]]`, in config order.
pub fn build_sinks(
    cfg: &AlertsConfig,
    retry: RetryConfig,
    stats: Arc<RequestStats>,
) -> Vec<Box<dyn AlertSink>> {
    cfg.sinks
        .iter()
        .map(|s| -> Box<dyn AlertSink> {
            match &s.target {
                AlertTarget::PagerDuty { routing_key, url } => Box::new(pagerduty::PagerDuty::new(
                    &s.name,
                    url,
                    routing_key.clone(),
                    retry.clone(),
                    stats.clone(),
                )),
                AlertTarget::Slack { webhook_url } => Box::new(slack::Slack::new(
                    &s.name,
                    webhook_url.clone(),
                    retry.clone(),
                    stats.clone(),
                )),
                AlertTarget::Webhook {
                    url,
                    secret,
                    previous_secret,
                } => Box::new(webhook::Webhook::new(
                    &s.name,
                    url,
                    secret.clone(),
                    previous_secret.clone(),
                    retry.clone(),
                    stats.clone(),
                )),
            }
        })
        .collect()
}

/// Maps a final answer to the sink's verdict. `broken_body` lets Slack mark its revoked
/// answers broken whatever their status.
pub(crate) fn classify(
    sink: &str,
    answer: &Answer,
    broken_body: &dyn Fn(&str) -> bool,
) -> Result<Delivered, SinkError> {
    let status = answer.status.as_u16();
    // The body is the sink's text: a short, single-line excerpt with every configured
    // secret masked (a sink may echo the request, and the Slack URL is the secret).
    let detail = crate::redact::excerpt(&String::from_utf8_lossy(&answer.body));
    if answer.status.is_success() {
        return Ok(Delivered { status });
    }
    let sink = sink.to_string();
    if broken_body(detail.trim()) || matches!(status, 401 | 403 | 404 | 410) {
        return Err(SinkError::Broken {
            sink,
            status,
            detail,
        });
    }
    if matches!(status, 408 | 429) || answer.status.is_server_error() {
        return Err(SinkError::Transient {
            sink,
            status: Some(status),
            retry_after: retry_after_header(&answer.headers),
            detail,
        });
    }
    Err(SinkError::Rejected {
        sink,
        status,
        detail,
    })
}

/// No answer at all: transient. `show_url` is false where the URL is the secret.
pub(crate) fn no_answer(sink: &str, e: &HttpError, show_url: bool) -> SinkError {
    let detail = if show_url {
        crate::redact::excerpt(&crate::error::chain(e))
    } else {
        match e {
            HttpError::Transport {
                attempts, source, ..
            } => format!(
                "no answer after {attempts} attempts ({})",
                if source.is_timeout() {
                    "timed out"
                } else if source.is_connect() {
                    "connection failed"
                } else {
                    "transport error"
                }
            ),
        }
    };
    SinkError::Transient {
        sink: sink.to_string(),
        status: None,
        retry_after: None,
        detail,
    }
}
