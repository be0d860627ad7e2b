//! A transactional consume-transform-produce listener in a process of its
//! own, for the exactly-once scenario (`tests/tests/scenario_exactly_once.rs`).
//!
//! ```text
//! scenario-transform BOOTSTRAP INPUT OUTPUT GROUP TRANSACTION_ID_PREFIX
//! ```
//!
//! Runs one `transactional = true` listener of `INPUT` in `GROUP`
//! (concurrency 2, 6 s session) whose handler sends `{"seq": n}` for each
//! input `{"seq": n}` to `OUTPUT`, keyed as the input, in the record's
//! transaction with its offset. Serves until SIGINT or SIGTERM; SIGKILL is
//! the crash under test. A restart with the same prefix fences the killed
//! process's producers and aborts their open transactions.

use kafka_listener::{
    Json, KafkaApp, KafkaConfig, KafkaTemplate, Key, ListenerError, ProducerRecord, State,
};
use kafka_listener_tests::scenario::{listener, Msg};

async fn transform(
    msg: Json<Msg>,
    key: Key<Option<String>>,
    template: KafkaTemplate,
    output: State<String>,
) -> Result<(), ListenerError> {
    let record = ProducerRecord::keyed(output.as_str(), key.0.unwrap_or_default())
        .json(&Msg { seq: msg.seq })?;
    template.send(record).await?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    kafka_listener_tests::init_logs();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, input, output, group, prefix] = args.as_slice() else {
        eprintln!("usage: scenario-transform BOOTSTRAP INPUT OUTPUT GROUP TRANSACTION_ID_PREFIX");
        std::process::exit(2);
    };
    let app = KafkaApp::builder()
        .config(
            KafkaConfig::new()
                .bootstrap_servers(bootstrap.as_str())
                .transaction_id_prefix(prefix.as_str()),
        )
        .without_discovered_listeners()
        .listener(
            listener("scenario-transform", input, group)
                .transactional(true)
                .concurrency(2)
                .handler(transform),
        )
        .build()
        .await
        .expect("the app builds")
        .state(output.clone());
    eprintln!("scenario-transform {} started", std::process::id());
    app.run().await.expect("the app runs");
    eprintln!("scenario-transform {} stopped", std::process::id());
}
