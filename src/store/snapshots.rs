//! Snapshots: the last JSON documents the daemon compares against, one per key.

use super::{query_err, time_to_db, Store, StoreError};

impl Store {
    /// A JSON document kept under a key (the last snapshots the daemon compares against).
    pub async fn snapshot_get(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let text: Option<String> = sqlx::query_scalar("SELECT json FROM snapshots WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("reading a snapshot"))?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| StoreError::Decode {
                what: "snapshot",
                detail: format!("{key}: {e}"),
            })
        })
        .transpose()
    }

    pub async fn snapshot_put(
        &self,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO snapshots (key, json, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (key) DO UPDATE SET json = excluded.json, \
             updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value.to_string())
        .bind(time_to_db(&chrono::Utc::now()))
        .execute(&self.pool)
        .await
        .map_err(query_err("writing a snapshot"))?;
        Ok(())
    }
}
