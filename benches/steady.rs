//! Benchmark: the daemon's steady state on a large generated org (issue 13), run with
//! `cargo bench --bench steady` (not a test; CI does not run it).
//!
//! The org of `benches/check.rs` (10,000 Okta users, 200 mapped groups, two workspaces of
//! 5,000 members), the simulator in its own process. The daemon runs in this process at the
//! default `sync.interval` (5 m) and `sync.full_refresh` (12 h): the planner's share per
//! tick depends only on their ratio, so the ticks are run back to back instead of 5 minutes
//! apart, and requests per minute are scaled to the defaults: a tick's requests × ticks per
//! minute (1/5) + the pollers (one System Log poll and one audit-trail poll per workspace
//! each minute at the default 60 s, which run outside the ticks). It prints that next to
//! the bound the issue sets — the pollers, plus the whole-org read spread over
//! `full_refresh`, plus the list reads a tick makes — and the time from an IdP change and
//! from a manual Segment change to its finding, through the pass the event wakes (add the
//! poll interval for the worst case). Peak memory is the daemon's own (VmHWM).
//!
//! Knobs (environment): `BENCH_USERS` (10000), `BENCH_GROUPS` (200), `BENCH_TICKS` (12).

#[path = "common/org.rs"]
mod org;

use std::time::Instant;

use chrono::Utc;
use org::{env_usize, generate, peak_rss_kib, start_org};
use scimwatch::daemon::Daemon;
use scimwatch::http::RetryConfig;
use scimwatch::triggers::Reason;
use serde_json::{json, Value};

/// Requests so far on the list endpoints every tick reads whatever its plan.
fn list_reads(d: &Daemon) -> u64 {
    d.stats
        .by_endpoint()
        .iter()
        .filter(|((_, ep), _)| {
            ["GET /users", "GET /audit-events", "GET /api/v1/logs"].contains(&ep.as_str())
        })
        .map(|(_, n)| *n)
        .sum()
}

async fn open_for(d: &Daemon, user: &str) -> bool {
    d.store
        .findings_open()
        .await
        .map(|f| {
            f.iter()
                .any(|s| s.finding.user.as_ref().is_some_and(|u| u.as_str() == user))
        })
        .unwrap_or(false)
}

fn main() -> anyhow::Result<()> {
    let users = env_usize("BENCH_USERS", 10_000);
    let groups = env_usize("BENCH_GROUPS", 200);
    let ticks = env_usize("BENCH_TICKS", 12);
    let org = generate(users, groups);
    let dir = tempfile::tempdir()?;
    let config_path = dir.path().join("scimwatch.toml");
    let mut sim = start_org(env!("CARGO_BIN_EXE_scimwatch"), &org, dir.path())?;
    let mut text = std::fs::read_to_string(&config_path)?;
    text.push_str(&format!(
        "\n[store]\npath = {:?}\n[sync]\ninterval = \"5m\"\nfull_refresh = \"12h\"\n",
        dir.path().join("scimwatch.db").display().to_string()
    ));
    std::fs::write(&config_path, &text)?;
    let sim_url = text
        .lines()
        .find_map(|l| l.strip_prefix("url = \"")?.strip_suffix("/okta\""))
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no simulator url in the written config"))?;

    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let config = scimwatch::config::load(Some(&config_path))?;
            let known: Vec<String> = config.workspaces.iter().map(|w| w.name.clone()).collect();
            let mappings = scimwatch::mapping::load_dir(
                &config.mappings.dir,
                &config.base_dir,
                &known,
                Utc::now(),
            )?;
            let d = Daemon::build(config, mappings, RetryConfig::default()).await?;

            let start = Instant::now();
            let s = d.activate([Reason::Startup].into()).await;
            anyhow::ensure!(s.ok(), "the start-up pass failed: {s:?}");
            let full_wall = start.elapsed();
            let whole_org = d.stats.total();

            // The seeded org's System Log entries are minutes old: the first tick would
            // re-read what they name (the whole org). Steady state starts once the events
            // since the last pass are only new ones: one tick, then a minute (the slack a
            // tick reads back for late events) later.
            let s = d.activate([Reason::Periodic].into()).await;
            anyhow::ensure!(s.ok(), "the first tick failed: {s:?}");
            tokio::time::sleep(std::time::Duration::from_secs(61)).await;
            let s = d.activate([Reason::Periodic].into()).await;
            anyhow::ensure!(s.ok(), "the second tick failed: {s:?}");

            let mut per_tick = Vec::new();
            let mut lists = Vec::new();
            let tick_start = Instant::now();
            let by_endpoint_before = d.stats.by_endpoint();
            for _ in 0..ticks {
                let before = d.stats.total();
                let l = list_reads(&d);
                let s = d.activate([Reason::Periodic].into()).await;
                anyhow::ensure!(s.ok(), "a tick failed: {s:?}");
                per_tick.push(d.stats.total() - before);
                lists.push(list_reads(&d) - l);
            }
            let tick_wall = tick_start.elapsed() / u32::try_from(ticks.max(1)).unwrap_or(1);
            let per_endpoint: Vec<((String, String), u64)> = d
                .stats
                .by_endpoint()
                .into_iter()
                .map(|(k, n)| {
                    let was = by_endpoint_before.get(&k).copied().unwrap_or(0);
                    (k, n - was)
                })
                .filter(|(_, n)| *n > 0)
                .collect();
            let status = d.server.status_doc();

            // An IdP change (a member added to a mapped group, push paused so Segment
            // lags) and the System Log pass it wakes.
            let http = reqwest::Client::new();
            http.post(format!("{sim_url}/_sim/push"))
                .json(&json!({"mode": "paused"}))
                .send()
                .await?;
            let joiner = format!("user{:05}@bench.test", users - 1);
            http.post(format!("{sim_url}/_sim/okta/groups/Bench%20Group%20000/members"))
                .json(&json!({"login": joiner}))
                .send()
                .await?
                .error_for_status()?;
            let t = Instant::now();
            let before = d.stats.total();
            let s = d.activate([Reason::SystemLog].into()).await;
            anyhow::ensure!(s.ok(), "the System Log pass failed: {s:?}");
            let idp_latency = t.elapsed();
            let idp_requests = d.stats.total() - before;
            let idp_found = open_for(&d, &joiner).await;

            // A manual change in Segment (a direct Workspace Owner grant with the
            // workspace's token) and the audit-trail pass it wakes.
            let seg = format!("{sim_url}/segment/production");
            let token = "seg-production-token";
            let get = |path: String| http.get(format!("{seg}{path}")).bearer_auth(token).send();
            let ws: Value = get(String::new()).await?.json().await?;
            let roles: Value = get("/roles".into()).await?.json().await?;
            let owner = roles["data"]["roles"]
                .as_array()
                .and_then(|r| r.iter().find(|r| r["name"] == "Workspace Owner"))
                .and_then(|r| r["id"].as_str())
                .ok_or_else(|| anyhow::anyhow!("no Workspace Owner role"))?
                .to_string();
            let page: Value = get("/users?pagination.count=1".into()).await?.json().await?;
            let victim = &page["data"]["users"][0];
            let (victim_id, victim_email) = (
                victim["id"].as_str().unwrap_or_default().to_string(),
                victim["email"].as_str().unwrap_or_default().to_string(),
            );
            http.post(format!("{seg}/users/{victim_id}/permissions"))
                .bearer_auth(token)
                .json(&json!({"permissions": [{"roleId": owner, "resources": [{"id": ws["data"]["workspace"]["id"], "type": "WORKSPACE"}]}]}))
                .send()
                .await?
                .error_for_status()?;
            let t = Instant::now();
            let before = d.stats.total();
            let s = d
                .activate([Reason::Audit("production".into())].into())
                .await;
            anyhow::ensure!(s.ok(), "the audit pass failed: {s:?}");
            let seg_latency = t.elapsed();
            let seg_requests = d.stats.total() - before;
            let seg_found = open_for(&d, &victim_email).await;
            anyhow::Ok((
                whole_org,
                full_wall,
                per_tick,
                lists,
                tick_wall,
                per_endpoint,
                status,
                (idp_latency, idp_requests, idp_found),
                (seg_latency, seg_requests, seg_found),
            ))
        });
    let _ = sim.kill();
    let _ = sim.wait();
    let (whole_org, full_wall, per_tick, lists, tick_wall, per_endpoint, status, idp, seg) =
        result?;

    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    let tick_mean = mean(&per_tick);
    let list_mean = mean(&lists);
    let ticks_per_min = 1.0 / 5.0; // sync.interval = 5m
    let pollers_per_min = 1.0 + 2.0; // System Log + one audit trail per workspace, every 60 s
    let window_min = 12.0 * 60.0; // sync.full_refresh = 12h
    let measured = tick_mean * ticks_per_min + pollers_per_min;
    let bound = pollers_per_min + whole_org as f64 / window_min + list_mean * ticks_per_min;
    println!(
        "scimwatch steady-state benchmark: {users} Okta users, {groups} mapped groups, 2 workspaces of {} members",
        users / 2
    );
    println!(
        "whole-org read (the start-up full pass): {whole_org} requests in {:.1} s",
        full_wall.as_secs_f64()
    );
    println!(
        "ticks: {} at interval 5m, full_refresh 12h ({} ticks per window, share {} subjects of {}); requests per tick: mean {tick_mean:.1}, min {}, max {} (list reads {list_mean:.1}); {:.2} s each",
        per_tick.len(),
        status["refresh"]["ticks_per_window"],
        status["refresh"]["share_per_tick"],
        status["refresh"]["subjects"],
        per_tick.iter().min().copied().unwrap_or(0),
        per_tick.iter().max().copied().unwrap_or(0),
        tick_wall.as_secs_f64()
    );
    println!("requests of those ticks, per endpoint:");
    for ((svc, ep), n) in &per_endpoint {
        println!("  {svc:<28} {ep:<40} {n:>7}");
    }
    println!(
        "requests per minute at the defaults: {measured:.1} (ticks {:.1} + pollers {pollers_per_min:.1})",
        tick_mean * ticks_per_min
    );
    println!(
        "bound: {bound:.1} = pollers {pollers_per_min:.1} + whole org / 12 h {:.1} + list reads per tick / 5 min {:.1}; measured / bound = {:.2} (target ≤ 1.20)",
        whole_org as f64 / window_min,
        list_mean * ticks_per_min,
        measured / bound
    );
    println!(
        "before issue 13 (a full pass every tick): {:.1} requests per minute",
        whole_org as f64 * ticks_per_min + pollers_per_min
    );
    println!(
        "IdP change → finding (the System Log pass it wakes): {:.2} s, {} requests, found: {} (+ up to triggers.system_log_poll, 60 s)",
        idp.0.as_secs_f64(),
        idp.1,
        idp.2
    );
    println!(
        "manual Segment change → finding (the audit-trail pass it wakes): {:.2} s, {} requests, found: {} (+ up to triggers.audit_poll, 60 s)",
        seg.0.as_secs_f64(),
        seg.1,
        seg.2
    );
    match peak_rss_kib() {
        Some(k) => println!(
            "peak memory (VmHWM of the daemon): {:.1} MiB",
            k as f64 / 1024.0
        ),
        None => println!("peak memory: unavailable (no /proc)"),
    }
    Ok(())
}
