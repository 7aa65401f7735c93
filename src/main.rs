//! `paper-figures`: regenerate, check and cite the paper's figures.
//! Usually run through `cargo xtask`, which builds it in release mode.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use learning_dynamics::figure::ClaimClass;
use learning_dynamics::pipeline::{self, Event, Options};
use learning_dynamics::{cache, check, engine, gallery, provenance, spec};

#[derive(Parser)]
#[command(
    name = "paper-figures",
    about = "Reproducible figures for 'On the Learning Dynamics of Deep Neural Networks' (arXiv:1809.06848)",
    long_about = "Reads the figure specifications (paper.toml), trains every figure's networks with Candle \
                  (results cached under a hash of config, seeds and code), checks the paper's claims on the \
                  measured data and renders figures/<id>.svg and figures/<id>.json."
)]
struct Cli {
    /// The figure specification file.
    #[arg(long, global = true, default_value = "paper.toml")]
    spec: PathBuf,
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
        /// Where figures are written.
        #[arg(long, default_value = "figures")]
        out: PathBuf,
        /// Where job results are cached.
        #[arg(long, default_value = "target/figure-cache")]
        cache_dir: PathBuf,
        /// Jobs trained side by side (default: the number of cores).
        #[arg(long)]
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
    },
    /// Print what a paper or lab notebook needs to cite one figure exactly.
    Cite {
        /// The figure id.
        id: String,
        /// Where the committed figures are.
        #[arg(long, default_value = "figures")]
        out: PathBuf,
        /// Also print the code fingerprint of the figure's jobs and each job's cache key.
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
        /// Where the committed figures are.
        #[arg(long, default_value = "figures")]
        out: PathBuf,
        /// Where job results are cached.
        #[arg(long, default_value = "target/figure-cache")]
        cache_dir: PathBuf,
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
        /// Where job results are cached.
        #[arg(long, default_value = "target/figure-cache")]
        cache_dir: PathBuf,
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
        /// Where the committed figures are.
        #[arg(long, default_value = "figures")]
        out: PathBuf,
    },
}

/// The exit status of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    engine::pin_candle_threads();
    match run() {
        Ok(code) => code,
        Err(e) => match e.downcast_ref::<pipeline::Interrupted>() {
            Some(stopped) => {
                eprintln!("{stopped}");
                ExitCode::from(INTERRUPTED)
            }
            None => {
                eprintln!("error: {e:#}");
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
    let paper = spec::load(&cli.spec)?;
    match cli.command {
        Command::List { out } => {
            for (fig, _, status) in pipeline::statuses(&paper, &out) {
                println!("{}  ({}, {status})\n  {}", fig.id(), fig.experiment.name(), fig.title);
                for c in &fig.claims {
                    let class = match c.class {
                        ClaimClass::Evidence => "claim",
                        ClaimClass::Consistency => "consistency check",
                    };
                    let mark = if c.holds { "" } else { " (marked not holding)" };
                    println!("    {class}{mark}: {}", c.name);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cite { id, out, keys } => cite(&paper, &id, &out, keys),
        Command::Status { only, out, cache_dir, json } => status(&paper, &only, &out, &cache_dir, json),
        Command::Plan { only, cache_dir, force, json } => {
            print_plan(&learning_dynamics::status::plan(&paper, &only, &cache_dir, force)?, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Figures { dry_run: true, force, only, out, cache_dir, .. } => {
            print_plan(&learning_dynamics::status::plan(&paper, &only, &cache_dir, force)?, false);
            println!();
            status(&paper, &only, &out, &cache_dir, false)
        }
        Command::Figures { check, force, only, out, cache_dir, jobs, json_events, .. } => {
            let threads = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let opts = Options { out_dir: out, cache_dir, only, force, threads };
            // Job lines line up under the longest names of this run's figures and jobs.
            let selected = pipeline::select(&paper, &opts.only)?;
            let planned = pipeline::plan(&selected);
            let widths = (
                selected.iter().map(|f| f.id().len()).max().unwrap_or(0),
                planned.iter().map(|p| p.job.name.len()).max().unwrap_or(0),
            );
            let reporter = Reporter {
                json: json_events,
                terminal: std::io::stderr().is_terminal(),
                bar: OnceLock::new(),
                widths,
                done: std::sync::Mutex::new((0, 0)),
            };
            stop_on_signals()?;
            figures(&paper, &cli.spec, &opts, check, &reporter)
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
    /// Jobs trained, of how many.
    done: std::sync::Mutex<(usize, usize)>,
}

impl Reporter {
    fn report(&self, event: Event) {
        if self.json {
            eprintln!("{}", serde_json::to_string(&event).expect("events serialize"));
            return;
        }
        match event {
            Event::DamagedCacheEntry { figure, job, why } => {
                self.line(format!("warning: damaged cache entry for {figure} / {job}: {why}; recomputing"))
            }
            Event::TrainingStarts { jobs, seconds, .. } => {
                *self.done.lock().unwrap() = (0, jobs);
                if self.terminal {
                    let bar = ProgressBar::new((seconds * 1000.0).ceil() as u64);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} training: {msg} jobs [{bar:30}] {percent:>3}% of the estimated work, \
                             {elapsed} elapsed, about {eta} left",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    bar.set_message(format!("0/{jobs}"));
                    bar.enable_steady_tick(Duration::from_millis(200));
                    let _ = self.bar.set(bar);
                }
            }
            Event::JobStarts { .. } => {}
            Event::JobTrained { figure, job, networks, seconds, why, estimate, .. } => {
                let (done, jobs) = {
                    let mut done = self.done.lock().unwrap();
                    done.0 += 1;
                    *done
                };
                if let Some(bar) = self.bar.get() {
                    bar.inc((estimate * 1000.0).ceil() as u64);
                    bar.set_message(format!("{done}/{jobs}"));
                }
                let (fw, jw) = self.widths;
                self.line(format!("  {figure:<fw$}  {job:<jw$}  {networks:>5} nets  {seconds:>7.2}s  ({why})"));
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
            eprintln!("claim {what}: {} / {}: {} (expected {})", r.id, c.name, c.detail, c.expected);
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
    if pipeline::interrupted() {
        // Ctrl-C after the last job finished: every job is cached.
        let jobs: usize = run.reports.iter().map(|r| r.jobs).sum();
        eprintln!("interrupted: every job ({jobs}) finished and is kept in the cache; nothing written");
        return Ok(ExitCode::from(INTERRUPTED));
    }
    if check {
        let problems = check::against_committed(&opts.out_dir, &run);
        for (id, diffs) in &problems {
            eprintln!("figure {id} differs from the committed {}/{id}.json:", opts.out_dir.display());
            for d in diffs {
                eprintln!("  - {d}");
            }
        }
        let orphans = check::orphans(paper, &opts.out_dir);
        for path in &orphans {
            eprintln!("{} belongs to no figure of {} (removed or renamed?)", path.display(), spec_path.display());
        }
        if problems.is_empty() && orphans.is_empty() {
            println!("check: {} figure(s) match the committed data and claims", run.figures.len());
        } else {
            eprintln!(
                "check failed: regenerate with `cargo xtask figures`, review with `git diff figures/`, and commit"
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

fn print_plan(plan: &[learning_dynamics::status::JobPlan], json: bool) {
    if json {
        for job in plan {
            println!("{}", serde_json::to_string(job).expect("plans serialize"));
        }
        return;
    }
    println!("{:<22} {:<30} {:>5} {:<12} {:>10}  why", "figure", "job", "nets", "key", "estimate");
    for j in plan {
        let estimate = match (j.cached, j.estimate_seconds) {
            (true, _) => "cached".to_string(),
            (false, Some(s)) => format!(
                "{} {}",
                seconds(s),
                if j.estimate_from == Some(pipeline::Estimate::Model) { "(m)" } else { "" }
            ),
            (false, None) => "?".to_string(),
        };
        println!(
            "{:<22} {:<30} {:>5} {:<12} {:>10}  {}",
            j.figure,
            j.job,
            j.networks,
            &j.key[..12],
            estimate,
            j.why.as_deref().unwrap_or("")
        );
    }
    let todo: Vec<_> = plan.iter().filter(|j| !j.cached).collect();
    let total = todo.iter().filter_map(|j| j.estimate_seconds).fold(0.0, |a, b| a + b);
    println!(
        "{} of {} jobs to train, about {} of compute ((m): modelled, not recorded{})",
        todo.len(),
        plan.len(),
        seconds(total),
        match todo.iter().filter(|j| j.estimate_seconds.is_none()).count() {
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
    use learning_dynamics::status::State;
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
                format!(" (+{} job(s) without an estimate)", s.unestimated)
            } else {
                String::new()
            };
            println!(
                "    regenerating trains {} job(s): about {:.0}s of compute{unknown}",
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
    let mut rows = vec![["figure", "claims", "failed", "diverged", "compute", "cache"].map(String::from)];
    for r in reports {
        let passed = r.claims.iter().filter(|c| c.passed).count();
        let unexpected = r.claims.iter().filter(|c| c.surprising()).count();
        let known = r.claims.iter().filter(|c| !c.passed && !c.expected_to_pass).count();
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
        let failed = if known > 0 { format!("{unexpected} (+{known} known)") } else { unexpected.to_string() };
        rows.push([
            r.id.clone(),
            format!("{passed}/{}", r.claims.len()),
            failed,
            r.divergences.len().to_string(),
            format!("{:.2}s", r.compute.as_secs_f64()),
            format!("{cache}{damaged}"),
        ]);
    }
    // Every column as wide as its widest cell: names left, numbers right.
    let width = |c: usize| rows.iter().map(|r| r[c].len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..6).map(width).collect();
    for r in &rows {
        println!(
            "{:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4]
        );
    }
}

fn cite(paper: &spec::Paper, id: &str, out: &std::path::Path, keys: bool) -> Result<ExitCode> {
    let fig = pipeline::select(paper, &[id.to_string()])?[0];
    let jobs = pipeline::plan(&[fig]);
    let key = pipeline::figure_key(fig, &jobs.iter().collect::<Vec<_>>());
    let fingerprint = provenance::figure_fingerprint();
    let (commit, dirty) = provenance::git_state();
    #[derive(serde::Serialize)]
    struct Resolved<'a> {
        figure: [&'a spec::FigureSpec; 1],
    }
    let config = toml::to_string(&Resolved { figure: [fig] })?;
    println!("figure:           {} ({})", fig.id(), fig.title);
    println!("cache key:        {key}");
    println!("code fingerprint: {fingerprint}");
    println!("commit:           {commit}{}", if dirty { " (work tree dirty: commit before citing)" } else { "" });
    println!("toolchain:        {}", provenance::TOOLCHAIN);
    println!("seeds:            {:?}", fig.experiment.kind().seeds());
    if keys {
        println!("job fingerprint:  {}", provenance::job_fingerprint(fig.experiment.files()));
        for job in &jobs {
            println!("job key:          {}  {}", job.key, job.job.name);
        }
    }
    let committed = out.join(format!("{}.json", fig.id()));
    match std::fs::read_to_string(&committed).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()) {
        Some(v) if v["provenance"]["key"] == key => println!("committed data:   {} (same key)", committed.display()),
        Some(_) => println!("committed data:   {} is STALE (different key): regenerate it", committed.display()),
        None => println!("committed data:   none at {}", committed.display()),
    }
    println!("regenerate:       git checkout {commit} && cargo xtask figures --only {}", fig.id());
    println!("\nresolved config (paper.toml):\n\n{config}");
    if dirty {
        eprintln!("warning: the work tree is dirty: the commit above does not hold the code that would run");
    }
    Ok(ExitCode::SUCCESS)
}
