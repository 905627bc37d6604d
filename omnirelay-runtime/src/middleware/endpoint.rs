//! Administrative HTTP endpoints a middleware serves on the dispatcher's HTTP inbounds, such as
//! `/omnirelay/metrics` or a control endpoint.

use std::time::Duration;

use bytes::Bytes;

/// The longest the HTTP inbound waits for an administrative request's whole body (the body of a
/// `POST`, `PUT` or `PATCH`) before answering `408 Request Timeout` and closing the connection:
/// 5 seconds. A client that never finishes its body holds a connection no longer than this.
pub const ADMIN_BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest administrative request body the HTTP inbound reads: 64 KiB. A longer (or broken)
/// body is answered `413 Payload Too Large` before the endpoint sees the request.
pub const MAX_ADMIN_BODY: usize = 64 * 1024;

/// A request to an administrative endpoint: method, headers and the whole body.
///
/// Only the body of a `POST`, `PUT` or `PATCH` is read; for every other method (`GET`, `HEAD`,
/// `DELETE`, ...) `body` is empty and whatever body the client sent is not read. A body is read
/// only after [`AdminEndpoint::authorize`] accepted the headers, and only up to
/// [`MAX_ADMIN_BODY`] bytes arriving within [`ADMIN_BODY_TIMEOUT`] (otherwise the inbound
/// answers `413` or `408` and the endpoint never sees the request).
#[derive(Debug)]
pub struct AdminRequest {
    /// The HTTP method.
    pub method: http::Method,
    /// The request headers.
    pub headers: http::HeaderMap,
    /// The query string, without `?` (empty when absent).
    pub query: String,
    /// The request body.
    pub body: Bytes,
}

/// An administrative endpoint's answer.
#[derive(Clone, Debug)]
pub struct AdminResponse {
    /// The HTTP status.
    pub status: http::StatusCode,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
}

impl AdminResponse {
    /// A response with `status`, `content_type` and `body`.
    pub fn new(
        status: http::StatusCode,
        content_type: &'static str,
        body: impl Into<Bytes>,
    ) -> Self {
        AdminResponse {
            status,
            content_type,
            body: body.into(),
        }
    }

    /// A plain-text response.
    pub fn text(status: http::StatusCode, body: impl Into<Bytes>) -> Self {
        AdminResponse::new(status, "text/plain; charset=utf-8", body)
    }
}

/// Serves one administrative path. Endpoints answer synchronously from in-memory state.
pub trait AdminEndpoint: Send + Sync + 'static {
    /// Checks a request's headers before its body is read: `Some(answer)` refuses the request
    /// with `answer` (the body is then never read and [`handle`](Self::handle) is not called),
    /// `None` lets it through. The default lets every request through; an endpoint that
    /// requires credentials refuses bad ones here, so an unauthenticated client cannot make the
    /// inbound wait for its body.
    fn authorize(&self, headers: &http::HeaderMap) -> Option<AdminResponse> {
        let _ = headers;
        None
    }

    /// Answers one request.
    fn handle(&self, request: AdminRequest) -> AdminResponse;
}
