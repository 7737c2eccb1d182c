//! Okta credentials: the SSWS API token, and the OAuth 2.0 service app with
//! `private_key_jwt` (RS256/ES256 client assertion), optionally DPoP-bound
//! (reference/okta.md §1).
//!
//! Contract:
//! - Secrets (the API token, the private key, access tokens, assertions, proofs) never
//!   appear in `Debug`, logs or errors. Token endpoint failures carry Okta's `error` and
//!   `error_description` only.
//! - An access token is cached until about 60 s before it expires; one fetch at a time
//!   (concurrent readers wait for it). `invalidate` drops it after a 401.
//! - DPoP: a separate P-256 key made at startup; each request (each attempt) gets a fresh
//!   proof with a new `jti`. A `400 use_dpop_nonce` from the token endpoint is answered
//!   once, with the `dpop-nonce` it carried; the nonce is remembered for later fetches.
//! - Nothing here loops on errors: retries of 5xx/429 live in `crate::http`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use sha2::{Digest, Sha256};

use super::{encode, wire, SERVICE};
use crate::config::OktaOAuth;
use crate::error::ErrorClass;
use crate::http::{redact_url, Answer, Http};
use crate::idp::IdpError;
use crate::secret::Secret;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const DEFAULT_SCOPES: &str = "okta.groups.read okta.users.read okta.logs.read";
/// Refresh this long before the token's announced expiry.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// How requests authenticate.
pub(super) enum Credential {
    Ssws(Secret),
    OAuth(Box<OAuth>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Ssws(_) => f.write_str("Ssws(***)"),
            Credential::OAuth(o) => f
                .debug_struct("OAuth")
                .field("client_id", &o.client_id)
                .field("alg", &o.signer.alg)
                .field("dpop", &o.dpop.is_some())
                .finish_non_exhaustive(),
        }
    }
}

/// What one API request presents: the `Authorization` value and, under DPoP, the `ath`
/// its proofs must carry.
pub(super) struct Access {
    pub authorization: Secret,
    pub ath: Option<String>,
}

impl Credential {
    pub fn ssws(token: &Secret) -> Credential {
        Credential::Ssws(token.clone())
    }

    pub fn oauth(cfg: &OktaOAuth, base: &str) -> Result<Credential, IdpError> {
        let token_url = format!("{base}/oauth2/v1/token");
        let signer = Signer::from_pem(cfg.private_key_pem.expose(), cfg.key_id.clone())?;
        let dpop = if cfg.dpop {
            Some(DpopKey::generate()?)
        } else {
            None
        };
        let scope = if cfg.scopes.is_empty() {
            DEFAULT_SCOPES.to_string()
        } else {
            cfg.scopes.join(" ")
        };
        let oauth = OAuth {
            client_id: cfg.client_id.clone(),
            token_url,
            scope,
            signer,
            dpop,
            cache: tokio::sync::Mutex::new(None),
            nonce: std::sync::Mutex::new(None),
        };
        // Fail at startup, not on the first pass, when the key cannot sign.
        oauth.assertion()?;
        if let Some(d) = &oauth.dpop {
            d.proof("POST", &oauth.token_url, None, None)?;
        }
        Ok(Credential::OAuth(Box::new(oauth)))
    }

    pub fn is_oauth(&self) -> bool {
        matches!(self, Credential::OAuth(_))
    }

    pub fn dpop(&self) -> Option<&DpopKey> {
        match self {
            Credential::OAuth(o) => o.dpop.as_ref(),
            Credential::Ssws(_) => None,
        }
    }

    /// The credential for the next API request (fetching an access token when needed).
    pub async fn access(&self, http: &Http) -> Result<Access, IdpError> {
        match self {
            Credential::Ssws(t) => Ok(Access {
                authorization: Secret::new(format!("SSWS {}", t.expose())),
                ath: None,
            }),
            Credential::OAuth(o) => o.access(http).await,
        }
    }

    /// Forgets the cached token if it is the one `used` presented (after a 401).
    pub async fn invalidate(&self, used: &Access) {
        if let Credential::OAuth(o) = self {
            let mut cache = o.cache.lock().await;
            if cache
                .as_ref()
                .is_some_and(|c| o.authorization(&c.token).expose() == used.authorization.expose())
            {
                *cache = None;
            }
        }
    }
}

pub(super) struct OAuth {
    client_id: String,
    token_url: String,
    scope: String,
    signer: Signer,
    dpop: Option<DpopKey>,
    cache: tokio::sync::Mutex<Option<Cached>>,
    /// The token endpoint's last `dpop-nonce`.
    nonce: std::sync::Mutex<Option<String>>,
}

struct Cached {
    token: Secret,
    fresh_until: Instant,
}

impl OAuth {
    fn authorization(&self, token: &Secret) -> Secret {
        let scheme = if self.dpop.is_some() {
            "DPoP"
        } else {
            "Bearer"
        };
        Secret::new(format!("{scheme} {}", token.expose()))
    }

    async fn access(&self, http: &Http) -> Result<Access, IdpError> {
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
        let ath = self
            .dpop
            .as_ref()
            .map(|_| URL_SAFE_NO_PAD.encode(Sha256::digest(token.expose().as_bytes())));
        Ok(Access {
            authorization: self.authorization(&token),
            ath,
        })
    }

    /// One token fetch: the request, and at most one resend with a DPoP nonce.
    async fn fetch(&self, http: &Http) -> Result<Cached, IdpError> {
        let first = self.request_token(http).await?;
        let answer = match self.nonce_demanded(&first) {
            Some(nonce) => {
                tracing::debug!(service = SERVICE, "Token endpoint asked for a DPoP nonce.");
                if let Ok(mut n) = self.nonce.lock() {
                    *n = Some(nonce);
                }
                self.request_token(http).await?
            }
            None => first,
        };
        let request = format!("POST {}", self.token_url);
        if answer.status.is_success() {
            let token: wire::Token =
                serde_json::from_slice(&answer.body).map_err(|e| IdpError::Api {
                    service: SERVICE,
                    request: request.clone(),
                    reason: format!(
                        "{} token answer is not the expected JSON: {e}",
                        answer.status.as_u16()
                    ),
                    class: ErrorClass::Bug,
                })?;
            let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3600));
            tracing::debug!(service = SERVICE, lifetime = ?lifetime, "Fetched an OAuth access token.");
            return Ok(Cached {
                token: Secret::new(token.access_token),
                fresh_until: Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN),
            });
        }
        let status = answer.status.as_u16();
        if status == 429 || answer.status.is_server_error() {
            return Err(super::api_error("POST", &self.token_url, &answer));
        }
        let err: wire::TokenError = serde_json::from_slice(&answer.body).unwrap_or_default();
        let what = match (err.error, err.error_description) {
            (Some(e), Some(d)) => format!("{e}: {d}"),
            (Some(e), None) => e,
            (None, _) => "no OAuth error in the answer".to_string(),
        };
        super::log_request_id(&answer, "Token request refused.");
        Err(IdpError::Auth {
            service: SERVICE,
            what: format!(
                "token request to {} refused ({status}): {what}",
                redact_url(&self.token_url)
            ),
        })
    }

    /// The nonce of a `400 {"error":"use_dpop_nonce"}` answer, when DPoP is on.
    fn nonce_demanded(&self, answer: &Answer) -> Option<String> {
        self.dpop.as_ref()?;
        if answer.status.as_u16() != 400 {
            return None;
        }
        let err: wire::TokenError = serde_json::from_slice(&answer.body).ok()?;
        if err.error.as_deref() != Some("use_dpop_nonce") {
            return None;
        }
        answer
            .headers
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    async fn request_token(&self, http: &Http) -> Result<Answer, IdpError> {
        let nonce = self.nonce.lock().ok().and_then(|n| n.clone());
        // Built before sending so that a signing failure is an error; each attempt signs
        // afresh (new `jti`) and only falls back to these if signing fails then.
        let fallback_assertion = self.assertion()?;
        let fallback_proof = match &self.dpop {
            Some(d) => Some(d.proof("POST", &self.token_url, nonce.as_deref(), None)?),
            None => None,
        };
        let build = |client: &reqwest::Client| {
            let assertion = self
                .assertion()
                .unwrap_or_else(|_| fallback_assertion.clone());
            let body = format!(
                "grant_type=client_credentials&scope={}&client_assertion_type={}&client_assertion={}",
                encode(&self.scope),
                encode(ASSERTION_TYPE),
                encode(assertion.expose()),
            );
            let mut rb = client
                .post(&self.token_url)
                .header(ACCEPT, "application/json")
                .header(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                )
                .body(body);
            if let (Some(d), Some(fallback)) = (&self.dpop, &fallback_proof) {
                let proof = d
                    .proof("POST", &self.token_url, nonce.as_deref(), None)
                    .unwrap_or_else(|_| fallback.clone());
                rb = rb.header("DPoP", proof.expose());
            }
            rb
        };
        http.send("POST /oauth2/v1/token", &build)
            .await
            .map_err(|source| IdpError::Transport {
                service: SERVICE,
                request: format!("POST {}", redact_url(&self.token_url)),
                source,
            })
    }

    /// A fresh client assertion (5 min lifetime, random `jti`).
    fn assertion(&self) -> Result<Secret, IdpError> {
        let now = unix_now();
        let claims = serde_json::json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + 300,
            "jti": random_id(),
        });
        let mut header = Header::new(self.signer.alg);
        header.kid = self.signer.kid.clone();
        jsonwebtoken::encode(&header, &claims, &self.signer.key)
            .map(Secret::new)
            .map_err(|e| IdpError::Auth {
                service: SERVICE,
                what: format!(
                    "cannot sign the client assertion with the configured private key: {e}"
                ),
            })
    }
}

/// The client-assertion key, RSA or EC, with its algorithm.
struct Signer {
    key: EncodingKey,
    alg: Algorithm,
    kid: Option<String>,
}

const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

impl Signer {
    /// Reads a PEM private key: `RSA PRIVATE KEY` (PKCS#1), `EC PRIVATE KEY` (SEC1) or
    /// `PRIVATE KEY` (PKCS#8, RSA or EC). EC keys on P-256 sign ES256, on P-384 ES384.
    fn from_pem(pem: &str, kid: Option<String>) -> Result<Signer, IdpError> {
        let bad = |why: &str| IdpError::Auth {
            service: SERVICE,
            what: format!("the OAuth private key cannot be used: {why}"),
        };
        let (label, der) = pem_block(pem).ok_or_else(|| bad("no PEM private key block"))?;
        let (key, alg) = match label.as_str() {
            "RSA PRIVATE KEY" => (EncodingKey::from_rsa_der(&der), Algorithm::RS256),
            "EC PRIVATE KEY" => {
                let (curve, alg) = if contains(&der, OID_P384) {
                    (OID_P384, Algorithm::ES384)
                } else {
                    (OID_P256, Algorithm::ES256)
                };
                (EncodingKey::from_ec_der(&sec1_to_pkcs8(&der, curve)), alg)
            }
            "PRIVATE KEY" if contains(&der, OID_EC_PUBLIC_KEY) => {
                let alg = if contains(&der, OID_P384) {
                    Algorithm::ES384
                } else {
                    Algorithm::ES256
                };
                (EncodingKey::from_ec_der(&der), alg)
            }
            "PRIVATE KEY" => (
                EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| bad(&e.to_string()))?,
                Algorithm::RS256,
            ),
            other => return Err(bad(&format!("unsupported PEM block {other:?}"))),
        };
        Ok(Signer { key, alg, kid })
    }
}

/// The first `-----BEGIN X-----` block: its label and decoded bytes.
fn pem_block(pem: &str) -> Option<(String, Vec<u8>)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body = &rest[label_end + 5..];
    let end = body.find("-----END ")?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD.decode(b64).ok()?;
    Some((label, der))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, (n & 0xff) as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// Wraps a SEC1 `ECPrivateKey` into PKCS#8 (what ring reads).
fn sec1_to_pkcs8(sec1: &[u8], curve_oid: &[u8]) -> Vec<u8> {
    let mut alg = OID_EC_PUBLIC_KEY.to_vec();
    alg.extend_from_slice(curve_oid);
    let mut inner = vec![0x02, 0x01, 0x00];
    inner.extend(der_tlv(0x30, &alg));
    inner.extend(der_tlv(0x04, sec1));
    der_tlv(0x30, &inner)
}

/// The DPoP key pair (P-256), made at startup and kept in memory only.
pub(super) struct DpopKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    jwk: serde_json::Value,
}

impl DpopKey {
    fn generate() -> Result<DpopKey, IdpError> {
        let failed = |what: &str| IdpError::Auth {
            service: SERVICE,
            what: format!("cannot make the DPoP key: {what}"),
        };
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| failed("key generation failed"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| failed(&e.to_string()))?;
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let public = pair.public_key().as_ref();
        if public.len() != 65 {
            return Err(failed("unexpected public key size"));
        }
        let jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
        });
        Ok(DpopKey { pair, rng, jwk })
    }

    /// A DPoP proof for one request. `htu` must carry no query or fragment.
    pub fn proof(
        &self,
        htm: &str,
        htu: &str,
        nonce: Option<&str>,
        ath: Option<&str>,
    ) -> Result<Secret, IdpError> {
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let mut claims = serde_json::json!({
            "htm": htm,
            "htu": htu,
            "iat": unix_now(),
            "jti": random_id(),
        });
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        if let Some(a) = ath {
            claims["ath"] = a.into();
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .pair
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| IdpError::Auth {
                service: SERVICE,
                what: "cannot sign the DPoP proof".to_string(),
            })?;
        Ok(Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        )))
    }
}

/// `htu` for a DPoP proof: the URL without query or fragment.
pub(super) fn htu(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_drops_query() {
        assert_eq!(
            htu("https://a.okta.com/api/v1/groups?search=x&limit=2"),
            "https://a.okta.com/api/v1/groups"
        );
    }

    #[test]
    fn der_lengths() {
        assert_eq!(der_tlv(0x04, &[1; 3])[..2], [0x04, 3]);
        assert_eq!(der_tlv(0x04, &[1; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(der_tlv(0x04, &[1; 300])[..4], [0x04, 0x82, 1, 44]);
    }
}
