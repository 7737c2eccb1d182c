//! Poller checkpoints: a text value per name (a cursor, the last event time seen).

use super::{query_err, time_to_db, Store, StoreError};

impl Store {
    pub async fn checkpoint_get(&self, name: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM checkpoints WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("reading a checkpoint"))
    }

    pub async fn checkpoint_set(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO checkpoints (name, value, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(time_to_db(&chrono::Utc::now()))
        .execute(&self.pool)
        .await
        .map_err(query_err("writing a checkpoint"))?;
        Ok(())
    }
}
