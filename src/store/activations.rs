//! Activation history: one row per reconciler activation, the latest 1000 kept.

use sqlx::Row;

use super::{query_err, time_from_db, time_to_db, Activation, Store, StoreError};

/// How many activations the store keeps.
const KEEP: i64 = 1000;

impl Store {
    /// Records an activation (its `id` is ignored) and returns the id assigned; trims the
    /// history to the latest 1000 rows in the same transaction.
    pub async fn activation_record(&self, a: &Activation) -> Result<i64, StoreError> {
        let mut tx = self.begin_write("recording an activation").await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO activations (\"trigger\", scope, started, finished, result, detail) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&a.trigger)
        .bind(&a.scope)
        .bind(time_to_db(&a.started))
        .bind(time_to_db(&a.finished))
        .bind(&a.result)
        .bind(&a.detail)
        .fetch_one(&mut *tx)
        .await
        .map_err(query_err("recording an activation"))?;
        sqlx::query("DELETE FROM activations WHERE id <= ?")
            .bind(id - KEEP)
            .execute(&mut *tx)
            .await
            .map_err(query_err("trimming the activation history"))?;
        tx.commit()
            .await
            .map_err(query_err("committing an activation"))?;
        Ok(id)
    }

    /// The latest activation of each distinct trigger value, sorted by trigger.
    pub async fn activations_latest(&self) -> Result<Vec<Activation>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, \"trigger\", scope, started, finished, result, detail FROM activations \
             WHERE id IN (SELECT MAX(id) FROM activations GROUP BY \"trigger\") \
             ORDER BY \"trigger\"",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("reading the activation history"))?;
        rows.iter().map(decode).collect()
    }
}

fn decode(row: &sqlx::sqlite::SqliteRow) -> Result<Activation, StoreError> {
    let text = |name: &'static str| -> Result<String, StoreError> {
        row.try_get(name)
            .map_err(query_err("reading the activation history"))
    };
    Ok(Activation {
        id: row
            .try_get("id")
            .map_err(query_err("reading the activation history"))?,
        trigger: text("trigger")?,
        scope: text("scope")?,
        started: time_from_db("activation start", &text("started")?)?,
        finished: time_from_db("activation end", &text("finished")?)?,
        result: text("result")?,
        detail: text("detail")?,
    })
}
