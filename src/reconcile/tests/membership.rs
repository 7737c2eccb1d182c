//! Table tests: people the IdP and Segment disagree about (not provisioned, missing or
//! unexpected memberships, the IdP status table), each from the clean fixture.

use super::*;

// ---- user_not_provisioned / membership_missing ----------------------------------------

#[test]
fn user_not_provisioned_pending_then_stalled_exactly_at_deadline() {
    let mut fx = Fx::new();
    fx.idp_group("Owners")
        .members
        .push(user("dan@acme.test", "ACTIVE"));
    fx.event(
        IdpEventKind::MembershipAdd,
        Some("dan@acme.test"),
        Some("Owners"),
        10,
    );
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.state, f.severity),
        (Kind::UserNotProvisioned, State::Pending, Severity::Warning)
    );
    assert_eq!(f.since, ago(10));
    assert_eq!(f.deadline, Some(ago(10) + Duration::minutes(60)));
    assert_eq!(f.reverted_by_scim, None);
    assert!(f.message.contains("SCIM has until"), "{}", f.message);

    // One second before the deadline: pending. At the deadline: drift.
    fx.now = ago(10) + Duration::minutes(60) - Duration::seconds(1);
    assert_eq!(one(&fx.run()).state, State::Pending);
    fx.now = ago(10) + Duration::minutes(60);
    let f = fx.run();
    let f = one(&f);
    assert_eq!(f.state, State::Drift);
    assert!(f.message.contains("stalled"), "{}", f.message);
    assert_eq!(f.deadline, Some(ago(10) + Duration::minutes(60)));
}

#[test]
fn user_not_provisioned_without_idp_change_is_a_manual_override() {
    let mut fx = Fx::new();
    fx.snap.users.retain(|u| u.email != email("bob@acme.test"));
    fx.seg_group("Engineers")
        .members
        .retain(|m| *m != email("bob@acme.test"));
    fx.audit(
        "User Removed",
        "user/u1",
        Some("eve@acme.test"),
        "user",
        "seg-bob",
        "bob@acme.test",
        30,
    );
    let f = fx.run();
    let f = one(&f);
    assert_eq!((f.kind, f.state), (Kind::UserNotProvisioned, State::Drift));
    assert_eq!(f.deadline, None);
    assert_eq!(f.since, ago(30));
    assert_eq!(f.reverted_by_scim, Some(true));
    assert_eq!(f.attribution.as_ref().unwrap().kind, AttributionKind::Human);
    assert!(f.message.contains("eve@acme.test"), "{}", f.message);
}

#[test]
fn user_not_provisioned_hides_membership_missing() {
    let mut fx = Fx::new();
    fx.idp_group("Owners")
        .members
        .push(user("dan@acme.test", "ACTIVE"));
    fx.idp_group("Engineers")
        .members
        .push(user("dan@acme.test", "ACTIVE"));
    let f = fx.run();
    assert_eq!(f.len(), 1, "{:#?}", kinds(&f));
    assert_eq!(f[0].kind, Kind::UserNotProvisioned);
    assert_eq!(
        f[0].state,
        State::Drift,
        "no IdP event: manual override, drift at once"
    );
    assert_eq!(f[0].since, fx.now, "one-shot: first seen = now");
}

#[test]
fn membership_missing_explained_by_add_event() {
    let mut fx = Fx::new();
    fx.idp_group("Owners")
        .members
        .push(user("bob@acme.test", "ACTIVE"));
    fx.event(
        IdpEventKind::MembershipAdd,
        Some("bob@acme.test"),
        Some("Owners"),
        5,
    );
    let f = fx.run();
    let f = one(&f);
    assert_eq!((f.kind, f.state), (Kind::MembershipMissing, State::Pending));
    assert_eq!(f.group.as_deref(), Some("Owners"));
    assert_eq!(f.user, Some(email("bob@acme.test")));
}

#[test]
fn event_older_than_lookback_does_not_explain() {
    let mut fx = Fx::new();
    fx.idp_group("Owners")
        .members
        .push(user("bob@acme.test", "ACTIVE"));
    fx.event(
        IdpEventKind::MembershipAdd,
        Some("bob@acme.test"),
        Some("Owners"),
        8 * 24 * 60,
    );
    let f = fx.run();
    assert_eq!((one(&f).state, one(&f).deadline), (State::Drift, None));
}

#[test]
fn event_for_another_group_does_not_explain() {
    let mut fx = Fx::new();
    fx.idp_group("Owners")
        .members
        .push(user("bob@acme.test", "ACTIVE"));
    fx.event(
        IdpEventKind::MembershipAdd,
        Some("bob@acme.test"),
        Some("Engineers"),
        5,
    );
    assert_eq!(one(&fx.run()).deadline, None);
}

// ---- membership_unexpected -----------------------------------------------------------

#[test]
fn membership_unexpected_manual_is_critical_on_owner_group_and_reverted_by_okta() {
    let mut fx = Fx::new();
    fx.seg_group("Owners").members.push(email("bob@acme.test"));
    fx.audit(
        "User Added To User Group",
        "user/u9",
        Some("eve@acme.test"),
        "user_group",
        "sgOwners",
        "Owners",
        3,
    );
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.state, f.severity),
        (Kind::MembershipUnexpected, State::Drift, Severity::Critical)
    );
    assert_eq!(f.reverted_by_scim, Some(true));
    assert!(f.message.contains("next push"), "{}", f.message);
    assert_eq!(
        f.attribution.as_ref().unwrap().actor_email.as_deref(),
        Some("eve@acme.test")
    );
    assert_eq!(f.since, ago(3));
}

#[test]
fn membership_attribution_says_when_several_events_matched() {
    let mut fx = Fx::new();
    fx.seg_group("Engineers")
        .members
        .push(email("ana@acme.test"));
    fx.audit(
        "User Added To User Group",
        "scim/sso-sync",
        None,
        "user_group",
        "sgEng",
        "Engineers",
        50,
    );
    fx.audit(
        "User Added To User Group",
        "user/u9",
        Some("eve@acme.test"),
        "user_group",
        "sgEng",
        "Engineers",
        3,
    );
    let f = fx.run();
    let f = one(&f);
    assert_eq!(f.severity, Severity::Error);
    // The SCIM push that filled the group is not "such" a change: one was made by hand.
    assert!(
        f.message.contains("The latest change to this group"),
        "{}",
        f.message
    );
    assert!(!f.message.contains("latest of"), "{}", f.message);
    assert_eq!(f.attribution.as_ref().unwrap().at, ago(3));
    // A second change by a person: now there are two such changes.
    fx.audit(
        "User Added To User Group",
        "user/u7",
        Some("dan@acme.test"),
        "user_group",
        "sgEng",
        "Engineers",
        20,
    );
    let f = fx.run();
    let f = one(&f);
    assert!(
        f.message.contains("The latest of 2 such changes"),
        "{}",
        f.message
    );
    assert_eq!(f.attribution.as_ref().unwrap().at, ago(3));
}

#[test]
fn check_words_a_group_event_as_the_latest_change_never_as_added_by() {
    let mut fx = Fx::new();
    fx.seg_group("Engineers")
        .members
        .push(email("ana@acme.test"));
    fx.audit(
        "User Added To User Group",
        "user/u9",
        Some("eve@acme.test"),
        "user_group",
        "sgEng",
        "Engineers",
        3,
    );
    let f = fx.run();
    let f = one(&f);
    assert!(!f.message.contains("Added by"), "{}", f.message);
    assert!(
        f.message.contains(
            "The latest change to this group (User Added To User Group) was made by eve@acme.test"
        ) && f
            .message
            .contains("the audit trail does not say whether it added this person"),
        "{}",
        f.message
    );
}

#[test]
fn the_daemon_attributes_a_membership_only_to_an_event_before_it_first_saw_it() {
    let mut fx = Fx::new();
    fx.seg_group("Engineers")
        .members
        .push(email("ana@acme.test"));
    // Eve changed the group 3 minutes ago; scimwatch had seen Ana in it for an hour.
    fx.audit(
        "User Added To User Group",
        "user/u9",
        Some("eve@acme.test"),
        "user_group",
        "sgEng",
        "Engineers",
        3,
    );
    let id = one(&fx.run()).id.clone();
    let older: crate::reconcile::FirstSeen = [(id.clone(), ago(60))].into();
    let f = fx.run_remembering(&older);
    let f = one(&f);
    assert_eq!(f.attribution, None, "no false accusation: {}", f.message);
    assert!(
        f.message
            .contains("no matching event from before scimwatch first saw this")
            && f.message.contains("unknown"),
        "{}",
        f.message
    );
    // Seen for the first time now (or at the event): Eve's change is the evidence.
    for seen in [
        crate::reconcile::FirstSeen::new(),
        [(id.clone(), ago(2))].into(),
    ] {
        let f = fx.run_remembering(&seen);
        let f = one(&f);
        assert_eq!(
            f.attribution.as_ref().map(|a| a.actor_email.clone()),
            Some(Some("eve@acme.test".to_string())),
            "{}",
            f.message
        );
        assert!(
            f.message.contains("Added by eve@acme.test"),
            "{}",
            f.message
        );
    }
    // An older matching event still counts when the newer one came after.
    fx.audit(
        "User Added To User Group",
        "user/u7",
        Some("olga@acme.test"),
        "user_group",
        "sgEng",
        "Engineers",
        90,
    );
    let f = fx.run_remembering(&older);
    assert_eq!(
        one(&f)
            .attribution
            .as_ref()
            .and_then(|a| a.actor_email.clone()),
        Some("olga@acme.test".to_string())
    );
}

#[test]
fn the_daemon_attributes_a_direct_grant_only_to_an_event_before_it_first_saw_it() {
    let mut fx = Fx::new();
    fx.seg_user("bob@acme.test").direct.push(owner());
    fx.audit(
        "User Policy Updated",
        "user/u9",
        Some("eve@acme.test"),
        "user",
        "seg-bob@acme.test",
        "bob@acme.test",
        5,
    );
    let id = one(&fx.run()).id.clone();
    let f = fx.run_remembering(&[(id, ago(30))].into());
    assert_eq!(one(&f).attribution, None, "{}", one(&f).message);
}

#[test]
fn membership_unexpected_stalled_push_vs_pending() {
    let mut fx = Fx::new();
    fx.idp_group("Engineers")
        .members
        .retain(|m| m.login != "carol@acme.test");
    // carol is in another mapped group? No: she becomes unmanaged too unless hidden.
    fx.event(
        IdpEventKind::MembershipRemove,
        Some("carol@acme.test"),
        Some("Engineers"),
        90,
    );
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.state),
        (Kind::MembershipUnexpected, State::Drift)
    );
    assert_eq!(f.since, ago(90));
    assert_eq!(f.deadline, Some(ago(30)));
    assert!(f.message.contains("stalled"), "{}", f.message);
    assert_eq!(f.reverted_by_scim, None);

    fx.idp.events[0].published = ago(20);
    let f = fx.run();
    assert_eq!(one(&f).state, State::Pending);
}

// ---- IdP status table ------------------------------------------------------------------

fn with_bob_status(status: &str) -> Vec<Finding> {
    let mut fx = Fx::new();
    fx.idp_group("Engineers").members[0] = user("bob@acme.test", status);
    fx.run()
}

#[test]
fn active_like_statuses_are_expected() {
    for s in ["ACTIVE", "PASSWORD_EXPIRED", "LOCKED_OUT", "RECOVERY"] {
        assert_eq!(kinds(&with_bob_status(s)), vec![], "{s}");
    }
}

#[test]
fn staged_and_provisioned_are_neither_expected_nor_flagged() {
    for s in ["STAGED", "PROVISIONED"] {
        assert_eq!(kinds(&with_bob_status(s)), vec![], "{s} present in Segment");
        let mut fx = Fx::new();
        fx.idp_group("Engineers")
            .members
            .push(user("zed@acme.test", s));
        assert_eq!(kinds(&fx.run()), vec![], "{s} absent from Segment");
    }
}

#[test]
fn suspended_is_error_not_carried_by_scim() {
    let f = with_bob_status("SUSPENDED");
    let f = one(&f);
    assert_eq!(
        (f.kind, f.state, f.severity),
        (Kind::DeactivatedUserPresent, State::Drift, Severity::Error)
    );
    assert_eq!(f.reverted_by_scim, Some(false));
    assert_eq!(f.deadline, None);
    assert!(f.message.contains("SUSPENDED"));
}

#[test]
fn deprovisioned_is_critical_pending_while_scim_works() {
    let mut fx = Fx::new();
    fx.idp_group("Engineers").members[0] = user("bob@acme.test", "DEPROVISIONED");
    fx.event(IdpEventKind::UserDeactivate, Some("bob@acme.test"), None, 2);
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.state, f.severity),
        (
            Kind::DeactivatedUserPresent,
            State::Pending,
            Severity::Critical
        )
    );
    // And without the event (deactivated long ago): drift, critical, hides membership_unexpected.
    let f = with_bob_status("DEPROVISIONED");
    let f = one(&f);
    assert_eq!(
        (f.kind, f.state, f.severity),
        (
            Kind::DeactivatedUserPresent,
            State::Drift,
            Severity::Critical
        )
    );
}

#[test]
fn deleted_user_with_log_event_is_deactivated_without_is_unmanaged() {
    let mut fx = Fx::new();
    fx.add_seg_user("gone@acme.test");
    fx.idp
        .lookups
        .insert(email("gone@acme.test"), UserLookup::NotFound);
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.severity),
        (Kind::UnmanagedUser, Severity::Warning)
    );
    assert!(f.message.contains("no such user"), "{}", f.message);

    fx.event(
        IdpEventKind::UserDeleteInitiated,
        Some("gone@acme.test"),
        None,
        15,
    );
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.state, f.severity),
        (
            Kind::DeactivatedUserPresent,
            State::Pending,
            Severity::Critical
        )
    );
}

#[test]
fn lookup_status_applies_to_members_of_no_mapped_group() {
    let mut fx = Fx::new();
    fx.add_seg_user("sus@acme.test");
    fx.idp.lookups.insert(
        email("sus@acme.test"),
        UserLookup::Found(user("sus@acme.test", "SUSPENDED")),
    );
    assert_eq!(one(&fx.run()).kind, Kind::DeactivatedUserPresent);
    fx.idp.lookups.insert(
        email("sus@acme.test"),
        UserLookup::Found(user("sus@acme.test", "ACTIVE")),
    );
    let f = fx.run();
    assert_eq!(one(&f).kind, Kind::UnmanagedUser);
    assert!(one(&f).message.contains("no mapped"), "{}", one(&f).message);
}
