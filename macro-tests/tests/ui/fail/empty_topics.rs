use kafka_listener::prelude::*;

#[kafka_listener(topics = [])]
async fn on_order(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders", "", "orders"], id = "bad-names")]
async fn bad_names(value: String) {
    let _ = value;
}

fn main() {}
