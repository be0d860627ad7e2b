//! Live data: a sampler that every few seconds records the throughput
//! (records/s) and lag of the app and of each listener, keeps the last 15
//! minutes for the charts, and pushes each sample with the listeners'
//! state to the pages over Server-Sent Events; and a listener's own stream,
//! its partitions once a second.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures::Stream;
use serde::Serialize;
use tokio::sync::broadcast;

use super::{api, pages, Console, ConsoleError, Inner};
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
    /// The same per listener id.
    per_listener: Mutex<HashMap<String, VecDeque<Sample>>>,
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
            per_listener: Mutex::new(HashMap::new()),
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
    let at = crate::util::now_ms();
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
        let lag = c.lag().iter().map(|l| l.lag).sum::<i64>();
        let mut per_listener = lock(&inner.live.per_listener);
        let samples = per_listener.entry(c.id().to_owned()).or_default();
        keep(
            samples,
            Sample {
                at,
                records_per_second: rate,
                lag,
            },
            inner.live.capacity(),
        );
        total_rate += rate;
        total_lag += lag;
    }
    let sample = Sample {
        at,
        records_per_second: (total_rate * 100.0).round() / 100.0,
        lag: total_lag,
    };
    keep(
        &mut lock(&inner.live.samples),
        sample,
        inner.live.capacity(),
    );
    sample
}

/// Appends `sample`, dropping the oldest beyond `capacity`.
fn keep(samples: &mut VecDeque<Sample>, sample: Sample, capacity: usize) {
    samples.push_back(sample);
    while samples.len() > capacity {
        samples.pop_front();
    }
}

/// `GET /api/history` query: `?listener=<id>` for one listener's samples.
#[derive(Debug, serde::Deserialize)]
pub(super) struct HistoryQuery {
    listener: Option<String>,
}

/// `GET /api/history[?listener=<id>]`: `{"interval_ms": n, "samples":
/// [{"at", "records_per_second", "lag"}]}`, oldest first, the last 15
/// minutes, of the whole app or of one listener (404 for an unknown id).
pub(super) async fn history(
    State(console): State<Console>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<serde_json::Value>, ConsoleError> {
    let live = &console.inner.live;
    let samples: Vec<Sample> = match q.listener {
        None => lock(&live.samples).iter().copied().collect(),
        Some(id) => {
            api::container(&console, &id)?;
            lock(&live.per_listener)
                .get(&id)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default()
        }
    };
    Ok(Json(serde_json::json!({
        "interval_ms": live.interval.as_millis() as u64,
        "samples": samples,
    })))
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

/// How often a listener's stream sends its partitions.
const PARTITIONS_EVERY: Duration = Duration::from_secs(1);

/// `GET /api/listeners/{id}/events`: Server-Sent Events named `update`,
/// one at once and then one a second, each the listener's JSON (as `GET
/// /api/listeners/{id}`) with a `state` text per partition (`fetching`,
/// `paused` or `backing off: ...`, as the page shows it) and `sample`, the
/// listener's last throughput and lag sample (`null` before the first).
/// 404 for an unknown listener; the stream ends if the listener goes.
pub(super) async fn listener_events(
    State(console): State<Console>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ConsoleError> {
    api::container(&console, &id)?;
    let tick = tokio::time::interval(PARTITIONS_EVERY);
    let stream =
        futures::stream::unfold((console, id, tick), |(console, id, mut tick)| async move {
            tick.tick().await;
            let detail = api::detail(&console, &id).await.ok()?;
            let mut value = serde_json::to_value(&detail).ok()?;
            if let Some(parts) = value["partitions"].as_array_mut() {
                for (json, p) in parts.iter_mut().zip(&detail.partitions) {
                    json["state"] =
                        pages::partition_state(detail.paused, p.backing_off.as_ref()).into();
                }
            }
            let sample = lock(&console.inner.live.per_listener)
                .get(&id)
                .and_then(|s| s.back().copied());
            value["sample"] = serde_json::to_value(sample).ok()?;
            let event = Event::default().event("update").data(value.to_string());
            Some((Ok(event), (console, id, tick)))
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
