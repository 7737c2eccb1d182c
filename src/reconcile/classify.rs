//! Mismatch + history + `now` → finding. Pure.
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

use chrono::{DateTime, Duration, Utc};

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
}

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
// Kinds carried by SCIM

fn user_not_provisioned(
    cx: &Context<'_>,
    user: &Email,
    idp_user_id: &str,
    groups: &[GroupCtx],
) -> Finding {
    let subject = Subject::User(user.clone());
    let explain = latest(cx, |e| {
        matches!(
            e.kind,
            IdpEventKind::UserActivate | IdpEventKind::UserReactivate | IdpEventKind::UserUnsuspend
        ) && is_user(e, idp_user_id, user)
            || e.kind == IdpEventKind::MembershipAdd
                && is_user(e, idp_user_id, user)
                && groups.iter().any(|g| is_group(e, g))
    });
    let names = join_names(groups.iter().map(|g| g.mirror.as_str()));
    let idp = cx.idp.display();
    match explain {
        Some(ev) => {
            let mut f = explained(
                cx,
                Kind::UserNotProvisioned,
                &subject,
                Severity::Warning,
                ev,
            );
            f.user = Some(user.clone());
            f.message = explained_message(
                cx,
                &f,
                ev,
                &format!("{user} is not a member of {}", cx.workspace),
                &format!("{idp} {} them", did(ev)),
            );
            f.remedy = explained_remedy(cx, &f, &format!("Check the Segment app's provisioning status for {user} in {idp} (Push Now), or wait for the next push."));
            f
        }
        None => {
            let attr = attribute(cx, |a| {
                a.resource_type == "user"
                    && a.resource_name.eq_ignore_ascii_case(user.as_str())
                    && a.kind == "User Removed"
            });
            let mut f = manual(
                cx,
                Kind::UserNotProvisioned,
                &subject,
                Severity::Warning,
                attr.as_ref(),
            );
            f.user = Some(user.clone());
            f.reverted_by_scim = Some(cx.idp == IdpKind::Okta);
            f.message = format!(
                "{user} is in {names} in {idp} but not a member of {}; no {idp} change in the last {} explains it. {} {}",
                cx.workspace, human(cx.lookback), attribution_sentence(cx.now, attr.as_ref(), "Removed"), revert_sentence(cx, f.reverted_by_scim),
            ).trim_end().to_string();
            f.remedy = format!("Push the group again from {idp} (Push Now) to provision {user}, or find out who removed them.");
            f
        }
    }
}

fn membership_missing(
    cx: &Context<'_>,
    group: &GroupCtx,
    user: &Email,
    idp_user_id: &str,
) -> Finding {
    let subject = Subject::Membership {
        group: group.mirror.clone(),
        user: user.clone(),
    };
    let explain = latest(cx, |e| {
        e.kind == IdpEventKind::MembershipAdd && is_user(e, idp_user_id, user) && is_group(e, group)
            || matches!(
                e.kind,
                IdpEventKind::UserActivate
                    | IdpEventKind::UserReactivate
                    | IdpEventKind::UserUnsuspend
            ) && is_user(e, idp_user_id, user)
    });
    let idp = cx.idp.display();
    let fact = format!("{user} is not in {} in {}", group.mirror, cx.workspace);
    match explain {
        Some(ev) => {
            let mut f = explained(cx, Kind::MembershipMissing, &subject, Severity::Warning, ev);
            f.user = Some(user.clone());
            f.group = Some(group.mirror.clone());
            f.message = explained_message(cx, &f, ev, &fact, &format!("{idp} {} them", did(ev)));
            f.remedy = explained_remedy(
                cx,
                &f,
                &format!(
                    "Check Group Push for {} in {idp} (Push Now).",
                    group.idp_name
                ),
            );
            f
        }
        None => {
            let attr = group_event(
                cx,
                group,
                &["User Removed From User Group", "Group Memberships Deleted"],
            );
            let mut f = manual(
                cx,
                Kind::MembershipMissing,
                &subject,
                Severity::Warning,
                attr.as_ref().map(|(a, _)| a),
            );
            f.user = Some(user.clone());
            f.group = Some(group.mirror.clone());
            f.reverted_by_scim = Some(cx.idp == IdpKind::Okta);
            f.message = format!(
                "{fact}, although {idp} lists them in {}; no {idp} change in the last {} explains it. {} {}",
                group.idp_name, human(cx.lookback), group_attribution_sentence(cx.now, attr.as_ref(), "Removed"), revert_sentence(cx, f.reverted_by_scim),
            ).trim_end().to_string();
            f.remedy = format!(
                "Add {user} back to {} in Segment, or push {} from {idp}.",
                group.mirror, group.idp_name
            );
            f
        }
    }
}

fn membership_unexpected(
    cx: &Context<'_>,
    group: &GroupCtx,
    user: &Email,
    idp_user_id: Option<&str>,
    inactive: bool,
) -> Finding {
    let subject = Subject::Membership {
        group: group.mirror.clone(),
        user: user.clone(),
    };
    let sev = if group.owner {
        Severity::Critical
    } else {
        Severity::Error
    };
    let explain = latest(cx, |e| {
        e.kind == IdpEventKind::MembershipRemove
            && is_user_opt(e, idp_user_id, user)
            && is_group(e, group)
            || e.kind == IdpEventKind::UserDeactivate && is_user_opt(e, idp_user_id, user)
    });
    let idp = cx.idp.display();
    let grants = if group.owner {
        " (the group grants Workspace Owner)"
    } else {
        ""
    };
    let fact = format!(
        "{user} is still in {} in {}{grants}",
        group.mirror, cx.workspace
    );
    match explain {
        Some(ev) => {
            let mut f = explained(cx, Kind::MembershipUnexpected, &subject, sev, ev);
            f.user = Some(user.clone());
            f.group = Some(group.mirror.clone());
            f.message = explained_message(cx, &f, ev, &fact, &format!("{idp} {} them", did(ev)));
            f.remedy = explained_remedy(cx, &f, &format!("Check Group Push for {} in {idp} (Push Now), or remove {user} from {} in Segment.", group.idp_name, group.mirror));
            f
        }
        None => {
            let attr = group_event(
                cx,
                group,
                &["User Added To User Group", "Subjects Added to Group"],
            );
            let mut f = manual(
                cx,
                Kind::MembershipUnexpected,
                &subject,
                sev,
                attr.as_ref().map(|(a, _)| a),
            );
            f.user = Some(user.clone());
            f.group = Some(group.mirror.clone());
            f.reverted_by_scim = Some(cx.idp == IdpKind::Okta);
            let status = if inactive {
                "lists them only as inactive"
            } else {
                "does not list them"
            };
            f.message = format!(
                "{user} is in {} in {}{grants}, but the {idp} group {} {status}. {} {}",
                group.mirror,
                cx.workspace,
                group.idp_name,
                group_attribution_sentence(cx.now, attr.as_ref(), "Added"),
                revert_sentence(cx, f.reverted_by_scim),
            )
            .trim_end()
            .to_string();
            f.remedy = format!(
                "Remove {user} from {} in Segment, or add them to {} in {idp}; an [[exception]] with `groups` documents an intended one.",
                group.mirror, group.idp_name
            );
            f
        }
    }
}

fn deactivated(
    cx: &Context<'_>,
    user: &Email,
    idp_user_id: Option<&str>,
    segment_user_id: &str,
    gone: &Gone,
) -> Finding {
    let subject = Subject::User(user.clone());
    let idp = cx.idp.display();
    let attr_pred = |a: &AuditEvent| {
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
    };
    if *gone == Gone::Suspended {
        // Okta does not deprovision suspended users: waiting fixes nothing.
        let attr = attribute(cx, attr_pred);
        let mut f = manual(
            cx,
            Kind::DeactivatedUserPresent,
            &subject,
            Severity::Error,
            attr.as_ref(),
        );
        f.user = Some(user.clone());
        f.reverted_by_scim = Some(false);
        let when = latest(cx, |e| {
            e.kind == IdpEventKind::UserSuspend && is_user_opt(e, idp_user_id, user)
        })
        .map(|e| format!(" since {}", short_time(cx.now, e.published)))
        .unwrap_or_default();
        f.message = format!(
            "{user} is SUSPENDED in {idp}{when} but still a member of {}; {idp} does not deprovision suspended users, so SCIM will not remove them.",
            cx.workspace
        );
        f.remedy = format!(
            "Remove {user} from {} in Segment, or deactivate them in {idp} if they have left.",
            cx.workspace
        );
        return f;
    }
    let explain = latest(cx, |e| {
        matches!(
            e.kind,
            IdpEventKind::UserDeactivate | IdpEventKind::UserDeleteInitiated
        ) && is_user_opt(e, idp_user_id, user)
    });
    let what = if *gone == Gone::Deleted {
        "deleted"
    } else {
        "deactivated"
    };
    let fact = format!(
        "{user} is {what} in {idp} but still a member of {}",
        cx.workspace
    );
    match explain {
        Some(ev) => {
            let mut f = explained(
                cx,
                Kind::DeactivatedUserPresent,
                &subject,
                Severity::Critical,
                ev,
            );
            f.user = Some(user.clone());
            f.message = explained_message(cx, &f, ev, &fact, &format!("{idp} {} them", did(ev)));
            f.remedy = explained_remedy(cx, &f, &format!("Remove {user} from {} in Segment now, and check the Segment app's provisioning in {idp}.", cx.workspace));
            f
        }
        None => {
            let attr = attribute(cx, attr_pred);
            let mut f = manual(
                cx,
                Kind::DeactivatedUserPresent,
                &subject,
                Severity::Critical,
                attr.as_ref(),
            );
            f.user = Some(user.clone());
            f.reverted_by_scim = Some(false);
            f.message = format!(
                "{fact}; no {what} event in the last {} explains it (SCIM never removed them, or they were added back by hand). {}",
                human(cx.lookback), attribution_sentence(cx.now, attr.as_ref(), "Added"),
            ).trim_end().to_string();
            f.remedy = format!("Remove {user} from {} in Segment.", cx.workspace);
            f
        }
    }
}

fn group_not_provisioned(cx: &Context<'_>, group: &GroupCtx) -> Finding {
    let subject = Subject::Group(group.mirror.clone());
    let create = cx
        .events
        .iter()
        .filter(|e| e.kind == IdpEventKind::GroupCreate && is_group(e, group))
        .max_by_key(|e| e.published);
    let first_add = cx
        .events
        .iter()
        .filter(|e| e.kind == IdpEventKind::MembershipAdd && is_group(e, group))
        .min_by_key(|e| e.published);
    let explain = create.or(first_add).filter(|e| in_lookback(cx, e));
    let idp = cx.idp.display();
    let fact = format!(
        "{} has no user group {} in {}",
        group.idp_name, group.mirror, cx.workspace
    );
    match explain {
        Some(ev) => {
            let mut f = explained(
                cx,
                Kind::GroupNotProvisioned,
                &subject,
                Severity::Warning,
                ev,
            );
            f.group = Some(group.mirror.clone());
            let change = if ev.kind == IdpEventKind::GroupCreate {
                "created the group"
            } else {
                "added its first member"
            };
            f.message = explained_message(cx, &f, ev, &fact, &format!("{idp} {change}"));
            f.remedy = explained_remedy(
                cx,
                &f,
                &format!(
                    "Check that {} is pushed to Segment in {idp} (Group Push).",
                    group.idp_name
                ),
            );
            f
        }
        None => {
            let attr = attribute(cx, |a| {
                a.resource_type == "user_group"
                    && a.resource_name == group.mirror
                    && a.kind == "User Group Deleted"
            });
            let mut f = manual(
                cx,
                Kind::GroupNotProvisioned,
                &subject,
                Severity::Warning,
                attr.as_ref(),
            );
            f.group = Some(group.mirror.clone());
            f.reverted_by_scim = Some(cx.idp == IdpKind::Okta && attr.is_some());
            f.message = format!(
                "{fact}. {}",
                attribution_sentence(cx.now, attr.as_ref(), "Deleted")
            )
            .trim_end()
            .to_string();
            f.remedy = format!(
                "Push {} to Segment from {idp} (Group Push, with the group name {:?}), or set `segment_group` in the mapping to the name it has in Segment.",
                group.idp_name, group.mirror
            );
            f
        }
    }
}

// ---------------------------------------------------------------------------------------
// Kinds SCIM does not carry

fn permissions_drift(
    cx: &Context<'_>,
    group: &GroupCtx,
    extra: &[Grant],
    missing: &[Grant],
) -> Finding {
    let subject = Subject::Group(group.mirror.clone());
    let sev = if extra.iter().any(Grant::is_owner) {
        Severity::Critical
    } else if !extra.is_empty() {
        Severity::Error
    } else {
        Severity::Warning
    };
    let attr = group.segment_id.as_deref().and_then(|id| {
        attribute(cx, |a| {
            a.resource_type == "user_group"
                && a.resource_id == id
                && [
                    "Policy Created",
                    "User Group Policy Updated",
                    "Policy Deleted",
                ]
                .contains(&a.kind.as_str())
        })
    });
    let mut f = manual(
        cx,
        Kind::GroupPermissionsDrift,
        &subject,
        sev,
        attr.as_ref(),
    );
    f.group = Some(group.mirror.clone());
    f.reverted_by_scim = Some(false);
    f.extra = Some(extra.iter().map(GrantView::from).collect());
    f.missing = Some(missing.iter().map(GrantView::from).collect());
    let mut parts = Vec::new();
    if !extra.is_empty() {
        parts.push(format!(
            "grants {} beyond the mapping",
            join_names(extra.iter().map(|g| g.describe_with(cx.catalog)))
        ));
    }
    if !missing.is_empty() {
        parts.push(format!(
            "lacks {}",
            join_names(missing.iter().map(|g| g.describe_with(cx.catalog)))
        ));
    }
    f.message = format!(
        "{} in {} {}. {} SCIM never carries roles, so nothing will revert it.",
        group.mirror,
        cx.workspace,
        parts.join(" and "),
        attribution_sentence(cx.now, attr.as_ref(), "Changed")
    )
    .replace(".  ", ". ");
    f.remedy = format!("Set {}'s permissions in Segment to what the mapping says, or change the mapping in a reviewed pull request.", group.mirror);
    f
}

fn direct_grant(cx: &Context<'_>, user: &Email, segment_user_id: &str, grant: &Grant) -> Finding {
    let subject = Subject::DirectGrant {
        user: user.clone(),
        role_id: grant.role_id.clone(),
        resources: grant.resources_key(),
    };
    let sev = if grant.is_owner() {
        Severity::Critical
    } else {
        Severity::Error
    };
    let attr = user_policy_event(cx, segment_user_id);
    let mut f = manual(cx, Kind::DirectGrant, &subject, sev, attr.as_ref());
    f.user = Some(user.clone());
    f.grant = Some(GrantView::from(grant));
    f.reverted_by_scim = Some(false);
    f.message = format!(
        "{user} holds {} directly in {}; no exception covers it. {}",
        grant.describe_with(cx.catalog),
        cx.workspace,
        attribution_sentence(cx.now, attr.as_ref(), "Granted")
    )
    .trim_end()
    .to_string();
    f.remedy = "Remove the direct grant in Segment, or add an [[exception]] with ticket, approver and expiry.".into();
    f
}

fn unmanaged(cx: &Context<'_>, user: &Email, segment_user_id: &str, not_in_idp: bool) -> Finding {
    let subject = Subject::User(user.clone());
    let attr = attribute(cx, |a| {
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
    });
    let mut f = manual(
        cx,
        Kind::UnmanagedUser,
        &subject,
        Severity::Warning,
        attr.as_ref(),
    );
    f.user = Some(user.clone());
    f.reverted_by_scim = Some(false);
    let idp = cx.idp.display();
    let why = if not_in_idp {
        format!("{idp} has no such user")
    } else {
        format!("they are in no mapped {idp} group")
    };
    f.message = format!(
        "{user} is a member of {} but no mapping, exception or allow-list accounts for them ({why}). {}",
        cx.workspace, attribution_sentence(cx.now, attr.as_ref(), "Added")
    )
    .trim_end()
    .to_string();
    f.remedy = format!("Remove {user} from {} in Segment, add them to a mapped {idp} group, or list them in [policy] allow.", cx.workspace);
    f
}

fn unmapped_group(cx: &Context<'_>, name: &str, segment_id: &str, extra: &[Grant]) -> Finding {
    let subject = Subject::Group(name.to_string());
    let sev = if extra.iter().any(Grant::is_owner) {
        Severity::Critical
    } else {
        Severity::Error
    };
    let attr = attribute(cx, |a| {
        a.resource_type == "user_group"
            && a.resource_id == segment_id
            && [
                "Policy Created",
                "User Group Policy Updated",
                "User Group Created",
            ]
            .contains(&a.kind.as_str())
    });
    let mut f = manual(cx, Kind::UnmappedGroup, &subject, sev, attr.as_ref());
    f.group = Some(name.to_string());
    f.reverted_by_scim = Some(false);
    f.extra = Some(extra.iter().map(GrantView::from).collect());
    f.message = format!(
        "The Segment group {name} in {} grants {} but no mapping names it: access nobody reviewed. {}",
        cx.workspace,
        join_names(extra.iter().map(|g| g.describe_with(cx.catalog))),
        attribution_sentence(cx.now, attr.as_ref(), "Changed")
    )
    .trim_end()
    .to_string();
    f.remedy = format!("Map the IdP group behind {name} in mappings/, or reduce it to Minimal Workspace Access in Segment.");
    f
}

fn exception_expired(
    cx: &Context<'_>,
    user: &Email,
    segment_user_id: Option<&str>,
    exception: &crate::mapping::resolve::DesiredException,
    grants: &[Grant],
    groups: &[String],
    owner: bool,
) -> Finding {
    let rule = &exception.rule;
    let subject = Subject::Exception {
        user: user.clone(),
        ticket: rule.ticket.clone(),
    };
    let sev = if owner {
        Severity::Critical
    } else {
        Severity::Error
    };
    let attr = segment_user_id.and_then(|id| user_policy_event(cx, id));
    let mut f = manual(cx, Kind::ExceptionExpired, &subject, sev, attr.as_ref());
    f.user = Some(user.clone());
    f.grant = grants.first().map(GrantView::from);
    f.reverted_by_scim = Some(false);
    let mut held: Vec<String> = grants
        .iter()
        .map(|g| format!("{} directly", g.describe_with(cx.catalog)))
        .collect();
    held.extend(groups.iter().map(|g| format!("membership of {g}")));
    f.message = format!(
        "The exception {} for {user} ({}; approved by {}) expired at {}, but {user} still holds {} in {}.",
        rule.ticket,
        rule.reason,
        rule.approved_by,
        short_time(cx.now, rule.expires),
        join_names(held.iter().map(String::as_str)),
        cx.workspace
    );
    f.remedy = format!(
        "Remove the access in Segment, or renew the exception ({}) with a new expiry after review.",
        rule.origin
    );
    f
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
    let deadline = ev.published + cx.window;
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
    match f.state {
        State::Pending => format!("{fact}: {change} at {at}{by}; SCIM has until {deadline} to carry it."),
        State::Drift => format!(
            "{fact}: {change} at {at}{by}, but SCIM has not carried it; the {} propagation window ended at {deadline} (a stalled {} push).",
            human(cx.window),
            idp
        ),
    }
}

fn explained_remedy(_cx: &Context<'_>, f: &Finding, stalled: &str) -> String {
    match f.state {
        State::Pending => "Nothing yet: SCIM is propagating the change; scimwatch checks again after the deadline.".into(),
        State::Drift => stalled.to_string(),
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
    e.published >= cx.now - cx.lookback && e.published <= cx.now
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

/// The latest audit event matching `pred`, attributed.
fn attribute(cx: &Context<'_>, pred: impl Fn(&AuditEvent) -> bool) -> Option<Attribution> {
    cx.audit
        .iter()
        .filter(|a| pred(a))
        .max_by_key(|a| (a.at, a.id.clone()))
        .map(|a| attribution(cx, a))
}

/// Membership changes: the audit trail names the group, not the member, so the latest
/// matching event on the group is the best evidence; also returns how many there were.
fn group_event(cx: &Context<'_>, g: &GroupCtx, kinds: &[&str]) -> Option<(Attribution, usize)> {
    let id = g.segment_id.as_deref()?;
    let matching: Vec<&AuditEvent> = cx
        .audit
        .iter()
        .filter(|a| {
            a.resource_type == "user_group"
                && a.resource_id == id
                && kinds.contains(&a.kind.as_str())
        })
        .collect();
    let latest = matching.iter().max_by_key(|a| (a.at, a.id.clone()))?;
    Some((attribution(cx, latest), matching.len()))
}

fn user_policy_event(cx: &Context<'_>, segment_user_id: &str) -> Option<Attribution> {
    attribute(cx, |a| {
        a.resource_type == "user"
            && a.resource_id == segment_user_id
            && ["Policy Created", "User Policy Updated"].contains(&a.kind.as_str())
    })
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

fn attribution_sentence(now: DateTime<Utc>, attr: Option<&Attribution>, verb: &str) -> String {
    match attr {
        None => "The audit trail has no matching event.".into(),
        Some(a) => {
            let at = short_time(now, a.at);
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

fn group_attribution_sentence(
    now: DateTime<Utc>,
    attr: Option<&(Attribution, usize)>,
    verb: &str,
) -> String {
    match attr {
        None => attribution_sentence(now, None, verb),
        Some((a, 1)) => attribution_sentence(now, Some(a), verb),
        Some((a, n)) => {
            let s = attribution_sentence(now, Some(a), verb);
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
