//! The proto3 JSON half of the output: pbjson-build's serde impls, adjusted to sit beside prost's
//! messages in OmniRelay's generated files.
//!
//! pbjson-build is run on the same descriptors and extern paths as prost-build; three things are
//! mended in what it writes:
//! - its `serde::` and `pbjson::` paths point at the runtime's re-exports, so users need neither
//!   crate as a dependency;
//! - it does not escape `gen` (reserved in edition 2024) while prost does, so `gen` fields are
//!   written `r#gen` as prost writes them;
//! - it cannot handle files without a package, so those are given a placeholder package for
//!   pbjson and the placeholder is removed from its output again.

use prost::Message as _;
use prost_types::FileDescriptorSet;

use crate::ident::{sanitize, to_snake, to_upper_camel};
use crate::text::replace_path;
use crate::{Error, Options};

/// The placeholder package pbjson sees for package-less files (removed from its output again).
const PLACEHOLDER: &str = "omnirelay_no_package_placeholder";

/// pbjson's serde impls per proto package.
pub(crate) fn generate(
    fds: &FileDescriptorSet,
    extern_paths: &[(String, String)],
    options: &Options,
) -> Result<Vec<(String, String)>, Error> {
    let rt = &options.runtime_path;
    let fds = with_placeholder_package(fds);
    let mut json = pbjson_build::Builder::new();
    json.register_descriptors(&fds.encode_to_vec())
        .map_err(|e| Error(format!("pbjson-build cannot read the descriptors: {e}")))?;
    for (proto, rust) in extern_paths {
        json.extern_path(proto, rust);
    }
    json.btree_map(options.btree_maps.iter().cloned());
    // Types taken from elsewhere bring their own serde impls.
    json.exclude(extern_paths.iter().map(|(proto, _)| proto.clone()));
    let outputs = json
        .generate(&["."], |_| Ok(Vec::<u8>::new()))
        .map_err(|e| Error(format!("pbjson-build failed: {e}")))?;
    // pbjson names packages with its own keyword escapes (`sample.r#type.v1`); map them back.
    let by_display: std::collections::HashMap<String, &str> = fds
        .file
        .iter()
        .map(|f| (pbjson_display(f.package()), f.package()))
        .collect();
    let mut out = Vec::new();
    for (package, bytes) in outputs {
        let display = package.to_string();
        let mut package = by_display
            .get(&display)
            .map_or(display, |p| (*p).to_owned());
        if bytes.is_empty() || is_extern(extern_paths, &package) {
            continue;
        }
        let mut text = String::from_utf8(bytes)
            .map_err(|_| Error(format!("pbjson-build wrote non-UTF-8 code for {package}")))?;
        if package == PLACEHOLDER {
            // The placeholder package sat one module below the root: its `super::` steps and
            // its own name disappear.
            text = text.replace("super::", "");
            package.clear();
        }
        text = text
            .replace(&format!("{PLACEHOLDER}::"), "")
            .replace(&format!("{PLACEHOLDER}."), "");
        let text = escape_self_variants(&escape_gen(&rewrite_paths(&text, rt)));
        let text = rename_clashing_oneofs(&text, &fds, &package);
        out.push((package, text));
    }
    Ok(out)
}

/// Enum values whose stripped name is `Self` are `Self_` in prost's enums; pbjson writes
/// `Marker::Self`. Every `Path::Self` (a variant, never a path start) becomes `Path::Self_`.
fn escape_self_variants(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("::Self") {
        let head = &rest[..pos];
        let tail = &rest[pos + "::Self".len()..];
        let after_ident = tail
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        let path_before = head
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        out.push_str(head);
        out.push_str("::Self");
        if path_before && !after_ident && !tail.starts_with("::") {
            out.push('_');
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// prost names a oneof's enum `<Name>OneOf` when a nested message or enum of the same message
/// already has the name; pbjson does not. Its variant paths are renamed to prost's.
fn rename_clashing_oneofs(text: &str, fds: &FileDescriptorSet, package: &str) -> String {
    fn walk(
        module: &str,
        messages: &[prost_types::DescriptorProto],
        renames: &mut Vec<(String, String)>,
    ) {
        for m in messages {
            let own = format!("{module}{}", sanitize(&to_snake(m.name())));
            let nested: Vec<String> = m
                .nested_type
                .iter()
                .map(|n| to_upper_camel(n.name()))
                .chain(m.enum_type.iter().map(|e| to_upper_camel(e.name())))
                .collect();
            for (index, oneof) in m.oneof_decl.iter().enumerate() {
                let name = to_upper_camel(oneof.name());
                if !nested.contains(&name) {
                    continue;
                }
                for field in m
                    .field
                    .iter()
                    .filter(|f| f.oneof_index == Some(index as i32))
                {
                    let variant = to_upper_camel(field.name());
                    renames.push((
                        format!("{own}::{name}::{variant}"),
                        format!("{own}::{name}OneOf::{variant}"),
                    ));
                }
            }
            walk(&format!("{own}::"), &m.nested_type, renames);
        }
    }
    let mut renames = Vec::new();
    for file in fds
        .file
        .iter()
        .filter(|f| f.package() == package || (package.is_empty() && f.package() == PLACEHOLDER))
    {
        walk("", &file.message_type, &mut renames);
    }
    renames.iter().fold(text.to_owned(), |text, (from, to)| {
        replace_path(&text, from, to)
    })
}

/// How pbjson-build spells a package: each segment escaped as its `escape_ident` does.
fn pbjson_display(package: &str) -> String {
    package
        .split('.')
        .map(|segment| match segment {
            "self" | "super" | "extern" | "crate" => format!("{segment}_"),
            s if crate::ident::sanitize(s).starts_with("r#") && s != "gen" => format!("r#{s}"),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A copy of `fds` where package-less files are in [`PLACEHOLDER`], with every reference to
/// their types rewritten to match.
fn with_placeholder_package(fds: &FileDescriptorSet) -> FileDescriptorSet {
    let roots: Vec<String> = fds
        .file
        .iter()
        .filter(|f| f.package().is_empty())
        .flat_map(|f| {
            f.message_type
                .iter()
                .map(|m| m.name().to_owned())
                .chain(f.enum_type.iter().map(|e| e.name().to_owned()))
        })
        .collect();
    if roots.is_empty() {
        return fds.clone();
    }
    let rename = |type_name: &mut Option<String>| {
        if let Some(name) = type_name.as_mut() {
            let first = name.trim_start_matches('.').split('.').next().unwrap_or("");
            if name.starts_with('.') && roots.iter().any(|r| r == first) {
                *name = format!(".{PLACEHOLDER}{name}");
            }
        }
    };
    fn walk(messages: &mut [prost_types::DescriptorProto], rename: &dyn Fn(&mut Option<String>)) {
        for m in messages {
            for field in m.field.iter_mut().chain(m.extension.iter_mut()) {
                rename(&mut field.type_name);
                rename(&mut field.extendee);
            }
            walk(&mut m.nested_type, rename);
        }
    }
    let mut fds = fds.clone();
    for file in &mut fds.file {
        if file.package().is_empty() {
            file.package = Some(PLACEHOLDER.to_owned());
        }
        walk(&mut file.message_type, &rename);
        for field in &mut file.extension {
            rename(&mut field.type_name);
            rename(&mut field.extendee);
        }
    }
    fds
}

/// Writes `gen` as prost does (`r#gen`) where pbjson left it bare: field accesses
/// (`self.gen`) and struct-literal fields (`gen: ...`).
fn escape_gen(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if rest.starts_with("gen") {
            let before = if i == 0 { b' ' } else { bytes[i - 1] };
            let after = bytes.get(i + 3).copied().unwrap_or(b' ');
            let ident_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
            let standalone = !(ident_byte(before) || before == b'#' || ident_byte(after));
            let field_access = before == b'.';
            let field_init = after == b':' && bytes.get(i + 4) != Some(&b':');
            if standalone && (field_access || field_init) {
                out.push_str("r#gen");
                i += 3;
                continue;
            }
        }
        let c = rest.chars().next().expect("not at the end");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Points pbjson's `serde::` and `pbjson::` paths (bare or `::`-rooted) at the runtime's
/// re-exports.
fn rewrite_paths(text: &str, rt: &str) -> String {
    let mut text = text.to_owned();
    for krate in ["serde", "pbjson"] {
        let needle = format!("{krate}::");
        let mut out = String::with_capacity(text.len() + text.len() / 8);
        let mut rest = text.as_str();
        while let Some(pos) = rest.find(&needle) {
            let head = &rest[..pos];
            let before = head.chars().next_back();
            let rooted = head.ends_with("::")
                && !head[..head.len() - 2].ends_with(|c: char| c.is_alphanumeric() || c == '_');
            let bare = !matches!(before, Some(c) if c == ':' || c == '_' || c.is_alphanumeric());
            if rooted {
                out.push_str(&head[..head.len() - 2]);
            } else {
                out.push_str(head);
            }
            if rooted || bare {
                out.push_str(rt);
                out.push_str("::__private::");
            }
            out.push_str(&needle);
            rest = &rest[pos + needle.len()..];
        }
        out.push_str(rest);
        text = out;
    }
    text
}

pub(crate) fn is_extern(extern_paths: &[(String, String)], package: &str) -> bool {
    let dotted = format!(".{package}");
    extern_paths
        .iter()
        .any(|(p, _)| dotted == *p || dotted.starts_with(&format!("{p}.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_point_at_the_runtime() {
        let text = "impl serde::Serialize for X { fn f() -> ::pbjson::private::Y; pbjson::a(); my_serde::x; a::serde::b; }";
        let out = rewrite_paths(text, "::omnirelay");
        assert_eq!(
            out,
            "impl ::omnirelay::__private::serde::Serialize for X { fn f() -> ::omnirelay::__private::pbjson::private::Y; \
             ::omnirelay::__private::pbjson::a(); my_serde::x; a::serde::b; }"
        );
    }

    #[test]
    fn self_variants_get_prost_suffix() {
        assert_eq!(
            escape_self_variants(
                "Self::Self => 1, Marker::Self) Self::Other Self::Self::x impl Self"
            ),
            "Self::Self_ => 1, Marker::Self_) Self::Other Self::Self::x impl Self"
        );
    }

    #[test]
    fn gen_is_escaped_where_prost_escapes_it() {
        let text = "if self.gen != 0 { x.serialize_field(\"gen\", &self.gen)?; } Foo { gen: gen__.unwrap(), generic: 1 }; a::gen::b; GeneratedField::Gen";
        assert_eq!(
            escape_gen(text),
            "if self.r#gen != 0 { x.serialize_field(\"gen\", &self.r#gen)?; } Foo { r#gen: gen__.unwrap(), generic: 1 }; a::gen::b; GeneratedField::Gen"
        );
    }
}
