//! [`DeadLetterStore`]: dead letters in a database table, for an admin to
//! list and replay by hand (never automatically: a record that keeps
//! failing would loop).
//!
//! The table, `kafka_dead_letters`, is created by [`DeadLetterStore::new`]
//! with SQL that runs on SQLite and PostgreSQL (sqlx `AnyPool`):
//!
//! | column | content |
//! |---|---|
//! | `id` TEXT PK | `<dlt topic>-<dlt partition>-<dlt offset>`: a redelivered dead letter is stored once |
//! | `dlt_topic`, `dlt_partition`, `dlt_offset` | where the dead letter was read |
//! | `original_topic`, `original_partition`, `original_offset`, `original_timestamp` | from the `kafka_dlt-original-*` headers (the dead letter's own coordinates when they are missing) |
//! | `consumer_group` | `kafka_dlt-original-consumer-group` |
//! | `record_key`, `payload` | the key and value bytes (BLOB / BYTEA) |
//! | `headers` | the other headers, JSON `[[name, hex value], ...]` |
//! | `exception_fqcn`, `exception_message`, `exception_stacktrace` | `kafka_dlt-exception-*` |
//! | `error_kind`, `attempts` | `kafka_listener-dlt-error-kind`, `-attempts` |
//! | `stored_at`, `replayed_at` | ms since the Unix epoch; `replayed_at` NULL until replayed |

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use sqlx::{AnyPool, Row};

use crate::error::ListenerError;
use crate::listener::ListenerSpec;
use crate::record::headers::{self, be_i32, Original};
use crate::record::ConsumerRecord;
use crate::retry::RetryPolicy;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("dead-letter store: {0}")]
    Database(#[from] sqlx::Error),
    /// The broker did not acknowledge a replayed record.
    #[error("replaying a dead letter: {0}")]
    Replay(#[source] crate::Error),
}

/// One stored dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredDeadLetter {
    /// `<dlt topic>-<dlt partition>-<dlt offset>`.
    pub id: String,
    /// The dead-letter topic it was read from.
    pub dlt_topic: String,
    /// Its partition there.
    pub dlt_partition: i32,
    /// Its offset there.
    pub dlt_offset: i64,
    /// The topic of the record that failed.
    pub original_topic: String,
    /// Its partition.
    pub original_partition: i32,
    /// Its offset.
    pub original_offset: i64,
    /// Its timestamp, ms since the Unix epoch.
    pub original_timestamp: Option<i64>,
    /// The consumer group that failed to handle it.
    pub consumer_group: Option<String>,
    /// The key bytes.
    pub key: Option<Vec<u8>>,
    /// The value bytes.
    pub payload: Option<Vec<u8>>,
    /// The record's own headers (the dead-letter headers left out).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The Rust type name of the error.
    pub exception_fqcn: Option<String>,
    /// The error message.
    pub exception_message: Option<String>,
    /// The error chain, one cause per line.
    pub exception_stacktrace: Option<String>,
    /// `Retryable`, `Fatal` or `Decode`, when the publisher said.
    pub error_kind: Option<String>,
    /// Attempts made before it was dead-lettered (0 when unknown).
    pub attempts: i64,
    /// When it was stored, ms since the Unix epoch.
    pub stored_at: i64,
    /// When it was last replayed, ms since the Unix epoch.
    pub replayed_at: Option<i64>,
}

impl StoredDeadLetter {
    /// The key as UTF-8 (lossy).
    pub fn key_str(&self) -> Option<String> {
        self.key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
    }

    /// The value as UTF-8 (lossy).
    pub fn payload_str(&self) -> Option<String> {
        self.payload
            .as_deref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// Dead letters in a database table; cheap to clone (one pool).
///
/// Fill it with [`DeadLetterStore::listener`], a listener on dead-letter
/// topics, or with [`DeadLetterStore::save`] from a listener of your own;
/// list with [`DeadLetterStore::list`]; replay one with
/// [`DeadLetterStore::replay`].
#[derive(Debug, Clone)]
pub struct DeadLetterStore {
    pub(super) pool: AnyPool,
}

pub(super) const COLUMNS: &str = "id, dlt_topic, dlt_partition, dlt_offset, original_topic, original_partition, original_offset, \
    original_timestamp, consumer_group, record_key, payload, headers, exception_fqcn, exception_message, \
    exception_stacktrace, error_kind, attempts, stored_at, replayed_at";

impl DeadLetterStore {
    /// A store over `pool`, SQLite or PostgreSQL: an `AnyPool` (install
    /// the drivers with `sqlx::any::install_default_drivers` first), a
    /// `PgPool` (feature `postgres`) or a `SqlitePool` (feature `sqlite`),
    /// by value or by reference ([`crate::IntoAnyPool`]); creates
    /// `kafka_dead_letters` if it is missing.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the table cannot be created, or the
    /// pool cannot be shared ([`crate::IntoAnyPool::into_any_pool`]).
    pub async fn new(pool: impl crate::IntoAnyPool) -> Result<Self, StoreError> {
        let pool = pool.into_any_pool()?;
        let conn = pool.acquire().await?;
        let blob = if conn.backend_name() == "PostgreSQL" {
            "BYTEA"
        } else {
            "BLOB"
        };
        drop(conn);
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS kafka_dead_letters (
                id TEXT PRIMARY KEY,
                dlt_topic TEXT NOT NULL,
                dlt_partition BIGINT NOT NULL,
                dlt_offset BIGINT NOT NULL,
                original_topic TEXT NOT NULL,
                original_partition BIGINT NOT NULL,
                original_offset BIGINT NOT NULL,
                original_timestamp BIGINT,
                consumer_group TEXT,
                record_key {blob},
                payload {blob},
                headers TEXT NOT NULL,
                exception_fqcn TEXT,
                exception_message TEXT,
                exception_stacktrace TEXT,
                error_kind TEXT,
                attempts BIGINT NOT NULL,
                stored_at BIGINT NOT NULL,
                replayed_at BIGINT
            )"
        );
        sqlx::query(&ddl).execute(&pool).await?;
        Ok(Self { pool })
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Stores the dead letter `record` (read from a dead-letter topic);
    /// returns its id. Storing the same record again changes nothing.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn save(&self, record: &ConsumerRecord) -> Result<String, StoreError> {
        let h = record.headers();
        let id = format!(
            "{}-{}-{}",
            record.topic(),
            record.partition(),
            record.offset()
        );
        let original = Original::from_headers(h).unwrap_or(Original {
            topic: record.topic().to_owned(),
            partition: record.partition(),
            offset: record.offset(),
            timestamp: record.timestamp(),
        });
        let own: Vec<(String, String)> = h
            .iter()
            .filter(|x| !headers::ALL.contains(&x.key.as_str()))
            .map(|x| (x.key.clone(), hex(x.value.as_deref().unwrap_or_default())))
            .collect();
        let own = serde_json::to_string(&own).unwrap_or_else(|_| "[]".into());
        let text = |k: &str| h.get_str(k).map(str::to_owned);
        sqlx::query(&format!(
            "INSERT INTO kafka_dead_letters ({COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, NULL)
             ON CONFLICT (id) DO NOTHING"
        ))
        .bind(&id)
        .bind(record.topic())
        .bind(i64::from(record.partition()))
        .bind(record.offset())
        .bind(&original.topic)
        .bind(i64::from(original.partition))
        .bind(original.offset)
        .bind(original.timestamp)
        .bind(text(headers::ORIGINAL_CONSUMER_GROUP))
        .bind(record.key().map(|k| k.to_vec()))
        .bind(record.value().map(|v| v.to_vec()))
        .bind(own)
        .bind(text(headers::EXCEPTION_FQCN))
        .bind(text(headers::EXCEPTION_MESSAGE))
        .bind(text(headers::EXCEPTION_STACKTRACE))
        .bind(text(headers::ERROR_KIND))
        .bind(h.get(headers::ATTEMPTS).and_then(be_i32).map_or(0, i64::from))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// The dead letters not replayed yet, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn list(&self) -> Result<Vec<StoredDeadLetter>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM kafka_dead_letters WHERE replayed_at IS NULL ORDER BY stored_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }

    /// One dead letter by id, replayed or not.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn get(&self, id: &str) -> Result<Option<StoredDeadLetter>, StoreError> {
        let found = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM kafka_dead_letters WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.as_ref().map(row).transpose()?)
    }

    /// A listener with id `id` that stores every record of the dead-letter
    /// `topics` (group `id`). A database that is down is retried without
    /// end (1 s to 30 s apart) while the partition waits, since a dead
    /// letter must not be skipped.
    pub fn listener<I, S>(&self, id: &str, topics: I) -> ListenerSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let store = self.clone();
        ListenerSpec::new(id)
            .topics(topics)
            .retry(RetryPolicy::exponential(
                u32::MAX,
                Duration::from_secs(1),
                2.0,
                Duration::from_secs(30),
            ))
            .handler(move |record: ConsumerRecord| {
                let store = store.clone();
                async move {
                    store
                        .save(&record)
                        .await
                        .map_err(ListenerError::retryable)?;
                    Ok::<(), ListenerError>(())
                }
            })
    }
}

pub(super) fn row(r: &sqlx::any::AnyRow) -> Result<StoredDeadLetter, sqlx::Error> {
    let headers: String = r.try_get("headers")?;
    let headers: Vec<(String, String)> = serde_json::from_str(&headers).unwrap_or_default();
    Ok(StoredDeadLetter {
        id: r.try_get("id")?,
        dlt_topic: r.try_get("dlt_topic")?,
        dlt_partition: r.try_get::<i64, _>("dlt_partition")? as i32,
        dlt_offset: r.try_get("dlt_offset")?,
        original_topic: r.try_get("original_topic")?,
        original_partition: r.try_get::<i64, _>("original_partition")? as i32,
        original_offset: r.try_get("original_offset")?,
        original_timestamp: r.try_get("original_timestamp")?,
        consumer_group: r.try_get("consumer_group")?,
        key: r.try_get("record_key")?,
        payload: r.try_get("payload")?,
        headers: headers.into_iter().map(|(k, v)| (k, unhex(&v))).collect(),
        exception_fqcn: r.try_get("exception_fqcn")?,
        exception_message: r.try_get("exception_message")?,
        exception_stacktrace: r.try_get("exception_stacktrace")?,
        error_kind: r.try_get("error_kind")?,
        attempts: r.try_get("attempts")?,
        stored_at: r.try_get("stored_at")?,
        replayed_at: r.try_get("replayed_at")?,
    })
}

pub(super) use crate::util::now_ms;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// The stored headers as record headers.
pub(super) fn to_headers(stored: &[(String, Vec<u8>)]) -> Vec<(String, Bytes)> {
    stored
        .iter()
        .map(|(k, v)| (k.clone(), Bytes::from(v.clone())))
        .collect()
}
