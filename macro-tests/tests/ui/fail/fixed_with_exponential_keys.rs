use kafka_listener::prelude::*;

#[kafka_listener(
    topics = ["orders"],
    retry(backoff = "fixed", initial = "1s", multiplier = 2.0, max = "10s", jitter = true),
)]
async fn on_order(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "linear", retry(backoff = "linear"))]
async fn linear(value: String) {
    let _ = value;
}

fn main() {}
