//! The YARPC-HTTP header mapping: header names, application headers, TTLs and deadlines, and
//! errors to and from HTTP responses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::codec::Encoding;
use crate::error::{Code, Error, Result};
use crate::meta::{Headers, RequestMeta};
use crate::transport::header_limit;

pub(crate) const RPC_CALLER: HeaderName = HeaderName::from_static("rpc-caller");
pub(crate) const RPC_SERVICE: HeaderName = HeaderName::from_static("rpc-service");
pub(crate) const RPC_PROCEDURE: HeaderName = HeaderName::from_static("rpc-procedure");
pub(crate) const RPC_ENCODING: HeaderName = HeaderName::from_static("rpc-encoding");
pub(crate) const CONTEXT_TTL_MS: HeaderName = HeaderName::from_static("context-ttl-ms");
#[cfg(test)] // the inbound matches the names in one pass (`inbound::Scan`)
pub(crate) const RPC_TTL_MS: HeaderName = HeaderName::from_static("rpc-ttl-ms");
#[cfg(test)] // the inbound matches the names in one pass (`inbound::Scan`)
pub(crate) const RPC_DEADLINE: HeaderName = HeaderName::from_static("rpc-deadline");
pub(crate) const RPC_SHARD_KEY: HeaderName = HeaderName::from_static("rpc-shard-key");
pub(crate) const RPC_ROUTING_KEY: HeaderName = HeaderName::from_static("rpc-routing-key");
pub(crate) const RPC_ROUTING_DELEGATE: HeaderName = HeaderName::from_static("rpc-routing-delegate");
pub(crate) const RPC_CALLER_PROCEDURE: HeaderName = HeaderName::from_static("rpc-caller-procedure");
#[cfg(test)] // the inbound matches the names in one pass (`inbound::Scan`)
pub(crate) const RPC_ACCEPTS_BOTH: HeaderName =
    HeaderName::from_static("rpc-accepts-both-response-error");
pub(crate) const RPC_BOTH: HeaderName = HeaderName::from_static("rpc-both-response-error");
pub(crate) const RPC_STATUS: HeaderName = HeaderName::from_static("rpc-status");
pub(crate) const RPC_ERROR_CODE: HeaderName = HeaderName::from_static("rpc-error-code");
pub(crate) const RPC_ERROR_MESSAGE: HeaderName = HeaderName::from_static("rpc-error-message");
pub(crate) const RPC_APP_ERROR_CODE: HeaderName =
    HeaderName::from_static("rpc-application-error-code");
pub(crate) const RPC_APP_ERROR_NAME: HeaderName =
    HeaderName::from_static("rpc-application-error-name");
pub(crate) const RPC_APP_ERROR_DETAILS: HeaderName =
    HeaderName::from_static("rpc-application-error-details");
pub(crate) const GRPC_STATUS_DETAILS: HeaderName =
    HeaderName::from_static("grpc-status-details-bin");
pub(crate) const RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");

/// The prefix of application headers.
pub(crate) const APP_PREFIX: &str = "rpc-header-";
/// Application headers that travel unprefixed (W3C trace context).
const BARE_APP_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

pub(crate) const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf8");
pub(crate) const SUCCESS: HeaderValue = HeaderValue::from_static("success");
pub(crate) const ERROR: HeaderValue = HeaderValue::from_static("error");
pub(crate) const TRUE: HeaderValue = HeaderValue::from_static("true");

/// The `Content-Type` of a body in `encoding`.
pub(crate) fn content_type(encoding: Encoding) -> HeaderValue {
    // Constants, so that no call validates the bytes again (`from_static` at run time does).
    const PROTO: HeaderValue = HeaderValue::from_static(Encoding::Proto.content_type());
    const JSON: HeaderValue = HeaderValue::from_static(Encoding::Json.content_type());
    const RAW: HeaderValue = HeaderValue::from_static(Encoding::Raw.content_type());
    match encoding {
        Encoding::Proto => PROTO,
        Encoding::Json => JSON,
        Encoding::Raw => RAW,
    }
}

/// A header's value as text: `Ok(None)` when absent or empty, an error naming the header when
/// the bytes are not UTF-8.
pub(crate) fn text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>> {
    value_text(headers.get(name), name)
}

/// [`text`] for a value already looked up (`name` is for the error message).
pub(crate) fn value_text<'a>(
    value: Option<&'a HeaderValue>,
    name: &HeaderName,
) -> Result<Option<&'a str>> {
    match value {
        None => Ok(None),
        // Visible ASCII (what clients send) is checked more cheaply than UTF-8 in general.
        Some(v) => match v.to_str().or_else(|_| std::str::from_utf8(v.as_bytes())) {
            Ok("") => Ok(None),
            Ok(s) => Ok(Some(s)),
            Err(_) => Err(Error::invalid_argument(format!(
                "header {} is not valid UTF-8",
                display_name(name)
            ))),
        },
    }
}

/// A header name as its canonical spelling for messages (`rpc-caller` → `Rpc-Caller`).
fn display_name(name: &HeaderName) -> String {
    name.as_str()
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Reads the application headers of a request or response: `Rpc-Header-<key>` (the key is
/// lower-cased already: HTTP header names are) and the bare trace-context headers.
pub(crate) fn read_app_headers(map: &HeaderMap, into: &mut Headers) {
    for (name, value) in map {
        if let Some(key) = app_header_key(name.as_str()) {
            into.insert(key, Bytes::copy_from_slice(value.as_bytes()));
        }
    }
}

/// The application header key a header name carries (`rpc-header-<key>`, or a bare
/// trace-context name), if it carries one.
pub(crate) fn app_header_key(name: &str) -> Option<&str> {
    match name.strip_prefix(APP_PREFIX) {
        Some(key) if !key.is_empty() => Some(key),
        Some(_) => None,
        None if BARE_APP_HEADERS.contains(&name) => Some(name),
        None => None,
    }
}

/// Writes application headers as `Rpc-Header-<key>` (trace context bare).
pub(crate) fn write_app_headers(headers: &Headers, out: &mut HeaderMap) -> Result<()> {
    // The scratch name is allocated only when there is a prefixed header to write.
    let mut name = String::new();
    for (key, value) in headers.iter() {
        let header = if BARE_APP_HEADERS.contains(&key) {
            HeaderName::from_static(if key == "traceparent" {
                "traceparent"
            } else {
                "tracestate"
            })
        } else {
            name.clear();
            name.reserve(APP_PREFIX.len() + key.len());
            name.push_str(APP_PREFIX);
            name.push_str(key);
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                Error::invalid_argument(format!("{key:?} is not a valid HTTP header name"))
            })?
        };
        let value = HeaderValue::from_maybe_shared(value.clone()).map_err(|_| {
            Error::invalid_argument(format!(
                "header {key} has a value that cannot be sent over HTTP: it contains control \
                 characters"
            ))
        })?;
        header_limit::append(out, header, value)?;
    }
    Ok(())
}

/// Writes a value for a request-metadata header, failing on bytes HTTP cannot carry.
pub(crate) fn meta_value(name: &HeaderName, value: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(value).map_err(|_| {
        Error::invalid_argument(format!(
            "{} {value:?} cannot be sent over HTTP: it contains control characters",
            display_name(name)
        ))
    })
}

/// Writes an outbound call's request headers; `ttl` becomes `Context-TTL-MS`.
pub(crate) fn write_request_meta(
    meta: &RequestMeta,
    ttl: Option<Duration>,
    out: &mut HeaderMap,
) -> Result<()> {
    out.insert(RPC_CALLER, meta_value(&RPC_CALLER, &meta.caller)?);
    out.insert(RPC_SERVICE, meta_value(&RPC_SERVICE, &meta.service)?);
    out.insert(RPC_PROCEDURE, meta_value(&RPC_PROCEDURE, &meta.procedure)?);
    out.insert(
        RPC_ENCODING,
        HeaderValue::from_static(meta.encoding.as_str()),
    );
    for (name, value) in [
        (RPC_SHARD_KEY, &meta.shard_key),
        (RPC_ROUTING_KEY, &meta.routing_key),
        (RPC_ROUTING_DELEGATE, &meta.routing_delegate),
        (RPC_CALLER_PROCEDURE, &meta.caller_procedure),
    ] {
        if let Some(value) = value {
            let value = meta_value(&name, value)?;
            out.insert(name, value);
        }
    }
    if let Some(ttl) = ttl {
        // Whole milliseconds, rounded up: a call with 0.4 ms left is sent with 1 ms, not with a
        // TTL of 0 that the server would refuse.
        let ms = u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        out.insert(CONTEXT_TTL_MS, HeaderValue::from(ms));
    }
    write_app_headers(&meta.headers, out)
}

/// The total size of a header block as HTTP/1.1 writes it (`name: value\r\n` per header).
#[cfg(test)] // the inbound counts it in its one pass over the headers (`inbound::Scan`)
pub(crate) fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// What a request's TTL headers said.
pub(crate) enum Ttl {
    /// No TTL header.
    Missing,
    /// The time the call may take from now.
    Within(Duration),
    /// A TTL header that does not parse: the message to fail with (after routing).
    Invalid(String),
}

/// Reads `Context-TTL-MS`, else `Rpc-Ttl-Ms`, else `Rpc-Deadline` (RFC 3339).
#[cfg(test)] // the inbound finds the three in its one pass over the headers (`inbound::Scan`)
pub(crate) fn read_ttl(headers: &HeaderMap, service: &str, procedure: &str) -> Ttl {
    ttl_of(
        [headers.get(&CONTEXT_TTL_MS), headers.get(&RPC_TTL_MS)],
        headers.get(&RPC_DEADLINE),
        service,
        procedure,
    )
}

/// `read_ttl` for values already looked up: `ttls` are `Context-TTL-MS` and `Rpc-Ttl-Ms`,
/// `deadline` is `Rpc-Deadline`.
pub(crate) fn ttl_of(
    ttls: [Option<&HeaderValue>; 2],
    deadline: Option<&HeaderValue>,
    service: &str,
    procedure: &str,
) -> Ttl {
    let invalid_ttl = |value: &[u8]| {
        Ttl::Invalid(format!(
            "invalid TTL {:?} for service {service:?} and procedure {procedure:?}",
            String::from_utf8_lossy(value)
        ))
    };
    if let Some(value) = ttls.into_iter().flatten().next() {
        return match parse_millis(value.as_bytes()) {
            Some(ms) => Ttl::Within(Duration::from_millis(ms)),
            None => invalid_ttl(value.as_bytes()),
        };
    }
    if let Some(value) = deadline {
        let parsed = std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(parse_rfc3339);
        return match parsed {
            Some(at) => Ttl::Within(
                at.duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO),
            ),
            None => Ttl::Invalid(format!(
                "invalid deadline {:?} for service {service:?} and procedure {procedure:?}: \
                 expected an RFC 3339 timestamp such as 2030-01-02T03:04:05.678Z",
                String::from_utf8_lossy(value.as_bytes())
            )),
        };
    }
    Ttl::Missing
}

/// A TTL header's milliseconds: a `u64` as `str::parse` reads it, after `str::trim`. Plain
/// digits, which every client sends, are read without the UTF-8 check and the trim.
fn parse_millis(value: &[u8]) -> Option<u64> {
    // 19 digits always fit in a u64.
    if !value.is_empty() && value.len() <= 19 && value.iter().all(u8::is_ascii_digit) {
        return Some(
            value
                .iter()
                .fold(0, |ms, digit| ms * 10 + u64::from(digit - b'0')),
        );
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Parses an RFC 3339 timestamp: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `T` and `Z` in
/// either case, or a space for `T`.
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.trim().as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = b.get(range)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + u64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let hours = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let minutes = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'+' { offset } else { -offset }
        }
        _ => return None,
    };
    let days = days_from_civil(year as i64, month as i64, day as i64);
    let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos as u32))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A duration as Go prints it in yarpc-go's messages: `1s`, `1.5s`, `250ms`, `800µs`.
pub(crate) fn go_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        let text = format!("{:.3}", d.as_secs_f64());
        let text = text.trim_end_matches('0').trim_end_matches('.');
        format!("{text}s")
    } else if d >= Duration::from_millis(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}µs", d.as_micros())
    }
}

/// An error message as a header value: control characters become spaces (as Go's net/http
/// writes header values), everything else is kept as UTF-8 bytes.
pub(crate) fn message_header(message: &str) -> HeaderValue {
    let sanitized: Vec<u8> = message
        .bytes()
        .map(|b| {
            if (b < 0x20 && b != b'\t') || b == 0x7f {
                b' '
            } else {
                b
            }
        })
        .collect();
    HeaderValue::from_bytes(&sanitized).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The HTTP status an error is sent with.
pub(crate) fn status_of(code: Code) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Writes an error's headers (`Rpc-Status`, `Rpc-Error-Code`, `Rpc-Error-Message`, details)
/// into `out`.
pub(crate) fn write_error_headers(error: &Error, out: &mut HeaderMap) {
    out.insert(RPC_STATUS, ERROR);
    out.insert(
        RPC_ERROR_CODE,
        HeaderValue::from_static(error.code().as_str()),
    );
    let message = crate::transport::error_text::header_message(error.message());
    out.insert(RPC_ERROR_MESSAGE, message_header(&message));
    if !error.details().is_empty() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(error.details());
        if let Ok(value) = HeaderValue::try_from(encoded) {
            out.insert(GRPC_STATUS_DETAILS, value);
        }
    }
}

/// The error an HTTP error response (status ≥ 300, or `Rpc-Status: error`) stands for.
///
/// The code comes from `Rpc-Error-Code` (any spelling), else a .NET-style `Rpc-Status`
/// naming a code, else the `code`/`status` field of a JSON error body, else the HTTP status. The
/// message comes from `Rpc-Error-Message` in both-response-error mode, else a JSON body's
/// `message`, else the text body with one trailing newline removed.
pub(crate) fn error_from_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
    let header_code = |name: &HeaderName| {
        headers
            .get(name)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .and_then(Code::parse)
            .filter(|c| *c != Code::Ok)
    };
    let json = is_json(headers)
        .then(|| serde_json::from_slice::<serde_json::Value>(body).ok())
        .flatten()
        .filter(serde_json::Value::is_object);
    let json_field = |field: &str| {
        json.as_ref()
            .and_then(|j| j.get(field))
            .and_then(serde_json::Value::as_str)
    };
    let status_code = if status.is_success() {
        // A yarpc-go application error: 200 with `Rpc-Status: error`.
        headers
            .get(&RPC_APP_ERROR_CODE)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .and_then(|s| s.trim().parse::<i32>().ok())
            .map(Code::from_i32)
            .unwrap_or(Code::Unknown)
    } else {
        Code::from_http_status(status.as_u16())
    };
    let code = header_code(&RPC_ERROR_CODE)
        .or_else(|| header_code(&RPC_STATUS))
        .or_else(|| json_field("code").and_then(Code::parse))
        .or_else(|| json_field("status").and_then(Code::parse))
        .unwrap_or(status_code);
    let both = headers.get(&RPC_BOTH).is_some_and(|v| v == "true");
    let header_message = || {
        headers
            .get(&RPC_ERROR_MESSAGE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let message = if both {
        header_message().unwrap_or_default()
    } else if let Some(message) = json_field("message") {
        message.to_owned()
    } else if status.is_success() {
        let name = headers
            .get(&RPC_APP_ERROR_NAME)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let details = headers
            .get(&RPC_APP_ERROR_DETAILS)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        match (name, details) {
            (Some(n), Some(d)) => format!("application error {n}: {d}"),
            (Some(n), None) => format!("application error {n}"),
            (None, Some(d)) => format!("application error: {d}"),
            (None, None) => "the server reported an application error".to_owned(),
        }
    } else if body.is_empty() {
        header_message().unwrap_or_else(|| format!("HTTP status {status}"))
    } else {
        let text = String::from_utf8_lossy(body);
        text.strip_suffix('\n').unwrap_or(&text).to_owned()
    };
    let mut error = Error::new(code, message);
    if let Some(details) = headers.get(&GRPC_STATUS_DETAILS).and_then(|v| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_bytes())
            .ok()
    }) {
        error = error.with_details(Bytes::from(details));
    }
    error
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"))
}

/// The `resource-exhausted` error for something over its limit.
pub(crate) fn too_large(what: &str, len: usize, limit: usize) -> Error {
    Error::resource_exhausted(format!(
        "{what} of {len} bytes exceeds the limit of {limit} bytes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_milliseconds_read_as_str_parse_reads_them() {
        for text in [
            "0",
            "7",
            "5000",
            "0005000",
            " 12 ",
            "+3",
            "18446744073709551615",
            "9999999999999999999",
            "18446744073709551616",
            "",
            " ",
            "-1",
            "1.5",
            "1e3",
            "12a",
            "\u{a0}8\u{a0}",
            "\t9\n",
        ] {
            let expected = text.trim().parse::<u64>().ok();
            assert_eq!(parse_millis(text.as_bytes()), expected, "{text:?}");
        }
        assert_eq!(parse_millis(b"\xff1"), None);
    }

    #[test]
    fn the_ttl_is_sent_in_whole_milliseconds_rounded_up() {
        let meta = RequestMeta::new("c", "s", "p");
        for (ttl, sent) in [(400, "1"), (1_000, "1"), (1_001, "2"), (250_000, "250")] {
            let mut out = HeaderMap::new();
            write_request_meta(&meta, Some(Duration::from_micros(ttl)), &mut out).unwrap();
            assert_eq!(out[&CONTEXT_TTL_MS], sent, "{ttl} us");
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn rfc3339() {
        let at =
            |s: &str| parse_rfc3339(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64());
        assert_eq!(at("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(at("2000-03-01T00:00:00Z"), Some(951_868_800.0));
        assert_eq!(at("2024-02-29T12:00:00.5z"), Some(1_709_208_000.5));
        assert_eq!(at("2024-02-29T14:00:00+02:00"), Some(1_709_208_000.0));
        assert_eq!(
            at("2025-11-24T10:00:00.0000000-01:30"),
            Some(1_763_983_800.0)
        );
        for bad in [
            "",
            "moo",
            "2024-02-30T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T25:00:00Z",
            "1969-12-31T23:59:59Z",
            "2024-01-01T00:00:00+2:00",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn ttl_headers_in_order_of_precedence() {
        let ttl = |h: &HeaderMap| match read_ttl(h, "s", "p") {
            Ttl::Missing => "missing".to_owned(),
            Ttl::Within(d) => format!("{}", d.as_millis()),
            Ttl::Invalid(m) => m,
        };
        assert_eq!(ttl(&headers(&[])), "missing");
        assert_eq!(ttl(&headers(&[("context-ttl-ms", "1500")])), "1500");
        assert_eq!(
            ttl(&headers(&[("rpc-ttl-ms", "20"), ("context-ttl-ms", "10")])),
            "10"
        );
        assert_eq!(ttl(&headers(&[("rpc-ttl-ms", "20")])), "20");
        assert_eq!(
            ttl(&headers(&[("context-ttl-ms", "moo")])),
            r#"invalid TTL "moo" for service "s" and procedure "p""#
        );
        assert!(ttl(&headers(&[("context-ttl-ms", "-5")])).starts_with("invalid TTL"));
        assert_eq!(
            ttl(&headers(&[("rpc-deadline", "2000-01-01T00:00:00Z")])),
            "0"
        );
        assert!(ttl(&headers(&[("rpc-deadline", "soon")])).starts_with("invalid deadline"));
    }

    #[test]
    fn app_headers_round_trip_with_the_prefix() {
        let mut app = Headers::new();
        app.insert("X-Foo", "bar");
        app.insert("rpc-procedure", "kept");
        app.insert("traceparent", "00-abc-def-01");
        app.insert("bin", Bytes::from_static(&[0xab, 0xab]));
        let mut map = HeaderMap::new();
        write_app_headers(&app, &mut map).unwrap();
        assert_eq!(map.get("rpc-header-x-foo").unwrap(), "bar");
        assert_eq!(map.get("rpc-header-rpc-procedure").unwrap(), "kept");
        assert_eq!(map.get("traceparent").unwrap(), "00-abc-def-01");
        let mut back = Headers::new();
        read_app_headers(&map, &mut back);
        assert_eq!(back, app);

        let mut bad = Headers::new();
        bad.insert("x", "a\nb");
        let err = write_app_headers(&bad, &mut HeaderMap::new()).unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    }

    #[test]
    fn errors_from_either_spelling_or_the_status() {
        let err = error_from_response(
            StatusCode::BAD_REQUEST,
            &headers(&[("rpc-error-code", "ALREADY_EXISTS")]),
            b"boom\n",
        );
        assert_eq!((err.code(), err.message()), (Code::AlreadyExists, "boom"));
        let err = error_from_response(
            StatusCode::CONFLICT,
            &headers(&[("rpc-error-code", "AlreadyExists")]),
            b"",
        );
        assert_eq!(err.code(), Code::AlreadyExists);
        let err = error_from_response(StatusCode::GATEWAY_TIMEOUT, &HeaderMap::new(), b"late");
        assert_eq!(
            (err.code(), err.message()),
            (Code::DeadlineExceeded, "late")
        );
        let err = error_from_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &headers(&[
                ("rpc-both-response-error", "true"),
                ("rpc-error-message", "from the header"),
                ("rpc-error-code", "data-loss"),
            ]),
            b"a response body",
        );
        assert_eq!(
            (err.code(), err.message()),
            (Code::DataLoss, "from the header")
        );
        // OmniRelay .NET: a JSON body with an UPPER_SNAKE status.
        let err = error_from_response(
            StatusCode::CONFLICT,
            &headers(&[("content-type", "application/json")]),
            br#"{"message":"exists","status":"ALREADY_EXISTS","code":"already-exists"}"#,
        );
        assert_eq!((err.code(), err.message()), (Code::AlreadyExists, "exists"));
        // yarpc-go application error.
        let err = error_from_response(
            StatusCode::OK,
            &headers(&[
                ("rpc-status", "error"),
                ("rpc-application-error-code", "6"),
                ("rpc-application-error-name", "Exists"),
            ]),
            b"",
        );
        assert_eq!(err.code(), Code::AlreadyExists);
        assert!(err.message().contains("Exists"));
    }

    #[test]
    fn messages_in_headers_lose_only_control_characters() {
        let v = message_header("a\r\nb\tc ☺");
        assert_eq!(v.as_bytes(), "a  b\tc ☺".as_bytes());
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(go_duration(Duration::from_micros(800)), "800µs");
    }
}
