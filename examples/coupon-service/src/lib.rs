//! coupon-service: first-come-first-served coupon issuance on
//! [`kafka_listener`], the reference app of the framework.
//!
//! # How a request flows
//!
//! 1. `POST /coupons/{id}/issue {"user_id"}` checks the coupon (known in
//!    memory once seen), records the request as `pending` (one statement
//!    with the other handlers' rows; `pending.rs`), sends an
//!    [`IssueRequested`] record (Avro, schema
//!    in the Schema Registry) to [`TOPIC`] keyed by the coupon id, and
//!    answers 202 only once the broker
//!    acknowledged that record (503 with a JSON reason when it does not).
//! 2. The key puts every request for one coupon on one partition, so one
//!    consumer of the `coupon-issuer` group sees them in request order: no
//!    lock is needed. Different coupons go in parallel.
//! 3. The listener takes a batch of one partition's records and decides it
//!    in one database transaction, in offset order: per coupon, it reads
//!    `stock` and `issued` once, decides in memory, and writes `UPDATE
//!    coupons SET issued = issued + k WHERE coupon_id = $1 AND issued =
//!    <what it read>`; an insert into `coupon_issues`, whose primary key
//!    `(coupon_id, user_id)` makes a redelivered or repeated request change
//!    nothing. A request that finds no stock is recorded as `sold_out`.
//!    An issue also writes a [`CouponIssued`] event to the outbox table in
//!    the same transaction; after the commit the relay sends it to
//!    [`ISSUED_TOPIC`] (key = coupon id, header `kafka_listener-event-id`)
//!    and marks it sent. What a crash leaves unsent is sent at the next
//!    start, so every coupon in the database has its event (at least once).
//! 4. `GET /coupons/{id}/issues/{user_id}` answers `pending`, `issued`,
//!    `sold_out` or `failed` (a request that failed for good: it went to
//!    `coupon.issue.requested-dlt`, is kept in the database by the
//!    framework's dead-letter store and can be replayed by an admin).
//!
//! # Running it in-process
//!
//! ```no_run
//! # async fn demo() -> Result<(), coupon_service::ServiceError> {
//! let mut config = coupon_service::ServiceConfig::default();
//! config.http_addr = "127.0.0.1:0".parse().unwrap();
//! config.database_url = "sqlite::memory:".into();
//! let service = coupon_service::start(config).await?;
//! println!("serving on {}", service.base_url());
//! service.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod config;
mod db;
mod http;
mod lag;
mod listener;
pub mod load;
mod pending;

use std::net::SocketAddr;
use std::sync::Arc;

use example_support::config::redact_database_url;
use example_support::http::{HttpListener, HttpServer};
use example_support::telemetry;
use kafka_listener::after_commit::{RelayConfig, TransactionalEvents};
use kafka_listener::asyncapi::AsyncApi;
use kafka_listener::console::Console;
use kafka_listener::dlq::{DeadLetterStore, StoreError};
use kafka_listener::schema::MessageSchema;
use kafka_listener::{KafkaApp, NewTopic, RunningApp};

pub(crate) use example_support::now_ms;
pub use example_support::telemetry::{init_telemetry, init_tracing};
pub use example_support::ServiceError;

pub use crate::config::{ServiceConfig, DEFAULT_DATABASE_URL};
pub use crate::listener::{
    CouponIssued, IssueRequested, DEAD_LETTERS_ID, DLT, GROUP_ID, ISSUED_PARTITIONS, ISSUED_TOPIC,
    LISTENER_ID, PARTITIONS, TOPIC,
};

use crate::db::Db;
use crate::lag::LagTracker;
use crate::listener::AppState;

/// A started coupon-service: the HTTP server, the Kafka app (listener
/// containers, template and, without `KAFKA_BOOTSTRAP_SERVERS`, the
/// embedded broker) and the database pools.
///
/// Call [`RunningService::shutdown`] to stop it gracefully; dropping it
/// leaves the consumer threads running until the process exits.
#[derive(Debug)]
pub struct RunningService {
    http: HttpServer,
    app: RunningApp,
    db: Db,
}

impl RunningService {
    /// The address the HTTP API is bound to (the real port when the
    /// configuration asked for port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http.addr()
    }

    /// `http://<ip>:<port>` of the HTTP API, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.http.base_url()
    }

    /// The running Kafka app: its listener registry
    /// (`app().container("coupon-issuer")`), its template (to send records
    /// directly, as tests do to simulate a redelivery) and the embedded
    /// broker, when one runs.
    pub fn app(&self) -> &RunningApp {
        &self.app
    }

    /// Stops gracefully: the HTTP server stops accepting and finishes the
    /// requests in hand (up to 10 s), the listener drains and commits its
    /// finished offsets, the outbox relay finishes its batch in progress
    /// (what it leaves unsent is sent at the next start), the template is
    /// flushed, and the database pools are closed.
    pub async fn shutdown(self) {
        self.http.shutdown().await;
        // Listeners, then the outbox relay, then the template flush: the
        // framework's order (`KafkaApp::on_shutdown`).
        self.app.shutdown().await;
        self.db.close().await;
        tracing::info!("coupon-service stopped");
    }
}

/// Starts coupon-service: connects to the database and applies its
/// migrations (`migrations/*.sql`, embedded at compile time), starts the Kafka app (the embedded broker when
/// `config.kafka` has no bootstrap servers), declares [`TOPIC`] with
/// [`PARTITIONS`] partitions and [`ISSUED_TOPIC`] with
/// [`ISSUED_PARTITIONS`], starts the outbox relay of [`CouponIssued`]
/// (which first sends what a previous run left unsent), starts the
/// `coupon-issuer` listener and serves the HTTP API on `config.http_addr`.
///
/// # Errors
/// [`ServiceError::Database`] when the database cannot be reached or a
/// framework table cannot be created, [`ServiceError::Migration`] when a
/// migration of `migrations/` fails, [`ServiceError::Http`] when the address cannot
/// be bound, [`ServiceError::Kafka`] when the broker, the topic or the
/// listener cannot be set up, [`ServiceError::Config`] for an invalid
/// setting.
pub async fn start(config: ServiceConfig) -> Result<RunningService, ServiceError> {
    if config.concurrency == 0 {
        return Err(ServiceError::Config(
            "the listener concurrency must be at least 1".into(),
        ));
    }
    let metrics = if config.metrics {
        telemetry::prometheus()
    } else {
        None
    };
    let db = Db::connect(&config.database_url).await?;
    db.migrate().await?;
    let dead_letters = DeadLetterStore::new(db.pool()).await.map_err(|e| match e {
        StoreError::Database(e) => ServiceError::Database(e),
        other => ServiceError::Config(other.to_string()),
    })?;
    tracing::info!(backend = ?db.backend(), url = %redact_database_url(&config.database_url), "database ready");

    let http = HttpListener::bind(config.http_addr).await?;

    // The outbox of `coupon.issued`, over the writer pool (on SQLite, one
    // connection: the relay's writes queue behind the decisions instead of
    // failing with SQLITE_BUSY). Creates `kafka_outbox` if missing.
    let events = TransactionalEvents::builder(db.pool())
        .build()
        .await
        .map_err(|e| match e {
            kafka_listener::after_commit::Error::Database(e) => ServiceError::Database(e),
            other => ServiceError::Config(other.to_string()),
        })?;

    let kafka = config.kafka_config();
    let concurrency = config.concurrency;
    let app = KafkaApp::builder()
        .config(kafka)
        .embedded()
        .topic(NewTopic::new(TOPIC, PARTITIONS))
        .topic(NewTopic::new(ISSUED_TOPIC, ISSUED_PARTITIONS))
        .only_listeners([LISTENER_ID])
        .customize_listener(LISTENER_ID, move |l| l.concurrency(concurrency))
        .listener(listener::dead_letters_spec())
        .build()
        .await?;
    // What the app receives and sends, for the console's /asyncapi.json:
    // the listeners and the outbox event are found in the app; the HTTP
    // handler's sends are named here.
    let asyncapi = AsyncApi::new("coupon-service", env!("CARGO_PKG_VERSION"))
        .description(
            "First-come-first-served coupons: issue requests keyed by coupon id, decided in \
             order per coupon; issued coupons published through the transactional outbox.",
        )
        .sends(TOPIC, MessageSchema::avro::<listener::IssueRequested>())
        .document(&app);
    // The lag bound protects the embedded broker's retention (5 MiB per
    // partition) and is only meaningful when this process is the only
    // producer and consumer, which is the case on the embedded broker.
    let max_lag = if app.embedded_broker().is_some() {
        config.max_lag
    } else {
        None
    };
    // The codec over the app's Schema Registry (the embedded one, or
    // `SCHEMA_REGISTRY_URL`): the requests and the `coupon.issued` events are
    // Avro.
    let Some(avro) = app.avro_codec() else {
        return Err(ServiceError::Config(
            "no Schema Registry: set SCHEMA_REGISTRY_URL (an embedded registry starts only \
             beside the embedded broker, since the schema ids it gives out die with the process)"
                .into(),
        ));
    };
    let state = AppState {
        avro,
        db: db.clone(),
        pending: pending::PendingWriter::start(db.clone()),
        lag: Arc::new(LagTracker::new(max_lag)),
        template: app.template(),
        send_timeout: config.send_timeout,
        dead_letters,
        events: events.clone(),
    };
    // First sends what a previous run committed and left unsent. Stopped
    // after the listeners (no new outbox rows) and before the template is
    // flushed.
    let relay = events.start_relay(app.template(), RelayConfig::default());
    let app = app
        .state(state.clone())
        .on_shutdown("outbox relay", move || relay.shutdown())
        .start()
        .await?;

    // The operator console at /console; its token also guards /admin/*.
    let mut console = Console::builder(app.registry().clone())
        .dead_letters(state.dead_letters.clone(), app.template())
        .avro(state.avro.clone())
        .topics(&config.kafka_config(), app.bootstrap_servers())
        .asyncapi(asyncapi);
    if let Some(token) = config.console_token.clone() {
        console = console.token(token);
    }
    let http = http.serve(http::router(state, metrics, console.build()));
    tracing::info!(
        "coupon-service listening on {} (bootstrap.servers={})",
        http.base_url(),
        app.bootstrap_servers()
    );
    Ok(RunningService { http, app, db })
}

impl example_support::cli::Service for RunningService {
    fn base_url(&self) -> String {
        self.http.base_url()
    }

    async fn shutdown(self) {
        RunningService::shutdown(self).await;
    }
}
