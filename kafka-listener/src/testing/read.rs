//! Reading a topic back, as `KafkaTestUtils.getRecords` does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::error::{Error, Result};
use crate::record::ConsumerRecord;

/// Reads every partition of `topic` from the beginning with a consumer
/// outside any group, until `count` records arrived or `timeout` passed,
/// and returns them sorted by (partition, offset) with their keys, values,
/// headers and timestamps. Fewer than `count` records is not an error:
/// assert on the length.
///
/// # Errors
/// [`Error::Kafka`] when the topic's metadata cannot be read (an unknown
/// topic after 10 s).
pub async fn read_topic(
    bootstrap: &str,
    topic: &str,
    count: usize,
    timeout: Duration,
) -> Result<Vec<ConsumerRecord>> {
    let (b, t) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || read_topic_blocking(&b, &t, count, timeout))
        .await
        .map_err(|e| Error::Config(format!("the topic reader panicked: {e}")))?
}

/// As [`read_topic`], on the calling thread (blocking).
///
/// # Errors
/// As [`read_topic`].
pub fn read_topic_blocking(
    bootstrap: &str,
    topic: &str,
    count: usize,
    timeout: Duration,
) -> Result<Vec<ConsumerRecord>> {
    let consumer = super::consumer(bootstrap, None)?;
    let partitions = partition_count(&consumer, topic)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let name: Arc<str> = Arc::from(topic);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < count && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(ConsumerRecord::from_message(&m, &name));
        }
    }
    out.sort_by_key(|r| (r.partition(), r.offset()));
    Ok(out)
}

fn partition_count(consumer: &BaseConsumer, topic: &str) -> Result<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
            if t.error().is_none() && !t.partitions().is_empty() {
                return Ok(t.partitions().len() as i32);
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::Config(format!(
                "read_topic: topic {topic} does not exist (or has no partitions) after 10 s"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
