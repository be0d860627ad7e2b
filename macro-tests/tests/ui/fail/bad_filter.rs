use kafka_listener::prelude::*;

fn not_a_filter(n: u32) -> bool {
    n > 0
}

#[kafka_listener(topics = ["orders"], filter = "even")]
async fn string(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "closure", filter = |r| true)]
async fn closure(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "missing", filter)]
async fn missing(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "wrong_type", filter = not_a_filter)]
async fn wrong_type(value: String) {
    let _ = value;
}

fn main() {}
