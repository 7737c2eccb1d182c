//! Table tests: direct grants and exceptions, from the clean fixture.

use super::*;

// ---- direct grants and exceptions ------------------------------------------------------

#[test]
fn direct_owner_grant_is_critical_and_attributed_to_the_human() {
    let mut fx = Fx::new();
    fx.seg_user("bob@acme.test").direct.push(owner());
    fx.audit(
        "User Policy Updated",
        "user/u8Kd2",
        Some("eve@acme.test"),
        "user",
        "seg-bob@acme.test",
        "bob@acme.test",
        20,
    );
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.state, f.severity),
        (Kind::DirectGrant, State::Drift, Severity::Critical)
    );
    assert_eq!(f.grant.as_ref().unwrap().role_id, WORKSPACE_OWNER_ROLE_ID);
    assert_eq!(f.since, ago(20));
    assert_eq!(f.reverted_by_scim, Some(false));
    assert_eq!(
        f.message,
        "bob@acme.test holds Workspace Owner on the whole workspace directly in production; no exception covers it. Granted by eve@acme.test at 21:40:00Z in the Segment app."
    );
}

#[test]
fn one_direct_grant_finding_per_policy_with_stable_ids() {
    let mut fx = Fx::new();
    fx.seg_user("bob@acme.test")
        .direct
        .push(source_grant(SA, "Source Admin", &["srcWeb"]));
    fx.seg_user("bob@acme.test")
        .direct
        .push(source_grant(SR, "Source Read-only", &["srcIos"]));
    let a = fx.run();
    assert_eq!(a.len(), 2);
    assert!(a
        .iter()
        .all(|f| f.severity == Severity::Error && f.attribution.is_none()));
    fx.now = now() + Duration::hours(1);
    let b = fx.run();
    let ids = |f: &[Finding]| f.iter().map(|f| f.id.clone()).collect::<BTreeSet<_>>();
    assert_eq!(ids(&a), ids(&b));
}

#[test]
fn active_exception_covers_narrower_and_expired_one_raises_exception_expired() {
    let mut fx = Fx::new();
    fx.seg_user("bob@acme.test")
        .direct
        .push(source_grant(SA, "Source Admin", &["srcWeb"]));
    // "all sources" (WORKSPACE resource) covers a SOURCE grant.
    fx.mapping.exceptions.push(exception(
        "Bob@acme.test",
        vec![GrantRule {
            role: RoleRef::Name("Source Admin".into()),
            scope: GrantScope::Workspace,
            origin: origin(41),
        }],
        vec![],
        now() + Duration::days(10), // beyond the expiry notice
    ));
    assert_eq!(kinds(&fx.run()), vec![]);

    fx.now = now() + Duration::days(10); // expires is exclusive
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.severity),
        (Kind::ExceptionExpired, Severity::Error)
    );
    assert!(f.message.contains("CHG-1"), "{}", f.message);
}

#[test]
fn label_exception_covers_labelled_sources_only() {
    let mut fx = Fx::new();
    fx.snap.catalog.sources.push(CatalogItem {
        id: "srcDev".into(),
        slug: Some("web-dev".into()),
        name: None,
        labels: BTreeSet::new(),
    });
    fx.seg_user("bob@acme.test")
        .direct
        .push(source_grant(SA, "Source Admin", &["srcWeb"]));
    fx.seg_user("bob@acme.test")
        .direct
        .push(source_grant(SA, "Source Admin", &["srcDev"]));
    fx.mapping.exceptions.push(exception(
        "bob@acme.test",
        vec![GrantRule {
            role: RoleRef::Name("Source Admin".into()),
            scope: GrantScope::Labels([("environment".to_string(), "prod".to_string())].into()),
            origin: origin(41),
        }],
        vec![],
        now() + Duration::days(10), // beyond the expiry notice
    ));
    let f = fx.run();
    assert_eq!(one(&f).kind, Kind::DirectGrant);
    assert_eq!(one(&f).grant.as_ref().unwrap().resources[0].id, "srcDev");
}

#[test]
fn expired_owner_exception_is_critical_and_hides_direct_grant() {
    let mut fx = Fx::new();
    fx.seg_user("bob@acme.test").direct.push(owner());
    fx.mapping.exceptions.push(exception(
        "bob@acme.test",
        vec![GrantRule {
            role: RoleRef::Name("Workspace Owner".into()),
            scope: GrantScope::Workspace,
            origin: origin(41),
        }],
        vec![],
        now() - Duration::days(1),
    ));
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.severity),
        (Kind::ExceptionExpired, Severity::Critical)
    );
}

#[test]
fn exception_groups_allow_a_manual_membership_until_expiry() {
    let mut fx = Fx::new();
    fx.seg_group("Owners").members.push(email("bob@acme.test"));
    fx.mapping.exceptions.push(exception(
        "bob@acme.test",
        vec![],
        vec!["Owners"],
        now() + Duration::days(10), // beyond the expiry notice
    ));
    assert_eq!(kinds(&fx.run()), vec![]);
    fx.now = now() + Duration::days(11);
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.severity),
        (Kind::ExceptionExpired, Severity::Critical)
    );
}

#[test]
fn exception_user_is_not_unmanaged() {
    let mut fx = Fx::new();
    fx.add_seg_user("contractor@ext.test");
    fx.mapping.exceptions.push(exception(
        "contractor@ext.test",
        vec![],
        vec!["Owners"],
        now() + Duration::days(10), // beyond the expiry notice
    ));
    assert_eq!(kinds(&fx.run()), vec![]);
}
