//! `procedures![a, b, c]`.
//!
//! The names of `#[procedure]`s are associated constants of their types, which the macro cannot
//! see, so the duplicate check is constant evaluation: for each pair of listed procedures a
//! `const _: () = ...` item compares their names and aliases and panics, naming both, if they
//! share one. The panic is spanned at the later of the two, so the error points at it.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Path, Token};

use crate::respan;
use crate::signature::Errors;

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    match expand_list(input) {
        Ok(tokens) => tokens,
        Err(error) => error.to_compile_error(),
    }
}

const HELP: &str = "procedures![...] lists #[omnirelay::procedure] functions by name, e.g. \
     procedures![ping, echo]; register services, generated `...Procedures` values and \
     `ProcedureSpec`s with their own `.register(...)` call";

fn expand_list(input: TokenStream) -> syn::Result<TokenStream> {
    let exprs = Punctuated::<Expr, Token![,]>::parse_terminated
        .parse2(input)
        .map_err(|e| syn::Error::new(e.span(), format!("{e}: {HELP}")))?;
    let mut errors = Errors::default();
    let mut paths: Vec<Path> = Vec::new();
    for expr in &exprs {
        match expr {
            Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => {
                let text = p.path.to_token_stream().to_string();
                if paths
                    .iter()
                    .any(|q| q.to_token_stream().to_string() == text)
                {
                    errors.add_spanned(
                        p,
                        format!("`{}` is listed twice: remove one", text.replace(' ', "")),
                    );
                } else {
                    paths.push(p.path.clone());
                }
            }
            other => errors.add_spanned(other, format!("expected the name of a procedure: {HELP}")),
        }
    }
    errors.finish()?;

    let root = quote!(::omnirelay);
    // `<path as Procedure>`, spanned at the path so that a listed item that is not a procedure is
    // reported there (the `Procedure` trait's diagnostic explains what to do).
    let procedure = |path: &Path| {
        let span = path
            .to_token_stream()
            .into_iter()
            .next()
            .map_or_else(|| path.span(), |t| t.span());
        respan(quote!(<#path as #root::Procedure>), span)
    };

    let mut checks = Vec::new();
    for (j, later) in paths.iter().enumerate() {
        for earlier in &paths[..j] {
            let (a, b) = (procedure(earlier), procedure(later));
            let message = format!(
                "procedures `{}` and `{}` in this procedures![...] list both register the name \"",
                earlier.to_token_stream().to_string().replace(' ', ""),
                later.to_token_stream().to_string().replace(' ', ""),
            );
            let fix = "\": rename one with #[procedure(name = \"...\")], or drop the shared alias";
            let span = later.span();
            checks.push(quote_spanned! {span=>
                const _: () = {
                    if let ::core::option::Option::Some(name) = #root::__private::shared_name(
                        #a::NAME, #a::ALIASES, #b::NAME, #b::ALIASES,
                    ) {
                        let message = #root::__private::ConstMessage::new()
                            .push(#message)
                            .push(name)
                            .push(#fix);
                        ::core::panic!("{}", message.as_str());
                    }
                };
            });
        }
    }
    let specs = paths.iter().map(|path| {
        let span = path.span();
        quote_spanned!(span=> #root::procedure::spec_of(#path))
    });
    Ok(quote! {
        {
            #(#checks)*
            ::std::vec::Vec::<#root::ProcedureSpec>::from([#(#specs),*])
        }
    })
}
