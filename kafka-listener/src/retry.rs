//! Back-off policies and retry decisions.
//!
//! A failed record is tried again in its partition's lane after a back-off;
//! the partition waits (order is kept) while every other partition goes on,
//! and the consumer keeps polling, so a long back-off never gets the consumer
//! evicted from its group.

use std::time::Duration;

use crate::error::ListenerError;

/// How long to wait before each retry.
#[derive(Debug, Clone, PartialEq)]
pub enum BackOff {
    /// The same delay before every retry.
    Fixed(Duration),
    /// `initial`, then each delay `multiplier` times the one before, capped at
    /// `max`; with `jitter`, each delay is drawn uniformly from
    /// `[delay/2, delay]` so that many consumers do not retry in step.
    Exponential {
        /// The first delay.
        initial: Duration,
        /// Growth factor per retry (at least 1.0).
        multiplier: f64,
        /// The cap on any one delay.
        max: Duration,
        /// Randomize each delay within `[delay/2, delay]`.
        jitter: bool,
    },
}

impl BackOff {
    /// The delay before retry number `retry` (1 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        match self {
            BackOff::Fixed(d) => *d,
            BackOff::Exponential {
                initial,
                multiplier,
                max,
                jitter,
            } => {
                let exp = multiplier
                    .max(1.0)
                    .powi(retry.saturating_sub(1).min(64) as i32);
                let secs = (initial.as_secs_f64() * exp).min(max.as_secs_f64());
                let secs = if *jitter {
                    secs * (0.5 + fastrand::f64() * 0.5)
                } else {
                    secs
                };
                Duration::from_secs_f64(secs)
            }
        }
    }
}

/// Blocking retries of one listener: how many attempts and the back-off
/// between them.
///
/// The default is 3 attempts with an exponential back-off of 1 s, 2 s (cap
/// 30 s, jitter). Spring Kafka's default is `FixedBackOff(0, 9)`: ten
/// attempts with no pause, a hot loop that hammers a database that is
/// already down; ours waits, and gives up sooner.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, the first delivery included (1 = no retry).
    pub attempts: u32,
    /// The pause before each retry.
    pub backoff: BackOff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff: BackOff::Exponential {
                initial: Duration::from_secs(1),
                multiplier: 2.0,
                max: Duration::from_secs(30),
                jitter: true,
            },
        }
    }
}

impl RetryPolicy {
    /// No retries: the first failure is final.
    pub fn none() -> Self {
        Self {
            attempts: 1,
            backoff: BackOff::Fixed(Duration::ZERO),
        }
    }

    /// `attempts` attempts with a fixed delay between them.
    pub fn fixed(attempts: u32, delay: Duration) -> Self {
        Self {
            attempts: attempts.max(1),
            backoff: BackOff::Fixed(delay),
        }
    }

    /// `attempts` attempts with an exponential back-off (no jitter).
    pub fn exponential(attempts: u32, initial: Duration, multiplier: f64, max: Duration) -> Self {
        Self {
            attempts: attempts.max(1),
            backoff: BackOff::Exponential {
                initial,
                multiplier,
                max,
                jitter: false,
            },
        }
    }

    /// After failed attempt number `attempt` (from 1): the delay before the
    /// next attempt, or `None` when the record is finished with (fatal or
    /// decode error, or attempts exhausted).
    pub fn next_delay(&self, attempt: u32, error: &ListenerError) -> Option<Duration> {
        if !error.is_retryable() || attempt >= self.attempts {
            None
        } else {
            Some(self.backoff.delay(attempt))
        }
    }
}

// Interim: the dead-letter and retry-topic settings move into this module.
pub use crate::dlq::DeadLetter;
pub use crate::retry_topics::RetryTopics;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_grows_and_caps() {
        let b = BackOff::Exponential {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_millis(350),
            jitter: false,
        };
        let d: Vec<_> = (1..=4).map(|r| b.delay(r).as_millis()).collect();
        assert_eq!(d, vec![100, 200, 350, 350]);
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        let b = BackOff::Exponential {
            initial: Duration::from_millis(1000),
            multiplier: 1.0,
            max: Duration::from_secs(10),
            jitter: true,
        };
        for _ in 0..100 {
            let d = b.delay(3).as_millis();
            assert!((500..=1000).contains(&d), "{d}");
        }
    }

    #[test]
    fn fatal_errors_are_not_retried() {
        let p = RetryPolicy::fixed(5, Duration::from_millis(1));
        let fatal = ListenerError::fatal("no");
        let retryable = ListenerError::retryable("later");
        assert_eq!(p.next_delay(1, &fatal), None);
        assert_eq!(p.next_delay(1, &retryable), Some(Duration::from_millis(1)));
        assert_eq!(p.next_delay(5, &retryable), None);
    }
}
