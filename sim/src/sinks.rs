//! Fake alert sinks (alerting.md §1–3): a PagerDuty Events API v2 receiver
//! (`POST /pagerduty/v2/enqueue`), a Slack incoming-webhook receiver
//! (`POST /slack/hooks/{id…}`, also `/slack/services/{id…}`) and a generic webhook receiver
//! (`POST /webhook/{id}`) that record what they accepted, so alert delivery can be tested
//! end to end, signatures included.
//!
//! Contract:
//! - PagerDuty validates like Events v2: `routing_key` any non-empty string (the real one
//!   wants 32 chars; the sim accepts any key), `event_action` ∈ trigger|acknowledge|resolve,
//!   `dedup_key` ≤ 255 chars and required on acknowledge/resolve (generated on a trigger
//!   without one), and for a trigger `payload.summary` (≤ 1024 chars), `payload.source`,
//!   `payload.severity` ∈ critical|error|warning|info. 202 `{"status":"success",
//!   "message":"Event processed","dedup_key"}`; 400 `{"status":"invalid event",
//!   "message":"Event object is invalid","errors":[…]}`.
//! - Slack accepts a JSON object with a non-empty `text` or `blocks`: 200 `ok`
//!   (text/plain); unparseable → 400 `invalid_payload`, neither field → 400 `no_text`.
//! - The webhook receiver records `{id, headers (lower-cased), body, raw}` (`body` is JSON
//!   when it parses, else the text; `raw` is always the exact text received, so a test can
//!   recompute a signature over the bytes sent) and answers 200.
//! - Failure modes (`POST /_sim/sinks`) apply per sink to the next `count` requests, or
//!   until reset; they are checked before validation (a down sink refuses everything).
//!   Only accepted (2xx) requests are recorded; refused ones are counted per sink.
//!
//! Invariants: the sinks' mutex is never held across an `.await` and never taken together
//! with the state mutex. Recorded bodies are test data, never logged.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::http::{empty, json as json_resp, set};
use super::{App, Req};

const JSON: &str = "application/json";
const SEVERITIES: &[&str] = &["critical", "error", "warning", "info"];
const ACTIONS: &[&str] = &["trigger", "acknowledge", "resolve"];

/// Which receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sink {
    PagerDuty,
    Slack,
    Webhook,
}

impl Sink {
    pub fn parse(s: &str) -> Option<Sink> {
        match s {
            "pagerduty" => Some(Sink::PagerDuty),
            "slack" => Some(Sink::Slack),
            "webhook" => Some(Sink::Webhook),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Sink::PagerDuty => "pagerduty",
            Sink::Slack => "slack",
            Sink::Webhook => "webhook",
        }
    }
}

/// How a sink answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    Error500,
    Error400,
    RateLimited,
    /// Slack and webhook only: the hook was revoked (404 `no_service` for Slack).
    Revoked,
}

impl FailMode {
    fn name(self) -> &'static str {
        match self {
            FailMode::Error500 => "error_500",
            FailMode::Error400 => "error_400",
            FailMode::RateLimited => "rate_limited",
            FailMode::Revoked => "revoked",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Failing {
    mode: FailMode,
    /// Requests left to fail; `None` until reset.
    left: Option<u64>,
    retry_after: u64,
}

#[derive(Default)]
struct Inner {
    pagerduty: Vec<Value>,
    slack: Vec<Value>,
    webhook: Vec<Value>,
    refused: BTreeMap<Sink, u64>,
    modes: BTreeMap<Sink, Failing>,
}

impl Inner {
    fn list(&mut self, sink: Sink) -> &mut Vec<Value> {
        match sink {
            Sink::PagerDuty => &mut self.pagerduty,
            Sink::Slack => &mut self.slack,
            Sink::Webhook => &mut self.webhook,
        }
    }

    /// The failure to apply to this request, if any, consuming one from its count.
    fn take_failure(&mut self, sink: Sink) -> Option<Failing> {
        let f = *self.modes.get(&sink)?;
        match f.left {
            Some(0) => {
                self.modes.remove(&sink);
                None
            }
            Some(1) => {
                self.modes.remove(&sink);
                Some(f)
            }
            Some(n) => {
                if let Some(m) = self.modes.get_mut(&sink) {
                    m.left = Some(n - 1);
                }
                Some(f)
            }
            None => Some(f),
        }
    }
}

/// What the fake sinks received, and how they are told to answer.
#[derive(Default)]
pub struct Sinks {
    inner: Mutex<Inner>,
}

impl Sinks {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `GET /_sim/sinks`.
    pub fn snapshot(&self) -> Value {
        let g = self.lock();
        let refused: serde_json::Map<String, Value> = [Sink::PagerDuty, Sink::Slack, Sink::Webhook]
            .iter()
            .map(|s| {
                (
                    s.name().to_string(),
                    json!(g.refused.get(s).copied().unwrap_or(0)),
                )
            })
            .collect();
        let modes: serde_json::Map<String, Value> = g
            .modes
            .iter()
            .map(|(s, f)| {
                (
                    s.name().to_string(),
                    json!({"mode": f.mode.name(), "count": f.left, "retry_after": f.retry_after}),
                )
            })
            .collect();
        json!({"pagerduty": g.pagerduty, "slack": g.slack, "webhook": g.webhook,
               "refused": refused, "modes": modes})
    }

    /// `DELETE /_sim/sinks`: forget records, refusals and modes.
    pub fn clear(&self) {
        *self.lock() = Inner::default();
    }

    /// `POST /_sim/sinks`: `mode` = `ok` resets the sink.
    fn set_mode(&self, sink: Sink, mode: Option<FailMode>, count: Option<u64>, retry_after: u64) {
        let mut g = self.lock();
        match mode {
            None => {
                g.modes.remove(&sink);
            }
            Some(mode) => {
                g.modes.insert(
                    sink,
                    Failing {
                        mode,
                        left: count,
                        retry_after,
                    },
                );
            }
        }
    }

    fn take_failure(&self, sink: Sink) -> Option<Failing> {
        self.lock().take_failure(sink)
    }

    fn record(&self, sink: Sink, v: Value) {
        self.lock().list(sink).push(v);
    }

    fn refuse(&self, sink: Sink) {
        *self.lock().refused.entry(sink).or_insert(0) += 1;
    }
}

/// `POST /_sim/sinks` `{"sink", "mode", "count"?, "retry_after"?}`.
pub fn control_set(app: &App, body: &Value) -> Response {
    let bad = |msg: &str| json_resp(StatusCode::BAD_REQUEST, &json!({"error": msg}), JSON);
    let Some(sink) = body
        .get("sink")
        .and_then(Value::as_str)
        .and_then(Sink::parse)
    else {
        return bad("sink must be pagerduty, slack or webhook");
    };
    let mode =
        match body.get("mode").and_then(Value::as_str) {
            Some("ok") => None,
            Some("error_500") => Some(FailMode::Error500),
            Some("error_400") => Some(FailMode::Error400),
            Some("rate_limited") => Some(FailMode::RateLimited),
            Some("revoked") if sink != Sink::PagerDuty => Some(FailMode::Revoked),
            _ => return bad(
                "mode must be ok, error_500, error_400, rate_limited or revoked (slack, webhook)",
            ),
        };
    let count = match body.get("count") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Some(n),
            _ => return bad("count must be a positive integer"),
        },
    };
    let retry_after = match body.get("retry_after") {
        None | Some(Value::Null) => 1,
        Some(v) => match v.as_u64() {
            Some(n) => n,
            None => return bad("retry_after must be a number of seconds"),
        },
    };
    app.sinks.set_mode(sink, mode, count, retry_after);
    json_resp(StatusCode::OK, &app.sinks.snapshot()["modes"], JSON)
}

fn text(status: StatusCode, body: &str) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    set(&mut resp, "content-type", "text/plain; charset=utf-8");
    resp
}

fn not_allowed() -> Response {
    let mut resp = empty(StatusCode::METHOD_NOT_ALLOWED);
    set(&mut resp, "allow", "POST");
    resp
}

/// Routes `/pagerduty/…`, `/slack/…` and `/webhook/…`; `None` when the path is none of them.
pub fn handle(app: &App, req: &Req) -> Option<Response> {
    let path = req.path.as_str();
    let (sink, id) = if path == "/pagerduty/v2/enqueue" {
        (Sink::PagerDuty, String::new())
    } else if let Some(rest) = path
        .strip_prefix("/slack/hooks/")
        .or_else(|| path.strip_prefix("/slack/services/"))
    {
        (Sink::Slack, rest.to_string())
    } else if let Some(rest) = path.strip_prefix("/webhook/") {
        (Sink::Webhook, rest.to_string())
    } else {
        return None;
    };
    if id.trim_matches('/').is_empty() && sink != Sink::PagerDuty {
        return None;
    }
    if req.method != Method::POST {
        return Some(not_allowed());
    }
    let resp = match app.sinks.take_failure(sink) {
        Some(f) => fail(sink, f),
        None => match sink {
            Sink::PagerDuty => pagerduty(app, req),
            Sink::Slack => slack(app, req),
            Sink::Webhook => webhook(app, req, &id),
        },
    };
    if !resp.status().is_success() {
        app.sinks.refuse(sink);
    }
    tracing::debug!(
        sink = sink.name(),
        status = resp.status().as_u16(),
        "Fake sink answered."
    );
    Some(resp)
}

fn fail(sink: Sink, f: Failing) -> Response {
    let mut resp = match (sink, f.mode) {
        (Sink::PagerDuty, FailMode::RateLimited) => json_resp(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"status": "throttle event",
                    "message": "Requests for this service are arriving too quickly. Please retry later."}),
            JSON,
        ),
        (Sink::PagerDuty, FailMode::Error400) => pd_invalid(vec!["Simulated failure".to_string()]),
        (Sink::PagerDuty, _) => json_resp(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"status": "error", "message": "Internal Server Error"}),
            JSON,
        ),
        (Sink::Slack, FailMode::RateLimited) => text(StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        (Sink::Slack, FailMode::Error400) => text(StatusCode::BAD_REQUEST, "invalid_payload"),
        (Sink::Slack, FailMode::Error500) => {
            text(StatusCode::INTERNAL_SERVER_ERROR, "rollup_error")
        }
        (Sink::Slack, FailMode::Revoked) => text(StatusCode::NOT_FOUND, "no_service"),
        (Sink::Webhook, FailMode::RateLimited) => {
            text(StatusCode::TOO_MANY_REQUESTS, "rate limited")
        }
        (Sink::Webhook, FailMode::Error400) => text(StatusCode::BAD_REQUEST, "bad request"),
        (Sink::Webhook, FailMode::Error500) => {
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
        (Sink::Webhook, FailMode::Revoked) => text(StatusCode::NOT_FOUND, "not found"),
    };
    if f.mode == FailMode::RateLimited {
        set(&mut resp, "retry-after", &f.retry_after.to_string());
    }
    resp
}

fn pd_invalid(errors: Vec<String>) -> Response {
    json_resp(
        StatusCode::BAD_REQUEST,
        &json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors}),
        JSON,
    )
}

/// Validates an Events v2 alert event; the errors PagerDuty-style, or the dedup key to use.
fn pd_validate(body: &Value) -> Result<Option<String>, Vec<String>> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else {
        return Err(vec!["Event object is not a JSON object".to_string()]);
    };
    if str_of(obj.get("routing_key")).is_none() {
        errors.push("'routing_key' is missing or blank".to_string());
    }
    let action = str_of(obj.get("event_action"));
    match action {
        None => errors.push("'event_action' is missing or blank".to_string()),
        Some(a) if !ACTIONS.contains(&a) => errors.push(
            "'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')"
                .to_string(),
        ),
        Some(_) => {}
    }
    let dedup = match obj.get("dedup_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() > 255 => {
            errors.push(
                "Length of 'dedup_key' is too long (must be 255 characters or fewer)".to_string(),
            );
            None
        }
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::String(_)) => None,
        Some(_) => {
            errors.push("'dedup_key' must be a string".to_string());
            None
        }
    };
    match action {
        Some("acknowledge") | Some("resolve") if dedup.is_none() => {
            errors.push("'dedup_key' is missing or blank".to_string())
        }
        Some("trigger") => {
            let payload = obj.get("payload").and_then(Value::as_object);
            match payload {
                None => errors.push("'payload' is missing or blank".to_string()),
                Some(p) => {
                    match str_of(p.get("summary")) {
                        None => errors.push("'payload.summary' is missing or blank".to_string()),
                        Some(_) => {
                            let len = p
                                .get("summary")
                                .and_then(Value::as_str)
                                .map_or(0, |s| s.chars().count());
                            if len > 1024 {
                                errors.push("Length of 'payload.summary' is too long (must be 1024 characters or fewer)".to_string());
                            }
                        }
                    }
                    if str_of(p.get("source")).is_none() {
                        errors.push("'payload.source' is missing or blank".to_string());
                    }
                    match str_of(p.get("severity")) {
                        None => errors.push("'payload.severity' is missing or blank".to_string()),
                        Some(s) if !SEVERITIES.contains(&s) => errors.push(
                            "'payload.severity' is invalid (must be one of the following: 'critical', 'warning', 'error' or 'info')"
                                .to_string(),
                        ),
                        Some(_) => {}
                    }
                    if let Some(cd) = p.get("custom_details") {
                        if !(cd.is_object() || cd.is_null() || cd.is_string()) {
                            errors.push("'payload.custom_details' must be an object".to_string());
                        }
                    }
                }
            }
        }
        _ => {}
    }
    if errors.is_empty() {
        Ok(dedup)
    } else {
        Err(errors)
    }
}

/// The string at `v` when it has something besides whitespace.
fn str_of(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn new_dedup_key() -> String {
    use rand::Rng as _;
    format!("{:032x}", rand::thread_rng().gen::<u128>())
}

fn pagerduty(app: &App, req: &Req) -> Response {
    let Some(body) = req.json_body() else {
        return pd_invalid(vec!["Event object is not valid JSON".to_string()]);
    };
    let dedup = match pd_validate(&body) {
        Ok(Some(k)) => k,
        Ok(None) => new_dedup_key(),
        Err(errors) => return pd_invalid(errors),
    };
    app.sinks.record(Sink::PagerDuty, body);
    json_resp(
        StatusCode::ACCEPTED,
        &json!({"status": "success", "message": "Event processed", "dedup_key": dedup}),
        JSON,
    )
}

fn slack(app: &App, req: &Req) -> Response {
    let Some(body) = req.json_body().filter(Value::is_object) else {
        return text(StatusCode::BAD_REQUEST, "invalid_payload");
    };
    let has_text = body
        .get("text")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.trim().is_empty());
    let has_blocks = body
        .get("blocks")
        .and_then(Value::as_array)
        .is_some_and(|b| !b.is_empty());
    if !has_text && !has_blocks {
        return text(StatusCode::BAD_REQUEST, "no_text");
    }
    app.sinks.record(Sink::Slack, body);
    text(StatusCode::OK, "ok")
}

fn webhook(app: &App, req: &Req, id: &str) -> Response {
    let mut headers = serde_json::Map::new();
    for (name, value) in &req.headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let key = name.as_str().to_ascii_lowercase();
        match headers.get_mut(&key) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                headers.insert(key, Value::String(v));
            }
        }
    }
    let body = serde_json::from_slice::<Value>(&req.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&req.body).into_owned()));
    let raw = String::from_utf8_lossy(&req.body).into_owned();
    app.sinks.record(
        Sink::Webhook,
        json!({"id": id, "headers": headers, "body": body, "raw": raw}),
    );
    text(StatusCode::OK, "ok")
}
