//! The outbox and the dead-letter store on the pool types sqlx users have:
//! `SqlitePool` (a file, and `sqlite::memory:`) always, `PgPool` when
//! `TEST_DATABASE_URL` is set. Each test writes through the framework and
//! reads back through the user's own pool: one database, not two.

use kafka_listener::dlq::DeadLetterStore;
use kafka_listener::testing::{test_database_url, unique};
use kafka_listener::{ConsumerRecord, TransactionalEvents};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

fn dead_letter(topic: &str) -> ConsumerRecord {
    ConsumerRecord::new(&format!("{topic}-dlt"), 0, 7)
        .with_key("order-1")
        .with_value("{\"bad\": json")
        .with_header("kafka_dlt-original-topic", topic.to_owned())
        .with_header("kafka_dlt-original-partition", 2_i32.to_be_bytes().to_vec())
        .with_header("kafka_dlt-original-offset", 41_i64.to_be_bytes().to_vec())
}

/// Stores one dead letter through `store` and counts it through `count`.
async fn store_and_count<F, Fut>(store: DeadLetterStore, topic: &str, count: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = i64>,
{
    let id = store.save(&dead_letter(topic)).await.unwrap();
    let stored = store.get(&id).await.unwrap().expect("stored");
    assert_eq!(stored.original_topic, topic);
    assert_eq!((stored.original_partition, stored.original_offset), (2, 41));
    assert_eq!(stored.dlt_offset, 7);
    assert_eq!(
        count(topic.to_owned()).await,
        1,
        "the user's pool sees the row"
    );
}

async fn sqlite_count(pool: &SqlitePool, topic: String) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM kafka_dead_letters WHERE original_topic = ?")
        .bind(topic)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_dead_letter_store_runs_on_a_sqlite_pool_file() {
    let path = std::env::temp_dir().join(format!("{}.db", unique("pools-dlq")));
    let pool = SqlitePoolOptions::new()
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true),
        )
        .await
        .unwrap();
    let store = DeadLetterStore::new(&pool).await.unwrap();
    store_and_count(store, "orders", |t| sqlite_count(&pool, t)).await;
    pool.close().await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn the_dead_letter_store_runs_on_an_in_memory_sqlite_pool() {
    let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
    let store = DeadLetterStore::new(pool.clone()).await.unwrap();
    store_and_count(store, "payments", |t| sqlite_count(&pool, t)).await;
}

#[tokio::test]
async fn a_sqlite_uri_that_cannot_be_opened_twice_is_refused_with_a_reason() {
    let options: SqliteConnectOptions = "sqlite:file:private-db?mode=memory&cache=private"
        .parse()
        .unwrap();
    let pool = SqlitePoolOptions::new().connect_lazy_with(options);
    let error = DeadLetterStore::new(&pool).await.unwrap_err().to_string();
    assert!(
        error.contains("cannot be opened again") && error.contains("AnyPool"),
        "{error}"
    );
}

#[tokio::test]
async fn the_outbox_runs_on_a_sqlite_pool_and_its_transactions_reach_the_same_database() {
    let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
    sqlx::query("CREATE TABLE coupons (id TEXT PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    let events = TransactionalEvents::builder(&pool)
        .outbox_table(unique("outbox").replace(['.', '-'], "_"))
        .build()
        .await
        .unwrap();
    let mut tx = events.begin().await.unwrap();
    sqlx::query("INSERT INTO coupons (id) VALUES ($1)")
        .bind("c1")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM coupons")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1, "the EventTx wrote to the user's database");
    let outbox: i64 =
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", events.outbox_table()))
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(outbox, 0, "the outbox table exists in the user's database");
}

/// A `PgPool` on `TEST_DATABASE_URL` whose `search_path` is a schema of
/// this test's own (so that its tables meet no other test's), and that
/// schema's name.
async fn pg_pool(base: &str) -> Option<(PgPool, String)> {
    let Some(url) = test_database_url() else {
        eprintln!("TEST_DATABASE_URL is not set: the PgPool tests do not run");
        return None;
    };
    let schema = unique(base).replace(['.', '-'], "_");
    let admin = PgPool::connect(&url).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let options: PgConnectOptions = url.parse().unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .unwrap();
    Some((pool, schema))
}

async fn drop_schema(pool: &PgPool, schema: &str) {
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(pool)
        .await
        .unwrap();
}

async fn in_schema(pool: &PgPool, schema: &str, table: &str) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = $2)",
    )
    .bind(schema)
    .bind(table)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_dead_letter_store_runs_on_a_pg_pool_in_its_schema() {
    let Some((pool, schema)) = pg_pool("pools_dlq").await else {
        return;
    };
    let store = DeadLetterStore::new(pool.clone()).await.unwrap();
    store_and_count(store, "orders", |t| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar("SELECT COUNT(*) FROM kafka_dead_letters WHERE original_topic = $1")
                .bind(t)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    })
    .await;
    assert!(
        in_schema(&pool, &schema, "kafka_dead_letters").await,
        "the table is in the pool's search_path schema {schema}"
    );
    drop_schema(&pool, &schema).await;
}

#[tokio::test]
async fn the_outbox_runs_on_a_pg_pool_in_its_schema() {
    let Some((pool, schema)) = pg_pool("pools_outbox").await else {
        return;
    };
    let events = TransactionalEvents::builder(&pool).build().await.unwrap();
    assert!(
        in_schema(&pool, &schema, events.outbox_table()).await,
        "the outbox table is in the pool's search_path schema {schema}"
    );
    assert_eq!(events.unsent_count().await.unwrap(), 0);
    drop_schema(&pool, &schema).await;
}
