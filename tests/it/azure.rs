//! Entra ID through Microsoft Graph: the client against the simulator's Graph side, and
//! `check` / `validate` end to end with `idp.kind = "azure_ad"`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::Client;
use scimwatch::config::{AzureCredential, AzureSecret, IdpConfig, IdpCredential, UserAttribute};
use scimwatch::http::{RequestStats, RetryConfig};
use scimwatch::idp::azure::Azure;
use scimwatch::idp::{IdentityProvider, IdpError};
use scimwatch::model::{Email, GroupRead, GroupRef, IdpEventKind, IdpKind, IdpStatus, UserLookup};
use scimwatch::secret::Secret;
use scimwatch_sim::{self as sim, SimHandle};
use serde_json::{json, Value};

const SECRET: &str = "sim-secret-do-not-print";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/fixtures/azure");
const TWIN_A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const TWIN_B: &str = "aaaaaaaa-0000-4000-8000-000000000002";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join(name)).expect("fixture")
}

/// Owners: ana (enabled), carl (disabled), and the nested group Contractors (dora, ana,
/// and Agency with eli). Production's Segment already mirrors ana. Two groups are named
/// "Twin".
fn seed(extra_azure: &str) -> String {
    format!(
        r#"
[azure]
tenant_id = "sim-tenant"
client_id = "sim-client"
client_secret = "{SECRET}"
certificate_pem = """{cert}"""
{extra_azure}

[[azure.user]]
upn = "ana@acme.test"
[[azure.user]]
upn = "bob@acme.test"
[[azure.user]]
upn = "carl@acme.test"
account_enabled = false
[[azure.user]]
upn = "dora@acme.test"
mail = "dora.mail@acme.test"
[[azure.user]]
upn = "eli@acme.test"

[[azure.group]]
name = "Segment Prod Owners"
members = ["ana@acme.test", "carl@acme.test"]
member_groups = ["Contractors"]
pushed_to = ["production"]

[[azure.group]]
name = "Contractors"
members = ["dora@acme.test", "ana@acme.test"]
member_groups = ["Agency"]

[[azure.group]]
name = "Agency"
members = ["eli@acme.test"]
member_groups = ["Contractors"]   # a cycle: transitive reads must stay finite

[[azure.group]]
name = "Twin"
id = "{TWIN_A}"
members = ["bob@acme.test"]

[[azure.group]]
name = "Twin"
id = "{TWIN_B}"

[[segment.workspace]]
name = "production"
token = "seg-prod-token"
ui_users = [{{ email = "admin@acme.test", token = "ui-admin-token" }}]

[[segment.workspace.group]]
name = "Segment Prod Owners"
members = ["ana@acme.test"]
grants = [{{ role = "Workspace Owner" }}]

[push]
cycle = "1h"
"#,
        cert = fixture("cert.pem")
    )
}

const MAPPING: &str = r#"
workspace = "production"

[[group]]
idp_group = "Segment Prod Owners"
justification = "The platform team owns production"

  [[group.grant]]
  role = "Workspace Owner"
"#;

async fn start(seed_text: &str) -> SimHandle {
    sim::start(seed_text, "127.0.0.1:0")
        .await
        .expect("sim starts")
}

fn config(h: &SimHandle, secret: AzureSecret) -> IdpConfig {
    IdpConfig {
        kind: IdpKind::AzureAd,
        url: format!("{}/graph/v1.0", h.url()),
        credential: IdpCredential::Azure(AzureCredential {
            tenant_id: "sim-tenant".into(),
            client_id: "sim-client".into(),
            secret,
            login_url: format!("{}/graph/login", h.url()),
        }),
        user_attribute: UserAttribute::UserPrincipalName,
        propagation_window: Duration::from_secs(60),
        event_lookback: Duration::from_secs(3600),
    }
}

fn client(h: &SimHandle) -> Azure {
    let cfg = config(h, AzureSecret::ClientSecret(Secret::new(SECRET)));
    Azure::new(&cfg, RetryConfig::fast(), RequestStats::new()).expect("client")
}

async fn state(h: &SimHandle) -> Value {
    Client::new()
        .get(format!("{}/_sim/state", h.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Requests the sim answered for `key` ("GET /groups/{id}/members 200").
async fn requests(h: &SimHandle, key: &str) -> u64 {
    state(h).await["azure"]["requests"][key]
        .as_u64()
        .unwrap_or(0)
}

async fn control(h: &SimHandle, method: reqwest::Method, path: &str, body: Value) -> Value {
    let resp = Client::new()
        .request(method, format!("{}/_sim{path}", h.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap()
}

async fn token(h: &SimHandle) -> String {
    let resp: Value = Client::new()
        .post(format!(
            "{}/graph/login/sim-tenant/oauth2/v2.0/token",
            h.url()
        ))
        .form(&[
            ("client_id", "sim-client"),
            ("client_secret", SECRET),
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    resp["access_token"].as_str().unwrap().to_string()
}

async fn graph_get(h: &SimHandle, tok: &str, path_and_query: &str) -> reqwest::Response {
    Client::new()
        .get(format!("{}/graph/v1.0{path_and_query}", h.url()))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap()
}

fn found(read: &[(GroupRef, GroupRead)], i: usize) -> &scimwatch::model::IdpGroup {
    match &read[i].1 {
        GroupRead::Found(g) => g,
        other => panic!("not found: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// the client

#[tokio::test]
async fn direct_members_with_status_and_nested_groups_with_the_people_they_reach() {
    let h = start(&seed("")).await;
    let az = client(&h);
    let read = az
        .read_mapped_groups(&[GroupRef::Name("Segment Prod Owners".into())])
        .await
        .unwrap();
    let g = found(&read.groups, 0);
    let mut members: Vec<(String, IdpStatus)> = g
        .members
        .iter()
        .map(|m| (m.key.to_string(), m.status.clone()))
        .collect();
    members.sort();
    assert_eq!(
        members,
        vec![
            ("ana@acme.test".to_string(), IdpStatus::Active),
            ("carl@acme.test".to_string(), IdpStatus::Deprovisioned),
        ],
        "direct members only, disabled accounts marked"
    );
    let nested = &read.nested[&g.id];
    assert_eq!(nested.len(), 1);
    assert_eq!(nested[0].name, "Contractors");
    let mut people: Vec<String> = nested[0].people.iter().map(|p| p.key.to_string()).collect();
    people.sort();
    assert_eq!(people, ["ana@acme.test", "dora@acme.test", "eli@acme.test"]);
    // read_groups is the same without the nested part.
    let plain = az
        .read_groups(&[GroupRef::Name("Segment Prod Owners".into())])
        .await
        .unwrap();
    assert_eq!(found(&plain, 0), g);
    // An Azure-only seed writes an azure_ad config, and refuses to write an Okta one.
    let dir = Path::new("/tmp");
    assert!(h.config_toml(dir, "").contains("kind = \"azure_ad\""));
    let err = h
        .config_toml_for(dir, "", Some(sim::IdpKind::Okta))
        .unwrap_err();
    assert!(err.to_string().contains("no [okta] section"), "{err}");
    h.stop().await;
}

#[tokio::test]
async fn an_ambiguous_display_name_is_unresolved_and_lists_the_ids() {
    let h = start(&seed("")).await;
    let az = client(&h);
    let read = az
        .read_groups(&[
            GroupRef::Name("Twin".into()),
            GroupRef::Id(TWIN_A.into()),
            GroupRef::Name("No Such Group".into()),
            GroupRef::Id("not-a-guid".into()),
        ])
        .await
        .unwrap();
    match &read[0].1 {
        GroupRead::Unresolved { reason } => {
            assert!(reason.contains("ambiguous"), "{reason}");
            assert!(
                reason.contains(TWIN_A) && reason.contains(TWIN_B),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    let by_id = found(&read, 1);
    assert_eq!(by_id.name, "Twin");
    assert_eq!(by_id.members.len(), 1);
    assert!(
        matches!(&read[2].1, GroupRead::Unresolved { reason } if reason.contains("no Entra ID group"))
    );
    assert!(matches!(&read[3].1, GroupRead::Unresolved { .. }));
    h.stop().await;
}

#[tokio::test]
async fn members_are_read_across_every_page_with_select_and_top_999() {
    let mut users = String::new();
    let mut members = Vec::new();
    for i in 0..2100 {
        users.push_str(&format!(
            "[[azure.user]]\nupn = \"u{i:04}@big.test\"\naccount_enabled = {}\n",
            i % 7 != 0
        ));
        members.push(format!("\"u{i:04}@big.test\""));
    }
    let text = format!(
        "[azure]\ntenant_id = \"sim-tenant\"\nclient_id = \"sim-client\"\nclient_secret = \"{SECRET}\"\n{users}\n[[azure.group]]\nname = \"Big\"\nmembers = [{}]\n",
        members.join(",")
    );
    let h = start(&text).await;
    let az = client(&h);
    let read = az
        .read_groups(&[GroupRef::Name("Big".into())])
        .await
        .unwrap();
    let g = found(&read, 0);
    assert_eq!(g.members.len(), 2100);
    let disabled = g.members.iter().filter(|m| !m.status.is_active()).count();
    assert_eq!(disabled, 300);
    assert_eq!(
        requests(&h, "GET /groups/{id}/members 200").await,
        3,
        "999 + 999 + 102"
    );

    // What the sim does with $select and $top, seen raw.
    let tok = token(&h).await;
    let gid = &g.id;
    let page: Value = graph_get(
        &h,
        &tok,
        &format!("/groups/{gid}/members?$top=5000&$select=id,accountEnabled"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        page["value"].as_array().unwrap().len(),
        999,
        "$top is capped at 999"
    );
    let first = page["value"][0].as_object().unwrap();
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["@odata.type", "accountEnabled", "id"]);
    assert!(page["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("$metadata#directoryObjects"));
    let next = page["@odata.nextLink"].as_str().unwrap();
    assert!(next.contains("$skiptoken="), "{next}");
    // The default user set has no accountEnabled.
    let user: Value = graph_get(&h, &tok, "/users/u0001@big.test")
        .await
        .json()
        .await
        .unwrap();
    assert!(user.get("accountEnabled").is_none(), "{user}");
    assert_eq!(user["userPrincipalName"], "u0001@big.test");
    // A forged skiptoken is refused; a skiptoken is bound to its query.
    let forged = graph_get(
        &h,
        &tok,
        &format!("/groups/{gid}/members?$top=999&$skiptoken=AAAA"),
    )
    .await;
    assert_eq!(forged.status(), 400);
    let body: Value = forged.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Request_BadRequest");
    assert!(body["error"]["innerError"]["request-id"].is_string());
    // $count without ConsistencyLevel is an unsupported advanced query; with it, fine.
    let r = graph_get(&h, &tok, "/groups?$count=true").await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "Request_UnsupportedQuery"
    );
    let r = Client::new()
        .get(format!("{}/graph/v1.0/groups?$count=true", h.url()))
        .bearer_auth(&tok)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["@odata.count"], 1);
    h.stop().await;
}

#[tokio::test]
async fn lookups_by_upn_and_by_mail() {
    let h = start(&seed("")).await;
    let az = client(&h);
    let found = az
        .lookup_users(&[Email::new("Bob@acme.test"), Email::new("gone@acme.test")])
        .await
        .unwrap();
    assert!(
        matches!(&found[&Email::new("bob@acme.test")], UserLookup::Found(u) if u.status == IdpStatus::Active)
    );
    assert_eq!(found[&Email::new("gone@acme.test")], UserLookup::NotFound);
    let mut cfg = config(&h, AzureSecret::ClientSecret(Secret::new(SECRET)));
    cfg.user_attribute = UserAttribute::Mail;
    let by_mail = Azure::new(&cfg, RetryConfig::fast(), RequestStats::new()).unwrap();
    let found = by_mail
        .lookup_users(&[Email::new("dora.mail@acme.test")])
        .await
        .unwrap();
    assert!(
        matches!(&found[&Email::new("dora.mail@acme.test")], UserLookup::Found(u) if u.login == "dora@acme.test")
    );
    h.stop().await;
}

#[tokio::test]
async fn throttled_reads_wait_what_retry_after_says() {
    let h = start(&seed("")).await;
    let az = client(&h);
    // Twice a 429 with Retry-After: 1 on the member list, then the real answer.
    control(
        &h,
        reqwest::Method::POST,
        "/faults",
        json!({"service": "graph", "path": "/members$", "status": 429, "count": 2}),
    )
    .await;
    let start = Instant::now();
    let read = az
        .read_groups(&[GroupRef::Name("Segment Prod Owners".into())])
        .await
        .unwrap();
    assert_eq!(found(&read, 0).members.len(), 2);
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(requests(&h, "GET /groups/{id}/members 429").await, 2);
    assert_eq!(requests(&h, "GET /groups/{id}/members 200").await, 1);
    // 503 with Retry-After: waited too (not the 10 ms backoff of RetryConfig::fast).
    control(
        &h,
        reqwest::Method::POST,
        "/faults",
        json!({"service": "graph", "path": "/members$", "status": 503, "count": 1}),
    )
    .await;
    let start = Instant::now();
    az.read_groups(&[GroupRef::Name("Segment Prod Owners".into())])
        .await
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "{:?}",
        start.elapsed()
    );
    h.stop().await;
}

#[tokio::test]
async fn a_spent_resource_unit_budget_answers_429_with_graphs_headers() {
    let h = start(&seed("resource_units_per_10s = 4")).await;
    let tok = token(&h).await;
    // members with $select costs 2: two fit, the third does not.
    let path = "/groups?$select=id&$filter=displayName%20eq%20'Twin'";
    let a = graph_get(&h, &tok, path).await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.headers()["x-ms-resource-unit"], "1");
    assert!(a.headers().contains_key("request-id"));
    for _ in 0..2 {
        graph_get(&h, &tok, path).await;
    }
    // The fourth spends the whole budget: past 80 %, Graph reports the usage as a
    // fraction of the limit (0.8 to 1.8), never a whole percentage.
    let full = graph_get(&h, &tok, path).await;
    assert_eq!(full.status(), 200);
    let used: f64 = full.headers()["x-ms-throttle-limit-percentage"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.8..=1.8).contains(&used) && used > 0.8, "{used}");
    let r = graph_get(&h, &tok, path).await;
    assert_eq!(r.status(), 429);
    let secs: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&secs), "{secs}");
    // `<Scope>/<Limit>/<AppId>/<TenantId>`, Limit one of Read, Write, ReadWrite.
    let scope: Vec<&str> = r.headers()["x-ms-throttle-scope"]
        .to_str()
        .unwrap()
        .split('/')
        .collect();
    assert_eq!(scope.len(), 4, "{scope:?}");
    assert!(!scope[0].is_empty(), "{scope:?}");
    assert!(
        ["Read", "Write", "ReadWrite"].contains(&scope[1]),
        "{scope:?}"
    );
    assert_eq!(&scope[2..], ["sim-client", "sim-tenant"]);
    assert_eq!(
        r.headers()["x-ms-throttle-information"],
        "ResourceUnitLimitExceeded"
    );
    h.stop().await;
}

#[tokio::test]
async fn the_token_is_cached_and_renewed_before_it_expires() {
    let h = start(&seed("token_lifetime = \"2s\"")).await;
    let az = client(&h);
    let refs = [GroupRef::Name("Agency".into())];
    az.read_groups(&refs).await.unwrap();
    az.read_groups(&refs).await.unwrap();
    assert_eq!(
        requests(&h, "POST /oauth2/v2.0/token 200").await,
        1,
        "cached"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    az.read_groups(&refs).await.unwrap();
    assert_eq!(
        requests(&h, "POST /oauth2/v2.0/token 200").await,
        2,
        "renewed at half its life"
    );
    // An expired token is refused by the sim.
    let tok = token(&h).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = graph_get(&h, &tok, "/groups").await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "InvalidAuthenticationToken"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_certificate_assertion_is_accepted_and_a_foreign_one_refused() {
    let h = start(&seed("")).await;
    let cert = AzureSecret::Certificate {
        certificate_pem: fixture("cert.pem"),
        key_pem: Secret::new(fixture("key.pem")),
    };
    let az = Azure::new(&config(&h, cert), RetryConfig::fast(), RequestStats::new()).unwrap();
    let read = az
        .read_groups(&[GroupRef::Name("Agency".into())])
        .await
        .unwrap();
    assert_eq!(found(&read, 0).members.len(), 1);
    assert!(!format!("{az:?}").contains("PRIVATE KEY"));

    let other = AzureSecret::Certificate {
        certificate_pem: fixture("other_cert.pem"),
        key_pem: Secret::new(fixture("other_key.pem")),
    };
    let az = Azure::new(&config(&h, other), RetryConfig::fast(), RequestStats::new()).unwrap();
    let err = az
        .read_groups(&[GroupRef::Name("Agency".into())])
        .await
        .unwrap_err();
    assert!(matches!(err, IdpError::Auth { .. }), "{err}");
    assert!(err.to_string().contains("AADSTS700027"), "{err}");

    // A wrong secret: refused, and the secret is in no error or Debug.
    let bad = AzureSecret::ClientSecret(Secret::new("wrong-secret-value"));
    let az = Azure::new(&config(&h, bad), RetryConfig::fast(), RequestStats::new()).unwrap();
    let err = az
        .read_groups(&[GroupRef::Name("Agency".into())])
        .await
        .unwrap_err();
    let text = format!("{err} {err:?} {az:?}");
    assert!(text.contains("AADSTS7000215"), "{text}");
    assert!(!text.contains("wrong-secret-value"), "{text}");
    h.stop().await;
}

#[tokio::test]
async fn failures_and_timeouts_are_errors_never_empty_lists() {
    let h = start(&seed("")).await;
    control(
        &h,
        reqwest::Method::POST,
        "/faults",
        json!({"service": "graph", "path": "/members$", "status": 500}),
    )
    .await;
    let err = client(&h)
        .read_groups(&[GroupRef::Name("Segment Prod Owners".into())])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("500"), "{err}");
    control(&h, reqwest::Method::DELETE, "/faults", json!({})).await;
    control(
        &h,
        reqwest::Method::POST,
        "/faults",
        json!({"service": "graph", "path": "/members$", "delay_ms": 1500}),
    )
    .await;
    let cfg = config(&h, AzureSecret::ClientSecret(Secret::new(SECRET)));
    let retry = RetryConfig {
        timeout: Duration::from_millis(300),
        max_retries: 1,
        ..RetryConfig::fast()
    };
    let az = Azure::new(&cfg, retry, RequestStats::new()).unwrap();
    let err = az
        .read_groups(&[GroupRef::Name("Segment Prod Owners".into())])
        .await
        .unwrap_err();
    assert!(matches!(err, IdpError::Transport { .. }), "{err}");
    h.stop().await;
}

#[tokio::test]
async fn directory_audits_date_the_changes_the_control_api_makes() {
    let h = start(&seed("")).await;
    let before = Utc::now() - chrono::Duration::seconds(1);
    control(
        &h,
        reqwest::Method::POST,
        "/azure/groups/Segment Prod Owners/members",
        json!({"upn": "bob@acme.test"}),
    )
    .await;
    control(
        &h,
        reqwest::Method::POST,
        "/azure/users/ana@acme.test/enabled",
        json!({"enabled": false}),
    )
    .await;
    control(
        &h,
        reqwest::Method::POST,
        "/azure/groups/Segment Prod Owners/member-groups",
        json!({"name": "Agency"}),
    )
    .await;
    control(
        &h,
        reqwest::Method::DELETE,
        "/azure/users/dora@acme.test",
        json!({}),
    )
    .await;
    let events = client(&h).events_since(before).await.unwrap();
    let kinds: Vec<&IdpEventKind> = events.iter().map(|e| &e.kind).collect();
    assert_eq!(
        kinds,
        [
            &IdpEventKind::MembershipAdd,
            &IdpEventKind::UserDeactivate,
            &IdpEventKind::UserDeleteInitiated
        ],
        "a nested group added is not a person's event"
    );
    assert_eq!(events[0].user_login, Some(Email::new("bob@acme.test")));
    assert_eq!(events[0].group_name.as_deref(), Some("Segment Prod Owners"));
    assert!(events[0].published >= before);
    assert_eq!(events[0].actor.as_deref(), Some("admin@sim.test"));
    // Nothing before `since`.
    assert!(client(&h)
        .events_since(Utc::now() + chrono::Duration::seconds(5))
        .await
        .unwrap()
        .is_empty());
    // The membership and the disable are queued for the next cycle, not pushed yet (dora
    // was in no provisioned group, and a nested group provisions nothing).
    let st = state(&h).await;
    let queue: Vec<&str> = st["azure"]["cycle_queue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["op"].as_str().unwrap())
        .collect();
    assert_eq!(queue, ["add_member", "deprovision"]);
    h.stop().await;
}

// ---------------------------------------------------------------------------------------
// check and validate, end to end

struct Files {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

fn files(h: &SimHandle, extra: &str) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let mappings = dir.path().join("mappings");
    std::fs::create_dir(&mappings).unwrap();
    std::fs::write(mappings.join("production.toml"), MAPPING).unwrap();
    let text = h
        .config_toml_for(&mappings, extra, Some(sim::IdpKind::AzureAd))
        .unwrap();
    let config = dir.path().join("scimwatch.toml");
    std::fs::write(&config, text).unwrap();
    Files { _dir: dir, config }
}

async fn scimwatch(config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn kinds(doc: &Value) -> Vec<(String, String)> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_the_nested_group_entra_leaves_out() {
    let h = start(&seed("")).await;
    let f = files(&h, "");
    let (code, stdout, stderr) = scimwatch(&f.config, &["check", "--output", "json"]).await;
    assert_eq!(code, Some(1), "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["idp"], "azure_ad");
    assert_eq!(
        kinds(&doc),
        [(
            "nested_group_not_provisioned".to_string(),
            "drift".to_string()
        )]
    );
    let n = &doc["findings"][0];
    assert_eq!(n["severity"], "warning");
    assert_eq!(n["group"], "Segment Prod Owners");
    assert_eq!(n["nested_group"], "Contractors");
    assert_eq!(
        n["people_left_out"], 2,
        "dora and eli (ana is a direct member)"
    );
    assert_eq!(n["reverted_by_scim"], false);
    assert!(n["deadline"].is_null());
    assert!(
        n["message"]
            .as_str()
            .unwrap()
            .contains("Entra ID provisions only direct members"),
        "{n}"
    );

    // validate resolves the mapping against Entra and Segment.
    let (code, stdout, stderr) = scimwatch(&f.config, &["validate"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("Entra ID"), "{stdout}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entra_change_is_pending_until_a_cycle_carries_it() {
    let h = start(&seed("")).await;
    let f = files(&h, "propagation_window = \"90m\"");
    control(
        &h,
        reqwest::Method::POST,
        "/azure/groups/Segment Prod Owners/members",
        json!({"upn": "bob@acme.test"}),
    )
    .await;
    let (code, stdout, stderr) = scimwatch(&f.config, &["check", "--output", "json"]).await;
    assert_eq!(code, Some(1), "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let bob: Vec<&Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["user"] == "bob@acme.test")
        .collect();
    assert_eq!(bob.len(), 1, "{doc}");
    assert_eq!(bob[0]["kind"], "user_not_provisioned");
    assert_eq!(bob[0]["state"], "pending");
    assert!(!bob[0]["deadline"].is_null());
    assert!(
        bob[0]["message"]
            .as_str()
            .unwrap()
            .contains("provisioning cycle"),
        "{}",
        bob[0]
    );

    // A cycle pushes it: bob arrives, only the nested group is left.
    let pushed = control(&h, reqwest::Method::POST, "/push/cycle", json!({})).await;
    assert_eq!(pushed["pushed"], 1);
    let (code, stdout, _) = scimwatch(&f.config, &["check", "--output", "json"]).await;
    assert_eq!(code, Some(1));
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        kinds(&doc),
        [(
            "nested_group_not_provisioned".to_string(),
            "drift".to_string()
        )]
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_that_keeps_failing_makes_check_exit_2_with_nothing_on_stdout() {
    let h = start(&seed("")).await;
    let f = files(&h, "");
    control(
        &h,
        reqwest::Method::POST,
        "/faults",
        json!({"service": "graph", "path": "/transitiveMembers", "status": 503}),
    )
    .await;
    let (code, stdout, stderr) = scimwatch(&f.config, &["check", "--output", "json"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("scimwatch check: graph: GET"), "{stderr}");
    assert!(last.contains("503"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_is_a_403_that_fails_the_check() {
    let h = start(&seed(
        "roles = [\"GroupMember.Read.All\", \"User.Read.All\"]",
    ))
    .await;
    let f = files(&h, "");
    let (code, stdout, stderr) = scimwatch(&f.config, &["check"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("403 Authorization_RequestDenied"),
        "{stderr}"
    );
    assert!(stderr.contains("auditLogs"), "{stderr}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_entra_check_costs_few_requests() {
    let h = start(&seed("")).await;
    let f = files(&h, "");
    let (code, _, stderr) = scimwatch(&f.config, &["check"]).await;
    assert_eq!(code, Some(1), "{stderr}");
    let st = state(&h).await;
    let reqs = st["azure"]["requests"].as_object().unwrap();
    let total: u64 = reqs.values().filter_map(Value::as_u64).sum();
    // token + group by name + members + transitiveMembers (the nested group) + audits.
    assert_eq!(total, 5, "{reqs:#?}");
    h.stop().await;
}

// ---------------------------------------------------------------------------------------
// parity: one organisation, seeded once as Okta and once as Entra

type Key = (String, String, String, String, String);

/// Starts the sim with `seed_text`, makes the same changes through the IdP's control API
/// and by hand in Segment, runs `check --output json` with the shipped mappings, and
/// returns each finding as (id, kind, state, severity, subject).
async fn findings_after_the_same_changes(seed_text: &str, idp: sim::IdpKind) -> Vec<Key> {
    let h = start(seed_text).await;
    let dir = tempfile::tempdir().unwrap();
    let mappings = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let config = dir.path().join("scimwatch.toml");
    std::fs::write(
        &config,
        h.config_toml_for(&mappings, "", Some(idp)).unwrap(),
    )
    .unwrap();
    let post = reqwest::Method::POST;
    // IdP side, not carried yet: Okta's push is paused, Entra's cycle is 40 minutes away.
    control(&h, post.clone(), "/push", json!({"mode": "paused"})).await;
    match idp {
        sim::IdpKind::Okta => {
            control(
                &h,
                post.clone(),
                "/okta/users/tara.singh@acme.test/status",
                json!({"status": "DEPROVISIONED"}),
            )
            .await;
            control(
                &h,
                post.clone(),
                "/okta/groups/Segment Marketing/members",
                json!({"login": "olivia.chen@acme.test"}),
            )
            .await;
        }
        sim::IdpKind::AzureAd => {
            control(
                &h,
                post.clone(),
                "/azure/users/tara.singh@acme.test/enabled",
                json!({"enabled": false}),
            )
            .await;
            control(
                &h,
                post.clone(),
                "/azure/groups/Segment Marketing/members",
                json!({"upn": "olivia.chen@acme.test"}),
            )
            .await;
        }
    }
    // Segment side, by hand: a member added to the owners, a direct owner grant.
    let c = Client::new();
    let seg = |path: &str| format!("{}/segment/production{path}", h.url());
    let groups: Value = c
        .get(seg("/groups?pagination.count=100"))
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
    let r = c
        .post(seg(&format!("/groups/{owners}/users")))
        .bearer_auth("ui-ana-token")
        .json(&json!({"emails": ["maria.garcia@acme.test"]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let users: Value = c
        .get(seg("/users?pagination.count=1000"))
        .bearer_auth("ui-ana-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let omar = users["data"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "omar.khan@acme.test")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ws: Value = c
        .get(seg("/"))
        .bearer_auth("ui-ana-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ws_id = ws["data"]["workspace"]["id"].as_str().unwrap().to_string();
    let r = c
        .post(seg(&format!("/users/{omar}/permissions")))
        .bearer_auth("ui-ana-token")
        .json(&json!({"permissions": [{"roleId": "1WDUuRLxv84rrfCNUwvkrRtkxnS", "resources": [{"id": ws_id, "type": "WORKSPACE"}]}]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let (code, stdout, stderr) = scimwatch(&config, &["check", "--output", "json"]).await;
    assert_eq!(code, Some(1), "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["idp"], idp.as_str());
    h.stop().await;
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let mut out: Vec<Key> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let subject = format!(
                "{}|{}|{}",
                s(&f["user"]),
                s(&f["group"]),
                s(&f["nested_group"])
            );
            (
                s(&f["id"]),
                s(&f["kind"]),
                s(&f["state"]),
                s(&f["severity"]),
                subject,
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_organisation_in_okta_and_in_entra_gives_the_same_findings_but_the_nested_group() {
    let okta_seed = include_str!("../../deploy/demo-seed.toml");
    let azure_seed = include_str!("../../deploy/demo-seed-azure.toml");
    let okta = findings_after_the_same_changes(okta_seed, sim::IdpKind::Okta).await;
    let entra = findings_after_the_same_changes(azure_seed, sim::IdpKind::AzureAd).await;
    let kinds: Vec<&str> = okta.iter().map(|k| k.1.as_str()).collect();
    for k in [
        "membership_unexpected",
        "direct_grant",
        "deactivated_user_present",
        "user_not_provisioned",
    ] {
        assert!(kinds.contains(&k), "{k} missing: {okta:#?}");
    }
    let extra: Vec<&Key> = entra.iter().filter(|k| !okta.contains(k)).collect();
    let missing: Vec<&Key> = okta.iter().filter(|k| !entra.contains(k)).collect();
    assert!(missing.is_empty(), "Entra lacks {missing:#?}");
    assert_eq!(extra.len(), 1, "{extra:#?}");
    assert_eq!(extra[0].1, "nested_group_not_provisioned");
    assert_eq!(extra[0].4, "|Segment Analytics Engineers|Data Contractors");
}

#[tokio::test]
async fn an_empty_page_with_a_next_link_is_followed_not_taken_for_the_end() {
    let h = start(&seed("empty_first_pages = true")).await;
    let read = client(&h)
        .read_mapped_groups(&[GroupRef::Name("Segment Prod Owners".into())])
        .await
        .unwrap();
    let g = found(&read.groups, 0);
    assert_eq!(g.members.len(), 2);
    assert_eq!(read.nested[&g.id][0].people.len(), 3);
    assert_eq!(requests(&h, "GET /groups/{id}/members 200").await, 2);
    assert_eq!(requests(&h, "GET /groups 200").await, 2);
    h.stop().await;
}

#[tokio::test]
async fn a_refused_token_is_renewed_once_and_the_read_goes_on() {
    let h = start(&seed("")).await;
    let az = client(&h);
    let refs = [GroupRef::Name("Agency".into())];
    az.read_groups(&refs).await.unwrap();
    control(&h, reqwest::Method::POST, "/azure/tokens/revoke", json!({})).await;
    let read = az.read_groups(&refs).await.unwrap();
    assert_eq!(found(&read, 0).members.len(), 1);
    assert_eq!(requests(&h, "GET /groups 401").await, 1);
    assert_eq!(requests(&h, "POST /oauth2/v2.0/token 200").await, 2);
    h.stop().await;
}
