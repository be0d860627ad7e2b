//! Handler arguments, in the manner of axum's extractors.
//!
//! Every argument of a listener function implements [`FromRecord`] (record
//! listeners) or [`FromBatch`] (batch listeners). The framework ships
//! [`Json`], [`Key`], [`Headers`], [`RecordMeta`], [`State`],
//! [`Acknowledgment`], `String`, `Vec<u8>`, [`bytes::Bytes`] and
//! [`ConsumerRecord`]; users implement the traits for their own types.
//!
//! An extractor that fails returns an [`ExtractError`]: the record is a
//! poison pill (never retried; dead-lettered when the listener has a
//! dead-letter topic).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::container::offsets::AckHandle;
use crate::error::{ExtractError, ListenerError};
use crate::handler::BoxFuture;
use crate::listener::AckMode;
use crate::record::{ConsumerRecord, Headers};
use crate::state::StateMap;

/// What a listener knows about itself at start-up: what
/// [`FromRecord::validate`] checks against.
#[derive(Debug, Clone)]
pub struct ListenerInfo {
    pub(crate) id: Arc<str>,
    pub(crate) group_id: Arc<str>,
    pub(crate) ack_mode: AckMode,
    pub(crate) state: Arc<StateMap>,
}

impl ListenerInfo {
    /// A listener description for tests of handlers and extractors.
    pub fn new(id: &str, ack_mode: AckMode, state: StateMap) -> Self {
        Self {
            id: Arc::from(id),
            group_id: Arc::from(id),
            ack_mode,
            state: Arc::new(state),
        }
    }

    /// The listener id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The consumer group id.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The ack mode.
    pub fn ack_mode(&self) -> AckMode {
        self.ack_mode
    }

    /// The application state.
    pub fn state(&self) -> &StateMap {
        &self.state
    }
}

/// What an extractor sees besides the record: the listener and, in the
/// manual ack modes, the acknowledgment of this record.
#[derive(Debug)]
pub struct ListenerContext<'a> {
    pub(crate) info: &'a ListenerInfo,
    pub(crate) ack: Option<AckHandle>,
    pub(crate) attempt: u32,
}

impl<'a> ListenerContext<'a> {
    /// A context for tests of handlers and extractors (no acknowledgment,
    /// first delivery attempt).
    pub fn new(info: &'a ListenerInfo) -> Self {
        Self {
            info,
            ack: None,
            attempt: 1,
        }
    }

    /// The listener.
    pub fn info(&self) -> &ListenerInfo {
        self.info
    }

    /// The delivery attempt of this record on this instance, from 1.
    pub fn delivery_attempt(&self) -> u32 {
        self.attempt
    }

    /// An owned copy, for futures that outlive the borrow.
    pub(crate) fn to_owned(&self) -> OwnedContext {
        OwnedContext {
            info: self.info.clone(),
            ack: self.ack.clone(),
            attempt: self.attempt,
        }
    }
}

/// A [`ListenerContext`] that owns its listener info (cheap: `Arc`s).
pub(crate) struct OwnedContext {
    info: ListenerInfo,
    ack: Option<AckHandle>,
    attempt: u32,
}

impl OwnedContext {
    pub(crate) fn borrow(&self) -> ListenerContext<'_> {
        ListenerContext {
            info: &self.info,
            ack: self.ack.clone(),
            attempt: self.attempt,
        }
    }
}

/// A handler argument made from one record.
///
/// # Errors
/// [`FromRecord::from_record`] returns an [`ExtractError`] when the record
/// cannot give the value (bad JSON, no key); the record is then a poison pill.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a listener argument",
    label = "not a record extractor (`FromRecord`)",
    note = "listener arguments are extractors: `Json<T>`, `Key<K>`, `Headers`, `RecordMeta`, `State<T>`, `Acknowledgment`, `String`, `Vec<u8>`, `Bytes`, `ConsumerRecord`, or a type that implements `FromRecord`"
)]
pub trait FromRecord: Sized {
    /// Builds the argument from the record.
    fn from_record(
        record: &ConsumerRecord,
        ctx: &ListenerContext<'_>,
    ) -> Result<Self, ExtractError>;

    /// Asynchronous work to finish before [`FromRecord::from_record`] is
    /// called, such as fetching the record's writer schema from the Schema
    /// Registry for `Avro<T>`. `None` (the default) when there is nothing to
    /// wait for; the container awaits the future, and an `Err` fails the
    /// record with that error's kind (retryable when the registry is down,
    /// decode for an unknown schema id) without calling the handler.
    fn prepare(
        _record: &ConsumerRecord,
        _ctx: &ListenerContext<'_>,
    ) -> Option<BoxFuture<Result<(), ListenerError>>> {
        None
    }

    /// Checked once when the listener starts: `Err(reason)` stops the start
    /// (a missing `State<T>`, an `Acknowledgment` without a manual ack mode).
    fn validate(_info: &ListenerInfo) -> Result<(), String> {
        Ok(())
    }
}

/// Awaits several preparations in order, stopping at the first error;
/// `None` when there are none.
pub(crate) fn join_prepared(
    mut pending: Vec<BoxFuture<Result<(), ListenerError>>>,
) -> Option<BoxFuture<Result<(), ListenerError>>> {
    match pending.len() {
        0 => None,
        1 => pending.pop(),
        _ => Some(Box::pin(async move {
            for p in pending {
                p.await?;
            }
            Ok(())
        })),
    }
}

/// A handler argument made from a batch of records (batch listeners).
///
/// `Vec<E>` for any `E: FromRecord` is a batch of `E`; [`State`] and
/// [`Acknowledgment`] work in both forms.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a batch listener argument",
    label = "not a batch extractor (`FromBatch`)",
    note = "batch listener arguments are `Vec<E>` of a record extractor `E` (for example `Vec<Json<T>>`), `State<T>`, `Acknowledgment`, or a type that implements `FromBatch`"
)]
pub trait FromBatch: Sized {
    /// Builds the argument from the records of one batch (one partition, in
    /// offset order).
    ///
    /// # Errors
    /// An [`ExtractError`] with [`ExtractError::at_index`] set to the record
    /// that could not be extracted.
    fn from_batch(
        records: &[ConsumerRecord],
        ctx: &ListenerContext<'_>,
    ) -> Result<Self, ExtractError>;

    /// As [`FromRecord::prepare`], for the whole batch.
    fn prepare(
        _records: &[ConsumerRecord],
        _ctx: &ListenerContext<'_>,
    ) -> Option<BoxFuture<Result<(), ListenerError>>> {
        None
    }

    /// As [`FromRecord::validate`].
    fn validate(_info: &ListenerInfo) -> Result<(), String> {
        Ok(())
    }
}

impl<E: FromRecord> FromBatch for Vec<E> {
    fn from_batch(
        records: &[ConsumerRecord],
        ctx: &ListenerContext<'_>,
    ) -> Result<Self, ExtractError> {
        records
            .iter()
            .enumerate()
            .map(|(i, r)| E::from_record(r, ctx).map_err(|e| e.at_index(i)))
            .collect()
    }

    fn prepare(
        records: &[ConsumerRecord],
        ctx: &ListenerContext<'_>,
    ) -> Option<BoxFuture<Result<(), ListenerError>>> {
        join_prepared(
            records
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    E::prepare(r, ctx).map(|f| -> BoxFuture<Result<(), ListenerError>> {
                        Box::pin(async move { f.await.map_err(|e| e.at_index(i)) })
                    })
                })
                .collect(),
        )
    }

    fn validate(info: &ListenerInfo) -> Result<(), String> {
        E::validate(info)
    }
}

/// Implements `FromBatch` for extractors that do not depend on the records.
macro_rules! batch_from_context {
    ($ty:ty, [$($g:tt)*]) => {
        impl<$($g)*> FromBatch for $ty {
            fn from_batch(records: &[ConsumerRecord], ctx: &ListenerContext<'_>) -> Result<Self, ExtractError> {
                match records.last() {
                    Some(last) => <Self as FromRecord>::from_record(last, ctx),
                    None => Err(ExtractError::new::<Self>("empty batch")),
                }
            }
            fn validate(info: &ListenerInfo) -> Result<(), String> {
                <Self as FromRecord>::validate(info)
            }
        }
    };
}

fn value_of<E: ?Sized>(record: &ConsumerRecord) -> Result<&Bytes, ExtractError> {
    record
        .value
        .as_ref()
        .ok_or_else(|| ExtractError::new::<E>("the record has no value (tombstone)"))
}

/// The record value, deserialized from JSON with serde.
///
/// # Errors
/// A tombstone or bytes that are not JSON of type `T`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The inner value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Json<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: DeserializeOwned> FromRecord for Json<T> {
    fn from_record(
        record: &ConsumerRecord,
        _ctx: &ListenerContext<'_>,
    ) -> Result<Self, ExtractError> {
        let value = value_of::<Self>(record)?;
        serde_json::from_slice(value)
            .map(Json)
            .map_err(|e| ExtractError::new::<Self>(format!("invalid JSON: {e}")).with_source(e))
    }
}

/// Decodes a record key: what [`Key<K>`] accepts.
///
/// Implemented for `String` (UTF-8, Kafka's `StringSerializer`), `Vec<u8>`,
/// [`Bytes`], `i64`/`u64`/`i32` (big-endian, Kafka's `LongSerializer` and
/// `IntegerSerializer`), [`Json<T>`] and `Option<K>` (no key -> `None`).
pub trait KeyDecode: Sized {
    /// Decodes the key; `None` means the record has no key.
    ///
    /// # Errors
    /// A reason, when the bytes are not a `Self`.
    fn decode_key(key: Option<&Bytes>) -> Result<Self, String>;
}

fn required(key: Option<&Bytes>) -> Result<&Bytes, String> {
    key.ok_or_else(|| "the record has no key".to_owned())
}

impl KeyDecode for String {
    fn decode_key(key: Option<&Bytes>) -> Result<Self, String> {
        String::from_utf8(required(key)?.to_vec()).map_err(|e| format!("key is not UTF-8: {e}"))
    }
}

impl KeyDecode for Vec<u8> {
    fn decode_key(key: Option<&Bytes>) -> Result<Self, String> {
        Ok(required(key)?.to_vec())
    }
}

impl KeyDecode for Bytes {
    fn decode_key(key: Option<&Bytes>) -> Result<Self, String> {
        Ok(required(key)?.clone())
    }
}

macro_rules! int_key {
    ($($t:ty),*) => {$(
        impl KeyDecode for $t {
            fn decode_key(key: Option<&Bytes>) -> Result<Self, String> {
                let key = required(key)?;
                let bytes: [u8; std::mem::size_of::<$t>()] = key[..].try_into().map_err(|_| {
                    format!("key has {} bytes, expected {} (big-endian {})", key.len(), std::mem::size_of::<$t>(), stringify!($t))
                })?;
                Ok(<$t>::from_be_bytes(bytes))
            }
        }
    )*};
}
int_key!(i64, u64, i32, u32);

impl<T: DeserializeOwned> KeyDecode for Json<T> {
    fn decode_key(key: Option<&Bytes>) -> Result<Self, String> {
        serde_json::from_slice(required(key)?)
            .map(Json)
            .map_err(|e| format!("key is not JSON: {e}"))
    }
}

impl<K: KeyDecode> KeyDecode for Option<K> {
    fn decode_key(key: Option<&Bytes>) -> Result<Self, String> {
        match key {
            None => Ok(None),
            Some(_) => K::decode_key(key).map(Some),
        }
    }
}

/// The record key, decoded by [`KeyDecode`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key<K>(pub K);

impl<K> Deref for Key<K> {
    type Target = K;
    fn deref(&self) -> &K {
        &self.0
    }
}

impl<K: KeyDecode> FromRecord for Key<K> {
    fn from_record(
        record: &ConsumerRecord,
        _ctx: &ListenerContext<'_>,
    ) -> Result<Self, ExtractError> {
        K::decode_key(record.key.as_ref())
            .map(Key)
            .map_err(ExtractError::new::<Self>)
    }
}

impl FromRecord for String {
    fn from_record(
        record: &ConsumerRecord,
        _ctx: &ListenerContext<'_>,
    ) -> Result<Self, ExtractError> {
        let value = value_of::<Self>(record)?;
        String::from_utf8(value.to_vec())
            .map_err(|e| ExtractError::new::<Self>(format!("value is not UTF-8: {e}")))
    }
}

impl FromRecord for Vec<u8> {
    fn from_record(
        record: &ConsumerRecord,
        _ctx: &ListenerContext<'_>,
    ) -> Result<Self, ExtractError> {
        Ok(value_of::<Self>(record)?.to_vec())
    }
}

impl FromRecord for Bytes {
    fn from_record(
        record: &ConsumerRecord,
        _ctx: &ListenerContext<'_>,
    ) -> Result<Self, ExtractError> {
        Ok(value_of::<Self>(record)?.clone())
    }
}

impl FromRecord for ConsumerRecord {
    fn from_record(
        record: &ConsumerRecord,
        _ctx: &ListenerContext<'_>,
    ) -> Result<Self, ExtractError> {
        Ok(record.clone())
    }
}

impl FromRecord for Headers {
    fn from_record(
        record: &ConsumerRecord,
        _ctx: &ListenerContext<'_>,
    ) -> Result<Self, ExtractError> {
        Ok(record.headers.clone())
    }
}

/// Where a record came from: topic, partition, offset, timestamp, and the
/// delivery attempt on this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMeta {
    /// The topic name.
    pub topic: Arc<str>,
    /// The partition number.
    pub partition: i32,
    /// The offset within the partition.
    pub offset: i64,
    /// Milliseconds since the Unix epoch, when set.
    pub timestamp: Option<i64>,
    /// 1 on the first delivery, 2 on the first retry, ...
    pub delivery_attempt: u32,
}

impl FromRecord for RecordMeta {
    fn from_record(
        record: &ConsumerRecord,
        ctx: &ListenerContext<'_>,
    ) -> Result<Self, ExtractError> {
        Ok(RecordMeta {
            topic: Arc::clone(&record.topic),
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp,
            delivery_attempt: ctx.attempt,
        })
    }
}

/// Application state given to `KafkaApp::state`, cloned for each call
/// (wrap large state in an `Arc`).
///
/// # Errors
/// The listener refuses to start when no state of type `T` was registered.
#[derive(Debug, Clone, Copy, Default)]
pub struct State<T>(pub T);

impl<T> Deref for State<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone + Send + Sync + 'static> FromRecord for State<T> {
    fn from_record(
        _record: &ConsumerRecord,
        ctx: &ListenerContext<'_>,
    ) -> Result<Self, ExtractError> {
        ctx.info
            .state
            .get::<T>()
            .cloned()
            .map(State)
            .ok_or_else(|| {
                ExtractError::new::<Self>("no such state was registered with KafkaApp::state")
            })
    }

    fn validate(info: &ListenerInfo) -> Result<(), String> {
        if info.state.contains::<T>() {
            Ok(())
        } else {
            Err(format!(
                "`State<{0}>` is used but no `{0}` was registered; call `.state(value)` on the KafkaApp builder",
                std::any::type_name::<T>()
            ))
        }
    }
}
batch_from_context!(State<T>, [T: Clone + Send + Sync + 'static]);

/// Manual acknowledgment of a record (ack modes `manual` and
/// `manual_immediate`), Spring's `Acknowledgment`.
///
/// An offset is committed once this record and every earlier record of its
/// partition were acknowledged, so an unacknowledged record is delivered
/// again after a restart or a rebalance. May be sent to another task and
/// acknowledged later; acknowledging twice is harmless. In a batch listener
/// it acknowledges the whole batch.
#[derive(Clone)]
pub struct Acknowledgment {
    handle: AckHandle,
}

impl Acknowledgment {
    /// Marks the record (or batch) as processed. With `manual_immediate` the
    /// commit is requested at once; with `manual` it goes with the next
    /// periodic commit.
    pub fn acknowledge(&self) {
        self.handle.acknowledge();
    }

    /// The offset this acknowledgment covers (the last one of a batch).
    pub fn offset(&self) -> i64 {
        self.handle.offset()
    }
}

impl fmt::Debug for Acknowledgment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acknowledgment")
            .field("offset", &self.handle.offset())
            .finish()
    }
}

impl FromRecord for Acknowledgment {
    fn from_record(
        _record: &ConsumerRecord,
        ctx: &ListenerContext<'_>,
    ) -> Result<Self, ExtractError> {
        ctx.ack
            .clone()
            .map(|handle| Acknowledgment { handle })
            .ok_or_else(|| {
                ExtractError::new::<Self>(
                    "Acknowledgment needs ack_mode manual or manual_immediate",
                )
            })
    }

    fn validate(info: &ListenerInfo) -> Result<(), String> {
        if info.ack_mode.is_manual() {
            Ok(())
        } else {
            Err(format!(
                "`Acknowledgment` needs ack_mode = \"manual\" or \"manual_immediate\", but the ack mode is \"{}\"",
                info.ack_mode
            ))
        }
    }
}
batch_from_context!(Acknowledgment, []);
