//! Server-Sent Events for server streaming: the events the inbound writes, and the parser the
//! outbound reads them with (the subset of the SSE format OmniRelay uses, plus comments and
//! unknown fields, which it skips).

use base64::Engine as _;
use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::frame::{complete_payload, error_payload, parse_error, parse_headers};
use super::wire::too_large;
use crate::codec::Encoding;
use crate::error::{Error, Result};
use crate::meta::Headers;

/// One message as an event: JSON text as is, anything else base64 with `encoding: base64`.
pub(crate) fn data_event(encoding: Encoding, message: &[u8]) -> Bytes {
    let plain = encoding == Encoding::Json
        && !message.contains(&b'\n')
        && !message.contains(&b'\r')
        && std::str::from_utf8(message).is_ok();
    if plain {
        let mut buf = BytesMut::with_capacity(message.len() + 8);
        buf.put_slice(b"data: ");
        buf.put_slice(message);
        buf.put_slice(b"\n\n");
        return buf.freeze();
    }
    let encoded_len = message.len().div_ceil(3) * 4;
    let mut buf = BytesMut::with_capacity(encoded_len + 28);
    buf.put_slice(b"data: ");
    let start = buf.len();
    buf.resize(start + encoded_len, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(message, &mut buf[start..])
        .unwrap_or(0);
    buf.truncate(start + written);
    buf.put_slice(b"\nencoding: base64\n\n");
    buf.freeze()
}

/// The final event of a stream that ended cleanly, carrying the trailers.
pub(crate) fn complete_event(encoding: Encoding, trailers: &Headers) -> Bytes {
    event("complete", &complete_payload(encoding, trailers))
}

/// The final event of a stream that ended with an error.
pub(crate) fn error_event(error: &Error) -> Bytes {
    event("error", &error_payload(error))
}

fn event(name: &str, json: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(json.len() + name.len() + 16);
    buf.put_slice(b"event: ");
    buf.put_slice(name.as_bytes());
    buf.put_slice(b"\ndata: ");
    buf.put_slice(json);
    buf.put_slice(b"\n\n");
    buf.freeze()
}

/// What the parser found.
#[derive(Debug)]
pub(crate) enum Event {
    /// A message.
    Data(Bytes),
    /// The clean end, with the trailers.
    Complete(Headers),
    /// The end with an error.
    Error(Error),
}

/// An incremental SSE parser: push bytes as they arrive, take events as they complete.
#[derive(Debug)]
pub(crate) struct Parser {
    buf: BytesMut,
    event: String,
    data: BytesMut,
    has_data: bool,
    base64: bool,
    limit: usize,
}

impl Parser {
    /// A parser accepting messages of up to `limit` bytes (decoded).
    pub(crate) fn new(limit: usize) -> Self {
        Parser {
            buf: BytesMut::new(),
            event: String::new(),
            data: BytesMut::new(),
            has_data: false,
            base64: false,
            limit,
        }
    }

    /// The most bytes one event may take on the wire: base64 grows a message by 4/3.
    fn wire_limit(&self) -> usize {
        self.limit.saturating_mul(4) / 3 + 1024
    }

    /// Adds bytes read from the body.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, if the bytes pushed so far hold one.
    pub(crate) fn next_event(&mut self) -> Result<Option<Event>> {
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line = self.buf.split_to(pos + 1);
            line.truncate(pos);
            if line.last() == Some(&b'\r') {
                line.truncate(pos - 1);
            }
            if line.is_empty() {
                if let Some(event) = self.dispatch()? {
                    return Ok(Some(event));
                }
                continue;
            }
            self.field(&line)?;
        }
        if self.buf.len() > self.wire_limit() {
            return Err(too_large(
                "server-sent event",
                self.buf.len(),
                self.wire_limit(),
            ));
        }
        Ok(None)
    }

    fn field(&mut self, line: &[u8]) -> Result<()> {
        if line[0] == b':' {
            return Ok(()); // a comment
        }
        let (name, mut value) = match line.iter().position(|b| *b == b':') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &b""[..]),
        };
        if value.first() == Some(&b' ') {
            value.advance(1);
        }
        match name {
            b"data" => {
                if self.has_data {
                    self.data.put_u8(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
                if self.data.len() > self.wire_limit() {
                    return Err(too_large(
                        "server-sent event",
                        self.data.len(),
                        self.wire_limit(),
                    ));
                }
            }
            b"event" => self.event = String::from_utf8_lossy(value).into_owned(),
            b"encoding" => self.base64 = value == b"base64",
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self) -> Result<Option<Event>> {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data).freeze();
        let (has_data, base64) = (self.has_data, self.base64);
        self.has_data = false;
        self.base64 = false;
        match event.as_str() {
            "" | "message" if has_data => {
                let message = if base64 {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(&data)
                        .map_err(|e| {
                            Error::internal(format!("an event's base64 data does not decode: {e}"))
                        })?;
                    Bytes::from(decoded)
                } else {
                    data
                };
                if message.len() > self.limit {
                    return Err(too_large("streamed message", message.len(), self.limit));
                }
                Ok(Some(Event::Data(message)))
            }
            "complete" => Ok(Some(Event::Complete(parse_headers(&data)?))),
            "error" => Ok(Some(Event::Error(parse_error(&data)))),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    fn all_events(parser: &mut Parser) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(e) = parser.next_event().unwrap() {
            events.push(e);
        }
        events
    }

    #[test]
    fn events_round_trip_in_any_chunking() {
        let mut trailers = Headers::new();
        trailers.insert("t", "v");
        let mut wire = Vec::new();
        wire.extend_from_slice(&data_event(Encoding::Json, br#"{"a":1}"#));
        wire.extend_from_slice(&data_event(Encoding::Proto, b"\x08\x96\x01"));
        wire.extend_from_slice(&data_event(Encoding::Json, b"{\n}"));
        wire.extend_from_slice(b": a comment\r\nid: 7\r\n\r\n");
        wire.extend_from_slice(&complete_event(Encoding::Json, &trailers));
        for chunk in [1, 3, 7, wire.len()] {
            let mut parser = Parser::new(1024);
            let mut events = Vec::new();
            for piece in wire.chunks(chunk) {
                parser.push(piece);
                events.extend(all_events(&mut parser));
            }
            assert_eq!(events.len(), 4, "chunk {chunk}: {events:?}");
            assert!(matches!(&events[0], Event::Data(d) if d.as_ref() == br#"{"a":1}"#));
            assert!(matches!(&events[1], Event::Data(d) if d.as_ref() == b"\x08\x96\x01"));
            assert!(matches!(&events[2], Event::Data(d) if d.as_ref() == b"{\n}"));
            assert!(matches!(&events[3], Event::Complete(t) if t.get_str("t") == Some("v")));
        }
    }

    #[test]
    fn errors_and_limits() {
        let mut parser = Parser::new(16);
        parser.push(&error_event(&Error::unavailable("gone")));
        let events = all_events(&mut parser);
        assert!(
            matches!(&events[0], Event::Error(e) if e.code() == Code::Unavailable && e.message() == "gone")
        );
        let mut parser = Parser::new(4);
        parser.push(&data_event(Encoding::Raw, b"too long"));
        let err = parser.next_event().unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
        let mut parser = Parser::new(4);
        parser.push(&[b'x'; 4096]);
        assert_eq!(
            parser.next_event().unwrap_err().code(),
            Code::ResourceExhausted
        );
    }
}
