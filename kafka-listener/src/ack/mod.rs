//! Acknowledgment: when offsets are committed ([`AckMode`], Spring's
//! `ContainerProperties.AckMode`) and which offsets may be committed
//! (contiguous-offset tracking per partition).
//!
//! Settings layer: imports only the error type.

pub(crate) mod offsets;

pub(crate) use self::offsets::{AckHandle, CommitSignal, PartitionOffsets};

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// When the container commits offsets, with Spring Kafka's meanings
/// (`ContainerProperties.AckMode`).
///
/// In every mode an offset is committed only when its record and every
/// earlier record of the partition are finished (handled, or
/// dead-lettered), so a commit never skips an unfinished record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum AckMode {
    /// Commit after each record is handled.
    Record,
    /// Commit the records handled since the last commit after each poll
    /// (at most every [`crate::ListenerSpec::commit_interval`], default 100 ms, or
    /// every 500 records, or when the consumer goes idle). The default, as in
    /// Spring.
    #[default]
    Batch,
    /// The handler acknowledges with [`crate::Acknowledgment`]; acknowledged
    /// records are committed as in `Batch`.
    Manual,
    /// As `Manual`, but each acknowledgment is committed at once.
    ManualImmediate,
}

impl AckMode {
    /// Valid spellings, for error messages.
    pub const VALID: &'static [&'static str] = &["record", "batch", "manual", "manual_immediate"];

    /// Whether the handler acknowledges (`manual` or `manual_immediate`).
    pub fn is_manual(self) -> bool {
        matches!(self, AckMode::Manual | AckMode::ManualImmediate)
    }

    /// Whether each finished record is committed at once.
    pub(crate) fn is_immediate(self) -> bool {
        matches!(self, AckMode::Record | AckMode::ManualImmediate)
    }
}

impl fmt::Display for AckMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AckMode::Record => "record",
            AckMode::Batch => "batch",
            AckMode::Manual => "manual",
            AckMode::ManualImmediate => "manual_immediate",
        })
    }
}

impl FromStr for AckMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "record" => Ok(AckMode::Record),
            "batch" => Ok(AckMode::Batch),
            "manual" => Ok(AckMode::Manual),
            "manual_immediate" => Ok(AckMode::ManualImmediate),
            _ => Err(Error::Config(format!(
                "unknown ack mode `{s}`; expected one of: {}",
                AckMode::VALID.join(", ")
            ))),
        }
    }
}
