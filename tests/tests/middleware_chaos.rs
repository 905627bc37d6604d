//! The chaos middleware over real sockets: off by default, switched through the authenticated
//! control endpoint `/omnirelay/control/chaos` (real HTTP requests) and through the
//! controller, injecting errors over gRPC and YARPC-HTTP and latency that passes a call's TTL.
//! Stalled requests to the endpoint (raw TCP): a never-ending body is answered `408`, bad
//! credentials are refused before the body is read, and `GET`/`DELETE` bodies are not read.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use omnirelay::codec::RawCodec;
use omnirelay::middleware::Middleware;
use omnirelay::middleware::chaos::{Chaos, ChaosMiddleware, ChaosRule, Probability};
use omnirelay::procedure::typed;
use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
use omnirelay::transport::http::{HttpInbound, HttpOutbound};
use omnirelay::{
    CallOptions, Client, Code, Dispatcher, Encoding, Outbound, ProcedureSpec, Request, Response,
    Streaming, Transport,
};
use omnirelay_tests::{RawResponse, loopback, parse_http1, raw_h1};

const TOKEN: &str = "s3cret-token";
const CHAOTIC: &str = "chaos::Echo";
const CALM: &str = "calm::Echo";
const STREAM: &str = "chaos::Stream";
const PATH: &str = "/omnirelay/control/chaos";
static HI: Bytes = Bytes::from_static(b"hi");

fn echo(name: &str, calls: Arc<AtomicUsize>) -> ProcedureSpec {
    typed::unary(name, RawCodec, move |r: Request<Bytes>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok(Response::new(r.into_body())) }
    })
}

fn stream() -> ProcedureSpec {
    typed::server_stream(STREAM, RawCodec, |r: Request<Bytes>| async move {
        let items = vec![Ok::<_, omnirelay::Error>(r.into_body())];
        Ok(Response::new(Streaming::new(futures::stream::iter(items))))
    })
}

struct Server {
    dispatcher: Dispatcher,
    http: std::net::SocketAddr,
    grpc: std::net::SocketAddr,
    handled: Arc<AtomicUsize>,
}

/// A server `test-service` on HTTP and gRPC whose procedures go through `middleware`.
async fn server(middleware: impl Into<Middleware>) -> Server {
    let handled = Arc::new(AtomicUsize::new(0));
    let dispatcher = Dispatcher::builder("test-service")
        .inbound(HttpInbound::new(loopback()))
        .inbound(GrpcInbound::new(loopback()))
        .register(vec![
            echo(CHAOTIC, handled.clone()),
            echo(CALM, handled.clone()),
            stream(),
        ])
        .middleware(middleware)
        .build()
        .expect("valid server");
    dispatcher.start().await.expect("server starts");
    Server {
        http: dispatcher.addr(Transport::Http).unwrap(),
        grpc: dispatcher.addr(Transport::Grpc).unwrap(),
        dispatcher,
        handled,
    }
}

fn client(
    outbound: impl Outbound,
    middleware: Option<Middleware>,
) -> (Dispatcher, Client<RawCodec>) {
    let mut builder = Dispatcher::builder("caller").outbound("test-service", outbound);
    if let Some(m) = middleware {
        builder = builder.outbound_middleware(m);
    }
    let dispatcher = builder.build().expect("valid caller");
    let config = dispatcher.client_config("test-service").unwrap();
    (
        dispatcher,
        Client::with_codec(config, RawCodec, Encoding::Raw),
    )
}

/// A gRPC client and a YARPC-HTTP client for `server`.
fn clients(server: &Server) -> [(Dispatcher, Client<RawCodec>); 2] {
    [
        client(
            GrpcOutbound::new(format!("http://{}", server.grpc)).unwrap(),
            None,
        ),
        client(
            HttpOutbound::new(format!("http://{}", server.http)).unwrap(),
            None,
        ),
    ]
}

async fn call_with(
    client: &Client<RawCodec>,
    procedure: &str,
    options: CallOptions,
) -> omnirelay::Result<Bytes> {
    let call = client.unary::<Bytes, Bytes>(procedure, &HI, options);
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call answers")
        .map(Response::into_body)
}

async fn call(client: &Client<RawCodec>, procedure: &str) -> omnirelay::Result<Bytes> {
    call_with(client, procedure, CallOptions::new()).await
}

/// A request to the control endpoint with `authorization` (if any) and `body`.
async fn control(
    server: &Server,
    method: http::Method,
    authorization: Option<&str>,
    body: &str,
) -> RawResponse {
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{}{PATH}", server.http))
        .header("host", "x")
        .header("content-type", "application/json");
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), raw_h1(server.http, request))
        .await
        .expect("the endpoint answers")
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

async fn state(server: &Server) -> serde_json::Value {
    let answer = control(server, http::Method::GET, Some(&bearer()), "").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("content-type"), "application/json");
    serde_json::from_slice(&answer.body).expect("the state is JSON")
}

const ERROR_RULE: &str = r#"{
    "enabled": true,
    "rules": {
        "chaos::Echo": {"error": {"code": "unavailable", "message": "injected by chaos", "probability": 1.0}},
        "chaos::Stream": {"error": {"code": "data-loss", "message": "stream chaos"}}
    }
}"#;

#[tokio::test]
async fn off_by_default_switched_on_through_the_endpoint_and_off_through_the_controller() {
    let chaos = Chaos::new().with_control_token(TOKEN);
    let server = server(ChaosMiddleware::new(chaos.clone())).await;
    let clients = clients(&server);

    // Registered but off: calls succeed.
    for (_, client) in &clients {
        assert_eq!(call(client, CHAOTIC).await.unwrap(), "hi");
    }
    let initial = state(&server).await;
    assert_eq!(
        initial,
        serde_json::json!({"enabled": false, "default": null, "rules": {}})
    );

    // No token, a wrong one, another scheme: 401, and nothing changes.
    for auth in [
        None,
        Some("Bearer wrong-token"),
        Some("Basic czNjcmV0LXRva2Vu"),
        Some(TOKEN),
    ] {
        for method in [
            http::Method::PUT,
            http::Method::POST,
            http::Method::DELETE,
            http::Method::GET,
        ] {
            let answer = control(&server, method.clone(), auth, ERROR_RULE).await;
            assert_eq!(answer.status, 401, "{method} with {auth:?}: {answer:?}");
        }
    }
    assert!(!chaos.is_enabled());
    assert_eq!(state(&server).await, initial);
    for (_, client) in &clients {
        assert_eq!(call(client, CHAOTIC).await.unwrap(), "hi");
    }

    // A bad body: 400 with the reason, nothing changes.
    let bad = control(
        &server,
        http::Method::PUT,
        Some(&bearer()),
        r#"{"enabled": true, "rules": {"x": {"error": {"code": "internal", "probability": 2}}}}"#,
    )
    .await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(
        bad.text().contains("probability 2 is outside 0.0..=1.0"),
        "{}",
        bad.text()
    );
    let not_json = control(&server, http::Method::POST, Some(&bearer()), "{enabled").await;
    assert_eq!(not_json.status, 400);
    assert!(
        not_json.text().starts_with("invalid chaos state: "),
        "{}",
        not_json.text()
    );
    assert_eq!(state(&server).await, initial);

    // Switched on with a valid token.
    let answer = control(&server, http::Method::PUT, Some(&bearer()), ERROR_RULE).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(chaos.is_enabled());
    let handled_before = server.handled.load(Ordering::SeqCst);
    for (_, client) in &clients {
        let err = call(client, CHAOTIC).await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::Unavailable, "injected by chaos"),
            "{err:?}"
        );
        // Procedures without a rule are untouched.
        assert_eq!(call(client, CALM).await.unwrap(), "hi");
        // Opening a stream fails with the stream's rule (default message kept as given).
        let opened = client.server_stream::<Bytes, Bytes>(STREAM, &HI, CallOptions::new());
        let err = tokio::time::timeout(Duration::from_secs(10), opened)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::DataLoss, "stream chaos"),
            "{err:?}"
        );
    }
    assert_eq!(
        server.handled.load(Ordering::SeqCst),
        handled_before + 2,
        "only the calm calls reached a handler"
    );

    // On the YARPC-HTTP wire.
    let raw = raw_h1(
        server.http,
        http::Request::post(format!("http://{}/", server.http))
            .header("host", "x")
            .header("rpc-caller", "raw")
            .header("rpc-service", "test-service")
            .header("rpc-procedure", CHAOTIC)
            .header("rpc-encoding", "raw")
            .header("context-ttl-ms", "5000")
            .body(Full::new(HI.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(raw.status, 503, "{raw:?}");
    assert_eq!(raw.header("rpc-error-code"), "unavailable");
    assert_eq!(raw.header("rpc-error-message"), "injected by chaos");

    // GET reports the state.
    let on = state(&server).await;
    assert_eq!(on["enabled"], true);
    assert_eq!(
        on["rules"][CHAOTIC],
        serde_json::json!({"error": {"code": "unavailable", "message": "injected by chaos", "probability": 1.0}})
    );
    assert_eq!(on["rules"][STREAM]["error"]["code"], "data-loss");

    // Switched off through the controller: calls succeed again, the rules are kept.
    chaos.disable();
    for (_, client) in &clients {
        assert_eq!(call(client, CHAOTIC).await.unwrap(), "hi");
    }
    let off = state(&server).await;
    assert_eq!(off["enabled"], false);
    assert_eq!(off["rules"][CHAOTIC]["error"]["code"], "unavailable");

    // DELETE disables and clears.
    chaos.enable();
    let deleted = control(&server, http::Method::DELETE, Some(&bearer()), "").await;
    assert_eq!(deleted.status, 200);
    assert_eq!(state(&server).await, initial);
    assert!(!chaos.is_enabled());
    for (_, client) in &clients {
        assert_eq!(call(client, CHAOTIC).await.unwrap(), "hi");
    }
    server.dispatcher.stop().await.unwrap();
}

#[tokio::test]
async fn injected_latency_past_the_ttl_is_deadline_exceeded() {
    let chaos = Chaos::new().with_control_token(TOKEN);
    let server = server(ChaosMiddleware::new(chaos.clone())).await;
    let clients = clients(&server);
    let latency = r#"{"enabled": true, "rules": {"chaos::Echo": {"latency": {"ms": 300, "probability": 1.0}}}}"#;
    let answer = control(&server, http::Method::POST, Some(&bearer()), latency).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let ttl = || CallOptions::new().ttl(Duration::from_millis(50));
    for (_, client) in &clients {
        let err = call_with(client, CHAOTIC, ttl()).await.unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
        // The same TTL is plenty without the injected latency.
        assert_eq!(call_with(client, CALM, ttl()).await.unwrap(), "hi");
    }
    assert_eq!(
        server.handled.load(Ordering::SeqCst),
        2,
        "the delayed calls never reached the handler"
    );

    // With a TTL longer than the latency, the call is only slowed down.
    let slow_but_fine = call_with(
        &clients[0].1,
        CHAOTIC,
        CallOptions::new().ttl(Duration::from_secs(5)),
    )
    .await;
    assert_eq!(slow_but_fine.unwrap(), "hi");
    server.dispatcher.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_token_the_endpoint_is_not_registered() {
    let chaos = Chaos::new();
    let server = server(ChaosMiddleware::new(chaos.clone())).await;
    let answer = control(&server, http::Method::GET, Some(&bearer()), "").await;
    assert_eq!(answer.status, 404, "{answer:?}");
    let answer = control(&server, http::Method::PUT, Some(&bearer()), ERROR_RULE).await;
    assert_ne!(answer.status, 200, "{answer:?}");
    assert!(!chaos.is_enabled());
    let introspect = raw_h1(
        server.http,
        http::Request::get(format!("http://{}/omnirelay/introspect", server.http))
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert!(
        introspect.text().contains("\"chaos\""),
        "{}",
        introspect.text()
    );

    // The dispatcher API still works without an endpoint.
    chaos
        .set_rule(
            CHAOTIC,
            ChaosRule::new().with_error(Code::PermissionDenied, "no", Probability::ALWAYS),
        )
        .unwrap();
    chaos.enable();
    let [(_g, grpc), (_h, http)] = clients(&server);
    for client in [&grpc, &http] {
        assert_eq!(
            call(client, CHAOTIC).await.unwrap_err().code(),
            Code::PermissionDenied
        );
    }
    server.dispatcher.stop().await.unwrap();
}

#[tokio::test]
async fn outbound_chaos_fails_calls_before_they_leave() {
    let server = server(Middleware::new("none")).await;
    let chaos = Chaos::new();
    chaos
        .set_default_rule(Some(ChaosRule::new().with_error(
            Code::Unavailable,
            "outbound chaos",
            Probability::ALWAYS,
        )))
        .unwrap();
    let (_caller, client) = client(
        GrpcOutbound::new(format!("http://{}", server.grpc)).unwrap(),
        Some(chaos.clone().into()),
    );
    assert_eq!(call(&client, CALM).await.unwrap(), "hi");
    chaos.enable();
    let err = call(&client, CALM).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unavailable, "outbound chaos")
    );
    assert_eq!(server.handled.load(Ordering::SeqCst), 1);
    server.dispatcher.stop().await.unwrap();
}

/// Writes `head` (a request's head and perhaps part of its body) to a fresh TCP connection,
/// then stalls: sends nothing more but keeps the connection open, and reads the response the
/// server sends meanwhile. Waits at most 30 s (the inbound's body timeout is 5 s).
async fn stalled(addr: std::net::SocketAddr, head: &str) -> (RawResponse, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let read = async {
        loop {
            if let Some(response) = parse_http1(&out) {
                let length: usize = response.header("content-length").parse().unwrap_or(0);
                if response.body.len() >= length {
                    return response;
                }
            }
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before a whole response: {out:?}");
            out.extend_from_slice(&buf[..n]);
        }
    };
    let response = tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the server answers a stalled request within 30 s");
    (response, stream)
}

/// A control request whose chunked body never ends is answered `408` once the inbound's body
/// timeout passes, instead of holding the connection; the server keeps serving and stops
/// promptly.
#[tokio::test]
async fn a_never_ending_admin_body_is_answered_408() {
    let chaos = Chaos::new().with_control_token(TOKEN);
    let server = server(ChaosMiddleware::new(chaos.clone())).await;
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nhost: x\r\nauthorization: {}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n5\r\n{{\"ena\r\n",
        bearer()
    );
    let (answer, _held) = stalled(server.http, &head).await;
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.header("connection"), "close");
    assert!(!chaos.is_enabled());

    // Still serving: the control endpoint and calls.
    assert_eq!(state(&server).await["enabled"], false);
    let [(_d, grpc), _] = clients(&server);
    assert_eq!(call(&grpc, CALM).await.unwrap(), HI);
    tokio::time::timeout(Duration::from_secs(30), server.dispatcher.stop())
        .await
        .expect("stop finishes")
        .unwrap();
}

/// A wrong or missing token is refused before the body is read: a client that sends the head
/// and stalls gets its `401` at once, not the body timeout's `408`.
#[tokio::test]
async fn bad_credentials_are_refused_before_the_body_is_read() {
    let chaos = Chaos::new().with_control_token(TOKEN);
    let server = server(ChaosMiddleware::new(chaos.clone())).await;
    for authorization in ["authorization: Bearer wrong\r\n", ""] {
        let head = format!(
            "PUT {PATH} HTTP/1.1\r\nhost: x\r\n{authorization}content-length: 1000\r\n\r\n{{"
        );
        let (answer, _held) = stalled(server.http, &head).await;
        assert_eq!(answer.status, 401, "{authorization:?}: {answer:?}");
    }
    assert!(!chaos.is_enabled());
    server.dispatcher.stop().await.unwrap();
}

/// A `GET` (or `DELETE`) body is never read: announced and never sent, it does not delay the
/// answer.
#[tokio::test]
async fn bodies_of_get_and_delete_are_not_read() {
    let chaos = Chaos::new().with_control_token(TOKEN);
    chaos.enable();
    let server = server(ChaosMiddleware::new(chaos.clone())).await;
    for method in ["GET", "DELETE"] {
        let head = format!(
            "{method} {PATH} HTTP/1.1\r\nhost: x\r\nauthorization: {}\r\ncontent-length: 1000\r\n\r\n",
            bearer()
        );
        let (answer, _held) = stalled(server.http, &head).await;
        assert_eq!(answer.status, 200, "{method}: {answer:?}");
        let state: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(state["enabled"], method == "GET", "{method}");
    }
    server.dispatcher.stop().await.unwrap();
}
