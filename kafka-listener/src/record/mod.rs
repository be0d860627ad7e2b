//! The record a listener receives: an owned copy of a Kafka message, and
//! its headers ([`headers`]: the type, and every header name the framework
//! reads or writes with its byte encoding).
//!
//! Base layer: imports nothing from the crate.

pub mod headers;

pub use self::headers::{Header, Headers};

use std::sync::Arc;

use bytes::Bytes;
use rdkafka::message::{BorrowedMessage, Message};

/// One consumed record: topic, partition, offset, timestamp, key, value and
/// headers, owned (copied out of librdkafka's buffer once, key and value in a
/// single allocation).
#[derive(Debug, Clone)]
pub struct ConsumerRecord {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) timestamp: Option<i64>,
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) headers: Headers,
}

impl ConsumerRecord {
    /// A record built by hand, for tests of handlers and extractors.
    pub fn new(topic: &str, partition: i32, offset: i64) -> Self {
        Self {
            topic: Arc::from(topic),
            partition,
            offset,
            timestamp: None,
            key: None,
            value: None,
            headers: Headers::default(),
        }
    }

    /// Sets the key (builder style).
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value (builder style).
    pub fn with_value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, key: &str, value: impl Into<Bytes>) -> Self {
        self.headers.push(key, Some(value.into()));
        self
    }

    /// Sets the timestamp in milliseconds since the Unix epoch.
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }

    pub(crate) fn from_message(message: &BorrowedMessage<'_>, topic: &Arc<str>) -> Self {
        let key = message.key();
        let value = message.payload();
        let (key, value) = match (key, value) {
            (Some(k), Some(v)) => {
                let mut buf = Vec::with_capacity(k.len() + v.len());
                buf.extend_from_slice(k);
                buf.extend_from_slice(v);
                let buf = Bytes::from(buf);
                (Some(buf.slice(..k.len())), Some(buf.slice(k.len()..)))
            }
            (k, v) => (k.map(Bytes::copy_from_slice), v.map(Bytes::copy_from_slice)),
        };
        let headers = Headers::copied(message);
        Self {
            topic: Arc::clone(topic),
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            key,
            value,
            headers,
        }
    }

    /// The topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition number.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The offset within the partition.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// The record timestamp in milliseconds since the Unix epoch, if the
    /// broker or producer set one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The key bytes; `None` for a record sent without a key.
    pub fn key(&self) -> Option<&Bytes> {
        self.key.as_ref()
    }

    /// The value bytes; `None` for a tombstone.
    pub fn value(&self) -> Option<&Bytes> {
        self.value.as_ref()
    }

    /// The headers, in the order they were sent.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
}
