//! # omnirelay-codegen
//!
//! The one generator behind `omnirelay-build` (build.rs) and `protoc-gen-omnirelay-rust` (protoc
//! plugin): a `FileDescriptorSet` in, one Rust file per protobuf package out, holding
//! - the prost messages (derives pointed at the runtime's re-export of prost),
//! - pbjson `Serialize`/`Deserialize` impls, so every message speaks the proto3 JSON mapping,
//! - the OmniRelay glue per service ([`OmniRelayServiceGenerator`]).
//!
//! Both front ends call [`generate`] with the same [`Options`], so their output is byte-identical
//! for the same input.

pub mod ident;
mod service;

use std::collections::BTreeMap;

use prost::Message as _;
use prost_build::Module;
use prost_types::FileDescriptorSet;

pub use service::OmniRelayServiceGenerator;

/// What to generate. Field names mirror prost-build / tonic-build.
#[derive(Clone, Debug)]
pub struct Options {
    /// The path generated code reaches the runtime by; `::omnirelay` by default.
    pub runtime_path: String,
    /// `(proto path, rust path)` pairs: types under the proto path are not generated but taken
    /// from the Rust path (prost-build's `extern_path`).
    pub extern_paths: Vec<(String, String)>,
    /// `(proto path, attribute)` pairs added to matching messages and enums.
    pub type_attributes: Vec<(String, String)>,
    /// `(proto path, attribute)` pairs added to matching fields.
    pub field_attributes: Vec<(String, String)>,
    /// Emit server traits and registration values.
    pub server: bool,
    /// Emit typed clients.
    pub client: bool,
    /// Emit pbjson serde impls (needed for the `json` encoding of generated procedures).
    pub json: bool,
    /// Also emit a file of this name that mounts every package as nested modules.
    pub include_file: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            runtime_path: "::omnirelay".to_owned(),
            extern_paths: Vec::new(),
            type_attributes: Vec::new(),
            field_attributes: Vec::new(),
            server: true,
            client: true,
            json: true,
            include_file: None,
        }
    }
}

/// One generated file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    /// The file name, e.g. `grpc.testing.rs` (`_.rs` for files without a package).
    pub name: String,
    /// The file's content.
    pub content: String,
}

/// A generation failure, naming the file and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

const DEFAULT_PACKAGE_FILE: &str = "_";

/// Generates code for every file in `fds` (well-known types excepted: they map to
/// `pbjson-types` through the runtime unless an `extern_path` says otherwise).
///
/// # Errors
/// A file using a feature the generator does not support (protobuf editions), or a failure
/// inside prost-build or pbjson-build, with the file named.
pub fn generate(fds: &FileDescriptorSet, options: &Options) -> Result<Vec<GeneratedFile>, Error> {
    for file in &fds.file {
        if file.syntax() == "editions" {
            return Err(Error(format!(
                "{}: protobuf editions are not supported yet; use syntax = \"proto3\" or \"proto2\"",
                file.name()
            )));
        }
    }
    let rt = &options.runtime_path;
    let mut extern_paths = options.extern_paths.clone();
    extern_paths.extend(well_known_extern_paths(fds, rt, &options.extern_paths));

    let mut config = prost_build::Config::new();
    config.prost_path(format!("{rt}::__private::prost"));
    // prost's own well-known-type mapping (wrappers to primitives, Empty to `()`) would disagree
    // with pbjson's; both are given the same explicit list instead.
    config.compile_well_known_types();
    for (proto, rust) in &extern_paths {
        config.extern_path(proto, rust);
    }
    for (proto, attr) in &options.type_attributes {
        config.type_attribute(proto, attr);
    }
    for (proto, attr) in &options.field_attributes {
        config.field_attribute(proto, attr);
    }
    config.service_generator(Box::new(OmniRelayServiceGenerator::new(options.clone())));
    let requests = fds
        .file
        .iter()
        .map(|f| (Module::from_protobuf_package_name(f.package()), f.clone()))
        .collect();
    let modules = config
        .generate(requests)
        .map_err(|e| Error(format!("prost-build failed: {e}")))?;

    let mut files: BTreeMap<String, (Module, String)> = modules
        .into_iter()
        .map(|(module, content)| {
            (
                module.to_file_name_or(DEFAULT_PACKAGE_FILE),
                (module, content),
            )
        })
        .collect();

    if options.json {
        let mut json = pbjson_build::Builder::new();
        json.register_descriptors(&fds.encode_to_vec())
            .map_err(|e| Error(format!("pbjson-build cannot read the descriptors: {e}")))?;
        for (proto, rust) in &extern_paths {
            json.extern_path(proto, rust);
        }
        // Types taken from elsewhere bring their own serde impls.
        json.exclude(extern_paths.iter().map(|(proto, _)| proto.clone()));
        let outputs = json
            .generate(&["."], |_| Ok(Vec::<u8>::new()))
            .map_err(|e| Error(format!("pbjson-build failed: {e}")))?;
        for (package, bytes) in outputs {
            let package = package.to_string();
            if bytes.is_empty() || is_extern(&extern_paths, &package) {
                continue;
            }
            let module = Module::from_protobuf_package_name(&package);
            let name = module.to_file_name_or(DEFAULT_PACKAGE_FILE);
            let text = String::from_utf8(bytes)
                .map_err(|_| Error(format!("pbjson-build wrote non-UTF-8 code for {package}")))?;
            let entry = files.entry(name).or_insert_with(|| (module, String::new()));
            entry.1.push_str("// Proto3 JSON mapping (pbjson).\n");
            entry.1.push_str(&rewrite_json_paths(&text, rt));
        }
    }

    // Packages with services carry their descriptors, for reflection and tooling.
    for file in fds.file.iter().filter(|f| !f.service.is_empty()) {
        let name = Module::from_protobuf_package_name(file.package())
            .to_file_name_or(DEFAULT_PACKAGE_FILE);
        if let Some((_, content)) = files.get_mut(&name)
            && !content.contains(FDS_MARKER)
        {
            let encoded = package_descriptor_set(fds, file.package()).encode_to_vec();
            content.push_str(&descriptor_const(file.package(), &encoded));
        }
    }

    let mut out: Vec<GeneratedFile> = Vec::with_capacity(files.len() + 1);
    if let Some(include) = &options.include_file {
        out.push(GeneratedFile {
            name: include.clone(),
            content: include_file(
                files
                    .iter()
                    .map(|(name, (module, _))| (module, name.as_str())),
            ),
        });
    }
    out.extend(
        files
            .into_iter()
            .map(|(name, (_, content))| GeneratedFile { name, content }),
    );
    Ok(out)
}

/// Exact extern paths for every well-known type in `fds` that the user did not map: each goes to
/// its `pbjson-types` twin (a prost message with proto3 JSON impls) through the runtime.
///
/// Types are mapped one by one because prost re-cases the segments of a package-level extern
/// path (which would turn `__private` into `private`), but keeps an exact type path verbatim.
fn well_known_extern_paths(
    fds: &FileDescriptorSet,
    rt: &str,
    user: &[(String, String)],
) -> Vec<(String, String)> {
    fn walk(
        proto_prefix: &str,
        rust_prefix: &str,
        messages: &[prost_types::DescriptorProto],
        enums: &[prost_types::EnumDescriptorProto],
        out: &mut Vec<(String, String)>,
    ) {
        for e in enums {
            out.push((
                format!("{proto_prefix}.{}", e.name()),
                format!("{rust_prefix}::{}", ident::to_upper_camel(e.name())),
            ));
        }
        for m in messages {
            let proto = format!("{proto_prefix}.{}", m.name());
            out.push((
                proto.clone(),
                format!("{rust_prefix}::{}", ident::to_upper_camel(m.name())),
            ));
            let module = format!(
                "{rust_prefix}::{}",
                ident::sanitize(&ident::to_snake(m.name()))
            );
            walk(&proto, &module, &m.nested_type, &m.enum_type, out);
        }
    }
    let covered = |path: &str| {
        user.iter()
            .any(|(p, _)| path == p || path.starts_with(&format!("{p}.")))
    };
    let mut out = Vec::new();
    for file in fds.file.iter().filter(|f| f.package() == "google.protobuf") {
        let root = format!("{rt}::__private::pbjson_types");
        walk(
            ".google.protobuf",
            &root,
            &file.message_type,
            &file.enum_type,
            &mut out,
        );
    }
    out.retain(|(path, _)| !covered(path));
    out.sort();
    out.dedup();
    out
}

const FDS_MARKER: &str = "pub const FILE_DESCRIPTOR_SET: &[u8]";

/// The files of `package` and everything they import, in dependency order.
fn package_descriptor_set(fds: &FileDescriptorSet, package: &str) -> FileDescriptorSet {
    let mut wanted: Vec<&str> = fds
        .file
        .iter()
        .filter(|f| f.package() == package)
        .map(|f| f.name())
        .collect();
    let mut i = 0;
    while i < wanted.len() {
        if let Some(file) = fds.file.iter().find(|f| f.name() == wanted[i]) {
            for dep in &file.dependency {
                if !wanted.contains(&dep.as_str()) {
                    wanted.push(dep);
                }
            }
        }
        i += 1;
    }
    FileDescriptorSet {
        file: fds
            .file
            .iter()
            .filter(|f| wanted.contains(&f.name()))
            .cloned()
            .collect(),
    }
}

/// `pub const FILE_DESCRIPTOR_SET` holding `encoded` as a byte-string literal.
fn descriptor_const(package: &str, encoded: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "/// The encoded `FileDescriptorSet` of package `{package}` and its imports, for reflection and tooling.\n{FDS_MARKER} = b\""
    );
    for &byte in encoded {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(byte as char);
            }
            0x20..=0x7e => out.push(byte as char),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push_str("\";\n");
    out
}

fn is_extern(extern_paths: &[(String, String)], package: &str) -> bool {
    let dotted = format!(".{package}");
    extern_paths
        .iter()
        .any(|(p, _)| dotted == *p || dotted.starts_with(&format!("{p}.")))
}

/// Points pbjson's `serde::` and `pbjson::` paths (bare or `::`-rooted) at the runtime's
/// re-exports.
fn rewrite_json_paths(text: &str, rt: &str) -> String {
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

/// A file that mounts each generated package file as nested `pub mod`s.
fn include_file<'a>(files: impl Iterator<Item = (&'a Module, &'a str)>) -> String {
    let mut out = String::from("// This file is @generated by omnirelay-codegen.\n");
    let mut stack: Vec<String> = Vec::new();
    for (module, file) in files {
        let parts: Vec<String> = module
            .parts()
            .map(|p| service::ident(p).to_string())
            .collect();
        let common = stack.iter().zip(&parts).take_while(|(a, b)| a == b).count();
        while stack.len() > common {
            stack.pop();
            out.push_str(&"    ".repeat(stack.len()));
            out.push_str("}\n");
        }
        for part in &parts[common..] {
            out.push_str(&"    ".repeat(stack.len()));
            out.push_str(&format!("pub mod {part} {{\n"));
            stack.push(part.clone());
        }
        out.push_str(&"    ".repeat(stack.len()));
        out.push_str(&format!("include!({file:?});\n"));
    }
    while !stack.is_empty() {
        stack.pop();
        out.push_str(&"    ".repeat(stack.len()));
        out.push_str("}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_point_at_the_runtime() {
        let text = "impl serde::Serialize for X { fn f() -> ::pbjson::private::Y; pbjson::a(); my_serde::x; a::serde::b; }";
        let out = rewrite_json_paths(text, "::omnirelay");
        assert_eq!(
            out,
            "impl ::omnirelay::__private::serde::Serialize for X { fn f() -> ::omnirelay::__private::pbjson::private::Y; \
             ::omnirelay::__private::pbjson::a(); my_serde::x; a::serde::b; }"
        );
    }
}
