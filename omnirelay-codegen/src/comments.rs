//! Proto comments made safe for rustdoc before prost turns them into `///` docs.
//!
//! Comments are written for protobuf readers, not rustdoc: a fenced block is usually proto or
//! JSON (rustdoc would compile and run it as a Rust doctest), an indented block is a code block
//! too, and `<T>` or `<br>` is read as an HTML tag (`rustdoc::invalid_html_tags`). So, outside
//! code blocks, inline code and URLs, `<`, `>` and `&` are written as entities; every fenced block is marked `text`
//! (so no comment ever yields a doctest) and an unclosed fence is closed; indented lines lose the
//! indentation that would make them a code block. Everything else (including unicode and
//! backslashes) is kept. prost then escapes brackets and wraps bare URLs.

use prost_types::FileDescriptorSet;

/// Rewrites every comment in `fds`' source info (see the module docs).
pub(crate) fn sanitize_descriptors(fds: &mut FileDescriptorSet) {
    for file in &mut fds.file {
        let Some(info) = file.source_code_info.as_mut() else {
            continue;
        };
        for location in &mut info.location {
            for comment in location
                .leading_comments
                .iter_mut()
                .chain(location.trailing_comments.iter_mut())
                .chain(location.leading_detached_comments.iter_mut())
            {
                *comment = sanitize(comment);
            }
        }
    }
}

/// One comment block, made rustdoc-safe.
pub(crate) fn sanitize(comment: &str) -> String {
    let mut out = String::with_capacity(comment.len() + 16);
    let mut in_fence = false;
    for line in comment.split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        let trimmed = body.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            out.push(' ');
            out.push_str(if in_fence { "```" } else { "```text" });
            in_fence = !in_fence;
        } else if in_fence {
            out.push_str(body);
        } else {
            // protoc keeps the space after `//`; deeper indentation would start a code block.
            if body.starts_with(' ') {
                out.push(' ');
            }
            escape_text(trimmed, &mut out);
        }
        out.push_str(newline);
    }
    if in_fence {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(" ```\n");
    }
    out
}

/// Escapes `<`, `>` and `&` as entities, except inside inline code (`` `Vec<T>` ``, which
/// shows entities literally) and URLs. An autolink `<https://...>` loses its brackets, since
/// prost wraps every bare URL in them itself.
fn escape_text(line: &str, out: &mut String) {
    let mut in_code = false;
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            let url_at = |s: &str| s.starts_with("https://") || s.starts_with("http://");
            if c == '<'
                && url_at(&rest[1..])
                && let Some(end) = rest.find('>')
            {
                out.push_str(&rest[1..end]);
                rest = &rest[end + 1..];
                continue;
            }
            if url_at(rest) {
                let end = rest
                    .find(|c: char| c.is_whitespace() || matches!(c, ')' | '<' | '>'))
                    .unwrap_or(rest.len());
                out.push_str(&rest[..end]);
                rest = &rest[end..];
                continue;
            }
            match c {
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '&' => out.push_str("&amp;"),
                c => out.push(c),
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_become_text_and_close() {
        assert_eq!(
            sanitize(" before\n ```rust\n fn main() {}\n ```\n after\n ```\n open"),
            " before\n ```text\n fn main() {}\n ```\n after\n ```text\n open\n ```\n"
        );
    }

    #[test]
    fn html_and_indentation_are_neutralised() {
        assert_eq!(
            sanitize(" Returns Vec<T> & more\n     indented code\n\\ back\\slash ✓"),
            " Returns Vec&lt;T&gt; &amp; more\n indented code\n\\ back\\slash ✓"
        );
    }

    #[test]
    fn inline_code_and_urls_are_kept() {
        assert_eq!(
            sanitize(" `Vec<T>` and <https://a.invalid/x?a=1&b=2> or http://b.invalid/<y> <b>"),
            " `Vec<T>` and https://a.invalid/x?a=1&b=2 or http://b.invalid/&lt;y&gt; &lt;b&gt;"
        );
    }
}
