//! Pipelines: a procedure's handler or an outbound wrapped in its middleware, composed once
//! when the dispatcher is built.

use std::sync::Arc;

use bytes::Bytes;

use super::service::{
    ClientStreamService, DuplexService, OnewayService, ServerStreamService, UnaryService,
};
use super::stack::{Direction, Middleware, Target};
use crate::dispatcher::Outbound;
use crate::error::Result;
use crate::meta::{Request, Response, Transport};
use crate::procedure::{BoxFuture, Handler, Kind};
use crate::stream::ByteStream;

/// What an inbound calls for a procedure: its handler behind its middleware, one variant per
/// shape.
#[derive(Clone, Debug)]
pub enum Pipeline {
    /// A unary procedure.
    Unary(UnaryService),
    /// A oneway procedure.
    Oneway(OnewayService),
    /// A server-streaming procedure.
    ServerStream(ServerStreamService),
    /// A client-streaming procedure.
    ClientStream(ClientStreamService),
    /// A duplex procedure.
    Duplex(DuplexService),
}

impl Pipeline {
    /// `handler` with no middleware.
    pub fn of(handler: &Handler) -> Self {
        match handler {
            Handler::Unary(h) => Pipeline::Unary(UnaryService::from_handler(h.clone())),
            Handler::Oneway(h) => Pipeline::Oneway(OnewayService::from_handler(h.clone())),
            Handler::ServerStream(h) => {
                Pipeline::ServerStream(ServerStreamService::from_handler(h.clone()))
            }
            Handler::ClientStream(h) => {
                Pipeline::ClientStream(ClientStreamService::from_handler(h.clone()))
            }
            Handler::Duplex(h) => Pipeline::Duplex(DuplexService::from_handler(h.clone())),
        }
    }

    /// Wraps the pipeline in `middleware`, the first outermost, skipping those that do not
    /// cover its shape.
    pub(crate) fn wrapped<'m>(
        self,
        target: &Target<'_>,
        middleware: impl DoubleEndedIterator<Item = &'m Middleware>,
    ) -> Self {
        middleware.rev().fold(self, |pipeline, m| match pipeline {
            Pipeline::Unary(s) => Pipeline::Unary(m.wrap_unary(target, s)),
            Pipeline::Oneway(s) => Pipeline::Oneway(m.wrap_oneway(target, s)),
            Pipeline::ServerStream(s) => Pipeline::ServerStream(m.wrap_server_stream(target, s)),
            Pipeline::ClientStream(s) => Pipeline::ClientStream(m.wrap_client_stream(target, s)),
            Pipeline::Duplex(s) => Pipeline::Duplex(m.wrap_duplex(target, s)),
        })
    }
}

/// An outbound whose calls go through outbound middleware first; what a dispatcher hands its
/// clients when middleware is configured for that outbound.
pub(crate) struct LayeredOutbound {
    inner: Arc<dyn Outbound>,
    unary: UnaryService,
    oneway: OnewayService,
    server_stream: ServerStreamService,
    client_stream: ClientStreamService,
    duplex: DuplexService,
}

impl LayeredOutbound {
    /// `inner` behind `middleware` (the first outermost), composed for calls to `service`.
    pub(crate) fn new(service: &str, inner: Arc<dyn Outbound>, middleware: &[&Middleware]) -> Self {
        let peers = inner.peers().unwrap_or_default();
        let target = |kind| Target {
            direction: Direction::Outbound,
            kind,
            service,
            procedure: None,
            peers: &peers,
        };
        let layers = || middleware.iter().rev();
        let unary = layers().fold(UnaryService::from_outbound(inner.clone()), |s, m| {
            m.wrap_unary(&target(Kind::Unary), s)
        });
        let oneway = layers().fold(OnewayService::from_outbound(inner.clone()), |s, m| {
            m.wrap_oneway(&target(Kind::Oneway), s)
        });
        let server_stream = layers()
            .fold(ServerStreamService::from_outbound(inner.clone()), |s, m| {
                m.wrap_server_stream(&target(Kind::ServerStream), s)
            });
        let client_stream = layers()
            .fold(ClientStreamService::from_outbound(inner.clone()), |s, m| {
                m.wrap_client_stream(&target(Kind::ClientStream), s)
            });
        let duplex = layers().fold(DuplexService::from_outbound(inner.clone()), |s, m| {
            m.wrap_duplex(&target(Kind::Duplex), s)
        });
        LayeredOutbound {
            inner,
            unary,
            oneway,
            server_stream,
            client_stream,
            duplex,
        }
    }
}

impl Outbound for LayeredOutbound {
    fn transport(&self) -> Transport {
        self.inner.transport()
    }

    fn unary(&self, request: Request<Bytes>) -> BoxFuture<Result<Response<Bytes>>> {
        self.unary.invoke(request)
    }

    fn oneway(&self, request: Request<Bytes>) -> BoxFuture<Result<()>> {
        self.oneway.invoke(request)
    }

    fn server_stream(&self, request: Request<Bytes>) -> BoxFuture<Result<Response<ByteStream>>> {
        self.server_stream.invoke(request)
    }

    fn client_stream(&self, request: Request<ByteStream>) -> BoxFuture<Result<Response<Bytes>>> {
        self.client_stream.invoke(request)
    }

    fn duplex(&self, request: Request<ByteStream>) -> BoxFuture<Result<Response<ByteStream>>> {
        self.duplex.invoke(request)
    }

    fn peers(&self) -> Option<Vec<String>> {
        self.inner.peers()
    }
}
