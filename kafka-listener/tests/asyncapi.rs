//! The AsyncAPI document of an app (feature `asyncapi`): channels,
//! operations and messages generated from its `#[kafka_listener]`
//! functions, outbox events and declared topics, with the payload schemas
//! (JSON Schema from schemars, Avro), valid against the AsyncAPI 3.0.0
//! JSON Schema (`tests/asyncapi/asyncapi-3.0.0.schema.json`, from
//! `@asyncapi/specs`).

mod support;

use kafka_listener::after_commit::OutboxEvent;
use kafka_listener::asyncapi::AsyncApi;
use kafka_listener::prelude::*;
use kafka_listener::schema::{MessageSchema, SchemaFormat};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use support::*;

/// A JSON payload with a schema (read only through its schema here).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct Order {
    id: String,
    quantity: u32,
    note: Option<String>,
}

/// An Avro payload.
#[derive(Debug, Serialize, Deserialize, apache_avro::AvroSchema)]
struct Payment {
    order_id: String,
    amount: i64,
}

/// A JSON payload without `JsonSchema`.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Untyped {
    anything: String,
}

/// An outbox event with a JSON Schema.
#[derive(Debug, Serialize, schemars::JsonSchema, OutboxEvent)]
#[outbox(topic = "asyncapi.orders.accepted", key = "order_id")]
struct OrderAccepted {
    order_id: String,
    total: i64,
}

#[kafka_listener(topics = ["asyncapi.orders"], group_id = "asyncapi-orders")]
async fn on_order(_order: Json<Order>, _meta: RecordMeta) {}

#[kafka_listener(topics = ["asyncapi.payments"], id = "asyncapi-payments")]
async fn on_payment(_payment: Avro<Payment>) {}

#[kafka_listener(topics = ["asyncapi.untyped"], batch = true, id = "asyncapi-untyped")]
async fn on_untyped(_batch: Vec<Json<Untyped>>) {}

#[kafka_listener(topic_pattern = "^asyncapi\\.audit\\..*", id = "asyncapi-audit")]
async fn on_audit(_record: ConsumerRecord) {}

/// Validates `doc` against the AsyncAPI 3.0.0 JSON Schema; the errors.
fn asyncapi_errors(doc: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(include_str!("asyncapi/asyncapi-3.0.0.schema.json"))
        .expect("the AsyncAPI schema is JSON");
    let validator = jsonschema::draft7::new(&schema).expect("the AsyncAPI schema compiles");
    validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_every_listener_event_and_topic_with_schemas_and_is_valid_asyncapi_3() {
    init_tracing();
    let broker = embedded_broker("asyncapi.orders", 3);
    let app = KafkaApp::builder()
        .config(config(&broker))
        .topic(NewTopic::new("asyncapi.orders", 3))
        .topic(NewTopic::new("asyncapi.shipments", 2))
        .build()
        .await
        .unwrap();
    let doc = AsyncApi::new("asyncapi-test", "1.2.3")
        .description("The test app.")
        .sends("asyncapi.shipments", MessageSchema::json::<Order>())
        .document(&app);
    let errors = asyncapi_errors(&doc);
    assert!(
        errors.is_empty(),
        "not valid AsyncAPI 3.0.0: {errors:#?}\n{doc:#}"
    );
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["info"]["version"], "1.2.3");

    // A JSON listener: its channel (with the declared partitions), its
    // receive operation (with the group), its message's JSON Schema.
    let orders = &doc["channels"]["asyncapi.orders"];
    assert_eq!(orders["address"], "asyncapi.orders");
    assert_eq!(orders["bindings"]["kafka"]["partitions"], 3);
    let receive = &doc["operations"]["receive-on_order"];
    assert_eq!(receive["action"], "receive");
    assert_eq!(receive["channel"]["$ref"], "#/channels/asyncapi.orders");
    assert_eq!(
        receive["bindings"]["kafka"]["groupId"]["enum"][0],
        "asyncapi-orders"
    );
    assert_eq!(
        receive["messages"][0]["$ref"],
        "#/channels/asyncapi.orders/messages/Order"
    );
    let order = &doc["components"]["messages"]["Order"];
    assert_eq!(order["contentType"], "application/json");
    let properties = &order["payload"]["properties"];
    assert_eq!(properties["quantity"]["type"], "integer");
    assert_eq!(properties["id"]["type"], "string");
    let required = order["payload"]["required"].as_array().unwrap();
    assert!(required.contains(&"id".into()) && !required.contains(&"note".into()));

    // An Avro listener: the Avro schema in a multi-format schema object.
    let payment = &doc["components"]["messages"]["Payment"];
    assert_eq!(payment["contentType"], "application/vnd.apache.avro+binary");
    assert_eq!(
        payment["payload"]["schemaFormat"],
        "application/vnd.apache.avro+json;version=1.9.0"
    );
    assert_eq!(payment["payload"]["schema"]["type"], "record");
    assert_eq!(payment["payload"]["schema"]["name"], "Payment");

    // A JSON payload without `JsonSchema`: a message without payload.
    let untyped = &doc["components"]["messages"]["Untyped"];
    assert_eq!(untyped["name"], "Untyped");
    assert!(untyped.get("payload").is_none(), "{untyped}");
    // Metadata and raw records are not messages.
    assert_eq!(
        doc["operations"]["receive-asyncapi-audit"]["messages"],
        Value::Array(vec![])
    );
    let audit = doc["channels"]
        .as_object()
        .unwrap()
        .values()
        .find(|c| {
            c["description"]
                .as_str()
                .is_some_and(|d| d.contains("asyncapi\\.audit"))
        })
        .expect("the pattern listener's channel");
    assert!(audit["address"].is_null());

    // The outbox event: a send operation with its JSON Schema.
    let publish = &doc["operations"]["publish-OrderAccepted"];
    assert_eq!(publish["action"], "send");
    assert_eq!(
        publish["channel"]["$ref"],
        format!("#/channels/{}", OrderAccepted::TOPIC)
    );
    let accepted = &doc["components"]["messages"]["OrderAccepted"];
    assert_eq!(
        accepted["payload"]["properties"]["total"]["type"],
        "integer"
    );

    // What the app says it sends, on a topic it declared and nobody reads.
    let send = &doc["operations"]["send-asyncapi.shipments"];
    assert_eq!(send["action"], "send");
    assert_eq!(
        doc["channels"]["asyncapi.shipments"]["bindings"]["kafka"]["partitions"],
        2
    );
    assert_eq!(MessageSchema::json::<Order>().format, SchemaFormat::Json);
}

#[test]
fn an_invalid_document_is_refused_by_the_schema() {
    // The check itself can fail: a document without `info` and with an
    // operation of an unknown action is refused.
    let bad = serde_json::json!({
        "asyncapi": "3.0.0",
        "operations": { "x": { "action": "publish", "channel": { "$ref": "#/channels/a" } } }
    });
    let errors = asyncapi_errors(&bad);
    assert!(errors.len() >= 2, "{errors:?}");
}
