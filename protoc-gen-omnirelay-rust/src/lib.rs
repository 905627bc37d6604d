//! The library behind `protoc-gen-omnirelay-rust`: a `CodeGeneratorRequest` in, a
//! `CodeGeneratorResponse` out, using the same generator and options as `omnirelay-build`.
//!
//! Output: one standalone file per protobuf package that has a file to generate (never protoc
//! insertion points), named like the builder's (`sample.v1.rs`; `no-package.rs` for files
//! without a package), plus the include file when asked for.
//!
//! Parameters (`--omnirelay-rust_opt=key=value,key=value`), mirroring the builder:
//!
//! | key | value | builder |
//! |---|---|---|
//! | `extern_path` | `.proto.path=::rust::path` | `extern_path` |
//! | `type_attribute` | `.proto.path=#[attr]` | `type_attribute` |
//! | `field_attribute` | `.proto.path=#[attr]` | `field_attribute` |
//! | `btree_map` | a proto path (`.` for all); repeatable | `btree_map` |
//! | `bytes` | a proto path (`.` for all); repeatable | `bytes` |
//! | `build_server` | `true`/`false` | `build_server` |
//! | `build_client` | `true`/`false` | `build_client` |
//! | `build_json` | `true`/`false` | `build_json` |
//! | `include_file` | a file name | `include_file` |
//! | `descriptor_consts` | `true`/`false`: embed `FILE_DESCRIPTOR_SET` in packages with services | `descriptor_consts` |
//! | `compile_well_known_types` | `true`/`false` | `compile_well_known_types` |
//! | `runtime_path` | a Rust path | `runtime_path` |
//!
//! A value containing a comma escapes it as `\,` (e.g. `type_attribute=.=#[derive(A\, B)]`).
//! A bad option is an error in the response naming it, never a panic.

mod editions;

use omnirelay_codegen::Options;
use prost::Message as _;
use prost_types::FileDescriptorSet;
use prost_types::compiler::code_generator_response::{Feature, File};
use prost_types::compiler::{CodeGeneratorRequest, CodeGeneratorResponse};

/// Runs the generator on an encoded request, as the binary does. Besides [`run`], this can name
/// the edition of a file written in protobuf editions (prost's descriptor types do not carry the
/// `edition` field, so only the encoded form has it).
pub fn run_encoded(request: &[u8]) -> CodeGeneratorResponse {
    let decoded = match CodeGeneratorRequest::decode(request) {
        Ok(decoded) => decoded,
        Err(err) => {
            return CodeGeneratorResponse {
                error: Some(format!("the input is not a CodeGeneratorRequest: {err}")),
                ..Default::default()
            };
        }
    };
    let wanted = &decoded.file_to_generate;
    if let Some((file, edition)) = editions::files_with_editions(request)
        .into_iter()
        .find(|(name, _)| wanted.contains(name))
    {
        return CodeGeneratorResponse {
            error: Some(format!(
                "{file}: protobuf editions ({edition}) are not supported yet; \
                 use syntax = \"proto3\" or \"proto2\""
            )),
            supported_features: Some(Feature::Proto3Optional as u64),
            ..Default::default()
        };
    }
    run(decoded)
}

/// Runs the generator on a request. Failures become the response's `error`.
pub fn run(request: CodeGeneratorRequest) -> CodeGeneratorResponse {
    let mut response = CodeGeneratorResponse {
        supported_features: Some(Feature::Proto3Optional as u64),
        ..Default::default()
    };
    match generate(request) {
        Ok(files) => response.file = files,
        Err(err) => response.error = Some(err),
    }
    response
}

fn generate(request: CodeGeneratorRequest) -> Result<Vec<File>, String> {
    let mut options = parse_parameter(request.parameter())?;
    // Packages of the files to generate; imported files of other packages only inform the
    // generator (types, descriptors) and are not written.
    options.packages = Some(
        request
            .file_to_generate
            .iter()
            .filter_map(|name| request.proto_file.iter().find(|f| f.name() == name))
            .map(|f| f.package().to_owned())
            .collect(),
    );
    let fds = FileDescriptorSet {
        file: request.proto_file,
    };
    let files = omnirelay_codegen::generate(&fds, &options).map_err(|e| e.to_string())?;
    Ok(files
        .into_iter()
        .map(|f| File {
            name: Some(f.name),
            content: Some(f.content),
            ..Default::default()
        })
        .collect())
}

/// Splits `a=1,b=2` at unescaped commas, unescaping `\,`.
fn split_params(parameter: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = parameter.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                current.push(',');
                chars.next();
            }
            ',' => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "" | "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!(
            "option {key}: expected true or false, got {other:?}"
        )),
    }
}

fn pair(key: &str, value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((path, rust)) if path.starts_with('.') && !rust.is_empty() => {
            Ok((path.to_owned(), rust.to_owned()))
        }
        _ => Err(format!(
            "option {key}: expected {key}=.proto.path=VALUE (a fully qualified proto path \
             starting with '.'), got {value:?}"
        )),
    }
}

/// Parses the plugin parameter into generator options.
///
/// # Errors
/// An unknown key or a malformed value, naming it.
pub fn parse_parameter(parameter: &str) -> Result<Options, String> {
    let mut options = Options::default();
    for param in split_params(parameter) {
        let (key, value) = param.split_once('=').unwrap_or((param.as_str(), ""));
        let key = key.trim();
        match key {
            "extern_path" => options.extern_paths.push(pair(key, value)?),
            "type_attribute" => options.type_attributes.push(pair(key, value)?),
            "field_attribute" => options.field_attributes.push(pair(key, value)?),
            "btree_map" if value.starts_with('.') => options.btree_maps.push(value.to_owned()),
            "bytes" if value.starts_with('.') => options.bytes.push(value.to_owned()),
            "btree_map" | "bytes" => {
                return Err(format!(
                    "option {key}: expected {key}=.proto.path (`.` for all), got {value:?}"
                ));
            }
            "build_server" => options.server = parse_bool(key, value)?,
            "build_client" => options.client = parse_bool(key, value)?,
            "build_json" => options.json = parse_bool(key, value)?,
            "descriptor_consts" => options.descriptor_consts = parse_bool(key, value)?,
            "compile_well_known_types" => {
                options.compile_well_known_types = parse_bool(key, value)?;
            }
            "include_file" if !value.is_empty() => options.include_file = Some(value.to_owned()),
            "runtime_path" if !value.is_empty() => options.runtime_path = value.to_owned(),
            "include_file" | "runtime_path" => {
                return Err(format!("option {key} needs a value: {key}=VALUE"));
            }
            other => {
                return Err(format!(
                    "unknown option {other:?}; known options: extern_path, type_attribute, \
                     field_attribute, btree_map, bytes, build_server, build_client, build_json, include_file, \
                     descriptor_consts, compile_well_known_types, runtime_path"
                ));
            }
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_option() {
        let o = parse_parameter(
            "extern_path=.google.protobuf.Empty=(),type_attribute=.=#[derive(Eq\\, Hash)],\
             build_client=false,include_file=mod.rs,descriptor_consts=false,runtime_path=::rt",
        )
        .unwrap();
        assert_eq!(
            o.extern_paths,
            vec![(".google.protobuf.Empty".into(), "()".into())]
        );
        assert_eq!(
            o.type_attributes,
            vec![(".".into(), "#[derive(Eq, Hash)]".into())]
        );
        assert!(!o.client && o.server && o.json && !o.descriptor_consts);
        assert_eq!(o.include_file.as_deref(), Some("mod.rs"));
        assert_eq!(o.runtime_path, "::rt");
        assert!(parse_parameter("").is_ok());
    }

    #[test]
    fn bad_options_are_errors_naming_them() {
        for (param, needle) in [
            ("bogus=1", "bogus"),
            ("build_client=maybe", "build_client"),
            ("extern_path=nodot=x", "extern_path"),
            ("extern_path=.a", "extern_path"),
            ("include_file=", "include_file"),
        ] {
            let err = parse_parameter(param).unwrap_err();
            assert!(err.contains(needle), "{param}: {err}");
        }
        let response = run(CodeGeneratorRequest {
            parameter: Some("bogus".into()),
            ..Default::default()
        });
        assert!(response.error.unwrap().contains("bogus"));
        assert_eq!(
            response.supported_features,
            Some(Feature::Proto3Optional as u64)
        );
    }
}
