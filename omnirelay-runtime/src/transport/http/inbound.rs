//! The YARPC-HTTP inbound: HTTP/1.1 and h2c on one port (hyper-util's auto server), serving
//! unary and oneway calls, SSE server streams, WebSocket client streams and duplex calls, and
//! the fixed paths `/omnirelay/introspect`, `/healthz` and `/readyz`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{FutureExt, SinkExt, Stream, StreamExt};
use http::header::{
    CACHE_CONTROL, CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};

use super::connection::{Activity, CallMark, Connections, Served, Sweeper, Watched};
use super::frame::{self, FrameType};
use super::sse;
use super::wire::{
    self, RETRY_AFTER, RPC_BOTH, RPC_CALLER, RPC_CALLER_PROCEDURE, RPC_ENCODING, RPC_PROCEDURE,
    RPC_ROUTING_DELEGATE, RPC_ROUTING_KEY, RPC_SERVICE, RPC_SHARD_KEY, RPC_STATUS, Ttl, too_large,
};
use super::{DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_HEADER_BYTES};
use crate::codec::Encoding;
use crate::dispatcher::{Inbound, InboundContext};
use crate::error::{Code, Error, Result};
use crate::introspect::HealthReport;
use crate::meta::{Headers, Request, RequestMeta, Response, Transport};
use crate::middleware::{
    ADMIN_BODY_TIMEOUT, AdminEndpoint, AdminRequest, AdminResponse, MAX_ADMIN_BODY, Pipeline,
};
use crate::name::Name;
use crate::procedure::{BoxFuture, Kind, ProcedureSpec};
use crate::stream::{ByteStream, Streaming, with_deadline};
use crate::transport::drain::{InFlight, InFlightGuard};
use crate::transport::handler_call::{Caught, invoke_pipeline, run_handler, run_started};
use crate::transport::header_limit;
use crate::transport::server_task::ServerTask;

/// How much of an over-limit request body is read and thrown away, so that the client reads
/// the `429` instead of a connection reset.
const DRAIN_BUDGET: usize = 8 * 1024 * 1024;
/// How long that may take.
const DRAIN_TIME: Duration = Duration::from_secs(2);
/// Beyond the configured header limit, how much more hyper's parser buffers before it refuses a
/// request itself (HTTP 431).
const HEADER_HEADROOM: usize = 64 * 1024;
/// Request messages buffered between a WebSocket and its handler.
const REQUEST_BUFFER: usize = 8;
/// The default of [`HttpInbound::header_read_timeout`].
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a finished WebSocket call waits for the client's close reply.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Serves a dispatcher's procedures over YARPC-HTTP (HTTP/1.1 and h2c on one port).
///
/// Defaults: request headers up to [`DEFAULT_MAX_HEADER_BYTES`], bodies up to
/// [`DEFAULT_MAX_BODY_BYTES`], streamed messages up to [`DEFAULT_MAX_FRAME_BYTES`], a 30 s
/// [header read timeout](HttpInbound::header_read_timeout), and a 10 s drain timeout on stop.
/// See the [module docs](super) for the wire protocol.
#[derive(Debug)]
pub struct HttpInbound {
    config: Arc<Config>,
    task: ServerTask,
}

#[derive(Debug)]
struct Config {
    addr: SocketAddr,
    max_header_bytes: usize,
    max_body_bytes: usize,
    max_frame_bytes: usize,
    header_read_timeout: Option<Duration>,
    drain_timeout: Duration,
}

impl HttpInbound {
    /// An inbound that will listen on `addr` (port 0 picks a free port).
    pub fn new(addr: SocketAddr) -> Self {
        HttpInbound {
            config: Arc::new(Config {
                addr,
                max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
                header_read_timeout: Some(DEFAULT_HEADER_READ_TIMEOUT),
                drain_timeout: Duration::from_secs(10),
            }),
            task: ServerTask::new("HTTP"),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::get_mut(&mut self.config).expect("configured before start")
    }

    /// The largest total size of a request's headers (`name: value\r\n` each), in bytes. A
    /// request over it gets `429 resource-exhausted`; one over the limit plus 64 KiB is refused
    /// by the HTTP parser itself (`431`).
    pub fn max_header_bytes(mut self, limit: usize) -> Self {
        self.config_mut().max_header_bytes = limit;
        self
    }

    /// The largest request body (unary, oneway and SSE requests), in bytes; a larger one gets
    /// `429 resource-exhausted`.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.config_mut().max_body_bytes = limit;
        self
    }

    /// The largest streamed message, in bytes, each way: a WebSocket frame's payload, an SSE
    /// message. Over it, the call ends with `resource-exhausted`.
    pub fn max_frame_bytes(mut self, limit: usize) -> Self {
        self.config_mut().max_frame_bytes = limit;
        self
    }

    /// How long an HTTP/1 connection may go without a complete request head while no call is
    /// in progress on it before it is closed (default 30 s, hyper's default for the same
    /// protection; `None` turns it off). It closes connections whose client sends a head slowly
    /// or never finishes it, and idle keep-alive connections; a call in progress, however long
    /// (a slow body within its TTL, a long event stream), keeps its connection open. An HTTP/2
    /// connection is watched only until its first request.
    ///
    /// The timeout is kept by a thread of the inbound's own, which looks at the connections an
    /// eighth of the timeout apart (at most 1 s): a connection is closed between the timeout
    /// and one such tick after it became idle (30-31 s by default). The thread runs on the real
    /// clock, so a paused tokio clock (`tokio::time::pause`) does not bring the close forward.
    /// No tokio timer is involved, so the runtime's worker threads wait for work without one
    /// (see the `connection` module for why that matters).
    ///
    /// A zero timeout turns the watchdog off, as `None` does (Go's `net/http`, which yarpc-go
    /// serves with, reads a zero `ReadHeaderTimeout` the same way): taken literally it would
    /// close every connection before its first request could arrive.
    pub fn header_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config_mut().header_read_timeout = timeout.into().filter(|t| !t.is_zero());
        self
    }

    /// How long `stop` lets in-flight calls finish (new calls getting `503`) before it closes
    /// the connections anyway.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().drain_timeout = timeout;
        self
    }
}

/// What every request handler shares.
struct Shared {
    context: Arc<InboundContext>,
    config: Arc<Config>,
    in_flight: Arc<InFlight>,
    /// The inbound itself is stopping (also when stopped without its dispatcher draining).
    stopping: AtomicBool,
    /// `Rpc-Service`, built once.
    service: HeaderValue,
    /// Fires when the drain timed out: open WebSocket calls end.
    kill: watch::Sender<bool>,
}

/// The header capacity of a success (unary or oneway) over HTTP/1. A success is written into
/// the request's own header map, emptied ([`answer_headers`]): hyper keeps each HTTP/1
/// response's map, emptied again, to parse the connection's next request into, so one map
/// serves every call of a connection and no call allocates one. The map is kept at least this
/// large, so that a next request with more headers than this one does not grow it. Twelve is
/// what a map with 16 index slots holds, more than a YARPC request usually carries (eight in the
/// benchmarks). Over HTTP/2 maps are not passed on, and the request's map is reused as it is.
const H1_SUCCESS_HEADER_CAPACITY: usize = 12;

impl Shared {
    fn is_draining(&self) -> bool {
        self.context.is_draining() || self.stopping.load(Ordering::Acquire)
    }
}

impl Inbound for HttpInbound {
    fn transport(&self) -> Transport {
        Transport::Http
    }

    fn start(&self, context: Arc<InboundContext>) -> BoxFuture<Result<SocketAddr>> {
        let config = self.config.clone();
        let task = self.task.clone();
        Box::pin(async move {
            let service = HeaderValue::from_str(context.service()).map_err(|_| {
                Error::invalid_argument(format!(
                    "service name {:?} cannot be sent as an HTTP header",
                    context.service()
                ))
            })?;
            let (listener, addr) = task.bind(config.addr).await?;
            let shared = Arc::new(Shared {
                context,
                config,
                in_flight: InFlight::new(),
                stopping: AtomicBool::new(false),
                service,
                kill: watch::channel(false).0,
            });
            task.spawn(|shutdown| accept_loop(listener, shared, shutdown));
            Ok(addr)
        })
    }

    fn stop(&self) -> BoxFuture<Result<()>> {
        self.task.stop()
    }
}

fn server_builder(config: &Config) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let parser_limit = config.max_header_bytes.saturating_add(HEADER_HEADROOM);
    // No timer for HTTP/1: hyper's header read timeout (a boxed timer armed for every request
    // head) is replaced by the connection's watchdog (see `connection`).
    builder
        .http1()
        .header_read_timeout(None)
        .max_buf_size(parser_limit.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(parser_limit).unwrap_or(u32::MAX));
    builder
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let served = Connections::new();
    // Held until the accept loop ends: its thread stops when this is dropped.
    let _sweeper = shared
        .config
        .header_read_timeout
        .map(|timeout| Sweeper::start(served.clone(), timeout));
    let mut connections = JoinSet::new();
    let builder = server_builder(&shared.config);
    let drain_timeout = shared.config.drain_timeout;
    // Phase 1 of a stop: keep accepting, answer new calls 503, until the calls in flight are
    // done or the drain timeout passes.
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            changed = shutdown.changed(), if drain_deadline.is_none() => {
                if changed.is_err() || *shutdown.borrow() {
                    shared.stopping.store(true, Ordering::Release);
                    drain_deadline = Some(tokio::time::Instant::now() + drain_timeout);
                }
                continue;
            }
            () = shared.in_flight.idle(), if drain_deadline.is_some() => break,
            () = sleep_until(drain_deadline) => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "HTTP inbound failed to accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let for_service = shared.clone();
        let activity = Activity::new();
        let for_calls = activity.clone();
        // `handle`'s future goes to hyper as it is (no async block around it to move it into).
        let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let mark = for_calls.begin(request.version());
            handle(for_service.clone(), mark, request)
        });
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(Watched::new(stream, activity.clone())),
                service,
            )
            .into_owned();
        let connection = Served::new(
            connection,
            &served,
            activity,
            shared.config.header_read_timeout,
        );
        connections.spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "HTTP connection ended with an error");
            }
        });
        while connections.try_join_next().is_some() {}
    }
    // Phase 2: close the port and the connections.
    drop(listener);
    let left = drain_deadline
        .map(|d| d.saturating_duration_since(tokio::time::Instant::now()))
        .unwrap_or(drain_timeout)
        .max(Duration::from_millis(100));
    served.stop();
    let closed = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(left, closed).await.is_err() {
        tracing::warn!(
            timeout = ?drain_timeout,
            "HTTP inbound drain timed out; closing the remaining connections"
        );
    }
    let _ = shared.kill.send(true);
    connections.shutdown().await;
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => futures::future::pending().await,
    }
}

// ---------------------------------------------------------------------------------------------
// Response bodies

type EventStream = Pin<Box<dyn Stream<Item = Bytes> + Send + 'static>>;

/// A response body: empty, one buffer, or a stream of buffers (SSE events). It keeps the call
/// counted as in flight until it is sent or dropped.
pub(crate) struct Body {
    kind: BodyKind,
    _guard: Option<InFlightGuard>,
    /// Keeps the call counted on its connection (for the header-read watchdog).
    call: Option<CallMark>,
}

enum BodyKind {
    Full(Option<Bytes>),
    Stream(EventStream),
}

impl Body {
    fn empty() -> Self {
        Body::full(Bytes::new())
    }

    fn full(bytes: Bytes) -> Self {
        Body {
            kind: BodyKind::Full((!bytes.is_empty()).then_some(bytes)),
            _guard: None,
            call: None,
        }
    }

    fn stream(stream: EventStream, guard: InFlightGuard) -> Self {
        Body {
            kind: BodyKind::Stream(stream),
            _guard: Some(guard),
            call: None,
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        match &mut this.kind {
            BodyKind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            BodyKind::Stream(stream) => stream
                .as_mut()
                .poll_next(cx)
                .map(|item| item.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, BodyKind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len()) as u64)
            }
            BodyKind::Stream(_) => SizeHint::default(),
        }
    }
}

fn response(status: StatusCode, headers: HeaderMap, body: Body) -> http::Response<Body> {
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// An error response in the mode the client asked for (see the module docs).
fn error_response(shared: &Shared, error: &Error, both: bool) -> http::Response<Body> {
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert(RPC_SERVICE, shared.service.clone());
    wire::write_error_headers(error, &mut headers);
    let body = if both {
        headers.insert(RPC_BOTH, wire::TRUE);
        Body::full(error.details().clone())
    } else {
        headers.insert(CONTENT_TYPE, wire::TEXT_PLAIN);
        let mut text = BytesMut::with_capacity(error.message().len() + 1);
        text.extend_from_slice(error.message().as_bytes());
        text.extend_from_slice(b"\n");
        Body::full(text.freeze())
    };
    response(wire::status_of(error.code()), headers, body)
}

/// Marks an HTTP/1 response as the connection's last.
fn close_after(mut response: http::Response<Body>, version: Version) -> http::Response<Body> {
    if version <= Version::HTTP_11 {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn json_response(status: StatusCode, value: &impl serde::Serialize) -> http::Response<Body> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert(CONTENT_TYPE, wire::content_type(Encoding::Json));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response(status, headers, Body::full(Bytes::from(body)))
}

/// Serves a middleware's administrative endpoint (e.g. `/omnirelay/metrics`).
///
/// The endpoint's [`AdminEndpoint::authorize`] sees the headers first. Only a `POST`, `PUT` or
/// `PATCH` body is then read, at most [`MAX_ADMIN_BODY`] bytes (else `413`) within
/// [`ADMIN_BODY_TIMEOUT`] (else `408`, closing an HTTP/1 connection, whose unread body would
/// otherwise be taken for the next request).
async fn admin(
    endpoint: Arc<dyn AdminEndpoint>,
    request: http::Request<Incoming>,
) -> http::Response<Body> {
    let (parts, body) = request.into_parts();
    if let Some(refused) = endpoint.authorize(&parts.headers) {
        return admin_response(refused);
    }
    let body = if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
        let read = http_body_util::Limited::new(body, MAX_ADMIN_BODY).collect();
        match tokio::time::timeout(ADMIN_BODY_TIMEOUT, read).await {
            Ok(Ok(body)) => body.to_bytes(),
            Ok(Err(_)) => {
                let text = format!("the request body is over {MAX_ADMIN_BODY} bytes or broken");
                return admin_response(AdminResponse::text(StatusCode::PAYLOAD_TOO_LARGE, text));
            }
            Err(_) => {
                let text = format!(
                    "the request body did not arrive within {} s\n",
                    ADMIN_BODY_TIMEOUT.as_secs()
                );
                let answer = AdminResponse::text(StatusCode::REQUEST_TIMEOUT, text);
                return close_after(admin_response(answer), parts.version);
            }
        }
    } else {
        Bytes::new()
    };
    let answer = endpoint.handle(AdminRequest {
        method: parts.method,
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers,
        body,
    });
    admin_response(answer)
}

fn admin_response(answer: AdminResponse) -> http::Response<Body> {
    let mut headers = HeaderMap::with_capacity(1);
    let content_type = HeaderValue::from_str(answer.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(CONTENT_TYPE, content_type);
    response(answer.status, headers, Body::full(answer.body))
}

fn health(shared: &Shared, ready: bool) -> http::Response<Body> {
    let issues = if ready {
        let mut issues = shared.context.readiness_issues();
        if shared.stopping.load(Ordering::Acquire) && !issues.iter().any(|i| i == "draining") {
            issues.push("draining".to_owned());
        }
        issues
    } else {
        Vec::new()
    };
    let status = if issues.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let report = HealthReport {
        status: if issues.is_empty() {
            "ok"
        } else {
            "unavailable"
        }
        .to_owned(),
        mode: if ready { "ready" } else { "live" }.to_owned(),
        issues,
        active_requests: shared.in_flight.count(),
        draining: shared.is_draining(),
    };
    json_response(status, &report)
}

// ---------------------------------------------------------------------------------------------
// Routing

/// How a request asks to be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// A `POST`: unary or oneway.
    Plain,
    /// `Accept: text/event-stream`: a server stream.
    Sse,
    /// A WebSocket upgrade: a client stream or duplex call.
    WebSocket,
}

/// Whether a header value lists `token` (comma-separated, parameters after `;` ignored, any
/// case).
fn has_token(value: &HeaderValue, token: &str) -> bool {
    value.to_str().is_ok_and(|s| {
        s.split(',').any(|part| {
            part.trim()
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// What the inbound reads from a request's headers, collected in one pass over them (no header
/// name is hashed again). Each `Option` holds the first value of its header, as
/// [`HeaderMap::get`] would return it.
#[derive(Default)]
struct Scan<'a> {
    service: Option<&'a HeaderValue>,
    procedure: Option<&'a HeaderValue>,
    caller: Option<&'a HeaderValue>,
    encoding: Option<&'a HeaderValue>,
    context_ttl: Option<&'a HeaderValue>,
    rpc_ttl: Option<&'a HeaderValue>,
    rpc_deadline: Option<&'a HeaderValue>,
    shard_key: Option<&'a HeaderValue>,
    routing_key: Option<&'a HeaderValue>,
    routing_delegate: Option<&'a HeaderValue>,
    caller_procedure: Option<&'a HeaderValue>,
    accepts_both: Option<&'a HeaderValue>,
    expect: Option<&'a HeaderValue>,
    /// Some `Upgrade` value lists `websocket`.
    websocket: bool,
    /// Some `Accept` value lists `text/event-stream`.
    event_stream: bool,
    /// The size of the header block, as `wire::header_bytes` counts it.
    bytes: usize,
    /// The application headers, as [`wire::read_app_headers`] reads them.
    app: Headers,
}

impl<'a> Scan<'a> {
    fn of(headers: &'a HeaderMap) -> Scan<'a> {
        let mut scan = Scan::default();
        for (name, value) in headers {
            let text = name.as_str();
            scan.bytes += text.len() + value.len() + 4;
            let slot = if let Some(rest) = text.strip_prefix("rpc-") {
                match rest {
                    "service" => &mut scan.service,
                    "procedure" => &mut scan.procedure,
                    "caller" => &mut scan.caller,
                    "encoding" => &mut scan.encoding,
                    "ttl-ms" => &mut scan.rpc_ttl,
                    "deadline" => &mut scan.rpc_deadline,
                    "shard-key" => &mut scan.shard_key,
                    "routing-key" => &mut scan.routing_key,
                    "routing-delegate" => &mut scan.routing_delegate,
                    "caller-procedure" => &mut scan.caller_procedure,
                    "accepts-both-response-error" => &mut scan.accepts_both,
                    _ => {
                        if let Some(key) = wire::app_header_key(text) {
                            scan.app
                                .insert(key, Bytes::copy_from_slice(value.as_bytes()));
                        }
                        continue;
                    }
                }
            } else if *name == UPGRADE {
                scan.websocket = scan.websocket || has_token(value, "websocket");
                continue;
            } else if *name == http::header::ACCEPT {
                scan.event_stream = scan.event_stream || has_token(value, "text/event-stream");
                continue;
            } else if *name == http::header::EXPECT {
                &mut scan.expect
            } else if text == "context-ttl-ms" {
                &mut scan.context_ttl
            } else {
                if let Some(key) = wire::app_header_key(text) {
                    scan.app
                        .insert(key, Bytes::copy_from_slice(value.as_bytes()));
                }
                continue;
            };
            slot.get_or_insert(value);
        }
        scan
    }

    /// `Rpc-Accepts-Both-Response-Error: true`.
    fn both(&self) -> bool {
        self.accepts_both
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
    }

    /// `Expect: 100-continue`.
    fn expect_continue(&self) -> bool {
        self.expect
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    }
}

fn classify(method: &Method, scan: &Scan<'_>) -> Result<Mode> {
    if method == Method::GET && scan.websocket {
        return Ok(Mode::WebSocket);
    }
    if (method == Method::GET || method == Method::POST) && scan.event_stream {
        return Ok(Mode::Sse);
    }
    if method == Method::POST {
        return Ok(Mode::Plain);
    }
    Err(Error::not_found(format!(
        "request method was {method} but only POST is allowed"
    )))
}

/// A routed call: how it is served, its procedure and its metadata, and for the shapes that
/// hand the request on (oneway, streams) what its deadline error says. A unary call reads that
/// from its head when it times out ([`TimeoutInfo::of`]).
struct Routed {
    mode: Mode,
    spec: Arc<ProcedureSpec>,
    meta: RequestMeta,
    timeout: Option<TimeoutInfo>,
}

/// Checks a call's headers in yarpc-go's order and finds its procedure; returns the mode the call
/// is served in (a `POST` accepting an event stream that calls a unary procedure is served as
/// unary).
/// The caller's name is shared with the connection's previous call when that named the same
/// caller (`mark`), instead of copied per call.
fn route(
    context: &InboundContext,
    scan: Scan<'_>,
    mode: Mode,
    post: bool,
    mark: &CallMark,
) -> Result<Routed> {
    // The values clients send over and over (the dispatcher's service, the connection's last
    // caller, an encoding's name) are compared as bytes first: a match is known to be text, so
    // only the procedure and an unexpected value pay for the UTF-8 check.
    let service = match scan.service {
        Some(v) if !v.is_empty() && v.as_bytes() == context.service().as_bytes() => {
            Some(context.service())
        }
        other => wire::value_text(other, &RPC_SERVICE)?,
    };
    let procedure = wire::value_text(scan.procedure, &RPC_PROCEDURE)?;
    let known_caller = scan.caller.and_then(|v| mark.known_caller(v.as_bytes()));
    let caller = match &known_caller {
        Some(name) => Some(name.as_str()),
        None => wire::value_text(scan.caller, &RPC_CALLER)?,
    };
    let encoding = match scan.encoding.map(HeaderValue::as_bytes) {
        Some(b"proto") => Some("proto"),
        Some(b"json") => Some("json"),
        Some(b"raw") => Some("raw"),
        _ => wire::value_text(scan.encoding, &RPC_ENCODING)?,
    };
    let (Some(service), Some(procedure), Some(caller), Some(encoding)) =
        (service, procedure, caller, encoding)
    else {
        let missing: Vec<&str> = [
            (service.is_none(), "service name"),
            (procedure.is_none(), "procedure"),
            (caller.is_none(), "caller name"),
            (encoding.is_none(), "encoding"),
        ]
        .into_iter()
        .filter_map(|(absent, name)| absent.then_some(name))
        .collect();
        return Err(Error::invalid_argument(format!(
            "missing {}",
            missing.join(", ")
        )));
    };
    let ttl = wire::ttl_of(
        [scan.context_ttl, scan.rpc_ttl],
        scan.rpc_deadline,
        service,
        procedure,
    );
    if service != context.service() {
        return Err(Error::unimplemented(format!(
            "unrecognized service name {service:?}, available services: {:?}",
            context.service()
        )));
    }
    let Some((spec, registered)) = context.registry().resolve(procedure) else {
        return Err(Error::unimplemented(format!(
            "unrecognized procedure {procedure:?} for service {service:?}"
        )));
    };
    let accepted = || {
        spec.encodings()
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(encoding) = Encoding::parse(encoding) else {
        return Err(Error::invalid_argument(format!(
            "unknown encoding {encoding:?} for procedure {procedure:?} of service {service:?}: \
             it accepts {}",
            accepted()
        )));
    };
    if !spec.accepts(encoding) {
        return Err(Error::invalid_argument(format!(
            "procedure {procedure:?} of service {service:?} does not accept encoding {encoding}; \
             it accepts {}",
            accepted()
        )));
    }
    let ttl = match ttl {
        Ttl::Invalid(message) => return Err(Error::invalid_argument(message)),
        Ttl::Within(ttl) => Some(ttl),
        Ttl::Missing => None,
    };
    let kind = spec.kind();
    let needed = match kind {
        Kind::Unary | Kind::Oneway => Mode::Plain,
        Kind::ServerStream => Mode::Sse,
        Kind::ClientStream | Kind::Duplex => Mode::WebSocket,
    };
    let mode = if needed == Mode::Plain && mode == Mode::Sse && post {
        Mode::Plain
    } else {
        mode
    };
    if needed != mode {
        let how = match needed {
            Mode::Plain => "with a plain POST",
            Mode::Sse => "with Accept: text/event-stream (Server-Sent Events)",
            Mode::WebSocket => "over a WebSocket (GET with Upgrade: websocket)",
        };
        return Err(Error::invalid_argument(format!(
            "procedure {procedure:?} of service {service:?} is a {kind} procedure: call it {how}"
        )));
    }
    if ttl.is_none() && matches!(kind, Kind::Unary | Kind::Oneway) {
        return Err(Error::invalid_argument("missing TTL"));
    }
    let deadline = match ttl {
        None => None,
        Some(ttl) => Some(Instant::now().checked_add(ttl).ok_or_else(|| {
            Error::invalid_argument(format!(
                "invalid TTL {} for service {service:?} and procedure {procedure:?}: too large",
                ttl.as_millis()
            ))
        })?),
    };
    let optional = |value: Option<&HeaderValue>, name: &HeaderName| {
        wire::value_text(value, name).map(|v| v.map(str::to_owned))
    };
    let shard_key = optional(scan.shard_key, &RPC_SHARD_KEY)?;
    let routing_key = optional(scan.routing_key, &RPC_ROUTING_KEY)?;
    let routing_delegate = optional(scan.routing_delegate, &RPC_ROUTING_DELEGATE)?;
    let caller_procedure = optional(scan.caller_procedure, &RPC_CALLER_PROCEDURE)?;
    // The three names were checked to be present, so their values are too: clones of the
    // request's own header bytes (reference counts, no copies).
    let timeout = match (kind, ttl, scan.procedure, scan.service, scan.caller) {
        (Kind::Unary, ..) => None,
        (_, Some(ttl), Some(procedure), Some(service), Some(caller)) => Some(TimeoutInfo {
            procedure: procedure.clone(),
            service: service.clone(),
            caller: caller.clone(),
            ttl,
        }),
        _ => None,
    };
    // The service and (unless a wildcard matched) the procedure are the names the dispatcher
    // holds: shared, not copied.
    let meta = RequestMeta {
        caller: match &known_caller {
            Some(name) => name.clone(),
            None => mark.caller(caller),
        },
        service: context.service_name().clone(),
        procedure: registered.map_or_else(|| Name::from(procedure), Name::clone),
        encoding,
        transport: Transport::Http,
        ttl,
        deadline,
        shard_key,
        routing_key,
        routing_delegate,
        caller_procedure,
        headers: scan.app,
    };
    Ok(Routed {
        mode,
        spec: spec.clone(),
        meta,
        timeout,
    })
}

/// Serves one request. A unary call is served inline, in this future's own state, pinned where
/// hyper put it: the request, its routed metadata and the handler's future are not moved again.
/// The rarer paths (administrative endpoints, oneway, SSE) are boxed, one allocation each, so
/// that their larger states do not grow the future every unary call moves into hyper.
///
/// The headers are read and the call routed in [`admit`], a plain function, so its temporaries
/// (the header scan, the routing result) stay on the stack rather than in this future's state.
/// The request is split into its head and body before the future is made, so the body can be
/// read while the head stays borrowed: a deadline error reads the call's names from the head
/// when it happens ([`TimeoutInfo::of`]) instead of every call cloning them up front.
///
/// Every response carries `mark`, which counts the call on its connection until the response
/// is written (see `connection.rs`).
///
/// Written as a function returning an `async move` block rather than as an `async fn`: an
/// `async fn` copies its arguments into locals when it starts, and the request is 264 bytes.
#[allow(clippy::manual_async_fn)]
fn handle(
    shared: Arc<Shared>,
    mark: CallMark,
    request: http::Request<Incoming>,
) -> impl Future<Output = std::result::Result<http::Response<Body>, Infallible>> + Send {
    let (mut head, mut body) = request.into_parts();
    async move {
        let mut response = 'call: {
            if let Some(endpoint) = shared.context.endpoint(head.uri.path()) {
                let request = http::Request::from_parts(head, body);
                break 'call Box::pin(admin(endpoint.clone(), request)).await;
            }
            if matches!(head.method, Method::GET | Method::HEAD) {
                match head.uri.path() {
                    "/omnirelay/introspect" => {
                        break 'call json_response(StatusCode::OK, &shared.context.introspect());
                    }
                    "/healthz" => break 'call health(&shared, false),
                    "/readyz" => break 'call health(&shared, true),
                    _ => {}
                }
            }
            // Counted before the drain check, so a stop that saw no call in flight sees none start.
            let guard = shared.in_flight.enter();
            let version = head.version;
            if shared.is_draining() {
                break 'call draining(&shared, version);
            }
            let Admitted {
                routed:
                    Routed {
                        mode,
                        spec,
                        meta,
                        timeout,
                    },
                limit,
                both,
            } = match admit(&shared, &head, &mark) {
                Ok(admitted) => admitted,
                Err(response) => break 'call response,
            };
            let h = match (mode, spec.pipeline()) {
                (Mode::Plain, Pipeline::Unary(h)) => h,
                (mode, _) => {
                    let routed = Routed {
                        mode,
                        spec,
                        meta,
                        timeout,
                    };
                    let request = http::Request::from_parts(head, body);
                    break 'call match mode {
                        Mode::Plain => {
                            Box::pin(oneway(&shared, routed, request, limit, both, guard)).await
                        }
                        Mode::Sse => {
                            Box::pin(server_stream(&shared, routed, request, limit, both, guard))
                                .await
                        }
                        Mode::WebSocket => websocket(&shared, routed, request, both, guard),
                    };
                }
            };
            // A unary call. One deadline (one `run_started`) covers reading the body and the
            // handler.
            let deadline = meta.deadline;
            let encoding = meta.encoding;
            let ttl = meta.ttl;
            let headers = &head.headers;
            let late = || expired(TimeoutInfo::of(headers, ttl).as_ref());
            let mut body_read = false;
            // `route` computed the deadline from the clock a moment ago, on the call's arrival: it
            // had passed then exactly when the TTL was zero.
            let passed = ttl.is_some_and(|ttl| ttl.is_zero());
            let outcome = {
                // Made where it is pinned (see `Caught`), not moved there.
                let call = std::pin::pin!(Caught {
                    call: async {
                        let mut waited = false;
                        let bytes = read_body_noting(&mut body, limit, &mut waited).await?;
                        body_read = true;
                        // As before the handler had a deadline of its own: a call whose
                        // deadline passed while its body was read does not start its handler.
                        // A body that was all there when the call arrived took no time to read,
                        // so the clock is read only when the call waited for it.
                        if waited && deadline.is_some_and(|d| d <= Instant::now()) {
                            return Err(late());
                        }
                        invoke_pipeline!(h, Request::new(meta, bytes))
                    }
                });
                run_started(deadline, passed, call, late).await
            };
            let mut response = match outcome {
                Ok(response) => {
                    let spare = std::mem::take(&mut head.headers);
                    success(&shared, response, spare, encoding, both, version)
                }
                // The body may be partly read: the connection cannot carry another request.
                Err(error) if !body_read => {
                    break 'call close_after(error_response(&shared, &error, both), version);
                }
                Err(error) => error_response(&shared, &error, both),
            };
            // Counted until the answer is written, not only until it is ready.
            response.body_mut()._guard = Some(guard);
            response
        };
        response.body_mut().call = Some(mark);
        Ok(response)
    }
}

/// A call that passed the checks on its headers: routed, with its body's limit and whether the
/// client accepts errors in both forms.
struct Admitted {
    routed: Routed,
    limit: BodyLimit,
    both: bool,
}

/// Reads a request's headers (once, [`Scan::of`]) and routes the call, or answers it with an
/// error response. A plain function, so the scan lives on the stack (see [`handle`]). Both
/// variants are large, and both are taken apart at once by the only caller, on the stack.
#[allow(clippy::result_large_err)]
fn admit(
    shared: &Shared,
    head: &http::request::Parts,
    mark: &CallMark,
) -> std::result::Result<Admitted, http::Response<Body>> {
    let scan = Scan::of(&head.headers);
    let both = scan.both();
    if scan.bytes > shared.config.max_header_bytes {
        let error = too_large(
            "request headers",
            scan.bytes,
            shared.config.max_header_bytes,
        );
        return Err(close_after(
            error_response(shared, &error, both),
            head.version,
        ));
    }
    let limit = BodyLimit {
        max: shared.config.max_body_bytes,
        expect_continue: scan.expect_continue(),
    };
    let post = head.method == Method::POST;
    let routed = classify(&head.method, &scan)
        .and_then(|mode| route(&shared.context, scan, mode, post, mark))
        .map_err(|error| error_response(shared, &error, both))?;
    Ok(Admitted {
        routed,
        limit,
        both,
    })
}

/// The answer to a call that arrives while the inbound drains.
fn draining(shared: &Shared, version: Version) -> http::Response<Body> {
    let error = Error::unavailable(format!(
        "service {:?} is draining: retry on another peer",
        shared.context.service()
    ));
    let mut response = error_response(shared, &error, false);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    close_after(response, version)
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// What a deadline error says (yarpc-go's message): the request's own `Rpc-Procedure`,
/// `Rpc-Service` and `Rpc-Caller` values, formatted only when a call times out. A unary call
/// reads them from its head only then ([`TimeoutInfo::of`]); oneway, SSE and WebSocket calls,
/// which hand the request on, get clones from routing (which share the request's bytes, copying
/// nothing).
#[derive(Clone)]
struct TimeoutInfo {
    procedure: HeaderValue,
    service: HeaderValue,
    caller: HeaderValue,
    ttl: Duration,
}

impl TimeoutInfo {
    /// What a call with these headers says when it times out; `None` without a TTL or without
    /// one of the three names. The names are the first values of their headers, as [`Scan::of`]
    /// read them for routing, which refused a call that lacks one: a routed call has all three.
    /// If routing ever picks other values, this must pick the same ones.
    fn of(headers: &HeaderMap, ttl: Option<Duration>) -> Option<TimeoutInfo> {
        Some(TimeoutInfo {
            procedure: headers.get(RPC_PROCEDURE)?.clone(),
            service: headers.get(RPC_SERVICE)?.clone(),
            caller: headers.get(RPC_CALLER)?.clone(),
            ttl: ttl?,
        })
    }

    fn error(&self) -> Error {
        // Checked to be UTF-8 by `route`.
        fn text(v: &HeaderValue) -> std::borrow::Cow<'_, str> {
            String::from_utf8_lossy(v.as_bytes())
        }
        Error::deadline_exceeded(format!(
            "call to procedure {:?} of service {:?} from caller {:?} timed out after {}",
            text(&self.procedure),
            text(&self.service),
            text(&self.caller),
            wire::go_duration(self.ttl)
        ))
    }
}

/// The error of a call that passed its deadline.
fn expired(timeout: Option<&TimeoutInfo>) -> Error {
    match timeout {
        Some(info) => info.error(),
        None => Error::deadline_exceeded("the handler passed the call's deadline"),
    }
}

/// Runs a handler future under the call's deadline (see [`run_handler`]).
async fn run<T>(
    deadline: Option<Instant>,
    timeout: Option<&TimeoutInfo>,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    run_handler(deadline, call, || expired(timeout)).await
}

/// How a request body is read: its size limit, and whether the client waits for
/// `100 Continue` (and so has not sent the body).
#[derive(Clone, Copy)]
struct BodyLimit {
    max: usize,
    expect_continue: bool,
}

/// Reads a request body up to `limit.max` bytes. Over the limit, the rest is read and dropped
/// (up to a budget) so the client can read the answer, unless the client waits for
/// `100 Continue` and so has not sent the body. The body is borrowed, so the request stays where
/// it is.
async fn read_body(body: &mut Incoming, limit: BodyLimit) -> Result<Bytes> {
    read_body_noting(body, limit, &mut false).await
}

/// [`read_body`], noting in `waited` whether the body was not all there yet, so that reading it
/// took time.
async fn read_body_noting(
    body: &mut Incoming,
    limit: BodyLimit,
    waited: &mut bool,
) -> Result<Bytes> {
    let BodyLimit {
        max: limit,
        expect_continue,
    } = limit;
    let declared = http_body::Body::size_hint(body).exact();
    if let Some(len) = declared
        && len > limit as u64
    {
        if !expect_continue && len <= (limit + DRAIN_BUDGET) as u64 {
            drain(body).await;
        }
        return Err(too_large(
            "request body",
            usize::try_from(len).unwrap_or(usize::MAX),
            limit,
        ));
    }
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(frame) = next_frame(body, waited).await {
        let frame = frame
            .map_err(|e| Error::invalid_argument(format!("cannot read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        total += data.len();
        if total > limit {
            drain(body).await;
            return Err(Error::resource_exhausted(format!(
                "request body exceeds the limit of {limit} bytes"
            )));
        }
        match (&mut first, &mut joined) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let hint = declared.map_or(0, |n| n as usize);
                let mut buf = BytesMut::with_capacity(hint.max(f.len() + data.len()));
                buf.extend_from_slice(f);
                buf.extend_from_slice(&data);
                joined = Some(buf);
            }
            (_, Some(buf)) => buf.extend_from_slice(&data),
        }
        // A body whose declared length has all arrived (HTTP/1) or whose stream has ended
        // (HTTP/2) has nothing more to give: it is not polled again only to say so.
        if http_body::Body::is_end_stream(body) {
            break;
        }
    }
    Ok(joined.map(BytesMut::freeze).or(first).unwrap_or_default())
}

/// The body's next frame, as `BodyExt::frame` gives it, noting in `waited` whether it had to
/// wait for it.
fn next_frame<'a>(
    body: &'a mut Incoming,
    waited: &'a mut bool,
) -> impl Future<Output = Option<std::result::Result<Frame<Bytes>, hyper::Error>>> + 'a {
    std::future::poll_fn(move |cx| {
        let poll = http_body::Body::poll_frame(Pin::new(&mut *body), cx);
        *waited |= poll.is_pending();
        poll
    })
}

async fn drain(body: &mut Incoming) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut read = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, Bytes::len);
            if read > DRAIN_BUDGET {
                break;
            }
        }
    })
    .await;
}

/// The largest request header map an answer is written into: what a map with 32 index slots
/// holds. hyper keeps an HTTP/1 answer's map for the connection's next request, for as long as
/// the connection lives, so a map grown by one request with many headers (hyper allows 100) is
/// not kept: the answer gets a new map of [`H1_SUCCESS_HEADER_CAPACITY`] instead, as it did
/// before maps were reused.
const REUSED_HEADER_CAPACITY: usize = 24;

/// The header map for an answer that will hold `needed` headers: the request's map (`spare`),
/// emptied, which keeps its memory, unless it is larger than [`REUSED_HEADER_CAPACITY`]; with
/// room for at least `needed` headers, and over HTTP/1 at least [`H1_SUCCESS_HEADER_CAPACITY`].
/// Only a map too small or too large allocates.
fn answer_headers(mut spare: HeaderMap, needed: usize, version: Version) -> Result<HeaderMap> {
    let capacity = if version <= Version::HTTP_11 {
        needed.max(H1_SUCCESS_HEADER_CAPACITY)
    } else {
        needed
    };
    if spare.capacity() > REUSED_HEADER_CAPACITY {
        return header_limit::header_map(capacity);
    }
    spare.clear();
    header_limit::reserve(&mut spare, capacity)?;
    Ok(spare)
}

/// The three headers of a unary success, in `spare` (the request's map, emptied) with room for
/// `extra` more (see [`answer_headers`]).
fn success_headers(
    spare: HeaderMap,
    service: &HeaderValue,
    encoding: Encoding,
    extra: usize,
    version: Version,
) -> Result<HeaderMap> {
    let mut headers = answer_headers(spare, 3 + extra, version)?;
    headers.insert(RPC_STATUS, wire::SUCCESS);
    headers.insert(RPC_SERVICE, service.clone());
    headers.insert(CONTENT_TYPE, wire::content_type(encoding));
    Ok(headers)
}

/// The answer when a handler's response metadata cannot be sent (a header that is not HTTP, too
/// many headers): `internal`, naming what was wrong.
fn bad_handler_response(shared: &Shared, err: &Error, both: bool) -> http::Response<Body> {
    let error = Error::internal(format!("the handler's response: {}", err.message()));
    error_response(shared, &error, both)
}

/// A unary success: `Rpc-Status`, `Rpc-Service`, `Content-Type` and the handler's headers and
/// trailers, written into `spare`, the request's header map (see [`answer_headers`]).
fn success(
    shared: &Shared,
    answer: Response<Bytes>,
    spare: HeaderMap,
    encoding: Encoding,
    both: bool,
    version: Version,
) -> http::Response<Body> {
    let (meta, body) = answer.into_parts();
    let encoding = meta.encoding.unwrap_or(encoding);
    let extra = meta.headers.len() + meta.trailers.len();
    let written = success_headers(spare, &shared.service, encoding, extra, version);
    let written = written.and_then(|mut h| {
        wire::write_app_headers(&meta.headers, &mut h)?;
        wire::write_app_headers(&meta.trailers, &mut h)?;
        Ok(h)
    });
    match written {
        Ok(headers) => response(StatusCode::OK, headers, Body::full(body)),
        Err(err) => bad_handler_response(shared, &err, both),
    }
}

/// A oneway call: the body is read under the call's deadline, the handler runs on a task of its
/// own, and the answer goes out at once.
async fn oneway(
    shared: &Shared,
    call: Routed,
    mut request: http::Request<Incoming>,
    limit: BodyLimit,
    both: bool,
    guard: InFlightGuard,
) -> http::Response<Body> {
    let Routed {
        spec,
        meta,
        timeout,
        ..
    } = call;
    let Pipeline::Oneway(h) = spec.pipeline() else {
        let error = Error::internal("routed a streaming procedure as unary");
        return error_response(shared, &error, both);
    };
    let version = request.version();
    let deadline = meta.deadline;
    let read = read_body(request.body_mut(), limit);
    let body = match run(deadline, timeout.as_ref(), read).await {
        Ok(body) => body,
        Err(error) => return close_after(error_response(shared, &error, both), version),
    };
    let procedure = meta.procedure.clone();
    let h = h.clone();
    tokio::spawn(async move {
        let _guard = guard;
        // Called inside `run`, so a handler that panics while it builds its future is caught.
        let call = async { h.invoke_inline(Request::new(meta, body)).await };
        if let Err(err) = run(None, None, call).await {
            tracing::warn!(%procedure, error = %err, "oneway handler failed");
        }
    });
    let spare = std::mem::take(request.headers_mut());
    // Two headers fit any map: the fallback is never taken.
    let mut headers = answer_headers(spare, 2, version).unwrap_or_default();
    headers.insert(RPC_STATUS, wire::SUCCESS);
    headers.insert(RPC_SERVICE, shared.service.clone());
    response(StatusCode::OK, headers, Body::empty())
}

async fn server_stream(
    shared: &Shared,
    call: Routed,
    mut request: http::Request<Incoming>,
    limit: BodyLimit,
    both: bool,
    guard: InFlightGuard,
) -> http::Response<Body> {
    let Routed {
        spec,
        meta,
        timeout,
        ..
    } = call;
    let Pipeline::ServerStream(h) = spec.pipeline() else {
        let error = Error::internal("routed a procedure that is not a server stream as SSE");
        return error_response(shared, &error, both);
    };
    let version = request.version();
    let deadline = meta.deadline;
    let encoding = meta.encoding;
    let read = read_body(request.body_mut(), limit);
    let body = match run(deadline, timeout.as_ref(), read).await {
        Ok(body) => body,
        Err(error) => return close_after(error_response(shared, &error, both), version),
    };
    // Called inside `run`, so a handler that panics while it builds its future is caught too.
    let call = async { h.invoke_inline(Request::new(meta, body)).await };
    let (meta, stream) = match run(deadline, timeout.as_ref(), call).await {
        Ok(response) => response.into_parts(),
        Err(error) => return error_response(shared, &error, both),
    };
    let encoding = meta.encoding.unwrap_or(encoding);
    let mut headers = match header_limit::header_map(5 + meta.headers.len()) {
        Ok(headers) => headers,
        Err(err) => return bad_handler_response(shared, &err, both),
    };
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    headers.insert(RPC_SERVICE, shared.service.clone());
    headers.insert(RPC_ENCODING, HeaderValue::from_static(encoding.as_str()));
    if let Err(err) = wire::write_app_headers(&meta.headers, &mut headers) {
        return bad_handler_response(shared, &err, both);
    }
    let stream = with_deadline(stream, deadline, "the handler's stream");
    let events = sse_events(
        stream,
        encoding,
        meta.trailers,
        shared.config.max_frame_bytes,
        timeout,
    );
    response(
        StatusCode::OK,
        headers,
        Body::stream(Box::pin(events), guard),
    )
}

/// The handler's messages as SSE events, ending with `complete` or `error`. The client going
/// away drops this stream, and with it the handler's.
fn sse_events(
    stream: ByteStream,
    encoding: Encoding,
    trailers: Headers,
    limit: usize,
    timeout: Option<TimeoutInfo>,
) -> impl Stream<Item = Bytes> + Send + 'static {
    futures::stream::unfold(Some((stream, trailers)), move |state| {
        let timeout = timeout.clone();
        async move {
            let (mut stream, trailers) = state?;
            let event = match AssertUnwindSafe(stream.next()).catch_unwind().await {
                Ok(Some(Ok(message))) if message.len() > limit => {
                    sse::error_event(&too_large("response message", message.len(), limit))
                }
                Ok(Some(Ok(message))) => {
                    return Some((
                        sse::data_event(encoding, &message),
                        Some((stream, trailers)),
                    ));
                }
                Ok(Some(Err(error))) => {
                    sse::error_event(&deadline_message(error, timeout.as_ref()))
                }
                Ok(None) => sse::complete_event(encoding, &trailers),
                Err(_) => sse::error_event(&Error::internal("the handler's stream panicked")),
            };
            Some((event, None))
        }
    })
}

/// The stream deadline error with yarpc-go's message, when there is one to give.
fn deadline_message(error: Error, timeout: Option<&TimeoutInfo>) -> Error {
    match timeout {
        Some(timeout) if error.code() == Code::DeadlineExceeded => timeout.error(),
        _ => error,
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket

type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// The tungstenite limits for a frame limit: generous, so that our own check (which answers with
/// an error frame) sees over-limit frames first.
pub(crate) fn ws_config(limit: usize) -> WebSocketConfig {
    let cap = limit.saturating_mul(2).saturating_add(1024);
    WebSocketConfig::default()
        .max_message_size(Some(cap))
        .max_frame_size(Some(cap))
}

fn websocket(
    shared: &Arc<Shared>,
    call: Routed,
    mut request: http::Request<Incoming>,
    both: bool,
    guard: InFlightGuard,
) -> http::Response<Body> {
    let Routed {
        spec,
        meta,
        timeout,
        ..
    } = call;
    let headers = request.headers();
    if request.version() != Version::HTTP_11 {
        let error = Error::invalid_argument(
            "WebSocket calls need HTTP/1.1 (an Upgrade request); this request is not HTTP/1.1",
        );
        return error_response(shared, &error, both);
    }
    if headers
        .get(SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        let error = Error::invalid_argument("WebSocket upgrade needs Sec-WebSocket-Version: 13");
        let mut response = error_response(shared, &error, both);
        response
            .headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return response;
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        let error = Error::invalid_argument("WebSocket upgrade without Sec-WebSocket-Key");
        return error_response(shared, &error, both);
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let Ok(accept) = HeaderValue::from_str(&accept) else {
        return error_response(shared, &Error::internal("bad WebSocket accept key"), both);
    };
    let upgrade = hyper::upgrade::on(&mut request);
    let service = shared.service.clone();
    let shared = shared.clone();
    tokio::spawn(async move {
        let _guard = guard;
        match upgrade.await {
            Ok(upgraded) => {
                let config = ws_config(shared.config.max_frame_bytes);
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                serve_ws(&shared, ws, spec, meta, timeout).await;
            }
            Err(err) => tracing::debug!(error = %err, "WebSocket upgrade failed"),
        }
    });
    let mut headers = HeaderMap::with_capacity(4);
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    headers.insert(RPC_SERVICE, service);
    response(StatusCode::SWITCHING_PROTOCOLS, headers, Body::empty())
}

/// How the request side of a WebSocket call ended, when that ends the call.
enum ReadEnd {
    /// The client closed the socket or went away: the call is cancelled.
    Gone,
    /// The client broke the protocol: the call ends with this error.
    Failed(Error),
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn serve_ws(
    shared: &Shared,
    ws: Ws,
    spec: Arc<ProcedureSpec>,
    meta: RequestMeta,
    timeout: Option<TimeoutInfo>,
) {
    let limit = shared.config.max_frame_bytes;
    let (mut sink, stream) = ws.split();
    let (requests_tx, requests_rx) = mpsc::channel(REQUEST_BUFFER);
    let (ended_tx, mut ended) = oneshot::channel();
    let _reader = AbortOnDrop(tokio::spawn(read_requests(
        stream,
        requests_tx,
        ended_tx,
        limit,
    )));
    let (frames_tx, mut frames) = mpsc::channel::<Bytes>(1);
    let requests = Streaming::new(ReceiverStream::new(requests_rx));
    let producer = respond(spec, meta, timeout, requests, frames_tx, limit);
    tokio::pin!(producer);
    let mut producing = true;
    let mut kill = shared.kill.subscribe();
    loop {
        tokio::select! {
            biased;
            end = &mut ended => {
                match end {
                    Ok(ReadEnd::Failed(error)) => {
                        let code = if error.code() == Code::ResourceExhausted {
                            CloseCode::Size
                        } else {
                            CloseCode::Protocol
                        };
                        fail(&mut sink, &error, code).await;
                        return;
                    }
                    // The client went away: drop the handler (cancelling it).
                    Ok(ReadEnd::Gone) | Err(_) => return,
                }
            }
            _ = kill.changed() => {
                let error = Error::unavailable("the server stopped before the call finished");
                fail(&mut sink, &error, CloseCode::Away).await;
                return;
            }
            () = &mut producer, if producing => producing = false,
            frame = frames.recv() => match frame {
                Some(frame) => {
                    if sink.send(Message::Binary(frame)).await.is_err() {
                        return;
                    }
                }
                None => {
                    // Everything was sent: close, and give the client a moment to reply.
                    let _ = sink.send(close_message(CloseCode::Normal, "")).await;
                    let _ = tokio::time::timeout(CLOSE_WAIT, &mut ended).await;
                    return;
                }
            },
        }
    }
}

fn close_message(code: CloseCode, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Ends a call with an error frame and a close.
async fn fail(sink: &mut SplitSink<Ws, Message>, error: &Error, code: CloseCode) {
    let payload = frame::error_payload(error);
    let _ = sink
        .send(Message::Binary(frame::encode(
            FrameType::ResponseError,
            &payload,
        )))
        .await;
    let _ = sink.send(close_message(code, "")).await;
}

/// Reads the client's frames into the handler's request stream until the client half-closes
/// (then keeps watching for it to go away), fails the protocol, or disconnects.
async fn read_requests(
    mut stream: SplitStream<Ws>,
    requests: mpsc::Sender<Result<Bytes>>,
    ended: oneshot::Sender<ReadEnd>,
    limit: usize,
) {
    let mut requests = Some(requests);
    let end = loop {
        let message = match stream.next().await {
            None => break ReadEnd::Gone,
            Some(Err(tungstenite::Error::Capacity(err))) => {
                break ReadEnd::Failed(Error::resource_exhausted(format!(
                    "WebSocket frame over the limit of {limit} bytes: {err}"
                )));
            }
            Some(Err(_)) => break ReadEnd::Gone,
            Some(Ok(message)) => message,
        };
        let bytes = match message {
            Message::Binary(bytes) => bytes,
            Message::Text(_) => {
                break ReadEnd::Failed(Error::invalid_argument(
                    "text WebSocket messages are not part of the protocol: send binary frames",
                ));
            }
            Message::Close(_) => break ReadEnd::Gone,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        let (kind, payload) = match frame::decode(bytes, limit) {
            Ok(decoded) => decoded,
            Err(error) => {
                if let Some(tx) = requests.take() {
                    let _ = tx.try_send(Err(error.clone()));
                }
                break ReadEnd::Failed(error);
            }
        };
        match (kind, &requests) {
            (FrameType::RequestData, Some(tx)) => {
                // A handler that stopped reading drops the receiver; keep watching the socket.
                let _ = tx.send(Ok(payload)).await;
            }
            (FrameType::RequestComplete, Some(_)) => requests = None,
            (FrameType::RequestError, Some(tx)) => {
                let _ = tx.send(Err(frame::parse_error(&payload))).await;
                requests = None;
            }
            (kind, _) => {
                let error = Error::invalid_argument(format!(
                    "unexpected WebSocket frame {kind:?} ({:#04x}) from the client{}",
                    kind as u8,
                    if requests.is_none() {
                        " after its request stream ended"
                    } else {
                        ""
                    }
                ));
                if let Some(tx) = requests.take() {
                    let _ = tx.try_send(Err(error.clone()));
                }
                break ReadEnd::Failed(error);
            }
        }
    };
    if let (ReadEnd::Gone, Some(tx)) = (&end, requests.take()) {
        let _ = tx.try_send(Err(Error::cancelled(
            "the client closed the WebSocket before completing its requests",
        )));
    }
    let _ = ended.send(end);
}

/// Runs the handler and turns its answer into frames.
async fn respond(
    spec: Arc<ProcedureSpec>,
    meta: RequestMeta,
    timeout: Option<TimeoutInfo>,
    requests: ByteStream,
    frames: mpsc::Sender<Bytes>,
    limit: usize,
) {
    let deadline = meta.deadline;
    let encoding = meta.encoding;
    let send = |kind: FrameType, payload: &[u8]| frames.send(frame::encode(kind, payload));
    let send_error = |error: &Error| send(FrameType::ResponseError, &frame::error_payload(error));
    match spec.pipeline() {
        Pipeline::ClientStream(h) => {
            let call = async { h.invoke_inline(Request::new(meta, requests)).await };
            let (meta, body) = match run(deadline, timeout.as_ref(), call).await {
                Ok(response) => response.into_parts(),
                Err(error) => {
                    let _ = send_error(&error).await;
                    return;
                }
            };
            if body.len() > limit {
                let _ = send_error(&too_large("response message", body.len(), limit)).await;
                return;
            }
            let encoding = meta.encoding.unwrap_or(encoding);
            let _ = async {
                send(
                    FrameType::ResponseHeaders,
                    &frame::headers_payload(&meta.headers),
                )
                .await?;
                send(FrameType::ResponseData, &body).await?;
                let complete = frame::complete_payload(encoding, &meta.trailers);
                send(FrameType::ResponseComplete, &complete).await
            }
            .await;
        }
        Pipeline::Duplex(h) => {
            let call = async { h.invoke_inline(Request::new(meta, requests)).await };
            let (meta, stream) = match run(deadline, timeout.as_ref(), call).await {
                Ok(response) => response.into_parts(),
                Err(error) => {
                    let _ = send_error(&error).await;
                    return;
                }
            };
            let encoding = meta.encoding.unwrap_or(encoding);
            let headers = frame::headers_payload(&meta.headers);
            if send(FrameType::ResponseHeaders, &headers).await.is_err() {
                return;
            }
            let mut stream = with_deadline(stream, deadline, "the handler's stream");
            loop {
                let error = match AssertUnwindSafe(stream.next()).catch_unwind().await {
                    Ok(Some(Ok(message))) if message.len() > limit => {
                        too_large("response message", message.len(), limit)
                    }
                    Ok(Some(Ok(message))) => {
                        if send(FrameType::ResponseData, &message).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Ok(Some(Err(error))) => deadline_message(error, timeout.as_ref()),
                    Ok(None) => {
                        let complete = frame::complete_payload(encoding, &meta.trailers);
                        let _ = send(FrameType::ResponseComplete, &complete).await;
                        return;
                    }
                    Err(_) => Error::internal("the handler's stream panicked"),
                };
                let _ = send_error(&error).await;
                return;
            }
        }
        _ => {
            let error = Error::internal("routed a procedure that is not a stream as a WebSocket");
            let _ = send_error(&error).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::http::wire::{
        CONTEXT_TTL_MS, RPC_ACCEPTS_BOTH, RPC_DEADLINE, RPC_TTL_MS, header_bytes, read_ttl,
    };

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ttl_text(ttl: Ttl) -> String {
        match ttl {
            Ttl::Missing => "missing".to_owned(),
            Ttl::Within(d) => format!("{d:?}"),
            Ttl::Invalid(m) => m,
        }
    }

    /// The one pass finds what `HeaderMap::get` (the first value of each name),
    /// `read_app_headers`, `header_bytes` and `read_ttl` find.
    #[test]
    fn scan_agrees_with_lookups_by_name() {
        let headers = map(&[
            ("rpc-service", "svc"),
            ("rpc-procedure", "proc"),
            ("rpc-procedure", "second"),
            ("rpc-caller", "me"),
            ("rpc-encoding", "json"),
            ("rpc-ttl-ms", "70"),
            ("context-ttl-ms", "50"),
            ("rpc-deadline", "2030-01-02T03:04:05Z"),
            ("rpc-shard-key", "shard"),
            ("rpc-routing-key", "rk"),
            ("rpc-routing-delegate", "rd"),
            ("rpc-caller-procedure", "cp"),
            ("rpc-accepts-both-response-error", "TRUE"),
            ("rpc-header-", "empty key"),
            ("rpc-header-Trace-Me", "1"),
            ("rpc-unknown", "x"),
            ("traceparent", "00-abc"),
            ("expect", "100-Continue"),
            ("upgrade", "h2c"),
            ("upgrade", "WebSocket"),
            ("accept", "application/json, text/event-stream;q=0.9"),
            ("host", "example"),
        ]);
        let scan = Scan::of(&headers);
        for (found, name) in [
            (scan.service, &RPC_SERVICE),
            (scan.procedure, &RPC_PROCEDURE),
            (scan.caller, &RPC_CALLER),
            (scan.encoding, &RPC_ENCODING),
            (scan.context_ttl, &CONTEXT_TTL_MS),
            (scan.rpc_ttl, &RPC_TTL_MS),
            (scan.rpc_deadline, &RPC_DEADLINE),
            (scan.shard_key, &RPC_SHARD_KEY),
            (scan.routing_key, &RPC_ROUTING_KEY),
            (scan.routing_delegate, &RPC_ROUTING_DELEGATE),
            (scan.caller_procedure, &RPC_CALLER_PROCEDURE),
            (scan.accepts_both, &RPC_ACCEPTS_BOTH),
            (scan.expect, &http::header::EXPECT),
        ] {
            assert_eq!(found, headers.get(name), "{name}");
            assert!(found.is_some(), "{name}");
        }
        assert_eq!(scan.procedure.unwrap(), "proc");
        assert!(scan.both() && scan.expect_continue());
        assert!(scan.websocket && scan.event_stream);
        assert_eq!(scan.bytes, header_bytes(&headers));
        let mut app = Headers::new();
        wire::read_app_headers(&headers, &mut app);
        assert_eq!(scan.app, app);
        assert_eq!(app.len(), 2);
        assert_eq!(
            ttl_text(wire::ttl_of(
                [scan.context_ttl, scan.rpc_ttl],
                scan.rpc_deadline,
                "s",
                "p"
            )),
            ttl_text(read_ttl(&headers, "s", "p"))
        );
    }

    #[test]
    fn scan_of_a_plain_request() {
        let headers = map(&[
            ("rpc-service", "svc"),
            ("accept", "text/html"),
            ("upgrade", "h2c"),
        ]);
        let scan = Scan::of(&headers);
        assert!(!scan.websocket && !scan.event_stream && !scan.both());
        assert!(!scan.expect_continue());
        assert!(scan.procedure.is_none() && scan.app.is_empty());
        assert_eq!(
            classify(&Method::PUT, &scan).unwrap_err().message(),
            "request method was PUT but only POST is allowed"
        );
        assert_eq!(classify(&Method::POST, &scan).unwrap(), Mode::Plain);
    }

    /// A success is written into the request's map, emptied: none of the request's headers is
    /// left in it, and its memory is kept (no allocation). Over HTTP/1 it has room for a
    /// typical next request's headers (hyper parses the connection's next request into it).
    #[test]
    fn success_headers_reuse_the_request_map_and_keep_none_of_its_headers() {
        let service = HeaderValue::from_static("svc");
        let mut request = HeaderMap::with_capacity(20);
        for name in [
            "rpc-caller",
            "rpc-procedure",
            "x-secret",
            "content-type",
            "host",
        ] {
            request.append(HeaderName::from_static(name), HeaderValue::from_static("v"));
        }
        request.append(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let capacity = request.capacity();
        let h1 = success_headers(request, &service, Encoding::Raw, 0, Version::HTTP_11).unwrap();
        assert_eq!(h1.len(), 3);
        assert_eq!(h1.keys_len(), 3);
        assert_eq!(h1["rpc-status"], "success");
        assert_eq!(h1["rpc-service"], "svc");
        assert_eq!(h1.get_all(CONTENT_TYPE).iter().count(), 1);
        assert_eq!(h1[CONTENT_TYPE], "application/octet-stream");
        assert_eq!(h1.capacity(), capacity, "the request map's memory is kept");

        // A small request map grows to the HTTP/1 reserve once; emptied as hyper's encoder
        // leaves it and reserved for a request with that many headers, as hyper's parser does,
        // it does not grow again.
        let h1 = success_headers(
            HeaderMap::new(),
            &service,
            Encoding::Raw,
            0,
            Version::HTTP_11,
        )
        .unwrap();
        assert!(
            h1.capacity() >= H1_SUCCESS_HEADER_CAPACITY,
            "{}",
            h1.capacity()
        );
        let mut reused = h1;
        reused.drain().for_each(drop);
        let before = reused.capacity();
        reused.reserve(H1_SUCCESS_HEADER_CAPACITY);
        assert_eq!(reused.capacity(), before);

        // A map grown by a request with many headers is not kept (hyper would keep it for the
        // connection's life): the answer gets a map of the usual size.
        let mut large = HeaderMap::new();
        for i in 0..40 {
            large.append(
                HeaderName::try_from(format!("x-{i}")).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        assert!(large.capacity() > REUSED_HEADER_CAPACITY);
        let h1 = success_headers(large, &service, Encoding::Raw, 0, Version::HTTP_11).unwrap();
        assert_eq!(h1.len(), 3);
        assert!(
            (H1_SUCCESS_HEADER_CAPACITY..=REUSED_HEADER_CAPACITY).contains(&h1.capacity()),
            "{}",
            h1.capacity()
        );
        // A handler's many headers still get the room they need.
        let mut large = HeaderMap::new();
        large.reserve(100);
        let many = success_headers(large, &service, Encoding::Raw, 60, Version::HTTP_11).unwrap();
        assert!(many.capacity() >= 63, "{}", many.capacity());

        // Over HTTP/2 a map is sized for what it holds.
        let h2 = success_headers(
            HeaderMap::new(),
            &service,
            Encoding::Json,
            2,
            Version::HTTP_2,
        )
        .unwrap();
        assert_eq!(h2[CONTENT_TYPE], "application/json");
        assert!(
            h2.capacity() < H1_SUCCESS_HEADER_CAPACITY,
            "{}",
            h2.capacity()
        );
    }

    #[test]
    fn timeout_message_names_the_call() {
        let info = TimeoutInfo {
            procedure: HeaderValue::from_static("proc"),
            service: HeaderValue::from_static("svc"),
            caller: HeaderValue::from_static("me"),
            ttl: Duration::from_secs(1),
        };
        let error = expired(Some(&info));
        assert_eq!(error.code(), Code::DeadlineExceeded);
        assert_eq!(
            error.message(),
            r#"call to procedure "proc" of service "svc" from caller "me" timed out after 1s"#
        );
        let other = Error::internal("x");
        assert_eq!(deadline_message(other, Some(&info)).code(), Code::Internal);
    }
}
