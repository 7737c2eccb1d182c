//! The control API under `/_sim` (sim.md "Control API"): IdP mutations that write System
//! Log events and feed the push engine, push-engine modes, fault injection and a dump of
//! the whole state, Okta Event Hook registration (`hooks.rs`), the fake alert sinks'
//! records and failure modes (`sinks.rs`). JSON in and out, no auth
//! (the sim binds loopback by default).
//!
//! Contract: each Okta mutation bumps `lastUpdated` / `lastMembershipUpdated`, appends its
//! System Log event with `published` = now, and enqueues the push changes it causes.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use chrono::Utc;
use serde_json::{json, Value};

use super::cursor::{base62_id, iso_time, okta_time, random_id};
use super::hooks;
use super::http::empty;
use super::http::json as json_resp;
use super::push::{self, Mode};
use super::ratelimit::Fault;
use super::sinks;
use super::state::{OktaUser, State, OKTA_STATUSES};
use super::{App, Req};

const JSON: &str = "application/json";

fn bad(status: StatusCode, msg: &str) -> Response {
    json_resp(status, &json!({"error": msg}), JSON)
}

fn ok(v: Value) -> Response {
    json_resp(StatusCode::OK, &v, JSON)
}

fn legacy(event: &str) -> &'static str {
    match event {
        "group.user_membership.add" => "core.user_group_member.user_add",
        "group.user_membership.remove" => "core.user_group_member.user_remove",
        "user.lifecycle.create" => "core.user.config.user_creation.success",
        "user.lifecycle.suspend" => "core.user.config.user_status.suspended",
        "user.lifecycle.unsuspend" => "core.user.config.user_status.unsuspended",
        "user.lifecycle.deactivate" => "core.user.config.user_deactivated",
        "user.lifecycle.reactivate" => "core.user.config.user_reactivated",
        "user.lifecycle.activate" => "core.user.config.user_activated",
        "user.account.lock" => "core.user.config.user_status.locked",
        _ => "core.user.config.profile_update.success",
    }
}

fn display(event: &str) -> &'static str {
    match event {
        "group.user_membership.add" => "Add user to group membership",
        "group.user_membership.remove" => "Remove user from group membership",
        "user.lifecycle.create" => "Create Okta user",
        "user.lifecycle.suspend" => "Suspend Okta user",
        "user.lifecycle.unsuspend" => "Unsuspend Okta user",
        "user.lifecycle.deactivate" => "Deactivate Okta user",
        "user.lifecycle.reactivate" => "Reactivate Okta user",
        "user.lifecycle.activate" => "Activate Okta user",
        "user.account.lock" => "Max sign in attempts exceeded",
        _ => "Update user profile for Okta",
    }
}

fn user_target(u: &OktaUser) -> Value {
    json!({"id": u.id, "type": "User", "alternateId": u.login,
           "displayName": format!("{} {}", u.first_name, u.last_name).trim(), "detailEntry": null})
}

/// A System Log event in Okta's LogEvent shape, published now.
pub fn log_event(event_type: &str, targets: Vec<Value>) -> Value {
    json!({
        "uuid": State::new_uuid(), "published": okta_time(Utc::now()), "eventType": event_type, "version": "0",
        "legacyEventType": legacy(event_type), "displayMessage": display(event_type), "severity": "INFO",
        "actor": {"id": "00u1simadmin0000000", "type": "User", "alternateId": "admin@sim.test", "displayName": "Sim Admin", "detailEntry": null},
        "client": {"userAgent": {"rawUserAgent": "scimwatch-sim", "os": "Unknown", "browser": "UNKNOWN"}, "zone": "null",
                   "device": "Computer", "id": null, "ipAddress": "127.0.0.1", "geographicalContext": null},
        "device": null,
        "authenticationContext": {"authenticationProvider": null, "credentialProvider": null, "credentialType": null,
                                  "issuer": null, "interface": null, "authenticationStep": 0, "externalSessionId": random_id(25)},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": targets,
        "transaction": {"type": "WEB", "id": random_id(27), "detail": {}},
        "debugContext": {"debugData": {"requestUri": "/_sim"}},
        "securityContext": {"asNumber": null, "asOrg": null, "isp": null, "domain": null, "isProxy": null},
        "request": {"ipChain": []}
    })
}

fn status_event(old: &str, new: &str) -> &'static str {
    match (old, new) {
        (_, "SUSPENDED") => "user.lifecycle.suspend",
        (_, "DEPROVISIONED") => "user.lifecycle.deactivate",
        ("SUSPENDED", "ACTIVE") => "user.lifecycle.unsuspend",
        ("DEPROVISIONED", "ACTIVE") => "user.lifecycle.reactivate",
        (_, "ACTIVE") | (_, "PROVISIONED") => "user.lifecycle.activate",
        (_, "LOCKED_OUT") => "user.account.lock",
        _ => "user.account.update_profile",
    }
}

pub async fn handle(app: &App, req: Req) -> Response {
    let parts: Vec<String> = req
        .path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let p: Vec<&str> = parts.iter().map(String::as_str).collect();
    let body = req.json_body().unwrap_or(Value::Null);
    // `"silent": true` on an Okta control call: the change leaves no System Log entry
    // (and so no Event Hook), as if the event were lost.
    let once = body.get("silent").and_then(Value::as_bool) == Some(true)
        && p.first() == Some(&"okta")
        && !app.state().silent;
    if once {
        app.state().set_silent(true);
    }
    let out = dispatch(app, &req, &p, &body).await;
    if once {
        app.state().set_silent(false);
    }
    out
}

async fn dispatch(app: &App, req: &Req, p: &[&str], body: &Value) -> Response {
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    match (req.method.clone(), p) {
        (Method::POST, ["silence"]) => {
            let Some(on) = body.get("on").and_then(Value::as_bool) else {
                return bad(StatusCode::BAD_REQUEST, "on must be true or false");
            };
            app.state().set_silent(on);
            ok(json!({"silent": on}))
        }
        (Method::POST, ["okta", "users"]) => {
            let Some(login) = s("login") else {
                return bad(StatusCode::BAD_REQUEST, "login is required");
            };
            let status = s("status").unwrap_or_else(|| "ACTIVE".to_string());
            if !OKTA_STATUSES.contains(&status.as_str()) {
                return bad(StatusCode::BAD_REQUEST, "unknown status");
            }
            let mut st = app.state();
            if st.okta.user_by_login(&login).is_some() {
                return bad(StatusCode::CONFLICT, "a user with this login exists");
            }
            let now = Utc::now();
            let user = OktaUser {
                id: format!(
                    "00u{}",
                    base62_id(&format!("okta-user:{}", login.to_lowercase()), 17)
                ),
                login: login.clone(),
                email: s("email").unwrap_or_else(|| login.clone()),
                first_name: super::state::or_from_login(&s("first_name"), &login, 0),
                last_name: super::state::or_from_login(&s("last_name"), &login, 1),
                status,
                created: now,
                status_changed: now,
                last_updated: now,
            };
            let ev = log_event("user.lifecycle.create", vec![user_target(&user)]);
            let out = json!({"id": user.id, "login": user.login, "status": user.status});
            st.okta.insert_user(user);
            st.log(ev);
            json_resp(StatusCode::CREATED, &out, JSON)
        }
        (Method::POST, ["okta", "users", login, "status"]) => {
            let Some(new) = s("status").filter(|x| OKTA_STATUSES.contains(&x.as_str())) else {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "status must be an Okta user status",
                );
            };
            let mut st = app.state();
            let Some(id) = st.okta.user_by_login(login).map(|u| u.id.clone()) else {
                return bad(StatusCode::NOT_FOUND, "unknown user");
            };
            let Some(u) = st.okta.users.get_mut(&id) else {
                return bad(StatusCode::NOT_FOUND, "unknown user");
            };
            let old = std::mem::replace(&mut u.status, new.clone());
            let now = Utc::now();
            u.status_changed = now;
            u.last_updated = now;
            let user = u.clone();
            st.log(log_event(
                status_event(&old, &new),
                vec![user_target(&user)],
            ));
            let changes = push::status_changes(&st.okta, &user, &old);
            drop(st);
            app.push.enqueue(changes);
            ok(json!({"id": user.id, "login": user.login, "status": user.status, "previous": old}))
        }
        (Method::POST, ["okta", "groups", name, "members"]) => {
            let Some(login) = s("login") else {
                return bad(StatusCode::BAD_REQUEST, "login is required");
            };
            membership(app, name, &login, true)
        }
        (Method::DELETE, ["okta", "groups", name, "members", login]) => {
            membership(app, name, login, false)
        }
        (Method::POST, ["push"]) => {
            let Some(mode) = s("mode").as_deref().and_then(Mode::parse) else {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "mode must be normal, paused or failing",
                );
            };
            let delay = match s("delay").map(|d| humantime::parse_duration(&d)) {
                None => None,
                Some(Ok(d)) => Some(d),
                Some(Err(_)) => {
                    return bad(
                        StatusCode::BAD_REQUEST,
                        "delay must be a duration like \"5s\"",
                    )
                }
            };
            let flush = app.push.set_mode(mode, delay);
            if !flush.is_empty() {
                let mut st = app.state();
                for c in &flush {
                    push::apply(&mut st, c);
                }
            }
            ok(app.push.snapshot())
        }
        (Method::POST, ["push", "cycle"]) => {
            let pushed = push::run_cycle(app);
            ok(json!({"pushed": pushed, "push": app.push.snapshot()}))
        }
        (Method::POST, ["azure", ..]) | (Method::DELETE, ["azure", ..]) => {
            azure(app, &req.method, &p[1..], body)
        }
        (Method::POST, ["okta", "event-hooks"]) => hooks::register(app, body).await,
        (Method::GET, ["okta", "event-hooks"]) => ok(app.hooks.snapshot()),
        (Method::GET, ["okta", "event-hooks", id]) => hooks::get(app, id),
        (Method::GET, ["okta", "event-hooks", id, "deliveries"]) => hooks::deliveries(app, id),
        (Method::DELETE, ["okta", "event-hooks", id]) => hooks::remove(app, id),
        (Method::GET, ["sinks"]) => ok(app.sinks.snapshot()),
        (Method::POST, ["sinks"]) => sinks::control_set(app, body),
        (Method::DELETE, ["sinks"]) => {
            app.sinks.clear();
            empty(StatusCode::NO_CONTENT)
        }
        (Method::GET, ["state"]) => ok(dump(app)),
        (Method::POST, ["faults"]) => {
            let service = s("service").unwrap_or_else(|| "all".to_string());
            if !["okta", "segment", "graph", "all"].contains(&service.as_str()) {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "service must be okta, segment, graph or all",
                );
            }
            let path = match s("path").map(|p| regex::Regex::new(&p)) {
                None => None,
                Some(Ok(r)) => Some(r),
                Some(Err(_)) => return bad(StatusCode::BAD_REQUEST, "path must be a regex"),
            };
            let num = |k: &str| body.get(k).and_then(Value::as_u64);
            let status = num("status").map(|n| n as u16);
            if status.is_none() && num("delay_ms").is_none() {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "a fault needs status and/or delay_ms",
                );
            }
            let id = app.faults.add(Fault {
                id: 0,
                service,
                workspace: s("workspace"),
                path,
                method: s("method"),
                status,
                count: num("count").map(|n| n as u32),
                delay_ms: num("delay_ms"),
            });
            ok(json!({"id": id.to_string()}))
        }
        (Method::DELETE, ["faults"]) => {
            app.faults.remove(None);
            ok(json!({"status": "cleared"}))
        }
        (Method::DELETE, ["faults", id]) => match id.parse::<u64>() {
            Ok(n) if app.faults.remove(Some(n)) => ok(json!({"status": "cleared"})),
            _ => bad(StatusCode::NOT_FOUND, "unknown fault"),
        },
        _ => bad(StatusCode::NOT_FOUND, "unknown control call"),
    }
}

fn membership(app: &App, group: &str, login: &str, add: bool) -> Response {
    let mut st = app.state();
    let Some(gid) = st.okta.group_by_name.get(group).cloned() else {
        return bad(StatusCode::NOT_FOUND, "unknown group");
    };
    let Some(user) = st.okta.user_by_login(login).cloned() else {
        return bad(StatusCode::NOT_FOUND, "unknown user");
    };
    let Some(g) = st.okta.groups.get_mut(&gid) else {
        return bad(StatusCode::NOT_FOUND, "unknown group");
    };
    let changed = if add {
        g.members.insert(user.id.clone())
    } else {
        g.members.remove(&user.id)
    };
    if !changed {
        return ok(json!({"changed": false}));
    }
    let now = Utc::now();
    g.last_membership_updated = now;
    let target = json!({"id": g.id, "type": "UserGroup", "alternateId": "unknown", "displayName": g.name, "detailEntry": null});
    let groups = st.okta.user_groups.entry(user.id.clone()).or_default();
    if add {
        groups.insert(gid.clone());
    } else {
        groups.remove(&gid);
    }
    let kind = if add {
        "group.user_membership.add"
    } else {
        "group.user_membership.remove"
    };
    st.log(log_event(kind, vec![user_target(&user), target]));
    let changes = push::member_changes(&st.okta, &gid, &user, add);
    drop(st);
    app.push.enqueue(changes);
    ok(json!({"changed": true}))
}

/// `/_sim/azure/...`: Entra directory changes. Each writes its directory audit record and
/// queues the provisioning changes it causes for the next cycle.
fn azure(app: &App, method: &Method, p: &[&str], body: &Value) -> Response {
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let mut st = app.state();
    let Some(dir) = st.azure.as_mut() else {
        return bad(StatusCode::NOT_FOUND, "the seed has no [azure] tenant");
    };
    let fail = |why: &str| {
        let code = if why.contains("unknown") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::CONFLICT
        };
        bad(code, why)
    };
    let queued = |dir: &mut super::graph_state::Directory, changes: Vec<push::Change>| {
        let n = changes.len();
        dir.cycle_queue.extend(changes);
        n
    };
    match (method.clone(), p) {
        (Method::POST, ["users"]) => {
            let Some(upn) = s("upn") else {
                return bad(StatusCode::BAD_REQUEST, "upn is required");
            };
            let enabled = body
                .get("account_enabled")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            match dir.add_user(&upn, enabled, s("mail")) {
                Ok(v) => json_resp(StatusCode::CREATED, &v, JSON),
                Err(why) => fail(why),
            }
        }
        (Method::DELETE, ["users", upn]) => match dir.delete_user(upn) {
            Ok(changes) => ok(json!({"deleted": true, "queued": queued(dir, changes)})),
            Err(why) => fail(why),
        },
        (Method::POST, ["users", upn, "enabled"]) => {
            let Some(enabled) = body.get("enabled").and_then(Value::as_bool) else {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "enabled (true or false) is required",
                );
            };
            match dir.set_enabled(upn, enabled) {
                Ok((changed, changes)) => {
                    ok(json!({"changed": changed, "queued": queued(dir, changes)}))
                }
                Err(why) => fail(why),
            }
        }
        (Method::POST, ["groups", name, "members"]) => {
            let Some(upn) = s("upn") else {
                return bad(StatusCode::BAD_REQUEST, "upn is required");
            };
            match dir.membership(name, &upn, true) {
                Ok((changed, changes)) => {
                    ok(json!({"changed": changed, "queued": queued(dir, changes)}))
                }
                Err(why) => fail(why),
            }
        }
        (Method::DELETE, ["groups", name, "members", upn]) => {
            match dir.membership(name, upn, false) {
                Ok((changed, changes)) => {
                    ok(json!({"changed": changed, "queued": queued(dir, changes)}))
                }
                Err(why) => fail(why),
            }
        }
        (Method::POST, ["tokens", "revoke"]) => ok(json!({"revoked": dir.revoke_tokens()})),
        (Method::POST, ["provisioning"]) => {
            let Some(on) = body.get("quarantine").and_then(Value::as_bool) else {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "quarantine (true or false) is required",
                );
            };
            let reason =
                s("reason").unwrap_or_else(|| "EncounteredQuarantineException".to_string());
            let only = s("workspace");
            let mut changed = Vec::new();
            for (ws, a) in dir.sync.apps.iter_mut() {
                if only.as_deref().is_some_and(|o| o != ws) {
                    continue;
                }
                a.quarantine = on.then(|| (reason.clone(), Utc::now()));
                changed.push(ws.clone());
            }
            if changed.is_empty() {
                return bad(
                    StatusCode::NOT_FOUND,
                    "unknown workspace (no Entra app provisions it)",
                );
            }
            ok(json!({"workspaces": changed, "quarantine": on}))
        }
        (Method::POST, ["delta", "reset"]) => {
            dir.sync.delta_epoch += 1;
            ok(json!({"epoch": dir.sync.delta_epoch}))
        }
        (Method::POST, ["subscriptions", id, "lifecycle"]) => {
            let Some(event) = s("event") else {
                return bad(StatusCode::BAD_REQUEST, "event is required");
            };
            let tenant = dir.tenant_id.clone();
            match dir.sync.lifecycle(id, &event, &tenant) {
                Ok(()) => ok(json!({"queued": event})),
                Err(why) => fail(why),
            }
        }
        (Method::POST, ["groups", name, "member-groups"]) => {
            let Some(child) = s("name") else {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "name (the nested group) is required",
                );
            };
            match dir.add_member_group(name, &child) {
                Ok(changed) => ok(json!({"changed": changed, "queued": 0})),
                Err(why) => fail(why),
            }
        }
        _ => bad(StatusCode::NOT_FOUND, "unknown control call"),
    }
}

fn perms(list: &[super::state::Permission]) -> Value {
    list.iter().map(super::segment::perm_json).collect()
}

fn dump(app: &App) -> Value {
    let st = app.state();
    let okta = &st.okta;
    let users: Vec<Value> = okta
        .users
        .values()
        .map(|u| json!({"id": u.id, "login": u.login, "email": u.email, "first_name": u.first_name, "last_name": u.last_name, "status": u.status}))
        .collect();
    let groups: Vec<Value> = okta
        .groups
        .values()
        .map(|g| {
            let members: Vec<&str> = g
                .members
                .iter()
                .filter_map(|id| okta.users.get(id))
                .map(|u| u.login.as_str())
                .collect();
            json!({"id": g.id, "name": g.name, "members": members, "pushed_to": g.pushed_to,
                   "lastMembershipUpdated": okta_time(g.last_membership_updated)})
        })
        .collect();
    let log: Vec<&Value> = okta.log.iter().map(|e| &e.json).collect();
    let mut segment = serde_json::Map::new();
    for (name, ws) in &st.workspaces {
        let users: Vec<Value> = ws.users.values().map(|u| json!({"id": u.id, "email": u.email, "name": u.name, "permissions": perms(&u.permissions)})).collect();
        let groups: Vec<Value> = ws
            .groups
            .values()
            .map(|g| {
                let members: Vec<&str> = g.members.iter().filter_map(|id| ws.users.get(id)).map(|u| u.email.as_str()).collect();
                json!({"id": g.id, "name": g.name, "members": members, "permissions": perms(&g.permissions)})
            })
            .collect();
        let audit: Vec<Value> = ws
            .audit
            .iter()
            .map(|a| json!({"id": format!("events/{}", a.id), "timestamp": iso_time(a.timestamp), "type": a.kind, "actor": a.actor,
                            "actorEmail": a.actor_email, "resourceId": a.resource_id, "resourceType": a.resource_type, "resourceName": a.resource_name}))
            .collect();
        segment.insert(
            name.clone(),
            json!({"workspace": {"id": ws.id, "slug": ws.name, "name": ws.name, "token_id": ws.token_id},
                   "users": users, "groups": groups, "audit_events": audit}),
        );
    }
    let event_hooks = app.hooks.snapshot();
    let azure = st.azure.as_ref().map(|d| d.dump());
    json!({"okta": {"users": users, "groups": groups, "log": log, "event_hooks": event_hooks}, "segment": segment,
           "azure": azure, "push": app.push.snapshot(), "faults": app.faults.snapshot()})
}
