//! Access governance end to end against the simulator: exceptions as temporary elevation,
//! account hygiene, consistency across workspaces (a seeded scenario whose answers are
//! known), `scimwatch explain` through the binary, and the config errors of the new keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use scimwatch::http::{RequestStats, RetryConfig};
use scimwatch::idp::okta::Okta;
use scimwatch::output;
use scimwatch::segment::SegmentClient;
use scimwatch_sim::{self as sim, SimHandle};
use serde_json::{json, Value};

const SEED: &str = include_str!("../../deploy/demo-seed.toml");
const PROD_MAPPING: &str = include_str!("../../mappings/production.toml");
const STAGING_MAPPING: &str = include_str!("../../mappings/staging.toml");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The demo company plus one personal account in production.
fn seed() -> String {
    SEED.replace(
        "[[segment.workspace.user]]          # the integration account, allow-listed in mappings/\nemail = \"svc-segment@acme.test\"\n",
        "[[segment.workspace.user]]          # the integration account, allow-listed in mappings/\nemail = \"svc-segment@acme.test\"\n\n[[segment.workspace.user]]\nemail = \"jo@gmail.test\"\n",
    )
}

fn justify(text: &str, idp_group: &str, why: &str) -> String {
    let line = format!("idp_group = \"{idp_group}\"\n");
    assert!(text.contains(&line), "{idp_group} is in the demo mappings");
    text.replace(&line, &format!("{line}justification = \"{why}\"\n"))
}

/// The demo mappings with: Support justified in both workspaces and Staging Engineers in
/// staging (so only the Analytics Engineers' production grants differ unexplained), a
/// production max_owners of 1, an exception about to expire (nina) and one expired (omar).
fn write_mappings(dir: &Path) {
    let now = Utc::now();
    let t = |d: Duration| (now + d).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut prod = justify(
        PROD_MAPPING,
        "Segment Support",
        "Support reads production data",
    );
    prod = prod.replace(
        "unmanaged_users = \"alert\"\n",
        "unmanaged_users = \"alert\"\nmax_owners = 1\n",
    );
    prod.push_str(&format!(
        r#"
[[exception]]
user = "nina.berg@acme.test"
grants = [{{ role = "Source Admin" }}]
expires = "{}"
ticket = "CHG-7"
approved_by = "ciso@acme.test"
reason = "Launch week"

[[exception]]
user = "omar.khan@acme.test"
grants = [{{ role = "Workspace Owner" }}]
expires = "{}"
ticket = "CHG-8"
approved_by = "ciso@acme.test"
reason = "Migration"
"#,
        t(Duration::days(1)),
        t(-Duration::hours(1)),
    ));
    let mut staging = justify(
        STAGING_MAPPING,
        "Segment Support",
        "Support reads all of staging",
    );
    staging = justify(
        &staging,
        "Segment Staging Engineers",
        "Engineers own staging's sources",
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("production.toml"), prod).unwrap();
    std::fs::write(dir.join("staging.toml"), staging).unwrap();
}

const POLICY: &str = "\n[policy]\ncorporate_domains = [\"acme.test\"]\nmax_owners = 3\nconsistent = [[\"production\", \"staging\"]]\n";

struct World {
    sim: SimHandle,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    http: reqwest::Client,
}

async fn world() -> World {
    let sim = sim::start(&seed(), "127.0.0.1:0")
        .await
        .expect("sim starts");
    let dir = tempfile::tempdir().unwrap();
    let mappings = dir.path().join("mappings");
    write_mappings(&mappings);
    let mut text = sim.config_toml(&mappings, "");
    text.push_str(POLICY);
    text.push_str(&format!(
        "\n[store]\npath = {:?}\n",
        dir.path().join("scimwatch.db").display().to_string()
    ));
    let config_path = dir.path().join("scimwatch.toml");
    std::fs::write(&config_path, text).unwrap();
    World {
        sim,
        dir,
        config_path,
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
        let r = req.send().await.expect("segment call");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.expect("json")
    }

    /// Grants `role` on the whole production workspace to `email`, directly, as ana.
    async fn grant_direct(&self, email: &str, role: &str) {
        let ws = self.segment(reqwest::Method::GET, "/", None).await;
        let ws_id = ws["data"]["workspace"]["id"].as_str().unwrap().to_string();
        let roles = self
            .segment(reqwest::Method::GET, "/roles?pagination.count=200", None)
            .await;
        let role_id = roles["data"]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == role)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let users = self
            .segment(reqwest::Method::GET, "/users?pagination.count=1000", None)
            .await;
        let user = users["data"]["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        self.segment(
            reqwest::Method::POST,
            &format!("/users/{user}/permissions"),
            Some(json!({"permissions": [{"roleId": role_id, "resources": [{"id": ws_id, "type": "WORKSPACE"}]}]})),
        )
        .await;
    }

    async fn check(&self) -> Value {
        let config = scimwatch::config::load(Some(&self.config_path)).expect("config loads");
        let known: Vec<String> = config.workspaces.iter().map(|w| w.name.clone()).collect();
        let mappings = scimwatch::mapping::load_dir(
            &config.mappings.dir,
            &config.base_dir,
            &known,
            Utc::now(),
        )
        .expect("mappings load");
        let stats = RequestStats::new();
        let okta = Okta::new(&config.idp, RetryConfig::fast(), stats.clone()).unwrap();
        let clients: Vec<SegmentClient> = config
            .workspaces
            .iter()
            .map(|w| SegmentClient::new(w, RetryConfig::fast(), stats.clone()))
            .collect();
        let selected: Vec<_> = config.workspaces.iter().zip(clients.iter()).collect();
        let settings = scimwatch::reconcile::Settings::from_config(&config).unwrap();
        let report = scimwatch::app::check(&okta, &selected, &mappings, &settings, Utc::now())
            .await
            .expect("pass succeeds");
        serde_json::from_str(&output::json(&report)).unwrap()
    }

    async fn explain(&self, args: &[&str]) -> std::process::Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"))
            .arg("--config")
            .arg(&self.config_path)
            .arg("explain")
            .args(args)
            .output()
            .await
            .unwrap()
    }
}

fn of_kind<'a>(doc: &'a Value, kind: &str) -> Vec<&'a Value> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect()
}

fn users(fs: &[&Value]) -> Vec<String> {
    let mut v: Vec<String> = fs
        .iter()
        .map(|f| f["user"].as_str().unwrap_or_default().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeded_governance_scenario_gives_the_known_answers() {
    let w = world().await;
    w.grant_direct("nina.berg@acme.test", "Source Admin").await;
    w.grant_direct("omar.khan@acme.test", "Workspace Owner")
        .await;
    let doc = w.check().await;

    let by_kind: BTreeMap<String, u64> = doc["summary"]["by_kind"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    let expected: BTreeMap<String, u64> = [
        ("exception_expiring", 1),
        ("exception_expired", 1),
        ("personal_account", 1),
        ("unmanaged_user", 1),
        ("too_many_owners", 2),
        ("workspace_inconsistent", 4),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect();
    assert_eq!(by_kind, expected, "{doc:#}");

    // The exception about to expire: a notice, not drift; its grant raises nothing.
    let f = of_kind(&doc, "exception_expiring")[0];
    assert_eq!(
        (
            f["state"].as_str(),
            f["severity"].as_str(),
            f["user"].as_str()
        ),
        (Some("pending"), Some("info"), Some("nina.berg@acme.test"))
    );
    assert!(f["deadline"].is_string());
    assert!(f["message"].as_str().unwrap().contains("CHG-7"));

    // The expired one: critical (Workspace Owner), and no direct_grant beside it.
    let f = of_kind(&doc, "exception_expired")[0];
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["user"], "omar.khan@acme.test");
    assert!(of_kind(&doc, "direct_grant").is_empty());

    assert_eq!(
        users(&of_kind(&doc, "personal_account")),
        vec!["jo@gmail.test"]
    );
    let owners = of_kind(&doc, "too_many_owners");
    let mut ws: Vec<&str> = owners
        .iter()
        .map(|f| f["workspace"].as_str().unwrap())
        .collect();
    ws.sort();
    assert_eq!(ws, vec!["production", "staging"]);
    let prod = owners
        .iter()
        .find(|f| f["workspace"] == "production")
        .unwrap();
    assert!(
        prod["message"]
            .as_str()
            .unwrap()
            .starts_with("production has 3 Workspace Owners, more than max_owners = 1"),
        "{prod}"
    );

    let inconsistent = of_kind(&doc, "workspace_inconsistent");
    assert_eq!(
        users(&inconsistent),
        vec![
            "carla.mendes@acme.test",
            "dev.patel@acme.test",
            "emma.jones@acme.test",
            "grace.liu@acme.test"
        ]
    );
    assert!(inconsistent.iter().all(|f| f["workspace"] == "production"
        && f["severity"] == "warning"
        && f["state"] == "drift"));
    let carla = inconsistent
        .iter()
        .find(|f| f["user"] == "carla.mendes@acme.test")
        .unwrap();
    assert!(
        carla["message"]
            .as_str()
            .unwrap()
            .contains("Source Admin on source web-prod in production but not in staging"),
        "{carla}"
    );
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_through_the_binary() {
    let w = world().await;
    w.grant_direct("omar.khan@acme.test", "Workspace Owner")
        .await;

    // Text, without a store: says so.
    let out = w.explain(&["Nina.Berg@acme.test"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "nina.berg@acme.test — as of ",
        "Okta: ACTIVE",
        "== production: member",
        "mappings/production.toml:",
        "Segment Marketing",
        "Source Read-only on source web-prod  (from group Segment Marketing, mappings/production.toml:",
        "CHG-7 [expiring] approved by ciso@acme.test: Launch week",
        "== staging: not a member",
        "Change log: no store at",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }

    // JSON, with a store holding changes about omar.
    let store_path = w.dir.path().join("scimwatch.db");
    let store = scimwatch::store::Store::open(&store_path).await.unwrap();
    let rec = |user: &str, after: &str| scimwatch::store::ChangeRecord {
        id: 0,
        at: Utc::now() - Duration::minutes(5),
        workspace: "production".into(),
        user: user.into(),
        before: "Segment Marketing: Source Read-only on source web-prod".into(),
        after: after.into(),
        actor: Some("user/u8Kd2ana".into()),
        attribution: Some("human".into()),
        idp_event: None,
        latency_ms: None,
        ..Default::default()
    };
    store
        .changes_append(
            &[
                rec(
                    "omar.khan@acme.test",
                    "direct: Workspace Owner on the whole workspace",
                ),
                rec("nina.berg@acme.test", "nothing"),
            ],
            None,
        )
        .await
        .unwrap();
    drop(store);
    let out = w
        .explain(&["omar.khan@acme.test", "--output", "json"])
        .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["email"], "omar.khan@acme.test");
    assert_eq!(doc["idp"]["status"], "ACTIVE");
    let prod = &doc["workspaces"][0];
    assert_eq!(prod["name"], "production");
    assert_eq!(prod["member"], true);
    assert_eq!(prod["idp_groups"][0]["group"], "Segment Marketing");
    let exc = &prod["exceptions"][0];
    assert_eq!(
        (
            exc["ticket"].as_str(),
            exc["status"].as_str(),
            exc["days_left"].as_i64()
        ),
        (Some("CHG-8"), Some("expired"), Some(-1))
    );
    let direct: Vec<&Value> = prod["held"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["via"] == "direct")
        .collect();
    assert_eq!(direct.len(), 1, "{prod:#}");
    assert_eq!(direct[0]["grant"]["role"], "Workspace Owner");
    assert!(direct[0]["source"].as_str().unwrap().contains("CHG-8"));
    let kinds: Vec<&str> = prod["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"exception_expired"), "{kinds:?}");
    assert_eq!(doc["changes"]["status"], "read");
    assert_eq!(doc["changes"]["total"], 1);
    assert_eq!(
        doc["changes"]["records"][0]["after"],
        "direct: Workspace Owner on the whole workspace"
    );

    // Nobody by that email: exit 1, one line on stderr, nothing on stdout.
    let out = w.explain(&["nobody@acme.test"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("scimwatch explain: nobody with the email nobody@acme.test"),
        "{stderr}"
    );

    // A read that fails: exit 2, nothing on stdout.
    let text = std::fs::read_to_string(&w.config_path)
        .unwrap()
        .replace("seg-staging-token", "wrong-token");
    std::fs::write(&w.config_path, text).unwrap();
    let out = w.explain(&["omar.khan@acme.test"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    w.sim.stop().await;
}

// ---- config errors of the new keys ------------------------------------------------------

fn config_err(policy: &str) -> String {
    let text = format!(
        "[idp]\nkind = \"okta\"\nurl = \"https://acme.okta.com\"\ntoken = \"t\"\n\n[[workspace]]\nname = \"production\"\ntoken = \"s\"\n\n[[workspace]]\nname = \"staging\"\ntoken = \"s\"\n\n[policy]\n{policy}"
    );
    match scimwatch::config::load_str(&text, &repo().join("scimwatch.toml"), &Default::default()) {
        Ok(_) => panic!("expected the config to be refused"),
        Err(scimwatch::config::ConfigError::Invalid(p)) => p.to_string(),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[test]
fn policy_keys_are_checked_with_file_line_key_and_did_you_mean() {
    let err = config_err("consistent = [[\"production\", \"stagin\"], [\"staging\"]]\n");
    assert!(
        err.contains("scimwatch.toml:15: policy.consistent[1]: \"stagin\" is not a configured [[workspace]] name; use one of: production, staging (did you mean `staging`?)"),
        "{err}"
    );
    assert!(
        err.contains("policy.consistent[2]: a consistency set needs at least two workspaces"),
        "{err}"
    );
    let err = config_err("consistent = [[\"staging\", \"staging\"]]\n");
    assert!(err.contains("\"staging\" is listed twice"), "{err}");
    let err = config_err("corporate_domains = []\n");
    assert!(
        err.contains("scimwatch.toml:15: policy.corporate_domains: is empty"),
        "{err}"
    );
    let err = config_err("corporate_domains = [\"jo@acme.com\", \"acme .com\"]\nmax_owners = -1\n");
    assert!(
        err.contains("\"jo@acme.com\" is not a domain name"),
        "{err}"
    );
    assert!(err.contains("\"acme .com\" is not a domain name"), "{err}");
    assert!(err.contains("policy.max_owners"), "{err}");
    let err = config_err("max_owner = 3\n");
    assert!(err.contains("did you mean `max_owners`"), "{err}");
}

#[test]
fn mapping_policy_may_set_hygiene_keys_but_not_consistent() {
    let ok = "workspace = \"production\"\n[policy]\ncorporate_domains = [\"@Acme.com\"]\nmax_owners = 2\nexpiry_notice = \"7d\"\n";
    let files = vec![("mappings/p.toml".to_string(), ok.to_string())];
    let set =
        scimwatch::mapping::parse_files(&files, &["production".to_string()], Utc::now()).unwrap();
    let (p, _) = set.workspaces["production"].policy.clone().unwrap();
    assert_eq!(p.corporate_domains, Some(vec!["acme.com".to_string()]));
    assert_eq!(p.max_owners, Some(2));
    assert_eq!(p.expiry_notice.map(|d| d.as_secs()), Some(7 * 86_400));
}

/// The daemon's full passes agree with `check` on `workspace_inconsistent`, and a pass
/// that cannot read one workspace of a set keeps the set's findings instead of
/// resolving them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_reports_inconsistency_and_keeps_it_while_a_workspace_of_the_set_is_down() {
    let w = world().await;
    let want: Vec<String> = {
        let doc = w.check().await;
        let mut ids: Vec<String> = of_kind(&doc, "workspace_inconsistent")
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(want.len(), 4);

    let config = scimwatch::config::load(Some(&w.config_path)).expect("config loads");
    let known: Vec<String> = config.workspaces.iter().map(|w| w.name.clone()).collect();
    let mappings =
        scimwatch::mapping::load_dir(&config.mappings.dir, &config.base_dir, &known, Utc::now())
            .expect("mappings load");
    let d = scimwatch::daemon::Daemon::build(config, mappings, RetryConfig::fast())
        .await
        .expect("daemon builds");
    let open = |d: &scimwatch::daemon::Daemon| {
        let doc: Value =
            serde_json::from_str(&d.server.findings.read().unwrap().clone().unwrap()).unwrap();
        let mut ids: Vec<String> = of_kind(&doc, "workspace_inconsistent")
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    d.activate([scimwatch::triggers::Reason::Periodic].into())
        .await;
    assert_eq!(open(&d), want);

    let r = w
        .http
        .post(format!("{}/_sim/faults", w.sim.url()))
        .json(&json!({"service": "segment", "workspace": "staging", "status": 500}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    d.activate([scimwatch::triggers::Reason::Periodic].into())
        .await;
    assert_eq!(open(&d), want, "staging down: the findings stay open");
    w.sim.stop().await;
}

// ---- the access review (`scimwatch report`) on the seeded scenario ----------------------

impl World {
    async fn report(&self, args: &[&str]) -> std::process::Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"))
            .arg("--config")
            .arg(&self.config_path)
            .arg("report")
            .args(args)
            .output()
            .await
            .unwrap()
    }

    /// Production changes with known latencies: 20 s, 40 s, 90 s, 5 min, 20 min (p50 the
    /// third, p95 the fifth), one without, and a staging one.
    async fn seed_changes(&self) {
        let store = scimwatch::store::Store::open(&self.dir.path().join("scimwatch.db"))
            .await
            .unwrap();
        let rec = |ws: &str, latency_s: Option<i64>| scimwatch::store::ChangeRecord {
            at: Utc::now() - Duration::minutes(5),
            workspace: ws.into(),
            user: "nina.berg@acme.test".into(),
            before: "groups: none; direct: none".into(),
            after: "groups: Segment Marketing; direct: none".into(),
            latency_ms: latency_s.map(|s| s * 1000),
            ..Default::default()
        };
        let key = scimwatch::store::ChainKey::new(&scimwatch::secret::Secret::new(
            "a chain key for the report test",
        ));
        store
            .changes_append(
                &[
                    rec("production", Some(300)),
                    rec("production", Some(20)),
                    rec("production", Some(1200)),
                    rec("production", Some(40)),
                    rec("production", Some(90)),
                    rec("production", None),
                    rec("staging", Some(7)),
                ],
                Some(&key),
            )
            .await
            .unwrap();
    }
}

fn csv_rows<'a>(csv: &'a str, section: &str, workspace: &str) -> Vec<Vec<&'a str>> {
    // Good enough for the fields this test reads (none of them is quoted).
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[0] == section && f[1] == workspace)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_review_of_the_seeded_scenario_has_the_known_answers() {
    let w = world().await;
    w.grant_direct("nina.berg@acme.test", "Source Admin").await;
    w.grant_direct("omar.khan@acme.test", "Workspace Owner")
        .await;
    w.seed_changes().await;

    let csv_path = w.dir.path().join("review.csv");
    let out = w
        .report(&["--format", "csv", "--out", csv_path.to_str().unwrap()])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("Wrote ") && stderr.contains("2 workspaces"),
        "{stderr}"
    );
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert!(csv.starts_with("section,workspace,user,item,via,source,detail\n"));

    // The Owners: the same three `too_many_owners` counts, each with its basis.
    let owners = csv_rows(&csv, "owner", "production");
    let mut who: Vec<(&str, &str)> = owners.iter().map(|r| (r[2], *r.last().unwrap())).collect();
    who.sort();
    assert_eq!(who.len(), 3, "{csv}");
    assert!(
        who.contains(&("omar.khan@acme.test", "unjustified")),
        "{who:?}"
    );
    // Over-privileged: omar's expired exception and the unmanaged personal account.
    let mut over: Vec<(&str, &str)> = csv_rows(&csv, "over_privileged", "production")
        .iter()
        .map(|r| (r[2], r[3]))
        .collect();
    over.sort();
    assert_eq!(
        over,
        vec![
            ("jo@gmail.test", "unmanaged_user"),
            ("omar.khan@acme.test", "exception_expired")
        ]
    );
    let personal: Vec<&str> = csv_rows(&csv, "personal_account", "production")
        .iter()
        .map(|r| r[2])
        .collect();
    assert_eq!(personal, vec!["jo@gmail.test"]);
    // Every exception with ticket, approver, reason.
    let exceptions: Vec<(&str, &str, &str, &str)> = csv_rows(&csv, "exception", "production")
        .iter()
        .map(|r| (r[2], r[3], r[4], r[5]))
        .collect();
    assert_eq!(
        exceptions,
        vec![
            (
                "omar.khan@acme.test",
                "CHG-8",
                "ciso@acme.test",
                "Migration"
            ),
            (
                "nina.berg@acme.test",
                "CHG-7",
                "ciso@acme.test",
                "Launch week"
            ),
        ]
    );
    // Open findings: those `check` gives for production.
    let doc = w.check().await;
    let check_prod = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["workspace"] == "production")
        .count();
    assert_eq!(csv_rows(&csv, "finding", "production").len(), check_prod);
    assert_eq!(check_prod, 9);
    // Latency from the change log: p50 90 s, p95 20 min; staging's own.
    let latency = |ws: &str, item: &str| -> String {
        csv_rows(&csv, "latency", ws)
            .iter()
            .find(|r| r[3] == item)
            .map(|r| r[6].to_string())
            .unwrap()
    };
    assert_eq!(latency("production", "p50_ms"), "90000");
    assert_eq!(latency("production", "p95_ms"), "1200000");
    assert_eq!(latency("production", "samples"), "5");
    assert_eq!(latency("staging", "p50_ms"), "7000");

    // --workspace: only that one; Markdown says the same numbers.
    let md_path = w.dir.path().join("review.md");
    let out = w
        .report(&[
            "--format",
            "md",
            "--out",
            md_path.to_str().unwrap(),
            "--workspace",
            "production",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0));
    let md = std::fs::read_to_string(&md_path).unwrap();
    assert!(md.contains("## Workspace production"));
    assert!(!md.contains("## Workspace staging"));
    assert!(
        md.contains("p50 1 min 30 s, p95 20 min 0 s over 5 changes"),
        "{md}"
    );

    // The HTML, printed by a real browser: what a reader of the PDF sees.
    let html_path = w.dir.path().join("review.html");
    let out = w
        .report(&["--format", "html", "--out", html_path.to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(0));
    let html = std::fs::read_to_string(&html_path).unwrap();
    eprintln!("HTML report: {} bytes", html.len());
    if let Some(text) = print_to_text(&html_path, w.dir.path()).await {
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for needle in [
            "Segment access review",
            "Workspace production",
            "Workspace staging",
            "Workspace Owners",
            "Unjustified:",
            "omar.khan@acme.test",
            "Over-privileged accounts",
            "exception_expired",
            "Personal accounts",
            "jo@gmail.test",
            "CHG-7",
            "Launch week",
            "CHG-8",
            "Open findings by kind",
            "workspace_inconsistent",
            "Propagation latency",
            "p50 1 min 30 s, p95 20 min 0 s",
            "1–5 min",
            "Members and their effective grants",
            "Minimal Workspace Access only",
        ] {
            assert!(
                flat.contains(needle),
                "the printed PDF lacks {needle:?}:\n{flat}"
            );
        }
    }

    // A read that fails: exit 2, and no report written.
    let text = std::fs::read_to_string(&w.config_path)
        .unwrap()
        .replace("seg-staging-token", "wrong-token");
    std::fs::write(&w.config_path, text).unwrap();
    let failed = w.dir.path().join("failed.html");
    let out = w
        .report(&["--format", "html", "--out", failed.to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("scimwatch report: "));
    assert!(!failed.exists());
    w.sim.stop().await;
}

/// Prints `html` to PDF with headless Chromium and returns `pdftotext`'s text. Without
/// Chromium (or pdftotext): fails under CI (`CI` set), else skips loudly.
async fn print_to_text(html: &Path, dir: &Path) -> Option<String> {
    let have = |bin: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !have("chromium") || !have("pdftotext") {
        let msg = "chromium and pdftotext (Debian: apt-get install -y chromium poppler-utils) are needed to print the HTML report";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}; CI is set, so this fails instead of skipping (.ci/run installs them)");
        }
        eprintln!("\n!!!!!!!! SKIPPED the browser check of the HTML report: {msg}. !!!!!!!!\n");
        return None;
    }
    let pdf = dir.join("review.pdf");
    let profile = dir.join("chromium-profile");
    let run = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-pdf-header-footer",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", html.display()))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("chromium prints within 2 minutes")
        .expect("chromium runs");
    assert!(
        out.status.success() && pdf.exists(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = tokio::process::Command::new("pdftotext")
        .arg(&pdf)
        .arg("-")
        .output()
        .await
        .expect("pdftotext runs");
    assert!(text.status.success());
    let pages = std::process::Command::new("pdfinfo")
        .arg(&pdf)
        .output()
        .ok();
    if let Some(p) = pages {
        let info = String::from_utf8_lossy(&p.stdout);
        if let Some(line) = info.lines().find(|l| l.starts_with("Pages:")) {
            eprintln!(
                "PDF: {line}, {} bytes",
                std::fs::metadata(&pdf).map(|m| m.len()).unwrap_or(0)
            );
        }
    }
    Some(String::from_utf8_lossy(&text.stdout).into_owned())
}

/// The daemon with a chain key: each pass chains its changes (with the mapping's or
/// exception's ticket) and records the head after the first pass and after every tick
/// that changed something; `changes verify` through the binary passes,
/// and the CSV carries the ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_chains_the_change_log_and_records_the_head_after_every_pass_that_changed_something(
) {
    let w = world().await;
    let key_file = w.dir.path().join("chain.key");
    std::fs::write(&key_file, "a daemon chain key, 32 bytes long\n").unwrap();
    let mut text = std::fs::read_to_string(&w.config_path).unwrap();
    text.push_str(&format!(
        "chain_key_file = {:?}\n",
        key_file.display().to_string()
    ));
    std::fs::write(&w.config_path, text).unwrap();

    let config = scimwatch::config::load(Some(&w.config_path)).expect("config loads");
    let known: Vec<String> = config.workspaces.iter().map(|w| w.name.clone()).collect();
    let mappings =
        scimwatch::mapping::load_dir(&config.mappings.dir, &config.base_dir, &known, Utc::now())
            .expect("mappings load");
    let d = scimwatch::daemon::Daemon::build(config, mappings, RetryConfig::fast())
        .await
        .expect("daemon builds");
    d.activate([scimwatch::triggers::Reason::Periodic].into())
        .await;
    // nina's exception (CHG-7) allows Source Admin: the change carries its ticket.
    w.grant_direct("nina.berg@acme.test", "Source Admin").await;
    d.activate([scimwatch::triggers::Reason::Periodic].into())
        .await;

    let key = scimwatch::store::ChainKey::new(&scimwatch::secret::Secret::new(
        "a daemon chain key, 32 bytes long",
    ));
    match d.store.changes_verify(&key).await.unwrap() {
        scimwatch::store::Verdict::Intact(s) => {
            // The genesis anchor, the first pass's head, nina's change and the head of
            // the tick that read it.
            assert_eq!((s.rows, s.chained), (4, 4), "{s:?}");
        }
        v => panic!("{v:?}"),
    }
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"))
        .arg("--config")
        .arg(&w.config_path)
        .args(["changes", "verify"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("intact: 4 records, 4 chained"),
        "{stdout}"
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"))
        .arg("--config")
        .arg(&w.config_path)
        .args(["changes", "--since", "1h"])
        .output()
        .await
        .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    let line = csv
        .lines()
        .find(|l| l.contains("nina.berg@acme.test"))
        .unwrap_or_else(|| panic!("{csv}"));
    assert!(line.contains(",CHG-7,Launch week,"), "{line}");
    w.sim.stop().await;
}
