//! The load generator behind `coupon-service load`: creates coupons, fires
//! concurrent issue requests at a running service over HTTP, waits until
//! every request is decided, and reports throughput and outcomes.

use std::fmt;
use std::time::{Duration, Instant};

use example_support::load::{self as support, Fired, Tally};
use reqwest::StatusCode;

use crate::http::{CouponView, CreateCoupon, IssueBody};

pub use example_support::load::HttpError;

/// What to fire, and where.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadOptions {
    /// Base URL of the running service, without a trailing slash.
    #[arg(
        long,
        env = "COUPON_SERVICE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// Coupons to create (ids `<prefix>-0`, `<prefix>-1`, ...).
    #[arg(long, default_value_t = 10)]
    pub coupons: usize,
    /// Stock of each coupon.
    #[arg(long, default_value_t = 100)]
    pub stock: i64,
    /// Distinct users; each requests every coupon once, so `users * coupons`
    /// requests are fired.
    #[arg(long, default_value_t = 2000)]
    pub users: usize,
    /// HTTP requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds to wait, after the last request was accepted, for every
    /// request to be decided.
    #[arg(long, default_value_t = 120)]
    pub drain_timeout_secs: u64,
    /// Prefix of the coupon ids; default `load-<unix millis>`, so that runs
    /// against one database do not collide.
    #[arg(long)]
    pub prefix: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080".into(),
            coupons: 10,
            stock: 100,
            users: 2000,
            concurrency: 64,
            drain_timeout_secs: 120,
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
    /// Requests were still pending after the drain timeout.
    #[error("{pending} requests still pending after {waited:?}")]
    NotDrained {
        /// Requests still pending.
        pending: i64,
        /// How long the run waited.
        waited: Duration,
    },
}

/// The measured result of one run. Durations in seconds, latencies in
/// milliseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Coupon ids created for the run.
    pub coupon_ids: Vec<String>,
    /// Total stock over all coupons.
    pub total_stock: i64,
    /// Issue requests fired (`users * coupons`).
    pub requests: u64,
    /// Requests answered 202 (the broker acknowledged them).
    pub accepted: u64,
    /// Extra attempts after a 429 (load shedding) or 503 (broker down).
    pub retries: u64,
    /// Requests that got no 202 in the end.
    pub rejected: u64,
    /// From the first request to the last answer.
    pub send_seconds: f64,
    /// Accepted requests per second over `send_seconds`.
    pub requests_per_second: f64,
    /// Median HTTP round trip of an accepted request (includes the broker ack).
    pub latency_p50_ms: f64,
    /// 99th percentile of the same.
    pub latency_p99_ms: f64,
    /// Slowest accepted request.
    pub latency_max_ms: f64,
    /// From the first request until no request was pending.
    pub drain_seconds: f64,
    /// Decided requests per second over `drain_seconds` (listener throughput
    /// end to end).
    pub decided_per_second: f64,
    /// Coupons issued (sum of `issued` over the coupons).
    pub issued: i64,
    /// Requests decided `sold_out`.
    pub sold_out: i64,
    /// Requests decided `failed` (dead-lettered).
    pub failed: i64,
    /// Requests still pending at the end (0 unless the drain timed out).
    pub pending: i64,
    /// Coupons whose `issued` exceeds their stock (must stay empty).
    pub over_issued: Vec<String>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "requests:   {} fired, {} accepted (202), {} rejected, {} retries after 429/503",
            self.requests, self.accepted, self.rejected, self.retries
        )?;
        writeln!(
            f,
            "throughput: {:.0} requests/s accepted over {:.2} s; {:.0} requests/s decided end to end ({:.2} s until none pending)",
            self.requests_per_second, self.send_seconds, self.decided_per_second, self.drain_seconds
        )?;
        writeln!(
            f,
            "latency:    POST /issue p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.latency_p50_ms, self.latency_p99_ms, self.latency_max_ms
        )?;
        writeln!(
            f,
            "outcome:    issued {} of stock {}, sold out {}, failed {}, pending {}",
            self.issued, self.total_stock, self.sold_out, self.failed, self.pending
        )?;
        if self.over_issued.is_empty() {
            write!(f, "check:      no coupon issued past its stock")
        } else {
            write!(
                f,
                "check:      OVER-ISSUED coupons: {}",
                self.over_issued.join(", ")
            )
        }
    }
}

/// Runs the load: creates `opts.coupons` coupons, fires the requests with
/// `opts.concurrency` in flight (retrying a 429 or 503 up to 50 times after
/// a pause), then polls `GET /coupons/{id}` until nothing is pending.
///
/// # Errors
/// [`LoadError::Http`] when the service cannot be reached or creating a
/// coupon fails ([`HttpError::Unexpected`]),
/// [`LoadError::NotDrained`] when requests stay pending past the drain
/// timeout.
pub async fn run(opts: &LoadOptions) -> Result<LoadReport, LoadError> {
    let base = opts.url.trim_end_matches('/').to_owned();
    let client = support::client(opts.concurrency)?;
    let prefix = support::run_prefix(opts.prefix.as_deref());
    let coupon_ids: Vec<String> = (0..opts.coupons).map(|i| format!("{prefix}-{i}")).collect();
    for id in &coupon_ids {
        let resp = client
            .post(format!("{base}/coupons"))
            .json(&CreateCoupon {
                coupon_id: id.clone(),
                stock: opts.stock,
            })
            .send()
            .await
            .map_err(HttpError::from)?;
        if resp.status() != StatusCode::CREATED {
            return Err(support::unexpected(format!("creating coupon {id}"), resp)
                .await
                .into());
        }
    }

    let total = opts.users * opts.coupons;
    let started = Instant::now();
    let results: Vec<Fired<()>> = support::fan_out(total, opts.concurrency, |n| {
        let client = client.clone();
        let url = format!("{base}/coupons/{}/issue", coupon_ids[n % opts.coupons]);
        let body = IssueBody {
            user_id: format!("user-{}", n / opts.coupons),
        };
        async move {
            support::post_retrying(&client, &url, &body, "issue request")
                .await
                .map(drop)
        }
    })
    .await;
    let send_elapsed = started.elapsed();

    let tally = Tally::new(results);
    let accepted = tally.accepted.len() as u64;
    let mut report = LoadReport {
        total_stock: opts.stock * opts.coupons as i64,
        requests: total as u64,
        accepted,
        retries: tally.retries,
        rejected: tally.rejected,
        send_seconds: send_elapsed.as_secs_f64(),
        requests_per_second: support::per_second(accepted, send_elapsed),
        latency_p50_ms: tally.latency_ms.p50,
        latency_p99_ms: tally.latency_ms.p99,
        latency_max_ms: tally.latency_ms.max,
        ..LoadReport::default()
    };

    let deadline = Instant::now() + Duration::from_secs(opts.drain_timeout_secs);
    loop {
        let (mut issued, mut sold_out, mut failed, mut pending) = (0, 0, 0, 0);
        let mut over = Vec::new();
        for id in &coupon_ids {
            let view: CouponView =
                support::get_json(&client, &format!("{base}/coupons/{id}")).await?;
            issued += view.issued;
            sold_out += view.sold_out;
            failed += view.failed;
            pending += view.pending;
            if view.issued > view.stock {
                over.push(id.clone());
            }
        }
        report.issued = issued;
        report.sold_out = sold_out;
        report.failed = failed;
        report.pending = pending;
        report.over_issued = over;
        if pending == 0 {
            break;
        }
        if Instant::now() >= deadline {
            return Err(LoadError::NotDrained {
                pending,
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = started.elapsed();
    report.drain_seconds = drained.as_secs_f64();
    report.decided_per_second = support::per_second(report.accepted, drained);
    report.coupon_ids = coupon_ids;
    Ok(report)
}
