//! `order-saga [serve]` runs the services (all of them by default, or
//! `--service payment` ...); `order-saga load` loads a running one (or,
//! with `--spawn`, one started in this process).

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use example_support::cli::{self, SpawnArgs};
use kafka_listener::KafkaConfig;
use order_saga::load::{self, LoadOptions};
use order_saga::{Service, ServiceConfig, DEFAULT_DATABASE_URL};

/// An order saga (order, payment, inventory, shipping, analytics) with
/// compensating transactions, on kafka-listener.
///
/// Kafka settings come from the environment: KAFKA_BOOTSTRAP_SERVERS (unset:
/// an embedded broker in this process, which then runs every service),
/// KAFKA_PROPERTY_*, KAFKA_PRODUCER_*, KAFKA_CONSUMER_*.
#[derive(Debug, Parser)]
#[command(name = "order-saga", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API and run the services' listeners (the default).
    Serve(ServeArgs),
    /// Send orders at a constant rate to a running service and report.
    Load(LoadArgs),
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    /// HTTP address to listen on.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:3000")]
    http_addr: SocketAddr,
    /// Database URL: sqlite://FILE?mode=rwc, sqlite::memory: or postgres://...
    /// (shared by the processes of one saga).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
    /// The services to run: all, or some of order, payment, inventory,
    /// shipping, analytics (repeat, or separate with commas).
    #[arg(
        long = "service",
        env = "SERVICES",
        value_delimiter = ',',
        default_value = "all"
    )]
    services: Vec<String>,
    /// The share of payments declined, 0 to 1.
    #[arg(long, env = "PAYMENT_FAILURE_RATE", default_value_t = 0.0)]
    payment_failure_rate: f64,
    /// The share of shipments that fail, 0 to 1.
    #[arg(long, env = "SHIPPING_FAILURE_RATE", default_value_t = 0.0)]
    shipping_failure_rate: f64,
    /// Which orders fail (with the rates): the same seed fails the same
    /// order ids.
    #[arg(long, env = "FAILURE_SEED", default_value_t = 0)]
    failure_seed: u64,
    /// The stock of each product (but ITEM-005, which has none) when the
    /// catalogue is first written.
    #[arg(long, env = "INITIAL_STOCK", default_value_t = 1_000)]
    initial_stock: i64,
    /// Records of one partition handled at once by each listener (one
    /// order's records one at a time).
    #[arg(long, env = "LISTENER_PARALLELISM", default_value_t = 16)]
    parallelism: usize,
    /// The operator console's token at /console (`name:secret` or a secret);
    /// unset: the console is read-only.
    #[arg(long, env = "CONSOLE_TOKEN", hide_env_values = true)]
    console_token: Option<String>,
}

#[derive(Debug, Clone, Args)]
struct LoadArgs {
    #[command(flatten)]
    opts: LoadOptions,
    #[command(flatten)]
    spawn: SpawnArgs,
}

/// `all`, or the services named.
fn services(names: &[String]) -> Result<Vec<Service>, String> {
    let mut out = Vec::new();
    for name in names {
        if name.eq_ignore_ascii_case("all") {
            return Ok(Service::ALL.to_vec());
        }
        let service = Service::from_str(name, true).map_err(|_| {
            format!("unknown service `{name}`: expected all, order, payment, inventory, shipping or analytics")
        })?;
        if !out.contains(&service) {
            out.push(service);
        }
    }
    Ok(out)
}

/// The environment variable `name` as a number, or `default` when unset
/// or not a number.
fn env_or(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

impl ServeArgs {
    fn config(&self) -> Result<ServiceConfig, String> {
        Ok(ServiceConfig {
            http_addr: self.http_addr,
            database_url: self.database_url.clone(),
            kafka: KafkaConfig::from_env().map_err(|e| e.to_string())?,
            services: services(&self.services)?,
            payment_failure_rate: self.payment_failure_rate,
            shipping_failure_rate: self.shipping_failure_rate,
            failure_seed: self.failure_seed,
            initial_stock: self.initial_stock,
            parallelism: self.parallelism,
            console_token: self
                .console_token
                .as_deref()
                .and_then(kafka_listener::console::ConsoleToken::parse),
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let parsed = Cli::parse();
    // Logs, and traces over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    let _telemetry = match order_saga::init_telemetry("order-saga") {
        Ok(guard) => guard,
        Err(e) => return cli::exit_code("order-saga", Err(e)),
    };
    let result = match parsed.command {
        None => serve(&parsed.serve).await,
        Some(Command::Serve(args)) => serve(&args).await,
        Some(Command::Load(args)) => run_load(args).await,
    };
    cli::exit_code("order-saga", result)
}

async fn serve(args: &ServeArgs) -> Result<(), String> {
    cli::serve(order_saga::start(args.config()?)).await
}

async fn run_load(args: LoadArgs) -> Result<(), String> {
    let mut opts = args.opts;
    if !(opts.rate.is_finite() && opts.rate > 0.0) {
        return Err(format!("--rate must be positive, got {}", opts.rate));
    }
    let start = |database_url| async move {
        let config = ServiceConfig {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url,
            kafka: KafkaConfig::from_env().map_err(|e| e.to_string())?,
            payment_failure_rate: env_or("PAYMENT_FAILURE_RATE", 0.0),
            shipping_failure_rate: env_or("SHIPPING_FAILURE_RATE", 0.0),
            // Enough stock for the run: the load measures the saga, not
            // a sold-out catalogue.
            initial_stock: 1_000_000,
            ..ServiceConfig::default()
        };
        order_saga::start(config).await.map_err(|e| e.to_string())
    };
    let report = cli::load("order-saga", args.spawn, start, |url| async move {
        if let Some(url) = url {
            opts.url = url;
        }
        println!(
            "load: {} orders at {} orders/s, target {}",
            opts.orders, opts.rate, opts.url
        );
        load::run(&opts).await
    })
    .await?;
    let report = report.map_err(|e| e.to_string())?;
    println!("{report}");
    if load::all_final(&report) {
        Ok(())
    } else {
        Err("some orders did not reach a final state".into())
    }
}
