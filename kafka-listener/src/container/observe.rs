//! Read-only views of a running container for observers such as the
//! operator console: each assigned partition's offsets and lag, the
//! listener's record counts and its rate-limit budget.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{ListenerContainer, Subscription};
use crate::rate_limit::RateLimit;
use crate::record::ConsumerRecord;
use crate::util::now_ms;

/// What a lane shows its observers; written on the slow paths only (a
/// back-off, the parallel lanes' once-a-second tick).
#[derive(Debug, Default)]
pub(crate) struct LaneWatch {
    /// The record waiting out a back-off (the last one, in a parallel lane).
    pub(crate) backing_off: Option<BackingOff>,
    /// When the oldest record in flight started, ms since the Unix epoch
    /// (parallel lanes, updated every second).
    pub(crate) oldest_since_ms: Option<i64>,
}

impl LaneWatch {
    /// The back-off of `offset` is over.
    pub(crate) fn ended(&mut self, offset: i64) {
        if self
            .backing_off
            .as_ref()
            .is_some_and(|b| b.offset == offset)
        {
            self.backing_off = None;
        }
    }
}

/// A record of a partition waiting out a back-off before its next attempt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct BackingOff {
    /// Its offset.
    pub offset: i64,
    /// Its key as UTF-8 (lossy; at most 200 bytes), if it has one.
    pub key: Option<String>,
    /// The attempt that failed (1 = the first call).
    pub attempt: u32,
    /// When the next attempt starts, ms since the Unix epoch.
    pub retry_at_ms: i64,
}

impl BackingOff {
    pub(crate) fn new(record: &ConsumerRecord, attempt: u32, delay: Duration) -> Self {
        let key = record
            .key()
            .map(|k| String::from_utf8_lossy(&k[..k.len().min(200)]).into_owned());
        Self {
            offset: record.offset(),
            key,
            attempt,
            retry_at_ms: now_ms() + delay.as_millis() as i64,
        }
    }
}

/// One partition's offsets at librdkafka's last statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watermarks {
    /// `log_end` minus the finished offset (never below 0).
    pub(crate) lag: i64,
    /// The high watermark; -1 when unknown.
    pub(crate) log_end: i64,
    /// The group's committed offset as librdkafka last saw it; -1 before
    /// the first commit.
    pub(crate) committed: i64,
}

/// One assigned partition of a listener ([`ListenerContainer::partition_status`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PartitionStatus {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
    /// The index of the consumer (0 to `concurrency - 1`) it is assigned to.
    pub consumer: usize,
    /// The group's committed offset at the last statistics (every
    /// `statistics.interval.ms`, 5 s by default); -1 before the first
    /// commit or statistics.
    pub committed: i64,
    /// One past the last offset the listener finished; -1 before the first.
    pub finished: i64,
    /// The log end offset (high watermark) at the last statistics; -1 when
    /// not known yet.
    pub log_end: i64,
    /// Records between the finished offset and the log end (0 when the log
    /// end is not known yet).
    pub lag: i64,
    /// Records handed to the partition's lane and not finished yet (being
    /// handled or queued behind the one in hand).
    pub in_flight: usize,
    /// How long the oldest record in flight has been handled, ms: for an
    /// ordered lane the record (or batch) in hand, including its retries
    /// and back-offs; for parallel lanes (`ordering = "key"` or `"none"`)
    /// as of their last once-a-second tick. `None` while nothing is being
    /// handled.
    pub oldest_in_flight_ms: Option<i64>,
    /// The record waiting out a back-off, if any.
    pub backing_off: Option<BackingOff>,
}

/// Records a listener handled and failed since its container was built
/// ([`ListenerContainer::counts`]): the counters
/// `kafka_listener_records_processed_total` and
/// `kafka_listener_records_failed_total`, readable in process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ListenerCounts {
    /// Records handled successfully.
    pub processed: u64,
    /// Failed handler calls (each attempt counts).
    pub failed: u64,
}

/// A rate-limited listener's budget ([`ListenerContainer::rate_limit_budget`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct RateLimitBudget {
    /// Records admitted per window.
    pub permits: u32,
    /// The window, ms.
    pub per_ms: u64,
    /// Permits left in the window ending now.
    pub available: u32,
}

impl ListenerContainer {
    /// The subscribed topics, or `pattern <regex>` for a pattern
    /// subscription (one element).
    pub fn topics(&self) -> Vec<String> {
        match &self.subscription {
            Subscription::Topics(t) => t.clone(),
            Subscription::Pattern(p) => vec![format!("pattern {p}")],
        }
    }

    /// The number of consumers the container runs (`concurrency`).
    pub fn concurrency(&self) -> usize {
        self.runtime.concurrency
    }

    /// Records handled and failed since the container was built.
    pub fn counts(&self) -> ListenerCounts {
        let t = &self.runtime.metrics.tally;
        ListenerCounts {
            processed: t.processed.load(Ordering::Relaxed),
            failed: t.failed.load(Ordering::Relaxed),
        }
    }

    /// The rate limit's budget now; `None` for a listener without
    /// [`crate::ListenerSpec::rate_limit`].
    pub fn rate_limit_budget(&self) -> Option<RateLimitBudget> {
        let limiter = self.runtime.rate_limiter.as_ref()?;
        let limit: RateLimit = limiter.limit();
        Some(RateLimitBudget {
            permits: limit.permits(),
            per_ms: limit.per().as_millis() as u64,
            available: limiter.available(Instant::now()),
        })
    }

    /// Every assigned partition, sorted by topic and partition: which
    /// consumer holds it, its committed, finished and log end offsets and
    /// its lag. Empty when the container is stopped.
    pub fn partition_status(&self) -> Vec<PartitionStatus> {
        let assigned = self.assigned_partitions();
        let progress = crate::util::lock(&self.observed.progress);
        let marks = crate::util::lock(&self.observed.lag);
        let mut out: Vec<PartitionStatus> = assigned
            .iter()
            .enumerate()
            .flat_map(|(consumer, tps)| tps.iter().map(move |tp| (consumer, tp)))
            .map(|(consumer, (topic, partition))| {
                let key = (topic.clone(), *partition);
                let w = marks.get(&key).copied().unwrap_or(Watermarks {
                    lag: 0,
                    log_end: -1,
                    committed: -1,
                });
                let lane = progress.get(&key);
                let watch = lane.map(|l| crate::util::lock(&l.watch));
                let backing_off = watch.as_ref().and_then(|w| w.backing_off.clone());
                let in_hand = lane.map_or(0, |l| l.in_hand_since_ms.load(Ordering::Relaxed));
                let since = watch
                    .as_ref()
                    .and_then(|w| w.oldest_since_ms)
                    .or((in_hand > 0).then_some(in_hand));
                let now = now_ms();
                let finished = lane.map_or(-1, |l| l.offsets.committable());
                PartitionStatus {
                    topic: topic.clone(),
                    partition: *partition,
                    consumer,
                    // librdkafka says -1001 (invalid) before a commit.
                    committed: w.committed.max(-1),
                    finished,
                    // The statistics may predate what was finished since.
                    log_end: if w.log_end < 0 {
                        -1
                    } else {
                        w.log_end.max(finished)
                    },
                    lag: w.lag,
                    in_flight: lane.map_or(0, |l| l.queued.load(Ordering::Acquire)),
                    oldest_in_flight_ms: since.map(|t| (now - t).max(0)),
                    backing_off,
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }
}
