//! The shards on a Slurm cluster: Slurm schedules, we only split the work.
//!
//! `figures --slurm` assigns the shards the cache lacks to the tasks of one
//! job array (`assign`: largest estimate first, each to the least loaded
//! task, so the split is the same for the same plan), writes a run directory
//! beside the cache (`<cache>/slurm/<hash of the assignment>/`: a copy of the
//! binary and of the spec, so every task runs the same code on the same
//! config whatever happens to the checkout meanwhile, the assignment, the
//! sbatch script and the tasks' logs), submits it with `sbatch --parsable`,
//! and waits, counting the shards that have reached the cache and asking
//! `squeue` whether tasks are left. Each task runs `paper-figures shard-task`,
//! which trains its shards into the shared cache (`run_task`); the figures
//! are then assembled locally from the cache, training nothing.
//!
//! The cache makes this safe without any coordination: a shard is one file,
//! written to a temporary name and renamed (atomic within a directory, on
//! NFS and Lustre too), so two tasks that compute the same shard write the
//! same bytes and either rename wins; a task that dies leaves its finished
//! shards, and the next run assigns exactly the missing ones.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use crate::cache::Cache;
use crate::files::{prepare_dir, write_atomically};
use crate::pipeline::{self, Event, Options, ShardAt};
use crate::spec::Paper;
use crate::status::ShardPlan;

/// One shard as a task receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignedShard {
    pub figure: String,
    pub job: String,
    /// Networks `members[0]..members[1]` of the job.
    pub members: [usize; 2],
    pub key: String,
    pub estimate_seconds: f64,
}

/// What every task of an array reads: its shards, by task index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assignment {
    /// Recompute shards even where the cache has them (`figures --force`).
    pub force: bool,
    pub tasks: Vec<Vec<AssignedShard>>,
}

impl Assignment {
    pub fn shards(&self) -> impl Iterator<Item = &AssignedShard> {
        self.tasks.iter().flatten()
    }
}

/// The shards to compute spread over at most `tasks` tasks, balanced by
/// estimated cost: the longest first, each to the task with the least work so
/// far (the lowest index on a tie). A shard without an estimate counts as the
/// mean of the others. Deterministic: the same plan gives the same tasks.
pub fn assign(shards: &[ShardPlan], tasks: usize) -> Vec<Vec<AssignedShard>> {
    let known: Vec<f64> = shards.iter().filter_map(|s| s.estimate_seconds).collect();
    let fallback = if known.is_empty() { 1.0 } else { known.iter().sum::<f64>() / known.len() as f64 };
    let cost = |s: &ShardPlan| s.estimate_seconds.unwrap_or(fallback);
    let mut order: Vec<usize> = (0..shards.len()).collect();
    order.sort_by(|&a, &b| cost(&shards[b]).total_cmp(&cost(&shards[a])).then(a.cmp(&b)));
    let tasks = tasks.clamp(1, shards.len().max(1));
    let mut load = vec![0.0f64; tasks];
    let mut out: Vec<Vec<AssignedShard>> = vec![Vec::new(); tasks];
    for i in order {
        let s = &shards[i];
        let t = (0..tasks).min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b))).expect("at least one task");
        load[t] += cost(s);
        out[t].push(AssignedShard {
            figure: s.figure.clone(),
            job: s.job.clone(),
            members: s.members,
            key: s.key.clone(),
            estimate_seconds: cost(s),
        });
    }
    out.retain(|t| !t.is_empty());
    out
}

/// How the array is submitted: `figures --slurm`'s options.
#[derive(Debug, Clone, Default)]
pub struct Submit {
    pub partition: Option<String>,
    /// Each task's time limit, as sbatch takes it ("30", "1:00:00", "1-0").
    pub time: Option<String>,
    /// At most this many array tasks.
    pub tasks: usize,
    /// Cores per task; a task trains this many shards side by side.
    pub cpus_per_task: usize,
    /// More `#SBATCH` arguments, as given (`--mem=4G`, `--account=lab`).
    pub sbatch_args: Vec<String>,
}

/// A written run directory: what was submitted, or is to be.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub dir: PathBuf,
    pub script: PathBuf,
    pub assignment: Assignment,
}

impl Prepared {
    /// Where task `t` writes its output.
    pub fn log(&self, t: usize) -> PathBuf {
        self.dir.join("logs").join(format!("task-{t}.out"))
    }
}

/// A string as one word of a POSIX shell command.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot make {} absolute", path.display()))
}

/// Writes the run directory of an assignment under `<cache>/slurm/`: the
/// running binary and the spec copied there, the assignment, the script.
pub fn prepare(spec: &Path, cache_dir: &Path, assignment: Assignment, submit: &Submit) -> Result<Prepared> {
    ensure!(!assignment.tasks.is_empty(), "nothing to submit");
    let text = serde_json::to_vec_pretty(&assignment)?;
    let name = crate::provenance::hash_json(&serde_json::from_slice(&text)?);
    let dir = absolute(&cache_dir.join("slurm").join(&name[..16]))?;
    prepare_dir(&dir.join("logs"), "Slurm run directory")?;
    let binary = std::env::current_exe().context("cannot find the running binary")?;
    let copy = dir.join("paper-figures");
    // Every task runs these bytes, even if the checkout is rebuilt meanwhile.
    let bytes = std::fs::read(&binary).with_context(|| format!("reading {}", binary.display()))?;
    write_atomically(&copy, &bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))?;
    }
    let spec_copy = dir.join("spec.toml");
    write_atomically(&spec_copy, &std::fs::read(spec).with_context(|| format!("reading {}", spec.display()))?)?;
    let assignment_path = dir.join("assignment.json");
    write_atomically(&assignment_path, &text)?;
    let root = std::env::current_dir().context("cannot read the working directory")?;
    let cache = absolute(cache_dir)?;
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        "#SBATCH --job-name=paper-figures".into(),
        format!("#SBATCH --array=0-{}", assignment.tasks.len() - 1),
        format!("#SBATCH --output={}", dir.join("logs").join("task-%a.out").display()),
        format!("#SBATCH --cpus-per-task={}", submit.cpus_per_task.max(1)),
    ];
    if let Some(p) = &submit.partition {
        lines.push(format!("#SBATCH --partition={p}"));
    }
    if let Some(t) = &submit.time {
        lines.push(format!("#SBATCH --time={t}"));
    }
    lines.extend(submit.sbatch_args.iter().map(|a| format!("#SBATCH {a}")));
    lines.extend([
        String::new(),
        "# Written by `cargo xtask figures --slurm`. Task i trains the shards that".into(),
        "# assignment.json gives it into the shared cache; the figures are assembled".into(),
        "# from the cache afterwards (`cargo xtask figures --assemble-only`).".into(),
        "set -euo pipefail".into(),
        format!("cd {}", quoted(&root.display().to_string())),
        format!(
            "exec {} --spec {} shard-task --assignment {} --cache-dir {} --task \"$SLURM_ARRAY_TASK_ID\" --jobs \"${{SLURM_CPUS_PER_TASK:-1}}\"",
            quoted(&copy.display().to_string()),
            quoted(&spec_copy.display().to_string()),
            quoted(&assignment_path.display().to_string()),
            quoted(&cache.display().to_string()),
        ),
        String::new(),
    ]);
    let script = dir.join("array.sbatch");
    write_atomically(&script, lines.join("\n").as_bytes())?;
    Ok(Prepared { dir, script, assignment })
}

/// A Slurm command's output, or an error that says what ran and what it said.
fn slurm(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program).args(args).output().with_context(|| {
        format!("cannot run `{program}`: is Slurm's client installed and on PATH (and SLURM_CONF set, if needed)?")
    })?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Submits the prepared script; returns the array's job id.
pub fn submit(prepared: &Prepared) -> Result<String> {
    let out = slurm("sbatch", &["--parsable", &prepared.script.display().to_string()])?;
    // `--parsable` prints "id" or "id;cluster".
    let id = out.trim().split(';').next().unwrap_or("").to_string();
    ensure!(!id.is_empty() && id.chars().all(|c| c.is_ascii_digit()), "sbatch printed {out:?}, not a job id");
    Ok(id)
}

/// Tasks of the array that are still pending or running (by `squeue`); an
/// array Slurm no longer knows has none.
pub fn tasks_left(job: &str) -> Result<usize> {
    let out =
        Command::new("squeue").args(["-h", "-r", "-j", job, "-o", "%i %T"]).output().context("cannot run squeue")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // Purged from the controller's memory: finished long ago.
        if stderr.contains("Invalid job id") {
            return Ok(0);
        }
        bail!("`squeue -j {job}` failed: {}", stderr.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).count())
}

pub fn cancel(job: &str) -> Result<()> {
    slurm("scancel", &[job]).map(|_| ())
}

/// How a task of the array ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEnd {
    pub task: usize,
    /// Slurm's word: COMPLETED, FAILED, TIMEOUT, PREEMPTED, CANCELLED, OUT_OF_MEMORY, ...
    pub state: String,
    pub exit_code: String,
    /// The node(s) it ran on (`NodeList`), empty when it never started.
    pub nodes: String,
    /// Its time limit as Slurm prints it (`00:01:00`), empty when unknown.
    pub time_limit: String,
}

impl TaskEnd {
    /// Why the task ended without its shards, in words: its state, the
    /// signal that killed it, a node that went down (`node_state`: the
    /// node's state and reason now, from `scontrol show node`).
    pub fn why(&self, node_state: Option<&str>) -> String {
        let on = if self.nodes.is_empty() || self.nodes == "None" || self.nodes.starts_with('(') {
            String::new()
        } else {
            format!(" on {}", self.nodes)
        };
        let signal = self.exit_code.split_once(':').and_then(|(_, s)| s.parse::<i32>().ok()).filter(|&s| s != 0);
        let code = self.exit_code.split_once(':').and_then(|(c, _)| c.parse::<i32>().ok()).filter(|&c| c != 0);
        let killed = match signal {
            Some(9) => ", killed by SIGKILL".to_string(),
            Some(15) => ", killed by SIGTERM".to_string(),
            Some(s) => format!(", killed by signal {s}"),
            None => String::new(),
        };
        match self.state.as_str() {
            "NODE_FAIL" => format!(
                "lost with its node{} (NODE_FAIL: the node stopped answering the controller and was set down{}; \
                 the task died with it)",
                on.replacen(" on ", " ", 1),
                node_state.map(|s| format!(", now {s}")).unwrap_or_default()
            ),
            "TIMEOUT" => format!(
                "ran past its time limit{}{on} (TIMEOUT{killed}): raise --time-limit",
                if self.time_limit.is_empty() { String::new() } else { format!(" of {}", self.time_limit) }
            ),
            "OUT_OF_MEMORY" => {
                format!("ran out of memory{on} (OUT_OF_MEMORY): ask for more with --sbatch-arg=--mem=...")
            }
            "PREEMPTED" => format!("preempted{on} (PREEMPTED)"),
            "CANCELLED" => format!("cancelled{on} (CANCELLED{killed}: scancel, or an administrator)"),
            "BOOT_FAIL" => format!("its node{on} failed to boot (BOOT_FAIL)"),
            "DEADLINE" => format!("missed its deadline{on} (DEADLINE)"),
            "FAILED" if signal.is_some() => format!("killed{on} (FAILED{killed}, exit {})", self.exit_code),
            "FAILED" => format!(
                "failed{on} (FAILED, exit status {}): its log says why",
                code.map(|c| c.to_string()).unwrap_or_else(|| self.exit_code.clone())
            ),
            "COMPLETED" => format!("completed{on}, yet shards are missing (removed from the cache since?)"),
            other => format!("{other}{on} (exit {}{killed})", self.exit_code),
        }
    }
}

/// Each task's end, from `sacct` where accounting is kept, else from the
/// controller (`scontrol show job`, which keeps finished jobs for
/// MinJobAge); empty when neither knows the array any more.
pub fn task_ends(job: &str) -> Vec<TaskEnd> {
    let from_sacct = slurm("sacct", &["-j", job, "-n", "-P", "-X", "-o", "JobID,State,ExitCode,NodeList,Timelimit"]);
    match from_sacct.map(|out| parse_sacct(&out)) {
        Ok(ends) if !ends.is_empty() => ends,
        _ => slurm("scontrol", &["show", "job", job, "-o"]).map(|out| parse_scontrol(&out)).unwrap_or_default(),
    }
}

/// `sacct -n -P -X -o JobID,State,ExitCode,NodeList,Timelimit` lines: `12_3|FAILED|1:0|node2|01:00:00`.
pub fn parse_sacct(out: &str) -> Vec<TaskEnd> {
    out.lines()
        .filter_map(|line| {
            let mut fields = line.split('|');
            let (id, state, exit) = (fields.next()?, fields.next()?, fields.next()?);
            let task = id.split_once('_')?.1.parse().ok()?;
            let nodes = fields.next().unwrap_or("").to_string();
            let time_limit = fields.next().unwrap_or("").to_string();
            // "CANCELLED by 0" -> "CANCELLED"
            let state = state.split_whitespace().next()?.to_string();
            Some(TaskEnd { task, state, exit_code: exit.to_string(), nodes, time_limit })
        })
        .collect()
}

/// `scontrol -o show job` lines, one per task: `... ArrayTaskId=3 ... JobState=FAILED ... ExitCode=1:0 ...`
/// (the line of tasks still pending together, `ArrayTaskId=4-7`, is not one task's end).
pub fn parse_scontrol(out: &str) -> Vec<TaskEnd> {
    out.lines()
        .filter_map(|line| {
            let field = |name: &str| {
                line.split_whitespace().find_map(|w| w.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            };
            Some(TaskEnd {
                task: field("ArrayTaskId")?.parse().ok()?,
                state: field("JobState")?.to_string(),
                exit_code: field("ExitCode").unwrap_or("?").to_string(),
                nodes: field("NodeList").unwrap_or("").to_string(),
                time_limit: field("TimeLimit").unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// A node's state and why, as `scontrol show node` says now:
/// `DOWN+NOT_RESPONDING, "Not responding"`; `None` when it cannot be asked.
pub fn node_state(node: &str) -> Option<String> {
    slurm("scontrol", &["show", "node", node, "-o"]).ok().and_then(|out| parse_node_state(&out))
}

/// The state and reason of `scontrol -o show node` output (the reason runs to
/// the end of the line but for its ` [user@time]` stamp).
pub fn parse_node_state(out: &str) -> Option<String> {
    let line = out.lines().next()?;
    let state = line.split_whitespace().find_map(|w| w.strip_prefix("State="))?;
    let reason = line.split_once(" Reason=").map(|(_, r)| r.split(" [").next().unwrap_or(r).trim());
    Some(match reason {
        Some(r) if !r.is_empty() && r != "(null)" => format!("{state}, \"{r}\""),
        _ => state.to_string(),
    })
}

/// While waiting: shards in the cache, of how many; tasks still queued or
/// running (as last known); a failed `squeue` that will be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub shards_done: usize,
    pub shards: usize,
    pub tasks_left: usize,
    pub trouble: Option<String>,
}

/// The submitted array has been cancelled (Ctrl-C while waiting).
#[derive(Debug)]
pub struct Cancelled {
    pub job: String,
    pub shards_done: usize,
    pub shards: usize,
}

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupted: cancelled array job {} (scancel); {} of its {} shard(s) finished and are kept in the cache; \
             nothing written",
            self.job, self.shards_done, self.shards
        )
    }
}

impl std::error::Error for Cancelled {}

/// Consecutive failed `squeue` calls that end the wait: a busy controller
/// times out now and then, and one failure must not abandon a running array.
const SQUEUE_TRIES: usize = 10;

/// Polls every `every` until no task of the array is left, reporting the
/// shards that reached the cache. Cancels the array (`scancel`) and returns
/// [`Cancelled`] once `pipeline::interrupted()`.
pub fn wait(job: &str, prepared: &Prepared, cache: &Cache, every: Duration, progress: &dyn Fn(Waiting)) -> Result<()> {
    let keys: Vec<&str> = prepared.assignment.shards().map(|s| s.key.as_str()).collect();
    let done = || keys.iter().filter(|k| cache.path(k).exists()).count();
    let (mut failures, mut left) = (0, prepared.assignment.tasks.len());
    loop {
        if pipeline::interrupted() {
            cancel(job)?;
            return Err(Cancelled { job: job.to_string(), shards_done: done(), shards: keys.len() }.into());
        }
        left = match tasks_left(job) {
            Ok(now) => {
                failures = 0;
                now
            }
            Err(e) if failures + 1 < SQUEUE_TRIES => {
                failures += 1;
                let trouble = Some(format!("{e:#}; asking again ({failures} of {SQUEUE_TRIES} tries)"));
                progress(Waiting { shards_done: done(), shards: keys.len(), tasks_left: left, trouble });
                std::thread::sleep(every);
                continue;
            }
            Err(e) => {
                return Err(e.context(format!(
                    "squeue failed {SQUEUE_TRIES} times in a row; array job {job} may still be running: \
                     `squeue -j {job}`, then `--assemble-only` once it is done"
                )))
            }
        };
        progress(Waiting { shards_done: done(), shards: keys.len(), tasks_left: left, trouble: None });
        if left == 0 {
            return Ok(());
        }
        std::thread::sleep(every);
    }
}

/// The last submission from this cache: read by the next run, which names
/// the tasks whose shards are still missing and their logs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastSubmission {
    pub job: String,
    pub dir: PathBuf,
}

fn last_path(cache_dir: &Path) -> PathBuf {
    cache_dir.join("slurm").join("last.json")
}

pub fn remember(cache_dir: &Path, job: &str, prepared: &Prepared) -> Result<()> {
    let last = LastSubmission { job: job.to_string(), dir: prepared.dir.clone() };
    write_atomically(&last_path(cache_dir), &serde_json::to_vec_pretty(&last)?)
}

/// The previous submission and its assignment, if there is a readable one.
pub fn last_submission(cache_dir: &Path) -> Option<(LastSubmission, Prepared)> {
    let last: LastSubmission = serde_json::from_slice(&std::fs::read(last_path(cache_dir)).ok()?).ok()?;
    let assignment: Assignment = serde_json::from_slice(&std::fs::read(last.dir.join("assignment.json")).ok()?).ok()?;
    let prepared = Prepared { script: last.dir.join("array.sbatch"), dir: last.dir.clone(), assignment };
    Some((last, prepared))
}

/// A run directory under `<cache>/slurm/`, as `cache` and `cache gc` see it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDir {
    pub dir: PathBuf,
    /// Every shard of its assignment has a cache entry written after the run
    /// was prepared: its array has nothing left to do (a task still pending
    /// would find all its shards there), so `cache gc` removes the directory.
    pub finished: bool,
    /// Its size on disk (mostly the copy of the binary).
    pub bytes: u64,
}

/// Every run directory under `<cache>/slurm/`, by name. One without a
/// readable assignment (a preparation that failed halfway) counts as unfinished.
pub fn run_dirs(cache_dir: &Path, cache: &Cache) -> Vec<RunDir> {
    let Ok(listing) = std::fs::read_dir(cache_dir.join("slurm")) else {
        return Vec::new();
    };
    let mut runs: Vec<RunDir> = listing
        .filter_map(|item| item.ok().map(|i| i.path()))
        .filter(|dir| dir.is_dir())
        .map(|dir| {
            let written = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
            let assignment = dir.join("assignment.json");
            let finished = match (
                std::fs::read(&assignment).ok().and_then(|t| serde_json::from_slice::<Assignment>(&t).ok()),
                written(&assignment),
            ) {
                (Some(a), Some(prepared)) => {
                    a.shards().all(|s| written(&cache.path(&s.key)).is_some_and(|t| t >= prepared))
                }
                _ => false,
            };
            let bytes = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .chain(std::fs::read_dir(dir.join("logs")).into_iter().flatten())
                .filter_map(|item| item.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum();
            RunDir { dir, finished, bytes }
        })
        .collect();
    runs.sort_by(|a, b| a.dir.cmp(&b.dir));
    runs
}

/// For each task of a submission whose shards are not all in the cache: the
/// task, how it ended (where Slurm still knows), its missing shards and its log.
pub fn unfinished(job: &str, prepared: &Prepared, cache: &Cache) -> Vec<String> {
    let ends = task_ends(job);
    prepared
        .assignment
        .tasks
        .iter()
        .enumerate()
        .filter_map(|(t, shards)| {
            let missing = shards.iter().filter(|s| !cache.path(&s.key).exists()).count();
            (missing > 0).then(|| {
                let log = prepared.log(t);
                let end = match ends.iter().find(|e| e.task == t) {
                    Some(e) if e.state == "NODE_FAIL" => e.why(node_state(&e.nodes).as_deref()),
                    Some(e) => e.why(None),
                    None if !log.exists() => "it never started (cancelled while pending?)".to_string(),
                    None => "Slurm no longer knows how it ended".to_string(),
                };
                // A task that failed by itself said why last: "No space left on device", a bad key.
                let said = match ends.iter().find(|e| e.task == t) {
                    Some(e) if e.state == "FAILED" => last_line(&log).map(|l| format!("; its log ends: {l}")),
                    _ => None,
                }
                .unwrap_or_default();
                let log = if log.exists() {
                    format!("log: {}{said}", log.display())
                } else {
                    format!("no log at {}", log.display())
                };
                format!("task {t} of array job {job}: {end}; {missing} of its {} shard(s) missing; {log}", shards.len())
            })
        })
        .collect()
}

/// The last non-empty line of a file, cut to 300 characters.
fn last_line(path: &Path) -> Option<String> {
    let text = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&text);
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.chars().take(300).collect())
}

/// `paper-figures shard-task`: trains task `task`'s shards of the assignment
/// into the cache, `threads` side by side, skipping those already there
/// (unless the assignment forces them). Each shard's key must be one the
/// spec and this binary plan, so a task never computes under a stale key.
pub fn run_task(
    paper: &Paper,
    assignment_path: &Path,
    task: usize,
    cache_dir: &Path,
    threads: usize,
    report: &(dyn Fn(Event) + Sync),
) -> Result<usize> {
    let assignment: Assignment = serde_json::from_slice(
        &std::fs::read(assignment_path).with_context(|| format!("reading {}", assignment_path.display()))?,
    )
    .with_context(|| format!("{} is not an assignment", assignment_path.display()))?;
    let shards = assignment.tasks.get(task).with_context(|| {
        format!("task {task}: the assignment {} has tasks 0..{}", assignment_path.display(), assignment.tasks.len())
    })?;
    let figures: Vec<_> = paper.figures.iter().collect();
    let planned = pipeline::plan(&figures);
    let cache = Cache::open(cache_dir)?;
    let mut todo: Vec<ShardAt> = Vec::new();
    for shard in shards {
        let at = planned
            .iter()
            .enumerate()
            .find_map(|(j, p)| p.shards.iter().position(|s| s.key == shard.key).map(|s| (j, s)))
            .with_context(|| {
                format!(
                    "{} / {} ({}): its key {} is not one this binary and spec plan (another build or spec?)",
                    shard.figure,
                    shard.job,
                    pipeline::networks(&(shard.members[0]..shard.members[1]), None),
                    shard.key
                )
            })?;
        if assignment.force || !matches!(cache.get::<crate::engine::TrainLog>(&shard.key), crate::cache::Lookup::Hit(_))
        {
            todo.push(at);
        }
    }
    let opts = Options {
        out_dir: PathBuf::new(),
        cache_dir: cache_dir.to_path_buf(),
        only: Vec::new(),
        force: assignment.force,
        threads,
        train: true,
        refuse_lint: true,
        // The array's tasks share the cluster's cache directory.
        remote_cache: None,
    };
    let trained = pipeline::train_shards(&figures, &planned, &todo, &cache, &opts, report)?;
    if pipeline::interrupted() {
        bail!("interrupted after {} of {} shard(s)", trained.iter().flatten().count(), todo.len());
    }
    Ok(trained.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ends_are_read_from_sacct_and_from_scontrol() {
        let sacct = "12_0|COMPLETED|0:0\n12_1|FAILED|3:0\n12_2|CANCELLED by 0|0:15\n12|RUNNING|0:0\n";
        let ends = parse_sacct(sacct);
        assert_eq!(ends.len(), 3, "the array's own line is not a task");
        assert_eq!(
            ends[1],
            TaskEnd {
                task: 1,
                state: "FAILED".into(),
                exit_code: "3:0".into(),
                nodes: String::new(),
                time_limit: String::new()
            }
        );
        assert_eq!(ends[2].state, "CANCELLED");
        // As Slurm 22.05 prints them (one line per task, the pending rest as a range).
        let scontrol = "JobId=7 ArrayJobId=6 ArrayTaskId=1 JobName=x JobState=FAILED Reason=NonZeroExitCode \
                        ExitCode=3:0\nJobId=6 ArrayJobId=6 ArrayTaskId=2-3 JobState=PENDING ExitCode=0:0\n";
        assert_eq!(
            parse_scontrol(scontrol),
            vec![TaskEnd {
                task: 1,
                state: "FAILED".into(),
                exit_code: "3:0".into(),
                nodes: String::new(),
                time_limit: String::new()
            }]
        );
    }

    #[test]
    fn a_lost_node_a_kill_and_a_time_limit_are_said_in_words() {
        let end = |state: &str, exit: &str| TaskEnd {
            task: 2,
            state: state.into(),
            exit_code: exit.into(),
            nodes: "node2".into(),
            time_limit: "00:01:00".into(),
        };
        let lost = end("NODE_FAIL", "0:0").why(Some("DOWN+NOT_RESPONDING, \"Not responding\""));
        assert!(lost.starts_with("lost with its node node2 (NODE_FAIL"), "{lost}");
        assert!(lost.contains("now DOWN+NOT_RESPONDING, \"Not responding\""), "{lost}");
        assert!(end("FAILED", "0:9").why(None).contains("killed on node2 (FAILED, killed by SIGKILL"));
        assert!(end("TIMEOUT", "0:15")
            .why(None)
            .contains("time limit of 00:01:00 on node2 (TIMEOUT, killed by SIGTERM): raise --time-limit"));
        assert!(end("FAILED", "3:0").why(None).contains("exit status 3"));
        let node = "NodeName=node2 Arch=x86_64 CoresPerSocket=1 State=DOWN+NOT_RESPONDING ThreadsPerCore=1 \
                    Reason=Not responding [slurm@2026-12-05T10:50:00]";
        assert_eq!(parse_node_state(node).as_deref(), Some("DOWN+NOT_RESPONDING, \"Not responding\""));
        assert_eq!(parse_sacct("5_1|NODE_FAIL|0:0|node2\n")[0].nodes, "node2");
    }
}
