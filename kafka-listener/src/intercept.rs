//! Interceptors around each handler call, as [tower] layers: Spring's
//! `RecordInterceptor` / `BatchInterceptor` (`intercept` before the
//! listener, `success` and `failure` after it), with tower's middleware
//! (concurrency limits, timeouts, your own) usable as they are.
//!
//! A listener's layers ([`crate::ListenerSpec::layer`]) wrap a service that
//! calls the handler with a [`ListenerRequest`]: the record (or the batch),
//! the listener and the delivery attempt. The service answers `Ok(())` or
//! the handler's [`ListenerError`]; a layer sees both, and may also fail a
//! call itself (its error goes to the retry policy as the handler's would)
//! or skip the handler by answering `Ok(())` without calling it (the record
//! then counts as handled, as a Spring interceptor that returns `null`).
//! Each retry is a new call through the layers.
//!
//! The first layer added is the outermost, as with `tower::ServiceBuilder`.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::util::BoxCloneSyncService;
use tower::{Layer, Service};

use crate::context::{ListenerInfo, OwnedContext};
use crate::error::ListenerError;
use crate::handler::ErasedHandler;
use crate::record::ConsumerRecord;
use crate::util::BoxFuture;

/// One handler call: a record listener's record, or a batch listener's
/// records (one partition's, in offset order).
pub struct ListenerRequest {
    records: Vec<ConsumerRecord>,
    batch: bool,
    ctx: OwnedContext,
}

impl std::fmt::Debug for ListenerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerRequest")
            .field("listener", &self.listener().id())
            .field("records", &self.records.len())
            .field("batch", &self.batch)
            .field("delivery_attempt", &self.delivery_attempt())
            .finish()
    }
}

impl ListenerRequest {
    pub(crate) fn new(records: Vec<ConsumerRecord>, batch: bool, ctx: OwnedContext) -> Self {
        Self {
            records,
            batch,
            ctx,
        }
    }

    /// The records of the call: one for a record listener.
    pub fn records(&self) -> &[ConsumerRecord] {
        &self.records
    }

    /// A record listener's record (a batch listener's last record).
    pub fn record(&self) -> &ConsumerRecord {
        self.records.last().expect("a call has at least one record")
    }

    /// Whether the listener is a batch listener.
    pub fn is_batch(&self) -> bool {
        self.batch
    }

    /// The listener.
    pub fn listener(&self) -> &ListenerInfo {
        self.ctx.info()
    }

    /// The delivery attempt on this instance, from 1 (a retry is a new
    /// call through the layers).
    pub fn delivery_attempt(&self) -> u32 {
        self.ctx.attempt()
    }
}

/// The service a listener's layers wrap: the handler call, type-erased
/// (`Clone + Send + Sync`). Layers given to [`crate::ListenerSpec::layer`]
/// take it and return a service of the same request, response and error.
pub type ListenerService = BoxCloneSyncService<ListenerRequest, (), ListenerError>;

/// A layer as stored in a spec: wraps a [`ListenerService`].
pub(crate) type BoxedLayer = Arc<dyn Fn(ListenerService) -> ListenerService + Send + Sync>;

/// Boxes `layer` for a spec.
pub(crate) fn boxed<L>(layer: L) -> BoxedLayer
where
    L: Layer<ListenerService> + Send + Sync + 'static,
    L::Service: Service<ListenerRequest, Response = (), Error = ListenerError>
        + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as Service<ListenerRequest>>::Future: Send + 'static,
{
    Arc::new(move |inner| BoxCloneSyncService::new(layer.layer(inner)))
}

/// The handler as the innermost service, wrapped by `layers` (the first
/// the outermost); `None` without layers (the container then calls the
/// handler directly).
pub(crate) fn service(
    handler: &Arc<ErasedHandler>,
    layers: &[BoxedLayer],
) -> Option<ListenerService> {
    if layers.is_empty() {
        return None;
    }
    let mut service = BoxCloneSyncService::new(HandlerService(Arc::clone(handler)));
    for layer in layers.iter().rev() {
        service = layer(service);
    }
    Some(service)
}

/// Calls the handler.
#[derive(Clone)]
struct HandlerService(Arc<ErasedHandler>);

impl Service<ListenerRequest> for HandlerService {
    type Response = ();
    type Error = ListenerError;
    type Future = BoxFuture<Result<(), ListenerError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ListenerError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ListenerRequest) -> Self::Future {
        let ctx = req.ctx.borrow();
        match &*self.0 {
            ErasedHandler::Record { call, .. } => call(req.record(), &ctx),
            ErasedHandler::Batch { call, .. } => call(&req.records, &ctx),
        }
    }
}
