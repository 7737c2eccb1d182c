//! Identity providers: read the mapped groups, their members with status, single users by
//! login, and the IdP's own change log.
//!
//! Contract (every implementation):
//! - A failure is an error, never an empty list. An IdP that answers 200 with nothing where
//!   something was expected (Okta's answer to a service app without an admin role) is
//!   caught one level up: a pass whose every mapped group is unresolved or empty fails.
//! - Vendor DTOs stay private to each implementation; what comes out is `model` types.
//! - Retries and pacing happen in `crate::http`; nothing here loops on errors.

pub mod azure;
pub mod okta;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::{IdpConfig, IdpCredential};
use crate::error::ErrorClass;
use crate::http::{RequestStats, RetryConfig};
use crate::model::{Email, GroupRead, GroupRef, IdpEvent, IdpKind, MappedGroups, UserLookup};

/// Why an IdP read failed. `service` and `request` make the one-line cause `check` prints.
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    #[error("{service}: {request}: {reason}")]
    Api {
        service: &'static str,
        /// Method and URL (no secrets), e.g. "GET https://acme.okta.com/api/v1/groups/00g…/users".
        request: String,
        /// What went wrong, e.g. "401 E0000011 Invalid token provided".
        reason: String,
        class: ErrorClass,
    },
    #[error("{service}: {request}: no answer")]
    Transport {
        service: &'static str,
        request: String,
        #[source]
        source: crate::http::HttpError,
    },
    #[error("{service}: {what}")]
    Auth { service: &'static str, what: String },
}

impl IdpError {
    /// The one line with the reason first and the request last, for people reading a
    /// list of problems (`validate`): "okta: 401 E0000011 Invalid token provided (GET …)".
    pub fn reason_first(&self) -> String {
        match self {
            IdpError::Api {
                service,
                request,
                reason,
                ..
            } => format!("{service}: {reason} ({request})"),
            IdpError::Transport {
                service,
                request,
                source,
            } => format!(
                "{service}: no answer: {} ({request})",
                crate::error::chain(source)
            ),
            IdpError::Auth { .. } => crate::error::chain(self),
        }
    }
}

/// Reads one IdP. Implemented by `okta::Okta` and `azure::Azure`; [`Idp`] picks one from
/// the config.
#[allow(async_fn_in_trait)]
pub trait IdentityProvider {
    fn kind(&self) -> IdpKind;

    /// Resolves each group reference (by name or id) and reads its members with their
    /// status, following every page. Unknown or ambiguous references come back as
    /// `GroupRead::Unresolved`; any API failure fails the whole call.
    async fn read_groups(&self, refs: &[GroupRef]) -> Result<Vec<(GroupRef, GroupRead)>, IdpError>;

    /// Looks users up by the attribute Segment knows them by. A "no such user" answer is
    /// `UserLookup::NotFound`; any other failure fails the call.
    async fn lookup_users(
        &self,
        keys: &[Email],
    ) -> Result<std::collections::BTreeMap<Email, UserLookup>, IdpError>;

    /// The membership and lifecycle changes published since `since`, oldest first.
    async fn events_since(&self, since: DateTime<Utc>) -> Result<Vec<IdpEvent>, IdpError>;

    /// Like [`IdentityProvider::read_groups`], plus the groups nested inside the found
    /// ones (Entra ID, whose provisioning leaves their people out). IdPs without nesting
    /// keep this default: no nested groups.
    async fn read_mapped_groups(&self, refs: &[GroupRef]) -> Result<MappedGroups, IdpError> {
        Ok(MappedGroups {
            groups: self.read_groups(refs).await?,
            nested: Default::default(),
        })
    }
}

/// The IdP the config names: what one-shot commands read through.
#[derive(Clone, Debug)]
pub enum Idp {
    Okta(okta::Okta),
    Azure(azure::Azure),
}

impl Idp {
    /// The client for `cfg.kind`; a credential of the other kind is an error.
    pub fn new(
        cfg: &IdpConfig,
        retry: RetryConfig,
        stats: Arc<RequestStats>,
    ) -> Result<Idp, IdpError> {
        match (cfg.kind, &cfg.credential) {
            (IdpKind::Okta, IdpCredential::OktaToken(_) | IdpCredential::OktaOAuth(_)) => {
                Ok(Idp::Okta(okta::Okta::new(cfg, retry, stats)?))
            }
            (IdpKind::AzureAd, IdpCredential::Azure(_)) => {
                Ok(Idp::Azure(azure::Azure::new(cfg, retry, stats)?))
            }
            (kind, _) => Err(IdpError::Auth {
                service: kind.as_str(),
                what: format!(
                    "the [idp] credential does not fit kind = {:?}",
                    kind.as_str()
                ),
            }),
        }
    }
}

impl IdentityProvider for Idp {
    fn kind(&self) -> IdpKind {
        match self {
            Idp::Okta(o) => o.kind(),
            Idp::Azure(a) => a.kind(),
        }
    }

    async fn read_groups(&self, refs: &[GroupRef]) -> Result<Vec<(GroupRef, GroupRead)>, IdpError> {
        match self {
            Idp::Okta(o) => o.read_groups(refs).await,
            Idp::Azure(a) => a.read_groups(refs).await,
        }
    }

    async fn lookup_users(
        &self,
        keys: &[Email],
    ) -> Result<std::collections::BTreeMap<Email, UserLookup>, IdpError> {
        match self {
            Idp::Okta(o) => o.lookup_users(keys).await,
            Idp::Azure(a) => a.lookup_users(keys).await,
        }
    }

    async fn events_since(&self, since: DateTime<Utc>) -> Result<Vec<IdpEvent>, IdpError> {
        match self {
            Idp::Okta(o) => o.events_since(since).await,
            Idp::Azure(a) => a.events_since(since).await,
        }
    }

    async fn read_mapped_groups(&self, refs: &[GroupRef]) -> Result<MappedGroups, IdpError> {
        match self {
            Idp::Okta(o) => o.read_mapped_groups(refs).await,
            Idp::Azure(a) => a.read_mapped_groups(refs).await,
        }
    }
}

/// Runs `f` over `items` with at most `limit` in flight; results in the order of
/// `items`. The first error fails the whole call (the other tasks are dropped).
pub(crate) async fn bounded<I, T, F, Fut>(
    service: &'static str,
    items: Vec<I>,
    limit: usize,
    f: F,
) -> Result<Vec<T>, IdpError>
where
    F: Fn(I) -> Fut,
    Fut: std::future::Future<Output = Result<T, IdpError>> + Send + 'static,
    T: Send + 'static,
{
    let mut results: Vec<Option<T>> = items.iter().map(|_| None).collect();
    let mut pending = items.into_iter().enumerate();
    let mut set = tokio::task::JoinSet::new();
    for (i, item) in pending.by_ref().take(limit.max(1)) {
        let fut = f(item);
        set.spawn(async move { (i, fut.await) });
    }
    while let Some(joined) = set.join_next().await {
        let (i, result) = joined.map_err(|e| IdpError::Api {
            service,
            request: "a concurrent read".to_string(),
            reason: format!("the read task failed: {e}"),
            class: ErrorClass::Bug,
        })?;
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(result?);
        }
        if let Some((j, item)) = pending.next() {
            let fut = f(item);
            set.spawn(async move { (j, fut.await) });
        }
    }
    Ok(results.into_iter().flatten().collect())
}
