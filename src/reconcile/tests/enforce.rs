//! Table tests: the enforcement planner on the same fixture.

use super::*;

// ---- enforce: the pure planner on the same fixture ------------------------------------

fn enforce_plan(fx: &Fx, max_changes: u32) -> crate::enforce::WorkspacePlan {
    let ev = crate::reconcile::evaluate_workspace(
        &fx.ws,
        &fx.mapping,
        &fx.snap,
        &fx.idp,
        &fx.settings,
        fx.now,
    );
    crate::enforce::plan_workspace(
        &ev.desired,
        &fx.snap,
        crate::enforce::Options {
            max_changes,
            revert_expired: false,
        },
        fx.now,
    )
}

#[test]
fn enforce_plans_nothing_when_groups_match_their_mappings() {
    let plan = enforce_plan(&Fx::new(), 10);
    assert!(plan.is_empty() && plan.skipped.is_empty(), "{plan:?}");
}

#[test]
fn enforce_replaces_a_groups_whole_list_and_keeps_its_neutral_grants() {
    let mut fx = Fx::new();
    fx.snap.groups[1].grants.push(owner());
    fx.snap.groups[1].grants.push(minimal());
    let plan = enforce_plan(&fx, 10);
    assert_eq!(plan.changes.len(), 1);
    let c = &plan.changes[0];
    assert_eq!(
        (c.target, c.name.as_str(), c.id.as_str()),
        ("group", "Engineers", "sgEng")
    );
    assert_eq!(
        c.remove,
        vec!["Workspace Owner on the whole workspace".to_string()]
    );
    assert!(c.add.is_empty());
    assert_eq!(plan.size, 1);
    let roles: Vec<&str> = c.permissions.iter().map(|g| g.role.as_str()).collect();
    assert!(!roles.contains(&"Workspace Owner"), "{roles:?}");
    assert!(roles.contains(&"Minimal Workspace Access"), "{roles:?}");
    assert!(
        c.source.ends_with(":8"),
        "the mapping that asks: {}",
        c.source
    );
}

#[test]
fn enforce_counts_one_change_per_grant_and_knows_its_limit() {
    let mut fx = Fx::new();
    // Engineers lost every grant: three roles, four atoms (two sources, one label, one TP).
    fx.snap.groups[1].grants.clear();
    let plan = enforce_plan(&fx, 3);
    assert_eq!(plan.size, 4, "{plan:?}");
    assert!(plan.over_limit());
    assert!(!enforce_plan(&fx, 4).over_limit());
}

#[test]
fn enforce_holds_a_change_that_would_leave_no_workspace_owner() {
    let mut fx = Fx::new();
    // The owners' mapping now grants only Tracking Plan Read-only.
    let tp = fx.mapping.groups[1].grants[2].clone();
    fx.mapping.groups[0].grants = vec![tp];
    let plan = enforce_plan(&fx, 10);
    let c = &plan.changes[0];
    assert_eq!(c.name, "Owners");
    assert!(c
        .held
        .as_deref()
        .unwrap_or("")
        .contains("without any Workspace Owner"));
    assert_eq!(plan.size, 0);
    // Someone else holds Owner directly: the change may go.
    fx.snap.users[1].direct.push(owner());
    let plan = enforce_plan(&fx, 10);
    assert!(plan.changes.iter().all(|c| c.held.is_none()), "{plan:?}");
}

#[test]
fn enforce_leaves_out_a_group_whose_mapping_does_not_resolve() {
    let mut fx = Fx::new();
    fx.mapping.groups[1].grants[0].scope = GrantScope::Sources(vec!["web-prodd".into()]);
    fx.snap.groups[1].grants.push(owner());
    let plan = enforce_plan(&fx, 10);
    assert!(
        plan.changes.is_empty(),
        "never strip grants on a typo: {plan:?}"
    );
    assert_eq!(plan.skipped.len(), 1);
    assert_eq!(plan.skipped[0].group, "Engineers");
}
