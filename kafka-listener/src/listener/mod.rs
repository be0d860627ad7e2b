//! Listener descriptors: what `#[kafka_listener]` registers, or what code
//! builds with [`ListenerSpec::new`].

mod validate;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::ack::AckMode;
use crate::config::{IsolationLevel, SeekPosition};
use crate::error::{Error, Result};
use crate::handler::{BatchHandler, ErasedHandler, Handler, ReplyTo};
use crate::rate_limit::RateLimit;
use crate::record::ConsumerRecord;
use crate::recover::Recoverer;
use crate::retry::RetryPolicy;
use crate::retry::{DeadLetter, RetryTopics};

/// The order in which a listener handles one partition's records.
///
/// Kafka orders records per partition; most listeners only need the order
/// of one key (one coupon, one order, one account). Handling different keys
/// at once lets an I/O-bound handler (a database, an HTTP call) use the
/// machine while per-key order holds, as Karafka's virtual partitions and
/// Confluent Parallel Consumer's `KEY` ordering do. In every mode an offset
/// is committed only once it and every earlier offset of the partition are
/// finished, so a restart or a rebalance re-delivers, never skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Ordering {
    /// One record of the partition at a time, in offset order (the default,
    /// Spring's behaviour).
    #[default]
    Partition,
    /// Up to `parallelism` records of the partition at once; records with
    /// the same key one at a time, in offset order. Records without a key
    /// form one chain of their own: one at a time, in offset order, beside
    /// the keyed records. A record in back-off holds back only its key.
    Key,
    /// Up to `parallelism` records of the partition at once, in any order.
    None,
}

/// [`ListenerSpec::parallelism`] when `ordering` is `key` or `none` and no
/// parallelism is given.
pub(crate) const DEFAULT_PARALLELISM: usize = 16;

impl Ordering {
    /// Valid spellings, for error messages.
    pub const VALID: &'static [&'static str] = &["partition", "key", "none"];
}

impl fmt::Display for Ordering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ordering::Partition => "partition",
            Ordering::Key => "key",
            Ordering::None => "none",
        })
    }
}

impl std::str::FromStr for Ordering {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "partition" => Ok(Ordering::Partition),
            "key" => Ok(Ordering::Key),
            "none" => Ok(Ordering::None),
            _ => Err(Error::Config(format!(
                "unknown ordering `{s}`; expected one of: {}",
                Ordering::VALID.join(", ")
            ))),
        }
    }
}

/// Everything about one listener: topics, consumer group, concurrency, ack
/// mode, client properties and the handler.
///
/// # Examples
/// ```
/// use kafka_listener::prelude::*;
///
/// async fn on_order(order: String) {}
///
/// let spec = ListenerSpec::new("orders")
///     .topics(["orders"])
///     .group_id("order-processor")
///     .concurrency(3)
///     .handler(on_order);
/// assert_eq!(spec.id(), "orders");
/// ```
pub struct ListenerSpec {
    pub(crate) id: String,
    pub(crate) topics: Vec<String>,
    pub(crate) topic_pattern: Option<String>,
    pub(crate) group_id: Option<String>,
    pub(crate) concurrency: usize,
    pub(crate) ack_mode: AckMode,
    pub(crate) auto_startup: bool,
    pub(crate) properties: Vec<(String, String)>,
    pub(crate) handler: Option<ErasedHandler>,
    pub(crate) max_in_flight: usize,
    pub(crate) ordering: Ordering,
    pub(crate) parallelism: Option<usize>,
    pub(crate) max_batch: usize,
    pub(crate) commit_interval: Duration,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) not_retryable: Vec<fn(&crate::error::ListenerError) -> bool>,
    pub(crate) recoverer: Option<Arc<dyn Recoverer>>,
    pub(crate) dead_letter: Option<DeadLetter>,
    pub(crate) retry_topics: Option<RetryTopics>,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) filter: Option<RecordFilter>,
    pub(crate) reply_to: Option<ReplyTo>,
    pub(crate) transactional: bool,
    pub(crate) isolation_level: Option<IsolationLevel>,
    pub(crate) seek_on_assignment: Option<SeekPosition>,
    pub(crate) layers: Vec<crate::intercept::BoxedLayer>,
    pub(crate) messages: Vec<crate::schema::MessageSchema>,
}

/// A record filter (see [`ListenerSpec::filter`]): `true` keeps the record.
pub type RecordFilter = Arc<dyn Fn(&ConsumerRecord) -> bool + Send + Sync>;

impl fmt::Debug for ListenerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerSpec")
            .field("id", &self.id)
            .field("topics", &self.topics)
            .field("topic_pattern", &self.topic_pattern)
            .field("group_id", &self.group_id)
            .field("concurrency", &self.concurrency)
            .field("ack_mode", &self.ack_mode)
            .field("auto_startup", &self.auto_startup)
            .field("retry", &self.retry)
            .field("recoverer", &self.recoverer)
            .field("dead_letter", &self.dead_letter)
            .field("retry_topics", &self.retry_topics)
            .field("rate_limit", &self.rate_limit)
            .field("filter", &self.filter.is_some())
            .field("reply_to", &self.reply_to)
            .field("ordering", &self.ordering)
            .field("parallelism", &self.parallelism)
            .field("transactional", &self.transactional)
            .field("isolation_level", &self.isolation_level)
            .field("seek_on_assignment", &self.seek_on_assignment)
            .field("layers", &self.layers.len())
            .field("messages", &self.messages)
            .finish_non_exhaustive()
    }
}

impl ListenerSpec {
    /// A listener with id `id`, concurrency 1, ack mode `batch`, started
    /// with the app, no topics and no handler yet.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            topics: Vec::new(),
            topic_pattern: None,
            group_id: None,
            concurrency: 1,
            ack_mode: AckMode::default(),
            auto_startup: true,
            properties: Vec::new(),
            handler: None,
            max_in_flight: 10_000,
            ordering: Ordering::Partition,
            parallelism: None,
            max_batch: 500,
            commit_interval: Duration::from_millis(100),
            retry: None,
            not_retryable: Vec::new(),
            recoverer: None,
            dead_letter: None,
            retry_topics: None,
            rate_limit: None,
            filter: None,
            reply_to: None,
            transactional: false,
            isolation_level: None,
            seek_on_assignment: None,
            layers: Vec::new(),
            messages: Vec::new(),
        }
    }

    /// The topics to subscribe to.
    pub fn topics<I, S>(mut self, topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.topics.extend(topics.into_iter().map(Into::into));
        self
    }

    /// A regular expression of topics to subscribe to (librdkafka syntax,
    /// for example `^coupon\..*`); instead of [`ListenerSpec::topics`].
    pub fn topic_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.topic_pattern = Some(pattern.into());
        self
    }

    /// The consumer group id; defaults to the listener id.
    pub fn group_id(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self
    }

    /// The number of consumers in the group (each its own rdkafka consumer
    /// and poll thread), at least 1. More consumers than partitions leaves
    /// some idle; the container warns about it at start.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// When offsets are committed; see [`AckMode`].
    pub fn ack_mode(mut self, ack_mode: AckMode) -> Self {
        self.ack_mode = ack_mode;
        self
    }

    /// Whether the listener starts with the app (default true); otherwise
    /// start it by id through the app's registry.
    pub fn auto_startup(mut self, auto_startup: bool) -> Self {
        self.auto_startup = auto_startup;
        self
    }

    /// A librdkafka consumer property for this listener only, for example
    /// `("max.poll.interval.ms", "300000")`; it wins over the app's.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// The most records queued per partition between the poll thread and the
    /// handler (default 10,000, a tenth of librdkafka's own per-partition
    /// prefetch, `queued.min.messages`); past it the partition is paused
    /// until the handler has worked it down to half. Bounds memory per
    /// partition. A pause costs a fetch round on resume (up to about a
    /// second, librdkafka's broker loop), so a small cap slows a partition
    /// whose handler is slower than the broker.
    pub fn max_in_flight(mut self, records: usize) -> Self {
        self.max_in_flight = records.max(1);
        self
    }

    /// The order in which one partition's records are handled (default
    /// [`Ordering::Partition`]: one at a time, in offset order).
    pub fn ordering(mut self, ordering: Ordering) -> Self {
        self.ordering = ordering;
        self
    }

    /// With [`Ordering::Key`] or [`Ordering::None`]: the most records of one
    /// partition handled at once (default 16). The app refuses to start a
    /// listener with 0, or with more than 1 and [`Ordering::Partition`].
    pub fn parallelism(mut self, records: usize) -> Self {
        self.parallelism = Some(records);
        self
    }

    /// The records of one partition handled at once: 1 with
    /// [`Ordering::Partition`], else [`Self::parallelism`] (default 16).
    pub fn effective_parallelism(&self) -> usize {
        match (self.ordering, self.parallelism) {
            (_, Some(n)) => n,
            (Ordering::Partition, None) => 1,
            (_, None) => DEFAULT_PARALLELISM,
        }
    }

    /// Batch listeners: the most records per call (default 500, Spring's
    /// `max.poll.records`).
    pub fn max_batch(mut self, records: usize) -> Self {
        self.max_batch = records.max(1);
        self
    }

    /// Ack modes `batch` and `manual`: the longest a finished offset waits
    /// for its commit (default 100 ms).
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// Blocking retries: attempts and back-off; see [`RetryPolicy`] for the
    /// default.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Classifies errors of type `E` (found anywhere in the error, as
    /// [`crate::ListenerError::is`] does: the wrapped error itself) as not
    /// retryable, even when they came through `?`: Spring's
    /// `DefaultErrorHandler.addNotRetryableExceptions`. Such a record goes
    /// to the recoverer (dead-letter topic) after its first failure.
    ///
    /// # Examples
    /// ```
    /// # use kafka_listener::prelude::*;
    /// # async fn on_order(order: String) {}
    /// let spec = ListenerSpec::new("orders")
    ///     .topics(["orders"])
    ///     .not_retryable::<serde_json::Error>()
    ///     .handler(on_order);
    /// # let _ = spec;
    /// ```
    pub fn not_retryable<E: std::error::Error + 'static>(mut self) -> Self {
        fn is<E: std::error::Error + 'static>(e: &crate::error::ListenerError) -> bool {
            e.is::<E>()
        }
        self.not_retryable.push(is::<E>);
        self
    }

    /// What happens to a record that failed for good; the default logs it
    /// and moves on ([`crate::recover::LoggingRecoverer`]).
    pub fn recoverer(mut self, recoverer: impl Recoverer) -> Self {
        self.recoverer = Some(Arc::new(recoverer));
        self
    }

    /// Admits at most `limit.permits()` records per `limit.per()` across the
    /// listener (see [`crate::rate_limit`]): the partition pauses while the
    /// budget is spent; the consumer stays in its group.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Hands the handler only the records `keep` returns `true` for; the
    /// others are finished at once (their offsets are committed as if
    /// handled, also in the manual ack modes, where they need no
    /// acknowledgment) and counted in
    /// `kafka_listener_records_filtered_total`. A batch listener gets its
    /// batch without them (an index in `ListenerError::at_index` counts in
    /// that filtered batch), and is not called when none is left.
    ///
    /// Spring Kafka's `RecordFilterStrategy` (`@KafkaListener(filter =
    /// ...)`) with `ackDiscarded = true`; note that Spring's `filter`
    /// returns `true` to *discard*, while `keep` returns `true` to keep,
    /// as `Iterator::filter` does. The macro's `filter = path` names a
    /// `fn(&ConsumerRecord) -> bool`.
    ///
    /// # Examples
    /// ```
    /// # use kafka_listener::prelude::*;
    /// # async fn on_order(order: String) {}
    /// // Only records with a `type` header of `paid`.
    /// let spec = ListenerSpec::new("orders")
    ///     .topics(["orders"])
    ///     .filter(|r| r.headers().get_str("type") == Some("paid"))
    ///     .handler(on_order);
    /// # let _ = spec;
    /// ```
    pub fn filter(
        mut self,
        keep: impl Fn(&ConsumerRecord) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.filter = Some(Arc::new(keep));
        self
    }

    /// Handles each record (or batch) in a Kafka transaction, exactly once
    /// from input offsets to output records (Spring's
    /// `KafkaTransactionManager`, EOS mode V2 / KIP-447):
    ///
    /// - the transaction begins before the handler runs; every
    ///   `KafkaTemplate` send the handler makes (in its own task) joins it;
    /// - on `Ok` the record's next offset is sent to the transaction with
    ///   the consumer's group metadata (`send_offsets_to_transaction`) and
    ///   the transaction commits: the output and the consumed offset
    ///   become visible together, or not at all;
    /// - on `Err` it aborts, and the record is retried by the listener's
    ///   retry policy, each attempt in a transaction of its own; when it
    ///   fails for good, the recoverer (the dead-letter send) and the
    ///   offset commit are one transaction too.
    ///
    /// The consumer does not commit offsets itself. Records of one
    /// consumer run one transaction at a time (one transactional producer
    /// per consumer, `transactional.id` `<prefix><listener id>.<consumer
    /// index>`): use `concurrency` to run more at once. Needs
    /// [`crate::KafkaConfig::transaction_id_prefix`], an automatic ack mode
    /// (`record` or `batch`) and `ordering = "partition"`; checked at start.
    /// Readers of the output topics should use `read_committed` (the
    /// default here, see [`Self::isolation_level`]).
    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// The consumer's `isolation.level`. The default is
    /// [`IsolationLevel::ReadCommitted`], librdkafka's default and not the
    /// Java client's (`read_uncommitted`): a listener never sees records
    /// of aborted transactions, at the cost of waiting for open
    /// transactions to end. A listener property or consumer setting
    /// `isolation.level` is overridden by this one.
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation_level = Some(level);
        self
    }

    /// Seeks each partition to `position` whenever it is assigned to this
    /// listener (at start and after every rebalance), instead of starting
    /// from the committed offset: Spring's `ConsumerSeekAware`
    /// `onPartitionsAssigned` with `seekToBeginning` / `seekToEnd`. An
    /// in-memory read model rebuilt from its events at each start uses
    /// [`SeekPosition::Beginning`]. The macro's `seek = "beginning" |
    /// "end"`. Run-time seeks: `ListenerContainer::seek` and its siblings.
    pub fn seek_on_assignment(mut self, position: SeekPosition) -> Self {
        self.seek_on_assignment = Some(position);
        self
    }

    /// Wraps each handler call in `layer`, a tower layer over
    /// [`crate::ListenerService`] (Spring's `RecordInterceptor` and
    /// `BatchInterceptor`; see [`crate::ListenerRequest`]). Layers added
    /// first are outermost. Tower's middleware that keeps the inner
    /// service's error (`ConcurrencyLimitLayer`, `RateLimitLayer`,
    /// `layer_fn`) fits as it is; one that answers `BoxError`
    /// (`TimeoutLayer`) does not (the guide's "Interceptors" section shows
    /// a timeout with tokio instead).
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<crate::intercept::ListenerService> + Send + Sync + 'static,
        L::Service: tower::Service<
                crate::intercept::ListenerRequest,
                Response = (),
                Error = crate::error::ListenerError,
            > + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<crate::intercept::ListenerRequest>>::Future: Send + 'static,
    {
        self.layers.push(crate::intercept::boxed(layer));
        self
    }

    /// Records that fail for good go to a dead-letter topic:
    /// [`DeadLetter::suffixed`] is `<topic>-dlt`, [`DeadLetter::topic`] a
    /// named topic. The app creates it at start (with the source topic's
    /// partition count when the topic is declared with
    /// [`crate::KafkaAppBuilder::topic`], else 1) and publishes through its
    /// template; the offset is committed once the broker acknowledged the
    /// dead letter. See [`crate::dlq`]. A [`Self::recoverer`] set as well
    /// wins.
    pub fn dead_letter(mut self, destination: DeadLetter) -> Self {
        self.dead_letter = Some(destination);
        self
    }

    /// Non-blocking retries through retry topics (Spring's
    /// `@RetryableTopic`); see [`crate::retry_topics`] for the topics, the
    /// headers and the ordering trade-off. The dead-letter topic after the
    /// last attempt is [`Self::dead_letter`]'s, `<topic>-dlt` by default.
    /// Blocking retries default to none with retry topics; a
    /// [`Self::retry`] policy runs within each delivery. Needs `topics`
    /// (not a pattern).
    pub fn retry_topics(mut self, retry_topics: RetryTopics) -> Self {
        self.retry_topics = Some(retry_topics);
        self
    }

    /// Whether the container should warn that failed records are only
    /// logged.
    pub(crate) fn dead_letter_hint(&self) -> bool {
        self.recoverer.is_none() && self.dead_letter.is_none() && self.retry_topics.is_none()
    }

    /// The record handler: an async fn whose arguments are extractors.
    pub fn handler<H: Handler<A>, A: 'static>(mut self, handler: H) -> Self {
        self.handler = Some(ErasedHandler::record(handler));
        self
    }

    /// The batch handler: an async fn of `Vec<E>` and other [`crate::extract::FromBatch`]
    /// arguments, called with the records of one partition at a time.
    pub fn batch_handler<H: BatchHandler<A>, A: 'static>(mut self, handler: H) -> Self {
        self.handler = Some(ErasedHandler::batch(handler));
        self
    }

    /// Declares a message type the listener receives, for the AsyncAPI
    /// document ([`crate::schema`]): `MessageSchema::json::<T>()` (feature
    /// `asyncapi`), `MessageSchema::avro::<T>()`. `#[kafka_listener]`
    /// declares its `Json<T>` and `Avro<T>` arguments by itself.
    pub fn message(mut self, message: crate::schema::MessageSchema) -> Self {
        if !self.messages.iter().any(|m| m.name == message.name) {
            self.messages.push(message);
        }
        self
    }

    /// What `#[kafka_listener]` generates for each argument: its message,
    /// if the argument is a payload.
    #[doc(hidden)]
    pub fn __message(self, message: Option<crate::schema::MessageSchema>) -> Self {
        match message {
            Some(m) => self.message(m),
            None => self,
        }
    }

    /// The message types declared with [`Self::message`].
    pub fn messages(&self) -> &[crate::schema::MessageSchema] {
        &self.messages
    }

    /// The listener id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The consumer group id (the listener id when not set).
    pub fn configured_group_id(&self) -> &str {
        self.group_id.as_deref().unwrap_or(&self.id)
    }

    /// The topics (empty with a pattern).
    pub fn topic_names(&self) -> &[String] {
        &self.topics
    }

    /// The configured concurrency.
    pub fn configured_concurrency(&self) -> usize {
        self.concurrency
    }

    /// Whether the listener starts with the app.
    pub fn starts_automatically(&self) -> bool {
        self.auto_startup
    }

    /// Whether the handler's arguments need a `T` in the app state (for
    /// example `Avro<T>` an `AvroCodec`), found by running their start-up
    /// checks against a probe.
    #[cfg(feature = "avro")]
    pub(crate) fn needs_state<T: 'static>(&self) -> bool {
        let info = crate::context::ListenerInfo::new(
            &self.id,
            self.ack_mode,
            crate::state::StateMap::probe(),
        );
        if let Some(h) = &self.handler {
            let _ = h.validate(&info);
        }
        info.state().was_asked::<T>()
    }
}

/// A listener registered at compile time by `#[kafka_listener]`, collected
/// through `inventory`.
#[derive(Debug)]
pub struct ListenerRegistration {
    factory: fn() -> ListenerSpec,
}

impl ListenerRegistration {
    /// Used by generated code.
    #[doc(hidden)]
    pub const fn new(factory: fn() -> ListenerSpec) -> Self {
        Self { factory }
    }

    /// Builds the spec.
    pub fn spec(&self) -> ListenerSpec {
        (self.factory)()
    }
}

inventory::collect!(ListenerRegistration);

/// Every listener declared with `#[kafka_listener]` in the binary, in no
/// particular order.
pub fn registered_listeners() -> impl Iterator<Item = ListenerSpec> {
    inventory::iter::<ListenerRegistration>
        .into_iter()
        .map(ListenerRegistration::spec)
}
