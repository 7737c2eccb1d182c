//! Delivery: one worker per sink drains that sink's rows of the durable outbox in the
//! store, oldest first (so a resolve never overtakes its trigger).
//!
//! Contract (issue 4, alerting.md §3 and §8):
//! - A row is sent at most once successfully: it is marked delivered right after the
//!   sink's 2xx. A crash between the two re-sends it on restart, which every sink
//!   tolerates (PagerDuty dedups on the key, the webhook's `webhook-id` is the row's).
//! - 429/5xx/no answer: the row is retried after `Retry-After` when the sink gave one,
//!   else after an exponential backoff with jitter from one second, capped by
//!   `alerts.retry_max_backoff`; after `alerts.retry_for` it is dead-lettered and the
//!   sink is reported failing on the other sinks.
//! - 400 (or any other refusal of the payload): dead-lettered at once, logged with the
//!   sink's reason, counted. The next rows go on.
//! - 401/403/404/410 and Slack's revoked-webhook answers: the sink is marked broken in
//!   the store and sends nothing (its rows wait, nothing is lost) until the daemon
//!   restarts or `scimwatch alerts test` passes for it; a `sink_failing` alert goes to
//!   the other sinks, and resolves when the sink delivers again.
//! - Pacing is the sink client's (one request a second, no burst).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng as _;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::plan::{sink_key, AlertRecord, Send};
use super::store::{AlertWrite, OutboxRow};
use super::{one_line, Action, Alert, AlertSink, Family, SinkError, MAX_SUMMARY};
use crate::metrics::Metrics;
use crate::reconcile::finding::Severity;
use crate::store::Store;

/// How often a broken sink looks whether `alerts test` cleared it.
const BROKEN_POLL: Duration = Duration::from_secs(2);
/// How long a worker waits after a store error before trying again.
const STORE_RETRY: Duration = Duration::from_secs(5);
/// A `Retry-After` longer than this is capped (a bad clock must not stall a sink).
const MAX_HINT: Duration = Duration::from_secs(3600);

/// The outbox's horizons (from `[alerts]`).
#[derive(Clone, Debug)]
pub struct Horizons {
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub retry_for: Duration,
}

/// Everything the workers share.
pub struct Outbox {
    pub store: Store,
    pub sinks: Vec<Arc<dyn AlertSink>>,
    pub horizons: Horizons,
    pub metrics: Arc<Metrics>,
    /// `/status`'s `alerts` section, refreshed after every change (shared with the server).
    pub status: Arc<RwLock<Option<Value>>>,
    wake: watch::Sender<u64>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("sinks", &self.sinks)
            .field("horizons", &self.horizons)
            .finish()
    }
}

/// What one attempt led to.
#[derive(Clone, Debug, PartialEq)]
enum Next {
    Delivered,
    Retry(DateTime<Utc>),
    Dead(String),
    Broken(String),
}

impl Outbox {
    pub fn new(
        store: Store,
        sinks: Vec<Arc<dyn AlertSink>>,
        horizons: Horizons,
        metrics: Arc<Metrics>,
    ) -> Arc<Outbox> {
        let (wake, _) = watch::channel(0);
        Arc::new(Outbox {
            store,
            sinks,
            horizons,
            metrics,
            status: Arc::new(RwLock::new(None)),
            wake,
        })
    }

    /// Tells the workers that rows were written.
    pub fn wake(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Names of the configured sinks.
    pub fn sink_names(&self) -> Vec<String> {
        self.sinks.iter().map(|s| s.name().to_string()).collect()
    }

    /// Refreshes the outbox gauges and `/status`'s `alerts` from the store: open alerts
    /// by family, sources failing, and per sink the pending rows, the oldest, dead
    /// letters and the broken mark. Sink names only, never a secret.
    pub async fn publish(&self, now: DateTime<Utc>) {
        let depth = self.store.outbox_depth().await.unwrap_or_default();
        let broken = self.store.sinks_broken().await.unwrap_or_default();
        self.metrics
            .set_outbox(&self.sink_names(), &depth, &broken, now);
        // After every delivery: counted by the database, no record decoded.
        let open: BTreeMap<String, u64> = self
            .store
            .alerts_open_by_family()
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        let failures = self.store.alert_sources().await.unwrap_or_default();
        let sinks: Vec<Value> = self
            .sinks
            .iter()
            .map(|s| {
                let d = depth.iter().find(|d| d.sink == s.name());
                let b = broken.iter().find(|b| b.name == s.name());
                json!({
                    "name": s.name(),
                    "kind": s.kind(),
                    "pending": d.map_or(0, |d| d.pending),
                    "oldest_pending": d.and_then(|d| d.oldest),
                    "dead_letters": d.map_or(0, |d| d.dead),
                    "broken": b.map(|b| json!({"since": b.since, "reason": b.reason})),
                })
            })
            .collect();
        let doc = json!({
            "open": open,
            "sources_failing": failures.iter().map(|f| json!({
                "service": f.service, "workspace": f.workspace,
                "failed_passes": f.count, "error": f.error, "since": f.since,
            })).collect::<Vec<_>>(),
            "sinks": sinks,
        });
        if let Ok(mut s) = self.status.write() {
            *s = Some(doc);
        }
    }

    /// Runs the worker of sink `index` until `cancel`.
    pub async fn run_sink(self: Arc<Self>, index: usize, cancel: CancellationToken) {
        let Some(sink) = self.sinks.get(index).cloned() else {
            return;
        };
        let name = sink.name().to_string();
        let mut wake = self.wake.subscribe();
        loop {
            if cancel.is_cancelled() {
                return;
            }
            wake.borrow_and_update();
            match self.store.sinks_broken().await {
                Ok(broken) if broken.iter().any(|b| b.name == name) => {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(BROKEN_POLL) => {}
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(sink = %name, error = %crate::error::chain(&e), "Cannot read the outbox; retrying.");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(STORE_RETRY) => {}
                    }
                    continue;
                }
            }
            let row = match self.store.outbox_next(&name).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(sink = %name, error = %crate::error::chain(&e), "Cannot read the outbox; retrying.");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(STORE_RETRY) => {}
                    }
                    continue;
                }
            };
            let Some(row) = row else {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = wake.changed() => {}
                }
                continue;
            };
            let now = Utc::now();
            if row.next_at > now {
                let wait = (row.next_at - now).to_std().unwrap_or(Duration::ZERO);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            let result = sink.send(&row.alert).await;
            let now = Utc::now();
            let next = decide(
                &row,
                &result,
                &self.horizons,
                now,
                rand::thread_rng().gen_range(0.8..1.2),
            );
            if let Err(e) = self.record(&sink, &row, &result, &next, now).await {
                tracing::error!(sink = %name, error = %crate::error::chain(&e), "Cannot record a delivery; it will be retried.");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(STORE_RETRY) => {}
                }
            }
            self.publish(now).await;
        }
    }

    async fn record(
        &self,
        sink: &Arc<dyn AlertSink>,
        row: &OutboxRow,
        result: &Result<super::Delivered, SinkError>,
        next: &Next,
        now: DateTime<Utc>,
    ) -> Result<(), crate::store::StoreError> {
        let name = sink.name();
        let action = row.alert.action.as_str();
        let a = &row.alert;
        match next {
            Next::Delivered => {
                self.store.outbox_delivered(row.id, now).await?;
                self.metrics.alert_sent(name, action, "delivered");
                tracing::info!(sink = name, action, key = %a.key, family = a.family.as_str(), attempts = row.attempts + 1, "Alert delivered.");
                self.sink_recovered(name, now).await?;
            }
            Next::Retry(at) => {
                let error = result
                    .as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                self.store.outbox_retry(row.id, &error, *at).await?;
                self.metrics.alert_sent(name, action, "retry");
                tracing::warn!(sink = name, action, key = %a.key, error = %error, retry_at = %at, "Alert not delivered; retrying.");
            }
            Next::Dead(reason) => {
                self.store.outbox_dead(row.id, reason, now).await?;
                self.metrics.alert_sent(name, action, "dead_letter");
                tracing::error!(sink = name, action, key = %a.key, summary = %a.summary, reason = %reason, "Alert dead-lettered: it will not be sent again (kept in the store's outbox).");
                if result
                    .as_ref()
                    .err()
                    .is_some_and(|e| !matches!(e, SinkError::Rejected { .. }))
                {
                    // Retries ran out: the sink itself is failing.
                    self.sink_failing(name, reason, now).await?;
                }
            }
            Next::Broken(reason) => {
                self.store.outbox_retry(row.id, reason, now).await?;
                self.metrics.alert_sent(name, action, "broken");
                tracing::error!(sink = name, reason = %reason, "Alert sink is broken: nothing is sent to it until scimwatch restarts or `scimwatch alerts test --sink {name}` passes. Its alerts wait in the outbox.");
                // Tell the others first: once the mark is set, readers may look for it.
                self.sink_failing(name, reason, now).await?;
                self.store.sink_mark_broken(name, reason, now).await?;
            }
        }
        Ok(())
    }

    /// Raises `sink_failing` about `name` on every other sink that is not broken.
    async fn sink_failing(
        &self,
        name: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), crate::store::StoreError> {
        let key = sink_key(name);
        if self.store.alert_get(&key).await?.is_some() {
            return Ok(());
        }
        let broken = self.store.sinks_broken().await?;
        let others: Vec<String> = self
            .sinks
            .iter()
            .map(|s| s.name().to_string())
            .filter(|s| s != name && !broken.iter().any(|b| &b.name == s))
            .collect();
        let alert = sink_failing_alert(&key, name, reason, now);
        if others.is_empty() {
            tracing::error!(
                sink = name,
                "No other alert sink can report that this one is failing."
            );
        }
        let record = AlertRecord {
            key: key.clone(),
            family: Family::SinkFailing,
            workspace: "*".into(),
            severity: alert.severity,
            sinks: others.clone(),
            clean: 0,
            digest: None,
            members: Vec::new(),
            resolve_after: None,
            opened_at: now,
            alert: alert.clone(),
        };
        let sends = if others.is_empty() {
            vec![]
        } else {
            vec![Send {
                sinks: others,
                alert,
            }]
        };
        self.store
            .alerts_write(
                &AlertWrite {
                    upsert: std::slice::from_ref(&record),
                    delete: &[],
                    failures: None,
                    sends: &sends,
                },
                now,
            )
            .await?;
        self.wake();
        Ok(())
    }

    /// `name` delivered: resolve its `sink_failing` alert if one is open.
    async fn sink_recovered(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), crate::store::StoreError> {
        let key = sink_key(name);
        let Some(r) = self.store.alert_get(&key).await? else {
            return Ok(());
        };
        let sends = if r.sinks.is_empty() {
            vec![]
        } else {
            vec![Send {
                sinks: r.sinks.clone(),
                alert: r.alert.resolving(now),
            }]
        };
        self.store
            .alerts_write(
                &AlertWrite {
                    upsert: &[],
                    delete: std::slice::from_ref(&key),
                    failures: None,
                    sends: &sends,
                },
                now,
            )
            .await?;
        tracing::info!(sink = name, "Alert sink delivers again.");
        self.wake();
        Ok(())
    }
}

/// What to do with a row after an attempt (pure; `jitter` in 0.8..1.2).
fn decide(
    row: &OutboxRow,
    result: &Result<super::Delivered, SinkError>,
    h: &Horizons,
    now: DateTime<Utc>,
    jitter: f64,
) -> Next {
    match result {
        Ok(_) => Next::Delivered,
        Err(SinkError::Rejected { status, detail, .. }) => {
            Next::Dead(format!("the sink refused the alert ({status}): {detail}"))
        }
        Err(SinkError::Broken { status, detail, .. }) => {
            Next::Broken(format!("{status}: {detail}"))
        }
        Err(e @ SinkError::Transient { retry_after, .. }) => {
            let exp = h
                .min_backoff
                .saturating_mul(2u32.saturating_pow(row.attempts.min(20)))
                .mul_f64(jitter)
                .min(h.max_backoff);
            let wait = retry_after.map(|r| r.min(MAX_HINT)).unwrap_or(exp);
            let at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero());
            let horizon = row.created_at
                + chrono::Duration::from_std(h.retry_for).unwrap_or(chrono::Duration::zero());
            if at > horizon {
                Next::Dead(format!(
                    "still failing after {} attempts over {}: {e}",
                    row.attempts + 1,
                    humantime::format_duration(Duration::from_secs(
                        (now - row.created_at).num_seconds().max(0) as u64
                    ))
                ))
            } else {
                Next::Retry(at)
            }
        }
    }
}

fn sink_failing_alert(key: &str, sink: &str, reason: &str, now: DateTime<Utc>) -> Alert {
    Alert {
        key: key.to_string(),
        action: Action::Trigger,
        severity: Severity::Error,
        summary: one_line(
            &format!("sink_failing: alert sink {sink:?} cannot deliver ({reason}); alerts for it wait in the outbox"),
            MAX_SUMMARY,
        ),
        finding: None,
        workspace: "*".into(),
        kind: "sink_failing".into(),
        family: Family::SinkFailing,
        extra: Some(json!({
            "sink": sink,
            "error": reason,
            "remedy": format!("Fix the sink's configuration or credentials, then run `scimwatch alerts test --sink {sink}` (or restart scimwatch) to resume delivery."),
        })),
        message_id: None,
        at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn row(attempts: u32, created_min_ago: i64, now: DateTime<Utc>) -> OutboxRow {
        OutboxRow {
            id: 1,
            sink: "pd".into(),
            alert: Alert::test(Action::Trigger, now),
            created_at: now - chrono::Duration::minutes(created_min_ago),
            next_at: now,
            attempts,
            status: "pending".into(),
            last_error: None,
        }
    }

    fn h() -> Horizons {
        Horizons {
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            retry_for: Duration::from_secs(3600),
        }
    }

    fn transient(retry_after: Option<u64>) -> Result<super::super::Delivered, SinkError> {
        Err(SinkError::Transient {
            sink: "pd".into(),
            status: Some(503),
            retry_after: retry_after.map(Duration::from_secs),
            detail: "down".into(),
        })
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 10, 0, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn backoff_doubles_from_one_second_and_is_capped() {
        let n = now();
        let waits: Vec<i64> = [0, 1, 2, 3, 10]
            .iter()
            .map(
                |a| match decide(&row(*a, 0, n), &transient(None), &h(), n, 1.0) {
                    Next::Retry(at) => (at - n).num_seconds(),
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 300]);
    }

    #[test]
    fn retry_after_wins_over_the_backoff() {
        let n = now();
        assert_eq!(
            decide(&row(0, 0, n), &transient(Some(42)), &h(), n, 1.0),
            Next::Retry(n + chrono::Duration::seconds(42))
        );
    }

    #[test]
    fn past_retry_for_it_is_dead_lettered() {
        let n = now();
        assert!(matches!(
            decide(&row(9, 59, n), &transient(Some(120)), &h(), n, 1.0),
            Next::Dead(r) if r.contains("still failing after 10 attempts")
        ));
    }

    #[test]
    fn a_400_dead_letters_and_a_401_breaks_the_sink() {
        let n = now();
        let rejected = Err(SinkError::Rejected {
            sink: "pd".into(),
            status: 400,
            detail: "Event object is invalid".into(),
        });
        assert!(
            matches!(decide(&row(0, 0, n), &rejected, &h(), n, 1.0), Next::Dead(r) if r.contains("400") && r.contains("invalid"))
        );
        let broken = Err(SinkError::Broken {
            sink: "pd".into(),
            status: 404,
            detail: "no_service".into(),
        });
        assert_eq!(
            decide(&row(0, 0, n), &broken, &h(), n, 1.0),
            Next::Broken("404: no_service".into())
        );
    }
}
