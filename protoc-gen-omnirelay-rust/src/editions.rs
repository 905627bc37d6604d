//! Finds files written in protobuf editions in an encoded `CodeGeneratorRequest`, with their
//! edition, by reading the wire format directly: `CodeGeneratorRequest.proto_file` is field 15,
//! and in each `FileDescriptorProto` the name is field 1 and the edition (an `Edition` enum) is
//! field 14, which prost's descriptor types predate.

use bytes::Buf;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};

const PROTO_FILE: u32 = 15;
const NAME: u32 = 1;
const EDITION: u32 = 14;

/// `(file name, "edition 2023")` for every file that declares an edition.
pub(crate) fn files_with_editions(request: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let _ = for_each_field(request, |number, wire_type, buf| {
        if number == PROTO_FILE && wire_type == WireType::LengthDelimited {
            let len = decode_varint(buf).map_err(drop)? as usize;
            if len > buf.remaining() {
                return Err(());
            }
            let file = &buf.chunk()[..len];
            if let Some(found) = edition_of(file) {
                out.push(found);
            }
            buf.advance(len);
            Ok(())
        } else {
            skip_field(wire_type, number, buf, DecodeContext::default()).map_err(drop)
        }
    });
    out
}

fn edition_of(file: &[u8]) -> Option<(String, String)> {
    let mut name = None;
    let mut edition = None;
    for_each_field(file, |number, wire_type, buf| match (number, wire_type) {
        (NAME, WireType::LengthDelimited) => {
            let len = decode_varint(buf).map_err(drop)? as usize;
            if len > buf.remaining() {
                return Err(());
            }
            name = Some(String::from_utf8_lossy(&buf.chunk()[..len]).into_owned());
            buf.advance(len);
            Ok(())
        }
        (EDITION, WireType::Varint) => {
            edition = Some(decode_varint(buf).map_err(drop)?);
            Ok(())
        }
        _ => skip_field(wire_type, number, buf, DecodeContext::default()).map_err(drop),
    })
    .ok()?;
    let label = match edition? {
        0 => return None,
        998 => "proto2".to_owned(),
        999 => "proto3".to_owned(),
        1000 => "edition 2023".to_owned(),
        1001 => "edition 2024".to_owned(),
        other => format!("edition number {other}"),
    };
    if label.starts_with("proto") {
        return None;
    }
    Some((name.unwrap_or_default(), label))
}

/// Calls `f` for each field of an encoded message; `Err(())` on a malformed encoding.
fn for_each_field(
    mut buf: &[u8],
    mut f: impl FnMut(u32, WireType, &mut &[u8]) -> Result<(), ()>,
) -> Result<(), ()> {
    while buf.has_remaining() {
        let (number, wire_type) = decode_key(&mut buf).map_err(drop)?;
        f(number, wire_type, &mut buf)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use prost_types::FileDescriptorProto;
    use prost_types::compiler::CodeGeneratorRequest;

    use super::*;

    /// A request whose one file declares `edition = 2023` (field 14 appended by hand).
    pub(crate) fn editions_request() -> Vec<u8> {
        let mut file = FileDescriptorProto {
            name: Some("e.proto".into()),
            syntax: Some("editions".into()),
            ..Default::default()
        }
        .encode_to_vec();
        file.extend_from_slice(&[14 << 3, 0xe8, 0x07]); // field 14, varint 1000
        let mut request = CodeGeneratorRequest {
            file_to_generate: vec!["e.proto".into()],
            ..Default::default()
        }
        .encode_to_vec();
        prost::encoding::encode_key(PROTO_FILE, WireType::LengthDelimited, &mut request);
        prost::encoding::encode_varint(file.len() as u64, &mut request);
        request.extend_from_slice(&file);
        request
    }

    #[test]
    fn finds_the_edition() {
        assert_eq!(
            files_with_editions(&editions_request()),
            vec![("e.proto".to_owned(), "edition 2023".to_owned())]
        );
        let response = crate::run_encoded(&editions_request());
        let error = response.error.unwrap();
        assert!(
            error.contains("e.proto") && error.contains("edition 2023"),
            "{error}"
        );
    }

    #[test]
    fn garbage_is_not_a_panic() {
        assert!(files_with_editions(&[0xff, 0xff, 0xff]).is_empty());
        assert!(crate::run_encoded(&[0xff, 0xff, 0xff]).error.is_some());
    }
}
