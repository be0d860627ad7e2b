//! [`DeadLetterRecoverer`]: Spring Kafka's `DeadLetterPublishingRecoverer`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::producer::Producer;

use super::headers::dead_letter_headers;
use crate::context::ListenerInfo;
use crate::error::{BoxError, ListenerError};
use crate::producer::{KafkaTemplate, ProducerRecord};
use crate::record::ConsumerRecord;
use crate::recover::Recoverer;
use crate::retry::DeadLetter;

/// Publishes a record that failed for good to its dead-letter topic and
/// resolves once the broker acknowledged it; the container commits past the
/// record only then. A refused or timed-out publish is an error: the
/// container keeps the partition waiting and calls the recoverer again, so
/// nothing is lost (at worst a dead letter is published twice).
///
/// The dead letter keeps the record's key, value bytes (exactly as they
/// were, which is what a poison pill needs) and headers, adds the headers
/// of [`super::headers`], and goes to the same partition number as the
/// record when the dead-letter topic has that partition (otherwise the key
/// chooses), as Spring's default destination resolver does.
///
/// Installed by [`crate::ListenerSpec::dead_letter`] with the app's
/// template; build one yourself to publish through another template.
#[derive(Clone)]
pub struct DeadLetterRecoverer {
    template: KafkaTemplate,
    destination: DeadLetter,
    partitions: Arc<Mutex<HashMap<String, i32>>>,
}

impl std::fmt::Debug for DeadLetterRecoverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterRecoverer")
            .field("destination", &self.destination)
            .finish_non_exhaustive()
    }
}

impl DeadLetterRecoverer {
    /// A recoverer publishing through `template` to `destination`.
    pub fn new(template: KafkaTemplate, destination: DeadLetter) -> Self {
        Self {
            template,
            destination,
            partitions: Arc::default(),
        }
    }

    /// Where dead letters go.
    pub fn destination(&self) -> &DeadLetter {
        &self.destination
    }

    /// The partition count of `topic` from the producer's metadata (cached
    /// once known); `None` when the broker does not answer within 5 s.
    async fn partition_count(&self, topic: &str) -> Option<i32> {
        if let Some(&n) = crate::util::lock(&self.partitions).get(topic) {
            return Some(n);
        }
        let producer = self.template.producer().clone();
        let name = topic.to_owned();
        let n = tokio::task::spawn_blocking(move || {
            crate::util::partition_counts(producer.client(), Some(&name), Duration::from_secs(5))?
                .into_iter()
                .find_map(|(t, n)| (t == name).then_some(n))
        })
        .await
        .ok()??;
        crate::util::lock(&self.partitions).insert(topic.to_owned(), n);
        Some(n)
    }

    /// Publishes the dead letter of `record` to `topic` and waits for the
    /// broker's acknowledgment.
    ///
    /// # Errors
    /// [`crate::Error::Send`] when the broker refused it or did not answer
    /// within `message.timeout.ms`.
    pub async fn publish(
        &self,
        topic: &str,
        record: &ConsumerRecord,
        error: &ListenerError,
        attempts: u32,
        group: &str,
    ) -> crate::Result<crate::SendResult> {
        let headers = dead_letter_headers(record, error, attempts, group);
        self.send_copy(topic, record, headers).await
    }

    /// Sends `record`'s key and value to `topic` with `headers` (instead of
    /// the record's own), on the record's partition number when `topic`
    /// has it.
    pub(crate) async fn send_copy(
        &self,
        topic: &str,
        record: &ConsumerRecord,
        headers: Vec<(String, bytes::Bytes)>,
    ) -> crate::Result<crate::SendResult> {
        let mut out = match record.key() {
            Some(k) => ProducerRecord::keyed(topic, k.clone()),
            None => ProducerRecord::keyless(topic),
        };
        if let Some(v) = record.value() {
            out = out.value(v.clone());
        }
        for (k, v) in headers {
            out = out.header(k, v);
        }
        if let Some(n) = self.partition_count(topic).await {
            if record.partition() < n {
                out = out.partition(record.partition());
            }
        }
        self.template.send(out).await
    }
}

impl Recoverer for DeadLetterRecoverer {
    fn recover<'a>(
        &'a self,
        record: &'a ConsumerRecord,
        error: &'a ListenerError,
        attempts: u32,
        listener: &'a ListenerInfo,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let topic = self.destination.topic_for(record.topic());
            let sent = self
                .publish(&topic, record, error, attempts, listener.group_id())
                .await?;
            tracing::warn!(
                listener = %listener.id(), topic = %record.topic(), partition = record.partition(), offset = record.offset(),
                attempts, kind = ?error.kind(), error = %error, dlt = %sent.topic, dlt_partition = sent.partition, dlt_offset = sent.offset,
                "record failed for good; published to the dead-letter topic"
            );
            metrics::counter!(crate::metrics::names::RECORDS_DEAD_LETTERED, "listener" => listener.id().to_string())
                .increment(1);
            Ok(())
        })
    }
}
