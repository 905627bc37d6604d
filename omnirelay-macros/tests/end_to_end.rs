//! `#[procedure]`, `#[service]` and `procedures![...]` end to end: every shape in every encoding,
//! served by a dispatcher over a real gRPC socket on 127.0.0.1 and called through the generic
//! typed client; plus what the macros declare at compile time (names, shapes, encodings,
//! aliases) checked against what the registry serves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use omnirelay::codec::{Encoding, JsonCodec, ProtoCodec, RawCodec};
use omnirelay::procedure::ProcedureInfo;
use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
use omnirelay::{
    CallOptions, Client, Code, Dispatcher, Error, Kind, Procedure, Request, Response, Result,
    Service, Streaming,
};
use omnirelay_examples::echo::{EchoRequest, EchoResponse};
use omnirelay_tests::Harness;
use serde::{Deserialize, Serialize};

/// Polls `check` until it holds, for at most five seconds (oneway handlers run after the ack).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Starts `builder` (which has a gRPC inbound on 127.0.0.1:0) and a caller pointed at it.
async fn start_from(builder: omnirelay::dispatcher::DispatcherBuilder) -> Harness {
    let server = builder.build().expect("valid server");
    server.start().await.expect("server starts");
    let addr = server
        .addr(omnirelay::Transport::Grpc)
        .expect("gRPC address");
    let caller = Dispatcher::builder("test-caller")
        .outbound(
            "test-service",
            GrpcOutbound::new(format!("http://{addr}")).expect("valid outbound"),
        )
        .build()
        .expect("valid caller");
    Harness {
        server,
        caller,
        addr,
    }
}

fn grpc_server() -> omnirelay::dispatcher::DispatcherBuilder {
    Dispatcher::builder("test-service").inbound(GrpcInbound::new(omnirelay_tests::loopback()))
}

fn opts() -> CallOptions {
    CallOptions::new().ttl(Duration::from_secs(10))
}

// ---------------------------------------------------------------------------------------------
// encoding = "json": serde types, free functions, registered with procedures![...]

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Num {
    value: i64,
}

static RECORDED: Mutex<Vec<i64>> = Mutex::new(Vec::new());

/// Doubles a number.
#[omnirelay::procedure(encoding = "json", name = "math::double", alias = "math::twice")]
async fn double(request: Request<Num>) -> Result<Response<Num>> {
    let value = request.body.value;
    if value == i64::MIN {
        return Err(Error::out_of_range("cannot double i64::MIN"));
    }
    Ok(Response::new(Num { value: value * 2 }).with_header("x-caller", request.meta.caller))
}

/// Records a number.
#[omnirelay::procedure(encoding = "json", oneway)]
async fn record(request: Request<Num>) -> Result<()> {
    RECORDED.lock().unwrap().push(request.body.value);
    Ok(())
}

/// Counts from 1 to the number.
#[omnirelay::procedure(encoding = "json")]
async fn count_to(request: Request<Num>) -> Result<Response<Streaming<Num>>> {
    let n = request.body.value;
    Ok(Response::new(Streaming::new(futures::stream::iter(
        (1..=n).map(|value| Ok(Num { value })),
    ))))
}

/// Adds up a stream of numbers.
#[omnirelay::procedure(encoding = "json")]
async fn sum(request: Request<Streaming<Num>>) -> Result<Response<Num>> {
    let mut numbers = request.into_body();
    let mut total = 0;
    while let Some(n) = numbers.message().await? {
        total += n.value;
    }
    Ok(Response::new(Num { value: total }))
}

/// Answers each number with the running total.
#[omnirelay::procedure(encoding = "json")]
async fn running_total(request: Request<Streaming<Num>>) -> Result<Response<Streaming<Num>>> {
    let totals = request.into_body().scan(0, |total, item| {
        let item = item.map(|n| {
            *total += n.value;
            Num { value: *total }
        });
        futures::future::ready(Some(item))
    });
    Ok(Response::new(Streaming::new(totals)))
}

async fn collect<T>(stream: Streaming<T>) -> Vec<T> {
    let mut stream = stream;
    let mut out = Vec::new();
    while let Some(item) = stream.message().await.expect("stream item") {
        out.push(item);
    }
    out
}

fn nums(values: &[i64]) -> Vec<Num> {
    values.iter().map(|&value| Num { value }).collect()
}

#[tokio::test]
async fn json_free_functions_in_every_shape() {
    let h = Harness::start(omnirelay::procedures![
        double,
        record,
        count_to,
        sum,
        running_total
    ])
    .await;
    let client = Client::with_codec(h.config(), JsonCodec, Encoding::Json);

    let doubled: Response<Num> = client
        .unary("math::double", &Num { value: 21 }, opts())
        .await
        .unwrap();
    assert_eq!(doubled.body, Num { value: 42 });
    assert_eq!(
        doubled.meta.headers.get_str("x-caller"),
        Some("test-caller")
    );
    // The alias reaches the same handler; errors keep their code.
    let aliased: Response<Num> = client
        .unary("math::twice", &Num { value: 5 }, opts())
        .await
        .unwrap();
    assert_eq!(aliased.body.value, 10);
    let err = client
        .unary::<Num, Num>("math::double", &Num { value: i64::MIN }, opts())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);

    client
        .oneway("record", &Num { value: 7 }, opts())
        .await
        .unwrap();
    eventually("the oneway handler", || {
        RECORDED.lock().unwrap().contains(&7)
    })
    .await;

    let counted: Response<Streaming<Num>> = client
        .server_stream("count_to", &Num { value: 4 }, opts())
        .await
        .unwrap();
    assert_eq!(collect(counted.into_body()).await, nums(&[1, 2, 3, 4]));

    let total: Response<Num> = client
        .client_stream("sum", futures::stream::iter(nums(&[1, 2, 3, 4, 5])), opts())
        .await
        .unwrap();
    assert_eq!(total.body.value, 15);

    // Duplex, interleaved: each total arrives before the next number is sent.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut totals = client
        .duplex::<Num, Num>(
            "running_total",
            tokio_stream::wrappers::ReceiverStream::new(rx),
            opts(),
        )
        .await
        .unwrap()
        .into_body();
    for (sent, expected) in [(1, 1), (10, 11), (100, 111)] {
        tx.send(Num { value: sent }).await.unwrap();
        assert_eq!(
            totals.message().await.unwrap(),
            Some(Num { value: expected })
        );
    }
    drop(tx);
    assert_eq!(totals.message().await.unwrap(), None);

    // The procedures accept only the encoding they declare.
    let proto = Client::with_codec(h.config(), RawCodec, Encoding::Proto);
    let err = proto
        .unary::<Bytes, Bytes>("math::double", &Bytes::new(), opts())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("json"), "{err}");
    // Malformed JSON is the caller's fault.
    let raw_json = Client::with_codec(h.config(), RawCodec, Encoding::Json);
    let err = raw_json
        .unary::<Bytes, Bytes>("math::double", &Bytes::from_static(b"{oops"), opts())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    h.server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// encoding = "raw": bytes in, bytes out, each registered on its own

/// Reverses the bytes.
#[omnirelay::procedure(encoding = "raw", name = "bytes::reverse")]
async fn reverse(request: Request<Bytes>) -> Result<Response<Bytes>> {
    let mut body = request.body.to_vec();
    body.reverse();
    Ok(Response::new(Bytes::from(body)))
}

static RAW_SEEN: Mutex<Vec<Bytes>> = Mutex::new(Vec::new());

/// Remembers the bytes.
#[omnirelay::procedure(encoding = "raw", oneway, name = "bytes::drop")]
async fn drop_bytes(request: Request<Bytes>) -> Result<()> {
    RAW_SEEN.lock().unwrap().push(request.body);
    Ok(())
}

/// Splits the bytes into one message per byte.
#[omnirelay::procedure(encoding = "raw", name = "bytes::split")]
async fn split(request: Request<Bytes>) -> Result<Response<Streaming<Bytes>>> {
    let body = request.body;
    let parts: Vec<Result<Bytes>> = (0..body.len()).map(|i| Ok(body.slice(i..=i))).collect();
    Ok(Response::new(Streaming::new(futures::stream::iter(parts))))
}

/// Joins the messages.
#[omnirelay::procedure(encoding = "raw", name = "bytes::join")]
async fn join(request: Request<Streaming<Bytes>>) -> Result<Response<Bytes>> {
    let parts = collect(request.into_body()).await;
    Ok(Response::new(Bytes::from(parts.concat())))
}

/// Echoes each message upper-cased.
#[omnirelay::procedure(encoding = "raw", name = "bytes::shout")]
async fn shout(request: Request<Streaming<Bytes>>) -> Result<Response<Streaming<Bytes>>> {
    let upper = request
        .into_body()
        .map(|part| part.map(|b| Bytes::from(b.to_ascii_uppercase())));
    Ok(Response::new(Streaming::new(upper)))
}

#[tokio::test]
async fn raw_free_functions_in_every_shape() {
    let server = grpc_server()
        .register(reverse)
        .register(drop_bytes)
        .register(split)
        .register(join)
        .register(shout);
    let h = start_from(server).await;
    let client = Client::with_codec(h.config(), RawCodec, Encoding::Raw);
    let b = Bytes::from_static;

    let reversed = client
        .unary::<Bytes, Bytes>("bytes::reverse", &b(b"abc"), opts())
        .await
        .unwrap();
    assert_eq!(reversed.body, b(b"cba"));

    client
        .oneway("bytes::drop", &b(b"\x00\xff"), opts())
        .await
        .unwrap();
    eventually("the raw oneway handler", || {
        RAW_SEEN.lock().unwrap().contains(&b(b"\x00\xff"))
    })
    .await;

    let parts = client
        .server_stream::<Bytes, Bytes>("bytes::split", &b(b"xyz"), opts())
        .await
        .unwrap();
    assert_eq!(
        collect(parts.into_body()).await,
        [b(b"x"), b(b"y"), b(b"z")]
    );

    let joined = client
        .client_stream::<Bytes, Bytes>(
            "bytes::join",
            futures::stream::iter([b(b"ab"), b(b""), b(b"cd")]),
            opts(),
        )
        .await
        .unwrap();
    assert_eq!(joined.body, b(b"abcd"));

    let shouted = client
        .duplex::<Bytes, Bytes>(
            "bytes::shout",
            futures::stream::iter([b(b"hi"), b(b"there")]),
            opts(),
        )
        .await
        .unwrap();
    assert_eq!(collect(shouted.into_body()).await, [b(b"HI"), b(b"THERE")]);

    // A raw procedure refuses a JSON body: its encoding is fixed at compile time.
    let json = Client::with_codec(h.config(), RawCodec, Encoding::Json);
    let err = json
        .unary::<Bytes, Bytes>("bytes::reverse", &b(b"{}"), opts())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    h.server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// encoding = "proto": prost messages, a service with shared state and every receiver

#[derive(Clone, PartialEq, prost::Message)]
struct Word {
    #[prost(string, tag = "1")]
    text: String,
    #[prost(uint32, tag = "2")]
    count: u32,
}

fn word(text: &str, count: u32) -> Word {
    Word {
        text: text.to_owned(),
        count,
    }
}

/// A word store: every call shares one value.
#[derive(Default)]
struct Words {
    calls: AtomicU64,
    heard: Mutex<Vec<String>>,
}

#[omnirelay::service(name = "test.Words", encoding = "proto")]
impl Words {
    /// Repeats a word `count` times (unary, `&self`).
    #[procedure]
    async fn repeat(&self, request: Request<Word>) -> Result<Response<Word>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let Word { text, count } = request.into_body();
        Ok(Response::new(word(&text.repeat(count as usize), count)))
    }

    /// Remembers a word (oneway, `self: Arc<Self>`).
    #[procedure(oneway, name = "Hear")]
    async fn hear(self: Arc<Self>, request: Request<Word>) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.heard.lock().unwrap().push(request.into_body().text);
        Ok(())
    }

    /// Spells a word, one letter per message (server stream, no receiver).
    #[procedure(alias = "Letters")]
    async fn spell(request: Request<Word>) -> Result<Response<Streaming<Word>>> {
        let letters: Vec<Result<Word>> = request
            .into_body()
            .text
            .chars()
            .enumerate()
            .map(|(i, c)| Ok(word(&c.to_string(), i as u32)))
            .collect();
        Ok(Response::new(Streaming::new(futures::stream::iter(
            letters,
        ))))
    }

    /// Joins words with spaces (client stream).
    #[procedure]
    async fn sentence(&self, request: Request<Streaming<Word>>) -> Result<Response<Word>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let words: Vec<String> = collect(request.into_body())
            .await
            .into_iter()
            .map(|w| w.text)
            .collect();
        let count = words.len() as u32;
        Ok(Response::new(word(&words.join(" "), count)))
    }

    /// Numbers each word as it arrives, counting calls so far (duplex).
    #[procedure]
    async fn number(&self, request: Request<Streaming<Word>>) -> Result<Response<Streaming<Word>>> {
        let calls = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let numbered = request
            .into_body()
            .enumerate()
            .map(move |(i, w)| w.map(|w| word(&format!("{calls}:{}", w.text), i as u32)));
        Ok(Response::new(Streaming::new(numbered)))
    }

    /// An ordinary method, not a procedure.
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn proto_service_in_every_shape_with_shared_state() {
    let words = Arc::new(Words::default());
    // An `Arc` registers the service and keeps a handle on its state.
    let h = Harness::start(words.clone()).await;
    let client = Client::with_codec(h.config(), ProtoCodec, Encoding::Proto);

    let repeated: Response<Word> = client
        .unary("test.Words::repeat", &word("ab", 3), opts())
        .await
        .unwrap();
    assert_eq!(repeated.body, word("ababab", 3));

    client
        .oneway("test.Words::Hear", &word("hello", 0), opts())
        .await
        .unwrap();
    eventually("the service's oneway handler", || {
        words.heard.lock().unwrap().as_slice() == ["hello"]
    })
    .await;

    for name in ["test.Words::spell", "test.Words::Letters"] {
        let letters: Response<Streaming<Word>> = client
            .server_stream(name, &word("abc", 0), opts())
            .await
            .unwrap();
        let letters: Vec<String> = collect(letters.into_body())
            .await
            .into_iter()
            .map(|w| w.text)
            .collect();
        assert_eq!(letters, ["a", "b", "c"]);
    }

    let sentence: Response<Word> = client
        .client_stream(
            "test.Words::sentence",
            futures::stream::iter([word("one", 0), word("two", 0)]),
            opts(),
        )
        .await
        .unwrap();
    assert_eq!(sentence.body, word("one two", 2));

    let numbered: Response<Streaming<Word>> = client
        .duplex(
            "test.Words::number",
            futures::stream::iter([word("x", 0), word("y", 0)]),
            opts(),
        )
        .await
        .unwrap();
    let numbered = collect(numbered.into_body()).await;
    assert_eq!(numbered, [word("4:x", 0), word("4:y", 1)]);
    // Every call saw the one shared value.
    assert_eq!(words.calls(), 4);

    // The handler is served over gRPC at the path DESIGN §2 gives, so plain gRPC clients work.
    let frame = omnirelay_tests::grpc_frame(&prost::Message::encode_to_vec(&word("z", 2)));
    let raw = omnirelay_tests::raw_h2(
        h.addr,
        omnirelay_tests::grpc_request(h.addr, "/test.Words/repeat", "application/grpc", frame),
    )
    .await;
    assert_eq!(raw.grpc_status(), Some(0), "{}", raw.grpc_message());
    let reply: Word = prost::Message::decode(&raw.body[5..]).unwrap();
    assert_eq!(reply, word("zz", 2));
    h.server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// encoding = ["proto", "json"]: generated (prost + pbjson) messages, served in both

/// An echo service written with the macros instead of a `.proto` trait.
struct MacroEcho {
    prefix: String,
}

impl MacroEcho {
    fn reply(&self, message: &str, index: u32) -> EchoResponse {
        EchoResponse {
            message: format!("{}{message}", self.prefix),
            index,
        }
    }
}

static ECHO_ONEWAY: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[omnirelay::service(name = "test.Echo")]
impl MacroEcho {
    #[procedure(encoding = ["proto", "json"], name = "Echo")]
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>> {
        Ok(Response::new(self.reply(&request.body.message, 0)))
    }

    #[omnirelay::procedure(encoding = ["json", "proto"], name = "Tell", oneway)]
    async fn tell(&self, request: Request<EchoRequest>) -> Result<()> {
        ECHO_ONEWAY
            .lock()
            .unwrap()
            .push(self.reply(&request.body.message, 0).message);
        Ok(())
    }

    #[procedure(encoding = ["proto", "json"], name = "Expand")]
    async fn expand(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<Streaming<EchoResponse>>> {
        let EchoRequest { message, repeat } = request.into_body();
        let replies: Vec<Result<EchoResponse>> =
            (0..repeat).map(|i| Ok(self.reply(&message, i))).collect();
        Ok(Response::new(Streaming::new(futures::stream::iter(
            replies,
        ))))
    }

    #[procedure(encoding = ["proto", "json"], name = "Collect")]
    async fn collect(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoResponse>> {
        let words: Vec<String> = collect(request.into_body())
            .await
            .into_iter()
            .map(|r| r.message)
            .collect();
        Ok(Response::new(
            self.reply(&words.join(" "), words.len() as u32),
        ))
    }

    #[procedure(encoding = ["proto", "json"], name = "Chat")]
    async fn chat(
        self: Arc<Self>,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<Streaming<EchoResponse>>> {
        let replies = request
            .into_body()
            .enumerate()
            .map(move |(i, r)| r.map(|r| self.reply(&r.message, i as u32)));
        Ok(Response::new(Streaming::new(replies)))
    }
}

fn echo_req(message: &str, repeat: u32) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
        repeat,
    }
}

#[tokio::test]
async fn proto_and_json_service_in_every_shape_and_both_encodings() {
    let h = Harness::start(MacroEcho {
        prefix: "> ".to_owned(),
    })
    .await;
    for encoding in [Encoding::Proto, Encoding::Json] {
        let client = Client::new(h.config()).with_encoding(encoding);
        let tag = encoding.as_str();

        let echoed: Response<EchoResponse> = client
            .unary("test.Echo::Echo", &echo_req(tag, 0), opts())
            .await
            .unwrap();
        assert_eq!(echoed.body.message, format!("> {tag}"));

        client
            .oneway(
                "test.Echo::Tell",
                &echo_req(&format!("told {tag}"), 0),
                opts(),
            )
            .await
            .unwrap();
        let expected = format!("> told {tag}");
        eventually("the oneway echo", || {
            ECHO_ONEWAY.lock().unwrap().contains(&expected)
        })
        .await;

        let expanded: Response<Streaming<EchoResponse>> = client
            .server_stream("test.Echo::Expand", &echo_req("e", 3), opts())
            .await
            .unwrap();
        let indexes: Vec<u32> = collect(expanded.into_body())
            .await
            .into_iter()
            .map(|r| r.index)
            .collect();
        assert_eq!(indexes, [0, 1, 2]);

        let collected: Response<EchoResponse> = client
            .client_stream(
                "test.Echo::Collect",
                futures::stream::iter([echo_req("a", 0), echo_req("b", 0)]),
                opts(),
            )
            .await
            .unwrap();
        assert_eq!(
            (collected.body.message.as_str(), collected.body.index),
            ("> a b", 2)
        );

        let chat: Response<Streaming<EchoResponse>> = client
            .duplex(
                "test.Echo::Chat",
                futures::stream::iter([echo_req("p", 0), echo_req("q", 0)]),
                opts(),
            )
            .await
            .unwrap();
        let replies: Vec<String> = collect(chat.into_body())
            .await
            .into_iter()
            .map(|r| r.message)
            .collect();
        assert_eq!(replies, ["> p", "> q"]);
    }

    // JSON bodies use the proto3 JSON mapping of the generated messages.
    let raw = Client::with_codec(h.config(), RawCodec, Encoding::Json);
    let reply = raw
        .unary::<Bytes, Bytes>(
            "test.Echo::Echo",
            &Bytes::from_static(br#"{"message":"mapped"}"#),
            opts(),
        )
        .await
        .unwrap();
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    assert!(text.contains(r#""message":"> mapped""#), "{text}");
    h.server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Generic and trait-impl services

/// A store of any serde value.
struct Store<T> {
    items: Mutex<Vec<T>>,
}

#[omnirelay::service(name = "store", encoding = "json")]
impl<T> Store<T>
where
    T: Clone + Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    #[procedure]
    async fn push(&self, request: Request<T>) -> Result<Response<u64>> {
        let mut items = self.items.lock().unwrap();
        items.push(request.into_body());
        Ok(Response::new(items.len() as u64))
    }

    #[procedure]
    async fn all(&self, _request: Request<()>) -> Result<Response<Streaming<T>>> {
        let items: Vec<Result<T>> = self.items.lock().unwrap().iter().cloned().map(Ok).collect();
        Ok(Response::new(Streaming::new(futures::stream::iter(items))))
    }
}

trait Greeter {
    async fn greet(&self, request: Request<String>) -> Result<Response<String>>;
}

struct English;

#[omnirelay::service(name = "greeter")]
impl Greeter for English {
    #[procedure(encoding = "json")]
    async fn greet(&self, request: Request<String>) -> Result<Response<String>> {
        Ok(Response::new(format!("hello, {}", request.body)))
    }
}

#[tokio::test]
async fn generic_and_trait_impl_services() {
    let server = grpc_server()
        .register(Store::<String> {
            items: Mutex::new(Vec::new()),
        })
        .register(English);
    let h = start_from(server).await;
    let client = Client::with_codec(h.config(), JsonCodec, Encoding::Json);
    for (i, item) in ["a", "b"].iter().enumerate() {
        let len: Response<u64> = client
            .unary("store::push", &item.to_string(), opts())
            .await
            .unwrap();
        assert_eq!(len.body, i as u64 + 1);
    }
    let all: Response<Streaming<String>> = client
        .server_stream("store::all", &(), opts())
        .await
        .unwrap();
    assert_eq!(collect(all.into_body()).await, ["a", "b"]);
    let greeting: Response<String> = client
        .unary("greeter::greet", &"you".to_owned(), opts())
        .await
        .unwrap();
    assert_eq!(greeting.body, "hello, you");
    h.server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Compile-time descriptions, direct calls, registration errors

#[test]
fn constants_describe_what_is_registered() {
    assert_eq!(double::NAME, "math::double");
    assert_eq!(double::KIND, Kind::Unary);
    assert_eq!(double::ENCODINGS, [Encoding::Json]);
    assert_eq!(double::ALIASES, ["math::twice"]);
    assert_eq!(record::KIND, Kind::Oneway);
    assert_eq!(count_to::KIND, Kind::ServerStream);
    assert_eq!(sum::KIND, Kind::ClientStream);
    assert_eq!(running_total::KIND, Kind::Duplex);
    assert_eq!(reverse::ENCODINGS, [Encoding::Raw]);

    assert_eq!(Words::NAME, "test.Words");
    let infos: Vec<(&str, Kind)> = Words::PROCEDURES
        .iter()
        .map(|p| (p.name(), p.kind()))
        .collect();
    assert_eq!(
        infos,
        [
            ("test.Words::repeat", Kind::Unary),
            ("test.Words::Hear", Kind::Oneway),
            ("test.Words::spell", Kind::ServerStream),
            ("test.Words::sentence", Kind::ClientStream),
            ("test.Words::number", Kind::Duplex),
        ]
    );
    assert_eq!(Words::PROCEDURES[2].aliases(), ["test.Words::Letters"]);
    assert!(
        MacroEcho::PROCEDURES
            .iter()
            .all(|p| p.encodings() == [Encoding::Proto, Encoding::Json])
    );
    assert_eq!(<Store<u8> as Service>::NAME, "store");

    // What the constants say is what the registry holds.
    let dispatcher = Dispatcher::builder("check")
        .register(omnirelay::procedures![
            double,
            record,
            count_to,
            sum,
            running_total
        ])
        .register(Words::default())
        .register(MacroEcho {
            prefix: String::new(),
        })
        .build()
        .unwrap();
    let declared: Vec<ProcedureInfo> = [
        double::INFO,
        record::INFO,
        count_to::INFO,
        sum::INFO,
        running_total::INFO,
    ]
    .into_iter()
    .chain(Words::PROCEDURES.iter().copied())
    .chain(MacroEcho::PROCEDURES.iter().copied())
    .collect();
    for info in declared {
        let spec = dispatcher
            .registry()
            .lookup(info.name())
            .expect("registered");
        assert_eq!(spec.name(), info.name());
        assert_eq!(spec.kind(), info.kind());
        assert_eq!(spec.encodings(), info.encodings());
        let aliases: Vec<&str> = spec.aliases().iter().map(String::as_str).collect();
        assert_eq!(aliases, info.aliases());
    }
}

#[tokio::test]
async fn handlers_stay_callable_directly() {
    let meta = omnirelay::RequestMeta::new("me", "svc", "math::double");
    let response = double::call(Request::new(meta, Num { value: 4 }))
        .await
        .unwrap();
    assert_eq!(response.body.value, 8);
    let words = Words::default();
    let meta = omnirelay::RequestMeta::new("me", "svc", "test.Words::repeat");
    let response = words
        .repeat(Request::new(meta, word("a", 2)))
        .await
        .unwrap();
    assert_eq!(response.body.text, "aa");
}

/// Claims `math::double` too; only a registration across lists can notice.
#[omnirelay::procedure(encoding = "json", name = "math::double")]
async fn double_again(request: Request<Num>) -> Result<Response<Num>> {
    Ok(Response::new(request.into_body()))
}

/// Claims `math::twice`, the alias of `double`.
#[omnirelay::procedure(encoding = "json", name = "math::twice")]
async fn twice(request: Request<Num>) -> Result<Response<Num>> {
    Ok(Response::new(request.into_body()))
}

#[test]
fn clashes_across_lists_are_registration_errors_naming_both() {
    let err = Dispatcher::builder("clash")
        .register(omnirelay::procedures![double, record])
        .register(omnirelay::procedures![double_again])
        .build()
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("math::double"), "{err}");
    assert!(
        err.message().contains("registered twice") || err.message().contains("both"),
        "{err}"
    );

    let err = Dispatcher::builder("clash")
        .register(double)
        .register(twice)
        .build()
        .unwrap_err();
    assert!(err.message().contains("\"math::double\""), "{err}");
    assert!(err.message().contains("\"math::twice\""), "{err}");

    // A service and a free function.
    #[omnirelay::procedure(encoding = "proto", name = "test.Words::repeat")]
    async fn impostor(request: Request<Word>) -> Result<Response<Word>> {
        Ok(Response::new(request.into_body()))
    }
    let err = Dispatcher::builder("clash")
        .register(Words::default())
        .register(impostor)
        .build()
        .unwrap_err();
    assert!(err.message().contains("test.Words::repeat"), "{err}");
}
