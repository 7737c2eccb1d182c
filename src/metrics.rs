//! Prometheus metrics, rendered as the text exposition format (0.0.4) by hand (no client
//! crate).
//!
//! Why one file (~650 lines): every family is declared, updated and rendered here, so
//! the rule that no label names a person is checked in one read.
//!
//! Contract: [`Metrics::render`] returns every family with its `# HELP` and `# TYPE` lines,
//! even before the first sample, so dashboards and alerts can rely on the names.
//! Histograms are rendered cumulatively with a final `+Inf` bucket, `_sum` and `_count`.
//! Label values are escaped per the format (backslash, double quote, newline).
//!
//! Never an email (or any person) as a label value: labels are services, endpoints,
//! statuses, triggers, scopes, kinds, severities and states. The open-findings gauge is
//! replaced as a whole on every pass; a combination seen before and now gone drops to 0
//! rather than vanishing, so a resolved kind reads as 0 and not as "no data".

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::http::RequestStats;
use crate::reconcile::Finding;

/// `scimwatch_pass_duration_seconds` buckets.
const PASS_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];
/// `scimwatch_propagation_latency_seconds` buckets.
const LATENCY_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
];

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// (trigger, scope, result) → passes.
    passes: BTreeMap<(String, String, &'static str), u64>,
    pass_duration: Histogram,
    /// (kind, severity, state) → open findings.
    open_findings: BTreeMap<(&'static str, &'static str, &'static str), u64>,
    latency: Histogram,
    last_success: Option<DateTime<Utc>>,
    /// When the store was created (when it recorded it).
    store_created: Option<DateTime<Utc>>,
    /// (sink, action, result) → alert send attempts.
    alerts_sent: BTreeMap<(String, String, &'static str), u64>,
    /// (family, action) → alerts the planner put in the outbox.
    alerts_planned: BTreeMap<(&'static str, &'static str), u64>,
    /// Per sink: pending rows, age of the oldest, dead letters, broken.
    outbox: BTreeMap<String, SinkGauges>,
    /// Findings that entered drift and matched no route.
    alerts_unrouted: u64,
    /// Per workspace: grants the last pass's enforcement plan would add or remove.
    enforce_plan: BTreeMap<String, u64>,
    /// (workspace, target) → replace calls enforcement made.
    enforce_written: BTreeMap<(String, String), u64>,
    /// Rolling refresh, per kind of subject: (age of the oldest read in seconds, subjects
    /// never read).
    refresh: BTreeMap<&'static str, (f64, u64)>,
    /// IAM audit events tied to no known subject (a workspace moved to the front).
    refresh_front: u64,
    /// (reason, scope) → API requests spent by activations, and the activations.
    activation_requests: BTreeMap<(String, String), (u64, u64)>,
}

/// Pending rows, age of the oldest in seconds, dead letters, broken.
type SinkGauges = (u64, f64, u64, bool);

/// A per-sink gauge: name, help, and how to read it.
type SinkGauge = (&'static str, &'static str, fn(&SinkGauges) -> f64);

impl Default for Inner {
    fn default() -> Self {
        Inner {
            passes: BTreeMap::new(),
            pass_duration: Histogram::new(PASS_BUCKETS),
            open_findings: BTreeMap::new(),
            latency: Histogram::new(LATENCY_BUCKETS),
            last_success: None,
            store_created: None,
            alerts_sent: BTreeMap::new(),
            alerts_planned: BTreeMap::new(),
            outbox: BTreeMap::new(),
            alerts_unrouted: 0,
            enforce_plan: BTreeMap::new(),
            enforce_written: BTreeMap::new(),
            refresh: BTreeMap::new(),
            refresh_front: 0,
            activation_requests: BTreeMap::new(),
        }
    }
}

/// A histogram with fixed upper bounds; `counts[i]` holds the observations in bucket `i`
/// alone (made cumulative when rendered), `counts[bounds.len()]` those above every bound.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str) {
        let mut cumulative = 0u64;
        for (bound, n) in self.bounds.iter().zip(&self.counts) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                fmt_f64(*bound)
            );
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", fmt_f64(self.sum));
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> Option<T> {
        // A poisoned lock only means another thread panicked mid-update; the counters
        // are still usable, so keep going.
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        Some(f(&mut guard))
    }

    /// One pass ended: `trigger` is the reason label, `ok` whether it succeeded.
    pub fn pass_finished(&self, trigger: &str, scope: &str, ok: bool, duration: Duration) {
        let result = if ok { "success" } else { "failure" };
        self.with(|m| {
            *m.passes
                .entry((trigger.to_string(), scope.to_string(), result))
                .or_default() += 1;
            m.pass_duration.observe(duration.as_secs_f64());
        });
    }

    /// The rolling refresh's progress for one kind of subject.
    pub fn set_refresh_oldest(&self, kind: &'static str, oldest: Option<Duration>, never: usize) {
        self.with(|m| {
            m.refresh.insert(
                kind,
                (
                    oldest.map_or(0.0, |d| d.as_secs_f64()),
                    u64::try_from(never).unwrap_or(u64::MAX),
                ),
            );
        });
    }

    /// An IAM audit event tied to no known subject moved a workspace to the front.
    pub fn refresh_front(&self) {
        self.with(|m| m.refresh_front += 1);
    }

    /// One activation spent `requests` API requests.
    pub fn activation_requests(&self, reason: &str, scope: &str, requests: u64) {
        self.with(|m| {
            let e = m
                .activation_requests
                .entry((reason.to_string(), scope.to_string()))
                .or_default();
            e.0 += requests;
            e.1 += 1;
        });
    }

    pub fn set_last_success(&self, at: DateTime<Utc>) {
        self.with(|m| m.last_success = Some(at));
    }

    /// When the store was created (`Store::created_at`).
    pub fn set_store_created(&self, at: Option<DateTime<Utc>>) {
        self.with(|m| m.store_created = at);
    }

    /// Replaces the open-findings gauge (by kind, severity and state).
    pub fn set_open_findings(&self, findings: &[Finding]) {
        self.with(|m| {
            for v in m.open_findings.values_mut() {
                *v = 0;
            }
            for f in findings {
                *m.open_findings
                    .entry((f.kind.as_str(), f.severity.as_str(), f.state.as_str()))
                    .or_default() += 1;
            }
        });
    }

    /// IdP change → seen in Segment.
    pub fn observe_latency(&self, seconds: f64) {
        self.with(|m| m.latency.observe(seconds));
    }

    /// One delivery attempt: `result` is `delivered`, `retry`, `dead_letter` or `broken`.
    pub fn alert_sent(&self, sink: &str, action: &str, result: &'static str) {
        self.with(|m| {
            *m.alerts_sent
                .entry((sink.to_string(), action.to_string(), result))
                .or_default() += 1;
        });
    }

    /// Alerts the planner queued (once per alert, whatever the number of sinks).
    pub fn alert_planned(&self, family: &'static str, action: &'static str) {
        self.with(|m| *m.alerts_planned.entry((family, action)).or_default() += 1);
    }

    pub fn set_enforce_plan(&self, workspace: &str, changes: usize) {
        self.with(|m| {
            m.enforce_plan.insert(workspace.to_string(), changes as u64);
        });
    }

    pub fn enforce_written(&self, workspace: &str, target: &str) {
        self.with(|m| {
            *m.enforce_written
                .entry((workspace.to_string(), target.to_string()))
                .or_default() += 1;
        });
    }

    pub fn alert_unrouted(&self) {
        self.with(|m| m.alerts_unrouted += 1);
    }

    /// Replaces the outbox gauges.
    pub fn set_outbox(
        &self,
        sinks: &[String],
        depth: &[crate::alert::store::OutboxDepth],
        broken: &[crate::alert::store::BrokenSink],
        now: DateTime<Utc>,
    ) {
        self.with(|m| {
            m.outbox.clear();
            for s in sinks {
                let d = depth.iter().find(|d| &d.sink == s);
                let age = d
                    .and_then(|d| d.oldest)
                    .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
                    .unwrap_or(0.0);
                m.outbox.insert(
                    s.clone(),
                    (
                        d.map_or(0, |d| d.pending),
                        age,
                        d.map_or(0, |d| d.dead),
                        broken.iter().any(|b| &b.name == s),
                    ),
                );
            }
        });
    }

    /// The whole exposition, API request counts and rate-limit waits included.
    pub fn render(&self, requests: &RequestStats) -> String {
        let requests_snapshot = requests.snapshot();
        let waited = requests.waited().as_secs_f64();
        self.with(|m| {
            let mut out = String::with_capacity(4096);

            header(
                &mut out,
                "scimwatch_passes_total",
                "counter",
                "Reconciliation passes, by trigger, scope and result.",
            );
            for ((trigger, scope, result), n) in &m.passes {
                let _ = writeln!(
                    out,
                    "scimwatch_passes_total{} {n}",
                    labels(&[("trigger", trigger), ("scope", scope), ("result", result)])
                );
            }

            header(
                &mut out,
                "scimwatch_pass_duration_seconds",
                "histogram",
                "How long a reconciliation pass took.",
            );
            m.pass_duration
                .render(&mut out, "scimwatch_pass_duration_seconds");

            header(
                &mut out,
                "scimwatch_api_requests_total",
                "counter",
                "API requests sent, by service, endpoint template and status.",
            );
            for ((service, endpoint, status), n) in &requests_snapshot {
                let status = status.to_string();
                let _ = writeln!(
                    out,
                    "scimwatch_api_requests_total{} {n}",
                    labels(&[
                        ("service", service),
                        ("endpoint", endpoint),
                        ("status", &status)
                    ])
                );
            }

            header(
                &mut out,
                "scimwatch_rate_limit_wait_seconds_total",
                "counter",
                "Time spent waiting on rate limits (pacing and 429 hints).",
            );
            let _ = writeln!(
                out,
                "scimwatch_rate_limit_wait_seconds_total {}",
                fmt_f64(waited)
            );

            header(
                &mut out,
                "scimwatch_open_findings",
                "gauge",
                "Open findings after the last pass, by kind, severity and state.",
            );
            for ((kind, severity, state), n) in &m.open_findings {
                let _ = writeln!(
                    out,
                    "scimwatch_open_findings{} {n}",
                    labels(&[("kind", kind), ("severity", severity), ("state", state)])
                );
            }

            header(
                &mut out,
                "scimwatch_propagation_latency_seconds",
                "histogram",
                "Time from an IdP change to its effect seen in Segment.",
            );
            m.latency
                .render(&mut out, "scimwatch_propagation_latency_seconds");

            header(
                &mut out,
                "scimwatch_refresh_oldest_read_age_seconds",
                "gauge",
                "Rolling refresh: age of the oldest read per kind of subject; it stays under sync.full_refresh while the backstop keeps up.",
            );
            for (kind, (age, _)) in &m.refresh {
                let _ = writeln!(
                    out,
                    "scimwatch_refresh_oldest_read_age_seconds{} {}",
                    labels(&[("kind", kind)]),
                    fmt_f64(*age)
                );
            }
            header(
                &mut out,
                "scimwatch_refresh_never_read",
                "gauge",
                "Rolling refresh: subjects per kind not read since they appeared.",
            );
            for (kind, (_, never)) in &m.refresh {
                let _ = writeln!(
                    out,
                    "scimwatch_refresh_never_read{} {never}",
                    labels(&[("kind", kind)])
                );
            }
            header(
                &mut out,
                "scimwatch_refresh_front_total",
                "counter",
                "IAM audit events tied to no known person or group: their workspace's users moved to the front of the refresh.",
            );
            let _ = writeln!(out, "scimwatch_refresh_front_total {}", m.refresh_front);
            header(
                &mut out,
                "scimwatch_activation_requests_total",
                "counter",
                "API requests spent by activations, by reason and scope; divide by scimwatch_activations_total for requests per activation.",
            );
            for ((reason, scope), (n, _)) in &m.activation_requests {
                let _ = writeln!(
                    out,
                    "scimwatch_activation_requests_total{} {n}",
                    labels(&[("reason", reason), ("scope", scope)])
                );
            }
            header(
                &mut out,
                "scimwatch_activations_total",
                "counter",
                "Activations by reason and scope (one per activation, whatever its reasons' count in scimwatch_passes_total).",
            );
            for ((reason, scope), (_, n)) in &m.activation_requests {
                let _ = writeln!(
                    out,
                    "scimwatch_activations_total{} {n}",
                    labels(&[("reason", reason), ("scope", scope)])
                );
            }

            header(
                &mut out,
                "scimwatch_last_success_timestamp_seconds",
                "gauge",
                "Unix time of the last successful pass, full or a periodic tick (0: none yet).",
            );
            let last = m
                .last_success
                .map(|t| t.timestamp_millis() as f64 / 1000.0)
                .unwrap_or(0.0);
            let _ = writeln!(
                out,
                "scimwatch_last_success_timestamp_seconds {}",
                fmt_f64(last)
            );

            header(
                &mut out,
                "scimwatch_store_created_timestamp_seconds",
                "gauge",
                "Unix time the store was created (0: not recorded, a store older than the record). A recent value on a long-running deployment means the store was lost and started over.",
            );
            let created = m
                .store_created
                .map(|t| t.timestamp_millis() as f64 / 1000.0)
                .unwrap_or(0.0);
            let _ = writeln!(
                out,
                "scimwatch_store_created_timestamp_seconds {}",
                fmt_f64(created)
            );

            header(
                &mut out,
                "scimwatch_alerts_queued_total",
                "counter",
                "Alerts put in the outbox, by family and action (once per alert, not per sink).",
            );
            for ((family, action), n) in &m.alerts_planned {
                let _ = writeln!(
                    out,
                    "scimwatch_alerts_queued_total{} {n}",
                    labels(&[("family", family), ("action", action)])
                );
            }
            header(
                &mut out,
                "scimwatch_alerts_sent_total",
                "counter",
                "Alert delivery attempts, by sink, action and result (delivered, retry, dead_letter, broken).",
            );
            for ((sink, action, result), n) in &m.alerts_sent {
                let _ = writeln!(
                    out,
                    "scimwatch_alerts_sent_total{} {n}",
                    labels(&[("sink", sink), ("action", action), ("result", result)])
                );
            }
            header(
                &mut out,
                "scimwatch_alerts_unrouted_total",
                "counter",
                "Findings that entered drift and matched no [[alerts.route]].",
            );
            let _ = writeln!(out, "scimwatch_alerts_unrouted_total {}", m.alerts_unrouted);
            let gauges: [SinkGauge; 4] = [
                ("scimwatch_alert_outbox_depth", "Alerts waiting in the outbox, per sink.", |v| v.0 as f64),
                ("scimwatch_alert_outbox_oldest_seconds", "Age of the oldest alert waiting in the outbox, per sink.", |v| v.1),
                ("scimwatch_alert_dead_letters", "Dead-lettered alerts kept in the store, per sink.", |v| v.2 as f64),
                ("scimwatch_alert_sink_broken", "1 while a sink is marked broken (nothing is sent to it).", |v| if v.3 { 1.0 } else { 0.0 }),
            ];
            header(
                &mut out,
                "scimwatch_enforce_plan_changes",
                "gauge",
                "Grants the last full pass's enforcement plan would add or remove, per workspace.",
            );
            for (ws, n) in &m.enforce_plan {
                let _ = writeln!(out, "scimwatch_enforce_plan_changes{} {n}", labels(&[("workspace", ws)]));
            }
            header(
                &mut out,
                "scimwatch_enforce_writes_total",
                "counter",
                "Replace calls enforcement made, per workspace and target (group, user).",
            );
            for ((ws, target), n) in &m.enforce_written {
                let _ = writeln!(
                    out,
                    "scimwatch_enforce_writes_total{} {n}",
                    labels(&[("workspace", ws), ("target", target)])
                );
            }
            for (name, help, get) in gauges {
                header(&mut out, name, "gauge", help);
                for (sink, v) in &m.outbox {
                    let _ = writeln!(out, "{name}{} {}", labels(&[("sink", sink)]), fmt_f64(get(v)));
                }
            }
            out
        })
        .unwrap_or_default()
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// `{a="x",b="y"}` with escaped values.
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{k}=\"{}\"", escape_label(v));
    }
    s.push('}');
    s
}

/// Label values: backslash, double quote and newline are escaped.
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// HELP text: backslash and newline are escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Floats as the format wants them: `+Inf`, `-Inf`, `NaN`, else the shortest decimal.
fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("line\nnext"), "line\\nnext");
        assert_eq!(
            labels(&[("endpoint", "GET /x \"y\""), ("status", "200")]),
            r#"{endpoint="GET /x \"y\"",status="200"}"#
        );
    }

    #[test]
    fn floats_follow_the_format() {
        assert_eq!(fmt_f64(0.1), "0.1");
        assert_eq!(fmt_f64(300.0), "300");
        assert_eq!(fmt_f64(f64::INFINITY), "+Inf");
        assert_eq!(fmt_f64(f64::NAN), "NaN");
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new();
        m.pass_finished("periodic", "full", true, Duration::from_millis(50));
        m.pass_finished("periodic", "full", true, Duration::from_millis(700));
        m.pass_finished("okta_hook", "full", false, Duration::from_secs(1000));
        let text = m.render(&RequestStats::default());
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("scimwatch_pass_duration_seconds"))
            .collect();
        assert_eq!(
            lines,
            vec![
                r#"scimwatch_pass_duration_seconds_bucket{le="0.1"} 1"#,
                r#"scimwatch_pass_duration_seconds_bucket{le="0.5"} 1"#,
                r#"scimwatch_pass_duration_seconds_bucket{le="1"} 2"#,
                r#"scimwatch_pass_duration_seconds_bucket{le="2"} 2"#,
                r#"scimwatch_pass_duration_seconds_bucket{le="5"} 2"#,
                r#"scimwatch_pass_duration_seconds_bucket{le="10"} 2"#,
                r#"scimwatch_pass_duration_seconds_bucket{le="30"} 2"#,
                r#"scimwatch_pass_duration_seconds_bucket{le="60"} 2"#,
                r#"scimwatch_pass_duration_seconds_bucket{le="120"} 2"#,
                r#"scimwatch_pass_duration_seconds_bucket{le="300"} 2"#,
                r#"scimwatch_pass_duration_seconds_bucket{le="+Inf"} 3"#,
                r#"scimwatch_pass_duration_seconds_sum 1000.75"#,
                r#"scimwatch_pass_duration_seconds_count 3"#,
            ]
        );
        assert!(text.contains(
            r#"scimwatch_passes_total{trigger="periodic",scope="full",result="success"} 2"#
        ));
        assert!(text.contains(
            r#"scimwatch_passes_total{trigger="okta_hook",scope="full",result="failure"} 1"#
        ));
    }

    #[test]
    fn latency_edges_fall_in_their_bucket() {
        let m = Metrics::new();
        m.observe_latency(1.0); // le="1" is inclusive
        m.observe_latency(7200.5);
        let text = m.render(&RequestStats::default());
        assert!(text.contains(r#"scimwatch_propagation_latency_seconds_bucket{le="1"} 1"#));
        assert!(text.contains(r#"scimwatch_propagation_latency_seconds_bucket{le="7200"} 1"#));
        assert!(text.contains(r#"scimwatch_propagation_latency_seconds_bucket{le="+Inf"} 2"#));
        assert!(text.contains("scimwatch_propagation_latency_seconds_count 2"));
    }

    #[test]
    fn every_family_has_help_and_type_before_any_sample() {
        let text = Metrics::new().render(&RequestStats::default());
        for (name, kind) in [
            ("scimwatch_passes_total", "counter"),
            ("scimwatch_pass_duration_seconds", "histogram"),
            ("scimwatch_api_requests_total", "counter"),
            ("scimwatch_rate_limit_wait_seconds_total", "counter"),
            ("scimwatch_open_findings", "gauge"),
            ("scimwatch_propagation_latency_seconds", "histogram"),
            ("scimwatch_last_success_timestamp_seconds", "gauge"),
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name}");
        }
        assert!(text.contains("scimwatch_last_success_timestamp_seconds 0\n"));
        assert!(text.contains("scimwatch_rate_limit_wait_seconds_total 0\n"));
        assert!(text.ends_with('\n'));
    }

    fn finding(
        kind: crate::reconcile::finding::Kind,
        state: crate::reconcile::finding::State,
    ) -> Finding {
        Finding {
            id: "f".into(),
            kind,
            state,
            severity: crate::reconcile::finding::Severity::Warning,
            workspace: "production".into(),
            user: Some(crate::model::Email::new("ada@example.com")),
            group: None,
            grant: None,
            since: Utc::now(),
            deadline: None,
            attribution: None,
            reverted_by_scim: None,
            message: "ada@example.com is not provisioned".into(),
            remedy: String::new(),
            extra: None,
            missing: None,
            mapping: None,
            nested_group: None,
            people_left_out: None,
            plan: None,
            reason: None,
            evidence: None,
        }
    }

    #[test]
    fn open_findings_are_replaced_and_never_name_people() {
        use crate::reconcile::finding::{Kind, State};
        let m = Metrics::new();
        m.set_open_findings(&[
            finding(Kind::UserNotProvisioned, State::Drift),
            finding(Kind::UserNotProvisioned, State::Drift),
            finding(Kind::DirectGrant, State::Pending),
        ]);
        let text = m.render(&RequestStats::default());
        assert!(text.contains(
            r#"scimwatch_open_findings{kind="user_not_provisioned",severity="warning",state="drift"} 2"#
        ));
        assert!(!text.contains('@'));
        m.set_open_findings(&[finding(Kind::DirectGrant, State::Pending)]);
        let text = m.render(&RequestStats::default());
        assert!(text.contains(
            r#"scimwatch_open_findings{kind="user_not_provisioned",severity="warning",state="drift"} 0"#
        ));
        assert!(text.contains(
            r#"scimwatch_open_findings{kind="direct_grant",severity="warning",state="pending"} 1"#
        ));
    }

    #[test]
    fn last_success_is_unix_seconds() {
        let m = Metrics::new();
        let at = DateTime::from_timestamp(1_700_000_000, 500_000_000).unwrap();
        m.set_last_success(at);
        let text = m.render(&RequestStats::default());
        assert!(text.contains("scimwatch_last_success_timestamp_seconds 1700000000.5\n"));
    }
}
