use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"], retry(multiplier = 0.5))]
async fn on_order(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "zero-attempts", retry(attempts = 0, multiplier = "2"))]
async fn zero_attempts(value: String) {
    let _ = value;
}

fn main() {}
