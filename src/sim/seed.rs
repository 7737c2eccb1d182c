//! The seed file (sim.md "Seed file"): typed, strict (unknown keys are errors naming the
//! key and its line), checked for dangling references before anything starts.
//!
//! Never: accept a seed that names an unknown Okta user in a group, an unknown workspace
//! in `pushed_to`, or an unknown role or resource in a grant.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::SimError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    pub okta: OktaSeed,
    #[serde(default)]
    pub segment: SegmentSeed,
    #[serde(default)]
    pub push: PushSeed,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaSeed {
    pub token: String,
    #[serde(default = "default_app_id")]
    pub app_id: String,
    pub rate_limit_per_minute: Option<u32>,
    #[serde(default)]
    pub oauth_client: Vec<OAuthClientSeed>,
    #[serde(default)]
    pub user: Vec<OktaUserSeed>,
    #[serde(default)]
    pub group: Vec<OktaGroupSeed>,
}

impl std::fmt::Debug for OktaSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaSeed")
            .field("token", &"***")
            .field("users", &self.user.len())
            .field("groups", &self.group.len())
            .finish()
    }
}

fn default_app_id() -> String {
    "0oasegment".to_string()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClientSeed {
    pub client_id: String,
    pub public_key_pem: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub dpop: bool,
    #[serde(default = "yes")]
    pub admin_role: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaUserSeed {
    pub login: String,
    pub id: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaGroupSeed {
    pub name: String,
    pub id: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub pushed_to: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentSeed {
    #[serde(default)]
    pub workspace: Vec<WorkspaceSeed>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSeed {
    pub name: String,
    pub id: Option<String>,
    pub token: String,
    pub token_id: Option<String>,
    pub scim_token: Option<String>,
    #[serde(default)]
    pub sources: Vec<SourceSeed>,
    #[serde(default)]
    pub warehouses: Vec<NamedSeed>,
    #[serde(default)]
    pub functions: Vec<NamedSeed>,
    #[serde(default)]
    pub spaces: Vec<NamedSeed>,
    #[serde(default)]
    pub labels: Vec<LabelSeed>,
    #[serde(default)]
    pub ui_users: Vec<UiUserSeed>,
    pub rate_limit_per_minute: Option<u32>,
    #[serde(default)]
    pub user: Vec<SegUserSeed>,
    #[serde(default)]
    pub group: Vec<SegGroupSeed>,
}

impl std::fmt::Debug for WorkspaceSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceSeed")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSeed {
    pub slug: String,
    pub name: Option<String>,
    pub id: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedSeed {
    pub name: String,
    pub id: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSeed {
    pub key: String,
    pub value: String,
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiUserSeed {
    pub email: String,
    pub token: String,
    pub id: Option<String>,
}

impl std::fmt::Debug for UiUserSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiUserSeed")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegUserSeed {
    pub email: String,
    pub id: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub grants: Vec<GrantSeed>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegGroupSeed {
    pub name: String,
    pub id: Option<String>,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub grants: Vec<GrantSeed>,
}

/// The mappings' grant syntax: a role and at most one scope.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSeed {
    pub role: String,
    pub sources: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub warehouses: Option<Vec<String>>,
    pub functions: Option<Vec<String>>,
    pub spaces: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSeed {
    #[serde(default = "default_delay", with = "humantime_serde_compat")]
    pub delay: Duration,
    #[serde(default)]
    pub initial: bool,
}

impl Default for PushSeed {
    fn default() -> Self {
        PushSeed {
            delay: default_delay(),
            initial: false,
        }
    }
}

fn default_delay() -> Duration {
    Duration::from_secs(5)
}

mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// The 1-based line of the first occurrence of `"needle"` in `text` (for semantic errors).
pub fn line_of(text: &str, needle: &str) -> usize {
    let quoted = format!("\"{needle}\"");
    text.lines()
        .position(|l| l.contains(&quoted))
        .map(|i| i + 1)
        .unwrap_or(0)
}

pub fn parse(text: &str) -> Result<Seed, SimError> {
    let seed: Seed = toml::from_str(text).map_err(|e| SimError::Seed {
        message: e.to_string(),
    })?;
    let bad = |key: &str, value: &str, what: &str| SimError::Seed {
        message: format!("line {}: `{key}`: {what} {value:?}", line_of(text, value)),
    };
    let logins: std::collections::HashSet<String> = seed
        .okta
        .user
        .iter()
        .map(|u| u.login.to_lowercase())
        .collect();
    let workspaces: std::collections::HashSet<&str> = seed
        .segment
        .workspace
        .iter()
        .map(|w| w.name.as_str())
        .collect();
    for g in &seed.okta.group {
        for m in &g.members {
            if !logins.contains(&m.to_lowercase()) {
                return Err(bad("okta.group.members", m, "unknown Okta user"));
            }
        }
        for w in &g.pushed_to {
            if !workspaces.contains(w.as_str()) {
                return Err(bad("okta.group.pushed_to", w, "unknown workspace"));
            }
        }
    }
    for u in &seed.okta.user {
        if let Some(s) = &u.status {
            if !super::state::OKTA_STATUSES.contains(&s.as_str()) {
                return Err(bad("okta.user.status", s, "unknown Okta user status"));
            }
        }
    }
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let err = parse("[okta]\ntoken = \"t\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn dangling_member_is_an_error() {
        let err =
            parse("[okta]\ntoken = \"t\"\n[[okta.group]]\nname = \"g\"\nmembers = [\"x@y\"]\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("okta.group.members") && err.contains("line 5"),
            "{err}"
        );
    }
}
