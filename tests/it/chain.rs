//! The tamper-evident change log on a real SQLite file: two concurrent appenders (two
//! pools, as the daemon and a CLI) never fork the chain; rows from before the chain are
//! anchored; an attacker with the file (who drops the triggers first) is caught for an
//! edit, a deletion and a reordering; a wrong key cannot check; retention prunes only
//! through its narrow door and verify still passes; `changes verify` through the binary.

use chrono::{DateTime, Duration, TimeZone, Utc};
use scimwatch::secret::Secret;
use scimwatch::store::{ChainKey, ChangeRecord, PruneOutcome, Store, Verdict};
use sqlx::Connection;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap() + Duration::seconds(secs)
}

fn key() -> ChainKey {
    ChainKey::new(&Secret::new("correct horse battery staple 42"))
}

fn change(at: DateTime<Utc>, user: &str) -> ChangeRecord {
    ChangeRecord {
        at,
        workspace: "production".into(),
        user: user.into(),
        before: "groups: none; direct: none".into(),
        after: "groups: Segment Marketing; direct: none".into(),
        attribution: Some("scim".into()),
        latency_ms: Some(4200),
        ..Default::default()
    }
}

async fn raw(path: &std::path::Path) -> sqlx::SqliteConnection {
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

async fn exec(path: &std::path::Path, sql: &str) -> Result<(), sqlx::Error> {
    let mut c = raw(path).await;
    sqlx::query(sql).execute(&mut c).await.map(|_| ())
}

fn intact(v: &Verdict) -> &scimwatch::store::ChainSummary {
    match v {
        Verdict::Intact(s) => s,
        other => panic!("expected intact, got {other:?}"),
    }
}

fn broken_at(v: &Verdict) -> (i64, String) {
    match v {
        Verdict::Broken { id, what, .. } => (*id, what.clone()),
        other => panic!("expected broken, got {other:?}"),
    }
}

/// A file with `n` chained changes (ids 2..=n+1 after the genesis anchor, id 1).
async fn chained_file(n: i64) -> (tempfile::TempDir, std::path::PathBuf, Store) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open(&path).await.unwrap();
    for i in 0..n {
        store
            .changes_append(&[change(t(i), &format!("u{i}@x.test"))], Some(&key()))
            .await
            .unwrap();
    }
    (dir, path, store)
}

#[tokio::test]
async fn two_appenders_on_one_file_never_fork_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let daemon = Store::open(&path).await.unwrap();
    let cli = Store::open_existing(&path).await.unwrap();
    let mut tasks = Vec::new();
    for (name, s) in [("d", daemon.clone()), ("c", cli.clone())] {
        tasks.push(tokio::spawn(async move {
            let k = key();
            for i in 0..30 {
                let recs = [
                    change(t(i), &format!("{name}{i}@x.test")),
                    change(t(i), &format!("{name}{i}b@x.test")),
                ];
                s.changes_append(&recs, Some(&k)).await.unwrap();
                if i % 10 == 0 {
                    s.changes_log_head(t(i), Some(&k)).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let v = daemon.changes_verify(&key()).await.unwrap();
    let s = intact(&v);
    // 120 changes, 6 heads, one genesis anchor; every row chained.
    assert_eq!((s.rows, s.chained, s.anchored), (127, 127, 0));
    // Each row links to the one before it: no two rows share a predecessor.
    let mut c = raw(&path).await;
    let forks: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT prev_mac FROM changes WHERE prev_mac IS NOT NULL GROUP BY prev_mac HAVING COUNT(*) > 1)",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(forks, 0);
    assert_eq!(daemon.changes_since(t(-1)).await.unwrap().len(), 120);
}

#[tokio::test]
async fn rows_from_before_the_chain_are_anchored_then_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open(&path).await.unwrap();
    // As after the migration: rows without a MAC.
    store
        .changes_append(
            &[change(t(0), "old1@x.test"), change(t(1), "old2@x.test")],
            None,
        )
        .await
        .unwrap();
    assert!(matches!(
        store.changes_verify(&key()).await.unwrap(),
        Verdict::CannotCheck(w) if w.contains("no record is chained yet")
    ));
    store
        .changes_append(&[change(t(2), "new@x.test")], Some(&key()))
        .await
        .unwrap();
    let v = store.changes_verify(&key()).await.unwrap();
    assert_eq!((intact(&v).rows, intact(&v).anchored), (4, 2));
    let mut c = raw(&path).await;
    let kinds: Vec<(i64, String)> = sqlx::query_as("SELECT id, kind FROM changes ORDER BY id")
        .fetch_all(&mut c)
        .await
        .unwrap();
    assert_eq!(
        kinds,
        vec![
            (1, "change".into()),
            (2, "change".into()),
            (3, "anchor".into()),
            (4, "change".into())
        ]
    );
    drop(c);

    // Without the key later: unchained rows, reported, until the key anchors them.
    store
        .changes_append(&[change(t(3), "nokey@x.test")], None)
        .await
        .unwrap();
    let (id, what) = broken_at(&store.changes_verify(&key()).await.unwrap());
    assert_eq!(id, 5);
    assert!(what.contains("carry no MAC"), "{what}");
    store.changes_log_head(t(4), Some(&key())).await.unwrap();
    let v = store.changes_verify(&key()).await.unwrap();
    assert_eq!(intact(&v).anchored, 3);

    // An attacker editing a pre-chain row is caught at its anchor.
    exec(&path, "DROP TRIGGER changes_no_update").await.unwrap();
    exec(
        &path,
        "UPDATE changes SET user = 'mallory@x.test' WHERE id = 1",
    )
    .await
    .unwrap();
    let (id, what) = broken_at(&store.changes_verify(&key()).await.unwrap());
    assert_eq!(id, 3);
    assert!(what.contains("not those it committed to"), "{what}");
}

#[tokio::test]
async fn the_database_still_refuses_updates_and_deletes() {
    let (_dir, path, store) = chained_file(3).await;
    let upd = exec(&path, "UPDATE changes SET user = 'x' WHERE id = 2").await;
    assert!(upd.unwrap_err().to_string().contains("append-only"));
    let del = exec(&path, "DELETE FROM changes WHERE id = 2").await;
    assert!(del.unwrap_err().to_string().contains("append-only"));
    // The prune door opens only for a boundary that is a row, and only below it.
    let bogus = exec(
        &path,
        "INSERT INTO changes_prune (id, before_id) VALUES (1, 999)",
    )
    .await;
    assert!(bogus.unwrap_err().to_string().contains("prune boundary"));
    let mut c = raw(&path).await;
    let mut tx = c.begin().await.unwrap();
    sqlx::query("INSERT INTO changes_prune (id, before_id) VALUES (1, 3)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let above = sqlx::query("DELETE FROM changes WHERE id = 3")
        .execute(&mut *tx)
        .await;
    assert!(above.unwrap_err().to_string().contains("append-only"));
    tx.rollback().await.unwrap();
    drop(c);
    intact(&store.changes_verify(&key()).await.unwrap());
}

#[tokio::test]
async fn an_attacker_with_the_file_is_caught() {
    // Each case on a fresh file: ids 1 (anchor), 2..=9 (changes).
    let cases: [(&str, &[&str], i64, &str); 5] = [
        (
            "edit a row",
            &["UPDATE changes SET after = 'groups: Owners; direct: none' WHERE id = 5"],
            5,
            "edited",
        ),
        (
            "edit a row's MAC-less fields too",
            &["UPDATE changes SET latency_ms = 1, mac = NULL, key_id = NULL WHERE id = 6"],
            6,
            "carries no MAC",
        ),
        (
            "delete a row",
            &["DELETE FROM changes WHERE id = 4"],
            5,
            "does not link",
        ),
        (
            "reorder two rows",
            &[
                "UPDATE changes SET id = -4 WHERE id = 4",
                "UPDATE changes SET id = 4 WHERE id = 5",
                "UPDATE changes SET id = 5 WHERE id = -4",
            ],
            4,
            "does not link",
        ),
        (
            "delete the start",
            &["DELETE FROM changes WHERE id < 3"],
            3,
            "not in the log",
        ),
    ];
    for (name, sql, id, what) in cases {
        let (_dir, path, store) = chained_file(8).await;
        intact(&store.changes_verify(&key()).await.unwrap());
        exec(&path, "DROP TRIGGER changes_no_update").await.unwrap();
        exec(&path, "DROP TRIGGER changes_no_delete").await.unwrap();
        for s in sql {
            exec(&path, s).await.unwrap();
        }
        let (got, got_what) = broken_at(&store.changes_verify(&key()).await.unwrap());
        assert_eq!(got, id, "{name}: {got_what}");
        assert!(got_what.contains(what), "{name}: {got_what}");
    }

    // A wrong key cannot check (exit 2), naming key ids, never the key.
    let (_dir, _path, store) = chained_file(2).await;
    let wrong = ChainKey::new(&Secret::new("not the key it was written with"));
    match store.changes_verify(&wrong).await.unwrap() {
        Verdict::CannotCheck(why) => {
            assert!(
                why.contains(wrong.id()) && why.contains(key().id()),
                "{why}"
            );
            assert!(!why.contains("correct horse"), "{why}");
        }
        v => panic!("{v:?}"),
    }
}

#[tokio::test]
async fn retention_prunes_by_moving_the_anchor_and_verify_still_passes() {
    let (_dir, path, store) = chained_file(10).await; // ids 1 anchor, 2..=11 at t(0)..t(9)
    assert_eq!(
        store.changes_prune(t(5), t(100), None).await.unwrap(),
        PruneOutcome::Skipped(
            "no chain key is configured ([store] chain_key_env or chain_key_file): the change log is kept whole".into()
        )
    );
    assert_eq!(
        store
            .changes_prune(t(-10), t(100), Some(&key()))
            .await
            .unwrap(),
        PruneOutcome::Nothing
    );
    let out = store
        .changes_prune(t(5), t(100), Some(&key()))
        .await
        .unwrap();
    assert_eq!(
        out,
        PruneOutcome::Pruned {
            pruned: 6,
            start_id: 7,
            record: 12
        }
    );
    let v = store.changes_verify(&key()).await.unwrap();
    let s = intact(&v);
    assert_eq!((s.rows, s.pruned_from), (6, Some((12, 7))));
    let kept: Vec<String> = store
        .changes_since(t(-100))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.user)
        .collect();
    assert_eq!(kept.first().map(String::as_str), Some("u5@x.test"));
    // The prune record is in the log itself.
    let mut c = raw(&path).await;
    let detail: String = sqlx::query_scalar("SELECT detail FROM changes WHERE kind = 'prune'")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert!(
        detail.contains("\"start_id\":7") && detail.contains("\"pruned\":6"),
        "{detail}"
    );
    drop(c);

    // Appends go on; a second prune moves the start again; verify passes.
    store
        .changes_append(&[change(t(50), "late@x.test")], Some(&key()))
        .await
        .unwrap();
    let again = store
        .changes_prune(t(8), t(200), Some(&key()))
        .await
        .unwrap();
    assert!(
        matches!(again, PruneOutcome::Pruned { start_id: 10, .. }),
        "{again:?}"
    );
    intact(&store.changes_verify(&key()).await.unwrap());

    // Everything older than the cutoff: the last chained row always stays.
    let all = store
        .changes_prune(t(10_000), t(300), Some(&key()))
        .await
        .unwrap();
    assert!(matches!(all, PruneOutcome::Pruned { .. }), "{all:?}");
    intact(&store.changes_verify(&key()).await.unwrap());

    // An attacker deleting past the prune's start is caught.
    exec(&path, "DROP TRIGGER changes_no_delete").await.unwrap();
    let first: i64 = {
        let mut c = raw(&path).await;
        sqlx::query_scalar("SELECT MIN(id) FROM changes")
            .fetch_one(&mut c)
            .await
            .unwrap()
    };
    exec(&path, &format!("DELETE FROM changes WHERE id = {first}"))
        .await
        .unwrap();
    let (_, what) = broken_at(&store.changes_verify(&key()).await.unwrap());
    assert!(what.contains("records at the start were deleted"), "{what}");
}

#[tokio::test]
async fn a_prune_never_splits_a_run_of_unchained_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open(&path).await.unwrap();
    let unchained: Vec<ChangeRecord> = (0..4)
        .map(|i| change(t(i), &format!("o{i}@x.test")))
        .collect();
    store.changes_append(&unchained, None).await.unwrap(); // ids 1..=4
    store
        .changes_append(&[change(t(10), "n@x.test")], Some(&key()))
        .await
        .unwrap(); // 5 anchor over 1..=4, 6 change
                   // The cutoff falls inside the unchained run: nothing before the run to prune.
    assert_eq!(
        store
            .changes_prune(t(2), t(100), Some(&key()))
            .await
            .unwrap(),
        PruneOutcome::Nothing
    );
    // Up to the anchor: the whole run goes, and the anchor, now first, is not asked to
    // commit to rows a prune removed.
    let out = store
        .changes_prune(t(10), t(100), Some(&key()))
        .await
        .unwrap();
    assert!(
        matches!(
            out,
            PruneOutcome::Pruned {
                pruned: 4,
                start_id: 5,
                ..
            }
        ),
        "{out:?}"
    );
    intact(&store.changes_verify(&key()).await.unwrap());
}

#[tokio::test]
async fn verifying_many_records_is_quick() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open(&path).await.unwrap();
    let n = 5_000;
    let batch: Vec<ChangeRecord> = (0..n)
        .map(|i| change(t(i), &format!("u{i}@x.test")))
        .collect();
    for chunk in batch.chunks(500) {
        store.changes_append(chunk, Some(&key())).await.unwrap();
    }
    let started = std::time::Instant::now();
    let v = store.changes_verify(&key()).await.unwrap();
    let took = started.elapsed();
    assert_eq!(intact(&v).rows, n as u64 + 1);
    eprintln!("verified {} records in {took:?}", n + 1);
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
}

// ---- `scimwatch changes verify` through the binary -----------------------------------

fn config(dir: &std::path::Path, with_key: bool) -> std::path::PathBuf {
    let key = if with_key {
        "chain_key_env = \"SCIMWATCH_TEST_CHAIN_KEY\"\n"
    } else {
        ""
    };
    let text = format!(
        "[idp]\nkind = \"okta\"\nurl = \"https://acme.okta.com\"\ntoken = \"t\"\n\n[[workspace]]\nname = \"production\"\ntoken = \"s\"\n\n[store]\npath = \"state.db\"\n{key}"
    );
    let p = dir.join(if with_key { "keyed.toml" } else { "plain.toml" });
    std::fs::write(&p, text).unwrap();
    p
}

async fn verify_cli(config: &std::path::Path, key: &str) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"))
        .arg("--config")
        .arg(config)
        .args(["changes", "verify"])
        .env("SCIMWATCH_TEST_CHAIN_KEY", key)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_verify_exit_codes_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let keyed = config(dir.path(), true);
    let plain = config(dir.path(), false);
    let good = "correct horse battery staple 42";

    // No store yet: cannot check.
    let (code, _, err) = verify_cli(&keyed, good).await;
    assert_eq!(code, 2, "{err}");

    let store = Store::open(&dir.path().join("state.db")).await.unwrap();
    for i in 0..3 {
        store
            .changes_append(&[change(t(i), &format!("u{i}@x.test"))], Some(&key()))
            .await
            .unwrap();
    }
    let (code, out, err) = verify_cli(&keyed, good).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("intact: 4 records, 4 chained"), "{out}");
    assert!(out.contains("head: record 4, MAC "), "{out}");

    let (code, out, err) = verify_cli(&plain, good).await;
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("cannot check: no chain key is configured"),
        "{err}"
    );

    let (code, _, err) = verify_cli(&keyed, "some other key of enough bytes").await;
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot check: record 1 was chained with key id"),
        "{err}"
    );
    assert!(
        !err.contains("some other key"),
        "the key never prints: {err}"
    );

    let path = dir.path().join("state.db");
    exec(&path, "DROP TRIGGER changes_no_update").await.unwrap();
    exec(
        &path,
        "UPDATE changes SET before = 'groups: Owners; direct: none' WHERE id = 3",
    )
    .await
    .unwrap();
    let (code, out, _) = verify_cli(&keyed, good).await;
    assert_eq!(code, 1);
    assert!(
        out.starts_with("BROKEN at record 3 (2026-11-01T12:00:01.000000000Z): its MAC does not match its contents"),
        "{out}"
    );
}

// ---- the key in the config -------------------------------------------------------------

fn load_store(store: &str, env: &[(&str, &str)]) -> Result<scimwatch::config::Config, String> {
    let text = format!(
        "[idp]\nkind = \"okta\"\nurl = \"https://acme.okta.com\"\ntoken = \"t\"\n\n[[workspace]]\nname = \"production\"\ntoken = \"s\"\n\n[store]\n{store}"
    );
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    scimwatch::config::load_str(
        &text,
        std::path::Path::new("/etc/scimwatch/scimwatch.toml"),
        &env,
    )
    .map_err(|e| match e {
        scimwatch::config::ConfigError::Invalid(p) => p.to_string(),
        e => e.to_string(),
    })
}

#[test]
fn the_chain_key_is_read_strictly_and_never_shown() {
    let secret = "a-chain-key-that-is-long-enough";
    let c = load_store("chain_key_env = \"K\"\nretain = \"1y\"\n", &[("K", secret)]).unwrap();
    let key = c.store.chain_key.as_ref().unwrap();
    assert_eq!(key.expose(), secret);
    assert_eq!(c.store.retain.as_secs(), 31_557_600);
    assert!(!format!("{:?}", c.store).contains(secret));
    assert!(!format!("{:?}", ChainKey::new(key)).contains(secret));
    assert_eq!(
        load_store("", &[]).unwrap().store.retain.as_secs(),
        7 * 31_557_600,
        "retain defaults to 7y"
    );

    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: [(&str, Env<'_>, &str); 5] = [
        ("chain_key_env = \"K\"\n", &[], "scimwatch.toml:11: store.chain_key_env: names the environment variable `K`, which is not set"),
        ("chain_key_env = \"K\"\n", &[("K", "short")], "store.chain_key_env: the secret is shorter than 16 bytes"),
        ("chain_key_env = \"K\"\nchain_key_file = \"/nonexistent\"\n", &[("K", secret)], "are both set for one secret"),
        ("chain_key_file = \"/nonexistent/key\"\n", &[], "store.chain_key_file: cannot read `/nonexistent/key`"),
        ("chain_key = \"inline\"\n", &[], "store.chain_key: unknown key"),
    ];
    for (store, env, want) in cases {
        let err = load_store(store, env).unwrap_err();
        assert!(err.contains(want), "{store}: {err}");
        assert!(!err.contains(secret) && !err.contains("short\""), "{err}");
    }
    let err = load_store("retain = \"seven years\"\n", &[]).unwrap_err();
    assert!(err.contains("store.retain"), "{err}");
}
