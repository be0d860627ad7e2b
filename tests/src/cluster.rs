//! Real Apache Kafka clusters for the failure scenarios, through the
//! launcher named by `KAFKA_LAUNCHER` (`.ci/run` sets it to
//! `../shared/kafka/kafka`; see that launcher's README).
//!
//! The rule for every test that starts, stops, kills or restarts brokers
//! ([`launcher_or_skip`]): without `KAFKA_LAUNCHER` the test prints one line
//! saying it was skipped and how to run it, and returns; with `CI=true` a
//! missing launcher panics, and so does a cluster that does not start
//! ([`Cluster::start`] always panics then). Never a silent skip.
//!
//! A [`Cluster`] runs `kafka start --brokers N --dir DIR` with `DIR` a new
//! directory under the temp dir, and runs `kafka stop DIR` when dropped
//! (also on panic). Its directory (the nodes' `server.log`) is removed on a
//! clean drop and kept, with its path printed, when the test panicked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

/// The workspace root (the parent of the `tests` package).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The launcher named by `KAFKA_LAUNCHER` (a relative path is resolved
/// against the workspace root), or `None` when the variable is unset or
/// blank.
///
/// # Panics
/// When `KAFKA_LAUNCHER` names a file that does not exist.
pub fn launcher() -> Option<PathBuf> {
    let value = std::env::var("KAFKA_LAUNCHER").ok()?;
    if value.trim().is_empty() {
        return None;
    }
    let path = PathBuf::from(value.trim());
    let path = if path.is_absolute() {
        path
    } else {
        workspace_root().join(path)
    };
    assert!(
        path.is_file(),
        "KAFKA_LAUNCHER={} does not exist",
        path.display()
    );
    Some(path)
}

/// Whether `CI` is `true` (a missing launcher fails the run there).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The launcher, or `None` after printing
/// `<test> skipped: set KAFKA_LAUNCHER=../shared/kafka/kafka to run`.
///
/// # Panics
/// With `CI=true` and no `KAFKA_LAUNCHER`: CI never skips a scenario.
pub fn launcher_or_skip(test: &str) -> Option<PathBuf> {
    match launcher() {
        Some(path) => Some(path),
        None if in_ci() => panic!(
            "{test}: CI=true but KAFKA_LAUNCHER is not set (.ci/run sets it to ../shared/kafka/kafka)"
        ),
        None => {
            println!("{test} skipped: set KAFKA_LAUNCHER=../shared/kafka/kafka to run");
            None
        }
    }
}

/// One row of `kafka tool consumer-groups --describe --group G`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffsets {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The committed offset (`CURRENT-OFFSET`), `None` for `-`.
    pub current: Option<i64>,
    /// The log end offset (`LOG-END-OFFSET`).
    pub log_end: Option<i64>,
    /// `LAG`, `None` for `-` (nothing committed).
    pub lag: Option<i64>,
    /// `CONSUMER-ID`, `None` for `-` (no active member holds it).
    pub consumer_id: Option<String>,
}

/// One partition of `kafka tool topics --describe --topic T`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition.
    pub partition: i32,
    /// The leader's node id (`None` for `none`, -1: no leader).
    pub leader: Option<u32>,
    /// The replicas' node ids.
    pub replicas: Vec<u32>,
    /// The in-sync replicas' node ids.
    pub isr: Vec<u32>,
}

/// A running cluster of `kafka start`; stopped (`kafka stop DIR`) on drop.
#[derive(Debug)]
pub struct Cluster {
    launcher: PathBuf,
    dir: PathBuf,
    bootstrap: String,
    nodes: usize,
    /// Every `KEY=VALUE` line `kafka start` printed.
    vars: std::collections::BTreeMap<String, String>,
}

impl Cluster {
    /// Starts `nodes` nodes with `props` (`key=value`, each passed as
    /// `--prop`), in a new directory under the temp dir, and waits until
    /// they are ready (the launcher's own wait).
    ///
    /// # Panics
    /// When the launcher fails (its stderr is in the message): a broker
    /// that does not start fails the test, never skips it.
    pub fn start(launcher: &Path, nodes: usize, props: &[&str]) -> Self {
        Self::start_with(launcher, nodes, &[], props)
    }

    /// Starts one node with `--secure`: besides PLAINTEXT, a SASL_SSL
    /// listener (SCRAM-SHA-512/256 and PLAIN, user `app`) and an SSL
    /// listener with mutual TLS, and the authorizer on. [`Self::var`]
    /// gives what it printed (`KAFKA_SASL_SSL_BOOTSTRAP_SERVERS`,
    /// `KAFKA_SSL_CA_LOCATION`, `KAFKA_SASL_PASSWORD`, ...; see the
    /// launcher's README).
    ///
    /// # Panics
    /// As [`Self::start`].
    pub fn start_secure(launcher: &Path, props: &[&str]) -> Self {
        Self::start_with(launcher, 1, &["--secure"], props)
    }

    /// A line `KEY=VALUE` that `kafka start` printed, by key.
    ///
    /// # Panics
    /// When it printed no such line.
    pub fn var(&self, key: &str) -> &str {
        self.vars
            .get(key)
            .unwrap_or_else(|| panic!("kafka start printed no {key}=: {:?}", self.vars.keys()))
    }

    fn start_with(launcher: &Path, nodes: usize, args: &[&str], props: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(crate::unique("kl-cluster"));
        let mut cmd = Command::new(launcher);
        cmd.arg("start")
            .arg("--brokers")
            .arg(nodes.to_string())
            .arg("--dir")
            .arg(&dir)
            .args(args);
        for p in props {
            cmd.arg("--prop").arg(p);
        }
        let started = Instant::now();
        let out = cmd.output().expect("the Kafka launcher runs");
        // From here the guard stops whatever started, even on failure.
        let mut cluster = Self {
            launcher: launcher.to_owned(),
            dir,
            bootstrap: String::new(),
            nodes,
            vars: Default::default(),
        };
        assert!(
            out.status.success(),
            "kafka start --brokers {nodes} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        cluster.vars = stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        cluster.bootstrap = stdout
            .lines()
            .find_map(|l| l.strip_prefix("KAFKA_BOOTSTRAP_SERVERS="))
            .unwrap_or_else(|| panic!("no KAFKA_BOOTSTRAP_SERVERS= line in: {stdout}"))
            .trim()
            .to_owned();
        eprintln!(
            "kafka cluster of {nodes} node(s) at {} started in {:?} ({})",
            cluster.bootstrap,
            started.elapsed(),
            cluster.dir.display()
        );
        cluster
    }

    /// `host:port,...` of every node.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The cluster's directory (`DIR/nodeK/server.log` per node).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The number of nodes (ids `1..=nodes`).
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// `127.0.0.1:PORT` of node `k` (from `DIR/nodeK/broker.port`).
    pub fn node_address(&self, k: u32) -> String {
        let port = std::fs::read_to_string(self.dir.join(format!("node{k}/broker.port")))
            .expect("the node's broker.port");
        format!("127.0.0.1:{}", port.trim())
    }

    fn launch(&self, args: &[&str]) -> Output {
        Command::new(&self.launcher)
            .args(args)
            .output()
            .expect("the Kafka launcher runs")
    }

    fn node(&self, k: u32, action: &str) {
        let dir = self.dir.to_string_lossy();
        let started = Instant::now();
        let out = self.launch(&["node", &dir, &k.to_string(), action]);
        assert!(
            out.status.success(),
            "kafka node {k} {action} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("kafka node {k} {action}: {:?}", started.elapsed());
    }

    /// `kafka node DIR K stop`: SIGTERM and wait (a controlled shutdown).
    pub fn stop_node(&self, k: u32) {
        self.node(k, "stop");
    }

    /// `kafka node DIR K kill`: SIGKILL (a crash).
    pub fn kill_node(&self, k: u32) {
        self.node(k, "kill");
    }

    /// `kafka node DIR K start`: the node again with its data, waiting
    /// until it is ready.
    ///
    /// # Panics
    /// When it does not become ready.
    pub fn start_node(&self, k: u32) {
        self.node(k, "start");
    }

    /// `kafka tool ARGS...` with `--bootstrap-server` of this cluster
    /// appended; returns stdout.
    ///
    /// # Panics
    /// When the tool exits with an error.
    pub fn tool(&self, args: &[&str]) -> String {
        let mut all = vec!["tool"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--bootstrap-server", &self.bootstrap]);
        let out = self.launch(&all);
        assert!(
            out.status.success(),
            "kafka tool {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Like [`Self::tool`], with `input` on the tool's standard input (the
    /// console producer's records, one per line).
    ///
    /// # Panics
    /// When the tool exits with an error.
    pub fn tool_with_input(&self, args: &[&str], input: &str) -> String {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = Command::new(&self.launcher)
            .arg("tool")
            .args(args)
            .args(["--bootstrap-server", &self.bootstrap])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the Kafka launcher runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write the tool's input");
        let out = child.wait_with_output().expect("the tool ends");
        assert!(
            out.status.success(),
            "kafka tool {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kafka tool ARGS...` without a bootstrap server added (for tools
    /// that take none, as `org.apache.kafka.tools.DumpLogSegments`); returns stdout.
    ///
    /// # Panics
    /// When the tool exits with an error.
    pub fn tool_plain(&self, args: &[&str]) -> String {
        let mut all = vec!["tool"];
        all.extend_from_slice(args);
        let out = self.launch(&all);
        assert!(
            out.status.success(),
            "kafka tool {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates `topic` with rdkafka's admin client and waits until every
    /// partition has a leader in the metadata (up to 30 s).
    ///
    /// # Panics
    /// When it cannot be created or gets no leaders.
    pub async fn create_topic(&self, topic: &str, partitions: i32, replication: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("an admin client");
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
        let results = admin
            .create_topics([&new], &AdminOptions::new())
            .await
            .expect("CreateTopics");
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
        }
        let bootstrap = self.bootstrap.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || wait_for_leaders(&bootstrap, &topic, partitions))
            .await
            .unwrap();
    }

    /// `kafka tool topics --describe --topic T`, parsed.
    pub fn describe_topic(&self, topic: &str) -> Vec<PartitionInfo> {
        parse_topic_description(&self.tool(&["topics", "--describe", "--topic", topic]))
    }

    /// `kafka tool consumer-groups --describe --group G`, parsed (empty
    /// when the group does not exist: the tool prints an error and exits
    /// 0 then).
    pub fn describe_group(&self, group: &str) -> Vec<GroupOffsets> {
        parse_group_description(&self.tool(&["consumer-groups", "--describe", "--group", group]))
    }

    /// Asserts, with Kafka's own `consumer-groups --describe`, that `group`
    /// has committed every partition of `topics` up to its log end: every
    /// row of those topics has LAG 0, and there is at least one row per
    /// partition of each (`partitions[i]` for `topics[i]`).
    ///
    /// # Panics
    /// When a row has a lag, nothing committed, or a partition is missing.
    pub fn assert_zero_lag(&self, group: &str, topics: &[(&str, i32)]) -> Vec<GroupOffsets> {
        let rows = self.describe_group(group);
        for (topic, partitions) in topics {
            for p in 0..*partitions {
                let row = rows
                    .iter()
                    .find(|r| r.topic == *topic && r.partition == p)
                    .unwrap_or_else(|| {
                        panic!("consumer-groups --describe --group {group}: no row for {topic}-{p}: {rows:?}")
                    });
                assert_eq!(
                    row.lag,
                    Some(0),
                    "consumer-groups --describe --group {group}: {topic}-{p} has lag: {row:?}"
                );
            }
        }
        eprintln!(
            "consumer-groups --describe --group {group}: {} partition(s), lag 0 everywhere",
            rows.len()
        );
        rows
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let dir = self.dir.to_string_lossy().into_owned();
        let out = self.launch(&["stop", &dir]);
        if !out.status.success() {
            eprintln!(
                "kafka stop {dir} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if std::thread::panicking() {
            eprintln!("kafka cluster logs kept in {dir}");
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Waits until every partition of `topic` has a leader in the metadata
/// (blocking; up to 30 s).
///
/// # Panics
/// After 30 s.
pub fn wait_for_leaders(bootstrap: &str, topic: &str, partitions: i32) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("a metadata client");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                if t.error().is_none()
                    && t.partitions().len() == partitions as usize
                    && t.partitions().iter().all(|p| p.leader() >= 0)
                {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: partitions without a leader after 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(name)? + name.len();
    let rest = line[at..].trim_start_matches([' ', '\t']);
    let end = rest.find('\t').unwrap_or(rest.len());
    Some(rest[..end].trim())
}

fn ids(list: &str) -> Vec<u32> {
    list.split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// Parses the partition lines of `topics --describe` (`Topic: t
/// Partition: 0 Leader: 1 Replicas: 1,2,3 Isr: 1,2 ...`, tab-separated).
pub fn parse_topic_description(text: &str) -> Vec<PartitionInfo> {
    text.lines()
        .filter(|l| l.contains("Partition:") && l.contains("Leader:"))
        .map(|l| PartitionInfo {
            partition: field(l, "Partition:")
                .and_then(|v| v.parse().ok())
                .expect("a partition number"),
            leader: field(l, "Leader:").and_then(|v| v.parse().ok()),
            replicas: field(l, "Replicas:").map(ids).unwrap_or_default(),
            isr: field(l, "Isr:").map(ids).unwrap_or_default(),
        })
        .collect()
}

/// Parses the table of `consumer-groups --describe` (header `GROUP TOPIC
/// PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID`,
/// columns separated by spaces; `-` for none).
pub fn parse_group_description(text: &str) -> Vec<GroupOffsets> {
    let num = |s: &str| s.parse::<i64>().ok();
    let mut out = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.first() == Some(&"GROUP") && cols.contains(&"LAG") {
            in_table = true;
            continue;
        }
        if !in_table || cols.len() < 6 {
            continue;
        }
        let Ok(partition) = cols[2].parse() else {
            continue;
        };
        out.push(GroupOffsets {
            topic: cols[1].to_owned(),
            partition,
            current: num(cols[3]),
            log_end: num(cols[4]),
            lag: num(cols[5]),
            consumer_id: cols.get(6).filter(|c| **c != "-").map(|c| (*c).to_owned()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_tools_output() {
        let topics = "Topic: t1\tTopicId: x\tPartitionCount: 2\tReplicationFactor: 3\tConfigs: min.insync.replicas=2\n\
            \tTopic: t1\tPartition: 0\tLeader: 2\tReplicas: 2,3,1\tIsr: 2,1\tElr: \tLastKnownElr: \n\
            \tTopic: t1\tPartition: 1\tLeader: none\tReplicas: 3,1,2\tIsr: 3\tElr: \tLastKnownElr: \n";
        assert_eq!(
            parse_topic_description(topics),
            vec![
                PartitionInfo {
                    partition: 0,
                    leader: Some(2),
                    replicas: vec![2, 3, 1],
                    isr: vec![2, 1]
                },
                PartitionInfo {
                    partition: 1,
                    leader: None,
                    replicas: vec![3, 1, 2],
                    isr: vec![3]
                },
            ]
        );
        let groups = "\nGROUP  TOPIC  PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID  HOST  CLIENT-ID\n\
            g1     t1     0          5               7               2    rdkafka-1a   /127.0.0.1  c-0\n\
            g1     t1     1          -               3               -    -            -     -\n";
        let rows = parse_group_description(groups);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].current, rows[0].log_end, rows[0].lag),
            (Some(5), Some(7), Some(2))
        );
        assert_eq!(rows[0].consumer_id.as_deref(), Some("rdkafka-1a"));
        assert_eq!((rows[1].current, rows[1].lag), (None, None));
        assert_eq!(rows[1].consumer_id, None);
    }
}
