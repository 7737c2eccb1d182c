//! The chain walk, table-tested: every way of tampering with a row, a wrong key, anchors
//! over unchained rows, prunes.

use super::*;
use crate::secret::Secret;

fn key() -> ChainKey {
    ChainKey::new(&Secret::new("0123456789abcdef-test-key"))
}

fn change(id: i64, user: &str) -> ChainRow {
    ChainRow {
        id,
        kind: "change".into(),
        at: format!("2026-11-01T12:00:{id:02}.000000000Z"),
        workspace: "production".into(),
        user: user.into(),
        before: "groups: none; direct: none".into(),
        after: "groups: Segment Marketing; direct: none".into(),
        attribution: Some("scim".into()),
        latency_ms: Some(4200),
        ..Default::default()
    }
}

/// Seals rows in order the way the store does: an anchor over the unchained rows that
/// precede the first chained one.
fn chain(unchained: &[ChainRow], chained: &[ChainRow]) -> Vec<ChainRow> {
    let k = key();
    let mut out: Vec<ChainRow> = unchained.to_vec();
    let mut pending = Pending::default();
    for r in unchained {
        pending.push(r);
    }
    let anchor_id = out.last().map_or(1, |r| r.id + 1);
    let anchor = seal(
        &k,
        ChainRow {
            id: anchor_id,
            kind: "anchor".into(),
            at: "2026-11-01T12:01:00.000000000Z".into(),
            detail: Some(serde_json::to_string(&pending.detail()).unwrap()),
            ..Default::default()
        },
        None,
    );
    let mut prev = anchor.mac.clone();
    out.push(anchor);
    for (i, r) in chained.iter().enumerate() {
        let mut r = r.clone();
        r.id = anchor_id + 1 + i as i64;
        let r = seal(&k, r, prev.take());
        prev.clone_from(&r.mac);
        out.push(r);
    }
    out
}

fn verify(rows: &[ChainRow]) -> Verdict {
    verify_with(&key(), rows)
}

fn verify_with(k: &ChainKey, rows: &[ChainRow]) -> Verdict {
    let prune = rows.iter().rev().find(|r| r.kind == "prune");
    let mut v = match Verifier::new(k, prune) {
        Ok(v) => v,
        Err(v) => return v,
    };
    for r in rows {
        if let Err(e) = v.push(r) {
            return e;
        }
    }
    v.finish()
}

fn broken_at(v: &Verdict) -> Option<(i64, String)> {
    match v {
        Verdict::Broken { id, what, .. } => Some((*id, what.clone())),
        _ => None,
    }
}

fn sample() -> Vec<ChainRow> {
    chain(
        &[change(1, "old@x.test"), change(2, "older@x.test")],
        &[
            change(0, "a@x.test"),
            change(0, "b@x.test"),
            change(0, "c@x.test"),
            change(0, "d@x.test"),
        ],
    )
}

#[test]
fn an_untouched_chain_is_intact_and_reports_its_head() {
    let rows = sample();
    match verify(&rows) {
        Verdict::Intact(s) => {
            assert_eq!((s.rows, s.chained, s.anchored), (7, 5, 2));
            assert_eq!(s.head.as_ref().map(|h| h.0), Some(7));
            assert_eq!(s.head.map(|h| h.1), rows[6].mac.clone());
        }
        v => panic!("{v:?}"),
    }
    assert_eq!(verify(&[]), Verdict::Intact(Summary::default()));
}

#[test]
fn each_kind_of_tampering_is_found_at_its_row() {
    type Tamper = fn(&mut Vec<ChainRow>);
    let cases: Vec<(&str, Tamper, i64, &str)> = vec![
        (
            "edit a chained row",
            |r| r[4].after = "groups: Owners; direct: none".into(),
            5,
            "edited",
        ),
        (
            "edit its time",
            |r| r[3].at = "2020-01-01T00:00:00.000000000Z".into(),
            4,
            "edited",
        ),
        (
            "clear an optional field",
            |r| r[5].attribution = None,
            6,
            "edited",
        ),
        (
            "edit a pre-chain row",
            |r| r[0].user = "mallory@x.test".into(),
            3,
            "not those it committed to",
        ),
        (
            "delete a pre-chain row",
            |r| {
                r.remove(1);
            },
            3,
            "not those it committed to",
        ),
        (
            "delete a chained row",
            |r| {
                r.remove(4);
            },
            6,
            "does not link",
        ),
        (
            "swap two chained rows",
            |r| {
                let (a, b) = (r[4].clone(), r[5].clone());
                r[4] = ChainRow { id: 5, ..b };
                r[5] = ChainRow { id: 6, ..a };
            },
            5,
            "does not link",
        ),
        (
            "delete the start",
            |r| {
                r.drain(..3);
            },
            4,
            "not in the log",
        ),
        (
            "append an unchained row",
            |r| r.push(change(8, "mallory@x.test")),
            8,
            "carry no MAC",
        ),
        (
            "insert an unchained row in the middle",
            |r| r.insert(4, change(40, "mallory@x.test")),
            40,
            "no anchor covers it",
        ),
        (
            "strip a MAC",
            |r| {
                r[5].mac = None;
                r[5].key_id = None;
            },
            6,
            "no anchor covers it",
        ),
        (
            "forge a MAC with another key",
            |r| {
                let other = ChainKey::new(&Secret::new("another-key-of-16-bytes"));
                let mut row = r[4].clone();
                row.after = "groups: Owners".into();
                let mut forged = seal(&other, row, r[4].prev_mac.clone());
                forged.key_id = r[4].key_id.clone();
                r[4] = forged;
            },
            5,
            "edited",
        ),
        ("change a kind", |r| r[4].kind = "head".into(), 5, "edited"),
        (
            "unknown kind",
            |r| r[4].kind = "nonsense".into(),
            5,
            "unknown record kind",
        ),
    ];
    for (name, tamper, id, what) in cases {
        let mut rows = sample();
        tamper(&mut rows);
        let v = verify(&rows);
        let (got_id, got_what) = broken_at(&v).unwrap_or_else(|| panic!("{name}: {v:?}"));
        assert_eq!(got_id, id, "{name}: {got_what}");
        assert!(got_what.contains(what), "{name}: {got_what}");
    }
}

#[test]
fn a_wrong_key_cannot_check_and_names_both_key_ids() {
    let rows = sample();
    let other = ChainKey::new(&Secret::new("another-key-of-16-bytes"));
    match verify_with(&other, &rows) {
        Verdict::CannotCheck(why) => {
            assert!(
                why.contains(key().id()) && why.contains(other.id()),
                "{why}"
            );
            assert!(
                !why.contains("0123456789abcdef-test-key"),
                "the key never prints"
            );
        }
        v => panic!("{v:?}"),
    }
}

#[test]
fn a_log_without_any_chained_row_cannot_be_checked() {
    let v = verify(&[change(1, "a@x.test"), change(2, "b@x.test")]);
    assert!(
        matches!(&v, Verdict::CannotCheck(w) if w.contains("no record is chained yet")),
        "{v:?}"
    );
}

#[test]
fn a_later_anchor_covers_rows_written_without_the_key() {
    let k = key();
    let mut rows = sample();
    rows.push(change(8, "nokey@x.test"));
    rows.push(change(9, "nokey2@x.test"));
    let mut pending = Pending::default();
    pending.push(&rows[7]);
    pending.push(&rows[8]);
    let anchor = seal(
        &k,
        ChainRow {
            id: 10,
            kind: "anchor".into(),
            at: "2026-11-02T00:00:00.000000000Z".into(),
            detail: Some(serde_json::to_string(&pending.detail()).unwrap()),
            ..Default::default()
        },
        rows[6].mac.clone(),
    );
    rows.push(anchor);
    match verify(&rows) {
        Verdict::Intact(s) => assert_eq!(s.anchored, 4),
        v => panic!("{v:?}"),
    }
    // An edit of a covered row is caught at the anchor.
    rows[7].before = "x".into();
    assert_eq!(broken_at(&verify(&rows)).map(|b| b.0), Some(10));
}

fn head_after(k: &ChainKey, rows: &[ChainRow], id: i64) -> ChainRow {
    let last = rows.last().unwrap();
    seal(
        k,
        ChainRow {
            id,
            kind: "head".into(),
            at: "2026-11-03T00:00:00.000000000Z".into(),
            detail: Some(serde_json::to_string(&HeadDetail { head_id: last.id }).unwrap()),
            ..Default::default()
        },
        last.mac.clone(),
    )
}

#[test]
fn head_records_must_name_the_row_before_them() {
    let k = key();
    let mut rows = sample();
    rows.push(head_after(&k, &rows, 8));
    assert!(matches!(verify(&rows), Verdict::Intact(_)));
    let mut wrong = sample();
    let mut h = head_after(&k, &wrong, 8);
    h.detail = Some(serde_json::to_string(&HeadDetail { head_id: 3 }).unwrap());
    let h = seal(&k, h, wrong.last().unwrap().mac.clone());
    wrong.push(h);
    assert!(broken_at(&verify(&wrong)).is_some_and(|(id, w)| id == 8 && w.contains("head")));
}

/// The store's prune: delete below `start`, then a chained prune record at the tail.
fn prune(rows: &mut Vec<ChainRow>, start: i64) {
    let k = key();
    let start_link = rows
        .iter()
        .rev()
        .find(|r| r.id < start && r.mac.is_some())
        .and_then(|r| r.mac.clone());
    let pruned = rows.iter().filter(|r| r.id < start).count() as u64;
    rows.retain(|r| r.id >= start);
    let last = rows.last().unwrap().clone();
    let detail = PruneDetail {
        cutoff: "2026-11-01T12:00:05Z".into(),
        pruned,
        start_id: start,
        start_link,
    };
    rows.push(seal(
        &k,
        ChainRow {
            id: last.id + 1,
            kind: "prune".into(),
            at: "2026-11-04T00:00:00.000000000Z".into(),
            detail: Some(serde_json::to_string(&detail).unwrap()),
            ..Default::default()
        },
        last.mac.clone(),
    ));
}

#[test]
fn a_prune_moves_the_start_and_the_chain_still_verifies() {
    for start in [3, 4, 6] {
        let mut rows = sample();
        prune(&mut rows, start);
        match verify(&rows) {
            Verdict::Intact(s) => assert_eq!(s.pruned_from, Some((8, start)), "start {start}"),
            v => panic!("start {start}: {v:?}"),
        }
        // Deleting more than the prune said is caught at the new first row.
        let mut more = rows.clone();
        more.remove(0);
        let (id, what) = broken_at(&verify(&more)).unwrap();
        assert_eq!(id, more[0].id, "start {start}");
        assert!(what.contains("records at the start were deleted"), "{what}");
    }
    // Two prunes: the latest one rules.
    let mut rows = sample();
    prune(&mut rows, 4);
    prune(&mut rows, 6);
    assert!(
        matches!(verify(&rows), Verdict::Intact(_)),
        "{:?}",
        verify(&rows)
    );
}

#[test]
fn a_forged_prune_does_not_verify() {
    let mut rows = sample();
    prune(&mut rows, 5);
    let p = rows.last_mut().unwrap();
    p.detail = p
        .detail
        .as_ref()
        .map(|d| d.replace("\"start_id\":5", "\"start_id\":6"));
    rows.remove(0);
    assert!(broken_at(&verify(&rows)).is_some());
}

#[test]
fn canonical_bytes_tell_absent_from_empty() {
    let mut a = change(1, "a@x.test");
    a.actor = None;
    let mut b = a.clone();
    b.actor = Some(String::new());
    assert_ne!(a.canonical(), b.canonical());
    let k = key();
    assert_ne!(k.mac(&a.canonical(), None), k.mac(&b.canonical(), None));
    assert_eq!(
        format!("{k:?}"),
        format!("ChainKey(id {}, key ***)", k.id())
    );
}
