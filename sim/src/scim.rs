//! Segment SCIM 2.0 under `/segment/{workspace}/scim/v2` (segment.md §8, §11.6): `/Users`
//! and `/Groups` with the workspace's separate `scim_token`.
//!
//! Contract: creating a user adds it to the workspace with Minimal Workspace Access
//! (`User Added via SSO`); `active:false` or DELETE removes it from the workspace and all
//! groups (`User Removed`); SCIM-created groups start with Minimal Workspace Access; PATCH
//! adds, replaces or removes members (RFC 7644 §3.5.2, all operations or none) and answers
//! 200 with the group. Same store and audit as the Public API, actor `scim/sso-sync`.
//! Request bodies are read with the `scim_v2` crate's types. Lists filter, then page by
//! `startIndex` and `count` (RFC 7644 §3.4.2.4); `/ServiceProviderConfig`,
//! `/ResourceTypes` and `/Schemas` describe all of it (`scim_schema.rs`).

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::filter;
use super::http::{empty, json as json_resp};
use super::scim_schema::{self, GROUP_URN, MAX_RESULTS, USER_URN};
use super::segment::name_from_okta;
use super::state::{Actor, Okta, SegGroup, SegUser, Workspace};
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

fn user_json(origin: &str, ws_name: &str, ws: &Workspace, u: &SegUser, active: bool) -> Value {
    let base = format!("{origin}/segment/{ws_name}/scim/v2");
    let groups: Vec<Value> = ws
        .groups
        .values()
        .filter(|g| g.members.contains(&u.id))
        .map(|g| json!({"value": g.id, "$ref": format!("{base}/Groups/{}", g.id), "display": g.name, "type": "direct"}))
        .collect();
    json!({"schemas": [USER_URN], "id": u.id, "userName": u.email,
        "displayName": u.name, "active": active, "emails": [{"value": u.email, "primary": true, "type": "work"}],
        "groups": groups, "meta": {"resourceType": "User", "location": format!("{base}/Users/{}", u.id)}})
}

fn group_json(origin: &str, ws_name: &str, ws: &Workspace, g: &SegGroup) -> Value {
    let members: Vec<Value> = g
        .members
        .iter()
        .filter_map(|id| ws.users.get(id))
        .map(|u| json!({"value": u.id, "$ref": format!("{origin}/segment/{ws_name}/scim/v2/Users/{}", u.id), "display": u.email, "type": "User"}))
        .collect();
    json!({"schemas": [GROUP_URN], "id": g.id, "displayName": g.name,
        "members": members, "meta": {"resourceType": "Group", "location": format!("{origin}/segment/{ws_name}/scim/v2/Groups/{}", g.id)}})
}

/// A list answer (RFC 7644 §3.4.2): `resources` are every match of the filter, in a
/// stable order; `startIndex` (1-based, below 1 means 1) and `count` (negative means 0,
/// absent or above [`MAX_RESULTS`] means `MAX_RESULTS`) pick the page (§3.4.2.4).
/// `totalResults` counts every match, `itemsPerPage` what this page carries.
fn list(req: &Req, resources: Vec<Value>) -> Response {
    let number = |key: &str| -> Result<Option<i64>, Response> {
        match req.q(key) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                scim_err(
                    400,
                    &format!("{key} must be an integer, got {v:?}"),
                    Some("invalidValue"),
                )
            }),
        }
    };
    let (start, count) = match (number("startIndex"), number("count")) {
        (Ok(s), Ok(c)) => (s, c),
        (Err(resp), _) | (_, Err(resp)) => return resp,
    };
    let start = start.unwrap_or(1).max(1);
    let count = count.map_or(MAX_RESULTS, |c| {
        usize::try_from(c.max(0)).map_or(MAX_RESULTS, |c| c.min(MAX_RESULTS))
    });
    let total = resources.len();
    let skip = usize::try_from(start - 1).unwrap_or(usize::MAX);
    let page: Vec<Value> = resources
        .into_iter()
        .skip(skip)
        .take(count)
        .map(|r| project(req, r))
        .collect();
    json_resp(
        StatusCode::OK,
        &json!({"schemas": [LIST_URN], "totalResults": total, "startIndex": start, "itemsPerPage": page.len(), "Resources": page}),
        SCIM,
    )
}

/// RFC 7644 §3.4.2.5: `attributes` keeps only the named attributes (with `schemas` and
/// `id`, which is returned always); `excludedAttributes` drops the named ones (never
/// `id`). Names are case-insensitive, may carry their schema URN, and `a.b` names
/// sub-attribute `b` of complex `a`.
fn project(req: &Req, mut resource: Value) -> Value {
    let names = |key: &str| -> Option<Vec<String>> {
        req.q(key).map(|list| {
            list.split(',')
                .map(|n| {
                    let n = n.trim();
                    let n = if n.to_lowercase().starts_with("urn:") {
                        n.rsplit(':').next().unwrap_or(n)
                    } else {
                        n
                    };
                    n.to_lowercase()
                })
                .filter(|n| !n.is_empty())
                .collect()
        })
    };
    let subs_of = |names: &[String], attr: &str| -> Vec<String> {
        let prefix = format!("{attr}.");
        names
            .iter()
            .filter_map(|n| n.strip_prefix(&prefix).map(str::to_string))
            .collect()
    };
    let (keep, drop) = (names("attributes"), names("excludedAttributes"));
    if let Some(obj) = resource.as_object_mut() {
        obj.retain(|k, v| {
            let k = k.to_lowercase();
            if k == "schemas" || k == "id" {
                return true;
            }
            if let Some(keep) = &keep {
                if !keep.contains(&k) {
                    let subs = subs_of(keep, &k);
                    if subs.is_empty() {
                        return false;
                    }
                    retain_subs(v, &|sub| subs.contains(&sub.to_lowercase()));
                }
            }
            if let Some(drop) = &drop {
                if drop.contains(&k) {
                    return false;
                }
                let subs = subs_of(drop, &k);
                retain_subs(v, &|sub| !subs.contains(&sub.to_lowercase()));
            }
            true
        });
    }
    resource
}

/// Keeps the sub-attributes of a complex value (each element of a multi-valued one) that
/// `keep` accepts.
fn retain_subs(value: &mut Value, keep: &dyn Fn(&str) -> bool) {
    let items: Vec<&mut Value> = match value {
        Value::Array(items) => items.iter_mut().collect(),
        v => vec![v],
    };
    for item in items {
        if let Value::Object(o) = item {
            o.retain(|k, _| keep(k));
        }
    }
}

/// RFC 7644 §3.4.3: `POST /Users/.search` (or `/Groups/.search`) is the list `GET` with its
/// parameters in the body (`filter`, `startIndex`, `count`, and `attributes` /
/// `excludedAttributes` as arrays). Any other request passes through unchanged.
fn search_as_get(mut req: Req) -> Req {
    if req.method != Method::POST {
        return req;
    }
    let Some(list) = req.path.trim_end_matches('/').strip_suffix("/.search") else {
        return req;
    };
    let list = list.to_string();
    let body = req.json_body().unwrap_or(Value::Null);
    let mut query = Vec::new();
    for key in [
        "filter",
        "startIndex",
        "count",
        "attributes",
        "excludedAttributes",
    ] {
        let value = match body.get(key) {
            Some(Value::String(v)) => v.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            _ => continue,
        };
        query.push((key.to_string(), value));
    }
    req.method = Method::GET;
    req.path = list;
    req.query = query;
    req
}

fn parse_filter(req: &Req) -> Result<Option<filter::Expr>, Response> {
    req.q("filter")
        .map(filter::parse)
        .transpose()
        .map_err(|m| scim_err(400, &m, Some("invalidFilter")))
}

/// The workspace's users that match the filter, as SCIM Users, in id order.
fn users_matching(
    origin: &str,
    ws_name: &str,
    ws: &Workspace,
    f: Option<&filter::Expr>,
) -> Vec<Value> {
    ws.users
        .values()
        .filter(|u| {
            f.is_none_or(|f| {
                f.eval(&|a| match a {
                    "userName" => Some(u.email.clone()),
                    "displayName" => Some(u.name.clone()),
                    "id" => Some(u.id.clone()),
                    _ => None,
                })
            })
        })
        .map(|u| user_json(origin, ws_name, ws, u, true))
        .collect()
}

/// The workspace's groups that match the filter, as SCIM Groups, in id order.
fn groups_matching(
    origin: &str,
    ws_name: &str,
    ws: &Workspace,
    f: Option<&filter::Expr>,
) -> Vec<Value> {
    ws.groups
        .values()
        .filter(|g| {
            f.is_none_or(|f| {
                f.eval(&|a| match a {
                    "displayName" => Some(g.name.clone()),
                    "id" => Some(g.id.clone()),
                    _ => None,
                })
            })
        })
        .map(|g| group_json(origin, ws_name, ws, g))
        .collect()
}

/// A list of fixed resources (`/Schemas`, `/ResourceTypes`): RFC 7644 §4 allows these
/// to ignore filtering and paging, so the page is everything.
fn list_all(resources: Vec<Value>) -> Response {
    json_resp(
        StatusCode::OK,
        &json!({"schemas": [LIST_URN], "totalResults": resources.len(), "startIndex": 1, "itemsPerPage": resources.len(), "Resources": resources}),
        SCIM,
    )
}

/// One member-related change of a group PATCH, checked before anything is applied.
enum GroupOp {
    Add(Vec<String>),
    Replace(Vec<String>),
    Remove(Vec<String>),
    RemoveWhere(filter::Expr),
    RemoveAll,
    Rename(String),
}

/// The `value` of each entry of a `members` array.
fn member_ids(v: Option<&Value>) -> Result<Vec<String>, String> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![v],
        _ => return Err("members must be an array of {\"value\": id}".to_string()),
    };
    items
        .into_iter()
        .map(|m| {
            m.get("value")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| "each member needs a \"value\" (the user id)".to_string())
        })
        .collect()
}

/// RFC 7644 §3.5.2: one `Operations` entry of a group PATCH → the changes it asks for.
/// Attribute names are case-insensitive; `op` too (Entra sends `Add`, `Remove`).
fn group_ops(op: &Value) -> Result<Vec<GroupOp>, (String, &'static str)> {
    let kind = op
        .get("op")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    let path = op.get("path").and_then(Value::as_str).unwrap_or("").trim();
    let value = op.get("value");
    let lower = path.to_lowercase();
    let invalid_value = |m: String| (m, "invalidValue");
    let name_of = |v: Option<&Value>| -> Result<String, (String, &'static str)> {
        v.and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                (
                    "displayName must be a non-empty string".to_string(),
                    "invalidValue",
                )
            })
    };
    match (kind.as_str(), lower.as_str()) {
        ("add" | "replace", "") => {
            let Some(obj) = value.and_then(Value::as_object) else {
                return Err((
                    "without a path, value must be an object of attributes".to_string(),
                    "invalidValue",
                ));
            };
            let mut out = Vec::new();
            for (k, v) in obj {
                match k.to_lowercase().as_str() {
                    "members" => {
                        let ids = member_ids(Some(v)).map_err(invalid_value)?;
                        out.push(if kind == "add" {
                            GroupOp::Add(ids)
                        } else {
                            GroupOp::Replace(ids)
                        });
                    }
                    "displayname" => out.push(GroupOp::Rename(name_of(Some(v))?)),
                    // Read-only or unknown attributes: ignored, as RFC 7644 §3.5.2 lets a
                    // server ignore read-only ones.
                    _ => {}
                }
            }
            Ok(out)
        }
        ("add", "members") => Ok(vec![GroupOp::Add(
            member_ids(value).map_err(invalid_value)?,
        )]),
        ("replace", "members") => Ok(vec![GroupOp::Replace(
            member_ids(value).map_err(invalid_value)?,
        )]),
        ("add" | "replace", "displayname") => Ok(vec![GroupOp::Rename(name_of(value)?)]),
        // Entra names the members to remove in `value` with path `members`; with no value,
        // RFC 7644 §3.5.2.2 removes every member.
        ("remove", "members") => match value {
            None | Some(Value::Null) => Ok(vec![GroupOp::RemoveAll]),
            v => Ok(vec![GroupOp::Remove(member_ids(v).map_err(invalid_value)?)]),
        },
        ("remove", _) if lower.starts_with("members[") && path.ends_with(']') => {
            let Some(inner) = path.get("members[".len()..path.len() - 1) else {
                return Err((format!("unsupported path {path:?}"), "invalidPath"));
            };
            let f = filter::parse(inner)
                .map_err(|m| (format!("path filter {inner:?}: {m}"), "invalidFilter"))?;
            Ok(vec![GroupOp::RemoveWhere(f)])
        }
        ("remove", "") => Err(("remove needs a path".to_string(), "noTarget")),
        ("add" | "remove" | "replace", _) => Err((
            format!("unsupported path {path:?} (members, members[filter], displayName)"),
            "invalidPath",
        )),
        _ => Err((
            format!("op must be add, remove or replace, got {kind:?}"),
            "invalidSyntax",
        )),
    }
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
    let searched_root = req.method == Method::POST && req.path.trim_end_matches('/') == "/.search";
    let req = search_as_get(req);
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
    let base = format!("{origin}/segment/{ws_name}/scim/v2");
    match (req.method.clone(), parts.as_slice()) {
        (Method::GET, ["ServiceProviderConfig"]) => json_resp(
            StatusCode::OK,
            &scim_schema::service_provider_config(&base),
            SCIM,
        ),
        (Method::GET, ["Schemas"]) => list_all(scim_schema::schemas(&base)),
        (Method::GET, ["Schemas", id]) => {
            match scim_schema::schemas(&base)
                .into_iter()
                .find(|s| s["id"] == *id)
            {
                Some(s) => json_resp(StatusCode::OK, &s, SCIM),
                None => scim_err(404, "Schema not found", None),
            }
        }
        (Method::GET, ["ResourceTypes"]) => list_all(scim_schema::resource_types(&base)),
        (Method::GET, ["ResourceTypes", id]) => {
            match scim_schema::resource_types(&base)
                .into_iter()
                .find(|r| r["id"] == *id)
            {
                Some(r) => json_resp(StatusCode::OK, &r, SCIM),
                None => scim_err(404, "Resource type not found", None),
            }
        }
        // RFC 7644 §4: the discovery endpoints are read-only.
        (_, ["ServiceProviderConfig" | "Schemas" | "ResourceTypes", ..]) => {
            scim_err(405, "Only GET is allowed on the discovery endpoints.", None)
        }
        (Method::GET, ["Users"]) => match parse_filter(&req) {
            Ok(f) => list(&req, users_matching(&origin, ws_name, ws, f.as_ref())),
            Err(resp) => resp,
        },
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
                        &user_json(&origin, ws_name, ws, u, true),
                        SCIM,
                    );
                    *resp.status_mut() = StatusCode::CREATED;
                    resp
                }
                None => scim_err(500, "user vanished", None),
            }
        }
        (Method::GET, ["Users", id]) => match ws.users.get(*id) {
            Some(u) => json_resp(
                StatusCode::OK,
                &project(&req, user_json(&origin, ws_name, ws, u, true)),
                SCIM,
            ),
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
                    &user_json(&origin, ws_name, ws, &u, false),
                    SCIM,
                );
            }
            json_resp(
                StatusCode::OK,
                &user_json(&origin, ws_name, ws, &u, true),
                SCIM,
            )
        }
        (Method::DELETE, ["Users", id]) => {
            if ws.remove_user(counter, id, &actor) {
                empty(StatusCode::NO_CONTENT)
            } else {
                scim_err(404, "User not found", None)
            }
        }
        (Method::GET, ["Groups"]) => match parse_filter(&req) {
            Ok(f) => list(&req, groups_matching(&origin, ws_name, ws, f.as_ref())),
            Err(resp) => resp,
        },
        // The server-wide search (RFC 7644 §3.4.3): users, then groups, filtered and paged
        // together; an attribute one type lacks compares false.
        (Method::GET, []) if searched_root => match parse_filter(&req) {
            Ok(f) => {
                let mut all = users_matching(&origin, ws_name, ws, f.as_ref());
                all.extend(groups_matching(&origin, ws_name, ws, f.as_ref()));
                list(&req, all)
            }
            Err(resp) => resp,
        },
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
            Some(g) => json_resp(
                StatusCode::OK,
                &project(&req, group_json(&origin, ws_name, ws, g)),
                SCIM,
            ),
            None => scim_err(404, "Group not found", None),
        },
        (Method::PATCH, ["Groups", id]) => {
            if !ws.groups.contains_key(*id) {
                return scim_err(404, "Group not found", None);
            }
            let Some(ops) = body
                .as_ref()
                .and_then(|b| b.get("Operations"))
                .and_then(Value::as_array)
            else {
                return scim_err(
                    400,
                    "A PATCH body needs an \"Operations\" array (RFC 7644 §3.5.2).",
                    Some("invalidSyntax"),
                );
            };
            // Every operation is checked before any is applied: all or nothing.
            let mut plan = Vec::new();
            for op in ops {
                match group_ops(op) {
                    Ok(changes) => plan.extend(changes),
                    Err((detail, scim_type)) => return scim_err(400, &detail, Some(scim_type)),
                }
            }
            if let Err(resp) = apply_group(ws, counter, id, plan, &actor, okta) {
                return resp;
            }
            match ws.groups.get(*id) {
                Some(g) => json_resp(StatusCode::OK, &group_json(&origin, ws_name, ws, g), SCIM),
                None => scim_err(404, "Group not found", None),
            }
        }
        (Method::PUT, ["Groups", id]) => {
            if !ws.groups.contains_key(*id) {
                return scim_err(404, "Group not found", None);
            }
            // RFC 7644 §3.5.1: the body replaces the group's displayName and members.
            let Some(obj) = body.as_ref().and_then(Value::as_object) else {
                return scim_err(
                    400,
                    "Request is unparsable, syntactically incorrect, or violates schema.",
                    Some("invalidSyntax"),
                );
            };
            let name = obj
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("displayName"))
                .and_then(|(_, v)| v.as_str())
                .filter(|n| !n.trim().is_empty());
            let Some(name) = name else {
                return scim_err(400, "displayName is required", Some("invalidValue"));
            };
            let members = obj
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("members"))
                .map(|(_, v)| v);
            let ids = match member_ids(members) {
                Ok(ids) => ids,
                Err(m) => return scim_err(400, &m, Some("invalidValue")),
            };
            let plan = vec![GroupOp::Rename(name.to_string()), GroupOp::Replace(ids)];
            if let Err(resp) = apply_group(ws, counter, id, plan, &actor, okta) {
                return resp;
            }
            match ws.groups.get(*id) {
                Some(g) => json_resp(StatusCode::OK, &group_json(&origin, ws_name, ws, g), SCIM),
                None => scim_err(404, "Group not found", None),
            }
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

/// Applies a checked group change list: a rename onto another group's name is refused
/// (409, nothing applied), everything else cannot fail.
fn apply_group(
    ws: &mut Workspace,
    counter: &mut u64,
    id: &str,
    plan: Vec<GroupOp>,
    actor: &Actor,
    okta: &Okta,
) -> Result<(), Response> {
    // A new name must not be another group's (displayName is unique, 409 as on POST).
    for change in &plan {
        if let GroupOp::Rename(name) = change {
            if ws.group_id_by_name(name).is_some_and(|other| other != id) {
                return Err(scim_err(409, "Group already exists", Some("uniqueness")));
            }
        }
    }
    for change in plan {
        match change {
            GroupOp::Add(ids) => {
                let emails = emails_of(ws, &ids);
                ws.add_members(counter, id, &emails, actor, &|e| name_from_okta(okta, e));
            }
            GroupOp::Remove(ids) => {
                let emails = emails_of(ws, &ids);
                ws.remove_members(counter, id, &emails, actor);
            }
            GroupOp::RemoveWhere(f) => {
                let matching: Vec<String> = ws.groups[id]
                    .members
                    .iter()
                    .filter_map(|m| ws.users.get(m))
                    .filter(|u| {
                        f.eval(&|a| match a.to_lowercase().as_str() {
                            "value" => Some(u.id.clone()),
                            "display" => Some(u.email.clone()),
                            _ => None,
                        })
                    })
                    .map(|u| u.email.clone())
                    .collect();
                ws.remove_members(counter, id, &matching, actor);
            }
            GroupOp::RemoveAll => {
                let all = emails_of(ws, &ws.groups[id].members);
                ws.remove_members(counter, id, &all, actor);
            }
            GroupOp::Replace(ids) => {
                let keep: std::collections::HashSet<&String> = ids.iter().collect();
                let drop = emails_of(
                    ws,
                    ws.groups[id].members.iter().filter(|m| !keep.contains(m)),
                );
                let emails = emails_of(ws, &ids);
                ws.remove_members(counter, id, &drop, actor);
                ws.add_members(counter, id, &emails, actor, &|e| name_from_okta(okta, e));
            }
            GroupOp::Rename(name) => {
                if let Some(g) = ws.groups.get_mut(id) {
                    let old = std::mem::replace(&mut g.name, name.clone());
                    ws.group_by_name.remove(&old);
                    ws.group_by_name.insert(name, id.to_string());
                }
            }
        }
    }
    Ok(())
}

/// The emails of these user ids (ids not in the workspace are left out).
fn emails_of<'a>(ws: &Workspace, ids: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    ids.into_iter()
        .filter_map(|i| ws.users.get(i).map(|u| u.email.clone()))
        .collect()
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
