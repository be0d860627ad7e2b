use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"], retry_topics(attempts = 0, delays = []))]
async fn zero_attempts(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "bad-delays", retry_topics(delays = ["soon", "0s", "1500us"]))]
async fn bad_delays(value: String) {
    let _ = value;
}

#[kafka_listener(topic_pattern = "^orders", id = "pattern", retry_topics(attempts = 2))]
async fn with_pattern(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "not-nested", retry_topics = 3)]
async fn not_nested(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "unknown", retry_topics(delay = "1s"))]
async fn unknown_key(value: String) {
    let _ = value;
}

fn main() {}
