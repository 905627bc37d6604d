//! The W3C Trace Context header formats (<https://www.w3.org/TR/trace-context/>): parsing and
//! writing `traceparent`, parsing `tracestate`.
//!
//! The id, flags and trace-state types are the `opentelemetry` API crate's. The parsing is done
//! here rather than with `opentelemetry_sdk::propagation::TraceContextPropagator` because that
//! propagator accepts headers the specification rejects: it parses ids with
//! `u128::from_str_radix`, so `00-abc-def-01` (ids of the wrong length) and ids starting with `+`
//! are taken as valid. It also needs the SDK's `trace` feature (the whole span pipeline and
//! `rand` 0.9) and an `opentelemetry::Context` per call. The rules followed here:
//!
//! - `version "-" trace-id "-" parent-id "-" trace-flags`, each field lower-case hex, of 2, 32,
//!   16 and 2 characters; surrounding whitespace is ignored.
//! - Version `ff` is invalid. Version `00` must be exactly 55 characters long.
//! - A higher (future) version is parsed as version `00` from its first 55 characters, and is
//!   valid only when it is exactly that long or the 56th character is `-` (the start of fields
//!   this version does not know).
//! - An all-zero trace id or parent id is invalid.
//! - Only the `sampled` flag is kept; other bits are dropped, so they are not passed on as if
//!   this service understood them.
//! - `tracestate` is read only with a valid `traceparent`; an invalid one is dropped as a whole
//!   (the list rules, at most 32 members, are `opentelemetry::trace::TraceState`'s).

use std::str::FromStr;

use opentelemetry::trace::TraceState;
use opentelemetry::{SpanId, TraceFlags, TraceId};

/// The length of a version-00 `traceparent`.
pub(crate) const TRACEPARENT_LEN: usize = 55;

/// The fields of a valid `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TraceParent {
    pub(crate) trace_id: TraceId,
    pub(crate) parent_id: SpanId,
    pub(crate) flags: TraceFlags,
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Lower-case hex of exactly `digits.len()` characters (at most 32) as a number.
fn hex(digits: &[u8]) -> Option<u128> {
    digits
        .iter()
        .try_fold(0u128, |n, &b| Some((n << 4) | u128::from(hex_digit(b)?)))
}

/// Parses a `traceparent` header value; `None` when it is not valid.
pub(crate) fn parse_traceparent(value: &[u8]) -> Option<TraceParent> {
    let value = value.trim_ascii();
    if value.len() < TRACEPARENT_LEN {
        return None;
    }
    let version = hex(&value[0..2])? as u8;
    match version {
        0xff => return None,
        0 if value.len() != TRACEPARENT_LEN => return None,
        _ if value.len() > TRACEPARENT_LEN && value[TRACEPARENT_LEN] != b'-' => return None,
        _ => {}
    }
    if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let trace_id = hex(&value[3..35])?;
    let parent_id = hex(&value[36..52])? as u64;
    let flags = hex(&value[53..55])? as u8;
    if trace_id == 0 || parent_id == 0 {
        return None;
    }
    Some(TraceParent {
        trace_id: TraceId::from(trace_id),
        parent_id: SpanId::from(parent_id),
        flags: TraceFlags::new(flags) & TraceFlags::SAMPLED,
    })
}

/// Writes a version-00 `traceparent`.
pub(crate) fn format_traceparent(
    trace_id: TraceId,
    span_id: SpanId,
    flags: TraceFlags,
) -> [u8; TRACEPARENT_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; TRACEPARENT_LEN];
    let mut put = |at: usize, bytes: &[u8]| {
        for (i, b) in bytes.iter().enumerate() {
            out[at + 2 * i] = HEX[usize::from(b >> 4)];
            out[at + 2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
    };
    put(0, &[0]);
    put(3, &trace_id.to_bytes());
    put(36, &span_id.to_bytes());
    put(53, &[(flags & TraceFlags::SAMPLED).to_u8()]);
    out
}

/// Parses a `tracestate` header value; `None` when it is not valid text or not a valid list.
/// An empty list is `Some` of the empty state.
pub(crate) fn parse_tracestate(value: &[u8]) -> Option<TraceState> {
    let text = std::str::from_utf8(value).ok()?;
    TraceState::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn parse(s: &str) -> Option<TraceParent> {
        parse_traceparent(s.as_bytes())
    }

    #[test]
    fn parses_a_version_00_header() {
        let p = parse(VALID).unwrap();
        assert_eq!(
            p.trace_id,
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736)
        );
        assert_eq!(p.parent_id, SpanId::from(0x00f0_67aa_0ba9_02b7));
        assert!(p.flags.is_sampled());
        let unsampled = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.flags.is_sampled());
    }

    #[test]
    fn round_trips() {
        let p = parse(VALID).unwrap();
        let out = format_traceparent(p.trace_id, p.parent_id, p.flags);
        assert_eq!(std::str::from_utf8(&out).unwrap(), VALID);
        let low = format_traceparent(TraceId::from(1), SpanId::from(2), TraceFlags::NOT_SAMPLED);
        assert_eq!(
            std::str::from_utf8(&low).unwrap(),
            "00-00000000000000000000000000000001-0000000000000002-00"
        );
    }

    #[test]
    fn keeps_only_the_sampled_flag() {
        let p = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0b").unwrap();
        assert_eq!(p.flags, TraceFlags::SAMPLED);
        let p = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02").unwrap();
        assert_eq!(p.flags, TraceFlags::NOT_SAMPLED);
    }

    #[test]
    fn ignores_surrounding_whitespace() {
        assert!(parse(&format!("  {VALID}\t ")).is_some());
    }

    #[test]
    fn rejects_malformed_headers() {
        let invalid = [
            "",
            "garbage",
            // wrong lengths
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "00-abc-def-01",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
            // version 00 with extra fields
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            // upper case
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            // not hex, signs, wrong separators
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-+0f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // all-zero ids
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // the forbidden version
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // a future version whose trailing data does not start with '-'
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0100",
        ];
        for value in invalid {
            assert_eq!(parse(value), None, "{value:?} must be rejected");
        }
        assert_eq!(parse_traceparent(b"\xff\xfe"), None);
    }

    #[test]
    fn accepts_future_versions_as_version_00() {
        for value in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds",
            "fe-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-",
        ] {
            let p = parse(value).unwrap_or_else(|| panic!("{value:?} must be accepted"));
            assert_eq!(p.parent_id, SpanId::from(0x00f0_67aa_0ba9_02b7));
        }
    }

    #[test]
    fn parses_tracestate() {
        let state = parse_tracestate(b"rojo=00f067aa0ba902b7, congo=t61rcWkgMzE").unwrap();
        assert_eq!(state.get("rojo"), Some("00f067aa0ba902b7"));
        assert_eq!(state.get("congo"), Some("t61rcWkgMzE"));
        assert_eq!(state.header(), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
        assert_eq!(parse_tracestate(b"").unwrap().header(), "");
        assert!(parse_tracestate(b"no-equals-sign").is_none());
        assert!(parse_tracestate(b"UPPER=1").is_none());
        assert!(parse_tracestate(b"\xff=1").is_none());
    }
}
