//! Shared helpers for the integration tests: an app on the embedded broker,
//! producing records, reading committed offsets and watermarks.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kafka_listener::embedded::EmbeddedBroker;
use kafka_listener::prelude::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Logs test output through tracing once per process (`RUST_LOG` filters).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,kafka_listener=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A broker for one test: an embedded broker with `topic` created.
pub fn broker(topic: &str, partitions: i32) -> Arc<EmbeddedBroker> {
    let broker = EmbeddedBroker::start().expect("embedded broker");
    broker.create_topic(topic, partitions).expect("topic");
    Arc::new(broker)
}

/// App config pointing at `broker`.
pub fn config(broker: &EmbeddedBroker) -> KafkaConfig {
    let mut config = KafkaConfig::new()
        .bootstrap_servers(broker.bootstrap_servers())
        .consumer_property("session.timeout.ms", "6000")
        .consumer_property("heartbeat.interval.ms", "500");
    // RDKAFKA_DEBUG=cgrp,fetch turns on librdkafka's debug contexts.
    if let Ok(debug) = std::env::var("RDKAFKA_DEBUG") {
        config = config.property("debug", debug);
    }
    config
}

/// Sends `count` JSON records `{"seq": i}` keyed `k{i % keys}` and returns,
/// per partition, the seqs in the order they landed.
pub async fn produce(
    template: &KafkaTemplate,
    topic: &str,
    range: std::ops::Range<u64>,
    keys: u64,
) -> HashMap<i32, Vec<(i64, u64)>> {
    let results: Vec<_> = futures::stream::iter(range)
        .map(|i| {
            let template = template.clone();
            let topic = topic.to_owned();
            async move {
                let r = template
                    .send_json(
                        &topic,
                        format!("k{}", i % keys),
                        &serde_json::json!({ "seq": i }),
                    )
                    .await
                    .expect("send");
                (r.partition, r.offset, i)
            }
        })
        .buffer_unordered(500)
        .collect()
        .await;
    let mut by_partition: HashMap<i32, Vec<(i64, u64)>> = HashMap::new();
    for (p, o, i) in results {
        by_partition.entry(p).or_default().push((o, i));
    }
    for v in by_partition.values_mut() {
        v.sort();
    }
    by_partition
}

/// The committed offsets of `group` on `topic`'s partitions `0..partitions`
/// (-1 where nothing is committed).
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect()
}

/// The high watermark (log end offset) of each partition.
pub fn log_end(bootstrap: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect()
}

/// What a test listener saw: (partition, offset, seq) in handling order.
#[derive(Debug, Default, Clone)]
pub struct Seen(pub Arc<Mutex<Vec<(i32, i64, u64)>>>);

impl Seen {
    pub fn push(&self, partition: i32, offset: i64, seq: u64) {
        self.0.lock().unwrap().push((partition, offset, seq));
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn snapshot(&self) -> Vec<(i32, i64, u64)> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until `pred(len)` holds, up to `timeout`; returns the length.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(usize) -> bool) -> usize {
        let start = Instant::now();
        loop {
            let n = self.len();
            if pred(n) || start.elapsed() > timeout {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Asserts that within each partition offsets strictly increase in the
/// order the handler saw them.
pub fn assert_partition_order(seen: &[(i32, i64, u64)]) {
    let mut last: HashMap<i32, i64> = HashMap::new();
    for &(p, o, _) in seen {
        if let Some(&prev) = last.get(&p) {
            assert!(o > prev, "partition {p}: offset {o} handled after {prev}");
        }
        last.insert(p, o);
    }
}

/// Asserts that each partition was handled in offset order with nothing
/// skipped: every step goes to the next offset, or back to an earlier one
/// (a redelivery after a rebalance replays from the committed offset).
/// Returns the number of such replays.
pub fn assert_in_order_allowing_replays(seen: &[(i32, i64, u64)]) -> usize {
    let mut last: HashMap<i32, i64> = HashMap::new();
    let mut replays = 0;
    for &(p, o, _) in seen {
        match last.get(&p) {
            None => assert_eq!(o, 0, "partition {p} starts at offset 0"),
            Some(&prev) if o == prev + 1 => {}
            Some(&prev) if o <= prev => replays += 1,
            Some(&prev) => panic!("partition {p}: offset {o} after {prev} skips records"),
        }
        last.insert(p, o);
    }
    replays
}

/// Reads `topic` (partitions `0..partitions`) from the beginning with a
/// group-less consumer until `count` records arrived or `timeout` passed;
/// returns what arrived (dead-letter and retry topics in tests).
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
    timeout: Duration,
) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::Message;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < count && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(m.detach());
        }
    }
    out.sort_by_key(|m| (m.partition(), m.offset()));
    out
}

/// The value of the last header `key` of `message`.
pub fn header(message: &rdkafka::message::OwnedMessage, key: &str) -> Option<Vec<u8>> {
    use rdkafka::message::Headers as _;
    use rdkafka::Message;
    message
        .headers()?
        .iter()
        .filter(|h| h.key == key)
        .last()
        .and_then(|h| h.value.map(<[u8]>::to_vec))
}

/// An app on `broker` (see [`config`]) with only the listener `spec` and
/// the state `state`, not started.
pub async fn listener_app<S: Clone + Send + Sync + 'static>(
    broker: &EmbeddedBroker,
    spec: ListenerSpec,
    state: S,
) -> KafkaApp {
    KafkaApp::builder()
        .config(config(broker))
        .without_discovered_listeners()
        .listener(spec)
        .build()
        .await
        .unwrap()
        .state(state)
}

/// [`read_topic`] on a blocking thread, for async tests.
pub async fn read_topic_async(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
    timeout: Duration,
) -> Vec<rdkafka::message::OwnedMessage> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || read_topic(&bootstrap, &topic, partitions, count, timeout))
        .await
        .expect("reader thread")
}
