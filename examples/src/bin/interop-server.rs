//! The gRPC interop server: `grpc.testing.TestService` implemented on OmniRelay's generated
//! trait ([`InteropService`]), for grpc-go's and grpcio's interop clients, and — with
//! `--http-port` — over YARPC-HTTP too, for `interop-client --transport http` and curl.
//!
//! ```text
//! interop-server --port 50051 [--http-port 8080]
//! ```
//!
//! Binds 127.0.0.1 only. Runs until Ctrl-C or SIGTERM, then drains in-flight calls and exits 0.

use std::net::{Ipv4Addr, SocketAddr};

use clap::Parser;
use omnirelay::Dispatcher;
use omnirelay::transport::grpc::GrpcInbound;
use omnirelay::transport::http::HttpInbound;
use omnirelay_examples::InteropService;
use omnirelay_examples::grpc_testing::TestServiceProcedures;

#[derive(Parser, Debug)]
#[command(about = "gRPC interop test server on OmniRelay")]
struct Args {
    /// The gRPC port to listen on (127.0.0.1).
    #[arg(long)]
    port: u16,
    /// Also serve YARPC-HTTP on this port (127.0.0.1).
    #[arg(long = "http-port", alias = "http_port")]
    http_port: Option<u16>,
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
    let mut builder = Dispatcher::builder("interop").inbound(GrpcInbound::new(addr));
    if let Some(port) = args.http_port {
        builder = builder.inbound(HttpInbound::new(SocketAddr::from((
            Ipv4Addr::LOCALHOST,
            port,
        ))));
    }
    let dispatcher = match builder
        .register(TestServiceProcedures::new(InteropService))
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
