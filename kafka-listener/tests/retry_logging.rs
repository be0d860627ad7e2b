//! The level a retry is logged at: `WARN` by default, the failure's own
//! with `ListenerError::logged_at`. A test binary of its own, since it
//! installs a recording subscriber as the process's global one.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_listener::prelude::*;
use support::*;
use tracing::field::{Field, Visit};
use tracing::Level;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// An event: its level, message and `offset` field.
type Logged = (Level, String, Option<i64>);

/// Every event of the framework.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Logged>>>);

#[derive(Default)]
struct Fields {
    message: String,
    offset: Option<i64>,
}

impl Visit for Fields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "offset" {
            self.offset = Some(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if !event.metadata().target().starts_with("kafka_listener") {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), fields.message, fields.offset));
    }
}

/// Offsets tried once already.
#[derive(Clone, Default)]
struct Tried(Arc<Mutex<HashSet<i64>>>);

/// Fails each record's first attempt: seq 0 as an expected wait (logged at
/// DEBUG), seq 1 as a plain retryable failure.
async fn fail_once(
    msg: Json<Msg>,
    meta: RecordMeta,
    tried: State<Tried>,
) -> Result<(), ListenerError> {
    let Tried(set) = &*tried;
    if !set.lock().unwrap().insert(meta.offset) {
        return Ok(());
    }
    let err = ListenerError::retryable(std::io::Error::other("not yet"));
    Err(if msg.seq == 0 {
        err.logged_at(Level::DEBUG)
    } else {
        err
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_is_logged_at_the_failures_level() {
    let recorder = Recorder::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(recorder.clone()))
        .unwrap();
    let topic = &unique("l.retry-log");
    let broker = broker(topic, 1);
    let tried = Tried::default();
    let app = listener_app(
        &broker,
        ListenerSpec::new("retry-log")
            .group_id(unique("retry-log"))
            .topics([topic])
            .retry(RetryPolicy::fixed(3, Duration::from_millis(20)))
            .handler(fail_once),
        tried.clone(),
    )
    .await;
    produce(&app.template(), topic, 0..2, 1).await;
    let running = app.start().await.unwrap();
    let start = Instant::now();
    let retries = || -> Vec<(Level, i64)> {
        recorder
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.1 == "listener failed; retrying after back-off")
            .map(|e| (e.0, e.2.unwrap()))
            .collect()
    };
    while retries().len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "{:?}", retries());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown().await;
    assert_eq!(retries(), vec![(Level::DEBUG, 0), (Level::WARN, 1)]);
    assert_eq!(ListenerError::from("x").log_level(), Level::WARN);
}
