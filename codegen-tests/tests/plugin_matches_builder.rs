//! The protoc plugin and `omnirelay-build` write byte-identical files for the same case and
//! options, and a case the generator does not support fails both ways with one clear error.

use std::path::Path;

const OUT_DIR: &str = env!("OUT_DIR");

fn files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            (name, std::fs::read_to_string(entry.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_case_is_byte_identical_through_both_paths() {
    let out = Path::new(OUT_DIR);
    let mut compared = 0;
    for entry in std::fs::read_dir(out).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !path.is_dir() || name.ends_with(".plugin") || name == "b14" {
            continue;
        }
        let builder = files(&path);
        let plugin = files(&out.join(format!("{name}.plugin")));
        assert!(!builder.is_empty(), "{name}: the builder wrote nothing");
        assert_eq!(
            builder.iter().map(|f| &f.0).collect::<Vec<_>>(),
            plugin.iter().map(|f| &f.0).collect::<Vec<_>>(),
            "{name}: different file sets"
        );
        for ((file, a), (_, b)) in builder.iter().zip(&plugin) {
            assert!(
                a == b,
                "{name}/{file}: the plugin's output differs from the builder's"
            );
        }
        compared += 1;
    }
    assert!(compared >= 20, "only {compared} cases compared");
}

#[test]
fn editions_fail_with_one_clear_error_naming_the_file() {
    for path in ["b14.error", "b14.plugin.error"] {
        let error = std::fs::read_to_string(Path::new(OUT_DIR).join(path)).unwrap();
        assert!(error.contains("B14_edition_2023.proto"), "{path}: {error}");
        assert!(error.contains("edition 2023"), "{path}: {error}");
        assert!(!error.contains("panicked"), "{path}: {error}");
    }
}

#[test]
fn only_supported_cases_failed() {
    for entry in std::fs::read_dir(OUT_DIR).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".error") {
            assert!(
                name.starts_with("b14"),
                "{name} failed: {}",
                std::fs::read_to_string(Path::new(OUT_DIR).join(&name)).unwrap()
            );
        }
    }
}
