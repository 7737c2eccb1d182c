//! The Okta Management API under `/okta` (sim.md; okta.md §2–§5, §7, §8).
//!
//! Contract: bare JSON arrays paged only by `link` headers (`self` line first, then
//! `next`, absolute URLs back at this sim), HMAC-signed `after` cursors (forged → 400
//! `E0000001`), `limit` silently capped per endpoint, Okta's error body, and
//! `Date`/`X-Okta-Request-Id`/`X-Rate-Limit-*` on every response, 429s included.

use std::ops::Bound;

use axum::http::{Method, StatusCode};
use axum::response::Response;

use serde_json::{json, Value};

use super::cursor::{okta_time, random_id};
use super::filter::{self, Expr};
use super::http::{append, json as json_resp, set};
use super::oauth::{self, Principal};
use super::ratelimit::Verdict;
use super::state::{OktaGroup, OktaUser, State};
use super::{App, Req};

const JSON: &str = "application/json";

pub fn error_body(status: u16, detail: &str) -> Value {
    let (code, summary) = match status {
        400 => ("E0000001", format!("Api validation failed: {detail}")),
        401 => ("E0000011", "Invalid token provided".to_string()),
        403 => (
            "E0000006",
            "You do not have permission to perform the requested action".to_string(),
        ),
        404 => (
            "E0000007",
            format!("Not found: Resource not found: {detail}"),
        ),
        429 => (
            "E0000047",
            "API call exceeded rate limit due to too many requests.".to_string(),
        ),
        _ => ("E0000009", "Internal Server Error".to_string()),
    };
    let causes: Vec<Value> = if status == 400 && !detail.is_empty() {
        vec![json!({"errorSummary": detail})]
    } else {
        vec![]
    };
    json!({"errorCode": code, "errorSummary": summary, "errorLink": code,
           "errorId": format!("oae{}", random_id(19)), "errorCauses": causes})
}

pub(super) fn err(status: u16, detail: &str) -> Response {
    json_resp(
        super::http::status(status),
        &error_body(status, detail),
        JSON,
    )
}

fn refusal(r: oauth::Refusal) -> Response {
    let (status, code, summary) = r;
    let mut body = error_body(status, "");
    body["errorCode"] = json!(code);
    body["errorLink"] = json!(code);
    body["errorSummary"] = json!(summary);
    json_resp(super::http::status(status), &body, JSON)
}

/// The rate-limit bucket of a path (longest prefix wins).
fn bucket(method: &Method, path: &str) -> &'static str {
    if path.starts_with("/api/v1/groups") {
        "groups"
    } else if path == "/api/v1/users" || path == "/api/v1/users/" {
        "users"
    } else if path.starts_with("/api/v1/users/")
        && method == Method::GET
        && path.matches('/').count() == 4
    {
        "user"
    } else if path.starts_with("/api/v1/apps") {
        "apps"
    } else if path.starts_with("/api/v1/logs") {
        "logs"
    } else if path.starts_with("/oauth2") {
        "oauth2"
    } else {
        "other"
    }
}

fn add_headers(resp: &mut Response, v: &Verdict) {
    set(
        resp,
        "date",
        &httpdate::fmt_http_date(std::time::SystemTime::now()),
    );
    set(resp, "x-okta-request-id", &random_id(27));
    set(resp, "x-rate-limit-limit", &v.limit.to_string());
    set(resp, "x-rate-limit-remaining", &v.remaining.to_string());
    set(resp, "x-rate-limit-reset", &v.reset.timestamp().to_string());
}

pub async fn handle(app: &App, req: Req) -> Response {
    let b = bucket(&req.method, &req.path);
    let key = format!("okta:{b}");
    let budget = app.state().okta.rate_limit;
    if let Some(inj) = app
        .faults
        .take("okta", None, req.method.as_str(), &req.path)
    {
        if let Some(ms) = inj.delay_ms {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        if let Some(status) = inj.status {
            let v = app.limiter.peek(&key, budget);
            let mut resp = err(status, "injected fault");
            add_headers(&mut resp, &v);
            return resp;
        }
    }
    let v = app.limiter.hit(&key, budget);
    let mut resp = if !v.allowed {
        err(429, "")
    } else {
        route(app, &req)
    };
    add_headers(&mut resp, &v);
    resp
}

fn route(app: &App, req: &Req) -> Response {
    if req.path == "/oauth2/v1/token" {
        return if req.method == Method::POST {
            oauth::token(app, req)
        } else {
            err(405, "")
        };
    }
    let principal = match oauth::authenticate(app, req) {
        Ok(p) => p,
        Err(r) => return refusal(r),
    };
    if req.method != Method::GET {
        return err(405, "method not allowed");
    }
    let parts: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let scope = match parts.get(2).copied() {
        Some("groups") => "okta.groups.read",
        Some("users") => "okta.users.read",
        Some("apps") => "okta.apps.read",
        Some("logs") => "okta.logs.read",
        _ => "",
    };
    if !scope.is_empty() && !principal.has_scope(scope) {
        return err(403, "");
    }
    let st = app.state();
    let ctx = Ctx {
        app,
        req,
        st: &st,
        principal: &principal,
    };
    match parts.as_slice() {
        ["api", "v1", "groups"] => ctx.list_groups(),
        ["api", "v1", "groups", id] => match st.okta.groups.get(*id) {
            Some(g) => json_resp(StatusCode::OK, &ctx.group_json(g, false), JSON),
            None => err(404, &format!("{id} (UserGroup)")),
        },
        ["api", "v1", "groups", id, "users"] => ctx.group_members(id),
        ["api", "v1", "users"] => ctx.list_users(),
        ["api", "v1", "users", key] => match st.okta.user_by_id_or_login(key) {
            Some(u) => json_resp(StatusCode::OK, &ctx.user_json(u), JSON),
            None => err(404, &format!("{key} (User)")),
        },
        ["api", "v1", "users", key, "groups"] => match st.okta.user_by_id_or_login(key) {
            Some(u) => {
                let groups: Vec<Value> = if principal.admin_role {
                    st.okta
                        .user_groups
                        .get(&u.id)
                        .map(|ids| {
                            ids.iter()
                                .filter_map(|g| st.okta.groups.get(g))
                                .map(|g| ctx.group_json(g, false))
                                .collect()
                        })
                        .unwrap_or_default()
                } else {
                    vec![]
                };
                json_resp(StatusCode::OK, &Value::Array(groups), JSON)
            }
            None => err(404, &format!("{key} (User)")),
        },
        // A login with `/` (sent raw or as `%2F`) splits into more segments: Okta can only
        // fetch such users by id (Users API), and answers 404 here.
        ["api", "v1", "users", rest @ ..] => err(404, &format!("{} (User)", rest.join("/"))),
        ["api", "v1", "apps", app_id, "groups"] => ctx.app_groups(app_id),
        ["api", "v1", "logs"] => ctx.logs(),
        _ => err(404, &req.path),
    }
}

pub(super) struct Ctx<'a> {
    pub app: &'a App,
    pub req: &'a Req,
    pub st: &'a State,
    pub principal: &'a Principal,
}

pub(super) fn limit_of(
    req: &Req,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, Response> {
    match req.q("limit") {
        None => Ok(default),
        Some(s) => match s.trim().parse::<i64>() {
            Ok(n) if n >= 1 => Ok((n as usize).clamp(min, max)),
            Ok(_) => Ok(min.max(1)),
            Err(_) => Err(err(400, "limit: must be a number")),
        },
    }
}

impl Ctx<'_> {
    fn base(&self) -> String {
        format!("{}/okta", self.req.origin)
    }

    /// `self`: the request as received; `next`: the same with `after` replaced.
    pub(super) fn page(
        &self,
        items: Vec<Value>,
        next_after: Option<String>,
        limit: Option<usize>,
    ) -> Response {
        let mut resp = json_resp(StatusCode::OK, &Value::Array(items), JSON);
        let url = |pairs: &[(String, String)]| {
            let mut s = format!("{}{}", self.req.origin, self.req.raw_path);
            if !pairs.is_empty() {
                let q = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs)
                    .finish();
                s.push('?');
                s.push_str(&q);
            }
            s
        };
        append(
            &mut resp,
            "link",
            &format!("<{}>; rel=\"self\"", url(&self.req.query)),
        );
        let polling = self.req.path.ends_with("/logs") && self.req.q("until").is_none();
        if let Some(after) = next_after {
            let mut pairs: Vec<(String, String)> = self
                .req
                .query
                .iter()
                .filter(|(k, _)| k != "after" && k != "limit" && (k != "since" || !polling))
                .cloned()
                .collect();
            pairs.push(("after".to_string(), after));
            if let Some(l) = limit {
                pairs.push(("limit".to_string(), l.to_string()));
            }
            append(
                &mut resp,
                "link",
                &format!("<{}>; rel=\"next\"", url(&pairs)),
            );
        }
        resp
    }

    /// The verified `after` payload for `kind`, or the 400 to answer.
    pub(super) fn after(&self, kind: &str) -> Result<Option<String>, Response> {
        let Some(raw) = self.req.q("after") else {
            return Ok(None);
        };
        match self
            .app
            .signer
            .okta_verify(raw)
            .and_then(|p| p.strip_prefix(&format!("{kind}:")).map(str::to_string))
        {
            Some(p) => Ok(Some(p)),
            None => Err(err(400, "after: the cursor is invalid")),
        }
    }

    pub(super) fn expr(
        &self,
        key: &str,
        allowed: Option<&[&str]>,
    ) -> Result<Option<Expr>, Response> {
        let Some(text) = self.req.q(key) else {
            return Ok(None);
        };
        let e = filter::parse(text).map_err(|m| err(400, &format!("{key}: {m}")))?;
        if let Some(allowed) = allowed {
            let mut attrs = vec![];
            e.attrs(&mut attrs);
            if let Some(bad) = attrs.iter().find(|a| !allowed.contains(&a.as_str())) {
                return Err(err(400, &format!("{key}: unsupported attribute {bad}")));
            }
        }
        Ok(Some(e))
    }

    pub fn group_json(&self, g: &OktaGroup, stats: bool) -> Value {
        let base = self.base();
        let mut v = json!({
            "id": g.id, "created": okta_time(g.created), "lastUpdated": okta_time(g.last_updated),
            "lastMembershipUpdated": okta_time(g.last_membership_updated),
            "objectClass": ["okta:user_group"], "type": "OKTA_GROUP",
            "profile": {"name": g.name, "description": g.description},
            "_links": {
                "logo": [{"name": "medium", "href": "https://ok12static.oktacdn.com/assets/img/logos/groups/okta-medium.png", "type": "image/png"}],
                "users": {"href": format!("{base}/api/v1/groups/{}/users", g.id)},
                "apps": {"href": format!("{base}/api/v1/groups/{}/apps", g.id)}
            }
        });
        if stats {
            v["_embedded"] = json!({"stats": {"usersCount": g.members.len(), "appsCount": usize::from(!g.pushed_to.is_empty()),
                "groupPushMappingsCount": g.pushed_to.len(), "hasAdminPrivlege": false}});
        }
        v
    }

    pub fn user_json(&self, u: &OktaUser) -> Value {
        let base = self.base();
        let activated = if matches!(u.status.as_str(), "STAGED" | "PROVISIONED") {
            Value::Null
        } else {
            json!(okta_time(u.created))
        };
        json!({
            "id": u.id, "status": u.status, "created": okta_time(u.created), "activated": activated,
            "statusChanged": okta_time(u.status_changed), "lastLogin": null, "lastUpdated": okta_time(u.last_updated),
            "passwordChanged": null, "realmId": "guo1afiNtSnZYILxO0g4",
            "type": {"id": "oty1162QAr8hJjTaq0g4"},
            "profile": {"firstName": u.first_name, "lastName": u.last_name, "mobilePhone": null, "secondEmail": null,
                        "login": u.login, "email": u.email},
            "credentials": {"password": {}, "emails": [{"value": u.email, "status": "VERIFIED", "type": "PRIMARY"}],
                            "provider": {"type": "OKTA", "name": "OKTA"}},
            "_links": {"self": {"href": format!("{base}/api/v1/users/{}", u.id)}}
        })
    }

    fn list_groups(&self) -> Response {
        let okta = &self.st.okta;
        let stats = self.req.q("expand") == Some("stats");
        if let Some(q) = self.req.q("q") {
            let limit = match limit_of(self.req, 300, 1, 300) {
                Ok(l) => l,
                Err(r) => return r,
            };
            let q = q.to_lowercase();
            let items: Vec<Value> = if self.principal.admin_role {
                let mut v: Vec<&OktaGroup> = okta
                    .groups
                    .values()
                    .filter(|g| g.name.to_lowercase().starts_with(&q))
                    .collect();
                v.sort_by(|a, b| a.name.cmp(&b.name));
                v.into_iter()
                    .take(limit)
                    .map(|g| self.group_json(g, stats))
                    .collect()
            } else {
                vec![]
            };
            return self.page(items, None, None);
        }
        let limit = match limit_of(self.req, 10000, 1, 10000) {
            Ok(l) => l,
            Err(r) => return r,
        };
        let search = match self.expr("search", None) {
            Ok(e) => e,
            Err(r) => return r,
        };
        let filt = match self.expr(
            "filter",
            Some(&["id", "type", "lastUpdated", "lastMembershipUpdated"]),
        ) {
            Ok(e) => e,
            Err(r) => return r,
        };
        let after = match self.after("g") {
            Ok(a) => a,
            Err(r) => return r,
        };
        if !self.principal.admin_role {
            return self.page(vec![], None, None);
        }
        let ok = |g: &OktaGroup| {
            search
                .as_ref()
                .is_none_or(|e| e.eval(&|a| group_attr(g, a)))
                && filt.as_ref().is_none_or(|e| e.eval(&|a| group_attr(g, a)))
        };
        let lower = after
            .as_ref()
            .map_or(Bound::Unbounded, |a| Bound::Excluded(a.clone()));
        // Index fast path for `profile.name eq "A" or ...` (the client's batched lookup).
        let names = search.as_ref().and_then(|e| e.eq_values("profile.name"));
        let candidates: Box<dyn Iterator<Item = &OktaGroup>> = match names {
            Some(names) => {
                let mut v: Vec<&OktaGroup> = Vec::new();
                for n in names {
                    match okta.group_by_name(&n) {
                        Some(g) => v.push(g),
                        None => v.extend(
                            okta.groups
                                .values()
                                .filter(|g| g.name.eq_ignore_ascii_case(&n)),
                        ),
                    }
                }
                v.sort_by(|a, b| a.id.cmp(&b.id));
                v.dedup_by(|a, b| a.id == b.id);
                let after = after.clone();
                Box::new(
                    v.into_iter()
                        .filter(move |g| after.as_ref().is_none_or(|a| g.id > *a)),
                )
            }
            None => Box::new(okta.groups.range((lower, Bound::Unbounded)).map(|(_, g)| g)),
        };
        let mut page: Vec<&OktaGroup> = candidates.filter(|g| ok(g)).take(limit + 1).collect();
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last()
                .map(|g| self.app.signer.okta(&format!("g:{}", g.id)))
        } else {
            None
        };
        let items = page
            .into_iter()
            .map(|g| self.group_json(g, stats))
            .collect();
        self.page(items, next, Some(limit))
    }

    fn group_members(&self, gid: &str) -> Response {
        let Some(g) = self.st.okta.groups.get(gid) else {
            return err(404, &format!("{gid} (UserGroup)"));
        };
        let limit = match limit_of(self.req, 1000, 1, 1000) {
            Ok(l) => l,
            Err(r) => return r,
        };
        let after = match self.after(&format!("m:{gid}")) {
            Ok(a) => a,
            Err(r) => return r,
        };
        if !self.principal.admin_role {
            return self.page(vec![], None, None);
        }
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut ids: Vec<&String> = g
            .members
            .range((lower, Bound::Unbounded))
            .take(limit + 1)
            .collect();
        let next = if ids.len() > limit {
            ids.truncate(limit);
            ids.last()
                .map(|id| self.app.signer.okta(&format!("m:{gid}:{id}")))
        } else {
            None
        };
        let items = ids
            .into_iter()
            .filter_map(|id| self.st.okta.users.get(id))
            .map(|u| self.user_json(u))
            .collect();
        self.page(items, next, Some(limit))
    }

    fn list_users(&self) -> Response {
        let okta = &self.st.okta;
        if let Some(q) = self.req.q("q") {
            let limit = match limit_of(self.req, 10, 1, 200) {
                Ok(l) => l,
                Err(r) => return r,
            };
            let q = q.to_lowercase();
            let items = if self.principal.admin_role {
                okta.users
                    .values()
                    .filter(|u| u.status != "DEPROVISIONED")
                    .filter(|u| {
                        [&u.first_name, &u.last_name, &u.email, &u.login]
                            .iter()
                            .any(|f| f.to_lowercase().starts_with(&q))
                    })
                    .take(limit)
                    .map(|u| self.user_json(u))
                    .collect()
            } else {
                vec![]
            };
            return self.page(items, None, None);
        }
        let limit = match limit_of(self.req, 200, 1, 200) {
            Ok(l) => l,
            Err(r) => return r,
        };
        let search = match self.expr("search", None) {
            Ok(e) => e,
            Err(r) => return r,
        };
        let filt = match self.expr("filter", None) {
            Ok(e) => e,
            Err(r) => return r,
        };
        let after = match self.after("u") {
            Ok(a) => a,
            Err(r) => return r,
        };
        if !self.principal.admin_role {
            return self.page(vec![], None, None);
        }
        let plain = search.is_none() && filt.is_none();
        let ok = |u: &OktaUser| {
            (!plain || u.status != "DEPROVISIONED")
                && search.as_ref().is_none_or(|e| e.eval(&|a| user_attr(u, a)))
                && filt.as_ref().is_none_or(|e| e.eval(&|a| user_attr(u, a)))
        };
        let logins = search
            .as_ref()
            .and_then(|e| e.eq_values("profile.login"))
            .or_else(|| filt.as_ref().and_then(|e| e.eq_values("profile.login")));
        let candidates: Box<dyn Iterator<Item = &OktaUser>> = match logins {
            Some(logins) => {
                let mut v: Vec<&OktaUser> = logins
                    .iter()
                    .filter_map(|l| okta.user_by_login(l))
                    .collect();
                v.sort_by(|a, b| a.id.cmp(&b.id));
                v.dedup_by(|a, b| a.id == b.id);
                let after = after.clone();
                Box::new(
                    v.into_iter()
                        .filter(move |u| after.as_ref().is_none_or(|a| u.id > *a)),
                )
            }
            None => {
                let lower = after.clone().map_or(Bound::Unbounded, Bound::Excluded);
                Box::new(okta.users.range((lower, Bound::Unbounded)).map(|(_, u)| u))
            }
        };
        let mut page: Vec<&OktaUser> = candidates.filter(|u| ok(u)).take(limit + 1).collect();
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last()
                .map(|u| self.app.signer.okta(&format!("u:{}", u.id)))
        } else {
            None
        };
        let items = page.into_iter().map(|u| self.user_json(u)).collect();
        self.page(items, next, Some(limit))
    }

    fn app_groups(&self, app_id: &str) -> Response {
        if app_id != self.st.okta.app_id {
            return err(404, &format!("{app_id} (AppInstance)"));
        }
        let limit = match limit_of(self.req, 20, 20, 200) {
            Ok(l) => l,
            Err(r) => return r,
        };
        let after = match self.after("a") {
            Ok(a) => a,
            Err(r) => return r,
        };
        if !self.principal.admin_role {
            return self.page(vec![], None, None);
        }
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page: Vec<&OktaGroup> = self
            .st
            .okta
            .groups
            .range((lower, Bound::Unbounded))
            .map(|(_, g)| g)
            .filter(|g| !g.pushed_to.is_empty())
            .take(limit + 1)
            .collect();
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last()
                .map(|g| self.app.signer.okta(&format!("a:{}", g.id)))
        } else {
            None
        };
        let base = self.base();
        let items = page
            .into_iter()
            .map(|g| {
                json!({"id": g.id, "lastUpdated": okta_time(g.last_updated), "priority": 0, "profile": {},
                       "_links": {"app": {"href": format!("{base}/api/v1/apps/{app_id}")},
                                  "group": {"href": format!("{base}/api/v1/groups/{}", g.id)}}})
            })
            .collect();
        self.page(items, next, Some(limit))
    }
}

fn group_attr(g: &OktaGroup, a: &str) -> Option<String> {
    match a {
        "id" => Some(g.id.clone()),
        "type" => Some("OKTA_GROUP".to_string()),
        "profile.name" => Some(g.name.clone()),
        "profile.description" => Some(g.description.clone()),
        "created" => Some(okta_time(g.created)),
        "lastUpdated" => Some(okta_time(g.last_updated)),
        "lastMembershipUpdated" => Some(okta_time(g.last_membership_updated)),
        _ => None,
    }
}

fn user_attr(u: &OktaUser, a: &str) -> Option<String> {
    match a {
        "id" => Some(u.id.clone()),
        "status" => Some(u.status.clone()),
        "profile.login" => Some(u.login.clone()),
        "profile.email" => Some(u.email.clone()),
        "profile.firstName" => Some(u.first_name.clone()),
        "profile.lastName" => Some(u.last_name.clone()),
        "created" => Some(okta_time(u.created)),
        "lastUpdated" => Some(okta_time(u.last_updated)),
        "statusChanged" => Some(okta_time(u.status_changed)),
        "type.id" => Some("oty1162QAr8hJjTaq0g4".to_string()),
        _ => None,
    }
}
