//! The embedded Schema Registry: an in-process registry that speaks the
//! Confluent REST API subset clients use (register and look up subjects and
//! versions, schemas by id, compatibility checks, config) over HTTP on a
//! loopback port. The app serves one when no `SCHEMA_REGISTRY_URL` is set,
//! and the `dev-broker` binary serves one beside its broker, so that Java,
//! Python and Rust clients can share schemas on a machine with nothing
//! installed.
//!
//! Avro schemas only, no references; data is kept in memory and lost when
//! the registry stops, unless it was started with a journal file
//! ([`EmbeddedSchemaRegistry::start_with_journal`], the `schema-registry`
//! binary): then every change is appended to the file before it is
//! answered, and a registry started again on the file serves the same
//! schemas under the same ids. New versions are checked with apache-avro's schema
//! resolution rules (`SchemaCompatibility`) under the subject's
//! [`Compatibility`] level, `BACKWARD` by default as in Confluent's.

mod journal;
mod server;
mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use self::store::Compatibility;
use self::store::Store;
use crate::error::{Error, Result};

struct Serving {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// An embedded Schema Registry serving on `127.0.0.1`. Stops when dropped
/// (or with [`EmbeddedSchemaRegistry::stop`]); must be started inside a
/// tokio runtime, whose tasks serve it.
pub struct EmbeddedSchemaRegistry {
    addr: SocketAddr,
    url: String,
    store: Arc<Store>,
    serving: Mutex<Option<Serving>>,
}

impl std::fmt::Debug for EmbeddedSchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedSchemaRegistry")
            .field("url", &self.url)
            .field("serving", &self.is_serving())
            .finish()
    }
}

impl EmbeddedSchemaRegistry {
    /// Starts a registry on a free loopback port and logs
    /// `embedded schema registry started: schema.registry.url=http://127.0.0.1:PORT`.
    ///
    /// # Errors
    /// [`Error::Embedded`] when no port can be bound.
    pub async fn start() -> Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a registry on `addr` (port 0 picks a free port).
    ///
    /// # Errors
    /// [`Error::Embedded`] when `addr` cannot be bound.
    pub async fn start_on(addr: SocketAddr) -> Result<Self> {
        Self::serve_store(addr, Arc::new(Store::default())).await
    }

    /// Starts a registry on `addr` that keeps its schemas in the journal
    /// file `journal`: what the file holds is replayed first (a missing
    /// file is created), and every registration, deleted subject and
    /// compatibility level is appended and synced to disk before it is
    /// answered. A registry started again on the same file resolves every
    /// id it gave.
    ///
    /// # Errors
    /// [`Error::Embedded`] when the file cannot be read, replayed or
    /// opened, or `addr` cannot be bound.
    pub async fn start_with_journal(
        addr: SocketAddr,
        journal: impl AsRef<std::path::Path>,
    ) -> Result<Self> {
        let store = Arc::new(Store::default());
        store
            .open_journal(journal.as_ref())
            .map_err(|e| Error::Embedded(format!("schema registry journal: {e}")))?;
        Self::serve_store(addr, store).await
    }

    async fn serve_store(addr: SocketAddr, store: Arc<Store>) -> Result<Self> {
        let (addr, serving) = serve(addr, Arc::clone(&store)).await?;
        let url = format!("http://{addr}");
        tracing::info!("embedded schema registry started: schema.registry.url={url}");
        Ok(Self {
            addr,
            url,
            store,
            serving: Mutex::new(Some(serving)),
        })
    }

    /// `http://127.0.0.1:PORT`, for any registry client.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the registry answers requests (not stopped).
    pub fn is_serving(&self) -> bool {
        crate::util::lock(&self.serving).is_some()
    }

    /// How many look-ups of a schema by id it has answered (tests of client
    /// caching).
    pub fn schema_id_lookups(&self) -> u64 {
        self.store.id_lookups()
    }

    /// Requires HTTP basic auth with `user_info` (`user:password`) on every
    /// request (401 otherwise), or no auth with `None` (the default).
    pub fn require_basic_auth(&self, user_info: Option<&str>) {
        self.store.require_basic_auth(user_info);
    }

    /// Sets the compatibility level of `subject`, or the global one.
    pub fn set_compatibility(&self, subject: Option<&str>, level: Compatibility) {
        self.store.set_compatibility(subject, level);
    }

    /// Stops answering: the port is closed and open connections are ended
    /// (waits up to 1 s for requests in progress). The schemas are kept for
    /// [`Self::resume`]. Used to test a registry outage.
    pub async fn stop(&self) {
        let serving = crate::util::lock(&self.serving).take();
        if let Some(s) = serving {
            let _ = s.stop.send(());
            let abort = s.task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(1), s.task)
                .await
                .is_err()
            {
                abort.abort();
            }
            tracing::info!(url = %self.url, "embedded schema registry stopped");
        }
    }

    /// Serves again on the same port with the same schemas.
    ///
    /// # Errors
    /// [`Error::Embedded`] when the port was taken meanwhile.
    pub async fn resume(&self) -> Result<()> {
        if self.is_serving() {
            return Ok(());
        }
        let (_, serving) = serve(self.addr, Arc::clone(&self.store)).await?;
        *crate::util::lock(&self.serving) = Some(serving);
        tracing::info!(url = %self.url, "embedded schema registry resumed");
        Ok(())
    }
}

async fn serve(addr: SocketAddr, store: Arc<Store>) -> Result<(SocketAddr, Serving)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Embedded(format!("schema registry: bind {addr}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Embedded(format!("schema registry: {e}")))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = server::router(store);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!("embedded schema registry: {e}");
        }
    });
    Ok((addr, Serving { stop, task }))
}

impl Drop for EmbeddedSchemaRegistry {
    fn drop(&mut self) {
        if let Some(s) = self
            .serving
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = s.stop.send(());
            s.task.abort();
        }
    }
}
