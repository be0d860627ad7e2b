//! Metrics through the [`metrics`] facade: install any recorder (for example
//! `metrics-exporter-prometheus`) to export them.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `kafka_listener_records_processed_total` | counter | `listener` | records handled successfully |
//! | `kafka_listener_records_failed_total` | counter | `listener` | failed handler calls (each attempt) |
//! | `kafka_listener_records_retried_total` | counter | `listener` | retries after a back-off |
//! | `kafka_listener_records_skipped_total` | counter | `listener` | records that failed for good with no dead-letter topic |
//! | `kafka_listener_handler_seconds` | histogram | `listener` | handler latency in seconds |
//! | `kafka_listener_commit_failures_total` | counter | `listener` | failed offset commits |
//! | `kafka_listener_rebalances_total` | counter | `listener` | partitions revoked from a consumer |
//! | `kafka_listener_consumer_lag` | gauge | `listener`, `topic`, `partition` | records between the consumer's position and the log end, from librdkafka's statistics every 5 s |
//! | `kafka_listener_offset_gaps_total` | counter | `listener` | offsets skipped between the committed or last handled offset and the next record: records lost to retention (logged at error level), compaction, transaction markers |

use metrics::{counter, histogram, Counter, Histogram};

/// Handles of one listener's metrics, resolved once at start.
#[derive(Debug, Clone)]
pub(crate) struct ListenerMetrics {
    pub(crate) processed: Counter,
    pub(crate) failed: Counter,
    pub(crate) retried: Counter,
    pub(crate) handler_seconds: Histogram,
    pub(crate) commit_failures: Counter,
    pub(crate) rebalances: Counter,
    pub(crate) offset_gaps: Counter,
}

impl ListenerMetrics {
    pub(crate) fn new(listener: &str) -> Self {
        let l = listener.to_owned();
        Self {
            processed: counter!("kafka_listener_records_processed_total", "listener" => l.clone()),
            failed: counter!("kafka_listener_records_failed_total", "listener" => l.clone()),
            retried: counter!("kafka_listener_records_retried_total", "listener" => l.clone()),
            handler_seconds: histogram!("kafka_listener_handler_seconds", "listener" => l.clone()),
            commit_failures: counter!("kafka_listener_commit_failures_total", "listener" => l.clone()),
            rebalances: counter!("kafka_listener_rebalances_total", "listener" => l.clone()),
            offset_gaps: counter!("kafka_listener_offset_gaps_total", "listener" => l),
        }
    }
}
