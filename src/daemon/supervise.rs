//! Supervision of the daemon's long-lived tasks: none may die quietly.
//!
//! Every task the daemon starts (the reconciler loop, the triggers, the alert workers, the
//! HTTP servers) runs until shutdown. One that ends before it, panics, or reports a fatal
//! error (the store cannot record findings) is logged at ERROR, marks the daemon dead
//! (`/livez` and `/readyz` answer 503 with the reason from then on), and stops the daemon,
//! which exits non-zero so that systemd or Kubernetes restarts it. A process whose
//! reconciler is dead never says it is alive.

use std::future::Future;

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

/// Why a task stopped before shutdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    pub task: String,
    pub why: String,
}

/// Spawns tasks on a [`TaskTracker`] and reports the first that stops on its own.
pub struct Supervisor {
    pub tracker: TaskTracker,
    exits: mpsc::UnboundedSender<Exit>,
    first: mpsc::UnboundedReceiver<Exit>,
}

impl Supervisor {
    pub fn new() -> Supervisor {
        let (exits, first) = mpsc::unbounded_channel();
        Supervisor {
            tracker: TaskTracker::new(),
            exits,
            first,
        }
    }

    /// Runs `task` until it returns; `Err(why)` is a fatal error, `Ok` before shutdown an
    /// unexpected end. Either way, and on a panic, [`Supervisor::first_exit`] learns it.
    pub fn spawn<F>(&self, name: impl Into<String>, task: F)
    where
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        let name = name.into();
        let handle = self.tracker.spawn(task);
        let exits = self.exits.clone();
        self.tracker.spawn(async move {
            let why = match handle.await {
                Ok(Ok(())) => "it ended".to_string(),
                Ok(Err(why)) => why,
                Err(e) if e.is_panic() => format!("it panicked: {}", panic_text(e.into_panic())),
                Err(_) => "it was cancelled".to_string(),
            };
            let _ = exits.send(Exit { task: name, why });
        });
    }

    /// Like [`Supervisor::spawn`] for a task that has no fatal errors of its own.
    pub fn spawn_infallible<F>(&self, name: impl Into<String>, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn(name, async move {
            task.await;
            Ok(())
        });
    }

    /// The first task that stopped (pending forever while all run).
    pub async fn first_exit(&mut self) -> Exit {
        match self.first.recv().await {
            Some(exit) => exit,
            // Unreachable while `self.exits` lives; wait forever rather than invent one.
            None => std::future::pending().await,
        }
    }
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor::new()
    }
}

/// The message of a panic payload (`panic!` with a literal or a format string).
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_an_error_and_an_early_end_are_each_reported() {
        let mut s = Supervisor::new();
        s.spawn_infallible("boom", async { panic!("injected") });
        let exit = s.first_exit().await;
        assert_eq!(exit.task, "boom");
        assert_eq!(exit.why, "it panicked: injected");
        s.spawn("store", async { Err("cannot record findings".to_string()) });
        assert_eq!(s.first_exit().await.why, "cannot record findings");
        s.spawn_infallible("quiet", async {});
        assert_eq!(s.first_exit().await.why, "it ended");
    }
}
