//! Table tests for the pure core: resolve → diff → classify through [`evaluate`].
//!
//! Each test starts from a clean fixture (a workspace exactly as its mapping wants it)
//! and changes one thing.
//!
//! This file holds the fixture and the tests of what every kind shares (groups, unmanaged
//! users, attribution, unresolved mappings, what people read); the kinds with many cases
//! have their own files under `tests/` (membership, grants, entra, enforce, governance,
//! report). Why ~900 lines: the fixture is half of it and every file below uses it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::config::UnmanagedUsers;
use crate::mapping::{ExceptionRule, GrantRule, GrantScope, GroupRule, Origin, RoleRef};
use crate::model::*;
use crate::secret::Secret;

const WS_ID: &str = "ws1";
const SA: &str = "rSourceAdmin";
const SR: &str = "rSourceRead";
const TP: &str = "rTrackingRead";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 22, 0, 0).unwrap()
}

fn ago(min: i64) -> DateTime<Utc> {
    now() - Duration::minutes(min)
}

fn origin(line: u32) -> Origin {
    Origin {
        file: "mappings/production.toml".into(),
        line,
    }
}

fn ws_grant(role_id: &str, name: &str) -> Grant {
    Grant {
        role_id: role_id.into(),
        role_name: name.into(),
        resources: [Resource::workspace(WS_ID)].into(),
    }
}

fn owner() -> Grant {
    ws_grant(WORKSPACE_OWNER_ROLE_ID, WORKSPACE_OWNER)
}

fn minimal() -> Grant {
    ws_grant(MINIMAL_ACCESS_ROLE_ID, MINIMAL_ACCESS)
}

fn source_grant(role_id: &str, name: &str, ids: &[&str]) -> Grant {
    Grant {
        role_id: role_id.into(),
        role_name: name.into(),
        resources: ids
            .iter()
            .map(|id| Resource {
                kind: ResourceType::Source,
                id: id.to_string(),
                labels: BTreeSet::new(),
            })
            .collect(),
    }
}

fn label_grant(role_id: &str, name: &str, k: &str, v: &str) -> Grant {
    Grant {
        role_id: role_id.into(),
        role_name: name.into(),
        resources: [Resource {
            kind: ResourceType::Workspace,
            id: WS_ID.into(),
            labels: [Label {
                key: k.into(),
                value: v.into(),
            }]
            .into(),
        }]
        .into(),
    }
}

fn user(login: &str, status: &str) -> IdpUser {
    IdpUser {
        id: format!("00u-{login}"),
        login: login.into(),
        key: Email::new(login),
        status: IdpStatus::from_okta(status),
    }
}

fn email(s: &str) -> Email {
    Email::new(s)
}

struct Fx {
    ws: WorkspaceConfig,
    mapping: WorkspaceMapping,
    snap: WorkspaceSnapshot,
    idp: IdpSnapshot,
    settings: Settings,
    now: DateTime<Utc>,
}

impl Fx {
    /// Owners (ana) → Workspace Owner; Engineers (bob, carol) → Source Admin on web-prod and
    /// ios-prod, Source Read-only on label environment:prod, Tracking Plan Read-only.
    fn new() -> Fx {
        let catalog = Catalog {
            roles: vec![
                Role {
                    id: WORKSPACE_OWNER_ROLE_ID.into(),
                    name: WORKSPACE_OWNER.into(),
                },
                Role {
                    id: MINIMAL_ACCESS_ROLE_ID.into(),
                    name: MINIMAL_ACCESS.into(),
                },
                Role {
                    id: SA.into(),
                    name: "Source Admin".into(),
                },
                Role {
                    id: SR.into(),
                    name: "Source Read-only".into(),
                },
                Role {
                    id: TP.into(),
                    name: "Tracking Plan Read-only".into(),
                },
            ],
            sources: vec![
                CatalogItem {
                    id: "srcWeb".into(),
                    slug: Some("web-prod".into()),
                    name: Some("Web (prod)".into()),
                    labels: [Label {
                        key: "environment".into(),
                        value: "prod".into(),
                    }]
                    .into(),
                },
                CatalogItem {
                    id: "srcIos".into(),
                    slug: Some("ios-prod".into()),
                    name: Some("iOS (prod)".into()),
                    labels: [Label {
                        key: "environment".into(),
                        value: "prod".into(),
                    }]
                    .into(),
                },
            ],
            ..Default::default()
        };
        let eng_grants = vec![
            source_grant(SA, "Source Admin", &["srcWeb", "srcIos"]),
            label_grant(SR, "Source Read-only", "environment", "prod"),
            ws_grant(TP, "Tracking Plan Read-only"),
        ];
        let mapping = WorkspaceMapping {
            groups: vec![
                GroupRule {
                    idp_group: GroupRef::Name("Owners".into()),
                    segment_group: None,
                    justification: Some("platform".into()),
                    ticket: None,
                    grants: vec![GrantRule {
                        role: RoleRef::Name("Workspace Owner".into()),
                        scope: GrantScope::Workspace,
                        origin: origin(5),
                    }],
                    origin: origin(3),
                },
                GroupRule {
                    idp_group: GroupRef::Name("Engineers".into()),
                    segment_group: None,
                    justification: None,
                    ticket: None,
                    grants: vec![
                        GrantRule {
                            role: RoleRef::Name("Source Admin".into()),
                            scope: GrantScope::Sources(vec![
                                "web-prod".into(),
                                "iOS (prod)".into(),
                            ]),
                            origin: origin(10),
                        },
                        GrantRule {
                            role: RoleRef::Name("Source Read-only".into()),
                            scope: GrantScope::Labels(
                                [("environment".to_string(), "prod".to_string())].into(),
                            ),
                            origin: origin(13),
                        },
                        GrantRule {
                            role: RoleRef::Id(TP.into()),
                            scope: GrantScope::Workspace,
                            origin: origin(16),
                        },
                    ],
                    origin: origin(8),
                },
            ],
            ..Default::default()
        };
        let snap = WorkspaceSnapshot {
            name: "production".into(),
            id: WS_ID.into(),
            slug: "acme-prod".into(),
            catalog,
            users: ["ana@acme.test", "bob@acme.test", "carol@acme.test"]
                .iter()
                .map(|e| SegmentUser {
                    id: format!("seg-{e}"),
                    email: email(e),
                    name: String::new(),
                    direct: vec![minimal()],
                })
                .collect(),
            groups: vec![
                SegmentGroup {
                    id: "sgOwners".into(),
                    name: "Owners".into(),
                    grants: vec![minimal(), owner()],
                    members: vec![email("ana@acme.test")],
                },
                SegmentGroup {
                    id: "sgEng".into(),
                    name: "Engineers".into(),
                    grants: eng_grants,
                    members: vec![email("bob@acme.test"), email("carol@acme.test")],
                },
            ],
            audit: vec![],
        };
        let idp = IdpSnapshot {
            groups: vec![
                (
                    GroupRef::Name("Owners".into()),
                    GroupRead::Found(IdpGroup {
                        id: "00gOwners".into(),
                        name: "Owners".into(),
                        members: vec![user("ana@acme.test", "ACTIVE")],
                    }),
                ),
                (
                    GroupRef::Name("Engineers".into()),
                    GroupRead::Found(IdpGroup {
                        id: "00gEng".into(),
                        name: "Engineers".into(),
                        members: vec![
                            user("bob@acme.test", "ACTIVE"),
                            user("carol@acme.test", "ACTIVE"),
                        ],
                    }),
                ),
            ],
            lookups: BTreeMap::new(),
            events: vec![],
        };
        Fx {
            ws: WorkspaceConfig {
                name: "production".into(),
                api_url: "http://segment".into(),
                token: Secret::new("t"),
                scim_actors: vec!["scim".into(), "sso".into()],
                automation_actors: vec!["public-api-token/Terra01".into()],
                self_actor: Some("public-api-token/Self01".into()),
                entra_app_id: None,
            },
            mapping,
            snap,
            idp,
            settings: Settings {
                idp: IdpKind::Okta,
                propagation_window: Duration::minutes(60),
                event_lookback: Duration::days(7),
                policy: PolicyConfig::default(),
            },
            now: now(),
        }
    }

    fn run(&self) -> Vec<Finding> {
        evaluate(
            &self.ws,
            &self.mapping,
            &self.snap,
            &self.idp,
            &self.settings,
            self.now,
        )
    }

    /// [`Fx::run`] with the daemon's memory: when it first saw each open finding.
    fn run_remembering(&self, first_seen: &crate::reconcile::FirstSeen) -> Vec<Finding> {
        crate::reconcile::evaluate_remembering(
            &self.ws,
            &self.mapping,
            &self.snap,
            &self.idp,
            &Default::default(),
            &self.settings,
            Some(first_seen),
            self.now,
        )
        .findings
    }

    fn idp_group(&mut self, name: &str) -> &mut IdpGroup {
        self.idp
            .groups
            .iter_mut()
            .find_map(|(_, g)| match g {
                GroupRead::Found(g) if g.name == name => Some(g),
                _ => None,
            })
            .unwrap()
    }

    fn seg_group(&mut self, name: &str) -> &mut SegmentGroup {
        self.snap
            .groups
            .iter_mut()
            .find(|g| g.name == name)
            .unwrap()
    }

    fn seg_user(&mut self, e: &str) -> &mut SegmentUser {
        self.snap
            .users
            .iter_mut()
            .find(|u| u.email == email(e))
            .unwrap()
    }

    fn add_seg_user(&mut self, e: &str) {
        self.snap.users.push(SegmentUser {
            id: format!("seg-{e}"),
            email: email(e),
            name: String::new(),
            direct: vec![],
        });
    }

    fn event(
        &mut self,
        kind: IdpEventKind,
        login: Option<&str>,
        group: Option<&str>,
        minutes_ago: i64,
    ) {
        let n = self.idp.events.len();
        self.idp.events.push(IdpEvent {
            uuid: format!("ev{n}"),
            published: ago(minutes_ago),
            kind,
            user_id: login.map(|l| format!("00u-{l}")),
            user_login: login.map(Email::new),
            group_id: group.map(|g| format!("00g{g}")),
            group_name: group.map(str::to_string),
            actor: Some("okta-admin@acme.test".into()),
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn audit(
        &mut self,
        kind: &str,
        actor: &str,
        actor_email: Option<&str>,
        rtype: &str,
        rid: &str,
        rname: &str,
        minutes_ago: i64,
    ) {
        let n = self.snap.audit.len();
        self.snap.audit.push(AuditEvent {
            id: format!("events/{n}"),
            at: ago(minutes_ago),
            kind: kind.into(),
            actor: actor.into(),
            actor_email: actor_email.map(str::to_string),
            resource_id: rid.into(),
            resource_type: rtype.into(),
            resource_name: rname.into(),
        });
    }
}

fn kinds(f: &[Finding]) -> Vec<(Kind, State, Severity, String)> {
    f.iter()
        .map(|f| (f.kind, f.state, f.severity, f.subject()))
        .collect()
}

fn one(f: &[Finding]) -> &Finding {
    assert_eq!(
        f.len(),
        1,
        "expected exactly one finding, got {:#?}",
        kinds(f)
    );
    &f[0]
}

#[test]
fn clean_fixture_has_no_findings() {
    assert_eq!(kinds(&Fx::new().run()), vec![]);
}

#[test]
fn emails_compare_case_insensitively() {
    let mut fx = Fx::new();
    fx.idp_group("Engineers").members[0] = IdpUser {
        key: Email::new("Bob@ACME.test"),
        ..user("Bob@ACME.test", "ACTIVE")
    };
    fx.seg_group("Engineers").members[0] = email("BOB@acme.TEST");
    assert_eq!(kinds(&fx.run()), vec![]);
}

// ---- groups ----------------------------------------------------------------------------

#[test]
fn group_not_provisioned_hides_membership_missing() {
    let mut fx = Fx::new();
    fx.snap.groups.retain(|g| g.name != "Engineers");
    fx.event(IdpEventKind::GroupCreate, None, Some("Engineers"), 5);
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.state, f.severity),
        (Kind::GroupNotProvisioned, State::Pending, Severity::Warning)
    );
    assert_eq!(f.group.as_deref(), Some("Engineers"));
}

#[test]
fn group_permissions_drift_extra_owner_is_critical_and_missing_only_is_warning() {
    let mut fx = Fx::new();
    fx.seg_group("Engineers").grants.push(owner());
    fx.audit(
        "User Group Policy Updated",
        "public-api-token/Zz99",
        None,
        "user_group",
        "sgEng",
        "Engineers",
        7,
    );
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.severity),
        (Kind::GroupPermissionsDrift, Severity::Critical)
    );
    assert_eq!(f.extra.as_ref().unwrap().len(), 1);
    assert_eq!(f.missing.as_ref().unwrap().len(), 0);
    assert_eq!(f.attribution.as_ref().unwrap().kind, AttributionKind::Token);
    assert!(f.grant.is_none());

    let mut fx = Fx::new();
    fx.seg_group("Engineers").grants.retain(|g| g.role_id != TP);
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.severity),
        (Kind::GroupPermissionsDrift, Severity::Warning)
    );
    assert_eq!(
        f.missing.as_ref().unwrap()[0].role,
        "Tracking Plan Read-only"
    );
}

#[test]
fn split_policies_are_the_same_access() {
    let mut fx = Fx::new();
    let g = fx.seg_group("Engineers");
    g.grants.retain(|x| x.role_id != SA);
    g.grants.push(source_grant(SA, "Source Admin", &["srcWeb"]));
    g.grants.push(source_grant(SA, "Source Admin", &["srcIos"]));
    assert_eq!(kinds(&fx.run()), vec![]);
}

#[test]
fn label_grant_differs_from_all_sources_grant() {
    let mut fx = Fx::new();
    let g = fx.seg_group("Engineers");
    g.grants.retain(|x| x.role_id != SR);
    g.grants.push(ws_grant(SR, "Source Read-only")); // all current and future sources
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.severity),
        (Kind::GroupPermissionsDrift, Severity::Error)
    );
    assert!(f.message.contains("whole workspace"), "{}", f.message);
    assert!(
        f.message.contains("labelled environment:prod"),
        "{}",
        f.message
    );
}

#[test]
fn minimal_workspace_access_is_neutral() {
    let mut fx = Fx::new();
    fx.seg_group("Owners").grants.retain(|g| !g.is_neutral());
    fx.seg_group("Engineers").grants.push(minimal());
    fx.seg_user("bob@acme.test").direct.clear();
    fx.snap.groups.push(SegmentGroup {
        id: "sgX".into(),
        name: "Old team".into(),
        grants: vec![minimal()],
        members: vec![],
    });
    assert_eq!(kinds(&fx.run()), vec![]);
}

#[test]
fn unmapped_group_with_grants() {
    let mut fx = Fx::new();
    fx.snap.groups.push(SegmentGroup {
        id: "sgX".into(),
        name: "Contractors".into(),
        grants: vec![owner()],
        members: vec![],
    });
    fx.audit(
        "User Group Created",
        "public-api-token/Terra01",
        None,
        "user_group",
        "sgX",
        "Contractors",
        60,
    );
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.severity),
        (Kind::UnmappedGroup, Severity::Critical)
    );
    assert_eq!(
        f.attribution.as_ref().unwrap().kind,
        AttributionKind::Automation
    );
}

// ---- unmanaged users, allow-list, several groups ---------------------------------------

#[test]
fn unmanaged_user_allow_list_and_ignore_policy() {
    let mut fx = Fx::new();
    fx.add_seg_user("svc@acme.test");
    fx.audit(
        "User Added via SSO",
        "sso/jit",
        None,
        "user",
        "seg-svc@acme.test",
        "svc@acme.test",
        100,
    );
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.state, f.severity),
        (Kind::UnmanagedUser, State::Drift, Severity::Warning)
    );
    assert_eq!(f.attribution.as_ref().unwrap().kind, AttributionKind::Scim);

    fx.mapping.policy = Some((
        PolicyConfig {
            allow: Some(vec![email("SVC@acme.test")]),
            ..Default::default()
        },
        origin(50),
    ));
    assert_eq!(kinds(&fx.run()), vec![]);

    fx.mapping.policy = Some((
        PolicyConfig {
            unmanaged_users: Some(UnmanagedUsers::Ignore),
            ..Default::default()
        },
        origin(50),
    ));
    assert_eq!(kinds(&fx.run()), vec![]);
}

#[test]
fn user_in_several_groups_removed_from_one() {
    let mut fx = Fx::new();
    // ana is in both groups in the IdP and in Segment; the IdP drops her from Engineers.
    fx.idp_group("Engineers")
        .members
        .push(user("ana@acme.test", "ACTIVE"));
    fx.seg_group("Engineers")
        .members
        .push(email("ana@acme.test"));
    assert_eq!(kinds(&fx.run()), vec![]);
    fx.idp_group("Engineers")
        .members
        .retain(|m| m.login != "ana@acme.test");
    fx.event(
        IdpEventKind::MembershipRemove,
        Some("ana@acme.test"),
        Some("Engineers"),
        1,
    );
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.state, f.group.as_deref()),
        (
            Kind::MembershipUnexpected,
            State::Pending,
            Some("Engineers")
        )
    );
}

#[test]
fn membership_unexpected_hides_unmanaged_user() {
    let mut fx = Fx::new();
    fx.add_seg_user("mallory@acme.test");
    fx.seg_group("Engineers")
        .members
        .push(email("mallory@acme.test"));
    let f = fx.run();
    assert_eq!(one(&f).kind, Kind::MembershipUnexpected);
}

#[test]
fn deactivated_hides_membership_unexpected_and_unmanaged_but_not_direct_grant() {
    let mut fx = Fx::new();
    fx.idp_group("Owners").members[0] = user("ana@acme.test", "DEPROVISIONED");
    fx.seg_user("ana@acme.test").direct.push(owner());
    let f = fx.run();
    let mut k: Vec<Kind> = f.iter().map(|f| f.kind).collect();
    k.sort();
    assert_eq!(k, vec![Kind::DeactivatedUserPresent, Kind::DirectGrant]);
}

// ---- attribution kinds -----------------------------------------------------------------

#[test]
fn attribution_kinds_first_match_wins() {
    use classify::attribution_kind as k;
    let auto = vec!["public-api-token/Terra01".to_string()];
    let scim = vec!["scim".to_string(), "sso".to_string()];
    let s = Some("public-api-token/Self01");
    assert_eq!(k("user/u1", None, s, &auto, &scim), AttributionKind::Human);
    assert_eq!(
        k("scim/sso-sync", Some("a@b.c"), s, &auto, &scim),
        AttributionKind::Human
    );
    assert_eq!(
        k("public-api-token/Self01", None, s, &auto, &scim),
        AttributionKind::SelfActor
    );
    assert_eq!(
        k("public-api-token/Terra01", None, s, &auto, &scim),
        AttributionKind::Automation
    );
    assert_eq!(
        k("SCIM/SSO-Sync", None, s, &auto, &scim),
        AttributionKind::Scim
    );
    assert_eq!(
        k("public-api-token/Other", None, s, &auto, &scim),
        AttributionKind::Token
    );
}

#[test]
fn self_attribution_on_a_finding() {
    let mut fx = Fx::new();
    fx.seg_user("bob@acme.test")
        .direct
        .push(source_grant(SA, "Source Admin", &["srcWeb"]));
    fx.audit(
        "Policy Created",
        "public-api-token/Self01",
        None,
        "user",
        "seg-bob@acme.test",
        "bob@acme.test",
        2,
    );
    let f = fx.run();
    assert_eq!(
        one(&f).attribution.as_ref().unwrap().kind,
        AttributionKind::SelfActor
    );
    assert!(one(&f).message.contains("scimwatch's own token"));
}

// ---- mapping_unresolved ----------------------------------------------------------------

#[test]
fn unresolved_names_become_findings_and_silence_what_depends_on_them() {
    let mut fx = Fx::new();
    fx.mapping.groups[1].grants[0].role = RoleRef::Name("Sorce Admin".into());
    fx.seg_group("Engineers").grants.push(owner()); // not checked: the grants did not resolve
    let f = fx.run();
    let f = one(&f);
    assert_eq!(
        (f.kind, f.severity, f.state),
        (Kind::MappingUnresolved, Severity::Error, State::Drift)
    );
    let m = f.mapping.as_ref().unwrap();
    assert_eq!(
        (m.file.as_str(), m.line, m.name.as_str()),
        ("mappings/production.toml", 10, "Sorce Admin")
    );
    assert!(
        f.message.contains("did you mean \"Source Admin\""),
        "{}",
        f.message
    );
}

#[test]
fn unresolved_idp_group_says_nothing_about_its_mirror_or_members() {
    let mut fx = Fx::new();
    fx.idp.groups[1].1 = GroupRead::Unresolved {
        reason: "no Okta group is named \"Engineers\"".into(),
    };
    fx.seg_group("Engineers")
        .members
        .push(email("ana@acme.test"));
    fx.seg_group("Engineers").grants.push(owner());
    let f = fx.run();
    let f = one(&f);
    assert_eq!(f.kind, Kind::MappingUnresolved);
}

#[test]
fn unresolved_source_and_label() {
    let mut fx = Fx::new();
    fx.mapping.groups[1].grants[0].scope = GrantScope::Sources(vec!["web-prd".into()]);
    fx.mapping.groups[1].grants[1].scope =
        GrantScope::Labels([("environment".to_string(), "prd".to_string())].into());
    let f = fx.run();
    assert_eq!(f.len(), 2, "{:#?}", kinds(&f));
    assert!(f.iter().all(|f| f.kind == Kind::MappingUnresolved));
    assert!(f.iter().any(|f| f.message.contains("web-prod")));
}

#[test]
fn findings_sort_drift_first_then_severity() {
    let mut fx = Fx::new();
    fx.idp_group("Owners")
        .members
        .push(user("dan@acme.test", "ACTIVE"));
    fx.event(
        IdpEventKind::MembershipAdd,
        Some("dan@acme.test"),
        Some("Owners"),
        1,
    );
    fx.seg_user("bob@acme.test").direct.push(owner());
    fx.add_seg_user("x@acme.test");
    let f = fx.run();
    let order: Vec<(State, Severity)> = f.iter().map(|f| (f.state, f.severity)).collect();
    assert_eq!(
        order,
        vec![
            (State::Drift, Severity::Critical),
            (State::Drift, Severity::Warning),
            (State::Pending, Severity::Warning)
        ]
    );
}

// ---- what people read ----------------------------------------------------------------

/// A fixture with one finding of most kinds, for the snapshots of the table and the JSON.
fn busy() -> Fx {
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
    fx.seg_group("Owners")
        .members
        .push(email("carol@acme.test"));
    fx.audit(
        "User Added To User Group",
        "user/u8Kd2",
        Some("eve@acme.test"),
        "user_group",
        "sgOwners",
        "Owners",
        5,
    );
    fx.seg_group("Engineers").grants.retain(|g| g.role_id != TP);
    fx.add_seg_user("contractor@ext.test");
    fx.snap.groups.push(SegmentGroup {
        id: "sgX".into(),
        name: "Contractors".into(),
        grants: vec![source_grant(SA, "Source Admin", &["srcWeb"])],
        members: vec![],
    });
    fx.mapping.groups[1].grants[0].role = RoleRef::Name("Sorce Admin".into());
    fx
}

#[test]
fn text_table_snapshot() {
    let fx = busy();
    let report = crate::output::Report {
        generated_at: fx.now,
        idp: IdpKind::Okta,
        workspaces: vec![crate::output::WorkspaceSummary {
            name: "production".into(),
            users: 4,
            groups: 3,
        }],
        findings: fx.run(),
    };
    assert_eq!(report.exit_code(), 1);
    insta::assert_snapshot!(crate::output::text(&report));
}

#[test]
fn json_document_snapshot() {
    let fx = busy();
    let report = crate::output::Report {
        generated_at: fx.now,
        idp: IdpKind::Okta,
        workspaces: vec![crate::output::WorkspaceSummary {
            name: "production".into(),
            users: 4,
            groups: 3,
        }],
        findings: fx.run(),
    };
    insta::assert_snapshot!(crate::output::json(&report));
}

#[test]
fn clean_report_text() {
    let report = crate::output::Report {
        generated_at: now(),
        idp: IdpKind::Okta,
        workspaces: vec![crate::output::WorkspaceSummary {
            name: "production".into(),
            users: 3,
            groups: 2,
        }],
        findings: Fx::new().run(),
    };
    assert_eq!(report.exit_code(), 0);
    insta::assert_snapshot!(crate::output::text(&report));
}

fn exception(
    user: &str,
    grants: Vec<GrantRule>,
    groups: Vec<&str>,
    expires: DateTime<Utc>,
) -> ExceptionRule {
    ExceptionRule {
        user: email(user),
        grants,
        groups: groups.into_iter().map(str::to_string).collect(),
        expires,
        ticket: "CHG-1".into(),
        approved_by: "ciso@acme.test".into(),
        reason: "sprint".into(),
        origin: origin(40),
    }
}

mod enforce;
mod entra;
mod governance;
mod grants;
mod membership;
mod report;
mod suppress;
