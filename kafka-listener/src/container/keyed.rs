//! A parallel lane: up to `parallelism` records of one partition in flight
//! at once, for listeners with `ordering = "key"` (records of one key one at
//! a time, in offset order) or `ordering = "none"` (any order).
//!
//! Every record's offset is registered with [`PartitionOffsets::begin`]
//! when it reaches the lane, in offset order, and finished when it was
//! handled or recovered, in whatever order that happens: the committable
//! offset stops at the first unfinished record, as in the sequential lane.
//! The record futures run inside the lane's task (one
//! [`FuturesUnordered`]), so an I/O-bound handler overlaps its waits while
//! the lane stays one task per partition. A record in back-off holds its
//! slot and, with `key`, its key; other keys go on.
//!
//! Memory: the records of a partition held here (in flight, waiting for a
//! slot, or waiting behind their key) are the lane's queue, bounded by
//! `max_in_flight` as for a sequential lane (the consumer thread pauses the
//! partition at that count).
//!
//! [`PartitionOffsets::begin`]: crate::ack::PartitionOffsets::begin

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use metrics::{gauge, Gauge};
use tokio::sync::mpsc;

use super::burst::Burst;
use super::lane::{Lane, Revoked};
use crate::listener::Ordering;
use crate::metrics::names::{KEYS_WAITING, OLDEST_IN_FLIGHT_SECONDS, RECORDS_IN_FLIGHT};
use crate::record::ConsumerRecord;

type RecordFuture<'l> =
    Pin<Box<dyn Future<Output = (ConsumerRecord, Result<(), Revoked>)> + Send + 'l>>;

fn handle<'l, 'a: 'l>(lane: &'l Lane<'a>, record: ConsumerRecord) -> RecordFuture<'l> {
    Box::pin(async move {
        let result = lane.handle_one(&record).await;
        (record, result)
    })
}

/// The listener's gauges, moved by this lane.
struct Gauges {
    in_flight: Gauge,
    keys_waiting: Gauge,
    oldest: Gauge,
}

/// Runs the lane until its channel closes (everything handed over is
/// handled) or the partition is revoked (the records in flight finish or
/// stop at their back-off; the rest are left for the partition's next
/// owner).
pub(super) async fn run(lane: &Lane<'_>, mut rx: mpsc::UnboundedReceiver<Burst>) {
    let shared = lane.shared;
    let listener = lane.listener;
    let by_key = listener.ordering == Ordering::Key;
    let parallelism = listener.parallelism.max(1);
    let id = listener.info.id.to_string();
    let gauges = Gauges {
        in_flight: gauge!(RECORDS_IN_FLIGHT, "listener" => id.clone()),
        keys_waiting: gauge!(KEYS_WAITING, "listener" => id.clone()),
        oldest: gauge!(OLDEST_IN_FLIGHT_SECONDS, "listener" => id,
            "topic" => shared.topic.to_string(), "partition" => shared.partition.to_string()),
    };
    // Arrived, not yet started (no free slot), in offset order.
    let mut ready: VecDeque<ConsumerRecord> = VecDeque::new();
    // `key` ordering: the keys with a record in flight, each with the
    // records of that key that arrived since, in offset order. `None` is
    // the chain of records without a key.
    let mut chains: HashMap<Option<Bytes>, VecDeque<ConsumerRecord>> = HashMap::new();
    let mut parked = 0usize;
    let mut started: HashMap<i64, Instant> = HashMap::new();
    let mut in_flight: FuturesUnordered<RecordFuture<'_>> = FuturesUnordered::new();
    let mut chunk = Vec::new();
    let mut closed = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Start what may start (nothing new once revoked).
        while in_flight.len() < parallelism && !shared.is_revoked() {
            let Some(record) = ready.pop_front() else {
                break;
            };
            if by_key {
                if let Some(chain) = chains.get_mut(&record.key) {
                    chain.push_back(record);
                    parked += 1;
                    gauges.keys_waiting.increment(1.0);
                    continue;
                }
                chains.insert(record.key.clone(), VecDeque::new());
            }
            started.insert(record.offset, Instant::now());
            gauges.in_flight.increment(1.0);
            in_flight.push(handle(lane, record));
        }
        if in_flight.is_empty() && (shared.is_revoked() || (closed && ready.is_empty())) {
            break;
        }
        tokio::select! {
            burst = rx.recv(), if !closed && !shared.is_revoked() => match burst {
                Some(burst) => {
                    burst.into_records(&shared.topic, shared.partition, &mut chunk);
                    for record in chunk.drain(..) {
                        shared.offsets.begin(record.offset);
                        ready.push_back(record);
                    }
                }
                None => closed = true,
            },
            Some((record, result)) = in_flight.next(), if !in_flight.is_empty() => {
                gauges.in_flight.decrement(1.0);
                started.remove(&record.offset);
                if result.is_err() {
                    // Revoked during a back-off: let the others finish or
                    // stop, then give the partition up.
                    drain(&mut in_flight, &gauges).await;
                    break;
                }
                shared.queued.fetch_sub(1, AtomicOrdering::AcqRel);
                if by_key {
                    let next = chains.get_mut(&record.key).and_then(VecDeque::pop_front);
                    match next {
                        Some(next) if !shared.is_revoked() => {
                            parked -= 1;
                            gauges.keys_waiting.decrement(1.0);
                            started.insert(next.offset, Instant::now());
                            gauges.in_flight.increment(1.0);
                            in_flight.push(handle(lane, next));
                        }
                        Some(_) => {}
                        None => {
                            chains.remove(&record.key);
                        }
                    }
                }
            },
            _ = tick.tick() => {
                let oldest = started.values().min().map_or(0.0, |t| t.elapsed().as_secs_f64());
                gauges.oldest.set(oldest);
            }
        }
    }
    if parked > 0 {
        gauges.keys_waiting.decrement(parked as f64);
    }
    gauges.oldest.set(0.0);
}

/// Waits for the records in flight (after a revoke they stop at their next
/// back-off).
async fn drain(in_flight: &mut FuturesUnordered<RecordFuture<'_>>, gauges: &Gauges) {
    while let Some((_, _)) = in_flight.next().await {
        gauges.in_flight.decrement(1.0);
    }
}
