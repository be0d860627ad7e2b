use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"], ack_mode = "auto")]
async fn on_order(value: String) {
    let _ = value;
}

fn main() {}
