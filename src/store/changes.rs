//! The change log: every change of a user's effective access or membership observed in
//! Segment. Append-only: this file has no UPDATE or DELETE, and the schema refuses them.
//!
//! Also the two renderings `scimwatch changes` prints (CSV with a fixed header, JSON under
//! `changes`) and the parser of its `--since`.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{query_err, time_from_db, time_to_db, ChangeRecord, Store, StoreError};
use crate::reconcile::finding::format_time;

/// The CSV header, one column per field, in this order.
pub const CHANGES_CSV_HEADER: &str =
    "time,workspace,user,before,after,actor,attribution,idp_event,latency_ms";

impl Store {
    /// Appends records (ids are assigned in order; the records' own `id` is ignored);
    /// one transaction.
    pub async fn changes_append(&self, records: &[ChangeRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write("appending to the change log").await?;
        for r in records {
            sqlx::query(
                "INSERT INTO changes (at, workspace, user, before, after, actor, attribution, \
                 idp_event, latency_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(time_to_db(&r.at))
            .bind(&r.workspace)
            .bind(&r.user)
            .bind(&r.before)
            .bind(&r.after)
            .bind(&r.actor)
            .bind(&r.attribution)
            .bind(&r.idp_event)
            .bind(r.latency_ms)
            .execute(&mut *tx)
            .await
            .map_err(query_err("appending to the change log"))?;
        }
        tx.commit()
            .await
            .map_err(query_err("committing to the change log"))
    }

    /// Records with `at >= since`, oldest first (ties in append order).
    pub async fn changes_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, workspace, user, before, after, actor, attribution, idp_event, \
             latency_ms FROM changes WHERE at >= ? ORDER BY at, id",
        )
        .bind(time_to_db(&since))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("reading the change log"))?;
        rows.iter().map(decode).collect()
    }
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
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// Quotes a field when it holds a comma, a quote or a line break; doubles its quotes.
fn csv_field(text: &str) -> String {
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
