//! The logging middleware over real sockets: exactly one event per call on each side, with the
//! call's procedure, caller, code and yarpc-go's messages, at the configured levels; streams
//! are logged when they end.

#[path = "support/capture.rs"]
#[allow(dead_code)]
mod capture;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use omnirelay::codec::RawCodec;
use omnirelay::middleware::logging::LoggingMiddleware;
use omnirelay::procedure::typed;
use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
use omnirelay::transport::http::{HttpInbound, HttpOutbound};
use omnirelay::{
    CallOptions, Client, Code, Dispatcher, Encoding, Error, ProcedureSpec, Request, Response,
    Streaming, Transport,
};
use omnirelay_tests::loopback;
use tokio::sync::Notify;
use tracing::Level;

use capture::{CapturedEvent, bounded, wait_until};

/// A server logging inbound calls (caller-fault failures at INFO, `log::Quiet` filtered out),
/// and a gRPC and an HTTP caller logging outbound calls with the defaults.
struct Setup {
    server_name: String,
    caller_name: String,
    server: Dispatcher,
    grpc: Client<RawCodec>,
    http: Client<RawCodec>,
    /// Lets `log::Stream` send its second message and end.
    gate: Arc<Notify>,
}

fn raw_unary(name: &str, f: fn(Bytes) -> Result<Bytes, Error>) -> ProcedureSpec {
    typed::unary(name, RawCodec, move |r: Request<Bytes>| async move {
        f(r.into_body()).map(Response::new)
    })
}

fn procedures(gate: Arc<Notify>) -> Vec<ProcedureSpec> {
    let stream = typed::server_stream("log::Stream", RawCodec, move |_r: Request<Bytes>| {
        let gate = gate.clone();
        async move {
            let messages = futures::stream::unfold(0, move |step| {
                let gate = gate.clone();
                async move {
                    match step {
                        0 => Some((Ok(Bytes::from_static(b"a")), 1)),
                        1 => {
                            gate.notified().await;
                            Some((Ok(Bytes::from_static(b"b")), 2))
                        }
                        _ => None,
                    }
                }
            });
            Ok(Response::new(Streaming::new(messages)))
        }
    });
    let chat = typed::duplex(
        "log::Chat",
        RawCodec,
        |r: Request<Streaming<Bytes>>| async move { Ok(Response::new(r.into_body())) },
    );
    let fire = typed::oneway("log::Fire", RawCodec, |_r: Request<Bytes>| async { Ok(()) });
    vec![
        raw_unary("log::Ok", Ok),
        raw_unary("log::Quiet", Ok),
        raw_unary("log::Invalid", |_| {
            Err(Error::invalid_argument("bad input"))
        }),
        raw_unary("log::Broken", |_| Err(Error::internal("it broke"))),
        stream,
        chat,
        fire,
    ]
}

impl Setup {
    async fn start(test: &str) -> Setup {
        capture::install();
        let server_name = format!("{test}-server");
        let caller_name = format!("{test}-caller");
        let gate = Arc::new(Notify::new());
        let server = Dispatcher::builder(server_name.as_str())
            .inbound(GrpcInbound::new(loopback()))
            .inbound(HttpInbound::new(loopback()))
            .middleware(
                LoggingMiddleware::new()
                    .caller_failure_level(Level::INFO)
                    .should_log(|meta| meta.procedure != "log::Quiet"),
            )
            .register(procedures(gate.clone()))
            .build()
            .expect("valid server");
        server.start().await.expect("server starts");
        let grpc_url = format!("http://{}", server.addr(Transport::Grpc).unwrap());
        let http_url = format!("http://{}", server.addr(Transport::Http).unwrap());
        let grpc = Dispatcher::builder(caller_name.as_str())
            .outbound(server_name.as_str(), GrpcOutbound::new(grpc_url).unwrap())
            .outbound_middleware(LoggingMiddleware::new())
            .build()
            .unwrap();
        let http = Dispatcher::builder(caller_name.as_str())
            .outbound(server_name.as_str(), HttpOutbound::new(http_url).unwrap())
            .outbound_middleware(LoggingMiddleware::new())
            .build()
            .unwrap();
        let client = |d: &Dispatcher| {
            Client::with_codec(
                d.client_config(&server_name).unwrap(),
                RawCodec,
                Encoding::Raw,
            )
        };
        Setup {
            grpc: client(&grpc),
            http: client(&http),
            server_name,
            caller_name,
            server,
            gate,
        }
    }

    /// The events recorded so far for calls of `procedure` to this server.
    fn events(&self, procedure: &str) -> Vec<CapturedEvent> {
        capture::events(|e| {
            e.fields.get("service") == Some(self.server_name.as_str())
                && e.fields.get("procedure") == Some(procedure)
        })
    }

    /// The one event of `direction` for `procedure`.
    fn event(&self, procedure: &str, direction: &str) -> CapturedEvent {
        let events: Vec<CapturedEvent> = self
            .events(procedure)
            .into_iter()
            .filter(|e| e.fields.get("direction") == Some(direction))
            .collect();
        assert_eq!(
            events.len(),
            1,
            "one {direction} event for {procedure}: {events:?}"
        );
        events.into_iter().next().unwrap()
    }

    async fn stop(self) {
        let _ = self.server.stop().await;
    }
}

fn options() -> CallOptions {
    CallOptions::new().ttl(Duration::from_secs(5))
}

/// Checks the fields every event has.
fn check_common(setup: &Setup, event: &CapturedEvent, transport: &str) {
    assert_eq!(event.target, "omnirelay::middleware::logging");
    let f = &event.fields;
    assert_eq!(f.at("caller"), setup.caller_name);
    assert_eq!(f.at("service"), setup.server_name);
    assert_eq!(f.at("transport"), transport);
    assert_eq!(f.at("encoding"), "raw");
    let ms: f64 = f
        .at("duration_ms")
        .parse()
        .expect("a number of milliseconds");
    assert!(ms >= 0.0);
}

#[tokio::test]
async fn a_success_is_one_event_per_side_over_both_transports() {
    let setup = Setup::start("log-success").await;
    for (client, transport) in [(&setup.grpc, "grpc"), (&setup.http, "http")] {
        let body = Bytes::from_static(b"hello");
        let response = bounded(client.unary::<Bytes, Bytes>("log::Ok", &body, options()))
            .await
            .unwrap();
        assert_eq!(response.into_body(), body);
        let events: Vec<CapturedEvent> = setup
            .events("log::Ok")
            .into_iter()
            .filter(|e| e.fields.get("transport") == Some(transport))
            .collect();
        assert_eq!(events.len(), 2, "{transport}: {events:?}");
    }
    let events = setup.events("log::Ok");
    assert_eq!(events.len(), 4);
    for event in &events {
        let transport = event.fields.at("transport").to_owned();
        check_common(&setup, event, &transport);
        assert_eq!(event.level, Level::INFO);
        assert_eq!(event.fields.at("code"), "ok");
        assert_eq!(event.fields.get("error"), None);
        let expected = match event.fields.at("direction") {
            "inbound" => "Handled inbound request.",
            "outbound" => "Made outbound call.",
            other => panic!("direction {other:?}"),
        };
        assert_eq!(event.fields.at("message"), expected);
    }
    setup.stop().await;
}

#[tokio::test]
async fn failures_are_logged_with_their_code_message_and_level() {
    let setup = Setup::start("log-failure").await;
    let err = bounded(
        setup
            .grpc
            .unary::<Bytes, Bytes>("log::Invalid", &Bytes::new(), options()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = bounded(
        setup
            .http
            .unary::<Bytes, Bytes>("log::Broken", &Bytes::new(), options()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::Internal);

    let inbound = setup.event("log::Invalid", "inbound");
    check_common(&setup, &inbound, "grpc");
    assert_eq!(
        inbound.level,
        Level::INFO,
        "caller faults at the configured level"
    );
    assert_eq!(inbound.fields.at("code"), "invalid-argument");
    assert_eq!(inbound.fields.at("error"), "bad input");
    assert_eq!(
        inbound.fields.at("message"),
        "Error handling inbound request."
    );
    let outbound = setup.event("log::Invalid", "outbound");
    check_common(&setup, &outbound, "grpc");
    assert_eq!(outbound.level, Level::WARN, "the default failure level");
    assert_eq!(outbound.fields.at("code"), "invalid-argument");
    assert_eq!(outbound.fields.at("error"), "bad input");
    assert_eq!(outbound.fields.at("message"), "Error making outbound call.");

    let inbound = setup.event("log::Broken", "inbound");
    check_common(&setup, &inbound, "http");
    assert_eq!(
        inbound.level,
        Level::WARN,
        "server faults at the failure level"
    );
    assert_eq!(inbound.fields.at("code"), "internal");
    assert_eq!(inbound.fields.at("error"), "it broke");
    let outbound = setup.event("log::Broken", "outbound");
    assert_eq!(outbound.fields.at("code"), "internal");
    assert_eq!(setup.events("log::Broken").len(), 2);
    setup.stop().await;
}

#[tokio::test]
async fn filtered_calls_are_not_logged() {
    let setup = Setup::start("log-filter").await;
    bounded(
        setup
            .grpc
            .unary::<Bytes, Bytes>("log::Quiet", &Bytes::new(), options()),
    )
    .await
    .unwrap();
    // The server's filter drops it; the caller (no filter) logs it. The server would have
    // logged before answering, so its absence now is final.
    let events = setup.events("log::Quiet");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].fields.at("direction"), "outbound");
    setup.stop().await;
}

#[tokio::test]
async fn a_server_stream_is_logged_once_when_it_ends() {
    let setup = Setup::start("log-stream").await;
    for (client, transport) in [(&setup.grpc, "grpc"), (&setup.http, "http")] {
        let mut stream =
            bounded(client.server_stream::<Bytes, Bytes>("log::Stream", &Bytes::new(), options()))
                .await
                .unwrap()
                .into_body();
        let first = bounded(stream.message()).await.unwrap().unwrap();
        assert_eq!(first.as_ref(), b"a");
        // The stream is open (the server waits for the gate): nothing is logged yet.
        let open: Vec<_> = setup
            .events("log::Stream")
            .into_iter()
            .filter(|e| e.fields.get("transport") == Some(transport))
            .collect();
        assert!(
            open.is_empty(),
            "{transport}: logged before the end: {open:?}"
        );
        setup.gate.notify_one();
        assert_eq!(
            bounded(stream.message()).await.unwrap().unwrap().as_ref(),
            b"b"
        );
        assert!(bounded(stream.message()).await.unwrap().is_none());
        let of_transport = || {
            setup
                .events("log::Stream")
                .into_iter()
                .filter(|e| e.fields.get("transport") == Some(transport))
                .collect::<Vec<_>>()
        };
        wait_until("both events of the stream", || of_transport().len() >= 2).await;
        let events = of_transport();
        assert_eq!(events.len(), 2, "{transport}: {events:?}");
        for event in &events {
            check_common(&setup, event, transport);
            assert_eq!(event.fields.at("code"), "ok");
            assert_eq!(event.level, Level::INFO);
        }
    }
    setup.stop().await;
}

#[tokio::test]
async fn a_stream_dropped_before_its_end_is_logged_as_cancelled() {
    let setup = Setup::start("log-dropped").await;
    let mut stream = bounded(setup.grpc.server_stream::<Bytes, Bytes>(
        "log::Stream",
        &Bytes::new(),
        options(),
    ))
    .await
    .unwrap()
    .into_body();
    assert_eq!(
        bounded(stream.message()).await.unwrap().unwrap().as_ref(),
        b"a"
    );
    drop(stream);
    let outbound = setup.event("log::Stream", "outbound");
    assert_eq!(outbound.fields.at("code"), "cancelled");
    assert_eq!(outbound.level, Level::WARN);
    // The server sees the reset and drops its stream.
    wait_until("the server's event", || {
        setup.events("log::Stream").len() >= 2
    })
    .await;
    let inbound = setup.event("log::Stream", "inbound");
    assert_eq!(inbound.fields.at("code"), "cancelled");
    assert_eq!(
        inbound.level,
        Level::INFO,
        "cancelled is the caller's fault"
    );
    setup.stop().await;
}

#[tokio::test]
async fn duplex_and_oneway_calls_are_logged_once() {
    let setup = Setup::start("log-shapes").await;
    let words = futures::stream::iter([Bytes::from_static(b"x"), Bytes::from_static(b"y")]);
    let mut replies = bounded(
        setup
            .grpc
            .duplex::<Bytes, Bytes>("log::Chat", words, options()),
    )
    .await
    .unwrap()
    .into_body();
    let mut echoed = Vec::new();
    while let Some(reply) = bounded(replies.message()).await.unwrap() {
        echoed.push(reply);
    }
    assert_eq!(echoed.len(), 2);
    wait_until("both duplex events", || {
        setup.events("log::Chat").len() >= 2
    })
    .await;
    assert_eq!(setup.event("log::Chat", "inbound").fields.at("code"), "ok");
    assert_eq!(setup.event("log::Chat", "outbound").fields.at("code"), "ok");

    bounded(setup.http.oneway("log::Fire", &Bytes::new(), options()))
        .await
        .unwrap();
    assert_eq!(setup.event("log::Fire", "outbound").fields.at("code"), "ok");
    wait_until("the oneway's inbound event", || {
        setup.events("log::Fire").len() >= 2
    })
    .await;
    let inbound = setup.event("log::Fire", "inbound");
    check_common(&setup, &inbound, "http");
    assert_eq!(inbound.fields.at("message"), "Handled inbound request.");
    setup.stop().await;
}
