//! The deadline and panic-recovery middleware over real sockets, on both transports.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use omnirelay::codec::RawCodec;
use omnirelay::middleware::deadline::DeadlineMiddleware;
use omnirelay::middleware::panic_recovery::PanicRecoveryMiddleware;
use omnirelay::procedure::typed;
use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
use omnirelay::transport::http::{HttpInbound, HttpOutbound};
use omnirelay::{
    CallOptions, Client, Code, Dispatcher, Encoding, ProcedureSpec, Request, Response, Streaming,
    Transport,
};
use omnirelay_tests::loopback;

async fn serve(procedures: Vec<ProcedureSpec>, lead: Duration) -> Dispatcher {
    let server = Dispatcher::builder("server")
        .inbound(GrpcInbound::new(loopback()))
        .inbound(HttpInbound::new(loopback()))
        .register(procedures)
        .middleware(DeadlineMiddleware::new().minimum_lead_time(lead))
        .middleware(PanicRecoveryMiddleware::new())
        .build()
        .unwrap();
    server.start().await.unwrap();
    server
}

fn caller(server: &Dispatcher, transport: Transport, lead: Duration) -> Client<RawCodec> {
    let addr = server.addr(transport).unwrap();
    let url = format!("http://{addr}");
    let builder = Dispatcher::builder("caller")
        .outbound_middleware(DeadlineMiddleware::new().minimum_lead_time(lead));
    let builder = match transport {
        Transport::Grpc => builder.outbound("server", GrpcOutbound::new(url).unwrap()),
        _ => builder.outbound("server", HttpOutbound::new(url).unwrap()),
    };
    let caller = builder.build().unwrap();
    Client::with_codec(
        caller.client_config("server").unwrap(),
        RawCodec,
        Encoding::Raw,
    )
}

async fn call(
    client: &Client<RawCodec>,
    procedure: &str,
    body: &'static str,
    ttl: Option<Duration>,
) -> omnirelay::Result<Bytes> {
    let mut options = CallOptions::new();
    options.ttl = ttl;
    tokio::time::timeout(
        Duration::from_secs(10),
        client.unary::<Bytes, Bytes>(procedure, &Bytes::from_static(body.as_bytes()), options),
    )
    .await
    .expect("the call answers")
    .map(Response::into_body)
}

fn counting(name: &str, calls: Arc<AtomicUsize>, delay: Duration) -> ProcedureSpec {
    typed::unary(name, RawCodec, move |r: Request<Bytes>| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            Ok(Response::new(r.into_body()))
        }
    })
}

#[tokio::test]
async fn inbound_lead_time_refuses_calls_without_running_the_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = serve(
        vec![counting("svc::Echo", calls.clone(), Duration::ZERO)],
        Duration::from_millis(200),
    )
    .await;
    for transport in [Transport::Grpc, Transport::Http] {
        // The caller has no lead time of its own, so the request reaches the server.
        let client = caller(&server, transport, Duration::ZERO);
        let err = call(&client, "svc::Echo", "x", Some(Duration::from_millis(100)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{transport:?}: {err}");
        assert!(err.message().contains("svc::Echo"), "{err}");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler did not run");
        // Enough time left: served.
        let ok = call(&client, "svc::Echo", "y", Some(Duration::from_secs(5))).await;
        assert_eq!(ok.unwrap(), "y");
        // No deadline at all: served.
        assert_eq!(call(&client, "svc::Echo", "z", None).await.unwrap(), "z");
        calls.store(0, Ordering::SeqCst);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn outbound_lead_time_refuses_calls_before_sending_them() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = serve(
        vec![counting("svc::Echo", calls.clone(), Duration::ZERO)],
        Duration::ZERO,
    )
    .await;
    for transport in [Transport::Grpc, Transport::Http] {
        let client = caller(&server, transport, Duration::from_millis(500));
        let err = call(&client, "svc::Echo", "x", Some(Duration::from_millis(100)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{transport:?}: {err}");
        assert!(err.message().starts_with("outbound"), "{err}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "nothing reached the server"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_handler_slower_than_the_deadline_is_cancelled_at_it() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = serve(
        vec![
            counting("svc::Slow", calls.clone(), Duration::from_secs(30)),
            counting("svc::Echo", calls.clone(), Duration::ZERO),
        ],
        Duration::ZERO,
    )
    .await;
    for transport in [Transport::Grpc, Transport::Http] {
        let client = caller(&server, transport, Duration::ZERO);
        let err = call(&client, "svc::Slow", "x", Some(Duration::from_millis(150)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{transport:?}: {err}");
        assert_eq!(call(&client, "svc::Echo", "y", None).await.unwrap(), "y");
    }
    server.stop().await.unwrap();
}

fn panicking() -> Vec<ProcedureSpec> {
    vec![
        typed::unary("svc::Maybe", RawCodec, |r: Request<Bytes>| async move {
            if r.body.as_ref() == b"boom" {
                panic!("the handler saw boom");
            }
            Ok(Response::new(r.into_body()))
        }),
        typed::server_stream("svc::Count", RawCodec, |r: Request<Bytes>| async move {
            let n: usize = std::str::from_utf8(&r.body)
                .unwrap_or("0")
                .parse()
                .unwrap_or(0);
            let items = futures::stream::iter(0..5).map(move |i| {
                if i == n {
                    panic!("stream item {i} panicked");
                }
                Ok(Bytes::from(i.to_string()))
            });
            Ok(Response::new(Streaming::new(items)))
        }),
    ]
}

#[tokio::test]
async fn a_panic_becomes_internal_with_its_message_and_the_server_keeps_serving() {
    let server = serve(panicking(), Duration::ZERO).await;
    for transport in [Transport::Grpc, Transport::Http] {
        let client = caller(&server, transport, Duration::ZERO);
        for _ in 0..3 {
            let err = call(&client, "svc::Maybe", "boom", None).await.unwrap_err();
            assert_eq!(err.code(), Code::Internal, "{transport:?}: {err}");
            assert!(err.message().contains("the handler saw boom"), "{err}");
            assert!(err.message().contains("svc::Maybe"), "{err}");
            assert_eq!(
                call(&client, "svc::Maybe", "fine", None).await.unwrap(),
                "fine"
            );
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_panic_inside_a_response_stream_ends_it_with_internal() {
    let server = serve(panicking(), Duration::ZERO).await;
    for transport in [Transport::Grpc, Transport::Http] {
        let client = caller(&server, transport, Duration::ZERO);
        let body = Bytes::from_static(b"2");
        let mut stream = client
            .server_stream::<Bytes, Bytes>("svc::Count", &body, CallOptions::new())
            .await
            .unwrap()
            .into_body();
        let mut got = Vec::new();
        let err = loop {
            match tokio::time::timeout(Duration::from_secs(5), stream.message())
                .await
                .unwrap()
            {
                Ok(Some(item)) => got.push(item),
                Ok(None) => panic!("{transport:?}: the stream ended cleanly after {got:?}"),
                Err(err) => break err,
            }
        };
        assert_eq!(got, ["0", "1"], "{transport:?}");
        assert_eq!(err.code(), Code::Internal, "{transport:?}: {err}");
        assert!(err.message().contains("stream item 2 panicked"), "{err}");
        // The next stream is served whole.
        let body = Bytes::from_static(b"9");
        let mut stream = client
            .server_stream::<Bytes, Bytes>("svc::Count", &body, CallOptions::new())
            .await
            .unwrap()
            .into_body();
        let mut n = 0;
        while let Some(_item) = stream.message().await.unwrap() {
            n += 1;
        }
        assert_eq!(n, 5);
    }
    server.stop().await.unwrap();
}
