//! The `concert-admitter` listener: one consumer on the one partition of
//! [`TOPIC`], admitting tokens in offset order at the configured rate.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_listener::{
    kafka_listener, Json, KafkaTemplate, ListenerError, ListenerRegistry, ListenerSpec, RateLimit,
    RecordMeta, State,
};
use serde::{Deserialize, Serialize};

use crate::db::{Admission, Db};
use crate::now_ms;
use crate::position::Cursor;

/// The topic of waiting tokens: one partition, so its offsets are the
/// global arrival order. Key = user id (UTF-8), value = [`TokenQueued`] as
/// JSON. Records are sent to partition 0 explicitly, so a topic created
/// with more partitions still keeps one order.
pub const TOPIC: &str = "concert.queue.waiting";

/// The partition every token record goes to.
pub const PARTITION: i32 = 0;

/// The listener id (its container is `running.app().container(LISTENER_ID)`).
pub const LISTENER_ID: &str = "concert-admitter";

/// The consumer group of the listener; its committed offset on partition 0
/// is the admission cursor after a restart.
pub const GROUP_ID: &str = "concert-admitter";

/// A user joined the queue: the value of a [`TOPIC`] record, as JSON
/// `{"token_id": "...", "user_id": "...", "queued_at": 1700000000000}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TokenQueued {
    /// The token handed to the user (`POST /queue/tokens` answer).
    pub token_id: String,
    /// The user waiting; also the record key.
    pub user_id: String,
    /// When the HTTP request was accepted, milliseconds since the Unix epoch.
    #[serde(default)]
    pub queued_at: i64,
}

/// What the listener (as `State<AppState>`) and the HTTP handlers share.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) db: Db,
    pub(crate) template: KafkaTemplate,
    /// The admission cursor (reads the running listener's finished
    /// offsets).
    pub(crate) cursor: Arc<Cursor>,
    /// The running app, set once it started (`POST /admin/admission/start`
    /// starts the listener through it).
    pub(crate) listeners: ListenerRegistry,
    pub(crate) send_timeout: Duration,
    pub(crate) active_ttl: Duration,
    pub(crate) admit_rate: RateLimit,
    /// Embedded broker only: 429 past this many waiting tokens.
    pub(crate) max_waiting: Option<i64>,
    /// One past the highest offset this process had acknowledged on
    /// partition 0 (0 before the first send).
    pub(crate) produced_end: Arc<AtomicI64>,
}

impl AppState {
    /// Whether the admission listener runs (`false` before the app started
    /// or while the doors are closed).
    pub(crate) fn admitting(&self) -> bool {
        self.listeners.is_running(LISTENER_ID).unwrap_or(false)
    }

    /// The broker acknowledged a token record at `offset`.
    pub(crate) fn produced(&self, offset: i64) {
        self.produced_end.fetch_max(offset + 1, Ordering::AcqRel);
    }
}

/// The listener. Concurrency 1: one consumer, one partition, one token at
/// a time in offset order. Failures (a database that is busy or down) are
/// retried in the lane with an exponential back-off from 100 ms to 5 s, for
/// up to ~80 minutes, while the queue waits: skipping a waiting user is
/// never right.
///
/// The attribute's `rate_limit` is the default of `QUEUE_ADMIT_RATE`; the
/// configured rate and `auto_startup` are applied by
/// [`customize`] through `KafkaAppBuilder::customize_listener`.
#[kafka_listener(id = "concert-admitter", topics = ["concert.queue.waiting"],
                 group_id = "concert-admitter", concurrency = 1, rate_limit = "100/10s",
                 ordering = "partition", // one global order: never "key" (docs/use-cases/concert-queue.md)
                 retry(attempts = 1000, initial = "100ms", max = "5s", jitter = false))]
pub(crate) async fn admit(
    token: Json<TokenQueued>,
    meta: RecordMeta,
    app: State<AppState>,
) -> Result<(), ListenerError> {
    let now = now_ms();
    let ttl = i64::try_from(app.active_ttl.as_millis()).unwrap_or(i64::MAX);
    let outcome = app.db.admit(&token.token_id, meta.offset, now, ttl).await?;
    match outcome {
        Admission::Admitted(seq) => {
            metrics::counter!("concert_queue_admitted_total").increment(1);
            if token.queued_at > 0 {
                metrics::histogram!("concert_queue_wait_seconds")
                    .record((now - token.queued_at).max(0) as f64 / 1000.0);
            }
            tracing::debug!(token_id = %token.token_id, user_id = %token.user_id, offset = meta.offset, seq, "admitted");
        }
        Admission::AlreadyAdmitted => {
            metrics::counter!("concert_queue_redeliveries_total").increment(1);
            tracing::info!(token_id = %token.token_id, offset = meta.offset, "redelivered token admitted before; unchanged");
        }
        Admission::Unknown => {
            tracing::warn!(token_id = %token.token_id, offset = meta.offset,
                "token record without a token row (its send was reported failed); skipped");
        }
    }
    Ok(())
}

/// The settings of the `concert-admitter` listener that come from the
/// configuration: the admission rate (`QUEUE_ADMIT_RATE`) and whether it
/// admits from the start (`auto_startup`).
pub(crate) fn customize(
    rate: RateLimit,
    admit_on_start: bool,
) -> impl FnOnce(ListenerSpec) -> ListenerSpec + Send + 'static {
    move |spec| spec.rate_limit(rate).auto_startup(admit_on_start)
}
