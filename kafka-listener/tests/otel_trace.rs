//! One trace across producer, listener and outbox relay, as OpenTelemetry
//! exports it (feature `opentelemetry`): a span the test opens (an HTTP
//! request's, say) sends a record; the listener's span is its child and
//! publishes an outbox event; the relay sends it; the next listener's span
//! is a child of the first listener's. Read from the spans an in-memory
//! exporter received.
//!
//! The subscriber is process-wide, so this file has one test.
#![cfg(feature = "opentelemetry")]

mod support;

use std::time::{Duration, Instant};

use kafka_listener::after_commit::{OutboxEvent, RelayConfig, TransactionalEvents};
use kafka_listener::prelude::*;
use kafka_listener::trace::TraceContext;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde::Serialize;
use support::*;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Debug, Serialize, OutboxEvent)]
#[outbox(topic = "otel.trace.events", key = "order_id")]
struct Shipped {
    order_id: String,
}

#[derive(Clone)]
struct Key(String);

async fn ship(
    record: ConsumerRecord,
    events: State<TransactionalEvents>,
) -> Result<(), ListenerError> {
    let order_id = String::from_utf8_lossy(record.key().map_or(&[][..], |k| &k[..])).into_owned();
    let mut tx = events.begin().await?;
    tx.publish(Shipped { order_id }).await?;
    tx.commit().await?;
    Ok(())
}

async fn notify(record: ConsumerRecord, key: State<Key>, seen: State<Seen>) {
    if record.key().map(|k| &k[..]) == Some(key.0 .0.as_bytes()) {
        seen.push(record.partition(), record.offset(), 0);
    }
}

/// The exported `kafka.listener` span of `topic`.
fn listener_span<'a>(spans: &'a [SpanData], topic: &str, trace: TraceId) -> Option<&'a SpanData> {
    spans
        .iter()
        .find(|s| s.name == format!("process {topic}") && s.span_context.trace_id() == trace)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_the_request_through_the_listener_and_the_outbox_to_the_next_listener() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(kafka_listener::trace::otel::layer(&provider))
        .with(tracing_subscriber::EnvFilter::new("info"));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let input = unique("otel.orders");
    let broker = broker(&input, 1);
    broker.create_topic(Shipped::TOPIC, 1).unwrap();
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let events = TransactionalEvents::builder(&pool)
        .outbox_table(unique("outbox").replace(['.', '-'], "_"))
        .build()
        .await
        .unwrap();
    let key = unique("order");
    let seen = Seen::default();
    let app = KafkaApp::builder()
        .config(config(&broker))
        .without_discovered_listeners()
        .listener(
            ListenerSpec::new(format!("{input}-ship"))
                .topics([&input])
                .handler(ship),
        )
        .listener(
            ListenerSpec::new(format!("{input}-notify"))
                .topics([Shipped::TOPIC])
                .handler(notify),
        )
        .build()
        .await
        .unwrap()
        .state(events.clone())
        .state(Key(key.clone()))
        .state(seen.clone())
        .start()
        .await
        .unwrap();
    let relay = events.start_relay(app.template(), RelayConfig::default());

    // "The HTTP request": a span of the app's, in which the template sends.
    let request = tracing::info_span!("POST /api/orders");
    let template = app.template();
    let (trace, request_span) = async {
        let cx = TraceContext::current().expect("the request span is in a trace");
        template
            .send(ProducerRecord::keyed(&input, key.clone()).value("order"))
            .await
            .unwrap();
        (cx.parent.trace_id, cx.parent.parent_id)
    }
    .instrument(request)
    .await;
    let (trace, request_span) = (TraceId::from_bytes(trace), SpanId::from_bytes(request_span));

    assert_eq!(seen.wait_for(Duration::from_secs(30), |n| n >= 1).await, 1);
    // The listener spans end right after the handler returns.
    let deadline = Instant::now() + Duration::from_secs(10);
    let spans = loop {
        let spans = exporter.get_finished_spans().unwrap();
        let done = listener_span(&spans, Shipped::TOPIC, trace).is_some()
            && spans.iter().any(|s| s.name == "POST /api/orders");
        if done || Instant::now() > deadline {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let names: Vec<_> = spans
        .iter()
        .map(|s| (&s.name, s.span_context.trace_id()))
        .collect();
    let first = listener_span(&spans, &input, trace)
        .unwrap_or_else(|| panic!("no span of the first listener in the trace: {names:?}"));
    let next = listener_span(&spans, Shipped::TOPIC, trace)
        .unwrap_or_else(|| panic!("no span of the next listener in the trace: {names:?}"));
    assert_eq!(
        first.parent_span_id, request_span,
        "the listener continues the request"
    );
    assert_eq!(
        next.parent_span_id,
        first.span_context.span_id(),
        "the outbox event's listener continues the first listener"
    );
    let attribute = |span: &SpanData, key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(
        attribute(first, "messaging.system").as_deref(),
        Some("kafka")
    );
    assert_eq!(
        attribute(first, "messaging.destination.name").as_deref(),
        Some(input.as_str())
    );
    assert_eq!(first.span_kind, opentelemetry::trace::SpanKind::Consumer);
    // What the relay sent carries the first listener's span as parent.
    let rows = events.outbox_rows().await.unwrap();
    let row_trace = rows[0].trace.as_ref().expect("the row kept the trace");
    assert_eq!(TraceId::from_bytes(row_trace.parent.trace_id), trace);
    assert_eq!(
        SpanId::from_bytes(row_trace.parent.parent_id),
        first.span_context.span_id()
    );

    relay.shutdown().await;
    app.shutdown().await;
    let _ = provider.shutdown();
}
