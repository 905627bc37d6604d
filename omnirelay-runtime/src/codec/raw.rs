//! The raw codec: bytes in, bytes out.

use bytes::Bytes;

use super::{Codec, Encoding, unsupported};
use crate::error::Result;

/// Passes [`Bytes`] through untouched, with encoding `raw`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

impl Codec<Bytes> for RawCodec {
    fn encodings(&self) -> &'static [Encoding] {
        &[Encoding::Raw]
    }

    fn encode(&self, encoding: Encoding, value: &Bytes) -> Result<Bytes> {
        match encoding {
            Encoding::Raw => Ok(value.clone()),
            other => Err(unsupported(other, self.encodings())),
        }
    }

    fn decode(&self, encoding: Encoding, bytes: Bytes) -> Result<Bytes> {
        match encoding {
            Encoding::Raw => Ok(bytes),
            other => Err(unsupported(other, self.encodings())),
        }
    }
}
