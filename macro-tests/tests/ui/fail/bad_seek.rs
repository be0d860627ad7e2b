use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"], seek = "middle")]
async fn middle(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "offset", seek = 42)]
async fn offset(value: String) {
    let _ = value;
}

fn main() {}
