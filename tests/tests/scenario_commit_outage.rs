//! Failure scenario 5: the broker is unreachable while the listener
//! finishes records and tries to commit them.
//!
//! One partition, records `{"seq": 0..300}`; the handler waits at a gate
//! and finishes only seqs below its limit. The limit starts at 100; once
//! 0..100 are committed the broker is stopped, the limit raised to 150 and
//! seqs 100..150 finished while no commit can reach the broker; then the
//! broker is started again.
//!
//! Asserted: a sampler reading the group's committed offset every 100 ms
//! (whenever the broker answers) never sees it past the gate's limit: no
//! record is committed before it is finished. After the restart the commits
//! resume: the committed offset reaches exactly 150 and stays there while
//! seq 150 is held; after the gate opens it reaches 300. Nothing is lost,
//! and a record is handled twice only in a replay that starts at or after
//! offset 100 (what was committed before the outage). Kafka's
//! `consumer-groups --describe` shows lag 0 at the end.
//!
//! Needs `KAFKA_LAUNCHER` (see `kafka_listener_tests::cluster`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_listener::{Json, KafkaApp, KafkaConfig, RecordMeta, State};
use kafka_listener_tests::scenario::{
    assert_duplicates_are_replays, committed, listener, scenario_cluster, tally, try_committed,
    Handled, Handling, Msg,
};
use tokio::sync::watch;

const TOPIC: &str = "outage.commits";
const GROUP: &str = "outage-listener";
const N: u64 = 300;

/// Records with `seq >= limit` wait until the limit is raised past them.
#[derive(Clone)]
struct Gate(watch::Sender<u64>);

impl Gate {
    fn limit(&self) -> u64 {
        *self.0.borrow()
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

async fn gated(msg: Json<Msg>, meta: RecordMeta, gate: State<Gate>, handled: State<Handled>) {
    let mut rx = gate.subscribe();
    let seq = msg.seq;
    rx.wait_for(|limit| seq < *limit).await.expect("the gate");
    handled.push(Handling {
        partition: meta.partition,
        offset: meta.offset,
        seq,
    });
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

async fn committed_now(bootstrap: &str) -> i64 {
    let b = bootstrap.to_owned();
    tokio::task::spawn_blocking(move || committed(&b, GROUP, TOPIC, 1)[0])
        .await
        .unwrap()
}

async fn wait_committed(bootstrap: &str, want: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        // The broker may not answer yet right after its restart.
        let b = bootstrap.to_owned();
        let c = tokio::task::spawn_blocking(move || {
            try_committed(&b, GROUP, TOPIC, 1, Duration::from_secs(2)).map(|c| c[0])
        })
        .await
        .unwrap();
        if c == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "committed {c:?}, expected {want} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_never_pass_unfinished_records_and_resume_after_the_broker_returns() {
    let started = Instant::now();
    let Some(cluster) = scenario_cluster("scenario_commit_outage", 1, &[], TOPIC, 1, 1).await
    else {
        return;
    };
    let bootstrap = cluster.bootstrap().to_owned();

    let handled = Handled::default();
    let (gate_tx, _) = watch::channel(100u64);
    let gate = Gate(gate_tx);
    let config = KafkaConfig::new()
        .bootstrap_servers(&bootstrap)
        .property("reconnect.backoff.max.ms", "1000");
    let app = KafkaApp::builder()
        .config(config)
        .without_discovered_listeners()
        .listener(listener("outage", TOPIC, GROUP).handler(gated))
        .build()
        .await
        .expect("the app builds")
        .state(handled.clone())
        .state(gate.clone());
    let template = app.template();
    let running = app.start().await.expect("the app starts");
    assert!(
        running
            .container("outage")
            .unwrap()
            .wait_for_assignment(1, Duration::from_secs(30))
            .await
    );
    for seq in 0..N {
        template
            .send_json(TOPIC, format!("k{seq}"), &Msg { seq })
            .await
            .expect("the broker acknowledges");
    }

    // The sampler: committed <= the gate's limit, whenever it answers.
    let stop = Arc::new(AtomicBool::new(false));
    // Stops the sampler when the test panics too (the runtime waits for
    // blocking tasks when it shuts down).
    let _stop_on_drop = StopOnDrop(Arc::clone(&stop));
    let sampler = tokio::task::spawn_blocking({
        let (b, gate, stop) = (bootstrap.clone(), gate.clone(), Arc::clone(&stop));
        move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Acquire) {
                if let Some(c) = try_committed(&b, GROUP, TOPIC, 1, Duration::from_secs(1)) {
                    // Read after the commit: the limit only rises.
                    let limit = gate.limit();
                    assert!(
                        i128::from(c[0]) <= i128::from(limit),
                        "committed offset {} past the unfinished seq {limit}",
                        c[0]
                    );
                    samples.push(c[0]);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        }
    });

    let first: Vec<u64> = (0..100).collect();
    assert!(handled
        .wait_for_all(&first, Duration::from_secs(30))
        .await
        .is_empty());
    wait_committed(&bootstrap, 100, Duration::from_secs(30)).await;

    cluster.stop_node(1);
    let down = Instant::now();
    gate.0.send_replace(150);
    let during: Vec<u64> = (100..150).collect();
    assert!(
        handled
            .wait_for_all(&during, Duration::from_secs(30))
            .await
            .is_empty(),
        "records in hand are finished while the broker is down"
    );
    // Let the consumer try (and fail) to commit them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.start_node(1);
    let back = Instant::now();
    eprintln!("broker down for {:?}", down.elapsed());

    wait_committed(&bootstrap, 150, Duration::from_secs(60)).await;
    let resumed = back.elapsed();
    // Seq 150 is held: the committed offset stays at 150.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(committed_now(&bootstrap).await, 150);
    gate.0.send_replace(u64::MAX);
    let all: Vec<u64> = (0..N).collect();
    assert!(handled
        .wait_for_all(&all, Duration::from_secs(30))
        .await
        .is_empty());
    wait_committed(&bootstrap, N as i64, Duration::from_secs(30)).await;
    stop.store(true, Ordering::Release);
    let samples = sampler.await.expect("no commit ran ahead of the handler");
    running.shutdown().await;

    let seen = handled.snapshot();
    let t = tally(&all, &seen, &HashMap::from([(0, 0)]));
    assert!(t.lost.is_empty(), "lost: {:?}", t.lost);
    assert_duplicates_are_replays(&t, &seen);
    for r in &t.replays {
        assert!(
            r.from >= 100,
            "replay from {} is before the offset committed before the outage",
            r.from
        );
    }
    assert!(
        samples.contains(&150) && samples.contains(&(N as i64)),
        "the sampler saw the commits: {} samples",
        samples.len()
    );
    cluster.assert_zero_lag(GROUP, &[(TOPIC, 1)]);
    eprintln!(
        "scenario 5: {} handlings of {N} records, duplicated {} in replays {:?}; {} commit samples, none past the gate; commits resumed {:?} after the restart; {:?}",
        seen.len(),
        t.duplicated.len(),
        t.replays,
        samples.len(),
        resumed,
        started.elapsed()
    );
}
