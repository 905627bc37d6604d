//! The output of every case in `cases/`, as `omnirelay-build` generated it, compiled under
//! `#![deny(warnings)]`. Each case is mounted through its generated include file.

#![deny(warnings)]
#![allow(missing_docs)]

/// Stands in for another crate in case B11's `extern_path(".sample.clock.v1.Tag", "::other_crate::Tag")`.
extern crate self as other_crate;

/// The type `::other_crate::Tag` names in case B11 (a hand-written twin of `sample.clock.v1.Tag`).
#[derive(Clone, PartialEq, Eq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
pub struct Tag {
    #[prost(string, tag = "1")]
    pub name: String,
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        $(
            pub mod $name {
                include!(concat!(env!("OUT_DIR"), "/", stringify!($name), "/mod.rs"));
            }
        )*
    };
}

cases!(
    b01,
    b02,
    b04,
    b06,
    b07,
    b08,
    b10,
    b11_default,
    b11_local_wkt,
    b11_pbjson_types,
    b11_empty_unit,
    b11_extern_tag,
    b13,
    b15,
    b16,
    b17_hash_vec,
    b17_btree_vec,
    b17_hash_bytes,
    b17_btree_bytes,
    b20,
    c01,
    c02,
);
