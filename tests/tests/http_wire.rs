//! YARPC-HTTP at the wire level, over real sockets with hand-made requests: invalid header
//! bytes, the WebSocket frame protocol (limits, unknown types, disconnects), introspection,
//! health and readiness, and graceful drain for HTTP and gRPC.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::Full;
use omnirelay::Streaming;
use omnirelay::codec::RawCodec;
use omnirelay::introspect::{HealthReport, Introspection};
use omnirelay::procedure::typed;
use omnirelay::transport::http::HttpInbound;
use omnirelay::{CallOptions, Client, Code, Encoding, ProcedureSpec, Request, Response};
use omnirelay_examples::EchoService;
use omnirelay_examples::echo::EchoProcedures;
use omnirelay_tests::{HttpHarness, loopback, raw_h1, raw_tcp};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn count_stream() -> ProcedureSpec {
    typed::duplex(
        "ws::Echo",
        RawCodec,
        |r: Request<Streaming<Bytes>>| async move { Ok(Response::new(r.into_body())) },
    )
}

/// A raw WebSocket to `ws::Echo` (or `procedure`) with the YARPC headers.
async fn ws(
    h: &HttpHarness,
    procedure: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    tokio_tungstenite::tungstenite::Error,
> {
    let mut request = format!("ws://{}/", h.addr).into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("rpc-caller", "raw".parse().unwrap());
    headers.insert("rpc-service", "test-service".parse().unwrap());
    headers.insert("rpc-procedure", procedure.parse().unwrap());
    headers.insert("rpc-encoding", "raw".parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    tokio_tungstenite::client_async(request, tcp)
        .await
        .map(|(ws, _)| ws)
}

/// Reads frames until one of type `kind` (skipping response headers and data) and returns its
/// payload as JSON.
async fn frame_of<S>(ws: &mut S, kind: u8) -> serde_json::Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("the socket is open")
            .expect("a message");
        if let Message::Binary(bytes) = message {
            if bytes[0] == kind {
                return serde_json::from_slice(&bytes[1..]).unwrap_or(serde_json::Value::Null);
            }
            assert!(
                matches!(bytes[0], 0x10 | 0x11),
                "unexpected frame {:#04x}",
                bytes[0]
            );
        }
    }
}

#[tokio::test]
async fn websocket_frames_follow_the_protocol() {
    let h = HttpHarness::start(count_stream()).await;
    let mut socket = ws(&h, "ws::Echo").await.unwrap();
    socket
        .send(Message::binary(&b"\x01hello"[..]))
        .await
        .unwrap();
    let headers = socket.next().await.unwrap().unwrap().into_data();
    assert_eq!(headers[0], 0x10);
    let data = socket.next().await.unwrap().unwrap().into_data();
    assert_eq!(data.as_ref(), b"\x11hello");
    socket.send(Message::binary(&b"\x02"[..])).await.unwrap();
    let complete = frame_of(&mut socket, 0x12).await;
    assert_eq!(complete["transport"], "http");
    // The server closes after the last frame.
    let next = socket.next().await;
    assert!(
        matches!(next, None | Some(Ok(Message::Close(_))) | Some(Err(_))),
        "{next:?}"
    );
}

#[tokio::test]
async fn unknown_frame_types_text_frames_and_frames_over_the_limit_end_the_call() {
    let h = HttpHarness::start_with(
        HttpInbound::new(loopback()).max_frame_bytes(1024),
        omnirelay::transport::http::HttpOutbound::new,
        count_stream(),
    )
    .await;
    let mut socket = ws(&h, "ws::Echo").await.unwrap();
    socket
        .send(Message::binary(&b"\x7fwhat"[..]))
        .await
        .unwrap();
    let error = frame_of(&mut socket, 0x13).await;
    assert_eq!(error["code"], "invalid-argument", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("0x7f"),
        "{error}"
    );

    let mut socket = ws(&h, "ws::Echo").await.unwrap();
    socket.send(Message::text("hello")).await.unwrap();
    let error = frame_of(&mut socket, 0x13).await;
    assert_eq!(error["code"], "invalid-argument", "{error}");

    let mut socket = ws(&h, "ws::Echo").await.unwrap();
    let mut big = vec![0x01];
    big.extend(vec![0u8; 1025]);
    socket.send(Message::binary(big)).await.unwrap();
    let error = frame_of(&mut socket, 0x13).await;
    assert_eq!(error["code"], "resource-exhausted", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("1024"),
        "{error}"
    );

    // Far over the limit (beyond what the WebSocket layer buffers): still a clear error.
    let mut socket = ws(&h, "ws::Echo").await.unwrap();
    let mut huge = vec![0x01];
    huge.extend(vec![0u8; 64 * 1024]);
    let _ = socket.send(Message::binary(huge)).await;
    let error = frame_of(&mut socket, 0x13).await;
    assert_eq!(error["code"], "resource-exhausted", "{error}");

    let mut socket = ws(&h, "ws::Echo").await.unwrap();
    socket.send(Message::binary(Vec::new())).await.unwrap();
    let error = frame_of(&mut socket, 0x13).await;
    assert_eq!(error["code"], "invalid-argument", "{error}");
}

#[tokio::test]
async fn bad_websocket_requests_get_http_errors_before_the_upgrade() {
    let h = HttpHarness::start(vec![
        count_stream(),
        typed::unary("u::Unary", RawCodec, |r: Request<Bytes>| async move {
            Ok(Response::new(r.body))
        }),
    ])
    .await;
    let err = ws(&h, "nope::Nope").await.unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(response) = err else {
        panic!("expected an HTTP error, got {err:?}");
    };
    assert_eq!(response.status(), 501);
    assert_eq!(response.headers()["rpc-error-code"], "unimplemented");
    let err = ws(&h, "u::Unary").await.unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(response) = err else {
        panic!("expected an HTTP error, got {err:?}");
    };
    assert_eq!(response.status(), 400);
    let body = String::from_utf8(response.body().clone().unwrap()).unwrap();
    assert!(body.contains("is a unary procedure"), "{body}");
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_cancels_the_handler() {
    /// Reports when the handler's future is dropped (cancelled) or sees its requests fail.
    struct Report(Option<tokio::sync::mpsc::Sender<&'static str>>);
    impl Drop for Report {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.try_send("dropped");
            }
        }
    }
    let (tx, mut ended) = tokio::sync::mpsc::channel(4);
    let spec = typed::client_stream("cs::Sum", RawCodec, move |r: Request<Streaming<Bytes>>| {
        let mut report = Report(Some(tx.clone()));
        async move {
            let mut requests = r.into_body();
            loop {
                match requests.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => {
                        let _ = report.0.take().unwrap().try_send("completed");
                        return Ok(Response::new(Bytes::new()));
                    }
                    Err(e) => {
                        let _ = report.0.take().unwrap().try_send("cancelled");
                        return Err(e);
                    }
                }
            }
        }
    });
    let h = HttpHarness::start(spec).await;
    let mut socket = ws(&h, "cs::Sum").await.unwrap();
    socket.send(Message::binary(&b"\x01one"[..])).await.unwrap();
    // Gone without a request-complete frame or a close handshake.
    drop(socket);
    let outcome = tokio::time::timeout(Duration::from_secs(5), ended.recv())
        .await
        .expect("the handler was cancelled")
        .unwrap();
    assert!(matches!(outcome, "dropped" | "cancelled"), "{outcome}");

    // An SSE client that disconnects: the next call is served as usual.
    let h = HttpHarness::start(EchoProcedures::new(EchoService)).await;
    let request = b"POST / HTTP/1.1\r\nHost: x\r\nRpc-Caller: c\r\nRpc-Service: test-service\r\n\
        Rpc-Procedure: omnirelay.examples.echo.v1.Echo::Expand\r\nRpc-Encoding: json\r\n\
        Accept: text/event-stream\r\nContent-Length: 34\r\n\r\n{\"message\":\"x\",\"repeat\":10000}    ";
    {
        use tokio::io::AsyncWriteExt;
        let mut tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
        tcp.write_all(request).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = omnirelay_examples::echo::EchoClient::new(h.config());
    let reply = client
        .echo(omnirelay_examples::echo::EchoRequest {
            message: "still here".into(),
            repeat: 0,
        })
        .await
        .unwrap();
    assert_eq!(reply.body.message, "still here");
}

#[tokio::test]
async fn invalid_header_bytes_are_clear_400s() {
    let h = HttpHarness::start(EchoProcedures::new(EchoService)).await;
    let mut request =
        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nRpc-Caller: \xff\xfe\r\n\
        Rpc-Service: test-service\r\nRpc-Procedure: omnirelay.examples.echo.v1.Echo::Echo\r\n\
        Rpc-Encoding: json\r\nContext-TTL-MS: 1000\r\nContent-Length: 2\r\n\r\n{}"
            .to_vec();
    let response = raw_tcp(h.addr, &request).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.header("rpc-error-code"), "invalid-argument");
    assert_eq!(response.text(), "header Rpc-Caller is not valid UTF-8\n");
    // The service and the encoding are compared as bytes before they are read as text: a value
    // that is not the expected one still gets the UTF-8 check.
    for (from, to, name) in [
        (
            &b"Rpc-Service: test-service"[..],
            &b"Rpc-Service: test-\xffservice"[..],
            "Rpc-Service",
        ),
        (
            b"Rpc-Encoding: json",
            b"Rpc-Encoding: js\xffon",
            "Rpc-Encoding",
        ),
    ] {
        let valid_caller = replace(&request, b"\xff\xfe", b"ok-caller");
        let bad = replace(&valid_caller, from, to);
        let response = raw_tcp(h.addr, &bad).await;
        assert_eq!(response.status, 400, "{name}");
        assert_eq!(response.header("rpc-error-code"), "invalid-argument");
        assert_eq!(
            response.text(),
            format!("header {name} is not valid UTF-8\n")
        );
    }
    // A control byte in a header is refused by the HTTP parser itself.
    let pos = request.windows(2).position(|w| w == b"\xff\xfe").unwrap();
    request[pos] = 0x01;
    let response = raw_tcp(h.addr, &request).await;
    assert_eq!(response.status, 400);
    // The server is fine afterwards.
    let ok = raw_tcp(
        h.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn introspection_lists_procedures_inbounds_and_outbounds() {
    let server = omnirelay::Dispatcher::builder("intro")
        .inbound(HttpInbound::new(loopback()))
        .outbound(
            "downstream",
            omnirelay::transport::grpc::GrpcOutbound::new("http://127.0.0.1:9").unwrap(),
        )
        .register(EchoProcedures::new(EchoService))
        .register(
            typed::unary("a::Aliased", RawCodec, |r: Request<Bytes>| async move {
                Ok(Response::new(r.body))
            })
            .with_alias("a::Old"),
        )
        .register(typed::oneway(
            "a::Fire",
            RawCodec,
            |_r: Request<Bytes>| async { Ok(()) },
        ))
        .build()
        .unwrap();
    server.start().await.unwrap();
    let addr = server.addr(omnirelay::Transport::Http).unwrap();
    let get = |path: &str| {
        http::Request::get(format!("http://{addr}{path}"))
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let response = raw_h1(addr, get("/omnirelay/introspect")).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), "application/json");
    let seen: Introspection = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(seen, server.introspect());
    assert_eq!(seen.service, "intro");
    assert_eq!(seen.status, "running");
    let names = |list: &[omnirelay::introspect::ProcedureInfo]| {
        list.iter().map(|p| p.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(&seen.procedures.unary),
        [
            "a::Aliased",
            "grpc.health.v1.Health::Check",
            "omnirelay.examples.echo.v1.Echo::Echo"
        ]
    );
    assert_eq!(seen.procedures.unary[0].aliases, ["a::Old"]);
    assert_eq!(seen.procedures.unary[2].encodings, ["proto", "json"]);
    assert_eq!(names(&seen.procedures.oneway), ["a::Fire"]);
    assert_eq!(
        names(&seen.procedures.server_stream),
        ["omnirelay.examples.echo.v1.Echo::Expand"]
    );
    assert_eq!(names(&seen.procedures.client_stream).len(), 1);
    assert_eq!(names(&seen.procedures.duplex).len(), 1);
    assert_eq!(seen.inbounds.len(), 1);
    assert_eq!(seen.inbounds[0].transport, "http");
    assert_eq!(seen.inbounds[0].address, addr.to_string());
    assert_eq!(seen.outbounds.len(), 1);
    assert_eq!(seen.outbounds[0].service, "downstream");
    assert_eq!(seen.outbounds[0].transport, "grpc");
    assert_eq!(seen.outbounds[0].peers, ["127.0.0.1:9"]);
    assert!(seen.middleware.is_empty());
    // The JSON keys are lowerCamelCase.
    let json: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert!(json["procedures"]["serverStream"].is_array(), "{json}");

    for path in ["/healthz", "/readyz"] {
        let response = raw_h1(addr, get(path)).await;
        assert_eq!(response.status, 200, "{path}");
        let report: HealthReport = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(report.status, "ok");
        assert!(!report.draining);
    }
    server.stop().await.unwrap();
}

fn slow() -> ProcedureSpec {
    typed::unary("slow::Sleep", RawCodec, |r: Request<Bytes>| async move {
        let ms: u64 = std::str::from_utf8(&r.body).unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Response::new(r.body))
    })
}

#[tokio::test]
async fn during_drain_new_calls_and_readyz_get_503_while_in_flight_calls_finish() {
    let h = HttpHarness::start(slow()).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    // Several calls in flight, over HTTP and over gRPC.
    let in_flight: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .unary::<Bytes, Bytes>(
                        "slow::Sleep",
                        &Bytes::from_static(b"600"),
                        CallOptions::new(),
                    )
                    .await
            })
        })
        .collect();
    let grpc_caller = omnirelay::Dispatcher::builder("grpc-caller")
        .outbound(
            "test-service",
            omnirelay::transport::grpc::GrpcOutbound::new(format!("http://{}", h.grpc_addr))
                .unwrap(),
        )
        .build()
        .unwrap();
    let grpc = Client::with_codec(
        grpc_caller.client_config("test-service").unwrap(),
        RawCodec,
        Encoding::Raw,
    );
    let grpc_in_flight = {
        let grpc = grpc.clone();
        tokio::spawn(async move {
            grpc.unary::<Bytes, Bytes>(
                "slow::Sleep",
                &Bytes::from_static(b"600"),
                CallOptions::new(),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let stopping = Arc::new(AtomicBool::new(true));
    let stop = {
        let stopping = stopping.clone();
        let server = Arc::new(h.server);
        let s = server.clone();
        let task = tokio::spawn(async move {
            s.stop().await.unwrap();
            stopping.store(false, Ordering::SeqCst);
        });
        (server, task)
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(stopping.load(Ordering::SeqCst), "stop waits for the calls");

    let readyz = raw_h1(
        h.addr,
        http::Request::get(format!("http://{}/readyz", h.addr))
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(readyz.status, 503);
    assert_eq!(readyz.header("retry-after"), "1");
    let report: HealthReport = serde_json::from_slice(&readyz.body).unwrap();
    assert!(report.draining);
    assert!(report.issues.contains(&"draining".to_owned()), "{report:?}");
    assert!(report.active_requests >= 4, "{report:?}");
    let healthz = raw_h1(
        h.addr,
        http::Request::get(format!("http://{}/healthz", h.addr))
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(healthz.status, 200, "draining does not fail liveness");

    let refused = raw_h1(
        h.addr,
        http::Request::post(format!("http://{}/", h.addr))
            .header("host", "x")
            .header("rpc-caller", "c")
            .header("rpc-service", "test-service")
            .header("rpc-procedure", "slow::Sleep")
            .header("rpc-encoding", "raw")
            .header("context-ttl-ms", "1000")
            .body(Full::new(Bytes::from_static(b"1")))
            .unwrap(),
    )
    .await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), "1");
    assert_eq!(refused.header("rpc-error-code"), "unavailable");
    let err = client
        .unary::<Bytes, Bytes>("slow::Sleep", &Bytes::from_static(b"1"), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    // gRPC answers new calls `unavailable` while draining too.
    let err = grpc
        .unary::<Bytes, Bytes>("slow::Sleep", &Bytes::from_static(b"1"), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");

    // No in-flight call was lost.
    for call in in_flight {
        assert_eq!(call.await.unwrap().unwrap().body.as_ref(), b"600");
    }
    assert_eq!(grpc_in_flight.await.unwrap().unwrap().body.as_ref(), b"600");
    tokio::time::timeout(Duration::from_secs(5), stop.1)
        .await
        .expect("stop returns once the calls are done")
        .unwrap();
    assert_eq!(stop.0.status(), omnirelay::dispatcher::Status::Stopped);
    // After the stop, the port is closed.
    let err = client
        .unary::<Bytes, Bytes>("slow::Sleep", &Bytes::from_static(b"1"), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
}

#[tokio::test]
async fn an_sse_stream_in_flight_finishes_during_drain() {
    let spec = typed::server_stream("s::Slow", RawCodec, |_r: Request<Bytes>| async {
        let s = futures::stream::iter(0..5).then(|n| async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            Ok(Bytes::from(n.to_string()))
        });
        Ok(Response::new(Streaming::new(s)))
    });
    let h = HttpHarness::start(spec).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    let mut stream = client
        .server_stream::<Bytes, Bytes>("s::Slow", &Bytes::new(), CallOptions::new())
        .await
        .unwrap()
        .into_body();
    let server = Arc::new(h.server);
    let stop = {
        let server = server.clone();
        tokio::spawn(async move { server.stop().await })
    };
    let mut got = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        got.push(String::from_utf8(m.to_vec()).unwrap());
    }
    assert_eq!(got, ["0", "1", "2", "3", "4"]);
    stop.await.unwrap().unwrap();
}

/// `bytes` with the first `from` replaced by `to`.
fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("present");
    [&bytes[..at], to, &bytes[at + from.len()..]].concat()
}

/// An HTTP/1.1 client connection to `addr`, kept alive across the requests sent on it.
async fn keep_alive(
    addr: std::net::SocketAddr,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

/// The service, caller and encoding values answer the same whether they take the byte-compared
/// fast path or the UTF-8 check: on one keep-alive connection, a caller that repeats, changes,
/// is empty or is not UTF-8; empty values count as missing; encodings in other spellings; which
/// error wins when several values are bad; and the caller the handler is told.
#[tokio::test]
async fn header_values_answer_alike_on_the_fast_and_the_checked_path() {
    struct Any;
    impl omnirelay::Codec<Bytes> for Any {
        fn encodings(&self) -> &'static [Encoding] {
            &[Encoding::Raw, Encoding::Json, Encoding::Proto]
        }
        fn encode(&self, _: Encoding, value: &Bytes) -> omnirelay::Result<Bytes> {
            Ok(value.clone())
        }
        fn decode(&self, _: Encoding, bytes: Bytes) -> omnirelay::Result<Bytes> {
            Ok(bytes)
        }
    }
    let who = typed::unary("who::Am", Any, |r: Request<Bytes>| async move {
        Ok(Response::new(Bytes::from(format!(
            "{}|{}",
            r.meta.caller, r.meta.encoding
        ))))
    });
    let h = HttpHarness::start(who).await;
    let mut sender = keep_alive(h.addr).await;
    /// Service, caller and encoding values; the status; the body, or its start for errors.
    type Case = (
        &'static [u8],
        &'static [u8],
        &'static [u8],
        u16,
        &'static str,
    );
    let cases: &[Case] = &[
        (b"test-service", b"a", b"raw", 200, "a|raw"),
        (b"test-service", b"a", b"raw", 200, "a|raw"),
        (b"test-service", b"b", b"json", 200, "b|json"),
        (b"test-service", b"a", b"proto", 200, "a|proto"),
        (b"test-service", b"a", b"RAW", 200, "a|raw"),
        (b"test-service", b"a", b"Proto", 200, "a|proto"),
        (b"test-service", b"a", b"application/json", 200, "a|json"),
        (
            b"test-service",
            b"a",
            b"thrift",
            400,
            "unknown encoding \"thrift\"",
        ),
        (b"test-service", b"", b"raw", 400, "missing caller name\n"),
        (b"test-service", b"a", b"", 400, "missing encoding\n"),
        (b"", b"a", b"raw", 400, "missing service name\n"),
        (
            b"",
            b"",
            b"",
            400,
            "missing service name, caller name, encoding\n",
        ),
        (
            b"test-service",
            b"\xff",
            b"raw",
            400,
            "header Rpc-Caller is not valid UTF-8\n",
        ),
        (
            b"test-service",
            b"a\xff",
            b"raw",
            400,
            "header Rpc-Caller is not valid UTF-8\n",
        ),
        (
            b"test-service",
            b"a",
            b"r\xffaw",
            400,
            "header Rpc-Encoding is not valid UTF-8\n",
        ),
        (
            b"\xff",
            b"\xff",
            b"\xff",
            400,
            "header Rpc-Service is not valid UTF-8\n",
        ),
        (
            b"test-service",
            b"\xff",
            b"\xff",
            400,
            "header Rpc-Caller is not valid UTF-8\n",
        ),
        (
            b"",
            b"\xff",
            b"",
            400,
            "header Rpc-Caller is not valid UTF-8\n",
        ),
        (b"test-service", b"caf\xc3\xa9", b"raw", 200, "café|raw"),
        (b"test-service", b"caf\xc3\xa9", b"raw", 200, "café|raw"),
        (b"test-service", b"a", b"raw", 200, "a|raw"),
        (
            b"other",
            b"a",
            b"raw",
            501,
            "unrecognized service name \"other\"",
        ),
    ];
    for &(service, caller, encoding, status, body) in cases {
        let value = |b: &[u8]| http::HeaderValue::from_bytes(b).unwrap();
        let request = http::Request::post(format!("http://{}/", h.addr))
            .header("rpc-service", value(service))
            .header("rpc-procedure", "who::Am")
            .header("rpc-caller", value(caller))
            .header("rpc-encoding", value(encoding))
            .header("context-ttl-ms", "1000")
            .body(Full::new(Bytes::from_static(b"x")))
            .unwrap();
        sender.ready().await.unwrap();
        let response = sender.send_request(request).await.unwrap();
        let got = response.status().as_u16();
        let text = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let text = String::from_utf8_lossy(&text);
        let case = (
            String::from_utf8_lossy(service),
            String::from_utf8_lossy(caller),
            String::from_utf8_lossy(encoding),
        );
        assert_eq!(got, status, "{case:?}: {text}");
        assert!(
            if status == 200 {
                text == body
            } else {
                text.starts_with(body)
            },
            "{case:?}: {text:?}"
        );
    }
}

/// An inbound started on a context with an empty service name: an empty `Rpc-Service` value is
/// still a missing service name, not a match.
#[tokio::test]
async fn an_empty_service_value_is_missing_even_when_the_context_is_unnamed() {
    use omnirelay::Inbound;
    use omnirelay::dispatcher::InboundContext;
    let mut registry = omnirelay::procedure::Registry::new();
    registry
        .register(typed::unary(
            "e::Echo",
            RawCodec,
            |r: Request<Bytes>| async move { Ok(Response::new(r.body)) },
        ))
        .unwrap();
    let inbound = HttpInbound::new(loopback());
    let addr = inbound
        .start(Arc::new(InboundContext::new("", registry)))
        .await
        .unwrap();
    let request = b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nRpc-Caller: c\r\n\
        Rpc-Service: \r\nRpc-Procedure: e::Echo\r\nRpc-Encoding: raw\r\n\
        Context-TTL-MS: 1000\r\nContent-Length: 2\r\n\r\nhi";
    let response = raw_tcp(addr, request).await;
    assert_eq!(response.status, 400, "{}", response.text());
    assert_eq!(response.text(), "missing service name\n");
    inbound.stop().await.unwrap();
}

/// Sends `head` on a new connection, then `body` after `wait` (nothing when it is empty; a write
/// the server has already refused is ignored), and reads the answer until the server closes.
async fn head_then_body(
    addr: std::net::SocketAddr,
    head: &str,
    body: &[u8],
    wait: Duration,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    if !body.is_empty() {
        tokio::time::sleep(wait).await;
        let _ = stream.write_all(body).await;
    }
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the connection is closed after the answer")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A unary call's deadline error names the call from the request's own headers (the first value
/// of each, as routing read them), both when the handler is too slow and when the body arrives
/// after the deadline; the second case closes the connection, whose body was not read whole.
#[tokio::test]
async fn deadline_errors_name_the_call_from_its_first_header_values() {
    let h = HttpHarness::start(slow()).await;
    let head = |ttl: u32, length: usize| {
        format!(
            "POST / HTTP/1.1\r\nhost: x\r\nrpc-service: test-service\r\nrpc-procedure: slow::Sleep\r\n\
             rpc-caller: first\r\nrpc-caller: second\r\nrpc-encoding: raw\r\ncontext-ttl-ms: {ttl}\r\n\
             content-length: {length}\r\n\r\n"
        )
    };
    let expected = |ttl: &str| {
        format!(
            r#"call to procedure "slow::Sleep" of service "test-service" from caller "first" timed out after {ttl}"#
        )
    };
    // The handler sleeps past the deadline.
    let request =
        format!("{}500", head(50, 3)).replace("host: x\r\n", "host: x\r\nconnection: close\r\n");
    let slow_handler = raw_tcp(h.addr, request.as_bytes()).await;
    assert_eq!(slow_handler.status.as_u16(), 504, "{slow_handler:?}");
    assert_eq!(
        slow_handler.headers["rpc-error-code"], "deadline-exceeded",
        "{slow_handler:?}"
    );
    assert_eq!(
        String::from_utf8_lossy(&slow_handler.body).trim_end(),
        expected("50ms")
    );
    // The body comes after the deadline: the handler does not run.
    let text = head_then_body(h.addr, &head(40, 1), b"0", Duration::from_millis(150)).await;
    assert!(text.starts_with("HTTP/1.1 504"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(text.contains(&expected("40ms")), "{text}");
}

/// A TTL of 0 has passed when the call arrives: the answer is `deadline-exceeded` and the
/// handler does not run, whether the body came with the head or after it. A TTL of 1 ms whose
/// body comes 100 ms after the head has passed while the body was read: the handler does not
/// run either. With time to spare, the same requests are answered.
#[tokio::test]
async fn calls_past_their_deadline_do_not_run_their_handler() {
    let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = ran.clone();
    let spec = typed::unary("count::Echo", RawCodec, move |r: Request<Bytes>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { Ok(Response::new(r.body)) }
    });
    let h = HttpHarness::start(spec).await;
    let head = |ttl: u32| {
        format!(
            "POST / HTTP/1.1\r\nhost: x\r\nconnection: close\r\nrpc-service: test-service\r\n\
             rpc-procedure: count::Echo\r\nrpc-caller: t\r\nrpc-encoding: raw\r\n\
             context-ttl-ms: {ttl}\r\ncontent-length: 2\r\n\r\n"
        )
    };
    let send = |ttl: u32, late_body: Option<Duration>| {
        let head = head(ttl);
        async move {
            match late_body {
                None => head_then_body(h.addr, &format!("{head}hi"), b"", Duration::ZERO).await,
                Some(wait) => head_then_body(h.addr, &head, b"hi", wait).await,
            }
        }
    };
    for (ttl, late) in [
        (0, None),
        (0, Some(Duration::from_millis(50))),
        (1, Some(Duration::from_millis(100))),
    ] {
        let answer = send(ttl, late).await;
        assert!(
            answer.starts_with("HTTP/1.1 504"),
            "ttl {ttl}, {late:?}: {answer}"
        );
        assert!(
            answer.contains("rpc-error-code: deadline-exceeded"),
            "ttl {ttl}, {late:?}: {answer}"
        );
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0, "no handler ran");
    for late in [None, Some(Duration::from_millis(50))] {
        let answer = send(5000, late).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{late:?}: {answer}");
        assert!(answer.ends_with("hi"), "{late:?}: {answer}");
    }
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}

/// A handler that answers with more headers than an HTTP header map holds gets an `internal`
/// error for that call, and the connection goes on serving (it used to panic and close).
#[tokio::test]
async fn too_many_response_headers_fail_the_call_not_the_connection() {
    let many = typed::unary("many::Headers", RawCodec, |r: Request<Bytes>| async move {
        let count: usize = std::str::from_utf8(&r.body).unwrap().parse().unwrap();
        let mut response = Response::new(Bytes::from_static(b"ok"));
        for i in 0..count {
            response.meta.headers.insert(format!("k{i}"), "v");
        }
        Ok(response)
    });
    let h = HttpHarness::start(many).await;
    let mut sender = keep_alive(h.addr).await;
    for (count, status) in [("25000", 500), ("3", 200)] {
        let request = http::Request::post(format!("http://{}/", h.addr))
            .header("rpc-service", "test-service")
            .header("rpc-procedure", "many::Headers")
            .header("rpc-caller", "c")
            .header("rpc-encoding", "raw")
            .header("context-ttl-ms", "10000")
            .body(Full::new(Bytes::from(count)))
            .unwrap();
        sender.ready().await.unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{count} headers");
        let headers = response.headers().clone();
        let text = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        if status == 500 {
            assert_eq!(headers["rpc-error-code"], "internal");
            assert!(
                String::from_utf8_lossy(&text)
                    .starts_with("the handler's response: too many headers"),
                "{text:?}"
            );
        } else {
            assert_eq!(headers["rpc-header-k2"], "v");
            assert_eq!(text, "ok");
        }
    }
}

/// A success is written into the request's own header map (emptied, so no call allocates one):
/// on one keep-alive connection, unary and oneway answers carry their own headers and none of
/// the request's, call after call, with request header sets that grow and shrink.
#[tokio::test]
async fn answers_carry_none_of_the_request_headers() {
    let unary = typed::unary("echo::Tagged", RawCodec, |r: Request<Bytes>| async move {
        let mut response = Response::new(r.body);
        response.meta.headers.insert("tag", "t");
        Ok(response)
    });
    let oneway = typed::oneway("log::Drop", RawCodec, |_r: Request<Bytes>| async { Ok(()) });
    let h = HttpHarness::start(vec![unary, oneway]).await;
    let mut sender = keep_alive(h.addr).await;
    for (round, extra) in [0usize, 30, 2, 15, 0].into_iter().enumerate() {
        for procedure in ["echo::Tagged", "log::Drop"] {
            let mut request = http::Request::post(format!("http://{}/", h.addr))
                .header("rpc-service", "test-service")
                .header("rpc-procedure", procedure)
                .header("rpc-caller", "c")
                .header("rpc-encoding", "raw")
                .header("content-type", "text/plain")
                .header("context-ttl-ms", "10000")
                .header("rpc-header-secret", "s");
            for i in 0..extra {
                request = request.header(format!("x-request-{i}"), "v");
            }
            let request = request.body(Full::new(Bytes::from("body"))).unwrap();
            sender.ready().await.unwrap();
            let response = sender.send_request(request).await.unwrap();
            let what = format!("{procedure}, round {round}, {extra} extra headers");
            assert_eq!(response.status().as_u16(), 200, "{what}");
            let mut names: Vec<_> = response.headers().keys().map(|k| k.as_str()).collect();
            names.sort_unstable();
            let expected: &[&str] = if procedure == "echo::Tagged" {
                &[
                    "content-length",
                    "content-type",
                    "date",
                    "rpc-header-tag",
                    "rpc-service",
                    "rpc-status",
                ]
            } else {
                &["content-length", "date", "rpc-service", "rpc-status"]
            };
            assert_eq!(names, expected, "{what}");
            for (name, value) in response.headers() {
                assert_eq!(
                    response.headers().get_all(name).iter().count(),
                    1,
                    "{what}: {name}: {value:?}"
                );
            }
            if procedure == "echo::Tagged" {
                assert_eq!(
                    response.headers()["content-type"],
                    "application/octet-stream"
                );
            }
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            let want = if procedure == "echo::Tagged" {
                "body"
            } else {
                ""
            };
            assert_eq!(body, want, "{what}");
        }
    }
}
