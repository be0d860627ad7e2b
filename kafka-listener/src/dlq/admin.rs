//! What an operator does with the store beyond listing and replaying:
//! filtered lists, deletes, and the audit table `kafka_console_audit` that
//! records every replay and delete (when, what, by whom, the result).
//!
//! `kafka_console_audit`, created by [`DeadLetterStore::audit_log`]'s first
//! use ([`DeadLetterStore::record_audit`] creates it too):
//!
//! | column | content |
//! |---|---|
//! | `at` BIGINT | ms since the Unix epoch |
//! | `action` TEXT | `replay`, `delete`, `pause`, `seek`, ... |
//! | `target` TEXT | a dead letter's id, a listener id, `listener topic-partition` |
//! | `actor` TEXT | the name of the token that authorized it |
//! | `result` TEXT | `ok` or the error |

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::store::{now_ms, row, DeadLetterStore, StoreError, StoredDeadLetter, COLUMNS};

/// Which dead letters [`DeadLetterStore::find`] returns; every field is
/// optional and `Default` matches every letter not replayed yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeadLetterFilter {
    /// The original topic, exactly.
    pub topic: Option<String>,
    /// The error kind, exactly: `Retryable`, `Fatal` or `Decode`.
    pub error_kind: Option<String>,
    /// The consumer group that failed the record, exactly.
    pub consumer_group: Option<String>,
    /// Stored at or after, ms since the Unix epoch.
    pub since: Option<i64>,
    /// Stored before, ms since the Unix epoch.
    pub until: Option<i64>,
    /// Include letters replayed already (default: only the others).
    #[serde(default)]
    pub include_replayed: bool,
    /// At most this many (oldest first); `None`: all.
    pub limit: Option<i64>,
}

/// One audited operator action ([`DeadLetterStore::record_audit`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When, ms since the Unix epoch.
    pub at: i64,
    /// `replay`, `delete`, `start`, `stop`, `pause`, `resume`, `seek`.
    pub action: String,
    /// What it acted on: a dead letter's id, a listener id, or
    /// `<listener> <topic>-<partition>`.
    pub target: String,
    /// The name of the token that authorized it.
    pub actor: String,
    /// `ok`, or why it failed.
    pub result: String,
}

impl AuditEntry {
    /// An entry stamped now.
    pub fn now(action: &str, target: &str, actor: &str, result: &str) -> Self {
        Self {
            at: now_ms(),
            action: action.to_owned(),
            target: target.to_owned(),
            actor: actor.to_owned(),
            result: result.to_owned(),
        }
    }
}

impl DeadLetterStore {
    /// The dead letters `filter` matches, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn find(
        &self,
        filter: &DeadLetterFilter,
    ) -> Result<Vec<StoredDeadLetter>, StoreError> {
        // Each condition binds its value or NULL, so the statement is fixed.
        let sql = format!(
            "SELECT {COLUMNS} FROM kafka_dead_letters
             WHERE ($1 IS NULL OR original_topic = $1)
               AND ($2 IS NULL OR error_kind = $2)
               AND ($3 IS NULL OR consumer_group = $3)
               AND ($4 IS NULL OR stored_at >= $4)
               AND ($5 IS NULL OR stored_at < $5)
               AND ($6 = 1 OR replayed_at IS NULL)
             ORDER BY stored_at, id
             LIMIT $7"
        );
        let rows = sqlx::query(&sql)
            .bind(filter.topic.clone())
            .bind(filter.error_kind.clone())
            .bind(filter.consumer_group.clone())
            .bind(filter.since)
            .bind(filter.until)
            .bind(i64::from(filter.include_replayed))
            .bind(filter.limit.unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }

    /// How many dead letters not replayed yet each consumer group has
    /// (`None`: letters without a group header), one query.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn count_by_group(&self) -> Result<Vec<(Option<String>, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT consumer_group, COUNT(*) AS n FROM kafka_dead_letters
             WHERE replayed_at IS NULL GROUP BY consumer_group",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("consumer_group")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Database)
    }

    /// Deletes the dead letter `id`; `false` when there was none.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM kafka_dead_letters WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Appends `entry` to `kafka_console_audit` (creating the table when
    /// missing).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.audit_table().await?;
        sqlx::query(
            "INSERT INTO kafka_console_audit (at, action, target, actor, result)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(entry.at)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.actor)
        .bind(&entry.result)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The last `limit` audit entries, newest first.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_table().await?;
        let rows = sqlx::query(
            "SELECT at, action, target, actor, result FROM kafka_console_audit
             ORDER BY at DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: r.try_get("at")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    actor: r.try_get("actor")?,
                    result: r.try_get("result")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Database)
    }

    async fn audit_table(&self) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS kafka_console_audit (
                at BIGINT NOT NULL,
                action TEXT NOT NULL,
                target TEXT NOT NULL,
                actor TEXT NOT NULL,
                result TEXT NOT NULL
            )",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
