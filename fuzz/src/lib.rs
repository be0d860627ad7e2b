//! What the fuzz targets share: one tokio runtime and one embedded Schema
//! Registry per fuzzing process, started on first use and never stopped.

use std::sync::OnceLock;

use kafka_listener::embedded::EmbeddedSchemaRegistry;

/// The process's runtime (one worker thread), for the async parts.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// The base URL (`http://127.0.0.1:PORT`) of an in-memory embedded Schema
/// Registry serving on [`runtime`].
pub fn registry_url() -> &'static str {
    static REGISTRY: OnceLock<EmbeddedSchemaRegistry> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            runtime()
                .block_on(EmbeddedSchemaRegistry::start())
                .expect("the embedded schema registry")
        })
        .url()
}
