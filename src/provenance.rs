//! Where a result came from: the code fingerprints, the git state, the toolchain.
//!
//! build.rs hashes every file under src/ and data/ and the build files. A
//! job's key covers all of them (fail safe: a new file is in every job's key
//! until someone decides otherwise) except the files in `AFTER_TRAINING` and
//! the other kinds' files (src/kinds/<kind>.rs). A figure's key covers
//! every hashed file.

use std::process::Command;

use sha2::{Digest, Sha256};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/fingerprints.rs"));
}

pub use generated::{TARGET, TOOLCHAIN};

/// Files that run only once every job is trained (or never while one is
/// prepared or trained): left out of the job keys, so that editing them
/// reruns no training. Still in every figure's key. Each needs its reason.
pub const AFTER_TRAINING: &[&str] = &[
    // Draws the SVG from the assembled figure data.
    "src/render.rs",
    // Draws the publication PDF and PNG from the written figure data, with the shipped font.
    "src/publication.rs",
    "data/fonts/DejaVuSans.ttf",
    "data/fonts/LICENSE",
    // Evaluates the claims on the assembled figure data.
    "src/claims.rs",
    // Curve-shape fits, run by the claims and by `assemble`, never while a job is prepared or trained.
    "src/shapes.rs",
    // The --check diff of figure data against the committed JSON, and stray figure files.
    "src/check.rs",
    // Writes figures/README.md from the written figures.
    "src/gallery.rs",
    // Checks what a reader sees of an assembled figure (and the gallery); changes no data.
    "src/lint.rs",
    // Fills a caption's placeholders from the config and the assembled scalars.
    "src/caption.rs",
    // The figure data schema and its rounding; used by `assemble`, never by training.
    "src/figure.rs",
    // Closed forms drawn beside the measurement, called from `assemble`. While preparing a job,
    // sigmoid.rs only builds `theory::Mode` values (plain data, no theory code runs) and drops them.
    "src/theory.rs",
    // Command line, cite, list, summary table. Before training it only pins Candle's threads
    // (that code is engine/mod.rs, in the keys) and picks how many jobs run side by side, not what they compute.
    "src/main.rs",
    // The benchmark binary: times the engines, never computes a cached result.
    "src/bin/bench/main.rs",
    "src/bin/bench/scaling.rs",
    // Notes of each job's last run beside the cache, written after a job is trained and read
    // only to explain why a job runs and to estimate costs.
    "src/records.rs",
    // Moves verified cache entries to and from a remote server; computes nothing.
    "src/remote.rs",
    // `status` and `plan`: read the cache, the records and the committed figures; train nothing.
    "src/status.rs",
    // Assigns shards to the tasks of a Slurm array, submits and waits; the tasks train
    // through the pipeline's own `train_shards`, so where a shard ran never changes its bits.
    "src/slurm.rs",
    // Checks a loaded spec against the data files and the machine's memory; refuses or lets
    // through, never changes a config.
    "src/preflight.rs",
    // Nearest names for error messages; a spec it helped read past is rejected all the same.
    "src/suggest.rs",
];

/// Every hashed file: (path relative to the crate root, SHA-256), sorted by
/// path, as build.rs found them in the tree that was built.
pub fn source_files() -> &'static [(&'static str, &'static str)] {
    generated::HASHED_FILES
}

/// Whether `path` is one kind's own file, src/kinds/<kind>.rs (not
/// mod.rs, which holds the trait, the registry and `Job`, shared by every kind).
pub fn is_kind_file(path: &str) -> bool {
    path.strip_prefix("src/kinds/").is_some_and(|name| name != "mod.rs" && !name.contains('/') && name.ends_with(".rs"))
}

/// The files of `table` a job's key covers: all but those in
/// `AFTER_TRAINING` and all but the kind files not in `kind_files` (the
/// job's kind's own file and those of any kind it trains through).
pub fn job_files<'a>(table: &[(&'a str, &'a str)], kind_files: &[&str]) -> Vec<&'a str> {
    for file in kind_files {
        assert!(is_kind_file(file), "{file} is not a kind file (src/kinds/<kind>.rs)");
        assert!(table.iter().any(|(path, _)| path == file), "{file} is not a source file of this crate");
    }
    table
        .iter()
        .map(|&(path, _)| path)
        .filter(|path| !AFTER_TRAINING.contains(path))
        .filter(|path| !is_kind_file(path) || kind_files.contains(path))
        .collect()
}

/// The files of `table` a figure's key covers: all of them.
pub fn figure_files<'a>(table: &[(&'a str, &'a str)]) -> Vec<&'a str> {
    table.iter().map(|&(path, _)| path).collect()
}

/// SHA-256 over the given files' paths and hashes (looked up in `table`),
/// the toolchain, the target, the rustflags and the profile. Taking the table
/// as a parameter lets a test change one file's hash and see which keys move.
pub fn fingerprint_of(table: &[(&str, &str)], files: &[&str]) -> String {
    let mut h = Sha256::new();
    for file in files {
        let hash = table
            .iter()
            .find(|(path, _)| path == file)
            .map(|(_, hash)| *hash)
            .unwrap_or_else(|| panic!("{file} is not a source file of this crate"));
        h.update(format!("{file}\0{hash}\n").as_bytes());
    }
    for value in [TOOLCHAIN, TARGET, generated::RUSTFLAGS, generated::PROFILE, generated::OPT_LEVEL] {
        h.update(format!("{value}\n").as_bytes());
    }
    hex::encode(h.finalize())
}

/// The code fingerprint in a job's cache key: changes whenever code that
/// prepares or trains the job could have changed its result.
pub fn job_fingerprint(kind_files: &[&str]) -> String {
    let table = source_files();
    fingerprint_of(table, &job_files(table, kind_files))
}

/// The code fingerprint of a figure (its key, its provenance, `cite`):
/// covers every hashed file.
pub fn figure_fingerprint() -> String {
    let table = source_files();
    fingerprint_of(table, &figure_files(table))
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
