//! `scimwatch store backup FILE` through the binary: a copy taken while another
//! connection keeps appending (as the daemon does) is consistent, private and restores:
//! `changes verify` passes on it and it holds the findings; a backup never replaces a file
//! and never leaves a partial one; a store migrated by a newer binary is refused at open
//! (a downgrade) while a backup of it still works, because backing up never migrates.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use scimwatch::model::Email;
use scimwatch::reconcile::finding::{finding_id, Kind, Severity, State, Subject};
use scimwatch::reconcile::Finding;
use scimwatch::secret::Secret;
use scimwatch::store::{ChainKey, ChangeRecord, Store, StoreError};
use sqlx::Connection as _;

const KEY: &str = "correct horse battery staple 42";

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap() + Duration::seconds(secs)
}

fn key() -> ChainKey {
    ChainKey::new(&Secret::new(KEY))
}

fn change(i: i64) -> ChangeRecord {
    ChangeRecord {
        at: t(i),
        workspace: "production".into(),
        user: format!("u{i}@x.test"),
        before: "groups: none; direct: none".into(),
        after: "groups: Segment Marketing; direct: none".into(),
        attribution: Some("scim".into()),
        latency_ms: Some(4200),
        ..Default::default()
    }
}

fn finding(user: &str) -> Finding {
    let email = Email::new(user);
    Finding {
        id: finding_id(
            "production",
            Kind::UserNotProvisioned,
            &Subject::User(email.clone()),
        ),
        kind: Kind::UserNotProvisioned,
        state: State::Drift,
        severity: Severity::Warning,
        workspace: "production".into(),
        user: Some(email),
        group: None,
        grant: None,
        since: t(0),
        deadline: None,
        attribution: None,
        reverted_by_scim: None,
        message: format!("{user} is not in Segment."),
        remedy: "Check the push.".into(),
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

/// A config in `dir` whose store is `dir/state.db`, chained with `KEY` (from the
/// environment, as in production).
fn config(dir: &Path) -> PathBuf {
    let text = "[idp]\nkind = \"okta\"\nurl = \"https://acme.okta.com\"\ntoken = \"t\"\n\n[[workspace]]\nname = \"production\"\ntoken = \"s\"\n\n[store]\npath = \"state.db\"\nchain_key_env = \"SCIMWATCH_TEST_CHAIN_KEY\"\n";
    let p = dir.join("scimwatch.toml");
    std::fs::write(&p, text).unwrap();
    p
}

async fn cli(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("SCIMWATCH_TEST_CHAIN_KEY", KEY)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_the_daemon_writes_restores_and_verifies() {
    let live = tempfile::tempdir().unwrap();
    let cfg = config(live.path());
    let store = Store::open(&live.path().join("state.db")).await.unwrap();
    for i in 0..300 {
        store
            .changes_append(&[change(i)], Some(&key()))
            .await
            .unwrap();
    }
    let open = vec![finding("ada@x.test"), finding("grace@x.test")];
    store
        .findings_record_full(&["production".into()], &open, t(10))
        .await
        .unwrap();

    // The "daemon": a second writer appending chained records all through the backup.
    let stop = Arc::new(AtomicBool::new(false));
    let appended = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, appended, store) = (stop.clone(), appended.clone(), store.clone());
        tokio::spawn(async move {
            let mut i = 1000;
            while !stop.load(Ordering::Relaxed) {
                store.changes_append(&[change(i)], Some(&key())).await?;
                appended.fetch_add(1, Ordering::Relaxed);
                i += 1;
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            Ok::<(), StoreError>(())
        })
    };
    while appended.load(Ordering::Relaxed) < 5 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let backups = tempfile::tempdir().unwrap();
    let copy = backups.path().join("scimwatch-backup.db");
    let before = appended.load(Ordering::Relaxed);
    let (code, out, err) = cli(&cfg, &["store", "backup", copy.to_str().unwrap()]).await;
    let during = appended.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer
        .await
        .unwrap()
        .expect("the daemon's writes never fail because of a backup");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.starts_with("Backed up "), "{err}");
    assert!(err.contains("schema version 4"), "{err}");
    assert!(err.contains("2 open findings, integrity ok"), "{err}");
    assert!(!err.contains(KEY), "{err}");
    assert_eq!(mode(&copy), 0o600, "the copy is as private as the store");
    assert_eq!(
        names_in(backups.path()),
        vec!["scimwatch-backup.db".to_string()],
        "no partial file or journal is left beside the copy"
    );
    assert!(
        during > before,
        "the writer kept writing while the copy was made"
    );

    // Restore: the copy becomes another deployment's store.
    let restored = tempfile::tempdir().unwrap();
    let restored_cfg = config(restored.path());
    std::fs::copy(&copy, restored.path().join("state.db")).unwrap();
    let (code, out, err) = cli(&restored_cfg, &["changes", "verify"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let records: u64 = out
        .strip_prefix("intact: ")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    // The genesis anchor, 300 records, the appends before the copy; a head record or two
    // may precede them (the writer's own anchors). Never fewer than were there at start.
    assert!(records >= 301 + 5, "{out}");
    let total_live = 301 + appended.load(Ordering::Relaxed);
    assert!(records <= total_live, "{records} > {total_live}: {out}");
    let back = Store::open_existing(&restored.path().join("state.db"))
        .await
        .unwrap();
    let mut ids: Vec<String> = back
        .findings_open()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.finding.id)
        .collect();
    ids.sort();
    let mut want: Vec<String> = open.iter().map(|f| f.id.clone()).collect();
    want.sort();
    assert_eq!(ids, want);
    // And the live store still verifies after it all.
    let (code, out, err) = cli(&cfg, &["changes", "verify"]).await;
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_never_replaces_a_file_nor_leaves_a_partial_one() {
    let live = tempfile::tempdir().unwrap();
    let cfg = config(live.path());

    // No store yet: nothing to copy, and nothing created.
    let dest = live.path().join("copy.db");
    let (code, _, err) = cli(&cfg, &["store", "backup", dest.to_str().unwrap()]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("state.db does not exist"), "{err}");
    assert!(!dest.exists());
    assert!(
        !live.path().join("state.db").exists(),
        "a backup creates no store"
    );

    let store = Store::open(&live.path().join("state.db")).await.unwrap();
    store
        .changes_append(&[change(1)], Some(&key()))
        .await
        .unwrap();

    std::fs::write(&dest, "yesterday's backup").unwrap();
    let (code, _, err) = cli(&cfg, &["store", "backup", dest.to_str().unwrap()]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("copy.db already exists; a backup never replaces a file"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "yesterday's backup"
    );

    let nowhere = live.path().join("no-such-folder").join("copy.db");
    let (code, _, err) = cli(&cfg, &["store", "backup", nowhere.to_str().unwrap()]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no-such-folder for the backup file does not exist"),
        "{err}"
    );

    // A partial file left by an interrupted backup is replaced, then gone.
    let fresh = live.path().join("fresh.db");
    std::fs::write(live.path().join(".fresh.db.partial"), "half a copy").unwrap();
    let (code, _, err) = cli(&cfg, &["store", "backup", fresh.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    assert!(!live.path().join(".fresh.db.partial").exists());
    // The genesis anchor and the one record.
    assert!(err.contains("2 change-log records"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_to_standard_output_is_the_whole_checked_copy() {
    let live = tempfile::tempdir().unwrap();
    let cfg = config(live.path());
    let store = Store::open(&live.path().join("state.db")).await.unwrap();
    for i in 0..50 {
        store
            .changes_append(&[change(i)], Some(&key()))
            .await
            .unwrap();
    }
    let scratch = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"))
        .arg("--config")
        .arg(&cfg)
        .args(["store", "backup", "-"])
        .env("SCIMWATCH_TEST_CHAIN_KEY", KEY)
        .env("TMPDIR", scratch.path())
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains(" to standard output ("), "{err}");
    assert!(
        err.contains(&format!("({} bytes,", out.stdout.len())),
        "{err}"
    );
    assert!(out.stdout.starts_with(b"SQLite format 3\0"));
    assert_eq!(
        names_in(scratch.path()),
        Vec::<String>::new(),
        "the private copy is removed"
    );
    // What came out restores and verifies.
    let restored = tempfile::tempdir().unwrap();
    std::fs::write(restored.path().join("state.db"), &out.stdout).unwrap();
    let (code, text, err) = cli(&config(restored.path()), &["changes", "verify"]).await;
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.starts_with("intact: 51 records, 51 chained"), "{text}");
}

#[tokio::test]
async fn a_store_a_newer_binary_migrated_is_refused_but_still_backed_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open(&path).await.unwrap();
    store.changes_append(&[change(1)], None).await.unwrap();
    drop(store);
    // What a newer release leaves behind: a migration this binary does not embed.
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9999, 'from the future', 1, x'00', 0)",
    )
    .execute(&mut c)
    .await
    .unwrap();
    c.close().await.unwrap();

    let err = Store::open(&path).await.unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(
        err.contains(
            "was migrated by a newer scimwatch (its migration 9999 is unknown to this one)"
        ),
        "{err}"
    );
    assert!(
        err.contains("restore the backup taken before the upgrade"),
        "{err}"
    );

    // Backing up reads it as it is, without migrating: the copy keeps the newer schema.
    let copy = dir.path().join("copy.db");
    let s = scimwatch::store::backup(&path, &copy).await.unwrap();
    assert_eq!(s.schema_version, 9999);
    assert_eq!(s.changes, 1);
    assert!(s.bytes > 0);
    assert!(matches!(
        Store::open(&copy).await,
        Err(StoreError::Newer { version: 9999, .. })
    ));
}
