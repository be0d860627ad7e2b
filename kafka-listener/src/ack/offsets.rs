//! Per-partition offset tracking: which offsets are finished and what may be
//! committed.
//!
//! The committable offset of a partition is one past the last offset `o`
//! such that `o` and every earlier delivered offset are finished. In the
//! `record` and `batch` ack modes records finish in order, so the lane simply
//! moves the mark; in the manual modes acknowledgments may come in any order
//! from any task, so delivered offsets wait in a queue until the ones before
//! them are acknowledged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Tells the consumer thread that something may be committed.
#[derive(Debug, Default)]
pub(crate) struct CommitSignal {
    dirty: AtomicBool,
    urgent: AtomicBool,
}

impl CommitSignal {
    pub(crate) fn mark(&self, immediate: bool) {
        // Load first: a store on every record would bounce the cache line
        // between the lanes and the consumer thread.
        if !self.dirty.load(Ordering::Relaxed) {
            self.dirty.store(true, Ordering::Release);
        }
        if immediate {
            self.urgent.store(true, Ordering::Release);
        }
    }

    /// Whether an immediate commit was asked for (cheap: one load).
    pub(crate) fn is_urgent(&self) -> bool {
        self.urgent.load(Ordering::Relaxed)
    }

    /// Takes the flags: `(dirty, urgent)`.
    pub(crate) fn take(&self) -> (bool, bool) {
        let urgent = self.urgent.swap(false, Ordering::AcqRel);
        let dirty = self.dirty.swap(false, Ordering::AcqRel);
        (dirty || urgent, urgent)
    }
}

/// Delivered, not yet committable offsets with their "finished" flag
/// (manual ack modes only), in offset order.
#[derive(Debug, Default)]
struct Tracker {
    pending: VecDeque<(i64, bool)>,
}

/// The offsets of one partition, shared by its lane, its acknowledgments
/// and the consumer thread.
#[derive(Debug)]
pub(crate) struct PartitionOffsets {
    tracker: Mutex<Tracker>,
    /// One past the last committable offset; -1 when nothing is finished.
    committable: AtomicI64,
    signal: Arc<CommitSignal>,
    immediate: bool,
}

impl PartitionOffsets {
    pub(crate) fn new(signal: Arc<CommitSignal>, immediate: bool) -> Self {
        Self {
            tracker: Mutex::new(Tracker::default()),
            committable: AtomicI64::new(-1),
            signal,
            immediate,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tracker> {
        // A panic while holding this lock cannot leave the tracker torn (every
        // update is a single assignment or push), so a poisoned lock is used.
        crate::util::lock(&self.tracker)
    }

    /// Record and batch ack modes: `offset` and everything before it are done.
    pub(crate) fn complete_in_order(&self, offset: i64) {
        if self.committable.fetch_max(offset + 1, Ordering::AcqRel) < offset + 1 {
            self.signal.mark(self.immediate);
        }
    }

    /// Manual ack modes: `offset` was handed to the handler and waits for its
    /// acknowledgment. Returns how many offsets now wait.
    pub(crate) fn begin(&self, offset: i64) -> usize {
        let mut t = self.lock();
        t.pending.push_back((offset, false));
        t.pending.len()
    }

    /// Manual ack modes: `offset` was acknowledged (or dead-lettered).
    /// Acknowledging an unknown or already committed offset does nothing.
    pub(crate) fn finish(&self, offset: i64) {
        let mut t = self.lock();
        let Ok(i) = t.pending.binary_search_by_key(&offset, |(o, _)| *o) else {
            return;
        };
        t.pending[i].1 = true;
        let mut advanced = None;
        while let Some(&(o, true)) = t.pending.front() {
            t.pending.pop_front();
            advanced = Some(o);
        }
        drop(t);
        if let Some(o) = advanced {
            self.complete_in_order(o);
        }
    }

    /// Offsets delivered and not yet acknowledged (manual ack modes).
    pub(crate) fn waiting(&self) -> usize {
        self.lock().pending.len()
    }

    /// One past the last committable offset, or -1.
    pub(crate) fn committable(&self) -> i64 {
        self.committable.load(Ordering::Acquire)
    }
}

/// The acknowledgment of one delivered offset (behind
/// [`crate::Acknowledgment`]).
#[derive(Debug, Clone)]
pub(crate) struct AckHandle {
    offsets: Arc<PartitionOffsets>,
    offset: i64,
}

impl AckHandle {
    pub(crate) fn new(offsets: Arc<PartitionOffsets>, offset: i64) -> Self {
        Self { offsets, offset }
    }

    pub(crate) fn acknowledge(&self) {
        self.offsets.finish(self.offset);
    }

    pub(crate) fn offset(&self) -> i64 {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_completion_moves_the_mark() {
        let signal = Arc::new(CommitSignal::default());
        let p = PartitionOffsets::new(signal.clone(), false);
        assert_eq!(p.committable(), -1);
        p.complete_in_order(4);
        assert_eq!(p.committable(), 5);
        assert_eq!(signal.take(), (true, false));
        assert_eq!(signal.take(), (false, false));
    }

    #[test]
    fn out_of_order_acks_commit_only_the_contiguous_prefix() {
        let signal = Arc::new(CommitSignal::default());
        let p = PartitionOffsets::new(signal.clone(), true);
        for o in [10, 11, 13, 14] {
            p.begin(o);
        }
        p.finish(11);
        assert_eq!(p.committable(), -1, "10 is not acknowledged yet");
        p.finish(13);
        assert_eq!(p.committable(), -1);
        p.finish(10);
        // 10, 11 and 13 are done (13 was acknowledged before 10), so the
        // mark moves to 14, the first offset still waiting.
        assert_eq!(p.committable(), 14);
        assert_eq!(p.waiting(), 1);
        p.finish(14);
        assert_eq!(p.committable(), 15);
        assert_eq!(signal.take(), (true, true));
        p.finish(14);
        p.finish(99);
        assert_eq!(p.committable(), 15);
    }
}
