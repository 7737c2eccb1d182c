//! Segment client against small purpose-built servers replaying Segment's real payload
//! shapes (reference/segment.md §5, spec-shapes.json), with undeclared extra fields and
//! `labels: []` sprinkled in as the real API does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use scimwatch::config::WorkspaceConfig;
use scimwatch::error::ErrorClass;
use scimwatch::http::{RequestStats, RetryConfig};
use scimwatch::model::{
    CatalogNeeds, Email, Label, ResourceType, MINIMAL_ACCESS_ROLE_ID, WORKSPACE_OWNER_ROLE_ID,
};
use scimwatch::secret::Secret;
use scimwatch::segment::{SegmentClient, SegmentError};

const TOKEN: &str = "seg-token-s3cr3t";
const PREFIX: &str = "/segment/production";
const WS_ID: &str = "9aQ1Lj62S4bomZKLF4DPqW";
const SOURCE_ADMIN: &str = "1Xq0SourceAdminRoleId000000";

// ---------------------------------------------------------------------------------------
// A tiny fake: one fallback handler, a request log, per-path call counts.

#[derive(Clone, Debug)]
struct Req {
    path: String,
    query: HashMap<String, String>,
    /// How many earlier requests had the same path (0 for the first).
    nth: usize,
}

struct Reply {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn ok(data: Value) -> Reply {
    Reply {
        status: 200,
        content_type: "application/json",
        headers: vec![],
        body: json!({ "data": data }).to_string(),
    }
}

fn err(status: u16, ty: &str, message: &str) -> Reply {
    Reply {
        status,
        content_type: "application/json",
        headers: vec![],
        body: json!({"errors": [{"type": ty, "message": message}]}).to_string(),
    }
}

type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

struct Fake {
    handler: Box<Handler>,
    log: Mutex<Vec<Req>>,
}

async fn serve(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let accept = headers.get("accept").and_then(|v| v.to_str().ok());
    if accept != Some("application/json") {
        return (StatusCode::NOT_ACCEPTABLE, "accept").into_response();
    }
    if method != Method::GET || auth != Some(&format!("Bearer {TOKEN}")) {
        return (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            r#"{"errors":[{"type":"Unauthorized","message":"Unauthorized"}]}"#,
        )
            .into_response();
    }
    let path = uri
        .path()
        .strip_prefix(PREFIX)
        .unwrap_or(uri.path())
        .to_string();
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let req = {
        let mut log = fake.log.lock().unwrap();
        let nth = log.iter().filter(|r| r.path == path).count();
        let req = Req { path, query, nth };
        log.push(req.clone());
        req
    };
    let reply = (fake.handler)(&req);
    let mut resp = (
        StatusCode::from_u16(reply.status).unwrap(),
        [("content-type", reply.content_type)],
        reply.body,
    )
        .into_response();
    for (k, v) in reply.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

struct Server {
    fake: Arc<Fake>,
    base: String,
}

impl Server {
    async fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Server {
        let fake = Arc::new(Fake {
            handler: Box::new(handler),
            log: Mutex::new(vec![]),
        });
        let app = axum::Router::new().fallback(serve).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server {
            fake,
            base: format!("http://{addr}{PREFIX}/"),
        }
    }

    fn client(&self) -> (SegmentClient, Arc<RequestStats>) {
        let stats = RequestStats::new();
        let ws = WorkspaceConfig {
            name: "production".into(),
            api_url: self.base.clone(),
            token: Secret::new(TOKEN),
            scim_actors: vec![],
            automation_actors: vec![],
            self_actor: None,
            entra_app_id: None,
        };
        (
            SegmentClient::new(&ws, RetryConfig::fast(), stats.clone()),
            stats,
        )
    }

    fn requests(&self, path: &str) -> Vec<Req> {
        let log = self.fake.log.lock().unwrap();
        log.iter().filter(|r| r.path == path).cloned().collect()
    }
}

fn since() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

fn needs() -> CatalogNeeds {
    CatalogNeeds {
        sources: true,
        labels: true,
        ..CatalogNeeds::default()
    }
}

async fn read(server: &Server) -> Result<scimwatch::model::WorkspaceSnapshot, SegmentError> {
    let (client, _) = server.client();
    tokio::time::timeout(
        Duration::from_secs(4),
        client.read_workspace(needs(), since()),
    )
    .await
    .expect("read_workspace must not hang")
}

// ---------------------------------------------------------------------------------------
// The small workspace: 2 groups, 3 users, one direct Owner grant, one label grant.

fn owner_on_workspace() -> Value {
    json!({"roleId": WORKSPACE_OWNER_ROLE_ID, "roleName": "Workspace Owner",
           "resources": [{"id": WS_ID, "type": "WORKSPACE", "labels": []}]})
}

fn source_admin_on_prod_labels() -> Value {
    // Policy-level labels, as PermissionV1 carries them; resource type in lower case to
    // check the case-insensitive parse.
    json!({"roleId": SOURCE_ADMIN, "roleName": "Source Admin",
           "resources": [{"id": WS_ID, "type": "workspace", "labels": []}],
           "labels": [{"key": "environment", "value": "prod", "description": "Production"}]})
}

fn group_list_item(id: &str, with_permissions: bool) -> Value {
    let (name, perms, count) = match id {
        "grpOwners0000000000000" => ("Segment Prod Owners", json!([owner_on_workspace()]), 1),
        _ => (
            "Segment Analysts",
            json!([source_admin_on_prod_labels()]),
            2,
        ),
    };
    let mut g = json!({"id": id, "name": name, "memberCount": count, "policyCount": 1});
    if with_permissions {
        g["permissions"] = perms;
    }
    g
}

fn small(req: &Req) -> Reply {
    small_with(req, true)
}

fn small_with(req: &Req, inline_group_permissions: bool) -> Reply {
    let page = |key: &str, items: Value| {
        let mut data = json!({ "pagination": {"current": "MA==", "totalEntries": items.as_array().map(|a| a.len())} });
        data[key] = items;
        ok(data)
    };
    match req.path.as_str() {
        "/" => {
            let mut r = ok(
                json!({"workspace": {"id": WS_ID, "slug": "acme-prod", "name": "Acme Production",
                                                 "createdAt": "2020-01-01T00:00:00Z"}}),
            );
            r.content_type = "application/vnd.segment.v1+json";
            r
        }
        "/roles" => page(
            "roles",
            json!([
                {"id": WORKSPACE_OWNER_ROLE_ID, "name": "Workspace Owner", "description": "Full access"},
                {"id": MINIMAL_ACCESS_ROLE_ID, "name": "Minimal Workspace Access", "description": "View"},
                {"id": SOURCE_ADMIN, "name": "Source Admin", "description": "Sources"}
            ]),
        ),
        "/sources" => page(
            "sources",
            json!([
                {"id": "srcWebProd000000000000", "slug": "web-prod", "name": "Web (prod)",
                 "workspaceId": WS_ID, "enabled": true, "writeKeys": ["wk"],
                 "metadata": {"id": "m", "slug": "javascript", "name": "Javascript"},
                 "labels": [{"key": "environment", "value": "prod"}]},
                {"id": "srcWebDev0000000000000", "slug": "web-dev", "workspaceId": WS_ID,
                 "enabled": false, "writeKeys": [], "metadata": {}, "labels": []}
            ]),
        ),
        "/labels" => ok(json!({"labels": [
            {"key": "environment", "value": "prod", "description": "Production"},
            {"key": "environment", "value": "dev"}
        ]})),
        "/groups" => page(
            "userGroups",
            json!([
                group_list_item("grpOwners0000000000000", inline_group_permissions),
                group_list_item("grpAnalysts00000000000", inline_group_permissions)
            ]),
        ),
        p if p.starts_with("/groups/") && p.ends_with("/users") => {
            let members = if p.contains("grpOwners") {
                json!([{"id": "usrAna", "name": "Ana", "email": "Ana@Acme.test"}])
            } else {
                json!([{"id": "usrBob", "name": "Bob", "email": "bob@acme.test"},
                       {"id": "usrCy", "name": "", "email": "cy@acme.test"}])
            };
            page("users", members)
        }
        p if p.starts_with("/groups/") => {
            let id = p.trim_start_matches("/groups/");
            ok(json!({"userGroup": group_list_item(id, true)}))
        }
        "/users" => page(
            "users",
            json!([
                {"id": "usrAna", "name": "Ana", "email": "Ana@Acme.test"},
                {"id": "usrBob", "name": "Bob", "email": "bob@acme.test"},
                {"id": "usrEve", "name": "Eve", "email": "eve@acme.test"}
            ]),
        ),
        p if p.starts_with("/users/") => {
            let id = p.trim_start_matches("/users/");
            let (email, perms) = match id {
                "usrEve" => ("eve@acme.test", json!([owner_on_workspace()])),
                "usrAna" => (
                    "Ana@Acme.test",
                    json!([{"roleId": MINIMAL_ACCESS_ROLE_ID, "roleName": "Minimal Workspace Access",
                            "resources": [{"id": WS_ID, "type": "WORKSPACE", "labels": []}]}]),
                ),
                _ => ("bob@acme.test", json!([])),
            };
            ok(
                json!({"user": {"id": id, "name": "", "email": email, "permissions": perms,
                               "subjectType": "user"}}),
            )
        }
        "/audit-events" => {
            // One stream of every type, newest first; a `resourceType` filter is honoured
            // as Segment would (so a client that filters sees less).
            let all = json!([
                {"id": "events/4", "timestamp": "2024-03-04T22:00:00Z",
                 "type": "Policy Created", "actor": "user/usrAdmin",
                 "actorEmail": "admin@acme.test", "resourceId": "usrAna",
                 "resourceType": "workspace_member", "resourceName": "ana@acme.test"},
                {"id": "events/3", "timestamp": "2024-03-04T21:40:00Z",
                 "type": "Source Modified", "actor": "user/usrAdmin",
                 "actorEmail": "admin@acme.test", "resourceId": "srcWeb",
                 "resourceType": "source", "resourceName": "Web"},
                {"id": "events/2", "timestamp": "2024-03-04T21:29:22Z",
                 "type": "User Policy Updated", "actor": "user/usrAdmin",
                 "actorEmail": "admin@acme.test", "resourceId": "usrEve",
                 "resourceType": "user", "resourceName": "eve@acme.test"},
                {"id": "events/1", "timestamp": "2024-03-04T20:00:00.123Z",
                 "type": "User Added To User Group", "actor": "scim/sso-sync",
                 "resourceId": "grpOwners0000000000000", "resourceType": "user_group",
                 "resourceName": "Segment Prod Owners"}
            ]);
            let events: Vec<Value> = all
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| {
                    req.query
                        .get("resourceType")
                        .is_none_or(|t| e["resourceType"] == t.as_str())
                })
                .cloned()
                .collect();
            // The audit list may come without `pagination` at all.
            ok(json!({ "events": events }))
        }
        _ => err(404, "NotFound", "Resource not found"),
    }
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn reads_the_small_workspace_with_the_fewest_requests() {
    let server = Server::start(small).await;
    let (client, stats) = server.client();
    let snap = client.read_workspace(needs(), since()).await.unwrap();

    assert_eq!(snap.name, "production");
    assert_eq!(snap.id, WS_ID);
    assert_eq!(snap.slug, "acme-prod");

    // Catalog.
    assert_eq!(snap.catalog.roles.len(), 3);
    assert_eq!(snap.catalog.sources.len(), 2);
    let web = &snap.catalog.sources[0];
    assert_eq!(web.slug.as_deref(), Some("web-prod"));
    assert_eq!(web.name.as_deref(), Some("Web (prod)"));
    assert_eq!(
        web.labels.iter().cloned().collect::<Vec<_>>(),
        vec![Label {
            key: "environment".into(),
            value: "prod".into()
        }]
    );
    assert_eq!(snap.catalog.sources[1].name, None);
    assert_eq!(snap.catalog.labels.len(), 2);

    // Groups with grants and members.
    assert_eq!(snap.groups.len(), 2);
    let owners = &snap.groups[0];
    assert_eq!(owners.name, "Segment Prod Owners");
    assert_eq!(owners.members, vec![Email::new("ana@acme.test")]);
    assert_eq!(owners.grants.len(), 1);
    assert!(owners.grants[0].is_owner());
    let analysts = &snap.groups[1];
    assert_eq!(
        analysts.members,
        vec![Email::new("bob@acme.test"), Email::new("cy@acme.test")]
    );
    let label_grant = &analysts.grants[0];
    assert_eq!(label_grant.role_id, SOURCE_ADMIN);
    let res: Vec<_> = label_grant.resources.iter().collect();
    assert_eq!(res.len(), 1);
    assert_eq!(res[0].kind, ResourceType::Workspace);
    assert_eq!(res[0].id, WS_ID);
    assert_eq!(
        res[0].labels,
        BTreeSet::from([Label {
            key: "environment".into(),
            value: "prod".into()
        }])
    );
    assert_eq!(
        label_grant.resources_key(),
        format!("WORKSPACE:{WS_ID}[environment=prod]")
    );

    // Users with direct grants: Eve's Owner, Ana's neutral one, Bob none.
    let users: BTreeMap<&str, _> = snap.users.iter().map(|u| (u.id.as_str(), u)).collect();
    assert_eq!(users.len(), 3);
    assert_eq!(users["usrAna"].email, Email::new("ana@acme.test"));
    assert!(users["usrAna"].direct.iter().all(|g| g.is_neutral()));
    assert!(users["usrBob"].direct.is_empty());
    assert_eq!(users["usrEve"].direct.len(), 1);
    assert!(users["usrEve"].direct[0].is_owner());
    assert_eq!(
        users["usrEve"].direct[0].resources_key(),
        format!("WORKSPACE:{WS_ID}")
    );

    // Audit events about users and groups from one stream, classified on our side
    // (type, then the ids read, then the resourceType hint), actorEmail optional; the
    // source event is dropped.
    let mut audit = snap.audit.clone();
    audit.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        audit.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["events/1", "events/2", "events/4"]
    );
    assert_eq!(audit[2].kind, "Policy Created");
    assert_eq!(audit[2].resource_type, "user", "usrAna is a known user id");
    assert_eq!(audit[0].resource_type, "user_group");
    assert_eq!(audit[0].actor_email, None);
    assert_eq!(audit[1].kind, "User Policy Updated");
    assert_eq!(audit[1].actor_email.as_deref(), Some("admin@acme.test"));
    assert_eq!(
        audit[1].at,
        Utc.with_ymd_and_hms(2024, 3, 4, 21, 29, 22).unwrap()
    );

    // The request contract: dot-notation paging, the audit window, and no resourceType
    // filter (Segment does not document the IAM values): one audit stream.
    let users_req = &server.requests("/users")[0];
    assert_eq!(users_req.query["pagination.count"], "1000");
    let audit_reqs = server.requests("/audit-events");
    assert_eq!(audit_reqs.len(), 1);
    assert!(audit_reqs[0].query["startTime"].starts_with("2024-01-01T00:00:00"));
    assert!(audit_reqs[0].query.contains_key("endTime"));
    assert!(!audit_reqs[0].query.contains_key("resourceType"));

    // Fewest requests: 1 workspace + 1 roles + 1 sources + 1 labels + 1 groups
    // + 2 group member lists + 1 users + 3 GET /users/{id} + 1 audit = 12 (13 while
    // the audit trail was read once per resourceType).
    let by_ep = stats.by_endpoint();
    let ep = |e: &str| {
        by_ep
            .get(&("segment".to_string(), e.to_string()))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(ep("GET /users/{id}"), 3);
    assert_eq!(ep("GET /groups/{id}"), 0, "group permissions come inline");
    assert_eq!(ep("GET /groups/{id}/users"), 2);
    assert_eq!(ep("GET /audit-events"), 1);
    assert_eq!(stats.total(), 12, "{by_ep:?}");
}

#[tokio::test]
async fn group_list_without_permissions_falls_back_to_get_group() {
    let server = Server::start(|r| small_with(r, false)).await;
    let (client, stats) = server.client();
    let snap = client.read_workspace(needs(), since()).await.unwrap();
    assert!(snap.groups[0].grants[0].is_owner());
    assert_eq!(snap.groups[1].grants[0].role_id, SOURCE_ADMIN);
    let by_ep = stats.by_endpoint();
    assert_eq!(
        by_ep[&("segment".to_string(), "GET /groups/{id}".to_string())],
        2
    );
    // The 12 of the small read plus 2 group reads (+1 while the audit trail was read
    // once per resourceType).
    assert_eq!(stats.total(), 14);
}

#[tokio::test]
async fn read_catalog_reads_only_what_is_needed() {
    let server = Server::start(small).await;
    let (client, stats) = server.client();
    let (info, catalog) = client.read_catalog(CatalogNeeds::default()).await.unwrap();
    assert_eq!(info.id, WS_ID);
    assert_eq!(info.name, "Acme Production");
    assert_eq!(catalog.roles.len(), 3);
    assert!(catalog.sources.is_empty());
    assert_eq!(stats.total(), 2);
}

fn users_page(req: &Req) -> Reply {
    let cursor = req.query.get("pagination.cursor").map(String::as_str);
    let (users, pagination) = match cursor {
        None => (
            json!([{"id": "u1", "name": "", "email": "u1@acme.test"}]),
            json!({"current": "MA==", "next": "MQ==", "totalEntries": 3}),
        ),
        Some("MQ==") => (
            json!([{"id": "u2", "name": "", "email": "u2@acme.test"}]),
            json!({"current": "MQ==", "next": "Mg==", "previous": "MA=="}),
        ),
        // Last page: `next` absent, not null.
        _ => (
            json!([{"id": "u3", "name": "", "email": "u3@acme.test"}]),
            json!({"current": "Mg==", "previous": "MQ=="}),
        ),
    };
    ok(json!({"users": users, "pagination": pagination}))
}

#[tokio::test]
async fn follows_cursors_across_three_pages() {
    let server = Server::start(|r| match r.path.as_str() {
        "/users" => users_page(r),
        p if p.starts_with("/users/") => {
            let id = p.trim_start_matches("/users/");
            ok(
                json!({"user": {"id": id, "name": "", "email": format!("{id}@acme.test"),
                               "permissions": []}}),
            )
        }
        _ => small(r),
    })
    .await;
    let snap = read(&server).await.unwrap();
    let ids: Vec<_> = snap.users.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, ["u1", "u2", "u3"]);
    let cursors: Vec<_> = server
        .requests("/users")
        .iter()
        .map(|r| r.query.get("pagination.cursor").cloned())
        .collect();
    assert_eq!(
        cursors,
        [None, Some("MQ==".to_string()), Some("Mg==".to_string())]
    );
}

#[tokio::test]
async fn a_repeated_cursor_is_an_error_not_a_loop() {
    let server = Server::start(|r| match r.path.as_str() {
        "/users" => {
            // Every page says "next: MQ==": a broken server.
            ok(
                json!({"users": [{"id": "u1", "name": "", "email": "u1@acme.test"}],
                      "pagination": {"current": "MA==", "next": "MQ=="}}),
            )
        }
        _ => small(r),
    })
    .await;
    let e = read(&server).await.unwrap_err();
    assert!(matches!(e, SegmentError::RepeatedCursor { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::Bug);
    assert!(e.to_string().contains("MQ=="), "{e}");
    assert_eq!(server.requests("/users").len(), 2);
}

#[tokio::test]
async fn waits_out_a_429_with_ms_before_next() {
    let server = Server::start(|r| match (r.path.as_str(), r.nth) {
        ("/users", 0) => Reply {
            status: 429,
            content_type: "application/json",
            headers: vec![],
            body: json!({"errors": [{"type": "RequestError", "message": "Too many requests",
                "data": {"remainingPoints": 0, "msBeforeNext": 150, "consumedPoints": 21}}]})
            .to_string(),
        },
        _ => small(r),
    })
    .await;
    let (client, stats) = server.client();
    let started = std::time::Instant::now();
    let snap = client.read_workspace(needs(), since()).await.unwrap();
    assert_eq!(snap.users.len(), 3);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let counts = stats.snapshot();
    let key = |s: u16| ("segment".to_string(), "GET /users".to_string(), s);
    assert_eq!(counts[&key(429)], 1);
    assert_eq!(counts[&key(200)], 1);
    assert!(stats.waited() >= Duration::from_millis(150));
}

#[tokio::test]
async fn waits_out_a_429_with_retry_after() {
    let server = Server::start(|r| match (r.path.as_str(), r.nth) {
        ("/roles", 0) => Reply {
            status: 429,
            content_type: "application/json",
            headers: vec![("retry-after", "1".into())],
            body: json!({"errors": [{"type": "RequestError", "message": "Too many requests",
                "data": {"msBeforeNext": 60000}}]})
            .to_string(),
        },
        _ => small(r),
    })
    .await;
    let started = std::time::Instant::now();
    read(&server).await.unwrap();
    let took = started.elapsed();
    // Retry-After (1 s) wins over msBeforeNext (60 s).
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(server.requests("/roles").len(), 2);
}

#[tokio::test]
async fn retries_a_500_then_succeeds() {
    let server = Server::start(|r| match (r.path.as_str(), r.nth) {
        ("/groups/grpAnalysts00000000000/users", 0) => {
            err(500, "InternalServerError", "Internal server error")
        }
        _ => small(r),
    })
    .await;
    let snap = read(&server).await.unwrap();
    assert_eq!(snap.groups[1].members.len(), 2);
}

#[tokio::test]
async fn a_persistent_500_is_a_transient_server_error() {
    let server = Server::start(|r| match r.path.as_str() {
        "/groups" => err(503, "ServiceUnavailable", "Try later"),
        _ => small(r),
    })
    .await;
    let e = read(&server).await.unwrap_err();
    assert!(matches!(e, SegmentError::Server { status: 503, .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::Transient);
    // The first try and RetryConfig::fast()'s 3 retries.
    assert_eq!(server.requests("/groups").len(), 4);
}

#[tokio::test]
async fn unauthorized_names_workspace_request_and_cause() {
    let server = Server::start(small).await;
    let ws = WorkspaceConfig {
        name: "production".into(),
        api_url: server.base.clone(),
        token: Secret::new("wrong-token"),
        scim_actors: vec![],
        automation_actors: vec![],
        self_actor: None,
        entra_app_id: None,
    };
    let client = SegmentClient::new(&ws, RetryConfig::fast(), RequestStats::new());
    let e = client.read_workspace(needs(), since()).await.unwrap_err();
    let text = e.to_string();
    assert_eq!(e.class(), ErrorClass::Auth);
    assert!(!text.contains('\n'), "{text}");
    assert!(
        text.starts_with("segment workspace production: GET http://127.0.0.1:"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{PREFIX}/: 401 unauthorized: Unauthorized")),
        "{text}"
    );
    assert!(text.contains("Workspace Owner token"), "{text}");
    assert!(!text.contains("wrong-token"));
    assert!(!format!("{client:?}").contains("wrong-token"));
    assert!(!format!("{e:?}").contains("wrong-token"));
}

#[tokio::test]
async fn member_list_401_names_the_group_request() {
    let server = Server::start(|r| match r.path.as_str() {
        "/groups/grpAnalysts00000000000/users" => err(401, "Unauthorized", "Unauthorized"),
        _ => small(r),
    })
    .await;
    let e = read(&server).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "GET {}groups/grpAnalysts00000000000/users?pagination.count=1000: 401 unauthorized",
            server.base
        )),
        "{text}"
    );
}

#[tokio::test]
async fn vendor_json_content_type_is_accepted_and_html_is_not() {
    let server = Server::start(|r| {
        let mut reply = small(r);
        reply.content_type = "application/vnd.segment.v1+json; charset=utf-8";
        reply
    })
    .await;
    assert_eq!(read(&server).await.unwrap().users.len(), 3);

    let server = Server::start(|r| match r.path.as_str() {
        "/roles" => Reply {
            status: 200,
            content_type: "text/html",
            headers: vec![],
            body: "<html>login</html>".into(),
        },
        _ => small(r),
    })
    .await;
    let e = read(&server).await.unwrap_err();
    assert!(matches!(e, SegmentError::Decode { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::Bug);

    // An error answer that is not JSON still carries its status.
    let server = Server::start(|r| match r.path.as_str() {
        "/roles" => Reply {
            status: 403,
            content_type: "text/html",
            headers: vec![],
            body: "<html>forbidden</html>".into(),
        },
        _ => small(r),
    })
    .await;
    let e = read(&server).await.unwrap_err();
    assert!(
        matches!(e, SegmentError::Unauthorized { status: 403, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("not JSON"), "{e}");
}

#[tokio::test]
async fn plan_without_user_groups_is_a_plan_limit() {
    let server = Server::start(|r| match r.path.as_str() {
        "/groups" => err(
            400,
            "bad-request",
            "Your plan does not include User Groups. Contact sales to upgrade to business tier.",
        ),
        _ => small(r),
    })
    .await;
    let e = read(&server).await.unwrap_err();
    assert!(matches!(e, SegmentError::PlanLimit { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::Auth);
    assert!(e.to_string().contains("Business tier"), "{e}");
}

#[tokio::test]
async fn validation_error_names_the_field() {
    let server = Server::start(|r| match r.path.as_str() {
        "/audit-events" => Reply {
            status: 422,
            content_type: "application/json",
            headers: vec![],
            body: json!({"errors": [{"type": "input-validation",
                "message": "\"startTime\" is invalid", "field": "startTime"}]})
            .to_string(),
        },
        _ => small(r),
    })
    .await;
    let e = read(&server).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("422 validation failed on startTime: \"startTime\" is invalid"),
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Bug);
}

#[tokio::test]
async fn unknown_resource_type_is_a_decode_error_naming_it() {
    let server = Server::start(|r| match r.path.as_str() {
        "/users/usrBob" => ok(
            json!({"user": {"id": "usrBob", "name": "", "email": "bob@acme.test",
            "permissions": [{"roleId": "r", "roleName": "Destination Admin",
                             "resources": [{"id": "d1", "type": "DESTINATION"}]}]}}),
        ),
        _ => small(r),
    })
    .await;
    let e = read(&server).await.unwrap_err();
    assert!(matches!(e, SegmentError::Decode { .. }), "{e}");
    assert!(e.to_string().contains("DESTINATION"), "{e}");
}

#[tokio::test]
async fn users_listed_with_permissions_skip_the_per_user_read() {
    let server = Server::start(|r| match r.path.as_str() {
        "/users" => ok(json!({"users": [
            {"id": "usrEve", "name": "Eve", "email": "eve@acme.test",
             "permissions": [owner_on_workspace()]}
        ], "pagination": {"current": "MA=="}})),
        _ => small(r),
    })
    .await;
    let snap = read(&server).await.unwrap();
    assert!(snap.users[0].direct[0].is_owner());
    let hits = server
        .fake
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path.starts_with("/users/"))
        .count();
    assert_eq!(hits, 0);
}

#[tokio::test]
async fn low_remaining_budget_holds_the_next_request_until_reset() {
    let server = Server::start(|r| match r.path.as_str() {
        "/" => {
            let mut reply = small(r);
            let reset = std::time::SystemTime::now() + Duration::from_secs(2);
            reply.headers = vec![
                ("x-ratelimit-consumed", "598".into()),
                ("x-ratelimit-remaining", "2".into()),
                ("x-ratelimit-reset", httpdate::fmt_http_date(reset)),
            ];
            reply
        }
        _ => {
            let mut reply = small(r);
            reply.headers = vec![("x-ratelimit-remaining", "500".into())];
            reply
        }
    })
    .await;
    let (client, stats) = server.client();
    let started = std::time::Instant::now();
    client.read_catalog(CatalogNeeds::default()).await.unwrap();
    // The reset date has whole seconds: the hold is between 1 and 2 s.
    assert!(
        stats.waited() >= Duration::from_millis(900),
        "{:?}",
        stats.waited()
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(stats.total(), 2);
}

#[tokio::test]
async fn reads_warehouses_functions_and_spaces_when_needed() {
    let server = Server::start(|r| {
        let page = |key: &str, items: Value| {
            let mut data = json!({"pagination": {"current": "MA=="}});
            data[key] = items;
            ok(data)
        };
        match r.path.as_str() {
            "/warehouses" => page(
                "warehouses",
                json!([{"id": "whSnow", "workspaceId": WS_ID, "enabled": true,
                        "metadata": {"id": "m", "slug": "snowflake", "name": "Snowflake"},
                        "settings": {"name": "Analytics DW", "database": "x"}},
                       {"id": "whBare", "workspaceId": WS_ID, "enabled": true, "metadata": {},
                        "settings": {}}]),
            ),
            "/functions" => {
                let kind = r.query.get("resourceType").cloned().unwrap_or_default();
                let items = match kind.as_str() {
                    "SOURCE" => json!([{"id": "sfnc_1", "displayName": "Enrich",
                                        "resourceType": "SOURCE", "code": "x"}]),
                    // The same function listed again must not be duplicated.
                    "DESTINATION" => json!([{"id": "dfn_2", "displayName": "Forward"},
                                            {"id": "sfnc_1", "displayName": "Enrich"}]),
                    _ => json!([]),
                };
                page("functions", items)
            }
            "/spaces" => page(
                "spaces",
                json!([{"id": "spaMain", "slug": "main", "name": "Main", "extra": 1}]),
            ),
            _ => small(r),
        }
    })
    .await;
    let (client, stats) = server.client();
    let all = CatalogNeeds {
        sources: true,
        warehouses: true,
        functions: true,
        spaces: true,
        labels: true,
    };
    let (_, catalog) = client.read_catalog(all).await.unwrap();
    let names = |items: &[scimwatch::model::CatalogItem]| {
        items
            .iter()
            .map(|i| (i.id.clone(), i.name.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&catalog.warehouses),
        [
            ("whSnow".to_string(), Some("Analytics DW".to_string())),
            ("whBare".to_string(), None)
        ]
    );
    assert_eq!(
        names(&catalog.functions),
        [
            ("sfnc_1".to_string(), Some("Enrich".to_string())),
            ("dfn_2".to_string(), Some("Forward".to_string()))
        ]
    );
    assert_eq!(catalog.spaces[0].slug.as_deref(), Some("main"));
    let kinds: BTreeSet<_> = server
        .requests("/functions")
        .iter()
        .map(|r| r.query["resourceType"].clone())
        .collect();
    assert_eq!(kinds.len(), 4);
    // 1 workspace + 1 roles + 1 sources + 1 warehouses + 4 functions + 1 spaces + 1 labels.
    assert_eq!(stats.total(), 10);
}

#[tokio::test]
async fn no_answer_is_a_transient_transport_error() {
    // Bind then drop a listener: nothing accepts on that port any more.
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let ws = WorkspaceConfig {
        name: "production".into(),
        api_url: format!("http://127.0.0.1:{port}"),
        token: Secret::new(TOKEN),
        scim_actors: vec![],
        automation_actors: vec![],
        self_actor: None,
        entra_app_id: None,
    };
    let client = SegmentClient::new(&ws, RetryConfig::fast(), RequestStats::new());
    let e = client
        .read_catalog(CatalogNeeds::default())
        .await
        .unwrap_err();
    assert!(matches!(e, SegmentError::Transport { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(
        e.to_string(),
        format!("segment workspace production: GET http://127.0.0.1:{port}/: no answer")
    );
}

/// The simulator keeps its own copy of Segment's well-known role ids (it depends on
/// nothing of scimwatch); both copies must name the same roles.
#[test]
fn the_simulator_and_the_product_agree_on_segment_role_ids() {
    assert_eq!(
        scimwatch_sim::WORKSPACE_OWNER_ROLE_ID,
        WORKSPACE_OWNER_ROLE_ID
    );
    assert_eq!(
        scimwatch_sim::MINIMAL_ACCESS_ROLE_ID,
        MINIMAL_ACCESS_ROLE_ID
    );
}
