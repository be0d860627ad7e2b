//! The order service: creates orders (from the HTTP API) and follows each
//! through the saga from every step's events, keeping its status and
//! history; publishes `orders.created`, and `orders.completed` or
//! `orders.cancelled` when it ends. Owns `orders`, `order_items` and
//! `order_history`.

use kafka_listener::{ConsumerRecord, ListenerError, ListenerSpec, State};
use serde::Deserialize;

use crate::config::Service;
use crate::db::{retryable, OrderRow};
use crate::events::{
    self, decode, Finished, Item, OrderCancelled, OrderCompleted, OrderCreated, INVENTORY_FAILED,
    INVENTORY_RELEASED, INVENTORY_RESERVED, PAYMENTS_COMPLETED, PAYMENTS_FAILED, PAYMENTS_REFUNDED,
    SHIPPING_COMPLETED, SHIPPING_FAILED,
};
use crate::now_ms;
use crate::saga::{listener, Saga};

/// Order statuses, as `GET /api/orders/{id}` shows them.
pub mod status {
    /// Accepted; the payment is next.
    pub const CREATED: &str = "CREATED";
    /// Paid; the inventory is next.
    pub const PAYMENT_COMPLETED: &str = "PAYMENT_COMPLETED";
    /// Stock reserved; shipping is next.
    pub const INVENTORY_RESERVED: &str = "INVENTORY_RESERVED";
    /// A step failed; compensations are under way.
    pub const COMPENSATING: &str = "COMPENSATING";
    /// Shipped: the saga ended well (final).
    pub const COMPLETED: &str = "COMPLETED";
    /// A step failed and what was done before it was compensated (final).
    pub const CANCELLED: &str = "CANCELLED";
}

/// The rank of the final statuses: nothing moves an order past them.
const FINAL_RANK: i64 = 9;

/// What an event does to its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Moves the order forward to this status, unless it is further.
    Advance(&'static str),
    /// The saga ended well.
    Complete,
    /// The saga ended compensated.
    Cancel,
}

/// Each topic the order service follows: its history step, the step's rank
/// (orders the history when two steps share a millisecond, and orders the
/// statuses) and its effect.
#[rustfmt::skip]
const STEPS: [(&str, &str, i64, Effect); 8] = [
    (PAYMENTS_COMPLETED, "PAYMENT_COMPLETED", 1, Effect::Advance(status::PAYMENT_COMPLETED)),
    (INVENTORY_RESERVED, "INVENTORY_RESERVED", 2, Effect::Advance(status::INVENTORY_RESERVED)),
    (SHIPPING_COMPLETED, "SHIPPED", 3, Effect::Complete),
    (PAYMENTS_FAILED, "PAYMENT_FAILED", 4, Effect::Cancel),
    (INVENTORY_FAILED, "INVENTORY_FAILED", 4, Effect::Advance(status::COMPENSATING)),
    (SHIPPING_FAILED, "SHIPPING_FAILED", 4, Effect::Advance(status::COMPENSATING)),
    (INVENTORY_RELEASED, "STOCK_RELEASED", 5, Effect::Advance(status::COMPENSATING)),
    (PAYMENTS_REFUNDED, "PAYMENT_REFUNDED", 6, Effect::Cancel),
];

/// The step that must be in an order's history before `step` is applied:
/// the event that caused it, which came on another topic and so may be
/// handled later. `None` for the payment's outcome, caused by the order's
/// creation (committed before its event was sent).
fn cause(step: &str, event: &StepEvent) -> Option<&'static str> {
    match step {
        "INVENTORY_RESERVED" | "INVENTORY_FAILED" => Some("PAYMENT_COMPLETED"),
        "SHIPPED" | "SHIPPING_FAILED" => Some("INVENTORY_RESERVED"),
        "STOCK_RELEASED" => Some("SHIPPING_FAILED"),
        "PAYMENT_REFUNDED" if event.failed_step.as_deref() == Some(events::step::SHIPPING) => {
            Some("STOCK_RELEASED")
        }
        "PAYMENT_REFUNDED" => Some("INVENTORY_FAILED"),
        _ => None,
    }
}

/// An event handled before the event that caused it: retried (with the
/// listener's back-off, holding back only its order's key) until the cause
/// is in the history.
#[derive(Debug, thiserror::Error)]
#[error("order {order_id}: {step} arrived before {cause}; waiting for it")]
struct CauseNotSeen {
    order_id: String,
    step: &'static str,
    cause: &'static str,
}

/// The listener `order-saga.order`: every step's event topic.
pub(crate) fn spec(parallelism: usize) -> ListenerSpec {
    listener(Service::Order, parallelism).handler(track)
}

/// Any step event, as the order service reads it (the fields it does not
/// need are ignored; a failure's fields are there only on failures and
/// compensations).
#[derive(Debug, Deserialize)]
struct StepEvent {
    order_id: String,
    at: i64,
    failed_step: Option<String>,
    reason: Option<String>,
    #[serde(default)]
    compensations: Vec<String>,
}

/// A new order, validated by the HTTP handler.
#[derive(Debug, Clone)]
pub(crate) struct NewOrder {
    pub(crate) customer_id: String,
    pub(crate) items: Vec<Item>,
}

/// Creates an order: the `orders` row, its items, its first history step
/// and the `orders.created` event, in one transaction. Returns its id (a
/// UUID v4).
///
/// # Errors
/// The database error.
pub(crate) async fn create(saga: &Saga, order: NewOrder) -> Result<String, ListenerError> {
    let order_id = kafka_listener::after_commit::new_event_id();
    let now = now_ms();
    let total_cents: i64 = order.items.iter().map(|i| i.price_cents * i.quantity).sum();
    let mut tx = saga.begin(Service::Order).await?;
    sqlx::query(
        "INSERT INTO orders (order_id, customer_id, total_cents, status, status_rank, created_at)
         VALUES ($1, $2, $3, $4, 0, $5)",
    )
    .bind(&order_id)
    .bind(&order.customer_id)
    .bind(total_cents)
    .bind(status::CREATED)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(retryable)?;
    for (line, item) in order.items.iter().enumerate() {
        sqlx::query(
            "INSERT INTO order_items (order_id, line, product_id, name, price_cents, quantity)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&order_id)
        .bind(line as i64)
        .bind(&item.product_id)
        .bind(&item.name)
        .bind(item.price_cents)
        .bind(item.quantity)
        .execute(&mut *tx)
        .await
        .map_err(retryable)?;
    }
    history(&mut tx, &order_id, status::CREATED, 0, now, None).await?;
    tx.publish(OrderCreated {
        order_id: order_id.clone(),
        customer_id: order.customer_id,
        items: order.items,
        total_cents,
        at: now,
    })
    .await
    .map_err(retryable)?;
    tx.commit().await.map_err(retryable)?;
    Ok(order_id)
}

/// Inserts a history step; `false` when the order has it already (a
/// redelivery).
async fn history(
    tx: &mut kafka_listener::after_commit::EventTx,
    order_id: &str,
    step: &str,
    rank: i64,
    at: i64,
    detail: Option<&str>,
) -> Result<bool, ListenerError> {
    let inserted = sqlx::query(
        "INSERT INTO order_history (order_id, step, step_rank, at, detail)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id, step) DO NOTHING",
    )
    .bind(order_id)
    .bind(step)
    .bind(rank)
    .bind(at)
    .bind(detail)
    .execute(&mut **tx)
    .await
    .map_err(retryable)?
    .rows_affected();
    Ok(inserted == 1)
}

/// Applies one step event to its order, in one transaction: the history
/// step (its primary key makes a redelivery a no-op), then the status. An
/// order's events come on several topics, so not necessarily in saga
/// order: an event waits for its cause ([`cause`]), so the history of a
/// final order is whole; a status only moves up in rank, and the final
/// statuses are set once (`WHERE final_at IS NULL`), with the final event
/// published to the outbox in the same transaction.
async fn track(record: ConsumerRecord, saga: State<Saga>) -> Result<(), ListenerError> {
    let (_, step, rank, effect) = STEPS
        .iter()
        .find(|s| s.0 == record.topic())
        .copied()
        .ok_or_else(|| ListenerError::fatal(format!("unexpected topic {}", record.topic())))?;
    let event: StepEvent = decode(&record)?;
    let mut tx = saga.begin(Service::Order).await?;
    if let Some(cause) = cause(step, &event) {
        let seen: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM order_history WHERE order_id = $1 AND step = $2",
        )
        .bind(&event.order_id)
        .bind(cause)
        .fetch_one(&mut *tx)
        .await
        .map_err(retryable)?;
        if seen == 0 {
            tx.rollback().await.map_err(retryable)?;
            // Expected: the cause is on another topic, and comes.
            return Err(ListenerError::retryable(CauseNotSeen {
                order_id: event.order_id,
                step,
                cause,
            })
            .logged_at(tracing::Level::DEBUG));
        }
    }
    if !history(
        &mut tx,
        &event.order_id,
        step,
        rank,
        event.at,
        event.reason.as_deref(),
    )
    .await?
    {
        tx.rollback().await.map_err(retryable)?;
        return Ok(());
    }
    let compensations =
        serde_json::to_string(&event.compensations).map_err(ListenerError::fatal)?;
    let updated = match effect {
        Effect::Advance(status) => sqlx::query(
            "UPDATE orders SET status = $2, status_rank = $3,
                 failed_step = COALESCE($4, failed_step), reason = COALESCE($5, reason)
             WHERE order_id = $1 AND final_at IS NULL AND status_rank < $3",
        )
        .bind(&event.order_id)
        .bind(status)
        .bind(rank)
        .bind(&event.failed_step)
        .bind(&event.reason),
        Effect::Complete | Effect::Cancel => sqlx::query(
            "UPDATE orders SET status = $2, status_rank = $3, failed_step = $4, reason = $5,
                 compensations = $6, final_at = $7
             WHERE order_id = $1 AND final_at IS NULL",
        )
        .bind(&event.order_id)
        .bind(if effect == Effect::Complete {
            status::COMPLETED
        } else {
            status::CANCELLED
        })
        .bind(FINAL_RANK)
        .bind(&event.failed_step)
        .bind(&event.reason)
        .bind(compensations)
        .bind(event.at),
    }
    .execute(&mut *tx)
    .await
    .map_err(retryable)?
    .rows_affected();
    if updated == 1 && matches!(effect, Effect::Complete | Effect::Cancel) {
        finish(&mut tx, &event, effect == Effect::Complete).await?;
    }
    tx.commit().await.map_err(retryable)?;
    Ok(())
}

/// The last history step (`COMPLETED` or `CANCELLED`) and the final event,
/// in the transaction that set the final status.
async fn finish(
    tx: &mut kafka_listener::after_commit::EventTx,
    event: &StepEvent,
    completed: bool,
) -> Result<(), ListenerError> {
    let status = if completed {
        status::COMPLETED
    } else {
        status::CANCELLED
    };
    history(tx, &event.order_id, status, FINAL_RANK, event.at, None).await?;
    let order: OrderRow = sqlx::query_as(
        "SELECT order_id, customer_id, total_cents, status, failed_step, reason,
                compensations, created_at, final_at
         FROM orders WHERE order_id = $1",
    )
    .bind(&event.order_id)
    .fetch_one(&mut **tx)
    .await
    .map_err(retryable)?;
    let finished = Finished {
        order_id: order.order_id,
        status: status.to_owned(),
        total_cents: order.total_cents,
        failed_step: order.failed_step,
        created_at: order.created_at,
        at: event.at,
    };
    let published = if completed {
        tx.publish(OrderCompleted::from(finished)).await
    } else {
        tx.publish(OrderCancelled::from(finished)).await
    };
    published.map_err(retryable)?;
    tracing::debug!(order_id = %event.order_id, status, "order finished");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_of_the_order_service_is_a_step() {
        let topics = Service::Order.topics();
        assert_eq!(topics.len(), STEPS.len());
        for topic in topics {
            assert!(STEPS.iter().any(|s| s.0 == *topic), "{topic}");
        }
    }
}
