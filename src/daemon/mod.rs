//! `scimwatch run`: wiring, the reconcile loop and graceful shutdown.
//!
//! Shape (STYLE.md, omicron's background tasks): one reconciler loop runs one activation
//! at a time; triggers (the periodic tick, pending deadlines, the Okta hook, the System
//! Log and audit-trail pollers; on Entra ID the `groups/delta` poller and `/hooks/graph`)
//! only wake it through the [`Activator`], and every
//! activation re-reads what it needs. Each activation is recorded (store, metrics,
//! `/status`) with a typed result.
//!
//! Invariants:
//! - A pass that could not read the IdP changes nothing: findings, alerts and the change
//!   log stay as they were. A workspace that could not be read keeps its findings while
//!   the others go on.
//! - Every `pending` finding is re-checked at its deadline: the loop sleeps until the
//!   earliest deadline in the store, whatever else is happening (also while a source is
//!   down: the deadline pass simply fails again and is retried at the next trigger).
//! - State survives restarts: findings (ids, first-seen, deadlines), checkpoints, the last
//!   snapshots, the change log, open alerts and the outbox live in the store, written in
//!   transactions.
//! - Alerts: after every pass that read its sources (or failed to read one) the pure
//!   planner (`alert::plan`) decides triggers, resolves, digests and `source_unavailable`,
//!   and their outbox rows are committed before any is sent; one worker per sink delivers
//!   (`alert::outbox`). A pass that failed for another reason plans nothing.
//! - On SIGTERM/SIGINT the loop stops taking activations, the tasks are cancelled, and the
//!   process waits for them at most [`GRACE`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alert::outbox::{Horizons, Outbox};
use crate::alert::plan::{self, Outcome};
use crate::config::{Config, WorkspaceConfig};
use crate::http::{RequestStats, RetryConfig};
use crate::idp::Idp;
use crate::mapping::MappingSet;
use crate::metrics::Metrics;
use crate::model::WorkspaceSnapshot;
use crate::output::{Report, WorkspaceSummary};
use crate::reconcile::consistency::{self, Evaluated};
use crate::reconcile::history::{self, IdpMembership};
use crate::reconcile::{evaluate_nested_workspace, pass, sort, Finding, Kind, Settings};
use crate::segment::SegmentClient;
use crate::server::{GraphHook, OktaHook, Readiness, ServerState};
use crate::store::{Activation, Store};
use crate::triggers::{pollers, Activator, Reason};

/// How long shutdown waits for running tasks.
pub const GRACE: Duration = Duration::from_secs(10);

mod chain;
mod enforce;
mod entra;
mod targeted;

const IDP_MEMBERSHIP: &str = "idp.membership";
const IDP_OBSERVED: &str = "idp.observed_events";
/// Entra ID: the group ids the delta poller watches (mapped and nested), from the last
/// full pass.
const GRAPH_SCOPE: &str = "graph.delta_scope";
/// When the last successful pass (full or targeted) ran.
const LAST_PASS: &str = "reconciler.last_pass";

/// Everything the reconciler needs, built once.
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
    /// The last activation per trigger label, for `/status`.
    last: Mutex<BTreeMap<String, serde_json::Value>>,
    /// Whether the last activation failed: then a deadline already past is retried after
    /// [`RETRY_FLOOR`], not at once (a down source must not turn into a hot loop).
    last_failed: std::sync::atomic::AtomicBool,
    /// Workspace counts from the last full pass, for `/findings`.
    summaries: Mutex<Vec<WorkspaceSummary>>,
    /// `/status`'s `enforce`: the last pass's plan (`enforce.mode` plan or apply).
    enforce_status: Mutex<Option<serde_json::Value>>,
    /// Entra ID: the group ids the delta poller watches, published after each full pass.
    graph_scope: tokio::sync::watch::Sender<Vec<String>>,
    /// Entra ID: lifecycle events from `/hooks/graph` for the subscription manager (taken
    /// when it starts).
    lifecycle:
        Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<crate::triggers::graph::Lifecycle>>>,
}

/// The shortest wait before re-checking a past deadline after a failed pass.
pub const RETRY_FLOOR: Duration = Duration::from_secs(15);

impl Daemon {
    /// Builds the clients, opens the store and prepares the server state.
    pub async fn build(
        config: Config,
        mappings: MappingSet,
        retry: RetryConfig,
    ) -> anyhow::Result<Daemon> {
        let settings = crate::cli::settings(&config)?;
        let store = Store::open_configured(&config.store).await?;
        let stats = RequestStats::new();
        let idp = Idp::new(&config.idp, retry.clone(), stats.clone())?;
        let clients = config
            .workspaces
            .iter()
            .map(|w| {
                (
                    w.clone(),
                    SegmentClient::new(w, retry.clone(), stats.clone()),
                )
            })
            .collect();
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
        let scope: Vec<String> = store
            .snapshot_get(GRAPH_SCOPE)
            .await?
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let (graph_scope, _) = tokio::sync::watch::channel(scope);
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
        });
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
            last: Mutex::new(BTreeMap::new()),
            last_failed: std::sync::atomic::AtomicBool::new(false),
            summaries: Mutex::new(Vec::new()),
            enforce_status: Mutex::new(None),
            graph_scope,
            lifecycle: Mutex::new(manage.then_some(lifecycle_rx)),
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
        let tracker = TaskTracker::new();
        let cfg = &self.config;

        // HTTP: the main listener, and the hooks on their own when asked.
        tracing::info!(listen = %bound.main.local_addr()?, "Serving /livez /readyz /metrics /status /findings.");
        let with_hooks = bound.hooks.is_none();
        serve(
            &tracker,
            bound.main,
            crate::server::router(self.server.clone(), with_hooks),
            (&cfg.server).into(),
            shutdown.clone(),
        );
        if let Some(hooks) = bound.hooks {
            tracing::info!(listen = %hooks.local_addr()?, "Serving /hooks/* only.");
            serve(
                &tracker,
                hooks,
                crate::server::hooks_router(self.server.clone()),
                (&cfg.server).into(),
                shutdown.clone(),
            );
        }

        // Triggers.
        let activator = self.activator.clone();
        let interval = cfg.sync.interval;
        let cancel = shutdown.clone();
        tracker.spawn(async move {
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
            tracker.spawn(pollers::system_log(
                okta.clone(),
                self.store.clone(),
                self.activator.clone(),
                cfg.triggers.system_log_poll,
                shutdown.clone(),
            ));
        }
        if let Idp::Azure(azure) = &self.idp {
            if !cfg.triggers.graph_delta_poll.is_zero() {
                tracker.spawn(crate::triggers::graph::delta(
                    azure.clone(),
                    self.store.clone(),
                    self.activator.clone(),
                    self.graph_scope.subscribe(),
                    cfg.triggers.graph_delta_poll,
                    shutdown.clone(),
                ));
            }
            let lifecycle = self.lifecycle.lock().ok().and_then(|mut l| l.take());
            if let (Some(url), Some(state), Some(rx)) = (
                &cfg.triggers.graph_notification_url,
                &cfg.triggers.graph_client_state,
                lifecycle,
            ) {
                tracker.spawn(crate::triggers::graph::subscriptions(
                    azure.clone(),
                    self.store.clone(),
                    url.clone(),
                    state.clone(),
                    rx,
                    shutdown.clone(),
                ));
            }
        }
        if !cfg.triggers.audit_poll.is_zero() {
            for (ws, client) in &self.clients {
                tracker.spawn(pollers::audit(
                    ws.clone(),
                    client.clone(),
                    self.store.clone(),
                    self.activator.clone(),
                    cfg.triggers.audit_poll,
                    shutdown.clone(),
                ));
            }
        }

        // Alert delivery: a restart is a reload, so sinks marked broken get another chance.
        if let Some(outbox) = &self.outbox {
            if let Err(e) = self.store.sink_clear_broken(None).await {
                tracing::warn!(error = %crate::cli::chain(&e), "Cannot clear broken sinks in the store.");
            }
            outbox.publish(Utc::now()).await;
            for i in 0..outbox.sinks.len() {
                tracker.spawn(outbox.clone().run_sink(i, shutdown.clone()));
            }
        } else {
            tracing::warn!("No [[alerts.sink]] configured: findings are on /findings and /metrics only; nobody is paged.");
        }

        // The reconciler: one activation at a time.
        let me = self.clone();
        let cancel = shutdown.clone();
        tracker.spawn(async move { me.reconcile_loop(cancel).await });
        tracker.close();

        shutdown.cancelled().await;
        tracing::info!(grace = ?GRACE, "Shutting down.");
        if tokio::time::timeout(GRACE, tracker.wait()).await.is_err() {
            tracing::warn!("Tasks did not stop within the grace period; exiting anyway.");
        }
        Ok(())
    }

    async fn reconcile_loop(&self, cancel: CancellationToken) {
        loop {
            let deadline = match self.store.findings_next_deadline().await {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %crate::cli::chain(&e), "Cannot read deadlines from the store.");
                    None
                }
            };
            let floor = if self.last_failed.load(std::sync::atomic::Ordering::Relaxed) {
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
                _ = cancel.cancelled() => return,
                r = self.activator.next() => r,
                _ = sleep_or_forever(sleep) => [Reason::Deadline].into(),
            };
            self.activate(reasons).await;
        }
    }

    /// One activation: a full pass, recorded.
    pub async fn activate(&self, reasons: BTreeSet<Reason>) {
        let labels: Vec<&str> = reasons
            .iter()
            .map(Reason::label)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let trigger = labels.join(",");
        let span = tracing::info_span!("activation", trigger = %trigger);
        let _enter = span.enter();
        let started = Utc::now();
        let clock = Instant::now();
        // Events alone wake a targeted pass; start-up, the periodic tick and deadlines
        // (and a targeted pass that cannot run yet) a full one.
        // With `enforce.mode = "apply"` every activation is a full pass: the fix then
        // happens in the pass that first sees the drift, so fixed drift never pages.
        let events_only = self.config.enforce.mode != crate::config::EnforceMode::Apply
            && reasons
                .iter()
                .all(|r| matches!(r, Reason::OktaHook | Reason::SystemLog | Reason::Audit(_)));
        let mut sources = Sources::default();
        let (scope, result) = if events_only {
            match self.targeted_pass(started).await {
                Ok(Some(counts)) => ("targeted", Ok(counts)),
                Ok(None) => ("full", self.full_pass(started, &mut sources).await),
                Err(e) => ("targeted", Err(e)),
            }
        } else {
            ("full", self.full_pass(started, &mut sources).await)
        };
        // Alerts: a full pass that recorded or could not read the IdP; a targeted pass
        // that succeeded (it may trigger, never resolve).
        let plan_alerts = match scope {
            "full" => sources.recorded || sources.idp_error.is_some(),
            _ => result.is_ok(),
        };
        if plan_alerts {
            if let Err(e) = self.plan_alerts(scope == "full", &sources, started).await {
                tracing::error!(error = %crate::cli::chain(e.as_ref()), "Cannot plan alerts; they are planned again after the next pass.");
            }
        }
        // scimwatch wrote to Segment: re-read at once to verify (and resolve what it fixed).
        let result = if scope == "full" && sources.wrote {
            let again = Utc::now();
            let mut verify = Sources::default();
            let verified = self.full_pass(again, &mut verify).await;
            if verify.recorded || verify.idp_error.is_some() {
                if let Err(e) = self.plan_alerts(true, &verify, again).await {
                    tracing::error!(error = %crate::cli::chain(e.as_ref()), "Cannot plan alerts; they are planned again after the next pass.");
                }
            }
            match (result, verified) {
                (Ok(mut counts), Ok(v)) => {
                    counts["verified"] = v;
                    Ok(counts)
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        } else {
            result
        };
        let finished = Utc::now();
        let ok = result.is_ok();
        self.last_failed
            .store(!ok, std::sync::atomic::Ordering::Relaxed);
        for l in &labels {
            self.metrics.pass_finished(l, scope, ok, clock.elapsed());
        }
        let detail = match &result {
            Ok(counts) => counts.to_string(),
            Err(e) => {
                tracing::error!(error = %crate::cli::chain(e.as_ref()), "Pass failed; findings stay as they were.");
                crate::cli::chain(e.as_ref())
            }
        };
        let record = Activation {
            id: 0,
            trigger: trigger.clone(),
            scope: scope.into(),
            started,
            finished,
            result: if ok { "ok".into() } else { "error".into() },
            detail: detail.clone(),
        };
        if let Err(e) = self.store.activation_record(&record).await {
            tracing::warn!(error = %crate::cli::chain(&e), "Cannot record the activation.");
        }
        if let Ok(mut last) = self.last.lock() {
            for l in &labels {
                last.insert(
                    l.to_string(),
                    json!({"at": started, "scope": scope, "result": record.result, "detail": if ok { result.as_ref().ok().cloned().unwrap_or_default() } else { json!(detail) }}),
                );
            }
        }
        self.publish_status().await;
    }

    /// Plans alerts from the open findings after a pass and queues them.
    async fn plan_alerts(
        &self,
        full: bool,
        sources: &Sources,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let Some(outbox) = &self.outbox else {
            return Ok(());
        };
        let findings: Vec<Finding> = self
            .store
            .findings_open()
            .await?
            .into_iter()
            .map(|s| s.finding)
            .collect();
        let (records, failures) = self.store.alerts_load().await?;
        let outcome = Outcome {
            now,
            pass_id: now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            full,
            idp_service: self.settings.idp.as_str(),
            idp_error: sources.idp_error.clone(),
            reverted: &sources.reverted,
            workspaces: self
                .clients
                .iter()
                .map(|(w, _)| (w.name.clone(), sources.failed.get(&w.name).cloned()))
                .collect(),
            findings: &findings,
        };
        let plan = plan::plan(&self.config.alerts, &records, &failures, &outcome);
        for (key, summary) in &plan.unrouted {
            self.metrics.alert_unrouted();
            tracing::warn!(key = %key, summary = %summary, "No [[alerts.route]] matches this alert: nobody is told. Add a route that matches it.");
        }
        if plan.is_empty() && plan.failures == failures {
            return Ok(());
        }
        self.store
            .alerts_write(
                &crate::store::AlertWrite {
                    upsert: &plan.upsert,
                    delete: &plan.delete,
                    failures: Some(&plan.failures),
                    sends: &plan.sends,
                },
                now,
            )
            .await?;
        for s in &plan.sends {
            self.metrics
                .alert_planned(s.alert.family.as_str(), s.alert.action.as_str());
            tracing::info!(key = %s.alert.key, action = s.alert.action.as_str(), family = s.alert.family.as_str(), severity = s.alert.severity.as_str(), sinks = %s.sinks.join(","), summary = %s.alert.summary, "Alert queued.");
        }
        outbox.wake();
        outbox.publish(now).await;
        Ok(())
    }

    /// Reads everything, evaluates, records. Returns the counts for the activation log;
    /// `sources` learns what could not be read.
    async fn full_pass(
        &self,
        now: DateTime<Utc>,
        sources: &mut Sources,
    ) -> anyhow::Result<serde_json::Value> {
        let selected: Vec<(&WorkspaceConfig, &SegmentClient)> =
            self.clients.iter().map(|(w, c)| (w, c)).collect();
        let reading =
            match pass::read_all(&self.idp, &selected, &self.mappings, &self.settings, now).await {
                Ok(r) => r,
                Err(e) => {
                    sources.idp_error = Some(crate::cli::chain(&e));
                    return Err(e.into());
                }
            };

        // What the IdP side changed since the last pass, as observed by us.
        let membership = IdpMembership::from_read(&reading.idp.groups);
        let prev_membership: Option<IdpMembership> = self
            .store
            .snapshot_get(IDP_MEMBERSHIP)
            .await?
            .and_then(|v| serde_json::from_value(v).ok());
        let observed = self
            .observed_events(prev_membership.as_ref(), &membership, now)
            .await?;
        let nested = reading.nested;
        let jobs = self.provisioning_jobs().await;
        let mut idp = reading.idp;
        idp.events = history::merge_events(&idp.events, &observed);

        let empty = Default::default();
        let mut findings: Vec<Finding> = Vec::new();
        let mut ok_workspaces = Vec::new();
        let mut failed = Vec::new();
        let mut summaries = Vec::new();
        let mut changes = Vec::new();
        // Read workspaces and their evaluations, for the checks that span workspaces.
        let mut read: Vec<(String, WorkspaceSnapshot, crate::reconcile::Evaluation)> = Vec::new();
        for ((ws, _), (_, snap)) in self.clients.iter().zip(reading.workspaces) {
            let unavailable = jobs.get(&ws.name).and_then(|j| j.unavailable.clone());
            let snap = match (snap, unavailable) {
                (Ok(_), Some(why)) => {
                    sources.failed.insert(ws.name.clone(), why.clone());
                    failed.push(json!({"workspace": ws.name, "error": why}));
                    continue;
                }
                (Ok(s), None) => s,
                (Err(e), _) => {
                    tracing::error!(workspace = %ws.name, error = %crate::cli::chain(&e), "Workspace read failed; its findings stay as they were.");
                    sources
                        .failed
                        .insert(ws.name.clone(), crate::cli::chain(&e));
                    failed.push(json!({"workspace": ws.name, "error": e.to_string()}));
                    continue;
                }
            };
            let mapping = self.mappings.workspaces.get(&ws.name).unwrap_or(&empty);
            let evaluation =
                evaluate_nested_workspace(ws, mapping, &snap, &idp, &nested, &self.settings, now);
            findings.extend(evaluation.findings.iter().cloned());
            summaries.push(WorkspaceSummary {
                name: ws.name.clone(),
                users: snap.users.len(),
                groups: snap.groups.len(),
            });

            // The change log: this snapshot against the last one kept.
            let key = format!("segment.{}", ws.name);
            if let Some(prev) = self.store.snapshot_get(&key).await? {
                if let Ok(prev) = serde_json::from_value::<Kept>(prev) {
                    let mirror_to_idp: BTreeMap<String, String> = mapping
                        .groups
                        .iter()
                        .filter_map(|g| {
                            g.segment_group
                                .clone()
                                .map(|m| (m, g.idp_group.text().to_string()))
                        })
                        .collect();
                    let actors = history::Actors {
                        self_actor: ws.self_actor.as_deref(),
                        automation: &ws.automation_actors,
                        scim: &ws.scim_actors,
                    };
                    changes.extend(history::access_changes(
                        &prev.snapshot,
                        &snap,
                        prev.at,
                        &idp.events,
                        &mirror_to_idp,
                        &actors,
                        now,
                    ));
                }
            }
            ok_workspaces.push(ws.name.clone());
            read.push((ws.name.clone(), snap, evaluation));
        }

        // Consistency across workspaces. A set with a workspace that could not be read is
        // not checked: its open findings are kept as they are, not resolved.
        let evaluated: BTreeMap<&str, Evaluated<'_>> = read
            .iter()
            .map(|(name, snapshot, evaluation)| {
                (
                    name.as_str(),
                    Evaluated {
                        snapshot,
                        evaluation,
                    },
                )
            })
            .collect();
        findings.extend(consistency::check(
            &self.settings.policy.consistent,
            &evaluated,
            now,
        ));
        let unchecked: BTreeSet<&str> = self
            .settings
            .policy
            .consistent
            .iter()
            .filter(|set| set.iter().any(|w| !evaluated.contains_key(w.as_str())))
            .filter_map(|set| set.first().map(String::as_str))
            .collect();
        if !unchecked.is_empty() {
            for kept in self.store.findings_open().await? {
                if kept.finding.kind == Kind::WorkspaceInconsistent
                    && unchecked.contains(kept.finding.workspace.as_str())
                {
                    findings.push(kept.finding);
                }
            }
        }

        // Enforcement, only after a pass that read everything.
        if failed.is_empty() {
            let done = self
                .enforce(&mut read, &mut findings, &mut changes, now)
                .await;
            sources.wrote = done.wrote;
            sources.reverted = done.reverted;
        }
        for (name, snap, _) in &read {
            self.store
                .snapshot_put(
                    &format!("segment.{name}"),
                    &serde_json::to_value(KeptRef {
                        at: now,
                        snapshot: snap,
                    })?,
                )
                .await?;
        }

        let ids: Vec<String> = findings.iter().map(|f| f.id.clone()).collect();
        let first_seen = self.store.findings_first_seen(&ids).await?;
        history::apply_first_seen(&mut findings, &first_seen, now);
        self.attach_evidence(&mut findings, &idp, &jobs).await?;
        sort(&mut findings);
        let transitions = self
            .store
            .findings_record_full(&ok_workspaces, &findings, now)
            .await?;
        sources.recorded = true;
        self.after_pass(&transitions, &changes).await?;
        self.chain_upkeep(now).await;
        self.store
            .snapshot_put(IDP_MEMBERSHIP, &serde_json::to_value(&membership)?)
            .await?;
        self.store
            .snapshot_put(IDP_OBSERVED, &serde_json::to_value(&observed)?)
            .await?;
        if matches!(self.idp, Idp::Azure(_)) {
            let scope = crate::triggers::graph::scope_of(
                membership
                    .groups
                    .keys()
                    .chain(nested.values().flatten().map(|n| &n.id)),
            );
            if *self.graph_scope.borrow() != scope {
                self.store
                    .snapshot_put(GRAPH_SCOPE, &serde_json::to_value(&scope)?)
                    .await?;
                self.graph_scope.send_replace(scope);
            }
        }
        if failed.is_empty() {
            self.store
                .snapshot_put(LAST_PASS, &serde_json::to_value(now)?)
                .await?;
        }
        let report = self.publish_findings(now, Some(summaries)).await?;
        if failed.is_empty() {
            self.metrics.set_last_success(now);
            if let Ok(mut r) = self.server.ready.write() {
                r.last_full_success = Some(now);
            }
        }
        let counts = json!({
            "findings": report.findings.len(),
            "opened": transitions.opened.len(),
            "resolved": transitions.resolved.len(),
            "changes": changes.len(),
            "failed_workspaces": failed,
        });
        if !failed.is_empty() {
            anyhow::bail!(
                "{} of {} workspaces could not be read: {}",
                failed.len(),
                self.clients.len(),
                serde_json::Value::Array(failed)
            );
        }
        Ok(counts)
    }

    /// The IdP changes the daemon has seen in its own snapshots over the look-back: those
    /// kept from earlier passes plus what changed between `prev` and `now_read`.
    async fn observed_events(
        &self,
        prev: Option<&IdpMembership>,
        now_read: &IdpMembership,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<crate::model::IdpEvent>> {
        let mut observed: Vec<crate::model::IdpEvent> = self
            .store
            .snapshot_get(IDP_OBSERVED)
            .await?
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        if let Some(prev) = prev {
            observed.extend(history::observe_idp_changes(prev, now_read, now));
        }
        observed.retain(|e| e.published >= now - self.settings.event_lookback);
        Ok(observed)
    }

    /// Logs what a pass changed, appends the change log, feeds the latency histogram.
    async fn after_pass(
        &self,
        transitions: &crate::store::Transitions,
        changes: &[crate::store::ChangeRecord],
    ) -> anyhow::Result<()> {
        for c in changes {
            if let Some(ms) = c.latency_ms {
                self.metrics.observe_latency(ms as f64 / 1000.0);
            }
            tracing::info!(workspace = %c.workspace, user = %c.user, before = %c.before, after = %c.after, "Access changed.");
        }
        let mut changes = changes.to_vec();
        history::annotate(&mut changes, &self.mappings);
        self.store
            .changes_append(&changes, self.chain_key().as_ref())
            .await?;
        for f in &transitions.opened {
            log_finding("New finding.", f);
        }
        for (before, after) in &transitions.changed {
            if before.state != after.state || before.severity != after.severity {
                log_finding("Finding changed.", after);
            }
        }
        for r in &transitions.resolved {
            tracing::info!(id = %r.finding.id, kind = %r.finding.kind, subject = %r.finding.subject(), "Finding resolved.");
        }
        Ok(())
    }

    /// Puts every open finding on `/findings` and in the metrics. `summaries` replaces the
    /// workspace counts when the pass read whole workspaces.
    async fn publish_findings(
        &self,
        now: DateTime<Utc>,
        summaries: Option<Vec<WorkspaceSummary>>,
    ) -> anyhow::Result<Report> {
        let open: Vec<Finding> = self
            .store
            .findings_open()
            .await?
            .into_iter()
            .map(|s| s.finding)
            .collect();
        self.metrics.set_open_findings(&open);
        let summaries = match summaries {
            Some(s) => {
                if let Ok(mut w) = self.summaries.lock() {
                    w.clone_from(&s);
                }
                s
            }
            None => self.summaries.lock().map(|w| w.clone()).unwrap_or_default(),
        };
        let report = Report {
            generated_at: now,
            idp: self.settings.idp,
            workspaces: summaries,
            findings: open,
        };
        if let Ok(mut f) = self.server.findings.write() {
            *f = Some(crate::output::json(&report));
        }
        Ok(report)
    }

    async fn publish_status(&self) {
        let open = self.store.findings_open().await.unwrap_or_default();
        let deadline = self.store.findings_next_deadline().await.ok().flatten();
        let mut summary: BTreeMap<String, usize> = BTreeMap::new();
        for f in &open {
            *summary
                .entry(format!(
                    "{}/{}",
                    f.finding.state.as_str(),
                    f.finding.severity.as_str()
                ))
                .or_default() += 1;
        }
        let last = self.last.lock().map(|l| l.clone()).unwrap_or_default();
        let mut doc = json!({
            "last_activation": last,
            "next_deadline": deadline,
            "open_findings": { "total": open.len(), "by_state_severity": summary },
        });
        if let Some(e) = self.enforce_status.lock().ok().and_then(|e| e.clone()) {
            doc["enforce"] = e;
        }
        if let Ok(mut s) = self.server.status.write() {
            *s = doc;
        }
    }
}

/// What a full pass could read, for the alert planner.
#[derive(Debug, Default)]
struct Sources {
    /// The IdP read failed: the error chain.
    idp_error: Option<String>,
    /// Workspaces whose read failed, with the error chain.
    failed: BTreeMap<String, String>,
    /// The pass recorded its findings.
    recorded: bool,
    /// Enforcement wrote to Segment in this pass.
    wrote: bool,
    /// Critical findings enforcement reverted in this pass.
    reverted: BTreeSet<String>,
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

/// [`Kept`] as written, without copying the snapshot.
#[derive(serde::Serialize)]
struct KeptRef<'a> {
    at: DateTime<Utc>,
    snapshot: &'a WorkspaceSnapshot,
}

/// A workspace snapshot kept for the next change-log comparison.
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    at: DateTime<Utc>,
    snapshot: WorkspaceSnapshot,
}

fn log_finding(what: &str, f: &Finding) {
    use crate::reconcile::{Severity, State};
    match (f.state, f.severity) {
        (State::Drift, Severity::Critical | Severity::Error) => {
            tracing::error!(id = %f.id, kind = %f.kind, state = f.state.as_str(), severity = f.severity.as_str(), workspace = %f.workspace, message = %f.message, "{what}")
        }
        (State::Drift, _) => {
            tracing::warn!(id = %f.id, kind = %f.kind, state = f.state.as_str(), severity = f.severity.as_str(), workspace = %f.workspace, message = %f.message, "{what}")
        }
        _ => {
            tracing::info!(id = %f.id, kind = %f.kind, state = f.state.as_str(), severity = f.severity.as_str(), workspace = %f.workspace, message = %f.message, "{what}")
        }
    }
}

async fn sleep_or_forever(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

fn serve(
    tracker: &TaskTracker,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: crate::server::Limits,
    cancel: CancellationToken,
) {
    tracker.spawn(async move {
        let result = crate::server::serve(listener, router, limits, cancel).await;
        if let Err(e) = result {
            tracing::error!(error = %e, "HTTP server stopped.");
        }
    });
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
