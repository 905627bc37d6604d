//! Wire-level checks with a raw HTTP/2 client: what a plain gRPC peer sends and what bad input
//! gets back. Every bad request must get a clear gRPC status, never a reset or a hang.

use bytes::Bytes;
use omnirelay::__private::prost::Message;
use omnirelay::Code;
use omnirelay::codec::RawCodec;
use omnirelay::procedure::typed;
use omnirelay::{Request, Response};
use omnirelay_examples::EchoService;
use omnirelay_examples::echo::{EchoProcedures, EchoRequest, EchoResponse};
use omnirelay_tests::{Harness, grpc_frame, grpc_request, raw_h2};

const ECHO_PATH: &str = "/omnirelay.examples.echo.v1.Echo/Echo";

async fn echo_server() -> Harness {
    Harness::start(EchoProcedures::new(EchoService)).await
}

#[tokio::test]
async fn a_plain_grpc_client_is_served_from_the_path_and_content_type() {
    let h = echo_server().await;
    let body = EchoRequest {
        message: "plain".into(),
        repeat: 0,
    }
    .encode_to_vec();
    let response = raw_h2(
        h.addr,
        grpc_request(h.addr, ECHO_PATH, "application/grpc", grpc_frame(&body)),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.grpc_status(), Some(0));
    assert_eq!(
        response.headers.get("content-type").unwrap(),
        "application/grpc"
    );
    let decoded = EchoResponse::decode(&response.body[5..]).unwrap();
    assert_eq!(decoded.message, "plain");

    // application/grpc+json selects the JSON encoding.
    let json = br#"{"message":"as json"}"#;
    let response = raw_h2(
        h.addr,
        grpc_request(h.addr, ECHO_PATH, "application/grpc+json", grpc_frame(json)),
    )
    .await;
    assert_eq!(response.grpc_status(), Some(0));
    let text = String::from_utf8_lossy(&response.body[5..]).into_owned();
    assert!(text.contains(r#""message":"as json""#), "{text}");
}

#[tokio::test]
async fn the_caller_and_service_default_for_plain_clients() {
    let who = typed::unary("who::Am", RawCodec, |r: Request<Bytes>| async move {
        Ok(Response::new(Bytes::from(format!(
            "{}|{}|{}",
            r.meta.caller, r.meta.service, r.meta.procedure
        ))))
    });
    let h = Harness::start(who).await;
    let mut request = grpc_request(h.addr, "/who/Am", "application/grpc", grpc_frame(b""));
    request
        .headers_mut()
        .insert("rpc-encoding", "raw".parse().unwrap());
    let response = raw_h2(h.addr, request).await;
    assert_eq!(response.grpc_status(), Some(0));
    assert_eq!(&response.body[5..], b"unknown|test-service|who::Am");
}

#[tokio::test]
async fn a_malformed_protobuf_body_is_invalid_argument() {
    let h = echo_server().await;
    // Field 1, length-delimited, claims 100 bytes; 1 follows.
    let response = raw_h2(
        h.addr,
        grpc_request(
            h.addr,
            ECHO_PATH,
            "application/grpc",
            grpc_frame(b"\x0a\x64x"),
        ),
    )
    .await;
    assert_eq!(response.grpc_status(), Some(Code::InvalidArgument.as_i32()));
    assert!(
        response.grpc_message().contains("malformed protobuf body"),
        "{}",
        response.grpc_message()
    );
}

#[tokio::test]
async fn a_wrong_content_type_is_415_with_invalid_argument() {
    let h = echo_server().await;
    for content_type in ["text/plain", "application/json", "application/grpc+thrift"] {
        let response = raw_h2(
            h.addr,
            grpc_request(h.addr, ECHO_PATH, content_type, grpc_frame(b"")),
        )
        .await;
        assert_eq!(response.status, 415, "{content_type}");
        assert_eq!(
            response.grpc_status(),
            Some(Code::InvalidArgument.as_i32()),
            "{content_type}"
        );
        assert!(!response.grpc_message().is_empty());
    }
}

#[tokio::test]
async fn a_truncated_frame_gets_a_status_not_a_reset() {
    let h = echo_server().await;
    // The prefix announces 100 bytes; the stream ends after 3.
    let mut frame = vec![0u8, 0, 0, 0, 100];
    frame.extend_from_slice(b"abc");
    let response = raw_h2(
        h.addr,
        grpc_request(h.addr, ECHO_PATH, "application/grpc", Bytes::from(frame)),
    )
    .await;
    assert_eq!(response.grpc_status(), Some(Code::InvalidArgument.as_i32()));
    assert!(
        response.grpc_message().contains("truncated"),
        "{}",
        response.grpc_message()
    );
}

#[tokio::test]
async fn an_oversized_frame_prefix_is_resource_exhausted_before_it_is_read() {
    let h = echo_server().await;
    // The prefix announces 1 GiB; nothing that large is ever buffered.
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(1u32 << 30).to_be_bytes());
    let response = raw_h2(
        h.addr,
        grpc_request(h.addr, ECHO_PATH, "application/grpc", Bytes::from(frame)),
    )
    .await;
    assert_eq!(
        response.grpc_status(),
        Some(Code::ResourceExhausted.as_i32())
    );
    assert!(
        response.grpc_message().contains("4194304"),
        "{}",
        response.grpc_message()
    );
}

#[tokio::test]
async fn unknown_methods_and_services_are_unimplemented() {
    let h = echo_server().await;
    for path in [
        "/omnirelay.examples.echo.v1.Echo/Missing",
        "/grpc.testing.UnimplementedService/UnimplementedCall",
        "/not-a-grpc-path",
    ] {
        let response = raw_h2(
            h.addr,
            grpc_request(h.addr, path, "application/grpc", grpc_frame(b"")),
        )
        .await;
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(
            response.grpc_status(),
            Some(Code::Unimplemented.as_i32()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn an_empty_request_body_is_invalid_argument() {
    let h = echo_server().await;
    let response = raw_h2(
        h.addr,
        grpc_request(h.addr, ECHO_PATH, "application/grpc", Bytes::new()),
    )
    .await;
    assert_eq!(response.grpc_status(), Some(Code::InvalidArgument.as_i32()));
}

#[tokio::test]
async fn bad_metadata_is_invalid_argument() {
    let h = echo_server().await;
    let cases = [
        ("grpc-timeout", "soon"),
        ("rpc-encoding", "thrift"),
        ("trace-bin", "%%%"),
    ];
    for (key, value) in cases {
        let mut request = grpc_request(h.addr, ECHO_PATH, "application/grpc", grpc_frame(b""));
        request.headers_mut().insert(key, value.parse().unwrap());
        let response = raw_h2(h.addr, request).await;
        assert_eq!(
            response.grpc_status(),
            Some(Code::InvalidArgument.as_i32()),
            "{key}"
        );
        assert!(!response.grpc_message().is_empty());
    }
}

#[tokio::test]
async fn grpc_message_is_percent_encoded() {
    let failing = typed::unary("f::Fail", RawCodec, |_r: Request<Bytes>| async {
        Err::<Response<Bytes>, _>(omnirelay::Error::unknown("50% ☺\n"))
    });
    let h = Harness::start(failing).await;
    let mut request = grpc_request(h.addr, "/f/Fail", "application/grpc", grpc_frame(b""));
    request
        .headers_mut()
        .insert("rpc-encoding", "raw".parse().unwrap());
    let response = raw_h2(h.addr, request).await;
    assert_eq!(response.grpc_status(), Some(Code::Unknown.as_i32()));
    let raw = response.grpc_message_raw();
    assert!(
        raw.is_ascii()
            && raw.contains("%E2%98%BA")
            && raw.contains("%0A")
            && raw.starts_with("50%25"),
        "{raw}"
    );
    assert_eq!(response.grpc_message(), "50% ☺\n");
}

#[tokio::test]
async fn grpc_health_check_is_served() {
    let h = echo_server().await;
    let path = "/grpc.health.v1.Health/Check";
    // HealthCheckRequest{service: ""} is the empty message; SERVING is field 1 = 1.
    let response = raw_h2(
        h.addr,
        grpc_request(h.addr, path, "application/grpc", grpc_frame(b"")),
    )
    .await;
    assert_eq!(response.grpc_status(), Some(0));
    assert_eq!(&response.body[5..], b"\x08\x01");
    // The dispatcher's own name is known too; another service is not found.
    let known = [&[0x0a, 12][..], b"test-service"].concat();
    let response = raw_h2(
        h.addr,
        grpc_request(h.addr, path, "application/grpc", grpc_frame(&known)),
    )
    .await;
    assert_eq!(&response.body[5..], b"\x08\x01");
    let unknown = [&[0x0a, 5][..], b"other"].concat();
    let response = raw_h2(
        h.addr,
        grpc_request(h.addr, path, "application/grpc", grpc_frame(&unknown)),
    )
    .await;
    assert_eq!(response.grpc_status(), Some(Code::NotFound.as_i32()));
}

#[tokio::test]
async fn a_call_already_past_its_deadline_is_refused_without_running() {
    let h = echo_server().await;
    let body = EchoRequest {
        message: "late".into(),
        repeat: 0,
    }
    .encode_to_vec();
    for timeout in ["0S", "0n"] {
        let mut request = grpc_request(h.addr, ECHO_PATH, "application/grpc", grpc_frame(&body));
        request
            .headers_mut()
            .insert("grpc-timeout", timeout.parse().unwrap());
        let response = raw_h2(h.addr, request).await;
        assert_eq!(
            response.grpc_status(),
            Some(Code::DeadlineExceeded.as_i32()),
            "{timeout}"
        );
    }
}

#[tokio::test]
async fn json_responses_are_labelled_json() {
    let h = echo_server().await;
    let response = raw_h2(
        h.addr,
        grpc_request(
            h.addr,
            ECHO_PATH,
            "application/grpc+json",
            grpc_frame(br#"{"message":"j"}"#),
        ),
    )
    .await;
    assert_eq!(response.grpc_status(), Some(0));
    assert_eq!(
        response.headers.get("content-type").unwrap(),
        "application/grpc+json"
    );
}

#[tokio::test]
async fn a_call_for_another_service_is_unimplemented() {
    let h = echo_server().await;
    let mut request = grpc_request(h.addr, ECHO_PATH, "application/grpc", grpc_frame(b""));
    request
        .headers_mut()
        .insert("rpc-service", "nosuch".parse().unwrap());
    let response = raw_h2(h.addr, request).await;
    assert_eq!(response.grpc_status(), Some(Code::Unimplemented.as_i32()));
    assert!(
        response.grpc_message().contains("nosuch"),
        "{}",
        response.grpc_message()
    );
}

#[tokio::test]
async fn health_knows_registered_protobuf_services() {
    let h = echo_server().await;
    let name = b"omnirelay.examples.echo.v1.Echo";
    let body = [&[0x0a, name.len() as u8][..], name].concat();
    let response = raw_h2(
        h.addr,
        grpc_request(
            h.addr,
            "/grpc.health.v1.Health/Check",
            "application/grpc",
            grpc_frame(&body),
        ),
    )
    .await;
    assert_eq!(response.grpc_status(), Some(0));
    assert_eq!(&response.body[5..], b"\x08\x01");
}

/// A unary call reads exactly its first message from the wire: what follows it is not read, and
/// the frame flags, the size limit and the reply's application headers and trailers answer as
/// before.
#[tokio::test]
async fn unary_wire_edges() {
    let spec = typed::unary("u::Echo", RawCodec, |r: Request<Bytes>| async move {
        Ok(match r.body.as_ref() {
            b"meta" => Response::new(Bytes::from_static(b"m"))
                .with_header("x-app-header", "h")
                .with_trailer("x-app-trailer", "t"),
            b"only-trailer" => Response::new(Bytes::new()).with_trailer("x-t", "t"),
            _ => Response::new(r.body),
        })
    });
    let h = Harness::start_with(
        omnirelay::transport::grpc::GrpcInbound::new(omnirelay_tests::loopback())
            .max_recv_message_size(64),
        omnirelay::transport::grpc::GrpcOutbound::new,
        spec,
    )
    .await;
    let call = |body: Bytes| {
        let mut request = grpc_request(h.addr, "/u/Echo", "application/grpc", body);
        request
            .headers_mut()
            .insert("rpc-encoding", "raw".parse().unwrap());
        raw_h2(h.addr, request)
    };
    let flagged = |flag: u8| {
        let mut frame = grpc_frame(b"hello").to_vec();
        frame[0] = flag;
        Bytes::from(frame)
    };
    // Two messages, and one followed by a partial frame: served from the first.
    for body in [
        [grpc_frame(b"first"), grpc_frame(b"second")].concat(),
        [&grpc_frame(b"first")[..], &[0, 0, 0, 0, 50, b'a']].concat(),
    ] {
        let response = call(Bytes::from(body)).await;
        assert_eq!(response.grpc_status(), Some(0));
        assert_eq!(&response.body[..], &grpc_frame(b"first")[..]);
    }
    // The compressed flag without grpc-encoding, and an unknown flag: internal, as tonic says.
    for (flag, says) in [(1, "compressed-flag"), (2, "invalid compression flag")] {
        let response = call(flagged(flag)).await;
        assert_eq!(
            response.grpc_status(),
            Some(Code::Internal.as_i32()),
            "{flag}"
        );
        assert!(
            response.grpc_message().contains(says),
            "{}",
            response.grpc_message()
        );
    }
    // Over the limit by one byte; at the limit.
    let response = call(grpc_frame(&[b'q'; 65])).await;
    assert_eq!(
        response.grpc_status(),
        Some(Code::ResourceExhausted.as_i32())
    );
    let response = call(grpc_frame(&[b'q'; 64])).await;
    assert_eq!(response.grpc_status(), Some(0));
    assert_eq!(response.body.len(), 69);
    // Application headers and trailers on the one-message reply.
    let response = call(grpc_frame(b"meta")).await;
    assert_eq!(response.grpc_status(), Some(0));
    assert_eq!(response.headers.get("x-app-header").unwrap(), "h");
    assert_eq!(&response.body[..], &grpc_frame(b"m")[..]);
    let trailers = response.trailers.as_ref().expect("trailers");
    assert_eq!(trailers.get("x-app-trailer").unwrap(), "t");
    let response = call(grpc_frame(b"only-trailer")).await;
    assert_eq!(response.grpc_status(), Some(0));
    assert_eq!(&response.body[..], &grpc_frame(b"")[..]);
    assert_eq!(response.trailers.as_ref().unwrap().get("x-t").unwrap(), "t");
}
