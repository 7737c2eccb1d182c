//! The Microsoft Graph change-notification receiver (`/hooks/graph`; reference
//! graph.md §6).
//!
//! Contract:
//! - Off (404) unless `triggers.graph_client_state_env` (or `_file`) is set.
//! - `POST /hooks/graph?validationToken=…` is the subscription handshake: answered at once
//!   with 200, `Content-Type: text/plain` and the (URL-decoded) token as the body.
//! - A delivery is a batch `{"value": [...]}`. Every item's `clientState` is compared with
//!   the configured one in constant time; items without the right one are ignored, and a
//!   batch with none right (an empty batch or a body that is not a batch included) is
//!   refused (401) without waking anything. The answer is 202,
//!   with no IO before it.
//! - Change notifications wake the reconciler ([`Reason::GraphHook`]); nothing in them is
//!   trusted or passed on. Lifecycle notifications: `missed` wakes it too (a full pass
//!   catches up); `reauthorizationRequired` and `subscriptionRemoved` go to the
//!   subscription manager (when scimwatch manages subscriptions), which reauthorizes and
//!   renews, or creates a new subscription.
//! - The client state and presented values are never logged.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::{self, Denied};
use super::wire::GraphBatch;
use super::ServerState;
use crate::triggers::graph::Lifecycle;
use crate::triggers::Reason;

/// Deliveries larger than this are refused (413).
const MAX_BODY: usize = 1 << 20;
/// Graph's validation tokens are short; anything longer is not one.
const MAX_TOKEN: usize = 4096;

pub(super) async fn deliver(State(state): State<Arc<ServerState>>, req: Request) -> Response {
    let Some(hook) = state.graph_hook.as_ref() else {
        return Denied::Off.into_response();
    };
    let (parts, body) = req.into_parts();
    if let Some(token) = validation_token(parts.uri.query().unwrap_or("")) {
        if token.len() > MAX_TOKEN {
            return StatusCode::BAD_REQUEST.into_response();
        }
        tracing::info!("Answered a Graph subscription validation request.");
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            token,
        )
            .into_response();
    }
    let bytes = match axum::body::to_bytes(Body::new(body), MAX_BODY).await {
        Ok(b) => b,
        Err(error) => {
            tracing::warn!(%error, limit = MAX_BODY, "Refused a Graph notification body (too large or cut short).");
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        }
    };
    // A body that is not a batch carries no clientState: refused like one without it.
    let items = match serde_json::from_slice::<GraphBatch>(&bytes) {
        Ok(batch) => batch.value,
        Err(_) => {
            tracing::warn!(
                bytes = bytes.len(),
                "Rejected a Graph notification that is not a JSON batch."
            );
            return Denied::Header.into_response();
        }
    };
    let mut trusted = 0usize;
    let mut refused = 0usize;
    let mut changes = 0usize;
    let mut missed = false;
    for item in items {
        let presented = item.client_state.as_deref().unwrap_or("");
        if !auth::secret_eq(presented.as_bytes(), &hook.client_state) {
            refused += 1;
            continue;
        }
        trusted += 1;
        let subscription = item.subscription_id.unwrap_or_default();
        match item.lifecycle_event.as_deref() {
            None => changes += 1,
            Some("missed") => missed = true,
            Some("reauthorizationRequired") => {
                hand_over(
                    hook,
                    Lifecycle::ReauthorizationRequired { subscription },
                    "reauthorizationRequired",
                );
            }
            Some("subscriptionRemoved") => {
                hand_over(
                    hook,
                    Lifecycle::SubscriptionRemoved { subscription },
                    "subscriptionRemoved",
                );
                // Deliveries stopped: catch up.
                missed = true;
            }
            Some(other) => {
                tracing::info!(event = %other, "Unknown Graph lifecycle event; ignored.");
            }
        }
    }
    if trusted == 0 {
        tracing::warn!(
            items = refused,
            "Rejected a Graph notification without an item carrying the right clientState."
        );
        return Denied::Header.into_response();
    }
    if refused > 0 {
        tracing::warn!(
            items = refused,
            "Ignored Graph notification items without the right clientState."
        );
    }
    tracing::debug!(changes, missed, "Received a Graph notification delivery.");
    if changes > 0 || missed {
        state.activator.activate(Reason::GraphHook);
    }
    StatusCode::ACCEPTED.into_response()
}

fn hand_over(hook: &super::GraphHook, event: Lifecycle, name: &str) {
    match &hook.lifecycle {
        Some(tx) => {
            if tx.send(event).is_err() {
                tracing::warn!(event = %name, "The Graph subscription manager is gone; lifecycle event dropped.");
            }
        }
        None => {
            tracing::warn!(event = %name, "Graph lifecycle event, but scimwatch does not manage subscriptions (triggers.graph_notification_url is unset); whoever created the subscription must act.");
        }
    }
}

/// The URL-decoded `validationToken` query parameter, if present.
fn validation_token(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "validationToken")
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_validation_token_is_url_decoded() {
        assert_eq!(
            validation_token("validationToken=Validation%3A%20Testing%20client%20application+x"),
            Some("Validation: Testing client application x".to_string())
        );
        assert_eq!(validation_token("other=1"), None);
    }
}
