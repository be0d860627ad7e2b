use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"], transactional = "yes")]
async fn not_a_bool(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "manual", transactional = true, ack_mode = "manual")]
async fn manual(value: String, ack: Acknowledgment) {
    let _ = value;
    ack.acknowledge();
}

#[kafka_listener(topics = ["orders"], id = "keyed", transactional = true, ordering = "key")]
async fn keyed(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "snapshot", isolation = "snapshot")]
async fn snapshot(value: String) {
    let _ = value;
}

fn main() {}
