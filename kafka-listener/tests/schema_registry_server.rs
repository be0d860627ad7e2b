//! The `schema-registry` binary keeps its schemas in its journal file: ids
//! registered before a restart (SIGKILL, the worst case) resolve to the same
//! schemas after it, new registrations continue the ids, and compatibility
//! levels survive too.

#![cfg(feature = "schema-registry")]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use kafka_listener::avro::SchemaRegistryClient;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts the binary on a free port with `journal`; returns it and its URL.
async fn start(journal: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_schema-registry"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(journal)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("schema-registry starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("it prints its URL within 30 s")
        .unwrap()
        .expect("a line");
    let url = line
        .strip_prefix("SCHEMA_REGISTRY_URL=")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    (child, url)
}

const V1: &str = r#"{"type":"record","name":"Coupon","fields":[{"name":"id","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"Coupon","fields":[{"name":"id","type":"string"},{"name":"user","type":"string","default":""}]}"#;
/// Not backward compatible with V2 (a new field without a default).
const V3_BAD: &str = r#"{"type":"record","name":"Coupon","fields":[{"name":"id","type":"string"},{"name":"user","type":"string"},{"name":"n","type":"int"}]}"#;

#[tokio::test]
async fn schemas_and_ids_survive_a_restart_of_the_process() {
    let dir = std::env::temp_dir().join(format!("kl-registry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let journal = dir.join("journal.jsonl");
    let _ = std::fs::remove_file(&journal);

    let (mut first, url) = start(&journal).await;
    let client = SchemaRegistryClient::new(&url).unwrap();
    let id1 = client.register("coupon-value", V1).await.unwrap();
    let id2 = client.register("coupon-value", V2).await.unwrap();
    let other = client.register("user-key", r#""string""#).await.unwrap();
    assert_eq!(
        [id1, id2, other]
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3,
        "three distinct ids: {id1} {id2} {other}"
    );
    assert!(
        client.register("coupon-value", V3_BAD).await.is_err(),
        "BACKWARD refuses a field without a default"
    );
    // A compatibility level of one subject, set over HTTP, is journaled too.
    let status = reqwest::Client::new()
        .put(format!("{url}/config/user-key"))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .body(r#"{"compatibility":"NONE"}"#)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "PUT /config/user-key: {status}");
    first.kill().await.unwrap();
    first.wait().await.unwrap();
    let lines = std::fs::read_to_string(&journal).unwrap().lines().count();
    assert_eq!(
        lines, 4,
        "three registrations and one level journaled, not the refused registration"
    );

    let (mut second, url) = start(&journal).await;
    let client = SchemaRegistryClient::new(&url).unwrap();
    let schema = |s: &str| -> serde_json::Value { serde_json::from_str(s).unwrap() };
    assert_eq!(schema(&client.schema_by_id(id1).await.unwrap()), schema(V1));
    assert_eq!(schema(&client.schema_by_id(id2).await.unwrap()), schema(V2));
    assert_eq!(client.schema_by_id(other).await.unwrap(), r#""string""#);
    // Registering a known schema again gives its old id; a new one a new id.
    assert_eq!(client.register("coupon-value", V2).await.unwrap(), id2);
    let id3 = client.register("coupon-value-copy", V1).await.unwrap();
    assert_eq!(id3, id1, "one id per distinct schema, across subjects");
    let fresh = client.register("fresh-value", r#""long""#).await.unwrap();
    assert!(fresh > id1.max(id2).max(other), "ids continue: {fresh}");
    // The levels hold after the restart: BACKWARD (the default) still
    // refuses V3_BAD, NONE on user-key lets an int follow a string.
    assert!(client.register("coupon-value", V3_BAD).await.is_err());
    client
        .register("user-key", r#""int""#)
        .await
        .expect("NONE on user-key survived the restart");
    second.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
