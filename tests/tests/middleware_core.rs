//! The middleware model over real sockets: tower layers applied unchanged, the order calls go
//! through global and per-procedure stacks, outbound middleware, introspection, build errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use omnirelay::codec::RawCodec;
use omnirelay::dispatcher::DispatcherBuilder;
use omnirelay::middleware::{Middleware, UnaryService};
use omnirelay::procedure::typed;
use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
use omnirelay::transport::http::{HttpInbound, HttpOutbound};
use omnirelay::{
    CallOptions, Client, Code, Dispatcher, Encoding, Error, ProcedureSpec, Request, Response,
    Transport,
};
use omnirelay_tests::loopback;
use tower::ServiceBuilder;
use tower::limit::ConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::timeout::TimeoutLayer;

/// A server built by `server` (inbounds added here), and a raw client for it over `transport`.
struct Pair {
    server: Dispatcher,
    caller: Dispatcher,
}

impl Pair {
    async fn start(
        transport: Transport,
        server: DispatcherBuilder,
        caller: impl FnOnce(DispatcherBuilder) -> DispatcherBuilder,
    ) -> Pair {
        let server = server
            .inbound(GrpcInbound::new(loopback()))
            .inbound(HttpInbound::new(loopback()))
            .build()
            .expect("valid server");
        server.start().await.expect("server starts");
        let addr = server.addr(transport).expect("bound");
        let builder = Dispatcher::builder("caller");
        let builder = match transport {
            Transport::Grpc => builder.outbound(
                "server",
                GrpcOutbound::new(format!("http://{addr}")).unwrap(),
            ),
            _ => builder.outbound(
                "server",
                HttpOutbound::new(format!("http://{addr}")).unwrap(),
            ),
        };
        let caller = caller(builder).build().expect("valid caller");
        Pair { server, caller }
    }

    fn client(&self) -> Client<RawCodec> {
        Client::with_codec(
            self.caller.client_config("server").unwrap(),
            RawCodec,
            Encoding::Raw,
        )
    }

    async fn stop(self) {
        self.server.stop().await.unwrap();
    }
}

async fn call(
    client: &Client<RawCodec>,
    procedure: &str,
    body: &'static str,
) -> omnirelay::Result<Bytes> {
    tokio::time::timeout(
        Duration::from_secs(10),
        client.unary::<Bytes, Bytes>(
            procedure,
            &Bytes::from_static(body.as_bytes()),
            CallOptions::new(),
        ),
    )
    .await
    .expect("the call answers")
    .map(Response::into_body)
}

fn echo(name: &str) -> ProcedureSpec {
    typed::unary(name, RawCodec, |r: Request<Bytes>| async move {
        Ok(Response::new(r.into_body()))
    })
}

/// A middleware that appends `name` to `log` before calling on.
fn recording(name: &'static str, log: &Arc<Mutex<Vec<String>>>) -> Middleware {
    let log = log.clone();
    Middleware::new(name).unary_with(move |target, inner: UnaryService| {
        let log = log.clone();
        let entry = format!(
            "{name}@{}:{}",
            target.direction.as_str(),
            target.procedure.unwrap_or(target.service)
        );
        UnaryService::around(inner, move |inner, request| {
            log.lock().unwrap().push(entry.clone());
            inner.invoke(request)
        })
    })
}

#[tokio::test]
async fn global_then_procedure_middleware_in_registration_order_on_both_transports() {
    for transport in [Transport::Grpc, Transport::Http] {
        let log = Arc::new(Mutex::new(Vec::new()));
        let server = Dispatcher::builder("server")
            .register(vec![echo("svc::A"), echo("svc::B")])
            .middleware(recording("g1", &log))
            .procedure_middleware("svc::A", recording("p1", &log))
            .middleware(recording("g2", &log))
            .procedure_middleware("svc::A", recording("p2", &log));
        let out_log = log.clone();
        let pair = Pair::start(transport, server, |b| {
            b.outbound_middleware(recording("o1", &out_log))
                .outbound_middleware_for("server", recording("o2", &out_log))
        })
        .await;
        let client = pair.client();
        assert_eq!(call(&client, "svc::A", "a").await.unwrap(), "a");
        assert_eq!(
            *log.lock().unwrap(),
            [
                "o1@outbound:server",
                "o2@outbound:server",
                "g1@inbound:svc::A",
                "g2@inbound:svc::A",
                "p1@inbound:svc::A",
                "p2@inbound:svc::A"
            ],
            "{transport:?}"
        );
        log.lock().unwrap().clear();
        assert_eq!(call(&client, "svc::B", "b").await.unwrap(), "b");
        assert_eq!(
            *log.lock().unwrap(),
            [
                "o1@outbound:server",
                "o2@outbound:server",
                "g1@inbound:svc::B",
                "g2@inbound:svc::B"
            ]
        );

        // Introspection lists each procedure's middleware, outermost first.
        let info = pair.server.introspect();
        let a = info
            .procedures
            .unary
            .iter()
            .find(|p| p.name == "svc::A")
            .unwrap();
        assert_eq!(a.middleware, ["g1", "g2", "p1", "p2"]);
        let b = info
            .procedures
            .unary
            .iter()
            .find(|p| p.name == "svc::B")
            .unwrap();
        assert_eq!(b.middleware, ["g1", "g2"]);
        let names: Vec<(&str, &str)> = info
            .middleware
            .iter()
            .map(|m| (m.name.as_str(), m.direction.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("g1", "inbound"),
                ("g2", "inbound"),
                ("p1", "inbound"),
                ("p2", "inbound")
            ]
        );
        let out: Vec<String> = pair
            .caller
            .introspect()
            .middleware
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(out, ["o1", "o2"]);
        pair.stop().await;
    }
}

#[tokio::test]
async fn introspection_over_http_shows_procedure_middleware() {
    let server = Dispatcher::builder("server")
        .register(echo("svc::A"))
        .middleware(Middleware::layer("limit", ConcurrencyLimitLayer::new(4)));
    let pair = Pair::start(Transport::Http, server, |b| b).await;
    let addr = pair.server.addr(Transport::Http).unwrap();
    let response = omnirelay_tests::raw_h1(
        addr,
        http::Request::get("/omnirelay/introspect")
            .header("host", "x")
            .body(Default::default())
            .unwrap(),
    )
    .await;
    let json: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    let unary = &json["procedures"]["unary"];
    let a = unary
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "svc::A")
        .unwrap();
    assert_eq!(a["middleware"], serde_json::json!(["limit"]));
    assert_eq!(
        json["middleware"],
        serde_json::json!([{"name": "limit", "direction": "inbound"}])
    );
    pair.stop().await;
}

/// A handler that counts how many calls run at once and waits for `release`.
fn gated(
    name: &str,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    release: Arc<tokio::sync::Semaphore>,
) -> ProcedureSpec {
    typed::unary(name, RawCodec, move |r: Request<Bytes>| {
        let (running, peak, release) = (running.clone(), peak.clone(), release.clone());
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let _permit = release
                .acquire()
                .await
                .map_err(|_| Error::internal("closed"))?;
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(Response::new(r.into_body()))
        }
    })
}

#[tokio::test]
async fn concurrency_limit_layer_applies_unchanged() {
    for transport in [Transport::Grpc, Transport::Http] {
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let server = Dispatcher::builder("server")
            .register(gated(
                "svc::Slow",
                running.clone(),
                peak.clone(),
                release.clone(),
            ))
            .middleware(Middleware::layer("limit", ConcurrencyLimitLayer::new(2)));
        let pair = Pair::start(transport, server, |b| b).await;
        let client = pair.client();
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move { call(&client, "svc::Slow", "x").await })
            })
            .collect();
        // Wait until two calls are inside the handler; the other four wait in the layer.
        tokio::time::timeout(Duration::from_secs(5), async {
            while running.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("two calls start");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(running.load(Ordering::SeqCst), 2, "{transport:?}");
        release.add_permits(6);
        for c in calls {
            assert_eq!(c.await.unwrap().unwrap(), "x");
        }
        assert_eq!(
            peak.load(Ordering::SeqCst),
            2,
            "never more than the limit at once"
        );
        pair.stop().await;
    }
}

#[tokio::test]
async fn load_shed_over_a_concurrency_limit_rejects_with_resource_exhausted() {
    for transport in [Transport::Grpc, Transport::Http] {
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let shed = ServiceBuilder::new()
            .layer(LoadShedLayer::new())
            .layer(ConcurrencyLimitLayer::new(1));
        let server = Dispatcher::builder("server")
            .register(gated(
                "svc::Slow",
                running.clone(),
                peak.clone(),
                release.clone(),
            ))
            .procedure_middleware("svc::Slow", Middleware::new("shed").unary(shed));
        let pair = Pair::start(transport, server, |b| b).await;
        let client = pair.client();
        let first = {
            let client = client.clone();
            tokio::spawn(async move { call(&client, "svc::Slow", "1").await })
        };
        tokio::time::timeout(Duration::from_secs(5), async {
            while running.load(Ordering::SeqCst) < 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the first call starts");
        let err = call(&client, "svc::Slow", "2").await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{transport:?}: {err}");
        release.add_permits(1);
        assert_eq!(first.await.unwrap().unwrap(), "1");
        // With the slot free again, the next call is served.
        release.add_permits(1);
        assert_eq!(call(&client, "svc::Slow", "3").await.unwrap(), "3");
        pair.stop().await;
    }
}

#[tokio::test]
async fn timeout_layer_becomes_deadline_exceeded_and_cancels_the_handler() {
    for transport in [Transport::Grpc, Transport::Http] {
        let dropped = Arc::new(AtomicUsize::new(0));
        let seen = dropped.clone();
        struct OnDrop(Arc<AtomicUsize>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let slow = typed::unary("svc::Slow", RawCodec, move |r: Request<Bytes>| {
            let guard = OnDrop(seen.clone());
            async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                drop(guard);
                Ok(Response::new(r.into_body()))
            }
        });
        let server = Dispatcher::builder("server")
            .register(vec![slow, echo("svc::Fast")])
            .middleware(
                Middleware::new("timeout").unary(TimeoutLayer::new(Duration::from_millis(100))),
            );
        let pair = Pair::start(transport, server, |b| b).await;
        let client = pair.client();
        let err = call(&client, "svc::Slow", "x").await.unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{transport:?}: {err}");
        assert_eq!(dropped.load(Ordering::SeqCst), 1, "the handler was dropped");
        assert_eq!(call(&client, "svc::Fast", "y").await.unwrap(), "y");
        pair.stop().await;
    }
}

#[tokio::test]
async fn outbound_layers_wrap_client_calls() {
    // A concurrency limit of one on the outbound serialises the caller's calls.
    let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let server = Dispatcher::builder("server").register(gated(
        "svc::Slow",
        running.clone(),
        peak.clone(),
        release.clone(),
    ));
    let pair = Pair::start(Transport::Grpc, server, |b| {
        b.outbound_middleware(Middleware::layer("limit", ConcurrencyLimitLayer::new(1)))
    })
    .await;
    let client = pair.client();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { call(&client, "svc::Slow", "x").await })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(5), async {
        while running.load(Ordering::SeqCst) < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    release.add_permits(3);
    for c in calls {
        assert_eq!(c.await.unwrap().unwrap(), "x");
    }
    assert_eq!(peak.load(Ordering::SeqCst), 1);
    pair.stop().await;
}

#[test]
fn middleware_for_unknown_procedures_or_outbounds_is_a_build_error() {
    let err = Dispatcher::builder("server")
        .register(echo("svc::A"))
        .procedure_middleware("svc::Missing", Middleware::new("m"))
        .build()
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("svc::Missing"), "{err}");
    let err = Dispatcher::builder("caller")
        .outbound_middleware_for("nowhere", Middleware::new("m"))
        .build()
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("nowhere"), "{err}");
}
