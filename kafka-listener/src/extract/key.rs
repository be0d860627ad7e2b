//! The record key ([`Key`]) and how it is decoded ([`KeyDecode`]).

use std::ops::Deref;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::{FromRecord, Json};
use crate::context::ListenerContext;
use crate::error::ExtractError;
use crate::record::ConsumerRecord;

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
