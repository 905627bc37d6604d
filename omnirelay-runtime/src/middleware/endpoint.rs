//! Administrative HTTP endpoints a middleware serves on the dispatcher's HTTP inbounds, such as
//! `/omnirelay/metrics` or a control endpoint.

use bytes::Bytes;

/// A request to an administrative endpoint: method, headers and the whole body (bodies over
/// 64 KiB are refused before the endpoint sees them).
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
    /// Answers one request.
    fn handle(&self, request: AdminRequest) -> AdminResponse;
}
