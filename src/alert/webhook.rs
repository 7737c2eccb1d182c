//! The generic signed webhook (alerting.md §3): the versioned envelope whose `finding` is
//! the finding JSON, signed the Standard Webhooks way — `webhook-id` (unique per message,
//! the same on every retry), `webhook-timestamp` (Unix seconds), `webhook-signature:
//! v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` where the key is the base64
//! decoded from `whsec_<base64>`. With a previous secret set (rotation) a second,
//! space-separated signature follows. The body is serialised once and those exact bytes
//! are signed and sent. Secrets never leave `Secret` except into the HMAC.

use std::sync::Arc;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use serde_json::{json, Value};
use sha2::Sha256;

use super::{classify, no_answer, sink_http, Action, Alert, AlertSink, SendFuture};
use crate::http::{Http, RequestStats, RetryConfig};
use crate::reconcile::finding::format_time;
use crate::secret::Secret;

pub struct Webhook {
    name: String,
    url: String,
    key: Secret,
    previous_key: Option<Secret>,
    http: Http,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret", &self.key)
            .field("previous_secret", &self.previous_key)
            .finish()
    }
}

impl Webhook {
    pub fn new(
        name: &str,
        url: &str,
        secret: Secret,
        previous_secret: Option<Secret>,
        retry: RetryConfig,
        stats: Arc<RequestStats>,
    ) -> Webhook {
        Webhook {
            name: name.to_string(),
            url: url.to_string(),
            key: secret,
            previous_key: previous_secret,
            http: sink_http("webhook", retry, stats),
        }
    }
}

/// The key bytes of a `whsec_<base64>` secret (checked at config load; `None` if not).
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The envelope for `alert` (pure): `id` is the message id.
pub fn envelope(alert: &Alert, id: &str) -> Value {
    let status = match alert.action {
        Action::Trigger => "triggered",
        Action::Resolve => "resolved",
    };
    let family = alert.family.as_str();
    let mut v = json!({
        "type": format!("scimwatch.{family}.{status}"),
        "version": 1,
        "id": id,
        "occurred_at": format_time(&alert.at),
        "dedup_key": alert.key,
        "status": status,
        "severity": alert.severity.as_str(),
        "workspace": alert.workspace,
        "summary": alert.summary,
        "test": alert.is_test(),
        "finding": alert.finding,
    });
    if let Some(extra) = &alert.extra {
        v["details"] = extra.clone();
    }
    v
}

fn new_message_id() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("msg_{hex}")
}

impl AlertSink for Webhook {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "webhook"
    }
    fn send<'a>(&'a self, alert: &'a Alert) -> SendFuture<'a> {
        Box::pin(async move {
            let id = alert.message_id.clone().unwrap_or_else(new_message_id);
            // Serialise once: these exact bytes are sent on every attempt. The timestamp
            // (and so the signature) is each attempt's own: Standard Webhooks receivers
            // reject a timestamp too far from their clock, and a retry after a long
            // Retry-After must not arrive looking stale.
            let body = envelope(alert, &id).to_string().into_bytes();
            let keys: Vec<Vec<u8>> = std::iter::once(&self.key)
                .chain(self.previous_key.as_ref())
                .filter_map(|s| decode_secret(s.expose()))
                .collect();
            let url = self.url.as_str();
            let answer = self
                .http
                .send("POST /webhook", &|c: &reqwest::Client| {
                    let timestamp = chrono::Utc::now().timestamp();
                    let signature = keys
                        .iter()
                        .map(|k| sign(k, &id, timestamp, &body))
                        .collect::<Vec<_>>()
                        .join(" ");
                    c.post(url)
                        .header("content-type", "application/json")
                        .header("webhook-id", &id)
                        .header("webhook-timestamp", timestamp.to_string())
                        .header("webhook-signature", signature)
                        .body(body.clone())
                })
                .await
                .map_err(|e| no_answer(&self.name, &e, true))?;
            classify(&self.name, &answer, &|_| false)
        })
    }
}
