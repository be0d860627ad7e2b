//! Outbox rows are matched to their event type by the stable name of
//! `#[outbox(name = "...")]` (default: the type's name), on SQLite (always)
//! and on PostgreSQL (when `TEST_DATABASE_URL` is set; otherwise the
//! PostgreSQL half prints that it is skipped and passes).
//!
//! A row whose name this binary does not know stays unsent, with the reason
//! in `last_error`, and the rows of its key wait behind it; a row written
//! by the previous version (the Rust type path in `event_type`) is still
//! matched while the type keeps that path.

#![cfg(feature = "after-commit")]

mod support;

use std::collections::HashSet;

use std::time::Duration;

use kafka_listener::after_commit::{RelayConfig, TransactionalEvents};
use kafka_listener::{BackOff, OutboxEvent};
use serde::{Deserialize, Serialize};

use support::after_commit::{self as ac_support, read_records, wait_until, Db};

const TOPIC: &str = "outbox.names";

/// Named explicitly: renaming or moving the type does not change its rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, OutboxEvent)]
#[outbox(topic = "outbox.names", key = "key", name = "coupon.CouponIssued")]
struct Named {
    key: String,
    seq: u64,
}

/// Named by default: `DefaultNamed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, OutboxEvent)]
#[outbox(topic = "outbox.names", key = "key")]
struct DefaultNamed {
    key: String,
    seq: u64,
}

fn fast_relay() -> RelayConfig {
    RelayConfig {
        poll_interval: Duration::from_millis(100),
        backoff: BackOff::exponential(Duration::from_millis(50), 2.0, Duration::from_millis(200)),
        ..RelayConfig::default()
    }
}

/// Inserts a row as another version of the app would have written it.
async fn insert_raw(db: &Db, pool: &sqlx::AnyPool, event_type: &str, key: &str, seq: u64) {
    let sql = format!(
        "INSERT INTO {} (event_id, event_type, topic, msg_key, payload, created_at, attempts)
         VALUES ($1, $2, $3, $4, $5, $6, 0)",
        db.outbox_table()
    );
    sqlx::query(&sql)
        .bind(kafka_listener::after_commit::new_event_id())
        .bind(event_type)
        .bind(TOPIC)
        .bind(key)
        .bind(format!(r#"{{"key":"{key}","seq":{seq}}}"#))
        .bind(1_700_000_000_000_i64)
        .execute(pool)
        .await
        .unwrap();
}

async fn publish(events: &TransactionalEvents, key: &str, seq: u64) {
    let mut tx = events.begin().await.unwrap();
    tx.publish(Named {
        key: key.into(),
        seq,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn rows_carry_the_stable_name(db: Db) {
    let (events, _ctx) = db.events().await;
    publish(&events, "a", 0).await;
    let mut tx = events.begin().await.unwrap();
    tx.publish(DefaultNamed {
        key: "b".into(),
        seq: 1,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let rows = events.outbox_rows().await.unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.event_type.as_str()).collect();
    assert_eq!(names, ["coupon.CouponIssued", "DefaultNamed"]);
    assert_eq!(<Named as OutboxEvent>::NAME, "coupon.CouponIssued");
    assert_eq!(<DefaultNamed as OutboxEvent>::NAME, "DefaultNamed");
    db.cleanup().await;
}

async fn an_unknown_name_stays_unsent_and_holds_its_key(db: Db) {
    let broker = support::broker(TOPIC, 1);
    let (events, ctx) = db.events().await;
    // Key "k": a row of a type this binary does not have, then a known one
    // that must wait behind it.
    insert_raw(&db, &ctx.pool, "com.example.Gone", "k", 0).await;
    publish(&events, "k", 1).await;
    // Key "other": known, sent at once.
    publish(&events, "other", 2).await;
    // Key "legacy": written by the previous version, with the type path.
    insert_raw(&db, &ctx.pool, std::any::type_name::<Named>(), "legacy", 3).await;

    let relay = events.start_relay(ac_support::template(&broker, None), fast_relay());
    wait_until("the unknown row failed twice", || async {
        events.outbox_rows().await.unwrap()[0].attempts >= 2
    })
    .await;
    wait_until("the other keys are sent", || async {
        let rows = events.outbox_rows().await.unwrap();
        rows[2].sent_at.is_some() && rows[3].sent_at.is_some()
    })
    .await;
    assert!(relay.stats().unknown_events() >= 2);
    assert_eq!(relay.stats().published(), 2);
    relay.shutdown().await;

    let rows = events.outbox_rows().await.unwrap();
    let unknown = &rows[0];
    assert_eq!(unknown.sent_at, None, "{unknown:?}");
    let error = unknown.last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains("unknown outbox event name `com.example.Gone`"),
        "{error}"
    );
    // The known row of the same key waits: per-key order.
    assert_eq!(rows[1].sent_at, None, "{:?}", rows[1]);
    assert_eq!(rows[1].attempts, 0);

    let sent: HashSet<String> = [rows[2].event_id.clone(), rows[3].event_id.clone()].into();
    let records = read_records(&broker, TOPIC, 1, &sent).await;
    let mut got: Vec<(&str, &str, u64)> = records
        .iter()
        .map(|r| {
            (
                r.key.as_str(),
                r.event_type.as_str(),
                r.value::<Named>().seq,
            )
        })
        .collect();
    // Different keys are sent in parallel: their order is not kept.
    got.sort_by_key(|r| r.2);
    // The legacy row is sent under the type's stable name.
    assert_eq!(
        got,
        [
            ("other", "coupon.CouponIssued", 2),
            ("legacy", "coupon.CouponIssued", 3)
        ]
    );
    db.cleanup().await;
}

on_both_databases!(
    rows_carry_the_stable_name,
    an_unknown_name_stays_unsent_and_holds_its_key,
);
