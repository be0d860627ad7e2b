use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"], crate = "kafka listener")]
async fn on_order(value: String) {
    let _ = value;
}

fn main() {}
