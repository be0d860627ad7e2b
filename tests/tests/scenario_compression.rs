//! Compression between Kafka's Java clients and ours, on a real broker:
//! every codec (gzip, snappy, lz4 and zstd, the last with the default
//! `zstd` feature) both ways.
//!
//! 1. Kafka's console producer writes 10 records per codec
//!    (`--compression-codec`), one topic per codec; our listener handles
//!    all 40.
//! 2. Our `KafkaTemplate`, with `compression.type` set per codec through
//!    `KafkaConfig::producer_property`, writes 10 records per codec, and
//!    Kafka's console consumer reads them back, values intact.
//!
//! Kafka's `DumpLogSegments` is the referee for the codec: every batch of
//! each topic's log says `compresscodec: <codec>`.
//!
//! Needs `KAFKA_LAUNCHER` (see `kafka_listener_tests::cluster`).

use std::time::Duration;

use kafka_listener::{KafkaApp, KafkaConfig};
use kafka_listener_tests::cluster::{launcher_or_skip, Cluster};
use kafka_listener_tests::init_logs;
use kafka_listener_tests::scenario::{recording_listener, Handled, Msg};

const CODECS: [&str; 4] = ["gzip", "snappy", "lz4", "zstd"];
const PER_CODEC: u64 = 10;

/// Asserts with `org.apache.kafka.tools.DumpLogSegments` that `topic`'s partition 0
/// holds at least one batch and that every batch is compressed with `codec`.
fn assert_codec(cluster: &Cluster, topic: &str, codec: &str) {
    let log = cluster
        .dir()
        .join(format!("node1/data/{topic}-0/00000000000000000000.log"));
    let out = cluster.tool_plain(&[
        "org.apache.kafka.tools.DumpLogSegments",
        "--files",
        &log.to_string_lossy(),
    ]);
    let batches: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("baseOffset:") && l.contains("compresscodec:"))
        .collect();
    assert!(!batches.is_empty(), "{topic}: no batch in the log:\n{out}");
    for b in &batches {
        assert!(
            b.to_ascii_lowercase()
                .contains(&format!("compresscodec: {codec}")),
            "{topic}: a batch not compressed with {codec}: {b}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_and_rust_clients_read_each_others_gzip_snappy_lz4_and_zstd() {
    let Some(launcher) = launcher_or_skip("scenario_compression") else {
        return;
    };
    init_logs();
    let cluster = Cluster::start(&launcher, 1, &[]);

    // 1. Kafka's console producer writes, our listener reads.
    let mut want = Vec::new();
    for (i, codec) in CODECS.iter().enumerate() {
        let topic = format!("codec.java.{codec}");
        cluster.create_topic(&topic, 1, 1).await;
        let base = 100 * i as u64;
        let input: String = (base..base + PER_CODEC)
            .map(|seq| format!("{{\"seq\":{seq}}}\n"))
            .collect();
        want.extend(base..base + PER_CODEC);
        tokio::task::block_in_place(|| {
            cluster.tool_with_input(
                &[
                    "console-producer",
                    "--topic",
                    &topic,
                    "--compression-codec",
                    codec,
                ],
                &input,
            );
            assert_codec(&cluster, &topic, codec);
        });
    }
    let mut spec = recording_listener("codecs", "codec.java.gzip", "codecs");
    spec = spec.topics(CODECS[1..].iter().map(|c| format!("codec.java.{c}")));
    let handled = Handled::default();
    let app = KafkaApp::builder()
        .config(KafkaConfig::new().bootstrap_servers(cluster.bootstrap()))
        .without_discovered_listeners()
        .listener(spec)
        .build()
        .await
        .expect("build")
        .state(handled.clone());
    let running = app.start().await.expect("start");
    let missing = handled.wait_for_all(&want, Duration::from_secs(60)).await;
    assert!(
        missing.is_empty(),
        "console producer's records not handled: {missing:?}"
    );
    assert_eq!(handled.len(), want.len(), "each record once");
    running.shutdown().await;

    // 2. Our template writes, Kafka's console consumer reads.
    for codec in CODECS {
        let topic = format!("codec.rust.{codec}");
        cluster.create_topic(&topic, 1, 1).await;
        let app = KafkaApp::builder()
            .config(
                KafkaConfig::new()
                    .bootstrap_servers(cluster.bootstrap())
                    .producer_property("compression.type", codec)
                    .producer_property("linger.ms", "50"),
            )
            .without_discovered_listeners()
            .build()
            .await
            .expect("build");
        let template = app.template();
        let sends = (0..PER_CODEC).map(|seq| {
            let (template, topic) = (template.clone(), topic.clone());
            async move {
                template
                    .send_json(&topic, format!("k{seq}"), &Msg { seq })
                    .await
            }
        });
        for r in futures::future::join_all(sends).await {
            r.expect("send");
        }
        template.flush(Duration::from_secs(10)).expect("flush");
        tokio::task::block_in_place(|| {
            let out = cluster.tool(&[
                "console-consumer",
                "--topic",
                &topic,
                "--from-beginning",
                "--max-messages",
                &PER_CODEC.to_string(),
                "--timeout-ms",
                "30000",
            ]);
            let mut seqs: Vec<u64> = out
                .lines()
                .map(|l| {
                    serde_json::from_str::<Msg>(l)
                        .unwrap_or_else(|e| panic!("{topic}: `{l}`: {e}"))
                        .seq
                })
                .collect();
            seqs.sort_unstable();
            assert_eq!(
                seqs,
                (0..PER_CODEC).collect::<Vec<_>>(),
                "{topic}: the console consumer read every record"
            );
            assert_codec(&cluster, &topic, codec);
        });
    }
}
