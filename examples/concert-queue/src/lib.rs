//! concert-queue: a concert's waiting queue on [`kafka_listener`], the
//! second reference app of the framework. Every user is admitted in global
//! arrival order, M users per N seconds.
//!
//! # How a token flows
//!
//! 1. `POST /queue/tokens {"user_id"}` stores a `waiting` token, sends a
//!    [`TokenQueued`] record to partition 0 of [`TOPIC`] (one partition: one
//!    global order), stores the offset the broker gave it, and answers 202
//!    with the token id and its position only once the broker acknowledged
//!    the record (503 with a JSON reason when it does not).
//! 2. The `concert-admitter` listener, one consumer (concurrency 1), reads
//!    the partition in offset order. The framework's rate limit
//!    ([`kafka_listener::RateLimit`], `QUEUE_ADMIT_RATE`, default
//!    `100/10s`) hands it at most M records per N seconds; while the budget
//!    is spent the partition pauses and the consumer keeps polling, so it
//!    stays in its group.
//! 3. Admission is one conditional update (`status = 'waiting'` ->
//!    `'active'`, `admitted_at`, `expires_at`, the next admission number):
//!    a redelivered record admits nobody twice. Active tokens expire after
//!    [`ServiceConfig::active_ttl`].
//! 4. `GET /queue/tokens/{id}` answers `waiting` with `position` = the
//!    token's offset minus the listener's cursor (its finished offset, or the
//!    group's committed offset before it finished anything): no table is
//!    scanned. Then `active` with `admitted_at`, then `expired`.
//!
//! # Running it in-process
//!
//! ```no_run
//! # async fn demo() -> Result<(), concert_queue::ServiceError> {
//! let mut config = concert_queue::ServiceConfig::default();
//! config.http_addr = "127.0.0.1:0".parse().unwrap();
//! config.database_url = "sqlite::memory:".into();
//! config.admit_rate = "50/1s".parse()?;
//! let service = concert_queue::start(config).await?;
//! println!("serving on {}", service.base_url());
//! service.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod config;
mod db;
mod http;
mod listener;
pub mod load;
mod position;

use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use example_support::config::redact_database_url;
use example_support::http::{HttpListener, HttpServer};
use example_support::telemetry;
use kafka_listener::asyncapi::AsyncApi;
use kafka_listener::console::Console;
use kafka_listener::schema::MessageSchema;
use kafka_listener::{KafkaApp, NewTopic, RunningApp};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub(crate) use example_support::now_ms;
pub use example_support::telemetry::{init_telemetry, init_tracing};
pub use example_support::ServiceError;

pub use crate::config::{ServiceConfig, DEFAULT_ADMIT_RATE, DEFAULT_DATABASE_URL};
pub use crate::listener::{TokenQueued, GROUP_ID, LISTENER_ID, PARTITION, TOPIC};

use crate::db::Db;
use crate::listener::AppState;
use crate::position::Cursor;

/// A started concert-queue: the HTTP server, the Kafka app (the
/// `concert-admitter` listener, the template and, without
/// `KAFKA_BOOTSTRAP_SERVERS`, the embedded broker), the expiry sweeper and
/// the database pools.
///
/// Call [`RunningService::shutdown`] to stop it gracefully; dropping it
/// leaves the consumer thread running until the process exits.
#[derive(Debug)]
pub struct RunningService {
    http: HttpServer,
    app: RunningApp,
    db: Db,
    sweeper_stop: watch::Sender<bool>,
    sweeper: JoinHandle<()>,
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
    /// (`app().container(LISTENER_ID)`), its template and the embedded
    /// broker, when one runs.
    pub fn app(&self) -> &RunningApp {
        &self.app
    }

    /// Starts admitting, when the service was started with
    /// [`ServiceConfig::admit_on_start`] `false` (does nothing if the
    /// listener runs already).
    ///
    /// # Errors
    /// [`ServiceError::Kafka`] when the consumer cannot be created.
    pub fn start_admission(&self) -> Result<(), ServiceError> {
        Ok(self.app.registry().start(LISTENER_ID)?)
    }

    /// Stops gracefully: the HTTP server stops accepting and finishes the
    /// requests in hand (up to 10 s), the listener finishes the token in
    /// hand and commits its finished offset, the template is flushed, and
    /// the database pools are closed.
    pub async fn shutdown(self) {
        self.http.shutdown().await;
        let _ = self.sweeper_stop.send(true);
        let _ = self.sweeper.await;
        self.app.shutdown().await;
        self.db.close().await;
        tracing::info!("concert-queue stopped");
    }
}

/// Starts concert-queue: connects to the database and applies its
/// migrations (`migrations/*.sql`, embedded at compile time), starts the Kafka app (the embedded broker when `config.kafka`
/// has no bootstrap servers), declares [`TOPIC`] with one partition, starts
/// the `concert-admitter` listener (unless
/// [`ServiceConfig::admit_on_start`] is `false`), the expiry sweeper (once a
/// second) and serves the HTTP API on `config.http_addr`.
///
/// # Errors
/// [`ServiceError::Database`] when the database cannot be reached,
/// [`ServiceError::Migration`] when a migration of `migrations/` fails,
/// [`ServiceError::Http`] when the address cannot
/// be bound, [`ServiceError::Kafka`] when the broker, the topic or the
/// listener cannot be set up.
pub async fn start(config: ServiceConfig) -> Result<RunningService, ServiceError> {
    let metrics = if config.metrics {
        telemetry::prometheus()
    } else {
        None
    };
    let db = Db::connect(&config.database_url).await?;
    db.migrate().await?;
    tracing::info!(backend = ?db.backend(), url = %redact_database_url(&config.database_url), "database ready");

    let http = HttpListener::bind(config.http_addr).await?;

    let kafka = config.kafka_config();
    let mut builder = KafkaApp::builder().config(kafka.clone()).embedded();
    if config.declare_topic {
        builder = builder.topic(NewTopic::new(TOPIC, 1));
    }
    let app = builder
        .only_listeners([LISTENER_ID])
        .customize_listener(
            LISTENER_ID,
            listener::customize(config.admit_rate, config.admit_on_start),
        )
        .build()
        .await?;
    // What the app receives and sends, for the console's /asyncapi.json.
    let asyncapi = AsyncApi::new("concert-queue", env!("CARGO_PKG_VERSION"))
        .description(
            "A concert waiting queue: joins in strict global order on one partition, \
             admitted at a fixed rate.",
        )
        .sends(TOPIC, MessageSchema::json::<listener::TokenQueued>())
        .document(&app);
    // The bound protects the embedded broker's retention (5 MiB per
    // partition) and is only meaningful when this process is the only
    // producer, which is the case on the embedded broker.
    let max_waiting = if app.embedded_broker().is_some() {
        config.max_waiting
    } else {
        None
    };
    let cursor = Arc::new(Cursor::new(
        app.registry(),
        &kafka,
        app.bootstrap_servers(),
    )?);
    let state = AppState {
        db: db.clone(),
        template: app.template(),
        cursor,
        listeners: app.registry(),
        send_timeout: config.send_timeout,
        active_ttl: config.active_ttl,
        admit_rate: config.admit_rate,
        max_waiting,
        produced_end: Arc::new(AtomicI64::new(0)),
    };
    let app = app.state(state.clone()).start().await?;

    let (sweeper_stop, mut stop_rx) = watch::channel(false);
    let sweep_db = db.clone();
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop_rx.changed() => return,
            }
            match sweep_db.expire_due(now_ms()).await {
                Ok(0) => {}
                Ok(n) => {
                    metrics::counter!("concert_queue_expired_total").increment(n);
                    tracing::debug!(expired = n, "active tokens expired");
                }
                Err(e) => tracing::warn!(error = %e, "expiry sweep failed"),
            }
        }
    });

    // The operator console at /console (no dead-letter store here).
    let mut console = Console::builder(app.registry().clone())
        .topics(&kafka, app.bootstrap_servers())
        .asyncapi(asyncapi);
    if let Some(token) = config.console_token.clone() {
        console = console.token(token);
    }
    let http = http.serve(http::router(state, metrics, console.build()));
    tracing::info!(
        "concert-queue listening on {} (bootstrap.servers={}, admitting {} per window)",
        http.base_url(),
        app.bootstrap_servers(),
        config.admit_rate
    );
    Ok(RunningService {
        http,
        app,
        db,
        sweeper_stop,
        sweeper,
    })
}

impl example_support::cli::Service for RunningService {
    fn base_url(&self) -> String {
        self.http.base_url()
    }

    async fn shutdown(self) {
        RunningService::shutdown(self).await;
    }
}
