//! Generates the test protos with the builder options under test: `extern_path` (Empty to `()`),
//! an include file and the descriptor-set output.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    omnirelay_build::configure()
        .extern_path(".google.protobuf.Empty", "()")
        .include_file("wkt_include.rs")
        .file_descriptor_set_path(out.join("wkt_test.fds"))
        .compile(&["../proto/wkt_test.proto"], &["../proto"])?;
    Ok(())
}
