//! Trace propagation without OpenTelemetry (W3C Trace Context headers,
//! `kafka_listener::trace`): a record that arrives with a `traceparent`
//! is handled in its trace, and what the listener sends (through the
//! template, and through the outbox relay) carries the same trace id with
//! the listener's processing as the parent; the next listener goes on
//! with it.
//!
//! `tests/otel_trace.rs` proves the same with the OpenTelemetry layer on,
//! from exported spans.

mod support;

use std::time::Duration;

use kafka_listener::after_commit::{OutboxEvent, RelayConfig, TransactionalEvents};
use kafka_listener::prelude::*;
use kafka_listener::trace::{TraceContext, TraceParent, TRACEPARENT, TRACESTATE};
use serde::Serialize;
use support::*;

/// The W3C recommendation's own example.
const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const STATE: &str = "congo=t61rcWkgMzE";

/// The outbox event the first listener publishes. Its topic is fixed, so
/// on a real cluster it holds every run's events: the test reads only its
/// own key.
#[derive(Debug, Serialize, OutboxEvent)]
#[outbox(topic = "trace.propagation.events", key = "order_id")]
struct OrderSeen {
    order_id: String,
}

#[derive(Clone)]
struct Topics {
    out: String,
    last: String,
    key: String,
}

/// Sends one record on and publishes one outbox event, both in the
/// record's trace.
async fn first(
    record: ConsumerRecord,
    template: KafkaTemplate,
    events: State<TransactionalEvents>,
    topics: State<Topics>,
) -> Result<(), ListenerError> {
    let key = String::from_utf8_lossy(record.key().map_or(&[][..], |k| &k[..])).into_owned();
    template
        .send(ProducerRecord::keyed(topics.out.clone(), key.clone()).value("sent"))
        .await?;
    let mut tx = events.begin().await?;
    tx.publish(OrderSeen { order_id: key }).await?;
    tx.commit().await?;
    Ok(())
}

/// The outbox event's listener: sends its own record on, in the trace the
/// event came with.
async fn second(
    record: ConsumerRecord,
    template: KafkaTemplate,
    topics: State<Topics>,
) -> Result<(), ListenerError> {
    if record.key().map(|k| &k[..]) == Some(topics.key.as_bytes()) {
        template
            .send(ProducerRecord::keyed(topics.last.clone(), topics.key.clone()).value("last"))
            .await?;
    }
    Ok(())
}

fn trace_of(message: &rdkafka::message::OwnedMessage) -> TraceContext {
    let text = |name| header(message, name).map(|v| String::from_utf8(v).unwrap());
    TraceContext::from_headers(text(TRACEPARENT).as_deref(), text(TRACESTATE).as_deref())
        .unwrap_or_else(|| panic!("no valid traceparent on {message:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_records_trace_goes_on_through_the_template_the_outbox_and_the_next_listener() {
    init_tracing();
    let input = unique("trace.in");
    let broker = broker(&input, 1);
    let topics = Topics {
        out: format!("{input}.out"),
        last: format!("{input}.last"),
        key: unique("order"),
    };
    for t in [&topics.out, &topics.last] {
        broker.create_topic(t, 1).unwrap();
    }
    broker.create_topic(OrderSeen::TOPIC, 1).unwrap();
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let events = TransactionalEvents::builder(&pool)
        .outbox_table(unique("outbox").replace(['.', '-'], "_"))
        .build()
        .await
        .unwrap();
    let app = KafkaApp::builder()
        .config(config(&broker))
        .without_discovered_listeners()
        .listener(
            ListenerSpec::new(format!("{input}-first"))
                .topics([&input])
                .handler(first),
        )
        .listener(
            ListenerSpec::new(format!("{input}-second"))
                .topics([OrderSeen::TOPIC])
                .handler(second),
        )
        .build()
        .await
        .unwrap()
        .state(events.clone())
        .state(topics.clone())
        .start()
        .await
        .unwrap();
    let relay = events.start_relay(app.template(), RelayConfig::default());
    app.template()
        .send(
            ProducerRecord::keyed(&input, topics.key.clone())
                .value("order")
                .header(TRACEPARENT, INCOMING)
                .header(TRACESTATE, STATE),
        )
        .await
        .unwrap();
    let bootstrap = broker.bootstrap_servers().to_owned();
    let last = read_topic_async(&bootstrap, &topics.last, 1, 1, Duration::from_secs(30)).await;
    assert_eq!(last.len(), 1, "the second listener sent on");
    let out = read_topic_async(&bootstrap, &topics.out, 1, 1, Duration::from_secs(5)).await;
    let events_read = read_topic_async(
        &bootstrap,
        OrderSeen::TOPIC,
        1,
        usize::MAX,
        Duration::from_secs(3),
    )
    .await;
    let mine: Vec<_> = events_read
        .iter()
        .filter(|m| rdkafka::Message::key(*m) == Some(topics.key.as_bytes()))
        .collect();
    assert_eq!(mine.len(), 1, "one outbox event of this test");

    let incoming = TraceParent::parse(INCOMING).unwrap();
    let sent = trace_of(&out[0]);
    let relayed = trace_of(mine[0]);
    let next = trace_of(&last[0]);
    for (hop, cx) in [("template", &sent), ("outbox", &relayed), ("next", &next)] {
        assert_eq!(
            cx.parent.trace_id, incoming.trace_id,
            "{hop}: the same trace"
        );
        assert_eq!(cx.parent.flags, incoming.flags, "{hop}: the same flags");
        assert_eq!(cx.state.as_deref(), Some(STATE), "{hop}: tracestate kept");
    }
    // The first listener's processing is a span of its own, the parent of
    // both what it sent and what it published.
    assert_ne!(sent.parent.parent_id, incoming.parent_id);
    assert_eq!(relayed.parent, sent.parent, "outbox event: the same parent");
    // The second listener's processing is a child of the event's.
    assert_ne!(next.parent.parent_id, relayed.parent.parent_id);
    // The outbox row kept the trace it was published in.
    let rows = events.outbox_rows().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].trace.as_ref(), Some(&relayed));

    relay.shutdown().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_outside_a_trace_has_no_traceparent_and_a_records_own_is_kept() {
    init_tracing();
    let topic = unique("trace.none");
    let broker = broker(&topic, 1);
    let app = KafkaApp::builder()
        .config(config(&broker))
        .without_discovered_listeners()
        .build()
        .await
        .unwrap()
        .start()
        .await
        .unwrap();
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let template = app.template();
    template
        .send(ProducerRecord::keyed(&topic, "a").value("no trace"))
        .await
        .unwrap();
    template
        .send(
            ProducerRecord::keyed(&topic, "b")
                .value("its own")
                .header(TRACEPARENT, own),
        )
        .await
        .unwrap();
    let read = read_topic_async(
        broker.bootstrap_servers(),
        &topic,
        1,
        2,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(read.len(), 2);
    assert_eq!(header(&read[0], TRACEPARENT), None, "no current trace");
    assert_eq!(header(&read[0], TRACESTATE), None);
    assert_eq!(
        header(&read[1], TRACEPARENT).as_deref(),
        Some(own.as_bytes()),
        "the record's own traceparent is not replaced"
    );
    app.shutdown().await;
}

/// An outbox table created before the trace columns existed (the
/// columns of the previous release), with an unsent row in it.
async fn old_outbox_table(pool: &sqlx::AnyPool, table: &str) {
    let id = if pool.connect_options().database_url.scheme() == "sqlite" {
        "id INTEGER PRIMARY KEY AUTOINCREMENT"
    } else {
        "id BIGSERIAL PRIMARY KEY"
    };
    sqlx::query(&format!(
        "CREATE TABLE {table} ({id}, event_id TEXT NOT NULL UNIQUE, event_type TEXT NOT NULL,
         topic TEXT NOT NULL, msg_key TEXT NOT NULL, payload TEXT NOT NULL,
         created_at BIGINT NOT NULL, sent_at BIGINT, attempts BIGINT NOT NULL DEFAULT 0,
         last_error TEXT)"
    ))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(&format!(
        "INSERT INTO {table} (event_id, event_type, topic, msg_key, payload, created_at)
         VALUES ('e1', 'OrderSeen', 't', 'k', '{{}}', 1)"
    ))
    .execute(pool)
    .await
    .unwrap();
}

/// Starts `TransactionalEvents` on an old table twice (the second start
/// finds the columns there) and checks that the old row reads back without
/// a trace and a new one, published in a trace, with it.
async fn old_table_gets_the_trace_columns(url: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let table = unique("old_outbox").replace(['.', '-'], "_");
    old_outbox_table(&pool, &table).await;
    for _ in 0..2 {
        let events = TransactionalEvents::builder(pool.clone())
            .outbox_table(table.clone())
            .build()
            .await
            .unwrap();
        let rows = events.outbox_rows().await.unwrap();
        assert_eq!((rows[0].event_id.as_str(), &rows[0].trace), ("e1", &None));
    }
    let events = TransactionalEvents::builder(pool.clone())
        .outbox_table(table.clone())
        .build()
        .await
        .unwrap();
    let parent = TraceContext::from_headers(Some(INCOMING), Some(STATE));
    let span = tracing::info_span!("publisher");
    kafka_listener::trace::continue_in(span, parent, async {
        let mut tx = events.begin().await.unwrap();
        tx.publish(OrderSeen {
            order_id: "k2".into(),
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
    })
    .await;
    let rows = events.outbox_rows().await.unwrap();
    let trace = rows[1].trace.as_ref().expect("the new row has the trace");
    assert_eq!(
        trace.parent.trace_id_hex(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(trace.state.as_deref(), Some(STATE));
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn an_outbox_table_without_the_trace_columns_gets_them_on_sqlite() {
    let path = std::env::temp_dir().join(format!("{}.db", unique("old-outbox")));
    old_table_gets_the_trace_columns(&format!("sqlite://{}?mode=rwc", path.display())).await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn an_outbox_table_without_the_trace_columns_gets_them_on_postgres() {
    let Some(url) = postgres_url() else {
        eprintln!("TEST_DATABASE_URL is not set; the PostgreSQL variant does not run");
        return;
    };
    old_table_gets_the_trace_columns(&url).await;
}
