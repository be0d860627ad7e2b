//! A started app ([`RunningApp`]) and its shutdown order: listeners drain
//! and commit, then the app's other components stop (an outbox relay), then
//! the template is flushed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{EmbeddedBroker, ListenerRegistry};
use crate::container::ListenerContainer;
use crate::producer::KafkaTemplate;
use crate::util::BoxFuture;

#[cfg(feature = "avro")]
use super::EmbeddedSchemaRegistry;

/// A component stopped at shutdown after the listeners
/// ([`super::KafkaApp::on_shutdown`]).
pub(super) struct ShutdownHook {
    name: String,
    stop: Box<dyn FnOnce() -> BoxFuture<()> + Send>,
}

impl ShutdownHook {
    pub(super) fn new<F, Fut>(name: &str, stop: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self {
            name: name.to_owned(),
            stop: Box::new(move || Box::pin(stop())),
        }
    }
}

impl std::fmt::Debug for ShutdownHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHook")
            .field("name", &self.name)
            .finish()
    }
}

/// A started app: its listener registry, template and infrastructure.
/// [`RunningApp::shutdown`] stops everything in order.
#[derive(Debug)]
pub struct RunningApp {
    registry: ListenerRegistry,
    infra: Infra,
    hooks: std::sync::Mutex<Vec<ShutdownHook>>,
}

/// What a built app ([`super::KafkaApp`]) hands to its started self
/// ([`RunningApp`]): the template, the bootstrap servers and the embedded
/// infrastructure. Both expose it through [`infra_accessors!`].
#[derive(Debug)]
pub(super) struct Infra {
    pub(super) template: KafkaTemplate,
    pub(super) bootstrap: String,
    #[cfg_attr(not(feature = "embedded"), allow(dead_code))]
    pub(super) embedded: Option<Arc<EmbeddedBroker>>,
    #[cfg(feature = "avro")]
    #[cfg_attr(not(feature = "embedded"), allow(dead_code))]
    pub(super) schema_registry: Option<Arc<EmbeddedSchemaRegistry>>,
}

/// The accessors of [`Infra`] on a type with a field `infra: Infra`.
macro_rules! infra_accessors {
    () => {
        /// The template (the app's idempotent producer).
        pub fn template(&self) -> KafkaTemplate {
            self.infra.template.clone()
        }

        /// The bootstrap servers in use (the embedded broker's when
        /// embedded).
        pub fn bootstrap_servers(&self) -> &str {
            &self.infra.bootstrap
        }

        /// The embedded broker, when one runs.
        #[cfg(feature = "embedded")]
        pub fn embedded_broker(&self) -> Option<&Arc<EmbeddedBroker>> {
            self.infra.embedded.as_ref()
        }

        /// The embedded Schema Registry, when one runs (the embedded broker
        /// and no [`KafkaConfig::schema_registry_url`](crate::KafkaConfig::schema_registry_url)).
        #[cfg(all(feature = "avro", feature = "embedded"))]
        pub fn embedded_schema_registry(&self) -> Option<&Arc<EmbeddedSchemaRegistry>> {
            self.infra.schema_registry.as_ref()
        }
    };
}
pub(super) use infra_accessors;

impl RunningApp {
    pub(super) fn new(registry: ListenerRegistry, infra: Infra, hooks: Vec<ShutdownHook>) -> Self {
        Self {
            registry,
            infra,
            hooks: std::sync::Mutex::new(hooks),
        }
    }

    /// The listener registry (the same handle as
    /// [`super::KafkaApp::registry`]).
    pub fn registry(&self) -> &ListenerRegistry {
        &self.registry
    }

    /// The container of the listener `id`.
    pub fn container(&self, id: &str) -> Option<Arc<ListenerContainer>> {
        self.registry.container(id)
    }

    /// Every container, in declaration order.
    pub fn containers(&self) -> Vec<Arc<ListenerContainer>> {
        self.registry.containers()
    }

    infra_accessors!();

    /// Stops the app, in this order:
    /// 1. every listener container, in parallel: each finishes the records
    ///    in hand (up to the drain timeout), commits and leaves the group;
    /// 2. the components given to [`super::KafkaApp::on_shutdown`], last
    ///    registered first (an outbox relay sends what the listeners'
    ///    last transactions wrote);
    /// 3. the template is flushed for up to 10 s.
    ///
    /// Calling it again does only step 1 and 3 again (no-ops once stopped).
    pub async fn shutdown(&self) {
        tracing::info!("stopping listener containers");
        self.registry.stop_all().await;
        let hooks = std::mem::take(&mut *crate::util::lock(&self.hooks));
        for hook in hooks.into_iter().rev() {
            tracing::info!(component = %hook.name, "stopping");
            (hook.stop)().await;
        }
        let template = self.infra.template.clone();
        let _ = tokio::task::spawn_blocking(move || template.flush(Duration::from_secs(10))).await;
        tracing::info!("shutdown complete");
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
