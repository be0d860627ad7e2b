//! OpenTelemetry export (feature `opentelemetry`): the framework's
//! `tracing` spans become OpenTelemetry spans through
//! [tracing-opentelemetry](https://docs.rs/tracing-opentelemetry), in the
//! trace their records carry, and go to a collector over OTLP/HTTP.
//!
//! With the layer installed:
//! - a listener's `kafka.listener` span is a child of the record's
//!   `traceparent` (a batch listener's span links to each record's trace,
//!   up to [`MAX_BATCH_LINKS`]);
//! - [`KafkaTemplate::send`](crate::KafkaTemplate::send) writes the current
//!   span's context (an HTTP handler's span, a listener's span), so every
//!   hop is one trace in the collector;
//! - without the layer (the feature on, [`init_tracing`] not called),
//!   propagation works as without the feature.
//!
//! [`init_tracing`] is the one call an app makes. It reads the
//! OpenTelemetry SDK's standard environment variables:
//!
//! | variable | effect |
//! |---|---|
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | base URL of the collector's OTLP/HTTP receiver, e.g. `http://localhost:4318` (spans go to `/v1/traces`); unset: no export |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | the full traces URL instead (also turns export on) |
//! | `OTEL_SERVICE_NAME` | the `service.name` resource attribute (default: the name the app passes) |
//! | `OTEL_SDK_DISABLED` | `true`: no export even with an endpoint |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `..._TIMEOUT`, `..._PROTOCOL` | as the OTLP exporter documents them |

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use super::{TraceContext, TraceParent};
use crate::error::Error;
use crate::record::ConsumerRecord;

/// At most this many links from a batch listener's span to its records'
/// traces (a batch of 500 records would otherwise carry 500 links).
pub const MAX_BATCH_LINKS: usize = 128;

/// The environment variables that turn export on.
const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

/// The current `tracing` span's OpenTelemetry context, when the layer is
/// installed and the span is in a trace.
pub(crate) fn current() -> Option<TraceContext> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    let state = sc.trace_state().header();
    Some(TraceContext {
        parent: TraceParent {
            trace_id: sc.trace_id().to_bytes(),
            parent_id: sc.span_id().to_bytes(),
            flags: sc.trace_flags().to_u8(),
        },
        state: (!state.is_empty()).then_some(state),
    })
}

/// `cx` as a remote OpenTelemetry span context (an unparsable
/// `tracestate` is dropped, as the recommendation allows).
pub fn span_context(cx: &TraceContext) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(cx.parent.trace_id),
        SpanId::from_bytes(cx.parent.parent_id),
        TraceFlags::new(cx.parent.flags),
        true,
        cx.state
            .as_deref()
            .and_then(|s| s.parse::<TraceState>().ok())
            .unwrap_or_default(),
    )
}

/// Makes `span` a child of the remote context `cx` (nothing without the
/// OpenTelemetry layer, or once the span has started).
pub(crate) fn set_parent(span: &tracing::Span, cx: &TraceContext) {
    if span.is_disabled() {
        return;
    }
    let parent = opentelemetry::Context::new().with_remote_span_context(span_context(cx));
    // Err: no OpenTelemetry layer; the task-local context carries on.
    let _ = span.set_parent(parent);
}

/// Links a batch listener's span to its records' traces.
pub(crate) fn link_batch(span: &tracing::Span, records: &[ConsumerRecord]) {
    if span.is_disabled() {
        return;
    }
    for cx in records
        .iter()
        .filter_map(TraceContext::from_record)
        .take(MAX_BATCH_LINKS)
    {
        span.add_link(span_context(&cx));
    }
}

/// Flushes and shuts down the span exporter when dropped: keep it alive in
/// `main` until the app has stopped.
#[must_use = "dropping the guard shuts the span exporter down"]
#[derive(Debug)]
pub struct TracingGuard {
    provider: Option<SdkTracerProvider>,
}

impl TracingGuard {
    /// Whether spans are exported (an OTLP endpoint was configured).
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("OpenTelemetry: exporting the last spans failed: {e}");
            }
        }
    }
}

/// An OTLP/HTTP tracer provider configured from the environment (see the
/// module docs), `None` when no endpoint is set or `OTEL_SDK_DISABLED` is
/// `true`.
///
/// # Errors
/// [`Error::Config`] naming the variables when the exporter cannot be
/// built from them (a malformed endpoint URL, say).
pub fn otlp_provider_from_env(service_name: &str) -> Result<Option<SdkTracerProvider>, Error> {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let configured = ENDPOINT_VARS
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| !v.trim().is_empty()));
    if disabled || !configured {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| {
            Error::Config(format!(
                "OpenTelemetry: no OTLP exporter from {}: {e}",
                ENDPOINT_VARS.join(" / ")
            ))
        })?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service_name.to_owned());
    Ok(Some(
        SdkTracerProvider::builder()
            .with_resource(Resource::builder().with_service_name(service).build())
            .with_batch_exporter(exporter)
            .build(),
    ))
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of
/// `provider`'s tracer (for apps that build their own subscriber).
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("kafka-listener"))
}

/// Installs the process's `tracing` subscriber: logs to stderr filtered by
/// `RUST_LOG` (default `info`) and, when an OTLP endpoint is configured
/// (see the module docs), spans exported to it as `service_name`. Does
/// nothing but return a guard when a subscriber is installed already.
///
/// # Errors
/// As [`otlp_provider_from_env`].
pub fn init_tracing(service_name: &str) -> Result<TracingGuard, Error> {
    let provider = otlp_provider_from_env(service_name)?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let otel = provider.as_ref().map(layer);
    let installed = Registry::default()
        .with(otel)
        .with(fmt)
        .with(filter)
        .try_init()
        .is_ok();
    if installed {
        if let Some(p) = &provider {
            opentelemetry::global::set_tracer_provider(p.clone());
            tracing::info!(
                service = service_name,
                "OpenTelemetry: exporting spans over OTLP"
            );
        }
    }
    Ok(TracingGuard {
        provider: provider.filter(|_| installed),
    })
}
