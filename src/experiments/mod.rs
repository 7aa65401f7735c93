//! One module per kind of figure. Each kind is three pure functions:
//! `jobs` (the trainings it needs, each a cacheable unit), `run_job` (one
//! training: config and seeds in, `TrainLog` out) and `assemble` (training
//! logs in, figure data out, with the theory beside the measurement).

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::figure::{Divergence, FigureBody};
use crate::spec::Outputs;
use crate::train::{self, TrainInput, TrainLog};

pub mod chain;
pub mod digits;
pub mod frequency;
pub mod losses;
pub mod modes;
pub mod phase_diagram;
pub mod sigmoid;
pub mod starvation;

/// The experiment of a figure: `[figure.experiment.<kind>]` in paper.toml.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentSpec {
    PhaseDiagram(phase_diagram::Config),
    Sigmoid(sigmoid::Config),
    Chain(chain::Config),
    Modes(modes::Config),
    Losses(losses::Config),
    Frequency(frequency::Config),
    Starvation(starvation::Config),
    Digits(digits::Config),
}

/// One training of an ensemble: the unit of caching and of parallelism.
#[derive(Debug, Clone)]
pub struct Job {
    /// Unique within the figure, e.g. "grid" or "depth 2, aligned".
    pub name: String,
    /// Everything the job's result depends on besides seeds and code.
    pub config: serde_json::Value,
    pub seeds: Vec<u64>,
    /// Networks trained side by side (for progress and reports).
    pub members: usize,
}

impl ExperimentSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ExperimentSpec::PhaseDiagram(_) => "phase_diagram",
            ExperimentSpec::Sigmoid(_) => "sigmoid",
            ExperimentSpec::Chain(_) => "chain",
            ExperimentSpec::Modes(_) => "modes",
            ExperimentSpec::Losses(_) => "losses",
            ExperimentSpec::Frequency(_) => "frequency",
            ExperimentSpec::Starvation(_) => "starvation",
            ExperimentSpec::Digits(_) => "digits",
        }
    }

    /// This kind's own files: see `kind_files`.
    pub fn kind_files(&self) -> &'static [&'static str] {
        kind_files(self.kind())
    }

    /// Problems that involve several values at once (each value alone was
    /// checked while parsing).
    pub fn problems(&self) -> Vec<String> {
        match self {
            ExperimentSpec::PhaseDiagram(c) => c.problems(),
            ExperimentSpec::Sigmoid(c) => c.problems(),
            ExperimentSpec::Chain(c) => c.problems(),
            ExperimentSpec::Modes(c) => c.problems(),
            ExperimentSpec::Losses(c) => c.problems(),
            ExperimentSpec::Frequency(c) => c.problems(),
            ExperimentSpec::Starvation(c) => c.problems(),
            ExperimentSpec::Digits(c) => c.problems(),
        }
    }

    pub fn outputs(&self) -> Outputs {
        match self {
            ExperimentSpec::PhaseDiagram(c) => c.outputs(),
            ExperimentSpec::Sigmoid(c) => c.outputs(),
            ExperimentSpec::Chain(c) => c.outputs(),
            ExperimentSpec::Modes(c) => c.outputs(),
            ExperimentSpec::Losses(c) => c.outputs(),
            ExperimentSpec::Frequency(c) => c.outputs(),
            ExperimentSpec::Starvation(c) => c.outputs(),
            ExperimentSpec::Digits(c) => c.outputs(),
        }
    }

    pub fn seeds(&self) -> Vec<u64> {
        match self {
            ExperimentSpec::PhaseDiagram(c) => c.seeds(),
            ExperimentSpec::Sigmoid(c) => c.seeds(),
            ExperimentSpec::Chain(c) => c.seeds(),
            ExperimentSpec::Modes(c) => c.seeds(),
            ExperimentSpec::Losses(c) => c.seeds(),
            ExperimentSpec::Frequency(c) => c.seeds(),
            ExperimentSpec::Starvation(c) => c.seeds(),
            ExperimentSpec::Digits(c) => c.seeds(),
        }
    }

    pub fn jobs(&self) -> Vec<Job> {
        match self {
            ExperimentSpec::PhaseDiagram(c) => c.jobs(),
            ExperimentSpec::Sigmoid(c) => c.jobs(),
            ExperimentSpec::Chain(c) => c.jobs(),
            ExperimentSpec::Modes(c) => c.jobs(),
            ExperimentSpec::Losses(c) => c.jobs(),
            ExperimentSpec::Frequency(c) => c.jobs(),
            ExperimentSpec::Starvation(c) => c.jobs(),
            ExperimentSpec::Digits(c) => c.jobs(),
        }
    }

    /// One job's training: prepared by its kind, run by the engine.
    pub fn run_job(&self, job: &Job) -> Result<TrainLog> {
        let input = self.prepare_job(job)?;
        train::train(&input.init, &input.data, &input.cfg)
    }

    /// What the engine needs to run one job: init, data and schedule.
    pub fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        match self {
            ExperimentSpec::PhaseDiagram(c) => c.prepare_job(job),
            ExperimentSpec::Sigmoid(c) => c.prepare_job(job),
            ExperimentSpec::Chain(c) => c.prepare_job(job),
            ExperimentSpec::Modes(c) => c.prepare_job(job),
            ExperimentSpec::Losses(c) => c.prepare_job(job),
            ExperimentSpec::Frequency(c) => c.prepare_job(job),
            ExperimentSpec::Starvation(c) => c.prepare_job(job),
            ExperimentSpec::Digits(c) => c.prepare_job(job),
        }
    }

    /// Builds the figure from its jobs' logs, given in the order of `jobs()`.
    pub fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        match self {
            ExperimentSpec::PhaseDiagram(c) => c.assemble(logs),
            ExperimentSpec::Sigmoid(c) => c.assemble(logs),
            ExperimentSpec::Chain(c) => c.assemble(logs),
            ExperimentSpec::Modes(c) => c.assemble(logs),
            ExperimentSpec::Losses(c) => c.assemble(logs),
            ExperimentSpec::Frequency(c) => c.assemble(logs),
            ExperimentSpec::Starvation(c) => c.assemble(logs),
            ExperimentSpec::Digits(c) => c.assemble(logs),
        }
    }
}

/// The kind files (src/experiments/<kind>.rs) a kind's jobs run: its own,
/// then those of the kinds it trains through. A job's key covers these and
/// every other file that is not in `provenance::AFTER_TRAINING`, so it
/// follows this module (shared helpers, `random_layers`), the engines and the
/// random streams without anyone listing them here. tests/fingerprint.rs
/// fails if a kind file names another kind's module that is not listed.
pub fn kind_files(kind: &str) -> &'static [&'static str] {
    match kind {
        "phase_diagram" => &["src/experiments/phase_diagram.rs"],
        "sigmoid" => &["src/experiments/sigmoid.rs"],
        "chain" => &["src/experiments/chain.rs"],
        // Both train the sigmoid kind's models.
        "modes" => &["src/experiments/modes.rs", "src/experiments/sigmoid.rs"],
        "losses" => &["src/experiments/losses.rs", "src/experiments/sigmoid.rs"],
        "frequency" => &["src/experiments/frequency.rs"],
        "starvation" => &["src/experiments/starvation.rs"],
        "digits" => &["src/experiments/digits.rs"],
        _ => panic!("no kind files listed for the experiment kind {kind:?}"),
    }
}

/// A job's config: the experiment's config as JSON with some fields replaced.
pub fn job_config<T: Serialize>(config: &T, replace: &[(&str, serde_json::Value)]) -> serde_json::Value {
    let mut value = serde_json::to_value(config).expect("configs serialize");
    if let serde_json::Value::Object(map) = &mut value {
        for (k, v) in replace {
            map.insert((*k).to_string(), v.clone());
        }
    }
    value
}

/// Mean, min and max over seeds of per-seed curves of equal length, over the
/// finite values only: a diverged seed (recorded in the figure's
/// `divergences`) drops out of the mean and band from where it diverged.
/// NaN where no seed is finite.
pub fn mean_min_max(curves: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let len = curves.first().map_or(0, Vec::len);
    let mut mean = vec![f64::NAN; len];
    let mut lo = vec![f64::NAN; len];
    let mut hi = vec![f64::NAN; len];
    for i in 0..len {
        let finite: Vec<f64> = curves.iter().map(|c| c[i]).filter(|v| v.is_finite()).collect();
        if !finite.is_empty() {
            mean[i] = finite.iter().sum::<f64>() / finite.len() as f64;
            lo[i] = finite.iter().copied().fold(f64::INFINITY, f64::min);
            hi[i] = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        }
    }
    (mean, lo, hi)
}

/// The trainings of a job's log that produced NaN or infinity, for the
/// figure's `divergences`; `seed_of` maps a member to its seed.
pub fn divergences(job: &str, log: &TrainLog, seed_of: impl Fn(usize) -> u64) -> Vec<Divergence> {
    log.diverged_at
        .iter()
        .enumerate()
        .filter_map(|(member, step)| {
            step.map(|step| Divergence { job: job.into(), member, seed: seed_of(member), step })
        })
        .collect()
}

/// How many logged times lead the schedule at t = 0, which has no place on a
/// log-time axis: series drawn against log t start after them.
pub fn leading_zero_times(times: &[f64]) -> usize {
    times.iter().take_while(|&&t| t <= 0.0).count()
}

/// The largest of the values, or NaN if any is NaN (f64::max would skip it,
/// and a gap that cannot be measured must fail its claim).
pub fn max_or_nan(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(0.0, |a: f64, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) })
}

/// Weights of a plain random init, layer by layer (row-major (out, in)):
/// normal(0, scale^2 / fan_in), drawn from the stream (purpose, seed).
pub fn random_layers(purpose: &str, seed: u64, shapes: &[(usize, usize)], scale: f64) -> Vec<Vec<f32>> {
    let mut r = crate::rng::stream(purpose, seed);
    shapes
        .iter()
        .map(|&(o, i)| {
            let std = scale / (i as f64).sqrt();
            (0..o * i).map(|_| (std * crate::rng::normal(&mut r)) as f32).collect()
        })
        .collect()
}

/// The first time a logged series reaches `target`, linearly interpolated
/// between the two logged points around the crossing; None if it never does.
pub fn crossing_time(times: &[f64], values: &[f64], target: f64) -> Option<f64> {
    let first = values.iter().position(|&v| v >= target)?;
    if first == 0 {
        return Some(times[0]);
    }
    let (t0, t1, v0, v1) = (times[first - 1], times[first], values[first - 1], values[first]);
    Some(t0 + (t1 - t0) * (target - v0) / (v1 - v0))
}

/// Least-squares slope of ln y against ln x.
pub fn loglog_slope(x: &[f64], y: &[f64]) -> f64 {
    let lx: Vec<f64> = x.iter().map(|v| v.ln()).collect();
    let ly: Vec<f64> = y.iter().map(|v| v.ln()).collect();
    let n = lx.len() as f64;
    let (mx, my) = (lx.iter().sum::<f64>() / n, ly.iter().sum::<f64>() / n);
    let cov: f64 = lx.iter().zip(&ly).map(|(a, b)| (a - mx) * (b - my)).sum();
    let var: f64 = lx.iter().map(|a| (a - mx) * (a - mx)).sum();
    cov / var
}
