//! The public test support (`kafka_listener::testing`, feature
//! `test-support`): the guide's complete test (docs/src/testing.md
//! includes it from here, between the ANCHOR lines) and one test per
//! fault, each asserting the fault's effect on offsets and deliveries.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_listener::testing::{self, ApiKey, ResponseError, TestKafka};
use kafka_listener::ConsumerRecord;

// ANCHOR: guide
use kafka_listener::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct OrderPlaced {
    id: String,
    qty: u32,
}

/// What the listener did, shared with the test through `State`.
#[derive(Clone, Default)]
struct Placed(Arc<Mutex<Vec<String>>>);

impl Placed {
    fn push(&self, id: String) {
        self.0.lock().unwrap().push(id);
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

#[kafka_listener(topics = ["guide.orders"], group_id = "guide-orders", dead_letter = true,
                 retry(attempts = 3, backoff = "fixed", initial = "50ms"))]
async fn place(order: Json<OrderPlaced>, placed: State<Placed>) -> Result<(), ListenerError> {
    if order.qty == 0 {
        return Err(ListenerError::fatal(format!(
            "order {} has no items",
            order.id
        )));
    }
    placed.push(order.id.clone());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_placed_and_bad_ones_dead_lettered() {
    // The cluster of KAFKA_TEST_BOOTSTRAP_SERVERS, or an embedded broker.
    let kafka = TestKafka::start().unwrap();
    // Fixed names: on a long-lived cluster, start from empty topics.
    kafka.recreate_topic("guide.orders", 1).unwrap();
    kafka.recreate_topic("guide.orders-dlt", 1).unwrap();
    let placed = Placed::default();
    let app = kafka
        .run_listeners(&["place"], placed.clone())
        .await
        .unwrap();

    let template = kafka.template().unwrap();
    for (key, value) in [
        ("o1", r#"{"id": "o1", "qty": 2}"#),
        ("o2", r#"{"id": "o2", "qty": 0}"#), // fails for good: dead-lettered
        ("o3", "{not json"),                 // a poison pill: dead-lettered at once
        ("o4", r#"{"id": "o4", "qty": 1}"#),
    ] {
        template
            .send(ProducerRecord::keyed("guide.orders", key).value(value))
            .await
            .unwrap();
    }

    // Every record is finished: the group committed the log end.
    testing::wait_committed(
        kafka.bootstrap_servers(),
        "guide-orders",
        "guide.orders",
        &[4],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(placed.all(), ["o1", "o4"]);

    // The two failures are on the dead-letter topic, with Spring's headers.
    let dead = testing::read_topic(
        kafka.bootstrap_servers(),
        "guide.orders-dlt",
        2,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let keys: Vec<&[u8]> = dead
        .iter()
        .filter_map(|r| r.key().map(|k| &k[..]))
        .collect();
    assert_eq!(keys, [&b"o2"[..], &b"o3"[..]]);
    let offsets: Vec<Option<&[u8]>> = dead
        .iter()
        .map(|r| r.headers().get("kafka_dlt-original-offset"))
        .collect();
    assert_eq!(
        offsets,
        [
            Some(&1_i64.to_be_bytes()[..]),
            Some(&2_i64.to_be_bytes()[..])
        ]
    );

    app.shutdown().await;
}
// ANCHOR_END: guide

/// The fault tests' listener: remembers each record's value.
async fn record_value(record: ConsumerRecord, handled: State<Placed>) {
    let value = String::from_utf8_lossy(record.value().map(|v| &v[..]).unwrap_or_default());
    handled.push(value.into_owned());
}

/// A fault test's setup: an embedded broker with a fresh topic, a
/// template, and one listener of the topic in group `group` that records
/// what it handles.
async fn recorder(
    base: &str,
    partitions: i32,
    group: &str,
) -> (
    TestKafka,
    String,
    kafka_listener::RunningApp,
    Placed,
    KafkaTemplate,
) {
    let (kafka, topic) = embedded_with_topic(base, partitions);
    let handled = Placed::default();
    let spec = ListenerSpec::new(group)
        .group_id(group)
        .topics([&topic])
        .handler(record_value);
    let app = kafka.run_listener(spec, handled.clone()).await.unwrap();
    let template = kafka.template().unwrap();
    (kafka, topic, app, handled, template)
}

/// Fault injection needs the embedded broker: one with a fresh topic.
fn embedded_with_topic(base: &str, partitions: i32) -> (TestKafka, String) {
    let kafka = TestKafka::embedded().unwrap();
    let topic = testing::unique(base);
    kafka.create_topic(&topic, partitions).unwrap();
    (kafka, topic)
}

async fn send(template: &KafkaTemplate, topic: &str, values: std::ops::Range<u32>) {
    for i in values {
        template
            .send(ProducerRecord::keyed(topic, format!("k{i}")).value(format!("v{i}")))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_for_a_while_delays_records_and_loses_none() {
    let (kafka, topic, app, handled, template) = recorder("faults.down", 1, "down").await;
    let topic = &topic;
    send(&template, topic, 0..3).await;
    let (b, wait) = (kafka.bootstrap_servers(), Duration::from_secs(30));
    testing::wait_committed(b, "down", topic, &[3], wait).await;

    let faults = kafka.faults().unwrap();
    faults.broker_down().unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let sending = tokio::spawn({
        let (template, topic, sent) = (template.clone(), topic.clone(), Arc::clone(&sent));
        async move {
            send(&template, &topic, 3..6).await;
            sent.store(3, Ordering::SeqCst);
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        sent.load(Ordering::SeqCst),
        0,
        "no send is acknowledged while the broker is down"
    );
    assert_eq!(
        handled.all().len(),
        3,
        "nothing new is handled while the broker is down"
    );
    faults.broker_up().unwrap();

    sending.await.unwrap();
    assert_eq!(sent.load(Ordering::SeqCst), 3);
    testing::wait_committed(b, "down", topic, &[6], wait).await;
    // At least once: a record may come again if a commit was lost with the
    // connection, but none is lost and the first deliveries are in order.
    let values = handled.all();
    let mut first = values.clone();
    let mut seen = std::collections::HashSet::new();
    first.retain(|v| seen.insert(v.clone()));
    assert_eq!(
        first,
        (0..6).map(|i| format!("v{i}")).collect::<Vec<_>>(),
        "handled: {values:?}"
    );
    assert_eq!(
        &values[..3],
        ["v0", "v1", "v2"],
        "nothing before the outage came again"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dead_letter_holds_the_offset_until_the_broker_accepts_it() {
    let (kafka, topic) = &embedded_with_topic("faults.refused", 1);
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let app = kafka
        .run_listener(
            ListenerSpec::new("refused")
                .topics([topic])
                .dead_letter(DeadLetter::suffixed())
                .handler(move |_: ConsumerRecord| {
                    let counter = Arc::clone(&counter);
                    async move {
                        counter.fetch_add(1, Ordering::SeqCst);
                        Err::<(), _>(ListenerError::fatal("refused by the test"))
                    }
                }),
            (),
        )
        .await
        .unwrap();
    kafka
        .template()
        .unwrap()
        .send(ProducerRecord::keyed(topic, "k").value("x"))
        .await
        .unwrap();
    // From now on, the next 5 produce requests (the dead letter's) are refused.
    let faults = kafka.faults().unwrap();
    faults
        .request_errors(
            ApiKey::Produce,
            &[ResponseError::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 5],
        )
        .unwrap();
    testing::wait_until(Duration::from_secs(10), "the handler is called", || {
        let n = calls.load(Ordering::SeqCst);
        async move { n == 1 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = kafka.bootstrap_servers().to_owned();
    let (b2, t2) = (b.clone(), topic.clone());
    let held = tokio::task::spawn_blocking(move || testing::committed(&b2, "refused", &t2, 1))
        .await
        .unwrap();
    assert_eq!(held, [-1], "no commit while the dead letter is refused");

    testing::wait_committed(&b, "refused", topic, &[1], Duration::from_secs(30)).await;
    let dead = testing::read_topic(&b, &format!("{topic}-dlt"), 1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "published once the broker accepts it");
    assert_eq!(dead[0].value().map(|v| &v[..]), Some(&b"x"[..]));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the handler is not called again"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_rebalance_moves_a_partition_away_and_back_without_loss() {
    let (kafka, topic, app, handled, template) =
        recorder("faults.rebalance", 2, "rebalanced").await;
    let topic = &topic;
    send(&template, topic, 0..10).await;
    let b = kafka.bootstrap_servers().to_owned();
    testing::wait_committed_to_log_end(&b, "rebalanced", topic, 2, Duration::from_secs(30)).await;
    let container = app.container("rebalanced").unwrap();
    let assigned = |c: &kafka_listener::ListenerContainer| -> usize {
        c.assigned_partitions().iter().map(Vec::len).sum()
    };
    assert_eq!(assigned(&container), 2);

    let intruder = tokio::spawn({
        let (kafka, topic) = (kafka.clone(), topic.clone());
        async move {
            kafka
                .force_rebalance("rebalanced", &[&topic], Duration::from_secs(3))
                .await
                .unwrap()
        }
    });
    testing::wait_until(
        Duration::from_secs(30),
        "the listener gives a partition up",
        || {
            let n = assigned(&container);
            async move { n == 1 }
        },
    )
    .await;
    let taken = intruder.await.unwrap();
    assert_eq!(
        taken.len(),
        1,
        "the intruder held one of the two partitions: {taken:?}"
    );
    testing::wait_until(Duration::from_secs(30), "the listener gets it back", || {
        let n = assigned(&container);
        async move { n == 2 }
    })
    .await;

    send(&template, topic, 10..20).await;
    testing::wait_committed_to_log_end(&b, "rebalanced", topic, 2, Duration::from_secs(30)).await;
    let mut values = handled.all();
    values.sort();
    values.dedup();
    assert_eq!(
        values.len(),
        20,
        "every record handled, none lost to the rebalance"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn faults_on_a_real_cluster_and_unknown_listener_ids_are_refused_with_reasons() {
    if let Ok(kafka) = TestKafka::start() {
        if kafka.is_real() {
            let error = kafka.faults().unwrap_err().to_string();
            assert!(error.contains("TestKafka::embedded()"), "{error}");
        }
    }
    let kafka = TestKafka::embedded().unwrap();
    let error = kafka
        .run_listeners(&["no-such-listener"], ())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no-such-listener") && error.contains("\"place\""),
        "{error}"
    );
}

/// A listener that uses `?` on `anyhow::Error` and on serde_json.
async fn parse_amount(value: String) -> Result<(), ListenerError> {
    use anyhow::Context as _;
    if let Some(json) = value.strip_prefix("json:") {
        // A deserialization error: Decode, never retried.
        let _: u32 = serde_json::from_str(json)?;
        return Ok(());
    }
    // Anything else through anyhow: Retryable, as Spring retries an exception.
    let _: u32 = value.parse::<u32>().context("parsing the amount")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn question_mark_on_anyhow_retries_and_on_a_json_error_dead_letters_at_once() {
    use kafka_listener::record::headers as h;
    let (kafka, topic) = &embedded_with_topic("errors.anyhow", 1);
    let spec = ListenerSpec::new("amounts")
        .topics([topic])
        .retry(RetryPolicy::fixed(3, Duration::from_millis(20)))
        .dead_letter(DeadLetter::suffixed())
        .handler(parse_amount);
    let app = kafka.run_listener(spec, ()).await.unwrap();
    let template = kafka.template().unwrap();
    for value in ["12", "twelve", "json:{", "json:7"] {
        template
            .send(ProducerRecord::keyed(topic, value).value(value))
            .await
            .unwrap();
    }
    let b = kafka.bootstrap_servers();
    testing::wait_committed(b, "amounts", topic, &[4], Duration::from_secs(30)).await;
    let dead = testing::read_topic(b, &format!("{topic}-dlt"), 2, Duration::from_secs(10))
        .await
        .unwrap();
    let seen: Vec<(String, String, Option<i32>, String)> = dead
        .iter()
        .map(|r| {
            let text = |k| r.headers().get_str(k).unwrap_or_default().to_owned();
            (
                String::from_utf8_lossy(r.value().unwrap()).into_owned(),
                text(h::ERROR_KIND),
                r.headers().get(h::ATTEMPTS).and_then(h::be_i32),
                text(h::EXCEPTION_FQCN),
            )
        })
        .collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        (&seen[0].0[..], &seen[0].1[..], seen[0].2, &seen[0].3[..]),
        ("twelve", "Retryable", Some(3), "anyhow::Error"),
        "anyhow: retried, then dead-lettered"
    );
    assert_eq!(
        (&seen[1].0[..], &seen[1].1[..], seen[1].2),
        ("json:{", "Decode", Some(1)),
        "serde_json: dead-lettered at once"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_trip_time_delays_every_answer_of_the_broker() {
    let (kafka, topic) = &embedded_with_topic("faults.rtt", 1);
    let template = kafka.template().unwrap();
    send(&template, topic, 0..1).await; // connections and metadata are warm
    let faults = kafka.faults().unwrap();
    faults.round_trip_time(Duration::from_millis(400)).unwrap();
    let slow = std::time::Instant::now();
    send(&template, topic, 1..2).await;
    let slow = slow.elapsed();
    faults.round_trip_time(Duration::ZERO).unwrap();
    send(&template, topic, 2..3).await; // the last delayed answer drains
    let fast = std::time::Instant::now();
    send(&template, topic, 3..4).await;
    let fast = fast.elapsed();
    assert!(
        slow >= Duration::from_millis(400),
        "a send took {slow:?} at 400 ms round trip"
    );
    assert!(
        fast < Duration::from_millis(200),
        "a send took {fast:?} without the delay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_partition_counts_as_consumed_to_its_log_end() {
    // Three records, all on partition 1: partition 0 never gets a record,
    // so the group never commits there.
    let (kafka, topic, app, handled, template) = recorder("faults.empty", 2, "one-sided").await;
    for i in 0..3 {
        template
            .send(
                ProducerRecord::keyed(&topic, format!("k{i}"))
                    .value(format!("v{i}"))
                    .partition(1),
            )
            .await
            .unwrap();
    }
    let b = kafka.bootstrap_servers().to_owned();
    let end =
        testing::wait_committed_to_log_end(&b, "one-sided", &topic, 2, Duration::from_secs(30))
            .await;
    assert_eq!(end, vec![0, 3]);
    assert_eq!(handled.all().len(), 3);
    app.shutdown().await;
}
