use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"], ack_mode = "record")]
async fn on_order(value: String, ack: Acknowledgment) {
    let _ = value;
    ack.acknowledge();
}

#[kafka_listener(topics = ["orders"], id = "default-mode")]
async fn default_mode(value: String, ack: kafka_listener::Acknowledgment) {
    let _ = value;
    ack.acknowledge();
}

fn main() {}
