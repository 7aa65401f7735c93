//! Shared by the integration tests: the small configurations and a runner.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use learning_dynamics::pipeline::{self, Event, Options, Run};
use learning_dynamics::spec::{self, Paper};

pub fn small_spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/small.toml")
}

pub fn small_spec_text() -> String {
    std::fs::read_to_string(small_spec_path()).unwrap()
}

pub fn parse(text: &str) -> Paper {
    learning_dynamics::engine::pin_candle_threads();
    spec::parse(Path::new("small.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}

pub fn small_paper() -> Paper {
    parse(&small_spec_text())
}

pub fn options(cache_dir: &Path, threads: usize) -> Options {
    Options {
        out_dir: cache_dir.join("figures"),
        cache_dir: cache_dir.to_path_buf(),
        only: Vec::new(),
        force: false,
        threads,
        train: true,
        // The small configs draw some curves on one another (two losses of a
        // few steps, diverged runs): these tests are about other things; the
        // lint's refusal has its own test (tests/lint.rs), and the real
        // figures pass it in every `figures --check`.
        refuse_lint: false,
        remote_cache: None,
    }
}

pub fn run(paper: &Paper, cache_dir: &Path, threads: usize) -> Run {
    run_with_events(paper, &options(cache_dir, threads)).0
}

/// A run and the events it reported, in order.
pub fn run_with_events(paper: &Paper, options: &Options) -> (Run, Vec<Event>) {
    let events = std::sync::Mutex::new(Vec::new());
    let run = pipeline::run(paper, options, &|event| events.lock().unwrap().push(event)).unwrap();
    (run, events.into_inner().unwrap())
}

/// The `paper-figures` binary (release, like the tests).
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_paper-figures"))
}

/// `paper-figures --spec SPEC figures --cache-dir CACHE --out OUT
/// --json-events EXTRA...`, run from the repository root: its progress
/// comes as JSON lines on stderr, for tests to read.
pub fn figures_command(spec: &Path, cache_dir: &Path, out_dir: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(binary());
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--spec")
        .arg(spec)
        .arg("figures")
        .arg("--cache-dir")
        .arg(cache_dir)
        .arg("--out")
        .arg(out_dir)
        .arg("--json-events")
        .args(extra);
    cmd
}

/// The small spec with each `(from, to)` replaced once, written to `dir`.
pub fn small_spec_with(dir: &Path, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let mut text = small_spec_text();
    for (from, to) in edits {
        assert!(text.contains(from), "the small spec has no {from:?}");
        text = text.replacen(from, to, 1);
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Every file of `dir` by name (empty when `dir` does not exist).
pub fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Default::default() };
    entries
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap()))
        .collect()
}

/// A temporary file left by an interrupted atomic write: never an entry.
pub fn is_partial(name: &str) -> bool {
    name.starts_with(".partial-") && name.ends_with(".tmp")
}

/// The keys of the cache entries in `dir`, after checking that every file
/// there is a verified entry of one of `keys` or a temporary file. Reads
/// only: temporary files are left where they are.
pub fn verified_entries(dir: &Path, keys: &[String]) -> std::collections::BTreeSet<String> {
    use learning_dynamics::cache::{read_entry, Lookup};
    let mut found = std::collections::BTreeSet::new();
    for name in files(dir).keys() {
        if is_partial(name) {
            continue;
        }
        let key = name.strip_suffix(".json").unwrap_or_else(|| panic!("a stray file in the cache: {name}"));
        assert!(keys.iter().any(|k| k == key), "an entry of no planned job: {name}");
        match read_entry::<learning_dynamics::engine::TrainLog>(&dir.join(name), key) {
            Lookup::Hit(_) => {}
            Lookup::Miss => panic!("{name} vanished"),
            Lookup::Damaged(why) => panic!("a damaged entry: {why}"),
        }
        found.insert(key.to_string());
    }
    found
}

/// The small versions of the other figure kinds.
pub fn small_kinds_paper() -> Paper {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/small_kinds.toml");
    parse(&std::fs::read_to_string(path).unwrap())
}

/// Seeded random numbers for the tests (kill times, mutations), from the
/// project's own ChaCha streams.
pub struct TestRng(rand_chacha::ChaCha8Rng);

impl TestRng {
    pub fn new(purpose: &str, seed: u64) -> TestRng {
        TestRng(learning_dynamics::rng::stream(purpose, seed))
    }
    pub fn next(&mut self) -> u64 {
        use rand::RngExt;
        self.0.random()
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        use rand::RngExt;
        self.0.random()
    }
    /// Uniform in 0..n (0 when n = 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}
