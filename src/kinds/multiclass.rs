//! Multiclass modes: the sigmoid figure's orthogonal data (`sigmoid.rs`,
//! whose `[...data]` table and norms this kind shares) with K classes and
//! softmax cross-entropy, for several K, with a linear model from a near-zero
//! init or a two-layer ReLU net with the aligned, balanced init.
//!
//! Linear model (`theory::multiclass_logits`). With x_i = s_i e_i and the
//! loss a mean over N points, point i's logits z_i = s_i W e_i move on their
//! own:
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
//!
//! Two-layer net (`theory::multiclass_two_layer`). Width N; hidden unit i
//! sees point i alone (first-layer weight a_i on e_i, the rest 0) and feeds
//! all K logits through its output column v_i, drawn in a random direction
//! with |v_i| = a_i = init_scale (balanced). Since relu'(0) = 0, no weight
//! linking unit i to another point ever moves, so each point is a mode of its
//! own: a (K + 1)-dimensional flow of (a_i, v_i), z_i = s_i a_i v_i,
//!   da/dt = -(s/N) v.(p - e_y),  dv/dt = -(s/N) a (p - e_y),
//! integrated from each net's own initial weights, point by point. A mode
//! per (point, class), one hidden unit per class on each point, would not
//! stay apart: the softmax's gradient reaches every logit, so each unit's
//! output weights to the other classes grow from zero. The class logits of a
//! point are one coupled mode. Rescaling time by s/N and the weights by
//! sqrt(s) shows the norm enters only through the starting scale
//! sqrt(s) init_scale: the time to a margin goes as 1/s up to the log of the
//! starting margin, and its fitted power of s lies between -1 and -1.5
//! (about -1.2 here), where the linear model's is exactly -2.
//! From the symmetric start v = b (e_y - 1/K)/|e_y - 1/K| the direction
//! stays and the margin m = s c b^2, c = sqrt(K/(K-1)), obeys
//!   dm/dt = (2 s c / N) m (K - 1) e^-m / (1 + (K - 1) e^-m),
//! a plateau escaped at the rate (2 s / N) sqrt(1 - 1/K), with the closed form
//! of `theory::multiclass_two_layer_symmetric_time`: the plateau shortens
//! with K. A random direction starts with less of its length along
//! e_y - 1/K (and usually on the wrong side), so it takes longer than the
//! symmetric start, but integrating its flow (before any run, over 60
//! directions at init_scale 0.1) gave the same order: median times 4.9, 3.9,
//! 3.3 N/s at K = 2, 4, 10, against 3.5, 2.8, 2.5 from the symmetric start.
//!
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
use crate::stats::{crossing_time, loglog_slope, mean_min_max};
use crate::theory;
use crate::values::{Count, Loss, Outputs, Positive};

/// This kind's source files: its own, then the sigmoid kind's, whose data it shares.
pub const FILES: &[&str] = &[file!(), sigmoid::FILES[0]];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Net {
    /// z = W x, weights ~ normal(0, init_scale^2 / N).
    Linear,
    /// Width N, aligned and balanced: unit i sees point i with weight
    /// init_scale and feeds the logits through a column of length init_scale
    /// in a random direction.
    TwoLayer,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Multiclass {
    pub net: Net,
    /// K: one job per class count, each >= 2, increasing.
    pub class_counts: Vec<Count>,
    pub data: OrthogonalData,
    /// The scale of the init (see `Net`): small, so the flows start on their plateau.
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

/// A colour per class count K, in every panel. Black is the flows', sky blue
/// and grey the guides', vermillion the closed form's: a fourth K would repeat
/// blue, and the figure's legend check would refuse it.
const COLORS: [&str; 3] = [palette::BLUE, palette::ORANGE, palette::GREEN];
/// Every black dashed curve: the theory of the first two panels.
const FLOW_LABEL: &str = "each point's flow (theory)";

fn k_name(k: usize) -> String {
    format!("K = {k}")
}

const GAP: &str = "largest gap of an error curve to its theory (points)";

impl Multiclass {
    fn ks(&self) -> Vec<usize> {
        self.class_counts.iter().map(|k| k.usize()).collect()
    }

    /// The power of the norm in the flow's natural time unit N / s^p: time
    /// scales exactly as 1/s^2 for the linear model, as 1/s (up to a log) for
    /// the two-layer net.
    fn norm_power(&self) -> i32 {
        match self.net {
            Net::Linear => 2,
            Net::TwoLayer => 1,
        }
    }

    fn unit(&self) -> &'static str {
        match self.net {
            Net::Linear => "N / s^2",
            Net::TwoLayer => "N / s",
        }
    }

    fn time_scalar(&self, k: usize) -> String {
        format!("K = {k}: median time to the target margin (units of {})", self.unit())
    }

    fn flow_time_scalar(&self, k: usize) -> String {
        format!("K = {k}: the same on each point's flow (units of {})", self.unit())
    }

    fn closed_form_scalar(&self, k: usize) -> String {
        match self.net {
            Net::Linear => format!("K = {k}: the same from zero logits (closed form)"),
            Net::TwoLayer => format!("K = {k}: the same from the symmetric start at s = 1 (closed form)"),
        }
    }

    fn closed_form_series(&self) -> &'static str {
        match self.net {
            Net::Linear => "closed form, from zero logits",
            Net::TwoLayer => "closed form, symmetric start at s = 1",
        }
    }

    fn spread_scalar(k: usize) -> String {
        format!("K = {k}: spread of that time over points (90th / 10th percentile)")
    }

    fn exponent_scalar(k: usize) -> String {
        format!("K = {k}: power of the norm in the time to the target margin (fit of ln t on ln s)")
    }

    /// The same fit with the norms paired to the points in a fixed random
    /// permutation: the counterfactual where a point's norm does not set its time.
    fn exponent_samples(k: usize) -> String {
        format!("K = {k}: power of the norm in the time to the target margin, per seed")
    }

    fn permuted_exponent_samples(k: usize) -> String {
        format!("K = {k}: the same power with each seed's norms permuted, per seed")
    }

    fn permuted_exponent_scalar(k: usize) -> String {
        format!("K = {k}: the same power with the norms permuted (a pairing that carries no law)")
    }

    /// Each point's class for K classes, uniform, from the data seed.
    fn classes(&self, k: usize) -> Vec<usize> {
        let mut r = rng::stream(&format!("multiclass/classes-{k}"), self.data.data_seed);
        (0..self.data.points.usize()).map(|_| r.random_range(0..k)).collect()
    }

    fn shapes(&self, k: usize) -> Vec<(usize, usize)> {
        let n = self.data.points.usize();
        match self.net {
            Net::Linear => vec![(k, n)],
            Net::TwoLayer => vec![(n, n), (k, n)],
        }
    }

    /// One member's layers, row-major (outputs x inputs).
    fn init(&self, k: usize, seed: u64) -> Vec<Vec<f32>> {
        let n = self.data.points.usize();
        let scale = self.init_scale.get();
        match self.net {
            Net::Linear => random_layers("multiclass/init", seed, &[(k, n)], scale),
            Net::TwoLayer => {
                let first: Vec<f32> = (0..n * n).map(|j| if j / n == j % n { scale as f32 } else { 0.0 }).collect();
                // Column i of the output layer: a random direction, length `scale`.
                let mut second = vec![0f32; k * n];
                let mut r = rng::stream("multiclass/two-layer-directions", seed);
                for i in 0..n {
                    let direction: Vec<f64> = (0..k).map(|_| rng::normal(&mut r)).collect();
                    let length = direction.iter().map(|v| v * v).sum::<f64>().sqrt();
                    for (c, v) in direction.iter().enumerate() {
                        second[c * n + i] = (scale * v / length) as f32;
                    }
                }
                vec![first, second]
            }
        }
    }

    /// Point i's logits on its flow at each of `times`, from the member's
    /// initial weights as the network has them in f32.
    fn flow_logits(
        &self,
        layers: &[Vec<f32>],
        k: usize,
        i: usize,
        class: usize,
        s: f64,
        times: &[f64],
    ) -> Vec<Vec<f64>> {
        let n = self.data.points.usize();
        let dt = self.theory_dt.get();
        match self.net {
            Net::Linear => {
                let z0: Vec<f64> = (0..k).map(|c| (layers[0][c * n + i] * s as f32) as f64).collect();
                theory::multiclass_logits(&z0, class, s, n as f64, times, dt)
            }
            Net::TwoLayer => {
                let a0 = layers[0][i * n + i] as f64;
                let v0: Vec<f64> = (0..k).map(|c| layers[1][c * n + i] as f64).collect();
                theory::multiclass_two_layer(a0, &v0, class, s, n as f64, times, dt)
                    .iter()
                    .map(|state| theory::two_layer_logits(state, s))
                    .collect()
            }
        }
    }

    /// Panel (c)'s mark of K's median time on each point's flow.
    fn flow_mark_series(k: usize) -> String {
        format!("{}: on each point's flow", k_name(k))
    }

    /// The time to the target margin from the closed form's start, in the flow's units.
    fn closed_form_time(&self, k: usize) -> f64 {
        let target = self.target_margin.get();
        match self.net {
            Net::Linear => theory::multiclass_time_to_margin(target, k, 1.0, 1.0),
            Net::TwoLayer => {
                let b = self.init_scale.get();
                let m0 = (k as f64 / (k as f64 - 1.0)).sqrt() * b * b;
                theory::multiclass_two_layer_symmetric_time(m0, target, k, 1.0, 1.0)
            }
        }
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
        if ks.len() > COLORS.len() {
            p.push(format!("class_counts: expected at most {} counts, one colour each", COLORS.len()));
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
                format!("{}: time against the norm", k_name(k)),
                Self::flow_mark_series(k),
            ]);
            out.scalars.extend([
                self.time_scalar(k),
                self.flow_time_scalar(k),
                self.closed_form_scalar(k),
                Self::spread_scalar(k),
                Self::exponent_scalar(k),
                Self::permuted_exponent_scalar(k),
            ]);
        }
        out.series.extend([
            "time to the target margin".to_string(),
            self.closed_form_series().to_string(),
            "power 1 / s".to_string(),
            "power 1 / s^2".to_string(),
        ]);
        out.scalars.push(GAP.into());
        out.samples = self
            .ks()
            .into_iter()
            .flat_map(|k| [Self::exponent_samples(k), Self::permuted_exponent_samples(k)])
            .collect();
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
        let shapes = self.shapes(k);
        let mut x = Vec::with_capacity(members * n * n);
        let mut y = Vec::with_capacity(members * n);
        let mut layers: Vec<Vec<f32>> = shapes.iter().map(|(o, i)| Vec::with_capacity(members * o * i)).collect();
        for &seed in &job.member_seeds {
            for (i, &s) in norms.iter().enumerate() {
                x.extend((0..n).map(|j| if i == j { s as f32 } else { 0.0 }));
            }
            y.extend(classes.iter().map(|&c| c as f32));
            for (all, layer) in layers.iter_mut().zip(self.init(k, seed)) {
                all.extend(layer);
            }
        }
        Ok(TrainInput {
            init: EnsembleWeights { members, shapes, layers },
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
        let power = self.norm_power();
        // Panel (a) counts the points below a margin: 0 (the training error)
        // for the two-layer net, whose plateau it shows; the target for the
        // linear model, whose error from small logits is gone by the first
        // logged time (a panel of zeros), while its margins take a while to
        // reach the target.
        let (below, below_title, below_label) = match self.net {
            Net::TwoLayer => {
                (0.0, "training error (dashed: each point's flow)".to_string(), "fraction misclassified".to_string())
            }
            Net::Linear => (
                target,
                format!("points below margin {target} (dashed: each point's flow)"),
                format!("fraction of points with margin < {target}"),
            ),
        };
        let mut body = FigureBody {
            panels: vec![
                Panel::over_log_time(below_title, below_label).y_range(0.0, 1.0),
                Panel::over_log_time("mean margin, true logit minus the largest other", "margin"),
                Panel::new(
                    format!("time to margin {target}, median over points and seeds"),
                    "number of classes K",
                    format!("t / ({})", self.unit()),
                ),
                Panel::new(
                    format!("time to margin {target} against the norm (median over seeds)"),
                    "norm s of the point",
                    "t / N",
                )
                .log_x()
                .log_y(),
            ],
            ..Default::default()
        };
        let mut gaps: Vec<f64> = Vec::new();
        let (mut measured_times, mut flow_times, mut closed_forms) = (Vec::new(), Vec::new(), Vec::new());
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
            // Each point's time to the target (t / N, unscaled), measured and on its flow, per seed.
            let mut point_times: Vec<Vec<f64>> = vec![Vec::new(); n];
            let mut point_flow_times: Vec<Vec<f64>> = vec![Vec::new(); n];
            for (e, &seed) in seeds.iter().enumerate() {
                let measured = member_margins(e);
                // A point counts as wrong at margin <= 0 (f = 0 included), and
                // as short of the target below it.
                let short = |v: f64| if below == 0.0 { v <= 0.0 } else { v < below };
                errors
                    .push(measured.iter().map(|m| m.iter().filter(|&&v| short(v)).count() as f64 / n as f64).collect());
                means.push(measured.iter().map(|m| m.iter().sum::<f64>() / n as f64).collect::<Vec<f64>>());
                let layers = self.init(k, seed);
                let flows: Vec<Vec<f64>> = (0..n)
                    .map(|i| {
                        let logits = self.flow_logits(&layers, k, i, classes[i], norms[i], &times);
                        logits.iter().map(|z| theory::multiclass_margin(z, classes[i])).collect()
                    })
                    .collect();
                let per_time = |t: usize| flows.iter().map(|f| f[t]).collect::<Vec<f64>>();
                let theory_error: Vec<f64> = (0..times.len())
                    .map(|t| per_time(t).iter().filter(|&&v| short(v)).count() as f64 / n as f64)
                    .collect();
                for (a, b) in errors[e].iter().zip(&theory_error) {
                    gaps.push((a - b).abs() * n as f64);
                }
                theory_errors.push(theory_error);
                theory_means.push((0..times.len()).map(|t| per_time(t).iter().sum::<f64>() / n as f64).collect());
                // Both read off the same logged times, so the interpolation is the same.
                for i in 0..n {
                    let curve: Vec<f64> = measured.iter().map(|m| m[i]).collect();
                    let reached = |c: &[f64]| crossing_time(&times, c, target).unwrap_or(f64::NAN) / n as f64;
                    point_times[i].push(reached(&curve));
                    point_flow_times[i].push(reached(&flows[i]));
                }
            }
            let name = k_name(k);
            body.series.push(
                Series::mean_over_seeds(format!("{name}: error"), 0, color, times.clone(), &errors)
                    .skipping(skip)
                    .legend_label(&name),
            );
            // The theory, averaged over seeds like the measurement.
            let theory_line = |name: String, panel: usize, curves: &[Vec<f64>]| {
                let (mean, _, _) = mean_min_max(curves);
                Series::theory(name, panel, times[skip..].to_vec(), mean[skip..].to_vec()).legend_label(FLOW_LABEL)
            };
            body.series
                .push(theory_line(format!("{name} (theory): error"), 0, &theory_errors).in_legend(j + 1 == ks.len()));
            body.series.push(
                Series::mean_over_seeds(format!("{name}: mean margin"), 1, color, times.clone(), &means)
                    .skipping(skip)
                    .legend_label(&name)
                    .in_legend(false),
            );
            body.series.push(theory_line(format!("{name} (theory): mean margin"), 1, &theory_means).in_legend(false));

            // In the flow's units, N / s^p: every point alike for the linear model.
            let scaled = |per_point: &[Vec<f64>]| -> Vec<f64> {
                let mut all: Vec<f64> = per_point
                    .iter()
                    .zip(&norms)
                    .flat_map(|(ts, &s)| ts.iter().map(move |t| t * s.powi(power)))
                    .collect();
                all.sort_by(f64::total_cmp);
                all
            };
            let (scaled_times, scaled_flow_times) = (scaled(&point_times), scaled(&point_flow_times));
            // A median is undefined (NaN) if some point never got there.
            let median = |sorted: &[f64]| {
                if sorted.iter().any(|t| t.is_nan()) {
                    f64::NAN
                } else {
                    sorted[sorted.len() / 2]
                }
            };
            let measured_median = median(&scaled_times);
            body.scalars.insert(self.time_scalar(k), measured_median);
            body.scalars.insert(self.flow_time_scalar(k), median(&scaled_flow_times));
            body.scalars.insert(self.closed_form_scalar(k), self.closed_form_time(k));
            let at = |q: f64| scaled_times[((scaled_times.len() - 1) as f64 * q).round() as usize];
            // Undefined, like the median, if a point never got there (or started there).
            let defined = !measured_median.is_nan() && at(0.1) > 0.0;
            body.scalars.insert(Self::spread_scalar(k), if defined { at(0.9) / at(0.1) } else { f64::NAN });
            measured_times.push(measured_median);
            flow_times.push(median(&scaled_flow_times));
            closed_forms.push(self.closed_form_time(k));

            // The norm's part: every (point, seed) that got there, one fit of ln t on ln s.
            let (s_all, t_all): (Vec<f64>, Vec<f64>) = point_times
                .iter()
                .zip(&norms)
                .flat_map(|(ts, &s)| ts.iter().filter(|t| t.is_finite() && **t > 0.0).map(move |&t| (s, t)))
                .unzip();
            let exponent = if s_all.len() < 3 { f64::NAN } else { loglog_slope(&s_all, &t_all) };
            body.scalars.insert(Self::exponent_scalar(k), exponent);
            // The same fit in each seed alone (the claims decide on these, over seeds), and
            // with each seed's norms in a permutation of its own: a pairing that carries no law.
            let seeds = point_times.first().map_or(0, Vec::len);
            let per_seed = |permute: bool| -> Vec<f64> {
                (0..seeds)
                    .map(|e| {
                        let ss = if permute {
                            crate::rng::permuted("multiclass/permuted-norms-per-seed", e as u64, &norms)
                        } else {
                            norms.clone()
                        };
                        let (s, t): (Vec<f64>, Vec<f64>) = ss
                            .iter()
                            .zip(&point_times)
                            .map(|(&s, ts)| (s, ts[e]))
                            .filter(|(_, t)| t.is_finite() && *t > 0.0)
                            .unzip();
                        if s.len() < 3 {
                            f64::NAN
                        } else {
                            loglog_slope(&s, &t)
                        }
                    })
                    // A seed in which fewer than 3 points got there has no fit: the interval's n says so.
                    .filter(|v| v.is_finite())
                    .collect()
            };
            body.samples.insert(Self::exponent_samples(k), per_seed(false));
            body.samples.insert(Self::permuted_exponent_samples(k), per_seed(true));
            let permutation = crate::rng::permutation("multiclass/permuted-norms", 0, norms.len());
            let (s_perm, t_perm): (Vec<f64>, Vec<f64>) = point_times
                .iter()
                .zip(permutation.iter().map(|&i| norms[i]))
                .flat_map(|(ts, s)| ts.iter().filter(|t| t.is_finite() && **t > 0.0).map(move |&t| (s, t)))
                .unzip();
            let permuted = if s_perm.len() < 3 { f64::NAN } else { loglog_slope(&s_perm, &t_perm) };
            body.scalars.insert(Self::permuted_exponent_scalar(k), permuted);
            let per_point_median: Vec<(f64, f64)> = point_times
                .iter()
                .zip(&norms)
                .filter_map(|(ts, &s)| {
                    let mut ts = ts.clone();
                    ts.sort_by(f64::total_cmp);
                    let t = median(&ts);
                    (t.is_finite() && t > 0.0).then_some((s, t))
                })
                .collect();
            let (xs, ys) = per_point_median.into_iter().unzip();
            body.series
                .push(Series::points(format!("{name}: time against the norm"), 3, color, xs, ys).legend_label(&name));
        }
        let kx: Vec<f64> = ks.iter().map(|&k| k as f64).collect();
        // A time is undefined (NaN, in its scalar) where some point never reached the margin: not drawn.
        let finite = |ts: &[f64]| -> (Vec<f64>, Vec<f64>) {
            kx.iter().zip(ts).filter(|(_, t)| t.is_finite()).map(|(&k, &t)| (k, t)).unzip()
        };
        let (reached_k, reached_t) = finite(&measured_times);
        // Each K's value on the flow as a short black dash across its K, under the
        // measured dot: both stay visible where they agree (a dot on a dot hid one).
        for (&k, &t) in ks.iter().zip(&flow_times).filter(|(_, t)| t.is_finite()) {
            let half = 0.04 * (kx[kx.len() - 1] - kx[0]).max(1.0);
            body.series.push(
                Series::theory(Self::flow_mark_series(k), 2, vec![k as f64 - half, k as f64 + half], vec![t, t])
                    .legend_label(FLOW_LABEL),
            );
        }
        body.series.push(Series::points("time to the target margin", 2, palette::PURPLE, reached_k, reached_t));
        body.series.push(Series::line(
            self.closed_form_series(),
            2,
            Source::Theory,
            palette::VERMILLION,
            kx,
            closed_forms,
        ));
        // Guides of slope -1 and -2 through the largest K's median at s = 1 (where
        // t / N is the time in the flow's units), over the norms' range: which one
        // the points follow is the norm claim. Each power keeps its colour in
        // both figures (1/s grey, 1/s^2 sky blue), so a colour never changes meaning.
        let (lo, hi) = norms.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &s| (lo.min(s), hi.max(s)));
        let anchor = *measured_times.last().unwrap_or(&f64::NAN);
        for (name, p) in [("power 1 / s", 1), ("power 1 / s^2", 2)] {
            let (xs, ys) = if anchor.is_finite() {
                (vec![lo, hi], vec![anchor / lo.powi(p), anchor / hi.powi(p)])
            } else {
                (Vec::new(), Vec::new())
            };
            let color = if p == 2 { palette::SKY_BLUE } else { palette::GREY };
            body.series.push(Series::line(name, 3, Source::Theory, color, xs, ys));
        }
        body.scalars.insert(GAP.into(), crate::stats::largest_gap(&gaps));
        Ok(body)
    }
}
