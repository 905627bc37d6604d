//! Procedures: what a dispatcher serves. A [`ProcedureSpec`] is a name, a shape ([`Kind`]), the
//! encodings it accepts, its aliases and a [`Handler`] working on encoded bodies.
//!
//! Generated code and `#[omnirelay::procedure]` build specs through the typed constructors of
//! [`typed`], which decode the request with a [`Codec`](crate::codec::Codec) chosen at compile
//! time; transports only ever see the byte-level handlers defined here.

mod handler;
mod procedure_trait;
mod registry;
pub mod typed;

use std::fmt;

pub use handler::{
    BoxFuture, ClientStreamHandler, DuplexHandler, Handler, OnewayHandler, ServerStreamHandler,
    UnaryHandler,
};
pub use procedure_trait::{Procedure, ProcedureInfo, Service, spec_of};
pub use registry::{Registry, RegistryError};

use crate::codec::Encoding;
use crate::middleware::{Middleware, Pipeline, Target};

/// The five call shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// One request, one response.
    Unary,
    /// One request, no response: the caller learns only that the request was accepted.
    Oneway,
    /// One request, a stream of responses.
    ServerStream,
    /// A stream of requests, one response.
    ClientStream,
    /// A stream of requests and a stream of responses, interleaved as the handler likes.
    Duplex,
}

impl Kind {
    /// The shape's name as introspection shows it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Unary => "unary",
            Kind::Oneway => "oneway",
            Kind::ServerStream => "server-stream",
            Kind::ClientStream => "client-stream",
            Kind::Duplex => "duplex",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One servable procedure.
#[derive(Clone)]
pub struct ProcedureSpec {
    name: String,
    encodings: Vec<Encoding>,
    aliases: Vec<String>,
    handler: Handler,
    pipeline: Pipeline,
    middleware: Vec<String>,
}

impl ProcedureSpec {
    /// A procedure called `name` (a pattern with `*`/`?` makes it a wildcard procedure) served by
    /// `handler` for bodies in `encodings`.
    pub fn new(name: impl Into<String>, encodings: &[Encoding], handler: Handler) -> Self {
        ProcedureSpec {
            name: name.into(),
            encodings: encodings.to_vec(),
            aliases: Vec::new(),
            pipeline: Pipeline::of(&handler),
            handler,
            middleware: Vec::new(),
        }
    }

    /// Adds another name the procedure answers to. An alias may be a wildcard pattern.
    pub fn with_alias(mut self, alias: impl Into<String>) -> Self {
        self.aliases.push(alias.into());
        self
    }

    /// The procedure's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The procedure's shape.
    pub fn kind(&self) -> Kind {
        self.handler.kind()
    }

    /// The encodings the procedure accepts, the preferred first.
    pub fn encodings(&self) -> &[Encoding] {
        &self.encodings
    }

    /// Whether the procedure accepts bodies in `encoding`.
    pub fn accepts(&self, encoding: Encoding) -> bool {
        self.encodings.contains(&encoding)
    }

    /// The procedure's aliases.
    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }

    /// The procedure's handler.
    pub fn handler(&self) -> &Handler {
        &self.handler
    }

    /// What inbounds call: the handler behind the procedure's middleware.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The names of the middleware a call goes through, outermost first.
    pub fn middleware(&self) -> &[String] {
        &self.middleware
    }

    /// Wraps the pipeline in `middleware` (the first outermost), as seen from `service`;
    /// middleware that does not cover this shape is skipped.
    pub(crate) fn wrap<'m>(
        &mut self,
        service: &str,
        middleware: impl DoubleEndedIterator<Item = &'m Middleware> + Clone,
    ) {
        let kind = self.kind();
        let target = Target {
            direction: crate::middleware::Direction::Inbound,
            kind,
            service,
            procedure: Some(&self.name),
            peers: &[],
        };
        let pipeline = self.pipeline.clone().wrapped(&target, middleware.clone());
        self.pipeline = pipeline;
        self.middleware.extend(
            middleware
                .filter(|m| m.covers(kind))
                .map(|m| m.name().to_owned()),
        );
    }
}

impl fmt::Debug for ProcedureSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcedureSpec")
            .field("name", &self.name)
            .field("kind", &self.kind())
            .field("encodings", &self.encodings)
            .field("aliases", &self.aliases)
            .field("middleware", &self.middleware)
            .finish()
    }
}

/// Anything that yields procedures for a dispatcher: a single [`ProcedureSpec`], a `Vec` of them
/// (what `omnirelay::procedures![...]` builds), a generated `...Procedures` registration value, a
/// [`Procedure`] (an `#[omnirelay::procedure]` unit struct) or a [`Service`] (an
/// `#[omnirelay::service]` type, or an `Arc` of one).
pub trait IntoProcedures {
    /// The procedures, in registration order.
    fn into_procedures(self) -> Vec<ProcedureSpec>;
}

impl IntoProcedures for ProcedureSpec {
    fn into_procedures(self) -> Vec<ProcedureSpec> {
        vec![self]
    }
}

impl IntoProcedures for Vec<ProcedureSpec> {
    fn into_procedures(self) -> Vec<ProcedureSpec> {
        self
    }
}

/// The gRPC path a procedure name maps to (DESIGN §2): `pkg.Svc::Method` becomes
/// `/pkg.Svc/Method`; a name without `::` becomes `/__default__/<name>`.
pub fn grpc_path(procedure: &str) -> String {
    match procedure.split_once("::") {
        Some((service, method)) => format!("/{service}/{method}"),
        None => format!("/__default__/{procedure}"),
    }
}

/// The procedure name a gRPC path maps to; the inverse of [`grpc_path`]. `None` for a path that
/// is not `/<service>/<method>`.
pub fn procedure_from_grpc_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.split_once('/')?;
    if service.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    if service == "__default__" {
        return Some(method.to_owned());
    }
    // Sized once: one allocation per inbound call, no reallocation.
    let mut name = String::with_capacity(service.len() + 2 + method.len());
    name.push_str(service);
    name.push_str("::");
    name.push_str(method);
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_paths_round_trip() {
        assert_eq!(
            grpc_path("grpc.testing.TestService::UnaryCall"),
            "/grpc.testing.TestService/UnaryCall"
        );
        assert_eq!(grpc_path("echo"), "/__default__/echo");
        for name in ["grpc.testing.TestService::UnaryCall", "echo", "Svc::M"] {
            assert_eq!(procedure_from_grpc_path(&grpc_path(name)).unwrap(), name);
        }
        assert_eq!(procedure_from_grpc_path("/x"), None);
        assert_eq!(procedure_from_grpc_path("/a/b/c"), None);
        assert_eq!(procedure_from_grpc_path("//b"), None);
    }
}
