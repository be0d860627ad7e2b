//! Spring-for-Apache-Kafka style listeners for Rust.
//!
//! Annotate an async function with `#[kafka_listener(...)]`; [`KafkaApp`]
//! discovers it at start-up and runs a listener container for it: an
//! rdkafka consumer per concurrency slot with manual offset commits, one
//! ordered lane per partition, retries with back-off, and graceful shutdown.
//!
//! ```no_run
//! use kafka_listener::prelude::*;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct IssueRequested { coupon_id: String, user_id: String }
//!
//! #[kafka_listener(topics = ["coupon.issue.requested"], group_id = "coupon-issuer", concurrency = 3)]
//! async fn issue(req: Json<IssueRequested>, meta: RecordMeta) -> Result<(), ListenerError> {
//!     println!("{} wants {} (offset {})", req.user_id, req.coupon_id, meta.offset);
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), kafka_listener::Error> {
//!     KafkaApp::builder()
//!         .topic(NewTopic::new("coupon.issue.requested", 3))
//!         .build()
//!         .await?
//!         .run()
//!         .await
//! }
//! ```
//!
//! # Guarantees
//! - At-least-once: an offset is committed only after its record and every
//!   earlier record of the partition were handled (or recovered).
//! - Order: one partition's records reach the handler one at a time in
//!   offset order.
//! - No stall: a slow or failing partition never blocks the others, and the
//!   consumer keeps polling, so the group does not evict it.
//! - Bounded memory: at most [`ListenerSpec::max_in_flight`] records are
//!   queued per partition; a full partition is paused.

// Modules bottom to top (docs/src/architecture.md); a module imports only
// modules listed before it (tests/layers.rs checks this).
//
// base
#[cfg(any(feature = "after-commit", feature = "dead-letter-store"))]
pub mod db;
pub mod error;
pub mod metrics;
pub mod record;
mod state;
mod util;
// settings
mod ack;
mod config;
mod context;
mod rate_limit;
pub mod retry;
// records in and out
#[cfg(feature = "avro")]
pub mod avro;
pub mod extract;
mod handler;
mod intercept;
mod listener;
mod producer;
mod recover;
pub mod reply;
pub mod schema;
pub mod trace;
mod transaction;
// failure paths
pub mod dlq;
mod retry_topics;
// container
mod container;
// dev
#[cfg(feature = "embedded")]
pub mod embedded;
// top
#[cfg(feature = "after-commit")]
pub mod after_commit;
mod app;
#[cfg(feature = "asyncapi")]
pub mod asyncapi;
#[cfg(feature = "console")]
pub mod console;
#[cfg(feature = "test-support")]
pub mod testing;
mod topics;

pub use crate::ack::AckMode;
#[cfg(feature = "after-commit")]
pub use crate::after_commit::{
    Error as AfterCommitError, EventTx, OutboxEvent, RelayConfig, RelayHandle, TransactionalEvents,
};
pub use crate::app::{shutdown_signal, KafkaApp, KafkaAppBuilder, ListenerRegistry, RunningApp};
#[cfg(feature = "avro")]
pub use crate::avro::{Avro, AvroCodec, AvroKey};
pub use crate::config::KafkaConfig;
pub use crate::config::{IsolationLevel, SeekPosition};
pub use crate::container::{
    BackingOff, ConsumerError, ConsumerErrorKind, FinishedOffset, ListenerContainer,
    ListenerCounts, PartitionLag, PartitionStatus, RateLimitBudget,
};
pub use crate::context::{ListenerContext, ListenerInfo};
#[cfg(any(feature = "after-commit", feature = "dead-letter-store"))]
pub use crate::db::IntoAnyPool;
pub use crate::dlq::DeadLetterRecoverer;
pub use crate::error::{BoxError, Error, ErrorKind, ExtractError, ListenerError, Result};
pub use crate::extract::{
    Acknowledgment, FromBatch, FromRecord, Json, Key, KeyDecode, RecordMeta, State,
};
pub use crate::handler::{BatchHandler, Handler, IntoListenerResult, IntoReply, Reply, ReplyTo};
pub use crate::intercept::{ListenerRequest, ListenerService};
pub use crate::listener::{ListenerSpec, Ordering, RecordFilter};
pub use crate::producer::{KafkaTemplate, ProducerRecord, SendResult};
pub use crate::rate_limit::RateLimit;
pub use crate::record::{ConsumerRecord, Header, Headers};
pub use crate::recover::{LoggingRecoverer, Recoverer};
pub use crate::reply::{ReplyingKafkaTemplate, ReplyingTemplateBuilder};
pub use crate::retry::{BackOff, DeadLetter, RetryPolicy, RetryTopics};
pub use crate::state::StateMap;
pub use crate::topics::NewTopic;
pub use crate::util::BoxFuture;

/// `#[after_commit]`, re-exported from `kafka-listener-macros` (the
/// `OutboxEvent` derive comes with the trait, from `after_commit`).
#[cfg(all(feature = "macros", feature = "after-commit"))]
pub use kafka_listener_macros::after_commit;
/// Attribute macros, re-exported from `kafka-listener-macros`.
#[cfg(feature = "macros")]
pub use kafka_listener_macros::kafka_listener;

/// Everything a listener needs: `use kafka_listener::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "macros")]
    pub use crate::kafka_listener;
    pub use crate::{
        AckMode, Acknowledgment, ConsumerRecord, DeadLetter, Headers, Json, KafkaApp, KafkaConfig,
        KafkaTemplate, Key, ListenerError, ListenerSpec, NewTopic, ProducerRecord, RecordMeta,
        Reply, ReplyingKafkaTemplate, RetryPolicy, RetryTopics, State,
    };
    #[cfg(feature = "avro")]
    pub use crate::{Avro, AvroKey};
}

/// Not public API. Used by generated code and the project's own tests.
#[doc(hidden)]
pub mod __private {
    pub use inventory;

    pub use crate::ack::AckMode;
    pub use crate::config::{IsolationLevel, SeekPosition};
    #[cfg(feature = "embedded")]
    pub use crate::embedded::Mock;
    pub use crate::extract::{FromBatch, FromRecord};
    pub use crate::handler::{BatchHandler, Handler, IntoListenerResult, NoReply, ReturnsReply};
    pub use crate::listener::{registered_listeners, ListenerRegistration, ListenerSpec, Ordering};
    pub use crate::rate_limit::RateLimit;
    pub use crate::record::headers::{be_i32, be_i64};
    pub use crate::retry::{BackOff, DeadLetter, RetryPolicy, RetryTopics};
    pub use crate::util::BoxFuture;
    pub use std::time::Duration;

    /// The message schema probes (crate::schema).
    pub mod schema {
        pub use crate::schema::probe::{
            EventHasSchema, EventNoSchema, HasSchema, Named, NoSchema, Probe,
        };
        pub use crate::schema::MessageSchema;
    }

    /// What `#[after_commit]` and `#[derive(OutboxEvent)]` generate code
    /// against.
    #[cfg(feature = "after-commit")]
    pub mod after_commit {
        pub use crate::after_commit::{
            entry, AfterCommitRegistration, FromEventContext, HandlerResult, Op, OutboxEvent,
            OutboxRegistration, Outcome,
        };
        pub use std::string::String;

        /// Compile-time check that the event type can be handed to every
        /// handler (each gets a clone).
        pub const fn assert_event<E: Clone + Send + Sync + 'static>() {}

        /// Compile-time check of an argument after the event.
        pub const fn assert_from_event_context<T: FromEventContext>() {}

        /// Compile-time check of the return type.
        pub const fn assert_handler_result<T: HandlerResult>() {}

        /// The record key of an outbox event: its key field as text.
        pub fn key_to_string<T: std::fmt::Display + ?Sized>(key: &T) -> String {
            key.to_string()
        }
    }

    /// Compile-time check that an argument type is a record extractor; the
    /// macro calls it spanned at the argument so errors point there.
    pub const fn assert_from_record<T: FromRecord>() {}

    /// Compile-time check that an argument type is a batch extractor.
    pub const fn assert_from_batch<T: FromBatch>() {}

    /// Compile-time check of the return type.
    pub const fn assert_listener_result<T: IntoListenerResult>() {}

    /// Compile-time check of the return type of a listener without a reply
    /// destination: `()` or `Result<(), E>`.
    pub const fn assert_no_reply<T: NoReply>() {}

    /// Compile-time check of the return type of a listener with `reply` or
    /// `send_to`: a reply.
    pub const fn assert_reply<T: ReturnsReply>() {}
}
