//! Codecs: how a typed message becomes the bytes a transport carries, keyed by encoding name.
//!
//! A [`Codec<T>`] serves one or more [`Encoding`]s for messages of type `T`. The codecs are
//! zero-sized and generic over the message, so a procedure picks its codec at compile time and the
//! request path only matches on the request's encoding:
//!
//! | codec | encodings | messages |
//! |---|---|---|
//! | [`ProtoCodec`] | `proto` | prost messages |
//! | [`JsonCodec`] | `json` | serde types (for prost messages: the pbjson proto3 JSON mapping) |
//! | [`ProtoJsonCodec`] | `proto`, `json` | generated messages (prost + pbjson); the codegen default |
//! | [`RawCodec`] | `raw` | [`bytes::Bytes`], passed through untouched |

mod json;
mod proto;
mod raw;

use std::fmt;

use bytes::Bytes;

use crate::error::{Error, Result};

pub use json::JsonCodec;
pub use proto::{ProtoCodec, ProtoJsonCodec};
pub use raw::RawCodec;

/// A body encoding. Names are matched case-insensitively, and each has the aliases the wire
/// protocols use (DESIGN §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Protocol buffers binary (`proto`, `protobuf`, `application/x-protobuf`).
    Proto,
    /// JSON (`json`, `application/json`); the proto3 JSON mapping for protobuf messages.
    Json,
    /// Uninterpreted bytes (`raw`, `application/octet-stream`).
    Raw,
}

impl Encoding {
    /// The encoding's canonical name: `proto`, `json` or `raw`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Encoding::Proto => "proto",
            Encoding::Json => "json",
            Encoding::Raw => "raw",
        }
    }

    /// The HTTP content type bodies of this encoding are sent with.
    pub const fn content_type(self) -> &'static str {
        match self {
            Encoding::Proto => "application/x-protobuf",
            Encoding::Json => "application/json",
            Encoding::Raw => "application/octet-stream",
        }
    }

    /// Parses an encoding name or one of its aliases; `None` for an unknown name.
    pub fn parse(name: &str) -> Option<Encoding> {
        // The names as the encodings spell them, what clients send, without the trim and the
        // case-insensitive search.
        match name {
            "proto" => return Some(Encoding::Proto),
            "json" => return Some(Encoding::Json),
            "raw" => return Some(Encoding::Raw),
            _ => {}
        }
        let name = name.trim();
        const TABLE: [(&str, Encoding); 8] = [
            ("proto", Encoding::Proto),
            ("protobuf", Encoding::Proto),
            ("application/x-protobuf", Encoding::Proto),
            ("application/protobuf", Encoding::Proto),
            ("json", Encoding::Json),
            ("application/json", Encoding::Json),
            ("raw", Encoding::Raw),
            ("application/octet-stream", Encoding::Raw),
        ];
        TABLE
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, e)| e)
    }

    /// Like [`Encoding::parse`], but an unknown name is an `invalid-argument` error naming it.
    pub fn parse_or_error(name: &str) -> Result<Encoding> {
        Encoding::parse(name).ok_or_else(|| {
            Error::invalid_argument(format!(
                "unknown encoding {name:?}: expected one of proto, json, raw"
            ))
        })
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Encodes and decodes messages of type `T` in the encodings it lists.
///
/// Errors are `invalid-argument` for bodies that do not decode (the caller sent bad input) and
/// `internal` for values that cannot be encoded.
#[diagnostic::on_unimplemented(
    message = "codec `{Self}` cannot carry messages of type `{T}`",
    label = "`{T}` is not a message `{Self}` can encode",
    note = "JsonCodec (encoding \"json\") needs serde's Serialize + Deserialize; ProtoCodec \
            (\"proto\") a prost::Message + Default; ProtoJsonCodec ([\"proto\", \"json\"]) both; \
            RawCodec (\"raw\") carries bytes::Bytes only: derive what the type lacks, or choose \
            another encoding"
)]
pub trait Codec<T>: Send + Sync + 'static {
    /// The encodings this codec serves, the preferred one first.
    fn encodings(&self) -> &'static [Encoding];

    /// Encodes `value` as `encoding`.
    fn encode(&self, encoding: Encoding, value: &T) -> Result<Bytes>;

    /// Decodes a `T` from `bytes` in `encoding`.
    fn decode(&self, encoding: Encoding, bytes: Bytes) -> Result<T>;
}

/// The error for an encoding a codec does not serve.
pub(crate) fn unsupported(encoding: Encoding, supported: &[Encoding]) -> Error {
    let names: Vec<&str> = supported.iter().map(|e| e.as_str()).collect();
    Error::invalid_argument(format!(
        "encoding {encoding} is not supported here; supported: {}",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aliases() {
        assert_eq!(Encoding::parse("protobuf"), Some(Encoding::Proto));
        assert_eq!(
            Encoding::parse("Application/X-Protobuf"),
            Some(Encoding::Proto)
        );
        assert_eq!(Encoding::parse("JSON"), Some(Encoding::Json));
        assert_eq!(Encoding::parse("raw"), Some(Encoding::Raw));
        assert_eq!(Encoding::parse("thrift"), None);
        let err = Encoding::parse_or_error("thrift").unwrap_err();
        assert_eq!(err.code(), crate::Code::InvalidArgument);
        assert!(err.message().contains("thrift"));
    }
}
