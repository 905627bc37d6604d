//! The rate-limit middleware over real sockets: a missed permit is `resource-exhausted` naming
//! the procedure over gRPC (status 8) and YARPC-HTTP (429, `Rpc-Error-Code`), per procedure,
//! per caller, on streams (one permit per stream) and on outbound calls.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use omnirelay::codec::RawCodec;
use omnirelay::middleware::Middleware;
use omnirelay::middleware::rate_limit::{Quota, RateLimitMiddleware};
use omnirelay::procedure::typed;
use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
use omnirelay::transport::http::{HttpInbound, HttpOutbound};
use omnirelay::{
    CallOptions, Client, Code, Dispatcher, Encoding, Outbound, ProcedureSpec, Request, Response,
    Streaming, Transport,
};
use omnirelay_tests::{grpc_frame, grpc_request, loopback, raw_h1, raw_h2};

const LIMITED: &str = "limited::Echo";
const FREE: &str = "free::Echo";
const STREAM: &str = "limited::Stream";
static HI: Bytes = Bytes::from_static(b"hi");
static ABCDE: Bytes = Bytes::from_static(b"abcde");

/// Three calls a minute, all three at once: nothing replenishes while a test runs.
fn three_per_minute() -> Quota {
    let three = NonZeroU32::new(3).unwrap();
    Quota::per_minute(three).allow_burst(three)
}

fn echo(name: &str, calls: Arc<AtomicUsize>) -> ProcedureSpec {
    typed::unary(name, RawCodec, move |r: Request<Bytes>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok(Response::new(r.into_body())) }
    })
}

/// Streams back the request's body `n` times, `n` being the body's length.
fn repeat() -> ProcedureSpec {
    typed::server_stream(STREAM, RawCodec, |r: Request<Bytes>| async move {
        let body = r.into_body();
        let items: Vec<omnirelay::Result<Bytes>> =
            (0..body.len()).map(|_| Ok(body.clone())).collect();
        Ok(Response::new(Streaming::new(futures::stream::iter(items))))
    })
}

struct Server {
    dispatcher: Dispatcher,
    http: std::net::SocketAddr,
    grpc: std::net::SocketAddr,
    handled: Arc<AtomicUsize>,
}

/// A server `test-service` on HTTP and gRPC with `limited::Echo`, `free::Echo` and
/// `limited::Stream`, configured by `configure`.
async fn server(
    configure: impl FnOnce(
        omnirelay::dispatcher::DispatcherBuilder,
    ) -> omnirelay::dispatcher::DispatcherBuilder,
) -> Server {
    let handled = Arc::new(AtomicUsize::new(0));
    let builder = Dispatcher::builder("test-service")
        .inbound(HttpInbound::new(loopback()))
        .inbound(GrpcInbound::new(loopback()))
        .register(vec![
            echo(LIMITED, handled.clone()),
            echo(FREE, handled.clone()),
            repeat(),
        ]);
    let dispatcher = configure(builder).build().expect("valid server");
    dispatcher.start().await.expect("server starts");
    Server {
        http: dispatcher.addr(Transport::Http).unwrap(),
        grpc: dispatcher.addr(Transport::Grpc).unwrap(),
        dispatcher,
        handled,
    }
}

/// A raw-encoding client calling `test-service` as `caller` through `outbound`, with
/// `outbound_middleware` (if any) on the caller's side.
fn client(
    caller: &str,
    outbound: impl Outbound,
    outbound_middleware: Option<Middleware>,
) -> (Dispatcher, Client<RawCodec>) {
    let mut builder = Dispatcher::builder(caller).outbound("test-service", outbound);
    if let Some(m) = outbound_middleware {
        builder = builder.outbound_middleware(m);
    }
    let dispatcher = builder.build().expect("valid caller");
    let config = dispatcher.client_config("test-service").unwrap();
    (
        dispatcher,
        Client::with_codec(config, RawCodec, Encoding::Raw),
    )
}

fn grpc_client(caller: &str, server: &Server) -> (Dispatcher, Client<RawCodec>) {
    client(
        caller,
        GrpcOutbound::new(format!("http://{}", server.grpc)).unwrap(),
        None,
    )
}

fn http_client(caller: &str, server: &Server) -> (Dispatcher, Client<RawCodec>) {
    client(
        caller,
        HttpOutbound::new(format!("http://{}", server.http)).unwrap(),
        None,
    )
}

async fn call(client: &Client<RawCodec>, procedure: &str) -> omnirelay::Result<Bytes> {
    let call = client.unary::<Bytes, Bytes>(procedure, &HI, CallOptions::new());
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call answers")
        .map(Response::into_body)
}

fn assert_limited(result: omnirelay::Result<Bytes>, procedure: &str) {
    let err = result.expect_err("the call over the quota fails");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let expected = format!("rate limit exceeded for procedure '{procedure}' (retry after ");
    assert!(err.message().starts_with(&expected), "{err:?}");
}

#[tokio::test]
async fn over_grpc_the_fourth_call_is_resource_exhausted_and_other_procedures_are_unaffected() {
    let server =
        server(|b| b.procedure_middleware(LIMITED, RateLimitMiddleware::new(three_per_minute())))
            .await;
    let (_caller, client) = grpc_client("caller", &server);
    for _ in 0..3 {
        assert_eq!(call(&client, LIMITED).await.unwrap(), "hi");
    }
    let err = call(&client, LIMITED).await.unwrap_err();
    assert_eq!(err.code().as_i32(), 8);
    assert_limited(Err(err), LIMITED);
    assert_eq!(
        server.handled.load(Ordering::SeqCst),
        3,
        "the refused call reached no handler"
    );

    // On the wire: grpc-status 8 and the message.
    let mut request = grpc_request(
        server.grpc,
        "/limited/Echo",
        "application/grpc",
        grpc_frame(b"hi"),
    );
    request
        .headers_mut()
        .insert("rpc-encoding", "raw".parse().unwrap());
    let raw = tokio::time::timeout(Duration::from_secs(10), raw_h2(server.grpc, request))
        .await
        .unwrap();
    assert_eq!(raw.grpc_status(), Some(8), "{raw:?}");
    assert!(
        raw.grpc_message()
            .starts_with("rate limit exceeded for procedure 'limited::Echo'"),
        "{}",
        raw.grpc_message()
    );

    // The procedure without the limit is not affected.
    for _ in 0..10 {
        assert_eq!(call(&client, FREE).await.unwrap(), "hi");
    }
    server.dispatcher.stop().await.unwrap();
}

#[tokio::test]
async fn over_http_the_fourth_call_is_429_with_rpc_error_code_resource_exhausted() {
    let server =
        server(|b| b.procedure_middleware(LIMITED, RateLimitMiddleware::new(three_per_minute())))
            .await;
    let (_caller, client) = http_client("caller", &server);
    for _ in 0..3 {
        assert_eq!(call(&client, LIMITED).await.unwrap(), "hi");
    }
    assert_limited(call(&client, LIMITED).await, LIMITED);

    let yarpc = |procedure: &str| {
        http::Request::post(format!("http://{}/", server.http))
            .header("host", "x")
            .header("rpc-caller", "raw")
            .header("rpc-service", "test-service")
            .header("rpc-procedure", procedure)
            .header("rpc-encoding", "raw")
            .header("context-ttl-ms", "5000")
            .body(Full::new(Bytes::from_static(b"hi")))
            .unwrap()
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), raw_h1(server.http, yarpc(LIMITED)))
        .await
        .unwrap();
    assert_eq!(raw.status, 429, "{raw:?}");
    assert_eq!(raw.header("rpc-status"), "error");
    assert_eq!(raw.header("rpc-error-code"), "resource-exhausted");
    assert!(
        raw.header("rpc-error-message")
            .starts_with("rate limit exceeded for procedure 'limited::Echo' (retry after "),
        "{raw:?}"
    );

    let free = tokio::time::timeout(Duration::from_secs(10), raw_h1(server.http, yarpc(FREE)))
        .await
        .unwrap();
    assert_eq!(free.status, 200, "{free:?}");
    assert_eq!(free.body, "hi");
    server.dispatcher.stop().await.unwrap();
}

#[tokio::test]
async fn per_caller_limits_isolate_callers_across_procedures() {
    let two = NonZeroU32::new(2).unwrap();
    let server =
        server(|b| b.middleware(RateLimitMiddleware::new(Quota::per_minute(two)).per_caller()))
            .await;
    let (_a, alice) = grpc_client("alice", &server);
    let (_b, bob) = http_client("bob", &server);
    assert!(call(&alice, LIMITED).await.is_ok());
    assert!(call(&alice, FREE).await.is_ok());
    // Alice's budget is spent, on every procedure.
    assert_limited(call(&alice, LIMITED).await, LIMITED);
    assert_limited(call(&alice, FREE).await, FREE);
    // Bob's is untouched.
    assert!(call(&bob, FREE).await.is_ok());
    assert!(call(&bob, LIMITED).await.is_ok());
    assert_limited(call(&bob, LIMITED).await, LIMITED);
    server.dispatcher.stop().await.unwrap();
}

#[tokio::test]
async fn opening_a_stream_takes_one_permit_whatever_it_carries() {
    let two = NonZeroU32::new(2).unwrap();
    let server = server(|b| {
        b.procedure_middleware(STREAM, RateLimitMiddleware::new(Quota::per_minute(two)))
    })
    .await;
    let (_caller, client) = grpc_client("caller", &server);
    let open = || async {
        let call = client.server_stream::<Bytes, Bytes>(STREAM, &ABCDE, CallOptions::new());
        let mut stream = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .unwrap()?
            .into_body();
        let mut n = 0;
        while let Some(m) = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap()?
        {
            assert_eq!(m, "abcde");
            n += 1;
        }
        Ok::<_, omnirelay::Error>(n)
    };
    // Five messages each, two streams: within a quota of two calls.
    assert_eq!(open().await.unwrap(), 5);
    assert_eq!(open().await.unwrap(), 5);
    let err = open().await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("'limited::Stream'"), "{err:?}");
    server.dispatcher.stop().await.unwrap();
}

#[tokio::test]
async fn outbound_limits_fail_locally_per_procedure() {
    let server = server(|b| b).await;
    let two = NonZeroU32::new(2).unwrap();
    let limit: Middleware = RateLimitMiddleware::new(Quota::per_minute(two)).into();
    let (_caller, client) = client(
        "caller",
        HttpOutbound::new(format!("http://{}", server.http)).unwrap(),
        Some(limit),
    );
    assert!(call(&client, LIMITED).await.is_ok());
    assert!(call(&client, LIMITED).await.is_ok());
    assert_limited(call(&client, LIMITED).await, LIMITED);
    assert_eq!(
        server.handled.load(Ordering::SeqCst),
        2,
        "the refused call never left the caller"
    );
    // Another procedure through the same outbound has its own budget.
    assert!(call(&client, FREE).await.is_ok());
    assert!(call(&client, FREE).await.is_ok());
    assert_limited(call(&client, FREE).await, FREE);
    server.dispatcher.stop().await.unwrap();
}
