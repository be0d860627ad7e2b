//! Kafka transactions: transactional producers, producer-only transactions
//! (`KafkaTemplate::in_transaction`) and what the container needs for
//! exactly-once consume-process-produce (`transactional = true`).
//!
//! Spring's `KafkaTransactionManager` with EOS mode V2 (KIP-447): one
//! transactional producer per consumer; the consumed offsets are sent to the
//! transaction with the consumer's group metadata
//! (`sendOffsetsToTransaction(offsets, groupMetadata)`), so that a zombie
//! whose partitions moved on is fenced by the group's generation, not by a
//! `transactional.id` per partition.
//!
//! Inside a transaction every `KafkaTemplate` send of the task (the
//! listener's own sends, its dead-letter record, a reply) goes through the
//! transaction's producer, as a Spring template joins the transaction bound
//! to its thread. Work spawned onto another task does not join.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{ClientConfig, TopicPartitionList};
use tokio::sync::OwnedMutexGuard;

use crate::error::{Error, Result};

tokio::task_local! {
    /// The producer of the Kafka transaction the current task runs in:
    /// `KafkaTemplate::send` sends through it.
    pub(crate) static TRANSACTION: FutureProducer;
}

/// How long `init_transactions`, `send_offsets_to_transaction`,
/// `commit_transaction` and `abort_transaction` may block.
pub(crate) const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// The settings behind transactional producers: the template's producer
/// configuration and the `transactional.id` prefix
/// (`spring.kafka.producer.transaction-id-prefix`).
#[derive(Debug)]
pub(crate) struct Transactions {
    config: ClientConfig,
    prefix: String,
    /// Idle producers of [`KafkaTemplate::in_transaction`].
    pool: Mutex<Vec<Arc<TransactionalProducer>>>,
    next: AtomicU64,
}

impl Transactions {
    pub(crate) fn new(config: ClientConfig, prefix: String) -> Self {
        Self {
            config,
            prefix,
            pool: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
        }
    }

    /// A producer whose `transactional.id` is the prefix followed by
    /// `suffix`. Made, not initialized: the first transaction initializes
    /// it (which fences an earlier producer with the same id and aborts its
    /// open transaction).
    pub(crate) fn producer(&self, suffix: &str) -> Arc<TransactionalProducer> {
        let mut config = self.config.clone();
        let id = format!("{}{suffix}", self.prefix);
        config.set("transactional.id", &id);
        Arc::new(TransactionalProducer {
            id,
            config,
            slot: Arc::new(tokio::sync::Mutex::new(Slot::default())),
        })
    }

    pub(crate) fn take(&self) -> Arc<TransactionalProducer> {
        if let Some(p) = crate::util::lock(&self.pool).pop() {
            return p;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.producer(&format!("template-{n}"))
    }

    pub(crate) fn give_back(&self, producer: Arc<TransactionalProducer>) {
        crate::util::lock(&self.pool).push(producer);
    }
}

#[derive(Default)]
struct Slot {
    /// `None` before the first transaction and after a fatal error (a
    /// fenced producer cannot be used again: the next transaction makes a
    /// new one with the same id).
    producer: Option<FutureProducer>,
    /// A transaction was begun and neither committed nor aborted (its task
    /// was cancelled): the next one aborts it first.
    open: bool,
}

/// One producer with a fixed `transactional.id`, used by one transaction at
/// a time.
pub(crate) struct TransactionalProducer {
    id: String,
    config: ClientConfig,
    slot: Arc<tokio::sync::Mutex<Slot>>,
}

impl std::fmt::Debug for TransactionalProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionalProducer")
            .field("transactional_id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Runs a blocking librdkafka transaction call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, KafkaError> + Send + 'static,
) -> std::result::Result<T, KafkaError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(KafkaError::Canceled).inspect_err(|_| {
            tracing::error!(error = %e, "a transaction call did not finish");
        }),
    }
}

fn is_fatal(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(t) => t.is_fatal(),
        _ => false,
    }
}

impl TransactionalProducer {
    /// Waits for the producer to be free, makes and initializes it if
    /// needed, and begins a transaction.
    ///
    /// # Errors
    /// [`Error::Transaction`] when the producer cannot be made or
    /// initialized (no transaction coordinator, an ACL refusing the
    /// `transactional.id`) or the transaction cannot begin.
    pub(crate) async fn begin(&self) -> Result<ActiveTransaction> {
        let mut slot = Arc::clone(&self.slot).lock_owned().await;
        let fail = |op: &'static str, e: KafkaError| Error::Transaction {
            transactional_id: self.id.clone(),
            operation: op,
            source: e,
        };
        if slot.producer.is_none() {
            let producer: FutureProducer = self.config.create().map_err(|e| fail("create", e))?;
            let p = producer.clone();
            blocking(move || p.init_transactions(TRANSACTION_TIMEOUT))
                .await
                .map_err(|e| fail("init_transactions", e))?;
            tracing::debug!(transactional_id = %self.id, "transactional producer initialized");
            slot.producer = Some(producer);
            slot.open = false;
        }
        let producer = slot.producer.clone().expect("made above");
        if slot.open {
            let p = producer.clone();
            if let Err(e) = blocking(move || p.abort_transaction(TRANSACTION_TIMEOUT)).await {
                tracing::warn!(transactional_id = %self.id, error = %e, "aborting an abandoned transaction failed; the producer is made anew");
                slot.producer = None;
                slot.open = false;
                return Err(fail("abort_transaction", e));
            }
            slot.open = false;
        }
        if let Err(e) = producer.begin_transaction() {
            if is_fatal(&e) {
                slot.producer = None;
            }
            return Err(fail("begin_transaction", e));
        }
        slot.open = true;
        Ok(ActiveTransaction {
            id: self.id.clone(),
            producer,
            slot: Some(slot),
        })
    }
}

/// A begun transaction: commit it or abort it. Dropped without either (its
/// task was cancelled), the producer aborts it before its next transaction.
pub(crate) struct ActiveTransaction {
    id: String,
    producer: FutureProducer,
    slot: Option<OwnedMutexGuard<Slot>>,
}

impl ActiveTransaction {
    /// The producer every template send of the transaction goes through.
    pub(crate) fn producer(&self) -> FutureProducer {
        self.producer.clone()
    }

    /// Runs `fut` with every template send of its task joining this
    /// transaction.
    pub(crate) async fn scope<F: Future>(&self, fut: F) -> F::Output {
        TRANSACTION.scope(self.producer(), fut).await
    }

    /// Sends `offsets` (the next offset to consume per partition) with the
    /// consumer's group metadata, when given, and commits: both the
    /// records sent and the offsets become visible, or neither.
    ///
    /// # Errors
    /// [`Error::Transaction`]; the transaction is then aborted (or, when
    /// the producer was fenced, the producer is dropped and made anew by
    /// the next transaction).
    pub(crate) async fn commit(
        mut self,
        offsets: Option<(TopicPartitionList, Arc<ConsumerGroupMetadata>)>,
    ) -> Result<()> {
        let p = self.producer.clone();
        let done = blocking(move || {
            Ok((|| {
                if let Some((tpl, group)) = &offsets {
                    p.send_offsets_to_transaction(tpl, group, TRANSACTION_TIMEOUT)
                        .map_err(|e| ("send_offsets_to_transaction", e))?;
                }
                p.commit_transaction(TRANSACTION_TIMEOUT)
                    .map_err(|e| ("commit_transaction", e))
            })())
        })
        .await;
        // `blocking` maps a join error to KafkaError; keep the op name.
        let result = match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err((op, e))) => Err((op, e)),
            Err(e) => Err(("commit_transaction", e)),
        };
        match result {
            Ok(()) => {
                self.finish();
                Ok(())
            }
            Err((op, e)) => {
                let err = Error::Transaction {
                    transactional_id: self.id.clone(),
                    operation: op,
                    source: e,
                };
                self.abort_after(&err).await;
                Err(err)
            }
        }
    }

    /// Aborts: nothing sent in the transaction becomes visible to
    /// `read_committed` consumers, and no offset moves.
    pub(crate) async fn abort(mut self) {
        self.abort_or_drop().await;
    }

    /// Aborts; when that fails, drops the producer (the next transaction
    /// makes it anew).
    async fn abort_or_drop(&mut self) {
        let p = self.producer.clone();
        match blocking(move || p.abort_transaction(TRANSACTION_TIMEOUT)).await {
            Ok(()) => self.finish(),
            Err(e) => {
                tracing::warn!(transactional_id = %self.id, error = %e, "aborting the transaction failed; the producer is made anew");
                self.drop_producer();
            }
        }
    }

    async fn abort_after(mut self, err: &Error) {
        let fatal = matches!(err, Error::Transaction { source, .. } if is_fatal(source));
        if fatal {
            tracing::warn!(transactional_id = %self.id, error = %err, "the transactional producer was fenced or failed fatally; it is made anew");
            self.drop_producer();
            return;
        }
        self.abort_or_drop().await;
    }

    fn finish(&mut self) {
        if let Some(mut slot) = self.slot.take() {
            slot.open = false;
        }
    }

    fn drop_producer(&mut self) {
        if let Some(mut slot) = self.slot.take() {
            slot.producer = None;
            slot.open = false;
        }
    }
}
