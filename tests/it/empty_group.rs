//! An empty group is suspected, not believed: one mapped Okta group answering `200 []`
//! (behind a proxy in front of the simulator) fails `check` and the daemon's pass naming
//! the group, instead of accusing its ten members of being added by hand. A group emptied
//! on purpose (its removals in the System Log) is believed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use scimwatch::app::Session;
use scimwatch::daemon::Daemon;
use scimwatch::http::RetryConfig;
use scimwatch::triggers::Reason;
use scimwatch_sim::{self as sim, SimHandle};
use serde_json::Value;

const SEED: &str = include_str!("../../deploy/demo-seed.toml");
const GROUP: &str = "Segment Analytics Engineers";

fn mappings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings")
}

/// Forwards everything to the simulator, except the member list of the group whose id
/// is in `empty`, answered `200 []`.
#[derive(Clone)]
struct Proxy {
    upstream: String,
    empty: Arc<Mutex<Option<String>>>,
    emptied: Arc<Mutex<u32>>,
}

async fn forward(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = p.empty.lock().unwrap().clone();
    if let Some(id) = target {
        if method == Method::GET && uri.path() == format!("/okta/api/v1/groups/{id}/users") {
            *p.emptied.lock().unwrap() += 1;
            return (StatusCode::OK, [("content-type", "application/json")], "[]").into_response();
        }
    }
    let url = format!(
        "{}{}",
        p.upstream,
        uri.path_and_query().map(|q| q.as_str()).unwrap_or("/")
    );
    let mut req = reqwest::Client::new().request(method, &url).body(body);
    for (k, v) in &headers {
        if k != "host" {
            req = req.header(k, v);
        }
    }
    let answer = req.send().await.unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let mut out = HeaderMap::new();
    for (k, v) in answer.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            out.insert(k.clone(), v.clone());
        }
    }
    let bytes = answer.bytes().await.unwrap();
    (status, out, bytes).into_response()
}

async fn proxy(sim: &SimHandle) -> (String, Proxy) {
    let p = Proxy {
        upstream: sim.url().to_string(),
        empty: Default::default(),
        emptied: Default::default(),
    };
    let app = axum::Router::new().fallback(forward).with_state(p.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), p)
}

/// The Okta id of `name`, from the simulator's state.
async fn group_id(sim: &SimHandle, name: &str) -> String {
    let state: Value = reqwest::get(format!("{}/_sim/state", sim.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let groups = &state["okta"]["groups"];
    let found = match groups {
        Value::Array(a) => a.iter().find(|g| g["name"] == name).cloned(),
        Value::Object(m) => m.values().find(|g| g["name"] == name).cloned(),
        _ => None,
    };
    let g = found.unwrap_or_else(|| panic!("no group {name} in {groups:#}"));
    g["id"].as_str().unwrap().to_string()
}

/// The config and mappings, with Okta reached through the proxy.
fn loaded(sim: &SimHandle, proxy_url: &str, dir: &Path) -> scimwatch::app::Loaded {
    let text = format!(
        "{}\n[store]\npath = \"{}\"\n[sync]\ninterval = \"1h\"\n[triggers]\nsystem_log_poll = \"0s\"\naudit_poll = \"0s\"\n",
        sim.config_toml(&mappings_dir(), "propagation_window = \"60m\""),
        dir.join("scimwatch.db").display()
    )
    .replace(
        &format!("url = \"{}/okta\"", sim.url()),
        &format!("url = \"{proxy_url}/okta\""),
    );
    assert!(text.contains(proxy_url), "{text}");
    let config =
        scimwatch::config::load_str(&text, Path::new("/tmp/scimwatch.toml"), &Default::default())
            .expect("config");
    let known: Vec<String> = config.workspaces.iter().map(|w| w.name.clone()).collect();
    let mappings = scimwatch::mapping::load_dir(
        &mappings_dir(),
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &known,
        chrono::Utc::now(),
    )
    .expect("mappings");
    scimwatch::app::Loaded { config, mappings }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_a_group_that_answers_empty_while_its_mirror_has_members() {
    let sim = sim::start(SEED, "127.0.0.1:0").await.unwrap();
    let (url, p) = proxy(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let l = loaded(&sim, &url, dir.path());
    let session = Session::build(l.config, l.mappings, None).unwrap();
    // Through the proxy, untouched: clean.
    let report = session.check(chrono::Utc::now()).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{:?}", report.findings);

    *p.empty.lock().unwrap() = Some(group_id(&sim, GROUP).await);
    let err = session
        .check(chrono::Utc::now())
        .await
        .expect_err("partial data fails the pass (check exits 2)");
    let text = err.to_string();
    assert!(text.contains(GROUP), "names the group: {text}");
    assert!(text.contains("reads empty"), "{text}");
    assert!(text.contains("10 members"), "says what it expected: {text}");
    assert_eq!(
        *p.emptied.lock().unwrap(),
        2,
        "read once more before refusing"
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_emptied_on_purpose_is_believed() {
    let sim = sim::start(SEED, "127.0.0.1:0").await.unwrap();
    let (url, _p) = proxy(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    // Push paused: Segment still has the members while Okta's log has the removals.
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/_sim/push", sim.url()))
        .json(&serde_json::json!({"mode": "paused"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let members = [
        "carla.mendes@acme.test",
        "dev.patel@acme.test",
        "emma.jones@acme.test",
        "farid.haddad@acme.test",
        "grace.liu@acme.test",
        "hugo.martin@acme.test",
        "ines.costa@acme.test",
        "jack.wu@acme.test",
        "kim.nguyen@acme.test",
        "liam.oconnor@acme.test",
    ];
    for who in members {
        let r = client
            .delete(format!(
                "{}/_sim/okta/groups/{}/members/{who}",
                sim.url(),
                GROUP.replace(' ', "%20")
            ))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{who}: {}", r.status());
    }
    let l = loaded(&sim, &url, dir.path());
    let session = Session::build(l.config, l.mappings, None).unwrap();
    let report = session.check(chrono::Utc::now()).await.expect("believed");
    let pending = report
        .findings
        .iter()
        .filter(|f| f.kind.as_str() == "membership_unexpected")
        .count();
    assert!(pending >= members.len(), "{:?}", report.findings);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_changes_no_finding_and_counts_the_idp_as_failed() {
    let sim = sim::start(SEED, "127.0.0.1:0").await.unwrap();
    let (url, p) = proxy(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let l = loaded(&sim, &url, dir.path());
    let d = Arc::new(
        Daemon::build(l.config, l.mappings, RetryConfig::fast())
            .await
            .unwrap(),
    );
    let first = d.activate([Reason::Startup].into()).await;
    assert!(first.ok(), "{first:?}");
    let before = d.server.findings.read().unwrap().clone();

    *p.empty.lock().unwrap() = Some(group_id(&sim, GROUP).await);
    // A full pass (an operator's request) reads the group; a tick reads it in its turn
    // of the rolling refresh and meets the same guard.
    let second = d.activate([Reason::FullPass].into()).await;
    let err = second.outcome.clone().expect_err("the pass fails");
    assert!(
        err.contains(GROUP) && err.contains("last read had 10 members"),
        "{err}"
    );
    assert!(second.failures.idp.is_some(), "the IdP counts as failed");
    let open = d.store.findings_open().await.unwrap();
    assert!(
        open.iter()
            .all(|f| f.finding.kind.as_str() != "membership_unexpected"),
        "no false accusation: {open:?}"
    );
    assert_eq!(*d.server.findings.read().unwrap(), before);
    sim.stop().await;
}
