//! The consumer thread: one per concurrency slot. It owns an rdkafka
//! `BaseConsumer`, polls it, hands each record to its partition's lane,
//! pauses partitions whose lane is full, commits finished offsets and handles
//! rebalances. It never runs user code, so it always polls in time and the
//! group never evicts it for a slow handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};

use super::lanes::{ContainerContext, Control};
use super::Subscription;

/// How long one `poll` waits when there is nothing to read; also the longest
/// a commit, a resume or a stop request waits while the consumer is idle.
const POLL_TIMEOUT: Duration = Duration::from_millis(20);

/// Records dispatched between two commit checks in ack mode `batch`.
const RECORDS_PER_COMMIT: usize = 500;

/// The most records taken in one poll burst before they are handed to the
/// lanes, unless `max.poll.records` says otherwise (the Java client's
/// default).
pub(super) const MAX_POLL_RECORDS: usize = 500;

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

/// The longest a consumer stopped before its first assignment goes on
/// polling for it (see [`finish_joining`]). A broker completes a new
/// group's first rebalance after `group.initial.rebalance.delay.ms` (3 s
/// by default); a join usually takes milliseconds.
pub(super) const JOIN_BEFORE_LEAVE: Duration = Duration::from_secs(5);

/// A consumer stopped while it joins its group, before its first
/// assignment, goes on polling until the assignment arrives (at most
/// `timeout`), with its partitions paused so that no record is fetched.
///
/// librdkafka closing a consumer mid-join sends no `LeaveGroup` for the
/// member id the broker has just given it (KIP-394's `MEMBER_ID_REQUIRED`
/// round trip). The broker keeps that pending member for its whole
/// `session.timeout.ms` (45 s by default) and the group's next rebalance
/// waits for it: a service restarted right after a start would get no
/// partitions for that long. Once joined, the close leaves the group.
fn finish_joining(consumer: &BaseConsumer<ContainerContext>, timeout: Duration) {
    let ctx = consumer.context();
    if timeout.is_zero() || ctx.joined.load(Ordering::Acquire) {
        return;
    }
    // Applied by the assignment's own callback (`post_rebalance`).
    ctx.paused_all.store(true, Ordering::Release);
    let deadline = Instant::now() + timeout;
    while !ctx.joined.load(Ordering::Acquire) {
        if Instant::now() >= deadline {
            tracing::warn!(consumer = %ctx.name, ?timeout,
                "stopped while joining the group and not joined yet: the broker may hold the \
                 group's next rebalance until this member's session times out");
            return;
        }
        // Serves the rebalance callback; a record (none while paused) is
        // dropped unhandled and uncommitted, so it is delivered again.
        let _ = consumer.poll(POLL_TIMEOUT);
    }
}

/// The ids of consumer `index` of a listener named `name`
/// (`{listener id}-{index}`), as Spring's child containers get theirs
/// (`KafkaMessageListenerContainer`'s client-id suffix `-{index}`):
///
/// - `client.id`: the configured one with the suffix, else `name`;
/// - `group.instance.id` (static membership, KIP-345), when configured:
///   with the suffix, so that the consumers of one listener do not fence
///   each other (`FENCED_INSTANCE_ID`).
pub(super) fn consumer_ids(config: &mut rdkafka::ClientConfig, index: usize, name: &str) {
    let suffixed = |config: &rdkafka::ClientConfig, key: &str| {
        config
            .get(key)
            .filter(|id| !id.is_empty())
            .map(|id| format!("{id}-{index}"))
    };
    let client_id = suffixed(config, "client.id").unwrap_or_else(|| name.to_owned());
    config.set("client.id", client_id);
    if let Some(instance) = suffixed(config, "group.instance.id") {
        config.set("group.instance.id", instance);
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
    let max_poll_records = ctx.listener.max_poll_records;
    let mut msgs = Vec::with_capacity(max_poll_records);
    let mut throttled = false;
    let mut last_poll = Instant::now();
    while !stop.load(Ordering::Acquire) {
        loop {
            match control.try_recv() {
                Ok(Control::PauseAll) => ctx.set_paused_all(&consumer, true),
                Ok(Control::ResumeAll) => ctx.set_paused_all(&consumer, false),
                Ok(Control::Seek(request)) => ctx.seek(&consumer, &request),
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
        // already fetched, up to `max.poll.records`.
        let generation = ctx.lock().generation;
        let mut timeout = POLL_TIMEOUT;
        while !skip && msgs.len() < max_poll_records {
            match consumer.poll(timeout) {
                Some(Ok(msg)) => msgs.push(msg),
                Some(Err(e)) => {
                    ctx.report_error(&e, None);
                    break;
                }
                None => break,
            }
            timeout = Duration::ZERO;
        }
        let burst = msgs.len();
        if burst > 0 {
            if let Some(tx) = &ctx.tx {
                tx.refresh(&consumer, ctx.lock().generation);
            }
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
                // Not for a pattern: while it matches no topic the consumer does not
                // join, and the wait would only delay the stop.
    if matches!(subscription, Subscription::Topics(_)) {
        finish_joining(&consumer, ctx.join_before_leave);
    }
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
        let mut n = crate::util::lock(&self.remaining);
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.all_arrived.notify_all();
        }
    }

    fn wait(&self, timeout: Duration) {
        let n = crate::util::lock(&self.remaining);
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
        match crate::util::partition_counts(consumer.client(), Some(topic), Duration::from_secs(5))
        {
            Some(counts) => partitions += counts.iter().map(|(_, n)| *n as usize).sum::<usize>(),
            None => return,
        }
    }
    if partitions > 0 && concurrency > partitions {
        tracing::warn!(topics = ?topics, partitions, concurrency,
            "concurrency is greater than the number of partitions: {} consumer(s) of the group will sit idle",
            concurrency - partitions);
    }
}
