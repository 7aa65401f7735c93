//! Hashes everything the code that computes results is made of: every file
//! under src/ and data/, the build files, the toolchain, the target, the
//! rustflags and the profile. src/provenance.rs decides which of them each
//! cache key covers; a file is hashed here without anyone listing it.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// Build files outside src/ and data/ that change what the code computes.
const BUILD_FILES: &[&str] = &["build.rs", "Cargo.toml", "Cargo.lock", ".cargo/config.toml"];

fn main() {
    // The tree being built, read at run time: env!() would freeze the path of
    // the clone that compiled this script, and a target directory shared by
    // two clones runs one compiled script for both.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = BUILD_FILES.iter().map(|f| f.to_string()).collect();
    let mut dirs = Vec::new();
    for dir in ["src", "data"] {
        collect(&root, &root.join(dir), &mut files, &mut dirs);
    }
    files.sort();

    let mut out = String::from("/// SHA-256 of each hashed file, by path relative to the crate root, sorted.\n");
    out.push_str("pub const HASHED_FILES: &[(&str, &str)] = &[\n");
    for rel in &files {
        let hash = match std::fs::read(root.join(rel)) {
            Ok(bytes) => hex::encode(Sha256::digest(bytes)),
            // A build file that is not there (a vendored copy without
            // .cargo/) is recorded as such rather than failing the build.
            Err(_) => "missing".to_string(),
        };
        writeln!(out, "    ({rel:?}, {hash:?}),").unwrap();
    }
    out.push_str("];\n");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    writeln!(out, "pub const TOOLCHAIN: &str = {version:?};").unwrap();
    // Cargo reruns this script when any of these change.
    for (name, var) in [
        ("TARGET", "TARGET"),
        ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS"),
        ("PROFILE", "PROFILE"),
        ("OPT_LEVEL", "OPT_LEVEL"),
    ] {
        writeln!(out, "pub const {name}: &str = {:?};", std::env::var(var).unwrap_or_default()).unwrap();
    }
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("fingerprints.rs");
    std::fs::write(dest, out).unwrap();

    // Relative paths: cargo resolves them in the package it is building, not
    // in the one this script last ran for. Directories too, so that a file
    // added to them is seen.
    for path in files.iter().chain(&dirs) {
        if root.join(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    // Cargo decides by modification times, so after building another clone
    // that shares the target directory, this clone's (older) files look
    // unchanged and the other clone's build would be reused. .cargo/config.toml
    // sets this variable to the checkout's own path: switching clones changes
    // it, which reruns this script and rebuilds the crate.
    println!("cargo:rerun-if-env-changed=PAPER_FIGURES_SOURCE_ROOT");
}

/// Every file under `dir`, recursively, as paths relative to `root`; the
/// directories walked go into `dirs`.
fn collect(root: &Path, dir: &Path, files: &mut Vec<String>, dirs: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    dirs.push(relative(root, dir));
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        // Editors' swap, lock and backup files (.x.rs.swp, .#x.rs, x.rs~)
        // come and go while editing: hashing them would change every key.
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files, dirs);
        } else {
            files.push(relative(root, &path));
        }
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/")
}
