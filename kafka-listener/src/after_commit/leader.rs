//! Leader election of the outbox relay on PostgreSQL: a session advisory
//! lock (`pg_try_advisory_lock` on the table's [`OutboxTable::lock_key`])
//! held on a dedicated connection, so that one process relays a table at a
//! time and per-key order holds across instances. On SQLite there is one
//! writer and nothing to hold.

use std::time::Duration;

use sqlx::{AnyConnection, AnyPool, Row};
use tokio::sync::watch;

use super::outbox::{Backend, OutboxTable};
use super::Error;

/// Waits for the relay lock of `table`, trying every `poll`, until it is
/// held (`Some(Some(conn))`: keep `conn` open while relaying; on SQLite
/// `Some(None)`) or `stop` changes (`None`).
///
/// The connection is detached from the pool: when the relay stops or is
/// aborted it is closed, which releases the lock, rather than going back
/// to the pool with the lock still held.
pub(super) async fn acquire(
    pool: &AnyPool,
    table: &OutboxTable,
    poll: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Option<Option<AnyConnection>> {
    if table.backend() != Backend::Postgres {
        return Some(None);
    }
    let mut logged = false;
    loop {
        match try_lock(pool, table).await {
            Ok(Some(conn)) => return Some(Some(conn)),
            Ok(None) if !logged => {
                tracing::info!(
                    table = table.name(),
                    "another process relays this outbox; waiting for its lock"
                );
                logged = true;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(table = table.name(), error = %e, "outbox relay: cannot take the relay lock");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => return None,
        }
    }
}

/// One try: the lock's connection when the lock was free.
async fn try_lock(pool: &AnyPool, table: &OutboxTable) -> Result<Option<AnyConnection>, Error> {
    let mut conn = pool.acquire().await?.detach();
    let locked: bool = sqlx::query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind(table.lock_key())
        .fetch_one(&mut conn)
        .await?
        .try_get("locked")?;
    Ok(locked.then_some(conn))
}
