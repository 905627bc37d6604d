//! Generated code and service implementations shared by the example programs and the
//! workspace's integration tests.

/// `omnirelay.examples.echo.v1`: the quickstart's echo service.
pub mod echo {
    #![allow(missing_docs)]
    omnirelay::include_proto!("omnirelay.examples.echo.v1");
}

/// `grpc.testing`: the gRPC interop test service.
pub mod grpc_testing {
    #![allow(missing_docs)]
    omnirelay::include_proto!("grpc.testing");
}

mod echo_service;
mod interop_service;

pub use echo_service::EchoService;
pub use interop_service::InteropService;
