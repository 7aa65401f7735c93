//! Feature frequency sets the speed.
//!
//! K orthonormal features e_1..e_K; feature k is carried by n_k of the N
//! training points, x_i = y_i e_k (with the label's sign, half of them of
//! each label), frequencies p_k = n_k / N spread over a decade. The linear
//! model's weight on feature k obeys dw_k/dt = p_k push(w_k): its learning
//! time goes like 1/p_k exactly. A two-layer net with the aligned, balanced
//! init has one mode per (feature, label), each with its own frequency, so
//! the same law holds; from a random init there is no exact theory.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{job_config, Job, JobId, Kind};
use crate::engine::{EnsembleData, EnsembleWeights, TrainConfig, TrainInput, TrainLog};
use crate::figure::{palette, FigureBody, Panel, Series, Source};
use crate::rng::random_layers;
use crate::stats::{crossing_time, loglog_slope, max_or_nan};
use crate::theory::Mode;
use crate::values::{Count, Loss, Outputs, Positive};

/// This kind's source files (see `kinds::files`).
pub const FILES: &[&str] = &[file!()];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Frequency {
    /// n_k: how many points carry each feature (the frequencies are n_k / N).
    pub counts: Vec<Count>,
    pub loss: Loss,
    pub learning_rate: Positive,
    pub steps: Count,
    pub log_points: Count,
    /// A feature is learned when the mean margin of its points reaches this.
    pub target_margin: Positive,
    /// Every weight of the aligned two-layer net's modes.
    pub balanced_scale: Positive,
    /// Weights of the random two-layer net ~ normal(0, random_scale^2 / fan_in).
    pub random_scale: Positive,
    /// Hidden width of the random two-layer net.
    pub random_width: Count,
    /// Seeds of the random init (the other two nets have no random part).
    pub seed_count: Count,
    pub theory_dt: Positive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    Linear,
    Aligned,
    Random,
}

const NETS: [Net; 3] = [Net::Linear, Net::Aligned, Net::Random];

impl Net {
    fn name(self) -> &'static str {
        match self {
            Net::Linear => "linear (zero init)",
            Net::Aligned => "two-layer, aligned balanced init",
            Net::Random => "two-layer, random init",
        }
    }

    fn has_theory(self) -> bool {
        self != Net::Random
    }

    fn color(self) -> &'static str {
        match self {
            Net::Linear => palette::depth(1),
            Net::Aligned => palette::depth(2),
            Net::Random => palette::PURPLE,
        }
    }
}

fn slope_scalar(net: Net) -> String {
    format!("{}: log-log slope of learning time vs frequency", net.name())
}
/// The random net's log-log slope, one per seed: what the claims about it decide on.
const RANDOM_SLOPES: &str = "two-layer, random init: log-log slope of learning time vs frequency, per seed";
/// The same with each seed's learning times paired with the frequencies in a
/// random permutation of its own: the counterfactual where frequency sets nothing.
const RANDOM_SLOPES_PERMUTED: &str =
    "two-layer, random init: the same slope with the frequencies permuted (a pairing that carries no law), per seed";

fn gap_scalar(net: Net) -> String {
    format!("{}: largest gap of learning times to theory (%)", net.name())
}
fn time_scalar(net: Net, k: usize) -> String {
    format!("{}: learning time of feature {}", net.name(), k + 1)
}

impl Frequency {
    /// Each point's feature and label: feature by feature, the first half
    /// (rounded up) of its points labelled +1, the rest -1.
    fn points_list(&self) -> Vec<(usize, f64)> {
        self.counts
            .iter()
            .enumerate()
            .flat_map(|(k, c)| (0..c.usize()).map(move |j| (k, if j < c.usize().div_ceil(2) { 1.0 } else { -1.0 })))
            .collect()
    }

    /// The theory margin of each point over time: one mode per feature for
    /// the linear model, one per (feature, label) for the aligned net.
    fn theory_margins(&self, net: Net, times: &[f64]) -> Vec<Vec<f64>> {
        let points = self.points_list();
        let n = points.len() as f64;
        let dt = self.theory_dt.get();
        points
            .iter()
            .map(|&(feature, label)| {
                let (weights, sharing) = match net {
                    Net::Linear => (vec![0.0], self.counts[feature].get() as f64),
                    _ => {
                        let a = self.balanced_scale.get() as f32 as f64;
                        let same = points.iter().filter(|&&(f, l)| f == feature && l == label).count();
                        (vec![a, a], same as f64)
                    }
                };
                // A mode shared by `sharing` identical points moves like one
                // point in a data set of n / sharing.
                Mode { norm: 1.0, weights }
                    .states_at(times, self.loss, n / sharing, dt, 0.01)
                    .iter()
                    .map(Mode::margin)
                    .collect()
            })
            .collect()
    }
}

/// The features' shades, dark to light as the frequency grows (see where they are drawn).
/// The shown features' colours, rarest first: plasma at 0, 0.5 and 0.75, apart
/// in lightness so they stay distinct under colour blindness, and dark enough to
/// read on white (a six-stop viridis ramp was too faint at its green end and too
/// close at its purple end for a deuteranope).
const SHOWN_COLORS: [&str; 3] = ["#0d0887", "#b83289", "#f48849"];

impl Kind for Frequency {
    fn seeds(&self) -> Vec<u64> {
        (0..self.seed_count.get()).collect()
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.counts.len() < 2 {
            p.push("counts: expected at least two features".into());
        }
        // One shade of the ramp per feature (the legend rule refuses one shade for two).
        if self.counts.iter().any(|c| c.get() < 2) {
            p.push("counts: every feature needs at least 2 points (one of each label)".into());
        }
        p
    }

    fn outputs(&self) -> Outputs {
        let mut out = Outputs::default();
        for net in NETS {
            out.series.push(net.name().into());
            out.scalars.push(slope_scalar(net));
            out.scalars.extend((0..self.counts.len()).map(|k| time_scalar(net, k)));
            if net.has_theory() {
                out.series.push(format!("{} (theory)", net.name()));
                out.scalars.push(gap_scalar(net));
            }
        }
        out.samples = vec![RANDOM_SLOPES.into(), RANDOM_SLOPES_PERMUTED.into()];
        out
    }

    fn jobs(&self) -> Vec<Job> {
        Job::numbered(NETS.iter().map(|&net| {
            let seeds = if net == Net::Random { self.seeds() } else { vec![] };
            let mut config = job_config(
                self,
                &[("theory_dt", json!(null)), ("target_margin", json!(null)), ("net", json!(net.name()))],
            );
            if net != Net::Random {
                // Only the random net reads these.
                for key in ["random_scale", "random_width", "seed_count"] {
                    config[key] = json!(null);
                }
            }
            if net != Net::Aligned {
                config["balanced_scale"] = json!(null);
            }
            // The aligned and balanced nets are not random: one member, "seed 0".
            let member_seeds = if seeds.is_empty() { vec![0] } else { seeds.clone() };
            Job { id: JobId(0), name: net.name().into(), config, member_seeds, seeds }
        }))
    }

    fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        let net = *NETS.get(job.id.0).ok_or_else(|| anyhow::anyhow!("frequency has no job {:?}", job.id))?;
        let k = self.counts.len();
        let points = self.points_list();
        let n = points.len();
        let members = job.members();
        let mut x = Vec::with_capacity(members * n * k);
        let mut y = Vec::with_capacity(members * n);
        for _ in 0..members {
            for &(feature, label) in &points {
                x.extend((0..k).map(|j| if j == feature { label as f32 } else { 0.0 }));
                y.push(label as f32);
            }
        }
        let data = EnsembleData { members, points: n, dim: k, x, y };
        let init = match net {
            Net::Linear => EnsembleWeights { members, shapes: vec![(1, k)], layers: vec![vec![0.0; members * k]] },
            Net::Aligned => {
                // Unit 2j sees +e_j, unit 2j+1 sees -e_j; outputs of the sign
                // of the label those points carry.
                let a = self.balanced_scale.get() as f32;
                let mut first = vec![0.0; 2 * k * k];
                let mut out = vec![0.0; 2 * k];
                for j in 0..k {
                    first[2 * j * k + j] = a;
                    first[(2 * j + 1) * k + j] = -a;
                    out[2 * j] = a;
                    out[2 * j + 1] = -a;
                }
                EnsembleWeights { members, shapes: vec![(2 * k, k), (1, 2 * k)], layers: vec![first, out] }
            }
            Net::Random => {
                let h = self.random_width.usize();
                let shapes = vec![(h, k), (1, h)];
                let mut layers = vec![Vec::new(), Vec::new()];
                for &seed in &job.seeds {
                    for (l, w) in random_layers("frequency/random-init", seed, &shapes, self.random_scale.get())
                        .into_iter()
                        .enumerate()
                    {
                        layers[l].extend(w);
                    }
                }
                EnsembleWeights { members, shapes, layers }
            }
        };
        let cfg = TrainConfig::logged(self.loss, self.learning_rate.get(), self.steps.get(), self.log_points.get());
        Ok(TrainInput { init, data, cfg })
    }

    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        ensure!(logs.len() == NETS.len(), "frequency expects {} job logs, got {}", NETS.len(), logs.len());
        let points = self.points_list();
        let n = points.len();
        let freqs: Vec<f64> = self.counts.iter().map(|c| c.get() as f64 / n as f64).collect();
        let target = self.target_margin.get();
        let mut body = FigureBody {
            panels: vec![
                Panel::new(
                    format!("time for a feature's points to reach mean margin {target}"),
                    "frequency p_k = n_k / N",
                    "learning time (dots, solid: measured; dashed: theory)",
                )
                .log_x()
                .log_y(),
                Panel::over_log_time("linear model: mean margin of each feature's points", "mean margin"),
            ],
            ..Default::default()
        };
        let feature_mean = |margins: &dyn Fn(usize) -> f64, k: usize| -> f64 {
            let idx: Vec<usize> = (0..n).filter(|&i| points[i].0 == k).collect();
            idx.iter().map(|&i| margins(i)).sum::<f64>() / idx.len() as f64
        };
        for (net, log) in NETS.into_iter().zip(logs) {
            let times = log.times();
            let members = log.diverged_at.len();
            // Per feature, per member: the mean margin of its points over time.
            let curves: Vec<Vec<Vec<f64>>> = (0..self.counts.len())
                .map(|k| {
                    (0..members)
                        .map(|e| log.margins.iter().map(|m| feature_mean(&|i| m[e * n + i] as f64, k)).collect())
                        .collect()
                })
                .collect();
            // Per member, per feature: when its points' mean margin reaches the target.
            let member_times: Vec<Vec<f64>> = (0..members)
                .map(|e| curves.iter().map(|c| crossing_time(&times, &c[e], target).unwrap_or(f64::NAN)).collect())
                .collect();
            let learn_times: Vec<f64> = (0..self.counts.len())
                .map(|k| member_times.iter().map(|ts| ts[k]).sum::<f64>() / members as f64)
                .collect();
            for (k, t) in learn_times.iter().enumerate() {
                body.scalars.insert(time_scalar(net, k), *t);
            }
            if net == Net::Random {
                // Each seed's frequencies in its own permutation for the control.
                let per_seed = |permute: bool| -> Vec<f64> {
                    (0..members)
                        .map(|e| {
                            let ts = &member_times[e];
                            let fs = if permute {
                                crate::rng::permuted("frequency/permuted-frequencies", e as u64, &freqs)
                            } else {
                                freqs.clone()
                            };
                            loglog_slope(&fs, ts)
                        })
                        // A seed that never learned some feature has no slope: the interval's n says so.
                        .filter(|v| v.is_finite())
                        .collect()
                };
                body.samples.insert(RANDOM_SLOPES.into(), per_seed(false));
                body.samples.insert(RANDOM_SLOPES_PERMUTED.into(), per_seed(true));
            }
            body.scalars.insert(slope_scalar(net), loglog_slope(&freqs, &learn_times));
            // A feature never learned has no point to draw (its scalar is NaN).
            let (px, py): (Vec<f64>, Vec<f64>) =
                freqs.iter().zip(&learn_times).filter(|(_, t)| t.is_finite()).map(|(f, t)| (*f, *t)).unzip();
            if net == Net::Random {
                // No theory and seeds that differ: the mean over seeds with its
                // spread, each seed's learning times along the frequencies.
                if member_times.iter().flatten().all(|t| t.is_finite()) {
                    body.series.push(Series::mean_over_seeds(net.name(), 0, net.color(), freqs.clone(), &member_times));
                } else {
                    body.series.push(Series::points(net.name(), 0, net.color(), px, py));
                }
            } else {
                body.series.push(Series::points(net.name(), 0, net.color(), px, py));
            }
            if net.has_theory() {
                let theory = self.theory_margins(net, &times);
                let theory_times: Vec<f64> = (0..self.counts.len())
                    .map(|k| {
                        let mean: Vec<f64> = (0..times.len()).map(|t| feature_mean(&|i| theory[i][t], k)).collect();
                        crossing_time(&times, &mean, target).unwrap_or(f64::NAN)
                    })
                    .collect();
                let gap = max_or_nan(learn_times.iter().zip(&theory_times).map(|(m, t)| 100.0 * (m - t).abs() / t));
                body.scalars.insert(gap_scalar(net), gap);
                let (tx, ty): (Vec<f64>, Vec<f64>) =
                    freqs.iter().zip(&theory_times).filter(|(_, t)| t.is_finite()).map(|(f, t)| (*f, *t)).unzip();
                let name = format!("{} (theory)", net.name());
                body.series.push(Series::line(name, 0, Source::Theory, net.color(), tx, ty));
                if net == Net::Linear {
                    let skip = crate::stats::leading_zero_times(&times);
                    // The rarest, a middle and the most frequent feature: six
                    // curves of one ramp were too close to tell apart (also for
                    // colour-blind readers) and filled the legend.
                    let last = self.counts.len() - 1;
                    let mut shown = vec![0, last.div_ceil(2), last];
                    shown.dedup();
                    for (position, &k) in shown.iter().enumerate() {
                        // An ordered quantity: a ramp, apart from the nets'
                        // colours in the left panel. The theory lies on the
                        // curves, so it is drawn in thin grey dashes: black
                        // ones, as wide as the curves, hid them but for the gaps.
                        let color = SHOWN_COLORS[position];
                        let name = format!("feature {} (p = {:.3})", k + 1, freqs[k]);
                        body.series.push(
                            Series::mean_over_seeds(name, 1, color, times.clone(), &curves[k])
                                .skipping(skip)
                                .keep_band_if(members > 1),
                        );
                        let y = (skip..times.len()).map(|t| feature_mean(&|i| theory[i][t], k)).collect();
                        body.series.push(
                            Series::line(
                                format!("feature {} (theory)", k + 1),
                                1,
                                Source::Theory,
                                palette::GREY,
                                times[skip..].to_vec(),
                                y,
                            )
                            .legend_label("theory (linear model)")
                            .in_legend(k == last),
                        );
                    }
                }
            }
        }
        Ok(body)
    }
}
