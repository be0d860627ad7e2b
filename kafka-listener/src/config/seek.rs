//! Where a listener's partitions are moved to (Spring's
//! `ConsumerSeekAware` callbacks).

use std::fmt;

/// A position in a partition to seek to: by
/// `ListenerSpec::seek_on_assignment` each time partitions are assigned, or
/// at run time by `ListenerContainer::seek` and its siblings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeekPosition {
    /// The log start offset: every record still retained is handled again
    /// (a read model rebuilt from its events).
    Beginning,
    /// The log end offset: only records produced from now on are handled.
    End,
    /// This offset (clamped by the broker to the log's range, following
    /// `auto.offset.reset` when out of range).
    Offset(i64),
    /// The first offset whose timestamp is at or after this one,
    /// milliseconds since the Unix epoch (the end when there is none; the
    /// Java client's `offsetsForTimes`).
    Timestamp(i64),
}

impl fmt::Display for SeekPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeekPosition::Beginning => f.write_str("beginning"),
            SeekPosition::End => f.write_str("end"),
            SeekPosition::Offset(o) => write!(f, "offset {o}"),
            SeekPosition::Timestamp(t) => write!(f, "timestamp {t} ms"),
        }
    }
}
