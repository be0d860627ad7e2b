//! The database: sqlx `AnyPool` over SQLite or PostgreSQL, with SQL that
//! runs unchanged on both (`$1` placeholders, BIGINT epoch milliseconds,
//! `ON CONFLICT`).
//!
//! The schema is in `migrations/` (one set of files for both databases),
//! embedded by `sqlx::migrate!` and applied at start by [`Db::migrate`].
//! Tables:
//! - `coupons(coupon_id PK, stock, issued, created_at)`, with
//!   `CHECK (issued <= stock)` as a last line of defence;
//! - `coupon_issues(coupon_id, user_id, issued_at, source_partition,
//!   source_offset)`, primary key `(coupon_id, user_id)`: one coupon per user;
//! - `coupon_requests(coupon_id, user_id, status, requested_at, decided_at,
//!   detail)`, primary key `(coupon_id, user_id)`: what the status endpoint
//!   reads (`pending`, `issued`, `sold_out`, `failed`);
//! - dead letters are in the framework's `kafka_dead_letters` table
//!   (`kafka_listener::dlq::DeadLetterStore`, over the writer pool);
//! - `coupon.issued` events wait in the framework's `kafka_outbox` table
//!   (`kafka_listener::after_commit::TransactionalEvents`, over the writer
//!   pool) until the relay sent them.
//!
//! SQLite allows one writer at a time: writes go through a pool of one
//! connection (WAL journal, so readers never wait for it), reads through a
//! pool of several. PostgreSQL uses one pool for both (see
//! [`example_support::db`]).

use example_support::db::{Backend, Pools};
use sqlx::migrate::MigrateError;
use sqlx::AnyPool;

use kafka_listener::after_commit::{Error as EventsError, TransactionalEvents};

use crate::listener::{CouponIssued, IssueRequested};

/// Request statuses stored in `coupon_requests.status`.
pub(crate) mod status {
    /// Accepted by the broker, not decided yet.
    pub(crate) const PENDING: &str = "pending";
    /// The user got the coupon.
    pub(crate) const ISSUED: &str = "issued";
    /// No stock was left when the request's turn came.
    pub(crate) const SOLD_OUT: &str = "sold_out";
    /// The request failed for good and is in the dead-letter table.
    pub(crate) const FAILED: &str = "failed";
}

/// The service's database handle; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pools: Pools,
}

/// What the listener did with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IssueOutcome {
    /// A coupon was issued to the user.
    Issued,
    /// No stock was left; recorded as `sold_out`.
    SoldOut,
    /// The request was decided before (a redelivery or a repeated request):
    /// nothing changed.
    AlreadyDecided,
    /// No such coupon.
    UnknownCoupon,
}

/// A coupon with its request counts (what `GET /coupons/{id}` shows).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Coupon {
    pub(crate) coupon_id: String,
    pub(crate) stock: i64,
    pub(crate) issued: i64,
    /// Requests `pending`.
    pub(crate) pending: i64,
    /// Requests `sold_out`.
    pub(crate) sold_out: i64,
    /// Requests `failed`.
    pub(crate) failed: i64,
}

/// A row of `coupon_requests`: a status and its times (milliseconds since
/// the Unix epoch).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct RequestRow {
    /// `pending`, `issued`, `sold_out` or `failed`.
    pub(crate) status: String,
    /// When the service accepted the request.
    pub(crate) requested_at: i64,
    /// When the listener decided it; `None` while pending.
    pub(crate) decided_at: Option<i64>,
}

impl Db {
    /// Connects to `url` (`sqlite:...` or `postgres://...`; see
    /// [`Pools::connect`]).
    pub(crate) async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        Ok(Self {
            pools: Pools::connect(url).await?,
        })
    }

    /// The writer pool (the dead-letter store writes through it).
    pub(crate) fn pool(&self) -> AnyPool {
        self.pools.writer.clone()
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

    /// Creates a coupon; `false` when one with this id exists already.
    pub(crate) async fn create_coupon(
        &self,
        coupon_id: &str,
        stock: i64,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO coupons (coupon_id, stock, issued, created_at) VALUES ($1, $2, 0, $3)
             ON CONFLICT (coupon_id) DO NOTHING",
        )
        .bind(coupon_id)
        .bind(stock)
        .bind(now)
        .execute(&self.pools.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether the coupon exists.
    pub(crate) async fn coupon_exists(&self, coupon_id: &str) -> Result<bool, sqlx::Error> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT stock FROM coupons WHERE coupon_id = $1")
                .bind(coupon_id)
                .fetch_optional(&self.pools.reader)
                .await?;
        Ok(found.is_some())
    }

    /// The coupon with its request counts, or `None`. One statement, so one
    /// snapshot: `issued` and the counts always agree (two queries could
    /// straddle a decision and show it in neither).
    pub(crate) async fn coupon(&self, coupon_id: &str) -> Result<Option<Coupon>, sqlx::Error> {
        sqlx::query_as(
            "SELECT c.coupon_id, c.stock, c.issued,
               (SELECT COUNT(*) FROM coupon_requests r WHERE r.coupon_id = c.coupon_id AND r.status = $2) AS pending,
               (SELECT COUNT(*) FROM coupon_requests r WHERE r.coupon_id = c.coupon_id AND r.status = $3) AS sold_out,
               (SELECT COUNT(*) FROM coupon_requests r WHERE r.coupon_id = c.coupon_id AND r.status = $4) AS failed
             FROM coupons c WHERE c.coupon_id = $1",
        )
        .bind(coupon_id)
        .bind(status::PENDING)
        .bind(status::SOLD_OUT)
        .bind(status::FAILED)
        .fetch_optional(&self.pools.reader)
        .await
    }

    /// Records a request as `pending` unless the user has a request for this
    /// coupon already; `true` when a row was inserted.
    pub(crate) async fn mark_pending(
        &self,
        coupon_id: &str,
        user_id: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO coupon_requests (coupon_id, user_id, status, requested_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (coupon_id, user_id) DO NOTHING",
        )
        .bind(coupon_id)
        .bind(user_id)
        .bind(status::PENDING)
        .bind(now)
        .execute(&self.pools.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a `pending` row whose record the broker did not accept.
    pub(crate) async fn forget_pending(
        &self,
        coupon_id: &str,
        user_id: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "DELETE FROM coupon_requests WHERE coupon_id = $1 AND user_id = $2 AND status = $3",
        )
        .bind(coupon_id)
        .bind(user_id)
        .bind(status::PENDING)
        .execute(&self.pools.writer)
        .await?;
        Ok(())
    }

    /// A user's request for a coupon (status and times), or `None`.
    pub(crate) async fn request(
        &self,
        coupon_id: &str,
        user_id: &str,
    ) -> Result<Option<RequestRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT status, requested_at, decided_at FROM coupon_requests \
             WHERE coupon_id = $1 AND user_id = $2",
        )
        .bind(coupon_id)
        .bind(user_id)
        .fetch_optional(&self.pools.reader)
        .await
    }

    /// Decides one request in one transaction. Never issues past the stock
    /// (conditional update), at most once per user (primary key of
    /// `coupon_issues`), and a request decided before changes nothing.
    ///
    /// No lock is taken: requests for one coupon arrive one at a time from
    /// one partition. Should two deliveries of the same request overlap
    /// (a rebalance), the row lock of the conditional update and the unique
    /// insert still let only one of them issue.
    pub(crate) async fn issue(
        &self,
        events: &TransactionalEvents,
        req: &IssueRequested,
        partition: i32,
        offset: i64,
        now: i64,
    ) -> Result<IssueOutcome, EventsError> {
        let mut tx = events.begin().await?;
        let decided: Option<String> = sqlx::query_scalar(
            "SELECT status FROM coupon_requests WHERE coupon_id = $1 AND user_id = $2",
        )
        .bind(&req.coupon_id)
        .bind(&req.user_id)
        .fetch_optional(&mut *tx)
        .await?;
        if matches!(decided.as_deref(), Some(status::ISSUED | status::SOLD_OUT)) {
            tx.rollback().await?;
            return Ok(IssueOutcome::AlreadyDecided);
        }
        let taken = sqlx::query(
            "UPDATE coupons SET issued = issued + 1 WHERE coupon_id = $1 AND issued < stock",
        )
        .bind(&req.coupon_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if taken == 0 {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT stock FROM coupons WHERE coupon_id = $1")
                    .bind(&req.coupon_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_none() {
                tx.rollback().await?;
                return Ok(IssueOutcome::UnknownCoupon);
            }
            decide(tx.transaction(), req, status::SOLD_OUT, now, None).await?;
            tx.commit().await?;
            return Ok(IssueOutcome::SoldOut);
        }
        let inserted = sqlx::query(
            "INSERT INTO coupon_issues (coupon_id, user_id, issued_at, source_partition, source_offset)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (coupon_id, user_id) DO NOTHING",
        )
        .bind(&req.coupon_id)
        .bind(&req.user_id)
        .bind(now)
        .bind(i64::from(partition))
        .bind(offset)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            // Issued by an overlapping delivery: undo our increment.
            tx.rollback().await?;
            return Ok(IssueOutcome::AlreadyDecided);
        }
        decide(tx.transaction(), req, status::ISSUED, now, None).await?;
        // The outbox row of `coupon.issued`, in this transaction: the relay
        // sends it after the commit, or at the next start after a crash.
        tx.publish(CouponIssued {
            coupon_id: req.coupon_id.clone(),
            user_id: req.user_id.clone(),
            issued_at: now.into(),
        })
        .await?;
        tx.commit().await?;
        Ok(IssueOutcome::Issued)
    }

    /// Marks a request that failed for good (its record is in the
    /// dead-letter store) `failed`, unless it was decided.
    pub(crate) async fn mark_failed(
        &self,
        request: &IssueRequested,
        error: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pools.writer.begin().await?;
        decide(&mut tx, request, status::FAILED, now, Some(error)).await?;
        tx.commit().await
    }
}

/// Sets a request's outcome; a request already `issued` or `sold_out` keeps
/// its outcome (a `pending` or `failed` one takes the new one).
async fn decide(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    req: &IssueRequested,
    outcome: &str,
    now: i64,
    detail: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO coupon_requests (coupon_id, user_id, status, requested_at, decided_at, detail)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (coupon_id, user_id) DO UPDATE
           SET status = excluded.status, decided_at = excluded.decided_at, detail = excluded.detail
           WHERE coupon_requests.status = 'pending' OR coupon_requests.status = 'failed'",
    )
    .bind(&req.coupon_id)
    .bind(&req.user_id)
    .bind(outcome)
    .bind(req.requested_at.as_millis())
    .bind(now)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(coupon_id: &str, user_id: &str) -> IssueRequested {
        IssueRequested {
            coupon_id: coupon_id.into(),
            user_id: user_id.into(),
            requested_at: 1_000.into(),
        }
    }

    /// The migrations create the tables once (a second start changes
    /// nothing), and a coupon's decisions show in its `Coupon` row.
    #[tokio::test]
    async fn migrations_and_decisions_on_sqlite() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        db.migrate().await.unwrap();
        let events = TransactionalEvents::builder(db.pool())
            .build()
            .await
            .unwrap();

        assert!(db.create_coupon("c", 1, 10).await.unwrap());
        assert!(!db.create_coupon("c", 5, 11).await.unwrap());
        assert!(db.coupon_exists("c").await.unwrap());
        assert_eq!(db.coupon("nope").await.unwrap(), None);

        assert!(db.mark_pending("c", "alice", 20).await.unwrap());
        assert!(!db.mark_pending("c", "alice", 21).await.unwrap());
        assert!(db.mark_pending("c", "bob", 22).await.unwrap());
        assert!(db.mark_pending("c", "carol", 23).await.unwrap());
        let coupon = |pending, issued, sold_out, failed| Coupon {
            coupon_id: "c".into(),
            stock: 1,
            issued,
            pending,
            sold_out,
            failed,
        };
        assert_eq!(db.coupon("c").await.unwrap(), Some(coupon(3, 0, 0, 0)));

        let issue = |user: &'static str, offset| {
            let (db, events) = (db.clone(), events.clone());
            async move {
                db.issue(&events, &request("c", user), 0, offset, 30)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(issue("alice", 0).await, IssueOutcome::Issued);
        assert_eq!(issue("alice", 0).await, IssueOutcome::AlreadyDecided);
        assert_eq!(issue("bob", 1).await, IssueOutcome::SoldOut);
        db.mark_failed(&request("c", "carol"), "boom", 40)
            .await
            .unwrap();
        // A decided request keeps its outcome.
        db.mark_failed(&request("c", "alice"), "late", 41)
            .await
            .unwrap();
        assert_eq!(db.coupon("c").await.unwrap(), Some(coupon(0, 1, 1, 1)));
        assert_eq!(
            db.request("c", "alice")
                .await
                .unwrap()
                .map(|r| r.status)
                .as_deref(),
            Some(status::ISSUED)
        );
        assert_eq!(
            db.request("c", "carol")
                .await
                .unwrap()
                .map(|r| r.status)
                .as_deref(),
            Some(status::FAILED)
        );
        assert_eq!(
            db.issue(&events, &request("nope", "dave"), 0, 2, 50)
                .await
                .unwrap(),
            IssueOutcome::UnknownCoupon
        );
        let outbox: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kafka_outbox")
            .fetch_one(&db.pool())
            .await
            .unwrap();
        assert_eq!(outbox, 1, "one coupon.issued event, for alice");
        db.close().await;
    }
}
