//! `paper-figures`: regenerate, check and cite the paper's figures.
//! Usually run through `cargo xtask`, which builds it in release mode.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use learning_dynamics::figure::ClaimClass;
use learning_dynamics::pipeline::{self, Event, Options};
use learning_dynamics::{cache, check, engine, gallery, lint, preflight, provenance, spec};

#[derive(Parser)]
#[command(
    name = "paper-figures",
    // Users run it as `cargo xtask ...` (see xtask/src/main.rs), so usage lines say so.
    bin_name = "cargo xtask",
    about = "Reproducible figures for 'On the Learning Dynamics of Deep Neural Networks' (arXiv:1809.06848)",
    long_about = "Reads the figure specifications (paper.toml), trains every figure's networks with Candle \
                  (results cached under a hash of config, seeds and code), checks the paper's claims on the \
                  measured data and renders figures/<id>.svg and figures/<id>.json."
)]
struct Cli {
    /// The figure specification file [default: paper.toml in the repository root].
    #[arg(long, global = true, value_name = "FILE")]
    spec: Option<PathBuf>,
    /// Refuse, when the spec is loaded, any job estimated to need more memory
    /// than this, in GB [default: this machine's memory]. Raise it on a larger node.
    #[arg(long, global = true, value_name = "GB", value_parser = positive_number)]
    memory_limit: Option<f64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Regenerate the figures (or, with --check, verify the committed ones).
    Figures {
        /// Regenerate in memory and fail if the committed figures/*.json differ
        /// (data or claim outcomes) or a claim contradicts paper.toml. Writes nothing.
        #[arg(long)]
        check: bool,
        /// Recompute every job, ignoring the cache.
        #[arg(long)]
        force: bool,
        /// Only this figure (repeatable).
        #[arg(long = "only", value_name = "ID")]
        only: Vec<String>,
        /// Where figures are written [default: figures in the repository root].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Where job results are cached [default: $CARGO_TARGET_DIR/figure-cache, else target/figure-cache].
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// Shards trained side by side, at least 1 [default: the number of cores].
        #[arg(long, value_name = "N", value_parser = whole_number)]
        jobs: Option<usize>,
        /// Train nothing and write nothing: print the plan (every job, whether
        /// it is cached, why it would run, its estimated cost) and each figure's
        /// status, and exit non-zero if any figure is stale or missing.
        #[arg(long)]
        dry_run: bool,
        /// Report progress as JSON lines on stderr, one object per event
        /// ({"event": "job_trained", "figure": .., "job": .., "key": .., ..}),
        /// for scripts, instead of the progress bar and the job lines.
        #[arg(long)]
        json_events: bool,
        /// Train nothing: assemble the figures from the cache alone (after a
        /// cluster computed the shards), failing with a list of the missing ones.
        #[arg(long, conflicts_with_all = ["force", "dry_run"])]
        assemble_only: bool,
        /// A remote cache shared by machines with no common disk: an http(s)
        /// URL of a directory that answers GET (and PUT, to write) of
        /// <key>.json, e.g. nginx with WebDAV. A local miss is read from there,
        /// verified by its checksum and kept locally; a damaged entry is
        /// recomputed; a remote that is down or slow is reported and the run
        /// trains what it lacks.
        #[arg(long, value_name = "URL", env = "PAPER_FIGURES_REMOTE_CACHE")]
        remote_cache: Option<String>,
        /// Also store every result this run computes in the remote cache
        /// (off by default: most users only read).
        #[arg(long, requires = "remote_cache")]
        remote_cache_write: bool,
        /// Seconds each request to the remote cache may take, whole.
        #[arg(long, value_name = "SECONDS", value_parser = whole_number, default_value_t = 60)]
        remote_cache_timeout: usize,
        #[command(flatten)]
        slurm: SlurmArgs,
    },
    /// (Run by each task of a `figures --slurm` job array.) Trains the shards
    /// that an assignment gives one task into the cache.
    #[command(hide = true)]
    ShardTask {
        /// The assignment.json of the submission.
        #[arg(long, value_name = "FILE")]
        assignment: PathBuf,
        /// This task's index (`$SLURM_ARRAY_TASK_ID`).
        #[arg(long, value_name = "I")]
        task: usize,
        /// The shared cache directory.
        #[arg(long, value_name = "DIR")]
        cache_dir: PathBuf,
        /// Shards trained side by side.
        #[arg(long, value_name = "N", value_parser = whole_number, default_value_t = 1)]
        jobs: usize,
    },
    /// Print what a paper or lab notebook needs to cite one figure: its key,
    /// the commit of its committed data, whether that is stale, how to
    /// regenerate it and a digest of its config.
    Cite {
        /// The figure id.
        id: String,
        /// Where the committed figures are [default: figures in the repository root].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Also print the figure's config in full, as TOML.
        #[arg(long)]
        full: bool,
        /// Print BibTeX entries instead: the paper, and this repository at the
        /// figure's commit with the figure's key in the note.
        #[arg(long, conflicts_with_all = ["full", "keys"])]
        bibtex: bool,
        /// Also print the code fingerprints and each job's cache key.
        #[arg(long)]
        keys: bool,
    },
    /// For every figure: current, stale or missing, and why (which paper.toml
    /// values changed, old -> new; which source files changed; which jobs are
    /// not cached and what they would take). Exit status 1 when any figure is
    /// stale or missing, so scripts can use it.
    Status {
        /// Only this figure (repeatable).
        #[arg(long = "only", value_name = "ID")]
        only: Vec<String>,
        /// Where the committed figures are [default: figures in the repository root].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Where job results are cached [default: as for `figures`].
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// One JSON object per figure, one per line, instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Every job of every figure: its key, networks, whether it is cached, why
    /// it would run and its estimated cost (recorded by earlier runs, or a
    /// model of steps x networks x points x weights).
    Plan {
        /// Only this figure (repeatable).
        #[arg(long = "only", value_name = "ID")]
        only: Vec<String>,
        /// Where job results are cached [default: as for `figures`].
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// Plan as if every job were to be recomputed (as `figures --force` would).
        #[arg(long)]
        force: bool,
        /// One JSON object per job, one per line, instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// List the figures with their titles, claims, and whether the committed
    /// data is current (made by this tree's code and paper.toml) or stale.
    List {
        /// Where the committed figures are [default: figures in the repository root].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// A referee's checks on the committed figures as a reader sees them
    /// (series hidden under others, clipped data, legend or caption promises
    /// with nothing drawn, colours too close or too faint, unequal scales on
    /// an equal-aspect panel, text that overflows or wraps badly) and on the
    /// gallery's tables; trains nothing. One line per problem: figure, panel,
    /// series, rule, what. Exit status 1 when there is any.
    Lint {
        /// Where the committed figures are [default: figures in the repository root].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Show the job cache: its size and what it holds, by figure and job.
    Cache {
        /// The cache directory [default: as for `figures`].
        #[arg(long, global = true, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: Option<CacheAction>,
    },
}

/// `figures --slurm` and its options. The requirements (a file system the
/// nodes share, the same binary, how the bits stay identical) are in the README.
#[derive(clap::Args)]
#[command(next_help_heading = "Slurm")]
struct SlurmArgs {
    /// Train the shards the cache lacks as one Slurm job array (sbatch), wait
    /// for it while showing progress (Ctrl-C cancels it), then assemble the
    /// figures from the cache. The cache directory must be on a file system
    /// that every node shares.
    #[arg(long)]
    slurm: bool,
    /// The partition to submit to [default: the cluster's].
    #[arg(long, value_name = "NAME", requires = "slurm")]
    partition: Option<String>,
    /// Each task's time limit, as sbatch takes it ("30", "2:00:00").
    #[arg(long, value_name = "TIME", requires = "slurm")]
    time_limit: Option<String>,
    /// At most this many array tasks; the shards are balanced over them by estimated cost.
    #[arg(long, value_name = "N", value_parser = whole_number, default_value_t = 32, requires = "slurm")]
    array_tasks: usize,
    /// Cores per task; each task trains that many shards side by side.
    #[arg(long, value_name = "N", value_parser = whole_number, default_value_t = 1, requires = "slurm")]
    cpus_per_task: usize,
    /// One more sbatch argument, e.g. --sbatch-arg=--mem=4G (repeatable).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true, requires = "slurm")]
    sbatch_arg: Vec<String>,
    /// Submit and return: print the command that assembles the figures later.
    #[arg(long, requires = "slurm", conflicts_with = "emit_sbatch")]
    no_wait: bool,
    /// Write the sbatch script to FILE (and its run directory beside the
    /// cache) without submitting it, for submitting by hand.
    #[arg(long, value_name = "FILE", requires = "slurm")]
    emit_sbatch: Option<PathBuf>,
}

#[derive(Subcommand)]
enum CacheAction {
    /// Remove the entries that no job of the spec uses now (old code, old
    /// configs). Entries of other specs sharing the cache count as unused.
    /// Also removes the Slurm run directories (`<cache>/slurm/*`, each with a
    /// copy of the binary) whose every shard is in the cache.
    Gc,
}

/// `--jobs`: a whole number >= 1 (0 jobs would run nothing and wait forever).
fn whole_number(text: &str) -> std::result::Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number >= 1".to_string()),
    }
}

/// `--memory-limit`: a finite number > 0.
fn positive_number(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err("expected a finite number > 0 (GB)".to_string()),
    }
}

/// A path the user gave on the command line, taken from the directory they
/// ran the command in: `cargo xtask` runs this binary from the repository
/// root and passes that directory in `PAPER_FIGURES_CALLER_DIR`. Defaults
/// stay relative to the repository root.
fn from_caller(path: PathBuf) -> PathBuf {
    match std::env::var_os("PAPER_FIGURES_CALLER_DIR") {
        Some(dir) if path.is_relative() => PathBuf::from(dir).join(path),
        _ => path,
    }
}

/// The default cache: under cargo's target directory, which
/// `CARGO_TARGET_DIR` moves (relative to where the user ran cargo, as cargo
/// takes it), so a shared or out-of-tree target keeps the cache beside the build.
fn default_cache_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => from_caller(PathBuf::from(dir)).join("figure-cache"),
        None => PathBuf::from("target/figure-cache"),
    }
}

fn cache_dir(given: Option<PathBuf>) -> PathBuf {
    given.map_or_else(default_cache_dir, from_caller)
}

fn out_dir(given: Option<PathBuf>) -> PathBuf {
    given.map_or_else(|| PathBuf::from("figures"), from_caller)
}

/// The exit status of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    engine::pin_candle_threads();
    match run() {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<learning_dynamics::slurm::Cancelled>().is_some() => {
            eprintln!("{e}");
            ExitCode::from(INTERRUPTED)
        }
        Err(e) => match e.downcast_ref::<pipeline::Interrupted>() {
            Some(stopped) => {
                eprintln!("{stopped}");
                ExitCode::from(INTERRUPTED)
            }
            None => {
                match e.downcast_ref::<spec::SpecErrors>() {
                    // Each problem its own "error:" line, then the count.
                    Some(errors) => {
                        for problem in &errors.0 {
                            eprintln!("error: {problem}");
                        }
                        eprintln!(
                            "error: {} problem(s) in the figure specification; nothing was run or written",
                            errors.0.len()
                        );
                    }
                    None => eprintln!("error: {e:#}"),
                }
                ExitCode::from(2)
            }
        },
    }
}

/// Ctrl-C (or SIGTERM) once: no new job starts, the running ones finish and
/// are cached, nothing is written, and the run says what it kept. Twice: the
/// process exits at once; every file it wrote is whole (temp file + rename),
/// so even that loses only the jobs that were running.
fn stop_on_signals() -> Result<()> {
    let flag = pipeline::interrupt_flag();
    for &signal in signal_hook::consts::TERM_SIGNALS {
        // Registered first, so it sees the flag as it was before this signal.
        signal_hook::flag::register_conditional_shutdown(signal, INTERRUPTED.into(), flag.clone())?;
        signal_hook::flag::register(signal, flag.clone())?;
    }
    std::thread::spawn(|| {
        while !pipeline::interrupted() {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        eprintln!("interrupt: starting no new job; waiting for the running ones to finish and be cached (Ctrl-C again stops at once)");
    });
    Ok(())
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    let spec_path = cli.spec.map_or_else(|| PathBuf::from("paper.toml"), from_caller);
    // Checked before anything is planned: a job too large for this machine
    // would abort the process on allocation (no message, a core dump).
    let limit = match cli.memory_limit {
        Some(gb) => Some((gb * 1e9, "set by --memory-limit")),
        None => preflight::machine_memory().map(|bytes| (bytes, "this machine's memory")),
    };
    let paper = preflight::load(&spec_path, limit)?;
    match cli.command {
        Command::List { out } => {
            let mut counts = [0usize; 3];
            for (fig, _, status) in pipeline::statuses(&paper, &out_dir(out)) {
                println!("{}  ({}, {status})\n  {}", fig.id(), fig.experiment.name(), fig.title);
                for c in &fig.claims {
                    let class = *c.class.get_ref();
                    counts[ClaimClass::ALL.iter().position(|&k| k == class).unwrap_or(0)] += 1;
                    println!("    {}: {}", class.name(), c.name);
                }
            }
            let [evidence, consistency, findings] = counts;
            println!("\nclaims: evidence {evidence}, consistency {consistency}, findings {findings}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Lint { out } => lint_committed(&paper, &out_dir(out)),
        Command::Cite { id, out, full, bibtex, keys } => {
            cite(&paper, &id, &out_dir(out), CiteAs { full, bibtex, keys })
        }
        Command::Cache { cache_dir: dir, action } => show_cache(&paper, &cache_dir(dir), action.is_some()),
        Command::Status { only, out, cache_dir: dir, json } => {
            status(&paper, &only, &out_dir(out), &cache_dir(dir), json)
        }
        Command::Plan { only, cache_dir: dir, force, json } => {
            print_plan(&learning_dynamics::status::plan(&paper, &only, &cache_dir(dir), force)?, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Figures { dry_run: true, force, only, out, cache_dir: dir, .. } => {
            let dir = cache_dir(dir);
            print_plan(&learning_dynamics::status::plan(&paper, &only, &dir, force)?, false);
            println!();
            status(&paper, &only, &out_dir(out), &dir, false)
        }
        Command::ShardTask { assignment, task, cache_dir: dir, jobs } => {
            let reporter = Reporter::new(false, false, (0, 0));
            stop_on_signals()?;
            let start = Instant::now();
            let trained = learning_dynamics::slurm::run_task(
                &paper,
                &from_caller(assignment),
                task,
                &from_caller(dir),
                jobs,
                &|event| reporter.report(event),
            )?;
            println!("task {task}: trained {trained} shard(s) in {:.1}s", start.elapsed().as_secs_f64());
            Ok(ExitCode::SUCCESS)
        }
        Command::Figures {
            check,
            force,
            only,
            out,
            cache_dir: dir,
            jobs,
            json_events,
            assemble_only,
            slurm,
            remote_cache,
            remote_cache_write,
            remote_cache_timeout,
            ..
        } => {
            let threads = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let opts = Options {
                out_dir: out_dir(out),
                cache_dir: cache_dir(dir),
                only,
                force,
                threads,
                train: !assemble_only,
                refuse_lint: true,
                remote_cache: remote_cache.map(|url| pipeline::RemoteCache {
                    url,
                    write: remote_cache_write,
                    timeout: Duration::from_secs(remote_cache_timeout as u64),
                }),
            };
            // Job lines line up under the longest names of this run's figures and jobs.
            let selected = pipeline::select(&paper, &opts.only)?;
            let planned = pipeline::plan(&selected);
            let widths = (
                selected.iter().map(|f| f.id().len()).max().unwrap_or(0),
                planned.iter().map(|p| p.job.name.len()).max().unwrap_or(0),
            );
            let reporter = Reporter::new(json_events, std::io::stderr().is_terminal(), widths);
            stop_on_signals()?;
            if slurm.slurm {
                ensure!(!check, "--check compares with the committed figures on this machine: run it without --slurm");
                return figures_on_slurm(&paper, &spec_path, &opts, slurm, &reporter);
            }
            figures(&paper, &spec_path, &opts, check, &reporter)
        }
    }
}

/// Shows a run's events: a progress bar on a terminal and a line per trained
/// job, or JSON lines for scripts.
struct Reporter {
    json: bool,
    terminal: bool,
    /// Filled by estimated compute (milliseconds), not by networks: the phase
    /// grid's 1890 one-unit nets are a second's work, one GAN job a minute's.
    bar: OnceLock<ProgressBar>,
    /// Columns of the job lines: the longest figure id and job name.
    widths: (usize, usize),
    /// Shards trained, of how many.
    done: std::sync::Mutex<(usize, usize)>,
}

impl Reporter {
    fn new(json: bool, terminal: bool, widths: (usize, usize)) -> Reporter {
        Reporter { json, terminal, bar: OnceLock::new(), widths, done: std::sync::Mutex::new((0, 0)) }
    }

    fn report(&self, event: Event) {
        if self.json {
            eprintln!("{}", serde_json::to_string(&event).expect("events serialize"));
            return;
        }
        match event {
            Event::DamagedCacheEntry { figure, job, why } => {
                self.line(format!("warning: damaged cache entry for {figure} / {job}: {why}; recomputing"))
            }
            Event::RemoteCacheProblem { why } => self.line(format!("warning: remote cache: {why}")),
            Event::TrainingStarts { shards, seconds, .. } => {
                *self.done.lock().unwrap() = (0, shards);
                if self.terminal {
                    let bar = ProgressBar::new((seconds * 1000.0).ceil() as u64);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} training: {msg} shards [{bar:30}] {percent:>3}% of the estimated work, \
                             {elapsed} elapsed, about {eta} left",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    bar.set_message(format!("0/{shards}"));
                    bar.enable_steady_tick(Duration::from_millis(200));
                    let _ = self.bar.set(bar);
                }
            }
            Event::JobStarts { .. } => {}
            Event::JobTrained { figure, job, members, of, networks, seconds, why, estimate, .. } => {
                let (done, shards) = {
                    let mut done = self.done.lock().unwrap();
                    done.0 += 1;
                    *done
                };
                if let Some(bar) = self.bar.get() {
                    bar.inc((estimate * 1000.0).ceil() as u64);
                    bar.set_message(format!("{done}/{shards}"));
                }
                let (fw, jw) = self.widths;
                let part = if networks == of {
                    String::new()
                } else {
                    format!(" ({}-{} of {of})", members[0], members[1] - 1)
                };
                self.line(format!("  {figure:<fw$}  {job:<jw$}  {networks:>5} nets{part}  {seconds:>7.2}s  ({why})"));
            }
        }
    }

    fn line(&self, text: String) {
        match self.bar.get() {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.get() {
            bar.finish_and_clear();
        }
    }
}

fn figures(
    paper: &spec::Paper,
    spec_path: &std::path::Path,
    opts: &Options,
    check: bool,
    reporter: &Reporter,
) -> Result<ExitCode> {
    let start = Instant::now();
    // Fail now, not after training, if the cache or the figures cannot be written.
    cache::Cache::open(&opts.cache_dir)?;
    if !check {
        pipeline::prepare_out_dir(&opts.out_dir)?;
    }
    let run = pipeline::run(paper, opts, &|event| reporter.report(event));
    reporter.finish();
    let run = run?;
    let surprising: Vec<String> = run
        .reports
        .iter()
        .flat_map(|r| {
            r.claims
                .iter()
                .filter(|c| c.surprising() || c.control_failed())
                .map(move |c| format!("{}: {}", r.id, c.name))
        })
        .collect();
    print_table(&run.reports);
    for r in &run.reports {
        for c in r.claims.iter().filter(|c| c.surprising()) {
            let what = if c.passed { "now HOLDS but paper.toml marks it as not holding" } else { "FAILED" };
            eprintln!("error: claim {what}: {} / {}: {} (expected {})", r.id, c.name, c.detail, c.expected);
        }
        for c in r.claims.iter().filter(|c| c.control_failed()) {
            eprintln!(
                "error: claim {} / {}: its negative control ({}) {} as well, so the check cannot tell that counterfactual \
                 from the measurement: {}",
                r.id,
                c.name,
                c.control.counterfactual,
                if c.control.passed { "passes" } else { "fails" },
                c.control.detail
            );
        }
        if !r.divergences.is_empty() {
            eprintln!(
                "warning: {}: {} training(s) diverged (NaN or infinity); recorded in its JSON and shown in its SVG:",
                r.id,
                r.divergences.len()
            );
            const SHOWN: usize = 20;
            for d in r.divergences.iter().take(SHOWN) {
                eprintln!(
                    "  figure {}: job {:?} seed {} diverged at step {} (network {} of the job)",
                    r.id, d.job, d.seed, d.step, d.member
                );
            }
            if r.divergences.len() > SHOWN {
                eprintln!("  ... and {} more", r.divergences.len() - SHOWN);
            }
        }
    }
    let mut failed = !surprising.is_empty();
    // Reported here: a figure with any was refused, unless its training diverged.
    let lint_problems: Vec<&lint::Problem> = run.reports.iter().flat_map(|r| &r.lint).collect();
    for problem in &lint_problems {
        eprintln!("lint: {problem}");
    }
    if !lint_problems.is_empty() {
        eprintln!(
            "lint: {} problem(s) in {} figure(s) (reported only: their trainings diverged)",
            lint_problems.len(),
            run.reports.iter().filter(|r| !r.lint.is_empty()).count(),
        );
    }
    if pipeline::interrupted() {
        // Ctrl-C after the last job finished: every job is cached.
        let jobs: usize = run.reports.iter().map(|r| r.jobs).sum();
        eprintln!("interrupted: every job ({jobs}) finished and is kept in the cache; nothing written");
        return Ok(ExitCode::from(INTERRUPTED));
    }
    if check {
        let problems = check::against_committed(&opts.out_dir, &run);
        for (id, diffs) in &problems {
            eprintln!("error: figure {id} differs from the committed {}/{id}.json:", opts.out_dir.display());
            for d in diffs {
                eprintln!("  - {d}");
            }
        }
        // The committed gallery's tables, as `cargo xtask lint` reads them.
        let gallery_path = opts.out_dir.join("README.md");
        if let Ok(text) = std::fs::read_to_string(&gallery_path) {
            let problems = lint::gallery(&text);
            for problem in &problems {
                eprintln!("lint: {problem}");
            }
            failed |= !problems.is_empty();
        }
        let orphans = check::orphans(paper, &opts.out_dir);
        for path in &orphans {
            eprintln!(
                "error: {} belongs to no figure of {} (removed or renamed?)",
                path.display(),
                spec_path.display()
            );
        }
        if problems.is_empty() && orphans.is_empty() {
            println!("check: {} figure(s) match the committed data and claims", run.figures.len());
        } else {
            eprintln!(
                "error: check failed: regenerate with `cargo xtask figures`, review with `git diff figures/`, and commit"
            );
            failed = true;
        }
    } else {
        pipeline::write(&opts.out_dir, &run)?;
        for path in check::remove_orphans(paper, &opts.out_dir)? {
            println!("removed {}: no figure of {} produces it", path.display(), spec_path.display());
        }
        gallery::write(&opts.out_dir, paper)?;
        println!(
            "wrote {} figure(s) to {}/ in {:.1}s",
            run.figures.len(),
            opts.out_dir.display(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `lint`: every committed figure of the spec (its JSON as written, drawn
/// at its sizes) and the gallery's tables, each problem on its own line;
/// exit status 1 when there is any. Trains nothing.
fn lint_committed(paper: &spec::Paper, out: &std::path::Path) -> Result<ExitCode> {
    let mut problems = Vec::new();
    let mut figures = 0;
    for fig in &paper.figures {
        let path = out.join(format!("{}.json", fig.id()));
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("note: {}: no committed figure data at {}; not linted", fig.id(), path.display());
            continue;
        };
        let data: learning_dynamics::figure::FigureData =
            serde_json::from_str(&text).with_context(|| format!("{} does not parse as figure data", path.display()))?;
        problems.extend(
            lint::figure(&data, &fig.render, &fig.publication).with_context(|| format!("linting {}", fig.id()))?,
        );
        figures += 1;
    }
    let gallery = out.join("README.md");
    match std::fs::read_to_string(&gallery) {
        Ok(text) => problems.extend(lint::gallery(&text)),
        Err(e) => eprintln!("note: cannot read the gallery {}: {e}; not linted", gallery.display()),
    }
    for problem in &problems {
        println!("{problem}");
    }
    let failing: std::collections::BTreeSet<&str> = problems.iter().map(|p| p.figure.as_str()).collect();
    println!(
        "lint: {} problem(s) in {} of {figures} figure(s) and the gallery (figure | panel | series | rule | what)",
        problems.len(),
        failing.len()
    );
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `figures --slurm`: the shards the cache lacks as one job array, then the
/// figures assembled from the cache (see `slurm.rs`).
fn figures_on_slurm(
    paper: &spec::Paper,
    spec_path: &std::path::Path,
    opts: &Options,
    args: SlurmArgs,
    reporter: &Reporter,
) -> Result<ExitCode> {
    use learning_dynamics::slurm;
    let cache = cache::Cache::open(&opts.cache_dir)?;
    pipeline::prepare_out_dir(&opts.out_dir)?;
    // What the previous submission left undone, before it is replaced.
    if let Some((last, prepared)) = slurm::last_submission(&opts.cache_dir) {
        for line in slurm::unfinished(&last.job, &prepared, &cache) {
            eprintln!("note: the previous submission left shards undone: {line}");
        }
    }
    let todo: Vec<_> = learning_dynamics::status::plan(paper, &opts.only, &opts.cache_dir, opts.force)?
        .into_iter()
        .filter(|s| !s.cached)
        .collect();
    let absolute =
        |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string();
    let assemble = format!(
        "cargo xtask --spec {} figures --assemble-only --cache-dir {} --out {}{}",
        absolute(spec_path),
        absolute(&opts.cache_dir),
        absolute(&opts.out_dir),
        opts.only.iter().map(|id| format!(" --only {id}")).collect::<String>()
    );
    if !todo.is_empty() {
        let submit = slurm::Submit {
            partition: args.partition,
            time: args.time_limit,
            tasks: args.array_tasks,
            cpus_per_task: args.cpus_per_task,
            sbatch_args: args.sbatch_arg,
        };
        let assignment = slurm::Assignment { force: opts.force, tasks: slurm::assign(&todo, submit.tasks) };
        let prepared = slurm::prepare(spec_path, &opts.cache_dir, assignment, &submit)?;
        let tasks = prepared.assignment.tasks.len();
        let compute: f64 = prepared.assignment.shards().map(|s| s.estimate_seconds).sum();
        let what = format!("{tasks} task(s) for {} shard(s), about {} of compute", todo.len(), seconds(compute));
        if let Some(file) = args.emit_sbatch {
            let file = from_caller(file);
            std::fs::copy(&prepared.script, &file).with_context(|| format!("writing {}", file.display()))?;
            println!("wrote {}: a job array of {what}", file.display());
            println!("submit it with: sbatch {}", file.display());
            println!("then assemble the figures with: {assemble}");
            return Ok(ExitCode::SUCCESS);
        }
        let job = slurm::submit(&prepared)?;
        slurm::remember(&opts.cache_dir, &job, &prepared)?;
        println!("submitted array job {job}: {what}; logs in {}", prepared.dir.join("logs").display());
        if args.no_wait {
            println!("when it is done (squeue -j {job}), assemble the figures with: {assemble}");
            return Ok(ExitCode::SUCCESS);
        }
        let bar = reporter.terminal.then(|| {
            let bar = ProgressBar::new(todo.len() as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} Slurm array {prefix}: {pos}/{len} shards [{bar:30}] {msg}, {elapsed}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(job.clone());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let last = std::sync::Mutex::new(None);
        let waited = slurm::wait(&job, &prepared, &cache, Duration::from_secs(2), &|w| {
            if let Some(trouble) = &w.trouble {
                match &bar {
                    Some(bar) => bar.println(format!("warning: {trouble}")),
                    None => eprintln!("warning: {trouble}"),
                }
                return;
            }
            match &bar {
                Some(bar) => {
                    bar.set_position(w.shards_done as u64);
                    bar.set_message(format!("{} task(s) queued or running", w.tasks_left));
                }
                None if last.lock().unwrap().as_ref() != Some(&w) => {
                    eprintln!(
                        "  {}/{} shards in the cache, {} task(s) queued or running",
                        w.shards_done, w.shards, w.tasks_left
                    );
                }
                None => {}
            }
            *last.lock().unwrap() = Some(w);
        });
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        waited?;
        let undone = slurm::unfinished(&job, &prepared, &cache);
        if !undone.is_empty() {
            for line in &undone {
                eprintln!("error: {line}");
            }
            eprintln!(
                "error: nothing written; the finished shards are kept in the cache: run the same command again to \
                 train exactly the missing ones"
            );
            return Ok(ExitCode::from(2));
        }
        println!("array job {job} done: every shard is in the cache; assembling the figures");
    }
    let assemble_opts = Options { train: false, force: false, ..opts.clone() };
    figures(paper, spec_path, &assemble_opts, false, reporter)
}

fn print_plan(plan: &[learning_dynamics::status::ShardPlan], json: bool) {
    if json {
        for shard in plan {
            println!("{}", serde_json::to_string(shard).expect("plans serialize"));
        }
        return;
    }
    let rows: Vec<[String; 6]> = plan
        .iter()
        .map(|s| {
            let estimate = match (s.cached, s.estimate_seconds) {
                (true, _) => "cached".to_string(),
                (false, Some(t)) => format!(
                    "{}{}",
                    seconds(t),
                    if s.estimate_from == Some(pipeline::Estimate::Model) { " (m)" } else { "" }
                ),
                (false, None) => "?".to_string(),
            };
            let networks = if s.networks == s.of {
                s.of.to_string()
            } else {
                format!("{}-{} of {}", s.members[0], s.members[1] - 1, s.of)
            };
            [
                s.figure.clone(),
                s.job.clone(),
                networks,
                s.key[..12].to_string(),
                estimate,
                s.why.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["figure", "job", "networks", "shard key", "estimate", "why"].map(String::from);
    let width = |c: usize| rows.iter().chain([&header]).map(|r| r[c].len()).max().unwrap_or(0);
    let (w0, w1, w2, w3, w4) = (width(0), width(1), width(2), width(3), width(4));
    for r in [&header].into_iter().chain(&rows) {
        println!("{:<w0$}  {:<w1$}  {:>w2$}  {:<w3$}  {:>w4$}  {}", r[0], r[1], r[2], r[3], r[4], r[5]);
    }
    let todo: Vec<_> = plan.iter().filter(|s| !s.cached).collect();
    let total = todo.iter().filter_map(|s| s.estimate_seconds).fold(0.0, |a, b| a + b);
    let jobs: std::collections::BTreeSet<&str> = plan.iter().map(|s| s.job_key.as_str()).collect();
    println!(
        "{} of {} shards ({} jobs) to train, about {} of compute on one core ((m): modelled, not recorded{})",
        todo.len(),
        plan.len(),
        jobs.len(),
        seconds(total),
        match todo.iter().filter(|s| s.estimate_seconds.is_none()).count() {
            0 => String::new(),
            n => format!("; {n} without an estimate"),
        }
    );
}

/// A duration for people: "0.3s", "12s", "3.5 min".
fn seconds(s: f64) -> String {
    match s {
        s if s < 10.0 => format!("{s:.1}s"),
        s if s < 120.0 => format!("{s:.0}s"),
        s => format!("{:.1} min", s / 60.0),
    }
}

fn status(
    paper: &spec::Paper,
    only: &[String],
    out: &std::path::Path,
    cache_dir: &std::path::Path,
    json: bool,
) -> Result<ExitCode> {
    use learning_dynamics::pipeline::Status as State;
    let statuses = learning_dynamics::status::statuses(paper, only, out, cache_dir)?;
    for s in &statuses {
        if json {
            println!("{}", serde_json::to_string(s)?);
            continue;
        }
        let state = match s.state {
            State::Current => "current",
            State::Stale => "STALE",
            State::Missing => "MISSING",
        };
        println!("{:<22} {state}", s.id);
        for reason in &s.reasons {
            println!("    {reason}");
        }
        if s.uncached > 0 && s.state != State::Current {
            let unknown = if s.unestimated > 0 {
                format!(" (+{} shard(s) without an estimate)", s.unestimated)
            } else {
                String::new()
            };
            println!(
                "    regenerating trains {} shard(s): about {:.0}s of compute{unknown}",
                s.uncached, s.estimate_seconds
            );
        }
    }
    let behind = statuses.iter().filter(|s| s.state != State::Current).count();
    if !json {
        if behind == 0 {
            println!("all {} figure(s) current", statuses.len());
        } else {
            println!(
                "{behind} of {} figure(s) stale or missing: `cargo xtask figures` regenerates them",
                statuses.len()
            );
        }
    }
    Ok(if behind == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print_table(reports: &[pipeline::FigureReport]) {
    let mut rows =
        vec![["figure", "evidence", "consistency", "findings", "failed", "diverged", "compute", "cache"]
            .map(String::from)];
    for r in reports {
        // Passed of all, per class; a finding counts while it fails as declared.
        let of_class = |class: ClaimClass| {
            let claims: Vec<_> = r.claims.iter().filter(|c| c.class == class).collect();
            let good = claims.iter().filter(|c| !c.surprising()).count();
            if claims.is_empty() {
                "-".to_string()
            } else {
                format!("{good}/{}", claims.len())
            }
        };
        let unexpected = r.claims.iter().filter(|c| c.surprising()).count();
        let cache = match (r.cached, r.jobs) {
            (c, j) if c == j => "all cached".to_string(),
            (0, _) => "computed".to_string(),
            (c, j) => format!("{c}/{j} cached"),
        };
        let damaged = if r.damaged.is_empty() {
            String::new()
        } else {
            format!(", {} damaged entry(ies) recomputed", r.damaged.len())
        };
        rows.push([
            r.id.clone(),
            of_class(ClaimClass::Evidence),
            of_class(ClaimClass::Consistency),
            of_class(ClaimClass::Finding),
            unexpected.to_string(),
            r.divergences.len().to_string(),
            format!("{:.2}s", r.compute.as_secs_f64()),
            format!("{cache}{damaged}"),
        ]);
    }
    // Every column as wide as its widest cell: names left, numbers right.
    let widths: Vec<usize> = (0..8).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    for r in &rows {
        let mut line = format!("{:<w$}", r[0], w = widths[0]);
        for (cell, w) in r[1..7].iter().zip(&widths[1..7]) {
            line.push_str(&format!("  {cell:>w$}"));
        }
        println!("{line}  {}", r[7]);
    }
    println!("claims: {}", learning_dynamics::figure::class_counts(reports.iter().flat_map(|r| &r.claims)));
}

/// What `cite` prints besides the short form.
struct CiteAs {
    full: bool,
    bibtex: bool,
    keys: bool,
}

/// The paper this repository reproduces, as BibTeX.
const PAPER_BIBTEX: &str = "\
@article{tachetdescombes2018learning,
  title         = {On the Learning Dynamics of Deep Neural Networks},
  author        = {Tachet des Combes, R{\\'e}mi and Pezeshki, Mohammad and Shabanian, Samira and Courville, Aaron and Bengio, Yoshua},
  journal       = {arXiv preprint arXiv:1809.06848},
  year          = {2018},
  eprint        = {1809.06848},
  archivePrefix = {arXiv},
  primaryClass  = {cs.LG},
  doi           = {10.48550/arXiv.1809.06848},
  url           = {https://arxiv.org/abs/1809.06848}
}";

/// Short by default: the figure, its key, the commit of its committed data,
/// whether that is stale, how to regenerate it and a digest of its config,
/// all read from the figure's JSON and the key the code gives it now
/// (`pipeline::status`). `--full` adds the config; `--bibtex` prints citations.
fn cite(paper: &spec::Paper, id: &str, out: &std::path::Path, how: CiteAs) -> Result<ExitCode> {
    let fig = pipeline::select(paper, &[id.to_string()])?[0];
    let (committed, status, key) = pipeline::status(fig, out);
    let (head, dirty) = provenance::git_state();
    let json = out.join(format!("{}.json", fig.id()));
    // The commit to cite holds both the code and the data: this tree's HEAD when the data is
    // current and the tree clean; else the last commit of the data file (the commit recorded
    // inside it is where it was made, usually from a work tree not yet committed).
    let (commit, cited_key) = match &committed {
        Some(_) if status == pipeline::Status::Current && !dirty => (head.clone(), key.clone()),
        Some(d) => (git_last_commit(&json).unwrap_or_else(|| d.provenance.commit.clone()), d.provenance.key.clone()),
        None => (head.clone(), key.clone()),
    };
    #[derive(serde::Serialize)]
    struct Resolved<'a> {
        figure: [&'a spec::FigureSpec; 1],
    }
    let config = toml::to_string(&Resolved { figure: [fig] })?;
    let digest = provenance::hash_json(&serde_json::Value::String(config.clone()));
    let regenerate = format!("git checkout {commit} && cargo xtask figures --only {}", fig.id());
    let state = match status {
        pipeline::Status::Current => "current (its data is what this tree's code and spec compute)".to_string(),
        pipeline::Status::Stale => format!(
            "STALE: {} was made by other code, config or claims than this tree's (key now {key})",
            json.display()
        ),
        pipeline::Status::Missing => format!("missing: no figure data at {}", json.display()),
    };
    if how.bibtex {
        let short = &commit[..commit.len().min(12)];
        println!("{PAPER_BIBTEX}\n");
        println!("@software{{learningdynamics_{}_{short},", fig.id().replace('-', "_"));
        println!("  title   = {{Learning dynamics of deep networks: a reproducible figure pipeline}},");
        println!("  author  = {{{{The learning-dynamics contributors}}}},");
        // The year of the figure's commit (none outside a git checkout).
        if let Some(year) = git_year(&commit) {
            println!("  year    = {{{year}}},");
        }
        println!("  version = {{{commit}}},");
        if let Some(url) = git_remote() {
            println!("  url     = {{{url}}},");
        }
        println!(
            "  note    = {{Figure {} ({}), figure key {cited_key}; regenerate with: git checkout {short} \\&\\& cargo xtask figures --only {}}}",
            fig.id(),
            bibtex_escape(&fig.title),
            fig.id()
        );
        println!("}}");
    } else {
        println!("figure:     {} ({})", fig.id(), fig.title);
        println!("key:        {cited_key}");
        println!("commit:     {commit}");
        println!("status:     {state}");
        println!("regenerate: {regenerate}");
        println!("config:     sha256 {digest} (print it with --full)");
        if how.keys {
            println!("code fingerprint: {}", provenance::figure_fingerprint());
            println!("job fingerprint:  {}", provenance::job_fingerprint(fig.experiment.files()));
            for job in pipeline::plan(&[fig]) {
                println!("job key:          {}  {}", job.key, job.job.name);
                if job.shards.len() > 1 {
                    for s in &job.shards {
                        println!("  shard key:      {}  {}", s.key, pipeline::networks(&s.members, None));
                    }
                }
            }
        }
        if how.full {
            println!("\nresolved config (the figure's table of the spec):\n\n{config}");
        }
    }
    if status != pipeline::Status::Current {
        eprintln!("warning: {} is {state}; regenerate it before citing", fig.id());
    } else if dirty && committed.is_none() {
        eprintln!("warning: the work tree is dirty: commit before citing");
    }
    Ok(ExitCode::SUCCESS)
}

/// The year of a commit (for BibTeX), from git.
fn git_year(commit: &str) -> Option<String> {
    let out = std::process::Command::new("git").args(["show", "-s", "--format=%cs", commit]).output().ok()?;
    let date = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && date.len() >= 4).then(|| date[..4].to_string())
}

/// The last commit that changed `path`, if git knows it.
fn git_last_commit(path: &std::path::Path) -> Option<String> {
    let out = std::process::Command::new("git").args(["log", "-1", "--format=%H", "--"]).arg(path).output().ok()?;
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}

/// Where this repository is published, if its git remote says: as an https
/// address, without any user name or token an address may carry
/// (`https://user:token@host/...`), and `git@host:owner/repo` made https.
fn git_remote() -> Option<String> {
    let out = std::process::Command::new("git").args(["remote", "get-url", "origin"]).output().ok()?;
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || url.is_empty() {
        return None;
    }
    Some(public_url(&url))
}

fn public_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let rest = rest.split_once('@').filter(|(user, _)| !user.contains('/')).map_or(rest, |(_, host)| host);
        return format!("{scheme}://{rest}");
    }
    // scp-like: user@host:path
    match url.split_once('@').and_then(|(_, r)| r.split_once(':')) {
        Some((host, path)) => format!("https://{host}/{path}"),
        None => url.to_string(),
    }
}

/// BibTeX's special characters escaped.
fn bibtex_escape(text: &str) -> String {
    text.chars()
        .map(|c| if matches!(c, '&' | '%' | '_' | '#' | '$') { format!("\\{c}") } else { c.to_string() })
        .collect()
}

/// `cache`: its size and what it holds, by figure and job; with `gc`, first
/// removes every entry that no job of the spec uses (keys are planned from
/// the spec and this tree's code, as a run would).
fn show_cache(paper: &spec::Paper, dir: &std::path::Path, gc: bool) -> Result<ExitCode> {
    let cache = cache::Cache::open(dir)?;
    let figures: Vec<&spec::FigureSpec> = paper.figures.iter().collect();
    let planned = pipeline::plan(&figures);
    let used = |key: &str| planned.iter().flat_map(|p| &p.shards).any(|s| s.key == key);
    let entries = cache.entries()?;
    let mb = |b: u64| preflight::bytes(b as f64);
    if gc {
        // Finished Slurm runs first: the entries that prove them finished may be removed next.
        let finished: Vec<_> =
            learning_dynamics::slurm::run_dirs(dir, &cache).into_iter().filter(|r| r.finished).collect();
        for run in &finished {
            std::fs::remove_dir_all(&run.dir).with_context(|| format!("cannot remove {}", run.dir.display()))?;
        }
        if !finished.is_empty() {
            let freed = finished.iter().map(|r| r.bytes).sum::<u64>();
            println!("removed {} finished Slurm run director(ies), {}", finished.len(), mb(freed));
        }
        let (mut removed, mut freed) = (0, 0);
        for (key, size) in entries.iter().filter(|(k, _)| !used(k)) {
            cache.remove(key)?;
            removed += 1;
            freed += size;
        }
        println!("removed {removed} unused entr(ies), {}, from {}", mb(freed), dir.display());
    }
    let entries = cache.entries()?;
    let size = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, s)| *s);
    let total: u64 = entries.iter().map(|(_, s)| s).sum();
    println!("cache {}: {} entr(ies), {}", dir.display(), entries.len(), mb(total));
    for (f, fig) in figures.iter().enumerate() {
        let jobs: Vec<_> = planned.iter().filter(|p| p.figure == f).collect();
        let shards: Vec<(&pipeline::PlannedJob, &pipeline::Shard)> =
            jobs.iter().flat_map(|&p| p.shards.iter().map(move |s| (p, s))).collect();
        let cached: Vec<u64> = shards.iter().filter_map(|(_, s)| size(&s.key)).collect();
        println!("{}: {}/{} shard(s) cached, {}", fig.id(), cached.len(), shards.len(), mb(cached.iter().sum()));
        for (p, s) in shards {
            let part = if s.members.len() == p.job.members() {
                String::new()
            } else {
                format!(" ({})", pipeline::networks(&s.members, Some(p.job.members())))
            };
            let size = size(&s.key).map_or_else(|| "missing".to_string(), mb);
            println!("  {size:>9}  {}  {}{part}", &s.key[..12], p.job.name);
        }
    }
    for run in learning_dynamics::slurm::run_dirs(dir, &cache) {
        let state = if run.finished { "finished (removed by `cargo xtask cache gc`)" } else { "unfinished, kept" };
        println!("Slurm run directory {}: {}, {state}", run.dir.display(), mb(run.bytes));
    }
    let unused: Vec<u64> = entries.iter().filter(|(k, _)| !used(k)).map(|(_, s)| *s).collect();
    if !unused.is_empty() {
        println!(
            "unused by any job of the spec: {} entr(ies), {} (old code or configs; remove with `cargo xtask cache gc`)",
            unused.len(),
            mb(unused.iter().sum())
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cited_address_carries_no_credentials() {
        assert_eq!(public_url("https://user:token@github.com/o/r.git"), "https://github.com/o/r.git");
        assert_eq!(public_url("https://github.com/o/r"), "https://github.com/o/r");
        assert_eq!(public_url("git@github.com:o/r.git"), "https://github.com/o/r.git");
        assert_eq!(bibtex_escape("a & b_c 50%"), "a \\& b\\_c 50\\%");
    }
}
