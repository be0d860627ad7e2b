//! The inventory service: takes an order's stock once it is paid, or fails
//! when an item is short (then the payment is refunded); gives the stock
//! back when shipping failed. Owns `products.stock`, `reservations` and
//! `reservation_items`; publishes through its outbox.

use std::collections::BTreeMap;

use kafka_listener::{ConsumerRecord, ListenerError, ListenerSpec, State};

use crate::config::Service;
use crate::db::retryable;
use crate::events::{
    decode, step, Failure, InventoryFailed, InventoryReleased, InventoryReserved, PaymentCompleted,
    PAYMENTS_COMPLETED,
};
use crate::now_ms;
use crate::saga::{listener, Saga};

/// The listener `order-saga.inventory`: `payments.completed` and
/// `shipping.failed`.
pub(crate) fn spec(parallelism: usize) -> ListenerSpec {
    listener(Service::Inventory, parallelism).handler(handle)
}

async fn handle(record: ConsumerRecord, saga: State<Saga>) -> Result<(), ListenerError> {
    match record.topic() {
        PAYMENTS_COMPLETED => reserve(&saga, decode(&record)?).await,
        _ => release(&saga, decode(&record)?).await,
    }
}

/// Reserves every item of a paid order in one transaction: the
/// `reservations` row first (its primary key makes a redelivery a no-op),
/// then per product, in id order (so two orders lock products in the same
/// order on PostgreSQL), a conditional `UPDATE products SET stock = stock -
/// q` that needs `stock >= q`. An item short rolls all of it back and
/// records the failure instead, in a transaction of its own.
async fn reserve(saga: &Saga, paid: PaymentCompleted) -> Result<(), ListenerError> {
    let now = now_ms();
    let mut wanted: BTreeMap<&str, i64> = BTreeMap::new();
    for item in &paid.items {
        *wanted.entry(item.product_id.as_str()).or_default() += item.quantity;
    }
    let mut tx = saga.begin(Service::Inventory).await?;
    let claimed = claim_reservation(&paid.order_id, "RESERVED", None, now)
        .execute(&mut *tx)
        .await
        .map_err(retryable)?
        .rows_affected();
    if claimed == 0 {
        tx.rollback().await.map_err(retryable)?;
        tracing::debug!(order_id = %paid.order_id, "reservation redelivered");
        return Ok(());
    }
    let mut short = None;
    for (product_id, quantity) in &wanted {
        let taken = sqlx::query(
            "UPDATE products SET stock = stock - $2 WHERE product_id = $1 AND stock >= $2",
        )
        .bind(*product_id)
        .bind(*quantity)
        .execute(&mut *tx)
        .await
        .map_err(retryable)?
        .rows_affected();
        if taken == 0 {
            short = Some(*product_id);
            break;
        }
        sqlx::query(
            "INSERT INTO reservation_items (order_id, product_id, quantity) VALUES ($1, $2, $3)",
        )
        .bind(&paid.order_id)
        .bind(*product_id)
        .bind(*quantity)
        .execute(&mut *tx)
        .await
        .map_err(retryable)?;
    }
    let Some(product_id) = short else {
        tx.publish(InventoryReserved {
            order_id: paid.order_id,
            items: paid.items,
            at: now,
        })
        .await
        .map_err(retryable)?;
        tx.commit().await.map_err(retryable)?;
        return Ok(());
    };
    tx.rollback().await.map_err(retryable)?;
    let reason = format!("out of stock: {product_id}");
    let claim = claim_reservation(&paid.order_id, "FAILED", Some(reason.clone()), now);
    let failed = InventoryFailed::from(Failure::new(&paid.order_id, step::INVENTORY, reason, now));
    saga.claim_and_publish(Service::Inventory, claim, failed)
        .await?;
    Ok(())
}

/// `INSERT INTO reservations ... ON CONFLICT DO NOTHING`: the claim of an
/// order's reservation, `RESERVED` or `FAILED` (with the reason).
fn claim_reservation<'q>(
    order_id: &'q str,
    status: &'static str,
    reason: Option<String>,
    now: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(
        "INSERT INTO reservations (order_id, status, reason, updated_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(status)
    .bind(reason)
    .bind(now)
}

/// Gives a failed order's stock back (`RESERVED` -> `RELEASED`, once) and
/// passes the failure on with `STOCK_RELEASED` appended.
async fn release(saga: &Saga, failure: Failure) -> Result<(), ListenerError> {
    let now = now_ms();
    let mut tx = saga.begin(Service::Inventory).await?;
    let claimed = sqlx::query(
        "UPDATE reservations SET status = 'RELEASED', updated_at = $2
         WHERE order_id = $1 AND status = 'RESERVED'",
    )
    .bind(&failure.order_id)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(retryable)?
    .rows_affected();
    if claimed == 0 {
        tx.rollback().await.map_err(retryable)?;
        return Ok(());
    }
    let items: Vec<(String, i64)> = sqlx::query_as(
        "SELECT product_id, quantity FROM reservation_items WHERE order_id = $1
         ORDER BY product_id",
    )
    .bind(&failure.order_id)
    .fetch_all(&mut *tx)
    .await
    .map_err(retryable)?;
    for (product_id, quantity) in items {
        sqlx::query("UPDATE products SET stock = stock + $2 WHERE product_id = $1")
            .bind(product_id)
            .bind(quantity)
            .execute(&mut *tx)
            .await
            .map_err(retryable)?;
    }
    tx.publish(InventoryReleased::from(
        failure.compensated(step::STOCK_RELEASED, now),
    ))
    .await
    .map_err(retryable)?;
    tx.commit().await.map_err(retryable)?;
    Ok(())
}
