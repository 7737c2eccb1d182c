//! Access governance through the pure core: exceptions as temporary elevation (every
//! boundary of `expires` and of the notice window), account hygiene, consistency across
//! workspaces, and the `explain` value and text built from the same fixtures.
//!
//! Why one file (~700 lines): the governance cases share their own fixtures (service
//! accounts, consistency sets).

use super::*;
use crate::reconcile::consistency::{self, Evaluated};

fn sa_exception(user: &str, expires: DateTime<Utc>) -> ExceptionRule {
    exception(
        user,
        vec![GrantRule {
            role: RoleRef::Name("Source Admin".into()),
            scope: GrantScope::Workspace,
            origin: origin(41),
        }],
        vec![],
        expires,
    )
}

/// bob holds Source Admin on web-prod directly; an exception covers it until `expires`.
fn elevated(expires: DateTime<Utc>) -> Fx {
    let mut fx = Fx::new();
    fx.seg_user("bob@acme.test")
        .direct
        .push(source_grant(SA, "Source Admin", &["srcWeb"]));
    fx.mapping
        .exceptions
        .push(sa_exception("bob@acme.test", expires));
    fx
}

fn at(fx: &mut Fx, t: DateTime<Utc>) -> Vec<Finding> {
    fx.now = t;
    fx.run()
}

#[test]
fn exception_lifecycle_at_every_boundary() {
    let expires = now() + Duration::days(10);
    let notice = Duration::days(3); // the default
    let mut fx = elevated(expires);
    let second = Duration::seconds(1);

    // Covered, before the notice window: nothing at all.
    assert_eq!(kinds(&at(&mut fx, now())), vec![]);
    assert_eq!(kinds(&at(&mut fx, expires - notice - second)), vec![]);

    // The notice window opens exactly `expiry_notice` before `expires`.
    for t in [
        expires - notice,
        expires - Duration::hours(1),
        expires - second,
    ] {
        let f = at(&mut fx, t);
        let f = one(&f);
        assert_eq!(
            (f.kind, f.state, f.severity),
            (Kind::ExceptionExpiring, State::Pending, Severity::Info),
            "at {t}"
        );
        assert_eq!(f.deadline, Some(expires));
        assert_eq!(f.since, expires - notice);
        assert_eq!(f.user, Some(email("bob@acme.test")));
        assert!(!f.is_actionable());
        assert_eq!(
            f.id,
            finding::finding_id(
                "production",
                Kind::ExceptionExpiring,
                &Subject::Exception {
                    user: email("bob@acme.test"),
                    ticket: "CHG-1".into()
                }
            )
        );
    }

    // At `expires` (exclusive) and after: expired, and the direct grant it covered is
    // reported through it, not as direct_grant.
    for t in [expires, expires + second, expires + Duration::days(30)] {
        let f = at(&mut fx, t);
        let f = one(&f);
        assert_eq!(
            (f.kind, f.state, f.severity),
            (Kind::ExceptionExpired, State::Drift, Severity::Error),
            "at {t}"
        );
        assert!(f.is_actionable());
    }

    // Once the access is gone, the expired exception says nothing.
    fx.seg_user("bob@acme.test")
        .direct
        .retain(|g| g.is_neutral());
    assert_eq!(kinds(&at(&mut fx, expires + second)), vec![]);
}

#[test]
fn expiring_message_names_ticket_reason_approver_and_what_it_covers() {
    let expires = now() + Duration::hours(50);
    let mut fx = elevated(expires);
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        f.message,
        "The exception CHG-1 for bob@acme.test (sprint; approved by ciso@acme.test) expires at 2026-11-29 00:00Z (in 2d 2h); it covers Source Admin on source web-prod directly in production."
    );
    assert!(
        f.remedy.contains("mappings/production.toml:40"),
        "{}",
        f.remedy
    );
    assert_eq!(f.grant.as_ref().map(|g| g.role_id.as_str()), Some(SA));

    // An expiring exception whose access is already gone still reminds, and says so.
    fx.seg_user("bob@acme.test")
        .direct
        .retain(|g| g.is_neutral());
    let f = fx.run();
    assert!(
        one(&f)
            .message
            .ends_with("bob@acme.test holds none of the access it allows in production."),
        "{}",
        one(&f).message
    );
}

#[test]
fn expiry_notice_from_the_mapping_overrides_scimwatch_toml() {
    let expires = now() + Duration::days(5);
    let mut fx = elevated(expires);
    // scimwatch.toml: 7 days → inside the window.
    fx.settings.policy.expiry_notice = Some(std::time::Duration::from_secs(7 * 86_400));
    assert_eq!(one(&fx.run()).kind, Kind::ExceptionExpiring);
    // The mapping's [policy]: 1 day → not yet.
    fx.mapping.policy = Some((
        PolicyConfig {
            expiry_notice: Some(std::time::Duration::from_secs(86_400)),
            ..Default::default()
        },
        origin(60),
    ));
    assert_eq!(kinds(&fx.run()), vec![]);
    fx.now = expires - Duration::days(1);
    assert_eq!(one(&fx.run()).kind, Kind::ExceptionExpiring);
    // A mapping [policy] without the key keeps scimwatch.toml's.
    fx.now = now();
    fx.mapping.policy = Some((PolicyConfig::default(), origin(60)));
    assert_eq!(one(&fx.run()).kind, Kind::ExceptionExpiring);
}

#[test]
fn owner_membership_exception_expiring_then_expired_is_critical() {
    let expires = now() + Duration::days(1);
    let mut fx = Fx::new();
    fx.seg_group("Owners").members.push(email("bob@acme.test"));
    fx.mapping
        .exceptions
        .push(exception("bob@acme.test", vec![], vec!["Owners"], expires));
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.severity),
        (Kind::ExceptionExpiring, Severity::Info)
    );
    assert!(
        f.message.contains("it covers membership of Owners"),
        "{}",
        f.message
    );
    fx.now = expires;
    let f = fx.run();
    assert_eq!(
        (one(&f).kind, one(&f).severity),
        (Kind::ExceptionExpired, Severity::Critical)
    );
}

#[test]
fn expired_exception_hides_unmanaged_user_and_direct_grant_but_not_uncovered_grants() {
    let expires = now() - Duration::minutes(1);
    let mut fx = Fx::new();
    fx.add_seg_user("contractor@ext.test");
    fx.seg_user("contractor@ext.test").direct = vec![
        minimal(),
        source_grant(SA, "Source Admin", &["srcWeb"]),
        source_grant(SR, "Source Read-only", &["srcIos"]),
    ];
    fx.mapping
        .exceptions
        .push(sa_exception("contractor@ext.test", expires));
    let f = fx.run();
    assert_eq!(
        kinds(&f),
        vec![
            (
                Kind::DirectGrant,
                State::Drift,
                Severity::Error,
                "contractor@ext.test".to_string()
            ),
            (
                Kind::ExceptionExpired,
                State::Drift,
                Severity::Error,
                "contractor@ext.test".to_string()
            ),
        ]
    );
    let dg = f.iter().find(|f| f.kind == Kind::DirectGrant).unwrap();
    assert_eq!(dg.grant.as_ref().unwrap().role_id, SR);

    // While active, the exception accounts for the person (no unmanaged_user) and covers
    // only what it names.
    fx.mapping.exceptions[0].expires = now() + Duration::days(30);
    let f = fx.run();
    assert_eq!(one(&f).kind, Kind::DirectGrant);
    assert_eq!(one(&f).grant.as_ref().unwrap().role_id, SR);
}

// ---- account hygiene -------------------------------------------------------------------

#[test]
fn personal_accounts_outside_corporate_domains_unless_allow_listed() {
    let mut fx = Fx::new();
    fx.settings.policy.corporate_domains = Some(vec!["acme.test".into()]);
    assert_eq!(kinds(&fx.run()), vec![]);
    for e in [
        "jo@gmail.test",
        "x@eu.acme.test",
        "y@acme.test.evil.test",
        "svc@ACME.test",
    ] {
        fx.add_seg_user(e);
    }
    fx.idp_group("Engineers").members.extend([
        user("jo@gmail.test", "ACTIVE"),
        user("x@eu.acme.test", "ACTIVE"),
        user("y@acme.test.evil.test", "ACTIVE"),
        user("svc@acme.test", "ACTIVE"),
    ]);
    for e in [
        "jo@gmail.test",
        "x@eu.acme.test",
        "y@acme.test.evil.test",
        "svc@acme.test",
    ] {
        fx.seg_group("Engineers").members.push(email(e));
    }
    fx.audit(
        "User Added via SSO",
        "sso/jit",
        None,
        "user",
        "seg-jo@gmail.test",
        "jo@gmail.test",
        30,
    );
    let f = fx.run();
    assert_eq!(
        kinds(&f),
        vec![
            (
                Kind::PersonalAccount,
                State::Drift,
                Severity::Warning,
                "jo@gmail.test".to_string()
            ),
            (
                Kind::PersonalAccount,
                State::Drift,
                Severity::Warning,
                "y@acme.test.evil.test".to_string()
            ),
        ]
    );
    assert_eq!(f[0].since, ago(30));
    assert_eq!(
        f[0].message,
        "jo@gmail.test is a member of production with an address outside the corporate domains (acme.test). Added by the SCIM sync (sso/jit) at 21:30:00Z."
    );
    // The allow-list exempts; a mapping's corporate_domains replaces scimwatch.toml's.
    fx.mapping.policy = Some((
        PolicyConfig {
            allow: Some(vec![email("jo@gmail.test")]),
            corporate_domains: Some(vec!["acme.test".into(), "evil.test".into()]),
            ..Default::default()
        },
        origin(60),
    ));
    assert_eq!(kinds(&fx.run()), vec![]);
    // Not configured: not checked.
    fx.settings.policy.corporate_domains = None;
    fx.mapping.policy = None;
    assert_eq!(kinds(&fx.run()), vec![]);
}

#[test]
fn too_many_owners_counts_direct_and_group_owners_once() {
    let mut fx = Fx::new();
    fx.settings.policy.max_owners = Some(1);
    assert_eq!(kinds(&fx.run()), vec![]); // ana alone
    fx.seg_user("ana@acme.test").direct.push(owner()); // still one person
    fx.mapping.exceptions.push(exception(
        "ana@acme.test",
        vec![GrantRule {
            role: RoleRef::Name("Workspace Owner".into()),
            scope: GrantScope::Workspace,
            origin: origin(41),
        }],
        vec![],
        now() + Duration::days(30),
    ));
    assert_eq!(kinds(&fx.run()), vec![]);
    fx.seg_group("Owners").members.push(email("bob@acme.test"));
    fx.idp_group("Owners")
        .members
        .push(user("bob@acme.test", "ACTIVE"));
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.state, f.severity, f.subject()),
        (
            Kind::TooManyOwners,
            State::Drift,
            Severity::Warning,
            "production".to_string()
        )
    );
    assert_eq!(
        f.id,
        finding::finding_id(
            "production",
            Kind::TooManyOwners,
            &Subject::Workspace("production".into())
        )
    );
    assert_eq!(
        f.message,
        "production has 2 Workspace Owners, more than max_owners = 1: ana@acme.test (directly, through Owners), bob@acme.test (through Owners)."
    );
    // The mapping's max_owners wins over scimwatch.toml's.
    fx.mapping.policy = Some((
        PolicyConfig {
            max_owners: Some(2),
            ..Default::default()
        },
        origin(60),
    ));
    assert_eq!(kinds(&fx.run()), vec![]);
}

// ---- consistency across workspaces -------------------------------------------------------

/// A staging workspace shaped like production, with its own ids (source slugs equal).
fn staging() -> Fx {
    let mut fx = Fx::new();
    fx.ws.name = "staging".into();
    fx.snap.name = "staging".into();
    let rename = |id: &str| match id {
        "srcWeb" => "stgWeb".to_string(),
        "srcIos" => "stgIos".to_string(),
        WS_ID => "ws2".to_string(),
        other => other.to_string(),
    };
    fx.snap.id = "ws2".into();
    for s in &mut fx.snap.catalog.sources {
        s.id = rename(&s.id);
    }
    let fix = |g: &mut Grant| {
        g.resources = g
            .resources
            .iter()
            .map(|r| Resource {
                kind: r.kind,
                id: rename(&r.id),
                labels: r.labels.clone(),
            })
            .collect();
    };
    for g in &mut fx.snap.groups {
        g.grants.iter_mut().for_each(fix);
    }
    for u in &mut fx.snap.users {
        u.direct.iter_mut().for_each(fix);
    }
    fx
}

fn across(prod: &Fx, stg: &Fx, sets: &[Vec<String>]) -> Vec<Finding> {
    let p = evaluate_workspace(
        &prod.ws,
        &prod.mapping,
        &prod.snap,
        &prod.idp,
        &prod.settings,
        prod.now,
    );
    let s = evaluate_workspace(
        &stg.ws,
        &stg.mapping,
        &stg.snap,
        &stg.idp,
        &stg.settings,
        stg.now,
    );
    let map: BTreeMap<&str, Evaluated<'_>> = [
        (
            "production",
            Evaluated {
                snapshot: &prod.snap,
                evaluation: &p,
            },
        ),
        (
            "staging",
            Evaluated {
                snapshot: &stg.snap,
                evaluation: &s,
            },
        ),
    ]
    .into();
    consistency::check(sets, &map, now())
}

fn set() -> Vec<Vec<String>> {
    vec![vec!["production".into(), "staging".into()]]
}

#[test]
fn same_roles_by_slug_are_consistent_though_ids_differ() {
    let (prod, stg) = (Fx::new(), staging());
    assert_eq!(stg.run(), vec![]);
    assert_eq!(across(&prod, &stg, &set()), vec![]);
}

#[test]
fn an_unexplained_difference_is_one_finding_on_the_first_workspace() {
    let prod = Fx::new();
    let mut stg = staging();
    stg.seg_user("bob@acme.test")
        .direct
        .push(source_grant(SR, "Source Read-only", &["stgWeb"]));
    let f = across(&prod, &stg, &set());
    let f = one(&f);
    assert_eq!(
        (f.kind, f.state, f.severity, f.workspace.as_str()),
        (
            Kind::WorkspaceInconsistent,
            State::Drift,
            Severity::Warning,
            "production"
        )
    );
    assert_eq!(f.user, Some(email("bob@acme.test")));
    assert_eq!(
        f.id,
        finding::finding_id(
            "production",
            Kind::WorkspaceInconsistent,
            &Subject::Consistency {
                user: email("bob@acme.test"),
                workspaces: vec!["production".into(), "staging".into()],
            }
        )
    );
    assert_eq!(
        f.message,
        "bob@acme.test holds different roles in production and staging (policy consistent = [\"production\", \"staging\"]): Source Read-only on source web-prod in staging but not in production. No mapping justification or exception explains it."
    );
    // The listed order decides the workspace.
    let f = across(&prod, &stg, &[vec!["staging".into(), "production".into()]]);
    assert_eq!(one(&f).workspace, "staging");

    // An active exception in staging explains it; an expired one does not.
    stg.mapping.exceptions.push(exception(
        "bob@acme.test",
        vec![GrantRule {
            role: RoleRef::Name("Source Read-only".into()),
            scope: GrantScope::Sources(vec!["web-prod".into()]),
            origin: origin(41),
        }],
        vec![],
        now() + Duration::days(30),
    ));
    assert_eq!(across(&prod, &stg, &set()), vec![]);
    stg.mapping.exceptions[0].expires = now();
    assert_eq!(
        one(&across(&prod, &stg, &set())).kind,
        Kind::WorkspaceInconsistent
    );
}

#[test]
fn a_justified_mapping_explains_the_difference_it_causes() {
    let prod = Fx::new();
    let mut stg = staging();
    // ana is a member of staging but not an owner there.
    stg.seg_group("Owners").members.clear();
    stg.idp_group("Owners").members.clear();
    stg.seg_group("Engineers")
        .members
        .push(email("ana@acme.test"));
    stg.idp_group("Engineers")
        .members
        .push(user("ana@acme.test", "ACTIVE"));
    let f = across(&prod, &stg, &set());
    // Owner (justified in production) is explained; Engineers' grants in staging are not.
    let f = one(&f);
    assert!(
        f.message
            .contains("Source Admin on source ios-prod in staging but not in production")
            && !f.message.contains("Workspace Owner"),
        "{}",
        f.message
    );
    // Without the justification, the Owner difference counts too.
    let mut prod = Fx::new();
    prod.mapping.groups[0].justification = None;
    let f = across(&prod, &stg, &set());
    assert!(
        one(&f)
            .message
            .contains("Workspace Owner on the whole workspace in production but not in staging"),
        "{}",
        one(&f).message
    );
}

#[test]
fn people_in_one_workspace_and_sets_not_evaluated_are_not_compared() {
    let mut prod = Fx::new();
    prod.add_seg_user("only-prod@acme.test");
    prod.seg_user("only-prod@acme.test")
        .direct
        .push(source_grant(SA, "Source Admin", &["srcWeb"]));
    let stg = staging();
    assert_eq!(across(&prod, &stg, &set()), vec![]);
    let mut stg = stg;
    stg.seg_user("bob@acme.test").direct.push(owner());
    assert_eq!(across(&prod, &stg, &set()).len(), 1);
    assert_eq!(
        across(
            &prod,
            &stg,
            &[vec!["production".into(), "development".into()]]
        ),
        vec![]
    );
}

// ---- explain: the value and the text people read ---------------------------------------

fn explained(
    fx: &Fx,
    who: &str,
    changes: crate::explain::ChangeLog,
) -> crate::explain::Explanation {
    let inputs = [crate::explain::WorkspaceInput {
        config: &fx.ws,
        mapping: &fx.mapping,
        snapshot: &fx.snap,
    }];
    let read = crate::explain::Read {
        idp_kind: IdpKind::Okta,
        idp: &fx.idp,
        lookup: None,
        workspaces: &inputs,
    };
    crate::explain::build(&email(who), &read, &fx.settings, changes, fx.now)
}

/// bob: an Engineer, in Owners by hand under an expiring exception, with a direct grant
/// nothing covers; two changes in the log.
fn bob_story() -> Fx {
    let mut fx = Fx::new();
    fx.seg_group("Owners").members.push(email("bob@acme.test"));
    fx.mapping.exceptions.push(exception(
        "bob@acme.test",
        vec![],
        vec!["Owners"],
        now() + Duration::hours(30),
    ));
    fx.seg_user("bob@acme.test")
        .direct
        .push(source_grant(SR, "Source Read-only", &["srcIos"]));
    fx
}

fn bob_changes() -> crate::explain::ChangeLog {
    let rec =
        |id: i64, user: &str, min: i64, before: &str, after: &str| crate::store::ChangeRecord {
            id,
            at: ago(min),
            workspace: "production".into(),
            user: user.into(),
            before: before.into(),
            after: after.into(),
            actor: Some("eve@acme.test".into()),
            attribution: Some("human".into()),
            idp_event: None,
            latency_ms: None,
            ..Default::default()
        };
    crate::explain::ChangeLog::from_records(
        "/var/lib/scimwatch/scimwatch.db",
        &email("bob@acme.test"),
        &[
            rec(1, "bob@acme.test", 120, "Engineers", "Engineers, Owners"),
            rec(2, "carol@acme.test", 100, "Engineers", "-"),
            rec(
                3,
                "Bob@Acme.test",
                20,
                "-",
                "Source Read-only on source ios-prod",
            ),
        ],
    )
}

#[test]
fn explain_value_for_a_person_with_an_exception_and_a_direct_grant() {
    let fx = bob_story();
    let e = explained(&fx, "bob@acme.test", bob_changes());
    assert!(e.known());
    assert_eq!(e.idp.status.as_deref(), Some("ACTIVE"));
    let w = &e.workspaces[0];
    assert!(w.member);
    assert_eq!(w.rules.len(), 1);
    assert_eq!(w.rules[0].at, "mappings/production.toml:8");
    assert_eq!(w.expected.len(), 3);
    assert_eq!(w.expected[0].at, "mappings/production.toml:10");
    // Held: the direct grant, Owners' Workspace Owner, Engineers' three.
    assert_eq!(w.held.len(), 5);
    assert_eq!(w.held[0].source, "no exception covers it");
    assert_eq!(w.exceptions.len(), 1);
    assert_eq!(
        (w.exceptions[0].status, w.exceptions[0].days_left),
        ("expiring", 1)
    );
    let kinds: Vec<Kind> = w.findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![Kind::DirectGrant, Kind::ExceptionExpiring]);
    match &e.changes {
        crate::explain::ChangeLog::Read { total, records, .. } => {
            assert_eq!(*total, 2);
            assert_eq!(records.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    // After expiry the exception is reported expired, with negative days.
    let mut fx = fx;
    fx.now = now() + Duration::days(3);
    let e = explained(&fx, "bob@acme.test", bob_changes());
    let w = &e.workspaces[0];
    assert_eq!(
        (w.exceptions[0].status, w.exceptions[0].days_left),
        ("expired", -2)
    );
    assert!(w.findings.iter().any(|f| f.kind == Kind::ExceptionExpired));
}

#[test]
fn explain_knows_nobody_it_cannot_find() {
    let fx = Fx::new();
    let e = explained(
        &fx,
        "nobody@acme.test",
        crate::explain::ChangeLog::NoStore {
            path: "scimwatch.db".into(),
        },
    );
    assert!(!e.known());
    assert!(e.workspaces.iter().all(|w| !w.member && w.held.is_empty()));
}

#[test]
fn explain_text_snapshot() {
    let fx = bob_story();
    insta::assert_snapshot!(crate::explain::text(&explained(
        &fx,
        "bob@acme.test",
        bob_changes()
    )));
}

#[test]
fn explain_text_without_a_store_snapshot() {
    let mut fx = Fx::new();
    fx.settings.policy.corporate_domains = Some(vec!["acme.test".into()]);
    fx.add_seg_user("temp@gmail.test");
    insta::assert_snapshot!(crate::explain::text(&explained(
        &fx,
        "temp@gmail.test",
        crate::explain::ChangeLog::NoStore {
            path: "/var/lib/scimwatch/scimwatch.db".into(),
        }
    )));
}

#[test]
fn explain_json_snapshot() {
    let fx = bob_story();
    insta::assert_snapshot!(crate::explain::json(&explained(
        &fx,
        "bob@acme.test",
        bob_changes()
    )));
}
