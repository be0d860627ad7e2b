//! Group commit of the `pending` rows the HTTP handlers write before they
//! send a request to the topic.
//!
//! Each accepted request needs its `pending` row in the database before
//! the 202 (so `GET /coupons/{id}/issues/{user}` finds it at once, and
//! `GET /coupons/{id}` counts it). One statement per request would queue
//! every handler behind SQLite's one writer; here the handlers hand their
//! rows to one task that writes whatever has gathered as one multi-row
//! `INSERT` (up to [`MAX_BATCH`] rows), then answers each of them. Under
//! load a statement carries hundreds of rows; alone, a request waits for
//! one statement, as before.

use tokio::sync::{mpsc, oneshot};

use crate::db::Db;

/// Rows per statement at most.
pub(crate) const MAX_BATCH: usize = 1_000;

/// Rows waiting for the writer at most; a handler past it waits for room.
const QUEUE: usize = 10_000;

/// A row to write and who waits for it.
struct Pending {
    row: (String, String, i64),
    done: oneshot::Sender<Result<(), String>>,
}

/// The handle of the writer task; cheap to clone. The task ends when the
/// last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct PendingWriter {
    tx: mpsc::Sender<Pending>,
}

/// Why a `pending` row was not written: the database's error, as text.
#[derive(Debug, thiserror::Error)]
#[error("cannot record the request: {0}")]
pub(crate) struct PendingError(String);

impl PendingWriter {
    /// Starts the writer task over `db`'s writer pool.
    pub(crate) fn start(db: Db) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(db, rx));
        Self { tx }
    }

    /// Records `user_id`'s request for `coupon_id` as `pending` (unless the
    /// user has a request for it already), with the statement of whatever
    /// other rows wait. Returns once the row is committed.
    ///
    /// # Errors
    /// [`PendingError`] when the statement failed (the database is down or
    /// busy past its timeout) or the writer stopped.
    pub(crate) async fn insert(
        &self,
        coupon_id: &str,
        user_id: &str,
        requested_at: i64,
    ) -> Result<(), PendingError> {
        let (done, answer) = oneshot::channel();
        let pending = Pending {
            row: (coupon_id.to_owned(), user_id.to_owned(), requested_at),
            done,
        };
        let stopped = || PendingError("the pending-row writer stopped".into());
        self.tx.send(pending).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?.map_err(PendingError)
    }
}

async fn write_loop(db: Db, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let rows: Vec<(&str, &str, i64)> = batch
            .iter()
            .map(|p: &Pending| (p.row.0.as_str(), p.row.1.as_str(), p.row.2))
            .collect();
        let result = db.mark_pending(&rows).await.map_err(|e| e.to_string());
        metrics::histogram!("coupon_pending_batch_rows").record(rows.len() as f64);
        drop(rows);
        for pending in batch.drain(..) {
            let _ = pending.done.send(result.clone());
        }
    }
}
