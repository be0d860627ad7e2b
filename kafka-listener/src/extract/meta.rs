//! Where a record came from ([`RecordMeta`]), its headers and the whole
//! record.

use std::sync::Arc;

use super::FromRecord;
use crate::context::ListenerContext;
use crate::error::ExtractError;
use crate::record::{ConsumerRecord, Headers};

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
