//! The [`Dispatcher`]: one service's procedures, served by inbounds, plus the outbounds its
//! clients call other services through.
//!
//! ```no_run
//! # async fn run() -> omnirelay::Result<()> {
//! use omnirelay::{Dispatcher, transport::grpc::{GrpcInbound, GrpcOutbound}};
//!
//! let dispatcher = Dispatcher::builder("echo")
//!     .inbound(GrpcInbound::new("127.0.0.1:0".parse().unwrap()))
//!     .outbound("payments", GrpcOutbound::new("http://127.0.0.1:50051")?)
//!     .build()?;
//! dispatcher.start().await?;
//! let payments = dispatcher.client_config("payments")?;
//! # let _ = payments;
//! dispatcher.stop().await?;
//! # Ok(()) }
//! ```
//!
//! Lifecycle: `build` checks the registrations (a name claimed twice is an error naming both
//! procedures); `start` binds every inbound; `stop` stops accepting, lets in-flight calls finish
//! (each inbound drains up to its drain timeout) and returns when every inbound is closed.

mod client;
mod health;
mod transport;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub use client::{CallOptions, Client, ClientConfig};
pub use health::HEALTH_CHECK;
pub use transport::{Inbound, Outbound};

use crate::error::{Error, Result};
use crate::introspect::{
    InboundInfo, Introspection, MiddlewareInfo, OutboundInfo, ProcedureInfo, Procedures,
};
use crate::meta::Transport;
use crate::middleware::{AdminEndpoint, Direction, LayeredOutbound, Middleware};
use crate::name::Name;
use crate::procedure::{IntoProcedures, Kind, ProcedureSpec, Registry};

/// What an inbound needs from its dispatcher: the service name, the procedures, whether the
/// dispatcher is draining, and what introspection and readiness report (lifecycle status, bound
/// addresses, outbounds).
///
/// The dispatcher shares one context with all its inbounds, and keeps its lifecycle state in it,
/// so an inbound can answer `/omnirelay/introspect` and `/readyz` without a reference back to
/// the dispatcher.
pub struct InboundContext {
    /// The service name, shared by every call's metadata.
    service: Name,
    registry: Registry,
    draining: Arc<AtomicBool>,
    state: Mutex<State>,
    outbounds: HashMap<String, Arc<dyn Outbound>>,
    middleware: Vec<MiddlewareInfo>,
    endpoints: HashMap<String, Arc<dyn AdminEndpoint>>,
}

impl InboundContext {
    /// A context for `service` serving `registry`, with no outbounds; dispatchers build this,
    /// tests may too. Its status is [`Status::Idle`] until a dispatcher starts it, so a bare
    /// context reports `/readyz` as not ready.
    ///
    /// Unless `registry` already has one, the `grpc.health.v1.Health::Check` procedure is added.
    pub fn new(service: impl Into<String>, registry: Registry) -> Self {
        InboundContext::with_outbounds(service.into(), registry, HashMap::new())
    }

    fn with_outbounds(
        service: String,
        mut registry: Registry,
        outbounds: HashMap<String, Arc<dyn Outbound>>,
    ) -> Self {
        let draining = Arc::new(AtomicBool::new(false));
        if registry.lookup(HEALTH_CHECK).is_none() {
            // The health protocol names services by their full protobuf name: every service
            // with a registered `pkg.Service::Method` procedure is known, as is the
            // dispatcher's own name.
            let mut known: Vec<String> = registry
                .procedures()
                .filter_map(|p| p.name().split_once("::").map(|(svc, _)| svc.to_owned()))
                .collect();
            known.push(service.clone());
            known.sort();
            known.dedup();
            // Cannot conflict: the name was just looked up.
            let _ = registry.register(health::health_procedure(known, draining.clone()));
        }
        InboundContext {
            service: Name::from(service),
            registry,
            draining,
            state: Mutex::new(State {
                status: Status::Idle,
                addrs: Vec::new(),
            }),
            outbounds,
            middleware: Vec::new(),
            endpoints: HashMap::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state holds no invariant a panic elsewhere could break.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The dispatcher's lifecycle status.
    pub fn status(&self) -> Status {
        self.lock().status
    }

    /// What `/omnirelay/introspect` shows: the service, its status, the procedures by shape
    /// (sorted by name), the bound inbounds, the outbounds with their peers and the middleware.
    pub fn introspect(&self) -> Introspection {
        let mut procedures = Procedures::default();
        for spec in self.registry.procedures() {
            let info = ProcedureInfo {
                name: spec.name().to_owned(),
                encodings: spec
                    .encodings()
                    .iter()
                    .map(|e| e.as_str().to_owned())
                    .collect(),
                aliases: spec.aliases().to_vec(),
                middleware: spec.middleware().to_vec(),
            };
            match spec.kind() {
                Kind::Unary => procedures.unary.push(info),
                Kind::Oneway => procedures.oneway.push(info),
                Kind::ServerStream => procedures.server_stream.push(info),
                Kind::ClientStream => procedures.client_stream.push(info),
                Kind::Duplex => procedures.duplex.push(info),
            }
        }
        for list in [
            &mut procedures.unary,
            &mut procedures.oneway,
            &mut procedures.server_stream,
            &mut procedures.client_stream,
            &mut procedures.duplex,
        ] {
            list.sort_by(|a, b| a.name.cmp(&b.name));
        }
        let (status, addrs) = {
            let state = self.lock();
            (state.status, state.addrs.clone())
        };
        let mut outbounds: Vec<OutboundInfo> = self
            .outbounds
            .iter()
            .map(|(service, outbound)| OutboundInfo {
                service: service.clone(),
                transport: outbound.transport().as_str().to_owned(),
                peers: outbound.peers().unwrap_or_default(),
            })
            .collect();
        outbounds.sort_by(|a, b| a.service.cmp(&b.service));
        Introspection {
            service: self.service.to_string(),
            status: status.as_str().to_owned(),
            procedures,
            inbounds: addrs
                .iter()
                .map(|(transport, addr)| InboundInfo {
                    transport: transport.as_str().to_owned(),
                    address: addr.to_string(),
                })
                .collect(),
            outbounds,
            middleware: self.middleware.clone(),
        }
    }

    /// The administrative endpoint middleware registered at `path` (such as
    /// `/omnirelay/metrics`), which HTTP inbounds serve.
    pub fn endpoint(&self, path: &str) -> Option<&Arc<dyn AdminEndpoint>> {
        self.endpoints.get(path)
    }

    /// Why the dispatcher is not ready to take traffic; empty when it is. The issues are
    /// `dispatcher-status:<status>` unless running, `draining` while draining, and
    /// `outbound:<service>:no-peers` for an outbound that tracks peers and has none.
    pub fn readiness_issues(&self) -> Vec<String> {
        let mut issues = Vec::new();
        let status = self.status();
        if status != Status::Running {
            issues.push(format!("dispatcher-status:{}", status.as_str()));
        }
        if self.is_draining() {
            issues.push("draining".to_owned());
        }
        let mut names: Vec<&String> = self.outbounds.keys().collect();
        names.sort();
        for name in names {
            if self.outbounds[name].peers().is_some_and(|p| p.is_empty()) {
                issues.push(format!("outbound:{name}:no-peers"));
            }
        }
        issues
    }

    /// Whether the dispatcher is stopping: inbounds refuse new calls and report not serving.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// The dispatcher's service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The dispatcher's service name as a [`Name`]: what an inbound puts in each call's
    /// [`RequestMeta::service`](crate::RequestMeta::service) (a clone copies nothing).
    pub fn service_name(&self) -> &Name {
        &self.service
    }

    /// The procedures.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// Where a dispatcher is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Built, not started.
    Idle,
    /// Serving.
    Running,
    /// Stopping: in-flight calls are finishing, new ones are refused.
    Draining,
    /// Stopped; a stopped dispatcher cannot start again.
    Stopped,
}

impl Status {
    /// The status's lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Running => "running",
            Status::Draining => "draining",
            Status::Stopped => "stopped",
        }
    }
}

/// Builds a [`Dispatcher`].
#[must_use]
pub struct DispatcherBuilder {
    service: String,
    inbounds: Vec<Arc<dyn Inbound>>,
    outbounds: Vec<(String, Arc<dyn Outbound>)>,
    procedures: Vec<ProcedureSpec>,
    middleware: Vec<Middleware>,
    procedure_middleware: Vec<(String, Middleware)>,
    outbound_middleware: Vec<Middleware>,
    outbound_middleware_for: Vec<(String, Middleware)>,
}

impl DispatcherBuilder {
    /// Adds an inbound.
    pub fn inbound(mut self, inbound: impl Inbound) -> Self {
        self.inbounds.push(Arc::new(inbound));
        self
    }

    /// Adds the outbound that calls to `service` go through. A later outbound for the same
    /// service replaces the earlier one.
    pub fn outbound(mut self, service: impl Into<String>, outbound: impl Outbound) -> Self {
        self.outbounds.push((service.into(), Arc::new(outbound)));
        self
    }

    /// Registers procedures: a [`ProcedureSpec`], a `Vec` of them, or a generated
    /// `...Procedures` value.
    pub fn register(mut self, procedures: impl IntoProcedures) -> Self {
        self.procedures.extend(procedures.into_procedures());
        self
    }

    /// Adds inbound middleware around every procedure (see [`crate::middleware`] for the
    /// order calls go through it).
    pub fn middleware(mut self, middleware: impl Into<Middleware>) -> Self {
        self.middleware.push(middleware.into());
        self
    }

    /// Adds inbound middleware around the procedure registered as `procedure` only, inside the
    /// global middleware. Naming a procedure that is not registered is a build error.
    pub fn procedure_middleware(
        mut self,
        procedure: impl Into<String>,
        middleware: impl Into<Middleware>,
    ) -> Self {
        self.procedure_middleware
            .push((procedure.into(), middleware.into()));
        self
    }

    /// Adds outbound middleware around every call made through any outbound.
    pub fn outbound_middleware(mut self, middleware: impl Into<Middleware>) -> Self {
        self.outbound_middleware.push(middleware.into());
        self
    }

    /// Adds outbound middleware around calls to `service` only, inside the global outbound
    /// middleware. Naming a service with no outbound is a build error.
    pub fn outbound_middleware_for(
        mut self,
        service: impl Into<String>,
        middleware: impl Into<Middleware>,
    ) -> Self {
        self.outbound_middleware_for
            .push((service.into(), middleware.into()));
        self
    }

    /// Checks the registrations, composes every pipeline and builds the dispatcher.
    ///
    /// # Errors
    /// `invalid-argument` when two procedures claim one name, naming both; when the service
    /// name is empty; when procedure or outbound middleware names a procedure or service that
    /// is not registered; when two middleware claim one administrative path.
    pub fn build(self) -> Result<Dispatcher> {
        if self.service.is_empty() {
            return Err(Error::invalid_argument("a dispatcher needs a service name"));
        }
        for (procedure, m) in &self.procedure_middleware {
            if !self.procedures.iter().any(|p| p.name() == procedure) {
                return Err(Error::invalid_argument(format!(
                    "middleware {:?} is set for procedure {procedure:?}, which is not registered",
                    m.name()
                )));
            }
        }
        let outbounds: HashMap<String, Arc<dyn Outbound>> = self.outbounds.into_iter().collect();
        for (service, m) in &self.outbound_middleware_for {
            if !outbounds.contains_key(service) {
                return Err(Error::invalid_argument(format!(
                    "middleware {:?} is set for outbound {service:?}, which is not configured",
                    m.name()
                )));
            }
        }
        let mut registry = Registry::new();
        for mut spec in self.procedures {
            let own = self
                .procedure_middleware
                .iter()
                .filter(|(name, _)| name == spec.name())
                .map(|(_, m)| m);
            let stack: Vec<&Middleware> = self.middleware.iter().chain(own).collect();
            if !stack.is_empty() {
                spec.wrap(&self.service, stack.iter().copied());
            }
            registry
                .register(spec)
                .map_err(|e| Error::invalid_argument(e.to_string()))?;
        }
        let outbounds = outbounds
            .into_iter()
            .map(|(service, outbound)| {
                let own = self
                    .outbound_middleware_for
                    .iter()
                    .filter(|(name, _)| *name == service)
                    .map(|(_, m)| m);
                let stack: Vec<&Middleware> = self.outbound_middleware.iter().chain(own).collect();
                let outbound: Arc<dyn Outbound> = if stack.is_empty() {
                    outbound
                } else {
                    Arc::new(LayeredOutbound::new(&service, outbound, &stack))
                };
                (service, outbound)
            })
            .collect();
        let mut endpoints: HashMap<String, Arc<dyn AdminEndpoint>> = HashMap::new();
        let all = (self.middleware.iter().map(|m| (Direction::Inbound, m)))
            .chain(
                self.procedure_middleware
                    .iter()
                    .map(|(_, m)| (Direction::Inbound, m)),
            )
            .chain(
                self.outbound_middleware
                    .iter()
                    .map(|m| (Direction::Outbound, m)),
            )
            .chain(
                self.outbound_middleware_for
                    .iter()
                    .map(|(_, m)| (Direction::Outbound, m)),
            );
        let mut infos = Vec::new();
        for (direction, m) in all {
            for (path, endpoint) in m.endpoints() {
                let path = path.to_string();
                if let Some(existing) = endpoints.get(&path)
                    && !Arc::ptr_eq(existing, endpoint)
                {
                    return Err(Error::invalid_argument(format!(
                        "two middleware serve the administrative path {path:?}"
                    )));
                }
                endpoints.insert(path, endpoint.clone());
            }
            let info = MiddlewareInfo {
                name: m.name().to_owned(),
                direction: direction.as_str().to_owned(),
            };
            if !infos.contains(&info) {
                infos.push(info);
            }
        }
        let mut context = InboundContext::with_outbounds(self.service, registry, outbounds);
        context.middleware = infos;
        context.endpoints = endpoints;
        Ok(Dispatcher {
            context: Arc::new(context),
            inbounds: self.inbounds,
        })
    }
}

struct State {
    status: Status,
    addrs: Vec<(Transport, SocketAddr)>,
}

/// One service's procedures and its connections to other services.
pub struct Dispatcher {
    context: Arc<InboundContext>,
    inbounds: Vec<Arc<dyn Inbound>>,
}

impl Dispatcher {
    /// Starts building a dispatcher for `service`.
    pub fn builder(service: impl Into<String>) -> DispatcherBuilder {
        DispatcherBuilder {
            service: service.into(),
            inbounds: Vec::new(),
            outbounds: Vec::new(),
            procedures: Vec::new(),
            middleware: Vec::new(),
            procedure_middleware: Vec::new(),
            outbound_middleware: Vec::new(),
            outbound_middleware_for: Vec::new(),
        }
    }

    /// The service name.
    pub fn service(&self) -> &str {
        self.context.service()
    }

    /// The registered procedures.
    pub fn registry(&self) -> &Registry {
        self.context.registry()
    }

    /// The lifecycle status.
    pub fn status(&self) -> Status {
        self.lock().status
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.context.lock()
    }

    /// What `/omnirelay/introspect` shows; see [`InboundContext::introspect`].
    pub fn introspect(&self) -> Introspection {
        self.context.introspect()
    }

    /// Starts every inbound. If one fails to start, those already started are stopped again.
    ///
    /// # Errors
    /// `failed-precondition` unless the dispatcher is idle; the inbound's error if one fails.
    pub async fn start(&self) -> Result<()> {
        {
            let mut state = self.lock();
            if state.status != Status::Idle {
                return Err(Error::failed_precondition(format!(
                    "dispatcher {:?} cannot start: it is {}",
                    self.service(),
                    state.status.as_str()
                )));
            }
            state.status = Status::Running;
        }
        let mut addrs = Vec::with_capacity(self.inbounds.len());
        for (i, inbound) in self.inbounds.iter().enumerate() {
            match inbound.start(self.context.clone()).await {
                Ok(addr) => addrs.push((inbound.transport(), addr)),
                Err(err) => {
                    for started in &self.inbounds[..i] {
                        let _ = started.stop().await;
                    }
                    self.lock().status = Status::Stopped;
                    return Err(err);
                }
            }
        }
        self.lock().addrs = addrs;
        Ok(())
    }

    /// The addresses the inbounds are bound to, once started.
    pub fn inbound_addrs(&self) -> Vec<(Transport, SocketAddr)> {
        self.lock().addrs.clone()
    }

    /// The address of the first inbound of `transport`, once started.
    pub fn addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.lock()
            .addrs
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| *a)
    }

    /// Stops the dispatcher: every inbound stops accepting, in-flight calls finish, then the
    /// call returns. Stopping a dispatcher that is not running is a no-op.
    ///
    /// # Errors
    /// The first error an inbound reported while stopping (every inbound is still stopped).
    pub async fn stop(&self) -> Result<()> {
        {
            let mut state = self.lock();
            if state.status != Status::Running {
                state.status = Status::Stopped;
                return Ok(());
            }
            state.status = Status::Draining;
        }
        self.context.draining.store(true, Ordering::Release);
        let results = futures::future::join_all(self.inbounds.iter().map(|i| i.stop())).await;
        self.lock().status = Status::Stopped;
        results.into_iter().collect::<Result<Vec<()>>>().map(|_| ())
    }

    /// The configuration a typed client needs to call `service` through its outbound.
    ///
    /// # Errors
    /// `not-found` when no outbound is configured for `service`.
    pub fn client_config(&self, service: &str) -> Result<ClientConfig> {
        let outbound = self.context.outbounds.get(service).ok_or_else(|| {
            Error::not_found(format!(
                "dispatcher {:?} has no outbound for service {service:?}",
                self.service()
            ))
        })?;
        Ok(ClientConfig::new(self.service(), service, outbound.clone()))
    }
}

impl std::fmt::Debug for InboundContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundContext")
            .field("service", &self.service)
            .field("status", &self.status())
            .field("draining", &self.is_draining())
            .field("procedures", &self.registry)
            .finish()
    }
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("service", &self.service())
            .field("status", &self.status())
            .field("procedures", self.registry())
            .finish()
    }
}
