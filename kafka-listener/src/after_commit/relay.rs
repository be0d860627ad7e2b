//! The outbox relay: sends unsent outbox rows with a `KafkaTemplate`, one
//! key at a time in id order (keys in parallel), marks them sent, and backs
//! off when sends fail.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sqlx::{AnyPool, Connection};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::keys::{by_key, chain_key, Blocked, ChainKey};
use super::outbox::{self, OutboxRow, OutboxTable, ValueFormat};
use super::{leader, metrics, now_ms, Error, EVENT_ID_HEADER, EVENT_TYPE_HEADER};
use crate::producer::{KafkaTemplate, ProducerRecord};
use crate::retry::BackOff;

/// How the relay polls, batches and backs off.
///
/// Records of one key are sent one at a time by default (each waits for
/// the broker's acknowledgment), so one key's rate is bounded by the
/// producer's round trip plus `linger.ms` (librdkafka's default is 5 ms).
/// Measured on the embedded broker and SQLite, 3,000 events
/// (`relay_throughput` in `tests/after_commit.rs`):
///
/// | keys | `linger.ms` | `max_in_flight_per_key` | events/s |
/// |---|---|---|---|
/// | 1 | 5 (the app template's) | 1 | ~160 |
/// | 1 | 0 | 1 | ~3,500 |
/// | 16 | 0 | 1 | ~7,800 |
/// | 1 | 5 | 32 | ~2,900 |
///
/// When one key is hot, give the relay a template with `linger.ms=0`, or
/// raise [`max_in_flight_per_key`](Self::max_in_flight_per_key) and accept
/// its failure mode.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// How often to look for unsent rows when no commit woke the relay
    /// (rows written by other processes, retries). Default 1 s.
    pub poll_interval: Duration,
    /// Rows read per batch. Default 500.
    pub batch_size: usize,
    /// Keys sent in parallel within a batch. Default 64.
    pub max_keys_in_flight: usize,
    /// Records of one key sent before waiting for their acknowledgments.
    /// Default 1: each record waits for the one before, so a failed send
    /// can never let a later record of its key overtake it. Above 1 the
    /// sends are enqueued in order (the idempotent producer keeps them in
    /// order on the wire), which multiplies one key's rate; but when a
    /// send fails for good (after `message.timeout.ms`) while later ones
    /// of its key succeed, the failed record is delivered after them.
    pub max_in_flight_per_key: usize,
    /// The wait before a key whose send failed is tried again, retry `n`
    /// after its `n`th failure in a row (each key backs off on its own while
    /// the others go on; a database error backs the whole relay off the
    /// same way). Default exponential from 100 ms, times 2, capped at 30 s,
    /// without jitter.
    pub backoff: BackOff,
    /// Sent rows older than this are deleted (after the relay's first batch,
    /// then every minute); `None` keeps them. Default 24 h.
    pub retention: Option<Duration>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            batch_size: 500,
            max_keys_in_flight: 64,
            max_in_flight_per_key: 1,
            backoff: BackOff::exponential(Duration::from_millis(100), 2.0, Duration::from_secs(30)),
            retention: Some(Duration::from_secs(24 * 60 * 60)),
        }
    }
}

/// How often sent rows are purged.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Counters of one relay since it started.
#[derive(Debug, Default)]
pub struct RelayStats {
    published: AtomicU64,
    send_failures: AtomicU64,
    unknown_events: AtomicU64,
    batches: AtomicU64,
}

impl RelayStats {
    /// Records the broker acknowledged (and that were then marked sent).
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Sends that failed (each is retried after a back-off).
    pub fn send_failures(&self) -> u64 {
        self.send_failures.load(Ordering::Relaxed)
    }

    /// Rows left unsent because no type of this binary has their event name
    /// (each time the relay tried them).
    pub fn unknown_events(&self) -> u64 {
        self.unknown_events.load(Ordering::Relaxed)
    }

    /// Batches of rows read from the outbox.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
}

/// A running relay. Dropping it aborts the relay at once (rows sent but not
/// yet marked are sent again by the next relay: at-least-once); prefer
/// [`RelayHandle::shutdown`].
#[derive(Debug)]
pub struct RelayHandle {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    stats: Arc<RelayStats>,
}

impl RelayHandle {
    /// The relay's counters.
    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }

    /// Stops the relay after the batch in progress (its sends and marks
    /// finish) and waits for it.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub(crate) fn start(
    pool: AnyPool,
    table: OutboxTable,
    template: KafkaTemplate,
    config: RelayConfig,
    wake: Arc<Notify>,
) -> RelayHandle {
    let (stop, stop_rx) = watch::channel(false);
    let stats = Arc::new(RelayStats::default());
    let relay = Relay {
        pool,
        table,
        template,
        config,
        wake,
        stop: stop_rx,
        stats: Arc::clone(&stats),
    };
    RelayHandle {
        stop,
        task: Some(tokio::spawn(relay.run())),
        stats,
    }
}

struct Relay {
    pool: AnyPool,
    table: OutboxTable,
    template: KafkaTemplate,
    config: RelayConfig,
    wake: Arc<Notify>,
    stop: watch::Receiver<bool>,
    stats: Arc<RelayStats>,
}

/// What the sends of one key's rows did.
struct Chain {
    /// The topic and key.
    key: ChainKey,
    /// The ids the broker acknowledged, in order.
    sent: Vec<i64>,
    /// The row whose send failed (the rest of the key waits), and why.
    failure: Option<(i64, String)>,
}

/// Why a row was not handed to the producer.
enum Unsendable {
    /// No type of this binary has the row's event name.
    Unknown(String),
    /// Encoding failed (an Avro row: no codec, the registry).
    #[cfg_attr(not(feature = "avro"), allow(dead_code))]
    Failed(crate::Error),
}

/// What one batch did.
enum Batch {
    /// No unsent rows.
    Empty,
    /// Every row sent; `full` when the batch was full (more may wait).
    Sent { full: bool },
    /// At least one send failed (its key is blocked for a while).
    Failed,
}

impl Relay {
    async fn run(mut self) {
        let Some(mut lock) = self.lock().await else {
            return;
        };
        // Database errors in a row: the relay's back-off is retry `n`.
        tracing::info!(table = self.table.name(), "outbox relay started");
        metrics::outbox_registered(self.table.name());
        let mut db_failures: u32 = 0;
        let mut blocked = Blocked::default();
        let mut last_purge: Option<Instant> = None;
        loop {
            if *self.stop.borrow() {
                break;
            }
            // The lock lives as long as its session: a relay whose lock
            // connection broke may have been replaced by another process,
            // and must take the lock again before it sends anything.
            if let Some(conn) = lock.as_mut() {
                if let Err(e) = conn.ping().await {
                    tracing::warn!(table = self.table.name(), error = %e, "outbox relay: lost the relay lock's connection; taking the lock again");
                    drop(lock.take());
                    let Some(again) = self.lock().await else {
                        break;
                    };
                    lock = again;
                }
            }
            let outcome = self.batch(&mut blocked).await;
            let backing_off = outcome.is_err();
            let wait = match outcome {
                Ok(Batch::Sent { full: true }) => {
                    db_failures = 0;
                    None
                }
                Ok(Batch::Sent { full: false } | Batch::Empty | Batch::Failed) => {
                    db_failures = 0;
                    // Until the next poll, a commit, or the first blocked
                    // key's retry.
                    let retry = blocked.next_retry(Instant::now());
                    Some(retry.map_or(self.config.poll_interval, |r| {
                        r.min(self.config.poll_interval)
                    }))
                }
                Err(e) => {
                    tracing::warn!(table = self.table.name(), error = %e, "outbox relay: database error");
                    db_failures = db_failures.saturating_add(1);
                    Some(self.config.backoff.delay(db_failures))
                }
            };
            if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                last_purge = Some(Instant::now());
                self.purge().await;
            }
            if let Some(wait) = wait {
                if !self.wait(wait, backing_off).await {
                    break;
                }
            }
        }
        tracing::info!(table = self.table.name(), "outbox relay stopped");
    }

    /// Waits `delay`, or less when a commit wakes the relay (unless
    /// `backing_off` after a database error); `false` when asked to stop.
    async fn wait(&mut self, delay: Duration, backing_off: bool) -> bool {
        let wake = Arc::clone(&self.wake);
        let woken = async {
            if backing_off {
                std::future::pending::<()>().await;
            } else {
                wake.notified().await;
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = woken => true,
            _ = self.stop.changed() => false,
        }
    }

    /// The relay lock (see [`leader::acquire`]); `None` when asked to stop.
    async fn lock(&mut self) -> Option<Option<sqlx::AnyConnection>> {
        let poll = self.config.poll_interval;
        leader::acquire(&self.pool, &self.table, poll, &mut self.stop).await
    }

    /// Reads one batch (leaving out blocked keys), sends it key by key,
    /// marks what was acknowledged, and blocks the keys that failed.
    async fn batch(&self, blocked: &mut Blocked) -> Result<Batch, Error> {
        let now = Instant::now();
        let rows = self
            .table
            .unsent(&self.pool, self.config.batch_size, &blocked.active(now))
            .await?;
        if rows.is_empty() {
            return Ok(Batch::Empty);
        }
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        let full = rows.len() >= self.config.batch_size;
        let chains: Vec<Vec<OutboxRow>> = by_key(rows)
            .into_iter()
            .filter(|chain| !blocked.is_blocked(&chain_key(&chain[0]), now))
            .collect();
        let results: Vec<Chain> = futures::stream::iter(chains)
            .map(|chain| self.send_chain(chain))
            .buffer_unordered(self.config.max_keys_in_flight.max(1))
            .collect()
            .await;
        let mut sent = Vec::new();
        let mut failed = false;
        for Chain {
            key,
            sent: ids,
            failure,
        } in results
        {
            sent.extend(ids);
            if failure.is_none() {
                blocked.succeed(&key);
            }
            if let Some((id, error)) = failure {
                failed = true;
                let delay = blocked.fail(key.clone(), &self.config.backoff, Instant::now());
                tracing::warn!(
                    table = self.table.name(),
                    topic = %key.0,
                    key = %key.1,
                    retry_in = ?delay,
                    "outbox relay: key blocked after a failed send; other keys go on"
                );
                if let Err(e) = self.table.record_failure(&self.pool, id, &error).await {
                    tracing::warn!(table = self.table.name(), error = %e, "outbox relay: cannot record a failed send");
                }
            }
        }
        sent.sort_unstable();
        self.table.mark_sent(&self.pool, &sent, now_ms()).await?;
        let n = sent.len() as u64;
        self.stats.published.fetch_add(n, Ordering::Relaxed);
        metrics::outbox_published(self.table.name(), n);
        Ok(if failed {
            Batch::Failed
        } else {
            Batch::Sent { full }
        })
    }

    /// Sends the rows of one key in order, stopping at the first failure;
    /// returns the ids sent and the failure.
    async fn send_chain(&self, chain: Vec<OutboxRow>) -> Chain {
        let key = chain_key(&chain[0]);
        let mut sent = Vec::with_capacity(chain.len());
        let window = self.config.max_in_flight_per_key.max(1);
        for rows in chain.chunks(window) {
            // Encoded first (an Avro row may wait for the registry), so that
            // the sends below are enqueued in id order. A row that cannot be
            // encoded stops the chain there, as a failed send does.
            let mut records = Vec::with_capacity(rows.len());
            let mut unencodable = None;
            for row in rows {
                match self.record(row).await {
                    Ok(record) => records.push(record),
                    Err(e) => {
                        unencodable = Some((row, e));
                        break;
                    }
                }
            }
            // `join_all` polls the sends in order on its first poll, so the
            // producer enqueues them in order.
            let results =
                futures::future::join_all(records.into_iter().map(|r| self.template.send(r))).await;
            let mut failure: Option<(i64, String)> = None;
            for (row, result) in rows.iter().zip(results) {
                match (result, &failure) {
                    (Ok(_), None) => sent.push(row.id),
                    (Ok(_), Some((failed, _))) => {
                        // Acknowledged after an earlier record of its key
                        // failed (only with max_in_flight_per_key > 1): it
                        // stays sent, and the failed one follows it later.
                        tracing::warn!(
                            table = self.table.name(),
                            outbox_id = row.id,
                            failed_outbox_id = failed,
                            key = %row.key,
                            "outbox relay: a record was delivered before an earlier record of its key that failed"
                        );
                        sent.push(row.id);
                    }
                    (Err(e), _) => {
                        self.send_failed(row, &e);
                        if failure.is_none() {
                            failure = Some((row.id, e.to_string()));
                        }
                    }
                }
            }
            if let Some((row, e)) = unencodable {
                let reason = match e {
                    Unsendable::Unknown(reason) => {
                        self.unknown_event(row, &reason);
                        reason
                    }
                    Unsendable::Failed(e) => {
                        self.send_failed(row, &e);
                        e.to_string()
                    }
                };
                if failure.is_none() {
                    failure = Some((row.id, reason));
                }
            }
            if failure.is_some() {
                return Chain { key, sent, failure };
            }
        }
        Chain {
            key,
            sent,
            failure: None,
        }
    }

    /// Counts and logs (at error level: it needs a person) a row whose
    /// event name this binary does not know.
    fn unknown_event(&self, row: &OutboxRow, reason: &str) {
        self.stats.unknown_events.fetch_add(1, Ordering::Relaxed);
        metrics::outbox_unknown_event(self.table.name());
        tracing::error!(
            table = self.table.name(),
            outbox_id = row.id,
            event_type = %row.event_type,
            topic = %row.topic,
            key = %row.key,
            attempts = row.attempts + 1,
            "outbox relay: {reason}"
        );
    }

    /// Counts and logs a row whose send (or encoding) failed.
    fn send_failed(&self, row: &OutboxRow, e: &crate::Error) {
        self.stats.send_failures.fetch_add(1, Ordering::Relaxed);
        metrics::outbox_send_failed(self.table.name());
        tracing::warn!(
            table = self.table.name(),
            outbox_id = row.id,
            topic = %row.topic,
            key = %row.key,
            attempts = row.attempts + 1,
            error = %e,
            "outbox relay: send failed; the key waits for a retry after a back-off"
        );
    }

    /// The Kafka record of an outbox row, found by its event name: its JSON
    /// as it is, or for an event type registered with `format = "avro"`
    /// that JSON encoded as Avro with the template's codec; the
    /// `kafka_listener-event-type` header is the type's name.
    ///
    /// # Errors
    /// [`Unsendable::Unknown`] when no type of this binary has the row's
    /// name. For an Avro row: [`crate::Error::Config`] when the template has
    /// no Avro codec, else what [`crate::avro::AvroCodec::encode`] returns
    /// (the registry cannot be reached or refuses the schema). The row is
    /// tried again after the key's back-off.
    async fn record(&self, row: &OutboxRow) -> Result<ProducerRecord, Unsendable> {
        let Some(event) = outbox::known_event(&row.event_type) else {
            return Err(Unsendable::Unknown(format!(
                "unknown outbox event name `{}`: no `#[derive(OutboxEvent)]` type of this binary has it (renamed or removed without `#[outbox(name = \"{}\")]`, or written by a newer version); the row stays unsent and later rows of its key wait",
                row.event_type, row.event_type
            )));
        };
        let mut record = ProducerRecord::keyed(row.topic.clone(), row.key.clone())
            .header(EVENT_ID_HEADER, row.event_id.clone())
            .header(EVENT_TYPE_HEADER, event.name)
            .timestamp(row.created_at);
        // The publisher's trace goes on in the record (crate::trace).
        for (name, value) in row.trace.iter().flat_map(|t| t.headers()) {
            record = record.header(name, value);
        }
        match event.format {
            ValueFormat::Json => Ok(record.value(row.payload.clone())),
            #[cfg(feature = "avro")]
            ValueFormat::Avro(encode) => {
                let codec = self.template.avro_codec().ok_or_else(|| {
                    Unsendable::Failed(crate::Error::Config(format!(
                        "outbox event `{}` is sent as Avro, but the relay's KafkaTemplate has no Avro codec (KafkaApp::template() has one; or KafkaTemplate::with_avro)",
                        row.event_type
                    )))
                })?;
                let value = encode(codec, &row.topic, &row.payload)
                    .await
                    .map_err(Unsendable::Failed)?;
                Ok(record.value(value))
            }
        }
    }

    async fn purge(&self) {
        let Some(retention) = self.config.retention else {
            return;
        };
        let before = now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX / 2);
        match self.table.purge_sent(&self.pool, before).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(table = self.table.name(), purged = n, "outbox rows purged"),
            Err(e) => tracing::warn!(table = self.table.name(), error = %e, "outbox purge failed"),
        }
    }
}
