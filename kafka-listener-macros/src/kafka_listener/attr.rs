//! Parsing `#[kafka_listener(...)]` into [`ListenerAttrs`]: one row per key
//! in [`ListenerAttrs::KEYS`] and [`RetryAttrs::KEYS`], and the checks that
//! need only the key's own value (ranges, durations, known words).
//! Checks across keys and against the function are in `check.rs`.
//!
//! # Adding a key
//!
//! A key is a symbol in `symbol.rs`, a field here and a row in a `KEYS`
//! table; the unknown-key message, the duplicate check and error recovery
//! come with the row. The value helpers of [`Entry`] cover the usual
//! shapes, and [`Entry::value`] gives the raw [`crate::meta::Value`] for
//! the others. For example:
//! - `dead_letter = true | "topic"`: a field `Option<Keyed<DeadLetter>>`
//!   and a row that matches `e.value(cx, example)` on
//!   `Value::Lit(Lit::Bool(_))` and `Value::Lit(Lit::Str(_))`, reporting
//!   anything else with `Value::mismatch`.
//! - `rate_limit = "100/10s"`: `e.non_empty_string(..)`, then split at `/`
//!   and parse the duration as [`duration`] does.
//! - `retry_topics(...)`: a struct with its own [`KeyTable`] impl, filled
//!   through `e.nested(..)` as `retry(...)` is.
//!
//! Then resolve the field in `check.rs` (into `Listener`) and emit it in
//! `expand.rs`.

use std::time::Duration;

use syn::{Ident, Lit, LitStr, Path};

use crate::ctxt::Ctxt;
use crate::meta::{crate_path, Entry, KeyTable, Keyed, Setter, Value};
use crate::symbol::{self, Symbol, *};
use crate::util::{keyed, topic_name_error};

use super::choices::{ack_mode, isolation, ordering, seek};
pub(crate) use super::choices::{AckMode, IsolationAttr, OrderingAttr, SeekAttr};

/// The attributes of one listener, each with the key it was given with.
/// A field is `None` when its key is absent or its value was invalid (the
/// error is then recorded); `seen` tells the two apart.
#[derive(Debug, Default)]
pub(crate) struct ListenerAttrs {
    seen: Vec<Ident>,
    pub(crate) topics: Option<Keyed<Vec<LitStr>>>,
    pub(crate) topic_pattern: Option<Keyed<LitStr>>,
    pub(crate) group_id: Option<Keyed<LitStr>>,
    pub(crate) id: Option<Keyed<LitStr>>,
    pub(crate) concurrency: Option<Keyed<usize>>,
    pub(crate) ack_mode: Option<Keyed<AckMode>>,
    pub(crate) auto_startup: Option<Keyed<bool>>,
    pub(crate) properties: Option<Keyed<Vec<(LitStr, LitStr)>>>,
    pub(crate) batch: Option<Keyed<bool>>,
    pub(crate) retry: Option<Keyed<RetryAttrs>>,
    pub(crate) rate_limit: Option<Keyed<(u32, Duration)>>,
    pub(crate) filter: Option<Keyed<Path>>,
    pub(crate) reply: Option<Keyed<bool>>,
    pub(crate) send_to: Option<Keyed<LitStr>>,
    pub(crate) transactional: Option<Keyed<bool>>,
    pub(crate) isolation: Option<Keyed<IsolationAttr>>,
    pub(crate) seek: Option<Keyed<SeekAttr>>,
    pub(crate) ordering: Option<Keyed<OrderingAttr>>,
    pub(crate) parallelism: Option<Keyed<usize>>,
    pub(crate) dead_letter: Option<Keyed<DeadLetterAttr>>,
    pub(crate) retry_topics: Option<Keyed<RetryTopicsAttrs>>,
    pub(crate) krate: Option<Keyed<Path>>,
}

/// `dead_letter = true | false | "topic"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeadLetterAttr {
    /// `false`: no dead-letter topic (the runtime's default).
    Off,
    /// `true`: `<topic>-dlt`.
    Default,
    /// A named topic.
    Topic(LitStr),
}

/// The keys of `retry_topics(...)`.
#[derive(Debug, Default)]
pub(crate) struct RetryTopicsAttrs {
    seen: Vec<Ident>,
    pub(crate) attempts: Option<Keyed<u32>>,
    pub(crate) delays: Option<Keyed<Vec<Duration>>>,
}

impl KeyTable for RetryTopicsAttrs {
    const CONTEXT: &'static str = " in `retry_topics(...)`";
    const KEYS: &'static [(Symbol, Setter<Self>)] = &[
        (ATTEMPTS, |a, cx, e| {
            a.attempts = at_least(cx, e, "attempts = 3", 1).map(|v| keyed(e, v));
        }),
        (DELAYS, |a, cx, e| {
            a.delays = delays(cx, e).map(|v| keyed(e, v));
        }),
    ];

    fn seen_mut(&mut self) -> &mut Vec<Ident> {
        &mut self.seen
    }
}

/// The keys of `retry(...)`.
#[derive(Debug, Default)]
pub(crate) struct RetryAttrs {
    seen: Vec<Ident>,
    pub(crate) attempts: Option<Keyed<u32>>,
    pub(crate) backoff: Option<Keyed<BackOffKind>>,
    pub(crate) initial: Option<Keyed<Duration>>,
    pub(crate) max: Option<Keyed<Duration>>,
    pub(crate) multiplier: Option<Keyed<f64>>,
    pub(crate) jitter: Option<Keyed<bool>>,
}

/// The `backoff = "..."` of `retry(...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BackOffKind {
    Fixed,
    Exponential,
}

impl KeyTable for ListenerAttrs {
    const CONTEXT: &'static str = "";
    const KEYS: &'static [(Symbol, Setter<Self>)] = &[
        (TOPICS, |a, cx, e| {
            a.topics = topics(cx, e).map(|v| keyed(e, v));
        }),
        (TOPIC_PATTERN, |a, cx, e| {
            a.topic_pattern = e
                .non_empty_string(cx, r#"topic_pattern = "^orders\\..*""#)
                .map(|v| keyed(e, v));
        }),
        (GROUP_ID, |a, cx, e| {
            a.group_id = e
                .non_empty_string(cx, r#"group_id = "order-processor""#)
                .map(|v| keyed(e, v));
        }),
        (ID, |a, cx, e| {
            a.id = e
                .non_empty_string(cx, r#"id = "orders""#)
                .map(|v| keyed(e, v));
        }),
        (CONCURRENCY, |a, cx, e| {
            a.concurrency = at_least(cx, e, "concurrency = 3", 1).map(|v| keyed(e, v));
        }),
        (ACK_MODE, |a, cx, e| {
            a.ack_mode = ack_mode(cx, e).map(|v| keyed(e, v));
        }),
        (AUTO_STARTUP, |a, cx, e| {
            a.auto_startup = e
                .boolean(cx, "auto_startup = false")
                .map(|v| keyed(e, v.value));
        }),
        (PROPERTIES, |a, cx, e| {
            a.properties = properties(cx, e).map(|v| keyed(e, v));
        }),
        (BATCH, |a, cx, e| {
            a.batch = e.boolean(cx, "batch = true").map(|v| keyed(e, v.value));
        }),
        (RETRY, |a, cx, e| {
            let example = r#"retry(attempts = 5, backoff = "exponential", initial = "100ms")"#;
            a.retry = e
                .nested(cx, example)
                .map(|entries| keyed(e, RetryAttrs::from_entries(cx, entries)));
        }),
        (RATE_LIMIT, |a, cx, e| {
            a.rate_limit = rate_limit(cx, e).map(|v| keyed(e, v));
        }),
        (FILTER, |a, cx, e| {
            a.filter = e.path(cx, "filter = only_paid").map(|v| keyed(e, v));
        }),
        (REPLY, |a, cx, e| {
            a.reply = e.boolean(cx, "reply = true").map(|v| keyed(e, v.value));
        }),
        (SEND_TO, |a, cx, e| {
            a.send_to = send_to(cx, e).map(|v| keyed(e, v));
        }),
        (TRANSACTIONAL, |a, cx, e| {
            a.transactional = e
                .boolean(cx, "transactional = true")
                .map(|v| keyed(e, v.value));
        }),
        (ISOLATION, |a, cx, e| {
            a.isolation = isolation(cx, e).map(|v| keyed(e, v));
        }),
        (SEEK, |a, cx, e| {
            a.seek = seek(cx, e).map(|v| keyed(e, v));
        }),
        (ORDERING, |a, cx, e| {
            a.ordering = ordering(cx, e).map(|v| keyed(e, v));
        }),
        (PARALLELISM, |a, cx, e| {
            a.parallelism = at_least(cx, e, "parallelism = 64", 1).map(|v| keyed(e, v));
        }),
        (DEAD_LETTER, |a, cx, e| {
            a.dead_letter = dead_letter(cx, e).map(|v| keyed(e, v));
        }),
        (RETRY_TOPICS, |a, cx, e| {
            let example = r#"retry_topics(attempts = 3, delays = ["1s", "10s"])"#;
            a.retry_topics = e
                .nested(cx, example)
                .map(|entries| keyed(e, RetryTopicsAttrs::from_entries(cx, entries)));
        }),
        (CRATE, |a, cx, e| {
            a.krate = crate_path(cx, e).map(|v| keyed(e, v));
        }),
    ];

    fn seen_mut(&mut self) -> &mut Vec<Ident> {
        &mut self.seen
    }
}

impl KeyTable for RetryAttrs {
    const CONTEXT: &'static str = " in `retry(...)`";
    const KEYS: &'static [(Symbol, Setter<Self>)] = &[
        (ATTEMPTS, |a, cx, e| {
            a.attempts = at_least(cx, e, "attempts = 5", 1).map(|v| keyed(e, v));
        }),
        (BACKOFF, |a, cx, e| {
            a.backoff = backoff(cx, e).map(|v| keyed(e, v));
        }),
        (INITIAL, |a, cx, e| {
            a.initial = duration(cx, e, r#"initial = "100ms""#).map(|v| keyed(e, v));
        }),
        (MAX, |a, cx, e| {
            a.max = duration(cx, e, r#"max = "10s""#).map(|v| keyed(e, v));
        }),
        (MULTIPLIER, |a, cx, e| {
            a.multiplier = multiplier(cx, e).map(|v| keyed(e, v));
        }),
        (JITTER, |a, cx, e| {
            a.jitter = e.boolean(cx, "jitter = false").map(|v| keyed(e, v.value));
        }),
    ];

    fn seen_mut(&mut self) -> &mut Vec<Ident> {
        &mut self.seen
    }
}

impl ListenerAttrs {
    /// Parses the attribute's arguments; every error goes to `cx`.
    pub(crate) fn parse(cx: &Ctxt, args: proc_macro2::TokenStream) -> Self {
        Self::from_entries(cx, crate::meta::entries(cx, args))
    }

    /// Whether `key` was given, valid or not.
    pub(crate) fn has(&self, key: Symbol) -> bool {
        self.seen.iter().any(|k| *k == key)
    }
}

impl RetryTopicsAttrs {
    /// Whether `key` was given (valid or not).
    pub(crate) fn given(&self, key: Symbol) -> bool {
        self.seen.iter().any(|k| *k == key)
    }
}

impl RetryAttrs {
    /// The key `key` as written, when it was given (valid or not).
    pub(crate) fn given(&self, key: Symbol) -> Option<&Ident> {
        self.seen.iter().find(|k| **k == key)
    }
}

fn topics(cx: &Ctxt, entry: &Entry) -> Option<Vec<LitStr>> {
    let example = r#"topics = ["orders"]"#;
    let topics = entry.string_list(cx, example)?;
    if topics.is_empty() {
        entry.error(
            cx,
            format!("`topics` is empty; name at least one topic, e.g. `{example}`"),
        );
        return None;
    }
    let mut ok = true;
    for (i, topic) in topics.iter().enumerate() {
        let name = topic.value();
        if name.trim().is_empty() {
            cx.error_spanned_by(topic, "a topic name cannot be empty");
            ok = false;
        } else if topics[..i].iter().any(|t| t.value() == name) {
            cx.error_spanned_by(topic, format!("topic `{name}` is listed more than once"));
            ok = false;
        }
    }
    ok.then_some(topics)
}

/// An integer key of type `N` with a lower bound.
fn at_least<N: TryFrom<u64>>(cx: &Ctxt, entry: &Entry, example: &str, min: u64) -> Option<N> {
    let (n, span) = entry.integer(cx, example)?;
    if n < min {
        cx.error_at(
            span,
            format!("`{}` must be at least {min}, e.g. `{example}`", entry.key),
        );
        return None;
    }
    match N::try_from(n) {
        Ok(n) => Some(n),
        Err(_) => {
            cx.error_at(span, format!("`{}` is too large", entry.key));
            None
        }
    }
}

/// Client properties; the three the container sets itself are refused
/// here rather than ignored at run time.
fn properties(cx: &Ctxt, entry: &Entry) -> Option<Vec<(LitStr, LitStr)>> {
    let pairs = entry.string_pairs(cx, r#"properties = [("max.poll.interval.ms", "300000")]"#)?;
    let mut ok = true;
    for (i, (key, _)) in pairs.iter().enumerate() {
        let name = key.value();
        let reason = match name.as_str() {
            "" => Some("a property name cannot be empty".to_owned()),
            "group.id" => Some("`group.id` is set by the container; use `group_id = \"...\"` instead".to_owned()),
            "enable.auto.commit" | "enable.auto.offset.store" => Some(format!(
                "`{name}` is set by the container, which commits finished offsets itself; choose when with `ack_mode`"
            )),
            _ if pairs[..i].iter().any(|(k, _)| k.value() == name) => {
                Some(format!("property `{name}` is set more than once"))
            }
            _ => None,
        };
        if let Some(reason) = reason {
            cx.error_spanned_by(key, reason);
            ok = false;
        }
    }
    ok.then_some(pairs)
}

fn backoff(cx: &Ctxt, entry: &Entry) -> Option<BackOffKind> {
    const ALL: [(Symbol, BackOffKind); 2] = [
        (FIXED, BackOffKind::Fixed),
        (EXPONENTIAL, BackOffKind::Exponential),
    ];
    let lit = entry.string(cx, r#"backoff = "fixed""#)?;
    let name = lit.value().to_ascii_lowercase();
    let kind = ALL
        .iter()
        .find(|(symbol, _)| symbol.as_str() == name)
        .map(|(_, kind)| *kind);
    if kind.is_none() {
        cx.error_spanned_by(
            &lit,
            format!(
                "unknown backoff `{}`; expected one of: {}",
                lit.value(),
                symbol::one_of(ALL.iter().map(|(symbol, _)| symbol))
            ),
        );
    }
    kind
}

/// A duration in humantime syntax ("100ms", "1s", "2m", "1m 30s"), in
/// whole milliseconds (what `Duration::from_millis` is emitted with).
fn duration(cx: &Ctxt, entry: &Entry, example: &str) -> Option<Duration> {
    let lit = entry.string(cx, example)?;
    parse_duration(cx, &lit, &entry.key)
}

/// [`duration`] of one string literal given for `key`.
fn parse_duration(cx: &Ctxt, lit: &LitStr, key: &Ident) -> Option<Duration> {
    let text = lit.value();
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d.subsec_nanos() % 1_000_000 != 0 => {
            cx.error_spanned_by(
                lit,
                format!("`{key}` must be a whole number of milliseconds, not `{text}`"),
            );
            None
        }
        Ok(d) if u64::try_from(d.as_millis()).is_err() => {
            cx.error_spanned_by(lit, format!("`{key}` is too long"));
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            cx.error_spanned_by(
                lit,
                format!("invalid duration `{text}` for `{key}`: {e}; expected e.g. \"100ms\", \"1s\" or \"2m\""),
            );
            None
        }
    }
}

/// `rate_limit = "PERMITS/DURATION"`, as the runtime's `RateLimit::from_str`.
fn rate_limit(cx: &Ctxt, entry: &Entry) -> Option<(u32, Duration)> {
    let lit = entry.string(cx, r#"rate_limit = "100/10s""#)?;
    let text = lit.value();
    let fail = |why: String| {
        cx.error_spanned_by(
            &lit,
            format!("invalid `rate_limit = \"{text}\"`: {why}; expected PERMITS/DURATION such as \"100/10s\""),
        );
        None
    };
    let Some((m, n)) = text.split_once('/') else {
        return fail("no `/`".into());
    };
    let permits = match m.trim().parse::<u32>() {
        Ok(0) => return fail("permits must be at least 1".into()),
        Ok(p) => p,
        Err(_) => return fail(format!("`{m}` is not a whole number")),
    };
    match humantime::parse_duration(n.trim()) {
        Ok(d) if d.is_zero() => fail("the window must be longer than zero".into()),
        Ok(d) if d.subsec_nanos() % 1_000_000 != 0 || u64::try_from(d.as_millis()).is_err() => {
            fail("the window must be a whole number of milliseconds".into())
        }
        Ok(d) => Some((permits, d)),
        Err(e) => fail(format!("`{n}`: {e}")),
    }
}

/// `dead_letter = true | false | "topic"`.
fn dead_letter(cx: &Ctxt, entry: &Entry) -> Option<DeadLetterAttr> {
    let example = r#"dead_letter = true"#;
    match entry.value(cx, example)? {
        Value::Lit(Lit::Bool(b)) if b.value => Some(DeadLetterAttr::Default),
        Value::Lit(Lit::Bool(_)) => Some(DeadLetterAttr::Off),
        Value::Lit(Lit::Str(s)) if s.value().trim().is_empty() => {
            cx.error_spanned_by(
                &s,
                "`dead_letter` cannot be an empty topic name; use `dead_letter = true` for `<topic>-dlt`",
            );
            None
        }
        Value::Lit(Lit::Str(s)) => match topic_name_error(&s.value()) {
            Some(reason) => {
                cx.error_spanned_by(&s, reason);
                None
            }
            None => Some(DeadLetterAttr::Topic(s)),
        },
        other => other.mismatch(
            cx,
            &entry.key,
            "`true`, `false` or a topic name",
            r#"dead_letter = true` or `dead_letter = "orders-dlt""#,
        ),
    }
}

/// `send_to = "topic"`: a valid topic name.
fn send_to(cx: &Ctxt, entry: &Entry) -> Option<LitStr> {
    let lit = entry.non_empty_string(cx, r#"send_to = "prices.replies""#)?;
    match topic_name_error(&lit.value()) {
        Some(reason) => {
            cx.error_spanned_by(&lit, reason);
            None
        }
        None => Some(lit),
    }
}

/// `delays = ["1s", "10s"]`: at least one, each a whole number of
/// milliseconds and more than zero.
fn delays(cx: &Ctxt, entry: &Entry) -> Option<Vec<Duration>> {
    let example = r#"delays = ["1s", "10s"]"#;
    let list = entry.string_list(cx, example)?;
    if list.is_empty() {
        entry.error(
            cx,
            format!("`delays` is empty; give at least one delay, e.g. `{example}`"),
        );
        return None;
    }
    let mut ok = true;
    let mut out = Vec::new();
    for lit in &list {
        match parse_duration(cx, lit, &entry.key) {
            Some(d) if d.is_zero() => {
                cx.error_spanned_by(lit, "a retry-topic delay must be more than zero");
                ok = false;
            }
            Some(d) => out.push(d),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn multiplier(cx: &Ctxt, entry: &Entry) -> Option<f64> {
    let (m, tokens) = entry.number(cx, "multiplier = 2.0")?;
    if m < 1.0 {
        cx.error_spanned_by(
            tokens,
            format!("`multiplier` must be at least 1.0 (each delay is at least the one before), not {m}"),
        );
        return None;
    }
    Some(m)
}
