//! The gRPC inbound: an HTTP/2 (h2c) server that routes `/<service>/<method>` to procedures.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http::StatusCode;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::body::Body;

use super::DEFAULT_MAX_MESSAGE_SIZE;
use super::codec::BytesCodec;
use super::metadata::{
    self, content_type_encoding, from_status, to_metadata, to_status, too_large,
};
use super::reply::{BoxedReply, Reply};
use crate::dispatcher::{Inbound, InboundContext};
use crate::error::{Error, Result};
use crate::meta::{Request, RequestMeta, Response, Transport};
use crate::middleware::Pipeline;
use crate::name::{LastName, Name};
use crate::procedure::{BoxFuture, ProcedureSpec, procedure_from_grpc_path};
use crate::stream::{ByteStream, Streaming, with_deadline};
use crate::transport::drain::{GuardedBody, InFlight, InFlightGuard};
use crate::transport::handler_call::{Caught, invoke_pipeline, run_handler, run_pinned};
use crate::transport::server_task::ServerTask;

/// Serves a dispatcher's procedures over gRPC (h2c).
///
/// Defaults: 4 MiB message limit each way, a 10 s drain timeout on stop.
///
/// Stopping drains in two phases: first the port stays open and every new call is answered
/// `unavailable` (with `retry-after: 1` metadata) while the calls in flight finish, up to the
/// drain timeout; then the inbound closes its port, sends GOAWAY and closes its connections.
#[derive(Debug)]
pub struct GrpcInbound {
    config: Arc<Config>,
    task: ServerTask,
}

#[derive(Debug)]
struct Config {
    addr: SocketAddr,
    max_recv: usize,
    max_send: usize,
    drain_timeout: Duration,
}

impl GrpcInbound {
    /// An inbound that will listen on `addr` (port 0 picks a free port).
    pub fn new(addr: SocketAddr) -> Self {
        GrpcInbound {
            config: Arc::new(Config {
                addr,
                max_recv: DEFAULT_MAX_MESSAGE_SIZE,
                max_send: DEFAULT_MAX_MESSAGE_SIZE,
                drain_timeout: Duration::from_secs(10),
            }),
            task: ServerTask::new("gRPC"),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::get_mut(&mut self.config).expect("configured before start")
    }

    /// The largest request message accepted, in bytes.
    pub fn max_recv_message_size(mut self, limit: usize) -> Self {
        self.config_mut().max_recv = limit;
        self
    }

    /// The largest response message sent, in bytes.
    pub fn max_send_message_size(mut self, limit: usize) -> Self {
        self.config_mut().max_send = limit;
        self
    }

    /// How long `stop` waits for in-flight calls before closing connections anyway.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().drain_timeout = timeout;
        self
    }
}

impl Inbound for GrpcInbound {
    fn transport(&self) -> Transport {
        Transport::Grpc
    }

    fn start(&self, context: Arc<InboundContext>) -> BoxFuture<Result<SocketAddr>> {
        let config = self.config.clone();
        let task = self.task.clone();
        Box::pin(async move {
            let (listener, addr) = task.bind(config.addr).await?;
            task.spawn(|shutdown| accept_loop(listener, context, config, shutdown));
            Ok(addr)
        })
    }

    fn stop(&self) -> BoxFuture<Result<()>> {
        self.task.stop()
    }
}

/// What the calls of one connection share.
struct Connection {
    context: Arc<InboundContext>,
    config: Arc<Config>,
    drain: Arc<Drain>,
    /// The caller the connection's last call named.
    caller: LastName,
}

/// Calls in flight, and whether the inbound itself is stopping.
struct Drain {
    in_flight: Arc<InFlight>,
    stopping: AtomicBool,
}

async fn accept_loop(
    listener: TcpListener,
    context: Arc<InboundContext>,
    config: Arc<Config>,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    let drain = Arc::new(Drain {
        in_flight: InFlight::new(),
        stopping: AtomicBool::new(false),
    });
    // Phase 1 of a stop: keep serving, answer new calls `unavailable`, until the calls in
    // flight are done or the drain timeout passes.
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            changed = shutdown.changed(), if drain_deadline.is_none() => {
                if changed.is_err() || *shutdown.borrow() {
                    drain.stopping.store(true, Ordering::Release);
                    drain_deadline = Some(tokio::time::Instant::now() + config.drain_timeout);
                }
                continue;
            }
            () = drain.in_flight.idle(), if drain_deadline.is_some() => break,
            () = sleep_until(drain_deadline) => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(err) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!(error = %err, "gRPC inbound failed to accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // What the connection's calls share: one reference count per call, not one per part.
        let connection = Arc::new(Connection {
            context: context.clone(),
            config: config.clone(),
            drain: drain.clone(),
            caller: LastName::default(),
        });
        let service = hyper::service::service_fn(move |request| {
            // Boxed: hyper spawns a task per HTTP/2 stream, and a call's future is several KiB;
            // a task holding a pointer is moved cheaply, where the future itself would be copied
            // into the task and again on each move.
            Box::pin(serve(connection.clone(), request))
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "gRPC connection ended with an error");
            }
        });
        while connections.try_join_next().is_some() {}
    }
    // Phase 2: close the port, GOAWAY, close the connections.
    drop(listener);
    let left = drain_deadline
        .map(|d| d.saturating_duration_since(tokio::time::Instant::now()))
        .unwrap_or(config.drain_timeout)
        .max(Duration::from_millis(100));
    if tokio::time::timeout(left, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout = ?config.drain_timeout,
            "gRPC inbound drain timed out; closing the remaining connections"
        );
    }
    connections.shutdown().await;
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => futures::future::pending().await,
    }
}

/// Serves one call, counted as in flight until its response body has been sent; while the
/// inbound drains, answers `unavailable` instead.
///
/// A function returning an `async move` block rather than an `async fn`: an `async fn` copies
/// its arguments into locals when it starts, and the request is 264 bytes.
#[allow(clippy::manual_async_fn)]
fn serve(
    connection: Arc<Connection>,
    request: http::Request<Incoming>,
) -> impl Future<Output = Result<http::Response<GuardedBody<Body>>, Infallible>> + Send {
    async move {
        let Connection {
            context,
            config,
            drain,
            caller,
        } = &*connection;
        // Counted before the drain check, so a stop that saw no call in flight sees none start.
        let guard = drain.in_flight.enter();
        if context.is_draining() || drain.stopping.load(Ordering::Acquire) {
            let mut status = to_status(Error::unavailable(format!(
                "service {:?} is draining: retry on another peer",
                context.service()
            )));
            status.metadata_mut().insert(
                "retry-after",
                tonic::metadata::MetadataValue::from_static("1"),
            );
            return Ok(guarded(status.into_http::<Body>(), guard));
        }
        let routed = match route(context, &request, caller) {
            Ok(routed) => routed,
            Err((status, error)) => return Ok(guarded(error_response(status, error), guard)),
        };
        let json = routed.meta.encoding == crate::codec::Encoding::Json;
        let mut grpc =
            tonic::server::Grpc::new(BytesCodec).max_decoding_message_size(config.max_recv);
        let max_send = config.max_send;
        let mut call = Some(routed);
        let service = tower::service_fn(move |request: tonic::Request<tonic::Streaming<Bytes>>| {
            dispatch(call.take(), max_send, request.into_inner())
        });
        let mut response = grpc.streaming(service, request).await;
        // tonic labels every response `application/grpc` (protobuf); JSON bodies say so.
        if json {
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/grpc+json"),
            );
        }
        Ok(guarded(response, guard))
    }
}

/// The response with its body counted as in flight until it has been sent. Handed to hyper as
/// it is: hyper takes any body type, so the guard does not need a box of its own.
fn guarded(
    response: http::Response<Body>,
    guard: InFlightGuard,
) -> http::Response<GuardedBody<Body>> {
    response.map(|body| GuardedBody::new(body, guard))
}

/// A trailers-only gRPC error response.
fn error_response(status: StatusCode, error: Error) -> http::Response<Body> {
    let mut response = to_status(error).into_http::<Body>();
    *response.status_mut() = status;
    response
}

/// A routed call: its procedure and its metadata.
struct Routed {
    spec: Arc<ProcedureSpec>,
    meta: RequestMeta,
}

fn route(
    context: &InboundContext,
    request: &http::Request<Incoming>,
    caller: &LastName,
) -> std::result::Result<Routed, (StatusCode, Error)> {
    let headers = request.headers();
    let content_encoding = match content_type_encoding(headers.get(http::header::CONTENT_TYPE)) {
        Ok(Some(encoding)) => encoding,
        Ok(None) => {
            let got = headers
                .get(http::header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_else(|| "none".to_owned());
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Error::invalid_argument(format!(
                    "content type {got:?} is not gRPC: expected application/grpc"
                )),
            ));
        }
        Err(err) => return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, err)),
    };
    if request.method() != http::Method::POST {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            Error::unimplemented(format!("gRPC calls use POST, not {}", request.method())),
        ));
    }
    let path = request.uri().path();
    let Some((spec, registered)) = context.registry().resolve_grpc_path(path) else {
        let name = procedure_from_grpc_path(path).unwrap_or_else(|| path.to_owned());
        return Err((
            StatusCode::OK,
            Error::unimplemented(format!(
                "unknown procedure {name:?} (gRPC path {path}) for service {:?}",
                context.service()
            )),
        ));
    };
    // The name the path stands for, shared with the registry; a wildcard match names the path's
    // own procedure.
    let procedure = match registered {
        Some(name) => name.clone(),
        None => {
            Name::from(procedure_from_grpc_path(path).unwrap_or_else(|| spec.name().to_owned()))
        }
    };
    let meta = metadata::request_meta(headers, context, procedure, content_encoding, caller)
        .map_err(|e| (StatusCode::OK, e))?;
    if meta.service != context.service() {
        return Err((
            StatusCode::OK,
            Error::unimplemented(format!(
                "unrecognized service name {:?}, available services: {:?}",
                meta.service,
                context.service()
            )),
        ));
    }
    if !spec.accepts(meta.encoding) {
        let accepted: Vec<&str> = spec.encodings().iter().map(|e| e.as_str()).collect();
        return Err((
            StatusCode::OK,
            Error::invalid_argument(format!(
                "procedure {:?} does not accept encoding {}; it accepts {}",
                spec.name(),
                meta.encoding,
                accepted.join(", ")
            )),
        ));
    }
    Ok(Routed {
        spec: spec.clone(),
        meta,
    })
}

/// Runs a handler future under the call's deadline (see [`run_handler`]).
async fn run<T>(deadline: Option<Instant>, call: impl Future<Output = Result<T>>) -> Result<T> {
    run_handler(deadline, call, expired).await
}

/// The request stream as a streaming handler reads it.
fn inbound_stream(stream: tonic::Streaming<Bytes>) -> ByteStream {
    Streaming::new(stream.map(|item| item.map_err(|status| wire_error(&status))))
}

/// The first request message of a call whose handler takes one, read straight from tonic's
/// stream (only a streaming handler needs the boxed [`ByteStream`]).
async fn first_wire_message(requests: &mut tonic::Streaming<Bytes>) -> Result<Bytes> {
    requests
        .message()
        .await
        .map_err(|status| wire_error(&status))?
        .ok_or_else(|| Error::invalid_argument("the request carried no message"))
}

/// An error reading the request. A body that ends inside a frame is the caller's bad input:
/// tonic calls it `internal`, OmniRelay `invalid-argument`.
fn wire_error(status: &tonic::Status) -> Error {
    if status.code() == tonic::Code::Internal && status.message().starts_with("Unexpected EOF") {
        Error::invalid_argument("truncated gRPC frame: the request ended inside a message")
    } else {
        from_status(status)
    }
}

/// The error of a call that passed its deadline.
fn expired() -> Error {
    Error::deadline_exceeded("the handler passed the call's deadline")
}

/// Calls the routed procedure. A unary call runs inline in this future, its handler's future
/// pinned where it is; the other shapes are boxed (one allocation), so that their larger states
/// do not grow every unary call's future. `None` is a second dispatch of one call, which tonic
/// does not make.
#[allow(clippy::manual_async_fn)]
fn dispatch(
    call: Option<Routed>,
    max_send: usize,
    mut body: tonic::Streaming<Bytes>,
) -> impl Future<Output = Result<tonic::Response<Reply>, tonic::Status>> + Send {
    async move {
        let Some(call) = call else {
            return Err(tonic::Status::internal("gRPC call dispatched twice"));
        };
        let deadline = call.meta.deadline;
        let Pipeline::Unary(h) = call.spec.pipeline() else {
            return Box::pin(dispatch_other(call, body, max_send))
                .await
                .map_err(to_status);
        };
        let outcome = {
            // Made where it is pinned (see `Caught`), not moved there.
            let unary = std::pin::pin!(Caught {
                call: async {
                    let body = first_wire_message(&mut body).await?;
                    invoke_pipeline!(h, Request::new(call.meta, body))
                }
            });
            run_pinned(deadline, unary, expired).await
        };
        outcome
            .and_then(|response| single_response(response, max_send))
            .map_err(to_status)
    }
}

/// Calls a procedure that is not unary.
async fn dispatch_other(
    call: Routed,
    mut requests: tonic::Streaming<Bytes>,
    max_send: usize,
) -> Result<tonic::Response<Reply>> {
    let Routed { spec, meta } = call;
    let deadline = meta.deadline;
    match spec.pipeline() {
        Pipeline::Unary(_) => Err(Error::internal("routed a unary procedure as streaming")),
        Pipeline::Oneway(h) => {
            let body = run(deadline, first_wire_message(&mut requests)).await?;
            let procedure = meta.procedure.clone();
            let h = h.clone();
            tokio::spawn(async move {
                // Called inside `run`, so a handler that panics while it builds its future is
                // caught too.
                let call = async { h.invoke_inline(Request::new(meta, body)).await };
                if let Err(err) = run(None, call).await {
                    tracing::warn!(%procedure, error = %err, "oneway handler failed");
                }
            });
            single_response(Response::new(Bytes::new()), max_send)
        }
        Pipeline::ServerStream(h) => {
            let response = run(deadline, async {
                let body = first_wire_message(&mut requests).await?;
                h.invoke_inline(Request::new(meta, body)).await
            })
            .await?;
            stream_response(response, deadline, max_send)
        }
        Pipeline::ClientStream(h) => {
            let call = async {
                h.invoke_inline(Request::new(meta, inbound_stream(requests)))
                    .await
            };
            let response = run(deadline, call).await?;
            single_response(response, max_send)
        }
        Pipeline::Duplex(h) => {
            let call = async {
                h.invoke_inline(Request::new(meta, inbound_stream(requests)))
                    .await
            };
            let response = run(deadline, call).await?;
            stream_response(response, deadline, max_send)
        }
    }
}

/// The trailing item that makes tonic send application trailers with `grpc-status: 0`.
fn trailers_item(trailers: &crate::meta::Headers) -> Result<Option<Result<Bytes, tonic::Status>>> {
    if trailers.is_empty() {
        return Ok(None);
    }
    let metadata = to_metadata(trailers).map_err(|e| Error::internal(e.message().to_owned()))?;
    Ok(Some(Err(tonic::Status::with_metadata(
        tonic::Code::Ok,
        "",
        metadata,
    ))))
}

fn response_with(headers: &crate::meta::Headers, stream: Reply) -> Result<tonic::Response<Reply>> {
    let mut response = tonic::Response::new(stream);
    if !headers.is_empty() {
        *response.metadata_mut() =
            to_metadata(headers).map_err(|e| Error::internal(e.message().to_owned()))?;
    }
    Ok(response)
}

fn single_response(response: Response<Bytes>, max_send: usize) -> Result<tonic::Response<Reply>> {
    let (meta, body) = response.into_parts();
    if body.len() > max_send {
        return Err(too_large("response", body.len(), max_send));
    }
    let trailer = trailers_item(&meta.trailers)?;
    response_with(&meta.headers, Reply::single(body, trailer))
}

fn stream_response(
    response: Response<ByteStream>,
    deadline: Option<Instant>,
    max_send: usize,
) -> Result<tonic::Response<Reply>> {
    let (meta, body) = response.into_parts();
    let trailer = trailers_item(&meta.trailers)?;
    let body = with_deadline(body, deadline, "the handler's stream");
    let stream = AssertUnwindSafe(body)
        .catch_unwind()
        .map(move |item| match item {
            Ok(Ok(message)) if message.len() > max_send => {
                Err(to_status(too_large("response", message.len(), max_send)))
            }
            Ok(Ok(message)) => Ok(message),
            Ok(Err(err)) => Err(to_status(err)),
            Err(_) => Err(to_status(Error::internal("the handler's stream panicked"))),
        })
        .chain(futures::stream::iter(trailer));
    let stream: BoxedReply = Box::pin(stream);
    response_with(&meta.headers, Reply::Stream(stream))
}
