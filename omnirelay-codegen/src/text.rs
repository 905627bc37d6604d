//! Boundary-aware text edits on generated Rust, used to reconcile prost's and pbjson's naming.

/// Whether `c` can be part of an identifier (including the `#` of a raw identifier).
fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '#'
}

/// Replaces every occurrence of the path `from` that stands alone: not preceded or followed by
/// identifier characters (`::` before it is allowed, so `super::a::B` matches `a::B`).
pub(crate) fn replace_path(text: &str, from: &str, to: &str) -> String {
    if from.is_empty() || !text.contains(from) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut prev: Option<char> = None;
    while let Some(pos) = rest.find(from) {
        let before = rest[..pos].chars().next_back().or(prev);
        let after = rest[pos + from.len()..].chars().next();
        out.push_str(&rest[..pos]);
        if before.is_some_and(is_ident) || after.is_some_and(is_ident) {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        prev = from.chars().next_back();
        rest = &rest[pos + from.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_paths_only() {
        let text = "depot::Bay x; super::depot::Bay; my_depot::Bay; depot::Bays; r#depot::Bay";
        assert_eq!(
            replace_path(text, "depot::Bay", "depot_::Bay"),
            "depot_::Bay x; super::depot_::Bay; my_depot::Bay; depot::Bays; r#depot::Bay"
        );
    }
}
