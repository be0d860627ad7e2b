use kafka_listener::prelude::*;

#[kafka_listener(
    topics = ["orders"],
    properties = [("group.id", "x"), ("enable.auto.commit", "true"), ("fetch.min.bytes", "1"), ("fetch.min.bytes", "2")],
)]
async fn on_order(value: String) {
    let _ = value;
}

fn main() {}
