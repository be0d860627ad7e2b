use kafka_listener::prelude::*;

// An exponential back-off from 0 never waits: refused at compile time (the
// runtime's builder would refuse it at start-up).
#[kafka_listener(topics = ["orders"], retry(initial = "0ms"))]
async fn from_zero(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["orders"], id = "capped-at-zero", retry(backoff = "exponential", max = "0s"))]
async fn capped_at_zero(value: String) {
    let _ = value;
}

// A fixed back-off without a pause is allowed.
#[kafka_listener(topics = ["orders"], id = "no-pause", retry(backoff = "fixed", initial = "0ms"))]
async fn no_pause(value: String) {
    let _ = value;
}

fn main() {}
