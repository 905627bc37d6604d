//! The panic-recovery middleware: a panicking handler (or outbound) becomes an `internal` error
//! carrying the panic message, is logged, and the server keeps serving.
//!
//! Both inbounds already turn a panic into `internal` as a last resort; this middleware does it
//! inside the pipeline, so the middleware outside it (logging, metrics, tracing) sees an
//! ordinary `internal` failure, and the error says what the panic said. For the streaming
//! shapes a panic while producing a message ends the stream with the same error.
//!
//! Register it innermost (last) so every other middleware sees the error rather than the
//! unwinding panic:
//!
//! ```
//! use omnirelay::middleware::panic_recovery::PanicRecoveryMiddleware;
//!
//! let dispatcher = omnirelay::Dispatcher::builder("svc")
//!     .middleware(PanicRecoveryMiddleware::new())
//!     .build()
//!     .unwrap();
//! # let _ = dispatcher;
//! ```

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};

use super::service::{
    ClientStreamService, DuplexService, OnewayService, RpcService, ServerStreamService,
    UnaryService,
};
use super::stack::{Middleware, Target};
use crate::error::Error;
use crate::meta::{Request, Response};
use crate::stream::ByteStream;

/// Turns panics into `internal` errors. Name: `panic-recovery`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PanicRecoveryMiddleware {
    _private: (),
}

impl PanicRecoveryMiddleware {
    /// The middleware; it has no options.
    pub fn new() -> Self {
        PanicRecoveryMiddleware::default()
    }
}

/// The text of a panic payload: the `&str` or `String` given to `panic!`, else a placeholder.
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "a non-string panic payload"
    }
}

fn recovered(what: &str, procedure: &str, payload: &(dyn Any + Send)) -> Error {
    let message = panic_message(payload);
    tracing::error!(
        procedure,
        panic = message,
        "{what} panicked; answered internal"
    );
    Error::internal(format!(
        "{what} of procedure {procedure:?} panicked: {message}"
    ))
}

/// The name errors give: the procedure registered (inbound) or the remote service (outbound).
fn subject(target: &Target<'_>) -> Arc<str> {
    target.procedure.unwrap_or(target.service).into()
}

fn guard_stream(stream: ByteStream, procedure: Arc<str>) -> ByteStream {
    stream.map_stream(move |stream| {
        AssertUnwindSafe(stream)
            .catch_unwind()
            .scan(false, move |failed, item| {
                let out = match item {
                    _ if *failed => None,
                    Ok(item) => Some(item),
                    Err(payload) => {
                        *failed = true;
                        Some(Err(recovered("the response stream", &procedure, &*payload)))
                    }
                };
                futures::future::ready(out)
            })
    })
}

macro_rules! guarded {
    ($name:ident, $service:ty, $req:ty, $resp:ty, $map:expr) => {
        fn $name(procedure: Arc<str>, inner: $service) -> $service {
            RpcService::around(inner, move |inner, request: Request<$req>| {
                let procedure = procedure.clone();
                async move {
                    match AssertUnwindSafe(inner.invoke(request)).catch_unwind().await {
                        Ok(result) => result.map(|r: $resp| $map(r, procedure)),
                        Err(payload) => Err(recovered("the handler", &procedure, &*payload)),
                    }
                }
            })
        }
    };
}

fn keep<T>(value: T, _: Arc<str>) -> T {
    value
}

fn guard_response(response: Response<ByteStream>, procedure: Arc<str>) -> Response<ByteStream> {
    response.map(|s| guard_stream(s, procedure))
}

guarded!(unary, UnaryService, Bytes, Response<Bytes>, keep);
guarded!(oneway, OnewayService, Bytes, (), keep);
guarded!(
    server_stream,
    ServerStreamService,
    Bytes,
    Response<ByteStream>,
    guard_response
);
guarded!(
    client_stream,
    ClientStreamService,
    ByteStream,
    Response<Bytes>,
    keep
);
guarded!(
    duplex,
    DuplexService,
    ByteStream,
    Response<ByteStream>,
    guard_response
);

impl From<PanicRecoveryMiddleware> for Middleware {
    fn from(_: PanicRecoveryMiddleware) -> Middleware {
        Middleware::new("panic-recovery")
            .unary_with(|t, inner| unary(subject(t), inner))
            .oneway_with(|t, inner| oneway(subject(t), inner))
            .server_stream_with(|t, inner| server_stream(subject(t), inner))
            .client_stream_with(|t, inner| client_stream(subject(t), inner))
            .duplex_with(|t, inner| duplex(subject(t), inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_str_and_string_payloads() {
        let text: Box<dyn Any + Send> = Box::new("boom");
        assert_eq!(panic_message(&*text), "boom");
        let owned: Box<dyn Any + Send> = Box::new(String::from("owned"));
        assert_eq!(panic_message(&*owned), "owned");
        let other: Box<dyn Any + Send> = Box::new(7_u8);
        assert_eq!(panic_message(&*other), "a non-string panic payload");
    }
}
