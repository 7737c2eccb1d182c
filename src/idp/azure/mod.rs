//! Microsoft Graph client for Entra ID (reference/graph.md): the mapped groups by
//! `displayName` or id, their **direct** members with `accountEnabled`, the groups nested
//! in them (and the people those reach), single users by userPrincipalName or mail, and
//! the directory audit log that dates IdP changes.
//!
//! Why one file (~800 lines): the reads share Graph's `@odata.nextLink` paging, its
//! advanced-query rules and error shapes; auth, delta, provisioning, policy and wire
//! types are in their own files.
//!
//! Contract:
//! - Every request goes through [`crate::http::Http`] with [`policy::GraphPolicy`]
//!   (`Retry-After` on 429/503/504, pacing past 80 % of the resource-unit budget, backoff
//!   on 5xx and timeouts). `/auditLogs/*` has its own `Http`, paced to 4 requests per
//!   10 s (Graph allows 5 per app and tenant, shared with provisioning-log reads). Nothing
//!   here loops on errors; the only repeat is one token renewal after a 401.
//! - Lists follow every `@odata.nextLink` verbatim (an empty page may still carry one)
//!   until there is none, with the same headers on every page. No query scimwatch sends
//!   is an advanced query, so none needs `ConsistencyLevel: eventual`. A nextLink that
//!   repeats a page already read, or points at another host, is an error.
//! - Always `$select` (Graph's default user set omits `accountEnabled`) and `$top=999`. A
//!   user without `accountEnabled` in the answer is an error: status must never be guessed.
//! - A failure is an `IdpError`, never an empty or partial list.
//! - A `displayName` that several groups carry is `Unresolved` with the ids listed, so a
//!   mapping never silently picks one.
//! - Secrets never reach URLs, errors, logs or `Debug`.

mod auth;
mod delta;
mod policy;
mod provisioning;
mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::config::{IdpConfig, IdpCredential, UserAttribute};
use crate::error::ErrorClass;
use crate::http::{encode, redact_url, Answer, Http, RequestStats, RetryConfig};
use crate::idp::{bounded, IdentityProvider, IdpError};
use crate::model::{
    Email, GroupRead, GroupRef, IdpEvent, IdpEventKind, IdpGroup, IdpKind, IdpStatus, IdpUser,
    MappedGroups, NestedGroup, UserLookup,
};

pub use delta::{DeltaRound, Subscription, MAX_DELTA_IDS};
pub use policy::GraphPolicy;

const SERVICE: &str = "graph";
/// Graph's maximum page size for groups, members and users.
const PAGE: u32 = 999;
const AUDIT_PAGE: u32 = 500;
/// `/auditLogs/*`: 5 requests per 10 s per app and tenant; we allow ourselves 4.
const AUDIT_PER_MINUTE: u32 = 24;
const USER_SELECT: &str = "id,displayName,userPrincipalName,mail,accountEnabled";
const GROUP_CONCURRENCY: usize = 4;
const LOOKUP_CONCURRENCY: usize = 8;

/// A group's direct members: the users, and the nested groups as (id, displayName).
type Members = (Vec<IdpUser>, Vec<(String, String)>);

/// An Entra ID tenant through Microsoft Graph. Cheap to clone.
#[derive(Clone)]
pub struct Azure {
    inner: Arc<Inner>,
}

struct Inner {
    /// The Graph base without a trailing slash, e.g. `https://graph.microsoft.com/v1.0`.
    base: String,
    /// `scheme://host[:port]` of `base`: nextLinks must stay on it (they carry our token).
    origin: String,
    http: Http,
    audit_http: Http,
    auth: auth::Auth,
    user_attribute: UserAttribute,
    /// Service principal object ids by app id (they never change for an app).
    service_principals: std::sync::Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Azure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Azure")
            .field("base", &self.inner.base)
            .field("auth", &self.inner.auth)
            .field("user_attribute", &self.inner.user_attribute)
            .finish()
    }
}

impl Azure {
    /// `cfg.url` is the Graph base (default `https://graph.microsoft.com/v1.0`; any path
    /// prefix is kept), the credential's `login_url` the token host.
    pub fn new(
        cfg: &IdpConfig,
        retry: RetryConfig,
        stats: Arc<RequestStats>,
    ) -> Result<Azure, IdpError> {
        let base = cfg.url.trim().trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&base).map_err(|_| IdpError::Auth {
            service: SERVICE,
            what: format!("the Graph base URL {base:?} is not a URL"),
        })?;
        let origin = parsed.origin().ascii_serialization();
        let IdpCredential::Azure(cred) = &cfg.credential else {
            return Err(IdpError::Auth {
                service: SERVICE,
                what: "an Okta credential was given to the Entra ID client".to_string(),
            });
        };
        let auth = auth::Auth::new(cred, &base)?;
        let http = Http::new(
            SERVICE,
            Arc::new(GraphPolicy),
            None,
            retry.clone(),
            stats.clone(),
        );
        let audit_http = Http::new(
            SERVICE,
            Arc::new(GraphPolicy),
            Some(AUDIT_PER_MINUTE),
            retry,
            stats,
        );
        Ok(Azure {
            inner: Arc::new(Inner {
                base,
                origin,
                http,
                audit_http,
                auth,
                user_attribute: cfg.user_attribute,
                service_principals: std::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// One authenticated GET, whatever its status. A 401 drops the token, fetches a new
    /// one and resends once.
    async fn get(&self, http: &Http, endpoint: &str, url: &str) -> Result<Answer, IdpError> {
        let auth = &self.inner.auth;
        let bearer = auth.authorization(&self.inner.http).await?;
        let answer = self.send_get(http, endpoint, url, &bearer).await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            log_request_id(&answer, "Access token refused, fetching a new one.");
            auth.invalidate(&bearer).await;
            let bearer = auth.authorization(&self.inner.http).await?;
            return self.send_get(http, endpoint, url, &bearer).await;
        }
        Ok(answer)
    }

    async fn send_get(
        &self,
        http: &Http,
        endpoint: &str,
        url: &str,
        bearer: &crate::secret::Secret,
    ) -> Result<Answer, IdpError> {
        let build = |client: &reqwest::Client| {
            client
                .get(url)
                .header(AUTHORIZATION, bearer.expose())
                .header(ACCEPT, "application/json")
                .header("client-request-id", auth::guid())
        };
        http.send(endpoint, &build)
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
        http: &Http,
        endpoint: &str,
        url: &str,
    ) -> Result<T, IdpError> {
        let answer = self.get(http, endpoint, url).await?;
        if !answer.status.is_success() {
            return Err(api_error("GET", url, &answer));
        }
        parse_body(url, &answer)
    }

    /// Every item of a collection, following each `@odata.nextLink` until there is none.
    async fn get_all<T: DeserializeOwned>(
        &self,
        http: &Http,
        endpoint: &str,
        first: String,
    ) -> Result<Vec<T>, IdpError> {
        let mut out = Vec::new();
        let mut visited = HashSet::new();
        let mut url = first;
        loop {
            let answer = self.get(http, endpoint, &url).await?;
            if !answer.status.is_success() {
                return Err(api_error("GET", &url, &answer));
            }
            let page: wire::Page<T> = parse_body(&url, &answer)?;
            out.extend(page.value);
            let Some(next) = page.next_link else {
                return Ok(out);
            };
            visited.insert(url.clone());
            if visited.contains(&next) {
                return Err(bad_link(
                    &url,
                    "the @odata.nextLink points back at a page already read",
                ));
            }
            let same_origin = url::Url::parse(&next)
                .is_ok_and(|u| u.origin().ascii_serialization() == self.inner.origin);
            if !same_origin {
                return Err(bad_link(
                    &url,
                    "the @odata.nextLink points away from the Graph host; not following it with our token",
                ));
            }
            url = next;
        }
    }

    /// Groups whose `displayName` is exactly `name` (Graph's `eq` is case-insensitive; we
    /// keep only exact matches, as for Okta).
    async fn groups_named(&self, name: &str) -> Result<Vec<wire::Group>, IdpError> {
        let filter = format!("displayName eq '{}'", name.replace('\'', "''"));
        let url = format!(
            "{}/groups?$filter={}&$select=id,displayName&$top={PAGE}",
            self.inner.base,
            encode(&filter)
        );
        let groups: Vec<wire::Group> = self.get_all(&self.inner.http, "GET /groups", url).await?;
        Ok(groups
            .into_iter()
            .filter(|g| g.display_name.as_deref() == Some(name))
            .collect())
    }

    async fn group_by_id(&self, id: &str) -> Result<Option<wire::Group>, IdpError> {
        let url = format!(
            "{}/groups/{}?$select=id,displayName",
            self.inner.base,
            encode(id)
        );
        let answer = self.get(&self.inner.http, "GET /groups/{id}", &url).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(None),
            // Graph answers 400 for an id that is not a GUID.
            StatusCode::BAD_REQUEST if !looks_like_guid(id) => Ok(None),
            s if s.is_success() => parse_body(&url, &answer).map(Some),
            _ => Err(api_error("GET", &url, &answer)),
        }
    }

    /// Direct members: the users, and the nested groups as (id, displayName).
    async fn members(&self, group_id: &str) -> Result<Members, IdpError> {
        let url = format!(
            "{}/groups/{}/members?$select={USER_SELECT}&$top={PAGE}",
            self.inner.base,
            encode(group_id)
        );
        let items: Vec<wire::DirectoryObject> = self
            .get_all(&self.inner.http, "GET /groups/{id}/members", url.clone())
            .await?;
        let mut users = Vec::new();
        let mut groups = Vec::new();
        for o in items {
            if o.is_user() {
                users.push(self.to_user(o, &url)?);
            } else if o.is_group() {
                let name = o.display_name.clone().unwrap_or_else(|| o.id.clone());
                groups.push((o.id, name));
            } else {
                tracing::debug!(service = SERVICE, group = %group_id, kind = ?o.odata_type, "Member that is neither a user nor a group, not provisioned by Entra to Segment; skipped.");
            }
        }
        Ok((users, groups))
    }

    /// Every user a (nested) group reaches, at any depth.
    async fn transitive_people(&self, group_id: &str) -> Result<Vec<IdpUser>, IdpError> {
        let url = format!(
            "{}/groups/{}/transitiveMembers?$select={USER_SELECT}&$top={PAGE}",
            self.inner.base,
            encode(group_id)
        );
        let items: Vec<wire::DirectoryObject> = self
            .get_all(
                &self.inner.http,
                "GET /groups/{id}/transitiveMembers",
                url.clone(),
            )
            .await?;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for o in items.into_iter().filter(wire::DirectoryObject::is_user) {
            if seen.insert(o.id.clone()) {
                out.push(self.to_user(o, &url)?);
            }
        }
        Ok(out)
    }

    fn to_user(&self, u: wire::DirectoryObject, url: &str) -> Result<IdpUser, IdpError> {
        let Some(enabled) = u.account_enabled else {
            return Err(IdpError::Api {
                service: SERVICE,
                request: format!("GET {}", redact_url(url)),
                reason: format!(
                    "user {} came back without accountEnabled (was $select honoured?); refusing to guess their status",
                    u.id
                ),
                class: ErrorClass::Bug,
            });
        };
        let upn = u.user_principal_name.unwrap_or_default();
        let key = match self.inner.user_attribute {
            UserAttribute::Mail | UserAttribute::Email => match &u.mail {
                Some(m) if !m.trim().is_empty() => Email::new(m),
                _ => {
                    tracing::warn!(service = SERVICE, user = %u.id, "Entra user has no mail, keyed by userPrincipalName instead.");
                    Email::new(&upn)
                }
            },
            UserAttribute::UserPrincipalName | UserAttribute::Login => Email::new(&upn),
        };
        Ok(IdpUser {
            id: u.id,
            login: upn,
            key,
            status: IdpStatus::from_entra(enabled),
        })
    }

    async fn lookup_one(&self, key: Email) -> Result<UserLookup, IdpError> {
        let base = &self.inner.base;
        match self.inner.user_attribute {
            UserAttribute::Mail | UserAttribute::Email => {
                let filter = format!("mail eq '{}'", key.as_str().replace('\'', "''"));
                let url = format!(
                    "{base}/users?$filter={}&$select={USER_SELECT}&$top={PAGE}",
                    encode(&filter)
                );
                let page: wire::Page<wire::DirectoryObject> =
                    self.get_json(&self.inner.http, "GET /users", &url).await?;
                let count = page.value.len();
                let Some(first) = page.value.into_iter().next() else {
                    return Ok(UserLookup::NotFound);
                };
                if count > 1 {
                    tracing::warn!(service = SERVICE, mail = %key, count, "Several Entra users carry this mail, taking the first.");
                }
                Ok(UserLookup::Found(self.to_user(first, &url)?))
            }
            UserAttribute::UserPrincipalName | UserAttribute::Login => {
                let url = format!(
                    "{base}/users/{}?$select={USER_SELECT}",
                    encode(key.as_str())
                );
                let answer = self.get(&self.inner.http, "GET /users/{id}", &url).await?;
                if answer.status == StatusCode::NOT_FOUND {
                    return Ok(UserLookup::NotFound);
                }
                if !answer.status.is_success() {
                    return Err(api_error("GET", &url, &answer));
                }
                let user: wire::DirectoryObject = parse_body(&url, &answer)?;
                Ok(UserLookup::Found(self.to_user(user, &url)?))
            }
        }
    }

    /// Directory audit records since `since`, as IdP events (oldest first).
    async fn audits_since(&self, since: DateTime<Utc>) -> Result<Vec<IdpEvent>, IdpError> {
        let filter = format!(
            "activityDateTime ge {}",
            since.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        let url = format!(
            "{}/auditLogs/directoryAudits?$filter={}&$top={AUDIT_PAGE}",
            self.inner.base,
            encode(&filter)
        );
        let records: Vec<wire::DirectoryAudit> = self
            .get_all(
                &self.inner.audit_http,
                "GET /auditLogs/directoryAudits",
                url,
            )
            .await?;
        let mut seen = HashSet::new();
        // Graph lists audits newest first: reversed, records of the same instant keep
        // their order when sorted oldest first below.
        let mut events: Vec<IdpEvent> = records
            .into_iter()
            .rev()
            .filter(|r| seen.insert(r.id.clone()))
            .filter_map(map_audit)
            .collect();
        events.sort_by_key(|e| e.published);
        Ok(events)
    }
}

impl IdentityProvider for Azure {
    fn kind(&self) -> IdpKind {
        IdpKind::AzureAd
    }

    async fn read_groups(&self, refs: &[GroupRef]) -> Result<Vec<(GroupRef, GroupRead)>, IdpError> {
        Ok(self.read_mapped_groups(refs).await?.groups)
    }

    async fn read_mapped_groups(&self, refs: &[GroupRef]) -> Result<MappedGroups, IdpError> {
        let names: Vec<String> = dedup(refs.iter().filter_map(|r| match r {
            GroupRef::Name(n) => Some(n.clone()),
            GroupRef::Id(_) => None,
        }));
        let ids: Vec<String> = dedup(refs.iter().filter_map(|r| match r {
            GroupRef::Id(i) => Some(i.clone()),
            GroupRef::Name(_) => None,
        }));
        let me = self.clone();
        let by_name = bounded(
            SERVICE,
            names.clone(),
            GROUP_CONCURRENCY,
            move |n: String| {
                let me = me.clone();
                async move { me.groups_named(&n).await }
            },
        )
        .await?;
        let by_name: HashMap<String, Vec<wire::Group>> = names.into_iter().zip(by_name).collect();
        let me = self.clone();
        let by_id = bounded(SERVICE, ids.clone(), GROUP_CONCURRENCY, move |i: String| {
            let me = me.clone();
            async move { me.group_by_id(&i).await }
        })
        .await?;
        let by_id: HashMap<String, Option<wire::Group>> = ids.into_iter().zip(by_id).collect();

        let resolved: Vec<Result<(String, String), String>> = refs
            .iter()
            .map(|r| match r {
                GroupRef::Name(n) => match by_name.get(n).map(Vec::as_slice) {
                    Some([one]) => Ok((one.id.clone(), n.clone())),
                    Some(many) if many.len() > 1 => {
                        let ids: Vec<&str> = many.iter().map(|g| g.id.as_str()).collect();
                        Err(format!(
                            "the name is ambiguous: {} Entra ID groups are named {n:?} (ids {}); map it by idp_group_id",
                            many.len(),
                            ids.join(", ")
                        ))
                    }
                    _ => Err(format!("no Entra ID group is named {n:?}")),
                },
                GroupRef::Id(i) => match by_id.get(i) {
                    Some(Some(g)) => Ok((g.id.clone(), g.display_name.clone().unwrap_or_default())),
                    _ => Err(format!("no Entra ID group has id {i:?}")),
                },
            })
            .collect();

        let wanted: Vec<String> = dedup(
            resolved
                .iter()
                .filter_map(|r| r.as_ref().ok().map(|(id, _)| id.clone())),
        );
        let me = self.clone();
        let lists = bounded(
            SERVICE,
            wanted.clone(),
            GROUP_CONCURRENCY,
            move |id: String| {
                let me = me.clone();
                async move { me.members(&id).await }
            },
        )
        .await?;
        let lists: HashMap<String, Members> = wanted.into_iter().zip(lists).collect();

        // The people each nested group reaches, each nested group read once.
        let nested_ids: Vec<String> = dedup(
            lists
                .values()
                .flat_map(|(_, groups)| groups.iter().map(|(id, _)| id.clone())),
        );
        let me = self.clone();
        let people = bounded(
            SERVICE,
            nested_ids.clone(),
            GROUP_CONCURRENCY,
            move |id: String| {
                let me = me.clone();
                async move { me.transitive_people(&id).await }
            },
        )
        .await?;
        let people: HashMap<String, Vec<IdpUser>> = nested_ids.into_iter().zip(people).collect();

        let mut nested = BTreeMap::new();
        for (id, (_, groups)) in &lists {
            if groups.is_empty() {
                continue;
            }
            let inner: Vec<NestedGroup> = groups
                .iter()
                .map(|(nid, name)| NestedGroup {
                    id: nid.clone(),
                    name: name.clone(),
                    people: people.get(nid).cloned().unwrap_or_default(),
                })
                .collect();
            nested.insert(id.clone(), inner);
        }
        let groups = refs
            .iter()
            .zip(resolved)
            .map(|(r, res)| {
                let read = match res {
                    Ok((id, name)) => GroupRead::Found(IdpGroup {
                        members: lists.get(&id).map(|(u, _)| u.clone()).unwrap_or_default(),
                        id,
                        name,
                    }),
                    Err(reason) => GroupRead::Unresolved { reason },
                };
                (r.clone(), read)
            })
            .collect();
        Ok(MappedGroups { groups, nested })
    }

    async fn lookup_users(&self, keys: &[Email]) -> Result<BTreeMap<Email, UserLookup>, IdpError> {
        let keys: Vec<Email> = keys
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let me = self.clone();
        let found = bounded(
            SERVICE,
            keys.clone(),
            LOOKUP_CONCURRENCY,
            move |key: Email| {
                let me = me.clone();
                async move { me.lookup_one(key).await }
            },
        )
        .await?;
        Ok(keys.into_iter().zip(found).collect())
    }

    async fn events_since(&self, since: DateTime<Utc>) -> Result<Vec<IdpEvent>, IdpError> {
        self.audits_since(since).await
    }
}

/// One directory audit record in our terms; `None` for failures and activities the core
/// does not use. Group ids and names come JSON-quoted in the member target's
/// `modifiedProperties` (`newValue` on add, `oldValue` on remove).
fn map_audit(r: wire::DirectoryAudit) -> Option<IdpEvent> {
    if r.result
        .as_deref()
        .is_some_and(|x| !x.eq_ignore_ascii_case("success"))
    {
        return None;
    }
    let activity = r.activity_display_name.as_deref().unwrap_or("");
    let targets = &r.target_resources;
    let user = targets.iter().find(|t| {
        t.kind
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case("user"))
    });
    let group_target = targets.iter().find(|t| {
        t.kind
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case("group"))
    });
    let prop = |name: &str, new: bool| -> Option<String> {
        let t = user?;
        let p = t
            .modified_properties
            .iter()
            .find(|p| p.display_name.as_deref() == Some(name))?;
        let v = if new { &p.new_value } else { &p.old_value };
        v.as_deref().map(unquote).filter(|s| !s.is_empty())
    };
    let kind = match activity {
        "Add member to group" => IdpEventKind::MembershipAdd,
        "Remove member from group" => IdpEventKind::MembershipRemove,
        "Disable account" => IdpEventKind::UserDeactivate,
        "Enable account" => IdpEventKind::UserReactivate,
        "Delete user" | "Hard delete user" => IdpEventKind::UserDeleteInitiated,
        "Add user" => IdpEventKind::UserCreate,
        "Add group" => IdpEventKind::GroupCreate,
        "Update user" => match prop("AccountEnabled", true).as_deref() {
            Some(v) if v.contains("false") => IdpEventKind::UserDeactivate,
            Some(v) if v.contains("true") => IdpEventKind::UserReactivate,
            _ => return None,
        },
        _ => return None,
    };
    // A group added to a group has a Group member target and no User: not a person's event.
    if matches!(
        kind,
        IdpEventKind::MembershipAdd | IdpEventKind::MembershipRemove
    ) && user.is_none()
    {
        return None;
    }
    let added = kind == IdpEventKind::MembershipAdd;
    let (group_id, group_name) = match kind {
        IdpEventKind::MembershipAdd | IdpEventKind::MembershipRemove => (
            prop("Group.ObjectID", added).or_else(|| group_target.and_then(|g| g.id.clone())),
            prop("Group.DisplayName", added)
                .or_else(|| group_target.and_then(|g| g.display_name.clone())),
        ),
        IdpEventKind::GroupCreate => (
            group_target.and_then(|g| g.id.clone()),
            group_target.and_then(|g| g.display_name.clone()),
        ),
        _ => (None, None),
    };
    let actor = r.initiated_by.as_ref().and_then(|i| {
        i.user
            .as_ref()
            .and_then(|u| u.user_principal_name.clone().or_else(|| u.id.clone()))
            .or_else(|| {
                i.app
                    .as_ref()
                    .and_then(|a| a.display_name.clone().or_else(|| a.id.clone()))
            })
    });
    Some(IdpEvent {
        uuid: r.id,
        published: r.activity_date_time,
        kind,
        user_id: user.and_then(|u| u.id.clone()),
        user_login: user
            .and_then(|u| u.user_principal_name.as_deref())
            .map(Email::new),
        group_id,
        group_name,
        actor,
    })
}

/// `"\"abc\""` → `abc` (Graph JSON-quotes modifiedProperties values).
fn unquote(s: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::String(v)) => v,
        _ => s.trim().trim_matches('"').to_string(),
    }
}

fn looks_like_guid(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
        })
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items.filter(|s| seen.insert(s.clone())).collect()
}

fn bad_link(url: &str, reason: &str) -> IdpError {
    IdpError::Api {
        service: SERVICE,
        request: format!("GET {}", redact_url(url)),
        reason: reason.to_string(),
        class: ErrorClass::Bug,
    }
}

fn parse_body<T: DeserializeOwned>(url: &str, answer: &Answer) -> Result<T, IdpError> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        log_request_id(answer, "Graph answer is not the expected JSON.");
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

/// A non-success answer as an `IdpError::Api`, from Graph's error body when it has one.
fn api_error(method: &str, url: &str, answer: &Answer) -> IdpError {
    log_request_id(answer, "Graph answered with an error.");
    let status = answer.status.as_u16();
    let body: wire::ApiError = serde_json::from_slice(&answer.body).unwrap_or_default();
    let detail = body.error.unwrap_or_default();
    let reason = match (detail.code, detail.message) {
        (Some(code), Some(msg)) => format!("{status} {code} {msg}"),
        (Some(code), None) => format!("{status} {code}"),
        (None, Some(msg)) => format!("{status} {msg}"),
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
    let header = |name: &str| {
        answer
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string()
    };
    tracing::debug!(
        service = SERVICE,
        status = answer.status.as_u16(),
        request_id = %header("request-id"),
        client_request_id = %header("client-request-id"),
        url = %answer.url,
        "{message}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(json: serde_json::Value) -> Option<IdpEvent> {
        map_audit(serde_json::from_value(json).unwrap())
    }

    #[test]
    fn add_member_audit_names_user_and_group() {
        let ev = audit(serde_json::json!({
            "id": "Directory_1", "category": "GroupManagement", "activityDisplayName": "Add member to group",
            "activityDateTime": "2026-01-05T10:11:12Z", "loggedByService": "Core Directory", "result": "success",
            "initiatedBy": {"user": {"id": "a1", "userPrincipalName": "admin@contoso.com"}, "app": null},
            "targetResources": [
                {"id": "u1", "type": "User", "userPrincipalName": "Alice@contoso.com",
                 "modifiedProperties": [
                    {"displayName": "Group.ObjectID", "oldValue": null, "newValue": "\"g1\""},
                    {"displayName": "Group.DisplayName", "oldValue": null, "newValue": "\"Segment-Admins\""}]},
                {"id": "g1", "type": "Group"}],
            "unknownField": {"x": 1}
        }))
        .unwrap();
        assert_eq!(ev.kind, IdpEventKind::MembershipAdd);
        assert_eq!(ev.user_id.as_deref(), Some("u1"));
        assert_eq!(ev.user_login, Some(Email::new("alice@contoso.com")));
        assert_eq!(ev.group_id.as_deref(), Some("g1"));
        assert_eq!(ev.group_name.as_deref(), Some("Segment-Admins"));
        assert_eq!(ev.actor.as_deref(), Some("admin@contoso.com"));
    }

    #[test]
    fn remove_reads_old_values_and_failures_are_skipped() {
        let rec = |result: &str| {
            serde_json::json!({
                "id": "Directory_2", "activityDisplayName": "Remove member from group",
                "activityDateTime": "2026-01-05T10:11:12Z", "result": result,
                "targetResources": [{"id": "u1", "type": "User", "userPrincipalName": "a@x",
                    "modifiedProperties": [{"displayName": "Group.ObjectID", "oldValue": "\"g9\"", "newValue": null}]}]
            })
        };
        let ev = audit(rec("success")).unwrap();
        assert_eq!(ev.kind, IdpEventKind::MembershipRemove);
        assert_eq!(ev.group_id.as_deref(), Some("g9"));
        assert!(audit(rec("failure")).is_none());
    }

    #[test]
    fn account_enabled_updates_and_nested_group_adds() {
        let ev = audit(serde_json::json!({
            "id": "Directory_3", "activityDisplayName": "Update user", "activityDateTime": "2026-01-05T10:11:12Z",
            "result": "success", "initiatedBy": {"app": {"displayName": "HR sync"}},
            "targetResources": [{"id": "u1", "type": "User", "userPrincipalName": "a@x",
                "modifiedProperties": [{"displayName": "AccountEnabled", "oldValue": "[true]", "newValue": "[false]"}]}]
        }))
        .unwrap();
        assert_eq!(ev.kind, IdpEventKind::UserDeactivate);
        assert_eq!(ev.actor.as_deref(), Some("HR sync"));
        let nested = audit(serde_json::json!({
            "id": "Directory_4", "activityDisplayName": "Add member to group", "activityDateTime": "2026-01-05T10:11:12Z",
            "result": "success", "targetResources": [{"id": "g2", "type": "Group", "displayName": "Contractors"}]
        }));
        assert!(nested.is_none());
    }

    #[test]
    fn guids() {
        assert!(looks_like_guid("37de1ae3-408f-4702-8636-20824abda004"));
        assert!(!looks_like_guid("00g1owners"));
    }
}
