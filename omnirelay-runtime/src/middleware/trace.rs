//! [`TracingMiddleware`]: a `tracing` span per call following the OpenTelemetry RPC semantic
//! conventions, and W3C Trace Context propagation (`traceparent`, `tracestate`) across calls.
//!
//! (The module is called `trace`, not `tracing`, so that it does not shadow the `tracing` crate
//! where it is glob-imported.)
//!
//! # Propagation
//!
//! Inbound, the middleware reads `traceparent` and `tracestate` from the request's headers
//! ([`RequestMeta::headers`]; both transports carry them as plain headers: unprefixed over
//! YARPC-HTTP, plain metadata over gRPC) and continues that trace with a new span id: the
//! caller's span becomes the parent. A request without a valid `traceparent` (absent or
//! malformed) starts a new trace; it is never an error. The handler runs with that
//! [`TraceContext`] as the *current* one ([`current()`]).
//!
//! Outbound, the middleware makes a client span, a child of the current context (so a call a
//! handler makes continues the trace of the request it is handling), and writes the client
//! span's `traceparent` and the trace's `tracestate` into the outgoing request's headers,
//! replacing any already there. Without a current context, a valid `traceparent` the caller put
//! on the request itself is taken as the parent; otherwise the call starts a new trace.
//!
//! New traces are sampled (flag `01`); a continued trace keeps its caller's `sampled` flag.
//! The middleware records spans whatever the flag says: sampling is a subscriber's business.
//!
//! # The current context
//!
//! The current context is a [`tokio::task_local!`], set for the duration of the inner call
//! (for streams, also while the response stream is polled). It flows into everything the
//! handler awaits, but not into tasks it spawns: a task spawned with `tokio::spawn` starts with
//! no context. Carry it explicitly with [`in_current`] (or [`scope`] with a context you hold):
//!
//! ```
//! use omnirelay::middleware::trace;
//!
//! # async fn handler() {
//! // Inside a handler: the spawned task's outbound calls join the request's trace.
//! let task = tokio::spawn(trace::in_current(async move {
//!     // ... client.unary(...).await
//!     trace::current().map(|context| context.trace_id())
//! }));
//! # let _ = task;
//! # }
//! ```
//!
//! # Spans
//!
//! Each call opens one span named `rpc` at `INFO`, entered while the call runs (and while its
//! response stream is polled), with these fields:
//!
//! | field | value |
//! |---|---|
//! | `otel.name` | `<service>/<method>` for a `Service::Method` procedure, else the procedure |
//! | `otel.kind` | `server` inbound, `client` outbound |
//! | `rpc.system` | [`TracingMiddleware::rpc_system`], default `yarpc` |
//! | `rpc.service` | the service called ([`RequestMeta::service`]) |
//! | `rpc.method` | the method part of the procedure (after `::`), else the procedure |
//! | `rpc.transport`, `rpc.encoding`, `rpc.caller` | from the request's metadata |
//! | `trace_id`, `span_id`, `parent_span_id` | this span's W3C ids, lower-case hex; no parent for a new trace |
//! | `otel.status_code` | `ERROR` when the call fails (left empty on success) |
//! | `rpc.error_code`, `rpc.error_message` | the error's code text and message |
//!
//! The field names are the ones the `tracing-opentelemetry` bridge understands (`otel.name`,
//! `otel.kind`, `otel.status_code`). Propagation works without any subscriber: the spans are
//! for observing, the context is what crosses the wire.
//!
//! # Parsing `traceparent` and `tracestate`
//!
//! Following the W3C Trace Context specification:
//!
//! - `version "-" trace-id "-" parent-id "-" trace-flags`, each field lower-case hex of 2, 32,
//!   16 and 2 characters; surrounding whitespace is ignored.
//! - Version `ff` is invalid; version `00` is exactly 55 characters long. A higher (future)
//!   version is read as version `00` from its first 55 characters, and is valid only when it is
//!   exactly that long or the 56th character is `-` (fields this version does not know follow).
//! - An all-zero trace id or parent id is invalid.
//! - Only the `sampled` flag is kept and passed on; other bits are dropped.
//! - `tracestate` is read only beside a valid `traceparent`; an invalid list is dropped whole
//!   (its rules, such as at most 32 members, are `opentelemetry::trace::TraceState`'s).
//!
//! The ids, flags and trace state are the `opentelemetry` API crate's types, but the header
//! parsing is this crate's own (a small private module with its unit tests), not
//! `opentelemetry_sdk`'s `TraceContextPropagator`: that propagator reads ids with
//! `u128::from_str_radix`, so it takes `00-abc-def-01` (ids of the wrong length) or an id
//! starting with `+` as valid, which the specification forbids; it also needs the SDK's `trace`
//! feature (the SDK's span pipeline and `rand` 0.9, about 15 s more to build) and an
//! `opentelemetry::Context` per call.
//!
//! ```
//! use omnirelay::Dispatcher;
//! use omnirelay::middleware::trace::TracingMiddleware;
//!
//! let tracing = TracingMiddleware::new().rpc_system("omnirelay");
//! let dispatcher = Dispatcher::builder("users")
//!     .middleware(tracing.clone())
//!     .outbound_middleware(tracing)
//!     .build()
//!     .unwrap();
//! # let _ = dispatcher;
//! ```

mod w3c;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tracing::{Instrument, Span};

pub use opentelemetry::trace::TraceState;
pub use opentelemetry::{SpanId, TraceFlags, TraceId};

use super::service::RpcService;
use super::stack::{Direction, Middleware, Target};
use crate::error::{Error, Result};
use crate::meta::{Headers, Request, RequestMeta, Response};
use crate::stream::ByteStream;

/// The W3C header carrying the trace id, the caller's span id and the flags.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header carrying vendor-specific trace state.
pub const TRACESTATE: &str = "tracestate";

tokio::task_local! {
    static CURRENT: Option<TraceContext>;
}

/// The trace context of the current inbound call (the handler's server span), or of the
/// outbound call being made (its client span, for outbound middleware inside the tracing
/// middleware). `None` outside any traced call, and in tasks spawned without [`in_current`].
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(Option::clone).ok().flatten()
}

/// Runs `future` with `context` as the current trace context: outbound calls it makes are
/// children of `context`'s span.
pub fn scope<F: Future>(context: TraceContext, future: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(Some(context), future)
}

/// Runs `future` with the context current now (if any) as its current trace context: wrap a
/// future in it before `tokio::spawn`ing it so that the spawned task's calls join the trace.
pub fn in_current<F: Future>(future: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(current(), future)
}

/// A W3C trace context: the trace a span belongs to, the span's id, its parent's id, the flags
/// and the vendors' trace state. Cloning is cheap (the trace state is shared).
#[derive(Clone, Debug, PartialEq)]
pub struct TraceContext {
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: Option<SpanId>,
    flags: TraceFlags,
    state: Option<Arc<State>>,
}

/// A non-empty trace state, with its header form computed once.
#[derive(Debug, PartialEq)]
struct State {
    parsed: TraceState,
    header: Bytes,
}

static NO_STATE: TraceState = TraceState::NONE;

fn random_trace_id() -> TraceId {
    loop {
        let id = fastrand::u128(..);
        if id != 0 {
            return TraceId::from(id);
        }
    }
}

fn random_span_id() -> SpanId {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return SpanId::from(id);
        }
    }
}

impl TraceContext {
    /// The root span of a new trace: random trace and span ids, sampled, no parent, no state.
    pub fn new_root() -> Self {
        TraceContext {
            trace_id: random_trace_id(),
            span_id: random_span_id(),
            parent_span_id: None,
            flags: TraceFlags::SAMPLED,
            state: None,
        }
    }

    /// The remote context a `traceparent` (and optionally `tracestate`) header describes: its
    /// span id is the caller's span. `None` when `traceparent` is not valid (see
    /// [the rules](self#parsing-traceparent-and-tracestate)); an invalid `tracestate` is dropped,
    /// keeping the context.
    pub fn from_w3c(traceparent: &[u8], tracestate: Option<&[u8]>) -> Option<Self> {
        let parent = w3c::parse_traceparent(traceparent)?;
        let state = tracestate
            .and_then(w3c::parse_tracestate)
            .map(|parsed| (parsed.header(), parsed))
            .filter(|(header, _)| !header.is_empty())
            .map(|(header, parsed)| {
                Arc::new(State {
                    parsed,
                    header: Bytes::from(header),
                })
            });
        Some(TraceContext {
            trace_id: parent.trace_id,
            span_id: parent.parent_id,
            parent_span_id: None,
            flags: parent.flags,
            state,
        })
    }

    /// The remote context in a request's `traceparent` and `tracestate` headers, if valid.
    pub fn from_headers(headers: &Headers) -> Option<Self> {
        let traceparent = headers.get(TRACEPARENT)?;
        TraceContext::from_w3c(traceparent, headers.get(TRACESTATE).map(|v| &v[..]))
    }

    /// A child span of this one: the same trace, flags and state, a new span id, this span as
    /// the parent.
    pub fn child(&self) -> Self {
        TraceContext {
            trace_id: self.trace_id,
            span_id: random_span_id(),
            parent_span_id: Some(self.span_id),
            flags: self.flags,
            state: self.state.clone(),
        }
    }

    /// The trace's id.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// This span's id.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The parent span's id: the caller's client span for an inbound call, the server span
    /// making the call for an outbound one; `None` for the root of a trace (and for a remote
    /// context read from headers).
    pub fn parent_span_id(&self) -> Option<SpanId> {
        self.parent_span_id
    }

    /// The trace flags (only `sampled` is kept).
    pub fn flags(&self) -> TraceFlags {
        self.flags
    }

    /// Whether the trace is sampled.
    pub fn is_sampled(&self) -> bool {
        self.flags.is_sampled()
    }

    /// The vendors' trace state (empty when the caller sent none or an invalid one).
    pub fn trace_state(&self) -> &TraceState {
        self.state.as_ref().map_or(&NO_STATE, |s| &s.parsed)
    }

    /// This span as a `traceparent` value: `00-<trace id>-<span id>-<flags>`.
    pub fn traceparent(&self) -> String {
        let bytes = w3c::format_traceparent(self.trace_id, self.span_id, self.flags);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Writes this span's `traceparent` and the trace's `tracestate` into `headers`, replacing
    /// earlier values; an empty state removes `tracestate`.
    pub fn inject(&self, headers: &mut Headers) {
        let traceparent = w3c::format_traceparent(self.trace_id, self.span_id, self.flags);
        headers.insert(TRACEPARENT, Bytes::copy_from_slice(&traceparent));
        match &self.state {
            Some(state) => headers.insert(TRACESTATE, state.header.clone()),
            None => {
                headers.remove(TRACESTATE);
            }
        }
    }
}

/// Traces calls and propagates W3C trace context (see the [module docs](self)). Converts into
/// a [`Middleware`] named `tracing` covering all five shapes, inbound and outbound.
///
/// Defaults: extract incoming context (`true`), inject outgoing context (`true`), `rpc.system`
/// `yarpc`.
#[derive(Clone, Debug)]
pub struct TracingMiddleware {
    extract: bool,
    inject: bool,
    rpc_system: Arc<str>,
}

impl Default for TracingMiddleware {
    fn default() -> Self {
        TracingMiddleware::new()
    }
}

impl TracingMiddleware {
    /// The defaults: extract and inject context, `rpc.system = "yarpc"`.
    pub fn new() -> Self {
        TracingMiddleware {
            extract: true,
            inject: true,
            rpc_system: Arc::from("yarpc"),
        }
    }

    /// Whether inbound calls continue the trace of an incoming `traceparent` (default `true`).
    /// With `false`, every inbound call starts a new trace.
    pub fn extract(mut self, extract: bool) -> Self {
        self.extract = extract;
        self
    }

    /// Whether outbound calls write `traceparent` and `tracestate` (default `true`). With
    /// `false`, the client span is still recorded and the headers are left as the caller set
    /// them.
    pub fn inject(mut self, inject: bool) -> Self {
        self.inject = inject;
        self
    }

    /// The `rpc.system` span field (default `yarpc`).
    pub fn rpc_system(mut self, system: impl Into<Arc<str>>) -> Self {
        self.rpc_system = system.into();
        self
    }
}

/// The options and direction one pipeline traces with.
struct Shared {
    options: Arc<TracingMiddleware>,
    direction: Direction,
}

impl Shared {
    /// The span context of the call `meta` describes; outbound, also writes the headers.
    fn begin(&self, meta: &mut RequestMeta) -> TraceContext {
        let parent = match self.direction {
            Direction::Inbound if self.options.extract => TraceContext::from_headers(&meta.headers),
            Direction::Inbound => None,
            Direction::Outbound => current().or_else(|| TraceContext::from_headers(&meta.headers)),
        };
        let context = parent.map_or_else(TraceContext::new_root, |p| p.child());
        if self.direction == Direction::Outbound && self.options.inject {
            context.inject(&mut meta.headers);
        }
        context
    }

    fn span(&self, meta: &RequestMeta, context: &TraceContext) -> Span {
        let kind = match self.direction {
            Direction::Inbound => "server",
            Direction::Outbound => "client",
        };
        let span = tracing::info_span!(
            "rpc",
            otel.name = %SpanName(&meta.procedure),
            otel.kind = kind,
            rpc.system = %self.options.rpc_system,
            rpc.service = %meta.service,
            rpc.method = method(&meta.procedure),
            rpc.transport = meta.transport.as_str(),
            rpc.encoding = meta.encoding.as_str(),
            rpc.caller = %meta.caller,
            trace_id = %context.trace_id,
            span_id = %context.span_id,
            parent_span_id = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            rpc.error_code = tracing::field::Empty,
            rpc.error_message = tracing::field::Empty,
        );
        if let Some(parent) = context.parent_span_id
            && !span.is_disabled()
        {
            span.record("parent_span_id", tracing::field::display(parent));
        }
        span
    }
}

/// The method part of a `Service::Method` procedure, else the procedure.
fn method(procedure: &str) -> &str {
    procedure
        .rsplit_once("::")
        .map_or(procedure, |(_, method)| method)
}

/// `<service>/<method>` for a `Service::Method` procedure, else the procedure; written without
/// allocating.
struct SpanName<'a>(&'a str);

impl fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.rsplit_once("::") {
            Some((service, method)) => write!(f, "{service}/{method}"),
            None => f.write_str(self.0),
        }
    }
}

fn record_error(span: &Span, error: &Error) {
    if span.is_disabled() {
        return;
    }
    span.record("otel.status_code", "ERROR");
    span.record("rpc.error_code", error.code().as_str());
    span.record("rpc.error_message", error.message());
}

/// What a shape's call returns: a stream keeps the span and context while it is read.
trait Outcome: Sized + Send + 'static {
    fn observe(self, span: Span, context: Option<TraceContext>) -> Self;
}

impl Outcome for () {
    fn observe(self, _: Span, _: Option<TraceContext>) -> Self {}
}

impl Outcome for Response<Bytes> {
    fn observe(self, _: Span, _: Option<TraceContext>) -> Self {
        self
    }
}

impl Outcome for Response<ByteStream> {
    fn observe(self, span: Span, context: Option<TraceContext>) -> Self {
        self.map(|stream| {
            stream.map_stream(|inner| TracedStream {
                inner,
                span,
                context,
            })
        })
    }
}

/// A response stream polled inside its call's span and trace context; an error it ends with is
/// recorded on the span, which closes when the stream is dropped.
struct TracedStream {
    inner: ByteStream,
    span: Span,
    context: Option<TraceContext>,
}

impl Stream for TracedStream {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        let item = CURRENT.sync_scope(this.context.clone(), || this.inner.poll_next_unpin(cx));
        if let Poll::Ready(Some(Err(error))) = &item {
            record_error(&this.span, error);
        }
        item
    }
}

/// `inner` behind tracing for one pipeline.
fn traced<B, R>(shared: Arc<Shared>, inner: RpcService<Request<B>, R>) -> RpcService<Request<B>, R>
where
    B: Send + 'static,
    R: Outcome,
{
    RpcService::new(tower::service_fn(move |mut request: Request<B>| {
        let context = Some(shared.begin(&mut request.meta));
        let span = shared.span(&request.meta, context.as_ref().expect("just set"));
        let inner = inner.clone();
        let call = CURRENT
            .scope(context.clone(), async move { inner.invoke(request).await })
            .instrument(span.clone());
        async move {
            match call.await {
                Ok(response) => Ok(response.observe(span, context)),
                Err(error) => {
                    record_error(&span, &error);
                    Err(error)
                }
            }
        }
    }))
}

impl From<TracingMiddleware> for Middleware {
    fn from(options: TracingMiddleware) -> Middleware {
        let options = Arc::new(options);
        let shared = move |target: &Target<'_>| {
            Arc::new(Shared {
                options: options.clone(),
                direction: target.direction,
            })
        };
        let (s1, s2, s3, s4, s5) = (
            shared.clone(),
            shared.clone(),
            shared.clone(),
            shared.clone(),
            shared,
        );
        Middleware::new("tracing")
            .unary_with(move |t, inner| traced(s1(t), inner))
            .oneway_with(move |t, inner| traced(s2(t), inner))
            .server_stream_with(move |t, inner| traced(s3(t), inner))
            .client_stream_with(move |t, inner| traced(s4(t), inner))
            .duplex_with(move |t, inner| traced(s5(t), inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_methods() {
        assert_eq!(
            SpanName("grpc.testing.TestService::UnaryCall").to_string(),
            "grpc.testing.TestService/UnaryCall"
        );
        assert_eq!(SpanName("echo").to_string(), "echo");
        assert_eq!(method("a.B::C"), "C");
        assert_eq!(method("plain"), "plain");
    }

    #[test]
    fn children_continue_the_trace() {
        let root = TraceContext::new_root();
        assert!(root.is_sampled() && root.parent_span_id().is_none());
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_eq!(child.parent_span_id(), Some(root.span_id()));
        assert_ne!(child.span_id(), root.span_id());
        assert_ne!(TraceContext::new_root().trace_id(), root.trace_id());
    }

    #[test]
    fn headers_round_trip() {
        let mut headers = Headers::new();
        headers.insert(
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        );
        headers.insert(TRACESTATE, "rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE");
        let remote = TraceContext::from_headers(&headers).unwrap();
        assert_eq!(remote.span_id(), SpanId::from(0x00f0_67aa_0ba9_02b7));
        assert!(!remote.is_sampled());
        let child = remote.child();
        let mut out = Headers::new();
        out.insert(TRACESTATE, "stale=1");
        child.inject(&mut out);
        let traceparent = out.get_str(TRACEPARENT).unwrap();
        assert_eq!(traceparent, child.traceparent());
        assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(traceparent.ends_with("-00"));
        assert_eq!(
            out.get_str(TRACESTATE),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        assert_eq!(
            TraceContext::from_headers(&out).unwrap().span_id(),
            child.span_id()
        );

        // An invalid tracestate is dropped; a stale one is removed on injection.
        headers.insert(TRACESTATE, "not a list");
        let remote = TraceContext::from_headers(&headers).unwrap();
        assert_eq!(remote.trace_state().header(), "");
        remote.child().inject(&mut out);
        assert!(out.get(TRACESTATE).is_none());

        headers.insert(TRACEPARENT, "00-garbage");
        assert!(TraceContext::from_headers(&headers).is_none());
    }

    #[tokio::test]
    async fn scope_sets_the_current_context() {
        assert!(current().is_none());
        let root = TraceContext::new_root();
        let seen = scope(root.clone(), async {
            let inner = tokio::spawn(in_current(async { current() }));
            let bare = tokio::spawn(async { current() });
            (current(), inner.await.unwrap(), bare.await.unwrap())
        })
        .await;
        assert_eq!(seen, (Some(root.clone()), Some(root), None));
        assert!(current().is_none());
    }
}
