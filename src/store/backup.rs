//! `scimwatch store backup FILE`: a consistent copy of the store, taken while the daemon
//! runs.
//!
//! Contract:
//! - The copy is SQLite's `VACUUM INTO`: one read transaction on the live store, so the
//!   copy is the store as of one commit (never half of a pass), compacted. The daemon's
//!   commits wait for it (the rollback journal: a writer cannot commit while a reader
//!   reads) for at most their 5 s busy timeout; the copy itself is quick (the README
//!   gives the measured rate), so a store has to be very large before a backup could make
//!   a daemon write time out.
//! - The live store is opened read-only and never migrated: a newer binary taking a backup
//!   before an upgrade leaves the store exactly as the running (older) daemon expects.
//! - The copy is written to a hidden `.NAME.partial` file beside `FILE`, created `0600`,
//!   checked (`PRAGMA integrity_check`), flushed to disk, then renamed to `FILE`: a failed
//!   or interrupted backup never leaves a file named `FILE`. An existing `FILE` is never
//!   replaced (the error says so).
//! - `FILE` = `-` writes the copy to standard output (for `kubectl exec … > FILE`, where
//!   the image has no shell and no tar): it is made and checked in a private (0700)
//!   folder under the temporary directory (`$TMPDIR`, else `/tmp`), streamed, removed.
//! - Nothing here imports `alert/`: the copy carries every table (the outbox and open
//!   alerts too) because it copies the file, not the rows it knows.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions as _, Connection as _};

use super::BUSY_TIMEOUT;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the store {path} does not exist (or is empty); check store.path in the config")]
    NoStore { path: PathBuf },
    #[error("the backup file {path} already exists; a backup never replaces a file: remove it or choose another name")]
    Exists { path: PathBuf },
    #[error("the folder {dir} for the backup file does not exist; create it (mode 0700) or choose another path")]
    NoFolder { dir: PathBuf },
    #[error("the backup path {path} is not valid UTF-8; choose a path SQLite can be given")]
    NotUtf8 { path: PathBuf },
    #[error("creating the backup file {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the store {path} to back it up")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("copying the store {store} into {path} (VACUUM INTO; the partial copy was removed)")]
    Copy {
        store: PathBuf,
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("checking the copy {path} (the partial copy was removed)")]
    Check {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("the copy {path} failed SQLite's integrity check: {detail} (the partial copy was removed); is the store itself damaged? `sqlite3 STORE 'PRAGMA integrity_check'` tells")]
    Corrupt { path: PathBuf, detail: String },
    #[error("creating a private folder {path} for the copy; set TMPDIR to a writable folder")]
    TempDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the copy to standard output")]
    Stdout(#[source] std::io::Error),
    #[error("writing the copy {path} to disk (the partial copy was removed)")]
    Sync {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a backup wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    pub path: PathBuf,
    pub bytes: u64,
    /// Change-log records in the copy.
    pub changes: i64,
    /// Open findings in the copy.
    pub open_findings: i64,
    /// The newest migration applied to the copy (the schema a binary restoring it needs).
    pub schema_version: i64,
    /// How long the copy held its read on the live store (the daemon's commits wait
    /// that long at most).
    pub held: Duration,
    pub took: Duration,
}

/// Copies the store at `store` into `dest` (see the module's contract).
pub async fn backup(store: &Path, dest: &Path) -> Result<BackupSummary, BackupError> {
    let started = Instant::now();
    if super::is_missing(store) {
        return Err(BackupError::NoStore {
            path: store.to_path_buf(),
        });
    }
    if dest.symlink_metadata().is_ok() {
        return Err(BackupError::Exists {
            path: dest.to_path_buf(),
        });
    }
    let dir = match dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(BackupError::NoFolder { dir });
    }
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    let partial = dir.join(format!(".{name}.partial"));
    let Some(partial_text) = partial.to_str().map(str::to_string) else {
        return Err(BackupError::NotUtf8 {
            path: dest.to_path_buf(),
        });
    };

    // A partial file left by an interrupted backup is ours to replace.
    let _ = std::fs::remove_file(&partial);
    create_private_empty(&partial).map_err(|source| BackupError::Create {
        path: partial.clone(),
        source,
    })?;

    let result = copy_and_check(store, &partial, &partial_text).await;
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_file(journal_of(&partial));
            return Err(e);
        }
    };
    let synced = sync_file(&partial)
        .and_then(|()| std::fs::rename(&partial, dest))
        .and_then(|()| sync_dir(&dir));
    if let Err(source) = synced {
        let _ = std::fs::remove_file(&partial);
        return Err(BackupError::Sync {
            path: dest.to_path_buf(),
            source,
        });
    }
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    Ok(BackupSummary {
        path: dest.to_path_buf(),
        bytes,
        took: started.elapsed(),
        ..summary
    })
}

/// Copies the store at `store` into `out` (`store backup -`), through a private temporary
/// folder that is removed whatever happens.
pub async fn backup_to_writer(
    store: &Path,
    out: &mut (dyn std::io::Write + Send),
) -> Result<BackupSummary, BackupError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("scimwatch-backup-{}-{nanos}", std::process::id()));
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(&dir).map_err(|source| BackupError::TempDir {
        path: dir.clone(),
        source,
    })?;
    let result = async {
        let summary = backup(store, &dir.join("scimwatch.db")).await?;
        let mut file = std::fs::File::open(&summary.path).map_err(BackupError::Stdout)?;
        std::io::copy(&mut file, out).map_err(BackupError::Stdout)?;
        out.flush().map_err(BackupError::Stdout)?;
        Ok(summary)
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn copy_and_check(
    store: &Path,
    partial: &Path,
    partial_text: &str,
) -> Result<BackupSummary, BackupError> {
    // Read-only, never migrated, the store's own choices: no memory-mapped I/O, the busy
    // timeout (a commit in progress is waited for, not an error).
    let options = SqliteConnectOptions::new()
        .filename(store)
        .read_only(true)
        .create_if_missing(false)
        .pragma("mmap_size", "0")
        .busy_timeout(BUSY_TIMEOUT)
        // A copy of a large store is a slow statement by design: no WARN from sqlx.
        .disable_statement_logging();
    let mut conn = options
        .connect()
        .await
        .map_err(|source| BackupError::Open {
            path: store.to_path_buf(),
            source,
        })?;
    let reading = Instant::now();
    let copied = sqlx::query("VACUUM INTO ?")
        .bind(partial_text)
        .execute(&mut conn)
        .await;
    let held = reading.elapsed();
    let _ = conn.close().await;
    copied.map_err(|source| BackupError::Copy {
        store: store.to_path_buf(),
        path: partial.to_path_buf(),
        source,
    })?;

    // The copy, read back on its own: whole, and what it holds.
    let check = |source| BackupError::Check {
        path: partial.to_path_buf(),
        source,
    };
    let mut copy = SqliteConnectOptions::new()
        .filename(partial)
        .read_only(true)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Delete)
        .pragma("mmap_size", "0")
        .disable_statement_logging()
        .connect()
        .await
        .map_err(check)?;
    let verdict: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut copy)
        .await
        .map_err(check)?;
    if verdict != ["ok"] {
        let _ = copy.close().await;
        return Err(BackupError::Corrupt {
            path: partial.to_path_buf(),
            detail: verdict.join("; "),
        });
    }
    let changes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM changes")
        .fetch_one(&mut copy)
        .await
        .map_err(check)?;
    let open_findings: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM findings WHERE resolved_at IS NULL")
            .fetch_one(&mut copy)
            .await
            .map_err(check)?;
    let schema_version: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
            .fetch_one(&mut copy)
            .await
            .map_err(check)?;
    let _ = copy.close().await;
    Ok(BackupSummary {
        path: partial.to_path_buf(),
        bytes: 0,
        changes,
        open_findings,
        schema_version,
        held,
        took: Duration::ZERO,
    })
}

/// An empty file only its owner can read (SQLite keeps the mode of the file it fills).
fn create_private_empty(path: &Path) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o.open(path).map(drop)
}

fn journal_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-journal");
    PathBuf::from(s)
}

/// SQLite does not flush what `VACUUM INTO` writes: do it before the rename.
fn sync_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// The rename itself, made durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
