//! The circuit breaker over real sockets: it opens after consecutive server-fault failures, fails
//! calls fast while open without reaching the server, probes the peer when the suspension ends,
//! closes on a good probe and reopens for longer on a bad one; a closed port opens it too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use omnirelay::codec::RawCodec;
use omnirelay::dispatcher::DispatcherBuilder;
use omnirelay::middleware::circuit_breaker::{CircuitBreakerMiddleware, Phase};
use omnirelay::procedure::typed;
use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
use omnirelay::transport::http::{HttpInbound, HttpOutbound};
use omnirelay::{
    CallOptions, Client, Code, Dispatcher, Encoding, Error, ProcedureSpec, Request, Response,
    Streaming, Transport,
};
use omnirelay_tests::loopback;

const WIRES: [Transport; 2] = [Transport::Grpc, Transport::Http];

/// The server's switch and call count.
#[derive(Clone, Default)]
struct Server {
    failing: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl Server {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    fn result(&self) -> omnirelay::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            Err(Error::unavailable("the server is failing"))
        } else {
            Ok(())
        }
    }

    /// `cb::Call` (unary) and `cb::Watch` (server stream of one message), failing while the
    /// switch is on.
    fn procedures(&self) -> Vec<ProcedureSpec> {
        let (s1, s2) = (self.clone(), self.clone());
        vec![
            typed::unary("cb::Call", RawCodec, move |r: Request<Bytes>| {
                let result = s1.result();
                async move { result.map(|()| Response::new(r.into_body())) }
            }),
            typed::server_stream("cb::Watch", RawCodec, move |r: Request<Bytes>| {
                let result = s2.result();
                async move {
                    result?;
                    let body: Bytes = r.into_body();
                    Ok(Response::new(Streaming::new(futures::stream::iter([Ok(
                        body,
                    )]))))
                }
            }),
        ]
    }
}

fn with_outbound(
    builder: DispatcherBuilder,
    service: &str,
    wire: Transport,
    addr: &str,
) -> DispatcherBuilder {
    let url = format!("http://{addr}");
    match wire {
        Transport::Grpc => builder.outbound(service, GrpcOutbound::new(url).unwrap()),
        _ => builder.outbound(service, HttpOutbound::new(url).unwrap()),
    }
}

/// A client for `test-service` at `addr` over `wire`, behind `breaker`.
fn client(wire: Transport, addr: &str, breaker: &CircuitBreakerMiddleware) -> Client<RawCodec> {
    let caller = Dispatcher::builder("test-caller").outbound_middleware(breaker.clone());
    let caller = with_outbound(caller, "test-service", wire, addr)
        .build()
        .unwrap();
    Client::with_codec(
        caller.client_config("test-service").unwrap(),
        RawCodec,
        Encoding::Raw,
    )
}

async fn serve(wire: Transport, server: &Server) -> (Dispatcher, String) {
    let builder = Dispatcher::builder("test-service").register(server.procedures());
    let dispatcher = match wire {
        Transport::Grpc => builder.inbound(GrpcInbound::new(loopback())),
        _ => builder.inbound(HttpInbound::new(loopback())),
    }
    .build()
    .unwrap();
    dispatcher.start().await.unwrap();
    let addr = dispatcher.addr(wire).unwrap().to_string();
    (dispatcher, addr)
}

async fn call(client: &Client<RawCodec>) -> omnirelay::Result<Bytes> {
    let body = Bytes::from_static(b"x");
    let call = client.unary::<Bytes, Bytes>("cb::Call", &body, CallOptions::new());
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call finishes")
        .map(Response::into_body)
}

/// Waits (bounded) until `peer`'s suspension is over.
async fn until_not_open(breaker: &CircuitBreakerMiddleware, peer: &str) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while breaker.state(peer).unwrap().phase == Phase::Open {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the suspension ends");
}

fn assert_fails_fast(err: &Error, peer: &str) {
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.message().contains("circuit breaker open"), "{err}");
    assert!(err.message().contains(peer), "{err}");
    assert!(err.message().contains(" ms"), "{err}");
}

#[tokio::test]
async fn opens_fails_fast_probes_and_closes() {
    for wire in WIRES {
        let server = Server::default();
        let (dispatcher, peer) = serve(wire, &server).await;
        let breaker = CircuitBreakerMiddleware::new()
            .failure_threshold(3)
            .base_delay(Duration::from_millis(50))
            .max_delay(Duration::from_secs(2));
        let client = client(wire, &peer, &breaker);
        assert_eq!(call(&client).await.unwrap(), "x");
        assert_eq!(breaker.peers(), [peer.as_str()]);

        // Three failures in a row open it.
        server.fail(true);
        for i in 1..=3 {
            let err = call(&client).await.unwrap_err();
            assert_eq!(err.message(), "the server is failing", "{wire:?} call {i}");
        }
        let state = breaker.state(&peer).unwrap();
        assert_eq!(state.phase, Phase::Open, "{wire:?}");
        assert_eq!(state.failures, 3);
        assert_eq!(state.suspension, Some(Duration::from_millis(50)));
        assert!(state.remaining.is_some());
        assert_eq!(server.calls(), 4);

        // While open, calls fail fast and never reach the server.
        let mut fast = 0;
        for _ in 0..5 {
            let before = server.calls();
            let err = call(&client).await.unwrap_err();
            if !err.message().contains("circuit breaker") {
                // The 50 ms suspension ended (a slow machine): that was a probe.
                break;
            }
            assert_fails_fast(&err, &peer);
            assert_eq!(
                server.calls(),
                before,
                "{wire:?}: a fast failure reached the server"
            );
            fast += 1;
        }
        assert!(fast >= 1, "{wire:?}: no call failed fast");

        // After the suspension a probe reaches the server; it fails: reopened for 100 ms.
        until_not_open(&breaker, &peer).await;
        assert_eq!(breaker.state(&peer).unwrap().phase, Phase::HalfOpen);
        let before = server.calls();
        let err = call(&client).await.unwrap_err();
        assert_eq!(err.message(), "the server is failing", "{wire:?}");
        assert_eq!(server.calls(), before + 1);
        let state = breaker.state(&peer).unwrap();
        assert_eq!(state.phase, Phase::Open, "{wire:?}");
        assert!(state.failures >= 4, "{state:?}");
        assert!(
            state.suspension >= Some(Duration::from_millis(100)),
            "{wire:?}: {state:?}"
        );

        // The next probe succeeds: closed, and calls reach the server again.
        until_not_open(&breaker, &peer).await;
        server.fail(false);
        let before = server.calls();
        assert_eq!(call(&client).await.unwrap(), "x");
        let state = breaker.state(&peer).unwrap();
        assert_eq!(
            (state.phase, state.failures, state.suspension),
            (Phase::Closed, 0, None)
        );
        for _ in 0..3 {
            call(&client).await.unwrap();
        }
        assert_eq!(server.calls(), before + 4, "{wire:?}");
        dispatcher.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_closed_port_opens_it() {
    for wire in WIRES {
        let listener = std::net::TcpListener::bind(loopback()).unwrap();
        let peer = listener.local_addr().unwrap().to_string();
        drop(listener);
        let breaker = CircuitBreakerMiddleware::new()
            .failure_threshold(2)
            .base_delay(Duration::from_secs(30))
            .max_delay(Duration::from_secs(60));
        let client = client(wire, &peer, &breaker);
        for _ in 0..2 {
            let err = call(&client).await.unwrap_err();
            assert_eq!(err.code(), Code::Unavailable, "{wire:?}: {err}");
            assert!(!err.message().contains("circuit breaker"), "{err}");
        }
        let state = breaker.state(&peer).unwrap();
        assert_eq!(state.phase, Phase::Open, "{wire:?}");
        assert_eq!(state.suspension, Some(Duration::from_secs(30)));
        let err = call(&client).await.unwrap_err();
        assert_fails_fast(&err, &peer);
    }
}

#[tokio::test]
async fn caller_fault_codes_do_not_trip_it() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let procedure = typed::unary("cb::Call", RawCodec, move |_r: Request<Bytes>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err::<Response<Bytes>, _>(Error::invalid_argument("bad request")) }
    });
    for wire in WIRES {
        calls.store(0, Ordering::SeqCst);
        let builder = Dispatcher::builder("test-service").register(procedure.clone());
        let server = match wire {
            Transport::Grpc => builder.inbound(GrpcInbound::new(loopback())),
            _ => builder.inbound(HttpInbound::new(loopback())),
        }
        .build()
        .unwrap();
        server.start().await.unwrap();
        let peer = server.addr(wire).unwrap().to_string();
        let breaker = CircuitBreakerMiddleware::new().failure_threshold(1);
        let client = client(wire, &peer, &breaker);
        for _ in 0..4 {
            let err = call(&client).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{wire:?}: {err}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        let state = breaker.state(&peer).unwrap();
        assert_eq!((state.phase, state.failures), (Phase::Closed, 0));
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn opening_a_stream_counts() {
    for wire in WIRES {
        let server = Server::default();
        let (dispatcher, peer) = serve(wire, &server).await;
        let breaker = CircuitBreakerMiddleware::new()
            .failure_threshold(2)
            .base_delay(Duration::from_secs(30))
            .max_delay(Duration::from_secs(60));
        let client = client(wire, &peer, &breaker);
        let watch = || async {
            let body = Bytes::from_static(b"s");
            let call = client.server_stream::<Bytes, Bytes>("cb::Watch", &body, CallOptions::new());
            let mut stream = tokio::time::timeout(Duration::from_secs(10), call)
                .await
                .expect("the call finishes")?
                .into_body();
            stream.message().await
        };
        assert_eq!(watch().await.unwrap().as_deref(), Some(&b"s"[..]));
        server.fail(true);
        for _ in 0..2 {
            let err = watch().await.unwrap_err();
            assert_eq!(err.code(), Code::Unavailable, "{wire:?}: {err}");
        }
        assert_eq!(breaker.state(&peer).unwrap().phase, Phase::Open, "{wire:?}");
        // Open for the unary shape too: the state is the peer's.
        let err = call(&client).await.unwrap_err();
        assert_fails_fast(&err, &peer);
        let err = watch().await.unwrap_err();
        assert_fails_fast(&err, &peer);
        assert_eq!(server.calls(), 3);
        dispatcher.stop().await.unwrap();
    }
}

#[tokio::test]
async fn outbounds_to_one_peer_share_its_breaker() {
    let server = Server::default();
    let (dispatcher, peer) = serve(Transport::Http, &server).await;
    let breaker = CircuitBreakerMiddleware::new()
        .failure_threshold(1)
        .base_delay(Duration::from_secs(30))
        .max_delay(Duration::from_secs(60));
    let caller = Dispatcher::builder("test-caller").outbound_middleware(breaker.clone());
    let caller = with_outbound(caller, "test-service", Transport::Http, &peer);
    let caller = with_outbound(caller, "other-service", Transport::Http, &peer)
        .build()
        .unwrap();
    let first = Client::with_codec(
        caller.client_config("test-service").unwrap(),
        RawCodec,
        Encoding::Raw,
    );
    let second = Client::with_codec(
        caller.client_config("other-service").unwrap(),
        RawCodec,
        Encoding::Raw,
    );
    assert_eq!(breaker.peers(), [peer.as_str()]);
    server.fail(true);
    call(&first).await.unwrap_err();
    let err = call(&second).await.unwrap_err();
    assert_fails_fast(&err, &peer);
    assert_eq!(server.calls(), 1);
    dispatcher.stop().await.unwrap();
}

/// Registered as inbound middleware the breaker does nothing: the server's failures, however
/// many, never make it fail a call fast (for this caller or any other), and it keeps no state.
#[tokio::test]
async fn registered_inbound_it_never_fails_calls() {
    for wire in WIRES {
        let server = Server::default();
        let breaker = CircuitBreakerMiddleware::new().failure_threshold(1);
        let builder = Dispatcher::builder("test-service")
            .register(server.procedures())
            .middleware(breaker.clone());
        let dispatcher = match wire {
            Transport::Grpc => builder.inbound(GrpcInbound::new(loopback())),
            _ => builder.inbound(HttpInbound::new(loopback())),
        }
        .build()
        .unwrap();
        dispatcher.start().await.unwrap();
        let addr = dispatcher.addr(wire).unwrap().to_string();
        // Two callers with no breaker of their own.
        let plain = CircuitBreakerMiddleware::new().failure_threshold(u32::MAX);
        let (one, other) = (client(wire, &addr, &plain), client(wire, &addr, &plain));

        server.fail(true);
        for _ in 0..5 {
            let err = call(&one).await.unwrap_err();
            assert_eq!(err.code(), Code::Unavailable, "{wire:?}");
            assert_eq!(err.message(), "the server is failing", "{wire:?}");
        }
        server.fail(false);
        for client in [&one, &other] {
            assert_eq!(call(client).await.unwrap().as_ref(), b"x", "{wire:?}");
        }
        // Every call reached the handler, and the inbound breaker never made state.
        assert_eq!(server.calls(), 7, "{wire:?}");
        assert!(
            breaker.peers().is_empty(),
            "{wire:?}: {:?}",
            breaker.peers()
        );
        assert!(plain.state(&addr).is_some_and(|s| s.phase == Phase::Closed));
        dispatcher.stop().await.unwrap();
    }
}
