//! Settings of one order-saga process: which services it runs, where its
//! database and broker are, and the failures it injects.

use std::net::SocketAddr;
use std::time::Duration;

use kafka_listener::console::ConsoleToken;
use kafka_listener::KafkaConfig;

/// One service of the saga. Each is a listener with a consumer group of
/// its own (`order-saga.<name>`) and, except analytics, an outbox of its
/// own (`order_saga_<name>_outbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Service {
    /// The HTTP API (`POST /api/orders`, `GET /api/orders/{id}`) and the
    /// order's status and history, from every step's events.
    Order,
    /// Captures the amount (`orders.created`); refunds it
    /// (`inventory.failed`, `inventory.released`).
    Payment,
    /// Takes the stock (`payments.completed`); gives it back
    /// (`shipping.failed`).
    Inventory,
    /// Ships (`inventory.reserved`).
    Shipping,
    /// `GET /api/analytics`, from `orders.created`, `orders.completed` and
    /// `orders.cancelled`.
    Analytics,
}

impl Service {
    /// Every service, in saga order.
    pub const ALL: [Service; 5] = [
        Service::Order,
        Service::Payment,
        Service::Inventory,
        Service::Shipping,
        Service::Analytics,
    ];

    /// `order`, `payment`, `inventory`, `shipping` or `analytics`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Order => "order",
            Service::Payment => "payment",
            Service::Inventory => "inventory",
            Service::Shipping => "shipping",
            Service::Analytics => "analytics",
        }
    }

    /// Its listener's id and consumer group: `order-saga.<name>`.
    pub fn group_id(self) -> String {
        format!("order-saga.{}", self.name())
    }

    /// The topics its listener reads.
    pub fn topics(self) -> &'static [&'static str] {
        use crate::events::*;
        match self {
            // Every step's event: the topics after `orders.created`, up
            // to the final ones.
            Service::Order => &TOPICS[1..9],
            Service::Payment => &[ORDERS_CREATED, INVENTORY_FAILED, INVENTORY_RELEASED],
            Service::Inventory => &[PAYMENTS_COMPLETED, SHIPPING_FAILED],
            Service::Shipping => &[INVENTORY_RESERVED],
            Service::Analytics => &[ORDERS_CREATED, ORDERS_COMPLETED, ORDERS_CANCELLED],
        }
    }

    /// Its outbox table: `order_saga_<name>_outbox`.
    pub fn outbox_table(self) -> String {
        format!("order_saga_{}_outbox", self.name())
    }
}

/// Settings of one order-saga process.
///
/// [`Default`] gives the settings of `cargo run -p order-saga` with no
/// environment: every service, HTTP on `127.0.0.1:3000`, SQLite in
/// `./order-saga.db`, the embedded broker, no injected failures.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Where the HTTP API listens (port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// sqlx database URL: `sqlite://FILE?mode=rwc`, `sqlite::memory:` or
    /// `postgres://...`. Processes of one saga share it.
    pub database_url: String,
    /// Kafka client settings; with no bootstrap servers the embedded broker
    /// starts in this process (then every service must run here).
    pub kafka: KafkaConfig,
    /// The services this process runs (at least one).
    pub services: Vec<Service>,
    /// The share of payments declined, 0 to 1 (`PAYMENT_FAILURE_RATE`).
    pub payment_failure_rate: f64,
    /// The share of shipments that fail, 0 to 1 (`SHIPPING_FAILURE_RATE`).
    pub shipping_failure_rate: f64,
    /// Which orders fail: an order fails a step when the hash of the seed,
    /// the step and its id falls under the rate, so a run is reproducible
    /// for given order ids (`FAILURE_SEED`).
    pub failure_seed: u64,
    /// The stock each product of the catalogue starts with, except
    /// `ITEM-005`, which has none (`INITIAL_STOCK`); applied when the
    /// catalogue is first written.
    pub initial_stock: i64,
    /// Records of one partition handled at once (`ordering = "key"`: one
    /// order's records one at a time).
    pub parallelism: usize,
    /// The operator console's token (`CONSOLE_TOKEN`); `None` leaves the
    /// console at `/console` read-only.
    pub console_token: Option<ConsoleToken>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            kafka: KafkaConfig::new(),
            services: Service::ALL.to_vec(),
            payment_failure_rate: 0.0,
            shipping_failure_rate: 0.0,
            failure_seed: 0,
            initial_stock: 1_000,
            parallelism: 16,
            console_token: None,
        }
    }
}

/// The database used when `DATABASE_URL` is not set: a SQLite file in the
/// working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://order-saga.db?mode=rwc";

impl ServiceConfig {
    /// Whether this process runs `service`.
    pub fn runs(&self, service: Service) -> bool {
        self.services.contains(&service)
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// The reason, for a rate outside 0 to 1, no service, a negative
    /// initial stock or a parallelism of 0.
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("PAYMENT_FAILURE_RATE", self.payment_failure_rate),
            ("SHIPPING_FAILURE_RATE", self.shipping_failure_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        if self.services.is_empty() {
            return Err("no service to run".into());
        }
        if self.initial_stock < 0 {
            return Err(format!(
                "INITIAL_STOCK must be 0 or more, got {}",
                self.initial_stock
            ));
        }
        if self.parallelism == 0 {
            return Err("the parallelism must be at least 1".into());
        }
        Ok(())
    }

    /// The Kafka configuration with the app's defaults (a configured value
    /// wins): `linger.ms=1` (every step waits for the relay's send, so the
    /// producer's linger is in every order's latency) and, on the embedded
    /// broker, `session.timeout.ms=10000` (see coupon-service: a member
    /// that missed a fresh group's first generation stalls the next one for
    /// the session timeout).
    pub(crate) fn kafka_config(&self) -> KafkaConfig {
        let mut kafka = self.kafka.clone();
        if kafka.bootstrap().is_none() {
            kafka = kafka.consumer_default("session.timeout.ms", "10000");
        }
        kafka = kafka.producer_default("linger.ms", "1");
        example_support::config::default_message_timeout(kafka, Duration::from_secs(30))
    }

    /// Whether `order_id` fails `step` at `rate` (see [`Self::failure_seed`]).
    pub(crate) fn fails(&self, step: &str, order_id: &str, rate: f64) -> bool {
        rate > 0.0 && unit_hash(self.failure_seed, step, order_id) < rate
    }
}

/// FNV-1a (64 bits) of the seed, the step and the order id, mixed by
/// MurmurHash3's 64-bit finalizer (FNV-1a alone leaves the high bits of
/// ids that differ in their last characters close together: 24 % of
/// `order-0` to `order-9999` fell under 0.2), mapped to `[0, 1)`: stable
/// across runs, platforms and Rust versions (std's `DefaultHasher`
/// promises none of these).
fn unit_hash(seed: u64, step: &str, order_id: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = seed
        .to_le_bytes()
        .into_iter()
        .chain(step.bytes())
        .chain([0])
        .chain(order_id.bytes());
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_follow_the_rate_and_are_reproducible() {
        let config = ServiceConfig::default();
        let ids: Vec<String> = (0..10_000).map(|i| format!("order-{i}")).collect();
        let failed = ids
            .iter()
            .filter(|id| config.fails("PAYMENT", id, 0.2))
            .count();
        assert!((1_800..2_200).contains(&failed), "{failed}");
        assert!(ids.iter().all(|id| !config.fails("PAYMENT", id, 0.0)));
        assert!(ids.iter().all(|id| config.fails("PAYMENT", id, 1.0)));
        let again = ids
            .iter()
            .filter(|id| config.fails("PAYMENT", id, 0.2))
            .count();
        assert_eq!(failed, again);
        let other_seed = ServiceConfig {
            failure_seed: 7,
            ..ServiceConfig::default()
        };
        let moved = ids
            .iter()
            .filter(|id| config.fails("PAYMENT", id, 0.2) != other_seed.fails("PAYMENT", id, 0.2))
            .count();
        assert!(moved > 1_000, "another seed fails other orders: {moved}");
    }

    #[test]
    fn invalid_settings_are_refused() {
        let bad_rate = ServiceConfig {
            shipping_failure_rate: 1.5,
            ..ServiceConfig::default()
        };
        assert!(bad_rate
            .validate()
            .unwrap_err()
            .contains("SHIPPING_FAILURE_RATE"));
        let none = ServiceConfig {
            services: Vec::new(),
            ..ServiceConfig::default()
        };
        assert!(none.validate().is_err());
        assert!(ServiceConfig::default().validate().is_ok());
        assert_eq!(Service::Payment.group_id(), "order-saga.payment");
        assert_eq!(
            ServiceConfig::default()
                .kafka_config()
                .producer_value("linger.ms"),
            Some("1")
        );
    }
}
