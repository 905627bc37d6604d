//! Generates both contenders' code for `grpc.testing.TestService` from one parse of
//! `../proto/grpc/testing/test.proto` (protox, so no `protoc` is needed):
//! OmniRelay's glue (`omnirelay-build`) into `$OUT_DIR/omnirelay/` and tonic's server
//! (`tonic-prost-build`) into `$OUT_DIR/tonic/`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let proto = "../proto/grpc/testing/test.proto";
    println!("cargo:rerun-if-changed=../proto/grpc/testing");
    let fds = protox::compile([proto], ["../proto"])?;

    omnirelay_build::configure()
        .out_dir(out.join("omnirelay"))
        .emit_rerun_if_changed(false)
        .compile_fds(fds.clone())?;

    let tonic_out = out.join("tonic");
    std::fs::create_dir_all(&tonic_out)?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .generate_default_stubs(true)
        .out_dir(&tonic_out)
        .compile_fds(fds)?;
    Ok(())
}
