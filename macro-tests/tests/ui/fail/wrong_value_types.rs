use kafka_listener::prelude::*;

const THREE: usize = 3;

#[kafka_listener(
    topics = "orders",
    concurrency = "3",
    auto_startup = "yes",
    batch = 1,
    group_id = 42,
    properties = [("max.poll.interval.ms", 300000), "fetch.min.bytes"],
)]
async fn on_order(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "constant", concurrency = THREE, ack_mode = manual)]
async fn constant(value: String) {
    let _ = value;
}

fn main() {}
