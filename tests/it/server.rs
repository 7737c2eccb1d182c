//! The daemon's HTTP surface, served for real on 127.0.0.1:0 and asked with reqwest:
//! health and readiness, the metrics exposition, bearer-guarded status and findings, and
//! the Okta Event Hook receiver (verification, shared secret, dedupe, separate router).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use scimwatch::http::{Http, RequestStats, RetryConfig, ServicePolicy};
use scimwatch::metrics::Metrics;
use scimwatch::secret::Secret;
use scimwatch::server::{hooks_router, router, OktaHook, Readiness, ServerState};
use scimwatch::triggers::{Activator, Reason};
use serde_json::{json, Value};

const TOKEN: &str = "status-token-do-not-print";
const HOOK_SECRET: &str = "hook-secret-do-not-print";
const HOOK_HEADER: &str = "Authorization";

fn state(hook: bool, token: bool) -> Arc<ServerState> {
    Arc::new(ServerState {
        metrics: Metrics::new(),
        requests: RequestStats::new(),
        activator: Activator::new(),
        alerts: Default::default(),
        status: RwLock::new(json!({"triggers": {}, "next_deadline": null})),
        findings: RwLock::new(None),
        ready: RwLock::new(Readiness {
            last_full_success: None,
            interval: Duration::from_secs(600),
            refresh_behind: None,
            full_refresh: Duration::from_secs(43_200),
        }),
        graph_hook: None,
        okta_hook: hook.then(|| OktaHook {
            secret: Secret::new(HOOK_SECRET),
            header: HOOK_HEADER.to_string(),
        }),
        auth_token: token.then(|| Secret::new(TOKEN)),
        seen_events: Mutex::new(VecDeque::new()),
        dead: std::sync::RwLock::new(None),
    })
}

/// Serves `app` on 127.0.0.1:0; returns `http://127.0.0.1:PORT`.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

async fn get_text(url: &str) -> (StatusCode, String) {
    let r = reqwest::get(url).await.expect("request");
    let status = r.status();
    (status, r.text().await.expect("body"))
}

fn delivery(uuids: &[&str]) -> Value {
    let events: Vec<Value> = uuids
        .iter()
        .map(|u| {
            json!({"uuid": u, "eventType": "group.user_membership.add",
                   "published": "2025-03-28T17:03:37.093Z",
                   "actor": {"alternateId": "admin@example.com"}})
        })
        .collect();
    json!({"eventType": "com.okta.event_hook", "eventTypeVersion": "1.0",
           "eventId": "85b60edb-4263-4e13-993b-818e26201052",
           "data": {"events": events}})
}

async fn post_hook(base: &str, secret: Option<&str>, body: String) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/hooks/okta"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(s) = secret {
        req = req.header(HOOK_HEADER, s);
    }
    req.send().await.expect("post")
}

/// `true` when an activation arrives within a short window.
async fn activated(activator: &Activator) -> Option<Vec<Reason>> {
    tokio::time::timeout(Duration::from_millis(200), activator.next())
        .await
        .ok()
        .map(|r| r.into_iter().collect())
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn livez_and_readyz_follow_the_last_full_success() {
    let st = state(false, false);
    let base = serve(router(st.clone(), true)).await;

    assert_eq!(
        get_text(&format!("{base}/livez")).await,
        (StatusCode::OK, "ok\n".into())
    );

    let (status, body) = get_text(&format!("{base}/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("no successful pass yet"), "{body}");

    st.ready.write().unwrap().last_full_success = Some(Utc::now() - chrono::Duration::minutes(5));
    let (status, _) = get_text(&format!("{base}/readyz")).await;
    assert_eq!(status, StatusCode::OK);

    // 3 × 10 min is the window; 31 min ago is too old.
    st.ready.write().unwrap().last_full_success = Some(Utc::now() - chrono::Duration::minutes(31));
    let (status, body) = get_text(&format!("{base}/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("last successful pass at"), "{body}");
}

struct Plain;
impl ServicePolicy for Plain {
    fn retry_after(
        &self,
        _: reqwest::StatusCode,
        _: &reqwest::header::HeaderMap,
        _: &[u8],
    ) -> Option<Duration> {
        None
    }
    fn pause_after(&self, _: &reqwest::header::HeaderMap) -> Option<Duration> {
        None
    }
}

#[tokio::test]
async fn metrics_expose_every_family_and_request_counts_without_people() {
    let st = state(false, false);
    // Feed the shared request stats through the real HTTP layer against a tiny server.
    let upstream = serve(Router::new().route("/api/v1/groups", get(|| async { "[]" }))).await;
    let http = Http::new(
        "okta",
        Arc::new(Plain),
        None,
        RetryConfig::fast(),
        st.requests.clone(),
    );
    let url = format!("{upstream}/api/v1/groups");
    for _ in 0..2 {
        http.send("GET /api/v1/groups", &|c: &reqwest::Client| c.get(&url))
            .await
            .expect("upstream answers");
    }
    st.metrics
        .pass_finished("periodic", "full", true, Duration::from_millis(1200));
    st.metrics.set_last_success(Utc::now());
    st.metrics.observe_latency(42.0);

    let base = serve(router(st.clone(), false)).await;
    let r = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics");
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.unwrap();
    for family in [
        "scimwatch_passes_total",
        "scimwatch_pass_duration_seconds",
        "scimwatch_api_requests_total",
        "scimwatch_rate_limit_wait_seconds_total",
        "scimwatch_open_findings",
        "scimwatch_propagation_latency_seconds",
        "scimwatch_last_success_timestamp_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{text}"
        );
    }
    assert!(
        text.contains(r#"scimwatch_api_requests_total{service="okta",endpoint="GET /api/v1/groups",status="200"} 2"#),
        "{text}"
    );
    assert!(text
        .contains(r#"scimwatch_passes_total{trigger="periodic",scope="full",result="success"} 1"#));
    assert!(!text.contains('@'), "{text}");
}

#[tokio::test]
async fn status_and_findings_need_the_bearer_token_when_set() {
    let st = state(false, true);
    let base = serve(router(st.clone(), false)).await;
    let client = reqwest::Client::new();

    for path in ["/status", "/findings"] {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let r = client
            .get(format!("{base}{path}"))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body = r.text().await.unwrap();
        assert!(!body.contains(TOKEN));
    }
    // Health and metrics stay open.
    for path in ["/livez", "/metrics"] {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }

    let r = client
        .get(format!("{base}/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["next_deadline"], Value::Null);

    let r = client
        .get(format!("{base}/findings"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, json!({"error": "no successful pass yet"}));

    let doc = r#"{"version":1,"findings":[]}"#;
    *st.findings.write().unwrap() = Some(doc.to_string());
    let r = client
        .get(format!("{base}/findings"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.unwrap(), doc);
}

#[tokio::test]
async fn status_and_findings_are_open_without_a_token() {
    let st = state(false, false);
    *st.findings.write().unwrap() = Some("{}".into());
    let base = serve(router(st, false)).await;
    assert_eq!(get_text(&format!("{base}/status")).await.0, StatusCode::OK);
    assert_eq!(
        get_text(&format!("{base}/findings")).await,
        (StatusCode::OK, "{}".into())
    );
}

#[tokio::test]
async fn okta_hook_verifies_checks_the_secret_and_drops_duplicates() {
    let st = state(true, false);
    let base = serve(router(st.clone(), true)).await;
    let client = reqwest::Client::new();

    // One-time verification.
    let r = client
        .get(format!("{base}/hooks/okta"))
        .header("X-Okta-Verification-Challenge", "v-123")
        .header(HOOK_HEADER, HOOK_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"verification": "v-123"})
    );
    let r = client
        .get(format!("{base}/hooks/okta"))
        .header("X-Okta-Verification-Challenge", "v-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Wrong or missing secret: 401, no activation.
    let body = delivery(&["uuid-1", "uuid-2"]).to_string();
    assert_eq!(
        post_hook(&base, Some("nope"), body.clone()).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post_hook(&base, None, body.clone()).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(activated(&st.activator).await, None);

    // Right secret: 200 with an empty body and one activation.
    let r = post_hook(&base, Some(HOOK_SECRET), body.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "");
    assert_eq!(activated(&st.activator).await, Some(vec![Reason::OktaHook]));

    // The same events again (Okta delivers at least once): 200, no new activation.
    let r = post_hook(&base, Some(HOOK_SECRET), body).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(activated(&st.activator).await, None);

    // One new event among old ones wakes it again.
    let r = post_hook(
        &base,
        Some(HOOK_SECRET),
        delivery(&["uuid-2", "uuid-3"]).to_string(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(activated(&st.activator).await, Some(vec![Reason::OktaHook]));

    // An unreadable body still gets 200 and still wakes the reconciler.
    let r = post_hook(&base, Some(HOOK_SECRET), "{not json".into()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(activated(&st.activator).await, Some(vec![Reason::OktaHook]));

    // Over 1 MiB: refused.
    let big = "x".repeat((1 << 20) + 1);
    let r = post_hook(&base, Some(HOOK_SECRET), big).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn hooks_live_only_on_the_hooks_router_when_split() {
    let st = state(true, false);
    let main = serve(router(st.clone(), false)).await;
    let hooks = serve(hooks_router(st.clone())).await;
    let body = delivery(&["only-one"]).to_string();

    assert_eq!(
        post_hook(&main, Some(HOOK_SECRET), body.clone())
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(activated(&st.activator).await, None);
    // The public hooks address exposes nothing else.
    for path in ["/status", "/findings", "/metrics", "/livez"] {
        assert_eq!(
            get_text(&format!("{hooks}{path}")).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(
        post_hook(&hooks, Some(HOOK_SECRET), body).await.status(),
        StatusCode::OK
    );
    assert_eq!(activated(&st.activator).await, Some(vec![Reason::OktaHook]));
}

#[tokio::test]
async fn okta_hook_is_off_without_a_secret() {
    let st = state(false, false);
    let base = serve(router(st.clone(), true)).await;
    let mut headers = HeaderMap::new();
    headers.insert("X-Okta-Verification-Challenge", "v".parse().unwrap());
    let r = reqwest::Client::new()
        .get(format!("{base}/hooks/okta"))
        .headers(headers)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = post_hook(&base, Some(HOOK_SECRET), delivery(&["u"]).to_string()).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(activated(&st.activator).await, None);
}

fn graph_state(client_state: &str) -> Arc<ServerState> {
    let mut s = Arc::try_unwrap(state(false, false))
        .ok()
        .expect("fresh state");
    s.graph_hook = Some(scimwatch::server::GraphHook {
        client_state: Secret::new(client_state),
        lifecycle: None,
    });
    Arc::new(s)
}

#[tokio::test]
async fn graph_hook_refuses_any_delivery_without_an_item_carrying_the_client_state() {
    const STATE: &str = "graph-client-state-do-not-print";
    let st = graph_state(STATE);
    let base = serve(hooks_router(st.clone())).await;
    let post = |body: String| {
        let url = format!("{base}/hooks/graph");
        async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("request")
                .status()
        }
    };
    for refused in [
        json!({"value": []}).to_string(),
        json!({}).to_string(),
        json!({"value": [{"subscriptionId": "s", "changeType": "updated"}]}).to_string(),
        json!({"value": [{"clientState": "wrong-state-0123456789"}]}).to_string(),
        json!({"value": [{"clientState": 7}]}).to_string(),
        json!({"value": "nope"}).to_string(),
        "not json".to_string(),
        String::new(),
    ] {
        assert_eq!(post(refused.clone()).await, 401, "{refused}");
    }
    assert!(
        activated(&st.activator).await.is_none(),
        "a refusal wakes nothing"
    );
    // One right item among wrong ones: accepted, and it wakes the reconciler.
    let ok = json!({"value": [{"clientState": "wrong"}, {"clientState": STATE, "subscriptionId": "s", "extra": {"a": 1}}]});
    assert_eq!(post(ok.to_string()).await, 202);
    assert_eq!(
        activated(&st.activator).await,
        Some(vec![Reason::GraphHook])
    );
    // The validation handshake needs no clientState.
    let r = reqwest::Client::new()
        .post(format!("{base}/hooks/graph?validationToken=abc%20def"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "abc def");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_while_idle_connections_flood_the_hooks_listener() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_util::sync::CancellationToken;
    let st = state(true, false);
    st.ready.write().unwrap().last_full_success = Some(Utc::now());
    let cancel = CancellationToken::new();
    let main = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let main_url = format!("http://{}", main.local_addr().unwrap());
    let hooks = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hooks_addr = hooks.local_addr().unwrap();
    let limits = scimwatch::server::Limits {
        max_connections: 20,
        read_timeout: Duration::from_secs(1),
    };
    tokio::spawn(scimwatch::server::serve(
        main,
        router(st.clone(), false),
        scimwatch::server::Limits::default(),
        cancel.clone(),
    ));
    tokio::spawn(scimwatch::server::serve(
        hooks,
        hooks_router(st.clone()),
        limits,
        cancel.clone(),
    ));

    // 200 connections that start a request and then say nothing more.
    let t0 = std::time::Instant::now();
    let mut idle = Vec::new();
    for _ in 0..200 {
        let mut c = tokio::net::TcpStream::connect(hooks_addr).await.unwrap();
        c.write_all(b"POST /hooks/okta HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        idle.push(tokio::spawn(async move {
            let mut buf = [0u8; 64];
            // Until the server closes it (EOF or reset).
            loop {
                match c.read(&mut buf).await {
                    Ok(0) | Err(_) => return t0.elapsed(),
                    Ok(_) => {}
                }
            }
        }));
    }
    // Health, readiness and metrics keep answering promptly meanwhile.
    for path in ["/livez", "/readyz", "/metrics", "/livez"] {
        let asked = std::time::Instant::now();
        let r = reqwest::Client::new()
            .get(format!("{main_url}{path}"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path} did not answer during the flood: {e}"));
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{path} took {:?}",
            asked.elapsed()
        );
    }
    // Every idle connection is closed by the read timeout, at most 20 at a time: the
    // k-th wave of 20 is only accepted once the one before it timed out.
    let mut closed = Vec::new();
    for h in idle {
        closed.push(
            tokio::time::timeout(Duration::from_secs(60), h)
                .await
                .expect("an idle connection was never closed")
                .unwrap(),
        );
    }
    closed.sort();
    assert!(closed[0] >= Duration::from_millis(900), "{:?}", closed[0]);
    for wave in 1..10 {
        let first_of_wave = closed[wave * 20];
        assert!(
            first_of_wave >= Duration::from_millis(900 * wave as u64 + 900),
            "connection {} closed at {first_of_wave:?}: more than 20 were held at once",
            wave * 20
        );
    }
    // And the hooks listener serves again once the flood is gone.
    let r = post_hook(
        &format!("http://{hooks_addr}"),
        Some(HOOK_SECRET),
        delivery(&["after-the-flood"]).to_string(),
    )
    .await;
    assert_eq!(r.status(), 200);
    cancel.cancel();
}
