//! The command line as a user meets it: messages that name `cargo xtask`,
//! start with "error:" and suggest the nearest name; paths taken from where
//! the user is; jobs too large for the machine and changed data files refused
//! when the spec loads; `cache`, `cache gc` and `cite`. Each test runs the
//! release binary, as `cargo xtask` does, from the repository root.
#![cfg(unix)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("cannot start paper-figures")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `paper-figures ARGS` from the repository root, as `cargo xtask` runs it,
/// with no caller directory or target directory from this test's environment.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(common::binary());
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("PAPER_FIGURES_CALLER_DIR")
        .env_remove("CARGO_TARGET_DIR")
        .args(args);
    cmd
}

fn line_of(spec: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(spec).unwrap();
    text[..text.find(needle).unwrap()].matches('\n').count() + 1
}

#[test]
fn every_message_of_a_rejected_batch_starts_with_error() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = common::small_spec_with(
        tmp.path(),
        "bad.toml",
        &[("learning_rate = 0.01", "learning_rate = -0.01"), ("seed_count = 3", "seed_count = -3")],
    );
    let out = run(&mut common::figures_command(&spec, &tmp.path().join("c"), &tmp.path().join("o"), &[]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // Every line is a message ("error: ...") or the quoted source under one (indented).
    let messages: Vec<&str> = err.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(messages.len(), 3, "two problems and the count:\n{err}");
    assert!(messages.iter().all(|l| l.starts_with("error: ")), "{err}");
    assert!(messages[2].contains("2 problem(s)"), "{err}");
}

#[test]
fn usage_names_cargo_xtask_and_options_are_suggested() {
    let help = run(&mut command(&["figures", "--help"]));
    assert!(text(&help.stdout).contains("Usage: cargo xtask figures"), "{}", text(&help.stdout));
    let out = run(&mut command(&["figures", "--onyl", "x"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.starts_with("error: ") && err.contains("'--only'") && err.contains("Usage: cargo xtask"), "{err}");
    let out = run(&mut command(&["figuers"]));
    let err = text(&out.stderr);
    assert!(err.contains("'figures'") && err.contains("Usage: cargo xtask"), "{err}");
}

#[test]
fn a_misspelt_figure_id_gets_the_nearest_one() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = common::small_spec_path();
    let out = run(&mut common::figures_command(
        &spec,
        &tmp.path().join("c"),
        &tmp.path().join("o"),
        &["--only", "sigmoid-eror"],
    ));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: no figure with id \"sigmoid-eror\" (did you mean `sigmoid-error`?)"), "{err}");
}

#[test]
fn zero_jobs_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (cache, out_dir) = (tmp.path().join("c"), tmp.path().join("o"));
    let out = run(&mut common::figures_command(&common::small_spec_path(), &cache, &out_dir, &["--jobs", "0"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: ") && err.contains("expected a whole number >= 1"), "{err}");
    assert!(!cache.exists() && !out_dir.exists());
}

/// `--spec`, `--out` and `--cache-dir` are relative to where the user is;
/// the defaults and paper.toml's data paths stay at the repository root.
#[test]
fn relative_paths_are_taken_from_the_callers_directory() {
    let tmp = tempfile::tempdir().unwrap();
    common::small_spec_with(tmp.path(), "mine.toml", &[]);
    let out = run(command(&[
        "--spec",
        "mine.toml",
        "figures",
        "--only",
        "phase-diagram",
        "--cache-dir",
        "c",
        "--out",
        "o",
        "--json-events",
    ])
    .env("PAPER_FIGURES_CALLER_DIR", tmp.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(tmp.path().join("o/phase-diagram.json").is_file());
    assert!(std::fs::read_dir(tmp.path().join("c")).unwrap().count() > 0, "no cache entries in the caller's c/");
}

/// The default cache is `$CARGO_TARGET_DIR/figure-cache` (a relative one
/// taken from the caller's directory, as cargo takes it).
#[test]
fn the_default_cache_follows_cargo_target_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = common::small_spec_path();
    let spec = spec.to_str().unwrap();
    let out = run(command(&["--spec", spec, "cache"])
        .env("CARGO_TARGET_DIR", "tgt")
        .env("PAPER_FIGURES_CALLER_DIR", tmp.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = tmp.path().join("tgt/figure-cache");
    assert!(dir.is_dir(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).starts_with(&format!("cache {}:", dir.display())), "{}", text(&out.stdout));
}

/// A seed_count of 10^12 is refused when the spec loads, at its line, with
/// exit status 2: not an abort on allocation. A job that would fit the
/// machine but not a lower `--memory-limit` is refused too, and a higher
/// limit lets a large one through.
#[test]
fn a_job_too_large_for_memory_is_refused_at_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let huge = common::small_spec_with(tmp.path(), "huge.toml", &[("seed_count = 3", "seed_count = 1000000000000")]);
    let out = run(&mut common::figures_command(&huge, &tmp.path().join("c"), &tmp.path().join("o"), &[]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let at = format!("error: {}:{}:", huge.display(), line_of(&huge, "seed_count = 1000000000000"));
    assert!(err.starts_with(&at), "{err}");
    assert!(err.contains("seed_count = 1000000000000 is too large") && err.contains("this machine's memory"), "{err}");
    assert!(!tmp.path().join("c").exists());

    // About 0.8 GB by the estimate: refused under a 0.1 GB limit, listed under 100 GB.
    let large = common::small_spec_with(tmp.path(), "large.toml", &[("seed_count = 3", "seed_count = 100000")]);
    let spec = large.to_str().unwrap();
    let out = run(&mut command(&["--spec", spec, "--memory-limit", "0.1", "list"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with(&format!("error: {}:{}:", spec, line_of(&large, "seed_count = 100000"))), "{err}");
    assert!(err.contains("networks need about") && err.contains("set by --memory-limit"), "{err}");
    let out = run(&mut command(&["--spec", spec, "--memory-limit", "100", "list"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A data file whose SHA-256 is not the spec's is found when the spec loads
/// (before any figure trains), at the `data_sha256` line.
#[test]
fn a_wrong_data_hash_is_found_at_load_at_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let good = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22";
    let bad = "19f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22";
    let text_of = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/small_kinds.toml"))
        .unwrap()
        .replacen(good, bad, 1);
    let spec = tmp.path().join("kinds.toml");
    std::fs::write(&spec, &text_of).unwrap();
    let (cache, out_dir) = (tmp.path().join("c"), tmp.path().join("o"));
    let out = run(&mut common::figures_command(&spec, &cache, &out_dir, &[]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let at = format!("error: {}:{}:", spec.display(), line_of(&spec, bad));
    assert!(err.starts_with(&at) && err.contains(&format!("has SHA-256 {good}")), "{err}");
    assert!(!cache.exists() && !out_dir.exists(), "it must stop before anything runs");
}

/// `cache` shows what the cache holds by figure and job and what no job
/// uses; `cache gc` removes exactly the unused entries.
#[test]
fn cache_shows_its_contents_and_gc_removes_unused_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = common::small_spec_path();
    let (cache, out_dir) = (tmp.path().join("c"), tmp.path().join("o"));
    let out = run(&mut common::figures_command(&spec, &cache, &out_dir, &["--only", "phase-diagram"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let entries: Vec<String> = common::files(&cache).into_keys().collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let unused = format!("{}.json", "ab".repeat(32));
    std::fs::copy(cache.join(&entries[0]), cache.join(&unused)).unwrap();

    let spec = spec.to_str().unwrap();
    let cache_arg = cache.to_str().unwrap();
    let shown = run(&mut command(&["--spec", spec, "cache", "--cache-dir", cache_arg]));
    let listing = text(&shown.stdout);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    assert!(listing.contains("3 entr(ies)"), "{listing}");
    assert!(listing.contains("phase-diagram: 2/2 shard(s) cached"), "{listing}");
    assert!(listing.contains("sigmoid-error: 0/"), "{listing}");
    assert!(listing.contains("missing") && listing.contains("grid"), "{listing}");
    assert!(listing.contains("unused by any job of the spec: 1 entr(ies)"), "{listing}");

    let gc = run(&mut command(&["--spec", spec, "cache", "gc", "--cache-dir", cache_arg]));
    let said = text(&gc.stdout);
    assert!(gc.status.success(), "{}", text(&gc.stderr));
    assert!(said.starts_with("removed 1 unused entr(ies)"), "{said}");
    let left: Vec<String> = common::files(&cache).into_keys().collect();
    assert_eq!(left, entries, "gc must keep every used entry and remove the unused one");
    assert!(!said.contains("unused by any job"), "{said}");
}

/// `cite` reads the committed figure: short by default, the config with
/// `--full`, and BibTeX for the paper and for this repository at the
/// figure's commit with its key in the note.
#[test]
fn cite_is_short_full_or_bibtex() {
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("figures/sigmoid-error.json")).unwrap(),
    )
    .unwrap();
    let short = run(&mut command(&["cite", "sigmoid-error"]));
    let shown = text(&short.stdout);
    assert!(short.status.success(), "{}", text(&short.stderr));
    // The cited commit holds code and data: HEAD when the figure is current and the tree
    // clean, else the last commit of the figure's JSON.
    let git = |args: &[&str]| {
        let out =
            std::process::Command::new("git").current_dir(env!("CARGO_MANIFEST_DIR")).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let current_and_clean = shown.contains("status:     current") && git(&["status", "--porcelain"]).is_empty();
    let expected_commit = if current_and_clean {
        git(&["rev-parse", "HEAD"])
    } else {
        git(&["log", "-1", "--format=%H", "--", "figures/sigmoid-error.json"])
    };
    let (key, commit) = (json["provenance"]["key"].as_str().unwrap(), expected_commit.as_str());
    for field in [
        "figure:     sigmoid-error",
        "key:        ",
        "commit:     ",
        "status:     ",
        "regenerate: ",
        "config:     sha256 ",
    ] {
        assert!(shown.contains(field), "no {field:?}:\n{shown}");
    }
    assert!(
        shown.contains(&format!("key:        {key}")) && shown.contains(&format!("commit:     {commit}")),
        "{shown}"
    );
    assert!(shown.contains("cargo xtask figures --only sigmoid-error"), "{shown}");
    assert!(!shown.contains("[figure.experiment.sigmoid]"), "the short form has no config:\n{shown}");

    let full = text(&run(&mut command(&["cite", "sigmoid-error", "--full"])).stdout);
    assert!(full.starts_with(&shown) && full.contains("[figure.experiment.sigmoid]"), "{full}");

    let bib = run(&mut command(&["cite", "sigmoid-error", "--bibtex"]));
    let bib = text(&bib.stdout);
    assert!(
        bib.contains("@article{tachetdescombes2018learning") && bib.contains("eprint        = {1809.06848}"),
        "{bib}"
    );
    assert!(bib.contains("Tachet des Combes, R{\\'e}mi and Pezeshki, Mohammad and Shabanian, Samira"), "{bib}");
    assert!(bib.contains("@software{") && bib.contains(&format!("version = {{{commit}}}")), "{bib}");
    let note = bib.lines().find(|l| l.trim_start().starts_with("note")).expect("a note");
    assert!(note.contains(key) && note.contains("sigmoid-error"), "{note}");
    // Balanced braces: each entry closes.
    assert_eq!(bib.matches('{').count(), bib.matches('}').count(), "{bib}");
}
