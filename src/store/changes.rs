//! The change log: every change of a user's effective access or membership observed in
//! Segment, HMAC-chained when a chain key is configured (`chain.rs` has the design).
//! Append-only: this file has no UPDATE, and its one DELETE is retention's prune, through
//! the narrow door `migrations/0003_chain.sql` opens; the schema refuses every other.
//!
//! Also the two renderings `scimwatch changes` prints (CSV with a fixed header, JSON under
//! `changes`) and the parser of its `--since`.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt as _;
use sqlx::Row;

use super::chain::{
    seal, ChainKey, ChainRow, HeadDetail, Pending, PruneDetail, RowKind, Verdict, Verifier,
};
use super::{query_err, time_from_db, time_to_db, ChangeRecord, Store, StoreError};
use crate::reconcile::finding::format_time;

/// The CSV header, one column per field, in this order. The first nine columns are the
/// ones `changes` printed before the chain; `ticket`, `justification` and `id` (the record
/// id `changes verify` names) were added at the end, so positional readers keep working.
pub const CHANGES_CSV_HEADER: &str =
    "time,workspace,user,before,after,actor,attribution,idp_event,latency_ms,ticket,justification,id";

const COLUMNS: &str = "id, kind, at, workspace, user, before, after, actor, attribution, \
     idp_event, latency_ms, ticket, justification, detail, key_id, prev_mac, mac";

/// What a retention prune did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PruneOutcome {
    /// No record is older than the cutoff (or the oldest ones must stay to keep the chain).
    Nothing,
    /// `pruned` records below `start_id` were deleted; `record` is the prune record.
    Pruned {
        pruned: u64,
        start_id: i64,
        record: i64,
    },
    /// Not pruned, and why (no chain key, or the log was chained with another key).
    Skipped(String),
}

impl Store {
    /// Appends records (ids are assigned in order; the records' own `id` is ignored);
    /// one `BEGIN IMMEDIATE` transaction that reads the previous link, so two processes
    /// appending to one file never fork the chain. With `key`, the records are chained
    /// (after an anchor when unchained rows precede them); without one they are
    /// appended unchained, and a warning says so when the log is already chained.
    pub async fn changes_append(
        &self,
        records: &[ChangeRecord],
        key: Option<&ChainKey>,
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write("appending to the change log").await?;
        let rows = records.iter().map(change_row).collect();
        append_rows(&mut tx, rows, key).await?;
        tx.commit()
            .await
            .map_err(query_err("committing to the change log"))
    }

    /// Records the chain's head as a `head` record (the daemon does this after each full
    /// pass) and returns that record's id and MAC. `None` without a usable key: nothing
    /// is written.
    pub async fn changes_log_head(
        &self,
        at: DateTime<Utc>,
        key: Option<&ChainKey>,
    ) -> Result<Option<(i64, String)>, StoreError> {
        let mut tx = self.begin_write("recording the change log's head").await?;
        let row = ChainRow {
            kind: RowKind::Head.as_str().into(),
            at: time_to_db(&at),
            ..Default::default()
        };
        let head = append_rows(&mut tx, vec![row], key).await?;
        tx.commit()
            .await
            .map_err(query_err("committing to the change log"))?;
        Ok(head)
    }

    /// Retention: deletes the records appended before `cutoff` by moving the chain's
    /// start forward, and appends a chained `prune` record saying where the log now
    /// starts; one transaction. Needs the key (an unchained prune could not be told from
    /// an attacker's deletion). Always keeps the last chained record, and never splits a
    /// run of unchained records (their anchor must still see all of them).
    pub async fn changes_prune(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        key: Option<&ChainKey>,
    ) -> Result<PruneOutcome, StoreError> {
        let what = "pruning the change log";
        let Some(key) = key else {
            return Ok(PruneOutcome::Skipped(
                "no chain key is configured ([store] chain_key_env or chain_key_file): the change log is kept whole".into(),
            ));
        };
        let mut tx = self.begin_write(what).await?;
        let last_chained: Option<(i64, Option<String>)> = sqlx::query_as(
            "SELECT id, key_id FROM changes WHERE mac IS NOT NULL ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_err(what))?;
        let Some((last_chained, last_key)) = last_chained else {
            return Ok(PruneOutcome::Nothing);
        };
        if last_key.as_deref() != Some(key.id()) {
            return Ok(PruneOutcome::Skipped(format!(
                "the change log was chained with key id {}, not the configured key's {}: not pruned",
                last_key.as_deref().unwrap_or("(none)"),
                key.id()
            )));
        }
        let first_young: Option<i64> =
            sqlx::query_scalar("SELECT MIN(id) FROM changes WHERE at >= ?")
                .bind(time_to_db(&cutoff))
                .fetch_one(&mut *tx)
                .await
                .map_err(query_err(what))?;
        let mut boundary = first_young.unwrap_or(last_chained).min(last_chained);
        // Not inside a run of unchained rows: back to the row after the chained one
        // before it.
        let chained_at_boundary: Option<i64> =
            sqlx::query_scalar("SELECT id FROM changes WHERE id = ? AND mac IS NOT NULL")
                .bind(boundary)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_err(what))?;
        let link_row: Option<(i64, Option<String>)> = sqlx::query_as(
            "SELECT id, mac FROM changes WHERE id < ? AND mac IS NOT NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(boundary)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_err(what))?;
        if chained_at_boundary.is_none() {
            let after_link = link_row.as_ref().map_or(0, |(id, _)| *id);
            let run_start: Option<i64> =
                sqlx::query_scalar("SELECT MIN(id) FROM changes WHERE id > ?")
                    .bind(after_link)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(query_err(what))?;
            boundary = run_start.unwrap_or(boundary);
        }
        let below: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM changes WHERE id < ?")
            .bind(boundary)
            .fetch_one(&mut *tx)
            .await
            .map_err(query_err(what))?;
        if below == 0 {
            return Ok(PruneOutcome::Nothing);
        }
        let start_link = link_row.and_then(|(_, mac)| mac);
        sqlx::query("INSERT INTO changes_prune (id, before_id) VALUES (1, ?)")
            .bind(boundary)
            .execute(&mut *tx)
            .await
            .map_err(query_err(what))?;
        let deleted = sqlx::query("DELETE FROM changes WHERE id < ?")
            .bind(boundary)
            .execute(&mut *tx)
            .await
            .map_err(query_err(what))?
            .rows_affected();
        sqlx::query("DELETE FROM changes_prune")
            .execute(&mut *tx)
            .await
            .map_err(query_err(what))?;
        let detail = PruneDetail {
            cutoff: format_time(&cutoff),
            pruned: deleted,
            start_id: boundary,
            start_link,
        };
        let row = ChainRow {
            kind: RowKind::Prune.as_str().into(),
            at: time_to_db(&now),
            detail: Some(
                serde_json::to_string(&detail).map_err(|e| StoreError::Decode {
                    what: "the prune record",
                    detail: e.to_string(),
                })?,
            ),
            ..Default::default()
        };
        let record = append_rows(&mut tx, vec![row], Some(key)).await?;
        tx.commit().await.map_err(query_err(what))?;
        Ok(match record {
            Some((record, _)) => PruneOutcome::Pruned {
                pruned: deleted,
                start_id: boundary,
                record,
            },
            None => PruneOutcome::Nothing,
        })
    }

    /// Walks the whole chain (`changes verify`). Reads in one transaction, so a
    /// concurrent append is either wholly seen or not at all.
    pub async fn changes_verify(&self, key: &ChainKey) -> Result<Verdict, StoreError> {
        let what = "reading the change log to verify it";
        let mut conn = self.pool.acquire().await.map_err(query_err(what))?;
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(query_err(what))?;
        let latest_prune = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM changes WHERE kind = 'prune' ORDER BY id DESC LIMIT 1"
        ))
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_err(what))?
        .map(|r| chain_row(&r))
        .transpose()?;
        let mut walk = match Verifier::new(key, latest_prune.as_ref()) {
            Ok(w) => w,
            Err(v) => return Ok(v),
        };
        let sql = format!("SELECT {COLUMNS} FROM changes ORDER BY id");
        let mut rows = sqlx::query(&sql).fetch(&mut *tx);
        while let Some(r) = rows.try_next().await.map_err(query_err(what))? {
            if let Err(v) = walk.push(&chain_row(&r)?) {
                return Ok(v);
            }
        }
        Ok(walk.finish())
    }

    /// Access-change records with `at >= since`, oldest first (ties in append order).
    /// Anchor, head and prune records are left out.
    pub async fn changes_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, workspace, user, before, after, actor, attribution, idp_event, \
             latency_ms, ticket, justification FROM changes WHERE at >= ? AND kind = 'change' \
             ORDER BY at, id",
        )
        .bind(time_to_db(&since))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("reading the change log"))?;
        rows.iter().map(decode).collect()
    }
}

fn change_row(r: &ChangeRecord) -> ChainRow {
    ChainRow {
        id: 0,
        kind: RowKind::Change.as_str().into(),
        at: time_to_db(&r.at),
        workspace: r.workspace.clone(),
        user: r.user.clone(),
        before: r.before.clone(),
        after: r.after.clone(),
        actor: r.actor.clone(),
        attribution: r.attribution.clone(),
        idp_event: r.idp_event.clone(),
        latency_ms: r.latency_ms,
        ticket: r.ticket.clone(),
        justification: r.justification.clone(),
        ..Default::default()
    }
}

/// Appends `rows` inside the caller's write transaction. With a key that matches the
/// log's, the rows are sealed onto the chain (after an anchor over the unchained rows
/// since the last chained one, or at the very start); a `head` row gets the id of the
/// row before it. Otherwise access changes go in unchained and system rows are dropped.
/// Returns the last chained row written (id, MAC).
async fn append_rows(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    rows: Vec<ChainRow>,
    key: Option<&ChainKey>,
) -> Result<Option<(i64, String)>, StoreError> {
    let what = "appending to the change log";
    let last_chained: Option<(i64, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT id, mac, key_id FROM changes WHERE mac IS NOT NULL ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_err(what))?;
    let key = match (key, &last_chained) {
        (Some(k), Some((_, _, kid))) if kid.as_deref() != Some(k.id()) => {
            tracing::error!(log_key_id = kid.as_deref().unwrap_or("(none)"), configured_key_id = k.id(), "The change log was chained with another key; appending unchained. Configure the key it was written with.");
            None
        }
        (None, Some(_)) => {
            tracing::warn!("The change log is chained but no chain key is configured ([store] chain_key_env or chain_key_file); appending unchained records, which `scimwatch changes verify` reports until the key is back.");
            None
        }
        (k, _) => k,
    };
    let Some(key) = key else {
        for row in rows.iter().filter(|r| r.kind == RowKind::Change.as_str()) {
            insert(tx, row).await?;
        }
        return Ok(None);
    };
    let (after, mut prev) = match &last_chained {
        Some((id, mac, _)) => (*id, mac.clone()),
        None => (0, None),
    };
    let pending_rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM changes WHERE id > ? ORDER BY id"
    ))
    .bind(after)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_err(what))?;
    let mut last_id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM changes")
        .fetch_one(&mut **tx)
        .await
        .map_err(query_err(what))?;
    let mut written = None;
    if last_chained.is_none() || !pending_rows.is_empty() {
        let mut pending = Pending::default();
        for r in &pending_rows {
            pending.push(&chain_row(r)?);
        }
        let anchor = ChainRow {
            kind: RowKind::Anchor.as_str().into(),
            at: rows.first().map(|r| r.at.clone()).unwrap_or_default(),
            detail: Some(json_text(&pending.detail())?),
            ..Default::default()
        };
        let anchor = seal(key, anchor, prev.take());
        let id = insert(tx, &anchor).await?;
        prev.clone_from(&anchor.mac);
        last_id = Some(id);
        written = anchor.mac.map(|m| (id, m));
    }
    for mut row in rows {
        if row.kind == RowKind::Head.as_str() {
            if let Some(head_id) = last_id {
                row.detail = Some(json_text(&HeadDetail { head_id })?);
            }
        }
        let row = seal(key, row, prev.take());
        let id = insert(tx, &row).await?;
        prev.clone_from(&row.mac);
        last_id = Some(id);
        written = row.mac.map(|m| (id, m));
    }
    Ok(written)
}

fn json_text<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Decode {
        what: "a chain record's detail",
        detail: e.to_string(),
    })
}

async fn insert(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    r: &ChainRow,
) -> Result<i64, StoreError> {
    let done = sqlx::query(
        "INSERT INTO changes (kind, at, workspace, user, before, after, actor, attribution, \
         idp_event, latency_ms, ticket, justification, detail, key_id, prev_mac, mac) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&r.kind)
    .bind(&r.at)
    .bind(&r.workspace)
    .bind(&r.user)
    .bind(&r.before)
    .bind(&r.after)
    .bind(&r.actor)
    .bind(&r.attribution)
    .bind(&r.idp_event)
    .bind(r.latency_ms)
    .bind(&r.ticket)
    .bind(&r.justification)
    .bind(&r.detail)
    .bind(&r.key_id)
    .bind(&r.prev_mac)
    .bind(&r.mac)
    .execute(&mut **tx)
    .await
    .map_err(query_err("appending to the change log"))?;
    Ok(done.last_insert_rowid())
}

fn chain_row(row: &sqlx::sqlite::SqliteRow) -> Result<ChainRow, StoreError> {
    Ok(ChainRow {
        id: get(row, "id")?,
        kind: get(row, "kind")?,
        at: get(row, "at")?,
        workspace: get(row, "workspace")?,
        user: get(row, "user")?,
        before: get(row, "before")?,
        after: get(row, "after")?,
        actor: get(row, "actor")?,
        attribution: get(row, "attribution")?,
        idp_event: get(row, "idp_event")?,
        latency_ms: get(row, "latency_ms")?,
        ticket: get(row, "ticket")?,
        justification: get(row, "justification")?,
        detail: get(row, "detail")?,
        key_id: get(row, "key_id")?,
        prev_mac: get(row, "prev_mac")?,
        mac: get(row, "mac")?,
    })
}

fn get<'r, T>(row: &'r sqlx::sqlite::SqliteRow, name: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(name)
        .map_err(query_err("reading the change log"))
}

fn decode(row: &sqlx::sqlite::SqliteRow) -> Result<ChangeRecord, StoreError> {
    let at: String = row
        .try_get("at")
        .map_err(query_err("reading the change log"))?;
    let field = |name: &'static str| -> Result<String, StoreError> {
        row.try_get(name)
            .map_err(query_err("reading the change log"))
    };
    let opt = |name: &'static str| -> Result<Option<String>, StoreError> {
        row.try_get(name)
            .map_err(query_err("reading the change log"))
    };
    Ok(ChangeRecord {
        id: row
            .try_get("id")
            .map_err(query_err("reading the change log"))?,
        at: time_from_db("change time", &at)?,
        workspace: field("workspace")?,
        user: field("user")?,
        before: field("before")?,
        after: field("after")?,
        actor: opt("actor")?,
        attribution: opt("attribution")?,
        idp_event: opt("idp_event")?,
        latency_ms: row
            .try_get("latency_ms")
            .map_err(query_err("reading the change log"))?,
        ticket: opt("ticket")?,
        justification: opt("justification")?,
    })
}

/// The change log as CSV: the header [`CHANGES_CSV_HEADER`], then one line per record.
/// Quoting follows RFC 4180; lines end with `\n`. Absent values are empty fields; times
/// are RFC 3339 with a `Z`.
pub fn changes_csv(records: &[ChangeRecord]) -> String {
    let mut out = String::with_capacity(64 * (records.len() + 1));
    out.push_str(CHANGES_CSV_HEADER);
    out.push('\n');
    for r in records {
        let latency = r.latency_ms.map(|l| l.to_string()).unwrap_or_default();
        let fields = [
            format_time(&r.at),
            r.workspace.clone(),
            r.user.clone(),
            r.before.clone(),
            r.after.clone(),
            r.actor.clone().unwrap_or_default(),
            r.attribution.clone().unwrap_or_default(),
            r.idp_event.clone().unwrap_or_default(),
            latency,
            r.ticket.clone().unwrap_or_default(),
            r.justification.clone().unwrap_or_default(),
            r.id.to_string(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// Quotes a field when it holds a comma, a quote or a line break; doubles its quotes.
pub(crate) fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The change log as pretty JSON: `{"changes": [...]}`, each record with the CSV's
/// columns (absent values are `null`) plus its `id`; times RFC 3339 with a `Z`.
pub fn changes_json(records: &[ChangeRecord]) -> String {
    let changes: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id,
                "time": format_time(&r.at),
                "workspace": r.workspace,
                "user": r.user,
                "before": r.before,
                "after": r.after,
                "actor": r.actor,
                "attribution": r.attribution,
                "idp_event": r.idp_event,
                "latency_ms": r.latency_ms,
                "ticket": r.ticket,
                "justification": r.justification,
            })
        })
        .collect();
    let doc = serde_json::json!({ "changes": changes });
    // Serialising a `Value` cannot fail (string keys only); fall back to compact if it did.
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string())
}

/// `--since`: a humantime duration back from `now` ("30d", "12h", "1h 30m") or an RFC 3339
/// time ("2026-11-01T00:00:00Z").
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(duration) = humantime::parse_duration(text) {
        let duration = chrono::Duration::from_std(duration)
            .map_err(|_| format!("--since {text:?} is too long a duration"))?;
        return now
            .checked_sub_signed(duration)
            .ok_or_else(|| format!("--since {text:?} reaches before the earliest time"));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!("--since {text:?} is neither a duration (like 30d or 12h) nor an RFC 3339 time")
        })
}
