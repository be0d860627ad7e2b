//! The handlers `#[after_commit]` registers through `inventory`, keyed by
//! the `TypeId` of their event, and the dispatcher that runs them.
//!
//! A handler is an `async fn` whose first argument is the event (by value;
//! each handler gets its own clone) and whose other arguments implement
//! [`FromEventContext`]: [`State<T>`](crate::State) and [`EventMeta`].

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use super::{metrics, Error};
use crate::error::ListenerError;
use crate::extract::State;
use crate::state::StateMap;
use crate::util::BoxFuture;

/// Facts about one published event, for handlers that take it as an
/// argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    /// The event's unique id (a random UUID v4 string). For an outbox event
    /// it is also the `kafka_listener-event-id` header of the Kafka record.
    pub event_id: String,
    /// The Rust type name of the event, e.g. `my_app::CouponIssued`.
    pub event_type: &'static str,
    /// `true` after a commit; `false` for an event published outside a
    /// transaction and run because of `fallback_execution = true`.
    pub in_transaction: bool,
}

/// What a handler's arguments after the event are made from.
#[derive(Debug, Clone, Copy)]
pub struct EventContext<'a> {
    state: &'a StateMap,
    meta: &'a EventMeta,
}

impl<'a> EventContext<'a> {
    /// A context over `state` for the event described by `meta` (for tests
    /// of extractors).
    pub fn new(state: &'a StateMap, meta: &'a EventMeta) -> Self {
        Self { state, meta }
    }

    /// The state given to `TransactionalEvents::builder(..).state(..)`.
    pub fn state(&self) -> &'a StateMap {
        self.state
    }

    /// The event being handled.
    pub fn meta(&self) -> &'a EventMeta {
        self.meta
    }
}

/// A handler argument after the event, built from the [`EventContext`]
/// (the `#[after_commit]` counterpart of `FromRecord`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an `#[after_commit]` handler argument",
    label = "not an after-commit extractor",
    note = "after the event, a handler takes `State<T>` (state given to `TransactionalEvents::builder(..).state(..)`), `EventMeta`, or a type that implements `FromEventContext`"
)]
pub trait FromEventContext: Sized + Send + 'static {
    /// Builds the argument.
    ///
    /// # Errors
    /// Why it cannot be built (the handler is then not run and counted as
    /// failed).
    fn from_event_context(ctx: &EventContext<'_>) -> Result<Self, String>;

    /// Checks at start-up (`TransactionalEvents::builder(..).build()`) that
    /// the argument can be built, e.g. that a `State<T>` was registered.
    ///
    /// # Errors
    /// Why the handler cannot work.
    fn validate(state: &StateMap) -> Result<(), String> {
        let _ = state;
        Ok(())
    }
}

impl<T: Clone + Send + Sync + 'static> FromEventContext for State<T> {
    fn from_event_context(ctx: &EventContext<'_>) -> Result<Self, String> {
        ctx.state.get::<T>().cloned().map(State).ok_or_else(|| {
            format!(
                "no `{}` was registered with TransactionalEvents::builder(..).state(..)",
                std::any::type_name::<T>()
            )
        })
    }

    fn validate(state: &StateMap) -> Result<(), String> {
        if state.contains::<T>() {
            Ok(())
        } else {
            Err(format!(
                "`State<{0}>` is used but no `{0}` was registered; call `.state(value)` on the TransactionalEvents builder",
                std::any::type_name::<T>()
            ))
        }
    }
}

impl FromEventContext for EventMeta {
    fn from_event_context(ctx: &EventContext<'_>) -> Result<Self, String> {
        Ok(ctx.meta.clone())
    }
}

/// What an `#[after_commit]` handler may return.
#[diagnostic::on_unimplemented(
    message = "an `#[after_commit]` handler must return `()` or `Result<(), E>` with `E: Into<ListenerError>` (any `std::error::Error`), not `{Self}`",
    label = "invalid handler return type"
)]
pub trait HandlerResult {
    /// Converts to the dispatcher's result.
    fn into_handler_result(self) -> Result<(), ListenerError>;
}

impl HandlerResult for () {
    fn into_handler_result(self) -> Result<(), ListenerError> {
        Ok(())
    }
}

impl<E: Into<ListenerError>> HandlerResult for Result<(), E> {
    fn into_handler_result(self) -> Result<(), ListenerError> {
        self.map_err(Into::into)
    }
}

/// An `async fn(E, A1, .., An)` (n <= 8, each `Ai: FromEventContext`)
/// whose future is `Send`. `Args` is the tuple of the argument types after
/// the event; it only selects the impl.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an `#[after_commit]` handler of `{E}`",
    label = "a handler is an `async fn` whose first argument is the event, whose other arguments implement `FromEventContext`, and whose future is `Send`",
    note = "check that the function does not hold a non-`Send` value across an `.await`"
)]
pub trait AfterCommitHandler<E, Args>: Send + Sync + 'static {
    /// Extracts the arguments and calls the function.
    fn call(&self, event: E, ctx: &EventContext<'_>) -> BoxFuture<Result<(), ListenerError>>;

    /// Runs every argument's [`FromEventContext::validate`].
    ///
    /// # Errors
    /// The first argument that cannot be built, and why.
    fn validate(state: &StateMap) -> Result<(), String>;
}

macro_rules! impl_after_commit_handler {
    ($($ty:ident),*) => {
        #[allow(non_snake_case, unused_variables)]
        impl<F, Fut, R, E, $($ty,)*> AfterCommitHandler<E, ($($ty,)*)> for F
        where
            F: Fn(E, $($ty),*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: HandlerResult,
            $($ty: FromEventContext,)*
        {
            fn call(&self, event: E, ctx: &EventContext<'_>) -> BoxFuture<Result<(), ListenerError>> {
                $(
                    let $ty = match $ty::from_event_context(ctx) {
                        Ok(v) => v,
                        Err(reason) => {
                            let error = ListenerError::fatal(reason);
                            return Box::pin(std::future::ready(Err(error)));
                        }
                    };
                )*
                let fut = (self)(event, $($ty),*);
                Box::pin(async move { fut.await.into_handler_result() })
            }

            fn validate(state: &StateMap) -> Result<(), String> {
                $( <$ty as FromEventContext>::validate(state)?; )*
                Ok(())
            }
        }
    };
}

impl_after_commit_handler!();
impl_after_commit_handler!(A1);
impl_after_commit_handler!(A1, A2);
impl_after_commit_handler!(A1, A2, A3);
impl_after_commit_handler!(A1, A2, A3, A4);
impl_after_commit_handler!(A1, A2, A3, A4, A5);
impl_after_commit_handler!(A1, A2, A3, A4, A5, A6);
impl_after_commit_handler!(A1, A2, A3, A4, A5, A6, A7);
impl_after_commit_handler!(A1, A2, A3, A4, A5, A6, A7, A8);

/// What the dispatcher asks of a handler's type-erased entry point.
#[derive(Debug, Clone, Copy)]
pub enum Op<'a> {
    /// Call the handler with a clone of `event`.
    Call {
        /// The event; its type is the handler's event type.
        event: &'a (dyn Any + Send + Sync),
        /// The state and the event's metadata.
        ctx: &'a EventContext<'a>,
    },
    /// Check at start-up that the arguments can be built from `state`.
    Validate(&'a StateMap),
}

/// The answer to an [`Op`].
pub enum Outcome {
    /// The handler's future.
    Called(BoxFuture<Result<(), ListenerError>>),
    /// The result of the checks.
    Validated(Result<(), String>),
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Called(_) => f.write_str("Called(..)"),
            Outcome::Validated(r) => f.debug_tuple("Validated").field(r).finish(),
        }
    }
}

/// The type-erased entry point of one handler: one function for both
/// operations, so that a handler that does not fit is reported once.
pub type EntryFn = fn(Op<'_>) -> Outcome;

/// One `#[after_commit]` handler, submitted to `inventory` by the macro.
#[derive(Debug)]
pub struct AfterCommitRegistration {
    event_type: fn() -> TypeId,
    event_name: fn() -> &'static str,
    handler: &'static str,
    fallback_execution: bool,
    entry: EntryFn,
}

inventory::collect!(AfterCommitRegistration);

impl AfterCommitRegistration {
    /// A handler of events of type `E` named `handler` (its path).
    pub const fn new<E: 'static>(
        handler: &'static str,
        fallback_execution: bool,
        entry: EntryFn,
    ) -> Self {
        Self {
            event_type: TypeId::of::<E>,
            event_name: std::any::type_name::<E>,
            handler,
            fallback_execution,
            entry,
        }
    }

    /// The handler's path, e.g. `my_app::events::on_issued`.
    pub fn handler(&self) -> &'static str {
        self.handler
    }

    /// The type name of its event.
    pub fn event_name(&self) -> &'static str {
        (self.event_name)()
    }

    /// Whether it also runs for events published outside a transaction.
    pub fn fallback_execution(&self) -> bool {
        self.fallback_execution
    }

    fn call(
        &self,
        event: &(dyn Any + Send + Sync),
        ctx: &EventContext<'_>,
    ) -> BoxFuture<Result<(), ListenerError>> {
        match (self.entry)(Op::Call { event, ctx }) {
            Outcome::Called(future) => future,
            Outcome::Validated(_) => unreachable!("entry answers Call with Called"),
        }
    }

    fn validate(&self, state: &StateMap) -> Result<(), String> {
        match (self.entry)(Op::Validate(state)) {
            Outcome::Validated(result) => result,
            Outcome::Called(_) => unreachable!("entry answers Validate with Validated"),
        }
    }
}

/// What the generated entry point of a handler `f` of events `E` does: calls
/// `f` with a clone of the event (which must be an `E`), or validates `F`'s
/// arguments (`f` only names the type then).
pub fn entry<E, Args, F>(f: F, op: Op<'_>) -> Outcome
where
    E: Clone + 'static,
    F: AfterCommitHandler<E, Args>,
{
    match op {
        Op::Call { event, ctx } => Outcome::Called(match event.downcast_ref::<E>() {
            Some(event) => f.call(event.clone(), ctx),
            None => Box::pin(std::future::ready(Err(ListenerError::fatal(format!(
                "the event is not a `{}`",
                std::any::type_name::<E>()
            ))))),
        }),
        Op::Validate(state) => Outcome::Validated(F::validate(state)),
    }
}

/// How many handlers ran for the events of one commit (or one publish
/// outside a transaction), and how many failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandlerReport {
    /// Handler calls that returned `Ok`.
    pub succeeded: usize,
    /// Handler calls that returned an error or panicked (each logged at
    /// error level and counted in
    /// `kafka_listener_after_commit_handler_failures_total`).
    pub failed: usize,
    /// Handlers not run because the event was published outside a
    /// transaction and they do not say `fallback_execution = true`.
    pub discarded: usize,
}

impl HandlerReport {
    fn add(&mut self, other: HandlerReport) {
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.discarded += other.discarded;
    }

    /// `succeeded + failed`.
    pub fn ran(&self) -> usize {
        self.succeeded + self.failed
    }
}

/// An event published and waiting for its handlers.
#[derive(Debug)]
pub(crate) struct PendingEvent {
    pub(crate) type_id: TypeId,
    pub(crate) event: Box<dyn Any + Send + Sync>,
    pub(crate) meta: EventMeta,
}

/// The discovered handlers, by event type.
#[derive(Debug, Default)]
pub(crate) struct Handlers {
    by_type: HashMap<TypeId, Vec<&'static AfterCommitRegistration>>,
}

impl Handlers {
    /// Every registered handler, validated against `state`.
    ///
    /// # Errors
    /// [`Error::Handler`] for the first handler that cannot work.
    pub(crate) fn discover(state: &StateMap) -> Result<Self, Error> {
        let mut by_type: HashMap<TypeId, Vec<&'static AfterCommitRegistration>> = HashMap::new();
        for registration in inventory::iter::<AfterCommitRegistration> {
            registration
                .validate(state)
                .map_err(|reason| Error::Handler {
                    handler: registration.handler,
                    reason,
                })?;
            by_type
                .entry((registration.event_type)())
                .or_default()
                .push(registration);
        }
        for handlers in by_type.values_mut() {
            handlers.sort_by_key(|r| r.handler);
        }
        Ok(Self { by_type })
    }

    /// Whether any handler takes events of this type.
    pub(crate) fn has(&self, event_type: TypeId) -> bool {
        self.by_type.contains_key(&event_type)
    }

    /// Runs the handlers of one event in the order of their paths, one at a
    /// time; outside a transaction only those with `fallback_execution`.
    /// Failures and panics are logged and counted, never returned.
    pub(crate) async fn dispatch(&self, event: &PendingEvent, state: &StateMap) -> HandlerReport {
        let mut report = HandlerReport::default();
        let Some(handlers) = self.by_type.get(&event.type_id) else {
            return report;
        };
        let meta = &event.meta;
        let ctx = EventContext::new(state, meta);
        for handler in handlers {
            if !meta.in_transaction && !handler.fallback_execution {
                tracing::debug!(
                    handler = handler.handler,
                    event_type = meta.event_type,
                    "event published outside a transaction: discarded for this handler (no fallback_execution)"
                );
                report.discarded += 1;
                continue;
            }
            let outcome = AssertUnwindSafe(async { handler.call(&*event.event, &ctx).await })
                .catch_unwind()
                .await;
            let error = match outcome {
                Ok(Ok(())) => {
                    report.succeeded += 1;
                    metrics::handler_succeeded(meta.event_type);
                    continue;
                }
                Ok(Err(e)) => e.chain(),
                Err(panic) => panic_message(&panic),
            };
            report.failed += 1;
            metrics::handler_failed(meta.event_type);
            tracing::error!(
                handler = handler.handler,
                event_type = meta.event_type,
                event_id = %meta.event_id,
                error = %error,
                "after-commit handler failed; the transaction stays committed"
            );
        }
        report
    }

    /// Runs the handlers of every event, in publish order.
    pub(crate) async fn dispatch_all(
        &self,
        events: &[PendingEvent],
        state: &StateMap,
    ) -> HandlerReport {
        let mut report = HandlerReport::default();
        for event in events {
            report.add(self.dispatch(event, state).await);
        }
        report
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string payload".to_owned());
    format!("panicked: {text}")
}
