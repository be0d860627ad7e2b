//! Open-loop load: requests sent at a constant arrival rate, whatever the
//! service's answers, with every latency measured from the request's
//! *intended* send time. A closed loop (a fixed number of requests in
//! flight) sends less while the service stalls and so hides the stall from
//! its own percentiles ("coordinated omission", Gil Tene, *How NOT to
//! Measure Latency*, 2015); an open loop does not: a request whose turn
//! came during a stall counts the stall.
//!
//! [`fire_at_rate`] schedules the requests, [`Sample`] is one request's
//! outcome, [`LatencySummary`] gives p50/p99/p99.9/max, [`write_csv`]
//! writes the samples and [`draw_chart`] draws them (latency over time and
//! a histogram, SVG, with `plotters`).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use plotters::prelude::*;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::load::percentile;

/// One request scheduled by [`fire_at_rate`]: its place in the schedule and
/// how its send went.
#[derive(Debug, Clone)]
pub struct Fired<T> {
    /// Its index, `0..n`.
    pub index: usize,
    /// When it was due, from the start of the run.
    pub intended: Duration,
    /// When it was due, in milliseconds since the Unix epoch (for latencies
    /// measured against the service's own timestamps).
    pub intended_epoch_ms: f64,
    /// From the intended send time to the answer, so that a late start
    /// (the generator or the service stalled) counts.
    pub latency: Duration,
    /// What the request gave.
    pub value: T,
}

/// Sends `task(i)` for `i` in `0..rate * duration` at a constant rate of
/// `rate` requests per second (request `i` due `i / rate` seconds after the
/// start), each in a task of its own, with at most `max_in_flight` of them
/// running at once: a request due while that many are unanswered waits for
/// one to finish, and its wait counts in its latency (as in wrk2, whose
/// `-c` connections carry a constant rate). Without the bound a stall of
/// the service would open a new connection per request, and the generator
/// would measure its own connection storm. Returns every request in index
/// order once all have been answered.
///
/// # Panics
/// When `rate` is not positive and finite, `max_in_flight` is 0, or a
/// request task panics.
pub async fn fire_at_rate<T, F, Fut>(
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
    mut task: F,
) -> Vec<Fired<T>>
where
    T: Send + 'static,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    assert!(
        rate.is_finite() && rate > 0.0,
        "the rate must be positive, got {rate}"
    );
    assert!(max_in_flight > 0, "max_in_flight must be at least 1");
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let n = (rate * duration.as_secs_f64()).round() as usize;
    let start = tokio::time::Instant::now();
    let start_epoch_ms = epoch_ms(SystemTime::now());
    let mut running = Vec::with_capacity(n);
    for index in 0..n {
        let intended = Duration::from_secs_f64(index as f64 / rate);
        let due = start + intended;
        tokio::time::sleep_until(due).await;
        let request = task(index);
        let slots = Arc::clone(&slots);
        running.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await.expect("never closed");
            let value = request.await;
            Fired {
                index,
                intended,
                intended_epoch_ms: start_epoch_ms + intended.as_secs_f64() * 1000.0,
                latency: due.elapsed(),
                value,
            }
        }));
    }
    let mut out = Vec::with_capacity(n);
    for r in running {
        out.push(r.await.expect("a request task"));
    }
    out
}

/// Milliseconds since the Unix epoch of `t` (0 before 1970).
pub fn epoch_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// One request of an open-loop run, as written to the CSV file: times in
/// milliseconds, `None` (an empty cell) where the request was not accepted
/// or not decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// When it was due, from the start of the run.
    pub intended_ms: f64,
    /// From the intended send time to the 202 (the broker acknowledged it).
    pub accept_ms: Option<f64>,
    /// From the intended send time to its decision (the service's
    /// `decided_at`).
    pub decision_ms: Option<f64>,
    /// What became of it (`issued`, `sold_out`, `failed`, `pending`,
    /// `rejected`).
    pub outcome: String,
}

/// Median, 99th, 99.9th percentile and maximum of a set of latencies, in
/// milliseconds (nearest rank, see [`percentile`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    /// How many values.
    pub count: usize,
    /// The median.
    pub p50: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The 99.9th percentile.
    pub p999: f64,
    /// The largest.
    pub max: f64,
}

impl LatencySummary {
    /// The summary of `values`, in any order; all 0 when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = values.into_iter().collect();
        v.sort_by(f64::total_cmp);
        Self {
            count: v.len(),
            p50: percentile(&v, 0.5),
            p99: percentile(&v, 0.99),
            p999: percentile(&v, 0.999),
            max: percentile(&v, 1.0),
        }
    }
}

impl std::fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms ({} samples)",
            self.p50, self.p99, self.p999, self.max, self.count
        )
    }
}

/// Why the samples could not be written or drawn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// Writing the CSV file failed.
    #[error("writing {path}: {source}")]
    Csv {
        /// The file.
        path: String,
        /// The cause.
        source: csv::Error,
    },
    /// Drawing the chart failed.
    #[error("drawing {path}: {reason}")]
    Chart {
        /// The file.
        path: String,
        /// What plotters said.
        reason: String,
    },
}

/// Writes `samples` to `path` as CSV with the header
/// `intended_ms,accept_ms,decision_ms,outcome`.
///
/// # Errors
/// [`OutputError::Csv`] when the file cannot be created or written.
pub fn write_csv(path: &Path, samples: &[Sample]) -> Result<(), OutputError> {
    let err = |source| OutputError::Csv {
        path: path.display().to_string(),
        source,
    };
    let mut w = csv::Writer::from_path(path).map_err(err)?;
    for s in samples {
        w.serialize(s).map_err(err)?;
    }
    w.flush().map_err(|e| err(e.into()))
}

/// Draws `samples` to `path` as an SVG of two panels: on top, each
/// request's accept and decision latency over the run (a stall shows as a
/// ridge); below, a histogram of the decision latencies (accept latencies
/// when none was decided), in 50 buckets up to the largest.
///
/// # Errors
/// [`OutputError::Chart`] when the file cannot be written.
pub fn draw_chart(path: &Path, title: &str, samples: &[Sample]) -> Result<(), OutputError> {
    draw(path, title, samples).map_err(|e| OutputError::Chart {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn draw(
    path: &Path,
    title: &str,
    samples: &[Sample],
) -> Result<(), Box<dyn std::error::Error + 'static>> {
    let root = SVGBackend::new(path, (1000, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (upper, lower) = root.split_vertically(420);

    let accept: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| Some((s.intended_ms / 1000.0, s.accept_ms?)))
        .collect();
    let decision: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| Some((s.intended_ms / 1000.0, s.decision_ms?)))
        .collect();
    let x_max = samples
        .iter()
        .map(|s| s.intended_ms / 1000.0)
        .fold(1.0, f64::max);
    let y_max = accept
        .iter()
        .chain(&decision)
        .map(|p| p.1)
        .fold(1.0, f64::max)
        * 1.05;
    let mut chart = ChartBuilder::on(&upper)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .caption("latency over the run", ("sans-serif", 16))
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("intended send time (s)")
        .y_desc("latency (ms)")
        .draw()?;
    chart
        .draw_series(
            accept
                .iter()
                .map(|&p| Circle::new(p, 1, BLUE.mix(0.4).filled())),
        )?
        .label("accept (202)")
        .legend(|(x, y)| Circle::new((x, y), 3, BLUE.filled()));
    chart
        .draw_series(
            decision
                .iter()
                .map(|&p| Circle::new(p, 1, RED.mix(0.4).filled())),
        )?
        .label("request to decision")
        .legend(|(x, y)| Circle::new((x, y), 3, RED.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let (values, what) = if decision.is_empty() {
        (accept.iter().map(|p| p.1).collect::<Vec<_>>(), "accept")
    } else {
        (
            decision.iter().map(|p| p.1).collect(),
            "request to decision",
        )
    };
    let top = values.iter().copied().fold(1.0, f64::max);
    let width = top / 50.0;
    let mut counts = vec![0u32; 51];
    for v in &values {
        counts[((v / width) as usize).min(50)] += 1;
    }
    let most = counts.iter().copied().max().unwrap_or(1).max(1);
    let mut hist = ChartBuilder::on(&lower)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .caption(format!("{what} latency histogram"), ("sans-serif", 16))
        .build_cartesian_2d(0.0..top + width, 0u32..most + most / 10 + 1)?;
    hist.configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("requests")
        .draw()?;
    hist.draw_series(counts.iter().enumerate().map(|(i, &c)| {
        let x0 = i as f64 * width;
        Rectangle::new([(x0, 0), (x0 + width, c)], RED.mix(0.6).filled())
    }))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_due_at_the_rate_and_latency_counts_from_the_due_time() {
        // 100/s for 0.5 s: 50 requests, request i due at i * 10 ms; each
        // takes 25 ms, so three are in flight at once (an open loop does
        // not wait for answers).
        let fired = fire_at_rate(100.0, Duration::from_millis(500), 8, |i| async move {
            tokio::time::sleep(Duration::from_millis(25)).await;
            i * 2
        })
        .await;
        assert_eq!(fired.len(), 50);
        for (i, f) in fired.iter().enumerate() {
            assert_eq!(f.index, i);
            assert_eq!(f.value, i * 2);
            assert_eq!(f.intended, Duration::from_millis(10 * i as u64));
            assert!(
                f.latency >= Duration::from_millis(25) && f.latency < Duration::from_millis(30),
                "{:?}",
                f.latency
            );
        }
        let first = fired[0].intended_epoch_ms;
        assert!((fired[49].intended_epoch_ms - first - 490.0).abs() < 1e-6);
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_bound_a_request_waits_and_its_wait_counts() {
        // 100/s, each request 25 ms, one at a time: request i starts when
        // i - 1 ends, at 25 * i ms, 15 * i ms after it was due.
        let fired = fire_at_rate(100.0, Duration::from_millis(100), 1, |_| async move {
            tokio::time::sleep(Duration::from_millis(25)).await;
        })
        .await;
        assert_eq!(fired.len(), 10);
        for (i, f) in fired.iter().enumerate() {
            let expected = Duration::from_millis(25 + 15 * i as u64);
            assert!(
                f.latency >= expected && f.latency < expected + Duration::from_millis(3),
                "request {i}: {:?}, expected {expected:?}",
                f.latency
            );
        }
    }

    #[test]
    fn summary_has_the_tail_percentiles() {
        let s = LatencySummary::of((1..=1000).map(f64::from));
        assert_eq!(
            (s.count, s.p50, s.p99, s.p999, s.max),
            (1000, 501.0, 990.0, 999.0, 1000.0)
        );
        assert_eq!(LatencySummary::of([]), LatencySummary::default());
    }

    #[test]
    fn csv_and_chart_are_written() {
        let dir = std::env::temp_dir().join(format!("open-loop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let samples: Vec<Sample> = (0..200)
            .map(|i| Sample {
                intended_ms: f64::from(i),
                accept_ms: Some(f64::from(i % 7)),
                decision_ms: (i % 5 != 0).then(|| f64::from(10 + i % 13)),
                outcome: if i % 5 == 0 { "rejected" } else { "issued" }.into(),
            })
            .collect();
        let csv_path = dir.join("samples.csv");
        write_csv(&csv_path, &samples).unwrap();
        let text = std::fs::read_to_string(&csv_path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 201);
        assert_eq!(lines[0], "intended_ms,accept_ms,decision_ms,outcome");
        assert_eq!(lines[1], "0.0,0.0,,rejected");
        assert_eq!(lines[2], "1.0,1.0,11.0,issued");
        let svg = dir.join("chart.svg");
        draw_chart(&svg, "test", &samples).unwrap();
        let svg_text = std::fs::read_to_string(&svg).unwrap();
        assert!(svg_text.starts_with("<svg"), "an SVG document");
        assert!(svg_text.contains("request to decision latency histogram"));
        // 200 accept points and 160 decision points.
        assert!(svg_text.matches("<circle").count() >= 360);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
