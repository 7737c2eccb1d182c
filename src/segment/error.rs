//! Why a Segment request failed, as a typed error ([`SegmentError`]), and how an error
//! answer's body becomes its one-line message. Segment's own readings of a status (a plan
//! without User Groups, a 404 on an id we were just given) live here; the classes come
//! from [`ErrorClass::from_status`] like every other client's.

use reqwest::StatusCode;

use super::wire;
use crate::error::ErrorClass;
use crate::http::HttpError;

const AUTH_HINT: &str = "token missing, invalid, or without permission — reading groups and users needs a Workspace Owner token";
const PLAN_HINT: &str =
    "the workspace's plan has no User Groups; scimwatch needs Segment's Business tier";

/// Why a Segment read failed. Display is one line: the service ("segment workspace
/// production"), the request ("GET https://…/groups/abc/users") and the cause.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("{service}: {request}: {status} unauthorized: {message} ({AUTH_HINT})")]
    Unauthorized {
        service: String,
        request: String,
        status: u16,
        message: String,
    },
    #[error("{service}: {request}: 404 not found: {message}")]
    NotFound {
        service: String,
        request: String,
        message: String,
    },
    #[error("{service}: {request}: 422 validation failed{}: {message}", .field.as_deref().map(|f| format!(" on {f}")).unwrap_or_default())]
    Validation {
        service: String,
        request: String,
        field: Option<String>,
        message: String,
    },
    #[error("{service}: {request}: {status} {message} ({PLAN_HINT})")]
    PlanLimit {
        service: String,
        request: String,
        status: u16,
        message: String,
    },
    #[error("{service}: {request}: 429 rate limited, still after the retries: {message}")]
    RateLimited {
        service: String,
        request: String,
        message: String,
    },
    #[error("{service}: {request}: {status} server error, still after the retries: {message}")]
    Server {
        service: String,
        request: String,
        status: u16,
        message: String,
    },
    #[error("{service}: {request}: {status} {message}")]
    Api {
        service: String,
        request: String,
        status: u16,
        message: String,
    },
    #[error("{service}: {request}: no answer")]
    Transport {
        service: String,
        request: String,
        #[source]
        source: HttpError,
    },
    #[error("{service}: {request}: unexpected answer: {what}")]
    Decode {
        service: String,
        request: String,
        what: String,
    },
    #[error("{service}: {request}: pagination cursor {cursor:?} came back a second time (stopping rather than looping)")]
    RepeatedCursor {
        service: String,
        request: String,
        cursor: String,
    },
    #[error("{service}: a concurrent read failed: {what}")]
    Internal { service: String, what: String },
}

impl SegmentError {
    /// The request that failed ("GET https://…"), when one did.
    pub fn request(&self) -> Option<&str> {
        match self {
            SegmentError::Unauthorized { request, .. }
            | SegmentError::NotFound { request, .. }
            | SegmentError::Validation { request, .. }
            | SegmentError::PlanLimit { request, .. }
            | SegmentError::RateLimited { request, .. }
            | SegmentError::Server { request, .. }
            | SegmentError::Api { request, .. }
            | SegmentError::Transport { request, .. }
            | SegmentError::Decode { request, .. }
            | SegmentError::RepeatedCursor { request, .. } => Some(request),
            SegmentError::Internal { .. } => None,
        }
    }

    /// The one line with the reason first and the request last, for people reading a
    /// list of problems (`validate`): "segment workspace staging: 401 unauthorized: …
    /// (GET https://…)".
    pub fn reason_first(&self) -> String {
        let full = crate::error::chain(self);
        let (Some(request), Some((service, _))) = (self.request(), full.split_once(": ")) else {
            return full;
        };
        match full.strip_prefix(&format!("{service}: {request}: ")) {
            Some(reason) => format!("{service}: {reason} ({request})"),
            None => full,
        }
    }

    /// How a caller should treat this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            SegmentError::Unauthorized { status, .. }
            | SegmentError::Server { status, .. }
            | SegmentError::Api { status, .. } => ErrorClass::from_status(*status),
            SegmentError::RateLimited { .. } => ErrorClass::from_status(429),
            // Segment's own readings of a status: a plan without User Groups needs a
            // person, and a 404 on an id we were just given means the workspace changed
            // under us (worth another read), not a wrong request.
            SegmentError::PlanLimit { .. } => ErrorClass::Auth,
            SegmentError::NotFound { .. } | SegmentError::Transport { .. } => ErrorClass::Transient,
            SegmentError::Validation { .. }
            | SegmentError::Decode { .. }
            | SegmentError::RepeatedCursor { .. }
            | SegmentError::Internal { .. } => ErrorClass::Bug,
        }
    }
}

/// `application/json` or `application/<anything>+json` (parameters ignored).
pub(super) fn is_json(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// The error text of an answer: `errors[].message` joined (with `type` when there is no
/// message), plus the first `field`; a non-JSON answer is described by its content type.
pub(super) fn error_message(
    status: StatusCode,
    json: bool,
    content_type: Option<&str>,
    body: &[u8],
) -> (String, Option<String>) {
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    let parsed: Option<wire::ErrorBody> = if json {
        serde_json::from_slice(body).ok()
    } else {
        None
    };
    match parsed {
        Some(b) if !b.errors.is_empty() => {
            let field = b.errors.iter().find_map(|e| e.field.clone());
            let text: Vec<String> = b
                .errors
                .into_iter()
                .filter_map(|e| e.message.or(e.kind))
                .collect();
            // Text a remote service sends is an excerpt, with configured secrets masked.
            let text = if text.is_empty() {
                reason
            } else {
                crate::redact::excerpt(&text.join("; "))
            };
            (text, field)
        }
        _ if !json => (
            format!(
                "{reason} (answer not JSON: content type {:?})",
                content_type.unwrap_or("")
            ),
            None,
        ),
        _ => (format!("{reason} (no errors in the answer)"), None),
    }
}
