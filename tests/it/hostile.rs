//! Hostile or mistaken input (issue 14): bounds at load, size caps, values never echoed
//! in full, header-safe secrets, exception emails and groups, hook header names, and a
//! position in every load error.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use scimwatch::config::{self, ConfigError};
use scimwatch::mapping::{self, MappingError};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
}

pub const MINIMAL: &str = r#"[idp]
kind = "okta"
url = "https://acme.okta.com"
token_env = "OKTA_API_TOKEN"

[[workspace]]
name = "production"
token_env = "SEGMENT_PRODUCTION_TOKEN"
"#;

pub fn minimal_env() -> BTreeMap<String, String> {
    [
        ("OKTA_API_TOKEN", "00okta-secret-value-AAAA"),
        ("SEGMENT_PRODUCTION_TOKEN", "sgp_production-secret-BBBB"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn config_err(text: &str, vars: &BTreeMap<String, String>) -> String {
    match config::load_str(text, Path::new("scimwatch.toml"), vars) {
        Ok(_) => panic!("expected the config to be refused"),
        Err(ConfigError::Invalid(p)) => p.to_string(),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

#[test]
fn durations_out_of_bounds_are_refused_naming_key_line_and_range() {
    let cases = [
        (
            "[sync]\ninterval = \"1ns\"\n",
            "scimwatch.toml:10: sync.interval",
            "from 100ms to 10 years",
        ),
        (
            "[sync]\ninterval = \"0s\"\n",
            "scimwatch.toml:10: sync.interval",
            "from 100ms",
        ),
        (
            "[triggers]\naudit_poll = \"99ms\"\n",
            "scimwatch.toml:10: triggers.audit_poll",
            "\"0s\" (off) or from 100ms",
        ),
        (
            "[triggers]\nsystem_log_poll = \"20y\"\n",
            "scimwatch.toml:10: triggers.system_log_poll",
            "to 10 years",
        ),
        (
            "[store]\nretain = \"0s\"\n",
            "scimwatch.toml:10: store.retain",
            "from 1 day to 10 years",
        ),
        (
            "[store]\nretain = \"23h\"\n",
            "scimwatch.toml:10: store.retain",
            "from 1 day",
        ),
    ];
    for (extra, at, range) in cases {
        let err = config_err(&with(extra), &minimal_env());
        assert!(err.contains(at), "{extra}: {err}");
        assert!(err.contains(range), "{extra}: {err}");
        assert!(err.contains("is out of range"), "{extra}: {err}");
    }
    // [idp] keys: the table is already open in MINIMAL, so add them there.
    for (key, value, range) in [
        ("event_lookback", "181d", "from 0s to 180 days"),
        ("event_lookback", "300000y", "from 0s to 180 days"),
        ("propagation_window", "31d", "from 0s to 30 days"),
        ("propagation_window", "584542y", "from 0s to 30 days"),
    ] {
        let text = MINIMAL.replace(
            "token_env = \"OKTA_API_TOKEN\"\n",
            &format!("token_env = \"OKTA_API_TOKEN\"\n{key} = \"{value}\"\n"),
        );
        let err = config_err(&text, &minimal_env());
        assert!(
            err.contains(&format!("scimwatch.toml:5: idp.{key}")),
            "{err}"
        );
        assert!(err.contains(range), "{err}");
    }
    let env_err = {
        let mut vars = minimal_env();
        vars.insert("SCIMWATCH__SYNC__INTERVAL".into(), "1ns".into());
        config_err(MINIMAL, &vars)
    };
    assert!(env_err.contains("sync.interval"), "{env_err}");
    // The edges and the values the suite uses stay valid; 0 keeps meaning "off".
    let ok = with(
        "[sync]\ninterval = \"100ms\"\n[triggers]\naudit_poll = \"0s\"\nsystem_log_poll = \"300ms\"\ngraph_delta_poll = \"10y\"\n[store]\nretain = \"1d\"\n[alerts]\nretry_max_backoff = \"1s\"\nretry_for = \"2s\"\n",
    )
    .replace(
        "token_env = \"OKTA_API_TOKEN\"\n",
        "token_env = \"OKTA_API_TOKEN\"\nevent_lookback = \"180d\"\npropagation_window = \"30d\"\n",
    );
    let cfg = config::load_str(&ok, Path::new("scimwatch.toml"), &minimal_env()).unwrap();
    assert_eq!(cfg.sync.interval, Duration::from_millis(100));
    assert!(cfg.triggers.audit_poll.is_zero());
    assert_eq!(cfg.idp.event_lookback.as_secs(), 180 * 86_400);
}

#[test]
fn policy_expiry_notice_is_bounded_in_config_and_mappings() {
    let err = config_err(
        &with("[policy]\nexpiry_notice = \"400d\"\n"),
        &minimal_env(),
    );
    assert!(
        err.contains("scimwatch.toml:10: policy.expiry_notice"),
        "{err}"
    );
    let files = vec![(
        "mappings/p.toml".to_string(),
        "workspace = \"production\"\n[policy]\nexpiry_notice = \"5y\"\n".to_string(),
    )];
    let err = mapping::parse_files(&files, &["production".into()], now()).unwrap_err();
    assert!(
        err.to_string()
            .contains("mappings/p.toml:3: policy.expiry_notice"),
        "{err}"
    );
}

#[test]
fn a_secret_file_that_never_ends_fails_fast_naming_key_and_cap() {
    let started = Instant::now();
    let text = MINIMAL.replace(
        "token_env = \"OKTA_API_TOKEN\"",
        "token_file = \"/dev/zero\"",
    );
    let err = config_err(&text, &minimal_env());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("scimwatch.toml:4: idp.token_file"), "{err}");
    assert!(err.contains("larger than 65536 bytes"), "{err}");
}

#[test]
fn oversized_and_non_utf8_files_are_refused_with_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    std::fs::write(&big, "# x\n".repeat(300_000)).unwrap();
    let err = config::load(Some(&big)).unwrap_err().to_string();
    assert!(err.contains("larger than 1048576 bytes"), "{err}");
    assert!(err.contains("byte offset 1048576"), "{err}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, b"[idp]\nkind = \"okta\"\nurl = \"\xff\xfe\"\n").unwrap();
    let err = config::load(Some(&bad)).unwrap_err().to_string();
    assert!(err.contains("bad.toml:3"), "{err}");
    assert!(err.contains("not UTF-8"), "{err}");
    assert!(err.contains("byte offset 27"), "{err}");

    let maps = dir.path().join("mappings");
    std::fs::create_dir(&maps).unwrap();
    std::fs::write(
        maps.join("p.toml"),
        b"workspace = \"production\"\n\n# \xc3\n",
    )
    .unwrap();
    let err = mapping::load_dir(&maps, dir.path(), &["production".into()], now()).unwrap_err();
    let MappingError::Invalid(p) = &err else {
        panic!("{err}")
    };
    assert!(
        p.to_string()
            .starts_with("mappings/p.toml:3: cannot be read"),
        "{p}"
    );
}

#[test]
fn a_huge_value_is_not_echoed_and_validates_quickly() {
    let huge = "x".repeat(20 << 20);
    let started = Instant::now();
    let text = with(&format!(
        "[sync]\ninterval = \"{huge}\"\n[enforce]\nmode = \"{huge}\"\n[{huge}]\n"
    ));
    let err = config_err(&text, &minimal_env());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(
        err.len() < 4_000,
        "the error echoes the value: {} bytes",
        err.len()
    );
    assert!(
        err.contains("sync.interval"),
        "{}",
        &err[..err.len().min(2000)]
    );
    assert!(
        err.contains("bytes in all"),
        "{}",
        &err[..err.len().min(2000)]
    );
}

#[test]
fn a_token_a_header_cannot_carry_is_refused_naming_its_key() {
    for (value, why) in [
        ("line-one-token-AAAA\nline-two", "a line break"),
        ("token-with\u{0}nul-AAAAAAA", "a control character (U+0000)"),
        ("tøken-non-ascii-AAAAAAAA", "a non-ASCII character"),
        ("token with a space AAAA", "a space"),
    ] {
        let mut vars = minimal_env();
        vars.insert("SEGMENT_PRODUCTION_TOKEN".into(), value.into());
        let err = config_err(MINIMAL, &vars);
        assert!(
            err.contains("scimwatch.toml:8: workspace[1].token_env: the secret holds"),
            "{err}"
        );
        assert!(err.contains(why), "{err}");
        assert!(
            !err.contains("line-two") && !err.contains("AAAA"),
            "echoes: {err}"
        );
    }
    // The same through a file, for the Okta token.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t"), "first-line-token\nsecond-line\n").unwrap();
    let text = MINIMAL.replace("token_env = \"OKTA_API_TOKEN\"", "token_file = \"t\"");
    let err = match config::load_str(&text, &dir.path().join("scimwatch.toml"), &minimal_env()) {
        Err(ConfigError::Invalid(p)) => p.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(
        err.contains(":4: idp.token_file: the secret holds a line break"),
        "{err}"
    );
    // The chain key only feeds an HMAC: any text will do.
    let mut vars = minimal_env();
    vars.insert("K".into(), "a chain key with spaces in it".into());
    let text = with("[store]\nchain_key_env = \"K\"\n");
    config::load_str(&text, Path::new("scimwatch.toml"), &vars).unwrap();
}

#[test]
fn the_okta_hook_header_must_be_a_header_name() {
    // TOML text of the header name (\u0000 is TOML's escape for NUL).
    for bad in ["X-Okta\\u0000Secret", "Bad Header", ""] {
        let text = with(&format!(
            "[triggers]\nokta_hook_secret = \"hook-secret-value-EEEE\"\nokta_hook_header = \"{bad}\"\n"
        ));
        let err = config_err(&text, &minimal_env());
        assert!(
            err.contains("scimwatch.toml:11: triggers.okta_hook_header: ")
                && err.contains("is not a valid HTTP header name"),
            "{bad:?}: {err}"
        );
    }
    let ok = with("[triggers]\nokta_hook_secret = \"hook-secret-value-EEEE\"\nokta_hook_header = \"X-Okta-Secret\"\n");
    config::load_str(&ok, Path::new("scimwatch.toml"), &minimal_env()).unwrap();
}

const GROUPS: &str = r#"workspace = "production"

[[group]]
idp_group = "Segment Prod Owners"
justification = "on call"

  [[group.grant]]
  role = "Workspace Owner"

[[group]]
idp_group = "Engineers"
segment_group = "Segment Engineers"
"#;

fn exception(user: &str, approved_by: &str, groups: &str) -> String {
    format!(
        "{GROUPS}\n[[exception]]\nuser = {user:?}\ngroups = {groups}\nexpires = \"2026-03-01T00:00:00Z\"\nticket = \"CHG-1\"\napproved_by = {approved_by:?}\nreason = \"Sprint\"\n"
    )
}

fn parse(text: &str) -> Result<mapping::MappingSet, String> {
    let files = vec![("mappings/prod.toml".to_string(), text.to_string())];
    mapping::parse_files(&files, &["production".into()], now()).map_err(|e| e.to_string())
}

#[test]
fn exception_user_and_approved_by_must_be_single_emails() {
    parse(&exception(
        "Jane@Acme.com",
        "ciso@acme.com",
        "[\"Engineers\"]",
    ))
    .unwrap();
    for bad in [
        "",
        "a@b@c",
        " jane@acme.test ",
        "jane",
        "jane@acme",
        "jane @acme.test",
        "<jane@acme.test>",
        "jane@acme.test, joe@acme.test",
    ] {
        let err = parse(&exception(bad, "ciso@acme.com", "[]")).unwrap_err();
        assert!(
            err.contains("mappings/prod.toml:15: exception[1].user: ")
                && err.contains("is not one email address"),
            "{bad:?}: {err}"
        );
        let err = parse(&exception("jane@acme.com", bad, "[\"Engineers\"]")).unwrap_err();
        assert!(
            err.contains("mappings/prod.toml:19: exception[1].approved_by: "),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn exception_groups_must_name_mapped_groups() {
    // By IdP name or by mirror name.
    parse(&exception(
        "jane@acme.com",
        "ciso@acme.com",
        "[\"Segment Prod Owners\", \"Segment Engineers\"]",
    ))
    .unwrap();
    let err = parse(&exception(
        "jane@acme.com",
        "ciso@acme.com",
        "[\"Enginers\"]",
    ))
    .unwrap_err();
    assert!(
        err.contains("mappings/prod.toml:14: exception.groups: \"Enginers\" is not a group mapped for workspace \"production\""),
        "{err}"
    );
    assert!(err.contains("did you mean `Engineers`"), "{err}");
    // Mapped in another file of the same workspace: fine.
    let other = "workspace = \"production\"\n\n[[exception]]\nuser = \"joe@acme.com\"\ngroups = [\"Engineers\"]\nexpires = \"2026-03-01T00:00:00Z\"\nticket = \"CHG-2\"\napproved_by = \"ciso@acme.com\"\nreason = \"x\"\n";
    let files = vec![
        ("mappings/a.toml".to_string(), other.to_string()),
        ("mappings/b.toml".to_string(), GROUPS.to_string()),
    ];
    mapping::parse_files(&files, &["production".into()], now()).unwrap();
}

#[test]
fn deep_nesting_and_a_missing_mappings_dir_carry_a_line() {
    let deep = format!(
        "{MINIMAL}[policy]\nx = {}1{}\n",
        "[".repeat(500),
        "]".repeat(500)
    );
    let err = config_err(&deep, &minimal_env());
    assert!(err.starts_with("scimwatch.toml:"), "{err}");
    let line: String = err["scimwatch.toml:".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(!line.is_empty(), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scimwatch.toml");
    std::fs::write(&path, with("[mappings]\ndir = \"nowhere\"\n")).unwrap();
    let cfg = config::load_str(
        &std::fs::read_to_string(&path).unwrap(),
        &path,
        &minimal_env(),
    )
    .unwrap();
    let err = mapping::load_configured(&cfg, &["production".into()], now()).unwrap_err();
    assert!(
        err.to_string()
            .contains("scimwatch.toml:10: mappings.dir: the mappings folder"),
        "{err}"
    );
    assert!(err.to_string().contains("does not exist"), "{err}");
}
