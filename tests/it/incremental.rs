//! The incremental daemon (issue 13): a periodic tick reads what changed, the open
//! findings' subjects and its share of the rolling refresh, not the whole org; a change
//! that leaves no event (the simulator's silence) is found by the rolling refresh within
//! `sync.full_refresh`; checkpoints older than the event sources reach run a full pass.

use std::time::{Duration, Instant};

use scimwatch::triggers::Reason;
use scimwatch_sim as sim;
use serde_json::{json, Value};

use crate::daemon::{config_text, control, daemon, find, findings_doc, grant_owner_in_app, seed};

fn refresh_config(interval: &str, full_refresh: &str) -> String {
    format!("[sync]\ninterval = \"{interval}\"\nfull_refresh = \"{full_refresh}\"\n")
}

fn scope_of(d: &scimwatch::daemon::Daemon, label: &str) -> Value {
    d.server.status_doc()["last_activation"][label]["scope"].clone()
}

/// Requests to one Segment endpoint so far, every workspace together.
fn segment_requests(d: &scimwatch::daemon::Daemon, endpoint: &str) -> u64 {
    d.stats
        .by_endpoint()
        .iter()
        .filter(|((svc, ep), _)| svc.starts_with("segment") && ep == endpoint)
        .map(|(_, n)| *n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tick_costs_its_share_and_the_open_findings_not_the_whole_org() {
    let sim = sim::start(&seed(), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&config_text(
        &sim,
        dir.path(),
        "60m",
        &refresh_config("1m", "1h"),
    ))
    .await;
    let before = d.stats.total();
    let users_before = segment_requests(&d, "GET /users/{id}");
    assert!(d.activate([Reason::Startup].into()).await.ok());
    let full = d.stats.total() - before;
    let full_user_reads = segment_requests(&d, "GET /users/{id}") - users_before;
    assert_eq!(scope_of(&d, "startup"), "full");

    let before = d.stats.total();
    let users_before = segment_requests(&d, "GET /users/{id}");
    let tick = d.activate([Reason::Periodic].into()).await;
    assert!(tick.ok(), "{tick:?}");
    let spent = d.stats.total() - before;
    let user_reads = segment_requests(&d, "GET /users/{id}") - users_before;
    assert_eq!(scope_of(&d, "periodic"), "tick");
    let status = d.server.status_doc();
    let refresh = &status["refresh"];
    // Every subject was read by the start-up pass; the window is 60 ticks.
    assert_eq!(refresh["ticks_per_window"], 60, "{refresh:#}");
    assert_eq!(
        refresh["read_this_window"], refresh["subjects"],
        "{refresh:#}"
    );
    assert_eq!(refresh["behind_by_seconds"], 0, "{refresh:#}");
    let planned = refresh["last_tick"]["reads"].as_u64().unwrap();
    let share = refresh["share_per_tick"].as_u64().unwrap();
    let open = findings_doc(&d)["findings"].as_array().unwrap().len() as u64;
    // The tick's user reads: its share plus the people of open findings, never the
    // workspace (full_user_reads reads every member of both workspaces).
    assert!(user_reads <= planned, "{user_reads} > {planned}");
    assert!(
        planned <= share + 2 * open,
        "{planned} > {share} + 2 × {open}"
    );
    assert!(
        user_reads * 2 < full_user_reads,
        "a tick read {user_reads} users, a full pass {full_user_reads}"
    );
    assert!(
        spent * 2 < full,
        "a tick cost {spent} requests, a full pass {full}"
    );
    // Nothing changed: the findings are the same.
    let m = d.metrics.render(&d.stats);
    assert!(
        m.contains(r#"scimwatch_activation_requests_total{reason="periodic",scope="tick"}"#),
        "{m}"
    );
    assert!(
        m.contains(r#"scimwatch_refresh_oldest_read_age_seconds{kind="segment_user_permissions"}"#),
        "{m}"
    );
    sim.stop().await;
}

/// A manual grant made while the audit trail records nothing, and an IdP membership added
/// without a System Log entry: neither wakes anything, and the rolling refresh finds both
/// within one `full_refresh` of ticks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_that_leave_no_event_are_found_by_the_rolling_refresh_within_the_window() {
    let sim = sim::start(&seed(), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // 4 ticks per window.
    let d = daemon(&config_text(
        &sim,
        dir.path(),
        "60m",
        &refresh_config("1s", "4s"),
    ))
    .await;
    assert!(d.activate([Reason::Startup].into()).await.ok());
    let victim = "sam.taylor@acme.test";
    let joiner = "peter.novak@acme.test";
    assert!(find(&findings_doc(&d), "direct_grant")
        .iter()
        .all(|f| f["user"] != victim));
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
        "/_sim/silence",
        Some(json!({"on": true})),
    )
    .await;
    grant_owner_in_app(&sim, victim).await;
    control(
        &sim,
        reqwest::Method::POST,
        "/_sim/silence",
        Some(json!({"on": false})),
    )
    .await;
    control(
        &sim,
        reqwest::Method::POST,
        "/_sim/okta/groups/Segment Marketing/members",
        Some(json!({"login": joiner, "silent": true})),
    )
    .await;
    let state: Value = reqwest::get(format!("{}/_sim/state", sim.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !state.to_string().contains("group.user_membership.add"),
        "a silent change writes no System Log entry"
    );

    let started = Instant::now();
    let mut ticks = 0;
    let (mut granted, mut joined) = (false, false);
    while !(granted && joined) {
        assert!(
            ticks < 6,
            "not found within the window (4 ticks) and one more: granted {granted}, joined {joined}"
        );
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let s = d.activate([Reason::Periodic].into()).await;
        assert!(s.ok(), "{s:?}");
        assert_eq!(scope_of(&d, "periodic"), "tick");
        ticks += 1;
        let doc = findings_doc(&d);
        granted = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["user"] == victim && f["state"] == "drift");
        joined = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["user"] == joiner);
    }
    eprintln!(
        "found after {ticks} ticks ({:?}); window 4 ticks",
        started.elapsed()
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_older_than_the_event_sources_reach_run_a_full_pass() {
    let sim = sim::start(&seed(), "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&sim, dir.path(), "60m", &refresh_config("1m", "1h"));
    let d = daemon(&text).await;
    assert!(d.activate([Reason::Startup].into()).await.ok());
    drop(d);

    // A restart with fresh checkpoints: the tick is a tick.
    let d = daemon(&text).await;
    assert!(d.activate([Reason::Periodic].into()).await.ok());
    assert_eq!(scope_of(&d, "periodic"), "tick");

    // The last pass 30 days ago, beyond the System Log look-back (7 days): a full pass.
    let old = chrono::Utc::now() - chrono::Duration::days(30);
    d.store
        .snapshot_put("reconciler.last_pass", &serde_json::to_value(old).unwrap())
        .await
        .unwrap();
    drop(d);
    let d = daemon(&text).await;
    assert!(d.activate([Reason::Periodic].into()).await.ok());
    assert_eq!(scope_of(&d, "periodic"), "full");
    let refresh = &d.server.status_doc()["refresh"];
    assert_eq!(
        refresh["read_this_window"], refresh["subjects"],
        "{refresh:#}"
    );
    // And an operator's request is always a full pass.
    assert!(d.activate([Reason::FullPass].into()).await.ok());
    assert_eq!(scope_of(&d, "full_pass"), "full");
    sim.stop().await;
}

/// A writer the test reads back.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Each activation has an id in its span and ends with one summary line: reason, scope,
/// requests per service, findings opened / changed / resolved, duration.
#[test]
fn every_activation_ends_with_one_summary_line_under_its_id() {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let sim = sim::start(&seed(), "127.0.0.1:0").await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let d = daemon(&config_text(&sim, dir.path(), "60m", "")).await;
            // Something to find at start-up.
            control(
                &sim,
                reqwest::Method::POST,
                "/_sim/okta/users/nina.berg@acme.test/status",
                Some(json!({"status": "SUSPENDED"})),
            )
            .await;
            assert!(d.activate([Reason::Startup].into()).await.ok());
            assert!(d.activate([Reason::Periodic].into()).await.ok());
            sim.stop().await;
        })
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let summaries: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "Activation finished.")
        .collect();
    assert_eq!(summaries.len(), 2, "{text}");
    let (first, second) = (&summaries[0], &summaries[1]);
    assert_eq!(first["fields"]["reason"], "startup");
    assert_eq!(first["fields"]["scope"], "full");
    assert!(first["fields"]["opened"].as_u64().unwrap() > 0, "{first}");
    let per_service = first["fields"]["per_service"].as_str().unwrap();
    assert!(
        per_service.contains("okta=") && per_service.contains("segment"),
        "{first}"
    );
    assert_eq!(second["fields"]["reason"], "periodic");
    assert_eq!(second["fields"]["scope"], "tick");
    assert_eq!(second["fields"]["opened"], 0, "nothing changed: {second}");
    assert!(second["fields"]["took_ms"].is_u64());
    // The span carries the activation's id: two activations, two ids.
    let ids: Vec<&Value> = summaries.iter().map(|s| &s["span"]["id"]).collect();
    assert!(ids.iter().all(|i| i.is_u64()), "{text}");
    assert_ne!(ids[0], ids[1]);
}
