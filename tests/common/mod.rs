//! Shared by the integration tests: the small configurations and a runner.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use learning_dynamics::pipeline::{self, Options, Run};
use learning_dynamics::spec::{self, Paper};

pub fn small_spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/small.toml")
}

pub fn small_spec_text() -> String {
    std::fs::read_to_string(small_spec_path()).unwrap()
}

pub fn parse(text: &str) -> Paper {
    learning_dynamics::train::pin_candle_threads();
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
        progress: false,
    }
}

pub fn run(paper: &Paper, cache_dir: &Path, threads: usize) -> Run {
    pipeline::run(paper, &options(cache_dir, threads)).unwrap()
}
