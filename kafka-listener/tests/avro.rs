//! Avro with the Schema Registry, end to end on the embedded broker and the
//! embedded registry: round trips of keys and values, schema evolution both
//! ways, an incompatible change refused, poison pills dead-lettered with
//! their original bytes, a registry outage retried, batch and macro
//! listeners. Registry-level tests are in `avro_registry.rs`.

#![cfg(feature = "avro")]

mod support;

use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use kafka_listener::avro::{wire, AvroCodec, SchemaRegistryError};
use kafka_listener::error::BoxError;
use kafka_listener::prelude::*;
use kafka_listener::ErrorKind;
use kafka_listener::ListenerInfo;
use kafka_listener::Recoverer;
use support::avro::*;
use support::*;

async fn key_value_listener(
    key: AvroKey<OrderKey>,
    order: Avro<OrderV1>,
    got: State<Got<(OrderKey, OrderV1)>>,
) {
    got.push((key.0, order.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_keys_and_values_round_trip_through_the_embedded_registry() {
    init_tracing();
    let topic = &unique("avro.roundtrip");
    let broker = broker(topic, 3);
    let got = Got::<(OrderKey, OrderV1)>::default();
    let app = app(
        &broker,
        config(&broker),
        vec![ListenerSpec::new("rt")
            .group_id(unique("rt"))
            .topics([topic])
            .handler(key_value_listener)],
    )
    .await
    .state(got.clone());
    let registry = app
        .embedded_schema_registry()
        .expect("embedded registry")
        .clone();
    assert!(
        registry.url().starts_with("http://127.0.0.1:"),
        "{}",
        registry.url()
    );
    let template = app.template();
    let running = app.start().await.unwrap();
    let mut sent = Vec::new();
    for i in 0..20 {
        let key = OrderKey {
            id: format!("o-{i}"),
        };
        let order = OrderV1 {
            id: format!("o-{i}"),
            amount_cents: 100 * i,
        };
        template
            .send_avro_key_value(topic, &key, &order)
            .await
            .unwrap();
        sent.push((key, order));
    }
    let mut seen = got.wait_for(20, Duration::from_secs(30)).await;
    running.shutdown().await;
    seen.sort_by_key(|(_, o)| o.amount_cents);
    assert_eq!(seen, sent);

    // Both subjects registered under TopicNameStrategy, one version each,
    // and the wire format carries the registered ids.
    let codec = AvroCodec::from_config(&KafkaConfig::new(), registry.url()).unwrap();
    let mut subjects = codec.client().subjects().await.unwrap();
    subjects.sort();
    assert_eq!(subjects, [format!("{topic}-key"), format!("{topic}-value")]);
    let value_id = codec
        .client()
        .latest(&format!("{topic}-value"))
        .await
        .unwrap()
        .id;
    let bytes = codec
        .encode(topic, kafka_listener::avro::RecordPart::Value, &sent[0].1)
        .await
        .unwrap();
    assert_eq!(wire::decode(&bytes).unwrap().0, value_id);
    assert_eq!(codec.decode::<OrderV1>(&bytes).await.unwrap(), sent[0].1);
    // Each writer schema was fetched once by the listener, not per record.
    assert!(
        registry.schema_id_lookups() <= 3,
        "{}",
        registry.schema_id_lookups()
    );
}

async fn v2_listener(order: Avro<OrderV2>, got: State<Got<OrderV2>>) {
    got.push(order.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_an_older_and_a_newer_writer_schema_resolve_to_the_reader_type() {
    init_tracing();
    let topic = &unique("avro.evolution");
    let broker = broker(topic, 1);
    let (old, new) = (Got::<OrderV1>::default(), Got::<OrderV2>::default());
    let app = app(
        &broker,
        config(&broker),
        vec![
            ListenerSpec::new("old-reader")
                .group_id(unique("old-reader"))
                .topics([topic])
                .handler(v1_listener),
            ListenerSpec::new("new-reader")
                .group_id(unique("new-reader"))
                .topics([topic])
                .handler(v2_listener),
        ],
    )
    .await
    .state(old.clone())
    .state(new.clone());
    let template = app.template();
    // Written with version 1, then with version 2 (a field added with a
    // default: accepted by the registry's BACKWARD check).
    template
        .send_avro(
            topic,
            "a",
            &OrderV1 {
                id: "a".into(),
                amount_cents: 1,
            },
        )
        .await
        .unwrap();
    template
        .send_avro(
            topic,
            "b",
            &OrderV2 {
                id: "b".into(),
                amount_cents: 2,
                currency: "USD".into(),
            },
        )
        .await
        .unwrap();
    let running = app.start().await.unwrap();
    let old = old.wait_for(2, Duration::from_secs(30)).await;
    let new = new.wait_for(2, Duration::from_secs(30)).await;
    // A newer writer read as the older type: the added field is dropped.
    assert_eq!(
        old,
        [
            OrderV1 {
                id: "a".into(),
                amount_cents: 1
            },
            OrderV1 {
                id: "b".into(),
                amount_cents: 2
            },
        ]
    );
    // An older writer read as the newer type: the default fills the field.
    assert_eq!(
        new,
        [
            OrderV2 {
                id: "a".into(),
                amount_cents: 1,
                currency: "EUR".into()
            },
            OrderV2 {
                id: "b".into(),
                amount_cents: 2,
                currency: "USD".into()
            },
        ]
    );

    // A field without a default cannot be read from version 2 records: the
    // registry refuses it and the send fails with a clear error.
    let err = running
        .template()
        .send_avro(
            topic,
            "c",
            &OrderV3 {
                id: "c".into(),
                amount_cents: 3,
                warehouse: "w".into(),
            },
        )
        .await
        .unwrap_err();
    running.shutdown().await;
    match err.registry_error() {
        Some(SchemaRegistryError::Incompatible { subject, message }) => {
            assert_eq!(subject, &format!("{topic}-value"));
            assert!(message.contains("incompatible"), "{message}");
            assert!(message.contains("warehouse"), "names the field: {message}");
        }
        other => panic!("expected Incompatible, got {other:?}"),
    }
    assert!(err.to_string().contains("incompatible"), "{err}");
}

/// Publishes failed records to `<topic>-dlt` with their original key, value
/// and headers, and remembers the error kinds and attempts.
#[derive(Debug, Clone)]
struct DltRecoverer {
    template: KafkaTemplate,
    failures: Got<(ErrorKind, u32, String)>,
}

impl Recoverer for DltRecoverer {
    fn recover<'a>(
        &'a self,
        record: &'a ConsumerRecord,
        error: &'a ListenerError,
        attempts: u32,
        _listener: &'a ListenerInfo,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            self.failures.push((error.kind(), attempts, error.chain()));
            let mut out = ProducerRecord::keyless(format!("{}-dlt", record.topic()));
            if let Some(k) = record.key() {
                out = ProducerRecord::keyed(format!("{}-dlt", record.topic()), k.clone());
            }
            if let Some(v) = record.value() {
                out = out.value(v.clone());
            }
            self.template.send(out).await?;
            Ok(())
        })
    }
}

async fn dlt_listener(value: Vec<u8>, got: State<Got<Vec<u8>>>) {
    got.push(value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_unknown_ids_and_bad_bodies_are_poison_pills_dead_lettered_as_they_were() {
    init_tracing();
    let topic = &unique("avro.poison");
    let broker = broker(topic, 1);
    let dlt = &format!("{topic}-dlt");
    broker.create_topic(dlt, 1).unwrap();
    let good = Got::<OrderV1>::default();
    let dead = Got::<Vec<u8>>::default();
    let failures = Got::<(ErrorKind, u32, String)>::default();
    // The recoverer needs a template before the app exists: a plain one.
    let dlt_template = KafkaTemplate::new(
        rdkafka::ClientConfig::new().set("bootstrap.servers", broker.bootstrap_servers()),
    )
    .unwrap();
    let app = app(
        &broker,
        config(&broker),
        vec![
            ListenerSpec::new("poison")
                .group_id(unique("poison"))
                .topics([topic])
                .retry(RetryPolicy::fixed(3, Duration::from_millis(50)))
                .recoverer(DltRecoverer {
                    template: dlt_template,
                    failures: failures.clone(),
                })
                .handler(v1_listener),
            ListenerSpec::new("dlt")
                .group_id(unique("dlt"))
                .topics([dlt])
                .handler(dlt_listener),
        ],
    )
    .await
    .state(good.clone())
    .state(dead.clone());
    let template = app.template();
    // A good record registers the schema; take its framing for the bad body.
    let ok = OrderV1 {
        id: "ok".into(),
        amount_cents: 7,
    };
    let codec = app.avro_codec().unwrap();
    let framed = codec
        .encode(topic, kafka_listener::avro::RecordPart::Value, &ok)
        .await
        .unwrap();
    let (id, _) = wire::decode(&framed).unwrap();
    let json = br#"{"id":"j","amount_cents":1}"#.to_vec();
    let unknown_id = wire::encode(9999, &framed[wire::HEADER_LEN..]);
    // A string of length 50 (zig-zag varint 100) with 2 bytes after it.
    let bad_body = wire::encode(id, &[100, b'x', b'y']);
    let poison = [json.clone(), unknown_id.clone(), bad_body.clone()];
    for (i, bytes) in poison.iter().enumerate() {
        template
            .send(ProducerRecord::keyed(topic, format!("p{i}")).value(bytes.clone()))
            .await
            .unwrap();
    }
    template
        .send(ProducerRecord::keyed(topic, "ok").value(framed.clone()))
        .await
        .unwrap();
    let running = app.start().await.unwrap();

    let good = good.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(good, [ok], "the partition moved past the poison pills");
    let dead = dead.wait_for(3, Duration::from_secs(30)).await;
    running.shutdown().await;
    assert_eq!(
        dead,
        poison.to_vec(),
        "dead-lettered with their original bytes, in order"
    );
    let failures = failures.all();
    assert_eq!(failures.len(), 3, "{failures:?}");
    for (kind, attempts, chain) in &failures {
        assert_eq!(*kind, ErrorKind::Decode, "{chain}");
        assert_eq!(*attempts, 1, "poison pills are not retried: {chain}");
    }
    assert!(failures[0].2.contains("magic byte"), "{}", failures[0].2);
    assert!(
        failures[1].2.contains("unknown schema id 9999"),
        "{}",
        failures[1].2
    );
    assert!(
        failures[2].2.contains(&format!("schema id {id}")),
        "{}",
        failures[2].2
    );
}

async fn counting_listener(
    order: Avro<OrderV1>,
    meta: RecordMeta,
    got: State<Got<(OrderV1, u32)>>,
) {
    got.push((order.0, meta.delivery_attempt));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_cannot_be_reached_is_retried_until_it_answers() {
    init_tracing();
    let topic = &unique("avro.outage");
    let broker = broker(topic, 1);
    let got = Got::<(OrderV1, u32)>::default();
    let failures = Got::<(ErrorKind, u32, String)>::default();
    let dlt_template = KafkaTemplate::new(
        rdkafka::ClientConfig::new().set("bootstrap.servers", broker.bootstrap_servers()),
    )
    .unwrap();
    let app = app(
        &broker,
        config(&broker),
        vec![ListenerSpec::new("outage")
            .group_id(unique("outage"))
            .topics([topic])
            .retry(RetryPolicy::fixed(1000, Duration::from_millis(100)))
            .recoverer(DltRecoverer {
                template: dlt_template,
                failures: failures.clone(),
            })
            .handler(counting_listener)],
    )
    .await
    .state(got.clone());
    let registry = app.embedded_schema_registry().unwrap().clone();
    let order = OrderV1 {
        id: "x".into(),
        amount_cents: 5,
    };
    app.template().send_avro(topic, "x", &order).await.unwrap();
    registry.stop().await;
    let codec = app.avro_codec().unwrap();
    let before = codec.client().requests_sent();
    let running = app.start().await.unwrap();
    // Wait for three failed fetches of the writer schema (three attempts).
    let start = std::time::Instant::now();
    while codec.client().requests_sent() < before + 3 && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        codec.client().requests_sent() >= before + 3,
        "the listener tried"
    );
    assert!(got.all().is_empty(), "no schema, no handler call");
    assert!(
        failures.all().is_empty(),
        "not dead-lettered: {:?}",
        failures.all()
    );
    registry.resume().await.unwrap();
    let seen = got.wait_for(1, Duration::from_secs(30)).await;
    running.shutdown().await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, order);
    assert!(seen[0].1 > 1, "handled on a retry (attempt {})", seen[0].1);
    assert!(failures.all().is_empty());
}

async fn batch_listener(orders: Vec<Avro<OrderV1>>, got: State<Got<OrderV1>>) {
    for o in orders {
        got.push(o.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_listeners_read_avro_records_written_with_several_schemas() {
    init_tracing();
    let topic = &unique("avro.batch");
    let broker = broker(topic, 1);
    let got = Got::<OrderV1>::default();
    let app = app(
        &broker,
        config(&broker),
        vec![ListenerSpec::new("batch")
            .group_id(unique("batch"))
            .topics([topic])
            .batch_handler(batch_listener)],
    )
    .await
    .state(got.clone());
    let template = app.template();
    for i in 0..50 {
        if i % 2 == 0 {
            template
                .send_avro(
                    topic,
                    "k",
                    &OrderV1 {
                        id: format!("{i}"),
                        amount_cents: i,
                    },
                )
                .await
                .unwrap();
        } else {
            let v2 = OrderV2 {
                id: format!("{i}"),
                amount_cents: i,
                currency: "EUR".into(),
            };
            template.send_avro(topic, "k", &v2).await.unwrap();
        }
    }
    let running = app.start().await.unwrap();
    let seen = got.wait_for(50, Duration::from_secs(30)).await;
    running.shutdown().await;
    let amounts: Vec<i64> = seen.iter().map(|o| o.amount_cents).collect();
    assert_eq!(amounts, (0..50).collect::<Vec<_>>());
}

/// What the `#[kafka_listener]` function below saw.
static MACRO_SEEN: Mutex<Vec<(OrderKey, OrderV2)>> = Mutex::new(Vec::new());

#[kafka_listener(topics = ["avro.macro"], id = "avro-macro")]
async fn macro_listener(AvroKey(key): AvroKey<OrderKey>, Avro(order): Avro<OrderV2>) {
    MACRO_SEEN.lock().unwrap().push((key, order));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_listener_functions_take_avro_arguments() {
    init_tracing();
    // The topic is fixed by the attribute: on a real broker it is deleted
    // and created again, and the group renamed.
    let topic = "avro.macro";
    let broker = TestBroker::start();
    broker.create_fresh_topic(topic, 1).unwrap();
    let app = support::avro::with_test_infra(KafkaApp::builder().config(config(&broker)), &broker)
        .await
        .only_listeners(["avro-macro"])
        .customize_listener("avro-macro", |l| l.group_id(unique("avro-macro")))
        .build()
        .await
        .unwrap();
    let key = OrderKey { id: "m".into() };
    let order = OrderV1 {
        id: "m".into(),
        amount_cents: 9,
    };
    app.template()
        .send_avro_key_value(topic, &key, &order)
        .await
        .unwrap();
    let running = app.start().await.unwrap();
    let start = std::time::Instant::now();
    while MACRO_SEEN.lock().unwrap().is_empty() && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown().await;
    let seen = MACRO_SEEN.lock().unwrap().clone();
    let want = OrderV2 {
        id: "m".into(),
        amount_cents: 9,
        currency: "EUR".into(),
    };
    assert_eq!(seen, [(key, want)]);
}

async fn dlt_record_listener(record: ConsumerRecord, got: State<Got<ConsumerRecord>>) {
    got.push(record);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_poison_pills_reach_the_frameworks_dead_letter_topic_with_their_bytes_and_reason() {
    init_tracing();
    let topic = &unique("avro.framework-dlt");
    let broker = broker(topic, 1);
    broker.create_topic(&format!("{topic}-dlt"), 1).unwrap();
    let good = Got::<OrderV1>::default();
    let dead = Got::<ConsumerRecord>::default();
    let app = app(
        &broker,
        config(&broker),
        vec![
            ListenerSpec::new("fw-poison")
                .group_id(unique("fw-poison"))
                .topics([topic])
                .dead_letter(kafka_listener::DeadLetter::suffixed())
                .handler(v1_listener),
            ListenerSpec::new("fw-dlt")
                .group_id(unique("fw-dlt"))
                .topics([format!("{topic}-dlt")])
                .handler(dlt_record_listener),
        ],
    )
    .await
    .state(good.clone())
    .state(dead.clone());
    let template = app.template();
    let ok = OrderV1 {
        id: "ok".into(),
        amount_cents: 1,
    };
    let codec = app.avro_codec().unwrap();
    let framed = codec
        .encode(topic, kafka_listener::avro::RecordPart::Value, &ok)
        .await
        .unwrap();
    let poison = [
        br#"{"id":"json"}"#.to_vec(),
        wire::encode(77_777, &framed[wire::HEADER_LEN..]),
    ];
    for bytes in &poison {
        template
            .send(ProducerRecord::keyed(topic, "p").value(bytes.clone()))
            .await
            .unwrap();
    }
    template
        .send(ProducerRecord::keyed(topic, "ok").value(framed))
        .await
        .unwrap();
    let running = app.start().await.unwrap();
    assert_eq!(good.wait_for(1, Duration::from_secs(30)).await, [ok]);
    let dead = dead.wait_for(2, Duration::from_secs(30)).await;
    running.shutdown().await;
    let values: Vec<Vec<u8>> = dead.iter().map(|r| r.value().unwrap().to_vec()).collect();
    assert_eq!(values, poison.to_vec(), "original bytes, in order");
    let reasons: Vec<&str> = dead
        .iter()
        .map(|r| {
            r.headers()
                .get_str("kafka_dlt-exception-message")
                .unwrap_or("")
        })
        .collect();
    assert!(reasons[0].contains("magic byte"), "{reasons:?}");
    assert!(
        reasons[1].contains("unknown schema id 77777"),
        "{reasons:?}"
    );
}
