//! `scimwatch report`: the quarterly access review, from one successful pass.
//!
//! Contract:
//! - [`build`] is pure: from one read (the same `read::read_all` as `check`, refusing
//!   partial data), the mappings, the change-log records and `now`, it returns an
//!   [`AccessReview`] value. Per workspace: every member with each effective grant and
//!   where it comes from, the Workspace Owners with their justification or exception,
//!   over-privileged accounts (direct grants, unmanaged users, expired exceptions: the
//!   findings `check` raises for them), personal accounts, every open finding, every
//!   exception with ticket, approver, reason and days left, and the IdP→Segment
//!   propagation latency (p50/p95, nearest rank) of the change log's records.
//! - [`render::markdown`], [`render::csv`] and [`html::html`] render the value; the HTML
//!   is one self-contained file (inline CSS and SVG, no script, no external fetch) with
//!   print CSS. All three are snapshot- or browser-tested.
//! - [`gather`] does the IO. The change log is read only when `store.path` exists (never
//!   created here); without it the latency section says so.
//! - Never: report from a partial read, or print a secret.

pub mod html;
pub mod render;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::config::{Config, WorkspaceConfig};
use crate::explain::{days_left, source, WorkspaceInput};
use crate::idp::IdentityProvider;
use crate::mapping::{MappingSet, WorkspaceMapping};
use crate::model::{Email, IdpKind, IdpSnapshot};
use crate::reconcile::access::{self, Via};
use crate::reconcile::consistency::{self, Evaluated};
use crate::reconcile::finding::format_time;
use crate::reconcile::read::{self, PassError};
use crate::reconcile::{evaluate_workspace, sort, Evaluation, Finding, Kind, Settings};
use crate::segment::SegmentClient;
use crate::store::{ChangeRecord, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Pass(#[from] PassError),
    #[error("reading the change log at {path}")]
    Store {
        path: String,
        #[source]
        source: StoreError,
    },
}

/// The access review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessReview {
    pub generated_at: DateTime<Utc>,
    pub idp: IdpKind,
    /// The change-log window the latency figures cover.
    pub since: DateTime<Utc>,
    /// Where the latency figures come from.
    pub change_log: ChangeLogSource,
    pub workspaces: Vec<WorkspaceReview>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeLogSource {
    /// No store at this path: nothing has recorded changes there.
    NoStore(String),
    /// Read from this store: so many access-change records in the window.
    Read { path: String, records: usize },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceReview {
    pub name: String,
    /// Every member, by email.
    pub members: Vec<Member>,
    pub owners: Vec<Owner>,
    pub over_privileged: Vec<Flagged>,
    /// `None`: `corporate_domains` is not set for this workspace, nothing checked.
    pub personal_accounts: Option<Vec<Flagged>>,
    /// Every open finding of this read about the workspace (drift first, worst first).
    pub findings: Vec<Finding>,
    pub exceptions: Vec<ExceptionRow>,
    pub latency: Latency,
}

impl WorkspaceReview {
    /// Open findings per kind, in kind order.
    pub fn findings_by_kind(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for f in &self.findings {
            *out.entry(f.kind.as_str()).or_insert(0) += 1;
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub email: Email,
    /// Non-neutral grants held; empty: Minimal Workspace Access only.
    pub grants: Vec<HeldGrant>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldGrant {
    /// The grant in words, resources by slug or name.
    pub text: String,
    /// "direct" or "group <name>".
    pub via: String,
    /// Where it comes from (the mapping and its line, the exception, or nothing).
    pub source: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub email: Email,
    pub via: String,
    /// The mapping's justification, the exception, or "none".
    pub basis: String,
    /// Whether a justification or an active exception backs it.
    pub justified: bool,
}

/// A member flagged by a finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flagged {
    pub email: String,
    /// The finding kind ("direct_grant", "unmanaged_user", "exception_expired",
    /// "personal_account").
    pub kind: &'static str,
    pub severity: &'static str,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExceptionRow {
    pub user: Email,
    pub ticket: String,
    pub approved_by: String,
    pub reason: String,
    pub expires: DateTime<Utc>,
    /// Whole days until `expires` (negative once expired).
    pub days_left: i64,
    /// "active" | "expiring" | "expired".
    pub status: &'static str,
    pub allows: Vec<String>,
    /// `file:line`.
    pub at: String,
}

/// Propagation latency: IdP change → seen in Segment, over the change log's records that
/// an IdP event explains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Records with a latency.
    pub samples: usize,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
    pub max_ms: Option<i64>,
    /// Counts per [`LATENCY_BUCKETS`] bucket.
    pub buckets: Vec<usize>,
}

/// Upper bounds (exclusive, seconds) and labels of the latency histogram; the last is
/// open-ended.
pub const LATENCY_BUCKETS: [(i64, &str); 7] = [
    (60, "< 1 min"),
    (300, "1–5 min"),
    (900, "5–15 min"),
    (1800, "15–30 min"),
    (3600, "30–60 min"),
    (7200, "1–2 h"),
    (i64::MAX, "≥ 2 h"),
];

impl Latency {
    pub fn of(mut samples: Vec<i64>) -> Latency {
        samples.sort_unstable();
        let mut buckets = vec![0; LATENCY_BUCKETS.len()];
        for ms in &samples {
            let secs = ms / 1000;
            let i = LATENCY_BUCKETS
                .iter()
                .position(|(upper, _)| secs < *upper)
                .unwrap_or(LATENCY_BUCKETS.len() - 1);
            buckets[i] += 1;
        }
        Latency {
            samples: samples.len(),
            p50_ms: percentile(&samples, 50),
            p95_ms: percentile(&samples, 95),
            max_ms: samples.last().copied(),
            buckets,
        }
    }
}

/// The nearest-rank percentile of sorted samples: the smallest value with at least `p`
/// percent of the samples at or below it.
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * p as usize).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Milliseconds in words: "850 ms", "42 s", "7 min 5 s", "1 h 2 min".
pub fn duration_words(ms: i64) -> String {
    let s = ms / 1000;
    if ms < 1000 {
        format!("{ms} ms")
    } else if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    }
}

/// What one read gave, for [`build`].
pub struct Read<'a> {
    pub idp_kind: IdpKind,
    pub idp: &'a IdpSnapshot,
    pub workspaces: &'a [WorkspaceInput<'a>],
}

/// Builds the review (pure). `changes` are the change log's access-change records since
/// `since` (any order).
pub fn build(
    read: &Read<'_>,
    settings: &Settings,
    change_log: ChangeLogSource,
    changes: &[ChangeRecord],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> AccessReview {
    let evaluations: Vec<Evaluation> = read
        .workspaces
        .iter()
        .map(|w| evaluate_workspace(w.config, w.mapping, w.snapshot, read.idp, settings, now))
        .collect();
    let evaluated: BTreeMap<&str, Evaluated<'_>> = read
        .workspaces
        .iter()
        .zip(&evaluations)
        .map(|(w, evaluation)| {
            (
                w.config.name.as_str(),
                Evaluated {
                    snapshot: w.snapshot,
                    evaluation,
                },
            )
        })
        .collect();
    let across = consistency::check(&settings.policy.consistent, &evaluated, now);
    let workspaces = read
        .workspaces
        .iter()
        .zip(&evaluations)
        .map(|(w, ev)| {
            let mut findings: Vec<Finding> = ev
                .findings
                .iter()
                .chain(across.iter().filter(|f| f.workspace == w.config.name))
                .cloned()
                .collect();
            sort(&mut findings);
            let samples = changes
                .iter()
                .filter(|c| c.workspace == w.config.name && c.at >= since)
                .filter_map(|c| c.latency_ms)
                .collect();
            workspace(w, ev, findings, Latency::of(samples), now)
        })
        .collect();
    AccessReview {
        generated_at: now,
        idp: read.idp_kind,
        since,
        change_log,
        workspaces,
    }
}

fn workspace(
    w: &WorkspaceInput<'_>,
    ev: &Evaluation,
    findings: Vec<Finding>,
    latency: Latency,
    now: DateTime<Utc>,
) -> WorkspaceReview {
    let desired = &ev.desired;
    let catalog = &w.snapshot.catalog;
    let mut users: Vec<&Email> = w.snapshot.users.iter().map(|u| &u.email).collect();
    users.sort();
    users.dedup();
    let mut members = Vec::new();
    let mut owners = Vec::new();
    for email in users {
        let holdings = access::holdings(email, desired, w.snapshot, now);
        let mut grants = Vec::new();
        for h in &holdings {
            let via = match &h.via {
                Via::Direct => "direct".to_string(),
                Via::Group(g) => format!("group {g}"),
            };
            let src = source(h, desired, email, &findings, now);
            if h.grant.is_owner() {
                let exception = h
                    .exception
                    .map(|i| &desired.exceptions[i].rule)
                    .filter(|r| r.is_active(now));
                let justification = match (&h.via, h.mapping, h.in_idp_group) {
                    (Via::Group(_), Some(i), Some(true)) => desired.groups[i].justification.clone(),
                    _ => None,
                };
                let (basis, justified) = match (justification, exception) {
                    (Some(j), _) => (format!("justification: {j}"), true),
                    (None, Some(r)) => (
                        format!(
                            "exception {} approved by {} until {}: {}",
                            r.ticket,
                            r.approved_by,
                            format_time(&r.expires),
                            r.reason
                        ),
                        true,
                    ),
                    (None, None) => (format!("none ({src})"), false),
                };
                // One line per owner and route (a group may grant Owner once).
                if !owners
                    .iter()
                    .any(|o: &Owner| &o.email == email && o.via == via)
                {
                    owners.push(Owner {
                        email: email.clone(),
                        via: via.clone(),
                        basis,
                        justified,
                    });
                }
            }
            grants.push(HeldGrant {
                text: h.grant.describe_with(catalog),
                via,
                source: src,
            });
        }
        members.push(Member {
            email: email.clone(),
            grants,
        });
    }
    let flagged = |kinds: &[Kind]| -> Vec<Flagged> {
        findings
            .iter()
            .filter(|f| kinds.contains(&f.kind))
            .map(|f| Flagged {
                email: f.user.as_ref().map_or_else(String::new, |u| u.to_string()),
                kind: f.kind.as_str(),
                severity: f.severity.as_str(),
                detail: f.message.clone(),
            })
            .collect()
    };
    // Access beyond what was reviewed: direct grants, people no mapping accounts for, an
    // expired exception's leftovers, and memberships the IdP group does not list (the way
    // an unjustified Owner usually holds it).
    let over_privileged = flagged(&[
        Kind::DirectGrant,
        Kind::UnmanagedUser,
        Kind::ExceptionExpired,
        Kind::MembershipUnexpected,
    ]);
    let personal_accounts = desired
        .corporate_domains
        .as_ref()
        .map(|_| flagged(&[Kind::PersonalAccount]));
    let mut exceptions: Vec<ExceptionRow> = desired
        .exceptions
        .iter()
        .map(|e| {
            let r = &e.rule;
            let status = if !r.is_active(now) {
                "expired"
            } else if now >= r.expires - desired.expiry_notice {
                "expiring"
            } else {
                "active"
            };
            let mut allows: Vec<String> =
                e.grants.iter().map(|g| g.describe_with(catalog)).collect();
            allows.extend(e.mirror_groups.iter().map(|g| format!("membership of {g}")));
            ExceptionRow {
                user: r.user.clone(),
                ticket: r.ticket.clone(),
                approved_by: r.approved_by.clone(),
                reason: r.reason.clone(),
                expires: r.expires,
                days_left: days_left(r.expires - now),
                status,
                allows,
                at: r.origin.to_string(),
            }
        })
        .collect();
    exceptions.sort_by(|a, b| a.expires.cmp(&b.expires).then(a.user.cmp(&b.user)));
    WorkspaceReview {
        name: w.config.name.clone(),
        members,
        owners,
        over_privileged,
        personal_accounts,
        findings,
        exceptions,
        latency,
    }
}

/// Reads everything (as `check` does, all or nothing) for the selected workspaces, and
/// the change log since `since` when the store exists; then [`build`]s.
#[allow(clippy::too_many_arguments)]
pub async fn gather<P: IdentityProvider>(
    config: &Config,
    selected: &[(&WorkspaceConfig, &SegmentClient)],
    mappings: &MappingSet,
    idp: &P,
    settings: &Settings,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<AccessReview, ReportError> {
    let reading = read::read_all(idp, selected, mappings, settings, now).await?;
    let mut snapshots = Vec::new();
    for (_, snap) in reading.workspaces {
        snapshots.push(snap.map_err(PassError::from)?);
    }
    let (source, changes) = read_changes(&config.store.path, since).await?;
    let empty = WorkspaceMapping::default();
    let inputs: Vec<WorkspaceInput<'_>> = selected
        .iter()
        .zip(&snapshots)
        .map(|((ws, _), snapshot)| WorkspaceInput {
            config: ws,
            mapping: mappings.workspaces.get(&ws.name).unwrap_or(&empty),
            snapshot,
        })
        .collect();
    let read = Read {
        idp_kind: idp.kind(),
        idp: &reading.idp,
        workspaces: &inputs,
    };
    Ok(build(&read, settings, source, &changes, since, now))
}

async fn read_changes(
    path: &Path,
    since: DateTime<Utc>,
) -> Result<(ChangeLogSource, Vec<ChangeRecord>), ReportError> {
    let shown = path.display().to_string();
    if !path.exists() {
        return Ok((ChangeLogSource::NoStore(shown), Vec::new()));
    }
    let err = |source| ReportError::Store {
        path: shown.clone(),
        source,
    };
    let store = Store::open_existing(path).await.map_err(err)?;
    let records = store.changes_since(since).await.map_err(err)?;
    Ok((
        ChangeLogSource::Read {
            path: shown.clone(),
            records: records.len(),
        },
        records,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let cases: [(&[i64], Option<i64>, Option<i64>); 6] = [
            (&[], None, None),
            (&[7], Some(7), Some(7)),
            (&[1, 2], Some(1), Some(2)),
            (&[1, 2, 3, 4], Some(2), Some(4)),
            (
                &[10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
                Some(50),
                Some(100),
            ),
            (
                &[
                    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
                ],
                Some(10),
                Some(19),
            ),
        ];
        for (samples, p50, p95) in cases {
            assert_eq!(
                (percentile(samples, 50), percentile(samples, 95)),
                (p50, p95),
                "{samples:?}"
            );
        }
    }

    #[test]
    fn latency_buckets_and_words() {
        let l = Latency::of(vec![3_600_000, 30_000, 59_999, 60_000, 7_200_000, 299_000]);
        assert_eq!(l.samples, 6);
        assert_eq!(l.buckets, vec![2, 2, 0, 0, 0, 1, 1]);
        assert_eq!(l.p50_ms, Some(60_000));
        assert_eq!(l.max_ms, Some(7_200_000));
        assert_eq!(duration_words(850), "850 ms");
        assert_eq!(duration_words(42_000), "42 s");
        assert_eq!(duration_words(425_000), "7 min 5 s");
        assert_eq!(duration_words(3_720_000), "1 h 2 min");
    }
}
