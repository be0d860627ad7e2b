//! The outbox table's SQL (the columns: `outbox.rs`), on SQLite and
//! PostgreSQL.

use sqlx::AnyConnection;
use sqlx::{AnyPool, Row};

use super::outbox::OutboxMessage;
use super::Error;
use crate::trace::TraceContext;

/// Which database holds the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of `pool` (`Error::Config` for anything else).
    pub(crate) async fn of(pool: &AnyPool) -> Result<Self, Error> {
        let conn = pool.acquire().await?;
        match conn.backend_name() {
            "SQLite" => Ok(Backend::Sqlite),
            "PostgreSQL" => Ok(Backend::Postgres),
            other => Err(Error::Config(format!(
                "the outbox supports SQLite and PostgreSQL, not {other}"
            ))),
        }
    }
}

/// One row of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Relay order: increasing in insert order.
    pub id: i64,
    /// The `kafka_listener-event-id` header (UUID v4).
    pub event_id: String,
    /// The event's name ([`OutboxEvent::NAME`]; rows written before names
    /// existed hold the Rust type path).
    pub event_type: String,
    /// The destination topic.
    pub topic: String,
    /// The record key.
    pub key: String,
    /// The event as JSON.
    pub payload: String,
    /// Publish time, ms since the Unix epoch.
    pub created_at: i64,
    /// When the broker acknowledged it, ms since the Unix epoch; `None`
    /// while unsent.
    pub sent_at: Option<i64>,
    /// Failed sends so far.
    pub attempts: i64,
    /// The last send error, if any.
    pub last_error: Option<String>,
    /// The publisher's trace ([`crate::trace`]), sent with the record;
    /// `None` when the event was published outside a trace.
    pub trace: Option<TraceContext>,
}

/// SQL for one outbox table.
#[derive(Debug, Clone)]
pub(crate) struct OutboxTable {
    name: String,
    backend: Backend,
}

const COLUMNS: &str =
    "id, event_id, event_type, topic, msg_key, payload, created_at, sent_at, attempts, last_error, \
     traceparent, tracestate";

impl OutboxTable {
    /// The table `name` (letters, digits and `_`, not starting with a
    /// digit, at most 48 characters) on `backend`.
    pub(crate) fn new(name: &str, backend: Backend) -> Result<Self, Error> {
        let valid = !name.is_empty()
            && name.len() <= 48
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Error::Config(format!(
                "invalid outbox table name `{name}`: use letters, digits and `_` (at most 48), not starting with a digit"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            backend,
        })
    }

    /// The table name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// A stable 63-bit number for the table name: the PostgreSQL advisory
    /// lock key of its DDL and of its relay (FNV-1a).
    pub(crate) fn lock_key(&self) -> i64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in b"kafka_listener.outbox:".iter().chain(self.name.as_bytes()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        (hash >> 1) as i64
    }

    /// Creates the table and its index of unsent rows if missing. On
    /// PostgreSQL the DDL is serialized by an advisory lock, because
    /// concurrent `CREATE TABLE IF NOT EXISTS` can collide in the catalog.
    pub(crate) async fn create(&self, pool: &AnyPool) -> Result<(), Error> {
        let id = match self.backend {
            Backend::Sqlite => "id INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => "id BIGSERIAL PRIMARY KEY",
        };
        let name = &self.name;
        let table = format!(
            "CREATE TABLE IF NOT EXISTS {name} (
                {id},
                event_id TEXT NOT NULL UNIQUE,
                event_type TEXT NOT NULL,
                topic TEXT NOT NULL,
                msg_key TEXT NOT NULL,
                payload TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                sent_at BIGINT,
                attempts BIGINT NOT NULL DEFAULT 0,
                last_error TEXT,
                traceparent TEXT,
                tracestate TEXT
            )"
        );
        let index = format!(
            "CREATE INDEX IF NOT EXISTS {name}_unsent ON {name} (id) WHERE sent_at IS NULL"
        );
        let mut tx = pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock($1)) AS l")
                .bind(self.lock_key())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(&table).execute(&mut *tx).await?;
        sqlx::query(&index).execute(&mut *tx).await?;
        self.add_trace_columns(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds the trace columns to a table created before they existed.
    async fn add_trace_columns(&self, conn: &mut AnyConnection) -> Result<(), Error> {
        let name = &self.name;
        for column in ["traceparent", "tracestate"] {
            let alter = format!("ALTER TABLE {name} ADD COLUMN {column} TEXT");
            match self.backend {
                Backend::Postgres => {
                    let alter = alter.replace("ADD COLUMN", "ADD COLUMN IF NOT EXISTS");
                    sqlx::query(&alter).execute(&mut *conn).await?;
                }
                Backend::Sqlite => {
                    let missing: i64 = sqlx::query(&format!(
                        "SELECT COUNT(*) AS n FROM pragma_table_info('{name}') WHERE name = '{column}'"
                    ))
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get("n")?;
                    if missing == 0 {
                        sqlx::query(&alter).execute(&mut *conn).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Inserts one event in the caller's transaction, with the current
    /// trace ([`TraceContext::current`]).
    pub(crate) async fn insert(
        &self,
        conn: &mut AnyConnection,
        event_id: &str,
        message: &OutboxMessage,
        now_ms: i64,
    ) -> Result<(), Error> {
        let trace = TraceContext::current();
        let sql = format!(
            "INSERT INTO {} (event_id, event_type, topic, msg_key, payload, created_at, attempts,
                             traceparent, tracestate)
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8)",
            self.name
        );
        sqlx::query(&sql)
            .bind(event_id)
            .bind(message.event_type)
            .bind(message.topic)
            .bind(&message.key)
            .bind(&message.payload)
            .bind(now_ms)
            .bind(trace.as_ref().map(|t| t.parent.to_string()))
            .bind(trace.and_then(|t| t.state))
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Up to `limit` unsent rows in id order, leaving out the rows of the
    /// `(topic, key)` pairs in `exclude`.
    pub(crate) async fn unsent(
        &self,
        pool: &AnyPool,
        limit: usize,
        exclude: &[(String, String)],
    ) -> Result<Vec<OutboxRow>, Error> {
        let excluded: Vec<String> = (0..exclude.len())
            .map(|i| format!("(topic = ${} AND msg_key = ${})", 2 * i + 1, 2 * i + 2))
            .collect();
        let filter = if excluded.is_empty() {
            String::new()
        } else {
            format!(" AND NOT ({})", excluded.join(" OR "))
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM {} WHERE sent_at IS NULL{filter} ORDER BY id LIMIT {}",
            self.name,
            limit.max(1)
        );
        let mut query = sqlx::query(&sql);
        for (topic, key) in exclude {
            query = query.bind(topic).bind(key);
        }
        let rows = query.fetch_all(pool).await?;
        rows.iter().map(row).collect()
    }

    /// Every row, sent or not, in id order (for inspection and tests).
    pub(crate) async fn all(&self, pool: &AnyPool) -> Result<Vec<OutboxRow>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM {} ORDER BY id", self.name);
        let rows = sqlx::query(&sql).fetch_all(pool).await?;
        rows.iter().map(row).collect()
    }

    /// The number of unsent rows.
    pub(crate) async fn count_unsent(&self, pool: &AnyPool) -> Result<i64, Error> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {} WHERE sent_at IS NULL",
            self.name
        );
        Ok(sqlx::query(&sql)
            .fetch_one(pool)
            .await?
            .try_get::<i64, _>("n")?)
    }

    /// Marks `ids` sent at `now_ms` (in statements of up to 200 ids).
    pub(crate) async fn mark_sent(
        &self,
        pool: &AnyPool,
        ids: &[i64],
        now_ms: i64,
    ) -> Result<(), Error> {
        for chunk in ids.chunks(200) {
            let placeholders: Vec<String> = (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
            let sql = format!(
                "UPDATE {} SET sent_at = $1 WHERE id IN ({})",
                self.name,
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(now_ms);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(pool).await?;
        }
        Ok(())
    }

    /// Counts a failed send of row `id`.
    pub(crate) async fn record_failure(
        &self,
        pool: &AnyPool,
        id: i64,
        error: &str,
    ) -> Result<(), Error> {
        let sql = format!(
            "UPDATE {} SET attempts = attempts + 1, last_error = $1 WHERE id = $2",
            self.name
        );
        sqlx::query(&sql).bind(error).bind(id).execute(pool).await?;
        Ok(())
    }

    /// Deletes rows sent before `before_ms`; returns how many.
    pub(crate) async fn purge_sent(&self, pool: &AnyPool, before_ms: i64) -> Result<u64, Error> {
        let sql = format!(
            "DELETE FROM {} WHERE sent_at IS NOT NULL AND sent_at < $1",
            self.name
        );
        Ok(sqlx::query(&sql)
            .bind(before_ms)
            .execute(pool)
            .await?
            .rows_affected())
    }
}

fn row(row: &sqlx::any::AnyRow) -> Result<OutboxRow, Error> {
    Ok(OutboxRow {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        topic: row.try_get("topic")?,
        key: row.try_get("msg_key")?,
        payload: row.try_get("payload")?,
        created_at: row.try_get("created_at")?,
        sent_at: row.try_get("sent_at")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        trace: TraceContext::from_headers(
            row.try_get::<Option<String>, _>("traceparent")?.as_deref(),
            row.try_get::<Option<String>, _>("tracestate")?.as_deref(),
        ),
    })
}
