//! The load generator behind `concert-queue load`: enqueues N users over
//! HTTP, waits until every one was admitted, and reports the enqueue
//! throughput, the admission order and the admission rate measured against
//! the configured one.

use std::fmt;
use std::time::{Duration, Instant};

use example_support::load::{self as support, Fired, Percentiles, Tally};
use futures::stream::{self, StreamExt};

use crate::http::{EnqueueBody, Progress, QueueStats, TokenView};

pub use example_support::load::HttpError;

/// What to fire, and where.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadOptions {
    /// Base URL of the running service, without a trailing slash.
    #[arg(
        long,
        env = "CONCERT_QUEUE_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub url: String,
    /// Users to enqueue (ids `<prefix>-0`, `<prefix>-1`, ...), one token each.
    #[arg(long, default_value_t = 500)]
    pub users: usize,
    /// HTTP requests in flight at once while enqueueing.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds to wait, after the last token was accepted, for every token
    /// to be admitted.
    #[arg(long, default_value_t = 600)]
    pub drain_timeout_secs: u64,
    /// Prefix of the user ids; default `load-<unix millis>`, so that runs
    /// against one database do not collide.
    #[arg(long)]
    pub prefix: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8081".into(),
            users: 500,
            concurrency: 32,
            drain_timeout_secs: 600,
            prefix: None,
        }
    }
}

/// Why a load run stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The service could not be reached, or answered something unexpected.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// Tokens were still waiting after the drain timeout.
    #[error("{waiting} tokens still waiting after {waited:?}")]
    NotDrained {
        /// Tokens not admitted.
        waiting: usize,
        /// How long the run waited in all.
        waited: Duration,
    },
}

/// One enqueued token as the load generator saw it.
#[derive(Debug, Clone, Default)]
pub struct TokenResult {
    /// The user id sent.
    pub user_id: String,
    /// The token id received.
    pub token_id: String,
    /// Its offset on the queue topic (its arrival rank).
    pub offset: i64,
    /// When the 202 arrived, milliseconds since the Unix epoch.
    pub accepted_at: i64,
    /// When it was admitted, milliseconds since the Unix epoch.
    pub admitted_at: i64,
    /// Its admission number (1, 2, ... in admission order).
    pub admission_seq: i64,
}

/// What a load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// The service's configured rate, as `M/N` (`GET /queue/stats`).
    pub configured_rate: String,
    /// The configured rate in tokens per second.
    pub configured_per_second: f64,
    /// Users enqueued.
    pub users: u64,
    /// Tokens accepted (202).
    pub accepted: u64,
    /// Extra attempts after a 429 (queue full) or 503 (broker down).
    pub retries: u64,
    /// Users that got no token in the end.
    pub rejected: u64,
    /// From the first `POST /queue/tokens` to the last answer, seconds.
    pub enqueue_seconds: f64,
    /// Tokens accepted per second over `enqueue_seconds`.
    pub requests_per_second: f64,
    /// Median `POST /queue/tokens` round trip (includes the broker ack), ms.
    pub latency_p50_ms: f64,
    /// 99th percentile of the same, ms.
    pub latency_p99_ms: f64,
    /// Slowest of the same, ms.
    pub latency_max_ms: f64,
    /// Tokens whose admission number is not above that of the token just
    /// before them in offset order (must be 0).
    pub order_violations: u64,
    /// Admissions per second from the first to the last admission, not
    /// counting the first window's burst: `(n - permits) / span`.
    pub admitted_per_second: f64,
    /// The most admissions seen in any window of the configured length
    /// (must not exceed the configured permits, plus clock jitter).
    pub max_in_window: u64,
    /// From the first admission to the last, seconds.
    pub admission_span_seconds: f64,
    /// Median wait from the 202 to the admission, ms (the queue's wait).
    pub wait_p50_ms: f64,
    /// 99th percentile of the same, ms.
    pub wait_p99_ms: f64,
    /// Longest of the same, ms.
    pub wait_max_ms: f64,
    /// Every accepted token, in offset order.
    pub tokens: Vec<TokenResult>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "enqueue:    {} users, {} accepted (202), {} rejected, {} retries after 429/503",
            self.users, self.accepted, self.rejected, self.retries
        )?;
        writeln!(
            f,
            "throughput: {:.0} tokens/s accepted over {:.2} s; POST p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.requests_per_second,
            self.enqueue_seconds,
            self.latency_p50_ms,
            self.latency_p99_ms,
            self.latency_max_ms
        )?;
        writeln!(
            f,
            "admission:  {:.2} tokens/s measured over {:.2} s (configured {} = {:.2}/s); at most {} in any window",
            self.admitted_per_second,
            self.admission_span_seconds,
            self.configured_rate,
            self.configured_per_second,
            self.max_in_window
        )?;
        writeln!(
            f,
            "wait:       202 -> admitted p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            self.wait_p50_ms, self.wait_p99_ms, self.wait_max_ms
        )?;
        if self.order_violations == 0 {
            write!(
                f,
                "order:      every token admitted in arrival (offset) order"
            )
        } else {
            write!(
                f,
                "order:      {} tokens admitted OUT OF ORDER",
                self.order_violations
            )
        }
    }
}

/// Runs the load: reads the configured rate, enqueues `opts.users` users
/// with `opts.concurrency` requests in flight (retrying a 429 or 503 up to
/// 50 times after a pause), waits until the last token (by offset) was
/// admitted, reads every token back and measures.
///
/// # Errors
/// [`LoadError::Http`] when the service cannot be reached or answers
/// something unexpected ([`HttpError::Unexpected`]),
/// [`LoadError::NotDrained`] when tokens still wait past the drain timeout.
pub async fn run(opts: &LoadOptions) -> Result<LoadReport, LoadError> {
    let base = opts.url.trim_end_matches('/').to_owned();
    let client = support::client(opts.concurrency)?;
    let stats: QueueStats = support::get_json(&client, &format!("{base}/queue/stats")).await?;
    let QueueStats {
        configured_rate,
        configured_per_second,
        ..
    } = stats;
    let (permits, window_ms) = parse_rate(&configured_rate).unwrap_or((0, 0));
    let prefix = support::run_prefix(opts.prefix.as_deref());

    let started = Instant::now();
    let url = format!("{base}/queue/tokens");
    let results = support::fan_out(opts.users, opts.concurrency, |n| {
        let client = client.clone();
        let url = url.clone();
        let user = format!("{prefix}-{n}");
        async move { fire(&client, &url, user).await }
    })
    .await;
    let enqueue = started.elapsed();

    let tally = Tally::new(results);
    let accepted = tally.accepted.len() as u64;
    let mut report = LoadReport {
        configured_rate,
        configured_per_second,
        users: opts.users as u64,
        accepted,
        retries: tally.retries,
        rejected: tally.rejected,
        enqueue_seconds: enqueue.as_secs_f64(),
        requests_per_second: support::per_second(accepted, enqueue),
        latency_p50_ms: tally.latency_ms.p50,
        latency_p99_ms: tally.latency_ms.p99,
        latency_max_ms: tally.latency_ms.max,
        tokens: tally.accepted,
        ..LoadReport::default()
    };
    report.tokens.sort_by_key(|t| t.offset);
    let Some(last) = report.tokens.last().cloned() else {
        return Ok(report);
    };

    // Admission is in offset order: once the last token is admitted, all are.
    let deadline = Instant::now() + Duration::from_secs(opts.drain_timeout_secs);
    loop {
        let v: TokenView =
            support::get_json(&client, &format!("{base}/queue/tokens/{}", last.token_id)).await?;
        if v.status != "waiting" {
            break;
        }
        if Instant::now() >= deadline {
            return Err(LoadError::NotDrained {
                waiting: usize::try_from(v.position().unwrap_or(0)).unwrap_or(0) + 1,
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let views: Vec<Result<TokenView, HttpError>> = stream::iter(report.tokens.iter())
        .map(|t| {
            let client = client.clone();
            let url = format!("{base}/queue/tokens/{}", t.token_id);
            async move { support::get_json(&client, &url).await }
        })
        .buffered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut waits = Vec::new();
    for (t, v) in report.tokens.iter_mut().zip(views) {
        let v = v?;
        if let Progress::Admitted {
            admitted_at,
            admission_seq,
            ..
        } = v.progress
        {
            t.admitted_at = admitted_at.unwrap_or(0);
            t.admission_seq = admission_seq.unwrap_or(0);
        }
        waits.push((t.admitted_at - t.accepted_at).max(0) as f64);
    }
    report.order_violations = report
        .tokens
        .windows(2)
        .filter(|w| w[1].admission_seq <= w[0].admission_seq)
        .count() as u64;
    let wait = Percentiles::of(waits);
    report.wait_p50_ms = wait.p50;
    report.wait_p99_ms = wait.p99;
    report.wait_max_ms = wait.max;
    let mut admitted: Vec<i64> = report.tokens.iter().map(|t| t.admitted_at).collect();
    admitted.sort_unstable();
    let (rate, span, max_in_window) = measure(&admitted, permits, window_ms);
    report.admitted_per_second = rate;
    report.admission_span_seconds = span;
    report.max_in_window = max_in_window;
    Ok(report)
}

/// `(tokens/s after the first window's burst, span in s, most admissions in
/// any window of `window_ms`)` over sorted admission times in ms.
pub fn measure(admitted_ms: &[i64], permits: u64, window_ms: i64) -> (f64, f64, u64) {
    let (Some(first), Some(last)) = (admitted_ms.first(), admitted_ms.last()) else {
        return (0.0, 0.0, 0);
    };
    let span = (last - first) as f64 / 1000.0;
    let n = admitted_ms.len() as u64;
    let rate = if n > permits && span > 0.0 {
        (n - permits) as f64 / span
    } else {
        0.0
    };
    let mut max_in_window = 0;
    let mut lo = 0;
    for hi in 0..admitted_ms.len() {
        while admitted_ms[hi] - admitted_ms[lo] >= window_ms.max(1) {
            lo += 1;
        }
        max_in_window = max_in_window.max((hi - lo + 1) as u64);
    }
    (rate, span, max_in_window)
}

/// `"100/10s"` -> `(100, 10_000)`.
fn parse_rate(rate: &str) -> Option<(u64, i64)> {
    let r: kafka_listener::RateLimit = rate.parse().ok()?;
    Some((
        u64::from(r.permits()),
        i64::try_from(r.per().as_millis()).ok()?,
    ))
}

/// Enqueues `user` (see [`support::post_retrying`]); accepted once the 202
/// and its body arrived.
async fn fire(client: &reqwest::Client, url: &str, user: String) -> Fired<TokenResult> {
    let request = EnqueueBody { user_id: user };
    match support::post_retrying(client, url, &request, "enqueue").await {
        Fired::Accepted {
            value: response,
            latency,
            retries,
        } => {
            let body: TokenView = match response.json().await {
                Ok(v) => v,
                Err(_) => return Fired::Rejected { retries },
            };
            Fired::Accepted {
                value: TokenResult {
                    user_id: request.user_id,
                    token_id: body.token_id,
                    offset: body.offset.unwrap_or(-1),
                    accepted_at: crate::now_ms(),
                    ..TokenResult::default()
                },
                latency,
                retries,
            }
        }
        Fired::Rejected { retries } => Fired::Rejected { retries },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_rate_and_window() {
        // 3 per 1000 ms: bursts at 0, 1000, 2000.
        let t = [0, 1, 2, 1000, 1001, 1002, 2000, 2001, 2002];
        let (rate, span, max) = measure(&t, 3, 1000);
        assert_eq!(max, 3);
        assert!((span - 2.002).abs() < 1e-9);
        assert!((rate - 6.0 / 2.002).abs() < 1e-9);
        assert_eq!(parse_rate("100/10s"), Some((100, 10_000)));
    }
}
