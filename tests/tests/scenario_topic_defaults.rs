//! Topic defaults on a 3-node cluster (`default.replication.factor=3`,
//! broker-wide `min.insync.replicas=1`): a `NewTopic` without a
//! replication factor gets the broker's 3, with its `.config(k, v)`
//! settings; the dead-letter topic the app creates for a listener of it
//! gets replication factor 3 and the source's `min.insync.replicas=2` too.
//! Kafka's `topics --describe` is the referee.
//!
//! Needs `KAFKA_LAUNCHER` (see `kafka_listener_tests::cluster`).

use kafka_listener::{DeadLetter, KafkaApp, KafkaConfig, NewTopic};
use kafka_listener_tests::cluster::{launcher_or_skip, Cluster};
use kafka_listener_tests::init_logs;
use kafka_listener_tests::scenario::recording_listener;

/// The `Configs:` of `topics --describe --topic T`'s summary line.
fn topic_configs(cluster: &Cluster, topic: &str) -> String {
    let out = cluster.tool(&["topics", "--describe", "--topic", topic]);
    out.lines()
        .find(|l| l.contains("PartitionCount:"))
        .and_then(|l| l.split("Configs:").nth(1))
        .unwrap_or_else(|| panic!("no Configs in:\n{out}"))
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_topics_and_dead_letter_topics_get_the_brokers_replication_and_their_configs() {
    let Some(launcher) = launcher_or_skip("scenario_topic_defaults") else {
        return;
    };
    init_logs();
    let cluster = Cluster::start(&launcher, 3, &["min.insync.replicas=1"]);
    let topic = "defaults.orders";
    let declared = NewTopic::new(topic, 3)
        .config("min.insync.replicas", "2")
        .config("retention.ms", "3600000");
    assert_eq!(declared.replication_factor(), None, "the broker's default");
    let app = KafkaApp::builder()
        .config(KafkaConfig::new().bootstrap_servers(cluster.bootstrap()))
        .without_discovered_listeners()
        .topic(declared)
        .listener(
            recording_listener("defaults", topic, "defaults-group")
                .dead_letter(DeadLetter::suffixed()),
        )
        .build()
        .await
        .expect("build");
    drop(app);
    let dlt = format!("{topic}-dlt");
    tokio::task::block_in_place(|| {
        for (name, partitions) in [(topic, 3usize), (dlt.as_str(), 3)] {
            let parts = cluster.describe_topic(name);
            assert_eq!(parts.len(), partitions, "{name}: {parts:?}");
            for p in &parts {
                assert_eq!(
                    p.replicas.len(),
                    3,
                    "{name}-{}: replicas {p:?}",
                    p.partition
                );
            }
        }
        let configs = topic_configs(&cluster, topic);
        assert!(
            configs.contains("min.insync.replicas=2"),
            "{topic}: {configs}"
        );
        assert!(
            configs.contains("retention.ms=3600000"),
            "{topic}: {configs}"
        );
        let configs = topic_configs(&cluster, &dlt);
        assert!(
            configs.contains("min.insync.replicas=2"),
            "{dlt}: {configs}"
        );
        assert!(
            !configs.contains("retention.ms"),
            "{dlt}: retention is not inherited: {configs}"
        );
    });
}
