//! # OmniRelay
//!
//! A YARPC-style RPC framework: one [`Dispatcher`] serves a service's procedures over gRPC (and
//! YARPC-over-HTTP) inbounds and calls other services through outbounds, with typed servers and
//! clients generated from `.proto` files by `omnirelay-build`.
//!
//! The building blocks:
//! - [`Error`] and [`Code`]: the 17 codes and their gRPC/HTTP mappings;
//! - [`RequestMeta`], [`ResponseMeta`], [`Headers`]: call metadata;
//! - [`codec`]: `proto`, `json` and `raw` codecs;
//! - [`procedure`](mod@procedure): procedure specs, the five shapes, the registry;
//! - [`macro@procedure`], [`macro@service`], [`procedures!`]: procedures written as plain
//!   `async fn`s, implementing [`Procedure`] and [`Service`];
//! - [`Dispatcher`], [`Client`], [`ClientConfig`]: lifecycle and typed calls;
//! - [`transport::grpc`]: the gRPC inbound and outbound;
//! - [`transport::http`]: the YARPC-HTTP inbound and outbound (unary, oneway, SSE, WebSocket);
//! - [`middleware`]: tower layers around inbound procedures and outbound calls;
//! - [`introspect`]: what `/omnirelay/introspect`, `/healthz` and `/readyz` report.

pub mod codec;
pub mod dispatcher;
mod error;
pub mod introspect;
mod macro_support;
mod meta;
pub mod middleware;
mod name;
pub mod procedure;
pub mod stream;
pub mod transport;

pub use codec::{Codec, Encoding};
pub use dispatcher::{CallOptions, Client, ClientConfig, Dispatcher, Inbound, Outbound};
pub use error::{Code, Error, Fault, Result};
pub use meta::{Headers, Request, RequestMeta, Response, ResponseMeta, Transport};
pub use name::Name;
pub use procedure::{IntoProcedures, Kind, Procedure, ProcedureSpec, Service};
pub use stream::Streaming;

/// `#[omnirelay::procedure]`, `#[omnirelay::service]` and `omnirelay::procedures![...]`: handlers
/// written as plain `async fn`s, see [`Procedure`] and [`Service`].
pub use omnirelay_macros::*;

/// Re-exports used by generated code and macro output, so users need no direct dependency on
/// the crates behind them. Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use bytes;
    pub use futures;
    pub use pbjson;
    pub use pbjson_types;
    pub use prost;
    pub use prost_types;
    pub use serde;

    pub use crate::macro_support::{ConstMessage, shared_name, str_eq};
}

/// Includes the code `omnirelay-build` generated for a protobuf package, from `OUT_DIR`:
/// `omnirelay::include_proto!("grpc.testing");` inside the module that should hold it.
#[macro_export]
macro_rules! include_proto {
    ($package:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $package, ".rs"));
    };
}
