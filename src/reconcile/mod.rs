//! One reconcile pass: read (IO, `read.rs`), then resolve → diff → classify (pure).
//!
//! [`evaluate`] is the whole pure core for one workspace: given what was read and `now`,
//! it returns the findings, sorted. Everything the table tests exercise goes through it.
//! [`consistency::check`] is the one check across workspaces: a pure function over the
//! per-workspace [`Evaluation`]s. [`evaluate_pass`] runs both over every workspace a pass
//! read: `check` and the daemon's full passes share it (no second copy of the loop).

pub mod access;
pub mod classify;
pub mod consistency;
pub mod diff;
pub mod finding;
pub mod history;
pub mod read;
pub mod suppress;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

pub use finding::{Attribution, AttributionKind, Finding, Kind, Severity, State, Subject};

use crate::config::{PolicyConfig, WorkspaceConfig};
use crate::mapping::{resolve, WorkspaceMapping};
use crate::model::{IdpKind, IdpSnapshot, NestedGroups, WorkspaceSnapshot};

/// What [`evaluate`] needs besides the snapshots.
#[derive(Clone, Debug)]
pub struct Settings {
    pub idp: IdpKind,
    pub propagation_window: Duration,
    pub event_lookback: Duration,
    pub policy: PolicyConfig,
}

impl Settings {
    /// The core's settings from the config (durations as the core counts them).
    pub fn from_config(config: &crate::config::Config) -> Result<Settings, SettingsError> {
        let duration = |key: &'static str, d: std::time::Duration| {
            Duration::from_std(d).map_err(|_| SettingsError { key })
        };
        Ok(Settings {
            idp: config.idp.kind,
            propagation_window: duration("idp.propagation_window", config.idp.propagation_window)?,
            event_lookback: duration("idp.event_lookback", config.idp.event_lookback)?,
            policy: config.policy.clone(),
        })
    }
}

/// A config duration too large for the core's date arithmetic.
#[derive(Debug, thiserror::Error)]
#[error("{key} is too large")]
pub struct SettingsError {
    pub key: &'static str,
}

/// One workspace, evaluated: the desired state it was judged against and its findings.
/// Cross-workspace checks ([`consistency`]) and `explain` read these.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub desired: resolve::Desired,
    /// Sorted as [`sort`] sorts.
    pub findings: Vec<Finding>,
}

/// The pure core for one workspace: resolve the mapping against the catalog and the IdP
/// read, diff with Segment's state, classify each mismatch at `now`. For an IdP without
/// nested groups (Okta); [`evaluate_with_nested`] is the whole core.
pub fn evaluate(
    ws: &WorkspaceConfig,
    mapping: &WorkspaceMapping,
    snapshot: &WorkspaceSnapshot,
    idp: &IdpSnapshot,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    evaluate_workspace(ws, mapping, snapshot, idp, settings, now).findings
}

/// [`evaluate`] with the groups nested in the mapped groups (Entra ID), each of which
/// becomes a `nested_group_not_provisioned` finding.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_with_nested(
    ws: &WorkspaceConfig,
    mapping: &WorkspaceMapping,
    snapshot: &WorkspaceSnapshot,
    idp: &IdpSnapshot,
    nested: &NestedGroups,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    evaluate_nested_workspace(ws, mapping, snapshot, idp, nested, settings, now).findings
}

/// [`evaluate`], keeping the desired state for the checks that span workspaces.
pub fn evaluate_workspace(
    ws: &WorkspaceConfig,
    mapping: &WorkspaceMapping,
    snapshot: &WorkspaceSnapshot,
    idp: &IdpSnapshot,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Evaluation {
    evaluate_nested_workspace(
        ws,
        mapping,
        snapshot,
        idp,
        &NestedGroups::new(),
        settings,
        now,
    )
}

/// When the daemon first saw each open finding, by finding id: its memory, which makes an
/// audit event evidence only if it came before the state it explains.
pub type FirstSeen = BTreeMap<String, DateTime<Utc>>;

/// The whole core for one workspace: [`evaluate_with_nested`], keeping the desired state.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_nested_workspace(
    ws: &WorkspaceConfig,
    mapping: &WorkspaceMapping,
    snapshot: &WorkspaceSnapshot,
    idp: &IdpSnapshot,
    nested: &NestedGroups,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Evaluation {
    evaluate_remembering(ws, mapping, snapshot, idp, nested, settings, None, now)
}

/// [`evaluate_nested_workspace`] with the daemon's memory of when it first saw each open
/// finding (`None`: no memory, as in `check`).
#[allow(clippy::too_many_arguments)]
pub fn evaluate_remembering(
    ws: &WorkspaceConfig,
    mapping: &WorkspaceMapping,
    snapshot: &WorkspaceSnapshot,
    idp: &IdpSnapshot,
    nested: &NestedGroups,
    settings: &Settings,
    first_seen: Option<&FirstSeen>,
    now: DateTime<Utc>,
) -> Evaluation {
    let mut desired = resolve::resolve(
        &ws.name,
        &snapshot.id,
        mapping,
        &snapshot.catalog,
        &idp.groups,
        &settings.policy,
    );
    // "Did you mean" for IdP group names: the groups the IdP did find, and the Segment
    // groups it pushed under their real names.
    let near: Vec<&str> = idp
        .groups
        .iter()
        .filter_map(|(_, g)| match g {
            crate::model::GroupRead::Found(g) => Some(g.name.as_str()),
            crate::model::GroupRead::Unresolved { .. } => None,
        })
        .chain(snapshot.groups.iter().map(|g| g.name.as_str()))
        .collect();
    suppress::suggest_idp_groups(&mut desired.unresolved, near.iter().copied());
    let view = diff::IdpView::new(
        desired.groups.iter().filter_map(|g| g.idp.as_ref()),
        &idp.lookups,
        &idp.events,
    );
    let mut mismatches = diff::diff(&desired, snapshot, &view, now);
    mismatches.extend(diff::nested(&desired, snapshot, nested));
    let cx = classify::Context {
        workspace: &ws.name,
        idp: settings.idp,
        window: settings.propagation_window,
        lookback: settings.event_lookback,
        now,
        events: &idp.events,
        audit: &snapshot.audit,
        catalog: &snapshot.catalog,
        self_actor: ws.self_actor.as_deref(),
        automation_actors: &ws.automation_actors,
        scim_actors: &ws.scim_actors,
        first_seen,
    };
    let mut findings: Vec<Finding> = mismatches
        .iter()
        .map(|m| classify::classify(m, &cx))
        .collect();
    // One finding per subject: should two facts ever map to one id, keep the worst.
    let mut by_id: BTreeMap<String, Finding> = BTreeMap::new();
    for f in findings.drain(..) {
        match by_id.get(&f.id) {
            Some(old) if old.severity >= f.severity => {}
            _ => {
                by_id.insert(f.id.clone(), f);
            }
        }
    }
    let mut out: Vec<Finding> = by_id.into_values().collect();
    out = suppress::apply(out, &desired, snapshot);
    sort(&mut out);
    Evaluation {
        desired,
        findings: out,
    }
}

/// Every workspace one pass read, evaluated, and the checks across them.
#[derive(Clone, Debug)]
pub struct PassEvaluation {
    /// In the order given: (workspace name, its evaluation).
    pub workspaces: Vec<(String, Evaluation)>,
    /// `workspace_inconsistent`, over the workspaces given (a consistency set with a
    /// workspace that is not among them is not checked).
    pub consistency: Vec<Finding>,
}

impl PassEvaluation {
    /// Every finding: each workspace's, then the cross-workspace ones (unsorted).
    pub fn into_findings(self) -> Vec<Finding> {
        let mut out: Vec<Finding> = self
            .workspaces
            .into_iter()
            .flat_map(|(_, e)| e.findings)
            .collect();
        out.extend(self.consistency);
        out
    }
}

/// The pure core over one pass: each read workspace (its config, mapping and snapshot)
/// through [`evaluate_remembering`], then [`consistency::check`] across them.
/// `first_seen` is the daemon's memory (`None` for `check`).
pub fn evaluate_pass(
    read: &[(&WorkspaceConfig, &WorkspaceMapping, &WorkspaceSnapshot)],
    idp: &IdpSnapshot,
    nested: &NestedGroups,
    settings: &Settings,
    first_seen: Option<&FirstSeen>,
    now: DateTime<Utc>,
) -> PassEvaluation {
    let workspaces: Vec<(String, Evaluation)> = read
        .iter()
        .map(|(ws, mapping, snap)| {
            (
                ws.name.clone(),
                evaluate_remembering(ws, mapping, snap, idp, nested, settings, first_seen, now),
            )
        })
        .collect();
    let evaluated: BTreeMap<&str, consistency::Evaluated<'_>> = read
        .iter()
        .zip(&workspaces)
        .map(|((ws, _, snapshot), (_, evaluation))| {
            (
                ws.name.as_str(),
                consistency::Evaluated {
                    snapshot,
                    evaluation,
                },
            )
        })
        .collect();
    let consistency = consistency::check(&settings.policy.consistent, &evaluated, now);
    PassEvaluation {
        workspaces,
        consistency,
    }
}

/// Drift first, then by severity (worst first), workspace, kind and subject.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.state
            .cmp(&a.state)
            .then(b.severity.cmp(&a.severity))
            .then(a.workspace.cmp(&b.workspace))
            .then(a.kind.cmp(&b.kind))
            .then(a.subject().cmp(&b.subject()))
    });
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A plain drift finding with the given id and `since`.
    pub fn finding(id: &str, since: DateTime<Utc>) -> Finding {
        Finding {
            id: id.into(),
            kind: Kind::UnmanagedUser,
            state: State::Drift,
            severity: Severity::Warning,
            workspace: "production".into(),
            user: None,
            group: None,
            grant: None,
            since,
            deadline: None,
            attribution: None,
            reverted_by_scim: Some(false),
            message: String::new(),
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
}
