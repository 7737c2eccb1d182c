//! The daemon's HTTP surface: `fn router(state) -> axum::Router`.
//!
//! Routes on `server.listen`: `/livez`, `/readyz`, `/metrics`, `/status`, `/findings`, and
//! the hooks (`/hooks/okta`, `/hooks/graph`) unless `server.hooks_listen` is set, in which case the hooks
//! are served only there ([`hooks_router`]), so the public webhook endpoint exposes
//! nothing else. `/status` and `/findings` name people and their access: when
//! `server.auth_token` is set they require it as a bearer token (compared in constant
//! time; 401 with `WWW-Authenticate: Bearer` otherwise). `/livez`, `/readyz` and
//! `/metrics` stay open: they carry no person (see `crate::metrics`).
//!
//! `/readyz` is 200 when the last full pass succeeded within 3 × `sync.interval`, else 503
//! with a one-line reason. `/findings` is 503 until the first successful pass.
//! Hook receivers wake the reconciler and answer at once; they never feed it, and they
//! answer 404 unless their secret is configured (`hooks.rs`).
//!
//! [`serve`] (`limits.rs`) runs a router on a listener within [`Limits`]: a cap on
//! concurrent connections and a read timeout, so idle floods cannot take health down.
//! The hook bodies are read through the typed shapes of `wire.rs`.
//!
//! Handlers only read the shared state; the daemon writes it after each pass. A poisoned
//! lock is read through (it still holds the last value written). Secrets, tokens and
//! presented credentials never reach a log line or a response.

mod auth;
mod graph;
mod hooks;
mod limits;
pub mod wire;

pub use limits::{serve, Limits, MAX_CONNECTION_AGE};

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};

use crate::http::RequestStats;
use crate::metrics::Metrics;
use crate::secret::Secret;
use crate::triggers::Activator;

/// The Okta Event Hook receiver's settings.
#[derive(Clone, Debug)]
pub struct OktaHook {
    /// The value Okta sends in `header`.
    pub secret: Secret,
    pub header: String,
}

/// The Graph change-notification receiver's settings.
#[derive(Clone, Debug)]
pub struct GraphHook {
    /// The `clientState` every notification item must carry.
    pub client_state: Secret,
    /// The subscription manager, when scimwatch manages subscriptions.
    pub lifecycle: Option<tokio::sync::mpsc::UnboundedSender<crate::triggers::graph::Lifecycle>>,
}

/// What `/readyz` needs.
#[derive(Clone, Debug)]
pub struct Readiness {
    /// The last activation that read its sources and recorded its findings: a full pass
    /// or a periodic tick (issue 13: a tick is no longer a full pass).
    pub last_full_success: Option<DateTime<Utc>>,
    pub interval: Duration,
    /// How far the rolling refresh's oldest read is past `sync.full_refresh` (`None`
    /// before the first pass).
    pub refresh_behind: Option<Duration>,
    pub full_refresh: Duration,
}

/// Shared with the daemon, which updates `status`, `findings` and `ready` after each pass.
pub struct ServerState {
    pub metrics: Arc<Metrics>,
    pub requests: Arc<RequestStats>,
    pub activator: Activator,
    /// The `/status` document.
    pub status: RwLock<serde_json::Value>,
    /// `/status`'s live `alerts` section, kept by the alert outbox (absent without sinks).
    pub alerts: Arc<RwLock<Option<serde_json::Value>>>,
    /// The `/findings` document (findings.md JSON), once a pass has succeeded.
    pub findings: RwLock<Option<String>>,
    pub ready: RwLock<Readiness>,
    /// Set when a long-lived task of the daemon stopped (the daemon is exiting): then
    /// `/livez` and `/readyz` answer 503 with this reason.
    pub dead: RwLock<Option<String>>,
    pub okta_hook: Option<OktaHook>,
    /// `/hooks/graph` (Entra ID), on when `triggers.graph_client_state_env` is set.
    pub graph_hook: Option<GraphHook>,
    pub auth_token: Option<Secret>,
    /// Event uuids already seen by the hook receiver (bounded).
    pub seen_events: Mutex<std::collections::VecDeque<String>>,
}

/// The main router (with the hooks when `with_hooks`).
pub fn router(state: Arc<ServerState>, with_hooks: bool) -> axum::Router {
    let main = axum::Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/findings", get(findings))
        .route("/-/full-pass", axum::routing::post(full_pass))
        .with_state(state.clone());
    if with_hooks {
        main.merge(hooks_router(state))
    } else {
        main
    }
}

/// Only `/hooks/*`, for `server.hooks_listen`.
pub fn hooks_router(state: Arc<ServerState>) -> axum::Router {
    axum::Router::new()
        .route(
            "/hooks/okta",
            get(hooks::okta_verify).post(hooks::okta_deliver),
        )
        .route("/hooks/graph", axum::routing::post(graph::deliver))
        .with_state(state)
}

async fn livez(State(state): State<Arc<ServerState>>) -> Response {
    match read(&state.dead).clone() {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not alive: {why}\n"),
        )
            .into_response(),
    }
}

async fn readyz(State(state): State<Arc<ServerState>>) -> Response {
    if let Some(why) = read(&state.dead).clone() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response();
    }
    let ready = read(&state.ready).clone();
    match readiness(&ready, Utc::now()) {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}

/// Ready when the last pass (full or a tick) succeeded within 3 × the sync interval of
/// `now`, and the rolling refresh is not behind by more than one `sync.full_refresh`.
fn readiness(ready: &Readiness, now: DateTime<Utc>) -> Result<(), String> {
    let Some(last) = ready.last_full_success else {
        return Err("not ready: no successful pass yet".into());
    };
    if let Some(behind) = ready.refresh_behind {
        if behind > ready.full_refresh {
            return Err(format!(
                "not ready: the rolling refresh is {} s behind its window of {} s (see /status refresh)",
                behind.as_secs(),
                ready.full_refresh.as_secs()
            ));
        }
    }
    let window = chrono::Duration::from_std(ready.interval.saturating_mul(3))
        .unwrap_or(chrono::Duration::MAX);
    if now.signed_duration_since(last) <= window {
        Ok(())
    } else {
        Err(format!(
            "not ready: last successful pass at {}",
            last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))
    }
}

async fn metrics(State(state): State<Arc<ServerState>>) -> Response {
    let body = state.metrics.render(&state.requests);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn status(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if let Err(denied) = auth::require_bearer(state.auth_token.as_ref(), &headers, "/status") {
        return denied.into_response();
    }
    axum::Json(state.status_doc()).into_response()
}

impl ServerState {
    /// The `/status` document: the last activation's, with the live alerts section.
    pub fn status_doc(&self) -> serde_json::Value {
        let mut doc = read(&self.status).clone();
        if let Some(alerts) = read(&self.alerts).clone() {
            doc["alerts"] = alerts;
        }
        doc
    }
}

async fn findings(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if let Err(denied) = auth::require_bearer(state.auth_token.as_ref(), &headers, "/findings") {
        return denied.into_response();
    }
    match read(&state.findings).clone() {
        Some(doc) => ([(header::CONTENT_TYPE, "application/json")], doc).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"error": "no successful pass yet"})),
        )
            .into_response(),
    }
}

/// `POST /-/full-pass`: an operator asks for a full pass now. It costs a read of the whole
/// org, so it needs `server.auth_token` as a bearer token (401 without it) and is refused
/// with 403 when no token is configured; 202 once the reconciler is woken.
async fn full_pass(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if state.auth_token.is_none() {
        return (
            StatusCode::FORBIDDEN,
            "a full pass on request needs server.auth_token to be set (it reads the whole org)\n",
        )
            .into_response();
    }
    if let Err(denied) = auth::require_bearer(state.auth_token.as_ref(), &headers, "/-/full-pass") {
        return denied.into_response();
    }
    tracing::info!("An operator asked for a full pass.");
    state.activator.activate(crate::triggers::Reason::FullPass);
    (StatusCode::ACCEPTED, "full pass requested\n").into_response()
}

/// Reads a lock shared with the daemon; a poisoned lock still holds the last value
/// written, which is what we want to serve.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    match lock.read() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn readiness_window_is_three_intervals() {
        let interval = Duration::from_secs(600);
        let none = Readiness {
            last_full_success: None,
            interval,
            refresh_behind: None,
            full_refresh: Duration::from_secs(3600),
        };
        assert!(readiness(&none, at(10_000))
            .unwrap_err()
            .contains("no successful"));
        let ok = Readiness {
            last_full_success: Some(at(10_000)),
            interval,
            refresh_behind: Some(Duration::from_secs(3600)),
            full_refresh: Duration::from_secs(3600),
        };
        assert!(readiness(&ok, at(10_000 + 1800)).is_ok());
        let err = readiness(&ok, at(10_000 + 1801)).unwrap_err();
        assert!(err.contains("1970-01-01T02:46:40Z"), "{err}");
        // A refresh more than one window behind is not ready, however recent the tick.
        let behind = Readiness {
            refresh_behind: Some(Duration::from_secs(3601)),
            ..ok
        };
        let err = readiness(&behind, at(10_000 + 10)).unwrap_err();
        assert!(err.contains("rolling refresh is 3601 s behind"), "{err}");
    }
}
