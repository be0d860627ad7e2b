//! Record filters (Spring's `RecordFilterStrategy`): records the filter
//! rejects never reach the handler, are committed as if handled and are
//! counted, in every listener form (macro, record, key-ordered, batch,
//! manual acks).

mod support;

use std::sync::Arc;
use std::time::Duration;

use kafka_listener::prelude::*;
use kafka_listener::Ordering;
use support::*;

/// Keeps the records whose `seq` is even; a record that is not JSON is
/// kept (the handler's extractor then deals with it).
fn even(record: &ConsumerRecord) -> bool {
    serde_json::from_slice::<serde_json::Value>(record.value().map_or(&[][..], |v| &v[..]))
        .ok()
        .and_then(|v| v["seq"].as_u64())
        .is_none_or(|seq| seq % 2 == 0)
}

async fn record_listener(msg: Json<Msg>, meta: RecordMeta, seen: State<Seen>) {
    seen.push(meta.partition, meta.offset, msg.seq);
}

async fn manual_listener(msg: Json<Msg>, meta: RecordMeta, ack: Acknowledgment, seen: State<Seen>) {
    seen.push(meta.partition, meta.offset, msg.seq);
    ack.acknowledge();
}

#[kafka_listener(topics = ["f.macro"], filter = even)]
async fn filtered_by_macro(msg: Json<Msg>, meta: RecordMeta, seen: State<Seen>) {
    seen.push(meta.partition, meta.offset, msg.seq);
}

/// The seqs seen, sorted.
fn seqs(seen: &Seen) -> Vec<u64> {
    let mut s: Vec<u64> = seen.snapshot().into_iter().map(|(_, _, s)| s).collect();
    s.sort_unstable();
    s
}

/// Waits until `group` has committed `expected` on `topic`'s partitions.
async fn wait_committed(bootstrap: &str, group: &str, topic: &str, expected: &[i64]) -> Vec<i64> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = committed(bootstrap, group, topic, expected.len() as i32);
        if now == expected || std::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_records_skip_the_handler_and_are_committed_in_every_form() {
    init_tracing();
    let snapshotter = install_debug_recorder();
    let evens: Vec<u64> = (0..40).filter(|s| s % 2 == 0).collect();

    // (label, ordering, manual ack): each a record listener of its own
    // topic and group, 40 records over 2 partitions and 8 keys.
    let forms = [
        ("record", Ordering::Partition, false),
        ("keyed", Ordering::Key, false),
        ("manual", Ordering::Partition, true),
        ("manual-keyed", Ordering::Key, true),
    ];
    for (label, ordering, manual) in forms {
        let topic = &unique(&format!("f.{label}"));
        let group = unique(&format!("filter-{label}"));
        let broker = broker(topic, 2);
        let seen = Seen::default();
        let mut spec = ListenerSpec::new(format!("filter-{label}"))
            .group_id(group.clone())
            .topics([topic])
            .ordering(ordering)
            .filter(even);
        if ordering == Ordering::Key {
            spec = spec.parallelism(8);
        }
        spec = if manual {
            spec.ack_mode(AckMode::Manual).handler(manual_listener)
        } else {
            spec.handler(record_listener)
        };
        let app = listener_app(&broker, spec, seen.clone()).await;
        let sent = produce(&app.template(), topic, 0..40, 8).await;
        let ends: Vec<i64> = (0..2)
            .map(|p| sent.get(&p).map_or(0, |v| v.len() as i64))
            .collect();
        let running = app.start().await.unwrap();
        seen.wait_for(Duration::from_secs(30), |n| n >= evens.len())
            .await;
        let committed = wait_committed(broker.bootstrap_servers(), &group, topic, &ends).await;
        running.shutdown().await;
        assert_eq!(seqs(&seen), evens, "{label}: only the even seqs, once each");
        assert_eq!(
            committed, ends,
            "{label}: the rejected records are committed too"
        );
        assert_eq!(
            counter_sum(
                &snapshotter,
                "kafka_listener_records_filtered_total",
                &[("listener", &format!("filter-{label}"))]
            ),
            20,
            "{label}: each rejected record counted once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_listener_gets_its_batches_without_the_rejected_records() {
    init_tracing();
    let topic = &unique("f.batch");
    let group = unique("filter-batch");
    let broker = broker(topic, 1);
    let seen = Batches::default();
    let app = listener_app(
        &broker,
        ListenerSpec::new("filter-batch")
            .group_id(group.clone())
            .topics([topic])
            .max_batch(7)
            .filter(even)
            .batch_handler(batch_listener),
        seen.clone(),
    )
    .await;
    produce(&app.template(), topic, 0..40, 1).await;
    let running = app.start().await.unwrap();
    let committed = wait_committed(broker.bootstrap_servers(), &group, topic, &[40]).await;
    running.shutdown().await;
    let batches = seen.0.lock().unwrap().clone();
    let flat: Vec<u64> = batches.iter().flatten().copied().collect();
    assert_eq!(
        flat,
        (0..40).filter(|s| s % 2 == 0).collect::<Vec<_>>(),
        "the even seqs in offset order: {batches:?}"
    );
    assert!(
        batches.iter().all(|b| !b.is_empty() && b.len() <= 7),
        "no empty batch, none past max_batch: {batches:?}"
    );
    assert_eq!(committed, vec![40]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_macro_filter_key_names_the_function() {
    init_tracing();
    // The topic is fixed by the attribute: on a real broker it is deleted
    // and created again, and the group renamed.
    let topic = "f.macro";
    let broker = Arc::new(TestBroker::start());
    broker.create_fresh_topic(topic, 1).unwrap();
    let group = unique("filter-macro");
    let seen = Seen::default();
    let app = KafkaApp::builder()
        .config(config(&broker))
        .only_listeners(["filtered_by_macro"])
        .customize_listener("filtered_by_macro", {
            let group = group.clone();
            move |l| l.group_id(group)
        })
        .build()
        .await
        .unwrap()
        .state(seen.clone());
    produce(&app.template(), topic, 0..10, 1).await;
    let running = app.start().await.unwrap();
    let committed = wait_committed(broker.bootstrap_servers(), &group, topic, &[10]).await;
    running.shutdown().await;
    assert_eq!(seqs(&seen), vec![0, 2, 4, 6, 8]);
    assert_eq!(committed, vec![10]);
}
