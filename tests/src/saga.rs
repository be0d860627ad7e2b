//! What the order-saga tests share (`tests/tests/order_saga.rs` in process,
//! `tests/tests/order_saga_crash.rs` as a child process): a fresh database
//! per test, a harness around an in-process service, firing orders, and
//! the saga's invariants checked against the database and the analytics
//! API.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use order_saga::{status, RunningService, Service, ServiceConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{connect, init_logs, poll, stop_timed, test_bootstrap, Api, AppOnCluster, SqliteFile};

/// How the analytics read model differs from the orders (both tables are
/// in the one database): orders it has not seen, orders whose end it has
/// not seen, rows of orders that do not exist; a few ids of each.
async fn analytics_gap(db: &sqlx::AnyPool) -> String {
    let ids = |sql: &'static str| async move {
        sqlx::query_scalar::<_, String>(sql)
            .fetch_all(db)
            .await
            .unwrap_or_else(|e| vec![format!("({e})")])
    };
    let unseen = ids(
        "SELECT o.order_id FROM orders o LEFT JOIN analytics_orders a
                      ON a.order_id = o.order_id WHERE a.order_id IS NULL ORDER BY o.order_id",
    )
    .await;
    let unfinished = ids(
        "SELECT a.order_id || ' (' || o.status || ')' FROM analytics_orders a
                          JOIN orders o ON o.order_id = a.order_id
                          WHERE a.status <> o.status ORDER BY a.order_id",
    )
    .await;
    let unknown = ids(
        "SELECT a.order_id FROM analytics_orders a LEFT JOIN orders o
                       ON o.order_id = a.order_id WHERE o.order_id IS NULL ORDER BY a.order_id",
    )
    .await;
    let few = |v: &[String]| format!("{} {:?}", v.len(), &v[..v.len().min(10)]);
    format!(
        "orders not seen: {}; ends not seen: {}; rows of unknown orders: {}",
        few(&unseen),
        few(&unfinished),
        few(&unknown)
    )
}

/// The app's name for [`AppOnCluster`].
pub const APP: &str = "order-saga";

/// Every (consumer group, topic) of the saga, for [`AppOnCluster::prepare`].
pub fn groups() -> Vec<(String, &'static str)> {
    Service::ALL
        .iter()
        .flat_map(|s| s.topics().iter().map(|t| (s.group_id(), *t)))
        .collect()
}

/// A database of the test's own: a fresh SQLite file, or a fresh
/// PostgreSQL database created on the server of `TEST_DATABASE_URL` (so
/// that the catalogue's stock and the totals are the test's alone), dropped
/// by [`TestDb::remove`].
#[derive(Debug)]
pub enum TestDb {
    /// A SQLite file, removed on drop.
    Sqlite(SqliteFile),
    /// A database on a PostgreSQL server.
    Postgres {
        /// The server's URL with the test's database.
        url: String,
        /// The URL given (its database is where `CREATE DATABASE` runs).
        admin: String,
        /// The database's name.
        name: String,
    },
}

impl TestDb {
    /// A fresh SQLite file (`None`), or a fresh database on the PostgreSQL
    /// server of `postgres`.
    ///
    /// # Panics
    /// When the database cannot be created.
    pub async fn create(postgres: Option<String>) -> Self {
        let Some(admin) = postgres else {
            return Self::Sqlite(SqliteFile::new("order-saga-test"));
        };
        let name = crate::unique("order_saga").replace('-', "_");
        let pool = connect(&admin).await;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&pool)
            .await
            .expect("CREATE DATABASE");
        pool.close().await;
        let base = admin.split('?').next().unwrap_or(&admin);
        let url = format!(
            "{}/{name}",
            &base[..base.rfind('/').expect("a database path")]
        );
        Self::Postgres { url, admin, name }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite(file) => file.url(),
            Self::Postgres { url, .. } => url,
        }
    }

    /// Drops the PostgreSQL database (the SQLite file goes on drop).
    pub async fn remove(self) {
        if let Self::Postgres { admin, name, .. } = self {
            let pool = connect(&admin).await;
            if let Err(e) = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&pool)
                .await
            {
                eprintln!("could not drop {name}: {e}");
            }
            pool.close().await;
        }
    }
}

/// One service at a time: two embedded brokers side by side in a process
/// starved each other's consumer groups in coupon-service's tests.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An in-process order-saga, an HTTP client for it and its database.
#[derive(Debug)]
pub struct Harness {
    /// The running service.
    pub service: RunningService,
    /// A client of its API.
    pub api: Api,
    /// A connection pool of the test's own to its database.
    pub db: sqlx::AnyPool,
    test_db: TestDb,
    started: Instant,
    _serial: tokio::sync::MutexGuard<'static, ()>,
    _cluster: Option<AppOnCluster>,
}

/// Starts every service on a fresh database (SQLite, or on the PostgreSQL
/// server at `postgres`), with `tweak` applied to the configuration.
///
/// # Panics
/// When the service does not start.
pub async fn start(postgres: Option<String>, tweak: impl FnOnce(&mut ServiceConfig)) -> Harness {
    init_logs();
    let serial = SERIAL.lock().await;
    let test_db = TestDb::create(postgres).await;
    let mut kafka = kafka_listener::KafkaConfig::new();
    let mut cluster = None;
    if let Some(bootstrap) = test_bootstrap() {
        let groups = groups();
        let pairs: Vec<(&str, &str)> = groups.iter().map(|(g, t)| (g.as_str(), *t)).collect();
        cluster = Some(AppOnCluster::prepare(APP, &bootstrap, &pairs).await);
        kafka = kafka.bootstrap_servers(bootstrap);
    }
    let mut config = ServiceConfig {
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: test_db.url().to_owned(),
        kafka,
        ..ServiceConfig::default()
    };
    tweak(&mut config);
    let service = order_saga::start(config).await.expect("order-saga starts");
    Harness {
        api: Api::new(service.base_url()),
        db: connect(test_db.url()).await,
        service,
        test_db,
        started: Instant::now(),
        _serial: serial,
        _cluster: cluster,
    }
}

impl Harness {
    /// Stops the service and removes its database.
    pub async fn stop(self) {
        stop_timed(self.started, self.service.shutdown()).await;
        self.db.close().await;
        self.test_db.remove().await;
    }

    /// `GET /api/orders/{id}`, which must answer 200.
    pub async fn get_order(&self, order_id: &str) -> Value {
        let (code, view) = self.api.get(&format!("/api/orders/{order_id}")).await;
        assert_eq!(code, StatusCode::OK, "{view}");
        view
    }

    /// The order once it is completed or cancelled (60 s at most).
    pub async fn finished(&self, order_id: &str) -> Value {
        poll(Duration::from_secs(60), "the order is final", || async {
            let view = self.get_order(order_id).await;
            (!view["finalAt"].is_null()).then_some(view)
        })
        .await
    }

    /// Waits until no order is unfinished in the database.
    pub async fn drained(&self, timeout: Duration) {
        drained(&self.db, timeout).await;
    }

    /// The stock of a product.
    pub async fn stock(&self, product_id: &str) -> i64 {
        sqlx::query_scalar("SELECT stock FROM products WHERE product_id = $1")
            .bind(product_id)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// The payment of an order: its status and amount in cents.
    pub async fn payment(&self, order_id: &str) -> (String, i64) {
        sqlx::query_as("SELECT status, amount_cents FROM payments WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Waits until every group reading `topic` committed past `offset` on
    /// `partition`: the record there was handled by each service.
    pub async fn wait_consumed(&self, topic: &str, partition: i32, offset: i64) {
        for service in Service::ALL
            .into_iter()
            .filter(|s| s.topics().contains(&topic))
        {
            let (bootstrap, group, t) = (
                self.service.app().bootstrap_servers().to_owned(),
                service.group_id(),
                topic.to_owned(),
            );
            poll(
                Duration::from_secs(30),
                "the record's offset committed",
                || {
                    let (bootstrap, group, t) = (bootstrap.clone(), group.clone(), t.clone());
                    async move {
                        let committed = tokio::task::spawn_blocking(move || {
                            crate::scenario::committed(
                                &bootstrap,
                                &group,
                                &t,
                                order_saga::events::PARTITIONS,
                            )
                        })
                        .await
                        .unwrap();
                        (committed[partition as usize] > offset).then_some(())
                    }
                },
            )
            .await;
        }
    }

    /// [`assert_invariants`] on this service.
    pub async fn invariants(&self) -> Value {
        assert_invariants(&self.db, &self.api).await
    }
}

/// Waits until no order of the database is unfinished.
///
/// # Panics
/// After `timeout`, with the unfinished orders by status.
pub async fn drained(db: &sqlx::AnyPool, timeout: Duration) {
    let started = Instant::now();
    let mut last = Vec::new();
    while started.elapsed() < timeout {
        last = sqlx::query_as::<_, (String, i64)>(
            "SELECT status, COUNT(*) FROM orders WHERE final_at IS NULL GROUP BY status",
        )
        .fetch_all(db)
        .await
        .unwrap();
        if last.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("orders still unfinished after {timeout:?}: {last:?}");
}

/// The body of order `i` of a load: one to three of a product, every
/// seventh order with the sold-out `ITEM-005` too.
pub fn load_order(i: usize) -> Value {
    let product = format!("ITEM-00{}", 1 + i % 4);
    let mut items =
        vec![json!({"productId": product, "price": 10 + i % 50, "quantity": 1 + i % 3})];
    if i % 7 == 6 {
        items.push(json!({"productId": "ITEM-005", "price": 99, "quantity": 1}));
    }
    json!({"customerId": format!("load-{}", i % 13), "items": items})
}

/// Sends orders `0..n` ([`load_order`]), `concurrency` at a time; the ids
/// of those answered 202 (a request that fails, as when the service is
/// killed, is left out).
pub async fn fire(api: &Api, n: usize, concurrency: usize) -> Vec<String> {
    fire_range(api, 0..n, concurrency).await
}

/// [`fire`] for the orders of `range`.
pub async fn fire_range(
    api: &Api,
    range: std::ops::Range<usize>,
    concurrency: usize,
) -> Vec<String> {
    use futures::StreamExt;
    futures::stream::iter(range)
        .map(|i| async move {
            let r = api
                .client
                .post(api.url("/api/orders"))
                .json(&load_order(i))
                .send()
                .await
                .ok()?;
            if r.status() != StatusCode::ACCEPTED {
                return None;
            }
            let body: Value = r.json().await.ok()?;
            body["orderId"].as_str().map(str::to_owned)
        })
        .buffer_unordered(concurrency)
        .filter_map(|id| async move { id })
        .collect()
        .await
}

/// Checks the saga's invariants once every order is final, and returns
/// `GET /api/analytics`:
/// - every order is `COMPLETED` or `CANCELLED`, with its last history step
///   saying so, and a cancelled one names its failed step; every history
///   is whole (the steps of its path, the compensations included);
/// - every order was charged once; the money captured (payments still
///   `CAPTURED`) equals the totals of the completed orders; no cancelled
///   order keeps a captured payment;
/// - no stock is negative, and per product the stock consumed (initial
///   minus current) equals the quantities of the completed orders;
/// - the analytics (once they saw every order end) equal the database: the
///   counts by status, the revenue, the failures by step.
///
/// # Panics
/// When one does not hold.
pub async fn assert_invariants(db: &sqlx::AnyPool, api: &Api) -> Value {
    let scalar = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(db)
            .await
            .unwrap()
    };
    assert_eq!(
        scalar("SELECT COUNT(*) FROM orders WHERE status NOT IN ('COMPLETED', 'CANCELLED') OR final_at IS NULL").await,
        0,
        "every order final"
    );
    assert_eq!(
        scalar(
            "SELECT COUNT(*) FROM orders o WHERE o.status <> (SELECT h.step FROM order_history h
             WHERE h.order_id = o.order_id ORDER BY h.at DESC, h.step_rank DESC LIMIT 1)"
        )
        .await,
        0,
        "every order's history ends in its status"
    );
    assert_eq!(
        scalar("SELECT COUNT(*) FROM orders WHERE status = 'CANCELLED' AND failed_step IS NULL")
            .await,
        0,
        "a cancelled order names its failed step"
    );
    assert_eq!(
        scalar(
            "SELECT COUNT(*) FROM orders o WHERE (SELECT COUNT(*) FROM order_history h
             WHERE h.order_id = o.order_id) <> CASE WHEN o.status = 'COMPLETED' THEN 5
             WHEN o.failed_step = 'PAYMENT' THEN 3 WHEN o.failed_step = 'INVENTORY' THEN 5
             ELSE 7 END"
        )
        .await,
        0,
        "every order's history is whole: 5 steps completed, and a cancelled one \
         has every compensation its failed step calls for (3, 5 or 7 steps)"
    );
    let orders = scalar("SELECT COUNT(*) FROM orders").await;
    assert_eq!(
        scalar("SELECT COUNT(*) FROM payments").await,
        orders,
        "one payment per order"
    );
    let captured =
        scalar("SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM payments WHERE status = 'CAPTURED'")
            .await;
    let completed_totals =
        scalar("SELECT CAST(COALESCE(SUM(total_cents), 0) AS BIGINT) FROM orders WHERE status = 'COMPLETED'").await;
    assert_eq!(
        captured, completed_totals,
        "money captured = totals of the completed orders"
    );
    assert_eq!(
        scalar(
            "SELECT COUNT(*) FROM orders o JOIN payments p ON p.order_id = o.order_id
                WHERE o.status = 'CANCELLED' AND p.status = 'CAPTURED'"
        )
        .await,
        0,
        "every cancelled order refunded or never charged"
    );
    assert_eq!(
        scalar("SELECT COUNT(*) FROM products WHERE stock < 0").await,
        0
    );
    let consumed: BTreeMap<String, i64> = sqlx::query_as(
        "SELECT product_id, initial_stock - stock FROM products WHERE initial_stock <> stock",
    )
    .fetch_all(db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let sold: BTreeMap<String, i64> = sqlx::query_as(
        "SELECT i.product_id, CAST(SUM(i.quantity) AS BIGINT) FROM order_items i JOIN orders o ON o.order_id = i.order_id
         WHERE o.status = 'COMPLETED' GROUP BY i.product_id",
    )
    .fetch_all(db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(
        consumed, sold,
        "stock consumed = items of the completed orders"
    );

    let by_status: BTreeMap<String, i64> =
        sqlx::query_as("SELECT status, COUNT(*) FROM orders GROUP BY status")
            .fetch_all(db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let failures: BTreeMap<String, i64> = sqlx::query_as(
        "SELECT failed_step, COUNT(*) FROM orders WHERE status = 'CANCELLED' GROUP BY failed_step",
    )
    .fetch_all(db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let analytics = loop {
        let (code, a) = api.get("/api/analytics").await;
        assert_eq!(code, StatusCode::OK, "{a}");
        if a["totalOrders"] == orders && a["ordersByStatus"].get(status::CREATED).is_none() {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "analytics did not see every order end within 30 s: {a}; {}",
            analytics_gap(db).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        analytics["ordersByStatus"],
        json!(by_status),
        "analytics by status"
    );
    assert_eq!(
        analytics["revenueCents"], completed_totals,
        "analytics revenue"
    );
    assert_eq!(analytics["failures"], json!(failures), "analytics failures");
    analytics
}
