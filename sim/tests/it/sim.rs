//! The simulator over HTTP: paging, cursors, errors, rate limits, OAuth + DPoP, the push
//! engine, audit attribution, faults and the demo seed.

use std::time::Duration;

use reqwest::{Client, Response};
use scimwatch_sim::{self as sim, SimHandle};
use serde_json::{json, Value};

const BASE_SEED: &str = r#"
[okta]
token = "okta-t"
app_id = "0oaseg"

[[okta.user]]
login = "a@x.test"
first_name = "A"
[[okta.user]]
login = "b@x.test"
[[okta.user]]
login = "c@x.test"
[[okta.user]]
login = "d@x.test"
[[okta.user]]
login = "e@x.test"
status = "DEPROVISIONED"

[[okta.group]]
name = "Eng"
members = ["a@x.test", "b@x.test", "c@x.test", "d@x.test", "e@x.test"]
pushed_to = ["prod"]

[[okta.group]]
name = "Ops"
members = ["a@x.test"]

[[segment.workspace]]
name = "prod"
token = "seg-t"
token_id = "Tok1"
scim_token = "scim-t"
sources = [ { slug = "web", name = "Web", labels = { env = "prod" } } ]
ui_users = [ { email = "boss@x.test", token = "ui-t", id = "uBoss" } ]

[[segment.workspace.user]]
email = "owner@x.test"
grants = [ { role = "Workspace Owner" } ]

[[segment.workspace.group]]
name = "Eng"
members = ["a@x.test", "b@x.test", "c@x.test", "d@x.test"]
grants = [ { role = "Source Admin", sources = ["web"] } ]

[push]
delay = "150ms"
"#;

async fn start(seed: &str) -> SimHandle {
    sim::start(seed, "127.0.0.1:0").await.expect("sim starts")
}

fn links(resp: &Response) -> Vec<String> {
    resp.headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn next_link(links: &[String]) -> Option<String> {
    links
        .iter()
        .find(|l| l.ends_with("rel=\"next\""))
        .map(|l| l[1..l.find('>').unwrap()].to_string())
}

async fn okta_get(c: &Client, url: &str) -> Response {
    c.get(url)
        .header("authorization", "SSWS okta-t")
        .send()
        .await
        .unwrap()
}

async fn seg(c: &Client, h: &SimHandle, token: &str, path: &str) -> Response {
    c.get(format!("{}/segment/prod{path}", h.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn okta_pages_by_link_headers_and_rejects_forged_cursors() {
    let h = start(BASE_SEED).await;
    let c = Client::new();
    let groups: Value = okta_get(&c, &format!("{}/okta/api/v1/groups?search=profile.name%20eq%20%22Eng%22%20or%20profile.name%20eq%20%22Ops%22", h.url()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(groups.as_array().unwrap().len(), 2);
    let eng = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["profile"]["name"] == "Eng")
        .unwrap();
    assert_eq!(eng["type"], "OKTA_GROUP");
    assert!(eng["lastMembershipUpdated"]
        .as_str()
        .unwrap()
        .ends_with(".000Z"));
    let gid = eng["id"].as_str().unwrap().to_string();

    let mut url = format!("{}/okta/api/v1/groups/{gid}/users?limit=2", h.url());
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let resp = okta_get(&c, &url).await;
        assert_eq!(resp.status(), 200);
        for k in [
            "date",
            "x-okta-request-id",
            "x-rate-limit-limit",
            "x-rate-limit-remaining",
            "x-rate-limit-reset",
        ] {
            assert!(resp.headers().contains_key(k), "{k}");
        }
        let l = links(&resp);
        assert!(l[0].ends_with("rel=\"self\""), "self first: {l:?}");
        assert!(
            l[0].starts_with(&format!("<{}/okta/api/v1/groups/", h.url())),
            "{l:?}"
        );
        let next = next_link(&l);
        let users: Vec<Value> = resp.json().await.unwrap();
        seen.extend(
            users
                .iter()
                .map(|u| u["profile"]["login"].as_str().unwrap().to_string()),
        );
        pages += 1;
        match next {
            Some(n) => {
                assert_eq!(l.len(), 2);
                url = n;
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    seen.sort();
    assert_eq!(
        seen,
        ["a@x.test", "b@x.test", "c@x.test", "d@x.test", "e@x.test"],
        "keeps DEPROVISIONED members"
    );

    // A forged `after` (a bare user id) is refused.
    let resp = okta_get(
        &c,
        &format!(
            "{}/okta/api/v1/groups/{gid}/users?after=00uabc&limit=2",
            h.url()
        ),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errorCode"], "E0000001");

    // Users list omits DEPROVISIONED; login lookup is case-insensitive; SSWS without space.
    let users: Vec<Value> = okta_get(&c, &format!("{}/okta/api/v1/users", h.url()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(users.len(), 4);
    let resp = c
        .get(format!("{}/okta/api/v1/users/A@X.test", h.url()))
        .header("authorization", "SSWSokta-t")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = okta_get(&c, &format!("{}/okta/api/v1/users/nobody@x.test", h.url())).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.json::<Value>().await.unwrap()["errorCode"], "E0000007");
    let resp = c
        .get(format!("{}/okta/api/v1/users", h.url()))
        .header("authorization", "SSWS wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("x-rate-limit-reset"));
    // App groups: only pushed groups.
    let app: Vec<Value> = okta_get(&c, &format!("{}/okta/api/v1/apps/0oaseg/groups", h.url()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(app.len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn segment_pagination_in_three_forms_with_signed_cursors() {
    let h = start(BASE_SEED).await;
    let c = Client::new();
    for first in [
        "pagination.count=2",
        "pagination[count]=2",
        "pagination=%7B%22count%22%3A2%7D",
    ] {
        let mut query = first.to_string();
        let mut emails = Vec::new();
        let mut pages = 0;
        loop {
            let resp = seg(&c, &h, "seg-t", &format!("/users?{query}")).await;
            assert_eq!(resp.status(), 200, "{query}");
            assert!(resp.headers().contains_key("x-ratelimit-remaining"));
            let body: Value = resp.json().await.unwrap();
            let data = &body["data"];
            assert!(
                data["users"][0].get("permissions").is_none(),
                "list has no permissions"
            );
            emails.extend(
                data["users"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|u| u["email"].as_str().unwrap().to_string()),
            );
            let p = &data["pagination"];
            if pages == 0 {
                assert!(
                    p.get("previous").is_none(),
                    "previous absent on the first page"
                );
            }
            pages += 1;
            match p.get("next") {
                None => break,
                Some(n) => {
                    assert!(!n.is_null());
                    let cur = n.as_str().unwrap();
                    query = match first {
                        f if f.starts_with("pagination.") => {
                            format!("pagination.count=2&pagination.cursor={}", urlencode(cur))
                        }
                        f if f.starts_with("pagination[") => {
                            format!("pagination[count]=2&pagination[cursor]={}", urlencode(cur))
                        }
                        _ => format!(
                            "pagination={}",
                            urlencode(&json!({"count": 2, "cursor": cur}).to_string())
                        ),
                    };
                }
            }
        }
        assert_eq!(emails.len(), 5, "{first}");
        assert_eq!(pages, 3);
    }
    let resp = seg(
        &c,
        &h,
        "seg-t",
        "/users?pagination.count=2&pagination.cursor=Mg%3D%3D",
    )
    .await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["type"], "input-validation");
    assert_eq!(body["errors"][0]["message"], "Invalid cursor");
    let resp = seg(&c, &h, "seg-t", "/users?pagination.count=1001").await;
    assert_eq!(resp.status(), 422);
    let resp = seg(&c, &h, "nope", "/users").await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["errors"][0]["type"],
        "unauthorized"
    );
    // Roles carry the published ids; groups carry memberCount and permissions.
    let roles: Value = seg(&c, &h, "seg-t", "/roles").await.json().await.unwrap();
    assert!(roles["data"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == "1WDUuRLxv84rrfCNUwvkrRtkxnS"));
    let groups: Value = seg(&c, &h, "seg-t", "/groups").await.json().await.unwrap();
    let g = &groups["data"]["userGroups"][0];
    assert_eq!(g["memberCount"], 4);
    assert_eq!(g["permissions"][0]["resources"][0]["type"], "SOURCE");
    h.stop().await;
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn budgets_answer_429_with_headers() {
    let seed = BASE_SEED
        .replace(
            "app_id = \"0oaseg\"",
            "app_id = \"0oaseg\"\nrate_limit_per_minute = 2",
        )
        .replace(
            "scim_token = \"scim-t\"",
            "scim_token = \"scim-t\"\nrate_limit_per_minute = 2",
        );
    let h = start(&seed).await;
    let c = Client::new();
    let url = format!("{}/okta/api/v1/users", h.url());
    assert_eq!(okta_get(&c, &url).await.status(), 200);
    assert_eq!(okta_get(&c, &url).await.status(), 200);
    let resp = okta_get(&c, &url).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["x-rate-limit-remaining"], "0");
    assert_eq!(resp.headers()["x-rate-limit-limit"], "2");
    assert!(
        resp.headers().contains_key("date") && resp.headers().contains_key("x-rate-limit-reset")
    );
    assert_eq!(resp.json::<Value>().await.unwrap()["errorCode"], "E0000047");
    // Another bucket still has budget.
    assert_eq!(
        okta_get(&c, &format!("{}/okta/api/v1/groups", h.url()))
            .await
            .status(),
        200
    );

    assert_eq!(seg(&c, &h, "seg-t", "/users").await.status(), 200);
    assert_eq!(seg(&c, &h, "seg-t", "/groups").await.status(), 200);
    let resp = seg(&c, &h, "seg-t", "/users").await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("x-ratelimit-reset"));
    let retry_after = resp.headers().contains_key("retry-after");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["data"]["remainingPoints"], 0);
    assert!(body["errors"][0]["data"]["msBeforeNext"].as_u64().unwrap() > 0);
    let second = seg(&c, &h, "seg-t", "/users").await;
    assert_ne!(
        retry_after,
        second.headers().contains_key("retry-after"),
        "Retry-After on every other 429"
    );
    h.stop().await;
}

mod keys {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    pub struct Ec {
        pub pkcs8: Vec<u8>,
        pub point: Vec<u8>,
    }

    pub fn ec() -> Ec {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Ec {
            pkcs8: pkcs8.as_ref().to_vec(),
            point: kp.public_key().as_ref().to_vec(),
        }
    }

    impl Ec {
        pub fn public_pem(&self) -> String {
            let mut der = vec![
                0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
                0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
            ];
            der.extend_from_slice(&self.point);
            let b64 = STANDARD.encode(der);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                lines.join("\n")
            )
        }
        pub fn jwk(&self) -> jsonwebtoken::jwk::Jwk {
            let v = serde_json::json!({"kty": "EC", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&self.point[1..33]), "y": URL_SAFE_NO_PAD.encode(&self.point[33..65])});
            serde_json::from_value(v).unwrap()
        }
        pub fn encoding(&self) -> jsonwebtoken::EncodingKey {
            jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8)
        }
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn proof(key: &keys::Ec, htm: &str, htu: &str, nonce: Option<&str>, ath: Option<&str>) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("dpop+jwt".to_string());
    header.jwk = Some(key.jwk());
    let mut claims =
        json!({"htm": htm, "htu": htu, "iat": now(), "jti": format!("{}", rand::random::<u64>())});
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    if let Some(a) = ath {
        claims["ath"] = json!(a);
    }
    jsonwebtoken::encode(&header, &claims, &key.encoding()).unwrap()
}

#[tokio::test]
async fn oauth_private_key_jwt_with_dpop_nonce() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let client_key = keys::ec();
    let dpop_key = keys::ec();
    let seed = format!(
        "{BASE_SEED}\n[[okta.oauth_client]]\nclient_id = \"0oasvc\"\npublic_key_pem = \"\"\"{}\"\"\"\nscopes = [\"okta.groups.read\", \"okta.users.read\"]\ndpop = true\n\n[[okta.oauth_client]]\nclient_id = \"0oanoadmin\"\npublic_key_pem = \"\"\"{}\"\"\"\nscopes = [\"okta.groups.read\"]\nadmin_role = false\n",
        client_key.public_pem(),
        client_key.public_pem()
    );
    // `[[okta.oauth_client]]` after `[push]` is fine in TOML (array of tables under okta).
    let h = start(&seed).await;
    let c = Client::new();
    let token_url = format!("{}/okta/oauth2/v1/token", h.url());
    let assertion = || {
        let claims = json!({"iss": "0oasvc", "sub": "0oasvc", "aud": token_url, "exp": now() + 300, "iat": now(),
                            "jti": format!("{}", rand::random::<u64>())});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            &claims,
            &client_key.encoding(),
        )
        .unwrap()
    };
    let form = |scope: &str| {
        vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("scope".to_string(), scope.to_string()),
            (
                "client_assertion_type".to_string(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
            ),
            ("client_assertion".to_string(), assertion()),
        ]
    };
    let resp = c
        .post(&token_url)
        .form(&form("okta.groups.read"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_dpop_proof"
    );
    let resp = c
        .post(&token_url)
        .header("DPoP", proof(&dpop_key, "POST", &token_url, None, None))
        .form(&form("okta.groups.read"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let nonce = resp.headers()["dpop-nonce"].to_str().unwrap().to_string();
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "use_dpop_nonce"
    );
    let resp = c
        .post(&token_url)
        .header(
            "DPoP",
            proof(&dpop_key, "POST", &token_url, Some(&nonce), None),
        )
        .form(&form("okta.logs.read"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );
    let resp = c
        .post(&token_url)
        .header(
            "DPoP",
            proof(&dpop_key, "POST", &token_url, Some(&nonce), None),
        )
        .form(&form("okta.groups.read okta.users.read"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let tok: Value = resp.json().await.unwrap();
    assert_eq!(tok["token_type"], "DPoP");
    assert_eq!(tok["expires_in"], 3600);
    let access = tok["access_token"].as_str().unwrap();
    let ath = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(access.as_bytes()));
    let api = format!("{}/okta/api/v1/groups", h.url());
    let resp = c
        .get(format!("{api}?limit=1"))
        .header("authorization", format!("DPoP {access}"))
        .header("DPoP", proof(&dpop_key, "GET", &api, None, Some(&ath)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Vec<Value>>().await.unwrap().len(), 1);
    let resp = c.get(&api).bearer_auth(access).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["errorCode"], "E0000006");
    // The token lacks okta.logs.read.
    let logs = format!("{}/okta/api/v1/logs", h.url());
    let resp = c
        .get(&logs)
        .header("authorization", format!("DPoP {access}"))
        .header("DPoP", proof(&dpop_key, "GET", &logs, None, Some(&ath)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // A client without an admin role gets `200 []` from list endpoints (Okta's silent failure).
    let claims =
        json!({"iss": "0oanoadmin", "sub": "0oanoadmin", "aud": token_url, "exp": now() + 300});
    let a = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &client_key.encoding(),
    )
    .unwrap();
    let tok: Value = c
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "okta.groups.read"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", a.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tok["token_type"], "Bearer");
    let resp = c
        .get(&api)
        .bearer_auth(tok["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.json::<Vec<Value>>().await.unwrap().is_empty());
    h.stop().await;
}

async fn control(
    c: &Client,
    h: &SimHandle,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    let resp = c
        .request(method, format!("{}/_sim{path}", h.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap()
}

async fn audit(c: &Client, h: &SimHandle) -> Vec<Value> {
    let body: Value = seg(c, h, "seg-t", "/audit-events")
        .await
        .json()
        .await
        .unwrap();
    body["data"]["events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn member_add_logs_then_pushes_into_segment() {
    let h = start(BASE_SEED).await;
    let c = Client::new();
    control(
        &c,
        &h,
        reqwest::Method::POST,
        "/okta/users",
        json!({"login": "new@x.test", "first_name": "New"}),
    )
    .await;
    control(
        &c,
        &h,
        reqwest::Method::POST,
        "/okta/groups/Eng/members",
        json!({"login": "new@x.test"}),
    )
    .await;
    let logs: Vec<Value> = okta_get(
        &c,
        &format!(
            "{}/okta/api/v1/logs?filter=eventType%20eq%20%22group.user_membership.add%22",
            h.url()
        ),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(logs.len(), 1);
    let ev = &logs[0];
    assert_eq!(ev["outcome"]["result"], "SUCCESS");
    assert!(ev["target"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["type"] == "UserGroup" && t["displayName"] == "Eng"));
    assert!(ev["published"].as_str().unwrap().ends_with('Z'));
    // Polling with an empty result still has a next link.
    let resp = okta_get(
        &c,
        &format!(
            "{}/okta/api/v1/logs?since=2099-01-01T00:00:00.000Z",
            h.url()
        ),
    )
    .await;
    assert!(next_link(&links(&resp)).is_some());
    // Okta refuses a `since` more than 180 days back.
    let old = (chrono::Utc::now() - chrono::Duration::days(181))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let resp = okta_get(&c, &format!("{}/okta/api/v1/logs?since={old}", h.url())).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["errorCode"], "E0000053");
    // The new user's profile has both names: the given first name, a last name from
    // the login (Okta requires both; its SDKs reject empty strings).
    let users: Vec<Value> = okta_get(
        &c,
        &format!(
            "{}/okta/api/v1/users?filter=profile.login%20eq%20%22new%40x.test%22",
            h.url()
        ),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(users[0]["profile"]["firstName"], "New");
    assert_eq!(users[0]["profile"]["lastName"], "New");
    assert!(
        audit(&c, &h).await.is_empty(),
        "not pushed before the delay"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let groups: Value = seg(&c, &h, "seg-t", "/groups").await.json().await.unwrap();
    let eng = &groups["data"]["userGroups"][0];
    assert_eq!(eng["memberCount"], 5);
    let events = audit(&c, &h).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["User Added To User Group", "User Added via SSO"],
        "newest first"
    );
    assert!(events
        .iter()
        .all(|e| e["actor"] == "scim/sso-sync" && e.get("actorEmail").is_none()));
    assert_eq!(events[0]["resourceType"], "user_group");

    // Deprovisioning removes the user from the workspace.
    control(
        &c,
        &h,
        reqwest::Method::POST,
        "/okta/users/new@x.test/status",
        json!({"status": "DEPROVISIONED"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let st = control(&c, &h, reqwest::Method::GET, "/state", Value::Null).await;
    let users = st["segment"]["prod"]["users"].as_array().unwrap();
    assert!(!users.iter().any(|u| u["email"] == "new@x.test"));
    h.stop().await;
}

#[tokio::test]
async fn failing_mode_drops_and_paused_mode_queues() {
    let h = start(BASE_SEED).await;
    let c = Client::new();
    control(
        &c,
        &h,
        reqwest::Method::POST,
        "/push",
        json!({"mode": "failing"}),
    )
    .await;
    control(
        &c,
        &h,
        reqwest::Method::DELETE,
        "/okta/groups/Eng/members/b@x.test",
        Value::Null,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    control(
        &c,
        &h,
        reqwest::Method::POST,
        "/push",
        json!({"mode": "normal"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(audit(&c, &h).await.is_empty(), "dropped for good");

    control(
        &c,
        &h,
        reqwest::Method::POST,
        "/push",
        json!({"mode": "paused", "delay": "10ms"}),
    )
    .await;
    control(
        &c,
        &h,
        reqwest::Method::DELETE,
        "/okta/groups/Eng/members/c@x.test",
        Value::Null,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(audit(&c, &h).await.is_empty());
    let st = control(&c, &h, reqwest::Method::GET, "/state", Value::Null).await;
    assert_eq!(st["push"]["queue"].as_array().unwrap().len(), 1);
    control(
        &c,
        &h,
        reqwest::Method::POST,
        "/push",
        json!({"mode": "normal"}),
    )
    .await;
    let events = audit(&c, &h).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "User Removed From User Group");
    h.stop().await;
}

#[tokio::test]
async fn ui_user_permission_write_is_attributed() {
    let h = start(BASE_SEED).await;
    let c = Client::new();
    let ws: Value = seg(&c, &h, "seg-t", "/").await.json().await.unwrap();
    let ws_id = ws["data"]["workspace"]["id"].as_str().unwrap().to_string();
    let users: Value = seg(&c, &h, "seg-t", "/users").await.json().await.unwrap();
    let uid = users["data"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "a@x.test")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("{}/segment/prod/users/{uid}/permissions", h.url());
    let bad = c
        .post(&url)
        .bearer_auth("ui-t")
        .json(&json!({"permissions": [{"roleId": "1WDUuRLxv84rrfCNUwvkrRtkxnS", "resources": [{"id": "nope", "type": "SOURCE", "labels": [{"key": "env", "value": "prod"}]}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let resp = c
        .post(&url)
        .bearer_auth("ui-t")
        .json(&json!({"permissions": [{"roleId": "1WDUuRLxv84rrfCNUwvkrRtkxnS", "resources": [{"id": ws_id, "type": "WORKSPACE"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["permissions"][0]["subjectType"], "user");
    assert!(body["data"]["permissions"][0]["policyId"].is_string());
    let user: Value = seg(&c, &h, "seg-t", &format!("/users/{uid}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(user["data"]["user"]["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["roleName"] == "Workspace Owner"));
    let events = audit(&c, &h).await;
    assert_eq!(events[0]["type"], "Policy Created");
    assert_eq!(events[0]["actor"], "user/uBoss");
    assert_eq!(events[0]["actorEmail"], "boss@x.test");
    assert_eq!(events[0]["resourceId"], uid.as_str());
    assert!(events[0]["id"].as_str().unwrap().starts_with("events/"));
    // The workspace token is audited as public-api-token/<token_id>; DELETE takes emails.0=.
    let groups: Value = seg(&c, &h, "seg-t", "/groups").await.json().await.unwrap();
    let gid = groups["data"]["userGroups"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = c
        .delete(format!(
            "{}/segment/prod/group/{gid}/users?emails.0=a%40x.test&emails.1=b%40x.test",
            h.url()
        ))
        .bearer_auth("seg-t")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let events = audit(&c, &h).await;
    assert_eq!(events[0]["type"], "User Removed From User Group");
    assert_eq!(events[0]["actor"], "public-api-token/Tok1");
    let g: Value = seg(&c, &h, "seg-t", &format!("/groups/{gid}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(g["data"]["userGroup"]["memberCount"], 2);
    h.stop().await;
}

#[tokio::test]
async fn faults_answer_real_error_bodies_until_cleared() {
    let h = start(BASE_SEED).await;
    let c = Client::new();
    let f = control(
        &c,
        &h,
        reqwest::Method::POST,
        "/faults",
        json!({"service": "okta", "path": "^/api/v1/groups", "status": 500, "count": 1}),
    )
    .await;
    assert!(f["id"].is_string());
    let resp = okta_get(&c, &format!("{}/okta/api/v1/groups", h.url())).await;
    assert_eq!(resp.status(), 500);
    assert!(resp.headers().contains_key("x-rate-limit-reset"));
    assert_eq!(resp.json::<Value>().await.unwrap()["errorCode"], "E0000009");
    assert_eq!(
        okta_get(&c, &format!("{}/okta/api/v1/groups", h.url()))
            .await
            .status(),
        200
    );

    let f = control(&c, &h, reqwest::Method::POST, "/faults", json!({"service": "segment", "workspace": "prod", "path": "/permissions$", "method": "GET", "status": 429})).await;
    let groups: Value = seg(&c, &h, "seg-t", "/groups").await.json().await.unwrap();
    let gid = groups["data"]["userGroups"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = seg(&c, &h, "seg-t", &format!("/groups/{gid}/permissions")).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("x-ratelimit-reset"));
    assert_eq!(
        resp.json::<Value>().await.unwrap()["errors"][0]["message"],
        "Too many requests"
    );
    let id = f["id"].as_str().unwrap();
    control(
        &c,
        &h,
        reqwest::Method::DELETE,
        &format!("/faults/{id}"),
        Value::Null,
    )
    .await;
    // The fault is gone; the path itself does not exist in the API (only POST and PUT
    // do): 404, as Segment answers an unknown route.
    assert_eq!(
        seg(&c, &h, "seg-t", &format!("/groups/{gid}/permissions"))
            .await
            .status(),
        404
    );
    assert_eq!(
        seg(&c, &h, "seg-t", &format!("/groups/{gid}"))
            .await
            .status(),
        200
    );
    h.stop().await;
}

#[tokio::test]
async fn scim_creates_and_deactivates_users() {
    let h = start(BASE_SEED).await;
    let c = Client::new();
    let base = format!("{}/segment/prod/scim/v2", h.url());
    let resp = c
        .post(format!("{base}/Users"))
        .bearer_auth("scim-t")
        .json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "z@x.test", "active": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let found: Value = c
        .get(format!(
            "{base}/Users?filter=userName%20eq%20%22z@x.test%22"
        ))
        .bearer_auth("scim-t")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["totalResults"], 1);
    let resp = c
        .patch(format!("{base}/Users/{id}"))
        .bearer_auth("scim-t")
        .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "value": {"active": false}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let types: Vec<String> = audit(&c, &h)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, ["User Removed", "User Added via SSO"]);
    assert_eq!(
        c.get(format!("{base}/Users"))
            .bearer_auth("seg-t")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    h.stop().await;
}

#[tokio::test]
async fn the_demo_seed_loads_and_writes_a_config() {
    let h = start(include_str!("../../../deploy/demo-seed.toml")).await;
    let c = Client::new();
    let resp = c
        .get(format!("{}/segment/production/groups", h.url()))
        .bearer_auth("seg-prod-token")
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["userGroups"].as_array().unwrap().len(), 4);
    let cfg = h.config_toml(
        std::path::Path::new("/abs/mappings"),
        "propagation_window = \"10s\"",
    );
    let parsed: toml::Table = toml::from_str(&cfg).unwrap();
    assert_eq!(
        parsed["idp"]["url"].as_str().unwrap(),
        format!("{}/okta", h.url())
    );
    assert_eq!(parsed["idp"]["propagation_window"].as_str().unwrap(), "10s");
    let ws = parsed["workspace"].as_array().unwrap();
    assert_eq!(ws.len(), 2);
    assert_eq!(
        ws[0]["self_actor"].as_str().unwrap(),
        "public-api-token/TkProd01"
    );
    assert_eq!(parsed["mappings"]["dir"].as_str().unwrap(), "/abs/mappings");
    let err = sim::start("[okta]\ntoken = \"t\"\nunknown_key = 1\n", "127.0.0.1:0")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("unknown_key") && err.contains("line 3"),
        "{err}"
    );
    h.stop().await;
}

/// The benchmark's scale (10,000 Okta users, 200 groups, 2 workspaces of 5,000 members)
/// loads and pages quickly: every list is index-backed.
#[tokio::test]
async fn a_large_seed_loads_and_pages_quickly() {
    let started = std::time::Instant::now();
    let mut seed = String::from("[okta]\ntoken = \"okta-t\"\n");
    for i in 0..10_000 {
        seed.push_str(&format!("[[okta.user]]\nlogin = \"u{i}@big.test\"\n"));
    }
    for g in 0..200 {
        let members: Vec<String> = (0..50)
            .map(|j| format!("\"u{}@big.test\"", (g * 50 + j) % 10_000))
            .collect();
        let ws = if g % 2 == 0 { "w0" } else { "w1" };
        seed.push_str(&format!(
            "[[okta.group]]\nname = \"G{g}\"\nmembers = [{}]\npushed_to = [\"{ws}\"]\n",
            members.join(",")
        ));
    }
    for w in 0..2 {
        seed.push_str(&format!(
            "[[segment.workspace]]\nname = \"w{w}\"\ntoken = \"t{w}\"\n"
        ));
        for g in 0..100 {
            let members: Vec<String> = (0..50)
                .map(|j| format!("\"u{}@big.test\"", w * 5000 + g * 50 + j))
                .collect();
            seed.push_str(&format!(
                "[[segment.workspace.group]]\nname = \"G{}\"\nmembers = [{}]\n",
                g * 2 + w,
                members.join(",")
            ));
        }
    }
    let h = start(&seed).await;
    let load = started.elapsed();
    let c = Client::new();
    let mut url = format!("{}/okta/api/v1/users?limit=200", h.url());
    let mut n = 0;
    loop {
        let resp = okta_get(&c, &url).await;
        let next = next_link(&links(&resp));
        n += resp.json::<Vec<Value>>().await.unwrap().len();
        match next {
            Some(u) => url = u,
            None => break,
        }
    }
    assert_eq!(n, 10_000);
    let mut cursor: Option<String> = None;
    let mut m = 0;
    loop {
        let q = cursor.as_ref().map_or(String::new(), |c| {
            format!("&pagination.cursor={}", urlencode(c))
        });
        let body: Value = c
            .get(format!(
                "{}/segment/w0/users?pagination.count=1000{q}",
                h.url()
            ))
            .bearer_auth("t0")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        m += body["data"]["users"].as_array().unwrap().len();
        match body["data"]["pagination"]["next"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(m, 5000);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "load {load:?}, total {:?}",
        started.elapsed()
    );
    h.stop().await;
}

#[tokio::test]
async fn okta_profiles_always_carry_both_names() {
    let seed = BASE_SEED.replace(
        "login = \"c@x.test\"",
        "login = \"carla.de-souza@x.test\"\n[[okta.user]]\nlogin = \"c@x.test\"\nlast_name = \"Cee\"",
    );
    let h = start(&seed).await;
    let c = Client::new();
    let users: Vec<Value> = okta_get(&c, &format!("{}/okta/api/v1/users", h.url()))
        .await
        .json()
        .await
        .unwrap();
    let names = |login: &str| {
        let u = users
            .iter()
            .find(|u| u["profile"]["login"] == login)
            .unwrap_or_else(|| panic!("{login} in {users:#?}"));
        (
            u["profile"]["firstName"].as_str().unwrap().to_string(),
            u["profile"]["lastName"].as_str().unwrap().to_string(),
        )
    };
    assert!(users.iter().all(|u| {
        u["profile"]["firstName"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
            && u["profile"]["lastName"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
    }));
    assert_eq!(names("a@x.test"), ("A".into(), "A".into()));
    assert_eq!(names("c@x.test"), ("C".into(), "Cee".into()));
    assert_eq!(
        names("carla.de-souza@x.test"),
        ("Carla".into(), "De Souza".into())
    );
    h.stop().await;
}

#[tokio::test]
async fn system_log_polling_answers_short_pages_before_the_end_with_a_page_cap() {
    let seed = BASE_SEED.replace(
        "app_id = \"0oaseg\"",
        "app_id = \"0oaseg\"\nlog_page_cap = 1",
    );
    let h = start(&seed).await;
    let c = Client::new();
    for login in ["b@x.test", "c@x.test"] {
        control(
            &c,
            &h,
            reqwest::Method::POST,
            "/okta/groups/Ops/members",
            json!({ "login": login }),
        )
        .await;
    }
    let since = (chrono::Utc::now() - chrono::Duration::minutes(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut url = format!(
        "{}/okta/api/v1/logs?since={since}&limit=1000&filter=eventType%20eq%20%22group.user_membership.add%22",
        h.url()
    );
    let mut sizes = Vec::new();
    loop {
        let resp = okta_get(&c, &url).await;
        let next = next_link(&links(&resp)).expect("polling always answers next");
        let page: Vec<Value> = resp.json().await.unwrap();
        sizes.push(page.len());
        if page.is_empty() || sizes.len() > 5 {
            break;
        }
        url = next;
    }
    assert_eq!(sizes, vec![1, 1, 0]);
    h.stop().await;
}

#[tokio::test]
async fn a_seeded_group_without_grants_has_no_permissions() {
    let seed = BASE_SEED.replace(
        "[push]",
        "[[segment.workspace.group]]\nname = \"Bare\"\nmembers = [\"a@x.test\"]\n\n[push]",
    );
    let h = start(&seed).await;
    let c = Client::new();
    let groups: Value = seg(&c, &h, "seg-t", "/groups").await.json().await.unwrap();
    let perms = |name: &str| {
        groups["data"]["userGroups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {groups:#}"))["permissions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    assert!(perms("Bare").is_empty(), "{groups:#}");
    assert_eq!(perms("Eng").len(), 1);
    // What `POST /groups` starts with is undocumented; the sim's guess is Minimal
    // Workspace Access, as for groups SCIM creates.
    let made: Value = c
        .post(format!("{}/segment/prod/groups", h.url()))
        .bearer_auth("seg-t")
        .json(&json!({"name": "Made"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        made["data"]["userGroup"]["permissions"][0]["roleName"],
        "Minimal Workspace Access"
    );
    h.stop().await;
}
