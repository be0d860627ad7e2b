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
use serde::{Deserialize, Serialize};

use crate::db::{status, Counts, Enqueued, Token};
use crate::listener::{AppState, TokenQueued, LISTENER_ID, PARTITION, TOPIC};
use crate::now_ms;
use crate::position::Source;

/// The router over `state`, with `/health`, the JSON 404 and 405 and,
/// with a Prometheus handle, `/metrics` (see [`example_support::http::router`]),
/// the operator `console` at `/console`, and `/admin/*` behind the
/// console's token (401/403 with a JSON reason, see
/// [`kafka_listener::console::guard`]).
pub(crate) fn router(
    state: AppState,
    metrics: Option<PrometheusHandle>,
    console: kafka_listener::console::Console,
) -> Router {
    let admin = Router::new()
        .route("/admin/admission/start", post(start_admission))
        .route_layer(axum::middleware::from_fn_with_state(
            console.clone(),
            kafka_listener::console::guard,
        ));
    let routes = Router::new()
        .route("/queue/tokens", post(enqueue))
        .route("/queue/tokens/{token_id}", get(get_token))
        .route("/queue/stats", get(stats))
        .merge(admin)
        .merge(console.mount("/console"));
    example_support::http::router(routes, state, metrics)
}

// The API's bodies. Each derives both `Serialize` and `Deserialize`: the
// handlers write the responses and read the requests, the load generator
// (`crate::load`) does the opposite with the same types.

/// `POST /queue/tokens` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EnqueueBody {
    pub(crate) user_id: String,
}

/// A token: the answer of `POST /queue/tokens` (202 for a new token, 200
/// for the one the user holds already) and `GET /queue/tokens/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TokenView {
    pub(crate) token_id: String,
    pub(crate) user_id: String,
    /// `waiting`, `active` or `expired` (an `active` token past its expiry
    /// shows `expired` before the sweeper marked it).
    pub(crate) status: String,
    /// The token record's offset on partition 0 (null while its send is in
    /// flight).
    pub(crate) offset: Option<i64>,
    /// When the token was created, ms since the Unix epoch.
    pub(crate) queued_at: i64,
    /// What depends on the status: the position while waiting, the
    /// admission afterwards.
    #[serde(flatten)]
    pub(crate) progress: Progress,
}

/// The fields of a [`TokenView`] that depend on its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Progress {
    /// A `waiting` token.
    Waiting {
        /// Tokens ahead of it: its offset minus the admission cursor (0 at
        /// the head; null while its send is in flight).
        position: Option<i64>,
        /// Where the cursor came from: `finished` (this instance's
        /// listener) or `committed` (the group's committed offset).
        position_source: String,
    },
    /// An `active` or `expired` token.
    Admitted {
        /// When it was admitted, ms since the Unix epoch.
        admitted_at: Option<i64>,
        /// When its admission ends, ms since the Unix epoch.
        expires_at: Option<i64>,
        /// Its admission number: 1, 2, 3, ... in admission order.
        admission_seq: Option<i64>,
    },
}

impl TokenView {
    /// The view of `token` as of `now`; `next` is the admission cursor read
    /// before the row (so a `waiting` row's offset is at or past it).
    fn new(token: Token, (next, source): (i64, Source), now: i64) -> Self {
        let status = token.status_at(now).to_owned();
        let progress = if status == status::WAITING {
            Progress::Waiting {
                position: token.record_offset.map(|o| (o - next).max(0)),
                position_source: source.as_str().to_owned(),
            }
        } else {
            Progress::Admitted {
                admitted_at: token.admitted_at,
                expires_at: token.expires_at,
                admission_seq: token.admission_seq,
            }
        };
        Self {
            token_id: token.token_id,
            user_id: token.user_id,
            status,
            offset: token.record_offset,
            queued_at: token.created_at,
            progress,
        }
    }

    /// The position of a `waiting` token; `None` otherwise.
    pub(crate) fn position(&self) -> Option<i64> {
        match self.progress {
            Progress::Waiting { position, .. } => position,
            Progress::Admitted { .. } => None,
        }
    }
}

/// `GET /queue/stats` answer: the token counts, the admission rate, and the
/// cursor against the log end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct QueueStats {
    pub(crate) waiting: i64,
    pub(crate) active: i64,
    pub(crate) expired: i64,
    pub(crate) admitted_total: i64,
    /// Admissions per second over the last `rate_window_seconds`.
    pub(crate) admitted_per_second: f64,
    pub(crate) rate_window_seconds: f64,
    /// `QUEUE_ADMIT_RATE`, as `M/Ns`.
    pub(crate) configured_rate: String,
    pub(crate) configured_per_second: f64,
    pub(crate) active_ttl_seconds: f64,
    /// Whether this instance's admission listener runs.
    pub(crate) admitting: bool,
    /// The admission cursor: the offset of the next token to admit.
    pub(crate) next_offset: i64,
    /// `finished` or `committed` (see [`Progress::Waiting`]).
    pub(crate) next_offset_source: String,
    /// The partition's log end offset (null when the broker did not
    /// answer).
    pub(crate) log_end_offset: Option<i64>,
    /// `log_end_offset - next_offset`, at least 0.
    pub(crate) waiting_by_offsets: Option<i64>,
}

/// `POST /admin/admission/start` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Admitting {
    /// Always `true`: the listener runs.
    pub(crate) admitting: bool,
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
            Json(TokenView::new(existing, next, now_ms())),
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
            let next = app.cursor.next_offset().await;
            metrics::counter!("concert_queue_requests_total", "outcome" => "accepted").increment(1);
            // The row as it is now (the listener may have admitted it
            // already); as it was written, should it be gone.
            let token = app.db.token(&event.token_id).await?.unwrap_or(Token {
                token_id: event.token_id.clone(),
                user_id: event.user_id.clone(),
                status: status::WAITING.to_owned(),
                created_at: now,
                record_offset: Some(sent.offset),
                admitted_at: None,
                expires_at: None,
                admission_seq: None,
                deliveries: 0,
            });
            let body = TokenView::new(token, next, now_ms());
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
) -> Result<Json<TokenView>, ApiError> {
    check_id("token_id", &token_id)?;
    // The cursor first, then the row: a row still `waiting` after the
    // cursor was read has an offset at or past it.
    let next = app.cursor.next_offset().await;
    match app.db.token(&token_id).await? {
        Some(token) => Ok(Json(TokenView::new(token, next, now_ms()))),
        None => Err(ApiError::not_found(format!("no token `{token_id}`"))),
    }
}

async fn stats(State(app): State<AppState>) -> Result<Json<QueueStats>, ApiError> {
    let (next, source) = app.cursor.next_offset().await;
    let log_end = app.cursor.log_end().await;
    let now = now_ms();
    let window = app.admit_rate.per().max(Duration::from_secs(10));
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let counts: Counts = app.db.counts(now, window_ms).await?;
    Ok(Json(QueueStats {
        waiting: counts.waiting,
        active: counts.active,
        expired: counts.expired(),
        admitted_total: counts.admitted_total,
        admitted_per_second: counts.admitted_in_window as f64 / window.as_secs_f64(),
        rate_window_seconds: window.as_secs_f64(),
        configured_rate: app.admit_rate.to_string(),
        configured_per_second: app.admit_rate.per_second(),
        active_ttl_seconds: app.active_ttl.as_secs_f64(),
        admitting: app.admitting(),
        next_offset: next,
        next_offset_source: source.as_str().to_owned(),
        log_end_offset: log_end,
        waiting_by_offsets: log_end.map(|end| (end - next).max(0)),
    }))
}

/// Opens the doors of a service started with `--paused`
/// (`admit_on_start = false`): starts the admission listener. Idempotent.
async fn start_admission(State(app): State<AppState>) -> Result<Json<Admitting>, ApiError> {
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
    Ok(Json(Admitting { admitting: true }))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn token(status: &str, record_offset: Option<i64>, admitted_at: Option<i64>) -> Token {
        Token {
            token_id: "t".into(),
            user_id: "u".into(),
            status: status.into(),
            created_at: 100,
            record_offset,
            admitted_at,
            expires_at: admitted_at.map(|a| a + 1_000),
            admission_seq: admitted_at.map(|_| 3),
            deliveries: 1,
        }
    }

    /// The JSON of `view`, and `view` read back from it as the load
    /// generator reads it.
    fn wire(view: &TokenView) -> Value {
        let value = serde_json::to_value(view).unwrap();
        let back: TokenView = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(&back, view);
        value
    }

    /// A waiting token shows its position and where the cursor came from,
    /// an admitted one its admission; the other status' fields are absent,
    /// and a value not known yet is null.
    #[test]
    fn a_token_shows_what_its_status_has() {
        let waiting = TokenView::new(token("waiting", Some(7), None), (3, Source::Finished), 500);
        assert_eq!(waiting.position(), Some(4));
        assert_eq!(
            wire(&waiting),
            json!({"token_id": "t", "user_id": "u", "status": "waiting", "offset": 7,
                   "queued_at": 100, "position": 4, "position_source": "finished"})
        );
        // The cursor past the offset: at the head, not negative.
        let head = TokenView::new(token("waiting", Some(7), None), (9, Source::Committed), 500);
        assert_eq!(head.position(), Some(0));
        assert_eq!(wire(&head)["position_source"], "committed");
        let in_flight = TokenView::new(token("waiting", None, None), (3, Source::Committed), 500);
        assert_eq!(
            wire(&in_flight),
            json!({"token_id": "t", "user_id": "u", "status": "waiting", "offset": null,
                   "queued_at": 100, "position": null, "position_source": "committed"})
        );

        let active = TokenView::new(
            token("active", Some(7), Some(200)),
            (9, Source::Finished),
            500,
        );
        assert_eq!(active.position(), None);
        assert_eq!(
            wire(&active),
            json!({"token_id": "t", "user_id": "u", "status": "active", "offset": 7,
                   "queued_at": 100, "admitted_at": 200, "expires_at": 1200, "admission_seq": 3})
        );
        // Past its expiry: `expired` before the sweeper marked it.
        let expired = TokenView::new(
            token("active", Some(7), Some(200)),
            (9, Source::Finished),
            1_200,
        );
        assert_eq!(wire(&expired)["status"], "expired");
        assert_eq!(wire(&expired)["admitted_at"], 200);
    }

    #[test]
    fn stats_keep_their_wire_shape() {
        let stats = QueueStats {
            waiting: 5,
            active: 2,
            expired: 1,
            admitted_total: 3,
            admitted_per_second: 0.3,
            rate_window_seconds: 10.0,
            configured_rate: "100/10s".into(),
            configured_per_second: 10.0,
            active_ttl_seconds: 300.0,
            admitting: true,
            next_offset: 3,
            next_offset_source: "finished".into(),
            log_end_offset: None,
            waiting_by_offsets: None,
        };
        assert_eq!(
            serde_json::to_value(&stats).unwrap(),
            json!({"waiting": 5, "active": 2, "expired": 1, "admitted_total": 3,
                   "admitted_per_second": 0.3, "rate_window_seconds": 10.0,
                   "configured_rate": "100/10s", "configured_per_second": 10.0,
                   "active_ttl_seconds": 300.0, "admitting": true, "next_offset": 3,
                   "next_offset_source": "finished", "log_end_offset": null,
                   "waiting_by_offsets": null})
        );
        assert_eq!(
            serde_json::to_value(Admitting { admitting: true }).unwrap(),
            json!({"admitting": true})
        );
    }
}
