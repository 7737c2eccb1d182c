//! Triggers wake the reconciler; they never feed it (STYLE.md habit 3).
//!
//! The [`Activator`] is the one door: a webhook, a poller, the periodic timer or a deadline
//! calls [`Activator::activate`] with a [`Reason`]; the reconciler loop waits on
//! [`Activator::next`], which returns every reason gathered since the last activation.
//! Reasons coalesce: ten hooks arriving during a pass cause one more pass, not ten.
//! The activation re-reads everything it needs; nothing a trigger carries is trusted.

pub mod graph;
pub mod pollers;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Why a pass runs. Ordered so that a set of reasons is stable to print.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    Startup,
    Periodic,
    /// A pending finding's deadline came.
    Deadline,
    OktaHook,
    SystemLog,
    /// The Segment audit-trail poller saw a change in this workspace.
    Audit(String),
    /// Entra ID: a `groups/delta` round saw a change, or a delta token had to be
    /// reset (changes may have been missed).
    GraphDelta,
    /// Entra ID: a change notification on `/hooks/graph`, or a `missed` lifecycle event.
    GraphHook,
    /// An operator asked for one on `POST /-/full-pass`.
    FullPass,
}

impl Reason {
    /// The label used in metrics and `/status`.
    pub fn label(&self) -> &'static str {
        match self {
            Reason::Startup => "startup",
            Reason::Periodic => "periodic",
            Reason::Deadline => "deadline",
            Reason::OktaHook => "okta_hook",
            Reason::SystemLog => "system_log",
            Reason::Audit(_) => "audit",
            Reason::GraphDelta => "graph_delta",
            Reason::GraphHook => "graph_hook",
            Reason::FullPass => "full_pass",
        }
    }
}

#[derive(Clone, Default)]
pub struct Activator {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    pending: Mutex<BTreeSet<Reason>>,
    notify: Notify,
}

impl Activator {
    pub fn new() -> Activator {
        Activator::default()
    }

    /// Asks for a pass. Never blocks; never fails.
    pub fn activate(&self, reason: Reason) {
        if let Ok(mut p) = self.inner.pending.lock() {
            p.insert(reason);
        }
        self.inner.notify.notify_one();
    }

    /// Waits until at least one activation was asked for, and takes every reason
    /// gathered so far.
    pub async fn next(&self) -> BTreeSet<Reason> {
        loop {
            let taken = self
                .inner
                .pending
                .lock()
                .map(|mut p| std::mem::take(&mut *p))
                .unwrap_or_default();
            if !taken.is_empty() {
                return taken;
            }
            self.inner.notify.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reasons_coalesce_until_taken() {
        let a = Activator::new();
        a.activate(Reason::OktaHook);
        a.activate(Reason::OktaHook);
        a.activate(Reason::Audit("production".into()));
        let got = a.next().await;
        assert_eq!(got.len(), 2);
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.next().await })
        };
        tokio::task::yield_now().await;
        a.activate(Reason::Deadline);
        let got = waiter.await.unwrap();
        assert_eq!(got.into_iter().collect::<Vec<_>>(), vec![Reason::Deadline]);
    }
}
