//! The gRPC interop server: `grpc.testing.TestService` implemented on OmniRelay's generated
//! trait, for grpc-go's and grpcio's interop clients.
//!
//! ```text
//! interop-server --port 50051
//! ```
//!
//! Binds 127.0.0.1 only. Runs until Ctrl-C or SIGTERM, then drains in-flight calls and exits 0.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use futures::StreamExt;
use omnirelay::transport::grpc::GrpcInbound;
use omnirelay::{Code, Dispatcher, Error, Headers, Request, Response, Result, Streaming};
use omnirelay_examples::grpc_testing::{
    EchoStatus, Empty, Payload, SimpleRequest, SimpleResponse, StreamingInputCallRequest,
    StreamingInputCallResponse, StreamingOutputCallRequest, StreamingOutputCallResponse,
    TestService, TestServiceProcedures,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

#[derive(Parser, Debug)]
#[command(about = "gRPC interop test server on OmniRelay")]
struct Args {
    /// The port to listen on (127.0.0.1).
    #[arg(long)]
    port: u16,
}

const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";

/// The interop service; stateless.
struct Interop;

fn payload(size: i32) -> Result<Option<Payload>> {
    let size = usize::try_from(size)
        .map_err(|_| Error::invalid_argument(format!("negative payload size {size}")))?;
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

impl TestService for Interop {
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

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let dispatcher = match Dispatcher::builder("interop")
        .inbound(GrpcInbound::new(addr))
        .register(TestServiceProcedures::new(Interop))
        .build()
    {
        Ok(d) => d,
        Err(err) => {
            eprintln!("interop-server: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Err(err) = dispatcher.start().await {
        eprintln!("interop-server: {err}");
        return std::process::ExitCode::FAILURE;
    }
    for (transport, addr) in dispatcher.inbound_addrs() {
        println!("interop-server: serving {} on {addr}", transport.as_str());
    }
    shutdown_signal().await;
    match dispatcher.stop().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("interop-server: stop failed: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
