//! Okta Management API client (reference/okta.md): the mapped groups and their members
//! with status, single users by login or email, and the System Log.
//!
//! Why one file (~700 lines): the reads share Okta's paging (`link` headers) and its
//! error shapes; auth, rate-limit policy and wire types are already in their own files.
//!
//! Contract:
//! - Every request goes through [`crate::http::Http`] with [`policy::OktaPolicy`]
//!   (pacing from `X-Rate-Limit-*`, 429 waits until `X-Rate-Limit-Reset` against `Date`,
//!   5xx and timeouts retried with backoff). Nothing here loops on errors; the only
//!   repeats are the one token refresh after a 401 (OAuth) and the DPoP nonce resend.
//! - Lists are followed through every `link: <…>; rel="next"` verbatim, whether the
//!   links come as separate header lines or one comma-joined line, in any order. A
//!   `next` that repeats a page already read is an error, never a loop.
//! - A failure is an `IdpError`, never an empty or partial list. A 200 with an empty
//!   list is taken at its word (the caller judges "every mapped group empty").
//! - Group names match exactly (case-sensitive); a name that several groups carry is
//!   `Unresolved`, so a mapping never silently picks one.
//! - System Log targets are found by `type`, never by position; non-SUCCESS outcomes are
//!   skipped; events are deduplicated by `uuid` and returned sorted by `published`.
//! - Secrets never reach URLs, errors, logs or `Debug`.

mod auth;
mod policy;
mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::config::{IdpConfig, IdpCredential, UserAttribute};
use crate::error::ErrorClass;
use crate::http::{encode, redact_url, Answer, Http, RequestStats, RetryConfig};
use crate::idp::{IdentityProvider, IdpError};
use crate::model::{
    Email, GroupRead, GroupRef, IdpEvent, IdpEventKind, IdpGroup, IdpKind, IdpStatus, IdpUser,
    UserLookup,
};

pub use policy::OktaPolicy;

use auth::{Access, Credential};

const SERVICE: &str = "okta";
/// Names or ids per `search` request (joined with `or`).
const SEARCH_BATCH: usize = 10;
const GROUPS_PAGE: u32 = 200;
const MEMBERS_PAGE: u32 = 1000;
const LOG_PAGE: usize = 1000;
/// Member lists read at once.
const GROUP_CONCURRENCY: usize = 4;
/// User lookups at once.
const LOOKUP_CONCURRENCY: usize = 8;
const LOG_FILTER: &str = "eventType eq \"group.user_membership.add\" or eventType eq \"group.user_membership.remove\" or eventType sw \"user.lifecycle.\" or eventType eq \"group.lifecycle.create\"";

/// An Okta org. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct Okta {
    inner: Arc<Inner>,
}

struct Inner {
    /// The org URL without a trailing slash (any path prefix kept).
    base: String,
    http: Http,
    credential: Credential,
    user_attribute: UserAttribute,
}

impl std::fmt::Debug for Okta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Okta")
            .field("base", &self.inner.base)
            .field("credential", &self.inner.credential)
            .field("user_attribute", &self.inner.user_attribute)
            .finish()
    }
}

impl Okta {
    /// `cfg.url` is the org URL (e.g. "https://acme.okta.com" or
    /// "http://127.0.0.1:PORT/okta"; any path prefix is kept).
    pub fn new(
        cfg: &IdpConfig,
        retry: RetryConfig,
        stats: Arc<RequestStats>,
    ) -> Result<Okta, IdpError> {
        let base = cfg.url.trim().trim_end_matches('/').to_string();
        if url::Url::parse(&base).is_err() {
            return Err(IdpError::Auth {
                service: SERVICE,
                what: format!("the org URL {base:?} is not a URL"),
            });
        }
        let credential = match &cfg.credential {
            IdpCredential::OktaToken(token) => Credential::ssws(token),
            IdpCredential::OktaOAuth(oauth) => Credential::oauth(oauth, &base)?,
            IdpCredential::Azure(_) => {
                return Err(IdpError::Auth {
                    service: SERVICE,
                    what: "an Azure credential was given to the Okta client".to_string(),
                })
            }
        };
        let http = Http::new(SERVICE, Arc::new(OktaPolicy), None, retry, stats);
        Ok(Okta {
            inner: Arc::new(Inner {
                base,
                http,
                credential,
                user_attribute: cfg.user_attribute,
            }),
        })
    }

    /// One authenticated GET, whatever its status. Under OAuth a 401 drops the token,
    /// fetches a new one and resends once.
    async fn get(&self, endpoint: &str, url: &str) -> Result<Answer, IdpError> {
        let cred = &self.inner.credential;
        let access = cred.access(&self.inner.http).await?;
        let answer = self.send_get(endpoint, url, &access).await?;
        if answer.status == StatusCode::UNAUTHORIZED && cred.is_oauth() {
            log_request_id(&answer, "Access token refused, fetching a new one.");
            cred.invalidate(&access).await;
            let access = cred.access(&self.inner.http).await?;
            return self.send_get(endpoint, url, &access).await;
        }
        Ok(answer)
    }

    async fn send_get(
        &self,
        endpoint: &str,
        url: &str,
        access: &Access,
    ) -> Result<Answer, IdpError> {
        let dpop = self.inner.credential.dpop();
        let htu = auth::htu(url);
        let fallback = match dpop {
            Some(d) => Some(d.proof("GET", htu, None, access.ath.as_deref())?),
            None => None,
        };
        let build = |client: &reqwest::Client| {
            let mut rb = client
                .get(url)
                .header(AUTHORIZATION, access.authorization.expose())
                .header(ACCEPT, "application/json");
            if let (Some(d), Some(fallback)) = (dpop, &fallback) {
                // A fresh proof (new jti) per attempt; the fallback only if signing fails.
                let proof = d
                    .proof("GET", htu, None, access.ath.as_deref())
                    .unwrap_or_else(|_| fallback.clone());
                rb = rb.header("DPoP", proof.expose());
            }
            rb
        };
        self.inner
            .http
            .send(endpoint, &build)
            .await
            .map_err(|source| IdpError::Transport {
                service: SERVICE,
                request: format!("GET {}", redact_url(url)),
                source,
            })
    }

    /// A GET that must succeed (2xx), parsed as `T`.
    async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        url: &str,
    ) -> Result<(T, HeaderMap), IdpError> {
        let answer = self.get(endpoint, url).await?;
        if !answer.status.is_success() {
            return Err(api_error("GET", url, &answer));
        }
        let parsed = parse_body(url, &answer)?;
        Ok((parsed, answer.headers))
    }

    /// Every item of a list, following each `rel="next"` until there is none.
    async fn get_all<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        first: String,
    ) -> Result<Vec<T>, IdpError> {
        let mut out = Vec::new();
        let mut visited = HashSet::new();
        let mut url = first;
        loop {
            let (page, headers): (Vec<T>, _) = self.get_json(endpoint, &url).await?;
            out.extend(page);
            let Some(next) = next_link(&headers, &url) else {
                return Ok(out);
            };
            visited.insert(url.clone());
            if visited.contains(&next) {
                return Err(repeated_next(&url));
            }
            url = next;
        }
    }

    /// Groups whose `field` equals one of `values`, by batched `search` requests.
    async fn search_groups(
        &self,
        field: &str,
        values: &[String],
    ) -> Result<Vec<wire::Group>, IdpError> {
        let mut out = Vec::new();
        for batch in values.chunks(SEARCH_BATCH) {
            let expr = batch
                .iter()
                .map(|v| format!("{field} eq \"{}\"", escape_filter(v)))
                .collect::<Vec<_>>()
                .join(" or ");
            let url = format!(
                "{}/api/v1/groups?search={}&limit={GROUPS_PAGE}",
                self.inner.base,
                encode(&expr)
            );
            out.extend(
                self.get_all::<wire::Group>("GET /api/v1/groups", url)
                    .await?,
            );
        }
        Ok(out)
    }

    async fn members(&self, group_id: &str) -> Result<Vec<IdpUser>, IdpError> {
        let url = format!(
            "{}/api/v1/groups/{}/users?limit={MEMBERS_PAGE}",
            self.inner.base,
            encode(group_id)
        );
        let users: Vec<wire::User> = self.get_all("GET /api/v1/groups/{id}/users", url).await?;
        Ok(users.into_iter().map(|u| self.to_user(u)).collect())
    }

    fn to_user(&self, u: wire::User) -> IdpUser {
        let status = IdpStatus::from_okta(&u.status);
        if let IdpStatus::NotActivated(s) = &status {
            if !matches!(s.as_str(), "STAGED" | "PROVISIONED") {
                tracing::debug!(service = SERVICE, user = %u.id, status = %s, "Transitional or unknown Okta status, neither expected nor flagged.");
            }
        }
        let key = match self.inner.user_attribute {
            UserAttribute::Email | UserAttribute::Mail => match &u.profile.email {
                Some(e) if !e.trim().is_empty() => Email::new(e),
                _ => {
                    tracing::warn!(service = SERVICE, user = %u.id, "Okta user has no email, keyed by login instead.");
                    Email::new(&u.profile.login)
                }
            },
            UserAttribute::Login | UserAttribute::UserPrincipalName => Email::new(&u.profile.login),
        };
        IdpUser {
            id: u.id,
            login: u.profile.login,
            key,
            status,
        }
    }

    async fn lookup_one(&self, key: Email) -> Result<UserLookup, IdpError> {
        let base = &self.inner.base;
        match self.inner.user_attribute {
            UserAttribute::Email | UserAttribute::Mail => {
                let expr = format!("profile.email eq \"{}\"", escape_filter(key.as_str()));
                let url = format!("{base}/api/v1/users?search={}", encode(&expr));
                let (users, _): (Vec<wire::User>, _) =
                    self.get_json("GET /api/v1/users", &url).await?;
                let count = users.len();
                let Some(first) = users.into_iter().next() else {
                    return Ok(UserLookup::NotFound);
                };
                if count > 1 {
                    tracing::warn!(service = SERVICE, email = %key, count, "Several Okta users carry this email, taking the first.");
                }
                Ok(UserLookup::Found(self.to_user(first)))
            }
            UserAttribute::Login | UserAttribute::UserPrincipalName
                if key.as_str().contains('/') =>
            {
                // Okta: a login with `/` "can only be fetched by id" (Users API,
                // `GET /api/v1/users/{idOrLogin}`), so `GET /users/{login}` answers 404
                // for it. One filtered list instead: same cost, and `filter` (unlike
                // `search`) sees DEPROVISIONED users, as the by-login read does.
                let expr = format!("profile.login eq \"{}\"", escape_filter(key.as_str()));
                let url = format!("{base}/api/v1/users?filter={}", encode(&expr));
                let (users, _): (Vec<wire::User>, _) =
                    self.get_json("GET /api/v1/users", &url).await?;
                Ok(users
                    .into_iter()
                    .find(|u| u.profile.login.eq_ignore_ascii_case(key.as_str()))
                    .map_or(UserLookup::NotFound, |u| UserLookup::Found(self.to_user(u))))
            }
            UserAttribute::Login | UserAttribute::UserPrincipalName => {
                let url = format!("{base}/api/v1/users/{}", encode(key.as_str()));
                let answer = self.get("GET /api/v1/users/{login}", &url).await?;
                if answer.status == StatusCode::NOT_FOUND {
                    return Ok(UserLookup::NotFound);
                }
                if !answer.status.is_success() {
                    return Err(api_error("GET", &url, &answer));
                }
                let user: wire::User = parse_body(&url, &answer)?;
                Ok(UserLookup::Found(self.to_user(user)))
            }
        }
    }
}

impl IdentityProvider for Okta {
    fn kind(&self) -> IdpKind {
        IdpKind::Okta
    }

    async fn read_groups(&self, refs: &[GroupRef]) -> Result<Vec<(GroupRef, GroupRead)>, IdpError> {
        let names: Vec<String> = dedup(refs.iter().filter_map(|r| match r {
            GroupRef::Name(n) => Some(n.clone()),
            GroupRef::Id(_) => None,
        }));
        let ids: Vec<String> = dedup(refs.iter().filter_map(|r| match r {
            GroupRef::Id(i) => Some(i.clone()),
            GroupRef::Name(_) => None,
        }));

        let mut by_name: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for g in self.search_groups("profile.name", &names).await? {
            let name = g.profile.name.unwrap_or_default();
            let seen = by_name.entry(name.clone()).or_default();
            if !seen.iter().any(|(id, _)| *id == g.id) {
                seen.push((g.id, name));
            }
        }
        let mut by_id: HashMap<String, String> = HashMap::new();
        for g in self.search_groups("id", &ids).await? {
            by_id.insert(g.id, g.profile.name.unwrap_or_default());
        }

        // Resolve every reference to (id, name) or a reason.
        let resolved: Vec<Result<(String, String), String>> = refs
            .iter()
            .map(|r| match r {
                GroupRef::Name(n) => match by_name.get(n).map(Vec::as_slice) {
                    Some([one]) => Ok(one.clone()),
                    Some(many) if many.len() > 1 => Err(format!(
                        "{} Okta groups are named {n:?}; map it by idp_group_id",
                        many.len()
                    )),
                    _ => Err(format!("no Okta group is named {n:?}")),
                },
                GroupRef::Id(i) => match by_id.get(i) {
                    Some(name) => Ok((i.clone(), name.clone())),
                    None => Err(format!("no Okta group has id {i:?}")),
                },
            })
            .collect();

        let wanted: Vec<String> = dedup(
            resolved
                .iter()
                .filter_map(|r| r.as_ref().ok().map(|(id, _)| id.clone())),
        );
        // For the progress display: one member page per group at least.
        self.inner
            .http
            .stats()
            .expect_requests(SERVICE, wanted.len() as u64);
        let me = self.clone();
        let lists = bounded(wanted.clone(), GROUP_CONCURRENCY, move |id: String| {
            let me = me.clone();
            async move { me.members(&id).await }
        })
        .await?;
        let members: HashMap<String, Vec<IdpUser>> = wanted.into_iter().zip(lists).collect();

        Ok(refs
            .iter()
            .zip(resolved)
            .map(|(r, res)| {
                let read = match res {
                    Ok((id, name)) => GroupRead::Found(IdpGroup {
                        members: members.get(&id).cloned().unwrap_or_default(),
                        id,
                        name,
                    }),
                    Err(reason) => GroupRead::Unresolved { reason },
                };
                (r.clone(), read)
            })
            .collect())
    }

    async fn lookup_users(&self, keys: &[Email]) -> Result<BTreeMap<Email, UserLookup>, IdpError> {
        let keys: Vec<Email> = keys
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.inner
            .http
            .stats()
            .expect_requests(SERVICE, keys.len() as u64);
        let me = self.clone();
        let found = bounded(keys.clone(), LOOKUP_CONCURRENCY, move |key: Email| {
            let me = me.clone();
            async move { me.lookup_one(key).await }
        })
        .await?;
        Ok(keys.into_iter().zip(found).collect())
    }

    async fn events_since(&self, since: DateTime<Utc>) -> Result<Vec<IdpEvent>, IdpError> {
        Ok(self.log_poll(None, since).await?.events)
    }
}

/// One System Log poll: the new events and the `next` link to persist as the checkpoint.
#[derive(Clone, Debug)]
pub struct LogPoll {
    pub events: Vec<IdpEvent>,
    /// Where the next poll starts (Okta's `next` link, followed verbatim).
    pub next: Option<String>,
}

impl Okta {
    /// Polls the System Log in Okta's polling mode (no `until`, ascending): from the
    /// checkpoint `next` link when there is one, else from `since` (clamped to what Okta
    /// accepts, see [`log_since`]). Follows `next` until a page comes back **empty**
    /// (Okta: "continue until no events are returned"; a short page is not the end) and
    /// returns the last `next` as the new checkpoint. Dedupes by `uuid`; events come
    /// sorted by `published`.
    pub async fn log_poll(
        &self,
        checkpoint: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<LogPoll, IdpError> {
        let mut url = match checkpoint {
            Some(next) => next.to_string(),
            None => {
                let now = Utc::now();
                let clamped = log_since(since, now);
                if clamped != since {
                    tracing::info!(service = SERVICE, since = %since, from = %clamped, "The System Log refuses a `since` more than 180 days back; reading from the oldest time it accepts.");
                }
                format!(
                    "{}/api/v1/logs?since={}&sortOrder=ASCENDING&limit={LOG_PAGE}&filter={}",
                    self.inner.base,
                    encode(&clamped.to_rfc3339_opts(SecondsFormat::Millis, true)),
                    encode(LOG_FILTER)
                )
            }
        };
        let mut checkpoint_out = checkpoint.map(str::to_string);
        let mut visited = HashSet::new();
        let mut seen_uuids = HashSet::new();
        let mut events = Vec::new();
        loop {
            let (page, headers): (Vec<wire::LogEvent>, _) =
                self.get_json("GET /api/v1/logs", &url).await?;
            let caught_up = page.is_empty();
            for e in page {
                if seen_uuids.insert(e.uuid.clone()) {
                    if let Some(ev) = map_event(e) {
                        events.push(ev);
                    }
                }
            }
            let next = next_link(&headers, &url);
            if next.is_some() {
                checkpoint_out.clone_from(&next);
            }
            // Polling always answers with `next`; only an empty page means we caught up
            // (Okta may answer short pages before the end).
            if caught_up {
                break;
            }
            let Some(next) = next else {
                break;
            };
            visited.insert(url.clone());
            if visited.contains(&next) {
                return Err(repeated_next(&url));
            }
            url = next;
        }
        events.sort_by_key(|e| e.published);
        Ok(LogPoll {
            events,
            next: checkpoint_out,
        })
    }
}

/// How far back the System Log accepts `since`: Okta answers 400 `E0000053` to a
/// `since` more than 180 days before now (System Log API reference), so the look-back
/// is clamped a few minutes inside that bound (clocks differ).
const LOG_MAX_LOOK_BACK: chrono::Duration = chrono::Duration::days(180);
const LOG_LOOK_BACK_MARGIN: chrono::Duration = chrono::Duration::minutes(5);

/// The `since` to send for a wish to read from `since` at `now` (pure).
pub fn log_since(since: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    since.max(now - LOG_MAX_LOOK_BACK + LOG_LOOK_BACK_MARGIN)
}

/// One System Log event in our terms; `None` for outcomes other than SUCCESS.
fn map_event(e: wire::LogEvent) -> Option<IdpEvent> {
    let result = e.outcome.as_ref().and_then(|o| o.result.as_deref());
    if result.is_some_and(|r| r != "SUCCESS") {
        return None;
    }
    let targets = e.target.unwrap_or_default();
    let user = targets.iter().find(|t| t.kind.as_deref() == Some("User"));
    let group = targets
        .iter()
        .find(|t| t.kind.as_deref() == Some("UserGroup"));
    Some(IdpEvent {
        uuid: e.uuid,
        published: e.published,
        kind: IdpEventKind::from_okta(&e.event_type),
        user_id: user.and_then(|t| t.id.clone()),
        user_login: user.and_then(|t| t.alternate_id.as_deref()).map(Email::new),
        group_id: group.and_then(|t| t.id.clone()),
        group_name: group.and_then(|t| t.display_name.clone()),
        actor: e.actor.and_then(|a| a.alternate_id),
    })
}

/// `crate::idp::bounded` for Okta's reads.
async fn bounded<I, T, F, Fut>(items: Vec<I>, limit: usize, f: F) -> Result<Vec<T>, IdpError>
where
    F: Fn(I) -> Fut,
    Fut: Future<Output = Result<T, IdpError>> + Send + 'static,
    T: Send + 'static,
{
    super::bounded(SERVICE, items, limit, f).await
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items.filter(|s| seen.insert(s.clone())).collect()
}

/// The `rel="next"` target among all `link` header lines (each may hold several
/// comma-separated links), resolved against `current` if relative.
fn next_link(headers: &HeaderMap, current: &str) -> Option<String> {
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        let mut rest = value;
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            let close = after.find('>')?;
            let target = &after[..close];
            let params_all = &after[close + 1..];
            let params_end = params_all.find('<').unwrap_or(params_all.len());
            let params = &params_all[..params_end];
            let is_next = params.split(';').any(|p| {
                let p = p.trim().trim_end_matches(',').trim();
                let Some((k, v)) = p.split_once('=') else {
                    return false;
                };
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            });
            if is_next {
                return match url::Url::parse(target) {
                    Ok(_) => Some(target.to_string()),
                    Err(_) => url::Url::parse(current)
                        .and_then(|c| c.join(target))
                        .ok()
                        .map(String::from),
                };
            }
            rest = &params_all[params_end..];
        }
    }
    None
}

fn repeated_next(url: &str) -> IdpError {
    IdpError::Api {
        service: SERVICE,
        request: format!("GET {}", redact_url(url)),
        reason: "the next-page link points back at a page already read".to_string(),
        class: ErrorClass::Bug,
    }
}

fn parse_body<T: DeserializeOwned>(url: &str, answer: &Answer) -> Result<T, IdpError> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        log_request_id(answer, "Okta answer is not the expected JSON.");
        IdpError::Api {
            service: SERVICE,
            request: format!("GET {}", redact_url(url)),
            reason: format!(
                "{} answer is not the expected JSON: {e}",
                answer.status.as_u16()
            ),
            class: ErrorClass::Bug,
        }
    })
}

/// A non-success answer as an `IdpError::Api`, from Okta's error body when it has one.
fn api_error(method: &str, url: &str, answer: &Answer) -> IdpError {
    log_request_id(answer, "Okta answered with an error.");
    let status = answer.status.as_u16();
    let body: wire::ApiError = serde_json::from_slice(&answer.body).unwrap_or_default();
    let reason = match (body.error_code, body.error_summary) {
        (Some(code), Some(summary)) => format!("{status} {code} {summary}"),
        (Some(code), None) => format!("{status} {code}"),
        (None, Some(summary)) => format!("{status} {summary}"),
        (None, None) => {
            let reason = answer.status.canonical_reason().unwrap_or("");
            format!("{status} {reason}").trim_end().to_string()
        }
    };
    // What the vendor says is an excerpt, with configured secrets masked.
    let reason = crate::redact::excerpt(&reason);
    let class = ErrorClass::from_status(status);
    IdpError::Api {
        service: SERVICE,
        request: format!("{method} {}", redact_url(url)),
        reason,
        class,
    }
}

fn log_request_id(answer: &Answer, message: &str) {
    let request_id = answer
        .headers
        .get("x-okta-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::debug!(
        service = SERVICE,
        status = answer.status.as_u16(),
        request_id,
        url = %answer.url,
        "{message}"
    );
}

/// Escapes a value for a double-quoted SCIM filter string.
fn escape_filter(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn next_link_from_separate_lines_in_any_order() {
        let mut h = HeaderMap::new();
        h.append(
            "link",
            HeaderValue::from_static("<https://a/x?after=2&limit=2>; rel=\"next\""),
        );
        h.append(
            "link",
            HeaderValue::from_static("<https://a/x?limit=2>; rel=\"self\""),
        );
        assert_eq!(
            next_link(&h, "https://a/x").as_deref(),
            Some("https://a/x?after=2&limit=2")
        );
    }

    #[test]
    fn next_link_from_one_joined_line() {
        let mut h = HeaderMap::new();
        h.append(
            "link",
            HeaderValue::from_static("<https://a/x?limit=2>; rel=\"self\", <https://a/x?after=b,c&limit=2>; rel=\"next\""),
        );
        assert_eq!(
            next_link(&h, "https://a/x").as_deref(),
            Some("https://a/x?after=b,c&limit=2")
        );
        let mut only_self = HeaderMap::new();
        only_self.append(
            "link",
            HeaderValue::from_static("<https://a/x?limit=2>; rel=\"self\""),
        );
        assert_eq!(next_link(&only_self, "https://a/x"), None);
    }

    #[test]
    fn log_since_is_clamped_inside_180_days() {
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 7, 12, 0, 0).unwrap();
        let recent = now - chrono::Duration::days(3);
        assert_eq!(log_since(recent, now), recent);
        let old = now - chrono::Duration::days(400);
        let clamped = log_since(old, now);
        assert!(clamped > now - chrono::Duration::days(180));
        assert!(clamped < now - chrono::Duration::days(179));
    }

    #[test]
    fn encodes_filters() {
        assert_eq!(
            encode("profile.name eq \"a b\""),
            "profile.name%20eq%20%22a%20b%22"
        );
        assert_eq!(escape_filter(r#"a"b\c"#), r#"a\"b\\c"#);
    }
}
