//! The consumer's `isolation.level`.

use std::fmt;

/// A consumer's `isolation.level` (`ListenerSpec::isolation_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IsolationLevel {
    /// Only records of committed transactions (and non-transactional
    /// ones), up to the last stable offset.
    ReadCommitted,
    /// Every record, also of open and aborted transactions.
    ReadUncommitted,
}

impl IsolationLevel {
    /// The property value: `read_committed` or `read_uncommitted`.
    pub fn as_str(self) -> &'static str {
        match self {
            IsolationLevel::ReadCommitted => "read_committed",
            IsolationLevel::ReadUncommitted => "read_uncommitted",
        }
    }
}

impl fmt::Display for IsolationLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
