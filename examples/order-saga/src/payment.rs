//! The payment service: captures an order's amount when it is created, or
//! declines it (injected: `PAYMENT_FAILURE_RATE`); refunds it when a later
//! step failed (`inventory.failed`, or `inventory.released` after a
//! shipping failure). Owns `payments`; publishes through its outbox.

use kafka_listener::{ConsumerRecord, ListenerError, ListenerSpec, State};

use crate::config::Service;
use crate::events::{
    decode, step, Failure, OrderCreated, PaymentCompleted, PaymentFailed, PaymentRefunded,
    ORDERS_CREATED,
};
use crate::now_ms;
use crate::saga::{listener, Saga};

/// The listener `order-saga.payment`: `orders.created`, `inventory.failed`
/// and `inventory.released`.
pub(crate) fn spec(parallelism: usize) -> ListenerSpec {
    listener(Service::Payment, parallelism).handler(handle)
}

async fn handle(record: ConsumerRecord, saga: State<Saga>) -> Result<(), ListenerError> {
    match record.topic() {
        ORDERS_CREATED => charge(&saga, decode(&record)?).await,
        _ => refund(&saga, decode(&record)?).await,
    }
}

/// Captures the order's total, or declines it: one `payments` row per
/// order (its primary key makes a redelivery a no-op) and its event, in one
/// transaction.
async fn charge(saga: &Saga, order: OrderCreated) -> Result<(), ListenerError> {
    let now = now_ms();
    let config = &saga.config;
    let declined = config.fails(step::PAYMENT, &order.order_id, config.payment_failure_rate);
    let reason = declined.then(|| {
        format!(
            "payment declined (injected: PAYMENT_FAILURE_RATE={})",
            config.payment_failure_rate
        )
    });
    let claim = sqlx::query(
        "INSERT INTO payments (order_id, amount_cents, status, reason, updated_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order.order_id.clone())
    .bind(order.total_cents)
    .bind(if declined { "FAILED" } else { "CAPTURED" })
    .bind(reason.clone())
    .bind(now);
    let done = match reason {
        Some(reason) => {
            let failed =
                PaymentFailed::from(Failure::new(&order.order_id, step::PAYMENT, reason, now));
            saga.claim_and_publish(Service::Payment, claim, failed)
                .await?
        }
        None => {
            let completed = PaymentCompleted {
                order_id: order.order_id.clone(),
                amount_cents: order.total_cents,
                items: order.items,
                at: now,
            };
            saga.claim_and_publish(Service::Payment, claim, completed)
                .await?
        }
    };
    tracing::debug!(order_id = %order.order_id, declined, redelivered = !done, "payment");
    Ok(())
}

/// Refunds a captured payment (`CAPTURED` -> `REFUNDED`, once) and passes
/// the failure on with `PAYMENT_REFUNDED` appended.
async fn refund(saga: &Saga, failure: Failure) -> Result<(), ListenerError> {
    let now = now_ms();
    let claim = sqlx::query(
        "UPDATE payments SET status = 'REFUNDED', updated_at = $2
         WHERE order_id = $1 AND status = 'CAPTURED'",
    )
    .bind(failure.order_id.clone())
    .bind(now);
    let order_id = failure.order_id.clone();
    let refunded = PaymentRefunded::from(failure.compensated(step::PAYMENT_REFUNDED, now));
    let done = saga
        .claim_and_publish(Service::Payment, claim, refunded)
        .await?;
    tracing::debug!(%order_id, redelivered = !done, "refund");
    Ok(())
}
