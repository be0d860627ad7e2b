//! Avro logical types for fields of serde types with a derived schema.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apache_avro::schema::derive::AvroSchemaComponent;
use apache_avro::schema::{Name, Namespace};
use apache_avro::Schema;
use serde::{Deserialize, Serialize};

/// A point in time as Avro's `timestamp-millis` logical type: milliseconds
/// since the Unix epoch, UTC, written as an Avro `long` with
/// `"logicalType": "timestamp-millis"` (Avro specification 1.11,
/// "Timestamps"). Java reads it as `java.time.Instant`, Python's
/// `confluent_kafka` as a timezone-aware `datetime`.
///
/// apache-avro's `#[derive(AvroSchema)]` gives a plain `i64` field the
/// schema `long`; give the field this type to get the logical type. In
/// serde (JSON included) it is the bare number.
///
/// ```
/// use apache_avro::AvroSchema;
/// use kafka_listener::avro::TimestampMillis;
///
/// #[derive(serde::Serialize, serde::Deserialize, AvroSchema)]
/// struct IssueRequested { coupon_id: String, requested_at: TimestampMillis }
///
/// let schema = serde_json::to_string(&IssueRequested::get_schema()).unwrap();
/// assert!(schema.contains(r#""type":{"type":"long","logicalType":"timestamp-millis"}"#), "{schema}");
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TimestampMillis(pub i64);

impl TimestampMillis {
    /// The current time (0 for a clock before 1970).
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> i64 {
        self.0
    }
}

impl From<SystemTime> for TimestampMillis {
    /// Truncated to the millisecond; times before 1970 are negative.
    fn from(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)),
            Err(before) => Self(-i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX)),
        }
    }
}

impl From<TimestampMillis> for SystemTime {
    fn from(ts: TimestampMillis) -> Self {
        let millis = Duration::from_millis(ts.0.unsigned_abs());
        if ts.0 >= 0 {
            UNIX_EPOCH + millis
        } else {
            UNIX_EPOCH - millis
        }
    }
}

impl From<i64> for TimestampMillis {
    fn from(millis: i64) -> Self {
        Self(millis)
    }
}

impl AvroSchemaComponent for TimestampMillis {
    fn get_schema_in_ctxt(_: &mut HashMap<Name, Schema>, _: &Namespace) -> Schema {
        Schema::TimestampMillis
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::{from_avro_datum, from_value, to_avro_datum, to_value, AvroSchema};

    #[derive(Debug, PartialEq, Serialize, Deserialize, apache_avro::AvroSchema)]
    struct Event {
        id: String,
        at: TimestampMillis,
    }

    #[test]
    fn round_trips_as_the_logical_type() {
        let schema = Event::get_schema();
        let event = Event {
            id: "e".into(),
            at: TimestampMillis(1_700_000_000_123),
        };
        let value = to_value(&event).unwrap().resolve(&schema).unwrap();
        let bytes = to_avro_datum(&schema, value).unwrap();
        let read = from_avro_datum(&schema, &mut &bytes[..], None).unwrap();
        match &read {
            apache_avro::types::Value::Record(fields) => {
                assert_eq!(
                    fields[1],
                    (
                        "at".to_owned(),
                        apache_avro::types::Value::TimestampMillis(1_700_000_000_123)
                    )
                );
            }
            other => panic!("not a record: {other:?}"),
        }
        assert_eq!(from_value::<Event>(&read).unwrap(), event);
        assert_eq!(serde_json::to_string(&event.at).unwrap(), "1700000000123");
    }

    #[test]
    fn converts_from_and_to_system_time() {
        let t = UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(TimestampMillis::from(t), TimestampMillis(1_500));
        assert_eq!(SystemTime::from(TimestampMillis(1_500)), t);
        let before = UNIX_EPOCH - Duration::from_millis(2_000);
        assert_eq!(TimestampMillis::from(before), TimestampMillis(-2_000));
        assert_eq!(SystemTime::from(TimestampMillis(-2_000)), before);
    }
}
