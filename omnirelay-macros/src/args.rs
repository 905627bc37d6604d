//! The attribute arguments of `#[procedure(...)]` and `#[service(...)]`.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{LitStr, Path, Token};

/// The codec a procedure's messages go through, chosen by `encoding = ...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Codec {
    /// `encoding = "json"`: serde types through `JsonCodec`.
    Json,
    /// `encoding = "proto"`: prost messages through `ProtoCodec`.
    Proto,
    /// `encoding = ["proto", "json"]`: prost + serde (pbjson) messages through `ProtoJsonCodec`.
    ProtoJson,
    /// `encoding = "raw"`: `bytes::Bytes` through `RawCodec`.
    Raw,
}

impl Codec {
    /// The codec's type under the runtime path `root`.
    pub(crate) fn path(self, root: &TokenStream) -> TokenStream {
        match self {
            Codec::Json => quote!(#root::codec::JsonCodec),
            Codec::Proto => quote!(#root::codec::ProtoCodec),
            Codec::ProtoJson => quote!(#root::codec::ProtoJsonCodec),
            Codec::Raw => quote!(#root::codec::RawCodec),
        }
    }

    /// The `Encoding` variants the codec serves, in the order its `encodings()` lists them.
    pub(crate) fn encodings(self) -> &'static [&'static str] {
        match self {
            Codec::Json => &["Json"],
            Codec::Proto => &["Proto"],
            Codec::ProtoJson => &["Proto", "Json"],
            Codec::Raw => &["Raw"],
        }
    }
}

/// `encoding = ...` as written, with the span of its value.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EncodingArg {
    pub(crate) codec: Codec,
    pub(crate) span: Span,
}

const ENCODING_HELP: &str = "expected \"json\" (serde types), \"proto\" (prost messages), \
     [\"proto\", \"json\"] (prost messages that are also serde types, as omnirelay-build generates) \
     or \"raw\" (bytes::Bytes)";

fn parse_encoding(meta: &ParseNestedMeta<'_>) -> syn::Result<EncodingArg> {
    let value = meta.value()?;
    if value.peek(syn::token::Bracket) {
        let content;
        let brackets = syn::bracketed!(content in value);
        let names: Punctuated<LitStr, Token![,]> = Punctuated::parse_terminated(&content)?;
        let span = brackets.span.join();
        let mut seen: Vec<(Codec, LitStr)> = Vec::new();
        for lit in &names {
            let codec = encoding_name(lit)?;
            if let Some((_, first)) = seen.iter().find(|(c, _)| *c == codec) {
                return Err(syn::Error::new(
                    lit.span(),
                    format!(
                        "encoding {:?} is listed twice: remove one of them",
                        first.value()
                    ),
                ));
            }
            seen.push((codec, lit.clone()));
        }
        let codecs: Vec<Codec> = seen.iter().map(|(c, _)| *c).collect();
        let codec = match codecs.as_slice() {
            [] => {
                return Err(syn::Error::new(
                    span,
                    format!("the encoding list is empty: {ENCODING_HELP}"),
                ));
            }
            [one] => *one,
            [Codec::Proto, Codec::Json] | [Codec::Json, Codec::Proto] => Codec::ProtoJson,
            _ => {
                return Err(syn::Error::new(
                    span,
                    "only \"proto\" and \"json\" can be combined: one codec serves both for \
                     prost messages that are also serde types; \"raw\" carries bytes::Bytes \
                     and stands alone",
                ));
            }
        };
        Ok(EncodingArg { codec, span })
    } else {
        let lit: LitStr = value.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("`encoding` needs a value: {ENCODING_HELP}"),
            )
        })?;
        Ok(EncodingArg {
            codec: encoding_name(&lit)?,
            span: lit.span(),
        })
    }
}

fn encoding_name(lit: &LitStr) -> syn::Result<Codec> {
    match lit.value().as_str() {
        "json" => Ok(Codec::Json),
        "proto" => Ok(Codec::Proto),
        "raw" => Ok(Codec::Raw),
        other => {
            let hint = match other.to_ascii_lowercase().as_str() {
                "protobuf" | "application/x-protobuf" | "application/protobuf" | "pb" => {
                    " (write \"proto\")"
                }
                "application/json" | "serde" | "serde_json" => " (write \"json\")",
                "bytes" | "application/octet-stream" | "binary" => " (write \"raw\")",
                _ => "",
            };
            Err(syn::Error::new(
                lit.span(),
                format!("unknown encoding {other:?}{hint}: {ENCODING_HELP}"),
            ))
        }
    }
}

/// Checks a procedure name or alias: not empty, no whitespace or control characters, and (inside
/// a service, where the service name is prepended) no `::`.
fn check_name(lit: &LitStr, what: &str, in_service: bool) -> syn::Result<()> {
    let value = lit.value();
    if value.is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            format!("the {what} is empty: give a name such as \"ping\""),
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "the {what} {value:?} contains {c:?}: procedure names have no whitespace or control characters"
            ),
        ));
    }
    if in_service && value.contains("::") {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "inside a #[service] the {what} is the method's part only: the service name and \
                 `::` are prepended, so write {:?}",
                value.rsplit("::").next().unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

fn parse_crate(meta: &ParseNestedMeta<'_>) -> syn::Result<TokenStream> {
    let lit: LitStr = meta.value()?.parse()?;
    let path: Path = lit.parse().map_err(|_| {
        syn::Error::new(
            lit.span(),
            "`crate` takes the path the runtime is reachable at, e.g. crate = \"::omnirelay\"",
        )
    })?;
    let span = lit.span();
    Ok(crate::respan(quote!(#path), span))
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    meta: &ParseNestedMeta<'_>,
    key: &str,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(meta.error(format!("`{key}` is given twice: keep one")));
    }
    *slot = Some(value);
    Ok(())
}

/// The arguments of `#[procedure(...)]`.
#[derive(Default)]
pub(crate) struct ProcedureArgs {
    pub(crate) name: Option<LitStr>,
    pub(crate) encoding: Option<EncodingArg>,
    pub(crate) aliases: Vec<LitStr>,
    pub(crate) oneway: Option<Span>,
    pub(crate) krate: Option<TokenStream>,
}

impl ProcedureArgs {
    /// Parses one `key = value` (or `oneway`). `in_service` is true for a method of a
    /// `#[service]`, where `crate` belongs on the service and names are method parts.
    pub(crate) fn parse_key(
        &mut self,
        meta: ParseNestedMeta<'_>,
        in_service: bool,
    ) -> syn::Result<()> {
        let key = &meta.path;
        if key.is_ident("name") {
            let lit: LitStr = meta.value()?.parse()?;
            check_name(&lit, "procedure name", in_service)?;
            set_once(&mut self.name, lit, &meta, "name")
        } else if key.is_ident("encoding") {
            let encoding = parse_encoding(&meta)?;
            if self.encoding.is_some() {
                return Err(syn::Error::new(
                    key.span(),
                    "`encoding` is given twice: to serve protobuf and JSON write \
                     encoding = [\"proto\", \"json\"]",
                ));
            }
            self.encoding = Some(encoding);
            Ok(())
        } else if key.is_ident("alias") {
            let lit: LitStr = meta.value()?.parse()?;
            check_name(&lit, "alias", in_service)?;
            self.aliases.push(lit);
            Ok(())
        } else if key.is_ident("oneway") {
            if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
                return Err(meta.error("`oneway` is a flag and takes no value: write `oneway`"));
            }
            set_once(&mut self.oneway, key.span(), &meta, "oneway")
        } else if key.is_ident("crate") && !in_service {
            let path = parse_crate(&meta)?;
            set_once(&mut self.krate, path, &meta, "crate")
        } else if key.is_ident("crate") {
            Err(meta
                .error("inside a #[service], give `crate = \"...\"` on the #[service] attribute"))
        } else {
            let keys = if in_service {
                "name, encoding, alias, oneway"
            } else {
                "name, encoding, alias, oneway, crate"
            };
            Err(meta.error(format!(
                "unknown #[procedure] key `{}`: expected one of {keys}",
                quote!(#key).to_string().replace(' ', "")
            )))
        }
    }
}

/// The arguments of `#[service(...)]`.
#[derive(Default)]
pub(crate) struct ServiceArgs {
    pub(crate) name: Option<LitStr>,
    pub(crate) encoding: Option<EncodingArg>,
    pub(crate) krate: Option<TokenStream>,
}

impl ServiceArgs {
    /// Parses one `key = value`.
    pub(crate) fn parse_key(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let key = &meta.path;
        if key.is_ident("name") {
            let lit: LitStr = meta.value()?.parse()?;
            check_name(&lit, "service name", false)?;
            if lit.value().contains("::") {
                return Err(syn::Error::new(
                    lit.span(),
                    "a service name cannot contain `::`: procedures are named \
                     `<service>::<method>`; use dots for a package, e.g. \"pkg.Kv\"",
                ));
            }
            set_once(&mut self.name, lit, &meta, "name")
        } else if key.is_ident("encoding") {
            let encoding = parse_encoding(&meta)?;
            set_once(&mut self.encoding, encoding, &meta, "encoding")
        } else if key.is_ident("crate") {
            let path = parse_crate(&meta)?;
            set_once(&mut self.krate, path, &meta, "crate")
        } else {
            Err(meta.error(format!(
                "unknown #[service] key `{}`: expected one of name, encoding, crate \
                 (per-procedure keys go on each method's #[procedure(...)])",
                quote!(#key).to_string().replace(' ', "")
            )))
        }
    }
}
