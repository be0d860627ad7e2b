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
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use support::*;

async fn sink(meta: RecordMeta, seen: State<Seen>) {
    seen.push(meta.partition, meta.offset, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_fetches_are_reported_counted_and_the_listener_goes_on() {
    init_tracing();
    let snapshotter = install_debug_recorder();
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
        .expect("an authorization error reported within 30 s");
    assert!(
        refusal
            .message
            .to_ascii_lowercase()
            .contains("authorization failed"),
        "{refusal:?}"
    );
    assert!(refusal.at_ms > 0);
    assert!(
        counter_sum(
            &snapshotter,
            "kafka_listener_consumer_errors_total",
            &[("listener", "refused-fetch"), ("kind", "authorization")],
        ) >= 1,
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
