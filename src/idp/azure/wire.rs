//! Microsoft Graph wire shapes scimwatch reads (reference/graph.md §2, §3, §7). Private to
//! `idp::azure`. Every struct tolerates unknown fields and missing optional ones; nothing
//! depends on field order.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// An OData collection page: `value` and, unless it is the last page, `@odata.nextLink`.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: String,
    pub display_name: Option<String>,
}

/// A `directoryObject` as `/members` and `/transitiveMembers` list them: users, groups,
/// devices, contacts, service principals, told apart by `@odata.type`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryObject {
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub id: String,
    pub display_name: Option<String>,
    pub user_principal_name: Option<String>,
    pub mail: Option<String>,
    pub account_enabled: Option<bool>,
}

impl DirectoryObject {
    pub fn is_user(&self) -> bool {
        self.odata_type.as_deref() == Some("#microsoft.graph.user")
    }
    pub fn is_group(&self) -> bool {
        self.odata_type.as_deref() == Some("#microsoft.graph.group")
    }
}

/// `{"error":{"code","message","innerError":{...}}}`.
#[derive(Debug, Default, Deserialize)]
pub struct ApiError {
    pub error: Option<ApiErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ApiErrorDetail {
    pub code: Option<String>,
    pub message: Option<String>,
}

/// The token endpoint's answer. `expires_in` is a number, or a string on older endpoints.
#[derive(Deserialize)]
pub struct Token {
    pub access_token: String,
    pub expires_in: Option<serde_json::Value>,
}

impl Token {
    pub fn lifetime_secs(&self) -> Option<u64> {
        match &self.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct TokenError {
    pub error: Option<String>,
    pub error_description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryAudit {
    pub id: String,
    pub activity_display_name: Option<String>,
    pub activity_date_time: DateTime<Utc>,
    pub result: Option<String>,
    pub initiated_by: Option<InitiatedBy>,
    #[serde(default)]
    pub target_resources: Vec<TargetResource>,
}

#[derive(Debug, Deserialize)]
pub struct InitiatedBy {
    pub user: Option<Initiator>,
    pub app: Option<Initiator>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Initiator {
    pub user_principal_name: Option<String>,
    pub display_name: Option<String>,
    pub id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetResource {
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub user_principal_name: Option<String>,
    pub display_name: Option<String>,
    #[serde(default)]
    pub modified_properties: Vec<ModifiedProperty>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModifiedProperty {
    pub display_name: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
}

/// `GET /servicePrincipals(appId='…')`.
#[derive(Debug, Deserialize)]
pub struct ServicePrincipal {
    pub id: String,
}

/// A `synchronizationJob`: only what tells a quarantine.
#[derive(Debug, Deserialize)]
pub struct SyncJob {
    pub id: String,
    pub status: Option<SyncJobStatus>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SyncJobStatus {
    pub code: Option<String>,
    pub quarantine: Option<SyncQuarantine>,
}

#[derive(Debug, Deserialize)]
pub struct SyncQuarantine {
    pub reason: Option<String>,
}

/// A `provisioningObjectSummary` (§7): only what makes `evidence`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvisioningRecord {
    pub activity_date_time: DateTime<Utc>,
    pub provisioning_status_info: Option<ProvisioningStatusInfo>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvisioningStatusInfo {
    pub status: Option<String>,
    pub error_information: Option<ErrorInformation>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorInformation {
    pub error_code: Option<String>,
    pub reason: Option<String>,
}

/// A `groups/delta` page: changed groups, then a nextLink or the deltaLink.
#[derive(Debug, Deserialize)]
pub struct DeltaPage {
    #[serde(default = "Vec::new")]
    pub value: Vec<DeltaGroup>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    pub delta_link: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DeltaGroup {
    pub id: String,
    /// Added members, and removed ones (which carry `@removed`).
    #[serde(rename = "members@delta", default)]
    pub members_delta: Vec<serde_json::Value>,
    /// The group itself was deleted (`changed`: soft, `deleted`: for good).
    #[serde(rename = "@removed")]
    pub removed: Option<serde_json::Value>,
}

/// `POST`/`PATCH /subscriptions` answers.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionBody {
    pub id: String,
    pub expiration_date_time: DateTime<Utc>,
}
