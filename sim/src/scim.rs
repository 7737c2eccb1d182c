//! Segment SCIM 2.0 under `/segment/{workspace}/scim/v2` (segment.md §8, §11.6): `/Users`
//! and `/Groups` with the workspace's separate `scim_token`.
//!
//! Contract: creating a user adds it to the workspace with Minimal Workspace Access
//! (`User Added via SSO`); `active:false` or DELETE removes it from the workspace and all
//! groups (`User Removed`); SCIM-created groups start with Minimal Workspace Access; PATCH
//! adds or removes members and answers 204. Same store and audit as the Public API, actor
//! `scim/sso-sync`. Request bodies are read with the `scim_v2` crate's types.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::filter;
use super::http::{empty, json as json_resp};
use super::segment::name_from_okta;
use super::state::{Actor, SegGroup, SegUser, Workspace};
use super::{App, Req};

const SCIM: &str = "application/scim+json";
const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

fn scim_err(status: u16, detail: &str, scim_type: Option<&str>) -> Response {
    let mut body = json!({"schemas": [ERROR_URN], "status": status.to_string(), "detail": detail});
    if let Some(t) = scim_type {
        body["scimType"] = json!(t);
    }
    json_resp(super::http::status(status), &body, SCIM)
}

fn user_json(origin: &str, ws: &str, u: &SegUser, active: bool) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": u.id, "userName": u.email,
        "displayName": u.name, "active": active, "emails": [{"value": u.email, "primary": true, "type": "work"}],
        "groups": [], "meta": {"resourceType": "User", "location": format!("{origin}/segment/{ws}/scim/v2/Users/{}", u.id)}})
}

fn group_json(origin: &str, ws_name: &str, ws: &Workspace, g: &SegGroup) -> Value {
    let members: Vec<Value> = g
        .members
        .iter()
        .filter_map(|id| ws.users.get(id))
        .map(|u| json!({"value": u.id, "display": u.email}))
        .collect();
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": g.id, "displayName": g.name,
        "members": members, "meta": {"resourceType": "Group", "location": format!("{origin}/segment/{ws_name}/scim/v2/Groups/{}", g.id)}})
}

fn list(resources: Vec<Value>) -> Response {
    json_resp(
        StatusCode::OK,
        &json!({"schemas": [LIST_URN], "totalResults": resources.len(), "startIndex": 1, "itemsPerPage": resources.len(), "Resources": resources}),
        SCIM,
    )
}

pub async fn handle(app: &App, ws_name: &str, req: Req) -> Response {
    if let Some(inj) = app.faults.take(
        "segment",
        Some(ws_name),
        req.method.as_str(),
        &format!("/scim/v2{}", req.path),
    ) {
        if let Some(ms) = inj.delay_ms {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        if let Some(status) = inj.status {
            return scim_err(status, "Injected fault", None);
        }
    }
    let mut guard = app.state();
    let st = &mut *guard;
    let okta = &st.okta;
    let counter = &mut st.audit_counter;
    let Some(ws) = st.workspaces.get_mut(ws_name) else {
        return scim_err(404, "Workspace not found", None);
    };
    let token = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::trim);
    if ws.scim_token.is_none() || token != ws.scim_token.as_deref() {
        return scim_err(401, "Invalid SSO Sync token", None);
    }
    let actor = Actor::scim();
    let origin = req.origin.clone();
    let parts: Vec<&str> = req
        .path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let body = req.json_body();
    match (req.method.clone(), parts.as_slice()) {
        (Method::GET, ["Users"]) => {
            let f = match req.q("filter").map(filter::parse).transpose() {
                Ok(f) => f,
                Err(m) => return scim_err(400, &m, Some("invalidFilter")),
            };
            let users: Vec<Value> = ws
                .users
                .values()
                .filter(|u| {
                    f.as_ref().is_none_or(|f| {
                        f.eval(&|a| match a {
                            "userName" => Some(u.email.clone()),
                            "displayName" => Some(u.name.clone()),
                            "id" => Some(u.id.clone()),
                            _ => None,
                        })
                    })
                })
                .map(|u| user_json(&origin, ws_name, u, true))
                .collect();
            list(users)
        }
        (Method::POST, ["Users"]) => {
            let parsed: Result<scim_v2::models::user::User, _> = serde_json::from_slice(&req.body);
            let Ok(user) = parsed else {
                return scim_err(
                    400,
                    "Request is unparsable, syntactically incorrect, or violates schema.",
                    Some("invalidSyntax"),
                );
            };
            if ws.user_by_email(&user.user_name).is_some() {
                return scim_err(
                    409,
                    "User already exists in this workspace",
                    Some("uniqueness"),
                );
            }
            let display = user
                .display_name
                .as_deref()
                .map(str::to_string)
                .unwrap_or_else(|| name_from_okta(okta, &user.user_name));
            let (id, _) = ws.ensure_user(counter, &user.user_name, &display, Some(&actor));
            match ws.users.get(&id) {
                Some(u) => {
                    let mut resp = json_resp(
                        StatusCode::CREATED,
                        &user_json(&origin, ws_name, u, true),
                        SCIM,
                    );
                    *resp.status_mut() = StatusCode::CREATED;
                    resp
                }
                None => scim_err(500, "user vanished", None),
            }
        }
        (Method::GET, ["Users", id]) => match ws.users.get(*id) {
            Some(u) => json_resp(StatusCode::OK, &user_json(&origin, ws_name, u, true), SCIM),
            None => scim_err(404, "User not found", None),
        },
        (Method::PUT | Method::PATCH, ["Users", id]) => {
            let Some(u) = ws.users.get(*id).cloned() else {
                return scim_err(404, "User not found", None);
            };
            if deactivates(body.as_ref()) {
                ws.remove_user(counter, id, &actor);
                return json_resp(
                    StatusCode::OK,
                    &user_json(&origin, ws_name, &u, false),
                    SCIM,
                );
            }
            json_resp(StatusCode::OK, &user_json(&origin, ws_name, &u, true), SCIM)
        }
        (Method::DELETE, ["Users", id]) => {
            if ws.remove_user(counter, id, &actor) {
                empty(StatusCode::NO_CONTENT)
            } else {
                scim_err(404, "User not found", None)
            }
        }
        (Method::GET, ["Groups"]) => {
            let f = match req.q("filter").map(filter::parse).transpose() {
                Ok(f) => f,
                Err(m) => return scim_err(400, &m, Some("invalidFilter")),
            };
            let groups: Vec<Value> = ws
                .groups
                .values()
                .filter(|g| {
                    f.as_ref().is_none_or(|f| {
                        f.eval(&|a| match a {
                            "displayName" => Some(g.name.clone()),
                            "id" => Some(g.id.clone()),
                            _ => None,
                        })
                    })
                })
                .map(|g| group_json(&origin, ws_name, ws, g))
                .collect();
            list(groups)
        }
        (Method::POST, ["Groups"]) => {
            let parsed: Result<scim_v2::models::group::Group, _> =
                serde_json::from_slice(&req.body);
            let Ok(group) = parsed else {
                return scim_err(
                    400,
                    "Request is unparsable, syntactically incorrect, or violates schema.",
                    Some("invalidSyntax"),
                );
            };
            if ws.group_id_by_name(&group.display_name).is_some() {
                return scim_err(409, "Group already exists", Some("uniqueness"));
            }
            let gid = ws.create_group(counter, &group.display_name, &actor);
            let emails: Vec<String> = group
                .members
                .as_slice()
                .iter()
                .filter_map(|m| m.value.as_ref())
                .filter_map(|id| ws.users.get(id).map(|u| u.email.clone()))
                .collect();
            if !emails.is_empty() {
                ws.add_members(counter, &gid, &emails, &actor, &|e| name_from_okta(okta, e));
            }
            match ws.groups.get(&gid) {
                Some(g) => json_resp(
                    StatusCode::CREATED,
                    &group_json(&origin, ws_name, ws, g),
                    SCIM,
                ),
                None => scim_err(500, "group vanished", None),
            }
        }
        (Method::GET, ["Groups", id]) => match ws.groups.get(*id) {
            Some(g) => json_resp(StatusCode::OK, &group_json(&origin, ws_name, ws, g), SCIM),
            None => scim_err(404, "Group not found", None),
        },
        (Method::PATCH, ["Groups", id]) => {
            if !ws.groups.contains_key(*id) {
                return scim_err(404, "Group not found", None);
            }
            let ops = body
                .as_ref()
                .and_then(|b| b.get("Operations"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for op in ops {
                let kind = op
                    .get("op")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_lowercase();
                let path = op.get("path").and_then(Value::as_str).unwrap_or("");
                let value = op.get("value");
                let ids_in = |v: Option<&Value>| -> Vec<String> {
                    v.and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|m| m.get("value").and_then(Value::as_str).map(str::to_string))
                        .collect()
                };
                let mut ids = ids_in(value);
                if let Some(inner) = path
                    .strip_prefix("members[")
                    .and_then(|p| p.strip_suffix(']'))
                {
                    if let Ok(f) = filter::parse(inner) {
                        if let Some(v) = f.eq_values("value") {
                            ids.extend(v);
                        }
                    }
                }
                let emails: Vec<String> = ids
                    .iter()
                    .filter_map(|i| ws.users.get(i).map(|u| u.email.clone()))
                    .collect();
                match (kind.as_str(), path) {
                    ("add", "members") => {
                        ws.add_members(counter, id, &emails, &actor, &|e| name_from_okta(okta, e));
                    }
                    ("remove", p) if p.starts_with("members") => {
                        ws.remove_members(counter, id, &emails, &actor);
                    }
                    ("replace", "displayName") | ("replace", "") => {
                        let name = value.and_then(|v| {
                            v.as_str().map(str::to_string).or_else(|| {
                                v.get("displayName")
                                    .and_then(Value::as_str)
                                    .map(str::to_string)
                            })
                        });
                        if let (Some(name), Some(g)) = (name, ws.groups.get_mut(*id)) {
                            let old = std::mem::replace(&mut g.name, name.clone());
                            ws.group_by_name.remove(&old);
                            ws.group_by_name.insert(name, id.to_string());
                        }
                    }
                    ("replace", "members") => {
                        let keep: std::collections::HashSet<&String> = ids.iter().collect();
                        let drop: Vec<String> = ws.groups[*id]
                            .members
                            .iter()
                            .filter(|m| !keep.contains(m))
                            .filter_map(|m| ws.users.get(m).map(|u| u.email.clone()))
                            .collect();
                        ws.remove_members(counter, id, &drop, &actor);
                        ws.add_members(counter, id, &emails, &actor, &|e| name_from_okta(okta, e));
                    }
                    _ => return scim_err(400, "Unsupported PATCH operation", Some("invalidPath")),
                }
            }
            empty(StatusCode::NO_CONTENT)
        }
        (Method::DELETE, ["Groups", id]) => {
            if ws.delete_group(counter, id, &actor) {
                empty(StatusCode::NO_CONTENT)
            } else {
                scim_err(404, "Group not found", None)
            }
        }
        _ => scim_err(404, "Endpoint not found", None),
    }
}

/// Whether a SCIM PUT/PATCH body sets `active` to false.
fn deactivates(body: Option<&Value>) -> bool {
    let Some(b) = body else { return false };
    let falsy = |v: &Value| {
        v == &json!(false) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("false"))
    };
    if b.get("active").is_some_and(falsy) {
        return true;
    }
    b.get("Operations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|op| {
            let path = op.get("path").and_then(Value::as_str).unwrap_or("");
            let v = op.get("value");
            (path == "active" && v.is_some_and(falsy))
                || (path.is_empty() && v.and_then(|v| v.get("active")).is_some_and(falsy))
        })
}
