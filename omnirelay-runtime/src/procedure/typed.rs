//! Typed procedure constructors: a handler over messages plus a [`Codec`] becomes a
//! [`ProcedureSpec`] over bytes.
//!
//! The request is decoded in the encoding it arrived with; the response is encoded in the
//! encoding the handler set in [`ResponseMeta::encoding`](crate::ResponseMeta), or else the
//! request's. Generated code (`omnirelay-build`) and `#[omnirelay::procedure]` both build their
//! procedures here, so there is one registration path in the runtime.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;

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
    let handler = Handler::unary(move |request: Request<Bytes>| {
        let codec = codec.clone();
        let call = decode(&*codec, request).map(|(encoding, req)| (encoding, handler(req)));
        async move {
            let (encoding, fut) = call?;
            encode_response(&*codec, encoding, fut.await?)
        }
    });
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
    let handler = Handler::oneway(move |request: Request<Bytes>| {
        let call = decode(&codec, request).map(|(_, req)| handler(req));
        async move { call?.await }
    });
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
    let handler = Handler::server_stream(move |request: Request<Bytes>| {
        let codec = codec.clone();
        let call = decode(&*codec, request).map(|(encoding, req)| (encoding, handler(req)));
        async move {
            let (encoding, fut) = call?;
            Ok(encode_stream(codec, encoding, fut.await?))
        }
    });
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
        let fut = handler(decode_stream(codec.clone(), request));
        let codec = codec.clone();
        async move { encode_response(&*codec, encoding, fut.await?) }
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
        let fut = handler(decode_stream(codec.clone(), request));
        let codec = codec.clone();
        async move { Ok(encode_stream(codec, encoding, fut.await?)) }
    });
    ProcedureSpec::new(name, encodings, handler)
}
