//! `cargo xtask`: the project's commands. Thin on purpose: it builds the
//! `paper-figures` binary in release mode (training in a debug build is about
//! 100x slower), showing cargo's progress, and runs it from the repository
//! root with the same arguments.
//!
//!   cargo xtask figures [--check] [--dry-run] [--force] [--only ID]...
//!   cargo xtask status | plan
//!   cargo xtask cite ID [--full | --bibtex]
//!   cargo xtask list
//!   cargo xtask lint
//!   cargo xtask cache [gc]
//!   cargo xtask bench [--only ID]...
//!
//! Relative paths in the arguments are the user's: the directory this was
//! run in goes to the binary in `PAPER_FIGURES_CALLER_DIR`.

use std::process::{Command, ExitCode};

const HELP: &str = "\
cargo xtask: regenerate, check and cite the paper's figures

USAGE:
    cargo xtask figures [--check] [--force] [--only ID]... [--jobs N] [--cache-dir DIR]
        Train (or read from the cache) every figure in paper.toml, check its
        claims, and write figures/<id>.svg and figures/<id>.json.
        --check compares with the committed figures instead and writes nothing;
        --dry-run prints the plan and the status, and trains and writes nothing.
    cargo xtask status [--only ID]... [--json]
        Each figure: current, stale or missing, and why (changed paper.toml
        values, changed source files, jobs not cached and their estimated
        compute). Exits 1 when any figure is stale or missing.
    cargo xtask plan [--only ID]... [--force] [--json]
        Every job: key, networks, cached or not, why it would run, and its
        estimated cost.
    cargo xtask cite ID [--full | --bibtex]
        Print what cites a figure: its key, commit, whether it is stale, the
        command that regenerates it and a digest of its config (--full: the
        config itself; --bibtex: BibTeX for the paper and this repository).
    cargo xtask list
        List the figures and their claims.
    cargo xtask lint
        Check the committed figures as a reader sees them (hidden series,
        clipped data, promises nothing draws, colours, equal aspect, text) and
        the gallery's tables; one line per problem, exit status 1 if any.
    cargo xtask cache [gc]
        Show the job cache by figure and job; gc removes entries no job uses.
    cargo xtask bench [--only ID]... [--repeats N] [--no-python] [--scaling]
        Time per network-step of every figure's workload: the fused engine, the
        batched Candle program, a hand-written loop, and the JAX and PyTorch
        reference scripts in bench/ where those are installed; --scaling draws
        the time against ensemble, width and points (bench/scaling.svg).

Every command accepts --help for its full options.";

/// The variables the outer `cargo run` set for this program (its package's
/// manifest, name, version), removed from a cargo it starts: a build script
/// that reads one (ring's reads CARGO_MANIFEST_DIR) would otherwise see
/// another environment than under `cargo test`, and cargo would build that
/// crate and everything above it again at every switch between the two
/// commands of the README.
fn without_run_variables(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_by_cargo_run = name.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&name.as_ref());
        if set_by_cargo_run {
            command.env_remove(name.as_ref());
        }
    }
    command
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
        println!("{HELP}");
        return ExitCode::SUCCESS;
    }
    // Any other command goes to paper-figures, whose parser names the
    // nearest command for a misspelt one and lists them all.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The checkout this was run from: `cargo run` sets CARGO_MANIFEST_DIR at
    // run time. The compile-time value names the clone that compiled this
    // binary, which a target directory shared by two clones reuses for both.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let root = manifest_dir.parent().expect("xtask lives in the workspace");
    let (binary, rest) = if args[0] == "bench" { ("bench", &args[1..]) } else { ("paper-figures", &args[..]) };
    // Build first, with cargo's own progress (a first build compiles about 250
    // crates: minutes, which a quiet build spent in silence); then run quietly.
    let mut build = Command::new(&cargo);
    build.current_dir(root).args(["build", "--release", "--bin", binary]);
    match without_run_variables(&mut build).status() {
        Ok(s) if s.success() => {}
        Ok(s) => return ExitCode::from(s.code().unwrap_or(1).clamp(1, 255) as u8),
        Err(e) => {
            eprintln!("error: cannot run cargo: {e}");
            return ExitCode::from(2);
        }
    }
    let mut command = Command::new(cargo);
    without_run_variables(&mut command);
    command.current_dir(root).args(["run", "--release", "--quiet", "--bin", binary, "--"]).args(rest);
    // Run from the repository root (paper.toml's data paths are relative to
    // it), but relative paths the user typed are taken from where they are.
    if let Ok(here) = std::env::current_dir() {
        command.env("PAPER_FIGURES_CALLER_DIR", here);
    }
    // On Unix, become `cargo run` (which in turn becomes paper-figures): a
    // Ctrl-C then reaches only paper-figures, which stops cleanly and reports
    // what it kept, instead of this wrapper dying first and leaving it behind.
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let e = command.exec();
        eprintln!("error: cannot run cargo: {e}");
        ExitCode::from(2)
    }
    #[cfg(not(unix))]
    match command.status() {
        Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: cannot run cargo: {e}");
            ExitCode::from(2)
        }
    }
}
