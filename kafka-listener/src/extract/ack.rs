//! Manual acknowledgment ([`Acknowledgment`]), Spring's `Acknowledgment`.

use std::fmt;

use super::{batch_from_context, FromBatch, FromRecord};
use crate::ack::AckHandle;
use crate::context::{ListenerContext, ListenerInfo};
use crate::error::ExtractError;
use crate::record::ConsumerRecord;

/// Manual acknowledgment of a record (ack modes `manual` and
/// `manual_immediate`), Spring's `Acknowledgment`.
///
/// An offset is committed once this record and every earlier record of its
/// partition were acknowledged, so an unacknowledged record is delivered
/// again after a restart or a rebalance. May be sent to another task and
/// acknowledged later; acknowledging twice is harmless. In a batch listener
/// it acknowledges the whole batch.
#[derive(Clone)]
pub struct Acknowledgment {
    handle: AckHandle,
}

impl Acknowledgment {
    /// Marks the record (or batch) as processed. With `manual_immediate` the
    /// commit is requested at once; with `manual` it goes with the next
    /// periodic commit.
    pub fn acknowledge(&self) {
        self.handle.acknowledge();
    }

    /// The offset this acknowledgment covers (the last one of a batch).
    pub fn offset(&self) -> i64 {
        self.handle.offset()
    }
}

impl fmt::Debug for Acknowledgment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acknowledgment")
            .field("offset", &self.handle.offset())
            .finish()
    }
}

impl FromRecord for Acknowledgment {
    fn from_record(
        _record: &ConsumerRecord,
        ctx: &ListenerContext<'_>,
    ) -> Result<Self, ExtractError> {
        ctx.ack
            .clone()
            .map(|handle| Acknowledgment { handle })
            .ok_or_else(|| {
                ExtractError::new::<Self>(
                    "Acknowledgment needs ack_mode manual or manual_immediate",
                )
            })
    }

    fn validate(info: &ListenerInfo) -> Result<(), String> {
        if info.ack_mode.is_manual() {
            Ok(())
        } else {
            Err(format!(
                "`Acknowledgment` needs ack_mode = \"manual\" or \"manual_immediate\", but the ack mode is \"{}\"",
                info.ack_mode
            ))
        }
    }
}
batch_from_context!(Acknowledgment, []);
