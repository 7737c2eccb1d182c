//! Segment Public API client: the reads one pass needs from one workspace.
//!
//! Why one file (~900 lines, a third of it the cost notes and tests): every read shares
//! the envelope, cursor and concurrency rules below, and they change together.
//!
//! Contract:
//! - Every request goes through [`crate::http::Http`] with [`SegmentPolicy`] (429 waits on
//!   `Retry-After`, then `msBeforeNext`, then `X-RateLimit-Reset`; pacing when
//!   `X-RateLimit-Remaining` runs low; 5xx backoff). Nothing here loops on errors.
//! - Requests carry `Authorization: Bearer <token>` and `Accept: application/json`. Any
//!   `application/json` or `application/…+json` answer is read; `{"data":…}` is success,
//!   `{"errors":[…]}` failure, and we branch on the HTTP status, never on `errors[].type`.
//! - Lists are walked with dot-notation pagination (`pagination.count=1000`, then
//!   `pagination.cursor=<next>`) until `next` is absent or null. A `next` that repeats a
//!   cursor already seen in the walk is an error: never a loop, never a silent truncation.
//!   `/labels` is unpaged; an `/audit-events` answer without `pagination` is one page.
//! - [`SegmentClient::read_workspace`] returns a whole snapshot or an error, never part of
//!   one. Per-group and per-user reads run 8 at a time; the first failure fails the read.
//! - The token never appears in `Debug`, logs or errors.
//!
//! # Request cost of one `read_workspace`
//!
//! With `p(n) = max(1, ⌈n/1000⌉)` (an empty list still costs its one request):
//!
//! ```text
//!   1                                  GET /                 (workspace)
//! + p(roles)                           GET /roles
//! + p(sources)         if needed       GET /sources
//! + p(warehouses)      if needed       GET /warehouses
//! + Σ_t p(functions_t) if needed       GET /functions?resourceType=t, t ∈ SOURCE,
//!                                      DESTINATION, INSERT_SOURCE, INSERT_DESTINATION
//! + p(spaces)          if needed       GET /spaces
//! + 1                  if needed       GET /labels           (unpaged)
//! + p(groups)                          GET /groups           (carries each group's permissions)
//! + groups without inline permissions  GET /groups/{id}      (0 when the list carries them)
//! + Σ_g p(members_g)                   GET /groups/{id}/users
//! + p(users)                           GET /users            (no permissions in the list)
//! + users                              GET /users/{id}       (direct permissions, one each)
//! + p(audit events)                    GET /audit-events     (one stream, every type)
//! ```
//!
//! The audit trail is read without a `resourceType` filter: Segment does not document
//! the strings its IAM events carry there, so events are classified on our side
//! (`super::audit`), by type, then by the ids this read found, then by that string as a
//! hint. The stream also carries non-IAM events (sources, functions, …), which are
//! dropped after reading.
//!
//! `GET /users/{id}` per user is the floor: the API has no bulk read of user permissions
//! (there is no `GET /users/{id}/permissions`, and `GET /users` omits them). Should a
//! `GET /users` item ever carry `permissions`, it is used and that user's call skipped.

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::de::DeserializeOwned;
use tokio::task::JoinSet;

use super::audit::{classify, Known};
use super::error::{error_message, is_json, SegmentError};
use super::policy::SegmentPolicy;
use super::wire;
use crate::config::WorkspaceConfig;
use crate::http::{Answer, Http, RequestStats, RetryConfig};
use crate::model::{
    AuditEvent, Catalog, CatalogItem, CatalogNeeds, Email, Grant, Label, Resource, ResourceType,
    Role, SegmentGroup, SegmentUser, WorkspaceSnapshot,
};
use crate::secret::Secret;

/// Items per page: the documented maximum since March 2024 (the server may return fewer).
const PAGE_SIZE: &str = "1000";
/// Per-user and per-group requests in flight at once.
const CONCURRENCY: usize = 8;
/// A walk longer than this (10 million items) is a server bug, not a workspace.
const MAX_PAGES: usize = 10_000;
/// `GET /functions` needs a `resourceType`; these are every kind the spec lists.
const FUNCTION_TYPES: [&str; 4] = [
    "SOURCE",
    "DESTINATION",
    "INSERT_SOURCE",
    "INSERT_DESTINATION",
];

/// `GET /`: the workspace the token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceInfo {
    pub id: String,
    pub slug: String,
    pub name: String,
}

/// Reads one Segment workspace. Cheap to clone-share: the state sits behind an `Arc`.
#[derive(Clone)]
pub struct SegmentClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SegmentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentClient")
            .field("workspace", &self.inner.workspace)
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// The config workspace name.
    workspace: String,
    /// "segment workspace <name>", for errors.
    service: String,
    /// `api_url` without a trailing slash.
    base: String,
    token: Secret,
    http: Http,
    /// IAM writes: Segment allows 60 a minute per endpoint; paced to that, burst 6.
    writes: Http,
}

impl SegmentClient {
    pub fn new(
        ws: &WorkspaceConfig,
        retry: RetryConfig,
        stats: Arc<RequestStats>,
    ) -> SegmentClient {
        // Pacing is header-driven (SegmentPolicy): Segment's read budget is unpublished,
        // so a fixed token bucket would either waste time or guess wrong.
        let http = Http::new(
            "segment",
            Arc::new(SegmentPolicy),
            None,
            retry.clone(),
            stats.clone(),
        );
        let writes = Http::new("segment", Arc::new(SegmentPolicy), Some(60), retry, stats);
        SegmentClient {
            inner: Arc::new(Inner {
                workspace: ws.name.clone(),
                service: format!("segment workspace {}", ws.name),
                base: ws.api_url.trim_end_matches('/').to_string(),
                token: ws.token.clone(),
                http,
                writes,
            }),
        }
    }

    /// Workspace info and the catalog kinds `needs` asks for (roles always).
    pub async fn read_catalog(
        &self,
        needs: CatalogNeeds,
    ) -> Result<(WorkspaceInfo, Catalog), SegmentError> {
        let info = self.inner.workspace_info().await?;
        let catalog = self.inner.catalog(needs).await?;
        Ok((info, catalog))
    }

    /// Audit events about users and user groups from `since` to now (what the daemon's
    /// audit-trail poller reads between full passes): one stream, classified on our side
    /// without knowing the workspace's ids, so a "Policy Created" whose subject neither
    /// its type nor its `resourceType` tells comes back as `iam`.
    pub async fn audit_events(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<AuditEvent>, SegmentError> {
        self.inner.audit(since, &|_| None).await
    }

    /// [`audit_events`](Self::audit_events), with the user and group ids a caller already
    /// knows, which classify the events whose type does not name their subject.
    pub async fn audit_events_knowing(
        &self,
        since: DateTime<Utc>,
        users: &HashSet<String>,
        groups: &HashSet<String>,
    ) -> Result<Vec<AuditEvent>, SegmentError> {
        self.inner
            .audit(since, &|id| known_in(id, users, groups))
            .await
    }

    /// Everything a pass needs: workspace, catalog, users with direct permissions, groups
    /// with permissions and members, audit events with timestamp >= audit_since.
    pub async fn read_workspace(
        &self,
        needs: CatalogNeeds,
        audit_since: DateTime<Utc>,
    ) -> Result<WorkspaceSnapshot, SegmentError> {
        let inner = &self.inner;
        // For the progress display: the workspace, roles, groups, users and audit trail
        // (one page each at least), then per group and per user below.
        let stats = inner.http.stats().clone();
        stats.expect_requests("segment", 5);
        let info = inner.workspace_info().await?;
        let catalog = inner.catalog(needs).await?;

        let groups: Vec<wire::UserGroupV1> = inner
            .list("GET /groups", "/groups", &[], "userGroups")
            .await?;
        // A member page per group, and its permissions when the list left them out.
        let per_group: usize = groups
            .iter()
            .map(|g| if g.permissions.is_some() { 1 } else { 2 })
            .sum();
        stats.expect_requests("segment", per_group as u64);
        let ws_id = Arc::new(info.id.clone());
        let groups = self
            .bounded(groups, {
                let ws_id = ws_id.clone();
                move |inner, g| {
                    let ws_id = ws_id.clone();
                    async move { inner.group(g, &ws_id).await }
                }
            })
            .await?;

        let users: Vec<wire::UserV1> = inner.list("GET /users", "/users", &[], "users").await?;
        stats.expect_requests("segment", users.len() as u64);
        let users = self
            .bounded(users, move |inner, u| {
                let ws_id = ws_id.clone();
                async move { inner.user(u, &ws_id).await }
            })
            .await?;

        let user_ids: HashSet<String> = users.iter().map(|u| u.id.clone()).collect();
        let group_ids: HashSet<String> = groups.iter().map(|g| g.id.clone()).collect();
        let audit = inner
            .audit(audit_since, &|id| known_in(id, &user_ids, &group_ids))
            .await?;
        tracing::info!(
            workspace = %inner.workspace,
            users = users.len(),
            groups = groups.len(),
            audit_events = audit.len(),
            "Read the Segment workspace."
        );
        Ok(WorkspaceSnapshot {
            name: inner.workspace.clone(),
            id: info.id,
            slug: info.slug,
            catalog,
            users,
            groups,
            audit,
        })
    }

    /// One group by id, with its permissions and members (`None` when Segment answers
    /// 404: the group is gone). For the daemon's targeted passes.
    pub async fn read_group(
        &self,
        id: &str,
        ws_id: &str,
    ) -> Result<Option<SegmentGroup>, SegmentError> {
        let path = format!("/groups/{}", segment(id));
        let group = match self.inner.get("GET /groups/{id}", &path, &[]).await {
            Ok((request, data)) => {
                let out: wire::UserGroupOut = self.inner.decode(&request, data, "userGroup")?;
                let mut g = out.user_group;
                g.permissions = Some(g.permissions.unwrap_or_default());
                g
            }
            Err(SegmentError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        match self.inner.clone().group(group, ws_id).await {
            Ok(g) => Ok(Some(g)),
            Err(SegmentError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One user by id with their direct permissions (`None` on 404: no longer a member).
    pub async fn read_user(
        &self,
        id: &str,
        ws_id: &str,
    ) -> Result<Option<SegmentUser>, SegmentError> {
        let stub = wire::UserV1 {
            id: id.to_string(),
            name: None,
            email: String::new(),
            permissions: None,
        };
        match self.inner.clone().user(stub, ws_id).await {
            Ok(u) => Ok(Some(u)),
            Err(SegmentError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the whole permission list of a group (`target` = `group`) or a user's
    /// direct permissions (`user`): `PUT /groups/{id}/permissions` or
    /// `PUT /users/{id}/permissions`, one call, so nothing is ever half-written. Paced
    /// within Segment's 60 IAM writes a minute; a PUT is idempotent, so retrying a 5xx
    /// is safe.
    pub async fn replace_permissions(
        &self,
        target: &str,
        id: &str,
        permissions: &[crate::reconcile::finding::GrantView],
    ) -> Result<(), SegmentError> {
        let (endpoint, path) = match target {
            "group" => (
                "PUT /groups/{id}/permissions",
                format!("/groups/{}/permissions", segment(id)),
            ),
            _ => (
                "PUT /users/{id}/permissions",
                format!("/users/{}/permissions", segment(id)),
            ),
        };
        let body = wire::ReplacePermissions {
            permissions: permissions
                .iter()
                .map(|g| wire::PermissionInput {
                    role_id: &g.role_id,
                    resources: g
                        .resources
                        .iter()
                        .map(|r| wire::ResourceInput {
                            id: &r.id,
                            kind: r.kind.as_str(),
                            labels: r.labels.as_ref().map(|labels| {
                                labels
                                    .iter()
                                    .map(|l| wire::LabelInput {
                                        key: &l.key,
                                        value: &l.value,
                                    })
                                    .collect()
                            }),
                        })
                        .collect(),
                })
                .collect(),
        };
        let body = serde_json::to_string(&body).map_err(|e| SegmentError::Internal {
            service: self.inner.service.clone(),
            what: format!("encoding the permissions: {e}"),
        })?;
        let inner = &self.inner;
        let url = inner.url(&path, &[]);
        let request = format!("PUT {}", crate::http::redact_url(&url));
        let auth = format!("Bearer {}", inner.token.expose());
        let build = |c: &reqwest::Client| {
            c.put(&url)
                .header(AUTHORIZATION, &auth)
                .header(ACCEPT, "application/json")
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone())
        };
        let answer = inner
            .writes
            .send(endpoint, &build)
            .await
            .map_err(|source| SegmentError::Transport {
                service: inner.service.clone(),
                request: request.clone(),
                source,
            })?;
        inner.read(&request, answer)?;
        Ok(())
    }

    /// The names of the workspace's user groups (one paged list; no members or
    /// permissions): `validate`'s "did you mean" for IdP group names, since the IdP pushes
    /// each group under its real name.
    pub async fn group_names(&self) -> Result<Vec<String>, SegmentError> {
        let groups: Vec<wire::UserGroupV1> = self
            .inner
            .list("GET /groups", "/groups", &[], "userGroups")
            .await?;
        Ok(groups.into_iter().map(|g| g.name).collect())
    }

    /// The workspace's members (ids and emails; no permissions).
    pub async fn list_users(&self) -> Result<Vec<(String, Email)>, SegmentError> {
        let users: Vec<wire::UserV1> = self
            .inner
            .list("GET /users", "/users", &[], "users")
            .await?;
        Ok(users
            .into_iter()
            .map(|u| (u.id, Email::new(&u.email)))
            .collect())
    }

    /// Runs `f` over `items`, [`CONCURRENCY`] at a time, keeping the input order. The
    /// first error wins; the rest are cancelled (dropping the `JoinSet` aborts them).
    async fn bounded<I, T, F, Fut>(&self, items: Vec<I>, f: F) -> Result<Vec<T>, SegmentError>
    where
        F: Fn(Arc<Inner>, I) -> Fut,
        Fut: Future<Output = Result<T, SegmentError>> + Send + 'static,
        T: Send + 'static,
    {
        let mut out: Vec<Option<T>> = std::iter::repeat_with(|| None).take(items.len()).collect();
        let mut pending = items.into_iter().enumerate();
        let mut set = JoinSet::new();
        loop {
            while set.len() < CONCURRENCY {
                let Some((i, item)) = pending.next() else {
                    break;
                };
                let fut = f(self.inner.clone(), item);
                set.spawn(async move { (i, fut.await) });
            }
            match set.join_next().await {
                None => break,
                Some(Ok((i, result))) => {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = Some(result?);
                    }
                }
                Some(Err(e)) => {
                    return Err(SegmentError::Internal {
                        service: self.inner.service.clone(),
                        what: e.to_string(),
                    })
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}

impl Inner {
    async fn workspace_info(&self) -> Result<WorkspaceInfo, SegmentError> {
        let (request, data) = self.get("GET /", "/", &[]).await?;
        let out: wire::WorkspaceOut = self.decode(&request, data, "workspace")?;
        Ok(WorkspaceInfo {
            id: out.workspace.id,
            slug: out.workspace.slug,
            name: out.workspace.name,
        })
    }

    async fn catalog(&self, needs: CatalogNeeds) -> Result<Catalog, SegmentError> {
        let mut catalog = Catalog::default();
        let roles: Vec<wire::RoleV1> = self.list("GET /roles", "/roles", &[], "roles").await?;
        catalog.roles = roles
            .into_iter()
            .map(|r| Role {
                id: r.id,
                name: r.name,
            })
            .collect();
        let mut labels: BTreeSet<Label> = BTreeSet::new();
        if needs.sources {
            let sources: Vec<wire::SourceV1> = self
                .list("GET /sources", "/sources", &[], "sources")
                .await?;
            catalog.sources = sources
                .into_iter()
                .map(|s| {
                    let item_labels = labels_of(s.labels);
                    labels.extend(item_labels.iter().cloned());
                    CatalogItem {
                        id: s.id,
                        slug: s.slug,
                        name: s.name,
                        labels: item_labels,
                    }
                })
                .collect();
        }
        if needs.warehouses {
            let warehouses: Vec<wire::WarehouseV1> = self
                .list("GET /warehouses", "/warehouses", &[], "warehouses")
                .await?;
            catalog.warehouses = warehouses
                .into_iter()
                .map(|w| CatalogItem {
                    name: w.display_name(),
                    id: w.id,
                    slug: None,
                    labels: BTreeSet::new(),
                })
                .collect();
        }
        if needs.functions {
            let mut seen = HashSet::new();
            for kind in FUNCTION_TYPES {
                let functions: Vec<wire::FunctionV1> = self
                    .list(
                        "GET /functions",
                        "/functions",
                        &[("resourceType", kind.to_string())],
                        "functions",
                    )
                    .await?;
                for f in functions {
                    let Some(id) = f.id else { continue };
                    if seen.insert(id.clone()) {
                        catalog.functions.push(CatalogItem {
                            id,
                            slug: None,
                            name: f.display_name.or(f.name),
                            labels: BTreeSet::new(),
                        });
                    }
                }
            }
        }
        if needs.spaces {
            let spaces: Vec<wire::SpaceV1> =
                self.list("GET /spaces", "/spaces", &[], "spaces").await?;
            catalog.spaces = spaces
                .into_iter()
                .map(|s| CatalogItem {
                    id: s.id,
                    slug: s.slug,
                    name: s.name,
                    labels: BTreeSet::new(),
                })
                .collect();
        }
        if needs.labels {
            let (request, data) = self.get("GET /labels", "/labels", &[]).await?;
            let listed: Vec<wire::LabelV1> = self.take(&request, data, "labels")?;
            labels.extend(labels_of(Some(listed)));
        }
        catalog.labels = labels.into_iter().collect();
        Ok(catalog)
    }

    /// A group with its permissions (inline from the list, else `GET /groups/{id}`) and
    /// its members (every page of `GET /groups/{id}/users`).
    async fn group(
        self: Arc<Self>,
        g: wire::UserGroupV1,
        ws_id: &str,
    ) -> Result<SegmentGroup, SegmentError> {
        let path = format!("/groups/{}", segment(&g.id));
        let (permissions, request) = match g.permissions {
            Some(p) => (p, format!("GET {}/groups", self.base)),
            None => {
                let (request, data) = self.get("GET /groups/{id}", &path, &[]).await?;
                let out: wire::UserGroupOut = self.decode(&request, data, "userGroup")?;
                (out.user_group.permissions.unwrap_or_default(), request)
            }
        };
        let grants = self.grants(&request, permissions, ws_id)?;
        let members: Vec<wire::MinimalUserV1> = self
            .list(
                "GET /groups/{id}/users",
                &format!("{path}/users"),
                &[],
                "users",
            )
            .await?;
        Ok(SegmentGroup {
            id: g.id,
            name: g.name,
            grants,
            members: members.iter().map(|m| Email::new(&m.email)).collect(),
        })
    }

    /// A user with their direct permissions (inline from the list, else `GET /users/{id}`).
    async fn user(
        self: Arc<Self>,
        u: wire::UserV1,
        ws_id: &str,
    ) -> Result<SegmentUser, SegmentError> {
        let path = format!("/users/{}", segment(&u.id));
        let (user, request) = match u.permissions {
            Some(_) => (u, format!("GET {}/users", self.base)),
            None => {
                let (request, data) = self.get("GET /users/{id}", &path, &[]).await?;
                let out: wire::UserOut = self.decode(&request, data, "user")?;
                (out.user, request)
            }
        };
        let direct = self.grants(&request, user.permissions.unwrap_or_default(), ws_id)?;
        Ok(SegmentUser {
            id: user.id,
            email: Email::new(&user.email),
            name: user.name.unwrap_or_default(),
            direct,
        })
    }

    /// Audit events about users and user groups from `since` to now: one unfiltered
    /// stream, each event classified by `super::audit::classify` (`known` tells the
    /// workspace's user and group ids apart), the others dropped.
    async fn audit(
        &self,
        since: DateTime<Utc>,
        known: &(dyn Fn(&str) -> Option<Known> + Sync),
    ) -> Result<Vec<AuditEvent>, SegmentError> {
        let query = [
            (
                "startTime",
                since.to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
            (
                "endTime",
                Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
        ];
        let events: Vec<wire::AuditEventV1> = self
            .list("GET /audit-events", "/audit-events", &query, "events")
            .await?;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for e in events {
            let at = DateTime::parse_from_rfc3339(&e.timestamp)
                .map_err(|err| SegmentError::Decode {
                    service: self.service.clone(),
                    request: format!("GET {}/audit-events", self.base),
                    what: format!("audit event {} timestamp {:?}: {err}", e.id, e.timestamp),
                })?
                .with_timezone(&Utc);
            if at < since || !seen.insert(e.id.clone()) {
                continue;
            }
            let Some(class) = classify(&e.kind, &e.resource_type, &e.resource_id, known) else {
                continue;
            };
            out.push(AuditEvent {
                id: e.id,
                at,
                kind: e.kind,
                actor: e.actor,
                actor_email: e.actor_email.filter(|s| !s.is_empty()),
                resource_id: e.resource_id,
                resource_type: class.to_string(),
                resource_name: e.resource_name,
            });
        }
        Ok(out)
    }

    /// `PermissionV1[]` → grants. Policy-level `labels` restrict the WORKSPACE resource
    /// (labels exist only at workspace level); an unknown resource type is a Decode error.
    fn grants(
        &self,
        request: &str,
        permissions: Vec<wire::PermissionV1>,
        ws_id: &str,
    ) -> Result<Vec<Grant>, SegmentError> {
        permissions
            .into_iter()
            .map(|p| {
                let policy_labels = labels_of(p.labels);
                let mut resources = BTreeSet::new();
                for r in p.resources {
                    let kind =
                        ResourceType::parse(&r.kind).ok_or_else(|| SegmentError::Decode {
                            service: self.service.clone(),
                            request: request.to_string(),
                            what: format!(
                                "role {} names resource {} of unknown type {:?}",
                                p.role_id, r.id, r.kind
                            ),
                        })?;
                    let mut labels = labels_of(r.labels);
                    if kind == ResourceType::Workspace {
                        labels.extend(policy_labels.iter().cloned());
                    }
                    resources.insert(Resource {
                        kind,
                        id: r.id,
                        labels,
                    });
                }
                let has_workspace = resources.iter().any(|r| r.kind == ResourceType::Workspace);
                if !policy_labels.is_empty() && !has_workspace {
                    // Labels only ever scope workspace-level grants.
                    resources.insert(Resource {
                        kind: ResourceType::Workspace,
                        id: ws_id.to_string(),
                        labels: policy_labels,
                    });
                }
                Ok(Grant {
                    role_id: p.role_id,
                    role_name: p.role_name,
                    resources,
                })
            })
            .collect()
    }

    /// Walks every page of a list endpoint and returns the items under `key`.
    async fn list<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        path: &str,
        query: &[(&str, String)],
        key: &str,
    ) -> Result<Vec<T>, SegmentError> {
        let mut items = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut q: Vec<(&str, String)> = query.to_vec();
            q.push(("pagination.count", PAGE_SIZE.to_string()));
            if let Some(c) = &cursor {
                q.push(("pagination.cursor", c.clone()));
            }
            let (request, mut data) = self.get(endpoint, path, &q).await?;
            let pagination = match data.as_object_mut().and_then(|o| o.remove("pagination")) {
                None | Some(serde_json::Value::Null) => wire::Pagination::default(),
                Some(p) => serde_json::from_value(p).map_err(|e| SegmentError::Decode {
                    service: self.service.clone(),
                    request: request.clone(),
                    what: format!("pagination: {e}"),
                })?,
            };
            items.extend(self.take::<Vec<T>>(&request, data, key)?);
            if let Some(current) = pagination.current {
                seen.insert(current);
            }
            match pagination.next.filter(|n| !n.is_empty()) {
                None => return Ok(items),
                Some(next) => {
                    // `seen` holds every cursor sent and every `current` received.
                    if !seen.insert(next.clone()) {
                        return Err(SegmentError::RepeatedCursor {
                            service: self.service.clone(),
                            request,
                            cursor: next,
                        });
                    }
                    cursor = Some(next);
                }
            }
        }
        Err(SegmentError::Decode {
            service: self.service.clone(),
            request: format!("GET {}{}", self.base, path),
            what: format!("more than {MAX_PAGES} pages"),
        })
    }

    /// One GET; returns the request line (for messages) and the `data` of a success.
    async fn get(
        &self,
        endpoint: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(String, serde_json::Value), SegmentError> {
        let url = self.url(path, query);
        let request = format!("GET {}", crate::http::redact_url(&url));
        let auth = format!("Bearer {}", self.token.expose());
        let build = |c: &reqwest::Client| {
            c.get(&url)
                .header(AUTHORIZATION, &auth)
                .header(ACCEPT, "application/json")
        };
        let answer =
            self.http
                .send(endpoint, &build)
                .await
                .map_err(|source| SegmentError::Transport {
                    service: self.service.clone(),
                    request: request.clone(),
                    source,
                })?;
        let data = self.read(&request, answer)?;
        Ok((request, data))
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> String {
        let mut url = format!("{}{}", self.base, path);
        if !query.is_empty() {
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
                .finish();
            url.push('?');
            url.push_str(&q);
        }
        url
    }

    /// Maps an answer to its `data` or a typed error (by HTTP status).
    fn read(&self, request: &str, answer: Answer) -> Result<serde_json::Value, SegmentError> {
        let status = answer.status;
        let content_type = answer
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let json = content_type.as_deref().is_none_or(is_json);
        if status.is_success() {
            if !json {
                return Err(self.decode_error(
                    request,
                    format!(
                        "{} with content type {:?}, not JSON",
                        status.as_u16(),
                        content_type.unwrap_or_default()
                    ),
                ));
            }
            let mut body: serde_json::Value = serde_json::from_slice(&answer.body)
                .map_err(|e| self.decode_error(request, format!("body is not JSON: {e}")))?;
            return match body.as_object_mut().and_then(|o| o.remove("data")) {
                Some(data) if !data.is_null() => Ok(data),
                _ => Err(self.decode_error(request, "no \"data\" in the answer".to_string())),
            };
        }
        let (message, field) = error_message(status, json, content_type.as_deref(), &answer.body);
        let service = self.service.clone();
        let request = request.to_string();
        Err(match status.as_u16() {
            401 | 403 => SegmentError::Unauthorized {
                service,
                request,
                status: status.as_u16(),
                message,
            },
            404 => SegmentError::NotFound {
                service,
                request,
                message,
            },
            422 => SegmentError::Validation {
                service,
                request,
                field,
                message,
            },
            400 if message.to_lowercase().contains("plan does not include") => {
                SegmentError::PlanLimit {
                    service,
                    request,
                    status: status.as_u16(),
                    message,
                }
            }
            429 => SegmentError::RateLimited {
                service,
                request,
                message,
            },
            s if s >= 500 => SegmentError::Server {
                service,
                request,
                status: s,
                message,
            },
            s => SegmentError::Api {
                service,
                request,
                status: s,
                message,
            },
        })
    }

    fn decode<T: DeserializeOwned>(
        &self,
        request: &str,
        data: serde_json::Value,
        what: &str,
    ) -> Result<T, SegmentError> {
        serde_json::from_value(data).map_err(|e| self.decode_error(request, format!("{what}: {e}")))
    }

    /// Decodes `data[key]`; a missing key is a Decode error.
    fn take<T: DeserializeOwned>(
        &self,
        request: &str,
        mut data: serde_json::Value,
        key: &str,
    ) -> Result<T, SegmentError> {
        match data.as_object_mut().and_then(|o| o.remove(key)) {
            Some(v) => self.decode(request, v, key),
            None => Err(self.decode_error(request, format!("no {key:?} in \"data\""))),
        }
    }

    fn decode_error(&self, request: &str, what: String) -> SegmentError {
        SegmentError::Decode {
            service: self.service.clone(),
            request: request.to_string(),
            what,
        }
    }
}

fn labels_of(labels: Option<Vec<wire::LabelV1>>) -> BTreeSet<Label> {
    labels
        .unwrap_or_default()
        .into_iter()
        .map(|l| Label {
            key: l.key,
            value: l.value,
        })
        .collect()
}

/// Percent-encodes an id for one path segment (ids are opaque; they are base62 in practice).
fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Which of the known ids `id` is (for the audit classification).
fn known_in(id: &str, users: &HashSet<String>, groups: &HashSet<String>) -> Option<Known> {
    if users.contains(id) {
        Some(Known::User)
    } else if groups.contains(id) {
        Some(Known::Group)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/vnd.segment.v1+json"));
        assert!(is_json("Application/VND.Segment.V1beta+JSON"));
        assert!(!is_json("text/html"));
        assert!(!is_json("application/xml"));
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("bBABwqbaDf2QdwTbW8bNEm"), "bBABwqbaDf2QdwTbW8bNEm");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
