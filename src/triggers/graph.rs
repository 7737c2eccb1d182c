//! Entra ID triggers (reference/graph.md §4, §6): the `groups/delta` poller and the
//! change-notification subscription manager. Like every trigger they only wake the
//! reconciler; what changed is read again by the pass.
//!
//! Delta poller:
//! - Scope: the group ids the last full pass resolved (the mapped groups and the groups
//!   nested in them), sorted and cut into streams of at most 50 ids (Graph's `$filter`
//!   cap). Stream `n` keeps `{ids, delta_link}` in the store as checkpoint
//!   `graph.delta.groups.<n>`, so a restart resumes where it stopped.
//! - A stream whose ids differ from its checkpoint's (a mapping changed, a group was
//!   recreated) starts with an initial round, which only sets the baseline: the passes
//!   read the state itself.
//! - A round with any change after a kept link wakes the reconciler
//!   ([`Reason::GraphDelta`]). A reset (410 Gone or `syncStateNotFound`) discards the
//!   link, re-baselines at once and wakes a full pass too: changes may have been lost.
//! - A failed round is logged and retried at the next tick; the periodic pass is the
//!   backstop.
//!
//! Subscription manager (only with `triggers.graph_notification_url`): keeps one
//! subscription on `/groups` alive — created at start unless a live one is kept in the
//! store (`graph.subscription`), renewed when a quarter of its lifetime is left, re-created
//! when Graph forgets it (`subscriptionRemoved`, a 404 on renewal), and on
//! `reauthorizationRequired` renewed with one `PATCH` (which reauthorizes too; never a
//! reauthorize and a PATCH together, see Microsoft's lifecycle-notifications doc).
//! Failures are retried after a minute.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{Activator, Reason};
use crate::idp::azure::{Azure, DeltaRound, MAX_DELTA_IDS};
use crate::secret::Secret;
use crate::store::Store;

/// The checkpoint of delta stream `n`.
pub fn delta_checkpoint_name(n: usize) -> String {
    format!("graph.delta.groups.{n}")
}

pub const SUBSCRIPTION_CHECKPOINT: &str = "graph.subscription";

/// What a delta stream keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaCheckpoint {
    pub ids: Vec<String>,
    pub delta_link: String,
}

/// Cuts the scope into streams of at most [`MAX_DELTA_IDS`] sorted ids (pure).
pub fn streams(ids: &[String]) -> Vec<Vec<String>> {
    let mut sorted: Vec<String> = ids.to_vec();
    sorted.sort();
    sorted.dedup();
    sorted
        .chunks(MAX_DELTA_IDS)
        .map(<[String]>::to_vec)
        .collect()
}

/// Polls `groups/delta` every `every` until cancelled. `scope` carries the group ids of
/// the last full pass (empty until there is one).
pub async fn delta(
    azure: Azure,
    store: Store,
    activator: Activator,
    scope: watch::Receiver<Vec<String>>,
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
        let ids = scope.borrow().clone();
        if ids.is_empty() {
            continue;
        }
        let mut wake = false;
        for (n, chunk) in streams(&ids).into_iter().enumerate() {
            match delta_stream(&azure, &store, n, chunk).await {
                Ok(changed) => wake |= changed,
                Err(e) => {
                    tracing::warn!(stream = n, error = %e, "Graph delta round failed; the periodic pass is the backstop.");
                }
            }
        }
        if wake {
            activator.activate(Reason::GraphDelta);
        }
    }
}

/// One round of stream `n`; `Ok(true)` when the reconciler should run.
async fn delta_stream(
    azure: &Azure,
    store: &Store,
    n: usize,
    ids: Vec<String>,
) -> Result<bool, String> {
    let name = delta_checkpoint_name(n);
    let kept = store
        .checkpoint_get(&name)
        .await
        .map_err(|e| crate::error::chain(&e))?
        .and_then(|v| serde_json::from_str::<DeltaCheckpoint>(&v).ok())
        .filter(|c| c.ids == ids);
    let link = kept.as_ref().map(|c| c.delta_link.as_str());
    let round = azure
        .groups_delta(link, &ids)
        .await
        .map_err(|e| crate::error::chain(&e))?;
    let (changed, delta_link) = match round {
        DeltaRound::Done {
            groups,
            entries,
            delta_link,
        } => {
            let changed = kept.is_some() && !groups.is_empty();
            if changed {
                tracing::info!(
                    stream = n,
                    groups = groups.len(),
                    entries,
                    "Graph delta has new changes."
                );
            } else if kept.is_none() {
                tracing::debug!(stream = n, groups = ids.len(), "Graph delta baseline set.");
            }
            (changed, delta_link)
        }
        DeltaRound::Reset { reason } => {
            tracing::warn!(stream = n, reason = %reason, "Graph delta token unusable; resyncing from scratch and running a full pass.");
            match azure
                .groups_delta(None, &ids)
                .await
                .map_err(|e| crate::error::chain(&e))?
            {
                DeltaRound::Done { delta_link, .. } => (true, delta_link),
                DeltaRound::Reset { reason } => {
                    return Err(format!("a fresh delta query was refused too: {reason}"))
                }
            }
        }
    };
    let text =
        serde_json::to_string(&DeltaCheckpoint { ids, delta_link }).map_err(|e| e.to_string())?;
    store
        .checkpoint_set(&name, &text)
        .await
        .map_err(|e| crate::error::chain(&e))?;
    Ok(changed)
}

/// A lifecycle notification the hook receiver hands to the subscription manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    ReauthorizationRequired { subscription: String },
    SubscriptionRemoved { subscription: String },
}

/// The longest lifetime Graph grants a group subscription (41,760 minutes), minus an
/// hour of margin.
const MAX_LIFETIME: chrono::Duration = chrono::Duration::minutes(41_760 - 60);
const RETRY: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Kept {
    id: String,
    expires: DateTime<Utc>,
}

/// When to renew a subscription that expires at `expires` (pure): with a quarter of the
/// time left, and at least a second from now.
pub fn renew_at(now: DateTime<Utc>, expires: DateTime<Utc>) -> DateTime<Utc> {
    let left = expires - now;
    (now + left * 3 / 4).max(now + chrono::Duration::seconds(1))
}

/// Keeps one subscription alive until cancelled.
pub async fn subscriptions(
    azure: Azure,
    store: Store,
    notification_url: String,
    client_state: Secret,
    mut lifecycle: mpsc::UnboundedReceiver<Lifecycle>,
    cancel: CancellationToken,
) {
    let mut current: Option<Kept> = match store.checkpoint_get(SUBSCRIPTION_CHECKPOINT).await {
        Ok(v) => v.and_then(|v| serde_json::from_str(&v).ok()),
        Err(e) => {
            tracing::warn!(error = %crate::error::chain(&e), "Cannot read the Graph subscription checkpoint.");
            None
        }
    };
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let now = Utc::now();
        if current.as_ref().is_none_or(|c| c.expires <= now) && retry_at.is_none() {
            match azure
                .subscription_create(&notification_url, &client_state, now + MAX_LIFETIME)
                .await
            {
                Ok(s) => {
                    tracing::info!(subscription = %s.id, expires = %s.expires, "Graph change-notification subscription created.");
                    current = Some(Kept {
                        id: s.id,
                        expires: s.expires,
                    });
                    save(&store, current.as_ref()).await;
                }
                Err(e) => {
                    tracing::warn!(error = %crate::error::chain(&e), "Cannot create the Graph subscription; retrying in a minute (delta polling still runs).");
                    current = None;
                    retry_at = Some(tokio::time::Instant::now() + RETRY);
                }
            }
        }
        let wake_at = match (&retry_at, &current) {
            (Some(at), _) => *at,
            (None, Some(c)) => {
                let wait = (renew_at(now, c.expires) - now)
                    .to_std()
                    .unwrap_or(Duration::ZERO);
                tokio::time::Instant::now() + wait
            }
            (None, None) => tokio::time::Instant::now() + RETRY,
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(wake_at) => {
                if retry_at.take().is_some() {
                    continue;
                }
                if let Some(c) = current.take() {
                    current = renew(&azure, &store, c, &mut retry_at).await;
                }
            }
            msg = lifecycle.recv() => match msg {
                None => return,
                Some(Lifecycle::SubscriptionRemoved { subscription }) => {
                    tracing::warn!(subscription = %subscription, "Graph removed the subscription; creating a new one.");
                    if current.as_ref().is_some_and(|c| c.id == subscription) {
                        current = None;
                        retry_at = None;
                    }
                }
                Some(Lifecycle::ReauthorizationRequired { subscription }) => {
                    // One PATCH that extends the expiry, which also reauthorizes: Microsoft
                    // says not to send a reauthorize and an update for one subscription
                    // within 10 minutes (it can leave it inconsistent), so never both.
                    match current.take() {
                        Some(c) if c.id == subscription => {
                            retry_at = None;
                            current = renew(&azure, &store, c, &mut retry_at).await;
                        }
                        other => {
                            current = other;
                            tracing::info!(subscription = %subscription, "reauthorizationRequired for a subscription scimwatch does not keep; ignored.");
                        }
                    }
                }
            },
        }
    }
}

/// Renews `c`; `None` when Graph no longer knows it (create a new one).
async fn renew(
    azure: &Azure,
    store: &Store,
    c: Kept,
    retry_at: &mut Option<tokio::time::Instant>,
) -> Option<Kept> {
    match azure
        .subscription_renew(&c.id, Utc::now() + MAX_LIFETIME)
        .await
    {
        Ok(Some(s)) => {
            tracing::info!(subscription = %s.id, expires = %s.expires, "Graph subscription renewed.");
            let k = Kept {
                id: s.id,
                expires: s.expires,
            };
            save(store, Some(&k)).await;
            Some(k)
        }
        Ok(None) => {
            tracing::warn!(subscription = %c.id, "Graph no longer knows the subscription; creating a new one.");
            None
        }
        Err(e) => {
            tracing::warn!(subscription = %c.id, error = %crate::error::chain(&e), "Cannot renew the Graph subscription; retrying in a minute.");
            *retry_at = Some(tokio::time::Instant::now() + RETRY);
            Some(c)
        }
    }
}

async fn save(store: &Store, kept: Option<&Kept>) {
    let Some(k) = kept else { return };
    let Ok(text) = serde_json::to_string(k) else {
        return;
    };
    if let Err(e) = store.checkpoint_set(SUBSCRIPTION_CHECKPOINT, &text).await {
        tracing::warn!(error = %crate::error::chain(&e), "Cannot save the Graph subscription checkpoint.");
    }
}

/// Group ids to a stable scope list (for the delta poller's `watch`).
pub fn scope_of<'a>(ids: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let set: BTreeMap<&String, ()> = ids.into_iter().map(|i| (i, ())).collect();
    set.into_keys().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_hold_at_most_fifty_sorted_ids() {
        let ids: Vec<String> = (0..120).rev().map(|i| format!("g{i:03}")).collect();
        let s = streams(&ids);
        assert_eq!(s.iter().map(Vec::len).collect::<Vec<_>>(), vec![50, 50, 20]);
        assert_eq!(s[0][0], "g000");
        assert!(streams(&[]).is_empty());
    }

    #[test]
    fn renewal_comes_with_a_quarter_left() {
        let now = Utc::now();
        let at = renew_at(now, now + chrono::Duration::days(28));
        assert_eq!(at, now + chrono::Duration::days(21));
        assert_eq!(renew_at(now, now), now + chrono::Duration::seconds(1));
    }
}
