//! When to page: the pure alert planner (alerting.md §5). Given the alert state kept in
//! the store, the open findings after a pass and which sources that pass could read, it
//! returns the new state and the alerts to put in the outbox. No IO; `now` and the pass
//! id come in with the [`Outcome`].
//!
//! Why one file (~900 lines, half of it table tests): the rules below apply in one order
//! over one state; split, the order would no longer be visible in one read.
//!
//! Rules (issue 4, in the order [`plan`] applies them):
//! - **Inhibition**: a workspace whose read failed in this pass, or whose source is down
//!   (a failure counter above zero from earlier full passes), sends no triggers and no
//!   resolves; an IdP failure inhibits every workspace.
//! - **Source health** (full passes only): each failed full pass bumps the counter of
//!   (service, workspace) — the IdP's is keyed (idp, `*`); at `source_down_after` one
//!   `source_unavailable` alert opens, naming the service and the error. The next
//!   successful full pass of that source zeroes the counter and resolves it.
//! - **Trigger** when a finding is in `drift` and has no open alert (pending findings never
//!   page); re-trigger (same key) when its severity rises above what was sent. More than
//!   `group_threshold` such new findings of one kind in one workspace in one pass go out
//!   as one digest, keyed by (workspace, kind, pass id) and kept in the store.
//! - **Resolve** after `resolve_after` consecutive clean reads of the finding's subject
//!   (any state keeps an alert open): a full pass reads every subject of the workspaces
//!   it read; a periodic tick or an event-woken pass (`full` with a
//!   [`Outcome::read_scope`]) only the subjects it read, and only those count. A digest
//!   resolves when every finding it carries is resolved. An outcome with `full = false`
//!   (kept for callers that read nothing whole) neither counts nor resolves.
//! - A finding no route matches is recorded (so it is not re-announced every pass) and
//!   reported in [`Plan::unrouted`] for a warning.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::{one_line, Action, Alert, Family, MAX_SUMMARY};
use crate::config::AlertsConfig;
use crate::reconcile::finding::{Finding, Severity, State};

/// A digest lists this many subjects (the count says how many there are).
pub const DIGEST_SUBJECTS: usize = 20;

/// The workspace of an IdP-wide source alert.
pub const ALL_WORKSPACES: &str = "*";

/// The alert state kept per key (the `alerts` table). A record exists while its alert is
/// open; closing it deletes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub key: String,
    pub family: Family,
    pub workspace: String,
    /// The highest severity triggered so far.
    pub severity: Severity,
    /// Where the trigger went (empty: no route matched it).
    pub sinks: Vec<String>,
    /// Consecutive successful full passes of the workspace without the finding.
    pub clean: u32,
    /// A finding carried by a digest: the digest's key (the finding was not sent alone).
    #[serde(default)]
    pub digest: Option<String>,
    /// A digest: the finding ids it carries.
    #[serde(default)]
    pub members: Vec<String>,
    /// Clean full passes before the resolve, when not `alerts.resolve_after`: 1 for a
    /// finding scimwatch itself reverted (the verifying re-read resolves it).
    #[serde(default)]
    pub resolve_after: Option<u32>,
    pub opened_at: DateTime<Utc>,
    /// The alert as last triggered; the resolve repeats its key and summary.
    pub alert: Alert,
}

/// Consecutive failed full passes of one source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFailure {
    /// `okta`, `azure_ad` or `segment`.
    pub service: String,
    /// The workspace, or [`ALL_WORKSPACES`] for the IdP.
    pub workspace: String,
    pub count: u32,
    pub error: String,
    pub since: DateTime<Utc>,
}

/// What one pass could read.
#[derive(Clone, Debug)]
pub struct Outcome<'a> {
    pub now: DateTime<Utc>,
    /// Identifies the pass (its start time): part of a digest's key.
    pub pass_id: String,
    /// A full pass (counts for resolves and source health); else targeted.
    pub full: bool,
    /// `okta` or `azure_ad`.
    pub idp_service: &'a str,
    /// The IdP read failed (the pass read nothing): the error.
    pub idp_error: Option<String>,
    /// Every configured workspace, with the error if its read failed in this pass.
    pub workspaces: Vec<(String, Option<String>)>,
    /// Every open finding after the pass was recorded.
    pub findings: &'a [Finding],
    /// Findings scimwatch reverted in this pass (`enforce.mode = "apply"`): their alert
    /// resolves after the next clean full pass, the verifying re-read.
    pub reverted: &'a BTreeSet<String>,
    /// A pass that read some subjects only (a periodic tick or an event-woken pass):
    /// the findings whose subject it read. Only their alerts count a clean read (or
    /// restart the count); `None`: the pass read everything.
    pub read_scope: Option<ReadScope<'a>>,
}

/// The findings whose subject a pass read (see [`Outcome::read_scope`]).
#[derive(Clone, Copy)]
pub struct ReadScope<'a>(pub &'a (dyn Fn(&Finding) -> bool + Sync));

impl std::fmt::Debug for ReadScope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadScope(..)")
    }
}

/// One alert for some sinks.
#[derive(Clone, Debug, PartialEq)]
pub struct Send {
    pub sinks: Vec<String>,
    pub alert: Alert,
}

/// What to write (one transaction) and send.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub upsert: Vec<AlertRecord>,
    /// Keys of records to delete (their alerts closed).
    pub delete: Vec<String>,
    /// The complete new failure counters.
    pub failures: Vec<SourceFailure>,
    pub sends: Vec<Send>,
    /// Findings that entered drift and match no route: (id, summary).
    pub unrouted: Vec<(String, String)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.upsert.is_empty() && self.delete.is_empty() && self.sends.is_empty()
    }
}

/// A stable key: the first 16 hex digits of SHA-256 over `parts` joined by U+001F (the
/// finding-id recipe).
pub fn key(parts: &[&str]) -> String {
    let digest = Sha256::digest(parts.join("\u{1f}").as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The key of the `source_unavailable` alert of (service, workspace).
pub fn source_key(service: &str, workspace: &str) -> String {
    key(&["source_unavailable", service, workspace])
}

/// The key of the `sink_failing` alert about `sink`.
pub fn sink_key(sink: &str) -> String {
    key(&["sink_failing", sink])
}

/// The planner. Pure.
pub fn plan(
    cfg: &AlertsConfig,
    records: &[AlertRecord],
    failures: &[SourceFailure],
    out: &Outcome,
) -> Plan {
    let mut plan = Plan::default();
    let mut records: BTreeMap<String, AlertRecord> =
        records.iter().map(|r| (r.key.clone(), r.clone())).collect();
    let mut touched: BTreeSet<String> = BTreeSet::new();
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    let workspace_names: Vec<&str> = out.workspaces.iter().map(|(w, _)| w.as_str()).collect();

    // Source health, full passes only.
    let mut counters: BTreeMap<(String, String), SourceFailure> = failures
        .iter()
        .map(|f| ((f.service.clone(), f.workspace.clone()), f.clone()))
        .collect();
    if out.full {
        let mut results: Vec<(String, String, Option<String>)> = vec![(
            out.idp_service.to_string(),
            ALL_WORKSPACES.to_string(),
            out.idp_error.clone(),
        )];
        // With the IdP down the workspaces were not read: neither failure nor success.
        if out.idp_error.is_none() {
            for (w, e) in &out.workspaces {
                results.push(("segment".to_string(), w.clone(), e.clone()));
            }
        }
        for (service, workspace, error) in results {
            let id = (service.clone(), workspace.clone());
            let key = source_key(&service, &workspace);
            match error {
                Some(error) => {
                    let c = counters.entry(id).or_insert(SourceFailure {
                        service: service.clone(),
                        workspace: workspace.clone(),
                        count: 0,
                        error: String::new(),
                        since: out.now,
                    });
                    c.count += 1;
                    c.error = error;
                    if c.count >= cfg.source_down_after && !records.contains_key(&key) {
                        let alert = source_alert(&key, c, out.now);
                        let sinks = source_sinks(cfg, &workspace, &workspace_names);
                        let record = AlertRecord {
                            key: key.clone(),
                            family: Family::SourceUnavailable,
                            workspace: workspace.clone(),
                            severity: Severity::Error,
                            sinks: sinks.clone(),
                            clean: 0,
                            digest: None,
                            members: Vec::new(),
                            resolve_after: None,
                            opened_at: out.now,
                            alert: alert.clone(),
                        };
                        if sinks.is_empty() {
                            plan.unrouted.push((key.clone(), alert.summary.clone()));
                        } else {
                            plan.sends.push(Send { sinks, alert });
                        }
                        touched.insert(key.clone());
                        records.insert(key, record);
                    }
                }
                None => {
                    counters.remove(&id);
                    if let Some(r) = records.remove(&key) {
                        if !r.sinks.is_empty() {
                            plan.sends.push(Send {
                                sinks: r.sinks.clone(),
                                alert: r.alert.resolving(out.now),
                            });
                        }
                        deleted.insert(key);
                    }
                }
            }
        }
    }
    plan.failures = counters.into_values().collect();

    // Which workspaces may alert in this pass.
    let idp_down = out.idp_error.is_some()
        || plan
            .failures
            .iter()
            .any(|f| f.service == out.idp_service && f.workspace == ALL_WORKSPACES);
    let live: BTreeSet<&str> = if idp_down {
        BTreeSet::new()
    } else {
        out.workspaces
            .iter()
            .filter(|(w, e)| {
                e.is_none()
                    && !plan
                        .failures
                        .iter()
                        .any(|f| f.service == "segment" && &f.workspace == w)
            })
            .map(|(w, _)| w.as_str())
            .collect()
    };

    // Triggers: drift findings without an open alert, or with a higher severity.
    let mut new_by_group: BTreeMap<(&str, &str), Vec<&Finding>> = BTreeMap::new();
    for f in out.findings {
        if f.state != State::Drift || !live.contains(f.workspace.as_str()) {
            continue;
        }
        match records.get_mut(&f.id) {
            None => new_by_group
                .entry((f.workspace.as_str(), f.kind.as_str()))
                .or_default()
                .push(f),
            Some(r) => {
                r.clean = 0;
                touched.insert(f.id.clone());
                if out.reverted.contains(&f.id) {
                    r.resolve_after = Some(1);
                }
                if f.severity > r.severity {
                    // Worse than what on-call was told: say it again, on its own key.
                    let alert = Alert::from_finding(f, Action::Trigger, out.now);
                    let sinks = cfg
                        .route(f.severity.as_str(), f.kind.as_str(), &f.workspace)
                        .to_vec();
                    r.severity = f.severity;
                    r.digest = None;
                    r.sinks = sinks.clone();
                    r.alert = alert.clone();
                    if sinks.is_empty() {
                        plan.unrouted.push((f.id.clone(), alert.summary.clone()));
                    } else {
                        plan.sends.push(Send { sinks, alert });
                    }
                }
            }
        }
    }
    for ((workspace, kind), group) in new_by_group {
        if group.len() > cfg.group_threshold as usize {
            let digest = digest_alert(workspace, kind, &group, &out.pass_id, out.now);
            let sinks = cfg
                .route(digest.severity.as_str(), kind, workspace)
                .to_vec();
            for f in &group {
                touched.insert(f.id.clone());
                records.insert(
                    f.id.clone(),
                    AlertRecord {
                        key: f.id.clone(),
                        family: Family::Finding,
                        workspace: f.workspace.clone(),
                        severity: f.severity,
                        sinks: Vec::new(),
                        clean: 0,
                        digest: Some(digest.key.clone()),
                        members: Vec::new(),
                        resolve_after: None,
                        opened_at: out.now,
                        alert: Alert::from_finding(f, Action::Trigger, out.now),
                    },
                );
            }
            let record = AlertRecord {
                key: digest.key.clone(),
                family: Family::Digest,
                workspace: workspace.to_string(),
                severity: digest.severity,
                sinks: sinks.clone(),
                clean: 0,
                digest: None,
                members: group.iter().map(|f| f.id.clone()).collect(),
                resolve_after: None,
                opened_at: out.now,
                alert: digest.clone(),
            };
            if sinks.is_empty() {
                plan.unrouted
                    .push((digest.key.clone(), digest.summary.clone()));
            } else {
                plan.sends.push(Send {
                    sinks,
                    alert: digest.clone(),
                });
            }
            touched.insert(digest.key.clone());
            records.insert(digest.key.clone(), record);
        } else {
            for f in group {
                let alert = Alert::from_finding(f, Action::Trigger, out.now);
                let sinks = cfg
                    .route(f.severity.as_str(), f.kind.as_str(), &f.workspace)
                    .to_vec();
                if sinks.is_empty() {
                    plan.unrouted.push((f.id.clone(), alert.summary.clone()));
                } else {
                    plan.sends.push(Send {
                        sinks: sinks.clone(),
                        alert: alert.clone(),
                    });
                }
                touched.insert(f.id.clone());
                records.insert(
                    f.id.clone(),
                    AlertRecord {
                        key: f.id.clone(),
                        family: Family::Finding,
                        workspace: f.workspace.clone(),
                        severity: f.severity,
                        sinks,
                        clean: 0,
                        digest: None,
                        members: Vec::new(),
                        resolve_after: out.reverted.contains(&f.id).then_some(1),
                        opened_at: out.now,
                        alert,
                    },
                );
            }
        }
    }

    // Resolves: full passes of live workspaces only.
    if out.full {
        let open: BTreeSet<&str> = out.findings.iter().map(|f| f.id.as_str()).collect();
        let finding_keys: Vec<String> = records
            .values()
            .filter(|r| r.family == Family::Finding && live.contains(r.workspace.as_str()))
            .map(|r| r.key.clone())
            .collect();
        for k in finding_keys {
            let Some(r) = records.get_mut(&k) else {
                continue;
            };
            if let Some(ReadScope(scope)) = out.read_scope {
                // Only a read of the finding's subject counts.
                if !r.alert.finding.as_ref().is_some_and(scope) {
                    continue;
                }
            }
            touched.insert(k.clone());
            if open.contains(k.as_str()) {
                r.clean = 0;
                continue;
            }
            r.clean += 1;
            if r.clean >= r.resolve_after.unwrap_or(cfg.resolve_after).max(1) {
                if r.digest.is_none() && !r.sinks.is_empty() {
                    plan.sends.push(Send {
                        sinks: r.sinks.clone(),
                        alert: r.alert.resolving(out.now),
                    });
                }
                records.remove(&k);
                deleted.insert(k);
            }
        }
        let digest_keys: Vec<String> = records
            .values()
            .filter(|r| r.family == Family::Digest && live.contains(r.workspace.as_str()))
            .map(|r| r.key.clone())
            .collect();
        for k in digest_keys {
            let Some(r) = records.get(&k) else {
                continue;
            };
            // A member re-triggered on its own (severity rise) no longer belongs to it.
            let carried = r.members.iter().any(|m| {
                records
                    .get(m)
                    .is_some_and(|mr| mr.digest.as_deref() == Some(k.as_str()))
            });
            if carried {
                continue;
            }
            if !r.sinks.is_empty() {
                plan.sends.push(Send {
                    sinks: r.sinks.clone(),
                    alert: r.alert.resolving(out.now),
                });
            }
            records.remove(&k);
            deleted.insert(k);
        }
    }

    for k in &touched {
        if let Some(r) = records.get(k) {
            plan.upsert.push(r.clone());
        }
    }
    plan.delete = deleted
        .into_iter()
        .filter(|k| !records.contains_key(k))
        .collect();
    plan
}

/// The sinks for a source alert: the routes of its workspace, or for the IdP the union
/// over every workspace (it inhibits them all).
fn source_sinks(cfg: &AlertsConfig, workspace: &str, all: &[&str]) -> Vec<String> {
    let mut sinks: Vec<String> = Vec::new();
    let over: Vec<&str> = if workspace == ALL_WORKSPACES {
        all.to_vec()
    } else {
        vec![workspace]
    };
    for w in over {
        for s in cfg.route(Severity::Error.as_str(), "source_unavailable", w) {
            if !sinks.contains(s) {
                sinks.push(s.clone());
            }
        }
    }
    sinks
}

fn source_alert(key: &str, c: &SourceFailure, now: DateTime<Utc>) -> Alert {
    let scope = if c.workspace == ALL_WORKSPACES {
        "every workspace (drift alerts are held back until it answers)".to_string()
    } else {
        format!("workspace {} (its drift alerts are held back)", c.workspace)
    };
    let summary = format!(
        "source_unavailable: {} failed {} passes in a row for {scope}: {}",
        c.service, c.count, c.error
    );
    Alert {
        key: key.to_string(),
        action: Action::Trigger,
        severity: Severity::Error,
        summary: one_line(&summary, MAX_SUMMARY),
        finding: None,
        workspace: c.workspace.clone(),
        kind: "source_unavailable".to_string(),
        family: Family::SourceUnavailable,
        extra: Some(json!({
            "service": c.service,
            "workspace": c.workspace,
            "error": c.error,
            "failed_passes": c.count,
            "failing_since": crate::reconcile::finding::format_time(&c.since),
            "remedy": "Check the service's status and scimwatch's credentials; findings and deadlines are kept and re-checked when it answers.",
        })),
        message_id: None,
        at: now,
    }
}

fn digest_alert(
    workspace: &str,
    kind: &str,
    group: &[&Finding],
    pass_id: &str,
    now: DateTime<Utc>,
) -> Alert {
    let severity = group
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Warning);
    let subjects: Vec<String> = group
        .iter()
        .take(DIGEST_SUBJECTS)
        .map(|f| f.subject())
        .collect();
    let ids: Vec<&str> = group
        .iter()
        .take(DIGEST_SUBJECTS)
        .map(|f| f.id.as_str())
        .collect();
    let summary = format!(
        "{} {kind} findings in workspace {workspace} at once (digest): {}{}",
        group.len(),
        subjects.join(", "),
        if group.len() > subjects.len() {
            format!(" and {} more", group.len() - subjects.len())
        } else {
            String::new()
        }
    );
    Alert {
        key: key(&["digest", workspace, kind, pass_id]),
        action: Action::Trigger,
        severity,
        summary: one_line(&summary, MAX_SUMMARY),
        finding: None,
        workspace: workspace.to_string(),
        kind: kind.to_string(),
        family: Family::Digest,
        extra: Some(json!({
            "kind": kind,
            "workspace": workspace,
            "count": group.len(),
            "subjects": subjects,
            "finding_ids": ids,
            "pass": pass_id,
            "remedy": "See `scimwatch check` or /findings for every finding; the digest resolves when all of them are gone.",
        })),
        message_id: None,
        at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AlertRoute, AlertsConfig};
    use crate::model::Email;
    use crate::reconcile::finding::{Finding, Kind, Severity, State};
    use chrono::TimeZone;

    fn finding(workspace: &str, kind: Kind, user: &str) -> Finding {
        let mut f =
            crate::reconcile::tests_support::finding(&key(&[workspace, kind.as_str(), user]), t(0));
        f.workspace = workspace.into();
        f.kind = kind;
        f.user = Some(Email::new(user));
        f
    }

    fn cfg() -> AlertsConfig {
        AlertsConfig {
            routes: vec![AlertRoute {
                sinks: vec!["pd".into()],
                severities: None,
                kinds: None,
                workspaces: None,
            }],
            ..AlertsConfig::default()
        }
    }

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 10, 0, 0)
            .single()
            .unwrap_or_default()
            + chrono::Duration::minutes(min)
    }

    fn drift(user: &str, sev: Severity) -> Finding {
        let mut f = finding("prod", Kind::DirectGrant, user);
        f.state = State::Drift;
        f.severity = sev;
        f
    }

    static NONE: BTreeSet<String> = BTreeSet::new();

    fn outcome<'a>(full: bool, min: i64, findings: &'a [Finding]) -> Outcome<'a> {
        Outcome {
            now: t(min),
            pass_id: format!("pass-{min}"),
            full,
            idp_service: "okta",
            idp_error: None,
            workspaces: vec![("prod".into(), None), ("stage".into(), None)],
            findings,
            reverted: &NONE,
            read_scope: None,
        }
    }

    /// Runs passes one after another, applying each plan, and returns every plan.
    struct Run {
        cfg: AlertsConfig,
        records: Vec<AlertRecord>,
        failures: Vec<SourceFailure>,
    }

    impl Run {
        fn new(cfg: AlertsConfig) -> Run {
            Run {
                cfg,
                records: vec![],
                failures: vec![],
            }
        }
        fn pass(&mut self, out: &Outcome) -> Plan {
            let p = plan(&self.cfg, &self.records, &self.failures, out);
            self.records.retain(|r| !p.delete.contains(&r.key));
            for u in &p.upsert {
                self.records.retain(|r| r.key != u.key);
                self.records.push(u.clone());
            }
            self.failures = p.failures.clone();
            p
        }
    }

    fn actions(p: &Plan) -> Vec<(Action, String, Family)> {
        p.sends
            .iter()
            .map(|s| (s.alert.action, s.alert.key.clone(), s.alert.family))
            .collect()
    }

    #[test]
    fn drift_triggers_once_and_resolves_after_two_clean_full_passes() {
        let mut run = Run::new(cfg());
        let f = drift("bob@acme.test", Severity::Critical);
        let p = run.pass(&outcome(true, 0, std::slice::from_ref(&f)));
        assert_eq!(
            actions(&p),
            vec![(Action::Trigger, f.id.clone(), Family::Finding)]
        );
        assert_eq!(p.sends[0].sinks, vec!["pd".to_string()]);
        // Still there: nothing new.
        let p = run.pass(&outcome(true, 1, std::slice::from_ref(&f)));
        assert!(p.sends.is_empty());
        // Gone once: held (hysteresis), gone twice: resolved.
        let p = run.pass(&outcome(true, 2, &[]));
        assert!(p.sends.is_empty());
        let p = run.pass(&outcome(true, 3, &[]));
        assert_eq!(
            actions(&p),
            vec![(Action::Resolve, f.id.clone(), Family::Finding)]
        );
        assert!(run.records.is_empty());
    }

    #[test]
    fn pending_findings_never_page() {
        let mut run = Run::new(cfg());
        let mut f = drift("bob@acme.test", Severity::Warning);
        f.state = State::Pending;
        let p = run.pass(&outcome(true, 0, std::slice::from_ref(&f)));
        assert!(p.sends.is_empty() && p.upsert.is_empty());
    }

    #[test]
    fn a_flap_within_the_hold_does_not_resolve_or_retrigger() {
        let mut run = Run::new(cfg());
        let f = drift("bob@acme.test", Severity::Error);
        run.pass(&outcome(true, 0, std::slice::from_ref(&f)));
        assert!(run.pass(&outcome(true, 1, &[])).sends.is_empty());
        // Back (even pending): the alert stays open, the count restarts.
        let mut back = f.clone();
        back.state = State::Pending;
        assert!(run
            .pass(&outcome(true, 2, std::slice::from_ref(&back)))
            .sends
            .is_empty());
        assert!(run.pass(&outcome(true, 3, &[])).sends.is_empty());
        assert_eq!(run.pass(&outcome(true, 4, &[])).sends.len(), 1);
    }

    #[test]
    fn a_pass_that_read_some_subjects_counts_a_clean_read_only_for_theirs() {
        let mut run = Run::new(cfg());
        let bob = drift("bob@acme.test", Severity::Critical);
        let ann = drift("ann@acme.test", Severity::Critical);
        let p = run.pass(&outcome(true, 0, &[bob.clone(), ann.clone()]));
        assert_eq!(p.sends.len(), 2);
        // Both gone, but each tick reads only Bob: Ann's alert never counts.
        let bob_only = |f: &Finding| {
            f.user
                .as_ref()
                .is_some_and(|u| u.as_str() == "bob@acme.test")
        };
        let mut tick = |min: i64| {
            let mut o = outcome(true, min, &[]);
            o.read_scope = Some(ReadScope(&bob_only));
            run.pass(&o)
        };
        assert!(tick(1).sends.is_empty(), "one clean read of Bob: held");
        let p = tick(2);
        assert_eq!(
            actions(&p),
            vec![(Action::Resolve, bob.id.clone(), Family::Finding)]
        );
        for min in 3..6 {
            assert!(tick(min).sends.is_empty(), "Ann was never read again");
        }
        assert!(run.records.iter().any(|r| r.key == ann.id && r.clean == 0));
    }

    #[test]
    fn targeted_passes_trigger_but_never_count_towards_a_resolve() {
        let mut run = Run::new(cfg());
        let f = drift("bob@acme.test", Severity::Critical);
        let p = run.pass(&outcome(false, 0, std::slice::from_ref(&f)));
        assert_eq!(p.sends.len(), 1);
        for m in 1..5 {
            assert!(run.pass(&outcome(false, m, &[])).sends.is_empty());
        }
        run.pass(&outcome(true, 6, &[]));
        assert_eq!(run.pass(&outcome(true, 7, &[])).sends.len(), 1);
    }

    #[test]
    fn a_severity_rise_retriggers_the_same_key_and_a_fall_does_not() {
        let mut run = Run::new(cfg());
        let mut f = drift("bob@acme.test", Severity::Warning);
        run.pass(&outcome(true, 0, std::slice::from_ref(&f)));
        f.severity = Severity::Error;
        let p = run.pass(&outcome(true, 1, std::slice::from_ref(&f)));
        assert_eq!(
            actions(&p),
            vec![(Action::Trigger, f.id.clone(), Family::Finding)]
        );
        assert_eq!(p.sends[0].alert.severity, Severity::Error);
        f.severity = Severity::Warning;
        assert!(run
            .pass(&outcome(true, 2, std::slice::from_ref(&f)))
            .sends
            .is_empty());
        f.severity = Severity::Error;
        assert!(run
            .pass(&outcome(true, 3, std::slice::from_ref(&f)))
            .sends
            .is_empty());
    }

    #[test]
    fn more_than_the_threshold_goes_out_as_one_digest_and_resolves_when_all_are_gone() {
        let mut run = Run::new(cfg());
        let many: Vec<Finding> = (0..300)
            .map(|i| drift(&format!("u{i:03}@acme.test"), Severity::Critical))
            .collect();
        let p = run.pass(&outcome(true, 0, &many));
        assert_eq!(p.sends.len(), 1);
        let digest = &p.sends[0].alert;
        assert_eq!(digest.family, Family::Digest);
        assert_eq!(digest.severity, Severity::Critical);
        let extra = digest.extra.clone().unwrap_or_default();
        assert_eq!(extra["count"], 300);
        assert_eq!(
            extra["subjects"].as_array().map(Vec::len),
            Some(DIGEST_SUBJECTS)
        );
        assert!(
            digest.summary.contains("and 280 more"),
            "{}",
            digest.summary
        );
        // The key is derived from workspace, kind and pass: stable, and kept.
        assert_eq!(
            digest.key,
            key(&["digest", "prod", "direct_grant", "pass-0"])
        );
        assert_eq!(run.records.len(), 301);

        // Half gone: the digest stays open, nothing is sent.
        for m in 1..4 {
            assert!(run.pass(&outcome(true, m, &many[..150])).sends.is_empty());
        }
        // All gone for two passes: one resolve, the digest's.
        run.pass(&outcome(true, 5, &[]));
        let p = run.pass(&outcome(true, 6, &[]));
        assert_eq!(
            actions(&p),
            vec![(Action::Resolve, digest.key.clone(), Family::Digest)]
        );
        assert!(run.records.is_empty());
    }

    #[test]
    fn the_threshold_itself_still_pages_one_by_one() {
        let mut run = Run::new(cfg());
        let ten: Vec<Finding> = (0..10)
            .map(|i| drift(&format!("u{i}@acme.test"), Severity::Error))
            .collect();
        let p = run.pass(&outcome(true, 0, &ten));
        assert_eq!(p.sends.len(), 10);
        assert!(p.sends.iter().all(|s| s.alert.family == Family::Finding));
    }

    #[test]
    fn idp_down_inhibits_everything_and_pages_once_after_three_failed_passes() {
        let mut run = Run::new(cfg());
        let f = drift("bob@acme.test", Severity::Critical);
        let mut plans = Vec::new();
        for m in 0..5 {
            let mut o = outcome(true, m, std::slice::from_ref(&f));
            o.idp_error = Some("okta: 503 Service Unavailable".into());
            plans.push(run.pass(&o));
        }
        let sends: Vec<_> = plans.iter().flat_map(actions).collect();
        let key = source_key("okta", ALL_WORKSPACES);
        assert_eq!(
            sends,
            vec![(Action::Trigger, key.clone(), Family::SourceUnavailable)]
        );
        assert!(plans[2].sends[0]
            .alert
            .summary
            .contains("okta failed 3 passes"));
        assert!(plans[2].sends[0].alert.summary.contains("503"));
        // Back: the source resolves; the drift found is paged now.
        let p = run.pass(&outcome(true, 6, std::slice::from_ref(&f)));
        let mut got = actions(&p);
        got.sort();
        let mut want = vec![
            (Action::Trigger, f.id.clone(), Family::Finding),
            (Action::Resolve, key, Family::SourceUnavailable),
        ];
        want.sort();
        assert_eq!(got, want);
        assert!(run.failures.is_empty());
    }

    #[test]
    fn a_failed_workspace_sends_nothing_for_itself_while_others_go_on() {
        let mut run = Run::new(cfg());
        let a = drift("bob@acme.test", Severity::Critical);
        let mut b = finding("stage", Kind::DirectGrant, "eve@acme.test");
        b.state = State::Drift;
        b.severity = Severity::Critical;
        run.pass(&outcome(true, 0, &[a.clone(), b.clone()]));
        // prod fails: its open alert neither resolves nor counts; stage resolves.
        for m in 1..3 {
            let mut o = outcome(true, m, &[]);
            o.workspaces[0].1 = Some("segment: 500".into());
            let p = run.pass(&o);
            if m == 2 {
                assert_eq!(
                    actions(&p),
                    vec![(Action::Resolve, b.id.clone(), Family::Finding)]
                );
            } else {
                assert!(p.sends.is_empty());
            }
        }
        assert!(run.records.iter().any(|r| r.key == a.id));
        // A targeted pass meanwhile does not page prod's new drift: its source is down.
        let c = drift("carol@acme.test", Severity::Critical);
        assert!(run
            .pass(&outcome(false, 3, std::slice::from_ref(&c)))
            .sends
            .is_empty());
    }

    #[test]
    fn recovery_groups_what_the_first_pass_finds() {
        let mut run = Run::new(cfg());
        for m in 0..3 {
            let mut o = outcome(true, m, &[]);
            o.idp_error = Some("okta down".into());
            run.pass(&o);
        }
        let many: Vec<Finding> = (0..40)
            .map(|i| drift(&format!("u{i}@acme.test"), Severity::Warning))
            .collect();
        let p = run.pass(&outcome(true, 3, &many));
        let fams: Vec<Family> = p.sends.iter().map(|s| s.alert.family).collect();
        assert_eq!(fams.iter().filter(|f| **f == Family::Digest).count(), 1);
        assert_eq!(fams.iter().filter(|f| **f == Family::Finding).count(), 0);
    }

    #[test]
    fn unrouted_findings_are_reported_once_and_not_sent() {
        let mut c = cfg();
        c.routes[0].severities = Some(vec!["critical".into()]);
        let mut run = Run::new(c);
        let f = drift("bob@acme.test", Severity::Warning);
        let p = run.pass(&outcome(true, 0, std::slice::from_ref(&f)));
        assert!(p.sends.is_empty());
        assert_eq!(p.unrouted.len(), 1);
        assert!(run
            .pass(&outcome(true, 1, std::slice::from_ref(&f)))
            .unrouted
            .is_empty());
    }

    #[test]
    fn keys_are_stable_hex() {
        let k = source_key("okta", "*");
        assert_eq!(k.len(), 16);
        assert_eq!(k, source_key("okta", "*"));
        assert_ne!(k, source_key("segment", "*"));
    }
}
