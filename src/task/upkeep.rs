//! The change log's chain upkeep after each full pass, after every tick or targeted pass
//! that appended a change, and at least hourly (`UPKEEP_EVERY`): retention (`[store] retain`) moves
//! the chain's start forward, then the chain's head is recorded in the log and logged
//! (`Change log head.` with its id and MAC: a copy of these lines kept outside the
//! database is what catches a truncated tail). Failures here are logged, never fail the
//! pass: the findings are already recorded.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};

use super::Reconciler;
use crate::store::{ChainKey, PruneOutcome};

/// The longest time between two upkeeps while the daemon runs passes.
pub(super) const UPKEEP_EVERY: chrono::Duration = chrono::Duration::hours(1);

/// The "retention needs the chain key" warning, once per process.
static SKIP_WARNED: AtomicBool = AtomicBool::new(false);

impl Reconciler {
    /// The chain key from the config; `None` when none is configured.
    pub(super) fn chain_key(&self) -> Option<ChainKey> {
        self.config.store.chain_key.as_ref().map(ChainKey::new)
    }

    /// Upkeep after a pass that read only some subjects: when it changed something or
    /// the last upkeep is an hour old.
    pub(super) async fn chain_upkeep_if(&self, changed: bool, now: DateTime<Utc>) {
        let due = self
            .last_upkeep
            .lock()
            .map(|l| l.is_none_or(|at| now - at >= UPKEEP_EVERY))
            .unwrap_or(true);
        if changed || due {
            self.chain_upkeep(now).await;
        }
    }

    pub(super) async fn chain_upkeep(&self, now: DateTime<Utc>) {
        if let Ok(mut l) = self.last_upkeep.lock() {
            *l = Some(now);
        }
        let key = self.chain_key();
        let cutoff = chrono::Duration::from_std(self.config.store.retain)
            .ok()
            .and_then(|r| now.checked_sub_signed(r));
        if let Some(cutoff) = cutoff {
            match self.store.changes_prune(cutoff, now, key.as_ref()).await {
                Ok(PruneOutcome::Nothing) => {}
                Ok(PruneOutcome::Pruned {
                    pruned,
                    start_id,
                    record,
                }) => {
                    tracing::info!(pruned, start_id, record, cutoff = %cutoff, "Change log pruned past its retention; the chain now starts at start_id.");
                }
                Ok(PruneOutcome::Skipped(why)) => {
                    if !SKIP_WARNED.swap(true, Ordering::Relaxed) {
                        tracing::warn!(reason = %why, "Change log retention is not applied.");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %crate::error::chain(&e), "Cannot prune the change log.");
                }
            }
        }
        match self.store.changes_log_head(now, key.as_ref()).await {
            Ok(Some((id, mac))) => {
                tracing::info!(head_id = id, head_mac = %mac, "Change log head.");
            }
            Ok(None) => {
                tracing::debug!("Change log not chained: no chain key configured.");
            }
            Err(e) => {
                tracing::error!(error = %crate::error::chain(&e), "Cannot record the change log's head.");
            }
        }
    }
}
