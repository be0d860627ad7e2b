//! A standalone Schema Registry that keeps its schemas on disk: the
//! embedded registry (the Confluent REST API subset, Avro) with a journal
//! file, in a process of its own, so that schema ids outlive a restart.
//!
//! ```text
//! cargo run -p kafka-listener --features schema-registry --bin schema-registry -- \
//!     --listen 127.0.0.1:8081 --data /var/lib/schema-registry/journal.jsonl
//! SCHEMA_REGISTRY_URL=http://127.0.0.1:8081
//! ```
//!
//! Prints `SCHEMA_REGISTRY_URL=http://HOST:PORT` on standard output once it
//! serves, and serves until SIGINT or SIGTERM. Every registration, deleted
//! subject and compatibility level is appended to the `--data` file and
//! synced before it is answered; started again on the same file it serves
//! the same schemas under the same ids. For development, tests and small
//! deployments: one process, no replication (Confluent's Schema Registry
//! keeps its data in a Kafka topic for that).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use kafka_listener::embedded::EmbeddedSchemaRegistry;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "schema-registry",
    about = "A Schema Registry (Confluent REST API, Avro) that keeps its schemas in a journal file"
)]
struct Args {
    /// The address to listen on (port 0: a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// The journal file (created when missing).
    #[arg(long, value_name = "FILE", env = "SCHEMA_REGISTRY_DATA")]
    data: PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let registry = match EmbeddedSchemaRegistry::start_with_journal(args.listen, &args.data).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("schema-registry: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!(data = %args.data.display(), url = %registry.url(), "schema registry serving");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "SCHEMA_REGISTRY_URL={}", registry.url());
    let _ = out.flush();
    drop(out);
    kafka_listener::shutdown_signal().await;
    registry.stop().await;
    std::process::ExitCode::SUCCESS
}
