//! Support shared by every integration test of `kafka-listener`: which
//! broker a test runs on, topic and group names, producing records, reading
//! committed offsets, watermarks and topics back, and assertions on what a
//! listener saw.
//!
//! # Which broker
//!
//! One place decides, [`broker`]:
//!
//! | environment | broker |
//! |---|---|
//! | `KAFKA_TEST_BOOTSTRAP_SERVERS=host:port[,...]` | that real cluster: topics are created with rdkafka's `AdminClient` (broker-default replication) and the test waits until every partition has a leader |
//! | unset or empty | a new embedded broker (librdkafka's mock cluster) per test, as `cargo test` does on a fresh machine |
//!
//! On a real cluster topic and group names get a suffix unique to the test
//! process ([`unique`]), so the suite can run again and again on a
//! long-lived cluster, and several test binaries at once, without seeing
//! each other's records or joining each other's groups. On the embedded
//! broker names stay as written.
//!
//! Tests that need the mock's fault injection (request errors, a broker
//! taken down, round-trip times, its 5 MiB per partition) call
//! [`embedded_broker`] instead, with a one-line comment saying why.
//!
//! # Tests that need a real broker
//!
//! The KIP-848 consumer group protocol (`group.protocol=consumer`) does not
//! run on the mock. Such tests call [`real_broker_only`], which decides:
//!
//! | environment | outcome |
//! |---|---|
//! | `KAFKA_TEST_BOOTSTRAP_SERVERS` set | the test runs |
//! | `KAFKA_TEST_EMBEDDED_PASS=1` | the test passes at once, printing that it runs in the real-broker pass (`.ci/run` sets this in its first, embedded pass, and runs the suite again on a real broker) |
//! | `CI=true` (without the marker) | the test fails: CI must not skip it silently |
//! | otherwise | the test passes at once, printing that it needs `KAFKA_TEST_BOOTSTRAP_SERVERS` |
//!
//! # Kafka's own tool as a referee
//!
//! [`assert_zero_lag`] asks `kafka-consumer-groups --describe` (through the
//! launcher named by `KAFKA_LAUNCHER`, or `../shared/kafka/kafka` next to
//! the repository) for a group's lag on a real broker.

#![allow(dead_code, unreachable_pub, unused_imports)]

#[cfg(feature = "after-commit")]
pub mod after_commit;
#[cfg(feature = "avro")]
pub mod avro;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kafka_listener::embedded::EmbeddedBroker;
use kafka_listener::prelude::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use kafka_listener::testing::TestKafka;
/// The variable naming a real cluster to run the suite on, what it names,
/// and the offsets of a group and a topic: the public test support
/// (`kafka_listener::testing`).
pub use kafka_listener::testing::{committed, log_end, real_bootstrap, BOOTSTRAP_ENV};
/// The JSON value [`produce`] sends: `{"seq": i}`.
#[derive(Debug, serde::Deserialize)]
pub struct Msg {
    pub seq: u64,
}

/// What [`batch_listener`] saw: each batch's seqs, in call order.
#[derive(Debug, Clone, Default)]
pub struct Batches(pub Arc<Mutex<Vec<Vec<u64>>>>);

/// A batch listener that records each batch's seqs in its [`Batches`].
pub async fn batch_listener(batch: Vec<Json<Msg>>, seen: State<Batches>) {
    let Batches(inner) = &*seen;
    inner
        .lock()
        .unwrap()
        .push(batch.iter().map(|m| m.seq).collect());
}

/// The marker of CI's embedded pass: tests that need a real broker pass at
/// once, saying they run in the real-broker pass.
pub const EMBEDDED_PASS_ENV: &str = "KAFKA_TEST_EMBEDDED_PASS";

/// Logs test output through tracing once per process (`RUST_LOG` filters).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,kafka_listener=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Whether this run talks to a real cluster.
pub fn on_real_broker() -> bool {
    real_bootstrap().is_some()
}

/// A suffix unique to this test process (pid and start time).
fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("{:x}{:x}", std::process::id(), nanos % 0xfff_ffff)
    })
}

/// `base` on the embedded broker; `base.<run id>` on a real cluster, so
/// that topics and groups of one run never meet those of another.
pub fn unique(base: &str) -> String {
    if on_real_broker() {
        format!("{base}.{}", run_id())
    } else {
        base.to_owned()
    }
}

/// The broker of one test: a real cluster or an embedded broker.
#[derive(Debug)]
pub struct TestBroker {
    kafka: TestKafka,
}

impl TestBroker {
    /// The switch: the real cluster of `KAFKA_TEST_BOOTSTRAP_SERVERS`, or a
    /// new embedded broker.
    pub fn start() -> Self {
        Self {
            kafka: TestKafka::start().expect("test broker"),
        }
    }

    /// Always an embedded broker (for fault injection).
    pub fn start_embedded() -> Self {
        Self {
            kafka: TestKafka::embedded().expect("embedded broker"),
        }
    }

    /// The embedded broker, to hand to an app
    /// (`KafkaAppBuilder::embedded_broker`); `None` on a real cluster.
    pub fn embedded(&self) -> Option<Arc<EmbeddedBroker>> {
        self.kafka.embedded_broker().cloned()
    }

    /// `host:port[,...]`.
    pub fn bootstrap_servers(&self) -> &str {
        self.kafka.bootstrap_servers()
    }

    /// Whether this is a real cluster.
    pub fn is_real(&self) -> bool {
        self.kafka.is_real()
    }

    /// The embedded broker; panics on a real cluster (a test that injects
    /// faults must start with [`embedded_broker`]).
    pub fn mock(&self) -> &EmbeddedBroker {
        self.kafka
            .embedded_broker()
            .map(|b| &**b)
            .expect("fault injection needs the embedded broker (embedded_broker())")
    }

    /// Runs `f` on the mock cluster, see [`EmbeddedBroker::with_mock`].
    pub fn with_mock<T: Send + 'static>(
        &self,
        f: impl FnOnce(&kafka_listener::embedded::Mock) -> T + Send + 'static,
    ) -> kafka_listener::Result<T> {
        self.mock().with_mock(f)
    }

    /// Creates `name` with `partitions` partitions; an existing topic is
    /// left as it is. On a real cluster, waits until every partition has a
    /// leader (30 s at most).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), String> {
        self.kafka
            .create_topic(name, partitions)
            .map_err(|e| e.to_string())
    }

    /// Like [`TestBroker::create_topic`], but on a real cluster a topic of
    /// that name is deleted first (for the fixed topic names of
    /// `#[kafka_listener]` functions, which [`unique`] cannot rename).
    pub fn create_fresh_topic(&self, name: &str, partitions: i32) -> Result<(), String> {
        self.kafka
            .recreate_topic(name, partitions)
            .map_err(|e| e.to_string())
    }
}

/// A broker for one test (the switch, see the module docs) with `topic`
/// created.
pub fn broker(topic: &str, partitions: i32) -> Arc<TestBroker> {
    let broker = TestBroker::start();
    broker.create_topic(topic, partitions).expect("topic");
    Arc::new(broker)
}

/// Always an embedded broker with `topic` created, for tests that inject
/// faults through the mock cluster.
pub fn embedded_broker(topic: &str, partitions: i32) -> Arc<TestBroker> {
    let broker = TestBroker::start_embedded();
    broker.create_topic(topic, partitions).expect("topic");
    Arc::new(broker)
}

/// Sets a consumer-only property of `config`.
///
/// `KafkaConfig` has no builder method for consumer-only properties yet;
/// this is the one place of the tests that writes its field.
pub fn consumer_property(config: KafkaConfig, key: &str, value: &str) -> KafkaConfig {
    config.consumer_property(key, value)
}

/// App config pointing at `broker`, for the classic group protocol: a 6 s
/// session timeout and 500 ms heartbeats, so a lost member is noticed fast.
pub fn config(broker: &TestBroker) -> KafkaConfig {
    config_for(broker, Protocol::ClassicEager)
}

/// App config pointing at `broker` for `protocol`. With the KIP-848
/// protocol librdkafka refuses `session.timeout.ms` and
/// `heartbeat.interval.ms` (the broker decides them), so neither is set.
pub fn config_for(broker: &TestBroker, protocol: Protocol) -> KafkaConfig {
    let mut config = KafkaConfig::new().bootstrap_servers(broker.bootstrap_servers());
    if protocol != Protocol::Consumer {
        config = consumer_property(config, "session.timeout.ms", "6000");
        config = consumer_property(config, "heartbeat.interval.ms", "500");
    }
    // RDKAFKA_DEBUG=cgrp,fetch turns on librdkafka's debug contexts.
    if let Ok(debug) = std::env::var("RDKAFKA_DEBUG") {
        config = config.property("debug", debug);
    }
    config
}

/// The consumer group protocols and assignors the rebalance tests run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Classic protocol, eager `range` assignor: every partition is revoked
    /// at each rebalance.
    ClassicEager,
    /// Classic protocol, `cooperative-sticky` assignor (KIP-429): only the
    /// partitions that move are revoked.
    ClassicCooperative,
    /// The KIP-848 consumer group protocol, `group.protocol=consumer`
    /// (broker-side assignment, incremental; GA in Kafka 4.0 and librdkafka
    /// 2.12). Needs a real broker.
    Consumer,
}

impl Protocol {
    /// Every variant.
    pub const ALL: [Protocol; 3] = [
        Protocol::ClassicEager,
        Protocol::ClassicCooperative,
        Protocol::Consumer,
    ];

    /// The listener-level properties that select this protocol.
    pub fn properties(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Protocol::ClassicEager => &[("partition.assignment.strategy", "range")],
            Protocol::ClassicCooperative => {
                &[("partition.assignment.strategy", "cooperative-sticky")]
            }
            Protocol::Consumer => &[("group.protocol", "consumer")],
        }
    }

    /// `spec` with [`Protocol::properties`].
    pub fn apply(self, mut spec: ListenerSpec) -> ListenerSpec {
        for (k, v) in self.properties() {
            spec = spec.property(*k, *v);
        }
        spec
    }

    /// Whether a test of this protocol runs here; see [`real_broker_only`].
    pub fn runs_here(self, test: &str) -> bool {
        match self {
            Protocol::Consumer => real_broker_only(test),
            _ => true,
        }
    }
}

/// Whether a test that needs a real broker runs: true on a real cluster;
/// otherwise prints why not and returns false, or panics when `CI=true`
/// and this is not CI's embedded pass (see the module docs).
pub fn real_broker_only(test: &str) -> bool {
    if on_real_broker() {
        return true;
    }
    if std::env::var(EMBEDDED_PASS_ENV).is_ok_and(|v| v == "1") {
        eprintln!("{test}: runs in the real-broker pass ({EMBEDDED_PASS_ENV}=1)");
        return false;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{test} needs a real broker: CI=true but {BOOTSTRAP_ENV} is not set \
             (set {EMBEDDED_PASS_ENV}=1 in a deliberately embedded pass)"
        );
    }
    eprintln!("{test}: needs {BOOTSTRAP_ENV}=host:port (a real Kafka broker); not run");
    false
}

/// Sends `count` JSON records `{"seq": i}` keyed `k{i % keys}` and returns,
/// per partition, the (offset, seq) pairs in the order they landed.
pub async fn produce(
    template: &KafkaTemplate,
    topic: &str,
    range: std::ops::Range<u64>,
    keys: u64,
) -> HashMap<i32, Vec<(i64, u64)>> {
    let results: Vec<_> = futures::stream::iter(range)
        .map(|i| {
            let template = template.clone();
            let topic = topic.to_owned();
            async move {
                let r = template
                    .send_json(
                        &topic,
                        format!("k{}", i % keys),
                        &serde_json::json!({ "seq": i }),
                    )
                    .await
                    .expect("send");
                (r.partition, r.offset, i)
            }
        })
        .buffer_unordered(500)
        .collect()
        .await;
    let mut by_partition: HashMap<i32, Vec<(i64, u64)>> = HashMap::new();
    for (p, o, i) in results {
        by_partition.entry(p).or_default().push((o, i));
    }
    for v in by_partition.values_mut() {
        v.sort();
    }
    by_partition
}

/// What a test listener saw: (partition, offset, seq) in handling order.
#[derive(Debug, Default, Clone)]
pub struct Seen(pub Arc<Mutex<Vec<(i32, i64, u64)>>>);

impl Seen {
    pub fn push(&self, partition: i32, offset: i64, seq: u64) {
        self.0.lock().unwrap().push((partition, offset, seq));
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn snapshot(&self) -> Vec<(i32, i64, u64)> {
        self.0.lock().unwrap().clone()
    }

    /// The number of distinct seqs seen.
    pub fn distinct(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.2)
            .collect::<std::collections::HashSet<u64>>()
            .len()
    }

    /// Waits until `pred(len)` holds, up to `timeout`; returns the length.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(usize) -> bool) -> usize {
        let start = Instant::now();
        loop {
            let n = self.len();
            if pred(n) || start.elapsed() > timeout {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Asserts that within each partition offsets strictly increase in the
/// order the handler saw them.
pub fn assert_partition_order(seen: &[(i32, i64, u64)]) {
    let mut last: HashMap<i32, i64> = HashMap::new();
    for &(p, o, _) in seen {
        if let Some(&prev) = last.get(&p) {
            assert!(o > prev, "partition {p}: offset {o} handled after {prev}");
        }
        last.insert(p, o);
    }
}

/// Asserts that each partition was handled in offset order with nothing
/// skipped: every step goes to the next offset, or back to an earlier one
/// (a redelivery after a rebalance replays from the committed offset).
/// Returns the number of such replays.
pub fn assert_in_order_allowing_replays(seen: &[(i32, i64, u64)]) -> usize {
    let mut last: HashMap<i32, i64> = HashMap::new();
    let mut replays = 0;
    for &(p, o, _) in seen {
        match last.get(&p) {
            None => assert_eq!(o, 0, "partition {p} starts at offset 0"),
            Some(&prev) if o == prev + 1 => {}
            Some(&prev) if o <= prev => replays += 1,
            Some(&prev) => panic!("partition {p}: offset {o} after {prev} skips records"),
        }
        last.insert(p, o);
    }
    replays
}

/// After rebalances, each partition handled in offset order with nothing
/// skipped ([`assert_in_order_allowing_replays`]), and:
///
/// - on a real broker, nothing handled twice: the commit of a revoked
///   partition's finished records succeeds before the partition is given
///   up, so its next owner starts exactly there (Kafka's contract with our
///   commit-on-revoke);
/// - on the embedded broker, at most `max_mock_replays` replays: the mock
///   refuses commits while a rebalance is in progress
///   (`REBALANCE_IN_PROGRESS`), so a new owner may start from the last
///   accepted commit.
///
/// Returns the number of replays.
pub fn assert_no_replays_on_a_real_broker(
    seen: &[(i32, i64, u64)],
    max_mock_replays: usize,
) -> usize {
    let replays = assert_in_order_allowing_replays(seen);
    if on_real_broker() {
        assert_eq!(
            replays, 0,
            "a real broker accepts the commit of revoked partitions: no record may be handled twice"
        );
        let mut keys: Vec<(i32, i64)> = seen.iter().map(|s| (s.0, s.1)).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), before, "no (partition, offset) handled twice");
    } else {
        assert!(
            replays <= max_mock_replays,
            "the mock may replay after a refused commit, at most {max_mock_replays} times; got {replays}"
        );
    }
    replays
}

/// Reads `topic` (partitions `0..partitions`) from the beginning with a
/// group-less consumer until `count` records arrived or `timeout` passed;
/// returns what arrived (dead-letter and retry topics in tests).
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
    timeout: Duration,
) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::Message;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < count && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(m.detach());
        }
    }
    out.sort_by_key(|m| (m.partition(), m.offset()));
    out
}

/// The value of the last header `key` of `message`.
pub fn header(message: &rdkafka::message::OwnedMessage, key: &str) -> Option<Vec<u8>> {
    use rdkafka::message::Headers as _;
    use rdkafka::Message;
    message
        .headers()?
        .iter()
        .filter(|h| h.key == key)
        .last()
        .and_then(|h| h.value.map(<[u8]>::to_vec))
}

/// An app on `broker` (see [`config`]) with only the listener `spec` and
/// the state `state`, not started.
pub async fn listener_app<S: Clone + Send + Sync + 'static>(
    broker: &TestBroker,
    spec: ListenerSpec,
    state: S,
) -> KafkaApp {
    listener_app_with(config(broker), spec, state).await
}

/// As [`listener_app`], with the configuration `config` (for instance
/// [`config`] plus consumer properties).
pub async fn listener_app_with<S: Clone + Send + Sync + 'static>(
    config: KafkaConfig,
    spec: ListenerSpec,
    state: S,
) -> KafkaApp {
    KafkaApp::builder()
        .config(config)
        .without_discovered_listeners()
        .listener(spec)
        .build()
        .await
        .unwrap()
        .state(state)
}

/// [`read_topic`] on a blocking thread, for async tests.
pub async fn read_topic_async(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
    timeout: Duration,
) -> Vec<rdkafka::message::OwnedMessage> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || read_topic(&bootstrap, &topic, partitions, count, timeout))
        .await
        .expect("reader thread")
}

// ---- Kafka's own tool as a referee ----

/// The `kafka` launcher: `KAFKA_LAUNCHER`, or `../shared/kafka/kafka`
/// relative to the repository root.
pub fn kafka_launcher() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KAFKA_LAUNCHER").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/kafka/kafka");
    p.is_file().then_some(p)
}

/// One row of `kafka-consumer-groups --describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    pub topic: String,
    pub partition: i32,
    /// `None` for `-` (nothing committed).
    pub current_offset: Option<i64>,
    pub log_end_offset: Option<i64>,
    pub lag: Option<i64>,
}

/// Parses the table of `kafka-consumer-groups --describe --group G`
/// (columns `GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...`).
pub fn parse_group_description(out: &str, group: &str) -> Vec<GroupRow> {
    let num = |s: &str| s.parse::<i64>().ok();
    out.lines()
        .map(str::split_whitespace)
        .map(Iterator::collect::<Vec<_>>)
        .filter(|cols| cols.len() >= 6 && cols[0] == group)
        .filter_map(|cols| {
            Some(GroupRow {
                topic: cols[1].to_owned(),
                partition: cols[2].parse().ok()?,
                current_offset: num(cols[3]),
                log_end_offset: num(cols[4]),
                lag: num(cols[5]),
            })
        })
        .collect()
}

/// Runs `kafka tool consumer-groups --bootstrap-server bootstrap --describe
/// ARGS --group group` on the real cluster and returns its output; `None`
/// when no launcher is found (a note is printed; under `CI=true` that is a
/// failure).
fn consumer_groups_describe(bootstrap: &str, group: &str, args: &[&str]) -> Option<String> {
    let Some(launcher) = kafka_launcher() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but no kafka launcher: set KAFKA_LAUNCHER");
        }
        eprintln!("no kafka launcher (KAFKA_LAUNCHER): the consumer-groups referee is not run");
        return None;
    };
    let out = std::process::Command::new(&launcher)
        .args([
            "tool",
            "consumer-groups",
            "--bootstrap-server",
            bootstrap,
            "--describe",
        ])
        .args(args)
        .args(["--group", group])
        .output()
        .expect("run kafka tool consumer-groups");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kafka tool consumer-groups failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(stdout)
}

/// Runs `kafka tool consumer-groups --describe --group group` on the real
/// cluster; `None` as [`consumer_groups_describe`].
pub fn describe_group(bootstrap: &str, group: &str) -> Option<Vec<GroupRow>> {
    consumer_groups_describe(bootstrap, group, &[]).map(|out| parse_group_description(&out, group))
}

/// One member row of `kafka-consumer-groups --describe --members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub client_id: String,
    /// `GROUP-INSTANCE-ID` (static membership); `None` for `-` or when
    /// the tool prints no such column (no member has one).
    pub instance_id: Option<String>,
    pub partitions: usize,
}

/// Parses the table of `kafka-consumer-groups --describe --members
/// --group G` by its header (`GROUP CONSUMER-ID [GROUP-INSTANCE-ID] HOST
/// CLIENT-ID #PARTITIONS`).
pub fn parse_group_members(out: &str, group: &str) -> Vec<MemberRow> {
    let mut lines = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>());
    let Some(header) = lines.find(|cols| cols.first() == Some(&"GROUP")) else {
        return Vec::new();
    };
    let at = |name: &str| header.iter().position(|c| *c == name);
    let (Some(client), Some(partitions)) = (at("CLIENT-ID"), at("#PARTITIONS")) else {
        return Vec::new();
    };
    let instance = at("GROUP-INSTANCE-ID");
    lines
        .filter(|cols| cols.len() == header.len() && cols[0] == group)
        .filter_map(|cols| {
            Some(MemberRow {
                client_id: cols[client].to_owned(),
                instance_id: instance
                    .map(|i| cols[i])
                    .filter(|id| *id != "-")
                    .map(str::to_owned),
                partitions: cols[partitions].parse().ok()?,
            })
        })
        .collect()
}

/// Runs `kafka tool consumer-groups --describe --members --group group`
/// on the real cluster; `None` as [`describe_group`].
pub fn describe_members(bootstrap: &str, group: &str) -> Option<Vec<MemberRow>> {
    consumer_groups_describe(bootstrap, group, &["--members"])
        .map(|out| parse_group_members(&out, group))
}

/// Asserts that `group` has no lag on `topic`'s `partitions` partitions.
///
/// On a real cluster the referee is Kafka's own `kafka-consumer-groups
/// --describe`: one row per partition, LAG 0 on every partition that has
/// records (a partition without records and without a commit shows `-`).
/// On the embedded broker the committed offsets must equal the log end.
pub fn assert_zero_lag(broker: &TestBroker, group: &str, topic: &str, partitions: i32) {
    let end = log_end(broker.bootstrap_servers(), topic, partitions);
    if broker.is_real() {
        if let Some(rows) = describe_group(broker.bootstrap_servers(), group) {
            let mut rows: Vec<GroupRow> = rows.into_iter().filter(|r| r.topic == topic).collect();
            rows.sort_by_key(|r| r.partition);
            assert_eq!(
                rows.iter().map(|r| r.partition).collect::<Vec<_>>(),
                (0..partitions).collect::<Vec<_>>(),
                "kafka-consumer-groups lists every partition of {topic} for {group}: {rows:?}"
            );
            for r in &rows {
                let records = end[r.partition as usize];
                assert_eq!(
                    r.log_end_offset.unwrap_or(0),
                    records,
                    "kafka-consumer-groups' log end of {topic}-{}",
                    r.partition
                );
                if records > 0 {
                    assert_eq!(
                        r.lag,
                        Some(0),
                        "kafka-consumer-groups: LAG of {group} on {topic}-{}: {r:?}",
                        r.partition
                    );
                }
            }
            return;
        }
    }
    let committed = committed(broker.bootstrap_servers(), group, topic, partitions);
    for p in 0..partitions as usize {
        if end[p] > 0 {
            assert_eq!(committed[p], end[p], "lag of {group} on {topic}-{p}");
        }
    }
}

/// `TEST_DATABASE_URL`, or `None` when it is unset (the caller prints that
/// it skipped).
///
/// # Panics
/// With `CI=true` and no `TEST_DATABASE_URL`: CI runs every PostgreSQL test,
/// never a skip dressed as a pass.
pub fn postgres_url() -> Option<String> {
    kafka_listener::testing::test_database_url()
}

/// Installs a `metrics_util` debugging recorder as this test binary's
/// global recorder and returns its snapshotter.
///
/// # Panics
/// When a recorder is installed already (one per test binary).
pub fn install_debug_recorder() -> metrics_util::debugging::Snapshotter {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");
    snapshotter
}

/// The counter `name` summed over every series whose labels include each
/// `(key, value)` of `labels` (0 when there is none).
pub fn counter_sum(
    snapshotter: &metrics_util::debugging::Snapshotter,
    name: &str,
    labels: &[(&str, &str)],
) -> u64 {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            let k = key.key();
            k.name() == name
                && labels
                    .iter()
                    .all(|(lk, lv)| k.labels().any(|l| l.key() == *lk && l.value() == *lv))
        })
        .map(|(.., value)| match value {
            metrics_util::debugging::DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum()
}
