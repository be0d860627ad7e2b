//! `concert-queue [serve]` runs the service; `concert-queue load` loads a
//! running one (or, with `--spawn`, one started in this process).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use concert_queue::load::{self, LoadOptions};
use concert_queue::{ServiceConfig, DEFAULT_ADMIT_RATE, DEFAULT_DATABASE_URL};
use example_support::cli::{self, SpawnArgs};
use kafka_listener::{KafkaConfig, RateLimit};

/// A concert's waiting queue on kafka-listener: every user admitted in
/// global arrival order, M users per N seconds.
///
/// Kafka settings come from the environment: KAFKA_BOOTSTRAP_SERVERS (unset:
/// an embedded broker in this process), KAFKA_PROPERTY_*, KAFKA_PRODUCER_*,
/// KAFKA_CONSUMER_*.
#[derive(Debug, Parser)]
#[command(
    name = "concert-queue",
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
    /// Serve the HTTP API and run the admission listener (the default).
    Serve(ServeArgs),
    /// Enqueue users into a running service and report order and rate.
    Load(LoadArgs),
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    /// HTTP address to listen on.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8081")]
    http_addr: SocketAddr,
    /// Database URL: sqlite://FILE?mode=rwc, sqlite::memory: or postgres://...
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
    /// Admission rate, PERMITS/DURATION: at most PERMITS tokens in any
    /// DURATION (`100/10s`, `5/1s`, `1000/1m`).
    #[arg(long, env = "QUEUE_ADMIT_RATE", default_value = DEFAULT_ADMIT_RATE)]
    admit_rate: RateLimit,
    /// How long an admitted token stays active (`10m`, `90s`).
    #[arg(long, env = "QUEUE_ACTIVE_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    active_ttl: Duration,
    /// Milliseconds to wait for the broker's ack before answering 503.
    #[arg(long, env = "SEND_TIMEOUT_MS", default_value_t = 10_000)]
    send_timeout_ms: u64,
    /// Embedded broker only: answer 429 past this many waiting tokens
    /// (0 disables).
    #[arg(long, env = "QUEUE_MAX_WAITING", default_value_t = 20_000)]
    max_waiting: i64,
    /// Do not admit until `POST /admin/admission/start` (fill the queue
    /// first: the doors open later).
    #[arg(long)]
    paused: bool,
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
    /// With --spawn: the admission rate of the spawned service.
    #[arg(long, env = "QUEUE_ADMIT_RATE", default_value = DEFAULT_ADMIT_RATE)]
    admit_rate: RateLimit,
}

impl ServeArgs {
    fn config(&self) -> Result<ServiceConfig, String> {
        let kafka = KafkaConfig::from_env().map_err(|e| e.to_string())?;
        Ok(ServiceConfig {
            http_addr: self.http_addr,
            database_url: self.database_url.clone(),
            kafka,
            admit_rate: self.admit_rate,
            active_ttl: self.active_ttl,
            send_timeout: Duration::from_millis(self.send_timeout_ms.max(1)),
            max_waiting: (self.max_waiting > 0).then_some(self.max_waiting),
            admit_on_start: !self.paused,
            declare_topic: true,
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
    let _telemetry = match concert_queue::init_telemetry("concert-queue") {
        Ok(guard) => guard,
        Err(e) => return cli::exit_code("concert-queue", Err(e)),
    };
    let result = match parsed.command {
        None => serve(&parsed.serve).await,
        Some(Command::Serve(args)) => serve(&args).await,
        Some(Command::Load(args)) => run_load(args).await,
    };
    cli::exit_code("concert-queue", result)
}

async fn serve(args: &ServeArgs) -> Result<(), String> {
    cli::serve(concert_queue::start(args.config()?)).await
}

async fn run_load(args: LoadArgs) -> Result<(), String> {
    let mut opts = args.opts;
    let admit_rate = args.admit_rate;
    let start = |database_url| async move {
        let config = ServiceConfig {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url,
            kafka: KafkaConfig::from_env().map_err(|e| e.to_string())?,
            admit_rate,
            ..ServiceConfig::default()
        };
        concert_queue::start(config)
            .await
            .map_err(|e| e.to_string())
    };
    let report = cli::load("concert-queue", args.spawn, start, |url| async move {
        if let Some(url) = url {
            opts.url = url;
        }
        println!(
            "load: {} users, concurrency {}, target {}",
            opts.users, opts.concurrency, opts.url
        );
        load::run(&opts).await
    })
    .await?;
    let report = report.map_err(|e| e.to_string())?;
    println!("{report}");
    if report.order_violations == 0 {
        Ok(())
    } else {
        Err("tokens were admitted out of arrival order".into())
    }
}
