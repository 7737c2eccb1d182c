//! Prometheus metrics, rendered as the text exposition format by hand (no client crate).
//!
//! Never an email (or any person) as a label value: labels are services, endpoints,
//! statuses, triggers, kinds, severities and states.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::http::RequestStats;
use crate::reconcile::Finding;

#[derive(Debug, Default)]
pub struct Metrics {}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// One pass ended: `trigger` is the reason label, `ok` whether it succeeded.
    pub fn pass_finished(&self, trigger: &str, scope: &str, ok: bool, duration: Duration) {
        let _ = (trigger, scope, ok, duration);
        todo!()
    }

    pub fn set_last_success(&self, at: DateTime<Utc>) {
        let _ = at;
        todo!()
    }

    /// Replaces the open-findings gauge (by kind, severity and state).
    pub fn set_open_findings(&self, findings: &[Finding]) {
        let _ = findings;
        todo!()
    }

    /// IdP change → seen in Segment.
    pub fn observe_latency(&self, seconds: f64) {
        let _ = seconds;
        todo!()
    }

    /// The whole exposition, API request counts and rate-limit waits included.
    pub fn render(&self, requests: &RequestStats) -> String {
        let _ = requests;
        todo!()
    }
}
