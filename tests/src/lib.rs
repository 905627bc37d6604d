//! Helpers for the workspace integration tests: start a dispatcher on a free loopback port and
//! get clients for it, and speak raw HTTP/2 to it for wire-level checks.

use std::net::{Ipv4Addr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
use omnirelay::transport::http::{HttpInbound, HttpOutbound};
use omnirelay::{ClientConfig, Dispatcher, IntoProcedures, Transport};

/// A started server dispatcher and a client configuration pointed at it.
pub struct Harness {
    /// The server.
    pub server: Dispatcher,
    /// The caller's dispatcher (owns the outbound).
    pub caller: Dispatcher,
    /// The server's gRPC address.
    pub addr: SocketAddr,
}

impl Harness {
    /// Starts a server named `service` with `procedures` on 127.0.0.1:0.
    pub async fn start(procedures: impl IntoProcedures) -> Harness {
        Harness::start_with(GrpcInbound::new(loopback()), GrpcOutbound::new, procedures).await
    }

    /// Starts a server with a custom inbound and outbound.
    pub async fn start_with(
        inbound: GrpcInbound,
        outbound: impl FnOnce(String) -> omnirelay::Result<GrpcOutbound>,
        procedures: impl IntoProcedures,
    ) -> Harness {
        let server = Dispatcher::builder("test-service")
            .inbound(inbound)
            .register(procedures)
            .build()
            .expect("valid server");
        server.start().await.expect("server starts");
        let addr = server.addr(Transport::Grpc).expect("gRPC address");
        let caller = Dispatcher::builder("test-caller")
            .outbound(
                "test-service",
                outbound(format!("http://{addr}")).expect("valid outbound"),
            )
            .build()
            .expect("valid caller");
        Harness {
            server,
            caller,
            addr,
        }
    }

    /// The client configuration for calling the server.
    pub fn config(&self) -> ClientConfig {
        self.caller
            .client_config("test-service")
            .expect("outbound configured")
    }
}

/// 127.0.0.1 with port 0.
pub fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// A gRPC length-prefixed frame.
pub fn grpc_frame(message: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(5 + message.len());
    buf.put_u8(0);
    buf.put_u32(message.len() as u32);
    buf.put_slice(message);
    buf.freeze()
}

/// What a raw HTTP/2 request got back.
#[derive(Debug)]
pub struct RawResponse {
    /// The HTTP status.
    pub status: http::StatusCode,
    /// The response headers.
    pub headers: http::HeaderMap,
    /// The body bytes.
    pub body: Bytes,
    /// The trailers, if any.
    pub trailers: Option<http::HeaderMap>,
}

impl RawResponse {
    /// `grpc-status` from the trailers, or from the headers of a trailers-only response.
    pub fn grpc_status(&self) -> Option<i32> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| self.headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok()?.parse().ok())
    }

    /// `grpc-message` as sent (percent-encoded).
    pub fn grpc_message_raw(&self) -> String {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-message"))
            .or_else(|| self.headers.get("grpc-message"))
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
    }

    /// `grpc-message`, percent-decoded.
    pub fn grpc_message(&self) -> String {
        percent_encoding::percent_decode_str(&self.grpc_message_raw())
            .decode_utf8_lossy()
            .into_owned()
    }
}

/// Sends one raw HTTP/2 request (prior knowledge, h2c) and reads the whole response.
pub async fn raw_h2(addr: SocketAddr, request: http::Request<Full<Bytes>>) -> RawResponse {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.expect("body");
    let trailers = collected.trailers().cloned();
    RawResponse {
        status: parts.status,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    }
}

/// A gRPC POST to `path` with the given content type and body.
pub fn grpc_request(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    body: Bytes,
) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", content_type)
        .header("te", "trailers")
        .body(Full::new(body))
        .expect("valid request")
}

/// A started server dispatcher serving YARPC-HTTP (and gRPC), and a caller whose outbound speaks
/// HTTP to it.
pub struct HttpHarness {
    /// The server (service `test-service`).
    pub server: Dispatcher,
    /// The caller's dispatcher (owns the HTTP outbound).
    pub caller: Dispatcher,
    /// The server's HTTP address.
    pub addr: SocketAddr,
    /// The server's gRPC address.
    pub grpc_addr: SocketAddr,
}

impl HttpHarness {
    /// Starts a server named `test-service` with `procedures` on 127.0.0.1:0 (HTTP and gRPC).
    pub async fn start(procedures: impl IntoProcedures) -> HttpHarness {
        HttpHarness::start_with(HttpInbound::new(loopback()), HttpOutbound::new, procedures).await
    }

    /// Starts a server with a custom HTTP inbound and outbound.
    pub async fn start_with(
        inbound: HttpInbound,
        outbound: impl FnOnce(String) -> omnirelay::Result<HttpOutbound>,
        procedures: impl IntoProcedures,
    ) -> HttpHarness {
        let server = Dispatcher::builder("test-service")
            .inbound(inbound)
            .inbound(GrpcInbound::new(loopback()))
            .register(procedures)
            .build()
            .expect("valid server");
        server.start().await.expect("server starts");
        let addr = server.addr(Transport::Http).expect("HTTP address");
        let grpc_addr = server.addr(Transport::Grpc).expect("gRPC address");
        let caller = Dispatcher::builder("test-caller")
            .outbound(
                "test-service",
                outbound(format!("http://{addr}")).expect("valid outbound"),
            )
            .build()
            .expect("valid caller");
        HttpHarness {
            server,
            caller,
            addr,
            grpc_addr,
        }
    }

    /// The client configuration for calling the server over HTTP.
    pub fn config(&self) -> ClientConfig {
        self.caller
            .client_config("test-service")
            .expect("outbound configured")
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Sends one HTTP/1.1 request over a fresh connection and reads the whole response.
pub async fn raw_h1(addr: SocketAddr, request: http::Request<Full<Bytes>>) -> RawResponse {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("h1 handshake");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.expect("body");
    let trailers = collected.trailers().cloned();
    RawResponse {
        status: parts.status,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    }
}

/// Writes `request` as is to a fresh TCP connection and parses the HTTP/1.1 response, reading
/// until the server closes (send `Connection: close`). For requests no HTTP library would send.
pub async fn raw_tcp(addr: SocketAddr, request: &[u8]) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut out),
    )
    .await
    .expect("the server answers and closes within 10 s");
    parse_http1(&out).expect("an HTTP/1.1 response")
}

/// Parses the HTTP/1.x responses in `bytes` (as `curl -i` prints them), skipping `1xx` ones,
/// into the final response.
pub fn parse_http1(mut bytes: &[u8]) -> Option<RawResponse> {
    loop {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&bytes[..end]).ok()?;
        let rest = &bytes[end + 4..];
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        if (100..200).contains(&status) && status != 101 {
            bytes = rest;
            continue;
        }
        let mut headers = http::HeaderMap::new();
        for line in lines {
            let (name, value) = line.split_once(':')?;
            headers.append(
                http::HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).ok()?,
                http::HeaderValue::from_bytes(value.trim().as_bytes()).ok()?,
            );
        }
        return Some(RawResponse {
            status: http::StatusCode::from_u16(status).ok()?,
            headers,
            body: Bytes::copy_from_slice(rest),
            trailers: None,
        });
    }
}

/// Whether `curl` can be run. Tests that need it skip (saying so) when it cannot; `.ci/run`
/// installs it.
pub fn curl_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::process::Command::new("curl")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Runs `curl -sS -i --max-time 20 <args>` and parses what it printed (the final response).
pub async fn curl(args: &[&str]) -> RawResponse {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "-i", "--max-time", "20"])
            .args(&args)
            .output()
    })
    .await
    .expect("curl task")
    .expect("curl runs");
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse_http1(&output.stdout).unwrap_or_else(|| {
        panic!(
            "curl printed no HTTP response: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

impl RawResponse {
    /// A header as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Code generated from `proto/wkt_test.proto` through the include file.
#[allow(missing_docs)]
pub mod generated {
    include!(concat!(env!("OUT_DIR"), "/wkt_include.rs"));
}
