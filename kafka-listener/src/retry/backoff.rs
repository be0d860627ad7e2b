//! [`BackOff`]: the one delay schedule of the crate, used by blocking
//! retries ([`RetryPolicy`](super::RetryPolicy)), retry topics
//! ([`RetryTopics`](super::RetryTopics)) and the outbox relay.

use std::fmt;
use std::time::Duration;

use crate::error::Error;

/// How long to wait before each retry: a fixed delay, an exponential one
/// (multiplier and cap), or a list of delays whose last one repeats; with
/// jitter, each delay is drawn uniformly from `[delay/2, delay]` so that
/// many consumers do not retry in step.
///
/// Build one with [`BackOff::fixed`], [`BackOff::exponential`] or
/// [`BackOff::from_delays`] (or their `try_` forms, which return
/// [`Error::Config`] instead of panicking), then
/// [`with_jitter`](Self::with_jitter). An invalid back-off (a zero initial
/// delay, a multiplier below 1 or NaN, a cap below the initial delay, an
/// empty list) cannot be built.
///
/// The default is exponential from 1 s, times 2, capped at 30 s, with
/// jitter (as [`RetryPolicy::default`](super::RetryPolicy)).
#[derive(Clone, PartialEq)]
pub struct BackOff {
    kind: Kind,
    jitter: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Fixed(Duration),
    Exponential {
        initial: Duration,
        multiplier: f64,
        max: Duration,
    },
    Delays(Vec<Duration>),
}

impl fmt::Debug for BackOff {
    /// `Fixed(250ms)`, `Exponential { initial: 1s, multiplier: 2.0, max:
    /// 30s, jitter: true }`, `Delays([1s, 10s])`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Fixed(d) if !self.jitter => f.debug_tuple("Fixed").field(d).finish(),
            Kind::Delays(d) if !self.jitter => f.debug_tuple("Delays").field(d).finish(),
            Kind::Fixed(d) => f
                .debug_struct("Fixed")
                .field("delay", d)
                .field("jitter", &self.jitter)
                .finish(),
            Kind::Delays(d) => f
                .debug_struct("Delays")
                .field("delays", d)
                .field("jitter", &self.jitter)
                .finish(),
            Kind::Exponential {
                initial,
                multiplier,
                max,
            } => f
                .debug_struct("Exponential")
                .field("initial", initial)
                .field("multiplier", multiplier)
                .field("max", max)
                .field("jitter", &self.jitter)
                .finish(),
        }
    }
}

impl Default for BackOff {
    fn default() -> Self {
        Self::exponential(
            super::policy::DEFAULT_INITIAL,
            super::policy::DEFAULT_MULTIPLIER,
            super::policy::DEFAULT_MAX,
        )
        .with_jitter(true)
    }
}

impl BackOff {
    /// No pause at all: every retry at once.
    pub const fn none() -> Self {
        Self {
            kind: Kind::Fixed(Duration::ZERO),
            jitter: false,
        }
    }

    /// The same `delay` before every retry (zero: no pause, Spring's
    /// `FixedBackOff(0, ..)`).
    pub const fn fixed(delay: Duration) -> Self {
        Self {
            kind: Kind::Fixed(delay),
            jitter: false,
        }
    }

    /// `initial`, then each delay `multiplier` times the one before, capped
    /// at `max` (Spring's `ExponentialBackOff(initialInterval, multiplier)`
    /// with `maxInterval`); no jitter until [`with_jitter`](Self::with_jitter).
    ///
    /// # Panics
    /// When [`try_exponential`](Self::try_exponential) fails.
    pub fn exponential(initial: Duration, multiplier: f64, max: Duration) -> Self {
        Self::try_exponential(initial, multiplier, max).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`exponential`](Self::exponential), checked.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting: `initial` is zero, `multiplier`
    /// is below 1.0, NaN or infinite, or `max` is shorter than `initial`.
    pub fn try_exponential(
        initial: Duration,
        multiplier: f64,
        max: Duration,
    ) -> Result<Self, Error> {
        if initial.is_zero() {
            return Err(Error::Config(
                "back-off `initial` must be longer than zero (an exponential back-off from 0 never waits; use BackOff::none())".into(),
            ));
        }
        if !multiplier.is_finite() || multiplier < 1.0 {
            return Err(Error::Config(format!(
                "back-off `multiplier` must be a finite number of at least 1.0 (each delay is at least the one before), not {multiplier}"
            )));
        }
        if max < initial {
            return Err(Error::Config(format!(
                "back-off `max` ({}) is shorter than `initial` ({}); the first delay must not exceed the cap",
                humantime::format_duration(max),
                humantime::format_duration(initial)
            )));
        }
        Ok(Self {
            kind: Kind::Exponential {
                initial,
                multiplier,
                max,
            },
            jitter: false,
        })
    }

    /// `delays[0]` before the first retry, `delays[1]` before the second,
    /// and so on; the last one repeats.
    ///
    /// # Panics
    /// When [`try_from_delays`](Self::try_from_delays) fails.
    pub fn from_delays(delays: impl IntoIterator<Item = Duration>) -> Self {
        Self::try_from_delays(delays).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`from_delays`](Self::from_delays), checked.
    ///
    /// # Errors
    /// [`Error::Config`] when `delays` is empty.
    pub fn try_from_delays(delays: impl IntoIterator<Item = Duration>) -> Result<Self, Error> {
        let delays: Vec<Duration> = delays.into_iter().collect();
        if delays.is_empty() {
            return Err(Error::Config(
                "back-off `delays` is empty; give at least one delay".into(),
            ));
        }
        Ok(Self {
            kind: Kind::Delays(delays),
            jitter: false,
        })
    }

    /// With `jitter`, each delay is drawn uniformly from `[delay/2, delay]`.
    #[must_use]
    pub fn with_jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Whether delays are randomized within `[delay/2, delay]`.
    pub fn jitter(&self) -> bool {
        self.jitter
    }

    /// The delay before retry number `retry` (1 for the first retry; 0 is
    /// taken as 1).
    pub fn delay(&self, retry: u32) -> Duration {
        let delay = self.nominal(retry);
        if self.jitter {
            delay.mul_f64(0.5 + fastrand::f64() * 0.5)
        } else {
            delay
        }
    }

    /// The delay before retry `retry` without jitter.
    pub fn nominal(&self, retry: u32) -> Duration {
        let retry = retry.max(1);
        match &self.kind {
            Kind::Fixed(d) => *d,
            Kind::Exponential {
                initial,
                multiplier,
                max,
            } => {
                let exp = multiplier.powi((retry - 1).min(1024) as i32);
                let secs = (initial.as_secs_f64() * exp).min(max.as_secs_f64());
                Duration::from_secs_f64(secs)
            }
            Kind::Delays(delays) => delays[(retry as usize - 1).min(delays.len() - 1)],
        }
    }

    /// Whether every retry from `retry` on waits the same nominal delay
    /// (the cap is reached, or the last of the listed delays).
    pub(crate) fn settled(&self, retry: u32) -> bool {
        match &self.kind {
            Kind::Fixed(_) => true,
            Kind::Exponential {
                multiplier, max, ..
            } => *multiplier == 1.0 || self.nominal(retry) >= *max,
            Kind::Delays(delays) => retry as usize >= delays.len(),
        }
    }

    /// The shortest delay without jitter: before the first retry for a
    /// fixed or exponential back-off, the shortest listed delay otherwise.
    pub(crate) fn shortest(&self) -> Duration {
        match &self.kind {
            Kind::Delays(delays) => delays.iter().min().copied().unwrap_or_default(),
            _ => self.nominal(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_grows_and_caps() {
        let b = BackOff::exponential(Duration::from_millis(100), 2.0, Duration::from_millis(350));
        let d: Vec<_> = (1..=4).map(|r| b.delay(r).as_millis()).collect();
        assert_eq!(d, vec![100, 200, 350, 350]);
        assert!(!b.settled(2));
        assert!(b.settled(3));
        // A huge retry number neither overflows nor passes the cap.
        assert_eq!(b.delay(u32::MAX), Duration::from_millis(350));
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        let b = BackOff::exponential(Duration::from_millis(1000), 1.0, Duration::from_secs(10))
            .with_jitter(true);
        for _ in 0..100 {
            let d = b.delay(3).as_millis();
            assert!((500..=1000).contains(&d), "{d}");
        }
        assert_eq!(b.nominal(3), Duration::from_millis(1000));
    }

    #[test]
    fn listed_delays_repeat_the_last() {
        let b = BackOff::from_delays([Duration::from_secs(1), Duration::from_secs(10)]);
        let d: Vec<_> = (1..=4).map(|r| b.delay(r).as_secs()).collect();
        assert_eq!(d, vec![1, 10, 10, 10]);
        assert!(!b.settled(1));
        assert!(b.settled(2));
        assert_eq!(format!("{b:?}"), "Delays([1s, 10s])");
    }

    #[test]
    fn invalid_back_offs_cannot_be_built() {
        let s = Duration::from_secs(1);
        let cases = [
            (
                BackOff::try_exponential(Duration::ZERO, 2.0, s),
                "`initial`",
            ),
            (BackOff::try_exponential(s, 0.5, s), "`multiplier`"),
            (BackOff::try_exponential(s, f64::NAN, s), "`multiplier`"),
            (
                BackOff::try_exponential(s, f64::INFINITY, s),
                "`multiplier`",
            ),
            (BackOff::try_exponential(s * 2, 2.0, s), "`max`"),
            (BackOff::try_from_delays([]), "`delays`"),
        ];
        for (result, setting) in cases {
            let e = result.unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{e}");
            assert!(e.to_string().contains(setting), "{e}");
        }
    }

    #[test]
    #[should_panic(expected = "`multiplier`")]
    fn the_panicking_constructor_says_why() {
        let _ = BackOff::exponential(Duration::from_secs(1), 0.0, Duration::from_secs(2));
    }
}
