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

mod ack;
mod key;
mod meta;
mod payload;
mod state;

pub use self::ack::Acknowledgment;
pub use self::key::{Key, KeyDecode};
pub use self::meta::RecordMeta;
pub use self::payload::Json;
pub use self::state::State;

use crate::context::{ListenerContext, ListenerInfo};
use crate::error::{ExtractError, ListenerError};
use crate::record::ConsumerRecord;
use crate::util::BoxFuture;

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
use batch_from_context;
