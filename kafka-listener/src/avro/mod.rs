//! Avro with the Confluent Schema Registry: the [`Avro`] and [`AvroKey`]
//! extractors, the [`AvroCodec`] that `KafkaTemplate::send_avro` uses, and a
//! registry client.
//!
//! Records are in the Confluent wire format ([`wire`]): magic byte `0`, the
//! 4-byte big-endian schema id, then the Avro binary body, so Java (Spring,
//! `KafkaAvroSerializer`/`KafkaAvroDeserializer`) and Python
//! (`confluent_kafka.schema_registry.avro`) services read what a listener
//! writes and the other way round.
//!
//! `T` is a serde type with an Avro schema, usually from apache-avro's
//! derive:
//!
//! ```no_run
//! use apache_avro::AvroSchema;
//! use kafka_listener::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize, AvroSchema)]
//! #[avro(namespace = "shop")]
//! struct Order { id: String, amount_cents: i64 }
//!
//! async fn on_order(order: Avro<Order>, key: AvroKey<String>) {
//!     println!("{} {}", key.0, order.amount_cents);
//! }
//!
//! # async fn send(template: KafkaTemplate) -> Result<(), kafka_listener::Error> {
//! template.send_avro("orders", "o-1", &Order { id: "o-1".into(), amount_cents: 995 }).await?;
//! # Ok(()) }
//! ```
//!
//! # Schemas
//! - Consume: the writer schema is fetched by the id in the record (once per
//!   id; concurrent look-ups of one id share one request) and resolved to
//!   `T`'s schema: fields added with a default are filled in, removed fields
//!   are skipped (Avro schema resolution).
//! - Produce: `T`'s schema is registered under the subject
//!   ([`SubjectNameStrategy`], `<topic>-value` by default) on the first send
//!   (`auto.register.schemas=false` looks it up instead,
//!   `use.latest.version=true` writes with the subject's latest schema). A
//!   registry refusing an incompatible change fails the send with
//!   [`SchemaRegistryError::Incompatible`].
//!
//! # Errors while consuming
//! A record without the magic byte, with a schema id the registry does not
//! know, or with a body that does not match its schema is a poison pill
//! ([`crate::ErrorKind::Decode`]: no retries, recovered with its original
//! bytes). A registry that cannot be reached is retryable, and so is any
//! other registry failure (401/403, 5xx, an unexpected answer): a registry
//! outage or misconfiguration must not dead-letter good records.
//!
//! # Configuration
//! [`crate::KafkaConfig::schema_registry_url`] (`SCHEMA_REGISTRY_URL`,
//! `schema.registry.url`); without one the app serves an embedded registry
//! ([`crate::registry`]). Properties read from
//! [`crate::KafkaConfig::properties`]: `basic.auth.user.info`,
//! `basic.auth.credentials.source`, `auto.register.schemas`,
//! `use.latest.version`, `key.subject.name.strategy`,
//! `value.subject.name.strategy` (see [`AvroSettings`]); they are not passed
//! to librdkafka.

mod codec;
mod logical;
mod schema_registry_client;
mod subject;
pub mod wire;

use std::ops::{Deref, DerefMut};

pub use apache_avro::{AvroSchema, Schema};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use self::codec::{AvroCodec, AvroSettings, DecodeError, RecordPart, MAX_AVRO_ALLOCATION};
pub use self::logical::TimestampMillis;
pub use self::schema_registry_client::{
    RegisteredSchema, SchemaRegistryClient, SchemaRegistryError, CONTENT_TYPE,
};
pub use self::subject::SubjectNameStrategy;
use crate::context::{ListenerContext, ListenerInfo};
use crate::error::{ExtractError, ListenerError};
use crate::extract::FromRecord;
use crate::handler::{IntoReply, Reply};
use crate::record::ConsumerRecord;
use crate::util::BoxFuture;

/// The record value, Avro in the Confluent wire format, decoded into `T`
/// with the app's [`AvroCodec`].
///
/// # Errors
/// A tombstone, bytes without the magic byte, an unknown schema id or a body
/// that does not match its schema: a poison pill. A registry that cannot be
/// reached: retryable. The listener does not start when the app has no
/// codec in its state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Avro<T>(pub T);

/// A listener's reply as Avro (Confluent wire format): encoded when it
/// is sent, with the app's codec, its schema registered (or looked up)
/// under the reply topic's value subject (`<reply topic>-value` by
/// default). A registry that cannot be reached is a retryable error; a
/// value the schema refuses, or an app without a Schema Registry, a fatal
/// one.
impl<T> IntoReply for Avro<T>
where
    T: Serialize + AvroSchema + Send + Sync + 'static,
{
    fn into_reply(self) -> Result<Option<Reply>, ListenerError> {
        Ok(Some(Reply::encoded(Box::new(move |codec, topic| {
            let codec = codec.and_then(|c| c.downcast_ref::<AvroCodec>()).cloned();
            let topic = topic.to_owned();
            Box::pin(async move {
                let codec = codec.ok_or_else(|| {
                    ListenerError::fatal(
                        "an Avro reply needs the app's Schema Registry (SCHEMA_REGISTRY_URL, or \
                         KafkaAppBuilder::avro with the embedded broker)",
                    )
                })?;
                match codec.encode(&topic, RecordPart::Value, &self.0).await {
                    Ok(bytes) => Ok(Bytes::from(bytes)),
                    Err(e @ crate::error::Error::SchemaRegistry(_)) => {
                        Err(ListenerError::retryable(e))
                    }
                    Err(e) => Err(ListenerError::fatal(e)),
                }
            })
        }))))
    }
}

/// The record key, Avro in the Confluent wire format (subject `<topic>-key`
/// by default), decoded into `K`. Errors as for [`Avro`]; a record without a
/// key is a poison pill.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AvroKey<K>(pub K);

macro_rules! wrapper {
    ($name:ident) => {
        impl<T> $name<T> {
            /// The inner value.
            pub fn into_inner(self) -> T {
                self.0
            }
        }

        impl<T> Deref for $name<T> {
            type Target = T;
            fn deref(&self) -> &T {
                &self.0
            }
        }

        impl<T> DerefMut for $name<T> {
            fn deref_mut(&mut self) -> &mut T {
                &mut self.0
            }
        }
    };
}
wrapper!(Avro);
wrapper!(AvroKey);

fn codec_of<'a, E>(ctx: &'a ListenerContext<'_>) -> Result<&'a AvroCodec, ExtractError> {
    ctx.info().state().get::<AvroCodec>().ok_or_else(|| {
        ExtractError::new::<E>("no AvroCodec in the app state (KafkaApp registers one)")
    })
}

fn validate_codec<E>(info: &ListenerInfo) -> Result<(), String> {
    if info.state().contains::<AvroCodec>() {
        Ok(())
    } else {
        Err(format!(
            "`{}` needs an `AvroCodec` in the app state, and no Schema Registry is configured: set \
             SCHEMA_REGISTRY_URL (or KAFKA_PROPERTY_SCHEMA_REGISTRY_URL, `schema.registry.url` in the \
             configuration file, KafkaConfig::schema_registry_url); the embedded registry starts only \
             beside the embedded broker, as its schema ids would be unknown to every other client of \
             a real one",
            std::any::type_name::<E>()
        ))
    }
}

fn decode_error<E>(error: DecodeError) -> ExtractError {
    let retryable = error.is_retryable();
    let e = ExtractError::new::<E>(error.to_string()).with_source(error);
    if retryable {
        e.retryable()
    } else {
        e
    }
}

fn prepare<E>(
    bytes: Option<&Bytes>,
    ctx: &ListenerContext<'_>,
) -> Option<BoxFuture<Result<(), ListenerError>>> {
    let codec = ctx.info().state().get::<AvroCodec>()?;
    let fetch = codec.prefetch(bytes?)?;
    Some(Box::pin(async move {
        fetch
            .await
            .map_err(|e| ListenerError::decode(decode_error::<E>(e)))
    }))
}

fn extract<E, T>(
    bytes: Option<&Bytes>,
    ctx: &ListenerContext<'_>,
    what: &str,
) -> Result<T, ExtractError>
where
    T: DeserializeOwned + AvroSchema + 'static,
{
    let codec = codec_of::<E>(ctx)?;
    let bytes = bytes.ok_or_else(|| ExtractError::new::<E>(format!("the record has no {what}")))?;
    codec.decode_cached::<T>(bytes).map_err(|e| {
        if let DecodeError::NotCached { .. } = e {
            // Outside a container nobody prefetched: start it for the retry.
            if let (Some(fetch), Ok(rt)) =
                (codec.prefetch(bytes), tokio::runtime::Handle::try_current())
            {
                rt.spawn(fetch);
            }
        }
        decode_error::<E>(e)
    })
}

impl<T: DeserializeOwned + AvroSchema + 'static> FromRecord for Avro<T> {
    fn from_record(
        record: &ConsumerRecord,
        ctx: &ListenerContext<'_>,
    ) -> Result<Self, ExtractError> {
        extract::<Self, T>(record.value(), ctx, "value (tombstone)").map(Avro)
    }

    fn prepare(
        record: &ConsumerRecord,
        ctx: &ListenerContext<'_>,
    ) -> Option<BoxFuture<Result<(), ListenerError>>> {
        prepare::<Self>(record.value(), ctx)
    }

    fn validate(info: &ListenerInfo) -> Result<(), String> {
        validate_codec::<Self>(info)
    }
}

impl<K: DeserializeOwned + AvroSchema + 'static> FromRecord for AvroKey<K> {
    fn from_record(
        record: &ConsumerRecord,
        ctx: &ListenerContext<'_>,
    ) -> Result<Self, ExtractError> {
        extract::<Self, K>(record.key(), ctx, "key").map(AvroKey)
    }

    fn prepare(
        record: &ConsumerRecord,
        ctx: &ListenerContext<'_>,
    ) -> Option<BoxFuture<Result<(), ListenerError>>> {
        prepare::<Self>(record.key(), ctx)
    }

    fn validate(info: &ListenerInfo) -> Result<(), String> {
        validate_codec::<Self>(info)
    }
}

/// An Avro message of `T`, with `T`'s Avro schema (for AsyncAPI,
/// [`crate::schema`]).
impl crate::schema::MessageSchema {
    /// The message of `T`: its name, [`SchemaFormat::Avro`](crate::schema::SchemaFormat::Avro)
    /// and `T::get_schema()` as JSON.
    pub fn avro<T: AvroSchema>() -> Self {
        Self {
            name: crate::schema::short_name::<T>(),
            format: crate::schema::SchemaFormat::Avro,
            schema: serde_json::to_value(T::get_schema()).ok(),
        }
    }
}

impl<T: AvroSchema> crate::schema::probe::HasSchema for &crate::schema::probe::Probe<Avro<T>> {
    fn message_schema(&self) -> Option<crate::schema::MessageSchema> {
        Some(crate::schema::MessageSchema::avro::<T>())
    }
}

impl<T: AvroSchema> crate::schema::probe::HasSchema for &crate::schema::probe::Probe<Vec<Avro<T>>> {
    fn message_schema(&self) -> Option<crate::schema::MessageSchema> {
        Some(crate::schema::MessageSchema::avro::<T>())
    }
}
