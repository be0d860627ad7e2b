use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"], dead_letter = 1)]
async fn not_a_topic(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "empty", dead_letter = "")]
async fn empty_topic(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "flag", dead_letter)]
async fn no_value(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "spaces", dead_letter = "orders dead")]
async fn invalid_topic(value: String) {
    let _ = value;
}

fn main() {}
