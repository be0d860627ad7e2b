//! Property names from the Java world, mapped to this crate's settings and
//! to librdkafka's names: Spring Boot's `spring.kafka.*` properties and
//! the Java client's own property names where librdkafka calls the same
//! setting otherwise (or has no such setting).
//!
//! The tables here are the ones docs/src/connecting.md shows.

/// Where a setting goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `bootstrap.servers`.
    Bootstrap,
    /// The Schema Registry URL.
    RegistryUrl,
    /// The `transactional.id` prefix of the transactional producers.
    TransactionIdPrefix,
    /// A librdkafka property for every client.
    Common(String),
    /// A librdkafka property for consumers.
    Consumer(String),
    /// A librdkafka property for producers.
    Producer(String),
    /// Nothing: the setting has no meaning here (a Java class name, a JVM
    /// TLS detail); the reason is logged at debug.
    Ignored(&'static str),
}

/// How a Spring value becomes a librdkafka value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    /// As it is.
    Same,
    /// Lower case (`READ_COMMITTED` -> `read_committed`).
    Lower,
    /// A Spring `Duration` (`500ms`, `2s`, `PT2S`, or milliseconds) in
    /// milliseconds.
    Millis,
    /// A Spring `DataSize` (`16KB`, `1MB`, or bytes) in bytes.
    Bytes,
    /// A Spring `DataSize` in kilobytes (`buffer-memory`).
    Kilobytes,
}

/// Scope of a Spring key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Common,
    Consumer,
    Producer,
}

/// `spring.kafka.<key>` -> (scope, librdkafka property, value conversion).
/// `bootstrap-servers`, the `properties.*` families and the keys of
/// [`SPRING_REFUSED`] and [`SPRING_IGNORED`] are handled apart.
const SPRING: &[(&str, Scope, &str, Value)] = &[
    ("client-id", Scope::Common, "client.id", Value::Same),
    (
        "security.protocol",
        Scope::Common,
        "security.protocol",
        Value::Same,
    ),
    (
        "ssl.key-password",
        Scope::Common,
        "ssl.key.password",
        Value::Same,
    ),
    (
        "ssl.key-store-location",
        Scope::Common,
        "ssl.keystore.location",
        Value::Same,
    ),
    (
        "ssl.key-store-password",
        Scope::Common,
        "ssl.keystore.password",
        Value::Same,
    ),
    (
        "ssl.key-store-certificate-chain",
        Scope::Common,
        "ssl.certificate.pem",
        Value::Same,
    ),
    (
        "ssl.key-store-key",
        Scope::Common,
        "ssl.key.pem",
        Value::Same,
    ),
    (
        "ssl.trust-store-location",
        Scope::Common,
        "ssl.ca.location",
        Value::Same,
    ),
    (
        "ssl.trust-store-certificates",
        Scope::Common,
        "ssl.ca.pem",
        Value::Same,
    ),
    (
        "consumer.group-id",
        Scope::Consumer,
        "group.id",
        Value::Same,
    ),
    (
        "consumer.auto-offset-reset",
        Scope::Consumer,
        "auto.offset.reset",
        Value::Lower,
    ),
    (
        "consumer.max-poll-records",
        Scope::Consumer,
        "max.poll.records",
        Value::Same,
    ),
    (
        "consumer.client-id",
        Scope::Consumer,
        "client.id",
        Value::Same,
    ),
    (
        "consumer.fetch-min-size",
        Scope::Consumer,
        "fetch.min.bytes",
        Value::Bytes,
    ),
    (
        "consumer.fetch-max-wait",
        Scope::Consumer,
        "fetch.wait.max.ms",
        Value::Millis,
    ),
    (
        "consumer.heartbeat-interval",
        Scope::Consumer,
        "heartbeat.interval.ms",
        Value::Millis,
    ),
    (
        "consumer.isolation-level",
        Scope::Consumer,
        "isolation.level",
        Value::Lower,
    ),
    (
        "consumer.security.protocol",
        Scope::Consumer,
        "security.protocol",
        Value::Same,
    ),
    ("producer.acks", Scope::Producer, "acks", Value::Same),
    (
        "producer.compression-type",
        Scope::Producer,
        "compression.type",
        Value::Lower,
    ),
    (
        "producer.batch-size",
        Scope::Producer,
        "batch.size",
        Value::Bytes,
    ),
    (
        "producer.buffer-memory",
        Scope::Producer,
        "queue.buffering.max.kbytes",
        Value::Kilobytes,
    ),
    (
        "producer.client-id",
        Scope::Producer,
        "client.id",
        Value::Same,
    ),
    ("producer.retries", Scope::Producer, "retries", Value::Same),
    (
        "producer.security.protocol",
        Scope::Producer,
        "security.protocol",
        Value::Same,
    ),
];

/// Spring keys this crate cannot honour, with why.
const SPRING_REFUSED: &[(&str, &str)] = &[(
    "consumer.enable-auto-commit",
    "auto-commit is always off: the container commits the offsets of finished records",
)];

/// Spring keys without a meaning here.
const SPRING_IGNORED: &[(&str, &str)] = &[
    (
        "consumer.key-deserializer",
        "a Java class: extractors decode records",
    ),
    (
        "consumer.value-deserializer",
        "a Java class: extractors decode records",
    ),
    (
        "producer.key-serializer",
        "a Java class: KafkaTemplate sends bytes, JSON or Avro",
    ),
    (
        "producer.value-serializer",
        "a Java class: KafkaTemplate sends bytes, JSON or Avro",
    ),
    ("consumer.auto-commit-interval", "auto-commit is always off"),
    (
        "ssl.trust-store-password",
        "librdkafka reads PEM CA files, which have no password",
    ),
    ("ssl.trust-store-type", "librdkafka reads PEM CA files"),
    (
        "ssl.key-store-type",
        "librdkafka reads PKCS#12 key stores or PEM",
    ),
    ("ssl.protocol", "librdkafka negotiates the TLS version"),
];

/// Java client property -> librdkafka property, where the names differ.
pub(crate) const JAVA_RENAMED: &[(&str, &str)] = &[
    ("fetch.max.wait.ms", "fetch.wait.max.ms"),
    ("max.request.size", "message.max.bytes"),
    ("ssl.truststore.location", "ssl.ca.location"),
    ("ssl.truststore.certificates", "ssl.ca.pem"),
    ("ssl.keystore.certificate.chain", "ssl.certificate.pem"),
    ("ssl.keystore.key", "ssl.key.pem"),
];

/// Java client properties without a librdkafka equivalent, left out.
pub(crate) const JAVA_IGNORED: &[&str] = &[
    "key.serializer",
    "value.serializer",
    "key.deserializer",
    "value.deserializer",
    "partitioner.class",
    "interceptor.classes",
    "ssl.truststore.password",
    "ssl.truststore.type",
    "ssl.keystore.type",
    "ssl.protocol",
    "ssl.enabled.protocols",
    "ssl.keymanager.algorithm",
    "ssl.trustmanager.algorithm",
    "sasl.login.class",
    "sasl.client.callback.handler.class",
];

/// The Spring key `spring.kafka.<rest>` with `value`: where it goes and
/// the value librdkafka takes.
///
/// # Errors
/// A message for a key this crate refuses, a value that cannot be
/// converted, or an unknown `spring.kafka.*` key (a typo would otherwise
/// go unnoticed).
pub(crate) fn spring(rest: &str, value: &str) -> Result<(Target, String), String> {
    let full = format!("spring.kafka.{rest}");
    if rest == "bootstrap-servers" {
        return Ok((Target::Bootstrap, value.to_owned()));
    }
    if rest == "producer.transaction-id-prefix" {
        return Ok((Target::TransactionIdPrefix, value.trim().to_owned()));
    }
    for (prefix, scope) in [
        ("properties.", Scope::Common),
        ("consumer.properties.", Scope::Consumer),
        ("producer.properties.", Scope::Producer),
        ("admin.properties.", Scope::Common),
    ] {
        if let Some(key) = rest.strip_prefix(prefix) {
            if key == "schema.registry.url" {
                return Ok((Target::RegistryUrl, value.to_owned()));
            }
            return Ok((scoped(scope, key.to_owned()), value.to_owned()));
        }
    }
    if let Some((_, why)) = SPRING_REFUSED.iter().find(|(k, _)| *k == rest) {
        if rest == "consumer.enable-auto-commit" && value.trim().eq_ignore_ascii_case("false") {
            return Ok((
                Target::Ignored("auto-commit is always off"),
                value.to_owned(),
            ));
        }
        return Err(format!("{full}={value}: {why}"));
    }
    if let Some((_, why)) = SPRING_IGNORED.iter().find(|(k, _)| *k == rest) {
        return Ok((Target::Ignored(why), value.to_owned()));
    }
    let Some((_, scope, key, conv)) = SPRING.iter().find(|(k, ..)| *k == rest) else {
        return Err(format!(
            "{full}: not a Spring Kafka property this crate maps; use \
             spring.kafka.properties.<librdkafka name> (see docs/src/connecting.md)"
        ));
    };
    let value = convert(*conv, value).map_err(|e| format!("{full}={value}: {e}"))?;
    Ok((scoped(*scope, (*key).to_owned()), value))
}

fn scoped(scope: Scope, key: String) -> Target {
    match scope {
        Scope::Common => Target::Common(key),
        Scope::Consumer => Target::Consumer(key),
        Scope::Producer => Target::Producer(key),
    }
}

fn convert(conv: Value, value: &str) -> Result<String, String> {
    let v = value.trim();
    match conv {
        Value::Same => Ok(v.to_owned()),
        Value::Lower => Ok(v.to_ascii_lowercase()),
        Value::Millis => millis(v).map(|n| n.to_string()),
        Value::Bytes => bytes(v).map(|n| n.to_string()),
        Value::Kilobytes => bytes(v).map(|n| (n / 1024).max(1).to_string()),
    }
}

/// A Spring `Duration`: milliseconds, a humantime duration (`500ms`, `2s`)
/// or ISO-8601 seconds (`PT2S`, `PT0.5S`).
fn millis(v: &str) -> Result<u128, String> {
    if let Ok(n) = v.parse::<u128>() {
        return Ok(n);
    }
    let upper = v.to_ascii_uppercase();
    if let Some(secs) = upper.strip_prefix("PT").and_then(|s| s.strip_suffix('S')) {
        let secs: f64 = secs.parse().map_err(|_| "expected a duration".to_owned())?;
        return Ok((secs * 1000.0).round() as u128);
    }
    humantime::parse_duration(v)
        .map(|d| d.as_millis())
        .map_err(|e| format!("expected a duration (500ms, 2s, PT2S): {e}"))
}

/// A Spring `DataSize`: bytes, or a number with `B`, `KB`, `MB` or `GB`
/// (powers of 1024, as Spring's).
fn bytes(v: &str) -> Result<u64, String> {
    let upper = v.to_ascii_uppercase();
    let (digits, unit) = match upper.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => upper.split_at(at),
        None => (upper.as_str(), ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| "expected a size (16384, 16KB, 1MB)".to_owned())?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1024,
        "MB" => 1024 * 1024,
        "GB" => 1024 * 1024 * 1024,
        other => return Err(format!("unknown size unit `{other}` (B, KB, MB, GB)")),
    };
    Ok(n * factor)
}

/// A Java client property and value as librdkafka takes them: renamed,
/// converted, expanded (`sasl.jaas.config` gives `sasl.username` and
/// `sasl.password`) or left out (empty).
///
/// # Errors
/// A message for a value librdkafka cannot use (a JKS store, a JAAS login
/// module other than PLAIN or SCRAM).
pub(crate) fn java_to_librdkafka(key: &str, value: &str) -> Result<Vec<(String, String)>, String> {
    let one = |k: &str, v: &str| Ok(vec![(k.to_owned(), v.to_owned())]);
    if JAVA_IGNORED.contains(&key) {
        if matches!(key, "ssl.truststore.type" | "ssl.keystore.type")
            && value.trim().eq_ignore_ascii_case("JKS")
        {
            return Err(format!(
                "{key}=JKS: librdkafka reads PEM CA files (ssl.ca.location) and PKCS#12 key \
                 stores (ssl.keystore.location); convert the store with keytool -importkeystore \
                 -deststoretype PKCS12, or export PEM"
            ));
        }
        return Ok(Vec::new());
    }
    if key == "sasl.jaas.config" {
        return jaas(value);
    }
    if key == "buffer.memory" {
        let kb = bytes(value.trim()).map_err(|e| format!("{key}={value}: {e}"))? / 1024;
        return one("queue.buffering.max.kbytes", &kb.max(1).to_string());
    }
    if key == "ssl.endpoint.identification.algorithm" && value.trim().is_empty() {
        return one(key, "none");
    }
    if key == "ssl.truststore.location" && value.trim().to_ascii_lowercase().ends_with(".jks") {
        return Err(format!(
            "{key}={value}: librdkafka reads PEM CA files, not JKS; export the CA with keytool \
             -exportcert -rfc and set ssl.ca.location"
        ));
    }
    match JAVA_RENAMED.iter().find(|(java, _)| *java == key) {
        Some((_, native)) => one(native, value),
        None => one(key, value),
    }
}

/// `sasl.jaas.config` of the PLAIN or SCRAM login module ->
/// `sasl.username` and `sasl.password`.
fn jaas(value: &str) -> Result<Vec<(String, String)>, String> {
    let module_ok = value.contains("PlainLoginModule") || value.contains("ScramLoginModule");
    if !module_ok {
        return Err(
            "sasl.jaas.config: only the PLAIN and SCRAM login modules map to librdkafka \
             (sasl.username, sasl.password); for GSSAPI set sasl.kerberos.* (feature `gssapi`), \
             for OAUTHBEARER sasl.oauthbearer.*"
                .to_owned(),
        );
    }
    let field = |name: &str| -> Option<String> {
        let at = value.find(&format!("{name}=\""))? + name.len() + 2;
        let end = value[at..].find('"')?;
        Some(value[at..at + end].to_owned())
    };
    match (field("username"), field("password")) {
        (Some(u), Some(p)) => Ok(vec![
            ("sasl.username".to_owned(), u),
            ("sasl.password".to_owned(), p),
        ]),
        _ => Err("sasl.jaas.config: no username=\"...\" password=\"...\"".to_owned()),
    }
}

/// The Spring key for `SPRING_KAFKA_...` environment variable `name`
/// (Spring's relaxed binding: upper case, `_` for `.` and `-`), when it is
/// one this crate knows.
pub(crate) fn spring_env(name: &str) -> Option<String> {
    let rest = name.strip_prefix("SPRING_KAFKA_")?;
    for (prefix, spring) in [
        ("PROPERTIES_", "properties."),
        ("CONSUMER_PROPERTIES_", "consumer.properties."),
        ("PRODUCER_PROPERTIES_", "producer.properties."),
    ] {
        if let Some(key) = rest.strip_prefix(prefix) {
            return Some(format!(
                "{spring}{}",
                key.to_ascii_lowercase().replace('_', ".")
            ));
        }
    }
    let env = |k: &str| k.to_ascii_uppercase().replace(['.', '-'], "_");
    std::iter::once("bootstrap-servers")
        .chain(SPRING.iter().map(|(k, ..)| *k))
        .chain(SPRING_REFUSED.iter().map(|(k, _)| *k))
        .chain(SPRING_IGNORED.iter().map(|(k, _)| *k))
        .find(|k| env(k) == rest)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spring_keys_map_with_their_values_converted() {
        assert_eq!(
            spring("consumer.max-poll-records", "200").unwrap(),
            (Target::Consumer("max.poll.records".into()), "200".into())
        );
        assert_eq!(
            spring("consumer.fetch-max-wait", "PT0.5S").unwrap().1,
            "500"
        );
        assert_eq!(spring("consumer.fetch-max-wait", "2s").unwrap().1, "2000");
        assert_eq!(spring("producer.batch-size", "32KB").unwrap().1, "32768");
        assert_eq!(spring("producer.buffer-memory", "32MB").unwrap().1, "32768");
        assert_eq!(
            spring("consumer.isolation-level", "READ_COMMITTED")
                .unwrap()
                .1,
            "read_committed"
        );
        assert_eq!(
            spring("properties.schema.registry.url", "http://r")
                .unwrap()
                .0,
            Target::RegistryUrl
        );
        assert_eq!(
            spring("producer.transaction-id-prefix", " tx- ").unwrap(),
            (Target::TransactionIdPrefix, "tx-".to_owned())
        );
        assert!(spring("consumer.enable-auto-commit", "true").is_err());
        assert!(spring("consumer.enable-auto-commit", "false").is_ok());
        let typo = spring("consumer.group_id", "g").unwrap_err();
        assert!(typo.contains("spring.kafka.consumer.group_id"), "{typo}");
    }

    #[test]
    fn java_names_become_librdkafka_names() {
        assert_eq!(
            java_to_librdkafka(
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="app" password="s3cret";"#
            )
            .unwrap(),
            vec![
                ("sasl.username".to_owned(), "app".to_owned()),
                ("sasl.password".to_owned(), "s3cret".to_owned())
            ]
        );
        assert_eq!(
            java_to_librdkafka("fetch.max.wait.ms", "100").unwrap(),
            vec![("fetch.wait.max.ms".to_owned(), "100".to_owned())]
        );
        assert!(java_to_librdkafka("key.serializer", "x")
            .unwrap()
            .is_empty());
        assert!(java_to_librdkafka("ssl.truststore.type", "JKS").is_err());
        assert!(java_to_librdkafka("ssl.truststore.location", "/a/b.jks").is_err());
        assert_eq!(
            java_to_librdkafka("ssl.endpoint.identification.algorithm", "").unwrap()[0].1,
            "none"
        );
    }

    #[test]
    fn spring_environment_names() {
        assert_eq!(
            spring_env("SPRING_KAFKA_BOOTSTRAP_SERVERS").as_deref(),
            Some("bootstrap-servers")
        );
        assert_eq!(
            spring_env("SPRING_KAFKA_CONSUMER_GROUP_ID").as_deref(),
            Some("consumer.group-id")
        );
        assert_eq!(
            spring_env("SPRING_KAFKA_PROPERTIES_SASL_MECHANISM").as_deref(),
            Some("properties.sasl.mechanism")
        );
        assert_eq!(spring_env("SPRING_KAFKA_NOPE"), None);
    }
}
