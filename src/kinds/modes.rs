//! Parallel independent modes: with the aligned, balanced init every point
//! of the orthogonal data set has its own scalar chain, and each measured
//! margin follows its own ODE; from a random init the modes interact.
//!
//! The data set and the two inits are the sigmoid figure's (`Init::Balanced`
//! and `Init::Random`), so this kind runs two of its models and draws the
//! margins instead of the error.
//!
//! ## Coupling, measured from the weights
//!
//! A gradient-descent step on the mean loss moves point j's output by
//! df(x_j) = -(lr / N) sum_i l'(m_i) y_i K(x_i, x_j), with the tangent kernel
//! K_ij = grad_theta f(x_i) . grad_theta f(x_j): point i drives point j only
//! through K_ij, so the modes are independent exactly when K is diagonal. We
//! draw its normalized off-diagonal K_ij / sqrt(K_ii K_jj), a cosine in [-1, 1]
//! (0 where K_ii K_jj = 0: a point with no gradient couples to nothing, and
//! then K_ij = 0 too by Cauchy-Schwarz).
//!
//! For the bias-free ReLU net f(x) = W_L relu(W_{L-1} ... relu(W_1 x)), write
//! h_0 = x, a_l = W_l h_{l-1}, h_l = relu(a_l) for l < L, so f = a_L. The
//! backward vectors are delta_L = 1 and delta_l = D_l W_{l+1}^T delta_{l+1}
//! with D_l = diag(1[a_l > 0]) (relu'(0) = 0, as in the engines). Then
//! df/dW_l = delta_l h_{l-1}^T, a rank-one matrix, and the Frobenius product of
//! two rank-one matrices factorizes, so
//!
//!   K_ij = sum_l (delta_l(x_i) . delta_l(x_j)) (h_{l-1}(x_i) . h_{l-1}(x_j)).
//!
//! Two layers, f = v . relu(U x):
//!
//!   K_ij = relu(U x_i) . relu(U x_j) + (x_i . x_j) sum_k v_k^2 1[u_k . x_i > 0] 1[u_k . x_j > 0].
//!
//! On orthogonal inputs the second term is 0, and the coupling is the overlap
//! of the two points' hidden features alone.
//!
//! Aligned init: every W_l with l < L is diagonal (unit k sees point k only).
//! Then h_l(x_i) is zero but at unit i for every l >= 1, and h_0 . h_0 =
//! x_i . x_j = 0, so every term of K_ij (i != j) is a product with an exact
//! zero. Training keeps the off-diagonal weights at exact zeros: the gradient
//! of W_1[k, i] (k != i) is a sum of terms that carry x_j[i] = 0 (j != i) or
//! 1[a_1(x_i)_k > 0] with a_1(x_i)_k = W_1[k, i] s_i = 0, and deeper layers
//! likewise. So the normalized off-diagonal is exactly 0 (not merely small) at
//! every step, in floating point too: a consistency check of the construction
//! and of the engine. From a random init nothing makes K diagonal: the
//! measurement (`tangent_kernel`, from the weights the engine records at every
//! logged step) is the evidence that the modes interact.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

use super::sigmoid::{self, Init, Model, OrthogonalData};
use super::{Job, Kind};
use crate::engine::{EnsembleWeights, RecordWeights, TrainInput, TrainLog};
use crate::figure::{palette, FigureBody, Panel, Series};
use crate::values::{Count, Depth, Loss, Outputs, Positive};

/// This kind's source files: its own, then the sigmoid kind's, whose models it trains.
pub const FILES: &[&str] = &[file!(), sigmoid::FILES[0]];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Modes {
    /// N (`data.points`) is also the width of both nets.
    pub data: OrthogonalData,
    pub loss: Loss,
    pub learning_rate: Positive,
    pub steps: Count,
    pub log_points: Count,
    /// Seeds of the random init (the balanced init has no random part).
    pub seed_count: Count,
    pub theory_dt: Positive,
    pub depth: Depth,
    /// Every weight of every mode of the aligned net.
    pub balanced_scale: Positive,
    /// Weights of the random net ~ normal(0, random_scale^2 / fan_in).
    pub random_scale: Positive,
    /// How many points' margins are drawn (spread over the range of norms), at most 5.
    pub shown_points: Count,
    /// A point is learned when its margin first reaches this (for the order
    /// in which the random net learns its points).
    pub learned_margin: Positive,
}

const ALIGNED: &str = "aligned, balanced init";
const RANDOM: &str = "random init";
const ALIGNED_GAP: &str = "aligned: largest gap to the mode ODE (% of the margin)";
const ALIGNED_ORDER: &str = "aligned: rank correlation of the points' norms with their learning times";
/// Per seed: Spearman's rank correlation of the norms s_i with the times at
/// which the margins first reach `learned_margin`.
const RANDOM_ORDER: &str = "random: rank correlation of the points' norms with their learning times, per seed";
/// The same with each seed's norms in a random permutation of their own: the
/// counterfactual where a point's norm does not set its time.
const RANDOM_ORDER_PERMUTED: &str =
    "random: rank correlation of the learning times with the norms permuted (a pairing that carries no order), per seed";
const RANDOM_ORDER_MEAN: &str =
    "random: rank correlation of the points' norms with their learning times, mean over seeds";
const RANDOM_ORDER_PERMUTED_MEAN: &str =
    "random: rank correlation of the learning times with the norms permuted, mean over seeds";
/// The largest |K_ij| / sqrt(K_ii K_jj) (i != j) over pairs, seeds and logged steps.
const ALIGNED_COUPLING_MAX: &str = "aligned: largest normalized tangent-kernel off-diagonal";
const RANDOM_COUPLING_MAX: &str = "random: largest normalized tangent-kernel off-diagonal";
/// Per seed: the mean over pairs i < j of |K_ij| / sqrt(K_ii K_jj), averaged
/// over the logged times after t = 0 (log-spaced, so an average in log t).
const ALIGNED_COUPLING: &str =
    "aligned: normalized tangent-kernel off-diagonal, mean over pairs and logged times, per seed";
const RANDOM_COUPLING: &str =
    "random: normalized tangent-kernel off-diagonal, mean over pairs and logged times, per seed";
const RANDOM_COUPLING_MEAN: &str =
    "random: normalized tangent-kernel off-diagonal, mean over pairs and logged times, mean over seeds";
/// At the last logged step, mean over seeds: pairs of points with the same
/// label, and with opposite labels.
const RANDOM_COUPLING_SAME: &str = "random: normalized tangent-kernel off-diagonal at the end, pairs of one label";
const RANDOM_COUPLING_OPPOSITE: &str =
    "random: normalized tangent-kernel off-diagonal at the end, pairs of opposite labels";
/// The overlap of the last hidden layer's outputs h = h_{L-1}(x), the
/// output weights' gradient: cos(h_i, h_j), mean over pairs i < j, averaged
/// over the logged times after t = 0, per seed. On orthogonal inputs and two
/// layers, K_ij / sqrt(K_ii K_jj) = cos(h_i, h_j) sqrt(rho_i rho_j) exactly,
/// with rho_i = |h_i|^2 / K_ii the output layer's share of K_ii.
const RANDOM_FEATURES: &str =
    "random: overlap of the hidden features cos(h_i, h_j), mean over pairs and logged times, per seed";
const RANDOM_FEATURES_MEAN: &str =
    "random: overlap of the hidden features cos(h_i, h_j), mean over pairs and logged times, mean over seeds";
/// rho_i = |h_i|^2 / K_ii, mean over points and seeds, at t = 0 and at the end.
const RANDOM_SHARE_START: &str = "random: the output layer's share of K_ii, mean over points, at the init";
const RANDOM_SHARE_END: &str = "random: the output layer's share of K_ii, mean over points, at the end";
const FEATURES_COLOR: &str = palette::GREY;
/// The five points' colours; sky blue is the aligned coupling's in panel (c)
/// black the random one's, grey the random net's feature overlap.
const POINT_COLORS: [&str; 5] = [palette::BLUE, palette::ORANGE, palette::GREEN, palette::VERMILLION, palette::PURPLE];
const ALIGNED_COUPLING_COLOR: &str = palette::SKY_BLUE;
const RANDOM_COUPLING_COLOR: &str = palette::BLACK;

impl Modes {
    /// The sigmoid-figure experiment with this figure's two nets.
    fn base(&self) -> sigmoid::Sigmoid {
        let model = |name: &str, init: Init| Model {
            name: name.into(),
            depth: self.depth,
            width: Some(self.data.points),
            init,
        };
        sigmoid::Sigmoid {
            data: self.data,
            loss: self.loss,
            learning_rate: self.learning_rate,
            steps: self.steps,
            log_points: self.log_points,
            seed_count: self.seed_count,
            theory_dt: self.theory_dt,
            models: vec![
                model(ALIGNED, Init::Balanced { scale: self.balanced_scale }),
                model(RANDOM, Init::Random { scale: self.random_scale }),
            ],
        }
    }

    /// The points drawn: evenly spread in rank of norm, smallest to largest.
    fn shown(&self, norms: &[f64]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..norms.len()).collect();
        order.sort_by(|&a, &b| norms[a].total_cmp(&norms[b]));
        let k = self.shown_points.usize();
        (0..k).map(|i| order[if k == 1 { 0 } else { i * (norms.len() - 1) / (k - 1) }]).collect()
    }
}

impl Kind for Modes {
    fn seeds(&self) -> Vec<u64> {
        self.base().seeds()
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.depth.get() < 2 {
            p.push("depth: expected at least 2 (the linear model has no hidden modes)".into());
        }
        if self.shown_points.get() > (POINT_COLORS.len() as u64).min(self.data.points.get()) {
            p.push(format!("shown_points: expected at most {} (and at most points)", POINT_COLORS.len()));
        }
        if self.data.points.get() < 2 {
            p.push("data.points: expected at least 2 (coupling is between two points)".into());
        }
        p
    }

    fn outputs(&self) -> Outputs {
        Outputs {
            series: Vec::new(),
            scalars: vec![
                ALIGNED_GAP.into(),
                ALIGNED_ORDER.into(),
                RANDOM_ORDER_MEAN.into(),
                RANDOM_ORDER_PERMUTED_MEAN.into(),
                ALIGNED_COUPLING_MAX.into(),
                RANDOM_COUPLING_MAX.into(),
                RANDOM_COUPLING_MEAN.into(),
                RANDOM_COUPLING_SAME.into(),
                RANDOM_COUPLING_OPPOSITE.into(),
                RANDOM_FEATURES_MEAN.into(),
                RANDOM_SHARE_START.into(),
                RANDOM_SHARE_END.into(),
            ],
            samples: vec![
                RANDOM_ORDER.into(),
                RANDOM_ORDER_PERMUTED.into(),
                ALIGNED_COUPLING.into(),
                RANDOM_COUPLING.into(),
                RANDOM_FEATURES.into(),
            ],
        }
    }

    fn jobs(&self) -> Vec<Job> {
        self.base().jobs()
    }

    /// The sigmoid kind's training, with the weights recorded at every logged
    /// step: the tangent kernel is computed from them.
    fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        let mut input = self.base().prepare_job(job)?;
        input.cfg.record_weights = RecordWeights::Every;
        Ok(input)
    }

    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        ensure!(logs.len() == 2, "modes expects 2 job logs, got {}", logs.len());
        let base = self.base();
        let n = self.data.points.usize();
        let (norms, labels) = base.norms_and_labels();
        let seeds = self.seeds();
        let times = logs[0].times();
        let skip = crate::stats::leading_zero_times(&times);
        // Every mode of the balanced init is the same for every seed.
        let (_, modes) = base.init(&base.models[0], seeds[0], &labels);
        let theory: Vec<Vec<f64>> =
            modes.iter().map(|m| m.margins_at(&times, self.loss, n as f64, self.theory_dt.get())).collect();
        let panel = |title: &str| Panel::over_log_time(title, "margin y f(x)");
        let mut body = FigureBody {
            panels: vec![
                panel("aligned init: each mode on its ODE"),
                panel("random init; dashed: aligned ODE"),
                Panel::over_log_time("coupling between modes", "mean over pairs i ≠ j"),
            ],
            ..Default::default()
        };
        // The inputs as the engine holds them (norms in f32).
        // Panel (c)'s series, drawn after the margins (and listed after them).
        let mut coupling = Vec::new();
        let inputs: Vec<Vec<f64>> =
            (0..n).map(|i| (0..n).map(|j| if i == j { norms[i] as f32 as f64 } else { 0.0 }).collect()).collect();
        for (panel, (log, name)) in logs.iter().zip([ALIGNED, RANDOM]).enumerate() {
            if panel == 0 {
                let mut gap: f64 = 0.0;
                for seed in 0..seeds.len() {
                    for (i, ode) in theory.iter().enumerate() {
                        for (step, m) in log.margins.iter().enumerate().skip(skip) {
                            let diff = (m[seed * n + i] as f64 - ode[step]).abs();
                            gap = gap.max(100.0 * diff / ode[step]);
                        }
                    }
                }
                body.scalars.insert(ALIGNED_GAP.into(), gap);
            }
            // Do the modes keep their order by norm (the larger the norm, the
            // sooner) even where they interact? Per seed, each point's time to
            // reach the target margin, ranked against the norms.
            let order: Vec<f64> = (0..seeds.len())
                .map(|k| {
                    let learned: Vec<f64> = (0..n)
                        .map(|i| {
                            let margins: Vec<f64> = log.margins.iter().map(|m| m[k * n + i] as f64).collect();
                            // A point never learned ranks after every learned one
                            // (never-learned points tie).
                            crate::stats::crossing_time(&times, &margins, self.learned_margin.get())
                                .unwrap_or(f64::INFINITY)
                        })
                        .collect();
                    if panel == 0 {
                        rank_correlation(&norms, &learned)
                    } else {
                        let permuted = crate::rng::permuted("modes/permuted-norms", seeds[k], &norms);
                        body.samples
                            .entry(RANDOM_ORDER_PERMUTED.into())
                            .or_default()
                            .push(rank_correlation(&permuted, &learned));
                        rank_correlation(&norms, &learned)
                    }
                })
                .collect();
            if panel == 0 {
                body.scalars.insert(ALIGNED_ORDER.into(), mean(&order));
            } else {
                body.scalars.insert(RANDOM_ORDER_MEAN.into(), mean(&order));
                body.scalars.insert(RANDOM_ORDER_PERMUTED_MEAN.into(), mean(&body.samples[RANDOM_ORDER_PERMUTED]));
                body.samples.insert(RANDOM_ORDER.into(), order);
            }
            // The coupling at every logged step, per seed, from the recorded weights.
            ensure!(
                log.weights.iter().map(|(s, _)| *s).eq(log.log_steps.iter().copied()),
                "modes needs the weights at every logged step (the cached log has them at {} of {})",
                log.weights.len(),
                log.log_steps.len()
            );
            let mut largest: f64 = 0.0;
            let (mut per_seed, mut features): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (Vec::new(), Vec::new());
            let (mut same, mut opposite, mut share_start, mut share_end) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for k in 0..seeds.len() {
                let (mut curve, mut overlap) = (Vec::new(), Vec::new());
                for (step, (_, weights)) in log.weights.iter().enumerate() {
                    let layers = layer_kernels(weights, k, &inputs);
                    let total = sum_of(&layers);
                    let c = Coupling::of(&total, &labels);
                    largest = largest.max(c.max);
                    if step >= skip {
                        curve.push(c.mean);
                        overlap.push(Coupling::of(&layers[layers.len() - 1], &labels).mean);
                    }
                    // Over the points with a gradient (K_ii > 0; a point on
                    // which every unit is dead has none).
                    let share = || {
                        let last = &layers[layers.len() - 1];
                        mean(
                            &(0..n)
                                .filter(|&i| total[i][i] > 0.0)
                                .map(|i| last[i][i] / total[i][i])
                                .collect::<Vec<_>>(),
                        )
                    };
                    if step == 0 {
                        share_start.push(share());
                    }
                    if step + 1 == log.weights.len() {
                        same.push(c.same_label);
                        opposite.push(c.opposite_labels);
                        share_end.push(share());
                    }
                }
                per_seed.push(curve);
                features.push(overlap);
            }
            let averages: Vec<f64> = per_seed.iter().map(|c| mean(c)).collect();
            let x = times[skip..].to_vec();
            if panel == 0 {
                body.scalars.insert(ALIGNED_COUPLING_MAX.into(), largest);
                body.samples.insert(ALIGNED_COUPLING.into(), averages);
                // Exactly 0 throughout and the same for every seed: markers at
                // every fourth logged time, which a line along the axis would hide.
                let every = |v: &[f64]| v.iter().step_by(4).copied().collect::<Vec<f64>>();
                coupling.push(
                    Series::points(
                        format!("coupling, {name}"),
                        2,
                        ALIGNED_COUPLING_COLOR,
                        every(&x),
                        every(&per_seed[0]),
                    )
                    .legend_label("aligned: |Kᵢⱼ| / √(Kᵢᵢ Kⱼⱼ), all 0"),
                );
            } else {
                body.scalars.insert(RANDOM_COUPLING_MAX.into(), largest);
                body.scalars.insert(RANDOM_COUPLING_MEAN.into(), mean(&averages));
                body.scalars.insert(RANDOM_COUPLING_SAME.into(), mean(&same));
                body.scalars.insert(RANDOM_COUPLING_OPPOSITE.into(), mean(&opposite));
                body.samples.insert(RANDOM_COUPLING.into(), averages);
                let overlaps: Vec<f64> = features.iter().map(|c| mean(c)).collect();
                body.scalars.insert(RANDOM_FEATURES_MEAN.into(), mean(&overlaps));
                body.samples.insert(RANDOM_FEATURES.into(), overlaps);
                body.scalars.insert(RANDOM_SHARE_START.into(), mean(&share_start));
                body.scalars.insert(RANDOM_SHARE_END.into(), mean(&share_end));
                coupling.push(
                    Series::mean_over_seeds(
                        format!("coupling, {name}"),
                        2,
                        RANDOM_COUPLING_COLOR,
                        x.clone(),
                        &per_seed,
                    )
                    .legend_label("random: |Kᵢⱼ| / √(Kᵢᵢ Kⱼⱼ)"),
                );
                coupling.push(
                    Series::mean_over_seeds("hidden-feature overlap, random init", 2, FEATURES_COLOR, x, &features)
                        .legend_label("random: cos(hᵢ, hⱼ), features"),
                );
            }
            let shown = self.shown(&norms);
            for (rank, &i) in shown.iter().enumerate() {
                let color = POINT_COLORS[rank];
                let per_seed: Vec<Vec<f64>> = (0..seeds.len())
                    .map(|k| log.margins.iter().skip(skip).map(|m| m[k * n + i] as f64).collect())
                    .collect();
                // A colour is a point (its norm s) in both panels; their titles say the init.
                let measured_name = format!("s = {:.2}, {name}", norms[i]);
                body.series.push(
                    Series::mean_over_seeds(measured_name, panel, color, times[skip..].to_vec(), &per_seed)
                        .legend_label(format!("s = {:.2}", norms[i]))
                        .keep_band_if(panel == 1),
                );
                let ode_name =
                    format!("mode ODE, s = {:.2}{}", norms[i], if panel == 0 { "" } else { " (for reference)" });
                body.series.push(
                    Series::theory(ode_name, panel, times[skip..].to_vec(), theory[i][skip..].to_vec())
                        .legend_label("mode ODE")
                        // Listed after the points, whose colours come first.
                        .in_legend(panel == 0 && rank + 1 == shown.len()),
                );
            }
        }
        body.series.extend(coupling);
        Ok(body)
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The tangent kernel K_ij = grad_theta f(x_i) . grad_theta f(x_j) of member
/// `member` on `inputs`, N x N, in f64 from the recorded f32 weights.
#[cfg(test)]
fn tangent_kernel(weights: &EnsembleWeights, member: usize, inputs: &[Vec<f64>]) -> Vec<Vec<f64>> {
    sum_of(&layer_kernels(weights, member, inputs))
}

/// The sum of per-layer kernels.
fn sum_of(layers: &[Vec<Vec<f64>>]) -> Vec<Vec<f64>> {
    let mut total = layers[0].clone();
    for layer in &layers[1..] {
        for (row, add) in total.iter_mut().zip(layer) {
            row.iter_mut().zip(add).for_each(|(t, a)| *t += a);
        }
    }
    total
}

/// Each layer's part of the tangent kernel, [l][i][j]: the product of the two
/// points' backward vectors' dot product and their layer inputs' dot product
/// (see the module doc); the last is the output weights' part, h_i . h_j.
fn layer_kernels(weights: &EnsembleWeights, member: usize, inputs: &[Vec<f64>]) -> Vec<Vec<Vec<f64>>> {
    let depth = weights.shapes.len();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    // Per point: the input of every layer (h_0 = x, ..., h_{L-1}) and dF/da_l.
    type LayerVectors = Vec<Vec<f64>>;
    let per_point: Vec<(LayerVectors, LayerVectors)> = inputs
        .iter()
        .map(|x| {
            let mut layer_inputs = vec![x.clone()];
            let mut active: Vec<Vec<bool>> = Vec::new();
            for l in 0..depth - 1 {
                let (out, inp) = weights.shapes[l];
                let w = weights.member_layer(member, l);
                let h = &layer_inputs[l];
                let pre: Vec<f64> = (0..out)
                    .map(|o| dot(&w[o * inp..(o + 1) * inp].iter().map(|&v| v as f64).collect::<Vec<_>>(), h))
                    .collect();
                active.push(pre.iter().map(|&a| a > 0.0).collect());
                layer_inputs.push(pre.iter().map(|&a| if a > 0.0 { a } else { 0.0 }).collect());
            }
            let mut deltas = vec![Vec::new(); depth];
            deltas[depth - 1] = vec![1.0];
            for l in (0..depth - 1).rev() {
                let (out, inp) = weights.shapes[l + 1];
                let w = weights.member_layer(member, l + 1);
                deltas[l] = (0..inp)
                    .map(|i| {
                        if active[l][i] {
                            (0..out).map(|o| w[o * inp + i] as f64 * deltas[l + 1][o]).sum()
                        } else {
                            0.0
                        }
                    })
                    .collect();
            }
            (layer_inputs, deltas)
        })
        .collect();
    let n = inputs.len();
    (0..depth)
        .map(|l| {
            (0..n)
                .map(|i| {
                    (0..n)
                        .map(|j| {
                            let ((hi, di), (hj, dj)) = (&per_point[i], &per_point[j]);
                            dot(&di[l], &dj[l]) * dot(&hi[l], &hj[l])
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// The normalized off-diagonal |K_ij| / sqrt(K_ii K_jj) of one kernel, over
/// the pairs i < j: its mean, its largest, and its mean over the pairs of one
/// label and of opposite labels (NaN where there is no such pair).
struct Coupling {
    mean: f64,
    max: f64,
    same_label: f64,
    opposite_labels: f64,
}

impl Coupling {
    fn of(k: &[Vec<f64>], labels: &[f64]) -> Coupling {
        let n = k.len();
        let (mut all, mut same, mut opposite) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            for j in i + 1..n {
                let scale = (k[i][i] * k[j][j]).sqrt();
                let c = if scale > 0.0 { (k[i][j] / scale).abs() } else { 0.0 };
                all.push(c);
                if labels[i] == labels[j] { &mut same } else { &mut opposite }.push(c);
            }
        }
        Coupling {
            mean: mean(&all),
            max: all.iter().copied().fold(0.0, f64::max),
            same_label: mean(&same),
            opposite_labels: mean(&opposite),
        }
    }
}

/// Spearman's rank correlation of two lists (ties get their mean rank); NaN
/// if any value is NaN (a point never learned) or a list is constant.
fn rank_correlation(a: &[f64], b: &[f64]) -> f64 {
    if a.iter().chain(b).any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let ranks = |v: &[f64]| -> Vec<f64> {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut start = 0;
        while start < order.len() {
            let mut end = start + 1;
            while end < order.len() && v[order[end]] == v[order[start]] {
                end += 1;
            }
            for &i in &order[start..end] {
                r[i] = (start + end - 1) as f64 / 2.0;
            }
            start = end;
        }
        r
    };
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let (va, vb): (f64, f64) = (ra.iter().map(|x| (x - ma).powi(2)).sum(), rb.iter().map(|y| (y - mb).powi(2)).sum());
    cov / (va * vb).sqrt()
}

#[cfg(test)]
mod tests {
    use super::{tangent_kernel, Coupling};
    use crate::engine::{forward, EnsembleWeights};

    #[test]
    fn rank_correlation_of_monotone_lists_is_one() {
        assert_eq!(super::rank_correlation(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 25.0, 100.0]), 1.0);
        assert_eq!(super::rank_correlation(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0]), -1.0);
        assert!(super::rank_correlation(&[1.0, 2.0, 3.0], &[1.0, f64::NAN, 2.0]).is_nan());
    }

    /// A net whose every point has a gradient and whose pre-activations all
    /// lie more than 0.02 from 0 (seeds 3 and 4 leave a point with every unit
    /// dead; 5 puts one at 0.001, where the differences cross a kink).
    const SEED: u64 = 6;

    /// A random net of depth 3 on a few generic (not orthogonal) inputs.
    fn random_net() -> (EnsembleWeights, Vec<Vec<f64>>) {
        let shapes = vec![(5, 4), (6, 5), (1, 6)];
        let layers = crate::rng::random_layers("modes/test-net", SEED, &shapes, 1.5);
        let mut r = crate::rng::stream("modes/test-inputs", SEED);
        let inputs = (0..4).map(|_| (0..4).map(|_| crate::rng::normal(&mut r)).collect()).collect();
        (EnsembleWeights { members: 1, shapes, layers }, inputs)
    }

    /// Every weight's derivative of f by central differences (f is linear in
    /// each single weight away from the ReLU kinks, so the difference is
    /// exact but for rounding), and K from those gradients.
    fn kernel_by_differences(w: &EnsembleWeights, inputs: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let eps = 1e-3_f32;
        let grads: Vec<Vec<f64>> = inputs
            .iter()
            .map(|x| {
                let x: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                let mut g = Vec::new();
                for l in 0..w.layers.len() {
                    for p in 0..w.layers[l].len() {
                        let at = |d: f32| {
                            let mut moved = w.clone();
                            moved.layers[l][p] += d;
                            (forward(&moved, 0, &x), moved.layers[l][p] - w.layers[l][p])
                        };
                        let ((up, du), (down, dd)) = (at(eps), at(-eps));
                        g.push((up - down) / (du - dd) as f64);
                    }
                }
                g
            })
            .collect();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        grads.iter().map(|a| grads.iter().map(|b| dot(a, b)).collect()).collect()
    }

    #[test]
    fn tangent_kernel_matches_the_gradients_by_differences() {
        let (w, inputs) = random_net();
        let closed = tangent_kernel(&w, 0, &inputs);
        let numeric = kernel_by_differences(&w, &inputs);
        for (i, row) in closed.iter().enumerate() {
            assert!(row[i] > 1e-3, "a degenerate test net: K[{i}][{i}] = {}", row[i]);
        }
        let mut coupled = 0;
        for (i, row) in closed.iter().enumerate() {
            for (j, &k) in row.iter().enumerate() {
                let scale = (closed[i][i] * closed[j][j]).sqrt();
                assert!(
                    (k - numeric[i][j]).abs() < 1e-3 * scale,
                    "K[{i}][{j}]: closed form {k}, by differences {}",
                    numeric[i][j]
                );
                coupled += usize::from(k.abs() > 0.05 * scale);
            }
        }
        assert!(coupled > 8, "too few coupled pairs to test: {coupled}");
    }

    #[test]
    fn aligned_weights_on_orthogonal_inputs_have_an_exactly_diagonal_kernel() {
        // Depth 3, width = points = 4, diagonal hidden layers, output signs mixed.
        let n = 4;
        let diag = |values: [f32; 4]| {
            let mut m = vec![0.0_f32; n * n];
            for k in 0..n {
                m[k * n + k] = values[k];
            }
            m
        };
        let layers = vec![diag([0.3, 1.2, 0.7, 2.0]), diag([0.5, 0.1, 1.1, 0.9]), vec![0.4, -0.8, 1.3, -0.2]];
        let w = EnsembleWeights { members: 1, shapes: vec![(n, n), (n, n), (1, n)], layers };
        let inputs: Vec<Vec<f64>> =
            (0..n).map(|i| (0..n).map(|j| if i == j { 0.5 + i as f64 } else { 0.0 }).collect()).collect();
        let k = tangent_kernel(&w, 0, &inputs);
        for (i, row) in k.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                if i == j {
                    assert!(v > 0.0);
                } else {
                    assert_eq!(v, 0.0, "K[{i}][{j}]");
                }
            }
        }
        let c = Coupling::of(&k, &[1.0, -1.0, 1.0, -1.0]);
        assert_eq!((c.mean, c.max, c.same_label, c.opposite_labels), (0.0, 0.0, 0.0, 0.0));
        // A random net on the same inputs couples them.
        let shapes = vec![(n, n), (n, n), (1, n)];
        let layers = crate::rng::random_layers("modes/test-net", 4, &shapes, 1.0);
        let k = tangent_kernel(&EnsembleWeights { members: 1, shapes, layers }, 0, &inputs);
        assert!(Coupling::of(&k, &[1.0, -1.0, 1.0, -1.0]).max > 0.1);
    }
}
