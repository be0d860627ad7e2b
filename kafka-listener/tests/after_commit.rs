//! `#[after_commit]` and the transactional outbox against the embedded
//! broker or a real one (see `support`), on SQLite (always) and on PostgreSQL (when `TEST_DATABASE_URL`
//! is set, e.g. `postgres://postgres@127.0.0.1:5432/test`; otherwise the
//! PostgreSQL tests print that they are skipped and pass).
//!
//! Every scenario is one `async fn(Db)`; each test gets its own SQLite
//! file or its own PostgreSQL tables, and its own broker.

#![cfg(feature = "after-commit")]

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kafka_listener::after_commit::{
    EventMeta, HandlerReport, RelayConfig, TransactionalEvents, EVENT_ID_HEADER, EVENT_TYPE_HEADER,
};
use kafka_listener::{after_commit, ListenerError, OutboxEvent, State};
use serde::{Deserialize, Serialize};

use support::after_commit::{self as ac, read_records, sent_event_ids, wait_until, Ctx, Db};

// ---- events and handlers (registered for the whole test binary) ----

/// An in-process event: three handlers.
#[derive(Debug, Clone)]
struct CouponIssued {
    coupon_id: String,
    user_id: String,
}

#[after_commit]
async fn on_issued(
    event: CouponIssued,
    ctx: State<Ctx>,
    meta: EventMeta,
) -> Result<(), sqlx::Error> {
    // Runs after the commit: a fresh connection sees the committed row.
    let seen = ctx.count_issues(&event.coupon_id).await?;
    ctx.record("on_issued", &event.user_id, &meta, seen);
    Ok(())
}

#[after_commit]
async fn also_on_issued(event: CouponIssued, ctx: State<Ctx>, meta: EventMeta) {
    ctx.record("also_on_issued", &event.user_id, &meta, -1);
}

#[after_commit]
async fn fails_for_some_users(event: CouponIssued) -> Result<(), ListenerError> {
    match event.user_id.as_str() {
        "fail" => Err(ListenerError::fatal("this user is refused")),
        "panic" => panic!("handler panicked on purpose"),
        _ => Ok(()),
    }
}

/// An event with one fallback handler and one strict handler.
#[derive(Debug, Clone)]
struct Audit {
    what: String,
}

#[after_commit(fallback_execution = true)]
async fn audit_always(event: Audit, ctx: State<Ctx>, meta: EventMeta) {
    ctx.record("audit_always", &event.what, &meta, -1);
}

#[after_commit]
async fn audit_after_commit_only(event: Audit, ctx: State<Ctx>, meta: EventMeta) {
    ctx.record("audit_after_commit_only", &event.what, &meta, -1);
}

/// An outbox event (no in-process handler).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, OutboxEvent)]
#[outbox(topic = "coupon.issued", key = "coupon_id")]
struct Issued {
    coupon_id: String,
    seq: u64,
}

const TOPIC: &str = "coupon.issued";

/// An outbox event sent as Avro.
#[cfg(feature = "avro")]
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, apache_avro::AvroSchema, OutboxEvent,
)]
#[avro(namespace = "test")]
#[outbox(topic = "coupon.issued.avro", key = "coupon_id", format = "avro")]
struct AvroIssued {
    coupon_id: String,
    seq: i64,
    issued_at: kafka_listener::avro::TimestampMillis,
}

// ---- scenarios ----

async fn commit_runs_handlers_after_commit(db: Db) {
    let (events, ctx) = db.events().await;
    let mut tx = events.begin().await.unwrap();
    ctx.insert_issue(&mut tx, "c1", "alice").await;
    tx.publish(CouponIssued {
        coupon_id: "c1".into(),
        user_id: "alice".into(),
    })
    .await
    .unwrap();
    assert!(ctx.calls().is_empty(), "nothing runs before the commit");
    let committed = tx.commit().await.unwrap();
    assert_eq!(committed.events, 1);
    assert_eq!(committed.outboxed, 0);
    assert_eq!(
        committed.handlers,
        HandlerReport {
            succeeded: 3,
            failed: 0,
            discarded: 0
        }
    );
    let calls = ctx.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let on_issued = calls.iter().find(|c| c.handler == "on_issued").unwrap();
    assert_eq!(on_issued.rows_seen, 1, "the handler sees the committed row");
    assert!(on_issued.in_transaction);
    assert_eq!(on_issued.what, "alice");
    // Both handlers saw the same event id, a UUID.
    assert_eq!(calls[0].event_id, calls[1].event_id);
    assert_eq!(calls[0].event_id.len(), 36);
    db.cleanup().await;
}

/// Publishes an in-process `CouponIssued` and an outbox `Issued` (seq 0)
/// for `coupon_id` in `tx`.
async fn publish_both(
    tx: &mut kafka_listener::after_commit::EventTx,
    coupon_id: &str,
    user_id: &str,
) {
    tx.publish(CouponIssued {
        coupon_id: coupon_id.into(),
        user_id: user_id.into(),
    })
    .await
    .unwrap();
    tx.publish(Issued {
        coupon_id: coupon_id.into(),
        seq: 0,
    })
    .await
    .unwrap();
}

async fn rollback_and_drop_run_nothing(db: Db) {
    let (events, ctx) = db.events().await;
    let mut tx = events.begin().await.unwrap();
    ctx.insert_issue(&mut tx, "c1", "bob").await;
    publish_both(&mut tx, "c1", "bob").await;
    tx.rollback().await.unwrap();

    let mut tx = events.begin().await.unwrap();
    ctx.insert_issue(&mut tx, "c2", "carol").await;
    tx.publish(CouponIssued {
        coupon_id: "c2".into(),
        user_id: "carol".into(),
    })
    .await
    .unwrap();
    drop(tx);

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(ctx.calls().is_empty(), "{:?}", ctx.calls());
    assert_eq!(ctx.count_issues("c1").await.unwrap(), 0);
    assert_eq!(ctx.count_issues("c2").await.unwrap(), 0);
    assert!(events.outbox_rows().await.unwrap().is_empty());
    db.cleanup().await;
}

async fn failed_commit_runs_nothing(db: Db) {
    let (events, ctx) = db.events().await;
    let (parent, child) = db.deferred_fk_tables(&ctx.pool).await;
    let mut tx = events.begin().await.unwrap();
    // Checked only at COMMIT: the commit fails.
    sqlx::query(&format!(
        "INSERT INTO {child} (parent_id) VALUES ('missing')"
    ))
    .execute(&mut *tx)
    .await
    .unwrap();
    ctx.insert_issue(&mut tx, "c1", "erin").await;
    publish_both(&mut tx, "c1", "erin").await;
    let error = tx
        .commit()
        .await
        .expect_err("the deferred foreign key fails the commit");
    assert!(
        matches!(error, kafka_listener::AfterCommitError::Database(_)),
        "{error}"
    );
    assert!(ctx.calls().is_empty(), "{:?}", ctx.calls());
    assert_eq!(ctx.count_issues("c1").await.unwrap(), 0);
    assert!(events.outbox_rows().await.unwrap().is_empty());
    let _ = parent;
    db.cleanup().await;
}

async fn outside_a_transaction_only_fallback_handlers_run(db: Db) {
    let (events, ctx) = db.events().await;
    let published = events
        .publish(Audit {
            what: "login".into(),
        })
        .await
        .unwrap();
    assert!(!published.outboxed);
    assert_eq!(
        published.handlers,
        HandlerReport {
            succeeded: 1,
            failed: 0,
            discarded: 1
        }
    );
    let published = events
        .publish(CouponIssued {
            coupon_id: "c1".into(),
            user_id: "dave".into(),
        })
        .await
        .unwrap();
    assert_eq!(published.handlers.discarded, 3);
    assert_eq!(published.handlers.ran(), 0);
    let calls = ctx.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].handler, "audit_always");
    assert!(!calls[0].in_transaction);

    // In a transaction both Audit handlers run.
    let mut tx = events.begin().await.unwrap();
    tx.publish(Audit {
        what: "logout".into(),
    })
    .await
    .unwrap();
    assert_eq!(tx.commit().await.unwrap().handlers.succeeded, 2);
    let names: HashSet<&str> = ctx.calls()[1..].iter().map(|c| c.handler).collect();
    assert_eq!(
        names,
        HashSet::from(["audit_always", "audit_after_commit_only"])
    );

    // An outbox event outside a transaction is written at once (a
    // one-statement transaction) and left for the relay.
    let published = events
        .publish(Issued {
            coupon_id: "c1".into(),
            seq: 7,
        })
        .await
        .unwrap();
    assert!(published.outboxed);
    let rows = events.outbox_rows().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].topic, "coupon.issued");
    assert_eq!(rows[0].key, "c1");
    assert_eq!(rows[0].payload, r#"{"coupon_id":"c1","seq":7}"#);
    assert_eq!(rows[0].event_id.len(), 36);
    assert_eq!(rows[0].sent_at, None);
    db.cleanup().await;
}

async fn handler_failure_keeps_the_commit(db: Db) {
    let (events, ctx) = db.events().await;
    for user in ["fail", "panic"] {
        let mut tx = events.begin().await.unwrap();
        ctx.insert_issue(&mut tx, "c1", user).await;
        tx.publish(CouponIssued {
            coupon_id: "c1".into(),
            user_id: user.into(),
        })
        .await
        .unwrap();
        let committed = tx
            .commit()
            .await
            .expect("a handler failure is not a commit failure");
        assert_eq!(committed.handlers.failed, 1, "{user}");
        assert_eq!(committed.handlers.succeeded, 2, "{user}");
    }
    assert_eq!(
        ctx.count_issues("c1").await.unwrap(),
        2,
        "both commits stand"
    );
    db.cleanup().await;
}

async fn unsent_outbox_rows_are_published_on_the_next_start(db: Db) {
    let broker = support::broker(TOPIC, 3);
    // First "process": commits outbox events, and dies before any relay runs.
    {
        let (events, ctx) = db.events().await;
        let mut tx = events.begin().await.unwrap();
        ctx.insert_issue(&mut tx, "a", "u0").await;
        for (seq, key) in [(0, "a"), (1, "b"), (2, "a")] {
            tx.publish(Issued {
                coupon_id: key.into(),
                seq,
            })
            .await
            .unwrap();
        }
        let committed = tx.commit().await.unwrap();
        assert_eq!(committed.outboxed, 3);
        assert_eq!(events.unsent_count().await.unwrap(), 3);
        events.pool().close().await;
    }
    // Second "process": a new pool; the relay sends what was left.
    let (events, _ctx) = db.events().await;
    let rows = events.outbox_rows().await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.sent_at.is_none()));
    let relay = events.start_relay(ac::template(&broker, None), fast_relay());
    wait_until("the outbox is drained", || async {
        events.unsent_count().await.unwrap() == 0
    })
    .await;
    relay.shutdown().await;
    let ids = sent_event_ids(&events).await;
    assert_eq!(ids.len(), 3);
    let records = read_records(&broker, TOPIC, 3, &ids).await;
    assert_eq!(records.len(), 3, "{records:?}");
    for row in &rows {
        let record = records
            .iter()
            .find(|r| r.event_id == row.event_id)
            .unwrap_or_else(|| panic!("no record with event id {}", row.event_id));
        assert_eq!(record.key, row.key);
        assert_eq!(record.payload, row.payload);
        assert_eq!(record.event_type, <Issued as OutboxEvent>::NAME);
        assert_eq!(record.timestamp, Some(row.created_at));
    }
    let a: Vec<u64> = records
        .iter()
        .filter(|r| r.key == "a")
        .map(|r| r.value::<Issued>().seq)
        .collect();
    assert_eq!(a, vec![0, 2]);
    let sent = events.outbox_rows().await.unwrap();
    assert!(sent.iter().all(|r| r.sent_at.is_some()), "{sent:?}");
    // A relay with no retention purges the sent rows (and sends nothing).
    let relay = events.start_relay(
        ac::template(&broker, None),
        RelayConfig {
            retention: Some(Duration::ZERO),
            ..fast_relay()
        },
    );
    wait_until("the sent rows are purged", || async {
        events.outbox_rows().await.unwrap().is_empty()
    })
    .await;
    assert_eq!(relay.stats().published(), 0);
    relay.shutdown().await;
    assert_eq!(read_records(&broker, TOPIC, 3, &ids).await.len(), 3);
    db.cleanup().await;
}

async fn per_key_order_holds_across_a_relay_restart(db: Db) {
    // The mock's round-trip time keeps the first relay busy when it stops.
    let broker = support::embedded_broker(TOPIC, 3);
    let (events, _ctx) = db.events().await;
    let keys = ["k0", "k1", "k2", "k3"];
    let publish = |range: std::ops::Range<u64>| {
        let events = events.clone();
        async move {
            for chunk in range.collect::<Vec<_>>().chunks(4) {
                let mut tx = events.begin().await.unwrap();
                for seq in chunk {
                    tx.publish(Issued {
                        coupon_id: keys[(*seq % 4) as usize].into(),
                        seq: *seq,
                    })
                    .await
                    .unwrap();
                }
                tx.commit().await.unwrap();
            }
        }
    };
    publish(0..80).await;
    let config = RelayConfig {
        batch_size: 8,
        ..fast_relay()
    };
    // 30 ms per produce round trip: the first relay is still busy when it
    // is stopped.
    broker
        .with_mock(|m| m.broker_round_trip_time(1, Duration::from_millis(30)))
        .unwrap()
        .unwrap();
    let relay = events.start_relay(ac::template(&broker, None), config.clone());
    wait_until("the relay sent some", || async {
        relay.stats().published() >= 16
    })
    .await;
    // A crash of the relay: aborted in the middle of its work.
    drop(relay);
    let left = events.unsent_count().await.unwrap();
    assert!(left > 0, "the relay was stopped before it finished");
    publish(80..120).await;
    broker
        .with_mock(|m| m.broker_round_trip_time(1, Duration::ZERO))
        .unwrap()
        .unwrap();
    // The second relay pipelines up to 8 sends per key: order holds too.
    let config = RelayConfig {
        max_in_flight_per_key: 8,
        ..config
    };
    let relay = events.start_relay(ac::template(&broker, None), config);
    wait_until("the outbox is drained", || async {
        events.unsent_count().await.unwrap() == 0
    })
    .await;
    relay.shutdown().await;
    let records = read_records(&broker, TOPIC, 3, &sent_event_ids(&events).await).await;
    assert_order(&records, 120, 4);
    db.cleanup().await;
}

async fn failed_sends_back_off_and_keep_order(db: Db) {
    // The mock takes its broker down and up again.
    let broker = support::embedded_broker(TOPIC, 3);
    let (events, _ctx) = db.events().await;
    let relay = events.start_relay(ac::template(&broker, Some(1500)), fast_relay());
    broker.with_mock(|m| m.broker_down(1)).unwrap().unwrap();
    publish_each(&events, 0..30, 3).await;
    wait_for_a_failed_send(&events).await;
    assert!(relay.stats().send_failures() > 0);
    let rows = events.outbox_rows().await.unwrap();
    assert!(rows.iter().all(|r| r.sent_at.is_none()));
    broker.with_mock(|m| m.broker_up(1)).unwrap().unwrap();
    wait_until("the outbox is drained", || async {
        events.unsent_count().await.unwrap() == 0
    })
    .await;
    relay.shutdown().await;
    let records = read_records(&broker, TOPIC, 3, &sent_event_ids(&events).await).await;
    assert_order(&records, 30, 3);
    db.cleanup().await;
}

async fn a_failing_key_does_not_block_the_others(db: Db) {
    let broker = support::broker(TOPIC, 3);
    let (events, _ctx) = db.events().await;
    // A key of 20,000 bytes can never be sent with message.max.bytes=10000.
    let poison = "x".repeat(20_000);
    let publish = |coupon_id: String, seq: u64| {
        let events = events.clone();
        async move {
            let mut tx = events.begin().await.unwrap();
            tx.publish(Issued { coupon_id, seq }).await.unwrap();
            tx.commit().await.unwrap();
        }
    };
    publish(poison.clone(), 1000).await;
    for seq in 0..30u64 {
        publish(format!("k{}", seq % 3), seq).await;
    }
    publish(poison.clone(), 1001).await;
    let template = kafka_listener::KafkaTemplate::new(
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .set("message.max.bytes", "10000"),
    )
    .unwrap();
    let relay = events.start_relay(template, fast_relay());
    wait_until("every other key is sent", || async {
        events.unsent_count().await.unwrap() == 2
    })
    .await;
    wait_until("the poison row was tried again", || async {
        events.outbox_rows().await.unwrap()[0].attempts >= 2
    })
    .await;
    relay.shutdown().await;
    let rows = events.outbox_rows().await.unwrap();
    let unsent: Vec<_> = rows.iter().filter(|r| r.sent_at.is_none()).collect();
    assert_eq!(unsent.len(), 2);
    assert_eq!(unsent[0].key, poison);
    assert!(unsent[0]
        .last_error
        .as_deref()
        .is_some_and(|e| !e.is_empty()));
    // The later row of the blocked key was never tried: its order holds.
    assert_eq!(unsent[1].key, poison);
    assert_eq!(unsent[1].attempts, 0);
    let records = read_records(&broker, TOPIC, 3, &sent_event_ids(&events).await).await;
    assert_order(&records, 30, 3);
    db.cleanup().await;
}

/// `format = "avro"`: the outbox keeps JSON; the relay sends Avro in the
/// Confluent wire format under `<topic>-value`, in per-key order. A relay
/// whose template has no Avro codec sends nothing of that type (the rows
/// wait, with the reason in `last_error`) until one that has a codec runs.
#[cfg(feature = "avro")]
async fn avro_events_are_sent_in_the_confluent_wire_format(db: Db) {
    use kafka_listener::avro::{AvroCodec, AvroSettings, SchemaRegistryClient, TimestampMillis};
    use kafka_listener::embedded::EmbeddedSchemaRegistry;

    let topic = <AvroIssued as OutboxEvent>::TOPIC;
    let broker = support::broker(topic, 2);
    let registry = EmbeddedSchemaRegistry::start().await.unwrap();
    let codec = AvroCodec::new(
        SchemaRegistryClient::new(registry.url()).unwrap(),
        AvroSettings::default(),
    );
    let (events, _ctx) = db.events().await;
    let published: Vec<AvroIssued> = (0..6)
        .map(|seq| AvroIssued {
            coupon_id: format!("c{}", seq % 2),
            seq,
            issued_at: TimestampMillis(1_700_000_000_000 + seq),
        })
        .collect();
    let mut tx = events.begin().await.unwrap();
    for event in &published {
        tx.publish(event.clone()).await.unwrap();
    }
    assert_eq!(tx.commit().await.unwrap().outboxed, 6);
    let rows = events.outbox_rows().await.unwrap();
    let first: AvroIssued = serde_json::from_str(&rows[0].payload).expect("JSON in the outbox");
    assert_eq!(first, published[0]);

    // No codec: nothing sent, the reason kept.
    let relay = events.start_relay(ac::template(&broker, None), fast_relay());
    wait_for_a_failed_send(&events).await;
    relay.shutdown().await;
    let rows = events.outbox_rows().await.unwrap();
    assert!(rows.iter().all(|r| r.sent_at.is_none()), "{rows:?}");
    let failed = rows.iter().find(|r| r.attempts > 0).unwrap();
    assert!(
        failed
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("no Avro codec"),
        "{failed:?}"
    );

    let relay = events.start_relay(
        ac::template(&broker, None).with_avro(codec.clone()),
        fast_relay(),
    );
    wait_until("the outbox is drained", || async {
        events.unsent_count().await.unwrap() == 0
    })
    .await;
    relay.shutdown().await;
    let records = read_records(&broker, topic, 2, &sent_event_ids(&events).await).await;
    assert_eq!(records.len(), 6, "{records:?}");
    let mut per_key: HashMap<String, Vec<i64>> = HashMap::new();
    for record in &records {
        assert_eq!(record.value_bytes[0], 0, "magic byte");
        assert_eq!(record.event_type, <AvroIssued as OutboxEvent>::NAME);
        let event: AvroIssued = codec.decode(&record.value_bytes).await.unwrap();
        assert_eq!(event, published[event.seq as usize]);
        assert_eq!(event.coupon_id, record.key);
        per_key
            .entry(record.key.clone())
            .or_default()
            .push(event.seq);
    }
    assert_eq!(per_key["c0"], vec![0, 2, 4]);
    assert_eq!(per_key["c1"], vec![1, 3, 5]);
    let subject = codec
        .client()
        .latest("coupon.issued.avro-value")
        .await
        .unwrap();
    assert!(
        subject.schema.contains("timestamp-millis"),
        "{}",
        subject.schema
    );
    db.cleanup().await;
}

/// Publishes `Issued { seq, coupon_id: "k{seq % keys}" }` for each `seq`,
/// one transaction each.
async fn publish_each(events: &TransactionalEvents, seqs: std::ops::Range<u64>, keys: u64) {
    for seq in seqs {
        let mut tx = events.begin().await.unwrap();
        tx.publish(Issued {
            coupon_id: format!("k{}", seq % keys),
            seq,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}

/// Waits until an outbox row counts a failed send.
async fn wait_for_a_failed_send(events: &TransactionalEvents) {
    wait_until("a failed send is counted on its row", || async {
        events
            .outbox_rows()
            .await
            .unwrap()
            .iter()
            .any(|r| r.attempts > 0)
    })
    .await;
}

fn fast_relay() -> RelayConfig {
    RelayConfig {
        poll_interval: Duration::from_millis(100),
        backoff: kafka_listener::BackOff::exponential(
            Duration::from_millis(50),
            2.0,
            Duration::from_millis(500),
        ),
        ..RelayConfig::default()
    }
}

/// Every seq in `0..count` arrived; after dropping duplicates by event id,
/// each key's seqs are increasing (key = `k{seq % keys}`); headers are set.
fn assert_order(records: &[ac::Record], count: u64, keys: u64) {
    let mut seen = HashSet::new();
    let mut per_key: HashMap<String, Vec<u64>> = HashMap::new();
    let mut per_partition_of_key: HashMap<String, HashSet<i32>> = HashMap::new();
    for r in records {
        assert_eq!(r.event_type, <Issued as OutboxEvent>::NAME);
        if !seen.insert(r.event_id.clone()) {
            continue;
        }
        let event: Issued = r.value();
        assert_eq!(event.coupon_id, r.key);
        assert_eq!(r.key, format!("k{}", event.seq % keys));
        per_key.entry(r.key.clone()).or_default().push(event.seq);
        per_partition_of_key
            .entry(r.key.clone())
            .or_default()
            .insert(r.partition);
    }
    assert_eq!(
        seen.len() as u64,
        count,
        "every event arrived once after dedup"
    );
    for (key, seqs) in &per_key {
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(seqs, &sorted, "order of key {key}");
        assert_eq!(per_partition_of_key[key].len(), 1, "one partition per key");
    }
}

// ---- the tests: each scenario on SQLite and on PostgreSQL ----

on_both_databases!(
    commit_runs_handlers_after_commit,
    rollback_and_drop_run_nothing,
    failed_commit_runs_nothing,
    outside_a_transaction_only_fallback_handlers_run,
    handler_failure_keeps_the_commit,
    unsent_outbox_rows_are_published_on_the_next_start,
    per_key_order_holds_across_a_relay_restart,
    failed_sends_back_off_and_keep_order,
    a_failing_key_does_not_block_the_others,
);

#[cfg(feature = "avro")]
mod avro {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_avro_events_are_sent_in_the_confluent_wire_format() {
        super::avro_events_are_sent_in_the_confluent_wire_format(
            super::Db::sqlite("avro_events").await,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_avro_events_are_sent_in_the_confluent_wire_format() {
        match super::Db::postgres("avro_events").await {
            Some(db) => super::avro_events_are_sent_in_the_confluent_wire_format(db).await,
            None => eprintln!("TEST_DATABASE_URL is not set: the PostgreSQL half is skipped"),
        }
    }
}

/// On PostgreSQL an advisory lock lets one relay work at a time (several
/// instances of an app): the second waits, and takes over when the first
/// stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_relay_at_a_time() {
    let Some(db) = Db::postgres("one_relay_at_a_time").await else {
        eprintln!("TEST_DATABASE_URL is not set: `postgres_one_relay_at_a_time` is skipped");
        return;
    };
    let broker = support::broker(TOPIC, 3);
    let (events, _ctx) = db.events().await;
    let first = events.start_relay(ac::template(&broker, None), fast_relay());
    // The first relay holds the lock before the second one starts.
    let mut tx = events.begin().await.unwrap();
    tx.publish(Issued {
        coupon_id: "k0".into(),
        seq: 0,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    wait_until("the first relay sent", || async {
        first.stats().published() == 1
    })
    .await;
    let second = events.start_relay(ac::template(&broker, None), fast_relay());
    publish_each(&events, 1..20, 2).await;
    wait_until("the outbox is drained", || async {
        events.unsent_count().await.unwrap() == 0
    })
    .await;
    assert_eq!(first.stats().published(), 20);
    assert_eq!(second.stats().published(), 0, "the second relay waits");
    first.shutdown().await;
    publish_each(&events, 20..30, 2).await;
    wait_until("the second relay took over", || async {
        events.unsent_count().await.unwrap() == 0
    })
    .await;
    assert_eq!(second.stats().published(), 10);
    second.shutdown().await;
    let records = read_records(&broker, TOPIC, 3, &sent_event_ids(&events).await).await;
    assert_order(&records, 30, 2);
    db.cleanup().await;
}

/// A handler whose `State<T>` was not registered stops `build()`, naming
/// the handler and the type.
#[tokio::test]
async fn missing_state_is_reported_at_build() {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let error = TransactionalEvents::builder(pool)
        .build()
        .await
        .expect_err("the test handlers need State<Ctx>");
    let text = error.to_string();
    assert!(
        text.starts_with("after-commit handler `after_commit::"),
        "{text}"
    );
    assert!(
        text.contains("`State<after_commit::support::after_commit::Ctx>` is used but no"),
        "{text}"
    );
}

#[test]
fn derived_outbox_event_has_topic_and_key() {
    use kafka_listener::after_commit::OutboxEvent as _;
    let event = Issued {
        coupon_id: "c9".into(),
        seq: 1,
    };
    assert_eq!(Issued::TOPIC, "coupon.issued");
    assert_eq!(event.key(), "c9");
    assert_eq!(EVENT_ID_HEADER, "kafka_listener-event-id");
    assert_eq!(EVENT_TYPE_HEADER, "kafka_listener-event-type");
}

/// `TransactionalEvents` is what an app keeps; it must be shareable.
#[allow(dead_code)]
fn assert_send_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<TransactionalEvents>();
}
