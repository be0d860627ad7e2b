//! Topic declaration against a broker reached through bootstrap servers:
//! topics that exist are left alone, and a broker that cannot create a
//! topic does not stop the app from starting.

mod support;

use std::time::Duration;

use kafka_listener::prelude::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use support::*;

fn partitions(bootstrap: &str, topic: &str) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    md.topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_topics_are_created_once_and_existing_ones_are_left_alone() {
    init_tracing();
    let (existing, new) = (&unique("t.existing"), &unique("t.new"));
    let broker = broker(existing, 2);
    let started = std::time::Instant::now();
    let app = KafkaApp::builder()
        .config(KafkaConfig::new().bootstrap_servers(broker.bootstrap_servers()))
        .without_discovered_listeners()
        .topic(NewTopic::new(existing, 5))
        .topic(NewTopic::new(new, 3))
        .build()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "build took {:?}",
        started.elapsed()
    );
    assert_eq!(
        partitions(app.bootstrap_servers(), existing),
        2,
        "an existing topic is not changed"
    );
    if broker.is_real() {
        // A real broker creates the declared topic.
        assert_eq!(partitions(app.bootstrap_servers(), new), 3);
    } else {
        // librdkafka's mock cluster does not implement CreateTopics: the
        // request times out, the app reports it and starts anyway (Spring's
        // KafkaAdmin with fatalIfBrokerNotAvailable = false), within the
        // 10 s admin timeout. Against `dev-broker`, declare topics with
        // `--topic name:partitions`.
        assert_eq!(partitions(app.bootstrap_servers(), new), 0);
    }
}

async fn noop(_: String) {}

/// On the embedded broker a listener's undeclared topic gets one partition,
/// but a dead-letter topic gets its source's partition count even when
/// another listener reads it (so a dead letter keeps its partition number).
///
/// Always the app's own embedded broker: its topic creation is under test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_topic_read_by_a_listener_keeps_its_source_partitions() {
    init_tracing();
    let app = KafkaApp::builder()
        .embedded()
        .without_discovered_listeners()
        .topic(NewTopic::new("orders", 4))
        .listener(
            ListenerSpec::new("orders")
                .topics(["orders"])
                .dead_letter(DeadLetter::suffixed())
                .handler(noop),
        )
        .listener(
            ListenerSpec::new("orders-dlt")
                .topics(["orders-dlt"])
                .handler(noop),
        )
        .listener(ListenerSpec::new("audit").topics(["audit"]).handler(noop))
        .build()
        .await
        .unwrap();
    assert_eq!(partitions(app.bootstrap_servers(), "orders"), 4);
    assert_eq!(partitions(app.bootstrap_servers(), "orders-dlt"), 4);
    assert_eq!(partitions(app.bootstrap_servers(), "audit"), 1);
}
