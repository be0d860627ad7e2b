//! Non-blocking retries through retry topics: Spring Kafka's
//! `@RetryableTopic`.
//!
//! With `retry_topics(attempts = 3, delays = ["1s", "10s"])` a record that
//! fails on `orders` is published to `orders-retry-1000` and the partition
//! moves on at once; the listener, also subscribed to the retry topics,
//! gets it back once its delay has passed, and on a second failure it goes
//! to `orders-retry-10000`; after the third failed attempt it goes to the
//! dead-letter topic (`orders-dlt`, or the listener's `dead_letter`). When
//! there are fewer delays than retries the last delay repeats. Fatal and
//! decode errors go to the dead-letter topic at once.
//!
//! Each retry record carries the dead-letter headers of
//! [`crate::dlq::headers`] (original topic, partition, offset of the first
//! failure) and two of Spring's retry-topic headers:
//! - `retry_topic-attempts`: the delivery attempt the record is on when it
//!   comes back, 4-byte big-endian int (2 on the first retry topic);
//! - `retry_topic-backoff-timestamp`: when it is due, ms since the Unix
//!   epoch, 8-byte big-endian long.
//!
//! The lane of a retry-topic partition waits until the record at its head
//! is due (records of one retry topic are due in the order they were
//! written, since they share one delay), and the consumer pauses the
//! partition once its queue is full, so nothing is polled in a loop.
//!
//! # Ordering trade-off
//!
//! Blocking retries ([`crate::RetryPolicy`]) keep a partition's order: the
//! records behind a failing one wait. Retry topics do not: the records
//! behind a failed record are handled while it waits in a retry topic, so
//! a later record with the same key can be handled before it. Use retry
//! topics where records are independent (notifications, idempotent
//! upserts of the latest state), and blocking retries where per-key order
//! matters (the coupon queue).

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::context::ListenerInfo;
use crate::dlq::headers::dead_letter_headers;
use crate::dlq::DeadLetterRecoverer;
use crate::error::{BoxError, ListenerError};
use crate::producer::KafkaTemplate;
use crate::record::headers::{
    self, be_i32, be_i64, RETRY_TOPIC_ATTEMPTS as ATTEMPTS_HEADER,
    RETRY_TOPIC_BACKOFF_TIMESTAMP as BACKOFF_TIMESTAMP_HEADER,
};
use crate::record::ConsumerRecord;
use crate::recover::Recoverer;

use crate::retry::{DeadLetter, RetryTopics};

/// When `record` is due (its `retry_topic-backoff-timestamp`), as a wait
/// from now; `None` when it has no such header or is due already.
pub(crate) fn wait_for(record: &ConsumerRecord) -> Option<Duration> {
    let due = be_i64(record.headers().get(BACKOFF_TIMESTAMP_HEADER)?)?;
    let wait = due.checked_sub(now_ms())?;
    (wait > 0).then(|| Duration::from_millis(wait as u64))
}

use crate::util::now_ms;

/// The recoverer of a listener with retry topics: the next retry topic, or
/// the dead-letter topic once the attempts are used up.
#[derive(Debug, Clone)]
pub(crate) struct RetryTopicRecoverer {
    topics: RetryTopics,
    dead_letters: DeadLetterRecoverer,
}

impl RetryTopicRecoverer {
    pub(crate) fn new(topics: RetryTopics, template: KafkaTemplate, dlt: DeadLetter) -> Self {
        Self {
            topics,
            dead_letters: DeadLetterRecoverer::new(template, dlt),
        }
    }
}

impl Recoverer for RetryTopicRecoverer {
    fn recover<'a>(
        &'a self,
        record: &'a ConsumerRecord,
        error: &'a ListenerError,
        attempts: u32,
        listener: &'a ListenerInfo,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            // The delivery this was: 1 on the source topic, the header's
            // value on a retry topic; blocking attempts within it count too.
            let delivery = record
                .headers()
                .get(ATTEMPTS_HEADER)
                .and_then(be_i32)
                .map_or(1, |a| a.max(1) as u32);
            let total = delivery + attempts.saturating_sub(1);
            let source = match headers::Original::from_headers(record.headers()) {
                Some(o) if record.headers().get(ATTEMPTS_HEADER).is_some() => o.topic,
                _ => record.topic().to_owned(),
            };
            let group = listener.group_id();
            if !error.is_retryable() || total >= self.topics.attempts() {
                let dlt = self.dead_letters.destination().topic_for(&source);
                let sent = self
                    .dead_letters
                    .publish(&dlt, record, error, total, group)
                    .await?;
                tracing::warn!(listener = %listener.id(), topic = %record.topic(), partition = record.partition(), offset = record.offset(),
                    attempts = total, error = %error, dlt = %sent.topic, "record failed for good; published to the dead-letter topic");
                metrics::counter!(crate::metrics::names::RECORDS_DEAD_LETTERED, "listener" => listener.id().to_string())
                    .increment(1);
                return Ok(());
            }
            let retry = total;
            let delay = self.topics.delay(retry);
            let topic = self.topics.topic(&source, retry);
            let mut extra = dead_letter_headers(record, error, total, group);
            extra.push((
                ATTEMPTS_HEADER.to_owned(),
                Bytes::copy_from_slice(&((total + 1) as i32).to_be_bytes()),
            ));
            let due = now_ms() + delay.as_millis() as i64;
            extra.push((
                BACKOFF_TIMESTAMP_HEADER.to_owned(),
                Bytes::copy_from_slice(&due.to_be_bytes()),
            ));
            let sent = self.dead_letters.send_copy(&topic, record, extra).await?;
            tracing::info!(listener = %listener.id(), topic = %record.topic(), partition = record.partition(), offset = record.offset(),
                attempt = total, delay_ms = delay.as_millis() as u64, retry_topic = %sent.topic, error = %error,
                "listener failed; record moved to a retry topic");
            metrics::counter!(crate::metrics::names::RECORDS_RETRY_TOPIC, "listener" => listener.id().to_string())
                .increment(1);
            Ok(())
        })
    }
}
