//! Architecture invariants of the core, checked as ordinary tests: it depends on no runtime
//! or I/O crate, and its source uses no I/O, clock or global-randomness API.

use std::path::{Path, PathBuf};

const ALLOWED_DEPENDENCIES: &[&str] = &["k8s-openapi", "serde", "serde_json", "thiserror", "ipnet"];
const FORBIDDEN_IN_SOURCE: &[&str] = &[
    "std::fs",
    "std::io",
    "std::net::Tcp",
    "std::net::Udp",
    "std::process",
    "std::thread",
    "std::env",
    "SystemTime",
    "Instant::now",
    "thread_rng",
    "rand::",
    "tokio",
    "println!",
    "eprintln!",
];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_depends_only_on_pure_crates() {
    let manifest = std::fs::read_to_string(crate_dir().join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] table")
        .split("\n[")
        .next()
        .unwrap();
    for line in deps
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let name = line.split(['=', '.', ' ']).next().unwrap();
        assert!(
            ALLOWED_DEPENDENCIES.contains(&name),
            "svcnet-core may not depend on {name:?}: the core does no I/O"
        );
    }
}

#[test]
fn core_source_does_no_io_and_reads_no_clock() {
    let mut files = Vec::new();
    rust_files(&crate_dir().join("src"), &mut files);
    assert!(
        files.len() > 10,
        "expected the core's source files, found {}",
        files.len()
    );
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // unit tests inside a module may print; the code above them may not
        let code = text.split("#[cfg(test)]").next().unwrap();
        for needle in FORBIDDEN_IN_SOURCE {
            assert!(
                !code.contains(needle),
                "{} uses {needle}: the core must stay pure",
                file.display()
            );
        }
    }
}
