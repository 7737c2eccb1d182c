//! PagerDuty Events API v2 (alerting.md §1): `trigger` and `resolve` with the finding id
//! as `dedup_key`; 202 is accepted (queued). Must never show the routing key: it lives in
//! a [`Secret`] and only enters the request body.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{classify, no_answer, sink_http, Action, Alert, AlertSink, SendFuture};
use crate::http::{Http, RequestStats, RetryConfig};
use crate::reconcile::finding::format_time;
use crate::secret::Secret;

pub struct PagerDuty {
    name: String,
    url: String,
    routing_key: Secret,
    http: Http,
}

impl std::fmt::Debug for PagerDuty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagerDuty")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("routing_key", &self.routing_key)
            .finish()
    }
}

impl PagerDuty {
    pub fn new(
        name: &str,
        url: &str,
        routing_key: Secret,
        retry: RetryConfig,
        stats: Arc<RequestStats>,
    ) -> PagerDuty {
        PagerDuty {
            name: name.to_string(),
            url: url.to_string(),
            routing_key,
            http: sink_http("pagerduty", retry, stats),
        }
    }
}

/// The Events v2 body for `alert` (pure). PagerDuty's severities are ours.
pub fn event(routing_key: &str, alert: &Alert) -> Value {
    let mut v = json!({
        "routing_key": routing_key,
        "event_action": alert.action.as_str(),
        "dedup_key": alert.key,
        "client": "scimwatch",
    });
    if alert.action == Action::Trigger {
        v["payload"] = json!({
            "summary": alert.summary,
            "source": format!("scimwatch/{}", alert.workspace),
            "severity": alert.severity.as_str(),
            "timestamp": format_time(&alert.at),
            "component": alert.kind,
            "group": alert.workspace,
            "class": alert.kind,
            "custom_details": alert.details(),
        });
    }
    v
}

impl AlertSink for PagerDuty {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "pagerduty"
    }
    fn send<'a>(&'a self, alert: &'a Alert) -> SendFuture<'a> {
        Box::pin(async move {
            let body = event(self.routing_key.expose(), alert).to_string();
            let url = self.url.as_str();
            let answer = self
                .http
                .send("POST /v2/enqueue", &|c: &reqwest::Client| {
                    c.post(url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                })
                .await
                .map_err(|e| no_answer(&self.name, &e, true))?;
            classify(&self.name, &answer, &|_| false)
        })
    }
}
