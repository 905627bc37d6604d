//! Middleware: tower layers around the procedures a dispatcher serves (inbound) and the calls it
//! makes (outbound).
//!
//! # The model
//!
//! Every call shape is a tower [`Service`](tower::Service) with [`Error`](crate::Error) as its
//! error type:
//!
//! | shape | request | response | service |
//! |---|---|---|---|
//! | unary | `Request<Bytes>` | `Response<Bytes>` | [`UnaryService`] |
//! | oneway | `Request<Bytes>` | `()` | [`OnewayService`] |
//! | server stream | `Request<Bytes>` | `Response<ByteStream>` | [`ServerStreamService`] |
//! | client stream | `Request<ByteStream>` | `Response<Bytes>` | [`ClientStreamService`] |
//! | duplex | `Request<ByteStream>` | `Response<ByteStream>` | [`DuplexService`] |
//!
//! Bodies are still encoded, so middleware works for every encoding. For unary and oneway the
//! service call is the whole call; for the streaming shapes it opens the stream, and a
//! middleware that needs the stream's end wraps the returned stream (the built-ins do).
//!
//! A [`Middleware`] is a named bundle of tower layers, one per shape it covers. Any tower layer
//! applies unchanged: `Middleware::layer("limit", ConcurrencyLimitLayer::new(64))`; errors a
//! layer returns that are not OmniRelay errors are mapped by [`into_error`] (tower's timeout
//! becomes `deadline-exceeded`, load shedding `resource-exhausted`).
//!
//! To write one, wrap the inner service with [`RpcService::around`] in a `*_with` closure, or
//! implement [`ShapeWrap`] once for every shape and register it with
//! [`Middleware::every_shape`].
//!
//! # The built-ins
//!
//! | module | name | shapes, direction | what it does |
//! |---|---|---|---|
//! | [`logging`] | `logging` | all, both | one `tracing` event per call (procedure, caller, code, duration) |
//! | [`trace`] | `tracing` | all, both | a span per call (OpenTelemetry RPC conventions), W3C trace context in and out |
//! | [`metrics`] | `metrics` | all, both | counters and a latency histogram, served at `/omnirelay/metrics` |
//! | [`deadline`] | `deadline` | all, both | refuses work too close to its deadline, cancels at it |
//! | [`retry`] | `retry` | unary, outbound | replays failed calls with backoff, jitter and a budget |
//! | [`panic_recovery`] | `panic-recovery` | all, both | a panic becomes `internal` with its message |
//! | [`rate_limit`] | `rate-limit` | all, both | `resource-exhausted` past a quota |
//! | [`chaos`] | `chaos` | all, both | injected latency and errors, off by default, switched at run time |
//! | [`circuit_breaker`] | `circuit-breaker` | all, outbound | suspends a failing peer, half-open probes |
//!
//! A typical inbound order, outermost first: tracing, logging, metrics, deadline, rate limit,
//! chaos, panic recovery (innermost, so the others see an error rather than a panic); outbound:
//! tracing, metrics, retry, circuit breaker, deadline.
//!
//! # Where it applies, and in which order
//!
//! [`DispatcherBuilder`](crate::dispatcher::DispatcherBuilder) takes inbound middleware globally
//! (`middleware`) and per procedure (`procedure_middleware`), and outbound middleware globally
//! (`outbound_middleware`) and per outbound (`outbound_middleware_for`). A call goes through the
//! global stack first, then the specific one, then the handler (or the outbound's transport),
//! each stack in registration order: the first registered is the outermost. Pipelines are
//! composed once, when the dispatcher is built; a call is a lookup plus a call into the
//! composed pipeline, and `/omnirelay/introspect` lists each procedure's middleware.
//!
//! # Cost
//!
//! A pipeline with no middleware calls the handler directly. A transport calls the outermost
//! [`Middleware`] with its future stored inline in a [`CallFuture`] (up to
//! [`CALL_FUTURE_SIZE`] bytes), and the innermost service hands back the future the handler
//! already boxed, so one `Middleware`, however many tower layers it stacks (use
//! `tower::ServiceBuilder`), adds no allocation per call. Each further `Middleware` is reached
//! through a boxed future: one allocation per call for each `Middleware` after the first.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use omnirelay::Dispatcher;
//! use omnirelay::middleware::Middleware;
//! use tower::limit::ConcurrencyLimitLayer;
//! use tower::timeout::TimeoutLayer;
//!
//! let dispatcher = Dispatcher::builder("echo")
//!     .middleware(Middleware::layer("concurrency-limit", ConcurrencyLimitLayer::new(128)))
//!     .outbound_middleware(
//!         Middleware::new("timeout").unary(TimeoutLayer::new(Duration::from_secs(2))),
//!     )
//!     .build()
//!     .unwrap();
//! # let _ = dispatcher;
//! ```

pub mod chaos;
pub mod circuit_breaker;
pub mod deadline;
mod endpoint;
pub mod logging;
pub mod panic_recovery;
mod pipeline;
pub mod rate_limit;
pub mod retry;
mod service;
mod stack;
pub mod trace;

pub mod metrics;

pub use endpoint::{
    ADMIN_BODY_TIMEOUT, AdminEndpoint, AdminRequest, AdminResponse, MAX_ADMIN_BODY,
};
pub(crate) use pipeline::LayeredOutbound;
pub use pipeline::Pipeline;
pub use service::{
    BoxError, CALL_FUTURE_SIZE, CallFuture, ClientStreamService, DuplexService, OnewayService,
    RpcService, ServerStreamService, UnaryService, into_error,
};
pub use stack::{Direction, Middleware, ShapeWrap, Target};
