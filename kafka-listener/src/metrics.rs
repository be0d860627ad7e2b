//! Metrics through the [`metrics`] facade: install any recorder (for example
//! `metrics-exporter-prometheus`) to export them.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `kafka_listener_records_processed_total` | counter | `listener` | records handled successfully |
//! | `kafka_listener_records_failed_total` | counter | `listener` | failed handler calls (each attempt) |
//! | `kafka_listener_records_retried_total` | counter | `listener` | retries after a back-off |
//! | `kafka_listener_records_skipped_total` | counter | `listener` | records that failed for good with no dead-letter topic |
//! | `kafka_listener_records_dead_lettered_total` | counter | `listener` | records published to a dead-letter (or retry) topic |
//! | `kafka_listener_handler_seconds` | histogram | `listener` | handler latency in seconds |
//! | `kafka_listener_commit_failures_total` | counter | `listener` | failed offset commits |
//! | `kafka_listener_rebalances_total` | counter | `listener` | partitions revoked from a consumer |
//! | `kafka_listener_consumer_lag` | gauge | `listener`, `topic`, `partition` | records between the consumer's position and the log end, from librdkafka's statistics every 5 s |
//! | `kafka_listener_offset_gaps_total` | counter | `listener` | offsets skipped between the committed or last handled offset and the next record: records lost to retention (logged at error level), compaction, transaction markers |

//!
//! The outbox and after-commit counters are in [`crate::after_commit`].
//! Every counter of a listener is registered at 0 when its container starts
//! (the outbox's when its relay starts), so that Prometheus' `rate()` and
//! `increase()` see the first event; the lag gauge appears with librdkafka's
//! first statistics.
//!
//! # Prometheus
//!
//! With `metrics-exporter-prometheus`, give the latency histograms buckets
//! so that they are exported as Prometheus histograms (aggregatable across
//! instances, as Micrometer's `publishPercentileHistogram`) rather than
//! summaries:
//!
//! ```
//! use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
//!
//! let builder = PrometheusBuilder::new()
//!     .set_buckets_for_metric(
//!         Matcher::Prefix("kafka_listener_".into()),
//!         kafka_listener::metrics::LATENCY_BUCKETS,
//!     )
//!     .unwrap();
//! ```
//!
//! A Grafana dashboard over these metrics is `docs/grafana/kafka-listener.json`
//! (the guide's "Monitoring" chapter).

use metrics::{counter, histogram, Counter, Histogram};

/// Histogram bucket bounds for handler latency, in seconds: 0.5 ms to 10 s,
/// about ×2.5 apart (the spread of Micrometer's default SLO-less histogram
/// for sub-second handlers, trimmed to 14 buckets).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

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
        // Incremented where the record is recovered; registered here at 0.
        for name in [
            "kafka_listener_records_dead_lettered_total",
            "kafka_listener_records_skipped_total",
        ] {
            counter!(name, "listener" => l.clone()).increment(0);
        }
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
