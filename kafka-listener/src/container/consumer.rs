//! The consumer thread: one per concurrency slot. It owns an rdkafka
//! `BaseConsumer`, polls it, hands each record to its partition's lane,
//! pauses partitions whose lane is full, commits finished offsets and handles
//! rebalances. It never runs user code, so it always polls in time and the
//! group never evicts it for a slow handler.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::burst::{Burst, BurstBuilder, SegmentPool};
use super::lane::{run_lane, LaneShared};
use super::offsets::{CommitSignal, PartitionOffsets};
use super::{Assignments, Lag, ListenerRuntime, Observed, Progress, Subscription};

/// How long one `poll` waits when there is nothing to read; also the longest
/// a commit, a resume or a stop request waits while the consumer is idle.
const POLL_TIMEOUT: Duration = Duration::from_millis(20);

/// Records dispatched between two commit checks in ack mode `batch`.
const RECORDS_PER_COMMIT: usize = 500;

/// The most records taken in one poll burst before they are handed to the
/// lanes (Spring's `max.poll.records` default).
const MAX_POLL_RECORDS: usize = 500;

/// A map looked up once per record by the consumer thread: keyed by topic
/// names and partition numbers from the broker, so a fast hash (FxHash, as
/// in rustc) fits better than the default DoS-resistant SipHash.
type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

#[derive(Debug, Default, Clone, Copy)]
struct FxHasher(u64);

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let mut rest = [0u8; 8];
        let tail = chunks.remainder();
        rest[..tail.len()].copy_from_slice(tail);
        self.add(u64::from_le_bytes(rest) ^ ((tail.len() as u64) << 56));
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_i32(&mut self, i: i32) {
        self.add(u64::from(i as u32));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The most records one consumer's lanes hold (handed over, not finished)
/// before the consumer thread stops taking more, resuming at half: enough
/// to keep the tokio workers busy between two bursts, few enough that
/// memory does not grow with the consumer's lag (the per-partition
/// `max_in_flight` pause remains the hard bound).
const CONSUMER_IN_FLIGHT: usize = 10 * MAX_POLL_RECORDS;

/// The longest the consumer thread goes without polling while its lanes
/// are full, so that rebalances, errors and commit results are served.
const THROTTLE_MAX: Duration = Duration::from_millis(100);

/// How long the consumer thread sleeps between two looks at full lanes.
const THROTTLE_SLEEP: Duration = Duration::from_micros(500);

/// Requests from the container to its consumer threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    PauseAll,
    ResumeAll,
}

struct LaneEntry {
    shared: Arc<LaneShared>,
    tx: mpsc::UnboundedSender<Burst>,
    /// Records of the current poll burst, handed over together at its end.
    pending: BurstBuilder,
    /// The offset after the last record handed over (-1: none yet).
    next_offset: i64,
    /// The last offset committed for this partition by this consumer.
    committed: i64,
    exit: Receiver<()>,
}

struct TopicLanes {
    name: Arc<str>,
    lanes: FastMap<i32, LaneEntry>,
}

#[derive(Default)]
struct LaneTable {
    topics: FastMap<Arc<str>, TopicLanes>,
    /// Partitions paused because their lane was full.
    backpressured: Vec<(Arc<str>, i32)>,
    /// Lanes with records in `pending`.
    with_pending: Vec<(Arc<str>, i32)>,
    /// The committed offsets read when partitions were assigned: where each
    /// new lane's first record should be.
    start_offsets: HashMap<(String, i32), i64>,
    /// Counts rebalances (revokes and assignments) seen by this consumer.
    generation: u64,
}

/// The rdkafka context of one consumer: holds the lanes so that the
/// rebalance callback can drain and commit them.
pub(crate) struct ContainerContext {
    listener: Arc<ListenerRuntime>,
    runtime: tokio::runtime::Handle,
    table: Mutex<LaneTable>,
    /// Buffers for the records' keys and values, reused.
    pool: Arc<SegmentPool>,
    signal: Arc<CommitSignal>,
    paused_all: AtomicBool,
    drain_timeout: Duration,
    name: String,
    /// This consumer's slot in the container's table of assignments.
    assigned: Assignments,
    slot: usize,
    progress: Progress,
    lag: Lag,
}

impl ContainerContext {
    pub(crate) fn new(
        listener: Arc<ListenerRuntime>,
        runtime: tokio::runtime::Handle,
        drain_timeout: Duration,
        name: String,
        observed: Observed,
        slot: usize,
    ) -> Self {
        Self {
            progress: observed.progress,
            lag: observed.lag,
            assigned: observed.assigned,
            slot,
            listener,
            runtime,
            table: Mutex::new(LaneTable::default()),
            pool: Arc::default(),
            signal: Arc::new(CommitSignal::default()),
            paused_all: AtomicBool::new(false),
            drain_timeout,
            name,
        }
    }

    fn lock(&self) -> MutexGuard<'_, LaneTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn one(topic: &str, partition: i32) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::with_capacity(1);
        tpl.add_partition(topic, partition);
        tpl
    }

    fn new_lane(&self, topic: &Arc<str>, partition: i32) -> LaneEntry {
        let offsets = Arc::new(PartitionOffsets::new(
            Arc::clone(&self.signal),
            self.listener.info.ack_mode.is_immediate(),
        ));
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((topic.to_string(), partition), Arc::clone(&offsets));
        // The lane's own copy of the topic name: every record of the lane
        // holds it, and a count shared by all lanes would bounce between
        // the tokio workers.
        let shared = Arc::new(LaneShared::new(Arc::from(&**topic), partition, offsets));
        let (tx, rx) = mpsc::unbounded_channel();
        let (exit_tx, exit) = std::sync::mpsc::sync_channel(0);
        self.runtime.spawn(run_lane(
            Arc::clone(&shared),
            rx,
            Arc::clone(&self.listener),
            exit_tx,
        ));
        LaneEntry {
            shared,
            tx,
            pending: BurstBuilder::new(Arc::clone(&self.pool)),
            next_offset: -1,
            committed: -1,
            exit,
        }
    }

    /// Hands the records of one poll burst to their lanes' pending bursts,
    /// under one lock and with one lane lookup per run of records of the
    /// same partition (librdkafka delivers a fetched batch in a run).
    /// `generation` is [`LaneTable::generation`] from before the burst was
    /// polled: when a rebalance came in between (a revoke ends a burst),
    /// records of partitions no longer assigned are dropped, not given a
    /// new lane.
    fn dispatch(
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
    fn dispatch_run(
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
    fn flush(&self, consumer: &BaseConsumer<Self>) {
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
    fn queued_total(&self) -> usize {
        self.lock()
            .topics
            .values()
            .flat_map(|t| t.lanes.values())
            .map(|e| e.shared.queued.load(Ordering::Acquire))
            .sum()
    }

    /// Resumes the partitions whose lane has drained to half of
    /// `max_in_flight`.
    fn relieve_backpressure(&self, consumer: &BaseConsumer<Self>) {
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

    /// Commits every partition whose finished offset moved past the last
    /// commit (`force`: every partition with a finished offset).
    fn commit(
        &self,
        consumer: &BaseConsumer<Self>,
        mode: CommitMode,
        force: bool,
        only: Option<&TopicPartitionList>,
    ) {
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
    fn close_lanes(&self, consumer: &BaseConsumer<Self>, partitions: Option<&TopicPartitionList>) {
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
                    ));
                }
            }
        }
        let deadline = Instant::now() + self.drain_timeout;
        for (topic, partition, exit) in exits {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(RecvTimeoutError::Timeout) = exit.recv_timeout(left) {
                tracing::warn!(listener = %self.listener.info.id, topic = %topic, partition,
                    timeout_ms = self.drain_timeout.as_millis() as u64,
                    "the handler did not finish within the drain timeout; its record will be delivered again");
            }
        }
        let mut only = TopicPartitionList::new();
        for (topic, partition) in &closing {
            only.add_partition(topic, *partition);
        }
        self.commit(consumer, CommitMode::Sync, true, Some(&only));
        let mut table = self.lock();
        let mut progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        for (topic, partition) in &closing {
            if let Some(entry) = table
                .topics
                .get_mut(topic)
                .and_then(|l| l.lanes.remove(partition))
            {
                let key = (topic.to_string(), *partition);
                if progress
                    .get(&key)
                    .is_some_and(|o| Arc::ptr_eq(o, &entry.shared.offsets))
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

    /// Records this consumer's current assignment for
    /// [`super::ListenerContainer::assigned_partitions`].
    fn set_assigned(&self, consumer: &BaseConsumer<Self>) {
        let now: Vec<(String, i32)> = consumer
            .assignment()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect()
            })
            .unwrap_or_default();
        let mut all = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = all.get_mut(self.slot) {
            *slot = now;
        }
    }

    fn set_paused_all(&self, consumer: &BaseConsumer<Self>, paused: bool) {
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

impl ClientContext for ContainerContext {
    /// librdkafka's statistics (every `statistics.interval.ms`, 5 s by
    /// default here) give each partition's log end offset; the lag is the
    /// log end minus the offset the listener has *finished* (librdkafka's
    /// own `consumer_lag` counts records the poll thread took, including
    /// those still queued for the handler). Kept for
    /// [`super::ListenerContainer::lag`] and exported as a gauge.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let mut lag = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        for (topic, t) in &statistics.topics {
            for (&partition, p) in &t.partitions {
                // Partition -1 is librdkafka's internal "unassigned" one; a
                // negative high watermark is not known yet.
                if partition < 0 || p.hi_offset < 0 {
                    continue;
                }
                let key = (topic.clone(), partition);
                let finished = progress
                    .get(&key)
                    .map(|o| o.committable())
                    .filter(|&o| o >= 0)
                    .unwrap_or_else(|| p.committed_offset.max(p.lo_offset).max(0));
                let behind = (p.hi_offset - finished).max(0);
                lag.insert(key, behind);
                metrics::gauge!("kafka_listener_consumer_lag",
                    "listener" => self.listener.info.id.to_string(),
                    "topic" => topic.clone(),
                    "partition" => partition.to_string())
                .set(behind as f64);
            }
        }
    }
}

impl ConsumerContext for ContainerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                self.lock().generation += 1;
                self.set_assigned(consumer);
                tracing::info!(consumer = %self.name, partitions = tpl.count(), "partitions revoked; draining and committing");
                self.listener.metrics.rebalances.increment(1);
                self.close_lanes(consumer, Some(tpl));
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => {
                tracing::error!(consumer = %self.name, error = %e, "rebalance error")
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            self.set_assigned(consumer);
        }
        if let Rebalance::Assign(tpl) = rebalance {
            self.lock().generation += 1;
            self.set_assigned(consumer);
            // Remember where each partition should start, to notice records
            // lost to retention between the committed offset and the log
            // start (librdkafka resets to the earliest offset silently).
            if let Ok(committed) =
                consumer.committed_offsets((*tpl).clone(), Duration::from_secs(5))
            {
                let mut table = self.lock();
                for e in committed.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        table
                            .start_offsets
                            .insert((e.topic().to_owned(), e.partition()), o);
                    }
                }
            }
            let partitions: Vec<String> = tpl
                .elements()
                .iter()
                .map(|e| format!("{}-{}", e.topic(), e.partition()))
                .collect();
            tracing::info!(consumer = %self.name, ?partitions, "partitions assigned");
            // librdkafka keeps a partition's pause flag across rebalances: a
            // partition paused for back-pressure before it was revoked would
            // come back paused with no lane to resume it. New lanes start
            // empty, so every assigned partition starts resumed (or paused
            // when the whole container is paused).
            let result = if self.paused_all.load(Ordering::Acquire) {
                consumer.pause(tpl)
            } else {
                consumer.resume(tpl)
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "setting the pause state of assigned partitions failed");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            // Try again with the next commit: forget that these offsets were
            // committed by lowering the mark of each lane still owned.
            {
                let mut table = self.lock();
                for e in offsets.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        if let Some(entry) = table
                            .topics
                            .get_mut(e.topic())
                            .and_then(|l| l.lanes.get_mut(&e.partition()))
                        {
                            if entry.committed >= o {
                                entry.committed = o - 1;
                            }
                        }
                    }
                }
            }
            self.signal.mark(false);
            self.listener.metrics.commit_failures.increment(1);
            tracing::warn!(consumer = %self.name, error = %e, ?offsets, "offset commit failed; the records may be delivered again");
        }
    }
}

/// The consumer thread's loop: runs until `stop` is set, then drains the
/// lanes, commits and leaves the group.
pub(crate) fn run(
    consumer: BaseConsumer<ContainerContext>,
    subscription: Subscription,
    stop: Arc<AtomicBool>,
    control: Receiver<Control>,
    check_partitions: bool,
    gate: Arc<StopGate>,
) {
    let mut gate = GateGuard(Some(gate));
    let ctx = consumer.context().clone();
    let subscribed = match &subscription {
        Subscription::Topics(topics) => {
            let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
            consumer.subscribe(&topics)
        }
        Subscription::Pattern(pattern) => consumer.subscribe(&[pattern.as_str()]),
    };
    if let Err(e) = subscribed {
        tracing::error!(consumer = %ctx.name, error = %e, "subscribe failed; this consumer does not start");
        return; // the guard tells the gate
    }
    if check_partitions {
        warn_idle_consumers(&consumer, &subscription, ctx.listener.concurrency);
    }
    let interval = ctx.listener.commit_interval;
    let mut last_commit = Instant::now();
    let mut since_commit = 0usize;
    let mut msgs = Vec::with_capacity(MAX_POLL_RECORDS);
    let mut throttled = false;
    let mut last_poll = Instant::now();
    while !stop.load(Ordering::Acquire) {
        loop {
            match control.try_recv() {
                Ok(Control::PauseAll) => ctx.set_paused_all(&consumer, true),
                Ok(Control::ResumeAll) => ctx.set_paused_all(&consumer, false),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
            }
        }
        ctx.relieve_backpressure(&consumer);
        // Consumer-wide bound on the records in the lanes: past it, the
        // thread stops taking records (librdkafka's prefetch fills up to
        // its own bound, then stops fetching) until the lanes are down to
        // half, but polls at least every THROTTLE_MAX so that rebalances
        // and errors are still served; a lane that does not drain is held
        // back by its partition's pause at `max_in_flight`.
        let queued = ctx.queued_total();
        throttled = if throttled {
            queued > CONSUMER_IN_FLIGHT / 2
        } else {
            queued >= CONSUMER_IN_FLIGHT
        };
        let skip = throttled && last_poll.elapsed() < THROTTLE_MAX;
        if skip {
            std::thread::sleep(THROTTLE_SLEEP);
        } else {
            last_poll = Instant::now();
        }
        // One poll burst: wait for the first record, then take what is
        // already fetched, up to MAX_POLL_RECORDS.
        let generation = ctx.lock().generation;
        let mut timeout = POLL_TIMEOUT;
        while !skip && msgs.len() < MAX_POLL_RECORDS {
            match consumer.poll(timeout) {
                Some(Ok(msg)) => msgs.push(msg),
                Some(Err(e)) => {
                    tracing::warn!(consumer = %ctx.name, error = %e, "consumer error");
                    break;
                }
                None => break,
            }
            timeout = Duration::ZERO;
        }
        let burst = msgs.len();
        if burst > 0 {
            ctx.dispatch(&consumer, &msgs, generation);
            msgs.clear();
        }
        ctx.flush(&consumer);
        since_commit += burst;
        let idle = burst == 0 && !skip;
        if ctx.signal.is_urgent()
            || idle
            || since_commit >= RECORDS_PER_COMMIT
            || last_commit.elapsed() >= interval
        {
            let (dirty, _) = ctx.signal.take();
            if dirty {
                ctx.commit(&consumer, CommitMode::Async, false, None);
            }
            last_commit = Instant::now();
            since_commit = 0;
        }
    }
    drop(msgs); // empty: every burst is dispatched
    tracing::info!(consumer = %ctx.name, "stopping: draining lanes and committing");
    ctx.close_lanes(&consumer, None);
    // Leave the group only when every consumer of the container has
    // committed: the first one to leave starts a rebalance, during which
    // some brokers refuse the others' commits.
    gate.arrive_and_wait(ctx.drain_timeout);
    consumer.unsubscribe();
    drop(consumer);
    tracing::info!(consumer = %ctx.name, "stopped");
}

/// Lets the consumers of one container leave their group together, after
/// all of them have committed.
#[derive(Debug)]
pub(crate) struct StopGate {
    remaining: Mutex<usize>,
    all_arrived: Condvar,
}

impl StopGate {
    pub(crate) fn new(consumers: usize) -> Self {
        Self {
            remaining: Mutex::new(consumers),
            all_arrived: Condvar::new(),
        }
    }

    fn arrive(&self) {
        let mut n = self.remaining.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.all_arrived.notify_all();
        }
    }

    fn wait(&self, timeout: Duration) {
        let n = self.remaining.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.all_arrived.wait_timeout_while(n, timeout, |n| *n > 0);
    }
}

/// Arrives at the gate once, also when the thread returns early.
struct GateGuard(Option<Arc<StopGate>>);

impl GateGuard {
    fn arrive_and_wait(&mut self, timeout: Duration) {
        if let Some(gate) = self.0.take() {
            gate.arrive();
            gate.wait(timeout);
        }
    }
}

impl Drop for GateGuard {
    fn drop(&mut self) {
        if let Some(gate) = self.0.take() {
            gate.arrive();
        }
    }
}

fn warn_idle_consumers(
    consumer: &BaseConsumer<ContainerContext>,
    subscription: &Subscription,
    concurrency: usize,
) {
    let Subscription::Topics(topics) = subscription else {
        return;
    };
    let mut partitions = 0usize;
    for topic in topics {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(md) => {
                partitions += md
                    .topics()
                    .iter()
                    .map(|t| t.partitions().len())
                    .sum::<usize>()
            }
            Err(_) => return,
        }
    }
    if partitions > 0 && concurrency > partitions {
        tracing::warn!(topics = ?topics, partitions, concurrency,
            "concurrency is greater than the number of partitions: {} consumer(s) of the group will sit idle",
            concurrency - partitions);
    }
}
