//! An unresolved IdP group name holds back exactly the findings it causes
//! (`reconcile::suppress`): `unmapped_group` for the Segment group that carries the
//! mapping's name, `unmanaged_user` for that group's members, listed on the
//! `mapping_unresolved` finding. Everything else is still reported.

use super::*;
use crate::reconcile::finding::Suppressed;

/// The Engineers mapping misspelt as `name`, so the Segment group "Engineers" (what the
/// IdP pushed) is named by no mapping; its members are in no other mapped group.
fn typo(name: &str) -> Fx {
    let mut fx = Fx::new();
    fx.mapping.groups[1].idp_group = GroupRef::Name(name.into());
    fx.idp.groups[1] = (
        GroupRef::Name(name.into()),
        GroupRead::Unresolved {
            reason: format!("no Okta group is named {name:?}"),
        },
    );
    fx
}

fn suppressed(f: &Finding) -> Vec<Suppressed> {
    f.mapping
        .as_ref()
        .map(|m| m.suppressed.clone())
        .unwrap_or_default()
}

fn held_group(name: &str) -> Suppressed {
    Suppressed {
        kind: Kind::UnmappedGroup,
        user: None,
        group: Some(name.into()),
    }
}

fn held_user(e: &str) -> Suppressed {
    Suppressed {
        kind: Kind::UnmanagedUser,
        user: Some(e.into()),
        group: None,
    }
}

#[test]
fn a_typo_in_an_idp_group_name_is_one_finding_with_did_you_mean_and_what_it_holds_back() {
    let f = typo("Enginers").run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.severity),
        (Kind::MappingUnresolved, Severity::Error)
    );
    assert!(
        f.message.contains("did you mean \"Engineers\""),
        "{}",
        f.message
    );
    assert_eq!(
        suppressed(f),
        vec![
            held_group("Engineers"),
            held_user("bob@acme.test"),
            held_user("carol@acme.test")
        ]
    );
    assert!(
        f.message
            .contains("unmapped_group for the Segment group \"Engineers\"")
            && f.message.contains("unmanaged_user for 2 of its members"),
        "{}",
        f.message
    );
}

#[test]
fn the_same_typo_without_the_suppression_would_page_for_the_group_and_its_members() {
    // The counterfactual, through the public pieces: a mapping nobody has (the Engineers
    // rule removed) reports the group and both members, which the typo must not.
    let mut fx = Fx::new();
    fx.mapping.groups.remove(1);
    fx.idp.groups.remove(1);
    let f = fx.run();
    let k: Vec<Kind> = f.iter().map(|f| f.kind).collect();
    assert_eq!(
        k.iter().filter(|k| **k == Kind::UnmanagedUser).count(),
        2,
        "{:#?}",
        kinds(&f)
    );
    assert!(k.contains(&Kind::UnmappedGroup), "{:#?}", kinds(&f));
}

#[test]
fn exactly_the_caused_findings_are_held_back() {
    // Cases: (what the test changes, kinds expected besides mapping_unresolved, held back).
    type Change = fn(&mut Fx);
    let cases: Vec<(&str, Change, Vec<Kind>, usize)> = vec![
        (
            "a member of the carrier also holds a direct Owner grant: still reported",
            |fx| fx.seg_user("bob@acme.test").direct.push(owner()),
            vec![Kind::DirectGrant],
            3,
        ),
        (
            "an unmanaged member of the workspace outside the carrier: still reported",
            |fx| fx.add_seg_user("zed@acme.test"),
            vec![Kind::UnmanagedUser],
            3,
        ),
        (
            "another unmapped group with grants, not near the name: still reported",
            |fx| {
                fx.snap.groups.push(SegmentGroup {
                    id: "sgOther".into(),
                    name: "Contractors".into(),
                    grants: vec![minimal(), ws_grant(TP, "Tracking Plan Read-only")],
                    members: vec![],
                })
            },
            vec![Kind::UnmappedGroup],
            3,
        ),
        (
            "a member of the carrier who is also in a resolved mapped group: never unmanaged",
            |fx| {
                fx.seg_group("Engineers")
                    .members
                    .push(email("ana@acme.test"));
            },
            vec![],
            3,
        ),
    ];
    for (what, change, others, held) in cases {
        let mut fx = typo("Enginers");
        change(&mut fx);
        let f = fx.run();
        let unresolved: Vec<&Finding> = f
            .iter()
            .filter(|f| f.kind == Kind::MappingUnresolved)
            .collect();
        assert_eq!(unresolved.len(), 1, "{what}: {:#?}", kinds(&f));
        assert_eq!(suppressed(unresolved[0]).len(), held, "{what}");
        let mut rest: Vec<Kind> = f
            .iter()
            .filter(|f| f.kind != Kind::MappingUnresolved)
            .map(|f| f.kind)
            .collect();
        rest.sort();
        assert_eq!(rest, others, "{what}: {:#?}", kinds(&f));
    }
}

#[test]
fn no_near_segment_group_means_nothing_is_held_back() {
    let f = typo("Data Platform").run();
    let u: Vec<&Finding> = f
        .iter()
        .filter(|f| f.kind == Kind::MappingUnresolved)
        .collect();
    assert_eq!(u.len(), 1);
    assert!(suppressed(u[0]).is_empty());
    assert!(!u[0].message.contains("did you mean"), "{}", u[0].message);
    assert!(!u[0].message.contains("Held back"), "{}", u[0].message);
    // The Segment group and its members are reported as what they are.
    assert!(
        f.iter().any(|f| f.kind == Kind::UnmappedGroup),
        "{:#?}",
        kinds(&f)
    );
    assert_eq!(
        f.iter().filter(|f| f.kind == Kind::UnmanagedUser).count(),
        2,
        "{:#?}",
        kinds(&f)
    );
}

#[test]
fn a_right_segment_group_name_needs_nothing_held_back() {
    // idp_group misspelt, segment_group right: the mirror is named exactly, so the core
    // already says nothing about it or its members (product.md); nothing to hold back.
    let mut fx = typo("Enginers");
    fx.mapping.groups[1].segment_group = Some("Engineers".into());
    let f = fx.run();
    let f = one(&f);
    assert_eq!(f.kind, Kind::MappingUnresolved);
    assert!(suppressed(f).is_empty());
    assert!(!f.message.contains("Held back"), "{}", f.message);
}

#[test]
fn suppressed_is_in_the_json_only_when_something_was_held_back() {
    let with = typo("Enginers").run();
    let json = serde_json::to_value(&with[0]).unwrap();
    assert_eq!(json["mapping"]["suppressed"][0]["kind"], "unmapped_group");
    assert_eq!(json["mapping"]["suppressed"][0]["group"], "Engineers");
    assert_eq!(json["mapping"]["suppressed"][1]["user"], "bob@acme.test");
    let without = typo("Data Platform").run();
    let u = without
        .iter()
        .find(|f| f.kind == Kind::MappingUnresolved)
        .unwrap();
    let json = serde_json::to_value(u).unwrap();
    assert!(json["mapping"].get("suppressed").is_none(), "{json}");
}
