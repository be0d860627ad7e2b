//! `reply_to` on listeners that return a value: each one's reply
//! destination as registered.
use kafka_listener::__private::registered_listeners;
use kafka_listener::prelude::*;
use kafka_listener::ReplyTo;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct PriceRequest {
    sku: String,
}

#[derive(Serialize)]
struct Price {
    sku: String,
    cents: u64,
}

#[kafka_listener(topics = ["prices.requests"], reply = true)]
async fn price(req: Json<PriceRequest>) -> Result<Json<Price>, ListenerError> {
    Ok(Json(Price {
        sku: req.0.sku,
        cents: 42,
    }))
}

#[kafka_listener(topics = ["orders"], send_to = "orders.audit")]
async fn audit(order: String) -> Option<Reply> {
    (!order.is_empty()).then(|| Reply::bytes(order).header("audited", "yes"))
}

#[kafka_listener(topics = ["echo"], reply = true)]
async fn echo(text: String) -> String {
    text
}

#[kafka_listener(topics = ["plain"], reply = false)]
async fn plain(text: String) {
    let _ = text;
}

fn main() {
    let mut specs: Vec<_> = registered_listeners().collect();
    specs.sort_by(|a, b| a.id().cmp(b.id()));
    let destinations: Vec<_> = specs
        .iter()
        .map(|s| (s.id().to_owned(), s.reply_destination().cloned()))
        .collect();
    assert_eq!(
        destinations,
        [
            (
                "audit".to_owned(),
                Some(ReplyTo::Topic("orders.audit".into()))
            ),
            ("echo".to_owned(), Some(ReplyTo::Request)),
            ("plain".to_owned(), None),
            ("price".to_owned(), Some(ReplyTo::Request)),
        ]
    );
}
