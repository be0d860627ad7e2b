//! `KafkaApp`: configuration, topics, state and the discovered listeners,
//! run until SIGINT/SIGTERM; the listener registry ([`ListenerRegistry`],
//! Spring's `KafkaListenerEndpointRegistry`) and the shutdown order.
//!
//! Top layer.

mod check;
mod registry;
mod running;

use std::sync::Arc;

pub use self::registry::ListenerRegistry;
use self::running::{infra_accessors, Infra, ShutdownHook};
pub use self::running::{shutdown_signal, RunningApp};
use crate::config::KafkaConfig;
use crate::container::ListenerContainer;
#[cfg(feature = "embedded")]
use crate::embedded::EmbeddedBroker;
use crate::error::{Error, Result};
use crate::listener::{registered_listeners, ListenerSpec};
use crate::producer::KafkaTemplate;
use crate::state::StateMap;
use crate::topics::NewTopic;

#[cfg(not(feature = "embedded"))]
type EmbeddedBroker = std::convert::Infallible;

/// Consumer properties the app sets on the embedded broker unless
/// configured: the broker's minimum session timeout and a heartbeat to
/// match, and a short fetch wait. The mock cluster holds a fetch for the
/// whole `fetch.wait.max.ms` (librdkafka's default 500 ms) even when records
/// arrive meanwhile, where a real broker answers as soon as it has them:
/// measured with coupon-service's open-loop load at 1,000 requests/s, the
/// steady request-to-decision latency went from a median of 300 ms (max
/// 510 ms) to 12 ms (max 23 ms) with 10 ms.
const EMBEDDED_CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "500"),
    ("fetch.wait.max.ms", "10"),
];

/// Builds a [`KafkaApp`].
#[derive(Debug, Default)]
pub struct KafkaAppBuilder {
    config: KafkaConfig,
    topics: Vec<NewTopic>,
    listeners: Vec<ListenerSpec>,
    discover: bool,
    only: Option<Vec<String>>,
    customizers: Vec<Customizer>,
    embedded: bool,
    #[cfg(feature = "avro")]
    avro: bool,
    #[cfg(feature = "embedded")]
    given_broker: Option<Arc<EmbeddedBroker>>,
    #[cfg(all(feature = "avro", feature = "embedded"))]
    given_registry: Option<Arc<EmbeddedSchemaRegistry>>,
}

/// A change to one listener's spec, applied at build.
struct Customizer {
    id: String,
    apply: Box<dyn FnOnce(ListenerSpec) -> ListenerSpec + Send>,
}

impl std::fmt::Debug for Customizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Customizer").field("id", &self.id).finish()
    }
}

impl KafkaAppBuilder {
    /// Uses `config` (default: [`KafkaConfig::new`]).
    pub fn config(mut self, config: KafkaConfig) -> Self {
        self.config = config;
        self
    }

    /// Starts the embedded broker (librdkafka's mock cluster, in memory) when
    /// the configuration has no bootstrap servers, as
    /// [`KafkaConfig::embedded`] does. For development and tests: an app
    /// that does not opt in fails at start without bootstrap servers, so a
    /// deployment that forgot `KAFKA_BOOTSTRAP_SERVERS` cannot lose its
    /// records to a broker that forgets them at exit.
    #[cfg(feature = "embedded")]
    pub fn embedded(mut self) -> Self {
        self.embedded = true;
        self
    }

    /// Runs on `broker`, an embedded broker already started (a test's, as
    /// Spring's `@EmbeddedKafka` hands its broker to the context): the app
    /// treats it as its embedded broker (embedded Schema Registry beside it
    /// when no registry URL is set, short consumer sessions), whatever the
    /// configured bootstrap servers.
    #[cfg(feature = "embedded")]
    pub fn embedded_broker(mut self, broker: Arc<EmbeddedBroker>) -> Self {
        self.given_broker = Some(broker);
        self
    }

    /// Uses `registry`, an embedded Schema Registry already started (a
    /// test's), unless a registry URL is configured: the app's Avro codec
    /// talks to it and [`KafkaApp::embedded_schema_registry`] returns it,
    /// whatever the broker.
    #[cfg(all(feature = "avro", feature = "embedded"))]
    pub fn embedded_schema_registry(mut self, registry: Arc<EmbeddedSchemaRegistry>) -> Self {
        self.given_registry = Some(registry);
        self
    }

    /// Says the app uses Avro even if none of its listeners reads it (an
    /// app that only sends Avro with [`KafkaTemplate::send_avro`]): on the
    /// embedded broker with no registry URL, the embedded Schema Registry
    /// then starts. Without this call it starts only when a listener takes
    /// `Avro<T>` or `AvroKey<K>`: nothing starts that the app does not use.
    #[cfg(feature = "avro")]
    pub fn avro(mut self) -> Self {
        self.avro = true;
        self
    }

    /// Declares a topic to create at start if it is missing.
    pub fn topic(mut self, topic: NewTopic) -> Self {
        self.topics.push(topic);
        self
    }

    /// Adds a listener built in code.
    pub fn listener(mut self, spec: ListenerSpec) -> Self {
        self.listeners.push(spec);
        self
    }

    /// Does not run the `#[kafka_listener]` functions of the binary (only
    /// those added with [`Self::listener`]).
    pub fn without_discovered_listeners(mut self) -> Self {
        self.discover = false;
        self
    }

    /// Runs only the discovered listeners with these ids (tests that share a
    /// binary with other listeners).
    pub fn only_listeners<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.only = Some(ids.into_iter().map(Into::into).collect());
        self
    }

    /// Changes the listener `id` before it starts, whether it is declared
    /// with `#[kafka_listener]` or added with [`Self::listener`]: the place
    /// for settings that come from configuration, as a `${...}` placeholder
    /// in Spring's `@KafkaListener` or a `ContainerCustomizer`. Customizers
    /// of one id apply in the order given.
    ///
    /// ```no_run
    /// # use kafka_listener::prelude::*;
    /// # async fn f(concurrency: usize) -> Result<(), kafka_listener::Error> {
    /// let app = KafkaApp::builder()
    ///     .customize_listener("coupon-issuer", move |l| l.concurrency(concurrency))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// [`Self::build`] fails with [`Error::Config`] when no listener has
    /// that id (a typo would otherwise be ignored).
    pub fn customize_listener<F>(mut self, id: impl Into<String>, customize: F) -> Self
    where
        F: FnOnce(ListenerSpec) -> ListenerSpec + Send + 'static,
    {
        self.customizers.push(Customizer {
            id: id.into(),
            apply: Box::new(customize),
        });
        self
    }

    /// Starts the embedded broker when no bootstrap servers are configured
    /// and the app opted in ([`Self::embedded`], feature `embedded`),
    /// creates the declared topics (and, on the embedded broker, any
    /// listener topic not declared, with 1 partition) and creates the
    /// template. With the `avro` feature it puts an [`crate::AvroCodec`]
    /// over the configured Schema Registry in the app state and the
    /// template; with no registry URL, on the embedded broker only and
    /// when the app uses Avro (a listener takes `Avro<T>` or `AvroKey<K>`,
    /// or [`Self::avro`] was called), it starts the embedded Schema
    /// Registry (an embedded registry beside a real broker would write
    /// schema ids that no other service can read).
    ///
    /// # Errors
    /// [`Error::Config`] for a setting that cannot be honoured
    /// ([`KafkaConfig::validate`]); when no bootstrap servers are configured and the
    /// app did not opt into the embedded broker; when a client cannot
    /// connect to the real broker because of its security settings (a
    /// wrong SASL password, an unknown CA, a missing client certificate:
    /// the message names the client, the broker address and librdkafka's
    /// reason; a broker that does not answer within 10 s only gets a
    /// warning); for a bad registry URL or
    /// Avro setting, or a customizer of an unknown listener;
    /// [`Error::Embedded`] when the embedded broker cannot start;
    /// [`Error::Kafka`] when topics cannot be created.
    pub async fn build(mut self) -> Result<KafkaApp> {
        self.config.validate()?;
        if self.embedded {
            self.config.embedded = Some(true);
        }
        #[cfg(feature = "embedded")]
        let given = self.given_broker.take();
        #[cfg(not(feature = "embedded"))]
        let given: Option<Arc<EmbeddedBroker>> = None;
        let use_embedded = given.is_some() || self.config.bootstrap_servers.is_none();
        if use_embedded && given.is_none() && !self.config.allows_embedded() {
            return Err(Error::Config(
                "no Kafka bootstrap servers: set KAFKA_BOOTSTRAP_SERVERS (or `bootstrap.servers` in \
                 the configuration file, or KafkaConfig::bootstrap_servers); for development, opt \
                 into the in-memory embedded broker with KafkaAppBuilder::embedded() or \
                 KAFKA_EMBEDDED=true (feature `embedded`)"
                    .into(),
            ));
        }
        if use_embedded {
            // The mock cluster waits a whole session timeout for a member
            // that missed the first generation of a new group (45 s with
            // librdkafka's default); a short session keeps start-up quick.
            for (k, v) in EMBEDDED_CONSUMER_DEFAULTS {
                self.config
                    .consumer_properties
                    .entry((*k).to_owned())
                    .or_insert_with(|| (*v).to_owned());
            }
        }
        let mut listeners = self.listeners;
        if self.discover {
            listeners.extend(registered_listeners().filter(|l| {
                self.only
                    .as_ref()
                    .is_none_or(|ids| ids.iter().any(|i| i == l.id()))
            }));
        }
        for Customizer { id, apply } in self.customizers {
            let Some(at) = listeners.iter().position(|l| l.id() == id) else {
                let ids: Vec<&str> = listeners.iter().map(ListenerSpec::id).collect();
                return Err(Error::Config(format!(
                    "customize_listener: no listener `{id}`; the app's listeners: {}",
                    if ids.is_empty() {
                        "none".to_owned()
                    } else {
                        ids.join(", ")
                    }
                )));
            };
            let spec = listeners.remove(at);
            listeners.insert(at, apply(spec));
        }
        let embedded: Option<Arc<EmbeddedBroker>> = if given.is_some() {
            given
        } else if use_embedded {
            Some(Arc::new(start_embedded().await?))
        } else {
            None
        };
        let bootstrap = match (&embedded, &self.config.bootstrap_servers) {
            (Some(e), _) => embedded_bootstrap(e),
            (None, Some(b)) => b.clone(),
            (None, None) => unreachable!("embedded broker started above"),
        };
        if embedded.is_none() {
            let ids: Vec<&str> = listeners.iter().map(ListenerSpec::id).collect();
            check::check_app(&self.config, &bootstrap, &ids).await?;
        }
        let mut topics = self.topics;
        // Dead-letter and retry topics of the listeners (crate::dlq), with
        // the partition counts of their declared source topics. Before the
        // listeners' own undeclared topics get one partition below: a
        // listener of a dead-letter topic must not make it a 1-partition
        // topic.
        let client = embedded
            .is_none()
            .then(|| self.config.consumer_config(&bootstrap));
        let extra = crate::topics::failure_topics(&listeners, &topics, client).await;
        topics.extend(extra);
        if embedded.is_some() {
            for l in &listeners {
                for t in l.topic_names() {
                    if !topics.iter().any(|n| &n.name == t) {
                        topics.push(NewTopic::new(t.clone(), 1));
                    }
                }
            }
        }
        crate::topics::create_topics(&self.config, &bootstrap, embedded.as_deref(), &topics)
            .await?;
        #[allow(unused_mut)]
        let producer_config = self.config.producer_config(&bootstrap);
        let mut template = KafkaTemplate::new(&producer_config)?;
        if let Some(prefix) = self.config.transaction_prefix() {
            template = template.with_transactions(&producer_config, prefix);
        }
        #[allow(unused_mut)]
        let mut state = StateMap::new();
        #[cfg(feature = "avro")]
        let schema_registry = {
            #[cfg(feature = "embedded")]
            let given = self.given_registry.take();
            #[cfg(not(feature = "embedded"))]
            let given: Option<Arc<EmbeddedSchemaRegistry>> = None;
            let (served, url) = match (&self.config.schema_registry_url, given) {
                (Some(url), _) => (None, Some(url.clone())),
                (None, Some(r)) => {
                    let url = registry_url(&r);
                    (Some(r), Some(url))
                }
                (None, None) => {
                    let uses_avro = self.avro
                        || listeners
                            .iter()
                            .any(|l| l.needs_state::<crate::avro::AvroCodec>());
                    embedded_schema_registry(embedded.is_some() && uses_avro).await?
                }
            };
            if let Some(url) = url {
                let codec = crate::avro::AvroCodec::from_config(&self.config, &url)?;
                template = template.with_avro(codec.clone());
                state.insert(codec);
            }
            served
        };
        // `KafkaTemplate` as a listener argument.
        state.insert(template.clone());
        Ok(KafkaApp {
            config: self.config,
            infra: Infra {
                template,
                bootstrap,
                embedded,
                #[cfg(feature = "avro")]
                schema_registry,
            },
            state,
            listeners,
            topics,
            registry: ListenerRegistry::default(),
            hooks: Vec::new(),
        })
    }
}

/// Starts the embedded broker on a blocking thread and says, at WARN, that
/// its records live in memory.
#[cfg(feature = "embedded")]
async fn start_embedded() -> Result<EmbeddedBroker> {
    let broker = tokio::task::spawn_blocking(EmbeddedBroker::start)
        .await
        .map_err(|e| Error::Embedded(e.to_string()))??;
    tracing::warn!(
        bootstrap.servers = %broker.bootstrap_servers(),
        "embedded broker started: an in-memory mock cluster for development; its records are \
         lost at exit (set KAFKA_BOOTSTRAP_SERVERS for a real cluster)"
    );
    Ok(broker)
}

#[cfg(not(feature = "embedded"))]
async fn start_embedded() -> Result<EmbeddedBroker> {
    Err(Error::Config(
        "the embedded broker was asked for (KAFKA_EMBEDDED=true) but kafka-listener was built \
         without the `embedded` feature; set KAFKA_BOOTSTRAP_SERVERS"
            .into(),
    ))
}

#[cfg(feature = "embedded")]
fn embedded_bootstrap(broker: &EmbeddedBroker) -> String {
    broker.bootstrap_servers().to_owned()
}

#[cfg(not(feature = "embedded"))]
fn embedded_bootstrap(broker: &EmbeddedBroker) -> String {
    match *broker {}
}

/// With no registry URL: the embedded Schema Registry beside the embedded
/// broker when the app uses Avro (and its URL), nothing beside a real
/// broker or in an app without Avro.
#[cfg(all(feature = "avro", feature = "embedded"))]
async fn embedded_schema_registry(
    start: bool,
) -> Result<(Option<Arc<EmbeddedSchemaRegistry>>, Option<String>)> {
    if !start {
        return Ok((None, None));
    }
    let r = EmbeddedSchemaRegistry::start().await?;
    let url = r.url().to_owned();
    tracing::warn!(schema.registry.url = %url, "embedded schema registry started: in memory, for development");
    Ok((Some(Arc::new(r)), Some(url)))
}

#[cfg(all(feature = "avro", not(feature = "embedded")))]
async fn embedded_schema_registry(
    _start: bool,
) -> Result<(Option<Arc<EmbeddedSchemaRegistry>>, Option<String>)> {
    Ok((None, None))
}

#[cfg(all(feature = "avro", feature = "embedded"))]
use crate::embedded::EmbeddedSchemaRegistry;

#[cfg(all(feature = "avro", feature = "embedded"))]
fn registry_url(r: &EmbeddedSchemaRegistry) -> String {
    r.url().to_owned()
}

#[cfg(all(feature = "avro", not(feature = "embedded")))]
fn registry_url(r: &EmbeddedSchemaRegistry) -> String {
    match *r {}
}
#[cfg(all(feature = "avro", not(feature = "embedded")))]
type EmbeddedSchemaRegistry = std::convert::Infallible;

/// A configured app: broker connection (or embedded broker), template,
/// state and listeners, not yet consuming.
///
/// # Examples
/// ```no_run
/// use kafka_listener::prelude::*;
///
/// #[derive(Clone)]
/// struct App;
///
/// # async fn run() -> Result<(), kafka_listener::Error> {
/// let app = KafkaApp::builder()
///     .config(KafkaConfig::from_env()?)
///     .topic(NewTopic::new("orders", 3))
///     .build()
///     .await?
///     .state(App);
/// app.run().await
/// # }
/// ```
#[derive(Debug)]
pub struct KafkaApp {
    config: KafkaConfig,
    infra: Infra,
    state: StateMap,
    listeners: Vec<ListenerSpec>,
    /// The topics created at build, for the AsyncAPI document.
    topics: Vec<NewTopic>,
    registry: ListenerRegistry,
    hooks: Vec<ShutdownHook>,
}

impl KafkaApp {
    /// The listeners and the created topics (crate::asyncapi).
    #[cfg_attr(not(feature = "asyncapi"), allow(dead_code))]
    pub(crate) fn declared(&self) -> (&[ListenerSpec], &[NewTopic]) {
        (&self.listeners, &self.topics)
    }

    /// A builder with discovery of `#[kafka_listener]` functions on.
    pub fn builder() -> KafkaAppBuilder {
        KafkaAppBuilder {
            discover: true,
            ..KafkaAppBuilder::default()
        }
    }

    /// Registers state for `State<T>` arguments (one value per type).
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// The listener registry: containers by id with start, stop, pause and
    /// resume. Available before [`Self::start`] (put it in the app state or
    /// an HTTP router); it holds the containers once the app started.
    pub fn registry(&self) -> ListenerRegistry {
        self.registry.clone()
    }

    /// Stops `component` during shutdown: after the listeners have drained
    /// and committed, before the template is flushed (Spring's
    /// `SmartLifecycle` phases: an outbox relay sends what the listeners'
    /// last transactions wrote). Hooks run in reverse order of
    /// registration; `name` appears in the shutdown logs.
    pub fn on_shutdown<F, Fut>(mut self, name: &str, component: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.hooks.push(ShutdownHook::new(name, component));
        self
    }

    infra_accessors!();

    /// The configuration.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// The Avro codec over the app's Schema Registry (the one in the state,
    /// for `Avro<T>` arguments; the template has it too); `None` when no
    /// registry is configured.
    #[cfg(feature = "avro")]
    pub fn avro_codec(&self) -> Option<crate::avro::AvroCodec> {
        self.state.get::<crate::avro::AvroCodec>().cloned()
    }

    /// Validates every listener and starts those with `auto_startup`.
    ///
    /// # Errors
    /// [`Error::Listener`] for an invalid listener (for example a `State<T>`
    /// that was never registered), [`Error::Kafka`] when a consumer cannot
    /// be created. Nothing is left running on error: the shutdown hooks run
    /// too.
    pub async fn start(self) -> Result<RunningApp> {
        let state = Arc::new(self.state);
        let base = self.config.container_config(&self.infra.bootstrap);
        let timeout = self.config.effective_shutdown_timeout();
        let mut containers = Vec::with_capacity(self.listeners.len());
        let mut seen = std::collections::HashSet::new();
        let mut failed = None;
        for mut spec in self.listeners {
            crate::reply::bind(&mut spec, &self.infra.template);
            if !seen.insert(spec.id().to_owned()) {
                failed = Some(Error::Listener {
                    listener: spec.id().to_owned(),
                    reason: "two listeners have this id".into(),
                });
                break;
            }
            let auto = spec.starts_automatically();
            match ListenerContainer::new(
                spec,
                Arc::clone(&state),
                &base,
                timeout,
                &self.infra.template,
            ) {
                Ok(mut c) => {
                    if self.infra.embedded.is_some() {
                        c.on_embedded_broker();
                    }
                    containers.push((Arc::new(c), auto))
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        self.registry
            .fill(containers.iter().map(|(c, _)| Arc::clone(c)).collect());
        let running = RunningApp::new(self.registry, self.infra, self.hooks);
        if let Some(e) = failed {
            running.shutdown().await;
            return Err(e);
        }
        for (c, auto) in &containers {
            if *auto {
                if let Err(e) = c.start() {
                    running.shutdown().await;
                    return Err(e);
                }
            }
        }
        Ok(running)
    }

    /// Starts, waits for SIGINT or SIGTERM, then shuts down gracefully.
    ///
    /// # Errors
    /// As [`Self::start`].
    pub async fn run(self) -> Result<()> {
        let running = self.start().await?;
        shutdown_signal().await;
        running.shutdown().await;
        Ok(())
    }
}
