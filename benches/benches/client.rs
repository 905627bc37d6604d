//! The generated client's call overhead over an in-memory transport: `TestServiceClient` calls
//! through [`InMemory`], an `Outbound` that looks the procedure up in a `Registry` and calls its
//! handler directly. Baselines: the byte-level handler alone (registry lookup plus handler with
//! the procedure's decode/encode), and the service trait method alone.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use omnirelay::procedure::{BoxFuture, Handler, Registry};
use omnirelay::stream::ByteStream;
use omnirelay::{
    ClientConfig, Error, IntoProcedures, Outbound, Request, RequestMeta, Response, Transport,
};
use omnirelay_benches::omni_pb::{
    Empty, Payload, SimpleRequest, TestService, TestServiceClient, TestServiceProcedures,
};
use omnirelay_benches::servers::OmniTestService;

/// An in-process outbound: finds the procedure in a registry and calls its handler.
struct InMemory {
    registry: Arc<Registry>,
}

impl InMemory {
    fn handler(&self, procedure: &str) -> omnirelay::Result<&Handler> {
        self.registry
            .lookup(procedure)
            .map(|spec| spec.handler())
            .ok_or_else(|| Error::unimplemented(format!("no procedure {procedure:?}")))
    }
}

fn wrong_shape<T: Send + 'static>() -> BoxFuture<omnirelay::Result<T>> {
    Box::pin(async {
        Err(Error::unimplemented(
            "the in-memory bench transport is unary only",
        ))
    })
}

impl Outbound for InMemory {
    fn transport(&self) -> Transport {
        Transport::InProcess
    }

    fn unary(&self, request: Request<Bytes>) -> BoxFuture<omnirelay::Result<Response<Bytes>>> {
        match self.handler(&request.meta.procedure) {
            Ok(Handler::Unary(h)) => h.handle(request),
            Ok(_) => wrong_shape(),
            Err(err) => Box::pin(async move { Err(err) }),
        }
    }

    fn oneway(&self, _request: Request<Bytes>) -> BoxFuture<omnirelay::Result<()>> {
        wrong_shape()
    }

    fn server_stream(
        &self,
        _request: Request<Bytes>,
    ) -> BoxFuture<omnirelay::Result<Response<ByteStream>>> {
        wrong_shape()
    }

    fn client_stream(
        &self,
        _request: Request<ByteStream>,
    ) -> BoxFuture<omnirelay::Result<Response<Bytes>>> {
        wrong_shape()
    }

    fn duplex(
        &self,
        _request: Request<ByteStream>,
    ) -> BoxFuture<omnirelay::Result<Response<ByteStream>>> {
        wrong_shape()
    }
}

fn unary_request() -> SimpleRequest {
    SimpleRequest {
        response_size: 100,
        payload: Some(Payload {
            r#type: 0,
            body: vec![b'x'; 100],
        }),
        ..Default::default()
    }
}

fn calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut registry = Registry::new();
    for spec in TestServiceProcedures::new(OmniTestService).into_procedures() {
        registry.register(spec).expect("unique");
    }
    let registry = Arc::new(registry);
    let outbound = Arc::new(InMemory {
        registry: registry.clone(),
    });
    let client = TestServiceClient::new(ClientConfig::new("bench-client", "bench", outbound));
    let request = unary_request();
    let reply = rt
        .block_on(client.unary_call(request.clone()))
        .expect("in-memory call");
    assert_eq!(reply.body.payload.map(|p| p.body.len()), Some(100));

    let mut group = c.benchmark_group("client");
    group.bench_function("generated_client_empty_call", |b| {
        b.iter(|| rt.block_on(client.empty_call(Empty {})))
    });
    group.bench_function("generated_client_unary_call_100B", |b| {
        b.iter(|| rt.block_on(client.unary_call(black_box(request.clone()))))
    });

    // Baseline 1: the byte-level handler, as an inbound calls it (lookup, decode, handle, encode).
    let encoded = Bytes::from(prost::Message::encode_to_vec(&request));
    group.bench_function("handler_only_unary_call_100B", |b| {
        b.iter(|| {
            let meta = RequestMeta::new(
                "bench-client",
                "bench",
                "grpc.testing.TestService::UnaryCall",
            );
            let Some(Handler::Unary(h)) = registry
                .lookup(&meta.procedure)
                .map(|spec| spec.handler().clone())
            else {
                unreachable!("UnaryCall is unary");
            };
            rt.block_on(h.handle(Request::new(meta, black_box(encoded.clone()))))
        })
    });

    // Baseline 2: the service method itself.
    group.bench_function("service_only_unary_call_100B", |b| {
        b.iter(|| {
            let meta = RequestMeta::new(
                "bench-client",
                "bench",
                "grpc.testing.TestService::UnaryCall",
            );
            rt.block_on(OmniTestService.unary_call(Request::new(meta, black_box(request.clone()))))
        })
    });
    group.finish();
}

criterion_group!(benches, calls);
criterion_main!(benches);
