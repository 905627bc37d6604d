//! YARPC over HTTP (DESIGN §5): wire compatible with yarpc-go's HTTP transport for unary and
//! oneway calls, and — beyond yarpc-go, after OmniRelay .NET — streaming over Server-Sent Events
//! and WebSocket, so every procedure shape works over HTTP.
//!
//! # Unary and oneway
//!
//! A call is a `POST` to any path (the procedure travels in a header), with the encoded
//! message as the body. Request headers:
//!
//! | header | |
//! |---|---|
//! | `Rpc-Caller`, `Rpc-Service`, `Rpc-Procedure`, `Rpc-Encoding` | required |
//! | `Context-TTL-MS` | whole milliseconds; `Rpc-Ttl-Ms` and `Rpc-Deadline` (RFC 3339) are accepted too, in that order of precedence. Required for unary and oneway calls, optional for streams |
//! | `Rpc-Shard-Key`, `Rpc-Routing-Key`, `Rpc-Routing-Delegate`, `Rpc-Caller-Procedure` | optional |
//! | `Rpc-Header-<key>` | application headers; keys are lower-cased |
//! | `traceparent`, `tracestate` | W3C trace context, unprefixed; application headers of those names |
//! | `Rpc-Accepts-Both-Response-Error: true` | the error-body mode, below |
//!
//! The inbound checks a request in yarpc-go's order, with its messages: a method other than
//! `POST` is 404 (`request method was GET but only POST is allowed`); missing headers are 400
//! (`missing service name, procedure, caller name, encoding`, naming those missing); a service
//! other than the dispatcher's is 501 (`unrecognized service name "x", available services:
//! "svc"`); an unknown procedure is 501 (`unrecognized procedure "p" for service "svc"`); an
//! unknown or unaccepted encoding is 400; a bad TTL is 400 (`invalid TTL "moo" for service "svc"
//! and procedure "p"`); a missing TTL is 400 (`missing TTL`); a handler that passes the
//! deadline is 504 (`call to procedure "p" of service "svc" from caller "c" timed out after
//! 1s`). The inbound enforces the TTL on reading the body and on the handler.
//!
//! A success is `200` with `Rpc-Status: success`, `Rpc-Service` (the echo of the service),
//! `Content-Type` for the encoding (`application/x-protobuf`, `application/json`,
//! `application/octet-stream`) and the response's application headers as `Rpc-Header-<key>`.
//! HTTP/1.1 has no place for trailers a client reliably reads, so a unary response's
//! [`trailers`](crate::ResponseMeta::trailers) are sent as `Rpc-Header-<key>` headers too, after
//! the headers, and a client finds them in [`ResponseMeta::headers`](crate::ResponseMeta).
//! Application header values cross as raw bytes: any byte but control characters (binary values,
//! `-bin` keys included, are not base64-encoded, unlike gRPC).
//!
//! An error has the HTTP status of its code (DESIGN §4), `Rpc-Status: error` (yarpc-go sets
//! `error` only for application errors; its clients look at the HTTP status first, so this is
//! compatible), `Rpc-Error-Code: <code text>`, `Rpc-Error-Message` (control characters replaced
//! by spaces, as Go's net/http does) and, with details, `Grpc-Status-Details-Bin` (base64). The
//! body depends on the mode the client asked for:
//! - legacy (no `Rpc-Accepts-Both-Response-Error`): `text/plain; charset=utf8`, the message and
//!   a newline — the exact message;
//! - both-response-error mode: `Rpc-Both-Response-Error: true` and the error details (if any) as
//!   the body.
//!
//! The outbound recovers the code from `Rpc-Error-Code` in any spelling (`invalid-argument`,
//! `INVALID_ARGUMENT`, `InvalidArgument`), else from an OmniRelay .NET JSON error body, else from
//! the HTTP status; and the message from the body (legacy) or `Rpc-Error-Message` (both mode).
//!
//! Oneway: the inbound reads the whole body, answers `200` with an empty body, then runs the
//! handler with no deadline. The outbound takes any `2xx` as the acknowledgement.
//!
//! # Server streaming: Server-Sent Events
//!
//! A `GET` or `POST` with `Accept: text/event-stream` and the same headers (the TTL optional)
//! calls a server-streaming procedure; the body, possibly empty, is the request message (a `POST`
//! that accepts an event stream but calls a unary procedure is served as unary). The
//! answer is `200`, `Content-Type: text/event-stream`, `Rpc-Encoding` and the response headers
//! as `Rpc-Header-<key>`, then one event per message, then one final event:
//!
//! ```text
//! data: {"message":"hi"}                 a JSON message, as is
//!
//! data: CgJoaQ==                         a protobuf or raw message, base64
//! encoding: base64
//!
//! event: complete                        the end; "headers" are the response's trailers
//! data: {"encoding":"json","transport":"http","headers":{"k":"v"}}
//!
//! event: error                           or the end with an error
//! data: {"code":"unavailable","status":"Unavailable","message":"..."}
//! ```
//!
//! Errors found before the stream starts are ordinary HTTP error responses.
//!
//! # Client streaming and duplex: WebSocket
//!
//! A `GET` WebSocket upgrade (HTTP/1.1) with the same headers calls a client-streaming or
//! duplex procedure. The request is checked before the upgrade, so a bad one gets an ordinary
//! HTTP error response. After it, every WebSocket binary message is one frame, the first byte
//! its type (the values OmniRelay .NET uses):
//!
//! | type | byte | payload |
//! |---|---|---|
//! | request data | `0x01` | one request message |
//! | request complete | `0x02` | empty: the client's half-close |
//! | request error | `0x03` | JSON error, as in SSE: the client failed its request stream |
//! | response headers | `0x10` | JSON `{"headers":{...}}`: sent once the handler has answered |
//! | response data | `0x11` | one response message |
//! | response complete | `0x12` | JSON as SSE's `complete` event, `headers` the trailers |
//! | response error | `0x13` | JSON error |
//!
//! A client-streaming call's single response is one response-data frame. A client that closes
//! the socket before its request-complete frame cancels the call. A frame over the limit, a text
//! message, or a frame of an unknown type ends the call with a response error
//! (`resource-exhausted` or `invalid-argument`). In the JSON header maps, values of `-bin` keys
//! are base64, others UTF-8 text.
//!
//! # Fixed paths (`GET`/`HEAD`)
//!
//! `/omnirelay/introspect` ([`crate::introspect::Introspection`]), `/healthz` (the process is up)
//! and `/readyz` (running, not draining, every outbound that tracks peers has one; `503` with
//! `Retry-After: 1` otherwise), both answering [`crate::introspect::HealthReport`].
//!
//! # Drain
//!
//! While the dispatcher stops, the inbound keeps its port open and answers every new call
//! `503 unavailable` with `Retry-After: 1` (and `Connection: close` on HTTP/1.1) until the calls
//! in flight — streams and oneway handlers included — have finished or the drain timeout passed;
//! then it closes its connections.
//!
//! # Limits
//!
//! [`HttpInbound`] limits the request headers (default 32 KiB), request bodies (default 4 MiB)
//! and streamed messages (WebSocket frames and SSE messages, default 4 MiB); over a limit is
//! `resource-exhausted` (HTTP 429) naming it. [`HttpOutbound`] limits response bodies and
//! streamed messages the same way.

mod connection;
mod frame;
mod inbound;
mod outbound;
mod sse;
mod wire;

pub use inbound::HttpInbound;
pub use outbound::HttpOutbound;

/// The default limit on the total size of a request's headers: 32 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;

/// The default limit on a request or response body: 4 MiB, as gRPC's message limit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The default limit on one streamed message (a WebSocket frame's payload, an SSE message):
/// 4 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
