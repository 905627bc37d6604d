//! Calls of every shape through the generated client and the generic client, over a real
//! gRPC socket: bodies, encodings, metadata, trailers, error codes, oneway, unknown procedures.

use std::time::Duration;

use bytes::Bytes;
use omnirelay::codec::RawCodec;
use omnirelay::procedure::{Handler, typed};
use omnirelay::{
    CallOptions, Client, Code, Encoding, Error, ProcedureSpec, Request, Response, Streaming,
};
use omnirelay_examples::EchoService;
use omnirelay_examples::echo::{EchoClient, EchoProcedures, EchoRequest, echo_names};
use omnirelay_tests::Harness;

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
async fn every_shape_in_proto_and_json() {
    let h = Harness::start(EchoProcedures::new(EchoService)).await;
    all_shapes(&EchoClient::new(h.config())).await;
    all_shapes(&EchoClient::new(h.config()).with_encoding(Encoding::Json)).await;
    h.server.stop().await.unwrap();
}

#[tokio::test]
async fn json_bodies_use_the_proto3_mapping() {
    let h = Harness::start(EchoProcedures::new(EchoService)).await;
    let raw = Client::with_codec(h.config(), RawCodec, Encoding::Json);
    let response = raw
        .unary::<Bytes, Bytes>(
            echo_names::ECHO,
            &Bytes::from_static(br#"{"message":"json!","repeat":2}"#),
            CallOptions::new(),
        )
        .await
        .unwrap();
    let text = String::from_utf8(response.body.to_vec()).unwrap();
    assert!(text.contains(r#""message":"json!""#), "{text}");

    let err = raw
        .unary::<Bytes, Bytes>(
            echo_names::ECHO,
            &Bytes::from_static(b"{oops"),
            CallOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("malformed JSON body"), "{err}");
}

fn raw_unary(name: &str, f: fn(Request<Bytes>) -> Result<Response<Bytes>, Error>) -> ProcedureSpec {
    typed::unary(name, RawCodec, move |r| async move { f(r) })
}

#[tokio::test]
async fn every_code_round_trips_with_its_message() {
    let failing = raw_unary("errors::Fail", |r| {
        let n: i32 = std::str::from_utf8(&r.body).unwrap().parse().unwrap();
        Err(Error::new(
            Code::from_i32(n),
            format!("code {n}: \t\nwhitespace ☺ 😈 100% done"),
        )
        .with_details(Bytes::from_static(b"\x00\x01details")))
    });
    let h = Harness::start(failing).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    for code in Code::ALL.into_iter().filter(|c| *c != Code::Ok) {
        let body = Bytes::from(code.as_i32().to_string());
        let err = client
            .unary::<Bytes, Bytes>("errors::Fail", &body, CallOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), code);
        assert_eq!(
            err.message(),
            format!("code {}: \t\nwhitespace ☺ 😈 100% done", code.as_i32())
        );
        assert_eq!(err.details().as_ref(), b"\x00\x01details");
    }
}

#[tokio::test]
async fn headers_and_trailers_cross_both_ways() {
    let echo_meta = raw_unary("meta::Echo", |r| {
        let mut response = Response::new(Bytes::from(r.meta.caller.clone()));
        for (k, v) in r.meta.headers.iter() {
            response = response
                .with_header(format!("h-{k}"), v.clone())
                .with_trailer(format!("t-{k}"), v.clone());
        }
        response = response.with_header("service-seen", r.meta.service.clone());
        let shard = r.meta.shard_key.clone().unwrap_or_default();
        Ok(response.with_header("shard-seen", shard))
    });
    let h = Harness::start(echo_meta).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    let options = CallOptions::new()
        .header("X-Text", "value one")
        .header("x-blob-bin", Bytes::from_static(&[0, 159, 146, 150, 255]))
        .shard_key("shard-7");
    let response = client
        .unary::<Bytes, Bytes>("meta::Echo", &Bytes::new(), options)
        .await
        .unwrap();
    assert_eq!(response.body.as_ref(), b"test-caller");
    let meta = response.meta;
    assert_eq!(meta.headers.get_str("h-x-text"), Some("value one"));
    assert_eq!(meta.headers.get_str("service-seen"), Some("test-service"));
    assert_eq!(meta.headers.get_str("shard-seen"), Some("shard-7"));
    assert_eq!(meta.trailers.get_str("t-x-text"), Some("value one"));
    assert_eq!(
        meta.headers.get("h-x-blob-bin").unwrap().as_ref(),
        &[0, 159, 146, 150, 255]
    );
    assert_eq!(
        meta.trailers.get("t-x-blob-bin").unwrap().as_ref(),
        &[0, 159, 146, 150, 255]
    );

    // A header value that is not header text is refused before anything is sent.
    let err = client
        .unary::<Bytes, Bytes>(
            "meta::Echo",
            &Bytes::new(),
            CallOptions::new().header("x-bad", Bytes::from_static(b"a\nb")),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("x-bad"), "{err}");
}

#[tokio::test]
async fn oneway_acknowledges_then_runs_the_handler() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let oneway = ProcedureSpec::new(
        "events::Record",
        &[Encoding::Raw],
        Handler::oneway(move |r: Request<Bytes>| {
            let tx = tx.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                tx.send(r.body)
                    .map_err(|_| Error::internal("receiver gone"))
            }
        }),
    );
    let h = Harness::start(oneway).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    client
        .oneway(
            "events::Record",
            &Bytes::from_static(b"event-1"),
            CallOptions::new(),
        )
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap();
    assert_eq!(got.unwrap().as_ref(), b"event-1");
}

#[tokio::test]
async fn unknown_procedures_are_unimplemented() {
    let h = Harness::start(EchoProcedures::new(EchoService)).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    for name in [
        "omnirelay.examples.echo.v1.Echo::Nope",
        "no.Such::Service",
        "bare",
    ] {
        let err = client
            .unary::<Bytes, Bytes>(name, &Bytes::new(), CallOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented, "{name}");
        assert!(err.message().contains(name), "{err}");
    }
    // A known procedure in an encoding it does not serve.
    let err = client
        .unary::<Bytes, Bytes>(echo_names::ECHO, &Bytes::new(), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("does not accept encoding raw"),
        "{err}"
    );
}

#[tokio::test]
async fn handler_stream_errors_reach_the_client_after_the_messages() {
    let failing = typed::server_stream("s::Fail", RawCodec, |_r: Request<Bytes>| async {
        let items = vec![
            Ok(Bytes::from_static(b"one")),
            Err(Error::data_loss("lost the rest")),
        ];
        Ok(Response::new(Streaming::new(futures::stream::iter(items))))
    });
    let h = Harness::start(failing).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    let mut stream = client
        .server_stream::<Bytes, Bytes>("s::Fail", &Bytes::new(), CallOptions::new())
        .await
        .unwrap()
        .into_body();
    assert_eq!(stream.message().await.unwrap().unwrap().as_ref(), b"one");
    let err = stream.message().await.unwrap_err();
    assert_eq!(err.code(), Code::DataLoss);
    assert_eq!(err.message(), "lost the rest");
    assert!(stream.message().await.unwrap().is_none());
}

#[tokio::test]
async fn streamed_responses_expose_trailers_after_the_last_message() {
    let with_trailers = typed::duplex(
        "t::Stream",
        RawCodec,
        |r: Request<Streaming<Bytes>>| async move {
            let tag = r.meta.headers.get("tag").cloned().unwrap_or_default();
            Ok(Response::new(r.into_body())
                .with_header("x-initial", "early")
                .with_trailer("x-final", tag.clone())
                .with_trailer("x-final-bin", Bytes::from_static(&[1, 2, 255])))
        },
    );
    let h = Harness::start(with_trailers).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    let response = client
        .duplex::<Bytes, Bytes>(
            "t::Stream",
            futures::stream::iter([Bytes::from_static(b"a"), Bytes::from_static(b"b")]),
            CallOptions::new().header("tag", "late"),
        )
        .await
        .unwrap();
    assert_eq!(response.meta.headers.get_str("x-initial"), Some("early"));
    let mut stream = response.into_body();
    assert!(stream.trailers().is_none(), "no trailers before the end");
    assert_eq!(stream.message().await.unwrap().unwrap().as_ref(), b"a");
    assert_eq!(stream.message().await.unwrap().unwrap().as_ref(), b"b");
    assert!(stream.message().await.unwrap().is_none());
    let trailers = stream.trailers().expect("trailers after the end");
    assert_eq!(trailers.get_str("x-final"), Some("late"));
    assert_eq!(trailers.get("x-final-bin").unwrap().as_ref(), &[1, 2, 255]);
}
