//! The HTTP inbound's header read timeout over real sockets: heads never finished and idle
//! keep-alive connections are closed, calls in progress (however long) keep their connection,
//! and the timeout can be turned off.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use omnirelay::codec::RawCodec;
use omnirelay::procedure::typed;
use omnirelay::transport::http::HttpInbound;
use omnirelay::{ProcedureSpec, Request, Response};
use omnirelay_tests::{HttpHarness, loopback};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_millis(300);

/// `slow::Sleep` sleeps the milliseconds its body names, then echoes the body.
fn slow() -> ProcedureSpec {
    typed::unary("slow::Sleep", RawCodec, |r: Request<Bytes>| async move {
        let ms: u64 = std::str::from_utf8(&r.body).unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Response::new(r.body))
    })
}

async fn start(timeout: Option<Duration>) -> HttpHarness {
    HttpHarness::start_with(
        HttpInbound::new(loopback()).header_read_timeout(timeout),
        omnirelay::transport::http::HttpOutbound::new,
        slow(),
    )
    .await
}

fn sleep_request(ms: u64) -> http::Request<Full<Bytes>> {
    http::Request::post("/")
        .header("host", "test")
        .header("rpc-caller", "raw")
        .header("rpc-service", "test-service")
        .header("rpc-procedure", "slow::Sleep")
        .header("rpc-encoding", "raw")
        .header("context-ttl-ms", "10000")
        .body(Full::new(Bytes::from(ms.to_string())))
        .unwrap()
}

/// Reads from `stream` until the server closes it (or resets it); how long that took. Panics if
/// the server sends anything or keeps it open for `limit`.
async fn wait_for_close(stream: &mut tokio::net::TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    match tokio::time::timeout(limit, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => started.elapsed(),
        Ok(Ok(n)) => panic!(
            "the server answered: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(_) => panic!("the connection is still open after {limit:?}"),
    }
}

/// A keep-alive HTTP/1.1 client connection; the handle ends when the server closes it.
async fn keep_alive(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let closed = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, closed)
}

async fn call(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    ms: u64,
) -> (http::StatusCode, Bytes) {
    let response = sender.send_request(sleep_request(ms)).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

#[tokio::test]
async fn a_head_never_finished_is_closed_after_the_timeout() {
    let h = start(Some(TIMEOUT)).await;
    let mut stream = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nhost: test\r\nrpc-caller: raw\r\n")
        .await
        .unwrap();
    let waited = wait_for_close(&mut stream, Duration::from_secs(5)).await;
    assert!(
        waited >= TIMEOUT - Duration::from_millis(50),
        "closed after {waited:?}, before the timeout"
    );
    // A head sent a byte at a time is not kept alive by its trickle either.
    let mut stream = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let started = Instant::now();
    let trickle = async {
        for byte in b"POST / HTTP/1.1\r\nhost: test\r\nx-slow: ".iter().cycle() {
            if stream.write_all(&[*byte]).await.is_err() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        unreachable!()
    };
    let closed_after = tokio::time::timeout(Duration::from_secs(5), trickle)
        .await
        .expect("the trickling connection is closed");
    assert!(closed_after >= TIMEOUT - Duration::from_millis(50));
    h.server.stop().await.unwrap();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
    let h = start(Some(TIMEOUT)).await;
    let (mut sender, closed) = keep_alive(h.addr).await;
    // Calls in a row, each well inside the timeout of the one before, keep it open.
    for _ in 0..3 {
        assert_eq!(call(&mut sender, 0).await.0, http::StatusCode::OK);
        tokio::time::sleep(TIMEOUT / 3).await;
    }
    let idle_from = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the idle connection is closed")
        .unwrap();
    let idle = idle_from.elapsed() + TIMEOUT / 3;
    assert!(
        idle >= TIMEOUT - Duration::from_millis(50),
        "closed after {idle:?} idle"
    );
    h.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_call_longer_than_the_timeout_keeps_its_connection() {
    let h = start(Some(TIMEOUT)).await;
    let (mut sender, closed) = keep_alive(h.addr).await;
    let (status, body) = call(&mut sender, 3 * TIMEOUT.as_millis() as u64).await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(&body[..], b"900");
    // The idle time starts when the call ends: the next call right away finds it open.
    assert!(!closed.is_finished());
    assert_eq!(call(&mut sender, 0).await.0, http::StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("closed once idle")
        .unwrap();
    h.server.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_timeout_a_slow_head_is_waited_for() {
    slow_head_waited_for(None).await;
}

/// A zero timeout turns the watchdog off, as `None` does (it does not close every connection
/// at once).
#[tokio::test]
async fn a_zero_timeout_turns_the_watchdog_off() {
    slow_head_waited_for(Some(Duration::ZERO)).await;
}

async fn slow_head_waited_for(timeout: Option<Duration>) {
    let h = start(timeout).await;
    let mut stream = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nhost: test\r\nrpc-caller: raw\r\n")
        .await
        .unwrap();
    tokio::time::sleep(3 * TIMEOUT).await;
    stream
        .write_all(
            b"rpc-service: test-service\r\nrpc-procedure: slow::Sleep\r\nrpc-encoding: raw\r\n\
              context-ttl-ms: 5000\r\ncontent-length: 1\r\nconnection: close\r\n\r\n0",
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
        .await
        .expect("answered")
        .unwrap();
    let response = omnirelay_tests::parse_http1(&out).expect("an HTTP/1.1 response");
    assert_eq!(response.status, http::StatusCode::OK);
    assert_eq!(&response.body[..], b"0");
    h.server.stop().await.unwrap();
}

#[tokio::test]
async fn stop_closes_idle_keep_alive_connections() {
    // No header timeout, so only the stop can close the idle connection.
    let h = start(None).await;
    let (mut sender, closed) = keep_alive(h.addr).await;
    assert_eq!(call(&mut sender, 0).await.0, http::StatusCode::OK);
    let stopped = Instant::now();
    h.server.stop().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the stop closed the idle connection")
        .unwrap();
    assert!(stopped.elapsed() < Duration::from_secs(5));
}
