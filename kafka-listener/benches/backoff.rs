//! Throughput of the healthy partitions of a listener while one partition
//! backs off, against the same listener with no failures, on one embedded
//! broker in one run.
//!
//! ```text
//! cargo bench -p kafka-listener --bench backoff
//! ```
//!
//! The topic has 4 partitions with `BENCH_RECORDS` records each (default
//! 20,000 of about 100 bytes). The `normal` listener handles everything;
//! the `backing-off` listener fails every record of partition 0 with a
//! retryable error and a 1 s fixed back-off (blocking retries, so that
//! partition waits the whole run), while partitions 1 to 3 go on. Rates are
//! records/s of partitions 1 to 3 only, from the first such record handled
//! to the last; each listener runs twice (alternating) and its best round
//! counts. The last line is `healthy_ratio=<backing-off/normal>`: within
//! 0.9 means one partition's back-off costs the others less than 10%.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kafka_listener::prelude::*;
use serde::Deserialize;

const TOPIC: &str = "backoff-bench";
const PARTITIONS: i32 = 4;

#[derive(Debug, Deserialize)]
struct Event {
    seq: u64,
}

/// Records handled on partitions 1..4, and when the first and last came.
#[derive(Debug, Default)]
struct Progress {
    healthy: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

impl Progress {
    fn handled(&self, partition: i32) {
        if partition == 0 {
            return;
        }
        let now = Instant::now();
        self.first.lock().unwrap().get_or_insert(now);
        *self.last.lock().unwrap() = Some(now);
        self.healthy.fetch_add(1, Ordering::Relaxed);
    }

    fn rate(&self) -> f64 {
        let n = self.healthy.load(Ordering::Relaxed) as f64;
        match (*self.first.lock().unwrap(), *self.last.lock().unwrap()) {
            (Some(a), Some(b)) if b > a => n / (b - a).as_secs_f64(),
            _ => 0.0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("partition 0 is down")]
struct Down;

#[derive(Clone, Debug)]
struct Fail(bool);

async fn handle(
    event: Json<Event>,
    meta: RecordMeta,
    progress: State<Arc<Progress>>,
    fail: State<Fail>,
) -> Result<(), ListenerError> {
    std::hint::black_box(event.seq);
    if fail.0 .0 && meta.partition == 0 {
        return Err(Down.into());
    }
    progress.handled(meta.partition);
    Ok(())
}

async fn round(per_partition: u64, fail: bool, round: u32) -> f64 {
    let progress = Arc::new(Progress::default());
    let app = KafkaApp::builder()
        .embedded()
        .topic(NewTopic::new(TOPIC, PARTITIONS))
        .without_discovered_listeners()
        .listener(
            ListenerSpec::new(format!("bench-{fail}-{round}"))
                .topics([TOPIC])
                .retry(RetryPolicy::fixed(1_000_000, Duration::from_secs(1)))
                .handler(handle),
        )
        .build()
        .await
        .expect("app")
        .state(Arc::clone(&progress))
        .state(Fail(fail));
    let template = app.template();
    futures::stream::iter(0..per_partition * PARTITIONS as u64)
        .map(|i| {
            let template = template.clone();
            async move {
                let record = ProducerRecord::keyed(TOPIC, format!("k{i}"))
                    .json(&serde_json::json!({"seq": i, "pad": "x".repeat(64)}))
                    .expect("json")
                    .partition((i % PARTITIONS as u64) as i32);
                template.send(record).await.expect("send");
            }
        })
        .buffer_unordered(1000)
        .collect::<Vec<_>>()
        .await;
    let running = app.start().await.expect("start");
    let want = per_partition * (PARTITIONS as u64 - 1);
    let start = Instant::now();
    while progress.healthy.load(Ordering::Relaxed) < want
        && start.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown().await;
    progress.rate()
}

#[tokio::main]
async fn main() {
    let per_partition: u64 = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let (mut normal, mut backing_off) = (0.0f64, 0.0f64);
    for r in 0..2 {
        let n = round(per_partition, false, r).await;
        println!("round {r}: normal      {n:>10.0} records/s on partitions 1-3");
        let b = round(per_partition, true, r).await;
        println!("round {r}: backing-off {b:>10.0} records/s on partitions 1-3 (partition 0 backing off)");
        normal = normal.max(n);
        backing_off = backing_off.max(b);
    }
    println!("normal={normal:.0} records/s backing_off={backing_off:.0} records/s");
    println!("healthy_ratio={:.3}", backing_off / normal);
}
