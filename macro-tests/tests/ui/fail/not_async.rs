use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"])]
fn on_order(value: String) {
    let _ = value;
}

fn main() {}
