//! End-to-end tests of the reference apps live in `tests/`; this library
//! holds what they share: logs, unique names, temporary databases, polling,
//! an HTTP client for an app's API, and reading a topic back; [`cluster`]
//! runs real Kafka clusters through the launcher (`KAFKA_LAUNCHER`),
//! [`process`] runs apps and `dev-broker` as child processes (to SIGKILL
//! them), [`saga`] holds the order-saga tests' harness and invariants, and
//! [`scenario`] holds the failure scenarios' accounting.
//!
//! ```text
//! # the failure scenarios (tests/tests/scenario_*.rs), each on clusters of its own:
//! KAFKA_LAUNCHER=../shared/kafka/kafka cargo test -p kafka-listener-tests --all-features --test 'scenario_*'
//! # the reference apps' suites against a cluster of yours:
//! KAFKA_TEST_BOOTSTRAP_SERVERS=127.0.0.1:9092 cargo test -p kafka-listener-tests --all-features \
//!     --test coupon_service --test concert_queue --test coupon_crash \
//!     --test order_saga --test order_saga_crash
//! ```

pub mod cluster;
pub mod process;
pub mod saga;
pub mod scenario;

/// Waiting for an effect, and the PostgreSQL switch: the public test
/// support of `kafka-listener` (feature `test-support`).
pub use kafka_listener::testing::{poll, test_database_url, wait_until, POLL_INTERVAL};

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use reqwest::StatusCode;
use serde_json::Value;

/// Installs a `tracing` subscriber writing to the test's output, filtered by
/// `RUST_LOG` (default `warn`); does nothing when one is installed already.
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// A name unique to this process and call: `<prefix>-<pid>-<millis>-<n>`
/// (so parallel tests and repeated runs against one database do not
/// collide).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        example_support::now_ms(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh SQLite database file in the temp directory, named
/// `<unique(prefix)>.db`; removed with its `-wal` and `-shm` files on drop.
#[derive(Debug)]
pub struct SqliteFile {
    url: String,
    path: PathBuf,
}

impl SqliteFile {
    /// A new file name (the file is created by the first connection).
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{}.db", unique(prefix)));
        Self {
            url: format!("sqlite://{}?mode=rwc", path.display()),
            path,
        }
    }

    /// `sqlite://<path>?mode=rwc`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        example_support::db::remove_sqlite_files(&self.path);
    }
}

/// A pool of one connection of the test's own to the database at `url`.
///
/// # Panics
/// When the database cannot be reached.
pub async fn connect(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("test connects to the database")
}

/// The console token the tests start the apps with (`name:secret`).
pub const CONSOLE_TOKEN: &str = "tests:console-secret";

/// The secret of [`CONSOLE_TOKEN`], as `Authorization: Bearer` carries it.
pub const CONSOLE_SECRET: &str = "console-secret";

/// An HTTP client for an app's API at `base`; each request may take 30 s.
#[derive(Debug, Clone)]
pub struct Api {
    /// The client, for requests the helpers do not cover.
    pub client: reqwest::Client,
    /// `http://<ip>:<port>`, without a trailing slash.
    pub base: String,
}

impl Api {
    /// A client for the API at `base`.
    pub fn new(base: String) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        Self { client, base }
    }

    /// A client for the API at `base` that sends
    /// `Authorization: Bearer <secret>` with every request (the apps'
    /// console token, which `/admin/*` needs too).
    pub fn with_bearer(base: String, secret: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        let value = format!("Bearer {secret}").parse().expect("a header value");
        headers.insert(reqwest::header::AUTHORIZATION, value);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .default_headers(headers)
            .build()
            .expect("an HTTP client");
        Self { client, base }
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST path` with the JSON `body`: the status and the JSON answer
    /// (`Null` when it is not JSON).
    ///
    /// # Panics
    /// When the request cannot be sent.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        answer(self.client.post(self.url(path)).json(&body)).await
    }

    /// `GET path`: the status and the JSON answer (`Null` when it is not
    /// JSON).
    ///
    /// # Panics
    /// When the request cannot be sent.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        answer(self.client.get(self.url(path))).await
    }
}

async fn answer(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = request.send().await.expect("HTTP request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Awaits `shutdown` and prints `<test>: ran <since started>, shutdown
/// <how long it took>` to stderr.
pub async fn stop_timed(started: Instant, shutdown: impl Future<Output = ()>) {
    let ran = started.elapsed();
    let stopping = Instant::now();
    shutdown.await;
    eprintln!(
        "{}: ran {ran:?}, shutdown {:?}",
        std::thread::current().name().unwrap_or("test"),
        stopping.elapsed()
    );
}

/// A record read back from the broker.
#[derive(Debug, Clone)]
pub struct Read {
    /// Its partition.
    pub partition: i32,
    /// Its key, if any.
    pub key: Option<Vec<u8>>,
    /// Its value, if any.
    pub value: Option<Vec<u8>>,
    /// Its headers, in order (a header without a value has an empty one).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Read {
    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

/// The records of every partition of `topic` from the beginning (each
/// partition in log order), read until none came for `quiet`. Blocking:
/// call it from `spawn_blocking` in async tests.
///
/// # Panics
/// When the topic does not exist or cannot be read.
pub fn read_topic(bootstrap: &str, topic: &str, quiet: Duration) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "kafka-listener-tests-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len() as i32;
    assert!(partitions > 0, "{topic} exists");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < quiet {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                quiet_since = Instant::now();
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Read {
                    partition: m.partition(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers,
                });
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// `KAFKA_TEST_BOOTSTRAP_SERVERS`: the real cluster the reference apps'
/// tests run against, or `None` (unset or blank) for the embedded broker.
pub fn test_bootstrap() -> Option<String> {
    std::env::var("KAFKA_TEST_BOOTSTRAP_SERVERS")
        .ok()
        .filter(|b| !b.trim().is_empty())
}

/// Exclusive use of one reference app's topics and consumer groups on one
/// real cluster, across threads and processes (an advisory lock on a file
/// in the temp dir named after the app and the bootstrap servers). The
/// apps' topic and group names are fixed, so two services of one app on
/// one cluster would share a group and take each other's records (each
/// with its own database); test binaries that run in parallel (nextest)
/// take turns instead. Released on drop.
#[derive(Debug)]
pub struct AppLock {
    _file: std::fs::File,
}

impl AppLock {
    /// Waits for the lock of `app` on the cluster at `bootstrap`.
    ///
    /// # Panics
    /// When the lock file cannot be opened or locked.
    pub async fn acquire(app: &str, bootstrap: &str) -> Self {
        let (app, bootstrap) = (app.to_owned(), bootstrap.to_owned());
        tokio::task::spawn_blocking(move || Self::acquire_blocking(&app, &bootstrap))
            .await
            .unwrap()
    }

    /// As [`Self::acquire`], blocking the calling thread.
    ///
    /// # Panics
    /// As [`Self::acquire`].
    pub fn acquire_blocking(app: &str, bootstrap: &str) -> Self {
        let name: String = format!("kafka-listener-tests-{app}-{bootstrap}.lock")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = std::env::temp_dir().join(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .expect("the lock file");
        file.lock().expect("the app lock");
        Self { _file: file }
    }
}

/// Commits `group`'s offsets on every partition of `topic` at the log end
/// (when the topic exists), so that a service started next reads only what
/// the test sends: records earlier runs left on a long-lived cluster are
/// skipped. The group must have no active member (hold its app's
/// [`AppLock`]). Blocking: call it from `spawn_blocking`.
///
/// # Panics
/// When the offsets cannot be committed.
pub fn skip_to_end(bootstrap: &str, group: &str, topic: &str) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return;
    };
    if t.error().is_some() || t.partitions().is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for p in t.partitions() {
        // A topic created a moment ago may have no leader yet.
        let deadline = Instant::now() + Duration::from_secs(30);
        let high = loop {
            match consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10)) {
                Ok((_, high)) => break high,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("{topic}-{}: {e}; retrying", p.id());
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("{topic}-{}: watermarks: {e}", p.id()),
            }
        };
        tpl.add_partition_offset(topic, p.id(), Offset::Offset(high))
            .unwrap();
    }
    // A member of a killed process (coupon_crash SIGKILLs its service)
    // stays in the group until its session times out; the commit is refused
    // until then.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match consumer.commit(&tpl, rdkafka::consumer::CommitMode::Sync) {
            Ok(()) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("skip {group} on {topic} to the log end: {e}; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!(
                "skip {group} on {topic} to the log end: {e} (the group still has an active \
                 member after 60 s, such as the service of an earlier test that failed before \
                 shutting it down)"
            ),
        }
    }
}

/// What a test of a reference app on a real cluster holds while the app
/// runs: its turn with the app's topics and groups ([`AppLock`], with the
/// groups moved to the log end by [`skip_to_end`]) and a Schema Registry of
/// its own (an app starts an embedded registry only beside the embedded
/// broker). Dropped after the app.
#[derive(Debug)]
pub struct AppOnCluster {
    _lock: AppLock,
    registry: kafka_listener::embedded::EmbeddedSchemaRegistry,
}

impl AppOnCluster {
    /// Waits for `app`'s turn on the cluster at `bootstrap`, skips each
    /// `(group, topic)` to the log end and starts the registry.
    ///
    /// # Panics
    /// When the offsets cannot be committed or the registry cannot start.
    pub async fn prepare(app: &str, bootstrap: &str, groups: &[(&str, &str)]) -> Self {
        let lock = AppLock::acquire(app, bootstrap).await;
        let b = bootstrap.to_owned();
        let groups: Vec<(String, String)> = groups
            .iter()
            .map(|(g, t)| ((*g).to_owned(), (*t).to_owned()))
            .collect();
        tokio::task::spawn_blocking(move || {
            for (group, topic) in &groups {
                skip_to_end(&b, group, topic);
            }
        })
        .await
        .unwrap();
        let registry = kafka_listener::embedded::EmbeddedSchemaRegistry::start()
            .await
            .expect("an embedded registry");
        Self {
            _lock: lock,
            registry,
        }
    }

    /// The registry's URL, for `SCHEMA_REGISTRY_URL` or
    /// [`kafka_listener::KafkaConfig::schema_registry_url`].
    pub fn registry_url(&self) -> &str {
        self.registry.url()
    }
}
