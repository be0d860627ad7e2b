//! The record value as JSON ([`Json`]), text or bytes.

use std::ops::{Deref, DerefMut};

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::FromRecord;
use crate::context::ListenerContext;
use crate::error::ExtractError;
use crate::record::ConsumerRecord;

pub(super) fn value_of<E: ?Sized>(record: &ConsumerRecord) -> Result<&Bytes, ExtractError> {
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
