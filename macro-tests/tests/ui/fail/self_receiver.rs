use kafka_listener::prelude::*;

struct Orders;

impl Orders {
    #[kafka_listener(topics = ["orders"])]
    async fn on_order(&self, value: String) {
        let _ = value;
    }
}

fn main() {}
