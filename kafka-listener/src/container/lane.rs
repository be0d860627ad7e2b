//! A partition lane: the task that hands one partition's records to the
//! handler, one at a time (or one batch at a time) in offset order, retries
//! failures with back-off and marks finished offsets.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::{mpsc, Notify};

use super::burst::Burst;
use super::ListenerRuntime;
use crate::ack::{AckHandle, PartitionOffsets};
use crate::context::ListenerContext;
use crate::error::{ErrorKind, ListenerError};
use crate::handler::ErasedHandler;
use crate::record::ConsumerRecord;
use crate::util::BoxFuture;

/// State of one lane shared with the consumer thread.
#[derive(Debug)]
pub(crate) struct LaneShared {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) offsets: Arc<PartitionOffsets>,
    /// Set when the partition is revoked or the container stops: the lane
    /// finishes the record in hand and drops the rest.
    revoked: AtomicBool,
    wake: Notify,
    /// Records handed to the lane and not yet finished: the consumer thread
    /// pauses the partition when this reaches `max_in_flight`.
    pub(crate) queued: AtomicUsize,
    /// The consumer's transactional producer (`transactional = true`).
    pub(crate) tx: Option<Arc<super::tx::ConsumerTx>>,
    /// What observers see of the lane ([`super::observe`]).
    pub(crate) watch: Mutex<super::observe::LaneWatch>,
    /// An ordered lane: when the record (or batch) in hand started, ms since
    /// the Unix epoch; 0 between records. Two relaxed stores and a clock
    /// read per call, for the console's oldest in-flight age.
    pub(crate) in_hand_since_ms: AtomicI64,
}

impl LaneShared {
    pub(crate) fn new(
        topic: Arc<str>,
        partition: i32,
        offsets: Arc<PartitionOffsets>,
        tx: Option<Arc<super::tx::ConsumerTx>>,
    ) -> Self {
        Self {
            tx,
            topic,
            partition,
            offsets,
            revoked: AtomicBool::new(false),
            wake: Notify::new(),
            queued: AtomicUsize::new(0),
            watch: Mutex::default(),
            in_hand_since_ms: AtomicI64::new(0),
        }
    }

    /// Asks the lane to stop after the record in hand (cuts a back-off short).
    pub(crate) fn revoke(&self) {
        self.revoked.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    pub(crate) fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }

    /// Sleeps for `delay` unless revoked first; returns false when revoked.
    async fn pause(&self, delay: Duration) -> bool {
        if self.is_revoked() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => !self.is_revoked(),
            _ = self.wake.notified() => false,
        }
    }
}

/// Attempt counts of records whose back-off was cut short by a revoke, by
/// topic and partition (at most one per partition), so that a partition
/// assigned back to this instance does not start the record over.
#[derive(Debug, Default)]
pub(crate) struct RetryMemory {
    map: std::sync::Mutex<std::collections::HashMap<PartitionKey, (i64, u32)>>,
    /// Whether `map` may hold something: checked on every record, so that
    /// the lanes do not take the lock when it is empty (nearly always).
    any: AtomicBool,
}

/// A topic and partition.
type PartitionKey = (Arc<str>, i32);

impl RetryMemory {
    fn remember(&self, record: &ConsumerRecord, attempts: u32) {
        let mut m = crate::util::lock(&self.map);
        m.insert(
            (Arc::clone(&record.topic), record.partition),
            (record.offset, attempts),
        );
        self.any.store(true, Ordering::Release);
    }

    /// The attempts already made on `record` here, if its back-off was cut
    /// short; forgets them.
    fn take(&self, record: &ConsumerRecord) -> Option<u32> {
        // A remembered count is stored by a lane that then ends, before the
        // consumer thread (which waits for it) starts the partition's next
        // lane: the flag set with it is seen here.
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let mut m = crate::util::lock(&self.map);
        if m.is_empty() {
            self.any.store(false, Ordering::Release);
            return None;
        }
        let key = (Arc::clone(&record.topic), record.partition);
        match m.get(&key) {
            Some(&(offset, attempts)) if offset == record.offset => {
                m.remove(&key);
                Some(attempts)
            }
            // Earlier records replayed first (their commit was refused
            // during the rebalance): keep waiting for the record.
            Some(&(offset, _)) if record.offset < offset => None,
            Some(_) => {
                // The partition moved past that record elsewhere.
                m.remove(&key);
                None
            }
            None => None,
        }
    }
}

/// The record or batch was abandoned because the partition was revoked.
pub(super) struct Revoked;

/// Runs the lane until its channel closes or it is revoked. `_exit` is
/// dropped on return (also on a panic), which tells the consumer thread that
/// the lane has let go of its partition.
pub(crate) async fn run_lane(
    shared: Arc<LaneShared>,
    mut rx: mpsc::UnboundedReceiver<Burst>,
    listener: Arc<ListenerRuntime>,
    _exit: std::sync::mpsc::SyncSender<()>,
) {
    let lane = Lane {
        shared: &shared,
        listener: &listener,
        calls: std::sync::atomic::AtomicU32::new(0),
    };
    if listener.parallelism > 1 || listener.ordering != crate::listener::Ordering::Partition {
        super::keyed::run(&lane, rx).await;
        return;
    }
    let batch = listener.handler.is_batch();
    let step = if batch { listener.max_batch } else { 1 };
    // Reused from burst to burst (emptied after each, so that handled
    // records are not kept alive while the lane waits).
    let mut chunk = Vec::new();
    while let Some(burst) = rx.recv().await {
        burst.into_records(&shared.topic, shared.partition, &mut chunk);
        if batch {
            // Fill the batch from what is already queued.
            while chunk.len() < listener.max_batch {
                match rx.try_recv() {
                    Ok(more) => more.into_records(&shared.topic, shared.partition, &mut chunk),
                    Err(_) => break,
                }
            }
        }
        let len = chunk.len();
        for records in chunk.chunks(step) {
            if shared.is_revoked() || lane.wait_for_acks().await.is_err() {
                return;
            }
            shared
                .in_hand_since_ms
                .store(crate::util::now_ms(), Ordering::Relaxed);
            let processed = lane.process(records).await;
            shared.in_hand_since_ms.store(0, Ordering::Relaxed);
            if processed.is_err() {
                return;
            }
        }
        chunk.clear();
        shared.queued.fetch_sub(len, Ordering::AcqRel);
    }
}

/// The wait between two tries of a recoverer that failed (a dead-letter
/// topic that does not answer): 200 ms doubling to 12.8 s.
static RECOVERER_BACKOFF: std::sync::LazyLock<crate::retry::BackOff> =
    std::sync::LazyLock::new(|| {
        crate::retry::BackOff::exponential(
            Duration::from_millis(200),
            2.0,
            Duration::from_millis(12_800),
        )
    });

/// One handler call in this many is timed for the latency histogram.
const TIMING_SAMPLE: u32 = 16;

pub(super) struct Lane<'a> {
    pub(super) shared: &'a LaneShared,
    pub(super) listener: &'a ListenerRuntime,
    calls: std::sync::atomic::AtomicU32,
}

impl Lane<'_> {
    fn timing_tick(&self) -> bool {
        // Only this lane's task touches the counter: relaxed is enough.
        self.calls.fetch_add(1, Ordering::Relaxed) % TIMING_SAMPLE == 0
    }

    pub(super) fn manual(&self) -> bool {
        self.listener.info.ack_mode.is_manual()
    }

    /// Manual ack modes: bounds the offsets that wait for an acknowledgment.
    async fn wait_for_acks(&self) -> Result<(), Revoked> {
        if !self.manual() {
            return Ok(());
        }
        let cap = self.listener.max_in_flight * 4;
        let mut warned = false;
        while self.shared.offsets.waiting() >= cap {
            if !warned {
                tracing::warn!(listener = %self.listener.info.id, topic = %self.shared.topic, partition = self.shared.partition,
                    waiting = cap, "too many unacknowledged records; the partition waits for acknowledgments");
                warned = true;
            }
            if !self.shared.pause(Duration::from_millis(10)).await {
                return Err(Revoked);
            }
        }
        Ok(())
    }

    /// Rate-limited listeners: waits for a permit per record. The lane
    /// waits, not the handler: the partition's queue fills and the consumer
    /// thread pauses it, while the consumer keeps polling.
    pub(super) async fn admit(&self, records: usize) -> Result<(), Revoked> {
        let Some(limiter) = &self.listener.rate_limiter else {
            return Ok(());
        };
        for _ in 0..records {
            while let Err(wait) = limiter.try_acquire(Instant::now()) {
                if !self.shared.pause(wait).await {
                    return Err(Revoked);
                }
            }
        }
        Ok(())
    }

    /// Parallel lanes: handles one record (rate limit, retries, recoverer).
    /// The caller marks it finished (in manual ack modes the
    /// acknowledgment does).
    pub(super) async fn handle_one(&self, record: &ConsumerRecord) -> Result<(), Revoked> {
        if !self.keeps(record) {
            if self.manual() {
                // Registered when it arrived; no acknowledgment will come.
                self.shared.offsets.finish(record.offset);
            }
            return Ok(());
        }
        self.admit(1).await?;
        let _ = self.attempts(std::slice::from_ref(record)).await?;
        Ok(())
    }

    /// Whether the listener's filter keeps `record` (counted when not).
    fn keeps(&self, record: &ConsumerRecord) -> bool {
        let kept = self
            .listener
            .filter
            .as_ref()
            .is_none_or(|keep| keep(record));
        if !kept {
            self.listener.metrics.filtered.increment(1);
        }
        kept
    }

    /// Handles the records (one record, or one batch) the filter keeps,
    /// splitting a batch at a failed index, and finishes the others.
    async fn process(&self, records: &[ConsumerRecord]) -> Result<(), Revoked> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        let kept: Vec<ConsumerRecord>;
        let handled: &[ConsumerRecord] = match records {
            _ if self.listener.filter.is_none() => records,
            // A record listener's one record: no copy.
            [one] => {
                if self.keeps(one) {
                    records
                } else {
                    &[]
                }
            }
            _ => {
                kept = records.iter().filter(|r| self.keeps(r)).cloned().collect();
                &kept
            }
        };
        if !handled.is_empty() {
            self.process_kept(handled).await?;
        }
        if self.manual() {
            // Records the filter dropped after the last one handled need no
            // acknowledgment: finished here, committed once everything
            // before them is.
            if handled.last().map(|r| r.offset) != Some(last.offset) {
                self.shared.offsets.begin(last.offset);
                self.shared.offsets.finish(last.offset);
            }
        } else {
            self.shared.offsets.complete_in_order(last.offset);
        }
        Ok(())
    }

    /// [`Self::process`] of the records the filter kept.
    async fn process_kept(&self, records: &[ConsumerRecord]) -> Result<(), Revoked> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        self.admit(records.len()).await?;
        if self.manual() {
            self.shared.offsets.begin(last.offset);
        }
        let mut start = 0;
        while start < records.len() {
            let rest = &records[start..];
            match self.attempts(rest).await? {
                Ok(()) => break,
                // A batch listener named the failed record: the ones before it
                // are done, the failed one is retried alone, the rest go again.
                Err(i) => {
                    if i > 0 && !self.manual() {
                        self.shared.offsets.complete_in_order(rest[i - 1].offset);
                    }
                    // A single record cannot be split further: Ok(Err(_)) is impossible.
                    let _ = self.attempts(std::slice::from_ref(&rest[i])).await?;
                    start += i + 1;
                }
            }
        }
        // Handled records are finished by the caller, or in the manual ack
        // modes by the handler's acknowledgment.
        Ok(())
    }

    /// Calls the handler with retries. `Ok(Ok(()))`: handled or recovered.
    /// `Ok(Err(i))`: a batch listener reported record `i` as failed and
    /// the records from `i` on are not handled yet.
    async fn attempts(&self, records: &[ConsumerRecord]) -> Result<Result<(), usize>, Revoked> {
        let m = &self.listener.metrics;
        // A record from a retry topic waits until it is due (crate::retry_topics).
        if let Some(wait) = records
            .first()
            .filter(|_| self.listener.retry_topics)
            .and_then(crate::retry_topics::wait_for)
        {
            if !self.shared.pause(wait).await {
                return Err(Revoked);
            }
        }
        // A record whose back-off a revoke cut short on this instance goes
        // on from its attempt count when the partition comes back here.
        let mut attempt = self
            .listener
            .retry_memory
            .take(&records[0])
            .map_or(1, |a| a + 1);
        loop {
            // The latency histogram samples one call in TIMING_SAMPLE (and
            // every retry): reading the clock twice per record costs more
            // than the rest of the bookkeeping on a virtual machine.
            let timed = attempt > 1 || self.timing_tick();
            let started = timed.then(Instant::now);
            let next = records[records.len() - 1].offset + 1;
            let result = self.in_transaction(next, self.call(records, attempt)).await;
            if let Some(started) = started {
                m.handler_seconds.record(started.elapsed().as_secs_f64());
            }
            let err = match result {
                Ok(()) => {
                    m.processed.increment(records.len() as u64);
                    m.tally
                        .processed
                        .fetch_add(records.len() as u64, Ordering::Relaxed);
                    return Ok(Ok(()));
                }
                Err(err) => err,
            };
            m.failed.increment(1);
            m.tally.failed.fetch_add(1, Ordering::Relaxed);
            // In a transaction the whole batch was aborted: it goes again
            // as one.
            if let Some(i) = err.index().filter(|&i| {
                records.len() > 1 && i < records.len() && !self.manual() && self.shared.tx.is_none()
            }) {
                return Ok(Err(i));
            }
            let classified_fatal =
                err.is_retryable() && self.listener.not_retryable.iter().any(|f| f(&err));
            let next = if classified_fatal {
                None
            } else {
                self.listener.retry.next_delay(attempt, &err)
            };
            match next {
                Some(delay) => {
                    let first = &records[0];
                    // `tracing` needs the level as a constant per call site.
                    macro_rules! retrying {
                        ($level:expr) => {
                            tracing::event!($level, listener = %self.listener.info.id, topic = %first.topic,
                                partition = first.partition, offset = first.offset, attempt,
                                delay_ms = delay.as_millis() as u64, error = %err,
                                "listener failed; retrying after back-off")
                        };
                    }
                    match err.log_level() {
                        tracing::Level::ERROR => retrying!(tracing::Level::ERROR),
                        tracing::Level::WARN => retrying!(tracing::Level::WARN),
                        tracing::Level::INFO => retrying!(tracing::Level::INFO),
                        tracing::Level::DEBUG => retrying!(tracing::Level::DEBUG),
                        _ => retrying!(tracing::Level::TRACE),
                    }
                    m.retried.increment(1);
                    let watched = super::observe::BackingOff::new(first, attempt, delay);
                    crate::util::lock(&self.shared.watch).backing_off = Some(watched);
                    let resumed = self.shared.pause(delay).await;
                    crate::util::lock(&self.shared.watch).ended(first.offset);
                    if !resumed {
                        self.listener.retry_memory.remember(&records[0], attempt);
                        return Err(Revoked);
                    }
                    attempt += 1;
                }
                None => {
                    self.recover(records, &err, attempt).await?;
                    return Ok(Ok(()));
                }
            }
        }
    }

    /// [`Self::call_in_span`] in the record's trace span
    /// (crate::trace).
    async fn call(&self, records: &[ConsumerRecord], attempt: u32) -> Result<(), ListenerError> {
        let fut = self.call_in_span(records, attempt);
        crate::trace::in_record_span(&self.listener.info, records, fut).await
    }

    async fn call_in_span(
        &self,
        records: &[ConsumerRecord],
        attempt: u32,
    ) -> Result<(), ListenerError> {
        let last = records.last().expect("non-empty");
        let ack = self
            .manual()
            .then(|| AckHandle::new(Arc::clone(&self.shared.offsets), last.offset));
        let ctx = ListenerContext {
            info: &self.listener.info,
            ack,
            attempt,
        };
        if let Some(service) = &self.listener.service {
            return self.call_layers(service.clone(), records, &ctx).await;
        }
        let fut: std::thread::Result<BoxFuture<Result<(), ListenerError>>> =
            std::panic::catch_unwind(AssertUnwindSafe(|| match &*self.listener.handler {
                ErasedHandler::Record { call, .. } => call(last, &ctx),
                ErasedHandler::Batch { call, .. } => call(records, &ctx),
            }));
        let fut = match fut {
            Ok(fut) => fut,
            Err(panic) => return Err(panicked(panic)),
        };
        match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => Err(panicked(panic)),
        }
    }

    /// [`Self::call`] through the listener's layers.
    async fn call_layers(
        &self,
        mut service: crate::intercept::ListenerService,
        records: &[ConsumerRecord],
        ctx: &ListenerContext<'_>,
    ) -> Result<(), ListenerError> {
        use tower::{Service, ServiceExt};
        let batch = self.listener.handler.is_batch();
        let records = if batch {
            records.to_vec()
        } else {
            vec![records[records.len() - 1].clone()]
        };
        let request = crate::intercept::ListenerRequest::new(records, batch, ctx.to_owned());
        let ready = match AssertUnwindSafe(service.ready()).catch_unwind().await {
            Ok(ready) => ready?,
            Err(panic) => return Err(panicked(panic)),
        };
        let fut = match std::panic::catch_unwind(AssertUnwindSafe(|| ready.call(request))) {
            Ok(fut) => fut,
            Err(panic) => return Err(panicked(panic)),
        };
        match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => Err(panicked(panic)),
        }
    }

    /// The record (or batch) failed for good: hand it to the recoverer
    /// (dead-letter topic, or log), retrying the recoverer until it succeeds,
    /// since the offset must not be committed past a record that was neither
    /// handled nor recovered.
    async fn recover(
        &self,
        records: &[ConsumerRecord],
        err: &ListenerError,
        attempts: u32,
    ) -> Result<(), Revoked> {
        let mut tries = 0u32;
        for record in records {
            loop {
                // A transactional listener's dead letter and the record's
                // offset commit together.
                let recovered = self.in_transaction(record.offset + 1, async {
                    self.listener
                        .recoverer
                        .recover(record, err, attempts, &self.listener.info)
                        .await
                        .map_err(ListenerError::from)
                });
                match recovered.await {
                    Ok(()) => break,
                    Err(e) => {
                        tries += 1;
                        let delay = RECOVERER_BACKOFF.delay(tries);
                        tracing::error!(listener = %self.listener.info.id, topic = %record.topic, partition = record.partition,
                            offset = record.offset, error = %e, "recovering a failed record failed; the partition waits and tries again");
                        if !self.shared.pause(delay).await {
                            return Err(Revoked);
                        }
                    }
                }
            }
        }
        if self.manual() {
            if let Some(last) = records.last() {
                self.shared.offsets.finish(last.offset);
            }
        }
        Ok(())
    }
}

fn panicked(panic: Box<dyn std::any::Any + Send>) -> ListenerError {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    ListenerError::with_kind(ErrorKind::Fatal, format!("listener panicked: {msg}"))
}
