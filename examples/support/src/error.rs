//! Errors of starting an app.

use std::net::SocketAddr;

/// Why starting an app (`coupon_service::start`, `concert_queue::start`)
/// failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The database could not be reached, or a table of the framework
    /// (outbox, dead-letter store) could not be created.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration of the app's schema (`migrations/*.sql`) failed, or one
    /// applied before was edited since.
    #[error("database migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The HTTP address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Http(SocketAddr, #[source] std::io::Error),
    /// The broker, the topic or the listener could not be set up.
    #[error("kafka: {0}")]
    Kafka(#[from] kafka_listener::Error),
    /// A setting is invalid; the message says which and why.
    #[error("configuration: {0}")]
    Config(String),
}
