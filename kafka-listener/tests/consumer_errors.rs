//! A broker that refuses a listener's fetches (`TOPIC_AUTHORIZATION_FAILED`,
//! injected on the embedded broker's Fetch responses) is reported: kept in
//! `ListenerContainer::consumer_errors` with kind `Authorization`, counted
//! in `kafka_listener_consumer_errors_total{kind="authorization"}`, and the
//! listener goes on once the broker serves it again: every record is
//! handled. (The per-topic ACL case, one topic refused while another flows,
//! runs on a real broker: `tests/tests/scenario_security.rs`.)

mod support;

use std::time::Duration;

use kafka_listener::prelude::*;
use kafka_listener::ConsumerErrorKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use support::*;

async fn sink(meta: RecordMeta, seen: State<Seen>) {
    seen.push(meta.partition, meta.offset, 0);
}

/// The counter `kafka_listener_consumer_errors_total` of `listener` and
/// `kind`.
fn counted(snapshotter: &Snapshotter, listener: &str, kind: &str) -> u64 {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            let k = key.key();
            k.name() == "kafka_listener_consumer_errors_total"
                && k.labels()
                    .any(|l| l.key() == "listener" && l.value() == listener)
                && k.labels().any(|l| l.key() == "kind" && l.value() == kind)
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_fetches_are_reported_counted_and_the_listener_goes_on() {
    init_tracing();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");
    const TOPIC: &str = "ce.orders";
    // Error injection needs the embedded broker.
    let broker = embedded_broker(TOPIC, 1);
    let seen = Seen::default();
    let app = KafkaApp::builder()
        .config(config(&broker))
        .without_discovered_listeners()
        .listener(
            ListenerSpec::new("refused-fetch")
                .topics([TOPIC])
                .handler(sink),
        )
        .build()
        .await
        .unwrap()
        .state(seen.clone());
    let template = app.template();
    produce(&template, TOPIC, 0..10, 1).await;
    broker
        .with_mock(|m| {
            m.request_errors(
                RDKafkaApiKey::Fetch,
                &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 3],
            )
        })
        .unwrap();
    let running = app.start().await.unwrap();
    let container = running.container("refused-fetch").expect("container");
    let refusal = container
        .wait_for_consumer_error(ConsumerErrorKind::Authorization, Duration::from_secs(30))
        .await
        .unwrap_or_else(|| {
            panic!(
                "no authorization error reported in 30 s: {:?}",
                container.consumer_errors()
            )
        });
    assert!(
        refusal
            .message
            .to_ascii_lowercase()
            .contains("authorization failed"),
        "{refusal:?}"
    );
    assert!(refusal.at_ms > 0);
    assert!(
        counted(&snapshotter, "refused-fetch", "authorization") >= 1,
        "counted in kafka_listener_consumer_errors_total"
    );
    // Once the broker serves the fetches again, every record is handled.
    assert_eq!(
        seen.wait_for(Duration::from_secs(30), |n| n >= 10).await,
        10
    );
    running.shutdown().await;
    assert_eq!(
        committed(broker.bootstrap_servers(), "refused-fetch", TOPIC, 1),
        vec![10]
    );
}
