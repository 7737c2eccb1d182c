//! Segment IAM writes and the audit trail listing: permission input validation
//! (UPPERCASE resource types, no DESTINATION, labels only on WORKSPACE, else 422),
//! POST adds / PUT replaces, and `GET /audit-events` (newest first, cursors pinning
//! `endTime`, 200 per page at most).

use axum::response::Response;
use serde_json::{json, Value};

use super::cursor::{iso_time, parse_time};
use super::segment::{data, err, invalid, pagination, perm_json, JSON, VND};
use super::state::{role_name, Actor, PermResource, Permission, Subject, Workspace};
use super::{App, Req};

/// Parses and validates `{permissions: PermissionInputV1[]}`.
pub fn parse_permissions(ws: &Workspace, body: Option<Value>) -> Result<Vec<Permission>, Response> {
    let list = body
        .as_ref()
        .and_then(|b| b.get("permissions"))
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("permissions", "\"permissions\" is required"))?;
    let mut out = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let role_id = p.get("roleId").and_then(Value::as_str).unwrap_or("");
        if role_name(role_id).is_none() {
            return Err(invalid(
                &format!("permissions.{i}.roleId"),
                "Invalid roleId",
            ));
        }
        let top_labels = labels_of(p.get("labels"));
        let mut resources = Vec::new();
        for (j, r) in p
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let field = format!("permissions.{i}.resources.{j}");
            let id = r
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let kind = r
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let mut labels = labels_of(r.get("labels"));
            let known =
                match kind.as_str() {
                    "WORKSPACE" => id == ws.id,
                    "SOURCE" => ws.sources.iter().any(|s| s.id == id),
                    "WAREHOUSE" => ws.warehouses.iter().any(|s| s.id == id),
                    "FUNCTION" => ws.functions.iter().any(|s| s.id == id),
                    "SPACE" => ws.spaces.iter().any(|s| s.id == id),
                    _ => return Err(invalid(
                        &format!("{field}.type"),
                        "\"type\" must be one of [WORKSPACE, SOURCE, WAREHOUSE, FUNCTION, SPACE]",
                    )),
                };
            if !known {
                return Err(invalid(
                    &format!("{field}.id"),
                    "Resource not found in this workspace",
                ));
            }
            if kind == "WORKSPACE" {
                labels.extend(top_labels.iter().cloned());
            } else if !labels.is_empty() || !top_labels.is_empty() {
                return Err(invalid(
                    &format!("{field}.labels"),
                    "Labels are exclusive to Workspace-level permissions",
                ));
            }
            resources.push(PermResource { id, kind, labels });
        }
        if resources.is_empty() {
            return Err(invalid(
                &format!("permissions.{i}.resources"),
                "\"resources\" must contain at least 1 item",
            ));
        }
        out.push(Permission {
            role_id: role_id.to_string(),
            resources,
        });
    }
    Ok(out)
}

fn labels_of(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| {
            Some((
                l.get("key")?.as_str()?.to_string(),
                l.get("value")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

pub fn write_perms(
    ws: &mut Workspace,
    counter: &mut u64,
    subject: Subject,
    id: &str,
    req: &Req,
    replace: bool,
    actor: &Actor,
) -> Response {
    let perms = match parse_permissions(ws, req.json_body()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let out: Vec<Value> = perms
        .iter()
        .map(|p| {
            let mut v = perm_json(p);
            v["policyId"] = json!(super::cursor::base62_id(&format!("policy:{id}:{v}"), 27));
            v["subjectId"] = json!(id);
            v["subjectType"] = json!(match subject {
                Subject::User => "user",
                Subject::Group => "group",
            });
            v
        })
        .collect();
    if !ws.write_permissions(counter, subject, id, perms, replace, actor) {
        return err(404, "Resource not found");
    }
    data(json!({"permissions": out}), VND)
}

pub fn audit_events(app: &App, ws: &Workspace, req: &Req) -> Response {
    let (p, pinned) = match pagination(app, req, true) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let time = |k: &str| match req.q(k) {
        None => Ok(None),
        Some(s) => parse_time(s)
            .map(Some)
            .ok_or_else(|| invalid(k, &format!("\"{k}\" must be an ISO 8601 date"))),
    };
    let start = match time("startTime") {
        Ok(t) => t,
        Err(r) => return r,
    };
    let end = match pinned {
        Some(e) => parse_time(&e),
        None => match time("endTime") {
            Ok(t) => t,
            Err(r) => return r,
        },
    }
    .unwrap_or_else(chrono::Utc::now);
    let end_text = iso_time(end);
    let rid = req.q("resourceId");
    let rtype = req.q("resourceType").map(str::to_lowercase);
    let hits: Vec<&super::state::Audit> = ws
        .audit
        .iter()
        .rev()
        .filter(|a| a.timestamp <= end && start.is_none_or(|s| a.timestamp >= s))
        .filter(|a| rid.is_none_or(|r| a.resource_id == r))
        .filter(|a| {
            rtype
                .as_ref()
                .is_none_or(|t| ws.audit_resource_type(&a.resource_type).to_lowercase() == *t)
        })
        .collect();
    let count = p.count.min(200);
    let events: Vec<Value> = hits
        .iter()
        .skip(p.offset)
        .take(count)
        .map(|a| {
            let mut v = json!({"id": format!("events/{}", a.id), "timestamp": iso_time(a.timestamp), "type": a.kind,
                "actor": a.actor, "resourceId": a.resource_id, "resourceType": ws.audit_resource_type(&a.resource_type), "resourceName": a.resource_name});
            if let Some(e) = &a.actor_email {
                v["actorEmail"] = json!(e);
            }
            v
        })
        .collect();
    let mut pj = json!({"current": p.cursor.clone().unwrap_or_else(|| app.signer.audit(p.offset, &end_text))});
    if p.offset + count < hits.len() {
        pj["next"] = json!(app.signer.audit(p.offset + count, &end_text));
    }
    if p.offset > 0 {
        pj["previous"] = json!(app.signer.audit(p.offset.saturating_sub(count), &end_text));
    }
    data(json!({"events": events, "pagination": pj}), JSON)
}
