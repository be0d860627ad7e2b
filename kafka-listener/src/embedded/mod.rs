//! Development infrastructure that runs in-process, so that an app and its
//! tests run on a machine with nothing installed (feature `embedded`):
//!
//! - [`EmbeddedBroker`]: librdkafka's mock cluster. It starts only when the
//!   app asks for it ([`crate::KafkaAppBuilder::embedded`], or
//!   `KAFKA_EMBEDDED=true`), never because a bootstrap address is missing:
//!   a production deployment that forgets `KAFKA_BOOTSTRAP_SERVERS` fails at
//!   start instead of running on a broker that forgets everything at exit.
//! - [`EmbeddedSchemaRegistry`] (with feature `avro`): an in-memory
//!   Confluent Schema Registry on a loopback port.
//!
//! Dev layer: nothing in the runtime imports it except the app and topic
//! administration, which start it when asked.

mod broker;
#[cfg(feature = "avro")]
mod schema_registry;

pub use self::broker::EmbeddedBroker;
#[doc(hidden)]
pub use self::broker::Mock;
#[cfg(feature = "avro")]
pub use self::schema_registry::{Compatibility, EmbeddedSchemaRegistry};
