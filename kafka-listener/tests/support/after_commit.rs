//! Helpers of `tests/after_commit.rs`: a database per test (a SQLite file,
//! or PostgreSQL tables with a unique suffix), the handlers' state, a
//! template and a reader of the published records.
//!
//! The outbox topics are fixed by `#[outbox(topic = ...)]`, so on a real
//! cluster every run (and both databases' variants of a scenario) writes to
//! the same topic: [`read_records`] keeps only the records whose event id
//! is one of the test's own ([`event_ids`]).

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_listener::after_commit::{EventMeta, EventTx, TransactionalEvents};
use kafka_listener::after_commit::{EVENT_ID_HEADER, EVENT_TYPE_HEADER};
use kafka_listener::KafkaTemplate;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

use super::TestBroker;

/// One handler call, as recorded by the test handlers.
#[derive(Debug, Clone)]
pub struct Call {
    pub handler: &'static str,
    pub what: String,
    pub event_id: String,
    pub in_transaction: bool,
    /// Rows of the issues table the handler saw for its coupon (-1: not looked).
    pub rows_seen: i64,
}

/// The state of the test handlers: the pool, this test's issues table and
/// the calls.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub pool: AnyPool,
    pub issues: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Ctx {
    pub fn record(&self, handler: &'static str, what: &str, meta: &EventMeta, rows_seen: i64) {
        self.calls.lock().unwrap().push(Call {
            handler,
            what: what.to_owned(),
            event_id: meta.event_id.clone(),
            in_transaction: meta.in_transaction,
            rows_seen,
        });
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub async fn count_issues(&self, coupon_id: &str) -> Result<i64, sqlx::Error> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {} WHERE coupon_id = $1",
            self.issues
        );
        sqlx::query_scalar(&sql)
            .bind(coupon_id)
            .fetch_one(&self.pool)
            .await
    }

    pub async fn insert_issue(&self, tx: &mut EventTx, coupon_id: &str, user_id: &str) {
        let sql = format!(
            "INSERT INTO {} (coupon_id, user_id) VALUES ($1, $2)",
            self.issues
        );
        sqlx::query(&sql)
            .bind(coupon_id)
            .bind(user_id)
            .execute(&mut **tx)
            .await
            .unwrap();
    }
}

/// The database of one test.
#[derive(Debug)]
pub struct Db {
    url: String,
    suffix: String,
    dir: Option<PathBuf>,
    postgres: bool,
}

fn suffix(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut hash: u32 = 2_166_136_261;
    for b in name.bytes() {
        hash = (hash ^ u32::from(b)).wrapping_mul(16_777_619);
    }
    format!("{:08x}{:08x}", hash, nanos ^ std::process::id())
}

impl Db {
    /// A SQLite file in a fresh temporary directory.
    pub async fn sqlite(name: &str) -> Self {
        let suffix = suffix(name);
        let dir = std::env::temp_dir().join(format!("kl-after-commit-{suffix}"));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            url: format!("sqlite://{}?mode=rwc", dir.join("test.db").display()),
            suffix,
            dir: Some(dir),
            postgres: false,
        }
    }

    /// PostgreSQL at `TEST_DATABASE_URL`, or `None` when it is not set (the
    /// caller prints that it skipped); with `CI=true` a missing URL panics.
    pub async fn postgres(name: &str) -> Option<Self> {
        let url = super::postgres_url()?;
        Some(Self {
            url,
            suffix: suffix(name),
            dir: None,
            postgres: true,
        })
    }

    pub fn outbox_table(&self) -> String {
        format!("outbox_{}", self.suffix)
    }

    fn issues_table(&self) -> String {
        format!("issues_{}", self.suffix)
    }

    /// A new pool (a "process"), the issues table, and `TransactionalEvents`
    /// over this test's outbox table with the handlers' state.
    pub async fn events(&self) -> (TransactionalEvents, Ctx) {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    if conn.backend_name() == "SQLite" {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect(&self.url)
            .await
            .unwrap();
        let issues = self.issues_table();
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS {issues} (coupon_id TEXT NOT NULL, user_id TEXT NOT NULL)"
        ))
        .execute(&pool)
        .await
        .unwrap();
        let ctx = Ctx {
            pool: pool.clone(),
            issues,
            calls: Arc::default(),
        };
        let events = TransactionalEvents::builder(pool)
            .state(ctx.clone())
            .outbox_table(self.outbox_table())
            .build()
            .await
            .unwrap();
        (events, ctx)
    }

    /// A parent table and a child table whose foreign key is checked at
    /// commit (`DEFERRABLE INITIALLY DEFERRED`, on SQLite and PostgreSQL).
    pub async fn deferred_fk_tables(&self, pool: &AnyPool) -> (String, String) {
        let (parent, child) = (
            format!("parent_{}", self.suffix),
            format!("child_{}", self.suffix),
        );
        sqlx::query(&format!("CREATE TABLE {parent} (id TEXT PRIMARY KEY)"))
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(&format!(
            "CREATE TABLE {child} (parent_id TEXT NOT NULL REFERENCES {parent} (id) DEFERRABLE INITIALLY DEFERRED)"
        ))
        .execute(pool)
        .await
        .unwrap();
        (parent, child)
    }

    /// Drops this test's tables (PostgreSQL) or its directory (SQLite).
    pub async fn cleanup(self) {
        if self.postgres {
            if let Ok(pool) = AnyPoolOptions::new()
                .max_connections(1)
                .connect(&self.url)
                .await
            {
                let tables = [
                    self.outbox_table(),
                    self.issues_table(),
                    format!("child_{}", self.suffix),
                    format!("parent_{}", self.suffix),
                ];
                for table in tables {
                    let _ = sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
                        .execute(&pool)
                        .await;
                }
                pool.close().await;
            }
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A template on `broker`, idempotent as the app's; with a short
/// `message.timeout.ms` when given, so that sends fail while the broker is
/// down.
pub fn template(broker: &TestBroker, message_timeout_ms: Option<u64>) -> KafkaTemplate {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0");
    if let Some(ms) = message_timeout_ms {
        config.set("message.timeout.ms", ms.to_string());
    }
    KafkaTemplate::new(&config).expect("template")
}

/// One record read back.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub payload: String,
    /// The value as it came (Avro is not UTF-8).
    pub value_bytes: Vec<u8>,
    pub event_id: String,
    pub event_type: String,
    pub timestamp: Option<i64>,
}

impl Record {
    pub fn value<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.payload).expect("JSON value")
    }
}

/// The event ids of the sent rows of `events`' outbox table (this test's
/// own).
pub async fn sent_event_ids(events: &TransactionalEvents) -> HashSet<String> {
    events
        .outbox_rows()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.sent_at.is_some())
        .map(|r| r.event_id)
        .collect()
}

/// Reads `topic` from the beginning of its `partitions`, keeping the
/// records whose event id is in `ids`, until every id arrived (30 s at
/// most) and then 500 ms more (to see duplicates); in partition then
/// offset order.
pub async fn read_records(
    broker: &TestBroker,
    topic: &str,
    partitions: i32,
    ids: &HashSet<String>,
) -> Vec<Record> {
    let bootstrap = broker.bootstrap_servers().to_owned();
    let topic = topic.to_owned();
    let ids = ids.clone();
    let expected = ids.len();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "after-commit-test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let mut records = Vec::new();
        let mut arrived = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut extra: Option<Instant> = None;
        while Instant::now() < deadline && extra.is_none_or(|e| Instant::now() < e) {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                let header = |name: &str| {
                    m.headers()
                        .and_then(|h| h.iter().find(|h| h.key == name))
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default()
                };
                let record = Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    payload: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                    value_bytes: m.payload().unwrap_or_default().to_vec(),
                    event_id: header(EVENT_ID_HEADER),
                    event_type: header(EVENT_TYPE_HEADER),
                    timestamp: m.timestamp().to_millis(),
                };
                if ids.contains(&record.event_id) {
                    arrived.insert(record.event_id.clone());
                    records.push(record);
                }
            }
            if extra.is_none() && arrived.len() >= expected {
                extra = Some(Instant::now() + Duration::from_millis(500));
            }
        }
        records.sort_by_key(|r| (r.partition, r.offset));
        records
    })
    .await
    .unwrap()
}

/// Polls `check` every 50 ms for up to 30 s; panics with `what` on timeout.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Declares each scenario (an `async fn(Db)` in the calling module) as two
/// tests, `sqlite::<scenario>` and `postgres::<scenario>`. The PostgreSQL
/// half runs on `TEST_DATABASE_URL`; without it, it prints that it
/// skipped (and under `CI=true`, [`Db::postgres`] fails instead).
#[macro_export]
macro_rules! on_both_databases {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::support::after_commit::Db::sqlite(stringify!($scenario)).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    match $crate::support::after_commit::Db::postgres(stringify!($scenario)).await {
                        Some(db) => super::$scenario(db).await,
                        None => eprintln!(
                            "TEST_DATABASE_URL is not set: the PostgreSQL half of `{}` is skipped",
                            stringify!($scenario)
                        ),
                    }
                }
            )*
        }
    };
}
