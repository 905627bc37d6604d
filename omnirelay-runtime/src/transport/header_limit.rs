//! Header maps whose size comes from a handler or a caller. `http`'s `HeaderMap` holds at most
//! [`MAX_HEADERS`] entries and panics past that (in `with_capacity`, `append`, `insert`); these
//! helpers return an OmniRelay error instead, so too many application headers fail the one call
//! (`invalid-argument`, which an inbound reports as its handler's `internal` error) rather than
//! the connection.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{Error, Result};

/// The most distinct header names an `http::HeaderMap` holds: three quarters of its 32,768
/// index slots.
pub(crate) const MAX_HEADERS: usize = 24_576;

/// An empty map with room for `capacity` headers, or an error when no map can hold that many.
pub(crate) fn header_map(capacity: usize) -> Result<HeaderMap> {
    HeaderMap::try_with_capacity(capacity).map_err(|_| too_many(capacity))
}

/// Makes room in `map` for at least `capacity` headers in all, or fails when no map can hold
/// that many. A map that has room already is left as it is.
pub(crate) fn reserve(map: &mut HeaderMap, capacity: usize) -> Result<()> {
    let additional = capacity.saturating_sub(map.len());
    map.try_reserve(additional).map_err(|_| too_many(capacity))
}

/// Appends a header, or fails when the map is full.
pub(crate) fn append(map: &mut HeaderMap, name: HeaderName, value: HeaderValue) -> Result<()> {
    map.try_append(name, value)
        .map(drop)
        .map_err(|_| too_many(map.len() + 1))
}

fn too_many(count: usize) -> Error {
    Error::invalid_argument(format!(
        "too many headers: {count}; an HTTP header block holds at most {MAX_HEADERS}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_takes_the_most_it_can_hold_and_refuses_more() {
        let mut map = header_map(MAX_HEADERS).unwrap();
        let err = header_map(MAX_HEADERS + 1).unwrap_err();
        assert_eq!(err.code(), crate::Code::InvalidArgument);
        assert!(
            err.message().starts_with("too many headers: 24577"),
            "{}",
            err.message()
        );
        // Distinct names: more values of one name are not limited this way.
        let name = |i: usize| HeaderName::try_from(format!("x-{i}")).unwrap();
        for i in 0..MAX_HEADERS {
            append(&mut map, name(i), HeaderValue::from_static("v")).unwrap();
        }
        let err = append(&mut map, name(MAX_HEADERS), HeaderValue::from_static("v")).unwrap_err();
        assert!(
            err.message().starts_with("too many headers: 24577"),
            "{}",
            err.message()
        );
        assert_eq!(map.len(), MAX_HEADERS);
    }

    #[test]
    fn reserve_grows_a_map_to_the_most_it_can_hold_and_refuses_more() {
        let mut map = HeaderMap::new();
        reserve(&mut map, 10).unwrap();
        let room = map.capacity();
        assert!(room >= 10, "{room}");
        reserve(&mut map, 5).unwrap();
        assert_eq!(map.capacity(), room, "a map with room is left as it is");
        reserve(&mut map, MAX_HEADERS).unwrap();
        let err = reserve(&mut map, MAX_HEADERS + 1).unwrap_err();
        assert_eq!(err.code(), crate::Code::InvalidArgument);
        assert!(
            err.message().starts_with("too many headers: 24577"),
            "{}",
            err.message()
        );
    }
}
