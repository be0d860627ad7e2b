//! order-saga: an order flow across five services (order, payment,
//! inventory, shipping, analytics) as a choreographed saga with
//! compensating transactions, on [`kafka_listener`].
//!
//! # How an order flows
//!
//! 1. `POST /api/orders` (order service) stores the order and its
//!    [`events::OrderCreated`] event in one database transaction (the
//!    event in the order service's outbox table) and answers 202; the
//!    outbox relay sends the event to `orders.created` after the commit.
//! 2. Payment captures the total, or declines it (`payments.completed` /
//!    `payments.failed`). Inventory takes the stock of a paid order
//!    (`inventory.reserved` / `inventory.failed`). Shipping ships a
//!    reserved order (`shipping.completed` / `shipping.failed`).
//! 3. A failure compensates in reverse: a shipping failure releases the
//!    stock (`inventory.released`), then the payment is refunded
//!    (`payments.refunded`); an inventory failure is refunded; a declined
//!    payment has nothing to compensate.
//! 4. The order service follows every step's event: the order's status and
//!    history, and its end (`orders.completed` / `orders.cancelled`), which
//!    the analytics service reads.
//!
//! Every record is keyed by the order id. Every step changes its service's
//! rows and writes the event it causes to its service's outbox in one
//! transaction, and is idempotent (a row per order and step, claimed by a
//! primary key or a conditional update), so a redelivery changes nothing.
//!
//! # Running it in-process
//!
//! ```no_run
//! # async fn demo() -> Result<(), order_saga::ServiceError> {
//! let config = order_saga::ServiceConfig {
//!     http_addr: "127.0.0.1:0".parse().unwrap(),
//!     database_url: "sqlite::memory:".into(),
//!     ..order_saga::ServiceConfig::default()
//! };
//! let service = order_saga::start(config).await?;
//! println!("serving on {}", service.base_url());
//! service.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod analytics;
mod config;
mod db;
pub mod events;
mod http;
mod inventory;
pub mod load;
mod order;
mod payment;
mod saga;
mod shipping;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use example_support::config::redact_database_url;
use example_support::http::{HttpListener, HttpServer};
use kafka_listener::after_commit::{RelayConfig, TransactionalEvents};
use kafka_listener::asyncapi::AsyncApi;
use kafka_listener::console::Console;
use kafka_listener::{KafkaApp, ListenerSpec, NewTopic, RunningApp};

pub(crate) use example_support::now_ms;
pub use example_support::telemetry::{init_telemetry, init_tracing};
pub use example_support::ServiceError;

pub use crate::analytics::Analytics;
pub use crate::config::{Service, ServiceConfig, DEFAULT_DATABASE_URL};
pub use crate::db::CATALOGUE;
pub use crate::http::{CreateOrder, HistoryStep, OrderAccepted, OrderLine, OrderView};
pub use crate::order::status;

use crate::db::Db;
use crate::saga::Saga;

/// A started order-saga process: its HTTP server, its Kafka app (the
/// listeners of its services, the template, the outbox relays and, without
/// `KAFKA_BOOTSTRAP_SERVERS`, the embedded broker) and its database pools.
///
/// Call [`RunningService::shutdown`] to stop it gracefully.
#[derive(Debug)]
pub struct RunningService {
    http: HttpServer,
    app: RunningApp,
    db: Db,
}

impl RunningService {
    /// The address the HTTP API is bound to.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.addr()
    }

    /// `http://<ip>:<port>` of the HTTP API, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.http.base_url()
    }

    /// The running Kafka app (its listener containers, its template, the
    /// embedded broker when one runs).
    pub fn app(&self) -> &RunningApp {
        &self.app
    }

    /// Stops gracefully: the HTTP server (up to 10 s for the requests in
    /// hand), the listeners (their finished offsets committed), the outbox
    /// relays (what they leave unsent is sent at the next start), the
    /// template flush, the database pools.
    pub async fn shutdown(self) {
        self.http.shutdown().await;
        self.app.shutdown().await;
        self.db.close().await;
        tracing::info!("order-saga stopped");
    }
}

impl example_support::cli::Service for RunningService {
    fn base_url(&self) -> String {
        self.http.base_url()
    }

    async fn shutdown(self) {
        RunningService::shutdown(self).await;
    }
}

/// The listener of `service`.
fn listener_of(service: Service, parallelism: usize) -> ListenerSpec {
    match service {
        Service::Order => order::spec(parallelism),
        Service::Payment => payment::spec(parallelism),
        Service::Inventory => inventory::spec(parallelism),
        Service::Shipping => shipping::spec(parallelism),
        Service::Analytics => analytics::spec(parallelism),
    }
}

/// Starts an order-saga process: connects to the database and applies the
/// migrations, writes the catalogue if missing, creates the outbox of each
/// service it runs (but analytics), starts the Kafka app (the embedded
/// broker when `config.kafka` has no bootstrap servers), declares every
/// topic ([`events::TOPICS`], [`events::PARTITIONS`] partitions each),
/// starts one outbox relay per outbox (which first sends what a previous
/// run left unsent) and one listener per service, and serves the HTTP API
/// of its services on `config.http_addr`, with the operator console at
/// `/console` (its AsyncAPI document at `/console/asyncapi.json`).
///
/// # Errors
/// [`ServiceError::Config`] for an invalid setting, or a part of the saga
/// on the embedded broker (the other services could not reach it);
/// [`ServiceError::Database`] / [`ServiceError::Migration`] for the
/// database; [`ServiceError::Http`] when the address cannot be bound;
/// [`ServiceError::Kafka`] when the broker, a topic or a listener cannot be
/// set up.
pub async fn start(config: ServiceConfig) -> Result<RunningService, ServiceError> {
    config.validate().map_err(ServiceError::Config)?;
    if config.kafka.bootstrap().is_none() && config.services.len() < Service::ALL.len() {
        return Err(ServiceError::Config(
            "running some services only needs KAFKA_BOOTSTRAP_SERVERS: the embedded broker \
             lives in one process, where the other services could not reach it"
                .into(),
        ));
    }
    let db = Db::connect(&config.database_url).await?;
    db.migrate().await?;
    db.seed_catalogue(config.initial_stock).await?;
    tracing::info!(backend = ?db.backend(), url = %redact_database_url(&config.database_url), "database ready");

    let http = HttpListener::bind(config.http_addr).await?;
    let mut outboxes = HashMap::new();
    for service in config.services.iter().copied() {
        if service == Service::Analytics {
            continue;
        }
        let events = TransactionalEvents::builder(db.writer().clone())
            .outbox_table(service.outbox_table())
            .build()
            .await
            .map_err(|e| match e {
                kafka_listener::after_commit::Error::Database(e) => ServiceError::Database(e),
                other => ServiceError::Config(other.to_string()),
            })?;
        outboxes.insert(service, events);
    }

    let mut builder = KafkaApp::builder()
        .config(config.kafka_config())
        .embedded()
        .without_discovered_listeners();
    for topic in events::TOPICS {
        builder = builder.topic(NewTopic::new(topic, events::PARTITIONS));
    }
    for service in config.services.iter().copied() {
        builder = builder.listener(listener_of(service, config.parallelism));
    }
    let mut app = builder.build().await?;
    let saga = Saga {
        products: Arc::new(db.products().await?),
        db: db.clone(),
        config: Arc::new(config.clone()),
        outboxes: Arc::new(outboxes),
    };
    for (service, events) in saga.outboxes.iter() {
        let relay = events.start_relay(app.template(), RelayConfig::default());
        let name = format!("{} outbox relay", service.name());
        app = app.on_shutdown(&name, move || relay.shutdown());
    }
    // What the app receives and sends, for the console's /asyncapi.json:
    // the listeners and the outbox events are found in the app.
    let asyncapi = AsyncApi::new("order-saga", env!("CARGO_PKG_VERSION"))
        .description(
            "An order saga: order, payment, inventory, shipping and analytics services \
             choreographed by events keyed by order id, with compensating transactions.",
        )
        .document(&app);
    let app = app.state(saga.clone()).start().await?;
    // The operator console at /console (no dead-letter store: the saga's
    // steps record their failures as events).
    let mut console = Console::builder(app.registry().clone())
        .topics(&config.kafka_config(), app.bootstrap_servers())
        .asyncapi(asyncapi);
    if let Some(token) = config.console_token.clone() {
        console = console.token(token);
    }
    let http = http.serve(http::router(saga, console.build()));
    let names: Vec<&str> = config.services.iter().map(|s| s.name()).collect();
    tracing::info!(
        "order-saga ({}) listening on {} (bootstrap.servers={})",
        names.join(", "),
        http.base_url(),
        app.bootstrap_servers()
    );
    Ok(RunningService { http, app, db })
}
