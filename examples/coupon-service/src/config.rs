//! Settings of one coupon-service instance.

use std::net::SocketAddr;
use std::time::Duration;

use kafka_listener::console::ConsoleToken;
use kafka_listener::KafkaConfig;

/// Settings of one coupon-service instance.
///
/// [`Default`] gives the settings of `cargo run -p coupon-service` with no
/// environment: HTTP on `127.0.0.1:8080`, SQLite in `./coupon-service.db`,
/// the embedded broker, 3 consumers.
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
    /// How long `POST /coupons/{id}/issue` waits for the broker to
    /// acknowledge the request record before answering 503. Sets the
    /// producer's `message.timeout.ms` unless the producer properties
    /// already sets it.
    pub send_timeout: Duration,
    /// Consumers in the `coupon-issuer` group (at least 1; default 3, one per
    /// partition).
    pub concurrency: usize,
    /// Load shedding on the embedded broker: `POST /coupons/{id}/issue`
    /// answers 429 while the listener is more than this many records behind
    /// on a partition, so that the embedded broker's retention (5 MiB per
    /// partition) never drops accepted requests. `None` disables it. Ignored
    /// with an external broker, where this process cannot see the whole lag.
    pub max_lag: Option<i64>,
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
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            kafka: KafkaConfig::new(),
            send_timeout: Duration::from_secs(10),
            concurrency: 3,
            max_lag: Some(20_000),
            metrics: true,
            console_token: None,
        }
    }
}

/// The database used when `DATABASE_URL` is not set: a SQLite file in the
/// working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://coupon-service.db?mode=rwc";

impl ServiceConfig {
    /// The Kafka configuration with the service's defaults applied:
    /// `message.timeout.ms` from [`Self::send_timeout`], `linger.ms=1`, and
    /// on the embedded broker `session.timeout.ms=10000` (see below); a
    /// configured value wins.
    pub(crate) fn kafka_config(&self) -> KafkaConfig {
        let mut kafka = self.kafka.clone();
        // Measured on the embedded broker: when the 3 consumers of a fresh
        // group do not all make the first generation, the next generation
        // waited ~44 s, the session timeout (librdkafka default 45 s) of a
        // member that never rejoins. A 10 s session bounds that stall.
        if kafka.bootstrap().is_none() {
            kafka = kafka.consumer_default("session.timeout.ms", "10000");
        }
        // Each 202 waits for the broker's ack of its request record, so the
        // producer's `linger.ms` (librdkafka's default 5 ms) is in every
        // request's latency. Measured with the closed loop of 64
        // connections (docs/use-cases/coupon-issuance.md): 7,638 requests/s
        // accepted at 5 ms, 11,133 at 1 ms; batches still form under load.
        kafka = kafka.producer_default("linger.ms", "1");
        example_support::config::default_message_timeout(kafka, self.send_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_timeout_becomes_message_timeout() {
        let config = ServiceConfig {
            send_timeout: Duration::from_millis(2500),
            ..ServiceConfig::default()
        };
        assert_eq!(
            config.kafka_config().producer_value("message.timeout.ms"),
            Some("2500")
        );
        let mut explicit = config.clone();
        explicit.kafka = explicit
            .kafka
            .producer_property("message.timeout.ms", "900");
        assert_eq!(
            explicit.kafka_config().producer_value("message.timeout.ms"),
            Some("900")
        );
        assert_eq!(
            config.kafka_config().consumer_value("session.timeout.ms"),
            Some("10000")
        );
        assert_eq!(config.kafka_config().producer_value("linger.ms"), Some("1"));
        let mut lingering = config.clone();
        lingering.kafka = lingering.kafka.producer_property("linger.ms", "20");
        assert_eq!(
            lingering.kafka_config().producer_value("linger.ms"),
            Some("20")
        );
        let external = ServiceConfig {
            kafka: KafkaConfig::new().bootstrap_servers("broker:9092"),
            ..ServiceConfig::default()
        };
        assert_eq!(
            external.kafka_config().consumer_value("session.timeout.ms"),
            None
        );
    }
}
