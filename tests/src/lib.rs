//! Helpers for the workspace integration tests: start a dispatcher on a free loopback port and
//! get clients for it, and speak raw HTTP/2 to it for wire-level checks.

use std::net::{Ipv4Addr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
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

/// Code generated from `proto/wkt_test.proto` through the include file.
#[allow(missing_docs)]
pub mod generated {
    include!(concat!(env!("OUT_DIR"), "/wkt_include.rs"));
}
