//! Parallel independent modes: with the aligned, balanced init every point
//! of the orthogonal data set has its own scalar chain, and each measured
//! margin follows its own ODE; from a random init the same net's margins
//! drift away from those ODEs where the modes interact.
//!
//! The data set and the two inits are the sigmoid figure's (`Init::Balanced`
//! and `Init::Random`), so this kind runs two of its models and draws the
//! margins instead of the error.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

use super::sigmoid::{self, Init, Model, OrthogonalData};
use super::{Job, Kind};
use crate::engine::{TrainInput, TrainLog};
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
    /// How many points' margins are drawn (spread over the range of norms).
    pub shown_points: Count,
    /// A point is learned when its margin first reaches this (for the order
    /// in which the random net learns its points).
    pub learned_margin: Positive,
}

const ALIGNED: &str = "aligned, balanced init";
const RANDOM: &str = "random init";
const ALIGNED_GAP: &str = "aligned: largest gap to the mode ODE (% of the margin)";
const RANDOM_GAP: &str = "random: largest gap to the aligned mode ODE (margin units)";
const RANDOM_ORDER: &str = "random: rank correlation of the points' norms with their learning times";
const ALIGNED_ORDER: &str = "aligned: rank correlation of the points' norms with their learning times";
/// The random init's learning times against the norms in a fixed random
/// permutation: the counterfactual where a point's norm does not set its time.
const RANDOM_ORDER_PERMUTED: &str =
    "random: rank correlation of the learning times with the norms permuted (a pairing that carries no order)";
const POINT_COLORS: [&str; 6] =
    [palette::BLUE, palette::ORANGE, palette::GREEN, palette::VERMILLION, palette::PURPLE, palette::SKY_BLUE];

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
        p
    }

    fn outputs(&self) -> Outputs {
        Outputs {
            series: Vec::new(),
            scalars: vec![
                ALIGNED_GAP.into(),
                RANDOM_GAP.into(),
                ALIGNED_ORDER.into(),
                RANDOM_ORDER.into(),
                RANDOM_ORDER_PERMUTED.into(),
            ],
            ..Outputs::default()
        }
    }

    fn jobs(&self) -> Vec<Job> {
        self.base().jobs()
    }

    fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        self.base().prepare_job(job)
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
        let panel = |title: &str| Panel::over_log_time(title, "margin y f(x) of the point");
        let mut body = FigureBody {
            panels: vec![
                panel("aligned, balanced init: each mode on its own ODE"),
                panel("random init; dashed: the aligned ODE, for reference"),
            ],
            ..Default::default()
        };
        for (panel, (log, name)) in logs.iter().zip([ALIGNED, RANDOM]).enumerate() {
            let mut gap: f64 = 0.0;
            for seed in 0..seeds.len() {
                for (i, ode) in theory.iter().enumerate() {
                    for (step, m) in log.margins.iter().enumerate().skip(skip) {
                        let diff = (m[seed * n + i] as f64 - ode[step]).abs();
                        // Relative where the ODE applies; in margin units for
                        // the random init, whose margins start anywhere.
                        gap = gap.max(if panel == 0 { 100.0 * diff / ode[step] } else { diff });
                    }
                }
            }
            body.scalars.insert(if panel == 0 { ALIGNED_GAP } else { RANDOM_GAP }.into(), gap);
            // Do the modes keep their order by norm (the larger the norm, the
            // sooner) even where they interact? Learning time per point: the
            // mean over seeds of when its margin first reaches the target.
            let learned: Vec<f64> = (0..n)
                .map(|i| {
                    let per_seed: Vec<f64> = (0..seeds.len())
                        .map(|k| {
                            let margins: Vec<f64> = log.margins.iter().map(|m| m[k * n + i] as f64).collect();
                            crate::stats::crossing_time(&times, &margins, self.learned_margin.get()).unwrap_or(f64::NAN)
                        })
                        .collect();
                    per_seed.iter().sum::<f64>() / per_seed.len() as f64
                })
                .collect();
            body.scalars.insert(
                if panel == 0 { ALIGNED_ORDER } else { RANDOM_ORDER }.into(),
                rank_correlation(&norms, &learned),
            );
            if panel == 1 {
                let permuted: Vec<f64> =
                    crate::rng::permutation("modes/permuted-norms", 0, n).into_iter().map(|i| norms[i]).collect();
                body.scalars.insert(RANDOM_ORDER_PERMUTED.into(), rank_correlation(&permuted, &learned));
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
        Ok(body)
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
    #[test]
    fn rank_correlation_of_monotone_lists_is_one() {
        assert_eq!(super::rank_correlation(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 25.0, 100.0]), 1.0);
        assert_eq!(super::rank_correlation(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0]), -1.0);
        assert!(super::rank_correlation(&[1.0, 2.0, 3.0], &[1.0, f64::NAN, 2.0]).is_nan());
    }
}
