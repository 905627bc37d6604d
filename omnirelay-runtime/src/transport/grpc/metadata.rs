//! The gRPC metadata mapping (DESIGN §6): request metadata to and from [`RequestMeta`],
//! application headers to and from gRPC metadata, `grpc-timeout`, and status conversion.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use tonic::metadata::MetadataMap;

use crate::codec::Encoding;
use crate::dispatcher::InboundContext;
use crate::error::{Code, Error, Result};
use crate::meta::{Headers, RequestMeta, Transport};
use crate::name::{LastName, Name};
use crate::transport::header_limit;

/// Base64 for `-bin` values: emits unpadded (as the gRPC spec asks), accepts either.
const BIN: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub(crate) const RPC_CALLER: &str = "rpc-caller";
pub(crate) const RPC_SERVICE: &str = "rpc-service";
pub(crate) const RPC_ENCODING: &str = "rpc-encoding";
/// The caller of a call that names none.
const UNKNOWN_CALLER: Name = Name::from_static("unknown");
const RPC_SHARD_KEY: &str = "rpc-shard-key";
const RPC_ROUTING_KEY: &str = "rpc-routing-key";
const RPC_ROUTING_DELEGATE: &str = "rpc-routing-delegate";
const RPC_CALLER_PROCEDURE: &str = "rpc-caller-procedure";
pub(crate) const GRPC_TIMEOUT: &str = "grpc-timeout";

/// Whether a header key is transport-owned rather than an application header.
fn is_reserved(key: &str) -> bool {
    key.starts_with("rpc-")
        || key.starts_with("grpc-")
        || matches!(
            key,
            "content-type" | "te" | "user-agent" | "host" | "content-length" | "accept-encoding"
        )
}

/// The encoding a gRPC content type implies; `Ok(None)` when the content type is not gRPC at all.
pub(crate) fn content_type_encoding(value: Option<&HeaderValue>) -> Result<Option<Encoding>> {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(rest) = value.strip_prefix("application/grpc") else {
        return Ok(None);
    };
    match rest {
        "" | "+proto" => Ok(Some(Encoding::Proto)),
        "+json" => Ok(Some(Encoding::Json)),
        _ if rest.starts_with(';') => Ok(Some(Encoding::Proto)),
        _ => Err(Error::invalid_argument(format!(
            "unsupported gRPC content type {value:?}: expected application/grpc, \
             application/grpc+proto or application/grpc+json"
        ))),
    }
}

/// Parses a `grpc-timeout` value: at most 8 digits and a unit (`H M S m u n`).
pub(crate) fn parse_timeout(value: &HeaderValue) -> Result<Duration> {
    let bad = || {
        Error::invalid_argument(format!(
            "malformed grpc-timeout {:?}: expected up to 8 digits and a unit (H, M, S, m, u, n)",
            String::from_utf8_lossy(value.as_bytes())
        ))
    };
    let bytes = value.as_bytes();
    let (unit, digits) = bytes.split_last().ok_or_else(bad)?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let n: u64 = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or_else(bad)?;
    Ok(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return Err(bad()),
    })
}

/// Formats a `grpc-timeout` value in the finest unit that fits 8 digits.
pub(crate) fn format_timeout(timeout: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let (value, unit) = if nanos <= MAX {
        (nanos, 'n')
    } else if nanos / 1_000 <= MAX {
        (nanos / 1_000, 'u')
    } else if nanos / 1_000_000 <= MAX {
        (nanos / 1_000_000, 'm')
    } else if nanos / 1_000_000_000 <= MAX {
        (nanos / 1_000_000_000, 'S')
    } else if nanos / 60_000_000_000 <= MAX {
        (nanos / 60_000_000_000, 'M')
    } else {
        ((nanos / 3_600_000_000_000).min(MAX), 'H')
    };
    HeaderValue::try_from(format!("{value}{unit}")).expect("digits and a letter are a valid header")
}

fn text(key: &str, value: &HeaderValue) -> Result<String> {
    text_str(key, value).map(str::to_owned)
}

fn text_str<'a>(key: &str, value: &'a HeaderValue) -> Result<&'a str> {
    value
        .to_str()
        .map_err(|_| Error::invalid_argument(format!("header {key} is not valid text")))
}

/// Builds the request metadata of an inbound call, in one pass over the headers (no header
/// name is hashed or looked up; for a header sent twice the first value counts). The caller's
/// name is shared with the connection's previous call when that named the same caller
/// (`callers`); a service header naming the dispatcher is not copied.
pub(crate) fn request_meta(
    headers: &HeaderMap,
    context: &InboundContext,
    procedure: Name,
    content_encoding: Encoding,
    callers: &LastName,
) -> Result<RequestMeta> {
    let mut caller = None;
    let mut service: Option<&str> = None;
    let mut encoding = None;
    let mut ttl = None;
    let mut shard_key = None;
    let mut routing_key = None;
    let mut routing_delegate = None;
    let mut caller_procedure = None;
    let mut app = Headers::new();
    for (name, value) in headers {
        let key = name.as_str();
        let slot = match key {
            RPC_CALLER => {
                if caller.is_none() {
                    caller = Some(callers.get(text_str(key, value)?));
                }
                continue;
            }
            RPC_SERVICE => {
                if service.is_none() {
                    service = Some(text_str(key, value)?);
                }
                continue;
            }
            RPC_SHARD_KEY => &mut shard_key,
            RPC_ROUTING_KEY => &mut routing_key,
            RPC_ROUTING_DELEGATE => &mut routing_delegate,
            RPC_CALLER_PROCEDURE => &mut caller_procedure,
            RPC_ENCODING => {
                if encoding.is_none() {
                    let text = value.to_str().map_err(|_| {
                        Error::invalid_argument("header rpc-encoding is not valid text")
                    })?;
                    encoding = Some(Encoding::parse_or_error(text)?);
                }
                continue;
            }
            GRPC_TIMEOUT => {
                if ttl.is_none() {
                    ttl = Some(parse_timeout(value)?);
                }
                continue;
            }
            _ if is_reserved(key) => continue,
            _ => {
                let value = if key.ends_with("-bin") {
                    Bytes::from(BIN.decode(value.as_bytes()).map_err(|_| {
                        Error::invalid_argument(format!("binary header {key} is not valid base64"))
                    })?)
                } else {
                    Bytes::copy_from_slice(value.as_bytes())
                };
                app.insert(key, value);
                continue;
            }
        };
        if slot.is_none() {
            *slot = Some(text(key, value)?);
        }
    }
    Ok(RequestMeta {
        caller: caller.unwrap_or(UNKNOWN_CALLER),
        // The dispatcher's own name when the header names it or is absent: shared, not copied.
        service: match service {
            Some(named) if named != context.service() => Name::from(named),
            _ => context.service_name().clone(),
        },
        procedure,
        encoding: encoding.unwrap_or(content_encoding),
        transport: Transport::Grpc,
        ttl,
        deadline: ttl.map(|ttl| Instant::now() + ttl),
        shard_key,
        routing_key,
        routing_delegate,
        caller_procedure,
        headers: app,
    })
}

fn text_value(key: &str, value: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(value).map_err(|_| {
        Error::invalid_argument(format!(
            "header {key} has a value that is not valid header text"
        ))
    })
}

/// Writes application headers into a header map; `-bin` values are base64-encoded.
pub(crate) fn write_app_headers(headers: &Headers, out: &mut HeaderMap) -> Result<()> {
    for (key, value) in headers.iter() {
        if is_reserved(key) {
            return Err(Error::invalid_argument(format!(
                "header {key:?} is reserved for the transport"
            )));
        }
        let name = HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| Error::invalid_argument(format!("{key:?} is not a valid header name")))?;
        let value = if key.ends_with("-bin") {
            HeaderValue::try_from(BIN.encode(value)).expect("base64 is valid header text")
        } else {
            HeaderValue::from_bytes(value).map_err(|_| {
                Error::invalid_argument(format!(
                    "header {key} has a value that is not valid header text; use a -bin key for binary values"
                ))
            })?
        };
        header_limit::append(out, name, value)?;
    }
    Ok(())
}

/// Writes an outbound call's request metadata.
pub(crate) fn write_request_meta(meta: &RequestMeta, out: &mut HeaderMap) -> Result<()> {
    out.insert(RPC_CALLER, text_value(RPC_CALLER, &meta.caller)?);
    out.insert(RPC_SERVICE, text_value(RPC_SERVICE, &meta.service)?);
    out.insert(
        RPC_ENCODING,
        HeaderValue::from_static(meta.encoding.as_str()),
    );
    for (key, value) in [
        (RPC_SHARD_KEY, &meta.shard_key),
        (RPC_ROUTING_KEY, &meta.routing_key),
        (RPC_ROUTING_DELEGATE, &meta.routing_delegate),
        (RPC_CALLER_PROCEDURE, &meta.caller_procedure),
    ] {
        if let Some(value) = value {
            out.insert(key, text_value(key, value)?);
        }
    }
    if let Some(ttl) = meta.remaining().or(meta.ttl) {
        out.insert(GRPC_TIMEOUT, format_timeout(ttl));
    }
    write_app_headers(&meta.headers, out)
}

/// Reads application headers from response metadata (headers or trailers).
pub(crate) fn read_app_headers(map: &HeaderMap, into: &mut Headers) {
    for (key, value) in map {
        let key = key.as_str();
        if is_reserved(key) {
            continue;
        }
        let value = if key.ends_with("-bin") {
            match BIN.decode(value.as_bytes()) {
                Ok(v) => Bytes::from(v),
                // A peer's undecodable binary header is kept as sent rather than dropped.
                Err(_) => Bytes::copy_from_slice(value.as_bytes()),
            }
        } else {
            Bytes::copy_from_slice(value.as_bytes())
        };
        into.insert(key, value);
    }
}

/// Application headers as tonic metadata.
pub(crate) fn to_metadata(headers: &Headers) -> Result<MetadataMap> {
    let mut map = header_limit::header_map(headers.len())?;
    write_app_headers(headers, &mut map)?;
    Ok(MetadataMap::from_headers(map))
}

/// An OmniRelay error as a gRPC status.
pub(crate) fn to_status(error: Error) -> tonic::Status {
    let code = tonic::Code::from_i32(error.code().as_i32());
    let message = crate::transport::error_text::header_message(error.message());
    tonic::Status::with_details(code, message, error.details().clone())
}

/// A gRPC status as an OmniRelay error.
///
/// Two of tonic's local statuses are remapped to OmniRelay's contract: an over-limit message
/// (tonic: `out-of-range`) is `resource-exhausted`, and the channel's own `grpc-timeout` expiry
/// (tonic: `cancelled: Timeout expired`) is `deadline-exceeded`, as every gRPC client reports it.
pub(crate) fn from_status(status: &tonic::Status) -> Error {
    let mut code = Code::from_i32(status.code() as i32);
    if code == Code::OutOfRange && status.message().contains("message length too large") {
        code = Code::ResourceExhausted;
    }
    if code == Code::Cancelled && status.message() == "Timeout expired" {
        return Error::deadline_exceeded("the call passed its deadline (grpc-timeout)");
    }
    Error::new(code, status.message()).with_details(Bytes::copy_from_slice(status.details()))
}

/// The `resource-exhausted` error for a message over the limit.
pub(crate) fn too_large(direction: &str, len: usize, limit: usize) -> Error {
    Error::resource_exhausted(format!(
        "{direction} message of {len} bytes exceeds the limit of {limit} bytes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_trip() {
        for (text, d) in [
            ("1m", Duration::from_millis(1)),
            ("100n", Duration::from_nanos(100)),
            ("2S", Duration::from_secs(2)),
            ("3M", Duration::from_secs(180)),
            ("1H", Duration::from_secs(3600)),
            ("99999999u", Duration::from_micros(99_999_999)),
        ] {
            assert_eq!(parse_timeout(&HeaderValue::from_static(text)).unwrap(), d);
        }
        for d in [
            Duration::from_millis(1),
            Duration::from_secs(5),
            Duration::from_secs(86_400 * 30),
        ] {
            let parsed = parse_timeout(&format_timeout(d)).unwrap();
            assert!(
                parsed <= d && d - parsed < Duration::from_secs(3600),
                "{d:?}"
            );
        }
        for bad in ["", "m", "123456789m", "10x", "1.5S", "-1S"] {
            let err = parse_timeout(&HeaderValue::from_static(bad)).unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn content_types() {
        let ct = |s: &'static str| content_type_encoding(Some(&HeaderValue::from_static(s)));
        assert_eq!(ct("application/grpc").unwrap(), Some(Encoding::Proto));
        assert_eq!(ct("application/grpc+proto").unwrap(), Some(Encoding::Proto));
        assert_eq!(ct("application/grpc+json").unwrap(), Some(Encoding::Json));
        assert_eq!(ct("text/plain").unwrap(), None);
        assert!(ct("application/grpc+thrift").is_err());
        assert_eq!(content_type_encoding(None).unwrap(), None);
    }

    fn context() -> InboundContext {
        InboundContext::new("svc", crate::procedure::Registry::new())
    }

    #[test]
    fn request_meta_reads_rpc_keys_and_app_headers() {
        let mut h = HeaderMap::new();
        h.insert("rpc-caller", HeaderValue::from_static("me"));
        h.insert("rpc-encoding", HeaderValue::from_static("json"));
        h.insert("rpc-shard-key", HeaderValue::from_static("s1"));
        h.insert("grpc-timeout", HeaderValue::from_static("5S"));
        h.insert("x-trace-bin", HeaderValue::from_static("AAEC"));
        h.insert("x-plain", HeaderValue::from_static("v"));
        h.insert("te", HeaderValue::from_static("trailers"));
        let meta = request_meta(
            &h,
            &context(),
            "svc::M".into(),
            Encoding::Proto,
            &LastName::default(),
        )
        .unwrap();
        assert_eq!(meta.caller, "me");
        assert_eq!(meta.service, "svc");
        assert_eq!(meta.encoding, Encoding::Json);
        assert_eq!(meta.shard_key.as_deref(), Some("s1"));
        assert_eq!(meta.ttl, Some(Duration::from_secs(5)));
        assert_eq!(
            meta.headers.get("x-trace-bin").unwrap().as_ref(),
            &[0, 1, 2]
        );
        assert_eq!(meta.headers.get_str("x-plain"), Some("v"));
        assert_eq!(meta.headers.len(), 2);

        let mut out = HeaderMap::new();
        write_request_meta(&meta, &mut out).unwrap();
        assert_eq!(out.get("x-trace-bin").unwrap(), "AAEC");
        assert_eq!(out.get("rpc-encoding").unwrap(), "json");
    }

    #[test]
    fn bad_metadata_is_invalid_argument() {
        let mut h = HeaderMap::new();
        h.insert("rpc-encoding", HeaderValue::from_static("thrift"));
        let err = request_meta(
            &h,
            &context(),
            "p".into(),
            Encoding::Proto,
            &LastName::default(),
        )
        .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        let mut h = HeaderMap::new();
        h.insert("x-bin", HeaderValue::from_static("!!!"));
        let err = request_meta(
            &h,
            &context(),
            "p".into(),
            Encoding::Proto,
            &LastName::default(),
        )
        .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        let mut headers = Headers::new();
        headers.insert("x", Bytes::from_static(b"\n"));
        assert!(to_metadata(&headers).is_err());
        let mut headers = Headers::new();
        headers.insert("rpc-caller", "x");
        assert!(to_metadata(&headers).is_err());
    }
}
