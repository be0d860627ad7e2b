//! The transactional outbox: events whose type names a topic and a key are
//! written to a table in the publishing transaction, and the relay
//! (`relay.rs`) sends them to Kafka after the commit.
//!
//! The table (default name `kafka_outbox`) is created by the library with
//! SQL that differs only in the id column between SQLite and PostgreSQL:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `id` | 64-bit integer, increasing | relay order (per key) |
//! | `event_id` | TEXT, unique | UUID v4; the `kafka_listener-event-id` header |
//! | `event_type` | TEXT | the event name (`#[outbox(name = "...")]`); the `kafka_listener-event-type` header |
//! | `topic` | TEXT | destination topic |
//! | `msg_key` | TEXT | record key |
//! | `payload` | TEXT | the event as JSON (the record value, or with `format = "avro"` what the relay encodes it from) |
//! | `created_at` | BIGINT | publish time, ms since the Unix epoch (the record timestamp) |
//! | `sent_at` | BIGINT, NULL until sent | when the broker acknowledged it, ms |
//! | `attempts` | BIGINT | failed sends so far |
//! | `last_error` | TEXT, NULL | the last send error |
//! | `traceparent` | TEXT, NULL | the publisher's trace (W3C Trace Context, [`crate::trace`]), sent as the `traceparent` header |
//! | `tracestate` | TEXT, NULL | its `tracestate` header |
//!
//! A table created before the two trace columns existed gets them when
//! `TransactionalEvents` starts (`ALTER TABLE ... ADD COLUMN`).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Serialize;

use super::Error;
use crate::schema::MessageSchema;

/// An event that goes to Kafka through the outbox: a topic, a key, a stable
/// name and a JSON body. Implement it with `#[derive(OutboxEvent)]` and
/// `#[outbox(topic = "...", key = "field")]`, which also registers the type
/// so that `EventTx::publish` writes it to the outbox (and, with
/// `format = "avro"`, so that the relay sends it as Avro).
pub trait OutboxEvent: Serialize + Send + Sync + 'static {
    /// The destination topic.
    const TOPIC: &'static str;

    /// The event's stable name: stored in the outbox row's `event_type`,
    /// sent in the `kafka_listener-event-type` header, and how the relay
    /// finds the type of a row (and so its format). `#[outbox(name =
    /// "...")]`; by default the type's name without its module path
    /// (`CouponIssued`), so that moving the type does not change it, while
    /// renaming it does: name types explicitly when rows may be pending
    /// across a deploy. Unique per binary
    /// ([`TransactionalEventsBuilder::build`](super::TransactionalEventsBuilder::build)
    /// refuses duplicates).
    const NAME: &'static str;

    /// The record key: events of one key are relayed in publish order and
    /// land on one partition.
    fn key(&self) -> String;
}

/// An encoded outbox event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutboxMessage {
    /// The event's [`OutboxEvent::NAME`].
    pub(crate) event_type: &'static str,
    pub(crate) topic: &'static str,
    pub(crate) key: String,
    pub(crate) payload: String,
}

type EncodeFn = fn(&(dyn Any + Send + Sync)) -> Result<OutboxMessage, serde_json::Error>;

/// Turns an outbox row's JSON into the record value for its topic, in the
/// Confluent wire format (registering the schema as `KafkaTemplate::send_avro`
/// does).
#[cfg(feature = "avro")]
pub(crate) type AvroEncodeFn =
    for<'a> fn(
        &'a crate::avro::AvroCodec,
        &'a str,
        &'a str,
    ) -> futures::future::BoxFuture<'a, Result<Vec<u8>, crate::Error>>;

/// How the relay turns an outbox row into its record value.
#[derive(Clone, Copy)]
pub(crate) enum ValueFormat {
    /// The row's JSON, as it is.
    Json,
    /// Avro in the Confluent wire format, encoded from the row's JSON when
    /// the relay sends it.
    #[cfg(feature = "avro")]
    Avro(AvroEncodeFn),
}

impl std::fmt::Debug for ValueFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueFormat::Json => f.write_str("Json"),
            #[cfg(feature = "avro")]
            ValueFormat::Avro(_) => f.write_str("Avro"),
        }
    }
}

/// An outbox event type, submitted to `inventory` by
/// `#[derive(OutboxEvent)]`.
#[derive(Debug)]
pub struct OutboxRegistration {
    event_type: fn() -> TypeId,
    /// [`OutboxEvent::NAME`].
    name: &'static str,
    /// The Rust type path: what rows of the previous version hold.
    type_name: fn() -> &'static str,
    encode: EncodeFn,
    format: ValueFormat,
    /// [`OutboxEvent::TOPIC`].
    topic: &'static str,
    /// The event's message schema (AsyncAPI, [`crate::schema`]).
    schema: Option<fn() -> Option<MessageSchema>>,
}

inventory::collect!(OutboxRegistration);

impl OutboxRegistration {
    /// The registration of `E`, sent as its JSON.
    pub const fn of<E: OutboxEvent>() -> Self {
        Self {
            event_type: TypeId::of::<E>,
            name: E::NAME,
            type_name: std::any::type_name::<E>,
            encode: encode::<E>,
            format: ValueFormat::Json,
            topic: E::TOPIC,
            schema: None,
        }
    }

    /// The event's stable name ([`OutboxEvent::NAME`]).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The topic its events are sent to ([`OutboxEvent::TOPIC`]).
    pub fn topic(&self) -> &'static str {
        self.topic
    }

    /// The event's message schema, unless it has one (an Avro event's is
    /// its Avro schema): what `#[derive(OutboxEvent)]` passes.
    #[must_use]
    pub const fn with_schema(mut self, schema: fn() -> Option<MessageSchema>) -> Self {
        if self.schema.is_none() {
            self.schema = Some(schema);
        }
        self
    }

    /// The registration of `E`, kept in the outbox as JSON and sent as Avro
    /// in the Confluent wire format: when the relay sends a row it reads
    /// the JSON back into `E` and encodes it with the relay template's
    /// [`AvroCodec`](crate::avro::AvroCodec) under the topic's subject
    /// (`<topic>-value` by default), registering `E`'s schema on first use.
    #[cfg(feature = "avro")]
    pub const fn avro<E>() -> Self
    where
        E: OutboxEvent + serde::de::DeserializeOwned + crate::avro::AvroSchema,
    {
        Self {
            event_type: TypeId::of::<E>,
            name: E::NAME,
            type_name: std::any::type_name::<E>,
            encode: encode::<E>,
            format: ValueFormat::Avro(encode_avro::<E>),
            topic: E::TOPIC,
            schema: Some(avro_schema::<E>),
        }
    }
}

fn encode<E: OutboxEvent>(
    event: &(dyn Any + Send + Sync),
) -> Result<OutboxMessage, serde_json::Error> {
    let event = event
        .downcast_ref::<E>()
        .expect("the registry maps the TypeId of E to encode::<E>");
    Ok(OutboxMessage {
        event_type: E::NAME,
        topic: E::TOPIC,
        key: event.key(),
        payload: serde_json::to_string(event)?,
    })
}

#[cfg(feature = "avro")]
fn encode_avro<'a, E>(
    codec: &'a crate::avro::AvroCodec,
    topic: &'a str,
    payload: &'a str,
) -> futures::future::BoxFuture<'a, Result<Vec<u8>, crate::Error>>
where
    E: OutboxEvent + serde::de::DeserializeOwned + crate::avro::AvroSchema,
{
    Box::pin(async move {
        let event: E = serde_json::from_str(payload).map_err(|e| {
            crate::Error::Serialization(
                format!(
                    "outbox row of `{}` does not read back from its JSON: {e}",
                    std::any::type_name::<E>()
                )
                .into(),
            )
        })?;
        codec
            .encode(topic, crate::avro::RecordPart::Value, &event)
            .await
    })
}

/// The encoder of an outbox event type, if `event_type` is one.
pub(crate) fn encoder(event_type: TypeId) -> Option<EncodeFn> {
    static REGISTRY: OnceLock<HashMap<TypeId, EncodeFn>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            inventory::iter::<OutboxRegistration>
                .into_iter()
                .map(|r| ((r.event_type)(), r.encode))
                .collect()
        })
        .get(&event_type)
        .copied()
}

/// An event type the relay knows, found by a row's `event_type`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KnownEvent {
    /// The type's [`OutboxEvent::NAME`] (the header sent).
    pub(crate) name: &'static str,
    pub(crate) format: ValueFormat,
}

/// An Avro event's message schema.
#[cfg(feature = "avro")]
fn avro_schema<E: crate::avro::AvroSchema>() -> Option<MessageSchema> {
    Some(MessageSchema::avro::<E>())
}

/// Every outbox event type of the binary: its name, topic and message
/// schema (for the AsyncAPI document).
#[cfg(feature = "asyncapi")]
pub(crate) fn events() -> impl Iterator<Item = (&'static str, &'static str, Option<MessageSchema>)>
{
    inventory::iter::<OutboxRegistration>
        .into_iter()
        .map(|r| (r.name, r.topic(), r.schema.and_then(|f| f())))
}

/// The event type of rows whose `event_type` column is `event_type`: by
/// its name, else (rows of the previous version) by its Rust type path;
/// `None` for a name this binary does not register (renamed, removed, or
/// written by a newer version).
pub(crate) fn known_event(event_type: &str) -> Option<KnownEvent> {
    static KNOWN: OnceLock<HashMap<&'static str, KnownEvent>> = OnceLock::new();
    KNOWN
        .get_or_init(|| {
            let registrations: Vec<&OutboxRegistration> =
                inventory::iter::<OutboxRegistration>.into_iter().collect();
            let mut known = HashMap::new();
            // Type paths first, so that a name wins over an equal path.
            for r in &registrations {
                let event = KnownEvent {
                    name: r.name,
                    format: r.format,
                };
                known.insert((r.type_name)(), event);
            }
            for r in &registrations {
                let event = KnownEvent {
                    name: r.name,
                    format: r.format,
                };
                known.insert(r.name, event);
            }
            known
        })
        .get(event_type)
        .copied()
}

/// Checks the registered event names: each valid (see
/// [`valid_name`]) and used by one type only.
///
/// # Errors
/// [`Error::Config`] naming the name and the types.
pub(crate) fn check_names() -> Result<(), Error> {
    let names: Vec<(&'static str, &'static str)> = inventory::iter::<OutboxRegistration>
        .into_iter()
        .map(|r| (r.name, (r.type_name)()))
        .collect();
    if let Some((name, type_name)) = names.iter().find(|(n, _)| !valid_name(n)) {
        return Err(Error::Config(format!(
            "outbox event `{type_name}` has the invalid name {name:?}: 1 to 249 characters without whitespace or control characters"
        )));
    }
    if let Some((name, types)) = duplicates(names).into_iter().next() {
        return Err(Error::Config(format!(
            "outbox event name `{name}` is used by {}; give each `#[outbox(name = \"...\")]` its own",
            types.join(" and ")
        )));
    }
    Ok(())
}

/// 1 to 249 characters without whitespace or control characters (as
/// `#[outbox(name = "...")]` checks at compile time).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 249
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn duplicates(
    names: impl IntoIterator<Item = (&'static str, &'static str)>,
) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut by_name: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for (name, type_name) in names {
        match by_name.iter_mut().find(|(n, _)| *n == name) {
            Some((_, types)) => types.push(type_name),
            None => by_name.push((name, vec![type_name])),
        }
    }
    by_name.retain(|(_, types)| types.len() > 1);
    by_name
}

pub use super::table::OutboxRow;
pub(crate) use super::table::{Backend, OutboxTable};

#[cfg(test)]
mod tests {
    use super::{duplicates, valid_name};

    #[test]
    fn duplicate_names_list_every_type() {
        let got = duplicates([
            ("a.A", "x::A"),
            ("B", "x::B"),
            ("a.A", "y::A"),
            ("C", "x::C"),
            ("a.A", "z::Other"),
        ]);
        assert_eq!(got, vec![("a.A", vec!["x::A", "y::A", "z::Other"])]);
        assert!(duplicates([("A", "x::A"), ("B", "x::B")]).is_empty());
    }

    #[test]
    fn names_have_no_whitespace() {
        assert!(valid_name("coupon.CouponIssued"));
        assert!(valid_name("com.example:v2/Issued"));
        for bad in ["", "a b", "tab\t", "new\nline"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(!valid_name(&"x".repeat(250)));
    }
}
