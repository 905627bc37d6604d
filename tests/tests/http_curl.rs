//! YARPC-HTTP as curl sees it: the wire format of successes in each encoding, every validation
//! error with its status and message (yarpc-go's order and strings), TTLs, deadlines, oneway,
//! application headers, both error-body modes, SSE, h2c, introspection and limits.
//!
//! Every test skips (saying so) when `curl` is not installed; `.ci/run` installs it.

use std::time::Duration;

use bytes::Bytes;
use omnirelay::__private::prost::Message as _;
use omnirelay::codec::RawCodec;
use omnirelay::procedure::typed;
use omnirelay::transport::http::{HttpInbound, HttpOutbound};
use omnirelay::{Error, ProcedureSpec, Request, Response};
use omnirelay_examples::echo::{EchoProcedures, EchoRequest, EchoResponse, echo_names};
use omnirelay_examples::grpc_testing::TestServiceProcedures;
use omnirelay_examples::{EchoService, InteropService};
use omnirelay_tests::{HttpHarness, RawResponse, curl, curl_available, loopback};

macro_rules! require_curl {
    () => {
        if !curl_available() {
            eprintln!("SKIP: curl is not installed");
            return;
        }
    };
}

const ECHO: &str = echo_names::ECHO;

/// A server with the echo service and the procedures the checks below need.
async fn server() -> HttpHarness {
    let mut procedures: Vec<ProcedureSpec> =
        omnirelay::IntoProcedures::into_procedures(EchoProcedures::new(EchoService));
    procedures.push(typed::unary(
        "test::Sleep",
        RawCodec,
        |r: Request<Bytes>| async move {
            tokio::time::sleep(Duration::from_millis(2000)).await;
            Ok(Response::new(r.body))
        },
    ));
    procedures.push(typed::unary(
        "test::Raw",
        RawCodec,
        |r: Request<Bytes>| async move {
            let mut reversed = r.body.to_vec();
            reversed.reverse();
            Ok(Response::new(Bytes::from(reversed)))
        },
    ));
    procedures.push(typed::unary(
        "test::Headers",
        RawCodec,
        |r: Request<Bytes>| async move {
            let mut response = Response::new(Bytes::new());
            for (k, v) in r.meta().headers.iter() {
                response = response.with_header(format!("echo-{k}"), v.clone());
            }
            Ok(response.with_trailer("a-trailer", "late"))
        },
    ));
    procedures.push(typed::unary(
        "test::Fail",
        RawCodec,
        |_r: Request<Bytes>| async move {
            Err::<Response<Bytes>, _>(
                Error::already_exists("it is\nalready there")
                    .with_details(Bytes::from_static(b"\x08\x06")),
            )
        },
    ));
    procedures.push(typed::oneway(
        "test::Fire",
        RawCodec,
        |_r: Request<Bytes>| async { Ok(()) },
    ));
    HttpHarness::start(procedures).await
}

/// curl arguments for a YARPC call to `procedure` with `encoding`, plus `extra`.
fn call<'a>(
    h: &HttpHarness,
    procedure: &'a str,
    encoding: &'a str,
    extra: &[&'a str],
) -> Vec<String> {
    let mut args = vec![
        "-X".to_owned(),
        "POST".to_owned(),
        "-H".to_owned(),
        "Rpc-Caller: curl".to_owned(),
        "-H".to_owned(),
        "Rpc-Service: test-service".to_owned(),
        "-H".to_owned(),
        format!("Rpc-Procedure: {procedure}"),
        "-H".to_owned(),
        format!("Rpc-Encoding: {encoding}"),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.push(h.url("/any/path"));
    args
}

async fn run(args: Vec<String>) -> RawResponse {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(&args).await
}

fn assert_error(r: &RawResponse, status: u16, code: &str, message: &str) {
    assert_eq!(r.status.as_u16(), status, "{r:?}");
    assert_eq!(r.header("rpc-status"), "error", "{r:?}");
    assert_eq!(r.header("rpc-error-code"), code, "{r:?}");
    assert_eq!(r.header("content-type"), "text/plain; charset=utf8");
    assert_eq!(r.text(), format!("{message}\n"), "{r:?}");
}

#[tokio::test]
async fn the_issue_example_answers_proto3_json_from_the_interop_service() {
    require_curl!();
    let server = omnirelay::Dispatcher::builder("interop")
        .inbound(HttpInbound::new(loopback()))
        .register(TestServiceProcedures::new(InteropService))
        .build()
        .unwrap();
    server.start().await.unwrap();
    let addr = server.addr(omnirelay::Transport::Http).unwrap();
    let r = curl(&[
        "-X",
        "POST",
        "-H",
        "Rpc-Caller: curl",
        "-H",
        "Rpc-Service: interop",
        "-H",
        "Rpc-Procedure: grpc.testing.TestService::UnaryCall",
        "-H",
        "Rpc-Encoding: json",
        "-H",
        "Context-TTL-MS: 1000",
        "-d",
        r#"{"responseSize": 8}"#,
        &format!("http://{addr}/"),
    ])
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("rpc-status"), "success");
    assert_eq!(r.header("rpc-service"), "interop");
    assert_eq!(r.header("content-type"), "application/json");
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"payload": {"body": "AAAAAAAAAAA="}})
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn success_in_each_encoding_over_http1_and_h2c() {
    require_curl!();
    let h = server().await;
    for version in ["--http1.1", "--http2-prior-knowledge"] {
        let r = run(call(
            &h,
            ECHO,
            "json",
            &[
                version,
                "-H",
                "Context-TTL-MS: 1000",
                "-d",
                r#"{"message":"hi"}"#,
            ],
        ))
        .await;
        assert_eq!(r.status, 200, "{version} {r:?}");
        assert_eq!(r.header("content-type"), "application/json");
        // proto3 JSON leaves out default values (index 0).
        assert_eq!(r.text(), r#"{"message":"hi"}"#);

        let dir = std::env::temp_dir().join(format!("omnirelay-curl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("echo.bin");
        let request = EchoRequest {
            message: "binary".into(),
            repeat: 0,
        };
        std::fs::write(&file, request.encode_to_vec()).unwrap();
        let data = format!("@{}", file.display());
        let r = run(call(
            &h,
            ECHO,
            "proto",
            &[
                version,
                "-H",
                "Context-TTL-MS: 1000",
                "--data-binary",
                &data,
            ],
        ))
        .await;
        assert_eq!(r.status, 200, "{version} {r:?}");
        assert_eq!(r.header("content-type"), "application/x-protobuf");
        let response = EchoResponse::decode(r.body.clone()).unwrap();
        assert_eq!(response.message, "binary");

        let r = run(call(
            &h,
            "test::Raw",
            "raw",
            &[
                version,
                "-H",
                "Context-TTL-MS: 1000",
                "--data-binary",
                "abc",
            ],
        ))
        .await;
        assert_eq!(r.status, 200, "{version} {r:?}");
        assert_eq!(r.header("content-type"), "application/octet-stream");
        assert_eq!(r.text(), "cba");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test]
async fn validation_errors_in_yarpc_order_with_yarpc_messages() {
    require_curl!();
    let h = server().await;
    let url = h.url("/");
    // Not a POST.
    let r = curl(&[&url]).await;
    assert_error(
        &r,
        404,
        "not-found",
        "request method was GET but only POST is allowed",
    );
    let r = curl(&["-X", "PUT", &url]).await;
    assert_error(
        &r,
        404,
        "not-found",
        "request method was PUT but only POST is allowed",
    );
    // Missing headers, all and some.
    let r = curl(&["-X", "POST", &url]).await;
    assert_error(
        &r,
        400,
        "invalid-argument",
        "missing service name, procedure, caller name, encoding",
    );
    let r = curl(&[
        "-X",
        "POST",
        "-H",
        "Rpc-Service: test-service",
        "-H",
        "Rpc-Encoding: json",
        &url,
    ])
    .await;
    assert_error(
        &r,
        400,
        "invalid-argument",
        "missing procedure, caller name",
    );
    // The wrong service, then an unknown procedure: both before any TTL check.
    let r = curl(&[
        "-X",
        "POST",
        "-H",
        "Rpc-Caller: c",
        "-H",
        "Rpc-Service: nope",
        "-H",
        "Rpc-Procedure: p",
        "-H",
        "Rpc-Encoding: json",
        "-H",
        "Context-TTL-MS: moo",
        &url,
    ])
    .await;
    assert_error(
        &r,
        501,
        "unimplemented",
        r#"unrecognized service name "nope", available services: "test-service""#,
    );
    let r = run(call(
        &h,
        "nope::Nope",
        "json",
        &["-H", "Context-TTL-MS: moo"],
    ))
    .await;
    assert_error(
        &r,
        501,
        "unimplemented",
        r#"unrecognized procedure "nope::Nope" for service "test-service""#,
    );
    // Unknown encoding.
    let r = run(call(&h, ECHO, "thrift", &["-H", "Context-TTL-MS: 1000"])).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.text().starts_with(r#"unknown encoding "thrift""#),
        "{r:?}"
    );
    // Bad TTLs, in each header that carries one.
    for header in [
        "Context-TTL-MS: moo",
        "Context-TTL-MS: -5",
        "Rpc-Ttl-Ms: 1.5",
    ] {
        let value = header.split(": ").nth(1).unwrap();
        let r = run(call(&h, ECHO, "json", &["-H", header, "-d", "{}"])).await;
        assert_error(
            &r,
            400,
            "invalid-argument",
            &format!(r#"invalid TTL "{value}" for service "test-service" and procedure "{ECHO}""#),
        );
    }
    let r = run(call(
        &h,
        ECHO,
        "json",
        &["-H", "Rpc-Deadline: tomorrow", "-d", "{}"],
    ))
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.text().starts_with(r#"invalid deadline "tomorrow""#),
        "{r:?}"
    );
    // Missing TTL.
    let r = run(call(&h, ECHO, "json", &["-d", "{}"])).await;
    assert_error(&r, 400, "invalid-argument", "missing TTL");
    // The .NET TTL spellings are accepted.
    let r = run(call(
        &h,
        ECHO,
        "json",
        &["-H", "Rpc-Ttl-Ms: 1000", "-d", "{}"],
    ))
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = run(call(
        &h,
        ECHO,
        "json",
        &["-H", "Rpc-Deadline: 2999-01-01T00:00:00Z", "-d", "{}"],
    ))
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    // Malformed bodies.
    let r = run(call(
        &h,
        ECHO,
        "json",
        &["-H", "Context-TTL-MS: 1000", "-d", "{oops"],
    ))
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.header("rpc-error-code"), "invalid-argument");
    assert!(r.text().starts_with("malformed JSON body"), "{r:?}");
    let r = run(call(
        &h,
        ECHO,
        "proto",
        &["-H", "Context-TTL-MS: 1000", "--data-binary", "\n\x7fx"],
    ))
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.text().starts_with("malformed protobuf body"), "{r:?}");
    // A streaming procedure called as unary.
    let r = run(call(
        &h,
        echo_names::EXPAND,
        "json",
        &["-H", "Context-TTL-MS: 1000", "-d", "{}"],
    ))
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.text().contains("is a server-stream procedure"), "{r:?}");
}

#[tokio::test]
async fn the_handler_deadline_is_504() {
    require_curl!();
    let h = server().await;
    let started = std::time::Instant::now();
    let r = run(call(
        &h,
        "test::Sleep",
        "raw",
        &["-H", "Context-TTL-MS: 100", "-d", "x"],
    ))
    .await;
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_error(
        &r,
        504,
        "deadline-exceeded",
        r#"call to procedure "test::Sleep" of service "test-service" from caller "curl" timed out after 100ms"#,
    );
}

#[tokio::test]
async fn both_error_body_modes() {
    require_curl!();
    let h = server().await;
    let legacy = run(call(
        &h,
        "test::Fail",
        "raw",
        &["-H", "Context-TTL-MS: 1000"],
    ))
    .await;
    assert_error(&legacy, 409, "already-exists", "it is\nalready there");
    assert_eq!(legacy.header("rpc-error-message"), "it is already there");
    assert_eq!(legacy.header("grpc-status-details-bin"), "CAY=");
    let both = run(call(
        &h,
        "test::Fail",
        "raw",
        &[
            "-H",
            "Context-TTL-MS: 1000",
            "-H",
            "Rpc-Accepts-Both-Response-Error: true",
        ],
    ))
    .await;
    assert_eq!(both.status, 409, "{both:?}");
    assert_eq!(both.header("rpc-both-response-error"), "true");
    assert_eq!(both.header("rpc-error-code"), "already-exists");
    assert_eq!(both.header("rpc-error-message"), "it is already there");
    // The body holds the details.
    assert_eq!(both.body.as_ref(), b"\x08\x06");
    // Our outbound reads the code either way (it asks for the legacy mode).
    let client = omnirelay::Client::with_codec(h.config(), RawCodec, omnirelay::Encoding::Raw);
    let err = client
        .unary::<Bytes, Bytes>("test::Fail", &Bytes::new(), omnirelay::CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), omnirelay::Code::AlreadyExists);
    assert_eq!(err.message(), "it is\nalready there");
    assert_eq!(err.details().as_ref(), b"\x08\x06");
}

#[tokio::test]
async fn application_headers_both_ways_and_trailers_as_headers() {
    require_curl!();
    let h = server().await;
    let r = run(call(
        &h,
        "test::Headers",
        "raw",
        &[
            "-H",
            "Context-TTL-MS: 1000",
            "-H",
            "Rpc-Header-X-Mixed: Some Value",
            "-H",
            "rpc-header-second: 2",
            "-H",
            "X-Not-An-App-Header: dropped",
        ],
    ))
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("rpc-header-echo-x-mixed"), "Some Value");
    assert_eq!(r.header("rpc-header-echo-second"), "2");
    assert_eq!(r.header("rpc-header-a-trailer"), "late");
    assert!(
        !r.headers
            .keys()
            .any(|k| k.as_str().contains("not-an-app-header")),
        "{r:?}"
    );
}

#[tokio::test]
async fn oneway_answers_200_with_an_empty_body_then_runs() {
    require_curl!();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let h = HttpHarness::start(typed::oneway(
        "test::Fire",
        RawCodec,
        move |r: Request<Bytes>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(r.into_body()).await;
                Ok(())
            }
        },
    ))
    .await;
    let r = run(call(
        &h,
        "test::Fire",
        "raw",
        &["-H", "Context-TTL-MS: 1000", "-d", "fired"],
    ))
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.is_empty());
    assert_eq!(r.header("rpc-status"), "success");
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.as_ref(), b"fired");
}

#[tokio::test]
async fn a_server_stream_as_server_sent_events() {
    require_curl!();
    let h = server().await;
    for (encoding, body, expected) in [
        (
            "json",
            r#"{"message":"x","repeat":2}"#,
            "data: {\"message\":\"x\"}\n\ndata: {\"message\":\"x\",\"index\":1}\n\n",
        ),
        (
            "proto",
            "\n\x01x\x10\x01",
            "data: CgF4\nencoding: base64\n\n",
        ),
    ] {
        for method in ["POST", "GET"] {
            let r = run(call(
                &h,
                echo_names::EXPAND,
                encoding,
                &[
                    "-X",
                    method,
                    "-N",
                    "-H",
                    "Accept: text/event-stream",
                    "--data-binary",
                    body,
                ],
            ))
            .await;
            assert_eq!(r.status, 200, "{r:?}");
            assert_eq!(r.header("content-type"), "text/event-stream");
            assert_eq!(r.header("rpc-encoding"), encoding);
            let text = r.text();
            assert!(text.starts_with(expected), "{text:?}");
            assert!(
                text.ends_with(&format!(
                    "event: complete\ndata: {{\"encoding\":\"{encoding}\",\"transport\":\"http\",\"headers\":{{}}}}\n\n"
                )),
                "{text:?}"
            );
        }
    }
    // A handler error before the stream starts is an ordinary error response; after, an event.
    let r = run(call(
        &h,
        echo_names::EXPAND,
        "json",
        &[
            "-H",
            "Accept: text/event-stream",
            "-d",
            r#"{"repeat":20000}"#,
        ],
    ))
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.text().contains("at most 10000"), "{r:?}");
}

#[tokio::test]
async fn introspection_health_and_readiness() {
    require_curl!();
    let h = server().await;
    let r = curl(&[&h.url("/omnirelay/introspect")]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["service"], "test-service");
    assert_eq!(json["status"], "running");
    let unary: Vec<&str> = json["procedures"]["unary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(unary.contains(&ECHO), "{json}");
    assert_eq!(json["procedures"]["oneway"][0]["name"], "test::Fire");
    assert_eq!(
        json["procedures"]["serverStream"][0]["encodings"],
        serde_json::json!(["proto", "json"])
    );
    assert_eq!(json["inbounds"].as_array().unwrap().len(), 2);
    assert_eq!(json["middleware"], serde_json::json!([]));
    let r = curl(&[&h.url("/healthz")]).await;
    assert_eq!(r.status, 200);
    let r = curl(&[&h.url("/readyz")]).await;
    assert_eq!(r.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["mode"], "ready");
}

#[tokio::test]
async fn oversized_headers_and_bodies_are_429_resource_exhausted() {
    require_curl!();
    let h = HttpHarness::start_with(
        HttpInbound::new(loopback())
            .max_header_bytes(2048)
            .max_body_bytes(1024),
        HttpOutbound::new,
        EchoProcedures::new(EchoService),
    )
    .await;
    let big_header = format!("Rpc-Header-Big: {}", "v".repeat(3000));
    let r = run(call(
        &h,
        ECHO,
        "json",
        &["-H", "Context-TTL-MS: 1000", "-H", &big_header, "-d", "{}"],
    ))
    .await;
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.header("rpc-error-code"), "resource-exhausted");
    assert!(r.text().contains("2048"), "{r:?}");
    let body = format!(r#"{{"message":"{}"}}"#, "m".repeat(2000));
    for expect in [None, Some("Expect:")] {
        let mut extra = vec!["-H", "Context-TTL-MS: 1000", "-d", &body];
        if let Some(e) = expect {
            // Without `Expect: 100-continue`: the body arrives, is drained, and the answer read.
            extra.extend(["-H", e]);
        }
        let r = run(call(&h, ECHO, "json", &extra)).await;
        assert_eq!(r.status, 429, "{r:?}");
        assert_eq!(r.header("rpc-error-code"), "resource-exhausted");
        assert!(r.text().contains("1024"), "{r:?}");
    }
    // Chunked, with no length up front.
    let r = run(call(
        &h,
        ECHO,
        "json",
        &[
            "-H",
            "Context-TTL-MS: 1000",
            "-H",
            "Transfer-Encoding: chunked",
            "-d",
            &body,
        ],
    ))
    .await;
    assert_eq!(r.status, 429, "{r:?}");
}
