//! The retry middleware over real sockets, on both transports: retryable failures are retried up
//! to the attempt limit, other codes are not, the caller's deadline and the retry budget bound the
//! retries, and registered inbound it does nothing.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use omnirelay::codec::RawCodec;
use omnirelay::middleware::retry::{Budget, RetryMiddleware};
use omnirelay::procedure::typed;
use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
use omnirelay::transport::http::{HttpInbound, HttpOutbound};
use omnirelay::{
    CallOptions, Client, Code, Dispatcher, Encoding, Error, ProcedureSpec, Request, Response,
    Transport,
};
use omnirelay_tests::loopback;

const WIRES: [Transport; 2] = [Transport::Grpc, Transport::Http];

/// What the server's handler saw.
#[derive(Clone, Default)]
struct Seen {
    attempts: Arc<AtomicUsize>,
    ttls: Arc<Mutex<Vec<Option<Duration>>>>,
}

impl Seen {
    fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    fn ttls(&self) -> Vec<Option<Duration>> {
        self.ttls.lock().unwrap().clone()
    }
}

/// `flaky::Call`: fails the first `failures` attempts with `code` (the message names the
/// attempt), then echoes the body.
fn flaky(code: Code, failures: usize, seen: &Seen) -> ProcedureSpec {
    let seen = seen.clone();
    typed::unary("flaky::Call", RawCodec, move |r: Request<Bytes>| {
        let seen = seen.clone();
        async move {
            seen.ttls.lock().unwrap().push(r.meta().ttl);
            let attempt = seen.attempts.fetch_add(1, Ordering::SeqCst) + 1;
            if attempt <= failures {
                return Err(Error::new(code, format!("attempt {attempt} failed")));
            }
            Ok(Response::new(r.into_body()))
        }
    })
}

struct Setup {
    server: Dispatcher,
    client: Client<RawCodec>,
}

impl Setup {
    async fn call(&self, options: CallOptions) -> omnirelay::Result<Bytes> {
        let body = Bytes::from_static(b"hello");
        let call = self
            .client
            .unary::<Bytes, Bytes>("flaky::Call", &body, options);
        tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("the call finishes")
            .map(Response::into_body)
    }

    async fn stop(self) {
        self.server.stop().await.unwrap();
    }
}

/// A server on `wire` serving `procedure`, and a client whose outbound retries with `retry`.
async fn start(wire: Transport, procedure: ProcedureSpec, retry: RetryMiddleware) -> Setup {
    let server = Dispatcher::builder("test-service").register(procedure);
    let server = match wire {
        Transport::Grpc => server.inbound(GrpcInbound::new(loopback())),
        _ => server.inbound(HttpInbound::new(loopback())),
    }
    .build()
    .unwrap();
    server.start().await.unwrap();
    let url = format!("http://{}", server.addr(wire).unwrap());
    let caller = Dispatcher::builder("test-caller").outbound_middleware(retry);
    let caller = match wire {
        Transport::Grpc => caller.outbound("test-service", GrpcOutbound::new(url).unwrap()),
        _ => caller.outbound("test-service", HttpOutbound::new(url).unwrap()),
    }
    .build()
    .unwrap();
    let config = caller.client_config("test-service").unwrap();
    Setup {
        server,
        client: Client::with_codec(config, RawCodec, Encoding::Raw),
    }
}

fn fast() -> RetryMiddleware {
    RetryMiddleware::new().initial_backoff(Duration::from_millis(5))
}

#[tokio::test]
async fn unavailable_twice_then_success_takes_three_attempts() {
    for wire in WIRES {
        let seen = Seen::default();
        let s = start(wire, flaky(Code::Unavailable, 2, &seen), fast()).await;
        let body = s.call(CallOptions::new()).await.unwrap();
        assert_eq!(&body[..], b"hello", "{wire:?}");
        assert_eq!(seen.attempts(), 3, "{wire:?}");
        s.stop().await;
    }
}

#[tokio::test]
async fn every_retryable_code_is_retried() {
    for wire in WIRES {
        for code in [
            Code::Unavailable,
            Code::ResourceExhausted,
            Code::Aborted,
            Code::Internal,
            Code::DeadlineExceeded,
        ] {
            let seen = Seen::default();
            let s = start(wire, flaky(code, 1, &seen), fast()).await;
            s.call(CallOptions::new())
                .await
                .unwrap_or_else(|e| panic!("{wire:?} {code}: {e}"));
            assert_eq!(seen.attempts(), 2, "{wire:?} {code}");
            s.stop().await;
        }
    }
}

#[tokio::test]
async fn non_retryable_code_is_tried_once() {
    for wire in WIRES {
        for code in [Code::InvalidArgument, Code::NotFound, Code::Unknown] {
            let seen = Seen::default();
            let s = start(wire, flaky(code, usize::MAX, &seen), fast()).await;
            let err = s.call(CallOptions::new()).await.unwrap_err();
            assert_eq!(err.code(), code, "{wire:?}: {err}");
            assert_eq!(seen.attempts(), 1, "{wire:?} {code}");
            s.stop().await;
        }
    }
}

#[tokio::test]
async fn attempts_exhausted_returns_the_last_error() {
    for wire in WIRES {
        let seen = Seen::default();
        let s = start(wire, flaky(Code::Unavailable, usize::MAX, &seen), fast()).await;
        let err = s.call(CallOptions::new()).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{wire:?}");
        assert_eq!(err.message(), "attempt 3 failed", "{wire:?}");
        assert_eq!(seen.attempts(), 3, "{wire:?}");
        s.stop().await;

        let seen = Seen::default();
        let retry = fast().max_attempts(5);
        let s = start(wire, flaky(Code::Aborted, usize::MAX, &seen), retry).await;
        let err = s.call(CallOptions::new()).await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::Aborted, "attempt 5 failed")
        );
        assert_eq!(seen.attempts(), 5, "{wire:?}");
        s.stop().await;
    }
}

#[tokio::test]
async fn a_ttl_shorter_than_the_backoff_stops_without_overrunning() {
    for wire in WIRES {
        // The first backoff (at least 100 ms with equal jitter) cannot fit in a 20 ms TTL: the call
        // fails after the one attempt with its error (or deadline-exceeded on a very slow machine).
        let seen = Seen::default();
        let retry = RetryMiddleware::new()
            .max_attempts(10)
            .initial_backoff(Duration::from_millis(200));
        let s = start(wire, flaky(Code::Unavailable, usize::MAX, &seen), retry).await;
        let options = CallOptions::new().ttl(Duration::from_millis(20));
        let err = s.call(options).await.unwrap_err();
        assert!(
            matches!(err.code(), Code::Unavailable | Code::DeadlineExceeded),
            "{wire:?}: {err}"
        );
        assert!(seen.attempts() <= 1, "{wire:?}: {}", seen.attempts());
        s.stop().await;

        // A backoff of 5 s or more does not fit in 2 s: the middleware does not sleep into the
        // deadline (which would end in deadline-exceeded) but returns the attempt's own error.
        let seen = Seen::default();
        let retry = RetryMiddleware::new()
            .initial_backoff(Duration::from_secs(10))
            .max_backoff(Duration::from_secs(10));
        let s = start(wire, flaky(Code::Unavailable, usize::MAX, &seen), retry).await;
        let err = s
            .call(CallOptions::new().ttl(Duration::from_secs(2)))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::Unavailable, "attempt 1 failed"),
            "{wire:?}"
        );
        assert_eq!(seen.attempts(), 1);
        s.stop().await;

        // Backoffs of at least 25, 50, 100, 200 and 400 ms: within 400 ms there is room for five
        // attempts at most, never the ten allowed. Each attempt is sent with what remains of the
        // TTL, so the TTLs the server sees shrink.
        let seen = Seen::default();
        let retry = RetryMiddleware::new().max_attempts(10);
        let s = start(wire, flaky(Code::Unavailable, usize::MAX, &seen), retry).await;
        let ttl = Duration::from_millis(400);
        let err = s.call(CallOptions::new().ttl(ttl)).await.unwrap_err();
        assert!(
            matches!(err.code(), Code::Unavailable | Code::DeadlineExceeded),
            "{wire:?}: {err}"
        );
        let attempts = seen.attempts();
        assert!((1..=5).contains(&attempts), "{wire:?}: {attempts} attempts");
        let ttls: Vec<Duration> = seen.ttls().into_iter().map(Option::unwrap).collect();
        assert!(ttls[0] <= ttl, "{wire:?}: {ttls:?}");
        assert!(ttls.windows(2).all(|w| w[1] < w[0]), "{wire:?}: {ttls:?}");
        s.stop().await;
    }
}

/// A budget allowing `left` retries in all.
struct Counted {
    left: AtomicI32,
    deposits: AtomicUsize,
}

impl Budget for Counted {
    fn deposit(&self) {
        self.deposits.fetch_add(1, Ordering::SeqCst);
    }

    fn withdraw(&self) -> bool {
        self.left.fetch_sub(1, Ordering::SeqCst) > 0
    }
}

#[tokio::test]
async fn an_exhausted_budget_stops_retrying() {
    for wire in WIRES {
        // A budget with no reserve and nothing per call allows no retry.
        let seen = Seen::default();
        let retry = fast().budget(Duration::from_secs(1), 0, 0.0);
        let s = start(wire, flaky(Code::Unavailable, usize::MAX, &seen), retry).await;
        let err = s.call(CallOptions::new()).await.unwrap_err();
        assert_eq!(err.message(), "attempt 1 failed", "{wire:?}");
        assert_eq!(seen.attempts(), 1, "{wire:?}");
        s.stop().await;

        // A shared budget of one retry: the first call retries once, the second not at all.
        let budget = Arc::new(Counted {
            left: AtomicI32::new(1),
            deposits: AtomicUsize::new(0),
        });
        let seen = Seen::default();
        let retry = fast().shared_budget(budget.clone());
        let s = start(wire, flaky(Code::Unavailable, usize::MAX, &seen), retry).await;
        let err = s.call(CallOptions::new()).await.unwrap_err();
        assert_eq!(err.message(), "attempt 2 failed", "{wire:?}");
        let err = s.call(CallOptions::new()).await.unwrap_err();
        assert_eq!(err.message(), "attempt 3 failed", "{wire:?}");
        assert_eq!(seen.attempts(), 3, "{wire:?}");
        assert_eq!(budget.deposits.load(Ordering::SeqCst), 2, "one per call");
        s.stop().await;
    }
}

#[tokio::test]
async fn should_retry_overrides_the_codes() {
    let seen = Seen::default();
    let retry = fast().should_retry(|e| e.code() == Code::NotFound);
    let s = start(Transport::Http, flaky(Code::NotFound, 1, &seen), retry).await;
    s.call(CallOptions::new()).await.unwrap();
    assert_eq!(seen.attempts(), 2);
    s.stop().await;

    let seen = Seen::default();
    let retry = fast().should_retry(|e| e.code() == Code::NotFound);
    let s = start(Transport::Grpc, flaky(Code::Unavailable, 1, &seen), retry).await;
    let err = s.call(CallOptions::new()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(seen.attempts(), 1);
    s.stop().await;
}

#[tokio::test]
async fn registered_inbound_it_does_nothing() {
    let seen = Seen::default();
    let server = Dispatcher::builder("test-service")
        .inbound(HttpInbound::new(loopback()))
        .register(flaky(Code::Unavailable, 1, &seen))
        .middleware(fast())
        .build()
        .unwrap();
    server.start().await.unwrap();
    let url = format!("http://{}", server.addr(Transport::Http).unwrap());
    let caller = Dispatcher::builder("test-caller")
        .outbound("test-service", HttpOutbound::new(url).unwrap())
        .build()
        .unwrap();
    let client = Client::with_codec(
        caller.client_config("test-service").unwrap(),
        RawCodec,
        Encoding::Raw,
    );
    let err = client
        .unary::<Bytes, Bytes>("flaky::Call", &Bytes::new(), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(seen.attempts(), 1);
    server.stop().await.unwrap();
}
