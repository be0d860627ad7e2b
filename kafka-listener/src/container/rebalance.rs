//! The rdkafka context callbacks of one consumer: statistics (lag) and
//! rebalances (drain and commit the revoked partitions' lanes before they
//! are given up; record where assigned partitions start).

use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::lanes::ContainerContext;

impl ContainerContext {
    /// Updates this consumer's assignment for
    /// [`super::ListenerContainer::assigned_partitions`] from a rebalance
    /// event: `Assign` adds its partitions, `Revoke` removes its partitions
    /// (an eager rebalance revokes everything, an incremental one only
    /// what moves). Derived from the event, not read back with
    /// `assignment()`: that call waits on librdkafka's main thread, which
    /// does not answer while the consumer closes, so a rebalance served
    /// during close (dropping the consumer) would hang forever.
    pub(super) fn update_assigned(&self, rebalance: &Rebalance<'_>) {
        let (tpl, assign) = match rebalance {
            Rebalance::Assign(tpl) => (tpl, true),
            Rebalance::Revoke(tpl) => (tpl, false),
            Rebalance::Error(_) => return,
        };
        let mut all = crate::util::lock(&self.assigned);
        let Some(slot) = all.get_mut(self.slot) else {
            return;
        };
        for e in tpl.elements() {
            let tp = (e.topic().to_owned(), e.partition());
            slot.retain(|have| *have != tp);
            if assign {
                slot.push(tp);
            }
        }
    }
}

impl ClientContext for ContainerContext {
    /// librdkafka's error callback (authentication failures, brokers
    /// down): kept, logged and counted, see [`super::errors`].
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.report_error(&error, Some(reason));
    }

    /// librdkafka's statistics (every `statistics.interval.ms`, 5 s by
    /// default here) give each partition's log end offset; the lag is the
    /// log end minus the offset the listener has *finished* (librdkafka's
    /// own `consumer_lag` counts records the poll thread took, including
    /// those still queued for the handler). Kept for
    /// [`super::ListenerContainer::lag`] and exported as a gauge.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let progress = crate::util::lock(&self.progress);
        let mut lag = crate::util::lock(&self.lag);
        for (topic, t) in &statistics.topics {
            for (&partition, p) in &t.partitions {
                // Partition -1 is librdkafka's internal "unassigned" one; a
                // negative high watermark is not known yet.
                if partition < 0 || p.hi_offset < 0 {
                    continue;
                }
                let key = (topic.clone(), partition);
                let finished = progress
                    .get(&key)
                    .map(|o| o.offsets.committable())
                    .filter(|&o| o >= 0)
                    .unwrap_or_else(|| p.committed_offset.max(p.lo_offset).max(0));
                let behind = (p.hi_offset - finished).max(0);
                lag.insert(
                    key,
                    super::observe::Watermarks {
                        lag: behind,
                        log_end: p.hi_offset,
                        committed: p.committed_offset,
                    },
                );
                metrics::gauge!(crate::metrics::names::CONSUMER_LAG,
                    "listener" => self.listener.info.id.to_string(),
                    "topic" => topic.clone(),
                    "partition" => partition.to_string())
                .set(behind as f64);
            }
        }
    }
}

impl ConsumerContext for ContainerContext {
    /// rdkafka's default rebalance (pre-rebalance callback, `assign` or
    /// `incremental_assign`, post-rebalance callback), with the assigned
    /// partitions' offsets set first when the listener seeks on
    /// assignment: Spring's `onPartitionsAssigned` seek. (A seek after the
    /// assignment is refused while the partition is not fetching yet.)
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let assign = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        if let (true, Some(position)) = (assign, self.listener.seek_on_assignment) {
            match super::seek::resolve(consumer, tpl, position) {
                Ok(at) => {
                    // In place: `tpl` is librdkafka's own list.
                    for e in at.elements() {
                        if let Err(err) =
                            tpl.set_partition_offset(e.topic(), e.partition(), e.offset())
                        {
                            tracing::error!(topic = e.topic(), partition = e.partition(), error = %err, "setting the seek position failed");
                        }
                    }
                    tracing::info!(listener = %self.listener.info.id, consumer = %self.name, %position, "assigned partitions start at the seek position");
                }
                Err(e) => {
                    tracing::error!(listener = %self.listener.info.id, %position, error = %e, "cannot resolve the seek position; the partitions start at their committed offsets");
                }
            }
        }
        let rebalance = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(tpl),
            _ => Rebalance::Error(rdkafka::error::KafkaError::Rebalance(err.into())),
        };
        self.pre_rebalance(consumer, &rebalance);
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match (&rebalance, cooperative) {
            (Rebalance::Assign(tpl), true) => consumer.incremental_assign(tpl),
            (Rebalance::Assign(tpl), false) => consumer.assign(tpl),
            (_, true) => consumer.incremental_unassign(tpl),
            (_, false) => consumer.unassign(),
        };
        if let Err(e) = result {
            tracing::error!(consumer = %self.name, error = %e, assign, "applying the rebalance failed");
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                self.lock().generation += 1;
                tracing::info!(consumer = %self.name, partitions = tpl.count(), "partitions revoked; draining and committing");
                self.listener.metrics.rebalances.increment(1);
                self.close_lanes(consumer, Some(tpl));
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => {
                tracing::error!(consumer = %self.name, error = %e, "rebalance error")
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.update_assigned(rebalance);
        if let Rebalance::Assign(tpl) = rebalance {
            self.joined.store(true, Ordering::Release);
            self.lock().generation += 1;
            // With `seek_on_assignment` the partitions were assigned at
            // that position (`rebalance`): no committed offset to expect.
            let committed = match self.listener.seek_on_assignment {
                None => consumer
                    .committed_offsets((*tpl).clone(), Duration::from_secs(5))
                    .ok(),
                Some(_) => None,
            };
            if let Some(committed) = committed {
                // Remember where each partition should start, to notice
                // records lost to retention between the committed offset
                // and the log start (librdkafka resets to the earliest
                // offset silently).
                let mut table = self.lock();
                for e in committed.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        table
                            .start_offsets
                            .insert((e.topic().to_owned(), e.partition()), o);
                    }
                }
            }
            let partitions: Vec<String> = tpl
                .elements()
                .iter()
                .map(|e| format!("{}-{}", e.topic(), e.partition()))
                .collect();
            tracing::info!(consumer = %self.name, ?partitions, "partitions assigned");
            // librdkafka keeps a partition's pause flag across rebalances: a
            // partition paused for back-pressure before it was revoked would
            // come back paused with no lane to resume it. New lanes start
            // empty, so every assigned partition starts resumed (or paused
            // when the whole container is paused).
            let result = if self.paused_all.load(Ordering::Acquire) {
                consumer.pause(tpl)
            } else {
                consumer.resume(tpl)
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "setting the pause state of assigned partitions failed");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            // Try again with the next commit: forget that these offsets were
            // committed by lowering the mark of each lane still owned.
            {
                let mut table = self.lock();
                for e in offsets.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        if let Some(entry) = table
                            .topics
                            .get_mut(e.topic())
                            .and_then(|l| l.lanes.get_mut(&e.partition()))
                        {
                            if entry.committed >= o {
                                entry.committed = o - 1;
                            }
                        }
                    }
                }
            }
            self.signal.mark(false);
            self.listener.metrics.commit_failures.increment(1);
            tracing::warn!(consumer = %self.name, error = %e, ?offsets, "offset commit failed; the records may be delivered again");
        }
    }
}
