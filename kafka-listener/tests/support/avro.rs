//! Types and helpers shared by the Avro integration tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apache_avro::AvroSchema;
use kafka_listener::prelude::*;
use serde::{Deserialize, Serialize};

/// Version 1 of the order value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(name = "Order", namespace = "shop")]
pub struct OrderV1 {
    pub id: String,
    pub amount_cents: i64,
}

/// Version 2: a field added with a default (BACKWARD compatible).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(name = "Order", namespace = "shop")]
pub struct OrderV2 {
    pub id: String,
    pub amount_cents: i64,
    #[avro(default = "\"EUR\"")]
    pub currency: String,
}

/// An incompatible change: a new field without a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(name = "Order", namespace = "shop")]
pub struct OrderV3 {
    pub id: String,
    pub amount_cents: i64,
    pub warehouse: String,
}

/// An Avro key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, AvroSchema)]
#[avro(name = "OrderKey", namespace = "shop")]
pub struct OrderKey {
    pub id: String,
}

/// Values a test listener received.
#[derive(Debug, Clone)]
pub struct Got<T>(pub Arc<Mutex<Vec<T>>>);

impl<T> Default for Got<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T: Clone> Got<T> {
    pub fn push(&self, v: T) {
        self.0.lock().unwrap().push(v);
    }
    pub fn all(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<T> {
        let start = std::time::Instant::now();
        while self.0.lock().unwrap().len() < n && start.elapsed() < timeout {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.all()
    }
}

use super::TestBroker;

/// `builder` on `broker`: its embedded broker (the app then serves an
/// embedded Schema Registry beside it), or on a real cluster an embedded
/// Schema Registry started here (the app does not start one beside a real
/// broker).
pub async fn with_test_infra(
    builder: kafka_listener::KafkaAppBuilder,
    broker: &TestBroker,
) -> kafka_listener::KafkaAppBuilder {
    match broker.embedded() {
        Some(embedded) => builder.embedded_broker(embedded).avro(),
        None => builder.embedded_schema_registry(Arc::new(
            kafka_listener::embedded::EmbeddedSchemaRegistry::start()
                .await
                .expect("schema registry"),
        )),
    }
}

/// An app with `config` and only `listeners`, not started.
pub async fn app(
    broker: &TestBroker,
    config: KafkaConfig,
    listeners: Vec<ListenerSpec>,
) -> KafkaApp {
    let mut b = with_test_infra(KafkaApp::builder().config(config), broker)
        .await
        .without_discovered_listeners();
    for l in listeners {
        b = b.listener(l);
    }
    b.build().await.expect("app")
}

pub async fn v1_listener(order: Avro<OrderV1>, got: State<Got<OrderV1>>) {
    got.push(order.0);
}
