//! What dispatch and middleware cost per call, with no network: time (criterion) and heap
//! allocations (a counting global allocator).
//!
//! ```text
//! cargo bench -p omnirelay-runtime --bench middleware
//! ```
//!
//! Each call is what an inbound does once it has read a request: build the request (the same
//! in every variant), then
//! - `direct`: call the unary handler itself;
//! - `dispatch/none`: look the procedure up in the registry and call its pipeline, no middleware;
//! - `dispatch/five-layers-one-middleware`: the same with five no-op tower layers stacked with
//!   `tower::ServiceBuilder` inside one `Middleware`;
//! - `dispatch/five-middleware`: five no-op layers, each its own `Middleware`.
//!
//! Before criterion runs, the benchmark prints the heap allocations per call of each variant
//! (over 10,000 calls): dispatch itself (lookup plus pipeline) must add none over `direct`.

use std::alloc::System;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use omnirelay::middleware::{Middleware, Pipeline};
use omnirelay::procedure::{Handler, UnaryHandler};
use omnirelay::{Dispatcher, Encoding, ProcedureSpec, Request, RequestMeta, Response, Result};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, ServiceBuilder};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const PROCEDURE: &str = "bench.Echo::Echo";

/// A tower layer that does nothing: the cost of a layer boundary itself.
#[derive(Clone, Copy)]
struct Noop;

impl<S> Layer<S> for Noop {
    type Service = NoopService<S>;

    fn layer(&self, inner: S) -> NoopService<S> {
        NoopService(inner)
    }
}

#[derive(Clone)]
struct NoopService<S>(S);

impl<S: Service<R>, R> Service<R> for NoopService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.0.call(request)
    }
}

fn handler() -> Handler {
    Handler::unary(|request: Request<Bytes>| async move { Ok(Response::new(request.into_body())) })
}

fn dispatcher(middleware: Vec<Middleware>) -> Dispatcher {
    let spec = ProcedureSpec::new(PROCEDURE, &[Encoding::Raw], handler());
    middleware
        .into_iter()
        .fold(Dispatcher::builder("bench").register(spec), |b, m| {
            b.middleware(m)
        })
        .build()
        .expect("valid dispatcher")
}

fn request(meta: &RequestMeta, body: &Bytes) -> Request<Bytes> {
    Request::new(meta.clone(), body.clone())
}

/// Polls a future that never waits (every handler here answers at once).
fn run<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(value) => value,
        Poll::Pending => unreachable!("the benchmark's handlers never wait"),
    }
}

fn dispatch(dispatcher: &Dispatcher, request: Request<Bytes>) -> Result<Response<Bytes>> {
    let spec = dispatcher.registry().lookup(PROCEDURE).expect("registered");
    match spec.pipeline() {
        Pipeline::Unary(service) => run(service.invoke_inline(request)),
        _ => unreachable!("a unary procedure"),
    }
}

struct Variants {
    direct: std::sync::Arc<dyn UnaryHandler>,
    none: Dispatcher,
    one: Dispatcher,
    five: Dispatcher,
}

fn variants() -> Variants {
    let Handler::Unary(direct) = handler() else {
        unreachable!("a unary handler")
    };
    let stack = ServiceBuilder::new()
        .layer(Noop)
        .layer(Noop)
        .layer(Noop)
        .layer(Noop)
        .layer(Noop)
        .into_inner();
    Variants {
        direct,
        none: dispatcher(Vec::new()),
        one: dispatcher(vec![Middleware::layer("noop-x5", stack)]),
        five: dispatcher((0..5).map(|_| Middleware::layer("noop", Noop)).collect()),
    }
}

fn allocations_per_call(mut call: impl FnMut()) -> f64 {
    const CALLS: usize = 10_000;
    call(); // warm up: lazily built state is not a per-call cost
    let region = Region::new(GLOBAL);
    for _ in 0..CALLS {
        call();
    }
    region.change().allocations as f64 / CALLS as f64
}

fn report_allocations(v: &Variants, meta: &RequestMeta, body: &Bytes) {
    let baseline = allocations_per_call(|| {
        black_box(request(meta, body));
    });
    let direct = allocations_per_call(|| {
        black_box(run(v.direct.handle(request(meta, body))).unwrap());
    });
    println!("heap allocations per call (building the request: {baseline:.2}):");
    println!("  direct handler call                 {direct:.2}");
    for (name, d) in [
        ("dispatch, no middleware            ", &v.none),
        ("dispatch, 5 layers in 1 Middleware ", &v.one),
        ("dispatch, 5 layers as 5 Middleware ", &v.five),
    ] {
        let n = allocations_per_call(|| {
            black_box(dispatch(d, request(meta, body)).unwrap());
        });
        println!("  {name} {n:.2} ({:+.2} over direct)", n - direct);
    }
}

fn bench(c: &mut Criterion) {
    let v = variants();
    let meta = RequestMeta::new("caller", "bench", PROCEDURE);
    let body = Bytes::from_static(b"0123456789abcdef");
    report_allocations(&v, &meta, &body);

    let mut group = c.benchmark_group("unary");
    group.bench_function("direct", |b| {
        b.iter(|| run(v.direct.handle(request(&meta, &body))).unwrap())
    });
    group.bench_function("dispatch/none", |b| {
        b.iter(|| dispatch(&v.none, request(&meta, &body)).unwrap())
    });
    group.bench_function("dispatch/five-layers-one-middleware", |b| {
        b.iter(|| dispatch(&v.one, request(&meta, &body)).unwrap())
    });
    group.bench_function("dispatch/five-middleware", |b| {
        b.iter(|| dispatch(&v.five, request(&meta, &body)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
