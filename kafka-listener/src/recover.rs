//! What happens to a record that failed for good (fatal error, decode error,
//! or retries exhausted): Spring Kafka's `ConsumerRecordRecoverer`.

use std::fmt::Debug;

use futures::future::BoxFuture;

use crate::context::ListenerInfo;
use crate::error::{BoxError, ListenerError};
use crate::record::ConsumerRecord;

/// Takes a record that failed for good. The container commits past the
/// record only when `recover` returns `Ok`; on `Err` the partition waits and
/// the container calls it again (a dead-letter topic that is down must not
/// lose the record).
pub trait Recoverer: Send + Sync + Debug + 'static {
    /// Recovers `record`, which failed with `error` after `attempts`
    /// attempts.
    ///
    /// # Errors
    /// Any error: the record is not finished, and the call is repeated after
    /// a pause.
    fn recover<'a>(
        &'a self,
        record: &'a ConsumerRecord,
        error: &'a ListenerError,
        attempts: u32,
        listener: &'a ListenerInfo,
    ) -> BoxFuture<'a, Result<(), BoxError>>;
}

/// Logs the failed record at error level with its coordinates and the error
/// chain, and lets the partition move on: Spring's default when no
/// dead-letter recoverer is configured. The container warns at start-up about
/// listeners that use it.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoggingRecoverer;

impl Recoverer for LoggingRecoverer {
    fn recover<'a>(
        &'a self,
        record: &'a ConsumerRecord,
        error: &'a ListenerError,
        attempts: u32,
        listener: &'a ListenerInfo,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            tracing::error!(
                listener = %listener.id, topic = %record.topic, partition = record.partition, offset = record.offset,
                attempts, kind = ?error.kind(), error = %error.chain(),
                "record failed for good and no dead-letter topic is configured; it is skipped"
            );
            metrics::counter!(crate::metrics::names::RECORDS_SKIPPED, "listener" => listener.id.to_string()).increment(1);
            Ok(())
        })
    }
}
