//! Failure scenario 3: a consumer process is SIGKILLed mid-load while a
//! second instance joins and leaves.
//!
//! Instances are real processes (`scenario-consumer`, a listener that
//! appends `partition offset seq ms` per handled record to its own file)
//! in one group on a 4-partition topic of a one-node cluster; the test
//! produces ~500 records/s throughout:
//!
//! 1. instance A runs alone;
//! 2. instance B joins (rebalance);
//! 3. A is SIGKILLed mid-load (its partitions move to B after A's 6 s
//!    session times out);
//! 4. instance C joins, then B leaves gracefully (SIGTERM: it drains and
//!    commits);
//! 5. the load stops, C finishes and stops.
//!
//! Asserted over the three files merged in handling time: every
//! acknowledged record was handled (nothing lost); each partition was
//! handled in offset order, where a step back is a replay from a committed
//! offset; every record handled twice had one handling by the killed A
//! (only A's uncommitted records are redelivered; B's graceful leave
//! redelivers nothing), and on each partition A's redelivered records are
//! the tail of what A handled there. Kafka's `consumer-groups --describe`
//! shows lag 0 at the end.
//!
//! Needs `KAFKA_LAUNCHER` (see `kafka_listener_tests::cluster`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_listener::{KafkaApp, KafkaConfig};
use kafka_listener_tests::scenario::{
    assert_duplicates_are_replays, committed, log_end, scenario_cluster, tally, Handling, Load,
};
use kafka_listener_tests::unique;

const TOPIC: &str = "sigkill.load";
const GROUP: &str = "sigkill-listener";
const PARTITIONS: i32 = 4;

/// One `scenario-consumer` process; SIGKILLed when dropped.
struct Instance {
    name: &'static str,
    child: Child,
    out: PathBuf,
}

impl Instance {
    fn start(name: &'static str, bootstrap: &str, dir: &Path) -> Self {
        let out = dir.join(format!("{name}.txt"));
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_scenario-consumer"))
            .args([bootstrap, TOPIC, GROUP])
            .arg(&out)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("scenario-consumer starts");
        Self { name, child, out }
    }

    /// `(partition, offset, seq, ms)` per line written so far.
    fn lines(&self) -> Vec<(i32, i64, u64, i64)> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                // A line cut by the SIGKILL has fewer fields: never handled
                // to its end, so never committed either.
                (f.len() == 4).then(|| {
                    (
                        f[0].parse().unwrap(),
                        f[1].parse().unwrap(),
                        f[2].parse().unwrap(),
                        f[3].parse().unwrap(),
                    )
                })
            })
            .collect()
    }

    async fn wait_lines(&mut self, at_least: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.lines().len() < at_least {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited: {status}", self.name);
            }
            assert!(
                Instant::now() < deadline,
                "{} handled {} of {at_least} records in {timeout:?}",
                self.name,
                self.lines().len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a graceful exit (drain and commit).
    async fn sigterm(&mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{} exited with {status}", self.name);
                return;
            }
            assert!(Instant::now() < deadline, "{} did not stop", self.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_consumer_process_loses_nothing_and_keeps_partition_order() {
    let started = Instant::now();
    let Some(cluster) =
        scenario_cluster("scenario_consumer_sigkill", 1, &[], TOPIC, PARTITIONS, 1).await
    else {
        return;
    };
    let bootstrap = cluster.bootstrap().to_owned();
    let dir = std::env::temp_dir().join(unique("sigkill"));
    std::fs::create_dir_all(&dir).unwrap();

    // The producer: an app with no listeners.
    let app = KafkaApp::builder()
        .config(KafkaConfig::new().bootstrap_servers(&bootstrap))
        .without_discovered_listeners()
        .build()
        .await
        .expect("the app builds");
    let load = Load::start(app.template(), TOPIC, 0, Duration::from_millis(2), |s| {
        format!("k{}", s % 37)
    });

    let mut a = Instance::start("a", &bootstrap, &dir);
    a.wait_lines(1_000, Duration::from_secs(60)).await;
    let mut b = Instance::start("b", &bootstrap, &dir);
    b.wait_lines(500, Duration::from_secs(60)).await;
    let a_before_kill = a.lines().len();
    a.sigkill();
    let killed = Instant::now();
    // B takes A's partitions once A's session times out.
    let b_then = b.lines().len();
    b.wait_lines(b_then + 3_000, Duration::from_secs(60)).await;
    eprintln!(
        "A killed after {a_before_kill} records; B handled 3000 more {:?} later",
        killed.elapsed()
    );
    let mut c = Instance::start("c", &bootstrap, &dir);
    c.wait_lines(500, Duration::from_secs(60)).await;
    b.sigterm().await;
    let c_then = c.lines().len();
    c.wait_lines(c_then + 1_000, Duration::from_secs(60)).await;
    let produced = load.stop().await;
    let acked = produced.acked_seqs();
    assert!(produced.failed.is_empty(), "{:?}", produced.failed.first());

    // C handles the rest, then stops gracefully.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen: HashSet<u64> = [&a, &b, &c]
            .iter()
            .flat_map(|i| i.lines())
            .map(|l| l.2)
            .collect();
        let missing = acked.iter().filter(|s| !seen.contains(s)).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} acknowledged records never handled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.sigterm().await;
    let b2 = bootstrap.clone();
    let (end, done) = tokio::task::spawn_blocking(move || {
        (
            log_end(&b2, TOPIC, PARTITIONS),
            committed(&b2, GROUP, TOPIC, PARTITIONS),
        )
    })
    .await
    .unwrap();
    assert_eq!(done, end, "the group committed everything");

    // Merged in handling time (a file's own order breaks ties).
    let mut merged: Vec<(i64, usize, usize, Handling, &'static str)> = Vec::new();
    for (k, inst) in [&a, &b, &c].iter().enumerate() {
        for (i, (p, o, seq, ms)) in inst.lines().into_iter().enumerate() {
            merged.push((
                ms,
                k,
                i,
                Handling {
                    partition: p,
                    offset: o,
                    seq,
                },
                inst.name,
            ));
        }
    }
    merged.sort_by_key(|m| (m.0, m.1, m.2));
    let handled: Vec<Handling> = merged.iter().map(|m| m.3).collect();
    let starts: HashMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let t = tally(&acked, &handled, &starts);
    assert!(t.lost.is_empty(), "lost: {:?}", t.lost);
    assert_duplicates_are_replays(&t, &handled);

    // Who handled each duplicate: one handling is always the killed A's.
    let mut by_seq: HashMap<u64, Vec<&'static str>> = HashMap::new();
    for m in &merged {
        by_seq.entry(m.3.seq).or_default().push(m.4);
    }
    for seq in t.duplicated.keys() {
        assert!(
            by_seq[seq].contains(&"a"),
            "seq {seq} handled by {:?}: only the killed instance's records may be redelivered",
            by_seq[seq]
        );
    }
    // On each partition, A's redelivered records are the tail of A's.
    let a_lines = a.lines();
    for p in 0..PARTITIONS {
        let mine: Vec<(i64, u64)> = a_lines
            .iter()
            .filter(|l| l.0 == p)
            .map(|l| (l.1, l.2))
            .collect();
        let redelivered: Vec<bool> = mine
            .iter()
            .map(|(_, s)| t.duplicated.contains_key(s))
            .collect();
        if let Some(first) = redelivered.iter().position(|r| *r) {
            assert!(
                redelivered[first..].iter().all(|r| *r),
                "partition {p}: A's redelivered records are not the tail of A's: {:?}",
                mine.iter().zip(&redelivered).collect::<Vec<_>>()
            );
        }
    }
    cluster.assert_zero_lag(GROUP, &[(TOPIC, PARTITIONS)]);
    eprintln!(
        "scenario 3: {} acknowledged, handled by A {} (killed), B {}, C {}; lost 0; {} redelivered after the SIGKILL in replays {:?}; {:?}",
        acked.len(),
        a.lines().len(),
        b.lines().len(),
        c.lines().len(),
        t.duplicated.len(),
        t.replays,
        started.elapsed()
    );
    drop((a, b, c));
    let _ = std::fs::remove_dir_all(&dir);
}
