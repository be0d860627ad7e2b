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

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

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
    /// Coupons known to exist. Coupons are never deleted, so a coupon seen
    /// once exists for good: [`Db::coupon_exists`] asks the database only
    /// about ids not seen yet.
    known: Arc<RwLock<HashSet<String>>>,
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
            known: Arc::default(),
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

    /// Whether the coupon exists: from memory for a coupon seen before,
    /// otherwise from the database.
    pub(crate) async fn coupon_exists(&self, coupon_id: &str) -> Result<bool, sqlx::Error> {
        let known = |db: &Self| {
            db.known
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(coupon_id)
        };
        if known(self) {
            return Ok(true);
        }
        let found: Option<i64> =
            sqlx::query_scalar("SELECT stock FROM coupons WHERE coupon_id = $1")
                .bind(coupon_id)
                .fetch_optional(&self.pools.reader)
                .await?;
        if found.is_some() {
            self.known
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(coupon_id.to_owned());
        }
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

    /// Records requests as `pending`, each unless the user has a request
    /// for that coupon already: one multi-row statement (the group commit of
    /// [`crate::pending::PendingWriter`]). Each item is `(coupon_id,
    /// user_id, requested_at)`.
    pub(crate) async fn mark_pending(&self, rows: &[(&str, &str, i64)]) -> Result<(), sqlx::Error> {
        for chunk in rows.chunks(MAX_ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO coupon_requests (coupon_id, user_id, status, requested_at) VALUES {}
                 ON CONFLICT (coupon_id, user_id) DO NOTHING",
                values(self.backend(), chunk.len(), 4)
            );
            let mut query = sqlx::query(&sql);
            for (coupon_id, user_id, requested_at) in chunk {
                query = query
                    .bind(*coupon_id)
                    .bind(*user_id)
                    .bind(status::PENDING)
                    .bind(*requested_at);
            }
            query.execute(&self.pools.writer).await?;
        }
        Ok(())
    }

    /// Removes the `pending` row of a request whose record the broker did
    /// not accept: the row this request wrote (`requested_at`), not the one
    /// of an earlier request of the user that is on the topic.
    pub(crate) async fn forget_pending(
        &self,
        coupon_id: &str,
        user_id: &str,
        requested_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "DELETE FROM coupon_requests
             WHERE coupon_id = $1 AND user_id = $2 AND status = $3 AND requested_at = $4",
        )
        .bind(coupon_id)
        .bind(user_id)
        .bind(status::PENDING)
        .bind(requested_at)
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

    /// Decides a batch of requests (one partition's, in offset order) in
    /// one transaction, in order: never issues past the stock, at most once
    /// per user (primary key of `coupon_issues`), and a request decided
    /// before (or repeated earlier in the batch) changes nothing.
    ///
    /// Returns the outcome of each request decided, in order. When a
    /// request's coupon does not exist, its outcome
    /// ([`IssueOutcome::UnknownCoupon`]) is the last one: the requests
    /// before it are decided and committed, the ones after it are not.
    ///
    /// No lock is taken: a coupon's requests arrive one batch at a time from
    /// one partition. The batch reads each coupon's `issued` once and
    /// writes it back with `WHERE issued = <what it read>`; should two
    /// deliveries of the same records overlap (a rebalance), the one that
    /// comes second finds `issued` moved (or a `coupon_issues` row taken),
    /// rolls back and fails with [`DecideError::Raced`], to be retried.
    ///
    /// Statements per batch: per coupon in it, one read of the coupon, one
    /// of its decided requests and one update; then one insert of the
    /// issues, one upsert of the requests and one outbox row per issue.
    /// That is what lets one SQLite writer decide ten thousand requests a
    /// second (docs/use-cases/coupon-issuance.md).
    ///
    /// # Errors
    /// [`DecideError::Events`] for a database error, [`DecideError::Raced`]
    /// as above.
    pub(crate) async fn issue_batch(
        &self,
        events: &TransactionalEvents,
        requests: &[Request<'_>],
        now: i64,
    ) -> Result<Vec<IssueOutcome>, DecideError> {
        let mut tx = events.begin().await?;
        // Each coupon of the batch, in order of first appearance.
        let mut coupons: Vec<CouponState<'_>> = Vec::new();
        for r in requests {
            let id = r.req.coupon_id.as_str();
            if coupons.iter().any(|c| c.id == id) {
                continue;
            }
            let row: Option<(i64, i64)> =
                sqlx::query_as("SELECT stock, issued FROM coupons WHERE coupon_id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let decided = match row {
                Some(_) => decided_users(self.backend(), tx.transaction(), id, requests).await?,
                None => HashSet::new(),
            };
            coupons.push(CouponState {
                id,
                row,
                decided,
                taken: 0,
            });
        }

        let mut outcomes = Vec::with_capacity(requests.len());
        let mut seen: HashSet<(&str, &str)> = HashSet::new();
        let mut issued: Vec<&Request<'_>> = Vec::new();
        let mut sold_out: Vec<&Request<'_>> = Vec::new();
        for r in requests {
            let (coupon_id, user_id) = (r.req.coupon_id.as_str(), r.req.user_id.as_str());
            let coupon = coupons
                .iter_mut()
                .find(|c| c.id == coupon_id)
                .expect("every coupon of the batch was read");
            let Some((stock, before)) = coupon.row else {
                outcomes.push(IssueOutcome::UnknownCoupon);
                break;
            };
            if !seen.insert((coupon_id, user_id)) || coupon.decided.contains(user_id) {
                outcomes.push(IssueOutcome::AlreadyDecided);
            } else if before + coupon.taken < stock {
                coupon.taken += 1;
                issued.push(r);
                outcomes.push(IssueOutcome::Issued);
            } else {
                sold_out.push(r);
                outcomes.push(IssueOutcome::SoldOut);
            }
        }

        for coupon in coupons.iter().filter(|c| c.taken > 0) {
            let before = coupon.row.map_or(0, |(_, issued)| issued);
            let updated = sqlx::query(
                "UPDATE coupons SET issued = issued + $2 WHERE coupon_id = $1 AND issued = $3",
            )
            .bind(coupon.id)
            .bind(coupon.taken)
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated != 1 {
                tx.rollback().await?;
                return Err(DecideError::Raced);
            }
        }
        for chunk in issued.chunks(MAX_ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO coupon_issues (coupon_id, user_id, issued_at, source_partition, source_offset)
                 VALUES {} ON CONFLICT (coupon_id, user_id) DO NOTHING",
                values(self.backend(), chunk.len(), 5)
            );
            let mut query = sqlx::query(&sql);
            for r in chunk {
                query = query
                    .bind(&r.req.coupon_id)
                    .bind(&r.req.user_id)
                    .bind(now)
                    .bind(i64::from(r.partition))
                    .bind(r.offset);
            }
            if query.execute(&mut *tx).await?.rows_affected() != chunk.len() as u64 {
                // Issued by an overlapping delivery: undo everything.
                tx.rollback().await?;
                return Err(DecideError::Raced);
            }
        }
        decide(
            self.backend(),
            tx.transaction(),
            &issued,
            status::ISSUED,
            now,
        )
        .await?;
        decide(
            self.backend(),
            tx.transaction(),
            &sold_out,
            status::SOLD_OUT,
            now,
        )
        .await?;
        // The outbox rows of `coupon.issued`, in this transaction: the
        // relay sends them after the commit, or at the next start after a
        // crash.
        for r in &issued {
            tx.publish(CouponIssued {
                coupon_id: r.req.coupon_id.clone(),
                user_id: r.req.user_id.clone(),
                issued_at: now.into(),
            })
            .await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Marks a request that failed for good (its record is in the
    /// dead-letter store) `failed`, unless it was decided.
    pub(crate) async fn mark_failed(
        &self,
        request: &IssueRequested,
        error: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(UPSERT_REQUEST_FAILED)
            .bind(&request.coupon_id)
            .bind(&request.user_id)
            .bind(status::FAILED)
            .bind(request.requested_at.as_millis())
            .bind(now)
            .bind(error)
            .execute(&self.pools.writer)
            .await?;
        Ok(())
    }
}

/// Rows per multi-row statement: 5 parameters a row stay far below
/// SQLite's limit of 32,766 parameters and PostgreSQL's of 65,535.
const MAX_ROWS_PER_STATEMENT: usize = 500;

/// The `n`th (from 1) parameter of a statement built here: `$n` on
/// PostgreSQL, `?` on SQLite. SQLite looks a `$n` parameter up by a linear
/// scan of the statement's parameter names, so binding a multi-row statement
/// of `$n` parameters costs time quadratic in its size (sqlx binds by name);
/// `?` parameters bind by position.
fn param(backend: Backend, n: usize, sql: &mut String) {
    match backend {
        Backend::Sqlite => sql.push('?'),
        Backend::Postgres => {
            sql.push('$');
            sql.push_str(&n.to_string());
        }
    }
}

/// The parameters `first..first + count`, comma-separated (see [`param`]).
fn params(backend: Backend, first: usize, count: usize) -> String {
    let mut sql = String::with_capacity(count * 5);
    for i in 0..count {
        if i > 0 {
            sql.push_str(", ");
        }
        param(backend, first + i, &mut sql);
    }
    sql
}

/// `(p1, p2, ..), (pk+1, ..), ..`: the `VALUES` of `rows` rows of
/// `columns` parameters each (see [`param`]).
fn values(backend: Backend, rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * (columns * 5 + 4));
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        sql.push_str(&params(backend, row * columns + 1, columns));
        sql.push(')');
    }
    sql
}

/// A request of a batch and the record it came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'r> {
    pub(crate) req: &'r IssueRequested,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
}

/// Why [`Db::issue_batch`] decided nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecideError {
    /// The database failed.
    #[error(transparent)]
    Events(#[from] EventsError),
    /// Another delivery of the same records decided some of them first (a
    /// rebalance overlap); nothing was written, try again.
    #[error(
        "another delivery of these requests decided some of them first; nothing written, retrying"
    )]
    Raced,
}

impl From<sqlx::Error> for DecideError {
    fn from(e: sqlx::Error) -> Self {
        Self::Events(e.into())
    }
}

/// A coupon of a batch: its `(stock, issued)` row (`None`: no such coupon),
/// the users of the batch whose request for it is decided already, and how
/// many the batch issues.
struct CouponState<'r> {
    id: &'r str,
    row: Option<(i64, i64)>,
    decided: HashSet<String>,
    taken: i64,
}

/// The users among `requests` for `coupon_id` whose request is `issued` or
/// `sold_out` already.
async fn decided_users(
    backend: Backend,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    coupon_id: &str,
    requests: &[Request<'_>],
) -> Result<HashSet<String>, sqlx::Error> {
    let users: Vec<&str> = requests
        .iter()
        .filter(|r| r.req.coupon_id == coupon_id)
        .map(|r| r.req.user_id.as_str())
        .collect();
    let mut decided = HashSet::new();
    for chunk in users.chunks(MAX_ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT user_id FROM coupon_requests
             WHERE coupon_id = {} AND status IN ({}) AND user_id IN ({})",
            params(backend, 1, 1),
            params(backend, 2, 2),
            params(backend, 4, chunk.len())
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql)
            .bind(coupon_id)
            .bind(status::ISSUED)
            .bind(status::SOLD_OUT);
        for user in chunk {
            query = query.bind(*user);
        }
        decided.extend(query.fetch_all(&mut **tx).await?);
    }
    Ok(decided)
}

/// Upserts a request's row; a request already `issued` or `sold_out` keeps
/// its outcome (a `pending` or `failed` one takes the new one).
const UPSERT_REQUEST: &str = "ON CONFLICT (coupon_id, user_id) DO UPDATE
    SET status = excluded.status, decided_at = excluded.decided_at, detail = excluded.detail
    WHERE coupon_requests.status = 'pending' OR coupon_requests.status = 'failed'";

/// [`UPSERT_REQUEST`] of one `failed` row with its detail.
const UPSERT_REQUEST_FAILED: &str = "INSERT INTO coupon_requests
    (coupon_id, user_id, status, requested_at, decided_at, detail)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (coupon_id, user_id) DO UPDATE
    SET status = excluded.status, decided_at = excluded.decided_at, detail = excluded.detail
    WHERE coupon_requests.status = 'pending' OR coupon_requests.status = 'failed'";

/// Sets the outcome of `requests` (one multi-row upsert per
/// [`MAX_ROWS_PER_STATEMENT`]); see [`UPSERT_REQUEST`].
async fn decide(
    backend: Backend,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    requests: &[&Request<'_>],
    outcome: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    for chunk in requests.chunks(MAX_ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO coupon_requests (coupon_id, user_id, status, requested_at, decided_at)
             VALUES {} {UPSERT_REQUEST}",
            values(backend, chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for r in chunk {
            query = query
                .bind(&r.req.coupon_id)
                .bind(&r.req.user_id)
                .bind(outcome)
                .bind(r.req.requested_at.as_millis())
                .bind(now);
        }
        query.execute(&mut **tx).await?;
    }
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

        let pending = |users: &[&'static str], at: i64| -> Vec<(&str, &str, i64)> {
            users.iter().map(|u| ("c", *u, at)).collect()
        };
        db.mark_pending(&pending(&["alice", "bob", "carol"], 20))
            .await
            .unwrap();
        // A second request of alice leaves her first one alone.
        db.mark_pending(&pending(&["alice"], 21)).await.unwrap();
        db.forget_pending("c", "alice", 21).await.unwrap();
        let coupon = |pending, issued, sold_out, failed| Coupon {
            coupon_id: "c".into(),
            stock: 1,
            issued,
            pending,
            sold_out,
            failed,
        };
        assert_eq!(db.coupon("c").await.unwrap(), Some(coupon(3, 0, 0, 0)));

        let (alice, bob, dave) = (
            request("c", "alice"),
            request("c", "bob"),
            request("nope", "dave"),
        );
        fn batch<'r>(reqs: Vec<&'r IssueRequested>) -> Vec<Request<'r>> {
            reqs.into_iter()
                .enumerate()
                .map(|(i, req)| Request {
                    req,
                    partition: 0,
                    offset: i as i64,
                })
                .collect()
        }
        // alice gets the only coupon; her repeated request and her
        // redelivery change nothing; bob finds it sold out; the batch stops
        // at dave's unknown coupon, and what came before it is committed.
        assert_eq!(
            db.issue_batch(&events, &batch(vec![&alice, &alice, &bob, &dave, &bob]), 30)
                .await
                .unwrap(),
            vec![
                IssueOutcome::Issued,
                IssueOutcome::AlreadyDecided,
                IssueOutcome::SoldOut,
                IssueOutcome::UnknownCoupon
            ]
        );
        assert_eq!(
            db.issue_batch(&events, &batch(vec![&alice, &bob]), 31)
                .await
                .unwrap(),
            vec![IssueOutcome::AlreadyDecided, IssueOutcome::AlreadyDecided]
        );
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
        // An overlapping delivery issued erin's coupon and has not written
        // her request's outcome yet: this batch finds her issue row taken,
        // writes nothing and asks to be retried.
        assert!(db.create_coupon("d", 5, 10).await.unwrap());
        let erin = request("d", "erin");
        sqlx::query(
            "INSERT INTO coupon_issues (coupon_id, user_id, issued_at, source_partition, source_offset)
             VALUES ('d', 'erin', 1, 0, 0)",
        )
        .execute(&db.pool())
        .await
        .unwrap();
        let raced = db.issue_batch(&events, &batch(vec![&erin]), 50).await;
        assert!(matches!(raced, Err(DecideError::Raced)), "{raced:?}");
        assert_eq!(db.coupon("d").await.unwrap().map(|c| c.issued), Some(0));
        let outbox: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kafka_outbox")
            .fetch_one(&db.pool())
            .await
            .unwrap();
        assert_eq!(outbox, 1, "one coupon.issued event, for alice");
        db.close().await;
    }
}
