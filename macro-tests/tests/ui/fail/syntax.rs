use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"],, concurrency 3, group_id = "a" "b", retry = 3)]
async fn on_order(value: String) {
    let _ = value;
}

fn main() {}
