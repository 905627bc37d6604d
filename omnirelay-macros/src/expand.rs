//! Code shared by `#[procedure]` and `#[service]`: the `Procedure` implementation.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Generics, Type};

use crate::args::Codec;
use crate::respan;
use crate::signature::{Kind, Shape};

/// Everything the `Procedure` implementation of one handler needs.
pub(crate) struct ProcedureImpl<'a> {
    /// The runtime's path (`::omnirelay` unless `crate = "..."`).
    pub(crate) root: &'a TokenStream,
    /// The type implementing `Procedure`.
    pub(crate) ty: TokenStream,
    /// Generics of the implementation (a service's impl generics).
    pub(crate) generics: &'a Generics,
    /// The full procedure name.
    pub(crate) name: String,
    /// The full aliases.
    pub(crate) aliases: Vec<String>,
    /// The shape and message types.
    pub(crate) shape: &'a Shape,
    /// The codec.
    pub(crate) codec: Codec,
    /// The span of the `encoding = ...` value, or of the attribute.
    pub(crate) codec_span: Span,
    /// The handler expression given to the typed constructor; it may use `self`.
    pub(crate) handler: TokenStream,
    /// Where errors about the handler (a future that is not `Send`) point: the function's name.
    pub(crate) handler_span: Span,
    /// Statements run first in `into_spec`, e.g. taking the service out of `self`.
    pub(crate) prelude: TokenStream,
    /// `#[cfg(...)]` attributes to repeat on every generated item.
    pub(crate) cfgs: &'a [syn::Attribute],
}

/// The `Kind` path for `kind`.
pub(crate) fn kind_path(root: &TokenStream, kind: Kind) -> TokenStream {
    let variant = format_ident!("{}", kind.names().0);
    quote!(#root::procedure::Kind::#variant)
}

/// The `&[Encoding]` expression for `codec`.
pub(crate) fn encodings_expr(root: &TokenStream, codec: Codec) -> TokenStream {
    let variants = codec.encodings().iter().map(|v| format_ident!("{}", v));
    quote!(&[#(#root::codec::Encoding::#variants),*])
}

/// A `ProcedureInfo` constant expression.
pub(crate) fn info_expr(
    root: &TokenStream,
    name: &str,
    kind: Kind,
    codec: Codec,
    aliases: &[String],
) -> TokenStream {
    let kind = kind_path(root, kind);
    let encodings = encodings_expr(root, codec);
    quote!(#root::procedure::ProcedureInfo::new(#name, #kind, #encodings, &[#(#aliases),*]))
}

/// Checks that a message type fits the codec where the type alone decides it (raw needs
/// `Bytes`), so the error points at the type instead of at a trait bound deep in the runtime.
pub(crate) fn check_message_types(shape: &Shape, codec: Codec) -> syn::Result<()> {
    if codec != Codec::Raw {
        return Ok(());
    }
    let mut errors = crate::signature::Errors::default();
    for ty in std::iter::once(&shape.request).chain(shape.response.as_ref()) {
        if !crate::signature::is_bytes(ty) {
            errors.add(
                ty.span(),
                "encoding \"raw\" carries uninterpreted bytes: use `bytes::Bytes` (also at \
                 `omnirelay::__private::bytes::Bytes`) here, or choose encoding \"json\" or \
                 \"proto\" for typed messages",
            );
        }
    }
    errors.finish()
}

impl ProcedureImpl<'_> {
    /// The `impl Procedure for ...` block.
    pub(crate) fn expand(&self) -> TokenStream {
        let ProcedureImpl {
            root,
            ty,
            generics,
            name,
            aliases,
            shape,
            codec,
            codec_span,
            handler,
            handler_span,
            prelude,
            cfgs,
        } = self;
        let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
        let kind = kind_path(root, shape.kind);
        let encodings = encodings_expr(root, *codec);
        let constructor = format_ident!("{}", shape.kind.names().1);
        // The codec value carries the span of the request message type, so that a type the codec
        // cannot carry is reported there (the runtime's `Codec` trait explains the fix).
        let message_span = first_span(&shape.request).unwrap_or(*codec_span);
        let codec_value = respan(codec.path(root), message_span);
        // The call carries the span of the handler's name: a handler whose future is not `Send`
        // is reported there, with rustc's explanation of which value is held across which await.
        let constructor_path = respan(quote!(#root::procedure::typed::#constructor), *handler_span);
        let name_const = quote_spanned!(*handler_span=> <Self as #root::Procedure>::NAME);
        let spec = quote_spanned! {*handler_span=>
            #constructor_path(#name_const, #codec_value, #handler)
        };
        quote! {
            #(#cfgs)*
            impl #impl_generics #root::Procedure for #ty #ty_generics #where_clause {
                const NAME: &'static str = #name;
                const KIND: #root::procedure::Kind = #kind;
                const ENCODINGS: &'static [#root::codec::Encoding] = #encodings;
                const ALIASES: &'static [&'static str] = &[#(#aliases),*];

                fn into_spec(self) -> #root::ProcedureSpec {
                    #prelude
                    #spec
                }
            }
        }
    }
}

/// The span of a type's first token: where rustc reports a trait bound the type misses.
fn first_span(ty: &Type) -> Option<Span> {
    quote::ToTokens::into_token_stream(ty)
        .into_iter()
        .next()
        .map(|t| t.span())
}
