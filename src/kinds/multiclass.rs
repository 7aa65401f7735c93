//! Multiclass modes: the sigmoid figure's orthogonal data (`sigmoid.rs`,
//! whose `[...data]` table and norms this kind shares) with K classes and
//! softmax cross-entropy, for several K, linear model from a near-zero init.
//!
//! Theory (`theory::multiclass_logits`). With x_i = s_i e_i and the loss a
//! mean over N points, point i's logits z_i = s_i W e_i move on their own:
//!   dz_i/dt = (s_i^2 / N) (e_{y_i} - softmax(z_i)),
//! integrated from each seed's own initial logits, point by point, for the
//! error curve and the margins (true logit minus the largest other). From
//! zero logits the wrong ones stay equal, and the margin obeys
//!   dm/dt = (s^2 / N) K e^-m / (1 + (K - 1) e^-m),
//! which separates and integrates to e^m + (K - 1) m - 1 = K s^2 t / N: the
//! time to a margin m, in units of N / s^2, is (e^m + (K - 1) m - 1) / K.
//! For m = 1 that is 1.36, 1.18, 1.07 at K = 2, 4, 10: the margin starts at
//! the same rate s^2 / N for every K (the true logit gains (1 - 1/K) of it,
//! each wrong one loses 1/K), and with more classes that rate,
//! (s^2 / N) K / (e^m + K - 1), decays more slowly as the margin grows.
//! Labels are drawn uniformly, so with K classes a point starts right with
//! probability about 1/K; the error starts near 1 - 1/K.

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::sigmoid::{self, OrthogonalData};
use super::{job_config, Job, JobId, Kind};
use crate::engine::{EnsembleData, EnsembleWeights, TrainConfig, TrainInput, TrainLog};
use crate::figure::{palette, FigureBody, Panel, Series, Source};
use crate::rng::{self, random_layers, RngExt};
use crate::stats::mean_min_max;
use crate::theory;
use crate::values::{Count, Loss, Outputs, Positive};

/// This kind's source files: its own, then the sigmoid kind's, whose data it shares.
pub const FILES: &[&str] = &[file!(), sigmoid::FILES[0]];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Multiclass {
    /// K: one job per class count, each >= 2, increasing.
    pub class_counts: Vec<Count>,
    pub data: OrthogonalData,
    /// Weights ~ normal(0, init_scale^2 / N): near zero, so the closed form applies.
    pub init_scale: Positive,
    pub learning_rate: Positive,
    pub steps: Count,
    pub log_points: Count,
    pub seed_count: Count,
    /// Largest step of the RK4 integration of the theory.
    pub theory_dt: Positive,
    /// The margin whose time of arrival is compared with the closed form.
    pub target_margin: Positive,
}

const COLORS: [&str; 4] = [palette::BLUE, palette::ORANGE, palette::GREEN, palette::VERMILLION];

fn k_name(k: usize) -> String {
    format!("K = {k}")
}

fn time_scalar(k: usize) -> String {
    format!("K = {k}: median time to the target margin (units of N / s^2)")
}

fn spread_scalar(k: usize) -> String {
    format!("K = {k}: spread of that time over points (90th / 10th percentile)")
}

fn closed_form_scalar(k: usize) -> String {
    format!("K = {k}: the same from zero logits (closed form)")
}

const GAP: &str = "largest gap of an error curve to its theory (points)";

impl Multiclass {
    fn ks(&self) -> Vec<usize> {
        self.class_counts.iter().map(|k| k.usize()).collect()
    }

    /// Each point's class for K classes, uniform, from the data seed.
    fn classes(&self, k: usize) -> Vec<usize> {
        let mut r = rng::stream(&format!("multiclass/classes-{k}"), self.data.data_seed);
        (0..self.data.points.usize()).map(|_| r.random_range(0..k)).collect()
    }

    fn init(&self, k: usize, seed: u64) -> Vec<f32> {
        let n = self.data.points.usize();
        random_layers("multiclass/init", seed, &[(k, n)], self.init_scale.get()).remove(0)
    }
}

impl Kind for Multiclass {
    fn seeds(&self) -> Vec<u64> {
        (0..self.seed_count.get()).collect()
    }

    fn problems(&self) -> Vec<String> {
        let ks = self.ks();
        let mut p = Vec::new();
        if ks.is_empty() || ks[0] < 2 || !ks.windows(2).all(|w| w[0] < w[1]) {
            p.push("class_counts: expected at least one count, each >= 2, increasing".into());
        }
        p
    }

    fn outputs(&self) -> Outputs {
        let mut out = Outputs::default();
        for k in self.ks() {
            out.series.extend([
                format!("{}: error", k_name(k)),
                format!("{} (theory): error", k_name(k)),
                format!("{}: mean margin", k_name(k)),
                format!("{} (theory): mean margin", k_name(k)),
            ]);
            out.scalars.extend([time_scalar(k), spread_scalar(k), closed_form_scalar(k)]);
        }
        out.series.extend(["time to the target margin".to_string(), "closed form, from zero".to_string()]);
        out.scalars.push(GAP.into());
        out
    }

    fn jobs(&self) -> Vec<Job> {
        let seeds = self.seeds();
        Job::numbered(self.ks().into_iter().map(|k| Job {
            id: JobId(0),
            name: k_name(k),
            config: job_config(
                self,
                &[
                    ("class_counts", json!(null)),
                    ("theory_dt", json!(null)),
                    ("target_margin", json!(null)),
                    ("classes", json!(k)),
                ],
            ),
            seeds: seeds.clone(),
            member_seeds: seeds.clone(),
        }))
    }

    fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        let k = *self.ks().get(job.id.0).with_context(|| format!("multiclass has no job {:?}", job.id))?;
        let n = self.data.points.usize();
        let (norms, _) = self.data.norms_and_labels();
        let classes = self.classes(k);
        let members = job.members();
        let mut x = Vec::with_capacity(members * n * n);
        let mut y = Vec::with_capacity(members * n);
        let mut layer = Vec::with_capacity(members * k * n);
        for &seed in &job.member_seeds {
            for (i, &s) in norms.iter().enumerate() {
                x.extend((0..n).map(|j| if i == j { s as f32 } else { 0.0 }));
            }
            y.extend(classes.iter().map(|&c| c as f32));
            layer.extend(self.init(k, seed));
        }
        Ok(TrainInput {
            init: EnsembleWeights { members, shapes: vec![(k, n)], layers: vec![layer] },
            data: EnsembleData { members, points: n, dim: n, x, y },
            cfg: TrainConfig::logged(
                Loss::CrossEntropy,
                self.learning_rate.get(),
                self.steps.get(),
                self.log_points.get(),
            ),
        })
    }

    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        let ks = self.ks();
        ensure!(logs.len() == ks.len(), "multiclass expects {} job logs, got {}", ks.len(), logs.len());
        let n = self.data.points.usize();
        let (norms, _) = self.data.norms_and_labels();
        let seeds = self.seeds();
        let target = self.target_margin.get();
        let mut body = FigureBody {
            panels: vec![
                Panel::over_log_time("training error (dashed: each point's flow)", "fraction misclassified")
                    .y_range(0.0, 1.0),
                Panel::over_log_time("mean margin, true logit minus the largest other", "margin"),
                Panel::new(
                    format!("time to margin {target}, median over points and seeds"),
                    "number of classes K",
                    "t s^2 / N",
                ),
            ],
            ..Default::default()
        };
        let mut gaps: Vec<f64> = Vec::new();
        let (mut measured_times, mut closed_forms) = (Vec::new(), Vec::new());
        for (j, (&k, log)) in ks.iter().zip(logs).enumerate() {
            let times = log.times();
            let skip = crate::stats::leading_zero_times(&times);
            let classes = self.classes(k);
            let color = COLORS[j % COLORS.len()];
            let member_margins = |e: usize| -> Vec<Vec<f64>> {
                log.margins.iter().map(|m| m[e * n..(e + 1) * n].iter().map(|&v| v as f64).collect()).collect()
            };
            // Per seed: measured and theory error and mean margin at each logged time.
            let mut errors: Vec<Vec<f64>> = Vec::new();
            let mut means: Vec<Vec<f64>> = Vec::new();
            let mut theory_errors: Vec<Vec<f64>> = Vec::new();
            let mut theory_means: Vec<Vec<f64>> = Vec::new();
            let mut scaled_times = Vec::new();
            for (e, &seed) in seeds.iter().enumerate() {
                let measured = member_margins(e);
                errors
                    .push(measured.iter().map(|m| m.iter().filter(|&&v| v <= 0.0).count() as f64 / n as f64).collect());
                means.push(measured.iter().map(|m| m.iter().sum::<f64>() / n as f64).collect::<Vec<f64>>());
                // Each point's flow from its own initial logits, as the network has them in f32.
                let w0 = self.init(k, seed);
                let flows: Vec<Vec<f64>> = (0..n)
                    .map(|i| {
                        let z0: Vec<f64> = (0..k).map(|c| (w0[c * n + i] * norms[i] as f32) as f64).collect();
                        let logits = theory::multiclass_logits(
                            &z0,
                            classes[i],
                            norms[i],
                            n as f64,
                            &times,
                            self.theory_dt.get(),
                        );
                        logits.iter().map(|z| theory::multiclass_margin(z, classes[i])).collect()
                    })
                    .collect();
                let per_time = |t: usize| flows.iter().map(|f| f[t]).collect::<Vec<f64>>();
                let theory_error: Vec<f64> = (0..times.len())
                    .map(|t| per_time(t).iter().filter(|&&v| v <= 0.0).count() as f64 / n as f64)
                    .collect();
                for (a, b) in errors[e].iter().zip(&theory_error) {
                    gaps.push((a - b).abs() * n as f64);
                }
                theory_errors.push(theory_error);
                theory_means.push((0..times.len()).map(|t| per_time(t).iter().sum::<f64>() / n as f64).collect());
                // When each point's margin first reaches the target, in units of N / s_i^2.
                for (i, &s) in norms.iter().enumerate() {
                    let curve: Vec<f64> = measured.iter().map(|m| m[i]).collect();
                    let t = crate::stats::crossing_time(&times, &curve, target).unwrap_or(f64::NAN);
                    scaled_times.push(t * s * s / n as f64);
                }
            }
            let name = k_name(k);
            body.series.push(
                Series::mean_over_seeds(format!("{name}: error"), 0, color, times.clone(), &errors).skipping(skip),
            );
            // The theory, averaged over seeds like the measurement.
            let theory_line = |name: String, panel: usize, curves: &[Vec<f64>]| {
                let (mean, _, _) = mean_min_max(curves);
                Series::theory(name, panel, times[skip..].to_vec(), mean[skip..].to_vec())
            };
            body.series.push(theory_line(format!("{name} (theory): error"), 0, &theory_errors).in_legend(j == 0));
            body.series.push(
                Series::mean_over_seeds(format!("{name}: mean margin"), 1, color, times.clone(), &means).skipping(skip),
            );
            body.series.push(theory_line(format!("{name} (theory): mean margin"), 1, &theory_means).in_legend(false));
            scaled_times.sort_by(f64::total_cmp);
            let median =
                if scaled_times.iter().any(|t| t.is_nan()) { f64::NAN } else { scaled_times[scaled_times.len() / 2] };
            let closed = theory::multiclass_time_to_margin(target, k, 1.0, 1.0);
            body.scalars.insert(time_scalar(k), median);
            // The norm's part: in units of N / s^2 every point should take the same time.
            let at = |q: f64| scaled_times[((scaled_times.len() - 1) as f64 * q).round() as usize];
            // Undefined, like the median, if a point never got there (or started there).
            let defined = !median.is_nan() && at(0.1) > 0.0;
            body.scalars.insert(spread_scalar(k), if defined { at(0.9) / at(0.1) } else { f64::NAN });
            body.scalars.insert(closed_form_scalar(k), closed);
            measured_times.push(median);
            closed_forms.push(closed);
        }
        let kx: Vec<f64> = ks.iter().map(|&k| k as f64).collect();
        // A time is undefined (NaN, in its scalar) where some point never reached the margin: not drawn.
        let (reached_k, reached_t): (Vec<f64>, Vec<f64>) =
            kx.iter().zip(&measured_times).filter(|(_, t)| t.is_finite()).map(|(&k, &t)| (k, t)).unzip();
        body.series.push(Series::points("time to the target margin", 2, palette::PURPLE, reached_k, reached_t));
        body.series.push(Series::line("closed form, from zero", 2, Source::Theory, palette::BLACK, kx, closed_forms));
        body.scalars.insert(GAP.into(), crate::stats::largest_gap(&gaps));
        Ok(body)
    }
}
