//! Snapshot tests: the generated code for three representative cases is checked in under
//! `snapshots/`, so any change to the generator's output shows up as a reviewable diff.
//!
//! After an intended change: `OMNIRELAY_UPDATE_SNAPSHOTS=1 cargo test -p omnirelay-codegen-tests
//! --test snapshots`, then review and commit `codegen-tests/snapshots/`.

use std::path::Path;

/// All four call shapes; keywords in every position; names that shadow std and the glue.
const SNAPSHOTS: &[(&str, &str)] = &[
    ("b20", "sample.stream.v1.rs"),
    ("b01", "sample.rawunsafe.v1.rs"),
    ("b04", "sample.shadow.v1.rs"),
];

#[test]
fn generated_code_matches_the_snapshots() {
    let update = std::env::var_os("OMNIRELAY_UPDATE_SNAPSHOTS").is_some();
    let snapshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots");
    let mut drifted = Vec::new();
    for (case, file) in SNAPSHOTS {
        let generated = std::fs::read_to_string(Path::new(env!("OUT_DIR")).join(case).join(file))
            .unwrap_or_else(|e| panic!("{case}/{file}: {e}"));
        let snapshot = snapshots.join(case).join(file);
        if update {
            std::fs::create_dir_all(snapshot.parent().unwrap()).unwrap();
            std::fs::write(&snapshot, &generated).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&snapshot).unwrap_or_default();
        if expected != generated {
            let line = expected
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .map_or_else(|| "length".to_owned(), |i| format!("line {}", i + 1));
            drifted.push(format!("{case}/{file} (first difference: {line})"));
        }
    }
    assert!(
        drifted.is_empty(),
        "generated code drifted from the snapshots: {drifted:?}; if intended, rerun with \
         OMNIRELAY_UPDATE_SNAPSHOTS=1 and commit codegen-tests/snapshots/"
    );
}
