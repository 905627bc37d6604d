//! The HTTP inbound's connections at their edges, over real sockets: what the header-read
//! watchdog must leave alone (WebSockets, event streams with long gaps, h2c, trickled bodies
//! within their TTL, pipelining, responses read slowly), calls cut by their client, and stop.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use omnirelay::codec::RawCodec;
use omnirelay::procedure::typed;
use omnirelay::transport::http::{HttpInbound, HttpOutbound};
use omnirelay::{CallOptions, Client, Encoding, ProcedureSpec, Request, Response, Streaming};
use omnirelay_tests::{HttpHarness, loopback, parse_http1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_millis(300);

fn slow() -> ProcedureSpec {
    typed::unary("slow::Sleep", RawCodec, |r: Request<Bytes>| async move {
        let ms: u64 = std::str::from_utf8(&r.body)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Response::new(r.body))
    })
}

fn big() -> ProcedureSpec {
    typed::unary("big::Get", RawCodec, |r: Request<Bytes>| async move {
        let mb: usize = std::str::from_utf8(&r.body).unwrap().parse().unwrap();
        Ok(Response::new(Bytes::from(vec![b'x'; mb << 20])))
    })
}

fn gaps() -> ProcedureSpec {
    typed::server_stream("gap::Tick", RawCodec, |_r: Request<Bytes>| async move {
        let stream = futures::stream::unfold(0u32, |n| async move {
            if n == 3 {
                return None;
            }
            tokio::time::sleep(3 * TIMEOUT).await;
            Some((Ok(Bytes::from(n.to_string())), n + 1))
        });
        Ok(Response::new(Streaming::new(stream)))
    })
}

fn echo_duplex() -> ProcedureSpec {
    typed::duplex(
        "ws::Echo",
        RawCodec,
        |r: Request<Streaming<Bytes>>| async move {
            let requests = r.into_body();
            let stream = futures::stream::unfold(requests, |mut s| async move {
                match s.message().await {
                    Ok(Some(m)) => Some((Ok(m), s)),
                    _ => None,
                }
            });
            Ok(Response::new(Streaming::new(stream)))
        },
    )
}

fn procs() -> Vec<ProcedureSpec> {
    vec![slow(), big(), gaps(), echo_duplex()]
}

async fn start(inbound: HttpInbound) -> HttpHarness {
    HttpHarness::start_with(inbound, HttpOutbound::new, procs()).await
}

fn head(ms: u64, extra: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nhost: t\r\nrpc-caller: raw\r\nrpc-service: test-service\r\n\
         rpc-procedure: slow::Sleep\r\nrpc-encoding: raw\r\ncontext-ttl-ms: 5000\r\n\
         content-length: {}\r\n{extra}\r\n{ms}",
        ms.to_string().len()
    )
}

async fn readyz_active(addr: SocketAddr) -> u64 {
    let r = omnirelay_tests::raw_tcp(
        addr,
        b"GET /readyz HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["active_requests"]
        .as_u64()
        .or(v["activeRequests"].as_u64())
        .unwrap_or_else(|| panic!("{v}"))
}

#[tokio::test]
async fn an_idle_websocket_outlives_the_timeout() {
    let h = start(HttpInbound::new(loopback()).header_read_timeout(TIMEOUT)).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let mut replies = client
        .duplex::<Bytes, Bytes>(
            "ws::Echo",
            tokio_stream::wrappers::ReceiverStream::new(rx),
            CallOptions::new(),
        )
        .await
        .unwrap()
        .into_body();
    tx.send(Bytes::from_static(b"one")).await.unwrap();
    assert_eq!(replies.message().await.unwrap().unwrap().as_ref(), b"one");
    tokio::time::sleep(4 * TIMEOUT).await;
    tx.send(Bytes::from_static(b"two")).await.unwrap();
    let two = tokio::time::timeout(Duration::from_secs(3), replies.message())
        .await
        .unwrap();
    assert_eq!(two.unwrap().unwrap().as_ref(), b"two");
    drop(tx);
    tokio::time::timeout(Duration::from_secs(5), h.server.stop())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_sse_stream_with_gaps_longer_than_the_timeout_completes() {
    let h = start(HttpInbound::new(loopback()).header_read_timeout(TIMEOUT)).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    let mut stream = client
        .server_stream::<Bytes, Bytes>("gap::Tick", &Bytes::new(), CallOptions::new())
        .await
        .unwrap()
        .into_body();
    for expected in ["0", "1", "2"] {
        let m = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .unwrap();
        assert_eq!(m.unwrap().unwrap().as_ref(), expected.as_bytes());
    }
    assert!(stream.message().await.unwrap().is_none());
    h.server.stop().await.unwrap();
}

fn sleep_req(addr: SocketAddr, ms: u64) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("http://{addr}/"))
        .header("rpc-caller", "raw")
        .header("rpc-service", "test-service")
        .header("rpc-procedure", "slow::Sleep")
        .header("rpc-encoding", "raw")
        .header("context-ttl-ms", "5000")
        .body(Full::new(Bytes::from(ms.to_string())))
        .unwrap()
}

#[tokio::test]
async fn an_h2c_connection_idle_after_its_first_call_stays_open() {
    let h = start(HttpInbound::new(loopback()).header_read_timeout(TIMEOUT)).await;
    let stream = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let closed = tokio::spawn(conn);
    let r = sender.send_request(sleep_req(h.addr, 0)).await.unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(4 * TIMEOUT).await;
    assert!(!closed.is_finished(), "h2c connection closed while idle");
    let r = sender.send_request(sleep_req(h.addr, 0)).await.unwrap();
    assert_eq!(r.status(), 200);
    h.server.stop().await.unwrap();
}

#[tokio::test]
async fn an_h2c_connection_that_never_sends_a_request() {
    let h = start(HttpInbound::new(loopback()).header_read_timeout(TIMEOUT)).await;
    let stream = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let (_sender, conn) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    let closed = tokio::spawn(conn);
    let r = tokio::time::timeout(Duration::from_secs(3), closed).await;
    eprintln!("h2c without request: closed by watchdog = {}", r.is_ok());
    h.server.stop().await.unwrap();
}

/// Expect: 100-continue and the body never comes: the call is in progress, its deadline (1 s)
/// bounds it; the watchdog must not close it silently at 300 ms.
#[tokio::test]
async fn expect_continue_without_a_body_is_bounded_by_its_deadline() {
    let h = start(HttpInbound::new(loopback()).header_read_timeout(TIMEOUT)).await;
    let mut s = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    s.write_all(
        b"POST / HTTP/1.1\r\nhost: t\r\nrpc-caller: raw\r\nrpc-service: test-service\r\n\
          rpc-procedure: slow::Sleep\r\nrpc-encoding: raw\r\ncontext-ttl-ms: 1000\r\n\
          expect: 100-continue\r\ncontent-length: 3\r\n\r\n",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("bounded")
        .ok();
    let text = String::from_utf8_lossy(&out);
    eprintln!("after {:?}: {text:?}", started.elapsed());
    assert!(text.contains("100 Continue"), "{text}");
    let r = parse_http1(&out).expect("a final response, not a silent close");
    assert_eq!(r.status.as_u16(), 504, "{text}");
    h.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_trickled_body_within_its_ttl_is_served() {
    let h = start(HttpInbound::new(loopback()).header_read_timeout(TIMEOUT)).await;
    let mut s = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    s.write_all(
        b"POST / HTTP/1.1\r\nhost: t\r\nrpc-caller: raw\r\nrpc-service: test-service\r\n\
          rpc-procedure: slow::Sleep\r\nrpc-encoding: raw\r\ncontext-ttl-ms: 5000\r\n\
          connection: close\r\ncontent-length: 4\r\n\r\n",
    )
    .await
    .unwrap();
    for b in b"0000" {
        tokio::time::sleep(TIMEOUT).await;
        s.write_all(&[*b]).await.unwrap();
    }
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let r = parse_http1(&out).expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"0000");
    h.server.stop().await.unwrap();
}

#[tokio::test]
async fn pipelined_requests_behind_a_slow_one_are_answered() {
    let h = start(HttpInbound::new(loopback()).header_read_timeout(TIMEOUT)).await;
    let mut s = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let two = format!("{}{}", head(700, ""), head(1, "connection: close\r\n"));
    s.write_all(two.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    assert!(text.ends_with('1'), "{text}");
    h.server.stop().await.unwrap();
}

/// A client that goes away mid-call: the call is released (no in-flight leak), stop is quick.
#[tokio::test]
async fn a_connection_closed_mid_call_leaks_nothing() {
    let h = start(HttpInbound::new(loopback()).header_read_timeout(TIMEOUT)).await;
    for _ in 0..5 {
        let mut s = tokio::net::TcpStream::connect(h.addr).await.unwrap();
        s.write_all(head(3000, "").as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(s);
    }
    let started = Instant::now();
    loop {
        let n = readyz_active(h.addr).await;
        if n == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{n} calls still active"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), h.server.stop())
        .await
        .unwrap()
        .unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(1),
        "{:?}",
        stopped.elapsed()
    );
}

#[tokio::test]
async fn stop_during_a_long_call_waits_for_it() {
    let h = start(HttpInbound::new(loopback()).header_read_timeout(TIMEOUT)).await;
    let addr = h.addr;
    let call =
        tokio::spawn(async move { omnirelay_tests::raw_h1(addr, sleep_req(addr, 1000)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), h.server.stop())
        .await
        .expect("stop returns")
        .unwrap();
    let took = stopped.elapsed();
    let r = call.await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        took >= Duration::from_millis(800),
        "stop did not wait: {took:?}"
    );
}

#[tokio::test]
async fn stop_with_a_call_past_the_drain_timeout_returns() {
    let h = start(
        HttpInbound::new(loopback())
            .header_read_timeout(TIMEOUT)
            .drain_timeout(Duration::from_millis(400)),
    )
    .await;
    let addr = h.addr;
    let call = tokio::spawn(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender.send_request(sleep_req(addr, 4000)).await.is_ok()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = Instant::now();
    tokio::time::timeout(Duration::from_secs(3), h.server.stop())
        .await
        .expect("stop returns")
        .unwrap();
    assert!(stopped.elapsed() < Duration::from_millis(1500));
    let _ = tokio::time::timeout(Duration::from_secs(3), call)
        .await
        .expect("call ended");
}

/// Stop closes every connection without a call at once: keep-alive ones after a call, ones that
/// sent part of a head and ones that sent nothing (hyper's graceful shutdown alone leaves the
/// last two open until the drain timeout).
#[tokio::test]
async fn stop_closes_many_connections() {
    let mut slow = Vec::new();
    for class in 0..3 {
        let h = start(
            HttpInbound::new(loopback())
                .header_read_timeout(None)
                .drain_timeout(Duration::from_secs(2)),
        )
        .await;
        let mut idle = Vec::new();
        for _ in 0..20 {
            let mut s = tokio::net::TcpStream::connect(h.addr).await.unwrap();
            match class {
                0 => {
                    // a finished call, then keep-alive idle
                    s.write_all(head(0, "").as_bytes()).await.unwrap();
                    let mut buf = [0u8; 512];
                    let _ = s.read(&mut buf).await.unwrap();
                }
                1 => s
                    .write_all(b"POST / HTTP/1.1\r\nhost: t\r\n")
                    .await
                    .unwrap(),
                _ => {}
            }
            idle.push(s);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stopped = Instant::now();
        tokio::time::timeout(Duration::from_secs(15), h.server.stop())
            .await
            .expect("stop returns")
            .unwrap();
        let took = stopped.elapsed();
        let mut open = 0;
        for mut s in idle {
            let mut buf = [0u8; 512];
            if tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf))
                .await
                .is_err()
            {
                open += 1;
            }
        }
        eprintln!("class {class}: stop took {took:?}, {open} connections still open");
        assert_eq!(open, 0);
        if took > Duration::from_secs(1) {
            slow.push(class);
        }
    }
    assert!(
        slow.is_empty(),
        "stop waited the drain timeout for classes {slow:?} (1: part of a head, 2: nothing sent)"
    );
}

/// A large response read slowly: the body was handed to hyper (the call mark dropped) but not
/// yet written; the watchdog must not cut the response.
#[tokio::test]
async fn a_slowly_read_large_response_is_not_cut() {
    let h = start(HttpInbound::new(loopback()).header_read_timeout(TIMEOUT)).await;
    let mut s = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    s.write_all(
        b"POST / HTTP/1.1\r\nhost: t\r\nrpc-caller: raw\r\nrpc-service: test-service\r\n\
          rpc-procedure: big::Get\r\nrpc-encoding: raw\r\ncontext-ttl-ms: 5000\r\n\
          content-length: 2\r\n\r\n32",
    )
    .await
    .unwrap();
    tokio::time::sleep(5 * TIMEOUT).await;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let want = 32usize << 20;
    let started = Instant::now();
    loop {
        let body_len = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(0, |p| out.len() - p - 4);
        if body_len >= want {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) => panic!("connection closed after {} of {want} body bytes", body_len),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("{e} after {body_len} body bytes"),
            Err(_) => panic!("stalled"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    h.server.stop().await.unwrap();
}
