//! Listener functions as handlers: any `async fn` whose arguments are
//! extractors and whose output is `()` or `Result<(), E>` with
//! `E: Into<ListenerError>`, or a reply ([`IntoReply`]: `Json<T>`,
//! [`Reply`], `String`, ...) for a listener with a reply destination
//! (`reply = true` or `send_to = "topic"`, see [`crate::ReplyingKafkaTemplate`]
//! for the request side).

use std::future::Future;
use std::sync::Arc;

use crate::context::{ListenerContext, ListenerInfo};
use crate::error::ListenerError;
use crate::extract::{join_prepared, FromBatch, FromRecord};
use crate::record::ConsumerRecord;

use crate::util::BoxFuture;

mod reply;

pub(crate) use self::reply::{unbound_reply, ReplyValue};
pub use self::reply::{IntoReply, NoReply, Reply, ReplyTo, ReturnsReply};

/// What a listener function may return: `()`, `Result<(), E>`, or a reply
/// value ([`IntoReply`]) alone or in a `Result<_, E>`, with
/// `E: Into<ListenerError>`.
#[diagnostic::on_unimplemented(
    message = "a listener must return `()`, `Result<(), E>` with `E: Into<ListenerError>`, or a reply (`Json<T>`, `Avro<T>`, `Reply`, `String`, `Vec<u8>`, `Bytes`, an `Option` of one, or a `Result<_, E>` of these), not `{Self}`",
    label = "invalid listener return type"
)]
pub trait IntoListenerResult {
    /// Whether this type carries a reply: such a listener needs a reply
    /// destination (`reply = true` or `send_to`), checked at start-up
    /// (and by `#[kafka_listener]` at compile time).
    const REPLIES: bool = false;

    /// Converts to the container's result: the reply to send, if any.
    ///
    /// # Errors
    /// The listener's error, or a reply that cannot be encoded (a
    /// [`crate::ErrorKind::Fatal`] error).
    fn into_listener_result(self) -> Result<Option<Reply>, ListenerError>;
}

impl IntoListenerResult for () {
    fn into_listener_result(self) -> Result<Option<Reply>, ListenerError> {
        Ok(None)
    }
}

impl<E: Into<ListenerError>> IntoListenerResult for Result<(), E> {
    fn into_listener_result(self) -> Result<Option<Reply>, ListenerError> {
        self.map(|()| None).map_err(Into::into)
    }
}

impl<R: IntoReply> IntoListenerResult for R {
    const REPLIES: bool = true;
    fn into_listener_result(self) -> Result<Option<Reply>, ListenerError> {
        self.into_reply()
    }
}

impl<R: IntoReply, E: Into<ListenerError>> IntoListenerResult for Result<R, E> {
    const REPLIES: bool = true;
    fn into_listener_result(self) -> Result<Option<Reply>, ListenerError> {
        self.map_err(Into::into)?.into_reply()
    }
}

/// A record listener: an async function of up to 12 [`FromRecord`]
/// arguments. `Args` is the tuple of argument types (it only selects the
/// impl).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a listener function",
    label = "a listener is an `async fn` whose arguments implement `FromRecord` and whose future is `Send`",
    note = "check each argument type (`Json<T>` needs `T: Deserialize`) and that the function does not hold a non-`Send` value across an `.await`"
)]
pub trait Handler<Args>: Send + Sync + 'static {
    /// Extracts the arguments and calls the function. Extraction happens
    /// before the returned future is polled; a failure gives a
    /// [`crate::ErrorKind::Decode`] error.
    fn call(
        &self,
        record: &ConsumerRecord,
        ctx: &ListenerContext<'_>,
    ) -> BoxFuture<Result<(), ListenerError>>;

    /// Every argument's [`FromRecord::prepare`], awaited in argument order
    /// before [`Handler::call`]; `None` when no argument has async work.
    fn prepare(
        _record: &ConsumerRecord,
        _ctx: &ListenerContext<'_>,
    ) -> Option<BoxFuture<Result<(), ListenerError>>> {
        None
    }

    /// Runs every argument's [`FromRecord::validate`].
    ///
    /// # Errors
    /// The first argument that cannot work with this listener, and why.
    fn validate(info: &ListenerInfo) -> Result<(), String>;

    /// Whether the function returns a reply ([`IntoListenerResult::REPLIES`]).
    #[doc(hidden)]
    const REPLIES: bool;

    /// As [`Handler::call`], handing back the reply the function returned
    /// (sent by the listener's reply destination).
    #[doc(hidden)]
    fn call_replying(
        &self,
        record: &ConsumerRecord,
        ctx: &ListenerContext<'_>,
    ) -> BoxFuture<Result<Option<Reply>, ListenerError>>;
}

/// A batch listener: an async function of up to 12 [`FromBatch`]
/// arguments, for example `async fn f(batch: Vec<Json<T>>)`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a batch listener function",
    label = "a batch listener is an `async fn` whose arguments implement `FromBatch` (for example `Vec<Json<T>>`) and whose future is `Send`"
)]
pub trait BatchHandler<Args>: Send + Sync + 'static {
    /// Extracts the arguments from the batch and calls the function.
    fn call(
        &self,
        records: &[ConsumerRecord],
        ctx: &ListenerContext<'_>,
    ) -> BoxFuture<Result<(), ListenerError>>;

    /// Every argument's [`FromBatch::prepare`], awaited before
    /// [`BatchHandler::call`].
    fn prepare(
        _records: &[ConsumerRecord],
        _ctx: &ListenerContext<'_>,
    ) -> Option<BoxFuture<Result<(), ListenerError>>> {
        None
    }

    /// Runs every argument's [`FromBatch::validate`].
    ///
    /// # Errors
    /// The first argument that cannot work with this listener, and why.
    fn validate(info: &ListenerInfo) -> Result<(), String>;

    /// Whether the function returns a reply; batch listeners cannot reply,
    /// which the app checks at start-up.
    #[doc(hidden)]
    const REPLIES: bool;
}

/// The container's result of a call whose reply has nowhere to go.
fn without_reply(result: Result<Option<Reply>, ListenerError>) -> Result<(), ListenerError> {
    match result? {
        None => Ok(()),
        Some(_) => Err(unbound_reply()),
    }
}

macro_rules! impl_handlers {
    ($($ty:ident),*) => {
        #[allow(non_snake_case, unused_variables)]
        impl<F, Fut, R, $($ty,)*> Handler<($($ty,)*)> for F
        where
            F: Fn($($ty),*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoListenerResult,
            $($ty: FromRecord,)*
        {
            fn call(&self, record: &ConsumerRecord, ctx: &ListenerContext<'_>) -> BoxFuture<Result<(), ListenerError>> {
                $(
                    let $ty = match $ty::from_record(record, ctx) {
                        Ok(v) => v,
                        Err(e) => return Box::pin(std::future::ready(Err(ListenerError::decode(e)))),
                    };
                )*
                let fut = (self)($($ty),*);
                Box::pin(async move { without_reply(fut.await.into_listener_result()) })
            }

            const REPLIES: bool = R::REPLIES;

            fn call_replying(&self, record: &ConsumerRecord, ctx: &ListenerContext<'_>) -> BoxFuture<Result<Option<Reply>, ListenerError>> {
                $(
                    let $ty = match $ty::from_record(record, ctx) {
                        Ok(v) => v,
                        Err(e) => return Box::pin(std::future::ready(Err(ListenerError::decode(e)))),
                    };
                )*
                let fut = (self)($($ty),*);
                Box::pin(async move { fut.await.into_listener_result() })
            }

            #[allow(unused_mut)]
            fn prepare(record: &ConsumerRecord, ctx: &ListenerContext<'_>) -> Option<BoxFuture<Result<(), ListenerError>>> {
                let mut pending = Vec::new();
                $( pending.extend(<$ty as FromRecord>::prepare(record, ctx)); )*
                join_prepared(pending)
            }

            fn validate(info: &ListenerInfo) -> Result<(), String> {
                $( <$ty as FromRecord>::validate(info)?; )*
                Ok(())
            }
        }

        #[allow(non_snake_case, unused_variables)]
        impl<F, Fut, R, $($ty,)*> BatchHandler<($($ty,)*)> for F
        where
            F: Fn($($ty),*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoListenerResult,
            $($ty: FromBatch,)*
        {
            fn call(&self, records: &[ConsumerRecord], ctx: &ListenerContext<'_>) -> BoxFuture<Result<(), ListenerError>> {
                $(
                    let $ty = match $ty::from_batch(records, ctx) {
                        Ok(v) => v,
                        Err(e) => return Box::pin(std::future::ready(Err(ListenerError::decode(e)))),
                    };
                )*
                let fut = (self)($($ty),*);
                Box::pin(async move { without_reply(fut.await.into_listener_result()) })
            }

            const REPLIES: bool = R::REPLIES;

            #[allow(unused_mut)]
            fn prepare(records: &[ConsumerRecord], ctx: &ListenerContext<'_>) -> Option<BoxFuture<Result<(), ListenerError>>> {
                let mut pending = Vec::new();
                $( pending.extend(<$ty as FromBatch>::prepare(records, ctx)); )*
                join_prepared(pending)
            }

            fn validate(info: &ListenerInfo) -> Result<(), String> {
                $( <$ty as FromBatch>::validate(info)?; )*
                Ok(())
            }
        }
    };
}

impl_handlers!();
impl_handlers!(T1);
impl_handlers!(T1, T2);
impl_handlers!(T1, T2, T3);
impl_handlers!(T1, T2, T3, T4);
impl_handlers!(T1, T2, T3, T4, T5);
impl_handlers!(T1, T2, T3, T4, T5, T6);
impl_handlers!(T1, T2, T3, T4, T5, T6, T7);
impl_handlers!(T1, T2, T3, T4, T5, T6, T7, T8);
impl_handlers!(T1, T2, T3, T4, T5, T6, T7, T8, T9);
impl_handlers!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10);
impl_handlers!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11);
impl_handlers!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12);

pub(crate) type RecordCall = dyn Fn(&ConsumerRecord, &ListenerContext<'_>) -> BoxFuture<Result<(), ListenerError>>
    + Send
    + Sync;
type BatchCall = dyn Fn(&[ConsumerRecord], &ListenerContext<'_>) -> BoxFuture<Result<(), ListenerError>>
    + Send
    + Sync;
/// A record handler's call that hands back its reply.
pub(crate) type ReplyingCall = dyn Fn(&ConsumerRecord, &ListenerContext<'_>) -> BoxFuture<Result<Option<Reply>, ListenerError>>
    + Send
    + Sync;

/// A type-erased record or batch handler, as stored in a listener spec.
pub(crate) enum ErasedHandler {
    Record {
        call: Box<RecordCall>,
        validate: fn(&ListenerInfo) -> Result<(), String>,
        /// For a function that returns a reply: its call with the reply,
        /// from which the app builds `call` for the reply destination
        /// (`crate::reply::bind`).
        replying: Option<Arc<ReplyingCall>>,
    },
    Batch {
        call: Box<BatchCall>,
        validate: fn(&ListenerInfo) -> Result<(), String>,
        replies: bool,
    },
}

impl ErasedHandler {
    /// The call runs the arguments' async preparation (if any) before the
    /// synchronous extraction: the record and the context are then owned by
    /// the returned future.
    pub(crate) fn record<H: Handler<A>, A: 'static>(handler: H) -> Self {
        let handler = Arc::new(handler);
        let replying: Option<Arc<ReplyingCall>> = H::REPLIES.then(|| {
            let handler = Arc::clone(&handler);
            let call: Arc<ReplyingCall> = Arc::new(move |r, c| match H::prepare(r, c) {
                None => handler.call_replying(r, c),
                Some(prepared) => {
                    let (handler, record, owned) = (Arc::clone(&handler), r.clone(), c.to_owned());
                    Box::pin(async move {
                        prepared.await?;
                        let call = handler.call_replying(&record, &owned.borrow());
                        call.await
                    })
                }
            });
            call
        });
        ErasedHandler::Record {
            call: Box::new(move |r, c| match H::prepare(r, c) {
                None => handler.call(r, c),
                Some(prepared) => {
                    let (handler, record, owned) = (Arc::clone(&handler), r.clone(), c.to_owned());
                    Box::pin(async move {
                        prepared.await?;
                        let call = handler.call(&record, &owned.borrow());
                        call.await
                    })
                }
            }),
            validate: <H as Handler<A>>::validate,
            replying,
        }
    }

    /// As [`ErasedHandler::record`], for batches.
    pub(crate) fn batch<H: BatchHandler<A>, A: 'static>(handler: H) -> Self {
        let handler = Arc::new(handler);
        ErasedHandler::Batch {
            call: Box::new(move |r, c| match H::prepare(r, c) {
                None => handler.call(r, c),
                Some(prepared) => {
                    let (handler, records, owned) =
                        (Arc::clone(&handler), r.to_vec(), c.to_owned());
                    Box::pin(async move {
                        prepared.await?;
                        let call = handler.call(&records, &owned.borrow());
                        call.await
                    })
                }
            }),
            validate: <H as BatchHandler<A>>::validate,
            replies: <H as BatchHandler<A>>::REPLIES,
        }
    }

    /// Whether the function returns a reply.
    pub(crate) fn replies(&self) -> bool {
        match self {
            ErasedHandler::Record { replying, .. } => replying.is_some(),
            ErasedHandler::Batch { replies, .. } => *replies,
        }
    }

    pub(crate) fn validate(&self, info: &ListenerInfo) -> Result<(), String> {
        match self {
            ErasedHandler::Record { validate, .. } | ErasedHandler::Batch { validate, .. } => {
                validate(info)
            }
        }
    }

    pub(crate) fn is_batch(&self) -> bool {
        matches!(self, ErasedHandler::Batch { .. })
    }
}

impl std::fmt::Debug for ErasedHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_batch() {
            "BatchHandler"
        } else {
            "Handler"
        })
    }
}
