//! The rolling-refresh planner (issue 13): which subjects one tick reads. Pure: data and
//! `now` in, a plan out; no IO, no clock, no state of its own (the caller keeps the last
//! read time of each subject and hands it back).
//!
//! Called once per periodic tick by `tick.rs`, which keeps the last-read times in the
//! store and turns the plan into reads.
//!
//! Contract, in the order a tick spends its request budget:
//! 1. subjects carried over from the previous tick (they did not fit its budget), then
//!    subjects named by events: each read in the activation the event wakes;
//! 2. the subjects of open findings, most severe first and, within a severity, the one read
//!    longest ago first, at most `open_findings_per_tick` of them (the rest take their turn
//!    on later ticks because reading one makes it the most recently read);
//! 3. subjects whose workspace was moved to the front of the queue (an IAM audit event tied
//!    to no subject): up to one extra share per tick, never the whole workspace at once;
//! 4. the rolling share: `ceil(total / ticks_per_window)` subjects, never-read first, then
//!    oldest read first, where `ticks_per_window = floor(full_refresh / interval)` (at
//!    least 1). Reading that many per tick re-reads every subject within `full_refresh`.
//!
//! Guarantees: a subject appears at most once in a plan; a plan never costs more than the
//! budget, except that a tick whose first subject alone exceeds the budget still reads that
//! one (a tick always makes progress); what did not fit is returned and named in
//! [`Plan::note`]. The carried list is bounded ([`MAX_CARRY`]); a subject dropped from it
//! is still re-read by the rolling refresh, so a drop costs latency, never correctness.
//! A last-read time in the future (the clock went backwards) counts as "just read": it
//! neither panics nor jumps the queue.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::reconcile::finding::Severity;

/// The most subjects carried from one tick to the next; beyond it the oldest obligations
/// are kept and the rest left to the rolling refresh.
pub const MAX_CARRY: usize = 100_000;

/// What can be read on its own.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// The members of one mapped IdP group.
    IdpGroupMembers,
    /// One IdP user the pass relies on (status, attributes).
    IdpUser,
    /// One Segment user's direct permissions in one workspace.
    SegmentUserPermissions,
    /// One Segment group's permissions and members.
    SegmentGroup,
    /// One workspace's catalog (roles, resources).
    Catalog,
}

impl SubjectKind {
    pub const ALL: [SubjectKind; 5] = [
        SubjectKind::IdpGroupMembers,
        SubjectKind::IdpUser,
        SubjectKind::SegmentUserPermissions,
        SubjectKind::SegmentGroup,
        SubjectKind::Catalog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::IdpGroupMembers => "idp_group_members",
            SubjectKind::IdpUser => "idp_user",
            SubjectKind::SegmentUserPermissions => "segment_user_permissions",
            SubjectKind::SegmentGroup => "segment_group",
            SubjectKind::Catalog => "catalog",
        }
    }
}

/// One subject: its kind, the workspace it lives in (empty for IdP subjects) and its id.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Subject {
    pub kind: SubjectKind,
    pub workspace: String,
    pub id: String,
}

impl Subject {
    pub fn new(kind: SubjectKind, workspace: &str, id: &str) -> Subject {
        Subject {
            kind,
            workspace: workspace.to_string(),
            id: id.to_string(),
        }
    }
}

/// A subject the daemon knows, with when it was last read and what reading it costs.
#[derive(Clone, Debug)]
pub struct Known {
    pub subject: Subject,
    pub last_read: Option<DateTime<Utc>>,
    /// Requests one read of it takes (pages included); 0 is taken as 1.
    pub cost: u32,
}

/// The subject of an open finding and the finding's severity.
#[derive(Clone, Debug)]
pub struct OpenSubject {
    pub subject: Subject,
    pub severity: Severity,
}

/// "Read this workspace's users first": an IAM audit event tied to no subject, at `since`.
/// A user counts as done once read after `since`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct FrontRequest {
    pub workspace: String,
    pub since: DateTime<Utc>,
}

/// Everything one tick's plan depends on.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    pub now: DateTime<Utc>,
    pub full_refresh: Duration,
    pub interval: Duration,
    /// Requests this tick may spend on subject reads.
    pub budget: u64,
    pub subjects: &'a [Known],
    /// Left over from the previous tick's plan ([`Plan::carried`]).
    pub carried: &'a [Subject],
    pub events: &'a [Subject],
    pub open: &'a [OpenSubject],
    pub open_findings_per_tick: u32,
    pub front: &'a [FrontRequest],
}

/// Why a subject is in the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Why {
    Carried,
    Event,
    OpenFinding,
    Front,
    Rolling,
}

/// What one tick reads, what waits, and the figures `/status` shows.
#[derive(Clone, Debug)]
pub struct Plan {
    /// In reading order.
    pub reads: Vec<(Subject, Why)>,
    /// Requests the reads cost.
    pub cost: u64,
    /// Carried and event subjects that did not fit: hand them back next tick.
    pub carried: Vec<Subject>,
    /// Subjects beyond [`MAX_CARRY`], left to the rolling refresh.
    pub dropped: usize,
    /// Open-finding subjects over the per-tick cap (their turn comes on later ticks).
    pub open_deferred: usize,
    /// Rolling-share subjects that did not fit the budget (first in line next tick).
    pub rolling_short: usize,
    /// Front requests whose workspace's users are all read after them once this plan is
    /// read: the caller may forget them.
    pub front_done: Vec<String>,
    /// The rolling share per tick.
    pub share: usize,
    pub ticks_per_window: u64,
    pub progress: Progress,
}

impl Plan {
    /// One sentence when the budget did not fit everything; `None` when it did.
    pub fn note(&self) -> Option<String> {
        if self.carried.is_empty() && self.rolling_short == 0 && self.dropped == 0 {
            return None;
        }
        let mut s = format!(
            "the request budget did not fit this tick: {} event subject(s) carried to the next tick, {} of the rolling share ({}) left for the next tick",
            self.carried.len(),
            self.rolling_short,
            self.share
        );
        if self.dropped > 0 {
            s.push_str(&format!(
                ", {} subject(s) beyond the carry limit left to the rolling refresh",
                self.dropped
            ));
        }
        Some(s)
    }
}

/// Progress of one kind of subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindProgress {
    pub kind: SubjectKind,
    pub subjects: usize,
    pub never_read: usize,
    /// Age of the oldest read among those read at least once.
    pub oldest_read_age: Option<Duration>,
}

/// The refresh progress, before this tick's reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Every kind, in [`SubjectKind::ALL`] order (kinds with no subject included).
    pub kinds: Vec<KindProgress>,
    pub subjects: usize,
    /// Subjects read within the last `full_refresh`.
    pub read_this_window: usize,
    /// How far the oldest read is past `full_refresh` (zero when keeping up).
    pub behind_by: Duration,
}

fn age(now: DateTime<Utc>, at: DateTime<Utc>) -> Duration {
    // A read in the future (the clock went backwards) is "just read".
    (now - at).to_std().unwrap_or(Duration::ZERO)
}

/// The progress figures for `/status`.
pub fn progress(now: DateTime<Utc>, full_refresh: Duration, subjects: &[Known]) -> Progress {
    let mut kinds: BTreeMap<SubjectKind, KindProgress> = SubjectKind::ALL
        .iter()
        .map(|&kind| {
            (
                kind,
                KindProgress {
                    kind,
                    subjects: 0,
                    never_read: 0,
                    oldest_read_age: None,
                },
            )
        })
        .collect();
    let mut read_this_window = 0;
    let mut oldest = Duration::ZERO;
    for k in subjects {
        let Some(p) = kinds.get_mut(&k.subject.kind) else {
            continue; // infallible in practice: every kind is in ALL
        };
        p.subjects += 1;
        match k.last_read {
            None => p.never_read += 1,
            Some(at) => {
                let a = age(now, at);
                if a <= full_refresh {
                    read_this_window += 1;
                }
                oldest = oldest.max(a);
                p.oldest_read_age = Some(p.oldest_read_age.map_or(a, |o| o.max(a)));
            }
        }
    }
    Progress {
        kinds: kinds.into_values().collect(),
        subjects: subjects.len(),
        read_this_window,
        behind_by: oldest.saturating_sub(full_refresh),
    }
}

/// Ticks in one refresh window: `floor(full_refresh / interval)`, at least 1.
pub fn ticks_per_window(full_refresh: Duration, interval: Duration) -> u64 {
    let i = interval.as_millis().max(1);
    let t = full_refresh.as_millis() / i;
    u64::try_from(t).unwrap_or(u64::MAX).max(1)
}

/// The rolling share: `ceil(total / ticks_per_window)`.
pub fn share(total: usize, ticks: u64) -> usize {
    let t = usize::try_from(ticks).unwrap_or(usize::MAX).max(1);
    total.div_ceil(t)
}

/// The order key of the rolling refresh: never-read first, then oldest read first; a read
/// in the future sorts as `now` (just read). Ties by subject, so the plan is stable.
fn staleness_key(now: DateTime<Utc>, last: Option<DateTime<Utc>>) -> (bool, DateTime<Utc>) {
    match last {
        None => (false, DateTime::<Utc>::MIN_UTC),
        Some(at) => (true, at.min(now)),
    }
}

struct Builder<'a> {
    costs: BTreeMap<&'a Subject, u64>,
    chosen: HashSet<Subject>,
    reads: Vec<(Subject, Why)>,
    cost: u64,
    budget: u64,
}

impl Builder<'_> {
    fn cost_of(&self, s: &Subject) -> u64 {
        self.costs.get(s).copied().unwrap_or(1).max(1)
    }

    /// Adds `s` when it fits. `Ok(true)` added, `Ok(false)` already in the plan,
    /// `Err(())` over budget.
    fn take(&mut self, s: &Subject, why: Why) -> Result<bool, ()> {
        if self.chosen.contains(s) {
            return Ok(false);
        }
        let c = self.cost_of(s);
        // A tick always makes progress: the first read goes in even when it alone is over.
        if !self.reads.is_empty() && self.cost.saturating_add(c) > self.budget {
            return Err(());
        }
        self.chosen.insert(s.clone());
        self.reads.push((s.clone(), why));
        self.cost = self.cost.saturating_add(c);
        Ok(true)
    }
}

/// Plans one tick. See the module notes for the order and the guarantees.
pub fn plan(input: &Input<'_>) -> Plan {
    let now = input.now;
    let ticks = ticks_per_window(input.full_refresh, input.interval);
    let share_n = share(input.subjects.len(), ticks);
    let mut b = Builder {
        costs: input
            .subjects
            .iter()
            .map(|k| (&k.subject, u64::from(k.cost)))
            .collect(),
        chosen: HashSet::new(),
        reads: Vec::new(),
        cost: 0,
        budget: input.budget,
    };
    let last_read: BTreeMap<&Subject, Option<DateTime<Utc>>> = input
        .subjects
        .iter()
        .map(|k| (&k.subject, k.last_read))
        .collect();

    // 1. Carried, then events; what does not fit is carried again (bounded).
    let mut carried = Vec::new();
    let mut seen_carry = HashSet::new();
    let mut over = false;
    let named = input
        .carried
        .iter()
        .map(|s| (s, Why::Carried))
        .chain(input.events.iter().map(|s| (s, Why::Event)));
    for (s, why) in named {
        if !over && b.take(s, why).is_err() {
            over = true;
        }
        if over && !b.chosen.contains(s) && seen_carry.insert(s) {
            carried.push(s.clone());
        }
    }
    let dropped = carried.len().saturating_sub(MAX_CARRY);
    carried.truncate(MAX_CARRY);

    // 2. Open findings: most severe first, then the one read longest ago; capped.
    let mut open: Vec<&OpenSubject> = input.open.iter().collect();
    open.sort_by(|a, b2| {
        b2.severity
            .cmp(&a.severity)
            .then_with(|| {
                let la = last_read.get(&a.subject).copied().flatten();
                let lb = last_read.get(&b2.subject).copied().flatten();
                staleness_key(now, la).cmp(&staleness_key(now, lb))
            })
            .then_with(|| a.subject.cmp(&b2.subject))
    });
    let cap = usize::try_from(input.open_findings_per_tick).unwrap_or(usize::MAX);
    let mut open_taken = 0usize;
    let mut open_distinct = HashSet::new();
    for o in &open {
        if !open_distinct.insert(&o.subject) {
            continue;
        }
        if over || open_taken >= cap {
            continue;
        }
        match b.take(&o.subject, Why::OpenFinding) {
            Ok(_) => open_taken += 1,
            Err(()) => over = true,
        }
    }
    let open_deferred = open_distinct.len().saturating_sub(open_taken);

    // 3 and 4 share one staleness order over the known subjects.
    let mut order: Vec<&Known> = input.subjects.iter().collect();
    order.sort_by(|a, b2| {
        staleness_key(now, a.last_read)
            .cmp(&staleness_key(now, b2.last_read))
            .then_with(|| a.subject.cmp(&b2.subject))
    });

    // 3. Front of queue: Segment users of a workspace not read since the request; up to
    //    one extra share per tick.
    let front_since: BTreeMap<&str, DateTime<Utc>> = {
        let mut m: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
        for f in input.front {
            let e = m.entry(f.workspace.as_str()).or_insert(f.since);
            // Several requests for one workspace: a read after the latest answers them all.
            *e = (*e).max(f.since);
        }
        m
    };
    let is_front = |k: &Known| {
        k.subject.kind == SubjectKind::SegmentUserPermissions
            && front_since
                .get(k.subject.workspace.as_str())
                .is_some_and(|since| k.last_read.is_none_or(|at| at < *since))
    };
    let mut front_taken = 0usize;
    if !front_since.is_empty() {
        for k in order.iter().filter(|k| is_front(k)) {
            if over || front_taken >= share_n {
                break;
            }
            match b.take(&k.subject, Why::Front) {
                Ok(true) => front_taken += 1,
                Ok(false) => {}
                Err(()) => over = true,
            }
        }
    }
    let front_done = front_since
        .keys()
        .filter(|ws| {
            !order.iter().any(|k| {
                is_front(k) && k.subject.workspace == **ws && !b.chosen.contains(&k.subject)
            })
        })
        .map(|ws| ws.to_string())
        .collect();

    // 4. The rolling share, oldest first, skipping what is already in the plan.
    let mut rolling = 0usize;
    for k in &order {
        if rolling >= share_n || over {
            break;
        }
        match b.take(&k.subject, Why::Rolling) {
            Ok(true) => rolling += 1,
            Ok(false) => {}
            Err(()) => over = true,
        }
    }
    // Subjects left in the order that the share still wanted.
    let remaining_unchosen = order
        .iter()
        .filter(|k| !b.chosen.contains(&k.subject))
        .count();
    let rolling_short = (share_n - rolling).min(remaining_unchosen);

    Plan {
        reads: b.reads,
        cost: b.cost,
        carried,
        dropped,
        open_deferred,
        rolling_short,
        front_done,
        share: share_n,
        ticks_per_window: ticks,
        progress: progress(now, input.full_refresh, input.subjects),
    }
}

#[cfg(test)]
mod tests;
