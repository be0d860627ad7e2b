//! Test support (feature `test-support`): what Spring's `@EmbeddedKafka`
//! and `KafkaTestUtils` give, for `#[tokio::test]`s of your own listeners.
//!
//! - [`TestKafka::start`]: the cluster named by `KAFKA_TEST_BOOTSTRAP_SERVERS`
//!   ([`BOOTSTRAP_ENV`]), or else a new embedded broker;
//!   [`TestKafka::embedded`] always the embedded broker (for faults);
//!   [`TestKafka::create_topic`], [`TestKafka::recreate_topic`] (empty even
//!   on a long-lived cluster).
//! - [`TestKafka::run_listener`] / [`TestKafka::run_listeners`]: an app on
//!   that broker with one `ListenerSpec`, or with chosen `#[kafka_listener]`
//!   functions, started.
//! - [`TestKafka::template`]: a [`KafkaTemplate`] to send records.
//! - [`wait_until`], [`poll`]: wait for an effect; [`wait_committed`],
//!   [`wait_committed_to_log_end`], [`committed`], [`log_end`]: offsets.
//! - [`read_topic`]: read a topic (a dead-letter topic, an output topic)
//!   from the beginning.
//! - [`Faults`] ([`TestKafka::faults`], embedded broker only): request
//!   errors, a broker down for a while, extra round-trip time; and
//!   [`TestKafka::force_rebalance`] (any broker).
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), kafka_listener::Error> {
//! use std::time::Duration;
//! use kafka_listener::prelude::*;
//! use kafka_listener::testing::{self, TestKafka};
//!
//! let kafka = TestKafka::start()?;
//! let topic = testing::unique("orders");
//! kafka.create_topic(&topic, 1)?;
//! let app = kafka
//!     .run_listener(ListenerSpec::new("orders").topics([&topic]).handler(|v: String| async move {
//!         println!("{v}");
//!     }), ())
//!     .await?;
//! kafka.template()?.send(ProducerRecord::keyed(&topic, "k").value("hello")).await?;
//! testing::wait_committed(kafka.bootstrap_servers(), "orders", &topic, &[1], Duration::from_secs(10)).await;
//! app.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The guide's page "Testing your listeners" (`docs/src/testing.md`) has a
//! complete test, and one per fault.

mod admin;
mod faults;
mod offsets;
mod read;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use self::faults::{ApiKey, Faults, ResponseError};
pub use self::offsets::{
    committed, log_end, try_committed, wait_committed, wait_committed_to_log_end,
};
pub use self::read::{read_topic, read_topic_blocking};
use crate::app::{KafkaApp, KafkaAppBuilder, RunningApp};
use crate::config::KafkaConfig;
use crate::embedded::EmbeddedBroker;
use crate::error::{Error, Result};
use crate::listener::ListenerSpec;
use crate::producer::KafkaTemplate;

/// The variable naming a real cluster (`host:port[,...]`) for the tests:
/// set, [`TestKafka::start`] uses it; unset or blank, it starts an
/// embedded broker.
pub const BOOTSTRAP_ENV: &str = "KAFKA_TEST_BOOTSTRAP_SERVERS";

/// The variable naming a PostgreSQL database for the tests
/// ([`test_database_url`]).
pub const DATABASE_ENV: &str = "TEST_DATABASE_URL";

/// How often [`poll`], [`wait_until`] and the offset waits probe.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The real cluster's bootstrap servers from [`BOOTSTRAP_ENV`], or `None`
/// when it is unset or blank.
pub fn real_bootstrap() -> Option<String> {
    std::env::var(BOOTSTRAP_ENV)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Whether the environment has `CI=true` (as CI services set it): there a
/// test that cannot run must fail, not skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// [`DATABASE_ENV`] (a PostgreSQL URL), or `None` when it is unset or
/// blank: the caller says that it skipped.
///
/// # Panics
/// With `CI=true` and no URL: CI runs every PostgreSQL test, never a skip
/// dressed as a pass.
pub fn test_database_url() -> Option<String> {
    let url = std::env::var(DATABASE_ENV)
        .ok()
        .filter(|u| !u.trim().is_empty());
    if url.is_none() && in_ci() {
        panic!("CI=true but {DATABASE_ENV} is not set: the PostgreSQL tests must run in CI");
    }
    url
}

/// `base` followed by a suffix unique to this process and call
/// (`<base>.<pid>-<millis>-<n>`), for topic and group names: tests that
/// run in parallel, or again on a long-lived cluster, never share a topic
/// or a group.
pub fn unique(base: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{base}.{}-{}-{}",
        std::process::id(),
        crate::util::now_ms(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The broker of one test: the real cluster of [`BOOTSTRAP_ENV`], or an
/// embedded broker (librdkafka's mock cluster) owned by this value and
/// stopped when the last clone of its `Arc` is dropped.
#[derive(Debug, Clone)]
pub struct TestKafka {
    bootstrap: String,
    embedded: Option<Arc<EmbeddedBroker>>,
}

impl TestKafka {
    /// The cluster of `KAFKA_TEST_BOOTSTRAP_SERVERS` when it is set,
    /// otherwise a new embedded broker (`@EmbeddedKafka`).
    ///
    /// # Errors
    /// [`Error::Embedded`] when the embedded broker cannot start.
    pub fn start() -> Result<Self> {
        match real_bootstrap() {
            Some(bootstrap) => Ok(Self {
                bootstrap,
                embedded: None,
            }),
            None => Self::embedded(),
        }
    }

    /// Always a new embedded broker, whatever the environment says: for
    /// tests that inject faults ([`TestKafka::faults`]).
    ///
    /// # Errors
    /// [`Error::Embedded`] when the embedded broker cannot start.
    pub fn embedded() -> Result<Self> {
        let broker = EmbeddedBroker::start()?;
        Ok(Self {
            bootstrap: broker.bootstrap_servers().to_owned(),
            embedded: Some(Arc::new(broker)),
        })
    }

    /// `host:port[,...]`, for any Kafka client.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Whether this is a real cluster (not the embedded broker).
    pub fn is_real(&self) -> bool {
        self.embedded.is_none()
    }

    /// The embedded broker, `None` on a real cluster.
    pub fn embedded_broker(&self) -> Option<&Arc<EmbeddedBroker>> {
        self.embedded.as_ref()
    }

    /// Fault injection on the embedded broker.
    ///
    /// # Errors
    /// [`Error::Config`] on a real cluster: start the test with
    /// [`TestKafka::embedded`].
    pub fn faults(&self) -> Result<Faults> {
        self.embedded.clone().map(Faults::new).ok_or_else(|| {
            Error::Config(
                "fault injection needs the embedded broker: start the test with \
                 TestKafka::embedded(), not on KAFKA_TEST_BOOTSTRAP_SERVERS"
                    .into(),
            )
        })
    }

    /// Creates `topic` with `partitions` partitions (an existing topic is
    /// left as it is). On a real cluster with the broker's replication
    /// factor, and waits until every partition has a leader (30 s at most).
    ///
    /// # Errors
    /// [`Error::Embedded`] or [`Error::Config`] with the broker's reason.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        match &self.embedded {
            Some(b) => b.create_topic(topic, partitions),
            None => admin::create_topic(&self.bootstrap, topic, partitions),
        }
    }

    /// As [`TestKafka::create_topic`], but on a real cluster a topic of
    /// that name is deleted first, with the groups' offsets of it: for the
    /// fixed topic names of `#[kafka_listener]` functions, so that a test
    /// can run again and again on a long-lived cluster. On the embedded
    /// broker (new for each test) it only creates.
    ///
    /// # Errors
    /// As [`TestKafka::create_topic`]; [`Error::Config`] when the topic
    /// cannot be deleted.
    pub fn recreate_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        if self.is_real() {
            admin::delete_topic(&self.bootstrap, topic)?;
        }
        self.create_topic(topic, partitions)
    }

    /// A [`KafkaConfig`] pointing at this broker, with a 6 s session
    /// timeout and 500 ms heartbeats, so that a member that leaves is
    /// noticed quickly in tests.
    pub fn config(&self) -> KafkaConfig {
        KafkaConfig::new()
            .bootstrap_servers(&self.bootstrap)
            .consumer_property("session.timeout.ms", "6000")
            .consumer_property("heartbeat.interval.ms", "500")
    }

    /// An app builder on this broker ([`TestKafka::config`]; the embedded
    /// broker is handed over as the app's own), with no listener yet:
    /// add them with [`KafkaAppBuilder::listener`] or
    /// [`KafkaAppBuilder::only_listeners`].
    pub fn app(&self) -> KafkaAppBuilder {
        let builder = KafkaApp::builder().config(self.config());
        match &self.embedded {
            Some(b) => builder.embedded_broker(Arc::clone(b)),
            None => builder,
        }
    }

    /// Builds and starts an app on this broker that runs only `spec`
    /// (Spring's test with one `@KafkaListener`), with `state` for its
    /// `State<T>` arguments (`()` when it takes none).
    ///
    /// # Errors
    /// As [`KafkaAppBuilder::build`] and [`KafkaApp::start`].
    pub async fn run_listener<S: Clone + Send + Sync + 'static>(
        &self,
        spec: ListenerSpec,
        state: S,
    ) -> Result<RunningApp> {
        self.app()
            .without_discovered_listeners()
            .listener(spec)
            .build()
            .await?
            .state(state)
            .start()
            .await
    }

    /// Builds and starts an app on this broker that runs only the
    /// `#[kafka_listener]` functions with these ids, with `state` (for
    /// their `State<T>` arguments; `()` when they take none).
    ///
    /// # Errors
    /// As [`KafkaAppBuilder::build`] and [`KafkaApp::start`];
    /// [`Error::Config`] when an id names no registered listener.
    pub async fn run_listeners<S: Clone + Send + Sync + 'static>(
        &self,
        ids: &[&str],
        state: S,
    ) -> Result<RunningApp> {
        let known: Vec<String> = crate::listener::registered_listeners()
            .map(|l| l.id().to_owned())
            .collect();
        if let Some(missing) = ids.iter().find(|id| !known.iter().any(|k| k == *id)) {
            return Err(Error::Config(format!(
                "run_listeners: no #[kafka_listener] with id `{missing}`; the registered ids: {known:?}"
            )));
        }
        self.app()
            .only_listeners(ids.iter().copied())
            .build()
            .await?
            .state(state)
            .start()
            .await
    }

    /// A template that sends to this broker (`acks=all`, idempotent).
    ///
    /// # Errors
    /// [`Error::Kafka`] when librdkafka refuses the configuration.
    pub fn template(&self) -> Result<KafkaTemplate> {
        KafkaTemplate::new(&self.config().producer_config(&self.bootstrap))
    }

    /// As [`Self::template`], with transactions
    /// ([`KafkaTemplate::in_transaction`]) whose `transactional.id`s start
    /// with `prefix`.
    ///
    /// # Errors
    /// As [`Self::template`].
    pub fn transactional_template(&self, prefix: &str) -> Result<KafkaTemplate> {
        let config = self.config().producer_config(&self.bootstrap);
        Ok(KafkaTemplate::new(&config)?.with_transactions(&config, prefix))
    }

    /// Forces a rebalance of `group` on `topics`: a consumer of its own
    /// joins the group, holds what it is assigned for `hold`, and leaves
    /// (two rebalances for the group's members). It reads nothing for the
    /// group and commits nothing, so the records of the partitions it held
    /// go back to the listener. Works on any broker. Returns the
    /// (topic, partition)s the intruder was assigned, sorted.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the consumer cannot be created or subscribe;
    /// [`Error::Config`] when it was assigned nothing within 30 s (the
    /// group has as many members as partitions already).
    pub async fn force_rebalance(
        &self,
        group: &str,
        topics: &[&str],
        hold: Duration,
    ) -> Result<Vec<(String, i32)>> {
        faults::force_rebalance(&self.bootstrap, group, topics, hold).await
    }
}

/// A consumer of `bootstrap` that never commits, in `group` (or in a
/// group of the test support's own when it only reads or asks for
/// metadata).
fn consumer(
    bootstrap: &str,
    group: Option<&str>,
) -> rdkafka::error::KafkaResult<rdkafka::consumer::BaseConsumer> {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group.unwrap_or("kafka-listener-test-support"))
        .set("enable.auto.commit", "false")
        .set("allow.auto.create.topics", "false")
        .create()
}

/// Probes every [`POLL_INTERVAL`] until `probe` gives `Some`; returns it.
///
/// # Panics
/// After `timeout`, naming `what` was waited for (a test's failure).
pub async fn poll<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Checks every [`POLL_INTERVAL`] until `check` holds.
///
/// # Panics
/// After `timeout`, naming `what` was waited for (a test's failure).
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    poll(timeout, what, || {
        let f = check();
        async move { f.await.then_some(()) }
    })
    .await
}
