use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"])]
async fn on_order<T: serde::de::DeserializeOwned>(value: Json<T>) {
    let _ = value;
}

fn main() {}
