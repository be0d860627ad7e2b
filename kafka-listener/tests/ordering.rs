//! `ordering = "key"` and `"none"`: several records of one partition in
//! flight, records of one key one at a time in offset order, commits never
//! past an unfinished record, a key in back-off holding back only itself.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_listener::prelude::*;
use kafka_listener::Ordering;
use support::*;

/// What the handlers saw: per key, the offsets in handling order; the most
/// records in flight at once.
#[derive(Debug, Default, Clone)]
struct Trace {
    by_key: Arc<Mutex<HashMap<String, Vec<u64>>>>,
    handled: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    /// Key `hold`: its first record waits while this is set.
    hold: Arc<AtomicBool>,
    /// Key `bad`: fails this many more times.
    failures_left: Arc<AtomicUsize>,
    /// When key `bad` finally succeeded, and when the others were all done.
    bad_done_at: Arc<Mutex<Option<Instant>>>,
}

impl Trace {
    fn total(&self) -> usize {
        self.handled.load(AtomicOrdering::Acquire)
    }

    async fn wait_for(&self, n: usize, timeout: Duration) -> usize {
        let start = Instant::now();
        while self.total() < n && start.elapsed() < timeout {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.total()
    }
}

#[derive(serde::Deserialize)]
struct Event {
    seq: u64,
}

async fn traced(
    event: Json<Event>,
    key: Key<String>,
    meta: RecordMeta,
    trace: State<Trace>,
) -> Result<(), ListenerError> {
    let now = trace.in_flight.fetch_add(1, AtomicOrdering::AcqRel) + 1;
    trace.max_in_flight.fetch_max(now, AtomicOrdering::AcqRel);
    // An I/O-bound handler: 0 to 3 ms; one record in three does not wait
    // at all, so the lane finishes it when it starts it, between records
    // of the same key that wait.
    if event.seq % 3 != 0 {
        tokio::time::sleep(Duration::from_micros(fastrand_u64(3_000))).await;
    }
    if key.0 == "hold" {
        while trace.hold.load(AtomicOrdering::Acquire) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    if key.0 == "bad"
        && trace
            .failures_left
            .fetch_update(AtomicOrdering::AcqRel, AtomicOrdering::Acquire, |n| {
                n.checked_sub(1)
            })
            .is_ok()
    {
        trace.in_flight.fetch_sub(1, AtomicOrdering::AcqRel);
        return Err(ListenerError::retryable(std::io::Error::other("not yet")));
    }
    if key.0 == "bad" {
        *trace.bad_done_at.lock().unwrap() = Some(Instant::now());
    }
    trace
        .by_key
        .lock()
        .unwrap()
        .entry(key.0.clone())
        .or_default()
        .push(meta.offset as u64);
    trace.in_flight.fetch_sub(1, AtomicOrdering::AcqRel);
    trace.handled.fetch_add(1, AtomicOrdering::AcqRel);
    Ok(())
}

/// A small pseudo-random number below `n` (no test dependency for it).
fn fastrand_u64(n: u64) -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now()) % n
}

/// Per key: offsets strictly increasing (a key lives on one partition).
fn assert_key_order(by_key: &HashMap<String, Vec<u64>>) {
    for (key, offsets) in by_key {
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "key {key}: handled out of offset order: {offsets:?}"
        );
    }
}

fn spec(id: &str, topic: &str, ordering: Ordering, parallelism: usize) -> ListenerSpec {
    ListenerSpec::new(id)
        .topics([topic])
        .ordering(ordering)
        .parallelism(parallelism)
        .retry(RetryPolicy::fixed(10, Duration::from_millis(300)))
        .handler(traced)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_of_one_key_run_in_offset_order_while_keys_run_in_parallel() {
    init_tracing();
    const TOPIC: &str = "o.key-order";
    const RECORDS: u64 = 3_000;
    let broker = broker(TOPIC, 2);
    let trace = Trace::default();
    let app = listener_app(
        &broker,
        spec("keyed", TOPIC, Ordering::Key, 64),
        trace.clone(),
    )
    .await;
    let template = app.template();
    let running = app.start().await.unwrap();
    // 300 keys, sent in seq order: k{seq % 300}.
    produce(&template, TOPIC, 0..RECORDS, 300).await;
    let n = trace
        .wait_for(RECORDS as usize, Duration::from_secs(60))
        .await;
    assert_eq!(n, RECORDS as usize, "every record handled once");
    let by_key = trace.by_key.lock().unwrap().clone();
    assert_eq!(by_key.len(), 300);
    assert_eq!(
        by_key.values().map(Vec::len).sum::<usize>(),
        RECORDS as usize
    );
    assert_key_order(&by_key);
    let max = trace.max_in_flight.load(AtomicOrdering::Acquire);
    assert!(
        max > 2,
        "records of a partition ran in parallel (max in flight {max})"
    );
    assert!(
        max <= 2 * 64,
        "at most `parallelism` per partition (max in flight {max})"
    );
    // Everything finished is committed at shutdown.
    running.shutdown().await;
    assert_eq!(
        committed(broker.bootstrap_servers(), "keyed", TOPIC, 2),
        log_end(broker.bootstrap_servers(), TOPIC, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_never_passes_an_unfinished_record() {
    init_tracing();
    const TOPIC: &str = "o.commit-gap";
    let broker = broker(TOPIC, 1);
    let trace = Trace::default();
    trace.hold.store(true, AtomicOrdering::Release);
    let app = listener_app(
        &broker,
        spec("gap", TOPIC, Ordering::None, 16).ack_mode(AckMode::Record),
        trace.clone(),
    )
    .await;
    let template = app.template();
    let running = app.start().await.unwrap();
    // Offset 0 is key `hold` (it waits); 1..=200 are other keys.
    template
        .send_json(TOPIC, "hold", &serde_json::json!({ "seq": 0 }))
        .await
        .unwrap();
    produce(&template, TOPIC, 1..201, 50).await;
    assert_eq!(trace.wait_for(200, Duration::from_secs(30)).await, 200);
    // 200 later records are finished, offset 0 is not: nothing may be
    // committed past it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let committed_now = committed(broker.bootstrap_servers(), "gap", TOPIC, 1);
    assert!(
        committed_now[0] <= 0,
        "committed {committed_now:?} while offset 0 is unfinished"
    );
    trace.hold.store(false, AtomicOrdering::Release);
    assert_eq!(trace.wait_for(201, Duration::from_secs(30)).await, 201);
    let end = log_end(broker.bootstrap_servers(), TOPIC, 1);
    let start = Instant::now();
    while committed(broker.bootstrap_servers(), "gap", TOPIC, 1) != end {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "commit after offset 0 finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_in_back_off_holds_back_only_its_own_records() {
    init_tracing();
    const TOPIC: &str = "o.back-off";
    let broker = broker(TOPIC, 1);
    let trace = Trace::default();
    // Key `bad` fails 3 times with 300 ms back-offs: about 1 s.
    trace.failures_left.store(3, AtomicOrdering::Release);
    let app = listener_app(
        &broker,
        spec("backoff", TOPIC, Ordering::Key, 16),
        trace.clone(),
    )
    .await;
    let template = app.template();
    let running = app.start().await.unwrap();
    for seq in 0..3u64 {
        template
            .send_json(TOPIC, "bad", &serde_json::json!({ "seq": seq }))
            .await
            .unwrap();
    }
    produce(&template, TOPIC, 3..303, 30).await;
    let others_done = {
        let start = Instant::now();
        loop {
            let others: usize = trace
                .by_key
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "bad")
                .map(|(_, v)| v.len())
                .sum();
            if others == 300 {
                break Instant::now();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "other keys stalled at {others}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    assert_eq!(trace.wait_for(303, Duration::from_secs(30)).await, 303);
    let bad_done = trace.bad_done_at.lock().unwrap().expect("bad handled");
    assert!(
        others_done < bad_done,
        "the 300 records of other keys finished while `bad` was in back-off"
    );
    let by_key = trace.by_key.lock().unwrap().clone();
    assert_eq!(
        by_key["bad"],
        vec![0, 1, 2],
        "`bad`'s later records (offsets 1, 2) waited for it"
    );
    assert_key_order(&by_key);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebalance_mid_stream_loses_nothing_and_keeps_key_order_up_to_replays() {
    init_tracing();
    const TOPIC: &str = "o.rebalance";
    const RECORDS: u64 = 2_000;
    let broker = broker(TOPIC, 4);
    let trace = Trace::default();
    let make = |t: Trace| {
        let broker = Arc::clone(&broker);
        async move { listener_app(&broker, spec("rebal", TOPIC, Ordering::Key, 32), t).await }
    };
    let first = make(trace.clone()).await;
    let template = first.template();
    let first = first.start().await.unwrap();
    let producer = {
        let template = template.clone();
        tokio::spawn(async move { produce(&template, TOPIC, 0..RECORDS, 100).await })
    };
    trace.wait_for(300, Duration::from_secs(30)).await;
    let second = make(trace.clone()).await.start().await.unwrap();
    producer.await.unwrap();
    let start = Instant::now();
    loop {
        let by_key = trace.by_key.lock().unwrap().clone();
        // Offsets are per partition and a key lives on one partition:
        // (key, offset) names a record.
        let distinct: usize = by_key
            .values()
            .map(|v| v.iter().collect::<std::collections::HashSet<_>>().len())
            .sum();
        if distinct == RECORDS as usize {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{distinct} of {RECORDS} handled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.shutdown().await;
    first.shutdown().await;
    // Per key: increasing, except that a record handed over in a rebalance
    // may be handled again from the committed offset (at-least-once); a
    // replay never skips ahead of what was not handled.
    for (key, seqs) in trace.by_key.lock().unwrap().iter() {
        let mut seen = std::collections::BTreeSet::new();
        for &s in seqs {
            if !seen.insert(s) {
                continue; // a replay
            }
            assert!(
                seen.range(s + 1..).next().is_none(),
                "key {key}: {s} first handled after a later record: {seqs:?}"
            );
        }
    }
}
