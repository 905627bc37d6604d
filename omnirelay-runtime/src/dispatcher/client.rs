//! Typed clients: [`ClientConfig`] names the caller, the remote service and the outbound;
//! [`Client`] encodes messages with a codec and makes calls of every shape through it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::Outbound;
use crate::codec::{Codec, Encoding, ProtoJsonCodec};
use crate::error::{Error, Result};
use crate::meta::{Headers, Request, RequestMeta, Response};
use crate::name::Name;
use crate::stream::{Streaming, with_deadline};

/// Who calls which service through which outbound; what a generated client is built from.
#[derive(Clone)]
pub struct ClientConfig {
    caller: Arc<str>,
    service: Arc<str>,
    outbound: Arc<dyn Outbound>,
}

impl ClientConfig {
    /// A configuration for `caller` calling `service` through `outbound`.
    pub fn new(
        caller: impl Into<Arc<str>>,
        service: impl Into<Arc<str>>,
        outbound: Arc<dyn Outbound>,
    ) -> Self {
        ClientConfig {
            caller: caller.into(),
            service: service.into(),
            outbound,
        }
    }

    /// The calling service's name.
    pub fn caller(&self) -> &str {
        &self.caller
    }

    /// The remote service's name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The outbound calls go through.
    pub fn outbound(&self) -> &Arc<dyn Outbound> {
        &self.outbound
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("caller", &self.caller)
            .field("service", &self.service)
            .field("transport", &self.outbound.transport())
            .finish()
    }
}

/// Per-call options: TTL, application headers, shard and routing keys.
///
/// The TTL is sent to the server (as `grpc-timeout` over gRPC) and also enforced by the client:
/// a call that has not answered by then fails with `deadline-exceeded`, and a stream that has not
/// finished by then ends with it.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    /// The time the call may take.
    pub ttl: Option<Duration>,
    /// Application headers.
    pub headers: Headers,
    /// The shard key.
    pub shard_key: Option<String>,
    /// The routing key.
    pub routing_key: Option<String>,
    /// The routing delegate.
    pub routing_delegate: Option<String>,
    /// The procedure making this call, for call-chain tracing.
    pub caller_procedure: Option<String>,
}

impl CallOptions {
    /// No options.
    pub fn new() -> Self {
        CallOptions::default()
    }

    /// Sets the TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Adds an application header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.insert(key, value);
        self
    }

    /// Sets the shard key.
    pub fn shard_key(mut self, key: impl Into<String>) -> Self {
        self.shard_key = Some(key.into());
        self
    }

    /// Sets the routing key.
    pub fn routing_key(mut self, key: impl Into<String>) -> Self {
        self.routing_key = Some(key.into());
        self
    }

    /// Sets the routing delegate.
    pub fn routing_delegate(mut self, service: impl Into<String>) -> Self {
        self.routing_delegate = Some(service.into());
        self
    }
}

/// A typed client for one remote service: encodes with codec `C` in one encoding.
///
/// Generated `...Client` types wrap this; it can also be used directly with any procedure name.
///
/// Each call method takes the procedure as `impl Into<Name>`: a `&str` or `String` is copied
/// into the call's metadata once, a [`Name::from_static`] (what generated clients pass) or a
/// cloned [`Name`] is shared, so a call copies no name at all.
#[derive(Clone, Debug)]
pub struct Client<C = ProtoJsonCodec> {
    config: ClientConfig,
    codec: Arc<C>,
    encoding: Encoding,
}

impl Client<ProtoJsonCodec> {
    /// A client sending protobuf-encoded bodies.
    pub fn new(config: ClientConfig) -> Self {
        Client::with_codec(config, ProtoJsonCodec, Encoding::Proto)
    }
}

impl<C> Client<C> {
    /// A client using `codec`, sending bodies in `encoding`.
    pub fn with_codec(config: ClientConfig, codec: C, encoding: Encoding) -> Self {
        Client {
            config,
            codec: Arc::new(codec),
            encoding,
        }
    }

    /// The same client, sending bodies in `encoding` (which the codec must serve).
    pub fn with_encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// The encoding bodies are sent in.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The client's configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn meta(&self, procedure: Name, options: CallOptions) -> RequestMeta {
        // The caller and service are shared with the configuration (no copy).
        let mut meta = RequestMeta::new(
            Name::from(self.config.caller.clone()),
            Name::from(self.config.service.clone()),
            procedure,
        );
        meta.encoding = self.encoding;
        meta.transport = self.config.outbound.transport();
        meta.ttl = options.ttl;
        meta.deadline = options.ttl.map(|ttl| Instant::now() + ttl);
        meta.headers = options.headers;
        meta.shard_key = options.shard_key;
        meta.routing_key = options.routing_key;
        meta.routing_delegate = options.routing_delegate;
        meta.caller_procedure = options.caller_procedure;
        meta
    }

    fn encode_stream<Req>(
        &self,
        requests: impl Stream<Item = Req> + Send + 'static,
    ) -> Streaming<Bytes>
    where
        C: Codec<Req>,
        Req: Send + 'static,
    {
        let codec = self.codec.clone();
        let encoding = self.encoding;
        Streaming::new(requests.map(move |m| codec.encode(encoding, &m)))
    }

    fn decode_stream<Resp>(
        &self,
        stream: Streaming<Bytes>,
        deadline: Option<Instant>,
    ) -> Streaming<Resp>
    where
        C: Codec<Resp>,
        Resp: Send + 'static,
    {
        let codec = self.codec.clone();
        let encoding = self.encoding;
        with_deadline(
            stream.and_then_map(move |b| codec.decode(encoding, b)),
            deadline,
            "the stream",
        )
    }

    /// A unary call.
    pub async fn unary<Req, Resp>(
        &self,
        procedure: impl Into<Name>,
        request: &Req,
        options: CallOptions,
    ) -> Result<Response<Resp>>
    where
        C: Codec<Req> + Codec<Resp>,
    {
        let body = self.codec.encode(self.encoding, request)?;
        let procedure = procedure.into();
        let meta = self.meta(procedure.clone(), options);
        let deadline = meta.deadline;
        let response = within(
            deadline,
            &procedure,
            self.config.outbound.unary(Request::new(meta, body)),
        )
        .await?;
        let (meta, body) = response.into_parts();
        let encoding = meta.encoding.unwrap_or(self.encoding);
        let body = self.codec.decode(encoding, body)?;
        Ok(Response { meta, body })
    }

    /// A oneway call: resolves once the server has accepted the request.
    pub async fn oneway<Req>(
        &self,
        procedure: impl Into<Name>,
        request: &Req,
        options: CallOptions,
    ) -> Result<()>
    where
        C: Codec<Req>,
    {
        let body = self.codec.encode(self.encoding, request)?;
        let procedure = procedure.into();
        let meta = self.meta(procedure.clone(), options);
        let deadline = meta.deadline;
        within(
            deadline,
            &procedure,
            self.config.outbound.oneway(Request::new(meta, body)),
        )
        .await
    }

    /// A server-streaming call.
    pub async fn server_stream<Req, Resp>(
        &self,
        procedure: impl Into<Name>,
        request: &Req,
        options: CallOptions,
    ) -> Result<Response<Streaming<Resp>>>
    where
        C: Codec<Req> + Codec<Resp>,
        Resp: Send + 'static,
    {
        let body = self.codec.encode(self.encoding, request)?;
        let procedure = procedure.into();
        let meta = self.meta(procedure.clone(), options);
        let deadline = meta.deadline;
        let response = within(
            deadline,
            &procedure,
            self.config.outbound.server_stream(Request::new(meta, body)),
        )
        .await?;
        Ok(response.map(|s| self.decode_stream(s, deadline)))
    }

    /// A client-streaming call: sends every message of `requests`, then waits for the response.
    pub async fn client_stream<Req, Resp>(
        &self,
        procedure: impl Into<Name>,
        requests: impl Stream<Item = Req> + Send + 'static,
        options: CallOptions,
    ) -> Result<Response<Resp>>
    where
        C: Codec<Req> + Codec<Resp>,
        Req: Send + 'static,
    {
        let procedure = procedure.into();
        let meta = self.meta(procedure.clone(), options);
        let deadline = meta.deadline;
        let request = Request::new(meta, self.encode_stream(requests));
        let response = within(
            deadline,
            &procedure,
            self.config.outbound.client_stream(request),
        )
        .await?;
        let (meta, body) = response.into_parts();
        let body = self
            .codec
            .decode(meta.encoding.unwrap_or(self.encoding), body)?;
        Ok(Response { meta, body })
    }

    /// A duplex call: `requests` are sent as the server reads them; the returned stream yields
    /// responses as they arrive.
    pub async fn duplex<Req, Resp>(
        &self,
        procedure: impl Into<Name>,
        requests: impl Stream<Item = Req> + Send + 'static,
        options: CallOptions,
    ) -> Result<Response<Streaming<Resp>>>
    where
        C: Codec<Req> + Codec<Resp>,
        Req: Send + 'static,
        Resp: Send + 'static,
    {
        let procedure = procedure.into();
        let meta = self.meta(procedure.clone(), options);
        let deadline = meta.deadline;
        let request = Request::new(meta, self.encode_stream(requests));
        let response = within(deadline, &procedure, self.config.outbound.duplex(request)).await?;
        Ok(response.map(|s| self.decode_stream(s, deadline)))
    }
}

async fn within<T>(
    deadline: Option<Instant>,
    procedure: &str,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    match deadline {
        None => call.await,
        Some(deadline) => match tokio::time::timeout_at(deadline.into(), call).await {
            Ok(result) => result,
            Err(_) => Err(Error::deadline_exceeded(format!(
                "call to {procedure:?} passed its deadline"
            ))),
        },
    }
}
