use kafka_listener::prelude::*;

#[kafka_listener(group_id = "order-processor")]
async fn on_order(value: String) {
    let _ = value;
}

fn main() {}
