//! Trace propagation: W3C Trace Context in record headers.
//!
//! A record carries its trace in two headers, as the W3C Trace Context
//! recommendation (<https://www.w3.org/TR/trace-context/>) puts them on an
//! HTTP request, and as Spring Kafka (Micrometer Observation), the
//! OpenTelemetry Java agent and Confluent's clients put them on Kafka
//! records:
//!
//! - `traceparent`: `00-<trace id, 32 hex>-<parent span id, 16 hex>-<flags, 2 hex>`,
//!   for example `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`
//!   (flag `01`: sampled);
//! - `tracestate`: vendor entries, `key=value` pairs separated by commas,
//!   copied as they are.
//!
//! What the framework does with them:
//!
//! - **The listener continues the trace.** Each record is handled inside a
//!   `tracing` span named `kafka.listener` (OpenTelemetry semantic
//!   conventions for messaging: span kind consumer, named `process
//!   <topic>`, with `messaging.system`, `messaging.destination.name`,
//!   `messaging.destination.partition.id`, `messaging.kafka.offset`,
//!   `messaging.consumer.group.name`, and `trace_id` for log correlation).
//!   The span's parent is the record's `traceparent`. A batch listener's
//!   span, for a batch of more than one record, starts a trace of its own
//!   (each record may come from another trace); with the `opentelemetry`
//!   feature it links to each record's.
//! - **The template writes the current trace.** [`KafkaTemplate::send`]
//!   adds `traceparent` and `tracestate` from the current trace, unless the
//!   record already has a `traceparent`. The current trace is the current
//!   `tracing` span's OpenTelemetry context when the `opentelemetry` feature
//!   and its layer are on (an HTTP request span, say), otherwise the record
//!   the task is handling: a send from a listener names the listener's
//!   processing as its parent (a span id of its own, a child of the record's
//!   `traceparent`), so the trace goes on through a Rust service without
//!   OpenTelemetry too.
//! - **The outbox keeps it.** An event published in an `EventTx`
//!   (`after-commit`) stores the current trace with its row, and the relay
//!   sends the record with it: HTTP request → send → listener → outbox event
//!   → next listener is one trace.
//!
//! Without the `opentelemetry` feature no span is exported; with it,
//! [`otel::init_tracing`] installs a `tracing` subscriber that exports spans
//! over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! [`KafkaTemplate::send`]: crate::KafkaTemplate::send

#[cfg(feature = "opentelemetry")]
pub mod otel;

use std::fmt;
use std::future::Future;

use crate::context::ListenerInfo;
use crate::record::ConsumerRecord;

/// The header that carries the trace id and the parent span id (W3C Trace
/// Context, § 3.2).
pub const TRACEPARENT: &str = "traceparent";

/// The header that carries vendor-specific trace state (W3C Trace Context,
/// § 3.3).
pub const TRACESTATE: &str = "tracestate";

/// A parsed `traceparent` header value: a trace id, the id of the span
/// that is the parent of what happens next, and the trace flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace id: 16 bytes, never all zero.
    pub trace_id: [u8; 16],
    /// The parent span id: 8 bytes, never all zero.
    pub parent_id: [u8; 8],
    /// The trace flags; bit 0 is "sampled".
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value: version `00` (exactly 55 characters),
    /// or a later version (at least 55 characters, a `-` after the flags),
    /// of which the first four fields are read, as § 4.3 of the
    /// recommendation asks. `None` for anything else: a version of `ff`,
    /// upper-case hex, an all-zero trace or span id, a wrong length.
    pub fn parse(value: &str) -> Option<Self> {
        let b = value.as_bytes();
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let version = hex_byte(&b[0..2])?;
        if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
            return None;
        }
        let mut trace_id = [0; 16];
        for (i, out) in trace_id.iter_mut().enumerate() {
            *out = hex_byte(&b[3 + 2 * i..5 + 2 * i])?;
        }
        let mut parent_id = [0; 8];
        for (i, out) in parent_id.iter_mut().enumerate() {
            *out = hex_byte(&b[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&b[53..55])?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The same trace with a new random parent span id: the context a span
    /// that is a child of this one hands on.
    pub fn child(&self) -> Self {
        Self {
            parent_id: new_span_id(),
            ..*self
        }
    }

    /// Whether the sampled flag (bit 0) is set.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The parent span id as 16 lower-case hex digits.
    pub fn parent_id_hex(&self) -> String {
        hex(&self.parent_id)
    }
}

/// The `traceparent` header value, version `00`.
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.parent_id),
            self.flags
        )
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

/// A trace context: the `traceparent` and the `tracestate` that travel
/// with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The `traceparent` header.
    pub parent: TraceParent,
    /// The `tracestate` header, as it came (`None` when absent or empty).
    pub state: Option<String>,
}

impl TraceContext {
    /// The context in `record`'s `traceparent` and `tracestate` headers
    /// (`None`: no `traceparent`, or one that does not parse).
    pub fn from_record(record: &ConsumerRecord) -> Option<Self> {
        Self::from_headers(
            record.headers().get_str(TRACEPARENT),
            record.headers().get_str(TRACESTATE),
        )
    }

    /// The context in a `traceparent` and `tracestate` header value.
    pub fn from_headers(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Self> {
        Some(Self {
            parent: TraceParent::parse(traceparent?.trim())?,
            state: tracestate
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        })
    }

    /// The current trace, as the template writes it: the current `tracing`
    /// span's OpenTelemetry context (feature `opentelemetry`, when its
    /// layer is installed and the span is in a trace), otherwise the
    /// processing of the record this task is handling (see the module
    /// docs). `None` outside both.
    pub fn current() -> Option<Self> {
        #[cfg(feature = "opentelemetry")]
        if let Some(cx) = otel::current() {
            return Some(cx);
        }
        PROCESSING.try_with(Clone::clone).ok().flatten()
    }

    /// The header pairs, `traceparent` first.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        std::iter::once((TRACEPARENT, self.parent.to_string()))
            .chain(self.state.iter().map(|s| (TRACESTATE, s.clone())))
    }
}

tokio::task_local! {
    /// The processing of the record the task handles: the record's context
    /// with a span id of its own.
    static PROCESSING: Option<TraceContext>;
}

/// Runs `fut` in `span`, continuing the remote trace `parent` (one read
/// from a `traceparent` header, of a record or an HTTP request): with the
/// OpenTelemetry layer (feature `opentelemetry`) `span` becomes a child of
/// `parent`; in any case [`TraceContext::current`] inside `fut` is a child
/// of `parent` (the same trace id, a span id of its own), so what `fut`
/// sends through the template carries the trace on. `parent` `None`:
/// `span` as it is, and no trace of the record's own.
///
/// The listener does this for each record; an HTTP handler that sends
/// records does it for its request (the reference apps' router does).
pub fn continue_in<F: Future>(
    span: tracing::Span,
    parent: Option<TraceContext>,
    fut: F,
) -> impl Future<Output = F::Output> {
    use tracing::Instrument;
    if let Some(cx) = &parent {
        // The hex string only when a subscriber records the span (per
        // record, on the hot path).
        if !span.is_disabled() {
            span.record(
                "trace_id",
                tracing::field::display(hex(&cx.parent.trace_id)),
            );
        }
        #[cfg(feature = "opentelemetry")]
        otel::set_parent(&span, cx);
    }
    let processing = parent.map(|cx| TraceContext {
        parent: cx.parent.child(),
        state: cx.state,
    });
    PROCESSING.scope(processing, fut).instrument(span)
}

/// The span a record (or a batch) is handled in, and the future that
/// handles it, run in that span ([`continue_in`] the record's trace).
pub(crate) fn in_record_span<F: Future>(
    info: &ListenerInfo,
    records: &[ConsumerRecord],
    fut: F,
) -> impl Future<Output = F::Output> {
    let (first, batch) = (&records[0], records.len() > 1);
    let span = tracing::info_span!(
        "kafka.listener",
        otel.name = %format_args!("process {}", first.topic),
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.destination.name = %first.topic,
        messaging.destination.partition.id = first.partition,
        messaging.kafka.offset = first.offset,
        messaging.batch.message_count = records.len(),
        messaging.consumer.group.name = %info.group_id,
        trace_id = tracing::field::Empty,
    );
    // A batch's records may come from as many traces: its span starts one
    // of its own and links to theirs.
    #[cfg(feature = "opentelemetry")]
    if batch {
        otel::link_batch(&span, records);
    }
    let parent = if batch {
        None
    } else {
        TraceContext::from_record(first)
    };
    continue_in(span, parent, fut)
}

fn new_span_id() -> [u8; 8] {
    fastrand::u64(1..).to_be_bytes()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Two lower-case hex digits (the recommendation allows no upper case).
fn hex_byte(two: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(digit(two[0])? << 4 | digit(two[1])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_recommendations_example_round_trips() {
        let p = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(p.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.parent_id_hex(), "00f067aa0ba902b7");
        assert!(p.sampled());
        assert_eq!(p.to_string(), EXAMPLE);
    }

    #[test]
    fn invalid_values_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_four_fields() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        let p = TraceParent::parse(later).unwrap();
        assert_eq!(p.to_string(), EXAMPLE, "written back as version 00");
        assert_eq!(
            TraceParent::parse(&later.replace("-01-what", "-01what")),
            None
        );
    }

    #[test]
    fn a_child_keeps_the_trace_and_flags_with_a_new_span_id() {
        let p = TraceParent::parse(EXAMPLE).unwrap();
        let c = p.child();
        assert_eq!((c.trace_id, c.flags), (p.trace_id, p.flags));
        assert_ne!(c.parent_id, p.parent_id);
        assert_ne!(c.parent_id, [0; 8]);
    }

    #[test]
    fn headers_are_read_from_a_record_and_written_back() {
        let record = ConsumerRecord::new("t", 0, 0)
            .with_header(TRACEPARENT, EXAMPLE)
            .with_header(TRACESTATE, "congo=t61rcWkgMzE");
        let cx = TraceContext::from_record(&record).unwrap();
        assert_eq!(cx.state.as_deref(), Some("congo=t61rcWkgMzE"));
        let headers: Vec<_> = cx.headers().collect();
        assert_eq!(
            headers,
            vec![
                (TRACEPARENT, EXAMPLE.to_owned()),
                (TRACESTATE, "congo=t61rcWkgMzE".to_owned())
            ]
        );
        let bad = ConsumerRecord::new("t", 0, 0).with_header(TRACEPARENT, "nonsense");
        assert_eq!(TraceContext::from_record(&bad), None);
    }
}
