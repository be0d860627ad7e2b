use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"], retry(initial = "fast", max = "10 parsecs"))]
async fn on_order(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "sub-millisecond", retry(backoff = "fixed", initial = "1500us"))]
async fn sub_millisecond(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "initial-over-max", retry(initial = "1m", max = "10s"))]
async fn initial_over_max(value: String) {
    let _ = value;
}

fn main() {}
