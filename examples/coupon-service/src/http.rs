//! The HTTP API (axum). Every error answer is JSON `{"error": "..."}`,
//! including malformed bodies, bad paths and unknown routes.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use example_support::http::{check_id, ApiError, ApiJson, ApiPath};
use kafka_listener::console::Console;
use kafka_listener::dlq::{StoreError, StoredDeadLetter};
use kafka_listener::ProducerRecord;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};

use crate::db::{status, Coupon};
use crate::listener::{AppState, IssueRequested, TOPIC};
use crate::now_ms;

/// The router over `state`, with `/health`, the JSON 404 and 405 and,
/// with a Prometheus handle, `/metrics` (see [`example_support::http::router`]),
/// the operator `console` at `/console`, and `/admin/*` behind the
/// console's token (401/403 with a JSON reason, see
/// [`kafka_listener::console::guard`]).
pub(crate) fn router(
    state: AppState,
    metrics: Option<PrometheusHandle>,
    console: Console,
) -> Router {
    let admin = Router::new()
        .route("/admin/dead-letters", get(list_dead_letters))
        .route("/admin/dead-letters/{id}/replay", post(replay_dead_letter))
        .route_layer(axum::middleware::from_fn_with_state(
            console.clone(),
            kafka_listener::console::guard,
        ));
    let routes = Router::new()
        .route("/coupons", post(create_coupon))
        .route("/coupons/{coupon_id}", get(get_coupon))
        .route("/coupons/{coupon_id}/issue", post(request_issue))
        .route("/coupons/{coupon_id}/issues/{user_id}", get(get_status))
        .merge(admin)
        .merge(console.mount("/console"));
    example_support::http::router(routes, state, metrics)
}

// The API's bodies. Each derives both `Serialize` and `Deserialize`: the
// handlers write the responses and read the requests, the load generator
// (`crate::load`) does the opposite with the same types.

/// `POST /coupons` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CreateCoupon {
    pub(crate) coupon_id: String,
    pub(crate) stock: i64,
}

/// `POST /coupons` answer (201): the new coupon, nothing issued yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CouponCreated {
    pub(crate) coupon_id: String,
    pub(crate) stock: i64,
    pub(crate) issued: i64,
}

/// `POST /coupons/{id}/issue` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IssueBody {
    pub(crate) user_id: String,
}

/// `POST /coupons/{id}/issue` answer (202): the request is on the topic,
/// at `partition` and `offset`; its `status` is `pending`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IssueAccepted {
    pub(crate) coupon_id: String,
    pub(crate) user_id: String,
    pub(crate) status: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
}

/// `GET /coupons/{id}` answer: the stock and where the requests stand.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CouponView {
    pub(crate) coupon_id: String,
    pub(crate) stock: i64,
    pub(crate) issued: i64,
    /// `stock - issued`.
    pub(crate) remaining: i64,
    pub(crate) pending: i64,
    pub(crate) sold_out: i64,
    pub(crate) failed: i64,
}

impl From<Coupon> for CouponView {
    fn from(c: Coupon) -> Self {
        Self {
            remaining: c.stock - c.issued,
            coupon_id: c.coupon_id,
            stock: c.stock,
            issued: c.issued,
            pending: c.pending,
            sold_out: c.sold_out,
            failed: c.failed,
        }
    }
}

/// `GET /coupons/{id}/issues/{user_id}` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IssueStatus {
    pub(crate) coupon_id: String,
    pub(crate) user_id: String,
    /// `pending`, `issued`, `sold_out` or `failed`.
    pub(crate) status: String,
    /// When the service accepted the request, in milliseconds since the
    /// Unix epoch.
    pub(crate) requested_at: i64,
    /// When the listener decided it (same unit); `null` while pending.
    pub(crate) decided_at: Option<i64>,
}

/// `GET /admin/dead-letters` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeadLetters {
    /// Oldest first.
    pub(crate) dead_letters: Vec<DeadLetterView>,
}

/// One dead letter: the original record's topic, partition, offset, key
/// and payload (UTF-8, lossy), why it failed and when it was stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeadLetterView {
    /// `<dlt topic>-<dlt partition>-<dlt offset>`: what the replay route takes.
    pub(crate) id: String,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: Option<String>,
    pub(crate) payload: Option<String>,
    /// `Retryable`, `Fatal` or `Decode`, when the publisher said.
    pub(crate) error_kind: Option<String>,
    /// The error chain, one cause per line (or the message alone).
    pub(crate) error: Option<String>,
    pub(crate) attempts: i64,
    /// When it was stored, ms since the Unix epoch.
    pub(crate) failed_at: i64,
}

impl From<StoredDeadLetter> for DeadLetterView {
    fn from(l: StoredDeadLetter) -> Self {
        Self {
            key: l.key_str(),
            payload: l.payload_str(),
            id: l.id,
            topic: l.original_topic,
            partition: l.original_partition,
            offset: l.original_offset,
            error_kind: l.error_kind,
            error: l.exception_stacktrace.or(l.exception_message),
            attempts: l.attempts,
            failed_at: l.stored_at,
        }
    }
}

/// `POST /admin/dead-letters/{id}/replay` answer (202): where the copy of
/// the record went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Replayed {
    /// The dead letter's id.
    pub(crate) replayed: String,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
}

async fn create_coupon(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<CreateCoupon>,
) -> Result<Response, ApiError> {
    check_id("coupon_id", &body.coupon_id)?;
    if body.stock < 0 {
        return Err(ApiError::bad_request(format!(
            "stock must be 0 or more, got {}",
            body.stock
        )));
    }
    if !app
        .db
        .create_coupon(&body.coupon_id, body.stock, now_ms())
        .await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("coupon `{}` exists already", body.coupon_id),
        ));
    }
    tracing::info!(coupon_id = %body.coupon_id, stock = body.stock, "coupon created");
    let location = HeaderValue::try_from(format!("/coupons/{}", body.coupon_id)).ok();
    let created = CouponCreated {
        coupon_id: body.coupon_id,
        stock: body.stock,
        issued: 0,
    };
    let mut response = (StatusCode::CREATED, Json(created)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn get_coupon(
    State(app): State<AppState>,
    ApiPath(coupon_id): ApiPath<String>,
) -> Result<Json<CouponView>, ApiError> {
    match app.db.coupon(&coupon_id).await? {
        Some(coupon) => Ok(Json(coupon.into())),
        None => Err(ApiError::not_found(format!("no coupon `{coupon_id}`"))),
    }
}

async fn request_issue(
    State(app): State<AppState>,
    ApiPath(coupon_id): ApiPath<String>,
    ApiJson(body): ApiJson<IssueBody>,
) -> Result<(StatusCode, Json<IssueAccepted>), ApiError> {
    check_id("user_id", &body.user_id)?;
    if let Err(lag) = app.lag.admit() {
        metrics::counter!("coupon_issue_requests_total", "outcome" => "overloaded").increment(1);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("overloaded: the coupon-issuer listener is {lag} records behind; retry later"),
        )
        .with_retry_after(1));
    }
    if !app.db.coupon_exists(&coupon_id).await? {
        return Err(ApiError::not_found(format!("no coupon `{coupon_id}`")));
    }
    let now = now_ms();
    app.pending
        .insert(&coupon_id, &body.user_id, now)
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).with_retry_after(1)
        })?;
    let event = IssueRequested {
        coupon_id,
        user_id: body.user_id,
        requested_at: now.into(),
    };
    let failure = match send_request(&app, &event).await {
        Ok(sent) => {
            app.lag.produced(sent.partition, sent.offset);
            metrics::counter!("coupon_issue_requests_total", "outcome" => "accepted").increment(1);
            return Ok((
                StatusCode::ACCEPTED,
                Json(IssueAccepted {
                    coupon_id: event.coupon_id,
                    user_id: event.user_id,
                    status: status::PENDING.to_owned(),
                    partition: sent.partition,
                    offset: sent.offset,
                }),
            ));
        }
        Err(failure) => failure,
    };
    metrics::counter!("coupon_issue_requests_total", "outcome" => "unavailable").increment(1);
    tracing::warn!(coupon_id = %event.coupon_id, user_id = %event.user_id, error = %failure, "issue request not sent");
    if let Err(e) = app
        .db
        .forget_pending(&event.coupon_id, &event.user_id, now)
        .await
    {
        tracing::warn!(error = %e, "could not remove the pending row of a request that was not sent");
    }
    Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, failure).with_retry_after(1))
}

/// Encodes `event` as Avro (registering its schema on the first send; a
/// registry that cannot be reached fails like a broker that cannot) and
/// sends it keyed by the coupon id; `Err` is the reason for the 503.
async fn send_request(
    app: &AppState,
    event: &IssueRequested,
) -> Result<kafka_listener::SendResult, String> {
    let record = ProducerRecord::keyed(TOPIC, event.coupon_id.clone())
        .avro(&app.avro, event)
        .await
        .map_err(|e| format!("cannot encode the request as Avro: {e}"))?;
    let started = Instant::now();
    // The producer gives up after `message.timeout.ms` (the send timeout);
    // the outer timeout only guards against a send that never resolves.
    let limit = app.send_timeout + Duration::from_secs(5);
    let sent = tokio::time::timeout(limit, app.template.send(record)).await;
    metrics::histogram!("coupon_issue_send_seconds").record(started.elapsed().as_secs_f64());
    match sent {
        Ok(Ok(sent)) => Ok(sent),
        Ok(Err(e)) => Err(format!("the broker did not acknowledge the request: {e}")),
        Err(_) => Err(format!(
            "the broker did not acknowledge the request: no answer within {limit:?}"
        )),
    }
}

async fn get_status(
    State(app): State<AppState>,
    ApiPath((coupon_id, user_id)): ApiPath<(String, String)>,
) -> Result<Json<IssueStatus>, ApiError> {
    match app.db.request(&coupon_id, &user_id).await? {
        Some(row) => Ok(Json(IssueStatus {
            coupon_id,
            user_id,
            status: row.status,
            requested_at: row.requested_at,
            decided_at: row.decided_at,
        })),
        None if app.db.coupon_exists(&coupon_id).await? => Err(ApiError::not_found(format!(
            "user `{user_id}` has not requested coupon `{coupon_id}`"
        ))),
        None => Err(ApiError::not_found(format!("no coupon `{coupon_id}`"))),
    }
}

/// The dead letters not replayed yet, oldest first (see [`DeadLetters`]).
async fn list_dead_letters(State(app): State<AppState>) -> Result<Json<DeadLetters>, ApiError> {
    let letters = app.dead_letters.list().await.map_err(store_error)?;
    Ok(Json(DeadLetters {
        dead_letters: letters.into_iter().map(DeadLetterView::from).collect(),
    }))
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Database(e) => e.into(),
        other => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
    }
}

/// Sends a dead letter's record to its topic again with its key (and a
/// `kafka_listener-replayed-from` header), and takes it off the list once
/// the broker acknowledged the copy. Never automatic: a record that keeps
/// failing would loop.
async fn replay_dead_letter(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let sent = match app.dead_letters.replay(&id, &app.template).await {
        Ok(Some(sent)) => sent,
        Ok(None) => return Err(ApiError::not_found(format!("no dead letter `{id}`"))),
        Err(StoreError::Replay(e)) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the broker did not acknowledge the replay: {e}"),
            ))
        }
        Err(e) => return Err(store_error(e)),
    };
    app.lag.produced(sent.partition, sent.offset);
    tracing::info!(dead_letter = %id, partition = sent.partition, offset = sent.offset, "dead letter replayed");
    Ok((
        StatusCode::ACCEPTED,
        Json(Replayed {
            replayed: id,
            topic: sent.topic,
            partition: sent.partition,
            offset: sent.offset,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn wire(body: impl Serialize) -> Value {
        serde_json::to_value(body).unwrap()
    }

    /// The field names and shapes of every answer, as the README documents
    /// them and clients read them (a null stays a null, never an absent
    /// field).
    #[test]
    fn answers_keep_their_wire_shape() {
        assert_eq!(
            wire(CouponCreated {
                coupon_id: "c".into(),
                stock: 5,
                issued: 0
            }),
            json!({"coupon_id": "c", "stock": 5, "issued": 0})
        );
        assert_eq!(
            wire(IssueAccepted {
                coupon_id: "c".into(),
                user_id: "u".into(),
                status: status::PENDING.into(),
                partition: 2,
                offset: 41,
            }),
            json!({"coupon_id": "c", "user_id": "u", "status": "pending", "partition": 2, "offset": 41})
        );
        let coupon = Coupon {
            coupon_id: "c".into(),
            stock: 5,
            issued: 2,
            pending: 1,
            sold_out: 3,
            failed: 4,
        };
        assert_eq!(
            wire(CouponView::from(coupon)),
            json!({"coupon_id": "c", "stock": 5, "issued": 2, "remaining": 3,
                   "pending": 1, "sold_out": 3, "failed": 4})
        );
        assert_eq!(
            wire(IssueStatus {
                coupon_id: "c".into(),
                user_id: "u".into(),
                status: status::SOLD_OUT.into(),
                requested_at: 100,
                decided_at: Some(130),
            }),
            json!({"coupon_id": "c", "user_id": "u", "status": "sold_out",
                   "requested_at": 100, "decided_at": 130})
        );
        assert_eq!(
            wire(Replayed {
                replayed: "t-dlt-0-7".into(),
                topic: "t".into(),
                partition: 0,
                offset: 9,
            }),
            json!({"replayed": "t-dlt-0-7", "topic": "t", "partition": 0, "offset": 9})
        );
    }

    fn stored(stacktrace: Option<&str>, key: Option<&[u8]>) -> StoredDeadLetter {
        StoredDeadLetter {
            id: "coupon.issue.requested-dlt-1-4".into(),
            dlt_topic: "coupon.issue.requested-dlt".into(),
            dlt_partition: 1,
            dlt_offset: 4,
            original_topic: "coupon.issue.requested".into(),
            original_partition: 1,
            original_offset: 17,
            original_timestamp: Some(5),
            consumer_group: Some("coupon-issuer".into()),
            key: key.map(<[u8]>::to_vec),
            payload: Some(b"\xff{".to_vec()),
            headers: vec![],
            exception_fqcn: Some("UnknownCoupon".into()),
            exception_message: Some("no coupon `x`".into()),
            exception_stacktrace: stacktrace.map(str::to_owned),
            error_kind: Some("Fatal".into()),
            attempts: 1,
            stored_at: 1234,
            replayed_at: None,
        }
    }

    /// A dead letter shows the original record's coordinates, its key and
    /// payload as (lossy) UTF-8, and the error chain, or the message when
    /// there is no chain.
    #[test]
    fn dead_letters_show_the_original_record() {
        let letters = DeadLetters {
            dead_letters: vec![
                stored(Some("listener failed\nno coupon `x`"), Some(b"x")).into(),
                stored(None, None).into(),
            ],
        };
        assert_eq!(
            wire(letters),
            json!({"dead_letters": [
                {"id": "coupon.issue.requested-dlt-1-4", "topic": "coupon.issue.requested",
                 "partition": 1, "offset": 17, "key": "x", "payload": "\u{fffd}{",
                 "error_kind": "Fatal", "error": "listener failed\nno coupon `x`",
                 "attempts": 1, "failed_at": 1234},
                {"id": "coupon.issue.requested-dlt-1-4", "topic": "coupon.issue.requested",
                 "partition": 1, "offset": 17, "key": null, "payload": "\u{fffd}{",
                 "error_kind": "Fatal", "error": "no coupon `x`",
                 "attempts": 1, "failed_at": 1234},
            ]})
        );
    }
}
