//! Registry lookups: an exact name, an alias and a wildcard pattern, among 64 registered
//! procedures (plus the gRPC path lookup the gRPC inbound does per call).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use omnirelay::codec::Encoding;
use omnirelay::procedure::{Handler, Registry};
use omnirelay::{ProcedureSpec, Request, Response};

fn spec(name: &str) -> ProcedureSpec {
    ProcedureSpec::new(
        name,
        &[Encoding::Raw],
        Handler::unary(|req: Request<Bytes>| async move { Ok(Response::new(req.body)) }),
    )
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    for i in 0..60 {
        let name = format!("bench.v1.Service{}::Method{}", i / 6, i % 6);
        let alias = format!("legacy-method-{i}");
        registry
            .register(spec(&name).with_alias(alias))
            .expect("unique names");
    }
    for (i, pattern) in ["other.*", "bench.v2.*::Get?", "bench.v3.*", "*::Health"]
        .iter()
        .enumerate()
    {
        registry
            .register(spec(&format!("wildcard-{i}")).with_alias(*pattern))
            .expect("unique patterns");
    }
    registry
}

fn lookups(c: &mut Criterion) {
    let registry = registry();
    let mut group = c.benchmark_group("registry");
    let cases = [
        ("exact", "bench.v1.Service7::Method3"),
        ("alias", "legacy-method-45"),
        ("wildcard", "bench.v3.Service::Method"),
        ("miss", "nothing.Here::At"),
    ];
    for (label, name) in cases {
        assert_eq!(registry.lookup(name).is_some(), label != "miss", "{label}");
        group.bench_function(label, |b| {
            b.iter(|| registry.lookup(black_box(name)).is_some())
        });
    }
    let path = "/bench.v1.Service7/Method3";
    assert!(registry.lookup_grpc_path(path).is_some());
    group.bench_function("grpc_path", |b| {
        b.iter(|| registry.lookup_grpc_path(black_box(path)).is_some())
    });
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
