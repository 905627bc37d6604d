//! Transports. Each implements the dispatcher's [`Inbound`](crate::Inbound) and
//! [`Outbound`](crate::Outbound) traits.

pub(crate) mod drain;
pub mod error_text;
pub mod grpc;
pub(crate) mod handler_call;
pub(crate) mod header_limit;
pub mod http;
pub(crate) mod server_task;
