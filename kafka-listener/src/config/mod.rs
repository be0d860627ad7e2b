//! Client configuration in the manner of Spring Boot's `spring.kafka.*`:
//! from code, from the environment, or from a `.properties` or YAML file, layered
//! in that order of precedence (file, then environment, then code), with
//! Spring's and the Java client's property names mapped to librdkafka's
//! ([`names`]).

mod file;
mod isolation;
mod names;
pub use self::isolation::IsolationLevel;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rdkafka::ClientConfig;

use crate::error::{Error, Result};

/// The producer's default `partitioner`: librdkafka's `murmur2_random`
/// hashes a key as the Java client's `BuiltInPartitioner` does (murmur2,
/// positive, modulo the partition count), so a key lands on the same
/// partition whether a Rust or a Java service sent it; keyless records are
/// spread at random. librdkafka's own default, `consistent_random` (CRC32),
/// puts the same key on another partition than a Java producer would. A
/// `partitioner` property in the configuration wins.
pub(crate) const JAVA_PARTITIONER: &str = "murmur2_random";

/// The Java consumer's `max.poll.records`: the container's poll burst
/// size, not a librdkafka property.
pub(crate) const MAX_POLL_RECORDS: &str = "max.poll.records";

/// Property names whose values are never printed.
const SECRET_MARKERS: &[&str] = &[
    "password",
    "secret",
    "jaas",
    "user.info",
    "token",
    "ssl.key.pem",
    "credentials",
];

/// Whether a property holds a secret (redacted in `Debug`).
pub(crate) fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_MARKERS.iter().any(|m| key.contains(m))
}

/// Bootstrap servers, client properties and defaults for every listener and
/// template of an app.
///
/// Built in code ([`KafkaConfig::new`] and the setters), from the
/// environment ([`KafkaConfig::from_env`]), from a `.properties` or YAML file
/// ([`KafkaConfig::from_file`]), or layered: file, then environment, then
/// code ([`KafkaConfig::merged`]: a later layer wins key by key).
///
/// Without bootstrap servers an app does not start, unless it opted into
/// the embedded broker (feature `embedded`: [`KafkaConfig::embedded`],
/// `KAFKA_EMBEDDED=true`, or `KafkaAppBuilder::embedded`). `Debug` redacts
/// secrets (any property whose name contains `password`, `secret`, `jaas`,
/// `user.info`, `token` or `credentials`, and a password in the registry
/// URL).
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct KafkaConfig {
    /// `host:port[,host:port...]`.
    pub(crate) bootstrap_servers: Option<String>,
    /// librdkafka properties for every client (consumers and producers).
    pub(crate) properties: BTreeMap<String, String>,
    /// librdkafka properties for consumers only.
    pub(crate) consumer_properties: BTreeMap<String, String>,
    /// librdkafka properties for producers only.
    pub(crate) producer_properties: BTreeMap<String, String>,
    /// Confluent Schema Registry URL(s).
    pub(crate) schema_registry_url: Option<String>,
    /// The drain timeout of a stopping container.
    pub(crate) shutdown_timeout: Option<Duration>,
    /// The `transactional.id` prefix of the transactional producers.
    pub(crate) transaction_id_prefix: Option<String>,
    /// Whether the embedded broker may start when no bootstrap servers are
    /// configured.
    pub(crate) embedded: Option<bool>,
    /// Settings that could not be mapped (a JKS store, a refused Spring
    /// key): reported by [`KafkaConfig::validate`] and at app build.
    pub(crate) invalid: Vec<String>,
}

impl KafkaConfig {
    /// An empty configuration: no bootstrap servers, library defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a property for consumers only (a Java client name is mapped as
    /// for [`Self::property`]).
    pub fn consumer_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.put(Scope::Consumer, &key.into(), &value.into());
        self
    }

    /// Sets a property for producers only (a Java client name is mapped as
    /// for [`Self::property`]).
    pub fn producer_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.put(Scope::Producer, &key.into(), &value.into());
        self
    }

    /// Stores a client property under librdkafka's name: a Java client
    /// name is renamed, expanded or left out (see `names`); a value
    /// librdkafka cannot use is kept in `invalid`. `schema.registry.url`
    /// and `bootstrap.servers` set those settings.
    fn put(&mut self, scope: Scope, key: &str, value: &str) {
        let key = key.trim();
        match key {
            "bootstrap.servers" => {
                self.bootstrap_servers = Some(value.trim().to_owned());
                return;
            }
            "schema.registry.url" => {
                self.schema_registry_url = Some(value.trim().to_owned());
                return;
            }
            _ => {}
        }
        let pairs = match names::java_to_librdkafka(key, value) {
            Ok(pairs) => pairs,
            Err(e) => {
                self.invalid.push(e);
                return;
            }
        };
        if pairs.is_empty() {
            tracing::debug!(
                property = key,
                "a Java client property without a librdkafka equivalent: left out"
            );
        }
        let map = match scope {
            Scope::Common => &mut self.properties,
            Scope::Consumer => &mut self.consumer_properties,
            Scope::Producer => &mut self.producer_properties,
        };
        map.extend(pairs);
    }

    /// Sets one setting by name, as a configuration file line does:
    ///
    /// - Spring Boot's `spring.kafka.*` names (`spring.kafka.bootstrap-servers`,
    ///   `spring.kafka.consumer.group-id`, `spring.kafka.producer.acks`,
    ///   `spring.kafka.properties.<name>`, ...; the table is in
    ///   docs/src/connecting.md);
    /// - `bootstrap.servers` and `schema.registry.url`;
    /// - `consumer.<name>` and `producer.<name>` for one kind of client;
    /// - any other name: a client property for every client, with the Java
    ///   client's names mapped to librdkafka's (`sasl.jaas.config`,
    ///   `ssl.truststore.location`, `fetch.max.wait.ms`, ...).
    ///
    /// A setting that cannot be honoured (an unknown or refused
    /// `spring.kafka.*` key, a JKS store) is reported by
    /// [`Self::validate`], and an app does not build with it.
    pub fn setting(mut self, key: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        let key = key.trim();
        if let Some(rest) = key.strip_prefix("spring.kafka.") {
            match names::spring(rest, &value) {
                Ok((names::Target::Bootstrap, v)) => self.bootstrap_servers = Some(v),
                Ok((names::Target::RegistryUrl, v)) => self.schema_registry_url = Some(v),
                Ok((names::Target::TransactionIdPrefix, v)) => {
                    self.transaction_id_prefix = Some(v).filter(|v| !v.is_empty());
                }
                Ok((names::Target::Common(k), v)) => self.put(Scope::Common, &k, &v),
                Ok((names::Target::Consumer(k), v)) => self.put(Scope::Consumer, &k, &v),
                Ok((names::Target::Producer(k), v)) => self.put(Scope::Producer, &k, &v),
                Ok((names::Target::Ignored(why), _)) => {
                    tracing::debug!(setting = key, "ignored: {why}");
                }
                Err(e) => self.invalid.push(e),
            }
        } else if let Some(rest) = key.strip_prefix("consumer.") {
            self.put(Scope::Consumer, rest, &value);
        } else if let Some(rest) = key.strip_prefix("producer.") {
            self.put(Scope::Producer, rest, &value);
        } else {
            self.put(Scope::Common, key, &value);
        }
        self
    }

    /// Checks that every setting could be mapped.
    ///
    /// # Errors
    /// [`Error::Config`] listing the settings that cannot be honoured.
    pub fn validate(&self) -> Result<()> {
        if self.invalid.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "configuration: {}",
                self.invalid.join("; ")
            )))
        }
    }

    /// Sets a consumer property unless it is configured already (for every
    /// client or for consumers): a default that configuration overrides.
    pub fn consumer_default(mut self, key: &str, value: impl Into<String>) -> Self {
        if self.consumer_value(key).is_none() {
            self.consumer_properties
                .insert(key.to_owned(), value.into());
        }
        self
    }

    /// Sets a producer property unless it is configured already (for every
    /// client or for producers).
    pub fn producer_default(mut self, key: &str, value: impl Into<String>) -> Self {
        if self.producer_value(key).is_none() {
            self.producer_properties
                .insert(key.to_owned(), value.into());
        }
        self
    }

    /// Sets the Confluent Schema Registry URL(s): comma-separated, optionally
    /// with `user:password@` (basic auth may also come from the property
    /// `basic.auth.user.info`).
    pub fn schema_registry_url(mut self, url: impl Into<String>) -> Self {
        self.schema_registry_url = Some(url.into());
        self
    }

    /// Sets how long a stopping container waits for the records in hand
    /// (default 10 s, Spring's `shutdownTimeout`).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = Some(timeout);
        self
    }

    /// Allows (`true`) the embedded broker when no bootstrap servers are
    /// configured (feature `embedded`; for development and tests: its
    /// records live in memory and are lost at exit).
    pub fn embedded(mut self, allow: bool) -> Self {
        self.embedded = Some(allow);
        self
    }

    /// The bootstrap servers, when configured.
    pub fn bootstrap(&self) -> Option<&str> {
        self.bootstrap_servers.as_deref()
    }

    /// The Schema Registry URL, when configured.
    pub fn registry_url(&self) -> Option<&str> {
        self.schema_registry_url.as_deref()
    }

    /// Whether the embedded broker may start when no bootstrap servers are
    /// configured.
    pub fn allows_embedded(&self) -> bool {
        self.embedded.unwrap_or(false)
    }

    /// The value a consumer gets for `key` (consumer property, else common).
    pub fn consumer_value(&self, key: &str) -> Option<&str> {
        self.consumer_properties
            .get(key)
            .or_else(|| self.properties.get(key))
            .map(String::as_str)
    }

    /// The value a producer gets for `key` (producer property, else common).
    pub fn producer_value(&self, key: &str) -> Option<&str> {
        self.producer_properties
            .get(key)
            .or_else(|| self.properties.get(key))
            .map(String::as_str)
    }

    /// The common and consumer properties, as a consumer gets them (a
    /// consumer property overrides a common one).
    pub fn consumer_properties(&self) -> BTreeMap<String, String> {
        let mut all = self.properties.clone();
        all.extend(self.consumer_properties.clone());
        all
    }

    /// This configuration with `over` laid on top: each setting and each
    /// property that `over` has wins. Layers are merged file, then
    /// environment, then code:
    ///
    /// ```no_run
    /// # use kafka_listener::KafkaConfig;
    /// # fn f() -> Result<(), kafka_listener::Error> {
    /// let config = KafkaConfig::from_file("kafka.properties")?
    ///     .merged(KafkaConfig::from_env()?)
    ///     .merged(KafkaConfig::new().consumer_property("max.poll.records", "200"));
    /// # Ok(()) }
    /// ```
    pub fn merged(mut self, over: KafkaConfig) -> Self {
        if over.bootstrap_servers.is_some() {
            self.bootstrap_servers = over.bootstrap_servers;
        }
        if over.schema_registry_url.is_some() {
            self.schema_registry_url = over.schema_registry_url;
        }
        if over.shutdown_timeout.is_some() {
            self.shutdown_timeout = over.shutdown_timeout;
        }
        if over.transaction_id_prefix.is_some() {
            self.transaction_id_prefix = over.transaction_id_prefix;
        }
        if over.embedded.is_some() {
            self.embedded = over.embedded;
        }
        self.properties.extend(over.properties);
        self.consumer_properties.extend(over.consumer_properties);
        self.producer_properties.extend(over.producer_properties);
        self.invalid.extend(over.invalid);
        self
    }

    /// The layered configuration: the file named by `KAFKA_CONFIG_FILE`
    /// (when set), then the environment ([`Self::from_env`]) over it. Code
    /// goes last: call setters on the result, or [`Self::merged`] with a
    /// configuration built in code.
    ///
    /// # Errors
    /// As [`Self::from_file`] and [`Self::from_env`].
    pub fn load() -> Result<Self> {
        let file = match std::env::var("KAFKA_CONFIG_FILE") {
            Ok(path) if !path.trim().is_empty() => Self::from_file(path.trim())?,
            _ => Self::default(),
        };
        Ok(file.merged(Self::from_env()?))
    }

    /// Sets the bootstrap servers.
    pub fn bootstrap_servers(mut self, servers: impl Into<String>) -> Self {
        self.bootstrap_servers = Some(servers.into());
        self
    }

    /// Sets a property for every client, under librdkafka's name: the Java
    /// client's names are mapped (`sasl.jaas.config` with the PLAIN or
    /// SCRAM login module gives `sasl.username` and `sasl.password`,
    /// `ssl.truststore.location` of a PEM file gives `ssl.ca.location`,
    /// `fetch.max.wait.ms` gives `fetch.wait.max.ms`, serializer classes
    /// are left out; table in docs/src/connecting.md), and
    /// `schema.registry.url` sets the Schema Registry URL.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.put(Scope::Common, &key.into(), &value.into());
        self
    }

    /// Reads the environment:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `KAFKA_BOOTSTRAP_SERVERS` | bootstrap servers (unset or empty: none) |
    /// | `KAFKA_EMBEDDED` | `true` allows the embedded broker when no bootstrap servers are set |
    /// | `KAFKA_PROPERTY_<NAME>` | a property for every client; `<NAME>` upper-case with `_` for `.`: `KAFKA_PROPERTY_SECURITY_PROTOCOL` is `security.protocol` |
    /// | `KAFKA_CONSUMER_<NAME>` / `KAFKA_PRODUCER_<NAME>` | the same, consumers or producers only |
    /// | `SCHEMA_REGISTRY_URL` | Schema Registry URL (also `KAFKA_PROPERTY_SCHEMA_REGISTRY_URL`) |
    /// | `KAFKA_SHUTDOWN_TIMEOUT` | drain timeout, humantime (`10s`, `500ms`) |
    /// | `KAFKA_TRANSACTION_ID_PREFIX` | the `transactional.id` prefix ([`Self::transaction_id_prefix`]) |
    ///
    /// # Errors
    /// [`Error::Config`] for a `KAFKA_SHUTDOWN_TIMEOUT` that is not a
    /// duration or a `KAFKA_EMBEDDED` that is not `true` or `false`.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(std::env::vars())
    }

    /// As [`Self::from_env`], from the given variables.
    ///
    /// # Errors
    /// As [`Self::from_env`].
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut config = Self::default();
        let prop = |rest: &str| rest.to_ascii_lowercase().replace('_', ".");
        // Spring's names first: this crate's own variables win.
        let (spring, vars): (Vec<_>, Vec<_>) = vars
            .into_iter()
            .partition(|(k, _)| k.starts_with("SPRING_KAFKA_"));
        for (k, v) in spring {
            if let Some(key) = names::spring_env(&k) {
                config = config.setting(&format!("spring.kafka.{key}"), v);
            }
        }
        for (k, v) in vars {
            if k == "KAFKA_BOOTSTRAP_SERVERS" {
                if !v.trim().is_empty() {
                    config.bootstrap_servers = Some(v);
                }
            } else if k == "SCHEMA_REGISTRY_URL" {
                if !v.trim().is_empty() {
                    config.schema_registry_url = Some(v);
                }
            } else if k == "KAFKA_EMBEDDED" {
                config.embedded = Some(match v.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" | "" => false,
                    _ => {
                        return Err(Error::Config(format!(
                            "KAFKA_EMBEDDED=`{v}`: expected `true` or `false`"
                        )))
                    }
                });
            } else if k == "KAFKA_PROPERTY_SCHEMA_REGISTRY_URL" {
                if !v.trim().is_empty() && config.schema_registry_url.is_none() {
                    config.schema_registry_url = Some(v);
                }
            } else if k == "KAFKA_TRANSACTION_ID_PREFIX" {
                if !v.trim().is_empty() {
                    config.transaction_id_prefix = Some(v.trim().to_owned());
                }
            } else if k == "KAFKA_SHUTDOWN_TIMEOUT" {
                let d = humantime::parse_duration(&v)
                    .map_err(|e| Error::Config(format!("KAFKA_SHUTDOWN_TIMEOUT=`{v}`: {e}")))?;
                config.shutdown_timeout = Some(d);
            } else if let Some(rest) = k.strip_prefix("KAFKA_PROPERTY_") {
                config.put(Scope::Common, &prop(rest), &v);
            } else if let Some(rest) = k.strip_prefix("KAFKA_CONSUMER_") {
                config.put(Scope::Consumer, &prop(rest), &v);
            } else if let Some(rest) = k.strip_prefix("KAFKA_PRODUCER_") {
                config.put(Scope::Producer, &prop(rest), &v);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Enables Kafka transactions: the app's template gets transactional
    /// producers whose `transactional.id` starts with `prefix`
    /// (`<prefix><listener id>.<consumer index>` for a `transactional =
    /// true` listener, `<prefix>template-<n>` for
    /// [`crate::KafkaTemplate::in_transaction`]). Spring Boot's
    /// `spring.kafka.producer.transaction-id-prefix`; also
    /// `KAFKA_TRANSACTION_ID_PREFIX`. Two instances of an app that run at
    /// once need different prefixes (a new producer fences an old one with
    /// the same id), and an instance that restarts should keep its prefix
    /// (so that its new producers abort what the old ones left open).
    pub fn transaction_id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.transaction_id_prefix = Some(prefix.into()).filter(|p| !p.trim().is_empty());
        self
    }

    /// The configured `transactional.id` prefix, if any.
    pub fn transaction_prefix(&self) -> Option<&str> {
        self.transaction_id_prefix.as_deref()
    }

    /// The drain timeout in effect.
    pub fn effective_shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout.unwrap_or(Duration::from_secs(10))
    }

    /// The common then `specific` properties that librdkafka takes: the
    /// Schema Registry and Avro serializer properties (`basic.auth.*`,
    /// `schema.registry.*`, `auto.register.schemas`, ...) are left out.
    fn client_properties<'a>(
        &'a self,
        specific: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = (&'a String, &'a String)> {
        self.properties
            .iter()
            .chain(specific)
            .filter(|(k, _)| !is_serde_property(k) && k.as_str() != MAX_POLL_RECORDS)
    }

    /// The consumer `ClientConfig` for `bootstrap` (common, then consumer
    /// properties).
    pub(crate) fn consumer_config(&self, bootstrap: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", bootstrap);
        for (k, v) in self.client_properties(&self.consumer_properties) {
            c.set(k, v);
        }
        c
    }

    /// The listener containers' base `ClientConfig`: [`Self::consumer_config`]
    /// and `max.poll.records`, which only the container reads (librdkafka
    /// refuses it).
    pub(crate) fn container_config(&self, bootstrap: &str) -> ClientConfig {
        let mut c = self.consumer_config(bootstrap);
        if let Some(n) = self.consumer_value(MAX_POLL_RECORDS) {
            c.set(MAX_POLL_RECORDS, n);
        }
        c
    }

    /// The producer `ClientConfig` for `bootstrap`: idempotent with
    /// `acks=all` and the Java client's partitioner ([`JAVA_PARTITIONER`])
    /// unless the properties say otherwise.
    pub(crate) fn producer_config(&self, bootstrap: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", JAVA_PARTITIONER);
        for (k, v) in self.client_properties(&self.producer_properties) {
            c.set(k, v);
        }
        c
    }
}

/// Confluent property names that configure the Avro serializers and the
/// registry client (`AbstractKafkaSchemaSerDeConfig`), not librdkafka; they
/// are left out of client configs.
pub(crate) fn is_serde_property(key: &str) -> bool {
    key.starts_with("basic.auth.")
        || key.starts_with("schema.registry.")
        || matches!(
            key,
            "auto.register.schemas"
                | "use.latest.version"
                | "key.subject.name.strategy"
                | "value.subject.name.strategy"
        )
}

/// Which clients a property is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Common,
    Consumer,
    Producer,
}

struct Redacted<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                (
                    k,
                    if is_secret(k) {
                        "<redacted>"
                    } else {
                        v.as_str()
                    },
                )
            }))
            .finish()
    }
}

/// `scheme://user:password@host` -> `scheme://user:<redacted>@host`.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:<redacted>{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("properties", &Redacted(&self.properties))
            .field("consumer_properties", &Redacted(&self.consumer_properties))
            .field("producer_properties", &Redacted(&self.producer_properties))
            .field(
                "schema_registry_url",
                &self.schema_registry_url.as_deref().map(redact_url),
            )
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("transaction_id_prefix", &self.transaction_id_prefix)
            .field("embedded", &self.embedded)
            .finish()
    }
}

#[cfg(test)]
mod tests;
