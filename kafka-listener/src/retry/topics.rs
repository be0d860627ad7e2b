//! [`RetryTopics`]: the settings of non-blocking retries through retry
//! topics (attempts, delays, topic names). Sending to them is
//! `crate::retry_topics`'s.

use std::fmt;
use std::time::Duration;

use super::BackOff;
use crate::error::Error;

/// Attempts of [`RetryTopics::builder`] when none are given.
const DEFAULT_ATTEMPTS: u32 = 3;
/// The delay of [`RetryTopics::builder`] when none is given.
const DEFAULT_DELAY: Duration = Duration::from_secs(1);

/// Retry topics of one listener (Spring Kafka's `@RetryableTopic`): total
/// attempts (the first delivery included) and the [`BackOff`] whose delay
/// before retry `n` names its topic, `<topic>-retry-<delay in ms>`.
///
/// The back-off has no jitter: a delay names a topic, so it must not vary.
#[derive(Clone, PartialEq)]
pub struct RetryTopics {
    attempts: u32,
    backoff: BackOff,
}

impl fmt::Debug for RetryTopics {
    /// `RetryTopics { attempts: 3, delays: [1s, 10s] }` for listed delays.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryTopics")
            .field("attempts", &self.attempts)
            .field("backoff", &self.backoff)
            .finish()
    }
}

impl RetryTopics {
    /// `attempts` deliveries in all (1 means straight to the dead-letter
    /// topic), with `delays[i]` before retry `i + 1` (the last one repeats).
    ///
    /// # Panics
    /// When [`try_new`](Self::try_new) fails.
    pub fn new(attempts: u32, delays: impl IntoIterator<Item = Duration>) -> Self {
        Self::try_new(attempts, delays).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`new`](Self::new), checked.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting: `attempts` is 0, `delays` is
    /// empty or has a zero delay.
    pub fn try_new(
        attempts: u32,
        delays: impl IntoIterator<Item = Duration>,
    ) -> Result<Self, Error> {
        Self::try_with_backoff(attempts, BackOff::try_from_delays(delays)?)
    }

    /// `attempts` deliveries with the delays of `backoff` (for example
    /// `BackOff::exponential(1s, 2.0, 1m)`: `-retry-1000`, `-retry-2000`,
    /// ..., `-retry-60000`).
    ///
    /// # Panics
    /// When [`try_with_backoff`](Self::try_with_backoff) fails.
    pub fn with_backoff(attempts: u32, backoff: BackOff) -> Self {
        Self::try_with_backoff(attempts, backoff).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`with_backoff`](Self::with_backoff), checked.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting: `attempts` is 0, the back-off
    /// has jitter (a delay names a topic), or a delay is zero.
    pub fn try_with_backoff(attempts: u32, backoff: BackOff) -> Result<Self, Error> {
        if attempts == 0 {
            return Err(Error::Config(
                "retry topics `attempts` must be at least 1 (the first delivery counts; 1 = straight to the dead-letter topic)".into(),
            ));
        }
        if backoff.jitter() {
            return Err(Error::Config(
                "retry topics `delays` cannot have jitter: each delay names a topic (`<topic>-retry-<ms>`)".into(),
            ));
        }
        if backoff.shortest().is_zero() {
            return Err(Error::Config(
                "retry topics `delays` must each be longer than zero".into(),
            ));
        }
        Ok(Self { attempts, backoff })
    }

    /// A builder with the defaults: 3 attempts, 1 s before each retry.
    pub fn builder() -> RetryTopicsBuilder {
        RetryTopicsBuilder::default()
    }

    /// Total attempts.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The back-off whose delays name the retry topics.
    pub fn backoff(&self) -> &BackOff {
        &self.backoff
    }

    /// The delay before retry `retry` (1 for the first).
    pub fn delay(&self, retry: u32) -> Duration {
        self.backoff.nominal(retry)
    }

    /// `<source>-retry-<delay in ms>`: the topic of retry `retry` (Spring's
    /// suffixing with the delay value).
    pub fn topic(&self, source: &str, retry: u32) -> String {
        format!("{source}-retry-{}", self.delay(retry).as_millis())
    }

    /// Every retry topic of `source`, without repeats, in retry order.
    pub fn topic_names(&self, source: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for retry in 1..self.attempts {
            let name = self.topic(source, retry);
            if !names.contains(&name) {
                names.push(name);
            }
            if self.backoff.settled(retry) {
                break;
            }
        }
        names
    }
}

/// Builds [`RetryTopics`] from the settings given; 3 attempts and 1 s
/// delays by default.
#[derive(Debug, Clone, Default)]
pub struct RetryTopicsBuilder {
    attempts: Option<u32>,
    backoff: Option<BackOff>,
    delays: Option<Vec<Duration>>,
}

impl RetryTopicsBuilder {
    /// Total attempts, the first delivery included (at least 1).
    #[must_use]
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = Some(attempts);
        self
    }

    /// The delay before each retry; the last one repeats.
    #[must_use]
    pub fn delays(mut self, delays: impl IntoIterator<Item = Duration>) -> Self {
        self.delays = Some(delays.into_iter().collect());
        self.backoff = None;
        self
    }

    /// The delays of a back-off (without jitter).
    #[must_use]
    pub fn backoff(mut self, backoff: BackOff) -> Self {
        self.backoff = Some(backoff);
        self.delays = None;
        self
    }

    /// The retry topics.
    ///
    /// # Panics
    /// When [`try_build`](Self::try_build) fails.
    pub fn build(self) -> RetryTopics {
        self.try_build().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The retry topics, checked.
    ///
    /// # Errors
    /// What [`RetryTopics::try_new`] and [`RetryTopics::try_with_backoff`]
    /// refuse.
    pub fn try_build(self) -> Result<RetryTopics, Error> {
        let attempts = self.attempts.unwrap_or(DEFAULT_ATTEMPTS);
        match (self.backoff, self.delays) {
            (Some(backoff), _) => RetryTopics::try_with_backoff(attempts, backoff),
            (None, Some(delays)) => RetryTopics::try_new(attempts, delays),
            (None, None) => RetryTopics::try_new(attempts, [DEFAULT_DELAY]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_named_by_delay_and_the_last_repeats() {
        let rt = RetryTopics::new(4, [Duration::from_millis(500), Duration::from_secs(10)]);
        assert_eq!(rt.topic("mails", 1), "mails-retry-500");
        assert_eq!(rt.topic("mails", 3), "mails-retry-10000");
        assert_eq!(
            rt.topic_names("mails"),
            ["mails-retry-500", "mails-retry-10000"]
        );
    }

    #[test]
    fn an_exponential_back_off_names_one_topic_per_delay_up_to_the_cap() {
        let b = BackOff::exponential(Duration::from_secs(1), 2.0, Duration::from_secs(4));
        let rt = RetryTopics::with_backoff(u32::MAX, b);
        assert_eq!(
            rt.topic_names("t"),
            ["t-retry-1000", "t-retry-2000", "t-retry-4000"]
        );
    }

    #[test]
    fn the_builder_defaults_to_three_attempts_of_one_second() {
        let rt = RetryTopics::builder().build();
        assert_eq!(rt, RetryTopics::new(3, [Duration::from_secs(1)]));
        let rt = RetryTopics::builder().attempts(5).build();
        assert_eq!((rt.attempts(), rt.delay(4)), (5, Duration::from_secs(1)));
    }

    #[test]
    fn invalid_retry_topics_cannot_be_built() {
        let s = Duration::from_secs(1);
        let cases = [
            (RetryTopics::try_new(0, [s]), "`attempts`"),
            (RetryTopics::try_new(2, []), "`delays`"),
            (RetryTopics::try_new(2, [s, Duration::ZERO]), "`delays`"),
            (
                RetryTopics::try_with_backoff(2, BackOff::fixed(s).with_jitter(true)),
                "`delays`",
            ),
        ];
        for (result, setting) in cases {
            let e = result.unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{e}");
            assert!(e.to_string().contains(setting), "{e}");
        }
    }
}
