//! The gRPC outbound: calls one remote service over an h2c channel (tonic's client layer).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http::uri::PathAndQuery;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};

use super::DEFAULT_MAX_MESSAGE_SIZE;
use super::codec::BytesCodec;
use super::metadata::{from_status, read_app_headers, too_large, write_request_meta};
use crate::dispatcher::Outbound;
use crate::error::{Error, Result};
use crate::meta::{Request, RequestMeta, Response, ResponseMeta, Transport};
use crate::procedure::{BoxFuture, grpc_path};
use crate::stream::{ByteStream, Streaming};
use crate::transport::header_limit;

/// Calls a remote service over gRPC.
///
/// The connection is made lazily on the first call and re-made after failures; calls share one
/// HTTP/2 connection. Message limits default to 4 MiB each way: a larger request fails locally
/// and a larger response fails with `resource-exhausted`, both naming the limit.
#[derive(Clone, Debug)]
pub struct GrpcOutbound {
    channel: Channel,
    peer: String,
    max_send: usize,
    max_recv: usize,
}

impl GrpcOutbound {
    /// An outbound to `uri`, e.g. `http://127.0.0.1:50051`.
    ///
    /// # Errors
    /// `invalid-argument` for a URI that does not parse.
    pub fn new(uri: impl Into<String>) -> Result<Self> {
        let uri = uri.into();
        let endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|e| {
                Error::invalid_argument(format!("invalid gRPC outbound URI {uri:?}: {e}"))
            })?
            .tcp_nodelay(true);
        let peer = endpoint
            .uri()
            .authority()
            .map_or_else(|| uri.clone(), |a| a.to_string());
        Ok(GrpcOutbound {
            channel: endpoint.connect_lazy(),
            peer,
            max_send: DEFAULT_MAX_MESSAGE_SIZE,
            max_recv: DEFAULT_MAX_MESSAGE_SIZE,
        })
    }

    /// The largest request message sent, in bytes.
    pub fn max_send_message_size(mut self, limit: usize) -> Self {
        self.max_send = limit;
        self
    }

    /// The largest response message accepted, in bytes.
    pub fn max_recv_message_size(mut self, limit: usize) -> Self {
        self.max_recv = limit;
        self
    }

    fn client(&self) -> tonic::client::Grpc<Channel> {
        tonic::client::Grpc::new(self.channel.clone())
            .max_decoding_message_size(self.max_recv)
            .max_encoding_message_size(usize::MAX)
    }
}

fn prepare<T>(meta: &RequestMeta, body: T) -> Result<(tonic::Request<T>, PathAndQuery)> {
    let mut headers = header_limit::header_map(4 + meta.headers.len())?;
    write_request_meta(meta, &mut headers)?;
    let path = PathAndQuery::try_from(grpc_path(&meta.procedure)).map_err(|_| {
        Error::invalid_argument(format!(
            "procedure {:?} does not make a valid gRPC path",
            meta.procedure
        ))
    })?;
    let request = tonic::Request::from_parts(
        MetadataMap::from_headers(headers),
        http::Extensions::default(),
        body,
    );
    Ok((request, path))
}

fn response_meta(headers: &MetadataMap) -> ResponseMeta {
    let mut meta = ResponseMeta::default();
    read_app_headers(headers.as_ref(), &mut meta.headers);
    meta
}

fn check_size(body: &Bytes, limit: usize) -> Result<()> {
    if body.len() > limit {
        return Err(too_large("request", body.len(), limit));
    }
    Ok(())
}

/// Reads the single message of a unary-shaped response and its trailers.
async fn single(response: tonic::Response<tonic::Streaming<Bytes>>) -> Result<Response<Bytes>> {
    let (metadata, mut stream, _) = response.into_parts();
    let mut meta = response_meta(&metadata);
    let body = stream
        .message()
        .await
        .map_err(|s| from_status(&s))?
        .ok_or_else(|| Error::internal("the gRPC response carried no message"))?;
    if let Some(trailers) = stream.trailers().await.map_err(|s| from_status(&s))? {
        read_app_headers(trailers.as_ref(), &mut meta.trailers);
    }
    Ok(Response { meta, body })
}

/// Cancels the call's request stream when dropped: hyper resets the HTTP/2 stream only once
/// the request body fails, so a caller that drops a response mid-stream must fail it.
struct CancelOnDrop(Option<tonic::CancellationHandle>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.cancel();
        }
    }
}

/// The response stream of a streaming call: messages, then the trailers into the stream's
/// trailer slot. `guard` lives as long as the stream does. A request message that failed
/// locally (`failure`) ends the stream with that error instead of a clean end.
fn streaming(
    response: tonic::Response<tonic::Streaming<Bytes>>,
    guard: CancelOnDrop,
    failure: Option<Arc<Mutex<Option<Error>>>>,
) -> Response<ByteStream> {
    let (metadata, stream, _) = response.into_parts();
    let slot: crate::stream::TrailerSlot = Arc::default();
    let filled = slot.clone();
    let messages = futures::stream::unfold(Some((stream, guard)), move |state| {
        let filled = filled.clone();
        let failure = failure.clone();
        async move {
            let (mut stream, guard) = state?;
            let local = || failure.as_deref().and_then(take_failure);
            match stream.message().await {
                Ok(Some(message)) => Some((Ok(message), Some((stream, guard)))),
                Ok(None) if let Some(err) = local() => Some((Err(err), None)),
                Ok(None) => {
                    let mut trailers = crate::meta::Headers::new();
                    match stream.trailers().await {
                        Ok(Some(map)) => read_app_headers(map.as_ref(), &mut trailers),
                        Ok(None) => {}
                        Err(status) => return Some((Err(from_status(&status)), None)),
                    }
                    let _ = filled.set(trailers);
                    None
                }
                Err(status) => Some((Err(local().unwrap_or_else(|| from_status(&status))), None)),
            }
        }
    });
    Response {
        meta: response_meta(&metadata),
        body: Streaming::with_trailers(messages, slot),
    }
}

/// Adapts an outgoing message stream for tonic. A message that fails to encode or is over the
/// limit ends the stream and is recorded, so the call reports that error instead of sending a
/// truncated stream as if it were complete.
fn outgoing(
    stream: ByteStream,
    limit: usize,
) -> (
    impl futures::Stream<Item = Bytes> + Send + 'static,
    Arc<Mutex<Option<Error>>>,
) {
    let failure = Arc::new(Mutex::new(None));
    let slot = failure.clone();
    let stream = stream
        .map(move |item| item.and_then(|body| check_size(&body, limit).map(|()| body)))
        .take_while(move |item| {
            let ok = item.is_ok();
            if let Err(err) = item {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(err.clone());
            }
            futures::future::ready(ok)
        })
        .filter_map(|item| futures::future::ready(item.ok()));
    (stream, failure)
}

fn take_failure(failure: &Mutex<Option<Error>>) -> Option<Error> {
    failure.lock().unwrap_or_else(|e| e.into_inner()).take()
}

impl Outbound for GrpcOutbound {
    fn transport(&self) -> Transport {
        Transport::Grpc
    }

    fn peers(&self) -> Option<Vec<String>> {
        Some(vec![self.peer.clone()])
    }

    fn unary(&self, request: Request<Bytes>) -> BoxFuture<Result<Response<Bytes>>> {
        let mut client = self.client();
        let limit = self.max_send;
        Box::pin(async move {
            let (meta, body) = request.into_parts();
            check_size(&body, limit)?;
            let (request, path) = prepare(&meta, body)?;
            client
                .ready()
                .await
                .map_err(|e| Error::unavailable(e.to_string()))?;
            let response = client
                .server_streaming(request, path, BytesCodec)
                .await
                .map_err(|s| from_status(&s))?;
            single(response).await
        })
    }

    fn oneway(&self, request: Request<Bytes>) -> BoxFuture<Result<()>> {
        let call = self.unary(request);
        Box::pin(async move { call.await.map(|_| ()) })
    }

    fn server_stream(&self, request: Request<Bytes>) -> BoxFuture<Result<Response<ByteStream>>> {
        let mut client = self.client();
        let limit = self.max_send;
        Box::pin(async move {
            let (meta, body) = request.into_parts();
            check_size(&body, limit)?;
            let (request, path) = prepare(&meta, body)?;
            client
                .ready()
                .await
                .map_err(|e| Error::unavailable(e.to_string()))?;
            let response = client
                .server_streaming(request, path, BytesCodec)
                .await
                .map_err(|s| from_status(&s))?;
            Ok(streaming(response, CancelOnDrop(None), None))
        })
    }

    fn client_stream(&self, request: Request<ByteStream>) -> BoxFuture<Result<Response<Bytes>>> {
        let mut client = self.client();
        let limit = self.max_send;
        Box::pin(async move {
            let (meta, body) = request.into_parts();
            let (body, failure) = outgoing(body, limit);
            let (mut request, path) = prepare(&meta, body)?;
            // Dropping this future before the response arrives resets the call.
            let _guard = CancelOnDrop(Some(request.cancellation_handle()));
            client
                .ready()
                .await
                .map_err(|e| Error::unavailable(e.to_string()))?;
            let result = match client.streaming(request, path, BytesCodec).await {
                Ok(response) => single(response).await,
                Err(status) => Err(from_status(&status)),
            };
            match take_failure(&failure) {
                Some(err) => Err(err),
                None => result,
            }
        })
    }

    fn duplex(&self, request: Request<ByteStream>) -> BoxFuture<Result<Response<ByteStream>>> {
        let mut client = self.client();
        let limit = self.max_send;
        Box::pin(async move {
            let (meta, body) = request.into_parts();
            let (body, failure) = outgoing(body, limit);
            let (mut request, path) = prepare(&meta, body)?;
            // Dropping the response stream resets the call, even while requests are still open.
            let guard = CancelOnDrop(Some(request.cancellation_handle()));
            client
                .ready()
                .await
                .map_err(|e| Error::unavailable(e.to_string()))?;
            let response = client
                .streaming(request, path, BytesCodec)
                .await
                .map_err(|s| take_failure(&failure).unwrap_or_else(|| from_status(&s)))?;
            Ok(streaming(response, guard, Some(failure)))
        })
    }
}
