//! Generates the example services from `../proto` (no `protoc` needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    omnirelay_build::configure().compile(
        &["../proto/echo.proto", "../proto/grpc/testing/test.proto"],
        &["../proto"],
    )?;
    Ok(())
}
