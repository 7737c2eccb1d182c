//! `scimwatch run`: the wiring around the reconcile task (`task/`): build the components,
//! serve HTTP, start the triggers and the alert workers, run the activator loop, and shut
//! down on SIGTERM/SIGINT.
//!
//! Shape (STYLE.md, omicron's background tasks): one loop runs one activation at a time;
//! triggers (the periodic tick, pending deadlines, the Okta hook, the System Log and
//! audit-trail pollers; on Entra ID the `groups/delta` poller and `/hooks/graph`) only
//! wake it through the [`Activator`], and every activation
//! ([`crate::task::Reconciler::activate`]) re-reads what it needs and returns a typed
//! status.
//!
//! Invariants:
//! - Every `pending` finding is re-checked at its deadline: the loop sleeps until the
//!   earliest deadline in the store, whatever else is happening (also while a source is
//!   down: the deadline pass simply fails again and is retried after [`RETRY_FLOOR`]).
//! - State survives restarts: findings (ids, first-seen, deadlines), checkpoints, the last
//!   snapshots, the change log, open alerts and the outbox live in the store, written in
//!   transactions.
//! - On SIGTERM/SIGINT the loop stops taking activations, the tasks are cancelled, and the
//!   process waits for them at most [`GRACE`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::alert::outbox::{Horizons, Outbox};
use crate::config::{Config, WorkspaceConfig};
use crate::http::{RequestStats, RetryConfig};
use crate::idp::Idp;
use crate::mapping::MappingSet;
use crate::metrics::Metrics;
use crate::reconcile::Settings;
use crate::segment::SegmentClient;
use crate::server::{GraphHook, OktaHook, Readiness, ServerState};
use crate::store::Store;
use crate::task::{ActivationStatus, Parts, Reconciler};
use crate::triggers::{pollers, Activator, Reason};
use supervise::Supervisor;

mod supervise;

/// How long shutdown waits for running tasks.
pub const GRACE: Duration = Duration::from_secs(10);

/// The shortest wait before re-checking a past deadline after a failed pass.
pub const RETRY_FLOOR: Duration = Duration::from_secs(15);

/// The running daemon: the reconcile task and the handles around it. The public fields
/// are shared handles of the task's own (clones of the same store, clients and state),
/// for the driver, the demo and the tests.
pub struct Daemon {
    pub config: Config,
    pub mappings: MappingSet,
    pub settings: Settings,
    pub store: Store,
    /// The IdP the config names (Okta or Entra ID).
    pub idp: Idp,
    pub clients: Vec<(WorkspaceConfig, SegmentClient)>,
    pub activator: Activator,
    pub metrics: Arc<Metrics>,
    pub stats: Arc<RequestStats>,
    pub server: Arc<ServerState>,
    /// Alert delivery; `None` when no `[[alerts.sink]]` is configured.
    pub outbox: Option<Arc<Outbox>>,
    /// The task every activation runs.
    pub reconciler: Arc<Reconciler>,
    /// Entra ID: lifecycle events from `/hooks/graph` for the subscription manager (taken
    /// when it starts).
    lifecycle:
        Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<crate::triggers::graph::Lifecycle>>>,
    /// A test's request that the reconciler panic at its next wake-up
    /// ([`Daemon::inject_reconciler_panic`]).
    inject_panic: std::sync::atomic::AtomicBool,
}

impl Daemon {
    /// Builds the clients, opens the store, prepares the server state and the task.
    pub async fn build(
        config: Config,
        mappings: MappingSet,
        retry: RetryConfig,
    ) -> anyhow::Result<Daemon> {
        let settings = Settings::from_config(&config)?;
        let store = Store::open_configured(&config.store).await?;
        let stats = RequestStats::new();
        let idp = crate::app::idp(&config, retry.clone(), stats.clone())?;
        let clients = crate::app::segment_clients(&config, None, retry, &stats)?;
        let activator = Activator::new();
        let metrics = Metrics::new();
        metrics.set_store_created(store.created_at());
        let sinks: Vec<Arc<dyn crate::alert::AlertSink>> = crate::alert::build_sinks(
            &config.alerts,
            crate::alert::outbox_retry_config(),
            stats.clone(),
        )
        .into_iter()
        .map(Arc::from)
        .collect();
        let outbox = (!sinks.is_empty()).then(|| {
            Outbox::new(
                store.clone(),
                sinks,
                Horizons {
                    min_backoff: Duration::from_secs(1),
                    max_backoff: config.alerts.retry_max_backoff,
                    retry_for: config.alerts.retry_for,
                },
                metrics.clone(),
            )
        });
        let azure = matches!(idp, Idp::Azure(_));
        let manage = azure
            && config.triggers.graph_notification_url.is_some()
            && config.triggers.graph_client_state.is_some();
        let (lifecycle_tx, lifecycle_rx) = tokio::sync::mpsc::unbounded_channel();
        let server = Arc::new(ServerState {
            metrics: metrics.clone(),
            requests: stats.clone(),
            activator: activator.clone(),
            status: RwLock::new(json!({"state": "starting"})),
            alerts: outbox
                .as_ref()
                .map(|o| o.status.clone())
                .unwrap_or_default(),
            findings: RwLock::new(None),
            ready: RwLock::new(Readiness {
                last_full_success: None,
                interval: config.sync.interval,
                refresh_behind: None,
                full_refresh: config.sync.full_refresh,
            }),
            okta_hook: config
                .triggers
                .okta_hook_secret
                .clone()
                .map(|secret| OktaHook {
                    secret,
                    header: config.triggers.okta_hook_header.clone(),
                }),
            graph_hook: config
                .triggers
                .graph_client_state
                .clone()
                .filter(|_| azure)
                .map(|client_state| GraphHook {
                    client_state,
                    lifecycle: manage.then(|| lifecycle_tx.clone()),
                }),
            auth_token: config.server.auth_token.clone(),
            seen_events: Mutex::new(Default::default()),
            dead: RwLock::new(None),
        });
        let reconciler = Arc::new(
            Reconciler::new(Parts {
                config: config.clone(),
                mappings: mappings.clone(),
                settings: settings.clone(),
                store: store.clone(),
                idp: idp.clone(),
                clients: clients.clone(),
                metrics: metrics.clone(),
                stats: stats.clone(),
                server: server.clone(),
                outbox: outbox.clone(),
            })
            .await?,
        );
        Ok(Daemon {
            outbox,
            config,
            mappings,
            settings,
            store,
            idp,
            clients,
            activator,
            metrics,
            stats,
            server,
            reconciler,
            lifecycle: Mutex::new(manage.then_some(lifecycle_rx)),
            inject_panic: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Binds `server.listen` (and `server.hooks_listen`).
    pub async fn bind(&self) -> anyhow::Result<Bound> {
        let cfg = &self.config;
        let main = tokio::net::TcpListener::bind(&cfg.server.listen)
            .await
            .with_context(|| format!("binding server.listen {}", cfg.server.listen))?;
        let hooks = match &cfg.server.hooks_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding server.hooks_listen {addr}"))?,
            ),
            None => None,
        };
        Ok(Bound { main, hooks })
    }

    /// Binds, then runs until `shutdown` is cancelled.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let bound = self.bind().await?;
        self.serve(bound, shutdown).await
    }

    /// Runs until `shutdown` is cancelled: servers, triggers and the reconciler loop.
    pub async fn serve(
        self: Arc<Self>,
        bound: Bound,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut tasks = Supervisor::new();
        let cfg = &self.config;

        // HTTP: the main listener, and the hooks on their own when asked.
        tracing::info!(listen = %bound.main.local_addr()?, "Serving /livez /readyz /metrics /status /findings.");
        let with_hooks = bound.hooks.is_none();
        tasks.spawn_infallible(
            "the HTTP server",
            serve(
                bound.main,
                crate::server::router(self.server.clone(), with_hooks),
                (&cfg.server).into(),
                shutdown.clone(),
            ),
        );
        if let Some(hooks) = bound.hooks {
            tracing::info!(listen = %hooks.local_addr()?, "Serving /hooks/* only.");
            tasks.spawn_infallible(
                "the hooks HTTP server",
                serve(
                    hooks,
                    crate::server::hooks_router(self.server.clone()),
                    (&cfg.server).into(),
                    shutdown.clone(),
                ),
            );
        }

        // Triggers.
        let activator = self.activator.clone();
        let interval = cfg.sync.interval;
        let cancel = shutdown.clone();
        tasks.spawn_infallible("the periodic tick", async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate: start-up already asked for a pass.
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => activator.activate(Reason::Periodic),
                }
            }
        });
        if let (Idp::Okta(okta), false) = (&self.idp, cfg.triggers.system_log_poll.is_zero()) {
            tasks.spawn_infallible(
                "the System Log poller",
                pollers::system_log(
                    okta.clone(),
                    self.store.clone(),
                    self.activator.clone(),
                    cfg.triggers.system_log_poll,
                    shutdown.clone(),
                ),
            );
        }
        if let Idp::Azure(azure) = &self.idp {
            if !cfg.triggers.graph_delta_poll.is_zero() {
                tasks.spawn_infallible(
                    "the groups/delta poller",
                    crate::triggers::graph::delta(
                        azure.clone(),
                        self.store.clone(),
                        self.activator.clone(),
                        self.reconciler.graph_scope(),
                        cfg.triggers.graph_delta_poll,
                        shutdown.clone(),
                    ),
                );
            }
            let lifecycle = self.lifecycle.lock().ok().and_then(|mut l| l.take());
            if let (Some(url), Some(state), Some(rx)) = (
                &cfg.triggers.graph_notification_url,
                &cfg.triggers.graph_client_state,
                lifecycle,
            ) {
                tasks.spawn_infallible(
                    "the Graph subscription manager",
                    crate::triggers::graph::subscriptions(
                        azure.clone(),
                        self.store.clone(),
                        url.clone(),
                        state.clone(),
                        rx,
                        shutdown.clone(),
                    ),
                );
            }
        }
        if !cfg.triggers.audit_poll.is_zero() {
            for (ws, client) in &self.clients {
                tasks.spawn_infallible(
                    format!("the audit-trail poller of {}", ws.name),
                    pollers::audit(
                        ws.clone(),
                        client.clone(),
                        self.store.clone(),
                        self.activator.clone(),
                        cfg.triggers.audit_poll,
                        shutdown.clone(),
                    ),
                );
            }
        }

        // Alert delivery: a restart is a reload, so sinks marked broken get another chance.
        if let Some(outbox) = &self.outbox {
            if let Err(e) = self.store.sink_clear_broken(None).await {
                tracing::warn!(error = %crate::error::chain(&e), "Cannot clear broken sinks in the store.");
            }
            outbox.publish(Utc::now()).await;
            for i in 0..outbox.sinks.len() {
                tasks.spawn_infallible(
                    format!("the alert worker of sink {}", outbox.sinks[i].name()),
                    outbox.clone().run_sink(i, shutdown.clone()),
                );
            }
        } else {
            tracing::warn!("No [[alerts.sink]] configured: findings are on /findings and /metrics only; nobody is paged.");
        }

        // The reconciler: one activation at a time.
        let me = self.clone();
        let cancel = shutdown.clone();
        tasks.spawn(
            "the reconciler",
            async move { me.reconcile_loop(cancel).await },
        );
        tasks.tracker.close();

        // Until shutdown, or until a task stops on its own: then the daemon is dead and
        // says so, and stops so that its supervisor (systemd, Kubernetes) restarts it.
        let died = tokio::select! {
            biased;
            _ = shutdown.cancelled() => None,
            // A task that ends because shutdown began is no death.
            exit = tasks.first_exit() => (!shutdown.is_cancelled()).then_some(exit),
        };
        if let Some(exit) = &died {
            let why = format!("{} stopped: {}", exit.task, exit.why);
            tracing::error!(task = %exit.task, reason = %exit.why, "A long-lived task stopped; the daemon exits so that its supervisor restarts it.");
            if let Ok(mut dead) = self.server.dead.write() {
                *dead = Some(why);
            }
            shutdown.cancel();
        }
        tracing::info!(grace = ?GRACE, "Shutting down.");
        if tokio::time::timeout(GRACE, tasks.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("Tasks did not stop within the grace period; exiting anyway.");
        }
        match died {
            Some(exit) => anyhow::bail!("{} stopped: {}", exit.task, exit.why),
            None => Ok(()),
        }
    }

    /// The activator loop: one activation at a time, woken by a trigger or the earliest
    /// deadline in the store. After a failed activation a deadline already past is retried
    /// after [`RETRY_FLOOR`], not at once (a down source must not turn into a hot loop).
    async fn reconcile_loop(&self, cancel: CancellationToken) -> Result<(), String> {
        let mut last_failed = false;
        loop {
            let deadline = match self.store.findings_next_deadline().await {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %crate::error::chain(&e), "Cannot read deadlines from the store.");
                    None
                }
            };
            let floor = if last_failed {
                RETRY_FLOOR.min(self.config.sync.interval)
            } else {
                Duration::ZERO
            };
            let sleep = deadline.map(|d| {
                (d - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .max(floor)
            });
            let reasons = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                r = self.activator.next() => r,
                _ = sleep_or_forever(sleep) => [Reason::Deadline].into(),
            };
            // Fault injection for the supervision test only: no input, config or request
            // reaches this; only `Daemon::inject_reconciler_panic` (hidden, never called by
            // the product) sets the flag.
            if self
                .inject_panic
                .swap(false, std::sync::atomic::Ordering::Relaxed)
            {
                panic!("injected by a test (Daemon::inject_reconciler_panic)");
            }
            let status = self.activate(reasons).await;
            if let Some(why) = status.fatal {
                return Err(why);
            }
            last_failed = !status.ok();
        }
    }

    /// Fault injection for the supervision tests: the reconciler panics at its next
    /// wake-up. Nothing in the product calls it.
    #[doc(hidden)]
    pub fn inject_reconciler_panic(&self) {
        self.inject_panic
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// One activation (the task's), recorded; tests and the demo drive passes by hand
    /// through this.
    pub async fn activate(&self, reasons: BTreeSet<Reason>) -> ActivationStatus {
        self.reconciler.activate(reasons).await
    }
}

/// The daemon's listeners, bound before it runs (so that callers can learn the ports).
pub struct Bound {
    main: tokio::net::TcpListener,
    hooks: Option<tokio::net::TcpListener>,
}

impl Bound {
    pub fn main_addr(&self) -> Option<std::net::SocketAddr> {
        self.main.local_addr().ok()
    }
    /// Where `/hooks/*` is served.
    pub fn hooks_addr(&self) -> Option<std::net::SocketAddr> {
        self.hooks.as_ref().unwrap_or(&self.main).local_addr().ok()
    }
}

async fn sleep_or_forever(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: crate::server::Limits,
    cancel: CancellationToken,
) {
    let result = crate::server::serve(listener, router, limits, cancel).await;
    if let Err(e) = result {
        tracing::error!(error = %e, "HTTP server stopped.");
    }
}

/// `scimwatch run`: load, build, run until SIGTERM/SIGINT.
pub async fn main(config: Config, mappings: MappingSet) -> anyhow::Result<()> {
    let daemon = Arc::new(Daemon::build(config, mappings, RetryConfig::default()).await?);
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signal.cancel();
    });
    daemon.activator.activate(Reason::Startup);
    daemon.run(shutdown).await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
