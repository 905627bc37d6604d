//! The tracing middleware over real sockets: one trace across three services whose calls cross
//! gRPC and YARPC-HTTP, each hop's parent being its caller's client span; W3C `traceparent` and
//! `tracestate` from external clients (raw HTTP/1.1 and raw gRPC) continued, malformed ones
//! starting a new trace.

#[path = "support/capture.rs"]
#[allow(dead_code)]
mod capture;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use omnirelay::codec::RawCodec;
use omnirelay::middleware::trace::{self, SpanId, TraceContext, TraceId, TracingMiddleware};
use omnirelay::procedure::typed;
use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
use omnirelay::transport::http::{HttpInbound, HttpOutbound};
use omnirelay::{CallOptions, Client, Dispatcher, Encoding, Request, Response, Transport};
use omnirelay_tests::{grpc_frame, grpc_request, loopback, raw_h1, raw_h2};

use capture::{Fields, bounded};

const KNOWN_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const KNOWN_SPAN: &str = "00f067aa0ba902b7";

type Seen = Arc<Mutex<Vec<TraceContext>>>;

/// A -> B -> C: A only calls (outbound middleware); B serves `hop::Middle`, which calls C's
/// `hop::Leaf` through its outbound; C serves. B and C listen on gRPC and HTTP; `ab` and `bc`
/// choose the transport of each hop.
struct Chain {
    names: [String; 3],
    a: Client<RawCodec>,
    b: Dispatcher,
    c: Dispatcher,
    /// The contexts B's and C's handlers saw, one per call.
    b_seen: Seen,
    c_seen: Seen,
}

fn outbound_to(dispatcher: &Dispatcher, transport: Transport) -> OutboundKind {
    let addr = dispatcher.addr(transport).expect("inbound listening");
    match transport {
        Transport::Grpc => {
            OutboundKind::Grpc(GrpcOutbound::new(format!("http://{addr}")).expect("outbound"))
        }
        _ => OutboundKind::Http(HttpOutbound::new(format!("http://{addr}")).expect("outbound")),
    }
}

enum OutboundKind {
    Grpc(GrpcOutbound),
    Http(HttpOutbound),
}

impl OutboundKind {
    fn add(
        self,
        builder: omnirelay::dispatcher::DispatcherBuilder,
        service: &str,
    ) -> omnirelay::dispatcher::DispatcherBuilder {
        match self {
            OutboundKind::Grpc(o) => builder.outbound(service, o),
            OutboundKind::Http(o) => builder.outbound(service, o),
        }
    }
}

impl Chain {
    async fn start(test: &str, ab: Transport, bc: Transport) -> Chain {
        capture::install();
        let names = ["a", "b", "c"].map(|n| format!("{test}-{n}"));
        let [a_name, b_name, c_name] = names.clone();
        let tracing = TracingMiddleware::new();

        let c_seen = Seen::default();
        let seen = c_seen.clone();
        let leaf = typed::unary("hop::Leaf", RawCodec, move |r: Request<Bytes>| {
            let context = trace::current().expect("a current context in the handler");
            seen.lock().unwrap().push(context.clone());
            async move {
                // Sent back as a response header: checks responses carry trace headers too.
                Ok(Response::new(r.into_body()).with_header("traceparent", context.traceparent()))
            }
        });
        let c = Dispatcher::builder(c_name.as_str())
            .inbound(GrpcInbound::new(loopback()))
            .inbound(HttpInbound::new(loopback()))
            .middleware(tracing.clone())
            .register(leaf)
            .build()
            .expect("valid C");
        c.start().await.expect("C starts");

        let b_seen = Seen::default();
        let seen = b_seen.clone();
        let to_c: Arc<OnceLock<Client<RawCodec>>> = Arc::default();
        let client = to_c.clone();
        let middle = typed::unary("hop::Middle", RawCodec, move |r: Request<Bytes>| {
            let seen = seen.clone();
            let client = client.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push(trace::current().expect("a current context"));
                let response = client
                    .get()
                    .expect("client set after build")
                    .unary::<Bytes, Bytes>("hop::Leaf", r.body(), options())
                    .await?;
                let echoed = response.meta.headers.get_str("traceparent").unwrap_or("");
                Ok(Response::new(Bytes::from(echoed.to_owned())))
            }
        });
        let b = outbound_to(&c, bc)
            .add(Dispatcher::builder(b_name.as_str()), &c_name)
            .inbound(GrpcInbound::new(loopback()))
            .inbound(HttpInbound::new(loopback()))
            .middleware(tracing.clone())
            .outbound_middleware(tracing.clone())
            .register(middle)
            .build()
            .expect("valid B");
        let config = b.client_config(&c_name).expect("outbound to C");
        to_c.set(Client::with_codec(config, RawCodec, Encoding::Raw))
            .unwrap_or_else(|_| unreachable!());
        b.start().await.expect("B starts");

        let a = outbound_to(&b, ab)
            .add(Dispatcher::builder(a_name.as_str()), &b_name)
            .outbound_middleware(tracing)
            .build()
            .expect("valid A");
        let a = Client::with_codec(
            a.client_config(&b_name).expect("outbound to B"),
            RawCodec,
            Encoding::Raw,
        );
        Chain {
            names,
            a,
            b,
            c,
            b_seen,
            c_seen,
        }
    }

    /// Calls B from A; returns the traceparent C sent back (through B).
    async fn call(&self) -> String {
        let response = bounded(self.a.unary::<Bytes, Bytes>(
            "hop::Middle",
            &Bytes::from_static(b"hi"),
            options(),
        ))
        .await
        .expect("the call succeeds");
        String::from_utf8(response.into_body().to_vec()).unwrap()
    }

    /// The spans of calls to B and to C, recorded so far.
    fn spans(&self) -> Vec<Fields> {
        capture::spans(|f| {
            f.get("rpc.service")
                .is_some_and(|s| s == self.names[1] || s == self.names[2])
        })
    }

    /// The one span of this kind for calls to `service`.
    fn span(&self, service: usize, kind: &str) -> Fields {
        let matching: Vec<Fields> = self
            .spans()
            .into_iter()
            .filter(|f| f.at("rpc.service") == self.names[service] && f.at("otel.kind") == kind)
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "one {kind} span for {}: {matching:?}",
            self.names[service]
        );
        matching.into_iter().next().unwrap()
    }

    async fn stop(self) {
        let _ = self.b.stop().await;
        let _ = self.c.stop().await;
    }
}

fn options() -> CallOptions {
    CallOptions::new().ttl(Duration::from_secs(5))
}

fn only(seen: &Seen) -> TraceContext {
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "one call seen: {seen:?}");
    seen[0].clone()
}

async fn one_trace_across_three_services(test: &str, ab: Transport, bc: Transport) {
    let chain = Chain::start(test, ab, bc).await;
    let echoed = chain.call().await;

    let a_client = chain.span(1, "client");
    let b_server = chain.span(1, "server");
    let b_client = chain.span(2, "client");
    let c_server = chain.span(2, "server");
    assert_eq!(chain.spans().len(), 4);

    let trace_id = a_client.at("trace_id");
    for span in [&b_server, &b_client, &c_server] {
        assert_eq!(span.at("trace_id"), trace_id, "one trace: {span:?}");
    }
    assert_eq!(
        a_client.get("parent_span_id"),
        None,
        "A's call starts the trace"
    );
    assert_eq!(b_server.at("parent_span_id"), a_client.at("span_id"));
    assert_eq!(b_client.at("parent_span_id"), b_server.at("span_id"));
    assert_eq!(c_server.at("parent_span_id"), b_client.at("span_id"));
    let spans = [&a_client, &b_server, &b_client, &c_server];
    let mut ids: Vec<&str> = spans.iter().map(|s| s.at("span_id")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "every span has its own id");

    // The conventional fields.
    assert_eq!(a_client.at("rpc.caller"), chain.names[0]);
    assert_eq!(c_server.at("rpc.caller"), chain.names[1]);
    assert_eq!(b_server.at("otel.name"), "hop/Middle");
    assert_eq!(c_server.at("rpc.method"), "Leaf");
    for span in spans {
        assert_eq!(span.at("rpc.system"), "yarpc");
        assert_eq!(span.at("rpc.encoding"), "raw");
        assert_eq!(span.get("otel.status_code"), None);
    }
    assert_eq!(a_client.at("rpc.transport"), ab.as_str());
    assert_eq!(b_server.at("rpc.transport"), ab.as_str());
    assert_eq!(b_client.at("rpc.transport"), bc.as_str());
    assert_eq!(c_server.at("rpc.transport"), bc.as_str());

    // What the handlers saw as the current context is their server span.
    let b = only(&chain.b_seen);
    let c = only(&chain.c_seen);
    assert_eq!(b.trace_id().to_string(), trace_id);
    assert_eq!(b.span_id().to_string(), b_server.at("span_id"));
    assert_eq!(
        b.parent_span_id().unwrap().to_string(),
        a_client.at("span_id")
    );
    assert_eq!(c.span_id().to_string(), c_server.at("span_id"));
    assert_eq!(
        c.parent_span_id().unwrap().to_string(),
        b_client.at("span_id")
    );

    // C's response header came back to B over the B -> C transport unchanged.
    assert_eq!(echoed, c.traceparent());
    chain.stop().await;
}

#[tokio::test]
async fn one_trace_from_grpc_to_http() {
    one_trace_across_three_services("trace-grpc-http", Transport::Grpc, Transport::Http).await;
}

#[tokio::test]
async fn one_trace_from_http_to_grpc() {
    one_trace_across_three_services("trace-http-grpc", Transport::Http, Transport::Grpc).await;
}

#[tokio::test]
async fn a_context_in_scope_is_the_parent_of_outbound_calls_and_its_tracestate_travels() {
    for (test, ab, bc) in [
        ("trace-scope-grpc-http", Transport::Grpc, Transport::Http),
        ("trace-scope-http-grpc", Transport::Http, Transport::Grpc),
    ] {
        let chain = Chain::start(test, ab, bc).await;
        let origin = TraceContext::from_w3c(
            format!("00-{KNOWN_TRACE}-{KNOWN_SPAN}-01").as_bytes(),
            Some(b"vendor=abc,other=1"),
        )
        .unwrap();
        trace::scope(origin, chain.call()).await;
        let a_client = chain.span(1, "client");
        assert_eq!(a_client.at("trace_id"), KNOWN_TRACE);
        assert_eq!(a_client.at("parent_span_id"), KNOWN_SPAN);
        let c = only(&chain.c_seen);
        assert_eq!(c.trace_id().to_string(), KNOWN_TRACE);
        assert_eq!(c.trace_state().header(), "vendor=abc,other=1", "{test}");
        assert!(c.is_sampled());
        chain.stop().await;
    }
}

fn yarpc_h1(chain: &Chain, traceparent: &str) -> http::Request<Full<Bytes>> {
    let addr = chain.b.addr(Transport::Http).unwrap();
    http::Request::post(format!("http://{addr}/"))
        .header("rpc-caller", "curl")
        .header("rpc-service", chain.names[1].as_str())
        .header("rpc-procedure", "hop::Middle")
        .header("rpc-encoding", "raw")
        .header("context-ttl-ms", "5000")
        .header("traceparent", traceparent)
        .header("tracestate", "vendor=abc")
        .body(Full::new(Bytes::from_static(b"hi")))
        .unwrap()
}

#[tokio::test]
async fn an_external_http_request_continues_its_trace() {
    let chain = Chain::start("trace-external-h1", Transport::Http, Transport::Grpc).await;
    let traceparent = format!("00-{KNOWN_TRACE}-{KNOWN_SPAN}-01");
    let response = bounded(raw_h1(
        chain.b.addr(Transport::Http).unwrap(),
        yarpc_h1(&chain, &traceparent),
    ))
    .await;
    assert_eq!(response.status, 200, "{:?}", response.body);

    let b = only(&chain.b_seen);
    assert_eq!(b.trace_id(), TraceId::from_hex(KNOWN_TRACE).unwrap());
    assert_eq!(
        b.parent_span_id(),
        Some(SpanId::from_hex(KNOWN_SPAN).unwrap())
    );
    assert_eq!(b.trace_state().header(), "vendor=abc");
    // B's call to C (over gRPC) carried the trace and its state on.
    let c = only(&chain.c_seen);
    assert_eq!(c.trace_id(), b.trace_id());
    assert_eq!(c.trace_state().header(), "vendor=abc");
    assert_eq!(
        String::from_utf8_lossy(&response.body),
        c.traceparent(),
        "B answers with the traceparent C sent back"
    );
    chain.stop().await;
}

#[tokio::test]
async fn a_malformed_traceparent_starts_a_new_trace() {
    let chain = Chain::start("trace-malformed", Transport::Http, Transport::Http).await;
    let addr = chain.b.addr(Transport::Http).unwrap();
    for (i, bad) in [
        format!("00-{}-{KNOWN_SPAN}-01", KNOWN_TRACE.to_uppercase()),
        format!("00-{KNOWN_TRACE}-0000000000000000-01"),
        "00-abc-def-01".to_owned(),
        "garbage".to_owned(),
    ]
    .into_iter()
    .enumerate()
    {
        let response = bounded(raw_h1(addr, yarpc_h1(&chain, &bad))).await;
        assert_eq!(response.status, 200, "{bad:?}: {:?}", response.body);
        let b = chain.b_seen.lock().unwrap()[i].clone();
        assert_ne!(
            b.trace_id(),
            TraceId::from_hex(KNOWN_TRACE).unwrap(),
            "{bad:?}"
        );
        assert_eq!(
            b.parent_span_id(),
            None,
            "{bad:?}: a new trace has no parent"
        );
        assert_eq!(
            b.trace_state().header(),
            "",
            "{bad:?}: the tracestate goes with it"
        );
        let c = chain.c_seen.lock().unwrap()[i].clone();
        assert_eq!(
            c.trace_id(),
            b.trace_id(),
            "{bad:?}: C continues B's new trace"
        );
    }
    chain.stop().await;
}

#[tokio::test]
async fn an_external_grpc_request_continues_its_trace() {
    let chain = Chain::start("trace-external-h2", Transport::Grpc, Transport::Http).await;
    let addr = chain.b.addr(Transport::Grpc).unwrap();
    let mut request = grpc_request(addr, "/hop/Middle", "application/grpc", grpc_frame(b"hi"));
    let headers = request.headers_mut();
    headers.insert("rpc-caller", "grpcurl".parse().unwrap());
    headers.insert("rpc-encoding", "raw".parse().unwrap());
    headers.insert(
        "traceparent",
        format!("00-{KNOWN_TRACE}-{KNOWN_SPAN}-00").parse().unwrap(),
    );
    headers.insert("tracestate", "vendor=grpc".parse().unwrap());
    let response = bounded(raw_h2(addr, request)).await;
    assert_eq!(
        response.grpc_status(),
        Some(0),
        "{}",
        response.grpc_message()
    );

    let b = only(&chain.b_seen);
    assert_eq!(b.trace_id(), TraceId::from_hex(KNOWN_TRACE).unwrap());
    assert_eq!(
        b.parent_span_id(),
        Some(SpanId::from_hex(KNOWN_SPAN).unwrap())
    );
    assert!(!b.is_sampled(), "the caller's flags are kept");
    let c = only(&chain.c_seen);
    assert_eq!(c.trace_id(), b.trace_id());
    assert_eq!(c.trace_state().header(), "vendor=grpc");
    assert!(!c.is_sampled());
    chain.stop().await;
}

#[tokio::test]
async fn failures_are_recorded_on_the_span() {
    capture::install();
    let failing = typed::unary("fail::Now", RawCodec, |_r: Request<Bytes>| async {
        Err::<Response<Bytes>, _>(omnirelay::Error::not_found("no such user"))
    });
    let server = Dispatcher::builder("trace-fail-server")
        .inbound(GrpcInbound::new(loopback()))
        .middleware(TracingMiddleware::new().rpc_system("omnirelay"))
        .register(failing)
        .build()
        .unwrap();
    server.start().await.unwrap();
    let caller = Dispatcher::builder("trace-fail-caller")
        .outbound(
            "trace-fail-server",
            GrpcOutbound::new(format!("http://{}", server.addr(Transport::Grpc).unwrap())).unwrap(),
        )
        .outbound_middleware(TracingMiddleware::new().inject(false))
        .build()
        .unwrap();
    let client = Client::with_codec(
        caller.client_config("trace-fail-server").unwrap(),
        RawCodec,
        Encoding::Raw,
    );
    let err = bounded(client.unary::<Bytes, Bytes>("fail::Now", &Bytes::new(), options()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), omnirelay::Code::NotFound);

    let spans = capture::spans(|f| f.get("rpc.service") == Some("trace-fail-server"));
    assert_eq!(spans.len(), 2, "{spans:?}");
    let (client_span, server_span) = match spans[0].at("otel.kind") {
        "client" => (&spans[0], &spans[1]),
        _ => (&spans[1], &spans[0]),
    };
    for span in [client_span, server_span] {
        assert_eq!(span.at("otel.status_code"), "ERROR");
        assert_eq!(span.at("rpc.error_code"), "not-found");
        assert_eq!(span.at("rpc.error_message"), "no such user");
    }
    assert_eq!(server_span.at("rpc.system"), "omnirelay");
    // The caller injected nothing, so the server started a trace of its own.
    assert_ne!(server_span.at("trace_id"), client_span.at("trace_id"));
    assert_eq!(server_span.get("parent_span_id"), None);
    let _ = server.stop().await;
}
