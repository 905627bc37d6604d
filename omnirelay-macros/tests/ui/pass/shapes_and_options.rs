//! Every shape, every encoding and every key compiles, and the constants say what was asked for.
#![deny(missing_docs, warnings)]

use omnirelay::codec::Encoding;
use omnirelay::{Kind, Procedure, Request, Response, Result, Streaming};

/// Unary, raw identifier: named `type`.
#[omnirelay::procedure(encoding = "json")]
pub async fn r#type(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(request.body))
}

/// Oneway over protobuf, with the error type spelled out.
#[omnirelay::procedure(
    encoding = "proto",
    oneway,
    name = "events::Record",
    alias = "events::Log"
)]
pub async fn record(_request: Request<String>) -> std::result::Result<(), omnirelay::Error> {
    Ok(())
}

/// Server stream over raw bytes.
#[omnirelay::procedure(encoding = "raw")]
pub async fn chunks(
    request: omnirelay::Request<bytes::Bytes>,
) -> omnirelay::Result<omnirelay::Response<omnirelay::Streaming<bytes::Bytes>>> {
    Ok(Response::new(Streaming::new(futures::stream::iter([Ok(
        request.body,
    )]))))
}

/// Client stream over protobuf and JSON.
#[omnirelay::procedure(encoding = ["json", "proto"])]
pub async fn count(request: Request<Streaming<String>>) -> Result<Response<u64>> {
    let mut n = 0;
    let mut stream = request.into_body();
    while stream.message().await?.is_some() {
        n += 1;
    }
    Ok(Response::new(n))
}

/// Duplex with wildcard aliases.
#[omnirelay::procedure(encoding = "json", name = "chat::*", alias = "talk::?")]
pub async fn chat(request: Request<Streaming<String>>) -> Result<Response<Streaming<String>>> {
    Ok(Response::new(request.into_body()))
}

mod runtime {
    pub use omnirelay::*;
}

/// The runtime reached through another path.
#[omnirelay::procedure(encoding = "json", crate = "crate::runtime")]
pub async fn elsewhere(request: Request<u8>) -> Result<Response<u8>> {
    Ok(Response::new(request.body))
}

/// Compiled out.
#[cfg(any())]
#[omnirelay::procedure(encoding = "json")]
pub async fn absent(request: Request<u8>) -> Result<Response<u8>> {
    Ok(Response::new(request.body))
}

fn main() {
    assert_eq!((r#type::NAME, r#type::KIND), ("type", Kind::Unary));
    assert_eq!(
        (record::NAME, record::KIND),
        ("events::Record", Kind::Oneway)
    );
    assert_eq!(record::ENCODINGS, [Encoding::Proto]);
    assert_eq!(record::ALIASES, ["events::Log"]);
    assert_eq!(
        (chunks::KIND, chunks::ENCODINGS),
        (Kind::ServerStream, &[Encoding::Raw][..])
    );
    assert_eq!(count::KIND, Kind::ClientStream);
    assert_eq!(count::ENCODINGS, [Encoding::Proto, Encoding::Json]);
    assert_eq!(chat::KIND, Kind::Duplex);
    assert_eq!(elsewhere::NAME, "elsewhere");

    // Procedures may be local items too.
    #[omnirelay::procedure(encoding = "json")]
    async fn local(request: Request<u8>) -> Result<Response<u8>> {
        Ok(Response::new(request.body))
    }

    let empty: Vec<omnirelay::ProcedureSpec> = omnirelay::procedures![];
    assert!(empty.is_empty());
    let dispatcher = omnirelay::Dispatcher::builder("pass")
        .register(omnirelay::procedures![r#type, record, chunks, count, chat,])
        .register(elsewhere)
        .register(local)
        .build()
        .unwrap();
    let registry = dispatcher.registry();
    for name in [
        "type",
        "events::Log",
        "chunks",
        "count",
        "chat::x",
        "talk::y",
        "elsewhere",
        "local",
    ] {
        assert!(registry.lookup(name).is_some(), "{name}");
    }
}
