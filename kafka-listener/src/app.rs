//! `KafkaApp`: configuration, the embedded broker, topics, state and the
//! discovered listeners, run until SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic as RdNewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::container::ListenerContainer;
use crate::embedded::EmbeddedBroker;
use crate::error::{Error, Result};
use crate::listener::{registered_listeners, ListenerSpec};
use crate::producer::KafkaTemplate;
use crate::state::StateMap;

/// Consumer properties the app sets on the embedded broker unless
/// configured: the broker's minimum session timeout and a heartbeat to match.
const EMBEDDED_CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "500"),
];

/// A topic the app declares: created at start if missing (Spring's
/// `NewTopic` bean with `KafkaAdmin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// The topic name.
    pub name: String,
    /// The number of partitions.
    pub partitions: i32,
    /// The replication factor (the embedded broker always uses 1).
    pub replication: i32,
}

impl NewTopic {
    /// A topic with `partitions` partitions and replication factor 1.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication: 1,
        }
    }

    /// Sets the replication factor.
    pub fn replication(mut self, replication: i32) -> Self {
        self.replication = replication;
        self
    }
}

/// Builds a [`KafkaApp`].
#[derive(Debug, Default)]
pub struct KafkaAppBuilder {
    config: KafkaConfig,
    topics: Vec<NewTopic>,
    listeners: Vec<ListenerSpec>,
    discover: bool,
    only: Option<Vec<String>>,
    customizers: Vec<Customizer>,
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
    /// Uses `config` (default: [`KafkaConfig::new`], the embedded broker).
    pub fn config(mut self, config: KafkaConfig) -> Self {
        self.config = config;
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

    /// Starts the embedded broker when no bootstrap servers are configured,
    /// creates the declared topics (and, on the embedded broker, any
    /// listener topic not declared, with 1 partition) and creates the
    /// template. With the `avro` feature it also starts the embedded Schema
    /// Registry when no [`KafkaConfig::schema_registry_url`] is set, and
    /// puts an [`crate::AvroCodec`] over the registry in the app state and
    /// the template.
    ///
    /// # Errors
    /// [`Error::Embedded`], [`Error::Config`] for a bad registry URL or
    /// Avro setting or a customizer of an unknown listener, or
    /// [`Error::Kafka`] when topics cannot be created.
    pub async fn build(mut self) -> Result<KafkaApp> {
        if self.config.bootstrap_servers.is_none() {
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
        let embedded = match &self.config.bootstrap_servers {
            Some(_) => None,
            None => Some(Arc::new(
                tokio::task::spawn_blocking(EmbeddedBroker::start)
                    .await
                    .map_err(|e| Error::Embedded(e.to_string()))??,
            )),
        };
        let bootstrap = match (&embedded, &self.config.bootstrap_servers) {
            (Some(e), _) => e.bootstrap_servers().to_owned(),
            (None, Some(b)) => b.clone(),
            (None, None) => unreachable!("embedded broker started above"),
        };
        let mut topics = self.topics;
        // Dead-letter and retry topics of the listeners (crate::dlq), with
        // the partition counts of their declared source topics. Before the
        // listeners' own undeclared topics get one partition below: a
        // listener of a dead-letter topic must not make it a 1-partition
        // topic.
        let client = embedded
            .is_none()
            .then(|| self.config.consumer_config(&bootstrap));
        let extra = crate::dlq::topics_for(&listeners, &topics, client).await;
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
        create_topics(&self.config, &bootstrap, embedded.as_deref(), &topics).await?;
        #[allow(unused_mut)]
        let mut template = KafkaTemplate::new(&self.config.producer_config(&bootstrap))?;
        #[allow(unused_mut)]
        let mut state = StateMap::new();
        #[cfg(feature = "avro")]
        let schema_registry = {
            let (embedded, url) = match &self.config.schema_registry_url {
                Some(url) => (None, url.clone()),
                None => {
                    let r = crate::registry::EmbeddedSchemaRegistry::start().await?;
                    let url = r.url().to_owned();
                    (Some(Arc::new(r)), url)
                }
            };
            let codec = crate::avro::AvroCodec::from_config(&self.config, &url)?;
            template = template.with_avro(codec.clone());
            state.insert(codec);
            embedded
        };
        Ok(KafkaApp {
            config: self.config,
            bootstrap,
            embedded,
            #[cfg(feature = "avro")]
            schema_registry,
            template,
            state,
            listeners,
        })
    }
}

async fn create_topics(
    config: &KafkaConfig,
    bootstrap: &str,
    embedded: Option<&EmbeddedBroker>,
    topics: &[NewTopic],
) -> Result<()> {
    if topics.is_empty() {
        return Ok(());
    }
    if let Some(broker) = embedded {
        for t in topics {
            broker.create_topic(&t.name, t.partitions)?;
        }
        return Ok(());
    }
    // Create only the topics the cluster lacks (listing all topics does not
    // trigger auto-creation the way asking for one topic may).
    let client_config = config.consumer_config(bootstrap);
    let probe = client_config.clone();
    let existing: Option<std::collections::HashSet<String>> =
        tokio::task::spawn_blocking(move || {
            let consumer: rdkafka::consumer::BaseConsumer = probe.create().ok()?;
            let md = rdkafka::consumer::Consumer::fetch_metadata(
                &consumer,
                None,
                Duration::from_secs(10),
            )
            .ok()?;
            Some(md.topics().iter().map(|t| t.name().to_owned()).collect())
        })
        .await
        .ok()
        .flatten();
    let missing: Vec<&NewTopic> = topics
        .iter()
        .filter(|t| existing.as_ref().is_none_or(|e| !e.contains(&t.name)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = client_config.create()?;
    let new: Vec<RdNewTopic<'_>> = missing
        .iter()
        .map(|t| {
            RdNewTopic::new(
                &t.name,
                t.partitions,
                TopicReplication::Fixed(t.replication),
            )
        })
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
    // As Spring's KafkaAdmin (fatalIfBrokerNotAvailable = false): a topic
    // that cannot be created is reported and the app starts anyway; its
    // listeners wait for the topic to appear.
    match admin.create_topics(new.iter(), &opts).await {
        Ok(results) => {
            for result in results {
                match result {
                    Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((topic, code)) => {
                        tracing::error!(%topic, error = %code, "cannot create topic; listeners of it wait until it exists");
                    }
                }
            }
        }
        Err(e) => {
            let names: Vec<&str> = missing.iter().map(|t| t.name.as_str()).collect();
            tracing::error!(topics = ?names, error = %e, "cannot create topics; listeners of them wait until they exist");
        }
    }
    Ok(())
}

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
    bootstrap: String,
    embedded: Option<Arc<EmbeddedBroker>>,
    #[cfg(feature = "avro")]
    schema_registry: Option<Arc<crate::registry::EmbeddedSchemaRegistry>>,
    template: KafkaTemplate,
    state: StateMap,
    listeners: Vec<ListenerSpec>,
}

impl KafkaApp {
    /// A builder with the embedded-broker defaults and discovery of
    /// `#[kafka_listener]` functions on.
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

    /// The template (the app's idempotent producer).
    pub fn template(&self) -> KafkaTemplate {
        self.template.clone()
    }

    /// The bootstrap servers in use (the embedded broker's when embedded).
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// The embedded broker, when one runs.
    pub fn embedded_broker(&self) -> Option<&Arc<EmbeddedBroker>> {
        self.embedded.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// The embedded Schema Registry, when one runs (no
    /// [`KafkaConfig::schema_registry_url`]).
    #[cfg(feature = "avro")]
    pub fn embedded_schema_registry(
        &self,
    ) -> Option<&Arc<crate::registry::EmbeddedSchemaRegistry>> {
        self.schema_registry.as_ref()
    }

    /// The Avro codec over the app's Schema Registry (the one in the state,
    /// for `Avro<T>` arguments; the template has it too).
    #[cfg(feature = "avro")]
    pub fn avro_codec(&self) -> Option<crate::avro::AvroCodec> {
        self.state.get::<crate::avro::AvroCodec>().cloned()
    }

    /// Validates every listener and starts those with `auto_startup`.
    ///
    /// # Errors
    /// [`Error::Listener`] for an invalid listener (for example a `State<T>`
    /// that was never registered), [`Error::Kafka`] when a consumer cannot
    /// be created. Nothing is left running on error.
    pub async fn start(self) -> Result<RunningApp> {
        let state = Arc::new(self.state);
        let base = self.config.consumer_config(&self.bootstrap);
        let timeout = self.config.effective_shutdown_timeout();
        let mut containers = Vec::with_capacity(self.listeners.len());
        let mut seen = std::collections::HashSet::new();
        for spec in self.listeners {
            if !seen.insert(spec.id().to_owned()) {
                return Err(Error::Listener {
                    listener: spec.id().to_owned(),
                    reason: "two listeners have this id".into(),
                });
            }
            let auto = spec.starts_automatically();
            containers.push((
                Arc::new(ListenerContainer::new(
                    spec,
                    Arc::clone(&state),
                    &base,
                    timeout,
                    &self.template,
                )?),
                auto,
            ));
        }
        let running = RunningApp {
            containers: containers.iter().map(|(c, _)| Arc::clone(c)).collect(),
            template: self.template,
            bootstrap: self.bootstrap,
            embedded: self.embedded,
            #[cfg(feature = "avro")]
            schema_registry: self.schema_registry,
        };
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

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// A started app: the registry of its listener containers (Spring's
/// `KafkaListenerEndpointRegistry`).
#[derive(Debug)]
pub struct RunningApp {
    containers: Vec<Arc<ListenerContainer>>,
    template: KafkaTemplate,
    bootstrap: String,
    embedded: Option<Arc<EmbeddedBroker>>,
    #[cfg(feature = "avro")]
    schema_registry: Option<Arc<crate::registry::EmbeddedSchemaRegistry>>,
}

impl RunningApp {
    /// The container of the listener `id`.
    pub fn container(&self, id: &str) -> Option<&ListenerContainer> {
        self.containers.iter().find(|c| c.id() == id).map(|c| &**c)
    }

    /// The container of the listener `id` as a shared handle, for code that
    /// outlives this borrow (an HTTP handler that reports lag or pauses the
    /// listener).
    pub fn container_handle(&self, id: &str) -> Option<Arc<ListenerContainer>> {
        self.containers.iter().find(|c| c.id() == id).cloned()
    }

    /// Every container.
    pub fn containers(&self) -> impl Iterator<Item = &ListenerContainer> {
        self.containers.iter().map(|c| &**c)
    }

    /// The template.
    pub fn template(&self) -> KafkaTemplate {
        self.template.clone()
    }

    /// The bootstrap servers in use.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// The embedded broker, when one runs.
    pub fn embedded_broker(&self) -> Option<&Arc<EmbeddedBroker>> {
        self.embedded.as_ref()
    }

    /// The embedded Schema Registry, when one runs.
    #[cfg(feature = "avro")]
    pub fn embedded_schema_registry(
        &self,
    ) -> Option<&Arc<crate::registry::EmbeddedSchemaRegistry>> {
        self.schema_registry.as_ref()
    }

    /// Stops every container (in parallel; each drains and commits), then
    /// flushes the template for up to 10 s.
    pub async fn shutdown(&self) {
        futures::future::join_all(self.containers.iter().map(|c| c.stop())).await;
        let template = self.template.clone();
        let _ = tokio::task::spawn_blocking(move || template.flush(Duration::from_secs(10))).await;
    }
}
