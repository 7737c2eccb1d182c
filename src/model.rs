//! Our vocabulary: users, groups, grants, IdP and Segment snapshots.
//!
//! Nothing in here knows a vendor's JSON. The clients in `idp/` and `segment/` translate
//! wire shapes into these types at the edge; the decision core (`mapping::resolve`,
//! `reconcile::{diff, classify}`) only ever sees these.
//!
//! Why one file (~600 lines): it is the vocabulary every layer imports; one place to read
//! it beats a folder of small files that all import each other.
//!
//! Invariants:
//! - An [`Email`] is always lower-cased and trimmed: comparisons are case-insensitive by
//!   construction, never by remembering to call `to_lowercase`.
//! - Two [`Grant`]s are equal when their role id and resources are equal; the role *name*
//!   is carried for messages only (roles get renamed, ids do not).
//! - "Minimal Workspace Access" is neutral: [`Grant::is_neutral`] says so, and the core
//!   drops neutral grants before comparing anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Role id of "Workspace Owner" in Segment's published examples (and in the simulator).
pub const WORKSPACE_OWNER_ROLE_ID: &str = "1WDUuRLxv84rrfCNUwvkrRtkxnS";
/// Role id of "Minimal Workspace Access", the neutral role SCIM gives everyone.
pub const MINIMAL_ACCESS_ROLE_ID: &str = "1aEWAcU0fArxScocwH9xxLgW7r3";
pub const WORKSPACE_OWNER: &str = "Workspace Owner";
pub const MINIMAL_ACCESS: &str = "Minimal Workspace Access";

/// A lower-cased email address: the join key between the IdP and Segment.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn new(raw: &str) -> Email {
        Email(raw.trim().to_lowercase())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The part after the last `@`, empty when there is none.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<&str> for Email {
    fn from(s: &str) -> Email {
        Email::new(s)
    }
}

// ---------------------------------------------------------------------------------------
// Grants

/// Segment's resource types. There is no DESTINATION (see reference/segment.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResourceType {
    Workspace,
    Source,
    Warehouse,
    Function,
    Space,
}

impl ResourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Workspace => "WORKSPACE",
            ResourceType::Source => "SOURCE",
            ResourceType::Warehouse => "WAREHOUSE",
            ResourceType::Function => "FUNCTION",
            ResourceType::Space => "SPACE",
        }
    }
    pub fn parse(s: &str) -> Option<ResourceType> {
        match s.to_ascii_uppercase().as_str() {
            "WORKSPACE" => Some(ResourceType::Workspace),
            "SOURCE" => Some(ResourceType::Source),
            "WAREHOUSE" => Some(ResourceType::Warehouse),
            "FUNCTION" => Some(ResourceType::Function),
            "SPACE" => Some(ResourceType::Space),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Label {
    pub key: String,
    pub value: String,
}

/// One resource of a policy: `{type, id, labels?}`. Labels only ever appear on WORKSPACE.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Resource {
    #[serde(rename = "type")]
    pub kind: ResourceType,
    pub id: String,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub labels: BTreeSet<Label>,
}

impl Resource {
    pub fn workspace(id: &str) -> Resource {
        Resource {
            kind: ResourceType::Workspace,
            id: id.to_string(),
            labels: BTreeSet::new(),
        }
    }
    /// Stable text form used in finding ids: `TYPE:id[key=value,...]`.
    pub fn key(&self) -> String {
        let mut s = format!("{}:{}", self.kind.as_str(), self.id);
        if !self.labels.is_empty() {
            let labels: Vec<String> = self
                .labels
                .iter()
                .map(|l| format!("{}={}", l.key, l.value))
                .collect();
            s.push('[');
            s.push_str(&labels.join(","));
            s.push(']');
        }
        s
    }
}

/// A policy: a role on a set of resources. Equality ignores `role_name`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Grant {
    pub role_id: String,
    pub role_name: String,
    pub resources: BTreeSet<Resource>,
}

impl Grant {
    pub fn is_neutral(&self) -> bool {
        self.role_id == MINIMAL_ACCESS_ROLE_ID || self.role_name == MINIMAL_ACCESS
    }
    pub fn is_owner(&self) -> bool {
        self.role_id == WORKSPACE_OWNER_ROLE_ID || self.role_name == WORKSPACE_OWNER
    }
    /// `TYPE:id,TYPE:id` over the sorted resources: part of a `direct_grant` subject.
    pub fn resources_key(&self) -> String {
        self.resources
            .iter()
            .map(Resource::key)
            .collect::<Vec<_>>()
            .join(",")
    }
    /// "Workspace Owner on the whole workspace", "Source Admin on source 8AWE8yZRdy", for
    /// messages. [`Grant::describe_with`] names resources from the catalog.
    pub fn describe(&self) -> String {
        self.describe_with(&Catalog::default())
    }

    /// Like [`Grant::describe`], naming sources by slug and other resources by name when
    /// the catalog knows them.
    pub fn describe_with(&self, catalog: &Catalog) -> String {
        let scope: Vec<String> = self
            .resources
            .iter()
            .map(|r| match r.kind {
                ResourceType::Workspace if r.labels.is_empty() => "the whole workspace".to_string(),
                ResourceType::Workspace => {
                    let l: Vec<String> = r
                        .labels
                        .iter()
                        .map(|l| format!("{}:{}", l.key, l.value))
                        .collect();
                    format!("resources labelled {}", l.join(" and "))
                }
                k => format!(
                    "{} {}",
                    k.as_str().to_lowercase(),
                    catalog.display_name(k, &r.id)
                ),
            })
            .collect();
        if scope.is_empty() {
            self.role_name.clone()
        } else {
            format!("{} on {}", self.role_name, scope.join(", "))
        }
    }
    fn key(&self) -> (&str, &BTreeSet<Resource>) {
        (&self.role_id, &self.resources)
    }
}

impl PartialEq for Grant {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Grant {}
impl PartialOrd for Grant {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Grant {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}
impl std::hash::Hash for Grant {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state)
    }
}

// ---------------------------------------------------------------------------------------
// Identity provider

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdpKind {
    Okta,
    AzureAd,
}

impl IdpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdpKind::Okta => "okta",
            IdpKind::AzureAd => "azure_ad",
        }
    }
    /// The vendor's name, for sentences.
    pub fn display(self) -> &'static str {
        match self {
            IdpKind::Okta => "Okta",
            IdpKind::AzureAd => "Entra ID",
        }
    }
}

/// What an IdP account's status means for Segment (product.md, the status table).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum IdpStatus {
    /// Okta ACTIVE, PASSWORD_EXPIRED, LOCKED_OUT, RECOVERY; Entra accountEnabled. Expected.
    Active,
    /// Okta STAGED, PROVISIONED (and transitional states): neither expected nor flagged.
    NotActivated(String),
    /// Okta SUSPENDED: not expected, and SCIM will not remove them.
    Suspended,
    /// Okta DEPROVISIONED, Entra accountEnabled false: not expected; SCIM removes them.
    Deprovisioned,
}

impl IdpStatus {
    /// Maps an Okta `status` string. Unknown values are treated as transitional: they are
    /// neither expected nor flagged (the caller logs them).
    pub fn from_okta(status: &str) -> IdpStatus {
        match status {
            "ACTIVE" | "PASSWORD_EXPIRED" | "LOCKED_OUT" | "RECOVERY" => IdpStatus::Active,
            "SUSPENDED" => IdpStatus::Suspended,
            "DEPROVISIONED" => IdpStatus::Deprovisioned,
            other => IdpStatus::NotActivated(other.to_string()),
        }
    }
    /// Maps Entra's `accountEnabled`: enabled is active; disabled is what Entra's
    /// provisioning deprovisions (`active:false`).
    pub fn from_entra(account_enabled: bool) -> IdpStatus {
        if account_enabled {
            IdpStatus::Active
        } else {
            IdpStatus::Deprovisioned
        }
    }
    pub fn is_active(&self) -> bool {
        matches!(self, IdpStatus::Active)
    }
    /// The vendor word, for messages ("SUSPENDED", "DEPROVISIONED", ...).
    pub fn label(&self) -> String {
        match self {
            IdpStatus::Active => "ACTIVE".into(),
            IdpStatus::NotActivated(s) => s.clone(),
            IdpStatus::Suspended => "SUSPENDED".into(),
            IdpStatus::Deprovisioned => "DEPROVISIONED".into(),
        }
    }
}

/// An IdP account. `key` is the attribute Segment knows them by (`idp.user_attribute`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpUser {
    pub id: String,
    pub login: String,
    pub key: Email,
    pub status: IdpStatus,
}

/// How a mapping names an IdP group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum GroupRef {
    Name(String),
    Id(String),
}

impl GroupRef {
    pub fn text(&self) -> &str {
        match self {
            GroupRef::Name(s) | GroupRef::Id(s) => s,
        }
    }
}

impl fmt::Display for GroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupRef::Name(n) => write!(f, "{n:?}"),
            GroupRef::Id(i) => write!(f, "id {i}"),
        }
    }
}

/// A resolved IdP group with its members (all of them, whatever their status).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpGroup {
    pub id: String,
    pub name: String,
    pub members: Vec<IdpUser>,
}

/// Entra ID: a group nested directly inside a mapped group. Entra provisions only the
/// direct members of an assigned group, so the people it reaches never arrive in Segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NestedGroup {
    pub id: String,
    pub name: String,
    /// Every user it reaches, at any depth (its transitive members), whatever their status.
    pub people: Vec<IdpUser>,
}

/// The nested groups of each mapped IdP group, keyed by the mapped group's id. Empty for
/// IdPs whose groups do not nest (Okta).
pub type NestedGroups = BTreeMap<String, Vec<NestedGroup>>;

/// Entra ID: what the provisioning log says about one user's latest push (findings.md
/// `evidence`): `status` is `success`, `failure`, `skipped` or `warning`; `error_code` and
/// `reason` come from `provisioningStatusInfo.errorInformation`; `time` is the record's
/// `activityDateTime`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub status: String,
    pub error_code: Option<String>,
    pub reason: Option<String>,
    #[serde(with = "evidence_time")]
    pub time: DateTime<Utc>,
}

mod evidence_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        DateTime::<Utc>::deserialize(d)
    }
}

/// Entra ID: the state of one enterprise app's provisioning job
/// (`/servicePrincipals/{id}/synchronization/jobs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvisioningJob {
    pub id: String,
    /// `NotConfigured`, `NotRun`, `Active`, `Paused` or `Quarantine`.
    pub status: String,
    /// `status.quarantine.reason` while in quarantine.
    pub quarantine_reason: Option<String>,
}

impl ProvisioningJob {
    pub fn quarantined(&self) -> bool {
        self.status.eq_ignore_ascii_case("quarantine")
    }
}

/// What reading the mapped groups gives: each reference's outcome, and (Entra ID) the
/// groups nested inside the found ones.
#[derive(Clone, Debug, Default)]
pub struct MappedGroups {
    pub groups: Vec<(GroupRef, GroupRead)>,
    pub nested: NestedGroups,
}

/// The outcome of reading one mapped group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupRead {
    Found(IdpGroup),
    /// No group has that name or id (or the name is ambiguous): `reason` says which.
    Unresolved {
        reason: String,
    },
}

/// Result of looking a Segment member up in the IdP by login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserLookup {
    Found(IdpUser),
    /// The IdP answered "no such user" (404): deleted, or never existed.
    NotFound,
}

/// The IdP changes the core cares about (Okta System Log event types and their Entra
/// equivalents).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IdpEventKind {
    MembershipAdd,
    MembershipRemove,
    UserActivate,
    UserReactivate,
    UserUnsuspend,
    UserDeactivate,
    UserSuspend,
    UserDeleteInitiated,
    UserCreate,
    GroupCreate,
    Other(String),
}

impl IdpEventKind {
    pub fn from_okta(event_type: &str) -> IdpEventKind {
        match event_type {
            "group.user_membership.add" => IdpEventKind::MembershipAdd,
            "group.user_membership.remove" => IdpEventKind::MembershipRemove,
            "user.lifecycle.activate" => IdpEventKind::UserActivate,
            "user.lifecycle.reactivate" => IdpEventKind::UserReactivate,
            "user.lifecycle.unsuspend" => IdpEventKind::UserUnsuspend,
            "user.lifecycle.deactivate" => IdpEventKind::UserDeactivate,
            "user.lifecycle.suspend" => IdpEventKind::UserSuspend,
            "user.lifecycle.delete.initiated" => IdpEventKind::UserDeleteInitiated,
            "user.lifecycle.create" => IdpEventKind::UserCreate,
            "group.lifecycle.create" => IdpEventKind::GroupCreate,
            other => IdpEventKind::Other(other.to_string()),
        }
    }
    /// The vendor's event name, for messages.
    pub fn okta_name(&self) -> &str {
        match self {
            IdpEventKind::MembershipAdd => "group.user_membership.add",
            IdpEventKind::MembershipRemove => "group.user_membership.remove",
            IdpEventKind::UserActivate => "user.lifecycle.activate",
            IdpEventKind::UserReactivate => "user.lifecycle.reactivate",
            IdpEventKind::UserUnsuspend => "user.lifecycle.unsuspend",
            IdpEventKind::UserDeactivate => "user.lifecycle.deactivate",
            IdpEventKind::UserSuspend => "user.lifecycle.suspend",
            IdpEventKind::UserDeleteInitiated => "user.lifecycle.delete.initiated",
            IdpEventKind::UserCreate => "user.lifecycle.create",
            IdpEventKind::GroupCreate => "group.lifecycle.create",
            IdpEventKind::Other(s) => s,
        }
    }
}

/// One IdP change, as the IdP logged it. Targets are matched by id first, then by name /
/// login (lower-cased), since a deleted user or group can only be matched by what the
/// event says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpEvent {
    pub uuid: String,
    pub published: DateTime<Utc>,
    pub kind: IdpEventKind,
    pub user_id: Option<String>,
    /// The user's login (Okta `alternateId`), lower-cased.
    pub user_login: Option<Email>,
    pub group_id: Option<String>,
    pub group_name: Option<String>,
    /// Who made the change (Okta `actor.alternateId`), for messages.
    pub actor: Option<String>,
}

/// Everything one pass read from the IdP. Built by an `IdentityProvider`, consumed by the
/// pure core.
#[derive(Clone, Debug, Default)]
pub struct IdpSnapshot {
    /// One entry per mapped group reference, in the order asked.
    pub groups: Vec<(GroupRef, GroupRead)>,
    /// Segment members no mapped group lists, looked up by key.
    pub lookups: BTreeMap<Email, UserLookup>,
    /// Changes over `idp.event_lookback`, oldest first.
    pub events: Vec<IdpEvent>,
}

// ---------------------------------------------------------------------------------------
// Segment

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub id: String,
    pub name: String,
}

/// A source, warehouse, function or space: anything a grant can name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogItem {
    pub id: String,
    /// Sources have slugs; other kinds may not.
    pub slug: Option<String>,
    pub name: Option<String>,
    pub labels: BTreeSet<Label>,
}

/// What a workspace offers to grant on. Kinds no mapping names are not read and stay
/// empty (`*_read` says whether they were).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub roles: Vec<Role>,
    pub sources: Vec<CatalogItem>,
    pub warehouses: Vec<CatalogItem>,
    pub functions: Vec<CatalogItem>,
    pub spaces: Vec<CatalogItem>,
    pub labels: Vec<Label>,
}

impl Catalog {
    /// A resource's slug or name for messages, else its id.
    pub fn display_name(&self, kind: ResourceType, id: &str) -> String {
        let items = match kind {
            ResourceType::Source => &self.sources,
            ResourceType::Warehouse => &self.warehouses,
            ResourceType::Function => &self.functions,
            ResourceType::Space => &self.spaces,
            ResourceType::Workspace => return id.to_string(),
        };
        items
            .iter()
            .find(|i| i.id == id)
            .and_then(|i| i.slug.clone().or_else(|| i.name.clone()))
            .unwrap_or_else(|| id.to_string())
    }
}

/// Which optional catalog kinds a pass must read for a workspace (from its mappings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CatalogNeeds {
    pub sources: bool,
    pub warehouses: bool,
    pub functions: bool,
    pub spaces: bool,
    pub labels: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentUser {
    pub id: String,
    pub email: Email,
    pub name: String,
    /// Direct (user-level) policies, neutral ones included as read.
    pub direct: Vec<Grant>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentGroup {
    pub id: String,
    pub name: String,
    pub grants: Vec<Grant>,
    pub members: Vec<Email>,
}

/// One Segment audit-trail event (evidence, never state).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: String,
    pub at: DateTime<Utc>,
    /// `type`, e.g. "User Policy Updated".
    pub kind: String,
    pub actor: String,
    pub actor_email: Option<String>,
    pub resource_id: String,
    /// Our classification, not Segment's string: "user", "user_group", or "iam" (a user
    /// or a group, which one unknown); see `segment::audit`.
    pub resource_type: String,
    pub resource_name: String,
}

/// Everything one pass read from one Segment workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceSnapshot {
    /// The workspace's `name` in our config.
    pub name: String,
    /// Segment's workspace id: the WORKSPACE resource id.
    pub id: String,
    pub slug: String,
    pub catalog: Catalog,
    pub users: Vec<SegmentUser>,
    pub groups: Vec<SegmentGroup>,
    /// Audit events over `idp.event_lookback`, any order.
    pub audit: Vec<AuditEvent>,
}
