//! The code fingerprints fail safe: every file under src/ is covered by the
//! job keys, the figure keys or both; everything training runs is in every
//! job's key; a kind's key follows the kind files it uses and no others.

use std::collections::BTreeSet;
use std::path::Path;

use learning_dynamics::kinds::files as kind_files;
use learning_dynamics::provenance::{
    figure_files, fingerprint_of, is_kind_file, job_files, source_files, AFTER_TRAINING,
};
use sha2::{Digest, Sha256};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` (relative to the crate root), skipping what
/// build.rs skips: editors' hidden swap and lock files and `~` backups.
fn walk(dir: &str) -> Vec<String> {
    fn visit(path: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(path).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            if name.starts_with('.') || name.ends_with('~') {
                continue;
            }
            if path.is_dir() {
                visit(&path, out);
            } else {
                out.push(path.strip_prefix(root()).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    visit(&root().join(dir), &mut out);
    out.sort();
    out
}

/// The kinds, one per file src/kinds/<kind>.rs (mod.rs aside).
fn kinds() -> Vec<String> {
    walk("src/kinds")
        .iter()
        .filter(|f| is_kind_file(f))
        .map(|f| f.trim_start_matches("src/kinds/").trim_end_matches(".rs").to_string())
        .collect()
}

#[test]
fn every_file_under_src_is_covered_by_a_job_key_or_the_figure_key() {
    let table = source_files();
    let figure: BTreeSet<&str> = figure_files(table).into_iter().collect();
    let jobs: BTreeSet<&str> = kinds().iter().flat_map(|k| job_files(table, kind_files(k))).collect();
    for file in walk("src") {
        assert!(
            figure.contains(file.as_str()) || jobs.contains(file.as_str()),
            "{file} is covered by no key: build.rs did not hash it"
        );
    }
    // And the figure key covers every hashed file, job files included.
    assert_eq!(figure.len(), table.len());
    assert!(jobs.is_subset(&figure));
}

#[test]
fn the_hashes_are_of_this_tree() {
    // Each hashed file exists here and has the hash build.rs recorded: the
    // build script read this checkout, not another clone sharing the target dir.
    for (path, hash) in source_files() {
        let bytes = std::fs::read(root().join(path)).unwrap_or_else(|e| panic!("{path} is hashed but unreadable: {e}"));
        assert_eq!(&hex::encode(Sha256::digest(bytes)), hash, "{path} changed since the build");
    }
    let hashed: BTreeSet<&str> = source_files().iter().map(|&(p, _)| p).collect();
    for file in walk("src").iter().chain(&walk("data")) {
        assert!(hashed.contains(file.as_str()), "{file} is not hashed");
    }
    for file in ["build.rs", "Cargo.toml", "Cargo.lock", ".cargo/config.toml"] {
        assert!(hashed.contains(file), "{file} is not hashed");
    }
    for file in AFTER_TRAINING {
        assert!(hashed.contains(file), "AFTER_TRAINING names {file}, which does not exist");
    }
}

#[test]
fn what_training_runs_is_in_every_job_key() {
    let table = source_files();
    // Named here too, so that moving one of them to AFTER_TRAINING fails.
    let training = [
        "src/engine/mod.rs",
        "src/engine/types.rs",
        "src/engine/batched.rs",
        "src/engine/fused.rs",
        "src/rng.rs",
        "src/values.rs",
        "src/stats.rs",
        "src/datasets.rs",
        "src/spec.rs",
        "src/kinds/mod.rs",
        "build.rs",
        "Cargo.toml",
        "Cargo.lock",
        ".cargo/config.toml",
        "data/digits.csv.gz",
    ];
    for kind in kinds() {
        let files = job_files(table, kind_files(&kind));
        for file in training {
            assert!(files.contains(&file), "{file} is not in the job key of {kind}");
        }
        // Everything else not in AFTER_TRAINING, and the kind's own file.
        for &(path, _) in table {
            if !AFTER_TRAINING.contains(&path) && !is_kind_file(path) {
                assert!(files.contains(&path), "{path} is not in the job key of {kind}");
            }
        }
        let own = format!("src/kinds/{kind}.rs");
        assert!(files.contains(&own.as_str()), "{own} is not in the job key of {kind}");
        assert_eq!(kind_files(&kind)[0], own, "a kind lists its own file first");
    }
}

/// Which kinds' job keys change when `file`'s hash changes (and the figure
/// key must change every time).
fn kinds_moved_by(file: &str) -> BTreeSet<String> {
    let table = source_files();
    let changed: Vec<(&str, &str)> =
        table.iter().map(|&(p, h)| if p == file { (p, "a different hash") } else { (p, h) }).collect();
    assert_ne!(
        fingerprint_of(table, &figure_files(table)),
        fingerprint_of(&changed, &figure_files(&changed)),
        "editing {file} does not change the figure key"
    );
    kinds()
        .into_iter()
        .filter(|kind| {
            let before = fingerprint_of(table, &job_files(table, kind_files(kind)));
            let after = fingerprint_of(&changed, &job_files(&changed, kind_files(kind)));
            before != after
        })
        .collect()
}

#[test]
fn editing_a_file_changes_the_keys_of_exactly_the_jobs_that_use_it() {
    let all: BTreeSet<String> = kinds().into_iter().collect();
    for file in [
        "src/rng.rs",
        "src/engine/mod.rs",
        "src/engine/fused.rs",
        "src/engine/batched.rs",
        "src/engine/types.rs",
        "src/stats.rs",
        "src/values.rs",
        "src/kinds/mod.rs",
        "data/digits.csv.gz",
    ] {
        assert_eq!(kinds_moved_by(file), all, "editing {file}");
    }
    let users_of_sigmoid: BTreeSet<String> = ["sigmoid", "modes", "losses", "multiclass"].map(String::from).into();
    assert_eq!(kinds_moved_by("src/kinds/sigmoid.rs"), users_of_sigmoid);
    let users_of_digits: BTreeSet<String> =
        ["colored_digits", "digits", "shortcut_strength", "spectral_decoupling"].map(String::from).into();
    assert_eq!(kinds_moved_by("src/kinds/digits.rs"), users_of_digits);
    for file in AFTER_TRAINING {
        assert!(kinds_moved_by(file).is_empty(), "editing {file} (after training) reruns training");
    }
    // Every hashed file: a kind file moves the kinds that list it, any other
    // file outside AFTER_TRAINING moves them all.
    for &(path, _) in source_files() {
        let expected: BTreeSet<String> = if AFTER_TRAINING.contains(&path) {
            BTreeSet::new()
        } else if is_kind_file(path) {
            all.iter().filter(|k| kind_files(k).contains(&path)).cloned().collect()
        } else {
            all.clone()
        };
        assert_eq!(kinds_moved_by(path), expected, "editing {path}");
    }
}

/// The kind modules that `source` refers to, among `modules`: `super::m`,
/// `kinds::m`, a path starting `m::`, or `m` inside `super::{...}`.
/// Comments count too: a false alarm only asks for one more listed file.
fn referenced_modules(source: &str, modules: &[String]) -> BTreeSet<String> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    // Byte ranges of `super::{...}` and `kinds::{...}` groups, nested braces included.
    let mut groups = Vec::new();
    for prefix in ["super::{", "kinds::{"] {
        for (start, _) in source.match_indices(prefix) {
            let mut depth = 0;
            for (i, c) in source[start..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            groups.push(start..start + i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let mut found = BTreeSet::new();
    for m in modules {
        for (at, _) in source.match_indices(m.as_str()) {
            let before = &source[..at];
            let after = &source[at + m.len()..];
            if before.ends_with(is_ident) || after.starts_with(is_ident) {
                continue; // part of a longer name
            }
            let path_start = after.starts_with("::") && !before.ends_with("::");
            if before.ends_with("super::")
                || before.ends_with("kinds::")
                || path_start
                || groups.iter().any(|g| g.contains(&at))
            {
                found.insert(m.clone());
            }
        }
    }
    found
}

#[test]
fn kind_files_list_every_kind_they_use() {
    let kinds = kinds();
    for kind in &kinds {
        let listed = kind_files(kind);
        for file in listed {
            assert!(is_kind_file(file), "{kind} lists {file}, which is not a kind file");
            let source = std::fs::read_to_string(root().join(file)).unwrap();
            let own = file.trim_start_matches("src/kinds/").trim_end_matches(".rs");
            let others: Vec<String> = kinds.iter().filter(|k| k.as_str() != own).cloned().collect();
            for used in referenced_modules(&source, &others) {
                let needed = format!("src/kinds/{used}.rs");
                assert!(
                    listed.contains(&needed.as_str()),
                    "{file} uses the {used} kind's module, so the {kind} kind's jobs run {needed}: \
                     list it in kinds::FILES of \"{kind}\")"
                );
            }
        }
    }
}

#[test]
fn the_reference_finder_sees_each_way_of_naming_a_module() {
    let modules: Vec<String> = ["sigmoid", "chain", "modes"].map(String::from).into();
    let found = |s: &str| referenced_modules(s, &modules).into_iter().collect::<Vec<_>>();
    assert_eq!(found("use super::sigmoid::{self, Init};"), ["sigmoid"]);
    assert_eq!(found("use super::{job_config, chain, Job};"), ["chain"]);
    assert_eq!(found("use super::{x::{y}, modes::Z};"), ["modes"]);
    assert_eq!(found("let c = sigmoid::Config::default();"), ["sigmoid"]);
    assert_eq!(found("crate::kinds::chain::run()"), ["chain"]);
    // Names that are not the module: variables, other modules' items, strings.
    assert!(found("let modes = chain_len; theory::sigmoid(z); rng(\"sigmoid/init\")").is_empty());
}
