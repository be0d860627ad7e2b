//! Dead-letter topics: records that failed for good are published, with
//! their original key, value and headers plus Spring Kafka's `kafka_dlt-*`
//! headers ([`headers`]), to `<topic>-dlt` (Spring Kafka 3.3+ naming) or a
//! named topic, and the offset is committed only once the broker
//! acknowledged the dead letter ([`DeadLetterRecoverer`]).
//!
//! With the `dead-letter-store` feature (on by default),
//! `DeadLetterStore` consumes dead-letter topics into a database table
//! (sqlx; SQLite and PostgreSQL) and replays a stored dead letter to its
//! original topic.

#[cfg(feature = "dead-letter-store")]
mod admin;
pub(crate) mod headers;
mod recoverer;
#[cfg(feature = "dead-letter-store")]
mod replay;
#[cfg(feature = "dead-letter-store")]
mod store;

#[cfg(feature = "dead-letter-store")]
pub use self::admin::{AuditEntry, DeadLetterFilter};
pub use self::recoverer::DeadLetterRecoverer;
#[cfg(feature = "dead-letter-store")]
pub use self::store::{DeadLetterStore, StoreError, StoredDeadLetter};
