//! The access review through the pure core: the numbers of a known story, and snapshots of
//! the Markdown and CSV people and spreadsheets read.

use super::*;
use crate::report::{self, AccessReview, ChangeLogSource};
use crate::store::ChangeRecord;

/// ana owns through the justified Owners mapping; bob is in Owners by hand under an
/// expiring exception and holds a direct grant nothing covers; omar holds Workspace Owner
/// directly under an expired exception; dan@gmail.test is in no group.
fn story() -> Fx {
    let mut fx = Fx::new();
    fx.settings.policy.corporate_domains = Some(vec!["acme.test".into()]);
    fx.seg_group("Owners").members.push(email("bob@acme.test"));
    let mut membership = exception(
        "bob@acme.test",
        vec![],
        vec!["Owners"],
        now() + Duration::hours(30),
    );
    membership.ticket = "CHG-2".into();
    membership.reason = "Migration week".into();
    fx.mapping.exceptions.push(membership);
    fx.seg_user("bob@acme.test")
        .direct
        .push(source_grant(SR, "Source Read-only", &["srcIos"]));
    fx.add_seg_user("omar@acme.test");
    fx.seg_user("omar@acme.test").direct.push(owner());
    let mut expired = exception(
        "omar@acme.test",
        vec![GrantRule {
            role: RoleRef::Name("Workspace Owner".into()),
            scope: GrantScope::Workspace,
            origin: origin(44),
        }],
        vec![],
        now() - Duration::days(2),
    );
    expired.ticket = "CHG-3".into();
    fx.mapping.exceptions.push(expired);
    fx.add_seg_user("dan@gmail.test");
    fx
}

fn changes() -> Vec<ChangeRecord> {
    let rec = |ws: &str, min: i64, latency_s: Option<i64>| ChangeRecord {
        at: ago(min),
        workspace: ws.into(),
        user: "bob@acme.test".into(),
        latency_ms: latency_s.map(|s| s * 1000),
        ..Default::default()
    };
    vec![
        rec("production", 600, Some(30)),
        rec("production", 500, Some(120)),
        rec("production", 400, Some(600)),
        rec("production", 300, Some(2700)),
        rec("production", 200, Some(10_800)),
        rec("production", 100, None),
        // Another workspace's and one older than the window: not counted.
        rec("staging", 100, Some(5)),
        rec("production", 60 * 24 * 100, Some(99_999)),
    ]
}

fn review(fx: &Fx) -> AccessReview {
    let inputs = [crate::explain::WorkspaceInput {
        config: &fx.ws,
        mapping: &fx.mapping,
        snapshot: &fx.snap,
    }];
    let read = report::Read {
        idp_kind: IdpKind::Okta,
        idp: &fx.idp,
        workspaces: &inputs,
    };
    let since = fx.now - Duration::days(90);
    report::build(
        &read,
        &fx.settings,
        ChangeLogSource::Read {
            path: "/var/lib/scimwatch/scimwatch.db".into(),
            records: 7,
        },
        &changes(),
        since,
        fx.now,
    )
}

#[test]
fn the_review_of_a_known_story_has_the_known_numbers() {
    let r = review(&story());
    assert_eq!(r.workspaces.len(), 1);
    let w = &r.workspaces[0];
    let members: Vec<&str> = w.members.iter().map(|m| m.email.as_str()).collect();
    assert_eq!(
        members,
        vec![
            "ana@acme.test",
            "bob@acme.test",
            "carol@acme.test",
            "dan@gmail.test",
            "omar@acme.test"
        ]
    );
    assert!(w.members[3].grants.is_empty(), "dan: minimal access only");
    let owners: Vec<(&str, &str, bool)> = w
        .owners
        .iter()
        .map(|o| (o.email.as_str(), o.via.as_str(), o.justified))
        .collect();
    assert_eq!(
        owners,
        vec![
            ("ana@acme.test", "group Owners", true),
            ("bob@acme.test", "group Owners", true),
            ("omar@acme.test", "direct", false),
        ]
    );
    assert_eq!(w.owners[0].basis, "justification: platform");
    assert!(w.owners[1]
        .basis
        .starts_with("exception CHG-2 approved by ciso@acme.test until "));
    let over: Vec<(&str, &str)> = w
        .over_privileged
        .iter()
        .map(|f| (f.email.as_str(), f.kind))
        .collect();
    assert_eq!(
        over,
        vec![
            ("omar@acme.test", "exception_expired"),
            ("bob@acme.test", "direct_grant"),
            ("dan@gmail.test", "unmanaged_user"),
        ]
    );
    let personal: Vec<&str> = w
        .personal_accounts
        .as_ref()
        .unwrap()
        .iter()
        .map(|f| f.email.as_str())
        .collect();
    assert_eq!(personal, vec!["dan@gmail.test"]);
    let exceptions: Vec<(&str, i64, &str)> = w
        .exceptions
        .iter()
        .map(|e| (e.ticket.as_str(), e.days_left, e.status))
        .collect();
    assert_eq!(
        exceptions,
        vec![("CHG-3", -2, "expired"), ("CHG-2", 1, "expiring")]
    );
    // 30 s, 2 min, 10 min, 45 min, 3 h: p50 the 3rd, p95 the 5th.
    assert_eq!(w.latency.samples, 5);
    assert_eq!(w.latency.p50_ms, Some(600_000));
    assert_eq!(w.latency.p95_ms, Some(10_800_000));
    assert_eq!(w.latency.buckets, vec![1, 1, 1, 0, 1, 0, 1]);
    let by_kind = w.findings_by_kind();
    assert_eq!(by_kind.get("exception_expiring"), Some(&1));
    assert_eq!(by_kind.values().sum::<usize>(), w.findings.len());

    // No corporate_domains: personal accounts are not checked, and the review says so.
    let mut fx = story();
    fx.settings.policy.corporate_domains = None;
    let r = review(&fx);
    assert_eq!(r.workspaces[0].personal_accounts, None);
    assert!(report::render::markdown(&r)
        .contains("Not checked: no `corporate_domains` for this workspace."));
}

#[test]
fn review_markdown_snapshot() {
    insta::assert_snapshot!(report::render::markdown(&review(&story())));
}

#[test]
fn review_csv_snapshot() {
    insta::assert_snapshot!(report::render::csv(&review(&story())));
}

#[test]
fn review_html_is_self_contained_and_escapes() {
    let mut fx = story();
    fx.mapping.exceptions[0].reason = "<script>alert(1)</script> & co".into();
    let html = report::html::html(&review(&fx));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"));
    assert!(!html.contains("<script"), "no script at all");
    for external in ["src=", "href=", "@import", "url("] {
        assert!(!html.contains(external), "fetches nothing: {external}");
    }
    assert!(html.contains("@media print") && html.contains("<svg"));
}
