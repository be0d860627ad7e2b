use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"])]
async fn on_order(value: String, count: u32) {
    let _ = (value, count);
}

fn main() {}
