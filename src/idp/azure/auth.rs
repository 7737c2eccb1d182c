//! Entra ID client credentials (reference/graph.md §1): a client secret, or a certificate
//! whose private key signs a `client_assertion` (RS256, `x5t` = base64url SHA-1 of the
//! certificate's DER).
//!
//! Contract:
//! - Secrets (the client secret, the private key, access tokens, assertions) never appear
//!   in `Debug`, logs or errors; token endpoint refusals carry Entra's `error` and the
//!   first line of `error_description` (its AADSTS code and sentence) only.
//! - The access token is cached and renewed before it expires: 5 minutes early, or half
//!   its lifetime when that is shorter. One fetch at a time; `invalidate` drops the token
//!   after a 401 so that the next request fetches a new one.
//! - Nothing here loops on errors: 429/5xx retries live in `crate::http`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};

use super::{encode, wire, SERVICE};
use crate::config::{AzureCredential, AzureSecret};
use crate::error::ErrorClass;
use crate::http::{redact_url, Http};
use crate::idp::IdpError;
use crate::secret::Secret;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Renew this long before expiry (reference: "about 5 min").
const EXPIRY_MARGIN: Duration = Duration::from_secs(300);
/// Lifetime of a client assertion (reference: 5–10 min).
const ASSERTION_LIFETIME: u64 = 300;

enum Credential {
    Secret(Secret),
    Certificate { key: EncodingKey, x5t: String },
}

pub(super) struct Auth {
    token_url: String,
    client_id: String,
    scope: String,
    credential: Credential,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

struct Cached {
    token: Secret,
    fresh_until: Instant,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.credential {
            Credential::Secret(_) => "client_secret(***)".to_string(),
            Credential::Certificate { x5t, .. } => format!("certificate(x5t {x5t}, key ***)"),
        };
        f.debug_struct("Auth")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("credential", &kind)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// `graph_base` decides the scope: `https://<graph host>/.default` for Microsoft's
    /// national clouds, `https://graph.microsoft.com/.default` otherwise (tests and the
    /// simulator included).
    pub fn new(cred: &AzureCredential, graph_base: &str) -> Result<Auth, IdpError> {
        let login = cred.login_url.trim().trim_end_matches('/');
        let token_url = format!(
            "{login}/{}/oauth2/v2.0/token",
            encode(cred.tenant_id.trim())
        );
        let credential = match &cred.secret {
            AzureSecret::ClientSecret(s) => Credential::Secret(s.clone()),
            AzureSecret::Certificate {
                certificate_pem,
                key_pem,
            } => {
                let bad = |why: String| IdpError::Auth {
                    service: SERVICE,
                    what: format!("the Entra ID certificate cannot be used: {why}"),
                };
                let der = pem_block(certificate_pem, "CERTIFICATE")
                    .ok_or_else(|| bad("certificate_file holds no PEM CERTIFICATE block".into()))?;
                let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
                let x5t = URL_SAFE_NO_PAD.encode(sha1.as_ref());
                let key = EncodingKey::from_rsa_pem(key_pem.expose().as_bytes()).map_err(|e| {
                    bad(format!(
                        "certificate_key_file is not an RSA private key in PEM ({e})"
                    ))
                })?;
                Credential::Certificate { key, x5t }
            }
        };
        let auth = Auth {
            token_url,
            client_id: cred.client_id.clone(),
            scope: scope_for(graph_base),
            credential,
            cache: tokio::sync::Mutex::new(None),
        };
        // Fail at startup, not on the first pass, when the key cannot sign.
        auth.assertion()?;
        Ok(auth)
    }

    /// `Bearer <token>` for the next request, fetching a token when none is fresh.
    pub async fn authorization(&self, http: &Http) -> Result<Secret, IdpError> {
        let mut cache = self.cache.lock().await;
        let token = match cache.as_ref() {
            Some(c) if Instant::now() < c.fresh_until => c.token.clone(),
            _ => {
                let fresh = self.fetch(http).await?;
                let token = fresh.token.clone();
                *cache = Some(fresh);
                token
            }
        };
        Ok(Secret::new(format!("Bearer {}", token.expose())))
    }

    /// Forgets the cached token if it is the one `used` presented (after a 401).
    pub async fn invalidate(&self, used: &Secret) {
        let mut cache = self.cache.lock().await;
        if cache
            .as_ref()
            .is_some_and(|c| format!("Bearer {}", c.token.expose()) == used.expose())
        {
            *cache = None;
        }
    }

    async fn fetch(&self, http: &Http) -> Result<Cached, IdpError> {
        // Built once up front so that a signing failure is an error; each attempt signs
        // afresh (new `jti`) and falls back to this one only if signing fails then.
        let fallback = self.assertion()?;
        let build = |client: &reqwest::Client| {
            let mut body = format!(
                "client_id={}&scope={}&grant_type=client_credentials",
                encode(&self.client_id),
                encode(&self.scope)
            );
            match &self.credential {
                Credential::Secret(s) => {
                    body.push_str("&client_secret=");
                    body.push_str(&encode(s.expose()));
                }
                Credential::Certificate { .. } => {
                    let assertion = self
                        .assertion()
                        .ok()
                        .flatten()
                        .or_else(|| fallback.clone())
                        .unwrap_or_else(|| Secret::new(""));
                    body.push_str("&client_assertion_type=");
                    body.push_str(&encode(ASSERTION_TYPE));
                    body.push_str("&client_assertion=");
                    body.push_str(&encode(assertion.expose()));
                }
            }
            client
                .post(&self.token_url)
                .header(ACCEPT, "application/json")
                .header(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                )
                .body(body)
        };
        let request = format!("POST {}", redact_url(&self.token_url));
        let answer = http
            .send("POST /oauth2/v2.0/token", &build)
            .await
            .map_err(|source| IdpError::Transport {
                service: SERVICE,
                request: request.clone(),
                source,
            })?;
        let status = answer.status.as_u16();
        if answer.status.is_success() {
            let token: wire::Token =
                serde_json::from_slice(&answer.body).map_err(|e| IdpError::Api {
                    service: SERVICE,
                    request: request.clone(),
                    reason: format!("{status} token answer is not the expected JSON: {e}"),
                    class: ErrorClass::Bug,
                })?;
            let lifetime = Duration::from_secs(token.lifetime_secs().unwrap_or(3599));
            let margin = EXPIRY_MARGIN.min(lifetime / 2);
            tracing::debug!(service = SERVICE, lifetime = ?lifetime, "Fetched a Graph access token.");
            return Ok(Cached {
                token: Secret::new(token.access_token),
                fresh_until: Instant::now() + lifetime.saturating_sub(margin),
            });
        }
        if status == 429 || answer.status.is_server_error() {
            return Err(super::api_error("POST", &self.token_url, &answer));
        }
        super::log_request_id(&answer, "Token request refused.");
        let err: wire::TokenError = serde_json::from_slice(&answer.body).unwrap_or_default();
        // Entra's descriptions carry trace and correlation ids on later lines: keep the first.
        let description = err
            .error_description
            .as_deref()
            .and_then(|d| d.lines().next())
            .map(str::trim)
            .map(str::to_string);
        let what = match (err.error, description) {
            (Some(e), Some(d)) => format!("{e}: {d}"),
            (Some(e), None) => e,
            (None, _) => "no OAuth error in the answer".to_string(),
        };
        Err(IdpError::Auth {
            service: SERVICE,
            what: format!(
                "token request to {} refused ({status}): {what}",
                redact_url(&self.token_url)
            ),
        })
    }

    /// A fresh client assertion for a certificate credential (`None` with a secret).
    fn assertion(&self) -> Result<Option<Secret>, IdpError> {
        let Credential::Certificate { key, x5t } = &self.credential else {
            return Ok(None);
        };
        let now = unix_now();
        let claims = serde_json::json!({
            "aud": self.token_url,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": guid(),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        });
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".into());
        header.x5t = Some(x5t.clone());
        jsonwebtoken::encode(&header, &claims, key)
            .map(|s| Some(Secret::new(s)))
            .map_err(|e| IdpError::Auth {
                service: SERVICE,
                what: format!("cannot sign the client assertion with the certificate's key: {e}"),
            })
    }
}

/// The `.default` scope of the Graph host `base` points at.
fn scope_for(base: &str) -> String {
    const NATIONAL: [&str; 3] = [
        "graph.microsoft.us",
        "dod-graph.microsoft.us",
        "microsoftgraph.chinacloudapi.cn",
    ];
    let host = url::Url::parse(base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string));
    match host {
        Some(h) if NATIONAL.contains(&h.as_str()) => format!("https://{h}/.default"),
        _ => "https://graph.microsoft.com/.default".to_string(),
    }
}

/// The bytes of the first `-----BEGIN <label>-----` block.
pub(crate) fn pem_block(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(b64).ok()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random GUID (version 4 layout) for `jti` and `client-request-id`.
pub(super) fn guid() -> String {
    let r = rand::random::<u128>();
    let h = format!("{r:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_follows_national_clouds_only() {
        assert_eq!(
            scope_for("https://graph.microsoft.com/v1.0"),
            "https://graph.microsoft.com/.default"
        );
        assert_eq!(
            scope_for("https://graph.microsoft.us/v1.0"),
            "https://graph.microsoft.us/.default"
        );
        assert_eq!(
            scope_for("http://127.0.0.1:8000/graph/v1.0"),
            "https://graph.microsoft.com/.default"
        );
    }

    #[test]
    fn guid_has_the_layout() {
        let g = guid();
        assert_eq!(g.len(), 36);
        assert_eq!(g.matches('-').count(), 4);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let cred = AzureCredential {
            tenant_id: "t".into(),
            client_id: "c".into(),
            secret: AzureSecret::ClientSecret(Secret::new("very-secret-value")),
            login_url: "https://login.microsoftonline.com".into(),
        };
        let auth = Auth::new(&cred, "https://graph.microsoft.com/v1.0").unwrap();
        let shown = format!("{auth:?}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(shown.contains("login.microsoftonline.com/t/oauth2/v2.0/token"));
    }
}
