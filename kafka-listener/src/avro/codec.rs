//! The Avro codec: Confluent-framed Avro for keys and values, with schemas
//! registered or looked up on produce and fetched by id on consume, each
//! cached for the life of the codec.

use std::any::TypeId;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use apache_avro::{from_avro_datum, from_value, to_avro_datum, to_value, AvroSchema, Schema};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::OnceCell;

use super::schema_registry_client::{SchemaRegistryClient, SchemaRegistryError};
use super::subject::SubjectNameStrategy;
use super::wire::{self, WireError};
use crate::config::KafkaConfig;
use crate::error::Error;

/// Which part of a record a schema describes: it picks the subject
/// (`<topic>-key` or `<topic>-value` under the default strategy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordPart {
    /// The record key.
    Key,
    /// The record value.
    Value,
}

/// Serializer settings, with the names and defaults of Confluent's
/// `AbstractKafkaSchemaSerDeConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvroSettings {
    /// `auto.register.schemas` (default `true`): register the type's schema
    /// on the first send; when `false` the schema must already be
    /// registered under the subject (looked up, never registered).
    pub auto_register: bool,
    /// `use.latest.version` (default `false`): write with the subject's
    /// latest schema instead of the type's own (the value is resolved to it).
    pub use_latest_version: bool,
    /// `key.subject.name.strategy` (default `TopicNameStrategy`).
    pub key_subject_strategy: SubjectNameStrategy,
    /// `value.subject.name.strategy` (default `TopicNameStrategy`).
    pub value_subject_strategy: SubjectNameStrategy,
}

impl Default for AvroSettings {
    fn default() -> Self {
        Self {
            auto_register: true,
            use_latest_version: false,
            key_subject_strategy: SubjectNameStrategy::TopicName,
            value_subject_strategy: SubjectNameStrategy::TopicName,
        }
    }
}

impl AvroSettings {
    /// Reads `auto.register.schemas`, `use.latest.version`,
    /// `key.subject.name.strategy` and `value.subject.name.strategy` from
    /// client properties (the app's [`KafkaConfig::properties`]).
    ///
    /// # Errors
    /// [`Error::Config`] for a value that is not a boolean or a strategy.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Self, Error> {
        let mut s = Self::default();
        let flag = |k: &str, v: &str| -> Result<bool, Error> {
            v.trim()
                .parse::<bool>()
                .map_err(|_| Error::Config(format!("`{k}={v}`: expected true or false")))
        };
        for (k, v) in props {
            match k.as_str() {
                "auto.register.schemas" => s.auto_register = flag(k, v)?,
                "use.latest.version" => s.use_latest_version = flag(k, v)?,
                "key.subject.name.strategy" => s.key_subject_strategy = v.parse()?,
                "value.subject.name.strategy" => s.value_subject_strategy = v.parse()?,
                _ => {}
            }
        }
        Ok(s)
    }
}

/// Why Avro bytes could not be turned into a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not in the Confluent wire format (no magic byte, too short). Poison pill.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The registry does not know the schema id (error code 40403). Poison
    /// pill.
    #[error("unknown schema id {id}: {source}")]
    UnknownSchema {
        /// The id the record carries.
        id: u32,
        /// The registry's answer.
        #[source]
        source: SchemaRegistryError,
    },
    /// Any other registry failure: down, timeout, 5xx, but also 401/403 or
    /// an unexpected answer. Retryable: an outage or a misconfigured
    /// registry must not send good records to the dead-letter topic.
    #[error("schema id {id}: {source}")]
    Registry {
        /// The id the record carries.
        id: u32,
        /// What failed.
        #[source]
        source: SchemaRegistryError,
    },
    /// The registry's schema for the id is not valid Avro. Poison pill.
    #[error("schema id {id} is not a valid Avro schema: {message}")]
    InvalidWriterSchema {
        /// The id.
        id: u32,
        /// The parser's message.
        message: String,
    },
    /// The body does not match the writer schema, cannot be resolved to the
    /// reader type, or has bytes left over. Poison pill.
    #[error("Avro body written with schema id {id} cannot be read as `{reader}`: {message}")]
    Body {
        /// The writer schema id.
        id: u32,
        /// The reader type.
        reader: &'static str,
        /// Why.
        message: String,
    },
    /// The writer schema has not been fetched yet (extraction outside a
    /// listener container, which fetches it first). Retryable.
    #[error("schema id {id} is not cached yet; it is being fetched")]
    NotCached {
        /// The id.
        id: u32,
    },
}

impl DecodeError {
    /// Whether the record may decode on a later attempt (registry down,
    /// schema not fetched yet); otherwise it is a poison pill.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            DecodeError::Registry { .. } | DecodeError::NotCached { .. }
        )
    }
}

type Cell<T> = Arc<OnceCell<T>>;
/// (subject, schema JSON) -> (id, writer schema).
type Writers = HashMap<(String, String), Cell<(u32, Arc<Schema>)>>;
/// Type -> (reader schema, its JSON).
type Readers = HashMap<TypeId, (Arc<Schema>, Arc<str>)>;

/// Confluent-framed Avro over a [`SchemaRegistryClient`]: what `Avro<T>`,
/// `AvroKey<K>` and [`crate::KafkaTemplate::send_avro`] use. Cheap to clone;
/// clones share the caches.
///
/// Caches, kept for the life of the codec: writer schemas by id (one request
/// per id, shared by concurrent look-ups), schema ids by subject and schema
/// (one registration per subject and type), and reader schemas by type.
#[derive(Clone)]
pub struct AvroCodec {
    inner: Arc<Inner>,
}

struct Inner {
    client: SchemaRegistryClient,
    settings: AvroSettings,
    by_id: Mutex<HashMap<u32, Cell<Arc<Schema>>>>,
    writers: Mutex<Writers>,
    readers: Mutex<Readers>,
}

impl fmt::Debug for AvroCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AvroCodec")
            .field("client", &self.inner.client)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

fn cell<K: std::hash::Hash + Eq, T>(map: &Mutex<HashMap<K, Cell<T>>>, key: K) -> Cell<T> {
    Arc::clone(crate::util::lock(map).entry(key).or_default())
}

/// The most apache-avro may allocate for one length or block count while
/// decoding: 16 MiB (its own default is 512 MiB).
///
/// apache-avro checks an array's or a map's block count against this
/// figure as if it were bytes, then reserves that many values of 32 to 56
/// bytes each: with its default, a hostile 20-byte record asked for 30 GB
/// and aborted the process (found by `fuzz/fuzz_targets/avro_wire.rs`).
/// At 16 MiB the worst reservation is under 1 GiB of address space, which
/// is never touched, and a string or bytes field may still be 16 MiB, far
/// above Kafka's default record size (1 MiB). The setting is global and the
/// first call wins: an app that needs more calls
/// `apache_avro::util::max_allocation_bytes(n)` before it creates a codec.
pub const MAX_AVRO_ALLOCATION: usize = 16 * 1024 * 1024;

impl AvroCodec {
    /// A codec over `client` with `settings`. The first codec of the
    /// process caps apache-avro's allocations at [`MAX_AVRO_ALLOCATION`]
    /// unless the app set its own cap first.
    pub fn new(client: SchemaRegistryClient, settings: AvroSettings) -> Self {
        apache_avro::util::max_allocation_bytes(MAX_AVRO_ALLOCATION);
        Self {
            inner: Arc::new(Inner {
                client,
                settings,
                by_id: Mutex::new(HashMap::new()),
                writers: Mutex::new(HashMap::new()),
                readers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A codec for the registry at `url` with the app's properties:
    /// `basic.auth.user.info` (`user:password`, used when
    /// `basic.auth.credentials.source` is `USER_INFO` or unset),
    /// `schema.registry.ssl.ca.location` (a PEM file of CA certificates to
    /// trust for `https://`) and the settings of
    /// [`AvroSettings::from_properties`].
    ///
    /// # Errors
    /// [`Error::Config`] for a bad URL, setting or CA file.
    pub fn from_config(config: &KafkaConfig, url: &str) -> Result<Self, Error> {
        let props = &config.properties;
        let mut client = SchemaRegistryClient::new(url)?;
        let source = props
            .get("basic.auth.credentials.source")
            .map_or("USER_INFO", String::as_str);
        match (
            source.to_ascii_uppercase().as_str(),
            props.get("basic.auth.user.info"),
        ) {
            ("USER_INFO", Some(info)) => client = client.with_basic_auth(info),
            ("USER_INFO" | "URL", _) => {}
            (other, _) => {
                return Err(Error::Config(format!(
                    "basic.auth.credentials.source={other} is not supported; use USER_INFO or URL"
                )))
            }
        }
        if let Some(path) = props.get("schema.registry.ssl.ca.location") {
            let pem = std::fs::read(path).map_err(|e| {
                Error::Config(format!("schema.registry.ssl.ca.location=`{path}`: {e}"))
            })?;
            client = client.with_ca_pem(&pem)?;
        }
        Ok(Self::new(client, AvroSettings::from_properties(props)?))
    }

    /// The registry client.
    pub fn client(&self) -> &SchemaRegistryClient {
        &self.inner.client
    }

    /// The settings.
    pub fn settings(&self) -> &AvroSettings {
        &self.inner.settings
    }

    /// The writer schema of `id`, from the cache or fetched once
    /// (concurrent callers of one id share one request).
    ///
    /// # Errors
    /// [`DecodeError::UnknownSchema`], [`DecodeError::Registry`] or
    /// [`DecodeError::InvalidWriterSchema`]; failures are not cached.
    pub async fn schema(&self, id: u32) -> Result<Arc<Schema>, DecodeError> {
        let cell = cell(&self.inner.by_id, id);
        let fetched = cell
            .get_or_try_init(|| async {
                let text =
                    self.inner
                        .client
                        .schema_by_id(id)
                        .await
                        .map_err(|source| match source {
                            SchemaRegistryError::NotFound { code: 40403, .. } => {
                                DecodeError::UnknownSchema { id, source }
                            }
                            source => DecodeError::Registry { id, source },
                        })?;
                Schema::parse_str(&text).map(Arc::new).map_err(|e| {
                    DecodeError::InvalidWriterSchema {
                        id,
                        message: e.to_string(),
                    }
                })
            })
            .await
            .cloned();
        if fetched.is_err() {
            // Keep no entry for ids that failed (unknown ids of poison
            // pills would otherwise pile up); waiters already hold the cell.
            let mut by_id = crate::util::lock(&self.inner.by_id);
            if by_id.get(&id).is_some_and(|c| c.get().is_none()) {
                by_id.remove(&id);
            }
        }
        fetched
    }

    /// The writer schema of `id` if it has been fetched.
    pub fn cached_schema(&self, id: u32) -> Option<Arc<Schema>> {
        crate::util::lock(&self.inner.by_id)
            .get(&id)
            .and_then(|c| c.get().cloned())
    }

    /// A future that fetches the writer schema of framed `bytes`, or `None`
    /// when there is nothing to fetch (cached, or not framed: decoding then
    /// reports it).
    pub fn prefetch(
        &self,
        bytes: &[u8],
    ) -> Option<impl Future<Output = Result<(), DecodeError>> + Send + 'static> {
        let (id, _) = wire::decode(bytes).ok()?;
        if self.cached_schema(id).is_some() {
            return None;
        }
        let codec = self.clone();
        Some(async move { codec.schema(id).await.map(drop) })
    }

    /// The reader schema of `T` and its full name, computed once per type.
    fn reader_schema<T: AvroSchema + 'static>(&self) -> (Arc<Schema>, Arc<str>) {
        let mut readers = crate::util::lock(&self.inner.readers);
        readers
            .entry(TypeId::of::<T>())
            .or_insert_with(|| {
                let schema = T::get_schema();
                let json = serde_json::to_string(&schema).unwrap_or_default();
                (Arc::new(schema), Arc::from(json))
            })
            .clone()
    }

    /// Decodes framed `bytes` into a `T` with the cached writer schema,
    /// resolving the writer schema to `T`'s (Avro schema resolution: fields
    /// added with defaults are filled in, removed fields are skipped).
    ///
    /// # Errors
    /// [`DecodeError::NotCached`] when the writer schema was not fetched
    /// (see [`Self::prefetch`]); the other variants as for [`Self::decode`].
    pub fn decode_cached<T>(&self, bytes: &[u8]) -> Result<T, DecodeError>
    where
        T: DeserializeOwned + AvroSchema + 'static,
    {
        let (id, body) = wire::decode(bytes)?;
        let writer = self
            .cached_schema(id)
            .ok_or(DecodeError::NotCached { id })?;
        let (reader, _) = self.reader_schema::<T>();
        let body_error = |message: String| DecodeError::Body {
            id,
            reader: std::any::type_name::<T>(),
            message,
        };
        let mut rest = body;
        let value = from_avro_datum(&writer, &mut rest, Some(&reader))
            .map_err(|e| body_error(e.to_string()))?;
        if !rest.is_empty() {
            return Err(body_error(format!(
                "{} bytes left after the datum",
                rest.len()
            )));
        }
        from_value::<T>(&value).map_err(|e| body_error(e.to_string()))
    }

    /// Decodes framed `bytes` into a `T`, fetching the writer schema first
    /// if needed.
    ///
    /// # Errors
    /// [`DecodeError`]: a poison pill unless [`DecodeError::is_retryable`].
    pub async fn decode<T>(&self, bytes: &[u8]) -> Result<T, DecodeError>
    where
        T: DeserializeOwned + AvroSchema + 'static,
    {
        if let Some(fetch) = self.prefetch(bytes) {
            fetch.await?;
        }
        self.decode_cached(bytes)
    }

    /// The schema id and writer schema for `T` under `subject`: registered
    /// (`auto.register.schemas`), the subject's latest
    /// (`use.latest.version`), or looked up; once per subject and type.
    async fn writer_for<T: AvroSchema + 'static>(
        &self,
        subject: String,
    ) -> Result<(u32, Arc<Schema>), Error> {
        let (schema, json) = self.reader_schema::<T>();
        let cell = cell(&self.inner.writers, (subject.clone(), json.to_string()));
        let client = &self.inner.client;
        let settings = &self.inner.settings;
        cell.get_or_try_init(|| async {
            if settings.use_latest_version {
                let latest = client.latest(&subject).await?;
                let parsed = Schema::parse_str(&latest.schema).map_err(|e| {
                    Error::Serialization(
                        format!("latest schema of `{subject}` is not valid Avro: {e}").into(),
                    )
                })?;
                Ok((latest.id, Arc::new(parsed)))
            } else if settings.auto_register {
                Ok((client.register(&subject, &json).await?, schema))
            } else {
                Ok((client.lookup(&subject, &json).await?.id, schema))
            }
        })
        .await
        .cloned()
    }

    /// Encodes `value` for `topic` in the Confluent wire format: the
    /// subject's schema id (see [`AvroSettings`]) and the Avro body.
    ///
    /// # Errors
    /// [`Error::SchemaRegistry`] when the registry refuses the schema
    /// ([`SchemaRegistryError::Incompatible`]) or cannot be reached;
    /// [`Error::Serialization`] when the value does not fit the schema;
    /// [`Error::Config`] for a subject strategy that needs a named schema.
    pub async fn encode<T>(
        &self,
        topic: &str,
        part: RecordPart,
        value: &T,
    ) -> Result<Vec<u8>, Error>
    where
        T: Serialize + AvroSchema + 'static,
    {
        let (schema, _) = self.reader_schema::<T>();
        let name = schema.name().map(|n| n.fullname(None));
        let (is_key, strategy) = match part {
            RecordPart::Key => (true, self.inner.settings.key_subject_strategy),
            RecordPart::Value => (false, self.inner.settings.value_subject_strategy),
        };
        let subject = strategy.subject(topic, is_key, name.as_deref())?;
        let (id, writer) = self.writer_for::<T>(subject).await?;
        let ser = |e: apache_avro::Error| Error::Serialization(Box::new(e));
        let value = to_value(value)
            .map_err(ser)?
            .resolve(&writer)
            .map_err(ser)?;
        let body = to_avro_datum(&writer, value).map_err(ser)?;
        Ok(wire::encode(id, &body))
    }
}
