//! Table tests: Entra ID (direct members only, nested groups, the provisioning cycle).

use super::*;

// ---- Entra ID: direct members only, nested groups, the provisioning cycle --------------

fn nested(name: &str, people: Vec<IdpUser>) -> NestedGroup {
    NestedGroup {
        id: format!("grp-{name}"),
        name: name.into(),
        people,
    }
}

fn entra_user(login: &str, enabled: bool) -> IdpUser {
    IdpUser {
        status: IdpStatus::from_entra(enabled),
        ..user(login, "ACTIVE")
    }
}

impl Fx {
    fn entra() -> Fx {
        let mut fx = Fx::new();
        fx.settings.idp = IdpKind::AzureAd;
        fx
    }

    fn run_nested(&self, nested: &NestedGroups) -> Vec<Finding> {
        evaluate_with_nested(
            &self.ws,
            &self.mapping,
            &self.snap,
            &self.idp,
            nested,
            &self.settings,
            self.now,
        )
    }
}

#[test]
fn each_nested_group_is_one_warning_counting_the_people_it_leaves_out() {
    let fx = Fx::entra();
    let groups: NestedGroups = [(
        "00gEng".to_string(),
        vec![
            nested(
                "Contractors",
                vec![
                    entra_user("bob@acme.test", true), // also a direct member: not left out
                    entra_user("dan@acme.test", true), // left out
                    entra_user("Dan@ACME.test", true), // the same person twice
                    entra_user("erin@acme.test", false), // disabled: Entra would not send them anyway
                ],
            ),
            nested("Agency", vec![]),
        ],
    )]
    .into();
    let f = fx.run_nested(&groups);
    assert_eq!(
        kinds(&f),
        vec![
            (
                Kind::NestedGroupNotProvisioned,
                State::Drift,
                Severity::Warning,
                "Engineers (nested Agency)".to_string()
            ),
            (
                Kind::NestedGroupNotProvisioned,
                State::Drift,
                Severity::Warning,
                "Engineers (nested Contractors)".to_string()
            ),
        ]
    );
    let c = f
        .iter()
        .find(|x| x.nested_group.as_deref() == Some("Contractors"))
        .unwrap();
    assert_eq!(c.people_left_out, Some(1));
    assert_eq!(c.group.as_deref(), Some("Engineers"));
    assert_eq!(c.user, None);
    assert_eq!(c.deadline, None);
    assert_eq!(c.since, fx.now);
    assert_eq!(c.reverted_by_scim, Some(false));
    assert_eq!(
        c.id,
        finding::finding_id(
            "production",
            Kind::NestedGroupNotProvisioned,
            &Subject::NestedGroup {
                group: "Engineers".into(),
                nested: "Contractors".into()
            }
        )
    );
    assert!(
        c.message
            .contains("1 person reached only through it is left out"),
        "{}",
        c.message
    );
    let a = f
        .iter()
        .find(|x| x.nested_group.as_deref() == Some("Agency"))
        .unwrap();
    assert_eq!(a.people_left_out, Some(0));
    assert!(
        a.message.contains("whoever joins it later"),
        "{}",
        a.message
    );
    // Without nested groups (Okta, or none in Entra) nothing changes.
    assert_eq!(kinds(&fx.run_nested(&NestedGroups::new())), vec![]);
    assert_eq!(kinds(&fx.run()), vec![]);
}

#[test]
fn a_person_reached_only_through_a_nested_group_is_not_expected_in_the_mirror() {
    let mut fx = Fx::entra();
    fx.add_seg_user("dan@acme.test");
    fx.seg_group("Engineers")
        .members
        .push(email("dan@acme.test"));
    fx.audit(
        "User Added To User Group",
        "user/u1",
        Some("eve@acme.test"),
        "user_group",
        "sgEng",
        "Engineers",
        20,
    );
    let groups: NestedGroups = [(
        "00gEng".to_string(),
        vec![nested(
            "Contractors",
            vec![entra_user("dan@acme.test", true)],
        )],
    )]
    .into();
    let f = fx.run_nested(&groups);
    let k: Vec<Kind> = f.iter().map(|x| x.kind).collect();
    assert_eq!(
        k,
        vec![Kind::MembershipUnexpected, Kind::NestedGroupNotProvisioned]
    );
    let m = &f[0];
    assert_eq!(m.user, Some(email("dan@acme.test")));
    // Entra never removes members added in the app.
    assert_eq!(m.reverted_by_scim, Some(false));
    assert!(
        m.message.contains("Entra ID will not revert it"),
        "{}",
        m.message
    );
}

#[test]
fn entra_findings_speak_of_the_provisioning_cycle_not_of_okta_push() {
    let mut fx = Fx::entra();
    fx.idp_group("Owners")
        .members
        .push(entra_user("dan@acme.test", true));
    fx.event(
        IdpEventKind::MembershipAdd,
        Some("dan@acme.test"),
        Some("Owners"),
        10,
    );
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.state),
        (Kind::UserNotProvisioned, State::Pending)
    );
    assert!(f.message.contains("provisioning cycle"), "{}", f.message);
    assert!(f.remedy.contains("next provisioning cycle"), "{}", f.remedy);
    for text in [&f.message, &f.remedy] {
        assert!(
            !text.contains("Okta") && !text.contains("Push Now"),
            "{text}"
        );
    }
    fx.now = ago(10) + Duration::minutes(60);
    let f = fx.run();
    let f = one(&f);
    assert_eq!(f.state, State::Drift);
    assert!(f.message.contains("provisioning logs"), "{}", f.message);
    assert!(f.remedy.contains("Provision on demand"), "{}", f.remedy);
    assert!(!f.message.contains("Okta") && !f.remedy.contains("Push Now"));

    // A manual removal: Entra will not resend an unchanged user.
    let mut fx = Fx::entra();
    fx.seg_group("Engineers")
        .members
        .retain(|m| *m != email("bob@acme.test"));
    let f = fx.run();
    let f = one(&f);
    assert_eq!((f.kind, f.state), (Kind::MembershipMissing, State::Drift));
    assert_eq!(f.reverted_by_scim, Some(false));
    assert!(f.remedy.contains("on demand from Entra ID"), "{}", f.remedy);
}
