//! Identity providers: read the mapped groups, their members with status, single users by
//! login, and the IdP's own change log.
//!
//! Contract (every implementation):
//! - A failure is an error, never an empty list. An IdP that answers 200 with nothing where
//!   something was expected (Okta's answer to a service app without an admin role) is
//!   caught one level up: a pass whose every mapped group is unresolved or empty fails.
//! - Vendor DTOs stay private to each implementation; what comes out is `model` types.
//! - Retries and pacing happen in `crate::http`; nothing here loops on errors.

pub mod okta;

use chrono::{DateTime, Utc};

use crate::model::{Email, GroupRead, GroupRef, IdpEvent, IdpKind, UserLookup};

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

/// How a caller should treat an error (STYLE.md habit 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Worth trying again later (rate limit or server trouble that outlasted the retries).
    Transient,
    /// Credentials or permissions: a person must fix them.
    Auth,
    /// A request we should not have made, or an answer we could not read.
    Bug,
}

/// Reads one IdP. Implemented by `okta::Okta` (and later Entra ID).
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
}
