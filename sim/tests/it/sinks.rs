//! The simulator's fake alert sinks: PagerDuty Events v2 answers and validation, Slack
//! webhook answers, the generic webhook's header and body recording, failure modes with
//! counts and `Retry-After`, and clearing.

use reqwest::{Client, StatusCode};
use scimwatch_sim::{self as sim, SimHandle};
use serde_json::{json, Value};

const SEED: &str = r#"
[okta]
token = "okta-t"
app_id = "0oaseg"

[[okta.user]]
login = "a@x.test"

[[segment.workspace]]
name = "prod"
token = "seg-t"
"#;

async fn start() -> (SimHandle, Client) {
    let h = sim::start(SEED, "127.0.0.1:0").await.expect("sim starts");
    (h, Client::new())
}

fn trigger(dedup: Option<&str>) -> Value {
    let mut v = json!({
        "routing_key": "R0123456789abcdef0123456789abcde",
        "event_action": "trigger",
        "client": "scimwatch",
        "payload": {"summary": "Manual Workspace Owner grant to bob@x.test", "source": "segment:prod",
                    "severity": "critical", "custom_details": {"subject": "bob@x.test"}}
    });
    if let Some(k) = dedup {
        v["dedup_key"] = json!(k);
    }
    v
}

async fn pd(c: &Client, h: &SimHandle, body: &Value) -> (StatusCode, Option<String>, Value) {
    let resp = c
        .post(format!("{}/pagerduty/v2/enqueue", h.url()))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, retry, body)
}

async fn slack(c: &Client, h: &SimHandle, body: &str) -> (StatusCode, String) {
    let resp = c
        .post(format!("{}/slack/hooks/T0001/B0002/XXXXsecret", h.url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

async fn sinks(c: &Client, h: &SimHandle) -> Value {
    c.get(format!("{}/_sim/sinks", h.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn set_mode(c: &Client, h: &SimHandle, body: Value) {
    let resp = c
        .post(format!("{}/_sim/sinks", h.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{body}");
}

#[tokio::test]
async fn pagerduty_trigger_is_accepted_with_its_dedup_key_and_recorded() {
    let (h, c) = start().await;
    let (status, _, body) = pd(&c, &h, &trigger(Some("3f9c2a7d1e0b4c55"))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        body,
        json!({"status": "success", "message": "Event processed", "dedup_key": "3f9c2a7d1e0b4c55"})
    );
    let (status, _, body) = pd(&c, &h, &trigger(None)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let generated = body["dedup_key"].as_str().unwrap();
    assert_eq!(generated.len(), 32);
    let resolve =
        json!({"routing_key": "any", "event_action": "resolve", "dedup_key": "3f9c2a7d1e0b4c55"});
    assert_eq!(pd(&c, &h, &resolve).await.0, StatusCode::ACCEPTED);

    let got = sinks(&c, &h).await;
    let list = got["pagerduty"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["dedup_key"], "3f9c2a7d1e0b4c55");
    assert_eq!(
        list[0]["payload"]["custom_details"]["subject"],
        "bob@x.test"
    );
    assert!(list[1].get("dedup_key").is_none());
    assert_eq!(list[2]["event_action"], "resolve");
    assert_eq!(got["slack"], json!([]));
    assert_eq!(got["webhook"], json!([]));
    h.stop().await;
}

#[tokio::test]
async fn pagerduty_rejects_invalid_events_with_400_and_records_nothing() {
    let (h, c) = start().await;
    let resolve = json!({"routing_key": "R", "event_action": "resolve"});
    let (status, _, body) = pd(&c, &h, &resolve).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], "invalid event");
    assert_eq!(body["message"], "Event object is invalid");
    assert!(body["errors"][0].as_str().unwrap().contains("dedup_key"));

    let mut bad_sev = trigger(Some("k"));
    bad_sev["payload"]["severity"] = json!("high");
    let (status, _, body) = pd(&c, &h, &bad_sev).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"][0].as_str().unwrap().contains("severity"));

    let mut no_key = trigger(None);
    no_key["routing_key"] = json!("");
    no_key["payload"]["summary"] = json!("x".repeat(1025));
    let (status, _, body) = pd(&c, &h, &no_key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"].as_array().unwrap().len(), 2, "{body}");

    let resp = c
        .post(format!("{}/pagerduty/v2/enqueue", h.url()))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let got = sinks(&c, &h).await;
    assert_eq!(got["pagerduty"], json!([]));
    assert_eq!(got["refused"]["pagerduty"], 4);
    h.stop().await;
}

#[tokio::test]
async fn failure_modes_apply_to_the_next_count_requests_then_reset() {
    let (h, c) = start().await;
    set_mode(
        &c,
        &h,
        json!({"sink": "pagerduty", "mode": "error_500", "count": 1}),
    )
    .await;
    assert_eq!(
        pd(&c, &h, &trigger(Some("k1"))).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        pd(&c, &h, &trigger(Some("k1"))).await.0,
        StatusCode::ACCEPTED
    );

    set_mode(
        &c,
        &h,
        json!({"sink": "pagerduty", "mode": "rate_limited", "retry_after": 7}),
    )
    .await;
    for _ in 0..2 {
        let (status, retry, body) = pd(&c, &h, &trigger(Some("k2"))).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry.as_deref(), Some("7"));
        assert_eq!(body["status"], "throttle event");
    }
    set_mode(&c, &h, json!({"sink": "pagerduty", "mode": "ok"})).await;
    assert_eq!(
        pd(&c, &h, &trigger(Some("k2"))).await.0,
        StatusCode::ACCEPTED
    );

    set_mode(
        &c,
        &h,
        json!({"sink": "slack", "mode": "rate_limited", "count": 1}),
    )
    .await;
    let resp = c
        .post(format!("{}/slack/hooks/any", h.url()))
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    set_mode(
        &c,
        &h,
        json!({"sink": "slack", "mode": "error_400", "count": 1}),
    )
    .await;
    assert_eq!(
        slack(&c, &h, r#"{"text":"hi"}"#).await,
        (StatusCode::BAD_REQUEST, "invalid_payload".to_string())
    );
    assert_eq!(slack(&c, &h, r#"{"text":"hi"}"#).await.0, StatusCode::OK);

    let got = sinks(&c, &h).await;
    assert_eq!(got["pagerduty"].as_array().unwrap().len(), 2);
    assert_eq!(got["slack"].as_array().unwrap().len(), 1);
    assert_eq!(got["refused"]["pagerduty"], 3);
    assert_eq!(got["refused"]["slack"], 2);

    let bad = c
        .post(format!("{}/_sim/sinks", h.url()))
        .json(&json!({"sink": "email", "mode": "ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    h.stop().await;
}

#[tokio::test]
async fn slack_answers_ok_or_invalid_payload_like_slack() {
    let (h, c) = start().await;
    let resp = c
        .post(format!("{}/slack/hooks/T0001/B0002/XXXXsecret", h.url()))
        .json(&json!({"text": "drift in prod", "blocks": [{"type": "section"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(resp.text().await.unwrap(), "ok");
    assert_eq!(
        slack(&c, &h, r#"{"blocks":[{"type":"divider"}]}"#).await.0,
        StatusCode::OK
    );
    assert_eq!(
        slack(&c, &h, "").await,
        (StatusCode::BAD_REQUEST, "invalid_payload".to_string())
    );
    assert_eq!(
        slack(&c, &h, r#"{"username":"x"}"#).await,
        (StatusCode::BAD_REQUEST, "no_text".to_string())
    );
    let got = sinks(&c, &h).await;
    let list = got["slack"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["text"], "drift in prod");
    assert_eq!(list[1]["blocks"][0]["type"], "divider");
    h.stop().await;
}

#[tokio::test]
async fn webhook_records_headers_and_body_and_delete_clears() {
    let (h, c) = start().await;
    let raw = r#"{"type":"scimwatch.finding.triggered","dedup_key":"3f9c"}"#;
    let resp = c
        .post(format!("{}/webhook/ops", h.url()))
        .header("content-type", "application/json")
        .header("X-Scimwatch-Signature", "v1,abc=")
        .header("webhook-id", "evt_1")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = c
        .post(format!("{}/webhook/plain", h.url()))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let got = sinks(&c, &h).await;
    let list = got["webhook"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], "ops");
    assert_eq!(list[0]["headers"]["x-scimwatch-signature"], "v1,abc=");
    assert_eq!(list[0]["headers"]["webhook-id"], "evt_1");
    assert_eq!(list[0]["body"]["dedup_key"], "3f9c");
    assert_eq!(list[0]["raw"], raw);
    assert_eq!(list[1]["body"], "not json");

    set_mode(&c, &h, json!({"sink": "webhook", "mode": "error_500"})).await;
    let resp = c
        .post(format!("{}/webhook/ops", h.url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);

    let resp = c
        .delete(format!("{}/_sim/sinks", h.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let got = sinks(&c, &h).await;
    assert_eq!(got["webhook"], json!([]));
    assert_eq!(got["refused"]["webhook"], 0);
    assert_eq!(got["modes"], json!({}));
    let resp = c
        .post(format!("{}/webhook/ops", h.url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "DELETE also reset the mode");
    let resp = c
        .get(format!("{}/webhook/ops", h.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    h.stop().await;
}
