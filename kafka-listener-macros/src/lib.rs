//! Procedural macros for kafka-listener. Use them through the
//! `kafka-listener` crate, which re-exports them; generated code names
//! only `::kafka_listener::__private` paths.

mod ctxt;
mod kafka_listener;
mod meta;
mod symbol;

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
///      | retry(RETRY_KEY, ...)               default: the runtime's RetryPolicy
///      | crate = "PATH"                      default "::kafka_listener"
///
/// RETRY_KEY := attempts = INTEGER            >= 1, the first delivery included; default 3
///            | backoff = "exponential" | "fixed"   default "exponential"
///            | initial = "DURATION"          first delay (fixed: every delay); default "1s"
///            | max = "DURATION"              exponential only; default "30s"
///            | multiplier = NUMBER           exponential only, >= 1.0; default 2.0
///            | jitter = BOOL                 exponential only; default true
/// ```
///
/// `DURATION` is in humantime syntax ("100ms", "1s", "2m", "1m 30s") and
/// whole milliseconds. Values are literals; constants are not accepted.
///
/// The function is an `async fn`, not generic, without `self`, with at most
/// 12 arguments, each an extractor: `FromRecord` for a record listener,
/// `FromBatch` (such as `Vec<Json<T>>`) for a batch listener. It returns
/// `()` or `Result<(), E>` with `E: Into<ListenerError>`.
///
/// # Semantics
///
/// Generates 2 items: the function, unchanged, and an anonymous
/// `const _: () = { ... };` that holds
/// - `fn __kafka_listener_factory() -> ListenerSpec`, building the spec
///   from the attribute (`ListenerSpec::new(id).topics([..])...handler(f)`,
///   or `.batch_handler(f)` with `batch = true`),
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
/// (Compiled by the UI tests in `kafka-listener/tests/ui/pass`; this crate
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
