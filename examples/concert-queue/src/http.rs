//! The HTTP API (axum). Every error answer is JSON `{"error": "..."}`,
//! including malformed bodies, bad paths and unknown routes.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use example_support::http::{check_id, ApiError, ApiJson, ApiPath};
use kafka_listener::ProducerRecord;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::db::{status, Enqueued, Token};
use crate::listener::{AppState, TokenQueued, LISTENER_ID, PARTITION, TOPIC};
use crate::now_ms;

/// The router over `state`, with `/health`, the JSON 404 and 405 and,
/// with a Prometheus handle, `/metrics` (see [`example_support::http::router`]).
pub(crate) fn router(state: AppState, metrics: Option<PrometheusHandle>) -> Router {
    let routes = Router::new()
        .route("/queue/tokens", post(enqueue))
        .route("/queue/tokens/{token_id}", get(get_token))
        .route("/queue/stats", get(stats))
        .route("/admin/admission/start", post(start_admission));
    example_support::http::router(routes, state, metrics)
}

/// `POST /queue/tokens` body.
#[derive(Debug, Deserialize)]
struct EnqueueBody {
    user_id: String,
}

/// The JSON view of a token; `next` is the admission cursor read before the
/// row (so a `waiting` row's offset is at or past it).
fn view(token: &Token, next: Option<(i64, &str)>, now: i64) -> Value {
    let status = token.status_at(now);
    let mut v = json!({
        "token_id": token.token_id,
        "user_id": token.user_id,
        "status": status,
        "offset": token.record_offset,
        "queued_at": token.created_at,
    });
    if status == status::WAITING {
        if let Some((next, source)) = next {
            v["position"] = json!(token.record_offset.map(|o| (o - next).max(0)));
            v["position_source"] = json!(source);
        }
    } else {
        v["admitted_at"] = json!(token.admitted_at);
        v["expires_at"] = json!(token.expires_at);
        v["admission_seq"] = json!(token.admission_seq);
    }
    v
}

/// A fresh token id: 32 hex digits from the process' keyed SipHash over a
/// counter and the clock (unguessable without the per-process keys).
fn new_token_id() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let half = |salt: u8| RandomState::new().hash_one((salt, n, nanos, std::process::id()));
    format!("{:016x}{:016x}", half(1), half(2))
}

async fn enqueue(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<EnqueueBody>,
) -> Result<Response, ApiError> {
    check_id("user_id", &body.user_id)?;
    if let Some(limit) = app.max_waiting {
        let (next, _) = app.cursor.next_offset().await;
        let waiting = app.produced_end.load(Ordering::Acquire) - next;
        if waiting > limit {
            metrics::counter!("concert_queue_requests_total", "outcome" => "full").increment(1);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("the queue is full: {waiting} tokens waiting (limit {limit}); retry later"),
            )
            .with_retry_after(1));
        }
    }
    let now = now_ms();
    let token_id = new_token_id();
    if let Enqueued::Existing(existing) = app.db.enqueue(&token_id, &body.user_id, now).await? {
        let next = app.cursor.next_offset().await;
        let existing = app.db.token(&existing.token_id).await?.unwrap_or(existing);
        metrics::counter!("concert_queue_requests_total", "outcome" => "existing").increment(1);
        return Ok((
            StatusCode::OK,
            Json(view(&existing, Some((next.0, next.1.as_str())), now_ms())),
        )
            .into_response());
    }
    let event = TokenQueued {
        token_id,
        user_id: body.user_id,
        queued_at: now,
    };
    let record = ProducerRecord::keyed(TOPIC, event.user_id.clone())
        .partition(PARTITION)
        .json(&event)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let started = Instant::now();
    // The producer gives up after `message.timeout.ms` (the send timeout);
    // the outer timeout only guards against a send that never resolves.
    let sent = tokio::time::timeout(
        app.send_timeout + Duration::from_secs(5),
        app.template.send(record),
    )
    .await;
    metrics::histogram!("concert_queue_send_seconds").record(started.elapsed().as_secs_f64());
    let failure = match sent {
        Ok(Ok(sent)) => {
            app.produced(sent.offset);
            app.db.set_offset(&event.token_id, sent.offset).await?;
            let (next, source) = app.cursor.next_offset().await;
            metrics::counter!("concert_queue_requests_total", "outcome" => "accepted").increment(1);
            let token = app.db.token(&event.token_id).await?;
            let body = match token {
                Some(token) => view(&token, Some((next, source.as_str())), now_ms()),
                None => json!({"token_id": event.token_id, "user_id": event.user_id,
                    "status": status::WAITING, "offset": sent.offset,
                    "position": (sent.offset - next).max(0), "position_source": source.as_str()}),
            };
            let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
            if let Ok(location) = HeaderValue::try_from(format!("/queue/tokens/{}", event.token_id))
            {
                response.headers_mut().insert(header::LOCATION, location);
            }
            return Ok(response);
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!(
            "no answer within {:?}",
            app.send_timeout + Duration::from_secs(5)
        ),
    };
    metrics::counter!("concert_queue_requests_total", "outcome" => "unavailable").increment(1);
    tracing::warn!(token_id = %event.token_id, user_id = %event.user_id, error = %failure, "token not acknowledged by the broker");
    if let Err(e) = app.db.forget(&event.token_id).await {
        tracing::warn!(error = %e, "could not remove the token the broker refused");
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the broker did not acknowledge the token: {failure}"),
    )
    .with_retry_after(1))
}

async fn get_token(
    State(app): State<AppState>,
    ApiPath(token_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    check_id("token_id", &token_id)?;
    // The cursor first, then the row: a row still `waiting` after the
    // cursor was read has an offset at or past it.
    let (next, source) = app.cursor.next_offset().await;
    match app.db.token(&token_id).await? {
        Some(token) => Ok(Json(view(&token, Some((next, source.as_str())), now_ms()))),
        None => Err(ApiError::not_found(format!("no token `{token_id}`"))),
    }
}

async fn stats(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let (next, source) = app.cursor.next_offset().await;
    let log_end = app.cursor.log_end().await;
    let now = now_ms();
    let window = app.admit_rate.per().max(Duration::from_secs(10));
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let counts = app.db.counts(now, window_ms).await?;
    Ok(Json(json!({
        "waiting": counts.waiting,
        "active": counts.active,
        "expired": counts.expired,
        "admitted_total": counts.admitted_total,
        "admitted_per_second": counts.admitted_in_window as f64 / window.as_secs_f64(),
        "rate_window_seconds": window.as_secs_f64(),
        "configured_rate": app.admit_rate.to_string(),
        "configured_per_second": app.admit_rate.per_second(),
        "active_ttl_seconds": app.active_ttl.as_secs_f64(),
        "admitting": app.admitting(),
        "next_offset": next,
        "next_offset_source": source.as_str(),
        "log_end_offset": log_end,
        "waiting_by_offsets": log_end.map(|end| (end - next).max(0)),
    })))
}

/// Opens the doors of a service started with `--paused`
/// (`admit_on_start = false`): starts the admission listener. Idempotent.
async fn start_admission(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let Some(container) = app.listeners.container(LISTENER_ID) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the admission listener is not set up yet",
        ));
    };
    container.start().map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot start the admission listener: {e}"),
        )
    })?;
    tracing::info!("admission started");
    Ok(Json(json!({ "admitting": true })))
}
