//! coupon-service killed with SIGKILL under load and restarted: no accepted
//! request is lost, and every coupon in its database has its `coupon.issued`
//! event (published through the transactional outbox).
//!
//! Both the broker (`dev-broker`, librdkafka's mock cluster in its own
//! process) and the service (`coupon-service serve`) run as child
//! processes, built with `cargo build` by the test itself, so that killing
//! the service keeps the broker's data. The service's database is a SQLite
//! file in a fresh temp directory; the processes' logs are kept there when
//! the test fails.
//!
//! The service is killed while requests are in flight and decisions are
//! being made, preferably at a moment when an issue is committed and its
//! outbox row not yet sent (the test prints what the kill left: typically a
//! few unsent rows, sent by the restarted service's relay). After the
//! restart the rest of the requests, and those that got no answer, are sent
//! again; then every request must be decided, never past the stock, and
//! `coupon.issued` must hold exactly one event (after dropping duplicates
//! by `kafka_listener-event-id`) per row of `coupon_issues`, one coupon's
//! events in issue order.
//!
//! With `KAFKA_TEST_BOOTSTRAP_SERVERS` set, the service runs against that
//! real cluster instead of `dev-broker`, with a Schema Registry served by
//! this test process (it outlives the service, as `dev-broker`'s does). The
//! test then holds the app's `AppLock` (the app's topic and group names are
//! fixed), starts the service's groups at the log end, names its coupons
//! after the run and reads back only its own `coupon.issued` records.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coupon_service::{CouponIssued, ISSUED_TOPIC};
use kafka_listener::after_commit::EVENT_ID_HEADER;
use kafka_listener::avro::{AvroCodec, AvroSettings, SchemaRegistryClient, TimestampMillis};
use kafka_listener_tests::process::{
    build, build_dev_broker, free_port, scratch_dir, start_app, start_dev_broker, Children,
};
use kafka_listener_tests::{read_topic, test_bootstrap, unique, AppOnCluster};
use reqwest::StatusCode;
use serde_json::{json, Value};

const COUPONS: usize = 3;
const STOCK: i64 = 40;
const USERS_PER_COUPON: usize = 150;
const CONCURRENCY: usize = 16;
/// The service is killed once this many requests were accepted.
const KILL_AFTER_ACCEPTED: usize = 60;

/// One issue request; `true` on a 202.
async fn issue(client: &reqwest::Client, base: &str, coupon: &str, user: &str) -> bool {
    match client
        .post(format!("{base}/coupons/{coupon}/issue"))
        .json(&json!({ "user_id": user }))
        .send()
        .await
    {
        Ok(r) => r.status() == StatusCode::ACCEPTED,
        Err(_) => false,
    }
}

/// Sends every job (CONCURRENCY at a time) until the queue is empty or
/// `stop` is set; returns the accepted jobs, and puts the others back in
/// the queue.
async fn fire(
    client: &reqwest::Client,
    base: &str,
    queue: Arc<Mutex<VecDeque<(String, String)>>>,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    pace: Duration,
) -> Vec<(String, String)> {
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, base, queue, accepted, stop) = (
            client.clone(),
            base.to_owned(),
            Arc::clone(&queue),
            Arc::clone(&accepted),
            Arc::clone(&stop),
        );
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut failed = Vec::new();
            while !stop.load(Ordering::Acquire) {
                let Some(job) = queue.lock().unwrap().pop_front() else {
                    break;
                };
                if issue(&client, &base, &job.0, &job.1).await {
                    accepted.fetch_add(1, Ordering::AcqRel);
                    mine.push(job);
                } else {
                    failed.push(job);
                }
                tokio::time::sleep(pace).await;
            }
            queue.lock().unwrap().extend(failed);
            mine
        }));
    }
    let mut done = Vec::new();
    for w in workers {
        done.extend(w.await.unwrap());
    }
    done
}

async fn coupon_view(client: &reqwest::Client, base: &str, coupon: &str) -> Option<Value> {
    let r = client
        .get(format!("{base}/coupons/{coupon}"))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

/// Every `coupon.issued` record on the broker: (event id, key, Avro value),
/// in log order per partition.
fn read_issued(bootstrap: &str) -> Vec<(String, Option<String>, Vec<u8>)> {
    read_topic(bootstrap, ISSUED_TOPIC, Duration::from_secs(2))
        .into_iter()
        .map(|read| {
            let id = read
                .header(EVENT_ID_HEADER)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .expect("every coupon.issued record has an event id header");
            let key = read
                .key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned());
            (id, key, read.value.expect("a value"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_and_publishes_every_issue() {
    let started = Instant::now();
    let real = test_bootstrap();
    let broker_bin = real.is_none().then(build_dev_broker);
    let service_bin = build("coupon-service");
    eprintln!("built in {:?}", started.elapsed());

    let dir = scratch_dir("coupon-crash");
    let service_log = dir.join("coupon-service.log");
    let mut children = Children::default();
    // On a real cluster: this test's turn with the app's topics and groups,
    // and a registry that outlives the service.
    let mut _cluster = None;
    let (bootstrap, registry_url) = match (&real, &broker_bin) {
        (Some(b), _) => {
            let prepared = AppOnCluster::prepare(
                "coupon-service",
                b,
                &[
                    (coupon_service::GROUP_ID, coupon_service::TOPIC),
                    (coupon_service::DEAD_LETTERS_ID, coupon_service::DLT),
                ],
            )
            .await;
            let url = prepared.registry_url().to_owned();
            _cluster = Some(prepared);
            (b.clone(), url)
        }
        (None, Some(bin)) => {
            let topics = [
                "coupon.issue.requested:3",
                "coupon.issued:3",
                "coupon.issue.requested-dlt:3",
            ]
            .map(String::from);
            start_dev_broker(&mut children, bin, &topics, &dir.join("dev-broker.log"))
        }
        (None, None) => unreachable!("dev-broker is built without a real cluster"),
    };
    // Coupon ids of this run (a real cluster keeps earlier runs' records).
    let run = unique("crash");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let database_url = format!("sqlite://{}?mode=rwc", dir.join("c.db").display());
    let env = [
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.clone()),
        ("SCHEMA_REGISTRY_URL", registry_url.clone()),
        ("DATABASE_URL", database_url.clone()),
        ("HTTP_ADDR", format!("127.0.0.1:{port}")),
        // The mock cluster waits a whole session timeout for the killed
        // consumers before the new ones get their partitions.
        ("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", "6000".to_owned()),
        ("KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS", "500".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let first = start_app(
        &mut children,
        &service_bin,
        &env,
        &service_log,
        &base,
        &client,
    )
    .await;

    // Warm-up: one coupon per partition of the request topic (the 202 says
    // which), each issued once; when all are decided the listener has every
    // partition, and the load below is decided while it is sent.
    let mut warm_ups: Vec<String> = Vec::new();
    let mut partitions = HashSet::new();
    for i in 0..30 {
        if partitions.len() == coupon_service::PARTITIONS as usize {
            break;
        }
        let coupon = format!("{run}-warm-up-{i}");
        let r = client
            .post(format!("{base}/coupons"))
            .json(&json!({ "coupon_id": coupon, "stock": 1 }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let r = client
            .post(format!("{base}/coupons/{coupon}/issue"))
            .json(&json!({ "user_id": "user-0" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let v: Value = r.json().await.unwrap();
        partitions.insert(v["partition"].as_i64().unwrap());
        warm_ups.push(coupon);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for coupon in &warm_ups {
        loop {
            let v: Value = client
                .get(format!("{base}/coupons/{coupon}/issues/user-0"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["status"] == "issued" {
                break;
            }
            children.assert_broker_alive();
            assert!(
                Instant::now() < deadline,
                "warm-up request not decided: {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!("listener ready ({:?})", started.elapsed());

    let coupons: Vec<String> = (0..COUPONS).map(|i| format!("{run}-{i}")).collect();
    for c in &coupons {
        let r = client
            .post(format!("{base}/coupons"))
            .json(&json!({ "coupon_id": c, "stock": STOCK }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    // Users interleaved across coupons, so every partition is busy.
    let jobs: VecDeque<(String, String)> = (0..USERS_PER_COUPON)
        .flat_map(|u| {
            coupons
                .iter()
                .map(move |c| (c.clone(), format!("user-{u}")))
        })
        .collect();
    let total = jobs.len();
    let queue = Arc::new(Mutex::new(jobs));
    let accepted = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    // Phase 1: load, and SIGKILL while requests are in flight.
    let load = tokio::spawn(fire_owned(
        client.clone(),
        base.clone(),
        Arc::clone(&queue),
        Arc::clone(&accepted),
        Arc::clone(&stop),
        // Paced, so that the load lasts past the kill.
        Duration::from_millis(40),
    ));
    // Killed once requests are being accepted and decided, preferably at
    // a moment when an issue is committed and its event not yet sent (the
    // relay's send takes a few ms: `linger.ms` and the broker's ack).
    sqlx::any::install_default_drivers();
    let probe = sqlx::AnyPool::connect(&database_url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut decisions_seen: Option<Instant> = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "requests not accepted and decided"
        );
        // Killed anyway while requests are still in flight.
        if queue.lock().unwrap().len() < 2 * CONCURRENCY {
            eprintln!("killing before 10 decisions of the load were seen");
            break;
        }
        if accepted.load(Ordering::Acquire) < KILL_AFTER_ACCEPTED {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let issued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM coupon_issues")
            .fetch_one(&probe)
            .await
            .unwrap_or(0);
        if issued < 10 + warm_ups.len() as i64 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let since = *decisions_seen.get_or_insert_with(Instant::now);
        let unsent: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM kafka_outbox WHERE sent_at IS NULL")
                .fetch_one(&probe)
                .await
                .unwrap_or(0);
        if unsent > 0 || since.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    children.assert_broker_alive();
    children.kill(first);
    probe.close().await;
    assert!(
        !load.is_finished(),
        "the load ended before the kill ({} accepted)",
        accepted.load(Ordering::Acquire)
    );
    stop.store(true, Ordering::Release);
    let mut accepted_jobs = load.await.unwrap();
    let in_phase_1 = accepted_jobs.len();
    eprintln!(
        "killed after {in_phase_1} accepted requests ({:?})",
        started.elapsed()
    );

    // What the crash left: decisions committed, outbox rows not yet sent.
    let (decided, unsent_at_kill) = {
        let db = sqlx::AnyPool::connect(&database_url).await.unwrap();
        let decided: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM coupon_issues")
            .fetch_one(&db)
            .await
            .unwrap();
        let unsent: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM kafka_outbox WHERE sent_at IS NULL")
                .fetch_one(&db)
                .await
                .unwrap();
        db.close().await;
        (decided, unsent)
    };
    eprintln!("at the kill: {decided} coupons issued, {unsent_at_kill} outbox rows unsent");

    // Restart with the same settings and send the rest (and whatever got no
    // answer: a repeated request is sent again).
    start_app(
        &mut children,
        &service_bin,
        &env,
        &service_log,
        &base,
        &client,
    )
    .await;
    stop.store(false, Ordering::Release);
    for _ in 0..5 {
        accepted_jobs.extend(
            fire(
                &client,
                &base,
                Arc::clone(&queue),
                Arc::clone(&accepted),
                Arc::clone(&stop),
                Duration::ZERO,
            )
            .await,
        );
        if queue.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        queue.lock().unwrap().is_empty(),
        "some requests were never accepted after the restart"
    );
    let accepted_set: HashSet<(String, String)> = accepted_jobs.iter().cloned().collect();
    assert_eq!(accepted_set.len(), total, "every request accepted once");

    // Every request decided: nothing pending, stock never exceeded.
    let deadline = Instant::now() + Duration::from_secs(30);
    for c in &coupons {
        loop {
            let view = coupon_view(&client, &base, c).await;
            if let Some(v) = &view {
                let issued = v["issued"].as_i64().unwrap();
                assert!(issued <= STOCK, "{c} over-issued: {v}");
                if v["pending"].as_i64() == Some(0)
                    && issued + v["sold_out"].as_i64().unwrap() == USERS_PER_COUPON as i64
                {
                    assert_eq!(issued, STOCK, "{c}: every unit issued: {v}");
                    assert_eq!(v["failed"].as_i64(), Some(0), "{c}: {v}");
                    break;
                }
            }
            children.assert_broker_alive();
            assert!(
                Instant::now() < deadline,
                "{c}: requests still pending: {view:?} (log: {})",
                service_log.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for (c, u) in &accepted_jobs {
        let v: Value = client
            .get(format!("{base}/coupons/{c}/issues/{u}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let status = v["status"].as_str().unwrap_or_default();
        assert!(
            status == "issued" || status == "sold_out",
            "{c}/{u}: accepted request ended {v}"
        );
    }

    // The database's coupons, and the outbox drained.
    let db = sqlx::AnyPool::connect(&database_url).await.unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT coupon_id, user_id FROM coupon_issues")
            .fetch_all(&db)
            .await
            .unwrap();
    let issued_rows: HashSet<(String, String)> = rows.into_iter().collect();
    assert_eq!(issued_rows.len(), COUPONS * STOCK as usize + warm_ups.len());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let unsent: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM kafka_outbox WHERE sent_at IS NULL")
                .fetch_one(&db)
                .await
                .unwrap();
        if unsent == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unsent} outbox rows still unsent"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    db.close().await;

    // Exactly one event per issued coupon, once duplicates are dropped by
    // event id; first deliveries of a coupon in issue order.
    let records = tokio::task::spawn_blocking({
        let bootstrap = bootstrap.clone();
        move || read_issued(&bootstrap)
    })
    .await
    .unwrap();
    // Avro in the Confluent wire format, its schema in dev-broker's registry
    // (which outlived the service).
    let codec = AvroCodec::new(
        SchemaRegistryClient::new(&registry_url).unwrap(),
        AvroSettings::default(),
    );
    let mut seen_ids = HashSet::new();
    let mut events: HashMap<(String, String), String> = HashMap::new();
    let mut last_issued_at: HashMap<String, TimestampMillis> = HashMap::new();
    let mut redelivered = 0;
    let records: Vec<_> = records
        .into_iter()
        .filter(|(_, key, _)| key.as_deref().is_some_and(|k| k.starts_with(&run)))
        .collect();
    for (id, key, value) in &records {
        let e: CouponIssued = codec
            .decode(value)
            .await
            .expect("coupon.issued values are Avro that the registry knows");
        assert_eq!(
            key.as_deref(),
            Some(e.coupon_id.as_str()),
            "keyed by coupon id"
        );
        if !seen_ids.insert(id.clone()) {
            redelivered += 1;
            continue;
        }
        let previous = events.insert((e.coupon_id.clone(), e.user_id.clone()), id.clone());
        assert!(
            previous.is_none(),
            "two events for {}/{}",
            e.coupon_id,
            e.user_id
        );
        let last = last_issued_at
            .entry(e.coupon_id.clone())
            .or_insert(TimestampMillis(0));
        assert!(
            e.issued_at >= *last,
            "{}: events out of issue order",
            e.coupon_id
        );
        *last = e.issued_at;
    }
    let published: HashSet<(String, String)> = events.into_keys().collect();
    assert_eq!(
        published, issued_rows,
        "coupon.issued events = issued coupons"
    );
    eprintln!(
        "{} requests ({in_phase_1} before the kill), {} issued, {} records on coupon.issued ({redelivered} redelivered), {:?}",
        total,
        issued_rows.len(),
        records.len(),
        started.elapsed()
    );
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
}

/// [`fire`] with owned arguments, for `tokio::spawn`.
async fn fire_owned(
    client: reqwest::Client,
    base: String,
    queue: Arc<Mutex<VecDeque<(String, String)>>>,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    pace: Duration,
) -> Vec<(String, String)> {
    fire(&client, &base, queue, accepted, stop, pace).await
}
