//! Call metadata: [`RequestMeta`], [`ResponseMeta`], application [`Headers`], and the
//! [`Request`] / [`Response`] envelopes that carry a body beside its metadata.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::codec::Encoding;
use crate::name::Name;

/// Application headers: an ordered list of lower-case keys with byte values.
///
/// Keys are normalised to lower case on insert (yarpc and gRPC treat header keys
/// case-insensitively). Keys ending in `-bin` carry binary values over gRPC; every other value
/// must be valid header text to cross a transport. The list keeps insertion order and holds one
/// value per key; a small vector is faster than a map for the handful of headers calls carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, Bytes)>,
}

impl Headers {
    /// An empty header list.
    pub const fn new() -> Self {
        Headers {
            entries: Vec::new(),
        }
    }

    /// Sets `key` to `value`, replacing an earlier value for the same key.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Bytes>) {
        let mut key = key.into();
        key.make_ascii_lowercase();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// The value of `key` (any case), if present.
    pub fn get(&self, key: &str) -> Option<&Bytes> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    /// The value of `key` as text, if present and valid UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Bytes> {
        let pos = self
            .entries
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(key))?;
        Some(self.entries.remove(pos).1)
    }

    /// The number of headers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Iterates over `(key, value)` pairs in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Bytes)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl<K: Into<String>, V: Into<Bytes>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (k, v) in iter {
            headers.insert(k, v);
        }
        headers
    }
}

/// Which transport a call arrived on or leaves by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// gRPC over HTTP/2.
    Grpc,
    /// YARPC over HTTP/1.1 or HTTP/2.
    Http,
    /// An in-process call that crossed no transport.
    InProcess,
}

impl Transport {
    /// The transport's lower-case name (`grpc`, `http`, `in-process`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
            Transport::InProcess => "in-process",
        }
    }
}

/// What a request carries besides its body (DESIGN §3).
#[derive(Clone, Debug)]
pub struct RequestMeta {
    /// The calling service's name (`unknown` when a plain client sent none).
    pub caller: Name,
    /// The service the call is addressed to.
    pub service: Name,
    /// The procedure, e.g. `grpc.testing.TestService::UnaryCall`.
    pub procedure: Name,
    /// The body's encoding.
    pub encoding: Encoding,
    /// The transport the call came in on or goes out by.
    pub transport: Transport,
    /// The time the caller allows; on an inbound call, what the wire said.
    pub ttl: Option<Duration>,
    /// The instant the call must finish by; set by inbounds from the TTL on arrival.
    pub deadline: Option<Instant>,
    /// The shard key, for sharded services.
    pub shard_key: Option<String>,
    /// The routing key, for routing by something other than the service name.
    pub routing_key: Option<String>,
    /// A service to route through instead of the named one.
    pub routing_delegate: Option<String>,
    /// The procedure of the caller that made this call, for tracing call chains.
    pub caller_procedure: Option<String>,
    /// Application headers.
    pub headers: Headers,
}

impl RequestMeta {
    /// Metadata for calling `procedure` of `service` as `caller`, with protobuf encoding and no
    /// deadline.
    pub fn new(
        caller: impl Into<Name>,
        service: impl Into<Name>,
        procedure: impl Into<Name>,
    ) -> Self {
        RequestMeta {
            caller: caller.into(),
            service: service.into(),
            procedure: procedure.into(),
            encoding: Encoding::Proto,
            transport: Transport::InProcess,
            ttl: None,
            deadline: None,
            shard_key: None,
            routing_key: None,
            routing_delegate: None,
            caller_procedure: None,
            headers: Headers::new(),
        }
    }

    /// The time left before the deadline (zero once it has passed), or `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

/// What a response carries besides its body.
#[derive(Clone, Debug, Default)]
pub struct ResponseMeta {
    /// The body's encoding, when the handler chose one different from the request's.
    pub encoding: Option<Encoding>,
    /// Application headers, sent before the body (gRPC initial metadata).
    pub headers: Headers,
    /// Application trailers, sent after the body (gRPC trailing metadata). Transports without
    /// trailers (YARPC-HTTP unary) send them as headers.
    pub trailers: Headers,
}

/// A request: metadata plus a body (a message, raw bytes or a stream of messages).
#[derive(Clone, Debug)]
pub struct Request<T> {
    /// The request's metadata.
    pub meta: RequestMeta,
    /// The request's body.
    pub body: T,
}

impl<T> Request<T> {
    /// A request with the given metadata and body.
    pub fn new(meta: RequestMeta, body: T) -> Self {
        Request { meta, body }
    }

    /// The request's metadata.
    pub fn meta(&self) -> &RequestMeta {
        &self.meta
    }

    /// The request's body.
    pub fn body(&self) -> &T {
        &self.body
    }

    /// Consumes the request, returning the body.
    pub fn into_body(self) -> T {
        self.body
    }

    /// Consumes the request, returning metadata and body.
    pub fn into_parts(self) -> (RequestMeta, T) {
        (self.meta, self.body)
    }

    /// Replaces the body with `f(body)`, keeping the metadata.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Request<U> {
        Request {
            meta: self.meta,
            body: f(self.body),
        }
    }
}

/// A response: metadata plus a body.
#[derive(Debug)]
pub struct Response<T> {
    /// The response's metadata.
    pub meta: ResponseMeta,
    /// The response's body.
    pub body: T,
}

impl<T> Response<T> {
    /// A response with empty metadata.
    pub fn new(body: T) -> Self {
        Response {
            meta: ResponseMeta::default(),
            body,
        }
    }

    /// Adds an application header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.meta.headers.insert(key, value);
        self
    }

    /// Adds an application trailer.
    pub fn with_trailer(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.meta.trailers.insert(key, value);
        self
    }

    /// The response's body.
    pub fn body(&self) -> &T {
        &self.body
    }

    /// Consumes the response, returning the body.
    pub fn into_body(self) -> T {
        self.body
    }

    /// Consumes the response, returning metadata and body.
    pub fn into_parts(self) -> (ResponseMeta, T) {
        (self.meta, self.body)
    }

    /// Replaces the body with `f(body)`, keeping the metadata.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Response<U> {
        Response {
            meta: self.meta,
            body: f(self.body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_case_insensitive_and_replace() {
        let mut h = Headers::new();
        h.insert("X-Foo", "a");
        h.insert("x-foo", "b");
        h.insert("bar", "c");
        assert_eq!(h.len(), 2);
        assert_eq!(h.get_str("X-FOO"), Some("b"));
        assert_eq!(h.iter().next().unwrap().0, "x-foo");
        assert_eq!(h.remove("x-foo").as_deref(), Some(&b"b"[..]));
        assert!(h.get("x-foo").is_none());
    }
}
