//! Naming rules for generated Rust identifiers (DESIGN §2): snake_case methods, UpperCamel types,
//! SCREAMING_SNAKE constants, and keyword escaping as prost does it (`r#type`, and `self_` for the
//! keywords that cannot be raw identifiers).

/// Rust keywords in every edition up to 2024 (strict and reserved).
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "do", "dyn",
    "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let",
    "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return",
    "static", "struct", "trait", "true", "try", "type", "typeof", "unsafe", "unsized", "use",
    "virtual", "where", "while", "yield",
];

/// Keywords that cannot be raw identifiers; they get a trailing underscore instead.
const NOT_RAW: &[&str] = &["self", "Self", "super", "crate", "_"];

/// Makes `name` a valid identifier: `r#name` for keywords, `name_` for the few that cannot be raw.
pub fn sanitize(name: &str) -> String {
    if NOT_RAW.contains(&name) {
        format!("{name}_")
    } else if KEYWORDS.contains(&name) {
        format!("r#{name}")
    } else {
        name.to_owned()
    }
}

/// Splits an identifier into lower-case words at `_` and at case changes (`HTTPServer2Go` is
/// `http`, `server2`, `go`).
fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' || c == '-' || c == '.' {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        if c.is_uppercase() && !current.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                words.push(std::mem::take(&mut current));
            }
        }
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// `UnaryCall` -> `unary_call` (not escaped).
pub fn to_snake(name: &str) -> String {
    words(name).join("_")
}

/// `unary_call` -> `UNARY_CALL`.
pub fn to_screaming_snake(name: &str) -> String {
    to_snake(name).to_uppercase()
}

/// `test_service` -> `TestService`.
pub fn to_upper_camel(name: &str) -> String {
    words(name)
        .into_iter()
        .map(|w| {
            let mut chars = w.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case() {
        assert_eq!(to_snake("UnaryCall"), "unary_call");
        assert_eq!(to_snake("EmptyCall"), "empty_call");
        assert_eq!(to_snake("HTTPServer"), "http_server");
        assert_eq!(to_snake("getV2Thing"), "get_v2_thing");
        assert_eq!(to_snake("already_snake"), "already_snake");
        assert_eq!(to_snake("ABC"), "abc");
    }

    #[test]
    fn camel_and_screaming() {
        assert_eq!(to_upper_camel("test_service"), "TestService");
        assert_eq!(to_upper_camel("TestService"), "TestService");
        assert_eq!(to_screaming_snake("FullDuplexCall"), "FULL_DUPLEX_CALL");
    }

    #[test]
    fn keywords() {
        assert_eq!(sanitize("type"), "r#type");
        assert_eq!(sanitize("gen"), "r#gen");
        assert_eq!(sanitize("self"), "self_");
        assert_eq!(sanitize("Self"), "Self_");
        assert_eq!(sanitize("crate"), "crate_");
        assert_eq!(sanitize("normal"), "normal");
    }
}
