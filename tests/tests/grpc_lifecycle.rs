//! Deadlines, cancellation, panics, drain on stop, message size limits and registration
//! conflicts, over a real gRPC socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use omnirelay::codec::RawCodec;
use omnirelay::procedure::typed;
use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
use omnirelay::{
    CallOptions, Client, Code, Dispatcher, Encoding, ProcedureSpec, Request, Response, Streaming,
};
use omnirelay_tests::{Harness, loopback};

/// Sets its flag when dropped: proves a handler's future was cancelled.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn sleeper(name: &str, dropped: Arc<AtomicBool>, finished: Arc<AtomicBool>) -> ProcedureSpec {
    typed::unary(name, RawCodec, move |r: Request<Bytes>| {
        let (dropped, finished) = (dropped.clone(), finished.clone());
        async move {
            let _guard = DropFlag(dropped);
            let ms: u64 = std::str::from_utf8(&r.body).unwrap().parse().unwrap();
            tokio::time::sleep(Duration::from_millis(ms)).await;
            finished.store(true, Ordering::SeqCst);
            Ok(Response::new(r.body))
        }
    })
}

async fn eventually(flag: &AtomicBool) -> bool {
    for _ in 0..200 {
        if flag.load(Ordering::SeqCst) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

fn raw(h: &Harness) -> Client<RawCodec> {
    Client::with_codec(h.config(), RawCodec, Encoding::Raw)
}

#[tokio::test]
async fn the_deadline_cancels_the_handler_and_the_caller_gets_deadline_exceeded() {
    let (dropped, finished) = (Arc::default(), Arc::default());
    let h = Harness::start(sleeper(
        "slow::Sleep",
        Arc::clone(&dropped),
        Arc::clone(&finished),
    ))
    .await;
    let err = raw(&h)
        .unary::<Bytes, Bytes>(
            "slow::Sleep",
            &Bytes::from_static(b"5000"),
            CallOptions::new().ttl(Duration::from_millis(100)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert!(eventually(&dropped).await, "the handler was not cancelled");
    assert!(!finished.load(Ordering::SeqCst));

    // Within the deadline the same procedure succeeds.
    let ok = raw(&h)
        .unary::<Bytes, Bytes>(
            "slow::Sleep",
            &Bytes::from_static(b"1"),
            CallOptions::new().ttl(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(ok.body.as_ref(), b"1");
}

#[tokio::test]
async fn the_server_enforces_grpc_timeout_without_client_help() {
    // A raw client that sends grpc-timeout but does not time out itself.
    let (dropped, finished) = (Arc::default(), Arc::default());
    let h = Harness::start(sleeper("slow::Sleep", Arc::clone(&dropped), finished)).await;
    let request = http::Request::post(format!("http://{}/slow/Sleep", h.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("rpc-encoding", "raw")
        .header("grpc-timeout", "50m")
        .body(http_body_util::Full::new(omnirelay_tests::grpc_frame(
            b"5000",
        )))
        .unwrap();
    let response = omnirelay_tests::raw_h2(h.addr, request).await;
    assert_eq!(
        response.grpc_status(),
        Some(Code::DeadlineExceeded.as_i32())
    );
    assert!(eventually(&dropped).await);
}

#[tokio::test]
async fn a_dropped_call_cancels_the_handler() {
    let (dropped, finished) = (Arc::default(), Arc::default());
    let h = Harness::start(sleeper(
        "slow::Sleep",
        Arc::clone(&dropped),
        Arc::clone(&finished),
    ))
    .await;
    let client = raw(&h);
    let body = Bytes::from_static(b"5000");
    let call = client.unary::<Bytes, Bytes>("slow::Sleep", &body, CallOptions::new());
    assert!(
        tokio::time::timeout(Duration::from_millis(100), call)
            .await
            .is_err()
    );
    assert!(eventually(&dropped).await, "the handler was not cancelled");
    assert!(!finished.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_dropped_stream_cancels_the_handler_stream() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let endless = typed::server_stream("s::Endless", RawCodec, move |_r: Request<Bytes>| {
        let guard = DropFlag(flag.clone());
        async move {
            let stream = futures::stream::unfold(guard, |guard| async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Some((Ok(Bytes::from_static(b"tick")), guard))
            });
            Ok(Response::new(Streaming::new(stream)))
        }
    });
    let h = Harness::start(endless).await;
    let mut stream = raw(&h)
        .server_stream::<Bytes, Bytes>("s::Endless", &Bytes::new(), CallOptions::new())
        .await
        .unwrap()
        .into_body();
    for _ in 0..3 {
        assert_eq!(stream.message().await.unwrap().unwrap().as_ref(), b"tick");
    }
    drop(stream);
    assert!(
        eventually(&dropped).await,
        "the handler's stream was not dropped"
    );
}

#[tokio::test]
async fn a_stream_past_its_deadline_ends_with_deadline_exceeded() {
    let endless = typed::server_stream("s::Endless", RawCodec, |_r: Request<Bytes>| async {
        let stream = futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Some((Ok(Bytes::from_static(b"tick")), ()))
        });
        Ok(Response::new(Streaming::new(stream)))
    });
    let h = Harness::start(endless).await;
    let mut stream = raw(&h)
        .server_stream::<Bytes, Bytes>(
            "s::Endless",
            &Bytes::new(),
            CallOptions::new().ttl(Duration::from_millis(150)),
        )
        .await
        .unwrap()
        .into_body();
    let mut ticks = 0;
    let err = loop {
        match stream.message().await {
            Ok(Some(_)) => ticks += 1,
            Ok(None) => panic!("the stream ended without an error"),
            Err(err) => break err,
        }
    };
    assert!(ticks > 0);
    assert_eq!(err.code(), Code::DeadlineExceeded);
}

#[tokio::test]
async fn a_panicking_handler_is_internal_and_the_server_keeps_serving() {
    let panicking = typed::unary("p::Panic", RawCodec, |r: Request<Bytes>| async move {
        if r.body.is_empty() {
            panic!("handler bug");
        }
        Ok(Response::new(r.body))
    });
    let h = Harness::start(panicking).await;
    let err = raw(&h)
        .unary::<Bytes, Bytes>("p::Panic", &Bytes::new(), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    let ok = raw(&h)
        .unary::<Bytes, Bytes>("p::Panic", &Bytes::from_static(b"fine"), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(ok.body.as_ref(), b"fine");
}

#[tokio::test]
async fn stop_drains_in_flight_calls_then_refuses_new_ones() {
    let (dropped, finished) = (Arc::default(), Arc::new(AtomicBool::new(false)));
    let h = Harness::start(sleeper("slow::Sleep", dropped, Arc::clone(&finished))).await;
    let client = raw(&h);
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .unary::<Bytes, Bytes>(
                    "slow::Sleep",
                    &Bytes::from_static(b"300"),
                    CallOptions::new(),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.server.stop().await.unwrap();
    // stop() returned only after the in-flight call finished, and it succeeded.
    assert!(finished.load(Ordering::SeqCst));
    let done = in_flight.await.unwrap().unwrap();
    assert_eq!(done.body.as_ref(), b"300");
    assert_eq!(h.server.status(), omnirelay::dispatcher::Status::Stopped);

    let err = client
        .unary::<Bytes, Bytes>("slow::Sleep", &Bytes::from_static(b"1"), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
}

fn echo_bytes() -> ProcedureSpec {
    typed::unary("big::Echo", RawCodec, |r: Request<Bytes>| async move {
        let n: usize = std::str::from_utf8(&r.body[..r.body.len().min(16)])
            .ok()
            .and_then(|s| s.trim_end_matches('x').parse().ok())
            .unwrap_or(0);
        if n > 0 {
            return Ok(Response::new(Bytes::from(vec![b'y'; n])));
        }
        Ok(Response::new(Bytes::from(r.body.len().to_string())))
    })
}

#[tokio::test]
async fn messages_over_the_limit_are_resource_exhausted_naming_it() {
    const LIMIT: usize = 4 * 1024 * 1024;
    // The client may send more than the server accepts.
    let h = Harness::start_with(
        GrpcInbound::new(loopback()),
        |uri| Ok(GrpcOutbound::new(uri)?.max_send_message_size(64 * 1024 * 1024)),
        echo_bytes(),
    )
    .await;
    let client = raw(&h);
    let at_limit = Bytes::from(vec![b'x'; LIMIT]);
    let ok = client
        .unary::<Bytes, Bytes>("big::Echo", &at_limit, CallOptions::new())
        .await
        .unwrap();
    assert_eq!(ok.body.as_ref(), LIMIT.to_string().as_bytes());

    let over = Bytes::from(vec![b'x'; LIMIT + 1]);
    let err = client
        .unary::<Bytes, Bytes>("big::Echo", &over, CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains(&LIMIT.to_string()), "{err}");

    // The server refuses to send a response over its limit.
    let ask = Bytes::from(format!("{}", LIMIT + 1));
    let err = client
        .unary::<Bytes, Bytes>("big::Echo", &ask, CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains(&LIMIT.to_string()), "{err}");

    // A default client refuses to send over 4 MiB itself.
    let strict = Client::with_codec(
        omnirelay::ClientConfig::new(
            "test-caller",
            "test-service",
            Arc::new(GrpcOutbound::new(format!("http://{}", h.addr)).unwrap()),
        ),
        RawCodec,
        Encoding::Raw,
    );
    let err = strict
        .unary::<Bytes, Bytes>("big::Echo", &over, CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains(&LIMIT.to_string()), "{err}");
}

#[tokio::test]
async fn limits_are_configurable_and_apply_to_responses_a_client_receives() {
    let h = Harness::start_with(
        GrpcInbound::new(loopback())
            .max_recv_message_size(1024)
            .max_send_message_size(64 * 1024 * 1024),
        |uri| Ok(GrpcOutbound::new(uri)?.max_recv_message_size(2048)),
        echo_bytes(),
    )
    .await;
    let client = raw(&h);
    let err = client
        .unary::<Bytes, Bytes>(
            "big::Echo",
            &Bytes::from(vec![b'x'; 1025]),
            CallOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("1024"), "{err}");
    let err = client
        .unary::<Bytes, Bytes>(
            "big::Echo",
            &Bytes::from_static(b"4096"),
            CallOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("2048"), "{err}");
}

#[tokio::test]
async fn duplicate_names_are_registration_errors_naming_both() {
    let spec = |name: &str| {
        typed::unary(name, RawCodec, |r: Request<Bytes>| async move {
            Ok(Response::new(r.body))
        })
    };
    let err = Dispatcher::builder("svc")
        .register(spec("a::One").with_alias("a::Same"))
        .register(spec("a::Same"))
        .build()
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("a::One") && err.message().contains("a::Same"),
        "{err}"
    );
}

#[tokio::test]
async fn concurrent_calls_share_one_connection() {
    let counter = Arc::new(AtomicUsize::new(0));
    let seen = counter.clone();
    let counting = typed::unary("c::Count", RawCodec, move |r: Request<Bytes>| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move { Ok(Response::new(r.body)) }
    });
    let h = Harness::start(counting).await;
    let client = raw(&h);
    let calls = (0..200).map(|i| {
        let client = client.clone();
        async move {
            let body = Bytes::from(i.to_string());
            let r = client
                .unary::<Bytes, Bytes>("c::Count", &body, CallOptions::new())
                .await
                .unwrap();
            assert_eq!(r.body, body);
        }
    });
    futures::future::join_all(calls).await;
    assert_eq!(counter.load(Ordering::SeqCst), 200);
}

#[tokio::test]
async fn dropping_a_duplex_response_cancels_the_call_while_requests_are_open() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let echo = typed::duplex("d::Echo", RawCodec, move |r: Request<Streaming<Bytes>>| {
        let guard = DropFlag(flag.clone());
        async move {
            let requests = r.into_body();
            let stream =
                futures::stream::unfold((requests, guard), |(mut requests, guard)| async move {
                    let item = requests.message().await.transpose()?;
                    Some((item, (requests, guard)))
                });
            Ok(Response::new(Streaming::new(stream)))
        }
    });
    let h = Harness::start(echo).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let mut responses = raw(&h)
        .duplex::<Bytes, Bytes>(
            "d::Echo",
            tokio_stream::wrappers::ReceiverStream::new(rx),
            CallOptions::new(),
        )
        .await
        .unwrap()
        .into_body();
    tx.send(Bytes::from_static(b"one")).await.unwrap();
    assert_eq!(responses.message().await.unwrap().unwrap().as_ref(), b"one");
    // Drop the responses but keep the request sender open: the call must still be reset.
    drop(responses);
    assert!(
        eventually(&dropped).await,
        "the server never saw the cancellation"
    );
    drop(tx);
}

/// The `unavailable` answers a drain gives new calls are counted in flight only until they are
/// sent: a burst of them on a connection does not hold the stop past the in-flight call.
#[tokio::test]
async fn draining_answers_do_not_hold_up_the_stop() {
    let (dropped, finished) = (Arc::default(), Arc::new(AtomicBool::new(false)));
    let h = Harness::start_with(
        GrpcInbound::new(loopback()).drain_timeout(Duration::from_secs(30)),
        GrpcOutbound::new,
        sleeper("slow::Sleep", dropped, Arc::clone(&finished)),
    )
    .await;
    let client = raw(&h);
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .unary::<Bytes, Bytes>(
                    "slow::Sleep",
                    &Bytes::from_static(b"300"),
                    CallOptions::new(),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let server = Arc::new(h.server);
    let stop = {
        let server = server.clone();
        tokio::spawn(async move { server.stop().await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut refused = 0;
    for _ in 0..20 {
        match client
            .unary::<Bytes, Bytes>("slow::Sleep", &Bytes::from_static(b"1"), CallOptions::new())
            .await
        {
            Err(err) if err.code() == Code::Unavailable => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(refused, 20);
    tokio::time::timeout(Duration::from_secs(5), stop)
        .await
        .expect("the stop ends with the in-flight call, not the 30 s drain timeout")
        .unwrap()
        .unwrap();
    assert!(finished.load(Ordering::SeqCst));
    assert_eq!(in_flight.await.unwrap().unwrap().body.as_ref(), b"300");
}
