//! Side-by-side benchmark servers: OmniRelay against tonic (gRPC) and axum (YARPC-HTTP vs plain
//! HTTP/1.1), all built from the same `grpc.testing.TestService` definition, and bare hyper as the
//! floor under both HTTP servers.
//!
//! Every server binds `127.0.0.1` only. `benches/run.sh` drives them with `h2load` and `wrk`;
//! `bench-server-counted` (feature `count-allocs`) runs the same servers under a counting global
//! allocator and prints the counters on `SIGUSR1`.

pub mod servers;

/// `grpc.testing` as OmniRelay generates it (prost messages with pbjson, the `TestService` trait,
/// `TestServiceProcedures` and `TestServiceClient`).
pub mod omni_pb {
    #![allow(missing_docs, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/omnirelay/grpc.testing.rs"));
}

/// `grpc.testing` as tonic generates it (plain prost messages and the tonic server).
pub mod tonic_pb {
    #![allow(missing_docs, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/tonic/grpc.testing.rs"));
}

/// Counters a counting allocator reports: allocation calls, reallocation calls and bytes
/// requested by allocations, all since the process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocCounters {
    /// `alloc` and `alloc_zeroed` calls.
    pub allocations: u64,
    /// `realloc` calls (not counted in `allocations`).
    pub reallocations: u64,
    /// Bytes requested by `alloc`/`alloc_zeroed`.
    pub bytes_allocated: u64,
}

/// The procedure name of the YARPC-HTTP raw echo.
pub const ECHO_PROCEDURE: &str = "echo";

/// The service name every OmniRelay bench dispatcher serves as (the `Rpc-Service` header the load
/// generators send).
pub const SERVICE: &str = "bench";
