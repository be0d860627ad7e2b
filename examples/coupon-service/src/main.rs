//! `coupon-service [serve]` runs the service; `coupon-service load` loads a
//! running one (or, with `--spawn`, one started in this process).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use coupon_service::load::{self, LoadOptions};
use coupon_service::{ServiceConfig, DEFAULT_DATABASE_URL};
use example_support::cli::{self, SpawnArgs};
use kafka_listener::KafkaConfig;

/// First-come-first-served coupon issuance on kafka-listener.
///
/// Kafka settings come from the environment: KAFKA_BOOTSTRAP_SERVERS (unset:
/// an embedded broker in this process), KAFKA_PROPERTY_*, KAFKA_PRODUCER_*,
/// KAFKA_CONSUMER_*.
#[derive(Debug, Parser)]
#[command(
    name = "coupon-service",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API and run the listener (the default).
    Serve(ServeArgs),
    /// Fire concurrent issue requests at a running service and report.
    Load(LoadArgs),
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    /// HTTP address to listen on.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
    /// Database URL: sqlite://FILE?mode=rwc, sqlite::memory: or postgres://...
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
    /// Milliseconds to wait for the broker's ack before answering 503.
    #[arg(long, env = "SEND_TIMEOUT_MS", default_value_t = 10_000)]
    send_timeout_ms: u64,
    /// Consumers in the coupon-issuer group.
    #[arg(long, env = "LISTENER_CONCURRENCY", default_value_t = 3)]
    concurrency: usize,
    /// Embedded broker only: answer 429 past this many records of listener
    /// lag on a partition (0 disables).
    #[arg(long, env = "MAX_LAG", default_value_t = 20_000)]
    max_lag: i64,
    /// Do not serve GET /metrics.
    #[arg(long)]
    no_metrics: bool,
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

impl ServeArgs {
    fn config(&self) -> Result<ServiceConfig, String> {
        let kafka = KafkaConfig::from_env().map_err(|e| e.to_string())?;
        Ok(ServiceConfig {
            http_addr: self.http_addr,
            database_url: self.database_url.clone(),
            kafka,
            send_timeout: Duration::from_millis(self.send_timeout_ms.max(1)),
            concurrency: self.concurrency,
            max_lag: (self.max_lag > 0).then_some(self.max_lag),
            metrics: !self.no_metrics,
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
    let _telemetry = match coupon_service::init_telemetry("coupon-service") {
        Ok(guard) => guard,
        Err(e) => return cli::exit_code("coupon-service", Err(e)),
    };
    let result = match parsed.command {
        None => serve(&parsed.serve).await,
        Some(Command::Serve(args)) => serve(&args).await,
        Some(Command::Load(args)) => run_load(args).await,
    };
    cli::exit_code("coupon-service", result)
}

async fn serve(args: &ServeArgs) -> Result<(), String> {
    cli::serve(coupon_service::start(args.config()?)).await
}

async fn run_load(args: LoadArgs) -> Result<(), String> {
    let mut opts = args.opts;
    let start = |database_url| async move {
        let config = ServiceConfig {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url,
            kafka: KafkaConfig::from_env().map_err(|e| e.to_string())?,
            ..ServiceConfig::default()
        };
        coupon_service::start(config)
            .await
            .map_err(|e| e.to_string())
    };
    let report = cli::load("coupon-service", args.spawn, start, |url| async move {
        if let Some(url) = url {
            opts.url = url;
        }
        if let (Some(rate), Some(duration)) = (opts.rate, opts.duration) {
            println!(
                "load: open loop, {rate} requests/s for {duration} s over {} coupons x stock {}, target {}",
                opts.coupons, opts.stock, opts.url
            );
            let report = load::run_open(&opts).await?;
            return Ok((report.to_string(), report.over_issued.is_empty()));
        }
        println!(
            "load: {} coupons x stock {}, {} users each requesting every coupon ({} requests), concurrency {}, target {}",
            opts.coupons,
            opts.stock,
            opts.users,
            opts.users * opts.coupons,
            opts.concurrency,
            opts.url
        );
        let report = load::run(&opts).await?;
        Ok((report.to_string(), report.over_issued.is_empty()))
    })
    .await?;
    let (report, within_stock) = report.map_err(|e: load::LoadError| e.to_string())?;
    println!("{report}");
    if within_stock {
        Ok(())
    } else {
        Err("some coupon was issued past its stock".into())
    }
}
