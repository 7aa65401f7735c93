//! The flow: spec -> plan (jobs with keys) -> cache or train -> assemble ->
//! claims -> render -> figures/<id>.{json,svg}, or a comparison with them.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::cache::{Cache, Lookup};
use crate::engine::TrainLog;
use crate::figure::{ClaimResult, Divergence, FigureBody, FigureData, Provenance};
use crate::kinds::{self, Job, Kind};
use crate::records::{self, JobRecord};
use crate::spec::{FigureSpec, Paper, PublicationSpec};
use crate::{claims, files, lint, provenance, publication, render};

/// Bump when the meaning of a cached result changes without its code changing.
const CACHE_FORMAT: u32 = 1;

#[derive(Debug, Clone)]
pub struct Options {
    pub out_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// Figure ids to run; empty = all.
    pub only: Vec<String>,
    /// Recompute even where the cache has a result.
    pub force: bool,
    /// Shards trained side by side.
    pub threads: usize,
    /// Train what the cache lacks (the usual run). Off, a missing shard is an
    /// error naming it: the figures are assembled from the cache alone, as
    /// after a cluster computed the shards (`slurm.rs`).
    pub train: bool,
    /// Refuse a figure with lint problems (`lint`), as `figure_body` refuses a
    /// misleading legend; off, they are only reported. On for every run of
    /// the command line; the library's tests turn it off where their small
    /// configs draw curves on one another (the lint has its own tests).
    pub refuse_lint: bool,
    /// A remote cache to read through (and write to), shared by machines with
    /// no common disk (`remote.rs`); none by default.
    pub remote_cache: Option<RemoteCache>,
}

/// Where the remote cache is and how this run uses it.
#[derive(Debug, Clone)]
pub struct RemoteCache {
    /// http:// or https://: the directory the entries live in.
    pub url: String,
    /// Store what this run computes there too (off: read only).
    pub write: bool,
    /// For each request as a whole.
    pub timeout: Duration,
}

impl RemoteCache {
    pub fn open(&self) -> Result<crate::remote::Remote> {
        crate::remote::Remote::new(&self.url, self.write, self.timeout)
    }
}

/// What a run reports while it works, in order. The library prints nothing:
/// the binary shows these (a progress bar, or JSON lines for scripts) and
/// tests collect them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A cache entry could not be read; its job is trained again.
    DamagedCacheEntry { figure: String, job: String, why: String },
    /// The remote cache failed a request (down, slow, refusing a write); the
    /// run goes on without it, training what it lacks.
    RemoteCacheProblem { why: String },
    /// Training begins for the shards the cache did not have; `seconds`: their
    /// estimated compute (`estimate_seconds`), the total a progress bar fills.
    TrainingStarts { shards: usize, networks: usize, seconds: f64 },
    /// One shard (networks `members` of a job of `of`) starts training (no shard
    /// starts once an interrupt is asked for); `why`: "new", "forced",
    /// "config changed: learning_rate", "code changed: src/x.rs", ...
    JobStarts { figure: String, job: String, members: [usize; 2], of: usize, why: String },
    /// One shard is trained and cached under `key`.
    /// `estimate`: its share of `TrainingStarts::seconds`.
    JobTrained {
        figure: String,
        job: String,
        key: String,
        members: [usize; 2],
        of: usize,
        networks: usize,
        seconds: f64,
        why: String,
        estimate: f64,
    },
}

/// A job with its key and its shards.
#[derive(Debug, Clone)]
pub struct PlannedJob {
    pub figure: usize,
    pub job: Job,
    /// Over what the result depends on (`job_key`); the figure's key covers it.
    pub key: String,
    /// The job's networks in consecutive ranges (`shard_ranges`), each trained
    /// and cached on its own; all of them together are the job.
    pub shards: Vec<Shard>,
    /// `modelled_operations_per_network`, computed once: it sizes the default
    /// shards and makes the estimate where no run was recorded.
    pub operations_per_network: Option<f64>,
}

/// Networks `members` of a job: the unit of caching and of parallelism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub members: Range<usize>,
    /// The cache key: the job's key and the range (`shard_key`).
    pub key: String,
}

/// How one figure's run went.
#[derive(Debug, Clone)]
pub struct FigureReport {
    pub id: String,
    pub jobs: usize,
    /// Jobs whose every shard was in the cache.
    pub cached: usize,
    pub shards: usize,
    pub cached_shards: usize,
    pub damaged: Vec<String>,
    pub compute: Duration,
    pub claims: Vec<ClaimResult>,
    /// Trainings that produced NaN or infinity (also in the figure's data).
    pub divergences: Vec<Divergence>,
    /// What a reader would trip over in the figure as drawn (`lint`); with
    /// `Options::refuse_lint`, a figure with any is refused instead, unless
    /// its training diverged.
    pub lint: Vec<lint::Problem>,
}

pub struct Run {
    pub figures: Vec<(FigureData, String)>,
    pub reports: Vec<FigureReport>,
    /// Each figure's publication size, in the order of `figures`.
    pub publication: Vec<PublicationSpec>,
}

/// Set (by a signal handler, see `main.rs`) to ask a run to stop: no job
/// starts after it is set, and `run` returns [`Interrupted`] once the running
/// ones finished. Finished jobs are in the cache.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false))).clone()
}

pub fn interrupted() -> bool {
    interrupt_flag().load(Ordering::SeqCst)
}

/// The error of a run stopped by [`interrupt_flag`]: what it kept.
#[derive(Debug)]
pub struct Interrupted {
    /// "figure / job (networks a-b)" of each shard finished and cached by this run.
    pub computed: Vec<String>,
    /// Shards that were already in the cache.
    pub already_cached: usize,
    /// Shards not run.
    pub skipped: usize,
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "interrupted: {} shard(s) not run, nothing written; kept in the cache for the next run: {} shard(s) computed now",
            self.skipped,
            self.computed.len()
        )?;
        for job in &self.computed {
            write!(f, "\n  kept: {job}")?;
        }
        write!(f, "\n  and {} shard(s) that were already cached", self.already_cached)
    }
}

impl std::error::Error for Interrupted {}

/// The figures selected by `--only` (all when empty), with a clear error for
/// an unknown id.
pub fn select<'a>(paper: &'a Paper, only: &[String]) -> Result<Vec<&'a FigureSpec>> {
    for id in only {
        if !paper.figures.iter().any(|f| f.id() == id) {
            let known: Vec<&str> = paper.figures.iter().map(|f| f.id()).collect();
            let hint = crate::suggest::nearest(id, known.iter().copied())
                .map_or(String::new(), |near| format!(" (did you mean `{near}`?)"));
            bail!("no figure with id {id:?}{hint}; the figures are: {}", known.join(", "));
        }
    }
    Ok(paper.figures.iter().filter(|f| only.is_empty() || only.iter().any(|id| id == f.id())).collect())
}

/// The cache key of a job: SHA-256 over the experiment kind, the job's
/// config, its seeds and the fingerprint of the code that computes it.
pub fn job_key(fig: &FigureSpec, job: &Job) -> String {
    provenance::hash_json(&json!({
        "format": CACHE_FORMAT,
        "kind": fig.experiment.name(),
        "job": job.name,
        "config": job.config,
        "seeds": job.seeds,
        "code": provenance::job_fingerprint(fig.experiment.files()),
    }))
}

/// What a job is now, as its record will say once `networks` of its networks
/// have run in `seconds` (a shard's): key, config, seeds and the hashes of its key's files.
pub fn job_record(fig: &FigureSpec, planned: &PlannedJob, networks: usize, seconds: f64) -> JobRecord {
    let table = provenance::source_files();
    let files = provenance::job_files(table, fig.experiment.files())
        .into_iter()
        .filter_map(|f| table.iter().find(|(p, _)| *p == f).map(|(p, h)| (p.to_string(), h.to_string())))
        .collect();
    JobRecord {
        figure: fig.id().to_string(),
        job: planned.job.name.clone(),
        key: planned.key.clone(),
        config: planned.job.config.clone(),
        seeds: planned.job.seeds.clone(),
        files,
        networks,
        seconds,
    }
}

/// Why a job the cache lacks runs: "forced", or what changed since its last record.
pub fn why_job_runs(fig: &FigureSpec, planned: &PlannedJob, cache_dir: &Path, force: bool) -> String {
    if force {
        return "forced".into();
    }
    let previous = records::read(cache_dir, fig.id(), &planned.job.name);
    records::why(previous.as_ref(), &job_record(fig, planned, planned.job.members(), 0.0))
}

/// Where an estimate of a job's compute came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Estimate {
    /// The recorded time of the last run of a shard of this figure, job name
    /// and config, scaled to this shard's number of networks.
    Recorded,
    /// A model: 6 operations per weight, point, network and step, at `MODEL_FLOPS`.
    Model,
}

/// Floating-point operations per second that the cost model assumes for the
/// engines on one core. A rough guide, fitted by eye to the job records of a
/// cold run on a 2-core machine, and shown as a model beside recorded times.
const MODEL_FLOPS: f64 = 4e9;

/// The modelled work of one network of the job, in floating-point operations
/// (6 per weight, point and step); None for a kind that trains outside the
/// engine. A pure function of the job: it sizes the default shards.
pub fn modelled_operations_per_network(fig: &FigureSpec, job: &Job) -> Option<f64> {
    let input = fig.experiment.kind().prepare_job(job).ok()?;
    let weights: usize = input.init.shapes.iter().map(|(o, i)| o * i).sum();
    let steps = *input.cfg.log_steps.last()? as f64;
    Some(6.0 * steps * (input.data.points * weights) as f64)
}

/// Seconds of compute one network of the job will take, and how that was
/// estimated (a shard of n networks: n times this); None for a kind that
/// trains outside the engine and has never been recorded.
pub fn estimate_seconds_per_network(
    fig: &FigureSpec,
    planned: &PlannedJob,
    cache_dir: &Path,
) -> Option<(f64, Estimate)> {
    let job = &planned.job;
    // A record of the same config (steps, sizes) but for the number of seeds only: other
    // seeds scale its time by the network count; another config, by something the model
    // knows better.
    let without_seeds = |config: &serde_json::Value| {
        let mut config = config.clone();
        if let Some(map) = config.as_object_mut() {
            map.remove("seed_count");
        }
        config
    };
    let record = records::read(cache_dir, fig.id(), &job.name)
        .filter(|r| r.seconds > 0.0 && without_seeds(&r.config) == without_seeds(&job.config));
    if let Some(r) = record {
        return Some((r.seconds / r.networks.max(1) as f64, Estimate::Recorded));
    }
    Some((planned.operations_per_network? / MODEL_FLOPS, Estimate::Model))
}

/// The modelled work of a default shard: about two seconds at `MODEL_FLOPS`,
/// enough to make the start of a shard (preparing the job) negligible, small
/// enough to spread one big job over every core and many nodes.
const DEFAULT_SHARD_OPERATIONS: f64 = 2.0 * MODEL_FLOPS;

/// Networks per shard of the job: the figure's `shard_size`, else as many
/// networks as make `DEFAULT_SHARD_OPERATIONS` of modelled work (one per shard
/// for a kind outside the engine's model); `operations_per_network` is
/// `modelled_operations_per_network`. A function of the job and the spec
/// alone, never of the machine, so shard keys are the same everywhere.
pub fn shard_size(fig: &FigureSpec, job: &Job, operations_per_network: Option<f64>) -> usize {
    let networks = job.members().max(1);
    let size = match fig.shard_size {
        Some(n) => n.usize(),
        None => match operations_per_network {
            Some(per_network) if per_network > 0.0 => (DEFAULT_SHARD_OPERATIONS / per_network).floor() as usize,
            _ => 1,
        },
    };
    size.clamp(1, networks)
}

/// The job's networks in consecutive ranges of `size` (the last may be shorter).
pub fn shard_ranges(networks: usize, size: usize) -> Vec<Range<usize>> {
    let size = size.max(1);
    (0..networks.div_ceil(size)).map(|i| i * size..((i + 1) * size).min(networks)).collect()
}

/// The cache key of networks `members` of the job with key `job_key`.
pub fn shard_key(job_key: &str, members: &Range<usize>) -> String {
    provenance::hash_json(&json!({ "job": job_key, "members": [members.start, members.end] }))
}

/// Every job of the figures, with its key and its shards.
pub fn plan(figures: &[&FigureSpec]) -> Vec<PlannedJob> {
    figures
        .iter()
        .enumerate()
        .flat_map(|(i, fig)| {
            kinds::numbered_jobs(fig.experiment.kind()).into_iter().map(move |job| {
                let key = job_key(fig, &job);
                // Prepares the job once (data and init), here only.
                let operations_per_network = modelled_operations_per_network(fig, &job);
                let shards = shard_ranges(job.members(), shard_size(fig, &job, operations_per_network))
                    .into_iter()
                    .map(|members| Shard { key: shard_key(&key, &members), members })
                    .collect();
                PlannedJob { figure: i, key, job, shards, operations_per_network }
            })
        })
        .collect()
}

/// The key of a whole figure's data: over its jobs' keys, the code (every
/// hashed file, including what assembles the figure and checks its claims)
/// and the claims themselves.
pub fn figure_key(fig: &FigureSpec, jobs: &[&PlannedJob]) -> String {
    provenance::hash_json(&json!({
        "jobs": jobs.iter().map(|j| &j.key).collect::<Vec<_>>(),
        "code": provenance::figure_fingerprint(),
        "claims": fig.claims,
        // The text too: a figure whose caption changed is not current.
        "title": fig.title,
        "caption": fig.caption.get_ref(),
        // And the publication width: --check compares the PDF and PNG byte for byte,
        // so a figure whose width changed is not current either.
        "publication": fig.publication,
    }))
}

/// One shard's training, as its kind runs it (`Kind::train`).
fn train_shard(fig: &FigureSpec, job: &Job, members: Range<usize>) -> Result<TrainLog> {
    let log = fig.experiment.kind().train(job, members.clone())?;
    ensure!(
        log.diverged_at.len() == members.len(),
        "job {:?}: networks {members:?} gave {} logs (a bug in its kind)",
        job.name,
        log.diverged_at.len(),
    );
    Ok(log)
}

/// The trainings of a job's log that produced NaN or infinity, for the
/// figure's `divergences`.
fn divergences(job: &Job, log: &TrainLog) -> Vec<Divergence> {
    log.diverged_at
        .iter()
        .enumerate()
        .filter_map(|(member, step)| {
            step.map(|step| Divergence { job: job.name.clone(), member, seed: job.member_seeds[member], step })
        })
        .collect()
}

/// A figure's data from its jobs' logs (in the order of `kind.jobs()`): the
/// kind assembles it, the pipeline adds the diverged trainings, checks that
/// every plotted number is finite, every series name unique and the legend
/// true to the drawing (`FigureBody::legend_problem`), and rounds.
pub fn figure_body(kind: &dyn Kind, jobs: &[&Job], logs: &[TrainLog]) -> Result<FigureBody> {
    ensure!(jobs.len() == logs.len(), "{} jobs, {} logs", jobs.len(), logs.len());
    for (job, log) in jobs.iter().zip(logs) {
        ensure!(log.diverged_at.len() == job.members(), "job {:?}: its log has another number of networks", job.name);
    }
    let mut body = kind.assemble(logs)?;
    ensure!(body.divergences.is_empty(), "the kind recorded divergences itself (the pipeline records them)");
    body.divergences = jobs.iter().zip(logs).flat_map(|(job, log)| divergences(job, log)).collect();
    if let Some(name) = body.duplicate_series() {
        bail!("two series are named {name:?} (a bug in its kind)");
    }
    // A figure whose legend misleads is not written: one colour and mark
    // means one thing, and every series drawn can be told from the legend.
    if let Some(why) = body.legend_problem() {
        bail!("{why} (a bug in its kind)");
    }
    if !body.divergences.is_empty() {
        // Diverged trainings are recorded (and shown); their non-finite
        // points are dropped from the plotted series rather than drawn,
        // and infinite scalars become undefined.
        body.drop_non_finite_points();
    }
    if let Some(what) = body.non_finite() {
        bail!("{what} holds a NaN or infinite value (a bug in its kind)");
    }
    body.round(6);
    Ok(body)
}

/// A shard of the plan: (its job's index in the plan, its index in the job).
pub type ShardAt = (usize, usize);

/// "figure / job (networks a-b of n)": a shard in words.
pub fn shard_name(figures: &[&FigureSpec], planned: &[PlannedJob], (j, s): ShardAt) -> String {
    let p = &planned[j];
    let members = &p.shards[s].members;
    let of =
        if p.shards.len() == 1 { String::new() } else { format!(" ({})", networks(members, Some(p.job.members()))) };
    format!("{} / {}{of}", figures[p.figure].id(), p.job.name)
}

/// "networks a-b" (the last included), and " of n" where the job's size is given.
pub fn networks(members: &Range<usize>, of: Option<usize>) -> String {
    let of = of.map_or(String::new(), |n| format!(" of {n}"));
    format!("networks {}-{}{of}", members.start, members.end - 1)
}

/// Trains the shards `todo` side by side on `opts.threads` threads, each
/// cached (and its record written) as soon as it is done. Returns each
/// shard's log in the order of `todo`, None for one not started because of
/// an interrupt, and each one's training time; the first error if any failed.
pub fn train_shards(
    figures: &[&FigureSpec],
    planned: &[PlannedJob],
    todo: &[ShardAt],
    cache: &Cache,
    opts: &Options,
    report: &(dyn Fn(Event) + Sync),
) -> Result<Vec<Option<(TrainLog, Duration)>>> {
    // For the progress bar: a shard without an estimate counts as the mean of the others (1 s if none has one).
    let mut per_network: std::collections::BTreeMap<usize, Option<f64>> = std::collections::BTreeMap::new();
    let known: Vec<Option<f64>> = todo
        .iter()
        .map(|&(j, s)| {
            let p = &planned[j];
            let per = *per_network
                .entry(j)
                .or_insert_with(|| estimate_seconds_per_network(figures[p.figure], p, &opts.cache_dir).map(|(s, _)| s));
            per.map(|per| per * p.shards[s].members.len() as f64)
        })
        .collect();
    let with_estimate: Vec<f64> = known.iter().flatten().copied().collect();
    let fallback =
        if with_estimate.is_empty() { 1.0 } else { with_estimate.iter().sum::<f64>() / with_estimate.len() as f64 };
    let estimates: Vec<f64> = known.iter().map(|s| s.unwrap_or(fallback)).collect();
    if !todo.is_empty() {
        let networks = todo.iter().map(|&(j, s)| planned[j].shards[s].members.len()).sum();
        report(Event::TrainingStarts { shards: todo.len(), networks, seconds: estimates.iter().sum() });
    }
    // Why each job runs, read before any of its shards writes its record (a later
    // shard would otherwise find its sibling's record and say "not in the cache").
    let mut why: std::collections::BTreeMap<usize, String> = std::collections::BTreeMap::new();
    for &(j, _) in todo {
        let p = &planned[j];
        why.entry(j).or_insert_with(|| why_job_runs(figures[p.figure], p, &opts.cache_dir, opts.force));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.max(1))
        .build()
        .context("cannot start the worker threads")?;
    let results: Vec<Option<Result<(TrainLog, Duration)>>> = pool.install(|| {
        todo.par_iter()
            .enumerate()
            .map(|(n, &(j, s))| {
                let p = &planned[j];
                let shard = &p.shards[s];
                let fig = figures[p.figure];
                if interrupted() {
                    return None;
                }
                let members = [shard.members.start, shard.members.end];
                let why = why[&j].clone();
                report(Event::JobStarts {
                    figure: fig.id().into(),
                    job: p.job.name.clone(),
                    members,
                    of: p.job.members(),
                    why: why.clone(),
                });
                let start = Instant::now();
                let result = train_shard(fig, &p.job, shard.members.clone())
                    .and_then(|log| cache.put(&shard.key, &log).map(|_| log))
                    .and_then(|log| {
                        let record = job_record(fig, p, shard.members.len(), start.elapsed().as_secs_f64());
                        records::write(&opts.cache_dir, &record).map(|_| log)
                    })
                    .with_context(|| shard_name(figures, planned, (j, s)));
                let seconds = start.elapsed().as_secs_f64();
                if result.is_ok() {
                    report(Event::JobTrained {
                        figure: fig.id().into(),
                        job: p.job.name.clone(),
                        key: shard.key.clone(),
                        members,
                        of: p.job.members(),
                        networks: shard.members.len(),
                        seconds,
                        why,
                        estimate: estimates[n],
                    });
                }
                Some(result.map(|log| (log, start.elapsed())))
            })
            .collect()
    });
    results.into_iter().map(|r| r.transpose()).collect()
}

/// The error of a run that may not train (`Options::train` off) when the
/// cache lacks shards: which ones.
#[derive(Debug)]
pub struct MissingShards(pub Vec<String>);

impl fmt::Display for MissingShards {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} shard(s) are not in the cache, and this run trains nothing:", self.0.len())?;
        for name in &self.0 {
            write!(f, "\n  missing: {name}")?;
        }
        Ok(())
    }
}

impl std::error::Error for MissingShards {}

/// Computes (or reads from the cache) every selected figure's data and SVG,
/// reporting its progress to `report`.
pub fn run(paper: &Paper, opts: &Options, report: &(dyn Fn(Event) + Sync)) -> Result<Run> {
    let figures = select(paper, &opts.only)?;
    let remote = opts.remote_cache.as_ref().map(RemoteCache::open).transpose()?;
    let cache = Cache::open(&opts.cache_dir)?.with_remote(remote);
    let report_remote = || {
        for why in cache.remote_problems() {
            report(Event::RemoteCacheProblem { why });
        }
    };
    let planned = plan(&figures);

    // Cache lookups first, so the progress bar counts only real work.
    let mut logs: Vec<Vec<Option<TrainLog>>> = planned.iter().map(|p| vec![None; p.shards.len()]).collect();
    let mut damaged: Vec<(usize, String)> = Vec::new();
    if !opts.force {
        for (j, p) in planned.iter().enumerate() {
            for (s, shard) in p.shards.iter().enumerate() {
                match cache.get::<TrainLog>(&shard.key) {
                    Lookup::Hit(log) => logs[j][s] = Some(log),
                    Lookup::Miss => {}
                    Lookup::Damaged(why) => {
                        report(Event::DamagedCacheEntry {
                            figure: figures[p.figure].id().into(),
                            job: p.job.name.clone(),
                            why: why.clone(),
                        });
                        damaged.push((j, why));
                    }
                }
            }
        }
    }
    report_remote();
    let todo: Vec<ShardAt> = (0..planned.len())
        .flat_map(|j| (0..planned[j].shards.len()).map(move |s| (j, s)))
        .filter(|&(j, s)| logs[j][s].is_none())
        .collect();
    if !opts.train && !todo.is_empty() {
        return Err(MissingShards(todo.iter().map(|&at| shard_name(&figures, &planned, at)).collect()).into());
    }
    let computed = train_shards(&figures, &planned, &todo, &cache, opts, report);
    report_remote();
    let computed = computed?;
    let mut times = vec![Duration::ZERO; planned.len()];
    let mut skipped = 0;
    for (&(j, s), result) in todo.iter().zip(computed) {
        match result {
            Some((log, time)) => {
                logs[j][s] = Some(log);
                times[j] += time;
            }
            None => skipped += 1,
        }
    }
    if interrupted() {
        return Err(Interrupted {
            computed: todo
                .iter()
                .filter(|&&(j, s)| logs[j][s].is_some())
                .map(|&at| shard_name(&figures, &planned, at))
                .collect(),
            already_cached: planned.iter().map(|p| p.shards.len()).sum::<usize>() - todo.len(),
            skipped,
        }
        .into());
    }
    let uncached_jobs: Vec<usize> = todo.iter().map(|&(j, _)| j).collect();
    // Each job's log is its shards' logs, one after the other.
    let mut logs: Vec<Option<TrainLog>> = logs
        .into_iter()
        .enumerate()
        .map(|(j, shards)| {
            let parts = shards.into_iter().map(|l| l.expect("every shard ran")).collect();
            TrainLog::concat(parts).with_context(|| format!("merging the shards of {}", planned[j].job.name)).map(Some)
        })
        .collect::<Result<_>>()?;

    let (commit, dirty) = provenance::git_state();
    let mut out = Run { figures: Vec::new(), reports: Vec::new(), publication: Vec::new() };
    for (f, fig) in figures.iter().enumerate() {
        let idx: Vec<usize> = (0..planned.len()).filter(|&i| planned[i].figure == f).collect();
        let fig_logs: Vec<TrainLog> = idx.iter().map(|&i| logs[i].take().expect("every job ran")).collect();
        let fig_jobs: Vec<&Job> = idx.iter().map(|&i| &planned[i].job).collect();
        let body = figure_body(fig.experiment.kind(), &fig_jobs, &fig_logs)
            .with_context(|| format!("figure {:?}", fig.id()))?;
        let claims = claims::evaluate(&fig.claims, &body);
        let jobs: Vec<&PlannedJob> = idx.iter().map(|&i| &planned[i]).collect();
        let data = FigureData {
            id: fig.id().to_string(),
            title: fig.title.clone(),
            caption: crate::caption::fill(
                fig.caption.get_ref().trim(),
                &crate::caption::experiment_config(&fig.experiment),
                &body.scalars,
            ),
            provenance: Provenance {
                key: figure_key(fig, &jobs),
                code_fingerprint: provenance::figure_fingerprint(),
                commit: commit.clone(),
                dirty,
                config: serde_json::to_value(&fig.experiment)?,
                seeds: fig.experiment.kind().seeds(),
                toolchain: provenance::TOOLCHAIN.to_string(),
                files: provenance::source_files().iter().map(|(p, h)| (p.to_string(), h.to_string())).collect(),
            },
            body,
            claims: claims.clone(),
        };
        let svg = render::svg(&data, &fig.render).with_context(|| format!("rendering figure {:?}", fig.id()))?;
        // A referee's checks on what the reader will see, at the figure's sizes: refusing
        // the figure as `figure_body` refuses a misleading legend (`Options::refuse_lint`). A figure
        // whose training diverged is written with its problems reported: what is left of
        // it cannot all be drawn, and the divergence is what the run reports first.
        let lint = lint::figure(&data, &fig.render, &fig.publication)
            .with_context(|| format!("linting figure {:?}", fig.id()))?;
        if opts.refuse_lint && !lint.is_empty() && data.body.divergences.is_empty() {
            let lines: Vec<String> = lint.iter().map(|p| format!("\n  {p}")).collect();
            bail!("figure {:?} fails the figure lint:{}", fig.id(), lines.concat());
        }
        out.reports.push(FigureReport {
            id: data.id.clone(),
            jobs: idx.len(),
            cached: idx.iter().filter(|&&i| !uncached_jobs.contains(&i)).count(),
            shards: idx.iter().map(|&i| planned[i].shards.len()).sum(),
            cached_shards: idx.iter().map(|&i| planned[i].shards.len()).sum::<usize>()
                - todo.iter().filter(|(j, _)| idx.contains(j)).count(),
            damaged: damaged.iter().filter(|(j, _)| idx.contains(j)).map(|(_, why)| why.clone()).collect(),
            compute: idx.iter().map(|&i| times[i]).sum(),
            claims,
            divergences: data.body.divergences.clone(),
            lint,
        });
        out.figures.push((data, svg));
        out.publication.push(fig.publication.clone());
    }
    Ok(out)
}

/// Creates the output directory and its `paper/` if needed and checks that
/// they can be written to, so that a run fails before training rather than
/// after it.
pub fn prepare_out_dir(out_dir: &Path) -> Result<()> {
    files::prepare_dir(out_dir, "output directory")?;
    files::prepare_dir(&out_dir.join("paper"), "publication directory")
}

/// Where a figure's publication files go: `<out>/paper/<id>.pdf` and `.png`.
pub fn publication_paths(out_dir: &Path, id: &str) -> [PathBuf; 2] {
    let dir = out_dir.join("paper");
    [dir.join(format!("{id}.pdf")), dir.join(format!("{id}.png"))]
}

/// Writes figures/<id>.json and .svg, and the publication variant
/// figures/paper/<id>.pdf and .png (each atomically).
pub fn write(out_dir: &Path, run: &Run) -> Result<()> {
    prepare_out_dir(out_dir)?;
    // Drawn from the JSON text: the publication files show only what is
    // committed, and --check redraws them from the committed JSON. A tenth
    // to a third of a second each, so side by side on every core (rayon's
    // global pool is pinned to one thread for Candle).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().context("cannot start threads")?;
    let exports: Vec<Result<publication::Export>> = pool.install(|| {
        run.figures
            .par_iter()
            .zip(&run.publication)
            .map(|((data, _), spec)| {
                let json = serde_json::to_string(data)?;
                publication::from_json(&json, spec)
                    .with_context(|| format!("publication variant of figure {:?}", data.id))
            })
            .collect()
    });
    for ((data, svg), export) in run.figures.iter().zip(exports) {
        let path = out_dir.join(format!("{}.json", data.id));
        // A figure whose data and key are unchanged keeps its file, and so the
        // commit it was first made at: a warm run writes nothing new.
        let unchanged = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<FigureData>(&text).ok())
            .is_some_and(|mut old| {
                old.provenance.commit.clone_from(&data.provenance.commit);
                old.provenance.dirty = data.provenance.dirty;
                // As JSON: an undefined (NaN) scalar is null there, and equal to itself.
                serde_json::to_value(&old).ok() == serde_json::to_value(data).ok()
            });
        if !unchanged {
            let json = serde_json::to_string_pretty(data)? + "\n";
            files::write_atomically(&path, json.as_bytes())?;
        }
        files::write_atomically(&out_dir.join(format!("{}.svg", data.id)), svg.as_bytes())?;
        let export = export?;
        let [pdf, png] = publication_paths(out_dir, &data.id);
        files::write_atomically(&pdf, &export.pdf)?;
        files::write_atomically(&png, &export.png)?;
    }
    Ok(())
}

/// Whether a figure's committed data is what the current code and spec compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Its JSON carries the key that the current code and spec give it.
    Current,
    /// Its JSON was made by other code, config, seeds or claims.
    Stale,
    /// No readable JSON.
    Missing,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Current => "current",
            Status::Stale => "STALE",
            Status::Missing => "missing",
        })
    }
}

/// One figure's committed data (if any), whether it is current, and the key
/// the code and spec give it now. Computes keys only; trains nothing.
pub fn status(fig: &FigureSpec, out_dir: &Path) -> (Option<FigureData>, Status, String) {
    let text = std::fs::read_to_string(out_dir.join(format!("{}.json", fig.id()))).ok();
    // A file in an older schema is stale, not missing.
    let data = text.as_deref().and_then(|t| serde_json::from_str::<FigureData>(t).ok());
    let planned = plan(&[fig]);
    let key = figure_key(fig, &planned.iter().collect::<Vec<_>>());
    let status = match (&text, &data) {
        (None, _) => Status::Missing,
        (_, Some(d)) if d.provenance.key == key => Status::Current,
        _ => Status::Stale,
    };
    (data, status, key)
}

/// Every figure of the spec, with its committed data (if any) and whether
/// that data is current: its key against the key the code and spec give now.
/// Computes keys only; trains nothing.
pub fn statuses<'a>(paper: &'a Paper, out_dir: &Path) -> Vec<(&'a FigureSpec, Option<FigureData>, Status)> {
    paper
        .figures
        .iter()
        .map(|fig| {
            let (data, status, _) = status(fig, out_dir);
            (fig, data, status)
        })
        .collect()
}
