//! Byte-level handler traits, one per shape, and the [`Handler`] enum transports dispatch on.
//!
//! Each trait is implemented for plain closures returning a future, so a handler can be written
//! inline; typed handlers are built with [`super::typed`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use super::Kind;
use crate::error::Result;
use crate::meta::{Request, Response};
use crate::stream::ByteStream;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Handles a unary call: encoded request in, encoded response out.
pub trait UnaryHandler: Send + Sync + 'static {
    /// Handles one call.
    fn handle(&self, request: Request<Bytes>) -> BoxFuture<Result<Response<Bytes>>>;
}

/// Handles a oneway call: the transport has already acknowledged the request.
pub trait OnewayHandler: Send + Sync + 'static {
    /// Handles one call.
    fn handle(&self, request: Request<Bytes>) -> BoxFuture<Result<()>>;
}

/// Handles a server-streaming call.
pub trait ServerStreamHandler: Send + Sync + 'static {
    /// Handles one call, returning the stream of encoded responses.
    fn handle(&self, request: Request<Bytes>) -> BoxFuture<Result<Response<ByteStream>>>;
}

/// Handles a client-streaming call.
pub trait ClientStreamHandler: Send + Sync + 'static {
    /// Handles one call, reading the stream of encoded requests.
    fn handle(&self, request: Request<ByteStream>) -> BoxFuture<Result<Response<Bytes>>>;
}

/// Handles a duplex (bidirectional streaming) call.
pub trait DuplexHandler: Send + Sync + 'static {
    /// Handles one call.
    fn handle(&self, request: Request<ByteStream>) -> BoxFuture<Result<Response<ByteStream>>>;
}

macro_rules! closure_impl {
    ($trait:ident, $req:ty, $resp:ty) => {
        impl<F, Fut> $trait for F
        where
            F: Fn(Request<$req>) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<$resp>> + Send + 'static,
        {
            fn handle(&self, request: Request<$req>) -> BoxFuture<Result<$resp>> {
                Box::pin(self(request))
            }
        }
    };
}

closure_impl!(UnaryHandler, Bytes, Response<Bytes>);
closure_impl!(OnewayHandler, Bytes, ());
closure_impl!(ServerStreamHandler, Bytes, Response<ByteStream>);
closure_impl!(ClientStreamHandler, ByteStream, Response<Bytes>);
closure_impl!(DuplexHandler, ByteStream, Response<ByteStream>);

/// A handler of one of the five shapes, shared behind an `Arc` so procedures clone cheaply.
#[derive(Clone)]
pub enum Handler {
    /// A unary handler.
    Unary(Arc<dyn UnaryHandler>),
    /// A oneway handler.
    Oneway(Arc<dyn OnewayHandler>),
    /// A server-streaming handler.
    ServerStream(Arc<dyn ServerStreamHandler>),
    /// A client-streaming handler.
    ClientStream(Arc<dyn ClientStreamHandler>),
    /// A duplex handler.
    Duplex(Arc<dyn DuplexHandler>),
}

impl Handler {
    /// The handler's shape.
    pub fn kind(&self) -> Kind {
        match self {
            Handler::Unary(_) => Kind::Unary,
            Handler::Oneway(_) => Kind::Oneway,
            Handler::ServerStream(_) => Kind::ServerStream,
            Handler::ClientStream(_) => Kind::ClientStream,
            Handler::Duplex(_) => Kind::Duplex,
        }
    }

    /// A unary handler from a closure or handler value.
    pub fn unary(h: impl UnaryHandler) -> Self {
        Handler::Unary(Arc::new(h))
    }

    /// A oneway handler from a closure or handler value.
    pub fn oneway(h: impl OnewayHandler) -> Self {
        Handler::Oneway(Arc::new(h))
    }

    /// A server-streaming handler from a closure or handler value.
    pub fn server_stream(h: impl ServerStreamHandler) -> Self {
        Handler::ServerStream(Arc::new(h))
    }

    /// A client-streaming handler from a closure or handler value.
    pub fn client_stream(h: impl ClientStreamHandler) -> Self {
        Handler::ClientStream(Arc::new(h))
    }

    /// A duplex handler from a closure or handler value.
    pub fn duplex(h: impl DuplexHandler) -> Self {
        Handler::Duplex(Arc::new(h))
    }
}
