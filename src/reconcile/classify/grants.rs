//! Kinds SCIM does not carry: drift at once, attributed from the audit trail.

use super::*;

pub(super) fn permissions_drift(
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
    let seen = seen(cx, Kind::GroupPermissionsDrift, &subject);
    let attr = group.segment_id.as_deref().and_then(|id| {
        attribute(cx, seen, |a| {
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
        attribution_sentence(cx, attr.as_ref(), "Changed")
    )
    .replace(".  ", ". ");
    f.remedy = format!("Set {}'s permissions in Segment to what the mapping says, or change the mapping in a reviewed pull request.", group.mirror);
    f
}

pub(super) fn direct_grant(
    cx: &Context<'_>,
    user: &Email,
    segment_user_id: &str,
    grant: &Grant,
) -> Finding {
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
    let attr = user_policy_event(cx, seen(cx, Kind::DirectGrant, &subject), segment_user_id);
    let mut f = manual(cx, Kind::DirectGrant, &subject, sev, attr.as_ref());
    f.user = Some(user.clone());
    f.grant = Some(GrantView::from(grant));
    f.reverted_by_scim = Some(false);
    f.message = format!(
        "{user} holds {} directly in {}; no exception covers it. {}",
        grant.describe_with(cx.catalog),
        cx.workspace,
        attribution_sentence(cx, attr.as_ref(), "Granted")
    )
    .trim_end()
    .to_string();
    f.remedy = "Remove the direct grant in Segment, or add an [[exception]] with ticket, approver and expiry.".into();
    f
}

pub(super) fn unmanaged(
    cx: &Context<'_>,
    user: &Email,
    segment_user_id: &str,
    not_in_idp: bool,
) -> Finding {
    let subject = Subject::User(user.clone());
    let attr = attribute(
        cx,
        seen(cx, Kind::UnmanagedUser, &subject),
        joined(user, segment_user_id),
    );
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
        cx.workspace, attribution_sentence(cx, attr.as_ref(), "Added")
    )
    .trim_end()
    .to_string();
    f.remedy = format!("Remove {user} from {} in Segment, add them to a mapped {idp} group, or list them in [policy] allow.", cx.workspace);
    f
}

pub(super) fn unmapped_group(
    cx: &Context<'_>,
    name: &str,
    segment_id: &str,
    extra: &[Grant],
) -> Finding {
    let subject = Subject::Group(name.to_string());
    let sev = if extra.iter().any(Grant::is_owner) {
        Severity::Critical
    } else {
        Severity::Error
    };
    let attr = attribute(cx, seen(cx, Kind::UnmappedGroup, &subject), |a| {
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
        attribution_sentence(cx, attr.as_ref(), "Changed")
    )
    .trim_end()
    .to_string();
    f.remedy = format!("Map the IdP group behind {name} in mappings/, or reduce it to Minimal Workspace Access in Segment.");
    f
}

pub(super) fn exception_expired(
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
    let attr = segment_user_id
        .and_then(|id| user_policy_event(cx, seen(cx, Kind::ExceptionExpired, &subject), id));
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
