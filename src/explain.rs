//! `scimwatch explain <email>`: everything scimwatch knows about one person's access, per
//! workspace, with where each piece comes from.
//!
//! Why one file (~700 lines): the value, its gathering and its two renderings change
//! together whenever a fact is added; the snapshots keep them honest.
//!
//! Contract:
//! - [`build`] is pure: from one successful read (the same `read::read_all` as `check`,
//!   refusing partial data), the mappings, the change log records and `now`, it returns an
//!   [`Explanation`] value. [`text`] renders it for people, [`json`] for tools; both are
//!   snapshot-tested.
//! - The findings shown are those a `check` over the same read would report about the
//!   person (consistency across workspaces included), not the store's.
//! - [`gather`] does the IO: the read, one IdP lookup of the person when no mapped group
//!   lists them and no workspace has them, and the change log when `store.path` exists
//!   (never creating a store: a missing one is said, not read as "no changes").
//! - Never: print a secret, or explain from a partial read.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::config::{Config, WorkspaceConfig};
use crate::idp::{IdentityProvider, IdpError};
use crate::mapping::{MappingSet, WorkspaceMapping};
use crate::model::{Email, IdpKind, IdpSnapshot, UserLookup, WorkspaceSnapshot};
use crate::reconcile::access::{self, Via};
use crate::reconcile::consistency::{self, Evaluated};
use crate::reconcile::finding::{format_time, GrantView};
use crate::reconcile::read::{self, PassError};
use crate::reconcile::{evaluate_workspace, sort, Evaluation, Finding, Settings};
use crate::segment::SegmentClient;
use crate::store::{ChangeRecord, Store, StoreError};

/// How many change-log records `explain` shows (the latest).
pub const LAST_CHANGES: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error(transparent)]
    Pass(#[from] PassError),
    #[error(transparent)]
    Idp(#[from] IdpError),
    #[error("reading the change log at {path}")]
    Store {
        path: String,
        #[source]
        source: StoreError,
    },
}

/// One person, explained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub schema: u32,
    pub email: Email,
    #[serde(serialize_with = "ser_time")]
    pub generated_at: DateTime<Utc>,
    pub idp: IdpPerson,
    pub workspaces: Vec<WorkspaceExplanation>,
    pub changes: ChangeLog,
}

impl Explanation {
    /// Whether scimwatch knows the person at all: the IdP has them, a workspace has them
    /// as a member, or a mapping names them (exception or allow-list).
    pub fn known(&self) -> bool {
        self.idp.status.is_some()
            || self
                .workspaces
                .iter()
                .any(|w| w.member || !w.exceptions.is_empty() || w.allow_listed)
    }
}

/// The person in the IdP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IdpPerson {
    /// "okta" | "azure_ad".
    pub kind: IdpKind,
    /// The IdP's id for the account; null when the IdP has no such user.
    pub id: Option<String>,
    /// The IdP status ("ACTIVE", "SUSPENDED", ...); null when the IdP has no such user.
    pub status: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkspaceExplanation {
    pub name: String,
    /// Whether the person is a member of the workspace in Segment.
    pub member: bool,
    pub segment_user_id: Option<String>,
    /// Listed in this workspace's `[policy] allow`.
    pub allow_listed: bool,
    /// This workspace's mapped IdP groups that list the person, with their status there.
    pub idp_groups: Vec<IdpGroupMembership>,
    /// The mapping rules those groups hit.
    pub rules: Vec<RuleHit>,
    /// What the mappings and active exceptions give the person here.
    pub expected: Vec<ExpectedGrant>,
    /// What Segment says the person holds (Minimal Workspace Access left out).
    pub held: Vec<HeldGrant>,
    /// Exceptions naming the person in this workspace's mappings.
    pub exceptions: Vec<ExceptionView>,
    /// The findings a `check` over this read reports about the person here.
    pub findings: Vec<Finding>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IdpGroupMembership {
    pub group: String,
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleHit {
    pub idp_group: String,
    /// The mirror group in Segment.
    pub segment_group: Option<String>,
    /// `file:line` of the `[[group]]`.
    pub at: String,
    pub justification: Option<String>,
    pub ticket: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExpectedGrant {
    pub grant: GrantView,
    /// The grant in words, resources by slug or name.
    pub text: String,
    /// "group Segment Prod Owners" or "exception CHG-1".
    pub from: String,
    /// `file:line` of the grant rule.
    pub at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeldGrant {
    pub grant: GrantView,
    pub text: String,
    /// "direct" | "group".
    pub via: &'static str,
    /// The Segment group, for `via` = "group".
    pub group: Option<String>,
    /// Where it comes from, in words (the mapping and its line, the exception, or "no
    /// mapping or exception").
    pub source: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExceptionView {
    pub ticket: String,
    pub approved_by: String,
    pub reason: String,
    #[serde(serialize_with = "ser_time")]
    pub expires: DateTime<Utc>,
    /// Whole days until `expires` (0 on its last day; negative once expired).
    pub days_left: i64,
    /// "active" | "expiring" (within `expiry_notice`) | "expired".
    pub status: &'static str,
    /// What it allows: grants in words and "membership of <group>".
    pub allows: Vec<String>,
    /// `file:line` of the `[[exception]]`.
    pub at: String,
}

/// The change log, as far as `explain` could read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ChangeLog {
    /// `store.path` does not exist: nothing has recorded changes there (`scimwatch run`
    /// keeps the log).
    NoStore { path: String },
    /// The latest records about the person (at most [`LAST_CHANGES`]), oldest first, and
    /// how many there are in all.
    Read {
        path: String,
        total: usize,
        records: Vec<ChangeView>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangeView {
    #[serde(serialize_with = "ser_time")]
    pub time: DateTime<Utc>,
    pub workspace: String,
    pub before: String,
    pub after: String,
    pub actor: Option<String>,
    pub attribution: Option<String>,
    pub idp_event: Option<String>,
}

impl ChangeLog {
    /// The person's records out of the whole log (matched by email, case-insensitively),
    /// keeping the latest [`LAST_CHANGES`].
    pub fn from_records(path: &str, email: &Email, records: &[ChangeRecord]) -> ChangeLog {
        let mine: Vec<&ChangeRecord> = records
            .iter()
            .filter(|r| Email::new(&r.user) == *email)
            .collect();
        let total = mine.len();
        let records = mine
            .into_iter()
            .skip(total.saturating_sub(LAST_CHANGES))
            .map(|r| ChangeView {
                time: r.at,
                workspace: r.workspace.clone(),
                before: r.before.clone(),
                after: r.after.clone(),
                actor: r.actor.clone(),
                attribution: r.attribution.clone(),
                idp_event: r.idp_event.clone(),
            })
            .collect();
        ChangeLog::Read {
            path: path.to_string(),
            total,
            records,
        }
    }
}

/// One workspace as read, for [`build`].
pub struct WorkspaceInput<'a> {
    pub config: &'a WorkspaceConfig,
    pub mapping: &'a WorkspaceMapping,
    pub snapshot: &'a WorkspaceSnapshot,
}

/// What one successful read gave, for [`build`].
pub struct Read<'a> {
    pub idp_kind: IdpKind,
    pub idp: &'a IdpSnapshot,
    /// The IdP's answer for the person when the read did not list them.
    pub lookup: Option<&'a UserLookup>,
    pub workspaces: &'a [WorkspaceInput<'a>],
}

/// Builds the explanation (pure). `settings.policy.consistent` decides the consistency
/// findings, as in `check`.
pub fn build(
    email: &Email,
    read: &Read<'_>,
    settings: &Settings,
    changes: ChangeLog,
    now: DateTime<Utc>,
) -> Explanation {
    let Read {
        idp_kind,
        idp,
        lookup,
        workspaces,
    } = *read;
    let evaluations: Vec<Evaluation> = workspaces
        .iter()
        .map(|w| evaluate_workspace(w.config, w.mapping, w.snapshot, idp, settings, now))
        .collect();
    let evaluated: BTreeMap<&str, Evaluated<'_>> = workspaces
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

    // The person in the IdP: from the mapped groups' member lists, else the lookups.
    let from_groups = idp.groups.iter().find_map(|(_, g)| match g {
        crate::model::GroupRead::Found(g) => g.members.iter().find(|m| &m.key == email),
        crate::model::GroupRead::Unresolved { .. } => None,
    });
    let found = from_groups.or_else(|| {
        idp.lookups.get(email).or(lookup).and_then(|l| match l {
            UserLookup::Found(u) => Some(u),
            UserLookup::NotFound => None,
        })
    });
    let person = IdpPerson {
        kind: idp_kind,
        id: found.map(|u| u.id.clone()),
        status: found.map(|u| u.status.label()),
    };

    let mut out = Vec::new();
    for (w, evaluation) in workspaces.iter().zip(&evaluations) {
        let mut findings: Vec<Finding> = evaluation
            .findings
            .iter()
            .chain(across.iter().filter(|f| f.workspace == w.config.name))
            .filter(|f| f.user.as_ref() == Some(email) || mentions(f, email))
            .cloned()
            .collect();
        sort(&mut findings);
        out.push(workspace(email, w, evaluation, findings, now));
    }
    Explanation {
        schema: 1,
        email: email.clone(),
        generated_at: now,
        idp: person,
        workspaces: out,
        changes,
    }
}

/// Findings about the workspace that name the person (`too_many_owners`).
fn mentions(f: &Finding, email: &Email) -> bool {
    f.user.is_none()
        && f.kind == crate::reconcile::Kind::TooManyOwners
        && f.message.contains(&format!("{email} ("))
}

fn workspace(
    email: &Email,
    w: &WorkspaceInput<'_>,
    evaluation: &Evaluation,
    findings: Vec<Finding>,
    now: DateTime<Utc>,
) -> WorkspaceExplanation {
    let desired = &evaluation.desired;
    let catalog = &w.snapshot.catalog;
    let member = w.snapshot.users.iter().find(|u| &u.email == email);

    let mut idp_groups = Vec::new();
    let mut rules = Vec::new();
    let mut expected = Vec::new();
    for (i, d) in desired.groups.iter().enumerate() {
        let Some(m) = d
            .idp
            .as_ref()
            .and_then(|g| g.members.iter().find(|m| &m.key == email))
        else {
            continue;
        };
        idp_groups.push(IdpGroupMembership {
            group: d.idp_name(),
            status: m.status.label(),
        });
        rules.push(RuleHit {
            idp_group: d.idp_name(),
            segment_group: d.mirror.clone(),
            at: d.origin.to_string(),
            justification: d.justification.clone(),
            ticket: d.ticket.clone(),
        });
        if !m.status.is_active() {
            continue;
        }
        let rule_lines = w.mapping.groups.get(i).map(|r| &r.grants);
        for (j, g) in d.grants.iter().flatten().enumerate() {
            let at = rule_lines
                .and_then(|r| r.get(j))
                .map_or_else(|| d.origin.to_string(), |r| r.origin.to_string());
            expected.push(ExpectedGrant {
                grant: GrantView::from(g),
                text: g.describe_with(catalog),
                from: format!("group {}", d.idp_name()),
                at,
            });
        }
    }

    let mut exceptions = Vec::new();
    for e in desired.exceptions.iter().filter(|e| &e.rule.user == email) {
        let r = &e.rule;
        let status = if !r.is_active(now) {
            "expired"
        } else if now >= r.expires - desired.expiry_notice {
            "expiring"
        } else {
            "active"
        };
        let mut allows: Vec<String> = e.grants.iter().map(|g| g.describe_with(catalog)).collect();
        allows.extend(e.mirror_groups.iter().map(|g| format!("membership of {g}")));
        if r.is_active(now) {
            for (g, rule) in e.grants.iter().zip(&r.grants) {
                expected.push(ExpectedGrant {
                    grant: GrantView::from(g),
                    text: g.describe_with(catalog),
                    from: format!("exception {}", r.ticket),
                    at: rule.origin.to_string(),
                });
            }
        }
        exceptions.push(ExceptionView {
            ticket: r.ticket.clone(),
            approved_by: r.approved_by.clone(),
            reason: r.reason.clone(),
            expires: r.expires,
            days_left: days_left(r.expires - now),
            status,
            allows,
            at: r.origin.to_string(),
        });
    }

    let held = access::holdings(email, desired, w.snapshot, now)
        .into_iter()
        .map(|h| {
            let source = source(&h, desired, email, &findings, now);
            let (via, group) = match &h.via {
                Via::Direct => ("direct", None),
                Via::Group(g) => ("group", Some(g.clone())),
            };
            HeldGrant {
                grant: GrantView::from(&h.grant),
                text: h.grant.describe_with(catalog),
                via,
                group,
                source,
            }
        })
        .collect();

    WorkspaceExplanation {
        name: w.config.name.clone(),
        member: member.is_some(),
        segment_user_id: member.map(|u| u.id.clone()),
        allow_listed: desired.allow.contains(email),
        idp_groups,
        rules,
        expected,
        held,
        exceptions,
        findings,
    }
}

/// Where a held grant comes from, in words.
///
/// A membership the IdP group does not list is worded from the `membership_unexpected`
/// finding about it in `findings`: an IdP change SCIM has not carried yet, the SCIM sync,
/// or a person by hand — never "by hand" on a guess.
pub(crate) fn source(
    h: &access::Holding,
    desired: &crate::mapping::resolve::Desired,
    email: &Email,
    findings: &[Finding],
    now: DateTime<Utc>,
) -> String {
    let exception = h.exception.map(|i| &desired.exceptions[i].rule);
    let exc_words = |r: &crate::mapping::ExceptionRule| {
        if r.is_active(now) {
            format!(
                "exception {} at {} (until {})",
                r.ticket,
                r.origin,
                format_time(&r.expires)
            )
        } else {
            format!(
                "exception {} at {}, which expired at {}",
                r.ticket,
                r.origin,
                format_time(&r.expires)
            )
        }
    };
    match (&h.via, h.mapping) {
        (Via::Direct, _) => match exception {
            Some(r) => exc_words(r),
            None => "no exception covers it".into(),
        },
        (Via::Group(_), Some(i)) => {
            let d = &desired.groups[i];
            let mapping = format!("mapping of {} at {}", d.idp_name(), d.origin);
            match (h.in_idp_group, exception) {
                (Some(true), _) => mapping,
                (Some(false), Some(r)) => format!(
                    "{mapping}; {email} is not an active member of the IdP group, allowed by {}",
                    exc_words(r)
                ),
                (Some(false), None) => format!(
                    "{mapping}; {email} is not an active member of the IdP group ({})",
                    unlisted_membership(h, email, findings)
                ),
                (None, _) => format!("{mapping} (the IdP group did not resolve)"),
            }
        }
        (Via::Group(name), None) => match exception {
            Some(r) => format!(
                "the Segment group {name}, which no mapping names; allowed by {}",
                exc_words(r)
            ),
            None => format!("the Segment group {name}, which no mapping names"),
        },
    }
}

/// How a membership the IdP group does not list came about, from its finding.
fn unlisted_membership(h: &access::Holding, email: &Email, findings: &[Finding]) -> &'static str {
    use crate::reconcile::{AttributionKind, Kind};
    let Via::Group(group) = &h.via else {
        return "who made it is unknown";
    };
    let finding = findings.iter().find(|f| {
        f.kind == Kind::MembershipUnexpected
            && f.user.as_ref() == Some(email)
            && f.group.as_deref() == Some(group.as_str())
    });
    match finding {
        // An IdP change explains it: SCIM has yet to carry (or failed to carry) it.
        Some(f) if f.deadline.is_some() => "an IdP change SCIM has not carried into Segment",
        Some(f) => match f.attribution.as_ref().map(|a| a.kind) {
            Some(AttributionKind::Human) => "a membership made by hand in the Segment app",
            Some(AttributionKind::Scim) => "added by the SCIM sync",
            Some(AttributionKind::SelfActor) => "added by scimwatch's own token",
            Some(AttributionKind::Automation) => "added by automation",
            Some(AttributionKind::Token) => "added with an API token",
            None => "who added them is unknown",
        },
        None => "who added them is unknown",
    }
}

pub(crate) fn days_left(d: Duration) -> i64 {
    // Whole days, rounding towards minus infinity: -1 on the first day after expiry.
    d.num_seconds().div_euclid(86_400)
}

fn ser_time<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(t))
}

/// The explanation as pretty JSON (`--output json`).
pub fn json(e: &Explanation) -> String {
    // Serialising plain data with string keys cannot fail; fall back to compact if it did.
    serde_json::to_string_pretty(e)
        .unwrap_or_else(|err| format!("{{\"error\": {:?}}}", err.to_string()))
}

/// The explanation for people.
pub fn text(e: &Explanation) -> String {
    let mut s = String::new();
    let idp = e.idp.kind.display();
    let _ = writeln!(s, "{} — as of {}", e.email, format_time(&e.generated_at));
    match (&e.idp.status, &e.idp.id) {
        (Some(status), Some(id)) => {
            let _ = writeln!(s, "{idp}: {status} (id {id})");
        }
        _ => {
            let _ = writeln!(s, "{idp}: no such user");
        }
    }
    for w in &e.workspaces {
        let _ = writeln!(s);
        let membership = match (&w.segment_user_id, w.allow_listed) {
            (Some(id), false) => format!("member (Segment user {id})"),
            (Some(id), true) => format!("member (Segment user {id}), allow-listed"),
            (None, true) => "not a member; allow-listed".into(),
            (None, false) => "not a member".into(),
        };
        let _ = writeln!(s, "== {}: {membership}", w.name);
        section(
            &mut s,
            &format!("{idp} groups mapped here"),
            &w.idp_groups,
            |g| {
                if g.status == "ACTIVE" {
                    g.group.clone()
                } else {
                    format!("{} ({})", g.group, g.status)
                }
            },
        );
        section(&mut s, "Mapping rules hit", &w.rules, |r| {
            let mut line = format!("{}  {}", r.at, r.idp_group);
            if let Some(m) = &r.segment_group {
                if *m != r.idp_group {
                    let _ = write!(line, " → Segment group {m}");
                }
            }
            if let Some(j) = &r.justification {
                let _ = write!(line, "; justification: {j}");
            }
            if let Some(t) = &r.ticket {
                let _ = write!(line, "; ticket {t}");
            }
            line
        });
        section(&mut s, "Expected", &w.expected, |g| {
            format!("{}  (from {}, {})", g.text, g.from, g.at)
        });
        section(&mut s, "Held in Segment", &w.held, |h| match &h.group {
            Some(g) => format!("{}  via group {g}: {}", h.text, h.source),
            None => format!("{}  directly: {}", h.text, h.source),
        });
        section(&mut s, "Exceptions", &w.exceptions, |x| {
            let when = if x.days_left >= 0 {
                let unit = if x.days_left == 1 { "day" } else { "days" };
                format!(
                    "expires {} ({} {unit} left)",
                    format_time(&x.expires),
                    x.days_left
                )
            } else {
                format!("expired {}", format_time(&x.expires))
            };
            format!(
                "{} [{}] approved by {}: {}; allows {}; {when}  ({})",
                x.ticket,
                x.status,
                x.approved_by,
                x.reason,
                x.allows.join(", "),
                x.at
            )
        });
        section(&mut s, "Open findings", &w.findings, |f| {
            format!(
                "{} {} {}: {}",
                f.state.as_str(),
                f.severity.as_str(),
                f.kind.as_str(),
                f.message
            )
        });
    }
    let _ = writeln!(s);
    match &e.changes {
        ChangeLog::NoStore { path } => {
            let _ = writeln!(
                s,
                "Change log: no store at {path} (the daemon, `scimwatch run`, keeps it), so no changes to show."
            );
        }
        ChangeLog::Read {
            path,
            total,
            records,
        } => {
            if records.is_empty() {
                let _ = writeln!(
                    s,
                    "Change log ({path}): no changes recorded for {}.",
                    e.email
                );
            } else {
                let _ = writeln!(
                    s,
                    "Change log ({path}): the last {} of {total} changes:",
                    records.len()
                );
                for r in records {
                    let by = match (&r.actor, &r.attribution) {
                        (Some(a), Some(k)) => format!(" by {a} ({k})"),
                        (Some(a), None) => format!(" by {a}"),
                        (None, Some(k)) => format!(" ({k})"),
                        (None, None) => String::new(),
                    };
                    let _ = writeln!(
                        s,
                        "  {} {}: {} → {}{by}",
                        format_time(&r.time),
                        r.workspace,
                        r.before,
                        r.after
                    );
                }
            }
        }
    }
    s
}

fn section<T>(s: &mut String, title: &str, items: &[T], line: impl Fn(&T) -> String) {
    if items.is_empty() {
        let _ = writeln!(s, "{title}: none");
        return;
    }
    let _ = writeln!(s, "{title}:");
    for i in items {
        let _ = writeln!(s, "  - {}", line(i));
    }
}

/// Reads everything (as `check` does, all or nothing), the person in the IdP when the
/// read did not list them, and the change log; then [`build`]s.
pub async fn gather<P: IdentityProvider>(
    email: &Email,
    config: &Config,
    mappings: &MappingSet,
    idp: &P,
    clients: &[SegmentClient],
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Explanation, ExplainError> {
    let selected: Vec<(&WorkspaceConfig, &SegmentClient)> =
        config.workspaces.iter().zip(clients.iter()).collect();
    let reading = read::read_all(idp, &selected, mappings, settings, now).await?;
    let mut snapshots = Vec::new();
    for (_, snap) in reading.workspaces {
        snapshots.push(snap.map_err(PassError::from)?);
    }
    let listed = reading.idp.lookups.contains_key(email)
        || reading.idp.groups.iter().any(|(_, g)| match g {
            crate::model::GroupRead::Found(g) => g.members.iter().any(|m| &m.key == email),
            crate::model::GroupRead::Unresolved { .. } => false,
        });
    let lookup = if listed {
        None
    } else {
        idp.lookup_users(std::slice::from_ref(email))
            .await?
            .remove(email)
    };
    let changes = read_changes(&config.store.path, email).await?;
    let empty = WorkspaceMapping::default();
    let inputs: Vec<WorkspaceInput<'_>> = config
        .workspaces
        .iter()
        .zip(&snapshots)
        .map(|(ws, snapshot)| WorkspaceInput {
            config: ws,
            mapping: mappings.workspaces.get(&ws.name).unwrap_or(&empty),
            snapshot,
        })
        .collect();
    let read = Read {
        idp_kind: idp.kind(),
        idp: &reading.idp,
        lookup: lookup.as_ref(),
        workspaces: &inputs,
    };
    Ok(build(email, &read, settings, changes, now))
}

async fn read_changes(path: &Path, email: &Email) -> Result<ChangeLog, ExplainError> {
    let shown = path.display().to_string();
    if !path.exists() {
        return Ok(ChangeLog::NoStore { path: shown });
    }
    let err = |source| ExplainError::Store {
        path: shown.clone(),
        source,
    };
    let store = Store::open_existing(path).await.map_err(err)?;
    let records = store
        .changes_since(DateTime::<Utc>::UNIX_EPOCH)
        .await
        .map_err(err)?;
    Ok(ChangeLog::from_records(&shown, email, &records))
}
