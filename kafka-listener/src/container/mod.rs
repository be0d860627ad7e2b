//! The listener container: `concurrency` consumers of one group, each with a
//! poll thread and one lane task per assigned partition.
//!
//! Spring Kafka's `ConcurrentMessageListenerContainer`, with these
//! differences: polling runs on its own thread and never runs user code (so
//! a slow handler cannot exceed `max.poll.interval.ms`), and records of
//! different partitions are handled concurrently on the tokio runtime even
//! within one consumer.

mod burst;
mod commit;
mod consumer;
mod errors;
mod keyed;
mod lane;
mod lanes;
mod observe;
mod rebalance;
mod seek;
mod tx;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::BaseConsumer;
use rdkafka::ClientConfig;

use self::consumer::StopGate;
pub use self::errors::{ConsumerError, ConsumerErrorKind};
use self::lanes::{ContainerContext, Control};
pub use self::observe::{BackingOff, ListenerCounts, PartitionStatus, RateLimitBudget};
use crate::context::ListenerInfo;
use crate::dlq::DeadLetterRecoverer;
use crate::error::{Error, Result};
use crate::handler::ErasedHandler;
use crate::listener::ListenerSpec;
use crate::metrics::ListenerMetrics;
use crate::producer::KafkaTemplate;
use crate::rate_limit::RateLimiter;
use crate::recover::{LoggingRecoverer, Recoverer};
use crate::retry::DeadLetter;
use crate::retry::RetryPolicy;
use crate::state::StateMap;

/// The container's default `fetch.queue.backoff.ms` (librdkafka's is 1000).
pub(crate) const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// Each consumer's assigned `(topic, partition)`s, indexed by consumer.
pub(crate) type Assignments = Arc<Mutex<Vec<Vec<(String, i32)>>>>;

/// Every partition whose lane runs (its offsets, in-flight count and what
/// it backs off on), by topic and partition.
pub(crate) type Progress =
    Arc<Mutex<std::collections::HashMap<(String, i32), Arc<lane::LaneShared>>>>;

/// The lag per `(topic, partition)` at librdkafka's last statistics, with
/// the log end and committed offsets it came from.
pub(crate) type Lag = Arc<Mutex<std::collections::HashMap<(String, i32), observe::Watermarks>>>;

/// What a container's consumers report for its observers: assignments,
/// finished offsets and lag.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    pub(crate) assigned: Assignments,
    pub(crate) progress: Progress,
    pub(crate) lag: Lag,
    pub(crate) errors: errors::Errors,
}

/// What a listener subscribes to.
#[derive(Debug, Clone)]
pub(crate) enum Subscription {
    Topics(Vec<String>),
    Pattern(String),
}

/// For the start-up log: `a,b` or `pattern ^a\..*`.
impl std::fmt::Display for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subscription::Topics(t) => f.write_str(&t.join(",")),
            Subscription::Pattern(p) => write!(f, "pattern {p}"),
        }
    }
}

/// A listener ready to run, shared by its consumers and lanes.
pub(crate) struct ListenerRuntime {
    pub(crate) info: ListenerInfo,
    pub(crate) handler: Arc<ErasedHandler>,
    /// The handler inside the listener's layers (`ListenerSpec::layer`);
    /// `None` without layers.
    pub(crate) service: Option<crate::intercept::ListenerService>,
    pub(crate) retry: RetryPolicy,
    /// Attempts of records whose back-off a revoke cut short.
    pub(crate) retry_memory: lane::RetryMemory,
    /// Error types classified as not retryable ([`ListenerSpec::not_retryable`]).
    pub(crate) not_retryable: Vec<fn(&crate::error::ListenerError) -> bool>,
    pub(crate) recoverer: Arc<dyn Recoverer>,
    pub(crate) concurrency: usize,
    pub(crate) max_in_flight: usize,
    /// How one partition's records are ordered, and how many run at once.
    pub(crate) ordering: crate::listener::Ordering,
    pub(crate) parallelism: usize,
    pub(crate) max_batch: usize,
    /// The most records one poll burst takes (`max.poll.records`).
    pub(crate) max_poll_records: usize,
    pub(crate) commit_interval: Duration,
    pub(crate) metrics: ListenerMetrics,
    /// Records may carry a `retry_topic-backoff-timestamp` to wait for.
    pub(crate) retry_topics: bool,
    pub(crate) rate_limiter: Option<RateLimiter>,
    /// `ListenerSpec::filter`: `false` finishes a record unhandled.
    pub(crate) filter: Option<crate::listener::RecordFilter>,
    /// `ListenerSpec::seek_on_assignment`.
    pub(crate) seek_on_assignment: Option<crate::config::SeekPosition>,
    /// `ListenerSpec::transactional`: the template whose transactional
    /// producers the consumers use.
    pub(crate) transactions: Option<KafkaTemplate>,
}

impl std::fmt::Debug for ListenerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerRuntime")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

struct ConsumerThread {
    stop: Arc<AtomicBool>,
    control: std::sync::mpsc::Sender<Control>,
    join: JoinHandle<()>,
}

/// A running (or stopped) listener: Spring's `MessageListenerContainer`.
/// Get one by id from [`crate::RunningApp::container`].
pub struct ListenerContainer {
    runtime: Arc<ListenerRuntime>,
    subscription: Subscription,
    client_config: ClientConfig,
    drain_timeout: Duration,
    /// How long a consumer stopped before its first assignment waits for
    /// it, to leave the group (zero on the embedded broker, whose groups
    /// keep no pending member).
    join_before_leave: Duration,
    consumers: Mutex<Vec<ConsumerThread>>,
    paused: AtomicBool,
    observed: Observed,
}

impl std::fmt::Debug for ListenerContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerContainer")
            .field("id", &self.id())
            .field("running", &self.is_running())
            .finish()
    }
}

/// One partition's finished offset ([`ListenerContainer::finished_offsets`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct FinishedOffset {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
    /// One past the last offset the listener finished; -1 before the first.
    pub offset: i64,
}

/// One partition's lag ([`ListenerContainer::lag`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
    /// Records between the finished offset and the log end offset.
    pub lag: i64,
}

impl ListenerContainer {
    /// Builds a container from a spec; nothing runs until [`Self::start`].
    ///
    /// `base` is the app's consumer configuration (bootstrap servers and
    /// client properties); the listener's own properties win over it, and
    /// `group.id`, `enable.auto.commit=false` and
    /// `enable.auto.offset.store=false` are always set. `template` publishes
    /// dead letters and retry-topic records.
    ///
    /// # Errors
    /// [`Error::Listener`] when the spec or a handler argument is invalid.
    pub(crate) fn new(
        mut spec: ListenerSpec,
        state: Arc<StateMap>,
        base: &ClientConfig,
        drain_timeout: Duration,
        template: &KafkaTemplate,
    ) -> Result<Self> {
        // The listener's own group, else the configuration's `group.id`
        // (Spring's `spring.kafka.consumer.group-id`), else its id.
        let group: Arc<str> = match (&spec.group_id, base.get("group.id")) {
            (None, Some(configured)) if !configured.is_empty() => Arc::from(configured),
            _ => Arc::from(spec.configured_group_id()),
        };
        let info = ListenerInfo {
            id: Arc::from(spec.id.as_str()),
            group_id: group,
            ack_mode: spec.ack_mode,
            state,
        };
        spec.validate(&info)?;
        let transactions = if spec.transactional {
            if template.transactions().is_none() {
                return Err(Error::Listener {
                    listener: spec.id.clone(),
                    reason: "`transactional = true` needs a transactional.id prefix: set \
                             KAFKA_TRANSACTION_ID_PREFIX, spring.kafka.producer.transaction-id-prefix \
                             or KafkaConfig::transaction_id_prefix"
                        .into(),
                });
            }
            Some(template.clone())
        } else {
            None
        };
        let hint = spec.dead_letter_hint();
        let retry_topics = spec.retry_topics.take();
        if let Some(rt) = &retry_topics {
            let extra: Vec<String> = spec.topics.iter().flat_map(|t| rt.topic_names(t)).collect();
            spec.topics.extend(extra);
        }
        let recoverer: Arc<dyn Recoverer> = match (
            spec.recoverer.take(),
            &retry_topics,
            spec.dead_letter.take(),
        ) {
            (Some(r), _, _) => r,
            (None, Some(rt), dl) => Arc::new(crate::retry_topics::RetryTopicRecoverer::new(
                rt.clone(),
                template.clone(),
                dl.unwrap_or(DeadLetter::suffixed()),
            )),
            (None, None, Some(dl)) => Arc::new(DeadLetterRecoverer::new(template.clone(), dl)),
            (None, None, None) => Arc::new(LoggingRecoverer),
        };
        let retry = spec.retry.take().unwrap_or_else(|| {
            if retry_topics.is_some() {
                RetryPolicy::none()
            } else {
                RetryPolicy::default()
            }
        });
        let subscription = match spec.topic_pattern.take() {
            Some(p) => Subscription::Pattern(p),
            None => Subscription::Topics(std::mem::take(&mut spec.topics)),
        };
        let mut client_config = base.clone();
        for (k, v) in &spec.properties {
            client_config.set(k, v);
        }
        // `max.poll.records` is the Java client's; librdkafka does not know
        // it. Here it bounds one poll burst (default 500, as in Java).
        let max_poll_records = match client_config.get("max.poll.records") {
            None => consumer::MAX_POLL_RECORDS,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| Error::Listener {
                    listener: spec.id.clone(),
                    reason: format!("max.poll.records=`{v}`: expected a positive integer"),
                })?,
        };
        client_config.remove("max.poll.records");
        if let Some(level) = spec.isolation_level {
            client_config.set("isolation.level", level.as_str());
        }
        if client_config
            .get("enable.auto.commit")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            tracing::warn!(listener = %info.id, "enable.auto.commit=true is ignored: the container commits finished offsets itself");
        }
        client_config
            .set("group.id", &*info.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        if client_config.get("statistics.interval.ms").is_none() {
            client_config.set("statistics.interval.ms", "5000");
        }
        if client_config.get("auto.offset.reset").is_none() {
            client_config.set("auto.offset.reset", "earliest");
        }
        // librdkafka stops fetching a partition for `fetch.queue.backoff.ms`
        // (1 s by default) once its prefetch queue is full. A consumer that
        // reads slower than the broker serves then drains the queue and
        // waits for the rest of that second: measured, a 500,000-record
        // catch-up ran at a third of its speed. The Java client fetches
        // again as soon as its buffer has room; 10 ms comes close.
        if client_config.get("fetch.queue.backoff.ms").is_none() {
            client_config.set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
        }
        if hint {
            tracing::warn!(listener = %info.id,
                "no dead-letter topic: records that fail for good are logged at error level and skipped");
        }
        let handler = Arc::new(spec.handler.take().expect("validated"));
        let runtime = ListenerRuntime {
            metrics: ListenerMetrics::new(&info.id),
            info,
            service: crate::intercept::service(&handler, &spec.layers),
            handler,
            retry,
            retry_memory: lane::RetryMemory::default(),
            not_retryable: std::mem::take(&mut spec.not_retryable),
            recoverer,
            retry_topics: retry_topics.is_some(),
            concurrency: spec.concurrency,
            max_in_flight: spec.max_in_flight,
            ordering: spec.ordering,
            parallelism: spec.effective_parallelism(),
            max_batch: spec.max_batch,
            max_poll_records,
            commit_interval: spec.commit_interval,
            rate_limiter: spec.rate_limit.map(RateLimiter::new),
            filter: spec.filter.take(),
            seek_on_assignment: spec.seek_on_assignment,
            transactions,
        };
        Ok(Self {
            runtime: Arc::new(runtime),
            subscription,
            client_config,
            drain_timeout,
            join_before_leave: consumer::JOIN_BEFORE_LEAVE.min(drain_timeout),
            consumers: Mutex::new(Vec::new()),
            paused: AtomicBool::new(false),
            observed: Observed::default(),
        })
    }

    /// On the embedded broker a consumer stopped mid-join closes at once:
    /// librdkafka's mock cluster keeps no pending member (KIP-394), and its
    /// first rebalance of a group takes 3 s.
    pub(crate) fn on_embedded_broker(&mut self) {
        self.join_before_leave = Duration::ZERO;
    }

    /// The listener id.
    pub fn id(&self) -> &str {
        &self.runtime.info.id
    }

    /// The consumer group id.
    pub fn group_id(&self) -> &str {
        &self.runtime.info.group_id
    }

    /// Whether the consumers are running.
    pub fn is_running(&self) -> bool {
        !crate::util::lock(&self.consumers).is_empty()
    }

    /// Starts `concurrency` consumers; does nothing when already running.
    /// Must be called within a tokio runtime (lanes run on it).
    ///
    /// # Errors
    /// [`Error::Kafka`] when a consumer cannot be created (bad property).
    pub fn start(&self) -> Result<()> {
        let mut consumers = crate::util::lock(&self.consumers);
        if !consumers.is_empty() {
            return Ok(());
        }
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Config("ListenerContainer::start needs a tokio runtime".into()))?;
        let gate = Arc::new(StopGate::new(self.runtime.concurrency));
        *crate::util::lock(&self.observed.assigned) = vec![Vec::new(); self.runtime.concurrency];
        for i in 0..self.runtime.concurrency {
            let gate = Arc::clone(&gate);
            let name = format!("{}-{}", self.runtime.info.id, i);
            let mut config = self.client_config.clone();
            consumer::consumer_ids(&mut config, i, &name);
            let mut ctx = ContainerContext::new(
                Arc::clone(&self.runtime),
                handle.clone(),
                self.drain_timeout,
                name.clone(),
                self.observed.clone(),
                i,
                self.runtime.transactions.as_ref().map(|t| {
                    let producers = t.transactions().expect("checked in new");
                    Arc::new(tx::ConsumerTx::new(
                        producers.producer(&format!("{}.{i}", self.runtime.info.id)),
                    ))
                }),
            );
            ctx.join_before_leave = self.join_before_leave;
            let consumer: BaseConsumer<ContainerContext> = config.create_with_context(ctx)?;
            let stop = Arc::new(AtomicBool::new(false));
            let (control, control_rx) = std::sync::mpsc::channel();
            if self.paused.load(Ordering::Acquire) {
                let _ = control.send(Control::PauseAll);
            }
            let subscription = self.subscription.clone();
            let thread_stop = Arc::clone(&stop);
            let join = std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    consumer::run(
                        consumer,
                        subscription,
                        thread_stop,
                        control_rx,
                        i == 0,
                        gate,
                    )
                })
                .map_err(|e| Error::Config(format!("cannot spawn a consumer thread: {e}")))?;
            consumers.push(ConsumerThread {
                stop,
                control,
                join,
            });
        }
        tracing::info!(listener = %self.id(), group = %self.group_id(), topics = %self.subscription,
            concurrency = self.runtime.concurrency, "listener started");
        Ok(())
    }

    /// Stops the consumers: each finishes the records in hand (up to the
    /// drain timeout), commits what is finished and leaves the group.
    /// Returns when all have stopped.
    pub async fn stop(&self) {
        let consumers = std::mem::take(&mut *crate::util::lock(&self.consumers));
        if consumers.is_empty() {
            return;
        }
        for c in &consumers {
            c.stop.store(true, Ordering::Release);
        }
        let joined = tokio::task::spawn_blocking(move || {
            for c in consumers {
                let _ = c.join.join();
            }
        })
        .await;
        if joined.is_err() {
            tracing::error!(listener = %self.id(), "a consumer thread panicked while stopping");
        }
        tracing::info!(listener = %self.id(), "listener stopped");
    }

    /// The partitions assigned to each consumer of the container (index =
    /// consumer), as `(topic, partition)`; empty while a consumer has none
    /// (joining, rebalancing, idle, stopped).
    pub fn assigned_partitions(&self) -> Vec<Vec<(String, i32)>> {
        if !self.is_running() {
            return Vec::new();
        }
        crate::util::lock(&self.observed.assigned).clone()
    }

    /// For each partition with a running lane: one past the last offset the
    /// listener finished (handled or recovered), or -1 before the first
    /// one. This is the offset the next commit will carry, and usually ahead
    /// of the committed offset. A queue can derive a waiting record's
    /// position from it: `record offset - finished offset`.
    pub fn finished_offsets(&self) -> Vec<FinishedOffset> {
        let progress = crate::util::lock(&self.observed.progress);
        let mut out: Vec<_> = progress
            .iter()
            .map(|((t, p), o)| FinishedOffset {
                topic: t.clone(),
                partition: *p,
                offset: o.offsets.committable(),
            })
            .collect();
        out.sort();
        out
    }

    /// The lag of each partition assigned to this container, in records:
    /// the log end offset minus the offset the listener has finished
    /// (records queued for the handler count as lag), as of librdkafka's
    /// last statistics (every `statistics.interval.ms`, default 5 s here).
    /// Also exported as the gauge `kafka_listener_consumer_lag`.
    pub fn lag(&self) -> Vec<PartitionLag> {
        let assigned: std::collections::HashSet<(String, i32)> =
            self.assigned_partitions().into_iter().flatten().collect();
        let lag = crate::util::lock(&self.observed.lag);
        let mut out: Vec<_> = lag
            .iter()
            .filter(|(k, _)| assigned.contains(*k))
            .map(|((t, p), l)| PartitionLag {
                topic: t.clone(),
                partition: *p,
                lag: l.lag,
            })
            .collect();
        out.sort();
        out
    }

    /// The errors this container's consumers reported, oldest first (the
    /// last 32): a topic an ACL does not let the listener read, a failed
    /// authentication, a broker down. Each is also logged (at ERROR for
    /// authorization and authentication) and counted in
    /// `kafka_listener_consumer_errors_total{listener, kind}`.
    pub fn consumer_errors(&self) -> Vec<ConsumerError> {
        crate::util::lock(&self.observed.errors)
            .iter()
            .cloned()
            .collect()
    }

    /// Waits up to `timeout` for a consumer error of `kind` (see
    /// [`Self::consumer_errors`]) and returns the oldest one kept; `None`
    /// when none came in time. Polls every 20 ms.
    pub async fn wait_for_consumer_error(
        &self,
        kind: ConsumerErrorKind,
        timeout: Duration,
    ) -> Option<ConsumerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(e) = self.consumer_errors().into_iter().find(|e| e.kind == kind) {
                return Some(e);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every consumer has at least one partition and together
    /// they hold `partitions` partitions (the group is stable), up to
    /// `timeout`; returns whether it happened.
    pub async fn wait_for_assignment(&self, partitions: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let a = self.assigned_partitions();
            let total: usize = a.iter().map(Vec::len).sum();
            if !a.is_empty() && total == partitions && a.iter().all(|c| !c.is_empty()) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Pauses every assigned partition (the consumers stay in the group and
    /// keep polling); records in hand are finished.
    pub fn pause(&self) {
        self.paused.store(true, Ordering::Release);
        self.send(Control::PauseAll);
    }

    /// Resumes after [`Self::pause`].
    pub fn resume(&self) {
        self.paused.store(false, Ordering::Release);
        self.send(Control::ResumeAll);
    }

    /// Whether [`Self::pause`] is in effect.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    fn send(&self, control: Control) {
        for c in crate::util::lock(&self.consumers).iter() {
            let _ = c.control.send(control.clone());
        }
    }
}
