//! Procedural macros for kafka-listener. Use them through the
//! `kafka-listener` crate, which re-exports them; generated code names
//! only `::kafka_listener::__private` paths.

mod after_commit;
mod ctxt;
mod kafka_listener;
mod meta;
mod symbol;
mod util;

use proc_macro::TokenStream;

/// Declares a Kafka listener: an `async fn` that the app discovers at start
/// and runs in a listener container.
///
/// # Grammar
///
/// ```text
/// #[kafka_listener(KEY, ...)]
///
/// KEY := topics = ["TOPIC", ...]            exactly one of `topics`
///      | topic_pattern = "REGEX"             and `topic_pattern`
///      | group_id = "GROUP"                  default: the listener id
///      | id = "ID"                           default: the function name
///      | concurrency = INTEGER               >= 1; default 1
///      | ack_mode = "record" | "batch" | "manual" | "manual_immediate"
///                                            default "batch"
///      | auto_startup = BOOL                 default true
///      | properties = [("NAME", "VALUE"), ...]  librdkafka consumer properties
///      | batch = BOOL                        a batch listener; default false
///      | retry(RETRY_KEY, ...)               blocking retries; default: RetryPolicy::default()
///      | ordering = "partition" | "key" | "none"
///                                            "partition" (default): one record of a partition at a
///                                            time; "key": up to `parallelism` at once, one at a time
///                                            per key; "none": up to `parallelism` at once; not with
///                                            `batch = true`
///      | parallelism = INTEGER               >= 1; with "key" or "none" (default 16)
///      | rate_limit = "PERMITS/DURATION"     at most PERMITS records per DURATION window
///                                            (sliding, whole listener), e.g. "100/10s";
///                                            PERMITS >= 1, DURATION > 0; default none
///      | filter = PATH                      a `fn(&ConsumerRecord) -> bool`: records it returns
///                                            false for are acknowledged without reaching the
///                                            function (Spring's `RecordFilterStrategy`, whose
///                                            `filter` returns true to discard)
///      | reply = BOOL                        true: send the return value to the request's
///                                            `kafka_replyTopic` header, its `kafka_correlationId`
///                                            copied (Spring's `@SendTo`); record listeners only
///      | send_to = "TOPIC"                   send the return value to TOPIC, a valid topic name
///                                            (Spring's `@SendTo("TOPIC")`); not with `reply`
///      | transactional = BOOL                each record (or batch) in a Kafka transaction with
///                                            its offset (exactly once; needs a transactional.id
///                                            prefix, ack mode record or batch, ordering partition)
///      | isolation = "read_committed" | "read_uncommitted"
///                                            the consumer's isolation.level; default
///                                            read_committed
///      | seek = "beginning" | "end"          where each partition starts whenever it is assigned
///                                            (Spring's ConsumerSeekAware); default: the
///                                            committed offset
///      | dead_letter = BOOL | "TOPIC"        true: "<topic>-dlt"; "TOPIC" a valid topic
///                                            name; default false (log and skip)
///      | retry_topics(RETRY_TOPICS_KEY, ...) non-blocking retries (`@RetryableTopic`); needs `topics`
///      | crate = "PATH"                      default "::kafka_listener"
///
/// RETRY_KEY := attempts = INTEGER            >= 1, the first delivery included; default 3
///            | backoff = "exponential" | "fixed"   default "exponential"
///            | initial = "DURATION"          first delay (fixed: every delay); default "1s";
///                                            > 0 when exponential
///            | max = "DURATION"              exponential only, >= initial; default "30s"
///                                            (or `initial` when that is longer)
///            | multiplier = NUMBER           exponential only, >= 1.0; default 2.0
///            | jitter = BOOL                 exponential only; default true
///
/// RETRY_TOPICS_KEY := attempts = INTEGER     >= 1, the first delivery included; default 3
///                   | delays = ["DURATION", ...]   > 0 each, before retry 1, 2, ...; the
///                                            last repeats; default ["1s"]; topics are
///                                            "<topic>-retry-<ms>"
/// ```
///
/// `DURATION` is in humantime syntax ("100ms", "1s", "2m", "1m 30s") and
/// whole milliseconds. Values are literals; constants are not accepted.
/// The defaults above are the runtime's: the macro emits only the keys
/// written (`retry(attempts = 5)` becomes
/// `RetryPolicy::builder().attempts(5).build()`), and the runtime's
/// builders fill in the rest.
///
/// The function is an `async fn`, not generic, without `self`, with at most
/// 12 arguments, each an extractor: `FromRecord` for a record listener,
/// `FromBatch` (such as `Vec<Json<T>>`) for a batch listener. It returns
/// `()` or `Result<(), E>` with `E: Into<ListenerError>`; with `reply` or
/// `send_to` it returns the reply instead: `Json<T>`, `Reply`, `String`,
/// `Vec<u8>`, `Bytes`, an `Option` of one (`None` sends nothing), or a
/// `Result<_, E>` of these.
///
/// # Semantics
///
/// Generates 2 items: the function, unchanged, and an anonymous
/// `const _: () = { ... };` that holds
/// - `fn __kafka_listener_factory() -> ListenerSpec`, building the spec
///   from the attribute (`ListenerSpec::new(id).topics([..])...handler(f)`,
///   or `.batch_handler(f)` with `batch = true`), settings through the
///   runtime's constructors and builders (`RetryPolicy::builder()`,
///   `RetryTopics::builder()`, `RateLimit::new`, `DeadLetter::suffixed()`
///   / `DeadLetter::topic(..)`), never struct literals,
/// - an `inventory::submit!` of a `ListenerRegistration` of that factory,
///   through which `KafkaApp` finds the listener,
/// - one `const` assertion per argument (`FromRecord` or `FromBatch`) and
///   one for the return type, spanned at the user's types so that trait
///   errors point at them.
///
/// Settings not given are not emitted: the runtime's defaults apply.
/// `KAFKA_LISTENER_MACROS_DEBUG=1` in the compiler's environment prints
/// each expansion to stderr (touch the file to expand it again).
///
/// # Errors
///
/// Compile errors, all reported at once and each at the offending tokens:
/// unknown or repeated keys, values of the wrong type or out of range, no
/// topic source or two of them, a retry key that does not apply to the
/// back-off, a function that is not a plain `async fn`, an `Acknowledgment`
/// argument without a manual ack mode, a `Vec` argument in a record
/// listener, and argument or return types that are not extractors. The
/// function is still emitted beside the errors.
///
/// # Examples
///
/// (Compiled by the pass cases in `kafka-listener/tests/ui/pass`; this crate
/// cannot depend on the runtime to run it here.)
///
/// ```ignore
/// use kafka_listener::prelude::*;
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct IssueRequested {
///     coupon_id: String,
/// }
///
/// #[kafka_listener(
///     topics = ["coupon.issue.requested"],
///     group_id = "coupon-issuer",
///     concurrency = 3,
///     ack_mode = "manual",
///     retry(attempts = 5, initial = "100ms", max = "10s"),
/// )]
/// async fn issue(req: Json<IssueRequested>, ack: Acknowledgment) -> Result<(), ListenerError> {
///     println!("issuing {}", req.coupon_id);
///     ack.acknowledge();
///     Ok(())
/// }
/// ```
///
/// `Acknowledgment` needs a manual ack mode; this fails with "`Acknowledgment`
/// needs ack_mode = "manual" or "manual_immediate", but this listener's ack
/// mode is "record"", at the argument's type (on error only the function and
/// the errors are emitted, so nothing else is needed to show it):
///
/// ```compile_fail
/// # struct Acknowledgment;
/// use kafka_listener_macros::kafka_listener;
///
/// #[kafka_listener(topics = ["orders"], ack_mode = "record")]
/// async fn on_order(ack: Acknowledgment) {}
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn kafka_listener(args: TokenStream, item: TokenStream) -> TokenStream {
    kafka_listener::expand(args.into(), item.into()).into()
}

/// Runs an `async fn` after a database transaction that published its
/// event commits: Spring's `@TransactionalEventListener(phase = AFTER_COMMIT)`.
///
/// # Grammar
///
/// ```text
/// #[after_commit]
/// #[after_commit(KEY, ...)]
///
/// KEY := fallback_execution = BOOL     also run for events published outside
///                                      a transaction; default false
///      | crate = "PATH"                default "::kafka_listener"
///
/// async fn NAME(EVENT_PAT: EventType, ARG: Extractor, ...) [-> () | Result<(), E>]
/// ```
///
/// The first argument is the event, by value (each handler gets its own
/// clone, so the type is `Clone + Send + Sync + 'static`). Up to 8 more
/// arguments follow, each `FromEventContext`: `State<T>` (state given to
/// `TransactionalEvents::builder(..).state(..)`) or `EventMeta` (the event
/// id). The function is a plain `async fn`: not generic, no `self`, its
/// future `Send`. It returns `()` or `Result<(), E>` with
/// `E: Into<ListenerError>`.
///
/// # Semantics
///
/// Generates 2 items: the function, unchanged, and an anonymous
/// `const _: () = { ... };` with one assertion per argument and for the
/// return type (spanned at the user's types), two type-erased entry points
/// (call and start-up validation) and an `inventory::submit!` of an
/// `AfterCommitRegistration` keyed by the event's `TypeId`. Any number of
/// handlers may take one event type. `TransactionalEvents` finds them at
/// `build()`; `EventTx::commit` runs them after the commit, one at a time;
/// a failure is logged and counted and the commit stands. On rollback or
/// drop they never run. `TransactionalEvents::publish` (no transaction)
/// runs only the handlers with `fallback_execution = true`.
///
/// # Errors
///
/// Compile errors at the user's tokens, all at once: unknown or repeated
/// keys (listing the valid ones), a non-boolean `fallback_execution`, an
/// item that is not a function, a function that is not a plain `async fn`,
/// no event argument, an event taken by reference or as `impl Trait`,
/// `State<T>`/`EventMeta` in the event's place, more than 8 arguments after
/// the event, and argument, event and return types that do not fit. The
/// function is still emitted beside the errors.
///
/// # Examples
///
/// (Compiled by `kafka-listener/tests/ui/after_commit/pass`.)
///
/// ```ignore
/// use kafka_listener::after_commit::EventMeta;
/// use kafka_listener::{after_commit, ListenerError, State};
///
/// #[derive(Clone)]
/// struct CouponIssued { coupon_id: String }
///
/// #[after_commit]
/// async fn notify(event: CouponIssued, mailer: State<Mailer>, meta: EventMeta) -> Result<(), ListenerError> {
///     mailer.send(&event.coupon_id, &meta.event_id).await?;
///     Ok(())
/// }
///
/// #[after_commit(fallback_execution = true)]
/// async fn audit(event: CouponIssued) {}
/// ```
///
/// The event comes first; this fails with "the first argument of an
/// `#[after_commit]` handler is the event; `State` goes after it":
///
/// ```compile_fail
/// # struct State<T>(T);
/// use kafka_listener_macros::after_commit;
///
/// #[after_commit]
/// async fn wrong(app: State<u32>) {}
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn after_commit(args: TokenStream, item: TokenStream) -> TokenStream {
    after_commit::expand(args.into(), item.into()).into()
}

/// Sends a struct to Kafka through the transactional outbox when it is
/// published in an `EventTx`.
///
/// # Grammar
///
/// ```text
/// #[derive(OutboxEvent)]
/// #[outbox(KEY, ...)]           one or more; keys may be split across them
///
/// KEY := topic = "TOPIC"        required; a valid Kafka topic name
///      | key = "FIELD"          required; a field whose type is `Display`:
///                               the record key (per-key order)
///      | format = "json"        default: the record value is the event's JSON
///      | format = "avro"        the record value is Avro in the Confluent
///                               wire format (schema registered under the
///                               topic's subject); needs `Deserialize` and
///                               apache-avro's `AvroSchema`
///      | name = "NAME"          the event's stable name (below); 1 to 249
///                               characters, no whitespace or control
///                               characters; default: the type's name
///                               without its module path
///      | crate = "PATH"         default "::kafka_listener"
/// ```
///
/// The name is stored in each outbox row's `event_type` and sent in the
/// `kafka_listener-event-type` header; the relay finds a row's type (and so
/// its format) by it. The default survives moving the type to another
/// module, not renaming it: give `name` to every type whose rows may be
/// pending across a deploy. A row whose name the binary does not know stays
/// unsent, with the reason in its `last_error`. Two types of one binary
/// with the same name are refused at `TransactionalEventsBuilder::build`.
///
/// The struct has named fields, no generics, and implements
/// `serde::Serialize` (the outbox keeps the event as JSON; with
/// `format = "avro"` the relay encodes that JSON as Avro when it sends).
///
/// # Semantics
///
/// Generates an `impl OutboxEvent` (`TOPIC`, `NAME` and `key()`, which is
/// `ToString::to_string(&self.FIELD)`) and an `inventory::submit!` of an
/// `OutboxRegistration`, through which `EventTx::publish` recognizes the
/// type and inserts a row into the outbox table in the same transaction.
/// After the commit the relay sends it with the headers
/// `kafka_listener-event-id` (unique) and `kafka_listener-event-type`.
///
/// # Errors
///
/// At the user's tokens: no `#[outbox]`, a missing `topic` or `key`,
/// unknown or repeated keys, an invalid topic name, a key that is not a
/// field (listing the fields), an unknown format (listing the formats), an
/// enum, union or tuple struct, generics, and a type that is not
/// `Serialize` (or, with `format = "avro"`, not `Deserialize` and
/// `AvroSchema`) or a key field that is not `Display`.
///
/// # Examples
///
/// ```ignore
/// use kafka_listener::OutboxEvent;
///
/// #[derive(Clone, serde::Serialize, OutboxEvent)]
/// #[outbox(topic = "coupon.issued", key = "coupon_id", name = "coupon.CouponIssued")]
/// struct CouponIssued { coupon_id: String, user_id: String }
/// ```
#[proc_macro_derive(OutboxEvent, attributes(outbox))]
pub fn derive_outbox_event(item: TokenStream) -> TokenStream {
    after_commit::derive_outbox_event(item.into()).into()
}
