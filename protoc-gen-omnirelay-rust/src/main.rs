//! `protoc-gen-omnirelay-rust`: reads a `CodeGeneratorRequest` on stdin, writes a
//! `CodeGeneratorResponse` on stdout.
//!
//! ```text
//! protoc --plugin=protoc-gen-omnirelay-rust --omnirelay-rust_out=OUT \
//!        --omnirelay-rust_opt=include_file=mod.rs -I proto proto/echo.proto
//! ```

use std::io::{Read, Write};
use std::process::ExitCode;

use prost::Message;
use prost_types::compiler::CodeGeneratorRequest;

fn main() -> ExitCode {
    let mut input = Vec::new();
    if let Err(err) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("protoc-gen-omnirelay-rust: cannot read the request from stdin: {err}");
        return ExitCode::FAILURE;
    }
    if let Err(err) = CodeGeneratorRequest::decode(input.as_slice()) {
        eprintln!(
            "protoc-gen-omnirelay-rust: stdin is not a CodeGeneratorRequest ({err}); \
             this program is run by protoc: protoc --omnirelay-rust_out=DIR ..."
        );
        return ExitCode::FAILURE;
    }
    let response = protoc_gen_omnirelay_rust::run_encoded(&input);
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout
        .write_all(&response.encode_to_vec())
        .and_then(|()| stdout.flush())
    {
        eprintln!("protoc-gen-omnirelay-rust: cannot write the response: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
