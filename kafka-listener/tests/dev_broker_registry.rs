//! The `dev-broker` binary serves a Schema Registry beside its broker and
//! prints both addresses.

#![cfg(all(feature = "dev-broker", feature = "avro"))]

use std::process::Stdio;
use std::time::Duration;

use kafka_listener::avro::SchemaRegistryClient;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A running dev-broker with `args` and the first `count` lines it printed.
async fn dev_broker(args: &[&str], count: usize) -> (tokio::process::Child, Vec<String>) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dev-broker"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("dev-broker starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut lines = Vec::new();
    while lines.len() < count {
        let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
            .await
            .expect("dev-broker prints its addresses within 30 s")
            .unwrap()
            .expect("a line");
        lines.push(line);
    }
    (child, lines)
}

#[tokio::test]
async fn dev_broker_prints_and_serves_a_schema_registry() {
    let (mut child, lines) = dev_broker(&["--topic", "t:2"], 2).await;
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    assert!(
        lines[0].starts_with("bootstrap.servers=127.0.0.1:"),
        "{lines:?}"
    );
    let url = lines[1]
        .strip_prefix("schema.registry.url=")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // The log has a line naming the registry and its URL.
    let logged = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(line)) = stderr.next_line().await {
            if line.contains("schema registry") && line.contains(url) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(logged, "a log line with `schema registry` and {url}");

    let client = SchemaRegistryClient::new(url).unwrap();
    let id = client.register("t-value", r#""string""#).await.unwrap();
    assert_eq!(client.schema_by_id(id).await.unwrap(), r#""string""#);
    child.kill().await.unwrap();
}

/// With `--console-port`, the console's topics page lists the broker's
/// topics with their partitions.
#[tokio::test]
async fn dev_broker_serves_the_console_topics_page() {
    let (mut child, lines) = dev_broker(&["--topic", "orders:2", "--console-port", "0"], 3).await;
    let url = lines[2]
        .strip_prefix("console.url=")
        .unwrap_or_else(|| panic!("{lines:?}"));
    let page = reqwest::get(url).await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert_eq!(
        page.matches(r#"<tr data-topic="orders">"#).count(),
        2,
        "{page}"
    );
    assert!(page.contains("Read-only"), "no token: read-only");
    child.kill().await.unwrap();
}
