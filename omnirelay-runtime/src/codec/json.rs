//! The JSON codec (serde_json).

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

use super::{Codec, Encoding, unsupported};
use crate::error::{Error, Result};

/// JSON for serde types. For prost messages with pbjson impls this is the proto3 JSON mapping
/// (lowerCamelCase names, enums as strings, 64-bit integers as strings, bytes as base64).
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonCodec;

impl JsonCodec {
    pub(crate) fn encode_value<T: Serialize>(value: &T) -> Result<Bytes> {
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|e| Error::internal(format!("cannot encode JSON body: {e}")))
    }

    pub(crate) fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
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
}
