// Every problem is reported in one compilation, and the function is still
// emitted, so the call in `main` type-checks.
use kafka_listener::prelude::*;

#[kafka_listener(topics = [], concurrency = 0, ack_mode = "auto", colour = "red", retry(attempts = -1))]
fn on_order(value: String, ack: Acknowledgment) {
    let _ = (value, ack);
}

fn main() {
    let _: fn(String, Acknowledgment) = on_order;
}
