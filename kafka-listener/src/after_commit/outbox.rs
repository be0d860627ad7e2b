//! The transactional outbox: events whose type names a topic and a key are
//! written to a table in the publishing transaction, and the relay
//! (`relay.rs`) sends them to Kafka after the commit.
//!
//! The table (default name `kafka_outbox`) is created by the library with
//! SQL that differs only in the id column between SQLite and PostgreSQL:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `id` | 64-bit integer, increasing | relay order (per key) |
//! | `event_id` | TEXT, unique | UUID v4; the `kafka_listener-event-id` header |
//! | `event_type` | TEXT | the event name (`#[outbox(name = "...")]`); the `kafka_listener-event-type` header |
//! | `topic` | TEXT | destination topic |
//! | `msg_key` | TEXT | record key |
//! | `payload` | TEXT | the event as JSON (the record value, or with `format = "avro"` what the relay encodes it from) |
//! | `created_at` | BIGINT | publish time, ms since the Unix epoch (the record timestamp) |
//! | `sent_at` | BIGINT, NULL until sent | when the broker acknowledged it, ms |
//! | `attempts` | BIGINT | failed sends so far |
//! | `last_error` | TEXT, NULL | the last send error |

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::{AnyPool, Row};

use super::Error;

/// An event that goes to Kafka through the outbox: a topic, a key, a stable
/// name and a JSON body. Implement it with `#[derive(OutboxEvent)]` and
/// `#[outbox(topic = "...", key = "field")]`, which also registers the type
/// so that `EventTx::publish` writes it to the outbox (and, with
/// `format = "avro"`, so that the relay sends it as Avro).
pub trait OutboxEvent: Serialize + Send + Sync + 'static {
    /// The destination topic.
    const TOPIC: &'static str;

    /// The event's stable name: stored in the outbox row's `event_type`,
    /// sent in the `kafka_listener-event-type` header, and how the relay
    /// finds the type of a row (and so its format). `#[outbox(name =
    /// "...")]`; by default the type's name without its module path
    /// (`CouponIssued`), so that moving the type does not change it, while
    /// renaming it does: name types explicitly when rows may be pending
    /// across a deploy. Unique per binary
    /// ([`TransactionalEventsBuilder::build`](super::TransactionalEventsBuilder::build)
    /// refuses duplicates).
    const NAME: &'static str;

    /// The record key: events of one key are relayed in publish order and
    /// land on one partition.
    fn key(&self) -> String;
}

/// An encoded outbox event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutboxMessage {
    /// The event's [`OutboxEvent::NAME`].
    pub(crate) event_type: &'static str,
    pub(crate) topic: &'static str,
    pub(crate) key: String,
    pub(crate) payload: String,
}

type EncodeFn = fn(&(dyn Any + Send + Sync)) -> Result<OutboxMessage, serde_json::Error>;

/// Turns an outbox row's JSON into the record value for its topic, in the
/// Confluent wire format (registering the schema as `KafkaTemplate::send_avro`
/// does).
#[cfg(feature = "avro")]
pub(crate) type AvroEncodeFn =
    for<'a> fn(
        &'a crate::avro::AvroCodec,
        &'a str,
        &'a str,
    ) -> futures::future::BoxFuture<'a, Result<Vec<u8>, crate::Error>>;

/// How the relay turns an outbox row into its record value.
#[derive(Clone, Copy)]
pub(crate) enum ValueFormat {
    /// The row's JSON, as it is.
    Json,
    /// Avro in the Confluent wire format, encoded from the row's JSON when
    /// the relay sends it.
    #[cfg(feature = "avro")]
    Avro(AvroEncodeFn),
}

impl std::fmt::Debug for ValueFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueFormat::Json => f.write_str("Json"),
            #[cfg(feature = "avro")]
            ValueFormat::Avro(_) => f.write_str("Avro"),
        }
    }
}

/// An outbox event type, submitted to `inventory` by
/// `#[derive(OutboxEvent)]`.
#[derive(Debug)]
pub struct OutboxRegistration {
    event_type: fn() -> TypeId,
    /// [`OutboxEvent::NAME`].
    name: &'static str,
    /// The Rust type path: what rows of the previous version hold.
    type_name: fn() -> &'static str,
    encode: EncodeFn,
    format: ValueFormat,
}

inventory::collect!(OutboxRegistration);

impl OutboxRegistration {
    /// The registration of `E`, sent as its JSON.
    pub const fn of<E: OutboxEvent>() -> Self {
        Self {
            event_type: TypeId::of::<E>,
            name: E::NAME,
            type_name: std::any::type_name::<E>,
            encode: encode::<E>,
            format: ValueFormat::Json,
        }
    }

    /// The registration of `E`, kept in the outbox as JSON and sent as Avro
    /// in the Confluent wire format: when the relay sends a row it reads
    /// the JSON back into `E` and encodes it with the relay template's
    /// [`AvroCodec`](crate::avro::AvroCodec) under the topic's subject
    /// (`<topic>-value` by default), registering `E`'s schema on first use.
    #[cfg(feature = "avro")]
    pub const fn avro<E>() -> Self
    where
        E: OutboxEvent + serde::de::DeserializeOwned + crate::avro::AvroSchema,
    {
        Self {
            event_type: TypeId::of::<E>,
            name: E::NAME,
            type_name: std::any::type_name::<E>,
            encode: encode::<E>,
            format: ValueFormat::Avro(encode_avro::<E>),
        }
    }
}

fn encode<E: OutboxEvent>(
    event: &(dyn Any + Send + Sync),
) -> Result<OutboxMessage, serde_json::Error> {
    let event = event
        .downcast_ref::<E>()
        .expect("the registry maps the TypeId of E to encode::<E>");
    Ok(OutboxMessage {
        event_type: E::NAME,
        topic: E::TOPIC,
        key: event.key(),
        payload: serde_json::to_string(event)?,
    })
}

#[cfg(feature = "avro")]
fn encode_avro<'a, E>(
    codec: &'a crate::avro::AvroCodec,
    topic: &'a str,
    payload: &'a str,
) -> futures::future::BoxFuture<'a, Result<Vec<u8>, crate::Error>>
where
    E: OutboxEvent + serde::de::DeserializeOwned + crate::avro::AvroSchema,
{
    Box::pin(async move {
        let event: E = serde_json::from_str(payload).map_err(|e| {
            crate::Error::Serialization(
                format!(
                    "outbox row of `{}` does not read back from its JSON: {e}",
                    std::any::type_name::<E>()
                )
                .into(),
            )
        })?;
        codec
            .encode(topic, crate::avro::RecordPart::Value, &event)
            .await
    })
}

/// The encoder of an outbox event type, if `event_type` is one.
pub(crate) fn encoder(event_type: TypeId) -> Option<EncodeFn> {
    static REGISTRY: OnceLock<HashMap<TypeId, EncodeFn>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            inventory::iter::<OutboxRegistration>
                .into_iter()
                .map(|r| ((r.event_type)(), r.encode))
                .collect()
        })
        .get(&event_type)
        .copied()
}

/// An event type the relay knows, found by a row's `event_type`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KnownEvent {
    /// The type's [`OutboxEvent::NAME`] (the header sent).
    pub(crate) name: &'static str,
    pub(crate) format: ValueFormat,
}

/// The event type of rows whose `event_type` column is `event_type`: by
/// its name, else (rows of the previous version) by its Rust type path;
/// `None` for a name this binary does not register (renamed, removed, or
/// written by a newer version).
pub(crate) fn known_event(event_type: &str) -> Option<KnownEvent> {
    static KNOWN: OnceLock<HashMap<&'static str, KnownEvent>> = OnceLock::new();
    KNOWN
        .get_or_init(|| {
            let registrations: Vec<&OutboxRegistration> =
                inventory::iter::<OutboxRegistration>.into_iter().collect();
            let mut known = HashMap::new();
            // Type paths first, so that a name wins over an equal path.
            for r in &registrations {
                let event = KnownEvent {
                    name: r.name,
                    format: r.format,
                };
                known.insert((r.type_name)(), event);
            }
            for r in &registrations {
                let event = KnownEvent {
                    name: r.name,
                    format: r.format,
                };
                known.insert(r.name, event);
            }
            known
        })
        .get(event_type)
        .copied()
}

/// Checks the registered event names: each valid (see
/// [`valid_name`]) and used by one type only.
///
/// # Errors
/// [`Error::Config`] naming the name and the types.
pub(crate) fn check_names() -> Result<(), Error> {
    let names: Vec<(&'static str, &'static str)> = inventory::iter::<OutboxRegistration>
        .into_iter()
        .map(|r| (r.name, (r.type_name)()))
        .collect();
    if let Some((name, type_name)) = names.iter().find(|(n, _)| !valid_name(n)) {
        return Err(Error::Config(format!(
            "outbox event `{type_name}` has the invalid name {name:?}: 1 to 249 characters without whitespace or control characters"
        )));
    }
    if let Some((name, types)) = duplicates(names).into_iter().next() {
        return Err(Error::Config(format!(
            "outbox event name `{name}` is used by {}; give each `#[outbox(name = \"...\")]` its own",
            types.join(" and ")
        )));
    }
    Ok(())
}

/// 1 to 249 characters without whitespace or control characters (as
/// `#[outbox(name = "...")]` checks at compile time).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 249
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn duplicates(
    names: impl IntoIterator<Item = (&'static str, &'static str)>,
) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut by_name: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for (name, type_name) in names {
        match by_name.iter_mut().find(|(n, _)| *n == name) {
            Some((_, types)) => types.push(type_name),
            None => by_name.push((name, vec![type_name])),
        }
    }
    by_name.retain(|(_, types)| types.len() > 1);
    by_name
}

/// Which database holds the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of `pool` (`Error::Config` for anything else).
    pub(crate) async fn of(pool: &AnyPool) -> Result<Self, Error> {
        let conn = pool.acquire().await?;
        match conn.backend_name() {
            "SQLite" => Ok(Backend::Sqlite),
            "PostgreSQL" => Ok(Backend::Postgres),
            other => Err(Error::Config(format!(
                "the outbox supports SQLite and PostgreSQL, not {other}"
            ))),
        }
    }
}

/// One row of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Relay order: increasing in insert order.
    pub id: i64,
    /// The `kafka_listener-event-id` header (UUID v4).
    pub event_id: String,
    /// The event's name ([`OutboxEvent::NAME`]; rows written before names
    /// existed hold the Rust type path).
    pub event_type: String,
    /// The destination topic.
    pub topic: String,
    /// The record key.
    pub key: String,
    /// The event as JSON.
    pub payload: String,
    /// Publish time, ms since the Unix epoch.
    pub created_at: i64,
    /// When the broker acknowledged it, ms since the Unix epoch; `None`
    /// while unsent.
    pub sent_at: Option<i64>,
    /// Failed sends so far.
    pub attempts: i64,
    /// The last send error, if any.
    pub last_error: Option<String>,
}

/// SQL for one outbox table.
#[derive(Debug, Clone)]
pub(crate) struct OutboxTable {
    name: String,
    backend: Backend,
}

const COLUMNS: &str =
    "id, event_id, event_type, topic, msg_key, payload, created_at, sent_at, attempts, last_error";

impl OutboxTable {
    /// The table `name` (letters, digits and `_`, not starting with a
    /// digit, at most 48 characters) on `backend`.
    pub(crate) fn new(name: &str, backend: Backend) -> Result<Self, Error> {
        let valid = !name.is_empty()
            && name.len() <= 48
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Error::Config(format!(
                "invalid outbox table name `{name}`: use letters, digits and `_` (at most 48), not starting with a digit"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            backend,
        })
    }

    /// The table name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// A stable 63-bit number for the table name: the PostgreSQL advisory
    /// lock key of its DDL and of its relay (FNV-1a).
    pub(crate) fn lock_key(&self) -> i64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in b"kafka_listener.outbox:".iter().chain(self.name.as_bytes()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        (hash >> 1) as i64
    }

    /// Creates the table and its index of unsent rows if missing. On
    /// PostgreSQL the DDL is serialized by an advisory lock, because
    /// concurrent `CREATE TABLE IF NOT EXISTS` can collide in the catalog.
    pub(crate) async fn create(&self, pool: &AnyPool) -> Result<(), Error> {
        let id = match self.backend {
            Backend::Sqlite => "id INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => "id BIGSERIAL PRIMARY KEY",
        };
        let name = &self.name;
        let table = format!(
            "CREATE TABLE IF NOT EXISTS {name} (
                {id},
                event_id TEXT NOT NULL UNIQUE,
                event_type TEXT NOT NULL,
                topic TEXT NOT NULL,
                msg_key TEXT NOT NULL,
                payload TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                sent_at BIGINT,
                attempts BIGINT NOT NULL DEFAULT 0,
                last_error TEXT
            )"
        );
        let index = format!(
            "CREATE INDEX IF NOT EXISTS {name}_unsent ON {name} (id) WHERE sent_at IS NULL"
        );
        let mut tx = pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock($1)) AS l")
                .bind(self.lock_key())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(&table).execute(&mut *tx).await?;
        sqlx::query(&index).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Inserts one event in the caller's transaction.
    pub(crate) async fn insert(
        &self,
        conn: &mut AnyConnection,
        event_id: &str,
        message: &OutboxMessage,
        now_ms: i64,
    ) -> Result<(), Error> {
        let sql = format!(
            "INSERT INTO {} (event_id, event_type, topic, msg_key, payload, created_at, attempts)
             VALUES ($1, $2, $3, $4, $5, $6, 0)",
            self.name
        );
        sqlx::query(&sql)
            .bind(event_id)
            .bind(message.event_type)
            .bind(message.topic)
            .bind(&message.key)
            .bind(&message.payload)
            .bind(now_ms)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Up to `limit` unsent rows in id order, leaving out the rows of the
    /// `(topic, key)` pairs in `exclude`.
    pub(crate) async fn unsent(
        &self,
        pool: &AnyPool,
        limit: usize,
        exclude: &[(String, String)],
    ) -> Result<Vec<OutboxRow>, Error> {
        let excluded: Vec<String> = (0..exclude.len())
            .map(|i| format!("(topic = ${} AND msg_key = ${})", 2 * i + 1, 2 * i + 2))
            .collect();
        let filter = if excluded.is_empty() {
            String::new()
        } else {
            format!(" AND NOT ({})", excluded.join(" OR "))
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM {} WHERE sent_at IS NULL{filter} ORDER BY id LIMIT {}",
            self.name,
            limit.max(1)
        );
        let mut query = sqlx::query(&sql);
        for (topic, key) in exclude {
            query = query.bind(topic).bind(key);
        }
        let rows = query.fetch_all(pool).await?;
        rows.iter().map(row).collect()
    }

    /// Every row, sent or not, in id order (for inspection and tests).
    pub(crate) async fn all(&self, pool: &AnyPool) -> Result<Vec<OutboxRow>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM {} ORDER BY id", self.name);
        let rows = sqlx::query(&sql).fetch_all(pool).await?;
        rows.iter().map(row).collect()
    }

    /// The number of unsent rows.
    pub(crate) async fn count_unsent(&self, pool: &AnyPool) -> Result<i64, Error> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {} WHERE sent_at IS NULL",
            self.name
        );
        Ok(sqlx::query(&sql)
            .fetch_one(pool)
            .await?
            .try_get::<i64, _>("n")?)
    }

    /// Marks `ids` sent at `now_ms` (in statements of up to 200 ids).
    pub(crate) async fn mark_sent(
        &self,
        pool: &AnyPool,
        ids: &[i64],
        now_ms: i64,
    ) -> Result<(), Error> {
        for chunk in ids.chunks(200) {
            let placeholders: Vec<String> = (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
            let sql = format!(
                "UPDATE {} SET sent_at = $1 WHERE id IN ({})",
                self.name,
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(now_ms);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(pool).await?;
        }
        Ok(())
    }

    /// Counts a failed send of row `id`.
    pub(crate) async fn record_failure(
        &self,
        pool: &AnyPool,
        id: i64,
        error: &str,
    ) -> Result<(), Error> {
        let sql = format!(
            "UPDATE {} SET attempts = attempts + 1, last_error = $1 WHERE id = $2",
            self.name
        );
        sqlx::query(&sql).bind(error).bind(id).execute(pool).await?;
        Ok(())
    }

    /// Deletes rows sent before `before_ms`; returns how many.
    pub(crate) async fn purge_sent(&self, pool: &AnyPool, before_ms: i64) -> Result<u64, Error> {
        let sql = format!(
            "DELETE FROM {} WHERE sent_at IS NOT NULL AND sent_at < $1",
            self.name
        );
        Ok(sqlx::query(&sql)
            .bind(before_ms)
            .execute(pool)
            .await?
            .rows_affected())
    }
}

fn row(row: &sqlx::any::AnyRow) -> Result<OutboxRow, Error> {
    Ok(OutboxRow {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        topic: row.try_get("topic")?,
        key: row.try_get("msg_key")?,
        payload: row.try_get("payload")?,
        created_at: row.try_get("created_at")?,
        sent_at: row.try_get("sent_at")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
    })
}

#[cfg(test)]
mod tests {
    use super::{duplicates, valid_name};

    #[test]
    fn duplicate_names_list_every_type() {
        let got = duplicates([
            ("a.A", "x::A"),
            ("B", "x::B"),
            ("a.A", "y::A"),
            ("C", "x::C"),
            ("a.A", "z::Other"),
        ]);
        assert_eq!(got, vec![("a.A", vec!["x::A", "y::A", "z::Other"])]);
        assert!(duplicates([("A", "x::A"), ("B", "x::B")]).is_empty());
    }

    #[test]
    fn names_have_no_whitespace() {
        assert!(valid_name("coupon.CouponIssued"));
        assert!(valid_name("com.example:v2/Issued"));
        for bad in ["", "a b", "tab\t", "new\nline"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(!valid_name(&"x".repeat(250)));
    }
}
