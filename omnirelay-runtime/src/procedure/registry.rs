//! The procedure registry: exact names, then aliases, then wildcard patterns.
//!
//! Lookup order (DESIGN §2): an exact procedure name wins; then an alias; then the wildcard
//! patterns (`*` matches any run of characters, `?` exactly one), the pattern with the most literal
//! characters first and the earlier registration on ties. Names are case-sensitive. Any name or
//! alias registered twice, or a wildcard pattern registered twice, is a [`RegistryError`] naming
//! both procedures. Everything is indexed at registration, including each name's gRPC path, so a
//! lookup is one hash probe and builds no strings.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::{ProcedureSpec, grpc_path, procedure_from_grpc_path};
use crate::name::Name;

/// A name or pattern registered by two procedures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryError {
    /// The name, alias or pattern both procedures claim.
    pub name: String,
    /// The procedure registered first.
    pub existing: String,
    /// The procedure whose registration failed.
    pub conflicting: String,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.existing == self.conflicting {
            write!(
                f,
                "procedure {:?} is registered twice (name {:?})",
                self.existing, self.name
            )
        } else {
            write!(
                f,
                "procedures {:?} and {:?} both register the name {:?}",
                self.existing, self.conflicting, self.name
            )
        }
    }
}

impl std::error::Error for RegistryError {}

#[derive(Clone)]
struct Wildcard {
    pattern: String,
    literals: usize,
    index: usize,
}

/// The registry's name tables: foldhash instead of SipHash, because a lookup (every call) hashes
/// a name from the wire and SipHash was most of the lookup's cost. The tables are only read after
/// registration, so a caller choosing names cannot make them degrade (no inserts from the wire),
/// and the seed is still random per table.
type NameTable<V> = HashMap<Name, V, foldhash::fast::RandomState>;

/// A procedure found by name, and the name it was found by when that was an exact name or alias
/// (shared with the registry, so a call's metadata clones it instead of copying the text).
pub(crate) type Resolved<'a> = (&'a Arc<ProcedureSpec>, Option<&'a Name>);

/// An immutable-after-build index of procedures.
#[derive(Clone, Default)]
pub struct Registry {
    procedures: Vec<Arc<ProcedureSpec>>,
    names: NameTable<usize>,
    aliases: NameTable<usize>,
    /// Each gRPC path with the procedure and the name (or alias) it stands for.
    grpc_paths: NameTable<(usize, Name)>,
    wildcards: Vec<Wildcard>,
}

fn is_pattern(name: &str) -> bool {
    name.contains(['*', '?'])
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds a procedure; on a conflict nothing is added.
    pub fn register(&mut self, spec: ProcedureSpec) -> Result<(), RegistryError> {
        let index = self.procedures.len();
        let conflict = |name: &str, other: usize| RegistryError {
            name: name.to_owned(),
            existing: self.procedures[other].name().to_owned(),
            conflicting: spec.name().to_owned(),
        };
        let mut claimed: Vec<&str> = Vec::with_capacity(1 + spec.aliases().len());
        for name in std::iter::once(spec.name()).chain(spec.aliases().iter().map(String::as_str)) {
            if is_pattern(name) {
                if let Some(w) = self.wildcards.iter().find(|w| w.pattern == name) {
                    return Err(conflict(name, w.index));
                }
            } else if let Some(&other) = self.names.get(name).or(self.aliases.get(name)) {
                return Err(conflict(name, other));
            }
            if claimed.contains(&name) {
                return Err(RegistryError {
                    name: name.to_owned(),
                    existing: spec.name().to_owned(),
                    conflicting: spec.name().to_owned(),
                });
            }
            claimed.push(name);
        }
        for (position, name) in claimed.iter().enumerate() {
            if is_pattern(name) {
                self.wildcards.push(Wildcard {
                    pattern: (*name).to_owned(),
                    literals: name.chars().filter(|c| *c != '*' && *c != '?').count(),
                    index,
                });
                continue;
            }
            let map = if position == 0 {
                &mut self.names
            } else {
                &mut self.aliases
            };
            let name = Name::from(*name);
            let path = grpc_path(&name);
            // What a gRPC call by this path names as its procedure: the procedure the path maps
            // back to, or the canonical name when it maps back to none (`a/b`, `::x`).
            let called = match procedure_from_grpc_path(&path) {
                Some(back) if back == *name => name.clone(),
                Some(back) => Name::from(back),
                None => Name::from(spec.name()),
            };
            self.grpc_paths.insert(Name::from(path), (index, called));
            map.insert(name, index);
        }
        // Stable sort keeps registration order among patterns with equal literal counts.
        self.wildcards
            .sort_by_key(|w| std::cmp::Reverse(w.literals));
        self.procedures.push(Arc::new(spec));
        Ok(())
    }

    /// Finds the procedure serving `name`.
    pub fn lookup(&self, name: &str) -> Option<&Arc<ProcedureSpec>> {
        self.resolve(name).map(|(spec, _)| spec)
    }

    /// Finds the procedure serving `name`, with the registered name it matched exactly.
    pub(crate) fn resolve(&self, name: &str) -> Option<Resolved<'_>> {
        if let Some((key, &index)) = self
            .names
            .get_key_value(name)
            .or_else(|| self.aliases.get_key_value(name))
        {
            return Some((&self.procedures[index], Some(key)));
        }
        let index = self.match_wildcard(name)?;
        Some((&self.procedures[index], None))
    }

    /// Finds the procedure serving a gRPC path (`/pkg.Svc/Method`).
    pub fn lookup_grpc_path(&self, path: &str) -> Option<&Arc<ProcedureSpec>> {
        self.resolve_grpc_path(path).map(|(spec, _)| spec)
    }

    /// Finds the procedure serving a gRPC path, with the registered name the path stands for.
    pub(crate) fn resolve_grpc_path(&self, path: &str) -> Option<Resolved<'_>> {
        if let Some((index, name)) = self.grpc_paths.get(path) {
            return Some((&self.procedures[*index], Some(name)));
        }
        if self.wildcards.is_empty() {
            return None;
        }
        let name = procedure_from_grpc_path(path)?;
        self.match_wildcard(&name)
            .map(|i| (&self.procedures[i], None))
    }

    fn match_wildcard(&self, name: &str) -> Option<usize> {
        self.wildcards
            .iter()
            .find(|w| glob_match(&w.pattern, name))
            .map(|w| w.index)
    }

    /// Every procedure, in registration order.
    pub fn procedures(&self) -> impl ExactSizeIterator<Item = &Arc<ProcedureSpec>> {
        self.procedures.iter()
    }

    /// The number of procedures.
    pub fn len(&self) -> usize {
        self.procedures.len()
    }

    /// Whether no procedure is registered.
    pub fn is_empty(&self) -> bool {
        self.procedures.is_empty()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.procedures.iter().map(|p| p.name()))
            .finish()
    }
}

/// Matches `text` against a pattern where `*` is any run of characters and `?` one character
/// (one `char`, however many bytes it takes). Linear backtracking over the last `*`, so no
/// pattern can make it exponential; it walks both strings in place and allocates nothing.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    // Byte positions, always on `char` boundaries.
    let (mut pi, mut ti) = (0, 0);
    // After the last `*`: where the pattern resumes, and where in the text that `*` ends.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = char_len(t[ti]);
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some(b'?') => {
                pi += 1;
                ti += step;
                continue;
            }
            Some(&c) => {
                // Comparing the whole UTF-8 sequence compares the characters.
                let len = char_len(c);
                if p.get(pi..pi + len) == t.get(ti..ti + step) {
                    pi += len;
                    ti += step;
                    continue;
                }
            }
            None => {}
        }
        match star {
            Some((resume, start)) => {
                // Let the last `*` swallow one more character, and retry after it.
                let start = start + char_len(t[start]);
                star = Some((resume, start));
                pi = resume;
                ti = start;
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// The length of the UTF-8 sequence a leading byte starts.
fn char_len(first: u8) -> usize {
    match first {
        0..0x80 => 1,
        0xC0..0xE0 => 2,
        0xE0..0xF0 => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Encoding;
    use crate::meta::Response;
    use crate::procedure::Handler;
    use bytes::Bytes;

    fn spec(name: &str) -> ProcedureSpec {
        ProcedureSpec::new(
            name,
            &[Encoding::Raw],
            Handler::unary(|_req: crate::Request<Bytes>| async { Ok(Response::new(Bytes::new())) }),
        )
    }

    fn found(r: &Registry, name: &str) -> Option<String> {
        r.lookup(name).map(|s| s.name().to_owned())
    }

    #[test]
    fn exact_alias_and_wildcards_in_order() {
        let mut r = Registry::new();
        r.register(spec("svc::*")).unwrap();
        r.register(spec("svc::get*")).unwrap();
        r.register(spec("svc::get").with_alias("svc::fetch"))
            .unwrap();
        r.register(spec("svc::ge?x")).unwrap();
        assert_eq!(found(&r, "svc::get").as_deref(), Some("svc::get"));
        assert_eq!(found(&r, "svc::fetch").as_deref(), Some("svc::get"));
        // `svc::ge?x` has 8 literals, `svc::get*` 8 too: the earlier registration wins.
        assert_eq!(found(&r, "svc::getx").as_deref(), Some("svc::get*"));
        assert_eq!(found(&r, "svc::getter").as_deref(), Some("svc::get*"));
        assert_eq!(found(&r, "svc::put").as_deref(), Some("svc::*"));
        assert_eq!(found(&r, "other::put"), None);
    }

    #[test]
    fn more_literals_win_over_registration_order() {
        let mut r = Registry::new();
        r.register(spec("a*")).unwrap();
        r.register(spec("abc*")).unwrap();
        assert_eq!(found(&r, "abcd").as_deref(), Some("abc*"));
        assert_eq!(found(&r, "abd").as_deref(), Some("a*"));
    }

    #[test]
    fn names_are_case_sensitive() {
        let mut r = Registry::new();
        r.register(spec("Svc::Get")).unwrap();
        assert!(r.lookup("svc::get").is_none());
        r.register(spec("svc::get")).unwrap();
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn conflicts_name_both_procedures() {
        let mut r = Registry::new();
        r.register(spec("svc::a").with_alias("svc::x")).unwrap();
        let err = r.register(spec("svc::x")).unwrap_err();
        assert_eq!(err.existing, "svc::a");
        assert_eq!(err.conflicting, "svc::x");
        assert!(err.to_string().contains("svc::a") && err.to_string().contains("svc::x"));
        let err = r.register(spec("svc::b").with_alias("svc::a")).unwrap_err();
        assert_eq!(err.existing, "svc::a");
        r.register(spec("w::*")).unwrap();
        assert!(r.register(spec("w::*")).is_err());
        assert!(r.register(spec("dup").with_alias("dup")).is_err());
        // Failed registrations left nothing behind.
        assert_eq!(r.len(), 2);
        assert!(r.lookup("svc::b").is_none());
    }

    #[test]
    fn grpc_path_lookup() {
        let mut r = Registry::new();
        r.register(spec("pkg.Svc::Method").with_alias("pkg.Svc::Old"))
            .unwrap();
        r.register(spec("plain")).unwrap();
        r.register(spec("wild.Svc::*")).unwrap();
        let name = |p: &str| r.lookup_grpc_path(p).map(|s| s.name().to_owned());
        assert_eq!(name("/pkg.Svc/Method").as_deref(), Some("pkg.Svc::Method"));
        assert_eq!(name("/pkg.Svc/Old").as_deref(), Some("pkg.Svc::Method"));
        assert_eq!(name("/__default__/plain").as_deref(), Some("plain"));
        assert_eq!(name("/wild.Svc/Anything").as_deref(), Some("wild.Svc::*"));
        assert_eq!(name("/pkg.Svc/Nope"), None);
        assert_eq!(name("garbage"), None);
    }

    #[test]
    fn glob() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("ü*", "über"));
    }

    /// The earlier matcher (two `Vec<char>`), kept as the reference the new one must agree with.
    fn reference_glob(pattern: &str, text: &str) -> bool {
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
                pi += 1;
                ti += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some((pi, ti));
                pi += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|c| *c == '*')
    }

    #[test]
    fn glob_counts_characters_not_bytes() {
        assert!(glob_match("?ber", "über"));
        assert!(glob_match("a?c", "a€c"));
        assert!(glob_match("a?c", "a😀c"));
        assert!(!glob_match("a??c", "a€c"));
        assert!(!glob_match("a?c", "a€€c"));
        assert!(glob_match("*€", "x€"));
        assert!(glob_match("*😀*", "ab😀cd"));
        assert!(!glob_match("é", "e"));
        assert!(!glob_match("e", "é"));
        assert!(glob_match("svc::*::get", "svc::ünïcode::get"));
        assert!(!glob_match("", "a"));
        assert!(glob_match("", ""));
        assert!(glob_match("**", ""));
        assert!(!glob_match("?", ""));
        assert!(glob_match("*?", "ü"));
        assert!(!glob_match("*?", ""));
        assert!(glob_match("a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaab"));
        assert!(!glob_match("a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaa"));
    }

    #[test]
    fn glob_agrees_with_the_reference_matcher() {
        let alphabet = ["a", "b", "ü", "€", "😀", "*", "?"];
        let texts = [
            "",
            "a",
            "ab",
            "ba",
            "aü",
            "ü€",
            "a€b😀",
            "😀😀",
            "abab",
            "üaüb",
            "€a€",
        ];
        // Every pattern of up to three symbols over the alphabet.
        let mut patterns = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = patterns
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            patterns.extend(longer);
        }
        patterns.sort();
        patterns.dedup();
        for pattern in &patterns {
            for text in texts {
                assert_eq!(
                    glob_match(pattern, text),
                    reference_glob(pattern, text),
                    "{pattern:?} against {text:?}"
                );
            }
        }
    }
}
