//! Transports. Each implements the dispatcher's [`Inbound`](crate::Inbound) and
//! [`Outbound`](crate::Outbound) traits.

pub mod grpc;
