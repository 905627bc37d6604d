//! [`Middleware`]: a named bundle of layers, one per call shape it applies to, and the
//! [`Target`] it is applied for.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use tower::{Layer, Service};

use super::endpoint::AdminEndpoint;
use super::service::{
    BoxError, ClientStreamService, DuplexService, OnewayService, RpcService, ServerStreamService,
    UnaryService,
};
use crate::meta::{Request, Response};
use crate::procedure::Kind;
use crate::stream::ByteStream;

/// Which side of a call a middleware runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Around a procedure this dispatcher serves.
    Inbound,
    /// Around a call this dispatcher makes through an outbound.
    Outbound,
}

impl Direction {
    /// `inbound` or `outbound`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// What a middleware is being applied to, once, when the pipeline is composed: an inbound
/// procedure, or an outbound to a remote service.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// Inbound or outbound.
    pub direction: Direction,
    /// The call shape of the pipeline being composed.
    pub kind: Kind,
    /// Inbound: this dispatcher's service. Outbound: the remote service.
    pub service: &'a str,
    /// Inbound: the procedure's registered name. Outbound: `None` (one pipeline serves every
    /// procedure of the remote service).
    pub procedure: Option<&'a str>,
    /// The peers an outbound calls (empty inbound, or for an outbound that tracks none).
    pub peers: &'a [String],
}

/// A middleware that wraps every call shape the same way, with one generic method;
/// [`Middleware::every_shape`] registers it for all five.
pub trait ShapeWrap: Send + Sync + 'static {
    /// Wraps `inner`, the service of one shape, for `target` (called once per pipeline when it
    /// is composed).
    fn wrap<T, Resp>(
        &self,
        target: &Target<'_>,
        inner: RpcService<Request<T>, Resp>,
    ) -> RpcService<Request<T>, Resp>
    where
        T: Send + 'static,
        Resp: Send + 'static;
}

type Apply<Req, Resp> =
    Arc<dyn Fn(&Target<'_>, RpcService<Req, Resp>) -> RpcService<Req, Resp> + Send + Sync>;

/// A named middleware: for each call shape it covers, how it wraps that shape's service.
///
/// Build one from any tower layer, or use a built-in (each converts `Into<Middleware>`):
///
/// ```
/// use std::time::Duration;
/// use omnirelay::middleware::Middleware;
/// use tower::limit::ConcurrencyLimitLayer;
///
/// // A tower layer generic over its inner service applies to every shape:
/// let limit = Middleware::layer("concurrency-limit", ConcurrencyLimitLayer::new(64));
/// // or only to the shapes named:
/// let timeout = Middleware::new("timeout")
///     .unary(tower::timeout::TimeoutLayer::new(Duration::from_secs(1)));
/// # let _ = (limit, timeout);
/// ```
///
/// Each `Middleware` is one type-erasure point in a pipeline: the outermost costs no
/// allocation per call (its future is kept inline while it fits in
/// [`CALL_FUTURE_SIZE`](super::CALL_FUTURE_SIZE) bytes), each one inside it one boxed future.
/// Stack several tower layers with `tower::ServiceBuilder` inside one `Middleware` to pay
/// nothing for them.
#[derive(Clone)]
pub struct Middleware {
    name: Arc<str>,
    unary: Option<Apply<Request<Bytes>, Response<Bytes>>>,
    oneway: Option<Apply<Request<Bytes>, ()>>,
    server_stream: Option<Apply<Request<Bytes>, Response<ByteStream>>>,
    client_stream: Option<Apply<Request<ByteStream>, Response<Bytes>>>,
    duplex: Option<Apply<Request<ByteStream>, Response<ByteStream>>>,
    endpoints: Vec<(Arc<str>, Arc<dyn AdminEndpoint>)>,
}

impl fmt::Debug for Middleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shapes: Vec<&str> = [
            Kind::Unary,
            Kind::Oneway,
            Kind::ServerStream,
            Kind::ClientStream,
            Kind::Duplex,
        ]
        .into_iter()
        .filter(|k| self.covers(*k))
        .map(Kind::as_str)
        .collect();
        f.debug_struct("Middleware")
            .field("name", &self.name)
            .field("shapes", &shapes)
            .finish()
    }
}

/// Wraps a layer's service back into the erased service of its shape.
fn erase<L, Req, Resp>(layer: L) -> Apply<Req, Resp>
where
    L: Layer<RpcService<Req, Resp>> + Send + Sync + 'static,
    L::Service: Service<Req, Response = Resp> + Clone + Send + Sync + 'static,
    <L::Service as Service<Req>>::Error: Into<BoxError>,
    <L::Service as Service<Req>>::Future: Send + 'static,
    Req: Send + 'static,
    Resp: Send + 'static,
{
    Arc::new(move |_, inner| RpcService::new(layer.layer(inner)))
}

macro_rules! shape_methods {
    ($($field:ident, $with:ident, $service:ty, $req:ty, $resp:ty, $doc:literal;)*) => {
        $(
            #[doc = concat!("Wraps ", $doc, " calls with `layer`.")]
            pub fn $field<L>(mut self, layer: L) -> Self
            where
                L: Layer<$service> + Send + Sync + 'static,
                L::Service: Service<$req, Response = $resp> + Clone + Send + Sync + 'static,
                <L::Service as Service<$req>>::Error: Into<BoxError>,
                <L::Service as Service<$req>>::Future: Send + 'static,
            {
                self.$field = Some(erase(layer));
                self
            }

            #[doc = concat!(
                "Wraps ", $doc, " calls with what `wrap` builds for each [`Target`] ",
                "(for state kept per procedure or per outbound)."
            )]
            pub fn $with(
                mut self,
                wrap: impl Fn(&Target<'_>, $service) -> $service + Send + Sync + 'static,
            ) -> Self {
                self.$field = Some(Arc::new(wrap));
                self
            }
        )*
    };
}

impl Middleware {
    /// A middleware called `name` that covers no shape yet; add layers with the shape
    /// methods.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Middleware {
            name: name.into(),
            unary: None,
            oneway: None,
            server_stream: None,
            client_stream: None,
            duplex: None,
            endpoints: Vec::new(),
        }
    }

    /// Also serves `endpoint` at `path` on the dispatcher's HTTP inbounds (e.g. the metrics
    /// middleware's `/omnirelay/metrics`). Registered inbound or outbound alike; a path claimed
    /// twice is a build error.
    pub fn endpoint(mut self, path: impl Into<Arc<str>>, endpoint: Arc<dyn AdminEndpoint>) -> Self {
        self.endpoints.push((path.into(), endpoint));
        self
    }

    pub(crate) fn endpoints(&self) -> &[(Arc<str>, Arc<dyn AdminEndpoint>)] {
        &self.endpoints
    }

    /// A middleware applying `layer` to all five shapes: for tower layers generic over their
    /// inner service, such as `ConcurrencyLimitLayer`, `TimeoutLayer` or `LoadShedLayer`. For
    /// streaming shapes the layer wraps opening the stream (a timeout bounds the time to the
    /// first response, not the stream's length).
    pub fn layer<L>(name: impl Into<Arc<str>>, layer: L) -> Self
    where
        L: Layer<UnaryService>
            + Layer<OnewayService>
            + Layer<ServerStreamService>
            + Layer<ClientStreamService>
            + Layer<DuplexService>
            + Clone
            + Send
            + Sync
            + 'static,
        <L as Layer<UnaryService>>::Service:
            Service<Request<Bytes>, Response = Response<Bytes>> + Clone + Send + Sync + 'static,
        <<L as Layer<UnaryService>>::Service as Service<Request<Bytes>>>::Error: Into<BoxError>,
        <<L as Layer<UnaryService>>::Service as Service<Request<Bytes>>>::Future: Send + 'static,
        <L as Layer<OnewayService>>::Service:
            Service<Request<Bytes>, Response = ()> + Clone + Send + Sync + 'static,
        <<L as Layer<OnewayService>>::Service as Service<Request<Bytes>>>::Error: Into<BoxError>,
        <<L as Layer<OnewayService>>::Service as Service<Request<Bytes>>>::Future: Send + 'static,
        <L as Layer<ServerStreamService>>::Service: Service<Request<Bytes>, Response = Response<ByteStream>>
            + Clone
            + Send
            + Sync
            + 'static,
        <<L as Layer<ServerStreamService>>::Service as Service<Request<Bytes>>>::Error:
            Into<BoxError>,
        <<L as Layer<ServerStreamService>>::Service as Service<Request<Bytes>>>::Future:
            Send + 'static,
        <L as Layer<ClientStreamService>>::Service: Service<Request<ByteStream>, Response = Response<Bytes>>
            + Clone
            + Send
            + Sync
            + 'static,
        <<L as Layer<ClientStreamService>>::Service as Service<Request<ByteStream>>>::Error:
            Into<BoxError>,
        <<L as Layer<ClientStreamService>>::Service as Service<Request<ByteStream>>>::Future:
            Send + 'static,
        <L as Layer<DuplexService>>::Service: Service<Request<ByteStream>, Response = Response<ByteStream>>
            + Clone
            + Send
            + Sync
            + 'static,
        <<L as Layer<DuplexService>>::Service as Service<Request<ByteStream>>>::Error:
            Into<BoxError>,
        <<L as Layer<DuplexService>>::Service as Service<Request<ByteStream>>>::Future:
            Send + 'static,
    {
        Middleware::new(name)
            .unary(layer.clone())
            .oneway(layer.clone())
            .server_stream(layer.clone())
            .client_stream(layer.clone())
            .duplex(layer)
    }

    /// A middleware called `name` wrapping all five shapes with `wrapper`.
    pub fn every_shape(name: impl Into<Arc<str>>, wrapper: impl ShapeWrap) -> Self {
        let wrapper = Arc::new(wrapper);
        let (a, b, c, d, e) = (
            wrapper.clone(),
            wrapper.clone(),
            wrapper.clone(),
            wrapper.clone(),
            wrapper,
        );
        Middleware::new(name)
            .unary_with(move |t, inner| a.wrap(t, inner))
            .oneway_with(move |t, inner| b.wrap(t, inner))
            .server_stream_with(move |t, inner| c.wrap(t, inner))
            .client_stream_with(move |t, inner| d.wrap(t, inner))
            .duplex_with(move |t, inner| e.wrap(t, inner))
    }

    shape_methods! {
        unary, unary_with, UnaryService, Request<Bytes>, Response<Bytes>, "unary";
        oneway, oneway_with, OnewayService, Request<Bytes>, (), "oneway";
        server_stream, server_stream_with, ServerStreamService, Request<Bytes>,
            Response<ByteStream>, "server-streaming";
        client_stream, client_stream_with, ClientStreamService, Request<ByteStream>,
            Response<Bytes>, "client-streaming";
        duplex, duplex_with, DuplexService, Request<ByteStream>, Response<ByteStream>, "duplex";
    }

    /// The name introspection shows.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the middleware wraps calls of shape `kind`.
    pub fn covers(&self, kind: Kind) -> bool {
        match kind {
            Kind::Unary => self.unary.is_some(),
            Kind::Oneway => self.oneway.is_some(),
            Kind::ServerStream => self.server_stream.is_some(),
            Kind::ClientStream => self.client_stream.is_some(),
            Kind::Duplex => self.duplex.is_some(),
        }
    }

    pub(crate) fn wrap_unary(&self, target: &Target<'_>, inner: UnaryService) -> UnaryService {
        match &self.unary {
            Some(apply) => apply(target, inner),
            None => inner,
        }
    }

    pub(crate) fn wrap_oneway(&self, target: &Target<'_>, inner: OnewayService) -> OnewayService {
        match &self.oneway {
            Some(apply) => apply(target, inner),
            None => inner,
        }
    }

    pub(crate) fn wrap_server_stream(
        &self,
        target: &Target<'_>,
        inner: ServerStreamService,
    ) -> ServerStreamService {
        match &self.server_stream {
            Some(apply) => apply(target, inner),
            None => inner,
        }
    }

    pub(crate) fn wrap_client_stream(
        &self,
        target: &Target<'_>,
        inner: ClientStreamService,
    ) -> ClientStreamService {
        match &self.client_stream {
            Some(apply) => apply(target, inner),
            None => inner,
        }
    }

    pub(crate) fn wrap_duplex(&self, target: &Target<'_>, inner: DuplexService) -> DuplexService {
        match &self.duplex {
            Some(apply) => apply(target, inner),
            None => inner,
        }
    }
}
