//! Okta's JSON shapes, private to the client. Every struct tolerates unknown fields and
//! missing optional ones; nothing depends on field order.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// `GET /api/v1/groups` item.
#[derive(Debug, Deserialize)]
pub(super) struct Group {
    pub id: String,
    #[serde(default)]
    pub profile: GroupProfile,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct GroupProfile {
    #[serde(default)]
    pub name: Option<String>,
}

/// A User object (`/groups/{id}/users`, `/users`, `/users/{idOrLogin}`).
#[derive(Debug, Deserialize)]
pub(super) struct User {
    pub id: String,
    pub status: String,
    pub profile: UserProfile,
}

#[derive(Debug, Deserialize)]
pub(super) struct UserProfile {
    pub login: String,
    #[serde(default)]
    pub email: Option<String>,
}

/// A System Log event (§5).
#[derive(Debug, Deserialize)]
pub(super) struct LogEvent {
    pub uuid: String,
    pub published: DateTime<Utc>,
    #[serde(rename = "eventType")]
    pub event_type: String,
    #[serde(default)]
    pub actor: Option<Actor>,
    #[serde(default)]
    pub outcome: Option<Outcome>,
    #[serde(default)]
    pub target: Option<Vec<Target>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Actor {
    #[serde(rename = "alternateId", default)]
    pub alternate_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Outcome {
    #[serde(default)]
    pub result: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Target {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(rename = "alternateId", default)]
    pub alternate_id: Option<String>,
    #[serde(rename = "displayName", default)]
    pub display_name: Option<String>,
}

/// Okta's error body (§7).
#[derive(Debug, Default, Deserialize)]
pub(super) struct ApiError {
    #[serde(rename = "errorCode", default)]
    pub error_code: Option<String>,
    #[serde(rename = "errorSummary", default)]
    pub error_summary: Option<String>,
}

/// `POST /oauth2/v1/token` success.
#[derive(Deserialize)]
pub(super) struct Token {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// `POST /oauth2/v1/token` failure (RFC 6749 §5.2).
#[derive(Debug, Default, Deserialize)]
pub(super) struct TokenError {
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
}
