//! Opaque, unforgeable cursors and deterministic ids.
//!
//! Contract: every cursor the sim hands out is signed with a per-process HMAC key, so a
//! hand-made or altered cursor is rejected (Okta 400 `E0000001`, Segment 422 "Invalid
//! cursor"). Ids are derived from stable inputs (a login, an email, a name) so two runs
//! of one seed produce the same ids. Never accept a cursor that fails verification.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` base62 characters derived from `seed` (SHA-256, re-hashed when more are needed).
pub fn base62_id(seed: &str, len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut block = Sha256::digest(seed.as_bytes()).to_vec();
    while out.len() < len {
        for b in &block {
            if out.len() == len {
                break;
            }
            out.push(BASE62[(*b as usize) % 62] as char);
        }
        block = Sha256::digest(&block).to_vec();
    }
    out
}

/// A random base62 string (request ids, tokens, nonces).
pub fn random_id(len: usize) -> String {
    use rand::Rng as _;
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| BASE62[rng.gen_range(0..62)] as char)
        .collect()
}

/// Okta's timestamp form: `2026-11-26T22:00:00.000Z`.
pub fn okta_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Segment's audit timestamp form: ISO 8601 with millis.
pub fn iso_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Signs and verifies cursor payloads.
pub struct Signer {
    key: [u8; 32],
}

impl Signer {
    pub fn new() -> Signer {
        use rand::Rng as _;
        Signer {
            key: rand::thread_rng().gen(),
        }
    }

    fn mac(&self, payload: &[u8]) -> String {
        // new_from_slice accepts keys of any length for HMAC: infallible here.
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(payload);
        let tag = mac.finalize().into_bytes();
        URL_SAFE_NO_PAD.encode(&tag[..12])
    }

    /// Okta `after`: url-safe base64 of `payload` plus a tag.
    pub fn okta(&self, payload: &str) -> String {
        let tag = self.mac(payload.as_bytes());
        URL_SAFE_NO_PAD.encode(format!("{payload}~{tag}"))
    }

    pub fn okta_verify(&self, cursor: &str) -> Option<String> {
        let raw = URL_SAFE_NO_PAD.decode(cursor.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (payload, tag) = text.rsplit_once('~')?;
        (self.mac(payload.as_bytes()) == tag).then(|| payload.to_string())
    }

    /// Segment list cursor: standard base64 of `offset.tag` (looks like `MA==`-style).
    pub fn segment(&self, offset: usize) -> String {
        let payload = offset.to_string();
        let tag = self.mac(format!("o{payload}").as_bytes());
        STANDARD.encode(format!("{payload}.{tag}"))
    }

    pub fn segment_verify(&self, cursor: &str) -> Option<usize> {
        let raw = STANDARD.decode(cursor.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (payload, tag) = text.split_once('.')?;
        if self.mac(format!("o{payload}").as_bytes()) != tag {
            return None;
        }
        payload.parse().ok()
    }

    /// Audit cursor: base64 JSON `{"pageToken","endTime","sig"}`, pinning `endTime`.
    pub fn audit(&self, offset: usize, end_time: &str) -> String {
        let page_token = STANDARD.encode(offset.to_string());
        let sig = self.mac(format!("a{page_token}|{end_time}").as_bytes());
        let json = serde_json::json!({"pageToken": page_token, "endTime": end_time, "sig": sig});
        STANDARD.encode(json.to_string())
    }

    pub fn audit_verify(&self, cursor: &str) -> Option<(usize, String)> {
        let raw = STANDARD.decode(cursor.trim()).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
        let page_token = v.get("pageToken")?.as_str()?;
        let end_time = v.get("endTime")?.as_str()?;
        let sig = v.get("sig")?.as_str()?;
        if self.mac(format!("a{page_token}|{end_time}").as_bytes()) != sig {
            return None;
        }
        let offset = String::from_utf8(STANDARD.decode(page_token).ok()?)
            .ok()?
            .parse()
            .ok()?;
        Some((offset, end_time.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_tampering() {
        let s = Signer::new();
        let c = s.okta("u:00u123");
        assert_eq!(s.okta_verify(&c).as_deref(), Some("u:00u123"));
        assert_eq!(s.okta_verify("00u123"), None);
        let forged = URL_SAFE_NO_PAD.encode("u:00u999~AAAAAAAAAAAAAAAA");
        assert_eq!(s.okta_verify(&forged), None);
        let c = s.segment(200);
        assert_eq!(s.segment_verify(&c), Some(200));
        assert_eq!(s.segment_verify("MjAw"), None);
        let c = s.audit(5, "2026-01-01T00:00:00.000Z");
        assert_eq!(
            s.audit_verify(&c),
            Some((5, "2026-01-01T00:00:00.000Z".to_string()))
        );
        assert_eq!(Signer::new().segment_verify(&s.segment(1)), None);
    }

    #[test]
    fn ids_are_deterministic() {
        assert_eq!(base62_id("a", 22), base62_id("a", 22));
        assert_eq!(base62_id("a", 40).len(), 40);
        assert_ne!(base62_id("a", 22), base62_id("b", 22));
    }
}
