//! Config and mapping parsing: the full error output people read (snapshots), the shipped
//! files load, environment overrides, and secrets never leak.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use scimwatch::config::{self, ConfigError, IdpCredential};
use scimwatch::mapping::{self, GrantScope, MappingError, RoleRef};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn config_err(text: &str, vars: &BTreeMap<String, String>) -> String {
    match config::load_str(text, Path::new("scimwatch.toml"), vars) {
        Ok(_) => panic!("expected the config to be refused"),
        Err(ConfigError::Invalid(p)) => p.to_string(),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn mapping_err(files: &[(&str, &str)]) -> String {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    match mapping::parse_files(&files, &workspaces(), now()) {
        Ok(_) => panic!("expected the mappings to be refused"),
        Err(MappingError::Invalid(p)) => p.to_string(),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn workspaces() -> Vec<String> {
    vec!["production".into(), "staging".into()]
}

const MINIMAL: &str = r#"
[idp]
kind = "okta"
url = "https://acme.okta.com"
token_env = "OKTA_API_TOKEN"

[[workspace]]
name = "production"
token_env = "SEGMENT_PRODUCTION_TOKEN"
"#;

fn minimal_env() -> BTreeMap<String, String> {
    env(&[
        ("OKTA_API_TOKEN", "00okta-secret-value-AAAA"),
        ("SEGMENT_PRODUCTION_TOKEN", "sgp_production-secret-BBBB"),
    ])
}

#[test]
fn config_with_several_problems_lists_them_all() {
    let text = r#"
[idp]
kind = "okta"
url = "https://acme.okta.com"
token_env = "OKTA_API_TOKEN"
token_file = "/run/secrets/okta"
propagation_windw = "60m"
event_lookback = "seven days"

[[workspace]]
api_url = "https://api.segmentapis.com"
token_env = "SEGMENT_PRODUCTION_TOKEN"
scim_actors = "scim"

[enforce]
max_changes = "ten"

[sync]
interval = "5m"

[stor]
path = "x.db"
"#;
    let err = config_err(text, &minimal_env());
    insta::assert_snapshot!("config_several_problems", err);
}

#[test]
fn mapping_with_several_problems_lists_them_all() {
    let text = r#"workspace = "prodution"

[[group]]
idp_group = "Segment Prod Owners"

  [[group.grant]]
  role = "Workspace Owner"

[[group]]
idp_group = "Segment Analytics Engineers"

  [[group.grant]]
  role = "Source Admin"
  role_id = "1AbCdEf"

  [[group.grant]]
  role = "Source Read-only"
  sources = ["web-prod"]
  labels = { environment = "prod" }

  [[group.grant]]
  role = "Source Read-only"
  sorces = ["ios-prod"]

[[exception]]
user = "Jane@Acme.com"
grants = [{ role = "Workspace Owner" }]
expires = "2026-03-01T00:00:00Z"
ticket = "CHG-1"
reason = "Sprint"

[[exception]]
user = "joe@acme.com"
groups = ["Segment Prod Owners"]
expires = 2027-02-05T00:00:00Z
ticket = "CHG-2"
approved_by = "ciso@acme.com"
reason = "Forever, effectively"
"#;
    let err = mapping_err(&[("mappings/prod.toml", text)]);
    insta::assert_snapshot!("mapping_several_problems", err);
}

#[test]
fn duplicate_mirror_group_across_files_names_both_places() {
    let a = r#"workspace = "production"

[[group]]
idp_group = "Segment Marketing"
segment_group = "Marketing"

  [[group.grant]]
  role = "Source Read-only"
"#;
    let b = r#"workspace = "production"

[[group]]
idp_group = "Segment Growth"

  [[group.grant]]
  role = "Source Read-only"

[[group]]
idp_group = "Segment Growth Leads"
segment_group = "Marketing"
"#;
    let err = mapping_err(&[("mappings/a.toml", a), ("mappings/b.toml", b)]);
    insta::assert_snapshot!("mapping_duplicate_mirror", err);
}

#[test]
fn duplicate_idp_group_and_policy_across_files_name_both_places() {
    let a = "workspace = \"staging\"\n\n[[group]]\nidp_group = \"Ops\"\n\n[policy]\nunmanaged_users = \"ignore\"\n";
    let b = "workspace = \"staging\"\n[[group]]\nidp_group = \"Ops\"\n[policy]\nallow = [\"x@acme.com\"]\nconsistent = [[\"a\", \"b\"]]\n";
    let err = mapping_err(&[("mappings/a.toml", a), ("mappings/b.toml", b)]);
    assert!(
        err.contains("mappings/b.toml:6: policy.consistent: spans workspaces"),
        "{err}"
    );
    let c = "workspace = \"staging\"\n[[group]]\nidp_group = \"Ops\"\n[policy]\nallow = [\"x@acme.com\"]\n";
    let err = mapping_err(&[("mappings/a.toml", a), ("mappings/c.toml", c)]);
    assert!(
        err.contains("mappings/c.toml:2: group[1]: the IdP group \"Ops\" is already mapped for workspace \"staging\" at mappings/a.toml:3"),
        "{err}"
    );
    assert!(
        err.contains("mappings/c.toml:4: policy: workspace \"staging\" already has a [policy] at mappings/a.toml:6"),
        "{err}"
    );
}

#[test]
fn shipped_mappings_parse() {
    let dir = repo().join("mappings");
    let set = mapping::load_dir(&dir, &repo(), &workspaces(), now()).unwrap();
    let prod = &set.workspaces["production"];
    assert_eq!(prod.files, vec!["mappings/production.toml".to_string()]);
    assert_eq!(prod.groups.len(), 4);
    let owners = &prod.groups[0];
    assert_eq!(owners.origin.to_string(), "mappings/production.toml:7");
    assert_eq!(
        owners.grants[0].role,
        RoleRef::Name("Workspace Owner".into())
    );
    assert_eq!(
        prod.groups[1].grants[0].scope,
        GrantScope::Sources(vec!["web-prod".into(), "ios-prod".into()])
    );
    assert!(prod.policy.is_some());
    assert_eq!(set.workspaces["staging"].groups.len(), 3);
}

#[test]
fn missing_mappings_dir_is_an_error_naming_it() {
    let dir = repo().join("no-such-mappings");
    let err = mapping::load_dir(&dir, &repo(), &workspaces(), now()).unwrap_err();
    assert!(err.to_string().contains("no-such-mappings"), "{err}");
}

#[test]
fn shipped_deploy_files_load() {
    let file = repo().join("deploy/scimwatch.example.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let vars = env(&[
        ("OKTA_API_TOKEN", "00okta-dummy-token"),
        ("SEGMENT_PRODUCTION_TOKEN", "sgp_dummy_production"),
        ("SEGMENT_STAGING_TOKEN", "sgp_dummy_staging"),
        ("OKTA_HOOK_SECRET", "dummy-hook-secret-0123456789"),
        ("SCIMWATCH_CHAIN_KEY", "dummy-chain-key-0123456789"),
        ("SCIMWATCH_API_TOKEN", "dummy-api-token-0123456789"),
    ]);
    // Installed where the README puts it: /etc/scimwatch/scimwatch.toml, the mapping
    // files beside it in mappings/ (here under a temporary root).
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc/scimwatch");
    std::fs::create_dir_all(etc.join("mappings")).unwrap();
    for e in std::fs::read_dir(repo().join("mappings")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), etc.join("mappings").join(e.file_name())).unwrap();
    }
    let installed = etc.join("scimwatch.toml");
    std::fs::write(&installed, &text).unwrap();
    let cfg = config::load_str(&text, &installed, &vars).unwrap();
    assert_eq!(cfg.mappings.dir, etc.join("mappings"));
    assert_eq!(cfg.workspaces.len(), 2);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert!(matches!(cfg.idp.credential, IdpCredential::OktaToken(_)));
    assert_eq!(
        cfg.policy.consistent,
        vec![vec!["production".to_string(), "staging".to_string()]]
    );
    // The example points at the shipped mappings, which load against its workspaces.
    let names: Vec<String> = cfg.workspaces.iter().map(|w| w.name.clone()).collect();
    mapping::load_dir(&cfg.mappings.dir, &cfg.base_dir, &names, now()).unwrap();
    // The simulator seed is read by the simulator; here it must at least be valid TOML.
    let seed = std::fs::read_to_string(repo().join("deploy/demo-seed.toml")).unwrap();
    toml::from_str::<toml::Table>(&seed).unwrap();
}

#[test]
fn defaults_are_applied() {
    let cfg = config::load_str(
        MINIMAL,
        Path::new("/etc/scimwatch/scimwatch.toml"),
        &minimal_env(),
    )
    .unwrap();
    assert_eq!(cfg.idp.propagation_window.as_secs(), 3600);
    assert_eq!(cfg.idp.event_lookback.as_secs(), 7 * 86_400);
    assert_eq!(cfg.sync.interval.as_secs(), 300);
    assert_eq!(cfg.mappings.dir, PathBuf::from("/etc/scimwatch/mappings"));
    assert_eq!(cfg.store.path, PathBuf::from("/etc/scimwatch/scimwatch.db"));
    assert_eq!(cfg.server.listen, "127.0.0.1:9464");
    assert_eq!(cfg.workspaces[0].api_url, "https://api.segmentapis.com");
    assert_eq!(cfg.workspaces[0].scim_actors, vec!["scim", "sso"]);
    assert_eq!(cfg.triggers.okta_hook_header, "Authorization");
    assert_eq!(cfg.triggers.system_log_poll.as_secs(), 60);
    assert_eq!(cfg.enforce.max_changes, 10);
    assert_eq!(
        cfg.policy.expiry_notice.map(|d| d.as_secs()),
        Some(3 * 86_400)
    );
    assert!(cfg.triggers.okta_hook_secret.is_none());
}

#[test]
fn env_override_sets_a_key_and_a_typo_names_the_variable() {
    let mut vars = minimal_env();
    vars.insert("SCIMWATCH__IDP__PROPAGATION_WINDOW".into(), "10s".into());
    let cfg = config::load_str(MINIMAL, Path::new("scimwatch.toml"), &vars).unwrap();
    assert_eq!(cfg.idp.propagation_window.as_secs(), 10);

    let mut vars = minimal_env();
    vars.insert(
        "SCIMWATCH__IDP__PROPAGATON_WINDOW".into(),
        "s3cr3t-looking-value".into(),
    );
    let err = config_err(MINIMAL, &vars);
    assert!(err.contains("SCIMWATCH__IDP__PROPAGATON_WINDOW"), "{err}");
    assert!(
        err.contains("did you mean `SCIMWATCH__IDP__PROPAGATION_WINDOW`"),
        "{err}"
    );
    assert!(!err.contains("s3cr3t-looking-value"), "{err}");

    let mut vars = minimal_env();
    vars.insert("SCIMWATCH__SYNC__INTERVAL".into(), "not-a-duration".into());
    vars.insert("SCIMWATCH__STROE__PATH".into(), "/x".into());
    let err = config_err(MINIMAL, &vars);
    insta::assert_snapshot!("config_env_problems", err);
}

#[test]
fn token_env_naming_an_unset_variable_is_an_error_naming_it() {
    let vars = env(&[("OKTA_API_TOKEN", "00okta-secret-value-AAAA")]);
    let err = config_err(MINIMAL, &vars);
    assert!(
        err.contains("scimwatch.toml:9: workspace[1].token_env: names the environment variable `SEGMENT_PRODUCTION_TOKEN`, which is not set"),
        "{err}"
    );
}

#[test]
fn secrets_never_show() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("okta.token"), "file-secret-value-CCCC\n").unwrap();
    let text = r#"
[idp]
kind = "okta"
url = "https://acme.okta.com"
token_file = "okta.token"

[[workspace]]
name = "production"
token = "inline-secret-value-DDDD"

[triggers]
okta_hook_secret_env = "HOOK"
"#;
    let file = dir.path().join("scimwatch.toml");
    let mut vars = minimal_env();
    vars.insert("HOOK".into(), "hook-secret-value-EEEE".into());
    let cfg = config::load_str(text, &file, &vars).unwrap();
    let debug = format!("{cfg:?}");
    for secret in [
        "file-secret-value-CCCC",
        "inline-secret-value-DDDD",
        "hook-secret-value-EEEE",
    ] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
        assert!(!cfg.warnings.join("\n").contains(secret));
    }
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    match &cfg.idp.credential {
        IdpCredential::OktaToken(s) => assert_eq!(s.expose(), "file-secret-value-CCCC"),
        other => panic!("{other:?}"),
    }

    // Errors around secrets: short hook secret, wrong types, both forms; none shows a value.
    let bad = r#"
[idp]
kind = "okta"
url = "https://acme.okta.com"
token = "inline-secret-value-DDDD"
token_env = "OKTA_API_TOKEN"

[[workspace]]
name = "production"
token = 12345678901234

[triggers]
okta_hook_secret = "short-FFFF"
"#;
    let err = config_err(bad, &minimal_env());
    for secret in [
        "inline-secret-value-DDDD",
        "12345678901234",
        "short-FFFF",
        "00okta-secret-value-AAAA",
    ] {
        assert!(!err.contains(secret), "{secret} in {err}");
    }
    assert!(
        err.contains("triggers.okta_hook_secret: the secret is shorter than 16 bytes"),
        "{err}"
    );
}

#[test]
fn duplicate_workspace_names_name_both_lines() {
    let text = format!(
        "{MINIMAL}\n[[workspace]]\nname = \"production\"\ntoken_env = \"SEGMENT_PRODUCTION_TOKEN\"\n"
    );
    let err = config_err(&text, &minimal_env());
    assert!(
        err.contains("scimwatch.toml:12: workspace[2].name: the workspace name \"production\" is already used at line 7"),
        "{err}"
    );
}

#[test]
fn syntax_error_is_one_problem_with_its_line() {
    let err = config_err("[idp]\nkind = \"okta\nurl = 3\n", &minimal_env());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("scimwatch.toml:2: this is not valid TOML"),
        "{err}"
    );
}

#[test]
fn azure_keys_are_validated_per_kind() {
    let text = r#"
[idp]
kind = "azure_ad"
tenant_id = "t"
client_id = "c"
client_secret_env = "AZ"
user_attribute = "login"

[[workspace]]
name = "production"
token_env = "SEGMENT_PRODUCTION_TOKEN"
"#;
    let mut vars = minimal_env();
    vars.insert("AZ".into(), "azure-secret".into());
    let err = config_err(text, &vars);
    assert!(err.contains("idp.user_attribute: \"login\" is not a choice; write one of \"userPrincipalName\", \"mail\""), "{err}");
    let ok = text.replace("user_attribute = \"login\"\n", "");
    let cfg = config::load_str(&ok, Path::new("scimwatch.toml"), &vars).unwrap();
    assert_eq!(cfg.idp.url, "https://graph.microsoft.com/v1.0");
    let okta_with_azure = MINIMAL.replace(
        "token_env = \"OKTA_API_TOKEN\"",
        "token_env = \"OKTA_API_TOKEN\"\ntenant_id = \"t\"",
    );
    let err = config_err(&okta_with_azure, &minimal_env());
    assert!(
        err.contains("idp.tenant_id: is only used with kind = \"azure_ad\""),
        "{err}"
    );
}

#[test]
fn enforce_apply_needs_self_actor_on_every_workspace() {
    let vars = env(&[
        ("OKTA_API_TOKEN", "okta-token-okta-token"),
        ("SEGMENT_PRODUCTION_TOKEN", "segment-token-segment"),
    ]);
    let err = config_err(&format!("{MINIMAL}\n[enforce]\nmode = \"apply\"\n"), &vars);
    assert!(
        err.contains(
            "scimwatch.toml:12: enforce.mode: \"apply\" needs `self_actor` on every [[workspace]]"
        ) && err.contains("missing on: production"),
        "{err}"
    );
    let ok = format!(
        "{}self_actor = \"public-api-token/TkProd01\"\n\n[enforce]\nmode = \"apply\"\n",
        MINIMAL
    );
    config::load_str(&ok, Path::new("scimwatch.toml"), &vars).expect("self_actor set: loads");
}

/// Loaded from a folder outside where the user stands, a problem names both places the
/// way the user can open them: absolute, the quoted other place included.
#[test]
fn a_problem_quoting_another_file_names_it_as_the_user_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    let maps = dir.path().join("mappings");
    std::fs::create_dir_all(&maps).unwrap();
    let a = "workspace = \"staging\"\n\n[[group]]\nidp_group = \"Ops\"\n\n[policy]\nunmanaged_users = \"ignore\"\n";
    let b = "workspace = \"staging\"\n[[group]]\nidp_group = \"Ops Leads\"\n[policy]\nunmanaged_users = \"ignore\"\n";
    std::fs::write(maps.join("a.toml"), a).unwrap();
    std::fs::write(maps.join("b.toml"), b).unwrap();
    let err = match mapping::load_dir(&maps, dir.path(), &workspaces(), now()) {
        Err(MappingError::Invalid(p)) => p.to_string(),
        other => panic!("expected the mappings to be refused: {:?}", other.err()),
    };
    let a_shown = format!("{}:6", maps.join("a.toml").display());
    assert!(err.contains(&a_shown), "{err}");
    assert!(!err.contains(" mappings/a.toml:"), "{err}");
}
