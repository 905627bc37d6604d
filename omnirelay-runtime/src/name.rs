//! [`Name`]: the caller, service and procedure names a call carries, shared instead of copied.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use std::sync::{Arc, Mutex, PoisonError};

/// An immutable UTF-8 name (a caller, service or procedure name) that clones without copying.
///
/// A call's [`RequestMeta`](crate::RequestMeta) carries three of them. Inbounds fill them from
/// names they already hold — the dispatcher's service name, the procedure as registered — so a
/// call copies at most the caller's name off the wire; a clone shares the same string (a
/// reference count, or nothing for a `&'static str`). It reads as a `str` (`Deref`, `AsRef`,
/// `Display`) and compares with `str`, `&str` and `String`.
///
/// ```
/// use omnirelay::Name;
///
/// let name = Name::from_static("keyvalue::Get");
/// assert_eq!(name, "keyvalue::Get");
/// assert!(name.ends_with("::Get"));
/// let owned: Name = format!("{}::Set", "keyvalue").into();
/// assert_eq!(owned.as_str(), "keyvalue::Set");
/// ```
#[derive(Clone)]
pub struct Name(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Name {
    /// A name from a string literal (no allocation, ever).
    pub const fn from_static(name: &'static str) -> Self {
        Name(Repr::Static(name))
    }

    /// The name as a `str`.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
        }
    }
}

impl Default for Name {
    fn default() -> Self {
        Name::from_static("")
    }
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<String> for Name {
    fn from(name: String) -> Self {
        Name(Repr::Shared(Arc::from(name)))
    }
}

impl From<&str> for Name {
    /// Copies the string (use [`Name::from_static`] for literals).
    fn from(name: &str) -> Self {
        Name(Repr::Shared(Arc::from(name)))
    }
}

impl From<Arc<str>> for Name {
    /// Shares the string (no copy).
    fn from(name: Arc<str>) -> Self {
        Name(Repr::Shared(name))
    }
}

impl From<&String> for Name {
    fn from(name: &String) -> Self {
        Name::from(name.as_str())
    }
}

impl From<&Name> for Name {
    fn from(name: &Name) -> Self {
        name.clone()
    }
}

impl From<Box<str>> for Name {
    fn from(name: Box<str>) -> Self {
        Name(Repr::Shared(Arc::from(name)))
    }
}

impl From<Name> for String {
    fn from(name: Name) -> Self {
        name.as_str().to_owned()
    }
}

impl From<Name> for bytes::Bytes {
    /// A static name is referenced; a shared one is copied.
    fn from(name: Name) -> Self {
        match name.0 {
            Repr::Static(s) => bytes::Bytes::from_static(s.as_bytes()),
            Repr::Shared(s) => bytes::Bytes::copy_from_slice(s.as_bytes()),
        }
    }
}

impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Name::from)
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Name {
    /// Hashes as the `str` does, so a `Name` key is found by a `&str` (`Borrow<str>`).
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

macro_rules! eq_with {
    ($($other:ty),*) => {$(
        impl PartialEq<$other> for Name {
            fn eq(&self, other: &$other) -> bool {
                self.as_str() == AsRef::<str>::as_ref(other)
            }
        }

        impl PartialEq<Name> for $other {
            fn eq(&self, other: &Name) -> bool {
                AsRef::<str>::as_ref(self) == other.as_str()
            }
        }
    )*};
}

eq_with!(str, &str, String);

/// The last name a source (one connection) sent, so that calls repeating it share one copy
/// instead of allocating one each: most connections carry a single caller. Bounded by
/// construction (one name), so a client sending many names costs what it did without it.
#[derive(Debug, Default)]
pub(crate) struct LastName(Mutex<Option<Name>>);

impl LastName {
    /// The kept name, when `bytes` spell it: a value known to be text without checking it.
    pub(crate) fn matching(&self, bytes: &[u8]) -> Option<Name> {
        let last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        last.as_ref()
            .filter(|name| name.as_str().as_bytes() == bytes)
            .cloned()
    }

    /// `text` as a [`Name`]: the kept one when it matches, else a new copy, which is kept.
    pub(crate) fn get(&self, text: &str) -> Name {
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match &*last {
            Some(name) if name.as_str() == text => name.clone(),
            _ => {
                let name = Name::from(text);
                *last = Some(name.clone());
                name
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_last_name_is_shared_until_another_comes() {
        let last = LastName::default();
        let first = last.get("caller-a");
        let again = last.get("caller-a");
        assert_eq!(again, "caller-a");
        assert_eq!(first.as_str().as_ptr(), again.as_str().as_ptr(), "one copy");
        let other = last.get("caller-b");
        assert_eq!(other, "caller-b");
        assert_eq!(last.matching(b"caller-b").as_deref(), Some("caller-b"));
        assert_eq!(last.matching(b"caller-a"), None);
        let back = last.get("caller-a");
        assert_eq!(back, "caller-a");
        assert_ne!(
            back.as_str().as_ptr(),
            first.as_str().as_ptr(),
            "a new copy, kept"
        );
        assert_eq!(
            last.get("caller-a").as_str().as_ptr(),
            back.as_str().as_ptr()
        );
    }

    use std::collections::HashMap;

    use super::*;

    #[test]
    fn reads_and_compares_as_a_str() {
        let name = Name::from("svc::Get");
        assert_eq!(name, "svc::Get");
        assert_eq!("svc::Get", name);
        assert_eq!(name, String::from("svc::Get"));
        assert_eq!(*"svc::Get", name);
        assert_ne!(name, "svc::Set");
        assert_eq!(name.len(), 8);
        assert_eq!(format!("{name} {name:?}"), "svc::Get \"svc::Get\"");
        assert_eq!(String::from(name.clone()), "svc::Get");
        let (a, b) = (Name::from("a"), Name::from("b"));
        assert!(a < b);
        assert_eq!(Name::default(), "");
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"svc::Get\"");
        let back: Name = serde_json::from_str("\"svc::Get\"").unwrap();
        assert_eq!(back, name);
    }

    #[test]
    fn clones_share_the_string() {
        let name = Name::from("caller-service");
        assert_eq!(name.clone().as_ptr(), name.as_ptr(), "a clone shares it");
        let shared: Arc<str> = Arc::from("svc");
        assert_eq!(Name::from(shared.clone()).as_ptr(), shared.as_ptr());
        let literal = Name::from_static("static");
        assert_eq!(literal.as_ptr(), "static".as_ptr());
        assert_eq!(literal.clone().as_ptr(), "static".as_ptr());
    }

    #[test]
    fn finds_keys_by_str() {
        let mut map = HashMap::new();
        map.insert(Name::from("one"), 1);
        assert_eq!(map.get("one"), Some(&1));
        assert_eq!(map.get("two"), None);
    }
}
