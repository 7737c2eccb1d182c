//! A finding: one problem with one subject, as `findings.md` prints it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::model::{Email, Grant, Label, ResourceType};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    UserNotProvisioned,
    MembershipMissing,
    MembershipUnexpected,
    DeactivatedUserPresent,
    GroupNotProvisioned,
    GroupPermissionsDrift,
    DirectGrant,
    UnmanagedUser,
    UnmappedGroup,
    ExceptionExpired,
    MappingUnresolved,
    ExceptionExpiring,
    PersonalAccount,
    TooManyOwners,
    WorkspaceInconsistent,
    /// Entra ID: a mapped group contains a nested group whose people Entra never provisions.
    NestedGroupNotProvisioned,
    /// `enforce.mode = "apply"` did not apply a plan (over the limit, or the last Owner).
    EnforceBlocked,
}

impl Kind {
    pub const ALL: [Kind; 17] = [
        Kind::UserNotProvisioned,
        Kind::MembershipMissing,
        Kind::MembershipUnexpected,
        Kind::DeactivatedUserPresent,
        Kind::GroupNotProvisioned,
        Kind::GroupPermissionsDrift,
        Kind::DirectGrant,
        Kind::UnmanagedUser,
        Kind::UnmappedGroup,
        Kind::ExceptionExpired,
        Kind::MappingUnresolved,
        Kind::ExceptionExpiring,
        Kind::PersonalAccount,
        Kind::TooManyOwners,
        Kind::WorkspaceInconsistent,
        Kind::NestedGroupNotProvisioned,
        Kind::EnforceBlocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::UserNotProvisioned => "user_not_provisioned",
            Kind::MembershipMissing => "membership_missing",
            Kind::MembershipUnexpected => "membership_unexpected",
            Kind::DeactivatedUserPresent => "deactivated_user_present",
            Kind::GroupNotProvisioned => "group_not_provisioned",
            Kind::GroupPermissionsDrift => "group_permissions_drift",
            Kind::DirectGrant => "direct_grant",
            Kind::UnmanagedUser => "unmanaged_user",
            Kind::UnmappedGroup => "unmapped_group",
            Kind::ExceptionExpired => "exception_expired",
            Kind::MappingUnresolved => "mapping_unresolved",
            Kind::ExceptionExpiring => "exception_expiring",
            Kind::PersonalAccount => "personal_account",
            Kind::TooManyOwners => "too_many_owners",
            Kind::WorkspaceInconsistent => "workspace_inconsistent",
            Kind::NestedGroupNotProvisioned => "nested_group_not_provisioned",
            Kind::EnforceBlocked => "enforce_blocked",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Drift,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Drift => "drift",
        }
    }
}

/// Ordered from least to most severe, so `max()` picks the worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributionKind {
    Human,
    #[serde(rename = "self")]
    SelfActor,
    Automation,
    Scim,
    Token,
}

impl AttributionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttributionKind::Human => "human",
            AttributionKind::SelfActor => "self",
            AttributionKind::Automation => "automation",
            AttributionKind::Scim => "scim",
            AttributionKind::Token => "token",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    pub kind: AttributionKind,
    pub actor: String,
    pub actor_email: Option<String>,
    pub event: String,
    #[serde(serialize_with = "ser_time")]
    pub at: DateTime<Utc>,
}

/// `{type, id, labels?}` as findings.md prints a resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceView {
    #[serde(rename = "type")]
    pub kind: ResourceType,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<Label>>,
}

/// `{role, role_id, resources}` as findings.md prints a grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantView {
    pub role: String,
    pub role_id: String,
    pub resources: Vec<ResourceView>,
}

impl From<&Grant> for GrantView {
    fn from(g: &Grant) -> GrantView {
        GrantView {
            role: g.role_name.clone(),
            role_id: g.role_id.clone(),
            resources: g
                .resources
                .iter()
                .map(|r| ResourceView {
                    kind: r.kind,
                    id: r.id.clone(),
                    labels: (!r.labels.is_empty()).then(|| r.labels.iter().cloned().collect()),
                })
                .collect(),
        }
    }
}

/// `mapping_unresolved`'s pointer at the line to fix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingRef {
    pub file: String,
    pub line: u32,
    pub name: String,
    /// The findings this unresolved IdP group name holds back because they follow from it
    /// (`reconcile::suppress`); absent from the JSON when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<Suppressed>,
}

/// One finding held back by an unresolved mapping: `unmapped_group` (with `group`) or
/// `unmanaged_user` (with `user`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppressed {
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    pub kind: Kind,
    pub state: State,
    pub severity: Severity,
    pub workspace: String,
    pub user: Option<Email>,
    pub group: Option<String>,
    pub grant: Option<GrantView>,
    #[serde(serialize_with = "ser_time")]
    pub since: DateTime<Utc>,
    #[serde(serialize_with = "ser_opt_time")]
    pub deadline: Option<DateTime<Utc>>,
    pub attribution: Option<Attribution>,
    pub reverted_by_scim: Option<bool>,
    pub message: String,
    pub remedy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<Vec<GrantView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<Vec<GrantView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping: Option<MappingRef>,
    /// `nested_group_not_provisioned`: the nested group's name (Entra `displayName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nested_group: Option<String>,
    /// `nested_group_not_provisioned`: how many enabled people the nested group reaches
    /// who are not direct members of the mapped group (Entra leaves them out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub people_left_out: Option<u32>,
    /// `enforce_blocked`: the plan that was not applied, as `plan --output json` prints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<serde_json::Value>,
    /// `enforce_blocked`: why it was not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Entra ID: what the provisioning log says about the user of a SCIM-carried finding
    /// that turned to drift (added by the daemon, never by the pure core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<crate::model::Evidence>,
}

impl Finding {
    /// The subject as one line of text, for tables.
    pub fn subject(&self) -> String {
        if let (Some(g), Some(n)) = (&self.group, &self.nested_group) {
            return format!("{g} (nested {n})");
        }
        match (&self.user, &self.group, &self.mapping) {
            (_, _, Some(m)) => format!("{}:{} {:?}", m.file, m.line, m.name),
            (Some(u), Some(g), _) => format!("{u} in {g}"),
            (Some(u), None, _) => u.to_string(),
            (None, Some(g), _) => g.clone(),
            (None, None, _) => self.workspace.clone(),
        }
    }

    /// Counts toward `check`'s exit code 1: drift of severity warning or above.
    pub fn is_actionable(&self) -> bool {
        self.state == State::Drift && self.severity >= Severity::Warning
    }
}

/// The subject of a finding, in the parts its id is computed from (product.md, "Identity
/// of a finding").
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    User(Email),
    Membership {
        group: String,
        user: Email,
    },
    Group(String),
    DirectGrant {
        user: Email,
        role_id: String,
        resources: String,
    },
    Exception {
        user: Email,
        ticket: String,
    },
    Mapping {
        file: String,
        name: String,
    },
    /// `too_many_owners`: the workspace itself.
    Workspace(String),
    /// `workspace_inconsistent`: the user and the consistency set, in its listed order.
    Consistency {
        user: Email,
        workspaces: Vec<String>,
    },
    /// (mirror group, nested IdP group name).
    NestedGroup {
        group: String,
        nested: String,
    },
}

impl Subject {
    fn parts(&self) -> Vec<&str> {
        match self {
            Subject::User(e) => vec![e.as_str()],
            Subject::Membership { group, user } => vec![group, user.as_str()],
            Subject::Group(g) => vec![g],
            Subject::DirectGrant {
                user,
                role_id,
                resources,
            } => {
                vec![user.as_str(), role_id, resources]
            }
            Subject::Exception { user, ticket } => vec![user.as_str(), ticket],
            Subject::Mapping { file, name } => vec![file, name],
            Subject::Workspace(w) => vec![w],
            Subject::Consistency { user, workspaces } => {
                let mut v = vec![user.as_str()];
                v.extend(workspaces.iter().map(String::as_str));
                v
            }
            Subject::NestedGroup { group, nested } => vec![group, nested],
        }
    }
}

/// First 16 hex digits of SHA-256 over workspace, kind and subject joined by U+001F.
pub fn finding_id(workspace: &str, kind: Kind, subject: &Subject) -> String {
    let mut parts = vec![workspace, kind.as_str()];
    parts.extend(subject.parts());
    let digest = Sha256::digest(parts.join("\u{1f}").as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// RFC 3339 with a `Z` and whole seconds, as findings.md shows.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn ser_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(t))
}

fn ser_opt_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_time(t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_16_hex_and_stable_under_email_case() {
        let a = finding_id(
            "production",
            Kind::UnmanagedUser,
            &Subject::User(Email::new("Bob@Acme.test")),
        );
        let b = finding_id(
            "production",
            Kind::UnmanagedUser,
            &Subject::User(Email::new("bob@acme.test")),
        );
        assert_eq!(a, b);
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn id_matches_the_documented_recipe() {
        // sha256("production\x1funmanaged_user\x1fbob@acme.test"), first 8 bytes.
        let digest = Sha256::digest("production\u{1f}unmanaged_user\u{1f}bob@acme.test".as_bytes());
        let expected: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            finding_id(
                "production",
                Kind::UnmanagedUser,
                &Subject::User(Email::new("bob@acme.test"))
            ),
            expected
        );
    }

    #[test]
    fn id_differs_by_workspace_and_kind() {
        let s = Subject::User(Email::new("bob@acme.test"));
        assert_ne!(
            finding_id("a", Kind::UnmanagedUser, &s),
            finding_id("b", Kind::UnmanagedUser, &s)
        );
        assert_ne!(
            finding_id("a", Kind::UnmanagedUser, &s),
            finding_id("a", Kind::UserNotProvisioned, &s)
        );
    }
}
