//! Interop with a client nobody here wrote: Confluent's Python client
//! (`confluent-kafka[avro]`: AvroSerializer / AvroDeserializer over
//! librdkafka and fastavro) writes Avro that a listener reads, and reads
//! Avro that `KafkaTemplate` writes, through the embedded broker and the
//! embedded Schema Registry over HTTP.
//!
//! Needs `python3` with `confluent-kafka[avro]`
//! (`python3 -m pip install 'confluent-kafka[avro]'`; `PYTHON` picks another
//! interpreter). Outside CI the test is skipped, with the reason printed,
//! when they are missing; with `CI=true` it fails instead.

#![cfg(feature = "avro")]

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apache_avro::AvroSchema;
use kafka_listener::prelude::*;
use serde::{Deserialize, Serialize};
use support::*;

/// The Python side's `ORDER_SCHEMA`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(name = "Order", namespace = "shop")]
struct Order {
    id: String,
    amount_cents: i64,
    note: Option<String>,
    tags: Vec<String>,
}

/// One line of the script's output.
#[derive(Debug, Deserialize)]
struct Line {
    key: String,
    value: Order,
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/avro_interop.py")
}

/// Whether the Python side can run; panics in CI when it cannot.
fn python_ready() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let reason = match Command::new(python()).arg(script()).arg("check").output() {
        Err(e) => format!("`{}` cannot run: {e}", python()),
        Ok(o) if !o.status.success() => format!(
            "`{} -c 'import confluent_kafka.schema_registry.avro'` failed: {}",
            python(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Ok(o) => {
            println!("python side: {}", String::from_utf8_lossy(&o.stdout).trim());
            return true;
        }
    };
    assert!(
        !ci,
        "CI=true and the Python interop client is missing: {reason}; install it with `python3 -m pip install 'confluent-kafka[avro]'`"
    );
    println!("SKIPPED avro interop: {reason}; install with `python3 -m pip install 'confluent-kafka[avro]'`");
    false
}

async fn run_script(args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(script()).args(args).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the Python client finishes within 120 s")
        .expect("python runs");
    assert!(
        out.status.success(),
        "python {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

fn lines(out: &Output) -> Vec<(String, Order)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let line: Line = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (line.key, line.value)
        })
        .collect()
}

type Received = Arc<Mutex<Vec<(String, Order)>>>;

async fn from_python(key: AvroKey<String>, order: Avro<Order>, got: State<Received>) {
    got.lock().unwrap().push((key.0, order.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_python_client_and_kafka_template_read_each_others_avro() {
    init_tracing();
    if !python_ready() {
        return;
    }
    let from_py = &unique("interop.from-python");
    let from_rust = &unique("interop.from-rust");
    const N: usize = 10;
    let broker = broker(from_py, 1);
    broker.create_topic(from_rust, 1).unwrap();
    let got: Received = Arc::default();
    // No schema_registry_url: the app serves the embedded registry.
    let app = support::avro::with_test_infra(KafkaApp::builder().config(config(&broker)), &broker)
        .await
        .without_discovered_listeners()
        .listener(
            ListenerSpec::new("from-python")
                .group_id(unique("from-python"))
                .topics([from_py])
                .handler(from_python),
        )
        .build()
        .await
        .unwrap()
        .state(Arc::clone(&got));
    let registry = app.embedded_schema_registry().unwrap().url().to_owned();
    let bootstrap = broker.bootstrap_servers().to_owned();
    let template = app.template();
    let running = app.start().await.unwrap();

    // Python writes, the listener reads.
    let sent =
        lines(&run_script(&["produce", &bootstrap, &registry, from_py, &N.to_string()]).await);
    assert_eq!(sent.len(), N);
    let start = std::time::Instant::now();
    while got.lock().unwrap().len() < N && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = got.lock().unwrap().clone();
    assert_eq!(
        received, sent,
        "the listener read what Python wrote, in order"
    );

    // KafkaTemplate writes, Python reads.
    let mut written = Vec::new();
    for i in 0..N as i64 {
        let key = format!("rs-{i}");
        let order = Order {
            id: key.clone(),
            amount_cents: 2000 + i,
            note: (i % 2 == 1).then(|| format!("from rust {i}")),
            tags: (0..i % 3).map(|t| format!("r{t}")).collect(),
        };
        template
            .send_avro_key_value(from_rust, &key, &order)
            .await
            .unwrap();
        written.push((key, order));
    }
    let read =
        lines(&run_script(&["consume", &bootstrap, &registry, from_rust, &N.to_string()]).await);
    running.shutdown().await;
    assert_eq!(
        read, written,
        "Python read what KafkaTemplate wrote, in order"
    );
}
