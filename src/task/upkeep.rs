//! The change log's chain upkeep after each full pass: retention (`[store] retain`) moves
//! the chain's start forward, then the chain's head is recorded in the log and logged
//! (`Change log head.` with its id and MAC: a copy of these lines kept outside the
//! database is what catches a truncated tail). Failures here are logged, never fail the
//! pass: the findings are already recorded.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};

use super::Reconciler;
use crate::store::{ChainKey, PruneOutcome};

/// The "retention needs the chain key" warning, once per process.
static SKIP_WARNED: AtomicBool = AtomicBool::new(false);

impl Reconciler {
    /// The chain key from the config; `None` when none is configured.
    pub(super) fn chain_key(&self) -> Option<ChainKey> {
        self.config.store.chain_key.as_ref().map(ChainKey::new)
    }

    pub(super) async fn chain_upkeep(&self, now: DateTime<Utc>) {
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
