//! Alert state and the durable outbox (issue 4): the queries of the alert tables, as
//! `impl Store` methods that live with the alerts that own them (the store itself knows
//! nothing of alerts; its migrations create these tables).
//!
//! - `alerts`: one row per open alert (the planner's [`AlertRecord`]); closing deletes it.
//! - `alert_sources`: consecutive failed full passes per (service, workspace).
//! - `outbox`: one row per (alert, sink), written in the same transaction as the state
//!   that caused it, *before* anything is sent; a worker per sink drains it in id order.
//!   Delivered rows are kept 30 days, dead letters until someone looks.
//! - `alert_sinks`: sinks marked broken.

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use super::plan::{key, AlertRecord, Send, SourceFailure};
use super::Alert;
use crate::store::{query_err, time_from_db, time_to_db, Store, StoreError};

/// Delivered outbox rows older than this are pruned.
const KEEP_DELIVERED: i64 = 30;

/// One outbox row.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub sink: String,
    pub alert: Alert,
    pub created_at: DateTime<Utc>,
    pub next_at: DateTime<Utc>,
    pub attempts: u32,
    pub status: String,
    pub last_error: Option<String>,
}

/// Pending rows of one sink.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OutboxDepth {
    pub sink: String,
    pub pending: u64,
    pub oldest: Option<DateTime<Utc>>,
    pub dead: u64,
}

/// A sink marked broken.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BrokenSink {
    pub name: String,
    pub since: DateTime<Utc>,
    pub reason: String,
}

/// What one planner run (or the delivery worker) writes, in one transaction.
#[derive(Clone, Debug, Default)]
pub struct AlertWrite<'a> {
    pub upsert: &'a [AlertRecord],
    pub delete: &'a [String],
    /// The complete new failure counters; `None` leaves them as they are.
    pub failures: Option<&'a [SourceFailure]>,
    pub sends: &'a [Send],
}

fn decode<T: serde::de::DeserializeOwned>(what: &'static str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Decode {
        what,
        detail: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(what: &'static str, v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Decode {
        what,
        detail: e.to_string(),
    })
}

impl Store {
    /// Every open alert record and the source failure counters.
    pub async fn alerts_load(&self) -> Result<(Vec<AlertRecord>, Vec<SourceFailure>), StoreError> {
        let rows = sqlx::query("SELECT body FROM alerts ORDER BY key")
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("reading alerts"))?;
        let mut records = Vec::with_capacity(rows.len());
        for r in rows {
            records.push(decode("an alert record", r.get::<&str, _>(0))?);
        }
        Ok((records, self.alert_sources().await?))
    }

    /// One open alert record by key.
    pub async fn alert_get(&self, key: &str) -> Result<Option<AlertRecord>, StoreError> {
        let row = sqlx::query("SELECT body FROM alerts WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("reading an alert"))?;
        row.map(|r| decode("an alert record", r.get::<&str, _>(0)))
            .transpose()
    }

    /// Open alerts per family, counted by the database (no record is decoded).
    pub async fn alerts_open_by_family(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows =
            sqlx::query("SELECT family, COUNT(*) FROM alerts GROUP BY family ORDER BY family")
                .fetch_all(&self.pool)
                .await
                .map_err(query_err("counting alerts"))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get::<i64, _>(1).max(0) as u64))
            .collect())
    }

    /// The source failure counters.
    pub async fn alert_sources(&self) -> Result<Vec<SourceFailure>, StoreError> {
        let rows = sqlx::query("SELECT body FROM alert_sources ORDER BY service, workspace")
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("reading source failures"))?;
        rows.iter()
            .map(|r| decode("a source failure", r.get::<&str, _>(0)))
            .collect()
    }

    /// Applies a plan: alert state, failure counters and outbox rows in one transaction.
    /// Returns how many outbox rows it wrote.
    pub async fn alerts_write(
        &self,
        w: &AlertWrite<'_>,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let now_db = time_to_db(&now);
        let mut tx = self.begin_write("recording alerts").await?;
        for k in w.delete {
            sqlx::query("DELETE FROM alerts WHERE key = ?")
                .bind(k)
                .execute(&mut *tx)
                .await
                .map_err(query_err("closing an alert"))?;
        }
        for r in w.upsert {
            sqlx::query(
                "INSERT INTO alerts (key, family, workspace, body, updated_at) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT(key) DO UPDATE SET family = excluded.family, workspace = excluded.workspace, \
                 body = excluded.body, updated_at = excluded.updated_at",
            )
            .bind(&r.key)
            .bind(r.family.as_str())
            .bind(&r.workspace)
            .bind(encode("an alert record", r)?)
            .bind(&now_db)
            .execute(&mut *tx)
            .await
            .map_err(query_err("recording an alert"))?;
        }
        if let Some(failures) = w.failures {
            sqlx::query("DELETE FROM alert_sources")
                .execute(&mut *tx)
                .await
                .map_err(query_err("recording source failures"))?;
            for f in failures {
                sqlx::query(
                    "INSERT INTO alert_sources (service, workspace, body) VALUES (?, ?, ?)",
                )
                .bind(&f.service)
                .bind(&f.workspace)
                .bind(encode("a source failure", f)?)
                .execute(&mut *tx)
                .await
                .map_err(query_err("recording source failures"))?;
            }
        }
        let mut written = 0;
        for (i, s) in w.sends.iter().enumerate() {
            for sink in &s.sinks {
                // The same id on every retry of this row (Standard Webhooks' dedupe key).
                let message_id = format!(
                    "msg_{}",
                    key(&[
                        &s.alert.key,
                        s.alert.action.as_str(),
                        sink,
                        &now_db,
                        &i.to_string()
                    ])
                );
                sqlx::query(
                    "INSERT INTO outbox (sink, key, action, family, body, message_id, created_at, next_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(sink)
                .bind(&s.alert.key)
                .bind(s.alert.action.as_str())
                .bind(s.alert.family.as_str())
                .bind(encode("an outbox alert", &s.alert)?)
                .bind(&message_id)
                .bind(&now_db)
                .bind(&now_db)
                .execute(&mut *tx)
                .await
                .map_err(query_err("writing the outbox"))?;
                written += 1;
            }
        }
        if written > 0 {
            let cutoff = time_to_db(&(now - Duration::days(KEEP_DELIVERED)));
            sqlx::query("DELETE FROM outbox WHERE status = 'delivered' AND done_at < ?")
                .bind(cutoff)
                .execute(&mut *tx)
                .await
                .map_err(query_err("pruning the outbox"))?;
        }
        tx.commit().await.map_err(query_err("committing alerts"))?;
        Ok(written)
    }

    /// The oldest pending row of `sink`.
    pub async fn outbox_next(&self, sink: &str) -> Result<Option<OutboxRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, sink, body, message_id, created_at, next_at, attempts, status, last_error \
             FROM outbox WHERE sink = ? AND status = 'pending' ORDER BY id LIMIT 1",
        )
        .bind(sink)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_err("reading the outbox"))?;
        row.map(|r| decode_row(&r)).transpose()
    }

    /// Rows of the given status (`pending`, `delivered`, `dead`), oldest first.
    pub async fn outbox_list(&self, status: &str) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, sink, body, message_id, created_at, next_at, attempts, status, last_error \
             FROM outbox WHERE status = ? ORDER BY id",
        )
        .bind(status)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("reading the outbox"))?;
        rows.iter().map(decode_row).collect()
    }

    pub async fn outbox_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.outbox_finish(id, "delivered", None, now).await
    }

    /// Dead-letters a row: kept, never sent again.
    pub async fn outbox_dead(
        &self,
        id: i64,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.outbox_finish(id, "dead", Some(error), now).await
    }

    async fn outbox_finish(
        &self,
        id: i64,
        status: &str,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET status = ?, done_at = ?, attempts = attempts + 1, \
             last_error = COALESCE(?, last_error) WHERE id = ?",
        )
        .bind(status)
        .bind(time_to_db(&now))
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(query_err("updating the outbox"))?;
        Ok(())
    }

    /// Schedules another attempt of a row at `next_at`.
    pub async fn outbox_retry(
        &self,
        id: i64,
        error: &str,
        next_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_at = ? WHERE id = ?",
        )
        .bind(error)
        .bind(time_to_db(&next_at))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(query_err("updating the outbox"))?;
        Ok(())
    }

    /// Pending and dead rows per sink (for `/status` and metrics).
    pub async fn outbox_depth(&self) -> Result<Vec<OutboxDepth>, StoreError> {
        let rows = sqlx::query(
            "SELECT sink, SUM(status = 'pending'), MIN(CASE WHEN status = 'pending' THEN created_at END), \
             SUM(status = 'dead') FROM outbox WHERE status != 'delivered' GROUP BY sink ORDER BY sink",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("reading the outbox depth"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let oldest: Option<String> = r.get(2);
            out.push(OutboxDepth {
                sink: r.get(0),
                pending: r.get::<i64, _>(1).max(0) as u64,
                oldest: oldest
                    .map(|t| time_from_db("an outbox time", &t))
                    .transpose()?,
                dead: r.get::<i64, _>(3).max(0) as u64,
            });
        }
        Ok(out)
    }

    /// Marks `name` broken (keeps the first `since`).
    pub async fn sink_mark_broken(
        &self,
        name: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO alert_sinks (name, broken_since, reason) VALUES (?, ?, ?) \
             ON CONFLICT(name) DO UPDATE SET reason = excluded.reason",
        )
        .bind(name)
        .bind(time_to_db(&now))
        .bind(reason)
        .execute(&self.pool)
        .await
        .map_err(query_err("marking a sink broken"))?;
        Ok(())
    }

    /// Clears the broken mark of `name` (all sinks with `None`).
    pub async fn sink_clear_broken(&self, name: Option<&str>) -> Result<(), StoreError> {
        let q = match name {
            Some(n) => sqlx::query("DELETE FROM alert_sinks WHERE name = ?").bind(n),
            None => sqlx::query("DELETE FROM alert_sinks"),
        };
        q.execute(&self.pool)
            .await
            .map_err(query_err("clearing a broken sink"))?;
        Ok(())
    }

    pub async fn sinks_broken(&self) -> Result<Vec<BrokenSink>, StoreError> {
        let rows = sqlx::query("SELECT name, broken_since, reason FROM alert_sinks ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("reading broken sinks"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(BrokenSink {
                name: r.get(0),
                since: time_from_db("a broken sink time", r.get::<&str, _>(1))?,
                reason: r.get(2),
            });
        }
        Ok(out)
    }
}

fn decode_row(r: &sqlx::sqlite::SqliteRow) -> Result<OutboxRow, StoreError> {
    let mut alert: Alert = decode("an outbox alert", r.get::<&str, _>(2))?;
    alert.message_id = Some(r.get(3));
    Ok(OutboxRow {
        id: r.get(0),
        sink: r.get(1),
        alert,
        created_at: time_from_db("an outbox time", r.get::<&str, _>(4))?,
        next_at: time_from_db("an outbox time", r.get::<&str, _>(5))?,
        attempts: r.get::<i64, _>(6).max(0) as u32,
        status: r.get(7),
        last_error: r.get(8),
    })
}
