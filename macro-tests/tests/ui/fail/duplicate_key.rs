use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"], group_id = "a", retry(attempts = 2, attempts = 3), group_id = "b")]
async fn on_order(value: String) {
    let _ = value;
}

fn main() {}
