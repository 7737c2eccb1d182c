//! A deterministic mutation test over hostile input (issue 14): valid config and mapping
//! files, and Okta Event Hook and Graph notification bodies, mutated with a seeded RNG.
//! Every case must end like an exit code 0/1/2 would: the file loads or is refused with
//! a load error, and every problem of a load error carries a file:line (or names a byte
//! offset); the hook routers answer a 2xx or 4xx and stay up. No case may panic.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use scimwatch::config::{self, ConfigError, Problems};
use scimwatch::mapping::{self, MappingError};

const SEED: u64 = 14;
const CONFIG_CASES: usize = 400;
const MAPPING_CASES: usize = 300;
const HOOK_CASES: usize = 150;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn vars() -> BTreeMap<String, String> {
    [
        ("OKTA_API_TOKEN", "00okta-dummy-token"),
        ("SEGMENT_PRODUCTION_TOKEN", "sgp_dummy_production"),
        ("SEGMENT_STAGING_TOKEN", "sgp_dummy_staging"),
        ("OKTA_HOOK_SECRET", "dummy-hook-secret-0123456789"),
        ("SCIMWATCH_CHAIN_KEY", "dummy-chain-key-0123456789"),
        ("SCIMWATCH_API_TOKEN", "dummy-api-token-0123456789"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

const ALERTS: &str = r#"
[alerts]
resolve_after = 2
retry_max_backoff = "5m"
retry_for = "24h"

[[alerts.sink]]
name = "oncall"
kind = "pagerduty"
routing_key = "R0123456789abcdef0123456789abcde"

[[alerts.sink]]
name = "team"
kind = "slack"
webhook_url = "https://hooks.slack.invalid/services/T0/B0/XXXXXXXXXXXX"

[[alerts.sink]]
name = "siem"
kind = "webhook"
url = "https://siem.example.com/scimwatch"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

[[alerts.route]]
sinks = ["oncall", "team"]
severities = ["critical", "error"]
"#;

/// Values a mutation may put on the right of a `=`.
fn hostile_value(rng: &mut StdRng) -> String {
    let deep = rng.gen_range(1..400);
    let choices: Vec<String> = vec![
        "\"300000y\"".into(),
        "\"584542y\"".into(),
        "\"1ns\"".into(),
        "\"0s\"".into(),
        "\"\"".into(),
        "\" \"".into(),
        "\"a@b@c\"".into(),
        "\" jane@acme.test \"".into(),
        format!("\"{}\"", "x".repeat(rng.gen_range(100..200_000))),
        "99999999999999999999999".into(),
        "-1".into(),
        "0".into(),
        "4294967296".into(),
        format!("{}1{}", "[".repeat(deep), "]".repeat(deep)),
        format!(
            "{}{}",
            "{ a = ".repeat(deep.min(200)),
            "1 }".repeat(deep.min(200))
        ),
        "true".into(),
        "\"\\u0000\"".into(),
        "\"X-Okta\\u0000Secret\"".into(),
        "\"/dev/zero\"".into(),
        "\"/\"".into(),
        "1979-05-27T07:32:00Z".into(),
        "nan".into(),
        "inf".into(),
        "\"line\\nbreak\"".into(),
        "\"https://\"".into(),
        "\"9999-12-31T23:59:59Z\"".into(),
        "\"0000-01-01T00:00:00Z\"".into(),
        "[]".into(),
        "[\"\"]".into(),
        "\"ünïcödé\"".into(),
    ];
    choices[rng.gen_range(0..choices.len())].clone()
}

/// One random edit of `text`.
fn mutate(text: &str, rng: &mut StdRng) -> Vec<u8> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let bytes = text.as_bytes();
    match rng.gen_range(0..10) {
        // A value replaced by a hostile one.
        0..=3 => {
            let with_value: Vec<usize> = (0..lines.len())
                .filter(|&i| lines[i].contains(" = "))
                .collect();
            if let Some(&i) = with_value.get(rng.gen_range(0..with_value.len().max(1))) {
                let key = lines[i].split(" = ").next().unwrap_or("").to_string();
                lines[i] = format!("{key} = {}", hostile_value(rng));
            }
            lines.join("\n").into_bytes()
        }
        // A line deleted or duplicated.
        4 => {
            let i = rng.gen_range(0..lines.len());
            if rng.gen_bool(0.5) {
                lines.remove(i);
            } else {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            lines.join("\n").into_bytes()
        }
        // A key misspelt.
        5 => {
            let i = rng.gen_range(0..lines.len());
            if let Some(eq) = lines[i].find(" = ") {
                if eq > 1 {
                    let cut = rng.gen_range(0..eq);
                    lines[i].remove(cut);
                }
            }
            lines.join("\n").into_bytes()
        }
        // Random bytes inserted (control characters and invalid UTF-8 included).
        6 => {
            let at = rng.gen_range(0..=bytes.len());
            let n = rng.gen_range(1..8);
            let noise: Vec<u8> = (0..n).map(|_| rng.gen::<u8>()).collect();
            [&bytes[..at], &noise[..], &bytes[at..]].concat()
        }
        // Cut short.
        7 => bytes[..rng.gen_range(0..bytes.len())].to_vec(),
        // A table header changed kind.
        8 => {
            let i = rng.gen_range(0..lines.len());
            if lines[i].starts_with("[[") {
                lines[i] = lines[i].replacen("[[", "[", 1).replacen("]]", "]", 1);
            } else if lines[i].starts_with('[') {
                lines[i] = format!("[{}]", lines[i]);
            }
            lines.join("\n").into_bytes()
        }
        // Two edits.
        _ => {
            let once = String::from_utf8_lossy(&mutate(text, rng)).to_string();
            mutate(&once, rng)
        }
    }
}

/// Every problem carries a line, or names a byte offset.
fn positioned(p: &Problems, case: usize, what: &str) {
    for problem in &p.0 {
        assert!(
            problem.line.is_some() || problem.message.contains("byte offset"),
            "case {case} ({what}): a problem without a position: {problem}"
        );
        assert!(!problem.file.is_empty(), "case {case}: no file: {problem}");
    }
}

#[test]
fn mutated_config_and_mapping_files_load_or_fail_with_a_position_and_never_panic() {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(SEED);
    let dir = tempfile::tempdir().unwrap();
    let file = repo().join("deploy/scimwatch.example.toml");
    let base = format!("{}{ALERTS}", std::fs::read_to_string(&file).unwrap());
    let env = vars();
    // The base itself loads.
    config::load_str(&base, &file, &env).unwrap();

    let (mut ok, mut refused) = (0usize, 0usize);
    for case in 0..CONFIG_CASES {
        let bytes = mutate(&base, &mut rng);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            match String::from_utf8(bytes.clone()) {
                Ok(text) => config::load_str(&text, &file, &env),
                // Not UTF-8: only a file can say so; read it from disk like `validate` does.
                Err(_) => {
                    let path = dir.path().join(format!("case-{case}.toml"));
                    std::fs::write(&path, &bytes).unwrap();
                    config::load(Some(&path))
                }
            }
        }));
        let Ok(result) = outcome else {
            panic!(
                "case {case}: loading the config panicked on:\n{}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(2000)])
            );
        };
        match result {
            Ok(cfg) => {
                // What loads is usable: its durations convert for the date arithmetic.
                scimwatch::reconcile::Settings::from_config(&cfg)
                    .unwrap_or_else(|e| panic!("case {case}: loaded but unusable: {e:#}"));
                ok += 1;
            }
            Err(ConfigError::Invalid(p)) => {
                positioned(&p, case, "config");
                refused += 1;
            }
            Err(e) => panic!("case {case}: an error without a position: {e}"),
        }
    }
    assert!(
        refused > CONFIG_CASES / 2,
        "the mutations must mostly break the file: {ok} loaded"
    );

    let workspaces = vec!["production".to_string(), "staging".to_string()];
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let shipped: Vec<(String, String)> = ["production.toml", "staging.toml"]
        .iter()
        .map(|f| {
            (
                format!("mappings/{f}"),
                std::fs::read_to_string(repo().join("mappings").join(f)).unwrap(),
            )
        })
        .collect();
    mapping::parse_files(&shipped, &workspaces, now).unwrap();
    let (mut mok, mut mrefused) = (0usize, 0usize);
    for case in 0..MAPPING_CASES {
        let which = rng.gen_range(0..shipped.len());
        let bytes = mutate(&shipped[which].1, &mut rng);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let case_dir = dir.path().join(format!("m{case}"));
            std::fs::create_dir_all(case_dir.join("mappings")).unwrap();
            for (n, (name, text)) in shipped.iter().enumerate() {
                let body = if n == which {
                    bytes.clone()
                } else {
                    text.clone().into_bytes()
                };
                std::fs::write(case_dir.join(name), body).unwrap();
            }
            mapping::load_dir(&case_dir.join("mappings"), &case_dir, &workspaces, now)
        }));
        let Ok(result) = outcome else {
            panic!(
                "case {case}: loading mappings panicked on:\n{}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(2000)])
            );
        };
        match result {
            Ok(_) => mok += 1,
            Err(MappingError::Invalid(p)) => {
                positioned(&p, case, "mapping");
                mrefused += 1;
            }
            Err(e) => panic!("case {case}: an error without a position: {e}"),
        }
    }
    assert!(mrefused > MAPPING_CASES / 2, "{mok} loaded");
    let took = started.elapsed();
    eprintln!(
        "mutation test: {CONFIG_CASES} config cases ({ok} loaded, {refused} refused), {MAPPING_CASES} mapping cases ({mok} loaded, {mrefused} refused) in {took:?}"
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_hook_and_notification_bodies_get_a_2xx_or_4xx_and_never_a_panic() {
    use scimwatch::secret::Secret;
    use scimwatch::server::{hooks_router, GraphHook, OktaHook, Readiness, ServerState};
    use std::sync::{Arc, Mutex, RwLock};
    const HOOK: &str = "hook-secret-0123456789abcdef";
    const STATE: &str = "graph-state-0123456789abcdef";
    let state = Arc::new(ServerState {
        metrics: scimwatch::metrics::Metrics::new(),
        requests: scimwatch::http::RequestStats::new(),
        activator: scimwatch::triggers::Activator::new(),
        alerts: Default::default(),
        status: RwLock::new(serde_json::json!({})),
        findings: RwLock::new(None),
        ready: RwLock::new(Readiness {
            last_full_success: None,
            interval: Duration::from_secs(600),
            refresh_behind: None,
            full_refresh: Duration::from_secs(43_200),
        }),
        okta_hook: Some(OktaHook {
            secret: Secret::new(HOOK),
            header: "Authorization".into(),
        }),
        graph_hook: Some(GraphHook {
            client_state: Secret::new(STATE),
            lifecycle: None,
        }),
        auth_token: None,
        seen_events: Mutex::new(Default::default()),
        dead: RwLock::new(None),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(scimwatch::server::serve(
        listener,
        hooks_router(state.clone()),
        scimwatch::server::Limits::default(),
        cancel.clone(),
    ));
    // Keep the activator drained so wakes never pile up.
    let activator = state.activator.clone();
    tokio::spawn(async move {
        loop {
            activator.next().await;
        }
    });

    let okta = serde_json::json!({"eventType": "com.okta.event_hook", "eventTypeVersion": "1.0",
        "data": {"events": [{"uuid": "u1", "eventType": "group.user_membership.add",
        "published": "2025-03-28T17:03:37.093Z", "actor": {"alternateId": "a@example.com"}}]}})
    .to_string();
    let graph = serde_json::json!({"value": [{"subscriptionId": "s1", "clientState": STATE,
        "changeType": "updated", "resource": "Groups/g1", "resourceData": {"id": "g1"}},
        {"subscriptionId": "s1", "clientState": STATE, "lifecycleEvent": "missed"}]})
    .to_string();
    let client = reqwest::Client::new();
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut statuses: BTreeMap<(String, u16), usize> = BTreeMap::new();
    for case in 0..HOOK_CASES * 2 {
        let (path, body, auth) = if case % 2 == 0 {
            ("/hooks/okta", &okta, Some(HOOK))
        } else {
            ("/hooks/graph", &graph, None)
        };
        let mutated = mutate(body, &mut rng);
        let mut req = client.post(format!("{base}{path}")).body(mutated.clone());
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let r = req.send().await.unwrap_or_else(|e| {
            panic!(
                "case {case} ({path}): no answer ({e}) to {:?}",
                String::from_utf8_lossy(&mutated)
            )
        });
        let status = r.status().as_u16();
        assert!(
            (200..300).contains(&status) || (400..500).contains(&status),
            "case {case} ({path}): {status} for {:?}",
            String::from_utf8_lossy(&mutated)
        );
        *statuses.entry((path.to_string(), status)).or_default() += 1;
    }
    eprintln!(
        "mutation test: {} hook bodies: {statuses:?}",
        HOOK_CASES * 2
    );
    // Both kinds of answer happened: the mutations are not all harmless, nor all fatal.
    assert!(
        statuses.contains_key(&("/hooks/graph".to_string(), 401)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains_key(&("/hooks/graph".to_string(), 202)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains_key(&("/hooks/okta".to_string(), 200)),
        "{statuses:?}"
    );
    cancel.cancel();
}
