//! Failure scenario 4: a retry back-off longer than `max.poll.interval.ms`.
//!
//! The listener runs with `max.poll.interval.ms=6000` and a retry policy of
//! 2 attempts 9 s apart; the handler fails seq 5 on its first attempt. In
//! Spring (and in a naive loop) the back-off blocks `poll()` and the member
//! is evicted after 6 s. Here the container's poll thread keeps polling
//! while the lane waits, so, asserted on a real broker: seq 5 is attempted
//! exactly twice, at least 9 s apart; every other record is handled exactly
//! once (an eviction would rebalance and redeliver from the committed
//! offset); records after seq 5 wait behind it (partition order); the same
//! member (Kafka's `consumer-groups --describe` CONSUMER-ID) holds the
//! partition before and after; the group ends with lag 0.
//!
//! Needs `KAFKA_LAUNCHER` (see `kafka_listener_tests::cluster`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_listener::{Json, KafkaApp, KafkaConfig, ListenerError, RecordMeta, RetryPolicy, State};
use kafka_listener_tests::cluster::Cluster;
use kafka_listener_tests::scenario::{committed, listener, scenario_cluster, Msg};

const TOPIC: &str = "backoff.long";
const GROUP: &str = "backoff-listener";
const N: u64 = 20;
const FAILING: u64 = 5;
const BACKOFF: Duration = Duration::from_secs(9);

/// One attempt: (seq, offset, delivery attempt, when).
type Attempt = (u64, i64, u32, Instant);

/// Every attempt, in order.
#[derive(Clone, Default)]
struct Attempts(Arc<Mutex<Vec<Attempt>>>);

impl Attempts {
    fn push(&self, attempt: Attempt) {
        self.0.lock().unwrap().push(attempt);
    }
}

async fn flaky(
    msg: Json<Msg>,
    meta: RecordMeta,
    attempts: State<Attempts>,
) -> Result<(), ListenerError> {
    attempts.push((msg.seq, meta.offset, meta.delivery_attempt, Instant::now()));
    if msg.seq == FAILING && meta.delivery_attempt == 1 {
        return Err(ListenerError::retryable(std::io::Error::other(
            "the first attempt of seq 5 fails",
        )));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_off_longer_than_max_poll_interval_does_not_evict_the_member() {
    let started = Instant::now();
    let Some(cluster) = scenario_cluster("scenario_long_backoff", 1, &[], TOPIC, 1, 1).await else {
        return;
    };
    let bootstrap = cluster.bootstrap().to_owned();

    let attempts = Attempts::default();
    let app = KafkaApp::builder()
        .config(KafkaConfig::new().bootstrap_servers(&bootstrap))
        .without_discovered_listeners()
        .listener(
            listener("backoff", TOPIC, GROUP)
                .property("max.poll.interval.ms", "6000")
                .retry(RetryPolicy::fixed(2, BACKOFF))
                .handler(flaky),
        )
        .build()
        .await
        .expect("the app builds")
        .state(attempts.clone());
    let template = app.template();
    let running = app.start().await.expect("the app starts");
    let container = running.container("backoff").unwrap();
    assert!(
        container
            .wait_for_assignment(1, Duration::from_secs(30))
            .await
    );
    for seq in 0..N {
        template
            .send_json(TOPIC, "one-key", &Msg { seq })
            .await
            .expect("the broker acknowledges");
    }
    let member_before = poll_member(&cluster).await;

    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let done = attempts
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.0 == N - 1)
            .count();
        if done > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "seq {} never handled", N - 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Some time for a late eviction or redelivery to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        container.assigned_partitions(),
        vec![vec![(TOPIC.to_owned(), 0)]],
        "the consumer still holds its partition"
    );
    let b = bootstrap.clone();
    let c = tokio::task::spawn_blocking(move || committed(&b, GROUP, TOPIC, 1))
        .await
        .unwrap();
    assert_eq!(c, vec![N as i64], "everything committed");
    let member_after = poll_member(&cluster).await;
    assert_eq!(
        member_before, member_after,
        "the same group member before and after the back-off"
    );
    running.shutdown().await;

    let all = attempts.0.lock().unwrap().clone();
    let of = |seq: u64| -> Vec<_> { all.iter().filter(|a| a.0 == seq).collect() };
    let failing = of(FAILING);
    assert_eq!(
        failing.iter().map(|a| a.2).collect::<Vec<_>>(),
        vec![1, 2],
        "seq {FAILING}: attempts 1 and 2, no redelivery"
    );
    let gap = failing[1].3 - failing[0].3;
    assert!(
        gap >= BACKOFF - Duration::from_millis(50),
        "the back-off lasted {gap:?}"
    );
    for seq in (0..N).filter(|s| *s != FAILING) {
        let a = of(seq);
        assert_eq!(a.len(), 1, "seq {seq} handled exactly once: {a:?}");
        assert_eq!(a[0].2, 1);
        if seq > FAILING {
            assert!(
                a[0].3 > failing[1].3,
                "seq {seq} waited behind seq {FAILING}"
            );
        }
    }
    let offsets: Vec<i64> = all.iter().map(|a| a.1).collect();
    let mut expected: Vec<i64> = (0..N as i64).collect();
    expected.insert(FAILING as usize + 1, FAILING as i64);
    assert_eq!(
        offsets, expected,
        "offset order, seq {FAILING} twice in a row"
    );
    cluster.assert_zero_lag(GROUP, &[(TOPIC, 1)]);
    eprintln!(
        "scenario 4: back-off {gap:?} > max.poll.interval.ms 6 s; member {member_after} kept the partition; {} attempts for {N} records; {:?}",
        all.len(),
        started.elapsed()
    );
}

/// The CONSUMER-ID holding partition 0, from Kafka's `consumer-groups
/// --describe` (retried until a member shows, up to 20 s).
async fn poll_member(cluster: &Cluster) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = tokio::task::block_in_place(|| cluster.describe_group(GROUP));
        if let Some(id) = rows
            .iter()
            .find(|r| r.topic == TOPIC && r.partition == 0)
            .and_then(|r| r.consumer_id.clone())
        {
            return id;
        }
        assert!(Instant::now() < deadline, "no member in {rows:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
