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
//! (whenever the broker answers), and every reading of the test's own,
//! never sees it past the gate's limit: no record is committed before it
//! is finished. After the restart the commits
//! resume: the committed offset reaches exactly 150 and stays there while
//! seq 150 is held; after the gate opens it reaches 300. Nothing is lost,
//! and a record is handled twice only in a replay that starts at or after
//! offset 100 (what was committed before the outage). Kafka's
//! `consumer-groups --describe` shows lag 0 at the end.
//!
//! Needs `KAFKA_LAUNCHER` (see `kafka_listener_tests::cluster`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_listener::{Json, KafkaApp, KafkaConfig, RecordMeta, State};
use kafka_listener_tests::scenario::{
    assert_duplicates_are_replays, listener, scenario_cluster, tally, try_committed, Handled,
    Handling, Msg,
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

/// Reads the group's committed offset and checks each reading against the
/// gate: the sampler thread and the test's own waits both go through it,
/// so every offset the test sees is checked and kept.
#[derive(Clone)]
struct Observer {
    bootstrap: String,
    gate: Gate,
    samples: Arc<Mutex<Vec<i64>>>,
}

impl Observer {
    /// The committed offset if the broker answers within `timeout`,
    /// checked: never past the gate's limit (read after the commit; the
    /// limit only rises).
    fn read(&self, timeout: Duration) -> Option<i64> {
        let c = try_committed(&self.bootstrap, GROUP, TOPIC, 1, timeout)?[0];
        let limit = self.gate.limit();
        assert!(
            i128::from(c) <= i128::from(limit),
            "committed offset {c} past the unfinished seq {limit}"
        );
        self.samples.lock().unwrap().push(c);
        Some(c)
    }

    async fn committed_now(&self) -> i64 {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            me.read(Duration::from_secs(10))
                .expect("the broker answers")
        })
        .await
        .unwrap()
    }

    async fn wait_committed(&self, want: i64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            // The broker may not answer yet right after its restart.
            let me = self.clone();
            let c = tokio::task::spawn_blocking(move || me.read(Duration::from_secs(2)))
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

    fn samples(&self) -> Vec<i64> {
        self.samples.lock().unwrap().clone()
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
    let observer = Observer {
        bootstrap: bootstrap.clone(),
        gate: gate.clone(),
        samples: Arc::default(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    // Stops the sampler when the test panics too (the runtime waits for
    // blocking tasks when it shuts down).
    let _stop_on_drop = StopOnDrop(Arc::clone(&stop));
    let sampler = tokio::task::spawn_blocking({
        let (observer, stop) = (observer.clone(), Arc::clone(&stop));
        move || {
            while !stop.load(Ordering::Acquire) {
                observer.read(Duration::from_secs(1));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });

    let first: Vec<u64> = (0..100).collect();
    assert!(handled
        .wait_for_all(&first, Duration::from_secs(30))
        .await
        .is_empty());
    observer.wait_committed(100, Duration::from_secs(30)).await;

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

    observer.wait_committed(150, Duration::from_secs(60)).await;
    let resumed = back.elapsed();
    // Seq 150 is held: the committed offset stays at 150.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(observer.committed_now().await, 150);
    gate.0.send_replace(u64::MAX);
    let all: Vec<u64> = (0..N).collect();
    assert!(handled
        .wait_for_all(&all, Duration::from_secs(30))
        .await
        .is_empty());
    observer
        .wait_committed(N as i64, Duration::from_secs(30))
        .await;
    stop.store(true, Ordering::Release);
    sampler.await.expect("no commit ran ahead of the handler");
    let samples = observer.samples();
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
        "the commits were seen: {} samples",
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
