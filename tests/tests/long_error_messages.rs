//! An error with a message longer than a peer's header limit keeps its code over both
//! transports: the message is cut, never the call turned into a protocol error.

use bytes::Bytes;
use omnirelay::codec::RawCodec;
use omnirelay::procedure::typed;
use omnirelay::transport::error_text::{MAX_HEADER_MESSAGE_BYTES, TRUNCATED};
use omnirelay::{CallOptions, Client, Code, Encoding, Error, Request, Response};
use omnirelay_tests::{Harness, HttpHarness};

fn failing() -> omnirelay::ProcedureSpec {
    typed::unary("svc::Fail", RawCodec, |_: Request<Bytes>| async move {
        Err::<Response<Bytes>, _>(Error::unavailable("m".repeat(60_000)))
    })
}

async fn check(client: Client<RawCodec>) -> Error {
    let err = client
        .unary::<Bytes, Bytes>("svc::Fail", &Bytes::new(), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::Unavailable,
        "{}",
        &err.message()[..80.min(err.message().len())]
    );
    assert!(err.message().starts_with("mmmm"));
    err
}

#[tokio::test]
async fn over_grpc() {
    let h = Harness::start(failing()).await;
    check(Client::with_codec(h.config(), RawCodec, Encoding::Raw)).await;
    let err = Client::with_codec(h.config(), RawCodec, Encoding::Raw)
        .unary::<Bytes, Bytes>("svc::Fail", &Bytes::new(), CallOptions::new())
        .await
        .unwrap_err();
    assert!(
        err.message().ends_with(TRUNCATED),
        "{}",
        &err.message()[4000..]
    );
}

#[tokio::test]
async fn over_http() {
    let h = HttpHarness::start(failing()).await;
    // The body carries the whole message; the Rpc-Error-Message header is cut.
    let err = check(Client::with_codec(h.config(), RawCodec, Encoding::Raw)).await;
    assert_eq!(err.message().len(), 60_000);
    let response = omnirelay_tests::raw_h1(
        h.addr,
        http::Request::post("/")
            .header("host", "x")
            .header("rpc-caller", "t")
            .header("rpc-service", "test-service")
            .header("rpc-procedure", "svc::Fail")
            .header("rpc-encoding", "raw")
            .header("context-ttl-ms", "1000")
            .header("rpc-accepts-both-response-error", "true")
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(response.header("rpc-error-code"), "unavailable");
    let header = response.header("rpc-error-message");
    assert!(header.len() <= MAX_HEADER_MESSAGE_BYTES && header.ends_with(TRUNCATED));
}
