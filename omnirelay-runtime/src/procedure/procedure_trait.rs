//! Procedures and services known at compile time: the [`Procedure`] and [`Service`] traits that
//! `#[omnirelay::procedure]` and `#[omnirelay::service]` implement.
//!
//! A [`Procedure`] is a type whose name, shape, encodings and aliases are associated constants and
//! whose [`Procedure::into_spec`] builds the [`ProcedureSpec`] through the typed constructors of
//! [`typed`](super::typed), exactly as generated protobuf code does; there is one registration
//! path in the runtime. Nothing is looked up by type at run time: registering a procedure turns it
//! into a spec once, and a call is a registry lookup by name plus a call of the spec's handler.
//!
//! # Registering
//!
//! `DispatcherBuilder::register` takes any [`IntoProcedures`]. This module adds:
//! - `impl<P: Procedure> IntoProcedures for P`, so `builder.register(ping)` works for a
//!   `#[procedure]` unit struct (or any hand-written `Procedure`);
//! - `impl<S: Service> IntoProcedures for Arc<S>`, so a service already shared behind an `Arc`
//!   registers as `builder.register(shared.clone())`. `#[omnirelay::service]` also implements
//!   `IntoProcedures` for the service type itself, so `builder.register(MyService::new())` works.
//!
//! These blanket impls do not overlap with the ones for [`ProcedureSpec`] and
//! `Vec<ProcedureSpec>` (neither is, or can ever be, a `Procedure`: both types are this crate's or
//! std's), nor with a generated `...Procedures` type or a `#[service]` type, which are local to the
//! crate that defines them and do not implement `Procedure`. The one rule for hand-written code:
//! a type implements either `Procedure` or `IntoProcedures`, never both.
//!
//! [`Procedure`] shows a hand-written implementation.

use std::sync::Arc;

use super::{IntoProcedures, Kind, ProcedureSpec};
use crate::codec::Encoding;

/// A procedure whose name, shape, encodings and aliases are known at compile time.
///
/// `#[omnirelay::procedure]` turns an `async fn` into a unit struct implementing this trait;
/// `#[omnirelay::service]` does the same for each `#[procedure]` method of an `impl` block. It can
/// also be implemented by hand, as below. Every `Procedure` is an
/// [`IntoProcedures`](super::IntoProcedures), so `builder.register(procedure)` registers it.
///
/// The constants describe what [`into_spec`](Procedure::into_spec) builds, and they must agree:
/// the spec is named [`NAME`](Procedure::NAME), of shape [`KIND`](Procedure::KIND), accepting
/// exactly [`ENCODINGS`](Procedure::ENCODINGS). [`ALIASES`](Procedure::ALIASES) are added by
/// [`spec_of`], which is what registration calls, so `into_spec` leaves them out.
///
/// # A hand-written procedure
///
/// ```
/// use omnirelay::codec::{Encoding, JsonCodec};
/// use omnirelay::procedure::{Kind, typed};
/// use omnirelay::{Procedure, ProcedureSpec, Request, Response, Result};
///
/// /// Says hello.
/// struct Hello;
///
/// async fn hello(request: Request<String>) -> Result<Response<String>> {
///     Ok(Response::new(format!("hello, {}", request.body)))
/// }
///
/// impl Procedure for Hello {
///     const NAME: &'static str = "hello";
///     const KIND: Kind = Kind::Unary;
///     const ENCODINGS: &'static [Encoding] = &[Encoding::Json];
///     const ALIASES: &'static [&'static str] = &["hi"];
///
///     fn into_spec(self) -> ProcedureSpec {
///         typed::unary(Self::NAME, JsonCodec, hello)
///     }
/// }
///
/// let spec = omnirelay::procedure::spec_of(Hello);
/// assert_eq!((spec.name(), spec.kind()), ("hello", Kind::Unary));
/// assert_eq!(spec.aliases(), ["hi"]);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an OmniRelay procedure",
    label = "not a procedure",
    note = "turn an `async fn` into one with `#[omnirelay::procedure(encoding = \"json\")]`; \
            register services, generated `...Procedures` values and `ProcedureSpec`s with \
            `DispatcherBuilder::register` directly"
)]
pub trait Procedure: Sized {
    /// The procedure's name, e.g. `ping` or `kv::get`.
    const NAME: &'static str;
    /// The procedure's shape.
    const KIND: Kind;
    /// The encodings the procedure accepts, the preferred first.
    const ENCODINGS: &'static [Encoding];
    /// Other names the procedure answers to.
    const ALIASES: &'static [&'static str];
    /// Everything above in one value, for introspection.
    const INFO: ProcedureInfo =
        ProcedureInfo::new(Self::NAME, Self::KIND, Self::ENCODINGS, Self::ALIASES);

    /// Builds the procedure named [`NAME`](Procedure::NAME), without its aliases, through one of
    /// the typed constructors in [`typed`](super::typed).
    fn into_spec(self) -> ProcedureSpec;
}

/// The spec a [`Procedure`] registers as: [`Procedure::into_spec`] plus the procedure's aliases.
///
/// In debug builds this checks that the spec agrees with the procedure's constants (name, shape
/// and encodings), which matters only for hand-written implementations: the macros generate both
/// from one description.
pub fn spec_of<P: Procedure>(procedure: P) -> ProcedureSpec {
    let spec = procedure.into_spec();
    debug_assert_eq!(spec.name(), P::NAME, "Procedure::into_spec must use NAME");
    debug_assert_eq!(spec.kind(), P::KIND, "Procedure::into_spec must build KIND");
    debug_assert_eq!(
        spec.encodings(),
        P::ENCODINGS,
        "Procedure::into_spec must accept ENCODINGS"
    );
    P::ALIASES
        .iter()
        .fold(spec, |spec, alias| spec.with_alias(*alias))
}

impl<P: Procedure> IntoProcedures for P {
    fn into_procedures(self) -> Vec<ProcedureSpec> {
        vec![spec_of(self)]
    }
}

/// What introspection shows of a procedure known at compile time: name, shape, encodings and
/// aliases. Built in constant context; see [`Procedure::INFO`] and [`Service::PROCEDURES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcedureInfo {
    name: &'static str,
    kind: Kind,
    encodings: &'static [Encoding],
    aliases: &'static [&'static str],
}

impl ProcedureInfo {
    /// A description of a procedure.
    pub const fn new(
        name: &'static str,
        kind: Kind,
        encodings: &'static [Encoding],
        aliases: &'static [&'static str],
    ) -> Self {
        ProcedureInfo {
            name,
            kind,
            encodings,
            aliases,
        }
    }

    /// The procedure's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The procedure's shape.
    pub const fn kind(&self) -> Kind {
        self.kind
    }

    /// The encodings the procedure accepts, the preferred first.
    pub const fn encodings(&self) -> &'static [Encoding] {
        self.encodings
    }

    /// The procedure's aliases.
    pub const fn aliases(&self) -> &'static [&'static str] {
        self.aliases
    }
}

/// A group of procedures sharing one value's state: what `#[omnirelay::service]` implements for
/// the type of an `impl` block whose methods are marked `#[procedure]`.
///
/// Each procedure is named `<NAME>::<method>` (DESIGN §2: `kv::get`, `pkg.Kv::Get`). The value is
/// shared by every call behind an [`Arc`], so it must be `Send + Sync + 'static`; state that calls
/// change needs interior mutability (a `Mutex`, atomics, a channel).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an OmniRelay service",
    label = "not a service",
    note = "mark an `impl` block of the type with `#[omnirelay::service(name = \"...\")]` and its \
            handler methods with `#[procedure(...)]`"
)]
pub trait Service: Send + Sync + 'static {
    /// The service's name: the part of each procedure name before `::`.
    const NAME: &'static str;
    /// The service's procedures, in declaration order.
    const PROCEDURES: &'static [ProcedureInfo];

    /// The service's procedures, each holding a clone of `self`.
    fn procedures(self: Arc<Self>) -> Vec<ProcedureSpec>;
}

impl<S: Service> IntoProcedures for Arc<S> {
    fn into_procedures(self) -> Vec<ProcedureSpec> {
        Service::procedures(self)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::codec::RawCodec;
    use crate::meta::{Request, Response};
    use crate::procedure::typed;

    struct Echo;

    impl Procedure for Echo {
        const NAME: &'static str = "echo";
        const KIND: Kind = Kind::Unary;
        const ENCODINGS: &'static [Encoding] = &[Encoding::Raw];
        const ALIASES: &'static [&'static str] = &["echo.v0", "e*"];

        fn into_spec(self) -> ProcedureSpec {
            typed::unary(Self::NAME, RawCodec, |r: Request<Bytes>| async move {
                Ok(Response::new(r.body))
            })
        }
    }

    #[test]
    fn registration_adds_the_aliases() {
        let specs = Echo.into_procedures();
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].name(), "echo");
        assert_eq!(specs[0].aliases(), ["echo.v0", "e*"]);
        assert_eq!(Echo::INFO.encodings(), [Encoding::Raw]);
        assert_eq!(Echo::INFO.aliases(), ["echo.v0", "e*"]);
    }

    struct Svc;

    impl Service for Svc {
        const NAME: &'static str = "svc";
        const PROCEDURES: &'static [ProcedureInfo] = &[Echo::INFO];

        fn procedures(self: Arc<Self>) -> Vec<ProcedureSpec> {
            vec![spec_of(Echo)]
        }
    }

    #[test]
    fn a_shared_service_registers() {
        let specs = Arc::new(Svc).into_procedures();
        assert_eq!(specs.len(), Svc::PROCEDURES.len());
        assert_eq!(specs[0].name(), Svc::PROCEDURES[0].name());
    }
}
