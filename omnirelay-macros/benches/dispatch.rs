//! Per-call cost of a `#[procedure]` against a hand-written `Procedure` implementation, measured
//! in one run: each call is what an inbound does once it has read a request, a registry lookup by
//! name plus the handler's `handle` (decode, run, encode), with no network.
//!
//! ```text
//! cargo bench -p omnirelay-macros --bench dispatch
//! ```
//!
//! Both sides build their spec through `omnirelay::procedure::typed::unary`, so the expectation is
//! equal cost within noise; the benchmark is there to show that the macro adds nothing per call.
//!
//! Besides criterion's groups (`unary_json`, `unary_raw`: macro, then hand-written), the run
//! prints a paired comparison that alternates short batches of the two for each encoding and
//! reports the median per-call time of each and the median of the per-round ratios: on a loaded
//! machine, drift in background load hits both sides of a round alike, so the ratio stays
//! meaningful when the absolute criterion figures wander.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use omnirelay::codec::{Encoding, JsonCodec, RawCodec};
use omnirelay::procedure::{Handler, Kind, Registry, spec_of, typed};
use omnirelay::{Procedure, ProcedureSpec, Request, RequestMeta, Response, Result};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Point {
    x: i64,
    y: i64,
}

/// JSON, written with the macro.
#[omnirelay::procedure(encoding = "json", name = "bench::json_macro")]
async fn json_macro(request: Request<Point>) -> Result<Response<Point>> {
    let Point { x, y } = request.into_body();
    Ok(Response::new(Point { x: y, y: x }))
}

/// JSON, the same handler with a hand-written `Procedure` implementation.
struct JsonByHand;

async fn swap(request: Request<Point>) -> Result<Response<Point>> {
    let Point { x, y } = request.into_body();
    Ok(Response::new(Point { x: y, y: x }))
}

impl Procedure for JsonByHand {
    const NAME: &'static str = "bench::json_hand";
    const KIND: Kind = Kind::Unary;
    const ENCODINGS: &'static [Encoding] = &[Encoding::Json];
    const ALIASES: &'static [&'static str] = &[];

    fn into_spec(self) -> ProcedureSpec {
        typed::unary(Self::NAME, JsonCodec, swap)
    }
}

/// Raw bytes, written with the macro.
#[omnirelay::procedure(encoding = "raw", name = "bench::raw_macro")]
async fn raw_macro(request: Request<Bytes>) -> Result<Response<Bytes>> {
    Ok(Response::new(request.into_body()))
}

/// Raw bytes, by hand.
struct RawByHand;

async fn echo(request: Request<Bytes>) -> Result<Response<Bytes>> {
    Ok(Response::new(request.into_body()))
}

impl Procedure for RawByHand {
    const NAME: &'static str = "bench::raw_hand";
    const KIND: Kind = Kind::Unary;
    const ENCODINGS: &'static [Encoding] = &[Encoding::Raw];
    const ALIASES: &'static [&'static str] = &[];

    fn into_spec(self) -> ProcedureSpec {
        typed::unary(Self::NAME, RawCodec, echo)
    }
}

/// Runs a future that completes without waiting (every handler here does).
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the benchmarked handlers never wait"),
    }
}

/// One call as an inbound makes it: look the procedure up, then handle the request.
fn call(registry: &Registry, meta: &RequestMeta, body: &Bytes) -> Bytes {
    let spec = registry.lookup(&meta.procedure).expect("registered");
    let Handler::Unary(handler) = spec.handler() else {
        unreachable!("unary procedures only");
    };
    let request = Request::new(meta.clone(), body.clone());
    now(handler.handle(request)).expect("handled").into_body()
}

fn meta(procedure: &str, encoding: Encoding) -> RequestMeta {
    let mut meta = RequestMeta::new("bench-caller", "bench", procedure);
    meta.encoding = encoding;
    meta
}

fn per_call(c: &mut Criterion) {
    let mut registry = Registry::new();
    for spec in [
        spec_of(json_macro),
        spec_of(JsonByHand),
        spec_of(raw_macro),
        spec_of(RawByHand),
    ] {
        registry.register(spec).expect("distinct names");
    }

    let point = Bytes::from_static(br#"{"x":1,"y":2}"#);
    let mut json = c.benchmark_group("unary_json");
    for (label, name) in [
        ("macro", json_macro::NAME),
        ("hand_written", JsonByHand::NAME),
    ] {
        let meta = meta(name, Encoding::Json);
        assert_eq!(call(&registry, &meta, &point).as_ref(), br#"{"x":2,"y":1}"#);
        json.bench_function(label, |b| {
            b.iter(|| call(black_box(&registry), black_box(&meta), black_box(&point)))
        });
    }
    json.finish();

    let payload = Bytes::from_static(&[7; 64]);
    let mut raw = c.benchmark_group("unary_raw");
    for (label, name) in [
        ("macro", raw_macro::NAME),
        ("hand_written", RawByHand::NAME),
    ] {
        let meta = meta(name, Encoding::Raw);
        assert_eq!(call(&registry, &meta, &payload), payload);
        raw.bench_function(label, |b| {
            b.iter(|| call(black_box(&registry), black_box(&meta), black_box(&payload)))
        });
    }
    raw.finish();
}

/// Alternates batches of `a` and `b`; returns the median ns per call of each and the median and
/// quartiles of the per-round ratio a/b.
fn paired(mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64, [f64; 3]) {
    const ROUNDS: usize = 301;
    const BATCH: u32 = 2_000;
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..BATCH {
            f();
        }
        start.elapsed().as_nanos() as f64 / f64::from(BATCH)
    };
    let (mut ta, mut tb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternate which side goes first, so neither always runs on a warmer cache.
        let (x, y) = if round % 2 == 0 {
            let x = time(&mut a);
            (x, time(&mut b))
        } else {
            let y = time(&mut b);
            (time(&mut a), y)
        };
        ta.push(x);
        tb.push(y);
        ratios.push(x / y);
    }
    let median = |v: &mut Vec<f64>, q: usize| {
        v.sort_by(f64::total_cmp);
        v[(v.len() - 1) * q / 4]
    };
    let ratio_quartiles = [
        median(&mut ratios, 1),
        median(&mut ratios, 2),
        median(&mut ratios, 3),
    ];
    (median(&mut ta, 2), median(&mut tb, 2), ratio_quartiles)
}

fn paired_comparison(_: &mut Criterion) {
    let mut registry = Registry::new();
    for spec in [
        spec_of(json_macro),
        spec_of(JsonByHand),
        spec_of(raw_macro),
        spec_of(RawByHand),
    ] {
        registry.register(spec).expect("distinct names");
    }
    let point = Bytes::from_static(br#"{"x":1,"y":2}"#);
    let payload = Bytes::from_static(&[7; 64]);
    let cases = [
        (
            "json",
            json_macro::NAME,
            JsonByHand::NAME,
            Encoding::Json,
            &point,
        ),
        (
            "raw",
            raw_macro::NAME,
            RawByHand::NAME,
            Encoding::Raw,
            &payload,
        ),
    ];
    for (label, by_macro, by_hand, encoding, body) in cases {
        let (macro_meta, hand_meta) = (meta(by_macro, encoding), meta(by_hand, encoding));
        let (m, h, [q1, q2, q3]) = paired(
            || {
                black_box(call(black_box(&registry), &macro_meta, body));
            },
            || {
                black_box(call(black_box(&registry), &hand_meta, body));
            },
        );
        println!(
            "paired unary_{label}: macro {m:.1} ns/call, hand-written {h:.1} ns/call, \
             ratio macro/hand median {q2:.3} (quartiles {q1:.3} .. {q3:.3})"
        );
    }
}

criterion_group!(benches, per_call, paired_comparison);
criterion_main!(benches);
