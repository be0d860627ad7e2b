//! Listener rate limits: at most `permits` records in any `per` window
//! (`rate_limit = "100/10s"`), for listeners whose throughput is limited on
//! purpose, such as a waiting queue that admits M users every N seconds.
//!
//! The limit is enforced by the partition's lane before it calls the
//! handler, not by sleeping in the handler: while the lane waits for a
//! permit, its queue fills up and the consumer thread pauses the partition,
//! and the consumer keeps polling, so the group never evicts it however long
//! the budget stays spent.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::Error;

/// At most `permits` handler calls in any window of `per` (a sliding
/// window), shared by every consumer and partition of one listener.
///
/// Built with [`RateLimit::new`] (or [`try_new`](RateLimit::try_new)) or
/// parsed from `"PERMITS/DURATION"` ([`FromStr`]); at least 1 permit and a
/// window longer than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    permits: u32,
    per: Duration,
}

impl RateLimit {
    /// `permits` records per `per`.
    ///
    /// # Panics
    /// When `permits` is 0 or `per` is zero (see [`try_new`](Self::try_new)).
    pub fn new(permits: u32, per: Duration) -> Self {
        Self::try_new(permits, per).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`new`](Self::new), checked.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting: `permits` is 0 (nothing would
    /// ever be admitted) or the window `per` is zero.
    pub fn try_new(permits: u32, per: Duration) -> Result<Self, Error> {
        if permits == 0 {
            return Err(Error::Config(
                "rate limit `permits` must be at least 1 (0 would admit nothing, ever)".into(),
            ));
        }
        if per.is_zero() {
            return Err(Error::Config(
                "rate limit window `per` must be longer than zero".into(),
            ));
        }
        Ok(Self { permits, per })
    }

    /// Records admitted per window (at least 1).
    pub fn permits(&self) -> u32 {
        self.permits
    }

    /// The window length (longer than zero).
    pub fn per(&self) -> Duration {
        self.per
    }

    /// The average rate in records per second.
    pub fn per_second(&self) -> f64 {
        f64::from(self.permits) / self.per.as_secs_f64()
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.permits,
            humantime::format_duration(self.per)
        )
    }
}

impl FromStr for RateLimit {
    type Err = Error;

    /// Parses `M/N` with `N` a humantime duration: `100/10s`, `5/1s`,
    /// `1000/1m`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the bad part.
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: String| {
            Error::Config(format!(
                "rate limit `{s}`: {why}; expected PERMITS/DURATION such as `100/10s`"
            ))
        };
        let (m, n) = s.split_once('/').ok_or_else(|| bad("no `/`".into()))?;
        let permits: u32 = m
            .trim()
            .parse()
            .map_err(|_| bad(format!("`{m}` is not a whole number")))?;
        if permits == 0 {
            return Err(bad("permits must be at least 1".into()));
        }
        let per = humantime::parse_duration(n.trim()).map_err(|e| bad(format!("`{n}`: {e}")))?;
        if per.is_zero() {
            return Err(bad("the window must be longer than zero".into()));
        }
        Ok(Self { permits, per })
    }
}

/// The sliding window of one listener: the times of the last `permits`
/// admissions.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: RateLimit,
    admitted: Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            // Grows to `permits` only if that many are admitted in one window.
            admitted: Mutex::new(VecDeque::with_capacity(limit.permits.min(1024) as usize)),
        }
    }

    /// The limit it enforces.
    pub(crate) fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Permits left in the window ending `now` (read-only: takes none).
    pub(crate) fn available(&self, now: Instant) -> u32 {
        let admitted = crate::util::lock(&self.admitted);
        let live = admitted
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < self.limit.per)
            .count();
        self.limit.permits.saturating_sub(live as u32)
    }

    /// Takes a permit now (`Ok`) or says how long until one frees up (`Err`).
    pub(crate) fn try_acquire(&self, now: Instant) -> Result<(), Duration> {
        let mut admitted = crate::util::lock(&self.admitted);
        while admitted
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.limit.per)
        {
            admitted.pop_front();
        }
        if admitted.len() < self.limit.permits as usize {
            admitted.push_back(now);
            Ok(())
        } else {
            let oldest = *admitted.front().expect("full window");
            Err((oldest + self.limit.per).saturating_duration_since(now))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let r: RateLimit = "100/10s".parse().unwrap();
        assert_eq!(r, RateLimit::new(100, Duration::from_secs(10)));
        assert_eq!(r.per_second(), 10.0);
        for bad in ["100", "x/1s", "0/1s", "5/0s", "5/soon"] {
            let e = bad.parse::<RateLimit>().unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
            assert!(e.contains("expected PERMITS/DURATION"), "{e}");
        }
    }

    #[test]
    fn zero_permits_or_window_cannot_be_built() {
        let e = RateLimit::try_new(0, Duration::from_secs(1)).unwrap_err();
        assert!(
            matches!(e, Error::Config(_)) && e.to_string().contains("`permits`"),
            "{e}"
        );
        let e = RateLimit::try_new(1, Duration::ZERO).unwrap_err();
        assert!(e.to_string().contains("`per`"), "{e}");
        let r = RateLimit::new(7, Duration::from_secs(2));
        assert_eq!((r.permits(), r.per()), (7, Duration::from_secs(2)));
    }

    #[test]
    #[should_panic(expected = "`permits` must be at least 1")]
    fn new_panics_on_zero_permits() {
        let _ = RateLimit::new(0, Duration::from_secs(1));
    }

    #[test]
    fn at_most_permits_in_any_window() {
        let l = RateLimiter::new(RateLimit::new(3, Duration::from_secs(10)));
        let t0 = Instant::now();
        assert!(l.try_acquire(t0).is_ok());
        assert!(l.try_acquire(t0 + Duration::from_secs(1)).is_ok());
        assert!(l.try_acquire(t0 + Duration::from_secs(2)).is_ok());
        assert_eq!(
            l.try_acquire(t0 + Duration::from_secs(3)),
            Err(Duration::from_secs(7))
        );
        // The first permit frees up 10 s after it was taken.
        assert!(l.try_acquire(t0 + Duration::from_secs(10)).is_ok());
        assert_eq!(
            l.try_acquire(t0 + Duration::from_secs(10)),
            Err(Duration::from_secs(1))
        );
    }
}
