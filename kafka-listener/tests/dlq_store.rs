//! The dead-letter store: a listener consumes a dead-letter topic into a
//! database table (SQLite always, PostgreSQL when `TEST_DATABASE_URL` is
//! set), and a stored dead letter replays to its original topic with a
//! `kafka_listener-replayed-from` header.

mod support;

use std::time::{Duration, Instant};

use kafka_listener::dlq::DeadLetterStore;
use kafka_listener::prelude::*;
use kafka_listener::record::headers::REPLAYED_FROM;
use kafka_listener::DeadLetter;
use sqlx::any::AnyPoolOptions;
use support::*;

#[derive(Debug, thiserror::Error)]
#[error("order {0} cannot be handled yet")]
struct NotYet(String);

/// Fails every record except replays; remembers the replays it handled.
async fn orders(record: ConsumerRecord, seen: State<Seen>) -> Result<(), ListenerError> {
    if record.headers().get(REPLAYED_FROM).is_none() {
        let key = String::from_utf8_lossy(record.key().unwrap()).into_owned();
        return Err(ListenerError::fatal(NotYet(key)));
    }
    seen.push(record.partition(), record.offset(), 0);
    Ok(())
}

async fn scenario(url: &str, topic: &str) {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let store = DeadLetterStore::new(pool.clone()).await.unwrap();
    sqlx::query("DELETE FROM kafka_dead_letters WHERE original_topic = $1")
        .bind(topic)
        .execute(&pool)
        .await
        .unwrap();
    let dlt = format!("{topic}-dlt");
    let broker = broker(topic, 2);
    broker.create_topic(&dlt, 2).unwrap();
    let seen = Seen::default();
    let app = KafkaApp::builder()
        .config(config(&broker))
        .without_discovered_listeners()
        .listener(
            ListenerSpec::new(format!("{topic}-orders"))
                .topics([topic])
                .dead_letter(DeadLetter::suffixed())
                .handler(orders),
        )
        .listener(store.listener(&format!("{topic}-store"), [dlt.clone()]))
        .build()
        .await
        .unwrap()
        .state(seen.clone())
        .start()
        .await
        .unwrap();
    let template = app.template();
    let sent = template
        .send(
            ProducerRecord::keyed(topic, "order-1")
                .value(r#"{"id":1}"#)
                .partition(1)
                .header("trace-id", "t1"),
        )
        .await
        .unwrap();
    let start = Instant::now();
    // Only this test's letters: on PostgreSQL the table is shared with the
    // other tests that run at the same time on the same database.
    let mine = || async {
        let mut l = store.list().await.unwrap();
        l.retain(|l| l.original_topic == topic);
        l
    };
    let letters = loop {
        let l = mine().await;
        if !l.is_empty() || start.elapsed() > Duration::from_secs(20) {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(letters.len(), 1, "{letters:?}");
    let l = &letters[0];
    assert_eq!(l.original_topic, topic);
    assert_eq!(l.original_partition, 1);
    assert_eq!(l.original_offset, sent.offset);
    assert_eq!(l.dlt_topic, dlt);
    assert_eq!(l.key_str().as_deref(), Some("order-1"));
    assert_eq!(l.payload_str().as_deref(), Some(r#"{"id":1}"#));
    assert_eq!(l.headers, vec![("trace-id".to_owned(), b"t1".to_vec())]);
    assert_eq!(l.error_kind.as_deref(), Some("Fatal"));
    assert_eq!(l.attempts, 1);
    assert_eq!(
        l.exception_message.as_deref(),
        Some("order order-1 cannot be handled yet")
    );
    assert_eq!(l.exception_fqcn.as_deref(), Some("dlq_store::NotYet"));
    assert_eq!(
        l.consumer_group.as_deref(),
        Some(&*format!("{topic}-orders"))
    );
    assert!(l.stored_at > 0 && l.replayed_at.is_none());

    let replayed = store.replay(&l.id, &template).await.unwrap().unwrap();
    assert_eq!(replayed.topic, topic);
    assert_eq!(seen.wait_for(Duration::from_secs(15), |n| n >= 1).await, 1);
    assert_eq!(
        seen.snapshot()[0].1,
        replayed.offset,
        "the replay was handled"
    );
    assert!(mine().await.is_empty(), "a replayed letter leaves the list");
    assert!(store
        .get(&l.id)
        .await
        .unwrap()
        .unwrap()
        .replayed_at
        .is_some());
    assert!(store
        .replay("no-such-id", &template)
        .await
        .unwrap()
        .is_none());
    app.shutdown().await;
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_keeps_dead_letters_and_replays_one() {
    init_tracing();
    scenario("sqlite::memory:", &unique("dls.sqlite")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_keeps_dead_letters_and_replays_one() {
    init_tracing();
    let Some(url) = postgres_url() else {
        eprintln!("TEST_DATABASE_URL is not set; skipping the PostgreSQL store test");
        return;
    };
    scenario(&url, &unique("dls.postgres")).await;
}
