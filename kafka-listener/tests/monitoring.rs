//! The Grafana dashboard (`docs/grafana/kafka-listener.json`) against what
//! the framework exports: a listener with retries and a dead-letter topic
//! and an outbox relay run on the embedded broker (or a real one, see
//! `support`) with the Prometheus
//! exporter installed as the metrics chapter says; every metric a panel
//! queries is in the scrape, and the counters hold the scenario's figures.

#![cfg(all(feature = "after-commit", feature = "macros"))]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kafka_listener::after_commit::{OutboxEvent, RelayConfig, TransactionalEvents};
use kafka_listener::prelude::*;
use kafka_listener::DeadLetter;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use support::*;

const TOPIC: &str = "mon.orders";
const RECORDS: u64 = 20;

#[derive(Debug, Deserialize)]
struct Msg {
    seq: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("downstream is down")]
struct Down;

/// seq % 10 == 0: fails for good (dead-lettered); seq % 10 == 1: fails
/// once, then succeeds on the retry; every other record succeeds.
async fn handler(
    msg: Json<Msg>,
    retried: State<std::sync::Arc<std::sync::Mutex<BTreeSet<u64>>>>,
) -> Result<(), ListenerError> {
    match msg.seq % 10 {
        0 => Err(ListenerError::fatal(Down)),
        1 if retried.lock().unwrap().insert(msg.seq) => Err(Down.into()),
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, Serialize, kafka_listener::OutboxEvent)]
#[outbox(topic = "mon.events", key = "id")]
struct Event {
    id: String,
}

/// The value of the sample `name{labels}` in a Prometheus text scrape.
fn sample(scrape: &str, name_and_labels: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

/// Every `kafka_listener_*` metric name in the dashboard's queries.
fn dashboard_metrics() -> BTreeSet<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/grafana/kafka-listener.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard")).unwrap();
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            let mut rest = expr;
            while let Some(at) = rest.find("kafka_listener_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                names.insert(name);
            }
        }
    }
    names
}

fn install_prometheus() -> PrometheusHandle {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Prefix("kafka_listener_".into()),
            kafka_listener::metrics::LATENCY_BUCKETS,
        )
        .unwrap()
        .install_recorder()
        .expect("the only recorder of this test binary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_metric_is_exported_with_the_scenarios_figures() {
    init_tracing();
    let prometheus = install_prometheus();
    let wanted = dashboard_metrics();
    assert!(wanted.len() >= 10, "{wanted:?}");

    let topic = &unique(TOPIC);
    let broker = broker(topic, 1);
    broker.create_topic(&format!("{topic}-dlt"), 1).unwrap();
    broker
        .create_topic(<Event as OutboxEvent>::TOPIC, 1)
        .unwrap();
    let app = listener_app(
        &broker,
        ListenerSpec::new("mon")
            .group_id(unique("mon"))
            .topics([topic])
            .retry(RetryPolicy::fixed(3, Duration::from_millis(20)))
            .dead_letter(DeadLetter::suffixed())
            .property("statistics.interval.ms", "500")
            .handler(handler),
        std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::<u64>::new())),
    )
    .await
    .start()
    .await
    .unwrap();
    produce(&app.template(), topic, 0..RECORDS, 1).await;

    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let events = TransactionalEvents::builder(pool).build().await.unwrap();
    let relay = events.start_relay(app.template(), RelayConfig::default());
    let mut tx = events.begin().await.unwrap();
    for id in ["a", "b", "c"] {
        tx.publish(Event { id: id.into() }).await.unwrap();
    }
    tx.commit().await.unwrap();

    let l = r#"{listener="mon"}"#;
    let deadline = Instant::now() + Duration::from_secs(30);
    let scrape = loop {
        let scrape = prometheus.render();
        let done = sample(
            &scrape,
            &format!("kafka_listener_records_processed_total{l}"),
        ) == Some(18.0)
            && sample(
                &scrape,
                &format!("kafka_listener_records_dead_lettered_total{l}"),
            ) == Some(2.0)
            && sample(
                &scrape,
                r#"kafka_listener_outbox_published_total{table="kafka_outbox"}"#,
            ) == Some(3.0)
            && scrape.contains("kafka_listener_consumer_lag{");
        if done || Instant::now() > deadline {
            break scrape;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    relay.shutdown().await;
    app.shutdown().await;

    // 20 records: 18 handled (two of them on a retry), 2 dead-lettered; 2
    // fatal failures and 2 failures that were retried.
    for (name, want) in [
        ("kafka_listener_records_processed_total", 18.0),
        ("kafka_listener_records_dead_lettered_total", 2.0),
        ("kafka_listener_records_failed_total", 4.0),
        ("kafka_listener_records_retried_total", 2.0),
        ("kafka_listener_records_skipped_total", 0.0),
        ("kafka_listener_offset_gaps_total", 0.0),
        ("kafka_listener_commit_failures_total", 0.0),
    ] {
        assert_eq!(
            sample(&scrape, &format!("{name}{l}")),
            Some(want),
            "{name}:\n{scrape}"
        );
    }
    assert_eq!(
        sample(
            &scrape,
            r#"kafka_listener_outbox_published_total{table="kafka_outbox"}"#
        ),
        Some(3.0),
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            r#"kafka_listener_outbox_send_failures_total{table="kafka_outbox"}"#
        ),
        Some(0.0),
        "registered at 0 when the relay starts:\n{scrape}"
    );
    assert!(
        scrape.contains(r#"kafka_listener_handler_seconds_bucket{listener="mon",le="0.0005"}"#),
        "exported as a histogram with LATENCY_BUCKETS:\n{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            &format!(
                r#"kafka_listener_consumer_lag{{listener="mon",topic="{topic}",partition="0"}}"#
            )
        ),
        Some(0.0),
        "no lag once everything is handled:\n{scrape}"
    );
    for name in &wanted {
        assert!(
            scrape
                .lines()
                .any(|line| line.starts_with(&format!("{name}{{"))),
            "the dashboard queries `{name}`, which is not exported:\n{scrape}"
        );
    }
}
