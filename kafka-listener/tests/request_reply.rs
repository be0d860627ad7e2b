//! Request/reply (Spring's `ReplyingKafkaTemplate` and `@SendTo`) on the
//! test broker (embedded, or real with `KAFKA_TEST_BOOTSTRAP_SERVERS`):
//! our template against our `reply = true` and `send_to` listeners, the
//! headers on the wire, the reply partition, timeouts and dropped replies.
//! Spring itself is the peer in `spring_reply_interop.rs`.

mod support;

use std::time::Duration;

use kafka_listener::prelude::*;
use kafka_listener::record::headers::{CORRELATION_ID, REPLY_PARTITION, REPLY_TOPIC};
use kafka_listener::{Error, ReplyingKafkaTemplate, RunningApp};
use serde::{Deserialize, Serialize};
use support::*;

#[derive(Debug, Deserialize)]
struct Ask {
    n: u64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Answer {
    echo: u64,
    by: String,
}

/// Answers on the request's reply topic (`reply = true`).
async fn answer(ask: Json<Ask>) -> Result<Json<Answer>, ListenerError> {
    Ok(Json(Answer {
        echo: ask.n,
        by: "rust".into(),
    }))
}

/// Answers with a `Reply` (a header of its own), nothing for odd `n`.
async fn audit(ask: Json<Ask>) -> Option<Reply> {
    (ask.n % 2 == 0).then(|| {
        Reply::json(&serde_json::json!({"audited": ask.n}))
            .expect("json")
            .header("audit", "yes")
    })
}

/// Never answers in time.
async fn slow(ask: Json<Ask>) -> Json<u64> {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Json(ask.n)
}

async fn replying(
    broker: &TestBroker,
    app: &RunningApp,
    reply_topic: &str,
) -> ReplyingKafkaTemplate {
    ReplyingKafkaTemplate::builder(app.template(), reply_topic)
        .kafka_config(&config(broker), broker.bootstrap_servers())
        .start()
        .await
        .expect("replying template")
}

/// `kafka_listener_replies_dropped_total` of one reply topic by reason,
/// added up over snapshots.
#[derive(Debug, Default)]
struct Dropped {
    late: u64,
    unknown: u64,
    no_correlation_id: u64,
}

impl Dropped {
    /// Adds snapshots up until `done` or 30 s.
    async fn wait(
        &mut self,
        snapshotter: &metrics_util::debugging::Snapshotter,
        reply_topic: &str,
        done: impl Fn(&Self) -> bool,
    ) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            for (key, _, _, value) in snapshotter.snapshot().into_vec() {
                let k = key.key();
                let label = |name: &str| {
                    k.labels()
                        .find(|l| l.key() == name)
                        .map(|l| l.value().to_owned())
                };
                if k.name() != "kafka_listener_replies_dropped_total"
                    || label("reply_topic").as_deref() != Some(reply_topic)
                {
                    continue;
                }
                let metrics_util::debugging::DebugValue::Counter(n) = value else {
                    continue;
                };
                match label("reason").as_deref() {
                    Some("late") => self.late += n,
                    Some("unknown") => self.unknown += n,
                    Some("no_correlation_id") => self.no_correlation_id += n,
                    other => panic!("unexpected reason {other:?}"),
                }
            }
            if done(self) || std::time::Instant::now() > deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn request(topic: &str, n: u64) -> ProducerRecord {
    ProducerRecord::keyed(topic, format!("k{n}"))
        .json(&serde_json::json!({ "n": n }))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_true_listener_answers_each_request_with_its_correlation_id() {
    init_tracing();
    let requests = &unique("rr.requests");
    let replies = &unique("rr.replies");
    let broker = broker(requests, 2);
    broker.create_topic(replies, 3).unwrap();
    let spec = ListenerSpec::new("answerer")
        .group_id(unique("answerer"))
        .topics([requests])
        .reply_to_request()
        .handler(answer);
    let app = listener_app(&broker, spec, ()).await.start().await.unwrap();
    let template = replying(&broker, &app, replies).await;

    let calls = (0..20u64).map(|n| {
        let template = template.clone();
        async move {
            let reply = template
                .send_and_receive(request(requests, n), Duration::from_secs(30))
                .await
                .expect("a reply");
            (n, reply)
        }
    });
    for (n, reply) in futures::future::join_all(calls).await {
        let answer: Answer = serde_json::from_slice(reply.value().unwrap()).unwrap();
        assert_eq!(
            answer,
            Answer {
                echo: n,
                by: "rust".into()
            }
        );
        assert_eq!(reply.topic(), replies.as_str());
        assert_eq!(
            reply.key().map(|k| &k[..]),
            Some(format!("k{n}").as_bytes()),
            "the reply keeps the request's key, as Spring's @SendTo does"
        );
        let id = reply.headers().get(CORRELATION_ID).expect("correlation id");
        assert_eq!(id.len(), 16, "Spring's 16-byte UUID");
    }
    assert_eq!(template.pending(), 0);

    // The request on the wire carries Spring's headers.
    let sent = read_topic_async(
        broker.bootstrap_servers(),
        requests,
        2,
        20,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(sent.len(), 20);
    for m in &sent {
        assert_eq!(header(m, REPLY_TOPIC).as_deref(), Some(replies.as_bytes()));
        assert_eq!(header(m, CORRELATION_ID).map(|v| v.len()), Some(16));
        assert_eq!(header(m, REPLY_PARTITION), None, "no partition asked for");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_goes_to_the_partition_the_requester_reads() {
    init_tracing();
    let requests = &unique("rr.part.requests");
    let replies = &unique("rr.part.replies");
    let broker = broker(requests, 1);
    broker.create_topic(replies, 4).unwrap();
    let spec = ListenerSpec::new("part-answerer")
        .group_id(unique("part-answerer"))
        .topics([requests])
        .reply_to_request()
        .handler(answer);
    let app = listener_app(&broker, spec, ()).await.start().await.unwrap();
    let template = ReplyingKafkaTemplate::builder(app.template(), replies.as_str())
        .kafka_config(&config(&broker), broker.bootstrap_servers())
        .reply_partition(3)
        .start()
        .await
        .unwrap();
    for n in 0..5 {
        let reply = template
            .send_and_receive(request(requests, n), Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(reply.partition(), 3, "kafka_replyPartition is honoured");
    }
    let sent = read_topic_async(
        broker.bootstrap_servers(),
        requests,
        1,
        5,
        Duration::from_secs(20),
    )
    .await;
    for m in &sent {
        assert_eq!(
            header(m, REPLY_PARTITION),
            Some(3i32.to_be_bytes().to_vec()),
            "a 4-byte big-endian int"
        );
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_sends_to_a_fixed_topic_and_none_sends_nothing() {
    init_tracing();
    let orders = &unique("rr.orders");
    let audit_topic = &unique("rr.audit");
    let broker = broker(orders, 1);
    broker.create_topic(audit_topic, 1).unwrap();
    let spec = ListenerSpec::new("auditor")
        .group_id(unique("auditor"))
        .topics([orders])
        .send_to(audit_topic.clone())
        .handler(audit);
    let app = listener_app(&broker, spec, ()).await.start().await.unwrap();
    let template = app.template();
    for n in 0..6u64 {
        let record = request(orders, n).header(CORRELATION_ID, vec![n as u8; 3]);
        template.send(record).await.unwrap();
    }
    let out = read_topic_async(
        broker.bootstrap_servers(),
        audit_topic,
        1,
        3,
        Duration::from_secs(30),
    )
    .await;
    let mut seen: Vec<(u64, Vec<u8>)> = out
        .iter()
        .map(|m| {
            use rdkafka::Message as _;
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            assert_eq!(header(m, "audit").as_deref(), Some(&b"yes"[..]));
            (
                v["audited"].as_u64().unwrap(),
                header(m, CORRELATION_ID).unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![(0, vec![0; 3]), (2, vec![2; 3]), (4, vec![4; 3])],
        "even requests answered on the fixed topic, correlation id copied as it was"
    );
    // No more: the odd ones returned None.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = read_topic_async(
        broker.bootstrap_servers(),
        audit_topic,
        1,
        4,
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(again.len(), 3, "None sends no reply");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_an_error_and_the_late_reply_is_dropped_and_counted() {
    init_tracing();
    let snapshotter = install_debug_recorder();
    let requests = &unique("rr.slow.requests");
    let replies = &unique("rr.slow.replies");
    let broker = broker(requests, 1);
    broker.create_topic(replies, 1).unwrap();
    let spec = ListenerSpec::new("slow")
        .group_id(unique("slow"))
        .topics([requests])
        .reply_to_request()
        .handler(slow);
    let app = listener_app(&broker, spec, ()).await.start().await.unwrap();
    let template = replying(&broker, &app, replies).await;
    let err = template
        .send_and_receive(request(requests, 7), Duration::from_millis(300))
        .await
        .unwrap_err();
    match &err {
        Error::ReplyTimeout {
            topic,
            reply_topic,
            timeout,
        } => {
            assert_eq!(topic, requests);
            assert_eq!(reply_topic, replies);
            assert_eq!(*timeout, Duration::from_millis(300));
        }
        other => panic!("expected a ReplyTimeout, got {other}"),
    }
    assert_eq!(template.pending(), 0, "the timed-out request is forgotten");
    // The debugging recorder's snapshots drain its counters: add them up.
    let mut dropped = Dropped::default();
    dropped.wait(&snapshotter, replies, |d| d.late >= 1).await;
    assert_eq!(dropped.late, 1, "the late reply is dropped and counted");

    // A reply to nobody's request: unknown; one without a correlation id.
    let t = app.template();
    t.send(
        ProducerRecord::keyless(replies.as_str())
            .value("x")
            .header(CORRELATION_ID, vec![9u8; 16]),
    )
    .await
    .unwrap();
    t.send(ProducerRecord::keyless(replies.as_str()).value("y"))
        .await
        .unwrap();
    dropped
        .wait(&snapshotter, replies, |d| {
            d.unknown >= 1 && d.no_correlation_id >= 1
        })
        .await;
    assert_eq!(
        (dropped.late, dropped.unknown, dropped.no_correlation_id),
        (1, 1, 1)
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_reply_topic_fails_the_record() {
    init_tracing();
    let requests = &unique("rr.noreply.requests");
    let broker = broker(requests, 1);
    let dlt = format!("{requests}-dlt");
    broker.create_topic(&dlt, 1).unwrap();
    let spec = ListenerSpec::new("no-reply-topic")
        .group_id(unique("no-reply-topic"))
        .topics([requests])
        .reply_to_request()
        .dead_letter(DeadLetter::suffixed())
        .handler(answer);
    let app = listener_app(&broker, spec, ()).await.start().await.unwrap();
    app.template().send(request(requests, 1)).await.unwrap();
    let dead = read_topic_async(
        broker.bootstrap_servers(),
        &dlt,
        1,
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        dead.len(),
        1,
        "the request without kafka_replyTopic is dead-lettered"
    );
    let message = header(&dead[0], "kafka_dlt-exception-message").unwrap();
    let message = String::from_utf8_lossy(&message);
    assert!(message.contains("kafka_replyTopic"), "{message}");
    assert_eq!(
        header(&dead[0], "kafka_listener-dlt-error-kind").as_deref(),
        Some(&b"Fatal"[..]),
        "not retried"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_reply_value_without_a_destination_and_the_reverse_refuse_to_start() {
    let topic = &unique("rr.invalid");
    let broker = broker(topic, 1);
    let no_destination = ListenerSpec::new("no-destination")
        .topics([topic])
        .handler(answer);
    let err = listener_app(&broker, no_destination, ())
        .await
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no reply destination"), "{err}");

    async fn consume_only(_ask: Json<Ask>) {}
    let no_value = ListenerSpec::new("no-value")
        .topics([topic])
        .send_to("x")
        .handler(consume_only);
    let err = listener_app(&broker, no_value, ())
        .await
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("returns no reply"), "{err}");

    async fn batch_reply(_asks: Vec<Json<Ask>>) -> Json<u8> {
        Json(1)
    }
    let batch = ListenerSpec::new("batch-reply")
        .topics([topic])
        .reply_to_request()
        .batch_handler(batch_reply);
    let err = listener_app(&broker, batch, ())
        .await
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("batch listener cannot return a reply"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_reply_topic_is_a_start_up_error() {
    let topic = &unique("rr.exists");
    let broker = broker(topic, 1);
    let app = listener_app(
        &broker,
        ListenerSpec::new("x")
            .topics([topic])
            .handler(|_: String| async {}),
        (),
    )
    .await
    .start()
    .await
    .unwrap();
    let err = ReplyingKafkaTemplate::builder(app.template(), unique("rr.no-such-topic"))
        .bootstrap_servers(broker.bootstrap_servers())
        .metadata_timeout(Duration::from_secs(5))
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
    let err = ReplyingKafkaTemplate::builder(app.template(), topic.as_str())
        .bootstrap_servers(broker.bootstrap_servers())
        .reply_partition(5)
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no partition 5"), "{err}");
    app.shutdown().await;
}

/// Answers with Avro, encoded under the reply topic's value subject.
#[cfg(feature = "avro")]
async fn avro_answer(ask: Json<Ask>) -> Avro<support::avro::OrderV1> {
    Avro(support::avro::OrderV1 {
        id: format!("o{}", ask.n),
        amount_cents: ask.n as i64 * 100,
    })
}

#[cfg(feature = "avro")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_avro_reply_is_encoded_with_the_apps_codec_under_the_reply_topic() {
    init_tracing();
    let requests = &unique("rr.avro.requests");
    let replies = &unique("rr.avro.replies");
    let broker = broker(requests, 1);
    broker.create_topic(replies, 1).unwrap();
    let spec = ListenerSpec::new("avro-answerer")
        .group_id(unique("avro-answerer"))
        .topics([requests])
        .reply_to_request()
        .handler(avro_answer);
    let app = support::avro::app(&broker, config(&broker), vec![spec]).await;
    let codec = app.avro_codec().expect("the app's codec");
    let app = app.start().await.unwrap();
    let template = replying(&broker, &app, replies).await;
    for n in 1..4u64 {
        let reply = template
            .send_and_receive(request(requests, n), Duration::from_secs(30))
            .await
            .unwrap();
        let bytes = reply.value().expect("a value");
        assert_eq!(bytes[0], 0, "the Confluent wire format's magic byte");
        let order: support::avro::OrderV1 = codec.decode(bytes).await.unwrap();
        assert_eq!(
            order,
            support::avro::OrderV1 {
                id: format!("o{n}"),
                amount_cents: n as i64 * 100
            }
        );
    }
    let subjects = codec.client().subjects().await.unwrap();
    assert!(
        subjects.contains(&format!("{replies}-value")),
        "registered under the reply topic: {subjects:?}"
    );
    app.shutdown().await;
}
