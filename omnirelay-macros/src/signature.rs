//! Reading a handler's shape from its signature.
//!
//! | argument | return | `oneway` | shape |
//! |---|---|---|---|
//! | `Request<T>` | `Result<Response<U>>` | no | unary |
//! | `Request<T>` | `Result<()>` | yes | oneway |
//! | `Request<T>` | `Result<Response<Streaming<U>>>` | no | server stream |
//! | `Request<Streaming<T>>` | `Result<Response<U>>` | no | client stream |
//! | `Request<Streaming<T>>` | `Result<Response<Streaming<U>>>` | no | duplex |
//!
//! Types are recognised by their last path segment (`Request`, `omnirelay::Request`, ...), so the
//! runtime's types must be used under their own names, not through a `type` alias.

use proc_macro2::Span;
use syn::{FnArg, GenericArgument, PathArguments, ReturnType, Signature, Type};

/// The five shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Unary,
    Oneway,
    ServerStream,
    ClientStream,
    Duplex,
}

impl Kind {
    /// The `Kind` variant name and the `typed` constructor for the shape.
    pub(crate) fn names(self) -> (&'static str, &'static str) {
        match self {
            Kind::Unary => ("Unary", "unary"),
            Kind::Oneway => ("Oneway", "oneway"),
            Kind::ServerStream => ("ServerStream", "server_stream"),
            Kind::ClientStream => ("ClientStream", "client_stream"),
            Kind::Duplex => ("Duplex", "duplex"),
        }
    }
}

/// How a method receives its service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Receiver {
    /// No receiver: a free function, or an associated function of a service.
    None,
    /// `&self`.
    Ref,
    /// `self: Arc<Self>`.
    Arc,
}

/// What the signature says.
pub(crate) struct Shape {
    pub(crate) kind: Kind,
    pub(crate) receiver: Receiver,
    /// The whole argument type, `Request<...>`.
    pub(crate) argument: Type,
    /// The request message type (inside `Streaming` for streamed requests).
    pub(crate) request: Type,
    /// The response message type; `None` for oneway.
    pub(crate) response: Option<Type>,
}

/// Collects errors so one expansion reports every mistake of a signature at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn add(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// An error covering all of `tokens`.
    pub(crate) fn add_spanned(
        &mut self,
        tokens: impl quote::ToTokens,
        message: impl std::fmt::Display,
    ) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// The single generic type argument of a path type whose last segment is `name`.
fn generic_of<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let args = generic_args(ty, name)?;
    match args.as_slice() {
        [GenericArgument::Type(inner)] => Some(inner),
        _ => None,
    }
}

fn generic_args<'a>(ty: &'a Type, name: &str) -> Option<Vec<&'a GenericArgument>> {
    let Type::Path(path) = strip_group(ty) else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    match &last.arguments {
        PathArguments::AngleBracketed(args) => Some(args.args.iter().collect()),
        _ => Some(Vec::new()),
    }
}

fn strip_group(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => strip_group(&group.elem),
        Type::Paren(paren) => strip_group(&paren.elem),
        other => other,
    }
}

fn is_path_named(ty: &Type, name: &str) -> bool {
    generic_args(ty, name).is_some()
}

fn is_unit(ty: &Type) -> bool {
    matches!(strip_group(ty), Type::Tuple(t) if t.elems.is_empty())
}

const RETURN_HELP: &str = "return `omnirelay::Result<Response<T>>` (unary, client stream), \
     `omnirelay::Result<Response<Streaming<T>>>` (server stream, duplex) \
     or `omnirelay::Result<()>` (with `oneway`)";

const ARGUMENT_HELP: &str = "take the request as `Request<T>` (unary, oneway, server stream) \
     or `Request<Streaming<T>>` (client stream, duplex); its metadata is `request.meta`";

/// Reads the shape from `sig`. `in_service` allows a receiver; `oneway` is the span of the
/// `oneway` flag, if given.
pub(crate) fn analyze(
    sig: &Signature,
    in_service: bool,
    oneway: Option<Span>,
) -> syn::Result<Shape> {
    let mut errors = Errors::default();

    if let Some(constness) = &sig.constness {
        errors.add(
            constness.span,
            "a procedure handler cannot be a `const fn`: remove `const`",
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.add(
            unsafety.span,
            "a procedure handler cannot be `unsafe`: the dispatcher calls it for any request; \
             remove `unsafe` and check preconditions inside",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.add_spanned(
            abi,
            "a procedure handler uses the Rust ABI: remove the `extern`",
        );
    }
    if sig.asyncness.is_none() {
        errors.add(
            sig.fn_token.span,
            format!(
                "a procedure handler must be an `async fn`: write `async fn {}(...)`",
                sig.ident
            ),
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        let span: &dyn quote::ToTokens = if sig.generics.params.is_empty() {
            &sig.generics.where_clause
        } else {
            &sig.generics
        };
        errors.add_spanned(
            span,
            "a procedure handler cannot be generic: the dispatcher keeps one concrete handler \
             per procedure; use concrete types (register one non-generic procedure per type)",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.add_spanned(variadic, "a procedure handler cannot be variadic");
    }

    let mut receiver = Receiver::None;
    let mut arguments = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                if !in_service {
                    errors.add_spanned(
                        r,
                        "a method is a procedure only inside an `impl` block marked \
                         `#[omnirelay::service(name = \"...\")]`: add it to the impl block, or \
                         make this a free `async fn` without `self`",
                    );
                    continue;
                }
                match receiver_kind(r) {
                    Ok(kind) => receiver = kind,
                    Err(e) => errors.push(e),
                }
            }
            FnArg::Typed(arg) => arguments.push(arg),
        }
    }

    let argument = match arguments.as_slice() {
        [] => {
            errors.add(
                sig.paren_token.span.join(),
                format!("a procedure handler takes its request: add an argument `request: Request<T>`; {ARGUMENT_HELP}"),
            );
            None
        }
        [one] => Some(&one.ty),
        [_, extra, ..] => {
            errors.add_spanned(
                extra,
                format!("a procedure handler takes exactly one argument, the request: remove this one; {ARGUMENT_HELP}"),
            );
            None
        }
    };

    let request = argument.and_then(|ty| {
        if let Type::ImplTrait(_) = strip_group(ty) {
            errors.add_spanned(
                ty,
                format!("a procedure handler cannot take `impl Trait` (it would be generic); {ARGUMENT_HELP}"),
            );
            return None;
        }
        match generic_of(ty, "Request") {
            Some(body) => match generic_of(body, "Streaming") {
                Some(message) => Some((true, message.clone())),
                None if is_path_named(body, "Streaming") => {
                    errors.add_spanned(body, "write the streamed message type: `Streaming<T>`");
                    None
                }
                None => Some((false, body.clone())),
            },
            None => {
                errors.add_spanned(ty, format!("expected `Request<...>`: {ARGUMENT_HELP}"));
                None
            }
        }
    });

    let response = match &sig.output {
        ReturnType::Default => {
            errors.add(
                sig.paren_token.span.close(),
                format!(
                    "a procedure handler returns its outcome: add a return type; {RETURN_HELP}"
                ),
            );
            None
        }
        ReturnType::Type(_, ty) => response_of(ty, &mut errors),
    };

    let (Some((streamed_request, request)), Some(response)) = (request, response) else {
        errors.finish()?;
        unreachable!("a missing request or response always records an error");
    };

    let kind = match (streamed_request, &response) {
        (false, Response::None(_)) => Kind::Oneway,
        (true, Response::None(_)) => Kind::Oneway,
        (false, Response::One(..)) => Kind::Unary,
        (false, Response::Stream(..)) => Kind::ServerStream,
        (true, Response::One(..)) => Kind::ClientStream,
        (true, Response::Stream(..)) => Kind::Duplex,
    };

    match (&response, oneway) {
        (Response::None(unit), None) => errors.add_spanned(
            unit,
            "this handler returns no response: mark the procedure `#[procedure(oneway, ...)]`, \
             or return `Result<Response<T>>` to answer the caller",
        ),
        (Response::One(ty, _) | Response::Stream(ty, _), Some(flag)) => {
            let mut error = syn::Error::new_spanned(
                ty,
                "a `oneway` procedure sends no response: return `omnirelay::Result<()>`, or \
                 drop `oneway` to answer the caller",
            );
            error.combine(syn::Error::new(flag, "`oneway` is given here"));
            errors.push(error);
        }
        (Response::None(_), Some(_)) if streamed_request => errors.add_spanned(
            argument,
            "a `oneway` procedure takes one request, `Request<T>`: a streamed request needs a \
             response (client stream) or a response stream (duplex)",
        ),
        _ => {}
    }
    errors.finish()?;

    let response = match response {
        Response::None(_) => None,
        Response::One(_, ty) | Response::Stream(_, ty) => Some(ty),
    };
    Ok(Shape {
        kind,
        receiver,
        argument: argument.map(|ty| (**ty).clone()).expect("checked above"),
        request,
        response,
    })
}

enum Response {
    /// `Result<()>`, with the `()`.
    None(Type),
    /// `Result<Response<U>>`, with `Response<U>` and `U`.
    One(Type, Type),
    /// `Result<Response<Streaming<U>>>`, with `Response<...>` and `U`.
    Stream(Type, Type),
}

fn response_of(ty: &Type, errors: &mut Errors) -> Option<Response> {
    let Some(args) = generic_args(ty, "Result") else {
        errors.add_spanned(ty, format!("expected `Result<...>`: {RETURN_HELP}"));
        return None;
    };
    let ok = match args.as_slice() {
        [GenericArgument::Type(ok)] => ok,
        [GenericArgument::Type(ok), GenericArgument::Type(err)] => {
            if !is_path_named(err, "Error") {
                errors.add_spanned(
                    err,
                    "a procedure handler fails with `omnirelay::Error` (it carries the code the \
                     caller sees): return `omnirelay::Result<...>`, and turn other errors into \
                     one with `omnirelay::Error::internal(...)` or another code",
                );
                return None;
            }
            ok
        }
        _ => {
            errors.add_spanned(
                ty,
                format!("expected `Result<T>` or `Result<T, omnirelay::Error>`: {RETURN_HELP}"),
            );
            return None;
        }
    };
    if is_unit(ok) {
        return Some(Response::None(ok.clone()));
    }
    match generic_of(ok, "Response") {
        Some(body) => match generic_of(body, "Streaming") {
            Some(message) => Some(Response::Stream(ok.clone(), message.clone())),
            None if is_path_named(body, "Streaming") => {
                errors.add_spanned(body, "write the streamed message type: `Streaming<T>`");
                None
            }
            None => Some(Response::One(ok.clone(), body.clone())),
        },
        None => {
            errors.add_spanned(
                ok,
                format!("expected `Response<...>` or `()`: {RETURN_HELP}; build one with `Response::new(message)`"),
            );
            None
        }
    }
}

fn receiver_kind(r: &syn::Receiver) -> syn::Result<Receiver> {
    const HELP: &str = "take `&self` (or `self: Arc<Self>`): the service is shared by every call \
         behind an `Arc`";
    if r.mutability.is_some() && r.reference.is_none() {
        return Err(syn::Error::new_spanned(
            r,
            format!("a procedure method cannot take `self` by value: {HELP}"),
        ));
    }
    match strip_group(&r.ty) {
        Type::Reference(reference) if reference.mutability.is_some() => {
            Err(syn::Error::new_spanned(
                r,
                format!(
                    "a procedure method cannot take `&mut self`, since calls run concurrently: {HELP}, \
                 and keep state that calls change in a `Mutex`, an atomic or a channel"
                ),
            ))
        }
        Type::Reference(reference) if is_path_named(&reference.elem, "Self") => Ok(Receiver::Ref),
        ty if is_path_named(ty, "Self") => Err(syn::Error::new_spanned(
            r,
            format!("a procedure method cannot take `self` by value: {HELP}"),
        )),
        ty if generic_of(ty, "Arc").is_some_and(|inner| is_path_named(inner, "Self")) => {
            Ok(Receiver::Arc)
        }
        _ => Err(syn::Error::new_spanned(
            r,
            format!("unsupported receiver: {HELP}"),
        )),
    }
}

/// Whether `ty` is written as `Bytes` (what `encoding = "raw"` carries).
pub(crate) fn is_bytes(ty: &Type) -> bool {
    generic_args(ty, "Bytes").is_some_and(|args| args.is_empty())
}
