//! Listener forms: batch listeners, the record ack mode, retries and poison
//! pills, on the embedded broker or a real one (see `support`).

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_listener::prelude::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_listener_gets_every_record_once_in_order_in_batches_of_at_most_max_batch() {
    init_tracing();
    let topic = &unique("l.batch");
    let broker = broker(topic, 1);
    let seen = Batches::default();
    let app = listener_app(
        &broker,
        ListenerSpec::new("batch")
            .group_id(unique("batch"))
            .topics([topic])
            .max_batch(100)
            .batch_handler(batch_listener),
        seen.clone(),
    )
    .await;
    produce(&app.template(), topic, 0..1_000, 1).await;
    let running = app.start().await.unwrap();
    let start = std::time::Instant::now();
    while seen.0.lock().unwrap().iter().map(Vec::len).sum::<usize>() < 1_000
        && start.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown().await;
    let batches = seen.0.lock().unwrap().clone();
    let flat: Vec<u64> = batches.iter().flatten().copied().collect();
    assert_eq!(
        flat,
        (0..1_000).collect::<Vec<_>>(),
        "every record once, in offset order"
    );
    assert!(
        batches.iter().all(|b| !b.is_empty() && b.len() <= 100),
        "batch sizes {:?}",
        batches.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(
        batches.len() < 1_000,
        "records were batched ({} calls)",
        batches.len()
    );
    assert_eq!(
        committed(broker.bootstrap_servers(), &unique("batch"), topic, 1),
        vec![1_000]
    );
}

#[derive(Debug, Clone, Default)]
struct Flaky {
    calls: Arc<Mutex<Vec<(u64, u32)>>>,
    failures_left: Arc<AtomicU32>,
}

/// Fails the record with seq 5 twice, then succeeds; a record with seq 7 is
/// rejected as fatal.
async fn flaky_listener(
    msg: Json<Msg>,
    meta: RecordMeta,
    flaky: State<Flaky>,
) -> Result<(), ListenerError> {
    flaky
        .calls
        .lock()
        .unwrap()
        .push((msg.seq, meta.delivery_attempt));
    if msg.seq == 5 && flaky.failures_left.load(Ordering::SeqCst) > 0 {
        flaky.failures_left.fetch_sub(1, Ordering::SeqCst);
        return Err(ListenerError::retryable(std::io::Error::other(
            "database is busy",
        )));
    }
    if msg.seq == 7 {
        return Err(ListenerError::fatal("coupon does not exist"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_are_retried_in_order_and_fatal_ones_are_not() {
    init_tracing();
    let topic = &unique("l.retry");
    let broker = broker(topic, 1);
    let flaky = Flaky::default();
    flaky.failures_left.store(2, Ordering::SeqCst);
    let app = listener_app(
        &broker,
        ListenerSpec::new("retry")
            .group_id(unique("retry"))
            .topics([topic])
            .ack_mode(AckMode::Record)
            .retry(RetryPolicy::fixed(3, Duration::from_millis(50)))
            .handler(flaky_listener),
        flaky.clone(),
    )
    .await;
    produce(&app.template(), topic, 0..10, 1).await;
    let running = app.start().await.unwrap();
    let start = std::time::Instant::now();
    while flaky
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.0 == 9)
        .count()
        == 0
        && start.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Record mode commits each record as it finishes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        committed(broker.bootstrap_servers(), &unique("retry"), topic, 1),
        vec![10]
    );
    running.shutdown().await;
    let calls = flaky.calls.lock().unwrap().clone();
    let expected: Vec<(u64, u32)> = (0..10)
        .flat_map(|s| match s {
            5 => vec![(5, 1), (5, 2), (5, 3)],
            s => vec![(s, 1)],
        })
        .collect();
    assert_eq!(
        calls, expected,
        "seq 5 tried 3 times before 6, the fatal seq 7 once"
    );
}

async fn count_listener(_msg: Json<Msg>, seen: State<Seen>, meta: RecordMeta) {
    seen.push(meta.partition, meta.offset, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_is_not_json_is_skipped_and_the_records_behind_it_are_handled() {
    init_tracing();
    let topic = &unique("l.poison");
    let broker = broker(topic, 1);
    let seen = Seen::default();
    let app = listener_app(
        &broker,
        ListenerSpec::new("poison")
            .group_id(unique("poison"))
            .topics([topic])
            .handler(count_listener),
        seen.clone(),
    )
    .await;
    let template = app.template();
    produce(&template, topic, 0..3, 1).await;
    template
        .send(ProducerRecord::keyed(topic, "k0").value("{not json"))
        .await
        .unwrap();
    produce(&template, topic, 3..6, 1).await;
    let running = app.start().await.unwrap();
    assert_eq!(seen.wait_for(Duration::from_secs(30), |n| n >= 6).await, 6);
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.shutdown().await;
    let offsets: Vec<i64> = seen.snapshot().iter().map(|s| s.1).collect();
    assert_eq!(
        offsets,
        vec![0, 1, 2, 4, 5, 6],
        "offset 3 (the poison pill) was never handed to the handler"
    );
    assert_eq!(
        committed(broker.bootstrap_servers(), &unique("poison"), topic, 1),
        vec![7],
        "and the partition moved past it"
    );
}

#[derive(Debug, Clone, Default)]
struct Admitted(Arc<Mutex<Vec<(i64, std::time::Instant)>>>);

#[kafka_listener(topics = ["l.rate"], group_id = "rate", rate_limit = "5/8s",
                 properties = [("max.poll.interval.ms", "6000"), ("session.timeout.ms", "6000")])]
async fn rate_limited(meta: RecordMeta, admitted: State<Admitted>) {
    let Admitted(inner) = &*admitted;
    inner
        .lock()
        .unwrap()
        .push((meta.offset, std::time::Instant::now()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_spent_longer_than_max_poll_interval_keeps_the_consumer_in_its_group() {
    init_tracing();
    // The topic is fixed by the attribute: on a real broker it is deleted
    // and created again, and the group renamed.
    let topic = "l.rate";
    let broker = Arc::new(TestBroker::start());
    broker.create_fresh_topic(topic, 1).unwrap();
    let admitted = Admitted::default();
    let app = KafkaApp::builder()
        .config(config(&broker))
        .only_listeners(["rate_limited"])
        .customize_listener("rate_limited", |l| l.group_id(unique("rate")))
        .build()
        .await
        .unwrap()
        .state(admitted.clone());
    produce(&app.template(), topic, 0..12, 1).await;
    let running = app.start().await.unwrap();
    let container = running.container("rate_limited").unwrap();
    assert!(
        container
            .wait_for_assignment(1, Duration::from_secs(30))
            .await
    );
    let start = std::time::Instant::now();
    while admitted.0.lock().unwrap().len() < 10 && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = admitted.0.lock().unwrap().clone();
    // Still assigned: the 8 s wait, longer than max.poll.interval.ms (6 s),
    // did not get the consumer evicted.
    assert_eq!(
        container.assigned_partitions(),
        vec![vec![(topic.to_owned(), 0)]]
    );
    let finished: Vec<_> = container
        .finished_offsets()
        .into_iter()
        .map(|f| (f.topic, f.partition, f.offset))
        .collect();
    assert_eq!(finished, vec![(topic.to_owned(), 0, 10)]);
    // The lag counts records not yet finished (not merely taken from the
    // broker), from statistics every 5 s: 12 - 5 after the first window,
    // 12 - 10 after the second.
    let lag = container.lag();
    assert!(
        matches!(lag.as_slice(), [l] if l.topic == topic && l.partition == 0 && matches!(l.lag, 7 | 2)),
        "{lag:?}"
    );
    running.shutdown().await;
    let offsets: Vec<i64> = seen.iter().map(|s| s.0).collect();
    assert_eq!(
        offsets,
        (0..10).collect::<Vec<_>>(),
        "in order, each once (no rebalance replay)"
    );
    let t0 = seen[0].1;
    for (o, t) in &seen[..5] {
        assert!(
            t.duration_since(t0) < Duration::from_secs(2),
            "offset {o} admitted in the first window"
        );
    }
    for (o, t) in &seen[5..] {
        let d = t.duration_since(t0);
        assert!(
            d >= Duration::from_millis(7_900) && d < Duration::from_secs(11),
            "offset {o} admitted after {d:?}"
        );
    }
}

#[derive(Debug, Clone, Default)]
struct Calls(Arc<Mutex<Vec<i64>>>);

/// Fails every record with an `io::Error` through `?` (retryable by default).
async fn io_failing(meta: RecordMeta, calls: State<Calls>) -> Result<(), ListenerError> {
    let Calls(inner) = &*calls;
    inner.lock().unwrap().push(meta.offset);
    Err(std::io::Error::other("disk full"))?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_type_classified_not_retryable_is_tried_once() {
    init_tracing();
    let topic = &unique("l.classify");
    let broker = broker(topic, 1);
    let calls = Calls::default();
    let app = listener_app(
        &broker,
        ListenerSpec::new("classify")
            .group_id(unique("classify"))
            .topics([topic])
            .retry(RetryPolicy::fixed(3, Duration::from_millis(10)))
            .not_retryable::<std::io::Error>()
            .handler(io_failing),
        calls.clone(),
    )
    .await;
    produce(&app.template(), topic, 0..3, 1).await;
    let running = app.start().await.unwrap();
    let start = std::time::Instant::now();
    while calls.0.lock().unwrap().len() < 3 && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.shutdown().await;
    assert_eq!(
        *calls.0.lock().unwrap(),
        vec![0, 1, 2],
        "each record once: no retries for io::Error"
    );
    assert_eq!(
        committed(broker.bootstrap_servers(), &unique("classify"), topic, 1),
        vec![3]
    );
}

#[derive(Debug, Clone, Default)]
struct BackoffCalls {
    calls: Arc<Mutex<Vec<(u64, u32)>>>,
    failures_left: Arc<AtomicU32>,
}

/// Fails the record with seq 3 while failures are left.
async fn fails_seq_3(
    msg: Json<Msg>,
    meta: RecordMeta,
    state: State<BackoffCalls>,
) -> Result<(), ListenerError> {
    state
        .calls
        .lock()
        .unwrap()
        .push((msg.seq, meta.delivery_attempt));
    if msg.seq == 3 && state.failures_left.load(Ordering::SeqCst) > 0 {
        state.failures_left.fetch_sub(1, Ordering::SeqCst);
        return Err(ListenerError::retryable(std::io::Error::other("not yet")));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_revoked_during_a_back_off_loses_nothing_and_its_new_owner_starts_over() {
    init_tracing();
    let topic = &unique("l.rebalance-backoff");
    let broker = broker(topic, 1);
    let state = BackoffCalls::default();
    state.failures_left.store(2, Ordering::SeqCst);
    let make = |state: BackoffCalls| {
        let broker = broker.clone();
        async move {
            listener_app(
                &broker,
                ListenerSpec::new("rb-backoff")
                    .group_id(unique("rb-backoff"))
                    .topics([topic])
                    .ack_mode(AckMode::Record)
                    .retry(RetryPolicy::fixed(5, Duration::from_secs(6)))
                    .handler(fails_seq_3),
                state,
            )
            .await
        }
    };
    let first = make(state.clone()).await;
    produce(&first.template(), topic, 0..10, 1).await;
    let first = first.start().await.unwrap();
    let start = std::time::Instant::now();
    while !state.calls.lock().unwrap().iter().any(|c| c.0 == 3)
        && start.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first owner leaves while seq 3 backs off: its partition is revoked,
    // the back-off cut short, and nothing past seq 3 committed.
    first.shutdown().await;
    assert_eq!(
        committed(broker.bootstrap_servers(), &unique("rb-backoff"), topic, 1),
        vec![3]
    );
    let second = make(state.clone()).await.start().await.unwrap();
    let start = std::time::Instant::now();
    while !state.calls.lock().unwrap().iter().any(|c| c.0 == 9)
        && start.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    second.shutdown().await;
    let calls = state.calls.lock().unwrap().clone();
    let seq3: Vec<(u64, u32)> = calls.iter().copied().filter(|c| c.0 == 3).collect();
    // The new owner delivered seq 3 again from attempt 1, failed once more,
    // and handled it on the retry.
    assert_eq!(seq3, vec![(3, 1), (3, 1), (3, 2)], "all calls: {calls:?}");
    let seqs: std::collections::HashSet<u64> = calls.iter().map(|c| c.0).collect();
    assert_eq!(seqs.len(), 10, "nothing lost: {calls:?}");
    assert_eq!(
        committed(broker.bootstrap_servers(), &unique("rb-backoff"), topic, 1),
        vec![10]
    );
}

/// Another member joins the group (for another topic) while seq 3 backs
/// off: with the eager assignor the rebalance revokes our partition and
/// gives it back; with cooperative-sticky and KIP-848 it stays ours. Either
/// way the retry goes on with the attempt count it had.
async fn rebalance_during_a_back_off_keeps_the_attempt_count(protocol: Protocol, name: &str) {
    init_tracing();
    if !protocol.runs_here(name) {
        return;
    }
    let topic = &unique(&format!("l.{name}"));
    let other_topic = unique(&format!("l.{name}-other"));
    let group = unique(name);
    let broker = broker(topic, 1);
    broker.create_topic(&other_topic, 1).unwrap();
    let state = BackoffCalls::default();
    state.failures_left.store(2, Ordering::SeqCst);
    let app = KafkaApp::builder()
        .config(config_for(&broker, protocol))
        .without_discovered_listeners()
        .listener(
            protocol.apply(
                ListenerSpec::new("backoff-memory")
                    .group_id(&group)
                    .topics([topic])
                    .ack_mode(AckMode::Record)
                    .retry(RetryPolicy::fixed(5, Duration::from_secs(6)))
                    .handler(fails_seq_3),
            ),
        )
        .build()
        .await
        .unwrap()
        .state(state.clone());
    produce(&app.template(), topic, 0..10, 1).await;
    let running = app.start().await.unwrap();
    let start = std::time::Instant::now();
    while !state.calls.lock().unwrap().iter().any(|c| c.0 == 3)
        && start.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bootstrap = broker.bootstrap_servers().to_owned();
    let other_group = group.clone();
    let other = std::thread::spawn(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", other_group);
        if protocol != Protocol::Consumer {
            config
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "500");
        }
        for (k, v) in protocol.properties() {
            config.set(*k, *v);
        }
        let consumer: BaseConsumer = config.create().unwrap();
        consumer.subscribe(&[other_topic.as_str()]).unwrap();
        // Stay until assigned (20 s at most), then one second more.
        let start = std::time::Instant::now();
        let mut until = start + Duration::from_secs(20);
        let mut assigned = false;
        while std::time::Instant::now() < until {
            consumer.poll(Duration::from_millis(50));
            if !assigned && consumer.assignment().is_ok_and(|a| a.count() > 0) {
                assigned = true;
                until = std::time::Instant::now() + Duration::from_secs(1);
            }
        }
        assigned
    });
    let start = std::time::Instant::now();
    while !state.calls.lock().unwrap().iter().any(|c| c.0 == 9)
        && start.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let other_joined = other.join().unwrap();
    running.shutdown().await;
    assert!(other_joined, "the other member got its partition");
    let calls = state.calls.lock().unwrap().clone();
    let seq3: Vec<(u64, u32)> = calls.iter().copied().filter(|c| c.0 == 3).collect();
    assert_eq!(seq3, vec![(3, 1), (3, 2), (3, 3)], "all calls: {calls:?}");
    let seqs: Vec<u64> = calls.iter().map(|c| c.0).collect();
    if on_real_broker() {
        assert_eq!(
            seqs,
            [0, 1, 2, 3, 3, 3, 4, 5, 6, 7, 8, 9],
            "in order, nothing handled twice but seq 3's retries"
        );
    } else {
        // The mock may refuse a commit during the rebalance and replay.
        let distinct: std::collections::HashSet<u64> = seqs.iter().copied().collect();
        assert_eq!(distinct.len(), 10, "nothing lost: {seqs:?}");
    }
    let committed = committed(broker.bootstrap_servers(), &group, topic, 1);
    if on_real_broker() || protocol != Protocol::ClassicCooperative {
        assert_eq!(committed, vec![10]);
        assert_zero_lag(&broker, &group, topic, 1);
    } else {
        // The mock answers the cooperative group's last commits with
        // ILLEGAL_GENERATION while it rebalances after the other member
        // left: the committed offset may stay at an earlier accepted one.
        assert!((3..=10).contains(&committed[0]), "committed {committed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_eager_a_partition_assigned_back_after_a_rebalance_keeps_the_attempt_count() {
    rebalance_during_a_back_off_keeps_the_attempt_count(Protocol::ClassicEager, "bm-eager").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_cooperative_a_rebalance_during_a_back_off_keeps_the_attempt_count() {
    rebalance_during_a_back_off_keeps_the_attempt_count(
        Protocol::ClassicCooperative,
        "bm-cooperative",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_a_rebalance_during_a_back_off_keeps_the_attempt_count() {
    rebalance_during_a_back_off_keeps_the_attempt_count(Protocol::Consumer, "bm-kip848").await;
}

#[kafka_listener(topics = ["l.custom"], group_id = "custom", concurrency = 1)]
async fn customized(meta: RecordMeta, seen: State<Seen>) {
    seen.push(meta.partition, meta.offset, meta.offset as u64);
}

/// A `#[kafka_listener]` changed at build from configuration: concurrency 3
/// and another group instead of the attribute's 1 and `custom`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovered_listener_is_customized_by_id_at_build() {
    init_tracing();
    // The topic is fixed by the attribute (see the rate-limit test).
    let topic = "l.custom";
    let broker = Arc::new(TestBroker::start());
    broker.create_fresh_topic(topic, 3).unwrap();
    let seen = Seen::default();
    let concurrency_from_config = 3;
    let app = KafkaApp::builder()
        .config(config(&broker))
        .only_listeners(["customized"])
        .customize_listener("customized", move |l| {
            l.concurrency(concurrency_from_config)
                .group_id(unique("custom-from-config"))
        })
        .build()
        .await
        .unwrap()
        .state(seen.clone())
        .start()
        .await
        .unwrap();
    let container = app.container("customized").unwrap();
    assert!(
        container
            .wait_for_assignment(3, Duration::from_secs(30))
            .await
    );
    let consumers = container.assigned_partitions();
    assert_eq!(consumers.len(), 3, "three consumers: {consumers:?}");
    assert!(
        consumers.iter().all(|c| c.len() == 1),
        "one partition each: {consumers:?}"
    );
    produce(&app.template(), topic, 0..30, 3).await;
    assert_eq!(
        seen.wait_for(Duration::from_secs(20), |n| n >= 30).await,
        30
    );
    app.shutdown().await;
    assert_eq!(
        committed(
            broker.bootstrap_servers(),
            &unique("custom-from-config"),
            topic,
            3
        )
        .iter()
        .map(|&c| c.max(0)) // -1: a partition that got no record
        .sum::<i64>(),
        30,
        "committed under the customized group"
    );

    let unknown = KafkaApp::builder()
        .config(config(&broker))
        .only_listeners(["customized"])
        .customize_listener("customised", |l| l)
        .build()
        .await
        .expect_err("an unknown listener id is an error");
    assert!(
        unknown
            .to_string()
            .contains("no listener `customised`; the app's listeners: customized"),
        "{unknown}"
    );
}
