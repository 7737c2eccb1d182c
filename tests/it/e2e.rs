//! End-to-end: `check` passes against the simulator seeded with the demo company, IdP
//! changes made through its control API, manual changes through the Segment Public API
//! with a person's token, and faults. Windows are seconds.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use scimwatch::config::Config;
use scimwatch::http::{RequestStats, RetryConfig};
use scimwatch::idp::okta::Okta;
use scimwatch::mapping::MappingSet;
use scimwatch::output::{self, Report};
use scimwatch::reconcile::read::PassError;
use scimwatch::segment::SegmentClient;
use scimwatch_sim::{self as sim, SimHandle};
use serde_json::{json, Value};

const SEED: &str = include_str!("../../deploy/demo-seed.toml");

fn seed(push_delay: &str) -> String {
    SEED.replace("delay = \"3s\"", &format!("delay = \"{push_delay}\""))
}

struct World {
    sim: SimHandle,
    config: Config,
    mappings: MappingSet,
    http: reqwest::Client,
}

async fn world(seed_text: &str, window: &str) -> World {
    let sim = sim::start(seed_text, "127.0.0.1:0")
        .await
        .expect("sim starts");
    let mappings_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let text = sim.config_toml(&mappings_dir, &format!("propagation_window = \"{window}\""));
    let config =
        scimwatch::config::load_str(&text, Path::new("/tmp/scimwatch.toml"), &Default::default())
            .expect("config loads");
    let known: Vec<String> = config.workspaces.iter().map(|w| w.name.clone()).collect();
    let mappings = scimwatch::mapping::load_dir(
        &mappings_dir,
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &known,
        Utc::now(),
    )
    .expect("mappings load");
    World {
        sim,
        config,
        mappings,
        http: reqwest::Client::new(),
    }
}

impl World {
    async fn check(&self) -> Result<Report, PassError> {
        let stats = RequestStats::new();
        self.check_with(&stats).await
    }

    async fn check_with(&self, stats: &std::sync::Arc<RequestStats>) -> Result<Report, PassError> {
        let okta =
            Okta::new(&self.config.idp, RetryConfig::fast(), stats.clone()).expect("okta client");
        let clients: Vec<SegmentClient> = self
            .config
            .workspaces
            .iter()
            .map(|w| SegmentClient::new(w, RetryConfig::fast(), stats.clone()))
            .collect();
        let selected: Vec<_> = self.config.workspaces.iter().zip(clients.iter()).collect();
        let settings = scimwatch::reconcile::Settings::from_config(&self.config).expect("settings");
        scimwatch::app::check(&okta, &selected, &self.mappings, &settings, Utc::now()).await
    }

    async fn json(&self) -> Value {
        let report = self.check().await.expect("pass succeeds");
        serde_json::from_str(&output::json(&report)).expect("valid JSON")
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{}", self.sim.url(), path.replace(' ', "%20"));
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("control call");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    async fn segment(
        &self,
        method: reqwest::Method,
        ws: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let url = format!("{}/segment/{ws}{path}", self.sim.url());
        let mut req = self.http.request(method, &url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("segment call");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.expect("json")
    }

    async fn segment_user_id(&self, ws: &str, email: &str) -> String {
        let v = self
            .segment(
                reqwest::Method::GET,
                ws,
                "/users?pagination.count=1000",
                "ui-ana-token",
                None,
            )
            .await;
        v["data"]["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn segment_group_id(&self, ws: &str, name: &str) -> String {
        let v = self
            .segment(
                reqwest::Method::GET,
                ws,
                "/groups?pagination.count=1000",
                "ui-ana-token",
                None,
            )
            .await;
        v["data"]["userGroups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

async fn run_check(
    config: &Config,
    mappings: &MappingSet,
    stats: &std::sync::Arc<RequestStats>,
) -> Result<Report, PassError> {
    let okta = Okta::new(&config.idp, RetryConfig::fast(), stats.clone()).expect("okta client");
    let clients: Vec<SegmentClient> = config
        .workspaces
        .iter()
        .map(|w| SegmentClient::new(w, RetryConfig::fast(), stats.clone()))
        .collect();
    let selected: Vec<_> = config.workspaces.iter().zip(clients.iter()).collect();
    let settings = scimwatch::reconcile::Settings::from_config(config).expect("settings");
    scimwatch::app::check(&okta, &selected, mappings, &settings, Utc::now()).await
}

fn findings(doc: &Value) -> Vec<Value> {
    doc["findings"].as_array().cloned().unwrap_or_default()
}

fn find<'a>(doc: &'a Value, kind: &str) -> Vec<&'a Value> {
    doc["findings"]
        .as_array()
        .map(|a| a.iter().filter(|f| f["kind"] == kind).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_company_is_clean_and_the_document_has_the_contracted_shape() {
    let w = world(&seed("1s"), "60m").await;
    let doc = w.json().await;
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["idp"], "okta");
    assert_eq!(findings(&doc), Vec::<Value>::new(), "{doc:#}");
    assert_eq!(
        doc["summary"],
        json!({"drift": 0, "pending": 0, "by_kind": {}})
    );
    let ws = doc["workspaces"].as_array().unwrap();
    assert_eq!(ws.len(), 2);
    assert_eq!(ws[0]["name"], "production");
    assert_eq!(ws[0]["users"], 28, "{ws:?}"); // 27 people in production groups + the service account
    assert_eq!(ws[0]["groups"], 4);
    assert!(chrono::DateTime::parse_from_rfc3339(doc["generated_at"].as_str().unwrap()).is_ok());
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_mappings_validate_against_the_simulator() {
    let w = world(&seed("1s"), "60m").await;
    let stats = RequestStats::new();
    let okta = Okta::new(&w.config.idp, RetryConfig::fast(), stats.clone()).unwrap();
    let clients: Vec<SegmentClient> = w
        .config
        .workspaces
        .iter()
        .map(|c| SegmentClient::new(c, RetryConfig::fast(), stats.clone()))
        .collect();
    let problems = scimwatch::app::validate_loaded(&w.config, &w.mappings, &okta, &clients)
        .await
        .unwrap();
    assert_eq!(problems.problems, Vec::<String>::new());
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_owner_grant_in_the_app_is_critical_and_attributed_to_that_person() {
    let w = world(&seed("1s"), "60m").await;
    let ws = w
        .segment(
            reqwest::Method::GET,
            "production",
            "/",
            "ui-ana-token",
            None,
        )
        .await;
    let ws_id = ws["data"]["workspace"]["id"].as_str().unwrap().to_string();
    let omar = w.segment_user_id("production", "omar.khan@acme.test").await;
    w.segment(
        reqwest::Method::POST,
        "production",
        &format!("/users/{omar}/permissions"),
        "ui-ana-token",
        Some(json!({"permissions": [{"roleId": "1WDUuRLxv84rrfCNUwvkrRtkxnS", "resources": [{"id": ws_id, "type": "WORKSPACE"}]}]})),
    )
    .await;
    let report = w.check().await.unwrap();
    assert_eq!(report.exit_code(), 1);
    let doc: Value = serde_json::from_str(&output::json(&report)).unwrap();
    let f = find(&doc, "direct_grant");
    assert_eq!(f.len(), 1, "{doc:#}");
    let f = f[0];
    assert_eq!(f["state"], "drift");
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["user"], "omar.khan@acme.test");
    assert_eq!(f["deadline"], Value::Null);
    assert_eq!(f["reverted_by_scim"], false);
    assert_eq!(f["grant"]["role"], "Workspace Owner");
    assert_eq!(
        f["grant"]["resources"][0],
        json!({"type": "WORKSPACE", "id": ws_id})
    );
    assert_eq!(f["attribution"]["kind"], "human");
    assert_eq!(f["attribution"]["actor_email"], "ana.silva@acme.test");
    assert_eq!(f["since"], f["attribution"]["at"]);
    assert_eq!(findings(&doc).len(), 1, "{doc:#}");
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_member_of_a_pushed_group_is_reverted_by_scim() {
    let w = world(&seed("1s"), "60m").await;
    let owners = w
        .segment_group_id("production", "Segment Prod Owners")
        .await;
    w.segment(
        reqwest::Method::POST,
        "production",
        &format!("/groups/{owners}/users"),
        "ui-ana-token",
        Some(json!({"emails": ["maria.garcia@acme.test"]})),
    )
    .await;
    let doc = w.json().await;
    let f = find(&doc, "membership_unexpected");
    assert_eq!(f.len(), 1, "{doc:#}");
    assert_eq!(f[0]["severity"], "critical");
    assert_eq!(f[0]["group"], "Segment Prod Owners");
    assert_eq!(f[0]["reverted_by_scim"], true);
    assert_eq!(f[0]["attribution"]["kind"], "human");
    assert!(f[0]["message"].as_str().unwrap().contains("next push"));
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_change_is_pending_then_propagated() {
    let w = world(&seed("1s"), "60m").await;
    w.control(
        reqwest::Method::POST,
        "/_sim/okta/groups/Segment Prod Owners/members",
        Some(json!({"login": "olivia.chen@acme.test"})),
    )
    .await;
    let doc = w.json().await;
    let f = find(&doc, "user_not_provisioned");
    assert_eq!(f.len(), 1, "{doc:#}");
    assert_eq!(f[0]["state"], "pending");
    assert_eq!(f[0]["user"], "olivia.chen@acme.test");
    assert_ne!(f[0]["deadline"], Value::Null);
    assert_eq!(findings(&doc).len(), 1, "{doc:#}");
    let report = w.check().await.unwrap();
    assert_eq!(
        report.exit_code(),
        0,
        "pending findings do not fail the check"
    );

    tokio::time::sleep(Duration::from_millis(1600)).await;
    let doc = w.json().await;
    assert_eq!(findings(&doc), Vec::<Value>::new(), "{doc:#}");
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_the_push_loses_becomes_a_stalled_push_at_the_deadline() {
    let w = world(&seed("1s"), "2s").await;
    w.control(
        reqwest::Method::POST,
        "/_sim/push",
        Some(json!({"mode": "failing"})),
    )
    .await;
    w.control(
        reqwest::Method::DELETE,
        "/_sim/okta/groups/Segment Analytics Engineers/members/grace.liu@acme.test",
        None,
    )
    .await;
    let doc = w.json().await;
    let f = find(&doc, "membership_unexpected");
    assert_eq!(f.len(), 1, "{doc:#}");
    assert_eq!(f[0]["state"], "pending");
    assert_eq!(f[0]["reverted_by_scim"], Value::Null);
    let deadline = f[0]["deadline"].clone();

    tokio::time::sleep(Duration::from_millis(2300)).await;
    let doc = w.json().await;
    let f = find(&doc, "membership_unexpected");
    assert_eq!(f.len(), 1, "{doc:#}");
    assert_eq!(f[0]["state"], "drift");
    assert_eq!(
        f[0]["deadline"], deadline,
        "a stalled push keeps the deadline that passed"
    );
    assert!(f[0]["message"].as_str().unwrap().contains("stalled"));
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_leaver_is_pending_then_removed_by_the_push() {
    let w = world(&seed("1s"), "60m").await;
    w.control(
        reqwest::Method::POST,
        "/_sim/okta/users/dan.leaver@acme.test/status",
        Some(json!({"status": "DEPROVISIONED"})),
    )
    .await;
    let doc = w.json().await;
    let f = find(&doc, "deactivated_user_present");
    assert_eq!(f.len(), 1, "{doc:#}");
    assert_eq!(
        (f[0]["state"].as_str(), f[0]["severity"].as_str()),
        (Some("pending"), Some("critical"))
    );
    assert_eq!(
        findings(&doc).len(),
        1,
        "membership_unexpected is hidden: {doc:#}"
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(findings(&w.json().await), Vec::<Value>::new());
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_user_stays_and_is_an_error() {
    let w = world(&seed("1s"), "60m").await;
    w.control(
        reqwest::Method::POST,
        "/_sim/okta/users/nina.berg@acme.test/status",
        Some(json!({"status": "SUSPENDED"})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let doc = w.json().await;
    let f = find(&doc, "deactivated_user_present");
    assert_eq!(f.len(), 1, "{doc:#}");
    assert_eq!(
        (f[0]["state"].as_str(), f[0]["severity"].as_str()),
        (Some("drift"), Some("error"))
    );
    assert_eq!(f[0]["reverted_by_scim"], false);
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_that_keeps_failing_fails_the_pass_and_names_the_request() {
    let w = world(&seed("1s"), "60m").await;
    w.control(reqwest::Method::POST, "/_sim/faults", Some(json!({"service": "segment", "workspace": "staging", "path": "/groups/.+/users", "status": 500}))).await;
    let err = w.check().await.unwrap_err();
    let text = scimwatch::error::chain(&err);
    assert!(text.contains("staging"), "{text}");
    assert!(text.contains("/users"), "{text}");
    assert!(text.contains("500"), "{text}");

    w.control(reqwest::Method::DELETE, "/_sim/faults", None)
        .await;
    w.control(
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"service": "okta", "path": "/api/v1/logs", "status": 500, "count": 2})),
    )
    .await;
    let report = w.check().await.expect("two 500s are retried away");
    assert!(report.findings.is_empty());
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mapped_group_unresolved_fails_the_pass() {
    // An Okta org where none of the mapped groups exist (what a service app without an
    // admin role sees: 200 and empty lists).
    let mut text = String::new();
    let mut skip = false;
    for line in seed("1s").lines() {
        if line.starts_with("[[okta.group]]") {
            skip = true;
        } else if line.starts_with("[[") || line.starts_with('[') {
            skip = false;
        }
        if !skip {
            text.push_str(line);
            text.push('\n');
        }
    }
    let w = world(&text, "60m").await;
    let err = w.check().await.unwrap_err();
    assert!(matches!(err, PassError::SuspectIdp { .. }), "{err}");
    assert!(err.to_string().contains("admin role"), "{err}");
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_2_with_one_line_and_nothing_on_stdout_when_a_token_is_wrong() {
    let w = world(&seed("1s"), "60m").await;
    let dir = tempfile::tempdir().unwrap();
    let mappings_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let text = w
        .sim
        .config_toml(&mappings_dir, "")
        .replace("seg-staging-token", "wrong-token");
    let path = dir.path().join("scimwatch.toml");
    std::fs::write(&path, text).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"))
        .args(["--config"])
        .arg(&path)
        .args(["check", "--output", "json"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("scimwatch check: segment workspace staging"),
        "{stderr}"
    );
    assert!(last.contains("401"), "{stderr}");
    assert!(
        !stderr.contains("wrong-token"),
        "the token leaked: {stderr}"
    );

    // And with the right token: exit 0 and a JSON document.
    let ok_path = dir.path().join("ok.toml");
    std::fs::write(&ok_path, w.sim.config_toml(&mappings_dir, "")).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"))
        .arg("--config")
        .arg(&ok_path)
        .args(["check", "--output", "json"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["schema"], 1);
    w.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_check_costs_the_expected_requests() {
    let w = world(&seed("1s"), "60m").await;
    let stats = RequestStats::new();
    w.check_with(&stats).await.unwrap();
    let by = stats.by_service();
    // Okta: 1 name search (6 names ≤ 10), 6 member lists, 1 log page, and one lookup for
    // the service account no mapped group lists.
    assert_eq!(by.get("okta"), Some(&9), "{:#?}", stats.by_endpoint());
    // Segment, production: / + roles + sources + labels + groups + 4 member lists + users
    // + 28 users + 1 audit = 39; staging: / + roles + sources + labels + groups + 3 member
    // lists + users + 20 users + 1 audit = 30 (functions are not named by these mappings'
    // grants... except staging's Function Admin is workspace-wide, so no /functions). The
    // audit trail is one unfiltered stream per workspace (two, one per resourceType, cost
    // 71 in all).
    assert_eq!(by.get("segment"), Some(&69), "{:#?}", stats.by_endpoint());
    w.sim.stop().await;
}

/// Our Okta client, as an OAuth service app with `private_key_jwt` and DPoP, against the
/// simulator's token endpoint and API (the nonce round trip, proofs on every call), and
/// the same app without an admin role: Okta's silent `200 []` must fail the pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_oauth_service_app_with_dpop_against_the_simulator() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/okta");
    let public = std::fs::read_to_string(fixtures.join("ec_p256_public.pem")).unwrap();
    let private = fixtures.join("ec_p256_pkcs8.pem");
    let app = |id: &str, admin: bool| {
        format!(
            "\n[[okta.oauth_client]]\nclient_id = \"{id}\"\npublic_key_pem = \"\"\"{public}\"\"\"\nscopes = [\"okta.groups.read\", \"okta.users.read\", \"okta.logs.read\"]\ndpop = true\nadmin_role = {admin}\n"
        )
    };
    let base = seed("1s");
    let (head, tail) = base.split_at(base.find("[[okta.user]]").unwrap());
    let text = format!(
        "{head}{}{}\n{tail}",
        app("0oaservice", true),
        app("0oanoadmin", false)
    );
    let sim = sim::start(&text, "127.0.0.1:0").await.unwrap();
    let mappings_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    for (id, admin_role) in [("0oaservice", true), ("0oanoadmin", false)] {
        let text = sim.config_toml(&mappings_dir, "").replace(
            "token = \"okta-sim-token\"\n",
            &format!(
                "\n[idp.oauth]\nclient_id = \"{id}\"\nprivate_key_file = \"{}\"\nscopes = [\"okta.groups.read\", \"okta.users.read\", \"okta.logs.read\"]\ndpop = true\n",
                private.display()
            ),
        );
        let config = scimwatch::config::load_str(
            &text,
            Path::new("/tmp/scimwatch.toml"),
            &Default::default(),
        )
        .unwrap();
        let known: Vec<String> = config.workspaces.iter().map(|w| w.name.clone()).collect();
        let mappings = scimwatch::mapping::load_dir(
            &mappings_dir,
            Path::new(env!("CARGO_MANIFEST_DIR")),
            &known,
            Utc::now(),
        )
        .unwrap();
        let stats = RequestStats::new();
        let result = run_check(&config, &mappings, &stats).await;
        if admin_role {
            let report = result.expect("a DPoP-bound pass succeeds");
            assert!(report.findings.is_empty(), "{:#?}", report.findings);
            let token_calls = stats
                .by_endpoint()
                .get(&("okta".to_string(), "POST /oauth2/v1/token".to_string()))
                .copied();
            assert_eq!(
                token_calls,
                Some(2),
                "one use_dpop_nonce answer, then the token: {:#?}",
                stats.by_endpoint()
            );
        } else {
            let err = result.unwrap_err();
            assert!(matches!(err, PassError::SuspectIdp { .. }), "{err}");
        }
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_lists_every_unresolved_name_with_file_and_line_and_exits_2() {
    let w = world(&seed("1s"), "60m").await;
    let dir = tempfile::tempdir().unwrap();
    let mdir = dir.path().join("mappings");
    std::fs::create_dir_all(&mdir).unwrap();
    std::fs::write(
        mdir.join("production.toml"),
        "workspace = \"production\"\n\n[[group]]\nidp_group = \"Segment Marketing\"\n\n  [[group.grant]]\n  role = \"Source Reader\"\n  sources = [\"web-prd\"]\n\n[[group]]\nidp_group = \"Segment Markting\"\n",
    )
    .unwrap();
    let path = dir.path().join("scimwatch.toml");
    std::fs::write(&path, w.sim.config_toml(&mdir, "")).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"))
        .arg("--config")
        .arg(&path)
        .arg("validate")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Files are named as the person at the terminal can open them: this one is not below
    // the current directory, so absolutely.
    let file = mdir.join("production.toml").display().to_string();
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(&format!("{file}:")))
        .collect();
    assert_eq!(problems.len(), 3, "{stderr}");
    assert!(
        problems[0].starts_with(&format!("{file}:6: role \"Source Reader\"")),
        "{stderr}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("\"web-prd\"") && p.contains("did you mean \"web-prod\"")),
        "{stderr}"
    );
    // An IdP group name gets "did you mean" too (Okta pushed the real name to Segment).
    assert!(
        problems.iter().any(|p| p
            .starts_with(&format!("{file}:10: IdP group \"Segment Markting\""))
            && p.contains("did you mean \"Segment Marketing\"")),
        "{stderr}"
    );
    // staging has no mapping file here: that fails validate, naming the workspace.
    assert!(
        stderr.contains("workspace \"staging\" has no mapped group"),
        "{stderr}"
    );
    w.sim.stop().await;
}

/// With every token wrong, `validate` still tries every service and names each failing
/// credential by its config key, the reason before the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_names_every_failing_credential_by_its_key_reason_first() {
    let w = world(&seed("1s"), "60m").await;
    let dir = tempfile::tempdir().unwrap();
    let mappings_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let text = w
        .sim
        .config_toml(&mappings_dir, "")
        .replace("okta-sim-token", "wrong-okta-token")
        .replace("seg-prod-token", "wrong-prod-token")
        .replace("seg-staging-token", "wrong-staging-token");
    let path = dir.path().join("scimwatch.toml");
    std::fs::write(&path, text).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"))
        .arg("--config")
        .arg(&path)
        .arg("validate")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("warning"))
        .collect();
    let idp = lines
        .iter()
        .find(|l| l.contains("[idp] token (inline)"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let prod = lines
        .iter()
        .find(|l| l.contains("[[workspace]] \"production\" token (inline)"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let staging = lines
        .iter()
        .find(|l| l.contains("[[workspace]] \"staging\" token (inline)"))
        .unwrap_or_else(|| panic!("{stderr}"));
    for l in [idp, prod, staging] {
        let status = l.find("401").unwrap_or_else(|| panic!("no status: {l}"));
        let url = l
            .find("http://")
            .unwrap_or_else(|| panic!("no request: {l}"));
        assert!(status < url, "the reason comes before the request: {l}");
        assert!(!l.contains("wrong-"), "a token leaked: {l}");
    }
    w.sim.stop().await;
}

/// A typo in an IdP group name is one `mapping_unresolved` that says "did you mean" and
/// lists what it holds back — not an `unmapped_group` for the real group and an
/// `unmanaged_user` for each of its members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_idp_group_is_one_finding_not_a_cascade() {
    let w = world(&seed("1s"), "60m").await;
    let mut mappings = w.mappings.clone();
    for g in &mut mappings.workspaces.get_mut("production").unwrap().groups {
        if g.idp_group.text() == "Segment Marketing" {
            g.idp_group = scimwatch::model::GroupRef::Name("Segment Marketting".into());
        }
    }
    let stats = RequestStats::new();
    let report = run_check(&w.config, &mappings, &stats).await.unwrap();
    let doc: Value = serde_json::from_str(&output::json(&report)).unwrap();
    let unresolved = find(&doc, "mapping_unresolved");
    assert_eq!(unresolved.len(), 1, "{doc:#}");
    let f = unresolved[0];
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("did you mean \"Segment Marketing\""),
        "{f:#}"
    );
    let held = f["mapping"]["suppressed"].as_array().unwrap();
    assert!(held.iter().any(|h| h["kind"] == "unmanaged_user"), "{f:#}");
    assert!(find(&doc, "unmanaged_user").is_empty(), "{doc:#}");
    assert!(find(&doc, "unmapped_group").is_empty(), "{doc:#}");
    assert_eq!(crate::docs::schema_errors(&doc), Vec::<String>::new());
    w.sim.stop().await;
}

/// Segment does not document the `resourceType` of IAM audit events: with the simulator
/// writing other strings than its own `user` / `user_group`, attribution still works,
/// since scimwatch reads one unfiltered stream and classifies events itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribution_does_not_depend_on_the_audit_resource_type_strings() {
    let seed = seed("1s").replacen(
        "name = \"production\"",
        "name = \"production\"\naudit_resource_types = { user = \"workspace_member\", user_group = \"team\" }",
        1,
    );
    let w = world(&seed, "60m").await;
    let ws = w
        .segment(
            reqwest::Method::GET,
            "production",
            "/",
            "ui-ana-token",
            None,
        )
        .await;
    let ws_id = ws["data"]["workspace"]["id"].as_str().unwrap().to_string();
    let omar = w.segment_user_id("production", "omar.khan@acme.test").await;
    let owners = w
        .segment_group_id("production", "Segment Prod Owners")
        .await;
    // "Policy Created" names no subject: told by the ids the pass read.
    w.segment(
        reqwest::Method::POST,
        "production",
        &format!("/users/{omar}/permissions"),
        "ui-ana-token",
        Some(json!({"permissions": [{"roleId": "1WDUuRLxv84rrfCNUwvkrRtkxnS", "resources": [{"id": ws_id, "type": "WORKSPACE"}]}]})),
    )
    .await;
    // "User Added To User Group" names it.
    w.segment(
        reqwest::Method::POST,
        "production",
        &format!("/groups/{owners}/users"),
        "ui-ana-token",
        Some(json!({"emails": ["maria.garcia@acme.test"]})),
    )
    .await;
    let trail = w
        .segment(
            reqwest::Method::GET,
            "production",
            "/audit-events",
            "ui-ana-token",
            None,
        )
        .await;
    let types: std::collections::BTreeSet<&str> = trail["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resourceType"].as_str())
        .collect();
    assert!(
        types.contains("workspace_member") && types.contains("team"),
        "{types:?}"
    );
    assert!(!types.contains("user") && !types.contains("user_group"));

    let doc = w.json().await;
    let grant = find(&doc, "direct_grant");
    assert_eq!(grant.len(), 1, "{doc:#}");
    assert_eq!(grant[0]["attribution"]["kind"], "human");
    assert_eq!(
        grant[0]["attribution"]["actor_email"],
        "ana.silva@acme.test"
    );
    let member = find(&doc, "membership_unexpected");
    assert_eq!(member.len(), 1, "{doc:#}");
    assert_eq!(member[0]["attribution"]["kind"], "human");
    assert_eq!(
        member[0]["attribution"]["actor_email"],
        "ana.silva@acme.test"
    );
    w.sim.stop().await;
}

/// `docs/findings.schema.json` describes what `check --output json` really prints: a
/// document with a pending finding (deadline set), a manual membership (attributed, SCIM
/// reverts it) and a direct Owner grant (a grant with resources) validates against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_output_validates_against_the_documented_schema() {
    let w = world(&seed("1s"), "60m").await;
    w.control(
        reqwest::Method::POST,
        "/_sim/push",
        Some(json!({"mode": "paused"})),
    )
    .await;
    w.control(
        reqwest::Method::POST,
        "/_sim/okta/groups/Segment Prod Owners/members",
        Some(json!({"login": "olivia.chen@acme.test"})),
    )
    .await;
    let owners = w
        .segment_group_id("production", "Segment Prod Owners")
        .await;
    w.segment(
        reqwest::Method::POST,
        "production",
        &format!("/groups/{owners}/users"),
        "ui-ana-token",
        Some(json!({"emails": ["maria.garcia@acme.test"]})),
    )
    .await;
    let ws = w
        .segment(
            reqwest::Method::GET,
            "production",
            "/",
            "ui-ana-token",
            None,
        )
        .await;
    let ws_id = ws["data"]["workspace"]["id"].as_str().unwrap().to_string();
    let omar = w.segment_user_id("production", "omar.khan@acme.test").await;
    w.segment(
        reqwest::Method::POST,
        "production",
        &format!("/users/{omar}/permissions"),
        "ui-ana-token",
        Some(json!({"permissions": [{"roleId": "1WDUuRLxv84rrfCNUwvkrRtkxnS", "resources": [{"id": ws_id, "type": "WORKSPACE"}]}]})),
    )
    .await;
    let doc = w.json().await;
    assert!(!find(&doc, "direct_grant").is_empty(), "{doc:#}");
    assert!(!find(&doc, "membership_unexpected").is_empty(), "{doc:#}");
    assert!(
        findings(&doc)
            .iter()
            .any(|f| f["state"] == "pending" && f["deadline"].is_string()),
        "{doc:#}"
    );
    assert_eq!(
        crate::docs::schema_errors(&doc),
        Vec::<String>::new(),
        "{doc:#}"
    );
    w.sim.stop().await;
}
