//! The simulator's Okta Event Hooks against a tiny recording receiver: verification on
//! registration, delivery envelopes, the one retry on 5xx (none on 4xx), injected
//! duplicates, the deliveries log and removal.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use reqwest::Client;
use scimwatch_sim::{self as sim, SimHandle};
use serde_json::{json, Value};

const SEED: &str = r#"
[okta]
token = "okta-t"
app_id = "0oaseg"

[[okta.user]]
login = "a@x.test"
[[okta.user]]
login = "b@x.test"
[[okta.user]]
login = "c@x.test"

[[okta.group]]
name = "Eng"
members = ["a@x.test"]

[[segment.workspace]]
name = "prod"
token = "seg-t"
"#;

/// What the receiver got and how it answers.
#[derive(Default)]
struct Receiver {
    /// Headers of each verification GET.
    gets: Mutex<Vec<HeaderMap>>,
    /// Headers and JSON body of each delivery POST.
    posts: Mutex<Vec<(HeaderMap, Value)>>,
    /// Echo a wrong value to the verification challenge.
    wrong_echo: bool,
    /// Statuses for the next POSTs; 200 once exhausted.
    script: Mutex<VecDeque<u16>>,
    /// How many of the next requests (GET or POST) answer only after 3.5 s (recorded at once).
    slow: Mutex<u32>,
}

impl Receiver {
    fn posts(&self) -> Vec<(HeaderMap, Value)> {
        self.posts.lock().unwrap().clone()
    }
    fn event_ids(&self) -> Vec<String> {
        self.posts()
            .iter()
            .map(|(_, b)| b["eventId"].as_str().unwrap().to_string())
            .collect()
    }
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let slow = {
        let mut n = r.slow.lock().unwrap();
        let slow = *n > 0;
        *n = n.saturating_sub(1);
        slow
    };
    if method == Method::GET {
        let challenge = headers
            .get("x-okta-verification-challenge")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        r.gets.lock().unwrap().push(headers);
        if slow {
            tokio::time::sleep(Duration::from_millis(3500)).await;
        }
        let echo = if r.wrong_echo {
            "not-the-challenge".to_string()
        } else {
            challenge
        };
        return axum::Json(json!({ "verification": echo })).into_response();
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    r.posts.lock().unwrap().push((headers, body));
    if slow {
        tokio::time::sleep(Duration::from_millis(3500)).await;
    }
    let status = r.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap().into_response()
}

/// Starts a receiver on 127.0.0.1:0; returns it and its URL.
async fn receiver(r: Receiver) -> (Arc<Receiver>, String) {
    let r = Arc::new(r);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(receive).with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, format!("http://{addr}/hooks/okta"))
}

async fn start() -> SimHandle {
    sim::start(SEED, "127.0.0.1:0").await.expect("sim starts")
}

async fn register(c: &Client, h: &SimHandle, body: Value) -> (StatusCode, Value) {
    let resp = c
        .post(format!("{}/_sim/okta/event-hooks", h.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn registered(c: &Client, h: &SimHandle, url: &str, extra: Value) -> String {
    let mut body = json!({"url": url, "auth_header": "Bearer s3cret"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, out) = register(c, h, body).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    out["id"].as_str().unwrap().to_string()
}

async fn member(c: &Client, h: &SimHandle, login: &str, add: bool) {
    let resp = if add {
        c.post(format!("{}/_sim/okta/groups/Eng/members", h.url()))
            .json(&json!({ "login": login }))
            .send()
            .await
            .unwrap()
    } else {
        c.delete(format!("{}/_sim/okta/groups/Eng/members/{login}", h.url()))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(resp.status(), StatusCode::OK);
}

async fn state(c: &Client, h: &SimHandle) -> Value {
    c.get(format!("{}/_sim/state", h.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn deliveries(c: &Client, h: &SimHandle, id: &str) -> Value {
    c.get(format!("{}/_sim/okta/event-hooks/{id}/deliveries", h.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits (≤ 3 s) until the receiver holds `n` POSTs.
async fn wait_posts(r: &Receiver, n: usize) {
    for _ in 0..150 {
        if r.posts.lock().unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "expected {n} deliveries, got {}",
        r.posts.lock().unwrap().len()
    );
}

#[tokio::test]
async fn registration_performs_the_verification_and_refuses_a_wrong_echo() {
    let h = start().await;
    let c = Client::new();
    let (good, good_url) = receiver(Receiver::default()).await;
    let (status, out) = register(
        &c,
        &h,
        json!({"url": good_url, "auth_header": "s3cret", "header": "X-Hook-Secret"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert!(out["id"].as_str().unwrap().starts_with("who"));
    assert_eq!(out["status"], "ACTIVE");
    assert_eq!(out["verificationStatus"], "VERIFIED");
    assert!(
        !out.to_string().contains("s3cret"),
        "the secret is write-only"
    );
    {
        let gets = good.gets.lock().unwrap();
        assert_eq!(gets.len(), 1);
        let challenge = gets[0]["x-okta-verification-challenge"].to_str().unwrap();
        assert!(challenge.len() >= 20);
        assert_eq!(gets[0]["x-hook-secret"], "s3cret");
    }

    let (bad, bad_url) = receiver(Receiver {
        wrong_echo: true,
        ..Receiver::default()
    })
    .await;
    let (status, out) = register(&c, &h, json!({"url": bad_url, "auth_header": "s3cret"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(out["errorCode"], "E0000001");
    assert!(
        out["errorCauses"][0]["errorSummary"]
            .as_str()
            .unwrap()
            .contains("did not echo"),
        "{out}"
    );
    assert_eq!(bad.gets.lock().unwrap().len(), 1);

    // Nothing listens on this port once the listener is dropped.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let (status, out) = register(&c, &h, json!({"url": closed_url, "auth_header": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(out["errorSummary"].as_str().unwrap().contains("reached"));

    let (status, out) = register(&c, &h, json!({"auth_header": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(out["errorCode"], "E0000001");

    let hooks = state(&c, &h).await["okta"]["event_hooks"].clone();
    assert_eq!(hooks.as_array().unwrap().len(), 1, "{hooks}");
    assert_eq!(hooks[0]["url"], good_url.as_str());
    assert!(!hooks.to_string().contains("s3cret"));

    // The failed hooks never get events.
    member(&c, &h, "b@x.test", true).await;
    wait_posts(&good, 1).await;
    assert_eq!(good.posts()[0].0["x-hook-secret"], "s3cret");
    assert!(bad.posts().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn a_member_add_is_delivered_in_an_okta_envelope_and_listed() {
    let h = start().await;
    let c = Client::new();
    // Hooks never backfill: this event predates the hook.
    member(&c, &h, "c@x.test", true).await;
    let (r, url) = receiver(Receiver::default()).await;
    let id = registered(&c, &h, &url, json!({})).await;
    member(&c, &h, "b@x.test", true).await;
    wait_posts(&r, 1).await;

    let (headers, env) = r.posts().remove(0);
    assert_eq!(headers["authorization"], "Bearer s3cret");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(env["eventType"], "com.okta.event_hook");
    assert_eq!(env["eventTypeVersion"], "1.0");
    assert_eq!(env["cloudEventsVersion"], "0.1");
    assert_eq!(env["contentType"], "application/json");
    assert_eq!(
        env["source"],
        format!("{}/okta/api/v1/eventHooks/{id}", h.url())
    );
    assert_eq!(env["eventId"].as_str().unwrap().len(), 36);
    assert!(env["eventTime"].as_str().unwrap().ends_with('Z'));

    // The event is the System Log's, exactly as /api/v1/logs returns it.
    let events = env["data"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{env}");
    let log = state(&c, &h).await["okta"]["log"].clone();
    let last = log.as_array().unwrap().last().unwrap().clone();
    assert_eq!(events[0], last);
    assert_eq!(events[0]["eventType"], "group.user_membership.add");
    let logs: Value = c
        .get(format!(
            "{}/okta/api/v1/logs?filter=uuid%20eq%20%22{}%22",
            h.url(),
            last["uuid"].as_str().unwrap()
        ))
        .header("authorization", "SSWS okta-t")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(logs[0], events[0]);

    let listed = deliveries(&c, &h, &id).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let d = &listed[0];
    assert_eq!(d["event_id"], env["eventId"]);
    assert_eq!(d["event_uuids"], json!([last["uuid"]]));
    assert_eq!(d["attempt"], 1);
    assert_eq!(d["duplicate"], false);
    assert_eq!(d["status"], 200);
    assert_eq!(d["error"], Value::Null);
    assert!(d["at"].as_str().unwrap().ends_with('Z'));
    h.stop().await;
}

#[tokio::test]
async fn a_5xx_is_retried_exactly_once_and_a_4xx_never() {
    let h = start().await;
    let c = Client::new();
    let five = Receiver::default();
    five.script.lock().unwrap().extend([500, 503]);
    let (five, five_url) = receiver(five).await;
    let four = Receiver::default();
    four.script.lock().unwrap().extend([400, 400]);
    let (four, four_url) = receiver(four).await;
    let five_id = registered(&c, &h, &five_url, json!({})).await;
    let four_id = registered(&c, &h, &four_url, json!({})).await;

    member(&c, &h, "b@x.test", true).await;
    wait_posts(&five, 2).await;
    wait_posts(&four, 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    // 500 then 503: one retry, then the envelope is given up.
    let ids = five.event_ids();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "a retry resends the same envelope");
    let d = deliveries(&c, &h, &five_id).await;
    let got: Vec<(Value, Value)> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["attempt"].clone(), x["status"].clone()))
        .collect();
    assert_eq!(got, vec![(json!(1), json!(500)), (json!(2), json!(503))]);

    assert_eq!(four.posts().len(), 1);
    let d = deliveries(&c, &h, &four_id).await;
    assert_eq!(d.as_array().unwrap().len(), 1);
    assert_eq!(d[0]["status"], 400);

    // A 500 once, then the retry succeeds.
    five.script.lock().unwrap().push_back(500);
    member(&c, &h, "b@x.test", false).await;
    wait_posts(&five, 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(five.posts().len(), 4);
    let d = deliveries(&c, &h, &five_id).await;
    assert_eq!(d[2]["status"], 500);
    assert_eq!(d[3]["status"], 200);
    assert_eq!(d[3]["attempt"], 2);
    h.stop().await;
}

#[tokio::test]
async fn duplicate_every_two_sends_the_second_delivery_twice() {
    let h = start().await;
    let c = Client::new();
    let (r, url) = receiver(Receiver::default()).await;
    let id = registered(&c, &h, &url, json!({"duplicate_every": 2})).await;

    member(&c, &h, "b@x.test", true).await;
    wait_posts(&r, 1).await;
    member(&c, &h, "c@x.test", true).await;
    wait_posts(&r, 3).await;
    member(&c, &h, "b@x.test", false).await;
    wait_posts(&r, 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let ids = r.event_ids();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_ne!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2], "the duplicate carries the same eventId");
    assert_ne!(ids[2], ids[3]);
    let posts = r.posts();
    assert_eq!(posts[1].1, posts[2].1, "the duplicate is the same envelope");

    let d = deliveries(&c, &h, &id).await;
    let dup: Vec<bool> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["duplicate"].as_bool().unwrap())
        .collect();
    assert_eq!(dup, vec![false, false, true, false]);
    let listed: Vec<&str> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids.iter().map(String::as_str).collect::<Vec<_>>());
    h.stop().await;
}

#[tokio::test]
async fn events_close_together_share_one_envelope_and_ineligible_ones_are_left_out() {
    let h = start().await;
    let c = Client::new();
    let (r, url) = receiver(Receiver::default()).await;
    registered(&c, &h, &url, json!({})).await;
    member(&c, &h, "b@x.test", true).await;
    member(&c, &h, "c@x.test", true).await;
    // user.account.lock is not eligible for Event Hooks.
    let resp = c
        .post(format!("{}/_sim/okta/users/c@x.test/status", h.url()))
        .json(&json!({"status": "LOCKED_OUT"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    wait_posts(&r, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let posts = r.posts();
    let types: Vec<String> = posts
        .iter()
        .flat_map(|(_, e)| e["data"]["events"].as_array().unwrap().clone())
        .map(|e| e["eventType"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        vec!["group.user_membership.add", "group.user_membership.add"]
    );
    assert_eq!(posts.len(), 1, "both adds fall in one batching window");
    h.stop().await;
}

#[tokio::test]
async fn delete_stops_deliveries_and_unknown_hooks_are_404() {
    let h = start().await;
    let c = Client::new();
    let (r, url) = receiver(Receiver::default()).await;
    let id = registered(&c, &h, &url, json!({})).await;
    member(&c, &h, "b@x.test", true).await;
    wait_posts(&r, 1).await;

    let del = |id: String| {
        let c = c.clone();
        let url = h.url();
        async move {
            c.delete(format!("{url}/_sim/okta/event-hooks/{id}"))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(del(id.clone()).await.status(), StatusCode::NO_CONTENT);
    member(&c, &h, "b@x.test", false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.posts().len(), 1, "no delivery after DELETE");

    let resp = del(id.clone()).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errorCode"], "E0000007");
    let resp = c
        .get(format!("{}/_sim/okta/event-hooks/{id}/deliveries", h.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(state(&c, &h).await["okta"]["event_hooks"]
        .as_array()
        .unwrap()
        .is_empty());
    h.stop().await;
}

#[tokio::test]
async fn a_delivery_timing_out_after_3s_is_retried_once() {
    let h = start().await;
    let c = Client::new();
    let (r, url) = receiver(Receiver::default()).await;
    let id = registered(&c, &h, &url, json!({})).await;
    *r.slow.lock().unwrap() = 1;
    member(&c, &h, "b@x.test", true).await;
    wait_posts(&r, 1).await;
    // The first attempt times out at 3 s; the retry answers at once.
    wait_posts(&r, 2).await;
    let ids = r.event_ids();
    assert_eq!(ids[0], ids[1]);
    let mut d = Value::Null;
    for _ in 0..50 {
        d = deliveries(&c, &h, &id).await;
        if d.as_array().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(d[0]["error"], "timeout", "{d}");
    assert_eq!(d[0]["status"], Value::Null);
    assert_eq!(d[1]["attempt"], 2);
    assert_eq!(d[1]["status"], 200);
    h.stop().await;
}

#[tokio::test]
async fn a_verification_slower_than_3s_fails() {
    let h = start().await;
    let c = Client::new();
    let r = Receiver::default();
    *r.slow.lock().unwrap() = 1;
    let (_r, url) = receiver(r).await;
    let started = std::time::Instant::now();
    let (status, out) = register(&c, &h, json!({"url": url, "auth_header": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        out["errorSummary"].as_str().unwrap().contains("3 s"),
        "{out}"
    );
    assert!(started.elapsed() < Duration::from_millis(3400));
    assert!(state(&c, &h).await["okta"]["event_hooks"]
        .as_array()
        .unwrap()
        .is_empty());
    h.stop().await;
}
