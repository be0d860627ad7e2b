//! The registry side of Avro: one request for concurrent look-ups of an id,
//! basic auth, HTTPS (rustls, a private CA), subject name strategies and
//! registration settings, and the embedded registry's compatibility checks.

#![cfg(feature = "avro")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use apache_avro::AvroSchema;
use kafka_listener::avro::{wire, AvroCodec, SchemaRegistryError};
use kafka_listener::embedded::EmbeddedSchemaRegistry;
use kafka_listener::prelude::*;
use kafka_listener::Error;
use support::avro::*;
use support::*;

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
    let topic = &unique("avro.auth");
    let broker = broker(topic, 1);
    let registry = EmbeddedSchemaRegistry::start().await.unwrap();
    registry.require_basic_auth(Some("svc:secret"));
    let anonymous = AvroCodec::from_config(&KafkaConfig::new(), registry.url()).unwrap();
    match anonymous.client().subjects().await {
        Err(SchemaRegistryError::Http { status: 401, .. }) => {}
        other => panic!("expected 401 without credentials, got {other:?}"),
    }
    // A consumer without credentials cannot fetch schemas: retryable, not a
    // poison pill (a misconfiguration must not dead-letter good records).
    let refused = anonymous.schema(1).await.unwrap_err();
    assert!(refused.is_retryable(), "{refused}");
    let mut config = config(&broker).schema_registry_url(registry.url());
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
            topic,
            "k",
            &OrderV1 {
                id: "k".into(),
                amount_cents: 1,
            },
        )
        .await
        .unwrap();
    let subjects = codec.client().subjects().await.unwrap();
    assert_eq!(subjects, [format!("{topic}-value")]);
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
        matches!(
            err.registry_error(),
            Some(SchemaRegistryError::NotFound { .. })
        ),
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
    let topic = &unique("avro.https");
    let broker = broker(topic, 1);
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
    let config = config(&broker).schema_registry_url(url);
    let app = app(
        &broker,
        config.property("schema.registry.ssl.ca.location", ca),
        vec![ListenerSpec::new("https")
            .group_id(unique("https"))
            .topics([topic])
            .handler(v1_listener)],
    )
    .await
    .state(got.clone());
    let order = OrderV1 {
        id: "tls".into(),
        amount_cents: 443,
    };
    app.template()
        .send_avro(topic, "tls", &order)
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
        Err(SchemaRegistryError::Incompatible { .. })
    ));
    client.set_compatibility(Some(S), "NONE").await.unwrap();
    let id3 = client.register(S, &v3).await.unwrap();
    let latest = client.latest(S).await.unwrap();
    assert_eq!((latest.version, latest.id), (3, id3));
    assert_eq!(client.lookup(S, &v1).await.unwrap().version, 1);
    assert!(matches!(
        client.set_compatibility(None, "SIDEWAYS").await,
        Err(SchemaRegistryError::Http { status: 422, .. })
    ));
    assert!(matches!(
        client.register(S, "{not json").await,
        Err(SchemaRegistryError::InvalidSchema { code: 42201, .. })
    ));
}

async fn avro_order(_order: Avro<OrderV1>) {}

/// Beside a real broker no embedded registry starts (its schema ids would
/// be unknown to every other client): an app without a registry URL has no
/// Avro codec, and an Avro listener refuses to start with an error naming
/// `SCHEMA_REGISTRY_URL`. Runs in the real-broker pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_a_real_broker_an_avro_listener_without_a_registry_url_names_the_setting() {
    if !real_broker_only(
        "beside_a_real_broker_an_avro_listener_without_a_registry_url_names_the_setting",
    ) {
        return;
    }
    init_tracing();
    let topic = &unique("avro.no-registry");
    let broker = broker(topic, 1);
    let app = KafkaApp::builder()
        .config(config(&broker))
        .without_discovered_listeners()
        .listener(
            ListenerSpec::new("no-registry")
                .topics([topic.as_str()])
                .group_id(unique("no-registry"))
                .handler(avro_order),
        )
        .build()
        .await
        .expect("the app builds: the listener is checked at start");
    assert!(app.avro_codec().is_none(), "no registry, no codec");
    assert!(
        app.embedded_schema_registry().is_none(),
        "no embedded registry beside a real broker"
    );
    let err = app.start().await.unwrap_err().to_string();
    assert!(err.contains("SCHEMA_REGISTRY_URL"), "{err}");
    assert!(err.contains("embedded registry starts only"), "{err}");
}

async fn plain_order(_order: Json<serde_json::Value>, _meta: RecordMeta) {}

/// On the embedded broker the registry starts only for an app that uses
/// Avro: a listener taking `Avro<T>` (behind other arguments), or
/// `KafkaAppBuilder::avro()`; an app of JSON listeners starts none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_registry_starts_only_for_an_app_that_uses_avro() {
    init_tracing();
    let kafka = kafka_listener::testing::TestKafka::embedded().unwrap();
    let built = |spec: ListenerSpec, avro: bool| {
        let builder = kafka.app().without_discovered_listeners().listener(spec);
        let builder = if avro { builder.avro() } else { builder };
        builder.build()
    };
    let json = || {
        ListenerSpec::new("json")
            .topics(["t.json"])
            .handler(plain_order)
    };
    let app = built(json(), false).await.unwrap();
    assert!(
        app.embedded_schema_registry().is_none(),
        "JSON only: no registry"
    );
    assert!(app.avro_codec().is_none());
    let app = built(json(), true).await.unwrap();
    assert!(
        app.embedded_schema_registry().is_some(),
        "asked for with .avro()"
    );
    let avro = ListenerSpec::new("avro")
        .topics(["t.avro"])
        .handler(|_meta: RecordMeta, order: Avro<OrderV1>| async move { drop(order) });
    let app = built(avro, false).await.unwrap();
    assert!(
        app.embedded_schema_registry().is_some(),
        "a listener reads Avro"
    );
    assert!(app.avro_codec().is_some());
}

/// Regression (fuzz/fuzz_targets/avro_wire.rs): an array block count of
/// 536,870,912 in a 12-byte record made apache-avro reserve ~30 GB and
/// abort the process. The codec caps its allocations: the record is a
/// poison pill with a reason, and the process lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_block_count_is_a_decode_error_not_an_abort() {
    let registry = EmbeddedSchemaRegistry::start().await.unwrap();
    let codec = AvroCodec::from_config(&KafkaConfig::new(), registry.url()).unwrap();
    let id = codec
        .client()
        .register("tags-value", r#"{"type":"array","items":"string"}"#)
        .await
        .unwrap();
    codec.schema(id).await.unwrap();
    // Block count -536870912 (zig-zag 0xffffffff03: a count with a byte size), size 0.
    let hostile = wire::encode(id, &[0xff, 0xff, 0xff, 0xff, 0x03, 0x00]);
    let error = codec.decode_cached::<Vec<String>>(&hostile).unwrap_err();
    assert!(!error.is_retryable(), "a poison pill");
    let text = error.to_string();
    assert!(text.contains("allocat"), "{text}");
    let fine = wire::encode(id, &[0x02, 0x02, b'a', 0x00]);
    assert_eq!(codec.decode_cached::<Vec<String>>(&fine).unwrap(), ["a"]);
}
