//! [`RetryPolicy`]: blocking retries of one listener, and its builder.

use std::time::Duration;

use super::BackOff;
use crate::error::{Error, ListenerError};

/// Attempts of [`RetryPolicy::default`].
pub(crate) const DEFAULT_ATTEMPTS: u32 = 3;
/// First delay of the default (exponential) back-off.
pub(crate) const DEFAULT_INITIAL: Duration = Duration::from_secs(1);
/// Growth factor of the default back-off.
pub(crate) const DEFAULT_MULTIPLIER: f64 = 2.0;
/// Cap of the default back-off.
pub(crate) const DEFAULT_MAX: Duration = Duration::from_secs(30);
/// Jitter of the default back-off.
pub(crate) const DEFAULT_JITTER: bool = true;
/// The delay of a fixed back-off built without one.
pub(crate) const DEFAULT_FIXED: Duration = Duration::from_secs(1);

/// Blocking retries of one listener: how many attempts and the back-off
/// between them.
///
/// The default is 3 attempts with an exponential back-off of 1 s, 2 s (cap
/// 30 s, jitter). Spring Kafka's default is `FixedBackOff(0, 9)`: ten
/// attempts with no pause, a hot loop that hammers a database that is
/// already down; ours waits, and gives up sooner.
///
/// Build one with [`RetryPolicy::new`], the shortcuts [`none`](Self::none),
/// [`fixed`](Self::fixed) and [`exponential`](Self::exponential), or
/// [`RetryPolicy::builder`], which starts from the defaults and changes only
/// what it is told (what `#[kafka_listener(retry(...))]` generates).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    attempts: u32,
    backoff: BackOff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: DEFAULT_ATTEMPTS,
            backoff: BackOff::default(),
        }
    }
}

impl RetryPolicy {
    /// `attempts` attempts in all (the first delivery included; 1 = no
    /// retry) with `backoff` between them.
    ///
    /// # Panics
    /// When `attempts` is 0 (see [`try_new`](Self::try_new)).
    pub fn new(attempts: u32, backoff: BackOff) -> Self {
        Self::try_new(attempts, backoff).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`new`](Self::new), checked.
    ///
    /// # Errors
    /// [`Error::Config`] when `attempts` is 0.
    pub fn try_new(attempts: u32, backoff: BackOff) -> Result<Self, Error> {
        if attempts == 0 {
            return Err(Error::Config(
                "retry `attempts` must be at least 1 (the first delivery counts; 1 = no retry)"
                    .into(),
            ));
        }
        Ok(Self { attempts, backoff })
    }

    /// No retries: the first failure is final.
    pub fn none() -> Self {
        Self {
            attempts: 1,
            backoff: BackOff::none(),
        }
    }

    /// `attempts` attempts with a fixed delay between them.
    ///
    /// # Panics
    /// When `attempts` is 0.
    pub fn fixed(attempts: u32, delay: Duration) -> Self {
        Self::new(attempts, BackOff::fixed(delay))
    }

    /// `attempts` attempts with an exponential back-off (no jitter).
    ///
    /// # Panics
    /// When `attempts` is 0 or [`BackOff::try_exponential`] fails.
    pub fn exponential(attempts: u32, initial: Duration, multiplier: f64, max: Duration) -> Self {
        Self::new(attempts, BackOff::exponential(initial, multiplier, max))
    }

    /// A builder that starts from [`RetryPolicy::default`]'s settings.
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder::default()
    }

    /// Total attempts, the first delivery included (at least 1).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The pause before each retry.
    pub fn backoff(&self) -> &BackOff {
        &self.backoff
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

/// Which back-off a [`RetryPolicyBuilder`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Fixed,
    Exponential,
}

/// Builds a [`RetryPolicy`] from the settings given, the runtime's defaults
/// filling the rest: 3 attempts, exponential from 1 s, times 2.0, capped at
/// 30 s, with jitter; a fixed back-off waits 1 s.
///
/// When only one of `initial` and `max` is given and it falls on the wrong
/// side of the other's default, the default gives way: `initial("1m")`
/// alone caps at 1 min, `max("500ms")` alone starts at 500 ms.
#[derive(Debug, Clone, Default)]
pub struct RetryPolicyBuilder {
    attempts: Option<u32>,
    shape: Option<Shape>,
    initial: Option<Duration>,
    max: Option<Duration>,
    multiplier: Option<f64>,
    jitter: Option<bool>,
}

impl RetryPolicyBuilder {
    /// Total attempts, the first delivery included (at least 1).
    #[must_use]
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = Some(attempts);
        self
    }

    /// A fixed back-off: `initial` (default 1 s) before every retry.
    #[must_use]
    pub fn fixed(mut self) -> Self {
        self.shape = Some(Shape::Fixed);
        self
    }

    /// An exponential back-off (the default).
    #[must_use]
    pub fn exponential(mut self) -> Self {
        self.shape = Some(Shape::Exponential);
        self
    }

    /// The first delay (a fixed back-off: every delay).
    #[must_use]
    pub fn initial(mut self, initial: Duration) -> Self {
        self.initial = Some(initial);
        self
    }

    /// The cap on any one delay (exponential only).
    #[must_use]
    pub fn max(mut self, max: Duration) -> Self {
        self.max = Some(max);
        self
    }

    /// Growth factor per retry, at least 1.0 (exponential only).
    #[must_use]
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = Some(multiplier);
        self
    }

    /// Randomize each delay within `[delay/2, delay]` (exponential only).
    #[must_use]
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = Some(jitter);
        self
    }

    /// The policy.
    ///
    /// # Panics
    /// When [`try_build`](Self::try_build) fails.
    pub fn build(self) -> RetryPolicy {
        self.try_build().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The policy, checked.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting: `attempts` is 0; `max`,
    /// `multiplier` or `jitter` given for a fixed back-off; or what
    /// [`BackOff::try_exponential`] refuses.
    pub fn try_build(self) -> Result<RetryPolicy, Error> {
        let attempts = self.attempts.unwrap_or(DEFAULT_ATTEMPTS);
        let backoff = match self.shape.unwrap_or(Shape::Exponential) {
            Shape::Fixed => {
                for (given, name) in [
                    (self.max.is_some(), "max"),
                    (self.multiplier.is_some(), "multiplier"),
                    (self.jitter.is_some(), "jitter"),
                ] {
                    if given {
                        return Err(Error::Config(format!(
                            "retry `{name}` applies to an exponential back-off only; a fixed back-off waits `initial` before every retry"
                        )));
                    }
                }
                BackOff::fixed(self.initial.unwrap_or(DEFAULT_FIXED))
            }
            Shape::Exponential => {
                let (initial, max) = match (self.initial, self.max) {
                    (Some(i), Some(m)) => (i, m),
                    (Some(i), None) => (i, DEFAULT_MAX.max(i)),
                    (None, Some(m)) => (DEFAULT_INITIAL.min(m), m),
                    (None, None) => (DEFAULT_INITIAL, DEFAULT_MAX),
                };
                BackOff::try_exponential(
                    initial,
                    self.multiplier.unwrap_or(DEFAULT_MULTIPLIER),
                    max,
                )?
                .with_jitter(self.jitter.unwrap_or(DEFAULT_JITTER))
            }
        };
        RetryPolicy::try_new(attempts, backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatal_errors_are_not_retried() {
        let p = RetryPolicy::fixed(5, Duration::from_millis(1));
        let fatal = ListenerError::fatal("no");
        let retryable = ListenerError::retryable("later");
        assert_eq!(p.next_delay(1, &fatal), None);
        assert_eq!(p.next_delay(1, &retryable), Some(Duration::from_millis(1)));
        assert_eq!(p.next_delay(5, &retryable), None);
    }

    #[test]
    fn an_empty_builder_is_the_default_policy() {
        assert_eq!(RetryPolicy::builder().build(), RetryPolicy::default());
        let p = RetryPolicy::default();
        assert_eq!(p.attempts(), 3);
        assert!(p.backoff().jitter());
        assert_eq!(p.backoff().nominal(1), Duration::from_secs(1));
        assert_eq!(p.backoff().nominal(2), Duration::from_secs(2));
        assert_eq!(p.backoff().nominal(10), Duration::from_secs(30));
    }

    #[test]
    fn the_builder_changes_only_what_it_is_told() {
        let p = RetryPolicy::builder().attempts(5).build();
        assert_eq!(p.attempts(), 5);
        assert_eq!(p.backoff(), RetryPolicy::default().backoff());

        let p = RetryPolicy::builder()
            .fixed()
            .initial(Duration::from_millis(250))
            .build();
        assert_eq!(p, RetryPolicy::fixed(3, Duration::from_millis(250)));
        assert_eq!(
            RetryPolicy::builder().fixed().build().backoff().nominal(4),
            DEFAULT_FIXED
        );

        let p = RetryPolicy::builder()
            .initial(Duration::from_millis(100))
            .multiplier(1.5)
            .max(Duration::from_secs(10))
            .jitter(false)
            .build();
        let want = BackOff::exponential(Duration::from_millis(100), 1.5, Duration::from_secs(10));
        assert_eq!(p.backoff(), &want);
    }

    #[test]
    fn a_lone_initial_or_max_moves_the_other_default() {
        let p = RetryPolicy::builder()
            .initial(Duration::from_secs(60))
            .build();
        assert_eq!(p.backoff().nominal(3), Duration::from_secs(60));
        let p = RetryPolicy::builder()
            .max(Duration::from_millis(500))
            .jitter(false)
            .build();
        assert_eq!(p.backoff().nominal(1), Duration::from_millis(500));
    }

    #[test]
    fn invalid_policies_cannot_be_built() {
        let cases = [
            (RetryPolicy::builder().attempts(0).try_build(), "`attempts`"),
            (
                RetryPolicy::builder().fixed().multiplier(2.0).try_build(),
                "`multiplier`",
            ),
            (
                RetryPolicy::builder()
                    .fixed()
                    .max(Duration::from_secs(1))
                    .try_build(),
                "`max`",
            ),
            (
                RetryPolicy::builder()
                    .initial(Duration::from_secs(2))
                    .max(Duration::from_secs(1))
                    .try_build(),
                "`max`",
            ),
            (RetryPolicy::try_new(0, BackOff::none()), "`attempts`"),
        ];
        for (result, setting) in cases {
            let e = result.unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{e}");
            assert!(e.to_string().contains(setting), "{e}");
        }
    }
}
