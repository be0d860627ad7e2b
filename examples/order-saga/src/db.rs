//! The database: sqlx `AnyPool`s over SQLite or PostgreSQL (see
//! [`example_support::db`]), with SQL that runs unchanged on both. The
//! schema is in `migrations/`; each service writes only its own tables
//! (listed there) and its own outbox.

use std::collections::HashMap;

use example_support::db::{Backend, Pools};
use sqlx::migrate::MigrateError;
use sqlx::AnyPool;

/// A product of the default catalogue: id, name, unit price in cents, and
/// whether it starts with stock.
type CatalogueEntry = (&'static str, &'static str, i64, bool);

/// The catalogue written at the first start: the course's `ITEM-001` (a
/// laptop at 1500) and a few others; `ITEM-005` never has stock, so an
/// order of it is cancelled by the inventory step (and refunded).
pub const CATALOGUE: [CatalogueEntry; 5] = [
    ("ITEM-001", "Laptop", 150_000, true),
    ("ITEM-002", "Mouse", 2_500, true),
    ("ITEM-003", "Keyboard", 7_500, true),
    ("ITEM-004", "Monitor", 30_000, true),
    ("ITEM-005", "Headphones (sold out)", 9_900, false),
];

/// A row of `orders`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct OrderRow {
    pub(crate) order_id: String,
    pub(crate) customer_id: String,
    pub(crate) total_cents: i64,
    pub(crate) status: String,
    pub(crate) failed_step: Option<String>,
    pub(crate) reason: Option<String>,
    /// JSON array of the compensations done.
    pub(crate) compensations: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) final_at: Option<i64>,
}

/// A row of `order_items`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ItemRow {
    pub(crate) product_id: String,
    pub(crate) name: String,
    pub(crate) price_cents: i64,
    pub(crate) quantity: i64,
}

/// A row of `order_history`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct HistoryRow {
    pub(crate) step: String,
    pub(crate) at: i64,
    pub(crate) detail: Option<String>,
}

/// An order with its items and history, oldest step first.
#[derive(Debug, Clone)]
pub(crate) struct OrderDetail {
    pub(crate) order: OrderRow,
    pub(crate) items: Vec<ItemRow>,
    pub(crate) history: Vec<HistoryRow>,
}

/// The database handle of a process; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pools: Pools,
}

impl Db {
    /// Connects to `url` (see [`Pools::connect`]).
    pub(crate) async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        Ok(Self {
            pools: Pools::connect(url).await?,
        })
    }

    /// The writer pool (the outboxes write through it).
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.pools.writer
    }

    /// The reader pool.
    pub(crate) fn reader(&self) -> &AnyPool {
        &self.pools.reader
    }

    /// The database behind the pools.
    pub(crate) fn backend(&self) -> Backend {
        self.pools.backend
    }

    /// Applies the migrations of `migrations/` not applied yet.
    pub(crate) async fn migrate(&self) -> Result<(), MigrateError> {
        self.pools.migrate(sqlx::migrate!()).await
    }

    /// Closes the pools.
    pub(crate) async fn close(&self) {
        self.pools.close().await;
    }

    /// Writes the [`CATALOGUE`] products that are missing, with
    /// `initial_stock` (0 for a product without stock); existing products
    /// keep their stock.
    pub(crate) async fn seed_catalogue(&self, initial_stock: i64) -> Result<(), sqlx::Error> {
        for (id, name, price, in_stock) in CATALOGUE {
            let stock = if in_stock { initial_stock } else { 0 };
            sqlx::query(
                "INSERT INTO products (product_id, name, price_cents, initial_stock, stock)
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT (product_id) DO NOTHING",
            )
            .bind(id)
            .bind(name)
            .bind(price)
            .bind(stock)
            .execute(&self.pools.writer)
            .await?;
        }
        Ok(())
    }

    /// The product ids of the catalogue with their names.
    pub(crate) async fn products(&self) -> Result<HashMap<String, String>, sqlx::Error> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT product_id, name FROM products")
            .fetch_all(&self.pools.reader)
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// The order with its items and history, or `None`.
    pub(crate) async fn order(&self, order_id: &str) -> Result<Option<OrderDetail>, sqlx::Error> {
        let mut conn = self.pools.reader.begin().await?;
        let order: Option<OrderRow> = sqlx::query_as(
            "SELECT order_id, customer_id, total_cents, status, failed_step, reason,
                    compensations, created_at, final_at
             FROM orders WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(order) = order else {
            return Ok(None);
        };
        let items = sqlx::query_as(
            "SELECT product_id, name, price_cents, quantity FROM order_items
             WHERE order_id = $1 ORDER BY line",
        )
        .bind(order_id)
        .fetch_all(&mut *conn)
        .await?;
        let history = sqlx::query_as(
            "SELECT step, at, detail FROM order_history WHERE order_id = $1
             ORDER BY at, step_rank",
        )
        .bind(order_id)
        .fetch_all(&mut *conn)
        .await?;
        conn.commit().await?;
        Ok(Some(OrderDetail {
            order,
            items,
            history,
        }))
    }
}

/// A database error as a listener error: retried (the database may be busy
/// or down; the record waits, its key's later records behind it).
pub(crate) fn retryable<E: Into<kafka_listener::BoxError>>(e: E) -> kafka_listener::ListenerError {
    kafka_listener::ListenerError::retryable(e)
}
