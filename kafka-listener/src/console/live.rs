//! Live data: a sampler that every few seconds records the app's
//! throughput (records/s) and total lag, keeps the last 15 minutes for the
//! charts, and pushes each sample with the listeners' state to the pages
//! over Server-Sent Events.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures::Stream;
use serde::Serialize;
use tokio::sync::broadcast;

use super::{api, Console, Inner};
use crate::util::lock;

/// One sample every 5 s by default.
pub(super) const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// 15 minutes of history.
const HISTORY: Duration = Duration::from_secs(15 * 60);

/// The app's throughput and lag at one moment.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct Sample {
    /// ms since the Unix epoch.
    at: i64,
    /// Records processed per second by every listener together since the
    /// previous sample.
    records_per_second: f64,
    /// The lag of every listener together, records.
    lag: i64,
}

/// The sampler's state and the channel of live updates.
#[derive(Debug)]
pub(super) struct Live {
    interval: Duration,
    samples: Mutex<VecDeque<Sample>>,
    /// Per listener: the processed count and when it was read, and the
    /// rate derived from the previous reading.
    rates: Mutex<HashMap<String, (Instant, u64, f64)>>,
    events: broadcast::Sender<String>,
    started: std::sync::atomic::AtomicBool,
}

impl Live {
    pub(super) fn new(interval: Duration) -> Self {
        Self {
            interval,
            samples: Mutex::new(VecDeque::new()),
            rates: Mutex::new(HashMap::new()),
            events: broadcast::channel(16).0,
            started: Default::default(),
        }
    }

    /// The records/s of listener `id` over the last sample interval.
    pub(super) fn rate(&self, id: &str) -> f64 {
        lock(&self.rates).get(id).map_or(0.0, |r| r.2)
    }

    fn capacity(&self) -> usize {
        (HISTORY.as_millis() / self.interval.as_millis().max(1)).max(1) as usize
    }
}

/// Starts the sampler once per console; it holds the console weakly and
/// ends when it is dropped.
pub(super) fn start_sampler(inner: &Arc<Inner>) {
    if inner
        .live
        .started
        .swap(true, std::sync::atomic::Ordering::AcqRel)
    {
        return;
    }
    let weak = Arc::downgrade(inner);
    let every = inner.live.interval;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(inner) = weak.upgrade() else { return };
            let sample = take_sample(&inner);
            let console = Console { inner };
            let update = api::overview(&console).await;
            let payload = serde_json::json!({ "sample": sample, "listeners": update });
            let _ = console.inner.live.events.send(payload.to_string());
        }
    });
}

fn take_sample(inner: &Inner) -> Sample {
    let now = Instant::now();
    let mut total_rate = 0.0;
    let mut total_lag = 0;
    let mut rates = lock(&inner.live.rates);
    for c in inner.settings.registry.containers() {
        let processed = c.counts().processed;
        let rate = match rates.get(c.id()) {
            Some(&(then, before, _)) => {
                let secs = now.duration_since(then).as_secs_f64();
                if secs > 0.0 {
                    processed.saturating_sub(before) as f64 / secs
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        let rate = (rate * 100.0).round() / 100.0;
        rates.insert(c.id().to_owned(), (now, processed, rate));
        total_rate += rate;
        total_lag += c.lag().iter().map(|l| l.lag).sum::<i64>();
    }
    let sample = Sample {
        at: crate::util::now_ms(),
        records_per_second: (total_rate * 100.0).round() / 100.0,
        lag: total_lag,
    };
    let mut samples = lock(&inner.live.samples);
    samples.push_back(sample);
    while samples.len() > inner.live.capacity() {
        samples.pop_front();
    }
    sample
}

/// `GET /api/history`: `{"interval_ms": n, "samples": [{"at", "records_per_second", "lag"}]}`,
/// oldest first, the last 15 minutes.
pub(super) async fn history(State(console): State<Console>) -> Json<serde_json::Value> {
    let live = &console.inner.live;
    let samples: Vec<Sample> = lock(&live.samples).iter().copied().collect();
    Json(serde_json::json!({
        "interval_ms": live.interval.as_millis() as u64,
        "samples": samples,
    }))
}

/// `GET /api/events`: Server-Sent Events named `update`, each
/// `{"sample": {...} | null, "listeners": [...]}`; the first at once (with
/// the last sample), then one per sample.
pub(super) async fn events(
    State(console): State<Console>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let last = lock(&console.inner.live.samples).back().copied();
    let listeners = api::overview(&console).await;
    let first = serde_json::json!({ "sample": last, "listeners": listeners }).to_string();
    let rx = console.inner.live.events.subscribe();
    let stream = futures::stream::unfold((Some(first), rx), |(first, mut rx)| async move {
        if let Some(first) = first {
            return Some((Ok(Event::default().event("update").data(first)), (None, rx)));
        }
        loop {
            match rx.recv().await {
                Ok(data) => {
                    return Some((Ok(Event::default().event("update").data(data)), (None, rx)))
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
