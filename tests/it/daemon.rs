//! The daemon against the simulator: triggers, deadlines, the store across restarts, the
//! change log, and the real binary killed with SIGKILL in a pending window.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scimwatch::daemon::Daemon;
use scimwatch::http::RetryConfig;
use scimwatch::triggers::Reason;
use scimwatch_sim::{self as sim, SimHandle};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const SEED: &str = include_str!("../../deploy/demo-seed.toml");

pub(crate) fn seed() -> String {
    SEED.replace("delay = \"3s\"", "delay = \"1s\"")
}

fn mappings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings")
}

/// Ana, a Workspace Owner, makes `email` a Workspace Owner directly in the Segment app.
pub(crate) async fn grant_owner_in_app(sim: &SimHandle, email: &str) {
    let client = reqwest::Client::new();
    let get = |path: &str| {
        client
            .get(format!("{}/segment/production{path}", sim.url()))
            .bearer_auth("ui-ana-token")
            .send()
    };
    let users: Value = get("/users?pagination.count=1000")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = users["data"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ws: Value = get("/").await.unwrap().json().await.unwrap();
    let r = client
        .post(format!("{}/segment/production/users/{id}/permissions", sim.url()))
        .bearer_auth("ui-ana-token")
        .json(&json!({"permissions": [{"roleId": "1WDUuRLxv84rrfCNUwvkrRtkxnS", "resources": [{"id": ws["data"]["workspace"]["id"], "type": "WORKSPACE"}]}]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

/// A config for the simulator with a store in `dir` and the given extra sections.
pub(crate) fn config_text(sim: &SimHandle, dir: &Path, window: &str, extra: &str) -> String {
    format!(
        "{}\n[store]\npath = \"{}\"\n{extra}",
        sim.config_toml(
            &mappings_dir(),
            &format!("propagation_window = \"{window}\"")
        ),
        dir.join("scimwatch.db").display()
    )
}

pub(crate) async fn daemon(text: &str) -> Arc<Daemon> {
    let config =
        scimwatch::config::load_str(text, Path::new("/tmp/scimwatch.toml"), &Default::default())
            .expect("config");
    let known: Vec<String> = config.workspaces.iter().map(|w| w.name.clone()).collect();
    let mappings = scimwatch::mapping::load_dir(
        &mappings_dir(),
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &known,
        chrono::Utc::now(),
    )
    .expect("mappings");
    Arc::new(
        Daemon::build(config, mappings, RetryConfig::fast())
            .await
            .expect("daemon builds"),
    )
}

pub(crate) fn findings_doc(d: &Daemon) -> Value {
    let text = d
        .server
        .findings
        .read()
        .unwrap()
        .clone()
        .expect("a pass has succeeded");
    serde_json::from_str(&text).unwrap()
}

pub(crate) fn find(doc: &Value, kind: &str) -> Vec<Value> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == kind)
        .cloned()
        .collect()
}

pub(crate) async fn control(
    sim: &SimHandle,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) {
    let url = format!("{}{}", sim.url(), path.replace(' ', "%20"));
    let mut req = reqwest::Client::new().request(method, &url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

/// Waits (polling) until `pred` holds on the daemon's findings document.
async fn wait_for(d: &Daemon, within: Duration, pred: impl Fn(&Value) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if d.server.findings.read().unwrap().is_some() && pred(&findings_doc(d)) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "condition not met within {within:?}: {:#}",
            d.server
                .findings
                .read()
                .unwrap()
                .clone()
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_grant_is_noticed_by_the_audit_poller_without_a_full_pass_interval() {
    let sim = sim::start(&seed(), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &sim,
        dir.path(),
        "60m",
        "[sync]\ninterval = \"1h\"\n[triggers]\nsystem_log_poll = \"0s\"\naudit_poll = \"1s\"\n[server]\nlisten = \"127.0.0.1:0\"\n",
    );
    let d = daemon(&text).await;
    let cancel = CancellationToken::new();
    let run = tokio::spawn(d.clone().run(cancel.clone()));
    d.activator.activate(Reason::Startup);
    wait_for(&d, Duration::from_secs(10), |doc| {
        doc["findings"].as_array().is_some_and(|a| a.is_empty())
    })
    .await;
    // Let the poller set its checkpoint before the change.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let changed = Instant::now();
    grant_owner_in_app(&sim, "omar.khan@acme.test").await;
    wait_for(&d, Duration::from_secs(10), |doc| {
        !find(doc, "direct_grant").is_empty()
    })
    .await;
    let detected = changed.elapsed();
    assert!(detected < Duration::from_secs(5), "took {detected:?}");
    let f = &find(&findings_doc(&d), "direct_grant")[0];
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["attribution"]["actor_email"], "ana.silva@acme.test");

    // The change log has the grant, attributed to the person.
    let changes = d
        .store
        .changes_since(chrono::Utc::now() - chrono::Duration::hours(1))
        .await
        .unwrap();
    let c = changes
        .iter()
        .find(|c| c.user == "omar.khan@acme.test")
        .expect("a change record");
    assert!(c.after.contains("Workspace Owner"), "{c:?}");
    assert_eq!(c.attribution.as_deref(), Some("human"));

    cancel.cancel();
    run.await.unwrap().unwrap();
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_finding_turns_to_drift_at_its_deadline_without_any_other_trigger() {
    let sim = sim::start(&seed(), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &sim,
        dir.path(),
        "3s",
        "[sync]\ninterval = \"1h\"\n[triggers]\nsystem_log_poll = \"0s\"\naudit_poll = \"0s\"\n[server]\nlisten = \"127.0.0.1:0\"\n",
    );
    let d = daemon(&text).await;
    control(
        &sim,
        reqwest::Method::POST,
        "/_sim/push",
        Some(json!({"mode": "failing"})),
    )
    .await;
    control(
        &sim,
        reqwest::Method::DELETE,
        "/_sim/okta/groups/Segment Analytics Engineers/members/grace.liu@acme.test",
        None,
    )
    .await;
    let cancel = CancellationToken::new();
    let run = tokio::spawn(d.clone().run(cancel.clone()));
    d.activator.activate(Reason::Startup);
    wait_for(&d, Duration::from_secs(10), |doc| {
        find(doc, "membership_unexpected")
            .first()
            .is_some_and(|f| f["state"] == "pending")
    })
    .await;
    let f = find(&findings_doc(&d), "membership_unexpected")[0].clone();
    let deadline = chrono::DateTime::parse_from_rfc3339(f["deadline"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);

    wait_for(&d, Duration::from_secs(10), |doc| {
        find(doc, "membership_unexpected")
            .first()
            .is_some_and(|f| f["state"] == "drift")
    })
    .await;
    let late = chrono::Utc::now() - deadline;
    assert!(
        late < chrono::Duration::seconds(2),
        "turned to drift {late} after its deadline"
    );
    let drift = &find(&findings_doc(&d), "membership_unexpected")[0];
    assert_eq!(drift["id"], f["id"]);
    assert_eq!(drift["deadline"], f["deadline"]);

    cancel.cancel();
    run.await.unwrap().unwrap();
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_seen_and_ids_survive_a_restart_and_propagation_latency_is_logged() {
    let sim = sim::start(&seed(), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&sim, dir.path(), "60m", "");
    // A contractor added by hand: unmanaged, with no audit event (seeded), so `since` is
    // the time scimwatch first saw it.
    let d = daemon(&text).await;
    d.activate([Reason::Startup].into()).await;
    assert!(find(&findings_doc(&d), "unmanaged_user").is_empty());
    control(
        &sim,
        reqwest::Method::POST,
        "/_sim/okta/groups/Segment Prod Owners/members",
        Some(json!({"login": "olivia.chen@acme.test"})),
    )
    .await;
    d.activate([Reason::OktaHook].into()).await;
    let pending = find(&findings_doc(&d), "user_not_provisioned");
    assert_eq!(pending.len(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    d.activate([Reason::Periodic].into()).await;
    assert!(find(&findings_doc(&d), "user_not_provisioned").is_empty());
    let changes = d
        .store
        .changes_since(chrono::Utc::now() - chrono::Duration::hours(1))
        .await
        .unwrap();
    let c = changes
        .iter()
        .find(|c| c.user == "olivia.chen@acme.test")
        .expect("olivia's change");
    assert!(
        c.idp_event
            .as_deref()
            .unwrap_or_default()
            .starts_with("group.user_membership.add"),
        "{c:?}"
    );
    let latency = c.latency_ms.expect("latency");
    assert!((900..10_000).contains(&latency), "{latency}");
    assert_eq!(c.attribution.as_deref(), Some("scim"));

    // Suspend someone: drift at once, since = first seen; survives a restart.
    control(
        &sim,
        reqwest::Method::POST,
        "/_sim/okta/users/nina.berg@acme.test/status",
        Some(json!({"status": "SUSPENDED"})),
    )
    .await;
    d.activate([Reason::SystemLog].into()).await;
    let before = find(&findings_doc(&d), "deactivated_user_present")[0].clone();
    drop(d);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let d2 = daemon(&text).await;
    d2.activate([Reason::Startup].into()).await;
    let after = find(&findings_doc(&d2), "deactivated_user_present")[0].clone();
    assert_eq!(after["id"], before["id"]);
    assert_eq!(
        after["since"], before["since"],
        "first seen survives the restart"
    );
    let changes2 = d2
        .store
        .changes_since(chrono::Utc::now() - chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(
        changes2.len(),
        changes.len(),
        "the change log survives and nothing is logged twice"
    );
    sim.stop().await;
}

/// The real binary, killed with SIGKILL while a finding is pending, keeps the deadline,
/// the finding id and the change log when started again.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_a_pending_window_keeps_the_deadline_ids_and_change_log() {
    let sim = sim::start(&seed(), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let text = config_text(
        &sim,
        dir.path(),
        "6s",
        &format!("[sync]\ninterval = \"1h\"\n[triggers]\nsystem_log_poll = \"1s\"\naudit_poll = \"1s\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let path = dir.path().join("scimwatch.toml");
    std::fs::write(&path, &text).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let spawn = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"))
            .arg("--config")
            .arg(&path)
            .arg("run")
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let get = |p: &'static str| {
        let http = http.clone();
        let url = format!("{base}{p}");
        async move {
            match http.get(&url).send().await {
                Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
                _ => None,
            }
        }
    };
    let until = |pred: Box<dyn Fn(&Value) -> bool>| async move {
        let start = Instant::now();
        loop {
            if let Some(doc) = get("/findings").await {
                if pred(&doc) {
                    return doc;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(15), "timed out");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    let mut child = spawn();
    until(Box::new(|d| {
        d["findings"].as_array().is_some_and(|a| a.is_empty())
    }))
    .await;
    control(
        &sim,
        reqwest::Method::POST,
        "/_sim/push",
        Some(json!({"mode": "failing"})),
    )
    .await;
    control(
        &sim,
        reqwest::Method::DELETE,
        "/_sim/okta/groups/Segment Analytics Engineers/members/grace.liu@acme.test",
        None,
    )
    .await;
    let doc = until(Box::new(|d| {
        find(d, "membership_unexpected")
            .first()
            .is_some_and(|f| f["state"] == "pending")
    }))
    .await;
    let pending = find(&doc, "membership_unexpected")[0].clone();
    // And a change for the change log: a direct grant made in the app.
    grant_owner_in_app(&sim, "omar.khan@acme.test").await;
    until(Box::new(|d| !find(d, "direct_grant").is_empty())).await;

    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let mut child = spawn();
    let doc = until(Box::new(|d| !find(d, "membership_unexpected").is_empty())).await;
    let again = &find(&doc, "membership_unexpected")[0];
    assert_eq!(again["id"], pending["id"]);
    assert_eq!(again["deadline"], pending["deadline"]);
    // And the deadline still fires in the new process.
    let doc = until(Box::new(|d| {
        find(d, "membership_unexpected")
            .first()
            .is_some_and(|f| f["state"] == "drift")
    }))
    .await;
    assert_eq!(
        find(&doc, "membership_unexpected")[0]["since"],
        pending["since"]
    );
    // SIGTERM: a graceful stop within the grace period.
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(
        scimwatch::daemon::GRACE + Duration::from_secs(2),
        child.wait(),
    )
    .await
    .expect("stops within the grace period")
    .unwrap();
    assert!(status.success(), "{status:?}");

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"))
        .arg("--config")
        .arg(&path)
        .args(["changes", "--since", "1h", "--output", "csv"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        csv.starts_with("time,workspace,user,before,after,actor,attribution,idp_event,latency_ms"),
        "{csv}"
    );
    let omar_rows: Vec<&str> = csv
        .lines()
        .filter(|l| l.contains("omar.khan@acme.test"))
        .collect();
    assert_eq!(
        omar_rows.len(),
        1,
        "the change survives the kill, once: {csv}"
    );
    assert!(
        omar_rows[0].contains("Workspace Owner") && omar_rows[0].contains("ana.silva@acme.test"),
        "{csv}"
    );
    sim.stop().await;
}

/// The subjects a set of findings is about, with what is said of them.
fn by_subject(doc: &Value, touched: &[&str]) -> Vec<(String, String, String, String, String)> {
    let mut out: Vec<_> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            touched
                .iter()
                .any(|t| f["user"].as_str() == Some(*t) || f["group"].as_str() == Some(*t))
        })
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["kind"].as_str().unwrap().to_string(),
                f["state"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                f["since"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_targeted_pass_and_a_full_pass_agree_on_the_subjects_touched() {
    let sim = sim::start(&seed(), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&config_text(&sim, dir.path(), "60m", "")).await;
    d.activate([Reason::Startup].into()).await;
    let requests_full = d.stats.total();

    // On both sides: an IdP add (push held), a suspension, a direct grant and a manual
    // membership in the Segment app.
    control(
        &sim,
        reqwest::Method::POST,
        "/_sim/push",
        Some(json!({"mode": "paused"})),
    )
    .await;
    control(
        &sim,
        reqwest::Method::POST,
        "/_sim/okta/groups/Segment Prod Owners/members",
        Some(json!({"login": "olivia.chen@acme.test"})),
    )
    .await;
    control(
        &sim,
        reqwest::Method::POST,
        "/_sim/okta/users/nina.berg@acme.test/status",
        Some(json!({"status": "SUSPENDED"})),
    )
    .await;
    grant_owner_in_app(&sim, "omar.khan@acme.test").await;
    let client = reqwest::Client::new();
    let groups: Value = client
        .get(format!(
            "{}/segment/production/groups?pagination.count=1000",
            sim.url()
        ))
        .bearer_auth("ui-ana-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let owners = groups["data"]["userGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "Segment Prod Owners")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    client
        .post(format!(
            "{}/segment/production/groups/{owners}/users",
            sim.url()
        ))
        .bearer_auth("ui-ana-token")
        .json(&json!({"emails": ["maria.garcia@acme.test"]}))
        .send()
        .await
        .unwrap();

    let before = d.stats.total();
    d.activate([Reason::OktaHook, Reason::Audit("production".into())].into())
        .await;
    let targeted_cost = d.stats.total() - before;
    let status = d.server.status.read().unwrap().clone();
    assert_eq!(
        status["last_activation"]["okta_hook"]["scope"], "targeted",
        "{status:#}"
    );
    assert_eq!(
        status["last_activation"]["okta_hook"]["result"], "ok",
        "{status:#}"
    );
    let touched = [
        "olivia.chen@acme.test",
        "nina.berg@acme.test",
        "omar.khan@acme.test",
        "maria.garcia@acme.test",
        "Segment Prod Owners",
    ];
    let targeted = by_subject(&findings_doc(&d), &touched);
    assert_eq!(targeted.len(), 4, "{targeted:#?}");

    d.activate([Reason::Periodic].into()).await;
    let full = by_subject(&findings_doc(&d), &touched);
    assert_eq!(targeted, full);
    assert!(
        targeted_cost < requests_full / 2,
        "a targeted pass cost {targeted_cost} requests, a full one {requests_full}"
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_touched_group_emptied_with_its_removals_logged_is_believed_by_the_targeted_pass() {
    let sim = sim::start(&seed(), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&config_text(&sim, dir.path(), "60m", "")).await;
    // An open finding the targeted pass must keep.
    control(
        &sim,
        reqwest::Method::POST,
        "/_sim/okta/users/nina.berg@acme.test/status",
        Some(json!({"status": "SUSPENDED"})),
    )
    .await;
    d.activate([Reason::Startup].into()).await;
    assert_eq!(find(&findings_doc(&d), "deactivated_user_present").len(), 1);
    control(
        &sim,
        reqwest::Method::POST,
        "/_sim/push",
        Some(json!({"mode": "paused"})),
    )
    .await;
    for who in ["ana.silva@acme.test", "ben.okafor@acme.test"] {
        control(
            &sim,
            reqwest::Method::DELETE,
            &format!("/_sim/okta/groups/Segment Prod Owners/members/{who}"),
            None,
        )
        .await;
    }
    // The group reads empty, but the System Log has both removals: the same guard as a
    // full pass believes it (tests/it/empty_group.rs covers a silent `200 []`).
    let status = d.activate([Reason::OktaHook].into()).await;
    assert!(status.ok(), "{status:?}");
    let pending: Vec<_> = find(&findings_doc(&d), "membership_unexpected")
        .into_iter()
        .filter(|f| f["state"] == "pending")
        .collect();
    assert_eq!(pending.len(), 2);
    assert_eq!(find(&findings_doc(&d), "deactivated_user_present").len(), 1);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_log_poller_wakes_a_pass_and_keeps_its_checkpoint_and_own_writes_wake_nothing() {
    let sim = sim::start(&seed(), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &sim,
        dir.path(),
        "60m",
        "[sync]\ninterval = \"1h\"\n[triggers]\nsystem_log_poll = \"1s\"\naudit_poll = \"1s\"\n[server]\nlisten = \"127.0.0.1:0\"\n",
    );
    let d = daemon(&text).await;
    let cancel = CancellationToken::new();
    let run = tokio::spawn(d.clone().run(cancel.clone()));
    d.activator.activate(Reason::Startup);
    wait_for(&d, Duration::from_secs(10), |doc| {
        doc["findings"].is_array()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // both pollers set checkpoints
    let checkpoint = d
        .store
        .checkpoint_get(scimwatch::triggers::pollers::SYSTEM_LOG_CHECKPOINT)
        .await
        .unwrap();
    assert!(
        checkpoint
            .as_deref()
            .is_some_and(|c| c.contains("/api/v1/logs")),
        "{checkpoint:?}"
    );

    // scimwatch's own token writing (self_actor) wakes nothing.
    let activations = |d: Arc<Daemon>| async move { d.store.activations_latest().await.unwrap() };
    let before = activations(d.clone()).await;
    let client = reqwest::Client::new();
    let users: Value = client
        .get(format!(
            "{}/segment/production/users?pagination.count=1000",
            sim.url()
        ))
        .bearer_auth("seg-prod-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = users["data"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "rita.souza@acme.test")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ws: Value = client
        .get(format!("{}/segment/production/", sim.url()))
        .bearer_auth("seg-prod-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = client
        .put(format!("{}/segment/production/users/{id}/permissions", sim.url()))
        .bearer_auth("seg-prod-token")
        .json(&json!({"permissions": [{"roleId": "1aEWAcU0fArxScocwH9xxLgW7r3", "resources": [{"id": ws["data"]["workspace"]["id"], "type": "WORKSPACE"}]}]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let audit: Value = client
        .get(format!(
            "{}/segment/production/audit-events?resourceType=user",
            sim.url()
        ))
        .bearer_auth("seg-prod-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        audit["data"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "public-api-token/TkProd01"),
        "the write is in the audit trail under scimwatch's own actor: {audit:#}"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        activations(d.clone()).await,
        before,
        "an event by self_actor woke the reconciler"
    );

    // An Okta change, with no hook: the System Log poller finds it.
    control(
        &sim,
        reqwest::Method::POST,
        "/_sim/push",
        Some(json!({"mode": "paused"})),
    )
    .await;
    let t = Instant::now();
    control(
        &sim,
        reqwest::Method::POST,
        "/_sim/okta/groups/Segment Prod Owners/members",
        Some(json!({"login": "olivia.chen@acme.test"})),
    )
    .await;
    wait_for(&d, Duration::from_secs(10), |doc| {
        find(doc, "user_not_provisioned").len() == 1
    })
    .await;
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // `/status` is published when the activation has been recorded, just after `/findings`.
    let mut status = d.server.status.read().unwrap().clone();
    for _ in 0..40 {
        if status["last_activation"]["system_log"]["result"] == "ok" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = d.server.status.read().unwrap().clone();
    }
    assert_eq!(
        status["last_activation"]["system_log"]["result"], "ok",
        "{status:#}"
    );
    assert_eq!(
        status["last_activation"]["system_log"]["scope"], "targeted",
        "{status:#}"
    );
    let moved = d
        .store
        .checkpoint_get(scimwatch::triggers::pollers::SYSTEM_LOG_CHECKPOINT)
        .await
        .unwrap();
    assert_ne!(moved, checkpoint, "the checkpoint follows the next link");
    cancel.cancel();
    run.await.unwrap().unwrap();
    sim.stop().await;
}

/// A deadline that passes while the IdP is down is not frozen: the pass keeps being
/// retried, the finding stays as it was (never resolved on partial data), and it turns to
/// drift as soon as a pass can read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_passing_while_okta_is_down_is_retried_not_frozen() {
    let sim = sim::start(&seed(), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &sim,
        dir.path(),
        "2s",
        "[sync]\ninterval = \"2s\"\n[triggers]\nsystem_log_poll = \"0s\"\naudit_poll = \"0s\"\n[server]\nlisten = \"127.0.0.1:0\"\n",
    );
    let d = daemon(&text).await;
    control(
        &sim,
        reqwest::Method::POST,
        "/_sim/push",
        Some(json!({"mode": "failing"})),
    )
    .await;
    control(
        &sim,
        reqwest::Method::DELETE,
        "/_sim/okta/groups/Segment Analytics Engineers/members/grace.liu@acme.test",
        None,
    )
    .await;
    let cancel = CancellationToken::new();
    let run = tokio::spawn(d.clone().run(cancel.clone()));
    d.activator.activate(Reason::Startup);
    wait_for(&d, Duration::from_secs(10), |doc| {
        find(doc, "membership_unexpected")
            .first()
            .is_some_and(|f| f["state"] == "pending")
    })
    .await;
    control(
        &sim,
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"service": "okta", "status": 503})),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let doc = findings_doc(&d);
    assert_eq!(
        find(&doc, "membership_unexpected")[0]["state"],
        "pending",
        "nothing changes on a failed read"
    );
    let status = d.server.status.read().unwrap().clone();
    assert!(
        status["last_activation"]
            .as_object()
            .unwrap()
            .values()
            .any(|a| a["result"] == "error"),
        "{status:#}"
    );
    control(&sim, reqwest::Method::DELETE, "/_sim/faults", None).await;
    wait_for(&d, Duration::from_secs(10), |doc| {
        find(doc, "membership_unexpected")
            .first()
            .is_some_and(|f| f["state"] == "drift")
    })
    .await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    sim.stop().await;
}
