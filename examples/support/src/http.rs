//! The frame of the apps' HTTP APIs (axum). Every error answer is JSON
//! `{"error": "..."}`, including malformed bodies, bad paths, unknown
//! routes and methods a route does not serve.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::ServiceError;

/// An error answer: a status and the body `{"error": message}`, with a
/// `Retry-After` header (in seconds) when one is set.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An answer with `status` and `{"error": message}`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// A 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// The same answer with a `Retry-After: <secs>` header (seconds, as a
    /// client should wait before it tries again; used with 429 and 503).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The reason, as the `error` field carries it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The body of every error answer: `{"error": "<reason>"}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// Why the request failed, for a human.
    pub error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: &self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A database error, logged: 503 when the database cannot be reached (pool
/// timed out or closed, I/O error), 500 otherwise; the reason is
/// `database error: <the sqlx error>`.
impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error");
        let status = match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, format!("database error: {e}"))
    }
}

/// axum's status for the rejected body, with its text as the reason.
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}

/// axum's status for the rejected path, with its text as the reason.
impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}

/// `axum::Json` whose rejection is a JSON [`ApiError`] (400 for bad JSON,
/// 415 for a missing `Content-Type: application/json`, 422 for a missing or
/// mistyped field).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// `axum::extract::Path` whose rejection is a JSON [`ApiError`].
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(value) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// The longest id (coupon, user, token) the APIs accept, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Checks an id taken from a request; `what` names it in the reason
/// (`"user_id"`).
///
/// # Errors
/// A 400 [`ApiError`] when `id` is empty or blank, longer than
/// [`MAX_ID_LEN`] bytes, or holds a `/` or a control character.
pub fn check_id(what: &str, id: &str) -> Result<(), ApiError> {
    if id.trim().is_empty() {
        return Err(ApiError::bad_request(format!("{what} must not be empty")));
    }
    if id.len() > MAX_ID_LEN {
        return Err(ApiError::bad_request(format!(
            "{what} is longer than {MAX_ID_LEN} bytes"
        )));
    }
    if id.chars().any(|c| c.is_control() || c == '/') {
        return Err(ApiError::bad_request(format!(
            "{what} must not contain `/` or control characters"
        )));
    }
    Ok(())
}

/// The body of `GET /health`: `{"status": "ok"}`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always `"ok"`: the process answers.
    pub status: &'static str,
}

/// The app's `routes` over `state`, plus what every app serves:
/// - `GET /health`: `{"status": "ok"}`;
/// - `GET /metrics` (only with a Prometheus `metrics` handle): the text
///   exposition format, `text/plain; version=0.0.4`;
/// - a 404 `{"error": "no such route"}` for an unknown path and a 405
///   `{"error": "method not allowed on this route"}` for a method a route
///   does not serve (`/health` and `/metrics` included).
pub fn router<S>(routes: Router<S>, state: S, metrics: Option<PrometheusHandle>) -> Router
where
    S: Clone + Send + Sync + 'static,
{
    let mut router = routes.route("/health", get(|| async { Json(Health { status: "ok" }) }));
    if let Some(handle) = metrics {
        router = router.route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move {
                    handle.run_upkeep();
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        handle.render(),
                    )
                }
            }),
        );
    }
    // After every route: the 405 fallback goes to the routes registered
    // before it.
    router
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route",
            )
        })
        .layer(axum::middleware::from_fn(trace_request))
        .with_state(state)
}

/// Runs each request in an `http.request` span (OpenTelemetry's HTTP
/// server conventions: `otel.name` `POST /coupons/{coupon_id}/issue`, kind
/// server, `http.request.method`, `http.route`,
/// `http.response.status_code`) that continues the request's W3C
/// `traceparent`/`tracestate` headers when it has them
/// ([`kafka_listener::trace::continue_in`]): what the handler sends to
/// Kafka carries the request's trace.
async fn trace_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (span, parent) = request_span(&request);
    let response =
        kafka_listener::trace::continue_in(span.clone(), parent, next.run(request)).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

/// The span of [`trace_request`] and the trace the request came with.
fn request_span(
    request: &axum::extract::Request,
) -> (tracing::Span, Option<kafka_listener::trace::TraceContext>) {
    use kafka_listener::trace::{TraceContext, TRACEPARENT, TRACESTATE};
    // No route (a 404): the method alone names the span, as the
    // conventions ask (a path would give a name per URL).
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("", |p| p.as_str());
    let text = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
    let parent = TraceContext::from_headers(text(TRACEPARENT), text(TRACESTATE));
    let name = format!("{} {route}", request.method());
    let span = tracing::info_span!(
        "http.request",
        otel.name = name.trim_end(),
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    (span, parent)
}

/// How long [`HttpServer::shutdown`] waits for the requests in hand.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A bound HTTP address, not serving yet: bind early (a taken port fails
/// the start before anything else is set up), serve once the state is
/// ready.
#[derive(Debug)]
pub struct HttpListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl HttpListener {
    /// Binds `addr` (port 0 picks a free port).
    ///
    /// # Errors
    /// [`ServiceError::Http`] with `addr` when it cannot be bound.
    pub async fn bind(addr: SocketAddr) -> Result<Self, ServiceError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| ServiceError::Http(addr, e))?;
        let bound = listener
            .local_addr()
            .map_err(|e| ServiceError::Http(addr, e))?;
        Ok(Self {
            listener,
            addr: bound,
        })
    }

    /// The bound address (the real port when port 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `router` on a task of its own until [`HttpServer::shutdown`].
    pub fn serve(self, router: Router) -> HttpServer {
        let (stop, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(self.listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await
        });
        HttpServer {
            addr: self.addr,
            stop,
            task,
        }
    }
}

/// A serving HTTP API (see [`HttpListener::serve`]).
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl HttpServer {
    /// The address the API is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<ip>:<port>` of the API, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits up to [`SHUTDOWN_GRACE`] for
    /// the requests in hand; what goes wrong is logged, not returned.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        match tokio::time::timeout(SHUTDOWN_GRACE, self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server stopped with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed"),
            Err(_) => tracing::warn!("HTTP server did not stop within 10 s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::extract::State;
    use axum::routing::post;
    use metrics_exporter_prometheus::PrometheusBuilder;
    use serde_json::{json, Value};

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Body {
        n: i64,
    }

    #[derive(Debug, Serialize)]
    struct Echo {
        id: String,
        n: i64,
    }

    async fn echo(
        State(add): State<i64>,
        ApiPath(id): ApiPath<String>,
        ApiJson(body): ApiJson<Body>,
    ) -> Result<Json<Echo>, ApiError> {
        check_id("id", &id)?;
        if body.n < 0 {
            return Err(
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "negative").with_retry_after(1)
            );
        }
        Ok(Json(Echo {
            id,
            n: body.n + add,
        }))
    }

    async fn serve() -> (HttpServer, reqwest::Client) {
        let routes = Router::new().route("/echo/{id}", post(echo));
        let handle = PrometheusBuilder::new().build_recorder().handle();
        let listener = HttpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        assert_ne!(listener.addr().port(), 0);
        (
            listener.serve(router(routes, 1, Some(handle))),
            reqwest::Client::new(),
        )
    }

    async fn answer(resp: reqwest::Response) -> (u16, Option<String>, Value) {
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
        let body = resp.text().await.unwrap();
        if status >= 400 {
            assert_eq!(content_type, "application/json", "{status}: {body}");
        }
        (
            status,
            retry,
            serde_json::from_str(&body).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn every_error_is_json() {
        let (server, client) = serve().await;
        let base = server.base_url();
        let post = |path: &str| client.post(format!("{base}{path}"));

        let (status, _, body) =
            answer(post("/echo/a").json(&json!({"n": 1})).send().await.unwrap()).await;
        assert_eq!((status, body), (200, json!({"id": "a", "n": 2})));

        let cases = [
            (post("/echo/a").json(&json!({"m": 1})), 422, "n"),
            (
                post("/echo/a")
                    .header("content-type", "application/json")
                    .body("{"),
                400,
                "",
            ),
            (post("/echo/a").body("n=1"), 415, "Content-Type"),
            (
                post("/echo/%20").json(&json!({"n": 1})),
                400,
                "must not be empty",
            ),
            (
                post(&format!("/echo/{}", "x".repeat(MAX_ID_LEN + 1))).json(&json!({"n": 1})),
                400,
                "longer than 128 bytes",
            ),
            (client.get(format!("{base}/nowhere")), 404, "no such route"),
            (
                client.get(format!("{base}/echo/a")),
                405,
                "method not allowed",
            ),
            (
                client.post(format!("{base}/health")),
                405,
                "method not allowed",
            ),
            (
                client.post(format!("{base}/metrics")),
                405,
                "method not allowed",
            ),
        ];
        for (request, expected, reason) in cases {
            let (status, retry, body) = answer(request.send().await.unwrap()).await;
            assert_eq!(status, expected, "{body}");
            assert_eq!(retry, None);
            let error = body["error"].as_str().expect("an error string");
            assert!(
                error.contains(reason),
                "{error:?} should mention {reason:?}"
            );
        }

        let (status, retry, body) = answer(
            post("/echo/a")
                .json(&json!({"n": -1}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((status, retry.as_deref()), (429, Some("1")));
        assert_eq!(body, json!({"error": "negative"}));

        let health = client.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(answer(health).await.2, json!({"status": "ok"}));
        let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(metrics.status(), 200);
        assert!(metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        server.shutdown().await;
    }

    #[test]
    fn database_errors_are_503_when_unreachable() {
        assert_eq!(
            ApiError::from(sqlx::Error::PoolTimedOut).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let other = ApiError::from(sqlx::Error::RowNotFound);
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(other.message().starts_with("database error: "));
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("user_id", "u-1").is_ok());
        assert!(check_id("user_id", &"x".repeat(MAX_ID_LEN)).is_ok());
        for bad in ["", " ", "a/b", "a\nb"] {
            let e = check_id("user_id", bad).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            assert!(e.message().starts_with("user_id "), "{}", e.message());
        }
    }
}
