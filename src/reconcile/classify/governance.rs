//! Access governance: exceptions about to expire, account hygiene. Not carried by SCIM;
//! `exception_expiring` is a notice (`pending`, `info`, deadline = `expires`), the others
//! are `drift` at once.

use super::*;
use crate::mapping::resolve::DesiredException;

pub(super) fn exception_expiring(
    cx: &Context<'_>,
    user: &Email,
    exception: &DesiredException,
    notice_from: DateTime<Utc>,
    grants: &[Grant],
    groups: &[String],
) -> Finding {
    let rule = &exception.rule;
    let subject = Subject::Exception {
        user: user.clone(),
        ticket: rule.ticket.clone(),
    };
    let mut f = base(
        cx,
        Kind::ExceptionExpiring,
        &subject,
        Severity::Info,
        Some(notice_from.min(cx.now)),
        Some(rule.expires),
    );
    f.state = State::Pending;
    f.user = Some(user.clone());
    f.grant = grants.first().map(GrantView::from);
    f.reverted_by_scim = Some(false);
    let mut held: Vec<String> = grants
        .iter()
        .map(|g| format!("{} directly", g.describe_with(cx.catalog)))
        .collect();
    held.extend(groups.iter().map(|g| format!("membership of {g}")));
    let covers = if held.is_empty() {
        format!(
            "{user} holds none of the access it allows in {}",
            cx.workspace
        )
    } else {
        format!(
            "it covers {} in {}",
            join_names(held.iter().map(String::as_str)),
            cx.workspace
        )
    };
    f.message = format!(
        "The exception {} for {user} ({}; approved by {}) expires at {} (in {}); {covers}.",
        rule.ticket,
        rule.reason,
        rule.approved_by,
        short_time(cx.now, rule.expires),
        left(rule.expires - cx.now),
    );
    f.remedy = format!(
        "Plan the removal of the access before it expires, or renew the exception ({}) with a new expiry after review.",
        rule.origin
    );
    f
}

/// "2d 3h", "45m": what is left, to the minute.
pub fn left(d: Duration) -> String {
    let minutes = d.num_minutes().max(0);
    if minutes == 0 {
        return "less than a minute".into();
    }
    let (days, hours, mins) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (mins, "m")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    parts.join(" ")
}

pub(super) fn personal_account(
    cx: &Context<'_>,
    user: &Email,
    segment_user_id: &str,
    domains: &[String],
) -> Finding {
    let subject = Subject::User(user.clone());
    let attr = attribute(
        cx,
        seen(cx, Kind::PersonalAccount, &subject),
        joined(user, segment_user_id),
    );
    let mut f = manual(
        cx,
        Kind::PersonalAccount,
        &subject,
        Severity::Warning,
        attr.as_ref(),
    );
    f.user = Some(user.clone());
    f.reverted_by_scim = Some(false);
    f.message = format!(
        "{user} is a member of {} with an address outside the corporate domains ({}). {}",
        cx.workspace,
        join_names(domains.iter().map(String::as_str)),
        attribution_sentence(cx, attr.as_ref(), "Added")
    )
    .trim_end()
    .to_string();
    f.remedy = format!(
        "Give {user} a corporate account (or a dedicated service account) and remove this one, or list it in [policy] allow if it is approved."
    );
    f
}

pub(super) fn too_many_owners(
    cx: &Context<'_>,
    owners: &[(Email, Vec<String>)],
    max: u32,
) -> Finding {
    let subject = Subject::Workspace(cx.workspace.to_string());
    let mut f = manual(cx, Kind::TooManyOwners, &subject, Severity::Warning, None);
    f.reverted_by_scim = Some(false);
    let list: Vec<String> = owners
        .iter()
        .map(|(e, how)| format!("{e} ({})", how.join(", ")))
        .collect();
    f.message = format!(
        "{} has {} Workspace Owners, more than max_owners = {max}: {}.",
        cx.workspace,
        owners.len(),
        list.join(", ")
    );
    f.remedy = "Reduce Workspace Owner to the people who need it (a lower role, or an exception with an expiry), or raise max_owners in a reviewed change.".into();
    f
}
