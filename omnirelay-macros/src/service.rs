//! `#[service]` on an `impl` block.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Attribute, GenericParam, ImplItem, ImplItemFn, ItemImpl, LitStr, Meta, Type};

use crate::args::{EncodingArg, ProcedureArgs, ServiceArgs};
use crate::expand::{ProcedureImpl, check_message_types, info_expr};
use crate::procedure::{ENCODING_MISSING, check_own_names};
use crate::signature::{self, Errors, Receiver, Shape};

/// One `#[procedure]` method, read and checked.
struct Method {
    ident: syn::Ident,
    shape: Shape,
    encoding: EncodingArg,
    /// The full name and the tokens that gave it (the `name = "..."` literal or the method name).
    name: (String, Span),
    aliases: Vec<(String, Span)>,
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut item_impl: ItemImpl = match syn::parse2(item.clone()) {
        Ok(item_impl) => item_impl,
        Err(_) => {
            let error = syn::Error::new(
                Span::call_site(),
                "#[omnirelay::service] goes on an `impl` block: \
                 `#[omnirelay::service(name = \"kv\")] impl Kv { #[procedure(...)] async fn ... }`",
            );
            let error = error.to_compile_error();
            return quote!(#error #item);
        }
    };
    match expand_impl(args, &mut item_impl) {
        Ok(tokens) => tokens,
        // `item_impl` has had its `#[procedure]` attributes removed, so the only errors are ours.
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#error #item_impl)
        }
    }
}

/// Whether `attr` is `#[procedure]`, `#[procedure(...)]` or `#[<path>::procedure(...)]`.
fn is_procedure_attr(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "procedure")
}

fn expand_impl(args: TokenStream, item_impl: &mut ItemImpl) -> syn::Result<TokenStream> {
    // Take the `#[procedure]` attributes off first: whatever goes wrong below, the impl block is
    // emitted without them, so the only errors are ours.
    let mut marked: Vec<(usize, Vec<Attribute>)> = Vec::new();
    for (index, impl_item) in item_impl.items.iter_mut().enumerate() {
        if let ImplItem::Fn(method) = impl_item {
            let attrs: Vec<Attribute> = method
                .attrs
                .iter()
                .filter(|a| is_procedure_attr(a))
                .cloned()
                .collect();
            method.attrs.retain(|a| !is_procedure_attr(a));
            if !attrs.is_empty() {
                marked.push((index, attrs));
            }
        }
    }

    // A mistake in the attribute stops here, as for procedures.
    let mut service_args = ServiceArgs::default();
    syn::meta::parser(|meta| service_args.parse_key(meta)).parse2(args)?;
    let root = crate::root(service_args.krate.as_ref());

    let mut errors = Errors::default();
    if let Some(unsafety) = &item_impl.unsafety {
        errors.add(
            unsafety.span,
            "#[omnirelay::service] does not go on an `unsafe impl`",
        );
    }
    if let Some((Some(bang), _, _)) = &item_impl.trait_ {
        errors.add(
            bang.span,
            "#[omnirelay::service] does not go on a negative impl",
        );
    }
    for param in &item_impl.generics.params {
        if let GenericParam::Lifetime(lifetime) = param {
            errors.add_spanned(
                lifetime,
                "a service cannot borrow: it is shared by every call for as long as the \
                 dispatcher runs, so it must be `'static`; own the data (or hold an `Arc`)",
            );
        }
    }

    let self_ty = (*item_impl.self_ty).clone();
    let type_name = match &self_ty {
        Type::Path(path) if path.qself.is_none() => {
            path.path.segments.last().map(|s| s.ident.unraw())
        }
        _ => None,
    };
    let service_name = match (&service_args.name, &type_name) {
        (Some(lit), _) => lit.value(),
        (None, Some(ident)) => ident.to_string(),
        (None, None) => {
            errors.add_spanned(
                &self_ty,
                "a service needs a name: give #[omnirelay::service(name = \"...\")]",
            );
            String::new()
        }
    };
    let struct_prefix = type_name
        .as_ref()
        .map_or_else(|| "Service".to_owned(), |i| i.to_string());

    let mut methods = Vec::new();
    for (index, attrs) in &marked {
        let ImplItem::Fn(method) = &item_impl.items[*index] else {
            unreachable!("only methods were marked");
        };
        if let Some(second) = attrs.get(1) {
            errors.add_spanned(
                second,
                "#[procedure] is given twice on one method: merge them into one",
            );
            continue;
        }
        match read_method(method, &attrs[0], &service_name, service_args.encoding) {
            Ok(m) => methods.push(m),
            Err(e) => errors.push(e),
        }
    }

    if marked.is_empty() && errors.is_empty() {
        errors.add_spanned(
            &self_ty,
            "this #[omnirelay::service] has no procedures: mark its handler methods \
             `#[procedure(...)]`, or remove #[omnirelay::service]",
        );
    }
    check_duplicates(&methods, &mut errors);
    errors.finish()?;

    let (impl_generics, _, where_clause) = item_impl.generics.split_for_impl();
    let trait_path = item_impl.trait_.as_ref().map(|(_, path, _)| path.clone());
    let mut items = Vec::new();
    let mut specs = Vec::new();
    let mut infos = Vec::new();
    for method in &methods {
        let ident = &method.ident;
        let struct_name = format_ident!("__OmniRelay_{}_{}", struct_prefix, ident.unraw());
        let function = match &trait_path {
            Some(trait_path) => quote!(<#self_ty as #trait_path>::#ident),
            None => quote!(<#self_ty>::#ident),
        };
        let span = ident.span();
        let argument = &method.shape.argument;
        let (prelude, handler) = match method.shape.receiver {
            Receiver::None => (
                quote!(::core::mem::drop(self.0);),
                quote_spanned!(span=> #function),
            ),
            receiver => {
                let service = match receiver {
                    Receiver::Ref => quote!(&*service),
                    _ => quote!(service),
                };
                (
                    quote!(let service = self.0;),
                    quote_spanned! {span=>
                        move |request: #argument| {
                            let service = ::std::sync::Arc::clone(&service);
                            async move { #function(#service, request).await }
                        }
                    },
                )
            }
        };
        let (name, _) = &method.name;
        let aliases: Vec<String> = method.aliases.iter().map(|(a, _)| a.clone()).collect();
        let procedure = ProcedureImpl {
            root: &root,
            ty: quote!(#struct_name),
            generics: &item_impl.generics,
            name: name.clone(),
            aliases: aliases.clone(),
            shape: &method.shape,
            codec: method.encoding.codec,
            codec_span: method.encoding.span,
            handler,
            handler_span: span,
            prelude,
            cfgs: &[],
        }
        .expand();
        let doc = format!(" The procedure `{name}`: method `{ident}` of service `{service_name}`.");
        items.push(quote! {
            #[doc = #doc]
            #[doc(hidden)]
            #[allow(non_camel_case_types)]
            struct #struct_name #impl_generics (::std::sync::Arc<#self_ty>) #where_clause;

            #procedure
        });
        specs.push(quote! {
            #root::procedure::spec_of(#struct_name(::std::sync::Arc::clone(&self)))
        });
        infos.push(info_expr(
            &root,
            name,
            method.shape.kind,
            method.encoding.codec,
            &aliases,
        ));
    }

    // The service type must be shareable across threads: the error for a type that is not points
    // at the type in the `impl` header.
    let service_trait = quote_spanned!(self_ty.span()=> #root::Service);
    Ok(quote! {
        #item_impl

        #(#items)*

        impl #impl_generics #service_trait for #self_ty #where_clause {
            const NAME: &'static str = #service_name;
            const PROCEDURES: &'static [#root::procedure::ProcedureInfo] = &[#(#infos),*];

            fn procedures(
                self: ::std::sync::Arc<Self>,
            ) -> ::std::vec::Vec<#root::ProcedureSpec> {
                ::std::vec![#(#specs),*]
            }
        }

        impl #impl_generics #root::IntoProcedures for #self_ty #where_clause {
            fn into_procedures(self) -> ::std::vec::Vec<#root::ProcedureSpec> {
                // Through `Arc<Self>: IntoProcedures`, which needs only `Self: Service`, so that a
                // type that is not `Send + Sync` is reported once, at the `Service` impl.
                #root::IntoProcedures::into_procedures(::std::sync::Arc::new(self))
            }
        }
    })
}

fn read_method(
    method: &ImplItemFn,
    attr: &Attribute,
    service: &str,
    default_encoding: Option<EncodingArg>,
) -> syn::Result<Method> {
    let mut errors = Errors::default();
    let mut args = ProcedureArgs::default();
    // A mistake in the attribute stops here, as for free functions.
    match &attr.meta {
        Meta::Path(_) => {}
        Meta::List(list) => list.parse_nested_meta(|meta| args.parse_key(meta, true))?,
        Meta::NameValue(nv) => {
            return Err(syn::Error::new_spanned(
                nv,
                "write the keys in parentheses: #[procedure(encoding = \"json\", ...)]",
            ));
        }
    }
    for cfg in method.attrs.iter().filter(|a| a.path().is_ident("cfg")) {
        errors.add_spanned(
            cfg,
            "#[cfg] on a #[procedure] method is not supported: put the method in its own \
             #[service] impl block under the #[cfg]",
        );
    }
    let shape = match signature::analyze(&method.sig, true, args.oneway) {
        Ok(shape) => Some(shape),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let encoding = args.encoding.or(default_encoding);
    if encoding.is_none() && errors.is_empty() {
        errors.add_spanned(
            attr,
            format!("{ENCODING_MISSING}, here or as a default on #[omnirelay::service(...)]"),
        );
    }
    errors.finish()?;
    let (Some(shape), Some(encoding)) = (shape, encoding) else {
        unreachable!("errors were reported above");
    };
    check_message_types(&shape, encoding.codec)?;

    let ident = method.sig.ident.clone();
    let full = |part: &str| format!("{service}::{part}");
    let name = match &args.name {
        Some(lit) => (full(&lit.value()), lit.span()),
        None => (full(&ident.unraw().to_string()), ident.span()),
    };
    let alias_lits: Vec<(String, &LitStr)> =
        args.aliases.iter().map(|l| (full(&l.value()), l)).collect();
    check_own_names(&name.0, &alias_lits)?;
    let aliases = alias_lits.into_iter().map(|(a, l)| (a, l.span())).collect();
    Ok(Method {
        ident,
        shape,
        encoding,
        name,
        aliases,
    })
}

/// Two methods claiming one name or alias: an error at the later claim naming both methods, and
/// a note at the earlier one.
fn check_duplicates(methods: &[Method], errors: &mut Errors) {
    let mut claimed: Vec<(&str, &syn::Ident, Span)> = Vec::new();
    for method in methods {
        let names = std::iter::once(&method.name).chain(&method.aliases);
        for (name, span) in names {
            if let Some((_, first, first_span)) = claimed.iter().find(|(n, ..)| *n == name.as_str())
            {
                errors.add(
                    *span,
                    format!(
                        "methods `{first}` and `{}` both register the procedure name {name:?}: \
                         rename one with #[procedure(name = \"...\")] or drop the alias",
                        method.ident
                    ),
                );
                errors.add(
                    *first_span,
                    format!("{name:?} is first registered by `{first}` here"),
                );
            } else {
                claimed.push((name, &method.ident, *span));
            }
        }
    }
}
