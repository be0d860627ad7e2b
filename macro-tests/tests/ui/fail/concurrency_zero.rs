use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"], concurrency = 0)]
async fn on_order(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "negative", concurrency = -2)]
async fn negative(value: String) {
    let _ = value;
}

fn main() {}
