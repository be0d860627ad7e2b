//! Seeking (Spring's `ConsumerSeekAware`): moving a listener's partitions
//! to the beginning, the end, an offset or a timestamp, at run time
//! ([`ListenerContainer::seek`] and its siblings) and on each assignment
//! (`ListenerSpec::seek_on_assignment`).
//!
//! A seek runs on the consumer thread that owns the partition: the
//! partition's lane finishes the record in hand (up to the drain timeout)
//! and commits what it finished, then the consumer seeks and a new lane
//! starts from the new position. Records handled again commit their
//! offsets again, so the group's committed offset follows the seek, as it
//! does in Spring.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::lanes::{ContainerContext, Control};
use super::ListenerContainer;
use crate::config::SeekPosition;

/// How long resolving a timestamp and the seek itself may take.
const SEEK_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`Control::Seek`] asks of a consumer thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeekRequest {
    /// `(topic, partition)`s to move; `None`: every assigned partition.
    /// Partitions a consumer does not own are left to the others.
    pub(crate) partitions: Option<Arc<[(String, i32)]>>,
    pub(crate) position: SeekPosition,
}

impl ListenerContainer {
    /// Moves one partition of this listener to `position`. The consumer
    /// that owns it (if any: an unassigned partition is not sought) does it
    /// before its next poll; this returns at once. Spring's
    /// `ConsumerSeekCallback.seek`, `seekToBeginning`, `seekToEnd` and
    /// `seekToTimestamp` for one partition.
    pub fn seek(&self, topic: &str, partition: i32, position: SeekPosition) {
        self.send(Control::Seek(SeekRequest {
            partitions: Some(Arc::from(vec![(topic.to_owned(), partition)])),
            position,
        }));
    }

    /// Moves every partition assigned to this listener's consumers to
    /// `position` (before their next poll; this returns at once). A read
    /// model that rebuilds from its events calls
    /// `seek_all(SeekPosition::Beginning)`.
    pub fn seek_all(&self, position: SeekPosition) {
        self.send(Control::Seek(SeekRequest {
            partitions: None,
            position,
        }));
    }

    /// [`Self::seek_all`] to [`SeekPosition::Beginning`].
    pub fn seek_to_beginning(&self) {
        self.seek_all(SeekPosition::Beginning);
    }

    /// [`Self::seek_all`] to [`SeekPosition::End`].
    pub fn seek_to_end(&self) {
        self.seek_all(SeekPosition::End);
    }

    /// [`Self::seek_all`] to the first record at or after `timestamp_ms`
    /// (milliseconds since the Unix epoch).
    pub fn seek_to_timestamp(&self, timestamp_ms: i64) {
        self.seek_all(SeekPosition::Timestamp(timestamp_ms));
    }
}

impl ContainerContext {
    /// Serves a [`SeekRequest`] on the consumer thread.
    pub(super) fn seek(&self, consumer: &BaseConsumer<Self>, request: &SeekRequest) {
        let Ok(assignment) = consumer.assignment() else {
            return;
        };
        let mut tpl = TopicPartitionList::new();
        for e in assignment.elements() {
            let wanted = request
                .partitions
                .as_ref()
                .is_none_or(|p| p.iter().any(|(t, n)| t == e.topic() && *n == e.partition()));
            if wanted {
                tpl.add_partition(e.topic(), e.partition());
            }
        }
        if tpl.count() == 0 {
            return;
        }
        // Finish and commit what the lanes hold; new lanes start at the new
        // position.
        self.close_lanes(consumer, Some(&tpl));
        self.seek_assigned(consumer, &tpl, request.position);
        let result = if self.paused_all.load(Ordering::Acquire) {
            consumer.pause(&tpl)
        } else {
            consumer.resume(&tpl)
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "setting the pause state of sought partitions failed");
        }
    }

    /// Seeks the partitions of `tpl` (assigned to this consumer) to
    /// `position`, and forgets where they were expected to start.
    pub(super) fn seek_assigned(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &TopicPartitionList,
        position: SeekPosition,
    ) {
        let target = match resolve(consumer, tpl, position) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(listener = %self.listener.info.id, %position, error = %e, "cannot resolve the seek position; the partitions stay where they are");
                return;
            }
        };
        {
            let mut table = self.lock();
            for e in tpl.elements() {
                table
                    .start_offsets
                    .remove(&(e.topic().to_owned(), e.partition()));
            }
        }
        match consumer.seek_partitions(target, SEEK_TIMEOUT) {
            Ok(done) => {
                for e in done.elements() {
                    if let Err(err) = e.error() {
                        tracing::error!(listener = %self.listener.info.id, topic = e.topic(), partition = e.partition(), error = %err, "seek failed");
                    }
                }
                let partitions: Vec<String> = tpl
                    .elements()
                    .iter()
                    .map(|e| format!("{}-{}", e.topic(), e.partition()))
                    .collect();
                tracing::info!(listener = %self.listener.info.id, consumer = %self.name, ?partitions, %position, "partitions sought");
            }
            Err(e) => {
                tracing::error!(listener = %self.listener.info.id, %position, error = %e, "seek failed");
            }
        }
    }
}

/// `tpl`'s partitions with the offsets of `position`.
pub(super) fn resolve(
    consumer: &BaseConsumer<ContainerContext>,
    tpl: &TopicPartitionList,
    position: SeekPosition,
) -> rdkafka::error::KafkaResult<TopicPartitionList> {
    let mut out = TopicPartitionList::with_capacity(tpl.count());
    let offset = match position {
        SeekPosition::Beginning => Offset::Beginning,
        SeekPosition::End => Offset::End,
        SeekPosition::Offset(o) => Offset::Offset(o),
        SeekPosition::Timestamp(ts) => {
            let mut query = TopicPartitionList::with_capacity(tpl.count());
            for e in tpl.elements() {
                query.add_partition_offset(e.topic(), e.partition(), Offset::Offset(ts))?;
            }
            let found = consumer.offsets_for_times(query, SEEK_TIMEOUT)?;
            for e in found.elements() {
                // No record at or after the timestamp: the end.
                let o = match e.offset() {
                    Offset::Offset(o) if o >= 0 => Offset::Offset(o),
                    _ => Offset::End,
                };
                out.add_partition_offset(e.topic(), e.partition(), o)?;
            }
            return Ok(out);
        }
    };
    for e in tpl.elements() {
        out.add_partition_offset(e.topic(), e.partition(), offset)?;
    }
    Ok(out)
}
