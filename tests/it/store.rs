//! The durable store: restart survival, pass semantics, the change log and its CSV/JSON,
//! `--since`, two stores on one file (the CLI reading while the daemon writes).

use chrono::{DateTime, Duration, TimeZone, Utc};
use scimwatch::model::Email;
use scimwatch::reconcile::finding::{finding_id, Kind, Severity, State, Subject};
use scimwatch::reconcile::Finding;
use scimwatch::store::{
    changes_csv, changes_json, parse_since, Activation, ChangeRecord, Store, StoredFinding,
};
use sqlx::Connection;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap() + Duration::seconds(secs)
}

fn finding(workspace: &str, user: &str, state: State, deadline: Option<DateTime<Utc>>) -> Finding {
    let email = Email::new(user);
    Finding {
        id: finding_id(
            workspace,
            Kind::UserNotProvisioned,
            &Subject::User(email.clone()),
        ),
        kind: Kind::UserNotProvisioned,
        state,
        severity: Severity::Warning,
        workspace: workspace.to_string(),
        user: Some(email),
        group: None,
        grant: None,
        since: t(0),
        deadline,
        attribution: None,
        reverted_by_scim: None,
        message: format!("{user} is not in Segment yet."),
        remedy: "Wait for SCIM.".to_string(),
        extra: None,
        missing: None,
        mapping: None,
        nested_group: None,
        people_left_out: None,
        plan: None,
        reason: None,
        evidence: None,
    }
}

fn change(at: DateTime<Utc>, user: &str, before: &str) -> ChangeRecord {
    ChangeRecord {
        id: 0,
        at,
        workspace: "production".to_string(),
        user: user.to_string(),
        before: before.to_string(),
        after: "Segment Marketing: Source Read-only on source web-prod".to_string(),
        actor: Some("okta-scim".to_string()),
        attribution: Some("scim".to_string()),
        idp_event: Some("group.user_membership.add 1a2b 2026-11-01T12:00:00Z".to_string()),
        latency_ms: Some(4200),
        ..Default::default()
    }
}

fn ids(fs: &[Finding]) -> Vec<String> {
    let mut v: Vec<String> = fs.iter().map(|f| f.id.clone()).collect();
    v.sort();
    v
}

fn ws(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn open_creates_a_private_file_without_memory_mapped_io_and_records_when() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    // A folder scimwatch creates is 0700; the file 0600.
    let path = dir.path().join("state").join("state.db");
    let before = Utc::now();
    let store = Store::open(&path).await.unwrap();
    assert!(path.exists());
    assert!(store.opened_new());
    let created = store
        .created_at()
        .expect("a new store records when it was created");
    assert!(created >= before && created <= Utc::now(), "{created}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    store.checkpoint_set("k", "v").await.unwrap();
    drop(store);
    let url = format!("sqlite://{}", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    // The rollback journal: no wal-index (-shm) for SQLite to map into memory.
    let mode_now: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode_now, "delete");
    conn.close().await.unwrap();
    let shm = path.with_file_name("state.db-shm");
    assert!(!shm.exists());
    // Reopened: not new, same creation time.
    let again = Store::open(&path).await.unwrap();
    assert!(!again.opened_new());
    assert_eq!(again.created_at(), Some(created));
}

#[tokio::test]
async fn an_empty_store_file_is_created_afresh_and_must_exist_refuses_both() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let text = format!(
        "[idp]\nkind = \"okta\"\nurl = \"https://acme.okta.com\"\ntoken = \"00okta-secret-value-AAAA\"\n[[workspace]]\nname = \"p\"\ntoken = \"sgp_production-secret-BBBB\"\n[store]\npath = {:?}\nmust_exist = true\n",
        path.display().to_string()
    );
    let cfg = scimwatch::config::load_str(
        &text,
        &dir.path().join("scimwatch.toml"),
        &Default::default(),
    )
    .unwrap();
    assert!(cfg.store.must_exist);
    let err = Store::open_configured(&cfg.store)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("state.db") && err.contains("must_exist"),
        "{err}"
    );
    assert!(!path.exists(), "refusing must not create it");
    std::fs::write(&path, b"").unwrap();
    let err = Store::open_configured(&cfg.store)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist (or is empty)"), "{err}");
    // Without must_exist, an emptied file is a new store (and says so).
    let store = Store::open(&path).await.unwrap();
    assert!(store.opened_new());
    assert!(store.created_at().is_some());
    drop(store);
    // Now it exists and is not empty: must_exist lets it open, and it is not new.
    let store = Store::open_configured(&cfg.store).await.unwrap();
    assert!(!store.opened_new());
}

#[tokio::test]
async fn a_store_file_cut_short_under_an_open_store_is_an_error_not_a_sigbus() {
    // With WAL, SQLite maps the -shm wal-index into memory: truncating it under an open
    // connection made the next write fault with SIGBUS and killed this whole process.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open(&path).await.unwrap();
    for i in 0..50 {
        store
            .changes_append(&[change(t(i), "a@x.test", "x")], None)
            .await
            .unwrap();
    }
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(0).unwrap();
    }
    // Whatever SQLite makes of it, the process lives to report it.
    let mut outcomes = Vec::new();
    for i in 0..20 {
        outcomes.push(
            store
                .changes_append(&[change(t(100 + i), "b@x.test", "y")], None)
                .await
                .is_ok(),
        );
        outcomes.push(store.changes_since(t(0)).await.is_ok());
    }
    assert_eq!(outcomes.len(), 40);
}

#[tokio::test]
async fn open_existing_refuses_a_missing_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.db");
    let err = Store::open_existing(&path).await.unwrap_err();
    assert!(err.to_string().contains("absent.db"), "{err}");
    // It says what to do, not SQLite's "(code: 14) unable to open database file".
    let text = scimwatch::error::chain(&err);
    assert!(text.contains("`scimwatch run` creates it"), "{text}");
    assert!(!text.contains("code: 14"), "{text}");
    assert!(!path.exists());
}

#[tokio::test]
async fn a_store_that_cannot_be_created_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the store's folder should be: no folder can be made there.
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, "x").unwrap();
    let path = blocker.join("state.db");
    let err = Store::open(&path).await.unwrap_err();
    let text = scimwatch::error::chain(&err);
    assert!(text.starts_with("cannot create the store "), "{text}");
    assert!(text.contains("not-a-folder/state.db"), "{text}");
    assert!(text.contains("store.path"), "{text}");
}

#[tokio::test]
async fn reopen_keeps_findings_checkpoints_snapshots_and_the_change_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let pending = finding("production", "a@x.test", State::Pending, Some(t(900)));
    let drift = finding("production", "b@x.test", State::Drift, None);
    {
        let store = Store::open(&path).await.unwrap();
        store
            .findings_record_full(
                &ws(&["production"]),
                &[pending.clone(), drift.clone()],
                t(10),
            )
            .await
            .unwrap();
        store
            .checkpoint_set("okta.systemlog", "cursor-1")
            .await
            .unwrap();
        store
            .snapshot_put("segment.production", &serde_json::json!({"users": ["a"]}))
            .await
            .unwrap();
        store
            .changes_append(&[change(t(5), "a@x.test", "nothing")], None)
            .await
            .unwrap();
        // Dropped without a clean shutdown of anything but the pool.
    }
    let store = Store::open(&path).await.unwrap();
    let open = store.findings_open().await.unwrap();
    // Drift sorts before pending.
    assert_eq!(
        open,
        vec![
            StoredFinding {
                finding: drift.clone(),
                first_seen: t(10),
                last_seen: t(10),
                resolved_at: None
            },
            StoredFinding {
                finding: pending.clone(),
                first_seen: t(10),
                last_seen: t(10),
                resolved_at: None
            },
        ]
    );
    assert_eq!(store.findings_next_deadline().await.unwrap(), Some(t(900)));
    assert_eq!(
        store
            .checkpoint_get("okta.systemlog")
            .await
            .unwrap()
            .as_deref(),
        Some("cursor-1")
    );
    assert_eq!(store.checkpoint_get("other").await.unwrap(), None);
    assert_eq!(
        store.snapshot_get("segment.production").await.unwrap(),
        Some(serde_json::json!({"users": ["a"]}))
    );
    let log = store.changes_since(t(0)).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].id, 1);
    assert_eq!(log[0].before, "nothing");

    // The next pass after the restart keeps first_seen.
    store
        .findings_record_full(
            &ws(&["production"]),
            &[pending.clone(), drift.clone()],
            t(60),
        )
        .await
        .unwrap();
    let first = store
        .findings_first_seen(&[pending.id.clone(), "nope".to_string()])
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[&pending.id], t(10));
}

#[tokio::test]
async fn a_full_pass_opens_changes_and_resolves_within_its_workspaces() {
    let store = Store::open_memory().await.unwrap();
    let a = finding("production", "a@x.test", State::Pending, Some(t(900)));
    let b = finding("production", "b@x.test", State::Pending, Some(t(900)));
    let other = finding("staging", "c@x.test", State::Drift, None);

    let tr = store
        .findings_record_full(
            &ws(&["production", "staging"]),
            &[a.clone(), b.clone(), other.clone()],
            t(0),
        )
        .await
        .unwrap();
    assert_eq!(ids(&tr.opened), ids(&[a.clone(), b.clone(), other.clone()]));
    assert!(tr.changed.is_empty() && tr.resolved.is_empty());

    // Same findings, one turned to drift: only that one is changed.
    let mut a2 = a.clone();
    a2.state = State::Drift;
    a2.deadline = None;
    let tr = store
        .findings_record_full(
            &ws(&["production", "staging"]),
            &[a2.clone(), b.clone(), other.clone()],
            t(30),
        )
        .await
        .unwrap();
    assert!(tr.opened.is_empty() && tr.resolved.is_empty());
    assert_eq!(tr.changed, vec![(a.clone(), a2.clone())]);

    // A pass over production alone without b: b resolves, staging's finding stays open.
    let tr = store
        .findings_record_full(&ws(&["production"]), &[a2.clone()], t(60))
        .await
        .unwrap();
    assert!(tr.opened.is_empty() && tr.changed.is_empty());
    assert_eq!(tr.resolved.len(), 1);
    assert_eq!(tr.resolved[0].finding, b);
    assert_eq!(tr.resolved[0].first_seen, t(0));
    assert_eq!(tr.resolved[0].resolved_at, Some(t(60)));
    let open = store.findings_open().await.unwrap();
    let open_ids: Vec<String> = {
        let mut v: Vec<String> = open.iter().map(|s| s.finding.id.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(open_ids, ids(&[a2.clone(), other.clone()]));
    let a_row = open.iter().find(|s| s.finding.id == a.id).unwrap();
    assert_eq!((a_row.first_seen, a_row.last_seen), (t(0), t(60)));

    // A partial pass resolves nothing, even with nothing in it.
    let tr = store.findings_record_partial(&[], t(70)).await.unwrap();
    assert_eq!(tr, Default::default());
    assert_eq!(store.findings_open().await.unwrap().len(), 2);

    // b comes back: reopened with a new first_seen.
    let tr = store
        .findings_record_partial(std::slice::from_ref(&b), t(90))
        .await
        .unwrap();
    assert_eq!(tr.opened, vec![b.clone()]);
    let first = store
        .findings_first_seen(std::slice::from_ref(&b.id))
        .await
        .unwrap();
    assert_eq!(first[&b.id], t(90));
    // ... and resolved findings do not report a first_seen.
    store
        .findings_record_full(&ws(&["production"]), &[a2.clone()], t(120))
        .await
        .unwrap();
    assert!(store
        .findings_first_seen(std::slice::from_ref(&b.id))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_message_change_is_a_change_and_a_severity_change_too() {
    let store = Store::open_memory().await.unwrap();
    let a = finding("production", "a@x.test", State::Drift, None);
    store
        .findings_record_partial(std::slice::from_ref(&a), t(0))
        .await
        .unwrap();
    let mut reworded = a.clone();
    reworded.message = "Reworded.".to_string();
    let tr = store
        .findings_record_partial(&[reworded.clone()], t(1))
        .await
        .unwrap();
    assert_eq!(tr.changed, vec![(a.clone(), reworded.clone())]);
    let mut worse = reworded.clone();
    worse.severity = Severity::Critical;
    let tr = store
        .findings_record_partial(&[worse.clone()], t(2))
        .await
        .unwrap();
    assert_eq!(tr.changed, vec![(reworded, worse.clone())]);
    // Unchanged: nothing reported, last_seen bumped.
    let tr = store
        .findings_record_partial(&[worse.clone()], t(3))
        .await
        .unwrap();
    assert_eq!(tr, Default::default());
    let open = store.findings_open().await.unwrap();
    assert_eq!((open[0].first_seen, open[0].last_seen), (t(0), t(3)));
}

#[tokio::test]
async fn next_deadline_is_the_earliest_among_open_pending_findings() {
    let store = Store::open_memory().await.unwrap();
    assert_eq!(store.findings_next_deadline().await.unwrap(), None);
    let late = finding("production", "a@x.test", State::Pending, Some(t(900)));
    let soon = finding("production", "b@x.test", State::Pending, Some(t(300)));
    // A drift finding with an (earlier) deadline does not count.
    let drift = finding("production", "c@x.test", State::Drift, Some(t(100)));
    // Resolved pending findings do not count either.
    let gone = finding("staging", "d@x.test", State::Pending, Some(t(50)));
    store
        .findings_record_partial(&[late.clone(), soon.clone(), drift, gone], t(0))
        .await
        .unwrap();
    store
        .findings_record_full(&ws(&["staging"]), &[], t(10))
        .await
        .unwrap();
    assert_eq!(store.findings_next_deadline().await.unwrap(), Some(t(300)));
    store
        .findings_record_full(&ws(&["production"]), &[late], t(20))
        .await
        .unwrap();
    assert_eq!(store.findings_next_deadline().await.unwrap(), Some(t(900)));
}

#[tokio::test]
async fn the_change_log_appends_in_order_and_reads_since() {
    let store = Store::open_memory().await.unwrap();
    store
        .changes_append(
            &[
                change(t(10), "a@x.test", "a1"),
                change(t(20), "b@x.test", "b1"),
            ],
            None,
        )
        .await
        .unwrap();
    // Appended later but observed earlier: still oldest first.
    store
        .changes_append(
            &[
                change(t(5), "c@x.test", "c1"),
                change(t(20), "d@x.test", "d1"),
            ],
            None,
        )
        .await
        .unwrap();
    let all = store.changes_since(t(0)).await.unwrap();
    let order: Vec<(&str, i64)> = all.iter().map(|r| (r.before.as_str(), r.id)).collect();
    assert_eq!(order, vec![("c1", 3), ("a1", 1), ("b1", 2), ("d1", 4)]);
    let recent = store.changes_since(t(10)).await.unwrap();
    let order: Vec<&str> = recent.iter().map(|r| r.before.as_str()).collect();
    assert_eq!(order, vec!["a1", "b1", "d1"]);
    assert!(store.changes_since(t(21)).await.unwrap().is_empty());
}

#[test]
fn changes_csv_quotes_commas_quotes_and_newlines() {
    let mut r = change(t(0), "a@x.test", "Admin, \"Workspace Owner\"");
    r.id = 7;
    let mut bare = change(t(60), "b@x.test", "nothing");
    bare.actor = None;
    bare.attribution = None;
    bare.idp_event = None;
    bare.latency_ms = None;
    bare.after = "line one\nline two".to_string();
    bare.id = 8;
    bare.ticket = Some("SEC-1; CHG-7".to_string());
    bare.justification = Some("Launch, week".to_string());
    let csv = changes_csv(&[r, bare]);
    // The nine columns from before the chain, unchanged and in place; ticket,
    // justification and id appended.
    let expected = "time,workspace,user,before,after,actor,attribution,idp_event,latency_ms,ticket,justification,id\n\
        2026-11-01T12:00:00Z,production,a@x.test,\"Admin, \"\"Workspace Owner\"\"\",\
        Segment Marketing: Source Read-only on source web-prod,okta-scim,scim,\
        group.user_membership.add 1a2b 2026-11-01T12:00:00Z,4200,,,7\n\
        2026-11-01T12:01:00Z,production,b@x.test,nothing,\"line one\nline two\",,,,,SEC-1; CHG-7,\"Launch, week\",8\n";
    assert_eq!(csv, expected);
    assert_eq!(
        changes_csv(&[]),
        "time,workspace,user,before,after,actor,attribution,idp_event,latency_ms,ticket,justification,id\n"
    );
    assert!(scimwatch::store::CHANGES_CSV_HEADER
        .starts_with("time,workspace,user,before,after,actor,attribution,idp_event,latency_ms,"));
}

#[test]
fn changes_json_lists_records_under_changes() {
    let mut r = change(t(0), "a@x.test", "x");
    r.id = 3;
    r.actor = None;
    let v: serde_json::Value = serde_json::from_str(&changes_json(&[r])).unwrap();
    let c = &v["changes"][0];
    assert_eq!(c["id"], 3);
    assert_eq!(c["time"], "2026-11-01T12:00:00Z");
    assert_eq!(c["user"], "a@x.test");
    assert_eq!(c["actor"], serde_json::Value::Null);
    assert_eq!(c["latency_ms"], 4200);
    let empty: serde_json::Value = serde_json::from_str(&changes_json(&[])).unwrap();
    assert_eq!(empty, serde_json::json!({"changes": []}));
}

#[test]
fn parse_since_takes_durations_and_times() {
    let now = t(0);
    assert_eq!(parse_since("30d", now).unwrap(), now - Duration::days(30));
    assert_eq!(parse_since("12h", now).unwrap(), now - Duration::hours(12));
    assert_eq!(
        parse_since(" 1h 30m ", now).unwrap(),
        now - Duration::minutes(90)
    );
    assert_eq!(
        parse_since("2026-10-01T00:00:00Z", now).unwrap(),
        Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap()
    );
    assert_eq!(
        parse_since("2026-10-01T02:00:00+02:00", now).unwrap(),
        Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap()
    );
    let err = parse_since("last week", now).unwrap_err();
    assert!(err.contains("last week"), "{err}");
    assert!(parse_since("", now).is_err());
}

#[tokio::test]
async fn two_stores_on_one_file_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let daemon = Store::open(&path).await.unwrap();
    let cli = Store::open_existing(&path).await.unwrap();
    // The reader holds a read open while the writer commits (WAL lets both proceed).
    assert!(cli.changes_since(t(0)).await.unwrap().is_empty());
    daemon
        .changes_append(&[change(t(1), "a@x.test", "x")], None)
        .await
        .unwrap();
    let seen = cli.changes_since(t(0)).await.unwrap();
    assert_eq!(seen.len(), 1);
    // And the other way round, for findings.
    let f = finding("production", "a@x.test", State::Pending, Some(t(600)));
    cli.findings_record_partial(std::slice::from_ref(&f), t(2))
        .await
        .unwrap();
    assert_eq!(daemon.findings_next_deadline().await.unwrap(), Some(t(600)));

    // Many interleaved writes from both: none is lost to a busy database.
    let (d, c) = (daemon.clone(), cli.clone());
    let w1 = tokio::spawn(async move {
        for i in 0..20 {
            d.changes_append(&[change(t(10 + i), "d@x.test", "d")], None)
                .await
                .unwrap();
        }
    });
    let w2 = tokio::spawn(async move {
        for i in 0..20 {
            c.changes_append(&[change(t(10 + i), "c@x.test", "c")], None)
                .await
                .unwrap();
        }
    });
    w1.await.unwrap();
    w2.await.unwrap();
    assert_eq!(daemon.changes_since(t(0)).await.unwrap().len(), 41);
}

fn activation(trigger: &str, started: i64, result: &str) -> Activation {
    Activation {
        id: 0,
        trigger: trigger.to_string(),
        scope: "full".to_string(),
        started: t(started),
        finished: t(started + 1),
        result: result.to_string(),
        detail: "{}".to_string(),
    }
}

#[tokio::test]
async fn activations_keep_the_latest_per_trigger() {
    let store = Store::open_memory().await.unwrap();
    let first = store
        .activation_record(&activation("periodic", 0, "ok"))
        .await
        .unwrap();
    let hook = store
        .activation_record(&activation("okta_hook,audit", 10, "error"))
        .await
        .unwrap();
    let last = store
        .activation_record(&activation("periodic", 20, "ok"))
        .await
        .unwrap();
    assert!(first < hook && hook < last);
    let latest = store.activations_latest().await.unwrap();
    let got: Vec<(&str, i64, DateTime<Utc>)> = latest
        .iter()
        .map(|a| (a.trigger.as_str(), a.id, a.started))
        .collect();
    assert_eq!(
        got,
        vec![("okta_hook,audit", hook, t(10)), ("periodic", last, t(20))]
    );
    assert_eq!(latest[0].result, "error");
}

#[tokio::test]
async fn the_activation_history_is_capped() {
    let store = Store::open_memory().await.unwrap();
    store
        .activation_record(&activation("audit", 0, "ok"))
        .await
        .unwrap();
    for i in 0..1000 {
        store
            .activation_record(&activation("periodic", i, "ok"))
            .await
            .unwrap();
    }
    // The single "audit" row was the oldest and fell out of the last 1000.
    let latest = store.activations_latest().await.unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].trigger, "periodic");
}

#[tokio::test]
async fn a_store_abandoned_mid_window_keeps_the_deadline_ids_and_log() {
    // The closest in-process stand-in for SIGKILL: the pool is never closed, the WAL is
    // never checkpointed, and a second store opens the file while the first still holds it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let pending = finding("production", "a@x.test", State::Pending, Some(t(900)));
    let crashed = Store::open(&path).await.unwrap();
    crashed
        .findings_record_full(&ws(&["production"]), std::slice::from_ref(&pending), t(10))
        .await
        .unwrap();
    crashed
        .changes_append(&[change(t(5), "a@x.test", "nothing")], None)
        .await
        .unwrap();
    std::mem::forget(crashed);

    let restarted = Store::open(&path).await.unwrap();
    assert_eq!(
        restarted.findings_next_deadline().await.unwrap(),
        Some(t(900))
    );
    let open = restarted.findings_open().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].finding.id, pending.id);
    assert_eq!(open[0].first_seen, t(10));
    assert_eq!(restarted.changes_since(t(0)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_database_refuses_edits_to_the_change_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open(&path).await.unwrap();
    store
        .changes_append(&[change(t(5), "a@x.test", "nothing")], None)
        .await
        .unwrap();
    let url = format!("sqlite://{}", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let update = sqlx::query("UPDATE changes SET before = 'forged'")
        .execute(&mut conn)
        .await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = sqlx::query("DELETE FROM changes").execute(&mut conn).await;
    assert!(delete.is_err());
    assert_eq!(
        store.changes_since(t(0)).await.unwrap()[0].before,
        "nothing"
    );
}
