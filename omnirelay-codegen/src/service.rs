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

use proc_macro2::{Ident, Span, TokenStream};
use prost_build::{Comments, Method, Service};
use quote::{format_ident, quote};

use crate::Options;
use crate::ident::{sanitize, to_screaming_snake, to_snake};

/// Generates OmniRelay glue for each service prost hands it.
#[derive(Debug, Clone)]
pub struct OmniRelayServiceGenerator {
    options: Options,
}

impl OmniRelayServiceGenerator {
    /// A generator with the given options.
    pub fn new(options: Options) -> Self {
        OmniRelayServiceGenerator { options }
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

/// Proto comments as rustdoc. Every line is kept, but leading indentation is dropped (so no
/// indented line becomes a doctest) and code fences are marked `text`.
pub(crate) fn doc_lines(comments: &Comments) -> Vec<String> {
    let mut out = Vec::new();
    for line in comments.leading.iter().flat_map(|c| c.lines()) {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("```") {
            if rest.trim().is_empty() {
                out.push(" ```text".to_owned());
            } else {
                out.push(" ```".to_owned());
            }
        } else {
            out.push(format!(" {trimmed}"));
        }
    }
    // An odd number of fences would leave the rest of the doc inside a code block.
    if out.iter().filter(|l| l.starts_with(" ```")).count() % 2 == 1 {
        out.push(" ```".to_owned());
    }
    out
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
    fn service_glue(&self, service: &Service) -> TokenStream {
        let rt = path(&self.options.runtime_path);
        let full_service = if service.package.is_empty() {
            service.proto_name.clone()
        } else {
            format!("{}.{}", service.package, service.proto_name)
        };
        let trait_name = ident(&service.name);
        let procedures_name = format_ident!("{}Procedures", service.name);
        let client_name = format_ident!("{}Client", service.name);
        let names_mod = format_ident!("{}_names", to_snake(&service.name));
        let service_docs = doc_lines(&service.comments);

        let methods: Vec<MethodNames<'_>> = service
            .methods
            .iter()
            .map(|m| {
                let snake = to_snake(&m.proto_name);
                MethodNames {
                    method: m,
                    fn_name: ident(&snake),
                    with_name: format_ident!("{}_with", snake),
                    constant: format_ident!("{}", to_screaming_snake(&m.proto_name)),
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
                    let service = self.service.clone();
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
                        self.inner.unary(#names_mod::#constant, &request, options).await
                    }
                },
                (false, true) => quote! {
                    #docs
                    pub async fn #fn_name(&self, request: #input) -> #rt::Result<#rt::Response<#rt::Streaming<#output>>> {
                        self.#with_name(request, #rt::CallOptions::new()).await
                    }
                    #[doc = #with_doc]
                    pub async fn #with_name(&self, request: #input, options: #rt::CallOptions) -> #rt::Result<#rt::Response<#rt::Streaming<#output>>> {
                        self.inner.server_stream(#names_mod::#constant, &request, options).await
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
                        self.inner.client_stream(#names_mod::#constant, requests, options).await
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
                        self.inner.duplex(#names_mod::#constant, requests, options).await
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
