//! Helpers the output of `omnirelay-macros` calls, through `omnirelay::__private`. Not a public
//! API.

/// Whether two strings are equal, in constant context.
pub const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A name two procedures both claim (as name or alias), if any; `procedures![...]` calls this for
/// each pair of listed procedures in constant context.
pub const fn shared_name(
    a_name: &'static str,
    a_aliases: &'static [&'static str],
    b_name: &'static str,
    b_aliases: &'static [&'static str],
) -> Option<&'static str> {
    let mut i = 0;
    while i <= a_aliases.len() {
        let a = if i == 0 { a_name } else { a_aliases[i - 1] };
        let mut j = 0;
        while j <= b_aliases.len() {
            let b = if j == 0 { b_name } else { b_aliases[j - 1] };
            if str_eq(a, b) {
                return Some(a);
            }
            j += 1;
        }
        i += 1;
    }
    None
}

/// The longest compile-time error message; longer ones are cut at a character boundary.
const CAPACITY: usize = 512;

/// A message built in constant context, for a `panic!` that becomes a compile error.
#[derive(Clone, Copy, Debug)]
pub struct ConstMessage {
    bytes: [u8; CAPACITY],
    len: usize,
}

impl ConstMessage {
    /// An empty message.
    pub const fn new() -> Self {
        ConstMessage {
            bytes: [0; CAPACITY],
            len: 0,
        }
    }

    /// The message with `text` appended (as much of it as fits).
    pub const fn push(mut self, text: &str) -> Self {
        let text = text.as_bytes();
        let mut i = 0;
        while i < text.len() && self.len < CAPACITY {
            self.bytes[self.len] = text[i];
            self.len += 1;
            i += 1;
        }
        // Never end inside a UTF-8 sequence: if the first byte left out continues a character,
        // drop the part of that character already copied.
        let mut k = i;
        while k > 0 && k < text.len() && text[k] & 0xC0 == 0x80 {
            self.len -= 1;
            k -= 1;
        }
        self
    }

    /// The message.
    pub const fn as_str(&self) -> &str {
        match core::str::from_utf8(self.bytes.split_at(self.len).0) {
            Ok(text) => text,
            Err(_) => "duplicate procedure names",
        }
    }
}

impl Default for ConstMessage {
    fn default() -> Self {
        ConstMessage::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_names_are_found_among_names_and_aliases() {
        assert_eq!(shared_name("a", &[], "b", &[]), None);
        assert_eq!(shared_name("a", &[], "a", &[]), Some("a"));
        assert_eq!(shared_name("a", &["x", "y"], "b", &["z", "y"]), Some("y"));
        assert_eq!(shared_name("a", &["b"], "b", &[]), Some("b"));
        assert_eq!(shared_name("ab", &[], "a", &["abc"]), None);
        const CLASH: Option<&str> = shared_name("p", &[], "q", &["p"]);
        assert_eq!(CLASH, Some("p"));
    }

    #[test]
    fn messages_are_built_and_cut_at_char_boundaries() {
        const M: ConstMessage = ConstMessage::new().push("one ").push("two");
        assert_eq!(M.as_str(), "one two");
        let long = "é".repeat(CAPACITY);
        let cut = ConstMessage::new().push("x").push(&long);
        assert!(cut.as_str().len() <= CAPACITY);
        assert!(cut.as_str().starts_with("xé"));
    }
}
