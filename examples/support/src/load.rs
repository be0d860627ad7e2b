//! What the load generators (`<app> load`) share: the HTTP client, the
//! POST that retries while the service sheds load, the fan-out with a
//! bounded number of requests in flight, and the tally of what was
//! accepted with its latency percentiles.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// How long one HTTP request of a load run may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How many times [`post_retrying`] retries a request answered 429 or 503.
pub const MAX_RETRIES: u64 = 50;

/// The pause before each retry of [`post_retrying`].
pub const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Why an HTTP exchange of a load run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The service could not be reached.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// The service answered something unexpected.
    #[error("{what}: HTTP {status}: {body}")]
    Unexpected {
        /// What was being done.
        what: String,
        /// The HTTP status received.
        status: u16,
        /// The body received.
        body: String,
    },
}

/// An HTTP client for a load run: [`REQUEST_TIMEOUT`] per request, and up
/// to `concurrency` idle connections kept per host.
///
/// # Errors
/// [`HttpError::Http`] when the client cannot be built (no TLS backend).
pub fn client(concurrency: usize) -> Result<reqwest::Client, HttpError> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency.max(1))
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

/// [`HttpError::Unexpected`] for `response` (its status and body), the
/// answer to `what`.
pub async fn unexpected(what: impl Into<String>, response: reqwest::Response) -> HttpError {
    HttpError::Unexpected {
        what: what.into(),
        status: response.status().as_u16(),
        body: response.text().await.unwrap_or_default(),
    }
}

/// `GET url` and its JSON body, read as a `T` (one of the API's response
/// types).
///
/// # Errors
/// [`HttpError::Http`] when the service cannot be reached or the body is
/// not a JSON `T`, [`HttpError::Unexpected`] for a status other than 2xx.
pub async fn get_json<T: DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Result<T, HttpError> {
    let resp = client.get(url).send().await?;
    if !resp.status().is_success() {
        return Err(unexpected(format!("GET {url}"), resp).await);
    }
    Ok(resp.json().await?)
}

/// One request of a load run, in the end.
#[derive(Debug)]
pub enum Fired<T> {
    /// Accepted: what it gave, the round trip of the accepted attempt, and
    /// the attempts before it.
    Accepted {
        /// What the accepted answer gave.
        value: T,
        /// Round trip of the accepted attempt (the service's answer
        /// included the broker's ack).
        latency: Duration,
        /// Attempts before the accepted one.
        retries: u64,
    },
    /// Not accepted in the end.
    Rejected {
        /// Attempts after the first.
        retries: u64,
    },
}

impl<T> Fired<T> {
    /// The same outcome with `f` applied to an accepted value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Fired<U> {
        match self {
            Self::Accepted {
                value,
                latency,
                retries,
            } => Fired::Accepted {
                value: f(value),
                latency,
                retries,
            },
            Self::Rejected { retries } => Fired::Rejected { retries },
        }
    }
}

/// `POST url` with `body` as JSON until it is answered 202 Accepted:
/// a 429 (load shedding) or 503 (broker down) is retried up to
/// [`MAX_RETRIES`] times after a [`RETRY_PAUSE`]. The accepted response's
/// body is left unread. Any other answer, or a request that fails, is
/// logged as `<what> rejected` / `<what> failed` (with `body` in its
/// `Debug` form) and gives [`Fired::Rejected`].
pub async fn post_retrying(
    client: &reqwest::Client,
    url: &str,
    body: &(impl Serialize + std::fmt::Debug + ?Sized),
    what: &str,
) -> Fired<reqwest::Response> {
    let mut retries = 0;
    loop {
        let started = Instant::now();
        match client.post(url).json(body).send().await {
            Ok(r) if r.status() == StatusCode::ACCEPTED => {
                return Fired::Accepted {
                    latency: started.elapsed(),
                    value: r,
                    retries,
                }
            }
            Ok(r)
                if (r.status() == StatusCode::TOO_MANY_REQUESTS
                    || r.status() == StatusCode::SERVICE_UNAVAILABLE)
                    && retries < MAX_RETRIES =>
            {
                retries += 1;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Ok(r) => {
                tracing::warn!(status = %r.status(), ?body, url, "{what} rejected");
                return Fired::Rejected { retries };
            }
            Err(e) => {
                tracing::warn!(error = %e, ?body, url, "{what} failed");
                return Fired::Rejected { retries };
            }
        }
    }
}

/// Runs `task(i)` for every `i` in `0..n` with at most `concurrency` (at
/// least 1) in flight; the outputs in completion order.
pub async fn fan_out<T, Fut>(n: usize, concurrency: usize, task: impl FnMut(usize) -> Fut) -> Vec<T>
where
    Fut: Future<Output = T>,
{
    stream::iter(0..n)
        .map(task)
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

/// Median, 99th percentile and maximum of a set of values (in the unit of
/// the values; the load reports use milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// The median.
    pub p50: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The largest value.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of `values`, in any order (nearest rank, see
    /// [`percentile`]); all 0 when there are none.
    pub fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Self {
            p50: percentile(&values, 0.5),
            p99: percentile(&values, 0.99),
            max: percentile(&values, 1.0),
        }
    }
}

/// The value at fraction `p` (0.0 to 1.0) of `sorted` (ascending): the
/// element at index `round((len - 1) * p)`; 0 when `sorted` is empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// What the requests of a load run came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally<T> {
    /// What every accepted request gave, in the order of the input.
    pub accepted: Vec<T>,
    /// Requests not accepted in the end.
    pub rejected: u64,
    /// Retries, accepted and rejected requests together.
    pub retries: u64,
    /// Round trips of the accepted requests, in milliseconds.
    pub latency_ms: Percentiles,
}

impl<T> Tally<T> {
    /// Counts `fired`.
    pub fn new(fired: impl IntoIterator<Item = Fired<T>>) -> Self {
        let mut accepted = Vec::new();
        let (mut rejected, mut retries) = (0, 0);
        let mut latencies = Vec::new();
        for f in fired {
            match f {
                Fired::Accepted {
                    value,
                    latency,
                    retries: r,
                } => {
                    accepted.push(value);
                    latencies.push(latency.as_secs_f64() * 1000.0);
                    retries += r;
                }
                Fired::Rejected { retries: r } => {
                    rejected += 1;
                    retries += r;
                }
            }
        }
        Self {
            accepted,
            rejected,
            retries,
            latency_ms: Percentiles::of(latencies),
        }
    }
}

/// `count` per second over `elapsed` (an `elapsed` under a nanosecond
/// counts as one).
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// The id prefix of a load run: `prefix`, or `load-<unix millis>` so that
/// runs against one database do not collide.
pub fn run_prefix(prefix: Option<&str>) -> String {
    prefix.map_or_else(|| format!("load-{}", crate::now_ms()), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_and_percentiles() {
        let ms = Duration::from_millis;
        let tally = Tally::new([
            Fired::Accepted {
                value: "a",
                latency: ms(30),
                retries: 2,
            }
            .map(|s: &str| s.chars().next().unwrap()),
            Fired::Rejected { retries: 50 },
            Fired::Accepted {
                value: 'b',
                latency: ms(10),
                retries: 0,
            },
            Fired::Accepted {
                value: 'c',
                latency: ms(20),
                retries: 0,
            },
        ]);
        assert_eq!(tally.accepted, ['a', 'b', 'c']);
        assert_eq!((tally.rejected, tally.retries), (1, 52));
        assert_eq!(
            tally.latency_ms,
            Percentiles {
                p50: 20.0,
                p99: 30.0,
                max: 30.0
            }
        );
        assert_eq!(Percentiles::of(Vec::new()), Percentiles::default());
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), 3.0);
        assert_eq!(per_second(10, Duration::from_secs(4)), 2.5);
        assert!(per_second(1, Duration::ZERO).is_finite());
        assert_eq!(run_prefix(Some("p")), "p");
        assert!(run_prefix(None).starts_with("load-"));
    }

    #[tokio::test]
    async fn fan_out_bounds_what_is_in_flight() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let mut out = fan_out(20, 3, |i| {
            let (now, most) = (&now, &most);
            async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                i
            }
        })
        .await;
        out.sort_unstable();
        assert_eq!(out, (0..20).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }
}
