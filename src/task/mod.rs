//! The reconcile task: one activation, from reading to upkeep (STYLE.md: omicron's
//! background tasks). The daemon (`daemon/`) builds a [`Reconciler`] once and calls
//! [`Reconciler::activate`] whenever something wakes it; the activation takes no input but
//! its reasons, re-reads what it needs and returns a typed [`ActivationStatus`].
//!
//! One activation: read → evaluate → record → plan alerts → upkeep.
//! - Events alone (the Okta hook, the System Log and audit-trail pollers) wake a targeted
//!   pass (`targeted.rs`); the periodic tick and deadlines a tick (the targeted pass plus
//!   open findings' subjects and the rolling refresh's share, `tick.rs`); start-up,
//!   `POST /-/full-pass` and a targeted pass that cannot run (nothing kept, checkpoints
//!   older than the events reach) a full one (`full.rs`). With `enforce.mode = "apply"` every
//!   activation is a full pass, so the fix lands in the pass that first sees the drift
//!   (`enforce.rs`), followed at once by a verifying re-read.
//! - Entra ID specifics (quarantine, provisioning-log evidence) live in `entra.rs`; the
//!   change log's retention and head after each full pass in `upkeep.rs`.
//! - Alerts are planned from state after every pass that read its sources or failed to
//!   read one (`alert::plan`), and queued in the store's outbox before anything is sent.
//!
//! Invariants: activations never overlap (the daemon's loop runs one at a time); a pass
//! that could not read the IdP changes nothing; this module never imports `daemon/`.

mod enforce;
mod entra;
mod full;
mod refresh;
pub mod status;
mod targeted;
mod tick;
mod upkeep;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};

pub use status::{ActivationStatus, Counts, FullCounts, Scope, SourceFailures, TargetedCounts};

use crate::alert::outbox::Outbox;
use crate::alert::plan::{self, Outcome};
use crate::config::{Config, WorkspaceConfig};
use crate::http::RequestStats;
use crate::idp::Idp;
use crate::mapping::MappingSet;
use crate::metrics::Metrics;
use crate::output::{Report, WorkspaceSummary};
use crate::reconcile::{Finding, Settings};
use crate::segment::SegmentClient;
use crate::server::ServerState;
use crate::store::{Activation, Store};
use crate::triggers::Reason;
use full::FullPass;

/// Everything one activation needs, built once by the daemon.
pub struct Reconciler {
    pub config: Config,
    pub mappings: MappingSet,
    pub settings: Settings,
    pub store: Store,
    /// The IdP the config names (Okta or Entra ID).
    pub idp: Idp,
    pub clients: Vec<(WorkspaceConfig, SegmentClient)>,
    pub metrics: Arc<Metrics>,
    pub stats: Arc<RequestStats>,
    /// Where `/findings`, `/status` and `/readyz` read what the activations publish.
    pub server: Arc<ServerState>,
    /// Alert delivery; `None` when no `[[alerts.sink]]` is configured.
    pub outbox: Option<Arc<Outbox>>,
    /// The last activation per trigger label, for `/status`.
    last: Mutex<BTreeMap<String, serde_json::Value>>,
    /// Workspace counts from the last full pass, for `/findings`.
    summaries: Mutex<Vec<WorkspaceSummary>>,
    /// `/status`'s `enforce`: the last pass's plan (`enforce.mode` plan or apply).
    enforce_status: Mutex<Option<serde_json::Value>>,
    /// Entra ID: the group ids the delta poller watches, published after each full pass.
    graph_scope: tokio::sync::watch::Sender<Vec<String>>,
    /// `/status`'s `refresh`: the rolling refresh's progress after the last pass.
    refresh_status: Mutex<Option<serde_json::Value>>,
    /// When the change log's upkeep (retention, head) last ran.
    last_upkeep: Mutex<Option<DateTime<Utc>>>,
    /// Findings opened, changed and resolved by the running activation (its summary line).
    tally: Mutex<Tally>,
}

/// Findings opened, changed (state or severity) and resolved in one activation.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    opened: usize,
    changed: usize,
    resolved: usize,
}

/// Activation ids, in this process (the span's `id`).
static NEXT_ACTIVATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// How often a running pass logs its progress.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The pieces a [`Reconciler`] is built from (the daemon builds them).
pub struct Parts {
    pub config: Config,
    pub mappings: MappingSet,
    pub settings: Settings,
    pub store: Store,
    pub idp: Idp,
    pub clients: Vec<(WorkspaceConfig, SegmentClient)>,
    pub metrics: Arc<Metrics>,
    pub stats: Arc<RequestStats>,
    pub server: Arc<ServerState>,
    pub outbox: Option<Arc<Outbox>>,
}

impl Reconciler {
    /// Builds the task; the Entra delta poller's scope starts from the one kept in the
    /// store by the last full pass.
    pub async fn new(parts: Parts) -> anyhow::Result<Reconciler> {
        let scope: Vec<String> = parts
            .store
            .snapshot_get(full::GRAPH_SCOPE)
            .await?
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let (graph_scope, _) = tokio::sync::watch::channel(scope);
        Ok(Reconciler {
            config: parts.config,
            mappings: parts.mappings,
            settings: parts.settings,
            store: parts.store,
            idp: parts.idp,
            clients: parts.clients,
            metrics: parts.metrics,
            stats: parts.stats,
            server: parts.server,
            outbox: parts.outbox,
            last: Mutex::new(BTreeMap::new()),
            summaries: Mutex::new(Vec::new()),
            enforce_status: Mutex::new(None),
            graph_scope,
            refresh_status: Mutex::new(None),
            last_upkeep: Mutex::new(None),
            tally: Mutex::new(Tally::default()),
        })
    }

    /// Entra ID: the group ids the delta poller should watch, updated after full passes.
    pub fn graph_scope(&self) -> tokio::sync::watch::Receiver<Vec<String>> {
        self.graph_scope.subscribe()
    }

    /// One activation: a targeted or full pass, its alerts, recorded (store, metrics,
    /// `/status`). Never fails: a failed pass is an `Err` outcome in the status.
    pub async fn activate(&self, reasons: BTreeSet<Reason>) -> ActivationStatus {
        let labels: Vec<&str> = reasons
            .iter()
            .map(Reason::label)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let trigger = labels.join(",");
        let id = NEXT_ACTIVATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let span = tracing::info_span!("activation", id, trigger = %trigger);
        let _enter = span.enter();
        if let Ok(mut t) = self.tally.lock() {
            *t = Tally::default();
        }
        let started = Utc::now();
        let clock = Instant::now();
        // Start-up, an operator's request and enforcement's apply mode read everything;
        // events alone read what they name; anything else (the periodic tick, a deadline)
        // is a tick: events, open findings' subjects and the rolling refresh's share. A
        // targeted pass that cannot run (nothing kept, checkpoints too old, Entra ID)
        // becomes a full pass.
        let wants_full = self.config.enforce.mode == crate::config::EnforceMode::Apply
            || reasons
                .iter()
                .any(|r| matches!(r, Reason::Startup | Reason::FullPass));
        let events_only = reasons
            .iter()
            .all(|r| matches!(r, Reason::OktaHook | Reason::SystemLog | Reason::Audit(_)));
        let requests_before = self.stats.total();
        let per_service_before = self.stats.by_service();
        // A pass that runs longer than a few seconds says so while it runs.
        let progress = {
            let stats = self.stats.clone();
            let span = span.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(PROGRESS_EVERY);
                every.tick().await;
                loop {
                    every.tick().await;
                    let _e = span.enter();
                    tracing::info!(
                        requests = stats.total().saturating_sub(requests_before),
                        waited_s = stats.waited().as_secs(),
                        "Pass still running."
                    );
                }
            })
        };
        let mut pass = FullPass::default();
        let mut read: Option<targeted::Targeted> = None;
        let (scope, result) = if wants_full {
            (
                Scope::Full,
                self.full_pass(started, &mut pass).await.map(Counts::Full),
            )
        } else {
            let scope = if events_only {
                Scope::Targeted
            } else {
                Scope::Tick
            };
            match self
                .targeted_pass(started, !events_only, &mut pass.failures)
                .await
            {
                Ok(Some(t)) => {
                    let counts = t.counts.clone();
                    read = Some(t);
                    (scope, Ok(Counts::Targeted(counts)))
                }
                Ok(None) => {
                    pass.failures = SourceFailures::default();
                    (
                        Scope::Full,
                        self.full_pass(started, &mut pass).await.map(Counts::Full),
                    )
                }
                Err(e) => (scope, Err(e)),
            }
        };
        // Alerts: after every pass that recorded or could not read a source. A full pass
        // counts a clean read for every finding of the workspaces it read; a tick or an
        // event-woken pass only for the findings whose subject it read (a failed one for
        // none), and counts source health for the sources it tried.
        match scope {
            Scope::Full => {
                if pass.recorded || pass.failures.idp.is_some() {
                    self.plan_alerts_logged(true, &pass, None, started).await;
                }
            }
            Scope::Targeted | Scope::Tick => match &read {
                Some(t) => {
                    let covers = |f: &Finding| t.covers(f);
                    self.plan_alerts_logged(true, &pass, Some(&covers), started)
                        .await;
                }
                None if !pass.failures.is_empty() => {
                    let nothing = |_: &Finding| false;
                    self.plan_alerts_logged(true, &pass, Some(&nothing), started)
                        .await;
                }
                None => {}
            },
        }
        // scimwatch wrote to Segment: re-read at once to verify (and resolve what it fixed).
        let result = if scope == Scope::Full && pass.wrote {
            let again = Utc::now();
            let mut verify = FullPass::default();
            let verified = self.full_pass(again, &mut verify).await;
            if verify.recorded || verify.failures.idp.is_some() {
                self.plan_alerts_logged(true, &verify, None, again).await;
            }
            match (result, verified) {
                (Ok(Counts::Full(mut counts)), Ok(v)) => {
                    counts.verified = Some(Box::new(v));
                    Ok(Counts::Full(counts))
                }
                (Ok(other), Ok(_)) => Ok(other),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        } else {
            result
        };
        let fatal = result.as_ref().err().and_then(|e| {
            let store = e
                .chain()
                .find_map(|c| c.downcast_ref::<crate::store::StoreError>())?;
            let why = format!(
                "the store at {} cannot record findings ({}): check that its disk has room and that the file and its folder are writable by scimwatch, then restart",
                self.config.store.path.display(),
                crate::error::chain(store)
            );
            tracing::error!(error = %why, "Cannot record findings; stopping rather than running on without them.");
            Some(why)
        });
        let status = ActivationStatus {
            reasons,
            scope,
            started,
            finished: Utc::now(),
            outcome: result.map_err(|e| {
                let chain = crate::error::chain(e.as_ref());
                tracing::error!(error = %chain, "Pass failed; findings stay as they were.");
                chain
            }),
            failures: pass.failures,
            fatal,
        };
        let spent = self.stats.total().saturating_sub(requests_before);
        let reason = status
            .reasons
            .iter()
            .map(Reason::label)
            .min_by_key(|l| reason_rank(l))
            .unwrap_or("none");
        self.metrics
            .activation_requests(reason, status.scope.as_str(), spent);
        progress.abort();
        let per_service: Vec<String> = self
            .stats
            .by_service()
            .into_iter()
            .filter_map(|(svc, n)| {
                let d = n.saturating_sub(per_service_before.get(&svc).copied().unwrap_or(0));
                (d > 0).then(|| format!("{svc}={d}"))
            })
            .collect();
        let t = self.tally.lock().map(|t| *t).unwrap_or_default();
        tracing::info!(
            reason,
            scope = status.scope.as_str(),
            ok = status.ok(),
            requests = spent,
            per_service = %per_service.join(","),
            opened = t.opened,
            changed = t.changed,
            resolved = t.resolved,
            took_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
            "Activation finished."
        );
        self.record(&status, clock.elapsed()).await;
        status
    }

    /// Records one activation: metrics, the store's activation log, `/status`.
    async fn record(&self, status: &ActivationStatus, took: std::time::Duration) {
        let labels = status.labels();
        for l in &labels {
            self.metrics
                .pass_finished(l, status.scope.as_str(), status.ok(), took);
        }
        let record = Activation {
            id: 0,
            trigger: labels.join(","),
            scope: status.scope.as_str().into(),
            started: status.started,
            finished: status.finished,
            result: status.result().into(),
            detail: status.detail_text(),
        };
        if let Err(e) = self.store.activation_record(&record).await {
            tracing::warn!(error = %crate::error::chain(&e), "Cannot record the activation.");
        }
        if let Ok(mut last) = self.last.lock() {
            let entry = status.status_entry();
            for l in &labels {
                last.insert(l.to_string(), entry.clone());
            }
        }
        self.publish_status().await;
    }

    async fn plan_alerts_logged(
        &self,
        full: bool,
        pass: &FullPass,
        scope: Option<&(dyn Fn(&Finding) -> bool + Sync)>,
        now: DateTime<Utc>,
    ) {
        if let Err(e) = self.plan_alerts(full, pass, scope, now).await {
            tracing::error!(error = %crate::error::chain(e.as_ref()), "Cannot plan alerts; they are planned again after the next pass.");
        }
    }

    /// Plans alerts from the open findings after a pass and queues them.
    async fn plan_alerts(
        &self,
        full: bool,
        pass: &FullPass,
        scope: Option<&(dyn Fn(&Finding) -> bool + Sync)>,
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
            idp_error: pass.failures.idp.clone(),
            reverted: &pass.reverted,
            workspaces: self
                .clients
                .iter()
                // A workspace the pass never got to is neither a failure nor a success.
                .filter(|(w, _)| {
                    pass.failures.workspaces.contains_key(&w.name)
                        || !pass.failures.unread.contains(&w.name)
                })
                .map(|(w, _)| {
                    (
                        w.name.clone(),
                        pass.failures.workspaces.get(&w.name).cloned(),
                    )
                })
                .collect(),
            findings: &findings,
            read_scope: scope.map(plan::ReadScope),
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
                &crate::alert::store::AlertWrite {
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
        crate::reconcile::history::annotate(&mut changes, &self.mappings);
        self.store
            .changes_append(&changes, self.chain_key().as_ref())
            .await?;
        let mut changed = 0;
        for f in &transitions.opened {
            log_finding("New finding.", f);
        }
        for (before, after) in &transitions.changed {
            if before.state != after.state || before.severity != after.severity {
                log_finding("Finding changed.", after);
                changed += 1;
            }
        }
        if let Ok(mut t) = self.tally.lock() {
            t.opened += transitions.opened.len();
            t.changed += changed;
            t.resolved += transitions.resolved.len();
        }
        for r in &transitions.resolved {
            tracing::info!(target: crate::telemetry::FINDING_TARGET, id = %r.finding.id, kind = %r.finding.kind, subject = %r.finding.subject(), "Finding resolved.");
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

    /// `/status`: the last activation per trigger, the next deadline, open findings by
    /// state and severity, and enforcement's plan.
    pub async fn publish_status(&self) {
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
        let mut doc = serde_json::json!({
            "last_activation": last,
            "next_deadline": deadline,
            "open_findings": { "total": open.len(), "by_state_severity": summary },
            // A store created at start-up after one was lost: every open finding was
            // paged again (with its old dedup key). Operators see it here.
            "store": {
                "created_at": self.store.created_at(),
                "created_by_this_process": self.store.opened_new(),
            },
        });
        if let Some(e) = self.enforce_status.lock().ok().and_then(|e| e.clone()) {
            doc["enforce"] = e;
        }
        if let Some(r) = self.refresh_status.lock().ok().and_then(|r| r.clone()) {
            doc["refresh"] = r;
        }
        if let Ok(mut s) = self.server.status.write() {
            *s = doc;
        }
    }
}

/// The reason an activation's requests are booked under when several coalesced: the one
/// that decided its scope (start-up and operator requests first, then ticks, then events).
fn reason_rank(label: &str) -> u8 {
    match label {
        "startup" => 0,
        "full_pass" => 1,
        "periodic" => 2,
        "deadline" => 3,
        _ => 4,
    }
}

fn log_finding(what: &str, f: &Finding) {
    crate::telemetry::finding(what, f);
}
