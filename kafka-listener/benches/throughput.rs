//! Throughput of a `#[kafka_listener]` against raw rdkafka doing the same
//! work (JSON decode, manual commit every 500 records) on the same broker
//! in the same run: the embedded broker, and also a real Apache Kafka
//! broker when one is given.
//!
//! ```text
//! cargo bench -p kafka-listener --bench throughput
//! cargo bench -p kafka-listener --bench throughput -- --bootstrap 127.0.0.1:9092
//! KAFKA_BENCH_BOOTSTRAP_SERVERS=127.0.0.1:9092 cargo bench -p kafka-listener --bench throughput
//! ```
//!
//! With a real broker (`--bootstrap HOST:PORT` or
//! `KAFKA_BENCH_BOOTSTRAP_SERVERS`) each size runs on the embedded broker
//! first, then on the real one (`BENCH_BROKERS=real` for the real one only);
//! every result line says `broker=embedded` or `broker=real`. On the real
//! broker the topic `bench` is deleted and created again (32 partitions,
//! the broker's default replication) before each size, and each round's
//! consumer groups get a suffix unique to the run.
//!
//! For each record count (100,000 and 500,000 records of about 200 bytes,
//! spread over 32 partitions so the embedded broker's 5 MiB per partition
//! keeps them all), the parent process starts an embedded broker, produces
//! the records, then runs each side in a child process of its own (so that
//! each side's peak resident memory, `VmHWM`, is its own). Rates count from
//! the first record handled to the last, so group joins are not measured.
//! Each side runs twice (alternating, each round with its own consumer
//! group) and its best round counts. Both sides get the same client
//! properties: librdkafka's prefetch capped at 4 MiB, so peak memory shows
//! what each keeps beyond it and stays flat from the smaller run to the
//! larger one, and `fetch.queue.backoff.ms=10` (the framework's default).
//! The last line is `throughput_ratio=<framework/raw>` for the largest run
//! (on the real broker when one was given).
//!
//! Knobs: `BENCH_RECORDS=200000` runs one size only; `BENCH_ROUNDS=4` runs
//! up to 4 rounds per side; `BENCH_PROPS=key=value,...` adds consumer
//! properties to both sides; `BENCH_TRACE=1` prints the records handled per
//! 100 ms (to see stalls) and `BENCH_CPU=1` the CPU time of each thread from
//! the first record to the last, on stderr.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_listener::embedded::EmbeddedBroker;
use kafka_listener::prelude::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

const TOPIC: &str = "bench";
const PARTITIONS: i32 = 32;

#[derive(Debug, Serialize, Deserialize)]
struct Event {
    seq: u64,
    user_id: String,
    coupon_id: String,
    requested_at: i64,
    note: String,
}

fn event(seq: u64) -> Vec<u8> {
    serde_json::to_vec(&Event {
        seq,
        user_id: format!("user-{seq:010}"),
        coupon_id: format!("coupon-{:04}", seq % 1000),
        requested_at: 1_700_000_000_000 + seq as i64,
        note: "x".repeat(96),
    })
    .expect("json")
}

/// Counts handled records and remembers when the first and last came.
#[derive(Debug, Default)]
struct Progress {
    count: Arc<AtomicU64>,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

impl Progress {
    fn tick(&self, target: u64) {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 {
            *self.first.lock().unwrap() = Some(Instant::now());
        }
        if n == target {
            *self.last.lock().unwrap() = Some(Instant::now());
        }
    }

    fn seconds(&self) -> f64 {
        let first = self.first.lock().unwrap().expect("started");
        let last = self.last.lock().unwrap().expect("finished");
        (last - first).as_secs_f64()
    }
}

#[derive(Debug, Clone)]
struct Bench(Arc<Progress>, u64);

#[kafka_listener(topics = ["bench"], group_id = "bench-framework-1")]
async fn on_event_1(event: Json<Event>, bench: State<Bench>) {
    handle(&event, &bench);
}

/// The same listener in other consumer groups, for the other rounds.
#[kafka_listener(topics = ["bench"], group_id = "bench-framework-2")]
async fn on_event_2(event: Json<Event>, bench: State<Bench>) {
    handle(&event, &bench);
}

#[kafka_listener(topics = ["bench"], group_id = "bench-framework-3")]
async fn on_event_3(event: Json<Event>, bench: State<Bench>) {
    handle(&event, &bench);
}

#[kafka_listener(topics = ["bench"], group_id = "bench-framework-4")]
async fn on_event_4(event: Json<Event>, bench: State<Bench>) {
    handle(&event, &bench);
}

fn handle(event: &Event, bench: &Bench) {
    std::hint::black_box(event.seq);
    let Bench(progress, target) = bench;
    progress.tick(*target);
}

/// librdkafka's prefetch cap, the same for both sides, so that peak memory
/// shows what the consumer keeps beyond it (librdkafka's default is 64 MiB,
/// more than the smaller run's whole topic). 4 MiB, well under the smaller
/// run's 20 MB, so that both runs fill it: with 16 MiB the prefetch (which
/// costs 2-3 times its nominal size in resident memory) filled in the
/// larger run only, and both sides' peaks grew by 12-30 MiB from one run
/// to the other for that reason alone.
const PREFETCH_KIB: &str = "4096";

/// librdkafka's `fetch.queue.backoff.ms` for both sides: the framework's
/// default (librdkafka's own, 1000 ms, stops a consumer that reads slower
/// than the broker serves for up to a second each time its prefetch queue
/// fills, which made both sides' rates a matter of luck).
const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// Extra consumer properties for both sides, from `BENCH_PROPS`
/// (`key=value,key=value`), for trying librdkafka settings.
fn extra_props() -> Vec<(String, String)> {
    std::env::var("BENCH_PROPS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn run_raw(bootstrap: &str, records: u64, round: u32, run: &str) -> f64 {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench-raw-{round}{run}"))
        .set("queued.max.messages.kbytes", PREFETCH_KIB)
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    for (k, v) in extra_props() {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    let progress = Progress::default();
    trace("raw", Arc::clone(&progress.count));
    cpu_between("raw", Arc::clone(&progress.count), records);
    let mut n = 0u64;
    while n < records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                let event: Event =
                    serde_json::from_slice(rdkafka::Message::payload(&msg).unwrap_or_default())
                        .expect("json");
                std::hint::black_box(event.seq);
                progress.tick(records);
                n += 1;
                if n % 500 == 0 || n == records {
                    consumer
                        .commit_message(&msg, CommitMode::Async)
                        .expect("commit");
                }
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    progress.seconds()
}

async fn run_framework(bootstrap: &str, records: u64, round: u32, run: &str) -> f64 {
    let progress = Arc::new(Progress::default());
    trace("framework", Arc::clone(&progress.count));
    cpu_between("framework", Arc::clone(&progress.count), records);
    let mut config = KafkaConfig::new()
        .bootstrap_servers(bootstrap)
        .consumer_property("queued.max.messages.kbytes", PREFETCH_KIB)
        .consumer_property("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
    for (k, v) in extra_props() {
        config = config.consumer_property(k, v);
    }
    let id = format!("on_event_{round}");
    let group = format!("bench-framework-{round}{run}");
    let app = KafkaApp::builder()
        .config(config)
        .only_listeners([id.clone()])
        .customize_listener(id, move |l| l.group_id(group))
        .build()
        .await
        .expect("app")
        .state(Bench(Arc::clone(&progress), records));
    let running = app.start().await.expect("start");
    while progress.count.load(Ordering::Relaxed) < records {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    running.shutdown().await;
    progress.seconds()
}

/// `BENCH_TRACE=1`: prints the records handled per 100 ms on stderr, to
/// see stalls.
fn trace(side: &'static str, count: Arc<AtomicU64>) {
    if std::env::var_os("BENCH_TRACE").is_none() {
        return;
    }
    std::thread::spawn(move || {
        let mut last = 0;
        let mut line = String::new();
        for tick in 1.. {
            std::thread::sleep(Duration::from_millis(100));
            let n = count.load(Ordering::Relaxed);
            line.push_str(&format!(" {}", (n - last) / 1000));
            last = n;
            if tick % 20 == 0 {
                eprintln!("trace {side} (k records/100ms):{line}");
                line.clear();
            }
        }
    });
}

/// CPU time (user + system) of each thread of this process, in ms, by
/// thread name, summed over threads of the same name.
fn thread_cpu() -> std::collections::BTreeMap<String, u64> {
    let mut by_name: std::collections::BTreeMap<String, u64> = Default::default();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].replace(' ', "_");
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks = fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        *by_name.entry(name).or_default() += ticks * 10;
    }
    by_name
}

/// `BENCH_CPU=1`: prints the CPU time each thread spent from the first
/// record to the last, on stderr.
fn cpu_between(side: &'static str, count: Arc<AtomicU64>, records: u64) {
    if std::env::var_os("BENCH_CPU").is_none() {
        return;
    }
    std::thread::spawn(move || {
        while count.load(Ordering::Relaxed) == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        let before = thread_cpu();
        while count.load(Ordering::Relaxed) < records {
            std::thread::sleep(Duration::from_micros(200));
        }
        let after = thread_cpu();
        let mut total = 0;
        let mut line = String::new();
        for (name, ms) in &after {
            let d = ms.saturating_sub(before.get(name).copied().unwrap_or(0));
            total += d;
            if d > 0 {
                line.push_str(&format!(" {name}={d}"));
            }
        }
        eprintln!("{side} cpu_ms total={total}{line}");
    });
}

fn child(side: &str, bootstrap: &str, records: u64, round: u32, run: &str) {
    let seconds = match side {
        "raw" => run_raw(bootstrap, records, round, run),
        "framework" => tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(run_framework(bootstrap, records, round, run)),
        "produce" => {
            // For profiling one side by hand against a `dev-broker`.
            produce(bootstrap, records);
            return;
        }
        other => panic!("unknown side {other}"),
    };

    println!(
        "result side={side} records={records} seconds={seconds:.3} rate={:.0} peak_rss_kib={}",
        records as f64 / seconds,
        peak_rss_kib()
    );
}

fn produce(bootstrap: &str, records: u64) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    for seq in 0..records {
        let key = format!("key-{}", seq % 4096);
        let payload = event(seq);
        let mut record = BaseRecord::to(TOPIC).key(&key).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

/// Runs one side in a child process; returns (rate, peak RSS KiB).
fn side(side: &str, bootstrap: &str, records: u64, round: u32, run: &str) -> (f64, u64) {
    let exe = std::env::current_exe().expect("exe");
    let mut child = Command::new(exe)
        .args([
            "--side",
            side,
            "--bootstrap",
            bootstrap,
            "--records",
            &records.to_string(),
            "--round",
            &round.to_string(),
            "--run",
            run,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut result = None;
    for line in out.lines().map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("result ") {
            let field = |name: &str| -> f64 {
                rest.split_whitespace()
                    .find_map(|kv| {
                        kv.strip_prefix(&format!("{name}="))
                            .map(|v| v.parse().expect("number"))
                    })
                    .expect("field")
            };
            result = Some((field("rate"), field("peak_rss_kib") as u64));
        }
    }
    assert!(child.wait().expect("wait").success(), "{side} child failed");
    result.expect("child printed a result")
}

/// Deletes `bench` on the real broker if it exists, and creates it again
/// with [`PARTITIONS`] partitions; waits until every partition has a leader.
fn fresh_real_topic(bootstrap: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let _ = futures::executor::block_on(admin.delete_topics(&[TOPIC], &options));
    let metadata: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "could not create topic {TOPIC}");
        let topic = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(-1));
        let created = futures::executor::block_on(admin.create_topics([&topic], &options))
            .expect("create topic");
        if let Some(Ok(_)) = created.first() {
            break;
        }
        // Still being deleted.
        std::thread::sleep(Duration::from_millis(500));
    }
    loop {
        assert!(Instant::now() < deadline, "no leaders for topic {TOPIC}");
        let md = metadata
            .fetch_metadata(Some(TOPIC), Duration::from_secs(5))
            .expect("metadata");
        let ready = md.topics().iter().any(|t| {
            t.name() == TOPIC
                && t.partitions().len() == PARTITIONS as usize
                && t.partitions().iter().all(|p| p.leader() >= 0)
        });
        if ready {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One size on one broker: produce, then the rounds; returns the ratio.
fn run_size(broker: &str, bootstrap: &str, records: u64, rounds: u32, run: &str) -> f64 {
    let started = Instant::now();
    produce(bootstrap, records);
    println!(
        "broker={broker} produced {records} records of ~{} bytes into {PARTITIONS} partitions in {:.1} s",
        event(records / 2).len(),
        started.elapsed().as_secs_f64()
    );
    // Rounds alternating sides; each side's best round counts (the machine
    // is shared, and the slower round is the noisier one).
    let (mut raw, mut raw_rss, mut fw, mut fw_rss) = (0.0f64, 0u64, 0.0f64, 0u64);
    for round in 1..=rounds {
        let (r, r_rss) = side("raw", bootstrap, records, round, run);
        let (f, f_rss) = side("framework", bootstrap, records, round, run);
        println!(
            "broker={broker} records={records} round={round} raw_rate={r:.0} framework_rate={f:.0}"
        );
        raw = raw.max(r);
        fw = fw.max(f);
        raw_rss = raw_rss.max(r_rss);
        fw_rss = fw_rss.max(f_rss);
    }
    let ratio = fw / raw;
    println!(
        "broker={broker} records={records} raw_rate={raw:.0} records/s raw_peak_rss={} MiB",
        raw_rss / 1024
    );
    println!(
        "broker={broker} records={records} framework_rate={fw:.0} records/s framework_peak_rss={} MiB",
        fw_rss / 1024
    );
    println!("broker={broker} records={records} ratio={ratio:.3}");
    ratio
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    if let Some(side) = arg("--side") {
        let get = |name: &str| arg(name).expect(name);
        child(
            &side,
            &get("--bootstrap"),
            get("--records").parse().expect("records"),
            get("--round").parse().expect("round"),
            &arg("--run").unwrap_or_default(),
        );
        return;
    }
    let real = arg("--bootstrap").or_else(|| {
        std::env::var("KAFKA_BENCH_BOOTSTRAP_SERVERS")
            .ok()
            .filter(|s| !s.is_empty())
    });
    let real_only = std::env::var("BENCH_BROKERS").is_ok_and(|b| b == "real");
    assert!(
        real.is_some() || !real_only,
        "BENCH_BROKERS=real needs --bootstrap HOST:PORT or KAFKA_BENCH_BOOTSTRAP_SERVERS"
    );
    let sizes: Vec<u64> = match std::env::var("BENCH_RECORDS") {
        Ok(n) => vec![n.parse().expect("BENCH_RECORDS is a number")],
        Err(_) => vec![100_000, 500_000],
    };
    let rounds: u32 = std::env::var("BENCH_ROUNDS")
        .ok()
        .map_or(2, |n| n.parse().expect("BENCH_ROUNDS is a number"))
        .clamp(1, 4); // one listener (consumer group) per round
                      // Consumer groups of this run on a long-lived real broker.
    let run = format!(
        "-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    );
    let mut ratio = 0.0;
    for records in sizes {
        if !real_only {
            let broker = EmbeddedBroker::start().expect("broker");
            broker.create_topic(TOPIC, PARTITIONS).expect("topic");
            ratio = run_size("embedded", broker.bootstrap_servers(), records, rounds, "");
        }
        if let Some(bootstrap) = &real {
            fresh_real_topic(bootstrap);
            let run = format!("{run}-{records}");
            ratio = run_size("real", bootstrap, records, rounds, &run);
        }
    }
    println!("throughput_ratio={ratio:.3}");
}
