//! The builder's handling of inputs: paths spelled differently from the include root, bad
//! files, editions. Every failure is an error naming the file, never a panic.

use std::path::{Path, PathBuf};

fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../codegen-tests/cases")
}

fn out() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn compile(
    protos: &[PathBuf],
    includes: &[PathBuf],
    out: &Path,
) -> Result<(), omnirelay_build::Error> {
    omnirelay_build::configure()
        .out_dir(out)
        .emit_rerun_if_changed(false)
        .include_file("mod.rs")
        .compile(protos, includes)
}

#[test]
fn an_input_spelled_differently_from_its_include_root_is_normalised() {
    let dir = out();
    let odd = cases().join("deps/../B16_hyphen-and.dots-name.proto");
    compile(&[odd], &[cases()], dir.path()).unwrap();
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        files.contains(&"sample.hyphen.v1.rs".to_owned()),
        "{files:?}"
    );
    assert!(files.iter().all(|f| !f.contains('-')), "{files:?}");
}

#[test]
fn a_file_outside_every_include_root_is_a_clear_error() {
    let dir = out();
    let elsewhere = dir.path().join("lonely.proto");
    std::fs::write(&elsewhere, "syntax = \"proto3\"; message M {}").unwrap();
    let err = compile(&[elsewhere], &[cases()], dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("lonely.proto"), "{err}");
}

#[test]
fn missing_and_malformed_files_name_the_file() {
    let dir = out();
    let err = compile(&[cases().join("nope.proto")], &[cases()], dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope.proto"), "{err}");

    let bad = dir.path().join("bad.proto");
    std::fs::write(&bad, "syntax = \"proto3\";\nmessage M { string x = ; }\n").unwrap();
    let err = compile(&[bad], &[dir.path().to_owned()], dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.proto:2"), "{err}");
}

#[test]
fn editions_are_rejected_naming_the_file_and_edition() {
    let dir = out();
    let err = compile(
        &[cases().join("B14_edition_2023.proto")],
        &[cases()],
        dir.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("B14_edition_2023.proto") && err.contains("edition 2023"),
        "{err}"
    );
}

#[test]
fn descriptor_set_is_written_where_asked() {
    let dir = out();
    let fds = dir.path().join("set.bin");
    omnirelay_build::configure()
        .out_dir(dir.path())
        .emit_rerun_if_changed(false)
        .file_descriptor_set_path(&fds)
        .compile(&[cases().join("B20_streaming_all_kinds.proto")], &[cases()])
        .unwrap();
    let bytes = std::fs::read(fds).unwrap();
    let set = <prost_types::FileDescriptorSet as prost::Message>::decode(&bytes[..]).unwrap();
    assert_eq!(set.file[0].name(), "B20_streaming_all_kinds.proto");
}
