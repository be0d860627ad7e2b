//! The `coupon-issuer` listener: one database transaction per request.

use std::sync::Arc;
use std::time::Duration;

use apache_avro::AvroSchema;
use kafka_listener::after_commit::{OutboxEvent, TransactionalEvents};
use kafka_listener::avro::TimestampMillis;
use kafka_listener::dlq::DeadLetterStore;
use kafka_listener::record::headers::{Original, EXCEPTION_STACKTRACE};
use kafka_listener::{
    kafka_listener, Avro, AvroCodec, ConsumerRecord, KafkaTemplate, ListenerError, ListenerSpec,
    RecordMeta, RetryPolicy, State,
};
use serde::{Deserialize, Serialize};

use crate::db::{Db, IssueOutcome, Request};
use crate::lag::LagTracker;
use crate::now_ms;
use crate::pending::PendingWriter;

/// The topic of issue requests: key = coupon id (UTF-8), value =
/// [`IssueRequested`] as Avro in the Confluent wire format (subject
/// `coupon.issue.requested-value`).
pub const TOPIC: &str = "coupon.issue.requested";

/// Partitions of [`TOPIC`]: requests for one coupon share a partition and so
/// are handled in request order; up to this many coupons are handled in
/// parallel.
pub const PARTITIONS: i32 = 3;

/// The listener id (its container is `running.app().container(LISTENER_ID)`).
pub const LISTENER_ID: &str = "coupon-issuer";

/// The consumer group of the listener.
pub const GROUP_ID: &str = "coupon-issuer";

/// The dead-letter topic of [`TOPIC`] (`<topic>-dlt`, created by the app
/// with [`PARTITIONS`] partitions).
pub const DLT: &str = "coupon.issue.requested-dlt";

/// The listener that stores the dead letters of [`DLT`] in the database.
pub const DEAD_LETTERS_ID: &str = "coupon-dead-letters";

/// The topic of issued coupons: key = coupon id (UTF-8), value =
/// [`CouponIssued`] as Avro in the Confluent wire format (subject
/// `coupon.issued-value`), published through the transactional outbox
/// (header `kafka_listener-event-id` unique per event).
pub const ISSUED_TOPIC: &str = "coupon.issued";

/// Partitions of [`ISSUED_TOPIC`].
pub const ISSUED_PARTITIONS: i32 = 3;

/// A coupon was issued: the value of an [`ISSUED_TOPIC`] record, Avro
/// record `coupon.CouponIssued`:
///
/// ```json
/// {"type": "record", "name": "CouponIssued", "namespace": "coupon", "fields": [
///   {"name": "coupon_id", "type": "string"},
///   {"name": "user_id", "type": "string"},
///   {"name": "issued_at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}
/// ```
///
/// Written to the outbox (as JSON) in the transaction that issues the
/// coupon and sent as Avro by the relay after the commit (or at the next
/// start, after a crash), so every coupon in the database has its event; a
/// crash between the send and the relay's mark sends it again with the same
/// event id. Its outbox name is the Avro record's full name, stable across
/// renames of the Rust type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema, OutboxEvent)]
#[avro(namespace = "coupon")]
#[outbox(
    topic = "coupon.issued",
    key = "coupon_id",
    format = "avro",
    name = "coupon.CouponIssued"
)]
pub struct CouponIssued {
    /// The coupon issued; also the record key.
    pub coupon_id: String,
    /// The user who got it.
    pub user_id: String,
    /// When it was issued (milliseconds since the Unix epoch).
    pub issued_at: TimestampMillis,
}

/// A user asks for a coupon: the value of a [`TOPIC`] record, Avro record
/// `coupon.IssueRequested`:
///
/// ```json
/// {"type": "record", "name": "IssueRequested", "namespace": "coupon", "fields": [
///   {"name": "coupon_id", "type": "string"},
///   {"name": "user_id", "type": "string"},
///   {"name": "requested_at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "coupon")]
pub struct IssueRequested {
    /// The coupon asked for; also the record key.
    pub coupon_id: String,
    /// The user asking.
    pub user_id: String,
    /// When the HTTP request was accepted (milliseconds since the Unix
    /// epoch).
    pub requested_at: TimestampMillis,
}

/// What the listener (as `State<AppState>`) and the HTTP handlers share.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) db: Db,
    /// Writes the `pending` rows of accepted requests, many per statement.
    pub(crate) pending: PendingWriter,
    pub(crate) lag: Arc<LagTracker>,
    pub(crate) template: KafkaTemplate,
    pub(crate) send_timeout: Duration,
    pub(crate) dead_letters: DeadLetterStore,
    /// Decodes dead letters (Avro) to mark their requests failed.
    pub(crate) avro: AvroCodec,
    /// Begins the decision's transactions; its outbox carries
    /// [`CouponIssued`] to [`ISSUED_TOPIC`].
    pub(crate) events: TransactionalEvents,
}

/// An unknown coupon in a request: retrying cannot help.
#[derive(Debug, thiserror::Error)]
#[error("no coupon `{0}`")]
struct UnknownCoupon(String);

/// A request that cannot be valid (empty ids, key not the coupon id).
#[derive(Debug, thiserror::Error)]
#[error("invalid request: {0}")]
struct InvalidRequest(String);

/// The `coupon-issuer` listener: one database transaction per batch of
/// requests (up to 500 of one partition, in offset order; see
/// [`Db::issue_batch`](crate::db::Db::issue_batch)).
///
/// A request that cannot be valid (empty ids) or names a coupon that does
/// not exist fails on its own: the requests before it are decided and
/// committed, it goes to [`DLT`] at once (retrying cannot help), and the
/// ones after it come again in the next batch.
///
/// Retries: transient failures (a database that is busy or down) are tried
/// 8 times with an exponential back-off from 100 ms to 5 s (with jitter;
/// ~16 s in all) while the partition waits, so order is kept; the batch is
/// decided again from the start, which changes nothing for what a failed
/// transaction did not commit. What still fails goes to [`DLT`] (the
/// offset is committed once the broker has it); [`dead_letters_spec`]
/// stores it in the database and marks its request `failed`. Up to 10,000
/// records are queued per partition (the default `max_in_flight`).
///
/// The attribute's `concurrency` is the default of `LISTENER_CONCURRENCY`;
/// the configured value is applied with
/// `KafkaAppBuilder::customize_listener(LISTENER_ID, ...)`.
#[kafka_listener(id = "coupon-issuer", topics = ["coupon.issue.requested"],
                 group_id = "coupon-issuer", concurrency = 3, batch = true,
                 retry(attempts = 8, initial = "100ms", max = "5s"), dead_letter = true)]
pub(crate) async fn issue(
    requests: Vec<Avro<IssueRequested>>,
    metas: Vec<RecordMeta>,
    app: State<AppState>,
) -> Result<(), ListenerError> {
    let invalid = requests
        .iter()
        .position(|r| r.coupon_id.is_empty() || r.user_id.is_empty());
    let batch: Vec<Request<'_>> = requests[..invalid.unwrap_or(requests.len())]
        .iter()
        .zip(&metas)
        .map(|(req, meta)| Request {
            req,
            partition: meta.partition,
            offset: meta.offset,
        })
        .collect();
    let outcomes = if batch.is_empty() {
        Vec::new()
    } else {
        app.db
            .issue_batch(&app.events, &batch, now_ms())
            .await
            .map_err(ListenerError::retryable)?
    };
    for (outcome, r) in outcomes.iter().zip(&batch) {
        let label = match outcome {
            IssueOutcome::Issued => "issued",
            IssueOutcome::SoldOut => "sold_out",
            IssueOutcome::AlreadyDecided => "duplicate",
            IssueOutcome::UnknownCoupon => break,
        };
        metrics::counter!("coupon_issue_outcomes_total", "outcome" => label).increment(1);
        app.lag.handled(r.partition, r.offset);
        tracing::debug!(coupon_id = %r.req.coupon_id, user_id = %r.req.user_id, partition = r.partition,
            offset = r.offset, outcome = label, "request decided");
    }
    if outcomes.last() == Some(&IssueOutcome::UnknownCoupon) {
        let i = outcomes.len() - 1;
        return Err(ListenerError::fatal(UnknownCoupon(requests[i].coupon_id.clone())).at_index(i));
    }
    match invalid {
        Some(i) => Err(
            ListenerError::fatal(InvalidRequest("empty coupon_id or user_id".into())).at_index(i),
        ),
        None => Ok(()),
    }
}

/// The listener of [`DLT`]: stores each dead letter in the framework's
/// dead-letter store and marks its request `failed`; an admin replays it
/// with `POST /admin/dead-letters/{id}/replay`. A database that is down is
/// retried while the partition waits (nothing is lost).
pub(crate) fn dead_letters_spec() -> ListenerSpec {
    ListenerSpec::new(DEAD_LETTERS_ID)
        .topics([DLT])
        .retry(RetryPolicy::exponential(
            u32::MAX,
            Duration::from_millis(500),
            2.0,
            Duration::from_secs(30),
        ))
        .handler(store_dead_letter)
}

pub(crate) async fn store_dead_letter(
    record: ConsumerRecord,
    app: State<AppState>,
) -> Result<(), ListenerError> {
    let id = app
        .dead_letters
        .save(&record)
        .await
        .map_err(ListenerError::retryable)?;
    // A poison pill (not Avro, or not this schema) has no request to mark.
    let request = match record.value() {
        Some(bytes) => match app.avro.decode::<IssueRequested>(bytes).await {
            Ok(req) => Some(req),
            Err(e) if e.is_retryable() => return Err(ListenerError::retryable(e)),
            Err(_) => None,
        },
        None => None,
    }
    .filter(|r| !r.coupon_id.is_empty() && !r.user_id.is_empty());
    let error = record
        .headers()
        .get_str(EXCEPTION_STACKTRACE)
        .unwrap_or("unknown error");
    if let Some(req) = &request {
        app.db.mark_failed(req, error, now_ms()).await?;
    }
    if let Some(original) = Original::from_headers(record.headers()) {
        app.lag.handled(original.partition, original.offset);
    }
    metrics::counter!("coupon_issue_outcomes_total", "outcome" => "dead_letter").increment(1);
    tracing::warn!(dead_letter = %id, error = %error, "request failed for good; stored as a dead letter");
    Ok(())
}
