//! Procedural macros for OmniRelay: handlers written as plain `async fn`s, registered with a
//! dispatcher and described at compile time, with no run-time reflection.
//!
//! Use them through the runtime, which re-exports them: `#[omnirelay::procedure]`,
//! `#[omnirelay::service]`, `omnirelay::procedures![...]`. Their output refers to the runtime as
//! `::omnirelay` (change it with `crate = "..."`) and through `::omnirelay::__private`, so a crate
//! using them needs only the `omnirelay` dependency.
//!
//! - [`macro@procedure`] turns an `async fn` into a unit struct implementing
//!   `omnirelay::Procedure`: name, shape, encodings and aliases are associated constants, and the
//!   spec is built through the same typed constructors (`omnirelay::procedure::typed`) that
//!   generated protobuf code uses, so there is one registration path.
//! - [`macro@service`] does the same for each `#[procedure]` method of an `impl` block, sharing
//!   the value behind an `Arc`, and implements `omnirelay::Service` for the type.
//! - [`procedures!`] lists procedures for one `register` call and rejects two procedures that
//!   claim one name at compile time.
//!
//! # The shape comes from the signature
//!
//! | argument | return | shape |
//! |---|---|---|
//! | `Request<T>` | `Result<Response<U>>` | unary |
//! | `Request<T>` | `Result<()>`, with `oneway` | oneway |
//! | `Request<T>` | `Result<Response<Streaming<U>>>` | server stream |
//! | `Request<Streaming<T>>` | `Result<Response<U>>` | client stream |
//! | `Request<Streaming<T>>` | `Result<Response<Streaming<U>>>` | duplex |
//!
//! `Result` is `omnirelay::Result` (or `Result<_, omnirelay::Error>`). The types are recognised
//! by name (`Request`, `omnirelay::Request`, ...), so use the runtime's types under their own
//! names, not through a `type` alias.
//!
//! # The codec comes from `encoding`
//!
//! | `encoding = ` | codec | serves | messages |
//! |---|---|---|---|
//! | `"json"` | `JsonCodec` | `json` | serde types (`Serialize + DeserializeOwned`) |
//! | `"proto"` | `ProtoCodec` | `proto` | prost messages |
//! | `["proto", "json"]` | `ProtoJsonCodec` | `proto`, `json` | prost messages that are also serde types (what `omnirelay-build` generates, via pbjson) |
//! | `"raw"` | `RawCodec` | `raw` | `bytes::Bytes` |
//!
//! `"proto"` alone does not serve JSON: whether a prost type also implements serde is not known
//! to a macro, and a procedure's encodings are fixed at compile time. Ask for both explicitly with
//! `encoding = ["proto", "json"]`, as generated procedures do. `encoding` is required, on the
//! procedure or (as a default for its methods) on the `#[service]`.

use proc_macro::TokenStream;
use proc_macro2::{Group, Span, TokenTree};

mod args;
mod expand;
mod list;
mod procedure;
mod service;
mod signature;

/// Turns an `async fn` into an OmniRelay procedure.
///
/// ```
/// use omnirelay::{Request, Response, Result};
///
/// /// Answers a ping.
/// #[omnirelay::procedure(encoding = "json", alias = "health::ping")]
/// async fn ping(request: Request<String>) -> Result<Response<String>> {
///     Ok(Response::new(format!("pong: {}", request.body)))
/// }
///
/// // `ping` is now a unit struct; the handler is still callable directly.
/// use omnirelay::Procedure;
/// assert_eq!(ping::NAME, "ping");
/// assert_eq!(ping::KIND, omnirelay::Kind::Unary);
/// assert_eq!(ping::ALIASES, ["health::ping"]);
///
/// let dispatcher = omnirelay::Dispatcher::builder("pinger").register(ping).build()?;
/// assert!(dispatcher.registry().lookup("health::ping").is_some());
/// # Ok::<(), omnirelay::Error>(())
/// ```
///
/// # Keys
///
/// - `encoding = "json" | "proto" | "raw"`, or `encoding = ["proto", "json"]` (required): the
///   codec, see the [crate documentation](crate).
/// - `name = "..."`: the procedure name; defaults to the function's name. A name may contain
///   `::` (`name = "kv::get"`) and `*`/`?` wildcards, as the registry allows.
/// - `alias = "..."`, repeatable: other names the procedure answers to.
/// - `oneway`: a oneway procedure; the handler returns `omnirelay::Result<()>`.
/// - `crate = "..."`: the path of the runtime crate, when it is not reachable as `::omnirelay`.
///
/// # What it generates
///
/// For `async fn ping(...)`: a unit struct `ping` (with the function's visibility and docs)
/// implementing `omnirelay::Procedure`, so `builder.register(ping)` registers it; and an
/// associated function `ping::call(request)`, the original handler, for calling it directly
/// (in tests, say). A mistake in the signature or the attribute is a compile error at the
/// offending tokens, saying what to write instead.
#[proc_macro_attribute]
pub fn procedure(args: TokenStream, item: TokenStream) -> TokenStream {
    procedure::expand(args.into(), item.into()).into()
}

/// Makes the `#[procedure]` methods of an `impl` block the procedures of one service.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use omnirelay::{Request, Response, Result, Service};
///
/// #[derive(Default)]
/// struct Counter {
///     total: AtomicU64,
/// }
///
/// #[omnirelay::service(name = "counter", encoding = "json")]
/// impl Counter {
///     /// Adds to the total and returns it: procedure `counter::add`.
///     #[procedure]
///     async fn add(&self, request: Request<u64>) -> Result<Response<u64>> {
///         let total = self.total.fetch_add(request.body, Ordering::Relaxed) + request.body;
///         Ok(Response::new(total))
///     }
///
///     /// Resets the total: procedure `counter::reset`.
///     #[procedure(oneway, name = "reset")]
///     async fn clear(&self, _request: Request<()>) -> Result<()> {
///         self.total.store(0, Ordering::Relaxed);
///         Ok(())
///     }
///
///     /// Not a procedure: an ordinary method.
///     fn total(&self) -> u64 {
///         self.total.load(Ordering::Relaxed)
///     }
/// }
///
/// assert_eq!(Counter::NAME, "counter");
/// let names: Vec<_> = Counter::PROCEDURES.iter().map(|p| p.name()).collect();
/// assert_eq!(names, ["counter::add", "counter::reset"]);
/// let dispatcher = omnirelay::Dispatcher::builder("counter")
///     .register(Counter::default())
///     .build()?;
/// assert_eq!(dispatcher.registry().len(), 3); // and grpc.health.v1.Health::Check
/// # Ok::<(), omnirelay::Error>(())
/// ```
///
/// # Keys
///
/// On `#[service(...)]`: `name = "..."` (defaults to the type's name; may contain dots, as in
/// `"pkg.Kv"`, but not `::`), `encoding = ...` (the default for methods that give none) and
/// `crate = "..."`. On each method's `#[procedure(...)]`: `encoding`, `name`, `alias` and
/// `oneway` as for free functions, except that `name` and `alias` are the method's part: a
/// procedure is named `<service>::<method>` (DESIGN §2), e.g. `counter::add`.
///
/// # What it generates
///
/// The `impl` block stays as written (minus the `#[procedure]` attributes), so the methods can
/// still be called directly. Each `#[procedure]` method gets a hidden struct holding an
/// `Arc<Self>` and implementing `omnirelay::Procedure`; the type implements
/// `omnirelay::Service` (name and procedure descriptions as constants) and
/// `omnirelay::IntoProcedures`, so `builder.register(value)` registers every procedure with one
/// shared value, and `builder.register(arc.clone())` does the same for an `Arc` the caller keeps.
///
/// A method takes `&self` or `self: Arc<Self>` (or no receiver at all). The type must be
/// `Send + Sync + 'static`, since calls share it across threads. Two methods claiming one name
/// (through `name` or `alias`) are a compile error naming both.
#[proc_macro_attribute]
pub fn service(args: TokenStream, item: TokenStream) -> TokenStream {
    service::expand(args.into(), item.into()).into()
}

/// A list of `#[procedure]`s for one `register` call: `builder.register(procedures![a, b, c])`.
///
/// It evaluates to a `Vec<omnirelay::ProcedureSpec>`. Two procedures in one list that claim the
/// same name (by `name` or `alias`) are a compile error naming both; across lists, or against
/// procedures registered otherwise, the clash is the dispatcher's registration error, which also
/// names both. The check is constant evaluation of the listed procedures' `NAME` and `ALIASES`
/// constants, so it costs nothing at run time; the expansion refers to the runtime as
/// `::omnirelay`.
///
/// ```
/// use omnirelay::{Request, Response, Result};
///
/// #[omnirelay::procedure(encoding = "json")]
/// async fn add(request: Request<(i64, i64)>) -> Result<Response<i64>> {
///     Ok(Response::new(request.body.0 + request.body.1))
/// }
///
/// #[omnirelay::procedure(encoding = "json", name = "sub")]
/// async fn subtract(request: Request<(i64, i64)>) -> Result<Response<i64>> {
///     Ok(Response::new(request.body.0 - request.body.1))
/// }
///
/// let specs = omnirelay::procedures![add, subtract];
/// assert_eq!(specs.iter().map(|s| s.name()).collect::<Vec<_>>(), ["add", "sub"]);
/// ```
#[proc_macro]
pub fn procedures(input: TokenStream) -> TokenStream {
    list::expand(input.into()).into()
}

/// `tokens` with every span set to `span`, so that errors about them point where `span` does.
pub(crate) fn respan(tokens: proc_macro2::TokenStream, span: Span) -> proc_macro2::TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Group(group) => {
                let mut new = Group::new(group.delimiter(), respan(group.stream(), span));
                new.set_span(span);
                TokenTree::Group(new)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

/// The runtime's path: `crate = "..."` if given, else `::omnirelay`.
pub(crate) fn root(krate: Option<&proc_macro2::TokenStream>) -> proc_macro2::TokenStream {
    krate.cloned().unwrap_or_else(|| quote::quote!(::omnirelay))
}
