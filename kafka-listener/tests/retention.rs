//! Records lost to retention are noticed: the embedded broker keeps at most
//! 5 MiB per partition, and a consumer that falls further behind would
//! otherwise skip records without a word (librdkafka resets to the earliest
//! offset silently).

mod support;

use std::time::Duration;

use kafka_listener::prelude::*;
use support::*;

async fn sink(meta: RecordMeta, seen: State<Seen>) {
    seen.push(meta.partition, meta.offset, 0);
}

fn gaps(snapshotter: &metrics_util::debugging::Snapshotter) -> u64 {
    counter_sum(snapshotter, "kafka_listener_offset_gaps_total", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_dropped_by_retention_before_they_were_consumed_are_counted() {
    init_tracing();
    let snapshotter = install_debug_recorder();
    const TOPIC: &str = "r.retention";
    // The embedded broker's 5 MiB per partition is the retention under
    // test (a real broker deletes whole segments every 5 minutes).
    let broker = embedded_broker(TOPIC, 1);
    let make = |seen: Seen| {
        let broker = broker.clone();
        async move {
            KafkaApp::builder()
                .config(config(&broker))
                .without_discovered_listeners()
                .listener(ListenerSpec::new("retention").topics([TOPIC]).handler(sink))
                .build()
                .await
                .unwrap()
                .state(seen)
        }
    };
    let seen = Seen::default();
    let app = make(seen.clone()).await;
    let template = app.template();
    produce(&template, TOPIC, 0..10, 1).await;
    let running = app.start().await.unwrap();
    assert_eq!(
        seen.wait_for(Duration::from_secs(30), |n| n >= 10).await,
        10
    );
    running.shutdown().await;
    assert_eq!(
        committed(broker.bootstrap_servers(), "retention", TOPIC, 1),
        vec![10]
    );
    assert_eq!(gaps(&snapshotter), 0);

    // While the listener is down, 8 MiB more arrive: the broker keeps 5 MiB.
    let big = "x".repeat(100 * 1024);
    for i in 0..80 {
        template
            .send(ProducerRecord::keyed(TOPIC, "k").value(format!("{i}{big}")))
            .await
            .unwrap();
    }
    let again = Seen::default();
    let running = make(again.clone()).await.start().await.unwrap();
    again.wait_for(Duration::from_secs(30), |n| n >= 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.shutdown().await;
    let first = again.snapshot()[0].1;
    assert!(first > 10, "the broker dropped offsets 10..{first}");
    assert_eq!(
        gaps(&snapshotter),
        (first - 10) as u64,
        "every lost offset is counted"
    );
}
