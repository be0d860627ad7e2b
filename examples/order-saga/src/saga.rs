//! What every service's listener shares: the app state, the listener
//! settings, and the idempotent step that writes a row and the event it
//! causes in one transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_listener::after_commit::{EventTx, OutboxEvent, TransactionalEvents};
use kafka_listener::{DeadLetter, ListenerError, ListenerSpec, Ordering, RetryPolicy};

use crate::config::{Service, ServiceConfig};
use crate::db::{retryable, Db};
use crate::events::DLT;

/// The state of the listeners and HTTP handlers (`State<Saga>`); cheap to
/// clone.
#[derive(Debug, Clone)]
pub(crate) struct Saga {
    pub(crate) db: Db,
    pub(crate) config: Arc<ServiceConfig>,
    /// The outbox of each service this process runs (not analytics, which
    /// publishes nothing).
    pub(crate) outboxes: Arc<HashMap<Service, TransactionalEvents>>,
    /// The catalogue's product ids and names (products are never removed).
    pub(crate) products: Arc<HashMap<String, String>>,
}

impl Saga {
    /// Begins a transaction whose events go to `service`'s outbox.
    ///
    /// # Errors
    /// A retryable error when the database cannot be reached; a fatal one
    /// when this process does not run `service` (a bug).
    pub(crate) async fn begin(&self, service: Service) -> Result<EventTx, ListenerError> {
        let events = self.outboxes.get(&service).ok_or_else(|| {
            ListenerError::fatal(format!("this process has no {} outbox", service.name()))
        })?;
        events.begin().await.map_err(retryable)
    }

    /// One idempotent step of `service`: in one transaction, runs `claim`
    /// (an `INSERT ... ON CONFLICT DO NOTHING` or a conditional `UPDATE`
    /// with its binds) and, when it changed a row, publishes `event` to the
    /// outbox and commits. When it changed nothing the step was done
    /// before (a redelivery): nothing is published, `false` is returned.
    ///
    /// # Errors
    /// A retryable error for a database error.
    pub(crate) async fn claim_and_publish<'q, E>(
        &self,
        service: Service,
        claim: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        event: E,
    ) -> Result<bool, ListenerError>
    where
        E: OutboxEvent + Send + Sync + 'static,
    {
        let mut tx = self.begin(service).await?;
        let changed = claim
            .execute(&mut *tx)
            .await
            .map_err(retryable)?
            .rows_affected();
        if changed == 0 {
            tx.rollback().await.map_err(retryable)?;
            return Ok(false);
        }
        tx.publish(event).await.map_err(retryable)?;
        tx.commit().await.map_err(retryable)?;
        Ok(true)
    }
}

/// The listener of `service`: id and consumer group `order-saga.<name>`,
/// its [`Service::topics`], key ordering (one order's records of a partition one at a
/// time, up to `parallelism` orders at once), retries without end for
/// transient errors (a step must happen: the database may be down for a
/// while; 100 ms doubling to 5 s, from 10 ms for the order service, whose
/// usual retry is an event waiting a few milliseconds for its cause), and
/// a record that is not the JSON its topic carries goes to [`DLT`] at once.
pub(crate) fn listener(service: Service, parallelism: usize) -> ListenerSpec {
    ListenerSpec::new(service.group_id())
        .group_id(service.group_id())
        .topics(service.topics().iter().copied())
        .ordering(Ordering::Key)
        .parallelism(parallelism)
        .retry(RetryPolicy::exponential(
            u32::MAX,
            Duration::from_millis(if service == Service::Order { 10 } else { 100 }),
            2.0,
            Duration::from_secs(5),
        ))
        .dead_letter(DeadLetter::topic(DLT))
}
