//! Every key of `#[kafka_listener]` and of `retry(...)`, checked on the
//! registered spec.
use kafka_listener::__private::registered_listeners;
use kafka_listener::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct IssueRequested {
    coupon_id: String,
}

fn keep_all(record: &ConsumerRecord) -> bool {
    record.offset() >= 0
}

#[kafka_listener(
    topics = ["coupon.issue.requested", "coupon.issue.retried"],
    group_id = "coupon-issuer",
    id = "coupon-issuer-listener",
    concurrency = 3,
    ack_mode = "record",
    auto_startup = false,
    properties = [("max.poll.interval.ms", "300000"), ("fetch.min.bytes", "1")],
    batch = false,
    retry(attempts = 5, backoff = "exponential", initial = "100ms", max = "10s", multiplier = 1.5, jitter = false),
    rate_limit = "100/10s",
    filter = keep_all,
    isolation = "read_uncommitted",
    seek = "beginning",
    ordering = "key",
    parallelism = 64,
    crate = "::kafka_listener",
)]
async fn issue(req: Json<IssueRequested>) -> Result<(), ListenerError> {
    let _ = &req.coupon_id;
    Ok(())
}

fn main() {
    let spec = registered_listeners()
        .next()
        .expect("one listener is registered");
    assert_eq!(spec.id(), "coupon-issuer-listener");
    assert_eq!(spec.configured_group_id(), "coupon-issuer");
    assert_eq!(
        spec.topic_names(),
        ["coupon.issue.requested", "coupon.issue.retried"]
    );
    assert_eq!(spec.configured_concurrency(), 3);
    assert!(!spec.starts_automatically());
    let debug = format!("{spec:?}");
    assert!(debug.contains("ack_mode: Record"), "{debug}");
    assert!(debug.contains("filter: true"), "{debug}");
    assert!(
        debug.contains("isolation_level: Some(ReadUncommitted)"),
        "{debug}"
    );
    assert!(debug.contains("transactional: false"), "{debug}");
    assert!(
        debug.contains("seek_on_assignment: Some(Beginning)"),
        "{debug}"
    );
    assert!(debug.contains("ordering: Key"), "{debug}");
    assert_eq!(spec.effective_parallelism(), 64);
    let policy = RetryPolicy::exponential(
        5,
        std::time::Duration::from_millis(100),
        1.5,
        std::time::Duration::from_secs(10),
    );
    assert!(
        debug.contains(&format!("retry: Some({policy:?})")),
        "{debug}"
    );
}
