//! Mismatch + history + `now` → finding. Pure.
//!
//! Why one file (~600 lines): the state and attribution rules every kind shares; the
//! kinds themselves are in `scim.rs`, `grants.rs` and `governance.rs`.
//!
//! The rules are product.md's "State", "Attribution" and "Will SCIM revert it?":
//! - A kind SCIM carries, explained by an IdP change in the look-back, is `pending` while
//!   `now < since + window` and a stalled push (`drift`, deadline passed) from the deadline
//!   on. `since` is the IdP's own event time.
//! - A SCIM-carried kind that no IdP change explains is a manual override: `drift` at once,
//!   no deadline, attributed from the audit trail, `since` = that audit event or `now`.
//! - Kinds SCIM does not carry are `drift` at once, `since` as for a manual override.
//! - Attribution: first match wins — human (`actorEmail` or `user/…`), self, automation,
//!   scim (actor contains a `scim_actors` entry, case-insensitively), token.

mod governance;
mod grants;
mod scim;

use chrono::{DateTime, Duration, Utc};

use governance::*;
use grants::*;
use scim::*;

use super::diff::{Gone, GroupCtx, Mismatch};
use super::finding::{
    finding_id, Attribution, AttributionKind, Finding, GrantView, Kind, MappingRef, Severity,
    State, Subject,
};
use crate::model::{AuditEvent, Email, Grant, IdpEvent, IdpEventKind, IdpKind};

/// Everything classification needs besides the mismatch itself.
pub struct Context<'a> {
    pub workspace: &'a str,
    pub idp: IdpKind,
    pub window: Duration,
    pub lookback: Duration,
    pub now: DateTime<Utc>,
    pub events: &'a [IdpEvent],
    pub audit: &'a [AuditEvent],
    /// For naming resources in messages.
    pub catalog: &'a crate::model::Catalog,
    pub self_actor: Option<&'a str>,
    pub automation_actors: &'a [String],
    pub scim_actors: &'a [String],
    /// The daemon's memory: when it first saw each open finding (by id). With it, an
    /// audit event is evidence for a finding only if it came no later than the state it
    /// explains was first seen; without it (`check`, which keeps no history), group-level
    /// events are worded as what they are, never as "added by".
    pub first_seen: Option<&'a super::FirstSeen>,
}

/// Audit timestamps and our clock may disagree by this much.
const CLOCK_SLACK: Duration = Duration::seconds(60);

pub fn classify(m: &Mismatch, cx: &Context<'_>) -> Finding {
    match m {
        Mismatch::UserNotProvisioned {
            user,
            idp_user_id,
            groups,
        } => user_not_provisioned(cx, user, idp_user_id, groups),
        Mismatch::MembershipMissing {
            group,
            user,
            idp_user_id,
        } => membership_missing(cx, group, user, idp_user_id),
        Mismatch::MembershipUnexpected {
            group,
            user,
            idp_user_id,
            inactive,
        } => membership_unexpected(cx, group, user, idp_user_id.as_deref(), inactive.is_some()),
        Mismatch::DeactivatedUserPresent {
            user,
            idp_user_id,
            segment_user_id,
            gone,
        } => deactivated(cx, user, idp_user_id.as_deref(), segment_user_id, gone),
        Mismatch::GroupNotProvisioned { group } => group_not_provisioned(cx, group),
        Mismatch::GroupPermissionsDrift {
            group,
            extra,
            missing,
        } => permissions_drift(cx, group, extra, missing),
        Mismatch::DirectGrant {
            user,
            segment_user_id,
            grant,
        } => direct_grant(cx, user, segment_user_id, grant),
        Mismatch::UnmanagedUser {
            user,
            segment_user_id,
            not_in_idp,
        } => unmanaged(cx, user, segment_user_id, *not_in_idp),
        Mismatch::UnmappedGroup {
            name,
            segment_id,
            extra,
        } => unmapped_group(cx, name, segment_id, extra),
        Mismatch::ExceptionExpired {
            user,
            segment_user_id,
            exception,
            grants,
            groups,
            owner,
        } => exception_expired(
            cx,
            user,
            segment_user_id.as_deref(),
            exception,
            grants,
            groups,
            *owner,
        ),
        Mismatch::ExceptionExpiring {
            user,
            exception,
            notice_from,
            grants,
            groups,
        } => exception_expiring(cx, user, exception, *notice_from, grants, groups),
        Mismatch::PersonalAccount {
            user,
            segment_user_id,
            domains,
        } => personal_account(cx, user, segment_user_id, domains),
        Mismatch::TooManyOwners { owners, max } => too_many_owners(cx, owners, *max),
        Mismatch::NestedGroupNotProvisioned {
            group,
            nested_id: _,
            nested_name,
            people_left_out,
        } => nested_group_not_provisioned(cx, group, nested_name, *people_left_out),
        Mismatch::MappingUnresolved(u) => {
            let subject = Subject::Mapping {
                file: u.origin.file.clone(),
                name: u.name.clone(),
            };
            let mut f = base(
                cx,
                Kind::MappingUnresolved,
                &subject,
                Severity::Error,
                None,
                None,
            );
            f.reverted_by_scim = None;
            f.mapping = Some(MappingRef {
                file: u.origin.file.clone(),
                line: u.origin.line,
                name: u.name.clone(),
                suppressed: Vec::new(),
            });
            f.message = format!(
                "{} names the {} {:?}, which does not resolve: {}. Nothing is checked for what depends on it.",
                u.origin, u.what, u.name, u.reason
            );
            f.remedy = format!(
                "Fix the name at {} (or create the {} it names), then run `scimwatch validate`.",
                u.origin, u.what
            );
            f
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shared pieces

fn base(
    cx: &Context<'_>,
    kind: Kind,
    subject: &Subject,
    severity: Severity,
    since: Option<DateTime<Utc>>,
    deadline: Option<DateTime<Utc>>,
) -> Finding {
    Finding {
        id: finding_id(cx.workspace, kind, subject),
        kind,
        state: State::Drift,
        severity,
        workspace: cx.workspace.to_string(),
        user: None,
        group: None,
        grant: None,
        since: since.unwrap_or(cx.now),
        deadline,
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

/// An IdP change explains it: pending until the deadline, a stalled push from then on.
fn explained(
    cx: &Context<'_>,
    kind: Kind,
    subject: &Subject,
    severity: Severity,
    ev: &IdpEvent,
) -> Finding {
    // Checked: a window too large for the calendar saturates at the end of time
    // (always pending) instead of overflowing.
    let deadline = ev
        .published
        .checked_add_signed(cx.window)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let mut f = base(
        cx,
        kind,
        subject,
        severity,
        Some(ev.published),
        Some(deadline),
    );
    f.state = if cx.now < deadline {
        State::Pending
    } else {
        State::Drift
    };
    // Not a manual change: whether SCIM carries it is what the state says.
    f.reverted_by_scim = None;
    f
}

/// Nothing in the IdP explains it (or SCIM does not carry the kind): drift at once.
fn manual(
    cx: &Context<'_>,
    kind: Kind,
    subject: &Subject,
    severity: Severity,
    attr: Option<&Attribution>,
) -> Finding {
    let mut f = base(cx, kind, subject, severity, attr.map(|a| a.at), None);
    f.attribution = attr.cloned();
    f
}

fn explained_message(
    cx: &Context<'_>,
    f: &Finding,
    ev: &IdpEvent,
    fact: &str,
    change: &str,
) -> String {
    let idp = cx.idp.display();
    let by = ev
        .actor
        .as_deref()
        .map(|a| format!(" ({a})"))
        .unwrap_or_default();
    let at = short_time(cx.now, ev.published);
    let deadline = f
        .deadline
        .map(|d| short_time(cx.now, d))
        .unwrap_or_default();
    match (f.state, cx.idp) {
        (State::Pending, IdpKind::Okta) => format!("{fact}: {change} at {at}{by}; SCIM has until {deadline} to carry it."),
        (State::Pending, IdpKind::AzureAd) => format!("{fact}: {change} at {at}{by}; Entra ID's provisioning cycle (about every 40 minutes) has until {deadline} to carry it."),
        (State::Drift, IdpKind::Okta) => format!(
            "{fact}: {change} at {at}{by}, but SCIM has not carried it; the {} propagation window ended at {deadline} (a stalled {} push).",
            human(cx.window),
            idp
        ),
        (State::Drift, IdpKind::AzureAd) => format!(
            "{fact}: {change} at {at}{by}, but SCIM has not carried it; the {} propagation window ended at {deadline} (Entra ID's provisioning cycles did not carry it: check its provisioning logs).",
            human(cx.window),
        ),
    }
}

fn explained_remedy(cx: &Context<'_>, f: &Finding, stalled: &str) -> String {
    match (f.state, cx.idp) {
        (State::Pending, IdpKind::Okta) => "Nothing yet: SCIM is propagating the change; scimwatch checks again after the deadline.".into(),
        (State::Pending, IdpKind::AzureAd) => "Nothing yet: Entra ID carries changes in its next provisioning cycle; scimwatch checks again after the deadline.".into(),
        (State::Drift, _) => stalled.to_string(),
    }
}

/// How to make the IdP send a user or a group again: Okta's Push Now / Group Push, Entra's
/// provisioning logs and Provision on demand (its cycle only resends what changed).
fn resend(cx: &Context<'_>, what: &str) -> String {
    match cx.idp {
        IdpKind::Okta => format!("Check Group Push for {what} in Okta (Push Now)"),
        IdpKind::AzureAd => format!(
            "Check the Segment enterprise app's provisioning logs in Entra ID for {what}, or use Provision on demand"
        ),
    }
}

fn did(ev: &IdpEvent) -> &'static str {
    match ev.kind {
        IdpEventKind::MembershipAdd => "added",
        IdpEventKind::MembershipRemove => "removed",
        IdpEventKind::UserActivate => "activated",
        IdpEventKind::UserReactivate => "reactivated",
        IdpEventKind::UserUnsuspend => "unsuspended",
        IdpEventKind::UserDeactivate => "deactivated",
        IdpEventKind::UserDeleteInitiated => "deleted",
        IdpEventKind::UserSuspend => "suspended",
        _ => "changed",
    }
}

fn in_lookback(cx: &Context<'_>, e: &IdpEvent) -> bool {
    let since = cx
        .now
        .checked_sub_signed(cx.lookback)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    e.published >= since && e.published <= cx.now
}

/// The latest IdP change in the look-back matching `pred`.
fn latest<'e>(cx: &'e Context<'_>, pred: impl Fn(&IdpEvent) -> bool) -> Option<&'e IdpEvent> {
    cx.events
        .iter()
        .filter(|e| in_lookback(cx, e) && pred(e))
        .max_by_key(|e| e.published)
}

fn is_user(e: &IdpEvent, idp_id: &str, key: &Email) -> bool {
    e.user_id.as_deref() == Some(idp_id) || e.user_login.as_ref() == Some(key)
}

fn is_user_opt(e: &IdpEvent, idp_id: Option<&str>, key: &Email) -> bool {
    idp_id.is_some_and(|id| e.user_id.as_deref() == Some(id)) || e.user_login.as_ref() == Some(key)
}

fn is_group(e: &IdpEvent, g: &GroupCtx) -> bool {
    e.group_id.as_deref() == Some(g.idp_id.as_str())
        || e.group_name.as_deref() == Some(g.idp_name.as_str())
}

/// With the daemon's memory, the latest time an audit event may have and still explain
/// the finding of `kind` about `subject`: when the daemon first saw it (now, for one it
/// sees for the first time), plus clock slack. `None` without memory (`check`).
fn seen(cx: &Context<'_>, kind: Kind, subject: &Subject) -> Option<DateTime<Utc>> {
    let first_seen = cx.first_seen?;
    let at = first_seen
        .get(&finding_id(cx.workspace, kind, subject))
        .copied()
        .unwrap_or(cx.now);
    Some(at.checked_add_signed(CLOCK_SLACK).unwrap_or(at))
}

/// The latest audit event matching `pred` (and no later than `seen`, when the daemon
/// knows when it first saw the state), attributed.
fn attribute(
    cx: &Context<'_>,
    seen: Option<DateTime<Utc>>,
    pred: impl Fn(&AuditEvent) -> bool,
) -> Option<Attribution> {
    cx.audit
        .iter()
        .filter(|a| seen.is_none_or(|s| a.at <= s) && pred(a))
        .max_by_key(|a| (a.at, a.id.clone()))
        .map(|a| attribution(cx, a))
}

/// Membership changes: the audit trail names the group, not the member, so the latest
/// matching event on the group (no later than `seen`) is the best evidence; also returns
/// how many there were.
fn group_event(
    cx: &Context<'_>,
    seen: Option<DateTime<Utc>>,
    g: &GroupCtx,
    kinds: &[&str],
) -> Option<(Attribution, usize)> {
    let id = g.segment_id.as_deref()?;
    let matching: Vec<&AuditEvent> = cx
        .audit
        .iter()
        .filter(|a| {
            a.resource_type == "user_group"
                && a.resource_id == id
                && kinds.contains(&a.kind.as_str())
                && seen.is_none_or(|s| a.at <= s)
        })
        .collect();
    let latest = matching.iter().max_by_key(|a| (a.at, a.id.clone()))?;
    let latest = attribution(cx, latest);
    // "The latest of n such changes" counts the changes made the same way as the latest
    // (by people in the app, by SCIM, …): the SCIM push that filled the group is not one
    // of "such" changes when a person added someone by hand.
    let alike = matching
        .iter()
        .filter(|a| attribution(cx, a).kind == latest.kind)
        .count();
    Some((latest, alike))
}

fn user_policy_event(
    cx: &Context<'_>,
    seen: Option<DateTime<Utc>>,
    segment_user_id: &str,
) -> Option<Attribution> {
    attribute(cx, seen, |a| {
        a.resource_type == "user"
            && a.resource_id == segment_user_id
            && ["Policy Created", "User Policy Updated"].contains(&a.kind.as_str())
    })
}

/// Audit events by which a user joined the workspace (SSO, an invite), matched by id or
/// email.
fn joined<'u>(
    user: &'u Email,
    segment_user_id: &'u str,
) -> impl Fn(&AuditEvent) -> bool + Copy + 'u {
    move |a: &AuditEvent| {
        a.resource_type == "user"
            && (a.resource_id == segment_user_id
                || a.resource_name.eq_ignore_ascii_case(user.as_str()))
            && [
                "User Added via SSO",
                "User Invite Accepted",
                "New Segment User Invited to Workspace",
                "Non-Segment User Invited to Workspace",
            ]
            .contains(&a.kind.as_str())
    }
}

/// product.md's attribution rules, first match wins.
pub fn attribution_kind(
    actor: &str,
    actor_email: Option<&str>,
    self_actor: Option<&str>,
    automation: &[String],
    scim: &[String],
) -> AttributionKind {
    if actor_email.is_some_and(|e| !e.is_empty()) || actor.starts_with("user/") {
        AttributionKind::Human
    } else if self_actor == Some(actor) {
        AttributionKind::SelfActor
    } else if automation.iter().any(|a| a == actor) {
        AttributionKind::Automation
    } else if scim
        .iter()
        .any(|s| !s.is_empty() && actor.to_lowercase().contains(&s.to_lowercase()))
    {
        AttributionKind::Scim
    } else {
        AttributionKind::Token
    }
}

fn attribution(cx: &Context<'_>, a: &AuditEvent) -> Attribution {
    Attribution {
        kind: attribution_kind(
            &a.actor,
            a.actor_email.as_deref(),
            cx.self_actor,
            cx.automation_actors,
            cx.scim_actors,
        ),
        actor: a.actor.clone(),
        actor_email: a.actor_email.clone(),
        event: a.kind.clone(),
        at: a.at,
    }
}

fn attribution_sentence(cx: &Context<'_>, attr: Option<&Attribution>, verb: &str) -> String {
    match attr {
        None if cx.first_seen.is_some() => {
            "The audit trail has no matching event from before scimwatch first saw this: who made the change is unknown.".into()
        }
        None => "The audit trail has no matching event.".into(),
        Some(a) => {
            let at = short_time(cx.now, a.at);
            match a.kind {
                AttributionKind::Human => {
                    format!(
                        "{verb} by {} at {at} in the Segment app.",
                        a.actor_email.as_deref().unwrap_or(&a.actor)
                    )
                }
                AttributionKind::SelfActor => format!("{verb} by scimwatch's own token at {at}."),
                AttributionKind::Automation => {
                    format!("{verb} by automation ({}) at {at}.", a.actor)
                }
                AttributionKind::Scim => format!("{verb} by the SCIM sync ({}) at {at}.", a.actor),
                AttributionKind::Token => format!("{verb} with the API token {} at {at}.", a.actor),
            }
        }
    }
}

/// A group-level audit event (it names the group, not the member). Without the daemon's
/// memory (`check`) it is worded as what it is: the latest change to the group, which may
/// or may not be this person's.
fn group_attribution_sentence(
    cx: &Context<'_>,
    attr: Option<&(Attribution, usize)>,
    verb: &str,
) -> String {
    match (attr, cx.first_seen) {
        (None, _) => attribution_sentence(cx, None, verb),
        (Some((a, n)), None) => {
            let who = attribution_sentence(cx, Some(a), "Made");
            let latest = if *n == 1 {
                "The latest change".to_string()
            } else {
                format!("The latest of {n} such changes")
            };
            format!(
                "{latest} to this group ({}) was made{}; the audit trail does not say whether it {} this person.",
                a.event,
                who.trim_start_matches("Made").trim_end_matches('.'),
                verb.to_lowercase()
            )
        }
        (Some((a, 1)), Some(_)) => attribution_sentence(cx, Some(a), verb),
        (Some((a, n)), Some(_)) => {
            let s = attribution_sentence(cx, Some(a), verb);
            format!(
                "{} (the latest of {n} such changes to this group; the audit trail does not name the member).",
                s.trim_end_matches('.')
            )
        }
    }
}

fn revert_sentence(cx: &Context<'_>, reverted: Option<bool>) -> String {
    match (cx.idp, reverted) {
        (IdpKind::Okta, Some(true)) => "Okta will overwrite the group's members in Segment on its next push of that group (the next change to the group in Okta, or Push Now), not before.".into(),
        (IdpKind::AzureAd, Some(false)) => "Entra ID will not revert it: its cycle (about every 40 minutes) only sends what changes on its side.".into(),
        _ => String::new(),
    }
}

/// "22:03Z" today, "2026-11-20 22:03Z" otherwise.
fn short_time(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    if now.date_naive() == t.date_naive() {
        t.format("%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%d %H:%MZ").to_string()
    }
}

/// "10s", "60m", "7d".
pub fn human(d: Duration) -> String {
    let std = d.to_std().unwrap_or_default();
    humantime::format_duration(std).to_string()
}

fn join_names<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| s.as_ref().to_string()).collect();
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} and {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

#[cfg(test)]
mod overflow_tests {
    use super::*;

    /// Issue 14: a window or lookback too large for the calendar used to panic on the
    /// date arithmetic; it now saturates (always pending, everything in the lookback).
    #[test]
    fn huge_window_and_lookback_saturate_instead_of_panicking() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap();
        let catalog = crate::model::Catalog::default();
        let ev = IdpEvent {
            uuid: "u".into(),
            published: now - Duration::minutes(5),
            kind: IdpEventKind::MembershipAdd,
            user_id: None,
            user_login: Some(Email::new("dan@acme.test")),
            group_id: None,
            group_name: Some("Owners".into()),
            actor: None,
        };
        let cx = Context {
            workspace: "production",
            idp: IdpKind::Okta,
            window: Duration::MAX,
            lookback: Duration::MAX,
            now,
            events: std::slice::from_ref(&ev),
            audit: &[],
            catalog: &catalog,
            self_actor: None,
            automation_actors: &[],
            scim_actors: &[],
            first_seen: None,
        };
        assert!(in_lookback(&cx, &ev));
        let f = explained(
            &cx,
            Kind::UserNotProvisioned,
            &Subject::User(Email::new("dan@acme.test")),
            Severity::Warning,
            &ev,
        );
        assert_eq!(f.state, State::Pending);
        assert_eq!(f.deadline, Some(DateTime::<Utc>::MAX_UTC));
    }
}
