//! The simulator's SCIM surface as a strict RFC 7643/7644 client sees it: the schemas
//! describe every attribute a User and a Group carry, lists page by `startIndex` and
//! `count`, and a group PATCH adds, replaces and removes members and answers with the
//! result.

use std::collections::BTreeSet;

use reqwest::{Client, Method, StatusCode};
use scimwatch_sim::{self as sim, SimHandle};
use serde_json::{json, Value};

const SEED: &str = r#"
[okta]
token = "okta-t"

[[okta.user]]
login = "a@x.test"
[[okta.user]]
login = "b@x.test"
[[okta.user]]
login = "c@x.test"
[[okta.user]]
login = "d@x.test"
[[okta.user]]
login = "e@x.test"

[[segment.workspace]]
name = "prod"
token = "seg-t"
token_id = "Tok1"
scim_token = "scim-t"

[[segment.workspace.user]]
email = "e@x.test"

[[segment.workspace.group]]
name = "Eng"
members = ["a@x.test", "b@x.test", "c@x.test", "d@x.test"]

[[segment.workspace.group]]
name = "Ops"
members = ["a@x.test"]

[[segment.workspace.group]]
name = "Empty"
"#;

const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

struct Scim {
    h: SimHandle,
    c: Client,
    base: String,
}

impl Scim {
    async fn start() -> Scim {
        let h = sim::start(SEED, "127.0.0.1:0").await.expect("sim starts");
        let base = format!("{}/segment/prod/scim/v2", h.url());
        Scim {
            h,
            c: Client::new(),
            base,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .c
            .request(method, format!("{}{path}", self.base))
            .bearer_auth("scim-t");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, value)
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// The id of the user with this userName.
    async fn user_id(&self, email: &str) -> String {
        let list = self
            .get(&format!("/Users?filter=userName%20eq%20%22{email}%22"))
            .await;
        list["Resources"][0]["id"].as_str().unwrap().to_string()
    }

    async fn group_id(&self, name: &str) -> String {
        let list = self
            .get(&format!("/Groups?filter=displayName%20eq%20%22{name}%22"))
            .await;
        list["Resources"][0]["id"].as_str().unwrap().to_string()
    }

    async fn patch_group(&self, gid: &str, ops: Value) -> (StatusCode, Value) {
        self.call(
            Method::PATCH,
            &format!("/Groups/{gid}"),
            Some(json!({"schemas": [PATCH_URN], "Operations": ops})),
        )
        .await
    }
}

/// The member ids of a Group resource.
fn members(group: &Value) -> BTreeSet<String> {
    group["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap().to_string())
        .collect()
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// RFC 7643 §2.3 / §7: whether a JSON value is of the attribute's declared type.
fn of_type(kind: &str, v: &Value) -> bool {
    match kind {
        "string" | "reference" | "binary" => v.is_string(),
        "boolean" => v.is_boolean(),
        "decimal" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "dateTime" => v
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        "complex" => v.is_object(),
        _ => false,
    }
}

/// Every characteristic RFC 7643 §7 gives an attribute, with a legal value.
fn check_definition(def: &Value, at: &str) {
    let kinds = [
        "string",
        "boolean",
        "decimal",
        "integer",
        "dateTime",
        "reference",
        "binary",
        "complex",
    ];
    assert!(
        kinds.contains(&def["type"].as_str().unwrap_or("")),
        "{at}: type {}",
        def["type"]
    );
    for key in ["multiValued", "required", "caseExact"] {
        assert!(def[key].is_boolean(), "{at}: {key} missing");
    }
    assert!(def["description"].is_string(), "{at}: description missing");
    let legal = [
        (
            "mutability",
            &["readOnly", "readWrite", "immutable", "writeOnly"][..],
        ),
        ("returned", &["always", "never", "default", "request"][..]),
        ("uniqueness", &["none", "server", "global"][..]),
    ];
    for (key, values) in legal {
        assert!(
            values.contains(&def[key].as_str().unwrap_or("")),
            "{at}: {key} {}",
            def[key]
        );
    }
    if def["type"] == "complex" {
        let subs = def["subAttributes"].as_array();
        assert!(
            subs.is_some_and(|s| !s.is_empty()),
            "{at}: no subAttributes"
        );
        for s in subs.into_iter().flatten() {
            check_definition(s, &format!("{at}.{}", s["name"].as_str().unwrap_or("?")));
        }
    } else {
        assert!(
            def.get("subAttributes").is_none(),
            "{at}: subAttributes on a simple type"
        );
    }
    if def["type"] == "reference" {
        assert!(
            def["referenceTypes"].is_array(),
            "{at}: referenceTypes missing"
        );
    }
}

fn find<'a>(defs: &'a Value, name: &str) -> Option<&'a Value> {
    defs.as_array()?.iter().find(|d| {
        d["name"]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    })
}

/// Walks one returned value against its definition: the value has the declared type and
/// multiplicity, nothing `returned: never` comes back, and every key of a complex value is a
/// described sub-attribute. Returns the attribute paths it saw.
fn walk(def: &Value, value: &Value, at: &str, seen: &mut BTreeSet<String>) {
    seen.insert(at.to_string());
    assert_ne!(
        def["returned"], "never",
        "{at} is returned but described as never returned"
    );
    let items: Vec<&Value> = if def["multiValued"] == true {
        assert!(
            value.is_array(),
            "{at} is multi-valued but not an array: {value}"
        );
        value.as_array().unwrap().iter().collect()
    } else {
        assert!(
            !value.is_array(),
            "{at} is single-valued but an array: {value}"
        );
        vec![value]
    };
    let kind = def["type"].as_str().unwrap();
    for item in items {
        assert!(of_type(kind, item), "{at}: {item} is not a {kind}");
        if kind == "complex" {
            for (k, v) in item.as_object().unwrap() {
                let sub = find(&def["subAttributes"], k)
                    .unwrap_or_else(|| panic!("{at}.{k} is not described in /Schemas"));
                walk(sub, v, &format!("{at}.{k}"), seen);
            }
        }
    }
}

/// A resource against its schema: every attribute (but `schemas`) is described, and every
/// required attribute is present.
fn check_resource(schema: &Value, resource: &Value) -> BTreeSet<String> {
    let attrs = &schema["attributes"];
    let mut seen = BTreeSet::new();
    assert_eq!(resource["schemas"], json!([schema["id"]]));
    for (k, v) in resource.as_object().unwrap() {
        if k == "schemas" {
            continue;
        }
        let def = find(attrs, k).unwrap_or_else(|| {
            panic!(
                "{}: attribute {k} is not described in /Schemas",
                schema["name"]
            )
        });
        walk(def, v, k, &mut seen);
    }
    for def in attrs.as_array().unwrap() {
        if def["required"] == true {
            let name = def["name"].as_str().unwrap();
            assert!(resource.get(name).is_some(), "required {name} missing");
        }
    }
    seen
}

#[tokio::test]
async fn schemas_describe_every_attribute_of_users_and_groups() {
    let s = Scim::start().await;
    let schemas = s.get("/Schemas").await;
    assert_eq!(schemas["totalResults"], 2);
    let list = schemas["Resources"].as_array().unwrap();
    for schema in list {
        assert_eq!(
            schema["schemas"],
            json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"])
        );
        for def in schema["attributes"].as_array().unwrap() {
            check_definition(def, &format!("{}.{}", schema["name"], def["name"]));
        }
        // Each schema is also served on its own.
        let id = schema["id"].as_str().unwrap();
        assert_eq!(&s.get(&format!("/Schemas/{id}")).await, schema);
    }
    let by_urn = |urn: &str| {
        list.iter()
            .find(|x| x["id"] == urn)
            .unwrap_or_else(|| panic!("{urn} not in /Schemas"))
            .clone()
    };
    // Every resource type names an endpoint and a schema that /Schemas has.
    let types = s.get("/ResourceTypes").await;
    let mut endpoints = BTreeSet::new();
    for rt in types["Resources"].as_array().unwrap() {
        by_urn(rt["schema"].as_str().unwrap());
        endpoints.insert(rt["endpoint"].as_str().unwrap().to_string());
        let id = rt["id"].as_str().unwrap();
        assert_eq!(&s.get(&format!("/ResourceTypes/{id}")).await, rt);
    }
    assert_eq!(endpoints, ids(&["/Groups", "/Users"]));
    let spc = s.get("/ServiceProviderConfig").await;
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["filter"]["supported"], true);

    // A user in two groups (so `groups` has entries) and a group with members.
    let user_schema = by_urn("urn:ietf:params:scim:schemas:core:2.0:User");
    let group_schema = by_urn("urn:ietf:params:scim:schemas:core:2.0:Group");
    let a = s.user_id("a@x.test").await;
    let user = s.get(&format!("/Users/{a}")).await;
    assert_eq!(user["groups"].as_array().unwrap().len(), 2, "{user}");
    let seen = check_resource(&user_schema, &user);
    for path in [
        "id",
        "userName",
        "displayName",
        "active",
        "emails.value",
        "emails.primary",
        "groups.value",
        "groups.display",
        "meta.location",
        "meta.resourceType",
    ] {
        assert!(
            seen.contains(path),
            "the walk did not reach {path}: {seen:?}"
        );
    }
    for u in s.get("/Users").await["Resources"].as_array().unwrap() {
        check_resource(&user_schema, u);
    }
    let eng = s.group_id("Eng").await;
    let group = s.get(&format!("/Groups/{eng}")).await;
    let seen = check_resource(&group_schema, &group);
    for path in [
        "id",
        "displayName",
        "members.value",
        "members.display",
        "meta.location",
    ] {
        assert!(
            seen.contains(path),
            "the walk did not reach {path}: {seen:?}"
        );
    }
    for g in s.get("/Groups").await["Resources"].as_array().unwrap() {
        check_resource(&group_schema, g);
    }
    // What the POST and PATCH answers carry is described too.
    let (status, created) = s
        .call(
            Method::POST,
            "/Users",
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "new@x.test", "name": {"givenName": "New", "familyName": "Person"},
                "emails": [{"value": "new@x.test", "type": "work", "primary": true}], "active": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    check_resource(&user_schema, &created);
    let (status, patched) = s
        .patch_group(
            &eng,
            json!([{"op": "add", "path": "members", "value": [{"value": created["id"]}]}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    check_resource(&group_schema, &patched);
    s.h.stop().await;
}

/// The `id`s of a list answer's resources.
fn page_ids(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn lists_page_by_start_index_and_count_after_filtering() {
    let s = Scim::start().await;
    let all = s.get("/Users").await;
    let every = page_ids(&all);
    assert_eq!(every.len(), 5);
    assert_eq!(all["totalResults"], 5);
    assert_eq!(all["itemsPerPage"], 5);
    assert_eq!(all["startIndex"], 1);

    // count=2 pages through everything, in the same order, without overlap.
    let mut walked = Vec::new();
    for start in [1, 3, 5] {
        let page = s.get(&format!("/Users?startIndex={start}&count=2")).await;
        assert_eq!(page["totalResults"], 5, "{page}");
        assert_eq!(page["startIndex"], start);
        let got = page_ids(&page);
        assert_eq!(page["itemsPerPage"], got.len());
        assert_eq!(got.len(), if start == 5 { 1 } else { 2 });
        walked.extend(got);
    }
    assert_eq!(walked, every);

    // count=0: no resources, only the total (RFC 7644 §3.4.2.4).
    let none = s.get("/Users?count=0").await;
    assert_eq!(none["totalResults"], 5);
    assert_eq!(none["itemsPerPage"], 0);
    assert!(page_ids(&none).is_empty());
    // A negative count means 0; a startIndex below 1 means 1; past the end is empty.
    assert_eq!(s.get("/Users?count=-3").await["itemsPerPage"], 0);
    let from_zero = s.get("/Users?startIndex=0&count=1").await;
    assert_eq!(from_zero["startIndex"], 1);
    assert_eq!(page_ids(&from_zero), every[..1]);
    let past = s.get("/Users?startIndex=9").await;
    assert_eq!(past["totalResults"], 5);
    assert!(page_ids(&past).is_empty());
    // Not a number: a SCIM error, not every user.
    let (status, err) = s.call(Method::GET, "/Users?count=two", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["scimType"], "invalidValue");

    // Filter, then page: totalResults counts the matches.
    let f = "filter=userName%20eq%20%22a@x.test%22%20or%20userName%20eq%20%22b@x.test%22";
    let first = s.get(&format!("/Users?{f}&count=1")).await;
    let second = s.get(&format!("/Users?{f}&count=1&startIndex=2")).await;
    assert_eq!(first["totalResults"], 2);
    assert_eq!(second["totalResults"], 2);
    let both: BTreeSet<String> = page_ids(&first)
        .into_iter()
        .chain(page_ids(&second))
        .collect();
    let want: BTreeSet<String> = [s.user_id("a@x.test").await, s.user_id("b@x.test").await]
        .into_iter()
        .collect();
    assert_eq!(both, want);

    // Groups page the same way.
    let groups = s.get("/Groups?startIndex=2&count=1").await;
    assert_eq!(groups["totalResults"], 3);
    assert_eq!(groups["itemsPerPage"], 1);
    assert_eq!(groups["startIndex"], 2);
    assert_eq!(page_ids(&s.get("/Groups").await)[1..2], page_ids(&groups));
    s.h.stop().await;
}

#[tokio::test]
async fn group_patch_adds_replaces_and_removes_members_and_answers_the_result() {
    let s = Scim::start().await;
    let [a, b, c, d] = [
        s.user_id("a@x.test").await,
        s.user_id("b@x.test").await,
        s.user_id("c@x.test").await,
        s.user_id("d@x.test").await,
    ];
    let gid = s.group_id("Empty").await;
    let group = |path: &str| format!("/Groups/{path}");
    let check = |body: Value, want: &[&String]| {
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(members(&body), want, "{body}");
    };

    // add with path `members` (Okta's form).
    let (status, body) = s
        .patch_group(
            &gid,
            json!([{"op": "add", "path": "members", "value": [{"value": a}, {"value": b}]}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    check(body, &[&a, &b]);
    check(s.get(&group(&gid)).await, &[&a, &b]);

    // remove with a value filter in the path (RFC 7644 §3.5.2.2).
    let (status, body) = s
        .patch_group(
            &gid,
            json!([{"op": "remove", "path": format!("members[value eq \"{a}\"]")}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    check(body, &[&b]);
    check(s.get(&group(&gid)).await, &[&b]);

    // replace the whole member list.
    let (_, body) = s
        .patch_group(
            &gid,
            json!([{"op": "replace", "path": "members", "value": [{"value": c}, {"value": d}]}]),
        )
        .await;
    check(body, &[&c, &d]);
    check(s.get(&group(&gid)).await, &[&c, &d]);

    // Entra's forms: capitalised ops, remove naming members in `value`, add without a path.
    let (_, body) = s
        .patch_group(
            &gid,
            json!([
                {"op": "Remove", "path": "members", "value": [{"value": c}]},
                {"op": "Add", "value": {"members": [{"value": a}]}},
            ]),
        )
        .await;
    check(body, &[&a, &d]);
    // replace without a path: members and displayName together.
    let (_, body) = s
        .patch_group(
            &gid,
            json!([{"op": "replace", "value": {"members": [{"value": b}], "displayName": "Renamed"}}]),
        )
        .await;
    check(body.clone(), &[&b]);
    assert_eq!(body["displayName"], "Renamed");
    assert_eq!(s.group_id("Renamed").await, gid);

    // One bad operation: nothing of the request is applied.
    let (status, err) = s
        .patch_group(
            &gid,
            json!([
                {"op": "add", "path": "members", "value": [{"value": a}]},
                {"op": "add", "path": "owners", "value": "x"},
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["scimType"], "invalidPath");
    check(s.get(&group(&gid)).await, &[&b]);

    // remove of `members` without a value or filter empties the group (RFC 7644 §3.5.2.2).
    let (_, body) = s
        .patch_group(&gid, json!([{"op": "remove", "path": "members"}]))
        .await;
    check(body, &[]);
    check(s.get(&group(&gid)).await, &[]);
    // The user side agrees: b is no longer in the group.
    let user_b = s.get(&format!("/Users/{b}")).await;
    assert!(user_b["groups"]
        .as_array()
        .unwrap()
        .iter()
        .all(|g| g["value"] != gid.as_str()));
    s.h.stop().await;
}

#[tokio::test]
async fn search_put_attribute_selection_and_read_only_discovery() {
    let s = Scim::start().await;
    let a = s.user_id("a@x.test").await;
    let b = s.user_id("b@x.test").await;

    // attributes keeps only what is named (and id, returned always); excludedAttributes
    // drops what is named; `a.b` selects a sub-attribute (RFC 7644 §3.4.2.5).
    let user = s
        .get(&format!("/Users/{a}?attributes=userName,emails.value"))
        .await;
    let keys: BTreeSet<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["emails", "id", "schemas", "userName"])
    );
    assert_eq!(user["emails"], json!([{"value": "a@x.test"}]));
    let user = s
        .get(&format!("/Users/{a}?excludedAttributes=groups,id,meta"))
        .await;
    assert!(user.get("groups").is_none() && user.get("meta").is_none());
    assert_eq!(user["id"], a.as_str(), "id is returned always");
    let list = s.get("/Groups?excludedAttributes=members").await;
    assert!(list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .all(|g| g.get("members").is_none() && g["displayName"].is_string()));

    // POST /.search is the list GET with its parameters in the body (RFC 7644 §3.4.3).
    let (status, found) = s
        .call(
            Method::POST,
            "/Users/.search",
            Some(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "userName sw \"a@\" or userName sw \"b@\"", "startIndex": 2, "count": 1,
                "attributes": ["userName"]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["totalResults"], 2);
    assert_eq!(found["itemsPerPage"], 1);
    assert!(found["Resources"][0].get("displayName").is_none());

    // PUT replaces a group's name and members (RFC 7644 §3.5.1).
    let eng = s.group_id("Eng").await;
    let (status, body) = s
        .call(
            Method::PUT,
            &format!("/Groups/{eng}"),
            Some(
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Engineering", "members": [{"value": b}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["displayName"], "Engineering");
    assert_eq!(members(&body), BTreeSet::from([b.clone()]));
    assert_eq!(
        members(&s.get(&format!("/Groups/{eng}")).await),
        BTreeSet::from([b])
    );
    // Onto another group's name: 409, and nothing changes.
    let (status, err) = s
        .call(
            Method::PUT,
            &format!("/Groups/{eng}"),
            Some(json!({"displayName": "Ops", "members": []})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(err["scimType"], "uniqueness");
    assert_eq!(
        s.get(&format!("/Groups/{eng}")).await["displayName"],
        "Engineering"
    );

    // The discovery endpoints are read-only: 405, not 404.
    for path in ["/ServiceProviderConfig", "/Schemas", "/ResourceTypes"] {
        let (status, _) = s.call(Method::POST, path, Some(json!({}))).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
    s.h.stop().await;
}

#[tokio::test]
async fn the_server_wide_search_returns_users_and_groups() {
    let s = Scim::start().await;
    let (status, found) = s
        .call(
            Method::POST,
            "/.search",
            Some(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "userName eq \"a@x.test\" or displayName eq \"Ops\""}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["totalResults"], 2);
    let kinds: BTreeSet<&str> = found["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["meta"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["Group", "User"]));
    // A plain GET of the root is still not an endpoint.
    let (status, _) = s.call(Method::GET, "/", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    s.h.stop().await;
}
