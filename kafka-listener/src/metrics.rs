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
//! | `kafka_listener_consumer_errors_total` | counter | `listener`, `kind` | errors the listener's consumers reported: `authorization` (an ACL denies a topic or the group), `authentication`, `other` (brokers down, ...) |
//! | `kafka_listener_consumer_lag` | gauge | `listener`, `topic`, `partition` | records between the consumer's position and the log end, from librdkafka's statistics every 5 s |
//! | `kafka_listener_records_in_flight` | gauge | `listener` | records being handled at once (`ordering = "key"` or `"none"`) |
//! | `kafka_listener_keys_waiting` | gauge | `listener` | records waiting behind a record of their key (`ordering = "key"`) |
//! | `kafka_listener_oldest_in_flight_seconds` | gauge | `listener`, `topic`, `partition` | age of the oldest record in flight in a parallel lane |
//! | `kafka_listener_replies_dropped_total` | counter | `reply_topic`, `reason` | replies a `ReplyingKafkaTemplate` read and dropped: `late` (its request had timed out), `unknown` (no request of this template has its correlation id: another requester's, or a duplicate), `no_correlation_id` (no `kafka_correlationId` header) |
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

use self::names::*;

/// Metric names, in one place: every name the crate exports.
pub mod names {
    /// `kafka_listener_records_processed_total`: records handled successfully.
    pub const RECORDS_PROCESSED: &str = "kafka_listener_records_processed_total";
    /// `kafka_listener_records_failed_total`: failed handler calls (each attempt).
    pub const RECORDS_FAILED: &str = "kafka_listener_records_failed_total";
    /// `kafka_listener_records_filtered_total`: records the listener's filter (`ListenerSpec::filter`) kept from the handler.
    pub const RECORDS_FILTERED: &str = "kafka_listener_records_filtered_total";
    /// `kafka_listener_transactions_total{listener, outcome}`: Kafka transactions of a `transactional = true` listener, by `outcome` (`committed`, `aborted`).
    pub const TRANSACTIONS: &str = "kafka_listener_transactions_total";
    /// `kafka_listener_records_retried_total`: retries after a back-off.
    pub const RECORDS_RETRIED: &str = "kafka_listener_records_retried_total";
    /// `kafka_listener_records_skipped_total`: records that failed for good with no dead-letter topic.
    pub const RECORDS_SKIPPED: &str = "kafka_listener_records_skipped_total";
    /// `kafka_listener_records_dead_lettered_total`: records published to a dead-letter topic.
    pub const RECORDS_DEAD_LETTERED: &str = "kafka_listener_records_dead_lettered_total";
    /// `kafka_listener_records_retry_topic_total`: records published to a retry topic.
    pub const RECORDS_RETRY_TOPIC: &str = "kafka_listener_records_retry_topic_total";
    /// `kafka_listener_handler_seconds`: handler latency histogram, seconds.
    pub const HANDLER_SECONDS: &str = "kafka_listener_handler_seconds";
    /// `kafka_listener_commit_failures_total`: failed offset commits.
    pub const COMMIT_FAILURES: &str = "kafka_listener_commit_failures_total";
    /// `kafka_listener_rebalances_total`: partitions revoked from a consumer.
    pub const REBALANCES: &str = "kafka_listener_rebalances_total";
    /// `kafka_listener_consumer_errors_total`: errors the listener's
    /// consumers reported, by `kind`: `authorization` (a topic an ACL
    /// denies), `authentication`, `other` (a broker down, ...).
    pub const CONSUMER_ERRORS: &str = "kafka_listener_consumer_errors_total";
    /// `kafka_listener_consumer_lag`: gauge: records between the finished offset and the log end.
    pub const CONSUMER_LAG: &str = "kafka_listener_consumer_lag";
    /// `kafka_listener_offset_gaps_total`: offsets skipped between two handled records.
    pub const OFFSET_GAPS: &str = "kafka_listener_offset_gaps_total";
    /// `kafka_listener_after_commit_handlers_total`: after-commit handler calls.
    pub const AFTER_COMMIT_HANDLERS: &str = "kafka_listener_after_commit_handlers_total";
    /// `kafka_listener_after_commit_handler_failures_total`: after-commit handler failures.
    pub const AFTER_COMMIT_HANDLER_FAILURES: &str =
        "kafka_listener_after_commit_handler_failures_total";
    /// `kafka_listener_outbox_published_total`: outbox rows sent and acknowledged.
    pub const OUTBOX_PUBLISHED: &str = "kafka_listener_outbox_published_total";
    /// `kafka_listener_outbox_send_failures_total`: outbox sends that failed (retried with back-off).
    pub const OUTBOX_SEND_FAILURES: &str = "kafka_listener_outbox_send_failures_total";
    /// `kafka_listener_records_in_flight`: gauge, records being handled by listeners with `ordering = "key"` or `"none"` whose handler is waiting (a handler that finishes without waiting is never counted: the lane runs it to its end when it starts it).
    pub const RECORDS_IN_FLIGHT: &str = "kafka_listener_records_in_flight";
    /// `kafka_listener_keys_waiting`: gauge, records waiting behind a record of their key in flight (`ordering = "key"`).
    pub const KEYS_WAITING: &str = "kafka_listener_keys_waiting";
    /// `kafka_listener_oldest_in_flight_seconds`: gauge per partition, age of the oldest record in flight (parallel lanes; updated every second).
    pub const OLDEST_IN_FLIGHT_SECONDS: &str = "kafka_listener_oldest_in_flight_seconds";
    /// `kafka_listener_replies_dropped_total`: replies a
    /// `ReplyingKafkaTemplate` read and dropped, by `reply_topic` and
    /// `reason`: `late` (the request had timed out), `unknown` (no pending
    /// request has the correlation id), `no_correlation_id`.
    pub const REPLIES_DROPPED: &str = "kafka_listener_replies_dropped_total";
    /// `kafka_listener_outbox_unknown_event_total`: outbox rows whose event name this binary does not know (left unsent).
    pub const OUTBOX_UNKNOWN_EVENT: &str = "kafka_listener_outbox_unknown_event_total";
}

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
    pub(crate) filtered: Counter,
    pub(crate) transactions_committed: Counter,
    pub(crate) transactions_aborted: Counter,
    pub(crate) handler_seconds: Histogram,
    pub(crate) commit_failures: Counter,
    pub(crate) rebalances: Counter,
    pub(crate) offset_gaps: Counter,
    /// The processed and failed counts again, readable in process (the
    /// operator console's records/s and failures; a `metrics` counter
    /// cannot be read back).
    pub(crate) tally: std::sync::Arc<Tally>,
}

/// Records processed and failed handler calls of one listener since it was
/// built, as the counters `kafka_listener_records_processed_total` and
/// `kafka_listener_records_failed_total` count them.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) processed: std::sync::atomic::AtomicU64,
    pub(crate) failed: std::sync::atomic::AtomicU64,
}

impl ListenerMetrics {
    pub(crate) fn new(listener: &str) -> Self {
        let l = listener.to_owned();
        // Incremented where the record is recovered; registered here at 0.
        for name in [RECORDS_DEAD_LETTERED, RECORDS_SKIPPED] {
            counter!(name, "listener" => l.clone()).increment(0);
        }
        Self {
            processed: counter!(RECORDS_PROCESSED, "listener" => l.clone()),
            failed: counter!(RECORDS_FAILED, "listener" => l.clone()),
            retried: counter!(RECORDS_RETRIED, "listener" => l.clone()),
            filtered: counter!(RECORDS_FILTERED, "listener" => l.clone()),
            transactions_committed: counter!(TRANSACTIONS, "listener" => l.clone(), "outcome" => "committed"),
            transactions_aborted: counter!(TRANSACTIONS, "listener" => l.clone(), "outcome" => "aborted"),
            handler_seconds: histogram!(HANDLER_SECONDS, "listener" => l.clone()),
            commit_failures: counter!(COMMIT_FAILURES, "listener" => l.clone()),
            rebalances: counter!(REBALANCES, "listener" => l.clone()),
            offset_gaps: counter!(OFFSET_GAPS, "listener" => l),
            tally: Default::default(),
        }
    }
}
