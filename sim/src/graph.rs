//! Microsoft Graph v1.0 and the Entra token endpoint under `/graph` (sim.md; graph.md §1–§3,
//! §5, §7, §9).
//!
//! Contract:
//! - `POST /graph/login/{tenant}/oauth2/v2.0/token`: client credentials with the seed's
//!   `client_secret`, or a `client_assertion` JWT (RS256) whose `x5t` is the seeded
//!   certificate's SHA-1 thumbprint, signed by its key, with `aud` = this token URL,
//!   `iss` = `sub` = client_id, valid `nbf`/`exp` and an unused `jti`; `scope` must be a
//!   `/.default` scope. Entra's error bodies (`error`, `error_description` with its AADSTS
//!   code, `error_codes`). Tokens carry the app's `roles`, live `token_lifetime`, and are
//!   refused once expired (401 `InvalidAuthenticationToken`); a missing role is 403
//!   `Authorization_RequestDenied`.
//! - OData envelopes: `@odata.context`, `value`, `@odata.nextLink` (absolute, back at this
//!   sim, with an opaque HMAC-signed `$skiptoken` bound to the query; a forged one is 400),
//!   `@odata.type` on directoryObjects, `$select` honoured (the default user set omits
//!   `accountEnabled`), `$top` capped at 999 (default 100). Advanced queries (`$count`,
//!   `$search`, `$orderby`, `ne`/`not`/`endsWith`) without `ConsistencyLevel: eventual`
//!   and `$count=true` are 400 `Request_UnsupportedQuery`.
//! - Throttling: each request costs resource units as graph.md §5 prices them; past the
//!   seed's `resource_units_per_10s` a 429 with `Retry-After`, `x-ms-throttle-scope`
//!   (`Tenant_Application/Read/<appId>/<tenantId>`) and `x-ms-throttle-information`; past
//!   80 % of it `x-ms-throttle-limit-percentage` as Graph writes it, a fraction (`0.85`). `/auditLogs/*` allows 5 requests per 10 s, always.
//!   Every answer carries `request-id`, `client-request-id` and `x-ms-resource-unit`.
//!
//! Never log a secret, a token or an assertion.

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::cursor::random_id;
use super::graph_state::{guid_from, AzGroup, AzUser, Directory, Issued};
use super::http::{json as json_resp, set, status};
use super::{App, Req};

const ODATA_JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
const MAX_TOP: usize = 999;
const DEFAULT_TOP: usize = 100;
const AUDIT_REQUESTS_PER_10S: u32 = 5;
const USER_DEFAULT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// A Graph error body with the request ids.
pub fn error(code: u16, err: &str, message: &str) -> Response {
    let rid = guid_from(&random_id(16));
    let body = json!({"error": {"code": err, "message": message,
        "innerError": {"date": Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(), "request-id": rid, "client-request-id": rid}}});
    let mut resp = json_resp(status(code), &body, "application/json");
    set(&mut resp, "request-id", &rid);
    set(&mut resp, "client-request-id", &rid);
    resp
}

fn default_error(code: u16) -> Response {
    match code {
        400 => error(400, "Request_BadRequest", "Invalid request."),
        401 => error(
            401,
            "InvalidAuthenticationToken",
            "Access token validation failure.",
        ),
        403 => error(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ),
        404 => error(404, "Request_ResourceNotFound", "Resource not found."),
        429 => error(429, "TooManyRequests", "Too many requests."),
        503 => error(503, "serviceNotAvailable", "Service unavailable."),
        504 => error(504, "gatewayTimeout", "Gateway timeout."),
        _ => error(code, "generalException", "An error occurred."),
    }
}

fn token_error(code: u16, error: &str, aadsts: u32, text: &str) -> Response {
    let trace = guid_from(&random_id(16));
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{aadsts}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {trace}\r\nTimestamp: {}", Utc::now().format("%Y-%m-%d %H:%M:%SZ")),
        "error_codes": [aadsts], "timestamp": Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
        "trace_id": trace, "correlation_id": trace,
    });
    json_resp(status(code), &body, "application/json; charset=utf-8")
}

pub async fn handle(app: &App, req: Req) -> Response {
    if app.state().azure.is_none() {
        return error(
            404,
            "Request_ResourceNotFound",
            "This simulator has no [azure] tenant.",
        );
    }
    if let Some(inj) = app
        .faults
        .take("graph", None, req.method.as_str(), &req.path)
    {
        if let Some(ms) = inj.delay_ms {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        if let Some(code) = inj.status {
            let mut resp = default_error(code);
            if matches!(code, 429 | 503 | 504) {
                set(&mut resp, "retry-after", "1");
            }
            count(app, &req, &route_name(&req.path), code);
            return resp;
        }
    }
    let route = route_name(&req.path);
    let sub_path: Option<Vec<String>> = req
        .path
        .strip_prefix("/v1.0/")
        .filter(|r| r.starts_with("subscriptions"))
        .map(|r| r.trim_matches('/').split('/').map(str::to_string).collect());
    let mut resp = if let Some(parts) = sub_path {
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        super::graph_sync::subscriptions(app, &req, &parts).await
    } else if let Some(rest) = req.path.strip_prefix("/login/") {
        token(app, &req, rest)
    } else if let Some(rest) = req.path.strip_prefix("/v1.0") {
        api(app, &req, rest)
    } else {
        error(404, "Request_ResourceNotFound", "Unknown Graph version.")
    };
    if resp.headers().get("request-id").is_none() {
        let rid = guid_from(&random_id(16));
        set(&mut resp, "request-id", &rid);
    }
    let crid = req
        .header("client-request-id")
        .map(str::to_string)
        .unwrap_or_else(|| guid_from(&random_id(16)));
    set(&mut resp, "client-request-id", &crid);
    set(
        &mut resp,
        "date",
        &httpdate::fmt_http_date(std::time::SystemTime::now()),
    );
    count(app, &req, &route, resp.status().as_u16());
    resp
}

fn count(app: &App, req: &Req, route: &str, code: u16) {
    let mut st = app.state();
    if let Some(d) = st.azure.as_mut() {
        *d.requests
            .entry(format!("{} {route} {code}", req.method))
            .or_default() += 1;
    }
}

/// The route's template, for request counts: ids become `{id}`.
fn route_name(path: &str) -> String {
    if path.starts_with("/login/") {
        return "/oauth2/v2.0/token".to_string();
    }
    let parts: Vec<&str> = path.trim_start_matches("/v1.0").split('/').collect();
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let prev = if i > 0 { parts[i - 1] } else { "" };
            if p.starts_with("servicePrincipals(") {
                "servicePrincipals(appId)"
            } else if matches!(
                prev,
                "groups" | "users" | "servicePrincipals" | "subscriptions"
            ) && !p.is_empty()
                && *p != "delta"
            {
                "{id}"
            } else {
                p
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

// ---- token endpoint ------------------------------------------------------------------

fn token(app: &App, req: &Req, rest: &str) -> Response {
    let parts: Vec<&str> = rest.split('/').collect();
    let [tenant, "oauth2", "v2.0", "token"] = parts.as_slice() else {
        return token_error(
            404,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests.",
        );
    };
    if req.method != Method::POST {
        return token_error(
            405,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests.",
        );
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&req.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let f = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let mut st = app.state();
    let Some(d) = st.azure.as_mut() else {
        return token_error(400, "invalid_request", 90002, "Tenant not found.");
    };
    if *tenant != d.tenant_id {
        return token_error(400, "invalid_request", 90002, &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."));
    }
    if f("grant_type") != "client_credentials" {
        return token_error(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if f("client_id") != d.client_id {
        return token_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{}' was not found in the directory '{tenant}'.",
                f("client_id")
            ),
        );
    }
    if !f("scope").ends_with("/.default") || f("scope").contains(' ') {
        return token_error(400, "invalid_scope", 1002012, "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).");
    }
    let token_url = format!("{}{}", req.origin, req.raw_path);
    if !f("client_assertion").is_empty() {
        if f("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
            return token_error(
                400,
                "invalid_request",
                50027,
                "Invalid client_assertion_type.",
            );
        }
        if let Err(why) = verify_assertion(d, f("client_assertion"), &token_url) {
            return token_error(401, "invalid_client", why.0, &why.1);
        }
    } else if !f("client_secret").is_empty() {
        if d.client_secret.as_deref() != Some(f("client_secret")) {
            return token_error(401, "invalid_client", 7000215, &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.", d.client_id));
        }
    } else {
        return token_error(401, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.");
    }
    let lifetime = d.token_lifetime.as_secs().max(1);
    let now = Utc::now();
    let claims = json!({"aud": "https://graph.microsoft.com", "iss": format!("https://sts.windows.net/{}/", d.tenant_id),
        "iat": now.timestamp(), "nbf": now.timestamp(), "exp": now.timestamp() + lifetime as i64,
        "appid": d.client_id, "idtyp": "app", "roles": d.roles, "tid": d.tenant_id, "oid": guid_from(&format!("sp:{}", d.client_id))});
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let access = format!(
        "{}.{}.{}",
        b64(&json!({"typ": "JWT", "alg": "RS256", "x5t": "simulator"})),
        b64(&claims),
        random_id(43)
    );
    d.tokens.insert(
        access.clone(),
        Issued {
            expires: now + chrono::Duration::seconds(lifetime as i64),
            roles: d.roles.clone(),
        },
    );
    json_resp(
        StatusCode::OK,
        &json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access}),
        "application/json; charset=utf-8",
    )
}

/// Checks a certificate client assertion; `Err((AADSTS code, text))`.
fn verify_assertion(
    d: &mut Directory,
    assertion: &str,
    token_url: &str,
) -> Result<(), (u32, String)> {
    let header = decode_header(assertion).map_err(|_| {
        (
            50012,
            "The client assertion is not a valid JWT.".to_string(),
        )
    })?;
    let Some(cert) = d.certificate.clone() else {
        return Err((
            700027,
            "Client assertion failed signature validation: the application has no certificate."
                .into(),
        ));
    };
    if header.alg != Algorithm::RS256 && header.alg != Algorithm::PS256 {
        return Err((
            5002738,
            "The client assertion's 'alg' is not supported.".into(),
        ));
    }
    if header.x5t.as_deref() != Some(cert.x5t.as_str()) {
        return Err((700027, "The certificate with identifier used to sign the client assertion is not registered on application.".into()));
    }
    let key = DecodingKey::from_rsa_pem(cert.public_key_pem.as_bytes()).map_err(|_| {
        (
            700027,
            "The registered certificate has no usable RSA key.".to_string(),
        )
    })?;
    let mut v = Validation::new(header.alg);
    v.set_audience(&[token_url]);
    v.set_issuer(&[d.client_id.as_str()]);
    v.validate_nbf = true;
    v.leeway = 60;
    v.set_required_spec_claims(&["exp", "aud", "iss", "sub", "nbf"]);
    let claims = decode::<Value>(assertion, &key, &v)
        .map_err(|e| (700027, format!("Client assertion failed validation: {e}.")))?
        .claims;
    if claims.get("sub").and_then(Value::as_str) != Some(d.client_id.as_str()) {
        return Err((
            700023,
            "The client assertion's 'sub' must be the client id.".into(),
        ));
    }
    let jti = claims.get("jti").and_then(Value::as_str).unwrap_or("");
    if jti.is_empty() || !d.jtis.insert(jti.to_string()) {
        return Err((
            700024,
            "The client assertion's 'jti' is missing or was used before.".into(),
        ));
    }
    Ok(())
}

// ---- the API ----------------------------------------------------------------------------

/// The roles that allow reading a path.
fn needs(path: &[&str]) -> &'static [&'static str] {
    match path.first().copied() {
        Some("groups") => &[
            "GroupMember.Read.All",
            "Group.Read.All",
            "Directory.Read.All",
        ],
        Some("users") => &["User.Read.All", "Directory.Read.All"],
        Some("auditLogs") => &["AuditLog.Read.All"],
        Some(p) if p.starts_with("servicePrincipals") => {
            if path.contains(&"synchronization") {
                &[
                    "Synchronization.Read.All",
                    "Application.Read.All",
                    "Directory.Read.All",
                ]
            } else {
                &["Application.Read.All", "Directory.Read.All"]
            }
        }
        _ => &[],
    }
}

/// Graph's resource-unit price of a request (graph.md §5).
fn cost(path: &[&str], q: &Query) -> u32 {
    let base: i32 = match path {
        ["groups", _, "members", ..] => 3,
        ["groups", _, "transitiveMembers", ..] => 5,
        ["users"] => 2,
        _ => 1,
    };
    let mut c = base;
    if q.select.is_some() {
        c -= 1;
    }
    if q.top.is_some_and(|t| t < 20) {
        c -= 1;
    }
    c.max(1) as u32
}

struct Query {
    select: Option<Vec<String>>,
    top: Option<usize>,
    filter: Option<String>,
    skiptoken: Option<String>,
    count: bool,
    advanced: bool,
}

impl Query {
    fn parse(req: &Req) -> Query {
        let q = |k: &str| req.q(k).map(str::to_string);
        let filter = q("$filter");
        let lower = filter.as_deref().unwrap_or("").to_lowercase();
        let advanced = req.q("$count").is_some()
            || req.q("$search").is_some()
            || req.q("$orderby").is_some()
            || lower.contains(" ne ")
            || lower.contains("not(")
            || lower.contains("endswith(");
        Query {
            select: q("$select").map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            }),
            top: req.q("$top").and_then(|t| t.trim().parse().ok()),
            filter,
            skiptoken: q("$skiptoken"),
            count: req
                .q("$count")
                .is_some_and(|c| c.eq_ignore_ascii_case("true")),
            advanced,
        }
    }
}

fn api(app: &App, req: &Req, rest: &str) -> Response {
    if req.method != Method::GET {
        return error(
            405,
            "Request_BadRequest",
            "The simulator's Graph is read-only.",
        );
    }
    let raw: Vec<String> = rest
        .trim_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    let path: Vec<&str> = raw.iter().map(String::as_str).collect();
    let q = Query::parse(req);
    let mut st = app.state();
    let Some(d) = st.azure.as_mut() else {
        return default_error(404);
    };

    // Authentication and permissions.
    let auth = req.header("authorization").unwrap_or("").trim();
    let Some(tok) = auth.strip_prefix("Bearer ").map(str::trim) else {
        return error(401, "InvalidAuthenticationToken", "Access token is empty.");
    };
    let Some(issued) = d.tokens.get(tok) else {
        return error(
            401,
            "InvalidAuthenticationToken",
            "IDX14100: JWT is not well formed, there are no dots (.).",
        );
    };
    if issued.expires <= Utc::now() {
        return error(
            401,
            "InvalidAuthenticationToken",
            "Lifetime validation failed, the token is expired.",
        );
    }
    let allowed = needs(&path);
    if !allowed.is_empty() && !issued.roles.iter().any(|r| allowed.contains(&r.as_str())) {
        return error(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }

    // Throttling.
    let audit = path.first() == Some(&"auditLogs");
    if audit {
        if let Err(wait) = d.audit_window.charge(1, AUDIT_REQUESTS_PER_10S) {
            return throttled(wait, d, "Tenant_Application/Read");
        }
    }
    let units = cost(&path, &q);
    let mut pct = None;
    if let Some(budget) = d.ru_per_10s {
        match d.ru.charge(units, budget) {
            Ok(used) => pct = Some(used * 100 / budget.max(1)),
            Err(wait) => return throttled(wait, d, "Tenant_Application/Read"),
        }
    }

    if q.advanced
        && !(q.count
            && req
                .header("consistencylevel")
                .is_some_and(|v| v.eq_ignore_ascii_case("eventual")))
    {
        return error(400, "Request_UnsupportedQuery", "Unsupported Query: this query needs the ConsistencyLevel header set to 'eventual' and $count=true.");
    }

    let origin = format!("{}/graph/v1.0", req.origin);
    let mut resp = match path.as_slice() {
        ["groups", "delta"] => super::graph_sync::delta(app, req, d, &origin),
        [sp] if super::graph_sync::app_id_of(sp).is_some() => {
            let app_id = super::graph_sync::app_id_of(sp).unwrap_or_default();
            super::graph_sync::service_principal(d, &app_id, &origin)
        }
        ["servicePrincipals", id, "synchronization", "jobs"] => super::graph_sync::jobs(d, id, &origin),
        ["auditLogs", "provisioning"] => match super::graph_sync::provisioning_logs(d, q.filter.as_deref()) {
            Ok(items) => page(app, req, &q, &origin, "auditLogs/provisioning", items, false, d.empty_first_pages),
            Err(r) => r,
        },
        ["groups"] => match groups_filter(d, q.filter.as_deref()) {
            Ok(items) => {
                let items: Vec<Value> = items.iter().map(|g| group_json(g)).collect();
                page(app, req, &q, &origin, "groups", items, false, d.empty_first_pages)
            }
            Err(r) => r,
        },
        ["groups", id] => match d.groups.get(*id) {
            Some(g) => {
                let mut v = group_json(g);
                v = select(v, q.select.as_deref(), false);
                if let Value::Object(m) = &mut v {
                    m.insert("@odata.context".into(), json!(format!("{origin}/$metadata#groups/$entity")));
                }
                json_resp(StatusCode::OK, &v, ODATA_JSON)
            }
            None => not_found_id(id),
        },
        ["groups", id, kind @ ("members" | "transitiveMembers"), cast @ ..] => {
            let Some(g) = d.groups.get(*id) else {
                return not_found_id(id);
            };
            let users_only = match cast {
                [] => false,
                ["microsoft.graph.user"] => true,
                ["microsoft.graph.group"] => {
                    let (_, groups) = members_of(d, g, *kind == "transitiveMembers");
                    let items = groups.iter().map(|c| typed(group_json(c), "group")).collect();
                    return finish(page(app, req, &q, &origin, "groups", items, true, d.empty_first_pages), units, pct);
                }
                _ => return error(400, "Request_BadRequest", "Unsupported cast."),
            };
            let (users, groups) = members_of(d, g, *kind == "transitiveMembers");
            let mut items: Vec<Value> = users.iter().map(|u| typed(user_json(u), "user")).collect();
            if !users_only {
                items.extend(groups.iter().map(|c| typed(group_json(c), "group")));
            }
            page(app, req, &q, &origin, "directoryObjects", items, true, d.empty_first_pages)
        }
        ["users"] => match users_filter(d, q.filter.as_deref()) {
            Ok(items) => {
                let items = items.iter().map(|u| user_json(u)).collect();
                page(app, req, &q, &origin, "users", items, false, d.empty_first_pages)
            }
            Err(r) => r,
        },
        ["users", key] => match d.user_by_key(key) {
            Some(u) => {
                let mut v = select(user_json(u), Some(q.select.as_deref().unwrap_or(&default_user_select())), false);
                if let Value::Object(m) = &mut v {
                    m.insert("@odata.context".into(), json!(format!("{origin}/$metadata#users/$entity")));
                }
                json_resp(StatusCode::OK, &v, ODATA_JSON)
            }
            None => error(404, "Request_ResourceNotFound", &format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present.")),
        },
        ["auditLogs", "directoryAudits"] => match audits(d, q.filter.as_deref()) {
            Ok(items) => page(app, req, &q, &origin, "auditLogs/directoryAudits", items, false, d.empty_first_pages),
            Err(r) => r,
        },
        _ => error(400, "Request_BadRequest", &format!("Resource not found for the segment '{}'.", path.first().unwrap_or(&""))),
    };
    set(&mut resp, "x-ms-resource-unit", &units.to_string());
    if let Some(p) = pct.filter(|p| *p > 80) {
        set(
            &mut resp,
            "x-ms-throttle-limit-percentage",
            &limit_fraction(p),
        );
    }
    resp
}

fn finish(mut resp: Response, units: u32, pct: Option<u32>) -> Response {
    set(&mut resp, "x-ms-resource-unit", &units.to_string());
    if let Some(p) = pct.filter(|p| *p > 80) {
        set(
            &mut resp,
            "x-ms-throttle-limit-percentage",
            &limit_fraction(p),
        );
    }
    resp
}

/// `x-ms-throttle-limit-percentage` as Graph writes it: the fraction of the limit used
/// (0.8 to 1.8, Microsoft Graph throttling guidance), from our whole percentage.
fn limit_fraction(pct: u32) -> String {
    format!("{:.2}", f64::from(pct.min(180)) / 100.0)
}

/// `x-ms-throttle-scope` in the documented form `<Scope>/<Limit>/<AppId>/<TenantId>`,
/// `scope` being `<Scope>/<Limit>` with Limit one of `Read`, `Write`, `ReadWrite`.
fn throttled(wait: std::time::Duration, d: &Directory, scope: &str) -> Response {
    let mut resp = error(429, "TooManyRequests", "Too many requests.");
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    set(&mut resp, "retry-after", &secs.to_string());
    set(
        &mut resp,
        "x-ms-throttle-scope",
        &format!("{scope}/{}/{}", d.client_id, d.tenant_id),
    );
    set(
        &mut resp,
        "x-ms-throttle-information",
        "ResourceUnitLimitExceeded",
    );
    set(&mut resp, "x-ms-resource-unit", "1");
    resp
}

fn not_found_id(id: &str) -> Response {
    if !looks_like_guid(id) {
        return error(
            400,
            "Request_BadRequest",
            &format!("Invalid object identifier '{id}'."),
        );
    }
    error(404, "Request_ResourceNotFound", &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."))
}

fn looks_like_guid(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
        })
}

fn default_user_select() -> Vec<String> {
    USER_DEFAULT.iter().map(|s| s.to_string()).collect()
}

/// Direct (or transitive, cycle-safe) members: users, then groups.
fn members_of<'d>(
    d: &'d Directory,
    g: &AzGroup,
    transitive: bool,
) -> (Vec<&'d AzUser>, Vec<&'d AzGroup>) {
    if transitive {
        let (users, groups) = d.transitive(&g.id);
        (
            users.iter().filter_map(|u| d.users.get(u)).collect(),
            groups.iter().filter_map(|c| d.groups.get(c)).collect(),
        )
    } else {
        (
            g.members.iter().filter_map(|u| d.users.get(u)).collect(),
            g.member_groups
                .iter()
                .filter_map(|c| d.groups.get(c))
                .collect(),
        )
    }
}

fn user_json(u: &AzUser) -> Value {
    let (given, surname) = match u.display_name.split_once(' ') {
        Some((a, b)) => (Value::from(a), Value::from(b)),
        None => (Value::Null, Value::Null),
    };
    json!({"id": u.id, "businessPhones": [], "displayName": u.display_name, "givenName": given, "jobTitle": null,
           "mail": u.mail, "mobilePhone": null, "officeLocation": null, "preferredLanguage": null, "surname": surname,
           "userPrincipalName": u.upn, "accountEnabled": u.account_enabled, "userType": "Member",
           "deletedDateTime": null, "onPremisesSyncEnabled": null})
}

fn group_json(g: &AzGroup) -> Value {
    json!({"id": g.id, "deletedDateTime": null, "classification": null,
           "createdDateTime": g.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
           "description": null, "displayName": g.name, "groupTypes": [], "mail": null, "mailEnabled": false,
           "mailNickname": g.name.to_lowercase().replace(' ', "-"), "membershipRule": null,
           "membershipRuleProcessingState": null, "onPremisesSyncEnabled": null, "securityEnabled": true,
           "securityIdentifier": format!("S-1-12-1-{}", g.id.len()), "visibility": null})
}

fn typed(mut v: Value, kind: &str) -> Value {
    if let Value::Object(m) = &mut v {
        m.insert(
            "@odata.type".into(),
            json!(format!("#microsoft.graph.{kind}")),
        );
    }
    v
}

/// Keeps only the selected properties (and `@odata.type`, which directoryObject lists keep).
fn select(v: Value, fields: Option<&[String]>, keep_type: bool) -> Value {
    let (Some(fields), Value::Object(m)) = (fields, &v) else {
        return v;
    };
    let mut out = Map::new();
    if keep_type {
        if let Some(t) = m.get("@odata.type") {
            out.insert("@odata.type".into(), t.clone());
        }
    }
    for f in fields {
        if let Some(x) = m.get(f.as_str()) {
            out.insert(f.clone(), x.clone());
        }
    }
    Value::Object(out)
}

/// `'it''s'` → `it's`: the value of a single-quoted OData string at the start of `s`.
pub(super) fn quoted(s: &str) -> Option<String> {
    let s = s.trim().strip_prefix('\'')?;
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            if chars.peek() == Some(&'\'') {
                chars.next();
                out.push('\'');
            } else {
                return Some(out);
            }
        } else {
            out.push(c);
        }
    }
    None
}

fn unsupported_filter() -> Response {
    error(
        400,
        "Request_UnsupportedQuery",
        "Unsupported or invalid query filter clause specified.",
    )
}

fn groups_filter<'d>(d: &'d Directory, filter: Option<&str>) -> Result<Vec<&'d AzGroup>, Response> {
    let all = d.groups.values();
    let Some(f) = filter.map(str::trim) else {
        return Ok(all.collect());
    };
    if let Some(v) = f.strip_prefix("displayName eq ").and_then(quoted) {
        return Ok(all.filter(|g| g.name.eq_ignore_ascii_case(&v)).collect());
    }
    if let Some(v) = f.strip_prefix("id eq ").and_then(quoted) {
        return Ok(all.filter(|g| g.id == v).collect());
    }
    if let Some(v) = f.strip_prefix("startswith(displayName,").and_then(quoted) {
        return Ok(all
            .filter(|g| g.name.to_lowercase().starts_with(&v.to_lowercase()))
            .collect());
    }
    Err(unsupported_filter())
}

fn users_filter<'d>(d: &'d Directory, filter: Option<&str>) -> Result<Vec<&'d AzUser>, Response> {
    let all = d.users.values();
    let Some(f) = filter.map(str::trim) else {
        return Ok(all.collect());
    };
    if let Some(v) = f.strip_prefix("mail eq ").and_then(quoted) {
        return Ok(all.filter(|u| u.mail.eq_ignore_ascii_case(&v)).collect());
    }
    if let Some(v) = f.strip_prefix("userPrincipalName eq ").and_then(quoted) {
        return Ok(all.filter(|u| u.upn.eq_ignore_ascii_case(&v)).collect());
    }
    Err(unsupported_filter())
}

/// One `$filter` clause over (activityDateTime, record).
type AuditCond = Box<dyn Fn(&DateTime<Utc>, &Value) -> bool>;

/// Directory audits, newest first, filtered by `activityDateTime ge|gt|le|lt <time>` and
/// `activityDisplayName eq '<name>'` joined with `and`.
fn audits(d: &Directory, filter: Option<&str>) -> Result<Vec<Value>, Response> {
    let mut conds: Vec<AuditCond> = Vec::new();
    if let Some(f) = filter {
        for clause in f.split(" and ") {
            let clause = clause.trim().trim_start_matches('(').trim_end_matches(')');
            let mut words = clause.splitn(3, ' ');
            let (Some(field), Some(op), Some(value)) = (words.next(), words.next(), words.next())
            else {
                return Err(unsupported_filter());
            };
            match (field, op) {
                ("activityDateTime", "ge" | "gt" | "le" | "lt") => {
                    let t = chrono::DateTime::parse_from_rfc3339(value.trim())
                        .map_err(|_| {
                            error(
                                400,
                                "Request_BadRequest",
                                &format!("Invalid filter value '{value}'."),
                            )
                        })?
                        .with_timezone(&Utc);
                    let op = op.to_string();
                    conds.push(Box::new(move |at, _| match op.as_str() {
                        "ge" => *at >= t,
                        "gt" => *at > t,
                        "le" => *at <= t,
                        _ => *at < t,
                    }));
                }
                ("activityDisplayName", "eq") => {
                    let v = quoted(value).ok_or_else(unsupported_filter)?;
                    conds.push(Box::new(move |_, r| {
                        r.get("activityDisplayName").and_then(Value::as_str) == Some(v.as_str())
                    }));
                }
                _ => return Err(unsupported_filter()),
            }
        }
    }
    Ok(d.audits
        .iter()
        .rev()
        .filter(|(at, r)| conds.iter().all(|c| c(at, r)))
        .map(|(_, r)| r.clone())
        .collect())
}

/// One page of `items` with Graph's envelope and a signed `$skiptoken` bound to the query.
#[allow(clippy::too_many_arguments)]
fn page(
    app: &App,
    req: &Req,
    q: &Query,
    origin: &str,
    context: &str,
    items: Vec<Value>,
    keep_type: bool,
    empty_first: bool,
) -> Response {
    let top = q.top.unwrap_or(DEFAULT_TOP).clamp(1, MAX_TOP);
    let binding = query_hash(req);
    let offset = match &q.skiptoken {
        None => 0,
        Some(t) => match app.signer.okta_verify(t).and_then(|p| {
            let (o, h) = p.strip_prefix('G')?.split_once('|')?;
            (h == binding).then(|| o.parse::<usize>().ok()).flatten()
        }) {
            Some(o) => o,
            None => return error(400, "Request_BadRequest", "Invalid skip token."),
        },
    };
    let total = items.len();
    // Graph may answer an empty page that still carries a nextLink: the first page, here.
    let empty = empty_first && q.skiptoken.is_none();
    let default_select = (context == "users").then(default_user_select);
    let fields = q.select.as_deref().or(default_select.as_deref());
    let value: Vec<Value> = items
        .into_iter()
        .skip(offset)
        .take(if empty { 0 } else { top })
        .map(|v| select(v, fields, keep_type))
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{origin}/$metadata#{context}")),
    );
    if q.count && offset == 0 {
        body.insert("@odata.count".into(), json!(total));
    }
    let next = if empty { 0 } else { offset + top };
    if next < total || empty {
        let token = app.signer.okta(&format!("G{next}|{binding}"));
        let mut parts: Vec<String> = req
            .query
            .iter()
            .filter(|(k, _)| k != "$skiptoken")
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect();
        parts.push(format!("$skiptoken={}", enc(&token)));
        body.insert(
            "@odata.nextLink".into(),
            json!(format!(
                "{}{}?{}",
                req.origin,
                req.raw_path,
                parts.join("&")
            )),
        );
    }
    body.insert("value".into(), Value::Array(value));
    json_resp(StatusCode::OK, &Value::Object(body), ODATA_JSON)
}

/// The query minus `$skiptoken`, hashed: a skiptoken only works for the query it came from.
fn query_hash(req: &Req) -> String {
    let mut parts: Vec<String> = req
        .query
        .iter()
        .filter(|(k, _)| k != "$skiptoken")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    parts.sort();
    let h = Sha256::digest(format!("{}?{}", req.path, parts.join("&")).as_bytes());
    h.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Percent-encodes a query key or value, keeping `$` (OData option names) and unreserved
/// characters.
fn enc(s: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'$')
        .remove(b',');
    percent_encoding::utf8_percent_encode(s, KEEP).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odata_strings_unquote() {
        assert_eq!(quoted("'it''s' and x").as_deref(), Some("it's"));
        assert_eq!(quoted("'abc'").as_deref(), Some("abc"));
        assert_eq!(quoted("abc"), None);
    }

    #[test]
    fn routes_template_ids() {
        assert_eq!(
            route_name("/v1.0/groups/abc/members"),
            "/groups/{id}/members"
        );
        assert_eq!(route_name("/v1.0/users/a@b"), "/users/{id}");
        assert_eq!(
            route_name("/login/t/oauth2/v2.0/token"),
            "/oauth2/v2.0/token"
        );
    }

    #[test]
    fn resource_units_follow_the_price_list() {
        let q = |select: bool, top: Option<usize>| Query {
            select: select.then(|| vec!["id".to_string()]),
            top,
            filter: None,
            skiptoken: None,
            count: false,
            advanced: false,
        };
        assert_eq!(cost(&["groups", "x", "members"], &q(true, Some(999))), 2);
        assert_eq!(
            cost(&["groups", "x", "transitiveMembers"], &q(false, None)),
            5
        );
        assert_eq!(cost(&["users"], &q(true, Some(5))), 1);
        assert_eq!(cost(&["groups"], &q(true, None)), 1);
    }
}
