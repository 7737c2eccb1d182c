//! `POST /-/full-pass`: an operator asks for a full pass now. Served for real on
//! 127.0.0.1:0: refused with 403 when no `server.auth_token` is configured (a full pass
//! costs the whole org), 401 without the right bearer token, 202 and one `FullPass`
//! activation with it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::http::StatusCode;
use scimwatch::http::RequestStats;
use scimwatch::metrics::Metrics;
use scimwatch::secret::Secret;
use scimwatch::server::{hooks_router, router, Readiness, ServerState};
use scimwatch::triggers::{Activator, Reason};
use serde_json::json;

const TOKEN: &str = "full-pass-token-do-not-print";

fn state(token: bool) -> Arc<ServerState> {
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
        okta_hook: None,
        auth_token: token.then(|| Secret::new(TOKEN)),
        seen_events: Mutex::new(VecDeque::new()),
        dead: RwLock::new(None),
    })
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

async fn post(base: &str, auth: Option<&str>) -> (StatusCode, String) {
    let mut req = reqwest::Client::new().post(format!("{base}/-/full-pass"));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.expect("post");
    let status = r.status();
    (status, r.text().await.expect("body"))
}

/// The reasons of the next activation, if one comes within a short window.
async fn activated(activator: &Activator) -> Option<Vec<Reason>> {
    tokio::time::timeout(Duration::from_millis(200), activator.next())
        .await
        .ok()
        .map(|r| r.into_iter().collect())
}

#[tokio::test]
async fn full_pass_with_the_token_wakes_one_full_pass_and_answers_202() {
    let st = state(true);
    let base = serve(router(st.clone(), true)).await;
    let (code, body) = post(&base, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert!(!body.contains(TOKEN));
    assert_eq!(activated(&st.activator).await, Some(vec![Reason::FullPass]));
    assert_eq!(Reason::FullPass.label(), "full_pass");
    // The scheme is case-insensitive, as on /status.
    let (code, _) = post(&base, Some(&format!("bearer {TOKEN}"))).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert_eq!(activated(&st.activator).await, Some(vec![Reason::FullPass]));
}

#[tokio::test]
async fn full_pass_without_the_right_token_is_401_and_wakes_nothing() {
    let st = state(true);
    let base = serve(router(st.clone(), true)).await;
    for auth in [
        None,
        Some("Bearer wrong-token".to_string()),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_string()),
        Some(format!("Bearer {TOKEN}x")),
    ] {
        let (code, body) = post(&base, auth.as_deref()).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(!body.contains(TOKEN), "{body}");
    }
    assert_eq!(activated(&st.activator).await, None);
}

#[tokio::test]
async fn full_pass_is_403_when_no_token_is_configured() {
    let st = state(false);
    let base = serve(router(st.clone(), true)).await;
    for auth in [None, Some("Bearer anything")] {
        let (code, body) = post(&base, auth).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{auth:?}");
        assert!(body.contains("server.auth_token"), "{body}");
    }
    assert_eq!(activated(&st.activator).await, None);
}

#[tokio::test]
async fn full_pass_is_post_only_and_not_on_the_hooks_listener() {
    let st = state(true);
    let base = serve(router(st.clone(), true)).await;
    let r = reqwest::Client::new()
        .get(format!("{base}/-/full-pass"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // The public hooks listener exposes nothing but the hooks.
    let hooks = serve(hooks_router(st.clone())).await;
    let (code, _) = post(&hooks, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(activated(&st.activator).await, None);
}
