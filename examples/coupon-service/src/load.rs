//! The load generator behind `coupon-service load`: creates coupons, fires
//! concurrent issue requests at a running service over HTTP, waits until
//! every request is decided, and reports throughput and outcomes.

use std::fmt;
use std::time::{Duration, Instant};

use example_support::load::{self as support, Fired, Tally};
use example_support::open_loop::{
    draw_chart, fire_at_rate, write_csv, LatencySummary, OutputError, Sample,
};
use reqwest::StatusCode;

use crate::http::{CouponView, CreateCoupon, IssueBody, IssueStatus};

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
    /// Open loop: send this many issue requests per second, whatever the
    /// answers (see [`run_open`]); `--users` and `--concurrency` are then
    /// ignored.
    #[arg(long, requires = "duration")]
    pub rate: Option<f64>,
    /// Open loop: seconds to send for (`rate * duration` requests).
    #[arg(long, requires = "rate")]
    pub duration: Option<f64>,
    /// Open loop: requests in flight at most (HTTP connections); a request
    /// due while this many are unanswered waits, and its wait counts in its
    /// latency.
    #[arg(long, default_value_t = 256, requires = "rate")]
    pub connections: usize,
    /// Open loop: write every request's latencies to this CSV file.
    #[arg(long, requires = "rate")]
    pub csv: Option<std::path::PathBuf>,
    /// Open loop: draw latency over time and a histogram to this SVG file.
    #[arg(long, requires = "rate")]
    pub chart: Option<std::path::PathBuf>,
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
            rate: None,
            duration: None,
            connections: 256,
            csv: None,
            chart: None,
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
    /// The samples could not be written or drawn.
    #[error(transparent)]
    Output(#[from] OutputError),
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
        write_check(f, &self.over_issued)
    }
}

/// Runs the load: creates `opts.coupons` coupons, waits until the listener
/// decides requests ([`warm_up`]), fires the requests with
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
    let coupon_ids = create_coupons(&client, &base, &prefix, opts).await?;
    let ready = warm_up(&client, &base, &prefix, opts).await?;
    println!("warm-up: the listener decided its first requests after {ready:.2?}");

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

    let outcome = drain(&client, &base, &coupon_ids, started, opts).await?;
    report.issued = outcome.issued;
    report.sold_out = outcome.sold_out;
    report.failed = outcome.failed;
    report.pending = outcome.pending;
    report.over_issued = outcome.over_issued;
    let drained = started.elapsed();
    report.drain_seconds = drained.as_secs_f64();
    report.decided_per_second = support::per_second(report.accepted, drained);
    report.coupon_ids = coupon_ids;
    Ok(report)
}

/// Creates `opts.coupons` coupons `<prefix>-0`, `<prefix>-1`, ... with
/// `opts.stock` each; their ids.
async fn create_coupons(
    client: &reqwest::Client,
    base: &str,
    prefix: &str,
    opts: &LoadOptions,
) -> Result<Vec<String>, LoadError> {
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
    Ok(coupon_ids)
}

/// The coupons' counts once nothing is pending.
#[derive(Debug, Default)]
struct Outcome {
    issued: i64,
    sold_out: i64,
    failed: i64,
    pending: i64,
    over_issued: Vec<String>,
}

/// Polls `GET /coupons/{id}` every 100 ms until no request is pending, or
/// fails with [`LoadError::NotDrained`] `opts.drain_timeout_secs` after now.
async fn drain(
    client: &reqwest::Client,
    base: &str,
    coupon_ids: &[String],
    started: Instant,
    opts: &LoadOptions,
) -> Result<Outcome, LoadError> {
    let deadline = Instant::now() + Duration::from_secs(opts.drain_timeout_secs);
    loop {
        let mut o = Outcome::default();
        for id in coupon_ids {
            let view: CouponView =
                support::get_json(client, &format!("{base}/coupons/{id}")).await?;
            o.issued += view.issued;
            o.sold_out += view.sold_out;
            o.failed += view.failed;
            o.pending += view.pending;
            if view.issued > view.stock {
                o.over_issued.push(id.clone());
            }
        }
        if o.pending == 0 {
            return Ok(o);
        }
        if Instant::now() >= deadline {
            return Err(LoadError::NotDrained {
                pending: o.pending,
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The measured result of an open-loop run ([`run_open`]). Latencies in
/// milliseconds from each request's intended send time.
#[derive(Debug, Clone, Default)]
pub struct OpenLoopReport {
    /// The arrival rate asked for, requests per second.
    pub rate: f64,
    /// Requests sent (`rate * duration`).
    pub requests: u64,
    /// Requests answered 202.
    pub accepted: u64,
    /// Requests answered otherwise (429, 503, an error): not retried.
    pub rejected: u64,
    /// Accepted requests per second over the sending time.
    pub accepted_per_second: f64,
    /// Decided requests per second, from the first request until none was
    /// pending.
    pub decided_per_second: f64,
    /// Intended send time to the 202.
    pub accept: LatencySummary,
    /// Intended send time to the decision (the service's `decided_at`).
    pub decision: LatencySummary,
    /// Coupons issued, requests sold out and failed.
    pub issued: i64,
    /// Requests decided `sold_out`.
    pub sold_out: i64,
    /// Requests decided `failed`.
    pub failed: i64,
    /// Coupons whose `issued` exceeds their stock (must stay empty).
    pub over_issued: Vec<String>,
    /// Every request, in send order.
    pub samples: Vec<Sample>,
}

impl fmt::Display for OpenLoopReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "open loop:  {:.0} requests/s asked, {} sent, {} accepted (202), {} rejected",
            self.rate, self.requests, self.accepted, self.rejected
        )?;
        writeln!(
            f,
            "throughput: {:.0} requests/s accepted, {:.0} requests/s decided end to end",
            self.accepted_per_second, self.decided_per_second
        )?;
        writeln!(f, "accept:     {}", self.accept)?;
        writeln!(f, "decision:   {}", self.decision)?;
        writeln!(
            f,
            "outcome:    issued {}, sold out {}, failed {}",
            self.issued, self.sold_out, self.failed
        )?;
        write_check(f, &self.over_issued)
    }
}

/// How many stock-0 coupons [`warm_up`] asks for: with three partitions,
/// their keys miss one with a chance of 3 * (2/3)^16, about 0.5 %.
const WARM_UP_COUPONS: usize = 16;

/// Waits until the listener decides requests, so that the timed schedule
/// measures the service and not its start: the listener's consumers join
/// their group a few seconds after a service starts, and requests sent
/// before then wait for it. Creates [`WARM_UP_COUPONS`] coupons
/// `<prefix>-warm-up-<j>` of stock 0 (outside the run's counts), requests
/// each once and polls until every request is decided. Returns how long
/// that took.
///
/// # Errors
/// [`LoadError::Http`] when the service cannot be reached or answers
/// otherwise than expected, [`LoadError::NotDrained`] when a warm-up
/// request stays pending past the drain timeout.
async fn warm_up(
    client: &reqwest::Client,
    base: &str,
    prefix: &str,
    opts: &LoadOptions,
) -> Result<Duration, LoadError> {
    let started = Instant::now();
    let warm = LoadOptions {
        coupons: WARM_UP_COUPONS,
        stock: 0,
        ..opts.clone()
    };
    let ids = create_coupons(client, base, &format!("{prefix}-warm-up"), &warm).await?;
    for id in &ids {
        let url = format!("{base}/coupons/{id}/issue");
        let body = IssueBody {
            user_id: "warm-up".into(),
        };
        if let Fired::Rejected { .. } =
            support::post_retrying(client, &url, &body, "warm-up request").await
        {
            return Err(HttpError::Unexpected {
                what: format!("warm-up request for {id}"),
                status: 0,
                body: "not accepted".into(),
            }
            .into());
        }
    }
    drain(client, base, &ids, started, opts).await?;
    Ok(started.elapsed())
}

/// Runs an open-loop load: creates the coupons, waits until the listener
/// decides requests ([`warm_up`]), sends `rate * duration`
/// issue requests at a constant `rate` per second (request `i` for coupon
/// `i % coupons` by user `i / coupons`), each once whatever the answer,
/// waits until nothing is pending, then reads each accepted request's
/// `decided_at` from `GET /coupons/{id}/issues/{user}`. Latencies count
/// from the intended send time, so a stall of the service or of this
/// generator is not hidden (coordinated omission). Writes the samples to
/// `opts.csv` and draws `opts.chart` when given.
///
/// # Errors
/// As [`run`]; [`LoadError::Output`] when the CSV file or the chart cannot
/// be written.
///
/// # Panics
/// When `opts.rate` or `opts.duration` is missing.
pub async fn run_open(opts: &LoadOptions) -> Result<OpenLoopReport, LoadError> {
    let rate = opts.rate.expect("--rate");
    let duration = Duration::from_secs_f64(opts.duration.expect("--duration").max(0.0));
    let base = opts.url.trim_end_matches('/').to_owned();
    let client = support::client(opts.connections)?;
    let prefix = support::run_prefix(opts.prefix.as_deref());
    let coupon_ids = create_coupons(&client, &base, &prefix, opts).await?;
    let coupons = coupon_ids.len().max(1);
    let ready = warm_up(&client, &base, &prefix, opts).await?;
    println!("warm-up: the listener decided its first requests after {ready:.2?}");

    let started = Instant::now();
    let fired = fire_at_rate(rate, duration, opts.connections.max(1), |n| {
        let client = client.clone();
        let url = format!("{base}/coupons/{}/issue", coupon_ids[n % coupons]);
        let body = IssueBody {
            user_id: format!("user-{}", n / coupons),
        };
        async move {
            match client.post(&url).json(&body).send().await {
                Ok(r) if r.status() == StatusCode::ACCEPTED => Ok(()),
                Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    let send_elapsed = started.elapsed();
    let outcome = drain(&client, &base, &coupon_ids, started, opts).await?;
    let drained = started.elapsed();

    // Each accepted request's decision time, read back from the service,
    // in request order.
    let mut decided: Vec<(usize, Option<IssueStatus>)> = support::fan_out(fired.len(), 64, |n| {
        let client = client.clone();
        let url = format!(
            "{base}/coupons/{}/issues/user-{}",
            coupon_ids[n % coupons],
            n / coupons
        );
        let accepted = fired[n].value.is_ok();
        async move {
            let status = match accepted {
                true => support::get_json::<IssueStatus>(&client, &url).await.ok(),
                false => None,
            };
            (n, status)
        }
    })
    .await;
    decided.sort_unstable_by_key(|d| d.0);
    let mut rejected = 0;
    let samples: Vec<Sample> = fired
        .iter()
        .zip(decided)
        .map(|(f, (_, status))| {
            let intended_ms = f.intended.as_secs_f64() * 1000.0;
            match (&f.value, status) {
                (Err(why), _) => {
                    rejected += 1;
                    tracing::warn!(%why, "issue request rejected");
                    Sample {
                        intended_ms,
                        accept_ms: None,
                        decision_ms: None,
                        outcome: "rejected".into(),
                    }
                }
                (Ok(()), status) => Sample {
                    intended_ms,
                    accept_ms: Some(f.latency.as_secs_f64() * 1000.0),
                    decision_ms: status
                        .as_ref()
                        .and_then(|s| s.decided_at)
                        .map(|d| (d as f64 - f.intended_epoch_ms).max(0.0)),
                    outcome: status.map_or_else(|| "unknown".into(), |s| s.status),
                },
            }
        })
        .collect();
    let accepted = fired.len() as u64 - rejected;
    let report = OpenLoopReport {
        rate,
        requests: fired.len() as u64,
        accepted,
        rejected,
        accepted_per_second: support::per_second(accepted, send_elapsed),
        decided_per_second: support::per_second(accepted, drained),
        accept: LatencySummary::of(samples.iter().filter_map(|s| s.accept_ms)),
        decision: LatencySummary::of(samples.iter().filter_map(|s| s.decision_ms)),
        issued: outcome.issued,
        sold_out: outcome.sold_out,
        failed: outcome.failed,
        over_issued: outcome.over_issued,
        samples,
    };
    if let Some(path) = &opts.csv {
        write_csv(path, &report.samples)?;
    }
    if let Some(path) = &opts.chart {
        let title = format!(
            "coupon-service, open loop at {rate:.0} requests/s for {:.0} s",
            duration.as_secs_f64()
        );
        draw_chart(path, &title, &report.samples)?;
    }
    Ok(report)
}

/// The last line of a report: whether any coupon was issued past its stock.
fn write_check(f: &mut fmt::Formatter<'_>, over_issued: &[String]) -> fmt::Result {
    if over_issued.is_empty() {
        write!(f, "check:      no coupon issued past its stock")
    } else {
        write!(
            f,
            "check:      OVER-ISSUED coupons: {}",
            over_issued.join(", ")
        )
    }
}
