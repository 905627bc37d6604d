//! Generates every case under `cases/` twice, through `omnirelay-build` and through the protoc
//! plugin's library (fed a `CodeGeneratorRequest` built from protox descriptors, as protoc would
//! build it), into `OUT_DIR/<case>/` and `OUT_DIR/<case>.plugin/`. A case expected to fail writes
//! its two error messages to `OUT_DIR/<case>.error` and `OUT_DIR/<case>.plugin.error`.
//!
//! The crate compiles the builder's output; `tests/` checks that the plugin's is byte-identical.

use std::path::{Path, PathBuf};

use omnirelay_build::Builder;
use prost::Message as _;
use prost_types::FileDescriptorProto;
use prost_types::compiler::CodeGeneratorRequest;

struct Case {
    /// The module and directory name.
    name: &'static str,
    /// The files to generate, relative to `cases/`.
    files: &'static [&'static str],
    /// The builder configuration.
    builder: fn(Builder) -> Builder,
    /// The same configuration as a plugin parameter.
    parameter: &'static str,
}

const BASE: &str = "include_file=mod.rs";

fn base(b: Builder) -> Builder {
    b
}

const CASES: &[Case] = &[
    Case {
        name: "b01",
        files: &["B01_raw_unsafe_keywords.proto"],
        builder: base,
        parameter: BASE,
    },
    Case {
        name: "b02",
        files: &["B02_raw_keywords.proto"],
        builder: base,
        parameter: BASE,
    },
    Case {
        name: "b04",
        files: &["B04_service_name_collisions.proto"],
        builder: base,
        parameter: BASE,
    },
    Case {
        name: "b06",
        files: &[
            "B06_nested_module_vs_subpackage.proto",
            "deps/B06/depot.proto",
            "deps/B06/shift.proto",
        ],
        builder: base,
        parameter: BASE,
    },
    Case {
        name: "b07",
        files: &["B07_oneof_named_like_nested_type.proto"],
        builder: base,
        parameter: BASE,
    },
    Case {
        name: "b08",
        files: &["B08_no_package.proto", "deps/B08/with_package.proto"],
        builder: base,
        parameter: BASE,
    },
    Case {
        name: "b10",
        files: &[
            "B10_cross_package_types.proto",
            "deps/B10/billing.proto",
            "deps/B10/shipping.proto",
            "deps/B10/orders_types.proto",
        ],
        builder: base,
        parameter: BASE,
    },
    Case {
        name: "b11_default",
        files: &["B11_well_known_types_extern_path.proto"],
        builder: base,
        parameter: BASE,
    },
    Case {
        name: "b11_local_wkt",
        files: &["B11_well_known_types_extern_path.proto"],
        builder: |b| b.compile_well_known_types(true),
        parameter: "include_file=mod.rs,compile_well_known_types=true",
    },
    Case {
        name: "b11_pbjson_types",
        files: &["B11_well_known_types_extern_path.proto"],
        builder: |b| b.extern_path(".google.protobuf", "::pbjson_types"),
        parameter: "include_file=mod.rs,extern_path=.google.protobuf=::pbjson_types",
    },
    Case {
        name: "b11_empty_unit",
        files: &["B11_well_known_types_extern_path.proto"],
        builder: |b| b.extern_path(".google.protobuf.Empty", "()"),
        parameter: "include_file=mod.rs,extern_path=.google.protobuf.Empty=()",
    },
    Case {
        name: "b11_extern_tag",
        files: &["B11_well_known_types_extern_path.proto"],
        builder: |b| b.extern_path(".sample.clock.v1.Tag", "::other_crate::Tag"),
        parameter: "include_file=mod.rs,extern_path=.sample.clock.v1.Tag=::other_crate::Tag",
    },
    Case {
        name: "b13",
        files: &["B13_proto3_optional.proto"],
        builder: base,
        parameter: BASE,
    },
    Case {
        name: "b14",
        files: &["B14_edition_2023.proto"],
        builder: base,
        parameter: BASE,
    },
    Case {
        name: "b15",
        files: &[
            "B15_empty_service_and_service_only_file.proto",
            "deps/B15/types.proto",
        ],
        builder: base,
        parameter: BASE,
    },
    Case {
        name: "b16",
        files: &[
            "B16_hyphen-and.dots-name.proto",
            "deps/B16/shared-types.v2.proto",
        ],
        builder: base,
        parameter: BASE,
    },
    Case {
        name: "b17_hash_vec",
        files: &["B17_map_fields.proto"],
        builder: base,
        parameter: BASE,
    },
    Case {
        name: "b17_btree_vec",
        files: &["B17_map_fields.proto"],
        builder: |b| b.btree_map(["."]),
        parameter: "include_file=mod.rs,btree_map=.",
    },
    Case {
        name: "b17_hash_bytes",
        files: &["B17_map_fields.proto"],
        builder: |b| b.bytes(["."]),
        parameter: "include_file=mod.rs,bytes=.",
    },
    Case {
        name: "b17_btree_bytes",
        files: &["B17_map_fields.proto"],
        builder: |b| b.btree_map(["."]).bytes(["."]),
        parameter: "include_file=mod.rs,btree_map=.,bytes=.",
    },
    Case {
        name: "b20",
        files: &["B20_streaming_all_kinds.proto"],
        builder: base,
        parameter: BASE,
    },
    Case {
        name: "c01",
        files: &["own/C01_hostile_comments.proto"],
        builder: base,
        parameter: BASE,
    },
    Case {
        name: "c02",
        files: &["own/C02_helper_names_and_case.proto"],
        builder: base,
        parameter: BASE,
    },
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    // Both test crates (editions 2024 and 2021) run this script; the cases live beside it.
    let cases = manifest.join("../codegen-tests/cases");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", cases.display());
    // `.ci/protoc-cases.sh` replays every case through real protoc from this manifest:
    // name, parameter and files to generate, tab-separated.
    let mut manifest = String::new();
    for case in CASES {
        let files: Vec<PathBuf> = case.files.iter().map(|f| cases.join(f)).collect();
        for file in &files {
            println!("cargo:rerun-if-changed={}", file.display());
        }
        let dir = out.join(case.name);
        reset(&dir)?;
        let builder = (case.builder)(omnirelay_build::configure().include_file("mod.rs"))
            .out_dir(&dir)
            .emit_rerun_if_changed(false);
        if let Err(err) = builder.compile(&files, &[&cases]) {
            std::fs::write(out.join(format!("{}.error", case.name)), err.to_string())?;
        }
        let generated = run_plugin(case, &cases, &out)?;
        manifest.push_str(&format!(
            "{}\t{}\t{}\n",
            case.name,
            case.parameter,
            generated.join(" ")
        ));
    }
    std::fs::write(out.join("cases.txt"), manifest)?;
    Ok(())
}

fn reset(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)
}

/// Builds the request protoc would send (files to generate plus every import, with source info)
/// and runs the plugin library on its encoded form, as the binary does. Returns the files to
/// generate it used.
fn run_plugin(
    case: &Case,
    cases: &Path,
    out: &Path,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let dir = out.join(format!("{}.plugin", case.name));
    reset(&dir)?;
    let error_file = out.join(format!("{}.plugin.error", case.name));
    let paths: Vec<PathBuf> = case.files.iter().map(|f| cases.join(f)).collect();
    let fds = match protox::compile(&paths, [cases]) {
        Ok(fds) => fds,
        Err(_) if case.name == "b14" => {
            // protox cannot parse editions; build the descriptor protoc 27+ would send.
            let response = protoc_gen_omnirelay_rust::run_encoded(&editions_request(case.files[0]));
            std::fs::write(error_file, response.error.unwrap_or_default())?;
            return Ok(case.files.iter().map(|f| f.to_string()).collect());
        }
        Err(err) => {
            std::fs::write(error_file, err.to_string())?;
            return Ok(case.files.iter().map(|f| f.to_string()).collect());
        }
    };
    let mut file_to_generate: Vec<String> = case.files.iter().map(|f| f.to_string()).collect();
    if case.parameter.contains("compile_well_known_types=true") {
        // A protoc user compiling the well-known types names them on the command line.
        file_to_generate.extend(
            fds.file
                .iter()
                .filter(|f| f.name().starts_with("google/protobuf/"))
                .map(|f| f.name().to_owned()),
        );
    }
    let request = CodeGeneratorRequest {
        file_to_generate: file_to_generate.clone(),
        parameter: Some(case.parameter.to_owned()),
        proto_file: fds.file,
        ..Default::default()
    };
    let response = protoc_gen_omnirelay_rust::run_encoded(&request.encode_to_vec());
    if let Some(err) = response.error {
        std::fs::write(error_file, err)?;
        return Ok(file_to_generate);
    }
    for file in response.file {
        std::fs::write(dir.join(file.name()), file.content())?;
    }
    Ok(file_to_generate)
}

/// The request protoc 27+ sends for a file in edition 2023: `syntax = "editions"` and field 14
/// (`edition`, which prost's descriptor types lack) set to `EDITION_2023` (1000).
fn editions_request(name: &str) -> Vec<u8> {
    let mut file = FileDescriptorProto {
        name: Some(name.to_owned()),
        package: Some("sample.editions.v1".to_owned()),
        syntax: Some("editions".to_owned()),
        ..Default::default()
    }
    .encode_to_vec();
    file.extend_from_slice(&[14 << 3, 0xe8, 0x07]);
    let mut request = CodeGeneratorRequest {
        file_to_generate: vec![name.to_owned()],
        ..Default::default()
    }
    .encode_to_vec();
    request.push((15 << 3) | 2);
    prost::encoding::encode_varint(file.len() as u64, &mut request);
    request.extend_from_slice(&file);
    request
}
