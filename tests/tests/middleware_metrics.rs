//! The metrics middleware over real sockets: a server measuring calls from two callers over gRPC
//! and YARPC-HTTP, scraped at `/omnirelay/metrics` over HTTP and parsed as Prometheus text; a
//! client measuring its outbound calls; every shape; the endpoint's methods and formats.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use omnirelay::codec::RawCodec;
use omnirelay::middleware::metrics::{
    DEFAULT_MAX_SERIES, Metrics, OPENMETRICS_TEXT, OVERFLOW_LABEL, PROMETHEUS_TEXT,
};
use omnirelay::procedure::typed;
use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
use omnirelay::transport::http::{HttpInbound, HttpOutbound};
use omnirelay::{
    CallOptions, Client, ClientConfig, Code, Dispatcher, Encoding, Error, Outbound, ProcedureSpec,
    Request, Response, Streaming, Transport,
};
use omnirelay_tests::{loopback, raw_h1};

// ---------------------------------------------------------------------------------------------
// A small, strict parser of the Prometheus text format 0.0.4.

/// One sample line: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `{k="v",...}` at the start of `s`, returning the labels and the rest.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("no {")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !valid_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, '\n') => return Err("raw newline in a label value".into()),
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &rest[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("labels not separated by ,".into());
        }
    }
}

/// Parses a whole exposition, checking that every sample belongs to a family declared by a
/// `# TYPE` line before it (`_total`, `_bucket`, `_sum`, `_count` as the type says) and that
/// no series appears twice.
fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut seen: BTreeSet<(String, BTreeMap<String, String>)> = BTreeSet::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if !valid_name(name) {
                return Err(format!("bad name in {line:?}"));
            }
            match kind {
                "HELP" => {}
                "TYPE" => {
                    let ty = parts.next().unwrap_or("");
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty) {
                        return Err(format!("bad type in {line:?}"));
                    }
                    if types.insert(name.to_owned(), ty.to_owned()).is_some() {
                        return Err(format!("{name} typed twice"));
                    }
                }
                _ => return Err(format!("unknown comment {line:?}")),
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or(format!("no value: {line:?}"))?;
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(format!("bad metric name {name:?}"));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(|e| format!("{e} in {line:?}"))?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let value: f64 = rest
            .strip_prefix(' ')
            .ok_or(format!("no space before the value: {line:?}"))?
            .parse()
            .map_err(|_| format!("bad value in {line:?}"))?;
        let family = types.iter().find(|(family, ty)| match ty.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name.strip_suffix(s) == Some(family.as_str())),
            _ => name == family.as_str(),
        });
        if family.is_none() {
            return Err(format!("{name} has no # TYPE before it"));
        }
        let sample = Sample {
            name: name.to_owned(),
            labels,
            value,
        };
        if !seen.insert((sample.name.clone(), sample.labels.clone())) {
            return Err(format!("series twice: {line:?}"));
        }
        samples.push(sample);
    }
    Ok(samples)
}

#[test]
fn the_parser_rejects_broken_text() {
    let ok = "# HELP a_total x.\n# TYPE a_total counter\na_total{k=\"v\\\"\\n\"} 1\n";
    let samples = parse_prometheus(ok).unwrap();
    assert_eq!(samples[0].labels["k"], "v\"\n");
    for bad in [
        "a_total 1\n",                                    // untyped family
        "# TYPE a_total counter\na_total{k=\"v} 1\n",     // unterminated
        "# TYPE a_total counter\na_total{k=v} 1\n",       // unquoted
        "# TYPE a_total counter\na_total{1k=\"v\"} 1\n",  // bad label name
        "# TYPE a_total counter\na_total 1\na_total 2\n", // duplicate series
        "# TYPE a_total counter\na_total one\n",          // bad value
        "# TYPE a_total counter\na_total{k=\"v\"}1\n",    // no space
        "# TYPE a_total counter\n# EOF\n",                // OpenMetrics only
        "# TYPE h histogram\nh_total 1\n",                // not a histogram series
    ] {
        assert!(parse_prometheus(bad).is_err(), "accepted {bad:?}");
    }
}

/// The samples named `name` whose labels include all of `with`.
fn select<'a>(samples: &'a [Sample], name: &str, with: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The value of the one sample named `name` with labels `with` (0 when there is none).
fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    let found = select(samples, name, with);
    assert!(found.len() <= 1, "{name} {with:?} matches {found:?}");
    found.first().map_or(0.0, |s| s.value)
}

/// The sum over every sample named `name` with labels `with`.
fn total(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    select(samples, name, with).iter().map(|s| s.value).sum()
}

// ---------------------------------------------------------------------------------------------
// The service under test.

/// `m::Echo` answers `ok`, fails `bad` (invalid-argument, the caller's fault) and `boom`
/// (internal, the server's); `m::Count` streams as many messages as the request says;
/// `m::Sink` (oneway), `m::Join` (client stream) and `m::Chat` (duplex) cover the other shapes.
fn procedures() -> Vec<ProcedureSpec> {
    let echo = typed::unary("m::Echo", RawCodec, |r: Request<Bytes>| async move {
        match r.body.as_ref() {
            b"bad" => Err(Error::invalid_argument("bad request")),
            b"boom" => Err(Error::internal("it broke")),
            _ => Ok(Response::new(r.body)),
        }
    });
    let count = typed::server_stream("m::Count", RawCodec, |r: Request<Bytes>| async move {
        let n: usize = std::str::from_utf8(&r.body)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::invalid_argument("not a number"))?;
        let items = (0..n).map(|i| Ok(Bytes::from(i.to_string())));
        Ok(Response::new(Streaming::new(futures::stream::iter(items))).with_trailer("done", "yes"))
    });
    let sink = typed::oneway("m::Sink", RawCodec, |_r: Request<Bytes>| async { Ok(()) });
    let join = typed::client_stream(
        "m::Join",
        RawCodec,
        |r: Request<Streaming<Bytes>>| async move {
            let mut parts = r.into_body();
            let mut out = Vec::new();
            while let Some(part) = parts.message().await? {
                out.extend_from_slice(&part);
            }
            Ok(Response::new(Bytes::from(out)))
        },
    );
    let chat = typed::duplex(
        "m::Chat",
        RawCodec,
        |r: Request<Streaming<Bytes>>| async move {
            let replies = r.into_body();
            Ok(Response::new(replies))
        },
    );
    vec![echo, count, sink, join, chat]
}

struct Server {
    server: Dispatcher,
    http: std::net::SocketAddr,
    grpc: std::net::SocketAddr,
}

async fn start_server(metrics: &Metrics) -> Server {
    let server = Dispatcher::builder("test-service")
        .inbound(HttpInbound::new(loopback()))
        .inbound(GrpcInbound::new(loopback()))
        .middleware(metrics.middleware())
        .register(procedures())
        .build()
        .expect("valid server");
    server.start().await.expect("server starts");
    let http = server.addr(Transport::Http).unwrap();
    let grpc = server.addr(Transport::Grpc).unwrap();
    Server { server, http, grpc }
}

fn outbound(server: &Server, transport: Transport) -> Arc<dyn Outbound> {
    match transport {
        Transport::Grpc => Arc::new(GrpcOutbound::new(format!("http://{}", server.grpc)).unwrap()),
        _ => Arc::new(HttpOutbound::new(format!("http://{}/", server.http)).unwrap()),
    }
}

fn client(caller: &str, outbound: Arc<dyn Outbound>) -> Client<RawCodec> {
    let config = ClientConfig::new(caller, "test-service", outbound);
    Client::with_codec(config, RawCodec, Encoding::Raw)
}

async fn echo(client: &Client<RawCodec>, body: &'static str) -> Result<Bytes, Error> {
    client
        .unary::<Bytes, Bytes>(
            "m::Echo",
            &Bytes::from_static(body.as_bytes()),
            CallOptions::new(),
        )
        .await
        .map(Response::into_body)
}

/// Makes `ok` successes, `bad` caller failures and `boom` server failures.
async fn echo_calls(client: &Client<RawCodec>, ok: usize, bad: usize, boom: usize) {
    for _ in 0..ok {
        assert_eq!(echo(client, "ok").await.unwrap().as_ref(), b"ok");
    }
    for _ in 0..bad {
        assert_eq!(
            echo(client, "bad").await.unwrap_err().code(),
            Code::InvalidArgument
        );
    }
    for _ in 0..boom {
        assert_eq!(
            echo(client, "boom").await.unwrap_err().code(),
            Code::Internal
        );
    }
}

/// Reads a whole server stream of `n` messages.
async fn count(client: &Client<RawCodec>, n: usize) -> Streaming<Bytes> {
    let body = Bytes::from(n.to_string());
    let mut stream = client
        .server_stream::<Bytes, Bytes>("m::Count", &body, CallOptions::new())
        .await
        .unwrap()
        .into_body();
    let mut got = 0;
    while let Some(m) = stream.message().await.unwrap() {
        assert_eq!(m, Bytes::from(got.to_string()));
        got += 1;
    }
    assert_eq!(got, n);
    stream
}

async fn get(
    addr: std::net::SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> omnirelay_tests::RawResponse {
    let mut request = http::Request::get(format!("http://{addr}{path}"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let request = request.body(Full::new(Bytes::new())).unwrap();
    tokio::time::timeout(Duration::from_secs(5), raw_h1(addr, request))
        .await
        .expect("the scrape answers within 5 s")
}

/// Scrapes `/omnirelay/metrics` over HTTP/1.1 and parses the answer.
async fn scrape(addr: std::net::SocketAddr) -> Vec<Sample> {
    let response = get(addr, "/omnirelay/metrics", None).await;
    assert_eq!(response.status, http::StatusCode::OK);
    assert_eq!(response.headers["content-type"], PROMETHEUS_TEXT);
    let text = std::str::from_utf8(&response.body).expect("UTF-8 text");
    parse_prometheus(text).unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{text}"))
}

// ---------------------------------------------------------------------------------------------
// Tests.

/// Calls made per (transport, caller): successes, caller failures, server failures. All
/// different, so a count landing on the wrong label set shows.
const PLAN: [(Transport, &str, usize, usize, usize); 4] = [
    (Transport::Grpc, "caller-a", 3, 2, 1),
    (Transport::Grpc, "caller-b", 1, 3, 2),
    (Transport::Http, "caller-a", 4, 1, 3),
    (Transport::Http, "caller-b", 2, 4, 1),
];

#[tokio::test]
async fn inbound_counts_match_the_calls_over_grpc_and_http_from_two_callers() {
    let metrics = Metrics::new();
    let server = start_server(&metrics).await;
    for (transport, caller, ok, bad, boom) in PLAN {
        echo_calls(&client(caller, outbound(&server, transport)), ok, bad, boom).await;
    }
    // Server streams: 3 messages over gRPC from caller-a, 2 over SSE from caller-b.
    count(&client("caller-a", outbound(&server, Transport::Grpc)), 3).await;
    count(&client("caller-b", outbound(&server, Transport::Http)), 2).await;
    // A stream call the handler refuses before streaming.
    let refused = client("caller-a", outbound(&server, Transport::Grpc))
        .server_stream::<Bytes, Bytes>("m::Count", &Bytes::from_static(b"x"), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);

    let samples = scrape(server.http).await;
    let fixed = [
        ("direction", "inbound"),
        ("service", "test-service"),
        ("encoding", "raw"),
    ];
    for (transport, caller, ok, bad, boom) in PLAN {
        let labels: Vec<(&str, &str)> = fixed
            .iter()
            .copied()
            .chain([
                ("procedure", "m::Echo"),
                ("rpc_type", "unary"),
                ("caller", caller),
                ("transport", transport.as_str()),
            ])
            .collect();
        let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
            labels
                .iter()
                .copied()
                .chain(extra.iter().copied())
                .collect()
        };
        let what = format!("{transport:?} {caller}");
        let calls = (ok + bad + boom) as f64;
        assert_eq!(
            value(&samples, "omnirelay_calls_total", &labels),
            calls,
            "{what}"
        );
        assert_eq!(
            value(&samples, "omnirelay_successes_total", &labels),
            ok as f64,
            "{what}"
        );
        let bad_labels = with(&[("code", "invalid-argument")]);
        let boom_labels = with(&[("code", "internal")]);
        assert_eq!(
            value(&samples, "omnirelay_caller_failures_total", &bad_labels),
            bad as f64,
            "{what}"
        );
        assert_eq!(
            value(&samples, "omnirelay_server_failures_total", &boom_labels),
            boom as f64,
            "{what}"
        );
        // Only those codes, with the fault they belong to.
        assert_eq!(
            total(&samples, "omnirelay_caller_failures_total", &labels),
            bad as f64
        );
        assert_eq!(
            total(&samples, "omnirelay_server_failures_total", &labels),
            boom as f64
        );
        // The histogram counts every call, by code; its +Inf bucket equals its count.
        let hist = "omnirelay_call_duration_seconds_count";
        assert_eq!(
            value(&samples, hist, &with(&[("code", "ok")])),
            ok as f64,
            "{what}"
        );
        assert_eq!(value(&samples, hist, &bad_labels), bad as f64, "{what}");
        assert_eq!(value(&samples, hist, &boom_labels), boom as f64, "{what}");
        assert_eq!(total(&samples, hist, &labels), calls, "{what}");
        for code in ["ok", "invalid-argument", "internal"] {
            let inf = with(&[("code", code), ("le", "+Inf")]);
            let count = value(&samples, hist, &with(&[("code", code)]));
            assert_eq!(
                value(&samples, "omnirelay_call_duration_seconds_bucket", &inf),
                count
            );
            let sum = value(
                &samples,
                "omnirelay_call_duration_seconds_sum",
                &with(&[("code", code)]),
            );
            assert!(sum >= 0.0 && sum.is_finite(), "{what} {code}: sum {sum}");
        }
    }

    let stream = |caller: &'static str, transport: Transport| {
        [
            ("procedure", "m::Count"),
            ("rpc_type", "server-stream"),
            ("caller", caller),
            ("transport", transport.as_str()),
        ]
    };
    let a = stream("caller-a", Transport::Grpc);
    assert_eq!(value(&samples, "omnirelay_calls_total", &a), 2.0);
    assert_eq!(value(&samples, "omnirelay_successes_total", &a), 1.0);
    let refused_labels: Vec<_> = a
        .iter()
        .copied()
        .chain([("code", "invalid-argument")])
        .collect();
    assert_eq!(
        value(&samples, "omnirelay_caller_failures_total", &refused_labels),
        1.0
    );
    assert_eq!(
        total(&samples, "omnirelay_call_duration_seconds_count", &a),
        2.0
    );
    let b = stream("caller-b", Transport::Http);
    assert_eq!(value(&samples, "omnirelay_calls_total", &b), 1.0);
    assert_eq!(value(&samples, "omnirelay_successes_total", &b), 1.0);
    let b_ok: Vec<_> = b.iter().copied().chain([("code", "ok")]).collect();
    assert_eq!(
        value(&samples, "omnirelay_call_duration_seconds_count", &b_ok),
        1.0
    );

    // Nothing else was counted: every call appears once, inbound.
    let echoes: usize = PLAN.iter().map(|p| p.2 + p.3 + p.4).sum();
    let all_calls = (echoes + 3) as f64;
    assert_eq!(total(&samples, "omnirelay_calls_total", &[]), all_calls);
    assert_eq!(
        total(
            &samples,
            "omnirelay_calls_total",
            &[("direction", "inbound")]
        ),
        all_calls
    );
    let ended = total(&samples, "omnirelay_successes_total", &[])
        + total(&samples, "omnirelay_caller_failures_total", &[])
        + total(&samples, "omnirelay_server_failures_total", &[]);
    assert_eq!(ended, all_calls);
    assert_eq!(
        total(&samples, "omnirelay_call_duration_seconds_count", &[]),
        all_calls
    );

    // The same values through render().
    let rendered = parse_prometheus(&metrics.render()).unwrap();
    assert_eq!(total(&rendered, "omnirelay_calls_total", &[]), all_calls);
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn every_shape_is_counted_when_it_ends() {
    let metrics = Metrics::new();
    let server = start_server(&metrics).await;
    let grpc = client("shapes", outbound(&server, Transport::Grpc));
    let http = client("shapes", outbound(&server, Transport::Http));
    for c in [&grpc, &http] {
        c.oneway::<Bytes>("m::Sink", &Bytes::from_static(b"x"), CallOptions::new())
            .await
            .unwrap();
        let parts = futures::stream::iter([Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
        let joined = c
            .client_stream::<Bytes, Bytes>("m::Join", parts, CallOptions::new())
            .await
            .unwrap();
        assert_eq!(joined.body.as_ref(), b"ab");
    }

    // A duplex call counts in `calls` when it starts, and ends with its response stream.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let mut replies = grpc
        .duplex::<Bytes, Bytes>(
            "m::Chat",
            tokio_stream::wrappers::ReceiverStream::new(rx),
            CallOptions::new(),
        )
        .await
        .unwrap()
        .into_body();
    tx.send(Bytes::from_static(b"ping")).await.unwrap();
    assert_eq!(replies.message().await.unwrap().unwrap().as_ref(), b"ping");
    let duplex = [("procedure", "m::Chat"), ("transport", "grpc")];
    let open = scrape(server.http).await;
    assert_eq!(value(&open, "omnirelay_calls_total", &duplex), 1.0);
    assert_eq!(
        total(&open, "omnirelay_call_duration_seconds_count", &duplex),
        0.0
    );
    drop(tx);
    assert!(replies.message().await.unwrap().is_none());

    // A duplex call the client drops mid-stream ends as cancelled (the server notices the
    // reset, so wait for it, bounded).
    let (tx2, rx2) = tokio::sync::mpsc::channel::<Bytes>(1);
    let mut dropped = http
        .duplex::<Bytes, Bytes>(
            "m::Chat",
            tokio_stream::wrappers::ReceiverStream::new(rx2),
            CallOptions::new(),
        )
        .await
        .unwrap()
        .into_body();
    tx2.send(Bytes::from_static(b"one")).await.unwrap();
    assert_eq!(dropped.message().await.unwrap().unwrap().as_ref(), b"one");
    drop(dropped);

    let cancelled = [
        ("procedure", "m::Chat"),
        ("transport", "http"),
        ("code", "cancelled"),
    ];
    let mut samples = Vec::new();
    // Oneway handlers may finish after the client got its answer, and the cancellation needs
    // the server to see the connection go: poll until both show, for at most 5 s.
    let settled = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            samples = scrape(server.http).await;
            let oneways = total(
                &samples,
                "omnirelay_successes_total",
                &[("rpc_type", "oneway")],
            );
            let gone = value(&samples, "omnirelay_caller_failures_total", &cancelled);
            if oneways == 2.0 && gone == 1.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(settled.is_ok(), "the counts never settled: {samples:#?}");
    drop(tx2);

    for transport in ["grpc", "http"] {
        for (procedure, rpc_type) in [("m::Sink", "oneway"), ("m::Join", "client-stream")] {
            let labels = [
                ("procedure", procedure),
                ("rpc_type", rpc_type),
                ("transport", transport),
                ("caller", "shapes"),
            ];
            assert_eq!(
                value(&samples, "omnirelay_calls_total", &labels),
                1.0,
                "{labels:?}"
            );
            assert_eq!(
                value(&samples, "omnirelay_successes_total", &labels),
                1.0,
                "{labels:?}"
            );
        }
    }
    let grpc_chat = [
        ("procedure", "m::Chat"),
        ("rpc_type", "duplex"),
        ("transport", "grpc"),
    ];
    assert_eq!(value(&samples, "omnirelay_calls_total", &grpc_chat), 1.0);
    assert_eq!(
        value(&samples, "omnirelay_successes_total", &grpc_chat),
        1.0
    );
    let http_chat = [("procedure", "m::Chat"), ("transport", "http")];
    assert_eq!(value(&samples, "omnirelay_calls_total", &http_chat), 1.0);
    assert_eq!(
        total(
            &samples,
            "omnirelay_call_duration_seconds_count",
            &http_chat
        ),
        1.0
    );
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn outbound_metrics_count_the_clients_calls() {
    let server = start_server(&Metrics::new()).await;
    let metrics = Metrics::new();
    // One handle measures both directions; both register the same endpoint on the client's own
    // HTTP inbound.
    let app = Dispatcher::builder("client-app")
        .inbound(HttpInbound::new(loopback()))
        .middleware(metrics.middleware())
        .outbound_middleware(metrics.middleware())
        .outbound(
            "test-service",
            GrpcOutbound::new(format!("http://{}", server.grpc)).unwrap(),
        )
        .register(procedures())
        .build()
        .expect("the same endpoint twice is accepted");
    app.start().await.unwrap();
    let app_http = app.addr(Transport::Http).unwrap();
    let config = app.client_config("test-service").unwrap();
    let c = Client::with_codec(config, RawCodec, Encoding::Raw);
    echo_calls(&c, 2, 1, 3).await;
    // The wrapped stream still carries the server's trailers.
    let stream = count(&c, 4).await;
    assert_eq!(
        stream.trailers().and_then(|t| t.get_str("done")),
        Some("yes")
    );

    let samples = parse_prometheus(&metrics.render()).unwrap();
    let out = [
        ("direction", "outbound"),
        ("service", "test-service"),
        ("caller", "client-app"),
        ("transport", "grpc"),
        ("encoding", "raw"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        out.iter().copied().chain(extra.iter().copied()).collect()
    };
    let echo = with(&[("procedure", "m::Echo"), ("rpc_type", "unary")]);
    assert_eq!(value(&samples, "omnirelay_calls_total", &echo), 6.0);
    assert_eq!(value(&samples, "omnirelay_successes_total", &echo), 2.0);
    let bad: Vec<_> = echo
        .iter()
        .copied()
        .chain([("code", "invalid-argument")])
        .collect();
    let boom: Vec<_> = echo.iter().copied().chain([("code", "internal")]).collect();
    assert_eq!(
        value(&samples, "omnirelay_caller_failures_total", &bad),
        1.0
    );
    assert_eq!(
        value(&samples, "omnirelay_server_failures_total", &boom),
        3.0
    );
    assert_eq!(
        total(&samples, "omnirelay_call_duration_seconds_count", &echo),
        6.0
    );
    let streamed = with(&[("procedure", "m::Count"), ("rpc_type", "server-stream")]);
    assert_eq!(value(&samples, "omnirelay_calls_total", &streamed), 1.0);
    assert_eq!(value(&samples, "omnirelay_successes_total", &streamed), 1.0);
    assert_eq!(
        total(&samples, "omnirelay_call_duration_seconds_count", &streamed),
        1.0
    );
    // Only outbound calls so far; the client's inbound served none.
    assert_eq!(total(&samples, "omnirelay_calls_total", &[]), 7.0);
    assert_eq!(
        total(
            &samples,
            "omnirelay_calls_total",
            &[("direction", "inbound")]
        ),
        0.0
    );

    // The client's own HTTP inbound serves the same values.
    let scraped = scrape(app_http).await;
    assert_eq!(value(&scraped, "omnirelay_calls_total", &echo), 6.0);
    assert_eq!(total(&scraped, "omnirelay_calls_total", &[]), 7.0);
    app.stop().await.unwrap();
    server.server.stop().await.unwrap();
}

/// Many callers, each ending calls with three codes: the series stay within the default cap
/// (plus the pipeline's overflow series), the scrape within the documented 12 MB and valid
/// text, and the counts stay exact: for a label set made before the cap, and in total.
#[tokio::test]
async fn many_callers_with_varied_codes_stay_within_the_series_cap() {
    /// Series in one overflow label set, at most: `calls` and two per code.
    const OVERFLOW_SERIES: usize = 1 + 2 * 17;
    const CALLERS: usize = 600;
    let metrics = Metrics::new();
    let server = start_server(&metrics).await;
    let http = outbound(&server, Transport::Http);
    echo_calls(&client("first", http.clone()), 2, 1, 1).await;
    for i in 0..CALLERS {
        echo_calls(&client(&format!("caller-{i:04}"), http.clone()), 1, 1, 1).await;
    }

    let response = get(server.http, "/omnirelay/metrics", None).await;
    assert_eq!(response.status, http::StatusCode::OK);
    assert!(
        response.body.len() <= 12_000_000,
        "{} bytes",
        response.body.len()
    );
    let text = std::str::from_utf8(&response.body).expect("UTF-8 text");
    let samples =
        parse_prometheus(text).unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{text}"));
    // One `_total` sample per counter series, one `_count` sample per histogram series.
    let series = samples
        .iter()
        .filter(|s| s.name.ends_with("_total") || s.name.ends_with("_count"))
        .count();
    assert!(
        series <= DEFAULT_MAX_SERIES + OVERFLOW_SERIES,
        "{series} series"
    );
    // The cap was reached: later callers were folded.
    let first_folded = (0..CALLERS).find(|i| {
        let caller = format!("caller-{i:04}");
        value(&samples, "omnirelay_calls_total", &[("caller", &caller)]) == 0.0
    });
    assert!(first_folded.is_some(), "no caller was folded");

    // Exact counts: the first caller's label set, made well before the cap...
    let first = [("caller", "first"), ("transport", "http")];
    assert_eq!(value(&samples, "omnirelay_calls_total", &first), 4.0);
    assert_eq!(value(&samples, "omnirelay_successes_total", &first), 2.0);
    let code = |c| [first[0], first[1], ("code", c)];
    assert_eq!(
        value(
            &samples,
            "omnirelay_caller_failures_total",
            &code("invalid-argument")
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "omnirelay_server_failures_total",
            &code("internal")
        ),
        1.0
    );
    // ... and every call, counted once in `calls` and once in an outcome.
    let calls = (4 + 3 * CALLERS) as f64;
    let echo = [("procedure", "m::Echo")];
    assert_eq!(total(&samples, "omnirelay_calls_total", &echo), calls);
    assert_eq!(
        total(&samples, "omnirelay_successes_total", &echo),
        (2 + CALLERS) as f64
    );
    assert_eq!(
        total(&samples, "omnirelay_caller_failures_total", &echo),
        (1 + CALLERS) as f64
    );
    assert_eq!(
        total(&samples, "omnirelay_server_failures_total", &echo),
        (1 + CALLERS) as f64
    );
    assert_eq!(
        total(&samples, "omnirelay_call_duration_seconds_count", &echo),
        calls
    );
    let other = [
        ("caller", OVERFLOW_LABEL),
        ("transport", OVERFLOW_LABEL),
        ("encoding", OVERFLOW_LABEL),
    ];
    assert!(value(&samples, "omnirelay_calls_total", &other) > 0.0);
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn the_endpoint_refuses_other_methods_and_negotiates_openmetrics() {
    let metrics = Metrics::new();
    let server = start_server(&metrics).await;
    echo_calls(&client("c", outbound(&server, Transport::Http)), 1, 0, 0).await;

    for method in [http::Method::POST, http::Method::PUT, http::Method::DELETE] {
        let request = http::Request::builder()
            .method(method.clone())
            .uri(format!("http://{}/omnirelay/metrics", server.http))
            .body(Full::new(Bytes::from_static(b"x")))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(5), raw_h1(server.http, request))
            .await
            .unwrap();
        assert_eq!(
            response.status,
            http::StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
    }

    let open = get(
        server.http,
        "/omnirelay/metrics",
        Some("application/openmetrics-text"),
    )
    .await;
    assert_eq!(open.status, http::StatusCode::OK);
    assert_eq!(open.headers["content-type"], OPENMETRICS_TEXT);
    let text = std::str::from_utf8(&open.body).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE omnirelay_calls counter\n"), "{text}");
    assert!(
        text.contains("# UNIT omnirelay_call_duration_seconds seconds\n"),
        "{text}"
    );

    // What Prometheus itself sends gets OpenMetrics too; a plain scrape gets 0.0.4 text.
    let prometheus =
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    let negotiated = get(server.http, "/omnirelay/metrics", Some(prometheus)).await;
    assert_eq!(negotiated.headers["content-type"], OPENMETRICS_TEXT);
    let plain = get(server.http, "/omnirelay/metrics", Some("text/plain")).await;
    assert_eq!(plain.headers["content-type"], PROMETHEUS_TEXT);
    let parsed = parse_prometheus(std::str::from_utf8(&plain.body).unwrap()).unwrap();
    assert_eq!(total(&parsed, "omnirelay_calls_total", &[]), 1.0);
    server.server.stop().await.unwrap();
}

#[test]
fn two_different_metrics_cannot_claim_one_path() {
    let err = Dispatcher::builder("s")
        .middleware(Metrics::new().middleware())
        .outbound_middleware(Metrics::new().middleware())
        .build()
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    // At two paths, or with no endpoint at all, they may.
    Dispatcher::builder("s")
        .middleware(Metrics::new().middleware())
        .outbound_middleware(Metrics::new().middleware().path("/outbound-metrics"))
        .middleware(Metrics::new().middleware().without_endpoint())
        .build()
        .unwrap();
}
