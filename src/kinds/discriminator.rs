//! The discriminator's signal: the paper's remark that its comparison of
//! cross-entropy and hinge "could prove useful to understand ... generative
//! adversarial networks". A discriminator D is trained on fixed samples,
//! real (+1) and fake (-1), in the plane; what reaches a generator is the
//! gradient of D's output with respect to its input at the fake samples.
//!
//! Linear D(x) = w.x (bias-free), from w = 0. The signal is w itself, at
//! every fake sample. Gradient flow: dw/dt = (1/N) sum_i push(m_i) y_i x_i
//! with m_i = y_i w.x_i (integrated by RK4 as the theory beside the
//! measurement). With separable samples:
//! - hinge: push(m) = 1[m < 1] vanishes once every margin reaches 1, so w
//!   stops in finite time: the generator's signal freezes;
//! - cross-entropy: push(m) = sigma(-m) never vanishes; w(t) = w_hat ln t +
//!   rho(t) with rho bounded (Soudry et al. 2018), where w_hat is the
//!   max-margin vector (the least |w| with every y_i w.x_i >= 1), so |w|
//!   grows like |w_hat| ln t and its direction turns to w_hat's: the signal
//!   keeps growing, in the max-margin direction.
//!
//! w_hat is found exactly: in the plane it has one or two active
//! constraints, so it is the shortest feasible candidate among y_i x_i /
//! |x_i|^2 and the solutions of every pair of equalities.
//!
//! Two-layer D(x) = sum_k v_k relu(u_k.x): the signal at a fake sample is
//! sum_k v_k 1[u_k.x > 0] u_k; the figure shows the norm and direction of its
//! mean over the fake samples. No exact theory; the claims ask whether the
//! two losses part the same way as for the linear model.
//!
//! A small GAN (a generator trained against D on a ring of Gaussians) is not
//! part of this figure: the engine trains fixed-data classifiers only.

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{job_config, Job, JobId, Kind};
use crate::engine::{EnsembleData, EnsembleWeights, RecordWeights, TrainConfig, TrainInput, TrainLog};
use crate::figure::{palette, FigureBody, Panel, Series, Source};
use crate::rng::{self, random_layers};
use crate::theory;
use crate::values::{Count, Loss, NonNegative, Outputs, Positive};

/// This kind's source files (see `kinds::files`).
pub const FILES: &[&str] = &[file!()];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Discriminator {
    /// Samples of each kind, real and fake.
    pub per_side: Count,
    /// Centres of the real and the fake samples, and their spread (a Gaussian
    /// of this standard deviation on each coordinate).
    pub real_center: [f64; 2],
    pub fake_center: [f64; 2],
    pub spread: NonNegative,
    pub data_seed: u64,
    pub learning_rate: Positive,
    pub steps: Count,
    pub log_points: Count,
    /// The two-layer discriminator: width, init scale, seeds.
    pub hidden_width: Count,
    pub init_scale: Positive,
    pub seed_count: Count,
    /// Largest step of the RK4 integration of the linear flow.
    pub theory_dt: Positive,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Run {
    Linear(Loss),
    TwoLayer(Loss),
}

const RUNS: [Run; 4] = [
    Run::Linear(Loss::CrossEntropy),
    Run::Linear(Loss::Hinge),
    Run::TwoLayer(Loss::CrossEntropy),
    Run::TwoLayer(Loss::Hinge),
];

impl Run {
    fn loss(self) -> Loss {
        match self {
            Run::Linear(l) | Run::TwoLayer(l) => l,
        }
    }

    fn name(self) -> String {
        match self {
            Run::Linear(l) => format!("linear, {}", l.name()),
            Run::TwoLayer(l) => format!("two-layer, {}", l.name()),
        }
    }

    fn color(self) -> &'static str {
        match self.loss() {
            Loss::CrossEntropy => palette::BLUE,
            Loss::Hinge => palette::VERMILLION,
        }
    }

    /// Relative change of the signal's norm over the last decade of time.
    fn change_scalar(self) -> String {
        format!("{}: relative change of the signal's norm over the last decade", self.name())
    }
}

/// Samples a side at most: `max_margin` takes O(n^3) (every pair, each checked against every sample).
const MAX_PER_SIDE: u64 = 256;

/// Every black dashed curve, in the legend.
const FLOW_LABEL: &str = "the linear flow (theory)";

const GAP: &str = "linear: largest gap of norm(w) to its flow (% of norm(w), t >= 1)";
const SLOPE_RATIO: &str = "linear, cross-entropy: slope of norm(w) in ln t over the last decade / norm(w_hat)";
/// The same slope of the integrated flow, over the same window: w(t) = w_hat
/// ln t + a bounded term, so the slope nears |w_hat| only as 1 - O(1/ln t)
/// (0.76-0.81 over t in [5e3, 5e4] on fresh draws, 0.98-1.00 over [5e9, 5e10]).
const FLOW_SLOPE_RATIO: &str = "linear flow, cross-entropy: the same slope / norm(w_hat)";
const ANGLE_TO_MAX_MARGIN: &str = "linear, cross-entropy: angle of w to w_hat at the end (degrees)";

impl Discriminator {
    /// The samples: (x, y), reals (+1) first, then fakes (-1).
    fn samples(&self) -> Vec<([f64; 2], f64)> {
        let mut r = rng::stream("discriminator/data", self.data_seed);
        let mut out = Vec::new();
        for (center, label) in [(self.real_center, 1.0), (self.fake_center, -1.0)] {
            for _ in 0..self.per_side.usize() {
                let x = [0, 1].map(|d| center[d] + self.spread.get() * rng::normal(&mut r));
                out.push((x, label));
            }
        }
        out
    }

    fn member_seeds(&self, run: Run) -> Vec<u64> {
        match run {
            // From w = 0: one network, "seed 0".
            Run::Linear(_) => vec![0],
            Run::TwoLayer(_) => (0..self.seed_count.get()).collect(),
        }
    }
}

/// The max-margin vector of separable samples in the plane: the least |w|
/// with y_i w.x_i >= 1 for every i (see the module doc); None if no candidate
/// is feasible (the samples are not separable through the origin).
pub fn max_margin(samples: &[([f64; 2], f64)]) -> Option<[f64; 2]> {
    let z: Vec<[f64; 2]> = samples.iter().map(|(x, y)| [y * x[0], y * x[1]]).collect();
    let feasible = |w: [f64; 2]| z.iter().all(|v| w[0] * v[0] + w[1] * v[1] >= 1.0 - 1e-9);
    let mut best: Option<[f64; 2]> = None;
    let mut consider = |w: [f64; 2]| {
        if w.iter().all(|c| c.is_finite())
            && feasible(w)
            && best.is_none_or(|b| w[0] * w[0] + w[1] * w[1] < b[0] * b[0] + b[1] * b[1])
        {
            best = Some(w);
        }
    };
    for (i, a) in z.iter().enumerate() {
        let norm2 = a[0] * a[0] + a[1] * a[1];
        consider([a[0] / norm2, a[1] / norm2]);
        for b in &z[i + 1..] {
            let det = a[0] * b[1] - a[1] * b[0];
            if det.abs() > 1e-12 {
                // a.w = 1 and b.w = 1.
                consider([(b[1] - a[1]) / det, (a[0] - b[0]) / det]);
            }
        }
    }
    best
}

/// The linear flow dw/dt = (1/N) sum_i push(m_i) y_i x_i from w = 0, at each of `times`.
fn linear_flow(samples: &[([f64; 2], f64)], loss: Loss, times: &[f64], dt: f64) -> Vec<[f64; 2]> {
    let n = samples.len() as f64;
    let velocity = |w: &[f64]| -> Vec<f64> {
        let mut v = vec![0.0; 2];
        for (x, y) in samples {
            let push = theory::push(loss, y * (w[0] * x[0] + w[1] * x[1]));
            v[0] += push * y * x[0] / n;
            v[1] += push * y * x[1] / n;
        }
        v
    };
    // Cross-entropy slows as the margins grow: the step grows with t.
    theory::integrate(&[0.0, 0.0], times, dt, 0.001, velocity).into_iter().map(|w| [w[0], w[1]]).collect()
}

fn norm(v: [f64; 2]) -> f64 {
    v[0].hypot(v[1])
}

fn angle_degrees(v: [f64; 2]) -> f64 {
    v[1].atan2(v[0]).to_degrees()
}

/// The signal a generator gets: the mean over the fake samples of the
/// gradient of member `e`'s output with respect to its input.
fn mean_signal(weights: &EnsembleWeights, e: usize, fakes: &[[f64; 2]]) -> [f64; 2] {
    let mut g = [0.0; 2];
    for x in fakes {
        let grad = match weights.shapes.len() {
            1 => {
                let w = weights.member_layer(e, 0);
                [w[0] as f64, w[1] as f64]
            }
            _ => {
                let (u, v) = (weights.member_layer(e, 0), weights.member_layer(e, 1));
                let mut grad = [0.0; 2];
                for k in 0..v.len() {
                    let (u0, u1) = (u[2 * k] as f64, u[2 * k + 1] as f64);
                    if u0 * x[0] + u1 * x[1] > 0.0 {
                        grad[0] += v[k] as f64 * u0;
                        grad[1] += v[k] as f64 * u1;
                    }
                }
                grad
            }
        };
        g[0] += grad[0] / fakes.len() as f64;
        g[1] += grad[1] / fakes.len() as f64;
    }
    g
}

/// The logged indices that span the last decade of time: the last one at or
/// before t_end / 10, and the end; None when the log has no such earlier time.
fn last_decade(times: &[f64]) -> Option<(usize, usize)> {
    let end = times.len().checked_sub(1)?;
    let start = times.iter().rposition(|&t| t > 0.0 && t <= times[end] / 10.0)?;
    (start < end).then_some((start, end))
}

/// Relative change of a logged quantity over the last decade of time; NaN
/// where that decade is not logged or the quantity starts it at 0.
fn last_decade_change(times: &[f64], values: &[f64]) -> f64 {
    match last_decade(times) {
        Some((start, end)) if values[start] != 0.0 => (values[end] - values[start]) / values[start].abs(),
        _ => f64::NAN,
    }
}

impl Kind for Discriminator {
    fn seeds(&self) -> Vec<u64> {
        (0..self.seed_count.get()).collect()
    }

    fn problems(&self) -> Vec<String> {
        if self.per_side.get() > MAX_PER_SIDE {
            // Checked first: the separability check below tries every pair of samples.
            return vec![format!("per_side: expected at most {MAX_PER_SIDE} (the max-margin vector is found by trying every pair of samples)")];
        }
        if !self.real_center.iter().chain(&self.fake_center).all(|c| c.is_finite()) {
            return vec!["real_center, fake_center: expected finite coordinates".into()];
        }
        if max_margin(&self.samples()).is_none() {
            return vec!["the real and fake samples are not separable by a line through the origin: move the centres apart or shrink the spread".into()];
        }
        Vec::new()
    }

    fn outputs(&self) -> Outputs {
        let mut out = Outputs::default();
        for run in RUNS {
            out.series.push(format!("{}: norm of the signal", run.name()));
            out.series.push(format!("{}: direction", run.name()));
            out.scalars.push(run.change_scalar());
        }
        for loss in [Loss::CrossEntropy, Loss::Hinge] {
            out.series.push(format!("linear flow, {}: norm(w)", loss.name()));
            out.series.push(format!("linear flow, {}: direction", loss.name()));
        }
        out.series.push("max-margin direction".into());
        out.scalars.extend([GAP, SLOPE_RATIO, FLOW_SLOPE_RATIO, ANGLE_TO_MAX_MARGIN].map(String::from));
        out
    }

    fn jobs(&self) -> Vec<Job> {
        Job::numbered(RUNS.into_iter().map(|run| {
            let mut config = job_config(
                self,
                &[("theory_dt", json!(null)), ("run", json!(run.name())), ("loss", json!(run.loss()))],
            );
            if let Run::Linear(_) = run {
                for key in ["hidden_width", "init_scale", "seed_count"] {
                    config[key] = json!(null);
                }
            }
            let member_seeds = self.member_seeds(run);
            let seeds = if let Run::Linear(_) = run { Vec::new() } else { member_seeds.clone() };
            Job { id: JobId(0), name: run.name(), config, seeds, member_seeds }
        }))
    }

    fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        let run = *RUNS.get(job.id.0).with_context(|| format!("discriminator has no job {:?}", job.id))?;
        let samples = self.samples();
        let members = job.members();
        let shapes = match run {
            Run::Linear(_) => vec![(1, 2)],
            Run::TwoLayer(_) => vec![(self.hidden_width.usize(), 2), (1, self.hidden_width.usize())],
        };
        let mut layers = vec![Vec::new(); shapes.len()];
        for &seed in &job.member_seeds {
            let init = match run {
                Run::Linear(_) => vec![vec![0.0; 2]],
                Run::TwoLayer(_) => random_layers("discriminator/init", seed, &shapes, self.init_scale.get()),
            };
            for (l, w) in init.into_iter().enumerate() {
                layers[l].extend(w);
            }
        }
        let x: Vec<f32> = (0..members).flat_map(|_| samples.iter().flat_map(|(x, _)| x.map(|v| v as f32))).collect();
        let y: Vec<f32> = (0..members).flat_map(|_| samples.iter().map(|(_, y)| *y as f32)).collect();
        let cfg = TrainConfig {
            record_weights: RecordWeights::Every,
            ..TrainConfig::logged(run.loss(), self.learning_rate.get(), self.steps.get(), self.log_points.get())
        };
        Ok(TrainInput {
            init: EnsembleWeights { members, shapes, layers },
            data: EnsembleData { members, points: samples.len(), dim: 2, x, y },
            cfg,
        })
    }

    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        ensure!(logs.len() == RUNS.len(), "discriminator expects {} job logs, got {}", RUNS.len(), logs.len());
        let samples = self.samples();
        let fakes: Vec<[f64; 2]> = samples.iter().filter(|(_, y)| *y < 0.0).map(|(x, _)| *x).collect();
        let Some(w_hat) = max_margin(&samples) else { bail!("the samples are not separable through the origin") };
        let mut body = FigureBody {
            panels: vec![
                Panel::over_log_time("linear D: the signal |grad_x D| = |w| (dashed: the flow)", "|w|"),
                Panel::over_log_time(
                    "linear D: direction (dashed: flow; grey: max margin)",
                    "angle of w from the x1 axis (degrees)",
                ),
                Panel::over_log_time("two-layer D: mean signal at the fakes", "|mean grad_x D|"),
                Panel::over_log_time("two-layer D: its direction", "angle of the signal from the x1 axis (degrees)"),
            ],
            ..Default::default()
        };
        let mut gaps: Vec<f64> = Vec::new();
        for (&run, log) in RUNS.iter().zip(logs) {
            let times = log.times();
            let skip = crate::stats::leading_zero_times(&times);
            ensure!(log.weights.len() == times.len(), "{}: weights not logged at every step", run.name());
            let members = self.member_seeds(run).len();
            let signals: Vec<Vec<[f64; 2]>> =
                (0..members).map(|e| log.weights.iter().map(|(_, w)| mean_signal(w, e, &fakes)).collect()).collect();
            let norms: Vec<Vec<f64>> = signals.iter().map(|s| s.iter().map(|&g| norm(g)).collect()).collect();
            // The direction of the signal averaged over seeds (angles themselves
            // would not average across the +-180 degree cut).
            let mean_direction: Vec<f64> = (0..times.len())
                .map(|t| {
                    let sum = signals.iter().fold([0.0, 0.0], |acc, s| [acc[0] + s[t][0], acc[1] + s[t][1]]);
                    angle_degrees(sum)
                })
                .collect();
            let (first_panel, several) = match run {
                Run::Linear(_) => (0, false),
                Run::TwoLayer(_) => (2, true),
            };
            let norm_line = Series::mean_over_seeds(
                format!("{}: norm of the signal", run.name()),
                first_panel,
                run.color(),
                times.clone(),
                &norms,
            )
            .keep_band_if(several)
            // A colour is a loss in all four panels; their titles say the model.
            .legend_label(run.loss().name());
            body.scalars.insert(run.change_scalar(), last_decade_change(&norm_line.x, &norm_line.y));
            body.series.push(norm_line.skipping(skip));
            body.series.push(
                Series::line(
                    format!("{}: direction", run.name()),
                    first_panel + 1,
                    Source::Measured,
                    run.color(),
                    times.clone(),
                    mean_direction,
                )
                .skipping(skip)
                .legend_label(run.loss().name()),
            );
            if let Run::Linear(loss) = run {
                let flow = linear_flow(&samples, loss, &times, self.theory_dt.get());
                for ((&t, measured), &w) in times.iter().zip(&norms[0]).zip(&flow) {
                    if t >= 1.0 {
                        gaps.push(100.0 * (measured - norm(w)).abs() / norm(w));
                    }
                }
                let later = &flow[skip..];
                let x = times[skip..].to_vec();
                body.series.push(
                    Series::theory(
                        format!("linear flow, {}: norm(w)", loss.name()),
                        0,
                        x.clone(),
                        later.iter().map(|&w| norm(w)).collect(),
                    )
                    .legend_label(FLOW_LABEL),
                );
                body.series.push(
                    Series::theory(
                        format!("linear flow, {}: direction", loss.name()),
                        1,
                        x.clone(),
                        later.iter().map(|&w| angle_degrees(w)).collect(),
                    )
                    .legend_label(FLOW_LABEL),
                );
                if loss == Loss::CrossEntropy {
                    // d|w|/d ln t over the last decade, against |w_hat|.
                    let slope = |norms: &dyn Fn(usize) -> f64| {
                        last_decade(&times).map_or(f64::NAN, |(start, end)| {
                            (norms(end) - norms(start)) / (times[end] / times[start]).ln()
                        })
                    };
                    body.scalars.insert(SLOPE_RATIO.into(), slope(&|i| norms[0][i]) / norm(w_hat));
                    body.scalars.insert(FLOW_SLOPE_RATIO.into(), slope(&|i| norm(flow[i])) / norm(w_hat));
                    let w_end = signals[0][times.len() - 1];
                    let cos = (w_end[0] * w_hat[0] + w_end[1] * w_hat[1]) / (norm(w_end) * norm(w_hat));
                    body.scalars.insert(ANGLE_TO_MAX_MARGIN.into(), cos.clamp(-1.0, 1.0).acos().to_degrees());
                    let level = vec![angle_degrees(w_hat); 2];
                    body.series.push(Series::line(
                        "max-margin direction",
                        1,
                        Source::Theory,
                        palette::GREY,
                        vec![x[0], x[x.len() - 1]],
                        level,
                    ));
                }
            }
        }
        body.scalars.insert(GAP.into(), crate::stats::largest_gap(&gaps));
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_margin_is_the_shortest_vector_that_puts_every_margin_at_one() {
        // One support vector: (2, 0) alone is active, w_hat = (1/2, 0).
        let one = [([2.0, 0.0], 1.0), ([3.0, 1.0], 1.0), ([-2.0, 0.5], -1.0)];
        assert_eq!(max_margin(&one), Some([0.5, 0.0]));
        // Two: (1, 1) and (1, -1) both at margin 1 gives w_hat = (1, 0).
        let two = [([1.0, 1.0], 1.0), ([-1.0, 1.0], -1.0)];
        let w = max_margin(&two).unwrap();
        assert!((w[0] - 1.0).abs() < 1e-12 && w[1].abs() < 1e-12, "{w:?}");
        // Not separable through the origin.
        assert_eq!(max_margin(&[([1.0, 0.0], 1.0), ([2.0, 0.0], -1.0)]), None);
    }

    /// The flow's |w| grows like |w_hat| ln t at very late times (where
    /// the figure's decade, 5e3 to 5e4, is still short of it).
    #[test]
    fn the_cross_entropy_flow_grows_like_the_max_margin_norm_in_ln_t() {
        let samples = [([2.0, 0.3], 1.0), ([1.0, 1.5], 1.0), ([-1.5, 0.4], -1.0), ([-0.5, 1.2], -1.0)];
        let w_hat = max_margin(&samples).unwrap();
        let w = linear_flow(&samples, Loss::CrossEntropy, &[1e10, 1e11], 0.01);
        let slope = (norm(w[1]) - norm(w[0])) / 10f64.ln();
        assert!((slope / norm(w_hat) - 1.0).abs() < 0.02, "slope {slope}, |w_hat| {}", norm(w_hat));
    }
}
