//! Unary, oneway and streaming calls at their edges, over real sockets, each with and without a
//! middleware (with one, the inbound awaits the middleware's inline future; without, the
//! handler's own box): TTL 0 and no TTL, `Expect: 100-continue` and bodies over the limit, a
//! deadline passing while the body is read, errors and panics that keep the connection, the
//! in-flight count that `stop()` waits for, and handlers that panic while building their future.
//! Every wait is bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use omnirelay::codec::RawCodec;
use omnirelay::middleware::Middleware;
use omnirelay::procedure::typed;
use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
use omnirelay::transport::http::HttpInbound;
use omnirelay::{
    CallOptions, Client, Code, Dispatcher, Encoding, Error, ProcedureSpec, Request, Response,
    Streaming, Transport,
};
use omnirelay_tests::loopback;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(5);

fn procs(ran: Arc<AtomicUsize>, oneway_done: Arc<AtomicUsize>) -> Vec<ProcedureSpec> {
    let ran2 = ran.clone();
    vec![
        typed::unary("u::Echo", RawCodec, move |r: Request<Bytes>| {
            let ran = ran2.clone();
            async move {
                ran.fetch_add(1, Ordering::SeqCst);
                let ms: u64 = std::str::from_utf8(&r.body)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(Response::new(r.body))
            }
        }),
        typed::unary("u::Fail", RawCodec, |_r: Request<Bytes>| async move {
            Err::<Response<Bytes>, _>(Error::aborted("it failed"))
        }),
        typed::unary("u::Panic", RawCodec, |_r: Request<Bytes>| async move {
            if true {
                panic!("async boom");
            }
            Ok(Response::new(Bytes::new()))
        }),
        // Panics synchronously, while building its future.
        typed::unary(
            "u::SyncPanic",
            RawCodec,
            |_r: Request<Bytes>| -> std::future::Ready<omnirelay::Result<Response<Bytes>>> {
                panic!("sync boom")
            },
        ),
        typed::oneway("o::Sleep", RawCodec, move |r: Request<Bytes>| {
            let done = oneway_done.clone();
            async move {
                let ms: u64 = std::str::from_utf8(&r.body).unwrap().parse().unwrap();
                tokio::time::sleep(Duration::from_millis(ms)).await;
                done.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }),
        typed::server_stream("s::Count", RawCodec, |r: Request<Bytes>| async move {
            let n: u32 = std::str::from_utf8(&r.body).unwrap().parse().unwrap();
            let s = futures::stream::iter(0..n).then(|i| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(Bytes::from(i.to_string()))
            });
            Ok(Response::new(Streaming::new(s)))
        }),
    ]
}
struct Server {
    server: Arc<Dispatcher>,
    http: SocketAddr,
    grpc: SocketAddr,
    ran: Arc<AtomicUsize>,
    oneway_done: Arc<AtomicUsize>,
}

async fn start(middleware: bool, max_body: usize) -> Server {
    let ran = Arc::new(AtomicUsize::new(0));
    let oneway_done = Arc::new(AtomicUsize::new(0));
    let mut b = Dispatcher::builder("test-service")
        .inbound(HttpInbound::new(loopback()).max_body_bytes(max_body))
        .inbound(GrpcInbound::new(loopback()))
        .register(procs(ran.clone(), oneway_done.clone()));
    if middleware {
        b = b.middleware(Middleware::layer("id", tower::layer::util::Identity::new()));
    }
    let server = b.build().unwrap();
    server.start().await.unwrap();
    Server {
        http: server.addr(Transport::Http).unwrap(),
        grpc: server.addr(Transport::Grpc).unwrap(),
        server: Arc::new(server),
        ran,
        oneway_done,
    }
}

fn head(procedure: &str, ttl: Option<u64>, len: usize, extra: &str) -> String {
    let ttl = ttl.map_or(String::new(), |t| format!("context-ttl-ms: {t}\r\n"));
    format!(
        "POST / HTTP/1.1\r\nhost: t\r\nrpc-caller: raw\r\nrpc-service: test-service\r\n\
         rpc-procedure: {procedure}\r\nrpc-encoding: raw\r\n{ttl}content-length: {len}\r\n{extra}\r\n"
    )
}

/// Reads one final HTTP/1.1 response (skipping 1xx): (raw head text incl. interim ones, body).
async fn read_response(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut all_heads = String::new();
    loop {
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(T, s.read(&mut chunk))
                .await
                .expect("bounded read")
                .unwrap();
            assert!(
                n > 0,
                "closed before a response; got {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        buf.drain(..end + 4);
        all_heads.push_str(&head);
        all_heads.push_str("\n--\n");
        let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        if (100..200).contains(&status) {
            continue;
        }
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < len {
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(T, s.read(&mut chunk))
                .await
                .expect("bounded read")
                .unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
        }
        return (all_heads, buf[..len].to_vec());
    }
}

/// Whether the server closes the connection within `wait`.
async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(wait, s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

fn status(head: &str) -> u16 {
    let last = head
        .trim_end_matches("\n--\n")
        .rsplit("\n--\n")
        .next()
        .unwrap();
    last.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn active(addr: SocketAddr) -> u64 {
    let r = omnirelay_tests::raw_tcp(
        addr,
        b"GET /readyz HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["activeRequests"].as_u64().unwrap()
}

#[tokio::test]
async fn http_ttl_zero_and_no_ttl() {
    for mw in [false, true] {
        let srv = start(mw, 1024).await;
        let mut s = TcpStream::connect(srv.http).await.unwrap();
        s.write_all(format!("{}0", head("u::Echo", Some(0), 1, "")).as_bytes())
            .await
            .unwrap();
        let (h, _) = read_response(&mut s).await;
        assert_eq!(status(&h), 504, "{h}");
        assert!(h.contains("connection: close"), "{h}");
        assert!(closed_within(&mut s, T).await);
        assert_eq!(srv.ran.load(Ordering::SeqCst), 0);
        // No TTL: 400 missing TTL, connection kept (as before).
        let mut s = TcpStream::connect(srv.http).await.unwrap();
        s.write_all(format!("{}0", head("u::Echo", None, 1, "")).as_bytes())
            .await
            .unwrap();
        let (h, _) = read_response(&mut s).await;
        assert_eq!(status(&h), 400, "{h}");
        srv.server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn http_expect_continue_over_the_limit_is_refused_without_100() {
    for mw in [false, true] {
        let srv = start(mw, 16).await;
        let mut s = TcpStream::connect(srv.http).await.unwrap();
        s.write_all(head("u::Echo", Some(2000), 100, "expect: 100-continue\r\n").as_bytes())
            .await
            .unwrap();
        let (h, _) = read_response(&mut s).await;
        assert!(!h.contains("100 continue"), "{h}");
        assert_eq!(status(&h), 429, "{h}");
        assert!(h.contains("connection: close"), "{h}");
        assert!(closed_within(&mut s, T).await);
        // Over the limit, body sent: drained, answered, closed.
        let mut s = TcpStream::connect(srv.http).await.unwrap();
        let req = format!(
            "{}{}",
            head("u::Echo", Some(2000), 100, ""),
            "1".repeat(100)
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let (h, _) = read_response(&mut s).await;
        assert_eq!(status(&h), 429, "{h}");
        assert!(h.contains("connection: close"), "{h}");
        assert_eq!(srv.ran.load(Ordering::SeqCst), 0);
        srv.server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn http_deadline_during_the_body_read_is_504_and_closes() {
    for mw in [false, true] {
        let srv = start(mw, 1024).await;
        let mut s = TcpStream::connect(srv.http).await.unwrap();
        s.write_all(format!("{}1", head("u::Echo", Some(300), 4, "")).as_bytes())
            .await
            .unwrap();
        let (h, _) = read_response(&mut s).await;
        assert_eq!(status(&h), 504, "{h}");
        assert!(h.contains("connection: close"), "{h}");
        assert!(closed_within(&mut s, T).await);
        assert_eq!(srv.ran.load(Ordering::SeqCst), 0);
        srv.server.stop().await.unwrap();
    }
}

/// Errors and panics after the body was read keep the connection; the next request is served.
#[tokio::test]
async fn http_errors_and_panics_keep_the_connection() {
    for mw in [false, true] {
        let srv = start(mw, 1024).await;
        let mut s = TcpStream::connect(srv.http).await.unwrap();
        for (procedure, want) in [
            ("u::Fail", 409u16),
            ("u::Panic", 500),
            ("u::SyncPanic", 500),
            ("u::Echo", 200),
            ("u::Echo", 504), // a handler slower than its TTL
        ] {
            let (body, ttl) = if want == 504 {
                ("800", 200)
            } else {
                ("0", 2000)
            };
            let req = format!("{}{body}", head(procedure, Some(ttl), body.len(), ""));
            s.write_all(req.as_bytes()).await.unwrap();
            let (h, _) = read_response(&mut s).await;
            assert_eq!(status(&h), want, "mw={mw} {procedure}: {h}");
            assert!(!h.contains("connection: close"), "mw={mw} {procedure}: {h}");
        }
        srv.server.stop().await.unwrap();
    }
}

/// The in-flight count covers a unary call while it runs and a oneway handler until it ends.
#[tokio::test]
async fn http_in_flight_counts_unary_and_oneway() {
    for mw in [false, true] {
        let srv = start(mw, 1024).await;
        let mut s = TcpStream::connect(srv.http).await.unwrap();
        s.write_all(format!("{}600", head("u::Echo", Some(3000), 3, "")).as_bytes())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(active(srv.http).await, 1, "mw={mw} unary");
        let _ = read_response(&mut s).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(active(srv.http).await, 0, "mw={mw} after unary");
        s.write_all(format!("{}600", head("o::Sleep", Some(3000), 3, "")).as_bytes())
            .await
            .unwrap();
        let (h, _) = read_response(&mut s).await;
        assert_eq!(status(&h), 200, "{h}");
        assert_eq!(active(srv.http).await, 1, "mw={mw} oneway running");
        // stop waits for the oneway handler.
        tokio::time::timeout(T, srv.server.stop())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(srv.oneway_done.load(Ordering::SeqCst), 1, "mw={mw}");
    }
}

fn grpc_client(srv: &Server) -> (Dispatcher, Client<RawCodec>) {
    let caller = Dispatcher::builder("caller")
        .outbound(
            "test-service",
            GrpcOutbound::new(format!("http://{}", srv.grpc)).unwrap(),
        )
        .build()
        .unwrap();
    let client = Client::with_codec(
        caller.client_config("test-service").unwrap(),
        RawCodec,
        Encoding::Raw,
    );
    (caller, client)
}

#[tokio::test]
async fn grpc_unary_errors_panics_deadlines() {
    for mw in [false, true] {
        let srv = start(mw, 1024).await;
        let (_caller, client) = grpc_client(&srv);
        for (procedure, body, ttl, want) in [
            ("u::Echo", "0", None, Code::Ok),
            ("u::Fail", "0", None, Code::Aborted),
            ("u::Panic", "0", None, Code::Internal),
            ("u::SyncPanic", "0", None, Code::Internal),
            ("u::Echo", "800", Some(200), Code::DeadlineExceeded),
            ("u::Echo", "0", Some(2000), Code::Ok),
        ] {
            let mut o = CallOptions::new();
            o.ttl = ttl.map(Duration::from_millis);
            let r = tokio::time::timeout(
                T,
                client.unary::<Bytes, Bytes>(procedure, &Bytes::from_static(body.as_bytes()), o),
            )
            .await
            .expect("bounded");
            let code = r.as_ref().map_or_else(|e| e.code(), |_| Code::Ok);
            assert_eq!(code, want, "mw={mw} {procedure}");
        }
        srv.server.stop().await.unwrap();
    }
}

/// gRPC: a server stream in flight is counted; stop waits for it; a oneway acks.
#[tokio::test]
async fn grpc_stream_in_flight_holds_stop() {
    for mw in [false, true] {
        let srv = start(mw, 1024).await;
        let (_caller, client) = grpc_client(&srv);
        let mut stream = client
            .server_stream::<Bytes, Bytes>(
                "s::Count",
                &Bytes::from_static(b"5"),
                CallOptions::new(),
            )
            .await
            .unwrap()
            .into_body();
        let first = tokio::time::timeout(T, stream.message())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.as_deref(), Some(&b"0"[..]));
        let server = srv.server.clone();
        let stop = tokio::spawn(async move { server.stop().await });
        let mut got = 1;
        while let Some(_m) = tokio::time::timeout(T, stream.message())
            .await
            .unwrap()
            .unwrap()
        {
            got += 1;
        }
        assert_eq!(got, 5, "mw={mw}");
        tokio::time::timeout(T, stop)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// A handler that panics while it builds its future (before any poll) is caught for every shape,
/// as an async panic is: the call fails `internal` (a oneway call is still acknowledged), and the
/// connection is not dropped.
#[tokio::test]
async fn sync_panics_in_non_unary_handlers() {
    let specs = vec![
        typed::server_stream(
            "s::SyncPanic",
            RawCodec,
            |_r: Request<Bytes>| -> std::future::Ready<omnirelay::Result<Response<Streaming<Bytes>>>> {
                panic!("sync server-stream boom")
            },
        ),
        typed::duplex(
            "d::SyncPanic",
            RawCodec,
            |_r: Request<Streaming<Bytes>>| -> std::future::Ready<omnirelay::Result<Response<Streaming<Bytes>>>> {
                panic!("sync duplex boom")
            },
        ),
        typed::oneway("o::SyncPanic", RawCodec, |_r: Request<Bytes>| -> std::future::Ready<omnirelay::Result<()>> {
            panic!("sync oneway boom")
        }),
        typed::client_stream(
            "c::SyncPanic",
            RawCodec,
            |_r: Request<Streaming<Bytes>>| -> std::future::Ready<omnirelay::Result<Response<Bytes>>> {
                panic!("sync client-stream boom")
            },
        ),
    ];
    let server = Dispatcher::builder("test-service")
        .inbound(HttpInbound::new(loopback()))
        .inbound(GrpcInbound::new(loopback()))
        .register(specs)
        .build()
        .unwrap();
    server.start().await.unwrap();
    let http = server.addr(Transport::Http).unwrap();
    let grpc = server.addr(Transport::Grpc).unwrap();
    let mut s = TcpStream::connect(http).await.unwrap();
    s.write_all(format!("{}x", head("o::SyncPanic", Some(2000), 1, "")).as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut out)).await;
    let caller = Dispatcher::builder("caller")
        .outbound(
            "test-service",
            GrpcOutbound::new(format!("http://{grpc}")).unwrap(),
        )
        .build()
        .unwrap();
    let client = Client::with_codec(
        caller.client_config("test-service").unwrap(),
        RawCodec,
        Encoding::Raw,
    );
    let r = tokio::time::timeout(
        T,
        client.client_stream::<Bytes, Bytes>(
            "c::SyncPanic",
            futures::stream::iter([Bytes::from_static(b"a")]),
            CallOptions::new(),
        ),
    )
    .await
    .expect("bounded");
    let duplex = tokio::time::timeout(T, async {
        let mut stream = client
            .duplex::<Bytes, Bytes>(
                "d::SyncPanic",
                futures::stream::iter([Bytes::from_static(b"a")]),
                CallOptions::new(),
            )
            .await?
            .into_body();
        stream.message().await.map(|_| ())
    })
    .await
    .expect("bounded");
    let mut sse = TcpStream::connect(http).await.unwrap();
    sse.write_all(
        format!(
            "{}x",
            head(
                "s::SyncPanic",
                Some(2000),
                1,
                "accept: text/event-stream\r\n"
            )
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let (sse_head, _) = read_response(&mut sse).await;
    let _ = tokio::time::timeout(T, server.stop()).await;
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"),
        "HTTP oneway"
    );
    assert_eq!(r.unwrap_err().code(), Code::Internal, "gRPC client stream");
    assert_eq!(duplex.unwrap_err().code(), Code::Internal, "gRPC duplex");
    assert_eq!(status(&sse_head), 500, "HTTP server stream: {sse_head}");
}
