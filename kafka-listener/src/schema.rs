//! Message schemas: what a listener receives and an outbox event sends,
//! described for an AsyncAPI document ([`crate::asyncapi`], feature
//! `asyncapi`).
//!
//! A `#[kafka_listener]` function gets its messages from its argument
//! types, with no annotation:
//! - `Json<T>` (or `Vec<Json<T>>` in a batch listener): the JSON Schema of
//!   `T` when `T` derives [`schemars::JsonSchema`](https://docs.rs/schemars)
//!   and the `asyncapi` feature is on; otherwise a message with no schema;
//! - `Avro<T>`: the Avro schema of `T` (`apache_avro::AvroSchema`, which
//!   `Avro<T>` requires anyway; the impls are in [`crate::avro`]).
//!
//! `#[derive(OutboxEvent)]` does the same for the event type. A hand-built
//! [`ListenerSpec`](crate::ListenerSpec) adds
//! [`ListenerSpec::message`](crate::ListenerSpec::message).

use serde_json::Value;

/// How a message's payload is encoded, and so what its schema is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaFormat {
    /// JSON; the schema is a JSON Schema (draft 2020-12, as schemars writes it).
    Json,
    /// Avro in the Confluent wire format; the schema is the Avro schema as
    /// JSON (Apache Avro 1.9+ specification).
    Avro,
}

impl SchemaFormat {
    /// The payload's content type: `application/json` or
    /// `application/vnd.apache.avro+binary` (the Confluent wire format's
    /// five-byte header in front).
    pub fn content_type(self) -> &'static str {
        match self {
            SchemaFormat::Json => "application/json",
            SchemaFormat::Avro => "application/vnd.apache.avro+binary",
        }
    }
}

/// One message type: its name (the Rust type's, without the module path),
/// its format and, when known, its payload schema.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageSchema {
    /// The message name, e.g. `IssueRequested`.
    pub name: String,
    /// The payload encoding.
    pub format: SchemaFormat,
    /// The payload schema (JSON Schema or Avro schema, as JSON); `None`
    /// when the type gives none (a JSON type without `JsonSchema`).
    pub schema: Option<Value>,
}

impl MessageSchema {
    /// A JSON message of `T`, with `T`'s JSON Schema.
    #[cfg(feature = "asyncapi")]
    pub fn json<T: schemars::JsonSchema>() -> Self {
        let schema = schemars::schema_for!(T);
        Self {
            name: short_name::<T>(),
            format: SchemaFormat::Json,
            schema: Some(schema.to_value()),
        }
    }

    /// A JSON message of `T` whose schema is not known.
    pub fn json_without_schema<T: ?Sized>() -> Self {
        Self {
            name: short_name::<T>(),
            format: SchemaFormat::Json,
            schema: None,
        }
    }
}

/// `T`'s type name without module paths (`Vec<app::Order>` → `Vec<Order>`).
pub(crate) fn short_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let mut out = String::with_capacity(full.len());
    // Where the identifier being copied starts in `out`: a `::` after it
    // makes it a module, dropped.
    let mut ident_start = 0;
    let mut rest = full;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("::") {
            out.truncate(ident_start);
            rest = after;
            continue;
        }
        out.push(c);
        if !(c.is_alphanumeric() || c == '_') {
            ident_start = out.len();
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// What macros generate: the schema of an argument or event type, picked by
/// autoref specialization: `(&&Probe::<T>::new()).message_schema()` tries
/// [`probe::HasSchema`] (on `&Probe<..>`: a payload whose schema is
/// known), then [`probe::Named`] (on `Probe<..>`: a `Json<T>` payload
/// without schema), then [`probe::NoSchema`] (on what `Probe` derefs to:
/// not a payload). The first whose bounds hold wins.
#[doc(hidden)]
pub mod probe {
    use std::marker::PhantomData;

    use super::MessageSchema;
    use crate::extract::Json;

    /// A type to look up `T`'s schema on.
    pub struct Probe<T: ?Sized>(PhantomData<T>);

    impl<T: ?Sized> Probe<T> {
        /// The probe of `T`.
        pub const fn new() -> Self {
            Self(PhantomData)
        }
    }

    impl<T: ?Sized> Default for Probe<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    impl<T: ?Sized> std::fmt::Debug for Probe<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(std::any::type_name::<Self>())
        }
    }

    /// Where method lookup ends up for an argument that is not a payload.
    #[derive(Debug)]
    pub struct NotPayload;

    impl<T: ?Sized> std::ops::Deref for Probe<T> {
        type Target = NotPayload;

        fn deref(&self) -> &NotPayload {
            &NotPayload
        }
    }

    /// A payload whose schema is known.
    pub trait HasSchema {
        /// The message, with its schema.
        fn message_schema(&self) -> Option<MessageSchema>;
    }

    #[cfg(feature = "asyncapi")]
    impl<T: schemars::JsonSchema> HasSchema for &Probe<Json<T>> {
        fn message_schema(&self) -> Option<MessageSchema> {
            Some(MessageSchema::json::<T>())
        }
    }

    #[cfg(feature = "asyncapi")]
    impl<T: schemars::JsonSchema> HasSchema for &Probe<Vec<Json<T>>> {
        fn message_schema(&self) -> Option<MessageSchema> {
            Some(MessageSchema::json::<T>())
        }
    }

    /// A JSON payload whose type gives no schema.
    pub trait Named {
        /// The message, without schema.
        fn message_schema(&self) -> Option<MessageSchema>;
    }

    impl<T> Named for Probe<Json<T>> {
        fn message_schema(&self) -> Option<MessageSchema> {
            Some(MessageSchema::json_without_schema::<T>())
        }
    }

    impl<T> Named for Probe<Vec<Json<T>>> {
        fn message_schema(&self) -> Option<MessageSchema> {
            Some(MessageSchema::json_without_schema::<T>())
        }
    }

    /// Not a payload (metadata, state, an acknowledgment, ...).
    pub trait NoSchema {
        /// `None`.
        fn message_schema(&self) -> Option<MessageSchema>;
    }

    impl NoSchema for NotPayload {
        fn message_schema(&self) -> Option<MessageSchema> {
            None
        }
    }

    /// An outbox event type with a JSON Schema (`(&&Probe::<E>::new()).event_schema()`).
    pub trait EventHasSchema {
        /// The message, with its schema.
        fn event_schema(&self) -> Option<MessageSchema>;
    }

    #[cfg(feature = "asyncapi")]
    impl<T: schemars::JsonSchema> EventHasSchema for &Probe<T> {
        fn event_schema(&self) -> Option<MessageSchema> {
            Some(MessageSchema::json::<T>())
        }
    }

    /// The fallback for an event type without `JsonSchema`.
    pub trait EventNoSchema {
        /// A JSON message without schema.
        fn event_schema(&self) -> Option<MessageSchema>;
    }

    impl<T> EventNoSchema for Probe<T> {
        fn event_schema(&self) -> Option<MessageSchema> {
            Some(MessageSchema::json_without_schema::<T>())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_drop_module_paths() {
        assert_eq!(short_name::<String>(), "String");
        assert_eq!(short_name::<Vec<String>>(), "Vec<String>");
        assert_eq!(
            short_name::<Option<std::collections::HashMap<u8, String>>>(),
            "Option<HashMap<u8, String>>"
        );
    }
}
