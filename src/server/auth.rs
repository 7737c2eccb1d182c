//! Shared-secret checks for the server: the bearer token on `/status` and `/findings`,
//! the Okta hook's static header.
//!
//! Every comparison goes through [`secret_eq`], whose running time depends on neither the
//! secret's content nor where the first differing byte is. Secrets and presented values
//! are never logged, not even in part.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// Compares a presented value with the secret in constant time. Both sides are hashed
/// first so the xor-fold always runs over 32 bytes, whatever either length is.
pub(super) fn secret_eq(presented: &[u8], secret: &Secret) -> bool {
    let a = Sha256::digest(presented);
    let b = Sha256::digest(secret.expose().as_bytes());
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    diff == 0
}

/// Why a request was refused; small, so handlers can `?`-style return it cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Denied {
    /// 404: the route is off (its secret is not configured).
    Off,
    /// 401 for a bearer-guarded route (with `WWW-Authenticate: Bearer`).
    Bearer,
    /// 401 for a shared-secret header.
    Header,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::Off => StatusCode::NOT_FOUND.into_response(),
            Denied::Bearer => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "unauthorized\n",
            )
                .into_response(),
            Denied::Header => StatusCode::UNAUTHORIZED.into_response(),
        }
    }
}

/// `Ok` when no token is configured or the request carries `Authorization: Bearer
/// <token>`; else the 401 to send.
pub(super) fn require_bearer(
    token: Option<&Secret>,
    headers: &HeaderMap,
    route: &'static str,
) -> Result<(), Denied> {
    let Some(token) = token else {
        return Ok(());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    match presented {
        Some(p) if secret_eq(p.as_bytes(), token) => Ok(()),
        other => {
            tracing::warn!(
                route,
                presented = other.is_some(),
                "Rejected a request without the right bearer token."
            );
            Err(Denied::Bearer)
        }
    }
}

/// The token of a `Bearer <token>` value (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_compare() {
        let s = Secret::new("s3cret");
        assert!(secret_eq(b"s3cret", &s));
        assert!(!secret_eq(b"s3cre", &s));
        assert!(!secret_eq(b"s3cret ", &s));
        assert!(!secret_eq(b"", &s));
        assert!(!secret_eq(b"S3cret", &s));
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }
}
