//! Calls of every shape over YARPC-HTTP through the generated client and the generic client, with
//! OmniRelay's own HTTP outbound over real sockets: encodings, metadata both ways, error codes,
//! oneway, deadlines, cancellation, limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use omnirelay::codec::RawCodec;
use omnirelay::procedure::{Handler, typed};
use omnirelay::transport::http::{HttpInbound, HttpOutbound};
use omnirelay::{
    CallOptions, Client, Code, Encoding, Error, ProcedureSpec, Request, Response, Streaming,
};
use omnirelay_examples::EchoService;
use omnirelay_examples::echo::{EchoClient, EchoProcedures, EchoRequest};
use omnirelay_tests::{HttpHarness, loopback};

fn req(message: &str, repeat: u32) -> EchoRequest {
    EchoRequest {
        message: message.into(),
        repeat,
    }
}

async fn all_shapes(client: &EchoClient) {
    let unary = client.echo(req("hi", 0)).await.unwrap();
    assert_eq!(unary.body.message, "hi");

    let mut stream = client.expand(req("x", 5)).await.unwrap().into_body();
    let mut indexes = Vec::new();
    while let Some(r) = stream.message().await.unwrap() {
        assert_eq!(r.message, "x");
        indexes.push(r.index);
    }
    assert_eq!(indexes, vec![0, 1, 2, 3, 4]);

    let words = futures::stream::iter(["a", "b", "c"].map(|w| req(w, 0)));
    let collected = client.collect(words).await.unwrap();
    assert_eq!(collected.body.message, "a b c");
    assert_eq!(collected.body.index, 3);

    // Duplex, interleaved: each reply arrives before the next request is sent.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut replies = client
        .chat(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_body();
    for (i, word) in ["ping", "pong", "pang"].iter().enumerate() {
        tx.send(req(word, 0)).await.unwrap();
        let reply = replies.message().await.unwrap().unwrap();
        assert_eq!((reply.message.as_str(), reply.index), (*word, i as u32));
    }
    drop(tx);
    assert!(replies.message().await.unwrap().is_none());

    // Empty streams both ways.
    let empty = client.collect(futures::stream::empty()).await.unwrap();
    assert_eq!(empty.body.index, 0);
    let mut none = client
        .chat(futures::stream::empty())
        .await
        .unwrap()
        .into_body();
    assert!(none.message().await.unwrap().is_none());
    let mut none = client.expand(req("x", 0)).await.unwrap().into_body();
    assert!(none.message().await.unwrap().is_none());
}

#[tokio::test]
async fn every_shape_in_proto_and_json_over_http1_and_h2c() {
    let h = HttpHarness::start(EchoProcedures::new(EchoService)).await;
    all_shapes(&EchoClient::new(h.config())).await;
    all_shapes(&EchoClient::new(h.config()).with_encoding(Encoding::Json)).await;

    let h2 = HttpHarness::start_with(
        HttpInbound::new(loopback()),
        |url| HttpOutbound::new(url).map(HttpOutbound::http2_prior_knowledge),
        EchoProcedures::new(EchoService),
    )
    .await;
    all_shapes(&EchoClient::new(h2.config())).await;
    all_shapes(&EchoClient::new(h2.config()).with_encoding(Encoding::Json)).await;
    h.server.stop().await.unwrap();
    h2.server.stop().await.unwrap();
}

/// Echoes the request's metadata as JSON, and its application headers as response headers and
/// trailers (`t-` prefixed).
fn meta_echo() -> ProcedureSpec {
    typed::unary("meta::Echo", RawCodec, |r: Request<Bytes>| async move {
        let m = r.meta();
        let headers: serde_json::Map<String, serde_json::Value> = m
            .headers
            .iter()
            .map(|(k, v)| (k.to_owned(), String::from_utf8_lossy(v).into()))
            .collect();
        let body = serde_json::json!({
            "caller": m.caller, "service": m.service, "procedure": m.procedure,
            "encoding": m.encoding.as_str(), "transport": m.transport.as_str(),
            "ttl": m.ttl.map(|t| t.as_millis() as u64),
            "shardKey": m.shard_key, "routingKey": m.routing_key,
            "routingDelegate": m.routing_delegate, "callerProcedure": m.caller_procedure,
            "headers": headers,
        });
        let mut response = Response::new(Bytes::from(body.to_string()));
        for (k, v) in m.headers.iter() {
            response = response
                .with_header(k, v.clone())
                .with_trailer(format!("t-{k}"), v.clone());
        }
        Ok(response)
    })
}

#[tokio::test]
async fn request_metadata_and_application_headers_cross_both_ways() {
    let h = HttpHarness::start(meta_echo()).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    let mut options = CallOptions::new()
        .ttl(Duration::from_secs(5))
        .header("X-Mixed-Case", "Value Kept")
        .header("empty", "")
        .header("rpc-procedure", "an app header, not the procedure")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .shard_key("shard-1")
        .routing_key("rk")
        .routing_delegate("rd");
    options.caller_procedure = Some("caller::Proc".into());
    let response = client
        .unary::<Bytes, Bytes>("meta::Echo", &Bytes::new(), options)
        .await
        .unwrap();
    let seen: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(seen["caller"], "test-caller");
    assert_eq!(seen["service"], "test-service");
    assert_eq!(seen["procedure"], "meta::Echo");
    assert_eq!(seen["encoding"], "raw");
    assert_eq!(seen["transport"], "http");
    let ttl = seen["ttl"].as_u64().unwrap();
    assert!((4000..=5000).contains(&ttl), "{ttl}");
    assert_eq!(seen["shardKey"], "shard-1");
    assert_eq!(seen["routingKey"], "rk");
    assert_eq!(seen["routingDelegate"], "rd");
    assert_eq!(seen["callerProcedure"], "caller::Proc");
    let headers = seen["headers"].as_object().unwrap();
    assert_eq!(headers["x-mixed-case"], "Value Kept");
    assert_eq!(headers["empty"], "");
    assert_eq!(headers["rpc-procedure"], "an app header, not the procedure");
    assert!(
        headers["traceparent"]
            .as_str()
            .unwrap()
            .starts_with("00-0af7")
    );
    assert_eq!(headers.len(), 4, "{headers:?}");
    // Response headers come back; unary trailers arrive as headers over HTTP.
    let back = &response.meta.headers;
    assert_eq!(back.get_str("x-mixed-case"), Some("Value Kept"));
    assert_eq!(back.get_str("t-x-mixed-case"), Some("Value Kept"));
    assert_eq!(back.get_str("empty"), Some(""));
    assert!(response.meta.trailers.is_empty());
}

#[tokio::test]
async fn binary_header_values_and_bad_ones() {
    let h = HttpHarness::start(meta_echo()).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    let options = CallOptions::new().header("x-bin", Bytes::from_static(&[0xab, 0xcd, 0xef]));
    let response = client
        .unary::<Bytes, Bytes>("meta::Echo", &Bytes::new(), options)
        .await
        .unwrap();
    assert_eq!(
        response.meta.headers.get("x-bin").unwrap().as_ref(),
        &[0xab, 0xcd, 0xef]
    );
    // Control characters cannot cross HTTP: a local invalid-argument naming the header.
    let options = CallOptions::new().header("x-bad", "line\r\nbreak");
    let err = client
        .unary::<Bytes, Bytes>("meta::Echo", &Bytes::new(), options)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("x-bad"), "{err}");
}

fn failing(code: Code) -> ProcedureSpec {
    typed::unary(
        format!("fail::{}", code.as_str()),
        RawCodec,
        move |_r: Request<Bytes>| async move {
            Err::<Response<Bytes>, _>(Error::new(
                code,
                format!("it failed: {code}\nsecond line ☺"),
            ))
        },
    )
}

#[tokio::test]
async fn every_error_code_and_message_round_trips() {
    let codes: Vec<Code> = Code::ALL.into_iter().filter(|c| *c != Code::Ok).collect();
    let h = HttpHarness::start(codes.iter().map(|c| failing(*c)).collect::<Vec<_>>()).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    for code in codes {
        let err = client
            .unary::<Bytes, Bytes>(
                &format!("fail::{}", code.as_str()),
                &Bytes::new(),
                CallOptions::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        assert_eq!(err.message(), format!("it failed: {code}\nsecond line ☺"));
    }
}

#[tokio::test]
async fn oneway_is_acknowledged_then_run() {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Bytes)>(1);
    let spec = typed::oneway("log::Write", RawCodec, move |r: Request<Bytes>| {
        let tx = tx.clone();
        async move {
            // The acknowledgement does not wait for this.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let caller = r.meta().caller.clone();
            let _ = tx.send((caller.to_string(), r.into_body())).await;
            Ok(())
        }
    });
    let h = HttpHarness::start(spec).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    let started = std::time::Instant::now();
    client
        .oneway(
            "log::Write",
            &Bytes::from_static(b"entry"),
            CallOptions::new(),
        )
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(100));
    let (caller, body) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (caller.as_str(), body.as_ref()),
        ("test-caller", &b"entry"[..])
    );
}

fn sleeper(dropped: Arc<AtomicBool>) -> ProcedureSpec {
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    typed::unary("slow::Sleep", RawCodec, move |r: Request<Bytes>| {
        let guard = SetOnDrop(dropped.clone());
        async move {
            let ms: u64 = std::str::from_utf8(&r.body).unwrap().parse().unwrap();
            tokio::time::sleep(Duration::from_millis(ms)).await;
            drop(guard);
            Ok(Response::new(r.body))
        }
    })
}

async fn eventually(flag: &AtomicBool) -> bool {
    for _ in 0..100 {
        if flag.load(Ordering::SeqCst) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn the_handler_deadline_is_deadline_exceeded_and_cancels_the_handler() {
    let dropped = Arc::new(AtomicBool::new(false));
    let h = HttpHarness::start(sleeper(dropped.clone())).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    // The server enforces the TTL (the client's own timer would fire at the same moment, so
    // give it more time through the outbound's default TTL instead: no TTL on the call).
    let outbound = HttpOutbound::new(h.url("/"))
        .unwrap()
        .default_ttl(Duration::from_millis(200));
    let config = omnirelay::ClientConfig::new("test-caller", "test-service", Arc::new(outbound));
    let short = Client::with_codec(config, RawCodec, Encoding::Raw);
    let err = short
        .unary::<Bytes, Bytes>(
            "slow::Sleep",
            &Bytes::from_static(b"2000"),
            CallOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert!(eventually(&dropped).await, "the handler was not cancelled");
    let ok = client
        .unary::<Bytes, Bytes>("slow::Sleep", &Bytes::from_static(b"1"), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(ok.body.as_ref(), b"1");
}

/// A server stream that counts the messages it sent and notes when it is dropped.
fn ticker(dropped: Arc<AtomicBool>) -> ProcedureSpec {
    typed::server_stream("tick::Tick", RawCodec, move |_r: Request<Bytes>| {
        let dropped = dropped.clone();
        async move {
            struct SetOnDrop(Arc<AtomicBool>);
            impl Drop for SetOnDrop {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let guard = SetOnDrop(dropped);
            let stream = futures::stream::unfold((0u32, guard), |(n, guard)| async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Some((Ok(Bytes::from(n.to_string())), (n + 1, guard)))
            });
            Ok(Response::new(Streaming::new(stream)))
        }
    })
}

#[tokio::test]
async fn a_dropped_sse_stream_cancels_the_handler_stream() {
    let dropped = Arc::new(AtomicBool::new(false));
    let h = HttpHarness::start(ticker(dropped.clone())).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    let mut stream = client
        .server_stream::<Bytes, Bytes>("tick::Tick", &Bytes::new(), CallOptions::new())
        .await
        .unwrap()
        .into_body();
    for expected in ["0", "1", "2"] {
        assert_eq!(
            stream.message().await.unwrap().unwrap().as_ref(),
            expected.as_bytes()
        );
    }
    assert!(!dropped.load(Ordering::SeqCst));
    drop(stream);
    assert!(
        eventually(&dropped).await,
        "the handler stream was not dropped"
    );
}

/// A duplex handler that reports how its request stream ended.
fn watcher(ended: tokio::sync::mpsc::Sender<Result<usize, Error>>) -> ProcedureSpec {
    typed::duplex(
        "watch::Watch",
        RawCodec,
        move |r: Request<Streaming<Bytes>>| {
            let ended = ended.clone();
            async move {
                let mut requests = r.into_body();
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                tokio::spawn(async move {
                    let mut n = 0;
                    let outcome = loop {
                        match requests.message().await {
                            Ok(Some(m)) => {
                                n += 1;
                                let _ = tx.send(Ok(m)).await;
                            }
                            Ok(None) => break Ok(n),
                            Err(e) => break Err(e),
                        }
                    };
                    let _ = ended.send(outcome).await;
                });
                Ok(Response::new(Streaming::new(
                    tokio_stream::wrappers::ReceiverStream::new(rx),
                )))
            }
        },
    )
}

#[tokio::test]
async fn a_client_that_drops_a_duplex_call_mid_stream_cancels_it() {
    let (ended_tx, mut ended) = tokio::sync::mpsc::channel(1);
    let h = HttpHarness::start(watcher(ended_tx)).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let mut replies = client
        .duplex::<Bytes, Bytes>(
            "watch::Watch",
            tokio_stream::wrappers::ReceiverStream::new(rx),
            CallOptions::new(),
        )
        .await
        .unwrap()
        .into_body();
    tx.send(Bytes::from_static(b"one")).await.unwrap();
    assert_eq!(replies.message().await.unwrap().unwrap().as_ref(), b"one");
    // Drop the call while the request stream is still open.
    drop(replies);
    let outcome = tokio::time::timeout(Duration::from_secs(5), ended.recv())
        .await
        .expect("the handler learned the client went away")
        .unwrap();
    let err = outcome.unwrap_err();
    assert_eq!(err.code(), Code::Cancelled, "{err}");
    tokio::time::timeout(Duration::from_secs(2), tx.closed())
        .await
        .expect("the transport let go of the request stream");
}

#[tokio::test]
async fn stream_errors_and_trailers_reach_the_client() {
    let spec = typed::duplex(
        "s::Fail",
        RawCodec,
        |r: Request<Streaming<Bytes>>| async move {
            let mut requests = r.into_body();
            let first = requests.message().await?.unwrap_or_default();
            let stream = futures::stream::iter([
                Ok(first),
                Err(Error::already_exists("second message refused")),
            ]);
            Ok(Response::new(Streaming::new(stream)).with_header("h", "1"))
        },
    );
    let trailers = typed::server_stream("s::Trailers", RawCodec, |_r: Request<Bytes>| async {
        Ok(Response::new(Streaming::new(futures::stream::iter([Ok(
            Bytes::from_static(b"x"),
        )])))
        .with_header("early", "h")
        .with_trailer("late", "t")
        .with_trailer("late-bin", Bytes::from_static(&[0, 1, 2])))
    });
    let h = HttpHarness::start(vec![spec, trailers]).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    let response = client
        .duplex::<Bytes, Bytes>(
            "s::Fail",
            futures::stream::iter([Bytes::from_static(b"a")]),
            CallOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(response.meta.headers.get_str("h"), Some("1"));
    let mut stream = response.into_body();
    assert_eq!(stream.message().await.unwrap().unwrap().as_ref(), b"a");
    let err = stream.message().await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::AlreadyExists, "second message refused")
    );

    let response = client
        .server_stream::<Bytes, Bytes>("s::Trailers", &Bytes::new(), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(response.meta.headers.get_str("early"), Some("h"));
    let mut stream = response.into_body();
    assert!(stream.trailers().is_none());
    assert_eq!(stream.message().await.unwrap().unwrap().as_ref(), b"x");
    assert!(stream.message().await.unwrap().is_none());
    let trailers = stream.trailers().unwrap();
    assert_eq!(trailers.get_str("late"), Some("t"));
    assert_eq!(trailers.get("late-bin").unwrap().as_ref(), &[0, 1, 2]);
}

fn echo_bytes() -> Vec<ProcedureSpec> {
    vec![
        typed::unary("big::Echo", RawCodec, |r: Request<Bytes>| async move {
            let n: usize = std::str::from_utf8(&r.body[..r.body.len().min(16)])
                .ok()
                .and_then(|s| s.trim_end_matches('x').parse().ok())
                .unwrap_or(0);
            Ok(Response::new(if n > 0 {
                Bytes::from(vec![b'y'; n])
            } else {
                Bytes::from(r.body.len().to_string())
            }))
        }),
        typed::client_stream(
            "big::Count",
            RawCodec,
            |r: Request<Streaming<Bytes>>| async move {
                let mut total = 0;
                let mut requests = r.into_body();
                while let Some(m) = requests.message().await? {
                    total += m.len();
                }
                Ok(Response::new(Bytes::from(total.to_string())))
            },
        ),
    ]
}

#[tokio::test]
async fn bodies_headers_and_frames_over_the_limit_are_resource_exhausted_naming_it() {
    const LIMIT: usize = 64 * 1024;
    let h = HttpHarness::start_with(
        HttpInbound::new(loopback())
            .max_body_bytes(LIMIT)
            .max_header_bytes(4096)
            .max_frame_bytes(LIMIT),
        // The client may send more than the server accepts.
        |url| HttpOutbound::new(url).map(|o| o.max_body_bytes(1 << 24).max_frame_bytes(1 << 24)),
        echo_bytes(),
    )
    .await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    let call = |body: Bytes, options: CallOptions| {
        let client = client.clone();
        async move {
            client
                .unary::<Bytes, Bytes>("big::Echo", &body, options)
                .await
        }
    };
    let ok = call(Bytes::from(vec![b'a'; LIMIT]), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(ok.body.as_ref(), LIMIT.to_string().as_bytes());

    for size in [LIMIT + 1, 4 * LIMIT, 2 * 1024 * 1024] {
        let err = call(Bytes::from(vec![b'a'; size]), CallOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{size}: {err}");
        assert!(err.message().contains(&LIMIT.to_string()), "{err}");
        // The connection is still usable afterwards, or replaced transparently.
        let ok = call(Bytes::from_static(b"ok"), CallOptions::new())
            .await
            .unwrap();
        assert_eq!(ok.body.as_ref(), b"2");
    }

    let err = call(
        Bytes::new(),
        CallOptions::new().header("x-big", "v".repeat(5000)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(
        err.message().contains("headers") && err.message().contains("4096"),
        "{err}"
    );

    // A streamed message over the frame limit.
    let err = client
        .client_stream::<Bytes, Bytes>(
            "big::Count",
            futures::stream::iter([Bytes::from_static(b"ok"), Bytes::from(vec![0; LIMIT + 1])]),
            CallOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(err.message().contains(&LIMIT.to_string()), "{err}");
    let ok = client
        .client_stream::<Bytes, Bytes>(
            "big::Count",
            futures::stream::iter([Bytes::from(vec![0; LIMIT]), Bytes::from_static(b"ok")]),
            CallOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(ok.body.as_ref(), (LIMIT + 2).to_string().as_bytes());
}

#[tokio::test]
async fn the_outbound_limits_what_it_sends_and_receives() {
    let h = HttpHarness::start_with(
        HttpInbound::new(loopback()),
        |url| HttpOutbound::new(url).map(|o| o.max_body_bytes(1000)),
        echo_bytes(),
    )
    .await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    let err = client
        .unary::<Bytes, Bytes>(
            "big::Echo",
            &Bytes::from_static(b"1001x"),
            CallOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    let err = client
        .unary::<Bytes, Bytes>(
            "big::Echo",
            &Bytes::from(vec![b'a'; 1001]),
            CallOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(err.message().contains("1000"), "{err}");
}

#[tokio::test]
async fn unknown_procedures_and_services_are_unimplemented() {
    let h = HttpHarness::start(EchoProcedures::new(EchoService)).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Json);
    let err = client
        .unary::<Bytes, Bytes>("nope::Nope", &Bytes::from_static(b"{}"), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(
        err.message(),
        r#"unrecognized procedure "nope::Nope" for service "test-service""#
    );
    let config = omnirelay::ClientConfig::new(
        "test-caller",
        "other-service",
        h.config().outbound().clone(),
    );
    let other = Client::with_codec(config, RawCodec, Encoding::Json);
    let err = other
        .unary::<Bytes, Bytes>("nope::Nope", &Bytes::from_static(b"{}"), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(
        err.message(),
        r#"unrecognized service name "other-service", available services: "test-service""#
    );
}

#[tokio::test]
async fn malformed_bodies_are_invalid_argument() {
    let h = HttpHarness::start(EchoProcedures::new(EchoService)).await;
    for (encoding, body) in [
        (Encoding::Json, &b"{not json"[..]),
        (Encoding::Json, br#"{"message": 5}"#),
        (Encoding::Proto, b"\x0a\x64x"),
    ] {
        let client = Client::with_codec(h.config(), RawCodec, encoding);
        let err = client
            .unary::<Bytes, Bytes>(
                omnirelay_examples::echo::echo_names::ECHO,
                &Bytes::from_static(body),
                CallOptions::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{encoding}: {err}");
        assert!(err.message().starts_with("malformed"), "{err}");
    }
    // A raw-only procedure refuses JSON.
    let h = HttpHarness::start(echo_bytes()).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Json);
    let err = client
        .unary::<Bytes, Bytes>("big::Echo", &Bytes::new(), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("does not accept encoding json"),
        "{err}"
    );
}

#[tokio::test]
async fn a_server_that_is_not_there_is_unavailable() {
    let listener = std::net::TcpListener::bind(loopback()).unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let outbound = HttpOutbound::new(format!("http://{addr}")).unwrap();
    let config = omnirelay::ClientConfig::new("c", "s", Arc::new(outbound));
    let client = EchoClient::new(config);
    let err = client.echo(req("x", 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    let err = client.chat(futures::stream::empty()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    let err = client.expand(req("x", 1)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
}

#[tokio::test]
async fn a_panicking_handler_is_internal_and_the_server_keeps_serving() {
    let spec = typed::unary("p::Panic", RawCodec, |r: Request<Bytes>| async move {
        if r.body.is_empty() {
            panic!("boom");
        }
        Ok(Response::new(r.body))
    });
    let stream = ProcedureSpec::new(
        "p::PanicStream",
        &[Encoding::Raw],
        Handler::server_stream(|_r: Request<Bytes>| async {
            let s = futures::stream::iter([1, 2]).map(|n| {
                if n == 2 {
                    panic!("stream boom");
                }
                Ok(Bytes::from_static(b"1"))
            });
            Ok(Response::new(Streaming::new(s)))
        }),
    );
    let h = HttpHarness::start(vec![spec, stream]).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    let err = client
        .unary::<Bytes, Bytes>("p::Panic", &Bytes::new(), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    let mut s = client
        .server_stream::<Bytes, Bytes>("p::PanicStream", &Bytes::new(), CallOptions::new())
        .await
        .unwrap()
        .into_body();
    assert_eq!(s.message().await.unwrap().unwrap().as_ref(), b"1");
    assert_eq!(s.message().await.unwrap_err().code(), Code::Internal);
    let ok = client
        .unary::<Bytes, Bytes>("p::Panic", &Bytes::from_static(b"fine"), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(ok.body.as_ref(), b"fine");
}
