//! scimwatch.toml → [`Config`](super::Config).
//!
//! Contract: every section of `config.md` is read with the strict reader of `strict.rs`,
//! defaults are applied exactly as `config.md` lists them, relative paths are resolved
//! against the config file's folder, secrets are read by reference and every problem is
//! reported at once. Must never: put a secret value into a problem, a warning or a log;
//! silently skip a key it does not know.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::DeTable;

use super::strict::{did_you_mean, read_policy, Override, PolicyPlace, Source, Table};
use super::{
    AlertRoute, AlertSinkConfig, AlertTarget, AlertsConfig, AzureCredential, AzureSecret, Config,
    EnforceConfig, EnforceMode, IdpConfig, IdpCredential, MappingsConfig, OktaOAuth, Problem,
    Problems, Secret, ServerConfig, StoreConfig, SyncConfig, TriggersConfig, UserAttribute,
    WorkspaceConfig,
};
use crate::model::IdpKind;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Problems),
}

/// The top-level tables whose scalar keys `SCIMWATCH__SECTION__KEY` may set.
const OVERRIDABLE: [&str; 8] = [
    "idp", "mappings", "sync", "triggers", "enforce", "store", "server", "policy",
];

/// Hook, API and chain-key secrets shorter than this are refused.
const MIN_SECRET_BYTES: usize = 16;

const DEFAULT_OKTA_SCOPES: [&str; 3] = ["okta.groups.read", "okta.users.read", "okta.logs.read"];

// "7y" in humantime: a year is 365.25 days.
const fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}
const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// Loads the config from `path`, else `$SCIMWATCH_CONFIG`, else `./scimwatch.toml`, with
/// `SCIMWATCH__SECTION__KEY` overrides from the process environment.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let shown = match path {
        Some(p) => p.to_path_buf(),
        None => match env.get("SCIMWATCH_CONFIG") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from("scimwatch.toml"),
        },
    };
    let text = std::fs::read_to_string(&shown).map_err(|source| ConfigError::Io {
        path: shown.clone(),
        source,
    })?;
    let abs = std::path::absolute(&shown).map_err(|source| ConfigError::Io {
        path: shown.clone(),
        source,
    })?;
    let base_dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
    load_text(&text, &shown.display().to_string(), abs, base_dir, &env)
}

/// Parses config text as if it were the file `file`; `env` stands for the process
/// environment (secret references and overrides are looked up in it).
pub fn load_str(
    text: &str,
    file: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    let base_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    load_text(
        text,
        &file.display().to_string(),
        file.to_path_buf(),
        base_dir,
        env,
    )
}

struct Ctx<'e> {
    env: &'e BTreeMap<String, String>,
    base_dir: PathBuf,
    file: String,
    warnings: Vec<String>,
}

impl Ctx<'_> {
    fn resolve(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            self.base_dir.join(p)
        }
    }
}

/// The three ways of giving one secret: `<name>_env`, `<name>_file`, inline `<name>`.
struct SecretKeys {
    env: &'static str,
    file: &'static str,
    /// `None` where config.md offers no inline form.
    inline: Option<&'static str>,
}

const fn keys3(env: &'static str, file: &'static str, inline: &'static str) -> SecretKeys {
    SecretKeys {
        env,
        file,
        inline: Some(inline),
    }
}

enum SecretRead {
    Absent,
    /// Set, but wrong; the problem is recorded.
    Invalid,
    Found(Secret, &'static str),
}

/// Reads one secret by reference. Exactly one form may be set.
fn read_secret(
    t: &mut Table<'_, '_>,
    keys: &SecretKeys,
    ctx: &mut Ctx<'_>,
    out: &mut Vec<Problem>,
) -> SecretRead {
    let mut set: Vec<&'static str> = Vec::new();
    for k in [Some(keys.env), Some(keys.file), keys.inline]
        .into_iter()
        .flatten()
    {
        if t.has(k) {
            set.push(k);
        }
    }
    match set.as_slice() {
        [] => return SecretRead::Absent,
        [_] => {}
        many => {
            let names: Vec<String> = many.iter().map(|k| format!("`{k}`")).collect();
            let how_many = if many.len() == 2 { "both" } else { "all" };
            out.push(t.key_problem(
                many[1],
                format!(
                    "{} are {how_many} set for one secret; keep exactly one (prefer `{}`)",
                    names.join(" and "),
                    keys.env
                ),
            ));
            return SecretRead::Invalid;
        }
    }
    let key = set[0];
    if key == keys.env {
        let Some(var) = t.opt_str(key, out) else {
            return SecretRead::Invalid;
        };
        match ctx.env.get(&var) {
            None => {
                out.push(t.key_problem(
                    key,
                    format!("names the environment variable `{var}`, which is not set; set it or fix the name"),
                ));
                SecretRead::Invalid
            }
            Some(v) if v.trim().is_empty() => {
                out.push(t.key_problem(
                    key,
                    format!(
                        "the environment variable `{var}` is set but empty; give it the secret"
                    ),
                ));
                SecretRead::Invalid
            }
            Some(v) => SecretRead::Found(Secret::new(v.trim()), key),
        }
    } else if key == keys.file {
        let Some(p) = t.opt_str(key, out) else {
            return SecretRead::Invalid;
        };
        let path = ctx.resolve(&p);
        match std::fs::read_to_string(&path) {
            Err(e) => {
                out.push(t.key_problem(
                    key,
                    format!(
                        "cannot read `{}` ({e}); fix the path or the file's permissions",
                        path.display()
                    ),
                ));
                SecretRead::Invalid
            }
            Ok(v) if v.trim().is_empty() => {
                out.push(t.key_problem(
                    key,
                    format!("`{}` is empty; write the secret into it", path.display()),
                ));
                SecretRead::Invalid
            }
            Ok(v) => SecretRead::Found(Secret::new(v.trim()), key),
        }
    } else {
        let Some(v) = t.opt_str(key, out) else {
            return SecretRead::Invalid;
        };
        if v.trim().is_empty() {
            out.push(t.key_problem(key, "is empty; give the secret"));
            return SecretRead::Invalid;
        }
        ctx.warnings.push(format!(
            "{}: `{}` holds a secret inline; use `{}` or `{}` outside local testing",
            ctx.file,
            t.key_path(key),
            keys.env,
            keys.file
        ));
        SecretRead::Found(Secret::new(v.trim()), key)
    }
}

/// An optional secret that must be at least [`MIN_SECRET_BYTES`] long.
fn read_strong_secret(
    t: &mut Table<'_, '_>,
    keys: &SecretKeys,
    ctx: &mut Ctx<'_>,
    out: &mut Vec<Problem>,
) -> Option<Secret> {
    match read_secret(t, keys, ctx, out) {
        SecretRead::Found(s, key) => {
            if s.expose().len() < MIN_SECRET_BYTES {
                out.push(t.key_problem(
                    key,
                    format!("the secret is shorter than {MIN_SECRET_BYTES} bytes; use a longer random value"),
                ));
                None
            } else {
                Some(s)
            }
        }
        SecretRead::Absent | SecretRead::Invalid => None,
    }
}

/// A URL with an http(s) scheme, without a trailing slash.
fn check_url(t: &Table<'_, '_>, key: &str, value: &str, out: &mut Vec<Problem>) -> Option<String> {
    match url::Url::parse(value) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {
            Some(value.trim_end_matches('/').to_string())
        }
        Ok(_) => {
            out.push(t.key_problem(
                key,
                format!("{value:?} is not an http(s) URL; write it like \"https://acme.okta.com\""),
            ));
            None
        }
        Err(e) => {
            out.push(t.key_problem(
                key,
                format!("{value:?} is not a URL ({e}); write it like \"https://acme.okta.com\""),
            ));
            None
        }
    }
}

/// `host:port`.
fn check_listen(
    t: &Table<'_, '_>,
    key: &str,
    value: String,
    out: &mut Vec<Problem>,
) -> Option<String> {
    let ok = value
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if ok {
        Some(value)
    } else {
        out.push(t.key_problem(
            key,
            format!("{value:?} is not an address; write it like \"127.0.0.1:9464\""),
        ));
        None
    }
}

/// Picks one of `choices` for `key`, with "did you mean".
fn choice<T: Copy>(
    t: &Table<'_, '_>,
    key: &str,
    value: &str,
    choices: &[(&str, T)],
    out: &mut Vec<Problem>,
) -> Option<T> {
    if let Some((_, v)) = choices.iter().find(|(name, _)| *name == value) {
        return Some(*v);
    }
    let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
    let mut p = t.key_problem(
        key,
        format!(
            "{value:?} is not a choice; write one of {}",
            names.join(", ")
        ),
    );
    p.hint = did_you_mean(value, choices.iter().map(|(n, _)| *n));
    out.push(p);
    None
}

/// Splits `SCIMWATCH__SECTION__KEY` variables by section.
fn env_overrides(
    src: &Source,
    env: &BTreeMap<String, String>,
    out: &mut Vec<Problem>,
) -> BTreeMap<&'static str, Vec<Override>> {
    let mut by_section: BTreeMap<&'static str, Vec<Override>> = BTreeMap::new();
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("SCIMWATCH__") else {
            continue;
        };
        let parts: Vec<&str> = rest.split("__").collect();
        let [section, key] = parts.as_slice() else {
            out.push(src.problem(
                None,
                var.clone(),
                "environment overrides take the form SCIMWATCH__SECTION__KEY and set one value of a top-level table; set nested keys in the file",
                None,
            ));
            continue;
        };
        let section_lc = section.to_lowercase();
        let Some(known) = OVERRIDABLE.iter().find(|s| **s == section_lc) else {
            let message = if section_lc == "workspace" {
                "[[workspace]] entries cannot be overridden from the environment; set them in the file (their secrets come through token_env / token_file)".to_string()
            } else {
                format!(
                    "environment override names unknown section `{section_lc}`; unset the variable or fix its name (sections: {})",
                    OVERRIDABLE.join(", ")
                )
            };
            let hint = did_you_mean(&section_lc, OVERRIDABLE)
                .map(|s| format!("SCIMWATCH__{}__{key}", s.to_uppercase()));
            out.push(src.problem(None, var.clone(), message, hint));
            continue;
        };
        by_section.entry(known).or_default().push(Override {
            var: var.clone(),
            key: key.to_lowercase(),
            value: value.clone(),
        });
    }
    by_section
}

fn load_text(
    text: &str,
    shown: &str,
    path: PathBuf,
    base_dir: PathBuf,
    env: &BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    let src = Source::new(shown, text);
    let mut out: Vec<Problem> = Vec::new();
    let Some(doc) = src.parse(text, &mut out) else {
        return Err(ConfigError::Invalid(Problems(out)));
    };
    let mut ctx = Ctx {
        env,
        base_dir,
        file: shown.to_string(),
        warnings: Vec::new(),
    };
    let mut overrides = env_overrides(&src, env, &mut out);
    let empty = DeTable::new();
    let mut root = Table::root(&src, &doc);

    // Workspaces first: [policy] consistent refers to their names.
    let workspaces = read_workspaces(&mut root, &mut ctx, &mut out);
    let names: Vec<String> = workspaces.iter().map(|w| w.name.clone()).collect();

    let mut t = section(&mut root, &src, &empty, "idp", &mut overrides, &mut out);
    let idp = read_idp(&mut t, &mut ctx, &mut out);
    t.finish(&mut out);

    let mut t = section(
        &mut root,
        &src,
        &empty,
        "mappings",
        &mut overrides,
        &mut out,
    );
    let dir = t
        .opt_str("dir", &mut out)
        .unwrap_or_else(|| "mappings".into());
    let mappings = MappingsConfig {
        dir: ctx.resolve(&dir),
    };
    t.finish(&mut out);

    let mut t = section(&mut root, &src, &empty, "sync", &mut overrides, &mut out);
    let interval = t.duration_or("interval", minutes(5), &mut out);
    if interval.is_zero() {
        out.push(t.key_problem("interval", "must be longer than zero; write it like \"5m\""));
    }
    let (full_refresh, open_findings_per_tick) = read_sync_refresh(&mut t, &mut out);
    let sync = SyncConfig {
        interval,
        full_refresh,
        open_findings_per_tick,
    };
    t.finish(&mut out);

    let mut t = section(
        &mut root,
        &src,
        &empty,
        "triggers",
        &mut overrides,
        &mut out,
    );
    let triggers = read_triggers(&mut t, &mut ctx, &mut out);
    t.finish(&mut out);

    let mut t = section(&mut root, &src, &empty, "enforce", &mut overrides, &mut out);
    let mode = t
        .opt_str("mode", &mut out)
        .and_then(|m| {
            choice(
                &t,
                "mode",
                &m,
                &[
                    ("off", EnforceMode::Off),
                    ("plan", EnforceMode::Plan),
                    ("apply", EnforceMode::Apply),
                ],
                &mut out,
            )
        })
        .unwrap_or(EnforceMode::Off);
    if matches!(mode, EnforceMode::Apply) {
        let missing: Vec<&str> = workspaces
            .iter()
            .filter(|w| w.self_actor.is_none())
            .map(|w| w.name.as_str())
            .collect();
        if !missing.is_empty() {
            out.push(t.key_problem(
                "mode",
                format!(
                    "\"apply\" needs `self_actor` on every [[workspace]], so that scimwatch's own writes read as `self` and wake nothing (missing on: {}); set self_actor = \"public-api-token/<the token's id>\"",
                    missing.join(", ")
                ),
            ));
        }
    }
    let enforce = EnforceConfig {
        mode,
        max_changes: t.opt_u32("max_changes", &mut out).unwrap_or(10),
        revert_expired: t.opt_bool("revert_expired", &mut out).unwrap_or(false),
    };
    t.finish(&mut out);

    let mut t = section(&mut root, &src, &empty, "store", &mut overrides, &mut out);
    let store_path = t
        .opt_str("path", &mut out)
        .unwrap_or_else(|| "scimwatch.db".into());
    let store = StoreConfig {
        path: ctx.resolve(&store_path),
        retain: t.duration_or("retain", Duration::from_secs(7 * 31_557_600), &mut out),
        chain_key: read_strong_secret(
            &mut t,
            &SecretKeys {
                env: "chain_key_env",
                file: "chain_key_file",
                inline: None,
            },
            &mut ctx,
            &mut out,
        ),
    };
    t.finish(&mut out);

    let mut t = section(&mut root, &src, &empty, "server", &mut overrides, &mut out);
    let listen = t
        .opt_str("listen", &mut out)
        .unwrap_or_else(|| "127.0.0.1:9464".into());
    let listen = check_listen(&t, "listen", listen, &mut out);
    let hooks_listen = t
        .opt_str("hooks_listen", &mut out)
        .and_then(|l| check_listen(&t, "hooks_listen", l, &mut out));
    let auth_token = read_strong_secret(
        &mut t,
        &SecretKeys {
            env: "auth_token_env",
            file: "auth_token_file",
            inline: None,
        },
        &mut ctx,
        &mut out,
    );
    t.finish(&mut out);

    let mut t = section(&mut root, &src, &empty, "policy", &mut overrides, &mut out);
    let mut policy = read_policy(&mut t, PolicyPlace::Config(&names), &mut out);
    if policy.expiry_notice.is_none() {
        policy.expiry_notice = Some(days(3));
    }
    t.finish(&mut out);

    let alerts = match root.opt_sub_table("alerts", &mut out) {
        Some(mut t) => {
            let a = read_alerts(&mut t, &mut ctx, &mut out);
            t.finish(&mut out);
            a
        }
        None => AlertsConfig::default(),
    };

    // Sections nobody asked for, with the overrides naming them.
    root.finish(&mut out);

    if !out.is_empty() {
        sort(&mut out);
        return Err(ConfigError::Invalid(Problems(out)));
    }
    let (Some(idp), Some(listen)) = (idp, listen) else {
        // Unreachable in practice: a missing piece always records a problem.
        out.push(src.problem(None, "", "the configuration is incomplete", None));
        return Err(ConfigError::Invalid(Problems(out)));
    };
    Ok(Config {
        path,
        base_dir: ctx.base_dir,
        idp,
        workspaces,
        mappings,
        sync,
        triggers,
        enforce,
        store,
        server: ServerConfig {
            listen,
            hooks_listen,
            auth_token,
        },
        policy,
        alerts,
        warnings: ctx.warnings,
    })
}

/// `[name]` with its environment overrides; an empty table when absent from the file.
fn section<'a, 'i>(
    root: &mut Table<'a, 'i>,
    src: &'a Source,
    empty: &'a DeTable<'i>,
    name: &'static str,
    overrides: &mut BTreeMap<&'static str, Vec<Override>>,
    out: &mut Vec<Problem>,
) -> Table<'a, 'i> {
    let t = root.opt_sub_table(name, out);
    let t = t.unwrap_or_else(|| Table::absent(src, empty, name));
    t.with_overrides(overrides.remove(name).unwrap_or_default())
}

/// File order: by line, problems without a line (environment) last.
fn sort(out: &mut [Problem]) {
    out.sort_by_key(|p| p.line.unwrap_or(u32::MAX));
}

fn read_workspaces(
    root: &mut Table<'_, '_>,
    ctx: &mut Ctx<'_>,
    out: &mut Vec<Problem>,
) -> Vec<WorkspaceConfig> {
    let tables = root.array_of_tables("workspace", out);
    if tables.is_empty() && !root.has("workspace") {
        out.push(root.problem(
            "at least one [[workspace]] is required; add one with `name` and `token_env`",
            None,
        ));
    }
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut list = Vec::new();
    for mut t in tables {
        let name = t.str("name", out);
        let name = unique_name(
            &t,
            name,
            &mut seen,
            ("workspace", "[[workspace]]", "mapping files"),
            out,
        );
        let api_url = t
            .opt_str("api_url", out)
            .unwrap_or_else(|| "https://api.segmentapis.com".into());
        let api_url = check_url(&t, "api_url", &api_url, out);
        let token = match read_secret(&mut t, &keys3("token_env", "token_file", "token"), ctx, out)
        {
            SecretRead::Found(s, _) => Some(s),
            SecretRead::Invalid => None,
            SecretRead::Absent => {
                out.push(t.problem(
                    "has no Segment token; add `token_env = \"SEGMENT_..._TOKEN\"` (or `token_file`)",
                    None,
                ));
                None
            }
        };
        let scim_actors = t
            .opt_str_list("scim_actors", out)
            .unwrap_or_else(|| vec!["scim".into(), "sso".into()]);
        let automation_actors = t.opt_str_list("automation_actors", out).unwrap_or_default();
        let self_actor = t.opt_str("self_actor", out);
        let entra_app_id = t
            .opt_str("entra_app_id", out)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        t.finish(out);
        if let (Some(name), Some(api_url), Some(token)) = (name, api_url, token) {
            list.push(WorkspaceConfig {
                name,
                api_url,
                token,
                scim_actors,
                automation_actors,
                self_actor,
                entra_app_id,
            });
        }
    }
    list
}

const AZURE_KEYS: [&str; 8] = [
    "tenant_id",
    "client_id",
    "client_secret_env",
    "client_secret_file",
    "client_secret",
    "certificate_file",
    "certificate_key_file",
    "login_url",
];
const OKTA_KEYS: [&str; 4] = ["token_env", "token_file", "token", "oauth"];

fn read_idp(t: &mut Table<'_, '_>, ctx: &mut Ctx<'_>, out: &mut Vec<Problem>) -> Option<IdpConfig> {
    let kind = t.str("kind", out).and_then(|k| {
        choice(
            t,
            "kind",
            &k,
            &[("okta", IdpKind::Okta), ("azure_ad", IdpKind::AzureAd)],
            out,
        )
    });
    // Mark every key of both kinds known, then refuse the other kind's keys.
    for k in AZURE_KEYS.iter().chain(OKTA_KEYS.iter()) {
        t.allow(k);
    }
    let url = t.opt_str("url", out);
    let user_attribute = t.opt_str("user_attribute", out);
    let propagation_window = t.duration_or("propagation_window", minutes(60), out);
    let event_lookback = t.duration_or("event_lookback", days(7), out);
    let kind = kind?;

    let foreign: &[&str] = match kind {
        IdpKind::Okta => &AZURE_KEYS,
        IdpKind::AzureAd => &OKTA_KEYS,
    };
    let mut ok = true;
    for k in foreign {
        if t.has(k) {
            let other = match kind {
                IdpKind::Okta => "azure_ad",
                IdpKind::AzureAd => "okta",
            };
            out.push(t.key_problem(
                k,
                format!("is only used with kind = \"{other}\"; remove it, or change `kind`"),
            ));
            ok = false;
        }
    }

    let url = match (kind, url) {
        (_, Some(u)) => check_url(t, "url", &u, out),
        (IdpKind::AzureAd, None) => Some("https://graph.microsoft.com/v1.0".to_string()),
        (IdpKind::Okta, None) => {
            out.push(t.problem(
                "has no `url`; add `url = \"https://<your-org>.okta.com\"` to [idp]",
                None,
            ));
            None
        }
    };

    let user_attribute = match (kind, user_attribute.as_deref()) {
        (IdpKind::Okta, None) => Some(UserAttribute::Login),
        (IdpKind::AzureAd, None) => Some(UserAttribute::UserPrincipalName),
        (IdpKind::Okta, Some(a)) => choice(
            t,
            "user_attribute",
            a,
            &[
                ("login", UserAttribute::Login),
                ("email", UserAttribute::Email),
            ],
            out,
        ),
        (IdpKind::AzureAd, Some(a)) => choice(
            t,
            "user_attribute",
            a,
            &[
                ("userPrincipalName", UserAttribute::UserPrincipalName),
                ("mail", UserAttribute::Mail),
            ],
            out,
        ),
    };

    let credential = if !ok {
        None
    } else {
        match kind {
            IdpKind::Okta => read_okta_credential(t, ctx, out),
            IdpKind::AzureAd => read_azure_credential(t, ctx, out).map(IdpCredential::Azure),
        }
    };
    Some(IdpConfig {
        kind,
        url: url?,
        credential: credential?,
        user_attribute: user_attribute?,
        propagation_window,
        event_lookback,
    })
}

fn read_okta_credential(
    t: &mut Table<'_, '_>,
    ctx: &mut Ctx<'_>,
    out: &mut Vec<Problem>,
) -> Option<IdpCredential> {
    let token = read_secret(t, &keys3("token_env", "token_file", "token"), ctx, out);
    let oauth = t.opt_sub_table("oauth", out);
    match (token, oauth) {
        (SecretRead::Found(..) | SecretRead::Invalid, Some(_)) => {
            out.push(t.key_problem(
                "oauth",
                "[idp.oauth] and an SSWS token (`token_env` / `token_file` / `token`) are both set; keep one credential",
            ));
            None
        }
        (SecretRead::Absent, None) => {
            out.push(t.problem(
                "has no Okta credential; add `token_env = \"OKTA_API_TOKEN\"` (or `token_file`), or an [idp.oauth] table",
                None,
            ));
            None
        }
        (SecretRead::Found(s, _), None) => Some(IdpCredential::OktaToken(s)),
        (SecretRead::Invalid, None) => None,
        (SecretRead::Absent, Some(mut o)) => {
            let client_id = o.str("client_id", out);
            let key = match o.str("private_key_file", out) {
                None => None,
                Some(p) => {
                    let path = ctx.resolve(&p);
                    match std::fs::read_to_string(&path) {
                        Err(e) => {
                            out.push(o.key_problem(
                                "private_key_file",
                                format!("cannot read `{}` ({e}); fix the path or the file's permissions", path.display()),
                            ));
                            None
                        }
                        Ok(pem) if !pem.contains("-----BEGIN") || !pem.contains("PRIVATE KEY") => {
                            out.push(o.key_problem(
                                "private_key_file",
                                format!("`{}` is not a PEM private key; point it at the RSA or EC key of the service app", path.display()),
                            ));
                            None
                        }
                        Ok(pem) => Some(Secret::new(pem)),
                    }
                }
            };
            let key_id = o.opt_str("key_id", out);
            let scopes = o
                .opt_str_list("scopes", out)
                .unwrap_or_else(|| DEFAULT_OKTA_SCOPES.iter().map(|s| s.to_string()).collect());
            let dpop = o.opt_bool("dpop", out).unwrap_or(false);
            o.finish(out);
            Some(IdpCredential::OktaOAuth(OktaOAuth {
                client_id: client_id?,
                private_key_pem: key?,
                key_id,
                scopes,
                dpop,
            }))
        }
    }
}

fn read_azure_credential(
    t: &mut Table<'_, '_>,
    ctx: &mut Ctx<'_>,
    out: &mut Vec<Problem>,
) -> Option<AzureCredential> {
    let tenant_id = t.str("tenant_id", out);
    let client_id = t.str("client_id", out);
    let login_url = t
        .opt_str("login_url", out)
        .unwrap_or_else(|| "https://login.microsoftonline.com".into());
    let login_url = check_url(t, "login_url", &login_url, out);
    let secret = read_secret(
        t,
        &keys3("client_secret_env", "client_secret_file", "client_secret"),
        ctx,
        out,
    );
    let cert = t.opt_str("certificate_file", out);
    let cert_key = t.opt_str("certificate_key_file", out);
    let read_file = |t: &Table<'_, '_>, key: &str, p: &str, out: &mut Vec<Problem>| {
        let path = ctx.resolve(p);
        match std::fs::read_to_string(&path) {
            Ok(s) => Some(s),
            Err(e) => {
                out.push(t.key_problem(
                    key,
                    format!(
                        "cannot read `{}` ({e}); fix the path or the file's permissions",
                        path.display()
                    ),
                ));
                None
            }
        }
    };
    let secret = match (secret, cert, cert_key) {
        (SecretRead::Found(s, _), None, None) => Some(AzureSecret::ClientSecret(s)),
        (SecretRead::Invalid, None, None) => None,
        (SecretRead::Absent, Some(c), Some(k)) => {
            let certificate_pem = read_file(t, "certificate_file", &c, out);
            let key_pem = read_file(t, "certificate_key_file", &k, out);
            Some(AzureSecret::Certificate {
                certificate_pem: certificate_pem?,
                key_pem: Secret::new(key_pem?),
            })
        }
        (SecretRead::Absent, None, None) => {
            out.push(t.problem(
                "has no Entra ID credential; add `client_secret_env` (or `client_secret_file`), or `certificate_file` with `certificate_key_file`",
                None,
            ));
            None
        }
        (SecretRead::Absent, Some(_), None) | (SecretRead::Absent, None, Some(_)) => {
            out.push(t.problem(
                "`certificate_file` and `certificate_key_file` go together; set both",
                None,
            ));
            None
        }
        _ => {
            out.push(t.problem(
                "a client secret and a certificate are both set; keep one credential",
                None,
            ));
            None
        }
    };
    Some(AzureCredential {
        tenant_id: tenant_id?,
        client_id: client_id?,
        secret: secret?,
        login_url: login_url?,
    })
}

fn read_triggers(
    t: &mut Table<'_, '_>,
    ctx: &mut Ctx<'_>,
    out: &mut Vec<Problem>,
) -> TriggersConfig {
    let okta_hook_secret = read_strong_secret(
        t,
        &keys3(
            "okta_hook_secret_env",
            "okta_hook_secret_file",
            "okta_hook_secret",
        ),
        ctx,
        out,
    );
    let graph_client_state = read_strong_secret(
        t,
        &keys3(
            "graph_client_state_env",
            "graph_client_state_file",
            "graph_client_state",
        ),
        ctx,
        out,
    );
    let graph_notification_url = t
        .opt_str("graph_notification_url", out)
        .and_then(|u| check_url(t, "graph_notification_url", &u, out));
    TriggersConfig {
        okta_hook_secret,
        okta_hook_header: t
            .opt_str("okta_hook_header", out)
            .unwrap_or_else(|| "Authorization".into()),
        system_log_poll: t.duration_or("system_log_poll", Duration::from_secs(60), out),
        audit_poll: t.duration_or("audit_poll", Duration::from_secs(60), out),
        graph_client_state,
        graph_notification_url,
        graph_delta_poll: t.duration_or("graph_delta_poll", Duration::from_secs(60), out),
    }
}

const DEFAULT_PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";
const SINK_KINDS: [&str; 3] = ["pagerduty", "slack", "webhook"];
const PAGERDUTY_KEYS: [&str; 4] = ["routing_key_env", "routing_key_file", "routing_key", "url"];
const SLACK_KEYS: [&str; 3] = ["webhook_url_env", "webhook_url_file", "webhook_url"];
const WEBHOOK_KEYS: [&str; 7] = [
    "url",
    "secret_env",
    "secret_file",
    "secret",
    "previous_secret_env",
    "previous_secret_file",
    "previous_secret",
];
const SEVERITY_NAMES: [&str; 4] = ["critical", "error", "warning", "info"];
/// Finding kinds, plus the `source_unavailable` alert.
fn kind_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = crate::reconcile::finding::Kind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    v.push("source_unavailable");
    v
}

/// `[alerts]`: knobs, sinks (secrets by reference), routes (naming existing sinks).
fn read_alerts(t: &mut Table<'_, '_>, ctx: &mut Ctx<'_>, out: &mut Vec<Problem>) -> AlertsConfig {
    let d = AlertsConfig::default();
    let mut cfg = AlertsConfig {
        resolve_after: t.opt_u32("resolve_after", out).unwrap_or(d.resolve_after),
        group_threshold: t
            .opt_u32("group_threshold", out)
            .unwrap_or(d.group_threshold),
        source_down_after: t
            .opt_u32("source_down_after", out)
            .unwrap_or(d.source_down_after),
        retry_max_backoff: t.duration_or("retry_max_backoff", d.retry_max_backoff, out),
        retry_for: t.duration_or("retry_for", d.retry_for, out),
        sinks: Vec::new(),
        routes: Vec::new(),
    };
    for k in ["resolve_after", "source_down_after"] {
        if t.has(k) && t.opt_u32(k, &mut Vec::new()) == Some(0) {
            out.push(t.key_problem(k, "must be at least 1"));
        }
    }
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for mut s in t.array_of_tables("sink", out) {
        let name = s.str("name", out);
        let name = unique_name(
            &s,
            name,
            &mut seen,
            ("sink", "[[alerts.sink]]", "routes"),
            out,
        );
        let kind = s.str("kind", out).and_then(|k| {
            let choices: Vec<(&str, &str)> = SINK_KINDS.iter().map(|k| (*k, *k)).collect();
            choice(&s, "kind", &k, &choices, out)
        });
        for k in PAGERDUTY_KEYS
            .iter()
            .chain(SLACK_KEYS.iter())
            .chain(WEBHOOK_KEYS.iter())
        {
            s.allow(k);
        }
        let Some(kind) = kind else {
            s.finish(out);
            continue;
        };
        let own: &[&str] = match kind {
            "pagerduty" => &PAGERDUTY_KEYS,
            "slack" => &SLACK_KEYS,
            _ => &WEBHOOK_KEYS,
        };
        let mut foreign = false;
        for k in PAGERDUTY_KEYS
            .iter()
            .chain(SLACK_KEYS.iter())
            .chain(WEBHOOK_KEYS.iter())
        {
            if !own.contains(k) && s.has(k) {
                out.push(s.key_problem(
                    k,
                    format!("is not used with kind = \"{kind}\"; remove it, or change `kind`"),
                ));
                foreign = true;
            }
        }
        let target = if foreign {
            None
        } else {
            read_sink_target(&mut s, kind, ctx, out)
        };
        s.finish(out);
        if let (Some(name), Some(target)) = (name, target) {
            cfg.sinks.push(AlertSinkConfig { name, target });
        }
    }
    let sink_names: Vec<String> = seen.keys().cloned().collect();
    let kinds = kind_names();
    for mut r in t.array_of_tables("route", out) {
        let sinks = if r.has("sinks") {
            r.opt_str_list("sinks", out)
        } else {
            out.push(r.problem(
                "has no `sinks`; add `sinks = [\"<sink name>\"]` to this [[alerts.route]]",
                None,
            ));
            None
        };
        if let Some(list) = &sinks {
            if list.is_empty() {
                out.push(r.key_problem("sinks", "is empty; name at least one [[alerts.sink]]"));
            }
            for n in list {
                if !sink_names.contains(n) {
                    let mut p = r.key_problem(
                        "sinks",
                        format!(
                            "names the sink {n:?}, which no [[alerts.sink]] defines (sinks: {})",
                            if sink_names.is_empty() {
                                "none".to_string()
                            } else {
                                sink_names.join(", ")
                            }
                        ),
                    );
                    p.hint = did_you_mean(n, sink_names.iter().map(String::as_str));
                    out.push(p);
                }
            }
        }
        let severities = r.opt_str_list("severities", out);
        check_names(
            &r,
            "severities",
            severities.as_deref(),
            &SEVERITY_NAMES,
            out,
        );
        let route_kinds = r.opt_str_list("kinds", out);
        check_names(&r, "kinds", route_kinds.as_deref(), &kinds, out);
        let workspaces = r.opt_str_list("workspaces", out);
        r.finish(out);
        if let Some(sinks) = sinks {
            cfg.routes.push(AlertRoute {
                sinks,
                severities,
                kinds: route_kinds,
                workspaces,
            });
        }
    }
    cfg
}

/// Every name in `list` must be one of `valid`.
fn check_names(
    t: &Table<'_, '_>,
    key: &str,
    list: Option<&[String]>,
    valid: &[&str],
    out: &mut Vec<Problem>,
) {
    for n in list.unwrap_or_default() {
        if !valid.contains(&n.as_str()) {
            let mut p = t.key_problem(key, format!("{n:?} is not one of {}", valid.join(", ")));
            p.hint = did_you_mean(n, valid.iter().copied());
            out.push(p);
        }
    }
}

fn read_sink_target(
    s: &mut Table<'_, '_>,
    kind: &str,
    ctx: &mut Ctx<'_>,
    out: &mut Vec<Problem>,
) -> Option<AlertTarget> {
    let mut required =
        |s: &mut Table<'_, '_>, keys: SecretKeys, out: &mut Vec<Problem>| match read_secret(
            s, &keys, ctx, out,
        ) {
            SecretRead::Found(v, key) => Some((v, key)),
            SecretRead::Invalid => None,
            SecretRead::Absent => {
                out.push(s.problem(
                    format!(
                        "has no secret; add `{} = \"...\"` (or `{}`)",
                        keys.env, keys.file
                    ),
                    None,
                ));
                None
            }
        };
    match kind {
        "pagerduty" => {
            let key = required(
                s,
                keys3("routing_key_env", "routing_key_file", "routing_key"),
                out,
            );
            let url = s
                .opt_str("url", out)
                .unwrap_or_else(|| DEFAULT_PAGERDUTY_URL.to_string());
            let url = check_url(s, "url", &url, out);
            Some(AlertTarget::PagerDuty {
                routing_key: key?.0,
                url: url?,
            })
        }
        "slack" => {
            let (url, key) = required(
                s,
                keys3("webhook_url_env", "webhook_url_file", "webhook_url"),
                out,
            )?;
            // Never echo the value: the Slack URL is the secret.
            match url::Url::parse(url.expose()) {
                Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {
                    Some(AlertTarget::Slack { webhook_url: url })
                }
                _ => {
                    out.push(s.key_problem(
                        key,
                        "the value is not an http(s) URL; give the Slack incoming-webhook URL (https://hooks.slack.com/services/...)",
                    ));
                    None
                }
            }
        }
        _ => {
            let url = s.str("url", out).and_then(|u| check_url(s, "url", &u, out));
            let secret = required(s, keys3("secret_env", "secret_file", "secret"), out)
                .and_then(|(v, key)| check_whsec(s, key, v, out));
            let previous = match read_secret(
                s,
                &keys3(
                    "previous_secret_env",
                    "previous_secret_file",
                    "previous_secret",
                ),
                ctx,
                out,
            ) {
                SecretRead::Found(v, key) => Some(check_whsec(s, key, v, out)?),
                SecretRead::Invalid => return None,
                SecretRead::Absent => None,
            };
            Some(AlertTarget::Webhook {
                url: url?,
                secret: secret?,
                previous_secret: previous,
            })
        }
    }
}

/// A Standard Webhooks secret: `whsec_` and base64 of at least 16 bytes.
fn check_whsec(s: &Table<'_, '_>, key: &str, v: Secret, out: &mut Vec<Problem>) -> Option<Secret> {
    use base64::Engine as _;
    let ok = v
        .expose()
        .strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .is_some_and(|k| k.len() >= MIN_SECRET_BYTES);
    if ok {
        Some(v)
    } else {
        out.push(s.key_problem(
            key,
            format!("the secret is not `whsec_` followed by the base64 of at least {MIN_SECRET_BYTES} random bytes; generate one with `echo whsec_$(head -c 32 /dev/urandom | base64)`"),
        ));
        None
    }
}

/// A `name` that must be non-empty and unique among its sibling tables. `what` is (the
/// noun, the table header, who refers to it by name), for the messages.
fn unique_name(
    t: &Table<'_, '_>,
    name: Option<String>,
    seen: &mut BTreeMap<String, u32>,
    what: (&str, &str, &str),
    out: &mut Vec<Problem>,
) -> Option<String> {
    let (noun, header, referrers) = what;
    let n = name?;
    if n.trim().is_empty() {
        out.push(t.key_problem(
            "name",
            format!("is empty; give the {noun} a name {referrers} can refer to"),
        ));
        return None;
    }
    if let Some(first) = seen.get(&n) {
        out.push(t.key_problem(
            "name",
            format!("the {noun} name {n:?} is already used at line {first}; give each {header} a unique name"),
        ));
        return None;
    }
    seen.insert(n.clone(), t.line());
    Some(n)
}

// `[sync] full_refresh` and `[sync] open_findings_per_tick` (issue 13, the rolling
// refresh). Kept in one block of its own: bounds on other keys are edited elsewhere.
const FULL_REFRESH_DEFAULT: Duration = Duration::from_secs(12 * 3600);
const FULL_REFRESH_MIN: Duration = Duration::from_secs(1);
const FULL_REFRESH_MAX: Duration = days(7);
const OPEN_FINDINGS_PER_TICK_DEFAULT: u32 = 100;
const OPEN_FINDINGS_PER_TICK_MAX: u32 = 10_000;

/// Reads the two rolling-refresh keys of `[sync]`, each bounded; a value out of bounds
/// is a problem naming the key and its line, and the default is used so every other
/// problem in the file is still reported.
fn read_sync_refresh(t: &mut Table<'_, '_>, out: &mut Vec<Problem>) -> (Duration, u32) {
    let mut full_refresh = t.duration_or("full_refresh", FULL_REFRESH_DEFAULT, out);
    if full_refresh < FULL_REFRESH_MIN || full_refresh > FULL_REFRESH_MAX {
        out.push(t.key_problem(
            "full_refresh",
            "must be between 1s and 7 days (every subject is re-read once per this window); \
             write it like \"12h\"",
        ));
        full_refresh = FULL_REFRESH_DEFAULT;
    }
    let mut per_tick = t
        .opt_u32("open_findings_per_tick", out)
        .unwrap_or(OPEN_FINDINGS_PER_TICK_DEFAULT);
    if !(1..=OPEN_FINDINGS_PER_TICK_MAX).contains(&per_tick) {
        out.push(t.key_problem(
            "open_findings_per_tick",
            format!("must be between 1 and {OPEN_FINDINGS_PER_TICK_MAX}; the default is {OPEN_FINDINGS_PER_TICK_DEFAULT}"),
        ));
        per_tick = OPEN_FINDINGS_PER_TICK_DEFAULT;
    }
    (full_refresh, per_tick)
}
