//! Checks across keys and against the function: turns the parsed
//! attributes and the function into a [`Listener`], recording every problem
//! in the `Ctxt`. Defaults are not resolved here: a setting not written is
//! not emitted, and the runtime's builders fill it in.

use std::time::Duration;

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::{FnArg, ItemFn, LitStr, Type};

use super::attr::{
    AckMode, BackOffKind, DeadLetterAttr, ListenerAttrs, OrderingAttr, RetryAttrs, RetryTopicsAttrs,
};
use super::{Listener, ReplyAttr, Retry, RetryTopics, TopicSource};
use crate::ctxt::Ctxt;
use crate::meta::Keyed;
use crate::symbol::*;
use crate::util::{last_segment, type_string};

/// The most arguments a handler may take (the runtime implements `Handler`
/// for up to 12).
const MAX_ARGS: usize = 12;

/// `ordering` and `parallelism` against each other and `batch`.
fn parallelism(cx: &Ctxt, attrs: &ListenerAttrs, batch: bool) {
    let ordering = attrs.ordering.as_ref().map(|k| k.value);
    if let Some(p) = &attrs.parallelism {
        if p.value > 1 && matches!(ordering, None | Some(OrderingAttr::Partition)) {
            cx.error_spanned_by(
                &p.key,
                format!(
                    "`parallelism = {}` needs `ordering = \"key\"` or `ordering = \"none\"`: with `ordering = \"partition\"` (the default) one partition's records run one at a time",
                    p.value
                ),
            );
        }
    }
    if let Some(o) = &attrs.ordering {
        if batch && o.value != OrderingAttr::Partition {
            cx.error_spanned_by(
                &o.key,
                format!(
                    "`ordering = \"{}\"` is for record listeners; a batch listener (`batch = true`) gets one partition's records in offset order",
                    o.value.name()
                ),
            );
        }
    }
}

/// `reply` and `send_to`: at most one, not with `batch = true`, and only on
/// a function that returns something (whether it is a reply is checked by
/// the assertion on the return type).
fn reply(cx: &Ctxt, attrs: &ListenerAttrs, batch: bool, func: &ItemFn) -> Option<ReplyAttr> {
    let on = attrs.reply.as_ref().filter(|k| k.value);
    let (key, value) = match (on, &attrs.send_to) {
        (None, None) => return None,
        (Some(r), Some(s)) => {
            cx.error_spanned_by(
                &s.key,
                "`send_to` and `reply = true` both say where the reply goes; give one: `reply = true` answers on the request's `kafka_replyTopic`, `send_to = \"topic\"` on a fixed topic",
            );
            (&r.key, ReplyAttr::Request)
        }
        (Some(r), None) => (&r.key, ReplyAttr::Request),
        (None, Some(s)) => (&s.key, ReplyAttr::Topic(s.value.clone())),
    };
    if batch {
        cx.error_spanned_by(
            key,
            format!("`{key}` is for record listeners: a batch listener (`batch = true`) cannot send a reply"),
        );
    }
    if matches!(func.sig.output, syn::ReturnType::Default) {
        cx.error_spanned_by(
            key,
            format!("`{key}` sends the function's return value, but `{}` returns nothing; return the reply, e.g. `-> Json<Answer>` or `-> Result<Json<Answer>, ListenerError>`", func.sig.ident),
        );
    }
    Some(value)
}

/// `transactional = true` against `ack_mode` and `ordering`.
fn transactional(cx: &Ctxt, attrs: &ListenerAttrs) {
    if !attrs.transactional.as_ref().is_some_and(|t| t.value) {
        return;
    }
    if let Some(mode) = attrs.ack_mode.as_ref().filter(|m| m.value.is_manual()) {
        cx.error_spanned_by(
            &mode.key,
            "`transactional = true` commits each record's offset in its transaction; use ack mode \"record\" or \"batch\", not a manual one",
        );
    }
    if let Some(o) = attrs
        .ordering
        .as_ref()
        .filter(|o| o.value != OrderingAttr::Partition)
    {
        cx.error_spanned_by(
            &o.key,
            format!(
                "`transactional = true` runs one partition's records one transaction at a time; `ordering = \"{}\"` needs `\"partition\"`",
                o.value.name()
            ),
        );
    }
}

/// Checks `attrs` and `func`; the listener when nothing was wrong.
pub(crate) fn listener(cx: &Ctxt, attrs: ListenerAttrs, func: ItemFn) -> Option<Listener> {
    let ack_mode = attrs.ack_mode.as_ref().map(|k| k.value);
    let batch = attrs.batch.as_ref().is_some_and(|k| k.value);
    // A key given with an invalid value was reported; checks of the
    // arguments against it would only guess.
    let modes = Modes {
        ack_mode: (attrs.ack_mode.is_some() || !attrs.has(ACK_MODE)).then_some(ack_mode),
        batch: (attrs.batch.is_some() || !attrs.has(BATCH)).then_some(batch),
    };
    signature(cx, &func, modes);
    let source = topic_source(cx, &attrs);
    let retry = attrs.retry.as_ref().and_then(|r| retry(cx, &r.value));
    let retry_topics = attrs
        .retry_topics
        .as_ref()
        .and_then(|r| retry_topics(cx, r, attrs.topic_pattern.is_some()));
    parallelism(cx, &attrs, batch);
    let reply = reply(cx, &attrs, batch, &func);
    transactional(cx, &attrs);
    if cx.has_errors() {
        return None;
    }
    let ident = &func.sig.ident;
    Some(Listener {
        krate: attrs
            .krate
            .map_or_else(|| syn::parse_quote!(::kafka_listener), |k| k.value),
        id: attrs.id.map_or_else(
            || LitStr::new(&ident.unraw().to_string(), ident.span()),
            |k| k.value,
        ),
        source: source?,
        group_id: attrs.group_id.map(|k| k.value),
        concurrency: attrs.concurrency.map(|k| k.value),
        ack_mode,
        auto_startup: attrs.auto_startup.map(|k| k.value),
        properties: attrs.properties.map(|k| k.value).unwrap_or_default(),
        batch,
        retry,
        rate_limit: attrs.rate_limit.map(|k| k.value),
        filter: attrs.filter.map(|k| k.value),
        reply,
        transactional: attrs.transactional.map(|k| k.value),
        isolation: attrs.isolation.map(|k| k.value),
        seek: attrs.seek.map(|k| k.value),
        ordering: attrs.ordering.map(|k| k.value),
        parallelism: attrs.parallelism.map(|k| k.value),
        dead_letter: attrs
            .dead_letter
            .map(|k| k.value)
            .filter(|d| *d != DeadLetterAttr::Off),
        retry_topics,
        func,
    })
}

/// Checks `retry_topics(...)`: a topic pattern cannot have retry topics
/// (they are named after the topics). The values were checked in `attr.rs`.
fn retry_topics(cx: &Ctxt, attrs: &Keyed<RetryTopicsAttrs>, pattern: bool) -> Option<RetryTopics> {
    if pattern {
        cx.error_spanned_by(
            &attrs.key,
            "`retry_topics` needs `topics`: the retry topics are named after them (`<topic>-retry-<ms>`), which a `topic_pattern` cannot give",
        );
        return None;
    }
    let given = &attrs.value;
    if given.attempts.is_none() && given.given(ATTEMPTS)
        || given.delays.is_none() && given.given(DELAYS)
    {
        return None;
    }
    Some(RetryTopics {
        attempts: given.attempts.as_ref().map(|k| k.value),
        delays: given.delays.as_ref().map(|k| k.value.clone()),
    })
}

/// `topics` or `topic_pattern`, exactly one.
fn topic_source(cx: &Ctxt, attrs: &ListenerAttrs) -> Option<TopicSource> {
    match (&attrs.topics, &attrs.topic_pattern) {
        (Some(_), Some(pattern)) => {
            cx.error_spanned_by(
                &pattern.key,
                "`topics` and `topic_pattern` cannot both be given; subscribe with one of them",
            );
            None
        }
        (Some(topics), None) => Some(TopicSource::Topics(topics.value.clone())),
        (None, Some(pattern)) => Some(TopicSource::Pattern(pattern.value.clone())),
        (None, None) => {
            // An invalid value was already reported; only a missing key is new.
            if !attrs.has(TOPICS) && !attrs.has(TOPIC_PATTERN) {
                cx.error_at(
                    Span::call_site(),
                    "a listener needs `topics = [\"...\"]` or `topic_pattern = \"...\"`",
                );
            }
            None
        }
    }
}

/// Checks `retry(...)` across its keys: keys that do not apply to a fixed
/// back-off, `initial` longer than `max`, and a zero delay for an
/// exponential back-off (`backoff` not given means exponential, as the
/// grammar documents). The runtime's builder refuses the same.
fn retry(cx: &Ctxt, attrs: &RetryAttrs) -> Option<Retry> {
    let value = |k: &Option<Keyed<Duration>>| k.as_ref().map(|k| k.value);
    let kind = attrs.backoff.as_ref().map(|k| k.value);
    let mut ok = true;
    match kind {
        Some(BackOffKind::Fixed) => {
            for (key, name) in [(MULTIPLIER, "multiplier"), (MAX, "max"), (JITTER, "jitter")] {
                if let Some(given) = attrs.given(key) {
                    cx.error_spanned_by(
                        given,
                        format!(
                            "`{name}` applies to backoff = \"exponential\" only; a fixed back-off waits `initial` before every retry"
                        ),
                    );
                    ok = false;
                }
            }
        }
        Some(BackOffKind::Exponential) | None => {
            for key in [&attrs.initial, &attrs.max].into_iter().flatten() {
                if key.value.is_zero() {
                    cx.error_spanned_by(
                        &key.key,
                        format!(
                            "`{}` of an exponential back-off must be longer than zero; for retries without a pause use backoff = \"fixed\", initial = \"0ms\"",
                            key.key
                        ),
                    );
                    ok = false;
                }
            }
            if let (Some(initial), Some(max)) = (value(&attrs.initial), value(&attrs.max)) {
                if initial > max {
                    cx.error_spanned_by(
                        attrs.max.as_ref().map(|k| &k.key),
                        format!(
                            "`initial` ({}) is longer than `max` ({}); the first delay must not exceed the cap",
                            humantime::format_duration(initial),
                            humantime::format_duration(max)
                        ),
                    );
                    ok = false;
                }
            }
        }
    }
    ok.then(|| Retry {
        attempts: attrs.attempts.as_ref().map(|k| k.value),
        backoff: kind,
        initial: value(&attrs.initial),
        max: value(&attrs.max),
        multiplier: attrs.multiplier.as_ref().map(|k| k.value),
        jitter: attrs.jitter.as_ref().map(|k| k.value),
    })
}

/// The function must be a plain `async fn` of at most 12 extractor
/// arguments; what the compiler would say later, less clearly, is said here.
fn signature(cx: &Ctxt, func: &ItemFn, modes: Modes) {
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(sig.fn_token, "a listener must be an `async fn`");
    }
    if let Some(unsafety) = &sig.unsafety {
        cx.error_spanned_by(unsafety, "a listener cannot be an `unsafe fn`");
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(abi, "a listener cannot have an `extern` ABI");
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            "a listener cannot be generic: the container calls one concrete function, with owned arguments",
        );
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, "a listener cannot be variadic");
    }
    for (i, arg) in sig.inputs.iter().enumerate() {
        match arg {
            FnArg::Receiver(receiver) => cx.error_spanned_by(
                receiver,
                "a listener cannot take `self`: use a free function, and `State<T>` for shared state",
            ),
            FnArg::Typed(arg) if i == MAX_ARGS => cx.error_spanned_by(
                arg,
                format!("a listener takes at most {MAX_ARGS} arguments; group some in a type that implements `FromRecord`"),
            ),
            FnArg::Typed(arg) if i < MAX_ARGS => argument(cx, &arg.ty, modes),
            FnArg::Typed(_) => {}
        }
    }
}

/// One argument type: what can be told from its tokens.
fn argument(cx: &Ctxt, ty: &Type, modes: Modes) {
    match ty {
        Type::ImplTrait(_) => {
            cx.error_spanned_by(
                ty,
                "a listener argument cannot be `impl Trait` (that makes the function generic); name an extractor type such as `Json<T>`",
            );
            return;
        }
        Type::Reference(_) => {
            cx.error_spanned_by(
                ty,
                "a listener argument cannot be a reference: arguments are owned extractors such as `Json<T>`, `String` or `Bytes`",
            );
            return;
        }
        _ => {}
    }
    let Some((name, generic)) = last_segment(ty) else {
        return;
    };
    if let Some(ack_mode) = modes.ack_mode {
        acknowledgment(cx, ty, &name, ack_mode);
    }
    if let Some(batch) = modes.batch {
        batch_argument(cx, ty, &name, generic, batch);
    }
}

/// The ack mode and batch setting the arguments are checked against;
/// `None` for a key given with an invalid value.
#[derive(Debug, Clone, Copy)]
struct Modes {
    /// `Some(None)`: no `ack_mode` key (the runtime's default applies).
    ack_mode: Option<Option<AckMode>>,
    batch: Option<bool>,
}

/// `Acknowledgment` only with a manual ack mode.
fn acknowledgment(cx: &Ctxt, ty: &Type, name: &str, ack_mode: Option<AckMode>) {
    if name == ACKNOWLEDGMENT.as_str() && !ack_mode.is_some_and(AckMode::is_manual) {
        let mode = match ack_mode {
            Some(mode) => format!("\"{}\"", mode.name()),
            None => "\"batch\" (the default)".to_owned(),
        };
        cx.error_spanned_by(
            ty,
            format!(
                "`Acknowledgment` needs ack_mode = \"manual\" or \"manual_immediate\", but this listener's ack mode is {mode}"
            ),
        );
    }
}

/// `Vec` arguments in batch listeners only; single-record extractors in
/// record listeners only.
fn batch_argument(cx: &Ctxt, ty: &Type, name: &str, generic: Option<&Type>, batch: bool) {
    if !batch && name == VEC.as_str() && !generic.is_some_and(|g| is_named(g, "u8")) {
        cx.error_spanned_by(
            ty,
            "`Vec<...>` of records is a batch argument: add `batch = true` to make this a batch listener (`Vec<u8>` is the raw value)",
        );
    }
    if batch && RECORD_EXTRACTORS.iter().any(|e| name == e.as_str()) {
        cx.error_spanned_by(
            ty,
            format!(
                "`{name}` extracts one record; a batch listener takes a `Vec` of it: `Vec<{}>`",
                type_string(ty)
            ),
        );
    }
}

fn is_named(ty: &Type, name: &str) -> bool {
    last_segment(ty).is_some_and(|(n, _)| n == name)
}
