//! Change feeds (reference/graph.md §4, §6): `groups/delta` with `members` tracking, and
//! the change-notification subscriptions scimwatch may manage.
//!
//! Contract:
//! - A delta stream is scoped to at most [`MAX_DELTA_IDS`] group ids (Graph's `$filter`
//!   cap); query options go on the first request only, then every `@odata.nextLink` and
//!   `@odata.deltaLink` is followed verbatim (same host only: they carry our token).
//! - A round reads every page up to the next `@odata.deltaLink`, and reports what changed
//!   (our terms: group ids, member entries); the caller keeps the link.
//! - An unusable token — 410 Gone, or `syncStateNotFound` / `syncStateInvalid` /
//!   `resyncRequired` — is [`DeltaRound::Reset`], not an error: the caller discards its
//!   state and starts over (and runs a full pass, since changes may have been lost).
//! - Subscriptions: create, renew (`PATCH`), reauthorize. The `clientState` goes in the
//!   request body only; it never reaches a log, an error or `Debug`.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use super::{api_error, auth, bad_link, encode, parse_body, wire, Azure, SERVICE};
use crate::http::{redact_url, Answer};
use crate::idp::IdpError;
use crate::secret::Secret;

/// Graph accepts at most this many ids in a delta query's `$filter`.
pub const MAX_DELTA_IDS: usize = 50;

/// The outcome of one delta round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeltaRound {
    Done {
        /// Groups that changed (or, on an initial round, every group of the stream).
        groups: BTreeSet<String>,
        /// `members@delta` entries and object `@removed` markers read.
        entries: usize,
        /// Where the next round starts.
        delta_link: String,
    },
    /// The token is no longer usable: start over with an initial round.
    Reset { reason: String },
}

/// A subscription as Graph answered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub expires: DateTime<Utc>,
}

impl Azure {
    /// One delta round: the initial query for `ids` when `link` is `None`, else the kept
    /// `@odata.deltaLink`. `ids` must hold at most [`MAX_DELTA_IDS`] ids.
    pub async fn groups_delta(
        &self,
        link: Option<&str>,
        ids: &[String],
    ) -> Result<DeltaRound, IdpError> {
        let mut url = match link {
            Some(l) => l.to_string(),
            None => {
                let filter = ids
                    .iter()
                    .take(MAX_DELTA_IDS)
                    .map(|i| format!("id eq '{}'", i.replace('\'', "''")))
                    .collect::<Vec<_>>()
                    .join(" or ");
                format!(
                    "{}/groups/delta?$filter={}&$select=id,displayName,members",
                    self.inner.base,
                    encode(&filter)
                )
            }
        };
        let mut groups = BTreeSet::new();
        let mut entries = 0usize;
        let mut visited = HashSet::new();
        loop {
            let answer = self
                .get(&self.inner.http, "GET /groups/delta", &url)
                .await?;
            if let Some(reason) = reset_reason(&answer) {
                return Ok(DeltaRound::Reset { reason });
            }
            if !answer.status.is_success() {
                return Err(api_error("GET", &url, &answer));
            }
            let page: wire::DeltaPage = parse_body(&url, &answer)?;
            for g in page.value {
                entries += g.members_delta.len() + usize::from(g.removed.is_some());
                groups.insert(g.id);
            }
            if let Some(delta_link) = page.delta_link {
                self.check_link(&url, &delta_link)?;
                return Ok(DeltaRound::Done {
                    groups,
                    entries,
                    delta_link,
                });
            }
            let Some(next) = page.next_link else {
                return Err(bad_link(
                    &url,
                    "a delta page carries neither @odata.nextLink nor @odata.deltaLink",
                ));
            };
            visited.insert(url.clone());
            if visited.contains(&next) {
                return Err(bad_link(
                    &url,
                    "the @odata.nextLink points back at a page already read",
                ));
            }
            self.check_link(&url, &next)?;
            url = next;
        }
    }

    fn check_link(&self, from: &str, link: &str) -> Result<(), IdpError> {
        let same_origin = url::Url::parse(link)
            .is_ok_and(|u| u.origin().ascii_serialization() == self.inner.origin);
        if same_origin {
            Ok(())
        } else {
            Err(bad_link(
                from,
                "a delta link points away from the Graph host; not following it with our token",
            ))
        }
    }

    /// `POST /subscriptions` for `updated,deleted` on `/groups`, delivered to
    /// `notification_url` (lifecycle events too) with `client_state`, until `expires`.
    pub async fn subscription_create(
        &self,
        notification_url: &str,
        client_state: &Secret,
        expires: DateTime<Utc>,
    ) -> Result<Subscription, IdpError> {
        let url = format!("{}/subscriptions", self.inner.base);
        let body = serde_json::json!({
            "changeType": "updated,deleted",
            "notificationUrl": notification_url,
            "lifecycleNotificationUrl": notification_url,
            "resource": "/groups",
            "expirationDateTime": expires.to_rfc3339_opts(SecondsFormat::Secs, true),
            "clientState": client_state.expose(),
        });
        let answer = self
            .send_json(Method::POST, "POST /subscriptions", &url, Some(&body))
            .await?;
        if !answer.status.is_success() {
            return Err(api_error("POST", &url, &answer));
        }
        let s: wire::SubscriptionBody = parse_body(&url, &answer)?;
        Ok(Subscription {
            id: s.id,
            expires: s.expiration_date_time,
        })
    }

    /// `PATCH /subscriptions/{id}` with a new expiry. `Ok(None)` when Graph no longer
    /// knows the subscription (404): the caller creates a new one.
    pub async fn subscription_renew(
        &self,
        id: &str,
        expires: DateTime<Utc>,
    ) -> Result<Option<Subscription>, IdpError> {
        let url = format!("{}/subscriptions/{}", self.inner.base, encode(id));
        let body = serde_json::json!({
            "expirationDateTime": expires.to_rfc3339_opts(SecondsFormat::Secs, true),
        });
        let answer = self
            .send_json(
                Method::PATCH,
                "PATCH /subscriptions/{id}",
                &url,
                Some(&body),
            )
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(api_error("PATCH", &url, &answer));
        }
        let s: wire::SubscriptionBody = parse_body(&url, &answer)?;
        Ok(Some(Subscription {
            id: s.id,
            expires: s.expiration_date_time,
        }))
    }

    /// `POST /subscriptions/{id}/reauthorize` (after `reauthorizationRequired`). `false`
    /// when Graph no longer knows the subscription.
    pub async fn subscription_reauthorize(&self, id: &str) -> Result<bool, IdpError> {
        let url = format!(
            "{}/subscriptions/{}/reauthorize",
            self.inner.base,
            encode(id)
        );
        let answer = self
            .send_json(
                Method::POST,
                "POST /subscriptions/{id}/reauthorize",
                &url,
                None,
            )
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        if !answer.status.is_success() {
            return Err(api_error("POST", &url, &answer));
        }
        Ok(true)
    }

    /// One authenticated request with an optional JSON body; a 401 renews the token once.
    async fn send_json(
        &self,
        method: Method,
        endpoint: &str,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, IdpError> {
        let auth = &self.inner.auth;
        let mut renewed = false;
        loop {
            let bearer = auth.authorization(&self.inner.http).await?;
            let bytes = body.map(|b| b.to_string()).unwrap_or_default();
            let build = |client: &reqwest::Client| {
                let mut r = client
                    .request(method.clone(), url)
                    .header(AUTHORIZATION, bearer.expose())
                    .header(ACCEPT, "application/json")
                    .header("client-request-id", auth::guid());
                if body.is_some() {
                    r = r
                        .header(CONTENT_TYPE, "application/json")
                        .body(bytes.clone());
                }
                r
            };
            let answer = self
                .inner
                .http
                .send(endpoint, &build)
                .await
                .map_err(|source| IdpError::Transport {
                    service: SERVICE,
                    request: format!("{method} {}", redact_url(url)),
                    source,
                })?;
            if answer.status == StatusCode::UNAUTHORIZED && !renewed {
                auth.invalidate(&bearer).await;
                renewed = true;
                continue;
            }
            return Ok(answer);
        }
    }
}

/// Why a delta answer means "start over", if it does.
fn reset_reason(answer: &Answer) -> Option<String> {
    if answer.status == StatusCode::GONE {
        return Some("410 Gone: the delta token expired".to_string());
    }
    if answer.status.is_success() {
        return None;
    }
    let body: wire::ApiError = serde_json::from_slice(&answer.body).unwrap_or_default();
    let code = body.error.and_then(|e| e.code)?;
    matches!(
        code.as_str(),
        "syncStateNotFound" | "syncStateInvalid" | "resyncRequired"
    )
    .then(|| format!("{} {code}", answer.status.as_u16()))
}
