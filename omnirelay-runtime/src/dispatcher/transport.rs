//! The traits transports implement: an [`Inbound`] serves a dispatcher's procedures, an
//! [`Outbound`] carries calls to one remote service.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use super::InboundContext;
use crate::error::Result;
use crate::meta::{Request, Response, Transport};
use crate::procedure::BoxFuture;
use crate::stream::ByteStream;

/// Serves a dispatcher's procedures over one transport.
pub trait Inbound: Send + Sync + 'static {
    /// The transport this inbound speaks.
    fn transport(&self) -> Transport;

    /// Binds and starts serving; returns the bound address (useful with port 0).
    fn start(&self, context: Arc<InboundContext>) -> BoxFuture<Result<SocketAddr>>;

    /// Stops accepting new calls, waits for in-flight calls to finish (up to the inbound's drain
    /// timeout), then closes every connection.
    fn stop(&self) -> BoxFuture<Result<()>>;
}

/// Carries calls to one remote service. Bodies are already encoded; the typed
/// [`Client`](super::Client) does the encoding.
pub trait Outbound: Send + Sync + 'static {
    /// The transport this outbound speaks.
    fn transport(&self) -> Transport;

    /// A unary call.
    fn unary(&self, request: Request<Bytes>) -> BoxFuture<Result<Response<Bytes>>>;

    /// A oneway call: resolves once the remote side has accepted the request.
    fn oneway(&self, request: Request<Bytes>) -> BoxFuture<Result<()>>;

    /// A server-streaming call.
    fn server_stream(&self, request: Request<Bytes>) -> BoxFuture<Result<Response<ByteStream>>>;

    /// A client-streaming call.
    fn client_stream(&self, request: Request<ByteStream>) -> BoxFuture<Result<Response<Bytes>>>;

    /// A duplex call.
    fn duplex(&self, request: Request<ByteStream>) -> BoxFuture<Result<Response<ByteStream>>>;

    /// The peers calls may go to, as introspection shows them (e.g. `127.0.0.1:8080`); `None`
    /// (the default) for an outbound that does not track peers. `/readyz` reports an outbound
    /// that tracks peers but has none as not ready.
    fn peers(&self) -> Option<Vec<String>> {
        None
    }
}
