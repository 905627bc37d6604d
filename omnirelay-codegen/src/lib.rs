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

mod comments;
pub mod ident;
mod json;
mod names;
mod service;
mod text;

use std::collections::{BTreeMap, HashMap};

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
    /// Proto paths (`.` for all) whose map fields are `BTreeMap`s instead of `HashMap`s.
    pub btree_maps: Vec<String>,
    /// Proto paths (`.` for all) whose `bytes` fields are `bytes::Bytes` instead of `Vec<u8>`.
    pub bytes: Vec<String>,
    /// Emit server traits and registration values.
    pub server: bool,
    /// Emit typed clients.
    pub client: bool,
    /// Emit pbjson serde impls (needed for the `json` encoding of generated procedures).
    pub json: bool,
    /// Also emit a file of this name that mounts every package as nested modules.
    pub include_file: Option<String>,
    /// Embed `FILE_DESCRIPTOR_SET` (the package's files and imports, encoded) in each package
    /// that has services.
    pub descriptor_consts: bool,
    /// Generate the well-known types (`google.protobuf.*`) like any other package instead of
    /// taking them from `pbjson-types` through the runtime.
    pub compile_well_known_types: bool,
    /// Write only these proto packages (`""` for files without a package); `None` writes every
    /// package with generated code. The protoc plugin sets it to the packages of the files it
    /// was asked to generate; the other files only inform the generator.
    pub packages: Option<Vec<String>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            runtime_path: "::omnirelay".to_owned(),
            extern_paths: Vec::new(),
            type_attributes: Vec::new(),
            field_attributes: Vec::new(),
            btree_maps: Vec::new(),
            bytes: Vec::new(),
            server: true,
            client: true,
            json: true,
            include_file: None,
            descriptor_consts: true,
            compile_well_known_types: false,
            packages: None,
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

/// The file that holds the code of `.proto` files without a `package` (a name no package can
/// have, since package names have no `-`).
pub const NO_PACKAGE_FILE: &str = "no-package.rs";

/// The name of the file generated for `package`: `sample.v1.rs`, or [`NO_PACKAGE_FILE`].
pub fn file_name_for_package(package: &str) -> String {
    if package.is_empty() {
        NO_PACKAGE_FILE.to_owned()
    } else {
        format!("{package}.rs")
    }
}

/// Generates code for every file in `fds` (well-known types excepted: they map to
/// `pbjson-types` through the runtime unless an `extern_path` says otherwise).
///
/// # Errors
/// A file using a feature the generator does not support (protobuf editions), or a failure
/// inside prost-build or pbjson-build, with the file named.
pub fn generate(fds: &FileDescriptorSet, options: &Options) -> Result<Vec<GeneratedFile>, Error> {
    // prost-build and pbjson-build panic on some inputs; a panic must not take down protoc or a
    // build script with a backtrace, so it becomes an error naming the files.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        generate_unchecked(fds, options)
    }));
    outcome.unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        let files: Vec<&str> = fds.file.iter().map(|f| f.name()).collect();
        Err(Error(format!(
            "the generator failed on {}: {reason}",
            files.join(", ")
        )))
    })
}

fn generate_unchecked(
    fds: &FileDescriptorSet,
    options: &Options,
) -> Result<Vec<GeneratedFile>, Error> {
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
    if !options.compile_well_known_types {
        extern_paths.extend(well_known_extern_paths(fds, rt, &options.extern_paths));
    }

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
    config.btree_map(&options.btree_maps);
    config.bytes(&options.bytes);
    config.service_generator(Box::new(OmniRelayServiceGenerator::for_descriptors(
        options.clone(),
        fds,
    )));
    let mut documented = fds.clone();
    comments::sanitize_descriptors(&mut documented);
    let requests = documented
        .file
        .into_iter()
        .map(|f| (Module::from_protobuf_package_name(f.package()), f))
        .collect();
    let modules = config
        .generate(requests)
        .map_err(|e| Error(format!("prost-build failed: {e}")))?;

    // Generated code per package, keyed by the proto package name ("" for no package).
    let packages: HashMap<Module, &str> = fds
        .file
        .iter()
        .map(|f| (Module::from_protobuf_package_name(f.package()), f.package()))
        .collect();
    let mut files: BTreeMap<String, (Module, String)> = BTreeMap::new();
    for (module, content) in modules {
        let package = packages
            .get(&module)
            .copied()
            .unwrap_or_default()
            .to_owned();
        files.insert(package, (module, content));
    }

    if options.json {
        for (package, text) in json::generate(fds, &extern_paths, options)? {
            let entry = files
                .entry(package.clone())
                .or_insert_with(|| (Module::from_protobuf_package_name(&package), String::new()));
            entry.1.push_str("// Proto3 JSON mapping (pbjson).\n");
            entry.1.push_str(&text);
        }
    }

    names::rename_clashing_nested_modules(fds, &mut files);
    if let Some(wanted) = &options.packages {
        files.retain(|package, _| wanted.contains(package));
    }

    // Packages with services carry their descriptors, for reflection and tooling.
    for file in fds
        .file
        .iter()
        .filter(|f| options.descriptor_consts && !f.service.is_empty())
    {
        if let Some((_, content)) = files.get_mut(file.package())
            && !content.contains(FDS_MARKER)
        {
            let encoded = package_descriptor_set(fds, file.package()).encode_to_vec();
            content.push_str(&descriptor_const(file.package(), &encoded));
        }
    }

    let mut out: Vec<GeneratedFile> = Vec::with_capacity(files.len() + 1);
    if let Some(include) = &options.include_file {
        let entries: Vec<(Module, String)> = files
            .iter()
            .map(|(package, (module, _))| (module.clone(), file_name_for_package(package)))
            .collect();
        out.push(GeneratedFile {
            name: include.clone(),
            content: include_file(&entries),
        });
    }
    out.extend(
        files
            .into_iter()
            .map(|(package, (_, content))| GeneratedFile {
                name: file_name_for_package(&package),
                content,
            }),
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

/// The files of `package` and everything they import, in dependency order, without source
/// info (comments and spans are not needed for reflection, and differ between parsers).
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
            .map(normalized)
            .collect(),
    }
}

/// A file descriptor as embedded: no source info, and no empty options messages (protoc writes
/// `options {}` for an rpc declared with an empty body, protox omits it; both mean the same).
fn normalized(file: &prost_types::FileDescriptorProto) -> prost_types::FileDescriptorProto {
    fn clear<T: Default + PartialEq>(options: &mut Option<T>) {
        if options.as_ref().is_some_and(|o| *o == T::default()) {
            *options = None;
        }
    }
    fn message(m: &mut prost_types::DescriptorProto) {
        clear(&mut m.options);
        m.field.iter_mut().for_each(|f| clear(&mut f.options));
        m.extension.iter_mut().for_each(|f| clear(&mut f.options));
        m.oneof_decl.iter_mut().for_each(|o| clear(&mut o.options));
        m.enum_type.iter_mut().for_each(enumeration);
        m.nested_type.iter_mut().for_each(message);
    }
    fn enumeration(e: &mut prost_types::EnumDescriptorProto) {
        clear(&mut e.options);
        e.value.iter_mut().for_each(|v| clear(&mut v.options));
    }
    let mut file = file.clone();
    file.source_code_info = None;
    clear(&mut file.options);
    file.message_type.iter_mut().for_each(message);
    file.enum_type.iter_mut().for_each(enumeration);
    file.extension
        .iter_mut()
        .for_each(|f| clear(&mut f.options));
    for service in &mut file.service {
        clear(&mut service.options);
        service
            .method
            .iter_mut()
            .for_each(|m| clear(&mut m.options));
    }
    file
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

/// A file that mounts each generated package file as nested `pub mod`s, package-less code at
/// the root. Module names are prost's (so `sample.type.v1` is `sample::r#type::v1`), which is how
/// the generated code refers across packages.
fn include_file(files: &[(Module, String)]) -> String {
    let mut sorted: Vec<&(Module, String)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::from("// This file is @generated by omnirelay-codegen.\n");
    let mut stack: Vec<&str> = Vec::new();
    for (module, file) in sorted {
        let parts: Vec<&str> = module.parts().collect();
        let common = stack.iter().zip(&parts).take_while(|(a, b)| a == b).count();
        while stack.len() > common {
            stack.pop();
            out.push_str(&"    ".repeat(stack.len()));
            out.push_str("}\n");
        }
        for part in &parts[common..] {
            out.push_str(&"    ".repeat(stack.len()));
            out.push_str(&format!("pub mod {part} {{\n"));
            stack.push(part);
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
