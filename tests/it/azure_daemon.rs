//! The daemon on Entra ID against the simulator's Graph side: full passes with nested
//! groups and stalled cycles, the `groups/delta` poller (checkpoint across a restart, 410
//! resync), `/hooks/graph` (validation handshake, clientState, lifecycle events,
//! subscriptions the daemon manages), provisioning-log evidence, and a quarantined
//! provisioning job paging one `source_unavailable` instead of one page per person.

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

const SEED: &str = include_str!("../../deploy/demo-seed-azure.toml");
const OLIVIA: &str = "olivia.chen@acme.test";
const PETER: &str = "peter.novak@acme.test";
const CLIENT_STATE: &str = "graph-client-state-do-not-print";

fn seed(extra_azure: &str) -> String {
    SEED.replace("cycle = \"40m\"", "cycle = \"1h\"").replace(
        "client_secret = \"sim-secret\"",
        &format!("client_secret = \"sim-secret\"\n{extra_azure}"),
    )
}

fn mappings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings")
}

/// An Entra config for `sim` with a store in `dir`: passes by hand unless `triggers` says
/// otherwise (the periodic tick is an hour away).
fn config_text(sim: &SimHandle, dir: &Path, triggers: &str, extra: &str) -> String {
    format!(
        "{}\n[store]\npath = \"{}\"\n[sync]\ninterval = \"1h\"\n[triggers]\naudit_poll = \"0s\"\n{triggers}\n[server]\nlisten = \"127.0.0.1:0\"\n{extra}",
        sim.config_toml_for(
            &mappings_dir(),
            "propagation_window = \"2s\"",
            Some(sim::IdpKind::AzureAd)
        )
        .unwrap(),
        dir.join("scimwatch.db").display(),
    )
}

struct Running {
    d: Arc<Daemon>,
    cancel: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    hooks: Option<std::net::SocketAddr>,
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
        let bound = d.bind().await.expect("bind");
        let hooks = bound.hooks_addr();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(d.clone().serve(bound, cancel.clone()));
        Running {
            d,
            cancel,
            task,
            hooks,
        }
    }

    async fn pass(&self) {
        self.d.activate([Reason::Periodic].into()).await;
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap().unwrap();
    }

    fn findings(&self) -> Value {
        let text = self
            .d
            .server
            .findings
            .read()
            .unwrap()
            .clone()
            .expect("a pass has succeeded");
        serde_json::from_str(&text).unwrap()
    }

    async fn checkpoint(&self, name: &str) -> Option<String> {
        self.d.store.checkpoint_get(name).await.unwrap()
    }

    /// Waits until an activation with `trigger` among its reasons is recorded.
    async fn woken_by(&self, trigger: &str, within: Duration) {
        let start = Instant::now();
        loop {
            let latest = self.d.store.activations_latest().await.unwrap();
            if latest
                .iter()
                .any(|a| a.trigger.split(',').any(|t| t == trigger))
            {
                return;
            }
            assert!(
                start.elapsed() < within,
                "no {trigger} activation within {within:?}: {latest:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn activations(&self, trigger: &str) -> usize {
        self.d
            .store
            .activations_latest()
            .await
            .unwrap()
            .iter()
            .filter(|a| a.trigger.split(',').any(|t| t == trigger))
            .count()
    }
}

async fn control(sim: &SimHandle, method: reqwest::Method, path: &str, body: Value) -> Value {
    let url = format!("{}/_sim{}", sim.url(), path.replace(' ', "%20"));
    let r = reqwest::Client::new()
        .request(method, &url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

async fn add_member(sim: &SimHandle, group: &str, upn: &str) {
    control(
        sim,
        reqwest::Method::POST,
        &format!("/azure/groups/{group}/members"),
        json!({ "upn": upn }),
    )
    .await;
}

async fn state(sim: &SimHandle) -> Value {
    reqwest::get(format!("{}/_sim/state", sim.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn of_user<'a>(doc: &'a Value, user: &str) -> Vec<&'a Value> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["user"] == user)
        .collect()
}

async fn wait_until<F, Fut>(within: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < within, "{what} not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn requests(st: &Value, key: &str) -> u64 {
    st["azure"]["requests"][key].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_on_entra_finds_the_nested_group_and_a_stalled_cycle() {
    let sim = sim::start(&seed(""), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(&config_text(
        &sim,
        dir.path(),
        "graph_delta_poll = \"0s\"",
        "",
    ))
    .await;
    let before = state(&sim).await;
    run.pass().await;
    let after = state(&sim).await;
    let doc = run.findings();
    assert_eq!(doc["idp"], "azure_ad");
    let nested: Vec<&Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "nested_group_not_provisioned")
        .collect();
    assert_eq!(nested.len(), 1, "{doc:#}");
    assert_eq!(nested[0]["nested_group"], "Data Contractors");
    assert_eq!(nested[0]["group"], "Segment Analytics Engineers");

    // What one full pass costs on Entra (README "What one pass costs").
    let cost = |key: &str| requests(&after, key) - requests(&before, key);
    let graph_total: u64 = after["azure"]["requests"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| v.as_u64().unwrap() - requests(&before, k))
        .sum();
    eprintln!(
        "one full Entra pass: {graph_total} Graph requests: {:#}",
        after["azure"]["requests"]
    );
    assert_eq!(cost("GET /groups/{id}/members 200"), 6);
    assert_eq!(cost("GET /groups/{id}/transitiveMembers 200"), 1);
    assert_eq!(
        cost("GET /servicePrincipals/{id}/synchronization/jobs 200"),
        2
    );
    assert!(graph_total <= 20, "{graph_total}");

    // An Entra change no cycle carries: pending, then a stalled cycle at its deadline.
    add_member(&sim, "Segment Prod Owners", OLIVIA).await;
    run.pass().await;
    let doc = run.findings();
    let o = of_user(&doc, OLIVIA);
    assert_eq!(o.len(), 1, "{doc:#}");
    assert_eq!(o[0]["kind"], "user_not_provisioned");
    assert_eq!(o[0]["state"], "pending");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    run.pass().await;
    let doc = run.findings();
    let o = of_user(&doc, OLIVIA);
    assert_eq!(o[0]["state"], "drift", "{:#}", o[0]);
    assert!(!o[0]["deadline"].is_null());
    // No cycle ran: the provisioning log has nothing to say about her.
    assert!(o[0].get("evidence").is_none(), "{:#}", o[0]);
    run.stop().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_push_leaves_its_error_as_evidence_on_the_drift_finding() {
    let sim = sim::start(&seed(""), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(&config_text(
        &sim,
        dir.path(),
        "graph_delta_poll = \"0s\"",
        "",
    ))
    .await;
    run.pass().await;
    control(
        &sim,
        reqwest::Method::POST,
        "/push",
        json!({"mode": "failing"}),
    )
    .await;
    add_member(&sim, "Segment Prod Owners", OLIVIA).await;
    control(&sim, reqwest::Method::POST, "/push/cycle", json!({})).await;
    let st = state(&sim).await;
    let logs = st["azure"]["provisioning_logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "{logs:#?}");
    assert_eq!(logs[0]["provisioningStatusInfo"]["status"], "failure");
    run.pass().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = state(&sim).await;
    run.pass().await;
    let doc = run.findings();
    let o = of_user(&doc, OLIVIA);
    assert_eq!(o[0]["state"], "drift");
    let e = &o[0]["evidence"];
    assert_eq!(e["status"], "failure", "{:#}", o[0]);
    assert_eq!(
        e["error_code"],
        "SystemForCrossDomainIdentityManagementBadResponse"
    );
    assert!(e["reason"].as_str().unwrap().contains("409"), "{e}");
    assert!(e["time"].as_str().unwrap().ends_with('Z'));
    let reads = |s: &Value| requests(s, "GET /auditLogs/provisioning 200");
    assert_eq!(reads(&state(&sim).await) - reads(&before), 1);

    // Kept, not read again, on the next pass.
    let before = state(&sim).await;
    run.pass().await;
    assert_eq!(of_user(&run.findings(), OLIVIA)[0]["evidence"], *e);
    assert_eq!(reads(&state(&sim).await), reads(&before));
    run.stop().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delta_poller_wakes_a_pass_and_keeps_its_checkpoint_across_a_restart() {
    let sim = sim::start(&seed(""), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&sim, dir.path(), "graph_delta_poll = \"300ms\"", "");
    let run = Running::start(&text).await;
    run.pass().await;
    let name = scimwatch::triggers::graph::delta_checkpoint_name(0);
    wait_until(Duration::from_secs(10), "a delta baseline", || async {
        run.checkpoint(&name).await.is_some()
    })
    .await;
    let baseline = run.checkpoint(&name).await.unwrap();
    let cp: Value = serde_json::from_str(&baseline).unwrap();
    // The 6 mapped groups and the nested one, in one stream.
    assert_eq!(cp["ids"].as_array().unwrap().len(), 7, "{cp}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        run.activations("graph_delta").await,
        0,
        "a baseline wakes nothing"
    );

    add_member(&sim, "Segment Prod Owners", OLIVIA).await;
    run.woken_by("graph_delta", Duration::from_secs(10)).await;
    wait_until(Duration::from_secs(10), "olivia's finding", || async {
        !of_user(&run.findings(), OLIVIA).is_empty()
    })
    .await;
    let kept = run.checkpoint(&name).await.unwrap();
    assert_ne!(kept, baseline);
    run.stop().await;

    // A change while the daemon is down is seen from the kept link after the restart.
    add_member(&sim, "Segment Prod Owners", PETER).await;
    let run = Running::start(&text).await;
    assert_eq!(run.checkpoint(&name).await.as_deref(), Some(kept.as_str()));
    run.woken_by("graph_delta", Duration::from_secs(10)).await;
    wait_until(Duration::from_secs(10), "peter's finding", || async {
        run.d.server.findings.read().unwrap().is_some()
            && !of_user(&run.findings(), PETER).is_empty()
    })
    .await;
    run.stop().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_delta_token_resyncs_from_scratch_and_runs_a_full_pass() {
    let sim = sim::start(&seed(""), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(&config_text(
        &sim,
        dir.path(),
        "graph_delta_poll = \"300ms\"",
        "",
    ))
    .await;
    run.pass().await;
    let name = scimwatch::triggers::graph::delta_checkpoint_name(0);
    wait_until(Duration::from_secs(10), "a delta baseline", || async {
        run.checkpoint(&name).await.is_some()
    })
    .await;
    let baseline = run.checkpoint(&name).await.unwrap();
    control(&sim, reqwest::Method::POST, "/azure/delta/reset", json!({})).await;
    run.woken_by("graph_delta", Duration::from_secs(10)).await;
    let st = state(&sim).await;
    assert!(
        requests(&st, "GET /groups/delta 410") >= 1,
        "{:#}",
        st["azure"]["requests"]
    );
    let fresh = run.checkpoint(&name).await.unwrap();
    assert_ne!(fresh, baseline);
    run.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn delta_rounds_report_member_changes_and_expired_tokens_reset() {
    use scimwatch::idp::azure::{Azure, DeltaRound};
    let sim = sim::start(&seed("delta_token_lifetime = \"4s\""), "127.0.0.1:0")
        .await
        .unwrap();
    let text = sim
        .config_toml_for(&mappings_dir(), "", Some(sim::IdpKind::AzureAd))
        .unwrap();
    let config =
        scimwatch::config::load_str(&text, Path::new("/tmp/scimwatch.toml"), &Default::default())
            .unwrap();
    let az = Azure::new(
        &config.idp,
        RetryConfig::fast(),
        scimwatch::http::RequestStats::new(),
    )
    .unwrap();
    let st = state(&sim).await;
    let owners = st["azure"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "Segment Prod Owners")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let DeltaRound::Done {
        groups,
        entries,
        delta_link,
    } = az
        .groups_delta(None, std::slice::from_ref(&owners))
        .await
        .unwrap()
    else {
        panic!("an initial round resets nothing")
    };
    assert_eq!(groups.len(), 1);
    assert_eq!(entries, 2, "ana and ben");
    let DeltaRound::Done {
        groups, entries, ..
    } = az.groups_delta(Some(&delta_link), &[]).await.unwrap()
    else {
        panic!()
    };
    assert!(groups.is_empty() && entries == 0);
    add_member(&sim, "Segment Prod Owners", OLIVIA).await;
    control(
        &sim,
        reqwest::Method::DELETE,
        "/azure/groups/Segment Prod Owners/members/ben.okafor@acme.test",
        json!({}),
    )
    .await;
    let DeltaRound::Done {
        groups,
        entries,
        delta_link,
    } = az.groups_delta(Some(&delta_link), &[]).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(groups.into_iter().collect::<Vec<_>>(), vec![owners.clone()]);
    assert_eq!(entries, 2, "olivia added, ben removed");
    tokio::time::sleep(Duration::from_millis(4500)).await;
    match az.groups_delta(Some(&delta_link), &[]).await.unwrap() {
        DeltaRound::Reset { reason } => assert!(reason.contains("410"), "{reason}"),
        other => panic!("expected a reset, got {other:?}"),
    }
    sim.stop().await;
}

async fn post_hook(addr: std::net::SocketAddr, query: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{addr}/hooks/graph{query}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn change_note(state: &str) -> Value {
    json!({"value": [{"subscriptionId": "s1", "clientState": state, "changeType": "updated",
        "resource": "Groups/g1", "tenantId": "t", "resourceData": {"id": "g1"}, "unknown": 1}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graph_hook_answers_the_handshake_checks_client_state_and_wakes_on_changes() {
    let sim = sim::start(&seed(""), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(&config_text(
        &sim,
        dir.path(),
        &format!("graph_delta_poll = \"0s\"\ngraph_client_state = \"{CLIENT_STATE}\""),
        "",
    ))
    .await;
    let addr = run.hooks.unwrap();

    // The validation handshake: 200, text/plain, the decoded token.
    let r = reqwest::Client::new()
        .post(format!(
            "http://{addr}/hooks/graph?validationToken=Validation%3A%20Testing%20client%20application"
        ))
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(
        r.text().await.unwrap(),
        "Validation: Testing client application"
    );

    // A wrong clientState is refused and wakes nothing.
    let r = post_hook(addr, "", change_note("not-the-client-state")).await;
    assert_eq!(r.status(), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(run.activations("graph_hook").await, 0);

    // A change notification: 202 at once, then a pass.
    let r = post_hook(addr, "", change_note(CLIENT_STATE)).await;
    assert_eq!(r.status(), 202);
    run.woken_by("graph_hook", Duration::from_secs(10)).await;

    // Lifecycle: `missed` wakes a pass too; without a managed subscription the others are
    // only logged.
    let r = post_hook(
        addr,
        "",
        json!({"value": [{"subscriptionId": "s1", "clientState": CLIENT_STATE, "lifecycleEvent": "reauthorizationRequired"},
                         {"subscriptionId": "s1", "clientState": CLIENT_STATE, "lifecycleEvent": "missed"}]}),
    )
    .await;
    assert_eq!(r.status(), 202);
    run.stop().await;

    // Off without a client state.
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(&config_text(
        &sim,
        dir.path(),
        "graph_delta_poll = \"0s\"",
        "",
    ))
    .await;
    let r = post_hook(run.hooks.unwrap(), "?validationToken=x", json!({})).await;
    assert_eq!(r.status(), 404);
    run.stop().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_subscription_is_validated_delivers_changes_and_survives_lifecycle_events() {
    let sim = sim::start(&seed("subscription_max_lifetime = \"1h\""), "127.0.0.1:0")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The daemon's port, known before it starts (the subscription names it).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = config_text(
        &sim,
        dir.path(),
        &format!(
            "graph_delta_poll = \"0s\"\ngraph_client_state = \"{CLIENT_STATE}\"\ngraph_notification_url = \"http://127.0.0.1:{port}/hooks/graph\""
        ),
        "",
    )
    .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""));
    let run = Running::start(&text).await;
    let subs = |st: &Value| {
        st["azure"]["subscriptions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    wait_until(Duration::from_secs(10), "a subscription", || async {
        subs(&state(&sim).await).len() == 1
    })
    .await;
    let st = state(&sim).await;
    let first = subs(&st)[0].clone();
    assert_eq!(first["resource"], "/groups");
    assert!(
        !st.to_string().contains(CLIENT_STATE),
        "the sim's state hides the client state"
    );

    // A change in Entra: Graph notifies, the daemon wakes.
    add_member(&sim, "Segment Prod Owners", OLIVIA).await;
    run.woken_by("graph_hook", Duration::from_secs(10)).await;
    let st = state(&sim).await;
    let deliveries = st["azure"]["notification_deliveries"].as_array().unwrap();
    assert!(
        deliveries.iter().any(|d| d["status"] == 202),
        "{deliveries:#?}"
    );

    // reauthorizationRequired: one PATCH that extends the expiry (it reauthorizes too),
    // never a reauthorize and a PATCH within 10 minutes (Microsoft: it can leave the
    // subscription inconsistent; the sim refuses the second of such a pair).
    let id = first["id"].as_str().unwrap().to_string();
    control(
        &sim,
        reqwest::Method::POST,
        &format!("/azure/subscriptions/{id}/lifecycle"),
        json!({"event": "reauthorizationRequired"}),
    )
    .await;
    wait_until(Duration::from_secs(10), "a renewal", || async {
        requests(&state(&sim).await, "PATCH /subscriptions/{id} 200") >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = state(&sim).await;
    let reauthorized = |st: &Value| {
        st["azure"]["requests"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.starts_with("POST /subscriptions/{id}/reauthorize"))
                    .filter_map(|(_, v)| v.as_u64())
                    .sum::<u64>()
            })
            .unwrap_or(0)
    };
    assert_eq!(reauthorized(&st), 0, "{:#}", st["azure"]["requests"]);
    assert_eq!(st["azure"]["subscription_conflicts"], 0);
    // The sim means it: a reauthorize right after that PATCH is refused and counted.
    let tok: Value = reqwest::Client::new()
        .post(format!(
            "{}/graph/login/sim-tenant/oauth2/v2.0/token",
            sim.url()
        ))
        .form(&[
            ("client_id", "sim-client"),
            ("client_secret", "sim-secret"),
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/graph/v1.0/subscriptions/{id}/reauthorize",
            sim.url()
        ))
        .bearer_auth(tok["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(state(&sim).await["azure"]["subscription_conflicts"], 1);

    // subscriptionRemoved: a new one is created.
    control(
        &sim,
        reqwest::Method::POST,
        &format!("/azure/subscriptions/{id}/lifecycle"),
        json!({"event": "subscriptionRemoved"}),
    )
    .await;
    wait_until(Duration::from_secs(10), "a new subscription", || async {
        let s = subs(&state(&sim).await);
        s.len() == 1 && s[0]["id"] != id.as_str()
    })
    .await;
    let kept = run
        .checkpoint(scimwatch::triggers::graph::SUBSCRIPTION_CHECKPOINT)
        .await
        .unwrap();
    assert!(!kept.contains(CLIENT_STATE));
    run.stop().await;
    sim.stop().await;
}

/// The simulator's sinks, every finding routed to PagerDuty.
fn alerts_toml(sim: &SimHandle) -> String {
    format!(
        r#"
[alerts]
resolve_after = 2
source_down_after = 2
retry_max_backoff = "1s"

[[alerts.sink]]
name = "oncall"
kind = "pagerduty"
routing_key = "R0123456789abcdef0123456789abcde"
url = "{}/pagerduty/v2/enqueue"

[[alerts.route]]
sinks = ["oncall"]
"#,
        sim.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_job_pages_one_source_unavailable_and_no_drift() {
    let sim = sim::start(&seed(""), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(&config_text(
        &sim,
        dir.path(),
        "graph_delta_poll = \"0s\"",
        &alerts_toml(&sim),
    ))
    .await;
    control(
        &sim,
        reqwest::Method::POST,
        "/azure/provisioning",
        json!({"workspace": "production", "quarantine": true, "reason": "EncounteredEscrowProportionThreshold"}),
    )
    .await;
    // Entra changes that quarantine keeps from ever arriving.
    for upn in [OLIVIA, PETER, "quinn.adams@acme.test"] {
        add_member(&sim, "Segment Prod Owners", upn).await;
    }
    control(&sim, reqwest::Method::POST, "/push/cycle", json!({})).await;
    run.pass().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for _ in 0..3 {
        run.pass().await;
    }
    let start = Instant::now();
    loop {
        let depth = run.d.store.outbox_depth().await.unwrap();
        if depth.iter().all(|d| d.pending == 0) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{depth:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sinks: Value = reqwest::get(format!("{}/_sim/sinks", sim.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let production: Vec<&Value> = sinks["pagerduty"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["payload"]["group"] == "production")
        .collect();
    assert_eq!(production.len(), 1, "{production:#?}");
    assert_eq!(production[0]["event_action"], "trigger");
    assert_eq!(production[0]["payload"]["class"], "source_unavailable");
    let summary = production[0]["payload"]["summary"].as_str().unwrap();
    assert!(summary.contains("quarantine"), "{summary}");
    // The people held back have no findings: production was not judged.
    let doc = run.findings();
    assert!(of_user(&doc, OLIVIA).is_empty(), "{doc:#}");
    // The quarantine kept their changes queued, and logged nothing.
    let st = state(&sim).await;
    assert_eq!(st["azure"]["cycle_queue"].as_array().unwrap().len(), 3);
    assert!(st["azure"]["provisioning_logs"]
        .as_array()
        .unwrap()
        .is_empty());
    run.stop().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_entra_demo_runs_to_the_end() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"))
        .args(["demo", "--idp", "azure_ad"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "nested_group_not_provisioned",
        "Entra change → pending (delta)",
        "Entra's provisioning log: failure",
        "direct_grant",
    ] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }
}
