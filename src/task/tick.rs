//! The periodic tick (issue 13): a tick is no longer a full pass. It reads what the event
//! sources name (the targeted pass in `targeted.rs` does that), the subjects of open
//! findings and open alerts, and its share of the rolling refresh, planned by the pure
//! planner in `refresh.rs`; this module is the IO around that planner.
//!
//! Contract:
//! - The last-read time of every subject lives in the store (`refresh.state`), so a
//!   restart resumes the window where it was; a full pass marks every subject read.
//! - A tick's reads are planned before it reads anything and marked read only after the
//!   tick recorded its findings: a failed tick leaves the window as it was (its subjects
//!   stay oldest and are read first next time).
//! - The request budget of one tick is [`READ_BUDGET_PER_MINUTE`] per workspace token over
//!   the tick's interval (at least [`MIN_BUDGET`]); what does not fit is carried to the
//!   next tick and said in the log and in `/status`.
//! - An IAM audit event tied to no known subject moves its workspace's users to the front
//!   of the refresh (the planner spends at most one extra share per tick on them).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::refresh::{self, FrontRequest, Known, OpenSubject, Subject, SubjectKind};
use super::Reconciler;
use crate::mapping::MappingSet;
use crate::model::{Email, WorkspaceSnapshot};
use crate::reconcile::history::IdpMembership;
use crate::reconcile::Finding;

/// The store key of the refresh state.
pub(super) const REFRESH: &str = "refresh.state";

/// Requests per minute one tick may spend on subject reads, per workspace token. Segment
/// does not publish its read budget ("above 600/min"); half of that is left to the
/// pollers, the event-named reads and the list reads.
pub const READ_BUDGET_PER_MINUTE: u64 = 300;

/// The smallest per-tick budget, whatever the interval.
pub const MIN_BUDGET: u64 = 50;

/// Okta and Segment list pages (members per request) the cost estimate assumes.
const PAGE: usize = 200;

/// What the daemon keeps between ticks.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct RefreshState {
    #[serde(default)]
    pub last_read: Vec<(Subject, DateTime<Utc>)>,
    #[serde(default)]
    pub carried: Vec<Subject>,
    #[serde(default)]
    pub front: Vec<FrontRequest>,
    #[serde(default)]
    pub last_full: Option<DateTime<Utc>>,
}

/// Subjects to read (or read), by kind, in the shapes the targeted pass reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Subjects {
    /// Workspace → Segment user ids.
    pub users: BTreeMap<String, BTreeSet<String>>,
    /// Workspace → Segment group ids.
    pub groups: BTreeMap<String, BTreeSet<String>>,
    /// The mappings' IdP group references, as written (`GroupRef::text`).
    pub idp_groups: BTreeSet<String>,
    pub idp_users: BTreeSet<Email>,
    /// Workspaces whose catalog is read.
    pub catalogs: BTreeSet<String>,
}

impl Subjects {
    pub fn add(&mut self, s: &Subject) {
        match s.kind {
            SubjectKind::SegmentUserPermissions => {
                self.users
                    .entry(s.workspace.clone())
                    .or_default()
                    .insert(s.id.clone());
            }
            SubjectKind::SegmentGroup => {
                self.groups
                    .entry(s.workspace.clone())
                    .or_default()
                    .insert(s.id.clone());
            }
            SubjectKind::IdpGroupMembers => {
                self.idp_groups.insert(s.id.clone());
            }
            SubjectKind::IdpUser => {
                self.idp_users.insert(Email::new(&s.id));
            }
            SubjectKind::Catalog => {
                self.catalogs.insert(s.workspace.clone());
            }
        }
    }

    /// Every subject, as the planner names them.
    pub fn list(&self) -> Vec<Subject> {
        let mut out = Vec::new();
        for (ws, ids) in &self.users {
            for id in ids {
                out.push(Subject::new(SubjectKind::SegmentUserPermissions, ws, id));
            }
        }
        for (ws, ids) in &self.groups {
            for id in ids {
                out.push(Subject::new(SubjectKind::SegmentGroup, ws, id));
            }
        }
        for r in &self.idp_groups {
            out.push(Subject::new(SubjectKind::IdpGroupMembers, "", r));
        }
        for e in &self.idp_users {
            out.push(Subject::new(SubjectKind::IdpUser, "", e.as_str()));
        }
        for ws in &self.catalogs {
            out.push(Subject::new(SubjectKind::Catalog, ws, ""));
        }
        out
    }

    pub fn len(&self) -> usize {
        self.users.values().map(BTreeSet::len).sum::<usize>()
            + self.groups.values().map(BTreeSet::len).sum::<usize>()
            + self.idp_groups.len()
            + self.idp_users.len()
            + self.catalogs.len()
    }
}

/// Every subject the daemon knows from what it keeps, with what one read costs (pure).
pub(super) fn known_subjects(
    mappings: &MappingSet,
    idp: &IdpMembership,
    workspaces: &[(&str, &WorkspaceSnapshot)],
) -> Vec<(Subject, u32)> {
    let pages = |n: usize| u32::try_from(n.div_ceil(PAGE)).unwrap_or(u32::MAX);
    let mut out: Vec<(Subject, u32)> = Vec::new();
    let mut refs = BTreeSet::new();
    let mut listed: BTreeSet<&Email> = BTreeSet::new();
    for m in mappings.workspaces.values() {
        for g in &m.groups {
            let text = g.idp_group.text().to_string();
            if !refs.insert(text.clone()) {
                continue;
            }
            let members = idp
                .groups
                .iter()
                .find(|(id, (name, _))| {
                    *name == text
                        || (matches!(g.idp_group, crate::model::GroupRef::Id(_)) && **id == text)
                })
                .map(|(_, (_, m))| m.len())
                .unwrap_or(0);
            out.push((
                Subject::new(SubjectKind::IdpGroupMembers, "", &text),
                1 + pages(members),
            ));
        }
    }
    for (_, members) in idp.groups.values() {
        listed.extend(members.keys());
    }
    let mut idp_users: BTreeSet<&Email> = BTreeSet::new();
    for (ws, snap) in workspaces {
        out.push((Subject::new(SubjectKind::Catalog, ws, ""), 3));
        for u in &snap.users {
            out.push((
                Subject::new(SubjectKind::SegmentUserPermissions, ws, &u.id),
                1,
            ));
            if !listed.contains(&u.email) {
                idp_users.insert(&u.email);
            }
        }
        for g in &snap.groups {
            out.push((
                Subject::new(SubjectKind::SegmentGroup, ws, &g.id),
                2 + pages(g.members.len()),
            ));
        }
    }
    for e in idp_users {
        out.push((Subject::new(SubjectKind::IdpUser, "", e.as_str()), 1));
    }
    out
}

/// The subjects whose reads tell whether `f` still holds (pure): its person in Segment
/// (and in the IdP when no mapped group lists them), its Segment group and the mapped IdP
/// group behind it.
pub(super) fn subjects_of(
    f: &Finding,
    mappings: &MappingSet,
    workspaces: &[(&str, &WorkspaceSnapshot)],
    idp_users: &BTreeSet<&str>,
) -> Vec<Subject> {
    let mut out = Vec::new();
    let snap = workspaces
        .iter()
        .find(|(w, _)| *w == f.workspace)
        .map(|(_, s)| *s);
    if let Some(user) = &f.user {
        if let Some(u) = snap.and_then(|s| s.users.iter().find(|u| &u.email == user)) {
            out.push(Subject::new(
                SubjectKind::SegmentUserPermissions,
                &f.workspace,
                &u.id,
            ));
        }
        if idp_users.contains(user.as_str()) {
            out.push(Subject::new(SubjectKind::IdpUser, "", user.as_str()));
        }
    }
    if let Some(group) = &f.group {
        if let Some(g) = snap.and_then(|s| s.groups.iter().find(|g| &g.name == group)) {
            out.push(Subject::new(SubjectKind::SegmentGroup, &f.workspace, &g.id));
        }
        if let Some(m) = mappings.workspaces.get(&f.workspace) {
            for g in &m.groups {
                let mirror = g
                    .segment_group
                    .clone()
                    .unwrap_or_else(|| g.idp_group.text().to_string());
                if &mirror == group {
                    out.push(Subject::new(
                        SubjectKind::IdpGroupMembers,
                        "",
                        g.idp_group.text(),
                    ));
                }
            }
        }
    }
    out
}

/// The budget of one tick: [`READ_BUDGET_PER_MINUTE`] per workspace over the interval.
pub fn tick_budget(interval: Duration, workspaces: usize) -> u64 {
    let per_ms = READ_BUDGET_PER_MINUTE.saturating_mul(workspaces.max(1) as u64);
    let ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    (per_ms.saturating_mul(ms) / 60_000).max(MIN_BUDGET)
}

/// What a recorded pass read, for [`Reconciler::finish_refresh`].
pub(super) enum Done<'a> {
    /// Everything.
    Full,
    /// A tick (with its plan) or an event-woken pass: these subjects, and the workspaces
    /// an unknown IAM event moved to the front.
    Partial {
        plan: Option<&'a refresh::Plan>,
        read: &'a Subjects,
        front: Vec<FrontRequest>,
    },
}

/// One tick's plan and what it was planned from.
pub(super) struct TickPlan {
    pub state: RefreshState,
    pub plan: refresh::Plan,
    pub reads: Subjects,
}

impl Reconciler {
    pub(super) async fn refresh_state(&self) -> anyhow::Result<RefreshState> {
        Ok(self
            .store
            .snapshot_get(REFRESH)
            .await?
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default())
    }

    /// Plans one tick over what the last passes kept.
    pub(super) async fn plan_tick(
        &self,
        now: DateTime<Utc>,
        idp: &IdpMembership,
        workspaces: &[(&str, &WorkspaceSnapshot)],
    ) -> anyhow::Result<TickPlan> {
        let state = self.refresh_state().await?;
        let last: HashMap<&Subject, DateTime<Utc>> =
            state.last_read.iter().map(|(s, at)| (s, *at)).collect();
        let subjects: Vec<Known> = known_subjects(&self.mappings, idp, workspaces)
            .into_iter()
            .map(|(subject, cost)| Known {
                last_read: last.get(&subject).copied(),
                subject,
                cost,
            })
            .collect();
        let idp_users: BTreeSet<&str> = subjects
            .iter()
            .filter(|k| k.subject.kind == SubjectKind::IdpUser)
            .map(|k| k.subject.id.as_str())
            .collect();
        // Open findings, and findings whose alert is still open (they are re-read until
        // the alert resolves).
        let mut findings: Vec<Finding> = self
            .store
            .findings_open()
            .await?
            .into_iter()
            .map(|s| s.finding)
            .collect();
        let (records, _) = self.store.alerts_load().await?;
        let open_ids: BTreeSet<String> = findings.iter().map(|f| f.id.clone()).collect();
        for r in records {
            if let Some(f) = r.alert.finding {
                if !open_ids.contains(&f.id) {
                    findings.push(f);
                }
            }
        }
        let open: Vec<OpenSubject> = findings
            .iter()
            .flat_map(|f| {
                subjects_of(f, &self.mappings, workspaces, &idp_users)
                    .into_iter()
                    .map(|subject| OpenSubject {
                        subject,
                        severity: f.severity,
                    })
            })
            .collect();
        let plan = refresh::plan(&refresh::Input {
            now,
            full_refresh: self.config.sync.full_refresh,
            interval: self.config.sync.interval,
            budget: tick_budget(self.config.sync.interval, self.clients.len()),
            subjects: &subjects,
            carried: &state.carried,
            events: &[],
            open: &open,
            open_findings_per_tick: self.config.sync.open_findings_per_tick,
            front: &state.front,
        });
        if let Some(note) = plan.note() {
            tracing::warn!(note = %note, "The refresh is behind its budget; the rest waits for the next tick.");
        }
        let mut reads = Subjects::default();
        for (s, _) in &plan.reads {
            reads.add(s);
        }
        Ok(TickPlan { state, plan, reads })
    }

    /// After a recorded pass: marks what it read as read at `now` (everything, for a full
    /// pass), keeps only subjects that still exist, carries what the plan could not fit,
    /// adds the new front requests, and publishes the progress.
    pub(super) async fn finish_refresh(
        &self,
        now: DateTime<Utc>,
        mut state: RefreshState,
        done: Done<'_>,
        idp: &IdpMembership,
        workspaces: &[(&str, &WorkspaceSnapshot)],
    ) -> anyhow::Result<()> {
        let known = known_subjects(&self.mappings, idp, workspaces);
        let mut last: BTreeMap<Subject, DateTime<Utc>> = state.last_read.drain(..).collect();
        let plan = match done {
            Done::Full => {
                last.clear();
                for (s, _) in &known {
                    last.insert(s.clone(), now);
                }
                state.carried.clear();
                state.front.clear();
                state.last_full = Some(now);
                None
            }
            Done::Partial { plan, read, front } => {
                for s in read.list() {
                    last.insert(s, now);
                }
                if let Some(plan) = plan {
                    state.carried.clone_from(&plan.carried);
                    state
                        .front
                        .retain(|f| !plan.front_done.contains(&f.workspace));
                }
                for f in front {
                    tracing::info!(workspace = %f.workspace, "An access change in the audit trail names nobody scimwatch knows: this workspace's users move to the front of the refresh.");
                    self.metrics.refresh_front();
                    state.front.push(f);
                }
                plan
            }
        };
        let exists: BTreeSet<&Subject> = known.iter().map(|(s, _)| s).collect();
        state.last_read = last
            .into_iter()
            .filter(|(s, _)| exists.contains(s))
            .collect();
        self.store
            .snapshot_put(REFRESH, &serde_json::to_value(&state)?)
            .await?;
        let subjects: Vec<Known> = {
            let at: HashMap<&Subject, DateTime<Utc>> =
                state.last_read.iter().map(|(s, t)| (s, *t)).collect();
            known
                .iter()
                .map(|(s, cost)| Known {
                    subject: s.clone(),
                    last_read: at.get(s).copied(),
                    cost: *cost,
                })
                .collect()
        };
        self.publish_refresh(now, &state, plan, &subjects);
        Ok(())
    }

    fn publish_refresh(
        &self,
        now: DateTime<Utc>,
        state: &RefreshState,
        plan: Option<&refresh::Plan>,
        subjects: &[Known],
    ) {
        let full_refresh = self.config.sync.full_refresh;
        let p = refresh::progress(now, full_refresh, subjects);
        for k in &p.kinds {
            self.metrics
                .set_refresh_oldest(k.kind.as_str(), k.oldest_read_age, k.never_read);
        }
        let ticks = plan.map_or_else(
            || refresh::ticks_per_window(full_refresh, self.config.sync.interval),
            |p| p.ticks_per_window,
        );
        let doc = serde_json::json!({
            "full_refresh_seconds": full_refresh.as_secs(),
            "ticks_per_window": ticks,
            "share_per_tick": refresh::share(p.subjects, ticks),
            "budget_per_tick": tick_budget(self.config.sync.interval, self.clients.len()),
            "subjects": p.subjects,
            "read_this_window": p.read_this_window,
            "behind_by_seconds": p.behind_by.as_secs(),
            "kinds": p.kinds.iter().map(|k| serde_json::json!({
                "kind": k.kind.as_str(),
                "subjects": k.subjects,
                "never_read": k.never_read,
                "oldest_read_age_seconds": k.oldest_read_age.map(|d| d.as_secs()),
            })).collect::<Vec<_>>(),
            "carried": state.carried.len(),
            "last_tick": plan.map(|p| serde_json::json!({
                "reads": p.reads.len(),
                "requests_planned": p.cost,
                "open_findings_deferred": p.open_deferred,
                "rolling_short": p.rolling_short,
                "progress_before": {
                    "read_this_window": p.progress.read_this_window,
                    "behind_by_seconds": p.progress.behind_by.as_secs(),
                },
            })),
            "front": state.front.iter().map(|f| f.workspace.clone()).collect::<BTreeSet<_>>(),
            "last_full_pass": state.last_full,
            "next_full_pass": "only at start-up, on POST /-/full-pass, or when the event checkpoints are too old",
            "note": plan.and_then(refresh::Plan::note),
        });
        if let Ok(mut r) = self.refresh_status.lock() {
            *r = Some(doc);
        }
        if let Ok(mut r) = self.server.ready.write() {
            r.refresh_behind = Some(p.behind_by);
        }
    }
}
