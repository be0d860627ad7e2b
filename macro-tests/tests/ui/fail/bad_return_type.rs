use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"])]
async fn on_order(value: String) -> u32 {
    value.len() as u32
}

fn main() {}
