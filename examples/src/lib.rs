//! Generated code shared by the example programs.

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
