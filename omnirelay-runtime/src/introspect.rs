//! The serde types behind the HTTP inbound's fixed paths: `/omnirelay/introspect`
//! ([`Introspection`]) and `/healthz` / `/readyz` ([`HealthReport`]).
//!
//! JSON field names are lowerCamelCase (as OmniRelay .NET writes them); every type also
//! deserializes, so tools (the CLI, tests) can read what a server reports.
//!
//! ```json
//! {
//!   "service": "echo",
//!   "status": "running",
//!   "procedures": {
//!     "unary": [{"name": "pkg.Echo::Echo", "encodings": ["proto", "json"], "aliases": [],
//!                "middleware": ["logging"]}],
//!     "oneway": [], "serverStream": [], "clientStream": [], "duplex": []
//!   },
//!   "inbounds": [{"transport": "http", "address": "127.0.0.1:8080"}],
//!   "outbounds": [{"service": "payments", "transport": "grpc", "peers": ["127.0.0.1:50051"]}],
//!   "middleware": [{"name": "logging", "direction": "inbound"}]
//! }
//! ```

use serde::{Deserialize, Serialize};

/// A dispatcher as `/omnirelay/introspect` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Introspection {
    /// The dispatcher's service name.
    pub service: String,
    /// The lifecycle status: `idle`, `running`, `draining` or `stopped`.
    pub status: String,
    /// The registered procedures, by shape.
    pub procedures: Procedures,
    /// The started inbounds and the addresses they are bound to.
    pub inbounds: Vec<InboundInfo>,
    /// The outbounds, by remote service name (sorted).
    pub outbounds: Vec<OutboundInfo>,
    /// Every middleware configured, inbound then outbound, in registration order.
    pub middleware: Vec<MiddlewareInfo>,
}

/// The registered procedures, by shape; each list is sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Procedures {
    /// Unary procedures.
    pub unary: Vec<ProcedureInfo>,
    /// Oneway procedures.
    pub oneway: Vec<ProcedureInfo>,
    /// Server-streaming procedures.
    pub server_stream: Vec<ProcedureInfo>,
    /// Client-streaming procedures.
    pub client_stream: Vec<ProcedureInfo>,
    /// Duplex procedures.
    pub duplex: Vec<ProcedureInfo>,
}

/// One procedure.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcedureInfo {
    /// The procedure's name (or wildcard pattern).
    pub name: String,
    /// The encodings it accepts, the preferred first (`proto`, `json`, `raw`).
    pub encodings: Vec<String>,
    /// Its other names.
    pub aliases: Vec<String>,
    /// The middleware a call goes through, outermost first.
    #[serde(default)]
    pub middleware: Vec<String>,
}

/// One started inbound.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundInfo {
    /// The transport: `grpc` or `http`.
    pub transport: String,
    /// The address it is bound to.
    pub address: String,
}

/// One outbound.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundInfo {
    /// The remote service calls through it go to.
    pub service: String,
    /// The transport: `grpc` or `http`.
    pub transport: String,
    /// The peers it calls (empty for an outbound that does not track peers).
    pub peers: Vec<String>,
}

/// One middleware layer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MiddlewareInfo {
    /// The middleware's name.
    pub name: String,
    /// `inbound` or `outbound`.
    pub direction: String,
}

/// What `/healthz` (liveness) and `/readyz` (readiness) answer, with HTTP 200 when `status`
/// is `ok` and 503 otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// `ok` or `unavailable`.
    pub status: String,
    /// `live` for `/healthz`, `ready` for `/readyz`.
    pub mode: String,
    /// Why the check failed (empty when it passed), e.g. `draining` or
    /// `dispatcher-status:stopped`.
    pub issues: Vec<String>,
    /// Calls the inbound answering is serving right now.
    pub active_requests: usize,
    /// Whether the dispatcher is draining.
    pub draining: bool,
}
