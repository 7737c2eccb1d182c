//! Durable state in embedded SQLite (sqlx; migrations embedded from `migrations/`; WAL).
//!
//! What lives here: findings with first-seen, last-seen and resolved-at; poller
//! checkpoints; activation history; the last snapshots the daemon compares against; and
//! the append-only change log. One file per kind of record, `noun_verb` method names.
//!
//! Contract (to be implemented in this module's files):
//! - `Store::open` creates the file if missing, sets WAL and a busy timeout, and runs the
//!   embedded migrations; a store it cannot open or migrate is an error naming the path.
//! - Every multi-row write is one transaction: a crash leaves the previous state or the
//!   new one, never half of each.
//! - Secrets never reach the database.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::reconcile::Finding;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening the store {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrating the store")]
    Migrate(#[source] sqlx::migrate::MigrateError),
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
    pool: sqlx::SqlitePool,
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
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
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
        let _ = path;
        todo!("store open")
    }

    /// A private in-memory store, for tests.
    pub async fn open_memory() -> Result<Store, StoreError> {
        todo!("store open_memory")
    }

    // findings -----------------------------------------------------------------------

    /// Records a full pass over `workspaces`: upserts every finding (keeping
    /// `first_seen`, bumping `last_seen`), and resolves at `now` the open findings of
    /// those workspaces that the pass did not produce. One transaction.
    pub async fn findings_record_full(
        &self,
        workspaces: &[String],
        findings: &[Finding],
        now: DateTime<Utc>,
    ) -> Result<Transitions, StoreError> {
        let _ = (workspaces, findings, now);
        todo!()
    }

    /// Records a targeted pass: upserts `findings`; resolves nothing.
    pub async fn findings_record_partial(
        &self,
        findings: &[Finding],
        now: DateTime<Utc>,
    ) -> Result<Transitions, StoreError> {
        let _ = (findings, now);
        todo!()
    }

    /// Every open finding.
    pub async fn findings_open(&self) -> Result<Vec<StoredFinding>, StoreError> {
        todo!()
    }

    /// The earliest deadline among open pending findings.
    pub async fn findings_next_deadline(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        todo!()
    }

    /// `first_seen` of the given finding ids that are open.
    pub async fn findings_first_seen(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        let _ = ids;
        todo!()
    }

    // change log ---------------------------------------------------------------------

    /// Appends records (ids are assigned); one transaction.
    pub async fn changes_append(&self, records: &[ChangeRecord]) -> Result<(), StoreError> {
        let _ = records;
        todo!()
    }

    /// Records with `at >= since`, oldest first.
    pub async fn changes_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        let _ = since;
        todo!()
    }

    // checkpoints and snapshots ---------------------------------------------------------

    pub async fn checkpoint_get(&self, name: &str) -> Result<Option<String>, StoreError> {
        let _ = name;
        todo!()
    }

    pub async fn checkpoint_set(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let _ = (name, value);
        todo!()
    }

    /// A JSON document kept under a key (the last snapshots the daemon compares against).
    pub async fn snapshot_get(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let _ = key;
        todo!()
    }

    pub async fn snapshot_put(
        &self,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let _ = (key, value);
        todo!()
    }

    // activations --------------------------------------------------------------------

    pub async fn activation_record(&self, a: &Activation) -> Result<i64, StoreError> {
        let _ = a;
        todo!()
    }

    /// The latest activation of each trigger label.
    pub async fn activations_latest(&self) -> Result<Vec<Activation>, StoreError> {
        todo!()
    }
}

/// The change log as CSV (IAM-tracker columns).
pub fn changes_csv(records: &[ChangeRecord]) -> String {
    let _ = records;
    todo!()
}

/// The change log as JSON.
pub fn changes_json(records: &[ChangeRecord]) -> String {
    let _ = records;
    todo!()
}

/// "30d" (now minus a duration) or an RFC 3339 time.
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let _ = (text, now);
    todo!()
}
