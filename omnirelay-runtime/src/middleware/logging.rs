//! [`LoggingMiddleware`]: one `tracing` event per call, inbound or outbound, in every shape.
//!
//! Each call that finishes emits exactly one event, with the messages yarpc-go logs:
//!
//! | direction | success | failure |
//! |---|---|---|
//! | inbound | `Handled inbound request.` | `Error handling inbound request.` |
//! | outbound | `Made outbound call.` | `Error making outbound call.` |
//!
//! The event's fields are `procedure`, `service`, `caller`, `transport`, `encoding`, `direction`
//! (`inbound` or `outbound`), `code` (`ok` on success, else the code's text such as
//! `invalid-argument`), `duration_ms` (a float, milliseconds from the call's start to its end)
//! and, on failure, `error` (the error's message). The event's target is this module's path,
//! `omnirelay::middleware::logging`, so a subscriber can filter on it.
//!
//! When a call ends: a unary or client-streaming call when its response (or error) is ready; a
//! oneway call when the request was handed over; a server-streaming or duplex call when its
//! response stream ends (after its last message, or with an error), or when opening it fails.
//! A response stream dropped before its end (the client went away) is logged as `cancelled`.
//!
//! The levels are options: successes at [`Level::INFO`], failures at [`Level::WARN`]; errors
//! that are the caller's fault ([`Fault::Client`](crate::Fault), such as `invalid-argument` or
//! `not-found`) can be given a level of their own. When no subscriber wants any of the levels
//! (see [`LevelFilter::current`](tracing::level_filters::LevelFilter::current)), the middleware
//! passes calls straight through and records nothing.
//!
//! ```
//! use omnirelay::Dispatcher;
//! use omnirelay::middleware::logging::LoggingMiddleware;
//! use tracing::Level;
//!
//! let logging = LoggingMiddleware::new()
//!     .success_level(Level::DEBUG)
//!     .caller_failure_level(Level::INFO)
//!     .should_log(|meta| meta.procedure != "health::Check");
//! let dispatcher = Dispatcher::builder("users")
//!     .middleware(logging.clone())
//!     .outbound_middleware(logging)
//!     .build()
//!     .unwrap();
//! # let _ = dispatcher;
//! ```

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tracing::Level;
use tracing::level_filters::LevelFilter;

use super::service::RpcService;
use super::stack::{Direction, Middleware, Target};
use crate::codec::Encoding;
use crate::error::{Code, Error, Fault, Result};
use crate::meta::{Request, RequestMeta, Response, Transport};
use crate::name::Name;
use crate::stream::ByteStream;

type Filter = Arc<dyn Fn(&RequestMeta) -> bool + Send + Sync>;

/// Logs one `tracing` event per call (see the [module docs](self)). Converts into a
/// [`Middleware`] named `logging` covering all five shapes, inbound and outbound.
///
/// Defaults: successes at `INFO`, failures at `WARN` (caller-fault failures too, unless
/// [`caller_failure_level`](Self::caller_failure_level) says otherwise), every call logged.
#[derive(Clone)]
pub struct LoggingMiddleware {
    success: Level,
    failure: Level,
    caller_failure: Option<Level>,
    should_log: Option<Filter>,
}

impl Default for LoggingMiddleware {
    fn default() -> Self {
        LoggingMiddleware::new()
    }
}

impl fmt::Debug for LoggingMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoggingMiddleware")
            .field("success", &self.success)
            .field("failure", &self.failure)
            .field("caller_failure", &self.caller_failure())
            .field("filtered", &self.should_log.is_some())
            .finish()
    }
}

impl LoggingMiddleware {
    /// The defaults: successes at `INFO`, failures at `WARN`, every call logged.
    pub fn new() -> Self {
        LoggingMiddleware {
            success: Level::INFO,
            failure: Level::WARN,
            caller_failure: None,
            should_log: None,
        }
    }

    /// The level of successful calls (default `INFO`).
    pub fn success_level(mut self, level: Level) -> Self {
        self.success = level;
        self
    }

    /// The level of failed calls (default `WARN`); also the level of caller-fault failures
    /// unless [`caller_failure_level`](Self::caller_failure_level) sets one.
    pub fn failure_level(mut self, level: Level) -> Self {
        self.failure = level;
        self
    }

    /// The level of failures that are the caller's fault ([`Fault::Client`](crate::Fault):
    /// `invalid-argument`, `not-found`, `cancelled`, ...). Defaults to the failure level.
    pub fn caller_failure_level(mut self, level: Level) -> Self {
        self.caller_failure = Some(level);
        self
    }

    /// Logs only the calls for which `filter` returns `true` (default: every call). It is
    /// called once per call, with the request's metadata, before the call starts.
    pub fn should_log(
        mut self,
        filter: impl Fn(&RequestMeta) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.should_log = Some(Arc::new(filter));
        self
    }

    fn caller_failure(&self) -> Level {
        self.caller_failure.unwrap_or(self.failure)
    }

    /// The least verbose level the middleware logs at: when even that one is disabled, nothing
    /// is captured.
    fn least_verbose(&self) -> Level {
        self.success.min(self.failure).min(self.caller_failure())
    }
}

/// `tracing::event!` at a level chosen at run time (the macro needs a constant level).
macro_rules! event_at {
    ($level:expr, $($rest:tt)+) => {{
        let level = $level;
        if level == Level::ERROR {
            tracing::event!(Level::ERROR, $($rest)+)
        } else if level == Level::WARN {
            tracing::event!(Level::WARN, $($rest)+)
        } else if level == Level::INFO {
            tracing::event!(Level::INFO, $($rest)+)
        } else if level == Level::DEBUG {
            tracing::event!(Level::DEBUG, $($rest)+)
        } else {
            tracing::event!(Level::TRACE, $($rest)+)
        }
    }};
}

/// The options and direction one pipeline logs with, shared by its calls.
struct Shared {
    options: Arc<LoggingMiddleware>,
    direction: Direction,
    least_verbose: Level,
}

/// One call being logged: what its event says, captured before the request moves on.
struct Call {
    shared: Arc<Shared>,
    procedure: Name,
    service: Name,
    caller: Name,
    transport: Transport,
    encoding: Encoding,
    start: Instant,
}

impl Call {
    /// Starts logging a call, or `None` when it is filtered out or no level is enabled.
    fn begin(shared: &Arc<Shared>, meta: &RequestMeta) -> Option<Call> {
        if shared.least_verbose > LevelFilter::current() {
            return None;
        }
        if let Some(filter) = &shared.options.should_log
            && !filter(meta)
        {
            return None;
        }
        Some(Call {
            shared: shared.clone(),
            procedure: meta.procedure.clone(),
            service: meta.service.clone(),
            caller: meta.caller.clone(),
            transport: meta.transport,
            encoding: meta.encoding,
            start: Instant::now(),
        })
    }

    /// Emits the call's event: a success for `None`, a failure with `code` and `message`.
    fn finish(self, failure: Option<(Code, &str)>) {
        let options = &self.shared.options;
        let inbound = self.shared.direction == Direction::Inbound;
        let (level, code, error, message) = match failure {
            None => (
                options.success,
                Code::Ok,
                None,
                if inbound {
                    "Handled inbound request."
                } else {
                    "Made outbound call."
                },
            ),
            Some((code, error)) => (
                match code.fault() {
                    Fault::Client => options.caller_failure(),
                    _ => options.failure,
                },
                code,
                Some(error),
                if inbound {
                    "Error handling inbound request."
                } else {
                    "Error making outbound call."
                },
            ),
        };
        event_at!(
            level,
            procedure = %self.procedure,
            service = %self.service,
            caller = %self.caller,
            transport = self.transport.as_str(),
            encoding = self.encoding.as_str(),
            direction = self.shared.direction.as_str(),
            code = code.as_str(),
            duration_ms = self.start.elapsed().as_secs_f64() * 1000.0,
            error = error,
            "{message}"
        );
    }

    fn fail(self, error: &Error) {
        self.finish(Some((error.code(), error.message())));
    }
}

/// What a shape's call returns, and how its end is observed.
trait Outcome: Sized + Send + 'static {
    /// Logs the call now, or when the response stream ends.
    fn observe(self, call: Call) -> Self;
}

impl Outcome for () {
    fn observe(self, call: Call) -> Self {
        call.finish(None);
    }
}

impl Outcome for Response<Bytes> {
    fn observe(self, call: Call) -> Self {
        call.finish(None);
        self
    }
}

impl Outcome for Response<ByteStream> {
    fn observe(self, call: Call) -> Self {
        self.map(|stream| {
            stream.map_stream(|inner| LoggedStream {
                inner,
                call: Some(call),
            })
        })
    }
}

/// A response stream that logs its call when it ends, fails, or is dropped before its end.
struct LoggedStream {
    inner: ByteStream,
    call: Option<Call>,
}

impl Stream for LoggedStream {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = futures::ready!(self.inner.poll_next_unpin(cx));
        match &item {
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                if let Some(call) = self.call.take() {
                    call.fail(error);
                }
            }
            None => {
                if let Some(call) = self.call.take() {
                    call.finish(None);
                }
            }
        }
        Poll::Ready(item)
    }
}

impl Drop for LoggedStream {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.finish(Some((
                Code::Cancelled,
                "the stream was dropped before its end",
            )));
        }
    }
}

/// `inner` behind logging for one pipeline.
fn logged<B, R>(shared: Arc<Shared>, inner: RpcService<Request<B>, R>) -> RpcService<Request<B>, R>
where
    B: Send + 'static,
    R: Outcome,
{
    RpcService::new(tower::service_fn(move |request: Request<B>| {
        let call = Call::begin(&shared, &request.meta);
        let response = inner.invoke(request);
        async move {
            let Some(call) = call else {
                return response.await;
            };
            match response.await {
                Ok(response) => Ok(response.observe(call)),
                Err(error) => {
                    call.fail(&error);
                    Err(error)
                }
            }
        }
    }))
}

impl From<LoggingMiddleware> for Middleware {
    fn from(options: LoggingMiddleware) -> Middleware {
        let options = Arc::new(options);
        let shared = move |target: &Target<'_>| {
            Arc::new(Shared {
                least_verbose: options.least_verbose(),
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
        Middleware::new("logging")
            .unary_with(move |t, inner| logged(s1(t), inner))
            .oneway_with(move |t, inner| logged(s2(t), inner))
            .server_stream_with(move |t, inner| logged(s3(t), inner))
            .client_stream_with(move |t, inner| logged(s4(t), inner))
            .duplex_with(move |t, inner| logged(s5(t), inner))
    }
}
