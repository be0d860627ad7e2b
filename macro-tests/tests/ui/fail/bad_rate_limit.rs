use kafka_listener::prelude::*;

#[kafka_listener(topics = ["queue"], rate_limit = "0/10s")]
async fn no_permits(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["queue"], id = "zero-window", rate_limit = "5/0s")]
async fn zero_window(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["queue"], id = "no-slash", rate_limit = "100 per 10s")]
async fn no_slash(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["queue"], id = "number", rate_limit = 100)]
async fn a_number(value: String) {
    let _ = value;
}

fn main() {}
