//! gRPC over HTTP/2 (h2c), built on hyper's HTTP/2 server and tonic's gRPC codec, server and
//! client layers (DESIGN §6).
//!
//! - Paths are standard: procedure `pkg.Svc::Method` is served at `/pkg.Svc/Method`, so plain
//!   gRPC clients (grpc-go, grpcio, grpcurl) work without any OmniRelay metadata.
//! - Request metadata `rpc-caller`, `rpc-service`, `rpc-encoding`, `rpc-shard-key`,
//!   `rpc-routing-key`, `rpc-routing-delegate`, `rpc-caller-procedure` fill the
//!   [`RequestMeta`](crate::RequestMeta); every other non-reserved key is an application header.
//!   Without them the caller is `unknown`, the service is the dispatcher's and the encoding comes
//!   from the content type (`application/grpc[+proto]` is `proto`, `application/grpc+json` is
//!   `json`).
//! - `grpc-timeout` is the handler's deadline: the handler's future is dropped when it passes
//!   and the caller gets `deadline-exceeded`. A client that resets the stream cancels the handler
//!   the same way.
//! - Messages are limited to [`DEFAULT_MAX_MESSAGE_SIZE`] (4 MiB) each way by default; a larger
//!   one is `resource-exhausted`, naming the limit.

mod codec;
mod inbound;
mod metadata;
mod outbound;
mod reply;

pub use inbound::GrpcInbound;
pub use outbound::GrpcOutbound;

/// The default limit for one message, each way: 4 MiB, as in grpc-go and tonic.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
