//! Offset commits of one consumer: what its lanes finished, periodically
//! and when lanes close (rebalance, stop).

use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::lanes::ContainerContext;

impl ContainerContext {
    /// Commits every partition whose finished offset moved past the last
    /// commit (`force`: every partition with a finished offset).
    pub(super) fn commit(
        &self,
        consumer: &BaseConsumer<Self>,
        mode: CommitMode,
        force: bool,
        only: Option<&TopicPartitionList>,
    ) {
        if self.tx.is_some() {
            // The offsets were committed with each transaction; a commit
            // here could land after a later transaction's and move the
            // group's offset back.
            return;
        }
        let mut table = self.lock();
        let mut tpl = TopicPartitionList::new();
        for (topic, lanes) in table.topics.iter_mut() {
            for (&partition, entry) in lanes.lanes.iter_mut() {
                if let Some(only) = only {
                    if only.find_partition(topic, partition).is_none() {
                        continue;
                    }
                }
                let offset = entry.shared.offsets.committable();
                if offset >= 0 && (offset > entry.committed || (force && offset >= entry.committed))
                {
                    if let Err(e) =
                        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
                    {
                        tracing::warn!(error = %e, "building the commit failed");
                        continue;
                    }
                    entry.committed = offset;
                }
            }
        }
        drop(table);
        if tpl.count() == 0 {
            return;
        }
        match consumer.commit(&tpl, mode) {
            Ok(()) => {
                tracing::trace!(consumer = %self.name, offsets = ?tpl, "commit requested");
            }
            Err(e) => {
                self.listener.metrics.commit_failures.increment(1);
                tracing::warn!(consumer = %self.name, error = %e, "commit failed; the records may be delivered again");
            }
        }
    }

    /// Stops the lanes of `partitions` (all when `None`), waits up to the
    /// drain timeout for their records in hand, commits what is finished
    /// (synchronously) and forgets the lanes.
    pub(super) fn close_lanes(
        &self,
        consumer: &BaseConsumer<Self>,
        partitions: Option<&TopicPartitionList>,
    ) {
        let mut closing = Vec::new();
        {
            let table = self.lock();
            for (topic, lanes) in table.topics.iter() {
                for (&partition, entry) in lanes.lanes.iter() {
                    if partitions.is_none_or(|p| p.find_partition(topic, partition).is_some()) {
                        entry.shared.revoke();
                        closing.push((Arc::clone(topic), partition));
                    }
                }
            }
        }
        if closing.is_empty() {
            return;
        }
        // Close the channels so that idle lanes end at once.
        let mut exits = Vec::with_capacity(closing.len());
        {
            let mut table = self.lock();
            for (topic, partition) in &closing {
                if let Some(entry) = table
                    .topics
                    .get_mut(topic)
                    .and_then(|l| l.lanes.get_mut(partition))
                {
                    let (tx, _) = mpsc::unbounded_channel();
                    drop(std::mem::replace(&mut entry.tx, tx));
                    entry.pending.clear();
                    let (_, dead) = std::sync::mpsc::sync_channel(0);
                    exits.push((
                        Arc::clone(topic),
                        *partition,
                        std::mem::replace(&mut entry.exit, dead),
                        entry.task.clone(),
                    ));
                }
            }
        }
        let deadline = Instant::now() + self.drain_timeout;
        for (topic, partition, exit, task) in exits {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(RecvTimeoutError::Timeout) = exit.recv_timeout(left) {
                tracing::warn!(listener = %self.listener.info.id, topic = %topic, partition,
                    timeout_ms = self.drain_timeout.as_millis() as u64,
                    "the handler did not finish within the drain timeout; it is cancelled and its record will be delivered again");
                // Cancelled at its next await: it must not run on beside
                // the partition's next owner. Its offset is not finished,
                // so it is not committed. A handler that never yields
                // cannot be cancelled; wait a little for it to notice.
                task.abort();
                let _ = exit.recv_timeout(Duration::from_millis(500));
            }
        }
        let mut only = TopicPartitionList::new();
        for (topic, partition) in &closing {
            only.add_partition(topic, *partition);
        }
        self.commit(consumer, CommitMode::Sync, true, Some(&only));
        let mut table = self.lock();
        let mut progress = crate::util::lock(&self.progress);
        for (topic, partition) in &closing {
            if let Some(entry) = table
                .topics
                .get_mut(topic)
                .and_then(|l| l.lanes.remove(partition))
            {
                let key = (topic.to_string(), *partition);
                if progress
                    .get(&key)
                    .is_some_and(|o| Arc::ptr_eq(o, &entry.shared))
                {
                    progress.remove(&key);
                }
            }
        }
        drop(progress);
        table
            .backpressured
            .retain(|(t, p)| !closing.iter().any(|(ct, cp)| ct == t && cp == p));
    }
}
