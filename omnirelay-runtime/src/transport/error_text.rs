//! Error messages as they travel in headers (`grpc-message`, `Rpc-Error-Message`), where a peer's
//! header-size limit would otherwise turn a long message into a protocol error that loses the
//! code.

use std::borrow::Cow;

/// The most bytes of an error message sent in a header. Longer messages are cut at a character
/// boundary and end with [`TRUNCATED`]; the code always arrives.
pub const MAX_HEADER_MESSAGE_BYTES: usize = 4096;

/// What a cut message ends with.
pub const TRUNCATED: &str = "... (truncated)";

/// `message`, cut to at most [`MAX_HEADER_MESSAGE_BYTES`] bytes (marker included).
pub(crate) fn header_message(message: &str) -> Cow<'_, str> {
    if message.len() <= MAX_HEADER_MESSAGE_BYTES {
        return Cow::Borrowed(message);
    }
    let mut end = MAX_HEADER_MESSAGE_BYTES - TRUNCATED.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{TRUNCATED}", &message[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        assert!(matches!(header_message("short"), Cow::Borrowed("short")));
        let long = "é".repeat(5000);
        let cut = header_message(&long);
        assert!(cut.len() <= MAX_HEADER_MESSAGE_BYTES, "{}", cut.len());
        assert!(cut.ends_with(TRUNCATED));
        assert!(cut.starts_with("éé"));
        let exact = "x".repeat(MAX_HEADER_MESSAGE_BYTES);
        assert_eq!(header_message(&exact), exact.as_str());
    }
}
