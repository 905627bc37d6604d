//! Typed procedure constructors: a handler over messages plus a [`Codec`] becomes a
//! [`ProcedureSpec`] over bytes.
//!
//! The request is decoded in the encoding it arrived with; the response is encoded in the
//! encoding the handler set in [`ResponseMeta::encoding`](crate::ResponseMeta), or else the
//! request's. Generated code (`omnirelay-build`) and `#[omnirelay::procedure]` both build their
//! procedures here, so there is one registration path in the runtime.
//!
//! Each handler's future is wrapped with combinators (`FutureExt::map`, `Either`) rather than an
//! `async` block: a block that awaits a future it captured keeps it twice in its state (the
//! captured value, then the awaited copy), and the handler layer boxes that state every call.
//! The combinators poll the handler's future where the box holds it.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{Either, ready};

use super::{Handler, ProcedureSpec};
use crate::codec::{Codec, Encoding};
use crate::error::Result;
use crate::meta::{Request, Response};
use crate::stream::Streaming;

fn encode_response<C, T>(
    codec: &C,
    encoding: Encoding,
    resp: Response<T>,
) -> Result<Response<Bytes>>
where
    C: Codec<T>,
{
    let encoding = resp.meta.encoding.unwrap_or(encoding);
    let (meta, body) = resp.into_parts();
    let body = codec.encode(encoding, &body)?;
    Ok(Response { meta, body })
}

fn encode_stream<C, T>(
    codec: Arc<C>,
    encoding: Encoding,
    resp: Response<Streaming<T>>,
) -> Response<Streaming<Bytes>>
where
    C: Codec<T>,
    T: 'static,
{
    let encoding = resp.meta.encoding.unwrap_or(encoding);
    resp.map(move |s| s.and_then_map(move |m| codec.encode(encoding, &m)))
}

fn decode_stream<C, T>(codec: Arc<C>, request: Request<Streaming<Bytes>>) -> Request<Streaming<T>>
where
    C: Codec<T>,
    T: 'static,
{
    let encoding = request.meta.encoding;
    request.map(move |s| s.and_then_map(move |b| codec.decode(encoding, b)))
}

/// A unary procedure.
pub fn unary<Req, Resp, C, F, Fut>(name: impl Into<String>, codec: C, handler: F) -> ProcedureSpec
where
    C: Codec<Req> + Codec<Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(Request<Req>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Resp>>> + Send + 'static,
{
    let encodings = Codec::<Req>::encodings(&codec);
    let codec = Arc::new(codec);
    let handler = Handler::unary(
        move |request: Request<Bytes>| match decode(&*codec, request) {
            Ok((encoding, req)) => {
                let codec = codec.clone();
                Either::Right(
                    handler(req).map(move |response| encode_response(&*codec, encoding, response?)),
                )
            }
            Err(error) => Either::Left(ready(Err(error))),
        },
    );
    ProcedureSpec::new(name, encodings, handler)
}

fn decode<C, T>(codec: &C, request: Request<Bytes>) -> Result<(Encoding, Request<T>)>
where
    C: Codec<T>,
{
    let encoding = request.meta.encoding;
    let (meta, body) = request.into_parts();
    let body = codec.decode(encoding, body)?;
    Ok((encoding, Request { meta, body }))
}

/// A oneway procedure.
pub fn oneway<Req, C, F, Fut>(name: impl Into<String>, codec: C, handler: F) -> ProcedureSpec
where
    C: Codec<Req>,
    Req: Send + 'static,
    F: Fn(Request<Req>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let encodings = codec.encodings();
    let handler = Handler::oneway(
        move |request: Request<Bytes>| match decode(&codec, request) {
            Ok((_, req)) => Either::Right(handler(req)),
            Err(error) => Either::Left(ready(Err(error))),
        },
    );
    ProcedureSpec::new(name, encodings, handler)
}

/// A server-streaming procedure.
pub fn server_stream<Req, Resp, C, F, Fut>(
    name: impl Into<String>,
    codec: C,
    handler: F,
) -> ProcedureSpec
where
    C: Codec<Req> + Codec<Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(Request<Req>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Streaming<Resp>>>> + Send + 'static,
{
    let encodings = Codec::<Req>::encodings(&codec);
    let codec = Arc::new(codec);
    let handler =
        Handler::server_stream(
            move |request: Request<Bytes>| match decode(&*codec, request) {
                Ok((encoding, req)) => {
                    let codec = codec.clone();
                    Either::Right(
                        handler(req)
                            .map(move |response| Ok(encode_stream(codec, encoding, response?))),
                    )
                }
                Err(error) => Either::Left(ready(Err(error))),
            },
        );
    ProcedureSpec::new(name, encodings, handler)
}

/// A client-streaming procedure.
pub fn client_stream<Req, Resp, C, F, Fut>(
    name: impl Into<String>,
    codec: C,
    handler: F,
) -> ProcedureSpec
where
    C: Codec<Req> + Codec<Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(Request<Streaming<Req>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Resp>>> + Send + 'static,
{
    let encodings = Codec::<Req>::encodings(&codec);
    let codec = Arc::new(codec);
    let handler = Handler::client_stream(move |request: Request<Streaming<Bytes>>| {
        let encoding = request.meta.encoding;
        let codec = codec.clone();
        handler(decode_stream(codec.clone(), request))
            .map(move |response| encode_response(&*codec, encoding, response?))
    });
    ProcedureSpec::new(name, encodings, handler)
}

/// A duplex (bidirectional streaming) procedure.
pub fn duplex<Req, Resp, C, F, Fut>(name: impl Into<String>, codec: C, handler: F) -> ProcedureSpec
where
    C: Codec<Req> + Codec<Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(Request<Streaming<Req>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Streaming<Resp>>>> + Send + 'static,
{
    let encodings = Codec::<Req>::encodings(&codec);
    let codec = Arc::new(codec);
    let handler = Handler::duplex(move |request: Request<Streaming<Bytes>>| {
        let encoding = request.meta.encoding;
        let codec = codec.clone();
        handler(decode_stream(codec.clone(), request))
            .map(move |response| Ok(encode_stream(codec, encoding, response?)))
    });
    ProcedureSpec::new(name, encodings, handler)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::RawCodec;
    use crate::meta::RequestMeta;

    /// The state a handler holds across an await, and the request it keeps.
    const HELD: usize = 2048;

    fn request(encoding: Encoding) -> Request<Bytes> {
        let mut meta = RequestMeta::new("caller", "service", "p");
        meta.encoding = encoding;
        Request::new(meta, Bytes::from_static(b"body"))
    }

    /// A handler whose future holds `HELD` bytes across an await.
    async fn holding(request: Request<Bytes>) -> Result<Response<Bytes>> {
        let held = [7u8; HELD];
        tokio::task::yield_now().await;
        let sum: u64 = held.iter().map(|&b| u64::from(b)).sum();
        Ok(Response::new(Bytes::from(format!(
            "{}:{sum}",
            request.body.len()
        ))))
    }

    /// The boxed future of a typed handler is the handler's own state plus a few words: the
    /// handler's future is not kept twice (as an `async` block awaiting a captured future would).
    #[tokio::test]
    async fn the_boxed_future_holds_the_handler_future_once() {
        let spec = unary("p", RawCodec, holding);
        let Handler::Unary(h) = spec.handler() else {
            panic!("a unary handler");
        };
        let future = h.handle(request(Encoding::Raw));
        let size = std::mem::size_of_val(&*future);
        assert!(size >= HELD, "{size}");
        // Twice would be more than 2 * HELD; the request and the handler's locals take the rest.
        assert!(
            size < HELD + HELD / 2,
            "the handler's state is held more than once: {size} bytes"
        );
        assert_eq!(
            future.await.unwrap().body,
            Bytes::from(format!("4:{}", 7 * HELD))
        );
    }

    /// A request in an encoding the codec does not read fails before the handler runs.
    #[tokio::test]
    async fn a_decode_error_is_the_answer() {
        struct ProtoOnly;
        impl Codec<Bytes> for ProtoOnly {
            fn encodings(&self) -> &'static [Encoding] {
                &[Encoding::Proto]
            }
            fn encode(&self, _: Encoding, value: &Bytes) -> Result<Bytes> {
                Ok(value.clone())
            }
            fn decode(&self, encoding: Encoding, _: Bytes) -> Result<Bytes> {
                Err(crate::Error::invalid_argument(format!(
                    "cannot read {encoding}"
                )))
            }
        }
        let spec = unary("p", ProtoOnly, |_: Request<Bytes>| async {
            panic!("the handler must not run")
        });
        let Handler::Unary(h) = spec.handler() else {
            panic!("a unary handler");
        };
        let error = h.handle(request(Encoding::Json)).await.unwrap_err();
        assert_eq!(error.code(), crate::Code::InvalidArgument);
        assert_eq!(error.message(), "cannot read json");
    }
}
