//! The tower services a middleware wraps: one type-erased, cloneable service per call shape.
//!
//! [`RpcService<Req, Resp>`] is what every layer receives as its inner service and what a
//! composed pipeline is erased back into.
//!
//! Cost per call: the innermost service (a handler or an outbound) returns the future the
//! handler already boxed, adding nothing; with no middleware, an inbound awaits that box as it
//! is. Otherwise an inbound calls the outermost level with [`RpcService::invoke_inline`], whose
//! [`CallFuture`] keeps that level's future inline (no heap allocation) when it fits in
//! [`CALL_FUTURE_SIZE`] bytes. So one [`Middleware`] of any number of tower layers (stacked with
//! `tower::ServiceBuilder`) adds no allocation per call; each further `Middleware` nested inside
//! it is reached through `tower::Service::call`, whose future is boxed: one allocation per call
//! per extra `Middleware`.
//!
//! [`Middleware`]: super::Middleware

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::FutureExt;
use stackfuture::StackFuture;
use tower::{Service, ServiceExt};

use crate::dispatcher::Outbound;
use crate::error::{Error, Result};
use crate::meta::{Request, Response};
use crate::procedure::{
    BoxFuture, ClientStreamHandler, DuplexHandler, OnewayHandler, ServerStreamHandler, UnaryHandler,
};
use crate::stream::ByteStream;

/// The inline space of a [`CallFuture`], in bytes. A pipeline future that needs more (a
/// layer holding a large state across an await) is boxed instead; it still works, at one
/// allocation per call.
pub const CALL_FUTURE_SIZE: usize = 512;

/// The future of [`RpcService::invoke_inline`]: the outermost level's future, stored inline when it
/// fits.
pub type CallFuture<T> = StackFuture<'static, Result<T>, CALL_FUTURE_SIZE>;

/// The error tower layers return: anything boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The unary service: an encoded request in, an encoded response out.
pub type UnaryService = RpcService<Request<Bytes>, Response<Bytes>>;
/// The oneway service: an encoded request in, nothing out.
pub type OnewayService = RpcService<Request<Bytes>, ()>;
/// The server-streaming service: an encoded request in, a stream of encoded responses out.
pub type ServerStreamService = RpcService<Request<Bytes>, Response<ByteStream>>;
/// The client-streaming service: a stream of encoded requests in, one encoded response out.
pub type ClientStreamService = RpcService<Request<ByteStream>, Response<Bytes>>;
/// The duplex service: a stream of encoded requests in, a stream of encoded responses out.
pub type DuplexService = RpcService<Request<ByteStream>, Response<ByteStream>>;

/// A type-erased, cloneable tower service for one call shape, with [`Error`] as its error.
///
/// It is always ready (`poll_ready` returns `Ready(Ok)`); a wrapped service's readiness is
/// awaited inside the call. Cloning is an `Arc` clone. [`RpcService::invoke`] (inside
/// middleware) and [`RpcService::invoke_inline`] (transports) call it through a shared
/// reference; as a tower service its future is a [`BoxFuture`], as from `invoke`.
pub struct RpcService<Req, Resp> {
    inner: Arc<dyn Call<Req, Resp>>,
    /// The innermost service (a handler or an outbound), whose future is already boxed.
    leaf: bool,
}

impl<Req, Resp> Clone for RpcService<Req, Resp> {
    fn clone(&self) -> Self {
        RpcService {
            inner: self.inner.clone(),
            leaf: self.leaf,
        }
    }
}

impl<Req, Resp> fmt::Debug for RpcService<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RpcService")
    }
}

/// A call through a shared reference; what an [`RpcService`] erases. `call_inline` is what
/// [`RpcService::invoke`] uses at the top of a pipeline (the future kept inline);
/// `call_boxed` is what a wrapping layer gets through `tower::Service::call`, so that an outer
/// level's future holds a pointer to this one rather than all of it.
trait Call<Req, Resp>: Send + Sync + 'static {
    fn call_inline(&self, request: Req) -> CallFuture<Resp>;
    fn call_boxed(&self, request: Req) -> BoxFuture<Result<Resp>>;
}

impl<Req, Resp> RpcService<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// Erases any tower service of this shape. Errors that are not an OmniRelay [`Error`]
    /// become one (see [`into_error`]). Each call clones `service`, awaits its readiness,
    /// then calls it, as `tower::ServiceExt::oneshot` does.
    pub fn new<S>(service: S) -> Self
    where
        S: Service<Req, Response = Resp> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        RpcService {
            inner: Arc::new(Erased(service)),
            leaf: false,
        }
    }

    /// A service running `f` for each request, with (a clone of) `inner` to call next: the
    /// shortest way to write a middleware without a tower `Layer`.
    ///
    /// ```
    /// use omnirelay::middleware::{Middleware, UnaryService};
    ///
    /// let tag = Middleware::new("tag").unary_with(|_, inner: UnaryService| {
    ///     UnaryService::around(inner, |inner, mut request: omnirelay::Request<_>| async move {
    ///         request.meta.headers.insert("x-tagged", "1");
    ///         inner.invoke(request).await
    ///     })
    /// });
    /// # let _ = tag;
    /// ```
    pub fn around<F, Fut>(inner: RpcService<Req, Resp>, f: F) -> Self
    where
        F: Fn(RpcService<Req, Resp>, Req) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp>> + Send + 'static,
    {
        RpcService::new(tower::service_fn(move |request: Req| {
            f(inner.clone(), request)
        }))
    }

    /// Calls the service through a shared reference: what a middleware uses to call the next
    /// service. The future is the one the handler or outbound boxed when this service is the
    /// innermost; a wrapped service boxes its own (one allocation).
    pub fn invoke(&self, request: Req) -> BoxFuture<Result<Resp>> {
        self.inner.call_boxed(request)
    }

    /// Calls the service through a shared reference with its future stored inline: what a
    /// transport uses at the top of a pipeline, so the outermost middleware costs no
    /// allocation. Inside a middleware use [`RpcService::invoke`], whose future is small.
    pub fn invoke_inline(&self, request: Req) -> CallFuture<Resp> {
        self.inner.call_inline(request)
    }

    /// Whether this is the innermost service (no middleware around it), whose
    /// [`RpcService::invoke`] future is the box the handler or outbound made, adding nothing. A
    /// transport then awaits that box as it is rather than through [`RpcService::invoke_inline`]'s
    /// larger inline future, which it would move.
    pub(crate) fn is_leaf(&self) -> bool {
        self.leaf
    }

    /// A service calling `f`, whose future is already boxed (a handler's or an outbound's):
    /// the innermost service of a pipeline, which adds no allocation of its own.
    fn leaf<F>(f: F) -> Self
    where
        F: Fn(Req) -> BoxFuture<Result<Resp>> + Send + Sync + 'static,
    {
        RpcService {
            inner: Arc::new(Leaf(f)),
            leaf: true,
        }
    }
}

impl<Req: 'static, Resp: 'static> Service<Req> for RpcService<Req, Resp> {
    type Response = Resp;
    type Error = Error;
    type Future = BoxFuture<Result<Resp>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        self.inner.call_boxed(request)
    }
}

struct Leaf<F>(F);

impl<Req, Resp, F> Call<Req, Resp> for Leaf<F>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(Req) -> BoxFuture<Result<Resp>> + Send + Sync + 'static,
{
    fn call_inline(&self, request: Req) -> CallFuture<Resp> {
        StackFuture::from((self.0)(request))
    }

    fn call_boxed(&self, request: Req) -> BoxFuture<Result<Resp>> {
        (self.0)(request)
    }
}

struct Erased<S>(S);

impl<S> Erased<S> {
    fn oneshot<Req, Resp>(
        &self,
        request: Req,
    ) -> impl Future<Output = Result<Resp>> + use<S, Req, Resp>
    where
        S: Service<Req, Response = Resp> + Clone,
        S::Error: Into<BoxError>,
    {
        self.0
            .clone()
            .oneshot(request)
            .map(|result| result.map_err(|e| into_error(e.into())))
    }
}

impl<Req, Resp, S> Call<Req, Resp> for Erased<S>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    S: Service<Req, Response = Resp> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    fn call_inline(&self, request: Req) -> CallFuture<Resp> {
        StackFuture::from_or_box(self.oneshot(request))
    }

    fn call_boxed(&self, request: Req) -> BoxFuture<Result<Resp>> {
        Box::pin(self.oneshot(request))
    }
}

/// Turns a tower layer's error into an OmniRelay [`Error`]: an [`Error`] is kept as it is;
/// tower's `Elapsed` (from `TimeoutLayer`) becomes `deadline-exceeded`; tower's `Overloaded`
/// (from `LoadShedLayer`) becomes `resource-exhausted`; anything else becomes `internal` with
/// the error's text.
pub fn into_error(error: BoxError) -> Error {
    let error = match error.downcast::<Error>() {
        Ok(error) => return *error,
        Err(other) => other,
    };
    if error.is::<tower::timeout::error::Elapsed>() {
        return Error::deadline_exceeded("the call timed out (tower timeout layer)");
    }
    if error.is::<tower::load_shed::error::Overloaded>() {
        return Error::resource_exhausted("the service is overloaded: the call was shed");
    }
    Error::internal(error.to_string())
}

// ---------------------------------------------------------------------------------------------
// Leaves: handlers and outbounds as the innermost service of a pipeline.

impl UnaryService {
    /// A pipeline's innermost service calling a unary handler.
    pub fn from_handler(handler: Arc<dyn UnaryHandler>) -> Self {
        RpcService::leaf(move |request| handler.handle(request))
    }

    pub(crate) fn from_outbound(outbound: Arc<dyn Outbound>) -> Self {
        RpcService::leaf(move |request| outbound.unary(request))
    }
}

impl OnewayService {
    /// A pipeline's innermost service calling a oneway handler.
    pub fn from_handler(handler: Arc<dyn OnewayHandler>) -> Self {
        RpcService::leaf(move |request| handler.handle(request))
    }

    pub(crate) fn from_outbound(outbound: Arc<dyn Outbound>) -> Self {
        RpcService::leaf(move |request| outbound.oneway(request))
    }
}

impl ServerStreamService {
    /// A pipeline's innermost service calling a server-streaming handler.
    pub fn from_handler(handler: Arc<dyn ServerStreamHandler>) -> Self {
        RpcService::leaf(move |request| handler.handle(request))
    }

    pub(crate) fn from_outbound(outbound: Arc<dyn Outbound>) -> Self {
        RpcService::leaf(move |request| outbound.server_stream(request))
    }
}

impl ClientStreamService {
    /// A pipeline's innermost service calling a client-streaming handler.
    pub fn from_handler(handler: Arc<dyn ClientStreamHandler>) -> Self {
        RpcService::leaf(move |request| handler.handle(request))
    }

    pub(crate) fn from_outbound(outbound: Arc<dyn Outbound>) -> Self {
        RpcService::leaf(move |request| outbound.client_stream(request))
    }
}

impl DuplexService {
    /// A pipeline's innermost service calling a duplex handler.
    pub fn from_handler(handler: Arc<dyn DuplexHandler>) -> Self {
        RpcService::leaf(move |request| handler.handle(request))
    }

    pub(crate) fn from_outbound(outbound: Arc<dyn Outbound>) -> Self {
        RpcService::leaf(move |request| outbound.duplex(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    #[test]
    fn tower_errors_map_to_codes() {
        let own: BoxError = Box::new(Error::aborted("x"));
        assert_eq!(into_error(own).code(), Code::Aborted);
        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        assert_eq!(into_error(elapsed).code(), Code::DeadlineExceeded);
        let shed: BoxError = Box::new(tower::load_shed::error::Overloaded::new());
        assert_eq!(into_error(shed).code(), Code::ResourceExhausted);
        let other: BoxError = "boom".into();
        let err = into_error(other);
        assert_eq!((err.code(), err.message()), (Code::Internal, "boom"));
    }
}
