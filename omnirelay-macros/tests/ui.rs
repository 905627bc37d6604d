//! Compile-time checks of `#[procedure]`, `#[service]` and `procedures![...]` (trybuild): each
//! file in `ui/fail` is one mistake whose error, checked in as the `.stderr` beside it, must point
//! at the offending tokens and say how to fix it; each file in `ui/pass` must build and run.
//!
//! After a deliberate change to a message, regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p omnirelay-macros --test ui` and review the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
