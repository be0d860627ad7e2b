//! Failure scenario 1: the broker of a one-node cluster (data on disk) is
//! killed (SIGKILL) and restarted while a producer sends and a listener
//! consumes.
//!
//! Kafka's contract, asserted exactly: every record the producer had
//! acknowledged (`acks=all`, idempotent) is in the log once, at the offset
//! its ack named, and is handled by the listener; records whose send
//! failed may be missing (none failed in our runs: the producer waits out
//! the restart within `message.timeout.ms`); the listener handles each
//! partition in offset order, and a record is handled twice only in a
//! replay from a committed offset (it resumes from its committed offsets,
//! never from before the last one observed before the crash). At the end
//! the group has committed everything: Kafka's own `consumer-groups
//! --describe` shows lag 0.
//!
//! Needs `KAFKA_LAUNCHER` (see `kafka_listener_tests::cluster`).

use std::time::{Duration, Instant};

use kafka_listener_tests::scenario::{
    assert_no_loss, committed, scenario_cluster, start_recording_app,
    wait_all_handled_and_committed, Handled, Load, Verdict,
};

const TOPIC: &str = "restart.load";
const GROUP: &str = "restart-listener";
const PARTITIONS: i32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_under_load_loses_nothing_acknowledged_and_resumes_from_committed_offsets() {
    let started = Instant::now();
    let Some(cluster) =
        scenario_cluster("scenario_broker_restart", 1, &[], TOPIC, PARTITIONS, 1).await
    else {
        return;
    };
    let bootstrap = cluster.bootstrap().to_owned();

    let handled = Handled::default();
    let (template, running) =
        start_recording_app(&bootstrap, "restart", TOPIC, GROUP, PARTITIONS, &handled).await;

    // ~500 records/s over 31 keys, so every partition is busy.
    let load = Load::start(template, TOPIC, 0, Duration::from_millis(2), |s| {
        format!("k{}", s % 31)
    });
    handled.wait_len(1_000, Duration::from_secs(180)).await;
    let before = tokio::task::spawn_blocking({
        let b = bootstrap.clone();
        move || committed(&b, GROUP, TOPIC, PARTITIONS)
    })
    .await
    .unwrap();
    let handled_at_kill = handled.len();
    cluster.kill_node(1);
    let sent_at_kill = load.sent();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let outage = Instant::now();
    cluster.start_node(1);
    let sent_at_restart = load.sent();
    eprintln!(
        "broker down ~{:?}; committed before the kill {before:?}, {handled_at_kill} handled",
        outage.elapsed() + Duration::from_secs(2)
    );
    // Load goes on after the restart.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let produced = load.stop().await;

    let acked = produced.acked_seqs();
    assert!(
        acked.iter().any(|s| *s >= sent_at_restart),
        "records sent after the restart are acknowledged"
    );
    wait_all_handled_and_committed(&handled, &acked, &bootstrap, GROUP, TOPIC, PARTITIONS).await;
    running.shutdown().await;
    let Verdict {
        failed_in_log,
        handled: all,
        tally: t,
        ..
    } = assert_no_loss(&bootstrap, TOPIC, PARTITIONS, &produced, &handled, &before).await;
    cluster.assert_zero_lag(GROUP, &[(TOPIC, PARTITIONS)]);
    eprintln!(
        "scenario 1: {} sent ({sent_at_kill} before the kill), {} acknowledged, {} failed ({failed_in_log} of them in the log anyway: {:?}), \
         {} handlings, lost 0, duplicated {} in {} replay(s) {:?}; {:?}",
        produced.acked.len() + produced.failed.len(),
        acked.len(),
        produced.failed.len(),
        produced.failed.first(),
        all.len(),
        t.duplicated.len(),
        t.replays.len(),
        t.replays,
        started.elapsed()
    );
}
