//! The caller, service and procedure names a call's metadata carries, as both inbounds fill them
//! from the wire: exact names, aliases, wildcards, gRPC paths that do not map back to a name,
//! absent or odd callers and services.

use bytes::Bytes;
use http_body_util::Full;
use omnirelay::codec::RawCodec;
use omnirelay::procedure::typed;
use omnirelay::{ProcedureSpec, Request, Response};
use omnirelay_tests::{Harness, HttpHarness, grpc_frame, grpc_request, raw_h2};

fn who(name: &str) -> ProcedureSpec {
    typed::unary(name.to_owned(), RawCodec, |r: Request<Bytes>| async move {
        Ok(Response::new(Bytes::from(format!(
            "{}|{}|{}",
            r.meta.caller, r.meta.service, r.meta.procedure
        ))))
    })
}

async fn grpc_who(h: &Harness, path: &str, extra: &[(&str, &[u8])]) -> (Option<i32>, String) {
    let mut request = grpc_request(h.addr, path, "application/grpc", grpc_frame(b""));
    request
        .headers_mut()
        .insert("rpc-encoding", "raw".parse().unwrap());
    for (k, v) in extra {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(v).unwrap(),
        );
    }
    let r = raw_h2(h.addr, request).await;
    let body = if r.body.len() > 5 {
        String::from_utf8_lossy(&r.body[5..]).into_owned()
    } else {
        r.grpc_message()
    };
    (r.grpc_status(), body)
}

#[tokio::test]
async fn grpc_procedure_names_match_the_path_as_before() {
    let h = Harness::start(vec![
        who("pkg.Svc::Method").with_alias("pkg.Svc::Old"),
        who("plain"),
        who("wild.Svc::*"),
        who("legacy::Canon").with_alias("legacy/slash"),
        who("__default__::odd"),
    ])
    .await;
    let cases = [
        ("/pkg.Svc/Method", "pkg.Svc::Method"),
        ("/pkg.Svc/Old", "pkg.Svc::Old"),
        ("/__default__/plain", "plain"),
        ("/wild.Svc/Any", "wild.Svc::Any"),
        // Before the Name change: procedure_from_grpc_path(path) or, when the path does not
        // map back to a procedure, spec.name().
        ("/__default__/legacy/slash", "legacy::Canon"),
        ("/__default__/odd", "odd"),
    ];
    let mut wrong = Vec::new();
    for (path, want) in cases {
        let (status, body) = grpc_who(&h, path, &[]).await;
        assert_eq!(status, Some(0), "{path}: {body}");
        let got = body.split('|').nth(2).unwrap_or_default().to_owned();
        if got != want {
            wrong.push(format!("{path}: meta.procedure {got:?}, before {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test]
async fn grpc_caller_and_service_edge_cases() {
    let h = Harness::start(who("who::Am")).await;
    let (s, body) = grpc_who(&h, "/who/Am", &[]).await;
    assert_eq!(
        (s, body.as_str()),
        (Some(0), "unknown|test-service|who::Am")
    );
    let (s, body) = grpc_who(&h, "/who/Am", &[("rpc-caller", b"")]).await;
    assert_eq!((s, body.as_str()), (Some(0), "|test-service|who::Am"));
    let (s, body) = grpc_who(&h, "/who/Am", &[("rpc-service", b"other")]).await;
    assert_ne!(s, Some(0), "{body}");
    for key in ["rpc-caller", "rpc-service"] {
        let (s, body) = grpc_who(&h, "/who/Am", &[(key, b"caf\xe9")]).await;
        assert_eq!(s, Some(3), "{key}: {body}");
    }
}

#[tokio::test]
async fn http_procedure_names_are_what_the_caller_sent() {
    let h = HttpHarness::start(vec![
        who("pkg.Svc::Method").with_alias("pkg.Svc::Old"),
        who("wild.Svc::*"),
    ])
    .await;
    for (procedure, want) in [
        ("pkg.Svc::Method", "pkg.Svc::Method"),
        ("pkg.Svc::Old", "pkg.Svc::Old"),
        ("wild.Svc::Any", "wild.Svc::Any"),
    ] {
        let req = http::Request::post(format!("http://{}/", h.addr))
            .header("rpc-caller", "c")
            .header("rpc-service", "test-service")
            .header("rpc-procedure", procedure)
            .header("rpc-encoding", "raw")
            .header("context-ttl-ms", "5000")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = omnirelay_tests::raw_h1(h.addr, req).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            format!("c|test-service|{want}")
        );
    }
    let req = http::Request::post(format!("http://{}/", h.addr))
        .header(
            "rpc-caller",
            http::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        )
        .header("rpc-service", "test-service")
        .header("rpc-procedure", "pkg.Svc::Method")
        .header("rpc-encoding", "raw")
        .header("context-ttl-ms", "5000")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = omnirelay_tests::raw_h1(h.addr, req).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
}
