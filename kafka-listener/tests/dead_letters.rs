//! Dead-letter topics, on the embedded broker or a real one (see
//! `support`): attempts and back-off before
//! the dead letter, Spring's `kafka_dlt-*` headers, poison pills, a
//! dead-letter publish the broker refuses, and a back-off longer than
//! `max.poll.interval.ms`.
//!
//! librdkafka's mock cluster does not answer CreateTopics, so tests that
//! give the app the mock's address create the dead-letter topics on it
//! first; on its own embedded broker the app creates them.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_listener::prelude::*;
use kafka_listener::record::headers as h;
use kafka_listener::testing;
use kafka_listener::{DeadLetter, ProducerRecord};
use rdkafka::Message;
use serde::Deserialize;
use support::*;

/// How long a test waits for a commit.
const WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
struct Msg {
    seq: u64,
}

/// When each call happened, and with which seq.
#[derive(Debug, Clone, Default)]
struct Calls(Arc<Mutex<Vec<Call>>>);

/// When, partition, offset, seq.
type Call = (Instant, i32, i64, u64);

impl Calls {
    fn push(&self, meta: &RecordMeta, seq: u64) -> usize {
        let mut v = self.0.lock().unwrap();
        v.push((Instant::now(), meta.partition, meta.offset, seq));
        v.iter().filter(|c| c.3 == seq).count()
    }
    fn snapshot(&self) -> Vec<Call> {
        self.0.lock().unwrap().clone()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("downstream is down (seq {0})")]
struct Down(u64);

async fn always_fails(
    msg: Json<Msg>,
    meta: RecordMeta,
    calls: State<Calls>,
) -> Result<(), ListenerError> {
    calls.push(&meta, msg.seq);
    Err(Down(msg.seq).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_always_fails_is_tried_attempts_times_then_dead_lettered_with_every_header() {
    init_tracing();
    let topic = &unique("dl.always");
    let broker = broker(topic, 2);
    broker.create_topic(&format!("{topic}-dlt"), 2).unwrap();
    let calls = Calls::default();
    let app = listener_app(
        &broker,
        ListenerSpec::new("always")
            .topics([topic])
            .group_id(unique("always-group"))
            .ack_mode(AckMode::Record)
            .retry(RetryPolicy::fixed(3, Duration::from_millis(300)))
            .dead_letter(DeadLetter::suffixed())
            .handler(always_fails),
        calls.clone(),
    )
    .await;
    let app = app.start().await.unwrap();
    let sent = app
        .template()
        .send(
            ProducerRecord::keyed(topic, "k1")
                .json(&serde_json::json!({"seq": 7}))
                .unwrap()
                .partition(1)
                .timestamp(1_700_000_000_123)
                .header("trace-id", "abc"),
        )
        .await
        .unwrap();
    let dlt = format!("{topic}-dlt");
    let letters =
        read_topic_async(app.bootstrap_servers(), &dlt, 2, 1, Duration::from_secs(20)).await;
    assert_eq!(letters.len(), 1, "one dead letter");
    let l = &letters[0];
    let c = calls.snapshot();
    assert_eq!(c.len(), 3, "tried exactly `attempts` times: {c:?}");
    for w in c.windows(2) {
        let gap = w[1].0 - w[0].0;
        assert!(
            gap >= Duration::from_millis(290) && gap <= Duration::from_millis(800),
            "gap {gap:?} matches the 300 ms back-off"
        );
    }
    assert_eq!(l.partition(), 1, "same partition as the original");
    assert_eq!(l.key(), Some(&b"k1"[..]));
    assert_eq!(
        l.payload(),
        Some(&br#"{"seq":7}"#[..]),
        "original value bytes"
    );
    assert_eq!(
        header(l, "trace-id").as_deref(),
        Some(&b"abc"[..]),
        "original headers kept"
    );
    assert_eq!(
        header(l, h::ORIGINAL_TOPIC).as_deref(),
        Some(topic.as_bytes())
    );
    assert_eq!(
        header(l, h::ORIGINAL_PARTITION),
        Some(1i32.to_be_bytes().to_vec())
    );
    assert_eq!(
        header(l, h::ORIGINAL_OFFSET),
        Some(sent.offset.to_be_bytes().to_vec())
    );
    assert_eq!(
        header(l, h::ORIGINAL_TIMESTAMP),
        Some(1_700_000_000_123i64.to_be_bytes().to_vec())
    );
    assert_eq!(
        header(l, h::ORIGINAL_CONSUMER_GROUP).as_deref(),
        Some(unique("always-group").as_bytes())
    );
    assert_eq!(
        String::from_utf8(header(l, h::EXCEPTION_FQCN).unwrap()).unwrap(),
        "dead_letters::Down"
    );
    assert_eq!(
        header(l, h::EXCEPTION_MESSAGE).as_deref(),
        Some(&b"downstream is down (seq 7)"[..])
    );
    let trace = String::from_utf8(header(l, h::EXCEPTION_STACKTRACE).unwrap()).unwrap();
    assert!(
        trace.starts_with("dead_letters::Down: downstream is down"),
        "{trace}"
    );
    assert_eq!(header(l, h::ERROR_KIND).as_deref(), Some(&b"Retryable"[..]));
    assert_eq!(header(l, h::ATTEMPTS), Some(3i32.to_be_bytes().to_vec()));
    let b = app.bootstrap_servers().to_owned();
    testing::wait_committed(
        &b,
        &unique("always-group"),
        topic,
        &[-1, sent.offset + 1],
        WAIT,
    )
    .await;
    app.shutdown().await;
}

async fn fails_twice(
    msg: Json<Msg>,
    meta: RecordMeta,
    calls: State<Calls>,
) -> Result<(), ListenerError> {
    if calls.push(&meta, msg.seq) <= 2 {
        return Err(Down(msg.seq).into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_fails_twice_then_succeeds_is_not_dead_lettered() {
    init_tracing();
    let topic = &unique("dl.twice");
    let calls = Calls::default();
    // The app's own embedded broker, where the app creates the topic and
    // its dead-letter topic; or the real one, where the app creates the
    // dead-letter topic with its source's partition count.
    let mut builder = KafkaApp::builder().embedded();
    if let Some(bootstrap) = real_bootstrap() {
        TestBroker::start().create_topic(topic, 1).unwrap();
        builder = builder.config(KafkaConfig::new().bootstrap_servers(bootstrap));
    }
    let app = builder
        .without_discovered_listeners()
        .listener(
            ListenerSpec::new("twice")
                .group_id(unique("twice"))
                .topics([topic])
                .retry(RetryPolicy::fixed(3, Duration::from_millis(100)))
                .dead_letter(DeadLetter::suffixed())
                .handler(fails_twice),
        )
        .build()
        .await
        .unwrap()
        .state(calls.clone())
        .start()
        .await
        .unwrap();
    produce(&app.template(), topic, 0..2, 1).await;
    let b = app.bootstrap_servers().to_owned();
    testing::wait_committed(&b, &unique("twice"), topic, &[2], WAIT).await;
    assert_eq!(calls.snapshot().len(), 6, "three calls per record");
    assert_eq!(
        log_end(&b, &format!("{topic}-dlt"), 1),
        vec![0],
        "nothing dead-lettered"
    );
    app.shutdown().await;
}

async fn strict(msg: Json<Msg>, meta: RecordMeta, seen: State<Seen>) {
    seen.push(meta.partition, meta.offset, msg.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_pill_is_dead_lettered_with_its_bytes_and_the_partition_moves_on() {
    init_tracing();
    let topic = &unique("dl.poison");
    let broker = broker(topic, 1);
    let poison_dlt = unique("poison.dlt");
    broker.create_topic(&poison_dlt, 1).unwrap();
    let seen = Seen::default();
    let app = listener_app(
        &broker,
        ListenerSpec::new("poison")
            .group_id(unique("poison"))
            .topics([topic])
            .dead_letter(DeadLetter::topic(poison_dlt.clone()))
            .handler(strict),
        seen.clone(),
    )
    .await
    .start()
    .await
    .unwrap();
    let t = app.template();
    t.send(ProducerRecord::keyed(topic, "k").value(&b"\xffnot json"[..]))
        .await
        .unwrap();
    produce(&t, topic, 1..4, 1).await;
    assert_eq!(seen.wait_for(Duration::from_secs(15), |n| n >= 3).await, 3);
    assert_eq!(
        seen.snapshot()
            .iter()
            .map(|s| (s.1, s.2))
            .collect::<Vec<_>>(),
        vec![(1, 1), (2, 2), (3, 3)],
        "the records behind the poison pill are handled"
    );
    let b = app.bootstrap_servers().to_owned();
    let letters = read_topic_async(&b, &poison_dlt, 1, 1, Duration::from_secs(10)).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].payload(),
        Some(&b"\xffnot json"[..]),
        "original bytes"
    );
    assert_eq!(
        header(&letters[0], h::ERROR_KIND).as_deref(),
        Some(&b"Decode"[..])
    );
    assert_eq!(
        header(&letters[0], h::ATTEMPTS),
        Some(1i32.to_be_bytes().to_vec()),
        "never retried"
    );
    testing::wait_committed(&b, &unique("poison"), topic, &[4], WAIT).await;
    app.shutdown().await;
}

async fn fatal(meta: RecordMeta, calls: State<Calls>) -> Result<(), ListenerError> {
    calls.push(&meta, meta.offset as u64);
    Err(ListenerError::fatal(Down(meta.offset as u64)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_the_broker_refuses_leaves_the_offset_uncommitted_and_is_published_later() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    init_tracing();
    let topic = &unique("dl.refused");
    // Produce errors are injected through the mock cluster.
    let broker = embedded_broker(topic, 1);
    broker.create_topic(&format!("{topic}-dlt"), 1).unwrap();
    let calls = Calls::default();
    let app = listener_app(
        &broker,
        ListenerSpec::new("refused")
            .group_id(unique("refused"))
            .topics([topic])
            .ack_mode(AckMode::Record)
            .dead_letter(DeadLetter::suffixed())
            .handler(fatal),
        calls.clone(),
    )
    .await
    .start()
    .await
    .unwrap();
    let b = app.bootstrap_servers().to_owned();
    // The record to fail is in the log before the broker starts refusing.
    app.template()
        .send(ProducerRecord::keyed(topic, "k").value("x"))
        .await
        .unwrap();
    broker
        .with_mock(|m| {
            m.request_errors(
                RDKafkaApiKey::Produce,
                &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 4],
            )
        })
        .unwrap();
    // The handler fails at once; the dead letter is refused four times.
    let start = Instant::now();
    while calls.snapshot().is_empty() && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(calls.snapshot().len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        committed(&b, &unique("refused"), topic, 1),
        vec![-1],
        "not committed while the dead letter is refused"
    );
    let letters =
        read_topic_async(&b, &format!("{topic}-dlt"), 1, 1, Duration::from_secs(20)).await;
    assert_eq!(letters.len(), 1, "published once the broker accepts it");
    assert_eq!(letters[0].payload(), Some(&b"x"[..]));
    testing::wait_committed(&b, &unique("refused"), topic, &[1], WAIT).await;
    assert_eq!(calls.snapshot().len(), 1, "the handler is not called again");
    app.shutdown().await;
}

async fn slow_retry(
    msg: Json<Msg>,
    meta: RecordMeta,
    calls: State<Calls>,
) -> Result<(), ListenerError> {
    if calls.push(&meta, msg.seq) == 1 {
        return Err(Down(msg.seq).into());
    }
    Ok(())
}

/// `max.poll.interval.ms` is 7 s and the back-off 9 s: the poll thread
/// keeps polling while the lane waits, so the consumer keeps its partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_off_longer_than_max_poll_interval_causes_no_rebalance() {
    init_tracing();
    let topic = &unique("dl.slow");
    let broker = broker(topic, 1);
    broker.create_topic(&format!("{topic}-dlt"), 1).unwrap();
    let calls = Calls::default();
    let app = listener_app(
        &broker,
        ListenerSpec::new("slow")
            .group_id(unique("slow"))
            .topics([topic])
            .property("max.poll.interval.ms", "7000")
            .retry(RetryPolicy::fixed(2, Duration::from_secs(9)))
            .dead_letter(DeadLetter::suffixed())
            .handler(slow_retry),
        calls.clone(),
    )
    .await
    .start()
    .await
    .unwrap();
    let c = app.container("slow").unwrap();
    assert!(c.wait_for_assignment(1, Duration::from_secs(10)).await);
    produce(&app.template(), topic, 0..1, 1).await;
    let start = Instant::now();
    let mut lost = false;
    while calls.snapshot().len() < 2 && start.elapsed() < Duration::from_secs(20) {
        lost |= c.assigned_partitions().iter().all(Vec::is_empty);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = calls.snapshot();
    assert_eq!(got.len(), 2, "one failure, one retry: {got:?}");
    assert!(got[1].0 - got[0].0 >= Duration::from_secs(9));
    assert!(!lost, "the partition was never revoked");
    let b = app.bootstrap_servers().to_owned();
    testing::wait_committed(&b, &unique("slow"), topic, &[1], WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(calls.snapshot().len(), 2, "no redelivery after a rebalance");
    app.shutdown().await;
}
