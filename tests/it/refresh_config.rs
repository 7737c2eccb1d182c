//! `[sync] full_refresh` and `[sync] open_findings_per_tick`: defaults, bounds, and errors
//! naming the file, line and key.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use scimwatch::config::{self, ConfigError};

const BASE: &str = r#"
[idp]
kind = "okta"
url = "https://acme.okta.com"
token_env = "OKTA_API_TOKEN"

[[workspace]]
name = "production"
token_env = "SEGMENT_PRODUCTION_TOKEN"
"#;

fn vars() -> BTreeMap<String, String> {
    [
        ("OKTA_API_TOKEN", "00okta-secret-value-AAAA"),
        ("SEGMENT_PRODUCTION_TOKEN", "sgp_production-secret-BBBB"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn load(sync: &str) -> Result<config::Config, String> {
    let text = format!("{BASE}\n[sync]\n{sync}\n");
    match config::load_str(&text, Path::new("scimwatch.toml"), &vars()) {
        Ok(c) => Ok(c),
        Err(ConfigError::Invalid(p)) => Err(p.to_string()),
        Err(e) => Err(format!("unexpected error: {e}")),
    }
}

#[test]
fn refresh_keys_default_to_12h_and_100() {
    let cfg = load("").expect("loads");
    assert_eq!(cfg.sync.full_refresh, Duration::from_secs(12 * 3600));
    assert_eq!(cfg.sync.open_findings_per_tick, 100);
}

#[test]
fn refresh_keys_accept_values_within_bounds() {
    for (text, fr, per) in [
        ("full_refresh = \"1s\"\nopen_findings_per_tick = 1", 1, 1),
        (
            "full_refresh = \"7days\"\nopen_findings_per_tick = 10000",
            7 * 86_400,
            10_000,
        ),
        (
            "full_refresh = \"30m\"\nopen_findings_per_tick = 250",
            1800,
            250,
        ),
    ] {
        let cfg = load(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(cfg.sync.full_refresh, Duration::from_secs(fr), "{text}");
        assert_eq!(cfg.sync.open_findings_per_tick, per, "{text}");
    }
}

#[test]
fn refresh_keys_out_of_bounds_name_file_line_and_key() {
    // The [sync] header is on line 11 of the file; the first key on line 12.
    for (text, key, line, words) in [
        (
            "full_refresh = \"0s\"",
            "sync.full_refresh",
            12,
            "between 1s and 7 days",
        ),
        (
            "full_refresh = \"500ms\"",
            "sync.full_refresh",
            12,
            "between 1s and 7 days",
        ),
        (
            "full_refresh = \"7days 1s\"",
            "sync.full_refresh",
            12,
            "between 1s and 7 days",
        ),
        (
            "full_refresh = \"soon\"",
            "sync.full_refresh",
            12,
            "duration",
        ),
        (
            "interval = \"5m\"\nopen_findings_per_tick = 0",
            "sync.open_findings_per_tick",
            13,
            "between 1 and 10000",
        ),
        (
            "open_findings_per_tick = 10001",
            "sync.open_findings_per_tick",
            12,
            "between 1 and 10000",
        ),
        (
            "open_findings_per_tick = \"many\"",
            "sync.open_findings_per_tick",
            12,
            "",
        ),
    ] {
        let err = load(text).expect_err(text);
        assert!(
            err.contains(&format!("scimwatch.toml:{line}")),
            "{text}: {err}"
        );
        assert!(err.contains(key), "{text}: {err}");
        assert!(err.contains(words), "{text}: {err}");
    }
    // Both wrong at once: both reported.
    let err = load("full_refresh = \"8days\"\nopen_findings_per_tick = 0").expect_err("two");
    assert!(
        err.contains("sync.full_refresh") && err.contains("sync.open_findings_per_tick"),
        "{err}"
    );
}

#[test]
fn refresh_keys_take_environment_overrides_with_the_same_bounds() {
    let text = format!("{BASE}\n[sync]\n");
    let mut v = vars();
    v.insert("SCIMWATCH__SYNC__FULL_REFRESH".into(), "2h".into());
    v.insert("SCIMWATCH__SYNC__OPEN_FINDINGS_PER_TICK".into(), "7".into());
    let cfg = config::load_str(&text, Path::new("scimwatch.toml"), &v).expect("loads");
    assert_eq!(cfg.sync.full_refresh, Duration::from_secs(7200));
    assert_eq!(cfg.sync.open_findings_per_tick, 7);

    v.insert("SCIMWATCH__SYNC__FULL_REFRESH".into(), "30days".into());
    match config::load_str(&text, Path::new("scimwatch.toml"), &v) {
        Err(ConfigError::Invalid(p)) => {
            let err = p.to_string();
            assert!(err.contains("full_refresh"), "{err}");
            assert!(err.contains("between 1s and 7 days"), "{err}");
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}
