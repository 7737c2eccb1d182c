//! `scimwatch demo`: a narrated scenario on the embedded simulator.
//!
//! Why one file (~750 lines): it is one narrated script, read top to bottom.
//!
//! It starts the simulator on `127.0.0.1:0` with the seed in `deploy/demo-seed.toml` and
//! the mappings in `mappings/` (both embedded in the binary), runs the daemon in-process
//! against it with an Okta Event Hook registered, and walks through what on-call meets in
//! real life. After each step it waits for the daemon to notice — through the hook, the
//! System Log or Segment audit-trail pollers, or a deadline — and prints what changed and
//! how long detection took. Every change goes through the simulator's public surfaces: its
//! control API for the IdP side, the Segment Public API (with a person's token) for manual
//! edits. Alerts go to the simulator's PagerDuty and Slack receivers (critical and error
//! page on-call; everything reaches the team channel), and the demo prints what they
//! received: triggers, one per problem, and resolves. It ends by itself in well under a
//! minute and exits 0.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use chrono::Utc;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub mod azure;

use crate::daemon::Daemon;
use crate::http::RetryConfig;
use crate::reconcile::{Finding, Kind, State};

pub const SEED: &str = include_str!("../../deploy/demo-seed.toml");
pub const MAPPINGS: &[(&str, &str)] = &[
    (
        "mappings/production.toml",
        include_str!("../../mappings/production.toml"),
    ),
    (
        "mappings/staging.toml",
        include_str!("../../mappings/staging.toml"),
    ),
];

/// The propagation window the demo uses (seconds, so the scenario fits in a minute).
const WINDOW_SECS: u64 = 8;
/// The seed's push delay.
const PUSH_DELAY_SECS: u64 = 3;
const HOOK_SECRET: &str = "demo-hook-secret-0123456789";

struct Demo {
    sim_url: String,
    http: reqwest::Client,
    daemon: Arc<Daemon>,
    last: Vec<Finding>,
    detections: Vec<(String, Duration)>,
    /// PagerDuty events and Slack messages already printed.
    pages_seen: (usize, usize),
}

pub async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let sim = scimwatch_sim::start(SEED, "127.0.0.1:0")
        .await
        .context("starting the simulator")?;
    let dir = std::env::temp_dir().join(format!(
        "scimwatch-demo-{}-{}",
        std::process::id(),
        Utc::now().timestamp_millis()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let config_text = format!(
        "{}\n[sync]\ninterval = \"1h\"\n\n[triggers]\nokta_hook_secret = \"{HOOK_SECRET}\"\nsystem_log_poll = \"2s\"\naudit_poll = \"1s\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\npath = \"{}\"\n{}",
        sim.config_toml(Path::new("mappings"), &format!("propagation_window = \"{WINDOW_SECS}s\"")),
        dir.join("scimwatch.db").display(),
        alerts_toml(&sim.url()),
    );
    let result = scenario(&sim.url(), &config_text).await;
    sim.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    println!("\nDone in {:.0} s. Run it against your own org: see README.md, \"Pointing it at Okta and Segment\".", started.elapsed().as_secs_f64());
    Ok(())
}

async fn scenario(sim_url: &str, config_text: &str) -> anyhow::Result<()> {
    let env = std::collections::BTreeMap::new();
    let config = crate::config::load_str(config_text, Path::new("scimwatch.toml"), &env)?;
    let known: Vec<String> = config.workspaces.iter().map(|w| w.name.clone()).collect();
    let files: Vec<(String, String)> = MAPPINGS
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    let mappings = crate::mapping::parse_files(&files, &known, Utc::now())?;

    println!("scimwatch demo: Acme has 40 people in Okta and 6 groups pushed into two Segment workspaces");
    println!(
        "(production, staging; one group goes to both, so 7 mapped groups). scimwatch compares who"
    );
    println!(
        "Okta says is in each group, what mappings/*.toml says each group may do, and what Segment"
    );
    println!("actually holds.");
    println!("Everything runs against a local simulator at {sim_url}. SCIM pushes take {PUSH_DELAY_SECS} s and the");
    println!("propagation window is {WINDOW_SECS} s (in production: an hour).");

    let daemon = Arc::new(Daemon::build(config, mappings, RetryConfig::fast()).await?);
    let clients: Vec<_> = daemon.clients.iter().map(|(_, c)| c.clone()).collect();
    let validated =
        crate::app::validate_loaded(&daemon.config, &daemon.mappings, &daemon.idp, &clients)
            .await?;
    if !validated.problems.is_empty() {
        bail!(
            "the demo's mappings do not validate: {}",
            validated.problems.join("; ")
        );
    }
    println!("{}", validated.summary(daemon.config.idp.kind.display()));
    let bound = daemon.bind().await?;
    let hooks = bound.hooks_addr().context("the daemon's address")?;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(daemon.clone().serve(bound, shutdown.clone()));
    let mut d = Demo {
        sim_url: sim_url.to_string(),
        http: reqwest::Client::new(),
        daemon,
        last: vec![],
        detections: vec![],
        pages_seen: (0, 0),
    };
    let result = d.steps(hooks).await;
    shutdown.cancel();
    let _ = running.await;
    result
}

impl Demo {
    async fn steps(&mut self, hooks: std::net::SocketAddr) -> anyhow::Result<()> {
        // Okta verifies the hook with a GET, then delivers events to it.
        self.sim_post(
            "/_sim/okta/event-hooks",
            json!({"url": format!("http://{hooks}/hooks/okta"), "auth_header": HOOK_SECRET}),
        )
        .await?;
        println!("\nThe daemon is running (`scimwatch run`): Okta's Event Hook is registered and verified,");
        println!("the System Log is polled every 2 s and each workspace's audit trail every 1 s.");
        self.daemon
            .activator
            .activate(crate::triggers::Reason::Startup);

        step(
            1,
            "A clean baseline",
            "The daemon's first full pass finds Segment as the mappings say.",
        );
        let t = Instant::now();
        self.until(t, Duration::from_secs(15), |_| true).await?;
        println!(
            "   +{:>4.1} s  first pass done: {} open findings",
            t.elapsed().as_secs_f64(),
            self.last.len()
        );

        step(
            2,
            "An Okta admin adds Olivia Chen to \"Segment Prod Owners\"",
            "Okta logs it and calls the hook; SCIM carries it a few seconds later.",
        );
        self.sim_post(
            "/_sim/okta/groups/Segment Prod Owners/members",
            json!({"login": "olivia.chen@acme.test"}),
        )
        .await?;
        let t = Instant::now();
        self.until(t, Duration::from_secs(10), |f| {
            has(f, Kind::UserNotProvisioned, "olivia.chen", State::Pending)
        })
        .await?;
        self.detected("IdP change → pending (hook)", t);
        self.until(t, Duration::from_secs(15), |f| {
            !any(f, Kind::UserNotProvisioned, "olivia.chen")
        })
        .await?;
        self.detected("SCIM push → resolved (audit trail)", t);

        step(
            3,
            "The SCIM integration breaks, then Grace Liu leaves the analytics team",
            "Okta logs the removal, but the push never reaches Segment.",
        );
        self.sim_post("/_sim/push", json!({"mode": "failing"}))
            .await?;
        self.sim_delete(
            "/_sim/okta/groups/Segment Analytics Engineers/members/grace.liu@acme.test",
        )
        .await?;
        let t = Instant::now();
        self.until(t, Duration::from_secs(10), |f| {
            has(f, Kind::MembershipUnexpected, "grace.liu", State::Pending)
        })
        .await?;
        self.detected("IdP removal → pending (hook)", t);
        println!("   … the daemon sleeps until the finding's deadline");
        self.until(t, Duration::from_secs(WINDOW_SECS + 10), |f| {
            has(f, Kind::MembershipUnexpected, "grace.liu", State::Drift)
        })
        .await?;
        let late = self
            .last
            .iter()
            .find(|f| f.kind == Kind::MembershipUnexpected)
            .and_then(|f| f.deadline)
            .map(|d| (Utc::now() - d).num_milliseconds().max(0))
            .unwrap_or_default();
        println!(
            "   (turned to drift {:.1} s after its deadline)",
            late as f64 / 1000.0
        );
        self.detected("stalled push → drift (deadline)", t);
        self.pages().await?;

        step(
            4,
            "Ana (a Workspace Owner) makes Omar Khan a Workspace Owner directly in the Segment app",
            "No IdP change explains it: drift at once, attributed from Segment's audit trail.",
        );
        let ws = self.segment_get("production", "/").await?;
        let ws_id = ws["data"]["workspace"]["id"]
            .as_str()
            .context("workspace id")?
            .to_string();
        let omar = self
            .segment_user_id("production", "omar.khan@acme.test")
            .await?;
        let omar_before = self
            .segment_get("production", &format!("/users/{omar}"))
            .await?["data"]["user"]["permissions"]
            .clone();
        let t = Instant::now();
        self.segment_send(
            reqwest::Method::POST,
            &format!("/users/{omar}/permissions"),
            json!({"permissions": [{"roleId": crate::model::WORKSPACE_OWNER_ROLE_ID, "resources": [{"id": ws_id, "type": "WORKSPACE"}]}]}),
        )
        .await?;
        self.until(t, Duration::from_secs(10), |f| {
            any(f, Kind::DirectGrant, "omar.khan")
        })
        .await?;
        self.detected("manual grant → drift (audit trail)", t);
        let omar_key = self
            .last
            .iter()
            .find(|f| {
                f.kind == Kind::DirectGrant
                    && f.user
                        .as_ref()
                        .is_some_and(|u| u.as_str().starts_with("omar.khan"))
            })
            .map(|f| f.id.clone())
            .context("Omar's direct_grant finding")?;
        self.pages().await?;

        step(
            5,
            "Ana adds Maria Garcia to the pushed group \"Segment Prod Owners\" in the Segment app",
            "Okta will overwrite it, but only on its next push of that group.",
        );
        let owners = self
            .segment_group_id("production", "Segment Prod Owners")
            .await?;
        let t = Instant::now();
        self.segment_send(
            reqwest::Method::POST,
            &format!("/groups/{owners}/users"),
            json!({"emails": ["maria.garcia@acme.test"]}),
        )
        .await?;
        self.until(t, Duration::from_secs(10), |f| {
            any(f, Kind::MembershipUnexpected, "maria.garcia")
        })
        .await?;
        self.detected("manual membership → drift (audit trail)", t);
        self.pages().await?;

        step(
            6,
            "SCIM is repaired; an Okta admin deactivates Dan Leaver, who has left",
            "Deactivation is carried by SCIM: pending until the push removes him.",
        );
        self.sim_post("/_sim/push", json!({"mode": "normal"}))
            .await?;
        self.sim_post(
            "/_sim/okta/users/dan.leaver@acme.test/status",
            json!({"status": "DEPROVISIONED"}),
        )
        .await?;
        let t = Instant::now();
        self.until(t, Duration::from_secs(10), |f| {
            has(
                f,
                Kind::DeactivatedUserPresent,
                "dan.leaver",
                State::Pending,
            )
        })
        .await?;
        self.detected("deactivation → pending (hook)", t);
        self.until(t, Duration::from_secs(15), |f| {
            !any(f, Kind::DeactivatedUserPresent, "dan.leaver")
        })
        .await?;
        self.detected("SCIM removal → resolved (audit trail)", t);

        step(
            7,
            "Ana takes back Omar's Owner grant",
            "The finding resolves at once; its page after two clean full passes in a row (no flapping\n   on one odd read). Full passes run every sync.interval; the demo asks for them.",
        );
        let t = Instant::now();
        self.segment_send(
            reqwest::Method::PUT,
            &format!("/users/{omar}/permissions"),
            json!({"permissions": input_permissions(&omar_before)}),
        )
        .await?;
        self.until(t, Duration::from_secs(10), |f| {
            !any(f, Kind::DirectGrant, "omar.khan")
        })
        .await?;
        self.detected("grant taken back → resolved (audit trail)", t);
        let key = omar_key;
        let resolved = |s: &Value| {
            s["pagerduty"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|e| e["event_action"] == "resolve" && e["dedup_key"] == key.as_str())
            })
        };
        let mut passes = 0;
        while !resolved(&self.sinks().await?) {
            if passes == 4 || t.elapsed() > Duration::from_secs(15) {
                bail!("the page for Omar's grant did not resolve after {passes} full passes");
            }
            self.daemon
                .activator
                .activate(crate::triggers::Reason::Periodic);
            passes += 1;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        println!(
            "   +{:>4.1} s  resolved after {passes} full passes",
            t.elapsed().as_secs_f64()
        );
        self.pages().await?;

        println!("\nDetection times:");
        for (what, d) in &self.detections {
            println!("   {:>5.1} s  {what}", d.as_secs_f64());
        }
        let changes = self
            .daemon
            .store
            .changes_since(Utc::now() - chrono::Duration::hours(1))
            .await?;
        println!(
            "\nThe change log (`scimwatch changes`) recorded {} access changes, e.g.:",
            changes.len()
        );
        for c in changes
            .iter()
            .filter(|c| c.attribution.as_deref() == Some("human"))
            .take(2)
        {
            println!(
                "   {} {}: {} → {} (by {})",
                c.workspace,
                c.user,
                c.before,
                c.after,
                c.actor.as_deref().unwrap_or("?")
            );
        }
        if let Some(c) = changes.iter().find(|c| c.latency_ms.is_some()) {
            println!(
                "   {} {}: {} → {} ({} after the Okta change)",
                c.workspace,
                c.user,
                c.before,
                c.after,
                human_ms(c.latency_ms.unwrap_or(0))
            );
        }
        let s = self.sinks().await?;
        let count = |k: &str| s[k].as_array().map_or(0, Vec::len);
        println!(
            "\nOn-call got {} PagerDuty events and the team channel {} Slack messages: one trigger per",
            count("pagerduty"),
            count("slack")
        );
        println!("problem (dedup key = the finding id), and a resolve when it was fixed.");
        let total = self.daemon.stats.total();
        println!("\nThe daemon made {total} API requests. Still open: the stalled removal (step 3) and the manual");
        println!("membership (step 5); `scimwatch check` would exit 1 on them, 0 when clean, and 2 (printing");
        println!("nothing) when it cannot read everything.");
        Ok(())
    }

    async fn sinks(&self) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}/_sim/sinks", self.sim_url))
            .send()
            .await?
            .json()
            .await?)
    }

    /// Waits for the outbox to drain (Slack is paced at one message a second), then prints
    /// what the fake PagerDuty and Slack received since the last call.
    async fn pages(&mut self) -> anyhow::Result<()> {
        let t = Instant::now();
        loop {
            let depth = self.daemon.store.outbox_depth().await?;
            if depth.iter().all(|d| d.pending == 0) || t.elapsed() > Duration::from_secs(8) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let s = self.sinks().await?;
        let pd = s["pagerduty"].as_array().cloned().unwrap_or_default();
        let slack = s["slack"].as_array().cloned().unwrap_or_default();
        for e in pd.iter().skip(self.pages_seen.0) {
            let what = if e["event_action"] == "resolve" {
                "resolve".to_string()
            } else {
                format!(
                    "trigger {} {}",
                    e["payload"]["severity"].as_str().unwrap_or("?"),
                    e["payload"]["class"].as_str().unwrap_or("?")
                )
            };
            println!(
                "   → PagerDuty (on-call): {what}, dedup_key {}",
                e["dedup_key"].as_str().unwrap_or("?")
            );
        }
        for m in slack.iter().skip(self.pages_seen.1) {
            let text = m["text"].as_str().unwrap_or("");
            println!("   → Slack (team): {}", crate::alert::one_line(text, 100));
        }
        self.pages_seen = (pd.len(), slack.len());
        Ok(())
    }

    fn detected(&mut self, what: &str, t: Instant) {
        self.detections.push((what.to_string(), t.elapsed()));
    }

    /// Waits until `pred` holds on the daemon's open findings, printing every change as it
    /// appears with the time since `t` and the trigger that woke the daemon.
    async fn until(
        &mut self,
        t: Instant,
        within: Duration,
        pred: impl Fn(&[Finding]) -> bool,
    ) -> anyhow::Result<()> {
        loop {
            let doc = self
                .daemon
                .server
                .findings
                .read()
                .ok()
                .and_then(|f| f.clone());
            if let Some(doc) = doc {
                let value: Value = serde_json::from_str(&doc)?;
                let findings: Vec<Finding> = serde_json::from_value(value["findings"].clone())?;
                self.narrate(&findings, t);
                if pred(&findings) {
                    return Ok(());
                }
            }
            if t.elapsed() > within {
                bail!("the daemon did not notice within {} s", within.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn narrate(&mut self, findings: &[Finding], t: Instant) {
        let trigger = self.last_trigger();
        let mut lines = Vec::new();
        for f in findings {
            let before = self.last.iter().find(|o| o.id == f.id);
            let tag = match before {
                None => "new",
                Some(o) if o.state != f.state && f.state == State::Drift => "now drift",
                Some(o) if o.state != f.state || o.severity != f.severity => "changed",
                Some(o) if o.evidence.is_none() && f.evidence.is_some() => "evidence",
                Some(_) => continue,
            };
            // "now drift" already says the state: do not repeat it.
            let how = if tag == "now drift" {
                f.severity.as_str().to_string()
            } else {
                format!("{} {}", f.severity.as_str(), f.state.as_str())
            };
            lines.push(format!(
                "   +{:>4.1} s  {tag:<9} {} ({how}) · {}",
                t.elapsed().as_secs_f64(),
                f.kind,
                f.subject()
            ));
            for line in wrap(&f.message, 86) {
                lines.push(format!("               {line}"));
            }
            if let Some(a) = &f.attribution {
                lines.push(format!(
                    "               attribution: {} ({}), reverted by SCIM: {}",
                    a.kind.as_str(),
                    a.actor_email.as_deref().unwrap_or(&a.actor),
                    opt(f.reverted_by_scim)
                ));
            }
            if let Some(e) = &f.evidence {
                let text = format!(
                    "Entra's provisioning log: {} {} — {}",
                    e.status,
                    e.error_code.as_deref().unwrap_or(""),
                    e.reason.as_deref().unwrap_or("no reason given")
                );
                for line in wrap(&text, 86) {
                    lines.push(format!("               {line}"));
                }
            }
        }
        for o in &self.last {
            if !findings.iter().any(|f| f.id == o.id) {
                lines.push(format!(
                    "   +{:>4.1} s  resolved  {} · {}",
                    t.elapsed().as_secs_f64(),
                    o.kind,
                    o.subject()
                ));
            }
        }
        if !lines.is_empty() {
            println!("   (the daemon was woken by: {trigger})");
            for l in lines {
                println!("{l}");
            }
        }
        self.last = findings.to_vec();
    }

    /// The trigger of the daemon's latest activation, from `/status`.
    fn last_trigger(&self) -> String {
        let status = self
            .daemon
            .server
            .status
            .read()
            .map(|s| s.clone())
            .unwrap_or_default();
        status["last_activation"]
            .as_object()
            .and_then(|m| {
                m.iter()
                    .max_by_key(|(_, v)| v["at"].as_str().unwrap_or_default().to_string())
                    .map(|(k, _)| k.clone())
            })
            .unwrap_or_else(|| "start-up".into())
    }

    async fn sim_post(&self, path: &str, body: Value) -> anyhow::Result<()> {
        let url = format!("{}{}", self.sim_url, crate::http::encode_path(path));
        let r = self.http.post(&url).json(&body).send().await?;
        if !r.status().is_success() {
            bail!(
                "POST {path}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    async fn sim_delete(&self, path: &str) -> anyhow::Result<()> {
        let url = format!("{}{}", self.sim_url, crate::http::encode_path(path));
        let r = self.http.delete(&url).send().await?;
        if !r.status().is_success() {
            bail!(
                "DELETE {path}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// A GET on the Segment Public API as Ana, a person with a Segment app session.
    async fn segment_get(&self, ws: &str, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}/segment/{ws}{path}", self.sim_url);
        let r = self
            .http
            .get(&url)
            .bearer_auth("ui-ana-token")
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("GET {path}: {}", r.status());
        }
        Ok(r.json().await?)
    }

    async fn segment_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<()> {
        let url = format!("{}/segment/production{path}", self.sim_url);
        let r = self
            .http
            .request(method.clone(), &url)
            .bearer_auth("ui-ana-token")
            .json(&body)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "{method} {path}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    async fn segment_user_id(&self, ws: &str, email: &str) -> anyhow::Result<String> {
        let v = self.segment_get(ws, "/users?pagination.count=1000").await?;
        v["data"]["users"]
            .as_array()
            .and_then(|us| us.iter().find(|u| u["email"].as_str() == Some(email)))
            .and_then(|u| u["id"].as_str())
            .map(str::to_string)
            .with_context(|| format!("no Segment user {email}"))
    }

    async fn segment_group_id(&self, ws: &str, name: &str) -> anyhow::Result<String> {
        let v = self
            .segment_get(ws, "/groups?pagination.count=1000")
            .await?;
        v["data"]["userGroups"]
            .as_array()
            .and_then(|gs| gs.iter().find(|g| g["name"].as_str() == Some(name)))
            .and_then(|g| g["id"].as_str())
            .map(str::to_string)
            .with_context(|| format!("no Segment group {name}"))
    }
}

/// The demo's alert sinks: the simulator's fake PagerDuty and Slack. Critical and error
/// findings page on-call; everything reaches the team channel.
fn alerts_toml(sim: &str) -> String {
    format!(
        r#"
[alerts]
resolve_after = 2

[[alerts.sink]]
name = "oncall"
kind = "pagerduty"
routing_key = "demo0000000000000000000000000key"
url = "{sim}/pagerduty/v2/enqueue"

[[alerts.sink]]
name = "team"
kind = "slack"
webhook_url = "{sim}/slack/hooks/TDEMO/BDEMO/demo"

[[alerts.route]]
severities = ["critical", "error"]
sinks = ["oncall", "team"]

[[alerts.route]]
sinks = ["team"]
"#
    )
}

/// A user's permissions as Segment returns them, in the shape its write endpoints take.
fn input_permissions(perms: &Value) -> Value {
    let list: Vec<Value> = perms
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let resources: Vec<Value> = p["resources"]
                        .as_array()
                        .map(|rs| {
                            rs.iter()
                                .map(|r| json!({"id": r["id"], "type": r["type"]}))
                                .collect()
                        })
                        .unwrap_or_default();
                    json!({"roleId": p["roleId"], "resources": resources})
                })
                .collect()
        })
        .unwrap_or_default();
    Value::Array(list)
}

fn step(n: u32, title: &str, what: &str) {
    println!("\n── Step {n}. {title}");
    println!("   {what}");
}

fn any(f: &[Finding], kind: Kind, who: &str) -> bool {
    f.iter()
        .any(|f| f.kind == kind && f.user.as_ref().is_some_and(|u| u.as_str().starts_with(who)))
}

fn has(f: &[Finding], kind: Kind, who: &str, state: State) -> bool {
    f.iter().any(|f| {
        f.kind == kind
            && f.state == state
            && f.user.as_ref().is_some_and(|u| u.as_str().starts_with(who))
    })
}

fn human_ms(ms: i64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn opt(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "n/a",
    }
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}
