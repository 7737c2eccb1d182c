//! The Okta client against small purpose-built servers replaying Okta's payload shapes
//! (reference/okta.md), mounted under a path prefix to prove it is kept.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use scimwatch::config::{IdpConfig, IdpCredential, OktaOAuth, UserAttribute};
use scimwatch::error::ErrorClass;
use scimwatch::http::{RequestStats, RetryConfig};
use scimwatch::idp::okta::Okta;
use scimwatch::idp::{IdentityProvider, IdpError};
use scimwatch::model::{Email, GroupRead, GroupRef, IdpEventKind, IdpKind, IdpStatus, UserLookup};
use scimwatch::secret::Secret;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const TOKEN: &str = "00test-ssws-token-do-not-print";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/fixtures/okta");

// ---------------------------------------------------------------------------------------
// helpers

/// Binds 127.0.0.1:0 and serves `make(base)` under `/okta`; returns the org URL
/// (`http://127.0.0.1:PORT/okta`).
async fn serve(make: impl FnOnce(String) -> Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/okta", listener.local_addr().expect("addr"));
    let app = Router::new().nest("/okta", make(base.clone()));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

fn config(base: &str, credential: IdpCredential, attr: UserAttribute) -> IdpConfig {
    IdpConfig {
        kind: IdpKind::Okta,
        url: base.to_string(),
        credential,
        user_attribute: attr,
        propagation_window: Duration::from_secs(60),
        event_lookback: Duration::from_secs(3600),
    }
}

fn ssws(base: &str, attr: UserAttribute) -> Okta {
    let cfg = config(base, IdpCredential::OktaToken(Secret::new(TOKEN)), attr);
    Okta::new(&cfg, RetryConfig::fast(), RequestStats::new()).expect("client")
}

fn json_response(
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: Value,
) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("x-okta-request-id", HeaderValue::from_static("reqid-test"));
    for (k, v) in headers {
        h.append(k, HeaderValue::from_str(&v).expect("header value"));
    }
    resp
}

fn okta_error(status: StatusCode, code: &str, summary: &str) -> Response {
    json_response(
        status,
        vec![],
        json!({"errorCode": code, "errorSummary": summary, "errorLink": code,
               "errorId": "oaeXyz", "errorCauses": []}),
    )
}

fn group(id: &str, name: &str) -> Value {
    json!({"id": id, "created": "2015-02-06T10:11:28.000Z", "lastUpdated": "2015-10-05T19:16:43.000Z",
           "lastMembershipUpdated": "2015-11-28T19:15:32.000Z", "objectClass": ["okta:user_group"],
           "type": "OKTA_GROUP", "profile": {"name": name, "description": "test group"},
           "_links": {"users": {"href": format!("https://x/api/v1/groups/{id}/users")}}})
}

fn user(id: &str, login: &str, email: &str, status: &str) -> Value {
    json!({"id": id, "status": status, "created": "2013-06-24T16:39:18.000Z",
           "activated": null, "statusChanged": "2013-06-24T16:39:19.000Z", "lastLogin": null,
           "lastUpdated": "2013-07-02T21:36:25.344Z", "passwordChanged": null,
           "type": {"id": "oty1162QAr8hJjTaq0g4"},
           "profile": {"login": login, "email": email, "firstName": "Test", "lastName": "Person",
                       "mobilePhone": null},
           "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
           "_links": {"self": {"href": "https://x"}}})
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("SSWS {TOKEN}"))
}

type Calls = Arc<Mutex<Vec<String>>>;

fn record(calls: &Calls, what: String) {
    calls.lock().expect("calls").push(what);
}

fn count(calls: &Calls) -> usize {
    calls.lock().expect("calls").len()
}

// ---------------------------------------------------------------------------------------
// groups and members

#[tokio::test]
async fn members_follow_every_next_link_whatever_the_header_layout() {
    let calls: Calls = Arc::default();
    let c = calls.clone();
    let base = serve(move |base| {
        let c2 = c.clone();
        Router::new()
            .route(
                "/api/v1/groups",
                get(move |Query(q): Query<HashMap<String, String>>, h: HeaderMap| async move {
                    if !authorized(&h) {
                        return okta_error(StatusCode::UNAUTHORIZED, "E0000011", "Invalid token provided");
                    }
                    assert_eq!(q.get("search").map(String::as_str), Some(r#"profile.name eq "segment-admins""#));
                    assert_eq!(q.get("limit").map(String::as_str), Some("200"));
                    json_response(StatusCode::OK, vec![], json!([group("00gADMINS", "segment-admins")]))
                }),
            )
            .route(
                "/api/v1/groups/{id}/users",
                get(move |Path(id): Path<String>, Query(q): Query<HashMap<String, String>>, h: HeaderMap| {
                    let c = c2.clone();
                    let base = base.clone();
                    async move {
                        assert!(authorized(&h));
                        assert_eq!(id, "00gADMINS");
                        assert_eq!(q.get("limit").map(String::as_str), Some("1000"));
                        let after = q.get("after").cloned().unwrap_or_default();
                        record(&c, after.clone());
                        let page = format!("{base}/api/v1/groups/{id}/users");
                        match after.as_str() {
                            // Two separate header lines, self first (Okta's usual layout).
                            "" => json_response(
                                StatusCode::OK,
                                vec![
                                    ("link", format!("<{page}?limit=1000>; rel=\"self\"")),
                                    ("link", format!("<{page}?after=00u2&limit=1000>; rel=\"next\"")),
                                ],
                                json!([user("00u1", "Ann@Example.com", "ann.mail@example.com", "ACTIVE"),
                                       user("00u2", "bob@example.com", "bob@example.com", "SUSPENDED")]),
                            ),
                            // One comma-joined line, next before self.
                            "00u2" => json_response(
                                StatusCode::OK,
                                vec![("link", format!(
                                    "<{page}?after=00u3&limit=1000>; rel=\"next\", <{page}?after=00u2&limit=1000>; rel=\"self\""
                                ))],
                                json!([user("00u3", "cy@example.com", "cy@example.com", "DEPROVISIONED")]),
                            ),
                            "00u3" => json_response(
                                StatusCode::OK,
                                vec![("link", format!("<{page}?after=00u3&limit=1000>; rel=\"self\""))],
                                json!([user("00u4", "di@example.com", "di@example.com", "STAGED")]),
                            ),
                            other => panic!("unexpected cursor {other}"),
                        }
                    }
                }),
            )
    })
    .await;

    let okta = ssws(&base, UserAttribute::Login);
    assert!(
        !format!("{okta:?}").contains(TOKEN),
        "Debug shows the token"
    );
    let refs = [GroupRef::Name("segment-admins".into())];
    let read = okta.read_groups(&refs).await.expect("read");
    assert_eq!(read.len(), 1);
    let GroupRead::Found(g) = &read[0].1 else {
        panic!("not found: {read:?}")
    };
    assert_eq!(
        (g.id.as_str(), g.name.as_str()),
        ("00gADMINS", "segment-admins")
    );
    let got: Vec<(&str, &str, IdpStatus)> = g
        .members
        .iter()
        .map(|m| (m.id.as_str(), m.key.as_str(), m.status.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("00u1", "ann@example.com", IdpStatus::Active),
            ("00u2", "bob@example.com", IdpStatus::Suspended),
            ("00u3", "cy@example.com", IdpStatus::Deprovisioned),
            (
                "00u4",
                "di@example.com",
                IdpStatus::NotActivated("STAGED".into())
            ),
        ]
    );
    assert_eq!(g.members[0].login, "Ann@Example.com");
    assert_eq!(*calls.lock().expect("calls"), vec!["", "00u2", "00u3"]);

    // Keyed by email when configured so.
    let by_email = ssws(&base, UserAttribute::Email);
    let read = by_email.read_groups(&refs).await.expect("read");
    let GroupRead::Found(g) = &read[0].1 else {
        panic!("not found")
    };
    assert_eq!(g.members[0].key, Email::new("ann.mail@example.com"));
}

#[tokio::test]
async fn a_next_link_pointing_back_is_an_error_not_a_loop() {
    let base = serve(|base| {
        Router::new().route(
            "/api/v1/groups",
            get(move || {
                let base = base.clone();
                async move {
                    // `next` is the first page again.
                    let first = format!(
                        "{base}/api/v1/groups?search=profile.name%20eq%20%22loop%22&limit=200"
                    );
                    json_response(
                        StatusCode::OK,
                        vec![("link", format!("<{first}>; rel=\"next\""))],
                        json!([]),
                    )
                }
            }),
        )
    })
    .await;
    let err = ssws(&base, UserAttribute::Login)
        .read_groups(&[GroupRef::Name("loop".into())])
        .await
        .expect_err("must fail");
    assert!(err.to_string().contains("already read"), "{err}");
}

#[tokio::test]
async fn names_are_batched_with_or_and_matched_exactly() {
    let searches: Calls = Arc::default();
    let s = searches.clone();
    let mut groups = vec![];
    for i in 0..11 {
        groups.push(group(&format!("00g{i}"), &format!("g{i}")));
    }
    groups.push(group("00gweird", r#"we"ird\name"#));
    groups.push(group("00gdup1", "dup"));
    groups.push(group("00gdup2", "dup"));
    groups.push(group("00gcase", "case"));
    groups.push(group("00gbyid", "by-id"));
    let base = serve(move |_| {
        Router::new()
            .route(
                "/api/v1/groups",
                get(move |Query(q): Query<HashMap<String, String>>| {
                    let s = s.clone();
                    let groups = groups.clone();
                    async move {
                        let expr = q.get("search").cloned().expect("search");
                        record(&s, expr.clone());
                        // A tiny evaluator of `field eq "v" or ...` (Okta's eq is
                        // case-insensitive on names).
                        let mut hits = vec![];
                        for term in expr.split(" or ") {
                            let (field, value) = term.split_once(" eq ").expect("eq");
                            let value = value
                                .trim_matches('"')
                                .replace("\\\"", "\"")
                                .replace("\\\\", "\\");
                            for g in &groups {
                                let m = match field {
                                    "profile.name" => g["profile"]["name"]
                                        .as_str()
                                        .expect("name")
                                        .eq_ignore_ascii_case(&value),
                                    "id" => g["id"] == value.as_str(),
                                    other => panic!("field {other}"),
                                };
                                if m {
                                    hits.push(g.clone());
                                }
                            }
                        }
                        json_response(StatusCode::OK, vec![], Value::Array(hits))
                    }
                }),
            )
            .route(
                "/api/v1/groups/{id}/users",
                get(|| async { json_response(StatusCode::OK, vec![], json!([])) }),
            )
    })
    .await;

    let mut refs: Vec<GroupRef> = (0..11).map(|i| GroupRef::Name(format!("g{i}"))).collect();
    refs.push(GroupRef::Name(r#"we"ird\name"#.into()));
    refs.push(GroupRef::Name("dup".into()));
    refs.push(GroupRef::Name("Case".into()));
    refs.push(GroupRef::Name("missing".into()));
    refs.push(GroupRef::Id("00gbyid".into()));
    refs.push(GroupRef::Id("00gnope".into()));
    let read = ssws(&base, UserAttribute::Login)
        .read_groups(&refs)
        .await
        .expect("read");

    let searches = searches.lock().expect("searches").clone();
    assert_eq!(searches.len(), 3, "{searches:?}");
    assert_eq!(searches[0].matches(" or ").count(), 9);
    assert!(searches[0].starts_with(r#"profile.name eq "g0" or profile.name eq "g1""#));
    assert!(
        searches[1].contains(r#"profile.name eq "we\"ird\\name""#),
        "{}",
        searches[1]
    );
    assert_eq!(searches[2], r#"id eq "00gbyid" or id eq "00gnope""#);

    assert_eq!(read.len(), refs.len());
    for (i, (r, _)) in read.iter().enumerate() {
        assert_eq!(r, &refs[i], "order of refs kept");
    }
    let found = |i: usize| match &read[i].1 {
        GroupRead::Found(g) => g.id.clone(),
        GroupRead::Unresolved { reason } => panic!("{i} unresolved: {reason}"),
    };
    let reason = |i: usize| match &read[i].1 {
        GroupRead::Unresolved { reason } => reason.clone(),
        GroupRead::Found(g) => panic!("{i} found {}", g.id),
    };
    assert_eq!(found(0), "00g0");
    assert_eq!(found(10), "00g10");
    assert_eq!(found(11), "00gweird");
    assert_eq!(
        reason(12),
        r#"2 Okta groups are named "dup"; map it by idp_group_id"#
    );
    assert_eq!(reason(13), r#"no Okta group is named "Case""#);
    assert_eq!(reason(14), r#"no Okta group is named "missing""#);
    assert_eq!(found(15), "00gbyid");
    assert!(reason(16).contains("00gnope"));
}

#[tokio::test]
async fn an_empty_group_list_is_unresolved_not_an_error() {
    let base = serve(|_| {
        Router::new().route(
            "/api/v1/groups",
            get(|| async { json_response(StatusCode::OK, vec![], json!([])) }),
        )
    })
    .await;
    let read = ssws(&base, UserAttribute::Login)
        .read_groups(&[GroupRef::Name("segment-admins".into())])
        .await
        .expect("read");
    assert_eq!(
        read[0].1,
        GroupRead::Unresolved {
            reason: r#"no Okta group is named "segment-admins""#.into()
        }
    );
}

// ---------------------------------------------------------------------------------------
// failures, retries and rate limits

#[tokio::test]
async fn a_429_waits_until_the_reset_measured_against_date() {
    let calls: Calls = Arc::default();
    let c = calls.clone();
    let base = serve(move |_| {
        Router::new().route(
            "/api/v1/groups",
            get(move || {
                let c = c.clone();
                async move {
                    record(&c, "groups".into());
                    if count(&c) == 1 {
                        // The server's clock is far from ours: only Date makes sense of
                        // the reset. 1700000000 = Tue, 14 Nov 2023 22:13:20 GMT.
                        return json_response(
                            StatusCode::TOO_MANY_REQUESTS,
                            vec![
                                ("date", "Tue, 14 Nov 2023 22:13:20 GMT".into()),
                                ("x-rate-limit-limit", "0".into()),
                                ("x-rate-limit-remaining", "0".into()),
                                ("x-rate-limit-reset", "1700000001".into()),
                            ],
                            json!({"errorCode": "E0000047", "errorSummary": "API call exceeded rate limit due to too many requests.",
                                   "errorLink": "E0000047", "errorId": "oae1", "errorCauses": []}),
                        );
                    }
                    json_response(StatusCode::OK, vec![], json!([group("00g1", "a")]))
                }
            }),
        )
        .route("/api/v1/groups/{id}/users", get(|| async { json_response(StatusCode::OK, vec![], json!([])) }))
    })
    .await;
    let started = Instant::now();
    let read = ssws(&base, UserAttribute::Login)
        .read_groups(&[GroupRef::Name("a".into())])
        .await
        .expect("read");
    let waited = started.elapsed();
    assert!(matches!(read[0].1, GroupRead::Found(_)));
    assert_eq!(count(&calls), 2);
    // reset − Date + 1 s = 2 s.
    assert!(
        waited >= Duration::from_millis(1900),
        "waited only {waited:?}"
    );
    assert!(waited < Duration::from_millis(3500), "waited {waited:?}");
}

fn flaky_user_server(fail_times: usize, calls: Calls) -> impl FnOnce(String) -> Router {
    move |_| {
        Router::new().route(
            "/api/v1/users/{login}",
            get(move |Path(login): Path<String>| {
                let c = calls.clone();
                async move {
                    record(&c, login.clone());
                    if count(&c) <= fail_times {
                        return okta_error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "E0000009",
                            "Internal Server Error",
                        );
                    }
                    json_response(
                        StatusCode::OK,
                        vec![],
                        user("00u9", &login, &login, "ACTIVE"),
                    )
                }
            }),
        )
    }
}

#[tokio::test]
async fn a_500_is_retried() {
    let calls: Calls = Arc::default();
    let base = serve(flaky_user_server(1, calls.clone())).await;
    let key = Email::new("ann@example.com");
    let got = ssws(&base, UserAttribute::Login)
        .lookup_users(std::slice::from_ref(&key))
        .await
        .expect("lookup");
    assert!(matches!(got.get(&key), Some(UserLookup::Found(u)) if u.id == "00u9"));
    assert_eq!(count(&calls), 2);
}

#[tokio::test]
async fn a_500_forever_is_an_error_never_an_empty_answer() {
    let calls: Calls = Arc::default();
    let base = serve(flaky_user_server(usize::MAX, calls.clone())).await;
    let err = ssws(&base, UserAttribute::Login)
        .lookup_users(&[Email::new("ann@example.com")])
        .await
        .expect_err("must fail");
    match &err {
        IdpError::Api {
            service,
            request,
            reason,
            class,
        } => {
            assert_eq!(*service, "okta");
            assert!(request.starts_with("GET http://127.0.0.1"), "{request}");
            assert!(
                request.contains("/okta/api/v1/users/ann%40example.com"),
                "{request}"
            );
            assert_eq!(reason, "500 E0000009 Internal Server Error");
            assert_eq!(*class, ErrorClass::Transient);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&calls), 1 + RetryConfig::fast().max_retries);
}

#[tokio::test]
async fn a_401_names_okta_and_the_request_without_the_token() {
    let base = serve(|_| {
        Router::new().route(
            "/api/v1/groups",
            get(|| async {
                okta_error(
                    StatusCode::UNAUTHORIZED,
                    "E0000011",
                    "Invalid token provided",
                )
            }),
        )
    })
    .await;
    let err = ssws(&base, UserAttribute::Login)
        .read_groups(&[GroupRef::Name("a".into())])
        .await
        .expect_err("must fail");
    let IdpError::Api {
        service,
        request,
        reason,
        class,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*service, "okta");
    assert!(
        request.starts_with(&format!("GET {base}/api/v1/groups?search=")),
        "{request}"
    );
    assert_eq!(reason, "401 E0000011 Invalid token provided");
    assert_eq!(*class, ErrorClass::Auth);
    let text = format!("{err} {err:?}");
    assert!(text.starts_with("okta: GET http://"), "{text}");
    assert!(!text.contains(TOKEN));
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_bug_error() {
    let base =
        serve(|_| Router::new().route("/api/v1/groups", get(|| async { "<html>login</html>" })))
            .await;
    let err = ssws(&base, UserAttribute::Login)
        .read_groups(&[GroupRef::Name("a".into())])
        .await
        .expect_err("must fail");
    assert!(
        matches!(
            err,
            IdpError::Api {
                class: ErrorClass::Bug,
                ..
            }
        ),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------
// lookups

#[tokio::test]
async fn lookups_by_login_and_by_email() {
    let base = serve(|_| {
        Router::new()
            .route(
                "/api/v1/users/{login}",
                get(|Path(login): Path<String>| async move {
                    if login == "gone@example.com" {
                        return okta_error(
                            StatusCode::NOT_FOUND,
                            "E0000007",
                            "Not found: Resource not found: gone@example.com (User)",
                        );
                    }
                    json_response(
                        StatusCode::OK,
                        vec![],
                        user("00uA", &login, &login, "SUSPENDED"),
                    )
                }),
            )
            .route(
                "/api/v1/users",
                get(|Query(q): Query<HashMap<String, String>>| async move {
                    match q.get("search").map(String::as_str) {
                        Some(r#"profile.email eq "two@example.com""#) => json_response(
                            StatusCode::OK,
                            vec![],
                            json!([
                                user("00u1", "one.login", "two@example.com", "ACTIVE"),
                                user("00u2", "two.login", "two@example.com", "DEPROVISIONED")
                            ]),
                        ),
                        _ => json_response(StatusCode::OK, vec![], json!([])),
                    }
                }),
            )
    })
    .await;
    let by_login = ssws(&base, UserAttribute::Login);
    let got = by_login
        .lookup_users(&[
            Email::new("gone@example.com"),
            Email::new("here@example.com"),
        ])
        .await
        .expect("lookup");
    assert_eq!(
        got.get(&Email::new("gone@example.com")),
        Some(&UserLookup::NotFound)
    );
    let Some(UserLookup::Found(u)) = got.get(&Email::new("here@example.com")) else {
        panic!("{got:?}")
    };
    assert_eq!(u.status, IdpStatus::Suspended);

    let by_email = ssws(&base, UserAttribute::Email);
    let got = by_email
        .lookup_users(&[
            Email::new("Two@example.com"),
            Email::new("none@example.com"),
        ])
        .await
        .expect("lookup");
    assert_eq!(
        got.get(&Email::new("none@example.com")),
        Some(&UserLookup::NotFound)
    );
    let Some(UserLookup::Found(u)) = got.get(&Email::new("two@example.com")) else {
        panic!("{got:?}")
    };
    assert_eq!(u.id, "00u1");
}

// ---------------------------------------------------------------------------------------
// System Log

fn log_event(uuid: &str, published: &str, event_type: &str, result: &str, targets: Value) -> Value {
    json!({"uuid": uuid, "published": published, "eventType": event_type,
           "legacyEventType": "core.user_group_member.user_add", "severity": "INFO",
           "displayMessage": "Add user to group membership",
           "actor": {"id": "00uADMIN", "type": "User", "alternateId": "admin@example.com", "displayName": "Admin Person"},
           "client": {"ipAddress": "10.0.0.1", "userAgent": {"rawUserAgent": "x"}},
           "outcome": {"result": result, "reason": null},
           "target": targets,
           "transaction": {"type": "WEB", "id": "XXxTqUauHPkBXo4-TEcw9QAAAq0", "detail": {}},
           "debugContext": {"debugData": {"requestUri": "/x"}}})
}

#[tokio::test]
async fn system_log_maps_targets_by_type_and_stops_only_on_an_empty_page() {
    let calls: Calls = Arc::default();
    let c = calls.clone();
    // A recent `since` (Okta refuses one more than 180 days back), to the millisecond.
    let since = chrono::DateTime::from_timestamp_millis(
        (chrono::Utc::now() - chrono::Duration::days(2)).timestamp_millis(),
    )
    .expect("time");
    let since_text = since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let base = serve(move |base| {
        let since_text = since_text.clone();
        Router::new().route(
            "/api/v1/logs",
            get(move |Query(q): Query<HashMap<String, String>>| {
                let c = c.clone();
                let base = base.clone();
                let since_text = since_text.clone();
                async move {
                    let after = q.get("after").cloned().unwrap_or_default();
                    record(&c, after.clone());
                    let logs = format!("{base}/api/v1/logs");
                    match after.as_str() {
                        "" => {
                            assert_eq!(q.get("since"), Some(&since_text));
                            assert_eq!(q.get("sortOrder").map(String::as_str), Some("ASCENDING"));
                            assert_eq!(q.get("limit").map(String::as_str), Some("1000"));
                            assert!(!q.contains_key("until"));
                            assert_eq!(
                                q.get("filter").map(String::as_str),
                                Some(r#"eventType eq "group.user_membership.add" or eventType eq "group.user_membership.remove" or eventType sw "user.lifecycle." or eventType eq "group.lifecycle.create""#)
                            );
                            let mut page = vec![log_event(
                                "uuid-add", "2024-01-02T03:05:00.000Z", "group.user_membership.add", "SUCCESS",
                                // Reverse order: the group first.
                                json!([{"id": "00gADMINS", "type": "UserGroup", "alternateId": "unknown", "displayName": "segment-admins", "detailEntry": null},
                                       {"id": "00uANN", "type": "User", "alternateId": "Ann@Example.com", "displayName": "Ann"}]),
                            )];
                            for i in 1..1000 {
                                page.push(log_event(
                                    &format!("uuid-{i}"), "2024-01-02T03:06:00.000Z", "user.lifecycle.suspend", "SUCCESS",
                                    json!([{"id": format!("00u{i}"), "type": "User", "alternateId": format!("u{i}@example.com"), "displayName": "U"}]),
                                ));
                            }
                            json_response(StatusCode::OK, vec![
                                ("link", format!("<{logs}?since=x>; rel=\"self\"")),
                                ("link", format!("<{logs}?after=c2&limit=1000>; rel=\"next\"")),
                            ], Value::Array(page))
                        }
                        "c2" => json_response(StatusCode::OK, vec![
                            ("link", format!("<{logs}?after=c2&limit=1000>; rel=\"self\"")),
                            ("link", format!("<{logs}?after=c3&limit=1000>; rel=\"next\"")),
                        ], json!([
                            // A duplicate of page 1, a failure, and one published earlier
                            // (persistence order is not `published` order).
                            log_event("uuid-add", "2024-01-02T03:05:00.000Z", "group.user_membership.add", "SUCCESS", json!([])),
                            log_event("uuid-fail", "2024-01-02T03:07:00.000Z", "user.lifecycle.deactivate", "FAILURE",
                                      json!([{"id": "00uX", "type": "User", "alternateId": "x@example.com"}])),
                            log_event("uuid-early", "2024-01-02T03:04:30.000Z", "user.lifecycle.deactivate", "SUCCESS",
                                      json!([{"id": "00uBOB", "type": "User", "alternateId": "BOB@example.com", "displayName": "Bob"}])),
                        ])),
                        // Page 2 was short, yet not the end: Okta may answer short pages
                        // before it is caught up. Only an empty page ends the poll.
                        "c3" => json_response(StatusCode::OK, vec![
                            ("link", format!("<{logs}?after=c3&limit=1000>; rel=\"self\"")),
                            ("link", format!("<{logs}?after=c4&limit=1000>; rel=\"next\"")),
                        ], json!([
                            log_event("uuid-late", "2024-01-02T03:08:00.000Z", "user.lifecycle.suspend", "SUCCESS",
                                      json!([{"id": "00uCAT", "type": "User", "alternateId": "cat@example.com"}])),
                        ])),
                        "c4" => json_response(StatusCode::OK, vec![
                            ("link", format!("<{logs}?after=c4&limit=1000>; rel=\"self\"")),
                            ("link", format!("<{logs}?after=c4&limit=1000>; rel=\"next\"")),
                        ], json!([])),
                        other => panic!("caught up, yet asked for {other}"),
                    }
                }
            }),
        )
    })
    .await;
    let events = ssws(&base, UserAttribute::Login)
        .events_since(since)
        .await
        .expect("events");
    assert_eq!(*calls.lock().expect("calls"), vec!["", "c2", "c3", "c4"]);
    assert_eq!(events.len(), 1002);
    assert!(events.iter().any(|e| e.uuid == "uuid-late"));
    let first = &events[0];
    assert_eq!(first.uuid, "uuid-early");
    assert_eq!(first.kind, IdpEventKind::UserDeactivate);
    assert_eq!(first.user_login, Some(Email::new("bob@example.com")));
    assert_eq!(first.group_id, None);
    let add = &events[1];
    assert_eq!(add.uuid, "uuid-add");
    assert_eq!(add.kind, IdpEventKind::MembershipAdd);
    assert_eq!(add.user_id.as_deref(), Some("00uANN"));
    assert_eq!(add.user_login, Some(Email::new("ann@example.com")));
    assert_eq!(add.group_id.as_deref(), Some("00gADMINS"));
    assert_eq!(add.group_name.as_deref(), Some("segment-admins"));
    assert_eq!(add.actor.as_deref(), Some("admin@example.com"));
    assert!(events.iter().all(|e| e.uuid != "uuid-fail"));
    assert!(events.windows(2).all(|w| w[0].published <= w[1].published));
}

// ---------------------------------------------------------------------------------------
// OAuth: private_key_jwt and DPoP

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).expect("fixture")
}

fn oauth_config(base: &str, client_id: &str, key: &str, dpop: bool) -> IdpConfig {
    config(
        base,
        IdpCredential::OktaOAuth(OktaOAuth {
            client_id: client_id.into(),
            private_key_pem: Secret::new(fixture(key)),
            key_id: Some("kid-1".into()),
            scopes: vec!["okta.groups.read".into(), "okta.users.read".into()],
            dpop,
        }),
        UserAttribute::Login,
    )
}

/// Verifies a DPoP proof with the key it carries; returns its claims.
fn check_proof(proof: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(proof).map_err(|e| format!("proof header: {e}"))?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err(format!("typ {:?}", header.typ));
    }
    if header.alg != Algorithm::ES256 {
        return Err(format!("alg {:?}", header.alg));
    }
    let jwk = header.jwk.ok_or("no jwk")?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("jwk: {e}"))?;
    let mut v = Validation::new(Algorithm::ES256);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims = HashSet::new();
    let data = jsonwebtoken::decode::<Value>(proof, &key, &v)
        .map_err(|e| format!("proof signature: {e}"))?;
    if data.claims["jti"].as_str().is_none_or(str::is_empty) || !data.claims["iat"].is_u64() {
        return Err("jti/iat".into());
    }
    Ok(data.claims)
}

struct OAuthServer {
    base: String,
    problems: Mutex<Vec<String>>,
    token_calls: Mutex<u32>,
    issued: Mutex<Vec<String>>,
    api_calls: Mutex<u32>,
    client_key: DecodingKey,
    alg: Algorithm,
    dpop: bool,
}

impl OAuthServer {
    fn problem(&self, p: String) -> Response {
        self.problems.lock().expect("problems").push(p.clone());
        json_response(
            StatusCode::BAD_REQUEST,
            vec![],
            json!({"error": "invalid_request", "error_description": p}),
        )
    }

    fn token(&self, headers: &HeaderMap, body: &str) -> Response {
        *self.token_calls.lock().expect("calls") += 1;
        let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let token_url = format!("{}/oauth2/v1/token", self.base);
        if form.get("grant_type").map(String::as_str) != Some("client_credentials")
            || form.get("scope").map(String::as_str) != Some("okta.groups.read okta.users.read")
            || form.get("client_assertion_type").map(String::as_str)
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return self.problem(format!("form {form:?}"));
        }
        let assertion = form.get("client_assertion").cloned().unwrap_or_default();
        let Ok(h) = jsonwebtoken::decode_header(&assertion) else {
            return self.problem("assertion header".into());
        };
        if h.alg != self.alg || h.kid.as_deref() != Some("kid-1") {
            return self.problem(format!("assertion header {h:?}"));
        }
        let mut v = Validation::new(self.alg);
        v.set_audience(&[token_url.as_str()]);
        v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        let claims = match jsonwebtoken::decode::<Value>(&assertion, &self.client_key, &v) {
            Ok(d) => d.claims,
            Err(e) => return self.problem(format!("assertion: {e}")),
        };
        if claims["iss"] != claims["sub"] || claims["jti"].as_str().is_none() {
            return self.problem(format!("claims {claims}"));
        }
        if claims["iss"] == "bad-client" {
            return json_response(
                StatusCode::UNAUTHORIZED,
                vec![],
                json!({
                "error": "invalid_client", "error_description": "The client_assertion signature is invalid."}),
            );
        }
        if claims["exp"].as_u64().unwrap_or(0) > claims["iat"].as_u64().unwrap_or(0) + 3600 {
            return self.problem("exp too far".into());
        }
        let mut token_type = "Bearer";
        if self.dpop {
            let Some(proof) = headers.get("dpop").and_then(|v| v.to_str().ok()) else {
                return self.problem("no DPoP header".into());
            };
            let claims = match check_proof(proof) {
                Ok(c) => c,
                Err(e) => return self.problem(e),
            };
            if claims["htm"] != "POST" || claims["htu"] != token_url.as_str() {
                return self.problem(format!("token proof {claims}"));
            }
            match claims["nonce"].as_str() {
                None => {
                    return json_response(
                        StatusCode::BAD_REQUEST,
                        vec![("dpop-nonce", "nonce-abc".into())],
                        json!({
                        "error": "use_dpop_nonce", "error_description": "Authorization server requires nonce in DPoP proof."}),
                    )
                }
                Some("nonce-abc") => {}
                Some(other) => return self.problem(format!("nonce {other}")),
            }
            token_type = "DPoP";
        }
        let mut issued = self.issued.lock().expect("issued");
        let token = format!("eyJ.access-{}", issued.len() + 1);
        issued.push(token.clone());
        json_response(
            StatusCode::OK,
            vec![],
            json!({
            "token_type": token_type, "expires_in": 3600, "access_token": token,
            "scope": "okta.groups.read okta.users.read"}),
        )
    }

    /// Checks the API call's credentials; `Some(response)` to answer instead.
    fn check_api(&self, headers: &HeaderMap, path: &str) -> Option<Response> {
        *self.api_calls.lock().expect("calls") += 1;
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let scheme = if self.dpop { "DPoP " } else { "Bearer " };
        let Some(token) = auth.strip_prefix(scheme) else {
            return Some(self.problem(format!("authorization {auth}")));
        };
        let latest = self.issued.lock().expect("issued").last().cloned();
        if self.dpop {
            let Some(proof) = headers.get("dpop").and_then(|v| v.to_str().ok()) else {
                return Some(self.problem("no DPoP on API call".into()));
            };
            let claims = match check_proof(proof) {
                Ok(c) => c,
                Err(e) => return Some(self.problem(e)),
            };
            let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
            let htu = format!("{}{path}", self.base);
            if claims["htm"] != "GET"
                || claims["htu"] != htu.as_str()
                || claims["ath"] != ath.as_str()
            {
                return Some(self.problem(format!("API proof {claims} (want htu {htu})")));
            }
        }
        // The first token is "revoked": the client must fetch another and retry once.
        if token == "eyJ.access-1" || Some(token) != latest.as_deref() {
            return Some(okta_error(
                StatusCode::UNAUTHORIZED,
                "E0000011",
                "Invalid token provided",
            ));
        }
        None
    }
}

async fn oauth_server(
    alg: Algorithm,
    public_pem: &str,
    dpop: bool,
) -> (String, Arc<Mutex<Option<Arc<OAuthServer>>>>) {
    let slot: Arc<Mutex<Option<Arc<OAuthServer>>>> = Arc::default();
    let s = slot.clone();
    let pem = fixture(public_pem);
    let base = serve(move |base| {
        let client_key = match alg {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(pem.as_bytes()),
            _ => DecodingKey::from_ec_pem(pem.as_bytes()),
        }
        .expect("public key");
        let server = Arc::new(OAuthServer {
            base,
            problems: Mutex::default(),
            token_calls: Mutex::new(0),
            issued: Mutex::default(),
            api_calls: Mutex::new(0),
            client_key,
            alg,
            dpop,
        });
        *s.lock().expect("slot") = Some(server.clone());
        let (t, g, m) = (server.clone(), server.clone(), server);
        Router::new()
            .route(
                "/oauth2/v1/token",
                post(move |h: HeaderMap, body: String| {
                    let t = t.clone();
                    async move { t.token(&h, &body) }
                }),
            )
            .route(
                "/api/v1/groups",
                get(move |h: HeaderMap| {
                    let g = g.clone();
                    async move {
                        g.check_api(&h, "/api/v1/groups").unwrap_or_else(|| {
                            json_response(
                                StatusCode::OK,
                                vec![],
                                json!([group("00gA", "segment-admins")]),
                            )
                        })
                    }
                }),
            )
            .route(
                "/api/v1/groups/{id}/users",
                get(move |h: HeaderMap, Path(id): Path<String>| {
                    let m = m.clone();
                    async move {
                        m.check_api(&h, &format!("/api/v1/groups/{id}/users"))
                            .unwrap_or_else(|| {
                                json_response(
                                    StatusCode::OK,
                                    vec![],
                                    json!([user(
                                        "00u1",
                                        "a@example.com",
                                        "a@example.com",
                                        "ACTIVE"
                                    )]),
                                )
                            })
                    }
                }),
            )
    })
    .await;
    (base, slot)
}

fn server(slot: &Arc<Mutex<Option<Arc<OAuthServer>>>>) -> Arc<OAuthServer> {
    slot.lock().expect("slot").clone().expect("server")
}

#[tokio::test]
async fn oauth_with_dpop_answers_the_nonce_and_refreshes_once_after_a_401() {
    let (base, slot) = oauth_server(Algorithm::ES256, "ec_p256_public.pem", true).await;
    // The SEC1 ("EC PRIVATE KEY") form, the one `openssl ecparam -genkey` writes.
    let cfg = oauth_config(&base, "0oaCLIENT", "ec_p256_sec1.pem", true);
    let okta = Okta::new(&cfg, RetryConfig::fast(), RequestStats::new()).expect("client");
    assert!(!format!("{okta:?}").contains("PRIVATE"));
    let read = okta
        .read_groups(&[GroupRef::Name("segment-admins".into())])
        .await
        .expect("read");
    let srv = server(&slot);
    assert_eq!(*srv.problems.lock().expect("p"), Vec::<String>::new());
    let GroupRead::Found(g) = &read[0].1 else {
        panic!("{read:?}")
    };
    assert_eq!(g.members.len(), 1);
    // use_dpop_nonce, token 1 (refused by the API), token 2 (nonce already known).
    assert_eq!(*srv.token_calls.lock().expect("t"), 3);
    // groups with token 1 (401), groups again, members.
    assert_eq!(*srv.api_calls.lock().expect("a"), 3);

    // The PKCS#8 form of the same key works too, and the token is cached.
    let cfg = oauth_config(&base, "0oaCLIENT", "ec_p256_pkcs8.pem", true);
    let okta = Okta::new(&cfg, RetryConfig::fast(), RequestStats::new()).expect("client");
    okta.read_groups(&[GroupRef::Name("segment-admins".into())])
        .await
        .expect("read");
    assert_eq!(
        *srv.token_calls.lock().expect("t"),
        5,
        "one nonce round, then one token"
    );
    assert_eq!(*srv.problems.lock().expect("p"), Vec::<String>::new());
}

#[tokio::test]
async fn oauth_rsa_bearer_and_token_errors() {
    let (base, slot) = oauth_server(Algorithm::RS256, "rsa_public.pem", false).await;
    let cfg = oauth_config(&base, "0oaCLIENT", "rsa_private.pem", false);
    let okta = Okta::new(&cfg, RetryConfig::fast(), RequestStats::new()).expect("client");
    // The first token is refused by the API; the second works.
    okta.read_groups(&[GroupRef::Name("segment-admins".into())])
        .await
        .expect("read");
    let srv = server(&slot);
    assert_eq!(*srv.problems.lock().expect("p"), Vec::<String>::new());
    assert_eq!(*srv.token_calls.lock().expect("t"), 2);

    let bad = Okta::new(
        &oauth_config(&base, "bad-client", "rsa_private.pem", false),
        RetryConfig::fast(),
        RequestStats::new(),
    )
    .expect("client");
    let err = bad
        .read_groups(&[GroupRef::Name("segment-admins".into())])
        .await
        .expect_err("must fail");
    let IdpError::Auth { service, what } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*service, "okta");
    assert!(
        what.contains("invalid_client: The client_assertion signature is invalid."),
        "{what}"
    );
    assert!(!what.contains("eyJ"), "no assertion in the error: {what}");
}

#[test]
fn a_key_that_is_not_a_private_key_fails_at_startup() {
    let cfg = config(
        "https://acme.okta.com",
        IdpCredential::OktaOAuth(OktaOAuth {
            client_id: "0oa".into(),
            private_key_pem: Secret::new(fixture("ec_p256_public.pem")),
            key_id: None,
            scopes: vec![],
            dpop: false,
        }),
        UserAttribute::Login,
    );
    let err = Okta::new(&cfg, RetryConfig::fast(), RequestStats::new()).expect_err("must fail");
    assert!(matches!(err, IdpError::Auth { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------
// Against the simulator: what Okta answers that the hand-made servers above do not.

fn fidelity_seed(extra: &str) -> String {
    format!(
        r#"
[okta]
token = "{TOKEN}"
{extra}

[[okta.user]]
login = "ops/alice@acme.test"
[[okta.user]]
login = "bob@acme.test"
[[okta.user]]
login = "carol@acme.test"
[[okta.user]]
login = "dan@acme.test"
[[okta.user]]
login = "erin@acme.test"

[[okta.group]]
name = "Eng"
"#
    )
}

#[tokio::test]
async fn a_login_with_a_slash_is_found_through_a_filter_not_the_path() {
    let h = scimwatch_sim::start(&fidelity_seed(""), "127.0.0.1:0")
        .await
        .expect("sim");
    let base = format!("{}/okta", h.url());
    // Okta cannot fetch such a login by path: 404, however it is encoded.
    let resp = reqwest::Client::new()
        .get(format!("{base}/api/v1/users/ops%2Falice%40acme.test"))
        .header("authorization", format!("SSWS {TOKEN}"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.json::<Value>().await.expect("json")["errorCode"],
        "E0000007"
    );
    let got = ssws(&base, UserAttribute::Login)
        .lookup_users(&[
            Email::new("ops/alice@acme.test"),
            Email::new("bob@acme.test"),
            Email::new("ops/nobody@acme.test"),
        ])
        .await
        .expect("lookup");
    let Some(UserLookup::Found(u)) = got.get(&Email::new("ops/alice@acme.test")) else {
        panic!("{got:?}")
    };
    assert_eq!(u.login, "ops/alice@acme.test");
    assert!(matches!(
        got.get(&Email::new("bob@acme.test")),
        Some(UserLookup::Found(_))
    ));
    assert_eq!(
        got.get(&Email::new("ops/nobody@acme.test")),
        Some(&UserLookup::NotFound)
    );
    h.stop().await;
}

#[tokio::test]
async fn the_system_log_is_read_past_short_pages_and_an_old_since_is_clamped() {
    // Pages of at most 2 events although the client asks for 1000.
    let h = scimwatch_sim::start(&fidelity_seed("log_page_cap = 2"), "127.0.0.1:0")
        .await
        .expect("sim");
    let c = reqwest::Client::new();
    for login in [
        "bob@acme.test",
        "carol@acme.test",
        "dan@acme.test",
        "erin@acme.test",
        "ops/alice@acme.test",
    ] {
        let r = c
            .post(format!("{}/_sim/okta/groups/Eng/members", h.url()))
            .json(&json!({ "login": login }))
            .send()
            .await
            .expect("control");
        assert!(r.status().is_success());
    }
    let okta = ssws(&format!("{}/okta", h.url()), UserAttribute::Login);
    // 400 days back: Okta refuses a `since` beyond 180 days (400 E0000053), so the
    // client asks from the oldest time it accepts.
    let events = okta
        .events_since(chrono::Utc::now() - chrono::Duration::days(400))
        .await
        .expect("events");
    let adds = events
        .iter()
        .filter(|e| e.kind == IdpEventKind::MembershipAdd)
        .count();
    assert_eq!(adds, 5, "{events:#?}");
    h.stop().await;
}
