//! Segment Public API JSON shapes (reference/segment.md §5, spec-shapes.json `segment`).
//!
//! Private to `segment/`: nothing outside this module sees these types. Every struct
//! ignores unknown fields (Segment adds undeclared ones such as `policyId`), and fields
//! the spec marks optional, or that a sloppy answer may leave out without harm, default.
//! List payloads are read by `client.rs` as one JSON object: the items under the key
//! each endpoint names (`users`, `userGroups`, ...) decode into these types, and the
//! optional `pagination` next to them into [`Pagination`].

use serde::{Deserialize, Serialize};

/// `{"errors":[RequestError, ...]}`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ErrorBody {
    #[serde(default)]
    pub errors: Vec<RequestError>,
}

/// `{type, message?, field?, data?, status?}`. We branch on the HTTP status, never on `type`.
#[derive(Debug, Deserialize)]
pub(super) struct RequestError {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub field: Option<String>,
}

/// `pagination{current, next?, previous?, totalEntries?}`; `next` absent or null on the
/// last page.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Pagination {
    #[serde(default)]
    pub current: Option<String>,
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct WorkspaceOut {
    pub workspace: WorkspaceV1,
}

#[derive(Debug, Deserialize)]
pub(super) struct WorkspaceV1 {
    pub id: String,
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct RoleV1 {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct LabelV1 {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct SourceV1 {
    pub id: String,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub labels: Option<Vec<LabelV1>>,
}

/// `WarehouseV1{id, metadata, workspaceId, enabled, settings}`: the instance's name, when
/// it has one, is `settings.name` (newer specs may also carry a top-level `name`).
#[derive(Debug, Deserialize)]
pub(super) struct WarehouseV1 {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub settings: Option<serde_json::Value>,
}

impl WarehouseV1 {
    pub fn display_name(&self) -> Option<String> {
        self.name.clone().or_else(|| {
            self.settings
                .as_ref()?
                .get("name")?
                .as_str()
                .map(str::to_string)
        })
    }
}

/// `FunctionV1{id, resourceType, displayName, ...}`: every field optional in the spec.
#[derive(Debug, Deserialize)]
pub(super) struct FunctionV1 {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "displayName", default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct SpaceV1 {
    pub id: String,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// `UserV1{id, name, email, permissions?}`: `GET /users` items carry no permissions,
/// `GET /users/{id}` does.
#[derive(Debug, Deserialize)]
pub(super) struct UserV1 {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub email: String,
    #[serde(default)]
    pub permissions: Option<Vec<PermissionV1>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct UserOut {
    pub user: UserV1,
}

/// `UserGroupV1{id, name, memberCount, permissions?}`.
#[derive(Debug, Deserialize)]
pub(super) struct UserGroupV1 {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub permissions: Option<Vec<PermissionV1>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct UserGroupOut {
    #[serde(rename = "userGroup")]
    pub user_group: UserGroupV1,
}

/// `MinimalUserV1{id, name, email}` (group members).
#[derive(Debug, Deserialize)]
pub(super) struct MinimalUserV1 {
    pub email: String,
}

/// `PermissionV1{roleId, roleName, resources[], labels?}`.
#[derive(Debug, Deserialize)]
pub(super) struct PermissionV1 {
    #[serde(rename = "roleId")]
    pub role_id: String,
    #[serde(rename = "roleName", default)]
    pub role_name: String,
    #[serde(default)]
    pub resources: Vec<PermissionResourceV1>,
    #[serde(default)]
    pub labels: Option<Vec<LabelV1>>,
}

/// `PermissionResourceV1{id, type, labels?}`; `type` is UPPERCASE on the wire.
#[derive(Debug, Deserialize)]
pub(super) struct PermissionResourceV1 {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub labels: Option<Vec<LabelV1>>,
}

/// `AuditEventV1{id, timestamp, type, actor, actorEmail?, resourceId, resourceType,
/// resourceName}`.
#[derive(Debug, Deserialize)]
pub(super) struct AuditEventV1 {
    pub id: String,
    pub timestamp: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub actor: String,
    #[serde(rename = "actorEmail", default)]
    pub actor_email: Option<String>,
    #[serde(rename = "resourceId", default)]
    pub resource_id: String,
    #[serde(rename = "resourceType", default)]
    pub resource_type: String,
    #[serde(rename = "resourceName", default)]
    pub resource_name: String,
}

/// The body of `PUT /groups/{id}/permissions` and `PUT /users/{id}/permissions`: the whole
/// list, which replaces what the group or user holds.
#[derive(Debug, Serialize)]
pub struct ReplacePermissions<'a> {
    pub permissions: Vec<PermissionInput<'a>>,
}

/// One role on some resources (`PermissionInputV1`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionInput<'a> {
    pub role_id: &'a str,
    pub resources: Vec<ResourceInput<'a>>,
}

/// A resource of a grant (`PermissionResourceV1`): its id and type, and the labels of a
/// label-scoped grant.
#[derive(Debug, Serialize)]
pub struct ResourceInput<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<LabelInput<'a>>>,
}

/// `{"key": ..., "value": ...}`.
#[derive(Debug, Serialize)]
pub struct LabelInput<'a> {
    pub key: &'a str,
    pub value: &'a str,
}
