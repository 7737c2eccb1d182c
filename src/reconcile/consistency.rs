//! `workspace_inconsistent`: the one check that spans workspaces. Pure.
//!
//! For each set in `[policy] consistent` (scimwatch.toml), every person who is a member
//! of two or more of its workspaces should hold the same effective roles in each: role
//! names, with resources by slug or name (ids differ between workspaces; see
//! [`access::portable`]). A role on a resource that one of those workspaces has and
//! another lacks is a difference; it is explained when, in every workspace that holds it,
//! some source of it is explained (a `justification` on the mapping whose group grants it,
//! or an active exception; [`access::explained_by`]). Unexplained differences give one
//! finding per (person, set), `workspace` = the set's first workspace.
//!
//! Membership itself is not compared: a person in only one of the workspaces is not
//! inconsistent (who may enter which workspace is the mappings' business). A set with a
//! workspace that was not evaluated (`check --workspace`) is skipped, never half-checked.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::access::{self, PortableAtom};
use super::finding::{finding_id, Finding, Kind, Severity, State, Subject};
use super::Evaluation;
use crate::mapping::resolve::atoms;
use crate::model::{Email, WorkspaceSnapshot};

/// One evaluated workspace: what Segment holds and how it was judged.
#[derive(Clone, Copy)]
pub struct Evaluated<'a> {
    pub snapshot: &'a WorkspaceSnapshot,
    pub evaluation: &'a Evaluation,
}

/// One person's portable atoms in one workspace, each with whether it is explained.
fn effective(
    user: &Email,
    ws: &Evaluated<'_>,
    now: DateTime<Utc>,
) -> BTreeMap<PortableAtom, Option<String>> {
    let desired = &ws.evaluation.desired;
    let catalog = &ws.snapshot.catalog;
    let mut out: BTreeMap<PortableAtom, Option<String>> = BTreeMap::new();
    for h in access::holdings(user, desired, ws.snapshot, now) {
        for atom in atoms([&h.grant]) {
            let key = access::portable(&atom, &h.grant, catalog);
            let why = access::explained_by(&h, &atom, desired, catalog, user, now);
            let slot = out.entry(key).or_insert(None);
            if slot.is_none() {
                *slot = why;
            }
        }
    }
    out
}

/// `workspace_inconsistent` findings for every set, sorted by (set, user).
pub fn check(
    sets: &[Vec<String>],
    workspaces: &BTreeMap<&str, Evaluated<'_>>,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for set in sets {
        if set.len() < 2 || set.iter().any(|w| !workspaces.contains_key(w.as_str())) {
            continue;
        }
        let members: BTreeMap<&str, BTreeSet<&Email>> = set
            .iter()
            .map(|w| {
                let ws = &workspaces[w.as_str()];
                (
                    w.as_str(),
                    ws.snapshot.users.iter().map(|u| &u.email).collect(),
                )
            })
            .collect();
        let people: BTreeSet<&Email> = members.values().flatten().copied().collect();
        for user in people {
            let here: Vec<&str> = set
                .iter()
                .map(String::as_str)
                .filter(|w| members[w].contains(user))
                .collect();
            if here.len() < 2 {
                continue;
            }
            let per_ws: Vec<(&str, BTreeMap<PortableAtom, Option<String>>)> = here
                .iter()
                .map(|w| (*w, effective(user, &workspaces[w], now)))
                .collect();
            let all: BTreeSet<&PortableAtom> = per_ws.iter().flat_map(|(_, m)| m.keys()).collect();
            let mut unexplained: Vec<String> = Vec::new();
            for atom in all {
                let holders: Vec<&str> = per_ws
                    .iter()
                    .filter(|(_, m)| m.contains_key(atom))
                    .map(|(w, _)| *w)
                    .collect();
                if holders.len() == per_ws.len() {
                    continue;
                }
                let explained = per_ws
                    .iter()
                    .filter_map(|(_, m)| m.get(atom))
                    .all(Option::is_some);
                if !explained {
                    let lacking: Vec<&str> = here
                        .iter()
                        .copied()
                        .filter(|w| !holders.contains(w))
                        .collect();
                    unexplained.push(format!(
                        "{} on {} in {} but not in {}",
                        atom.0,
                        atom.1,
                        holders.join(", "),
                        lacking.join(", ")
                    ));
                }
            }
            if unexplained.is_empty() {
                continue;
            }
            out.push(finding(set, user, &here, &unexplained, now));
        }
    }
    out
}

fn finding(
    set: &[String],
    user: &Email,
    here: &[&str],
    differences: &[String],
    now: DateTime<Utc>,
) -> Finding {
    let subject = Subject::Consistency {
        user: user.clone(),
        workspaces: set.to_vec(),
    };
    let workspace = set[0].clone();
    Finding {
        id: finding_id(&workspace, Kind::WorkspaceInconsistent, &subject),
        kind: Kind::WorkspaceInconsistent,
        state: State::Drift,
        severity: Severity::Warning,
        workspace,
        user: Some(user.clone()),
        group: None,
        grant: None,
        since: now,
        deadline: None,
        attribution: None,
        reverted_by_scim: Some(false),
        nested_group: None,
        people_left_out: None,
        plan: None,
        reason: None,
        evidence: None,
        message: format!(
            "{user} holds different roles in {} (policy consistent = [{}]): {}. No mapping justification or exception explains it.",
            here.join(" and "),
            set.iter().map(|w| format!("{w:?}")).collect::<Vec<_>>().join(", "),
            differences.join("; ")
        ),
        remedy: "Give the same roles in each workspace through the IdP groups and mappings, or add a `justification` to the mapping whose group causes the difference (or an [[exception]] with an expiry).".into(),
        extra: None,
        missing: None,
        mapping: None,
    }
}
