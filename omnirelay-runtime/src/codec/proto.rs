//! The protobuf codec, and the protobuf-plus-JSON codec generated code uses.

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

use super::{Codec, Encoding, JsonCodec, unsupported};
use crate::error::{Error, Result};

/// Protobuf binary encoding for prost messages.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProtoCodec;

impl ProtoCodec {
    pub(crate) fn encode_message<T: prost::Message>(value: &T) -> Bytes {
        // `encode_to_vec` sizes the buffer exactly once; no re-allocation while encoding.
        Bytes::from(value.encode_to_vec())
    }

    pub(crate) fn decode_message<T: prost::Message + Default>(bytes: Bytes) -> Result<T> {
        T::decode(bytes)
            .map_err(|e| Error::invalid_argument(format!("malformed protobuf body: {e}")))
    }
}

impl<T: prost::Message + Default + 'static> Codec<T> for ProtoCodec {
    fn encodings(&self) -> &'static [Encoding] {
        &[Encoding::Proto]
    }

    fn encode(&self, encoding: Encoding, value: &T) -> Result<Bytes> {
        match encoding {
            Encoding::Proto => Ok(Self::encode_message(value)),
            other => Err(unsupported(other, Codec::<T>::encodings(self))),
        }
    }

    fn decode(&self, encoding: Encoding, bytes: Bytes) -> Result<T> {
        match encoding {
            Encoding::Proto => Self::decode_message(bytes),
            other => Err(unsupported(other, Codec::<T>::encodings(self))),
        }
    }
}

/// Protobuf binary and proto3 JSON, for messages that are both prost messages and serde types
/// (what `omnirelay-build` generates, through pbjson). Generated procedures use this codec, so
/// each serves encodings `proto` and `json`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProtoJsonCodec;

impl<T> Codec<T> for ProtoJsonCodec
where
    T: prost::Message + Default + Serialize + DeserializeOwned + 'static,
{
    fn encodings(&self) -> &'static [Encoding] {
        &[Encoding::Proto, Encoding::Json]
    }

    fn encode(&self, encoding: Encoding, value: &T) -> Result<Bytes> {
        match encoding {
            Encoding::Proto => Ok(ProtoCodec::encode_message(value)),
            Encoding::Json => JsonCodec::encode_value(value),
            other => Err(unsupported(other, Codec::<T>::encodings(self))),
        }
    }

    fn decode(&self, encoding: Encoding, bytes: Bytes) -> Result<T> {
        match encoding {
            Encoding::Proto => ProtoCodec::decode_message(bytes),
            Encoding::Json => JsonCodec::decode_value(&bytes),
            other => Err(unsupported(other, Codec::<T>::encodings(self))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_protobuf_is_invalid_argument() {
        // A field header announcing a 100-byte length-delimited field with only 1 byte present.
        let err = ProtoCodec
            .decode(Encoding::Proto, Bytes::from_static(b"\x0a\x64x"))
            .map(|v: prost_types::Duration| v)
            .unwrap_err();
        assert_eq!(err.code(), crate::Code::InvalidArgument);
        assert!(err.message().starts_with("malformed protobuf body"));
    }

    #[test]
    fn wrong_encoding_is_invalid_argument() {
        let err = Codec::<prost_types::Duration>::decode(&ProtoCodec, Encoding::Json, Bytes::new())
            .unwrap_err();
        assert_eq!(err.code(), crate::Code::InvalidArgument);
    }
}
