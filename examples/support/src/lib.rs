//! What the reference apps of kafka-listener (`coupon-service`,
//! `concert-queue` and `order-saga`) share, so that each app holds only its own logic:
//!
//! - [`http`]: the JSON error answer [`http::ApiError`] (`{"error": "..."}`)
//!   and the extractors whose rejections are one ([`http::ApiJson`],
//!   [`http::ApiPath`]), the id check, the router frame (`/health`,
//!   `/metrics`, JSON 404 and 405) and the HTTP server with its graceful
//!   stop;
//! - [`db`]: the sqlx `AnyPool`s over SQLite (one WAL writer, several
//!   readers) or PostgreSQL (one pool), and the schema migration under an
//!   advisory lock;
//! - [`config`]: database URL redaction and the producer timeout derived
//!   from the send timeout;
//! - [`telemetry`]: logging to stderr and the Prometheus recorder;
//! - [`cli`]: the `serve` and `load [--spawn]` plumbing of the binaries;
//! - [`load`]: the load generators' HTTP client, retries, tallies and
//!   percentiles;
//! - [`open_loop`]: requests at a constant arrival rate, latency from the
//!   intended send time, CSV samples and an SVG chart;
//! - [`ServiceError`]: why starting an app failed.
//!
//! Not a general-purpose library: it is versioned with the apps and not
//! published.

pub mod cli;
pub mod config;
pub mod db;
mod error;
pub mod http;
pub mod load;
pub mod open_loop;
pub mod telemetry;

pub use crate::error::ServiceError;

/// Milliseconds since the Unix epoch (what every timestamp column of the
/// apps holds); 0 if the clock is before 1970.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
