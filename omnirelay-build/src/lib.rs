//! # omnirelay-build
//!
//! Turns `.proto` files into Rust in a `build.rs`: prost messages, proto3 JSON (pbjson) impls and,
//! per service, the OmniRelay server trait, registration value, typed client and procedure-name
//! constants. `.proto` files are parsed with [protox](https://docs.rs/protox), so no `protoc` is
//! needed on the machine.
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     omnirelay_build::configure()
//!         .extern_path(".google.protobuf.Empty", "()")
//!         .compile(&["proto/echo.proto"], &["proto"])?;
//!     Ok(())
//! }
//! ```
//!
//! and in the crate: `omnirelay::include_proto!("echo.v1");` (or `include!` the file in
//! `OUT_DIR` named after the package).
//!
//! The names mirror prost-build and tonic-build: `configure()`, `out_dir`, `extern_path`,
//! `type_attribute`, `field_attribute`, `build_server`, `build_client`, `include_file`,
//! `file_descriptor_set_path`, `compile` and `compile_fds`.

use std::path::{Path, PathBuf};

use omnirelay_codegen::Options;
use prost::Message as _;
use prost_types::FileDescriptorSet;

/// Starts configuring code generation.
pub fn configure() -> Builder {
    Builder::default()
}

/// Compiles `protos` (searched for in `includes`) with the default configuration.
///
/// # Errors
/// See [`Builder::compile`].
pub fn compile_protos(
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
) -> Result<(), Error> {
    configure().compile(protos, includes)
}

/// Why code generation failed: a `.proto` that does not parse (with file, line and reason), an
/// unsupported feature, or an I/O error writing the output.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Code generation settings.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Builder {
    options: Options,
    out_dir: Option<PathBuf>,
    fds_path: Option<PathBuf>,
    emit_rerun: Option<bool>,
}

impl Builder {
    /// Where to write the generated files; `OUT_DIR` by default.
    pub fn out_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.out_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Takes types under `proto_path` (e.g. `.google.protobuf.Empty` or `.other.pkg`) from
    /// `rust_path` (e.g. `()` or `::other_crate::pkg`) instead of generating them.
    pub fn extern_path(
        mut self,
        proto_path: impl Into<String>,
        rust_path: impl Into<String>,
    ) -> Self {
        self.options
            .extern_paths
            .push((proto_path.into(), rust_path.into()));
        self
    }

    /// Adds `attribute` to messages and enums matching `path` (`.` for all).
    pub fn type_attribute(mut self, path: impl Into<String>, attribute: impl Into<String>) -> Self {
        self.options
            .type_attributes
            .push((path.into(), attribute.into()));
        self
    }

    /// Adds `attribute` to fields matching `path`.
    pub fn field_attribute(
        mut self,
        path: impl Into<String>,
        attribute: impl Into<String>,
    ) -> Self {
        self.options
            .field_attributes
            .push((path.into(), attribute.into()));
        self
    }

    /// Map fields under these proto paths (`.` for all) become `BTreeMap`s (sorted, so their
    /// encoding is deterministic) instead of `HashMap`s.
    pub fn btree_map<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.options
            .btree_maps
            .extend(paths.into_iter().map(Into::into));
        self
    }

    /// `bytes` fields under these proto paths (`.` for all) become `bytes::Bytes` instead of
    /// `Vec<u8>`.
    pub fn bytes<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.options.bytes.extend(paths.into_iter().map(Into::into));
        self
    }

    /// Generate the well-known types (`google.protobuf.*`) like any other package, instead of
    /// taking them from `pbjson-types` through the runtime (default `false`).
    pub fn compile_well_known_types(mut self, enabled: bool) -> Self {
        self.options.compile_well_known_types = enabled;
        self
    }

    /// Embed `FILE_DESCRIPTOR_SET` (the package's files and imports) in each package with
    /// services (default `true`).
    pub fn descriptor_consts(mut self, enabled: bool) -> Self {
        self.options.descriptor_consts = enabled;
        self
    }

    /// Whether to emit server traits and registration values (default `true`).
    pub fn build_server(mut self, enabled: bool) -> Self {
        self.options.server = enabled;
        self
    }

    /// Whether to emit typed clients (default `true`).
    pub fn build_client(mut self, enabled: bool) -> Self {
        self.options.client = enabled;
        self
    }

    /// Whether to emit proto3 JSON impls (default `true`; generated procedures need them to
    /// serve encoding `json`).
    pub fn build_json(mut self, enabled: bool) -> Self {
        self.options.json = enabled;
        self
    }

    /// Also writes `name`, a file mounting every package as nested modules.
    pub fn include_file(mut self, name: impl Into<String>) -> Self {
        self.options.include_file = Some(name.into());
        self
    }

    /// Also writes the encoded `FileDescriptorSet` (with imports) to `path`.
    pub fn file_descriptor_set_path(mut self, path: impl AsRef<Path>) -> Self {
        self.fds_path = Some(path.as_ref().to_owned());
        self
    }

    /// The path generated code reaches the runtime by (default `::omnirelay`), for crates that
    /// re-export it.
    pub fn runtime_path(mut self, path: impl Into<String>) -> Self {
        self.options.runtime_path = path.into();
        self
    }

    /// Whether to print `cargo:rerun-if-changed` for each input (default: when run by Cargo).
    pub fn emit_rerun_if_changed(mut self, enabled: bool) -> Self {
        self.emit_rerun = Some(enabled);
        self
    }

    /// Parses `protos` with protox (imports resolved in `includes`) and generates code.
    ///
    /// # Errors
    /// A parse or import error naming the file, line and reason; an unsupported feature; an
    /// I/O error writing the output.
    pub fn compile(
        self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<(), Error> {
        for proto in protos {
            reject_editions(proto.as_ref())?;
        }
        // protox matches inputs to include roots textually; resolve `..` and symlinks first so
        // `./a/../proto/x.proto` is found under `proto`.
        let protos: Vec<PathBuf> = protos.iter().map(|p| canonical(p.as_ref())).collect();
        let includes: Vec<PathBuf> = includes.iter().map(|p| canonical(p.as_ref())).collect();
        let fds = protox::compile(&protos, &includes).map_err(|e| protox_error(&e, &includes))?;
        if self
            .emit_rerun
            .unwrap_or_else(|| std::env::var_os("CARGO").is_some())
        {
            for file in &fds.file {
                for include in &includes {
                    let candidate = include.join(file.name());
                    if candidate.exists() {
                        println!("cargo:rerun-if-changed={}", candidate.display());
                        break;
                    }
                }
            }
        }
        self.compile_fds(fds)
    }

    /// Generates code from an already-parsed `FileDescriptorSet` (e.g. from `protoc
    /// --descriptor_set_out --include_imports` or buf).
    ///
    /// # Errors
    /// An unsupported feature, or an I/O error writing the output.
    pub fn compile_fds(self, fds: FileDescriptorSet) -> Result<(), Error> {
        let out_dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or_else(|| {
                    Error("OUT_DIR is not set: call out_dir(...) outside build.rs".into())
                })?,
        };
        std::fs::create_dir_all(&out_dir)
            .map_err(|e| Error(format!("cannot create {}: {e}", out_dir.display())))?;
        if let Some(path) = &self.fds_path {
            std::fs::write(path, fds.encode_to_vec())
                .map_err(|e| Error(format!("cannot write {}: {e}", path.display())))?;
        }
        let files = omnirelay_codegen::generate(&fds, &self.options).map_err(|e| Error(e.0))?;
        for file in files {
            let path = out_dir.join(&file.name);
            write_if_changed(&path, file.content.as_bytes())
                .map_err(|e| Error(format!("cannot write {}: {e}", path.display())))?;
        }
        Ok(())
    }
}

/// The canonical form of `path`, or `path` itself when it cannot be resolved (protox then
/// reports it as missing, by the name the caller gave).
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

/// protox's error with the file and, for parse errors, the line: `file:line: message`.
fn protox_error(err: &protox::Error, includes: &[PathBuf]) -> Error {
    use miette::Diagnostic as _;
    let line = err
        .labels()
        .and_then(|mut labels| labels.next())
        .and_then(|label| {
            let source = err.source_code()?;
            let contents = source.read_span(label.inner(), 0, 0).ok()?;
            Some(contents.line() + 1)
        });
    let location = match (err.file(), line) {
        (Some(file), Some(line)) => format!("{file}:{line}: "),
        (Some(file), None) => format!("{file}: "),
        (None, _) => String::new(),
    };
    let roots: Vec<String> = includes.iter().map(|p| p.display().to_string()).collect();
    Error(format!(
        "cannot compile the .proto files: {location}{err} (include roots: {})",
        roots.join(", ")
    ))
}

/// Fails with one clear error for a file in protobuf editions syntax, which protox cannot parse
/// and the generator does not support yet: the first statement is `edition = "...";`.
fn reject_editions(path: &Path) -> Result<(), Error> {
    let Ok(text) = std::fs::read_to_string(path) else {
        // Unreadable files get protox's error, which names the path.
        return Ok(());
    };
    let mut rest = text.as_str();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    if let Some(statement) = rest.strip_prefix("edition") {
        let value = statement
            .trim_start()
            .trim_start_matches('=')
            .trim()
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches(['"', '\'']);
        return Err(Error(format!(
            "{}: protobuf editions (edition {value}) are not supported yet; use syntax = \"proto3\" or \"proto2\"",
            path.display()
        )));
    }
    Ok(())
}

/// Writes `content` unless the file already holds it, so Cargo does not rebuild needlessly.
fn write_if_changed(path: &Path, content: &[u8]) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == content) {
        return Ok(());
    }
    std::fs::write(path, content)
}
