//! What a run would do, without training: every shard of every job with its key, whether
//! the cache has it and what it would cost (`plan`), and every figure as
//! current, stale or missing with the reasons a user acts on (`statuses`).
//!
//! A figure is current when its committed JSON carries the key this tree's
//! code and `paper.toml` give it; the reasons for a stale one come from
//! comparing what that JSON recorded (config, seeds, toolchain, every source
//! file's hash) with now. Costs are `pipeline::estimate_seconds`: the job
//! records of earlier runs (`records.rs`) where there are any, a model of the
//! work (steps x networks x points x weights) otherwise.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::cache::Cache;
use crate::figure::FigureData;
use crate::pipeline::{self, Estimate, PlannedJob, Status};
use crate::records::{changed_files, changed_values};
use crate::spec::{FigureSpec, Paper};

/// One shard of a job, as a run would find it: what `plan --json` prints,
/// one object per line, and what the cluster path assigns to tasks.
#[derive(Debug, Clone, Serialize)]
pub struct ShardPlan {
    pub figure: String,
    pub job: String,
    /// The job's key (`pipeline::job_key`).
    pub job_key: String,
    /// The shard's cache key (`pipeline::shard_key`).
    pub key: String,
    /// Networks `members[0]..members[1]` (end excluded) of the job's `of`.
    pub members: [usize; 2],
    pub of: usize,
    pub networks: usize,
    pub cached: bool,
    /// Seconds of training this shard needs (0 when cached), where known.
    pub estimate_seconds: Option<f64>,
    /// Where the estimate came from; none when cached or unknown.
    pub estimate_from: Option<Estimate>,
    /// Why it would run ("new", "config changed: ..."); none when cached.
    pub why: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FigureStatus {
    pub id: String,
    pub state: Status,
    /// Why it is stale or missing, in words; empty when current.
    pub reasons: Vec<String>,
    pub shards: usize,
    pub uncached: usize,
    /// Seconds of training its uncached shards need, summed over those with an estimate.
    pub estimate_seconds: f64,
    /// Uncached shards without an estimate.
    pub unestimated: usize,
}

/// Every shard of every job of the selected figures (all when `only` is empty).
pub fn plan(paper: &Paper, only: &[String], cache_dir: &Path, force: bool) -> Result<Vec<ShardPlan>> {
    let figures = pipeline::select(paper, only)?;
    let cache = Cache::open(cache_dir)?;
    let planned = pipeline::plan(&figures);
    Ok(planned.iter().flat_map(|p| shard_plans(figures[p.figure], p, &cache, cache_dir, force)).collect())
}

fn shard_plans(fig: &FigureSpec, p: &PlannedJob, cache: &Cache, cache_dir: &Path, force: bool) -> Vec<ShardPlan> {
    let cached: Vec<bool> = p.shards.iter().map(|shard| !force && cache.path(&shard.key).exists()).collect();
    // Why and how long: only for a job with something to run (they read its record).
    let todo = cached.iter().any(|&c| !c);
    let why = todo.then(|| pipeline::why_job_runs(fig, p, cache_dir, force));
    let per_network = todo.then(|| pipeline::estimate_seconds_per_network(fig, p, cache_dir)).flatten();
    p.shards
        .iter()
        .zip(cached)
        .map(|(shard, cached)| {
            let (estimate_seconds, estimate_from) = match (cached, per_network) {
                (true, _) => (Some(0.0), None),
                (false, Some((per, from))) => (Some(per * shard.members.len() as f64), Some(from)),
                (false, None) => (None, None),
            };
            ShardPlan {
                figure: fig.id().to_string(),
                job: p.job.name.clone(),
                job_key: p.key.clone(),
                key: shard.key.clone(),
                members: [shard.members.start, shard.members.end],
                of: p.job.members(),
                networks: shard.members.len(),
                cached,
                estimate_seconds,
                estimate_from,
                why: if cached { None } else { why.clone() },
            }
        })
        .collect()
}

/// Every selected figure's state against its committed JSON in `out_dir`.
pub fn statuses(paper: &Paper, only: &[String], out_dir: &Path, cache_dir: &Path) -> Result<Vec<FigureStatus>> {
    let figures = pipeline::select(paper, only)?;
    let planned = pipeline::plan(&figures);
    let cache = Cache::open(cache_dir)?;
    let mut out = Vec::new();
    for (f, fig) in figures.iter().enumerate() {
        let jobs: Vec<&PlannedJob> = planned.iter().filter(|p| p.figure == f).collect();
        let plans: Vec<ShardPlan> = jobs.iter().flat_map(|p| shard_plans(fig, p, &cache, cache_dir, false)).collect();
        let path = out_dir.join(format!("{}.json", fig.id()));
        let (committed, state, _) = pipeline::status(fig, out_dir);
        let mut reasons = match (state, committed) {
            (Status::Current, _) => Vec::new(),
            (Status::Missing, _) => vec![format!("no {}", path.display())],
            (Status::Stale, Some(committed)) => stale_reasons(fig, &committed)?,
            (Status::Stale, None) => vec![format!("{} does not parse (made by an older version?)", path.display())],
        };
        let uncached: Vec<&ShardPlan> = plans.iter().filter(|p| !p.cached).collect();
        if state != Status::Current && !uncached.is_empty() {
            reasons.push(format!("{} of {} shards not cached", uncached.len(), plans.len()));
        }
        out.push(FigureStatus {
            id: fig.id().to_string(),
            state,
            reasons,
            shards: plans.len(),
            uncached: uncached.len(),
            estimate_seconds: uncached.iter().filter_map(|p| p.estimate_seconds).fold(0.0, |a, b| a + b),
            unestimated: uncached.iter().filter(|p| p.estimate_seconds.is_none()).count(),
        });
    }
    Ok(out)
}

/// What differs between the committed figure and what this tree would make.
fn stale_reasons(fig: &FigureSpec, committed: &FigureData) -> Result<Vec<String>> {
    let was = &committed.provenance;
    let mut reasons = Vec::new();
    let config = serde_json::to_value(&fig.experiment)?;
    let values = changed_values(&was.config, &config);
    if !values.is_empty() {
        let shown: Vec<String> = values.iter().map(ToString::to_string).collect();
        reasons.push(format!("paper.toml changed: {}", listed(&shown)));
    }
    if was.files.is_empty() {
        reasons.push("made by a version that did not record its files' hashes: cannot name changed files".into());
    } else {
        let now: BTreeMap<String, String> =
            crate::provenance::source_files().iter().map(|(p, h)| (p.to_string(), h.to_string())).collect();
        let files = changed_files(&was.files, &now);
        if !files.is_empty() {
            reasons.push(format!("code changed: {}", listed(&files)));
        }
    }
    if was.seeds != fig.experiment.kind().seeds() {
        reasons.push("seeds changed".into());
    }
    if was.toolchain != crate::provenance::TOOLCHAIN {
        reasons.push(format!("toolchain changed: {} -> {}", was.toolchain, crate::provenance::TOOLCHAIN));
    }
    if committed.title != fig.title {
        reasons.push("title changed".into());
    }
    let claims: Vec<&str> = committed.claims.iter().map(|c| c.name.as_str()).collect();
    if claims != fig.claims.iter().map(|c| c.name.as_str()).collect::<Vec<_>>() {
        reasons.push("claims changed".into());
    }
    if reasons.is_empty() {
        reasons.push("a claim's check, the caption or the build settings changed".into());
    }
    Ok(reasons)
}

/// At most five items, then how many more.
fn listed(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = items.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > SHOWN {
        text.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    text
}
