//! The settings of retries and dead letters, without I/O: [`BackOff`] (the
//! one delay schedule: lanes, retry topics and the outbox relay use it),
//! [`RetryPolicy`] (blocking retries), [`RetryTopics`] (non-blocking
//! retries: attempts, delays, topic names) and [`DeadLetter`] (which
//! topic). Publishing dead letters and retry records is `crate::dlq`'s and
//! `crate::retry_topics`'s.
//!
//! A failed record is tried again in its partition's lane after a back-off;
//! the partition waits (order is kept) while every other partition goes on,
//! and the consumer keeps polling, so a long back-off never gets the consumer
//! evicted from its group.
//!
//! Every type here has private fields and checked constructors: a `try_`
//! form returning [`Error::Config`](crate::Error::Config) that names the
//! setting, and a panicking form documented under `# Panics`, as std does.

mod backoff;
mod dead_letter;
mod policy;
mod topics;

pub use self::backoff::BackOff;
pub use self::dead_letter::{DeadLetter, DLT_SUFFIX};
pub use self::policy::{RetryPolicy, RetryPolicyBuilder};
pub use self::topics::{RetryTopics, RetryTopicsBuilder};
