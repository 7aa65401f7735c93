//! Fingerprints the code that computes results, so that the cache key
//! changes whenever that code, the locked dependencies or the toolchain do.

use std::fmt::Write;
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    collect(&root.join("src"), &mut files);
    files.sort();
    let mut out = String::from("/// SHA-256 of each source file, by path relative to the crate root.\n");
    out.push_str("pub const SOURCE_HASHES: &[(&str, &str)] = &[\n");
    for f in &files {
        let rel = f.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
        let hash = hex::encode(Sha256::digest(std::fs::read(f).unwrap()));
        writeln!(out, "    ({rel:?}, {hash:?}),").unwrap();
    }
    out.push_str("];\n");
    let lock = std::fs::read(root.join("Cargo.lock")).unwrap_or_default();
    writeln!(out, "pub const LOCK_HASH: &str = {:?};", hex::encode(Sha256::digest(lock))).unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    writeln!(out, "pub const TOOLCHAIN: &str = {version:?};").unwrap();
    writeln!(out, "pub const TARGET: &str = {:?};", std::env::var("TARGET").unwrap_or_default()).unwrap();
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("fingerprints.rs");
    std::fs::write(dest, out).unwrap();
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.lock");
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
