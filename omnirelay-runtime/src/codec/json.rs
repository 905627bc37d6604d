//! The JSON codec (serde_json).

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

use super::{Codec, Encoding, unsupported};
use crate::error::{Error, Result};

/// JSON for serde types. For prost messages with pbjson impls this is the proto3 JSON mapping
/// (lowerCamelCase names, enums as strings, 64-bit integers as strings, bytes as base64).
///
/// `()` (what `google.protobuf.Empty` maps to with `extern_path(".google.protobuf.Empty", "()")`)
/// is written as `{}`, as proto3 JSON writes `Empty`, and read from `{}`, `null` or an empty body.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonCodec;

fn is_unit<T: 'static>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<()>()
}

impl JsonCodec {
    pub(crate) fn encode_value<T: Serialize + 'static>(value: &T) -> Result<Bytes> {
        if is_unit::<T>() {
            return Ok(Bytes::from_static(b"{}"));
        }
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|e| Error::internal(format!("cannot encode JSON body: {e}")))
    }

    pub(crate) fn decode_value<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T> {
        if is_unit::<T>() {
            let text = std::str::from_utf8(bytes).unwrap_or("?").trim();
            let empty_object = text
                .strip_prefix('{')
                .and_then(|t| t.strip_suffix('}'))
                .is_some_and(|inner| inner.trim().is_empty());
            if text.is_empty() || text == "null" || empty_object {
                return serde_json::from_slice(b"null")
                    .map_err(|e| Error::internal(format!("cannot decode unit: {e}")));
            }
            return Err(Error::invalid_argument(format!(
                "malformed JSON body: expected {{}} for an empty message, got {text:?}"
            )));
        }
        serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid_argument(format!("malformed JSON body: {e}")))
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Codec<T> for JsonCodec {
    fn encodings(&self) -> &'static [Encoding] {
        &[Encoding::Json]
    }

    fn encode(&self, encoding: Encoding, value: &T) -> Result<Bytes> {
        match encoding {
            Encoding::Json => Self::encode_value(value),
            other => Err(unsupported(other, Codec::<T>::encodings(self))),
        }
    }

    fn decode(&self, encoding: Encoding, bytes: Bytes) -> Result<T> {
        match encoding {
            Encoding::Json => Self::decode_value(&bytes),
            other => Err(unsupported(other, Codec::<T>::encodings(self))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_is_invalid_argument() {
        let err = Codec::<serde_json::Value>::decode(
            &JsonCodec,
            Encoding::Json,
            Bytes::from_static(b"{not json"),
        )
        .unwrap_err();
        assert_eq!(err.code(), crate::Code::InvalidArgument);
        assert!(err.message().starts_with("malformed JSON body"));
    }

    #[test]
    fn unit_is_an_empty_object() {
        assert_eq!(
            JsonCodec.encode(Encoding::Json, &()).unwrap().as_ref(),
            b"{}"
        );
        for body in [&b"{}"[..], b" { } ", b"null", b""] {
            let () = Codec::<()>::decode(&JsonCodec, Encoding::Json, Bytes::copy_from_slice(body))
                .unwrap();
        }
        let err = Codec::<()>::decode(&JsonCodec, Encoding::Json, Bytes::from_static(b"{\"a\":1}"))
            .unwrap_err();
        assert_eq!(err.code(), crate::Code::InvalidArgument);
    }
}
