//! The asking side: [`ReplyingKafkaTemplate`] and its reply consumer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use metrics::{counter, Counter};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::oneshot;

use crate::config::KafkaConfig;
use crate::error::{Error, Result};
use crate::metrics::names::REPLIES_DROPPED;
use crate::producer::{KafkaTemplate, ProducerRecord};
use crate::record::headers::{CORRELATION_ID, REPLY_PARTITION, REPLY_TOPIC};
use crate::record::ConsumerRecord;
use crate::util::lock;

/// How many timed-out correlation ids a template remembers, to tell a late
/// reply from an unknown one.
const REMEMBERED_TIMEOUTS: usize = 4096;

/// What the reply consumer's thread shares with the template.
struct Shared {
    reply_topic: String,
    pending: Mutex<HashMap<Bytes, oneshot::Sender<ConsumerRecord>>>,
    /// Correlation ids whose request timed out (or was abandoned), oldest
    /// first, at most [`REMEMBERED_TIMEOUTS`].
    timed_out: Mutex<(VecDeque<Bytes>, HashSet<Bytes>)>,
    late: Counter,
    unknown: Counter,
    no_correlation_id: Counter,
}

impl Shared {
    fn new(reply_topic: &str) -> Self {
        let dropped = |reason: &'static str| {
            let c = counter!(REPLIES_DROPPED, "reply_topic" => reply_topic.to_owned(), "reason" => reason);
            c.increment(0);
            c
        };
        Self {
            reply_topic: reply_topic.to_owned(),
            pending: Mutex::new(HashMap::new()),
            timed_out: Mutex::new((VecDeque::new(), HashSet::new())),
            late: dropped("late"),
            unknown: dropped("unknown"),
            no_correlation_id: dropped("no_correlation_id"),
        }
    }

    /// Hands `reply` to its waiting request, or drops and counts it.
    fn deliver(&self, reply: ConsumerRecord) {
        let Some(id) = reply
            .headers()
            .get(CORRELATION_ID)
            .map(Bytes::copy_from_slice)
        else {
            self.no_correlation_id.increment(1);
            tracing::warn!(
                reply_topic = %self.reply_topic,
                partition = reply.partition(),
                offset = reply.offset(),
                "reply without a `{CORRELATION_ID}` header dropped: the replier must copy the request's"
            );
            return;
        };
        let waiting = lock(&self.pending).remove(&id);
        match waiting.map(|tx| tx.send(reply).is_ok()) {
            Some(true) => {}
            // The request gave up between the lookup and the send.
            Some(false) => self.late.increment(1),
            None if lock(&self.timed_out).1.contains(&id) => {
                self.late.increment(1);
                tracing::warn!(reply_topic = %self.reply_topic, correlation_id = %hex(&id), "late reply dropped: its request timed out");
            }
            None => {
                self.unknown.increment(1);
                tracing::debug!(reply_topic = %self.reply_topic, correlation_id = %hex(&id), "reply to no pending request of this template dropped");
            }
        }
    }

    /// Forgets the request of `id` (it timed out, failed or was dropped)
    /// and remembers the id, so that its reply counts as late.
    fn abandon(&self, id: &Bytes) {
        if lock(&self.pending).remove(id).is_none() {
            return;
        }
        let mut guard = lock(&self.timed_out);
        let (order, set) = &mut *guard;
        if set.insert(id.clone()) {
            order.push_back(id.clone());
        }
        while order.len() > REMEMBERED_TIMEOUTS {
            if let Some(old) = order.pop_front() {
                set.remove(&old);
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes a pending request when `send_and_receive` ends without its reply
/// (timeout, send failure, or the future dropped).
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: Bytes,
    answered: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.shared.abandon(&self.id);
        }
    }
}

/// A [`KafkaTemplate`] that sends requests and awaits their replies:
/// Spring Kafka's `ReplyingKafkaTemplate`, interoperable with it in both
/// directions (a Spring `@SendTo` listener answers our requests; our
/// `reply = true` listeners answer Spring's requests).
///
/// [`ReplyingKafkaTemplate::send_and_receive`] adds `kafka_replyTopic`
/// (UTF-8), `kafka_replyPartition` (4-byte big-endian int, only with
/// [`ReplyingTemplateBuilder::reply_partition`]) and `kafka_correlationId`
/// (16 random bytes, a version 4 UUID as Spring makes it) to the request
/// (see [`crate::reply`] for the sources), sends it through the template
/// and resolves with the reply record carrying the same correlation id.
///
/// The replies are read by a consumer of its own, without a consumer group:
/// it is assigned every partition of the reply topic (or the one given)
/// from their end offsets when the template starts, so a reply is never
/// missed for want of a group assignment. A reply nobody waits for is
/// dropped and counted in `kafka_listener_replies_dropped_total`
/// (`reason` = `late`, `unknown` or `no_correlation_id`). Several
/// instances sharing one reply topic each read every reply and drop the
/// others' as `unknown`; give each instance its own reply topic or its own
/// partition ([`ReplyingTemplateBuilder::reply_partition`]), as Spring
/// recommends.
///
/// Cheap to clone; the reply consumer stops when the last clone is
/// dropped.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use kafka_listener::prelude::*;
/// use kafka_listener::ReplyingKafkaTemplate;
///
/// # async fn demo(app: kafka_listener::RunningApp) -> Result<(), kafka_listener::Error> {
/// let replying = ReplyingKafkaTemplate::builder(app.template(), "prices.replies")
///     .bootstrap_servers(app.bootstrap_servers())
///     .start()
///     .await?;
/// let request = ProducerRecord::keyed("prices.requests", "sku-1")
///     .json(&serde_json::json!({"sku": "sku-1"}))?;
/// let reply = replying.send_and_receive(request, Duration::from_secs(5)).await?;
/// println!("{:?}", reply.value());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReplyingKafkaTemplate {
    inner: Arc<Inner>,
}

struct Inner {
    template: KafkaTemplate,
    reply_topic: String,
    reply_partition: Option<i32>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, AtomicOrdering::Relaxed);
    }
}

impl fmt::Debug for ReplyingKafkaTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyingKafkaTemplate")
            .field("reply_topic", &self.inner.reply_topic)
            .field("reply_partition", &self.inner.reply_partition)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ReplyingKafkaTemplate`]: the template that sends, the reply
/// topic, and the reply consumer's connection.
#[derive(Debug)]
pub struct ReplyingTemplateBuilder {
    template: KafkaTemplate,
    reply_topic: String,
    reply_partition: Option<i32>,
    consumer: ClientConfig,
    metadata_timeout: Duration,
}

impl ReplyingTemplateBuilder {
    /// The reply consumer's librdkafka properties as they are (at least
    /// `bootstrap.servers`; security settings as the cluster needs). The
    /// template sets `enable.auto.commit=false` and, if absent, a `group.id`
    /// of its own (never joined: the consumer is assigned its partitions).
    pub fn consumer_config(mut self, config: ClientConfig) -> Self {
        self.consumer = config;
        self
    }

    /// The reply consumer's properties from the app's configuration
    /// (security, client id, ...) against `bootstrap`.
    pub fn kafka_config(self, config: &KafkaConfig, bootstrap: &str) -> Self {
        self.consumer_config(config.consumer_config(bootstrap))
    }

    /// Only `bootstrap.servers` (a plaintext cluster).
    pub fn bootstrap_servers(self, bootstrap: &str) -> Self {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", bootstrap);
        self.consumer_config(config)
    }

    /// Reads only this partition of the reply topic and asks repliers to
    /// answer there (`kafka_replyPartition`, Spring's way of sharing one
    /// reply topic between instances: each its own partition).
    pub fn reply_partition(mut self, partition: i32) -> Self {
        self.reply_partition = Some(partition);
        self
    }

    /// How long start-up waits for the reply topic's metadata and end
    /// offsets (default 10 s).
    pub fn metadata_timeout(mut self, timeout: Duration) -> Self {
        self.metadata_timeout = timeout;
        self
    }

    /// Assigns the reply consumer the reply topic's partitions at their
    /// current end offsets and starts reading.
    ///
    /// # Errors
    /// [`Error::Config`] when the reply topic does not exist, has no such
    /// partition, or the consumer config has no `bootstrap.servers`;
    /// [`Error::Kafka`] when the metadata or the offsets cannot be fetched
    /// within the metadata timeout.
    pub async fn start(self) -> Result<ReplyingKafkaTemplate> {
        if self.consumer.get("bootstrap.servers").is_none() {
            return Err(Error::Config(
                "ReplyingKafkaTemplate needs the reply consumer's `bootstrap.servers` \
                 (ReplyingTemplateBuilder::bootstrap_servers / kafka_config / consumer_config)"
                    .into(),
            ));
        }
        let mut config = self.consumer.clone();
        config.set("enable.auto.commit", "false");
        config.set("enable.auto.offset.store", "false");
        if config.get("group.id").is_none() {
            config.set(
                "group.id",
                format!("{}-replying-{:016x}", self.reply_topic, fastrand::u64(..)),
            );
        }
        let (topic, partition, timeout) = (
            self.reply_topic.clone(),
            self.reply_partition,
            self.metadata_timeout,
        );
        let consumer =
            tokio::task::spawn_blocking(move || assign(&config, &topic, partition, timeout))
                .await
                .map_err(|e| Error::Config(format!("reply consumer start-up panicked: {e}")))??;
        let shared = Arc::new(Shared::new(&self.reply_topic));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_shared, thread_stop) = (Arc::clone(&shared), Arc::clone(&stop));
        std::thread::Builder::new()
            .name(format!("replies-{}", self.reply_topic))
            .spawn(move || read_replies(&consumer, &thread_shared, &thread_stop))
            .map_err(|e| Error::Config(format!("cannot start the reply consumer thread: {e}")))?;
        Ok(ReplyingKafkaTemplate {
            inner: Arc::new(Inner {
                template: self.template,
                reply_topic: self.reply_topic,
                reply_partition: self.reply_partition,
                shared,
                stop,
            }),
        })
    }
}

/// A consumer assigned `topic`'s partitions (or `only`) at their end
/// offsets, read before returning so that no later reply is missed.
fn assign(
    config: &ClientConfig,
    topic: &str,
    only: Option<i32>,
    timeout: Duration,
) -> Result<BaseConsumer> {
    let consumer: BaseConsumer = config.create()?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let count = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len());
    let count = i32::try_from(count).unwrap_or(i32::MAX);
    if count == 0 {
        return Err(Error::Config(format!(
            "the reply topic `{topic}` does not exist; create it before starting the ReplyingKafkaTemplate"
        )));
    }
    let partitions: Vec<i32> = match only {
        Some(p) if !(0..count).contains(&p) => {
            return Err(Error::Config(format!(
                "the reply topic `{topic}` has {count} partitions; there is no partition {p}"
            )))
        }
        Some(p) => vec![p],
        None => (0..count).collect(),
    };
    let mut list = TopicPartitionList::new();
    for p in partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        list.add_partition_offset(topic, p, Offset::Offset(high))?;
    }
    consumer.assign(&list)?;
    Ok(consumer)
}

/// The reply consumer's loop: polls until `stop`, handing each reply to
/// its request.
fn read_replies(consumer: &BaseConsumer, shared: &Shared, stop: &AtomicBool) {
    let topic: Arc<str> = Arc::from(shared.reply_topic.as_str());
    while !stop.load(AtomicOrdering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => shared.deliver(ConsumerRecord::from_message(&message, &topic)),
            Some(Err(e)) => {
                tracing::warn!(reply_topic = %shared.reply_topic, error = %e, "reply consumer error");
            }
        }
    }
}

/// 16 random bytes laid out as a version 4 UUID (Spring's correlation id).
fn correlation_id() -> Bytes {
    let mut id = fastrand::u128(..).to_be_bytes();
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    Bytes::copy_from_slice(&id)
}

impl ReplyingKafkaTemplate {
    /// A builder sending through `template` and reading replies from
    /// `reply_topic`; give the reply consumer's connection
    /// ([`ReplyingTemplateBuilder::bootstrap_servers`] or
    /// [`ReplyingTemplateBuilder::kafka_config`]), then
    /// [`ReplyingTemplateBuilder::start`].
    pub fn builder(
        template: KafkaTemplate,
        reply_topic: impl Into<String>,
    ) -> ReplyingTemplateBuilder {
        ReplyingTemplateBuilder {
            template,
            reply_topic: reply_topic.into(),
            reply_partition: None,
            consumer: ClientConfig::new(),
            metadata_timeout: Duration::from_secs(10),
        }
    }

    /// Sends `request` with the reply headers (`kafka_replyTopic`,
    /// `kafka_replyPartition` if set, a new `kafka_correlationId`) and
    /// waits for the reply with the same correlation id, the send included,
    /// at most `timeout`.
    ///
    /// # Errors
    /// [`Error::ReplyTimeout`] when no reply came in time (a reply that
    /// comes later is dropped and counted as `late`); as
    /// [`KafkaTemplate::send`] when the request cannot be sent.
    pub async fn send_and_receive(
        &self,
        request: ProducerRecord,
        timeout: Duration,
    ) -> Result<ConsumerRecord> {
        let inner = &*self.inner;
        let id = correlation_id();
        let topic = request.topic().to_owned();
        let mut request = request.header(REPLY_TOPIC, inner.reply_topic.clone().into_bytes());
        if let Some(p) = inner.reply_partition {
            request = request.header(REPLY_PARTITION, p.to_be_bytes().to_vec());
        }
        let request = request.header(CORRELATION_ID, id.clone());
        let (tx, rx) = oneshot::channel();
        lock(&inner.shared.pending).insert(id.clone(), tx);
        let mut guard = PendingGuard {
            shared: &inner.shared,
            id,
            answered: false,
        };
        let exchange = async {
            inner.template.send(request).await?;
            rx.await.map_err(|_| {
                Error::Config(format!(
                    "the reply consumer of `{}` stopped",
                    inner.reply_topic
                ))
            })
        };
        let outcome = tokio::time::timeout(timeout, exchange).await;
        match outcome {
            Ok(Ok(reply)) => {
                guard.answered = true;
                Ok(reply)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::ReplyTimeout {
                topic,
                reply_topic: inner.reply_topic.clone(),
                timeout,
            }),
        }
    }

    /// The topic replies are read from.
    pub fn reply_topic(&self) -> &str {
        &self.inner.reply_topic
    }

    /// The reply partition, if the template reads only one.
    pub fn reply_partition(&self) -> Option<i32> {
        self.inner.reply_partition
    }

    /// The template requests are sent through.
    pub fn template(&self) -> &KafkaTemplate {
        &self.inner.template
    }

    /// The requests waiting for their reply.
    pub fn pending(&self) -> usize {
        lock(&self.inner.shared.pending).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_ids_are_version_4_uuids() {
        let a = correlation_id();
        assert_eq!(a.len(), 16);
        assert_eq!(a[6] >> 4, 4);
        assert_eq!(a[8] >> 6, 0b10);
        assert_ne!(a, correlation_id());
    }

    #[test]
    fn late_and_unknown_replies_are_told_apart() {
        let shared = Shared::new("t");
        let id = correlation_id();
        let (tx, _rx) = oneshot::channel();
        lock(&shared.pending).insert(id.clone(), tx);
        shared.abandon(&id);
        assert!(lock(&shared.pending).is_empty());
        assert!(lock(&shared.timed_out).1.contains(&id));
        // Not abandoned twice, and an id never pending is not remembered.
        shared.abandon(&correlation_id());
        assert_eq!(lock(&shared.timed_out).0.len(), 1);
    }
}
