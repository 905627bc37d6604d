//! `#[procedure]` on a free `async fn`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::{Attribute, ItemFn, LitStr};

use crate::args::{Codec, ProcedureArgs};
use crate::expand::{ProcedureImpl, check_message_types};
use crate::signature::{self, Errors, Kind};

pub(crate) const ENCODING_MISSING: &str = "missing `encoding`: add encoding = \"json\" (serde \
     types), \"proto\" (prost messages), [\"proto\", \"json\"] (both) or \"raw\" (bytes::Bytes)";

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = syn::Error::new(
                Span::call_site(),
                "#[omnirelay::procedure] goes on an `async fn` (or, inside an `impl` block \
                 marked #[omnirelay::service], on an `async` method)",
            );
            return with_item(error, item);
        }
    };
    match expand_fn(args, &function) {
        Ok(tokens) => tokens,
        Err(error) => with_item(error, item),
    }
}

/// The errors plus the item as written, so that code using the item does not fail to resolve
/// it on top of the real mistake.
fn with_item(error: syn::Error, item: TokenStream) -> TokenStream {
    let error = error.to_compile_error();
    quote!(#error #item)
}

/// Checks that no name is claimed twice within one procedure.
pub(crate) fn check_own_names(name: &str, aliases: &[(String, &LitStr)]) -> syn::Result<()> {
    let mut errors = Errors::default();
    for (i, (alias, lit)) in aliases.iter().enumerate() {
        if alias == name {
            errors.add(
                lit.span(),
                format!("alias {alias:?} is the procedure's own name: remove it"),
            );
        } else if aliases[..i].iter().any(|(a, _)| a == alias) {
            errors.add(
                lit.span(),
                format!("alias {alias:?} is given twice: remove one"),
            );
        }
    }
    errors.finish()
}

fn expand_fn(args: TokenStream, function: &ItemFn) -> syn::Result<TokenStream> {
    let mut parsed = ProcedureArgs::default();
    let mut errors = Errors::default();
    // A mistake in the attribute stops here: checking the signature against a half-read
    // attribute (say, without its `oneway`) would only add misleading errors.
    syn::meta::parser(|meta| parsed.parse_key(meta, false)).parse2(args)?;
    let shape = match signature::analyze(&function.sig, false, parsed.oneway) {
        Ok(shape) => Some(shape),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let encoding = parsed.encoding;
    if encoding.is_none() && errors.is_empty() {
        errors.add(Span::call_site(), ENCODING_MISSING);
    }
    errors.finish()?;
    let (Some(shape), Some(encoding)) = (shape, encoding) else {
        unreachable!("errors were reported above");
    };
    check_message_types(&shape, encoding.codec)?;

    let ident = &function.sig.ident;
    let name = parsed
        .name
        .as_ref()
        .map_or_else(|| ident.unraw().to_string(), LitStr::value);
    let aliases: Vec<(String, &LitStr)> = parsed.aliases.iter().map(|l| (l.value(), l)).collect();
    check_own_names(&name, &aliases)?;
    let aliases: Vec<String> = aliases.into_iter().map(|(a, _)| a).collect();

    let root = crate::root(parsed.krate.as_ref());
    let vis = &function.vis;
    let (docs, cfgs, others) = split_attrs(&function.attrs);

    let mut call_sig = function.sig.clone();
    call_sig.ident = format_ident!("call", span = ident.span());
    let block = &function.block;

    let summary = summary_doc(&name, shape.kind, encoding.codec, &aliases);
    let call_doc = format!(
        " Runs the handler of procedure `{name}` directly, as the dispatcher does once it has \
         decoded a request."
    );
    let handler = quote_spanned!(ident.span()=> #ident::call);
    let generics = syn::Generics::default();
    let procedure = ProcedureImpl {
        root: &root,
        ty: quote!(#ident),
        generics: &generics,
        name,
        aliases,
        shape: &shape,
        codec: encoding.codec,
        codec_span: encoding.span,
        handler,
        handler_span: ident.span(),
        prelude: TokenStream::new(),
        cfgs: &cfgs,
    }
    .expand();

    Ok(quote! {
        #(#docs)*
        #[doc = ""]
        #[doc = #summary]
        #(#cfgs)*
        #[allow(non_camel_case_types)]
        #[derive(
            ::core::clone::Clone,
            ::core::marker::Copy,
            ::core::fmt::Debug,
            ::core::default::Default
        )]
        #vis struct #ident;

        #(#cfgs)*
        impl #ident {
            #[doc = #call_doc]
            #(#others)*
            #vis #call_sig #block
        }

        #procedure
    })
}

/// The generated documentation line describing a procedure.
pub(crate) fn summary_doc(name: &str, kind: Kind, codec: Codec, aliases: &[String]) -> String {
    let shape = match kind {
        Kind::Unary => "unary",
        Kind::Oneway => "oneway",
        Kind::ServerStream => "server-stream",
        Kind::ClientStream => "client-stream",
        Kind::Duplex => "duplex",
    };
    let encodings = codec
        .encodings()
        .iter()
        .map(|e| e.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(", ");
    let mut doc = format!(
        " OmniRelay procedure `{name}` ({shape}; encodings {encodings}), generated by \
         `#[omnirelay::procedure]`: register it with `DispatcherBuilder::register`."
    );
    if !aliases.is_empty() {
        let list = aliases
            .iter()
            .map(|a| format!("`{a}`"))
            .collect::<Vec<_>>()
            .join(", ");
        doc.push_str(&format!(" Aliases: {list}."));
    }
    doc
}

/// Splits attributes into docs, `cfg`s and the rest.
fn split_attrs(attrs: &[Attribute]) -> (Vec<&Attribute>, Vec<syn::Attribute>, Vec<&Attribute>) {
    let mut docs = Vec::new();
    let mut cfgs = Vec::new();
    let mut others = Vec::new();
    for attr in attrs {
        if attr.path().is_ident("doc") {
            docs.push(attr);
        } else if attr.path().is_ident("cfg") {
            cfgs.push(attr.clone());
        } else {
            others.push(attr);
        }
    }
    (docs, cfgs, others)
}
