//! The analytics service: a read model of the orders, built only from the
//! events `orders.created`, `orders.completed` and `orders.cancelled`, and
//! what `GET /api/analytics` answers from it. Owns `analytics_orders`;
//! publishes nothing, so it needs no outbox: each event is one idempotent
//! upsert keyed by the order id.

use std::collections::BTreeMap;

use kafka_listener::{ConsumerRecord, ListenerError, ListenerSpec, State};
use serde::{Deserialize, Serialize};

use crate::config::Service;
use crate::db::{retryable, Db};
use crate::events::{decode, Finished, OrderCreated, ORDERS_CREATED};
use crate::order::status;
use crate::saga::{listener, Saga};

/// The window of [`Analytics::orders_per_second`], in milliseconds.
pub(crate) const RATE_WINDOW_MS: i64 = 60_000;

/// The listener `order-saga.analytics`: `orders.created`,
/// `orders.completed` and `orders.cancelled`.
pub(crate) fn spec(parallelism: usize) -> ListenerSpec {
    listener(Service::Analytics, parallelism).handler(handle)
}

/// An order's creation inserts its row unless the row exists (a
/// redelivery, or its end came first: the topics are not ordered with each
/// other); its end writes the final status whatever came before.
async fn handle(record: ConsumerRecord, saga: State<Saga>) -> Result<(), ListenerError> {
    let query = if record.topic() == ORDERS_CREATED {
        let created: OrderCreated = decode(&record)?;
        sqlx::query(
            "INSERT INTO analytics_orders (order_id, status, total_cents, failed_step, created_at, final_at)
             VALUES ($1, $2, $3, NULL, $4, NULL) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(created.order_id)
        .bind(status::CREATED)
        .bind(created.total_cents)
        .bind(created.at)
    } else {
        let finished: Finished = decode(&record)?;
        sqlx::query(
            "INSERT INTO analytics_orders (order_id, status, total_cents, failed_step, created_at, final_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (order_id) DO UPDATE SET status = excluded.status,
                 failed_step = excluded.failed_step, final_at = excluded.final_at",
        )
        .bind(finished.order_id)
        .bind(finished.status)
        .bind(finished.total_cents)
        .bind(finished.failed_step)
        .bind(finished.created_at)
        .bind(finished.at)
    };
    query.execute(saga.db.writer()).await.map_err(retryable)?;
    Ok(())
}

/// `GET /api/analytics`: what the analytics service has seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Analytics {
    /// Orders seen, by status: `CREATED` (not finished yet), `COMPLETED`,
    /// `CANCELLED`.
    pub orders_by_status: BTreeMap<String, i64>,
    /// Every order seen.
    pub total_orders: i64,
    /// The totals of the completed orders, in cents.
    pub revenue_cents: i64,
    /// [`Self::revenue_cents`] in currency units.
    pub revenue: f64,
    /// Cancelled orders by the step that failed (`PAYMENT`, `INVENTORY`,
    /// `SHIPPING`).
    pub failures: BTreeMap<String, i64>,
    /// Orders created over the last minute, per second.
    pub orders_per_second: f64,
}

/// Reads the read model.
///
/// # Errors
/// The database error.
pub(crate) async fn read(db: &Db, now: i64) -> Result<Analytics, sqlx::Error> {
    let mut conn = db.reader().begin().await?;
    let by_status: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT status, COUNT(*), CAST(COALESCE(SUM(total_cents), 0) AS BIGINT) FROM analytics_orders
         GROUP BY status",
    )
    .fetch_all(&mut *conn)
    .await?;
    let failures: Vec<(String, i64)> = sqlx::query_as(
        "SELECT COALESCE(failed_step, 'UNKNOWN'), COUNT(*) FROM analytics_orders
         WHERE status = $1 GROUP BY failed_step",
    )
    .bind(status::CANCELLED)
    .fetch_all(&mut *conn)
    .await?;
    let recent: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM analytics_orders WHERE created_at > $1")
            .bind(now - RATE_WINDOW_MS)
            .fetch_one(&mut *conn)
            .await?;
    conn.commit().await?;
    let revenue_cents = by_status
        .iter()
        .find(|(s, _, _)| s == status::COMPLETED)
        .map_or(0, |(_, _, cents)| *cents);
    Ok(Analytics {
        total_orders: by_status.iter().map(|(_, n, _)| n).sum(),
        orders_by_status: by_status.into_iter().map(|(s, n, _)| (s, n)).collect(),
        revenue_cents,
        revenue: revenue_cents as f64 / 100.0,
        failures: failures.into_iter().collect(),
        orders_per_second: recent as f64 * 1000.0 / RATE_WINDOW_MS as f64,
    })
}
