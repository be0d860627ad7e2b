//! The lane table of one consumer: one lane per assigned partition, and the
//! dispatch of each poll burst's records to them (with back-pressure when a
//! lane is full).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::TopicPartitionList;
use tokio::sync::mpsc;

use super::burst::{Burst, BurstBuilder, SegmentPool};
use super::lane::{run_lane, LaneShared};
use super::{Assignments, Lag, ListenerRuntime, Observed, Progress};
use crate::ack::{CommitSignal, PartitionOffsets};
use crate::util::FastMap;

/// Requests from the container to its consumer threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    PauseAll,
    ResumeAll,
    Seek(super::seek::SeekRequest),
}

pub(super) struct LaneEntry {
    pub(super) shared: Arc<LaneShared>,
    pub(super) tx: mpsc::UnboundedSender<Burst>,
    /// Records of the current poll burst, handed over together at its end.
    pub(super) pending: BurstBuilder,
    /// The offset after the last record handed over (-1: none yet).
    pub(super) next_offset: i64,
    /// The last offset committed for this partition by this consumer.
    pub(super) committed: i64,
    pub(super) exit: Receiver<()>,
    /// Aborts the lane's task: a handler still running when the drain
    /// timeout of a revoke ran out must not go on beside the partition's
    /// next owner (its record is delivered again).
    pub(super) task: tokio::task::AbortHandle,
}

pub(super) struct TopicLanes {
    pub(super) name: Arc<str>,
    pub(super) lanes: FastMap<i32, LaneEntry>,
}

#[derive(Default)]
pub(super) struct LaneTable {
    pub(super) topics: FastMap<Arc<str>, TopicLanes>,
    /// Partitions paused because their lane was full.
    pub(super) backpressured: Vec<(Arc<str>, i32)>,
    /// Lanes with records in `pending`.
    pub(super) with_pending: Vec<(Arc<str>, i32)>,
    /// The committed offsets read when partitions were assigned: where each
    /// new lane's first record should be.
    pub(super) start_offsets: HashMap<(String, i32), i64>,
    /// Counts rebalances (revokes and assignments) seen by this consumer.
    pub(super) generation: u64,
}

/// The rdkafka context of one consumer: holds the lanes so that the
/// rebalance callback can drain and commit them.
pub(crate) struct ContainerContext {
    pub(super) listener: Arc<ListenerRuntime>,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) table: Mutex<LaneTable>,
    /// Buffers for the records' keys and values, reused.
    pub(super) pool: Arc<SegmentPool>,
    pub(super) signal: Arc<CommitSignal>,
    pub(super) paused_all: AtomicBool,
    /// Whether this consumer has had an assignment (even an empty one):
    /// it has joined its group, so closing it leaves the group.
    pub(super) joined: AtomicBool,
    /// How long this consumer, stopped before its first assignment, waits
    /// for it (see `consumer::finish_joining`).
    pub(super) join_before_leave: Duration,
    pub(super) drain_timeout: Duration,
    pub(super) name: String,
    /// This consumer's slot in the container's table of assignments.
    pub(super) assigned: Assignments,
    pub(super) slot: usize,
    pub(super) progress: Progress,
    pub(super) lag: Lag,
    pub(super) errors: super::errors::Errors,
    /// This consumer's transactional producer (`transactional = true`).
    pub(super) tx: Option<Arc<super::tx::ConsumerTx>>,
}

impl ContainerContext {
    pub(crate) fn new(
        listener: Arc<ListenerRuntime>,
        runtime: tokio::runtime::Handle,
        drain_timeout: Duration,
        name: String,
        observed: Observed,
        slot: usize,
        tx: Option<Arc<super::tx::ConsumerTx>>,
    ) -> Self {
        Self {
            tx,
            progress: observed.progress,
            lag: observed.lag,
            errors: observed.errors,
            assigned: observed.assigned,
            slot,
            listener,
            runtime,
            table: Mutex::new(LaneTable::default()),
            pool: Arc::default(),
            signal: Arc::new(CommitSignal::default()),
            paused_all: AtomicBool::new(false),
            joined: AtomicBool::new(false),
            join_before_leave: Duration::ZERO,
            drain_timeout,
            name,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, LaneTable> {
        crate::util::lock(&self.table)
    }

    pub(super) fn one(topic: &str, partition: i32) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::with_capacity(1);
        tpl.add_partition(topic, partition);
        tpl
    }

    pub(super) fn new_lane(&self, topic: &Arc<str>, partition: i32) -> LaneEntry {
        let offsets = Arc::new(PartitionOffsets::new(
            Arc::clone(&self.signal),
            self.listener.info.ack_mode.is_immediate(),
        ));
        // The lane's own copy of the topic name: every record of the lane
        // holds it, and a count shared by all lanes would bounce between
        // the tokio workers.
        let shared = Arc::new(LaneShared::new(
            Arc::from(&**topic),
            partition,
            offsets,
            self.tx.clone(),
        ));
        crate::util::lock(&self.progress)
            .insert((topic.to_string(), partition), Arc::clone(&shared));
        let (tx, rx) = mpsc::unbounded_channel();
        let (exit_tx, exit) = std::sync::mpsc::sync_channel(0);
        let task = self
            .runtime
            .spawn(run_lane(
                Arc::clone(&shared),
                rx,
                Arc::clone(&self.listener),
                exit_tx,
            ))
            .abort_handle();
        LaneEntry {
            shared,
            tx,
            pending: BurstBuilder::new(Arc::clone(&self.pool)),
            next_offset: -1,
            committed: -1,
            exit,
            task,
        }
    }

    /// Hands the records of one poll burst to their lanes' pending bursts,
    /// under one lock and with one lane lookup per run of records of the
    /// same partition (librdkafka delivers a fetched batch in a run).
    /// `generation` is [`LaneTable::generation`] from before the burst was
    /// polled: when a rebalance came in between (a revoke ends a burst),
    /// records of partitions no longer assigned are dropped, not given a
    /// new lane.
    pub(super) fn dispatch(
        &self,
        consumer: &BaseConsumer<Self>,
        msgs: &[BorrowedMessage<'_>],
        generation: u64,
    ) {
        let mut guard = self.lock();
        let table = &mut *guard;
        let assigned =
            (table.generation != generation).then(|| consumer.assignment().unwrap_or_default());
        let mut rest = msgs;
        while let Some(first) = rest.first() {
            let topic_name = first.topic();
            let partition = first.partition();
            let run = rest
                .iter()
                .position(|m| m.partition() != partition || m.topic() != topic_name)
                .unwrap_or(rest.len());
            let (this, next) = rest.split_at(run);
            rest = next;
            if assigned
                .as_ref()
                .is_some_and(|a| a.find_partition(topic_name, partition).is_none())
            {
                continue; // revoked at the end of the burst
            }
            self.dispatch_run(table, topic_name, partition, this);
        }
    }

    /// Hands records of one partition, in offset order, to its lane's
    /// pending burst (creating the lane for a newly assigned partition).
    pub(super) fn dispatch_run(
        &self,
        table: &mut LaneTable,
        topic_name: &str,
        partition: i32,
        msgs: &[BorrowedMessage<'_>],
    ) {
        if !table.topics.contains_key(topic_name) {
            let name: Arc<str> = Arc::from(topic_name);
            table.topics.insert(
                Arc::clone(&name),
                TopicLanes {
                    name,
                    lanes: FastMap::default(),
                },
            );
        }
        let TopicLanes { name: topic, lanes } =
            table.topics.get_mut(topic_name).expect("inserted above");
        let entry = lanes.entry(partition).or_insert_with(|| {
            let mut lane = self.new_lane(topic, partition);
            if let Some(start) = table.start_offsets.remove(&(topic.to_string(), partition)) {
                lane.next_offset = start;
            }
            lane
        });
        for msg in msgs {
            let offset = msg.offset();
            if offset < entry.next_offset {
                // Fetched again after a pause or a seek: already handed over.
                continue;
            }
            if entry.next_offset >= 0 && offset > entry.next_offset {
                let skipped = offset - entry.next_offset;
                self.listener.metrics.offset_gaps.increment(skipped as u64);
                if skipped == 1 {
                    // Usually a transaction marker.
                    tracing::debug!(listener = %self.listener.info.id, topic = %topic, partition, offset, "one offset skipped");
                } else {
                    tracing::error!(listener = %self.listener.info.id, topic = %topic, partition, expected = entry.next_offset, offset, skipped,
                        "offsets skipped: records were deleted by retention before they were consumed (the consumer is too far behind), or removed by compaction");
                }
            }
            entry.next_offset = offset + 1;
            if entry.pending.is_empty() {
                table.with_pending.push((Arc::clone(topic), partition));
            }
            entry.pending.push(msg, &entry.shared.topic);
        }
    }

    /// End of a poll burst: hands each lane its records in one message (one
    /// wake-up per lane per burst, not per record) and pauses the partitions
    /// whose lane holds `max_in_flight` records or more.
    pub(super) fn flush(&self, consumer: &BaseConsumer<Self>) {
        let mut guard = self.lock();
        let table = &mut *guard;
        let max = self.listener.max_in_flight;
        for (topic, partition) in table.with_pending.drain(..) {
            let Some(entry) = table
                .topics
                .get_mut(&topic)
                .and_then(|l| l.lanes.get_mut(&partition))
            else {
                continue; // revoked within the burst: the records go with it
            };
            let batch = entry.pending.take();
            let n = batch.len();
            let queued = entry.shared.queued.fetch_add(n, Ordering::AcqRel) + n;
            if entry.tx.send(batch).is_err() {
                tracing::error!(listener = %self.listener.info.id, topic = %topic, partition,
                    "the partition's lane has stopped; its records will be delivered again after a restart or rebalance");
                continue;
            }
            if queued >= max
                && !table
                    .backpressured
                    .iter()
                    .any(|(t, p)| *t == topic && *p == partition)
            {
                if let Err(e) = consumer.pause(&Self::one(&topic, partition)) {
                    tracing::warn!(error = %e, "pausing a full partition failed");
                }
                table.backpressured.push((topic, partition));
            }
        }
    }

    /// Records handed to this consumer's lanes and not finished.
    pub(super) fn queued_total(&self) -> usize {
        self.lock()
            .topics
            .values()
            .flat_map(|t| t.lanes.values())
            .map(|e| e.shared.queued.load(Ordering::Acquire))
            .sum()
    }

    /// Resumes the partitions whose lane has drained to half of
    /// `max_in_flight`.
    pub(super) fn relieve_backpressure(&self, consumer: &BaseConsumer<Self>) {
        let mut guard = self.lock();
        if guard.backpressured.is_empty() {
            return;
        }
        let table = &mut *guard;
        let low_water = self.listener.max_in_flight / 2;
        let paused_all = self.paused_all.load(Ordering::Acquire);
        let topics = &table.topics;
        table.backpressured.retain(|(topic, partition)| {
            let Some(entry) = topics.get(topic).and_then(|l| l.lanes.get(partition)) else {
                return false; // revoked meanwhile
            };
            if entry.shared.queued.load(Ordering::Acquire) > low_water {
                return true;
            }
            if !paused_all {
                if let Err(e) = consumer.resume(&Self::one(topic, *partition)) {
                    tracing::warn!(error = %e, "resuming a partition failed");
                }
            }
            false
        });
    }

    pub(super) fn set_paused_all(&self, consumer: &BaseConsumer<Self>, paused: bool) {
        self.paused_all.store(paused, Ordering::Release);
        let Ok(assignment) = consumer.assignment() else {
            return;
        };
        let result = if paused {
            consumer.pause(&assignment)
        } else {
            // Partitions held back by a full lane stay paused.
            let table = self.lock();
            let mut tpl = TopicPartitionList::new();
            for e in assignment.elements() {
                if !table
                    .backpressured
                    .iter()
                    .any(|(t, p)| &**t == e.topic() && *p == e.partition())
                {
                    tpl.add_partition(e.topic(), e.partition());
                }
            }
            drop(table);
            consumer.resume(&tpl)
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, paused, "pause/resume failed");
        }
    }
}
