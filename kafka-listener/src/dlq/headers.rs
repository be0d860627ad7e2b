//! The headers of a dead letter, with Spring Kafka's names and encodings
//! (`org.springframework.kafka.support.KafkaHeaders`, written by
//! `DeadLetterPublishingRecoverer`), so that Spring tools and consumers read
//! our dead letters and we read theirs.
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
//! | `kafka_dlt-exception-stacktrace` | UTF-8: the error chain, one cause per line ([`ListenerError::chain`]) |
//!
//! Ours, not Spring's: `kafka_listener-dlt-error-kind` (`Retryable`,
//! `Fatal` or `Decode`) and `kafka_listener-dlt-attempts` (4-byte
//! big-endian int: the attempts made before the record was dead-lettered).

use bytes::Bytes;

use crate::error::{ErrorKind, ListenerError};
use crate::record::{ConsumerRecord, Headers};

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
/// Ours: `Retryable`, `Fatal` or `Decode` ([`ErrorKind`]).
pub const ERROR_KIND: &str = "kafka_listener-dlt-error-kind";
/// Ours: attempts made, 4-byte big-endian int.
pub const ATTEMPTS: &str = "kafka_listener-dlt-attempts";
/// Ours, on a replayed dead letter: the id of the stored dead letter it
/// replays (UTF-8).
pub const REPLAYED_FROM: &str = "kafka_listener-replayed-from";

/// Every header this module (and [`crate::retry_topics`]) writes on a dead
/// letter; these are dropped
/// from a record before it is dead-lettered again or replayed, so that a
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
    crate::retry_topics::ATTEMPTS_HEADER,
    crate::retry_topics::BACKOFF_TIMESTAMP_HEADER,
];

/// The headers of the dead letter of `record`: the record's own headers
/// (less any earlier dead-letter headers), then the headers of the table
/// above. A record that was itself dead-lettered before (a replay that
/// failed again) keeps its first original coordinates.
pub fn dead_letter_headers(
    record: &ConsumerRecord,
    error: &ListenerError,
    attempts: u32,
    group: &str,
) -> Vec<(String, Bytes)> {
    let original = Original::from_headers(record.headers());
    let mut out: Vec<(String, Bytes)> = record
        .headers()
        .iter()
        .filter(|h| !ALL.contains(&h.key.as_str()))
        .map(|h| (h.key.clone(), h.value.clone().unwrap_or_default()))
        .collect();
    let (topic, partition, offset, timestamp) = match original {
        Some(o) => (o.topic, o.partition, o.offset, o.timestamp),
        None => (
            record.topic().to_owned(),
            record.partition(),
            record.offset(),
            record.timestamp(),
        ),
    };
    let mut put = |k: &str, v: Bytes| out.push((k.to_owned(), v));
    put(ORIGINAL_TOPIC, Bytes::from(topic));
    put(
        ORIGINAL_PARTITION,
        Bytes::copy_from_slice(&partition.to_be_bytes()),
    );
    put(
        ORIGINAL_OFFSET,
        Bytes::copy_from_slice(&offset.to_be_bytes()),
    );
    if let Some(ts) = timestamp {
        put(
            ORIGINAL_TIMESTAMP,
            Bytes::copy_from_slice(&ts.to_be_bytes()),
        );
        put(ORIGINAL_TIMESTAMP_TYPE, Bytes::from_static(b"CreateTime"));
    }
    put(ORIGINAL_CONSUMER_GROUP, Bytes::from(group.to_owned()));
    put(EXCEPTION_FQCN, Bytes::from(error.type_name()));
    put(EXCEPTION_MESSAGE, Bytes::from(error.to_string()));
    put(EXCEPTION_STACKTRACE, Bytes::from(error.chain()));
    put(ERROR_KIND, Bytes::from(kind_name(error.kind())));
    put(ATTEMPTS, Bytes::copy_from_slice(&attempts.to_be_bytes()));
    out
}

/// `Retryable`, `Fatal` or `Decode`.
pub fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Retryable => "Retryable",
        ErrorKind::Fatal => "Fatal",
        ErrorKind::Decode => "Decode",
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spring_encodings() {
        let record = ConsumerRecord::new("orders", 2, 258)
            .with_timestamp(1_700_000_000_000)
            .with_header("trace", "abc");
        let err = ListenerError::fatal(std::io::Error::other("boom"));
        let h = dead_letter_headers(&record, &err, 3, "g");
        let get = |k: &str| {
            h.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(&get("trace")[..], b"abc");
        assert_eq!(&get(ORIGINAL_TOPIC)[..], b"orders");
        assert_eq!(&get(ORIGINAL_PARTITION)[..], &[0, 0, 0, 2]);
        assert_eq!(&get(ORIGINAL_OFFSET)[..], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(be_i64(&get(ORIGINAL_TIMESTAMP)), Some(1_700_000_000_000));
        assert_eq!(&get(EXCEPTION_FQCN)[..], b"std::io::error::Error");
        assert_eq!(&get(EXCEPTION_MESSAGE)[..], b"boom");
        assert_eq!(&get(ERROR_KIND)[..], b"Fatal");
        assert_eq!(be_i32(&get(ATTEMPTS)), Some(3));
    }
}
