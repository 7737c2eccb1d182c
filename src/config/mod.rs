//! `scimwatch.toml`: typed, strict, with positions (`docs/config.md` is the reference).
//!
//! Contract:
//! - Unknown keys are errors; every problem in a file is reported at once, each naming the
//!   file, line, key, what is wrong and, when a near name exists, "did you mean …".
//! - Secrets are read by reference (`*_env`, `*_file`, inline only for testing) into
//!   [`Secret`], whose `Debug`/`Display` never show the value.
//! - Relative paths are resolved against the config file's folder.
//! - `SCIMWATCH__SECTION__KEY` environment variables override scalar keys of top-level
//!   tables; an override naming an unknown key is an error naming the variable (never its
//!   value).
//!
//! Parsing lives in `load.rs` (on top of `strict.rs`, the span-keeping TOML reader shared
//! with `mapping::parse`); this file only holds the types the rest of the program uses.

pub mod limits;
mod load;
pub mod strict;

use std::path::PathBuf;
use std::time::Duration;

use crate::model::{Email, IdpKind};

pub use load::{load, load_str, peek_log_format, ConfigError};
pub use strict::{Problem, Problems};

use crate::secret::Secret;

#[derive(Clone, Debug)]
pub struct Config {
    /// The file this came from (absolute when loaded from disk).
    pub path: PathBuf,
    /// Its folder: relative paths in the config and the `mapping` field of findings are
    /// relative to it.
    pub base_dir: PathBuf,
    pub idp: IdpConfig,
    pub workspaces: Vec<WorkspaceConfig>,
    pub mappings: MappingsConfig,
    pub sync: SyncConfig,
    pub triggers: TriggersConfig,
    pub enforce: EnforceConfig,
    pub store: StoreConfig,
    pub server: ServerConfig,
    pub policy: PolicyConfig,
    /// `[log]`: how logs are written.
    pub log: LogConfig,
    /// `[alerts]`: sinks, routes and hygiene knobs (empty when the section is absent).
    pub alerts: AlertsConfig,
    /// Where each credential was configured, for messages about one that does not work.
    pub credential_keys: CredentialKeys,
    /// Non-fatal notes from loading (an inline secret, ...), to log once.
    pub warnings: Vec<String>,
}

impl Config {
    pub fn workspace(&self, name: &str) -> Option<&WorkspaceConfig> {
        self.workspaces.iter().find(|w| w.name == name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserAttribute {
    Login,
    Email,
    UserPrincipalName,
    Mail,
}

#[derive(Clone, Debug)]
pub struct IdpConfig {
    pub kind: IdpKind,
    /// Okta: the org URL; azure_ad: the Graph base.
    pub url: String,
    pub credential: IdpCredential,
    pub user_attribute: UserAttribute,
    pub propagation_window: Duration,
    pub event_lookback: Duration,
}

#[derive(Clone, Debug)]
pub enum IdpCredential {
    /// Okta SSWS API token.
    OktaToken(Secret),
    /// Okta OAuth 2.0 service app with `private_key_jwt` (and DPoP when `dpop`).
    OktaOAuth(OktaOAuth),
    /// Entra ID app registration (built with the Azure AD issue).
    Azure(AzureCredential),
}

#[derive(Clone, Debug)]
pub struct OktaOAuth {
    pub client_id: String,
    /// PEM text of the RSA or EC private key (read from `private_key_file`).
    pub private_key_pem: Secret,
    pub key_id: Option<String>,
    pub scopes: Vec<String>,
    pub dpop: bool,
}

#[derive(Clone, Debug)]
pub struct AzureCredential {
    pub tenant_id: String,
    pub client_id: String,
    pub secret: AzureSecret,
    pub login_url: String,
}

#[derive(Clone, Debug)]
pub enum AzureSecret {
    ClientSecret(Secret),
    Certificate {
        certificate_pem: String,
        key_pem: Secret,
    },
}

#[derive(Clone, Debug)]
pub struct WorkspaceConfig {
    pub name: String,
    pub api_url: String,
    pub token: Secret,
    pub scim_actors: Vec<String>,
    pub automation_actors: Vec<String>,
    pub self_actor: Option<String>,
    /// Entra ID: the application (client) id of the Segment enterprise app that provisions
    /// this workspace; when set, its provisioning job is checked for quarantine and its
    /// provisioning logs scope the evidence on findings.
    pub entra_app_id: Option<String>,
}

#[derive(Clone, Debug)]
pub struct MappingsConfig {
    /// Absolute, or relative to the current directory when the config came from a string.
    pub dir: PathBuf,
    /// Where `dir` was set (or would be): the config file and the line of `mappings.dir`
    /// (or of `[mappings]`, or 1), for the problem when the folder is missing.
    pub origin: (String, u32),
}

#[derive(Clone, Debug)]
pub struct SyncConfig {
    pub interval: Duration,
    /// Every subject is re-read at least once per this window (rolling refresh; not yet
    /// read by the daemon loop, which today runs a full pass every tick). 1 s ..= 7 days.
    pub full_refresh: Duration,
    /// Subjects of open findings re-read per tick, most severe first (1 ..= 10000).
    pub open_findings_per_tick: u32,
}

#[derive(Clone, Debug)]
pub struct TriggersConfig {
    pub okta_hook_secret: Option<Secret>,
    pub okta_hook_header: String,
    pub system_log_poll: Duration,
    pub audit_poll: Duration,
    pub graph_client_state: Option<Secret>,
    pub graph_notification_url: Option<String>,
    pub graph_delta_poll: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnforceMode {
    Off,
    Plan,
    Apply,
}

#[derive(Clone, Debug)]
pub struct EnforceConfig {
    pub mode: EnforceMode,
    pub max_changes: u32,
    pub revert_expired: bool,
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub retain: Duration,
    pub chain_key: Option<Secret>,
    /// Refuse to start when the store is missing or empty (`store.must_exist`).
    pub must_exist: bool,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: String,
    pub hooks_listen: Option<String>,
    pub auth_token: Option<Secret>,
    /// Concurrent connections per listener (`server.max_connections`).
    pub max_connections: u32,
    /// A connection that sends nothing for this long is closed (`server.read_timeout`).
    pub read_timeout: Duration,
}

/// The config key each credential came from, as a person finds it in the file:
/// `[idp] token_env = "OKTA_API_TOKEN"`, `[[workspace]] "staging" token_env = "…"`.
/// Names of variables and files only, never a secret.
#[derive(Clone, Debug, Default)]
pub struct CredentialKeys {
    pub idp: String,
    /// By workspace name.
    pub workspaces: std::collections::BTreeMap<String, String>,
}

/// `log.format`: logs for people, or one JSON object a line for machines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct LogConfig {
    pub format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnmanagedUsers {
    Alert,
    Ignore,
}

/// `[policy]`: in `scimwatch.toml` the defaults for every workspace; a mapping file's
/// `[policy]` overrides them for its workspace (field by field: `None` means "not set
/// here").
#[derive(Clone, Debug, Default)]
pub struct PolicyConfig {
    pub allow: Option<Vec<Email>>,
    pub unmanaged_users: Option<UnmanagedUsers>,
    pub corporate_domains: Option<Vec<String>>,
    pub max_owners: Option<u32>,
    pub expiry_notice: Option<Duration>,
    /// Only in `scimwatch.toml`.
    pub consistent: Vec<Vec<String>>,
}

/// `[alerts]` (the alerting issue): where alerts go and how they are paced.
#[derive(Clone, Debug)]
pub struct AlertsConfig {
    /// Consecutive clean checks before a resolve is sent.
    pub resolve_after: u32,
    /// More findings than this in one workspace and run become one grouped alert.
    pub group_threshold: u32,
    /// Consecutive failed passes before a `source_unavailable` alert.
    pub source_down_after: u32,
    pub retry_max_backoff: Duration,
    /// How long a failing delivery is retried before it is dead-lettered.
    pub retry_for: Duration,
    pub sinks: Vec<AlertSinkConfig>,
    pub routes: Vec<AlertRoute>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            resolve_after: 2,
            group_threshold: 10,
            source_down_after: 3,
            retry_max_backoff: Duration::from_secs(300),
            retry_for: Duration::from_secs(86_400),
            sinks: Vec::new(),
            routes: Vec::new(),
        }
    }
}

impl AlertsConfig {
    pub fn sink(&self, name: &str) -> Option<&AlertSinkConfig> {
        self.sinks.iter().find(|s| s.name == name)
    }

    /// The sinks of the first route matching (severity, kind, workspace); none when no
    /// route matches. A route without filters matches everything.
    pub fn route(&self, severity: &str, kind: &str, workspace: &str) -> &[String] {
        self.routes
            .iter()
            .find(|r| r.matches(severity, kind, workspace))
            .map(|r| r.sinks.as_slice())
            .unwrap_or(&[])
    }
}

/// `[[alerts.sink]]`.
#[derive(Clone, Debug)]
pub struct AlertSinkConfig {
    pub name: String,
    pub target: AlertTarget,
}

impl AlertSinkConfig {
    pub fn kind(&self) -> &'static str {
        match self.target {
            AlertTarget::PagerDuty { .. } => "pagerduty",
            AlertTarget::Slack { .. } => "slack",
            AlertTarget::Webhook { .. } => "webhook",
        }
    }
}

/// Where a sink delivers. Secrets stay in [`Secret`]; the Slack URL is one.
#[derive(Clone, Debug)]
pub enum AlertTarget {
    PagerDuty {
        routing_key: Secret,
        /// Events API v2 enqueue URL.
        url: String,
    },
    Slack {
        webhook_url: Secret,
    },
    Webhook {
        url: String,
        /// `whsec_<base64>` (checked at load).
        secret: Secret,
        /// The secret being rotated out: a second signature while it is set.
        previous_secret: Option<Secret>,
    },
}

/// `[[alerts.route]]`: `None` filters match everything.
#[derive(Clone, Debug)]
pub struct AlertRoute {
    pub sinks: Vec<String>,
    pub severities: Option<Vec<String>>,
    pub kinds: Option<Vec<String>>,
    pub workspaces: Option<Vec<String>>,
}

impl AlertRoute {
    pub fn matches(&self, severity: &str, kind: &str, workspace: &str) -> bool {
        let ok =
            |f: &Option<Vec<String>>, v: &str| f.as_ref().is_none_or(|l| l.iter().any(|x| x == v));
        ok(&self.severities, severity) && ok(&self.kinds, kind) && ok(&self.workspaces, workspace)
    }
}
