//! Avro with the Schema Registry, end to end on the embedded broker and the
//! embedded registry: round trips of keys and values, schema evolution both
//! ways, an incompatible change refused, poison pills dead-lettered with
//! their original bytes, and a registry outage retried.

#![cfg(feature = "avro")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apache_avro::AvroSchema;
use common::*;
use futures::future::BoxFuture;
use kafka_listener::avro::{wire, AvroCodec, RegistryError};
use kafka_listener::error::BoxError;
use kafka_listener::extract::ListenerInfo;
use kafka_listener::prelude::*;
use kafka_listener::recover::Recoverer;
use kafka_listener::registry::EmbeddedSchemaRegistry;
use kafka_listener::{Error, ErrorKind};
use serde::{Deserialize, Serialize};

/// Version 1 of the order value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(name = "Order", namespace = "shop")]
struct OrderV1 {
    id: String,
    amount_cents: i64,
}

/// Version 2: a field added with a default (BACKWARD compatible).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(name = "Order", namespace = "shop")]
struct OrderV2 {
    id: String,
    amount_cents: i64,
    #[avro(default = "\"EUR\"")]
    currency: String,
}

/// An incompatible change: a new field without a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(name = "Order", namespace = "shop")]
struct OrderV3 {
    id: String,
    amount_cents: i64,
    warehouse: String,
}

/// An Avro key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, AvroSchema)]
#[avro(name = "OrderKey", namespace = "shop")]
struct OrderKey {
    id: String,
}

#[derive(Debug, Clone)]
struct Got<T>(Arc<Mutex<Vec<T>>>);

impl<T> Default for Got<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T: Clone> Got<T> {
    fn push(&self, v: T) {
        self.0.lock().unwrap().push(v);
    }
    fn all(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }
    async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<T> {
        let start = std::time::Instant::now();
        while self.0.lock().unwrap().len() < n && start.elapsed() < timeout {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.all()
    }
}

async fn app(
    broker: &Arc<kafka_listener::embedded::EmbeddedBroker>,
    config: KafkaConfig,
    listeners: Vec<ListenerSpec>,
) -> KafkaApp {
    let _ = broker;
    let mut b = KafkaApp::builder()
        .config(config)
        .without_discovered_listeners();
    for l in listeners {
        b = b.listener(l);
    }
    b.build().await.expect("app")
}

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
    const TOPIC: &str = "avro.roundtrip";
    let broker = broker(TOPIC, 3);
    let got = Got::<(OrderKey, OrderV1)>::default();
    let app = app(
        &broker,
        config(&broker),
        vec![ListenerSpec::new("rt")
            .topics([TOPIC])
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
            .send_avro_key_value(TOPIC, &key, &order)
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
    assert_eq!(subjects, [format!("{TOPIC}-key"), format!("{TOPIC}-value")]);
    let value_id = codec
        .client()
        .latest(&format!("{TOPIC}-value"))
        .await
        .unwrap()
        .id;
    let bytes = codec
        .encode(TOPIC, kafka_listener::avro::RecordPart::Value, &sent[0].1)
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

async fn v1_listener(order: Avro<OrderV1>, got: State<Got<OrderV1>>) {
    got.push(order.0);
}

async fn v2_listener(order: Avro<OrderV2>, got: State<Got<OrderV2>>) {
    got.push(order.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_an_older_and_a_newer_writer_schema_resolve_to_the_reader_type() {
    init_tracing();
    const TOPIC: &str = "avro.evolution";
    let broker = broker(TOPIC, 1);
    let (old, new) = (Got::<OrderV1>::default(), Got::<OrderV2>::default());
    let app = app(
        &broker,
        config(&broker),
        vec![
            ListenerSpec::new("old-reader")
                .topics([TOPIC])
                .handler(v1_listener),
            ListenerSpec::new("new-reader")
                .topics([TOPIC])
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
            TOPIC,
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
            TOPIC,
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
            TOPIC,
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
    match &err {
        Error::SchemaRegistry(RegistryError::Incompatible { subject, message }) => {
            assert_eq!(subject, &format!("{TOPIC}-value"));
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
    const TOPIC: &str = "avro.poison";
    let broker = broker(TOPIC, 1);
    broker.create_topic("avro.poison-dlt", 1).unwrap();
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
                .topics([TOPIC])
                .retry(RetryPolicy::fixed(3, Duration::from_millis(50)))
                .recoverer(DltRecoverer {
                    template: dlt_template,
                    failures: failures.clone(),
                })
                .handler(v1_listener),
            ListenerSpec::new("dlt")
                .topics(["avro.poison-dlt"])
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
        .encode(TOPIC, kafka_listener::avro::RecordPart::Value, &ok)
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
            .send(ProducerRecord::keyed(TOPIC, format!("p{i}")).value(bytes.clone()))
            .await
            .unwrap();
    }
    template
        .send(ProducerRecord::keyed(TOPIC, "ok").value(framed.clone()))
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
    const TOPIC: &str = "avro.outage";
    let broker = broker(TOPIC, 1);
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
            .topics([TOPIC])
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
    app.template().send_avro(TOPIC, "x", &order).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_look_ups_of_one_schema_id_make_one_request() {
    init_tracing();
    let registry = EmbeddedSchemaRegistry::start().await.unwrap();
    let codec = AvroCodec::from_config(&KafkaConfig::new(), registry.url()).unwrap();
    let schema = serde_json::to_string(&OrderV1::get_schema()).unwrap();
    let id = codec.client().register("t-value", &schema).await.unwrap();
    let before = registry.schema_id_lookups();
    let lookups = (0..50).map(|_| {
        let codec = codec.clone();
        tokio::spawn(async move { codec.schema(id).await.map(|s| s.canonical_form()) })
    });
    let schemas: Vec<String> = futures::future::join_all(lookups)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert!(schemas.iter().all(|s| s == &schemas[0]));
    assert_eq!(
        registry.schema_id_lookups() - before,
        1,
        "one request for 50 look-ups"
    );
    // An unknown id is a poison pill, a stopped registry is retryable.
    let unknown = codec.schema(4242).await.unwrap_err();
    assert!(!unknown.is_retryable(), "{unknown}");
    registry.stop().await;
    let down = codec.schema(id + 1).await.unwrap_err();
    assert!(down.is_retryable(), "{down}");
    assert!(
        codec.schema(id).await.is_ok(),
        "cached ids need no registry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_from_properties_reaches_the_registry_and_is_not_given_to_librdkafka() {
    init_tracing();
    const TOPIC: &str = "avro.auth";
    let broker = broker(TOPIC, 1);
    let registry = EmbeddedSchemaRegistry::start().await.unwrap();
    registry.require_basic_auth(Some("svc:secret"));
    let anonymous = AvroCodec::from_config(&KafkaConfig::new(), registry.url()).unwrap();
    match anonymous.client().subjects().await {
        Err(RegistryError::Http { status: 401, .. }) => {}
        other => panic!("expected 401 without credentials, got {other:?}"),
    }
    // A consumer without credentials cannot fetch schemas: retryable, not a
    // poison pill (a misconfiguration must not dead-letter good records).
    let refused = anonymous.schema(1).await.unwrap_err();
    assert!(refused.is_retryable(), "{refused}");
    let mut config = config(&broker);
    config.schema_registry_url = Some(registry.url().to_owned());
    config = config
        .property("basic.auth.credentials.source", "USER_INFO")
        .property("basic.auth.user.info", "svc:secret")
        .property("auto.register.schemas", "true");
    // librdkafka would refuse unknown properties: building proves they are
    // kept out of the client configs.
    let app = app(&broker, config, vec![]).await;
    assert!(
        app.embedded_schema_registry().is_none(),
        "an external registry URL is used"
    );
    let codec = app.avro_codec().unwrap();
    assert!(format!("{codec:?}").contains("svc"));
    assert!(!format!("{codec:?}").contains("secret"));
    app.template()
        .send_avro(
            TOPIC,
            "k",
            &OrderV1 {
                id: "k".into(),
                amount_cents: 1,
            },
        )
        .await
        .unwrap();
    let subjects = codec.client().subjects().await.unwrap();
    assert_eq!(subjects, [format!("{TOPIC}-value")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_strategies_and_registration_settings_follow_confluents_serializer() {
    init_tracing();
    let registry = EmbeddedSchemaRegistry::start().await.unwrap();
    let codec_with = |props: &[(&str, &str)]| {
        let mut config = KafkaConfig::new();
        for (k, v) in props {
            config = config.property(*k, *v);
        }
        AvroCodec::from_config(&config, registry.url()).unwrap()
    };
    let order = OrderV1 {
        id: "s".into(),
        amount_cents: 1,
    };
    let value = kafka_listener::avro::RecordPart::Value;
    let key = kafka_listener::avro::RecordPart::Key;

    let record_name = codec_with(&[(
        "value.subject.name.strategy",
        "io.confluent.kafka.serializers.subject.RecordNameStrategy",
    )]);
    record_name.encode("t1", value, &order).await.unwrap();
    let topic_record = codec_with(&[
        ("value.subject.name.strategy", "TopicRecordNameStrategy"),
        ("key.subject.name.strategy", "TopicRecordNameStrategy"),
    ]);
    topic_record.encode("t2", value, &order).await.unwrap();
    topic_record
        .encode("t2", key, &OrderKey { id: "s".into() })
        .await
        .unwrap();
    let mut subjects = record_name.client().subjects().await.unwrap();
    subjects.sort();
    assert_eq!(
        subjects,
        ["shop.Order", "t2-shop.Order", "t2-shop.OrderKey"]
    );

    // auto.register.schemas=false: an unregistered schema fails the send.
    let no_register = codec_with(&[("auto.register.schemas", "false")]);
    let err = no_register.encode("t3", value, &order).await.unwrap_err();
    assert!(
        matches!(err, Error::SchemaRegistry(RegistryError::NotFound { .. })),
        "{err:?}"
    );
    // ...and a registered one is looked up, not registered again.
    codec_with(&[]).encode("t3", value, &order).await.unwrap();
    let bytes = no_register.encode("t3", value, &order).await.unwrap();
    assert_eq!(no_register.decode::<OrderV1>(&bytes).await.unwrap(), order);

    // use.latest.version=true: written with the subject's latest schema
    // (version 2 here), the value resolved to it.
    codec_with(&[])
        .encode(
            "t4",
            value,
            &OrderV2 {
                id: "v2".into(),
                amount_cents: 2,
                currency: "USD".into(),
            },
        )
        .await
        .unwrap();
    let latest = codec_with(&[("use.latest.version", "true")]);
    let v2_id = latest.client().latest("t4-value").await.unwrap().id;
    let bytes = latest.encode("t4", value, &order).await.unwrap();
    assert_eq!(wire::decode(&bytes).unwrap().0, v2_id);
    let read: OrderV2 = latest.decode(&bytes).await.unwrap();
    assert_eq!(read.currency, "EUR", "the writer's default filled in");

    // Bad settings are configuration errors.
    let bad = KafkaConfig::new().property("use.latest.version", "yes");
    assert!(matches!(
        AvroCodec::from_config(&bad, registry.url()),
        Err(Error::Config(_))
    ));
}

async fn batch_listener(orders: Vec<Avro<OrderV1>>, got: State<Got<OrderV1>>) {
    for o in orders {
        got.push(o.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_listeners_read_avro_records_written_with_several_schemas() {
    init_tracing();
    const TOPIC: &str = "avro.batch";
    let broker = broker(TOPIC, 1);
    let got = Got::<OrderV1>::default();
    let app = app(
        &broker,
        config(&broker),
        vec![ListenerSpec::new("batch")
            .topics([TOPIC])
            .batch_handler(batch_listener)],
    )
    .await
    .state(got.clone());
    let template = app.template();
    for i in 0..50 {
        if i % 2 == 0 {
            template
                .send_avro(
                    TOPIC,
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
            template.send_avro(TOPIC, "k", &v2).await.unwrap();
        }
    }
    let running = app.start().await.unwrap();
    let seen = got.wait_for(50, Duration::from_secs(30)).await;
    running.shutdown().await;
    let amounts: Vec<i64> = seen.iter().map(|o| o.amount_cents).collect();
    assert_eq!(amounts, (0..50).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_urls_go_through_tls_and_a_failed_handshake_is_retryable() {
    init_tracing();
    // The embedded registry speaks plain HTTP: an https:// URL reaches it
    // through rustls, whose handshake fails; a registry that cannot be
    // reached (not a refused request) is retryable.
    let registry = EmbeddedSchemaRegistry::start().await.unwrap();
    let https = registry.url().replace("http://", "https://");
    let codec = AvroCodec::from_config(&KafkaConfig::new(), &https).unwrap();
    let err = codec.schema(1).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let chain = format!("{:?}", err);
    assert!(
        !chain.contains("scheme"),
        "TLS support is compiled in: {chain}"
    );
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
    const TOPIC: &str = "avro.macro";
    let broker = broker(TOPIC, 1);
    let app = KafkaApp::builder()
        .config(config(&broker))
        .only_listeners(["avro-macro"])
        .build()
        .await
        .unwrap();
    let key = OrderKey { id: "m".into() };
    let order = OrderV1 {
        id: "m".into(),
        amount_cents: 9,
    };
    app.template()
        .send_avro_key_value(TOPIC, &key, &order)
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

/// Serves TLS (tests/tls/server.pem, signed by tests/tls/ca.pem, for
/// `localhost` and 127.0.0.1) on a loopback port in front of `plain`
/// (`127.0.0.1:PORT`); returns the port.
async fn tls_front(plain: std::net::SocketAddr) -> u16 {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut upstream) = tokio::net::TcpStream::connect(plain).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_behind_https_with_a_private_ca_is_used_through_its_ca_file() {
    init_tracing();
    const TOPIC: &str = "avro.https";
    let broker = broker(TOPIC, 1);
    let registry = EmbeddedSchemaRegistry::start().await.unwrap();
    registry.require_basic_auth(Some("svc:secret"));
    let plain: std::net::SocketAddr = registry
        .url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let port = tls_front(plain).await;
    let url = format!("https://svc:secret@localhost:{port}");
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/ca.pem");

    // Without the CA the certificate is not trusted: the registry cannot be
    // reached (retryable).
    let untrusted = AvroCodec::from_config(&KafkaConfig::new(), &url).unwrap();
    let err = untrusted.client().subjects().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");

    let got = Got::<OrderV1>::default();
    let mut config = config(&broker);
    config.schema_registry_url = Some(url);
    let app = app(
        &broker,
        config.property("schema.registry.ssl.ca.location", ca),
        vec![ListenerSpec::new("https")
            .topics([TOPIC])
            .handler(v1_listener)],
    )
    .await
    .state(got.clone());
    let order = OrderV1 {
        id: "tls".into(),
        amount_cents: 443,
    };
    app.template()
        .send_avro(TOPIC, "tls", &order)
        .await
        .unwrap();
    let running = app.start().await.unwrap();
    let seen = got.wait_for(1, Duration::from_secs(30)).await;
    running.shutdown().await;
    assert_eq!(seen, [order]);
    assert_eq!(registry.schema_id_lookups(), 1, "fetched over HTTPS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_registry_checks_compatibility_under_the_configured_level() {
    init_tracing();
    let registry = EmbeddedSchemaRegistry::start().await.unwrap();
    let client = AvroCodec::from_config(&KafkaConfig::new(), registry.url())
        .unwrap()
        .client()
        .clone();
    let json = |s: apache_avro::Schema| serde_json::to_string(&s).unwrap();
    let (v1, v2, v3) = (
        json(OrderV1::get_schema()),
        json(OrderV2::get_schema()),
        json(OrderV3::get_schema()),
    );
    const S: &str = "orders-value";
    assert!(
        client.is_compatible(S, &v3).await.unwrap(),
        "a new subject takes anything"
    );
    let id1 = client.register(S, &v1).await.unwrap();
    assert_eq!(
        client.register(S, &v1).await.unwrap(),
        id1,
        "registering twice is a no-op"
    );
    client.set_compatibility(Some(S), "FULL").await.unwrap();
    assert!(
        client.is_compatible(S, &v2).await.unwrap(),
        "a field with a default"
    );
    assert!(
        !client.is_compatible(S, &v3).await.unwrap(),
        "a field without one"
    );
    let id2 = client.register(S, &v2).await.unwrap();
    assert_ne!(id1, id2);
    assert!(matches!(
        client.register(S, &v3).await,
        Err(RegistryError::Incompatible { .. })
    ));
    client.set_compatibility(Some(S), "NONE").await.unwrap();
    let id3 = client.register(S, &v3).await.unwrap();
    let latest = client.latest(S).await.unwrap();
    assert_eq!((latest.version, latest.id), (3, id3));
    assert_eq!(client.lookup(S, &v1).await.unwrap().version, 1);
    assert!(matches!(
        client.set_compatibility(None, "SIDEWAYS").await,
        Err(RegistryError::Http { status: 422, .. })
    ));
    assert!(matches!(
        client.register(S, "{not json").await,
        Err(RegistryError::InvalidSchema { code: 42201, .. })
    ));
}
