//! `transactional = true` listeners: one transactional producer per
//! consumer, and the lane's wrapper that runs a handler call (or a
//! recoverer call) in a transaction committed with the record's next
//! offset (EOS mode V2, KIP-447).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::{Offset, TopicPartitionList};

use super::lane::Lane;
use super::lanes::ContainerContext;
use crate::error::{ErrorKind, ListenerError};
use crate::transaction::TransactionalProducer;

/// The transactional producer of one consumer and the consumer's group
/// metadata (member id and generation), which fences a zombie whose
/// partitions moved to another member.
pub(crate) struct ConsumerTx {
    producer: Arc<TransactionalProducer>,
    group: Mutex<Option<Arc<ConsumerGroupMetadata>>>,
    /// The lane table generation the metadata was read at.
    seen: AtomicU64,
}

impl std::fmt::Debug for ConsumerTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerTx")
            .field("producer", &self.producer)
            .finish_non_exhaustive()
    }
}

impl ConsumerTx {
    pub(crate) fn new(producer: Arc<TransactionalProducer>) -> Self {
        Self {
            producer,
            group: Mutex::new(None),
            seen: AtomicU64::new(u64::MAX),
        }
    }

    /// Reads the consumer's group metadata again when a rebalance came
    /// since the last read (on the consumer thread, before a burst is
    /// dispatched).
    pub(super) fn refresh(&self, consumer: &BaseConsumer<ContainerContext>, generation: u64) {
        if self.seen.swap(generation, Ordering::AcqRel) == generation {
            return;
        }
        *crate::util::lock(&self.group) = consumer.group_metadata().map(Arc::new);
    }

    fn group(&self) -> Option<Arc<ConsumerGroupMetadata>> {
        crate::util::lock(&self.group).clone()
    }
}

impl Lane<'_> {
    /// Runs `work` in a transaction when the listener is transactional:
    /// every template send of `work` joins it, and on `Ok` the transaction
    /// commits together with `next_offset` as this partition's consumed
    /// offset; on `Err` (or a failed commit) it aborts. Without a
    /// transaction, `work` as it is.
    ///
    /// # Errors
    /// `work`'s error, or a retryable one when the transaction could not
    /// begin or commit.
    pub(super) async fn in_transaction<F>(
        &self,
        next_offset: i64,
        work: F,
    ) -> Result<(), ListenerError>
    where
        F: Future<Output = Result<(), ListenerError>>,
    {
        let Some(tx) = &self.shared.tx else {
            return work.await;
        };
        let active = tx.producer.begin().await?;
        match active.scope(work).await {
            Ok(()) => {
                let Some(group) = tx.group() else {
                    active.abort().await;
                    return Err(ListenerError::with_kind(
                        ErrorKind::Retryable,
                        "the consumer's group metadata is not known yet (no assignment)",
                    ));
                };
                let mut offsets = TopicPartitionList::with_capacity(1);
                offsets
                    .add_partition_offset(
                        &self.shared.topic,
                        self.shared.partition,
                        Offset::Offset(next_offset),
                    )
                    .map_err(ListenerError::from)?;
                match active.commit(Some((offsets, group))).await {
                    Ok(()) => {
                        self.listener.metrics.transactions_committed.increment(1);
                        Ok(())
                    }
                    Err(e) => {
                        self.listener.metrics.transactions_aborted.increment(1);
                        Err(e.into())
                    }
                }
            }
            Err(e) => {
                active.abort().await;
                self.listener.metrics.transactions_aborted.increment(1);
                Err(e)
            }
        }
    }
}
