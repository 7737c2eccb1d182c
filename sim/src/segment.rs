//! The Segment Public API of one workspace under `/segment/{workspace}` (segment.md §1–§7,
//! §11).
//!
//! Contract: `{"data"}` or `{"errors"}` envelopes only; Bearer auth with the workspace
//! token (`public-api-token/<token_id>`) or a `ui_users` token (`user/<id>` +
//! `actorEmail`); pagination read in dot, bracket and JSON forms, `next` absent on the last
//! page, signed cursors (forged → 422); `X-RateLimit-*` on every response, 60/min per IAM
//! write endpoint, 429 with `data.msBeforeNext` and `Retry-After` on every other one.
//! Writes go through `state::Workspace`'s mutators (which write the audit events).

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::http::{json as json_resp, set};
use super::ratelimit::Verdict;
use super::state::{
    role_name, Actor, Item, Okta, Permission, SegGroup, SegUser, Subject, Workspace, ROLE_NAMES,
};
use super::{App, Req};

pub const VND: &str = "application/vnd.segment.v1+json";
pub const JSON: &str = "application/json";
const WRITE_BUDGET: u32 = 60;

pub fn error_json(status: u16, message: &str) -> Value {
    let kind = match status {
        401 | 403 => "unauthorized",
        404 => "NotFound",
        409 => "conflict",
        422 => "input-validation",
        429 => "RequestError",
        400 => "bad-request",
        _ => "InternalServerError",
    };
    json!({"errors": [{"type": kind, "message": message}]})
}

pub fn err(status: u16, message: &str) -> Response {
    json_resp(
        super::http::status(status),
        &error_json(status, message),
        JSON,
    )
}

pub fn invalid(field: &str, message: &str) -> Response {
    json_resp(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({"errors": [{"type": "input-validation", "message": message, "field": field}]}),
        JSON,
    )
}

pub fn data(body: Value, content_type: &str) -> Response {
    json_resp(StatusCode::OK, &json!({ "data": body }), content_type)
}

fn add_headers(resp: &mut Response, v: &Verdict) {
    set(resp, "x-ratelimit-consumed", &v.consumed.to_string());
    set(resp, "x-ratelimit-remaining", &v.remaining.to_string());
    set(
        resp,
        "x-ratelimit-reset",
        &httpdate::fmt_http_date(std::time::SystemTime::from(v.reset)),
    );
}

pub fn too_many(app: &App, v: &Verdict) -> Response {
    let mut resp = json_resp(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({"errors": [{"type": "RequestError", "message": "Too many requests",
            "data": {"remainingPoints": 0, "msBeforeNext": v.ms_before_next, "consumedPoints": v.consumed}}]}),
        JSON,
    );
    let n = app
        .retry_after_toggle
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if n % 2 == 0 {
        set(
            &mut resp,
            "retry-after",
            &v.ms_before_next.div_ceil(1000).max(1).to_string(),
        );
    }
    resp
}

/// Whether `method path` is an IAM write (60/min per endpoint), and its endpoint key.
fn write_endpoint(method: &Method, path: &str) -> Option<String> {
    if *method == Method::GET {
        return None;
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let norm: Vec<&str> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| if i == 1 { "{id}" } else { p })
        .collect();
    Some(format!("{method} /{}", norm.join("/")))
}

pub async fn handle(app: &App, ws_name: &str, req: Req) -> Response {
    let (actor, read_budget) = {
        let st = app.state();
        let Some(ws) = st.workspaces.get(ws_name) else {
            return err(404, "Workspace not found");
        };
        let token = req
            .header("authorization")
            .and_then(|a| {
                a.strip_prefix("Bearer ")
                    .or_else(|| a.strip_prefix("bearer "))
            })
            .map(str::trim);
        let actor = token.and_then(|t| {
            if t == ws.token {
                Some(Actor {
                    actor: format!("public-api-token/{}", ws.token_id),
                    email: None,
                })
            } else {
                ws.ui_users.iter().find(|u| u.token == t).map(|u| Actor {
                    actor: format!("user/{}", u.id),
                    email: Some(u.email.clone()),
                })
            }
        });
        (actor, ws.rate_limit)
    };
    let who = actor
        .as_ref()
        .map_or("anonymous".to_string(), |a| a.actor.clone());
    let key = match write_endpoint(&req.method, &req.path) {
        Some(ep) => (format!("segment:{ws_name}:{who}:{ep}"), Some(WRITE_BUDGET)),
        None => (format!("segment:{ws_name}:{who}:read"), read_budget),
    };
    if let Some(inj) = app
        .faults
        .take("segment", Some(ws_name), req.method.as_str(), &req.path)
    {
        if let Some(ms) = inj.delay_ms {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        if let Some(status) = inj.status {
            let v = app.limiter.peek(&key.0, key.1);
            let mut resp = if status == 429 {
                too_many(app, &v)
            } else {
                err(status, "Injected fault")
            };
            add_headers(&mut resp, &v);
            return resp;
        }
    }
    let Some(actor) = actor else {
        let v = app.limiter.peek(&key.0, key.1);
        let mut resp = err(401, "Unauthorized: missing or invalid token");
        add_headers(&mut resp, &v);
        return resp;
    };
    let v = app.limiter.hit(&key.0, key.1);
    let mut resp = if v.allowed {
        route(app, ws_name, &req, &actor)
    } else {
        too_many(app, &v)
    };
    add_headers(&mut resp, &v);
    resp
}

/// `pagination` in dot, bracket or JSON form.
pub struct Pag {
    pub count: usize,
    pub offset: usize,
    pub cursor: Option<String>,
}

pub fn pagination(app: &App, req: &Req, audit: bool) -> Result<(Pag, Option<String>), Response> {
    let mut count: Option<String> = None;
    let mut cursor: Option<String> = None;
    for (k, v) in &req.query {
        match k.as_str() {
            "pagination.count" | "pagination[count]" => count = Some(v.clone()),
            "pagination.cursor" | "pagination[cursor]" => cursor = Some(v.clone()),
            "pagination" => {
                let j: Value = serde_json::from_str(v)
                    .map_err(|_| invalid("pagination", "\"pagination\" must be an object"))?;
                if let Some(c) = j.get("count") {
                    count = Some(
                        c.as_i64()
                            .map(|n| n.to_string())
                            .unwrap_or_else(|| c.to_string().trim_matches('"').to_string()),
                    );
                }
                if let Some(c) = j.get("cursor").and_then(Value::as_str) {
                    cursor = Some(c.to_string());
                }
            }
            _ => {}
        }
    }
    let count = match count {
        None => 200,
        Some(c) => match c.trim().parse::<i64>() {
            Ok(n) if (1..=1000).contains(&n) => n as usize,
            Ok(_) => {
                return Err(invalid(
                    "pagination.count",
                    "\"pagination.count\" must be between 1 and 1000",
                ))
            }
            Err(_) => {
                return Err(invalid(
                    "pagination.count",
                    "\"pagination.count\" must be a number",
                ))
            }
        },
    };
    let cursor = cursor.filter(|c| !c.is_empty());
    let bad = || invalid("pagination.cursor", "Invalid cursor");
    let (offset, end_time) = match (&cursor, audit) {
        (None, _) => (0, None),
        (Some(c), false) => (app.signer.segment_verify(c).ok_or_else(bad)?, None),
        (Some(c), true) => {
            let (o, e) = app.signer.audit_verify(c).ok_or_else(bad)?;
            (o, Some(e))
        }
    };
    Ok((
        Pag {
            count,
            offset,
            cursor,
        },
        end_time,
    ))
}

/// One page of `items` and its `pagination` object.
pub fn page<T>(
    app: &App,
    items: impl ExactSizeIterator<Item = T>,
    pag: &Pag,
    cap: usize,
) -> (Vec<T>, Value) {
    let total = items.len();
    let count = pag.count.min(cap);
    let out: Vec<T> = items.skip(pag.offset).take(count).collect();
    let mut p = json!({"current": pag.cursor.clone().unwrap_or_else(|| app.signer.segment(pag.offset)), "totalEntries": total});
    if pag.offset + count < total {
        p["next"] = json!(app.signer.segment(pag.offset + count));
    }
    if pag.offset > 0 {
        p["previous"] = json!(app.signer.segment(pag.offset.saturating_sub(count)));
    }
    (out, p)
}

/// An array query parameter: repeated keys, `k.0=`, `k[0]=`, `k[]=`, or comma-separated.
pub fn array_param(req: &Req, name: &str) -> Vec<String> {
    let mut indexed: Vec<(usize, String)> = Vec::new();
    let mut plain: Vec<String> = Vec::new();
    let dot = format!("{name}.");
    let br = format!("{name}[");
    for (k, v) in &req.query {
        if k == name || *k == format!("{name}[]") {
            if v.starts_with('[') {
                if let Ok(list) = serde_json::from_str::<Vec<String>>(v) {
                    plain.extend(list);
                    continue;
                }
            }
            plain.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
        } else if let Some(i) = k
            .strip_prefix(&dot)
            .or_else(|| k.strip_prefix(&br).and_then(|r| r.strip_suffix(']')))
        {
            if let Ok(i) = i.parse::<usize>() {
                indexed.push((i, v.clone()));
            }
        }
    }
    indexed.sort_by_key(|(i, _)| *i);
    plain.extend(indexed.into_iter().map(|(_, v)| v));
    plain
}

pub fn perm_json(p: &Permission) -> Value {
    json!({
        "roleId": p.role_id,
        "roleName": role_name(&p.role_id).unwrap_or("Unknown Role"),
        "resources": p.resources.iter().map(|r| json!({"id": r.id, "type": r.kind,
            "labels": r.labels.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
    })
}

fn user_json(u: &SegUser, with_perms: bool) -> Value {
    let mut v = json!({"id": u.id, "name": u.name, "email": u.email});
    if with_perms {
        v["permissions"] = u.permissions.iter().map(perm_json).collect();
    }
    v
}

fn group_json(g: &SegGroup) -> Value {
    json!({"id": g.id, "name": g.name, "memberCount": g.members.len(),
           "permissions": g.permissions.iter().map(perm_json).collect::<Vec<_>>()})
}

fn item_labels(i: &Item) -> Value {
    i.labels
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect()
}

fn logos() -> Value {
    json!({"default": "https://cdn.filepicker.io/api/file/sim-logo", "mark": null, "alt": null})
}

fn source_json(ws: &Workspace, s: &Item) -> Value {
    json!({"id": s.id, "slug": s.slug, "name": s.name, "workspaceId": ws.id, "enabled": true,
        "writeKeys": [super::cursor::base62_id(&format!("writekey:{}", s.id), 32)],
        "metadata": {"id": "IqDTy1TpoU", "slug": "javascript", "name": "Javascript", "categories": ["Website"],
            "description": "A source for websites.", "logos": logos(), "options": [], "isCloudEventSource": false},
        "settings": {}, "labels": item_labels(s)})
}

/// Splits `/a/b/c` into segments.
fn segs(path: &str) -> Vec<&str> {
    path.trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

fn route(app: &App, ws_name: &str, req: &Req, actor: &Actor) -> Response {
    let parts = segs(&req.path);
    let m = req.method.clone();
    let mut guard = app.state();
    let st = &mut *guard;
    let counter = &mut st.audit_counter;
    let okta = &st.okta;
    let Some(ws) = st.workspaces.get_mut(ws_name) else {
        return err(404, "Workspace not found");
    };
    macro_rules! pag {
        ($cap:expr) => {
            match pagination(app, req, false) {
                Ok((p, _)) => p,
                Err(r) => return r,
            }
        };
    }
    match (m.as_str(), parts.as_slice()) {
        ("GET", []) => data(
            json!({"workspace": {"id": ws.id, "slug": ws.name, "name": ws.name, "region": "us-west-2"}}),
            VND,
        ),
        ("GET", ["users"]) => {
            let p = pag!(1000);
            let (items, pj) = page(app, ws.users.values(), &p, 1000);
            data(
                json!({"users": items.into_iter().map(|u| user_json(u, false)).collect::<Vec<_>>(), "pagination": pj}),
                VND,
            )
        }
        ("DELETE", ["users"]) => {
            let ids = array_param(req, "userIds");
            if ids.is_empty() {
                return invalid("userIds", "\"userIds\" is required");
            }
            for id in &ids {
                ws.remove_user(counter, id, actor);
            }
            data(json!({"status": "SUCCESS"}), VND)
        }
        ("GET", ["users", id]) => match ws.users.get(*id) {
            Some(u) => data(json!({"user": user_json(u, true)}), VND),
            None => err(404, "Resource not found"),
        },
        ("GET", ["users", id, "groups"]) => {
            if !ws.users.contains_key(*id) {
                return err(404, "Resource not found");
            }
            let p = pag!(200);
            let groups = ws.groups_of(id);
            let (items, pj) = page(app, groups.into_iter(), &p, 200);
            data(
                json!({"groups": items.into_iter().map(|g| json!({"id": g.id, "name": g.name})).collect::<Vec<_>>(), "pagination": pj}),
                VND,
            )
        }
        ("POST" | "PUT", ["users", id, "permissions"]) => super::segment_iam::write_perms(
            ws,
            counter,
            Subject::User,
            id,
            req,
            m == Method::PUT,
            actor,
        ),
        ("GET", ["groups"]) => {
            let p = pag!(1000);
            let (items, pj) = page(app, ws.groups.values(), &p, 1000);
            data(
                json!({"userGroups": items.into_iter().map(group_json).collect::<Vec<_>>(), "pagination": pj}),
                VND,
            )
        }
        ("POST", ["groups"]) => {
            let name = req
                .json_body()
                .and_then(|b| b.get("name").and_then(Value::as_str).map(str::to_string));
            let Some(name) = name.filter(|n| !n.trim().is_empty()) else {
                return invalid("name", "\"name\" is required");
            };
            if ws.group_id_by_name(&name).is_some() {
                return err(409, "A user group with this name already exists");
            }
            // Starts with Minimal Workspace Access: a guess, see `Workspace::create_group`.
            let id = ws.create_group(counter, &name, actor);
            match ws.groups.get(&id) {
                Some(g) => data(json!({"userGroup": group_json(g)}), VND),
                None => err(500, "group vanished"),
            }
        }
        ("GET", ["groups", id]) => match ws.groups.get(*id) {
            Some(g) => data(json!({"userGroup": group_json(g)}), VND),
            None => err(404, "Resource not found"),
        },
        ("DELETE", ["groups", id]) => {
            if ws.delete_group(counter, id, actor) {
                data(json!({"status": "SUCCESS"}), VND)
            } else {
                err(404, "Resource not found")
            }
        }
        ("GET", ["groups", id, "users"]) => {
            let Some(g) = ws.groups.get(*id) else {
                return err(404, "Resource not found");
            };
            let p = pag!(1000);
            let (items, pj) = page(app, g.members.iter(), &p, 1000);
            let users: Vec<Value> = items
                .into_iter()
                .filter_map(|uid| ws.users.get(uid))
                .map(|u| user_json(u, false))
                .collect();
            data(json!({"users": users, "pagination": pj}), VND)
        }
        ("GET", ["groups", id, "invites"]) => {
            if !ws.groups.contains_key(*id) {
                return err(404, "Resource not found");
            }
            data(
                json!({"emails": [], "pagination": {"current": app.signer.segment(0), "totalEntries": 0}}),
                VND,
            )
        }
        ("POST", ["groups", id, "users"]) | ("PUT", ["group" | "groups", id, "users"]) => {
            let emails: Vec<String> = req
                .json_body()
                .and_then(|b| b.get("emails").cloned())
                .and_then(|e| serde_json::from_value(e).ok())
                .unwrap_or_default();
            if emails.is_empty() && m == Method::POST {
                return invalid("emails", "\"emails\" must contain at least 1 item");
            }
            if !ws.groups.contains_key(*id) {
                return err(404, "Resource not found");
            }
            let names = |e: &str| name_from_okta(okta, e);
            if m == Method::PUT {
                let keep: std::collections::HashSet<String> =
                    emails.iter().map(|e| e.to_lowercase()).collect();
                let drop: Vec<String> = ws.groups[*id]
                    .members
                    .iter()
                    .filter_map(|uid| ws.users.get(uid))
                    .filter(|u| !keep.contains(&u.email.to_lowercase()))
                    .map(|u| u.email.clone())
                    .collect();
                ws.remove_members(counter, id, &drop, actor);
            }
            ws.add_members(counter, id, &emails, actor, &names);
            data(json!({"userGroup": group_json(&ws.groups[*id])}), VND)
        }
        ("DELETE", ["group" | "groups", id, "users"]) => {
            let emails = array_param(req, "emails");
            if emails.is_empty() {
                return invalid("emails", "\"emails\" is required");
            }
            if ws.remove_members(counter, id, &emails, actor) {
                data(json!({"status": "SUCCESS"}), VND)
            } else {
                err(404, "Resource not found")
            }
        }
        // No `GET /groups/{id}/permissions`: the API has only POST and PUT there (a group's
        // permissions come with `GET /groups` and `GET /groups/{id}`), so it is a 404.
        ("POST" | "PUT", ["groups", id, "permissions"]) => super::segment_iam::write_perms(
            ws,
            counter,
            Subject::Group,
            id,
            req,
            m == Method::PUT,
            actor,
        ),
        ("GET", ["roles"]) => {
            let p = pag!(1000);
            let (items, pj) = page(app, ROLE_NAMES.iter(), &p, 1000);
            let roles: Vec<Value> = items
                .into_iter()
                .map(|(n, d)| json!({"id": super::state::role_id(n), "name": n, "description": d}))
                .collect();
            data(json!({"roles": roles, "pagination": pj}), VND)
        }
        ("GET", ["sources"]) => {
            let p = pag!(1000);
            let (items, pj) = page(app, ws.sources.iter(), &p, 1000);
            data(
                json!({"sources": items.into_iter().map(|s| source_json(ws, s)).collect::<Vec<_>>(), "pagination": pj}),
                JSON,
            )
        }
        ("GET", ["sources", id]) => {
            match ws.sources.iter().find(|s| s.id == *id || s.slug == *id) {
                Some(s) => data(json!({"source": source_json(ws, s)}), JSON),
                None => err(404, "Resource not found"),
            }
        }
        ("GET", ["labels"]) => data(
            json!({"labels": ws.labels.iter().map(|(k, v, d)| {
                let mut l = json!({"key": k, "value": v});
                if let Some(d) = d { l["description"] = json!(d); }
                l
            }).collect::<Vec<_>>()}),
            JSON,
        ),
        ("GET", ["warehouses"]) => {
            let p = pag!(1000);
            let (items, pj) = page(app, ws.warehouses.iter(), &p, 1000);
            let list: Vec<Value> = items
                .into_iter()
                .map(|w| json!({"id": w.id, "workspaceId": ws.id, "enabled": true,
                    "metadata": {"id": "55d3d3aea3c", "slug": w.slug, "name": w.name, "description": "A data warehouse.", "logos": logos(), "options": []},
                    "settings": {"name": w.name}}))
                .collect();
            data(json!({"warehouses": list, "pagination": pj}), JSON)
        }
        ("GET", ["functions"]) => {
            let p = pag!(1000);
            let (items, pj) = page(app, ws.functions.iter(), &p, 1000);
            let list: Vec<Value> = items
                .into_iter()
                .map(|f| json!({"id": f.id, "workspaceId": ws.id, "displayName": f.name, "description": "",
                    "resourceType": req.q("resourceType").unwrap_or("SOURCE"), "settings": [], "buildpack": "boreal",
                    "createdAt": "2025-01-06T09:00:00.000Z", "catalogId": f.id}))
                .collect();
            data(json!({"functions": list, "pagination": pj}), JSON)
        }
        ("GET", ["spaces"]) => {
            let p = pag!(1000);
            let (items, pj) = page(app, ws.spaces.iter(), &p, 1000);
            let list: Vec<Value> = items.into_iter().map(|s| json!({"id": s.id, "slug": s.slug, "name": s.name, "labels": item_labels(s)})).collect();
            data(json!({"spaces": list, "pagination": pj}), JSON)
        }
        ("GET", ["invites"]) => {
            let p = pag!(1000);
            let (items, pj) = page(app, ws.invites.iter(), &p, 1000);
            data(json!({"invites": items, "pagination": pj}), VND)
        }
        ("GET", ["audit-events"]) => super::segment_iam::audit_events(app, ws, req),
        _ => err(404, "Resource not found"),
    }
}

pub fn name_from_okta(okta: &Okta, email: &str) -> String {
    okta.user_by_login(email)
        .map(|u| {
            format!("{} {}", u.first_name, u.last_name)
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}
