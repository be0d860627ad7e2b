//! Failure scenario 2: leader failover on a 3-node cluster (replication
//! factor 3, `min.insync.replicas=2`, brokers fenced after 4 s).
//!
//! A producer (`acks=all`, idempotent) sends ~500 records/s to 6
//! partitions, half of them with the key `hot` (the busiest partition);
//! a listener with 3 consumers handles them. Mid-load the leader of the
//! busiest partition is killed (SIGKILL), and later started again.
//!
//! Asserted: leadership of the hot partition moves to another node and the
//! ISR shrinks to the two live ones; every acknowledged record is in the
//! log exactly once at the offset its ack named (no acknowledged record
//! lost, no duplicate from the idempotent producer's retries); every one
//! is handled, each partition in offset order, a record twice only in a
//! replay from a committed offset no earlier than the one observed before
//! the kill; records sent after the kill are handled (the listeners keep
//! going); the node rejoins: it is back in the ISR of every partition.
//! Kafka's `consumer-groups --describe` shows lag 0 at the end.
//!
//! Needs `KAFKA_LAUNCHER` (see `kafka_listener_tests::cluster`).

use std::time::{Duration, Instant};

use kafka_listener_tests::cluster::{Cluster, PartitionInfo};
use kafka_listener_tests::scenario::{
    assert_no_loss, committed, scenario_cluster, start_recording_app,
    wait_all_handled_and_committed, Handled, Load, Msg, Verdict,
};

const TOPIC: &str = "failover.load";
const GROUP: &str = "failover-listener";
const PARTITIONS: i32 = 6;

fn describe(cluster: &Cluster) -> Vec<PartitionInfo> {
    tokio::task::block_in_place(|| cluster.describe_topic(TOPIC))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_busiest_leader_loses_no_acknowledged_record_and_makes_no_duplicate() {
    let started = Instant::now();
    let props = [
        "broker.session.timeout.ms=4000",
        "broker.heartbeat.interval.ms=1000",
        "min.insync.replicas=2",
    ];
    let Some(cluster) =
        scenario_cluster("scenario_leader_failover", 3, &props, TOPIC, PARTITIONS, 3).await
    else {
        return;
    };
    let bootstrap = cluster.bootstrap().to_owned();
    let description =
        tokio::task::block_in_place(|| cluster.tool(&["topics", "--describe", "--topic", TOPIC]));
    assert!(
        description.contains("min.insync.replicas=2"),
        "{description}"
    );
    assert!(describe(&cluster)
        .iter()
        .all(|p| p.replicas.len() == 3 && p.isr.len() == 3));

    let handled = Handled::default();
    let (template, running) =
        start_recording_app(&bootstrap, "failover", TOPIC, GROUP, PARTITIONS, &handled).await;
    // Seq 0 finds the hot key's partition.
    let probe = template
        .send_json(TOPIC, "hot", &Msg { seq: 0 })
        .await
        .expect("the broker acknowledges");
    let hot = probe.partition;
    let load = Load::start(template, TOPIC, 1, Duration::from_millis(2), |s| {
        if s % 2 == 0 {
            "hot".to_owned()
        } else {
            format!("k{}", s % 29)
        }
    });
    handled.wait_len(1_500, Duration::from_secs(180)).await;
    let leader = describe(&cluster)[hot as usize]
        .leader
        .expect("the hot partition has a leader");
    let before = tokio::task::spawn_blocking({
        let b = bootstrap.clone();
        move || committed(&b, GROUP, TOPIC, PARTITIONS)
    })
    .await
    .unwrap();
    cluster.kill_node(leader);
    let killed = Instant::now();
    let sent_at_kill = load.sent();

    // A new leader, and the ISR without the dead node.
    let deadline = Instant::now() + Duration::from_secs(30);
    let moved = loop {
        let d = describe(&cluster);
        let p = &d[hot as usize];
        if p.leader.is_some_and(|l| l != leader) && !p.isr.contains(&leader) {
            break p.clone();
        }
        assert!(Instant::now() < deadline, "no new leader for {hot}: {d:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let failover = killed.elapsed();
    eprintln!("partition {hot}: leader {leader} killed, now {moved:?} after {failover:?}");
    // The listeners keep going on the two live nodes (when the killed node
    // was the group coordinator, the group first finds the new one and may
    // rejoin: up to a session, longer on a saturated machine).
    let handled_then = handled.len();
    handled
        .wait_len(handled_then + 500, Duration::from_secs(90))
        .await;
    let going_on = killed.elapsed();

    cluster.start_node(leader);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = describe(&cluster);
        if d.iter().all(|p| p.isr.contains(&leader)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {leader} not back in every ISR: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rejoined = killed.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut produced = load.stop().await;
    produced.acked.insert(0, (0, probe.partition, probe.offset));

    let acked = produced.acked_seqs();
    assert!(
        acked.iter().any(|s| *s > sent_at_kill + 1_000),
        "records sent after the kill are acknowledged"
    );
    wait_all_handled_and_committed(&handled, &acked, &bootstrap, GROUP, TOPIC, PARTITIONS).await;
    running.shutdown().await;
    let Verdict {
        log,
        failed_in_log,
        handled: all,
        tally: t,
    } = assert_no_loss(&bootstrap, TOPIC, PARTITIONS, &produced, &handled, &before).await;
    let hot_records = log.iter().filter(|h| h.partition == hot).count();
    assert!(
        hot_records * 3 >= log.len(),
        "partition {hot} is the busiest: {hot_records} of {}",
        log.len()
    );
    cluster.assert_zero_lag(GROUP, &[(TOPIC, PARTITIONS)]);
    eprintln!(
        "scenario 2: {} acknowledged, {} failed ({failed_in_log} in the log anyway), log {} records, 0 producer duplicates; \
         {} handlings, lost 0, duplicated {} in replays {:?}; new leader after {failover:?}, 500 more handled {going_on:?} after the kill, node {leader} back in every ISR after {rejoined:?}; {:?}",
        acked.len(),
        produced.failed.len(),
        log.len(),
        all.len(),
        t.duplicated.len(),
        t.replays,
        started.elapsed()
    );
}
