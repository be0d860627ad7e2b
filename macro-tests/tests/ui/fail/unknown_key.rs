use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"], dead_letter_topic = "orders.dead")]
async fn on_order(value: String) {
    let _ = value;
}

fn main() {}
