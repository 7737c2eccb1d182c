//! Pollers that wake the reconciler: the Okta System Log (polling mode) and each
//! workspace's Segment audit trail. They persist their checkpoints and call
//! [`Activator::activate`]; they never hand events to the reconciler, which re-reads.
//!
//! - System Log: Okta's polling mode (no `until`, ascending), resuming from the persisted
//!   `next` link. A first start begins at the present: the passes themselves read the
//!   look-back.
//! - Audit trail: one unfiltered stream per workspace (`SegmentClient::audit_events`:
//!   no `resourceType` filter, events classified on our side, non-IAM ones dropped).
//!   Segment's audit cursors pin `endTime`, so the checkpoint is the last
//!   event time plus the ids seen at that time, not a cursor. Events whose actor is the
//!   workspace's `self_actor` (scimwatch's own writes) do not wake anything.
//!
//! A failed poll is logged and retried at the next tick: the periodic full pass is the
//! backstop, so a poller failure costs latency, never correctness.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Activator, Reason};
use crate::config::WorkspaceConfig;
use crate::idp::okta::Okta;
use crate::model::AuditEvent;
use crate::segment::SegmentClient;
use crate::store::Store;

pub const SYSTEM_LOG_CHECKPOINT: &str = "okta.system_log.next";

/// The audit poller's checkpoint for one workspace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCheckpoint {
    pub last: Option<DateTime<Utc>>,
    /// Ids of the events at `last` already seen.
    pub ids: BTreeSet<String>,
}

impl AuditCheckpoint {
    /// The events newer than the checkpoint (pure), and the checkpoint after them.
    pub fn advance(&self, events: &[AuditEvent]) -> (Vec<AuditEvent>, AuditCheckpoint) {
        let fresh: Vec<AuditEvent> = events
            .iter()
            .filter(|e| match self.last {
                None => true,
                Some(last) => e.at > last || (e.at == last && !self.ids.contains(&e.id)),
            })
            .cloned()
            .collect();
        let mut next = self.clone();
        for e in &fresh {
            match next.last {
                Some(l) if e.at < l => {}
                Some(l) if e.at == l => {
                    next.ids.insert(e.id.clone());
                }
                _ => {
                    next.last = Some(e.at);
                    next.ids = [e.id.clone()].into();
                }
            }
        }
        (fresh, next)
    }
}

pub fn audit_checkpoint_name(workspace: &str) -> String {
    format!("segment.audit.{workspace}")
}

/// Polls the System Log every `every` until cancelled.
pub async fn system_log(
    okta: Okta,
    store: Store,
    activator: Activator,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let checkpoint = match store.checkpoint_get(SYSTEM_LOG_CHECKPOINT).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "Cannot read the System Log checkpoint.");
                continue;
            }
        };
        match okta.log_poll(checkpoint.as_deref(), Utc::now()).await {
            Ok(poll) => {
                if let Some(next) = &poll.next {
                    if let Err(e) = store.checkpoint_set(SYSTEM_LOG_CHECKPOINT, next).await {
                        tracing::warn!(error = %crate::error::chain(&e), "Cannot save the System Log checkpoint.");
                    }
                }
                // The first poll only sets the checkpoint: the passes read the look-back.
                if checkpoint.is_some() && !poll.events.is_empty() {
                    tracing::info!(events = poll.events.len(), "System Log has new changes.");
                    activator.activate(Reason::SystemLog);
                }
            }
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "System Log poll failed; the periodic pass is the backstop.")
            }
        }
    }
}

/// Polls one workspace's audit trail every `every` until cancelled.
pub async fn audit(
    ws: WorkspaceConfig,
    client: SegmentClient,
    store: Store,
    activator: Activator,
    every: Duration,
    cancel: CancellationToken,
) {
    let name = audit_checkpoint_name(&ws.name);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let stored = match store.checkpoint_get(&name).await {
            Ok(c) => c.and_then(|c| serde_json::from_str::<AuditCheckpoint>(&c).ok()),
            Err(e) => {
                tracing::warn!(workspace = %ws.name, error = %crate::error::chain(&e), "Cannot read the audit checkpoint.");
                continue;
            }
        };
        let first = stored.is_none();
        let checkpoint = stored.unwrap_or(AuditCheckpoint {
            last: Some(Utc::now()),
            ids: BTreeSet::new(),
        });
        let since = checkpoint.last.unwrap_or_else(Utc::now);
        match client.audit_events(since).await {
            Ok(events) => {
                let (fresh, next) = checkpoint.advance(&events);
                let relevant = fresh
                    .iter()
                    .filter(|e| Some(e.actor.as_str()) != ws.self_actor.as_deref())
                    .count();
                if first || next != checkpoint {
                    if let Ok(text) = serde_json::to_string(&next) {
                        if let Err(e) = store.checkpoint_set(&name, &text).await {
                            tracing::warn!(workspace = %ws.name, error = %crate::error::chain(&e), "Cannot save the audit checkpoint.");
                        }
                    }
                }
                if relevant > 0 {
                    tracing::info!(workspace = %ws.name, events = relevant, "Segment audit trail has new changes.");
                    activator.activate(Reason::Audit(ws.name.clone()));
                }
            }
            Err(e) => {
                tracing::warn!(workspace = %ws.name, error = %crate::error::chain(&e), "Audit poll failed; the periodic pass is the backstop.")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ev(id: &str, s: i64) -> AuditEvent {
        AuditEvent {
            id: id.into(),
            at: Utc.with_ymd_and_hms(2026, 11, 26, 22, 0, 0).unwrap()
                + chrono::Duration::seconds(s),
            kind: "User Policy Updated".into(),
            actor: "user/u1".into(),
            actor_email: None,
            resource_id: "x".into(),
            resource_type: "user".into(),
            resource_name: "x".into(),
        }
    }

    #[test]
    fn checkpoint_is_time_plus_ids_at_that_time() {
        let c = AuditCheckpoint::default();
        let (fresh, c) = c.advance(&[ev("e1", 1), ev("e2", 2), ev("e3", 2)]);
        assert_eq!(fresh.len(), 3);
        assert_eq!(c.last, Some(ev("x", 2).at));
        assert_eq!(c.ids, ["e2".to_string(), "e3".to_string()].into());
        // The same window read again (endTime-pinned cursors re-serve the boundary): nothing new.
        let (fresh, c2) = c.advance(&[ev("e2", 2), ev("e3", 2)]);
        assert!(fresh.is_empty());
        assert_eq!(c2, c);
        // A new event at the same second, and a later one.
        let (fresh, c3) = c.advance(&[ev("e3", 2), ev("e4", 2), ev("e5", 3)]);
        assert_eq!(
            fresh.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            vec!["e4", "e5"]
        );
        assert_eq!(c3.ids, ["e5".to_string()].into());
    }
}
