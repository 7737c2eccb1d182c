//! Alert sinks against the simulator's receivers: PagerDuty events (dedup key, severity,
//! custom details), Slack blocks, the Standard Webhooks signature (recomputed here, with
//! rotation), the error classes, `[alerts]` config errors with positions, and
//! `scimwatch alerts test` through the binary. Secrets never show.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{TimeZone, Utc};
use hmac::{Hmac, Mac};
use reqwest::Client;
use scimwatch::alert::{self, Action, Alert, AlertSink, SinkError};
use scimwatch::config::{self, AlertsConfig, ConfigError};
use scimwatch::http::{RequestStats, RetryConfig};
use scimwatch::model::{Email, ResourceType};
use scimwatch::reconcile::finding::{
    Attribution, AttributionKind, Finding, GrantView, Kind, ResourceView, Severity, State,
};
use scimwatch_sim::{self as sim, SimHandle};
use serde_json::{json, Value};
use sha2::Sha256;

const SEED: &str = r#"
[okta]
token = "okta-t"
app_id = "0oaseg"

[[okta.user]]
login = "a@x.test"

[[segment.workspace]]
name = "prod"
token = "seg-t"
"#;

const ROUTING_KEY: &str = "R0123456789abcdef0123456789abcde";
const SLACK_PATH: &str = "/slack/hooks/T0001/B0002/XXXXsecretXXXX";

fn secret(fill: u8) -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([fill; 32])
    )
}

fn base(sim: &str) -> String {
    format!(
        r#"
[idp]
kind = "okta"
url = "{sim}"
token = "okta-t-okta-t-okta-t"

[[workspace]]
name = "prod"
api_url = "{sim}"
token = "seg-t-seg-t-seg-t"
"#
    )
}

fn alerts_toml(sim: &str, previous: bool) -> String {
    let prev = if previous {
        format!("previous_secret = \"{}\"\n", secret(2))
    } else {
        String::new()
    };
    format!(
        r#"
[alerts]
resolve_after = 2
group_threshold = 10
source_down_after = 3
retry_max_backoff = "5m"
retry_for = "24h"

[[alerts.sink]]
name = "oncall"
kind = "pagerduty"
routing_key = "{ROUTING_KEY}"
url = "{sim}/pagerduty/v2/enqueue"

[[alerts.sink]]
name = "chat"
kind = "slack"
webhook_url = "{sim}{SLACK_PATH}"

[[alerts.sink]]
name = "siem"
kind = "webhook"
url = "{sim}/webhook/siem"
secret = "{}"
{prev}
[[alerts.route]]
severities = ["critical"]
sinks = ["oncall", "chat"]

[[alerts.route]]
sinks = ["siem"]
"#,
        secret(1)
    )
}

fn load(text: &str) -> Result<config::Config, ConfigError> {
    config::load_str(text, Path::new("scimwatch.toml"), &BTreeMap::new())
}

fn alerts_for(sim: &str, previous: bool) -> AlertsConfig {
    load(&format!("{}{}", base(sim), alerts_toml(sim, previous)))
        .expect("config loads")
        .alerts
}

fn sinks_for(sim: &str, previous: bool) -> Vec<Box<dyn AlertSink>> {
    alert::build_sinks(
        &alerts_for(sim, previous),
        RetryConfig::fast(),
        RequestStats::new(),
    )
}

fn sink<'a>(sinks: &'a [Box<dyn AlertSink>], name: &str) -> &'a dyn AlertSink {
    sinks.iter().find(|s| s.name() == name).unwrap().as_ref()
}

fn finding() -> Finding {
    let at = Utc.with_ymd_and_hms(2026, 1, 5, 9, 58, 0).single().unwrap();
    Finding {
        id: "3f9c2a7d1e0b4c55".into(),
        kind: Kind::DirectGrant,
        state: State::Drift,
        severity: Severity::Critical,
        workspace: "prod".into(),
        user: Some(Email::new("bob@x.test")),
        group: None,
        grant: Some(GrantView {
            role: "Workspace Owner".into(),
            role_id: "r1".into(),
            resources: vec![ResourceView {
                kind: ResourceType::Workspace,
                id: "ws1".into(),
                labels: None,
            }],
        }),
        since: at,
        deadline: None,
        attribution: Some(Attribution {
            kind: AttributionKind::Human,
            actor: "user/u8Kd2".into(),
            actor_email: Some("alice@x.test".into()),
            event: "Policy Created".into(),
            at,
        }),
        reverted_by_scim: Some(false),
        message: "Manual Workspace Owner grant to bob@x.test".into(),
        remedy: "Remove the grant in Segment, or map it in mappings/prod.toml".into(),
        extra: None,
        missing: None,
        mapping: None,
        nested_group: None,
        people_left_out: None,
        plan: None,
        reason: None,
        evidence: None,
    }
}

async fn start() -> (SimHandle, Client) {
    let h = sim::start(SEED, "127.0.0.1:0").await.expect("sim starts");
    (h, Client::new())
}

async fn recorded(c: &Client, h: &SimHandle) -> Value {
    c.get(format!("{}/_sim/sinks", h.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn set_mode(c: &Client, h: &SimHandle, body: Value) {
    let resp = c
        .post(format!("{}/_sim/sinks", h.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{body}");
}

fn hmac_b64(key: &[u8], signed: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(signed.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn pagerduty_trigger_and_resolve_carry_the_finding_id_and_facts() {
    let (h, c) = start().await;
    let sinks = sinks_for(&h.url(), false);
    let pd = sink(&sinks, "oncall");
    let f = finding();
    let now = Utc::now();
    let d = pd
        .send(&Alert::from_finding(&f, Action::Trigger, now))
        .await
        .unwrap();
    assert_eq!(d.status, 202);
    pd.send(&Alert::from_finding(&f, Action::Resolve, now))
        .await
        .unwrap();
    let got = recorded(&c, &h).await;
    let list = got["pagerduty"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let t = &list[0];
    assert_eq!(t["event_action"], "trigger");
    assert_eq!(t["dedup_key"], f.id);
    assert_eq!(t["routing_key"], ROUTING_KEY);
    assert_eq!(t["payload"]["severity"], "critical");
    assert_eq!(t["payload"]["source"], "scimwatch/prod");
    assert_eq!(t["payload"]["component"], "direct_grant");
    assert_eq!(t["payload"]["group"], "prod");
    let cd = &t["payload"]["custom_details"];
    for k in [
        "expected",
        "actual",
        "attribution",
        "reverted_by_scim",
        "deadline",
        "remedy",
    ] {
        assert!(cd.get(k).is_some(), "custom_details lacks {k}: {cd}");
    }
    assert_eq!(cd["actual"][0]["role"], "Workspace Owner");
    assert_eq!(cd["attribution"]["actor_email"], "alice@x.test");
    assert_eq!(cd["remedy"], f.remedy);
    assert_eq!(list[1]["event_action"], "resolve");
    assert_eq!(list[1]["dedup_key"], f.id);
    h.stop().await;
}

#[test]
fn severities_map_one_to_one_and_summary_is_one_bounded_line() {
    let mut f = finding();
    f.message = format!("line one\nline two {}", "x".repeat(3000));
    for (s, want) in [
        (Severity::Critical, "critical"),
        (Severity::Error, "error"),
        (Severity::Warning, "warning"),
        (Severity::Info, "info"),
    ] {
        f.severity = s;
        let a = Alert::from_finding(&f, Action::Trigger, Utc::now());
        let ev = alert::pagerduty::event("k", &a);
        assert_eq!(ev["payload"]["severity"], want);
        let summary = ev["payload"]["summary"].as_str().unwrap();
        assert!(summary.chars().count() <= 1024);
        assert!(!summary.contains('\n'));
    }
}

#[tokio::test]
async fn slack_gets_a_readable_message_with_blocks() {
    let (h, c) = start().await;
    let sinks = sinks_for(&h.url(), false);
    let slack = sink(&sinks, "chat");
    let d = slack
        .send(&Alert::from_finding(
            &finding(),
            Action::Trigger,
            Utc::now(),
        ))
        .await
        .unwrap();
    assert_eq!(d.status, 200);
    let got = recorded(&c, &h).await;
    let msg = &got["slack"][0];
    assert!(msg["text"]
        .as_str()
        .unwrap()
        .contains("Manual Workspace Owner grant"));
    let blocks = msg["blocks"].as_array().unwrap();
    assert!(blocks.len() >= 3);
    let all = msg["blocks"].to_string();
    for fact in [
        "Expected",
        "Actual",
        "alice@x.test",
        "Reverted by SCIM",
        "Deadline",
        "Remedy",
        "3f9c2a7d1e0b4c55",
    ] {
        assert!(all.contains(fact), "blocks lack {fact}: {all}");
    }
    h.stop().await;
}

#[tokio::test]
async fn webhook_posts_the_envelope_signed_the_standard_webhooks_way() {
    let (h, c) = start().await;
    let sinks = sinks_for(&h.url(), true);
    let wh = sink(&sinks, "siem");
    let f = finding();
    wh.send(&Alert::from_finding(&f, Action::Trigger, Utc::now()))
        .await
        .unwrap();
    wh.send(&Alert::from_finding(&f, Action::Resolve, Utc::now()))
        .await
        .unwrap();
    let got = recorded(&c, &h).await;
    let list = got["webhook"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let rec = &list[0];
    let headers = &rec["headers"];
    let id = headers["webhook-id"].as_str().unwrap();
    let ts = headers["webhook-timestamp"].as_str().unwrap();
    let ts_n: i64 = ts.parse().unwrap();
    assert!((Utc::now().timestamp() - ts_n).abs() < 60);
    let raw = rec["raw"].as_str().unwrap();
    let signed = format!("{id}.{ts}.{raw}");
    let sigs: Vec<&str> = headers["webhook-signature"]
        .as_str()
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(sigs.len(), 2, "rotation sends two signatures");
    for (sig, fill) in sigs.iter().zip([1u8, 2u8]) {
        assert_eq!(*sig, format!("v1,{}", hmac_b64(&[fill; 32], &signed)));
    }
    let body: Value = serde_json::from_str(raw).unwrap();
    assert_eq!(body["type"], "scimwatch.finding.triggered");
    assert_eq!(body["version"], 1);
    assert_eq!(body["id"], id);
    assert_eq!(body["dedup_key"], f.id);
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["finding"], serde_json::to_value(&f).unwrap());
    assert_eq!(list[1]["body"]["type"], "scimwatch.finding.resolved");
    assert_ne!(
        list[1]["headers"]["webhook-id"], headers["webhook-id"],
        "webhook-id is unique per message"
    );
    h.stop().await;
}

#[tokio::test]
async fn webhook_without_rotation_sends_one_valid_signature() {
    let (h, c) = start().await;
    let sinks = sinks_for(&h.url(), false);
    sink(&sinks, "siem")
        .send(&Alert::test(Action::Trigger, Utc::now()))
        .await
        .unwrap();
    let got = recorded(&c, &h).await;
    let rec = &got["webhook"][0];
    let signed = format!(
        "{}.{}.{}",
        rec["headers"]["webhook-id"].as_str().unwrap(),
        rec["headers"]["webhook-timestamp"].as_str().unwrap(),
        rec["raw"].as_str().unwrap()
    );
    assert_eq!(
        rec["headers"]["webhook-signature"],
        format!("v1,{}", hmac_b64(&[1u8; 32], &signed))
    );
    assert_eq!(rec["body"]["type"], "scimwatch.test.triggered");
    h.stop().await;
}

#[tokio::test]
async fn each_webhook_attempt_is_signed_with_its_own_timestamp() {
    // `alerts test` retries inside one call (the daemon's outbox signs each attempt
    // anew): after a 429 with Retry-After: 2 the delivered attempt must carry its own
    // time, and a signature over it, not the first attempt's.
    let (h, c) = start().await;
    let sinks = sinks_for(&h.url(), false);
    set_mode(
        &c,
        &h,
        json!({"sink": "webhook", "mode": "rate_limited", "count": 1, "retry_after": 2}),
    )
    .await;
    let before = Utc::now().timestamp();
    sink(&sinks, "siem")
        .send(&Alert::from_finding(
            &finding(),
            Action::Trigger,
            Utc::now(),
        ))
        .await
        .unwrap();
    let got = recorded(&c, &h).await;
    let rec = &got["webhook"][0];
    let ts: i64 = rec["headers"]["webhook-timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        ts >= before + 2,
        "timestamp {ts} is the first attempt's ({before})"
    );
    let signed = format!(
        "{}.{ts}.{}",
        rec["headers"]["webhook-id"].as_str().unwrap(),
        rec["raw"].as_str().unwrap()
    );
    assert_eq!(
        rec["headers"]["webhook-signature"],
        format!("v1,{}", hmac_b64(&[1u8; 32], &signed))
    );
    h.stop().await;
}

#[tokio::test]
async fn errors_are_classified_rejected_broken_and_transient_then_delivered() {
    let (h, c) = start().await;
    let sinks = sinks_for(&h.url(), false);
    let a = Alert::from_finding(&finding(), Action::Trigger, Utc::now());

    set_mode(
        &c,
        &h,
        json!({"sink": "pagerduty", "mode": "error_400", "count": 1}),
    )
    .await;
    let e = sink(&sinks, "oncall").send(&a).await.unwrap_err();
    assert!(
        matches!(e, SinkError::Rejected { status: 400, .. }),
        "{e:?}"
    );

    set_mode(
        &c,
        &h,
        json!({"sink": "slack", "mode": "revoked", "count": 1}),
    )
    .await;
    let e = sink(&sinks, "chat").send(&a).await.unwrap_err();
    assert!(matches!(e, SinkError::Broken { status: 404, .. }), "{e:?}");
    assert!(!e.to_string().contains("XXXXsecret"), "{e}");
    assert!(!format!("{e:?}").contains("XXXXsecret"));

    set_mode(
        &c,
        &h,
        json!({"sink": "webhook", "mode": "revoked", "count": 1}),
    )
    .await;
    let e = sink(&sinks, "siem").send(&a).await.unwrap_err();
    assert!(matches!(e, SinkError::Broken { status: 404, .. }), "{e:?}");

    // 429 with Retry-After: 0, then accepted: Http retries it, the sink delivers.
    set_mode(
        &c,
        &h,
        json!({"sink": "pagerduty", "mode": "rate_limited", "count": 1, "retry_after": 0}),
    )
    .await;
    let d = sink(&sinks, "oncall").send(&a).await.unwrap();
    assert_eq!(d.status, 202);

    // A sink that stays down is transient once the retries run out.
    set_mode(&c, &h, json!({"sink": "webhook", "mode": "error_500"})).await;
    let e = sink(&sinks, "siem").send(&a).await.unwrap_err();
    assert!(
        matches!(
            e,
            SinkError::Transient {
                status: Some(500),
                ..
            }
        ),
        "{e:?}"
    );
    let got = recorded(&c, &h).await;
    assert_eq!(got["pagerduty"].as_array().unwrap().len(), 1);
    assert!(got["refused"]["pagerduty"].as_u64().unwrap() >= 2);
    h.stop().await;
}

#[tokio::test]
async fn slack_transport_errors_do_not_show_the_url() {
    // Nothing listens on port 9 of localhost.
    let cfg = load(&format!(
        "{}\n[[alerts.sink]]\nname = \"chat\"\nkind = \"slack\"\nwebhook_url = \"http://127.0.0.1:9/services/T/B/XXXXsecret\"\n",
        base("http://127.0.0.1:9")
    ))
    .unwrap();
    let mut retry = RetryConfig::fast();
    retry.max_retries = 0;
    let sinks = alert::build_sinks(&cfg.alerts, retry, Arc::new(RequestStats::default()));
    let e = sinks[0]
        .send(&Alert::test(Action::Trigger, Utc::now()))
        .await
        .unwrap_err();
    assert!(
        matches!(e, SinkError::Transient { status: None, .. }),
        "{e:?}"
    );
    assert!(!e.to_string().contains("XXXXsecret"), "{e}");
    assert!(!format!("{e:?}").contains("XXXXsecret"), "{e:?}");
    assert!(!format!("{:?}", sinks[0]).contains("XXXXsecret"));
    assert!(!format!("{cfg:?}").contains("XXXXsecret"));
}

#[test]
fn config_is_typed_and_routes_pick_the_first_match() {
    let a = alerts_for("http://sim.test", true);
    assert_eq!(a.resolve_after, 2);
    assert_eq!(a.group_threshold, 10);
    assert_eq!(a.source_down_after, 3);
    assert_eq!(a.retry_max_backoff.as_secs(), 300);
    assert_eq!(a.retry_for.as_secs(), 86_400);
    assert_eq!(a.sinks.len(), 3);
    assert_eq!(
        a.route("critical", "direct_grant", "prod"),
        ["oncall", "chat"]
    );
    assert_eq!(a.route("warning", "direct_grant", "prod"), ["siem"]);
    let dbg = format!("{a:?}");
    assert!(!dbg.contains(ROUTING_KEY), "{dbg}");
    assert!(!dbg.contains(&secret(1)), "{dbg}");
    assert!(!dbg.contains("XXXXsecret"), "{dbg}");
    // Absent [alerts]: defaults, no sinks.
    let none = load(&base("http://sim.test")).unwrap().alerts;
    assert!(none.sinks.is_empty() && none.routes.is_empty());
    assert_eq!(none.resolve_after, 2);
}

fn config_err(text: &str, env: &[(&str, &str)]) -> String {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match config::load_str(text, Path::new("scimwatch.toml"), &env) {
        Ok(_) => panic!("expected the config to be refused"),
        Err(ConfigError::Invalid(p)) => p.to_string(),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[test]
fn config_errors_name_file_line_and_near_names() {
    let text = format!(
        r#"{}
[alerts]

[[alerts.sink]]
name = "oncall"
kind = "pagerduty"
routing_key_env = "PD_ROUTING_KEY"

[[alerts.sink]]
name = "oncall"
kind = "slack"
webhook_url_env = "SLACK_URL"

[[alerts.sink]]
name = "siem"
kind = "webhok"

[[alerts.route]]
sinks = ["oncal"]
severities = ["critcal"]
"#,
        base("http://sim.test")
    );
    let err = config_err(
        &text,
        &[(
            "SLACK_URL",
            "https://hooks.slack.com/services/T/B/XXXXsecret",
        )],
    );
    let lines: Vec<&str> = err.lines().collect();
    let has = |needle: &str| {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{err}"))
            .to_string()
    };
    let missing = has("PD_ROUTING_KEY");
    assert!(
        missing.starts_with("scimwatch.toml:17: alerts.sink[1].routing_key_env"),
        "{missing}"
    );
    assert!(missing.contains("not set"));
    let dup = has("already used");
    assert!(
        dup.starts_with("scimwatch.toml:20: alerts.sink[2].name"),
        "{dup}"
    );
    let kind = has("webhok");
    assert!(kind.contains("did you mean `webhook`"), "{kind}");
    let route = has("no [[alerts.sink]] defines");
    assert!(
        route.starts_with("scimwatch.toml:29: alerts.route[1].sinks"),
        "{route}"
    );
    assert!(route.contains("did you mean `oncall`"), "{route}");
    let sev = has("critcal");
    assert!(sev.contains("did you mean `critical`"), "{sev}");
    assert!(!err.contains("XXXXsecret"));
}

#[test]
fn webhook_secret_must_be_whsec_and_is_never_echoed() {
    let text = format!(
        "{}\n[[alerts.sink]]\nname = \"siem\"\nkind = \"webhook\"\nurl = \"https://siem.test/in\"\nsecret = \"not-a-whsec-TOPSECRET\"\n",
        base("http://sim.test")
    );
    let err = config_err(&text, &[]);
    assert!(err.contains("alerts.sink[1].secret"), "{err}");
    assert!(err.contains("whsec_"), "{err}");
    assert!(!err.contains("TOPSECRET"), "{err}");
}

fn binary(config: &Path, extra: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"));
    cmd.arg("--config")
        .arg(config)
        .args(["alerts", "test"])
        .args(extra);
    for (k, _) in std::env::vars() {
        if k.starts_with("SCIMWATCH") {
            cmd.env_remove(k);
        }
    }
    cmd.output().unwrap()
}

#[tokio::test]
async fn alerts_test_command_sends_trigger_and_resolve_through_every_sink() {
    let (h, c) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scimwatch.toml");
    std::fs::write(
        &path,
        format!("{}{}", base(&h.url()), alerts_toml(&h.url(), false)),
    )
    .unwrap();

    let out = tokio::task::spawn_blocking({
        let path = path.clone();
        move || binary(&path, &[])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("oncall (pagerduty): trigger 202, resolve 202 — ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains("chat (slack): trigger 200, resolve 200 — ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains("siem (webhook): trigger 200, resolve 200 — ok"),
        "{stdout}"
    );
    let got = recorded(&c, &h).await;
    let pd = got["pagerduty"].as_array().unwrap();
    assert_eq!(pd.len(), 2);
    assert_eq!(pd[0]["event_action"], "trigger");
    assert_eq!(pd[1]["event_action"], "resolve");
    assert_eq!(pd[0]["dedup_key"], pd[1]["dedup_key"]);
    assert!(pd[0]["payload"]["summary"]
        .as_str()
        .unwrap()
        .contains("TEST"));
    assert_eq!(got["slack"].as_array().unwrap().len(), 2);
    let wh = got["webhook"].as_array().unwrap();
    assert_eq!(wh[0]["body"]["type"], "scimwatch.test.triggered");
    assert_eq!(wh[1]["body"]["type"], "scimwatch.test.resolved");

    // One sink refusing: exit 1, the others still tried; --sink limits to one.
    set_mode(&c, &h, json!({"sink": "slack", "mode": "error_400"})).await;
    let out = tokio::task::spawn_blocking({
        let path = path.clone();
        move || binary(&path, &[])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("chat (slack): trigger 400, resolve 400 — FAILED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("oncall (pagerduty): trigger 202, resolve 202 — ok"),
        "{stdout}"
    );
    assert!(!stdout.contains("XXXXsecret"), "{stdout}");

    let out = tokio::task::spawn_blocking({
        let path = path.clone();
        move || binary(&path, &["--sink", "oncall"])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");

    // A config that does not load: exit 2.
    std::fs::write(&path, "[alerts]\nbogus = 1\n").unwrap();
    let out = tokio::task::spawn_blocking(move || binary(&path, &[]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    h.stop().await;
}
