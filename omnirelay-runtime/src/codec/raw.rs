//! The raw codec: bytes in, bytes out.

use bytes::Bytes;

use super::{Codec, Encoding};
use crate::error::Result;

/// Passes [`Bytes`] through untouched.
///
/// Procedures built with it serve encoding `raw`. A client built with it may send bytes under
/// any encoding name, which is how already-encoded bodies (JSON text, protobuf bytes from
/// elsewhere) are sent: `Client::with_codec(config, RawCodec, Encoding::Json)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

impl Codec<Bytes> for RawCodec {
    fn encodings(&self) -> &'static [Encoding] {
        &[Encoding::Raw]
    }

    fn encode(&self, _encoding: Encoding, value: &Bytes) -> Result<Bytes> {
        Ok(value.clone())
    }

    fn decode(&self, _encoding: Encoding, bytes: Bytes) -> Result<Bytes> {
        Ok(bytes)
    }
}
