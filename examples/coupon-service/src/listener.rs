//! The `coupon-issuer` listener: one database transaction per request.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use kafka_listener::error::BoxError;
use kafka_listener::extract::ListenerInfo;
use kafka_listener::recover::Recoverer;
use kafka_listener::{
    ConsumerRecord, Json, KafkaTemplate, ListenerError, ListenerSpec, RecordMeta, RetryPolicy,
    State,
};
use serde::{Deserialize, Serialize};

use crate::db::{Db, IssueOutcome, NewDeadLetter};
use crate::lag::LagTracker;
use crate::now_ms;

/// The topic of issue requests: key = coupon id (UTF-8), value =
/// [`IssueRequested`] as JSON.
pub const TOPIC: &str = "coupon.issue.requested";

/// Partitions of [`TOPIC`]: requests for one coupon share a partition and so
/// are handled in request order; up to this many coupons are handled in
/// parallel.
pub const PARTITIONS: i32 = 3;

/// The listener id (its container is `running.app().container(LISTENER_ID)`).
pub const LISTENER_ID: &str = "coupon-issuer";

/// The consumer group of the listener.
pub const GROUP_ID: &str = "coupon-issuer";

/// A user asks for a coupon: the value of a [`TOPIC`] record, as JSON
/// `{"coupon_id": "...", "user_id": "...", "requested_at": 1700000000000}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRequested {
    /// The coupon asked for; also the record key.
    pub coupon_id: String,
    /// The user asking.
    pub user_id: String,
    /// When the HTTP request was accepted, milliseconds since the Unix epoch.
    #[serde(default)]
    pub requested_at: i64,
}

/// What the listener (as `State<AppState>`) and the HTTP handlers share.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) db: Db,
    pub(crate) lag: Arc<LagTracker>,
    pub(crate) template: KafkaTemplate,
    pub(crate) send_timeout: Duration,
}

/// The listener, registered in code until `#[kafka_listener]` lands.
///
/// Retries: transient failures (a database that is busy or down) are tried
/// 8 times with an exponential back-off from 100 ms to 5 s (~16 s in all)
/// while the partition waits, so order is kept. What still fails is stored in
/// the dead-letter table by [`DeadLetterTable`] and its request is marked
/// `failed`.
///
/// Up to 10,000 records are queued per partition (see the comment at
/// `max_in_flight`).
pub(crate) fn spec(concurrency: usize) -> ListenerSpec {
    ListenerSpec::new(LISTENER_ID)
        .topics([TOPIC])
        .group_id(GROUP_ID)
        .concurrency(concurrency)
        .retry(RetryPolicy::exponential(
            8,
            Duration::from_millis(100),
            2.0,
            Duration::from_secs(5),
        ))
        .recoverer(DeadLetterTable)
        // Workaround, measured: with the default 1024 a paused partition
        // takes 0.3-1 s to be fetched again after its resume, and a 0.35 ms
        // handler reached only ~1,050 records/s on one partition (~3,000/s
        // with 10,000). Memory: 10,000 x a few hundred bytes per partition.
        .max_in_flight(10_000)
        .handler(issue)
}

/// An unknown coupon in a request: retrying cannot help.
#[derive(Debug, thiserror::Error)]
#[error("no coupon `{0}`")]
struct UnknownCoupon(String);

/// A request that cannot be valid (empty ids, key not the coupon id).
#[derive(Debug, thiserror::Error)]
#[error("invalid request: {0}")]
struct InvalidRequest(String);

// TODO(macro): #[kafka_listener(id = "coupon-issuer", topics = ["coupon.issue.requested"], group_id = "coupon-issuer", concurrency = 3)]
pub(crate) async fn issue(
    req: Json<IssueRequested>,
    meta: RecordMeta,
    app: State<AppState>,
) -> Result<(), ListenerError> {
    let result = decide(&req, &meta, &app).await;
    if !matches!(&result, Err(e) if e.is_retryable()) {
        app.lag.handled(meta.partition, meta.offset);
    }
    result
}

async fn decide(
    req: &IssueRequested,
    meta: &RecordMeta,
    app: &AppState,
) -> Result<(), ListenerError> {
    if req.coupon_id.is_empty() || req.user_id.is_empty() {
        return Err(ListenerError::fatal(InvalidRequest(
            "empty coupon_id or user_id".into(),
        )));
    }
    let outcome = app
        .db
        .issue(req, meta.partition, meta.offset, now_ms())
        .await?;
    let label = match outcome {
        IssueOutcome::Issued => "issued",
        IssueOutcome::SoldOut => "sold_out",
        IssueOutcome::AlreadyDecided => "duplicate",
        IssueOutcome::UnknownCoupon => {
            return Err(ListenerError::fatal(UnknownCoupon(req.coupon_id.clone())));
        }
    };
    metrics::counter!("coupon_issue_outcomes_total", "outcome" => label).increment(1);
    tracing::debug!(coupon_id = %req.coupon_id, user_id = %req.user_id, partition = meta.partition,
        offset = meta.offset, outcome = label, "request decided");
    Ok(())
}

/// Stores a request that failed for good in `coupon_dead_letters` and marks
/// it `failed`; an admin replays it with
/// `POST /admin/dead-letters/{id}/replay`. When the database is down too,
/// the container calls it again (the partition waits; nothing is lost).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeadLetterTable;

impl Recoverer for DeadLetterTable {
    fn recover<'a>(
        &'a self,
        record: &'a ConsumerRecord,
        error: &'a ListenerError,
        attempts: u32,
        listener: &'a ListenerInfo,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let app = listener
                .state()
                .get::<AppState>()
                .ok_or("the coupon-issuer listener runs without its AppState")?;
            let request = record
                .value()
                .and_then(|v| serde_json::from_slice::<IssueRequested>(v).ok())
                .filter(|r| !r.coupon_id.is_empty() && !r.user_id.is_empty());
            let letter = NewDeadLetter {
                topic: record.topic(),
                partition: record.partition(),
                offset: record.offset(),
                timestamp: record.timestamp().unwrap_or(0),
                key: record
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned()),
                payload: record
                    .value()
                    .map(|v| String::from_utf8_lossy(v).into_owned()),
                error_kind: format!("{:?}", error.kind()),
                error: error.chain(),
                attempts,
            };
            let id = app
                .db
                .store_dead_letter(letter, request.as_ref(), now_ms())
                .await?;
            app.lag.handled(record.partition(), record.offset());
            metrics::counter!("coupon_issue_outcomes_total", "outcome" => "dead_letter")
                .increment(1);
            tracing::warn!(dead_letter = %id, attempts, error = %error, "request failed for good; stored as a dead letter");
            Ok(())
        })
    }
}
