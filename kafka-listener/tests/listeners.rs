//! Listener forms on the embedded broker: batch listeners, the record ack
//! mode, retries and poison pills.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use kafka_listener::prelude::*;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Msg {
    seq: u64,
}

#[derive(Debug, Clone, Default)]
struct Batches(Arc<Mutex<Vec<Vec<u64>>>>);

async fn batch_listener(batch: Vec<Json<Msg>>, seen: State<Batches>) {
    let Batches(inner) = &*seen;
    inner
        .lock()
        .unwrap()
        .push(batch.iter().map(|m| m.seq).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_listener_gets_every_record_once_in_order_in_batches_of_at_most_max_batch() {
    init_tracing();
    const TOPIC: &str = "l.batch";
    let broker = broker(TOPIC, 1);
    let seen = Batches::default();
    let app = KafkaApp::builder()
        .config(config(&broker))
        .without_discovered_listeners()
        .listener(
            ListenerSpec::new("batch")
                .topics([TOPIC])
                .max_batch(100)
                .batch_handler(batch_listener),
        )
        .build()
        .await
        .unwrap()
        .state(seen.clone());
    produce(&app.template(), TOPIC, 0..1_000, 1).await;
    let running = app.start().await.unwrap();
    let start = std::time::Instant::now();
    while seen.0.lock().unwrap().iter().map(Vec::len).sum::<usize>() < 1_000
        && start.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown().await;
    let batches = seen.0.lock().unwrap().clone();
    let flat: Vec<u64> = batches.iter().flatten().copied().collect();
    assert_eq!(
        flat,
        (0..1_000).collect::<Vec<_>>(),
        "every record once, in offset order"
    );
    assert!(
        batches.iter().all(|b| !b.is_empty() && b.len() <= 100),
        "batch sizes {:?}",
        batches.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(
        batches.len() < 1_000,
        "records were batched ({} calls)",
        batches.len()
    );
    assert_eq!(
        committed(broker.bootstrap_servers(), "batch", TOPIC, 1),
        vec![1_000]
    );
}

#[derive(Debug, Clone, Default)]
struct Flaky {
    calls: Arc<Mutex<Vec<(u64, u32)>>>,
    failures_left: Arc<AtomicU32>,
}

/// Fails the record with seq 5 twice, then succeeds; a record with seq 7 is
/// rejected as fatal.
async fn flaky_listener(
    msg: Json<Msg>,
    meta: RecordMeta,
    flaky: State<Flaky>,
) -> Result<(), ListenerError> {
    flaky
        .calls
        .lock()
        .unwrap()
        .push((msg.seq, meta.delivery_attempt));
    if msg.seq == 5 && flaky.failures_left.load(Ordering::SeqCst) > 0 {
        flaky.failures_left.fetch_sub(1, Ordering::SeqCst);
        return Err(ListenerError::retryable(std::io::Error::other(
            "database is busy",
        )));
    }
    if msg.seq == 7 {
        return Err(ListenerError::fatal("coupon does not exist"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_are_retried_in_order_and_fatal_ones_are_not() {
    init_tracing();
    const TOPIC: &str = "l.retry";
    let broker = broker(TOPIC, 1);
    let flaky = Flaky::default();
    flaky.failures_left.store(2, Ordering::SeqCst);
    let app = KafkaApp::builder()
        .config(config(&broker))
        .without_discovered_listeners()
        .listener(
            ListenerSpec::new("retry")
                .topics([TOPIC])
                .ack_mode(AckMode::Record)
                .retry(RetryPolicy::fixed(3, Duration::from_millis(50)))
                .handler(flaky_listener),
        )
        .build()
        .await
        .unwrap()
        .state(flaky.clone());
    produce(&app.template(), TOPIC, 0..10, 1).await;
    let running = app.start().await.unwrap();
    let start = std::time::Instant::now();
    while flaky
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.0 == 9)
        .count()
        == 0
        && start.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Record mode commits each record as it finishes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        committed(broker.bootstrap_servers(), "retry", TOPIC, 1),
        vec![10]
    );
    running.shutdown().await;
    let calls = flaky.calls.lock().unwrap().clone();
    let expected: Vec<(u64, u32)> = (0..10)
        .flat_map(|s| match s {
            5 => vec![(5, 1), (5, 2), (5, 3)],
            s => vec![(s, 1)],
        })
        .collect();
    assert_eq!(
        calls, expected,
        "seq 5 tried 3 times before 6, the fatal seq 7 once"
    );
}

async fn count_listener(_msg: Json<Msg>, seen: State<Seen>, meta: RecordMeta) {
    seen.push(meta.partition, meta.offset, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_is_not_json_is_skipped_and_the_records_behind_it_are_handled() {
    init_tracing();
    const TOPIC: &str = "l.poison";
    let broker = broker(TOPIC, 1);
    let seen = Seen::default();
    let app = KafkaApp::builder()
        .config(config(&broker))
        .without_discovered_listeners()
        .listener(
            ListenerSpec::new("poison")
                .topics([TOPIC])
                .handler(count_listener),
        )
        .build()
        .await
        .unwrap()
        .state(seen.clone());
    let template = app.template();
    produce(&template, TOPIC, 0..3, 1).await;
    template
        .send(ProducerRecord::keyed(TOPIC, "k0").value("{not json"))
        .await
        .unwrap();
    produce(&template, TOPIC, 3..6, 1).await;
    let running = app.start().await.unwrap();
    assert_eq!(seen.wait_for(Duration::from_secs(30), |n| n >= 6).await, 6);
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.shutdown().await;
    let offsets: Vec<i64> = seen.snapshot().iter().map(|s| s.1).collect();
    assert_eq!(
        offsets,
        vec![0, 1, 2, 4, 5, 6],
        "offset 3 (the poison pill) was never handed to the handler"
    );
    assert_eq!(
        committed(broker.bootstrap_servers(), "poison", TOPIC, 1),
        vec![7],
        "and the partition moved past it"
    );
}
