//! A topic pattern with a fixed back-off.
use kafka_listener::prelude::*;

#[kafka_listener(
    topic_pattern = "^coupon\\..*",
    retry(attempts = 2, backoff = "fixed", initial = "250ms")
)]
async fn any_coupon_event(record: ConsumerRecord) {
    let _ = record;
}

#[kafka_listener(
    topic_pattern = "^audit\\..*",
    id = "default-fixed",
    retry(backoff = "fixed")
)]
async fn default_fixed(_record: ConsumerRecord) {}

fn main() {
    let spec = kafka_listener::__private::registered_listeners()
        .find(|s| s.id() == "any_coupon_event")
        .unwrap();
    assert!(spec.topic_names().is_empty());
    let debug = format!("{spec:?}");
    assert!(
        debug.contains(r#"topic_pattern: Some("^coupon\\..*")"#),
        "{debug}"
    );
    assert!(
        debug.contains("retry: Some(RetryPolicy { attempts: 2, backoff: Fixed(250ms) })"),
        "{debug}"
    );
    let spec = kafka_listener::__private::registered_listeners()
        .find(|s| s.id() == "default-fixed")
        .unwrap();
    let debug = format!("{spec:?}");
    assert!(
        debug.contains("retry: Some(RetryPolicy { attempts: 3, backoff: Fixed(1s) })"),
        "{debug}"
    );
}
