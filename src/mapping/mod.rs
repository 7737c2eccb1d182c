//! Mapping files (`mappings/*.toml`): which IdP group becomes which Segment group with
//! which grants, documented exceptions, per-workspace policy.
//!
//! - `parse.rs` turns files into rules, with a file:line [`Origin`] on everything and every
//!   problem reported at once (same strictness as `config`).
//! - `resolve.rs` turns rules plus the live catalogs plus the IdP read into the desired
//!   state. Pure: no IO, `now` is a parameter.

pub mod parse;
pub mod resolve;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::config::PolicyConfig;
use crate::model::{Email, GroupRef};

pub use parse::{is_single_email, load_configured, load_dir, parse_files, MappingError};

/// Where a rule was written: the file (relative to the config file's folder, as findings
/// print it) and the 1-based line.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    pub file: String,
    pub line: u32,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// All mapping files, grouped by the workspace they name.
#[derive(Clone, Debug, Default)]
pub struct MappingSet {
    pub workspaces: BTreeMap<String, WorkspaceMapping>,
}

#[derive(Clone, Debug, Default)]
pub struct WorkspaceMapping {
    pub groups: Vec<GroupRule>,
    pub exceptions: Vec<ExceptionRule>,
    /// The one `[policy]` of this workspace's files, if any (with its origin).
    pub policy: Option<(PolicyConfig, Origin)>,
    /// The files that name this workspace.
    pub files: Vec<String>,
}

/// A role named by name or id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoleRef {
    Name(String),
    Id(String),
}

impl RoleRef {
    pub fn text(&self) -> &str {
        match self {
            RoleRef::Name(s) | RoleRef::Id(s) => s,
        }
    }
}

/// What a grant applies to. At most one resource kind per grant (Segment scopes a policy
/// to one kind); none means the WORKSPACE resource ("all current and future").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantScope {
    Workspace,
    Sources(Vec<String>),
    /// WORKSPACE resource restricted by labels (AND across keys).
    Labels(BTreeMap<String, String>),
    Warehouses(Vec<String>),
    Functions(Vec<String>),
    Spaces(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRule {
    pub role: RoleRef,
    pub scope: GrantScope,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRule {
    pub idp_group: GroupRef,
    /// `segment_group`, when given. Otherwise the mirror is named like the IdP group
    /// (for an `idp_group_id` mapping, the name the IdP reports).
    pub segment_group: Option<String>,
    pub justification: Option<String>,
    pub ticket: Option<String>,
    pub grants: Vec<GrantRule>,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExceptionRule {
    pub user: Email,
    pub grants: Vec<GrantRule>,
    /// IdP group names whose mirror groups this person may be in by hand.
    pub groups: Vec<String>,
    pub expires: DateTime<Utc>,
    pub ticket: String,
    pub approved_by: String,
    pub reason: String,
    pub origin: Origin,
}

impl ExceptionRule {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        now < self.expires
    }
}
