//! The WebSocket frame protocol (first byte = frame type) and the JSON payloads that WebSocket
//! frames and SSE events share: errors, response headers and the completion with trailers.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::codec::Encoding;
use crate::error::{Code, Error, Result};
use crate::meta::Headers;

/// A frame's type: its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameType {
    RequestData = 0x01,
    RequestComplete = 0x02,
    RequestError = 0x03,
    ResponseHeaders = 0x10,
    ResponseData = 0x11,
    ResponseComplete = 0x12,
    ResponseError = 0x13,
}

impl FrameType {
    fn from_byte(b: u8) -> Option<FrameType> {
        Some(match b {
            0x01 => FrameType::RequestData,
            0x02 => FrameType::RequestComplete,
            0x03 => FrameType::RequestError,
            0x10 => FrameType::ResponseHeaders,
            0x11 => FrameType::ResponseData,
            0x12 => FrameType::ResponseComplete,
            0x13 => FrameType::ResponseError,
            _ => return None,
        })
    }
}

/// One frame: its type byte, then `payload`.
pub(crate) fn encode(kind: FrameType, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(1 + payload.len());
    buf.put_u8(kind as u8);
    buf.put_slice(payload);
    buf.freeze()
}

/// Splits a binary WebSocket message into its frame type and payload (no copy).
pub(crate) fn decode(message: Bytes, limit: usize) -> Result<(FrameType, Bytes)> {
    let Some(&first) = message.first() else {
        return Err(Error::invalid_argument(
            "empty WebSocket message: a frame starts with its type byte",
        ));
    };
    let kind = FrameType::from_byte(first).ok_or_else(|| {
        Error::invalid_argument(format!("unknown WebSocket frame type {first:#04x}"))
    })?;
    let payload = message.slice(1..);
    if payload.len() > limit {
        return Err(super::wire::too_large(
            "WebSocket frame",
            payload.len(),
            limit,
        ));
    }
    Ok((kind, payload))
}

/// An error, as WebSocket error frames and SSE `error` events carry it. `status` is the code's
/// PascalCase name, as OmniRelay .NET writes it; readers take `code` first, then `status`, in
/// any spelling.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(default)]
    message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    details: Option<String>,
}

fn pascal_case(code: Code) -> String {
    code.as_str()
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// The JSON payload for `error`.
pub(crate) fn error_payload(error: &Error) -> Bytes {
    let payload = ErrorPayload {
        code: Some(error.code().as_str().to_owned()),
        status: Some(pascal_case(error.code())),
        message: error.message().to_owned(),
        details: (!error.details().is_empty())
            .then(|| base64::engine::general_purpose::STANDARD.encode(error.details())),
    };
    Bytes::from(serde_json::to_vec(&payload).unwrap_or_default())
}

/// Reads an error payload; a payload that is not the expected JSON is still an error (`unknown`,
/// with the payload as the message).
pub(crate) fn parse_error(payload: &[u8]) -> Error {
    let Ok(parsed) = serde_json::from_slice::<ErrorPayload>(payload) else {
        return Error::unknown(String::from_utf8_lossy(payload).into_owned());
    };
    let code = parsed
        .code
        .as_deref()
        .and_then(Code::parse)
        .or_else(|| parsed.status.as_deref().and_then(Code::parse))
        .filter(|c| *c != Code::Ok)
        .unwrap_or(Code::Unknown);
    let mut error = Error::new(code, parsed.message);
    if let Some(details) = parsed
        .details
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
    {
        error = error.with_details(Bytes::from(details));
    }
    error
}

/// Response metadata as the response-headers and response-complete payloads carry it.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transport: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

fn to_map(headers: &Headers) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(k, v)| {
            let value = if k.ends_with("-bin") {
                base64::engine::general_purpose::STANDARD.encode(v)
            } else {
                String::from_utf8_lossy(v).into_owned()
            };
            (k.to_owned(), value)
        })
        .collect()
}

fn from_map(map: BTreeMap<String, String>) -> Headers {
    let indifferent = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    map.into_iter()
        .map(|(k, v)| {
            let value = match k.ends_with("-bin").then(|| indifferent.decode(&v)) {
                Some(Ok(bytes)) => Bytes::from(bytes),
                _ => Bytes::from(v),
            };
            (k, value)
        })
        .collect()
}

/// The response-headers payload: `{"headers":{...}}`.
pub(crate) fn headers_payload(headers: &Headers) -> Bytes {
    let payload = MetaPayload {
        headers: to_map(headers),
        ..MetaPayload::default()
    };
    Bytes::from(serde_json::to_vec(&payload).unwrap_or_default())
}

/// The response-complete payload: `{"encoding":..,"transport":"http","headers":{trailers}}`.
pub(crate) fn complete_payload(encoding: Encoding, trailers: &Headers) -> Bytes {
    let payload = MetaPayload {
        encoding: Some(encoding.as_str().to_owned()),
        transport: Some("http".to_owned()),
        headers: to_map(trailers),
    };
    Bytes::from(serde_json::to_vec(&payload).unwrap_or_default())
}

/// Reads the headers of a response-headers or response-complete payload; an empty payload has
/// none.
pub(crate) fn parse_headers(payload: &[u8]) -> Result<Headers> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(Headers::new());
    }
    serde_json::from_slice::<MetaPayload>(payload)
        .map(|p| from_map(p.headers))
        .map_err(|e| Error::internal(format!("malformed response metadata from the server: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_ones_are_refused() {
        let frame = encode(FrameType::RequestData, b"abc");
        assert_eq!(frame.as_ref(), b"\x01abc");
        let (kind, payload) = decode(frame, 3).unwrap();
        assert_eq!(
            (kind, payload.as_ref()),
            (FrameType::RequestData, &b"abc"[..])
        );
        let err = decode(encode(FrameType::RequestData, b"abcd"), 3).unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
        let err = decode(Bytes::from_static(b"\x7fxx"), 3).unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("0x7f"), "{err}");
        assert!(decode(Bytes::new(), 3).is_err());
    }

    #[test]
    fn errors_and_headers_round_trip() {
        let err = Error::already_exists("there").with_details(Bytes::from_static(b"\x00\x01"));
        let payload = error_payload(&err);
        let text = std::str::from_utf8(&payload).unwrap();
        assert!(text.contains(r#""status":"AlreadyExists""#), "{text}");
        assert_eq!(parse_error(&payload), err);
        assert_eq!(
            parse_error(br#"{"status":"INVALID_ARGUMENT","message":"m"}"#).code(),
            Code::InvalidArgument
        );
        assert_eq!(parse_error(b"garbage").code(), Code::Unknown);

        let mut trailers = Headers::new();
        trailers.insert("x-bin", Bytes::from_static(&[0xab, 0xab, 0xab]));
        trailers.insert("plain", "v");
        let back = parse_headers(&complete_payload(Encoding::Json, &trailers)).unwrap();
        assert_eq!(back.get("x-bin").unwrap().as_ref(), &[0xab, 0xab, 0xab]);
        assert_eq!(back.get_str("plain"), Some("v"));
        assert!(parse_headers(b"").unwrap().is_empty());
        assert!(parse_headers(b"{oops").is_err());
    }
}
