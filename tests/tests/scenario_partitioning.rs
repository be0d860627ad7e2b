//! Keys land on the same partition whether Kafka's Java console producer or
//! our `KafkaTemplate` sent them: the template's default partitioner is
//! librdkafka's `murmur2_random`, the Java client's hash.
//!
//! 60 keys to two 6-partition topics, by Kafka's console producer
//! (`parse.key=true`, `key.separator=:`) to one, by our template to the
//! other; a consumer reads both back with each record's partition. Every
//! key is on the same partition in both topics, and the keys cover several
//! partitions (the check is not one partition for all). A template with
//! librdkafka's own default (`consistent_random`, CRC32) puts some keys
//! elsewhere: the default matters.
//!
//! Needs `KAFKA_LAUNCHER` (see `kafka_listener_tests::cluster`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_listener::{KafkaApp, KafkaConfig, KafkaTemplate};
use kafka_listener_tests::cluster::{launcher_or_skip, Cluster};
use kafka_listener_tests::{init_logs, read_topic};

const KEYS: usize = 60;
const PARTITIONS: i32 = 6;

fn key(i: usize) -> String {
    format!("customer-{i}")
}

/// key -> partition of every record of `topic`.
fn partitions_by_key(cluster: &Cluster, topic: &str) -> BTreeMap<String, i32> {
    let records = read_topic(cluster.bootstrap(), topic, Duration::from_secs(3));
    assert_eq!(records.len(), KEYS, "{topic}: every record read back");
    records
        .into_iter()
        .map(|r| {
            (
                String::from_utf8(r.key.expect("a key")).expect("utf-8 key"),
                r.partition,
            )
        })
        .collect()
}

async fn template(cluster: &Cluster, config: KafkaConfig) -> KafkaTemplate {
    KafkaApp::builder()
        .config(config.bootstrap_servers(cluster.bootstrap()))
        .without_discovered_listeners()
        .build()
        .await
        .expect("build")
        .template()
}

async fn send_keys(template: &KafkaTemplate, topic: &str) {
    for i in 0..KEYS {
        template
            .send_json(topic, key(i), &serde_json::json!({ "i": i }))
            .await
            .expect("send");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_lands_on_the_same_partition_from_java_and_from_the_template() {
    let Some(launcher) = launcher_or_skip("scenario_partitioning") else {
        return;
    };
    init_logs();
    let cluster = Cluster::start(&launcher, 1, &[]);
    let (java, ours, crc) = ("keys.java", "keys.template", "keys.crc32");
    for t in [java, ours, crc] {
        cluster.create_topic(t, PARTITIONS, 1).await;
    }
    let input: String = (0..KEYS)
        .map(|i| format!("{}:{{\"i\":{i}}}\n", key(i)))
        .collect();
    tokio::task::block_in_place(|| {
        cluster.tool_with_input(
            &[
                "console-producer",
                "--topic",
                java,
                "--property",
                "parse.key=true",
                "--property",
                "key.separator=:",
            ],
            &input,
        )
    });
    send_keys(&template(&cluster, KafkaConfig::new()).await, ours).await;
    let librdkafka_default =
        KafkaConfig::new().producer_property("partitioner", "consistent_random");
    send_keys(&template(&cluster, librdkafka_default).await, crc).await;

    let (java_parts, our_parts, crc_parts) = tokio::task::block_in_place(|| {
        (
            partitions_by_key(&cluster, java),
            partitions_by_key(&cluster, ours),
            partitions_by_key(&cluster, crc),
        )
    });
    assert_eq!(java_parts.len(), KEYS, "distinct keys");
    let used: BTreeSet<i32> = java_parts.values().copied().collect();
    assert!(
        used.len() >= 4,
        "60 keys spread over the partitions: {used:?}"
    );
    let differ: Vec<&String> = java_parts
        .iter()
        .filter(|(k, p)| our_parts.get(*k) != Some(p))
        .map(|(k, _)| k)
        .collect();
    assert!(
        differ.is_empty(),
        "keys the template put on another partition than the Java producer: {differ:?}"
    );
    let crc_differ = java_parts
        .iter()
        .filter(|(k, p)| crc_parts.get(*k) != Some(p))
        .count();
    assert!(
        crc_differ > 0,
        "consistent_random agrees with Java on every key: the check would not see a wrong default"
    );
}
