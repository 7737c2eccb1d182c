//! Okta Event Hooks (okta.md §6): the sim registers a hook, performs Okta's one-time
//! verification, then delivers new hook-eligible System Log events to it in batches the
//! way Okta does, and keeps a log of every request it sent and the answer it got.
//!
//! Contract:
//! - Registration (`POST /_sim/okta/event-hooks`) first sends one `GET <url>` with
//!   `X-Okta-Verification-Challenge` and the configured auth header; the hook is
//!   registered only when it answers 200 `{"verification": <same value>}` within 3 s.
//!   Otherwise the call answers an Okta 400 `E0000001` naming why.
//! - Delivery: one background task per sim (`run`) wakes on each System Log append
//!   (`State::log` signals it), waits `BATCH_WINDOW` so close events share an envelope,
//!   and POSTs each hook the eligible events appended since it was registered, as the
//!   `com.okta.event_hook` envelope with `data.events` exactly as `/api/v1/logs` returns
//!   them. 3 s timeout, at most one retry, on 5xx or a transport error (a timeout
//!   included), never on an answer below 500. With `duplicate_every = n` every n-th
//!   delivery is sent a second time (same envelope, same `eventId`), as at-least-once
//!   delivery allows.
//! - Hooks never backfill: events appended before registration are never sent.
//!
//! Invariants: neither the state mutex nor the hook registry's mutex is ever held across
//! an `.await`; when both are taken, the state is taken first. The auth header's value is
//! write-only: it is never logged, never in `Debug`, never in a listing or the state dump.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::header::{HeaderName, HeaderValue};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::cursor::{okta_time, random_id};
use super::http::{empty, json as json_resp};
use super::okta::err;
use super::state::State;
use super::App;

/// Okta's limit for the verification answer and for each delivery.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// How long the sim waits after an append for more events to share the envelope.
pub const BATCH_WINDOW: Duration = Duration::from_millis(200);
/// Most events in one envelope (Okta does not document its batch size).
pub const MAX_BATCH: usize = 50;

/// Event types Okta can deliver through Event Hooks (okta.md §5 table, column H).
pub fn eligible(event_type: &str) -> bool {
    const EXACT: &[&str] = &[
        "group.user_membership.add",
        "group.user_membership.remove",
        "user.account.update_profile",
        "group.profile.update",
        "application.provision.group_push.mapping.update.or.delete.failed.with.error",
        "system.org.rate_limit.warning",
        "system.org.rate_limit.violation",
    ];
    const PREFIXES: &[&str] = &[
        "user.lifecycle.",
        "group.lifecycle.",
        "group.application_assignment.",
        "application.user_membership.",
    ];
    EXACT.contains(&event_type) || PREFIXES.iter().any(|p| event_type.starts_with(p))
}

/// The auth header's value: write-only.
#[derive(Clone)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// One HTTP request the sim sent to a hook, and its answer.
#[derive(Clone, Debug)]
struct Delivery {
    event_id: String,
    event_uuids: Vec<String>,
    attempt: u8,
    duplicate: bool,
    status: Option<u16>,
    error: Option<String>,
    at: String,
}

impl Delivery {
    fn json(&self) -> Value {
        json!({"event_id": self.event_id, "event_uuids": self.event_uuids, "attempt": self.attempt,
               "duplicate": self.duplicate, "status": self.status, "error": self.error, "at": self.at})
    }
}

#[derive(Debug)]
struct Hook {
    id: String,
    url: String,
    header: HeaderName,
    secret: Secret,
    duplicate_every: Option<u64>,
    /// Index in the System Log of the first event not yet batched for this hook.
    cursor: usize,
    /// Deliveries batched so far (each counted once, duplicates not included).
    batched: u64,
    created: String,
    deliveries: Vec<Delivery>,
}

impl Hook {
    fn json(&self) -> Value {
        json!({"id": self.id, "name": format!("sim hook {}", self.id), "status": "ACTIVE",
               "verificationStatus": "VERIFIED", "created": self.created, "lastUpdated": self.created,
               "url": self.url, "header": self.header.as_str(), "duplicate_every": self.duplicate_every,
               "deliveries": self.deliveries.len(),
               "channel": {"type": "HTTP", "version": "1.0.0",
                           "config": {"uri": self.url, "headers": [],
                                      "authScheme": {"type": "HEADER", "key": self.header.as_str(), "value": null}}}})
    }
}

/// The registered hooks and the client that calls them.
pub struct Hooks {
    client: reqwest::Client,
    registry: Mutex<BTreeMap<String, Hook>>,
}

impl Default for Hooks {
    fn default() -> Self {
        Self::new()
    }
}

impl Hooks {
    pub fn new() -> Hooks {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Okta Event Hooks (scimwatch-sim)")
            .build()
            // Building only fails when the TLS backend cannot start; the default client
            // would meet the same fate, so this is the one place a failure can surface.
            .unwrap_or_default();
        Hooks {
            client,
            registry: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Hook>> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The registered hooks for `GET /_sim/state` (`okta.event_hooks`), secrets left out.
    pub fn snapshot(&self) -> Value {
        Value::Array(self.lock().values().map(Hook::json).collect())
    }
}

/// What the registration body asked for, validated.
struct Wanted {
    url: String,
    header: HeaderName,
    secret: Secret,
    value: HeaderValue,
    duplicate_every: Option<u64>,
}

fn parse_body(body: &Value) -> Result<Wanted, String> {
    let url = body
        .get("url")
        .and_then(Value::as_str)
        .ok_or("url: is required")?;
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        _ => return Err("url: must be an http:// or https:// URL".to_string()),
    }
    let secret = body
        .get("auth_header")
        .and_then(Value::as_str)
        .ok_or("auth_header: is required")?;
    let mut value =
        HeaderValue::from_str(secret).map_err(|_| "auth_header: not a valid header value")?;
    value.set_sensitive(true);
    let header = match body.get("header") {
        None | Some(Value::Null) => HeaderName::from_static("authorization"),
        Some(Value::String(h)) => {
            HeaderName::from_bytes(h.as_bytes()).map_err(|_| "header: not a valid header name")?
        }
        Some(_) => return Err("header: must be a string".to_string()),
    };
    let duplicate_every = match body.get("duplicate_every") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Some(n),
            _ => return Err("duplicate_every: must be a positive integer".to_string()),
        },
    };
    Ok(Wanted {
        url: url.to_string(),
        header,
        secret: Secret(secret.to_string()),
        value,
        duplicate_every,
    })
}

/// Okta's one-time verification: `Err` says why the hook failed it.
async fn verify(client: &reqwest::Client, w: &Wanted) -> Result<(), String> {
    let challenge = random_id(40);
    let resp = client
        .get(&w.url)
        .header("X-Okta-Verification-Challenge", &challenge)
        .header(w.header.clone(), w.value.clone())
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "verification failed: the hook did not answer within 3 s".to_string()
            } else {
                "verification failed: the hook could not be reached".to_string()
            }
        })?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(format!(
            "verification failed: the hook answered HTTP {status}"
        ));
    }
    let body: Value = resp
        .json()
        .await
        .map_err(|_| "verification failed: the hook's answer is not JSON".to_string())?;
    if body.get("verification").and_then(Value::as_str) != Some(challenge.as_str()) {
        return Err(
            "verification failed: the hook did not echo the verification challenge".to_string(),
        );
    }
    Ok(())
}

/// `POST /_sim/okta/event-hooks`.
pub async fn register(app: &App, body: &Value) -> Response {
    let wanted = match parse_body(body) {
        Ok(w) => w,
        Err(why) => return err(400, &why),
    };
    if let Err(why) = verify(&app.hooks.client, &wanted).await {
        // The URL may carry credentials: log its host only.
        let host = url::Url::parse(&wanted.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        tracing::info!(%host, reason = %why, "Event hook failed verification; not registered.");
        return err(400, &why);
    }
    let id = format!("who{}", random_id(17));
    let hook = {
        // State first, then the registry: the dispatcher takes them in the same order, so
        // no event can slip between the cursor read and the hook becoming visible.
        let st = app.state();
        let mut reg = app.hooks.lock();
        let hook = Hook {
            id: id.clone(),
            url: wanted.url,
            header: wanted.header,
            secret: wanted.secret,
            duplicate_every: wanted.duplicate_every,
            cursor: st.okta.log.len(),
            batched: 0,
            created: okta_time(Utc::now()),
            deliveries: Vec::new(),
        };
        let out = hook.json();
        reg.insert(id.clone(), hook);
        out
    };
    tracing::info!(hook = %id, "Event hook verified and registered.");
    json_resp(StatusCode::OK, &hook, "application/json")
}

/// `GET /_sim/okta/event-hooks/{id}/deliveries`.
pub fn deliveries(app: &App, id: &str) -> Response {
    let reg = app.hooks.lock();
    match reg.get(id) {
        Some(h) => json_resp(
            StatusCode::OK,
            &Value::Array(h.deliveries.iter().map(Delivery::json).collect()),
            "application/json",
        ),
        None => err(404, &format!("eventHook {id}")),
    }
}

/// `GET /_sim/okta/event-hooks/{id}`.
pub fn get(app: &App, id: &str) -> Response {
    match app.hooks.lock().get(id) {
        Some(h) => json_resp(StatusCode::OK, &h.json(), "application/json"),
        None => err(404, &format!("eventHook {id}")),
    }
}

/// `DELETE /_sim/okta/event-hooks/{id}`: nothing more is sent to it from now on.
pub fn remove(app: &App, id: &str) -> Response {
    if app.hooks.lock().remove(id).is_some() {
        tracing::info!(hook = %id, "Event hook removed.");
        empty(StatusCode::NO_CONTENT)
    } else {
        err(404, &format!("eventHook {id}"))
    }
}

/// One envelope ready to send to one hook.
struct Batch {
    hook_id: String,
    url: String,
    header: HeaderName,
    value: HeaderValue,
    event_id: String,
    event_uuids: Vec<String>,
    body: String,
    duplicate: bool,
}

/// Takes every hook's new eligible events and cuts them into envelopes, per hook in order.
fn take_batches(app: &App) -> Vec<Vec<Batch>> {
    let st = app.state();
    let mut reg = app.hooks.lock();
    let len = st.okta.log.len();
    let source_base = format!("http://{}/okta/api/v1/eventHooks", app.addr);
    let mut out = Vec::new();
    for hook in reg.values_mut() {
        let from = hook.cursor.min(len);
        hook.cursor = len;
        let events: Vec<&Value> = st.okta.log[from..]
            .iter()
            .map(|e| &e.json)
            .filter(|j| {
                j.get("eventType")
                    .and_then(Value::as_str)
                    .is_some_and(eligible)
            })
            .collect();
        let Ok(mut value) = HeaderValue::from_str(&hook.secret.0) else {
            continue; // validated at registration
        };
        value.set_sensitive(true);
        let mut batches = Vec::new();
        for chunk in events.chunks(MAX_BATCH) {
            hook.batched += 1;
            let event_id = State::new_uuid();
            let envelope = json!({
                "eventType": "com.okta.event_hook", "eventTypeVersion": "1.0", "cloudEventsVersion": "0.1",
                "source": format!("{source_base}/{}", hook.id), "eventId": event_id,
                "eventTime": okta_time(Utc::now()), "contentType": "application/json",
                "data": {"events": chunk}
            });
            batches.push(Batch {
                hook_id: hook.id.clone(),
                url: hook.url.clone(),
                header: hook.header.clone(),
                value: value.clone(),
                event_uuids: chunk
                    .iter()
                    .filter_map(|e| e.get("uuid").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect(),
                event_id,
                body: envelope.to_string(),
                duplicate: hook.duplicate_every.is_some_and(|n| hook.batched % n == 0),
            });
        }
        if !batches.is_empty() {
            out.push(batches);
        }
    }
    out
}

/// Sends one envelope (twice when it is a duplicated one), retrying once on 5xx or a
/// transport error, and records every request in the hook's delivery log.
async fn deliver(app: &App, b: &Batch) {
    let sends = if b.duplicate { 2 } else { 1 };
    for send in 0..sends {
        for attempt in 1..=2u8 {
            if !app.hooks.lock().contains_key(&b.hook_id) {
                return; // removed meanwhile: nothing more goes out
            }
            let at = okta_time(Utc::now());
            let result = app
                .hooks
                .client
                .post(&b.url)
                .header(b.header.clone(), b.value.clone())
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .timeout(TIMEOUT)
                .body(b.body.clone())
                .send()
                .await;
            let (status, error, retry) = match result {
                Ok(resp) => {
                    let code = resp.status().as_u16();
                    (Some(code), None, code >= 500)
                }
                Err(e) if e.is_timeout() => (None, Some("timeout".to_string()), true),
                Err(_) => (None, Some("connection failed".to_string()), true),
            };
            tracing::debug!(hook = %b.hook_id, event_id = %b.event_id, attempt, ?status, ?error, "Delivered an event hook envelope.");
            if let Some(h) = app.hooks.lock().get_mut(&b.hook_id) {
                h.deliveries.push(Delivery {
                    event_id: b.event_id.clone(),
                    event_uuids: b.event_uuids.clone(),
                    attempt,
                    duplicate: send == 1,
                    status,
                    error,
                    at,
                });
            }
            if !retry {
                break;
            }
        }
    }
}

/// The delivery task: runs until `cancel`.
pub async fn run(app: Arc<App>, cancel: CancellationToken) {
    let mut appended = app.state().log_signal.subscribe();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = appended.changed() => if changed.is_err() { return },
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(BATCH_WINDOW) => {}
        }
        // Mark everything seen now: what is appended from here on wakes the next round.
        appended.mark_unchanged();
        let work = take_batches(&app);
        if work.is_empty() {
            continue;
        }
        let mut set = JoinSet::new();
        for batches in work {
            let app = app.clone();
            set.spawn(async move {
                for b in &batches {
                    deliver(&app, b).await;
                }
            });
        }
        tokio::select! {
            _ = cancel.cancelled() => { set.abort_all(); return; }
            _ = async { while set.join_next().await.is_some() {} } => {}
        }
    }
}
