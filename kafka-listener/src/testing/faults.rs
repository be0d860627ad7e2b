//! Fault injection on the embedded broker, and a forced rebalance on any
//! broker: what a listener does when Kafka misbehaves, tested in-process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::embedded::EmbeddedBroker;
use crate::error::{Error, Result};

/// A Kafka API (request type), for [`Faults::request_errors`]: `Produce`,
/// `Fetch`, `OffsetCommit`, `Heartbeat`, `JoinGroup`, ... (librdkafka's
/// `rd_kafka_ApiKey_t`).
pub use rdkafka::types::RDKafkaApiKey as ApiKey;
/// A Kafka error code a broker answers with, for
/// [`Faults::request_errors`]: `RD_KAFKA_RESP_ERR_NOT_COORDINATOR`,
/// `RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS`, ... (librdkafka's
/// `rd_kafka_resp_err_t`).
pub use rdkafka::types::RDKafkaRespErr as ResponseError;

/// The embedded broker's id (its mock cluster has one broker).
const BROKER_ID: i32 = 1;

/// Faults on the embedded broker (librdkafka's mock cluster API,
/// `rd_kafka_mock_*`), from [`super::TestKafka::faults`]. Each lasts until
/// it is undone or used up; none survives the broker.
#[derive(Debug, Clone)]
pub struct Faults {
    broker: Arc<EmbeddedBroker>,
}

impl Faults {
    pub(super) fn new(broker: Arc<EmbeddedBroker>) -> Self {
        Self { broker }
    }

    /// The next `errors.len()` requests of type `api`, from any client, are
    /// answered with these errors, in order; later ones are served again
    /// (`rd_kafka_mock_push_request_errors`). A retriable error
    /// (`NOT_COORDINATOR`, `REQUEST_TIMED_OUT`) makes the client try again; a
    /// fatal one (`TOPIC_AUTHORIZATION_FAILED`) fails the call, for example
    /// a dead-letter publish, which the container then retries.
    ///
    /// # Errors
    /// [`Error::Embedded`] when the broker has stopped.
    pub fn request_errors(&self, api: ApiKey, errors: &[ResponseError]) -> Result<()> {
        let errors = errors.to_vec();
        self.broker
            .with_mock(move |m| m.request_errors(api, &errors))
    }

    /// Drops the errors still queued for `api` by
    /// [`Faults::request_errors`].
    ///
    /// # Errors
    /// [`Error::Embedded`] when the broker has stopped.
    pub fn clear_request_errors(&self, api: ApiKey) -> Result<()> {
        self.broker.with_mock(move |m| m.clear_request_errors(api))
    }

    /// Takes the broker down: it closes its connections and refuses new
    /// ones until [`Faults::broker_up`] (`rd_kafka_mock_broker_set_down`).
    /// Sends wait in the producer's queue, consumers fetch nothing and
    /// commits fail.
    ///
    /// # Errors
    /// [`Error::Embedded`] when the broker has stopped or refuses.
    pub fn broker_down(&self) -> Result<()> {
        self.broker
            .with_mock(|m| m.broker_down(BROKER_ID))?
            .map_err(|e| Error::Embedded(format!("broker down: {e}")))
    }

    /// Brings the broker back after [`Faults::broker_down`].
    ///
    /// # Errors
    /// [`Error::Embedded`] when the broker has stopped or refuses.
    pub fn broker_up(&self) -> Result<()> {
        self.broker
            .with_mock(|m| m.broker_up(BROKER_ID))?
            .map_err(|e| Error::Embedded(format!("broker up: {e}")))
    }

    /// The broker is down for `outage`, then up again; resolves once it
    /// is up.
    ///
    /// # Errors
    /// As [`Faults::broker_down`] and [`Faults::broker_up`].
    pub async fn broker_down_for(&self, outage: Duration) -> Result<()> {
        self.broker_down()?;
        tokio::time::sleep(outage).await;
        self.broker_up()
    }

    /// Every answer of the broker is delayed by `delay` (`Duration::ZERO`
    /// to undo; `rd_kafka_mock_broker_set_rtt`): a slow network or a
    /// loaded broker.
    ///
    /// # Errors
    /// [`Error::Embedded`] when the broker has stopped or refuses.
    pub fn round_trip_time(&self, delay: Duration) -> Result<()> {
        self.broker
            .with_mock(move |m| m.broker_round_trip_time(BROKER_ID, delay))?
            .map_err(|e| Error::Embedded(format!("round-trip time: {e}")))
    }
}

/// See [`super::TestKafka::force_rebalance`].
pub(super) async fn force_rebalance(
    bootstrap: &str,
    group: &str,
    topics: &[&str],
    hold: Duration,
) -> Result<Vec<(String, i32)>> {
    let (b, g) = (bootstrap.to_owned(), group.to_owned());
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    tokio::task::spawn_blocking(move || intrude(&b, &g, &topics, hold))
        .await
        .map_err(|e| Error::Config(format!("the rebalancing consumer panicked: {e}")))?
}

/// Joins `group` with a consumer of its own, polls until it is assigned
/// (or 30 s), keeps that for `hold`, then leaves the group.
fn intrude(
    bootstrap: &str,
    group: &str,
    topics: &[String],
    hold: Duration,
) -> Result<Vec<(String, i32)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("client.id", "kafka-listener-rebalancer")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let assigned = loop {
        // The intruder never reads: what it fetches is not its to take.
        let _ = consumer.poll(Duration::from_millis(100));
        let now = consumer.assignment()?;
        if now.count() > 0 {
            break now;
        }
        if Instant::now() >= deadline {
            return Err(Error::Config(format!(
                "force_rebalance: joined group {group} but got no partition of {topics:?} in 30 s \
                 (does the group have fewer partitions than members?)"
            )));
        }
    };
    let held = Instant::now();
    while held.elapsed() < hold {
        let _ = consumer.poll(Duration::from_millis(100));
    }
    consumer.unsubscribe();
    let mut out: Vec<(String, i32)> = assigned
        .elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect();
    out.sort();
    Ok(out)
}
