//! Non-blocking retries through retry topics, on the embedded broker or a
//! real one (see `support`): a
//! failed record moves to `<topic>-retry-<ms>` topics, comes back after
//! each delay while the records behind it go on, and then goes to the
//! dead-letter topic.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_listener::prelude::*;
use kafka_listener::record::headers as h;
use kafka_listener::record::headers::{
    RETRY_TOPIC_ATTEMPTS as ATTEMPTS_HEADER,
    RETRY_TOPIC_BACKOFF_TIMESTAMP as BACKOFF_TIMESTAMP_HEADER,
};
use kafka_listener::RetryTopics;
use rdkafka::Message;
use serde::Deserialize;
use support::*;

#[derive(Debug, Deserialize)]
struct Msg {
    seq: u64,
}

/// (when, topic, seq) of every call.
#[derive(Debug, Clone, Default)]
struct Calls(Arc<Mutex<Vec<(Instant, String, u64)>>>);

impl Calls {
    fn push(&self, topic: String, seq: u64) {
        self.0.lock().unwrap().push((Instant::now(), topic, seq));
    }
}

#[derive(Debug, thiserror::Error)]
#[error("seq {0} fails")]
struct Fails(u64);

/// Seq 0 always fails; the others succeed.
async fn handler(
    msg: Json<Msg>,
    meta: RecordMeta,
    calls: State<Calls>,
) -> Result<(), ListenerError> {
    calls.push(meta.topic.to_string(), msg.seq);
    if msg.seq == 0 {
        return Err(Fails(0).into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_topics_deliver_after_their_delays_then_dead_letter() {
    init_tracing();
    let topic = &unique("rt.orders");
    let broker = broker(topic, 1);
    for t in ["-retry-500", "-retry-1500", "-dlt"] {
        broker.create_topic(&format!("{topic}{t}"), 1).unwrap();
    }
    let calls = Calls::default();
    let app = listener_app(
        &broker,
        ListenerSpec::new("rt")
            .group_id(unique("rt"))
            .topics([topic])
            .retry_topics(RetryTopics::new(
                3,
                [Duration::from_millis(500), Duration::from_millis(1500)],
            ))
            .handler(handler),
        calls.clone(),
    )
    .await
    .start()
    .await
    .unwrap();
    produce(&app.template(), topic, 0..3, 1).await;
    let b = app.bootstrap_servers().to_owned();
    let letters =
        read_topic_async(&b, &format!("{topic}-dlt"), 1, 1, Duration::from_secs(20)).await;
    assert_eq!(letters.len(), 1, "dead-lettered after the last retry");
    let c = calls.0.lock().unwrap().clone();
    let failing: Vec<_> = c.iter().filter(|c| c.2 == 0).collect();
    let topics: Vec<String> = failing.iter().map(|c| c.1.clone()).collect();
    assert_eq!(
        topics,
        [
            topic.clone(),
            format!("{topic}-retry-500"),
            format!("{topic}-retry-1500")
        ],
        "one delivery per topic"
    );
    for (w, delay) in failing.windows(2).zip([500u64, 1500]) {
        let gap = w[1].0 - w[0].0;
        assert!(
            gap >= Duration::from_millis(delay - 20) && gap <= Duration::from_millis(delay + 1000),
            "gap {gap:?} for a {delay} ms delay"
        );
    }
    // The records behind the failed one did not wait for its retries.
    let first_ok = c.iter().position(|c| c.2 == 1).unwrap();
    let first_retry = c.iter().position(|c| &c.1 != topic).unwrap();
    assert!(first_ok < first_retry, "non-blocking: {c:?}");
    let l = &letters[0];
    assert_eq!(l.payload(), Some(&br#"{"seq":0}"#[..]));
    assert_eq!(
        header(l, h::ORIGINAL_TOPIC).as_deref(),
        Some(topic.as_bytes())
    );
    assert_eq!(
        header(l, h::ORIGINAL_OFFSET),
        Some(0i64.to_be_bytes().to_vec())
    );
    assert_eq!(header(l, h::ATTEMPTS), Some(3i32.to_be_bytes().to_vec()));
    assert_eq!(header(l, ATTEMPTS_HEADER), None, "retry headers dropped");
    let retried = read_topic_async(
        &b,
        &format!("{topic}-retry-1500"),
        1,
        1,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        header(&retried[0], ATTEMPTS_HEADER),
        Some(3i32.to_be_bytes().to_vec())
    );
    assert!(header(&retried[0], BACKOFF_TIMESTAMP_HEADER).is_some());
    app.shutdown().await;
}
