//! `KafkaTemplate`: keyed sends that resolve once the broker acknowledged
//! the record.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use serde::Serialize;

use crate::context::{ListenerContext, ListenerInfo};
use crate::error::{Error, ExtractError, Result};
use crate::extract::{FromBatch, FromRecord};
use crate::record::ConsumerRecord;
use crate::trace::{TraceContext, TRACEPARENT};
use crate::transaction::TRANSACTION;

/// One record to send. There is no constructor without a decision about
/// the key: [`ProducerRecord::keyed`] keeps per-key order (records of one
/// key go to one partition); [`ProducerRecord::keyless`] spreads records and
/// gives up order, and must be asked for by name.
#[derive(Debug, Clone)]
pub struct ProducerRecord {
    topic: String,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
    partition: Option<i32>,
    timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record for `topic` with `key` and no value yet (a tombstone if
    /// sent as it is).
    pub fn keyed(topic: impl Into<String>, key: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            key: Some(key.into()),
            value: None,
            headers: Vec::new(),
            partition: None,
            timestamp: None,
        }
    }

    /// A record for `topic` with no key: the producer spreads such records
    /// over partitions and their order is lost.
    pub fn keyless(topic: impl Into<String>) -> Self {
        Self {
            key: None,
            ..Self::keyed(topic, Bytes::new())
        }
    }

    /// The value as JSON.
    ///
    /// # Errors
    /// [`Error::Serialization`] when `value` cannot be serialized.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self> {
        let bytes = serde_json::to_vec(value).map_err(|e| Error::Serialization(Box::new(e)))?;
        self.value = Some(Bytes::from(bytes));
        Ok(self)
    }

    /// The value as Avro in the Confluent wire format, its schema registered
    /// (or looked up) under the topic's value subject by `codec`.
    ///
    /// # Errors
    /// As [`crate::AvroCodec::encode`]: [`Error::SchemaRegistry`] (an
    /// incompatible schema, a registry that cannot be reached) or
    /// [`Error::Serialization`].
    #[cfg(feature = "avro")]
    pub async fn avro<T>(mut self, codec: &crate::avro::AvroCodec, value: &T) -> Result<Self>
    where
        T: Serialize + crate::avro::AvroSchema + 'static,
    {
        let bytes = codec
            .encode(&self.topic, crate::avro::RecordPart::Value, value)
            .await?;
        self.value = Some(Bytes::from(bytes));
        Ok(self)
    }

    /// The key as Avro in the Confluent wire format (subject `<topic>-key`
    /// by default). Errors as for [`Self::avro`].
    ///
    /// # Errors
    /// As [`Self::avro`].
    #[cfg(feature = "avro")]
    pub async fn avro_key<K>(mut self, codec: &crate::avro::AvroCodec, key: &K) -> Result<Self>
    where
        K: Serialize + crate::avro::AvroSchema + 'static,
    {
        let bytes = codec
            .encode(&self.topic, crate::avro::RecordPart::Key, key)
            .await?;
        self.key = Some(Bytes::from(bytes));
        Ok(self)
    }

    /// The value as bytes (a `String`, `Vec<u8>`, `&'static str`, ...).
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((key.into(), Some(value.into())));
        self
    }

    /// Sends to this partition instead of the key's.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the timestamp, milliseconds since the Unix epoch.
    pub fn timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

/// Where a sent record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset within the partition.
    pub offset: i64,
}

/// Sends records and resolves once the broker acknowledged them (Spring's
/// `KafkaTemplate`). Cheap to clone; one producer underneath.
///
/// The app's template is idempotent (`enable.idempotence=true`,
/// `acks=all`) unless the configuration says otherwise, so a retried send
/// neither duplicates nor reorders records of a partition.
#[derive(Clone)]
pub struct KafkaTemplate {
    producer: FutureProducer,
    queue_timeout: Duration,
    /// Transactional producers, when a `transactional.id` prefix is
    /// configured.
    transactions: Option<std::sync::Arc<crate::transaction::Transactions>>,
    #[cfg(feature = "avro")]
    avro: Option<crate::avro::AvroCodec>,
}

impl fmt::Debug for KafkaTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaTemplate").finish_non_exhaustive()
    }
}

impl KafkaTemplate {
    /// A template over a producer made from `config` as it is (see
    /// [`crate::KafkaConfig`] for the app's defaults).
    ///
    /// # Errors
    /// [`Error::Kafka`] for an invalid property.
    pub fn new(config: &ClientConfig) -> Result<Self> {
        Ok(Self {
            producer: config.create()?,
            queue_timeout: Duration::from_secs(5),
            transactions: None,
            #[cfg(feature = "avro")]
            avro: None,
        })
    }

    /// Enables transactions ([`Self::in_transaction`], `transactional =
    /// true` listeners): their producers are made from `config` (the
    /// template's own configuration) with a `transactional.id` of `prefix`
    /// followed by a suffix per producer. Spring's
    /// `spring.kafka.producer.transaction-id-prefix`; the app's template
    /// gets it from [`crate::KafkaConfig::transaction_id_prefix`]. The
    /// prefix must differ between instances of an app that run at once
    /// (a producer fences an older one with the same id).
    pub fn with_transactions(mut self, config: &ClientConfig, prefix: impl Into<String>) -> Self {
        self.transactions = Some(std::sync::Arc::new(crate::transaction::Transactions::new(
            config.clone(),
            prefix.into(),
        )));
        self
    }

    /// The transactional producers' settings, if enabled.
    pub(crate) fn transactions(&self) -> Option<&crate::transaction::Transactions> {
        self.transactions.as_deref()
    }

    /// Uses `codec` for the Avro sends ([`Self::send_avro`]); the app's
    /// template has the app's codec.
    #[cfg(feature = "avro")]
    pub fn with_avro(mut self, codec: crate::avro::AvroCodec) -> Self {
        self.avro = Some(codec);
        self
    }

    /// The Avro codec, if the template has one.
    #[cfg(feature = "avro")]
    pub fn avro_codec(&self) -> Option<&crate::avro::AvroCodec> {
        self.avro.as_ref()
    }

    #[cfg(feature = "avro")]
    fn codec(&self) -> Result<&crate::avro::AvroCodec> {
        self.avro.as_ref().ok_or_else(|| {
            Error::Config(
                "this KafkaTemplate has no Avro codec: no Schema Registry is configured (set \
                 SCHEMA_REGISTRY_URL; beside a real broker no embedded registry starts, as its \
                 schema ids would be unknown to every other client), or use \
                 KafkaTemplate::with_avro"
                    .into(),
            )
        })
    }

    /// Sends `value` as Avro (Confluent wire format, schema registered under
    /// `<topic>-value` by default) with `key` as plain bytes (what Java's
    /// `StringSerializer` writes for a `String` key).
    ///
    /// # Errors
    /// As [`Self::send`] and [`ProducerRecord::avro`]; [`Error::Config`]
    /// when the template has no codec.
    #[cfg(feature = "avro")]
    pub async fn send_avro<T>(
        &self,
        topic: &str,
        key: impl Into<Bytes>,
        value: &T,
    ) -> Result<SendResult>
    where
        T: Serialize + crate::avro::AvroSchema + 'static,
    {
        let record = ProducerRecord::keyed(topic, key)
            .avro(self.codec()?, value)
            .await?;
        self.send(record).await
    }

    /// Sends both `key` and `value` as Avro (subjects `<topic>-key` and
    /// `<topic>-value` by default).
    ///
    /// # Errors
    /// As [`Self::send_avro`].
    #[cfg(feature = "avro")]
    pub async fn send_avro_key_value<K, T>(
        &self,
        topic: &str,
        key: &K,
        value: &T,
    ) -> Result<SendResult>
    where
        K: Serialize + crate::avro::AvroSchema + 'static,
        T: Serialize + crate::avro::AvroSchema + 'static,
    {
        let codec = self.codec()?;
        let record = ProducerRecord::keyless(topic)
            .avro_key(codec, key)
            .await?
            .avro(codec, value)
            .await?;
        self.send(record).await
    }

    /// Sends `record` and waits for the broker's acknowledgment. Inside a
    /// Kafka transaction ([`Self::in_transaction`], a `transactional =
    /// true` listener) the record is part of the transaction: visible to
    /// `read_committed` consumers only once it commits.
    ///
    /// A record without a `traceparent` header gets the current trace's
    /// `traceparent` and `tracestate` ([`crate::trace`]: W3C Trace
    /// Context, as Spring Kafka's observation writes them).
    ///
    /// # Errors
    /// [`Error::Send`] when the broker did not acknowledge the record within
    /// `message.timeout.ms` (librdkafka default 300 s) or refused it.
    pub async fn send(&self, record: ProducerRecord) -> Result<SendResult> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + 2);
        for (k, v) in &record.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        // The current trace (crate::trace), unless the record has its own.
        if !record.headers.iter().any(|(k, _)| k == TRACEPARENT) {
            if let Some(cx) = TraceContext::current() {
                for (k, v) in cx.headers() {
                    headers = headers.insert(Header {
                        key: k,
                        value: Some(v.as_bytes()),
                    });
                }
            }
        }
        let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&record.topic).headers(headers);
        if let Some(k) = record.key.as_deref() {
            fr = fr.key(k);
        }
        if let Some(v) = record.value.as_deref() {
            fr = fr.payload(v);
        }
        if let Some(p) = record.partition {
            fr = fr.partition(p);
        }
        if let Some(t) = record.timestamp {
            fr = fr.timestamp(t);
        }
        // Inside a transaction (crate::transaction), the transaction's
        // producer sends: the record becomes visible when it commits.
        let in_tx = TRANSACTION.try_with(FutureProducer::clone).ok();
        let producer = in_tx.as_ref().unwrap_or(&self.producer);
        match producer.send(fr, self.queue_timeout).await {
            Ok(d) => Ok(SendResult {
                topic: record.topic,
                partition: d.partition,
                offset: d.offset,
            }),
            Err((source, _)) => Err(Error::Send {
                topic: record.topic,
                source,
            }),
        }
    }

    /// Sends `value` as JSON with `key`.
    ///
    /// # Errors
    /// As [`Self::send`], and [`Error::Serialization`].
    pub async fn send_json<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        key: impl Into<Bytes>,
        value: &T,
    ) -> Result<SendResult> {
        self.send(ProducerRecord::keyed(topic, key).json(value)?)
            .await
    }

    /// Waits up to `timeout` for queued records to be delivered.
    ///
    /// # Errors
    /// [`Error::Kafka`] when records are still queued at the timeout.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer.flush(timeout)?;
        Ok(())
    }

    /// The underlying rdkafka producer.
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }
}

impl KafkaTemplate {
    /// Runs `work` in a Kafka transaction (Spring's
    /// `KafkaTemplate.executeInTransaction`): every send of the template
    /// (any template of this task) made by `work` becomes visible to
    /// `read_committed` consumers when `work` returns `Ok` and the commit
    /// succeeds, and never when it returns `Err`: the transaction is then
    /// aborted and the error returned.
    ///
    /// Called inside a transaction already (a `transactional = true`
    /// listener), `work` joins it instead of beginning its own.
    ///
    /// The producer comes from a pool of producers whose
    /// `transactional.id` is the configured prefix
    /// ([`crate::KafkaConfig::transaction_id_prefix`]) followed by
    /// `template-<n>`.
    ///
    /// # Errors
    /// `work`'s error; [`Error::Config`] (as `E`) when no prefix is
    /// configured; [`Error::Transaction`] (as `E`) when the transaction
    /// cannot begin or commit.
    pub async fn in_transaction<T, E, F, Fut>(&self, work: F) -> std::result::Result<T, E>
    where
        F: FnOnce(KafkaTemplate) -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: From<Error>,
    {
        if TRANSACTION.try_with(|_| ()).is_ok() {
            return work(self.clone()).await;
        }
        let Some(transactions) = self.transactions() else {
            return Err(Error::Config(
                "KafkaTemplate::in_transaction needs a transactional.id prefix: set \
                 KAFKA_TRANSACTION_ID_PREFIX, spring.kafka.producer.transaction-id-prefix or \
                 KafkaConfig::transaction_id_prefix"
                    .into(),
            )
            .into());
        };
        let producer = transactions.take();
        let result = async {
            let tx = producer.begin().await?;
            match tx.scope(work(self.clone())).await {
                Ok(value) => {
                    tx.commit(None).await?;
                    Ok(value)
                }
                Err(e) => {
                    tx.abort().await;
                    Err(e)
                }
            }
        }
        .await;
        transactions.give_back(producer);
        result
    }
}

/// The app's template as a listener argument: `async fn f(order: Json<Order>,
/// template: KafkaTemplate)`. In a `transactional = true` listener its sends
/// join the record's transaction (so does any template's send in the
/// listener's task).
///
/// # Errors
/// The listener refuses to start when the app has no template in its state
/// (only a hand-made `StateMap` lacks it).
impl FromRecord for KafkaTemplate {
    fn from_record(
        _record: &ConsumerRecord,
        ctx: &ListenerContext<'_>,
    ) -> std::result::Result<Self, ExtractError> {
        ctx.info
            .state
            .get::<KafkaTemplate>()
            .cloned()
            .ok_or_else(|| ExtractError::new::<Self>("the app registered no KafkaTemplate"))
    }

    fn validate(info: &ListenerInfo) -> std::result::Result<(), String> {
        if info.state.contains::<KafkaTemplate>() {
            Ok(())
        } else {
            Err("`KafkaTemplate` is used but the app state has none (KafkaApp registers its template)".into())
        }
    }
}

impl FromBatch for KafkaTemplate {
    fn from_batch(
        records: &[ConsumerRecord],
        ctx: &ListenerContext<'_>,
    ) -> std::result::Result<Self, ExtractError> {
        match records.last() {
            Some(last) => <Self as FromRecord>::from_record(last, ctx),
            None => Err(ExtractError::new::<Self>("empty batch")),
        }
    }

    fn validate(info: &ListenerInfo) -> std::result::Result<(), String> {
        <Self as FromRecord>::validate(info)
    }
}
