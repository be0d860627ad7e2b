//! The admission cursor: the offset of the next token to admit on
//! partition 0 of [`crate::TOPIC`]. A waiting token's position is its
//! offset minus the cursor, with no table scan.
//!
//! The cursor is the listener's `finished_offsets()` for partition 0 (one
//! past the last token it admitted) while this process runs the listener
//! and has finished a record; otherwise (the listener has not finished
//! anything yet since start, is not started, or runs in another instance)
//! the group's committed offset, read from the broker and cached for a
//! second; 0 when nothing was ever committed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_listener::{KafkaConfig, ListenerRegistry};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::listener::{GROUP_ID, LISTENER_ID, PARTITION, TOPIC};

/// Where the cursor came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The running listener's finished offset.
    Finished,
    /// The group's committed offset (or 0 when none).
    Committed,
}

impl Source {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Finished => "finished",
            Self::Committed => "committed",
        }
    }
}

/// Reads the cursor; shared by the HTTP handlers.
pub(crate) struct Cursor {
    listeners: ListenerRegistry,
    /// A consumer of the group that never subscribes: only asks for the
    /// committed offset and the watermarks.
    admin: Arc<BaseConsumer>,
    committed: Mutex<Option<(Instant, i64)>>,
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor").finish_non_exhaustive()
    }
}

/// How long a committed offset read from the broker is reused.
const COMMITTED_TTL: Duration = Duration::from_secs(1);

impl Cursor {
    /// A cursor over the listener in `listeners` (filled when the app starts), asking `bootstrap`
    /// with the client `config` for the committed offset.
    pub(crate) fn new(
        listeners: ListenerRegistry,
        config: &KafkaConfig,
        bootstrap: &str,
    ) -> Result<Self, kafka_listener::Error> {
        let mut client = ClientConfig::new();
        for (k, v) in config.consumer_properties() {
            client.set(k, v);
        }
        client
            .set("bootstrap.servers", bootstrap)
            .set("group.id", GROUP_ID)
            .set("enable.auto.commit", "false")
            .set("client.id", "concert-queue-cursor");
        let admin: BaseConsumer = client
            .create()
            .map_err(|e| kafka_listener::Error::Config(format!("cursor consumer: {e}")))?;
        Ok(Self {
            listeners,
            admin: Arc::new(admin),
            committed: Mutex::new(None),
        })
    }

    /// The listener's finished offset on partition 0, when it has one.
    pub(crate) fn finished(&self) -> Option<i64> {
        self.listeners
            .container(LISTENER_ID)?
            .finished_offsets()
            .into_iter()
            .find(|f| f.topic == TOPIC && f.partition == PARTITION && f.offset >= 0)
            .map(|f| f.offset)
    }

    /// The offset of the next token to admit, and where it came from.
    pub(crate) async fn next_offset(&self) -> (i64, Source) {
        match self.finished() {
            Some(o) => (o, Source::Finished),
            None => (self.committed().await, Source::Committed),
        }
    }

    /// The group's committed offset on partition 0 (0 when none), cached
    /// for [`COMMITTED_TTL`]. On a broker error the last value read is
    /// kept (0 before any).
    pub(crate) async fn committed(&self) -> i64 {
        let cached = *self.committed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, o)) = cached {
            if at.elapsed() < COMMITTED_TTL {
                return o;
            }
        }
        let admin = Arc::clone(&self.admin);
        let read = tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(TOPIC, PARTITION);
            admin
                .committed_offsets(tpl, Duration::from_secs(5))
                .map(
                    |got| match got.find_partition(TOPIC, PARTITION).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => o,
                        _ => 0,
                    },
                )
        })
        .await;
        match read {
            Ok(Ok(o)) => {
                *self.committed.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), o));
                o
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the committed offset");
                cached.map_or(0, |(_, o)| o)
            }
            Err(e) => {
                tracing::warn!(error = %e, "committed offset task failed");
                cached.map_or(0, |(_, o)| o)
            }
        }
    }

    /// The log end offset (high watermark) of partition 0, or `None` when
    /// the broker does not answer within 5 s.
    pub(crate) async fn log_end(&self) -> Option<i64> {
        let admin = Arc::clone(&self.admin);
        tokio::task::spawn_blocking(move || {
            admin
                .fetch_watermarks(TOPIC, PARTITION, Duration::from_secs(5))
                .ok()
                .map(|(_, high)| high)
        })
        .await
        .ok()
        .flatten()
    }
}
