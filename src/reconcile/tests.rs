//! Table tests for the pure core: resolve → diff → classify through [`evaluate`].
//!
//! Each test starts from a clean fixture (a workspace exactly as its mapping wants it)
//! and changes one thing.

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
    assert!(f.message.contains("latest of 2"), "{}", f.message);
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

// ---- direct grants and exceptions ------------------------------------------------------

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

mod governance;
mod report;
