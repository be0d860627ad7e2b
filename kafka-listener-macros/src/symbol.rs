//! Every attribute key and keyword value the macros accept, in one place
//! (as serde_derive's `symbol.rs`).
//!
//! To add a key to `#[kafka_listener]`: declare its symbol here, then give it
//! a field and a row in the key table of `kafka_listener/attr.rs`
//! (`LISTENER_KEYS` or `RETRY_KEYS`). The "expected one of" lists in error
//! messages are made from those tables, so they stay complete.

use std::fmt;

use syn::Ident;

/// An attribute key or keyword value, compared with the user's identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Symbol(pub(crate) &'static str);

impl Symbol {
    pub(crate) fn as_str(self) -> &'static str {
        self.0
    }
}

impl PartialEq<Symbol> for Ident {
    fn eq(&self, word: &Symbol) -> bool {
        self == word.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

// `#[kafka_listener(...)]` keys.
pub(crate) const TOPICS: Symbol = Symbol("topics");
pub(crate) const TOPIC_PATTERN: Symbol = Symbol("topic_pattern");
pub(crate) const GROUP_ID: Symbol = Symbol("group_id");
pub(crate) const ID: Symbol = Symbol("id");
pub(crate) const CONCURRENCY: Symbol = Symbol("concurrency");
pub(crate) const ACK_MODE: Symbol = Symbol("ack_mode");
pub(crate) const AUTO_STARTUP: Symbol = Symbol("auto_startup");
pub(crate) const PROPERTIES: Symbol = Symbol("properties");
pub(crate) const BATCH: Symbol = Symbol("batch");
pub(crate) const RETRY: Symbol = Symbol("retry");
pub(crate) const RATE_LIMIT: Symbol = Symbol("rate_limit");
pub(crate) const FILTER: Symbol = Symbol("filter");
pub(crate) const REPLY: Symbol = Symbol("reply");
pub(crate) const SEND_TO: Symbol = Symbol("send_to");
pub(crate) const TRANSACTIONAL: Symbol = Symbol("transactional");
pub(crate) const ISOLATION: Symbol = Symbol("isolation");
pub(crate) const READ_COMMITTED: Symbol = Symbol("read_committed");
pub(crate) const READ_UNCOMMITTED: Symbol = Symbol("read_uncommitted");
pub(crate) const SEEK: Symbol = Symbol("seek");
pub(crate) const SEEK_BEGINNING: Symbol = Symbol("beginning");
pub(crate) const SEEK_END: Symbol = Symbol("end");
pub(crate) const ORDERING: Symbol = Symbol("ordering");
pub(crate) const PARALLELISM: Symbol = Symbol("parallelism");
pub(crate) const ORDER_PARTITION: Symbol = Symbol("partition");
pub(crate) const ORDER_KEY: Symbol = Symbol("key");
pub(crate) const ORDER_NONE: Symbol = Symbol("none");
pub(crate) const DEAD_LETTER: Symbol = Symbol("dead_letter");
pub(crate) const RETRY_TOPICS: Symbol = Symbol("retry_topics");
pub(crate) const CRATE: Symbol = Symbol("crate");

// `#[after_commit(...)]` keys (and `crate`).
pub(crate) const FALLBACK_EXECUTION: Symbol = Symbol("fallback_execution");

// `#[derive(OutboxEvent)]`: the helper attribute and its keys (and `crate`).
pub(crate) const OUTBOX: Symbol = Symbol("outbox");
pub(crate) const TOPIC: Symbol = Symbol("topic");
pub(crate) const KEY: Symbol = Symbol("key");
pub(crate) const FORMAT: Symbol = Symbol("format");
pub(crate) const NAME: Symbol = Symbol("name");

// `format = "..."` values of `#[outbox(...)]`.
pub(crate) const JSON: Symbol = Symbol("json");
pub(crate) const AVRO: Symbol = Symbol("avro");

// `retry_topics(...)` keys (and `attempts`).
pub(crate) const DELAYS: Symbol = Symbol("delays");

// `retry(...)` keys.
pub(crate) const ATTEMPTS: Symbol = Symbol("attempts");
pub(crate) const BACKOFF: Symbol = Symbol("backoff");
pub(crate) const INITIAL: Symbol = Symbol("initial");
pub(crate) const MAX: Symbol = Symbol("max");
pub(crate) const MULTIPLIER: Symbol = Symbol("multiplier");
pub(crate) const JITTER: Symbol = Symbol("jitter");

// `ack_mode = "..."` values: the spellings of the runtime's `AckMode::VALID`.
pub(crate) const RECORD: Symbol = Symbol("record");
pub(crate) const MANUAL: Symbol = Symbol("manual");
pub(crate) const MANUAL_IMMEDIATE: Symbol = Symbol("manual_immediate");
/// Ack mode `batch` (the same word as the `batch` key).
pub(crate) const BATCH_ACK: Symbol = BATCH;

// `backoff = "..."` values.
pub(crate) const FIXED: Symbol = Symbol("fixed");
pub(crate) const EXPONENTIAL: Symbol = Symbol("exponential");

// Type names the checks recognize by their last path segment.
pub(crate) const ACKNOWLEDGMENT: Symbol = Symbol("Acknowledgment");
pub(crate) const VEC: Symbol = Symbol("Vec");
pub(crate) const STATE: Symbol = Symbol("State");
pub(crate) const EVENT_META: Symbol = Symbol("EventMeta");

/// The runtime's extractors of one record, which a batch listener takes in
/// a `Vec`.
pub(crate) const RECORD_EXTRACTORS: &[Symbol] = &[
    Symbol("Json"),
    Symbol("Key"),
    Symbol("RecordMeta"),
    Symbol("Headers"),
    Symbol("ConsumerRecord"),
    Symbol("Bytes"),
    Symbol("String"),
];

/// Renders symbols as "`a`, `b`" for "expected one of" messages.
pub(crate) fn one_of<'a>(symbols: impl IntoIterator<Item = &'a Symbol>) -> String {
    symbols
        .into_iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
