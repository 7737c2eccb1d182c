//! `plan` and `apply` against the simulator: the readable diff (snapshot), apply making
//! `check` clean and a second apply doing nothing, unresolved mappings left out, the last
//! Owner guard, expired exceptions reverted only with `revert_expired`, a failing write
//! stopping the rest of its workspace, and SCIM's membership never touched.

use std::path::{Path, PathBuf};

use chrono::Utc;
use scimwatch::enforce::{self, apply, Options, WorkspacePlan};
use scimwatch::http::{RequestStats, RetryConfig};
use scimwatch::idp::okta::Okta;
use scimwatch::segment::SegmentClient;
use scimwatch_sim::{self as sim, SimHandle};
use serde_json::{json, Value};

const SEED: &str = include_str!("../../deploy/demo-seed.toml");
const OWNER: &str = "1WDUuRLxv84rrfCNUwvkrRtkxnS";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct World {
    sim: SimHandle,
    _dir: tempfile::TempDir,
    config_path: PathBuf,
    mappings: PathBuf,
    http: reqwest::Client,
}

/// The demo company; `production` maps what `edit` makes of mappings/production.toml.
async fn world(edit: impl Fn(String) -> String, enforce_section: &str) -> World {
    let sim = sim::start(SEED, "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mappings = dir.path().join("mappings");
    std::fs::create_dir_all(&mappings).unwrap();
    let prod = std::fs::read_to_string(repo().join("mappings/production.toml")).unwrap();
    std::fs::write(mappings.join("production.toml"), edit(prod)).unwrap();
    std::fs::copy(
        repo().join("mappings/staging.toml"),
        mappings.join("staging.toml"),
    )
    .unwrap();
    let mut text = sim.config_toml(&mappings, "");
    text.push_str(enforce_section);
    let config_path = dir.path().join("scimwatch.toml");
    std::fs::write(&config_path, text).unwrap();
    World {
        sim,
        _dir: dir,
        config_path,
        mappings,
        http: reqwest::Client::new(),
    }
}

impl World {
    async fn segment(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/segment/production{path}", self.sim.url());
        let mut req = self.http.request(method, &url).bearer_auth("ui-ana-token");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn ws_id(&self) -> String {
        self.segment(reqwest::Method::GET, "/", None).await["data"]["workspace"]["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The id of the item of `list` (at `path`) whose `field` is `value`.
    async fn id_of(&self, path: &str, list: &str, field: &str, value: &str) -> String {
        let v = self.segment(reqwest::Method::GET, path, None).await;
        v["data"][list]
            .as_array()
            .and_then(|a| a.iter().find(|x| x[field] == value))
            .and_then(|x| x["id"].as_str())
            .unwrap_or_else(|| panic!("no {list} item with {field} = {value}"))
            .to_string()
    }

    async fn group_id(&self, name: &str) -> String {
        self.id_of("/groups?pagination.count=100", "userGroups", "name", name)
            .await
    }

    async fn user_id(&self, email: &str) -> String {
        self.id_of("/users?pagination.count=1000", "users", "email", email)
            .await
    }

    async fn role_id(&self, name: &str) -> String {
        self.id_of("/roles?pagination.count=200", "roles", "name", name)
            .await
    }

    /// Adds `role` on the whole workspace to a group, by hand in the app.
    async fn add_to_group(&self, group: &str, role_id: &str) {
        let (g, ws) = (self.group_id(group).await, self.ws_id().await);
        self.segment(
            reqwest::Method::POST,
            &format!("/groups/{g}/permissions"),
            Some(json!({"permissions": [{"roleId": role_id, "resources": [{"id": ws, "type": "WORKSPACE"}]}]})),
        )
        .await;
    }

    async fn group_permissions(&self, group: &str) -> Value {
        let g = self.group_id(group).await;
        self.segment(reqwest::Method::GET, &format!("/groups/{g}"), None)
            .await["data"]["userGroup"]["permissions"]
            .clone()
    }

    async fn group_members(&self, group: &str) -> Vec<String> {
        let g = self.group_id(group).await;
        let v = self
            .segment(
                reqwest::Method::GET,
                &format!("/groups/{g}/users?pagination.count=100"),
                None,
            )
            .await;
        let mut m: Vec<String> = v["data"]["users"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|u| u["email"].as_str().unwrap_or("").to_string())
            .collect();
        m.sort();
        m
    }

    /// Plans through the library, with quick retries.
    async fn plans(&self, opts: Options) -> (Vec<WorkspacePlan>, Vec<SegmentClient>) {
        let config = scimwatch::config::load(Some(&self.config_path)).unwrap();
        let known: Vec<String> = config.workspaces.iter().map(|w| w.name.clone()).collect();
        let mappings = scimwatch::mapping::load_dir(
            &config.mappings.dir,
            &config.base_dir,
            &known,
            Utc::now(),
        )
        .unwrap();
        let stats = RequestStats::new();
        let okta = Okta::new(&config.idp, RetryConfig::fast(), stats.clone()).unwrap();
        let clients: Vec<SegmentClient> = config
            .workspaces
            .iter()
            .map(|w| SegmentClient::new(w, RetryConfig::fast(), stats.clone()))
            .collect();
        let selected: Vec<_> = config.workspaces.iter().zip(clients.iter()).collect();
        let settings = scimwatch::reconcile::Settings::from_config(&config).unwrap();
        let plans = apply::plan_all(&okta, &selected, &mappings, &settings, opts, Utc::now())
            .await
            .unwrap();
        (plans, clients)
    }

    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let path = self.config_path.clone();
        let out = tokio::task::spawn_blocking(move || World::bin_at(&path, &args))
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    fn bin_at(path: &Path, args: &[String]) -> std::process::Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"));
        cmd.arg("--config").arg(path).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("SCIMWATCH") {
                cmd.env_remove(k);
            }
        }
        cmd.stdin(std::process::Stdio::null()).output().unwrap()
    }
}

fn opts() -> Options {
    Options {
        max_changes: 10,
        revert_expired: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_prints_a_readable_diff_and_apply_makes_check_clean_once() {
    // A typo in one mapping: its group must be left out, never stripped.
    let w = world(
        |p| p.replace(
            "idp_group = \"Segment Support\"\n\n  [[group.grant]]\n  role = \"Source Read-only\"\n  labels = { environment = \"prod\" }",
            "idp_group = \"Segment Support\"\n\n  [[group.grant]]\n  role = \"Source Read-only\"\n  sources = [\"web-prodd\"]",
        ),
        "",
    )
    .await;
    let source_admin = w.role_id("Source Admin").await;
    w.add_to_group("Segment Marketing", OWNER).await;
    w.add_to_group("Segment Analytics Engineers", &source_admin)
        .await;
    w.add_to_group("Segment Support", OWNER).await;
    let (code, stdout, stderr) = w.run(&["plan"]).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    let text = stdout.replace(&w.mappings.display().to_string(), "<mappings>");
    insta::assert_snapshot!(text);
    let (code, json_out, _) = w.run(&["plan", "--output", "json"]).await;
    assert_eq!(code, 1);
    let doc: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(doc["changes"], 2);
    assert_eq!(
        doc["workspaces"][0]["skipped"][0]["group"],
        "Segment Support"
    );

    // No terminal and no --yes: nothing is written.
    let (code, _, stderr) = w.run(&["apply"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(w
        .group_permissions("Segment Marketing")
        .await
        .to_string()
        .contains(OWNER));

    let members_before = w.group_members("Segment Marketing").await;
    let (code, stdout, stderr) = w.run(&["apply", "--yes"]).await;
    assert_eq!(
        code, 0,
        "everything planned was applied (a left-out group is not planned):\n{stdout}{stderr}"
    );
    assert!(
        stdout.contains("workspace production: 2 applied, 0 failed"),
        "{stdout}"
    );
    assert!(!w
        .group_permissions("Segment Marketing")
        .await
        .to_string()
        .contains(OWNER));
    assert!(
        w.group_permissions("Segment Support")
            .await
            .to_string()
            .contains(OWNER),
        "a group whose mapping does not resolve is never touched"
    );
    assert_eq!(
        w.group_members("Segment Marketing").await,
        members_before,
        "membership is SCIM's"
    );

    // A second apply does nothing.
    let (code, stdout, _) = w.run(&["apply", "--yes"]).await;
    assert!(stdout.contains("Nothing to apply."), "{stdout}");
    assert_eq!(code, 0);
    let (plans, _) = w.plans(opts()).await;
    assert!(plans.iter().all(|p| p.is_empty()));
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_makes_check_exit_zero_and_never_undoes_a_scim_push() {
    let w = world(|p| p, "").await;
    w.add_to_group("Segment Marketing", OWNER).await;
    let (code, _, _) = w.run(&["check"]).await;
    assert_eq!(code, 1);
    // Okta adds someone to the group while apply runs; SCIM pushes it meanwhile.
    let r = w
        .http
        .post(format!(
            "{}/_sim/okta/groups/Segment%20Marketing/members",
            w.sim.url()
        ))
        .json(&json!({"login": "olivia.chen@acme.test"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (code, stdout, stderr) = w.run(&["apply", "--yes"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("workspace production: now matches the mappings"),
        "{stdout}"
    );
    let start = std::time::Instant::now();
    while !w
        .group_members("Segment Marketing")
        .await
        .contains(&"olivia.chen@acme.test".to_string())
    {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the push never landed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (code, stdout, _) = w.run(&["check"]).await;
    assert_eq!(
        code, 0,
        "SCIM's membership stands and the grants match:\n{stdout}"
    );
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_workspace_owner_is_never_removed() {
    // The mapping says the owners' group should only read: applying it would leave
    // production without any Workspace Owner.
    let w = world(
        |p| {
            p.replacen(
                "  [[group.grant]]\n  role = \"Workspace Owner\"",
                "  [[group.grant]]\n  role = \"Source Read-only\"\n  sources = [\"web-prod\"]",
                1,
            )
        },
        "",
    )
    .await;
    let (plans, clients) = w.plans(opts()).await;
    let prod = &plans[0];
    let owners = prod
        .changes
        .iter()
        .find(|c| c.name == "Segment Prod Owners")
        .expect("a change for the owners' group");
    assert!(
        owners
            .held
            .as_deref()
            .unwrap_or("")
            .contains("without any Workspace Owner"),
        "{owners:?}"
    );
    assert_eq!(prod.size, 0, "held changes count for nothing");
    let applied = apply::apply_workspace(&clients[0], prod).await;
    assert_eq!(applied.count("held"), 1);
    assert!(w
        .group_permissions("Segment Prod Owners")
        .await
        .to_string()
        .contains(OWNER));
    let (code, stdout, _) = w.run(&["apply", "--yes"]).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("(held: it would leave the workspace without any Workspace Owner"),
        "{stdout}"
    );

    // With someone else holding Owner directly, the same change goes through.
    let omar = w.user_id("omar.khan@acme.test").await;
    let ws = w.ws_id().await;
    w.segment(
        reqwest::Method::POST,
        &format!("/users/{omar}/permissions"),
        Some(json!({"permissions": [{"roleId": OWNER, "resources": [{"id": ws, "type": "WORKSPACE"}]}]})),
    )
    .await;
    let (plans, _) = w.plans(opts()).await;
    assert!(plans[0].changes.iter().all(|c| c.held.is_none()));
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_exception_is_reverted_only_with_revert_expired() {
    let exception = r#"
[[exception]]
user = "omar.khan@acme.test"
grants = [ { role = "Source Admin", sources = ["web-prod"] } ]
expires = "2026-01-01T00:00:00Z"
ticket = "SEC-77"
approved_by = "ciso@acme.test"
reason = "launch week"
"#;
    let w = world(|p| format!("{p}\n{exception}"), "").await;
    let omar = w.user_id("omar.khan@acme.test").await;
    let source_admin = w.role_id("Source Admin").await;
    let sources = w
        .segment(reqwest::Method::GET, "/sources?pagination.count=100", None)
        .await;
    let web_prod = sources["data"]["sources"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["slug"] == "web-prod"))
        .map(|s| s["id"].as_str().unwrap_or("").to_string())
        .unwrap_or_default();
    assert!(!web_prod.is_empty(), "{sources:#}");
    w.segment(
        reqwest::Method::POST,
        &format!("/users/{omar}/permissions"),
        Some(json!({"permissions": [{"roleId": source_admin, "resources": [{"id": web_prod, "type": "SOURCE"}]}]})),
    )
    .await;
    let (plans, _) = w.plans(opts()).await;
    assert!(
        plans[0].is_empty(),
        "without revert_expired nothing: {:?}",
        plans[0]
    );
    let (plans, clients) = w
        .plans(Options {
            max_changes: 10,
            revert_expired: true,
        })
        .await;
    let c = &plans[0].changes[0];
    assert_eq!((c.target, c.name.as_str()), ("user", "omar.khan@acme.test"));
    assert!(c.remove[0].starts_with("Source Admin on source"), "{c:?}");
    assert!(c.source.contains("SEC-77"), "{c:?}");
    let applied = apply::apply_workspace(&clients[0], &plans[0]).await;
    assert!(applied.all_applied(), "{applied:?}");
    let user = w
        .segment(reqwest::Method::GET, &format!("/users/{omar}"), None)
        .await;
    assert!(!user.to_string().contains(&source_admin), "{user:#}");
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_stops_the_rest_of_its_workspace_and_says_what_was_applied() {
    let w = world(|p| p, "").await;
    let source_admin = w.role_id("Source Admin").await;
    w.add_to_group("Segment Prod Owners", &source_admin).await;
    w.add_to_group("Segment Analytics Engineers", OWNER).await;
    w.add_to_group("Segment Marketing", OWNER).await;
    let analytics = w.group_id("Segment Analytics Engineers").await;
    let r = w
        .http
        .post(format!("{}/_sim/faults", w.sim.url()))
        .json(&json!({"service": "segment", "workspace": "production", "method": "PUT", "path": format!("/groups/{analytics}/permissions"), "status": 500}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (plans, clients) = w.plans(opts()).await;
    let names: Vec<&str> = plans[0].changes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Segment Prod Owners",
            "Segment Analytics Engineers",
            "Segment Marketing"
        ]
    );
    let applied = apply::apply_workspace(&clients[0], &plans[0]).await;
    let results: Vec<&str> = applied.changes.iter().map(|c| c.result).collect();
    assert_eq!(results, ["applied", "failed", "not attempted"]);
    assert!(
        applied.changes[1]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("500"),
        "{applied:?}"
    );
    let text = apply::render_applied(&[applied]);
    assert!(
        text.contains("1 applied, 1 failed, 1 not attempted"),
        "{text}"
    );
    // What was written stays; what was not is untouched.
    assert!(!w
        .group_permissions("Segment Prod Owners")
        .await
        .to_string()
        .contains(&source_admin));
    assert!(w
        .group_permissions("Segment Marketing")
        .await
        .to_string()
        .contains(OWNER));
    w.sim.stop().await;
}

#[test]
fn the_limit_is_reported_in_the_plan_text() {
    let plan = WorkspacePlan {
        workspace: "production".into(),
        changes: vec![],
        skipped: vec![],
        size: 12,
        max_changes: 10,
    };
    assert!(plan.over_limit());
    let text = enforce::render_text(&[plan], true);
    assert!(text.contains("over enforce.max_changes = 10"), "{text}");
}

// ---- The daemon with [enforce] ------------------------------------------------------

struct Daemon {
    d: std::sync::Arc<scimwatch::daemon::Daemon>,
    cancel: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl World {
    /// The daemon on this world's config plus `extra` (alerts to the sim's PagerDuty).
    async fn daemon(&self, extra: &str) -> Daemon {
        let mut text = std::fs::read_to_string(&self.config_path).unwrap();
        text.push_str(&format!(
            "\n[store]\npath = \"{}\"\n[sync]\ninterval = \"1h\"\n[triggers]\nsystem_log_poll = \"0s\"\naudit_poll = \"0s\"\n[server]\nlisten = \"127.0.0.1:0\"\n[alerts]\nretry_max_backoff = \"1s\"\n[[alerts.sink]]\nname = \"oncall\"\nkind = \"pagerduty\"\nrouting_key = \"R0123456789abcdef0123456789abcde\"\nurl = \"{}/pagerduty/v2/enqueue\"\n[[alerts.route]]\nsinks = [\"oncall\"]\n{extra}",
            self._dir.path().join("scimwatch.db").display(),
            self.sim.url()
        ));
        let config =
            scimwatch::config::load_str(&text, &self.config_path, &Default::default()).unwrap();
        let known: Vec<String> = config.workspaces.iter().map(|w| w.name.clone()).collect();
        let mappings = scimwatch::mapping::load_dir(
            &config.mappings.dir,
            &config.base_dir,
            &known,
            Utc::now(),
        )
        .unwrap();
        let d = std::sync::Arc::new(
            scimwatch::daemon::Daemon::build(config, mappings, RetryConfig::fast())
                .await
                .unwrap(),
        );
        let cancel = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(d.clone().run(cancel.clone()));
        Daemon { d, cancel, task }
    }

    async fn pagerduty(&self) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/_sim/sinks", self.sim.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["pagerduty"].as_array().cloned().unwrap_or_default()
    }
}

impl Daemon {
    async fn pass(&self) {
        self.d
            .activate([scimwatch::triggers::Reason::Periodic].into())
            .await;
    }
    async fn drained(&self) {
        let start = std::time::Instant::now();
        while self
            .d
            .store
            .outbox_depth()
            .await
            .unwrap()
            .iter()
            .any(|d| d.pending > 0)
        {
            assert!(start.elapsed() < std::time::Duration::from_secs(10));
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    fn open(&self) -> Vec<Value> {
        let doc: Value =
            serde_json::from_str(&self.d.server.findings.read().unwrap().clone().unwrap()).unwrap();
        doc["findings"].as_array().cloned().unwrap_or_default()
    }
    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_apply_mode_fixed_drift_below_critical_never_pages_and_a_critical_one_pages_then_resolves(
) {
    let w = world(|p| p, "\n[enforce]\nmode = \"apply\"\n").await;
    let d = w.daemon("").await;
    d.pass().await;
    d.drained().await;
    assert!(w.pagerduty().await.is_empty());

    // Below critical: Source Admin on the whole workspace to the analytics group.
    let source_admin = w.role_id("Source Admin").await;
    w.add_to_group("Segment Analytics Engineers", &source_admin)
        .await;
    d.pass().await;
    d.drained().await;
    assert!(
        w.pagerduty().await.is_empty(),
        "fixed in the same pass: no page"
    );
    assert!(!w
        .group_permissions("Segment Analytics Engineers")
        .await
        .to_string()
        .contains(&format!(
            "\"{source_admin}\",\"roleName\":\"Source Admin\",\"resources\":[{{\"id\":\"{}\"",
            w.ws_id().await
        )));
    assert!(d
        .open()
        .iter()
        .all(|f| f["kind"] != "group_permissions_drift"));
    let changes =
        d.d.store
            .changes_since(Utc::now() - chrono::Duration::hours(1))
            .await
            .unwrap();
    let c = changes
        .iter()
        .find(|c| c.user == "group Segment Analytics Engineers")
        .expect("the correction is in the change log");
    assert_eq!(c.actor.as_deref(), Some("scimwatch"));
    assert_eq!(
        c.ticket.as_deref(),
        Some("SEC-1202"),
        "the mapping's ticket: {c:?}"
    );
    assert!(c.after.contains("mappings/production.toml:15"), "{c:?}");
    assert_eq!(
        changes
            .iter()
            .filter(|c| c.workspace == "production")
            .count(),
        1,
        "logged once: {changes:?}"
    );

    // Critical: Workspace Owner to the marketing group. Reverted, paged, resolved.
    w.add_to_group("Segment Marketing", OWNER).await;
    d.pass().await;
    d.drained().await;
    let pd = w.pagerduty().await;
    assert_eq!(pd.len(), 2, "{pd:#?}");
    assert_eq!(pd[0]["event_action"], "trigger");
    assert_eq!(pd[0]["payload"]["severity"], "critical");
    assert!(
        pd[0]["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("Reverted by scimwatch at"),
        "{:#}",
        pd[0]
    );
    assert_eq!(pd[1]["event_action"], "resolve");
    assert_eq!(pd[1]["dedup_key"], pd[0]["dedup_key"]);
    assert!(!w
        .group_permissions("Segment Marketing")
        .await
        .to_string()
        .contains(OWNER));
    let status = d.d.server.status_doc();
    assert_eq!(status["enforce"]["mode"], "apply", "{status:#}");
    d.stop().await;
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_over_the_limit_is_not_applied_and_raises_enforce_blocked() {
    let w = world(|p| p, "\n[enforce]\nmode = \"apply\"\nmax_changes = 1\n").await;
    let d = w.daemon("").await;
    d.pass().await;
    w.add_to_group("Segment Marketing", OWNER).await;
    w.add_to_group("Segment Support", OWNER).await;
    d.pass().await;
    d.drained().await;
    assert!(
        w.group_permissions("Segment Marketing")
            .await
            .to_string()
            .contains(OWNER),
        "nothing applied"
    );
    let open = d.open();
    let blocked = open
        .iter()
        .find(|f| f["kind"] == "enforce_blocked")
        .expect("enforce_blocked");
    assert_eq!(blocked["severity"], "error");
    assert_eq!(blocked["workspace"], "production");
    assert!(
        blocked["reason"]
            .as_str()
            .unwrap()
            .contains("more than enforce.max_changes = 1"),
        "{blocked:#}"
    );
    assert_eq!(blocked["plan"]["changes"], 2, "{blocked:#}");
    let pd = w.pagerduty().await;
    assert!(
        pd.iter()
            .any(|e| e["payload"]["class"] == "enforce_blocked"),
        "{pd:#?}"
    );
    assert_eq!(
        pd.iter()
            .filter(|e| e["payload"]["class"] == "group_permissions_drift")
            .count(),
        2,
        "the drift it did not fix pages normally"
    );
    // A person applies it; the next pass resolves the block.
    let (code, stdout, _) = w.run(&["apply", "--yes"]).await;
    assert_eq!(code, 0, "{stdout}");
    d.pass().await;
    assert!(d.open().iter().all(|f| f["kind"] != "enforce_blocked"));
    d.stop().await;
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_plan_mode_the_plan_is_on_status_and_in_metrics_and_nothing_is_written() {
    let w = world(|p| p, "\n[enforce]\nmode = \"plan\"\n").await;
    let d = w.daemon("").await;
    w.add_to_group("Segment Marketing", OWNER).await;
    d.pass().await;
    let status = d.d.server.status_doc();
    assert_eq!(status["enforce"]["mode"], "plan");
    assert_eq!(status["enforce"]["plan"]["changes"], 1, "{status:#}");
    let m = d.d.metrics.render(&d.d.stats);
    assert!(
        m.contains(r#"scimwatch_enforce_plan_changes{workspace="production"} 1"#),
        "{m}"
    );
    assert!(w
        .group_permissions("Segment Marketing")
        .await
        .to_string()
        .contains(OWNER));
    d.stop().await;
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_apply_mode_a_failed_write_is_reported_and_its_drift_pages() {
    let w = world(|p| p, "\n[enforce]\nmode = \"apply\"\n").await;
    let d = w.daemon("").await;
    d.pass().await;
    let source_admin = w.role_id("Source Admin").await;
    w.add_to_group("Segment Analytics Engineers", &source_admin)
        .await;
    w.add_to_group("Segment Marketing", &source_admin).await;
    let analytics = w.group_id("Segment Analytics Engineers").await;
    let r = w
        .http
        .post(format!("{}/_sim/faults", w.sim.url()))
        .json(&json!({"service": "segment", "workspace": "production", "method": "PUT", "path": format!("/groups/{analytics}/permissions"), "status": 500}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    d.pass().await;
    d.drained().await;
    let status = d.d.server.status_doc();
    let results: Vec<String> = status["enforce"]["applied"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["name"].as_str().unwrap(),
                c["result"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            "Segment Analytics Engineers failed",
            "Segment Marketing not attempted"
        ],
        "{status:#}"
    );
    let pd = w.pagerduty().await;
    assert_eq!(
        pd.iter()
            .filter(|e| e["payload"]["class"] == "group_permissions_drift")
            .count(),
        2,
        "unfixed drift pages normally: {pd:#?}"
    );
    d.stop().await;
    w.sim.stop().await;
}

/// Answering "n" to `apply`'s question on a terminal prints "Nothing applied." and exits 0
/// (declining is not a failure), and nothing is written. The terminal is a pseudo-terminal
/// made by util-linux `script` (part of Debian's base system); where it is missing the
/// test says so loudly and skips, unless `CI` is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declining_apply_on_a_terminal_exits_0_and_writes_nothing() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        let msg = "util-linux `script` is not installed, so no terminal can be made";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}; CI is set, so this fails instead of skipping");
        }
        eprintln!("\n!!!!!!!! SKIPPED the apply confirmation test: {msg}. !!!!!!!!\n");
        return;
    }
    let w = world(|p| p, "").await;
    w.add_to_group("Segment Marketing", OWNER).await;
    let line = format!(
        "{} --config {} apply",
        env!("CARGO_BIN_EXE_scimwatch"),
        w.config_path.display()
    );
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = std::process::Command::new("script")
            .args(["-q", "-e", "-c", &line, "/dev/null"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Typed ahead: the terminal keeps it until `apply` asks.
        child.stdin.take().unwrap().write_all(b"n\n").unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("to Segment? [y/N]"), "{text}");
    assert!(text.contains("Nothing applied."), "{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(w
        .group_permissions("Segment Marketing")
        .await
        .to_string()
        .contains(OWNER));
    w.sim.stop().await;
}
