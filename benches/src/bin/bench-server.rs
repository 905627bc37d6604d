//! A benchmark server (`--impl omnirelay-grpc|tonic|omnirelay-http|axum --port N`) on
//! 127.0.0.1, under the system allocator.

fn main() -> std::process::ExitCode {
    omnirelay_benches::servers::main(None)
}
