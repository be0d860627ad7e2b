//! Errors: what a listener returns ([`ListenerError`]), what an extractor
//! returns ([`ExtractError`]) and what the framework itself returns ([`Error`]).

use std::error::Error as StdError;
use std::fmt;

/// A boxed error that can cross threads.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// How the container treats a failed record.
///
/// Spring Kafka's `DefaultErrorHandler` retries every exception except a
/// fixed list of "not retryable" ones (deserialization and conversion
/// errors); this enum makes the same split explicit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A transient failure (database down, timeout): the record is tried
    /// again with the listener's back-off.
    Retryable,
    /// A failure that retrying cannot fix (a business rule, a bad state):
    /// the record skips the retries and goes to the dead-letter topic.
    Fatal,
    /// The record could not be turned into the handler's arguments (bad JSON,
    /// missing key): a poison pill, never retried.
    Decode,
}

/// The level a retry is logged at unless [`ListenerError::logged_at`] says
/// otherwise.
const DEFAULT_RETRY_LOG_LEVEL: tracing::Level = tracing::Level::WARN;

/// The error a listener returns for one record (or one batch).
///
/// Any `std::error::Error + Send + Sync + 'static`, `anyhow::Error`, a
/// `Box<dyn Error + Send + Sync>` or a message (`String`, `&str`) converts
/// into it with `?` and counts as [`ErrorKind::Retryable`], as any
/// exception does in Spring Kafka, unless it is (or was caused by) a
/// deserialization error, which is [`ErrorKind::Decode`]. Use
/// [`ListenerError::fatal`] for failures that retrying cannot fix.
///
/// `ListenerError` deliberately does not implement `std::error::Error`
/// itself (like `anyhow::Error`), so that the blanket `From` impl exists;
/// [`ListenerError::source`] gives the underlying error.
pub struct ListenerError {
    kind: ErrorKind,
    type_name: &'static str,
    source: BoxError,
    index: Option<usize>,
    log_level: tracing::Level,
}

impl ListenerError {
    /// A retryable failure wrapping `error`.
    pub fn retryable<E: Into<BoxError>>(error: E) -> Self {
        Self::with_kind(ErrorKind::Retryable, error)
    }

    /// A failure that skips the retries (dead-letter topic at once).
    pub fn fatal<E: Into<BoxError>>(error: E) -> Self {
        Self::with_kind(ErrorKind::Fatal, error)
    }

    /// A failure of the given kind wrapping `error`; the error's Rust type
    /// name is kept for the `kafka_dlt-exception-fqcn` dead-letter header.
    pub fn with_kind<E: Into<BoxError>>(kind: ErrorKind, error: E) -> Self {
        Self {
            kind,
            type_name: std::any::type_name::<E>(),
            source: error.into(),
            index: None,
            log_level: DEFAULT_RETRY_LOG_LEVEL,
        }
    }

    /// In a batch listener: the index, within the batch, of the record that
    /// failed. Records before it are taken as handled and committed; the
    /// failed one goes through the error handling and the rest are handed
    /// over again (Spring Kafka's `BatchListenerFailedException`).
    pub fn at_index(mut self, index: usize) -> Self {
        self.index = Some(index);
        self
    }

    /// Logs this failure's retries at `level` instead of `WARN`, e.g.
    /// `DEBUG` for an expected wait: an event whose cause, on another
    /// topic, has not arrived yet. Spring's `DefaultErrorHandler.setLogLevel`,
    /// per failure instead of per listener. A record whose retries run out
    /// is still logged at `WARN` and above where it goes (dead-letter topic
    /// or log); the metric `kafka_listener_records_retried_total` counts
    /// every retry whatever the level.
    pub fn logged_at(mut self, level: tracing::Level) -> Self {
        self.log_level = level;
        self
    }

    /// The level a retry of this failure is logged at ([`Self::logged_at`];
    /// `WARN` by default).
    pub fn log_level(&self) -> tracing::Level {
        self.log_level
    }

    /// The index set by [`ListenerError::at_index`], if any.
    pub fn index(&self) -> Option<usize> {
        self.index
    }

    /// Retryable, fatal or decode.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the container should try the record again.
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Retryable
    }

    /// The Rust type name of the wrapped error, for example
    /// `sqlx_core::error::Error`.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// The wrapped error.
    pub fn source(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.source
    }

    /// Whether the wrapped error is a `T`.
    pub fn is<T: StdError + 'static>(&self) -> bool {
        self.source.is::<T>()
    }

    /// The wrapped error as a `T`, if it is one.
    pub fn downcast_ref<T: StdError + 'static>(&self) -> Option<&T> {
        self.source.downcast_ref::<T>()
    }

    /// The error and its chain of sources, one per line (the dead letter's
    /// `kafka_dlt-exception-stacktrace` header).
    pub fn chain(&self) -> String {
        let mut out = format!("{}: {}", self.type_name, self.source);
        let mut next = self.source.source();
        while let Some(err) = next {
            out.push_str("\ncaused by: ");
            out.push_str(&err.to_string());
            next = err.source();
        }
        out
    }
}

/// `?` on anything that converts into a [`BoxError`]: every
/// `std::error::Error + Send + Sync + 'static`, `anyhow::Error`,
/// `Box<dyn Error + Send + Sync>`, `String` and `&str`.
///
/// The kind follows Spring Kafka's `DefaultErrorHandler`: retryable, unless
/// the error or one of its causes is a deserialization error (an
/// [`ExtractError`] not marked retryable, or a `serde_json` syntax, data or
/// end-of-input error), which is [`ErrorKind::Decode`] and never retried.
/// `anyhow::Error` needs no feature: it converts into a `BoxError`, and its
/// chain of causes is walked the same way.
impl<E: Into<BoxError>> From<E> for ListenerError {
    fn from(error: E) -> Self {
        let source = error.into();
        Self {
            kind: default_kind(&*source),
            type_name: std::any::type_name::<E>(),
            source,
            index: None,
            log_level: DEFAULT_RETRY_LOG_LEVEL,
        }
    }
}

/// Spring Kafka's default classification: an error is retryable unless it
/// or one of its causes is a deserialization error.
fn default_kind(error: &(dyn StdError + 'static)) -> ErrorKind {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(extract) = e.downcast_ref::<ExtractError>() {
            if !extract.is_retryable() {
                return ErrorKind::Decode;
            }
        }
        if let Some(json) = e.downcast_ref::<serde_json::Error>() {
            if !json.is_io() {
                return ErrorKind::Decode;
            }
        }
        next = e.source();
    }
    ErrorKind::Retryable
}

impl ListenerError {
    /// A decode failure (poison pill) from an extractor; keeps its batch
    /// index. An error marked [`ExtractError::retryable`] is
    /// [`ErrorKind::Retryable`] instead.
    pub fn decode(error: ExtractError) -> Self {
        let index = error.index;
        Self {
            kind: if error.retryable {
                ErrorKind::Retryable
            } else {
                ErrorKind::Decode
            },
            type_name: std::any::type_name::<ExtractError>(),
            source: Box::new(error),
            index,
            log_level: DEFAULT_RETRY_LOG_LEVEL,
        }
    }
}

impl fmt::Debug for ListenerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerError")
            .field("kind", &self.kind)
            .field("type_name", &self.type_name)
            .field("source", &self.source)
            .field("index", &self.index)
            .field("log_level", &self.log_level)
            .finish()
    }
}

impl fmt::Display for ListenerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

/// A record could not be turned into a handler argument.
///
/// [`ErrorKind::Decode`]: the record is a poison pill and is never retried;
/// unless marked [`ExtractError::retryable`] (the extractor depends on
/// something that may come back, such as a schema registry).
#[derive(Debug, thiserror::Error)]
#[error("cannot extract `{extractor}` from the record: {reason}")]
pub struct ExtractError {
    extractor: &'static str,
    reason: String,
    index: Option<usize>,
    retryable: bool,
    #[source]
    source: Option<BoxError>,
}

impl ExtractError {
    /// An error of the extractor type `E` with a reason.
    pub fn new<E: ?Sized>(reason: impl Into<String>) -> Self {
        Self {
            extractor: std::any::type_name::<E>(),
            reason: reason.into(),
            index: None,
            retryable: false,
            source: None,
        }
    }

    /// Marks the failure as transient: the record is retried with the
    /// listener's back-off instead of being a poison pill (for example an
    /// Avro writer schema the registry could not give yet).
    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    /// Whether [`ExtractError::retryable`] was set.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// Attach the underlying error (for example a `serde_json::Error`).
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// In a batch: the index of the record that could not be extracted.
    pub fn at_index(mut self, index: usize) -> Self {
        self.index = Some(index);
        self
    }

    /// The batch index, if any.
    pub fn index(&self) -> Option<usize> {
        self.index
    }

    /// The type name of the extractor that failed.
    pub fn extractor(&self) -> &'static str {
        self.extractor
    }
}

/// An error of the framework itself: configuration, broker, start-up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Kafka client (librdkafka) reported an error.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The configuration is invalid; the message says which setting and why.
    #[error("configuration: {0}")]
    Config(String),
    /// A listener cannot start: a missing `State<T>`, an `Acknowledgment`
    /// without a manual ack mode, an unknown listener id.
    #[error("listener `{listener}`: {reason}")]
    Listener {
        /// The listener id.
        listener: String,
        /// What is wrong.
        reason: String,
    },
    /// The embedded broker could not start or answer.
    #[error("embedded broker: {0}")]
    Embedded(String),
    /// Encoding a value for the producer failed.
    #[error("serialization: {0}")]
    Serialization(#[source] BoxError),
    /// The Schema Registry refused a schema (incompatible, invalid) or could
    /// not be reached while encoding a record.
    /// The boxed error is the Avro codec's own `SchemaRegistryError` (feature
    /// `avro`): `Error::registry_error` returns it typed.
    #[error(transparent)]
    SchemaRegistry(BoxError),
    /// No reply came within the timeout of
    /// `ReplyingKafkaTemplate::send_and_receive` (Spring's
    /// `KafkaReplyTimeoutException`). A reply that comes later is dropped
    /// and counted in `kafka_listener_replies_dropped_total{reason="late"}`.
    #[error("no reply on `{reply_topic}` within {timeout:?} to the request sent to `{topic}`")]
    ReplyTimeout {
        /// The topic the request was sent to.
        topic: String,
        /// The topic the reply was awaited on.
        reply_topic: String,
        /// The timeout given.
        timeout: std::time::Duration,
    },
    /// The broker did not acknowledge a record that was sent.
    #[error("send to `{topic}` failed: {source}")]
    Send {
        /// The topic the record was sent to.
        topic: String,
        /// Why it failed.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A Kafka transaction could not be initialized, begun, committed or
    /// aborted (`crate::KafkaTemplate::in_transaction`, a
    /// `transactional = true` listener). The transaction was aborted: none
    /// of its records is visible to `read_committed` consumers.
    #[error("transaction of `{transactional_id}` failed in {operation}: {source}")]
    Transaction {
        /// The producer's `transactional.id`.
        transactional_id: String,
        /// The librdkafka call that failed (`init_transactions`,
        /// `send_offsets_to_transaction`, `commit_transaction`, ...).
        operation: &'static str,
        /// Why it failed.
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

/// Result with the framework's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("database down")]
    struct DbDown;

    fn listener(step: u8) -> Result<(), ListenerError> {
        match step {
            0 => Err(DbDown)?,
            1 => Err(anyhow::anyhow!("no stock").context("issuing coupon c1"))?,
            2 => {
                let parsed: serde_json::Value = serde_json::from_str("{not json")?;
                drop(parsed);
            }
            3 => Err(
                anyhow::Error::new(serde_json::from_str::<u8>("x").unwrap_err())
                    .context("reading the payload"),
            )?,
            4 => Err(ExtractError::new::<String>("no value"))?,
            5 => Err(format!("plain message {step}"))?,
            _ => Err(Box::<dyn StdError + Send + Sync>::from("boxed"))?,
        }
        Ok(())
    }

    #[test]
    fn question_mark_converts_std_errors_anyhow_and_messages_with_spring_kinds() {
        let kinds: Vec<(ErrorKind, String)> = (0..=6)
            .map(|step| {
                let e = listener(step).unwrap_err();
                (e.kind(), e.to_string())
            })
            .collect();
        assert_eq!(kinds[0], (ErrorKind::Retryable, "database down".into()));
        assert_eq!(kinds[1], (ErrorKind::Retryable, "issuing coupon c1".into()));
        assert_eq!(kinds[2].0, ErrorKind::Decode, "a serde_json syntax error");
        assert_eq!(
            kinds[3],
            (ErrorKind::Decode, "reading the payload".into()),
            "anyhow's chain is walked down to the serde_json error"
        );
        assert_eq!(kinds[4].0, ErrorKind::Decode, "an ExtractError");
        assert_eq!(kinds[5], (ErrorKind::Retryable, "plain message 5".into()));
        assert_eq!(kinds[6], (ErrorKind::Retryable, "boxed".into()));
    }

    #[test]
    fn the_type_name_and_the_chain_survive_the_conversion() {
        let e = listener(0).unwrap_err();
        assert!(e.type_name().ends_with("DbDown"), "{}", e.type_name());
        assert!(e.is::<DbDown>());
        let e = listener(1).unwrap_err();
        assert_eq!(e.type_name(), "anyhow::Error");
        assert_eq!(
            e.chain(),
            "anyhow::Error: issuing coupon c1\ncaused by: no stock"
        );
        let retryable = ExtractError::new::<String>("registry down").retryable();
        let e: ListenerError = retryable.into();
        assert_eq!(e.kind(), ErrorKind::Retryable, "a retryable ExtractError");
    }
}
