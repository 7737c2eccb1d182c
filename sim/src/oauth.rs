//! Okta's org authorization server: `POST /oauth2/v1/token` (client credentials with
//! `private_key_jwt`, optional DPoP with a server nonce) and the check of every API call's
//! `Authorization` header (SSWS, Bearer, DPoP).
//!
//! Contract: an access token is bound to its client's scopes and admin-role setting and
//! lives 3600 s; a DPoP-bound token is only honoured with a fresh proof from the same key
//! (`htm`, `htu`, `iat` ±5 min, unique `jti`, `ath`). Never log tokens or assertions.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use axum::http::StatusCode;
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::cursor::random_id;
use super::http::{json as json_resp, set};
use super::{App, Req};

pub const TOKEN_LIFETIME_SECS: i64 = 3600;

struct Issued {
    scopes: Vec<String>,
    admin_role: bool,
    jkt: Option<String>,
    expires: DateTime<Utc>,
}

pub struct OAuth {
    tokens: Mutex<HashMap<String, Issued>>,
    jtis: Mutex<HashSet<String>>,
    pub nonce: String,
}

/// Who is calling the Okta API.
pub struct Principal {
    /// `None` for the SSWS token (all scopes).
    pub scopes: Option<Vec<String>>,
    pub admin_role: bool,
}

impl Principal {
    pub fn has_scope(&self, needed: &str) -> bool {
        match &self.scopes {
            None => true,
            Some(s) => {
                let manage = needed.replace(".read", ".manage");
                s.iter().any(|x| x == needed || *x == manage)
            }
        }
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_resp(
        status,
        &json!({"error": error, "error_description": description}),
        "application/json",
    )
}

impl OAuth {
    pub fn new() -> OAuth {
        OAuth {
            tokens: Mutex::new(HashMap::new()),
            jtis: Mutex::new(HashSet::new()),
            nonce: random_id(32),
        }
    }

    fn fresh_jti(&self, jti: &str) -> bool {
        self.jtis
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(jti.to_string())
    }
}

fn alg_family(alg: Algorithm) -> Option<&'static str> {
    match alg {
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => Some("rsa"),
        Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512 => Some("rsa"),
        Algorithm::ES256 | Algorithm::ES384 => Some("ec"),
        _ => None,
    }
}

/// RFC 7638 thumbprint of a JWK given as JSON.
fn thumbprint(jwk: &Value) -> Option<String> {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str).map(str::to_string);
    let canon = match s("kty")?.as_str() {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            s("crv")?,
            s("x")?,
            s("y")?
        ),
        "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e")?, s("n")?),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(canon.as_bytes())))
}

/// Verifies a DPoP proof; returns its claims and key thumbprint.
fn verify_proof(
    app: &App,
    proof: &str,
    method: &str,
    htu: &str,
) -> Result<(Value, String), String> {
    let header = decode_header(proof).map_err(|_| "The DPoP proof is not a JWT.".to_string())?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err("The DPoP proof 'typ' must be 'dpop+jwt'.".to_string());
    }
    alg_family(header.alg).ok_or("The DPoP proof 'alg' is not supported.")?;
    let jwk = header.jwk.ok_or("The DPoP proof has no 'jwk'.")?;
    let jwk_json = serde_json::to_value(&jwk).map_err(|_| "Bad 'jwk'.".to_string())?;
    let jkt = thumbprint(&jwk_json).ok_or("Bad 'jwk'.")?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "Bad 'jwk'.".to_string())?;
    let mut v = Validation::new(header.alg);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims = HashSet::new();
    let claims = decode::<Value>(proof, &key, &v)
        .map_err(|_| "The DPoP proof signature is invalid.".to_string())?
        .claims;
    let get = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or("");
    if !get("htm").eq_ignore_ascii_case(method) {
        return Err("The DPoP proof 'htm' does not match the request method.".to_string());
    }
    if get("htu") != htu {
        return Err("The DPoP proof 'htu' does not match the request URL.".to_string());
    }
    let iat = claims.get("iat").and_then(Value::as_i64).unwrap_or(0);
    if (Utc::now().timestamp() - iat).abs() > 300 {
        return Err("The DPoP proof 'iat' is outside the allowed window.".to_string());
    }
    let jti = get("jti");
    if jti.is_empty() || !app.oauth.fresh_jti(jti) {
        return Err("The DPoP proof 'jti' was already used.".to_string());
    }
    Ok((claims, jkt))
}

/// `POST /oauth2/v1/token`.
pub fn token(app: &App, req: &Req) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&req.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let f = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if f("grant_type") != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        );
    }
    if f("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed: private_key_jwt is required.",
        );
    }
    let assertion = f("client_assertion");
    let token_url = format!("{}/okta/oauth2/v1/token", req.origin);
    let claims_unverified: Option<Value> = assertion
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    let iss = claims_unverified
        .as_ref()
        .and_then(|c| c.get("iss"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let client = {
        let st = app.state();
        st.okta.clients.iter().find(|c| c.client_id == iss).cloned()
    };
    let Some(client) = client else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The client_assertion token has an unknown issuer.",
        );
    };
    let Ok(header) = decode_header(assertion) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The client_assertion is not a valid JWT.",
        );
    };
    let key = match alg_family(header.alg) {
        Some("rsa") => DecodingKey::from_rsa_pem(client.public_key_pem.as_bytes()),
        Some(_) => DecodingKey::from_ec_pem(client.public_key_pem.as_bytes()),
        None => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "The client_assertion 'alg' is not supported.",
            )
        }
    };
    let Ok(key) = key else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The client's registered key does not fit the assertion's 'alg'.",
        );
    };
    let mut v = Validation::new(header.alg);
    v.set_audience(&[token_url.as_str()]);
    v.set_issuer(&[client.client_id.as_str()]);
    v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    let claims = match decode::<Value>(assertion, &key, &v) {
        Ok(d) => d.claims,
        Err(e) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                &format!("The client_assertion is invalid: {e}."),
            );
        }
    };
    if claims.get("sub").and_then(Value::as_str) != Some(client.client_id.as_str()) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The client_assertion 'sub' must equal the client_id.",
        );
    }
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp > Utc::now().timestamp() + TOKEN_LIFETIME_SECS + 60 {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The client_assertion 'exp' is more than one hour in the future.",
        );
    }
    let requested: Vec<String> = f("scope").split_whitespace().map(str::to_string).collect();
    if requested.is_empty() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "The authorization server resource does not have any configured default scopes, 'scope' must be provided.");
    }
    let denied: Vec<&String> = requested
        .iter()
        .filter(|s| !client.scopes.contains(s))
        .collect();
    if !denied.is_empty() {
        let list: Vec<&str> = denied.iter().map(|s| s.as_str()).collect();
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!("The following scopes are not allowed: {}", list.join(" ")),
        );
    }
    let mut jkt = None;
    if client.dpop {
        let Some(proof) = req.header("dpop") else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_dpop_proof",
                "The DPoP proof JWT header is missing.",
            );
        };
        let (pclaims, thumb) = match verify_proof(app, proof, "POST", &token_url) {
            Ok(x) => x,
            Err(msg) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_dpop_proof", &msg),
        };
        if pclaims.get("nonce").and_then(Value::as_str) != Some(app.oauth.nonce.as_str()) {
            let mut resp = oauth_error(
                StatusCode::BAD_REQUEST,
                "use_dpop_nonce",
                "Authorization server requires nonce in DPoP proof.",
            );
            set(&mut resp, "dpop-nonce", &app.oauth.nonce);
            return resp;
        }
        jkt = Some(thumb);
    }
    let access = format!("eyJ{}", random_id(80));
    let scope = requested.join(" ");
    app.oauth
        .tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            access.clone(),
            Issued {
                scopes: requested,
                admin_role: client.admin_role,
                jkt: jkt.clone(),
                expires: Utc::now() + chrono::Duration::seconds(TOKEN_LIFETIME_SECS),
            },
        );
    let token_type = if jkt.is_some() { "DPoP" } else { "Bearer" };
    json_resp(
        StatusCode::OK,
        &json!({"token_type": token_type, "expires_in": TOKEN_LIFETIME_SECS, "access_token": access, "scope": scope}),
        "application/json",
    )
}

/// Why an API call was refused: (HTTP status, Okta error code, summary).
pub type Refusal = (u16, &'static str, String);

/// Checks the `Authorization` header of an Okta API call.
pub fn authenticate(app: &App, req: &Req) -> Result<Principal, Refusal> {
    let invalid = || (401, "E0000011", "Invalid token provided".to_string());
    let auth = req.header("authorization").unwrap_or("").trim();
    if let Some(tok) = auth.strip_prefix("SSWS") {
        let st = app.state();
        return if tok.trim() == st.okta.token {
            Ok(Principal {
                scopes: None,
                admin_role: true,
            })
        } else {
            Err(invalid())
        };
    }
    let (scheme, tok) = auth.split_once(' ').unwrap_or((auth, ""));
    let tok = tok.trim();
    let tokens = app.oauth.tokens.lock().unwrap_or_else(|e| e.into_inner());
    let Some(issued) = tokens.get(tok) else {
        return Err(invalid());
    };
    if issued.expires <= Utc::now() {
        return Err(invalid());
    }
    let principal = Principal {
        scopes: Some(issued.scopes.clone()),
        admin_role: issued.admin_role,
    };
    match (scheme.to_ascii_lowercase().as_str(), &issued.jkt) {
        ("bearer", None) => Ok(principal),
        ("bearer", Some(_)) => Err((
            403,
            "E0000006",
            "You do not have permission to perform the requested action".to_string(),
        )),
        ("dpop", Some(jkt)) => {
            let jkt = jkt.clone();
            drop(tokens);
            let proof = req.header("dpop").ok_or((
                400,
                "E0000001",
                "Api validation failed: DPoP proof is missing".to_string(),
            ))?;
            let htu = format!("{}{}", req.origin, req.raw_path);
            let (claims, thumb) = verify_proof(app, proof, req.method.as_str(), &htu)
                .map_err(|m| (401, "E0000011", format!("Invalid token provided: {m}")))?;
            let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(tok.as_bytes()));
            if thumb != jkt || claims.get("ath").and_then(Value::as_str) != Some(ath.as_str()) {
                return Err((
                    401,
                    "E0000011",
                    "Invalid token provided: the DPoP proof does not match the access token"
                        .to_string(),
                ));
            }
            Ok(principal)
        }
        _ => Err(invalid()),
    }
}
