//! The five benchmark servers and the process around them (`bench-server` and
//! `bench-server-counted` are thin wrappers over [`main`]).
//!
//! | `--impl` | what | wire |
//! |---|---|---|
//! | `omnirelay-grpc` | OmniRelay `GrpcInbound`, generated `TestService` | gRPC over h2c |
//! | `tonic` | tonic `Server`, generated `TestServiceServer` | gRPC over h2c |
//! | `omnirelay-http` | OmniRelay `HttpInbound`, raw-encoding unary echo | YARPC-HTTP over HTTP/1.1 |
//! | `axum` | axum `POST /` echoing the body | HTTP/1.1 |
//! | `hyper` | hyper 1 `http1` connection, a `service_fn` echoing the body: the floor | HTTP/1.1 |
//!
//! Both gRPC servers implement `EmptyCall` (an empty reply) and `UnaryCall` (a payload of
//! `response_size` zero bytes); every other method answers `unimplemented`. Every server runs on
//! the default multi-threaded tokio runtime (one worker per core), as `#[tokio::main]` gives.
//!
//! The process prints `listening 127.0.0.1:<port>` on stdout once bound. With an allocation
//! counter (the `bench-server-counted` binary) it prints
//! `allocs <n> reallocs <n> bytes <n>` on stderr at start, on `SIGUSR1`, and on
//! `SIGTERM`/`SIGINT`, after which it exits.

use std::future::Future;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::process::ExitCode;

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use omnirelay::codec::RawCodec;
use omnirelay::procedure::typed;
use omnirelay::transport::grpc::GrpcInbound;
use omnirelay::transport::http::HttpInbound;
use omnirelay::{Dispatcher, Error, Request, Response};
use tokio::signal::unix::{SignalKind, signal};

use crate::{AllocCounters, ECHO_PROCEDURE, SERVICE, omni_pb, tonic_pb};

/// Which server to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Impl {
    /// OmniRelay's gRPC inbound serving the generated `grpc.testing.TestService`.
    OmnirelayGrpc,
    /// tonic 0.14 serving its generated `grpc.testing.TestService`.
    Tonic,
    /// OmniRelay's YARPC-HTTP inbound serving a raw-encoding unary echo.
    OmnirelayHttp,
    /// axum 0.8: `POST /` echoes the body.
    Axum,
    /// The floor under both HTTP servers: hyper's HTTP/1.1 connection serving a `service_fn`
    /// that echoes the body, with no router, no headers read and no timers. No hyper-based
    /// server does less per call, so its figures are what this machine allows.
    Hyper,
}

/// Command line of `bench-server` and `bench-server-counted`.
#[derive(Debug, Parser)]
#[command(about = "A benchmark server bound to 127.0.0.1")]
pub struct Args {
    /// The server to run.
    #[arg(long = "impl", value_enum)]
    pub implementation: Impl,
    /// The port to listen on (127.0.0.1 only).
    #[arg(long)]
    pub port: u16,
}

/// Reads the counting allocator's totals; `None` in the uncounted binary.
pub type Snapshot = fn() -> AllocCounters;

/// A boxed server future: resolves only when the server fails.
type ServerFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Runs the server chosen on the command line until `SIGTERM`/`SIGINT`.
pub fn main(snapshot: Option<Snapshot>) -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, snapshot)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench-server: {err}");
            ExitCode::FAILURE
        }
    }
}

fn report(snapshot: Option<Snapshot>) {
    if let Some(read) = snapshot {
        let c = read();
        // Stderr is unbuffered; integer formatting does not allocate.
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "allocs {} reallocs {} bytes {}",
            c.allocations, c.reallocations, c.bytes_allocated
        );
    }
}

async fn run(args: Args, snapshot: Option<Snapshot>) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;

    // `_keep` holds an OmniRelay dispatcher alive while it serves.
    let (server, _keep): (ServerFuture, Option<Dispatcher>) = match args.implementation {
        Impl::OmnirelayGrpc => {
            let d = Dispatcher::builder(SERVICE)
                .inbound(GrpcInbound::new(addr))
                .register(omni_pb::TestServiceProcedures::new(OmniTestService))
                .build()
                .map_err(|e| e.to_string())?;
            d.start().await.map_err(|e| e.to_string())?;
            (Box::pin(std::future::pending()), Some(d))
        }
        Impl::OmnirelayHttp => {
            let d = Dispatcher::builder(SERVICE)
                .inbound(HttpInbound::new(addr))
                .register(omnirelay_echo())
                .build()
                .map_err(|e| e.to_string())?;
            d.start().await.map_err(|e| e.to_string())?;
            (Box::pin(std::future::pending()), Some(d))
        }
        Impl::Tonic => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("bind {addr}: {e}"))?;
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            let svc = tonic_pb::test_service_server::TestServiceServer::new(TonicTestService);
            let fut = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(incoming);
            (
                Box::pin(async move { fut.await.map_err(|e| e.to_string()) }),
                None,
            )
        }
        Impl::Axum => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("bind {addr}: {e}"))?;
            let fut = axum::serve(listener, axum_router()).into_future();
            (
                Box::pin(async move { fut.await.map_err(|e| e.to_string()) }),
                None,
            )
        }
        Impl::Hyper => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("bind {addr}: {e}"))?;
            (Box::pin(hyper_floor(listener)), None)
        }
    };
    println!("listening {addr}");
    report(snapshot);
    tokio::pin!(server);
    loop {
        tokio::select! {
            result = &mut server => return result,
            _ = usr1.recv() => report(snapshot),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    report(snapshot);
    // The load generators have gone; no graceful drain is measured, so leave at once.
    std::process::exit(0)
}

/// `grpc.testing.TestService` on OmniRelay's generated trait: `EmptyCall` and `UnaryCall` as the
/// interop tests define them, everything else `unimplemented`.
#[derive(Clone, Copy, Debug, Default)]
pub struct OmniTestService;

fn omni_unimplemented<T>(method: &str) -> omnirelay::Result<T> {
    Err(Error::unimplemented(format!(
        "grpc.testing.TestService::{method} is not implemented by the bench server"
    )))
}

impl omni_pb::TestService for OmniTestService {
    async fn empty_call(
        &self,
        _request: Request<omni_pb::Empty>,
    ) -> omnirelay::Result<Response<omni_pb::Empty>> {
        Ok(Response::new(omni_pb::Empty {}))
    }

    async fn unary_call(
        &self,
        request: Request<omni_pb::SimpleRequest>,
    ) -> omnirelay::Result<Response<omni_pb::SimpleResponse>> {
        let size = usize::try_from(request.body.response_size)
            .map_err(|_| Error::invalid_argument("negative response_size"))?;
        Ok(Response::new(omni_pb::SimpleResponse {
            payload: Some(omni_pb::Payload {
                r#type: 0,
                body: vec![0; size],
            }),
            ..Default::default()
        }))
    }

    async fn cacheable_unary_call(
        &self,
        _request: Request<omni_pb::SimpleRequest>,
    ) -> omnirelay::Result<Response<omni_pb::SimpleResponse>> {
        omni_unimplemented("CacheableUnaryCall")
    }

    async fn streaming_output_call(
        &self,
        _request: Request<omni_pb::StreamingOutputCallRequest>,
    ) -> omnirelay::Result<Response<omnirelay::Streaming<omni_pb::StreamingOutputCallResponse>>>
    {
        omni_unimplemented("StreamingOutputCall")
    }

    async fn streaming_input_call(
        &self,
        _request: Request<omnirelay::Streaming<omni_pb::StreamingInputCallRequest>>,
    ) -> omnirelay::Result<Response<omni_pb::StreamingInputCallResponse>> {
        omni_unimplemented("StreamingInputCall")
    }

    async fn full_duplex_call(
        &self,
        _request: Request<omnirelay::Streaming<omni_pb::StreamingOutputCallRequest>>,
    ) -> omnirelay::Result<Response<omnirelay::Streaming<omni_pb::StreamingOutputCallResponse>>>
    {
        omni_unimplemented("FullDuplexCall")
    }

    async fn half_duplex_call(
        &self,
        _request: Request<omnirelay::Streaming<omni_pb::StreamingOutputCallRequest>>,
    ) -> omnirelay::Result<Response<omnirelay::Streaming<omni_pb::StreamingOutputCallResponse>>>
    {
        omni_unimplemented("HalfDuplexCall")
    }

    async fn unimplemented_call(
        &self,
        _request: Request<omni_pb::Empty>,
    ) -> omnirelay::Result<Response<omni_pb::Empty>> {
        omni_unimplemented("UnimplementedCall")
    }
}

/// `grpc.testing.TestService` on tonic's generated trait: `EmptyCall` and `UnaryCall`; the other
/// methods keep tonic's default `UNIMPLEMENTED` stubs.
#[derive(Clone, Copy, Debug, Default)]
pub struct TonicTestService;

#[tonic::async_trait]
impl tonic_pb::test_service_server::TestService for TonicTestService {
    async fn empty_call(
        &self,
        _request: tonic::Request<tonic_pb::Empty>,
    ) -> Result<tonic::Response<tonic_pb::Empty>, tonic::Status> {
        Ok(tonic::Response::new(tonic_pb::Empty {}))
    }

    async fn unary_call(
        &self,
        request: tonic::Request<tonic_pb::SimpleRequest>,
    ) -> Result<tonic::Response<tonic_pb::SimpleResponse>, tonic::Status> {
        let size = usize::try_from(request.get_ref().response_size)
            .map_err(|_| tonic::Status::invalid_argument("negative response_size"))?;
        Ok(tonic::Response::new(tonic_pb::SimpleResponse {
            payload: Some(tonic_pb::Payload {
                r#type: 0,
                body: vec![0; size],
            }),
            ..Default::default()
        }))
    }
}

/// The OmniRelay YARPC-HTTP echo: procedure [`ECHO_PROCEDURE`], encoding `raw`, replies with the
/// request body.
pub fn omnirelay_echo() -> omnirelay::ProcedureSpec {
    typed::unary(
        ECHO_PROCEDURE,
        RawCodec,
        |request: Request<Bytes>| async move { Ok(Response::new(request.into_body())) },
    )
}

/// The axum echo: `POST /` replies with the request body.
pub fn axum_router() -> axum::Router {
    axum::Router::new().route("/", axum::routing::post(|body: Bytes| async move { body }))
}

/// The hyper floor: accepts connections and serves each with `hyper::server::conn::http1`, the
/// body echoed back (collected first, as axum's `Bytes` extractor does).
async fn hyper_floor(listener: tokio::net::TcpListener) -> Result<(), String> {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;

    loop {
        let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|request: hyper::Request<Incoming>| async {
                let body = request.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(body)))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
