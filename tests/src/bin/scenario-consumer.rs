//! A listener in a process of its own, for the SIGKILL scenario
//! (`tests/tests/scenario_consumer_sigkill.rs`).
//!
//! ```text
//! scenario-consumer BOOTSTRAP TOPIC GROUP OUT_FILE
//! ```
//!
//! Runs one listener (concurrency 1, ack mode `batch`, 6 s session) of
//! `TOPIC` in `GROUP` whose handler appends `partition offset seq ms\n`
//! (`ms`: milliseconds since the Unix epoch when it was handled) to
//! `OUT_FILE` (one `write` per record on a file opened with `O_APPEND`, so
//! a line is on disk before the handler returns, and before its offset can
//! be committed). Records are JSON `{"seq": n}`. Serves until SIGINT or
//! SIGTERM (then drains and commits); SIGKILL is the crash under test.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Arc, Mutex};

use kafka_listener::{Json, KafkaApp, KafkaConfig, RecordMeta, State};
use kafka_listener_tests::scenario::{listener, Msg};

#[derive(Clone)]
struct Out(Arc<Mutex<File>>);

async fn append(msg: Json<Msg>, meta: RecordMeta, out: State<Out>) {
    let line = format!(
        "{} {} {} {}\n",
        meta.partition,
        meta.offset,
        msg.seq,
        example_support::now_ms()
    );
    out.0
         .0
        .lock()
        .unwrap()
        .write_all(line.as_bytes())
        .expect("append to the output file");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    kafka_listener_tests::init_logs();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, topic, group, out] = args.as_slice() else {
        eprintln!("usage: scenario-consumer BOOTSTRAP TOPIC GROUP OUT_FILE");
        std::process::exit(2);
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .expect("the output file");
    let app = KafkaApp::builder()
        .config(KafkaConfig::new().bootstrap_servers(bootstrap.as_str()))
        .without_discovered_listeners()
        .listener(listener("scenario-consumer", topic, group).handler(append))
        .build()
        .await
        .expect("the app builds")
        .state(Out(Arc::new(Mutex::new(file))));
    eprintln!("scenario-consumer {} started", std::process::id());
    app.run().await.expect("the app runs");
    eprintln!("scenario-consumer {} stopped", std::process::id());
}
