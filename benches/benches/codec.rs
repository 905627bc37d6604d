//! Codec encode and decode of a `grpc.testing.SimpleRequest` carrying a 100-byte payload, in
//! protobuf (`ProtoCodec`) and proto3 JSON (`JsonCodec` over the pbjson impls).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use omnirelay::codec::{Codec, Encoding, JsonCodec, ProtoCodec};
use omnirelay_benches::omni_pb::{Payload, SimpleRequest};

fn request() -> SimpleRequest {
    SimpleRequest {
        response_size: 100,
        payload: Some(Payload {
            r#type: 0,
            body: vec![b'x'; 100],
        }),
        ..Default::default()
    }
}

fn codecs(c: &mut Criterion) {
    let message = request();
    let mut group = c.benchmark_group("codec");

    let proto = ProtoCodec
        .encode(Encoding::Proto, &message)
        .expect("encodes");
    group.bench_function("proto_encode", |b| {
        b.iter(|| ProtoCodec.encode(Encoding::Proto, black_box(&message)))
    });
    group.bench_function("proto_decode", |b| {
        b.iter(|| -> omnirelay::Result<SimpleRequest> {
            ProtoCodec.decode(Encoding::Proto, black_box(proto.clone()))
        })
    });

    let json = JsonCodec.encode(Encoding::Json, &message).expect("encodes");
    group.bench_function("json_encode", |b| {
        b.iter(|| JsonCodec.encode(Encoding::Json, black_box(&message)))
    });
    group.bench_function("json_decode", |b| {
        b.iter(|| -> omnirelay::Result<SimpleRequest> {
            JsonCodec.decode(Encoding::Json, black_box(json.clone()))
        })
    });
    group.finish();
}

criterion_group!(benches, codecs);
criterion_main!(benches);
