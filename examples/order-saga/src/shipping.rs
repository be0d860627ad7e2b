//! The shipping service: ships an order whose stock is reserved, or fails
//! (injected: `SHIPPING_FAILURE_RATE`), which starts the compensations.
//! Owns `shipments`; publishes through its outbox.

use kafka_listener::{ConsumerRecord, ListenerError, ListenerSpec, State};

use crate::config::Service;
use crate::events::{decode, step, Failure, InventoryReserved, ShippingCompleted, ShippingFailed};
use crate::now_ms;
use crate::saga::{listener, Saga};

/// The listener `order-saga.shipping`: `inventory.reserved`.
pub(crate) fn spec(parallelism: usize) -> ListenerSpec {
    listener(Service::Shipping, parallelism).handler(handle)
}

/// Ships, or fails to: one `shipments` row per order (a redelivery is a
/// no-op) and its event, in one transaction.
async fn handle(record: ConsumerRecord, saga: State<Saga>) -> Result<(), ListenerError> {
    let reserved: InventoryReserved = decode(&record)?;
    let now = now_ms();
    let config = &saga.config;
    let failed = config.fails(
        step::SHIPPING,
        &reserved.order_id,
        config.shipping_failure_rate,
    );
    let reason = failed.then(|| {
        format!(
            "no carrier available (injected: SHIPPING_FAILURE_RATE={})",
            config.shipping_failure_rate
        )
    });
    let claim = sqlx::query(
        "INSERT INTO shipments (order_id, status, reason, updated_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(reserved.order_id.clone())
    .bind(if failed { "FAILED" } else { "SHIPPED" })
    .bind(reason.clone())
    .bind(now);
    let order_id = reserved.order_id;
    let done = match reason {
        Some(reason) => {
            let event = ShippingFailed::from(Failure::new(&order_id, step::SHIPPING, reason, now));
            saga.claim_and_publish(Service::Shipping, claim, event)
                .await?
        }
        None => {
            let event = ShippingCompleted {
                order_id: order_id.clone(),
                at: now,
            };
            saga.claim_and_publish(Service::Shipping, claim, event)
                .await?
        }
    };
    tracing::debug!(%order_id, failed, redelivered = !done, "shipping");
    Ok(())
}
