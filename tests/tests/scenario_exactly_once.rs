//! Failure scenario: exactly-once consume-transform-produce through
//! SIGKILLs.
//!
//! A `transactional = true` listener (`scenario-transform`, a process of its
//! own) reads 600 records `{"seq": n}` from a 4-partition topic and sends
//! one `{"seq": n}` per input to an output topic, in each record's
//! transaction with its offset. It is SIGKILLed mid-stream three times and
//! restarted with the same `transactional.id` prefix (its new producers
//! fence the killed ones and abort their open transactions); a fourth
//! instance finishes.
//!
//! Referee: Kafka's own tools. `kafka-console-consumer --isolation-level
//! read_committed` reads the output: every seq exactly once, none lost and
//! none twice; `kafka-consumer-groups --describe` shows lag 0 on the input.
//! A `read_uncommitted` read shows what the kills left behind (aborted
//! sends), printed for the record.
//!
//! Needs `KAFKA_LAUNCHER` (see `kafka_listener_tests::cluster`).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_listener::testing::log_end;
use kafka_listener::{KafkaApp, KafkaConfig, ProducerRecord};
use kafka_listener_tests::scenario::{scenario_cluster, Msg};
use kafka_listener_tests::unique;

const INPUT: &str = "eos.input";
const OUTPUT: &str = "eos.output";
const GROUP: &str = "eos-transform";
const PARTITIONS: i32 = 4;
const RECORDS: u64 = 600;

/// One `scenario-transform` process; SIGKILLed when dropped.
struct Instance(Child);

impl Instance {
    fn start(bootstrap: &str, prefix: &str, log: std::fs::File) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_scenario-transform"))
            .args([bootstrap, INPUT, OUTPUT, GROUP, prefix])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("scenario-transform starts");
        Self(child)
    }

    fn sigkill(&mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().unwrap();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The output topic's log end offsets summed: records sent (committed,
/// open or aborted) plus transaction markers.
fn output_end(bootstrap: &str) -> i64 {
    log_end(bootstrap, OUTPUT, PARTITIONS).iter().sum()
}

async fn wait_output_end(bootstrap: &str, at_least: i64, timeout: Duration, child: &mut Instance) {
    let deadline = Instant::now() + timeout;
    while output_end(bootstrap) < at_least {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("scenario-transform exited: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the output reached {} of {at_least} in {timeout:?}",
            output_end(bootstrap)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The seqs of the output topic read by Kafka's console consumer with
/// `isolation_level`, counted. The consumer stops after 8 s without a new
/// record: the output is complete by then (the input's lag is 0), and its
/// group's first join takes well under that on the launcher's broker
/// (`group.initial.rebalance.delay.ms=0`).
fn read_output(
    cluster: &kafka_listener_tests::cluster::Cluster,
    isolation: &str,
) -> HashMap<u64, usize> {
    let group = unique("eos-referee");
    let text = cluster.tool(&[
        "console-consumer",
        "--topic",
        OUTPUT,
        "--from-beginning",
        "--isolation-level",
        isolation,
        "--group",
        &group,
        "--timeout-ms",
        "8000",
    ]);
    let mut seen = HashMap::new();
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let msg: Msg = serde_json::from_str(line).expect("an output record is JSON");
        *seen.entry(msg.seq).or_default() += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_transforms_produce_each_output_exactly_once() {
    let started = Instant::now();
    let Some(cluster) =
        scenario_cluster("scenario_exactly_once", 1, &[], INPUT, PARTITIONS, 1).await
    else {
        return;
    };
    cluster.create_topic(OUTPUT, PARTITIONS, 1).await;
    let bootstrap = cluster.bootstrap().to_owned();
    let dir = std::env::temp_dir().join(unique("eos"));
    std::fs::create_dir_all(&dir).unwrap();

    let app = KafkaApp::builder()
        .config(KafkaConfig::new().bootstrap_servers(&bootstrap))
        .without_discovered_listeners()
        .build()
        .await
        .expect("the app builds");
    let template = app.template();
    for seq in 0..RECORDS {
        let record = ProducerRecord::keyed(INPUT, format!("k{}", seq % 37))
            .json(&Msg { seq })
            .unwrap();
        template.send(record).await.expect("input acknowledged");
    }

    let prefix = unique("eos-");
    let log = |n: usize| std::fs::File::create(dir.join(format!("transform-{n}.log"))).unwrap();
    // Three instances killed mid-stream, each after the output grew by
    // 200 (records and markers): each kill lands amid transactions.
    for kill in 0..3 {
        let mut instance = Instance::start(&bootstrap, &prefix, log(kill));
        let target = output_end(&bootstrap) + 200;
        wait_output_end(&bootstrap, target, Duration::from_secs(90), &mut instance).await;
        instance.sigkill();
        eprintln!(
            "kill {kill}: output end {} after {:?}",
            output_end(&bootstrap),
            started.elapsed()
        );
    }
    let _last = Instance::start(&bootstrap, &prefix, log(3));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let rows = cluster.describe_group(GROUP);
        let done = rows.len() == PARTITIONS as usize && rows.iter().all(|r| r.lag == Some(0));
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the input was not consumed: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let lag = cluster.assert_zero_lag(GROUP, &[(INPUT, PARTITIONS)]);
    assert_eq!(
        lag.iter().filter_map(|r| r.current).sum::<i64>(),
        RECORDS as i64,
        "{lag:?}"
    );

    let committed = read_output(&cluster, "read_committed");
    let missing: Vec<u64> = (0..RECORDS)
        .filter(|s| !committed.contains_key(s))
        .collect();
    let twice: Vec<(&u64, &usize)> = committed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        missing.is_empty(),
        "{} outputs lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    assert!(
        twice.is_empty(),
        "{} outputs twice: {:?}",
        twice.len(),
        &twice[..twice.len().min(20)]
    );
    assert_eq!(committed.len() as u64, RECORDS);
    let uncommitted: usize = read_output(&cluster, "read_uncommitted").values().sum();
    eprintln!(
        "exactly once: {RECORDS} outputs read_committed; {} records in the log (aborted sends of the killed instances: {}); {:?}",
        uncommitted,
        uncommitted as u64 - RECORDS,
        started.elapsed()
    );
}
