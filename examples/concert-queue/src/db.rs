//! The database: sqlx `AnyPool` over SQLite or PostgreSQL, with SQL that
//! runs unchanged on both (`$1` placeholders, BIGINT epoch milliseconds,
//! `ON CONFLICT`, partial indexes).
//!
//! One table, `queue_tokens(token_id PK, user_id, status, created_at,
//! record_offset, admitted_at, expires_at, admission_seq, deliveries)`:
//! - `status` is `waiting`, `active` or `expired`; a partial unique index
//!   lets a user hold one `waiting` or `active` token at a time;
//! - `record_offset` is the token record's offset on partition 0 of
//!   [`crate::TOPIC`] (NULL only while the send is in flight): what the
//!   position is computed from;
//! - `admission_seq` numbers admissions 1, 2, 3, ... in the order the
//!   listener made them (unique), and `deliveries` counts how many times the
//!   token's record reached the listener (1 unless it was redelivered).
//!
//! The table is never scanned for a position: a waiting token's position is
//! its offset minus the listener's (see [`crate::position`]).
//!
//! SQLite allows one writer at a time: writes go through a pool of one
//! connection (WAL journal, so readers never wait for it), reads through a
//! pool of several. PostgreSQL uses one pool for both (see
//! [`example_support::db`]).

use example_support::db::{Backend, Pools};
use sqlx::Row;

/// Token statuses stored in `queue_tokens.status`.
pub(crate) mod status {
    /// In the queue, not admitted yet.
    pub(crate) const WAITING: &str = "waiting";
    /// Admitted; may enter until `expires_at`.
    pub(crate) const ACTIVE: &str = "active";
    /// Admitted, and its time ran out.
    pub(crate) const EXPIRED: &str = "expired";
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS queue_tokens (
        token_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        record_offset BIGINT,
        admitted_at BIGINT,
        expires_at BIGINT,
        admission_seq BIGINT,
        deliveries BIGINT NOT NULL DEFAULT 0
    )",
    "CREATE UNIQUE INDEX IF NOT EXISTS queue_tokens_one_per_user
        ON queue_tokens (user_id) WHERE status = 'waiting' OR status = 'active'",
    "CREATE UNIQUE INDEX IF NOT EXISTS queue_tokens_admission_seq
        ON queue_tokens (admission_seq)",
    "CREATE INDEX IF NOT EXISTS queue_tokens_status ON queue_tokens (status, expires_at)",
    "CREATE INDEX IF NOT EXISTS queue_tokens_admitted_at ON queue_tokens (admitted_at)",
];

/// The key of the PostgreSQL advisory lock that serializes [`SCHEMA`]
/// between starting instances.
const SCHEMA_LOCK: i64 = 7263052;

/// The service's database handle; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pools: Pools,
}

/// One row of `queue_tokens`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) token_id: String,
    pub(crate) user_id: String,
    pub(crate) status: String,
    pub(crate) created_at: i64,
    pub(crate) record_offset: Option<i64>,
    pub(crate) admitted_at: Option<i64>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) admission_seq: Option<i64>,
    pub(crate) deliveries: i64,
}

impl Token {
    /// The status as of `now`: an `active` token past `expires_at` is
    /// `expired` even before the sweeper marked it.
    pub(crate) fn status_at(&self, now: i64) -> &str {
        match (self.status.as_str(), self.expires_at) {
            (status::ACTIVE, Some(exp)) if exp <= now => status::EXPIRED,
            (s, _) => s,
        }
    }
}

/// What [`Db::enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Enqueued {
    /// A new `waiting` row.
    New,
    /// The user holds this `waiting` or `active` token already.
    Existing(Token),
}

/// What the listener did with one token record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The token is `active` now; the admission number.
    Admitted(i64),
    /// A redelivery: admitted before, nothing changed.
    AlreadyAdmitted,
    /// No such token (its send was reported failed to the client).
    Unknown,
}

/// Counts for `GET /queue/stats`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub(crate) waiting: i64,
    pub(crate) active: i64,
    pub(crate) expired: i64,
    pub(crate) admitted_total: i64,
    pub(crate) admitted_in_window: i64,
}

const TOKEN_COLUMNS: &str = "token_id, user_id, status, created_at, record_offset, admitted_at, expires_at, admission_seq, deliveries";

impl Db {
    /// Connects to `url` (`sqlite:...` or `postgres://...`; see
    /// [`Pools::connect`]).
    pub(crate) async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        Ok(Self {
            pools: Pools::connect(url).await?,
        })
    }

    /// The database behind the pools.
    pub(crate) fn backend(&self) -> Backend {
        self.pools.backend
    }

    /// Creates the table and its indexes if missing (serialized between
    /// instances on PostgreSQL).
    pub(crate) async fn migrate(&self) -> Result<(), sqlx::Error> {
        self.pools.migrate(SCHEMA_LOCK, SCHEMA).await
    }

    /// Closes both pools.
    pub(crate) async fn close(&self) {
        self.pools.close().await;
    }

    /// Puts a `waiting` token for the user, unless the user holds a
    /// `waiting` or `active` one already (an `active` one past its expiry is
    /// marked `expired` first and does not count).
    pub(crate) async fn enqueue(
        &self,
        token_id: &str,
        user_id: &str,
        now: i64,
    ) -> Result<Enqueued, sqlx::Error> {
        sqlx::query(
            "UPDATE queue_tokens SET status = 'expired'
             WHERE user_id = $1 AND status = 'active' AND expires_at <= $2",
        )
        .bind(user_id)
        .bind(now)
        .execute(&self.pools.writer)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO queue_tokens (token_id, user_id, status, created_at, deliveries)
             VALUES ($1, $2, 'waiting', $3, 0)
             ON CONFLICT DO NOTHING",
        )
        .bind(token_id)
        .bind(user_id)
        .bind(now)
        .execute(&self.pools.writer)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Enqueued::New);
        }
        let existing = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM queue_tokens
             WHERE user_id = $1 AND (status = 'waiting' OR status = 'active')"
        ))
        .bind(user_id)
        .fetch_optional(&self.pools.writer)
        .await?;
        match existing {
            Some(row) => Ok(Enqueued::Existing(token(&row)?)),
            // The token id collided (practically impossible) or the other
            // token expired in between: let the client retry.
            None => Err(sqlx::Error::Protocol(
                "token could not be enqueued; retry".into(),
            )),
        }
    }

    /// Records the offset the broker gave the token record.
    pub(crate) async fn set_offset(&self, token_id: &str, offset: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE queue_tokens SET record_offset = $2 WHERE token_id = $1")
            .bind(token_id)
            .bind(offset)
            .execute(&self.pools.writer)
            .await?;
        Ok(())
    }

    /// Removes a `waiting` token whose record the broker did not accept.
    pub(crate) async fn forget(&self, token_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM queue_tokens WHERE token_id = $1 AND status = 'waiting'")
            .bind(token_id)
            .execute(&self.pools.writer)
            .await?;
        Ok(())
    }

    /// One token, or `None`.
    pub(crate) async fn token(&self, token_id: &str) -> Result<Option<Token>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM queue_tokens WHERE token_id = $1"
        ))
        .bind(token_id)
        .fetch_optional(&self.pools.reader)
        .await?;
        row.as_ref().map(token).transpose()
    }

    /// Admits one token in one transaction: counts the delivery, and turns a
    /// `waiting` token `active` with `admitted_at = now`, `expires_at = now +
    /// ttl_ms` and the next admission number. A token admitted before (a
    /// redelivery) keeps its admission: the update is conditional on
    /// `status = 'waiting'`.
    pub(crate) async fn admit(
        &self,
        token_id: &str,
        offset: i64,
        now: i64,
        ttl_ms: i64,
    ) -> Result<Admission, sqlx::Error> {
        let mut tx = self.pools.writer.begin().await?;
        let known = sqlx::query(
            "UPDATE queue_tokens SET deliveries = deliveries + 1, record_offset = $2 WHERE token_id = $1",
        )
        .bind(token_id)
        .bind(offset)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if known == 0 {
            tx.rollback().await?;
            return Ok(Admission::Unknown);
        }
        let seq: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(admission_seq), 0) + 1 AS next_seq FROM queue_tokens",
        )
        .fetch_one(&mut *tx)
        .await?;
        let admitted = sqlx::query(
            "UPDATE queue_tokens SET status = 'active', admitted_at = $2, expires_at = $3, admission_seq = $4
             WHERE token_id = $1 AND status = 'waiting'",
        )
        .bind(token_id)
        .bind(now)
        .bind(now.saturating_add(ttl_ms))
        .bind(seq)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(if admitted == 1 {
            Admission::Admitted(seq)
        } else {
            Admission::AlreadyAdmitted
        })
    }

    /// Marks every `active` token past its expiry `expired`; returns how
    /// many.
    pub(crate) async fn expire_due(&self, now: i64) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query(
            "UPDATE queue_tokens SET status = 'expired' WHERE status = 'active' AND expires_at <= $1",
        )
        .bind(now)
        .execute(&self.pools.writer)
        .await?
        .rows_affected())
    }

    /// Token counts as of `now`; `admitted_in_window` counts admissions in
    /// `[now - window_ms, now]`.
    pub(crate) async fn counts(&self, now: i64, window_ms: i64) -> Result<Counts, sqlx::Error> {
        let row = sqlx::query(
            "SELECT
               SUM(CASE WHEN status = 'waiting' THEN 1 ELSE 0 END) AS waiting,
               SUM(CASE WHEN status = 'active' AND expires_at > $1 THEN 1 ELSE 0 END) AS active,
               SUM(CASE WHEN admitted_at IS NOT NULL THEN 1 ELSE 0 END) AS admitted,
               SUM(CASE WHEN admitted_at >= $2 THEN 1 ELSE 0 END) AS recent
             FROM queue_tokens",
        )
        .bind(now)
        .bind(now - window_ms)
        .fetch_one(&self.pools.reader)
        .await?;
        let get = |name: &str| -> Result<i64, sqlx::Error> {
            Ok(row.try_get::<Option<i64>, _>(name)?.unwrap_or(0))
        };
        let admitted_total = get("admitted")?;
        let active = get("active")?;
        Ok(Counts {
            waiting: get("waiting")?,
            active,
            expired: admitted_total - active,
            admitted_total,
            admitted_in_window: get("recent")?,
        })
    }
}

fn token(row: &sqlx::any::AnyRow) -> Result<Token, sqlx::Error> {
    Ok(Token {
        token_id: row.try_get("token_id")?,
        user_id: row.try_get("user_id")?,
        status: row.try_get("status")?,
        created_at: row.try_get("created_at")?,
        record_offset: row.try_get("record_offset")?,
        admitted_at: row.try_get("admitted_at")?,
        expires_at: row.try_get("expires_at")?,
        admission_seq: row.try_get("admission_seq")?,
        deliveries: row.try_get("deliveries")?,
    })
}
