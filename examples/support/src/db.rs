//! The apps' database pools: sqlx `AnyPool` over SQLite or PostgreSQL.
//!
//! SQLite allows one writer at a time: writes go through a pool of one
//! connection (WAL journal, so readers never wait for it), reads through a
//! pool of several. PostgreSQL uses one pool for both.

use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{MigrateError, Migrator};
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

/// The writer's page cache: 64 MiB (SQLite's default is 2 MiB). Under
/// load the writer's B-tree pages (requests, issues, outbox) outgrow 2 MiB
/// within seconds, and every page missed is a `pread` on the writer's one
/// thread: measured with `perf` on coupon-service's load, most of that
/// thread's time.
const SQLITE_WRITER_CACHE: &str = "PRAGMA cache_size = -65536";

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
    /// `synchronous = NORMAL`, a 64 MiB page cache).
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
                        conn.execute(SQLITE_WRITER_CACHE).await?;
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

    /// Applies the app's pending migrations on the writer: `migrator` is
    /// the app's `sqlx::migrate!()` (the files `migrations/<version>_<name>.sql`
    /// of its crate, embedded at compile time). Each migration runs in a
    /// transaction of its own and is recorded in sqlx's `_sqlx_migrations`
    /// table (version, checksum); an applied migration is never run again.
    ///
    /// Several apps may share one database, and so one `_sqlx_migrations`
    /// table: the versions of the other apps' migrations are ignored
    /// (`set_ignore_missing(true)`), so every app must use versions of its
    /// own (the apps use `YYYYMMDDhhmmss` timestamps). On PostgreSQL,
    /// instances starting at the same time are serialized by sqlx's session
    /// advisory lock (one key per database); on SQLite, where there is no
    /// such lock, an instance that lost the race to apply a version rolls
    /// back and runs the migrator again.
    ///
    /// # Errors
    /// The [`MigrateError`] of a migration that fails (its transaction is
    /// rolled back, and on PostgreSQL the connection is closed so that the
    /// lock goes with it), `VersionMismatch` when an applied migration file
    /// was edited afterwards, or the `sqlx::Error` of a database that
    /// cannot be reached. On SQLite, the error of the last run, after as
    /// many runs as there are migrations.
    pub async fn migrate(&self, mut migrator: Migrator) -> Result<(), MigrateError> {
        migrator.set_ignore_missing(true);
        // SQLite has no lock for the migrator: an instance starting at the
        // same time on the same file may apply a version between our check
        // and our insert. Our transaction is then rolled back, and the next
        // run finds that version applied (and checks its checksum); every
        // retry gets past one version at least.
        let mut retries = match self.backend {
            Backend::Sqlite => migrator.iter().count(),
            Backend::Postgres => 0,
        };
        loop {
            match self.run_migrator(&migrator).await {
                Err(e @ (MigrateError::Execute(_) | MigrateError::ExecuteMigration(..)))
                    if retries > 0 =>
                {
                    retries -= 1;
                    tracing::debug!(error = %e, "migration failed; running the migrator again");
                }
                done => return done,
            }
        }
    }

    /// One run of `migrator` on a writer connection.
    async fn run_migrator(&self, migrator: &Migrator) -> Result<(), MigrateError> {
        let mut conn = self.writer.acquire().await?;
        match migrator.run(&mut *conn).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // sqlx leaves its session lock held when a migration fails:
                // closing the connection releases it. (Not on SQLite: there
                // is no lock, and closing the one connection of an
                // in-memory database would drop the database.)
                if self.backend == Backend::Postgres {
                    let _ = conn.close().await;
                }
                Err(e)
            }
        }
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

    /// The test migrations of one app: table `t`, then rows 7 and 8.
    fn first() -> Migrator {
        sqlx::migrate!("testdata/migrations/first")
    }

    /// The test migration of another app sharing the database: table `u`.
    fn second() -> Migrator {
        sqlx::migrate!("testdata/migrations/second")
    }

    /// The versions recorded in `_sqlx_migrations`, in order.
    async fn applied(pools: &Pools) -> Vec<i64> {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pools.writer)
            .await
            .unwrap()
    }

    /// The ids in `t`, read through the reader.
    async fn ids(pools: &Pools) -> Vec<i64> {
        sqlx::query_scalar("SELECT id FROM t ORDER BY id")
            .fetch_all(&pools.reader)
            .await
            .unwrap()
    }

    /// Connects to `url`, migrates, writes one row through the writer and
    /// reads the rows back through the reader.
    async fn write_then_read(url: &str) -> Pools {
        let pools = Pools::connect(url).await.unwrap();
        assert_eq!(pools.backend, Backend::Sqlite);
        pools.migrate(first()).await.unwrap();
        sqlx::query("INSERT INTO t (id) VALUES (9)")
            .execute(&pools.writer)
            .await
            .unwrap();
        assert_eq!(ids(&pools).await, [7, 8, 9]);
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

    /// A migration runs once (its rows are not inserted twice), and two
    /// apps with versions of their own share one `_sqlx_migrations` table.
    #[tokio::test]
    async fn migrations_run_once_and_apps_share_a_database() {
        let pools = Pools::connect("sqlite::memory:").await.unwrap();
        pools.migrate(first()).await.unwrap();
        pools.migrate(first()).await.unwrap();
        assert_eq!(ids(&pools).await, [7, 8]);
        pools.migrate(second()).await.unwrap();
        // The first app starts again next to the second app's version.
        pools.migrate(first()).await.unwrap();
        assert_eq!(ids(&pools).await, [7, 8]);
        assert_eq!(
            applied(&pools).await,
            [20240101000000, 20240101000100, 20240102000000]
        );
        let u: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM u")
            .fetch_one(&pools.reader)
            .await
            .unwrap();
        assert_eq!(u, 0);
        pools.close().await;
    }

    /// Two instances starting at once on one SQLite file both migrate it
    /// (SQLite has no lock for sqlx's migrator: the second to insert a
    /// version finds it applied when it runs again).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn instances_migrate_one_sqlite_file_at_once() {
        for round in 0..10 {
            let path = std::env::temp_dir().join(format!(
                "example-support-race-{}-{round}.db",
                std::process::id()
            ));
            let url = format!("sqlite://{}?mode=rwc", path.display());
            let (a, b) = tokio::join!(Pools::connect(&url), Pools::connect(&url));
            let (a, b) = (a.unwrap(), b.unwrap());
            let (ra, rb) = tokio::join!(a.migrate(first()), b.migrate(first()));
            ra.unwrap();
            rb.unwrap();
            assert_eq!(applied(&a).await, [20240101000000, 20240101000100]);
            assert_eq!(ids(&b).await, [7, 8]);
            a.close().await;
            b.close().await;
            remove_sqlite_files(&path);
        }
    }

    /// A migration file edited after it was applied is refused.
    #[tokio::test]
    async fn an_edited_migration_is_refused() {
        let pools = Pools::connect("sqlite::memory:").await.unwrap();
        pools.migrate(first()).await.unwrap();
        sqlx::query("UPDATE _sqlx_migrations SET checksum = X'00' WHERE version = 20240101000100")
            .execute(&pools.writer)
            .await
            .unwrap();
        let e = pools.migrate(first()).await.unwrap_err();
        assert!(
            matches!(e, MigrateError::VersionMismatch(20240101000100)),
            "{e}"
        );
        pools.close().await;
    }

    /// A migration that fails leaves nothing behind: neither its table nor
    /// a row in `_sqlx_migrations`, and the pools keep working.
    #[tokio::test]
    async fn a_failing_migration_is_rolled_back() {
        let dir = std::env::temp_dir().join(format!("example-support-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("20240103000000_bad.sql"),
            "CREATE TABLE v (x BIGINT);\nINSERT INTO nowhere (x) VALUES (1);\n",
        )
        .unwrap();
        let bad = Migrator::new(dir.as_path()).await.unwrap();
        let pools = Pools::connect("sqlite::memory:").await.unwrap();
        pools.migrate(first()).await.unwrap();
        let e = pools.migrate(bad).await.unwrap_err();
        assert!(
            matches!(e, MigrateError::ExecuteMigration(_, 20240103000000)),
            "{e}"
        );
        assert_eq!(applied(&pools).await, [20240101000000, 20240101000100]);
        let v: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'v'",
        )
        .fetch_one(&pools.writer)
        .await
        .unwrap();
        assert_eq!(v, 0);
        assert_eq!(ids(&pools).await, [7, 8]);
        pools.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
