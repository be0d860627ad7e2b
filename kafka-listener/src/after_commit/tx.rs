//! [`TransactionalEvents`] (the pool, the handlers, the outbox) and
//! [`EventTx`], a sqlx transaction that collects events until it commits.

use std::any::TypeId;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::AnyConnection;
use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::Notify;

use super::handlers::{EventMeta, HandlerReport, Handlers, PendingEvent};
use super::outbox::{self, Backend, OutboxRow, OutboxTable};
use super::relay::{self, RelayConfig, RelayHandle};
use super::{new_event_id, now_ms, Error, DEFAULT_OUTBOX_TABLE};
use crate::producer::KafkaTemplate;
use crate::state::StateMap;

/// Builds [`TransactionalEvents`].
#[derive(Debug)]
pub struct TransactionalEventsBuilder {
    pool: Result<AnyPool, sqlx::Error>,
    state: StateMap,
    table: String,
}

impl TransactionalEventsBuilder {
    /// Registers state for `State<T>` handler arguments (one value per
    /// type, cloned for each call; wrap large state in an `Arc`).
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// The outbox table (default [`DEFAULT_OUTBOX_TABLE`], `kafka_outbox`):
    /// letters, digits and `_`, at most 48 characters.
    pub fn outbox_table(mut self, name: impl Into<String>) -> Self {
        self.table = name.into();
        self
    }

    /// Creates the outbox table if missing and validates every
    /// `#[after_commit]` handler against the state.
    ///
    /// # Errors
    /// [`Error::Handler`] for a handler whose arguments cannot be built
    /// (a `State<T>` not registered), [`Error::Config`] for an invalid table
    /// name, a database other than SQLite and PostgreSQL, or an outbox event
    /// name used by two types (or invalid), [`Error::Database`] when the
    /// table cannot be created or the pool given to
    /// [`TransactionalEvents::builder`] cannot be shared
    /// ([`crate::IntoAnyPool`]).
    pub async fn build(self) -> Result<TransactionalEvents, Error> {
        let pool = self.pool?;
        let handlers = Handlers::discover(&self.state)?;
        outbox::check_names()?;
        let backend = Backend::of(&pool).await?;
        let table = OutboxTable::new(&self.table, backend)?;
        table.create(&pool).await?;
        Ok(TransactionalEvents {
            inner: Arc::new(Inner {
                pool,
                state: self.state,
                handlers,
                table,
                wake: Arc::new(Notify::new()),
            }),
        })
    }
}

/// The entry point: begins [`EventTx`] transactions on a pool, runs the
/// `#[after_commit]` handlers after their commits and wakes the outbox
/// relay. Cheap to clone.
///
/// It takes an `AnyPool` (SQLite or PostgreSQL through
/// `sqlx::any::install_default_drivers()`), a `PgPool` or a `SqlitePool`
/// ([`crate::IntoAnyPool`]): the outbox SQL is the same on both
/// databases, with `$1` placeholders, which SQLite also accepts.
#[derive(Clone)]
pub struct TransactionalEvents {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    state: StateMap,
    handlers: Handlers,
    table: OutboxTable,
    wake: Arc<Notify>,
}

impl fmt::Debug for TransactionalEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionalEvents")
            .field("outbox_table", &self.inner.table.name())
            .field("state", &self.inner.state)
            .finish_non_exhaustive()
    }
}

/// What [`EventTx::commit`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    /// Events published in the transaction.
    pub events: usize,
    /// Of those, events written to the outbox (sent by the relay).
    pub outboxed: usize,
    /// The `#[after_commit]` handlers that ran after the commit.
    pub handlers: HandlerReport,
}

/// What [`TransactionalEvents::publish`] (outside a transaction) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    /// Whether the event was written to the outbox (in a transaction of its
    /// own; the relay sends it).
    pub outboxed: bool,
    /// The handlers with `fallback_execution = true` that ran, and the
    /// others, discarded.
    pub handlers: HandlerReport,
}

impl TransactionalEvents {
    /// A builder over `pool`: an `AnyPool`, a `PgPool` (feature
    /// `postgres`) or a `SqlitePool` (feature `sqlite`), by value or by
    /// reference ([`crate::IntoAnyPool`]; a conversion error is reported by
    /// [`TransactionalEventsBuilder::build`]).
    pub fn builder(pool: impl crate::IntoAnyPool) -> TransactionalEventsBuilder {
        TransactionalEventsBuilder {
            pool: pool.into_any_pool(),
            state: StateMap::new(),
            table: DEFAULT_OUTBOX_TABLE.to_owned(),
        }
    }

    /// The pool (the `AnyPool` made from the one given to
    /// [`TransactionalEvents::builder`]).
    pub fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    /// The outbox table name.
    pub fn outbox_table(&self) -> &str {
        self.inner.table.name()
    }

    /// Begins a transaction.
    ///
    /// # Errors
    /// [`Error::Database`] when no connection can be had or `BEGIN` fails.
    pub async fn begin(&self) -> Result<EventTx, Error> {
        Ok(EventTx {
            tx: self.inner.pool.begin().await?,
            events: Vec::new(),
            published: 0,
            outboxed: 0,
            owner: self.clone(),
        })
    }

    /// Publishes `event` outside a transaction. An outbox event is written
    /// to the outbox at once (a one-statement transaction) and relayed;
    /// handlers with `fallback_execution = true` run now, before this
    /// returns; the other handlers never see the event (Spring's
    /// semantics: without a transaction there is no commit to wait for).
    ///
    /// # Errors
    /// [`Error::Serialization`] or [`Error::Database`] for an outbox event
    /// that cannot be written (the handlers then do not run).
    pub async fn publish<E: Send + Sync + 'static>(&self, event: E) -> Result<Published, Error> {
        let meta = meta::<E>(false);
        let mut published = Published::default();
        if let Some(encode) = outbox::encoder(TypeId::of::<E>()) {
            let message = encode(&event).map_err(|source| Error::Serialization {
                event_type: meta.event_type,
                source,
            })?;
            let mut conn = self.inner.pool.acquire().await?;
            self.inner
                .table
                .insert(&mut conn, &meta.event_id, &message, now_ms())
                .await?;
            published.outboxed = true;
            self.inner.wake.notify_one();
        }
        let pending = PendingEvent {
            type_id: TypeId::of::<E>(),
            event: Box::new(event),
            meta,
        };
        published.handlers = self
            .inner
            .handlers
            .dispatch(&pending, &self.inner.state)
            .await;
        Ok(published)
    }

    /// Starts the outbox relay: it sends what is unsent now (a previous
    /// run's leftovers), then what each commit writes, until
    /// [`RelayHandle::shutdown`]. Start one per process; on PostgreSQL an
    /// advisory lock lets only one process relay a table at a time (the
    /// others wait), so several instances of an app keep per-key order.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start_relay(&self, template: KafkaTemplate, config: RelayConfig) -> RelayHandle {
        relay::start(
            self.inner.pool.clone(),
            self.inner.table.clone(),
            template,
            config,
            Arc::clone(&self.inner.wake),
        )
    }

    /// The number of outbox rows not sent yet.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn unsent_count(&self) -> Result<i64, Error> {
        self.inner.table.count_unsent(&self.inner.pool).await
    }

    /// Every outbox row, sent or not, in id order (sent rows are purged
    /// after [`RelayConfig::retention`]).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn outbox_rows(&self) -> Result<Vec<OutboxRow>, Error> {
        self.inner.table.all(&self.inner.pool).await
    }
}

fn meta<E: 'static>(in_transaction: bool) -> EventMeta {
    EventMeta {
        event_id: new_event_id(),
        event_type: std::any::type_name::<E>(),
        in_transaction,
    }
}

/// A database transaction that collects events: run queries through it
/// (it dereferences to the connection, as `sqlx::Transaction` does, so
/// `.execute(&mut *tx)`), [`publish`](Self::publish) events, then
/// [`commit`](Self::commit). Dropped without a commit it rolls back and its
/// events are discarded.
pub struct EventTx {
    tx: Transaction<'static, Any>,
    events: Vec<PendingEvent>,
    published: usize,
    outboxed: usize,
    owner: TransactionalEvents,
}

impl fmt::Debug for EventTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventTx")
            .field("published", &self.published)
            .field("outboxed", &self.outboxed)
            .finish_non_exhaustive()
    }
}

impl EventTx {
    /// Publishes `event` in this transaction: an outbox event (a type with
    /// `#[derive(OutboxEvent)]`) is written to the outbox now, in this
    /// transaction; the `#[after_commit]` handlers of `E` run after the
    /// commit. A type with neither is accepted and ignored.
    ///
    /// # Errors
    /// [`Error::Serialization`] when an outbox event cannot be encoded,
    /// [`Error::Database`] when its insert fails (roll back then: the
    /// transaction may be aborted).
    pub async fn publish<E: Send + Sync + 'static>(&mut self, event: E) -> Result<(), Error> {
        let meta = meta::<E>(true);
        let type_id = TypeId::of::<E>();
        let encoder = outbox::encoder(type_id);
        if let Some(encode) = encoder {
            let message = encode(&event).map_err(|source| Error::Serialization {
                event_type: meta.event_type,
                source,
            })?;
            self.owner
                .inner
                .table
                .insert(&mut self.tx, &meta.event_id, &message, now_ms())
                .await?;
            self.outboxed += 1;
        }
        self.published += 1;
        if self.owner.inner.handlers.has(type_id) {
            self.events.push(PendingEvent {
                type_id,
                event: Box::new(event),
                meta,
            });
        } else if encoder.is_none() {
            tracing::debug!(
                event_type = meta.event_type,
                "event published with no #[after_commit] handler and no outbox topic: ignored"
            );
        }
        Ok(())
    }

    /// Events published so far.
    pub fn published(&self) -> usize {
        self.published
    }

    /// Commits, wakes the relay when outbox rows were written, then runs
    /// the handlers of every event in publish order (each handler's failure
    /// is logged and counted in the returned report, and the commit
    /// stands).
    ///
    /// # Errors
    /// [`Error::Database`] when the commit fails: nothing was committed and
    /// no handler runs.
    pub async fn commit(self) -> Result<Committed, Error> {
        let EventTx {
            tx,
            events,
            published,
            outboxed,
            owner,
        } = self;
        tx.commit().await?;
        if outboxed > 0 {
            owner.inner.wake.notify_one();
        }
        let handlers = owner
            .inner
            .handlers
            .dispatch_all(&events, &owner.inner.state)
            .await;
        Ok(Committed {
            events: published,
            outboxed,
            handlers,
        })
    }

    /// Rolls back; the events are discarded.
    ///
    /// # Errors
    /// [`Error::Database`] when `ROLLBACK` fails (the connection is then
    /// closed, which rolls back too).
    pub async fn rollback(self) -> Result<(), Error> {
        self.tx.rollback().await?;
        Ok(())
    }

    /// The underlying sqlx transaction.
    pub fn transaction(&mut self) -> &mut Transaction<'static, Any> {
        &mut self.tx
    }
}

impl Deref for EventTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for EventTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}
