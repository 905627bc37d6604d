//! The gRPC interop test client: runs the standard `grpc.testing.TestService` interop cases
//! through OmniRelay's generated typed clients and reports one line per case.
//!
//! ```text
//! interop-client --server_port 50051 [--server_host 127.0.0.1] [--test_cases all|a,b,...]
//!                [--transport grpc|http]
//! ```
//!
//! With `--transport http` the same cases run over YARPC-HTTP (unary calls as POSTs, server
//! streams as SSE, client streams and duplex calls over WebSocket) against `interop-server
//! --http-port`, and `--server_port` is that HTTP port. HTTP unary responses carry no trailers,
//! so there `custom_metadata` looks for the echoed trailer among the response headers.
//!
//! Prints `PASS name` or `FAIL name: reason` for each case, then `N passed, M failed`. Exits 0
//! when every case passed, 1 when one failed, 2 on bad arguments. Each case has its own timeout,
//! so an unresponsive server fails the case instead of hanging the run.
//!
//! The cases and their assertions follow gRPC's interop test descriptions
//! (`doc/interop-test-descriptions.md`) and grpc-go's `interop/test_utils.go`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use omnirelay::transport::grpc::GrpcOutbound;
use omnirelay::transport::http::HttpOutbound;
use omnirelay::{CallOptions, Code, Dispatcher, Error, Headers, Response, Streaming};
use omnirelay_examples::grpc_testing::{
    EchoStatus, Empty, Payload, PayloadType, ResponseParameters, SimpleRequest,
    StreamingInputCallRequest, StreamingOutputCallRequest, StreamingOutputCallResponse,
    TestServiceClient, UnimplementedServiceClient,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The default cases, in the order grpc's interop runner uses.
const CASES: [&str; 14] = [
    "empty_unary",
    "large_unary",
    "client_streaming",
    "server_streaming",
    "ping_pong",
    "empty_stream",
    "timeout_on_sleeping_server",
    "cancel_after_begin",
    "cancel_after_first_response",
    "status_code_and_message",
    "special_status_message",
    "custom_metadata",
    "unimplemented_method",
    "unimplemented_service",
];

/// Transports the client can speak.
const TRANSPORTS: [&str; 2] = ["grpc", "http"];

const LARGE_REQUEST: usize = 271_828;
const LARGE_RESPONSE: usize = 314_159;
const INPUT_SIZES: [usize; 4] = [27_182, 8, 1_828, 45_904];
const INPUT_TOTAL: i32 = 74_922;
const OUTPUT_SIZES: [usize; 4] = [31_415, 9, 2_653, 58_979];

const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
const ECHO_INITIAL_VALUE: &str = "test_initial_metadata_value";
const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";
const ECHO_TRAILING_VALUE: &[u8] = &[0xab, 0xab, 0xab];

const STATUS_MESSAGE: &str = "test status message";
const SPECIAL_STATUS_MESSAGE: &str =
    "\t\ntest with whitespace\r\nand Unicode BMP \u{263A} and non-BMP \u{1F608}\t\n";

#[derive(Parser, Debug)]
#[command(
    name = "interop-client",
    about = "gRPC interop test client on OmniRelay's typed clients"
)]
struct Args {
    /// The server's host name or IP address.
    #[arg(long = "server_host", default_value = "127.0.0.1")]
    server_host: String,
    /// The server's port.
    #[arg(long = "server_port")]
    server_port: u16,
    /// Comma-separated test cases to run, or `all` for the 14 default cases.
    #[arg(long = "test_cases", alias = "test_case", default_value = "all")]
    test_cases: String,
    /// The transport to test: `grpc`, or `http` (YARPC-HTTP; `--server_port` is then the
    /// server's HTTP port).
    #[arg(long = "transport", default_value = "grpc")]
    transport: String,
    /// Seconds each case may take before it fails.
    #[arg(long = "case_timeout", default_value_t = 10)]
    case_timeout: u64,
}

/// What a case returns: `Err` holds the reason it failed.
type CaseResult = Result<(), String>;

/// The clients every case may use.
struct Clients {
    test: TestServiceClient,
    unimplemented: UnimplementedServiceClient,
    /// Whether the calls go over YARPC-HTTP.
    http: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let cases = match parse_cases(&args.test_cases) {
        Ok(cases) => cases,
        Err(msg) => return usage_error(&msg),
    };
    if !TRANSPORTS.contains(&args.transport.as_str()) {
        return usage_error(&format!(
            "transport {:?} is not supported; supported transports: {}",
            args.transport,
            TRANSPORTS.join(", ")
        ));
    }
    if args.case_timeout == 0 {
        return usage_error("--case_timeout must be at least 1 second");
    }
    let clients = match connect(&args) {
        Ok(clients) => clients,
        Err(err) => return usage_error(&format!("cannot set up the client: {err}")),
    };

    let limit = Duration::from_secs(args.case_timeout);
    let (mut passed, mut failed) = (0usize, 0usize);
    for name in cases {
        let result = match tokio::time::timeout(limit, run_case(name, &clients)).await {
            Ok(result) => result,
            Err(_) => Err(format!("timed out after {}s", limit.as_secs())),
        };
        match result {
            Ok(()) => {
                passed += 1;
                say(&format!("PASS {name}"));
            }
            Err(reason) => {
                failed += 1;
                say(&format!("FAIL {name}: {}", one_line(&reason)));
            }
        }
    }
    say(&format!("{passed} passed, {failed} failed"));
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Prints one report line; a closed stdout (`| head`) is not worth a panic.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Keeps a report on one line.
fn one_line(text: &str) -> String {
    text.replace('\r', "\\r").replace('\n', "\\n")
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("interop-client: {msg}");
    ExitCode::from(2)
}

/// Parses `--test_cases`: `all` or a comma-separated list of known names, in the order given.
fn parse_cases(list: &str) -> Result<Vec<&'static str>, String> {
    let mut cases = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "all" {
            cases.extend(CASES);
            continue;
        }
        match CASES.iter().find(|c| **c == name) {
            Some(case) => cases.push(*case),
            None => {
                return Err(format!(
                    "unknown test case {name:?}; valid test cases: all, {}",
                    CASES.join(", ")
                ));
            }
        }
    }
    if cases.is_empty() {
        return Err(format!(
            "no test cases given; valid test cases: all, {}",
            CASES.join(", ")
        ));
    }
    Ok(cases)
}

fn connect(args: &Args) -> omnirelay::Result<Clients> {
    let host = if args.server_host.contains(':') && !args.server_host.starts_with('[') {
        format!("[{}]", args.server_host)
    } else {
        args.server_host.clone()
    };
    let uri = format!("http://{host}:{}", args.server_port);
    let http = args.transport == "http";
    let builder = Dispatcher::builder("interop-client");
    let dispatcher = if http {
        builder.outbound("interop", HttpOutbound::new(uri)?)
    } else {
        builder.outbound("interop", GrpcOutbound::new(uri)?)
    }
    .build()?;
    let config = dispatcher.client_config("interop")?;
    Ok(Clients {
        test: TestServiceClient::new(config.clone()),
        unimplemented: UnimplementedServiceClient::new(config),
        http,
    })
}

async fn run_case(name: &str, c: &Clients) -> CaseResult {
    match name {
        "empty_unary" => empty_unary(&c.test).await,
        "large_unary" => large_unary(&c.test).await,
        "client_streaming" => client_streaming(&c.test).await,
        "server_streaming" => server_streaming(&c.test).await,
        "ping_pong" => ping_pong(&c.test).await,
        "empty_stream" => empty_stream(&c.test).await,
        "timeout_on_sleeping_server" => timeout_on_sleeping_server(&c.test).await,
        "cancel_after_begin" => cancel_after_begin(&c.test).await,
        "cancel_after_first_response" => cancel_after_first_response(&c.test).await,
        "status_code_and_message" => status_code_and_message(&c.test).await,
        "special_status_message" => special_status_message(&c.test).await,
        "custom_metadata" => custom_metadata(&c.test, c.http).await,
        "unimplemented_method" => unimplemented_method(&c.test).await,
        "unimplemented_service" => unimplemented_service(&c.unimplemented).await,
        other => Err(format!("no such test case {other:?}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn payload(size: usize) -> Option<Payload> {
    Some(Payload {
        r#type: PayloadType::Compressable as i32,
        body: vec![0; size],
    })
}

fn size_i32(size: usize) -> i32 {
    i32::try_from(size).expect("interop sizes fit in an i32")
}

/// A duplex request asking for one response of `response_size` bytes, carrying `request_size`.
fn duplex_request(response_size: usize, request_size: usize) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        response_type: PayloadType::Compressable as i32,
        response_parameters: vec![ResponseParameters {
            size: size_i32(response_size),
            ..Default::default()
        }],
        payload: payload(request_size),
        ..Default::default()
    }
}

/// Fails unless `payload` is a COMPRESSABLE payload of `size` zero bytes.
fn check_payload(what: &str, payload: Option<&Payload>, size: usize) -> CaseResult {
    let Some(payload) = payload else {
        return Err(format!("{what}: the response carried no payload"));
    };
    if payload.r#type != PayloadType::Compressable as i32 {
        return Err(format!(
            "{what}: payload type {} instead of COMPRESSABLE (0)",
            payload.r#type
        ));
    }
    if payload.body.len() != size {
        return Err(format!(
            "{what}: payload of {} bytes instead of {size}",
            payload.body.len()
        ));
    }
    if let Some(pos) = payload.body.iter().position(|b| *b != 0) {
        return Err(format!(
            "{what}: payload byte {pos} is {:#04x}, expected all zeros",
            payload.body[pos]
        ));
    }
    Ok(())
}

fn call_failed(what: &str, err: &Error) -> String {
    format!("{what} failed with {} (code {})", err, err.code().as_i32())
}

/// Fails unless `err` has `code` and, when given, exactly `message`.
fn check_error(what: &str, err: &Error, code: Code, message: Option<&str>) -> CaseResult {
    if err.code() != code {
        return Err(format!(
            "{what}: expected status {code} ({}), got {} ({}) with message {:?}",
            code.as_i32(),
            err.code(),
            err.code().as_i32(),
            err.message()
        ));
    }
    if let Some(message) = message
        && err.message() != message
    {
        return Err(format!(
            "{what}: expected message {message:?}, got {:?}",
            err.message()
        ));
    }
    Ok(())
}

/// The error a call should have failed with: from the call itself, or from its unary response.
fn expect_unary_error<T: std::fmt::Debug>(
    what: &str,
    result: omnirelay::Result<Response<T>>,
) -> Result<Error, String> {
    match result {
        Err(err) => Ok(err),
        Ok(response) => Err(format!(
            "{what} succeeded ({:?}) but should have failed",
            response.body
        )),
    }
}

/// The error a streaming call should end with: from the call itself, or as the stream's end
/// after any number of messages.
async fn expect_stream_error<T>(
    what: &str,
    result: omnirelay::Result<Response<Streaming<T>>>,
) -> Result<Error, String> {
    let mut stream = match result {
        Err(err) => return Ok(err),
        Ok(response) => response.body,
    };
    loop {
        match stream.message().await {
            Err(err) => return Ok(err),
            Ok(Some(_)) => {}
            Ok(None) => return Err(format!("{what} ended with OK but should have failed")),
        }
    }
}

/// Reads the next message of a response stream, failing on an error or an early end.
async fn next_message<T>(what: &str, stream: &mut Streaming<T>) -> Result<T, String> {
    match stream.message().await {
        Ok(Some(message)) => Ok(message),
        Ok(None) => Err(format!("{what}: the stream ended early")),
        Err(err) => Err(call_failed(what, &err)),
    }
}

/// Fails unless the stream ends cleanly now, with no further message.
async fn expect_end<T>(what: &str, stream: &mut Streaming<T>) -> CaseResult {
    match stream.message().await {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(format!("{what}: got a message after the last expected one")),
        Err(err) => Err(call_failed(what, &err)),
    }
}

/// A request stream the case controls: messages are sent one by one through the sender;
/// dropping it half-closes the call.
fn request_channel<T>() -> (mpsc::Sender<T>, ReceiverStream<T>) {
    let (tx, rx) = mpsc::channel(4);
    (tx, ReceiverStream::new(rx))
}

async fn send<T>(what: &str, tx: &mpsc::Sender<T>, message: T) -> CaseResult {
    tx.send(message)
        .await
        .map_err(|_| format!("{what}: the call stopped reading requests"))
}

/// Waits until the transport has let go of the request stream: the sign a cancelled call was
/// torn down (its HTTP/2 stream reset) rather than left running in the background.
async fn expect_torn_down<T>(what: &str, tx: &mpsc::Sender<T>) -> CaseResult {
    match tokio::time::timeout(Duration::from_secs(2), tx.closed()).await {
        Ok(()) => Ok(()),
        Err(_) => Err(format!(
            "{what}: 2s after the call was cancelled the transport still holds its request \
             stream, so the HTTP/2 stream was not reset"
        )),
    }
}

fn echo_metadata() -> CallOptions {
    CallOptions::new()
        .header(ECHO_INITIAL, ECHO_INITIAL_VALUE)
        .header(ECHO_TRAILING, ECHO_TRAILING_VALUE)
}

fn check_initial(what: &str, headers: &Headers) -> CaseResult {
    match headers.get(ECHO_INITIAL) {
        Some(v) if v.as_ref() == ECHO_INITIAL_VALUE.as_bytes() => Ok(()),
        Some(v) => Err(format!(
            "{what}: response header {ECHO_INITIAL} is {v:?}, expected {ECHO_INITIAL_VALUE:?}"
        )),
        None => Err(format!(
            "{what}: response header {ECHO_INITIAL} missing (headers: {headers:?})"
        )),
    }
}

fn check_trailing(what: &str, trailers: &Headers) -> CaseResult {
    match trailers.get(ECHO_TRAILING) {
        Some(v) if v.as_ref() == ECHO_TRAILING_VALUE => Ok(()),
        Some(v) => Err(format!(
            "{what}: trailer {ECHO_TRAILING} is {v:?}, expected {ECHO_TRAILING_VALUE:?}"
        )),
        None => Err(format!(
            "{what}: trailer {ECHO_TRAILING} missing (trailers: {trailers:?})"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// The cases

/// EmptyCall with an empty request gets an empty response.
async fn empty_unary(client: &TestServiceClient) -> CaseResult {
    let response = client
        .empty_call(Empty {})
        .await
        .map_err(|e| call_failed("EmptyCall", &e))?;
    if response.body != (Empty {}) {
        return Err(format!("EmptyCall: non-empty response {:?}", response.body));
    }
    Ok(())
}

/// UnaryCall with a 271828-byte payload gets a 314159-byte payload back.
async fn large_unary(client: &TestServiceClient) -> CaseResult {
    let request = SimpleRequest {
        response_type: PayloadType::Compressable as i32,
        response_size: size_i32(LARGE_RESPONSE),
        payload: payload(LARGE_REQUEST),
        ..Default::default()
    };
    let response = client
        .unary_call(request)
        .await
        .map_err(|e| call_failed("UnaryCall", &e))?;
    check_payload("UnaryCall", response.body.payload.as_ref(), LARGE_RESPONSE)
}

/// StreamingInputCall with payloads of 27182, 8, 1828 and 45904 bytes: aggregated size 74922.
async fn client_streaming(client: &TestServiceClient) -> CaseResult {
    let requests = INPUT_SIZES.map(|size| StreamingInputCallRequest {
        payload: payload(size),
        ..Default::default()
    });
    let response = client
        .streaming_input_call(futures::stream::iter(requests))
        .await
        .map_err(|e| call_failed("StreamingInputCall", &e))?;
    let got = response.body.aggregated_payload_size;
    if got != INPUT_TOTAL {
        return Err(format!(
            "StreamingInputCall: aggregated_payload_size {got}, expected {INPUT_TOTAL}"
        ));
    }
    Ok(())
}

/// StreamingOutputCall asking for 31415, 9, 2653 and 58979 bytes gets exactly those four
/// responses, in order, then OK.
async fn server_streaming(client: &TestServiceClient) -> CaseResult {
    let request = StreamingOutputCallRequest {
        response_type: PayloadType::Compressable as i32,
        response_parameters: OUTPUT_SIZES
            .iter()
            .map(|size| ResponseParameters {
                size: size_i32(*size),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut stream = client
        .streaming_output_call(request)
        .await
        .map_err(|e| call_failed("StreamingOutputCall", &e))?
        .body;
    for (i, size) in OUTPUT_SIZES.iter().enumerate() {
        let what = format!("StreamingOutputCall response {}", i + 1);
        let response: StreamingOutputCallResponse = next_message(&what, &mut stream).await?;
        check_payload(&what, response.payload.as_ref(), *size)?;
    }
    expect_end("StreamingOutputCall", &mut stream).await
}

/// FullDuplexCall: four rounds of one request, one response, then half-close and OK.
async fn ping_pong(client: &TestServiceClient) -> CaseResult {
    let (tx, requests) = request_channel();
    let mut rounds = OUTPUT_SIZES.iter().zip(INPUT_SIZES.iter()).enumerate();
    let (_, (resp0, req0)) = rounds.next().expect("four rounds");
    send("FullDuplexCall", &tx, duplex_request(*resp0, *req0)).await?;
    let mut stream = client
        .full_duplex_call(requests)
        .await
        .map_err(|e| call_failed("FullDuplexCall", &e))?
        .body;
    let response = next_message("FullDuplexCall response 1", &mut stream).await?;
    check_payload(
        "FullDuplexCall response 1",
        response.payload.as_ref(),
        *resp0,
    )?;
    for (i, (resp_size, req_size)) in rounds {
        let what = format!("FullDuplexCall response {}", i + 1);
        send(&what, &tx, duplex_request(*resp_size, *req_size)).await?;
        let response = next_message(&what, &mut stream).await?;
        check_payload(&what, response.payload.as_ref(), *resp_size)?;
    }
    drop(tx);
    expect_end("FullDuplexCall", &mut stream).await
}

/// FullDuplexCall that half-closes at once: no responses, OK.
async fn empty_stream(client: &TestServiceClient) -> CaseResult {
    let mut stream = client
        .full_duplex_call(futures::stream::empty())
        .await
        .map_err(|e| call_failed("FullDuplexCall", &e))?
        .body;
    expect_end("FullDuplexCall", &mut stream).await
}

/// FullDuplexCall with a 1 ms deadline and a 27182-byte request the server never answers ends
/// with DEADLINE_EXCEEDED.
async fn timeout_on_sleeping_server(client: &TestServiceClient) -> CaseResult {
    let (tx, requests) = request_channel();
    let request = StreamingOutputCallRequest {
        response_type: PayloadType::Compressable as i32,
        payload: payload(27_182),
        ..Default::default()
    };
    send("FullDuplexCall", &tx, request).await?;
    let result = client
        .full_duplex_call_with(requests, CallOptions::new().ttl(Duration::from_millis(1)))
        .await;
    let err = expect_stream_error("FullDuplexCall with a 1 ms deadline", result).await?;
    drop(tx);
    check_error(
        "FullDuplexCall with a 1 ms deadline",
        &err,
        Code::DeadlineExceeded,
        None,
    )
}

/// StreamingInputCall cancelled before any request is sent: CANCELLED.
///
/// Cancelling a call is dropping its future: the transport resets the HTTP/2 stream and the
/// status is produced locally, as grpc-go and grpc-java clients do.
async fn cancel_after_begin(client: &TestServiceClient) -> CaseResult {
    let (tx, requests) = request_channel::<StreamingInputCallRequest>();
    let call = client.streaming_input_call(requests);
    let err = tokio::select! {
        result = call => {
            return Err(match result {
                Ok(r) => format!(
                    "StreamingInputCall with no requests sent finished with OK ({:?}) before \
                     it was cancelled",
                    r.body
                ),
                Err(e) => call_failed("StreamingInputCall (before it was cancelled)", &e),
            });
        }
        () = tokio::time::sleep(Duration::from_millis(50)) => {
            Error::cancelled("the client cancelled the call")
        }
    };
    // `call` has been dropped: the call is cancelled.
    expect_torn_down("StreamingInputCall", &tx).await?;
    check_error("StreamingInputCall", &err, Code::Cancelled, None)
}

/// FullDuplexCall cancelled after its first response: CANCELLED.
async fn cancel_after_first_response(client: &TestServiceClient) -> CaseResult {
    let (tx, requests) = request_channel();
    send("FullDuplexCall", &tx, duplex_request(31_415, 27_182)).await?;
    let mut stream = client
        .full_duplex_call(requests)
        .await
        .map_err(|e| call_failed("FullDuplexCall", &e))?
        .body;
    let response = next_message("FullDuplexCall response 1", &mut stream).await?;
    check_payload(
        "FullDuplexCall response 1",
        response.payload.as_ref(),
        31_415,
    )?;
    // Cancel: drop the response stream while the request stream is still open.
    drop(stream);
    let err = Error::cancelled("the client cancelled the call");
    expect_torn_down("FullDuplexCall", &tx).await?;
    drop(tx);
    check_error("FullDuplexCall", &err, Code::Cancelled, None)
}

/// UnaryCall and FullDuplexCall asking for status UNKNOWN with a message get exactly that.
async fn status_code_and_message(client: &TestServiceClient) -> CaseResult {
    let status = EchoStatus {
        code: Code::Unknown.as_i32(),
        message: STATUS_MESSAGE.to_owned(),
    };
    let request = SimpleRequest {
        response_status: Some(status.clone()),
        ..Default::default()
    };
    let err = expect_unary_error("UnaryCall", client.unary_call(request).await)?;
    check_error("UnaryCall", &err, Code::Unknown, Some(STATUS_MESSAGE))?;

    let request = StreamingOutputCallRequest {
        response_status: Some(status),
        ..Default::default()
    };
    let result = client
        .full_duplex_call(futures::stream::iter([request]))
        .await;
    let err = expect_stream_error("FullDuplexCall", result).await?;
    check_error("FullDuplexCall", &err, Code::Unknown, Some(STATUS_MESSAGE))
}

/// UnaryCall asking for a status message with whitespace and non-ASCII text gets it verbatim.
async fn special_status_message(client: &TestServiceClient) -> CaseResult {
    let request = SimpleRequest {
        response_status: Some(EchoStatus {
            code: Code::Unknown.as_i32(),
            message: SPECIAL_STATUS_MESSAGE.to_owned(),
        }),
        ..Default::default()
    };
    let err = expect_unary_error("UnaryCall", client.unary_call(request).await)?;
    check_error(
        "UnaryCall",
        &err,
        Code::Unknown,
        Some(SPECIAL_STATUS_MESSAGE),
    )
}

/// UnaryCall and FullDuplexCall sending `x-grpc-test-echo-initial` and
/// `x-grpc-test-echo-trailing-bin` get them back as a response header and a trailer (over
/// HTTP, a unary call's trailers arrive as headers).
async fn custom_metadata(client: &TestServiceClient, http: bool) -> CaseResult {
    let request = SimpleRequest {
        response_type: PayloadType::Compressable as i32,
        response_size: size_i32(LARGE_RESPONSE),
        payload: payload(LARGE_REQUEST),
        ..Default::default()
    };
    let response = client
        .unary_call_with(request, echo_metadata())
        .await
        .map_err(|e| call_failed("UnaryCall", &e))?;
    check_payload("UnaryCall", response.body.payload.as_ref(), LARGE_RESPONSE)?;
    check_initial("UnaryCall", &response.meta.headers)?;
    let unary_trailers = if http {
        &response.meta.headers
    } else {
        &response.meta.trailers
    };
    check_trailing("UnaryCall", unary_trailers)?;

    let (tx, requests) = request_channel();
    send(
        "FullDuplexCall",
        &tx,
        duplex_request(LARGE_RESPONSE, LARGE_REQUEST),
    )
    .await?;
    let response = client
        .full_duplex_call_with(requests, echo_metadata())
        .await
        .map_err(|e| call_failed("FullDuplexCall", &e))?;
    let (meta, mut stream) = response.into_parts();
    let first = next_message("FullDuplexCall", &mut stream).await?;
    check_payload("FullDuplexCall", first.payload.as_ref(), LARGE_RESPONSE)?;
    drop(tx);
    expect_end("FullDuplexCall", &mut stream).await?;
    check_initial("FullDuplexCall", &meta.headers)?;
    // A streaming response's trailers arrive after its last message.
    let trailers = stream.trailers().cloned().unwrap_or_default();
    check_trailing("FullDuplexCall", &trailers)
}

/// TestService.UnimplementedCall: UNIMPLEMENTED.
async fn unimplemented_method(client: &TestServiceClient) -> CaseResult {
    let err = expect_unary_error(
        "TestService.UnimplementedCall",
        client.unimplemented_call(Empty {}).await,
    )?;
    check_error(
        "TestService.UnimplementedCall",
        &err,
        Code::Unimplemented,
        None,
    )
}

/// UnimplementedService.UnimplementedCall: UNIMPLEMENTED.
async fn unimplemented_service(client: &UnimplementedServiceClient) -> CaseResult {
    let err = expect_unary_error(
        "UnimplementedService.UnimplementedCall",
        client.unimplemented_call(Empty {}).await,
    )?;
    check_error(
        "UnimplementedService.UnimplementedCall",
        &err,
        Code::Unimplemented,
        None,
    )
}
