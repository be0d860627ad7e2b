//! The HTTP API (axum). Every error answer is JSON `{"error": "..."}`,
//! including malformed bodies, bad paths and unknown routes.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use example_support::http::{check_id, ApiError, ApiJson, ApiPath};
use kafka_listener::dlq::StoreError;
use kafka_listener::ProducerRecord;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::db::status;
use crate::listener::{AppState, IssueRequested, TOPIC};
use crate::now_ms;

/// The router over `state`, with `/health`, the JSON 404 and 405 and,
/// with a Prometheus handle, `/metrics` (see [`example_support::http::router`]).
pub(crate) fn router(state: AppState, metrics: Option<PrometheusHandle>) -> Router {
    let routes = Router::new()
        .route("/coupons", post(create_coupon))
        .route("/coupons/{coupon_id}", get(get_coupon))
        .route("/coupons/{coupon_id}/issue", post(request_issue))
        .route("/coupons/{coupon_id}/issues/{user_id}", get(get_status))
        .route("/admin/dead-letters", get(list_dead_letters))
        .route("/admin/dead-letters/{id}/replay", post(replay_dead_letter));
    example_support::http::router(routes, state, metrics)
}

/// `POST /coupons` body.
#[derive(Debug, Deserialize)]
struct CreateCoupon {
    coupon_id: String,
    stock: i64,
}

/// `POST /coupons/{id}/issue` body.
#[derive(Debug, Deserialize)]
struct IssueBody {
    user_id: String,
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
    let mut response = (
        StatusCode::CREATED,
        Json(json!({"coupon_id": body.coupon_id, "stock": body.stock, "issued": 0})),
    )
        .into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn get_coupon(
    State(app): State<AppState>,
    ApiPath(coupon_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    match app.db.coupon(&coupon_id).await? {
        Some(view) => Ok(Json(serde_json::to_value(view).unwrap_or_default())),
        None => Err(ApiError::not_found(format!("no coupon `{coupon_id}`"))),
    }
}

async fn request_issue(
    State(app): State<AppState>,
    ApiPath(coupon_id): ApiPath<String>,
    ApiJson(body): ApiJson<IssueBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    let inserted = app.db.mark_pending(&coupon_id, &body.user_id, now).await?;
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
                Json(json!({
                    "coupon_id": event.coupon_id,
                    "user_id": event.user_id,
                    "status": status::PENDING,
                    "partition": sent.partition,
                    "offset": sent.offset,
                })),
            ));
        }
        Err(failure) => failure,
    };
    metrics::counter!("coupon_issue_requests_total", "outcome" => "unavailable").increment(1);
    tracing::warn!(coupon_id = %event.coupon_id, user_id = %event.user_id, error = %failure, "issue request not sent");
    if inserted {
        if let Err(e) = app
            .db
            .forget_pending(&event.coupon_id, &event.user_id)
            .await
        {
            tracing::warn!(error = %e, "could not remove the pending row of a request that was not sent");
        }
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
) -> Result<Json<Value>, ApiError> {
    match app.db.status(&coupon_id, &user_id).await? {
        Some(status) => Ok(Json(
            json!({"coupon_id": coupon_id, "user_id": user_id, "status": status}),
        )),
        None if app.db.coupon_exists(&coupon_id).await? => Err(ApiError::not_found(format!(
            "user `{user_id}` has not requested coupon `{coupon_id}`"
        ))),
        None => Err(ApiError::not_found(format!("no coupon `{coupon_id}`"))),
    }
}

/// The dead letters not replayed yet, oldest first: `{"dead_letters":
/// [{"id", "topic", "partition", "offset", "key", "payload", "error_kind",
/// "error", "attempts", "failed_at"}]}` (the original record's topic,
/// partition and offset; `failed_at` in ms since the Unix epoch).
async fn list_dead_letters(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let letters = app.dead_letters.list().await.map_err(store_error)?;
    let letters: Vec<Value> = letters
        .iter()
        .map(|l| {
            json!({
                "id": l.id,
                "topic": l.original_topic,
                "partition": l.original_partition,
                "offset": l.original_offset,
                "key": l.key_str(),
                "payload": l.payload_str(),
                "error_kind": l.error_kind,
                "error": l.exception_stacktrace.as_deref().or(l.exception_message.as_deref()),
                "attempts": l.attempts,
                "failed_at": l.stored_at,
            })
        })
        .collect();
    Ok(Json(json!({ "dead_letters": letters })))
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
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
        Json(
            json!({"replayed": id, "topic": sent.topic, "partition": sent.partition, "offset": sent.offset}),
        ),
    ))
}
