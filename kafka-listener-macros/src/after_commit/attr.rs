//! The keys of `#[after_commit(...)]` and of the `#[outbox(...)]` helper
//! attribute of `#[derive(OutboxEvent)]`, one row per key (see
//! `kafka_listener/attr.rs` for how a key is added).

use syn::{Ident, LitStr, Path};

use crate::ctxt::Ctxt;
use crate::meta::{crate_path, Entry, KeyTable, Keyed, Setter};
use crate::symbol::{
    self, Symbol, AVRO, CRATE, FALLBACK_EXECUTION, FORMAT, JSON, KEY, NAME, TOPIC,
};
use crate::util::{keyed, topic_name_error};

/// `#[after_commit(...)]`.
#[derive(Debug, Default)]
pub(crate) struct AfterCommitAttrs {
    seen: Vec<Ident>,
    pub(crate) fallback_execution: Option<Keyed<bool>>,
    pub(crate) krate: Option<Keyed<Path>>,
}

impl KeyTable for AfterCommitAttrs {
    const CONTEXT: &'static str = " in `#[after_commit(...)]`";
    const KEYS: &'static [(Symbol, Setter<Self>)] = &[
        (FALLBACK_EXECUTION, |a, cx, e| {
            a.fallback_execution = e
                .boolean(cx, "fallback_execution = true")
                .map(|v| keyed(e, v.value));
        }),
        (CRATE, |a, cx, e| {
            a.krate = crate_path(cx, e).map(|v| keyed(e, v));
        }),
    ];

    fn seen_mut(&mut self) -> &mut Vec<Ident> {
        &mut self.seen
    }
}

/// `#[outbox(...)]` on a `#[derive(OutboxEvent)]` struct.
#[derive(Debug, Default)]
pub(crate) struct OutboxAttrs {
    seen: Vec<Ident>,
    pub(crate) topic: Option<Keyed<LitStr>>,
    pub(crate) key: Option<Keyed<LitStr>>,
    pub(crate) format: Option<Keyed<OutboxFormat>>,
    pub(crate) name: Option<Keyed<LitStr>>,
    pub(crate) krate: Option<Keyed<Path>>,
}

/// How the relay encodes an outbox event's record value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutboxFormat {
    /// The JSON kept in the outbox, as it is (the default).
    Json,
    /// Avro in the Confluent wire format, encoded by the relay.
    Avro,
}

impl OutboxFormat {
    const ALL: &'static [(Symbol, OutboxFormat)] =
        &[(JSON, OutboxFormat::Json), (AVRO, OutboxFormat::Avro)];
}

impl KeyTable for OutboxAttrs {
    const CONTEXT: &'static str = " in `#[outbox(...)]`";
    const KEYS: &'static [(Symbol, Setter<Self>)] = &[
        (TOPIC, |a, cx, e| {
            a.topic = topic(cx, e).map(|v| keyed(e, v));
        }),
        (KEY, |a, cx, e| {
            a.key = e
                .non_empty_string(cx, r#"key = "coupon_id""#)
                .map(|v| keyed(e, v));
        }),
        (FORMAT, |a, cx, e| {
            a.format = format(cx, e).map(|v| keyed(e, v));
        }),
        (NAME, |a, cx, e| {
            a.name = event_name(cx, e).map(|v| keyed(e, v));
        }),
        (CRATE, |a, cx, e| {
            a.krate = crate_path(cx, e).map(|v| keyed(e, v));
        }),
    ];

    fn seen_mut(&mut self) -> &mut Vec<Ident> {
        &mut self.seen
    }
}

/// `format = "json" | "avro"`.
fn format(cx: &Ctxt, entry: &Entry) -> Option<OutboxFormat> {
    let lit = entry.string(cx, r#"format = "avro""#)?;
    let value = lit.value();
    let format = OutboxFormat::ALL
        .iter()
        .find(|(symbol, _)| symbol.as_str() == value)
        .map(|(_, format)| *format);
    if format.is_none() {
        cx.error_spanned_by(
            &lit,
            format!(
                "unknown outbox format `{value}`; expected one of: {}",
                symbol::one_of(OutboxFormat::ALL.iter().map(|(symbol, _)| symbol))
            ),
        );
    }
    format
}

impl OutboxAttrs {
    /// Whether `key` was given, valid or not.
    pub(crate) fn has(&self, key: Symbol) -> bool {
        self.seen.iter().any(|k| *k == key)
    }
}

/// `name = "coupon.CouponIssued"`: the event's stable name, 1 to 249
/// characters without whitespace or control characters (the runtime checks
/// the same of hand-written impls).
fn event_name(cx: &Ctxt, entry: &Entry) -> Option<LitStr> {
    let lit = entry.non_empty_string(cx, r#"name = "coupon.CouponIssued""#)?;
    let name = lit.value();
    let reason = if let Some(c) = name.chars().find(|c| c.is_whitespace() || c.is_control()) {
        Some(format!(
            "invalid event name {name:?}: {c:?} is not allowed; an event name has no whitespace or control characters, e.g. `coupon.CouponIssued`"
        ))
    } else if name.chars().count() > 249 {
        Some(format!(
            "invalid event name: {} characters, at most 249",
            name.chars().count()
        ))
    } else {
        None
    };
    match reason {
        Some(reason) => {
            cx.error_spanned_by(&lit, reason);
            None
        }
        None => Some(lit),
    }
}

/// A Kafka topic name (see [`topic_name_error`]).
fn topic(cx: &Ctxt, entry: &Entry) -> Option<LitStr> {
    let lit = entry.non_empty_string(cx, r#"topic = "coupon.issued""#)?;
    match topic_name_error(&lit.value()) {
        Some(reason) => {
            cx.error_spanned_by(&lit, reason);
            None
        }
        None => Some(lit),
    }
}
