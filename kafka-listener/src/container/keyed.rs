//! A parallel lane: up to `parallelism` records of one partition in flight
//! at once, for listeners with `ordering = "key"` (records of one key one at
//! a time, in offset order) or `ordering = "none"` (any order).
//!
//! Every record's offset is registered when it reaches the lane, in offset
//! order, and finished when it was handled or recovered, in whatever order
//! that happens: the committable offset stops at the first unfinished
//! record, as in the sequential lane. In the automatic ack modes the lane
//! keeps that list itself (only its task touches it); in the manual modes
//! [`PartitionOffsets`] keeps it, since the acknowledgments finish the
//! offsets.
//!
//! A record is started by polling its future once in the lane's task: a
//! handler that does not wait (CPU-bound) is done there and then, with no
//! task, no clock read and no key bookkeeping, so `key` costs little more
//! than `partition` on such a handler. A record whose handler waits joins
//! the records in flight (one [`FuturesUnordered`] inside the lane's task),
//! so an I/O-bound handler overlaps its waits while the lane stays one task
//! per partition. With `key`, a waiting record's key holds a chain: later
//! records of that key wait in it and start one at a time, in offset order,
//! as each one finishes. A record in back-off holds its slot and, with
//! `key`, its key; other keys go on.
//!
//! Keys are told apart by a 64-bit hash (foldhash, seeded at random) of
//! their bytes: two keys
//! with the same hash are ordered as one key, which is stricter than asked
//! and never reorders a key. Records without a key share one chain, so they
//! are ordered as in `partition` mode.
//!
//! Memory: the records of a partition held here (in flight, waiting for a
//! slot, or waiting behind their key) are the lane's queue, bounded by
//! `max_in_flight` as for a sequential lane (the consumer thread pauses the
//! partition at that count).
//!
//! [`PartitionOffsets`]: crate::ack::PartitionOffsets

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use metrics::{gauge, Gauge};
use tokio::sync::mpsc;

use super::burst::Burst;
use super::lane::{Lane, Revoked};
use crate::listener::Ordering;
use crate::metrics::names::{KEYS_WAITING, OLDEST_IN_FLIGHT_SECONDS, RECORDS_IN_FLIGHT};
use crate::record::ConsumerRecord;

type Handled = (ConsumerRecord, Result<(), Revoked>);

type RecordFuture<'l> = Pin<Box<dyn Future<Output = Handled> + Send + 'l>>;

fn handle<'l, 'a: 'l>(lane: &'l Lane<'a>, record: ConsumerRecord) -> RecordFuture<'l> {
    Box::pin(async move {
        let result = lane.handle_one(&record).await;
        (record, result)
    })
}

/// A record whose handler waited: its future, when it started waiting, and
/// its key's hash (`key` ordering).
struct InFlight<'l> {
    fut: RecordFuture<'l>,
    started: Instant,
    key: u64,
}

impl Future for InFlight<'_> {
    type Output = (Handled, u64);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let key = self.key;
        self.fut.as_mut().poll(cx).map(|handled| (handled, key))
    }
}

/// Hashes the `u64` key hashes of the chains map as themselves.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The listener's gauges, moved by this lane.
struct Gauges {
    in_flight: Gauge,
    keys_waiting: Gauge,
    oldest: Gauge,
}

/// The lane's state, owned by its task.
struct Keyed<'l, 'a> {
    lane: &'l Lane<'a>,
    by_key: bool,
    manual: bool,
    parallelism: usize,
    gauges: Gauges,
    key_hasher: foldhash::fast::RandomState,
    /// Arrived, not yet started (no free slot), in offset order.
    ready: VecDeque<ConsumerRecord>,
    /// `key` ordering: the keys (by hash) with a record in flight, each
    /// with the records of that key that arrived since, in offset order.
    chains: HashMap<u64, VecDeque<ConsumerRecord>, BuildHasherDefault<IdentityHasher>>,
    /// Records waiting in `chains`.
    parked: usize,
    in_flight: FuturesUnordered<InFlight<'l>>,
    /// Automatic ack modes: the offsets not committable yet, in offset
    /// order, each with whether it is finished.
    unfinished: VecDeque<(i64, bool)>,
    /// Finished since the last [`Keyed::flush`]: how many, and the last
    /// offset the committable position moved to.
    done: usize,
    advanced: Option<i64>,
}

impl<'l, 'a> Keyed<'l, 'a> {
    fn key_hash(&self, record: &ConsumerRecord) -> u64 {
        match &record.key {
            Some(key) => self.key_hasher.hash_one(&key[..]),
            // Records without a key: one chain, apart from every key.
            None => self.key_hasher.hash_one(0xA5u8),
        }
    }

    /// Registers an arrived record.
    fn arrive(&mut self, record: ConsumerRecord) {
        if self.manual {
            self.lane.shared.offsets.begin(record.offset);
        } else {
            self.unfinished.push_back((record.offset, false));
        }
        self.ready.push_back(record);
    }

    /// Marks a handled (or recovered) record finished.
    fn finish(&mut self, offset: i64) {
        self.done += 1;
        if self.manual {
            // The acknowledgment finishes the offset.
            return;
        }
        match self.unfinished.front() {
            // The oldest record finished (a handler that does not wait
            // finishes them in order): no search.
            Some(&(o, _)) if o == offset => {
                self.unfinished.pop_front();
                self.advanced = Some(o);
            }
            _ => {
                if let Ok(i) = self.unfinished.binary_search_by_key(&offset, |(o, _)| *o) {
                    self.unfinished[i].1 = true;
                }
            }
        }
        while let Some(&(o, true)) = self.unfinished.front() {
            self.unfinished.pop_front();
            self.advanced = Some(o);
        }
    }

    /// Tells the consumer thread what finished since the last flush: the
    /// queue's length and the committable offset.
    fn flush(&mut self) {
        let shared = self.lane.shared;
        if self.done > 0 {
            shared.queued.fetch_sub(self.done, AtomicOrdering::AcqRel);
            self.done = 0;
        }
        if let Some(offset) = self.advanced.take() {
            shared.offsets.complete_in_order(offset);
        }
    }

    /// Starts `record` (whose key hashes to `key`): polls it once, so a
    /// handler that does not wait finishes here; one that waits joins the
    /// records in flight and, with `key` ordering, holds its key's chain.
    /// Returns whether it is in flight.
    async fn start(&mut self, record: ConsumerRecord, key: u64) -> Result<bool, Revoked> {
        let mut fut = handle(self.lane, record);
        match futures::poll!(fut.as_mut()) {
            Poll::Ready((record, result)) => {
                result?;
                self.finish(record.offset);
                Ok(false)
            }
            Poll::Pending => {
                if self.by_key {
                    self.chains.entry(key).or_default();
                }
                self.gauges.in_flight.increment(1.0);
                self.in_flight.push(InFlight {
                    fut,
                    started: Instant::now(),
                    key,
                });
                Ok(true)
            }
        }
    }

    /// Starts what may start from `ready` (nothing once revoked).
    async fn start_ready(&mut self) -> Result<(), Revoked> {
        while self.in_flight.len() < self.parallelism && !self.lane.shared.is_revoked() {
            let Some(record) = self.ready.pop_front() else {
                break;
            };
            let key = if self.by_key {
                let key = self.key_hash(&record);
                if let Some(chain) = self.chains.get_mut(&key) {
                    chain.push_back(record);
                    self.parked += 1;
                    self.gauges.keys_waiting.increment(1.0);
                    continue;
                }
                key
            } else {
                0
            };
            self.start(record, key).await?;
        }
        Ok(())
    }

    /// A record in flight is done: finishes it and, with `key` ordering,
    /// starts the next records of its key until one waits.
    async fn complete(&mut self, (record, result): Handled, key: u64) -> Result<(), Revoked> {
        self.gauges.in_flight.decrement(1.0);
        result?;
        self.finish(record.offset);
        if !self.by_key {
            return Ok(());
        }
        loop {
            if self.lane.shared.is_revoked() {
                // The chain's records are left for the partition's next owner.
                return Ok(());
            }
            let Some(next) = self.chains.get_mut(&key).and_then(VecDeque::pop_front) else {
                self.chains.remove(&key);
                return Ok(());
            };
            self.parked -= 1;
            self.gauges.keys_waiting.decrement(1.0);
            if self.start(next, key).await? {
                return Ok(());
            }
        }
    }

    /// Waits for the records in flight (after a revoke they stop at their
    /// next back-off).
    async fn drain(&mut self) {
        while self.in_flight.next().await.is_some() {
            self.gauges.in_flight.decrement(1.0);
        }
    }
}

/// Runs the lane until its channel closes (everything handed over is
/// handled) or the partition is revoked (the records in flight finish or
/// stop at their back-off; the rest are left for the partition's next
/// owner).
pub(super) async fn run(lane: &Lane<'_>, mut rx: mpsc::UnboundedReceiver<Burst>) {
    let shared = lane.shared;
    let listener = lane.listener;
    let id = listener.info.id.to_string();
    let mut k = Keyed {
        lane,
        by_key: listener.ordering == Ordering::Key,
        manual: lane.manual(),
        parallelism: listener.parallelism.max(1),
        gauges: Gauges {
            in_flight: gauge!(RECORDS_IN_FLIGHT, "listener" => id.clone()),
            keys_waiting: gauge!(KEYS_WAITING, "listener" => id.clone()),
            oldest: gauge!(OLDEST_IN_FLIGHT_SECONDS, "listener" => id,
                "topic" => shared.topic.to_string(), "partition" => shared.partition.to_string()),
        },
        key_hasher: foldhash::fast::RandomState::default(),
        ready: VecDeque::new(),
        chains: HashMap::default(),
        parked: 0,
        in_flight: FuturesUnordered::new(),
        unfinished: VecDeque::new(),
        done: 0,
        advanced: None,
    };
    let mut chunk = Vec::new();
    let mut closed = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let started = k.start_ready().await;
        k.flush();
        if started.is_err() {
            // Revoked during a back-off: let the others finish or stop,
            // then give the partition up.
            k.drain().await;
            break;
        }
        if k.in_flight.is_empty() && (shared.is_revoked() || (closed && k.ready.is_empty())) {
            break;
        }
        tokio::select! {
            burst = rx.recv(), if !closed && !shared.is_revoked() => match burst {
                Some(burst) => {
                    burst.into_records(&shared.topic, shared.partition, &mut chunk);
                    for record in chunk.drain(..) {
                        k.arrive(record);
                    }
                }
                None => closed = true,
            },
            Some((handled, key)) = k.in_flight.next(), if !k.in_flight.is_empty() => {
                let result = k.complete(handled, key).await;
                k.flush();
                if result.is_err() {
                    k.drain().await;
                    break;
                }
            },
            _ = tick.tick() => {
                let oldest = k.in_flight.iter().map(|f| f.started).min();
                k.gauges.oldest.set(oldest.map_or(0.0, |t| t.elapsed().as_secs_f64()));
                crate::util::lock(&shared.watch).oldest_since_ms =
                    oldest.map(|t| crate::util::now_ms() - t.elapsed().as_millis() as i64);
            }
        }
    }
    if k.parked > 0 {
        k.gauges.keys_waiting.decrement(k.parked as f64);
    }
    k.gauges.oldest.set(0.0);
}
