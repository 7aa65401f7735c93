//! Where a result came from: the code fingerprint, the git state, the toolchain.

use std::process::Command;

use sha2::{Digest, Sha256};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/fingerprints.rs"));
}

pub use generated::{TARGET, TOOLCHAIN};

/// SHA-256 over the given source files' hashes, Cargo.lock and the toolchain:
/// changes whenever the code that computes a result could have changed it.
pub fn code_fingerprint(files: &[&str]) -> String {
    let mut h = Sha256::new();
    for file in files {
        let hash = generated::SOURCE_HASHES
            .iter()
            .find(|(path, _)| path == file)
            .map(|(_, hash)| *hash)
            .unwrap_or_else(|| panic!("{file} is not a source file of this crate"));
        h.update(file.as_bytes());
        h.update(hash.as_bytes());
    }
    h.update(generated::LOCK_HASH.as_bytes());
    h.update(TOOLCHAIN.as_bytes());
    h.update(TARGET.as_bytes());
    hex::encode(h.finalize())
}

/// The checked-out commit and whether the work tree differs from it;
/// ("unknown", false) outside a git checkout.
pub fn git_state() -> (String, bool) {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "HEAD"]) {
        Some(commit) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            (commit, dirty)
        }
        None => ("unknown".into(), false),
    }
}

/// SHA-256 of a JSON value's canonical text (object keys sorted).
pub fn hash_json(value: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(serde_json::to_vec(value).expect("JSON values serialize")))
}
