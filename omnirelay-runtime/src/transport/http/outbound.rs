//! The YARPC-HTTP outbound: unary and oneway calls as `POST`s (hyper-util's pooled client,
//! HTTP/1.1 or h2c), server streams as SSE, client streams and duplex calls over WebSocket.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, Stream, StreamExt};
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use super::frame::{self, FrameType};
use super::inbound::ws_config;
use super::sse::{Event, Parser};
use super::wire::{
    self, RPC_ENCODING, RPC_SERVICE, RPC_STATUS, error_from_response, go_duration, too_large,
};
use super::{DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_FRAME_BYTES};
use crate::codec::Encoding;
use crate::dispatcher::Outbound;
use crate::error::{Error, Result};
use crate::meta::{Request, RequestMeta, Response, ResponseMeta, Transport};
use crate::procedure::BoxFuture;
use crate::stream::{ByteStream, Streaming, TrailerSlot};
use crate::transport::header_limit;

/// How long connecting to the peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls a remote service over YARPC-HTTP.
///
/// - Unary and oneway calls `POST` to the outbound's URL (its path included, e.g.
///   `http://127.0.0.1:8080/rpc`) over pooled HTTP/1.1 connections, or one h2c connection after
///   [`http2_prior_knowledge`](HttpOutbound::http2_prior_knowledge).
/// - yarpc-go servers refuse unary and oneway calls without a TTL (`missing TTL`), so a call
///   without one is sent with the outbound's [default TTL](HttpOutbound::default_ttl) (30 s),
///   which the outbound also enforces. Streams have no default.
/// - Server streams are `POST`s with `Accept: text/event-stream`; client streams and duplex calls
///   open a WebSocket (HTTP/1.1, one connection per call). Dropping a stream closes its
///   connection, which cancels the call on the server.
/// - Transport failures (connection refused, reset) are `unavailable`; a call over its TTL is
///   `deadline-exceeded`; a response body over the limit (default 4 MiB; streamed messages
///   4 MiB each) is `resource-exhausted`. Request bodies over the same limits fail locally.
#[derive(Clone, Debug)]
pub struct HttpOutbound {
    inner: Arc<Inner>,
}

#[derive(Clone, Debug)]
struct Inner {
    url: Uri,
    ws_url: String,
    authority: String,
    http2: bool,
    client: Client<HttpConnector, Full<Bytes>>,
    default_ttl: Duration,
    max_body_bytes: usize,
    max_frame_bytes: usize,
}

fn client(http2: bool) -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .http2_only(http2);
    builder.build(connector)
}

impl HttpOutbound {
    /// An outbound to `url`, e.g. `http://127.0.0.1:8080` or `http://host:8080/rpc`. Calls go
    /// to its path (`/` when it has none).
    ///
    /// # Errors
    /// `invalid-argument` for a URL that does not parse, has no host, or is not `http://`
    /// (TLS is not supported yet).
    pub fn new(url: impl Into<String>) -> Result<Self> {
        let text = url.into();
        let bad = |why: &str| {
            Error::invalid_argument(format!("invalid HTTP outbound URL {text:?}: {why}"))
        };
        let url: Uri = text
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        match url.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(bad("https is not supported yet; use http://")),
            _ => return Err(bad("expected an http:// URL")),
        }
        let authority = url.authority().ok_or_else(|| bad("no host"))?;
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(80);
        let authority = format!("{host}:{port}");
        let path = url.path_and_query().map_or("/", |p| p.as_str());
        let ws_url = format!("ws://{authority}{path}");
        Ok(HttpOutbound {
            inner: Arc::new(Inner {
                url,
                ws_url,
                authority,
                http2: false,
                client: client(false),
                default_ttl: Duration::from_secs(30),
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            }),
        })
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// Speaks HTTP/2 without TLS (h2c, prior knowledge) for unary, oneway and SSE calls, all over
    /// one connection. WebSocket calls still use HTTP/1.1.
    pub fn http2_prior_knowledge(mut self) -> Self {
        let inner = self.inner_mut();
        inner.http2 = true;
        inner.client = client(true);
        self
    }

    /// The TTL sent (and enforced) for unary and oneway calls made without one.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.inner_mut().default_ttl = ttl;
        self
    }

    /// The largest request or response body, in bytes.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.inner_mut().max_body_bytes = limit;
        self
    }

    /// The largest streamed message (WebSocket frame payload, SSE message), in bytes, each way.
    pub fn max_frame_bytes(mut self, limit: usize) -> Self {
        self.inner_mut().max_frame_bytes = limit;
        self
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = cause_source(source);
    }
    text
}

fn cause_source<'a>(
    error: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    error.and_then(std::error::Error::source)
}

impl Inner {
    fn transport_error(&self, error: &hyper_util::client::legacy::Error) -> Error {
        if error.is_connect() {
            Error::unavailable(format!(
                "cannot connect to {}: {}",
                self.authority,
                error_chain(error)
            ))
        } else {
            Error::unavailable(format!(
                "HTTP call to {} failed: {}",
                self.authority,
                error_chain(error)
            ))
        }
    }

    fn check_body(&self, body: &Bytes) -> Result<()> {
        if body.len() > self.max_body_bytes {
            return Err(too_large("request body", body.len(), self.max_body_bytes));
        }
        Ok(())
    }

    fn post(
        &self,
        meta: &RequestMeta,
        ttl: Option<Duration>,
        body: Bytes,
    ) -> Result<http::Request<Full<Bytes>>> {
        let mut headers = header_limit::header_map(8 + meta.headers.len())?;
        wire::write_request_meta(meta, ttl, &mut headers)?;
        headers.insert(CONTENT_TYPE, wire::content_type(meta.encoding));
        let mut request = http::Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.url.clone();
        *request.headers_mut() = headers;
        if self.http2 {
            *request.version_mut() = http::Version::HTTP_2;
        }
        Ok(request)
    }

    /// A unary-shaped exchange: send, read the whole answer, under `ttl`.
    async fn exchange(
        &self,
        meta: &RequestMeta,
        body: Bytes,
    ) -> Result<(http::response::Parts, Bytes)> {
        self.check_body(&body)?;
        let ttl = meta.remaining().or(meta.ttl).unwrap_or(self.default_ttl);
        let request = self.post(meta, Some(ttl), body)?;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| self.transport_error(&e))?;
            let (parts, body) = response.into_parts();
            let body = read_limited(body, self.max_body_bytes).await?;
            Ok((parts, body))
        };
        match tokio::time::timeout(ttl, call).await {
            Ok(result) => result,
            Err(_) => Err(Error::deadline_exceeded(format!(
                "client timeout for procedure {:?} of service {:?} after {}",
                meta.procedure,
                meta.service,
                go_duration(ttl)
            ))),
        }
    }
}

/// Reads a response body up to `limit` bytes.
async fn read_limited(mut body: Incoming, limit: usize) -> Result<Bytes> {
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Error::unavailable(format!("the response body broke off: {}", error_chain(&e)))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len();
        if total > limit {
            return Err(Error::resource_exhausted(format!(
                "response body exceeds the limit of {limit} bytes"
            )));
        }
        match (&mut first, &mut joined) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let mut buf = BytesMut::with_capacity(f.len() + data.len());
                buf.extend_from_slice(f);
                buf.extend_from_slice(&data);
                joined = Some(buf);
            }
            (_, Some(buf)) => buf.extend_from_slice(&data),
        }
    }
    Ok(joined.map(BytesMut::freeze).or(first).unwrap_or_default())
}

fn is_app_error(headers: &HeaderMap) -> bool {
    headers.get(&RPC_STATUS).is_some_and(|v| v == "error")
}

/// Fails unless the response's `Rpc-Service` (when sent) is the one called.
fn check_service(meta: &RequestMeta, headers: &HeaderMap) -> Result<()> {
    match wire::text(headers, &RPC_SERVICE) {
        Ok(Some(got)) if got != meta.service => Err(Error::internal(format!(
            "service name sent from the request does not match the service name received in \
             the response: sent {:?}, got {:?}",
            meta.service, got
        ))),
        _ => Ok(()),
    }
}

/// The response encoding a header names, when it differs from the request's.
fn response_encoding(meta: &RequestMeta, value: Option<&HeaderValue>) -> Option<Encoding> {
    let text = value?.to_str().ok()?;
    let name = text.split(';').next().unwrap_or(text).trim();
    Encoding::parse(name).filter(|e| *e != meta.encoding)
}

fn unary_response(
    meta: &RequestMeta,
    parts: http::response::Parts,
    body: Bytes,
) -> Result<Response<Bytes>> {
    if !parts.status.is_success() || is_app_error(&parts.headers) {
        return Err(error_from_response(parts.status, &parts.headers, &body));
    }
    check_service(meta, &parts.headers)?;
    let mut response = ResponseMeta {
        encoding: response_encoding(meta, parts.headers.get(CONTENT_TYPE)),
        ..ResponseMeta::default()
    };
    wire::read_app_headers(&parts.headers, &mut response.headers);
    Ok(Response {
        meta: response,
        body,
    })
}

impl Outbound for HttpOutbound {
    fn transport(&self) -> Transport {
        Transport::Http
    }

    fn peers(&self) -> Option<Vec<String>> {
        Some(vec![self.inner.authority.clone()])
    }

    fn unary(&self, request: Request<Bytes>) -> BoxFuture<Result<Response<Bytes>>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let (meta, body) = request.into_parts();
            let (parts, body) = inner.exchange(&meta, body).await?;
            unary_response(&meta, parts, body)
        })
    }

    fn oneway(&self, request: Request<Bytes>) -> BoxFuture<Result<()>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let (meta, body) = request.into_parts();
            let (parts, body) = inner.exchange(&meta, body).await?;
            if !parts.status.is_success() || is_app_error(&parts.headers) {
                return Err(error_from_response(parts.status, &parts.headers, &body));
            }
            Ok(())
        })
    }

    fn server_stream(&self, request: Request<Bytes>) -> BoxFuture<Result<Response<ByteStream>>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let (meta, body) = request.into_parts();
            inner.check_body(&body)?;
            let ttl = meta.remaining().or(meta.ttl);
            let mut request = inner.post(&meta, ttl, body)?;
            request
                .headers_mut()
                .insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
            let response = inner
                .client
                .request(request)
                .await
                .map_err(|e| inner.transport_error(&e))?;
            let (parts, body) = response.into_parts();
            if !parts.status.is_success() || is_app_error(&parts.headers) {
                let bytes = read_limited(body, inner.max_body_bytes).await?;
                return Err(error_from_response(parts.status, &parts.headers, &bytes));
            }
            let content_type = parts
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !content_type.starts_with("text/event-stream") {
                return Err(Error::internal(format!(
                    "the server answered a server-stream call with content type \
                     {content_type:?}, not text/event-stream"
                )));
            }
            check_service(&meta, &parts.headers)?;
            let mut response = ResponseMeta {
                encoding: response_encoding(&meta, parts.headers.get(&RPC_ENCODING)),
                ..ResponseMeta::default()
            };
            wire::read_app_headers(&parts.headers, &mut response.headers);
            let slot = TrailerSlot::default();
            let stream = events(body, inner.max_frame_bytes, slot.clone());
            Ok(Response {
                meta: response,
                body: Streaming::with_trailers(stream, slot),
            })
        })
    }

    fn client_stream(&self, request: Request<ByteStream>) -> BoxFuture<Result<Response<Bytes>>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let (meta, requests) = request.into_parts();
            let ws = connect(&inner, &meta).await?;
            let (sink, mut stream) = ws.split();
            let failure = Failure::default();
            // Dropping this future before the response aborts the writer and closes the socket.
            let _writer = send_requests(sink, requests, inner.max_frame_bytes, failure.clone());
            let limit = inner.max_frame_bytes;
            let outcome = async {
                let mut response = ResponseMeta::default();
                let mut body = None;
                loop {
                    match next_frame(&mut stream, limit).await? {
                        (FrameType::ResponseHeaders, payload) => {
                            response.headers = frame::parse_headers(&payload)?;
                        }
                        (FrameType::ResponseData, payload) if body.is_none() => {
                            body = Some(payload);
                        }
                        (FrameType::ResponseComplete, payload) => {
                            response.trailers = frame::parse_headers(&payload)?;
                            let body = body.ok_or_else(|| {
                                Error::internal(
                                    "the server completed a client-stream call without a response",
                                )
                            })?;
                            return Ok(Response {
                                meta: response,
                                body,
                            });
                        }
                        (FrameType::ResponseError, payload) => {
                            return Err(frame::parse_error(&payload));
                        }
                        (kind, _) => return Err(unexpected(kind)),
                    }
                }
            }
            .await;
            match failure.take() {
                Some(error) => Err(error),
                None => outcome,
            }
        })
    }

    fn duplex(&self, request: Request<ByteStream>) -> BoxFuture<Result<Response<ByteStream>>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let (meta, requests) = request.into_parts();
            let ws = connect(&inner, &meta).await?;
            let (sink, mut stream) = ws.split();
            let failure = Failure::default();
            let writer = send_requests(sink, requests, inner.max_frame_bytes, failure.clone());
            let limit = inner.max_frame_bytes;
            let mut response = ResponseMeta::default();
            let mut first = None;
            let slot = TrailerSlot::default();
            let start = match next_frame(&mut stream, limit).await {
                Ok((FrameType::ResponseHeaders, payload)) => {
                    frame::parse_headers(&payload).map(|h| response.headers = h)
                }
                Ok((FrameType::ResponseData, payload)) => {
                    first = Some(payload);
                    Ok(())
                }
                Ok((FrameType::ResponseComplete, payload)) => {
                    let _ = slot.set(frame::parse_headers(&payload)?);
                    return Ok(Response {
                        meta: response,
                        body: Streaming::with_trailers(futures::stream::empty(), slot),
                    });
                }
                Ok((FrameType::ResponseError, payload)) => Err(frame::parse_error(&payload)),
                Ok((kind, _)) => Err(unexpected(kind)),
                Err(error) => Err(error),
            };
            if let Err(error) = start {
                return Err(failure.take().unwrap_or(error));
            }
            let state = DuplexState {
                stream,
                _writer: writer,
                failure,
                first,
            };
            let filled = slot.clone();
            let messages = futures::stream::unfold(Some(state), move |state| {
                let filled = filled.clone();
                async move {
                    let mut state = state?;
                    if let Some(message) = state.first.take() {
                        return Some((Ok(message), Some(state)));
                    }
                    let error = match next_frame(&mut state.stream, limit).await {
                        Ok((FrameType::ResponseData, payload)) => {
                            return Some((Ok(payload), Some(state)));
                        }
                        Ok((FrameType::ResponseComplete, payload)) => {
                            match frame::parse_headers(&payload) {
                                Ok(trailers) => {
                                    let _ = filled.set(trailers);
                                    match state.failure.take() {
                                        Some(error) => error,
                                        None => return None,
                                    }
                                }
                                Err(error) => error,
                            }
                        }
                        Ok((FrameType::ResponseError, payload)) => frame::parse_error(&payload),
                        Ok((kind, _)) => unexpected(kind),
                        Err(error) => error,
                    };
                    Some((Err(state.failure.take().unwrap_or(error)), None))
                }
            });
            Ok(Response {
                meta: response,
                body: Streaming::with_trailers(messages, slot),
            })
        })
    }
}

type Ws = WebSocketStream<TcpStream>;

/// What a duplex response stream holds: the socket's read half and the writer task, which is
/// aborted (closing the socket) when the stream is dropped.
struct DuplexState {
    stream: SplitStream<Ws>,
    _writer: AbortOnDrop,
    failure: Failure,
    first: Option<Bytes>,
}

/// Where the request writer records a local failure (a message over the limit, an encoding
/// error), which the call reports instead of whatever the server then answers.
#[derive(Clone, Default)]
struct Failure(Arc<Mutex<Option<Error>>>);

impl Failure {
    fn set(&self, error: Error) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    fn take(&self) -> Option<Error> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn unexpected(kind: FrameType) -> Error {
    Error::internal(format!(
        "unexpected WebSocket frame {kind:?} ({:#04x}) from the server",
        kind as u8
    ))
}

/// Opens the WebSocket for a streaming call; a refused upgrade is the error the server sent.
async fn connect(inner: &Inner, meta: &RequestMeta) -> Result<Ws> {
    let mut request = inner.ws_url.as_str().into_client_request().map_err(|e| {
        Error::invalid_argument(format!("invalid WebSocket URL {:?}: {e}", inner.ws_url))
    })?;
    let ttl = meta.remaining().or(meta.ttl);
    wire::write_request_meta(meta, ttl, request.headers_mut())?;
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&inner.authority))
        .await
        .map_err(|_| Error::unavailable(format!("connecting to {} timed out", inner.authority)))?
        .map_err(|e| Error::unavailable(format!("cannot connect to {}: {e}", inner.authority)))?;
    let _ = tcp.set_nodelay(true);
    let config = ws_config(inner.max_frame_bytes);
    let handshake = tokio_tungstenite::client_async_with_config(request, tcp, Some(config));
    let outcome = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
        .await
        .map_err(|_| {
            Error::unavailable(format!(
                "the WebSocket handshake with {} timed out",
                inner.authority
            ))
        })?;
    match outcome {
        Ok((ws, _response)) => Ok(ws),
        Err(tungstenite::Error::Http(response)) => {
            let (parts, body) = response.into_parts();
            let body = body.unwrap_or_default();
            let status = if parts.status == StatusCode::SWITCHING_PROTOCOLS {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                parts.status
            };
            Err(error_from_response(status, &parts.headers, &body))
        }
        Err(e) => Err(Error::unavailable(format!(
            "WebSocket handshake with {} failed: {e}",
            inner.authority
        ))),
    }
}

/// Sends the request stream as frames, in a task; a local failure is recorded and sent to the
/// server as a request-error frame.
fn send_requests(
    mut sink: SplitSink<Ws, Message>,
    mut requests: ByteStream,
    limit: usize,
    failure: Failure,
) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let error = loop {
            match requests.next().await {
                Some(Ok(message)) if message.len() > limit => {
                    break too_large("request message", message.len(), limit);
                }
                Some(Ok(message)) => {
                    let frame = frame::encode(FrameType::RequestData, &message);
                    if sink.send(Message::Binary(frame)).await.is_err() {
                        return;
                    }
                }
                Some(Err(error)) => break error,
                None => {
                    let frame = frame::encode(FrameType::RequestComplete, &[]);
                    let _ = sink.send(Message::Binary(frame)).await;
                    return;
                }
            }
        };
        let payload = frame::error_payload(&error);
        failure.set(error);
        let _ = sink
            .send(Message::Binary(frame::encode(
                FrameType::RequestError,
                &payload,
            )))
            .await;
    }))
}

/// The next frame from the server.
async fn next_frame(stream: &mut SplitStream<Ws>, limit: usize) -> Result<(FrameType, Bytes)> {
    loop {
        let message = match stream.next().await {
            None | Some(Ok(Message::Close(_))) => {
                return Err(Error::unavailable(
                    "the server closed the WebSocket before the call completed",
                ));
            }
            Some(Err(tungstenite::Error::Capacity(err))) => {
                return Err(Error::resource_exhausted(format!(
                    "WebSocket frame over the limit of {limit} bytes: {err}"
                )));
            }
            Some(Err(err)) => {
                return Err(Error::unavailable(format!(
                    "the WebSocket broke off: {err}"
                )));
            }
            Some(Ok(message)) => message,
        };
        match message {
            Message::Binary(bytes) => return frame::decode(bytes, limit),
            Message::Text(_) => {
                return Err(Error::internal(
                    "the server sent a text WebSocket message; the protocol uses binary frames",
                ));
            }
            _ => continue,
        }
    }
}

/// Reads SSE events from a response body into a message stream; the `complete` event's
/// trailers go into `slot`.
fn events(
    body: Incoming,
    limit: usize,
    slot: TrailerSlot,
) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
    futures::stream::unfold(Some((body, Parser::new(limit))), move |state| {
        let slot = slot.clone();
        async move {
            let (mut body, mut parser) = state?;
            loop {
                match parser.next_event() {
                    Err(error) => return Some((Err(error), None)),
                    Ok(Some(Event::Data(message))) => {
                        return Some((Ok(message), Some((body, parser))));
                    }
                    Ok(Some(Event::Complete(trailers))) => {
                        let _ = slot.set(trailers);
                        return None;
                    }
                    Ok(Some(Event::Error(error))) => return Some((Err(error), None)),
                    Ok(None) => {}
                }
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            parser.push(data);
                        }
                    }
                    Some(Err(e)) => {
                        let error = Error::unavailable(format!(
                            "the event stream broke off: {}",
                            error_chain(&e)
                        ));
                        return Some((Err(error), None));
                    }
                    None => {
                        let error = Error::unavailable(
                            "the server closed the event stream without a complete or error event",
                        );
                        return Some((Err(error), None));
                    }
                }
            }
        }
    })
}
