//! Kinds SCIM carries: explained by an IdP change (pending, then a stalled push), or a
//! manual override.

use super::*;

pub(super) fn user_not_provisioned(
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
            let stalled = match cx.idp {
                IdpKind::Okta => format!("Check the Segment app's provisioning status for {user} in {idp} (Push Now), or wait for the next push."),
                IdpKind::AzureAd => format!("{}.", resend(cx, user.as_str())),
            };
            f.remedy = explained_remedy(cx, &f, &stalled);
            f
        }
        None => {
            let attr = attribute(cx, seen(cx, Kind::UserNotProvisioned, &subject), |a| {
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
                cx.workspace, human(cx.lookback), attribution_sentence(cx, attr.as_ref(), "Removed"), revert_sentence(cx, f.reverted_by_scim),
            ).trim_end().to_string();
            f.remedy = match cx.idp {
                IdpKind::Okta => format!("Push the group again from {idp} (Push Now) to provision {user}, or find out who removed them."),
                IdpKind::AzureAd => format!("Provision {user} on demand from the Segment enterprise app in Entra ID (its cycle does not resend an unchanged user), or find out who removed them."),
            };
            f
        }
    }
}

pub(super) fn membership_missing(
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
            f.remedy = explained_remedy(cx, &f, &format!("{}.", resend(cx, &group.idp_name)));
            f
        }
        None => {
            let attr = group_event(
                cx,
                seen(cx, Kind::MembershipMissing, &subject),
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
                group.idp_name, human(cx.lookback), group_attribution_sentence(cx, attr.as_ref(), "Removed"), revert_sentence(cx, f.reverted_by_scim),
            ).trim_end().to_string();
            f.remedy = match cx.idp {
                IdpKind::Okta => format!(
                    "Add {user} back to {} in Segment, or push {} from {idp}.",
                    group.mirror, group.idp_name
                ),
                IdpKind::AzureAd => format!(
                    "Add {user} back to {} in Segment, or provision {} on demand from Entra ID.",
                    group.mirror, group.idp_name
                ),
            };
            f
        }
    }
}

pub(super) fn membership_unexpected(
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
            f.remedy = explained_remedy(
                cx,
                &f,
                &format!(
                    "{}, or remove {user} from {} in Segment.",
                    resend(cx, &group.idp_name),
                    group.mirror
                ),
            );
            f
        }
        None => {
            let attr = group_event(
                cx,
                seen(cx, Kind::MembershipUnexpected, &subject),
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
                group_attribution_sentence(cx, attr.as_ref(), "Added"),
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

pub(super) fn deactivated(
    cx: &Context<'_>,
    user: &Email,
    idp_user_id: Option<&str>,
    segment_user_id: &str,
    gone: &Gone,
) -> Finding {
    let subject = Subject::User(user.clone());
    let idp = cx.idp.display();
    let attr_pred = joined(user, segment_user_id);
    if *gone == Gone::Suspended {
        // Okta does not deprovision suspended users: waiting fixes nothing.
        let attr = attribute(
            cx,
            seen(cx, Kind::DeactivatedUserPresent, &subject),
            attr_pred,
        );
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
            let attr = attribute(
                cx,
                seen(cx, Kind::DeactivatedUserPresent, &subject),
                attr_pred,
            );
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
                human(cx.lookback), attribution_sentence(cx, attr.as_ref(), "Added"),
            ).trim_end().to_string();
            f.remedy = format!("Remove {user} from {} in Segment.", cx.workspace);
            f
        }
    }
}

pub(super) fn group_not_provisioned(cx: &Context<'_>, group: &GroupCtx) -> Finding {
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
            let stalled = match cx.idp {
                IdpKind::Okta => format!(
                    "Check that {} is pushed to Segment in {idp} (Group Push).",
                    group.idp_name
                ),
                IdpKind::AzureAd => format!(
                    "Check that {} is assigned to the Segment enterprise app in Entra ID and in provisioning scope.",
                    group.idp_name
                ),
            };
            f.remedy = explained_remedy(cx, &f, &stalled);
            f
        }
        None => {
            let attr = attribute(cx, seen(cx, Kind::GroupNotProvisioned, &subject), |a| {
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
                attribution_sentence(cx, attr.as_ref(), "Deleted")
            )
            .trim_end()
            .to_string();
            f.remedy = match cx.idp {
                IdpKind::Okta => format!(
                    "Push {} to Segment from {idp} (Group Push, with the group name {:?}), or set `segment_group` in the mapping to the name it has in Segment.",
                    group.idp_name, group.mirror
                ),
                IdpKind::AzureAd => format!(
                    "Assign {} to the Segment enterprise app in Entra ID (provisioning creates {:?} at its next cycle), or set `segment_group` in the mapping to the name it has in Segment.",
                    group.idp_name, group.mirror
                ),
            };
            f
        }
    }
}

/// Entra ID provisions only the direct members of an assigned group: the people reached
/// through a nested group never arrive, and Entra says nothing about it. Drift at once
/// (waiting fixes nothing), no deadline, never reverted.
pub(super) fn nested_group_not_provisioned(
    cx: &Context<'_>,
    group: &GroupCtx,
    nested: &str,
    people_left_out: u32,
) -> Finding {
    let subject = Subject::NestedGroup {
        group: group.mirror.clone(),
        nested: nested.to_string(),
    };
    let mut f = manual(
        cx,
        Kind::NestedGroupNotProvisioned,
        &subject,
        Severity::Warning,
        None,
    );
    f.group = Some(group.mirror.clone());
    f.nested_group = Some(nested.to_string());
    f.people_left_out = Some(people_left_out);
    f.reverted_by_scim = Some(false);
    let who = match people_left_out {
        0 => "nobody is left out today, but whoever joins it later will never arrive".to_string(),
        1 => "1 person reached only through it is left out".to_string(),
        n => format!("{n} people reached only through it are left out"),
    };
    f.message = format!(
        "The {} group {} contains the nested group {nested:?}; Entra ID provisions only direct members of an assigned group, so {who} of {} in {}.",
        cx.idp.display(),
        group.idp_name,
        group.mirror,
        cx.workspace
    );
    f.remedy = format!(
        "Add the people of {nested:?} to {} directly (or assign {nested:?} to the Segment enterprise app and map it), then let Entra ID's next cycle provision them.",
        group.idp_name
    );
    f
}
