//! End-to-end tests of the order-saga reference app: every service in this
//! process (HTTP on port 0, embedded broker), on a fresh SQLite file, and on
//! a fresh PostgreSQL database too when `TEST_DATABASE_URL` is set (created
//! here and dropped after the test, so that stock and totals are the
//! test's own).
//!
//! With `KAFKA_TEST_BOOTSTRAP_SERVERS` set the service runs against that
//! real cluster instead; the app's topic and group names are fixed, so each
//! test then holds the app's `AppLock` and starts every group at the log
//! end (see `kafka_listener_tests::AppOnCluster`).

use std::time::Duration;

use kafka_listener::ProducerRecord;
use kafka_listener_tests::saga::{fire, start, Harness};
use order_saga::events::{self, OrderCreated, PaymentCompleted, ShippingCompleted};
use order_saga::{status, Service, ServiceConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The course's own `curl`: one laptop.
fn course_order() -> Value {
    json!({"customerId": "customer-123", "items": [
        {"productId": "ITEM-001", "name": "Laptop", "price": 1500.00, "quantity": 1}]})
}

/// Places [`course_order`] (202, `CREATED`) and waits for its end: its id
/// and its final view.
async fn course_order_ends(h: &Harness) -> (String, Value) {
    let (code, accepted) = h.api.post("/api/orders", course_order()).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["status"], "CREATED");
    let order_id = accepted["orderId"].as_str().unwrap().to_owned();
    let view = h.finished(&order_id).await;
    (order_id, view)
}

/// The steps of an order's history, oldest first.
fn steps(view: &Value) -> Vec<&str> {
    view["history"]
        .as_array()
        .expect("a history")
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect()
}

async fn happy_path_out_of_stock_and_redelivery(database_url: Option<String>) {
    let h = start(database_url, |_| {}).await;
    let initial = h.stock("ITEM-001").await;

    let (order_id, view) = course_order_ends(&h).await;
    assert_eq!(view["status"], status::COMPLETED, "{view}");
    assert_eq!(
        steps(&view),
        [
            "CREATED",
            "PAYMENT_COMPLETED",
            "INVENTORY_RESERVED",
            "SHIPPED",
            "COMPLETED"
        ]
    );
    assert_eq!(view["total"], 1500.0);
    assert_eq!(view["customerId"], "customer-123");
    assert_eq!(view["compensations"], json!([]));
    assert_eq!(view["failedStep"], Value::Null);
    assert_eq!(h.stock("ITEM-001").await, initial - 1);
    assert_eq!(h.payment(&order_id).await, ("CAPTURED".to_owned(), 150_000));

    // Out of stock: two keyboards and the sold-out headphones; paid, then
    // refunded, and the keyboards' stock is untouched.
    let keyboards = h.stock("ITEM-003").await;
    let (code, body) = h
        .api
        .post(
            "/api/orders",
            json!({"customerId": "c-2", "items": [
                {"productId": "ITEM-003", "price": 75, "quantity": 2},
                {"productId": "ITEM-005", "price": 99, "quantity": 1}]}),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let sold_out = body["orderId"].as_str().unwrap().to_owned();
    let view = h.finished(&sold_out).await;
    assert_eq!(view["status"], status::CANCELLED, "{view}");
    assert_eq!(view["failedStep"], "INVENTORY");
    assert_eq!(view["reason"], "out of stock: ITEM-005");
    assert_eq!(view["compensations"], json!(["PAYMENT_REFUNDED"]));
    assert_eq!(
        steps(&view),
        [
            "CREATED",
            "PAYMENT_COMPLETED",
            "INVENTORY_FAILED",
            "PAYMENT_REFUNDED",
            "CANCELLED"
        ]
    );
    assert_eq!(view["items"][0]["name"], "Keyboard", "the catalogue's name");
    assert_eq!(h.stock("ITEM-003").await, keyboards);
    assert_eq!(h.payment(&sold_out).await, ("REFUNDED".to_owned(), 24_900));

    // Redelivery: every step's input for the completed order, sent again
    // as a crash before the offset commit would; each step does nothing.
    let view = h.get_order(&order_id).await;
    let items = vec![events::Item {
        product_id: "ITEM-001".into(),
        name: "Laptop".into(),
        price_cents: 150_000,
        quantity: 1,
    }];
    let at = view["createdAt"].as_i64().unwrap();
    let template = h.service.app().template();
    let again = [
        (
            events::ORDERS_CREATED,
            json!(OrderCreated {
                order_id: order_id.clone(),
                customer_id: "customer-123".into(),
                items: items.clone(),
                total_cents: 150_000,
                at
            }),
        ),
        (
            events::PAYMENTS_COMPLETED,
            json!(PaymentCompleted {
                order_id: order_id.clone(),
                amount_cents: 150_000,
                items: items.clone(),
                at
            }),
        ),
        (
            events::INVENTORY_RESERVED,
            json!({"order_id": order_id, "items": items, "at": at}),
        ),
        (
            events::SHIPPING_COMPLETED,
            json!(ShippingCompleted {
                order_id: order_id.clone(),
                at
            }),
        ),
    ];
    for (topic, value) in &again {
        let record = ProducerRecord::keyed(*topic, order_id.clone())
            .json(value)
            .unwrap();
        let sent = template.send(record).await.unwrap();
        h.wait_consumed(topic, sent.partition, sent.offset).await;
    }
    assert_eq!(h.stock("ITEM-001").await, initial - 1, "stock taken once");
    assert_eq!(h.payment(&order_id).await, ("CAPTURED".to_owned(), 150_000));
    let view = h.get_order(&order_id).await;
    assert_eq!(steps(&view).len(), 5, "{view}");
    h.invariants().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_out_of_stock_and_redelivery_sqlite() {
    happy_path_out_of_stock_and_redelivery(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_out_of_stock_and_redelivery_postgres() {
    let Some(url) = kafka_listener_tests::test_database_url() else {
        eprintln!("TEST_DATABASE_URL not set: PostgreSQL variant skipped");
        return;
    };
    happy_path_out_of_stock_and_redelivery(Some(url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_payment_cancels_with_nothing_to_compensate() {
    let h = start(None, |c| c.payment_failure_rate = 1.0).await;
    let initial = h.stock("ITEM-001").await;
    let (order_id, view) = course_order_ends(&h).await;
    assert_eq!(view["status"], status::CANCELLED, "{view}");
    assert_eq!(view["failedStep"], "PAYMENT");
    assert!(
        view["reason"].as_str().unwrap().contains("declined"),
        "{view}"
    );
    assert_eq!(view["compensations"], json!([]));
    assert_eq!(steps(&view), ["CREATED", "PAYMENT_FAILED", "CANCELLED"]);
    assert_eq!(h.payment(&order_id).await, ("FAILED".to_owned(), 150_000));
    assert_eq!(h.stock("ITEM-001").await, initial);
    let analytics = h.invariants().await;
    assert_eq!(analytics["failures"], json!({"PAYMENT": 1}));
    assert_eq!(analytics["revenueCents"], 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipping_failure_releases_the_stock_then_refunds() {
    let h = start(None, |c| c.shipping_failure_rate = 1.0).await;
    let initial = h.stock("ITEM-001").await;
    let (order_id, view) = course_order_ends(&h).await;
    assert_eq!(view["status"], status::CANCELLED, "{view}");
    assert_eq!(view["failedStep"], "SHIPPING");
    assert_eq!(
        view["compensations"],
        json!(["STOCK_RELEASED", "PAYMENT_REFUNDED"])
    );
    assert_eq!(
        steps(&view),
        [
            "CREATED",
            "PAYMENT_COMPLETED",
            "INVENTORY_RESERVED",
            "SHIPPING_FAILED",
            "STOCK_RELEASED",
            "PAYMENT_REFUNDED",
            "CANCELLED"
        ]
    );
    assert_eq!(h.payment(&order_id).await, ("REFUNDED".to_owned(), 150_000));
    assert_eq!(h.stock("ITEM-001").await, initial, "the stock came back");
    let analytics = h.invariants().await;
    assert_eq!(analytics["failures"], json!({"SHIPPING": 1}));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_json_reason() {
    let h = start(None, |_| {}).await;
    let line = |product: &str, price: Value, quantity: Value| json!({"customerId": "c", "items": [{"productId": product, "price": price, "quantity": quantity}]});
    let cases = [
        (
            json!({"customerId": "c", "items": []}),
            400,
            "items must not be empty",
        ),
        (
            line("ITEM-001", json!(1500), json!(-1)),
            400,
            "quantity of `ITEM-001`",
        ),
        (
            line("ITEM-001", json!(1500), json!(0)),
            400,
            "quantity of `ITEM-001`",
        ),
        (
            line("ITEM-001", json!(-5), json!(1)),
            400,
            "price of `ITEM-001`",
        ),
        (
            line("ITEM-999", json!(10), json!(1)),
            422,
            "unknown product `ITEM-999`",
        ),
        (
            json!({"customerId": " ", "items": []}),
            400,
            "customerId must not be empty",
        ),
        (json!({"items": []}), 422, "customerId"),
        (line("ITEM-001", json!("cheap"), json!(1)), 422, "price"),
    ];
    for (body, expected, reason) in cases {
        let (code, answer) = h.api.post("/api/orders", body.clone()).await;
        assert_eq!(code.as_u16(), expected, "{body} -> {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(reason),
            "{body}: {error:?} should say {reason:?}"
        );
    }
    let (code, answer) = h.api.get("/api/orders/no-such-order").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(answer["error"], "no order `no-such-order`");
    let analytics = h.invariants().await;
    assert_eq!(
        analytics["totalOrders"], 0,
        "no bad request became an order"
    );
    h.stop().await;
}

async fn invariants_under_load(database_url: Option<String>) {
    let h = start(database_url, |c: &mut ServiceConfig| {
        c.payment_failure_rate = 0.15;
        c.shipping_failure_rate = 0.15;
        // Less stock than the load asks for: some orders fail at the
        // inventory step mid-run.
        c.initial_stock = 100;
    })
    .await;
    let accepted = fire(&h.api, 300, 16).await;
    assert_eq!(accepted.len(), 300, "every order accepted");
    h.drained(Duration::from_secs(90)).await;
    let analytics = h.invariants().await;
    for step in ["PAYMENT", "INVENTORY", "SHIPPING"] {
        assert!(
            analytics["failures"][step].as_i64().unwrap_or(0) > 0,
            "the load failed some orders at {step}: {analytics}"
        );
    }
    assert!(
        analytics["ordersByStatus"]["COMPLETED"].as_i64().unwrap() > 0,
        "{analytics}"
    );
    eprintln!("after the load: {analytics}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariants_hold_under_load_with_failures_sqlite() {
    invariants_under_load(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariants_hold_under_load_with_failures_postgres() {
    let Some(url) = kafka_listener_tests::test_database_url() else {
        eprintln!("TEST_DATABASE_URL not set: PostgreSQL variant skipped");
        return;
    };
    invariants_under_load(Some(url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_five_listeners_read_only_and_the_asyncapi_document() {
    let h = start(None, |_| {}).await;
    let (code, all) = h.api.get("/console/api/listeners").await;
    assert_eq!(code, StatusCode::OK, "{all}");
    assert_eq!(all["read_only"], true, "no CONSOLE_TOKEN: read-only");
    let mut ids: Vec<&str> = all["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected: Vec<String> = Service::ALL.iter().map(|s| s.group_id()).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected);
    // Actions are refused without a token.
    let (code, answer) = h
        .api
        .post("/console/api/listeners/order-saga.payment/pause", json!({}))
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("read-only"),
        "{answer}"
    );

    // Every saga topic is a channel; each service's outbox event is a
    // `publish` operation with its JSON Schema.
    let (code, doc) = h.api.get("/console/asyncapi.json").await;
    assert_eq!(code, StatusCode::OK, "{doc}");
    assert_eq!(doc["info"]["title"], "order-saga");
    for topic in order_saga::events::TOPICS
        .iter()
        .filter(|t| **t != order_saga::events::DLT)
    {
        assert_eq!(doc["channels"][*topic]["address"], *topic, "{topic}");
        assert_eq!(
            doc["operations"][format!("publish-{topic}")]["channel"]["$ref"],
            format!("#/channels/{topic}")
        );
    }
    let created = &doc["components"]["messages"]["OrderCreated"];
    assert_eq!(created["contentType"], "application/json");
    let properties = &created["payload"]["properties"];
    for field in ["order_id", "customer_id", "items", "total_cents", "at"] {
        assert!(properties[field].is_object(), "{field} in {created}");
    }
    let receive = &doc["operations"]["receive-order-saga.payment"];
    assert_eq!(receive["action"], "receive", "{doc}");
    h.stop().await;
}
