//! Writes the headers of a dead letter, with Spring Kafka's names and encodings
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
use crate::record::headers::*;
use crate::record::ConsumerRecord;

/// The headers of the dead letter of `record`: the record's own headers
/// (less any earlier dead-letter headers), then the headers of the table
/// above. A record that was itself dead-lettered before (a replay that
/// failed again) keeps its first original coordinates.
pub(crate) fn dead_letter_headers(
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
pub(crate) fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Retryable => "Retryable",
        ErrorKind::Fatal => "Fatal",
        ErrorKind::Decode => "Decode",
    }
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
