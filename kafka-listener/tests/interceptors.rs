//! Interceptors as tower layers (Spring's `RecordInterceptor` and
//! `BatchInterceptor`): before and after each call with its outcome, one
//! call per retry, a layer that skips the handler, tower's own
//! `ConcurrencyLimitLayer` bounding a key-ordered listener, and a batch
//! listener's calls.

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use kafka_listener::prelude::*;
use kafka_listener::testing::{self, TestKafka};
use kafka_listener::{ListenerRequest, ListenerService, Ordering};
use tower::{Layer, Service};

/// What the interceptor saw: `before seq attempt`, `success seq attempt`,
/// `failure seq attempt`, `skip seq`.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

fn seq_of(req: &ListenerRequest) -> String {
    String::from_utf8_lossy(req.record().value().map_or(&[][..], |v| &v[..])).into_owned()
}

/// Spring's `RecordInterceptor`: `intercept` (here: skip records whose
/// value is `skip`), `success`, `failure`.
#[derive(Clone)]
struct Recording<S> {
    inner: S,
    journal: Journal,
}

impl<S> Service<ListenerRequest> for Recording<S>
where
    S: Service<ListenerRequest, Response = (), Error = ListenerError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = ListenerError;
    type Future = BoxFuture<'static, Result<(), ListenerError>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), ListenerError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ListenerRequest) -> Self::Future {
        let (seq, attempt) = (seq_of(&req), req.delivery_attempt());
        let journal = self.journal.clone();
        if seq == "skip" {
            journal.push("skip".into());
            return Box::pin(async { Ok(()) });
        }
        journal.push(format!("before {seq} {attempt}"));
        let call = self.inner.call(req);
        Box::pin(async move {
            let result = call.await;
            let outcome = if result.is_ok() { "success" } else { "failure" };
            journal.push(format!("{outcome} {seq} {attempt}"));
            result
        })
    }
}

#[derive(Clone)]
struct RecordingLayer(Journal);

impl<S> Layer<S> for RecordingLayer {
    type Service = Recording<S>;
    fn layer(&self, inner: S) -> Recording<S> {
        Recording {
            inner,
            journal: self.0.clone(),
        }
    }
}

#[derive(Clone, Default)]
struct Handled(Arc<Mutex<Vec<String>>>);

async fn fails_first_try_of_three(
    value: String,
    meta: RecordMeta,
    handled: State<Handled>,
) -> Result<(), ListenerError> {
    if value == "3" && meta.delivery_attempt == 1 {
        return Err(ListenerError::retryable("first try of 3"));
    }
    handled.0 .0.lock().unwrap().push(value);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_sees_every_call_with_its_outcome_and_may_skip_the_handler() {
    let kafka = TestKafka::start().unwrap();
    let topic = testing::unique("intercept.record");
    kafka.create_topic(&topic, 1).unwrap();
    let journal = Journal::default();
    let handled = Handled::default();
    let group = testing::unique("intercepted");
    let spec = ListenerSpec::new("intercepted")
        .group_id(&group)
        .topics([&topic])
        .retry(RetryPolicy::fixed(3, Duration::from_millis(10)))
        .layer(RecordingLayer(journal.clone()))
        .handler(fails_first_try_of_three);
    let app = kafka.run_listener(spec, handled.clone()).await.unwrap();
    let template = kafka.template().unwrap();
    for v in ["1", "skip", "3", "4"] {
        template
            .send(ProducerRecord::keyed(&topic, "k").value(v))
            .await
            .unwrap();
    }
    testing::wait_committed(
        kafka.bootstrap_servers(),
        &group,
        &topic,
        &[4],
        Duration::from_secs(30),
    )
    .await;
    app.shutdown().await;
    assert_eq!(
        journal.lines(),
        [
            "before 1 1",
            "success 1 1",
            "skip",
            "before 3 1",
            "failure 3 1",
            "before 3 2",
            "success 3 2",
            "before 4 1",
            "success 4 1",
        ]
    );
    assert_eq!(*handled.0.lock().unwrap(), ["1", "3", "4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn towers_concurrency_limit_bounds_a_key_ordered_listener() {
    let kafka = TestKafka::start().unwrap();
    let topic = testing::unique("intercept.limit");
    kafka.create_topic(&topic, 1).unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let (r, p, d) = (Arc::clone(&running), Arc::clone(&peak), Arc::clone(&done));
    let spec = ListenerSpec::new("limited")
        .group_id(testing::unique("limited"))
        .topics([&topic])
        .ordering(Ordering::Key)
        .parallelism(8)
        .layer(tower::limit::ConcurrencyLimitLayer::new(2))
        .handler(move |_: String| {
            let (r, p, d) = (Arc::clone(&r), Arc::clone(&p), Arc::clone(&d));
            async move {
                let now = r.fetch_add(1, AtomicOrdering::SeqCst) + 1;
                p.fetch_max(now, AtomicOrdering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                r.fetch_sub(1, AtomicOrdering::SeqCst);
                d.fetch_add(1, AtomicOrdering::SeqCst);
            }
        });
    let app = kafka.run_listener(spec, ()).await.unwrap();
    let template = kafka.template().unwrap();
    for i in 0..40 {
        template
            .send(ProducerRecord::keyed(&topic, format!("k{i}")).value("x"))
            .await
            .unwrap();
    }
    testing::wait_until(Duration::from_secs(30), "40 handled", || {
        let n = done.load(AtomicOrdering::SeqCst);
        async move { n >= 40 }
    })
    .await;
    app.shutdown().await;
    assert_eq!(
        peak.load(AtomicOrdering::SeqCst),
        2,
        "8 keys at once, limited to 2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_listener_layer_gets_the_whole_batch() {
    let kafka = TestKafka::start().unwrap();
    let topic = testing::unique("intercept.batch");
    kafka.create_topic(&topic, 1).unwrap();
    let template = kafka.template().unwrap();
    for i in 0..20 {
        template
            .send(ProducerRecord::keyed(&topic, "k").value(i.to_string()))
            .await
            .unwrap();
    }
    let sizes = Arc::new(Mutex::new(Vec::<(bool, usize)>::new()));
    let seen = Arc::clone(&sizes);
    let layer = tower::layer::layer_fn(move |inner: ListenerService| {
        let seen = Arc::clone(&seen);
        tower::service_fn(move |req: ListenerRequest| {
            seen.lock()
                .unwrap()
                .push((req.is_batch(), req.records().len()));
            let mut inner = inner.clone();
            async move { inner.call(req).await }
        })
    });
    let group = testing::unique("batched");
    let spec = ListenerSpec::new("batched")
        .group_id(&group)
        .topics([&topic])
        .layer(layer)
        .batch_handler(|batch: Vec<String>| async move {
            assert!(!batch.is_empty());
        });
    let app = kafka.run_listener(spec, ()).await.unwrap();
    testing::wait_committed(
        kafka.bootstrap_servers(),
        &group,
        &topic,
        &[20],
        Duration::from_secs(30),
    )
    .await;
    app.shutdown().await;
    let sizes = sizes.lock().unwrap().clone();
    assert!(sizes.iter().all(|(batch, _)| *batch), "{sizes:?}");
    assert_eq!(sizes.iter().map(|(_, n)| n).sum::<usize>(), 20, "{sizes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_layer_fails_a_slow_call_which_is_then_retried() {
    let kafka = TestKafka::start().unwrap();
    let topic = testing::unique("intercept.timeout");
    kafka.create_topic(&topic, 1).unwrap();
    let attempts = Arc::new(Mutex::new(Vec::<u32>::new()));
    let seen = Arc::clone(&attempts);
    let group = testing::unique("timed-out");
    let spec = ListenerSpec::new("timed-out")
        .group_id(&group)
        .topics([&topic])
        .retry(RetryPolicy::fixed(3, Duration::from_millis(10)))
        // tower's `TimeoutLayer` answers `BoxError`, which a listener
        // service cannot: the same with tokio's timeout in a `layer_fn`.
        .layer(tower::layer::layer_fn(|inner: ListenerService| {
            tower::service_fn(move |req: ListenerRequest| {
                let mut inner = inner.clone();
                async move {
                    match tokio::time::timeout(Duration::from_millis(100), inner.call(req)).await {
                        Ok(result) => result,
                        Err(elapsed) => Err(ListenerError::retryable(elapsed)),
                    }
                }
            })
        }))
        .handler(move |_: String, meta: RecordMeta| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().unwrap().push(meta.delivery_attempt);
                if meta.delivery_attempt == 1 {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        });
    let app = kafka.run_listener(spec, ()).await.unwrap();
    kafka
        .template()
        .unwrap()
        .send(ProducerRecord::keyed(&topic, "k").value("slow"))
        .await
        .unwrap();
    testing::wait_committed(
        kafka.bootstrap_servers(),
        &group,
        &topic,
        &[1],
        Duration::from_secs(30),
    )
    .await;
    app.shutdown().await;
    assert_eq!(
        *attempts.lock().unwrap(),
        [1, 2],
        "timed out once, then handled"
    );
}
