use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"], ordering = "keys")]
async fn unknown(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "zero", ordering = "key", parallelism = 0)]
async fn zero(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "partition", parallelism = 8)]
async fn partition(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "batch", batch = true, ordering = "key")]
async fn batch(values: Vec<String>) {
    let _ = values;
}

fn main() {}
