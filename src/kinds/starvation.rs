//! Gradient starvation on synthetic features.
//!
//! Orthonormal features A, B, C, D. Positives carry A, and a fraction p of
//! them B too; negatives carry C, and a fraction p of them D too. B is as
//! informative as A (it never appears with the wrong label) but rarer. Once
//! A has made every point confident, cross-entropy's push on the A + B points
//! has decayed and B is barely learned; hinge stops as soon as every margin
//! reaches 1, with B far below A. The control replaces A + B by B alone.
//!
//! B's strength is read from the margins: for the linear model the A-only
//! points have margin w_A and the A + B points w_A + w_B (control: B-only
//! points, w_B), so w_B / w_A = (m_AB - m_A) / m_A (control: m_B / m_A); the
//! same ratio is measured for the two-layer net ("what B adds"). At the end,
//! each net is tested on noisy B-only points: x = y B + noise (positives) or
//! D + noise (negatives), which only a learned B classifies.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{job_config, Job, JobId, Kind};
use crate::engine::{self, EnsembleData, EnsembleWeights, RecordWeights, TrainConfig, TrainInput, TrainLog};
use crate::figure::{palette, FigureBody, Panel, Series, Source, Style};
use crate::rng;
use crate::rng::random_layers;
use crate::stats::mean_min_max;
use crate::theory;
use crate::values::{Count, Fraction, Loss, NonNegative, Outputs, Positive};

/// This kind's source files (see `kinds::files`).
pub const FILES: &[&str] = &[file!()];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Starvation {
    /// Points per class.
    pub per_class: Count,
    /// The fractions p of each class that carry the rare feature; each a
    /// multiple of 1 / per_class.
    pub frequencies: Vec<Fraction>,
    /// Cross-entropy runs: rate and steps (long, to see w_B crawl).
    pub learning_rate: Positive,
    pub steps: Count,
    /// Hinge runs freeze early, and a coarse rate would shift where: a
    /// smaller rate, for fewer steps.
    pub hinge_learning_rate: Positive,
    pub hinge_steps: Count,
    pub log_points: Count,
    /// The two-layer net: width and init scale (weights ~ normal(0, scale^2 / fan_in)).
    pub hidden_width: Count,
    pub random_scale: Positive,
    /// Seeds of the two-layer init (the linear model starts at zero).
    pub seed_count: Count,
    pub test_points: Count,
    /// Standard deviation of the Gaussian noise on each of the 4 coordinates of a test point.
    pub test_noise: NonNegative,
    pub test_seed: u64,
    /// Largest step of the RK4 integration of the theory.
    pub theory_dt: Positive,
}

const DIM: usize = 4;
// The coordinates of the four features.
const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const D: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Model {
    Linear,
    TwoLayer,
}

impl Model {
    fn name(self) -> &'static str {
        match self {
            Model::Linear => "linear",
            Model::TwoLayer => "two-layer",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub(crate) model: Model,
    pub(crate) loss: Loss,
    /// B without A: the rare feature alone.
    pub(crate) control: bool,
}

impl Run {
    fn name(self) -> String {
        format!(
            "{}, {}, {}",
            self.model.name(),
            self.loss.name(),
            if self.control { "control (B without A)" } else { "starved (A + B)" }
        )
    }
}

fn runs() -> Vec<Run> {
    let mut out = Vec::new();
    for model in [Model::Linear, Model::TwoLayer] {
        for loss in [Loss::CrossEntropy, Loss::Hinge] {
            for control in [false, true] {
                out.push(Run { model, loss, control });
            }
        }
    }
    out
}

fn ratio_scalar(run: Run, p: f64) -> String {
    format!("{}, p = {p}: B / A strength at the end", run.name())
}
/// `ratio_scalar` per seed (the two-layer net's runs, which have seeds).
fn ratio_samples(run: Run, p: f64) -> String {
    format!("{}, p = {p}: B / A strength at the end, per seed", run.name())
}
fn accuracy_scalar(run: Run, p: f64) -> String {
    format!("{}, p = {p}: B-only test accuracy", run.name())
}
fn versus_control_scalar(model: Model, p: f64) -> String {
    format!("{}, cross-entropy, p = {p}: B strength, starved / control, at the end", model.name())
}
fn accuracy_gain_scalar(model: Model, p: f64) -> String {
    format!("{}, cross-entropy, p = {p}: B-only test accuracy, control minus starved", model.name())
}
/// Per seed (the two-layer net's seeds, paired: the starved and the control
/// run of one seed share its index): B's final strength, starved / control.
fn versus_control_samples(model: Model, p: f64) -> String {
    format!("{}, cross-entropy, p = {p}: B strength, starved / control, per seed", model.name())
}
/// The counterfactual: the control arm in place of the starved one (seed k's
/// control over seed k+1's), where no starvation can show.
fn control_versus_control_samples(model: Model, p: f64) -> String {
    format!("{}, cross-entropy, p = {p}: B strength, control / another seed's control, per seed", model.name())
}
fn accuracy_gain_samples(model: Model, p: f64) -> String {
    format!("{}, cross-entropy, p = {p}: B-only test accuracy, control minus starved, per seed", model.name())
}
fn control_accuracy_gain_samples(model: Model, p: f64) -> String {
    format!(
        "{}, cross-entropy, p = {p}: B-only test accuracy, control minus another seed's control, per seed",
        model.name()
    )
}

/// The first logged index (at least `skip`) from which the two-layer ratio
/// (m_A+B - m_A) / m_A is drawn: where the mean over seeds of m_A has reached
/// a tenth of its final value. Before that it divides by a margin near zero
/// and swings over any range, squeezing the informative part of the panel.
pub(crate) fn ratio_defined_from(strengths: &[Vec<(f64, f64)>], skip: usize) -> usize {
    let steps = strengths.first().map_or(0, Vec::len);
    let mean_a = |t: usize| strengths.iter().map(|c| c[t].1).sum::<f64>() / strengths.len() as f64;
    let end = if steps == 0 { 0.0 } else { mean_a(steps - 1) };
    (0..steps).find(|&t| mean_a(t) >= 0.1 * end).unwrap_or(0).max(skip)
}

fn gap_scalar(loss: Loss) -> String {
    format!("linear, {}: largest gap of w_B to the ODE for t >= 1 (% of w_A)", loss.name())
}
impl Starvation {
    pub(crate) fn model_seeds(&self, model: Model) -> Vec<u64> {
        if model == Model::Linear {
            Vec::new()
        } else {
            self.seeds()
        }
    }

    fn rare_count(&self, p: f64) -> usize {
        (p * self.per_class.get() as f64).round() as usize
    }

    /// One class of the training set for frequency p: (feature sets, label).
    fn training_points(&self, p: f64, control: bool) -> Vec<(Vec<usize>, f64)> {
        let rare = self.rare_count(p);
        let mut out = Vec::new();
        for (label, common, extra) in [(1.0, A, B), (-1.0, C, D)] {
            for i in 0..self.per_class.usize() {
                let features = match (i < rare, control) {
                    (true, false) => vec![common, extra],
                    (true, true) => vec![extra],
                    (false, _) => vec![common],
                };
                out.push((features, label));
            }
        }
        out
    }

    /// One run's ensemble: members frequency by frequency, every seed side by
    /// side (the linear model, from zero, one member per frequency).
    pub(crate) fn training_input(&self, run: Run) -> TrainInput {
        let seeds = self.model_seeds(run.model);
        let n = 2 * self.per_class.usize();
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut layers: Vec<Vec<f32>> = Vec::new();
        let shapes = match run.model {
            Model::Linear => vec![(1, DIM)],
            Model::TwoLayer => vec![(self.hidden_width.usize(), DIM), (1, self.hidden_width.usize())],
        };
        layers.resize(shapes.len(), Vec::new());
        // The linear model starts at zero: one member per frequency, and no seed.
        let member_seeds: Vec<Option<u64>> =
            if seeds.is_empty() { vec![None] } else { seeds.iter().copied().map(Some).collect() };
        for f in &self.frequencies {
            for seed in &member_seeds {
                for (features, label) in self.training_points(f.get(), run.control) {
                    x.extend((0..DIM).map(|d| if features.contains(&d) { 1.0f32 } else { 0.0 }));
                    y.push(label as f32);
                }
                match run.model {
                    Model::Linear => layers[0].extend([0.0f32; DIM]),
                    Model::TwoLayer => {
                        let seed = seed.expect("two-layer runs have seeds");
                        for (l, w) in random_layers("starvation/two-layer-init", seed, &shapes, self.random_scale.get())
                            .into_iter()
                            .enumerate()
                        {
                            layers[l].extend(w);
                        }
                    }
                }
            }
        }
        let members = y.len() / n;
        let data = EnsembleData { members, points: n, dim: DIM, x, y };
        let init = EnsembleWeights { members, shapes, layers };
        let (rate, steps) = match run.loss {
            Loss::CrossEntropy => (self.learning_rate, self.steps),
            Loss::Hinge => (self.hinge_learning_rate, self.hinge_steps),
        };
        let cfg = TrainConfig {
            record_weights: RecordWeights::Last,
            ..TrainConfig::logged(run.loss, rate.get(), steps.get(), self.log_points.get())
        };
        TrainInput { init, data, cfg }
    }

    /// B's and A's strengths from one member's margins (see the module doc).
    pub(crate) fn strengths(&self, margins: &[f32], p: f64, control: bool) -> (f64, f64) {
        let points = self.training_points(p, control);
        let mean = |pick: &dyn Fn(&[usize]) -> bool| -> f64 {
            let picked: Vec<f64> =
                points.iter().zip(margins).filter(|((f, _), _)| pick(f)).map(|(_, &m)| m as f64).collect();
            picked.iter().sum::<f64>() / picked.len() as f64
        };
        let common_only = mean(&|f| f.len() == 1 && (f[0] == A || f[0] == C));
        let with_rare = mean(&|f| f.contains(&B) || f.contains(&D));
        if control {
            (with_rare, common_only)
        } else {
            (with_rare - common_only, common_only)
        }
    }

    /// The noisy B-only test set: (label, x), alternately a B (+1) and a D
    /// (-1) point plus Gaussian noise on every coordinate.
    pub(crate) fn test_set(&self) -> Vec<(f64, Vec<f32>)> {
        let mut r = rng::stream("starvation/test", self.test_seed);
        (0..self.test_points.usize())
            .map(|i| {
                let (label, feature) = if i % 2 == 0 { (1.0, B) } else { (-1.0, D) };
                let x = (0..DIM)
                    .map(|d| {
                        ((if d == feature { 1.0 } else { 0.0 }) + self.test_noise.get() * rng::normal(&mut r)) as f32
                    })
                    .collect();
                (label, x)
            })
            .collect()
    }
}

/// One colour per frequency p, in every time panel.
const FREQUENCY_COLORS: [&str; 6] =
    [palette::BLUE, palette::ORANGE, palette::GREEN, palette::VERMILLION, palette::PURPLE, palette::SKY_BLUE];

impl Kind for Starvation {
    fn seeds(&self) -> Vec<u64> {
        (0..self.seed_count.get()).collect()
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.frequencies.is_empty() {
            p.push("frequencies: expected at least one".into());
        }
        // One colour per frequency (the legend rule refuses a colour that means two things).
        if self.frequencies.len() > FREQUENCY_COLORS.len() {
            p.push(format!("frequencies: expected at most {}, one colour each", FREQUENCY_COLORS.len()));
        }
        // At the frequency to change (`frequencies[i]`, see `spec::field_span`).
        for (i, f) in self.frequencies.iter().enumerate() {
            let n = f.get() * self.per_class.get() as f64;
            if (n - n.round()).abs() > 1e-9 || n < 1.0 {
                p.push(format!(
                    "frequencies[{i}]: {} is not a positive multiple of 1 / per_class = 1/{}",
                    f.get(),
                    self.per_class.get()
                ));
            }
            if f.get() >= 1.0 {
                p.push(format!(
                    "frequencies[{i}]: {} leaves no point with the common feature alone; expected p < 1",
                    f.get()
                ));
            }
        }
        for (i, f) in self.frequencies.iter().enumerate() {
            if self.frequencies[..i].contains(f) {
                p.push(format!("frequencies[{i}]: {} is listed twice", f.get()));
            }
        }
        p
    }

    fn outputs(&self) -> Outputs {
        let mut out = Outputs::default();
        out.scalars.push(gap_scalar(Loss::CrossEntropy));
        out.scalars.push(gap_scalar(Loss::Hinge));
        for run in runs() {
            for f in &self.frequencies {
                out.scalars.push(ratio_scalar(run, f.get()));
                out.scalars.push(accuracy_scalar(run, f.get()));
                if run.model == Model::TwoLayer && run.loss == Loss::CrossEntropy {
                    out.samples.push(ratio_samples(run, f.get()));
                }
            }
        }
        for f in &self.frequencies {
            for model in [Model::Linear, Model::TwoLayer] {
                out.scalars.push(versus_control_scalar(model, f.get()));
                out.scalars.push(accuracy_gain_scalar(model, f.get()));
            }
            out.samples.extend([
                versus_control_samples(Model::TwoLayer, f.get()),
                control_versus_control_samples(Model::TwoLayer, f.get()),
                accuracy_gain_samples(Model::TwoLayer, f.get()),
                control_accuracy_gain_samples(Model::TwoLayer, f.get()),
            ]);
        }
        out
    }

    fn jobs(&self) -> Vec<Job> {
        Job::numbered(runs().into_iter().map(|run| {
            let seeds = self.model_seeds(run.model);
            let mut config = job_config(
                self,
                &[
                    ("theory_dt", json!(null)),
                    ("test_points", json!(null)),
                    ("test_noise", json!(null)),
                    ("test_seed", json!(null)),
                    ("model", json!(if run.model == Model::Linear { "linear" } else { "two-layer" })),
                    ("loss", json!(run.loss)),
                    ("control", json!(run.control)),
                ],
            );
            if run.model == Model::Linear {
                for key in ["hidden_width", "random_scale", "seed_count"] {
                    config[key] = json!(null);
                }
            }
            let unused: [&str; 2] = if run.loss == Loss::Hinge {
                ["learning_rate", "steps"]
            } else {
                ["hinge_learning_rate", "hinge_steps"]
            };
            for key in unused {
                config[key] = json!(null);
            }
            // Members run frequency by frequency, every seed side by side;
            // the linear model starts at zero: one member, "seed 0".
            let per_frequency = if seeds.is_empty() { vec![0] } else { seeds.clone() };
            let member_seeds = self.frequencies.iter().flat_map(|_| per_frequency.iter().copied()).collect();
            Job { id: JobId(0), name: run.name(), config, member_seeds, seeds }
        }))
    }

    fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        let run = *runs().get(job.id.0).ok_or_else(|| anyhow::anyhow!("starvation has no job {:?}", job.id))?;
        Ok(self.training_input(run))
    }

    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        let runs = runs();
        ensure!(logs.len() == runs.len(), "starvation expects {} job logs, got {}", runs.len(), logs.len());
        let n = 2 * self.per_class.usize();
        let test = self.test_set();
        // Accuracy of one member's final weights on the test set.
        let accuracy_of = |weights: &EnsembleWeights, member: usize| -> f64 {
            test.iter().filter(|(label, x)| label * engine::forward(weights, member, x) > 0.0).count() as f64
                / test.len() as f64
        };
        let ps: Vec<f64> = self.frequencies.iter().map(|f| f.get()).collect();
        let colors = FREQUENCY_COLORS;
        let mut body = FigureBody {
            panels: vec![
                Panel::over_log_time("linear, cross-entropy", "w_B / w_A (solid: measured, dashed: ODE)"),
                Panel::over_log_time("linear, hinge", "w_B / w_A (solid: measured, dashed: ODE)"),
                Panel::over_log_time("two-layer, CE: what B adds, from m_A at 10%", "(m_A+B - m_A) / m_A"),
                Panel::new(
                    "noisy B-only test points",
                    "frequency p of the rare feature B",
                    "test accuracy (end of training, cross-entropy)",
                ),
            ],
            ..Default::default()
        };
        let mut gaps = [0.0f64; 2];
        // Per run, per p: B's final strength (mean over seeds).
        let mut finals: Vec<Vec<f64>> = Vec::new();
        // Per run, per p, per seed: B's final strength and the B-only test accuracy.
        let mut per_seed: Vec<Vec<(Vec<f64>, Vec<f64>)>> = Vec::new();
        for (&run, log) in runs.iter().zip(logs) {
            let seeds = self.model_seeds(run.model);
            let per_p = seeds.len().max(1);
            let times = log.times();
            let skip = crate::stats::leading_zero_times(&times);
            let short = format!(
                "{} {}",
                if run.model == Model::Linear { "linear" } else { "two-layer" },
                if run.loss == Loss::CrossEntropy { "CE" } else { "hinge" }
            );
            let (_, weights) =
                log.weights.last().ok_or_else(|| anyhow::anyhow!("{}: no final weights logged", run.name()))?;
            let mut run_finals = Vec::new();
            let mut run_per_seed = Vec::new();
            let mut accuracies = Vec::new();
            for (j, &p) in ps.iter().enumerate() {
                let members: Vec<usize> = (j * per_p..(j + 1) * per_p).collect();
                let strengths: Vec<Vec<(f64, f64)>> = members
                    .iter()
                    .map(|&e| {
                        log.margins.iter().map(|m| self.strengths(&m[e * n..(e + 1) * n], p, run.control)).collect()
                    })
                    .collect();
                let curves: Vec<Vec<f64>> = strengths.iter().map(|c| c.iter().map(|(b, a)| b / a).collect()).collect();
                let (mean, _, _) = mean_min_max(&curves);
                body.scalars.insert(ratio_scalar(run, p), *mean.last().unwrap_or(&f64::NAN));
                if run.model == Model::TwoLayer && run.loss == Loss::CrossEntropy {
                    let ends = curves.iter().filter_map(|c| c.last().copied()).filter(|v| v.is_finite());
                    body.samples.insert(ratio_samples(run, p), ends.collect());
                }
                // B's own final strength, for the comparison with the control.
                run_finals.push(
                    strengths.iter().map(|c| c.last().map_or(f64::NAN, |s| s.0)).sum::<f64>() / strengths.len() as f64,
                );
                let seed_accuracies: Vec<f64> = members.iter().map(|&e| accuracy_of(weights, e)).collect();
                let accuracy = seed_accuracies.iter().sum::<f64>() / members.len() as f64;
                run_per_seed
                    .push((strengths.iter().map(|c| c.last().map_or(f64::NAN, |s| s.0)).collect(), seed_accuracies));
                body.scalars.insert(accuracy_scalar(run, p), accuracy);
                accuracies.push(accuracy);
                let panel = match (run.model, run.loss, run.control) {
                    (Model::Linear, Loss::CrossEntropy, false) => Some(0),
                    (Model::Linear, Loss::Hinge, false) => Some(1),
                    (Model::TwoLayer, Loss::CrossEntropy, false) => Some(2),
                    _ => None,
                };
                let Some(panel) = panel else { continue };
                // A colour is a frequency p in all three panels (their titles say the model).
                let color = colors[j % colors.len()];
                body.series.push(
                    Series::mean_over_seeds(format!("{short}, p = {p}"), panel, color, times.clone(), &curves)
                        .skipping(if panel == 2 { ratio_defined_from(&strengths, skip) } else { skip })
                        .legend_label(format!("p = {p}"))
                        .in_legend(panel == 0)
                        .keep_band_if(per_p > 1),
                );
                if run.model == Model::Linear {
                    let theory = theory::starvation_weights(p, run.loss, false, 0.0, &times, self.theory_dt.get());
                    // The measured w_B against the ODE's, relative to w_A.
                    let gap = &mut gaps[usize::from(run.loss == Loss::Hinge)];
                    for ((&t, &(measured_b, _)), &(a, b)) in times.iter().zip(&strengths[0]).zip(&theory) {
                        if t >= 1.0 {
                            *gap = gap.max(100.0 * (measured_b - b).abs() / a);
                        }
                    }
                    let ratio = theory[skip..].iter().map(|(a, b)| b / a).collect();
                    body.series.push(
                        Series::theory(format!("{short} ODE, p = {p}"), panel, times[skip..].to_vec(), ratio)
                            .legend_label("ODE (linear model)")
                            .in_legend(panel == 0 && j + 1 == ps.len()),
                    );
                }
            }
            finals.push(run_finals);
            per_seed.push(run_per_seed);
            if run.loss == Loss::CrossEntropy {
                // The frequencies' colours are taken: the model is black or grey
                // here, the starved net a line and its control points.
                let color = if run.model == Model::Linear { palette::BLACK } else { palette::GREY };
                let what = if run.control { "control (B alone)" } else { "starved (A + B)" };
                let name = format!("{short}, {what}");
                let label = format!("{}, {what}", if run.model == Model::Linear { "linear" } else { "two-layer" });
                let series = Series::line(name, 3, Source::Measured, color, ps.clone(), accuracies).legend_label(label);
                body.series.push(if run.control { series.styled(Style::Points) } else { series });
            }
        }
        body.scalars.insert(gap_scalar(Loss::CrossEntropy), gaps[0]);
        body.scalars.insert(gap_scalar(Loss::Hinge), gaps[1]);
        for model in [Model::Linear, Model::TwoLayer] {
            let find = |control: bool| {
                runs.iter()
                    .position(|r| r.model == model && r.loss == Loss::CrossEntropy && r.control == control)
                    .expect("every run exists")
            };
            let (starved, control) = (&finals[find(false)], &finals[find(true)]);
            for (j, &p) in ps.iter().enumerate() {
                body.scalars.insert(versus_control_scalar(model, p), starved[j] / control[j]);
                let run = |control: bool| runs[find(control)];
                let accuracy = |control: bool| body.scalars[&accuracy_scalar(run(control), p)];
                let gain = accuracy(true) - accuracy(false);
                body.scalars.insert(accuracy_gain_scalar(model, p), gain);
                if model == Model::TwoLayer {
                    let ((starved_b, starved_acc), (control_b, control_acc)) =
                        (&per_seed[find(false)][j], &per_seed[find(true)][j]);
                    // Seed k's control against seed k+1's (cyclically): two runs of one arm.
                    let pairs = |a: &[f64], b: &[f64], f: fn(f64, f64) -> f64| -> Vec<f64> {
                        a.iter().zip(b).map(|(&a, &b)| f(a, b)).filter(|v| v.is_finite()).collect()
                    };
                    let ratio: fn(f64, f64) -> f64 = |a, b| a / b;
                    let minus: fn(f64, f64) -> f64 = |a, b| a - b;
                    body.samples.insert(versus_control_samples(model, p), pairs(starved_b, control_b, ratio));
                    body.samples.insert(
                        control_versus_control_samples(model, p),
                        pairs(control_b, &crate::stats::next_seed(control_b), ratio),
                    );
                    body.samples.insert(accuracy_gain_samples(model, p), pairs(control_acc, starved_acc, minus));
                    body.samples.insert(
                        control_accuracy_gain_samples(model, p),
                        pairs(control_acc, &crate::stats::next_seed(control_acc), minus),
                    );
                }
            }
        }
        Ok(body)
    }
}
