//! The interop service: `grpc.testing.TestService` implemented on OmniRelay's generated trait,
//! following gRPC's interop test descriptions (`doc/interop-test-descriptions.md`).

use std::time::Duration;

use futures::StreamExt;
use omnirelay::{Code, Error, Headers, Request, Response, Result, Streaming};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::grpc_testing::{
    EchoStatus, Empty, Payload, SimpleRequest, SimpleResponse, StreamingInputCallRequest,
    StreamingInputCallResponse, StreamingOutputCallRequest, StreamingOutputCallResponse,
    TestService,
};

const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";

/// `grpc.testing.TestService` as the gRPC interop tests specify it; stateless.
///
/// Served by the `interop-server` example (over gRPC and YARPC-HTTP) and by the integration
/// tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct InteropService;

/// The largest payload asked for that is built: one that could not be sent anyway (over the
/// default 4 MiB message limit) is refused before a byte of it is allocated.
const MAX_PAYLOAD: usize = omnirelay::transport::grpc::DEFAULT_MAX_MESSAGE_SIZE;

fn payload(size: i32) -> Result<Option<Payload>> {
    let size = usize::try_from(size)
        .map_err(|_| Error::invalid_argument(format!("negative payload size {size}")))?;
    if size > MAX_PAYLOAD {
        return Err(Error::resource_exhausted(format!(
            "a payload of {size} bytes was asked for; at most {MAX_PAYLOAD} bytes are sent"
        )));
    }
    Ok(Some(Payload {
        r#type: 0,
        body: vec![0; size],
    }))
}

fn check_status(status: Option<&EchoStatus>) -> Result<()> {
    match status {
        Some(s) if s.code != 0 => Err(Error::new(Code::from_i32(s.code), s.message.clone())),
        _ => Ok(()),
    }
}

/// Copies the echo headers of the interop spec from the request onto the response.
fn echo_metadata<T>(request: &Headers, mut response: Response<T>) -> Response<T> {
    if let Some(v) = request.get(ECHO_INITIAL) {
        response = response.with_header(ECHO_INITIAL, v.clone());
    }
    if let Some(v) = request.get(ECHO_TRAILING) {
        response = response.with_trailer(ECHO_TRAILING, v.clone());
    }
    response
}

fn unary(request: Request<SimpleRequest>) -> Result<Response<SimpleResponse>> {
    let (meta, body) = request.into_parts();
    check_status(body.response_status.as_ref())?;
    let response = SimpleResponse {
        payload: payload(body.response_size)?,
        ..Default::default()
    };
    Ok(echo_metadata(&meta.headers, Response::new(response)))
}

/// Sends the responses one request asks for, honouring each `interval_us`.
async fn respond(
    request: &StreamingOutputCallRequest,
    tx: &mpsc::Sender<Result<StreamingOutputCallResponse>>,
) -> Result<()> {
    check_status(request.response_status.as_ref())?;
    for params in &request.response_parameters {
        if params.interval_us > 0 {
            tokio::time::sleep(Duration::from_micros(params.interval_us as u64)).await;
        }
        let response = StreamingOutputCallResponse {
            payload: payload(params.size)?,
        };
        tx.send(Ok(response))
            .await
            .map_err(|_| Error::cancelled("the client went away"))?;
    }
    Ok(())
}

impl TestService for InteropService {
    async fn empty_call(&self, _request: Request<Empty>) -> Result<Response<Empty>> {
        Ok(Response::new(Empty {}))
    }

    async fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>> {
        unary(request)
    }

    async fn cacheable_unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>> {
        unary(request)
    }

    async fn streaming_output_call(
        &self,
        request: Request<StreamingOutputCallRequest>,
    ) -> Result<Response<Streaming<StreamingOutputCallResponse>>> {
        let body = request.into_body();
        check_status(body.response_status.as_ref())?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            if let Err(err) = respond(&body, &tx).await {
                let _ = tx.send(Err(err)).await;
            }
        });
        Ok(Response::new(Streaming::new(ReceiverStream::new(rx))))
    }

    async fn streaming_input_call(
        &self,
        request: Request<Streaming<StreamingInputCallRequest>>,
    ) -> Result<Response<StreamingInputCallResponse>> {
        let mut requests = request.into_body();
        let mut total = 0usize;
        while let Some(message) = requests.message().await? {
            total += message.payload.map_or(0, |p| p.body.len());
        }
        let aggregated_payload_size = i32::try_from(total)
            .map_err(|_| Error::out_of_range(format!("aggregated size {total} overflows int32")))?;
        Ok(Response::new(StreamingInputCallResponse {
            aggregated_payload_size,
        }))
    }

    async fn full_duplex_call(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<Streaming<StreamingOutputCallResponse>>> {
        let (meta, mut requests) = request.into_parts();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let outcome = match requests.message().await {
                    Ok(Some(message)) => respond(&message, &tx).await,
                    Ok(None) => break,
                    Err(err) => Err(err),
                };
                if let Err(err) = outcome {
                    let _ = tx.send(Err(err)).await;
                    break;
                }
            }
        });
        let response = Response::new(Streaming::new(ReceiverStream::new(rx)));
        Ok(echo_metadata(&meta.headers, response))
    }

    async fn half_duplex_call(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<Streaming<StreamingOutputCallResponse>>> {
        let buffered: Vec<StreamingOutputCallRequest> = request
            .into_body()
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            for message in &buffered {
                if let Err(err) = respond(message, &tx).await {
                    let _ = tx.send(Err(err)).await;
                    break;
                }
            }
        });
        Ok(Response::new(Streaming::new(ReceiverStream::new(rx))))
    }

    async fn unimplemented_call(&self, _request: Request<Empty>) -> Result<Response<Empty>> {
        Err(Error::unimplemented(
            "grpc.testing.TestService::UnimplementedCall is not implemented",
        ))
    }
}
