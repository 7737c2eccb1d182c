//! The Okta Group Push engine (sim.md "The push engine"): what Okta would do over
//! Segment's SCIM API after each IdP change to a pushed group or to a user in one; and,
//! for `[azure]`, Entra's provisioning, which pushes the changes queued since the last
//! cycle every `push.cycle` (or on `POST /_sim/push/cycle`).
//!
//! Contract: changes are applied `delay` after they happen, in the order they happened,
//! through the same `state::Workspace` mutators SCIM uses, with actor `scim/sso-sync`.
//! `paused` queues them (flushed in order on return to `normal`); `failing` drops them
//! for good. Nothing is pushed for a suspended user; a deprovisioned one is removed from
//! the workspace. The engine never touches permissions.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::segment::name_from_okta;
use super::state::{Actor, Okta, OktaUser, State};
use super::App;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Paused,
    Failing,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "normal" => Some(Mode::Normal),
            "paused" => Some(Mode::Paused),
            "failing" => Some(Mode::Failing),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Paused => "paused",
            Mode::Failing => "failing",
        }
    }
}

#[derive(Clone, Debug)]
pub enum Op {
    Add { group: String, email: String },
    Remove { group: String, email: String },
    Deprovision { email: String },
}

#[derive(Clone, Debug)]
pub struct Change {
    pub workspace: String,
    pub op: Op,
}

impl Change {
    pub fn to_json(&self) -> Value {
        match &self.op {
            Op::Add { group, email } => {
                json!({"workspace": self.workspace, "op": "add_member", "group": group, "email": email})
            }
            Op::Remove { group, email } => {
                json!({"workspace": self.workspace, "op": "remove_member", "group": group, "email": email})
            }
            Op::Deprovision { email } => {
                json!({"workspace": self.workspace, "op": "deprovision", "email": email})
            }
        }
    }
}

struct Inner {
    mode: Mode,
    delay: Duration,
    /// Entra-style cycles: how often the `[azure]` queue is pushed, and when it last was.
    cycle: Duration,
    last_cycle: Instant,
    pending: VecDeque<(Instant, Change)>,
    paused: VecDeque<Change>,
}

pub struct Push {
    inner: Mutex<Inner>,
}

/// Statuses Group Push pushes (active accounts).
pub fn pushable(status: &str) -> bool {
    matches!(
        status,
        "ACTIVE" | "PASSWORD_EXPIRED" | "LOCKED_OUT" | "RECOVERY"
    )
}

impl Push {
    pub fn new(delay: Duration, cycle: Duration) -> Push {
        Push {
            inner: Mutex::new(Inner {
                mode: Mode::Normal,
                delay,
                cycle,
                last_cycle: Instant::now(),
                pending: VecDeque::new(),
                paused: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn enqueue(&self, changes: Vec<Change>) {
        let mut inner = self.lock();
        let due = Instant::now() + inner.delay;
        inner.pending.extend(changes.into_iter().map(|c| (due, c)));
    }

    /// Sets the mode (and delay); returns the paused changes to apply now when the mode
    /// returns to normal.
    pub fn set_mode(&self, mode: Mode, delay: Option<Duration>) -> Vec<Change> {
        let mut inner = self.lock();
        if let Some(d) = delay {
            inner.delay = d;
        }
        inner.mode = mode;
        match mode {
            Mode::Normal => inner.paused.drain(..).collect(),
            Mode::Failing => {
                inner.paused.clear();
                vec![]
            }
            Mode::Paused => vec![],
        }
    }

    pub fn snapshot(&self) -> Value {
        let inner = self.lock();
        let now = Instant::now();
        json!({
            "mode": inner.mode.as_str(),
            "delay": humantime::format_duration(inner.delay).to_string(),
            "cycle": humantime::format_duration(inner.cycle).to_string(),
            "queue": inner.pending.iter().map(|(due, c)| {
                let mut v = c.to_json();
                v["due_in_ms"] = json!(due.saturating_duration_since(now).as_millis() as u64);
                v
            }).chain(inner.paused.iter().map(|c| { let mut v = c.to_json(); v["paused"] = json!(true); v })).collect::<Vec<_>>(),
        })
    }

    /// Pops the changes that are due, sorted by what the mode says to do with them.
    fn due(&self) -> Vec<Change> {
        let mut inner = self.lock();
        let now = Instant::now();
        let mut out = Vec::new();
        while inner.pending.front().is_some_and(|(due, _)| *due <= now) {
            let Some((_, c)) = inner.pending.pop_front() else {
                break;
            };
            match inner.mode {
                Mode::Normal => out.push(c),
                Mode::Paused => inner.paused.push_back(c),
                Mode::Failing => {
                    tracing::info!(workspace = %c.workspace, "Push engine failing: change dropped.")
                }
            }
        }
        out
    }
}

/// Applies one change to the Segment state as SCIM would.
pub fn apply(st: &mut State, change: &Change) {
    let State {
        okta,
        workspaces,
        audit_counter,
        ..
    } = st;
    let Some(ws) = workspaces.get_mut(&change.workspace) else {
        return;
    };
    let scim = Actor::scim();
    match &change.op {
        Op::Add { group, email } => {
            let name = name_from_okta(okta, email);
            ws.ensure_user(audit_counter, email, &name, Some(&scim));
            let gid = match ws.group_id_by_name(group) {
                Some(id) => id,
                None => ws.create_group(audit_counter, group, &scim),
            };
            let names = |e: &str| name_from_okta(okta, e);
            ws.add_members(
                audit_counter,
                &gid,
                std::slice::from_ref(email),
                &scim,
                &names,
            );
        }
        Op::Remove { group, email } => {
            if let Some(gid) = ws.group_id_by_name(group) {
                ws.remove_members(audit_counter, &gid, std::slice::from_ref(email), &scim);
            }
        }
        Op::Deprovision { email } => {
            if let Some(uid) = ws.by_email.get(&email.to_lowercase()).cloned() {
                ws.remove_user(audit_counter, &uid, &scim);
            }
        }
    }
}

/// The changes a membership change in Okta causes.
pub fn member_changes(okta: &Okta, group_id: &str, user: &OktaUser, added: bool) -> Vec<Change> {
    let Some(g) = okta.groups.get(group_id) else {
        return vec![];
    };
    if added && !pushable(&user.status) {
        return vec![];
    }
    g.pushed_to
        .iter()
        .map(|ws| Change {
            workspace: ws.clone(),
            op: if added {
                Op::Add {
                    group: g.name.clone(),
                    email: user.login.clone(),
                }
            } else {
                Op::Remove {
                    group: g.name.clone(),
                    email: user.login.clone(),
                }
            },
        })
        .collect()
}

/// The changes a status change in Okta causes.
pub fn status_changes(okta: &Okta, user: &OktaUser, old: &str) -> Vec<Change> {
    let groups: Vec<_> = okta
        .user_groups
        .get(&user.id)
        .into_iter()
        .flatten()
        .filter_map(|g| okta.groups.get(g))
        .filter(|g| !g.pushed_to.is_empty())
        .collect();
    if user.status == "DEPROVISIONED" {
        let mut targets: Vec<&String> = groups.iter().flat_map(|g| g.pushed_to.iter()).collect();
        targets.sort();
        targets.dedup();
        return targets
            .into_iter()
            .map(|ws| Change {
                workspace: ws.clone(),
                op: Op::Deprovision {
                    email: user.login.clone(),
                },
            })
            .collect();
    }
    if pushable(&user.status) && !pushable(old) && old != "SUSPENDED" {
        return groups
            .iter()
            .flat_map(|g| {
                g.pushed_to.iter().map(|ws| Change {
                    workspace: ws.clone(),
                    op: Op::Add {
                        group: g.name.clone(),
                        email: user.login.clone(),
                    },
                })
            })
            .collect();
    }
    vec![]
}

/// `push.initial`: pushes every pushed group once, now.
pub fn initial_push(app: &App) {
    let mut st = app.state();
    let mut changes = Vec::new();
    for g in st.okta.groups.values() {
        for ws in &g.pushed_to {
            let members: Vec<&OktaUser> = g
                .members
                .iter()
                .filter_map(|id| st.okta.users.get(id))
                .collect();
            for u in &members {
                if pushable(&u.status) {
                    changes.push(Change {
                        workspace: ws.clone(),
                        op: Op::Add {
                            group: g.name.clone(),
                            email: u.login.clone(),
                        },
                    });
                }
            }
            if let Some(w) = st.workspaces.get(ws) {
                if let Some(sg) = w.group_id_by_name(&g.name).and_then(|id| w.groups.get(&id)) {
                    let keep: std::collections::HashSet<String> = members
                        .iter()
                        .filter(|u| pushable(&u.status))
                        .map(|u| u.login.to_lowercase())
                        .collect();
                    for uid in &sg.members {
                        if let Some(su) = w.users.get(uid) {
                            if !keep.contains(&su.email.to_lowercase()) {
                                changes.push(Change {
                                    workspace: ws.clone(),
                                    op: Op::Remove {
                                        group: g.name.clone(),
                                        email: su.email.clone(),
                                    },
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    for c in &changes {
        apply(&mut st, c);
    }
}

impl Push {
    /// Whether a cycle is due (and, if so, starts the next period).
    fn cycle_due(&self) -> bool {
        let mut inner = self.lock();
        if inner.last_cycle.elapsed() >= inner.cycle {
            inner.last_cycle = Instant::now();
            return true;
        }
        false
    }
}

/// One Entra-style provisioning cycle: pushes every change queued under `[azure]` since
/// the last cycle, in order, and writes one provisioning-log record per change. `paused`
/// keeps them queued; `failing` drops them and logs each as a failure (Segment's 409);
/// the changes of a workspace whose job is in quarantine stay queued and log nothing.
/// Returns how many were applied.
pub fn run_cycle(app: &App) -> usize {
    let mode = app.push.lock().mode;
    let mut st = app.state();
    let Some(dir) = st.azure.as_mut() else {
        return 0;
    };
    if mode == Mode::Paused || dir.cycle_queue.is_empty() {
        return 0;
    }
    let cycle = dir.sync.next_cycle();
    let (held, due): (Vec<Change>, Vec<Change>) = dir
        .cycle_queue
        .drain(..)
        .partition(|c| dir.sync.quarantined(&c.workspace));
    dir.cycle_queue.extend(held);
    for c in &due {
        let email = match &c.op {
            Op::Add { email, .. } | Op::Remove { email, .. } | Op::Deprovision { email } => email,
        };
        let (id, name) = match dir.user_by_key(email) {
            Some(u) => (u.id.clone(), u.display_name.clone()),
            None => (
                super::graph_state::guid_from(&format!("azure-user:{}", email.to_lowercase())),
                email.clone(),
            ),
        };
        let failure = (mode == Mode::Failing).then_some((
            "SystemForCrossDomainIdentityManagementBadResponse",
            "The SCIM endpoint answered 409 Conflict: {\"detail\":\"User already exists in the workspace with another identity\",\"status\":\"409\"}",
        ));
        dir.sync.log_push(&cycle, c, (&id, &name), failure);
    }
    if mode == Mode::Failing {
        if !due.is_empty() {
            tracing::info!(
                changes = due.len(),
                "Push engine failing: cycle's changes dropped."
            );
        }
        return 0;
    }
    for c in &due {
        apply(&mut st, c);
    }
    due.len()
}

/// The engine's loop: applies due changes (and runs due cycles) until cancelled.
pub async fn run(app: Arc<App>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        super::graph_sync::deliver_due(&app);
        if app.push.cycle_due() {
            let n = run_cycle(&app);
            if n > 0 {
                tracing::debug!(
                    changes = n,
                    "Provisioning cycle pushed Entra changes into Segment."
                );
            }
        }
        let due = app.push.due();
        if due.is_empty() {
            continue;
        }
        let mut st = app.state();
        for c in &due {
            apply(&mut st, c);
        }
        tracing::debug!(changes = due.len(), "Pushed IdP changes into Segment.");
    }
}
