//! Seeking (Spring's `ConsumerSeekAware`): a read model rebuilt from its
//! events by a run-time seek to the beginning through the listener
//! registry; `seek = "beginning"` on every assignment (a restart replays
//! everything despite committed offsets); `seek = "end"` (old records are
//! skipped); seeks to an offset and to a timestamp.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_listener::prelude::*;
use kafka_listener::testing::{self, TestKafka};
use kafka_listener::SeekPosition;

mod support;

const PARTITIONS: i32 = 2;

/// A read model: the balance per account, and every (partition, offset)
/// applied, in order.
#[derive(Clone, Default)]
struct Balances(Arc<Mutex<Model>>);

/// The balances, and the (partition, offset)s applied.
type Model = (BTreeMap<String, i64>, Vec<(i32, i64)>);

impl Balances {
    fn clear(&self) {
        let mut m = self.0.lock().unwrap();
        m.0.clear();
        m.1.clear();
    }
    fn applied(&self) -> usize {
        self.0.lock().unwrap().1.len()
    }
    fn balances(&self) -> BTreeMap<String, i64> {
        self.0.lock().unwrap().0.clone()
    }
    fn offsets(&self) -> Vec<(i32, i64)> {
        let mut v = self.0.lock().unwrap().1.clone();
        v.sort_unstable();
        v
    }
}

/// Applies one `account:amount` event.
async fn apply(event: String, key: Key<String>, meta: RecordMeta, model: State<Balances>) {
    let amount: i64 = event.parse().expect("an amount");
    let mut m = model.0 .0.lock().unwrap();
    *m.0.entry(key.0).or_default() += amount;
    m.1.push((meta.partition, meta.offset));
}

async fn send_events(kafka: &TestKafka, topic: &str, range: std::ops::Range<i64>) {
    let template = kafka.template().unwrap();
    for i in range {
        template
            .send(ProducerRecord::keyed(topic, format!("acct-{}", i % 5)).value(i.to_string()))
            .await
            .unwrap();
    }
}

/// The balances of events `0..n`, as the model should hold them.
fn expected(n: i64) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for i in 0..n {
        *m.entry(format!("acct-{}", i % 5)).or_default() += i;
    }
    m
}

async fn wait_applied(model: &Balances, n: usize) {
    testing::wait_until(Duration::from_secs(30), "events applied", || {
        let done = model.applied() >= n;
        async move { done }
    })
    .await;
    // Nothing beyond what is expected arrives late.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(model.applied(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_is_rebuilt_by_seeking_to_the_beginning() {
    let kafka = TestKafka::start().unwrap();
    let topic = testing::unique("seek.rebuild");
    kafka.create_topic(&topic, PARTITIONS).unwrap();
    send_events(&kafka, &topic, 0..40).await;
    let model = Balances::default();
    let group = testing::unique("balances");
    let spec = ListenerSpec::new("balances")
        .group_id(&group)
        .topics([&topic])
        .handler(apply);
    let app = kafka.run_listener(spec, model.clone()).await.unwrap();
    wait_applied(&model, 40).await;
    assert_eq!(model.balances(), expected(40));
    let ends = testing::log_end(kafka.bootstrap_servers(), &topic, PARTITIONS);
    testing::wait_committed(
        kafka.bootstrap_servers(),
        &group,
        &topic,
        &ends,
        Duration::from_secs(20),
    )
    .await;

    // The rebuild: drop the model, seek every partition to the beginning.
    model.clear();
    app.container("balances")
        .expect("registered")
        .seek_to_beginning();
    wait_applied(&model, 40).await;
    assert_eq!(model.balances(), expected(40));
    let all: Vec<(i32, i64)> = (0..PARTITIONS)
        .flat_map(|p| (0..ends[p as usize]).map(move |o| (p, o)))
        .collect();
    assert_eq!(
        model.offsets(),
        all,
        "every event applied once more, none twice"
    );

    // New events after the rebuild still arrive; the committed offsets
    // follow.
    send_events(&kafka, &topic, 40..50).await;
    wait_applied(&model, 50).await;
    assert_eq!(model.balances(), expected(50));
    let ends = testing::log_end(kafka.bootstrap_servers(), &topic, PARTITIONS);
    testing::wait_committed(
        kafka.bootstrap_servers(),
        &group,
        &topic,
        &ends,
        Duration::from_secs(20),
    )
    .await;

    // One partition to an offset: partition 0 from offset 2 again.
    model.clear();
    app.container("balances")
        .unwrap()
        .seek(&topic, 0, SeekPosition::Offset(2));
    let again = (ends[0] - 2) as usize;
    wait_applied(&model, again).await;
    assert_eq!(
        model.offsets(),
        (2..ends[0]).map(|o| (0, o)).collect::<Vec<_>>()
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_on_assignment_replays_from_the_beginning_or_skips_to_the_end() {
    support::init_tracing();
    let kafka = TestKafka::start().unwrap();
    let topic = testing::unique("seek.assign");
    kafka.create_topic(&topic, PARTITIONS).unwrap();
    send_events(&kafka, &topic, 0..20).await;
    let group = testing::unique("replayer");

    // A first run commits everything.
    let model = Balances::default();
    let spec = || {
        ListenerSpec::new("replayer")
            .group_id(&group)
            .topics([&topic])
            .handler(apply)
    };
    let app = kafka.run_listener(spec(), model.clone()).await.unwrap();
    wait_applied(&model, 20).await;
    let ends = testing::log_end(kafka.bootstrap_servers(), &topic, PARTITIONS);
    testing::wait_committed(
        kafka.bootstrap_servers(),
        &group,
        &topic,
        &ends,
        Duration::from_secs(20),
    )
    .await;
    app.shutdown().await;

    // Restarted with `seek = beginning`: everything again, despite the
    // committed offsets.
    let rebuilt = Balances::default();
    let app = kafka
        .run_listener(
            spec().seek_on_assignment(SeekPosition::Beginning),
            rebuilt.clone(),
        )
        .await
        .unwrap();
    wait_applied(&rebuilt, 20).await;
    assert_eq!(rebuilt.balances(), expected(20));
    app.shutdown().await;

    // A new group with `seek = end`: only what is sent after it started.
    let tail = Balances::default();
    let spec = ListenerSpec::new("tailer")
        .group_id(testing::unique("tailer"))
        .topics([&topic])
        .seek_on_assignment(SeekPosition::End)
        .handler(apply);
    let app = kafka.run_listener(spec, tail.clone()).await.unwrap();
    assert!(
        app.container("tailer")
            .unwrap()
            .wait_for_assignment(PARTITIONS as usize, Duration::from_secs(30))
            .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    send_events(&kafka, &topic, 20..25).await;
    wait_applied(&tail, 5).await;
    let seen: i64 = tail.balances().values().sum();
    assert_eq!(seen, (20..25).sum::<i64>(), "only the new events");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_to_a_timestamp_starts_at_the_first_record_at_or_after_it() {
    // librdkafka's mock cluster does not look offsets up by timestamp
    // (ListOffsets answers -1): Apache Kafka only.
    if !support::real_broker_only("seek_to_a_timestamp_starts_at_the_first_record_at_or_after_it") {
        return;
    }
    let kafka = TestKafka::start().unwrap();
    let topic = testing::unique("seek.time");
    kafka.create_topic(&topic, 1).unwrap();
    let template = kafka.template().unwrap();
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    for i in 0..10i64 {
        template
            .send(
                ProducerRecord::keyed(&topic, "acct-0")
                    .value(i.to_string())
                    .timestamp(base + i * 1_000),
            )
            .await
            .unwrap();
    }
    let model = Balances::default();
    let spec = ListenerSpec::new("timed")
        .group_id(testing::unique("timed"))
        .topics([&topic])
        .handler(apply);
    let app = kafka.run_listener(spec, model.clone()).await.unwrap();
    wait_applied(&model, 10).await;
    model.clear();
    // Between records 6 and 7: from 7 on.
    app.container("timed")
        .unwrap()
        .seek_to_timestamp(base + 6_500);
    wait_applied(&model, 3).await;
    assert_eq!(model.offsets(), vec![(0, 7), (0, 8), (0, 9)]);
    app.shutdown().await;
}
