//! Alerting end to end: the daemon, the simulator and its fake PagerDuty, Slack and
//! webhook receivers. One trigger per drift finding and its resolve; no re-trigger after a
//! restart; a 500 then a 202 delivers once; a 400 is dead-lettered, not retried, and
//! reported; 300 members drifting at once page once (a digest); Okta down for three
//! passes pages one `source_unavailable` and no drift, then resolves it; a broken sink
//! raises `sink_failing` elsewhere and loses nothing across a restart.
//!
//! Passes are driven by hand (`Daemon::activate`) with the periodic tick an hour away and
//! the pollers off, so each test knows exactly which passes ran.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scimwatch::daemon::Daemon;
use scimwatch::http::RetryConfig;
use scimwatch::triggers::Reason;
use scimwatch_sim::{self as sim, SimHandle};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const SEED: &str = include_str!("../../deploy/demo-seed.toml");
const OMAR: &str = "omar.khan@acme.test";
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn mappings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings")
}

/// The simulator's sinks, every finding routed to all three; horizons in seconds.
fn alerts_toml(sim: &SimHandle, extra_sinks: &str) -> String {
    let url = sim.url();
    format!(
        r#"
[alerts]
resolve_after = 2
group_threshold = 10
source_down_after = 3
retry_max_backoff = "1s"
retry_for = "1h"

[[alerts.sink]]
name = "oncall"
kind = "pagerduty"
routing_key = "R0123456789abcdef0123456789abcde"
url = "{url}/pagerduty/v2/enqueue"

[[alerts.sink]]
name = "team"
kind = "slack"
webhook_url = "{url}/slack/hooks/T0001/B0002/XXXXsecretXXXX"

[[alerts.sink]]
name = "siem"
kind = "webhook"
url = "{url}/webhook/siem"
secret = "{WEBHOOK_SECRET}"
{extra_sinks}
[[alerts.route]]
sinks = ["oncall", "team", "siem"]
"#
    )
}

fn config_text(sim: &SimHandle, dir: &Path, extra_sinks: &str) -> String {
    format!(
        "{}\n[store]\npath = \"{}\"\n[sync]\ninterval = \"1h\"\n[triggers]\nsystem_log_poll = \"0s\"\naudit_poll = \"0s\"\n[server]\nlisten = \"127.0.0.1:0\"\n{}",
        sim.config_toml(&mappings_dir(), "propagation_window = \"60m\""),
        dir.join("scimwatch.db").display(),
        alerts_toml(sim, extra_sinks),
    )
}

/// A running daemon (server, outbox workers) whose passes the test drives.
struct Running {
    d: Arc<Daemon>,
    cancel: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn start(text: &str) -> Running {
        let config = scimwatch::config::load_str(
            text,
            Path::new("/tmp/scimwatch.toml"),
            &Default::default(),
        )
        .expect("config");
        let known: Vec<String> = config.workspaces.iter().map(|w| w.name.clone()).collect();
        let mappings = scimwatch::mapping::load_dir(
            &mappings_dir(),
            Path::new(env!("CARGO_MANIFEST_DIR")),
            &known,
            chrono::Utc::now(),
        )
        .expect("mappings");
        let d = Arc::new(
            Daemon::build(config, mappings, RetryConfig::fast())
                .await
                .expect("daemon builds"),
        );
        let cancel = CancellationToken::new();
        let task = tokio::spawn(d.clone().run(cancel.clone()));
        Running { d, cancel, task }
    }

    async fn full_pass(&self) {
        self.d.activate([Reason::Periodic].into()).await;
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap().unwrap();
    }

    /// Waits until every sink's outbox is empty.
    async fn drained(&self, within: Duration) {
        self.drained_except("", within).await;
    }

    fn metrics(&self) -> String {
        self.d.metrics.render(&self.d.stats)
    }
}

async fn sinks(sim: &SimHandle) -> Value {
    reqwest::get(format!("{}/_sim/sinks", sim.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn control(sim: &SimHandle, method: reqwest::Method, path: &str, body: Option<Value>) {
    let url = format!("{}{}", sim.url(), path.replace(' ', "%20"));
    let mut req = reqwest::Client::new().request(method, &url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

async fn sink_mode(sim: &SimHandle, body: Value) {
    control(sim, reqwest::Method::POST, "/_sim/sinks", Some(body)).await;
}

/// `email`'s Segment user id in production.
async fn user_id(sim: &SimHandle, email: &str) -> String {
    let users: Value = reqwest::Client::new()
        .get(format!(
            "{}/segment/production/users?pagination.count=1000",
            sim.url()
        ))
        .bearer_auth("ui-ana-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    users["data"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .unwrap_or_else(|| panic!("{email} is not in production"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Ana (a Workspace Owner in the app) sets `email`'s direct permissions in production.
async fn set_direct(sim: &SimHandle, email: &str, permissions: Value) {
    let id = user_id(sim, email).await;
    let r = reqwest::Client::new()
        .put(format!(
            "{}/segment/production/users/{id}/permissions",
            sim.url()
        ))
        .bearer_auth("ui-ana-token")
        .json(&json!({ "permissions": permissions }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

async fn direct_of(sim: &SimHandle, email: &str) -> Value {
    let id = user_id(sim, email).await;
    let v: Value = reqwest::Client::new()
        .get(format!("{}/segment/production/users/{id}", sim.url()))
        .bearer_auth("ui-ana-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let perms = v["data"]["user"]["permissions"].clone();
    // Back to the input shape: roleId + resources (id, type).
    let list: Vec<Value> = perms
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            json!({"roleId": p["roleId"], "resources": p["resources"].as_array().cloned().unwrap_or_default().iter().map(|r| json!({"id": r["id"], "type": r["type"]})).collect::<Vec<_>>()})
        })
        .collect();
    Value::Array(list)
}

async fn workspace_id(sim: &SimHandle) -> Value {
    let ws: Value = reqwest::Client::new()
        .get(format!("{}/segment/production/", sim.url()))
        .bearer_auth("ui-ana-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    ws["data"]["workspace"]["id"].clone()
}

const OWNER_ROLE: &str = "1WDUuRLxv84rrfCNUwvkrRtkxnS";

fn pd_events(s: &Value) -> Vec<(String, String, String)> {
    s["pagerduty"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_action"].as_str().unwrap_or("").to_string(),
                e["dedup_key"].as_str().unwrap_or("").to_string(),
                e["payload"]["class"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn direct_grant_id(d: &Daemon) -> String {
    let doc: Value =
        serde_json::from_str(&d.server.findings.read().unwrap().clone().unwrap()).unwrap();
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "direct_grant")
        .expect("a direct_grant finding")["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trigger_per_drift_finding_then_its_resolve_and_a_restart_sends_nothing_twice() {
    let sim = sim::start(SEED, "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&sim, dir.path(), "");
    let run = Running::start(&text).await;
    run.full_pass().await;
    run.drained(Duration::from_secs(10)).await;
    assert!(
        pd_events(&sinks(&sim).await).is_empty(),
        "a clean start pages nobody"
    );

    let before = direct_of(&sim, OMAR).await;
    let ws = workspace_id(&sim).await;
    let mut owner = before.as_array().cloned().unwrap_or_default();
    owner.push(json!({"roleId": OWNER_ROLE, "resources": [{"id": ws, "type": "WORKSPACE"}]}));
    set_direct(&sim, OMAR, Value::Array(owner)).await;
    for _ in 0..3 {
        run.full_pass().await;
    }
    run.drained(Duration::from_secs(15)).await;
    let id = direct_grant_id(&run.d);
    let s = sinks(&sim).await;
    assert_eq!(
        pd_events(&s),
        vec![(
            "trigger".to_string(),
            id.clone(),
            "direct_grant".to_string()
        )],
        "one trigger for three passes in drift"
    );
    let pd = &s["pagerduty"][0];
    assert_eq!(pd["payload"]["severity"], "critical");
    assert_eq!(
        pd["payload"]["custom_details"]["attribution"]["actor_email"],
        "ana.silva@acme.test"
    );
    assert!(pd["payload"]["custom_details"]["remedy"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert_eq!(s["slack"].as_array().unwrap().len(), 1);
    let hook = &s["webhook"][0];
    assert_eq!(hook["body"]["type"], "scimwatch.finding.triggered");
    assert_eq!(hook["body"]["dedup_key"], id.as_str());
    assert_eq!(hook["body"]["finding"]["id"], id.as_str());

    // A restart: nothing is sent again.
    run.stop().await;
    let run = Running::start(&text).await;
    run.full_pass().await;
    run.drained(Duration::from_secs(10)).await;
    assert_eq!(
        pd_events(&sinks(&sim).await).len(),
        1,
        "a restart does not re-trigger"
    );

    // Fixed: one odd clean pass holds the alert, the second resolves it, once per sink.
    set_direct(&sim, OMAR, before).await;
    run.full_pass().await;
    run.drained(Duration::from_secs(10)).await;
    assert_eq!(
        pd_events(&sinks(&sim).await).len(),
        1,
        "no resolve after one clean pass"
    );
    run.full_pass().await;
    run.full_pass().await;
    run.drained(Duration::from_secs(10)).await;
    let s = sinks(&sim).await;
    assert_eq!(
        pd_events(&s),
        vec![
            (
                "trigger".to_string(),
                id.clone(),
                "direct_grant".to_string()
            ),
            ("resolve".to_string(), id.clone(), String::new()),
        ]
    );
    assert_eq!(s["slack"].as_array().unwrap().len(), 2);
    assert!(s["slack"][1]["text"].as_str().unwrap().contains("Resolved"));
    assert_eq!(
        s["webhook"][1]["body"]["type"],
        "scimwatch.finding.resolved"
    );
    let m = run.metrics();
    assert!(
        m.contains(
            r#"scimwatch_alerts_sent_total{sink="oncall",action="resolve",result="delivered"} 1"#
        ),
        "{m}"
    );
    run.stop().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_500_then_202_delivers_once_and_a_400_is_dead_lettered_not_retried() {
    let sim = sim::start(SEED, "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(&config_text(&sim, dir.path(), "")).await;
    run.full_pass().await;

    sink_mode(
        &sim,
        json!({"sink": "pagerduty", "mode": "error_500", "count": 1}),
    )
    .await;
    let ws = workspace_id(&sim).await;
    let before = direct_of(&sim, OMAR).await;
    let mut owner = before.as_array().cloned().unwrap_or_default();
    owner.push(json!({"roleId": OWNER_ROLE, "resources": [{"id": ws, "type": "WORKSPACE"}]}));
    set_direct(&sim, OMAR, Value::Array(owner)).await;
    run.full_pass().await;
    run.drained(Duration::from_secs(15)).await;
    let s = sinks(&sim).await;
    assert_eq!(s["refused"]["pagerduty"], 1, "the 500 was answered once");
    assert_eq!(pd_events(&s).len(), 1, "then delivered, once");
    let m = run.metrics();
    assert!(
        m.contains(
            r#"scimwatch_alerts_sent_total{sink="oncall",action="trigger",result="retry"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains(
            r#"scimwatch_alerts_sent_total{sink="oncall",action="trigger",result="delivered"} 1"#
        ),
        "{m}"
    );

    // A 400: dead-lettered at once, kept, counted, shown; the next alert goes on.
    sink_mode(
        &sim,
        json!({"sink": "pagerduty", "mode": "error_400", "count": 1}),
    )
    .await;
    grant_owner(&sim, "paula.rossi@acme.test").await;
    run.full_pass().await;
    run.drained(Duration::from_secs(15)).await;
    let s = sinks(&sim).await;
    assert_eq!(s["refused"]["pagerduty"], 2, "one attempt only for the 400");
    assert_eq!(pd_events(&s).len(), 1);
    let dead = run.d.store.outbox_list("dead").await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].sink, "oncall");
    assert!(
        dead[0].last_error.as_deref().unwrap_or("").contains("400"),
        "{dead:?}"
    );
    let m = run.metrics();
    assert!(
        m.contains(
            r#"scimwatch_alerts_sent_total{sink="oncall",action="trigger",result="dead_letter"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains(r#"scimwatch_alert_dead_letters{sink="oncall"} 1"#),
        "{m}"
    );
    let status = run.d.server.status_doc();
    let oncall = status["alerts"]["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "oncall")
        .unwrap()
        .clone();
    assert_eq!(oncall["dead_letters"], 1, "{status:#}");
    // The other sinks got both.
    assert_eq!(s["slack"].as_array().unwrap().len(), 2);

    // The sink is fine again: the next alert is delivered.
    grant_owner(&sim, "quinn.adams@acme.test").await;
    run.full_pass().await;
    run.drained(Duration::from_secs(15)).await;
    assert_eq!(pd_events(&sinks(&sim).await).len(), 2);
    run.stop().await;
    sim.stop().await;
}

/// The demo company with 300 more people in Segment Marketing (Okta and Segment agree).
fn big_seed() -> String {
    let people: Vec<String> = (0..300).map(|i| format!("p{i:03}@acme.test")).collect();
    let marketing = r#"members = ["maria.garcia@acme.test", "nina.berg@acme.test", "omar.khan@acme.test", "paula.rossi@acme.test", "quinn.adams@acme.test", "rita.souza@acme.test", "sam.taylor@acme.test", "tara.singh@acme.test", "uma.reddy@acme.test", "dan.leaver@acme.test"]"#;
    assert_eq!(SEED.matches(marketing).count(), 2, "the demo seed changed");
    let quoted: Vec<String> = people.iter().map(|p| format!("\"{p}\"")).collect();
    let bigger = marketing.replace(
        "\"dan.leaver@acme.test\"]",
        &format!("\"dan.leaver@acme.test\", {}]", quoted.join(", ")),
    );
    let mut seed = SEED.replace(marketing, &bigger);
    for p in &people {
        seed.push_str(&format!("\n[[okta.user]]\nlogin = \"{p}\"\n"));
    }
    seed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_members_drifting_at_once_page_once_as_a_digest() {
    let sim = sim::start(&big_seed(), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    control(
        &sim,
        reqwest::Method::POST,
        "/_sim/push",
        Some(json!({"mode": "paused"})),
    )
    .await;
    let run = Running::start(&config_text(&sim, dir.path(), "")).await;
    run.full_pass().await;
    run.drained(Duration::from_secs(10)).await;
    assert!(
        pd_events(&sinks(&sim).await).is_empty(),
        "the bigger company starts clean"
    );

    // Okta suspends all 300 (say, a bad import): suspended users stay in Segment.
    for i in 0..300 {
        control(
            &sim,
            reqwest::Method::POST,
            &format!("/_sim/okta/users/p{i:03}@acme.test/status"),
            Some(json!({"status": "SUSPENDED"})),
        )
        .await;
    }
    run.full_pass().await;
    run.full_pass().await;
    run.drained(Duration::from_secs(15)).await;
    let s = sinks(&sim).await;
    let events = pd_events(&s);
    assert_eq!(events.len(), 1, "{events:?}");
    let digest = &s["pagerduty"][0];
    let details = &digest["payload"]["custom_details"];
    assert_eq!(details["count"], 300);
    assert_eq!(details["kind"], "deactivated_user_present");
    assert_eq!(details["subjects"].as_array().unwrap().len(), 20);
    assert!(digest["payload"]["summary"]
        .as_str()
        .unwrap()
        .contains("300 deactivated_user_present"));
    assert_eq!(s["slack"].as_array().unwrap().len(), 1);
    assert_eq!(
        s["webhook"][0]["body"]["type"],
        "scimwatch.digest.triggered"
    );
    // The digest's key is kept: another pass sends nothing.
    run.full_pass().await;
    run.drained(Duration::from_secs(10)).await;
    assert_eq!(pd_events(&sinks(&sim).await).len(), 1);
    run.stop().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_down_for_three_passes_pages_one_source_unavailable_and_no_drift_then_resolves() {
    let sim = sim::start(SEED, "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(&config_text(&sim, dir.path(), "")).await;
    run.full_pass().await;

    control(
        &sim,
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"service": "okta", "status": 503})),
    )
    .await;
    // Meanwhile someone grants Owner by hand: no drift page while Okta is down.
    grant_owner(&sim, "paula.rossi@acme.test").await;
    for _ in 0..5 {
        run.full_pass().await;
    }
    run.drained(Duration::from_secs(10)).await;
    let s = sinks(&sim).await;
    let events = pd_events(&s);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "trigger");
    assert_eq!(events[0].2, "source_unavailable");
    let summary = s["pagerduty"][0]["payload"]["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        summary.contains("okta") && summary.contains("503"),
        "{summary}"
    );
    assert_eq!(
        s["webhook"][0]["body"]["type"],
        "scimwatch.source_unavailable.triggered"
    );
    let status = run.d.server.status_doc();
    assert_eq!(
        status["alerts"]["sources_failing"][0]["failed_passes"], 5,
        "{status:#}"
    );

    // Okta is back: the source resolves, and what the pass finds is paged now.
    control(&sim, reqwest::Method::DELETE, "/_sim/faults", None).await;
    run.full_pass().await;
    run.drained(Duration::from_secs(10)).await;
    let events = pd_events(&sinks(&sim).await);
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events.contains(&("resolve".to_string(), events[0].1.clone(), String::new())));
    assert!(events
        .iter()
        .any(|e| e.0 == "trigger" && e.2 == "direct_grant"));
    run.stop().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_sink_is_broken_raises_sink_failing_elsewhere_and_loses_nothing_across_a_restart()
{
    let sim = sim::start(SEED, "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&sim, dir.path(), "");
    let run = Running::start(&text).await;
    run.full_pass().await;

    sink_mode(&sim, json!({"sink": "slack", "mode": "revoked"})).await;
    grant_owner(&sim, "paula.rossi@acme.test").await;
    run.full_pass().await;
    let start = Instant::now();
    while run.d.store.sinks_broken().await.unwrap().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "slack never marked broken"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    run.drained_except("team", Duration::from_secs(15)).await;
    let s = sinks(&sim).await;
    let events = pd_events(&s);
    assert_eq!(
        events.iter().map(|e| e.2.as_str()).collect::<Vec<_>>(),
        vec!["direct_grant", "sink_failing"],
        "{events:?}"
    );
    assert!(s["pagerduty"][1]["payload"]["summary"]
        .as_str()
        .unwrap()
        .contains("\"team\""));
    assert_eq!(s["refused"]["slack"], 1, "a broken sink is not hammered");
    let broken = run.d.store.sinks_broken().await.unwrap();
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0].name, "team");
    let m = run.metrics();
    assert!(
        m.contains(r#"scimwatch_alert_sink_broken{sink="team"} 1"#),
        "{m}"
    );
    // The Slack URL (a secret) is nowhere in /status or the metrics.
    let status = run.d.server.status_doc().to_string();
    assert!(!status.contains("XXXXsecretXXXX") && !m.contains("XXXXsecretXXXX"));

    // Slack is fixed; scimwatch restarts (a reload): the waiting alert is delivered,
    // and the sink_failing alert resolves.
    run.stop().await;
    sink_mode(&sim, json!({"sink": "slack", "mode": "ok"})).await;
    let run = Running::start(&text).await;
    run.drained(Duration::from_secs(15)).await;
    let s = sinks(&sim).await;
    assert_eq!(s["slack"].as_array().unwrap().len(), 1, "{:#}", s["slack"]);
    assert!(s["slack"][0]["text"]
        .as_str()
        .unwrap()
        .contains("direct_grant"));
    let events = pd_events(&s);
    assert_eq!(
        events.last().map(|e| e.0.as_str()),
        Some("resolve"),
        "{events:?}"
    );
    assert!(run.d.store.sinks_broken().await.unwrap().is_empty());
    run.stop().await;
    sim.stop().await;
}

impl Running {
    /// Waits until every sink but `except` has an empty outbox.
    async fn drained_except(&self, except: &str, within: Duration) {
        let start = Instant::now();
        loop {
            let depth = self.d.store.outbox_depth().await.unwrap();
            if depth.iter().all(|d| d.pending == 0 || d.sink == except) {
                return;
            }
            assert!(start.elapsed() < within, "outbox not drained: {depth:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Grants Workspace Owner to `email` by hand, in the app.
async fn grant_owner(sim: &SimHandle, email: &str) {
    let ws = workspace_id(sim).await;
    set_direct(
        sim,
        email,
        json!([{"roleId": OWNER_ROLE, "resources": [{"id": ws, "type": "WORKSPACE"}]}]),
    )
    .await;
}

async fn wait_metric(run: &Running, needle: &str, within: Duration) {
    let start = Instant::now();
    while !run.metrics().contains(needle) {
        assert!(
            start.elapsed() < within,
            "{needle} not in {}",
            run.metrics()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_down_across_a_restart_loses_nothing_and_retry_after_is_honoured() {
    let sim = sim::start(SEED, "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&sim, dir.path(), "");
    let run = Running::start(&text).await;
    run.full_pass().await;

    // PagerDuty answers 500 until further notice; scimwatch restarts meanwhile.
    sink_mode(&sim, json!({"sink": "pagerduty", "mode": "error_500"})).await;
    grant_owner(&sim, "paula.rossi@acme.test").await;
    run.full_pass().await;
    wait_metric(
        &run,
        r#"scimwatch_alerts_sent_total{sink="oncall",action="trigger",result="retry"} 2"#,
        Duration::from_secs(10),
    )
    .await;
    run.stop().await;
    sink_mode(&sim, json!({"sink": "pagerduty", "mode": "ok"})).await;
    let run = Running::start(&text).await;
    run.drained(Duration::from_secs(10)).await;
    let s = sinks(&sim).await;
    assert_eq!(pd_events(&s).len(), 1, "delivered once after the restart");
    assert_eq!(
        s["slack"].as_array().unwrap().len(),
        1,
        "the others were not held up"
    );

    // A 429 with Retry-After: 2 s is waited out, then delivered.
    sink_mode(
        &sim,
        json!({"sink": "pagerduty", "mode": "rate_limited", "count": 1, "retry_after": 2}),
    )
    .await;
    grant_owner(&sim, "quinn.adams@acme.test").await;
    let queued = Instant::now();
    run.full_pass().await;
    run.drained(Duration::from_secs(10)).await;
    let took = queued.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "Retry-After not honoured: {took:?}"
    );
    assert_eq!(pd_events(&sinks(&sim).await).len(), 2);
    run.stop().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_retry_for_an_alert_is_dead_lettered_and_the_sink_reported_on_the_others() {
    let sim = sim::start(SEED, "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text =
        config_text(&sim, dir.path(), "").replace("retry_for = \"1h\"", "retry_for = \"2s\"");
    let run = Running::start(&text).await;
    run.full_pass().await;

    sink_mode(&sim, json!({"sink": "pagerduty", "mode": "error_500"})).await;
    grant_owner(&sim, "paula.rossi@acme.test").await;
    run.full_pass().await;
    wait_metric(
        &run,
        r#"scimwatch_alerts_sent_total{sink="oncall",action="trigger",result="dead_letter"} 1"#,
        Duration::from_secs(10),
    )
    .await;
    run.drained(Duration::from_secs(10)).await;
    let s = sinks(&sim).await;
    let slack: Vec<String> = s["slack"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(slack.len(), 2, "{slack:?}");
    assert!(
        slack[1].contains("sink_failing") && slack[1].contains("\"oncall\""),
        "{slack:?}"
    );
    assert_eq!(
        s["webhook"][1]["body"]["type"],
        "scimwatch.sink_failing.triggered"
    );
    let dead = run.d.store.outbox_list("dead").await.unwrap();
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("still failing"),
        "{dead:?}"
    );

    // PagerDuty answers again: the next alert goes through and sink_failing resolves.
    sink_mode(&sim, json!({"sink": "pagerduty", "mode": "ok"})).await;
    grant_owner(&sim, "quinn.adams@acme.test").await;
    run.full_pass().await;
    run.drained(Duration::from_secs(10)).await;
    let s = sinks(&sim).await;
    assert_eq!(pd_events(&s).len(), 1);
    let last = s["slack"].as_array().unwrap().last().unwrap()["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        last.contains("Resolved") && last.contains("sink_failing"),
        "{last}"
    );
    run.stop().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_alerts_test_puts_a_broken_sink_back_in_service_without_a_restart() {
    let sim = sim::start(SEED, "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&sim, dir.path(), "");
    let path = dir.path().join("scimwatch.toml");
    std::fs::write(&path, &text).unwrap();
    let run = Running::start(&text).await;
    run.full_pass().await;

    sink_mode(&sim, json!({"sink": "slack", "mode": "revoked"})).await;
    grant_owner(&sim, "paula.rossi@acme.test").await;
    run.full_pass().await;
    let start = Instant::now();
    while run.d.store.sinks_broken().await.unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sink_mode(&sim, json!({"sink": "slack", "mode": "ok"})).await;
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"))
            .arg("--config")
            .arg(&path)
            .args(["alerts", "test", "--sink", "team"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("team: was marked broken by the daemon; delivery resumes"),
        "{stdout}"
    );
    run.drained(Duration::from_secs(10)).await;
    let s = sinks(&sim).await;
    let slack: Vec<&str> = s["slack"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap_or(""))
        .collect();
    // The two test messages, then the alert that waited.
    assert_eq!(slack.len(), 3, "{slack:?}");
    assert!(slack[2].contains("direct_grant"), "{slack:?}");
    run.stop().await;
    sim.stop().await;
}

/// Everything the process writes through `tracing`, for grepping.
#[derive(Clone, Default)]
struct LogBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuf {
    type Writer = LogBuf;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The secret part of the echoing Slack sink's URL.
const ECHOED: &str = "T0ECHO/B0ECHO/echo-me-secret-0123456789";

/// A Slack-like receiver that refuses every message with 404 and echoes the request path
/// (the secret) and control characters in its body, as some proxies do.
async fn echoing_sink() -> String {
    let app = axum::Router::new().fallback(|req: axum::extract::Request| async move {
        let body = format!(
            "no_service\r\n\x1b[31mPOST {} not found\x07{}",
            req.uri().path(),
            " padding".repeat(200)
        );
        (axum::http::StatusCode::NOT_FOUND, body)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

// One thread, so the subscriber set for this test sees every task the daemon spawns.
#[tokio::test(flavor = "current_thread")]
async fn a_sink_echoing_its_secret_leaks_it_nowhere() {
    let logs = LogBuf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sim = sim::start(SEED, "127.0.0.1:0").await.unwrap();
    let echo = echoing_sink().await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&sim, dir.path(), "").replace(
        &format!("{}/slack/hooks/T0001/B0002/XXXXsecretXXXX", sim.url()),
        &format!("{echo}/services/{ECHOED}"),
    );
    assert!(text.contains(ECHOED));
    let run = Running::start(&text).await;
    run.full_pass().await;
    grant_owner(&sim, "paula.rossi@acme.test").await;
    run.full_pass().await;
    let start = Instant::now();
    while run.d.store.sinks_broken().await.unwrap().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the echoing sink never marked broken"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    run.drained_except("team", Duration::from_secs(15)).await;

    // The other sinks were told (sink_failing), with the excerpt, not the secret.
    let s = sinks(&sim).await;
    let events = pd_events(&s);
    assert!(events.iter().any(|e| e.2 == "sink_failing"), "{events:?}");
    let received = s.to_string();
    assert!(received.contains("no_service"), "{received}");
    let broken = run.d.store.sinks_broken().await.unwrap();
    let reason = format!("{broken:?}");
    assert!(reason.contains("***"), "the echo is masked: {reason}");
    assert!(
        !reason.contains('\u{1b}') && !reason.contains('\u{7}'),
        "{reason}"
    );
    assert!(reason.len() < 600, "an excerpt, not the body: {reason}");
    let status = run.d.server.status_doc().to_string();
    let metrics = run.metrics();
    run.stop().await;
    sim.stop().await;

    let mut store_bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        store_bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let log = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    assert!(log.contains("team"), "the log captured the daemon: {log}");
    for (what, text) in [
        ("/status", status.as_str()),
        ("/metrics", metrics.as_str()),
        ("the alerts other sinks received", received.as_str()),
        ("the log", log.as_str()),
        ("the store", &String::from_utf8_lossy(&store_bytes)),
    ] {
        assert!(
            !text.contains(ECHOED),
            "{what} holds the Slack URL's secret"
        );
        assert!(
            !text.contains("echo-me-secret"),
            "{what} holds part of the secret"
        );
    }
}
