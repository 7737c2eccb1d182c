//! Findings: upserts keyed by the stable finding id, resolution by full passes.
//!
//! A finding is *open* while `resolved_at` is null. Recording a pass never deletes a row:
//! a resolved finding stays (with its `resolved_at`) until the same id appears again,
//! which reopens it with a new `first_seen`. A full pass resolves what it did not produce in
//! the workspaces it covered; a targeted pass only what it did not produce among the
//! subjects it read.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{Row, Sqlite, Transaction};

use super::{query_err, time_from_db, time_to_db, Store, StoreError, StoredFinding, Transitions};
use crate::reconcile::{Finding, State};

/// An open row as the upsert compares against.
struct OpenRow {
    stored: StoredFinding,
}

impl Store {
    /// Records a full pass over `workspaces`: upserts every finding (keeping
    /// `first_seen`, bumping `last_seen`), and resolves at `now` the open findings of
    /// those workspaces that the pass did not produce. One transaction.
    pub async fn findings_record_full(
        &self,
        workspaces: &[String],
        findings: &[Finding],
        now: DateTime<Utc>,
    ) -> Result<Transitions, StoreError> {
        let covered: HashSet<&str> = workspaces.iter().map(String::as_str).collect();
        self.record_and_resolve(
            "a full pass",
            findings,
            &|f: &Finding| covered.contains(f.workspace.as_str()),
            now,
        )
        .await
    }

    /// Records a targeted pass: upserts `findings`, and resolves the open findings that
    /// are `in_scope` (about the subjects the pass read) but that it did not produce.
    /// Findings outside the scope are never resolved. One transaction.
    pub async fn findings_record_targeted(
        &self,
        findings: &[Finding],
        in_scope: &(dyn Fn(&Finding) -> bool + Sync),
        now: DateTime<Utc>,
    ) -> Result<Transitions, StoreError> {
        self.record_and_resolve("a targeted pass", findings, in_scope, now)
            .await
    }

    /// Upserts `findings` and resolves the open findings `in_scope` that are not among
    /// them, in one transaction.
    async fn record_and_resolve(
        &self,
        what: &'static str,
        findings: &[Finding],
        in_scope: &(dyn Fn(&Finding) -> bool + Sync),
        now: DateTime<Utc>,
    ) -> Result<Transitions, StoreError> {
        let mut tx = self.begin_write(what).await?;
        let open = load_open(&mut tx).await?;
        let mut transitions = upsert(&mut tx, &open, findings, now).await?;
        let produced: HashSet<&str> = findings.iter().map(|f| f.id.as_str()).collect();
        let now_db = time_to_db(&now);
        for (id, row) in &open {
            if produced.contains(id.as_str()) || !in_scope(&row.stored.finding) {
                continue;
            }
            sqlx::query("UPDATE findings SET resolved_at = ? WHERE id = ?")
                .bind(&now_db)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(query_err("resolving a finding"))?;
            let mut resolved = row.stored.clone();
            resolved.resolved_at = Some(now);
            transitions.resolved.push(resolved);
        }
        tx.commit().await.map_err(query_err("committing a pass"))?;
        sort_stored(&mut transitions.resolved);
        Ok(transitions)
    }

    /// Records a targeted pass: upserts `findings`; resolves nothing.
    pub async fn findings_record_partial(
        &self,
        findings: &[Finding],
        now: DateTime<Utc>,
    ) -> Result<Transitions, StoreError> {
        let mut tx = self.begin_write("recording a targeted pass").await?;
        let open = load_open(&mut tx).await?;
        let transitions = upsert(&mut tx, &open, findings, now).await?;
        tx.commit()
            .await
            .map_err(query_err("committing a targeted pass"))?;
        Ok(transitions)
    }

    /// Every open finding, in `reconcile::sort` order.
    pub async fn findings_open(&self) -> Result<Vec<StoredFinding>, StoreError> {
        let rows = sqlx::query(
            "SELECT body, first_seen, last_seen, resolved_at FROM findings WHERE resolved_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("reading open findings"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(decode_stored(&row)?);
        }
        sort_stored(&mut out);
        Ok(out)
    }

    /// `first_seen` of the given finding ids that are open.
    pub async fn findings_first_seen(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        // One bound JSON array instead of a variable-length IN list.
        let ids_json = serde_json::to_string(ids).map_err(|e| StoreError::Decode {
            what: "finding ids",
            detail: e.to_string(),
        })?;
        let rows = sqlx::query(
            "SELECT id, first_seen FROM findings \
             WHERE resolved_at IS NULL AND id IN (SELECT value FROM json_each(?))",
        )
        .bind(ids_json)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("reading first-seen times"))?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let id: String = row
                .try_get("id")
                .map_err(query_err("reading a finding id"))?;
            let first: String = row
                .try_get("first_seen")
                .map_err(query_err("reading first_seen"))?;
            out.insert(id, time_from_db("first_seen", &first)?);
        }
        Ok(out)
    }

    /// The earliest deadline among open pending findings: when the daemon must look again.
    pub async fn findings_next_deadline(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let next: Option<String> = sqlx::query_scalar(
            "SELECT MIN(deadline) FROM findings \
             WHERE resolved_at IS NULL AND state = ? AND deadline IS NOT NULL",
        )
        .bind(State::Pending.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(query_err("reading the next deadline"))?;
        next.map(|t| time_from_db("deadline", &t)).transpose()
    }
}

async fn load_open(
    tx: &mut Transaction<'static, Sqlite>,
) -> Result<HashMap<String, OpenRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, body, first_seen, last_seen, resolved_at FROM findings \
         WHERE resolved_at IS NULL",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(query_err("reading open findings"))?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: String = row
            .try_get("id")
            .map_err(query_err("reading a finding id"))?;
        let stored = decode_stored(&row)?;
        out.insert(id, OpenRow { stored });
    }
    Ok(out)
}

/// Upserts `findings` against the open rows read in the same transaction. A repeated id
/// in `findings` counts once (the first occurrence).
async fn upsert(
    tx: &mut Transaction<'static, Sqlite>,
    open: &HashMap<String, OpenRow>,
    findings: &[Finding],
    now: DateTime<Utc>,
) -> Result<Transitions, StoreError> {
    let now_db = time_to_db(&now);
    let mut seen = HashSet::new();
    let mut transitions = Transitions::default();
    for f in findings {
        if !seen.insert(f.id.as_str()) {
            continue;
        }
        let body = serde_json::to_string(f).map_err(|e| StoreError::Decode {
            what: "finding body",
            detail: e.to_string(),
        })?;
        let deadline = f.deadline.as_ref().map(time_to_db);
        match open.get(&f.id) {
            Some(row) => {
                sqlx::query(
                    "UPDATE findings SET workspace = ?, kind = ?, state = ?, severity = ?, \
                     deadline = ?, body = ?, last_seen = ? WHERE id = ?",
                )
                .bind(&f.workspace)
                .bind(f.kind.as_str())
                .bind(f.state.as_str())
                .bind(f.severity.as_str())
                .bind(deadline)
                .bind(body)
                .bind(&now_db)
                .bind(&f.id)
                .execute(&mut **tx)
                .await
                .map_err(query_err("updating a finding"))?;
                let before = &row.stored.finding;
                if before.state != f.state
                    || before.severity != f.severity
                    || before.message != f.message
                {
                    transitions.changed.push((before.clone(), f.clone()));
                }
            }
            None => {
                // New, or resolved before: (re)open with a fresh first_seen.
                sqlx::query(
                    "INSERT INTO findings (id, workspace, kind, state, severity, deadline, body, \
                     first_seen, last_seen, resolved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) \
                     ON CONFLICT (id) DO UPDATE SET workspace = excluded.workspace, \
                     kind = excluded.kind, state = excluded.state, severity = excluded.severity, \
                     deadline = excluded.deadline, body = excluded.body, \
                     first_seen = excluded.first_seen, last_seen = excluded.last_seen, \
                     resolved_at = NULL",
                )
                .bind(&f.id)
                .bind(&f.workspace)
                .bind(f.kind.as_str())
                .bind(f.state.as_str())
                .bind(f.severity.as_str())
                .bind(deadline)
                .bind(body)
                .bind(&now_db)
                .bind(&now_db)
                .execute(&mut **tx)
                .await
                .map_err(query_err("inserting a finding"))?;
                transitions.opened.push(f.clone());
            }
        }
    }
    Ok(transitions)
}

fn decode_stored(row: &sqlx::sqlite::SqliteRow) -> Result<StoredFinding, StoreError> {
    let body: String = row
        .try_get("body")
        .map_err(query_err("reading a finding body"))?;
    let finding: Finding = serde_json::from_str(&body).map_err(|e| StoreError::Decode {
        what: "finding body",
        detail: e.to_string(),
    })?;
    let first: String = row
        .try_get("first_seen")
        .map_err(query_err("reading first_seen"))?;
    let last: String = row
        .try_get("last_seen")
        .map_err(query_err("reading last_seen"))?;
    let resolved: Option<String> = row
        .try_get("resolved_at")
        .map_err(query_err("reading resolved_at"))?;
    Ok(StoredFinding {
        finding,
        first_seen: time_from_db("first_seen", &first)?,
        last_seen: time_from_db("last_seen", &last)?,
        resolved_at: resolved
            .map(|t| time_from_db("resolved_at", &t))
            .transpose()?,
    })
}

/// Orders stored findings as `reconcile::sort` orders findings (ties by id).
fn sort_stored(stored: &mut Vec<StoredFinding>) {
    let mut findings: Vec<Finding> = stored.iter().map(|s| s.finding.clone()).collect();
    crate::reconcile::sort(&mut findings);
    let rank: HashMap<&str, usize> = findings
        .iter()
        .enumerate()
        .map(|(i, f)| (f.id.as_str(), i))
        .collect();
    let mut keyed: Vec<(usize, StoredFinding)> = std::mem::take(stored)
        .into_iter()
        .map(|s| {
            (
                rank.get(s.finding.id.as_str())
                    .copied()
                    .unwrap_or(usize::MAX),
                s,
            )
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.finding.id.cmp(&b.1.finding.id)));
    stored.extend(keyed.into_iter().map(|(_, s)| s));
}
