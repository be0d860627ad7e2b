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
//! The schema is in `migrations/` (one set of files for both databases),
//! embedded by `sqlx::migrate!` and applied at start by [`Db::migrate`].
//!
//! The table is never scanned for a position: a waiting token's position is
//! its offset minus the listener's (see [`crate::position`]).
//!
//! SQLite allows one writer at a time: writes go through a pool of one
//! connection (WAL journal, so readers never wait for it), reads through a
//! pool of several. PostgreSQL uses one pool for both (see
//! [`example_support::db`]).

use example_support::db::{Backend, Pools};
use sqlx::migrate::MigrateError;

/// Token statuses stored in `queue_tokens.status`.
pub(crate) mod status {
    /// In the queue, not admitted yet.
    pub(crate) const WAITING: &str = "waiting";
    /// Admitted; may enter until `expires_at`.
    pub(crate) const ACTIVE: &str = "active";
    /// Admitted, and its time ran out.
    pub(crate) const EXPIRED: &str = "expired";
}

/// The service's database handle; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pools: Pools,
}

/// One row of `queue_tokens`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Counts {
    /// Tokens `waiting`.
    pub(crate) waiting: i64,
    /// Tokens `active` and not past their expiry.
    pub(crate) active: i64,
    /// Tokens ever admitted.
    pub(crate) admitted_total: i64,
    /// Tokens admitted in the window asked for.
    pub(crate) admitted_in_window: i64,
}

impl Counts {
    /// Tokens admitted and expired (marked or not yet).
    pub(crate) fn expired(&self) -> i64 {
        self.admitted_total - self.active
    }
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

    /// Applies the migrations of `migrations/` not applied yet (see
    /// [`Pools::migrate`]).
    pub(crate) async fn migrate(&self) -> Result<(), MigrateError> {
        self.pools.migrate(sqlx::migrate!()).await
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
        let existing = sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM queue_tokens
             WHERE user_id = $1 AND (status = 'waiting' OR status = 'active')"
        ))
        .bind(user_id)
        .fetch_optional(&self.pools.writer)
        .await?;
        match existing {
            Some(token) => Ok(Enqueued::Existing(token)),
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
        sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM queue_tokens WHERE token_id = $1"
        ))
        .bind(token_id)
        .fetch_optional(&self.pools.reader)
        .await
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
        // COALESCE: SUM over no rows is NULL.
        sqlx::query_as(
            "SELECT
               COALESCE(SUM(CASE WHEN status = 'waiting' THEN 1 ELSE 0 END), 0) AS waiting,
               COALESCE(SUM(CASE WHEN status = 'active' AND expires_at > $1 THEN 1 ELSE 0 END), 0) AS active,
               COALESCE(SUM(CASE WHEN admitted_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS admitted_total,
               COALESCE(SUM(CASE WHEN admitted_at >= $2 THEN 1 ELSE 0 END), 0) AS admitted_in_window
             FROM queue_tokens",
        )
        .bind(now)
        .bind(now - window_ms)
        .fetch_one(&self.pools.reader)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The migrations run once; a user holds one live token; admission is
    /// numbered and happens once per token; expiry and the counts follow.
    #[tokio::test]
    async fn migrations_and_the_token_lifecycle_on_sqlite() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        db.migrate().await.unwrap();
        assert_eq!(db.counts(0, 1_000).await.unwrap(), Counts::default());

        assert_eq!(db.enqueue("t1", "alice", 10).await.unwrap(), Enqueued::New);
        assert_eq!(db.enqueue("t2", "bob", 11).await.unwrap(), Enqueued::New);
        let Enqueued::Existing(held) = db.enqueue("t3", "alice", 12).await.unwrap() else {
            panic!("alice holds t1");
        };
        assert_eq!(held.token_id, "t1");
        db.set_offset("t1", 0).await.unwrap();
        let t1 = db.token("t1").await.unwrap().unwrap();
        assert_eq!(
            t1,
            Token {
                token_id: "t1".into(),
                user_id: "alice".into(),
                status: status::WAITING.into(),
                created_at: 10,
                record_offset: Some(0),
                admitted_at: None,
                expires_at: None,
                admission_seq: None,
                deliveries: 0,
            }
        );
        assert_eq!(db.token("t3").await.unwrap(), None);

        assert_eq!(
            db.admit("t1", 0, 100, 50).await.unwrap(),
            Admission::Admitted(1)
        );
        assert_eq!(
            db.admit("t1", 0, 120, 50).await.unwrap(),
            Admission::AlreadyAdmitted
        );
        assert_eq!(
            db.admit("t2", 1, 130, 50).await.unwrap(),
            Admission::Admitted(2)
        );
        assert_eq!(
            db.admit("gone", 2, 130, 50).await.unwrap(),
            Admission::Unknown
        );
        let t1 = db.token("t1").await.unwrap().unwrap();
        assert_eq!(
            (t1.status_at(149), t1.admitted_at, t1.expires_at),
            (status::ACTIVE, Some(100), Some(150))
        );
        assert_eq!((t1.admission_seq, t1.deliveries), (Some(1), 2));
        assert_eq!(t1.status_at(150), status::EXPIRED);

        assert_eq!(db.enqueue("t4", "carol", 140).await.unwrap(), Enqueued::New);
        let counts = db.counts(160, 40).await.unwrap();
        assert_eq!(
            counts,
            Counts {
                waiting: 1,
                active: 1,
                admitted_total: 2,
                admitted_in_window: 1,
            }
        );
        assert_eq!(counts.expired(), 1);
        assert_eq!(db.expire_due(160).await.unwrap(), 1);
        // Alice's token expired: she may queue again.
        assert_eq!(db.enqueue("t5", "alice", 170).await.unwrap(), Enqueued::New);
        db.forget("t5").await.unwrap();
        assert_eq!(db.token("t5").await.unwrap(), None);
        db.close().await;
    }
}
