//! What the failure scenarios share: a listener that records every record
//! it handles, a paced producer that records what the broker acknowledged,
//! reading committed offsets and logs back, and the exact accounting of
//! what was lost and what was duplicated.
//!
//! Records are JSON `{"seq": n}`; `seq` is unique per record a test sends,
//! so a seq handled twice is a redelivery and a seq twice in the log is a
//! producer duplicate.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_listener::{
    Json, KafkaApp, KafkaConfig, KafkaTemplate, ListenerSpec, RecordMeta, RunningApp, State,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::cluster::{launcher_or_skip, Cluster};
/// Offsets, from `kafka-listener`'s public test support.
pub use kafka_listener::testing::{committed, log_end, try_committed, wait_committed_to_log_end};

/// The value of every scenario record: `{"seq": n}`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Msg {
    /// Unique per record sent by a test.
    pub seq: u64,
}

/// One handling of a record by a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handling {
    /// The record's partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// The record's seq.
    pub seq: u64,
}

/// Every record a listener handled, in handling order (a `State` of the
/// listener).
#[derive(Debug, Clone, Default)]
pub struct Handled(Arc<Mutex<Vec<Handling>>>);

impl Handled {
    /// Records one handling.
    pub fn push(&self, h: Handling) {
        self.0.lock().unwrap().push(h);
    }

    /// How many handlings so far.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Whether nothing was handled yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of every handling so far.
    pub fn snapshot(&self) -> Vec<Handling> {
        self.0.lock().unwrap().clone()
    }

    /// The distinct seqs handled so far.
    pub fn seqs(&self) -> HashSet<u64> {
        self.0.lock().unwrap().iter().map(|h| h.seq).collect()
    }

    /// Waits until at least `n` handlings were recorded.
    ///
    /// # Panics
    /// After `timeout`.
    pub async fn wait_len(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.len() < n {
            assert!(
                Instant::now() < deadline,
                "{} of {n} records handled after {timeout:?}",
                self.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every seq of `want` was handled (up to `timeout`);
    /// returns the seqs still missing.
    pub async fn wait_for_all(&self, want: &[u64], timeout: Duration) -> Vec<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.seqs();
            let missing: Vec<u64> = want.iter().copied().filter(|s| !seen.contains(s)).collect();
            if missing.is_empty() || Instant::now() >= deadline {
                return missing;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn record_handling(msg: Json<Msg>, meta: RecordMeta, handled: State<Handled>) {
    handled.push(Handling {
        partition: meta.partition,
        offset: meta.offset,
        seq: msg.seq,
    });
}

/// A listener `id` of `topic` in `group`, without a handler yet, with a
/// 6 s session (the broker's minimum, `group.min.session.timeout.ms`) and
/// 1 s heartbeats, so that a dead member is evicted quickly.
pub fn listener(id: &str, topic: &str, group: &str) -> ListenerSpec {
    ListenerSpec::new(id)
        .topics([topic])
        .group_id(group)
        .property("session.timeout.ms", "6000")
        .property("heartbeat.interval.ms", "1000")
}

/// [`listener`] with a handler that records each record in the app
/// state's [`Handled`].
pub fn recording_listener(id: &str, topic: &str, group: &str) -> ListenerSpec {
    listener(id, topic, group).handler(record_handling)
}

/// What a paced producer sent: the acknowledged seqs with where they
/// landed, and the seqs whose send failed (not acknowledged: they may or
/// may not be in the log).
#[derive(Debug, Default)]
pub struct Produced {
    /// `(seq, partition, offset)` of every acknowledged record.
    pub acked: Vec<(u64, i32, i64)>,
    /// `(seq, error)` of every record the producer gave up on.
    pub failed: Vec<(u64, String)>,
}

impl Produced {
    /// The acknowledged seqs.
    pub fn acked_seqs(&self) -> Vec<u64> {
        self.acked.iter().map(|a| a.0).collect()
    }
}

/// A producer task sending `{"seq": n}` records for `n` from `first`, one
/// every `pace`, keyed by `key(n)`, until [`Load::stop`]; every send runs
/// concurrently (the template's idempotent producer keeps each
/// partition's order).
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Produced>,
    sent: Arc<std::sync::atomic::AtomicU64>,
}

impl Load {
    /// Starts sending to `topic`.
    pub fn start(
        template: KafkaTemplate,
        topic: &str,
        first: u64,
        pace: Duration,
        key: fn(u64) -> String,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let topic = topic.to_owned();
        let task = tokio::spawn({
            let stop = Arc::clone(&stop);
            let sent = Arc::clone(&sent);
            async move {
                let mut sends = JoinSet::new();
                let mut tick = tokio::time::interval(pace);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut seq = first;
                while !stop.load(Ordering::Acquire) {
                    tick.tick().await;
                    let (template, topic) = (template.clone(), topic.clone());
                    sends.spawn(async move {
                        let r = template.send_json(&topic, key(seq), &Msg { seq }).await;
                        (seq, r)
                    });
                    seq += 1;
                    sent.store(seq - first, Ordering::Release);
                }
                let mut out = Produced::default();
                while let Some(r) = sends.join_next().await {
                    match r.expect("a send task") {
                        (seq, Ok(s)) => out.acked.push((seq, s.partition, s.offset)),
                        (seq, Err(e)) => out.failed.push((seq, e.to_string())),
                    }
                }
                out.acked.sort_unstable();
                out.failed.sort_unstable_by_key(|f| f.0);
                out
            }
        });
        Self { stop, task, sent }
    }

    /// How many records were handed to the producer so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Acquire)
    }

    /// Stops sending and waits for every send's outcome.
    pub async fn stop(self) -> Produced {
        self.stop.store(true, Ordering::Release);
        self.task.await.expect("the load task")
    }
}

/// Every record of `topic` from the beginning to the log end as
/// [`Handling`]s (partition, offset, seq), read with a group-less consumer
/// (isolation `read_committed` is irrelevant: no transactions). Blocking.
///
/// # Panics
/// When the log cannot be read to its end within 60 s.
pub fn read_log(bootstrap: &str, topic: &str, partitions: i32) -> Vec<Handling> {
    let end = log_end(bootstrap, topic, partitions);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "scenario-log-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut next: Vec<i64> = vec![0; partitions as usize];
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while next.iter().zip(&end).any(|(n, e)| n < e) {
        assert!(
            Instant::now() < deadline,
            "{topic}: read {next:?} of {end:?}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let msg: Msg = serde_json::from_slice(m.payload().unwrap_or_default())
                    .expect("a {\"seq\": n} record");
                next[m.partition() as usize] = m.offset() + 1;
                out.push(Handling {
                    partition: m.partition(),
                    offset: m.offset(),
                    seq: msg.seq,
                });
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// Asserts the log holds each acknowledged seq exactly once (the
/// idempotent producer wrote no duplicate, and nothing acknowledged was
/// lost by the brokers) at the partition and offset its ack named, and
/// each failed seq at most once. Returns how many failed seqs made it to
/// the log anyway.
///
/// # Panics
/// On a lost, duplicated or misplaced record.
pub fn assert_log_exact(log: &[Handling], produced: &Produced) -> usize {
    let mut by_seq: HashMap<u64, Vec<(i32, i64)>> = HashMap::new();
    for h in log {
        by_seq
            .entry(h.seq)
            .or_default()
            .push((h.partition, h.offset));
    }
    let dup: Vec<_> = by_seq.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(
        dup.is_empty(),
        "producer duplicates in the log (seq -> (partition, offset)s): {dup:?}"
    );
    for (seq, p, o) in &produced.acked {
        let at = by_seq.get(seq).unwrap_or_else(|| {
            panic!("acknowledged seq {seq} (partition {p}, offset {o}) is not in the log")
        });
        assert_eq!(at[0], (*p, *o), "seq {seq} is not where its ack said");
    }
    let failed_in_log = produced
        .failed
        .iter()
        .filter(|(s, _)| by_seq.contains_key(s))
        .count();
    let known: HashSet<u64> = produced
        .acked
        .iter()
        .map(|a| a.0)
        .chain(produced.failed.iter().map(|f| f.0))
        .collect();
    let strangers: Vec<u64> = by_seq
        .keys()
        .filter(|s| !known.contains(s))
        .copied()
        .collect();
    assert!(strangers.is_empty(), "seqs nobody sent: {strangers:?}");
    failed_in_log
}

/// A place where a partition's handling went back to an earlier offset
/// (a redelivery from the committed offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    /// The partition.
    pub partition: i32,
    /// The offset delivery resumed from.
    pub from: i64,
    /// The highest offset handled before it.
    pub reached: i64,
}

/// Lost and duplicated records of one run.
#[derive(Debug, Default)]
pub struct Tally {
    /// Acknowledged seqs never handled.
    pub lost: Vec<u64>,
    /// Seqs handled more than once, with their handling count.
    pub duplicated: BTreeMap<u64, usize>,
    /// Every replay, per partition in handling order.
    pub replays: Vec<Replay>,
}

/// Counts what `handled` lost of `acked` and what it handled more than
/// once, and checks each partition's order: every step goes to the next
/// offset, or back to an earlier one (a replay, from where the group
/// resumed); a step forward past the next offset would skip records.
/// `start` gives each partition's first offset (the log start, or the
/// committed offset the group started from).
///
/// # Panics
/// On a skip, or a first handling of a partition past `start`.
pub fn tally(acked: &[u64], handled: &[Handling], start: &HashMap<i32, i64>) -> Tally {
    let mut t = Tally::default();
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for h in handled {
        *counts.entry(h.seq).or_default() += 1;
    }
    t.lost = acked
        .iter()
        .copied()
        .filter(|s| !counts.contains_key(s))
        .collect();
    t.lost.sort_unstable();
    t.duplicated = counts.into_iter().filter(|(_, n)| *n > 1).collect();
    let mut last: HashMap<i32, i64> = HashMap::new();
    let mut reached: HashMap<i32, i64> = HashMap::new();
    for h in handled {
        let p = h.partition;
        match last.get(&p) {
            None => {
                let first = start.get(&p).copied().unwrap_or(0);
                assert!(
                    h.offset <= first,
                    "partition {p}: first handled offset {} skips from {first}",
                    h.offset
                );
            }
            Some(&prev) if h.offset == prev + 1 => {}
            Some(&prev) if h.offset <= prev => t.replays.push(Replay {
                partition: p,
                from: h.offset,
                reached: reached[&p],
            }),
            Some(&prev) => panic!(
                "partition {p}: offset {} after {prev} skips records",
                h.offset
            ),
        }
        last.insert(p, h.offset);
        let r = reached.entry(p).or_insert(h.offset);
        *r = (*r).max(h.offset);
    }
    t
}

/// Asserts every duplicate is explained by a replay: its offset lies in a
/// replayed range `from..=reached` of its partition.
///
/// # Panics
/// On a duplicate outside every replay.
pub fn assert_duplicates_are_replays(t: &Tally, handled: &[Handling]) {
    let where_: HashMap<u64, (i32, i64)> = handled
        .iter()
        .map(|h| (h.seq, (h.partition, h.offset)))
        .collect();
    for seq in t.duplicated.keys() {
        let (p, o) = where_[seq];
        assert!(
            t.replays
                .iter()
                .any(|r| r.partition == p && (r.from..=r.reached).contains(&o)),
            "seq {seq} (partition {p}, offset {o}) handled twice outside any replay: {:?}",
            t.replays
        );
    }
}

/// The prologue every scenario shares: the launcher (or a printed skip, see
/// [`launcher_or_skip`]), logs, a cluster of `nodes` started with the
/// broker properties `props`, and `topic` created with `partitions`
/// partitions and replication factor `replication`.
///
/// Returns `None` when the scenario is skipped (no launcher, not in CI).
///
/// # Panics
/// When the cluster does not start or the topic cannot be created.
pub async fn scenario_cluster(
    name: &str,
    nodes: usize,
    props: &[&str],
    topic: &str,
    partitions: i32,
    replication: i32,
) -> Option<Cluster> {
    let launcher = launcher_or_skip(name)?;
    crate::init_logs();
    let cluster = Cluster::start(&launcher, nodes, props);
    cluster.create_topic(topic, partitions, replication).await;
    Some(cluster)
}

/// What [`assert_no_loss`] read and counted.
#[derive(Debug)]
pub struct Verdict {
    /// The topic's log, from the beginning.
    pub log: Vec<Handling>,
    /// How many failed sends made it to the log anyway.
    pub failed_in_log: usize,
    /// Every handling, in handling order.
    pub handled: Vec<Handling>,
    /// Lost, duplicated and replayed records.
    pub tally: Tally,
}

/// The end of a load scenario, asserted exactly: the log holds every
/// acknowledged record once where its ack said ([`assert_log_exact`]),
/// nothing acknowledged was lost, every duplicate is a replay, no replay
/// starts before `committed_before` (each partition's committed offset
/// observed before the fault), and every record in the log was handled.
///
/// # Panics
/// On any of those.
pub async fn assert_no_loss(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    produced: &Produced,
    handled: &Handled,
    committed_before: &[i64],
) -> Verdict {
    let log = blocking({
        let (b, t) = (bootstrap.to_owned(), topic.to_owned());
        move || read_log(&b, &t, partitions)
    })
    .await;
    let failed_in_log = assert_log_exact(&log, produced);
    let all = handled.snapshot();
    let starts: HashMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    let t = tally(&produced.acked_seqs(), &all, &starts);
    assert!(t.lost.is_empty(), "lost: {:?}", t.lost);
    assert_duplicates_are_replays(&t, &all);
    for r in &t.replays {
        let before = committed_before[r.partition as usize];
        assert!(
            r.from >= before,
            "partition {}: replay from {} is before the offset committed before the fault ({before})",
            r.partition,
            r.from,
        );
    }
    let handled_seqs = handled.seqs();
    assert!(
        log.iter().all(|h| handled_seqs.contains(&h.seq)),
        "a record in the log was never handled"
    );
    Verdict {
        log,
        failed_in_log,
        handled: all,
        tally: t,
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("a blocking helper")
}

/// Starts an app on `bootstrap` whose one listener, `id`, is a
/// [`recording_listener`] of `topic` in `group` with 3 consumers, and waits
/// until its consumers hold `partitions` partitions. The producer waits out
/// a broker outage of up to 60 s (`message.timeout.ms`) and reconnects
/// within a second of the broker's return (`reconnect.backoff.max.ms`).
/// Returns the app's template and the running app.
///
/// # Panics
/// When the app does not build or start, or the partitions are not
/// assigned within 30 s.
pub async fn start_recording_app(
    bootstrap: &str,
    id: &str,
    topic: &str,
    group: &str,
    partitions: i32,
    handled: &Handled,
) -> (KafkaTemplate, RunningApp) {
    let config = KafkaConfig::new()
        .bootstrap_servers(bootstrap)
        // Waits out an outage (librdkafka's default is 300 s).
        .property("message.timeout.ms", "60000")
        // Reconnects within a second of the broker's return (default 10 s).
        .property("reconnect.backoff.max.ms", "1000");
    let app = KafkaApp::builder()
        .config(config)
        .without_discovered_listeners()
        .listener(recording_listener(id, topic, group).concurrency(3))
        .build()
        .await
        .expect("the app builds")
        .state(handled.clone());
    let template = app.template();
    let running = app.start().await.expect("the app starts");
    assert!(
        running
            .container(id)
            .unwrap()
            .wait_for_assignment(partitions as usize, Duration::from_secs(30))
            .await,
        "the listener's consumers get the {partitions} partitions"
    );
    (template, running)
}

/// Waits until every acknowledged seq in `acked` was handled (60 s at
/// most) and the group has committed the log end of every partition of
/// `topic` (30 s at most): the run is over and nothing is in hand.
///
/// # Panics
/// When a record is never handled, or the commits do not reach the log end.
pub async fn wait_all_handled_and_committed(
    handled: &Handled,
    acked: &[u64],
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) {
    let missing = handled.wait_for_all(acked, Duration::from_secs(60)).await;
    assert!(
        missing.is_empty(),
        "acknowledged but never handled: {} of {} (first {:?})",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(20)]
    );
    wait_committed_to_log_end(bootstrap, group, topic, partitions, Duration::from_secs(30)).await;
}
