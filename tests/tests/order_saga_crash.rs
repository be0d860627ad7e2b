//! order-saga SIGKILLed under load with injected failures, restarted, and
//! drained: no accepted order is lost or stuck, and the saga's invariants
//! hold (every order completed or cancelled, money captured = totals of
//! the completed orders, stock never negative and consumed = items of the
//! completed orders, analytics = database; see
//! `kafka_listener_tests::saga::assert_invariants`).
//!
//! The broker (`dev-broker`, in its own process) and the app (`order-saga
//! serve`, every service) run as child processes built by the test, so
//! that killing the app keeps the broker's records; the database is a
//! SQLite file in a fresh temp directory, where the processes' logs are
//! kept when the test fails. The app is killed once 60 orders ended,
//! while most are at some step of the saga: steps committed with their
//! events still in the outboxes (sent by the restarted relays; the test
//! prints how many), records handled whose offsets were not committed yet
//! (delivered again, and found done). An order whose HTTP request the kill
//! cut is stored or not; either way it ends.
//!
//! With `KAFKA_TEST_BOOTSTRAP_SERVERS` set, the app runs against that real
//! cluster instead of `dev-broker`, holding the app's `AppLock` with every
//! group started at the log end.

use std::time::{Duration, Instant};

use kafka_listener_tests::process::{
    build, build_dev_broker, free_port, scratch_dir, start_app, start_dev_broker, Children,
};
use kafka_listener_tests::saga::{self, assert_invariants, drained, fire_range};
use kafka_listener_tests::{connect, test_bootstrap, wait_until, Api, AppOnCluster};
use order_saga::events::{PARTITIONS, TOPICS};
use order_saga::Service;

/// Orders sent before the kill (at most: the kill stops the rest).
const BEFORE: usize = 400;
/// Orders sent after the restart.
const AFTER: usize = 100;

/// Unsent rows of every service's outbox (0 for an outbox not created).
async fn unsent(db: &sqlx::AnyPool) -> i64 {
    let mut total = 0;
    for service in Service::ALL {
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE sent_at IS NULL",
            service.outbox_table()
        );
        total += sqlx::query_scalar::<_, i64>(&sql)
            .fetch_one(db)
            .await
            .unwrap_or(0);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_leaves_no_order_stuck_and_the_books_balanced() {
    let started = Instant::now();
    let real = test_bootstrap();
    let broker_bin = real.is_none().then(build_dev_broker);
    let app_bin = build("order-saga");
    eprintln!("built in {:?}", started.elapsed());

    let dir = scratch_dir("order-saga-crash");
    let log = dir.join("order-saga.log");
    let mut children = Children::default();
    let mut _cluster = None;
    let bootstrap = match (&real, &broker_bin) {
        (Some(b), _) => {
            let groups = saga::groups();
            let pairs: Vec<(&str, &str)> = groups.iter().map(|(g, t)| (g.as_str(), *t)).collect();
            _cluster = Some(AppOnCluster::prepare(saga::APP, b, &pairs).await);
            b.clone()
        }
        (None, Some(bin)) => {
            let topics: Vec<String> = TOPICS.iter().map(|t| format!("{t}:{PARTITIONS}")).collect();
            start_dev_broker(&mut children, bin, &topics, &dir.join("dev-broker.log")).0
        }
        (None, None) => unreachable!("dev-broker is built without a real cluster"),
    };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let database_url = format!("sqlite://{}?mode=rwc", dir.join("saga.db").display());
    let env = [
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap),
        ("DATABASE_URL", database_url.clone()),
        ("HTTP_ADDR", format!("127.0.0.1:{port}")),
        ("PAYMENT_FAILURE_RATE", "0.15".to_owned()),
        ("SHIPPING_FAILURE_RATE", "0.15".to_owned()),
        // Less stock than the orders ask for: some fail at the inventory
        // step, before and after the kill.
        ("INITIAL_STOCK", "120".to_owned()),
        // The mock cluster waits a whole session timeout for the killed
        // consumers before the new ones get their partitions.
        ("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", "6000".to_owned()),
        ("KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS", "500".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    let api = Api::new(base.clone());
    let first = start_app(&mut children, &app_bin, &env, &log, &base, &api.client).await;
    let db = connect(&database_url).await;

    // Phase 1: load, and SIGKILL once orders are finishing while others
    // are at every step.
    let load = {
        let api = api.clone();
        tokio::spawn(async move { fire_range(&api, 0..BEFORE, 8).await })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let finished: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE final_at IS NOT NULL")
                .fetch_one(&db)
                .await
                .unwrap();
        if finished >= 60 {
            break;
        }
        children.assert_broker_alive();
        assert!(
            Instant::now() < deadline,
            "no orders finished: see {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    children.kill(first);
    let accepted_before = load.await.unwrap();
    let in_flight: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE final_at IS NULL")
        .fetch_one(&db)
        .await
        .unwrap();
    let unsent_at_kill = unsent(&db).await;
    eprintln!(
        "killed after {} accepted orders: {in_flight} unfinished, {unsent_at_kill} events unsent ({:?})",
        accepted_before.len(),
        started.elapsed()
    );
    assert!(in_flight > 0, "the kill caught orders mid-saga");

    // Phase 2: restart, more orders, drain.
    start_app(&mut children, &app_bin, &env, &log, &base, &api.client).await;
    let accepted_after = fire_range(&api, BEFORE..BEFORE + AFTER, 8).await;
    assert_eq!(
        accepted_after.len(),
        AFTER,
        "every order accepted after the restart"
    );
    drained(&db, Duration::from_secs(120)).await;

    // No accepted order lost.
    for id in accepted_before.iter().chain(&accepted_after) {
        let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE order_id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(found, 1, "accepted order {id} is stored");
    }
    let analytics = assert_invariants(&db, &api).await;
    for step in ["PAYMENT", "INVENTORY", "SHIPPING"] {
        assert!(
            analytics["failures"][step].as_i64().unwrap_or(0) > 0,
            "some orders failed at {step}: {analytics}"
        );
    }
    wait_until(Duration::from_secs(30), "every outbox drained", || async {
        unsent(&db).await == 0
    })
    .await;
    eprintln!("after the restart: {analytics} ({:?})", started.elapsed());
    db.close().await;
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
}
