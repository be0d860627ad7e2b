//! Outbox relay throughput: events written to the outbox in transactions on
//! SQLite, relayed to the embedded broker, for one hot key and for 16 keys,
//! with `linger.ms` 0 and 5 and with pipelined sends per key.
//!
//! ```text
//! cargo bench -p kafka-listener --bench outbox_relay
//! ```
//!
//! Prints one line per configuration with events/s. Per key, the relay sends
//! one record at a time by default (so a failed send never lets a later
//! record of the key overtake it); the figures show what that costs and what
//! `RelayConfig::max_in_flight_per_key` buys back.

use std::time::{Duration, Instant};

use kafka_listener::after_commit::{RelayConfig, TransactionalEvents};
use kafka_listener::embedded::EmbeddedBroker;
use kafka_listener::OutboxEvent;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyPoolOptions;
use sqlx::Executor;

#[derive(Debug, Clone, Serialize, Deserialize, OutboxEvent)]
#[outbox(topic = "coupon.issued", key = "coupon_id")]
struct Issued {
    coupon_id: String,
    seq: u64,
}

const EVENTS: u64 = 3_000;

async fn run(keys: u64, linger_ms: u32, per_key: usize) -> f64 {
    sqlx::any::install_default_drivers();
    let dir = std::env::temp_dir().join(format!(
        "kl-outbox-bench-{}-{keys}-{linger_ms}-{per_key}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
    let pool = AnyPoolOptions::new()
        .max_connections(4)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .expect("sqlite");
    let broker = EmbeddedBroker::start().expect("broker");
    broker.create_topic("coupon.issued", 3).expect("topic");
    let events = TransactionalEvents::builder(pool)
        .build()
        .await
        .expect("events");
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(100) {
        let mut tx = events.begin().await.expect("begin");
        for seq in chunk {
            tx.publish(Issued {
                coupon_id: format!("k{}", seq % keys),
                seq: *seq,
            })
            .await
            .expect("publish");
        }
        tx.commit().await.expect("commit");
    }
    let template = kafka_listener::KafkaTemplate::new(
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("enable.idempotence", "true")
            .set("linger.ms", linger_ms.to_string()),
    )
    .expect("template");
    let config = RelayConfig {
        max_in_flight_per_key: per_key,
        ..RelayConfig::default()
    };
    let started = Instant::now();
    let relay = events.start_relay(template, config);
    while events.unsent_count().await.expect("count") > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    relay.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    EVENTS as f64 / elapsed.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    for (keys, linger_ms, per_key) in [(1u64, 0u32, 1usize), (16, 0, 1), (1, 5, 1), (1, 5, 32)] {
        let rate = run(keys, linger_ms, per_key).await;
        println!(
            "outbox_relay events={EVENTS} keys={keys} linger_ms={linger_ms} max_in_flight_per_key={per_key} rate={rate:.0} events/s"
        );
    }
}
