//! Logging (tracing) and metrics (Prometheus text format).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Installs a `tracing` subscriber that prints to stderr, filtered by
/// `RUST_LOG` (default `info`). Does nothing when a subscriber is installed
/// already (tests may call it from every test).
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The apps' `main`: logs as [`init_tracing`] and, when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
/// is set, traces exported over OTLP/HTTP as `service` (or
/// `OTEL_SERVICE_NAME`): HTTP requests, listener calls and the records
/// between them in one trace ([`kafka_listener::trace::otel`]). Keep the
/// guard until the app has stopped: dropping it sends the last spans.
///
/// # Errors
/// A message naming the variables when they do not make an exporter.
pub fn init_telemetry(service: &str) -> Result<kafka_listener::trace::otel::TracingGuard, String> {
    kafka_listener::trace::otel::init_tracing(service).map_err(|e| e.to_string())
}

/// The process-wide Prometheus recorder, installed on first use; `None`
/// when another global `metrics` recorder was installed first (a warning
/// says so once).
///
/// Every histogram whose name ends in `_seconds` (the framework's handler
/// latency, the apps' send latency) is exported as a Prometheus histogram
/// with [`kafka_listener::metrics::LATENCY_BUCKETS`], which the Grafana
/// dashboard (`docs/grafana/kafka-listener.json`) queries.
///
/// Install it before a listener starts: the container resolves its metric
/// handles once at start.
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    kafka_listener::metrics::LATENCY_BUCKETS,
                )
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "GET /metrics is disabled: a metrics recorder is installed already");
                    None
                }
            }
        })
        .clone()
}
