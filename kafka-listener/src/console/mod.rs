//! The operator console (feature `console`): an axum [`Router`] with web
//! pages and a JSON API over an app's listeners, their partitions, the
//! dead-letter store and an AsyncAPI document. Karafka's Web UI, for
//! kafka-listener apps.
//!
//! ```no_run
//! # use kafka_listener::prelude::*;
//! # use kafka_listener::console::Console;
//! # async fn f(app: kafka_listener::RunningApp, store: kafka_listener::dlq::DeadLetterStore) {
//! let console = Console::builder(app.registry().clone())
//!     .dead_letters(store, app.template())
//!     .token_from_env("CONSOLE_TOKEN")
//!     .build();
//! let router: axum::Router = axum::Router::new().merge(console.mount("/console"));
//! # }
//! ```
//!
//! # Pages and API
//!
//! Pages: `/` (listeners, live charts), `/listeners/{id}` (partitions,
//! seek), `/dead-letters` (filter, select, replay, delete),
//! `/dead-letters/{id}`, `/replays`, `/audit`, `/asyncapi`. Every page's data
//! is also JSON under `/api/...` (see `docs/src/console.md` for the table);
//! `/api/events` is a Server-Sent Events stream of the listeners and the
//! last throughput and lag sample.
//!
//! # Security
//!
//! Reads are open; every action is a `POST` that needs
//! `Authorization: Bearer <secret>` of the configured token, and
//! `Content-Type: application/json`, and is refused when its `Origin`
//! header (if any) names another host than `Host`. Without a configured
//! token the console is read-only: actions answer 403 and the pages say so.
//! Errors are JSON `{"error": "<reason>"}`: 401 without a token, 403 with a
//! wrong one, in read-only mode or across sites, 415 without JSON.

mod api;
mod auth;
mod letters;
mod live;
mod pages;
mod topics;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;

pub use self::auth::{guard, ConsoleError, ConsoleToken};
use crate::app::ListenerRegistry;
use crate::dlq::DeadLetterStore;
use crate::producer::KafkaTemplate;

/// The default pace of a replay of several dead letters, records per second.
pub const DEFAULT_REPLAY_RATE: f64 = 10.0;

/// The operator console of one app: build it with [`Console::builder`],
/// mount [`Console::router`]. Cheap to clone (one shared state).
#[derive(Clone, Debug)]
pub struct Console {
    inner: Arc<Inner>,
}

/// What the handlers share: the settings as built, and the live state.
#[derive(Debug)]
struct Inner {
    settings: ConsoleBuilder,
    live: live::Live,
    jobs: Mutex<Vec<letters::ReplayJob>>,
    /// The audit log when there is no store (newest last, at most 1000).
    audit: Mutex<std::collections::VecDeque<crate::dlq::AuditEntry>>,
}

/// Builds a [`Console`] ([`Console::builder`]).
#[derive(Debug)]
pub struct ConsoleBuilder {
    registry: ListenerRegistry,
    store: Option<DeadLetterStore>,
    template: Option<KafkaTemplate>,
    token: Option<ConsoleToken>,
    asyncapi: Option<serde_json::Value>,
    /// The consumer configuration the topics page reads the cluster with.
    topics: Option<rdkafka::ClientConfig>,
    replay_rate: f64,
    sample_interval: Duration,
    #[cfg(feature = "avro")]
    avro: Option<crate::avro::AvroCodec>,
}

impl Console {
    /// A console over the listeners of `registry` (the app's
    /// [`crate::KafkaApp::registry`]); read-only until a token is set.
    pub fn builder(registry: ListenerRegistry) -> ConsoleBuilder {
        ConsoleBuilder {
            registry,
            store: None,
            template: None,
            token: None,
            asyncapi: None,
            topics: None,
            replay_rate: DEFAULT_REPLAY_RATE,
            sample_interval: live::DEFAULT_SAMPLE_INTERVAL,
            #[cfg(feature = "avro")]
            avro: None,
        }
    }

    /// Whether actions are refused because no token is configured.
    pub fn is_read_only(&self) -> bool {
        self.inner.settings.token.is_none()
    }

    /// The router to nest, e.g. `.nest("/console", console.router())` (or
    /// [`Self::mount`], which also answers `/console/`):
    /// pages at `/`, the JSON API under `/api`, the AsyncAPI document at
    /// `/asyncapi.json` when one is set. Links inside the console are
    /// relative to where it is mounted. Starts the sampler of the live
    /// charts (one sample every 5 s, 15 minutes kept), so it must be called
    /// within a tokio runtime; the sampler ends when the console and its
    /// routers are dropped.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        live::start_sampler(&self.inner);
        let api = Router::new()
            .route("/listeners", get(api::listeners))
            .route("/listeners/{id}", get(api::listener))
            .route("/listeners/{id}/events", get(live::listener_events))
            .route("/listeners/{id}/{action}", post(api::act))
            .route("/listeners/{id}/seek", post(api::seek))
            .route("/dead-letters", get(letters::list))
            .route("/dead-letters/replay", post(letters::replay_selection))
            .route("/dead-letters/{id}", get(letters::get_one))
            .route("/dead-letters/{id}/replay", post(letters::replay_one))
            .route("/dead-letters/{id}/delete", post(letters::delete))
            .route("/replays", get(letters::jobs))
            .route("/audit", get(letters::audit_api))
            .route("/topics", get(topics::api))
            .route("/history", get(live::history))
            .route("/events", get(live::events));
        Router::new()
            .route("/", get(pages::listeners))
            .route("/listeners/{id}", get(pages::listener))
            .route("/dead-letters", get(pages::dead_letters))
            .route("/dead-letters/{id}", get(pages::dead_letter))
            .route("/replays", get(pages::replays))
            .route("/audit", get(pages::audit))
            .route("/topics", get(pages::topics))
            .route("/asyncapi", get(pages::asyncapi))
            .route("/asyncapi.json", get(pages::asyncapi_json))
            .route("/assets/console.js", get(pages::script))
            .route("/assets/console.css", get(pages::style))
            .nest("/api", api)
            .fallback(|| async { ConsoleError::not_found("no such console page or API route") })
            .layer(axum::middleware::map_response(auth::secure_headers))
            .with_state(self.clone())
    }

    /// The console served at `path` (e.g. `"/console"`), to merge into the
    /// app's router: [`Self::router`] nested at `path`, and `path/` (which
    /// a nested router does not match) redirected to `path` with a
    /// relative `Location`, so that it also works under a further prefix.
    ///
    /// # Panics
    /// When `path` does not start with `/`, ends with `/` or is `/` (axum's
    /// nesting rules).
    pub fn mount<S: Clone + Send + Sync + 'static>(&self, path: &str) -> Router<S> {
        let last = path.rsplit('/').next().unwrap_or_default();
        let location = format!("../{last}");
        Router::new().nest(path, self.router()).route(
            &format!("{path}/"),
            get(move || async move { axum::response::Redirect::permanent(&location) }),
        )
    }

    /// Checks an action's headers as the console's own actions do (see the
    /// module docs) and returns the token's name, for routes of the app
    /// that need the same protection ([`guard`] wraps it as middleware).
    ///
    /// # Errors
    /// [`ConsoleError`]: 403 across sites or in read-only mode, 401 without
    /// `Authorization: Bearer`, 403 with a wrong secret.
    pub fn authorize(&self, headers: &axum::http::HeaderMap) -> Result<String, ConsoleError> {
        auth::authorize(self.inner.settings.token.as_ref(), headers)
    }
}

impl ConsoleBuilder {
    /// The dead-letter store to list, replay and delete from, and the
    /// template replays are sent with. Without it the dead-letter pages
    /// say there is no store and the audit log is kept in memory.
    pub fn dead_letters(mut self, store: DeadLetterStore, template: KafkaTemplate) -> Self {
        self.store = Some(store);
        self.template = Some(template);
        self
    }

    /// Enables actions for bearers of `token`.
    pub fn token(mut self, token: ConsoleToken) -> Self {
        self.token = Some(token);
        self
    }

    /// The token from the environment variable `var`: `name:secret`, or a
    /// bare `secret` named `default` (see [`ConsoleToken::parse`]). Unset or
    /// empty leaves the console read-only.
    pub fn token_from_env(mut self, var: &str) -> Self {
        self.token = std::env::var(var)
            .ok()
            .and_then(|v| ConsoleToken::parse(&v));
        if self.token.is_none() {
            tracing::info!(variable = var, "no console token: the console is read-only");
        }
        self
    }

    /// The AsyncAPI document to serve at `<mount>/asyncapi.json` and list
    /// (its `channels`: each key, `address` and message names) at
    /// `<mount>/asyncapi`.
    pub fn asyncapi(mut self, doc: serde_json::Value) -> Self {
        self.asyncapi = Some(doc);
        self
    }

    /// Shows the cluster's topics (`/topics`: partitions with their log
    /// start and end offsets), read through `bootstrap_servers` with the
    /// consumer properties of `config` (security settings included), e.g.
    /// the app's [`crate::KafkaConfig`] and
    /// [`crate::RunningApp::bootstrap_servers`].
    pub fn topics(mut self, config: &crate::KafkaConfig, bootstrap_servers: &str) -> Self {
        self.topics = Some(config.consumer_config(bootstrap_servers));
        self
    }

    /// The default pace of a replay of several dead letters, records per
    /// second (default [`DEFAULT_REPLAY_RATE`]; a request may ask for
    /// another). Values below 0.1 are raised to 0.1.
    pub fn replay_rate(mut self, per_second: f64) -> Self {
        self.replay_rate = per_second.max(0.1);
        self
    }

    /// How often the live charts take a sample (default 5 s; 180 samples
    /// are kept, 15 minutes at the default). At least 100 ms.
    pub fn sample_interval(mut self, every: Duration) -> Self {
        self.sample_interval = every.max(Duration::from_millis(100));
        self
    }

    /// The codec that decodes Avro payloads (the Confluent wire format)
    /// of dead letters to JSON for display, e.g. [`crate::KafkaApp::avro_codec`].
    #[cfg(feature = "avro")]
    pub fn avro(mut self, codec: crate::avro::AvroCodec) -> Self {
        self.avro = Some(codec);
        self
    }

    /// The console.
    pub fn build(self) -> Console {
        Console {
            inner: Arc::new(Inner {
                live: live::Live::new(self.sample_interval),
                settings: self,
                jobs: Mutex::new(Vec::new()),
                audit: Mutex::new(std::collections::VecDeque::new()),
            }),
        }
    }
}
