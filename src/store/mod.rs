//! Durable state in embedded SQLite (sqlx; migrations embedded from `migrations/`; the
//! rollback journal).
//!
//! What lives here: findings with first-seen, last-seen and resolved-at; poller
//! checkpoints; activation history; the last snapshots the daemon compares against; open
//! alerts, source failure counters, the alert outbox and broken sinks; and the append-only
//! change log. One file per kind of record, `noun_verb` method names.
//!
//! Contract:
//! - `Store::open` creates the file if missing, sets the journal mode and a busy timeout,
//!   and runs the embedded migrations; a store it cannot open or migrate is an error
//!   naming the path. A store it creates (missing, or an empty file) is created `0600`
//!   (its folder `0700` when scimwatch creates that too), logged at WARN naming the path,
//!   and remembers when it was created ([`Store::created_at`]);
//!   [`Store::open_configured`] refuses to create one when `store.must_exist` is set.
//! - No memory-mapped I/O: the rollback journal (`journal_mode = DELETE`) instead of WAL,
//!   whose wal-index (`-shm`) SQLite always maps into memory (any `mmap_size`), so that a
//!   store file made short or unbacked under the daemon (truncated, a full or vanished
//!   disk) is an I/O error to report, never a SIGBUS; and `mmap_size = 0`.
//! - Every multi-row write is one transaction: a crash leaves the previous state or the
//!   new one, never half of each.
//! - Secrets never reach the database.
//!
//! Guarantees:
//! - A restart (even after SIGKILL) keeps finding ids, `first_seen`, deadlines,
//!   checkpoints, snapshots and the change log: every write is committed before the call
//!   returns (`synchronous = FULL`: neither a process crash nor a power loss drops a
//!   commit).
//! - The change log is append-only: no code path updates it, the one delete is retention's
//!   prune (rows below a boundary written inside the prune transaction, see
//!   `migrations/0003_chain.sql`), and the schema's triggers refuse every other update or
//!   delete. With a chain key its rows are HMAC-chained (`chain.rs`).
//! - A reader (`scimwatch changes`) may open the same file while the daemon writes: a
//!   read waits (busy timeout) for a commit in progress and a commit for a read in
//!   progress; both are short.
//!
//! Times are stored as RFC 3339 text in UTC with nine fractional digits and a `Z` (fixed
//! width), so they compare as text. A finding's own times (`since`, `deadline`) travel in
//! its JSON body with whole seconds, as findings.md prints them; the `deadline` column
//! keeps the full precision for `findings_next_deadline`. Write transactions start with `BEGIN IMMEDIATE`, so
//! two writers wait for each other (busy timeout) instead of failing on an upgrade.
//!
//! Files: `findings.rs`, `changes.rs` (plus the CSV/JSON renderings and `parse_since`),
//! `checkpoints.rs` (checkpoints), `snapshots.rs`, `activations.rs`, `backup.rs` (`store
//! backup`: a consistent copy while the daemon runs, never migrating the live store).
//!
//! Upgrades and downgrades: `Store::open` applies the migrations this binary embeds and
//! does not have yet, at start. A store that carries a migration this binary does not
//! know (it was opened by a newer scimwatch) is refused with [`StoreError::Newer`]: an
//! older binary never writes into a schema it does not know. The alert tables' queries
//! live with their owner, in `alert/store.rs` (open alerts, source failure counters, the
//! durable outbox, broken sinks), so this module knows nothing of alerts.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqliteLockingMode, SqlitePoolOptions,
    SqliteSynchronous,
};

use crate::reconcile::Finding;

mod activations;
mod backup;
pub mod chain;
mod changes;
mod checkpoints;
mod findings;
mod snapshots;

pub use backup::{backup, backup_to_writer, BackupError, BackupSummary};
pub use chain::{ChainKey, Summary as ChainSummary, Verdict};
pub(crate) use changes::csv_field;
pub use changes::{changes_csv, changes_json, parse_since, PruneOutcome, CHANGES_CSV_HEADER};

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no store at {} yet: `scimwatch run` creates it on its first pass and keeps the change log there; run the daemon first, or point store.path at the store it uses", crate::paths::shown(.path))]
    NotCreated { path: PathBuf },
    #[error("the store {} does not exist (or is empty) and store.must_exist = true; restore it from a backup, or set store.must_exist = false to start with an empty store (every open finding is then alerted again and the change log starts over)", crate::paths::shown(.path))]
    Missing { path: PathBuf },
    #[error("cannot create the store {} (store.path): scimwatch creates its folder (0700) and the file (0600); check that this user may write there, or point store.path at a writable place", crate::paths::shown(.path))]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the store {} (store.path): check that the file and its folder exist and that this user may read and write both", crate::paths::shown(.path))]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrating the store {path}")]
    Migrate {
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("the store {path} was migrated by a newer scimwatch (its migration {version} is unknown to this one), so this version cannot use it: run the newer version again, or restore the backup taken before the upgrade (`scimwatch store backup`)")]
    Newer { path: PathBuf, version: i64 },
    #[error("store: {what}")]
    Query {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("store: {what}: {detail}")]
    Decode { what: &'static str, detail: String },
}

/// The store. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: sqlx::SqlitePool,
    /// When scimwatch created this store (`None` for a store older than the record).
    created_at: Option<DateTime<Utc>>,
    /// Whether this open created it.
    opened_new: bool,
}

/// A finding as the store keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFinding {
    pub finding: Finding,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// What recording a pass changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transitions {
    /// Findings that were not open before (new, or reopened after a resolve).
    pub opened: Vec<Finding>,
    /// Open before and now, with a different state, severity or message: (before, after).
    pub changed: Vec<(Finding, Finding)>,
    /// Open before, absent from a full pass of their workspace now.
    pub resolved: Vec<StoredFinding>,
}

/// One change of a user's effective access or membership observed in Segment.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChangeRecord {
    /// Assigned by the store (ascending); 0 for a record not yet appended.
    pub id: i64,
    pub at: DateTime<Utc>,
    pub workspace: String,
    pub user: String,
    /// What the user had and has, as text (e.g. "Segment Marketing: Source Read-only on source web-prod").
    pub before: String,
    pub after: String,
    pub actor: Option<String>,
    /// `human` | `self` | `automation` | `scim` | `token`.
    pub attribution: Option<String>,
    /// The IdP event that explains it (type, uuid, published), if any.
    pub idp_event: Option<String>,
    /// IdP change → seen in Segment, when an IdP event explains it.
    pub latency_ms: Option<i64>,
    /// The tickets of the mappings and exceptions behind the change, `; `-separated.
    pub ticket: Option<String>,
    /// Their justifications (an exception's reason), `; `-separated.
    pub justification: Option<String>,
}

/// One activation of the reconciler.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Activation {
    pub id: i64,
    /// The reasons, comma-separated labels ("periodic", "okta_hook,audit").
    pub trigger: String,
    /// "full" or "targeted".
    pub scope: String,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// "ok" or "error".
    pub result: String,
    /// Counts (JSON) on success, the error chain on failure.
    pub detail: String,
}

impl Store {
    /// Opens (creating if needed) the store at `path`.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, true).await
    }

    /// Opens the store at `path` only if the file exists (for readers such as
    /// `scimwatch changes`, which must not create an empty store by mistake).
    pub async fn open_existing(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, false).await
    }

    /// Opens the store `[store]` names: like [`Store::open`], but with
    /// `store.must_exist` a missing or empty store is an error instead of a new one.
    pub async fn open_configured(cfg: &crate::config::StoreConfig) -> Result<Store, StoreError> {
        if cfg.must_exist && is_missing(&cfg.path) {
            return Err(StoreError::Missing {
                path: cfg.path.clone(),
            });
        }
        Store::open(&cfg.path).await
    }

    /// When scimwatch created this store, if it recorded it (stores created before this
    /// record existed have none).
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.created_at
    }

    /// Whether this open created the store (it was missing or empty).
    pub fn opened_new(&self) -> bool {
        self.opened_new
    }

    async fn open_with(path: &Path, create: bool) -> Result<Store, StoreError> {
        if !create && is_missing(path) {
            return Err(StoreError::NotCreated {
                path: path.to_path_buf(),
            });
        }
        let new = create && is_missing(path);
        if new {
            create_private(path)?;
            tracing::warn!(
                path = %path.display(),
                "The store was missing or empty: created a new, empty one. Every open finding will be found and alerted again (PagerDuty folds re-sent triggers into open incidents by their dedup keys; Slack and webhooks see them again), and the change log starts over. If this is unexpected, stop scimwatch and restore the store from a backup; set store.must_exist = true to refuse to start instead."
            );
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Delete)
            .locking_mode(SqliteLockingMode::Normal)
            .pragma("mmap_size", "0")
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let mut store = Store::migrate(pool, path).await?;
        if new {
            let now = time_to_db(&Utc::now());
            sqlx::query("INSERT OR IGNORE INTO store_meta (key, value) VALUES ('created_at', ?)")
                .bind(&now)
                .execute(&store.pool)
                .await
                .map_err(query_err("recording when the store was created"))?;
        }
        let created: Option<String> =
            sqlx::query_scalar("SELECT value FROM store_meta WHERE key = 'created_at'")
                .fetch_optional(&store.pool)
                .await
                .map_err(query_err("reading when the store was created"))?;
        store.created_at = match created {
            Some(text) => Some(time_from_db("store_meta.created_at", &text)?),
            None => None,
        };
        store.opened_new = new;
        Ok(store)
    }

    /// A private in-memory store, for tests.
    pub async fn open_memory() -> Result<Store, StoreError> {
        // One connection that never closes: an in-memory database lives as long as it.
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|source| StoreError::Open {
                path: PathBuf::from(":memory:"),
                source,
            })?
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: PathBuf::from(":memory:"),
                source,
            })?;
        Store::migrate(pool, Path::new(":memory:")).await
    }

    async fn migrate(pool: sqlx::SqlitePool, path: &Path) -> Result<Store, StoreError> {
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|source| match source {
                // A downgrade: the store carries a migration this binary does not know.
                sqlx::migrate::MigrateError::VersionMissing(version) => StoreError::Newer {
                    path: path.to_path_buf(),
                    version,
                },
                source => StoreError::Migrate {
                    path: path.to_path_buf(),
                    source,
                },
            })?;
        Ok(Store {
            pool,
            created_at: None,
            opened_new: false,
        })
    }

    /// A write transaction that takes the write lock up front.
    pub(crate) async fn begin_write(
        &self,
        what: &'static str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|source| StoreError::Query { what, source })
    }
}

/// A store that is absent or an empty file (what SQLite would silently start afresh).
fn is_missing(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(m) => m.len() == 0,
        Err(_) => true,
    }
}

/// Creates (or empties) the store file with mode `0600`, and its folder with `0700` when
/// it does not exist.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let err = |source| StoreError::Create {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt as _;
                b.mode(0o700);
            }
            b.create(dir).map_err(err)?;
        }
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    let file = o.open(path).map_err(err)?;
    // An existing empty file keeps its mode through open(): make it private too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(err)?;
    }
    drop(file);
    Ok(())
}

/// A time as the store writes it: fixed-width RFC 3339 in UTC.
pub(crate) fn time_to_db(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub(crate) fn time_from_db(what: &'static str, text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Decode {
            what,
            detail: format!("bad time {text:?}: {e}"),
        })
}

pub(crate) fn query_err(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { what, source }
}
