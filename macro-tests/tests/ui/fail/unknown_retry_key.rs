use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"], retry(attempts = 3, delay = "1s"))]
async fn on_order(value: String) {
    let _ = value;
}

fn main() {}
