//! The sigmoidal error curve: training error over time for the linear model
//! and bias-free ReLU nets of depth 2, 3, ..., on N points along orthogonal
//! directions (x_i = s_i e_i, random labels, log-normal norms).
//!
//! Exact theory where it exists: the linear model's margins decouple and have
//! a closed form (`theory::linear_ce_crossing_time`), and an aligned net's
//! modes are independent scalar chains (`theory::Mode`), so the theory error
//! curve is computed point by point from each seed's own initialisation.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{job_config, Job, JobId, Kind};
use crate::engine::{EnsembleData, EnsembleWeights, TrainConfig, TrainInput, TrainLog};
use crate::figure::{palette, FigureBody, Panel, Series};
use crate::rng;
use crate::stats::mean_min_max;
use crate::theory;
use crate::values::{Count, Depth, Fraction, Loss, NonNegative, Outputs, Positive};

/// This kind's source files (see `kinds::files`).
pub const FILES: &[&str] = &[file!()];

/// What every black dashed curve of the sigmoid figure and the figures built
/// from it means, in their legends.
pub const THEORY_LABEL: &str = "theory";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sigmoid {
    pub data: OrthogonalData,
    pub loss: Loss,
    pub learning_rate: Positive,
    pub steps: Count,
    pub log_points: Count,
    /// Seeds 0..seed_count draw the initialisations.
    pub seed_count: Count,
    /// Step of the RK4 integration of the theory.
    pub theory_dt: Positive,
    #[serde(rename = "model")]
    pub models: Vec<Model>,
}

/// `[figure.experiment.<kind>.data]`: the training set of the sigmoid kind
/// and of the kinds that train its models (`modes`, `losses`): N points
/// x_i = s_i e_i along orthogonal directions, with random labels.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OrthogonalData {
    /// N: the number of training points, and the input dimension.
    pub points: Count,
    /// Norms are exp(norm_log_std * normal): log-normal with median 1.
    pub norm_log_std: NonNegative,
    /// Draws the norms and labels (the same data for every seed).
    pub data_seed: u64,
}

impl OrthogonalData {
    /// The norms s_i, then the labels (+-1), from the data seed.
    pub(crate) fn norms_and_labels(&self) -> (Vec<f64>, Vec<f64>) {
        let mut r = rng::stream("sigmoid/data", self.data_seed);
        let n = self.points.usize();
        let norms = (0..n).map(|_| (self.norm_log_std.get() * rng::normal(&mut r)).exp()).collect();
        let labels = (0..n).map(|_| rng::sign(&mut r)).collect();
        (norms, labels)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Names the model's series in the figure.
    pub name: String,
    /// Number of weight matrices: 1 is the linear model.
    pub depth: Depth,
    /// Width of every hidden layer (depth > 1 only).
    pub width: Option<Count>,
    pub init: Init,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Init {
    /// Every weight ~ normal(0, scale^2 / fan_in).
    Random { scale: Positive },
    /// The "proper" init: hidden unit k of every layer sees only point k.
    /// Mode k's hidden weights are scale * exp(log_spread * normal); its
    /// output weight has a random sign (relative to the label) and a
    /// magnitude of r times its smallest hidden weight, r uniform in
    /// [output_ratio_min, output_ratio_max] (< 1: inside the region where
    /// a wrong sign still learns, like c2 of the phase diagram).
    Aligned { scale: Positive, log_spread: NonNegative, output_ratio_min: Fraction, output_ratio_max: Fraction },
    /// Aligned like `aligned`, balanced and right: every weight of mode k is
    /// `scale`, with the output's sign that of point k's label, so every
    /// point starts correct with margin s_k scale^L (nothing random).
    Balanced { scale: Positive },
}

impl Model {
    fn has_theory(&self) -> bool {
        self.depth.get() == 1 || matches!(self.init, Init::Aligned { .. } | Init::Balanced { .. })
    }

    fn gap_scalar(&self) -> String {
        format!("{}: largest gap to theory (points)", self.name)
    }

    fn width_scalar(&self) -> String {
        format!("{}: 10%-90% drop (decades)", self.name)
    }

    fn shape_scalar(&self) -> String {
        format!("{}: exponential / logistic residual ratio", self.name)
    }

    fn theory_series(&self) -> String {
        format!("{} (theory)", self.name)
    }
}

impl Sigmoid {
    /// The training set: norms and labels from the data seed.
    pub(crate) fn norms_and_labels(&self) -> (Vec<f64>, Vec<f64>) {
        self.data.norms_and_labels()
    }

    fn model(&self, job: &Job) -> Result<&Model> {
        self.models.get(job.id.0).ok_or_else(|| anyhow::anyhow!("sigmoid has no job {:?}", job.id))
    }

    fn shapes(&self, model: &Model) -> Vec<(usize, usize)> {
        let n = self.data.points.usize();
        let depth = model.depth.get() as usize;
        let width = model.width.map_or(0, Count::usize);
        (0..depth)
            .map(|l| {
                let fan_in = if l == 0 { n } else { width };
                let out = if l == depth - 1 { 1 } else { width };
                (out, fan_in)
            })
            .collect()
    }

    /// One seed's initial weights (row-major per layer) and, for an aligned
    /// init, each point's mode (its chain of weights, output times label).
    pub(crate) fn init(&self, model: &Model, seed: u64, labels: &[f64]) -> (Vec<Vec<f32>>, Vec<theory::Mode>) {
        let shapes = self.shapes(model);
        let n = self.data.points.usize();
        match model.init {
            Init::Random { scale } => {
                (crate::rng::random_layers("sigmoid/random-init", seed, &shapes, scale.get()), Vec::new())
            }
            Init::Balanced { scale } => {
                let depth = shapes.len();
                let mut layers: Vec<Vec<f32>> = shapes.iter().map(|&(o, i)| vec![0.0; o * i]).collect();
                let (norms, _) = self.norms_and_labels();
                let w = scale.get() as f32;
                let modes = (0..n)
                    .map(|k| {
                        for (l, &(_, width_in)) in shapes[..depth - 1].iter().enumerate() {
                            layers[l][k * width_in + k] = w;
                        }
                        layers[depth - 1][k] = w * labels[k] as f32;
                        theory::Mode { norm: norms[k] as f32 as f64, weights: vec![w as f64; depth] }
                    })
                    .collect();
                (layers, modes)
            }
            Init::Aligned { scale, log_spread, output_ratio_min, output_ratio_max } => {
                let mut r = rng::stream("sigmoid/aligned-init", seed);
                let depth = shapes.len();
                let mut layers: Vec<Vec<f32>> = shapes.iter().map(|&(o, i)| vec![0.0; o * i]).collect();
                let (norms, _) = self.norms_and_labels();
                let mut modes = Vec::with_capacity(n);
                for k in 0..n {
                    let hidden: Vec<f64> =
                        (0..depth - 1).map(|_| scale.get() * (log_spread.get() * rng::normal(&mut r)).exp()).collect();
                    let smallest = hidden.iter().copied().fold(f64::INFINITY, f64::min);
                    let ratio = rng::uniform(&mut r, output_ratio_min.get(), output_ratio_max.get());
                    let out = rng::sign(&mut r) * ratio * smallest;
                    for (l, &a) in hidden.iter().enumerate() {
                        let width_in = shapes[l].1;
                        layers[l][k * width_in + k] = a as f32;
                    }
                    layers[depth - 1][k] = (out * labels[k]) as f32;
                    // The mode as the network computes it, in f32.
                    let mut chain: Vec<f64> = hidden.iter().map(|&a| a as f32 as f64).collect();
                    chain.push((out * labels[k]) as f32 as f64 * labels[k]);
                    modes.push(theory::Mode { norm: norms[k] as f32 as f64, weights: chain });
                }
                (layers, modes)
            }
        }
    }
}

impl Kind for Sigmoid {
    /// Seeds 0..seed_count.
    fn seeds(&self) -> Vec<u64> {
        (0..self.seed_count.get()).collect()
    }

    fn problems(&self) -> Vec<String> {
        model_problems(self.data.points, &self.models, "sigmoid")
    }

    fn outputs(&self) -> Outputs {
        let mut out = Outputs::default();
        for m in &self.models {
            out.series.push(m.name.clone());
            out.scalars.extend([m.width_scalar(), m.shape_scalar()]);
            if m.has_theory() {
                out.series.push(m.theory_series());
                out.scalars.push(m.gap_scalar());
            }
        }
        out
    }

    fn jobs(&self) -> Vec<Job> {
        let seeds = self.seeds();
        Job::numbered(self.models.iter().map(|m| Job {
            id: JobId(0),
            name: m.name.clone(),
            // The job depends on the shared values and its own model only;
            // its name is a label, not an input.
            config: job_config(
                self,
                &[
                    ("model", json!(null)),
                    ("theory_dt", json!(null)),
                    ("this_model", json!({ "depth": m.depth, "width": m.width, "init": m.init })),
                ],
            ),
            seeds: seeds.clone(),
            member_seeds: seeds.clone(),
        }))
    }

    fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        let model = self.model(job)?;
        let n = self.data.points.usize();
        let (norms, labels) = self.norms_and_labels();
        let members = job.seeds.len();
        let mut x = Vec::with_capacity(members * n * n);
        let mut y = Vec::with_capacity(members * n);
        for _ in 0..members {
            for (i, &norm) in norms.iter().enumerate() {
                x.extend((0..n).map(|j| if i == j { norm as f32 } else { 0.0 }));
            }
            y.extend(labels.iter().map(|&l| l as f32));
        }
        let data = EnsembleData { members, points: n, dim: n, x, y };
        let inits: Vec<Vec<Vec<f32>>> = job.seeds.iter().map(|&s| self.init(model, s, &labels).0).collect();
        let shapes = self.shapes(model);
        let layers = (0..shapes.len()).map(|l| inits.iter().flat_map(|w| w[l].iter().copied()).collect()).collect();
        let init = EnsembleWeights { members, shapes, layers };
        let cfg = TrainConfig::logged(self.loss, self.learning_rate.get(), self.steps.get(), self.log_points.get());
        Ok(TrainInput { init, data, cfg })
    }

    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        ensure!(logs.len() == self.models.len(), "sigmoid expects {} job logs, got {}", self.models.len(), logs.len());
        let n = self.data.points.usize();
        let (norms, labels) = self.norms_and_labels();
        let seeds = self.seeds();
        let panel =
            |title: &str| Panel::over_log_time(title, "training error (fraction misclassified)").y_range(0.0, 0.8);
        let mut body =
            FigureBody { panels: vec![panel("linear and aligned init; dashed: exact theory")], ..Default::default() };
        if self.models.iter().any(|m| !m.has_theory()) {
            body.panels.push(panel("plain random Gaussian init (no exact theory)"));
        }
        // Bands of each panel's first and last model only: three or more,
        // translucent over each other, blend into one block of colour.
        let in_panel = |theory: bool| -> Vec<usize> {
            (0..self.models.len()).filter(|&i| self.models[i].has_theory() == theory).collect()
        };
        let banded = |i: usize| {
            let same = in_panel(self.models[i].has_theory());
            same.first() == Some(&i) || same.last() == Some(&i)
        };
        for (i, (model, log)) in self.models.iter().zip(logs).enumerate() {
            let times = log.times();
            let panel = if model.has_theory() { 0 } else { 1 };
            let color = palette::depth(model.depth.get());
            // Per seed, the error at each logged step.
            let measured: Vec<Vec<f64>> = (0..seeds.len())
                .map(|k| log.margins.iter().map(|m| error_fraction(&m[k * n..(k + 1) * n])).collect())
                .collect();
            // A colour is a depth in both panels (their titles say the init).
            let label =
                if model.depth.get() == 1 { "linear".to_string() } else { format!("depth {}", model.depth.get()) };
            body.series.push(
                Series::mean_over_seeds(model.name.clone(), panel, color, times.clone(), &measured)
                    .legend_label(label)
                    .keep_band_if(banded(i)),
            );
            if !model.has_theory() {
                continue;
            }
            let t_max = *times.last().unwrap_or(&0.0);
            let theory_curves: Vec<Vec<f64>> = seeds
                .iter()
                .enumerate()
                .map(|(k, &seed)| {
                    let crossings: Vec<Option<f64>> = if model.depth.get() == 1 {
                        // From each point's measured initial margin: the closed
                        // form for cross-entropy, the integrated ODE otherwise.
                        (0..n)
                            .map(|i| {
                                let m0 = log.margins[0][k * n + i] as f64;
                                match self.loss {
                                    Loss::CrossEntropy => Some(theory::linear_ce_crossing_time(m0, norms[i], n as f64)),
                                    Loss::Hinge => theory::Mode { norm: norms[i], weights: vec![m0 / norms[i]] }
                                        .time_to_reach(0.0, self.loss, n as f64, self.theory_dt.get(), t_max),
                                }
                            })
                            .collect()
                    } else {
                        let (_, modes) = self.init(model, seed, &labels);
                        modes
                            .iter()
                            .map(|mode| mode.time_to_reach(0.0, self.loss, n as f64, self.theory_dt.get(), t_max))
                            .collect()
                    };
                    theory::error_curve(&crossings, &times)
                })
                .collect();
            let gap = measured
                .iter()
                .zip(&theory_curves)
                .flat_map(|(m, t)| m.iter().zip(t).map(|(a, b)| (a - b).abs() * n as f64))
                .fold(0.0, f64::max);
            body.scalars.insert(model.gap_scalar(), gap);
            let (mean, _, _) = mean_min_max(&theory_curves);
            body.series.push(Series::theory(model.theory_series(), panel, times, mean).legend_label(THEORY_LABEL));
        }
        // The shape of every measured curve, for the caption (the claims
        // compute the same from the series, so that their controls can
        // replace the curves).
        for model in &self.models {
            if let Some(s) = body.series(&model.name) {
                let (width, ratio) = (crate::shapes::transition_width(s), crate::shapes::logistic_over_exponential(s));
                body.scalars.insert(model.width_scalar(), width);
                body.scalars.insert(model.shape_scalar(), ratio);
            }
        }
        Ok(body)
    }
}

/// Fraction of margins <= 0 (f = 0 counts as an error; NaN too).
fn error_fraction(margins: &[f32]) -> f64 {
    let correct = margins.iter().filter(|&&m| m > 0.0).count();
    (margins.len() - correct) as f64 / margins.len() as f64
}

/// Problems of a list of models on N = `points` orthogonal points, for every
/// kind that trains them (`table` names its `[[figure.experiment.<table>.model]]`).
pub(crate) fn model_problems(points: Count, models: &[Model], table: &str) -> Vec<String> {
    let mut p = Vec::new();
    if models.is_empty() {
        p.push(format!("expected at least one [[figure.experiment.{table}.model]]"));
    }
    // Each problem starts with the path of the field to change, where the
    // spec's error points (see `spec::field_span`).
    for (i, m) in models.iter().enumerate() {
        let at = |field: &str, problem: String| format!("model[{i}]{field}: {problem} (model {:?})", m.name);
        if models[..i].iter().any(|o| o.name == m.name) {
            p.push(at(".name", format!("duplicate model name {:?}", m.name)));
        }
        let depth = m.depth.get();
        match (depth, m.width) {
            (1, Some(_)) => p.push(at(".width", "a linear model (depth 1) has no hidden width".into())),
            (d, None) if d > 1 => p.push(at(".depth", format!("depth {d} needs a hidden `width`"))),
            _ => {}
        }
        if matches!(m.init, Init::Balanced { .. }) {
            if depth == 1 {
                p.push(at(".depth", "balanced init needs depth >= 2".into()));
            }
            if let Some(w) = m.width.filter(|w| w.get() != points.get()) {
                p.push(at(".width", format!("balanced init needs width = points = {}, got {}", points.get(), w.get())));
            }
        }
        if let Init::Aligned { output_ratio_min, output_ratio_max, .. } = m.init {
            if depth == 1 {
                p.push(at(".depth", "aligned init needs depth >= 2 (the linear model is always decoupled)".into()));
            }
            if let Some(w) = m.width.filter(|w| w.get() != points.get()) {
                p.push(at(".width", format!("aligned init needs width = points = {}, got {}", points.get(), w.get())));
            }
            if !(0.0 < output_ratio_min.get()
                && output_ratio_min.get() <= output_ratio_max.get()
                && output_ratio_max.get() < 1.0)
            {
                p.push(at(
                    ".init",
                    format!(
                        "expected 0 < output_ratio_min <= output_ratio_max < 1, got {} and {}",
                        output_ratio_min.get(),
                        output_ratio_max.get()
                    ),
                ));
            }
        }
    }
    p
}
