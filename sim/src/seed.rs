//! The seed file (sim.md "Seed file"): typed, strict (unknown keys are errors naming the
//! key and its line), checked for dangling references before anything starts.
//!
//! Never: accept a seed that names an unknown Okta user in a group, an unknown workspace
//! in `pushed_to`, or an unknown role or resource in a grant.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use std::collections::{BTreeSet, HashMap};

use super::cursor::base62_id;
use super::state::{
    minimal_permission, or_from_login, seed_epoch, segment_user_id, Item, OAuthClient, Okta,
    OktaGroup, OktaUser, SegGroup, SegUser, State, UiUser, Workspace,
};
use super::SimError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Optional since the Azure AD issue: a seed names `[okta]`, `[azure]` or both.
    pub okta: Option<OktaSeed>,
    pub azure: Option<AzureSeed>,
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
    /// System Log polling pages carry at most this many events even when more wait
    /// (Okta answers short pages before the end; only an empty page means caught up).
    pub log_page_cap: Option<usize>,
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
    /// The `resourceType` strings the audit trail writes instead of the simulator's
    /// `user` and `user_group` (keys `user`, `user_group`): Segment does not document
    /// them, so tests check that attribution does not depend on them.
    #[serde(default)]
    pub audit_resource_types: BTreeMap<String, String>,
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
    /// Entra-style provisioning: IdP changes under `[azure]` are pushed in cycles.
    #[serde(default = "default_cycle", with = "humantime_serde_compat")]
    pub cycle: Duration,
}

impl Default for PushSeed {
    fn default() -> Self {
        PushSeed {
            delay: default_delay(),
            initial: false,
            cycle: default_cycle(),
        }
    }
}

fn default_cycle() -> Duration {
    Duration::from_secs(40 * 60)
}

/// `[azure]`: an Entra ID tenant with one app registration (the client scimwatch uses).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureSeed {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// Accept certificate assertions whose `x5t` is this certificate's SHA-1 thumbprint.
    pub certificate_pem: Option<String>,
    /// Graph's resource-unit budget per 10 s for this app and tenant (default: unlimited).
    pub resource_units_per_10s: Option<u32>,
    #[serde(default, with = "humantime_opt")]
    pub token_lifetime: Option<Duration>,
    /// How long a `groups/delta` token stays usable (default 7 days); older ones get 410.
    #[serde(default, with = "humantime_opt")]
    pub delta_token_lifetime: Option<Duration>,
    /// Subscriptions expire at most this long after creation or renewal (Graph: 41,760
    /// minutes); shorter so tests can see renewals.
    #[serde(default, with = "humantime_opt")]
    pub subscription_max_lifetime: Option<Duration>,
    /// The application permissions consented to the app (the token's `roles`); default
    /// GroupMember.Read.All, User.Read.All, AuditLog.Read.All. (Extension: lets tests
    /// provoke 403 Authorization_RequestDenied.)
    pub roles: Option<Vec<String>>,
    /// Every paged list starts with an empty page that still carries a nextLink, as Graph
    /// sometimes answers (a client must follow it, not stop). Extension for tests.
    #[serde(default)]
    pub empty_first_pages: bool,
    #[serde(default)]
    pub user: Vec<AzureUserSeed>,
    #[serde(default)]
    pub group: Vec<AzureGroupSeed>,
}

impl std::fmt::Debug for AzureSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureSeed")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("users", &self.user.len())
            .field("groups", &self.group.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureUserSeed {
    /// userPrincipalName.
    pub upn: String,
    #[serde(default = "yes")]
    pub account_enabled: bool,
    /// Defaults to `upn`.
    pub mail: Option<String>,
    pub id: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureGroupSeed {
    /// displayName (not unique in Entra: two groups may share it; give them `id`s).
    pub name: String,
    pub id: Option<String>,
    /// Direct user members, by upn.
    #[serde(default)]
    pub members: Vec<String>,
    /// Direct group members (nested groups), by name (or id).
    #[serde(default)]
    pub member_groups: Vec<String>,
    /// Workspaces the Segment enterprise app provisions this group into.
    #[serde(default)]
    pub pushed_to: Vec<String>,
}

mod humantime_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
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
    if seed.okta.is_none() && seed.azure.is_none() {
        return Err(SimError::Seed {
            message: "the seed names no IdP; add an [okta] or an [azure] section".to_string(),
        });
    }
    let no_users = Vec::new();
    let no_groups = Vec::new();
    let logins: std::collections::HashSet<String> = seed
        .okta
        .as_ref()
        .map_or(&no_users, |o| &o.user)
        .iter()
        .map(|u| u.login.to_lowercase())
        .collect();
    let workspaces: std::collections::HashSet<&str> = seed
        .segment
        .workspace
        .iter()
        .map(|w| w.name.as_str())
        .collect();
    for g in seed.okta.as_ref().map_or(&no_groups, |o| &o.group) {
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
    if let Some(az) = &seed.azure {
        super::graph_state::check_seed(az, &workspaces, text)?;
    }
    for u in seed.okta.as_ref().map_or(&no_users, |o| &o.user) {
        if let Some(s) = &u.status {
            if !super::state::OKTA_STATUSES.contains(&s.as_str()) {
                return Err(bad("okta.user.status", s, "unknown Okta user status"));
            }
        }
    }
    Ok(seed)
}

/// Builds the world at start from a checked seed.
impl State {
    pub fn from_seed(seed: &Seed, text: &str) -> Result<State, SimError> {
        let epoch = seed_epoch();
        let absent;
        let okta_seed = match &seed.okta {
            Some(o) => o,
            None => {
                // No [okta]: an org nobody can authenticate to (no token matches a random one).
                absent = OktaSeed {
                    token: super::cursor::random_id(40),
                    app_id: default_app_id(),
                    rate_limit_per_minute: None,
                    log_page_cap: None,
                    oauth_client: vec![],
                    user: vec![],
                    group: vec![],
                };
                &absent
            }
        };
        let mut okta = Okta {
            token: okta_seed.token.clone(),
            app_id: okta_seed.app_id.clone(),
            rate_limit: okta_seed.rate_limit_per_minute,
            clients: okta_seed
                .oauth_client
                .iter()
                .map(|c| OAuthClient {
                    client_id: c.client_id.clone(),
                    public_key_pem: c.public_key_pem.clone(),
                    scopes: c.scopes.clone(),
                    dpop: c.dpop,
                    admin_role: c.admin_role,
                })
                .collect(),
            users: BTreeMap::new(),
            by_login: HashMap::new(),
            groups: BTreeMap::new(),
            group_by_name: HashMap::new(),
            user_groups: HashMap::new(),
            log: Vec::new(),
            log_page_cap: okta_seed.log_page_cap.filter(|c| *c > 0),
        };
        for u in &okta_seed.user {
            let id = u.id.clone().unwrap_or_else(|| {
                format!(
                    "00u{}",
                    base62_id(&format!("okta-user:{}", u.login.to_lowercase()), 17)
                )
            });
            okta.insert_user(OktaUser {
                id,
                login: u.login.clone(),
                email: u.email.clone().unwrap_or_else(|| u.login.clone()),
                first_name: or_from_login(&u.first_name, &u.login, 0),
                last_name: or_from_login(&u.last_name, &u.login, 1),
                status: u.status.clone().unwrap_or_else(|| "ACTIVE".to_string()),
                created: epoch,
                status_changed: epoch,
                last_updated: epoch,
            });
        }
        for g in &okta_seed.group {
            let id = g.id.clone().unwrap_or_else(|| {
                format!("00g{}", base62_id(&format!("okta-group:{}", g.name), 17))
            });
            let mut members = BTreeSet::new();
            for m in &g.members {
                if let Some(uid) = okta.by_login.get(&m.to_lowercase()) {
                    members.insert(uid.clone());
                    okta.user_groups
                        .entry(uid.clone())
                        .or_default()
                        .insert(id.clone());
                }
            }
            okta.group_by_name.insert(g.name.clone(), id.clone());
            okta.groups.insert(
                id.clone(),
                OktaGroup {
                    id,
                    name: g.name.clone(),
                    description: g.description.clone().unwrap_or_default(),
                    created: epoch,
                    last_updated: epoch,
                    last_membership_updated: epoch,
                    members,
                    pushed_to: g.pushed_to.clone(),
                },
            );
        }
        let mut state = State {
            okta,
            azure: seed
                .azure
                .as_ref()
                .map(super::graph_state::Directory::from_seed),
            seeded_okta: seed.okta.is_some(),
            workspaces: BTreeMap::new(),
            silent: false,
            audit_counter: 0,
            log_signal: tokio::sync::watch::Sender::new(0),
        };
        for w in &seed.segment.workspace {
            let ws = state.workspace_from_seed(w, text)?;
            state.workspaces.insert(w.name.clone(), ws);
        }
        Ok(state)
    }

    fn workspace_from_seed(&self, w: &WorkspaceSeed, text: &str) -> Result<Workspace, SimError> {
        let ws_id =
            w.id.clone()
                .unwrap_or_else(|| base62_id(&format!("segment-workspace:{}", w.name), 22));
        let item = |kind: &str,
                    slug: &str,
                    name: &str,
                    id: &Option<String>,
                    labels: &BTreeMap<String, String>| Item {
            id: id
                .clone()
                .unwrap_or_else(|| base62_id(&format!("segment-{kind}:{ws_id}:{slug}"), 22)),
            slug: slug.to_string(),
            name: name.to_string(),
            labels: labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        let slugify = |n: &str| {
            n.to_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        };
        let sources: Vec<Item> = w
            .sources
            .iter()
            .map(|s| {
                item(
                    "source",
                    &s.slug,
                    s.name.as_deref().unwrap_or(&s.slug),
                    &s.id,
                    &s.labels,
                )
            })
            .collect();
        let named = |kind: &str, v: &[NamedSeed]| -> Vec<Item> {
            v.iter()
                .map(|n| item(kind, &slugify(&n.name), &n.name, &n.id, &n.labels))
                .collect()
        };
        let mut labels: Vec<(String, String, Option<String>)> = w
            .labels
            .iter()
            .map(|l| (l.key.clone(), l.value.clone(), l.description.clone()))
            .collect();
        let spaces = named("space", &w.spaces);
        for i in sources.iter().chain(spaces.iter()) {
            for (k, v) in &i.labels {
                if !labels.iter().any(|(lk, lv, _)| lk == k && lv == v) {
                    labels.push((k.clone(), v.clone(), None));
                }
            }
        }
        let mut ws = Workspace {
            id: ws_id.clone(),
            name: w.name.clone(),
            token: w.token.clone(),
            token_id: w
                .token_id
                .clone()
                .unwrap_or_else(|| base62_id(&format!("segment-token:{}", w.token), 8)),
            scim_token: w.scim_token.clone(),
            rate_limit: w.rate_limit_per_minute,
            ui_users: w
                .ui_users
                .iter()
                .map(|u| UiUser {
                    id: u.id.clone().unwrap_or_else(|| segment_user_id(&u.email)),
                    email: u.email.clone(),
                    token: u.token.clone(),
                })
                .collect(),
            sources,
            warehouses: named("warehouse", &w.warehouses),
            functions: named("function", &w.functions),
            spaces,
            labels,
            users: BTreeMap::new(),
            by_email: HashMap::new(),
            groups: BTreeMap::new(),
            group_by_name: HashMap::new(),
            audit: Vec::new(),
            invites: Vec::new(),
            audit_resource_types: w.audit_resource_types.clone(),
            silent: false,
        };
        let err = |key: &str, value: &str, msg: String| SimError::Seed {
            message: format!(
                "line {}: `{key}` in workspace {:?}: {msg}",
                line_of(text, value),
                w.name
            ),
        };
        for (key, value) in &w.audit_resource_types {
            if !["user", "user_group"].contains(&key.as_str()) {
                return Err(err(
                    "segment.workspace.audit_resource_types",
                    key,
                    format!("unknown key {key:?}; use `user` or `user_group`"),
                ));
            }
            if value.trim().is_empty() {
                return Err(err(
                    "segment.workspace.audit_resource_types",
                    key,
                    format!("the `{key}` value is empty; give the resourceType string to send"),
                ));
            }
        }
        let mut scratch = 0u64;
        for u in &w.user {
            let mut perms = Vec::new();
            for g in &u.grants {
                perms.push(
                    ws.resolve_grant(g)
                        .map_err(|m| err("segment.workspace.user.grants", &g.role, m))?,
                );
            }
            if perms.is_empty() {
                perms.push(minimal_permission(&ws.id));
            }
            let id = u.id.clone().unwrap_or_else(|| segment_user_id(&u.email));
            let name = u.name.clone().unwrap_or_else(|| self.name_for(&u.email));
            ws.by_email.insert(u.email.to_lowercase(), id.clone());
            ws.users.insert(
                id.clone(),
                SegUser {
                    id,
                    email: u.email.clone(),
                    name,
                    permissions: perms,
                },
            );
        }
        for g in &w.group {
            let mut perms = Vec::new();
            for gr in &g.grants {
                perms.push(
                    ws.resolve_grant(gr)
                        .map_err(|m| err("segment.workspace.group.grants", &gr.role, m))?,
                );
            }
            // A seeded group without grants has none: only groups that SCIM creates are
            // documented to start with Minimal Workspace Access.
            let id = g
                .id
                .clone()
                .unwrap_or_else(|| base62_id(&format!("segment-group:{}:{}", ws.id, g.name), 22));
            let mut members = BTreeSet::new();
            for m in &g.members {
                let (uid, _) = ws.ensure_user(&mut scratch, m, &self.name_for(m), None);
                members.insert(uid);
            }
            ws.group_by_name.insert(g.name.clone(), id.clone());
            ws.groups.insert(
                id.clone(),
                SegGroup {
                    id,
                    name: g.name.clone(),
                    members,
                    permissions: perms,
                },
            );
        }
        Ok(ws)
    }
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
