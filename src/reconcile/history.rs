//! What the daemon remembers between passes, turned into inputs for the pure core. Pure.
//!
//! Why one file (~700 lines): every function here turns one kept snapshot into core
//! input, and they share the same few private helpers and table tests.
//!
//! - [`IdpMembership`] is the IdP side of the last successful pass (who was in which
//!   mapped group, with what status). Comparing it with the next read gives
//!   [`observe_idp_changes`]: IdP changes the daemon saw itself, stamped with the time it
//!   saw them. product.md: `since` is the IdP's own event time when known, "else the time
//!   scimwatch first observed the change in its own IdP snapshots".
//! - [`merge_events`] keeps a real IdP event over an observed one for the same change.
//! - [`apply_first_seen`] gives findings with no better `since` the time the daemon first
//!   saw them.
//! - [`access_changes`] compares two Segment snapshots of one workspace and yields the
//!   change-log records: every change of a user's memberships or direct grants, attributed
//!   from the audit trail and linked to the IdP event that explains it, with the
//!   propagation latency.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::classify::attribution_kind;
use super::Finding;
use crate::model::{
    AuditEvent, Email, GroupRead, GroupRef, IdpEvent, IdpEventKind, IdpStatus, WorkspaceSnapshot,
};
use crate::store::ChangeRecord;

/// One member as the last pass saw them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenMember {
    pub id: String,
    pub status: IdpStatus,
}

/// The mapped groups' members as the last successful pass read them: group id → (name,
/// key → member).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpMembership {
    pub groups: BTreeMap<String, (String, BTreeMap<Email, SeenMember>)>,
}

impl IdpMembership {
    pub fn from_read(groups: &[(GroupRef, GroupRead)]) -> IdpMembership {
        let mut out = IdpMembership::default();
        for (_, g) in groups {
            if let GroupRead::Found(g) = g {
                let members = g
                    .members
                    .iter()
                    .map(|m| {
                        (
                            m.key.clone(),
                            SeenMember {
                                id: m.id.clone(),
                                status: m.status.clone(),
                            },
                        )
                    })
                    .collect();
                out.groups.insert(g.id.clone(), (g.name.clone(), members));
            }
        }
        out
    }
}

/// IdP changes between two reads of the same groups, stamped `now`. A group absent from
/// `prev` (newly mapped) yields nothing: its members were not *changed*, only first read.
pub fn observe_idp_changes(
    prev: &IdpMembership,
    next: &IdpMembership,
    now: DateTime<Utc>,
) -> Vec<IdpEvent> {
    let mut out = Vec::new();
    let event = |kind: IdpEventKind, key: &Email, id: &str, group: Option<(&str, &str)>| IdpEvent {
        uuid: format!(
            "observed:{}:{}:{}:{}",
            kind.okta_name(),
            group.map(|g| g.0).unwrap_or("-"),
            key,
            now.timestamp_millis()
        ),
        published: now,
        kind,
        user_id: Some(id.to_string()),
        user_login: Some(key.clone()),
        group_id: group.map(|g| g.0.to_string()),
        group_name: group.map(|g| g.1.to_string()),
        actor: Some("observed by scimwatch".into()),
    };
    let mut status_seen: BTreeSet<Email> = BTreeSet::new();
    for (gid, (name, members)) in &next.groups {
        let Some((_, before)) = prev.groups.get(gid) else {
            continue;
        };
        for (key, m) in members {
            match before.get(key) {
                None => out.push(event(
                    IdpEventKind::MembershipAdd,
                    key,
                    &m.id,
                    Some((gid, name)),
                )),
                Some(old) if old.status != m.status && status_seen.insert(key.clone()) => {
                    if let Some(kind) = status_change(&old.status, &m.status) {
                        out.push(event(kind, key, &m.id, None));
                    }
                }
                Some(_) => {}
            }
        }
        for (key, m) in before {
            if !members.contains_key(key) {
                out.push(event(
                    IdpEventKind::MembershipRemove,
                    key,
                    &m.id,
                    Some((gid, name)),
                ));
            }
        }
    }
    out
}

fn status_change(old: &IdpStatus, new: &IdpStatus) -> Option<IdpEventKind> {
    Some(match (old, new) {
        (IdpStatus::Suspended, IdpStatus::Active) => IdpEventKind::UserUnsuspend,
        (IdpStatus::Deprovisioned, IdpStatus::Active) => IdpEventKind::UserReactivate,
        (_, IdpStatus::Active) => IdpEventKind::UserActivate,
        (_, IdpStatus::Deprovisioned) => IdpEventKind::UserDeactivate,
        (_, IdpStatus::Suspended) => IdpEventKind::UserSuspend,
        _ => return None,
    })
}

/// Real IdP events plus the observed ones that no real event already accounts for (same
/// kind, user and group, published no later than the observation).
pub fn merge_events(real: &[IdpEvent], observed: &[IdpEvent]) -> Vec<IdpEvent> {
    let same = |a: &IdpEvent, b: &IdpEvent| {
        a.kind == b.kind
            && (a.user_id.is_some() && a.user_id == b.user_id
                || a.user_login.is_some() && a.user_login == b.user_login)
            && (a.group_id.is_none() || a.group_id == b.group_id || a.group_name == b.group_name)
    };
    let mut out: Vec<IdpEvent> = real.to_vec();
    for o in observed {
        if !real
            .iter()
            .any(|r| same(o, r) && r.published <= o.published)
        {
            out.push(o.clone());
        }
    }
    out.sort_by_key(|e| e.published);
    out
}

/// Findings whose `since` fell back to "now" (no IdP event, no audit event) get the time
/// the daemon first saw them instead.
pub fn apply_first_seen(
    findings: &mut [Finding],
    first_seen: &HashMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) {
    for f in findings {
        if f.since == now && f.deadline.is_none() && f.attribution.is_none() {
            if let Some(t) = first_seen.get(&f.id) {
                f.since = *t;
            }
        }
    }
}

/// A user's memberships and direct grants, as the change log prints them.
fn access_of(ws: &WorkspaceSnapshot) -> BTreeMap<Email, (BTreeSet<String>, BTreeSet<String>)> {
    let mut out: BTreeMap<Email, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for u in &ws.users {
        let direct = u
            .direct
            .iter()
            .filter(|g| !g.is_neutral())
            .map(|g| g.describe_with(&ws.catalog))
            .collect();
        out.entry(u.email.clone()).or_default().1 = direct;
    }
    for g in &ws.groups {
        for m in &g.members {
            out.entry(m.clone()).or_default().0.insert(g.name.clone());
        }
    }
    out
}

fn render(access: Option<&(BTreeSet<String>, BTreeSet<String>)>) -> String {
    match access {
        None => "not a member".into(),
        Some((groups, direct)) => {
            let g = if groups.is_empty() {
                "none".to_string()
            } else {
                groups.iter().cloned().collect::<Vec<_>>().join(", ")
            };
            let d = if direct.is_empty() {
                "none".to_string()
            } else {
                direct.iter().cloned().collect::<Vec<_>>().join(", ")
            };
            format!("groups: {g}; direct: {d}")
        }
    }
}

/// Who may have made a change, as configured for the workspace.
pub struct Actors<'a> {
    pub self_actor: Option<&'a str>,
    pub automation: &'a [String],
    pub scim: &'a [String],
}

/// The change-log records between two snapshots of one workspace, observed at `now`.
/// `mirror_to_idp` maps mirror group names to their IdP group names, to find the IdP
/// event that explains a membership change.
pub fn access_changes(
    prev: &WorkspaceSnapshot,
    next: &WorkspaceSnapshot,
    prev_at: DateTime<Utc>,
    events: &[IdpEvent],
    mirror_to_idp: &BTreeMap<String, String>,
    actors: &Actors<'_>,
    now: DateTime<Utc>,
) -> Vec<ChangeRecord> {
    let before = access_of(prev);
    let after = access_of(next);
    let users: BTreeSet<&Email> = before.keys().chain(after.keys()).collect();
    let mut out = Vec::new();
    for user in users {
        let (b, a) = (before.get(user), after.get(user));
        if b == a {
            continue;
        }
        let empty = (BTreeSet::new(), BTreeSet::new());
        let (bg, bd) = b.unwrap_or(&empty);
        let (ag, ad) = a.unwrap_or(&empty);
        let added: Vec<&String> = ag.difference(bg).collect();
        let removed: Vec<&String> = bg.difference(ag).collect();
        let user_id = next
            .users
            .iter()
            .chain(&prev.users)
            .find(|u| &u.email == user)
            .map(|u| u.id.as_str());

        // The IdP change that explains it: the latest matching event in the look-back.
        let explains = |e: &IdpEvent| {
            let is_user = e.user_login.as_ref() == Some(user);
            let group_in = |names: &[&String]| {
                names.iter().any(|g| {
                    let idp = mirror_to_idp
                        .get(g.as_str())
                        .map(String::as_str)
                        .unwrap_or(g.as_str());
                    e.group_name.as_deref() == Some(idp)
                })
            };
            is_user
                && match e.kind {
                    IdpEventKind::MembershipAdd => group_in(&added),
                    IdpEventKind::MembershipRemove => group_in(&removed),
                    IdpEventKind::UserDeactivate | IdpEventKind::UserDeleteInitiated => a.is_none(),
                    IdpEventKind::UserActivate
                    | IdpEventKind::UserReactivate
                    | IdpEventKind::UserCreate => b.is_none(),
                    _ => false,
                }
        };
        let idp_event = events
            .iter()
            .filter(|e| e.published <= now && explains(e))
            .max_by_key(|e| e.published);

        // The Segment-side evidence: the latest audit event since the previous snapshot
        // about this user, or about a group whose membership changed for them.
        let group_ids: BTreeSet<&str> = next
            .groups
            .iter()
            .chain(&prev.groups)
            .filter(|g| added.contains(&&g.name) || removed.contains(&&g.name))
            .map(|g| g.id.as_str())
            .collect();
        let audit: Option<&AuditEvent> = next
            .audit
            .iter()
            .filter(|e| e.at > prev_at && e.at <= now)
            .filter(|e| {
                (e.resource_type == "user"
                    && (Some(e.resource_id.as_str()) == user_id
                        || e.resource_name.eq_ignore_ascii_case(user.as_str())))
                    || (e.resource_type == "user_group"
                        && group_ids.contains(e.resource_id.as_str()))
            })
            .max_by_key(|e| (e.at, e.id.clone()));
        let _ = (bd, ad);
        out.push(ChangeRecord {
            id: 0,
            at: now,
            workspace: next.name.clone(),
            user: user.to_string(),
            before: render(b),
            after: render(a),
            actor: audit.map(|e| e.actor_email.clone().unwrap_or_else(|| e.actor.clone())),
            attribution: audit.map(|e| {
                attribution_kind(
                    &e.actor,
                    e.actor_email.as_deref(),
                    actors.self_actor,
                    actors.automation,
                    actors.scim,
                )
                .as_str()
                .to_string()
            }),
            idp_event: idp_event.map(|e| {
                format!(
                    "{} {} at {}",
                    e.kind.okta_name(),
                    e.uuid,
                    e.published
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            }),
            latency_ms: idp_event.map(|e| (now - e.published).num_milliseconds().max(0)),
            // Filled from the mappings by `annotate`.
            ticket: None,
            justification: None,
        });
    }
    out
}

/// Fills `ticket` and `justification` of change-log records from the mappings in force:
/// a mapped group whose membership the change added or removed gives its `ticket` and
/// `justification`; an exception of the person, active at the change, that allows a
/// changed membership or (when the direct grants changed) grants, gives its `ticket` and
/// `reason`. Several are joined with `; `. Pure.
pub fn annotate(records: &mut [ChangeRecord], mappings: &crate::mapping::MappingSet) {
    for r in records.iter_mut() {
        // Records that already say why (scimwatch's own writes name their rule) keep it.
        if r.ticket.is_some() || r.justification.is_some() {
            continue;
        }
        let Some(m) = mappings.workspaces.get(&r.workspace) else {
            continue;
        };
        let (bg, bd) = split_rendered(&r.before);
        let (ag, ad) = split_rendered(&r.after);
        let changed = |mirror: &str| listed(bg, mirror) != listed(ag, mirror);
        let mut tickets: Vec<String> = Vec::new();
        let mut why: Vec<String> = Vec::new();
        let mut push = |t: Option<&String>, j: Option<&String>| {
            if let Some(t) = t {
                if !tickets.contains(t) {
                    tickets.push(t.clone());
                }
            }
            if let Some(j) = j {
                if !why.contains(j) {
                    why.push(j.clone());
                }
            }
        };
        let mirror_of = |g: &crate::mapping::GroupRule| -> Option<String> {
            g.segment_group.clone().or_else(|| match &g.idp_group {
                GroupRef::Name(n) => Some(n.clone()),
                GroupRef::Id(_) => None,
            })
        };
        for g in &m.groups {
            if mirror_of(g).is_some_and(|mirror| changed(&mirror)) {
                push(g.ticket.as_ref(), g.justification.as_ref());
            }
        }
        let user = Email::new(&r.user);
        for e in m
            .exceptions
            .iter()
            .filter(|e| e.user == user && e.is_active(r.at))
        {
            let groups_changed = e.groups.iter().any(|idp| {
                let mirror = m
                    .groups
                    .iter()
                    .find(|g| g.idp_group.text() == idp)
                    .and_then(mirror_of)
                    .unwrap_or_else(|| idp.clone());
                changed(&mirror)
            });
            if groups_changed || (!e.grants.is_empty() && bd != ad) {
                push(Some(&e.ticket), Some(&e.reason));
            }
        }
        r.ticket = (!tickets.is_empty()).then(|| tickets.join("; "));
        r.justification = (!why.is_empty()).then(|| why.join("; "));
    }
}

/// The group list and the direct grants of a [`render`]ed access: ("A, B", "none").
fn split_rendered(text: &str) -> (&str, &str) {
    let Some(rest) = text.strip_prefix("groups: ") else {
        return ("", "");
    };
    rest.rsplit_once("; direct: ").unwrap_or((rest, ""))
}

/// Whether `name` is an element of a `, `-joined list. A group name that itself holds
/// ", " is matched as a whole, but also matches its parts (the rendered text cannot tell
/// them apart); ticket annotation tolerates that rare ambiguity.
fn listed(list: &str, name: &str) -> bool {
    list == name
        || list.starts_with(&format!("{name}, "))
        || list.ends_with(&format!(", {name}"))
        || list.contains(&format!(", {name}, "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IdpGroup, IdpUser, SegmentGroup, SegmentUser};
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 22, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    fn read(members: &[(&str, &str)]) -> Vec<(GroupRef, GroupRead)> {
        vec![(
            GroupRef::Name("Owners".into()),
            GroupRead::Found(IdpGroup {
                id: "00g1".into(),
                name: "Owners".into(),
                members: members
                    .iter()
                    .map(|(l, s)| IdpUser {
                        id: format!("00u-{l}"),
                        login: l.to_string(),
                        key: Email::new(l),
                        status: IdpStatus::from_okta(s),
                    })
                    .collect(),
            }),
        )]
    }

    #[test]
    fn observed_changes_between_reads() {
        let prev = IdpMembership::from_read(&read(&[("a@x", "ACTIVE"), ("b@x", "ACTIVE")]));
        let next = IdpMembership::from_read(&read(&[("a@x", "DEPROVISIONED"), ("c@x", "ACTIVE")]));
        let ev = observe_idp_changes(&prev, &next, t(10));
        let kinds: Vec<(IdpEventKind, String)> = ev
            .iter()
            .map(|e| (e.kind.clone(), e.user_login.as_ref().unwrap().to_string()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (IdpEventKind::UserDeactivate, "a@x".to_string()),
                (IdpEventKind::MembershipAdd, "c@x".to_string()),
                (IdpEventKind::MembershipRemove, "b@x".to_string()),
            ]
        );
        assert!(ev.iter().all(|e| e.published == t(10)));
        // A newly mapped group: nothing observed.
        assert!(observe_idp_changes(&IdpMembership::default(), &next, t(10)).is_empty());
    }

    #[test]
    fn a_real_event_wins_over_the_observation() {
        let prev = IdpMembership::from_read(&read(&[]));
        let next = IdpMembership::from_read(&read(&[("c@x", "ACTIVE")]));
        let observed = observe_idp_changes(&prev, &next, t(10));
        let real = IdpEvent {
            uuid: "real".into(),
            published: t(2),
            ..observed[0].clone()
        };
        let merged = merge_events(std::slice::from_ref(&real), &observed);
        assert_eq!(merged, vec![real.clone()]);
        // No real event yet (the System Log lags): the observation stands.
        assert_eq!(merge_events(&[], &observed), observed);
    }

    fn ws(groups: Vec<(&str, &str, Vec<&str>)>, users: &[&str]) -> WorkspaceSnapshot {
        WorkspaceSnapshot {
            name: "production".into(),
            id: "ws".into(),
            slug: "ws".into(),
            catalog: Default::default(),
            users: users
                .iter()
                .map(|e| SegmentUser {
                    id: format!("seg-{e}"),
                    email: Email::new(e),
                    name: String::new(),
                    direct: vec![],
                })
                .collect(),
            groups: groups
                .into_iter()
                .map(|(id, name, m)| SegmentGroup {
                    id: id.into(),
                    name: name.into(),
                    grants: vec![],
                    members: m.into_iter().map(Email::new).collect(),
                })
                .collect(),
            audit: vec![],
        }
    }

    #[test]
    fn access_changes_link_the_idp_event_and_the_latency() {
        let prev = ws(vec![("g1", "Owners", vec!["a@x"])], &["a@x", "b@x"]);
        let mut next = ws(vec![("g1", "Owners", vec!["a@x", "b@x"])], &["a@x", "b@x"]);
        next.audit.push(AuditEvent {
            id: "events/1".into(),
            at: t(7),
            kind: "User Added To User Group".into(),
            actor: "scim/sso-sync".into(),
            actor_email: None,
            resource_id: "g1".into(),
            resource_type: "user_group".into(),
            resource_name: "Owners".into(),
        });
        let add = IdpEvent {
            uuid: "u1".into(),
            published: t(2),
            kind: IdpEventKind::MembershipAdd,
            user_id: Some("00u-b".into()),
            user_login: Some(Email::new("b@x")),
            group_id: Some("00g1".into()),
            group_name: Some("Owners".into()),
            actor: None,
        };
        let scim = vec!["scim".to_string()];
        let actors = Actors {
            self_actor: None,
            automation: &[],
            scim: &scim,
        };
        let rec = access_changes(&prev, &next, t(0), &[add], &BTreeMap::new(), &actors, t(12));
        assert_eq!(rec.len(), 1);
        let r = &rec[0];
        assert_eq!(r.user, "b@x");
        assert_eq!(r.before, "groups: none; direct: none");
        assert_eq!(r.after, "groups: Owners; direct: none");
        assert_eq!(r.attribution.as_deref(), Some("scim"));
        assert_eq!(r.latency_ms, Some(10_000));
        assert!(r
            .idp_event
            .as_deref()
            .unwrap()
            .starts_with("group.user_membership.add u1"));
        assert!(
            access_changes(&next, &next, t(0), &[], &BTreeMap::new(), &actors, t(12)).is_empty()
        );
    }

    #[test]
    fn first_seen_replaces_now_only_when_nothing_better_is_known() {
        let mut f = crate::reconcile::tests_support::finding("x", t(10));
        let mut first = HashMap::new();
        first.insert("x".to_string(), t(1));
        apply_first_seen(std::slice::from_mut(&mut f), &first, t(10));
        assert_eq!(f.since, t(1));
        let mut g = crate::reconcile::tests_support::finding("x", t(10));
        g.deadline = Some(t(20));
        apply_first_seen(std::slice::from_mut(&mut g), &first, t(10));
        assert_eq!(g.since, t(10));
    }
}

#[cfg(test)]
mod annotate_tests {
    use super::*;
    use chrono::TimeZone;

    const MAPPING: &str = r#"workspace = "production"

[[group]]
idp_group = "Segment Prod Owners"
justification = "Platform team owns production"
ticket = "SEC-1"
  [[group.grant]]
  role = "Workspace Owner"

[[group]]
idp_group = "Segment Marketing"
segment_group = "Marketing, EU"
  [[group.grant]]
  role = "Source Read-only"

[[exception]]
user = "jane@acme.test"
grants = [{ role = "Source Admin" }]
expires = "2026-11-20T00:00:00Z"
ticket = "CHG-7"
approved_by = "ciso@acme.test"
reason = "Launch week"
"#;

    fn rec(user: &str, before: &str, after: &str, day: u32) -> ChangeRecord {
        ChangeRecord {
            at: Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).unwrap(),
            workspace: "production".into(),
            user: user.into(),
            before: before.into(),
            after: after.into(),
            ..Default::default()
        }
    }

    #[test]
    fn tickets_and_justifications_come_from_the_mapping_or_exception_behind_a_change() {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let files = vec![("mappings/p.toml".to_string(), MAPPING.to_string())];
        let set = crate::mapping::parse_files(&files, &["production".to_string()], now).unwrap();
        let mut records = vec![
            // Joined the owners' mirror: its ticket and justification.
            rec(
                "ana@acme.test",
                "groups: none; direct: none",
                "groups: Segment Prod Owners; direct: none",
                2,
            ),
            // A mirror whose name holds ", ": matched as a whole list element.
            rec(
                "bo@acme.test",
                "groups: Marketing, EU; direct: none",
                "groups: none; direct: none",
                2,
            ),
            // A direct grant while jane's exception is active: the exception.
            rec(
                "jane@acme.test",
                "groups: none; direct: none",
                "groups: none; direct: Source Admin on the whole workspace",
                2,
            ),
            // The same after it expired: nothing supplies a ticket.
            rec(
                "jane@acme.test",
                "groups: none; direct: none",
                "groups: none; direct: Source Admin on the whole workspace",
                30,
            ),
            // Left the workspace entirely.
            rec(
                "ana@acme.test",
                "groups: Segment Prod Owners, Other; direct: none",
                "not a member",
                3,
            ),
            // Another workspace's record: untouched.
            ChangeRecord {
                workspace: "staging".into(),
                ..rec(
                    "ana@acme.test",
                    "not a member",
                    "groups: Segment Prod Owners; direct: none",
                    2,
                )
            },
        ];
        annotate(&mut records, &set);
        let got: Vec<(Option<&str>, Option<&str>)> = records
            .iter()
            .map(|r| (r.ticket.as_deref(), r.justification.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some("SEC-1"), Some("Platform team owns production")),
                (None, None),
                (Some("CHG-7"), Some("Launch week")),
                (None, None),
                (Some("SEC-1"), Some("Platform team owns production")),
                (None, None),
            ]
        );
        assert!(listed("Marketing, EU", "Marketing, EU"));
        // The rendered list cannot tell "Marketing, EU" from "Marketing" and "EU": a
        // mapping with mirrors named both ways could pick up the other's ticket.
        assert!(listed("Marketing, EU", "Marketing"));
        assert!(listed("A, Marketing, EU, B", "Marketing, EU"));
    }
}
