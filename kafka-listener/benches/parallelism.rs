//! Records/s of one partition under each `ordering`, for an I/O-bound
//! handler (it awaits 2 ms, as a database round trip) and a CPU-bound one
//! (it does not wait), on one embedded broker.
//!
//! ```text
//! cargo bench -p kafka-listener --bench parallelism
//! ```
//!
//! One partition holds `BENCH_RECORDS` records (default 20,000) over
//! `BENCH_KEYS` keys (default 10,000) for the I/O-bound handler, and a
//! second topic's one partition `BENCH_CPU_RECORDS` (default 50,000, so
//! that a run lasts long enough to time at a million records/s, and under
//! the embedded broker's 5 MiB per partition, past which it drops the
//! oldest records) over the
//! same keys for the CPU-bound one, all produced before the runs. Each run
//! is a new consumer group reading all of them; its rate is records over
//! the time from the first record handled to the last. CPU-bound runs are
//! the best of `BENCH_CPU_ROUNDS` (default 15), the modes taking turns
//! round after round. Modes: `partition` (one at a
//! time), `key` at `parallelism` 16, 64 and 256, `none` at 256.
//! The last lines are `key_ordering_speedup=<key at 256 / partition>` for
//! the I/O-bound handler (goal: at least 50) and
//! `cpu_key_cost=<1 - key at 256 / partition>` for the CPU-bound handler
//! (goal: at most 0.10).

use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kafka_listener::embedded::EmbeddedBroker;
use kafka_listener::prelude::*;
use kafka_listener::Ordering;

const TOPIC: &str = "parallelism-bench";
const CPU_TOPIC: &str = "parallelism-bench-cpu";

#[derive(Debug, Default)]
struct Progress {
    handled: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

impl Progress {
    fn tick(&self) {
        let now = Instant::now();
        self.first.lock().unwrap().get_or_insert(now);
        *self.last.lock().unwrap() = Some(now);
        self.handled.fetch_add(1, AtomicOrdering::Relaxed);
    }

    fn rate(&self) -> f64 {
        let n = self.handled.load(AtomicOrdering::Relaxed) as f64;
        match (*self.first.lock().unwrap(), *self.last.lock().unwrap()) {
            (Some(a), Some(b)) if b > a => n / (b - a).as_secs_f64(),
            _ => 0.0,
        }
    }
}

async fn io_bound(value: Bytes, progress: State<Arc<Progress>>) {
    let _ = value;
    tokio::time::sleep(Duration::from_millis(2)).await;
    progress.tick();
}

async fn cpu_bound(value: Bytes, progress: State<Arc<Progress>>) {
    // Some work on the value, no waiting.
    let _sum: u64 = value.iter().map(|b| u64::from(*b)).sum();
    progress.tick();
}

use bytes::Bytes;

/// Makes every run's listener id (and so its consumer group) new.
static ROUND: AtomicU64 = AtomicU64::new(0);

/// Sends `records` records keyed `k{i % keys}` to `topic`.
async fn produce(template: &KafkaTemplate, topic: &'static str, records: u64, keys: u64) {
    futures::stream::iter(0..records)
        .map(|i| {
            let template = template.clone();
            async move {
                template
                    .send(
                        ProducerRecord::keyed(topic, format!("k{}", i % keys))
                            .value(format!("{{\"seq\":{i}}}")),
                    )
                    .await
                    .expect("send");
            }
        })
        .buffer_unordered(1_000)
        .collect::<Vec<_>>()
        .await;
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    broker: &Arc<EmbeddedBroker>,
    topic: &str,
    records: u64,
    label: &str,
    ordering: Ordering,
    parallelism: usize,
    io: bool,
) -> f64 {
    let progress = Arc::new(Progress::default());
    let id = format!(
        "bench-{label}-{}-{}",
        if io { "io" } else { "cpu" },
        ROUND.fetch_add(1, AtomicOrdering::Relaxed)
    );
    let mut spec = ListenerSpec::new(id.clone())
        .topics([topic])
        .ordering(ordering);
    if ordering != Ordering::Partition {
        spec = spec.parallelism(parallelism);
    }
    spec = if io {
        spec.handler(io_bound)
    } else {
        spec.handler(cpu_bound)
    };
    let app = KafkaApp::builder()
        .embedded_broker(Arc::clone(broker))
        .without_discovered_listeners()
        .listener(spec)
        .build()
        .await
        .expect("app")
        .state(Arc::clone(&progress));
    let running = app.start().await.expect("start");
    let deadline = Instant::now() + Duration::from_secs(600);
    while progress.handled.load(AtomicOrdering::Relaxed) < records && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown().await;
    progress.rate()
}

fn main() {
    let records = env("BENCH_RECORDS", 20_000);
    let keys = env("BENCH_KEYS", 10_000);
    let cpu_records = env("BENCH_CPU_RECORDS", 50_000);
    let rounds = env("BENCH_CPU_ROUNDS", 15).max(1);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let broker = Arc::new(EmbeddedBroker::start().expect("broker"));
        broker.create_topic(TOPIC, 1).expect("topic");
        let template = KafkaTemplate::new(
            rdkafka::ClientConfig::new().set("bootstrap.servers", broker.bootstrap_servers()),
        )
        .expect("template");
        broker.create_topic(CPU_TOPIC, 1).expect("topic");
        produce(&template, TOPIC, records, keys).await;
        produce(&template, CPU_TOPIC, cpu_records, keys).await;
        println!(
            "records={records} cpu_records={cpu_records} keys={keys} partitions=1 cpu_rounds={rounds}"
        );
        let modes = [
            ("partition", Ordering::Partition, 1),
            ("key-16", Ordering::Key, 16),
            ("key-64", Ordering::Key, 64),
            ("key-256", Ordering::Key, 256),
            ("none-256", Ordering::None, 256),
        ];
        let mut io = Vec::new();
        for (label, ordering, p) in modes {
            let r = run(&broker, TOPIC, records, label, ordering, p, true).await;
            println!("io_bound {label:<10} {r:>10.0} records/s");
            io.push(r);
        }
        // Round after round of every mode, so that whatever else the
        // machine does weighs on every mode alike; each mode keeps its best.
        let mut cpu = vec![0.0f64; modes.len()];
        for _ in 0..rounds {
            for (best, (label, ordering, p)) in cpu.iter_mut().zip(modes) {
                let r = run(&broker, CPU_TOPIC, cpu_records, label, ordering, p, false).await;
                *best = best.max(r);
            }
        }
        for (r, (label, _, _)) in cpu.iter().zip(modes) {
            println!("cpu_bound {label:<10} {r:>10.0} records/s");
        }
        println!("key_ordering_speedup={:.1}", io[3] / io[0]);
        println!("cpu_key_cost={:.3}", 1.0 - cpu[3] / cpu[0]);
    });
}
