//! `scimwatch demo`: a narrated scenario on the embedded simulator.
//!
//! It starts the simulator on `127.0.0.1:0` with the seed in `deploy/demo-seed.toml` and
//! the mappings in `mappings/` (both embedded in the binary), then walks through what
//! on-call meets in real life, running a real `check` pass after each step and printing
//! what changed. Every change goes through the simulator's public surfaces: its control
//! API for the IdP side, the Segment Public API (with a person's token) for manual edits.
//! It ends by itself in well under a minute and exits 0.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use chrono::Utc;
use serde_json::{json, Value};

use crate::cli;
use crate::http::{RequestStats, RetryConfig};
use crate::idp::okta::Okta;
use crate::output::Report;
use crate::reconcile::{pass, Finding, State};
use crate::segment::SegmentClient;

pub const SEED: &str = include_str!("../deploy/demo-seed.toml");
pub const MAPPINGS: &[(&str, &str)] = &[
    (
        "mappings/production.toml",
        include_str!("../mappings/production.toml"),
    ),
    (
        "mappings/staging.toml",
        include_str!("../mappings/staging.toml"),
    ),
];

/// The propagation window the demo uses (seconds, so the scenario fits in a minute).
const WINDOW_SECS: u64 = 8;
/// The seed's push delay.
const PUSH_DELAY: Duration = Duration::from_secs(3);

struct Demo {
    sim_url: String,
    http: reqwest::Client,
    config: crate::config::Config,
    mappings: crate::mapping::MappingSet,
    okta: Okta,
    clients: Vec<SegmentClient>,
    stats: std::sync::Arc<RequestStats>,
    last: Vec<Finding>,
    checks: u32,
}

pub async fn run() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let sim = crate::sim::start(SEED, "127.0.0.1:0")
        .await
        .context("starting the simulator")?;
    let result = scenario(
        &sim.url(),
        sim.config_toml(
            Path::new("mappings"),
            &format!("propagation_window = \"{WINDOW_SECS}s\""),
        ),
    )
    .await;
    sim.stop().await;
    result?;
    println!("\nDone in {:.0} s. Run it against your own org: see README.md, \"Pointing it at Okta and Segment\".", started.elapsed().as_secs_f64());
    Ok(())
}

async fn scenario(sim_url: &str, config_text: String) -> anyhow::Result<()> {
    let env = std::collections::BTreeMap::new();
    let config = crate::config::load_str(&config_text, Path::new("scimwatch.toml"), &env)?;
    let known: Vec<String> = config.workspaces.iter().map(|w| w.name.clone()).collect();
    let files: Vec<(String, String)> = MAPPINGS
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    let mappings = crate::mapping::parse_files(&files, &known, Utc::now())?;
    let stats = RequestStats::new();
    let okta = Okta::new(&config.idp, RetryConfig::fast(), stats.clone())?;
    let clients: Vec<SegmentClient> = config
        .workspaces
        .iter()
        .map(|w| SegmentClient::new(w, RetryConfig::fast(), stats.clone()))
        .collect();
    let mut d = Demo {
        sim_url: sim_url.to_string(),
        http: reqwest::Client::new(),
        config,
        mappings,
        okta,
        clients,
        stats,
        last: vec![],
        checks: 0,
    };

    println!("scimwatch demo: Acme has 40 people in Okta and 6 groups pushed into two Segment workspaces");
    println!("(production, staging). scimwatch compares three things on every check: who Okta says is in");
    println!(
        "each group, what mappings/*.toml says each group may do, and what Segment actually holds."
    );
    println!(
        "Everything runs against a local simulator at {sim_url}; SCIM pushes take {} s and the",
        PUSH_DELAY.as_secs()
    );
    println!("propagation window is {WINDOW_SECS} s (in production it is an hour).");

    let problems = cli::validate_loaded(&d.config, &d.mappings, &d.okta, &d.clients).await?;
    if !problems.is_empty() {
        bail!(
            "the demo's mappings do not validate: {}",
            problems.join("; ")
        );
    }

    d.step(
        1,
        "A clean baseline",
        "Segment matches Okta and the mappings.",
    )
    .await?;
    d.check().await?;

    d.step(
        2,
        "An Okta admin adds Olivia Chen to \"Segment Prod Owners\"",
        "Okta logs the change and pushes it over SCIM a few seconds later.",
    )
    .await?;
    d.sim_post(
        "/_sim/okta/groups/Segment Prod Owners/members",
        json!({"login": "olivia.chen@acme.test"}),
    )
    .await?;
    d.check().await?;
    d.wait(PUSH_DELAY + Duration::from_secs(1), "for the push")
        .await;
    d.check().await?;

    d.step(
        3,
        "The SCIM integration breaks, then Grace Liu leaves the analytics team",
        "Okta logs the removal, but the push never reaches Segment.",
    )
    .await?;
    d.sim_post("/_sim/push", json!({"mode": "failing"})).await?;
    d.sim_delete("/_sim/okta/groups/Segment Analytics Engineers/members/grace.liu@acme.test")
        .await?;
    d.check().await?;
    d.wait(
        Duration::from_secs(WINDOW_SECS + 1),
        "past the propagation window",
    )
    .await;
    d.check().await?;

    d.step(
        4,
        "Ana (a Workspace Owner) makes Omar Khan a Workspace Owner directly in the Segment app",
        "No IdP change explains it, so it is drift at once, attributed from Segment's audit trail.",
    )
    .await?;
    let ws = d.segment_get("production", "/", "ui-ana-token").await?;
    let ws_id = ws["data"]["workspace"]["id"]
        .as_str()
        .context("workspace id")?
        .to_string();
    let omar = d
        .segment_user_id("production", "omar.khan@acme.test")
        .await?;
    d.segment_send(
        "production",
        reqwest::Method::POST,
        &format!("/users/{omar}/permissions"),
        "ui-ana-token",
        json!({"permissions": [{"roleId": crate::model::WORKSPACE_OWNER_ROLE_ID, "resources": [{"id": ws_id, "type": "WORKSPACE"}]}]}),
    )
    .await?;
    d.check().await?;

    d.step(5, "Ana adds Maria Garcia to the pushed group \"Segment Prod Owners\" in the Segment app", "A manual membership change on a group Okta pushes: Okta will overwrite it, but only on its next push of that group.").await?;
    let owners = d
        .segment_group_id("production", "Segment Prod Owners")
        .await?;
    d.segment_send(
        "production",
        reqwest::Method::POST,
        &format!("/groups/{owners}/users"),
        "ui-ana-token",
        json!({"emails": ["maria.garcia@acme.test"]}),
    )
    .await?;
    d.check().await?;

    d.step(
        6,
        "SCIM is repaired; an Okta admin deactivates Dan Leaver, who has left",
        "Deactivation is carried by SCIM: pending until the push removes him.",
    )
    .await?;
    d.sim_post("/_sim/push", json!({"mode": "normal"})).await?;
    d.sim_post(
        "/_sim/okta/users/dan.leaver@acme.test/status",
        json!({"status": "DEPROVISIONED"}),
    )
    .await?;
    d.check().await?;
    d.wait(PUSH_DELAY + Duration::from_secs(1), "for the push")
        .await;
    d.check().await?;

    let by_service = d.stats.by_service();
    let total: u64 = by_service.values().sum();
    let parts: Vec<String> = by_service.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!(
        "\n{} checks made {total} API requests ({}).",
        d.checks,
        parts.join(", ")
    );
    println!(
        "Still open: the stalled removal (step 3), the direct Owner grant (step 4) and the manual"
    );
    println!("membership (step 5). `scimwatch check` exits 1 while drift like this exists, 0 when clean,");
    println!("and 2 (printing nothing) when it cannot read everything: it never reports on partial data.");
    Ok(())
}

impl Demo {
    async fn step(&self, n: u32, title: &str, what: &str) -> anyhow::Result<()> {
        println!("\n── Step {n}. {title}");
        println!("   {what}");
        Ok(())
    }

    async fn wait(&self, d: Duration, why: &str) {
        println!("   … waiting {} s {why}", d.as_secs());
        tokio::time::sleep(d).await;
    }

    async fn check(&mut self) -> anyhow::Result<()> {
        let settings = cli::settings(&self.config)?;
        let selected: Vec<_> = self
            .config
            .workspaces
            .iter()
            .zip(self.clients.iter())
            .collect();
        let report =
            pass::run(&self.okta, &selected, &self.mappings, &settings, Utc::now()).await?;
        self.checks += 1;
        self.narrate(&report);
        self.last = report.findings;
        Ok(())
    }

    fn narrate(&self, report: &Report) {
        let s = report.summary();
        println!(
            "   check → exit {}: {} drift, {} pending",
            report.exit_code(),
            s.drift,
            s.pending
        );
        let mut changed = false;
        for f in &report.findings {
            let before = self.last.iter().find(|o| o.id == f.id);
            let tag = match before {
                None => "new",
                Some(o) if o.state != f.state && f.state == State::Drift => "now drift",
                Some(o) if o.state != f.state || o.severity != f.severity => "changed",
                Some(_) => continue,
            };
            changed = true;
            println!(
                "   {tag:<9} {} {} {} · {}",
                f.severity.as_str(),
                f.state.as_str(),
                f.kind,
                f.subject()
            );
            for line in wrap(&f.message, 88) {
                println!("             {line}");
            }
            if let Some(a) = &f.attribution {
                println!(
                    "             attribution: {} ({}), reverted by SCIM: {}",
                    a.kind.as_str(),
                    a.actor_email.as_deref().unwrap_or(&a.actor),
                    opt(f.reverted_by_scim)
                );
            } else if f.reverted_by_scim == Some(true) {
                println!("             reverted by SCIM: yes");
            }
        }
        for o in &self.last {
            if !report.findings.iter().any(|f| f.id == o.id) {
                changed = true;
                println!("   resolved  {} · {}", o.kind, o.subject());
            }
        }
        if !changed {
            println!("   (no change)");
        }
    }

    async fn sim_post(&self, path: &str, body: Value) -> anyhow::Result<()> {
        let url = format!("{}{}", self.sim_url, encode_path(path));
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
        let url = format!("{}{}", self.sim_url, encode_path(path));
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

    async fn segment_get(&self, ws: &str, path: &str, token: &str) -> anyhow::Result<Value> {
        let url = format!("{}/segment/{ws}{path}", self.sim_url);
        let r = self.http.get(&url).bearer_auth(token).send().await?;
        if !r.status().is_success() {
            bail!("GET {path}: {}", r.status());
        }
        Ok(r.json().await?)
    }

    async fn segment_send(
        &self,
        ws: &str,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> anyhow::Result<()> {
        let url = format!("{}/segment/{ws}{path}", self.sim_url);
        let r = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(token)
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
        let v = self
            .segment_get(ws, "/users?pagination.count=1000", "ui-ana-token")
            .await?;
        v["data"]["users"]
            .as_array()
            .and_then(|us| us.iter().find(|u| u["email"].as_str() == Some(email)))
            .and_then(|u| u["id"].as_str())
            .map(str::to_string)
            .with_context(|| format!("no Segment user {email}"))
    }

    async fn segment_group_id(&self, ws: &str, name: &str) -> anyhow::Result<String> {
        let v = self
            .segment_get(ws, "/groups?pagination.count=1000", "ui-ana-token")
            .await?;
        v["data"]["userGroups"]
            .as_array()
            .and_then(|gs| gs.iter().find(|g| g["name"].as_str() == Some(name)))
            .and_then(|g| g["id"].as_str())
            .map(str::to_string)
            .with_context(|| format!("no Segment group {name}"))
    }
}

fn opt(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "n/a",
    }
}

fn encode_path(p: &str) -> String {
    p.replace(' ', "%20")
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
