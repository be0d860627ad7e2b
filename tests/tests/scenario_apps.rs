//! Failure scenario 6: the reference apps on a real Apache Kafka cluster
//! (one node, started here through the launcher).
//!
//! 1. coupon-service's own end-to-end suites (`coupon_service`, and
//!    `coupon_crash`, which SIGKILLs coupon-service under load and restarts
//!    it) run against this cluster through `KAFKA_TEST_BOOTSTRAP_SERVERS`,
//!    as a `cargo test` child process; each asserts its invariants there
//!    (no coupon over-issued, no accepted request lost, one `coupon.issued`
//!    per issued coupon after dropping duplicates by event id, ...). Their
//!    outcome must be `ok` for both binaries. (`.ci/run`'s real-broker pass
//!    runs the apps' other suites, concert-queue's included, on its own
//!    broker; `coupon_crash` runs here only.)
//! 2. Kafka's own `consumer-groups --describe` then shows zero lag for the
//!    `coupon-issuer` and `coupon-dead-letters` groups.
//! 3. coupon-service with its broker stopped (on the real node, not the
//!    mock): an issue request gets a 503 with a JSON reason within the send
//!    timeout and leaves no pending request; after the node restarts,
//!    requests are accepted and issued again.
//! 4. concert-queue in this process: 60 tokens enqueued, admitted in
//!    arrival order, each once; then `concert-admitter` has zero lag
//!    (earlier tests leave tokens waiting on purpose, so the group starts
//!    at the log end first).
//!
//! Needs `KAFKA_LAUNCHER` (see `kafka_listener_tests::cluster`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kafka_listener::KafkaConfig;
use kafka_listener_tests::cluster::{launcher_or_skip, workspace_root, Cluster};
use kafka_listener_tests::{
    init_logs, poll, skip_to_end, unique, wait_until, Api, AppLock, AppOnCluster, SqliteFile,
};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_apps_on_a_real_cluster() {
    let Some(launcher) = launcher_or_skip("scenario_apps") else {
        return;
    };
    init_logs();
    let started = Instant::now();
    let cluster = Cluster::start(&launcher, 1, &[]);
    let bootstrap = cluster.bootstrap().to_owned();

    // 1. The apps' suites on this cluster.
    let suites = Instant::now();
    let b = bootstrap.clone();
    let out = tokio::task::spawn_blocking(move || {
        kafka_listener_tests::process::cargo()
            // `--workspace --all-features`, as `.ci/run`'s first pass: the
            // same feature set, so nothing is rebuilt.
            .args([
                "test",
                "--workspace",
                "--all-features",
                "--test",
                "coupon_service",
                "--test",
                "coupon_crash",
            ])
            .env("KAFKA_TEST_BOOTSTRAP_SERVERS", &b)
            .current_dir(workspace_root())
            .output()
            .expect("cargo test runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let results: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("test result:"))
        .collect();
    assert!(
        out.status.success(),
        "the apps' suites failed on the real cluster ({}):\n{stdout}\n{}",
        out.status,
        &stderr[stderr.len().saturating_sub(20_000)..]
    );
    assert_eq!(results.len(), 2, "two test binaries ran: {stdout}");
    assert!(
        results.iter().all(|r| r.starts_with("test result: ok.")),
        "{results:?}"
    );
    assert!(
        stdout.contains("test sigkill_under_load_loses_nothing_and_publishes_every_issue ... ok"),
        "the SIGKILL test ran: {stdout}"
    );
    for line in stdout
        .lines()
        .filter(|l| l.starts_with("test ") || l.contains("skipped") || l.contains("embedded pass"))
    {
        eprintln!("  {line}");
    }
    eprintln!(
        "apps' suites on the real cluster: {results:?} in {:?}",
        suites.elapsed()
    );

    // 2. Every coupon listener group committed everything.
    tokio::task::block_in_place(|| {
        cluster.assert_zero_lag(coupon_service::GROUP_ID, &[(coupon_service::TOPIC, 3)]);
        cluster.assert_zero_lag(coupon_service::DEAD_LETTERS_ID, &[(coupon_service::DLT, 3)]);
    });

    // 3. coupon-service with its broker down.
    coupon_service_with_the_broker_down(&cluster).await;

    // 4. concert-queue, then zero lag for its group.
    concert_queue_admits_in_order(&bootstrap).await;
    tokio::task::block_in_place(|| {
        cluster.assert_zero_lag(concert_queue::GROUP_ID, &[(concert_queue::TOPIC, 1)]);
        cluster.assert_zero_lag(coupon_service::GROUP_ID, &[(coupon_service::TOPIC, 3)]);
    });
    eprintln!("scenario 6: {:?}", started.elapsed());
}

async fn coupon_service_with_the_broker_down(cluster: &Cluster) {
    let bootstrap = cluster.bootstrap().to_owned();
    let prepared = AppOnCluster::prepare(
        "coupon-service",
        &bootstrap,
        &[
            (coupon_service::GROUP_ID, coupon_service::TOPIC),
            (coupon_service::DEAD_LETTERS_ID, coupon_service::DLT),
        ],
    )
    .await;
    let db = SqliteFile::new("apps-coupon");
    let service = coupon_service::start(coupon_service::ServiceConfig {
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: db.url().to_owned(),
        kafka: KafkaConfig::new()
            .bootstrap_servers(&bootstrap)
            .schema_registry_url(prepared.registry_url())
            .property("reconnect.backoff.max.ms", "1000"),
        send_timeout: Duration::from_secs(2),
        metrics: false,
        ..coupon_service::ServiceConfig::default()
    })
    .await
    .expect("coupon-service starts");
    let api = Api::new(service.base_url());
    let coupon = unique("down");
    let (status, body) = api
        .post("/coupons", json!({"coupon_id": coupon, "stock": 10}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let issue = format!("/coupons/{coupon}/issue");
    let (status, body) = api.post(&issue, json!({"user_id": "before"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Generous: after a broker restart the group rejoins first (a restart
    // took 70 s on this 2-core machine at a load average of 10).
    let drained = || async {
        poll(Duration::from_secs(180), "no request pending", || async {
            let (_, v) = api.get(&format!("/coupons/{coupon}")).await;
            (v["pending"] == 0).then_some(v)
        })
        .await
    };
    drained().await;

    tokio::task::block_in_place(|| cluster.stop_node(1));
    let t = Instant::now();
    let (status, body) = api.post(&issue, json!({"user_id": "during"})).await;
    let took = t.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"].as_str().unwrap().contains("broker"), "{body}");
    assert!(took < Duration::from_secs(10), "503 took {took:?}");
    let (status, _) = api.get(&format!("/coupons/{coupon}/issues/during")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a refused request leaves nothing pending"
    );

    tokio::task::block_in_place(|| cluster.start_node(1));
    wait_until(
        Duration::from_secs(120),
        "a request accepted again",
        || async { api.post(&issue, json!({"user_id": "after"})).await.0 == StatusCode::ACCEPTED },
    )
    .await;
    let view = drained().await;
    assert_eq!(view["issued"], 2, "{view}");
    let (_, after) = api.get(&format!("/coupons/{coupon}/issues/after")).await;
    assert_eq!(after["status"], "issued", "{after}");
    eprintln!("coupon-service, broker stopped: 503 in {took:?}; issued again after the restart");
    service.shutdown().await;
}

async fn concert_queue_admits_in_order(bootstrap: &str) {
    const N: usize = 60;
    let _lock = AppLock::acquire("concert-queue", bootstrap).await;
    let b = bootstrap.to_owned();
    tokio::task::spawn_blocking(move || {
        skip_to_end(&b, concert_queue::GROUP_ID, concert_queue::TOPIC)
    })
    .await
    .unwrap();
    let db = SqliteFile::new("apps-concert");
    let service = concert_queue::start(concert_queue::ServiceConfig {
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: db.url().to_owned(),
        kafka: KafkaConfig::new().bootstrap_servers(bootstrap),
        admit_rate: "20/500ms".parse().unwrap(),
        admit_on_start: false,
        metrics: false,
        ..concert_queue::ServiceConfig::default()
    })
    .await
    .expect("concert-queue starts");
    let api = Api::new(service.base_url());
    let prefix = unique("apps");
    let mut tokens = Vec::new();
    for i in 0..N {
        let (status, body) = api
            .post("/queue/tokens", json!({"user_id": format!("{prefix}-{i}")}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        tokens.push((
            body["token_id"].as_str().unwrap().to_owned(),
            body["offset"].as_i64().unwrap(),
        ));
    }
    assert!(
        tokens.windows(2).all(|w| w[1].1 == w[0].1 + 1),
        "consecutive offsets in request order"
    );
    service.start_admission().unwrap();
    let last = tokens.last().unwrap().0.clone();
    wait_until(Duration::from_secs(30), "every token admitted", || async {
        api.get(&format!("/queue/tokens/{last}")).await.1["status"] == "active"
    })
    .await;
    for (i, (token, offset)) in tokens.iter().enumerate() {
        let (_, v) = api.get(&format!("/queue/tokens/{token}")).await;
        assert_eq!(v["status"], "active", "{v}");
        assert_eq!(v["offset"], *offset, "{v}");
        assert_eq!(
            v["admission_seq"],
            i as i64 + 1,
            "admitted in arrival order: {v}"
        );
    }
    let (_, stats) = api.get("/queue/stats").await;
    assert_eq!(stats["admitted_total"], N, "{stats}");
    assert_eq!(stats["waiting"], 0, "{stats}");
    service.shutdown().await;
}
