//! Unit tests of `KafkaConfig`.

use super::*;

fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn env_maps_to_properties() {
    let c = KafkaConfig::from_vars(vars(&[
        ("KAFKA_BOOTSTRAP_SERVERS", "b1:9092,b2:9092"),
        ("KAFKA_PROPERTY_SECURITY_PROTOCOL", "SASL_SSL"),
        ("KAFKA_PROPERTY_SASL_PASSWORD", "hunter2"),
        ("KAFKA_CONSUMER_MAX_POLL_INTERVAL_MS", "60000"),
        ("KAFKA_SHUTDOWN_TIMEOUT", "3s"),
        ("SCHEMA_REGISTRY_URL", "https://u:pw@registry:8081"),
        ("HOME", "/root"),
    ]))
    .unwrap();
    assert_eq!(c.bootstrap_servers.as_deref(), Some("b1:9092,b2:9092"));
    assert_eq!(c.properties["security.protocol"], "SASL_SSL");
    assert_eq!(c.consumer_properties["max.poll.interval.ms"], "60000");
    assert_eq!(c.effective_shutdown_timeout(), Duration::from_secs(3));
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!debug.contains(":pw@"), "{debug}");
    assert!(debug.contains("<redacted>"));
    assert_eq!(
        c.producer_config("x").get("enable.idempotence"),
        Some("true")
    );
    assert_eq!(
        c.producer_config("x").get("partitioner"),
        Some("murmur2_random")
    );
    let own = KafkaConfig::new().producer_property("partitioner", "consistent");
    assert_eq!(
        own.producer_config("x").get("partitioner"),
        Some("consistent")
    );
}

#[test]
fn bad_timeout_is_a_config_error() {
    let e = KafkaConfig::from_vars(vars(&[("KAFKA_SHUTDOWN_TIMEOUT", "soon")])).unwrap_err();
    assert!(e.to_string().contains("KAFKA_SHUTDOWN_TIMEOUT"), "{e}");
}

#[test]
fn properties_file_splits_client_kinds_and_reports_bad_lines() {
    let dir = std::env::temp_dir().join(format!("kl-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.properties");
    std::fs::write(
        &good,
        "# comment\nbootstrap.servers=b1:9092\nschema.registry.url = http://r:8081\n\
         security.protocol=SSL\nconsumer.max.poll.interval.ms=60000\nproducer.linger.ms=0\n",
    )
    .unwrap();
    let c = KafkaConfig::from_file(&good).unwrap();
    assert_eq!(c.bootstrap_servers.as_deref(), Some("b1:9092"));
    assert_eq!(c.schema_registry_url.as_deref(), Some("http://r:8081"));
    assert_eq!(c.properties["security.protocol"], "SSL");
    assert_eq!(c.consumer_properties["max.poll.interval.ms"], "60000");
    assert_eq!(c.producer_properties["linger.ms"], "0");
    let bad = dir.join("bad.properties");
    std::fs::write(
        &bad,
        "bootstrap.servers=b1:9092\nspring.kafka.consumer.enable-auto-commit=true\n",
    )
    .unwrap();
    let e = KafkaConfig::from_file(&bad).unwrap_err().to_string();
    assert!(e.contains("bad.properties"), "{e}");
    assert!(
        e.contains("spring.kafka.consumer.enable-auto-commit"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn empty_bootstrap_means_embedded() {
    let c = KafkaConfig::from_vars(vars(&[("KAFKA_BOOTSTRAP_SERVERS", " ")])).unwrap();
    assert!(c.bootstrap_servers.is_none());
}

#[test]
fn layers_file_then_environment_then_code_with_spring_names() {
    let dir = std::env::temp_dir().join(format!("kl-config-layers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("application.properties");
    // A real PEM file: librdkafka loads it when the client is created.
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls/ca.pem");
    std::fs::write(
        &file,
        format!(
        "server.port=8080\n\
         spring.kafka.bootstrap-servers=file:9092\n\
         spring.kafka.consumer.group-id=file-group\n\
         spring.kafka.consumer.auto-offset-reset=LATEST\n\
         spring.kafka.consumer.max-poll-records=100\n\
         spring.kafka.producer.acks=1\n\
         spring.kafka.producer.compression-type=ZSTD\n\
         spring.kafka.security.protocol=SASL_SSL\n\
         spring.kafka.properties.sasl.mechanism=SCRAM-SHA-512\n\
         spring.kafka.properties.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule \\\n\
         \x20   required username=\"app\" password=\"pw\";\n\
         spring.kafka.ssl.trust-store-location={ca}\n\
         spring.kafka.properties.schema.registry.url=http://file-registry:8081\n",
        ca = ca.display(),
        ),
    )
    .unwrap();
    let from_file = KafkaConfig::from_file(&file).unwrap();
    let env = KafkaConfig::from_vars(vars(&[
        ("SPRING_KAFKA_CONSUMER_GROUP_ID", "env-group"),
        ("KAFKA_PRODUCER_ACKS", "all"),
    ]))
    .unwrap();
    let c = from_file
        .merged(env)
        .merged(KafkaConfig::new().consumer_property("max.poll.records", "50"));
    assert_eq!(c.bootstrap(), Some("file:9092"));
    assert_eq!(c.registry_url(), Some("http://file-registry:8081"));
    assert_eq!(
        c.consumer_value("group.id"),
        Some("env-group"),
        "env over file"
    );
    assert_eq!(
        c.consumer_value("max.poll.records"),
        Some("50"),
        "code over file"
    );
    assert_eq!(c.consumer_value("auto.offset.reset"), Some("latest"));
    assert_eq!(c.producer_value("acks"), Some("all"), "env over file");
    assert_eq!(c.producer_value("compression.type"), Some("zstd"));
    assert_eq!(c.consumer_value("security.protocol"), Some("SASL_SSL"));
    assert_eq!(c.consumer_value("sasl.mechanism"), Some("SCRAM-SHA-512"));
    assert_eq!(c.consumer_value("sasl.username"), Some("app"));
    assert_eq!(c.consumer_value("sasl.password"), Some("pw"));
    assert_eq!(c.consumer_value("sasl.jaas.config"), None);
    assert_eq!(
        c.consumer_value("ssl.ca.location"),
        Some(ca.to_str().unwrap())
    );
    assert_eq!(c.consumer_value("server.port"), None, "not a Kafka setting");
    assert!(c.validate().is_ok());
    // librdkafka accepts every property the mapping produced.
    c.consumer_config("b:9092")
        .create::<rdkafka::consumer::BaseConsumer>()
        .expect("librdkafka takes the consumer properties");
    assert_eq!(
        c.container_config("b:9092").get("max.poll.records"),
        Some("50"),
        "the container's poll burst size"
    );
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("\"pw\"") && !debug.contains(": \"pw"),
        "{debug}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn settings_that_cannot_be_honoured_fail_validation() {
    let c = KafkaConfig::new()
        .property("ssl.truststore.type", "JKS")
        .setting("spring.kafka.consumer.enable-auto-commit", "true");
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("JKS"), "{e}");
    assert!(e.contains("enable-auto-commit"), "{e}");
    let e = KafkaConfig::from_vars(vars(&[(
        "SPRING_KAFKA_CONSUMER_ENABLE_AUTO_COMMIT",
        "true",
    )]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("enable-auto-commit"), "{e}");
}

#[test]
fn the_transaction_id_prefix_comes_from_spring_keys_and_the_environment() {
    let c = KafkaConfig::from_vars(vars(&[(
        "SPRING_KAFKA_PRODUCER_TRANSACTION_ID_PREFIX",
        "tx-",
    )]))
    .unwrap();
    assert_eq!(c.transaction_prefix(), Some("tx-"));
    let c = KafkaConfig::from_vars(vars(&[
        ("SPRING_KAFKA_PRODUCER_TRANSACTION_ID_PREFIX", "spring-"),
        ("KAFKA_TRANSACTION_ID_PREFIX", "ours-"),
    ]))
    .unwrap();
    assert_eq!(
        c.transaction_prefix(),
        Some("ours-"),
        "this crate's variable wins"
    );
    let c = KafkaConfig::new().setting("spring.kafka.producer.transaction-id-prefix", "file-");
    assert_eq!(c.transaction_prefix(), Some("file-"));
    assert_eq!(
        KafkaConfig::new()
            .transaction_id_prefix("  ")
            .transaction_prefix(),
        None,
        "blank is no prefix"
    );
}

#[test]
fn an_application_yml_is_read_as_the_properties_file_is() {
    let dir = std::env::temp_dir().join(format!("kl-config-yaml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("application.yml");
    std::fs::write(
        &file,
        "server:\n  port: 8080\n\
         spring:\n  kafka:\n    bootstrap-servers: a:9092,b:9092\n\
         \x20   consumer:\n      group-id: orders\n      auto-offset-reset: latest\n\
         \x20   producer:\n      compression-type: lz4\n\
         \x20   properties:\n      \"[sasl.mechanism]\": PLAIN\n\
         \x20     \"[schema.registry.url]\": http://registry:8081\n",
    )
    .unwrap();
    let c = KafkaConfig::from_file(&file).unwrap();
    assert_eq!(c.bootstrap(), Some("a:9092,b:9092"));
    assert_eq!(c.consumer_value("group.id"), Some("orders"));
    assert_eq!(c.consumer_value("auto.offset.reset"), Some("latest"));
    assert_eq!(c.producer_value("compression.type"), Some("lz4"));
    assert_eq!(c.consumer_value("sasl.mechanism"), Some("PLAIN"));
    assert_eq!(c.registry_url(), Some("http://registry:8081"));
    assert_eq!(c.consumer_value("server.port"), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn properties_and_yaml_text_parse_as_their_files_do() {
    let c = KafkaConfig::from_properties_str(
        "bootstrap.servers=b1:9092\nconsumer.max.poll.interval.ms : 60000\n",
    )
    .unwrap();
    assert_eq!(c.bootstrap_servers.as_deref(), Some("b1:9092"));
    assert_eq!(c.consumer_properties["max.poll.interval.ms"], "60000");
    let y = KafkaConfig::from_yaml_str(
        "spring:\n  kafka:\n    bootstrap-servers: b2:9092\n    consumer:\n      group-id: g\n",
    )
    .unwrap();
    assert_eq!(y.bootstrap_servers.as_deref(), Some("b2:9092"));
    assert_eq!(y.consumer_properties["group.id"], "g");
    let e = KafkaConfig::from_yaml_str("a: [1, 2\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("configuration: "), "{e}");
    let e = KafkaConfig::from_properties_str("spring.kafka.nope=1\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("spring.kafka.nope"), "{e}");
}
