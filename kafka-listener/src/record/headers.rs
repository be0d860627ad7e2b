//! Record headers ([`Headers`]) and every header name the framework reads
//! or writes, with its byte encoding: Spring Kafka's names and encodings
//! (`org.springframework.kafka.support.KafkaHeaders`, written by
//! `DeadLetterPublishingRecoverer`; `RetryTopicHeaders`), so that Spring
//! tools and consumers read our dead letters and we read theirs.
//!
//! | header | value |
//! |---|---|
//! | `kafka_dlt-original-topic` | UTF-8 topic name |
//! | `kafka_dlt-original-partition` | 4-byte big-endian signed int (Java `ByteBuffer.putInt`) |
//! | `kafka_dlt-original-offset` | 8-byte big-endian signed long (`putLong`) |
//! | `kafka_dlt-original-timestamp` | 8-byte big-endian long, ms since the Unix epoch |
//! | `kafka_dlt-original-timestamp-type` | `CreateTime` or `LogAppendTime` (UTF-8) |
//! | `kafka_dlt-original-consumer-group` | UTF-8 group id |
//! | `kafka_dlt-exception-fqcn` | UTF-8: the Rust type name of the error (Java: the exception class) |
//! | `kafka_dlt-exception-message` | UTF-8: the error's `Display` |
//! | `kafka_dlt-exception-stacktrace` | UTF-8: the error chain, one cause per line |
//! | `retry_topic-attempts` | 4-byte big-endian int: the delivery attempt (Spring's `RetryTopicHeaders`) |
//! | `retry_topic-backoff-timestamp` | 8-byte big-endian long: when the record is due, ms since the Unix epoch |
//! | `kafka_replyTopic` | UTF-8 topic name: where a request wants its reply (`ReplyingKafkaTemplate`) |
//! | `kafka_replyPartition` | 4-byte big-endian int: the partition of the reply topic the requester reads |
//! | `kafka_correlationId` | opaque bytes (Spring: the 16 bytes of a random UUID), copied unchanged from request to reply |
//!
//! Ours, not Spring's: `kafka_listener-dlt-error-kind` (`Retryable`,
//! `Fatal` or `Decode`), `kafka_listener-dlt-attempts` (4-byte big-endian
//! int: the attempts made before the record was dead-lettered) and
//! `kafka_listener-replayed-from`.

use bytes::Bytes;
use rdkafka::message::{BorrowedMessage, Headers as _, Message as _};

/// One record header: a name and an optional value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header name.
    pub key: String,
    /// The header value; `None` for a null header.
    pub value: Option<Bytes>,
}

/// Record headers, in order; a name may repeat (Kafka allows it), and
/// [`Headers::get`] returns the last one, as Spring's `lastHeader` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub(crate) Vec<Header>);

impl Headers {
    /// A copy of the headers of a record borrowed from librdkafka (none:
    /// empty).
    pub(crate) fn copied(message: &BorrowedMessage<'_>) -> Self {
        match message.headers() {
            None => Headers::default(),
            Some(h) => Headers(
                h.iter()
                    .map(|h| Header {
                        key: h.key.to_owned(),
                        value: h.value.map(Bytes::copy_from_slice),
                    })
                    .collect(),
            ),
        }
    }

    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a header.
    pub fn push(&mut self, key: &str, value: Option<Bytes>) {
        self.0.push(Header {
            key: key.to_owned(),
            value,
        });
    }

    /// The value of the last header named `key`, if there is one with a value.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .rev()
            .find(|h| h.key == key)
            .and_then(|h| h.value.as_deref())
    }

    /// [`Headers::get`] as UTF-8; `None` when absent or not UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// All headers in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.0.iter()
    }

    /// The number of headers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// `KafkaHeaders.DLT_ORIGINAL_TOPIC`: UTF-8.
pub const ORIGINAL_TOPIC: &str = "kafka_dlt-original-topic";
/// `KafkaHeaders.DLT_ORIGINAL_PARTITION`: 4-byte big-endian int.
pub const ORIGINAL_PARTITION: &str = "kafka_dlt-original-partition";
/// `KafkaHeaders.DLT_ORIGINAL_OFFSET`: 8-byte big-endian long.
pub const ORIGINAL_OFFSET: &str = "kafka_dlt-original-offset";
/// `KafkaHeaders.DLT_ORIGINAL_TIMESTAMP`: 8-byte big-endian long, ms since
/// the Unix epoch.
pub const ORIGINAL_TIMESTAMP: &str = "kafka_dlt-original-timestamp";
/// `KafkaHeaders.DLT_ORIGINAL_TIMESTAMP_TYPE`: `CreateTime` (UTF-8).
pub const ORIGINAL_TIMESTAMP_TYPE: &str = "kafka_dlt-original-timestamp-type";
/// `KafkaHeaders.DLT_ORIGINAL_CONSUMER_GROUP`: UTF-8.
pub const ORIGINAL_CONSUMER_GROUP: &str = "kafka_dlt-original-consumer-group";
/// `KafkaHeaders.DLT_EXCEPTION_FQCN`: the Rust type name of the error.
pub const EXCEPTION_FQCN: &str = "kafka_dlt-exception-fqcn";
/// `KafkaHeaders.DLT_EXCEPTION_MESSAGE`: the error's message.
pub const EXCEPTION_MESSAGE: &str = "kafka_dlt-exception-message";
/// `KafkaHeaders.DLT_EXCEPTION_STACKTRACE`: the error chain.
pub const EXCEPTION_STACKTRACE: &str = "kafka_dlt-exception-stacktrace";
/// Ours: `Retryable`, `Fatal` or `Decode` (`ErrorKind`).
pub const ERROR_KIND: &str = "kafka_listener-dlt-error-kind";
/// Ours: attempts made, 4-byte big-endian int.
pub const ATTEMPTS: &str = "kafka_listener-dlt-attempts";
/// Ours, on a replayed dead letter: the id of the stored dead letter it
/// replays (UTF-8).
pub const REPLAYED_FROM: &str = "kafka_listener-replayed-from";

/// Every header the framework writes on a dead letter or a retried record;
/// these are dropped from a record before it is dead-lettered again or replayed, so that a
/// record carries one set.
pub const ALL: &[&str] = &[
    ORIGINAL_TOPIC,
    ORIGINAL_PARTITION,
    ORIGINAL_OFFSET,
    ORIGINAL_TIMESTAMP,
    ORIGINAL_TIMESTAMP_TYPE,
    ORIGINAL_CONSUMER_GROUP,
    EXCEPTION_FQCN,
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    ERROR_KIND,
    ATTEMPTS,
    RETRY_TOPIC_ATTEMPTS,
    RETRY_TOPIC_BACKOFF_TIMESTAMP,
];

/// Spring's `RetryTopicHeaders.DEFAULT_HEADER_ATTEMPTS`: 4-byte big-endian
/// int, the delivery attempt of a record on a retry topic.
pub const RETRY_TOPIC_ATTEMPTS: &str = "retry_topic-attempts";
/// Spring's `RetryTopicHeaders.DEFAULT_HEADER_BACKOFF_TIMESTAMP`: 8-byte
/// big-endian long, when a record on a retry topic is due (ms since the
/// Unix epoch).
pub const RETRY_TOPIC_BACKOFF_TIMESTAMP: &str = "retry_topic-backoff-timestamp";

/// `KafkaHeaders.REPLY_TOPIC`: the topic a request's reply goes to, as
/// UTF-8 bytes. Spring's `ReplyingKafkaTemplate` writes
/// `topic.getBytes(StandardCharsets.UTF_8)` of its reply container's topic;
/// its `@SendTo` listener reads it back as a UTF-8 string.
pub const REPLY_TOPIC: &str = "kafka_replyTopic";
/// `KafkaHeaders.REPLY_PARTITION`: the partition of the reply topic, a
/// 4-byte big-endian int. Spring's `ReplyingKafkaTemplate` writes it (only
/// when its reply container is assigned one partition) and
/// `MessagingMessageListenerAdapter.setPartition` reads it with
/// `ByteBuffer.wrap(bytes).getInt()`.
pub const REPLY_PARTITION: &str = "kafka_replyPartition";
/// `KafkaHeaders.CORRELATION_ID`: the `byte[]` that pairs a reply with its
/// request. Spring's `ReplyingKafkaTemplate.createCorrelationId` gives the
/// 16 bytes of a random UUID (most then least significant long, big-endian);
/// a replier copies the bytes unchanged, whatever their length.
pub const CORRELATION_ID: &str = "kafka_correlationId";

/// The original coordinates a dead letter carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    /// `kafka_dlt-original-topic`.
    pub topic: String,
    /// `kafka_dlt-original-partition`.
    pub partition: i32,
    /// `kafka_dlt-original-offset`.
    pub offset: i64,
    /// `kafka_dlt-original-timestamp`, ms since the Unix epoch.
    pub timestamp: Option<i64>,
}

impl Original {
    /// Reads the original topic, partition, offset and timestamp; `None`
    /// unless the topic, partition and offset headers are all there and
    /// well-formed (4 and 8 bytes big-endian).
    pub fn from_headers(headers: &Headers) -> Option<Self> {
        Some(Self {
            topic: headers.get_str(ORIGINAL_TOPIC)?.to_owned(),
            partition: be_i32(headers.get(ORIGINAL_PARTITION)?)?,
            offset: be_i64(headers.get(ORIGINAL_OFFSET)?)?,
            timestamp: headers.get(ORIGINAL_TIMESTAMP).and_then(be_i64),
        })
    }
}

/// A 4-byte big-endian int (Java's `ByteBuffer.getInt`).
pub fn be_i32(bytes: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(bytes.try_into().ok()?))
}

/// An 8-byte big-endian long (Java's `ByteBuffer.getLong`).
pub fn be_i64(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(bytes.try_into().ok()?))
}
