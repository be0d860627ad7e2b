//! Events published after a database transaction commits: the counterpart
//! of Spring's `@TransactionalEventListener(phase = AFTER_COMMIT)`, plus a
//! transactional outbox so that an event meant for Kafka survives a crash
//! between the commit and the send.
//!
//! # In-process handlers: `#[after_commit]`
//!
//! ```no_run
//! use kafka_listener::after_commit::TransactionalEvents;
//! use kafka_listener::{after_commit, State};
//!
//! #[derive(Clone)]
//! struct CouponIssued { coupon_id: String, user_id: String }
//!
//! #[derive(Clone)]
//! struct Cache; // the app's state
//! impl Cache { fn remember(&self, _coupon: &str, _user: &str) {} }
//!
//! #[after_commit]
//! async fn warm_cache(event: CouponIssued, cache: State<Cache>) {
//!     cache.remember(&event.coupon_id, &event.user_id);
//! }
//!
//! # async fn run(pool: sqlx::AnyPool, coupon_id: String, user_id: String) -> Result<(), Box<dyn std::error::Error>> {
//! let events = TransactionalEvents::builder(pool).state(Cache).build().await?;
//! let mut tx = events.begin().await?;
//! sqlx::query("UPDATE coupons SET issued = issued + 1 WHERE coupon_id = $1")
//!     .bind(&coupon_id)
//!     .execute(&mut *tx)
//!     .await?;
//! tx.publish(CouponIssued { coupon_id, user_id }).await?;
//! tx.commit().await?; // warm_cache runs here, after the commit, and sees the row
//! # Ok(())
//! # }
//! ```
//!
//! - Handlers run after `commit()` succeeds, one at a time, before
//!   `commit()` returns; their failures (errors and panics) are logged,
//!   counted and reported in [`Committed::handlers`], and never undo the
//!   commit. On rollback, on a failed commit and when the [`EventTx`] is
//!   dropped they never run.
//! - An event published outside a transaction
//!   ([`TransactionalEvents::publish`]) is discarded, except for handlers
//!   with `#[after_commit(fallback_execution = true)]`, which run at once
//!   (Spring's semantics).
//! - In-process handlers are not durable: a crash after the commit loses
//!   them, as in Spring. What must reach Kafka goes through the outbox.
//!
//! # Kafka through the outbox: `#[derive(OutboxEvent)]`
//!
//! An event type that names a topic and a key is written, as JSON, to the
//! outbox table in the publishing transaction; after the commit the relay
//! sends it with a [`KafkaTemplate`](crate::KafkaTemplate) and marks it
//! sent. At start-up the relay sends whatever a crash left unsent.
//!
//! This is how an app (coupon-service, for example) publishes
//! `coupon.issued`:
//!
//! ```no_run
//! use kafka_listener::after_commit::{OutboxEvent, RelayConfig, TransactionalEvents};
//!
//! #[derive(Clone, serde::Serialize, OutboxEvent)]
//! #[outbox(topic = "coupon.issued", key = "coupon_id")]
//! struct CouponIssued { coupon_id: String, user_id: String, issued_at: i64 }
//!
//! # async fn run(app: kafka_listener::KafkaApp, pool: sqlx::AnyPool) -> Result<(), Box<dyn std::error::Error>> {
//! # let (coupon_id, user_id, now) = (String::new(), String::new(), 0_i64);
//! // At start-up, once: creates the `kafka_outbox` table if missing,
//! // validates the `#[after_commit]` handlers, starts the relay (which first
//! // sends what a previous run left unsent).
//! let events = TransactionalEvents::builder(pool.clone()).build().await?;
//! let relay = events.start_relay(app.template(), RelayConfig::default());
//!
//! // In the listener or the HTTP handler, one transaction:
//! let mut tx = events.begin().await?;
//! sqlx::query("INSERT INTO coupon_issues (coupon_id, user_id, issued_at) VALUES ($1, $2, $3)")
//!     .bind(&coupon_id)
//!     .bind(&user_id)
//!     .bind(now)
//!     .execute(&mut *tx)
//!     .await?;
//! tx.publish(CouponIssued { coupon_id, user_id, issued_at: now }).await?; // an outbox row
//! tx.commit().await?; // the relay is woken up and sends the record
//!
//! // At shutdown, after the listeners stopped and before the template is
//! // flushed (`RunningApp::shutdown`):
//! relay.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! On SQLite, give `TransactionalEvents` the pool that writes (with
//! coupon-service's one-connection writer pool the relay's `UPDATE`s queue
//! behind the app's transactions instead of failing with `SQLITE_BUSY`).
//!
//! `use kafka_listener::after_commit::OutboxEvent` brings both the trait and
//! the derive; `TransactionalEvents` is cheap to clone: keep one in the app
//! state (`KafkaApp::state`) and take it in listeners as
//! `State<TransactionalEvents>`.
//!
//! The record: topic `coupon.issued`, key the `coupon_id` field (as a
//! string), value the event as JSON, timestamp the publish time, headers
//! `kafka_listener-event-id` (a UUID v4, unique per event: consumers drop
//! duplicates by it) and `kafka_listener-event-type` (the event's name,
//! [`OutboxEvent::NAME`]: `#[outbox(name = "...")]`, by default the type's
//! name without its module path). The relay finds a row's type by that
//! name; a row whose name no type of the binary has stays unsent, with the
//! reason in its `last_error` (see `docs/src/after-commit.md`).
//! Delivery is at-least-once: a crash after the send and before the row is
//! marked sent sends it again, with the same event id. Records of one key
//! are sent one at a time in outbox-id order, so their order holds across
//! failures, back-offs and restarts; different keys are sent in parallel,
//! and a key whose send fails (a record too large, a missing topic, a broker
//! outage) waits its own back-off while the others go on; its rows count
//! the failures (`attempts`, `last_error`, see
//! [`TransactionalEvents::outbox_rows`]).
//! The outbox id order is the publish order within a transaction and the
//! commit order of transactions that serialize on a row (as the coupon's
//! row in coupon-service); see [`RelayConfig`] for throughput.
//!
//! An outbox type may also have `#[after_commit]` handlers; both happen.
//!
//! # Metrics
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `kafka_listener_after_commit_handlers_total` | counter | `event` | handler calls that succeeded |
//! | `kafka_listener_after_commit_handler_failures_total` | counter | `event` | handler calls that failed or panicked |
//! | `kafka_listener_outbox_published_total` | counter | `table` | outbox records the broker acknowledged |
//! | `kafka_listener_outbox_send_failures_total` | counter | `table` | failed outbox sends (each retried) |
//! | `kafka_listener_outbox_unknown_event_total` | counter | `table` | tries of rows whose event name no type of the binary has (left unsent) |

mod handlers;
mod keys;
mod leader;
mod outbox;
mod relay;
mod table;
mod tx;

use std::time::{SystemTime, UNIX_EPOCH};

pub use self::handlers::{
    entry, AfterCommitHandler, AfterCommitRegistration, EntryFn, EventContext, EventMeta,
    FromEventContext, HandlerReport, HandlerResult, Op, Outcome,
};
#[cfg(feature = "asyncapi")]
pub(crate) use self::outbox::events as outbox_events;
pub use self::outbox::{OutboxEvent, OutboxRegistration, OutboxRow};
pub use self::relay::{RelayConfig, RelayHandle, RelayStats};
pub use self::tx::{
    Committed, EventTx, Published, TransactionalEvents, TransactionalEventsBuilder,
};

/// `#[derive(OutboxEvent)]` (the same name as the trait, as serde's
/// `Serialize`).
#[cfg(feature = "macros")]
pub use kafka_listener_macros::OutboxEvent;

/// The header that carries the event's unique id (a UUID v4 string).
pub const EVENT_ID_HEADER: &str = "kafka_listener-event-id";

/// The header that carries the event's name ([`OutboxEvent::NAME`]:
/// `#[outbox(name = "...")]`, by default the type's name).
pub const EVENT_TYPE_HEADER: &str = "kafka_listener-event-type";

/// The default outbox table name.
pub const DEFAULT_OUTBOX_TABLE: &str = "kafka_outbox";

/// Errors of transactional event publication.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused a statement, the begin or the commit.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// An outbox event could not be encoded as JSON; nothing was written.
    #[error("cannot encode outbox event `{event_type}` as JSON: {source}")]
    Serialization {
        /// The event's Rust type name.
        event_type: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// An `#[after_commit]` handler cannot work (for example a `State<T>`
    /// that was never registered); reported by
    /// [`TransactionalEventsBuilder::build`].
    #[error("after-commit handler `{handler}`: {reason}")]
    Handler {
        /// The handler's path.
        handler: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Invalid configuration: the outbox table name, an unsupported
    /// database.
    #[error("configuration: {0}")]
    Config(String),
}

/// A new event id: a random UUID v4 in its 36-character text form.
pub fn new_event_id() -> String {
    let mut bytes = fastrand::u128(..).to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The counters of the table in the module docs.
mod metrics {
    use metrics::counter;

    pub(super) fn handler_succeeded(event: &'static str) {
        counter!(crate::metrics::names::AFTER_COMMIT_HANDLERS, "event" => event).increment(1);
    }

    pub(super) fn handler_failed(event: &'static str) {
        counter!(crate::metrics::names::AFTER_COMMIT_HANDLER_FAILURES, "event" => event)
            .increment(1);
    }

    /// Registers the table's counters at 0 (when its relay starts).
    pub(super) fn outbox_registered(table: &str) {
        outbox_published(table, 0);
        counter!(crate::metrics::names::OUTBOX_SEND_FAILURES, "table" => table.to_owned())
            .increment(0);
        counter!(crate::metrics::names::OUTBOX_UNKNOWN_EVENT, "table" => table.to_owned())
            .increment(0);
    }

    pub(super) fn outbox_unknown_event(table: &str) {
        counter!(crate::metrics::names::OUTBOX_UNKNOWN_EVENT, "table" => table.to_owned())
            .increment(1);
    }

    pub(super) fn outbox_published(table: &str, n: u64) {
        counter!(crate::metrics::names::OUTBOX_PUBLISHED, "table" => table.to_owned()).increment(n);
    }

    pub(super) fn outbox_send_failed(table: &str) {
        counter!(crate::metrics::names::OUTBOX_SEND_FAILURES, "table" => table.to_owned())
            .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::new_event_id;

    #[test]
    fn event_ids_are_uuid_v4_and_distinct() {
        let a = new_event_id();
        let b = new_event_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(a.matches('-').count(), 4);
    }
}
