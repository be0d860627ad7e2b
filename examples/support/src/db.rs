//! The apps' database pools: sqlx `AnyPool` over SQLite or PostgreSQL.
//!
//! SQLite allows one writer at a time: writes go through a pool of one
//! connection (WAL journal, so readers never wait for it), reads through a
//! pool of several. PostgreSQL uses one pool for both.

use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

/// How long a query waits for a free connection before it fails with
/// `sqlx::Error::PoolTimedOut` (answered 503 by the HTTP API).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections of the SQLite reader pool (files only; an in-memory database
/// reads through its writer).
pub const SQLITE_READERS: u32 = 4;

/// Connections of the PostgreSQL pool.
pub const POSTGRES_CONNECTIONS: u32 = 16;

/// How long a SQLite connection waits for a lock before `SQLITE_BUSY`:
/// 10 s.
const SQLITE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 10000";

/// Which database is behind the `AnyPool`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: a file, or in memory.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The writer and reader pools of one database; cheap to clone. On
/// PostgreSQL both are the same pool.
#[derive(Debug, Clone)]
pub struct Pools {
    /// Where writes go: on SQLite, one connection (WAL journal,
    /// `synchronous = NORMAL`).
    pub writer: AnyPool,
    /// Where reads go: on a SQLite file, [`SQLITE_READERS`] connections;
    /// otherwise the writer pool.
    pub reader: AnyPool,
    /// The database behind the pools.
    pub backend: Backend,
}

impl Pools {
    /// Connects to `url`: `sqlite://FILE?mode=rwc`, `sqlite::memory:` (or
    /// another `sqlite:` URL), or `postgres://user[:password]@host:port/db`.
    ///
    /// A SQLite file is opened by the writer first, so it exists in WAL
    /// mode before any reader opens it; an in-memory database keeps its one
    /// connection open for the life of the pools (it would vanish with it).
    ///
    /// # Errors
    /// The `sqlx::Error` of a database that cannot be reached or opened.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            let writer = AnyPoolOptions::new()
                .max_connections(1)
                .min_connections(if memory { 1 } else { 0 })
                .idle_timeout(if memory {
                    None
                } else {
                    Some(Duration::from_secs(600))
                })
                .max_lifetime(if memory {
                    None
                } else {
                    Some(Duration::from_secs(1800))
                })
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute(SQLITE_BUSY_TIMEOUT).await?;
                        Ok(())
                    })
                })
                .connect(url)
                .await?;
            // Touch the writer first so the file exists in WAL mode before
            // any reader opens it.
            writer.acquire().await?;
            let reader = if memory {
                writer.clone()
            } else {
                AnyPoolOptions::new()
                    .max_connections(SQLITE_READERS)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(SQLITE_BUSY_TIMEOUT).await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            };
            Ok(Self {
                writer,
                reader,
                backend: Backend::Sqlite,
            })
        } else {
            let pool = AnyPoolOptions::new()
                .max_connections(POSTGRES_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect(url)
                .await?;
            let backend = match pool.acquire().await?.backend_name() {
                "SQLite" => Backend::Sqlite,
                _ => Backend::Postgres,
            };
            Ok(Self {
                writer: pool.clone(),
                reader: pool,
                backend,
            })
        }
    }

    /// Runs `schema` (statements such as `CREATE TABLE IF NOT EXISTS`) in
    /// one transaction on the writer. On PostgreSQL, concurrent
    /// `CREATE TABLE IF NOT EXISTS` from several starting instances can
    /// collide in the catalog, so they are serialized by the transaction
    /// advisory lock `lock_key` (one key per app).
    ///
    /// # Errors
    /// The `sqlx::Error` of the first statement that fails (nothing is
    /// committed then).
    pub async fn migrate(&self, lock_key: i64, schema: &[&str]) -> Result<(), sqlx::Error> {
        let mut tx = self.writer.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock($1)) AS l")
                .bind(lock_key)
                .execute(&mut *tx)
                .await?;
        }
        for ddl in schema {
            tx.execute(*ddl).await?;
        }
        tx.commit().await
    }

    /// Closes both pools (waits for the connections in use to come back).
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// Removes a SQLite database file and its `-wal` and `-shm` companions;
/// files that do not exist (or cannot be removed) are skipped.
pub fn remove_sqlite_files(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connects to `url`, creates a table, writes one row through the
    /// writer and reads it back through the reader.
    async fn write_then_read(url: &str) -> Pools {
        let pools = Pools::connect(url).await.unwrap();
        assert_eq!(pools.backend, Backend::Sqlite);
        pools
            .migrate(1, &["CREATE TABLE IF NOT EXISTS t (id BIGINT PRIMARY KEY)"])
            .await
            .unwrap();
        sqlx::query("INSERT INTO t (id) VALUES (7)")
            .execute(&pools.writer)
            .await
            .unwrap();
        let id: i64 = sqlx::query_scalar("SELECT id FROM t")
            .fetch_one(&pools.reader)
            .await
            .unwrap();
        assert_eq!(id, 7);
        pools
    }

    #[tokio::test]
    async fn a_sqlite_file_gets_wal_and_separate_readers() {
        let path = std::env::temp_dir().join(format!("example-support-{}.db", std::process::id()));
        let pools = write_then_read(&format!("sqlite://{}?mode=rwc", path.display())).await;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pools.reader)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        pools.close().await;
        assert!(path.exists());
        remove_sqlite_files(&path);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn an_in_memory_database_reads_through_its_writer() {
        write_then_read("sqlite::memory:").await.close().await;
    }
}
