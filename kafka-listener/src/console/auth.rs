//! Who may act: the bearer token, compared in constant time; the
//! cross-site checks (`Origin` against `Host`, a JSON body); the JSON error
//! answers.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::Console;

/// The token that authorizes actions: a name (recorded in the audit log)
/// and a secret (sent as `Authorization: Bearer <secret>`).
#[derive(Clone)]
pub struct ConsoleToken {
    name: String,
    secret: String,
}

/// Never prints the secret.
impl std::fmt::Debug for ConsoleToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleToken")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ConsoleToken {
    /// A token named `name` with `secret`.
    pub fn new(name: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            secret: secret.into(),
        }
    }

    /// `name:secret`, or a bare `secret` (no `:`) named `default`;
    /// surrounding whitespace is dropped. `None` for an empty value or an
    /// empty secret.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let (name, secret) = match value.split_once(':') {
            Some((name, secret)) if !name.is_empty() => (name, secret),
            _ => ("default", value),
        };
        (!secret.is_empty()).then(|| Self::new(name, secret))
    }

    /// The token's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `candidate` is the secret, in time that depends only on the
    /// lengths.
    fn matches(&self, candidate: &[u8]) -> bool {
        let secret = self.secret.as_bytes();
        let mut diff = secret.len() ^ candidate.len();
        for (i, s) in secret.iter().enumerate() {
            diff |= usize::from(s ^ candidate.get(i).copied().unwrap_or(!s));
        }
        diff == 0
    }
}

/// A refused or failed console request: its status and the JSON body
/// `{"error": "<reason>"}` (401 answers also carry
/// `WWW-Authenticate: Bearer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleError {
    status: StatusCode,
    message: String,
}

impl ConsoleError {
    /// An answer with `status` and `{"error": message}`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The reason.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<crate::Error> for ConsoleError {
    fn from(e: crate::Error) -> Self {
        let status = match e {
            crate::Error::Listener { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self::new(status, e.to_string())
    }
}

impl From<crate::dlq::StoreError> for ConsoleError {
    fn from(e: crate::dlq::StoreError) -> Self {
        tracing::warn!(error = %e, "console: dead-letter store");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

/// The `Origin` check: a request that names an origin must come from the
/// host it is sent to (a page of the console itself).
fn same_origin(headers: &HeaderMap) -> Result<(), ConsoleError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(ConsoleError::new(
            StatusCode::FORBIDDEN,
            format!(
                "cross-site request refused: Origin {:?} is not this console's host",
                origin.to_str().unwrap_or("?")
            ),
        )),
    }
}

/// Checks the origin and the bearer token; the token's name.
pub(super) fn authorize(
    token: Option<&ConsoleToken>,
    headers: &HeaderMap,
) -> Result<String, ConsoleError> {
    same_origin(headers)?;
    let Some(token) = token else {
        return Err(ConsoleError::new(
            StatusCode::FORBIDDEN,
            "the console is read-only: no token is configured (set CONSOLE_TOKEN)",
        ));
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match bearer {
        None => Err(ConsoleError::new(
            StatusCode::UNAUTHORIZED,
            "this action needs `Authorization: Bearer <console token>`",
        )),
        Some(b) if token.matches(b.as_bytes()) => Ok(token.name.clone()),
        Some(_) => Err(ConsoleError::new(
            StatusCode::FORBIDDEN,
            "the bearer token is not the console's",
        )),
    }
}

/// The operator behind an action: the name of the token it carried.
/// Extracting it checks the request (see the module docs of
/// [`super`]), `Content-Type: application/json` included.
#[derive(Debug)]
pub(super) struct Operator(pub(super) String);

impl FromRequestParts<Console> for Operator {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Console,
    ) -> Result<Self, Self::Rejection> {
        let name = console.authorize(&parts.headers)?;
        let json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return Err(ConsoleError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "console actions take `Content-Type: application/json`",
            ));
        }
        Ok(Self(name))
    }
}

/// Every console answer: no framing by other sites (clickjacking: a framed
/// console with the token in its tab could be clicked through), scripts,
/// styles and connections from the console's own origin only, no MIME
/// sniffing, no referrer leaving the console.
pub(super) async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Middleware that gives routes of the app the console's protection: the
/// `Origin` check and the bearer token (any method, no body required).
/// `route_layer(axum::middleware::from_fn_with_state(console, guard))`.
pub async fn guard(State(console): State<Console>, request: Request, next: Next) -> Response {
    match console.authorize(request.headers()) {
        Ok(_) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_named_and_bare_tokens() {
        let t = ConsoleToken::parse("ops:s3cret").unwrap();
        assert_eq!((t.name(), t.matches(b"s3cret")), ("ops", true));
        let t = ConsoleToken::parse(" s3cret ").unwrap();
        assert_eq!((t.name(), t.matches(b"s3cret")), ("default", true));
        assert!(!t.matches(b"s3cre") && !t.matches(b"s3cretx") && !t.matches(b""));
        assert!(ConsoleToken::parse("").is_none());
        assert!(ConsoleToken::parse("ops:").is_none());
    }

    #[test]
    fn origin_must_be_the_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert_eq!(same_origin(&h).unwrap_err().status(), StatusCode::FORBIDDEN);
    }
}
