//! A Kafka broker and a Schema Registry for development in their own
//! process: librdkafka's mock cluster and the embedded registry, the same
//! ones apps embed when no bootstrap servers and no registry URL are set.
//!
//! ```text
//! cargo run -p kafka-listener --features dev-broker --bin dev-broker -- \
//!     --topic coupon.issue.requested:3 --topic coupon.issued:3
//! bootstrap.servers=127.0.0.1:41234
//! schema.registry.url=http://127.0.0.1:41235
//! ```
//!
//! Prints `bootstrap.servers=127.0.0.1:PORT` and
//! `schema.registry.url=http://127.0.0.1:PORT` on standard output once
//! ready and serves until SIGINT or SIGTERM. With `--console-port PORT` it
//! also serves the operator console's topics page (partitions, log start
//! and end offsets; no listeners run in this process) and prints
//! `console.url=http://127.0.0.1:PORT/console/topics`. Point apps at them with
//! `KAFKA_BOOTSTRAP_SERVERS` and `SCHEMA_REGISTRY_URL` so that they can be
//! restarted (or killed) without losing the broker's data or the schemas.

use std::io::Write;

use clap::Parser;
use kafka_listener::embedded::EmbeddedBroker;
use kafka_listener::embedded::EmbeddedSchemaRegistry;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "dev-broker",
    about = "An in-process Kafka mock broker for development"
)]
struct Args {
    /// A topic to create, as `name` or `name:partitions` (default 1 partition). Repeatable.
    #[arg(long = "topic", value_name = "NAME[:PARTITIONS]")]
    topics: Vec<String>,
    /// The loopback port of the Schema Registry (default: a free port).
    #[arg(long = "registry-port", value_name = "PORT", default_value_t = 0)]
    registry_port: u16,
    /// Serve the operator console's topics page (read-only: no listeners
    /// run here) at `http://127.0.0.1:PORT/console` (0: a free port).
    #[arg(long = "console-port", value_name = "PORT")]
    console_port: Option<u16>,
}

fn parse_topic(spec: &str) -> Result<(String, i32), String> {
    match spec.rsplit_once(':') {
        None => Ok((spec.to_owned(), 1)),
        Some((name, n)) => {
            let n: i32 = n
                .parse()
                .map_err(|_| format!("`{spec}`: partitions must be a positive integer"))?;
            if n < 1 || name.is_empty() {
                return Err(format!(
                    "`{spec}`: expected NAME[:PARTITIONS] with PARTITIONS >= 1"
                ));
            }
            Ok((name.to_owned(), n))
        }
    }
}

/// Serves a read-only console of the broker's topics on `port`; its URL.
async fn serve_console(port: u16, bootstrap: &str) -> std::io::Result<String> {
    use kafka_listener::console::Console;
    let console = Console::builder(kafka_listener::ListenerRegistry::default())
        .topics(&kafka_listener::KafkaConfig::new(), bootstrap)
        .build();
    let app = axum::Router::new().merge(console.mount("/console"));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let url = format!("http://{}/console/topics", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("dev-broker: console: {e}");
        }
    });
    Ok(url)
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
    let topics: Result<Vec<_>, _> = args.topics.iter().map(|t| parse_topic(t)).collect();
    let topics = match topics {
        Ok(t) => t,
        Err(e) => {
            eprintln!("dev-broker: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let broker = match EmbeddedBroker::start() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("dev-broker: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    for (name, partitions) in &topics {
        if let Err(e) = broker.create_topic(name, *partitions) {
            eprintln!("dev-broker: topic {name}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], args.registry_port));
    let registry = match EmbeddedSchemaRegistry::start_on(addr).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dev-broker: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "bootstrap.servers={}", broker.bootstrap_servers());
    let _ = writeln!(out, "schema.registry.url={}", registry.url());
    if let Some(port) = args.console_port {
        match serve_console(port, broker.bootstrap_servers()).await {
            Ok(url) => {
                let _ = writeln!(out, "console.url={url}");
            }
            Err(e) => {
                eprintln!("dev-broker: console: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let _ = out.flush();
    drop(out);
    kafka_listener::shutdown_signal().await;
    drop(registry);
    drop(broker);
    std::process::ExitCode::SUCCESS
}
