//! The daemon's HTTP surface: `fn router(state) -> axum::Router`.
//!
//! Routes on `server.listen`: `/livez`, `/readyz`, `/metrics`, `/status`, `/findings`, and
//! the hooks (`/hooks/okta`) unless `server.hooks_listen` is set, in which case the hooks
//! are served only there ([`hooks_router`]), so the public webhook endpoint exposes
//! nothing else. `/status` and `/findings` name people and their access: when
//! `server.auth_token` is set they require it as a bearer token (compared in constant
//! time). Hook receivers wake the reconciler and answer at once; they never feed it.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::Secret;
use crate::http::RequestStats;
use crate::metrics::Metrics;
use crate::triggers::Activator;

/// The Okta Event Hook receiver's settings.
#[derive(Clone, Debug)]
pub struct OktaHook {
    /// The value Okta sends in `header`.
    pub secret: Secret,
    pub header: String,
}

/// What `/readyz` needs.
#[derive(Clone, Debug)]
pub struct Readiness {
    pub last_full_success: Option<DateTime<Utc>>,
    pub interval: Duration,
}

/// Shared with the daemon, which updates `status`, `findings` and `ready` after each pass.
pub struct ServerState {
    pub metrics: Arc<Metrics>,
    pub requests: Arc<RequestStats>,
    pub activator: Activator,
    /// The `/status` document.
    pub status: RwLock<serde_json::Value>,
    /// The `/findings` document (findings.md JSON), once a pass has succeeded.
    pub findings: RwLock<Option<String>>,
    pub ready: RwLock<Readiness>,
    pub okta_hook: Option<OktaHook>,
    pub auth_token: Option<Secret>,
    /// Event uuids already seen by the hook receiver (bounded).
    pub seen_events: Mutex<std::collections::VecDeque<String>>,
}

/// The main router (with the hooks when `with_hooks`).
pub fn router(state: Arc<ServerState>, with_hooks: bool) -> axum::Router {
    let _ = (state, with_hooks);
    todo!()
}

/// Only `/hooks/*`, for `server.hooks_listen`.
pub fn hooks_router(state: Arc<ServerState>) -> axum::Router {
    let _ = state;
    todo!()
}
