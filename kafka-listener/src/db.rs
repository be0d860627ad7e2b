//! The sqlx pools the outbox ([`crate::TransactionalEvents`]) and the
//! dead-letter store ([`crate::dlq::DeadLetterStore`]) accept: an
//! `AnyPool`, or the pool type a sqlx user already has, `PgPool`
//! (feature `postgres`) or `SqlitePool` (feature `sqlite`).
//!
//! Both run the same SQL on SQLite and PostgreSQL through sqlx's `Any`
//! driver. A `PgPool` or `SqlitePool` is turned into an `AnyPool` to the
//! same database, with the same connect options (as
//! `ConnectOptions::to_url_lossy` writes them: host, port, user, password,
//! database, SSL mode and certificate files, plus PostgreSQL's server
//! options such as `search_path`, and its application name; SQLite's file name and mode,
//! or sqlx's shared in-memory database of `sqlite::memory:`) and the same
//! maximum number of connections. That second pool opens its connections
//! lazily, on first use. The outbox's transactions (`EventTx`) are on it,
//! so write the business rows of an outbox transaction through the
//! `EventTx`, as with an `AnyPool`.

#[cfg(any(feature = "postgres", feature = "sqlite"))]
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use sqlx::{pool::PoolOptions, ConnectOptions, Database};

/// A pool the outbox and the dead-letter store can run on.
///
/// Implemented for `sqlx::AnyPool` (used as it is), `sqlx::PgPool`
/// (feature `postgres`) and `sqlx::SqlitePool` (feature `sqlite`).
pub trait IntoAnyPool {
    /// The `AnyPool` over the same database.
    ///
    /// # Errors
    /// `sqlx::Error::Configuration` when the pool's database cannot be
    /// opened again by a second pool (a SQLite `file:` URI other than
    /// sqlx's own `sqlite::memory:`).
    fn into_any_pool(self) -> Result<AnyPool, sqlx::Error>;
}

impl IntoAnyPool for AnyPool {
    fn into_any_pool(self) -> Result<AnyPool, sqlx::Error> {
        Ok(self)
    }
}

impl IntoAnyPool for &AnyPool {
    fn into_any_pool(self) -> Result<AnyPool, sqlx::Error> {
        Ok(self.clone())
    }
}

/// An `AnyPool` with the connect options and the limits of `pool`, plus
/// the URL parameters `extra` (what `to_url_lossy` leaves out).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
fn same_database<DB: Database>(
    pool: &sqlx::Pool<DB>,
    extra: &[(&str, &str)],
) -> Result<AnyPool, sqlx::Error> {
    let mut url = pool.connect_options().to_url_lossy();
    for (k, v) in extra {
        url.query_pairs_mut().append_pair(k, v);
    }
    sqlx::any::install_default_drivers();
    like(pool, AnyConnectOptions::from_url(&url)?)
}

/// A lazy `AnyPool` over `options` with the limits of `pool`.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
fn like<DB: Database>(
    pool: &sqlx::Pool<DB>,
    options: AnyConnectOptions,
) -> Result<AnyPool, sqlx::Error> {
    let limits: &PoolOptions<DB> = pool.options();
    Ok(AnyPoolOptions::new()
        .max_connections(limits.get_max_connections())
        .min_connections(limits.get_min_connections())
        .acquire_timeout(limits.get_acquire_timeout())
        .connect_lazy_with(options))
}

/// The pool types by value, as by reference.
macro_rules! by_value {
    ($($feature:literal => $pool:ty),*) => {$(
        #[cfg(feature = $feature)]
        impl IntoAnyPool for $pool {
            fn into_any_pool(self) -> Result<AnyPool, sqlx::Error> {
                (&self).into_any_pool()
            }
        }
    )*};
}

by_value!("postgres" => sqlx::PgPool, "sqlite" => sqlx::SqlitePool);

/// Keeps the server options (`-c search_path=...`: the outbox and the
/// dead-letter table go to the pool's schema) and the application name.
#[cfg(feature = "postgres")]
impl IntoAnyPool for &sqlx::PgPool {
    fn into_any_pool(self) -> Result<AnyPool, sqlx::Error> {
        let options = self.connect_options();
        let mut extra = Vec::new();
        if let Some(o) = options.get_options() {
            extra.push(("options", o));
        }
        if let Some(name) = options.get_application_name() {
            extra.push(("application_name", name));
        }
        same_database(self, &extra)
    }
}

#[cfg(feature = "sqlite")]
impl IntoAnyPool for &sqlx::SqlitePool {
    fn into_any_pool(self) -> Result<AnyPool, sqlx::Error> {
        let options = self.connect_options();
        let name = options.get_filename().to_string_lossy().into_owned();
        if !name.starts_with("file:") {
            return same_database(self, &[]);
        }
        // `sqlite::memory:` is a shared-cache in-memory database that sqlx
        // names `file:sqlx-in-memory-<n>`: a second pool in this process
        // opens the same one by that name.
        if !name.starts_with("file:sqlx-in-memory-") {
            return Err(sqlx::Error::Configuration(
                format!(
                    "the SQLite database {name:?} cannot be opened again by kafka-listener: use a \
                     database file, `sqlite::memory:`, or hand over an sqlx::AnyPool"
                )
                .into(),
            ));
        }
        sqlx::any::install_default_drivers();
        let any = format!("sqlite:{name}?mode=memory&cache=shared").parse()?;
        like(self, any)
    }
}
