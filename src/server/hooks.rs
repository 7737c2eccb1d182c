//! The Okta Event Hook receiver (`/hooks/okta`; reference okta.md §6).
//!
//! Contract: a delivery only wakes the reconciler ([`Reason::OktaHook`]); nothing in the
//! body is trusted or passed on. The body is read only for event `uuid`s, to drop
//! Okta's at-least-once duplicates. The answer is an immediate `200` with an empty body:
//! no IO happens before it. The configured header is checked in constant time before the
//! body is read; its value is never logged. Off (404) unless a secret is configured.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::{self, Denied};
use super::wire::OktaDelivery;
use super::ServerState;
use crate::triggers::Reason;

/// Deliveries larger than this are refused (413).
const MAX_BODY: usize = 1 << 20;
/// How many event uuids we remember for deduplication.
const SEEN_CAPACITY: usize = 10_000;

/// One-time verification: `GET` with `X-Okta-Verification-Challenge`.
pub(super) async fn okta_verify(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = hook_and_auth(&state, &headers) {
        return denied.into_response();
    }
    let Some(challenge) = headers
        .get("x-okta-verification-challenge")
        .and_then(|v| v.to_str().ok())
    else {
        return (
            StatusCode::BAD_REQUEST,
            "missing X-Okta-Verification-Challenge\n",
        )
            .into_response();
    };
    tracing::info!("Answered the Okta Event Hook verification challenge.");
    axum::Json(serde_json::json!({ "verification": challenge })).into_response()
}

/// A delivery: `POST` with a batch of System Log events.
pub(super) async fn okta_deliver(State(state): State<Arc<ServerState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(denied) = hook_and_auth(&state, &parts.headers) {
        return denied.into_response();
    }
    let bytes = match axum::body::to_bytes(Body::new(body), MAX_BODY).await {
        Ok(b) => b,
        Err(error) => {
            tracing::warn!(%error, limit = MAX_BODY, "Refused an Okta Event Hook body (too large or cut short).");
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        }
    };
    let wake = match event_uuids(&bytes) {
        Some(uuids) => {
            let mut seen = match state.seen_events.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            let total = uuids.len();
            let fresh = uuids
                .into_iter()
                .filter(|u| match u {
                    Some(u) => remember(&mut seen, u),
                    // An event without a uuid cannot be deduplicated: treat it as new.
                    None => true,
                })
                .count();
            tracing::debug!(
                events = total,
                new = fresh,
                "Received an Okta Event Hook delivery."
            );
            fresh > 0
        }
        None => {
            tracing::warn!(
                bytes = bytes.len(),
                "Could not read events from an Okta Event Hook delivery; waking the reconciler anyway."
            );
            true
        }
    };
    if wake {
        state.activator.activate(Reason::OktaHook);
    }
    StatusCode::OK.into_response()
}

/// `Ok` when the hook is configured and the request carries its header; else the 404 or
/// 401 to send.
fn hook_and_auth(state: &ServerState, headers: &HeaderMap) -> Result<(), Denied> {
    let Some(hook) = state.okta_hook.as_ref() else {
        return Err(Denied::Off);
    };
    let presented = headers.get(hook.header.as_str()).map(|v| v.as_bytes());
    match presented {
        Some(p) if auth::secret_eq(p, &hook.secret) => Ok(()),
        other => {
            tracing::warn!(
                header = %hook.header,
                presented = other.is_some(),
                "Rejected an Okta Event Hook request without the right shared secret."
            );
            Err(Denied::Header)
        }
    }
}

/// `data.events[].uuid` of a delivery (`None` per event without one); `None` when the
/// body is not JSON or has no `data.events` array.
fn event_uuids(body: &[u8]) -> Option<Vec<Option<String>>> {
    let delivery: OktaDelivery = serde_json::from_slice(body).ok()?;
    Some(delivery.data.events.into_iter().map(|e| e.uuid).collect())
}

/// Records `uuid`; `true` when it was not seen before. Keeps the last [`SEEN_CAPACITY`].
fn remember(seen: &mut VecDeque<String>, uuid: &str) -> bool {
    if seen.iter().any(|s| s == uuid) {
        return false;
    }
    if seen.len() >= SEEN_CAPACITY {
        seen.pop_front();
    }
    seen.push_back(uuid.to_owned());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_read_leniently() {
        let body = br#"{"eventType":"com.okta.event_hook","extra":1,
            "data":{"events":[{"uuid":"a","published":"x"},{"eventType":"y"}]}}"#;
        assert_eq!(event_uuids(body), Some(vec![Some("a".to_string()), None]));
        assert_eq!(event_uuids(b"not json"), None);
        assert_eq!(event_uuids(br#"{"data":{}}"#), None);
    }

    #[test]
    fn remembered_uuids_are_bounded() {
        let mut seen = VecDeque::new();
        assert!(remember(&mut seen, "first"));
        assert!(!remember(&mut seen, "first"));
        for i in 0..SEEN_CAPACITY {
            remember(&mut seen, &i.to_string());
        }
        assert_eq!(seen.len(), SEEN_CAPACITY);
        // "first" was evicted, so it counts as new again.
        assert!(remember(&mut seen, "first"));
    }
}
