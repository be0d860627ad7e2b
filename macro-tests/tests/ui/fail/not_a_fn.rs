use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"])]
struct Orders;

fn main() {
    let _ = Orders;
}
