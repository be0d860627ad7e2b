use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"], batch = true)]
async fn batch_of_one(value: Json<u64>, meta: RecordMeta) {
    let _ = (value, meta);
}

#[kafka_listener(topics = ["orders"], id = "record-with-vec")]
async fn record_with_vec(values: Vec<Json<u64>>) {
    let _ = values;
}

fn main() {}
