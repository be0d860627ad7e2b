//! End-to-end tests of the concert-queue reference app: the service runs
//! in-process (HTTP on port 0, the `concert-admitter` listener with one
//! consumer on the one partition of `concert.queue.waiting`) against a
//! SQLite file, on the embedded broker (the service's own, or one started by
//! the test when the broker must outlive a service).
//!
//! Rates are high (`20/500ms`, `10/500ms`) to keep each test short; the
//! assertions are on real orders, counts and times.
//!
//! With `KAFKA_TEST_BOOTSTRAP_SERVERS` set the services run against that
//! real cluster. The app's topic and group are fixed, so each test then
//! holds the app's `AppLock` for its whole run (one test at a time, across
//! test binaries too), starts the group at the log end of the topic
//! ([`skip_to_end`]) and counts offsets from there (`base`): a test sees
//! the same relative offsets 0, 1, 2, ... as on a fresh embedded broker.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use concert_queue::{RunningService, ServiceConfig, GROUP_ID, LISTENER_ID, TOPIC};
use example_support::now_ms;
use kafka_listener::console::ConsoleToken;
use kafka_listener::embedded::EmbeddedBroker;
use kafka_listener::KafkaConfig;
use kafka_listener_tests::{
    connect, init_logs, skip_to_end, stop_timed, test_bootstrap, test_database_url, unique,
    wait_until, Api, AppLock, SqliteFile, CONSOLE_SECRET, CONSOLE_TOKEN,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;

/// The database of one test: a SQLite file in the temp directory (removed
/// on drop), or a PostgreSQL database created for the test on the server
/// of `TEST_DATABASE_URL` (dropped by [`TempDb::remove`]), so every test
/// starts from an empty `queue_tokens`.
struct TempDb {
    url: String,
    _sqlite: Option<SqliteFile>,
    postgres: Option<(String, String)>,
    real: Option<Real>,
}

/// A test's turn on the real cluster of `KAFKA_TEST_BOOTSTRAP_SERVERS`.
struct Real {
    bootstrap: String,
    /// The log end of the topic when the test started: its offset 0.
    base: i64,
    _lock: AppLock,
}

impl Real {
    /// On a real cluster: waits for the app's lock, then starts the group
    /// at the log end. Blocking (each test has a runtime of its own, idle
    /// at this point).
    fn new() -> Option<Self> {
        let bootstrap = test_bootstrap()?;
        let lock = AppLock::acquire_blocking("concert-queue", &bootstrap);
        skip_to_end(&bootstrap, GROUP_ID, TOPIC);
        let base = committed(&bootstrap).max(0);
        Some(Self {
            bootstrap,
            base,
            _lock: lock,
        })
    }
}

impl TempDb {
    fn new() -> Self {
        let file = SqliteFile::new("concert-test");
        Self {
            url: file.url().to_owned(),
            _sqlite: Some(file),
            postgres: None,
            real: Real::new(),
        }
    }

    /// A fresh database on the server of `TEST_DATABASE_URL`, or `None`
    /// when it is not set.
    async fn postgres() -> Option<Self> {
        let server = test_database_url()?;
        let name = unique("concert_test").replace('-', "_");
        let admin = connect(&server).await;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create the test database");
        admin.close().await;
        let (base, query) = match server.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (server.as_str(), String::new()),
        };
        let prefix = &base[..base.rfind('/').expect("a database in TEST_DATABASE_URL")];
        Some(Self {
            url: format!("{prefix}/{name}{query}"),
            _sqlite: None,
            postgres: Some((server, name)),
            real: Real::new(),
        })
    }

    /// The offset of the test's first record (0 on the embedded broker).
    fn base(&self) -> i64 {
        self.real.as_ref().map_or(0, |r| r.base)
    }

    /// The real cluster's bootstrap servers, if the test runs on one.
    fn real_bootstrap(&self) -> Option<&str> {
        self.real.as_ref().map(|r| r.bootstrap.as_str())
    }

    /// A connection of its own to the database.
    async fn pool(&self) -> sqlx::AnyPool {
        connect(&self.url).await
    }

    /// Drops the PostgreSQL database (the SQLite file goes on drop).
    async fn remove(self) {
        if let Some((server, name)) = self.postgres {
            let admin = connect(&server).await;
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&admin)
                .await;
            admin.close().await;
        }
    }
}

/// Kafka settings for a test: `bootstrap` (None: the service's own embedded
/// broker) and a short consumer session so group changes are quick.
fn kafka(bootstrap: Option<&str>) -> KafkaConfig {
    let mut config = KafkaConfig::new();
    if let Some(b) = bootstrap {
        config = config.bootstrap_servers(b);
    }
    config
        .consumer_property("session.timeout.ms", "6000")
        .consumer_property("heartbeat.interval.ms", "500")
}

/// A running service and an HTTP client for it.
struct Harness {
    service: RunningService,
    api: Api,
    started: Instant,
    /// The test's offset 0 ([`TempDb::base`]).
    base: i64,
}

async fn start(db: &TempDb, tweak: impl FnOnce(&mut ServiceConfig)) -> Harness {
    init_logs();
    let mut config = ServiceConfig {
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: db.url.clone(),
        kafka: kafka(db.real_bootstrap()),
        metrics: false,
        console_token: ConsoleToken::parse(CONSOLE_TOKEN),
        ..ServiceConfig::default()
    };
    tweak(&mut config);
    let service = concert_queue::start(config)
        .await
        .expect("concert-queue starts");
    Harness {
        api: Api::with_bearer(service.base_url(), CONSOLE_SECRET),
        service,
        started: Instant::now(),
        base: db.base(),
    }
}

/// One token as the test enqueued it.
#[derive(Debug, Clone)]
struct Enqueued {
    user_id: String,
    token_id: String,
    offset: i64,
}

impl Harness {
    async fn stop(self) {
        stop_timed(self.started, self.service.shutdown()).await;
    }

    /// Enqueues `n` users one after the other (each waits for the previous
    /// 202), so arrival order is request order.
    async fn enqueue(&self, prefix: &str, n: usize) -> Vec<Enqueued> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let user_id = format!("{prefix}-{i}");
            let (status, body) = self
                .api
                .post("/queue/tokens", json!({ "user_id": user_id }))
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "enqueue {user_id}: {body}");
            // With the doors open a fast listener (a real broker) may admit
            // the token before the 202 is written: it answers its status.
            assert!(
                body["status"] == "waiting" || body["status"] == "active",
                "{body}"
            );
            out.push(Enqueued {
                user_id,
                token_id: body["token_id"].as_str().expect("token_id").to_owned(),
                offset: body["offset"].as_i64().expect("offset") - self.base,
            });
        }
        out
    }

    async fn token(&self, token_id: &str) -> Value {
        let (status, body) = self.api.get(&format!("/queue/tokens/{token_id}")).await;
        assert_eq!(status, StatusCode::OK, "GET token {token_id}: {body}");
        body
    }

    async fn stats(&self) -> Value {
        let (status, body) = self.api.get("/queue/stats").await;
        assert_eq!(status, StatusCode::OK, "GET stats: {body}");
        body
    }
}

/// `(token_id, record_offset, status, admitted_at, admission_seq,
/// deliveries)` of every token, in offset order.
async fn rows(
    db: &sqlx::AnyPool,
    base: i64,
) -> Vec<(String, i64, String, Option<i64>, Option<i64>, i64)> {
    sqlx::query(
        "SELECT token_id, record_offset, status, admitted_at, admission_seq, deliveries
         FROM queue_tokens ORDER BY record_offset",
    )
    .fetch_all(db)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get("token_id"),
            r.get::<i64, _>("record_offset") - base,
            r.get("status"),
            r.get("admitted_at"),
            r.get("admission_seq"),
            r.get("deliveries"),
        )
    })
    .collect()
}

/// The committed offset of the admitter's group on partition 0 (-1: none).
fn committed(bootstrap: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP_ID)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(TOPIC, 0);
    // A new cluster answers NotCoordinator while it creates and loads
    // __consumer_offsets.
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Ok(got) => break got,
            Err(e) if Instant::now() < deadline => {
                eprintln!("committed offsets: {e}; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("committed offsets: {e}"),
        }
    };
    match got.find_partition(TOPIC, 0).map(|e| e.offset()) {
        Some(Offset::Offset(o)) => o,
        _ => -1,
    }
}

/// `(tokens/s after the first window's burst, most admissions in any window
/// of `window_ms`)` over admission times in ms.
fn rate(admitted: &mut [i64], permits: u64, window_ms: i64) -> (f64, u64) {
    admitted.sort_unstable();
    let (r, _, max) = concert_queue::load::measure(admitted, permits, window_ms);
    (r, max)
}

/// 300 tokens enqueued before the doors open, then admitted at `20/500ms`:
/// admission order is arrival order, each token once; the measured rate is
/// within 10% of 40/s and no 500 ms window holds more than 20 admissions;
/// a late token's position starts at its offset and falls as tokens are
/// admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admits_in_arrival_order_at_the_configured_rate_while_positions_fall() {
    arrival_order_rate_and_positions(TempDb::new(), 300, 20).await;
}

/// The same on PostgreSQL (`TEST_DATABASE_URL`; skipped when unset), with
/// 120 tokens at `10/500ms` (20/s: a PostgreSQL commit costs more than a
/// SQLite one, and the tests run in parallel on 2 cores).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admits_in_arrival_order_on_postgres() {
    let Some(db) = TempDb::postgres().await else {
        eprintln!("TEST_DATABASE_URL not set: skipped");
        return;
    };
    arrival_order_rate_and_positions(db, 120, 10).await;
}

/// `n` tokens admitted at `permits/500ms`.
async fn arrival_order_rate_and_positions(db: TempDb, n: usize, permits: u64) {
    let configured = permits as f64 * 2.0;
    let h = start(&db, |c| {
        c.admit_rate = format!("{permits}/500ms").parse().unwrap();
        c.admit_on_start = false;
    })
    .await;
    let tokens = h.enqueue(&unique("order"), n).await;
    // Arrival order is request order: offsets 0, 1, 2, ... in request order.
    assert_eq!(
        tokens.iter().map(|t| t.offset).collect::<Vec<_>>(),
        (0..n as i64).collect::<Vec<_>>()
    );
    // Doors closed: nothing finished, nothing committed: position = offset.
    for t in [&tokens[0], &tokens[1], &tokens[n / 2], &tokens[n - 1]] {
        let v = h.token(&t.token_id).await;
        assert_eq!(v["status"], "waiting", "{v}");
        assert_eq!(v["position"], t.offset, "{v}");
        assert_eq!(v["position_source"], "committed", "{v}");
    }
    let stats = h.stats().await;
    assert_eq!(stats["waiting"], n, "{stats}");
    assert_eq!(stats["waiting_by_offsets"], n, "{stats}");

    h.service.start_admission().unwrap();
    let last = &tokens[n - 1];
    let mut positions = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = h.token(&last.token_id).await;
        if v["status"] != "waiting" {
            assert_eq!(v["status"], "active", "{v}");
            break;
        }
        positions.push(
            v["position"]
                .as_i64()
                .expect("a waiting token has a position"),
        );
        assert!(Instant::now() < deadline, "not admitted in 30 s: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        positions.windows(2).all(|w| w[1] <= w[0]),
        "positions never rise: {positions:?}"
    );
    let mut distinct = positions.clone();
    distinct.dedup();
    assert!(
        distinct.len() >= 5 && *distinct.last().unwrap() <= permits as i64,
        "positions fall step by step to the front: {distinct:?}"
    );

    let pool = db.pool().await;
    let rows = rows(&pool, db.base()).await;
    assert_eq!(rows.len(), n);
    for (i, (token_id, offset, status, admitted_at, seq, deliveries)) in rows.iter().enumerate() {
        assert_eq!(token_id, &tokens[i].token_id, "offset {offset}");
        assert_eq!(*offset, i as i64);
        assert_eq!(status, "active");
        assert!(admitted_at.is_some());
        assert_eq!(
            *seq,
            Some(i as i64 + 1),
            "the token at offset {offset} is admission number {}",
            i + 1
        );
        assert_eq!(*deliveries, 1, "offset {offset} delivered once");
    }
    let mut admitted: Vec<i64> = rows.iter().map(|r| r.3.unwrap()).collect();
    assert!(
        admitted.windows(2).all(|w| w[0] <= w[1]),
        "admission times follow offsets"
    );
    // 5 ms of slack for millisecond timestamps taken after the permit.
    let (measured, max_in_window) = rate(&mut admitted, permits, 495);
    eprintln!(
        "admitted {n} at {measured:.2}/s (configured {configured}/s), at most {max_in_window} per 495 ms"
    );
    assert!(
        max_in_window <= permits,
        "{max_in_window} admissions in one window"
    );
    assert!(
        (configured * 0.9..=configured * 1.1).contains(&measured),
        "measured {measured:.2}/s, configured {configured}/s"
    );
    let stats = h.stats().await;
    assert_eq!(stats["waiting"], 0, "{stats}");
    assert_eq!(stats["active"], n, "{stats}");
    assert_eq!(stats["admitted_total"], n, "{stats}");
    assert_eq!(stats["next_offset"], n as i64 + db.base(), "{stats}");
    assert_eq!(stats["next_offset_source"], "finished", "{stats}");
    pool.close().await;
    h.stop().await;
    db.remove().await;
}

/// A service admits part of the queue and stops; a new one on the same
/// broker and database resumes from the group's committed offset: nobody is
/// admitted twice (each record delivered once) and nobody is skipped
/// (admission numbers 1..=N in offset order). Before the new listener
/// finished anything, positions come from the committed offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_resumes_from_the_committed_offset() {
    const N: usize = 100;
    init_logs();
    let db = TempDb::new();
    let _broker;
    let bootstrap = match db.real_bootstrap() {
        Some(real) => real.to_owned(),
        None => {
            let broker = EmbeddedBroker::start().expect("embedded broker");
            broker.create_topic(TOPIC, 1).expect("topic");
            let bootstrap = broker.bootstrap_servers().to_owned();
            _broker = broker;
            bootstrap
        }
    };
    let declare = db.real.is_some();
    let tweak = |c: &mut ServiceConfig| {
        c.kafka = kafka(Some(&bootstrap));
        // The mock cluster does not answer CreateTopics: created above.
        c.declare_topic = declare;
        c.admit_rate = "10/500ms".parse().unwrap();
        c.admit_on_start = false;
    };

    let first = start(&db, tweak).await;
    let tokens = first.enqueue(&unique("restart"), N).await;
    first.service.start_admission().unwrap();
    wait_until(Duration::from_secs(20), "30 tokens admitted", || async {
        first.stats().await["admitted_total"].as_i64().unwrap() >= 30
    })
    .await;
    first.stop().await;

    let pool = db.pool().await;
    let before = rows(&pool, db.base()).await;
    let admitted = before.iter().filter(|r| r.2 == "active").count() as i64;
    assert!((30..N as i64).contains(&admitted), "{admitted} admitted");
    assert!(
        before.iter().all(|r| (r.2 == "active") == (r.1 < admitted)),
        "exactly offsets 0..{admitted} were admitted"
    );
    let committed_at_stop = committed(&bootstrap) - db.base();
    assert_eq!(
        committed_at_stop, admitted,
        "the stop committed every finished token"
    );

    let second = start(&db, tweak).await;
    let waiting = &tokens[N - 1];
    let v = second.token(&waiting.token_id).await;
    assert_eq!(v["status"], "waiting", "{v}");
    assert_eq!(v["position_source"], "committed", "{v}");
    assert_eq!(v["position"], waiting.offset - admitted, "{v}");
    second.service.start_admission().unwrap();
    wait_until(Duration::from_secs(25), "every token admitted", || async {
        second.token(&waiting.token_id).await["status"] == "active"
    })
    .await;
    let after = rows(&pool, db.base()).await;
    assert_eq!(after.len(), N);
    for (i, (token_id, offset, status, admitted_at, seq, deliveries)) in after.iter().enumerate() {
        assert_eq!(token_id, &tokens[i].token_id);
        assert_eq!(status, "active", "offset {offset}");
        assert_eq!(
            *seq,
            Some(i as i64 + 1),
            "offset {offset}: no one skipped, no one admitted twice"
        );
        assert_eq!(
            *deliveries, 1,
            "offset {offset} was delivered once across the restart"
        );
        if (i as i64) < admitted {
            assert_eq!(
                admitted_at, &before[i].3,
                "offset {offset} kept its first admission"
            );
        }
    }
    second.stop().await;
    assert_eq!(committed(&bootstrap) - db.base(), N as i64);
    pool.close().await;
}

/// With `5/8s` and `max.poll.interval.ms` = 6 s, the budget stays spent for
/// ~8 s, longer than the poll interval: the consumer keeps its partition
/// (no rebalance, no redelivery), and the second window's tokens are
/// admitted ~8 s after the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spent_budget_longer_than_max_poll_interval_keeps_the_consumer_in_its_group() {
    let db = TempDb::new();
    let h = start(&db, |c| {
        c.admit_rate = "5/8s".parse().unwrap();
        c.admit_on_start = false;
        c.kafka = c
            .kafka
            .clone()
            .consumer_property("max.poll.interval.ms", "6000");
    })
    .await;
    let tokens = h.enqueue(&unique("poll"), 12).await;
    h.service.start_admission().unwrap();
    let container = h.service.app().container(LISTENER_ID).unwrap();
    assert!(
        container
            .wait_for_assignment(1, Duration::from_secs(20))
            .await
    );
    wait_until(Duration::from_secs(20), "10 tokens admitted", || async {
        h.stats().await["admitted_total"].as_i64().unwrap() >= 10
    })
    .await;
    assert_eq!(
        container.assigned_partitions(),
        vec![vec![(TOPIC.to_owned(), 0)]],
        "still in the group after a wait longer than max.poll.interval.ms"
    );
    let finished: Vec<_> = container
        .finished_offsets()
        .into_iter()
        .map(|f| (f.topic, f.partition, f.offset))
        .collect();
    assert_eq!(finished, vec![(TOPIC.to_owned(), 0, 10 + db.base())]);
    let v = h.token(&tokens[11].token_id).await;
    assert_eq!(v["status"], "waiting", "{v}");
    assert_eq!(v["position"], 1, "{v}");
    assert_eq!(v["position_source"], "finished", "{v}");

    let pool = db.pool().await;
    let rows = rows(&pool, db.base()).await;
    let admitted: Vec<_> = rows.iter().filter(|r| r.2 == "active").collect();
    assert_eq!(admitted.len(), 10);
    assert!(
        rows.iter().all(|r| r.5 == i64::from(r.1 < 10)),
        "each admitted token delivered once, no rebalance replay"
    );
    let t0 = admitted[0].3.unwrap();
    for r in &admitted[..5] {
        let d = r.3.unwrap() - t0;
        assert!(d < 2_000, "offset {} admitted {d} ms after the first", r.1);
    }
    for r in &admitted[5..] {
        let d = r.3.unwrap() - t0;
        assert!(
            (7_900..11_000).contains(&d),
            "offset {} admitted {d} ms after the first",
            r.1
        );
    }
    pool.close().await;
    h.stop().await;
}

/// Admitted tokens turn `expired` after the TTL, in their view and in the
/// counts; the user may then queue again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn active_tokens_expire_after_the_ttl() {
    let db = TempDb::new();
    let h = start(&db, |c| {
        c.admit_rate = "50/1s".parse().unwrap();
        c.active_ttl = Duration::from_millis(1500);
    })
    .await;
    let user = unique("ttl");
    let tokens = h.enqueue(&user, 3).await;
    let t = &tokens[0];
    wait_until(Duration::from_secs(10), "admitted", || async {
        h.token(&t.token_id).await["status"] == "active"
    })
    .await;
    let active = h.token(&t.token_id).await;
    let admitted_at = active["admitted_at"].as_i64().unwrap();
    assert_eq!(active["expires_at"], admitted_at + 1500, "{active}");
    assert!(active.get("position").is_none(), "{active}");
    // Queueing again while active gives the same token back.
    let (status, again) = h
        .api
        .post("/queue/tokens", json!({"user_id": t.user_id}))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["token_id"], t.token_id.as_str());
    wait_until(Duration::from_secs(10), "expired", || async {
        h.token(&t.token_id).await["status"] == "expired"
    })
    .await;
    let expired_seen = h.token(&t.token_id).await;
    assert_eq!(expired_seen["admitted_at"], admitted_at);
    let waited = now_ms() - admitted_at;
    assert!(waited >= 1_500, "expired after {waited} ms");
    wait_until(Duration::from_secs(5), "counts show it", || async {
        let s = h.stats().await;
        s["active"] == 0 && s["expired"] == 3
    })
    .await;
    // Expired: the user may queue again, with a new token.
    let (status, fresh) = h
        .api
        .post("/queue/tokens", json!({"user_id": t.user_id}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{fresh}");
    assert_ne!(fresh["token_id"], t.token_id.as_str());
    assert_eq!(fresh["offset"], 3 + h.base);
    h.stop().await;
}

/// Every bad request gets a 4xx with `{"error": reason}`; a user queueing
/// twice keeps one place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_json_reason() {
    let db = TempDb::new();
    let h = start(&db, |c| c.admit_on_start = false).await;
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            h.api
                .client
                .post(h.api.url("/queue/tokens"))
                .json(&json!({"user_id": ""})),
            StatusCode::BAD_REQUEST,
            "must not be empty",
        ),
        (
            h.api
                .client
                .post(h.api.url("/queue/tokens"))
                .json(&json!({"user_id": "x".repeat(200)})),
            StatusCode::BAD_REQUEST,
            "longer than",
        ),
        (
            h.api
                .client
                .post(h.api.url("/queue/tokens"))
                .json(&json!({"user": "u"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "user_id",
        ),
        (
            h.api
                .client
                .post(h.api.url("/queue/tokens"))
                .header("content-type", "application/json")
                .body("{not json"),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            h.api
                .client
                .post(h.api.url("/queue/tokens"))
                .body("user_id=u"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "",
        ),
        (
            h.api.client.get(h.api.url("/queue/tokens/nope")),
            StatusCode::NOT_FOUND,
            "no token",
        ),
        (
            h.api.client.get(h.api.url("/queue/nowhere")),
            StatusCode::NOT_FOUND,
            "no such route",
        ),
        (
            h.api.client.delete(h.api.url("/queue/stats")),
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        ),
    ];
    for (request, status, reason) in cases {
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), status);
        let body: Value = resp.json().await.expect("a JSON body");
        let error = body["error"].as_str().expect("an error string");
        assert!(
            error.contains(reason),
            "{error:?} should mention {reason:?}"
        );
    }
    let user = unique("twice");
    let first = h.enqueue(&user, 1).await.remove(0);
    let (status, again) = h
        .api
        .post("/queue/tokens", json!({"user_id": first.user_id}))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["token_id"], first.token_id.as_str());
    assert_eq!(again["position"], first.offset);
    assert_eq!(h.stats().await["waiting"], 1);
    h.stop().await;
}

/// A service started with the doors closed (`--paused`) queues without
/// admitting; `POST /admin/admission/start` opens them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doors_open_on_request() {
    let db = TempDb::new();
    let h = start(&db, |c| {
        c.admit_rate = "50/1s".parse().unwrap();
        c.admit_on_start = false;
    })
    .await;
    let tokens = h.enqueue(&unique("doors"), 5).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = h.stats().await;
    assert_eq!(stats["admitting"], false, "{stats}");
    assert_eq!(stats["waiting"], 5, "{stats}");
    assert_eq!(stats["admitted_total"], 0, "{stats}");
    // The admin route needs the console token: 401 without, 403 when wrong.
    let bare = reqwest::Client::new();
    let start = h.api.url("/admin/admission/start");
    assert_eq!(
        bare.post(&start).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let wrong = bare.post(&start).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let stats = h.stats().await;
    assert_eq!(stats["admitting"], false, "{stats}");
    for _ in 0..2 {
        let (status, body) = h.api.post("/admin/admission/start", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["admitting"], true, "{body}");
    }
    wait_until(Duration::from_secs(15), "all 5 admitted", || async {
        h.token(&tokens[4].token_id).await["status"] == "active"
    })
    .await;
    let stats = h.stats().await;
    assert_eq!(stats["admitting"], true, "{stats}");
    assert_eq!(stats["admitted_total"], 5, "{stats}");
    h.stop().await;
}
