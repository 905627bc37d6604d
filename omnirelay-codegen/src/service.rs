//! The OmniRelay glue for one protobuf service: a prost-build [`ServiceGenerator`].
//!
//! For a service `S` in package `pkg` it emits, beside the prost messages:
//! - `trait S`: one `fn method(&self, Request<In>) -> impl Future<Output = Result<Response<Out>>> + Send`
//!   per rpc (write them as `async fn` in the impl); streamed sides are [`Streaming`] values;
//! - `SProcedures<T>`: the registration value, `SProcedures::new(impl)`, yielding one procedure
//!   per rpc under encodings `proto` and `json`;
//! - `SClient`: the typed client, one `method` and one `method_with(.., CallOptions)` per rpc;
//! - `mod s_names`: `SERVICE` and one constant per rpc holding the procedure name
//!   (`pkg.S::Method`).
//!
//! Everything refers to the runtime through `<runtime>::__private` and the runtime's public
//! items, so users need no direct dependency on the crates behind it.
//!
//! [`Streaming`]: https://docs.rs/omnirelay-runtime

use std::collections::{HashMap, HashSet};

use proc_macro2::{Ident, Span, TokenStream};
use prost_build::{Comments, Method, Service};
use quote::{format_ident, quote};

use crate::Options;
use crate::ident::{sanitize, to_screaming_snake, to_snake};

/// Generates OmniRelay glue for each service prost hands it.
///
/// Item names never collide with what prost generates in the same package: a name already taken
/// by a message, an enum, a nested-type module or a sub-package module (or by glue of an earlier
/// service) gets `Rpc` appended (`_rpc` for modules) until it is free. So message `EchoClient`
/// beside service `Echo` makes the client `EchoClientRpc`.
#[derive(Debug, Clone)]
pub struct OmniRelayServiceGenerator {
    options: Options,
    taken: HashMap<String, HashSet<String>>,
}

impl OmniRelayServiceGenerator {
    /// A generator with the given options, knowing nothing of the packages' other names (for use
    /// inside a hand-made prost-build `Config`).
    pub fn new(options: Options) -> Self {
        OmniRelayServiceGenerator {
            options,
            taken: HashMap::new(),
        }
    }

    /// A generator that avoids the Rust names prost generates for `fds`' packages.
    pub fn for_descriptors(options: Options, fds: &prost_types::FileDescriptorSet) -> Self {
        OmniRelayServiceGenerator {
            options,
            taken: crate::names::taken_names(fds),
        }
    }

    fn allocate(&mut self, package: &str, base: String, module: bool) -> Ident {
        let taken = self.taken.entry(package.to_owned()).or_default();
        let mut name = base;
        while taken.contains(&name) {
            name.push_str(if module { "_rpc" } else { "Rpc" });
        }
        taken.insert(name.clone());
        ident(&name)
    }
}

pub(crate) fn ident(name: &str) -> Ident {
    let clean = sanitize(name);
    match clean.strip_prefix("r#") {
        Some(raw) => Ident::new_raw(raw, Span::call_site()),
        None => Ident::new(&clean, Span::call_site()),
    }
}

fn path(text: &str) -> TokenStream {
    text.parse()
        .unwrap_or_else(|e| panic!("prost produced an unparsable type path {text:?}: {e}"))
}

/// Proto comments as rustdoc lines, rendered exactly as prost renders them for messages
/// (the comments were already made rustdoc-safe, see `comments.rs`).
pub(crate) fn doc_lines(comments: &Comments) -> Vec<String> {
    let mut rendered = String::new();
    comments.append_with_indent(0, &mut rendered);
    rendered
        .lines()
        .filter_map(|line| line.strip_prefix("///"))
        .map(str::to_owned)
        .collect()
}

fn docs(lines: &[String]) -> TokenStream {
    quote! { #( #[doc = #lines] )* }
}

struct MethodNames<'a> {
    method: &'a Method,
    fn_name: Ident,
    with_name: Ident,
    constant: Ident,
    input: TokenStream,
    output: TokenStream,
    docs: TokenStream,
}

impl prost_build::ServiceGenerator for OmniRelayServiceGenerator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        buf.push_str(&self.service_glue(&service).to_string());
        buf.push('\n');
    }
}

impl OmniRelayServiceGenerator {
    fn service_glue(&mut self, service: &Service) -> TokenStream {
        let rt = path(&self.options.runtime_path);
        let full_service = if service.package.is_empty() {
            service.proto_name.clone()
        } else {
            format!("{}.{}", service.package, service.proto_name)
        };
        let package = service.package.clone();
        let base = service.name.trim_end_matches('_').to_owned();
        let trait_name = self.allocate(&package, service.name.clone(), false);
        let procedures_name = self.allocate(&package, format!("{base}Procedures"), false);
        let client_name = self.allocate(&package, format!("{base}Client"), false);
        let names_mod = self.allocate(&package, format!("{}_names", to_snake(&base)), true);
        let service_docs = doc_lines(&service.comments);

        // Method and constant names are unique within the service (rpcs `Get` and `get`, or
        // `Get` and `GetWith`, would otherwise collide) and never shadow the client's own
        // methods or the `SERVICE` constant: a clash appends `_rpc` (`RPC` for constants).
        let mut fns: HashSet<String> = ["new", "with_encoding"].map(String::from).into();
        let mut consts: HashSet<String> = HashSet::from(["SERVICE".to_owned()]);
        let methods: Vec<MethodNames<'_>> = service
            .methods
            .iter()
            .map(|m| {
                let mut snake = to_snake(&m.proto_name);
                while fns.contains(&sanitize(&snake)) || fns.contains(&format!("{snake}_with")) {
                    snake.push_str("_rpc");
                }
                fns.insert(sanitize(&snake));
                fns.insert(format!("{snake}_with"));
                let mut constant = to_screaming_snake(&m.proto_name);
                while consts.contains(&constant) {
                    constant.push_str("_RPC");
                }
                consts.insert(constant.clone());
                MethodNames {
                    method: m,
                    fn_name: ident(&snake),
                    with_name: format_ident!("{}_with", snake),
                    constant: format_ident!("{}", constant),
                    input: path(&m.input_type),
                    output: path(&m.output_type),
                    docs: docs(&doc_lines(&m.comments)),
                }
            })
            .collect();

        let constants = methods.iter().map(|m| {
            let constant = &m.constant;
            let value = format!("{full_service}::{}", m.method.proto_name);
            let doc = format!(
                " The procedure name of `{full_service}.{}`.",
                m.method.proto_name
            );
            quote! { #[doc = #doc] pub const #constant: &str = #value; }
        });
        let names_doc = format!(" Procedure names of `{full_service}`.");
        let service_doc = format!(" The service's full protobuf name, `{full_service}`.");
        let names = quote! {
            #[doc = #names_doc]
            pub mod #names_mod {
                #[doc = #service_doc]
                pub const SERVICE: &str = #full_service;
                #(#constants)*
            }
        };

        let mut out = names;
        if self.options.server {
            out.extend(self.server(
                &rt,
                service,
                &trait_name,
                &procedures_name,
                &names_mod,
                &methods,
                &service_docs,
                &full_service,
            ));
        }
        if self.options.client {
            out.extend(self.client(&rt, &client_name, &names_mod, &methods, &full_service));
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn server(
        &self,
        rt: &TokenStream,
        _service: &Service,
        trait_name: &Ident,
        procedures_name: &Ident,
        names_mod: &Ident,
        methods: &[MethodNames<'_>],
        service_docs: &[String],
        full_service: &str,
    ) -> TokenStream {
        let trait_docs = docs(service_docs);
        let trait_methods = methods.iter().map(|m| {
            let MethodNames { fn_name, input, output, docs, .. } = m;
            let request = if m.method.client_streaming {
                quote! { #rt::Request<#rt::Streaming<#input>> }
            } else {
                quote! { #rt::Request<#input> }
            };
            let response = if m.method.server_streaming {
                quote! { #rt::Response<#rt::Streaming<#output>> }
            } else {
                quote! { #rt::Response<#output> }
            };
            quote! {
                #docs
                fn #fn_name(&self, request: #request)
                    -> impl ::core::future::Future<Output = #rt::Result<#response>> + ::core::marker::Send;
            }
        });
        // A service without methods still reads its field (no dead-code warning).
        let take_service = if methods.is_empty() {
            quote! { let _ = self.service; }
        } else {
            quote! { let service = self.service; }
        };
        let registrations = methods.iter().map(|m| {
            let MethodNames {
                fn_name,
                input,
                constant,
                ..
            } = m;
            let (ctor, request) = match (m.method.client_streaming, m.method.server_streaming) {
                (false, false) => (quote!(unary), quote!(#rt::Request<#input>)),
                (false, true) => (quote!(server_stream), quote!(#rt::Request<#input>)),
                (true, false) => (
                    quote!(client_stream),
                    quote!(#rt::Request<#rt::Streaming<#input>>),
                ),
                (true, true) => (quote!(duplex), quote!(#rt::Request<#rt::Streaming<#input>>)),
            };
            quote! {
                {
                    let service = service.clone();
                    #rt::procedure::typed::#ctor(
                        #names_mod::#constant,
                        #rt::codec::ProtoJsonCodec,
                        move |request: #request| {
                            let service = service.clone();
                            async move { service.#fn_name(request).await }
                        },
                    )
                }
            }
        });
        let trait_doc_default = format!(
            " The server side of `{full_service}`: implement it and register it with [`{procedures_name}`]."
        );
        let procedures_doc = format!(
            " Registers an implementation of [`{trait_name}`] with a dispatcher: `builder.register({procedures_name}::new(service))`."
        );
        quote! {
            #[doc = #trait_doc_default]
            #[doc = ""]
            #trait_docs
            pub trait #trait_name: ::core::marker::Send + ::core::marker::Sync + 'static {
                #(#trait_methods)*
            }

            #[doc = #procedures_doc]
            #[derive(Debug)]
            pub struct #procedures_name<T> {
                service: ::std::sync::Arc<T>,
            }

            impl<T: #trait_name> #procedures_name<T> {
                /// Wraps a service implementation.
                pub fn new(service: T) -> Self {
                    Self::from_arc(::std::sync::Arc::new(service))
                }

                /// Wraps a shared service implementation.
                pub fn from_arc(service: ::std::sync::Arc<T>) -> Self {
                    Self { service }
                }
            }

            impl<T: #trait_name> #rt::IntoProcedures for #procedures_name<T> {
                fn into_procedures(self) -> ::std::vec::Vec<#rt::ProcedureSpec> {
                    #take_service
                    ::std::vec![ #(#registrations),* ]
                }
            }
        }
    }

    fn client(
        &self,
        rt: &TokenStream,
        client_name: &Ident,
        names_mod: &Ident,
        methods: &[MethodNames<'_>],
        full_service: &str,
    ) -> TokenStream {
        let calls = methods.iter().map(|m| {
            let MethodNames { fn_name, with_name, input, output, constant, docs, .. } = m;
            let with_doc = format!(" Like [`Self::{}`], with per-call options.", fn_name.to_string().trim_start_matches("r#"));
            match (m.method.client_streaming, m.method.server_streaming) {
                (false, false) => quote! {
                    #docs
                    pub async fn #fn_name(&self, request: #input) -> #rt::Result<#rt::Response<#output>> {
                        self.#with_name(request, #rt::CallOptions::new()).await
                    }
                    #[doc = #with_doc]
                    pub async fn #with_name(&self, request: #input, options: #rt::CallOptions) -> #rt::Result<#rt::Response<#output>> {
                        self.inner.unary(#rt::Name::from_static(#names_mod::#constant), &request, options).await
                    }
                },
                (false, true) => quote! {
                    #docs
                    pub async fn #fn_name(&self, request: #input) -> #rt::Result<#rt::Response<#rt::Streaming<#output>>> {
                        self.#with_name(request, #rt::CallOptions::new()).await
                    }
                    #[doc = #with_doc]
                    pub async fn #with_name(&self, request: #input, options: #rt::CallOptions) -> #rt::Result<#rt::Response<#rt::Streaming<#output>>> {
                        self.inner.server_stream(#rt::Name::from_static(#names_mod::#constant), &request, options).await
                    }
                },
                (true, false) => quote! {
                    #docs
                    pub async fn #fn_name(
                        &self,
                        requests: impl #rt::__private::futures::Stream<Item = #input> + ::core::marker::Send + 'static,
                    ) -> #rt::Result<#rt::Response<#output>> {
                        self.#with_name(requests, #rt::CallOptions::new()).await
                    }
                    #[doc = #with_doc]
                    pub async fn #with_name(
                        &self,
                        requests: impl #rt::__private::futures::Stream<Item = #input> + ::core::marker::Send + 'static,
                        options: #rt::CallOptions,
                    ) -> #rt::Result<#rt::Response<#output>> {
                        self.inner.client_stream(#rt::Name::from_static(#names_mod::#constant), requests, options).await
                    }
                },
                (true, true) => quote! {
                    #docs
                    pub async fn #fn_name(
                        &self,
                        requests: impl #rt::__private::futures::Stream<Item = #input> + ::core::marker::Send + 'static,
                    ) -> #rt::Result<#rt::Response<#rt::Streaming<#output>>> {
                        self.#with_name(requests, #rt::CallOptions::new()).await
                    }
                    #[doc = #with_doc]
                    pub async fn #with_name(
                        &self,
                        requests: impl #rt::__private::futures::Stream<Item = #input> + ::core::marker::Send + 'static,
                        options: #rt::CallOptions,
                    ) -> #rt::Result<#rt::Response<#rt::Streaming<#output>>> {
                        self.inner.duplex(#rt::Name::from_static(#names_mod::#constant), requests, options).await
                    }
                },
            }
        });
        let client_doc = format!(" A typed client for `{full_service}`.");
        quote! {
            #[doc = #client_doc]
            #[derive(Clone, Debug)]
            pub struct #client_name {
                inner: #rt::Client,
            }

            impl #client_name {
                /// A client calling through `config` (from `Dispatcher::client_config`), sending
                /// protobuf bodies.
                pub fn new(config: #rt::ClientConfig) -> Self {
                    Self { inner: #rt::Client::new(config) }
                }

                /// The same client, sending bodies in `encoding` (`proto` or `json`).
                pub fn with_encoding(self, encoding: #rt::Encoding) -> Self {
                    Self { inner: self.inner.with_encoding(encoding) }
                }

                #(#calls)*
            }
        }
    }
}
