//! Settings of one concert-queue instance.

use std::net::SocketAddr;
use std::time::Duration;

use kafka_listener::console::ConsoleToken;
use kafka_listener::{KafkaConfig, RateLimit};

/// Settings of one concert-queue instance.
///
/// [`Default`] gives the settings of `cargo run -p concert-queue` with no
/// environment: HTTP on `127.0.0.1:8081`, SQLite in `./concert-queue.db`,
/// the embedded broker, 100 admissions per 10 s, tokens active for 10 min.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Where the HTTP API listens. Port 0 picks a free port; read it back with
    /// [`crate::RunningService::http_addr`].
    pub http_addr: SocketAddr,
    /// sqlx database URL: `sqlite://path/to/file.db?mode=rwc` (created if
    /// missing), `sqlite::memory:`, or `postgres://user[:password]@host:port/db`.
    pub database_url: String,
    /// Kafka client settings (see [`KafkaConfig::from_env`]); with no
    /// bootstrap servers the embedded broker is started in-process.
    pub kafka: KafkaConfig,
    /// The admission rate: at most `permits` tokens per `per` (a sliding
    /// window enforced by the framework's listener rate limit). Default
    /// `100/10s` (`QUEUE_ADMIT_RATE`).
    pub admit_rate: RateLimit,
    /// How long an admitted token stays `active` before it is `expired`.
    /// Default 10 minutes (`QUEUE_ACTIVE_TTL`).
    pub active_ttl: Duration,
    /// How long `POST /queue/tokens` waits for the broker to acknowledge
    /// the token record before answering 503. Sets the producer's
    /// `message.timeout.ms` unless the producer properties already set
    /// it.
    pub send_timeout: Duration,
    /// Embedded broker only: `POST /queue/tokens` answers 429 while more
    /// than this many tokens wait, so that the embedded broker's retention
    /// (5 MiB per partition, ~30,000 token records) never drops a waiting
    /// token. `None` disables it. Ignored with an external broker.
    pub max_waiting: Option<i64>,
    /// Start admitting at once (`true`, the default). With `false` the queue
    /// fills but nobody is admitted until
    /// [`crate::RunningService::start_admission`] (a queue that opens at a
    /// set time).
    pub admit_on_start: bool,
    /// Create [`crate::TOPIC`] (one partition) at start if missing
    /// (`true`, the default). Set `false` when the topic is managed
    /// elsewhere, or on a broker that does not serve the CreateTopics admin
    /// API (librdkafka's mock cluster reached through its bootstrap address,
    /// as the restart tests do).
    pub declare_topic: bool,
    /// Serve `GET /metrics` in the Prometheus text format (installs a global
    /// `metrics` recorder once per process).
    pub metrics: bool,
    /// The token of the operator console at `/console`
    /// (`CONSOLE_TOKEN`: `name:secret` or a bare secret); `None` leaves the
    /// console read-only and refuses `/admin/*`.
    pub console_token: Option<ConsoleToken>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            kafka: KafkaConfig::new(),
            admit_rate: RateLimit::new(100, Duration::from_secs(10)),
            active_ttl: Duration::from_secs(600),
            send_timeout: Duration::from_secs(10),
            max_waiting: Some(20_000),
            admit_on_start: true,
            declare_topic: true,
            metrics: true,
            console_token: None,
        }
    }
}

/// The database used when `DATABASE_URL` is not set: a SQLite file in the
/// working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://concert-queue.db?mode=rwc";

/// The admission rate used when `QUEUE_ADMIT_RATE` is not set.
pub const DEFAULT_ADMIT_RATE: &str = "100/10s";

impl ServiceConfig {
    /// The Kafka configuration with the service's producer defaults applied
    /// (`message.timeout.ms` from [`Self::send_timeout`]).
    pub(crate) fn kafka_config(&self) -> KafkaConfig {
        example_support::config::default_message_timeout(self.kafka.clone(), self.send_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = ServiceConfig::default();
        assert_eq!(c.admit_rate, DEFAULT_ADMIT_RATE.parse().unwrap());
        assert_eq!(c.http_addr.port(), 8081);
        assert_eq!(
            c.kafka_config().producer_value("message.timeout.ms"),
            Some("10000")
        );
    }
}
