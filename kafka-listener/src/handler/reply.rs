//! What a replying listener returns: [`Reply`] and the [`IntoReply`]
//! values, and the marker traits `#[kafka_listener]` checks return types
//! with.

use std::any::Any;

use bytes::Bytes;
use serde::Serialize;

use super::IntoListenerResult;
use crate::error::ListenerError;
use crate::extract::Json;
use crate::util::BoxFuture;

/// Marks the return types of a listener without a reply destination, `()`
/// and `Result<(), E>`: what `#[kafka_listener]` checks when neither
/// `reply` nor `send_to` is given.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "this listener returns `{Self}`, but it has no reply destination",
    label = "a listener without `reply` or `send_to` returns `()` or `Result<(), E>` with `E: Into<ListenerError>`",
    note = "to send the returned value as a reply, add `reply = true` (to the request's `kafka_replyTopic` header, Spring's `@SendTo`) or `send_to = \"topic\"`"
)]
pub trait NoReply: IntoListenerResult {}
impl NoReply for () {}
impl<E: Into<ListenerError>> NoReply for Result<(), E> {}

/// Marks the return types that carry a reply: what `#[kafka_listener]`
/// checks when `reply` or `send_to` is given.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "a listener with `reply` or `send_to` returns its reply, not `{Self}`",
    label = "return a reply: `Json<T>`, `Avro<T>`, `Reply`, `String`, `Vec<u8>`, `Bytes`, an `Option` of one (`None` sends nothing), or a `Result<_, E>` of these",
    note = "a listener that only consumes has neither `reply` nor `send_to`"
)]
pub trait ReturnsReply: IntoListenerResult {}
impl<R: IntoReply> ReturnsReply for R {}
impl<R: IntoReply, E: Into<ListenerError>> ReturnsReply for Result<R, E> {}

/// A value a listener can return as its reply (Spring's `@SendTo` method
/// return value): sent to the reply destination through the app's
/// template, with the request's correlation id (see [`Reply`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is neither `()`, `Result<(), E>` nor a reply, so a listener cannot return it",
    label = "a listener returns `()` or `Result<(), E>`; one with `reply` or `send_to` returns a reply: `Json<T>` (`T: Serialize`), `Avro<T>`, `Reply`, `String`, `Vec<u8>`, `Bytes`, an `Option` of one, or a `Result<_, E>` of these"
)]
pub trait IntoReply {
    /// The reply record's value and headers; `None` sends nothing.
    ///
    /// # Errors
    /// A value that cannot be encoded ([`crate::ErrorKind::Fatal`]).
    fn into_reply(self) -> Result<Option<Reply>, ListenerError>;
}

/// Where a listener's return value goes (Spring's `@SendTo`); see
/// [`crate::ListenerSpec::reply_to_request`] and
/// [`crate::ListenerSpec::send_to`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplyTo {
    /// The topic in the request's `kafka_replyTopic` header (`reply = true`;
    /// Spring's `@SendTo` without a value).
    Request,
    /// A fixed topic (`send_to = "topic"`; Spring's `@SendTo("topic")`).
    Topic(String),
}

/// What a listener sends back: a value, and optionally a key and headers.
///
/// The reply record goes to the reply destination: the request's
/// `kafka_replyTopic` header (`reply = true`, Spring's `@SendTo` without a
/// value) or a fixed topic (`send_to = "topic"`), on the partition in the
/// request's `kafka_replyPartition` header if it has one. It carries the
/// request's `kafka_correlationId` header unchanged, and the request's key
/// unless [`Reply::key`] sets one, as Spring's
/// `MessagingMessageListenerAdapter` does (see
/// [`crate::record::headers::CORRELATION_ID`] for the encodings).
///
/// # Examples
/// ```
/// use kafka_listener::prelude::*;
/// use kafka_listener::Reply;
///
/// async fn price(req: Json<serde_json::Value>) -> Result<Reply, ListenerError> {
///     Ok(Reply::json(&serde_json::json!({"price": 42}))?.header("source", "rust"))
/// }
/// # let _ = ListenerSpec::new("price").topics(["prices"]).reply_to_request().handler(price);
/// ```
#[derive(Default)]
pub struct Reply {
    key: Option<Bytes>,
    value: ReplyValue,
    headers: Vec<(String, Bytes)>,
}

/// Encodes a reply value when it is sent: given the app's codec (type
/// erased: the `AvroCodec` with the `avro` feature) and the reply topic.
pub(crate) type EncodeValue = Box<
    dyn FnOnce(Option<&(dyn Any + Send + Sync)>, &str) -> BoxFuture<Result<Bytes, ListenerError>>
        + Send,
>;

/// A reply's value: bytes, or encoded when the topic is known (Avro, whose
/// subject is named after the topic).
#[derive(Default)]
pub(crate) enum ReplyValue {
    /// The value as it is; `None` for a tombstone.
    #[default]
    Tombstone,
    /// The value as it is.
    Bytes(Bytes),
    /// Encoded at send time.
    #[cfg_attr(not(feature = "avro"), allow(dead_code))]
    Encode(EncodeValue),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = match &self.value {
            ReplyValue::Tombstone => "tombstone".to_owned(),
            ReplyValue::Bytes(b) => format!("{} bytes", b.len()),
            ReplyValue::Encode(_) => "encoded when sent".to_owned(),
        };
        f.debug_struct("Reply")
            .field("key", &self.key)
            .field("value", &value)
            .field("headers", &self.headers)
            .finish()
    }
}

impl Reply {
    /// A reply whose value is `value` serialized as JSON (what
    /// `JsonSerializer` or a `StringSerializer` of JSON text gives a Spring
    /// requester).
    ///
    /// # Errors
    /// A [`crate::ErrorKind::Fatal`] error when `value` cannot be
    /// serialized.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, ListenerError> {
        let bytes = serde_json::to_vec(value).map_err(ListenerError::fatal)?;
        Ok(Self::bytes(bytes))
    }

    /// A reply whose value is `value` as it is (a `String` is UTF-8, what
    /// Java's `StringDeserializer` reads).
    pub fn bytes(value: impl Into<Bytes>) -> Self {
        Self {
            value: ReplyValue::Bytes(value.into()),
            ..Self::default()
        }
    }

    /// A reply whose value `encode` makes when it is sent (Avro).
    #[cfg_attr(not(feature = "avro"), allow(dead_code))]
    pub(crate) fn encoded(encode: EncodeValue) -> Self {
        Self {
            value: ReplyValue::Encode(encode),
            ..Self::default()
        }
    }

    /// A reply with no value (a tombstone).
    pub fn tombstone() -> Self {
        Self::default()
    }

    /// The reply record's key, instead of the request's.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header to the reply record (after `kafka_correlationId`).
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((key.into(), value.into()));
        self
    }

    /// The key set with [`Reply::key`], if any.
    pub fn key_bytes(&self) -> Option<&Bytes> {
        self.key.as_ref()
    }

    /// The value; `None` for a tombstone, and for a value encoded when it
    /// is sent (`Avro<T>`).
    pub fn value(&self) -> Option<&Bytes> {
        match &self.value {
            ReplyValue::Bytes(b) => Some(b),
            ReplyValue::Tombstone | ReplyValue::Encode(_) => None,
        }
    }

    /// The headers added with [`Reply::header`], in order.
    pub fn headers(&self) -> &[(String, Bytes)] {
        &self.headers
    }

    /// The key, value and headers, for the code that sends it.
    pub(crate) fn into_parts(self) -> (Option<Bytes>, ReplyValue, Vec<(String, Bytes)>) {
        (self.key, self.value, self.headers)
    }
}

impl IntoReply for Reply {
    fn into_reply(self) -> Result<Option<Reply>, ListenerError> {
        Ok(Some(self))
    }
}

impl<T: Serialize> IntoReply for Json<T> {
    fn into_reply(self) -> Result<Option<Reply>, ListenerError> {
        Reply::json(&self.0).map(Some)
    }
}

impl IntoReply for String {
    fn into_reply(self) -> Result<Option<Reply>, ListenerError> {
        Ok(Some(Reply::bytes(self)))
    }
}

impl IntoReply for Vec<u8> {
    fn into_reply(self) -> Result<Option<Reply>, ListenerError> {
        Ok(Some(Reply::bytes(self)))
    }
}

impl IntoReply for Bytes {
    fn into_reply(self) -> Result<Option<Reply>, ListenerError> {
        Ok(Some(Reply::bytes(self)))
    }
}

impl<R: IntoReply> IntoReply for Option<R> {
    fn into_reply(self) -> Result<Option<Reply>, ListenerError> {
        match self {
            None => Ok(None),
            Some(r) => r.into_reply(),
        }
    }
}

/// The error of a reply that has nowhere to go: the handler returned one,
/// but the listener was not started with a reply destination bound (a
/// container built without the app).
pub(crate) fn unbound_reply() -> ListenerError {
    ListenerError::fatal(
        "the listener returned a reply but has no reply destination bound; give it `reply = true` \
         or `send_to = \"topic\"` (ListenerSpec::reply_to_request / send_to) and start it through \
         KafkaApp",
    )
}
