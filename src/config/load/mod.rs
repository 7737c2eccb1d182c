//! scimwatch.toml → [`Config`](super::Config).
//!
//! Contract: every section of `config.md` is read with the strict reader of `strict.rs`,
//! defaults are applied exactly as `config.md` lists them, relative paths are resolved
//! against the config file's folder, secrets are read by reference and every problem is
//! reported at once. Must never: put a secret value into a problem, a warning or a log;
//! silently skip a key it does not know.
//!
//! `[idp]` is read in `idp.rs` and `[alerts]` in `alerts.rs`; the rest is here. Why ~850
//! lines: the load order (file, environment overrides, sections, cross-section checks)
//! and the secret reading every section shares are one procedure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::DeTable;

use super::strict::{
    cut, did_you_mean, read_capped, read_policy, shown, DurationBounds, Override, PolicyPlace,
    ReadError, Source, Table, MAX_FILE_BYTES, MAX_SECRET_FILE_BYTES, TEN_YEARS,
};
use super::{
    AlertRoute, AlertSinkConfig, AlertTarget, AlertsConfig, AzureCredential, AzureSecret, Config,
    CredentialKeys, EnforceConfig, EnforceMode, IdpConfig, IdpCredential, LogConfig, LogFormat,
    MappingsConfig, OktaOAuth, Problem, Problems, Secret, ServerConfig, StoreConfig, SyncConfig,
    TriggersConfig, UserAttribute, WorkspaceConfig,
};
use crate::model::IdpKind;

mod alerts;
mod idp;

use alerts::read_alerts;
use idp::read_idp;

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
const OVERRIDABLE: [&str; 9] = [
    "idp", "mappings", "sync", "triggers", "enforce", "store", "server", "policy", "log",
];

/// `sync.interval` and other periods: 100 ms to ten years.
const INTERVAL: DurationBounds = DurationBounds::new(Duration::from_millis(100), TEN_YEARS);
/// The pollers: like [`INTERVAL`], and `0s` turns them off.
const POLL: DurationBounds = DurationBounds::off_or(Duration::from_millis(100), TEN_YEARS);

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
    let text = read_capped(&shown, MAX_FILE_BYTES).map_err(|e| match e {
        ReadError::Io(source) => ConfigError::Io {
            path: shown.clone(),
            source,
        },
        other => {
            let line = match other {
                ReadError::NotUtf8 { line, .. } => Some(line),
                _ => None,
            };
            let src = Source::new(shown.display().to_string(), "");
            ConfigError::Invalid(Problems(vec![src.problem(
                line,
                "",
                format!("cannot be read: {other}"),
                None,
            )]))
        }
    })?;
    let abs = std::path::absolute(&shown).map_err(|source| ConfigError::Io {
        path: shown.clone(),
        source,
    })?;
    let base_dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
    load_text(&text, &shown.display().to_string(), abs, base_dir, &env)
}

/// `log.format` as the config would set it, read before logging starts (and so before
/// the config is loaded for real): `SCIMWATCH__LOG__FORMAT`, else the file's `[log]
/// format`, else text. A file that cannot be read or parsed gives text here; loading it
/// reports the problem properly.
pub fn peek_log_format(path: Option<&Path>) -> super::LogFormat {
    let pick = |s: &str| match s {
        "json" => Some(super::LogFormat::Json),
        "text" => Some(super::LogFormat::Text),
        _ => None,
    };
    if let Some(f) = std::env::var("SCIMWATCH__LOG__FORMAT")
        .ok()
        .and_then(|v| pick(&v))
    {
        return f;
    }
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => match std::env::var("SCIMWATCH_CONFIG") {
            Ok(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from("scimwatch.toml"),
        },
    };
    read_capped(&path, MAX_FILE_BYTES)
        .ok()
        .and_then(|text| toml::from_str::<toml::Table>(&text).ok())
        .and_then(|t| t.get("log")?.get("format")?.as_str().and_then(pick))
        .unwrap_or_default()
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
    /// Whether the value travels in an HTTP header (or URL) and must be header-safe; a
    /// key that only feeds an HMAC (the chain key) may hold any text.
    header: bool,
}

const fn keys3(env: &'static str, file: &'static str, inline: &'static str) -> SecretKeys {
    SecretKeys {
        env,
        file,
        inline: Some(inline),
        header: true,
    }
}

enum SecretRead {
    Absent,
    /// Set, but wrong; the problem is recorded.
    Invalid,
    Found(Secret, &'static str),
}

/// Reads one secret by reference, registers it for masking ([`crate::redact`]) and, when
/// it travels in an HTTP header or URL, checks that it can: a token, key or URL on one
/// line (PEM keys are read apart; the chain key only feeds an HMAC).
fn read_secret(
    t: &mut Table<'_, '_>,
    keys: &SecretKeys,
    ctx: &mut Ctx<'_>,
    out: &mut Vec<Problem>,
) -> SecretRead {
    match read_secret_any(t, keys, ctx, out) {
        SecretRead::Found(s, key) if !keys.header => {
            crate::redact::register(s.expose());
            SecretRead::Found(s, key)
        }
        SecretRead::Found(s, key) => match header_unsafe(s.expose()) {
            None => {
                crate::redact::register(s.expose());
                SecretRead::Found(s, key)
            }
            Some(why) => {
                out.push(t.key_problem(
                    key,
                    format!("the secret {why}, which an HTTP header cannot carry; write the token on one line, without spaces or control characters"),
                ));
                SecretRead::Invalid
            }
        },
        other => other,
    }
}

/// Why `value` cannot go into an HTTP header verbatim (or as a URL), if it cannot:
/// only visible ASCII is allowed (no space, tab, newline, NUL or other control, no
/// non-ASCII byte). Never quotes the value.
fn header_unsafe(value: &str) -> Option<String> {
    let (at, c) = value.char_indices().find(|(_, c)| !c.is_ascii_graphic())?;
    let what = match c {
        '\n' | '\r' => "a line break".to_string(),
        ' ' => "a space".to_string(),
        c if c.is_control() => format!("a control character (U+{:04X})", u32::from(c)),
        _ => "a non-ASCII character".to_string(),
    };
    Some(format!("holds {what} at byte {at}"))
}

/// Reads one secret by reference. Exactly one form may be set.
fn read_secret_any(
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
                    format!("names the environment variable `{}`, which is not set; set it or fix the name", cut(&var)),
                ));
                SecretRead::Invalid
            }
            Some(v) if v.trim().is_empty() => {
                out.push(t.key_problem(
                    key,
                    format!(
                        "the environment variable `{}` is set but empty; give it the secret",
                        cut(&var)
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
        match read_capped(&path, MAX_SECRET_FILE_BYTES) {
            Err(e) => {
                out.push(t.key_problem(
                    key,
                    format!(
                        "cannot read `{}` ({e}); fix the path or the file's permissions",
                        crate::paths::shown(&path)
                    ),
                ));
                SecretRead::Invalid
            }
            Ok(v) if v.trim().is_empty() => {
                out.push(t.key_problem(
                    key,
                    format!(
                        "`{}` is empty; write the secret into it",
                        crate::paths::shown(&path)
                    ),
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
                format!(
                    "{} is not an http(s) URL; write it like \"https://acme.okta.com\"",
                    shown(value)
                ),
            ));
            None
        }
        Err(e) => {
            out.push(t.key_problem(
                key,
                format!(
                    "{} is not a URL ({e}); write it like \"https://acme.okta.com\"",
                    shown(value)
                ),
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
            format!(
                "{} is not an address; write it like \"127.0.0.1:9464\"",
                shown(&value)
            ),
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
            "{} is not a choice; write one of {}",
            shown(value),
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
    let mut credential_keys = CredentialKeys::default();
    let workspaces = read_workspaces(
        &mut root,
        &mut ctx,
        &mut out,
        &mut credential_keys.workspaces,
    );
    let names: Vec<String> = workspaces.iter().map(|w| w.name.clone()).collect();

    let mut t = section(&mut root, &src, &empty, "idp", &mut overrides, &mut out);
    let idp = read_idp(&mut t, &mut ctx, &mut out);
    credential_keys.idp = idp::credential_key(&mut t);
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
    let dir_line = t.key_problem("dir", "").line.unwrap_or(1);
    let mappings = MappingsConfig {
        dir: ctx.resolve(&dir),
        origin: (shown.to_string(), dir_line),
    };
    t.finish(&mut out);

    let mut t = section(&mut root, &src, &empty, "sync", &mut overrides, &mut out);
    let interval = t.bounded_duration("interval", minutes(5), INTERVAL, &mut out);
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
        retain: t.bounded_duration(
            "retain",
            Duration::from_secs(7 * 31_557_600),
            DurationBounds::new(days(1), TEN_YEARS),
            &mut out,
        ),
        chain_key: read_strong_secret(
            &mut t,
            &SecretKeys {
                env: "chain_key_env",
                file: "chain_key_file",
                inline: None,
                header: false,
            },
            &mut ctx,
            &mut out,
        ),
        must_exist: t.opt_bool("must_exist", &mut out).unwrap_or(false),
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
            header: true,
        },
        &mut ctx,
        &mut out,
    );
    let max_connections = t.opt_u32("max_connections", &mut out).unwrap_or(256);
    if !(1..=100_000).contains(&max_connections) {
        out.push(t.key_problem(
            "max_connections",
            format!("{max_connections} is out of range; write a whole number from 1 to 100000"),
        ));
    }
    let read_timeout = t.bounded_duration(
        "read_timeout",
        Duration::from_secs(10),
        DurationBounds::new(Duration::from_millis(100), minutes(5)),
        &mut out,
    );
    t.finish(&mut out);

    let mut t = section(&mut root, &src, &empty, "log", &mut overrides, &mut out);
    let log = LogConfig {
        format: t
            .opt_str("format", &mut out)
            .and_then(|f| {
                choice(
                    &t,
                    "format",
                    &f,
                    &[("text", LogFormat::Text), ("json", LogFormat::Json)],
                    &mut out,
                )
            })
            .unwrap_or_default(),
    };
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
            max_connections,
            read_timeout,
        },
        policy,
        log,
        alerts,
        credential_keys,
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

/// How a secret was given, for messages about a credential that does not work:
/// `token_env = "VAR"`, `token_file = "/path"`, or the inline key alone (never its value).
pub(super) fn secret_key(t: &mut Table<'_, '_>, key: &'static str) -> String {
    if key.ends_with("_env") || key.ends_with("_file") {
        match t.opt_str(key, &mut Vec::new()) {
            Some(v) => format!("{key} = {}", shown(&v)),
            None => key.to_string(),
        }
    } else {
        format!("{key} (inline)")
    }
}

/// The workspaces, and for each (by name) the config key its token came from.
fn read_workspaces(
    root: &mut Table<'_, '_>,
    ctx: &mut Ctx<'_>,
    out: &mut Vec<Problem>,
    keys: &mut BTreeMap<String, String>,
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
            SecretRead::Found(s, key) => {
                if let Some(n) = &name {
                    keys.insert(
                        n.clone(),
                        format!("[[workspace]] {} {}", shown(n), secret_key(&mut t, key)),
                    );
                }
                Some(s)
            }
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
            .filter(|h| {
                let ok = axum::http::HeaderName::from_bytes(h.as_bytes()).is_ok();
                if !ok {
                    out.push(t.key_problem(
                        "okta_hook_header",
                        format!(
                            "{} is not a valid HTTP header name; use letters, digits and '-' only, like \"Authorization\" or \"X-Okta-Secret\"",
                            shown(h)
                        ),
                    ));
                }
                ok
            })
            .unwrap_or_else(|| "Authorization".into()),
        system_log_poll: t.bounded_duration("system_log_poll", Duration::from_secs(60), POLL, out),
        audit_poll: t.bounded_duration("audit_poll", Duration::from_secs(60), POLL, out),
        graph_client_state,
        graph_notification_url,
        graph_delta_poll: t.bounded_duration("graph_delta_poll", Duration::from_secs(60), POLL, out),
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
            format!("the {noun} name {} is already used at line {first}; give each {header} a unique name", shown(&n)),
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
