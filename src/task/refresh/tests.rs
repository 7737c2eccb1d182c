//! Table tests of the rolling-refresh planner: spreading, coverage, order, caps, budget,
//! clock going backwards, huge inputs.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
}

fn user(ws: &str, i: usize) -> Subject {
    Subject::new(SubjectKind::SegmentUserPermissions, ws, &format!("u{i}"))
}

fn known(s: Subject, last_read: Option<DateTime<Utc>>) -> Known {
    Known {
        subject: s,
        last_read,
        cost: 1,
    }
}

/// A mixed org: `n` Segment users in "prod", n/10 IdP users, a few groups, one catalog.
fn org(n: usize) -> Vec<Known> {
    let mut v: Vec<Known> = (0..n).map(|i| known(user("prod", i), None)).collect();
    for i in 0..n / 10 {
        v.push(known(
            Subject::new(SubjectKind::IdpUser, "", &format!("okta{i}")),
            None,
        ));
    }
    for i in 0..5 {
        v.push(known(
            Subject::new(SubjectKind::IdpGroupMembers, "", &format!("g{i}")),
            None,
        ));
        v.push(known(
            Subject::new(SubjectKind::SegmentGroup, "prod", &format!("sg{i}")),
            None,
        ));
    }
    v.push(known(
        Subject::new(SubjectKind::Catalog, "prod", "catalog"),
        None,
    ));
    v
}

fn input<'a>(now: DateTime<Utc>, subjects: &'a [Known]) -> Input<'a> {
    Input {
        now,
        full_refresh: Duration::from_secs(3600),
        interval: Duration::from_secs(300),
        budget: 1_000_000,
        subjects,
        carried: &[],
        events: &[],
        open: &[],
        open_findings_per_tick: 100,
        front: &[],
    }
}

/// Marks the plan's reads as read at `now`.
fn apply(subjects: &mut [Known], plan: &Plan, now: DateTime<Utc>) {
    let read: std::collections::HashSet<&Subject> = plan.reads.iter().map(|(s, _)| s).collect();
    for k in subjects.iter_mut() {
        if read.contains(&k.subject) {
            k.last_read = Some(now);
        }
    }
}

fn whys(plan: &Plan) -> Vec<Why> {
    plan.reads.iter().map(|(_, w)| *w).collect()
}

#[test]
fn share_and_ticks_per_window_table() {
    let h = |n: u64| Duration::from_secs(n * 3600);
    let m = |n: u64| Duration::from_secs(n * 60);
    // (full_refresh, interval, total) → (ticks, share)
    let cases = [
        (h(12), m(5), 10_000, 144, 70),
        (h(1), m(5), 12, 12, 1),
        (h(1), m(5), 13, 12, 2),
        (h(1), m(5), 0, 12, 0),
        // interval longer than the window: everything every tick
        (m(1), m(5), 500, 1, 500),
        // a window that is not a whole number of ticks rounds the ticks down
        (m(14), m(5), 10, 2, 5),
        (Duration::from_secs(1), Duration::ZERO, 3, 1000, 1),
    ];
    for (fr, iv, total, ticks, sh) in cases {
        assert_eq!(ticks_per_window(fr, iv), ticks, "{fr:?}/{iv:?}");
        assert_eq!(share(total, ticks), sh, "{fr:?}/{iv:?} total {total}");
    }
}

#[test]
fn spreading_no_tick_reads_more_than_its_share_plus_events() {
    let mut subjects = org(1000); // 1000 + 100 + 11 = 1111; 12 ticks → share 93
    let events = [user("prod", 3), user("prod", 999)];
    let mut now = t0();
    for tick in 0..30 {
        let mut i = input(now, &subjects);
        if tick % 3 == 0 {
            i.events = &events;
        }
        let p = plan(&i);
        assert_eq!(p.share, 93);
        let rolling = whys(&p).iter().filter(|w| **w == Why::Rolling).count();
        assert!(rolling <= p.share, "tick {tick}: {rolling} > {}", p.share);
        let ev = if tick % 3 == 0 { events.len() } else { 0 };
        assert!(
            p.reads.len() <= p.share + ev,
            "tick {tick}: {}",
            p.reads.len()
        );
        apply(&mut subjects, &p, now);
        now += chrono::Duration::seconds(300);
    }
}

#[test]
fn coverage_every_subject_is_read_within_full_refresh() {
    // Staggered start: some read long ago, some recently, some never; events now and then.
    let mut subjects = org(700);
    for (n, k) in subjects.iter_mut().enumerate() {
        k.last_read = match n % 3 {
            0 => None,
            1 => Some(t0() - chrono::Duration::seconds((n as i64 * 7) % 3600)),
            _ => Some(t0() - chrono::Duration::seconds(30)),
        };
    }
    let fr = 3600i64;
    let mut now = t0();
    let mut last: BTreeMap<Subject, DateTime<Utc>> = BTreeMap::new();
    let events = [user("prod", 1)];
    for tick in 0..100 {
        let mut i = input(now, &subjects);
        if tick % 5 == 0 {
            i.events = &events;
        }
        let p = plan(&i);
        apply(&mut subjects, &p, now);
        for (s, _) in &p.reads {
            last.insert(s.clone(), now);
        }
        // After the first window every subject has been read within the last full_refresh.
        if tick >= 12 {
            for k in &subjects {
                let at = k.last_read.expect("read within the first window");
                assert!(
                    (now - at).num_seconds() < fr,
                    "tick {tick}: {:?} last read {}s ago",
                    k.subject,
                    (now - at).num_seconds()
                );
            }
            assert_eq!(p.progress.behind_by, Duration::ZERO, "tick {tick}");
        }
        now += chrono::Duration::seconds(300);
    }
    assert_eq!(last.len(), subjects.len());
}

#[test]
fn events_first_then_open_findings_then_rolling() {
    let subjects = org(50);
    let ev = [user("prod", 40)];
    let open = [OpenSubject {
        subject: user("prod", 30),
        severity: Severity::Error,
    }];
    let mut i = input(t0(), &subjects);
    i.events = &ev;
    i.open = &open;
    let p = plan(&i);
    assert_eq!(p.reads[0], (user("prod", 40), Why::Event));
    assert_eq!(p.reads[1], (user("prod", 30), Why::OpenFinding));
    assert!(p.reads[2..].iter().all(|(_, w)| *w == Why::Rolling));
    // No subject twice, even when an event names an open finding's subject.
    let ev2 = [user("prod", 30), user("prod", 30)];
    i.events = &ev2;
    let p = plan(&i);
    let n30 = p
        .reads
        .iter()
        .filter(|(s, _)| *s == user("prod", 30))
        .count();
    assert_eq!(n30, 1);
    assert_eq!(p.reads[0].1, Why::Event);
}

#[test]
fn open_findings_capped_most_severe_first_and_rotated() {
    let subjects: Vec<Known> = (0..10)
        .map(|i| known(user("prod", i), Some(t0() - chrono::Duration::seconds(60))))
        .collect();
    let sev = |i: usize| match i {
        0 | 1 => Severity::Critical,
        2..=4 => Severity::Error,
        _ => Severity::Warning,
    };
    let open: Vec<OpenSubject> = (0..10)
        .map(|i| OpenSubject {
            subject: user("prod", i),
            severity: sev(i),
        })
        .collect();
    let mut subjects = subjects;
    let mut now = t0();
    let mut seen_error = std::collections::BTreeSet::new();
    for tick in 0..4 {
        let mut i = input(now, &subjects);
        i.full_refresh = Duration::from_secs(7 * 86_400); // rolling share of 1
        i.open = &open;
        i.open_findings_per_tick = 3;
        let p = plan(&i);
        let of: Vec<&Subject> = p
            .reads
            .iter()
            .filter(|(_, w)| *w == Why::OpenFinding)
            .map(|(s, _)| s)
            .collect();
        assert_eq!(of.len(), 3, "tick {tick}");
        assert_eq!(p.open_deferred, 7);
        // The two criticals every tick, first.
        assert_eq!(
            of[0..2],
            [&user("prod", 0), &user("prod", 1)],
            "tick {tick}"
        );
        // The third slot rotates among the errors (read longest ago first).
        let third = of[2].clone();
        assert!(matches!(
            sev(third.id[1..].parse().unwrap()),
            Severity::Error
        ));
        seen_error.insert(third);
        apply(&mut subjects, &p, now);
        now += chrono::Duration::seconds(300);
    }
    assert_eq!(seen_error.len(), 3, "each error took its turn");
}

#[test]
fn budget_carries_events_over_and_says_so() {
    let subjects = org(100);
    let events: Vec<Subject> = (0..10).map(|i| user("prod", i)).collect();
    let mut i = input(t0(), &subjects);
    i.events = &events;
    i.budget = 4;
    let p = plan(&i);
    assert_eq!(p.reads.len(), 4);
    assert_eq!(p.cost, 4);
    assert!(whys(&p).iter().all(|w| *w == Why::Event));
    assert_eq!(p.carried, events[4..].to_vec());
    assert_eq!(p.rolling_short, p.share);
    let note = p.note().expect("a tick over budget says so");
    assert!(note.contains("6 event subject(s) carried"), "{note}");

    // Next tick: the carried ones come first, before new events.
    let new_ev = [user("prod", 50)];
    let mut i2 = input(t0() + chrono::Duration::seconds(300), &subjects);
    i2.carried = &p.carried;
    i2.events = &new_ev;
    i2.budget = 100;
    let p2 = plan(&i2);
    let firsts: Vec<&Subject> = p2.reads.iter().take(6).map(|(s, _)| s).collect();
    assert_eq!(firsts, events[4..].iter().collect::<Vec<_>>());
    assert_eq!(p2.reads[6], (user("prod", 50), Why::Event));
    assert!(p2.carried.is_empty());
    assert!(p2.note().is_none(), "{:?}", p2.note());

    // Costs count: a subject costing 3 requests takes 3 of the budget.
    let mut costly = org(10);
    for k in costly.iter_mut() {
        k.cost = 3;
    }
    let mut i3 = input(t0(), &costly);
    i3.budget = 7;
    let p3 = plan(&i3);
    assert_eq!((p3.reads.len(), p3.cost), (2, 6));

    // A subject over the whole budget still goes when it is first: progress every tick.
    let mut i4 = input(t0(), &costly);
    i4.budget = 1;
    let p4 = plan(&i4);
    assert_eq!((p4.reads.len(), p4.cost), (1, 3));
}

#[test]
fn never_read_first_then_oldest() {
    let subjects = vec![
        known(user("prod", 1), Some(t0() - chrono::Duration::seconds(100))),
        known(user("prod", 2), None),
        known(user("prod", 3), Some(t0() - chrono::Duration::seconds(900))),
        known(user("prod", 4), Some(t0() - chrono::Duration::seconds(10))),
    ];
    let mut i = input(t0(), &subjects);
    i.full_refresh = Duration::from_secs(600); // 2 ticks → share 2
    let p = plan(&i);
    let ids: Vec<&str> = p.reads.iter().map(|(s, _)| s.id.as_str()).collect();
    assert_eq!(ids, ["u2", "u3"]);
    assert_eq!(p.progress.behind_by, Duration::from_secs(300));
    let seg = &p.progress.kinds[2];
    assert_eq!(seg.kind, SubjectKind::SegmentUserPermissions);
    assert_eq!(
        (seg.subjects, seg.never_read, seg.oldest_read_age),
        (4, 1, Some(Duration::from_secs(900)))
    );
    assert_eq!(p.progress.read_this_window, 2);
}

#[test]
fn clock_going_backwards_is_harmless() {
    // Reads stamped an hour in the future of `now`: ages are zero, nothing panics, and
    // they do not jump ahead of genuinely old reads.
    let future = t0() + chrono::Duration::seconds(3600);
    let subjects = vec![
        known(user("prod", 1), Some(future)),
        known(user("prod", 2), Some(t0() - chrono::Duration::seconds(200))),
        known(user("prod", 3), Some(future)),
    ];
    let mut i = input(t0(), &subjects);
    i.full_refresh = Duration::from_secs(900); // 3 ticks → share 1
    let p = plan(&i);
    assert_eq!(p.reads, vec![(user("prod", 2), Why::Rolling)]);
    assert_eq!(p.progress.behind_by, Duration::ZERO);
    assert_eq!(p.progress.read_this_window, 3);
    let seg = &p.progress.kinds[2];
    assert_eq!(seg.oldest_read_age, Some(Duration::from_secs(200)));
    // A front request dated in the future is answered by nothing yet, and still bounded.
    let front = [FrontRequest {
        workspace: "prod".into(),
        since: future + chrono::Duration::seconds(1),
    }];
    i.front = &front;
    let p = plan(&i);
    assert!(p.reads.len() <= 2 * p.share);
}

#[test]
fn front_of_queue_moves_a_workspace_users_forward_without_a_burst() {
    let mut subjects: Vec<Known> = (0..40)
        .map(|i| known(user("prod", i), Some(t0() - chrono::Duration::seconds(60))))
        .collect();
    // Older reads elsewhere that the rolling share would take first.
    for i in 0..40 {
        subjects.push(known(
            user("staging", i),
            Some(t0() - chrono::Duration::seconds(3000)),
        ));
    }
    let front = [FrontRequest {
        workspace: "prod".into(),
        since: t0() - chrono::Duration::seconds(1),
    }];
    let mut now = t0();
    let mut ticks = 0;
    loop {
        let mut i = input(now, &subjects);
        i.front = &front;
        let p = plan(&i); // 80 subjects, 12 ticks → share 7
        let fr: Vec<&Subject> = p
            .reads
            .iter()
            .filter(|(_, w)| *w == Why::Front)
            .map(|(s, _)| s)
            .collect();
        assert!(fr.len() <= p.share, "no burst: {}", fr.len());
        assert!(fr.iter().all(|s| s.workspace == "prod"));
        let rolling = whys(&p).iter().filter(|w| **w == Why::Rolling).count();
        assert_eq!(
            rolling, p.share,
            "the rolling share is not eaten by the front"
        );
        apply(&mut subjects, &p, now);
        ticks += 1;
        if p.front_done == ["prod"] {
            break;
        }
        assert!(ticks < 10, "the front request must finish");
        now += chrono::Duration::seconds(300);
    }
    assert_eq!(ticks, 6); // ceil(40 / 7)
}

#[test]
fn huge_inputs_are_bounded() {
    let n = 200_000;
    let subjects = org(n);
    let events: Vec<Subject> = (0..300_000).map(|i| user("prod", i % (n + 5))).collect();
    let open: Vec<OpenSubject> = (0..50_000)
        .map(|i| OpenSubject {
            subject: user("prod", i),
            severity: Severity::Warning,
        })
        .collect();
    let mut i = input(t0(), &subjects);
    i.events = &events;
    i.open = &open;
    i.open_findings_per_tick = 10_000;
    i.budget = 1000;
    let p = plan(&i);
    assert_eq!(p.reads.len(), 1000);
    assert!(p.carried.len() <= MAX_CARRY);
    assert!(p.dropped > 0);
    assert!(p.note().expect("over budget").contains("carry limit"));
    // Without events: the open findings are capped and the rolling share is bounded.
    i.events = &[];
    i.budget = u64::MAX;
    let p = plan(&i);
    let of = whys(&p).iter().filter(|w| **w == Why::OpenFinding).count();
    assert_eq!(of, 10_000);
    assert_eq!(p.open_deferred, 40_000);
    assert!(p.reads.len() <= 10_000 + p.share);
}
