//! Figures for the daemon, run with `cargo bench --bench daemon` (not a test; CI does
//! not run it; about 2 minutes). Against the simulator seeded with the demo company:
//!
//! - IdP change → finding in `/findings`, through the Okta Event Hook;
//! - IdP change → finding, through the System Log poller alone (no hook);
//! - manual change in the Segment app → finding, through the audit-trail poller;
//! - how late after its deadline a stalled finding turns to `drift`;
//! - API requests per minute while nothing changes, at the default intervals.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scimwatch::daemon::Daemon;
use scimwatch::http::RetryConfig;
use scimwatch::triggers::Reason;
use scimwatch_sim::{self as sim, SimHandle};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const SEED: &str = include_str!("../deploy/demo-seed.toml");
const SECRET: &str = "bench-hook-secret-0123456789";

async fn findings(base: &str) -> Option<Value> {
    let r = reqwest::get(format!("{base}/findings")).await.ok()?;
    r.json().await.ok()
}

async fn wait(
    base: &str,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        if let Some(doc) = findings(base).await {
            if pred(&doc) {
                return Ok(start.elapsed());
            }
        }
        if start.elapsed() > within {
            anyhow::bail!("not seen within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn has(doc: &Value, kind: &str, user: &str, state: &str) -> bool {
    doc["findings"].as_array().is_some_and(|a| {
        a.iter()
            .any(|f| f["kind"] == kind && f["user"] == user && f["state"] == state)
    })
}

async fn post(sim: &SimHandle, path: &str, body: Value) -> anyhow::Result<()> {
    let r = reqwest::Client::new()
        .post(format!("{}{}", sim.url(), path.replace(' ', "%20")))
        .json(&body)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "{path}: {}", r.status());
    Ok(())
}

/// Starts a daemon on the sim with `extra` config; returns it, its base URL and a stopper.
async fn start(
    sim: &SimHandle,
    dir: &Path,
    window: &str,
    extra: &str,
) -> anyhow::Result<(Arc<Daemon>, String, CancellationToken)> {
    let mappings_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let text = format!(
        "{}\n[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\n{extra}",
        sim.config_toml(&mappings_dir, &format!("propagation_window = \"{window}\"")),
        dir.join("scimwatch.db").display()
    );
    let config =
        scimwatch::config::load_str(&text, Path::new("/tmp/scimwatch.toml"), &Default::default())?;
    let known: Vec<String> = config.workspaces.iter().map(|w| w.name.clone()).collect();
    let mappings = scimwatch::mapping::load_dir(
        &mappings_dir,
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &known,
        chrono::Utc::now(),
    )?;
    let daemon = Arc::new(Daemon::build(config, mappings, RetryConfig::default()).await?);
    let bound = daemon.bind().await?;
    let base = format!(
        "http://{}",
        bound
            .main_addr()
            .ok_or_else(|| anyhow::anyhow!("no address"))?
    );
    let cancel = CancellationToken::new();
    tokio::spawn(daemon.clone().serve(bound, cancel.clone()));
    daemon.activator.activate(Reason::Startup);
    wait(&base, Duration::from_secs(20), |d| d["findings"].is_array()).await?;
    Ok((daemon, base, cancel))
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let seed = SEED.replace("delay = \"3s\"", "delay = \"2s\"");
    println!("scimwatch daemon figures (the demo company in the simulator, release build)\n");

    // 1. The hook path, and the audit-trail path, and a deadline.
    {
        let sim = sim::start(&seed, "127.0.0.1:0").await?;
        let dir = tempfile::tempdir()?;
        let extra = format!(
            "[sync]\ninterval = \"1h\"\n[triggers]\nokta_hook_secret = \"{SECRET}\"\nsystem_log_poll = \"0s\"\naudit_poll = \"5s\"\n"
        );
        let (_d, base, cancel) = start(&sim, dir.path(), "5s", &extra).await?;
        post(
            &sim,
            "/_sim/okta/event-hooks",
            json!({"url": format!("{base}/hooks/okta"), "auth_header": SECRET}),
        )
        .await?;
        tokio::time::sleep(Duration::from_secs(6)).await; // the audit poller sets its checkpoint

        let mut hook = Vec::new();
        for who in ["olivia.chen@acme.test", "peter.novak@acme.test"] {
            let t = Instant::now();
            post(
                &sim,
                "/_sim/okta/groups/Segment Marketing/members",
                json!({"login": who}),
            )
            .await?;
            wait(&base, Duration::from_secs(10), |d| {
                has(d, "user_not_provisioned", who, "pending")
            })
            .await?;
            hook.push(t.elapsed());
        }
        println!(
            "IdP change → pending finding, via the Okta Event Hook: {}",
            secs(&hook)
        );

        // A manual grant; the audit poller runs every 5 s, so expect 0–5 s plus a pass.
        let users: Value = reqwest::Client::new()
            .get(format!(
                "{}/segment/production/users?pagination.count=1000",
                sim.url()
            ))
            .bearer_auth("ui-ana-token")
            .send()
            .await?
            .json()
            .await?;
        let id = |e: &str| -> String {
            users["data"]["users"]
                .as_array()
                .and_then(|a| a.iter().find(|u| u["email"] == e))
                .and_then(|u| u["id"].as_str())
                .unwrap_or_default()
                .to_string()
        };
        let ws: Value = reqwest::Client::new()
            .get(format!("{}/segment/production/", sim.url()))
            .bearer_auth("ui-ana-token")
            .send()
            .await?
            .json()
            .await?;
        let mut manual = Vec::new();
        for who in [
            "omar.khan@acme.test",
            "nina.berg@acme.test",
            "rita.souza@acme.test",
        ] {
            let t = Instant::now();
            let r = reqwest::Client::new()
                .post(format!("{}/segment/production/users/{}/permissions", sim.url(), id(who)))
                .bearer_auth("ui-ana-token")
                .json(&json!({"permissions": [{"roleId": "1WDUuRLxv84rrfCNUwvkrRtkxnS", "resources": [{"id": ws["data"]["workspace"]["id"], "type": "WORKSPACE"}]}]}))
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success());
            wait(&base, Duration::from_secs(15), |d| {
                has(d, "direct_grant", who, "drift")
            })
            .await?;
            manual.push(t.elapsed());
            tokio::time::sleep(Duration::from_millis(1700)).await;
        }
        println!(
            "manual Segment change → finding, via the audit-trail poller (every 5 s): {}",
            secs(&manual)
        );

        // A stalled push: how late after its deadline does it turn to drift?
        post(&sim, "/_sim/push", json!({"mode": "failing"})).await?;
        post(
            &sim,
            "/_sim/okta/groups/Segment Marketing/members",
            json!({"login": "isla.brown@acme.test"}),
        )
        .await?;
        wait(&base, Duration::from_secs(10), |d| {
            has(d, "membership_missing", "isla.brown@acme.test", "pending")
                || has(d, "user_not_provisioned", "isla.brown@acme.test", "pending")
        })
        .await?;
        let doc = findings(&base).await.unwrap_or_default();
        let deadline = doc["findings"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["user"] == "isla.brown@acme.test"))
            .and_then(|f| f["deadline"].as_str())
            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
            .ok_or_else(|| anyhow::anyhow!("no deadline"))?;
        wait(&base, Duration::from_secs(20), |d| {
            has(d, "membership_missing", "isla.brown@acme.test", "drift")
        })
        .await?;
        let late = chrono::Utc::now() - deadline.with_timezone(&chrono::Utc);
        println!("stalled push → drift, after its deadline: {:.2} s (deadline in whole seconds; the pass itself included)", late.num_milliseconds() as f64 / 1000.0);
        cancel.cancel();
        sim.stop().await;
    }

    // 2. The System Log path alone.
    {
        let sim = sim::start(&seed, "127.0.0.1:0").await?;
        let dir = tempfile::tempdir()?;
        let (_d, base, cancel) =
            start(&sim, dir.path(), "60m", "[sync]\ninterval = \"1h\"\n[triggers]\nsystem_log_poll = \"5s\"\naudit_poll = \"0s\"\n").await?;
        tokio::time::sleep(Duration::from_secs(6)).await; // the poller sets its checkpoint
                                                          // Hold the pushes, or SCIM would carry the change before a 5 s poll sees it pending.
        post(&sim, "/_sim/push", json!({"mode": "paused"})).await?;
        let mut log = Vec::new();
        for who in [
            "olivia.chen@acme.test",
            "peter.novak@acme.test",
            "isla.brown@acme.test",
        ] {
            let t = Instant::now();
            post(
                &sim,
                "/_sim/okta/groups/Segment Marketing/members",
                json!({"login": who}),
            )
            .await?;
            wait(&base, Duration::from_secs(15), |d| {
                has(d, "user_not_provisioned", who, "pending")
                    || has(d, "membership_missing", who, "pending")
            })
            .await?;
            log.push(t.elapsed());
            tokio::time::sleep(Duration::from_millis(2300)).await;
        }
        println!(
            "IdP change → pending finding, via the System Log poller alone (every 5 s): {}",
            secs(&log)
        );
        cancel.cancel();
        sim.stop().await;
    }

    // 3. Pages: a manual Owner grant → PagerDuty, through the audit poller (every 1 s),
    //    the alert planner and the outbox.
    {
        let sim = sim::start(&seed, "127.0.0.1:0").await?;
        let dir = tempfile::tempdir()?;
        let extra = format!(
            "[sync]\ninterval = \"1h\"\n[triggers]\nsystem_log_poll = \"0s\"\naudit_poll = \"1s\"\n[[alerts.sink]]\nname = \"oncall\"\nkind = \"pagerduty\"\nrouting_key = \"R0123456789abcdef0123456789abcde\"\nurl = \"{}/pagerduty/v2/enqueue\"\n[[alerts.sink]]\nname = \"team\"\nkind = \"slack\"\nwebhook_url = \"{}/slack/hooks/T1/B1/bench\"\n[[alerts.route]]\nsinks = [\"oncall\", \"team\"]\n",
            sim.url(),
            sim.url()
        );
        let (d, _base, cancel) = start(&sim, dir.path(), "60m", &extra).await?;
        tokio::time::sleep(Duration::from_secs(2)).await; // the audit poller sets its checkpoint
        let http = reqwest::Client::new();
        let users: Value = http
            .get(format!(
                "{}/segment/production/users?pagination.count=1000",
                sim.url()
            ))
            .bearer_auth("ui-ana-token")
            .send()
            .await?
            .json()
            .await?;
        let ws: Value = http
            .get(format!("{}/segment/production/", sim.url()))
            .bearer_auth("ui-ana-token")
            .send()
            .await?
            .json()
            .await?;
        let pd_count = || async {
            let v: Value = reqwest::get(format!("{}/_sim/sinks", sim.url()))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            Some((
                v["pagerduty"].as_array().map_or(0, Vec::len),
                v["slack"].as_array().map_or(0, Vec::len),
            ))
        };
        let mut pages = Vec::new();
        let who = [
            "omar.khan@acme.test",
            "nina.berg@acme.test",
            "rita.souza@acme.test",
        ];
        for (n, email) in who.iter().enumerate() {
            let id = users["data"]["users"]
                .as_array()
                .and_then(|a| a.iter().find(|u| u["email"] == *email))
                .and_then(|u| u["id"].as_str())
                .unwrap_or_default()
                .to_string();
            let t = Instant::now();
            let r = http
                .post(format!("{}/segment/production/users/{id}/permissions", sim.url()))
                .bearer_auth("ui-ana-token")
                .json(&json!({"permissions": [{"roleId": "1WDUuRLxv84rrfCNUwvkrRtkxnS", "resources": [{"id": ws["data"]["workspace"]["id"], "type": "WORKSPACE"}]}]}))
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success());
            loop {
                if pd_count().await.is_some_and(|(pd, _)| pd > n) {
                    break;
                }
                anyhow::ensure!(t.elapsed() < Duration::from_secs(15), "no page");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            pages.push(t.elapsed());
        }
        tokio::time::sleep(Duration::from_secs(4)).await;
        let (pd, slack) = pd_count().await.unwrap_or_default();
        let sent: u64 = d
            .stats
            .snapshot()
            .iter()
            .filter(|((service, _, _), _)| *service == "pagerduty" || *service == "slack")
            .map(|(_, n)| *n)
            .sum();
        println!(
            "manual Owner grant → PagerDuty page (audit poll every 1 s, planner, outbox): {}; {pd} PagerDuty events and {slack} Slack messages for 3 problems ({sent} sink requests)",
            secs(&pages)
        );
        cancel.cancel();
        sim.stop().await;
    }

    // 4. Idle cost at the default intervals (sync 5 m, polls 60 s).
    {
        let sim = sim::start(&seed, "127.0.0.1:0").await?;
        let dir = tempfile::tempdir()?;
        let (d, _base, cancel) = start(&sim, dir.path(), "60m", "").await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = d.stats.total();
        let pass_cost = before;
        tokio::time::sleep(Duration::from_secs(61)).await;
        let polls = d.stats.total() - before;
        println!(
            "idle: {polls} requests in the minute after start-up (the pollers), plus one full pass ({pass_cost} requests for this org) every sync.interval = 5 m: about {:.0} requests/min",
            polls as f64 + pass_cost as f64 / 5.0
        );
        cancel.cancel();
        sim.stop().await;
    }
    Ok(())
}

fn secs(d: &[Duration]) -> String {
    d.iter()
        .map(|d| format!("{:.2} s", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}
