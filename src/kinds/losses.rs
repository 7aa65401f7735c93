//! Cross-entropy vs hinge: the same data and nets, trained with each loss.
//!
//! Hinge learning stops in finite time: once every margin reaches 1 the
//! gradient is exactly zero and the weights freeze. Cross-entropy never
//! stops: its margins and weights grow like log t. From a small balanced
//! init, cross-entropy's push starts at sigma(0) = 1/2 against hinge's 1, so
//! it escapes the plateau about two times later.
//!
//! The data set and the models are the sigmoid figure's; every model is run
//! once per loss, and its modes (independent for the linear model and the
//! aligned inits) give the theory of every panel.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

use super::sigmoid::{self, Init, Model, OrthogonalData};
use super::{Job, JobId, Kind};
use crate::engine::{TrainInput, TrainLog};
use crate::figure::{palette, FigureBody, Panel, Series, Source};
use crate::stats::{crossing_time, mean_min_max};
use crate::theory::Mode;
use crate::values::{Count, Loss, Outputs, Positive};

/// This kind's source files: its own, then the sigmoid kind's, whose models it trains.
pub const FILES: &[&str] = &[file!(), sigmoid::FILES[0]];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Losses {
    pub data: OrthogonalData,
    pub learning_rate: Positive,
    pub steps: Count,
    pub log_points: Count,
    pub seed_count: Count,
    /// Largest step of the RK4 integration of the theory.
    pub theory_dt: Positive,
    /// The escape time of a point: when its margin first reaches this.
    pub escape_margin: Positive,
    /// Init scales at which every balanced-init model is trained once more
    /// with both losses, for the escape-time ratio as the init shrinks.
    pub escape_sweep: Vec<Positive>,
    #[serde(rename = "model")]
    pub models: Vec<Model>,
}

const LOSSES: [Loss; 2] = [Loss::CrossEntropy, Loss::Hinge];

fn run_name(model: &Model, loss: Loss) -> String {
    format!("{}, {}", model.name, loss.name())
}

fn ratio_scalar(model: &Model) -> String {
    format!("{}: escape-time ratio cross-entropy / hinge", model.name)
}
fn ratio_theory_scalar(model: &Model) -> String {
    format!("{}: escape-time ratio cross-entropy / hinge (ODE)", model.name)
}
fn hinge_gap_scalar(model: &Model) -> String {
    format!("{}, hinge: largest gap of a margin to min(1, m0 + s^2 t / N), in steps of lr s^2 / N", model.name)
}
fn sweep_scalar(model: &Model, scale: f64) -> String {
    format!("{} at init {scale}: escape-time ratio cross-entropy / hinge", model.name)
}
fn sweep_theory_scalar(model: &Model, scale: f64) -> String {
    format!("{} at init {scale}: escape-time ratio cross-entropy / hinge (ODE)", model.name)
}
fn gain_scalar(model: &Model) -> String {
    format!("{}, cross-entropy: mean margin gained over the last decade of t", model.name)
}
fn gain_theory_scalar(model: &Model) -> String {
    format!("{}, cross-entropy: mean margin gained over the last decade of t (ODE)", model.name)
}

/// Each (model, loss) its own colour, the same in every panel.
/// One colour per (model, loss), four hues apart: under the black theory
/// dashes, blue against sky blue (or vermillion against orange) for the two
/// models of one loss could not be told apart.
fn color(model_index: usize, loss: Loss) -> &'static str {
    match (model_index % 2, loss) {
        (0, Loss::CrossEntropy) => palette::BLUE,
        (0, Loss::Hinge) => palette::VERMILLION,
        (_, Loss::CrossEntropy) => palette::GREEN,
        (_, Loss::Hinge) => palette::PURPLE,
    }
}

impl Losses {
    /// The sigmoid-figure experiment with one loss and one model.
    fn base(&self, loss: Loss, model: &Model) -> sigmoid::Sigmoid {
        sigmoid::Sigmoid {
            data: self.data,
            loss,
            learning_rate: self.learning_rate,
            steps: self.steps,
            log_points: self.log_points,
            seed_count: self.seed_count,
            theory_dt: self.theory_dt,
            models: vec![model.clone()],
        }
    }

    fn runs(&self) -> Vec<(usize, Loss)> {
        (0..self.models.len()).flat_map(|m| LOSSES.map(|l| (m, l))).collect()
    }

    /// The models trained again at each init scale of `escape_sweep` (those
    /// with a balanced init), as (model index, the model at that scale, loss).
    /// A balanced init has no random part, so the sweep trains one seed.
    fn sweep_runs(&self) -> Vec<(usize, Model, Loss)> {
        let mut out = Vec::new();
        for (m, model) in self.models.iter().enumerate().filter(|(_, m)| matches!(m.init, Init::Balanced { .. })) {
            for &scale in &self.escape_sweep {
                let at_scale = Model {
                    name: format!("{} at init {}", model.name, scale.get()),
                    init: Init::Balanced { scale },
                    ..model.clone()
                };
                out.extend(LOSSES.map(|l| (m, at_scale.clone(), l)));
            }
        }
        out
    }

    /// Every run, by job name, as the sigmoid experiment that trains it: the
    /// models as configured, then the sweep (one seed each).
    fn all_runs(&self) -> Vec<(String, sigmoid::Sigmoid)> {
        let main = self.runs().into_iter().map(|(m, l)| (run_name(&self.models[m], l), self.base(l, &self.models[m])));
        let sweep = self.sweep_runs().into_iter().map(|(_, model, l)| {
            (run_name(&model, l), sigmoid::Sigmoid { seed_count: Count(1), ..self.base(l, &model) })
        });
        main.chain(sweep).collect()
    }

    /// Each seed's modes: one scalar chain per point, as the net starts it.
    fn modes(&self, model: &Model, log: &TrainLog) -> Vec<Vec<Mode>> {
        let base = self.base(Loss::CrossEntropy, model);
        let (norms, labels) = base.norms_and_labels();
        let n = self.data.points.usize();
        // The seeds the log was trained with: 0..members / points.
        let seeds = log.margins[0].len() / n;
        (0..seeds as u64)
            .enumerate()
            .map(|(k, seed)| {
                if model.depth.get() == 1 {
                    // Point i moves only its own weight: margin = s_i (y_i w_i).
                    (0..n)
                        .map(|i| Mode { norm: norms[i], weights: vec![log.margins[0][k * n + i] as f64 / norms[i]] })
                        .collect()
                } else {
                    base.init(model, seed, &labels).1
                }
            })
            .collect()
    }

    /// Each seed's modes at every logged time, from the theory.
    fn mode_states(&self, model: &Model, log: &TrainLog, times: &[f64], loss: Loss) -> Vec<Vec<Vec<Mode>>> {
        let n = self.data.points.usize() as f64;
        self.modes(model, log)
            .iter()
            .map(|seed_modes| {
                seed_modes.iter().map(|mode| mode.states_at(times, loss, n, self.theory_dt.get(), 0.01)).collect()
            })
            .collect()
    }

    /// Escape time (measured, and from the modes' ODE): the median over
    /// points and seeds of the time a margin first reaches `escape_margin`,
    /// over the points that start below it; NaN if there are none, or if
    /// most never get there.
    fn escape_times(&self, log: &TrainLog, states: &[Vec<Vec<Mode>>], times: &[f64]) -> (f64, f64) {
        let n = self.data.points.usize();
        let below = self.escape_margin.get();
        let starting_below: Vec<(usize, usize)> = (0..states.len())
            .flat_map(|k| (0..n).map(move |i| (k, i)))
            .filter(|&(k, i)| (log.margins[0][k * n + i] as f64) < below)
            .collect();
        let escape = |per_point: &dyn Fn(usize, usize) -> Vec<f64>| -> f64 {
            let mut ts: Vec<f64> = starting_below
                .iter()
                .map(|&(k, i)| crossing_time(times, &per_point(k, i), below).unwrap_or(f64::INFINITY))
                .collect();
            ts.sort_by(f64::total_cmp);
            ts.get(ts.len() / 2).copied().filter(|t| t.is_finite()).unwrap_or(f64::NAN)
        };
        (
            escape(&|k, i| log.margins.iter().map(|ms| ms[k * n + i] as f64).collect()),
            escape(&|k, i| states[k][i].iter().map(Mode::margin).collect()),
        )
    }

    /// The linear model under hinge: margin i rises as m0 + s_i^2 t / N until
    /// it reaches 1, then stops (finite time N (1 - m0) / s_i^2). The largest
    /// gap of a measured margin to that, over points, seeds and logged times,
    /// in units of one gradient step's rise lr s_i^2 / N: gradient descent
    /// lands within one step of the flow, so 1 bounds it.
    fn hinge_gap_in_steps(&self, model: &Model, log: &TrainLog, times: &[f64]) -> f64 {
        let n = self.data.points.usize();
        let (norms, _) = self.base(Loss::Hinge, model).norms_and_labels();
        let mut gap: f64 = 0.0;
        for k in 0..self.seeds().len() {
            for (i, s) in norms.iter().enumerate() {
                let rate = s * s / n as f64;
                let m0 = log.margins[0][k * n + i] as f64;
                for (t, ms) in times.iter().zip(&log.margins) {
                    let theory = if m0 >= 1.0 { m0 } else { (m0 + rate * t).min(1.0) };
                    gap = crate::stats::max_or_nan([
                        gap,
                        (ms[k * n + i] as f64 - theory).abs() / (self.learning_rate.get() * rate),
                    ]);
                }
            }
        }
        gap
    }

    fn panel_quantity(&self, panel: usize) -> &'static str {
        if panel == 1 {
            "mean margin"
        } else {
            "weight norm"
        }
    }
}

impl Kind for Losses {
    fn seeds(&self) -> Vec<u64> {
        (0..self.seed_count.get()).collect()
    }

    fn problems(&self) -> Vec<String> {
        let mut p = sigmoid::model_problems(self.data.points, &self.models, "losses");
        for (i, m) in self.models.iter().enumerate() {
            if m.depth.get() > 1 && matches!(m.init, Init::Random { .. }) {
                p.push(format!(
                    "model[{i}].init: a random init of a deep net has no exact theory; use an aligned or balanced init (model {:?})",
                    m.name
                ));
            }
        }
        p
    }

    fn outputs(&self) -> Outputs {
        let mut out = Outputs::default();
        for m in &self.models {
            for loss in LOSSES {
                // The balanced init's error is zero throughout: not drawn (see `assemble`).
                if !matches!(m.init, Init::Balanced { .. }) {
                    out.series.push(run_name(m, loss));
                    out.series.push(format!("{} (theory)", run_name(m, loss)));
                }
                out.scalars.push(format!("{}: largest gap to theory (points)", run_name(m, loss)));
            }
            out.scalars.extend([ratio_scalar(m), ratio_theory_scalar(m), gain_scalar(m), gain_theory_scalar(m)]);
            if m.depth.get() == 1 {
                out.scalars.push(hinge_gap_scalar(m));
            }
        }
        for model in self.models.iter().filter(|m| matches!(m.init, Init::Balanced { .. })) {
            for scale in &self.escape_sweep {
                out.scalars.extend([sweep_scalar(model, scale.get()), sweep_theory_scalar(model, scale.get())]);
            }
        }
        out
    }

    fn jobs(&self) -> Vec<Job> {
        Job::numbered(self.all_runs().into_iter().map(|(name, base)| Job { name, ..base.jobs().remove(0) }))
    }

    fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        let (_, base) = self
            .all_runs()
            .into_iter()
            .nth(job.id.0)
            .ok_or_else(|| anyhow::anyhow!("losses has no job {:?}", job.id))?;
        // A sigmoid experiment of one model, whose one job this is.
        base.prepare_job(&Job { id: JobId(0), ..job.clone() })
    }

    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        let runs = self.runs();
        let sweep = self.sweep_runs();
        ensure!(
            logs.len() == runs.len() + sweep.len(),
            "losses expects {} job logs, got {}",
            runs.len() + sweep.len(),
            logs.len()
        );
        let (logs, sweep_logs) = logs.split_at(runs.len());
        let n = self.data.points.usize();
        let seeds = self.seeds();
        let times = logs[0].times();
        let skip = crate::stats::leading_zero_times(&times);
        let mut body = FigureBody {
            panels: vec![
                Panel::over_log_time("training error", "fraction misclassified"),
                Panel::over_log_time("mean margin (hinge stops at 1)", "mean margin y f(x)"),
                Panel::over_log_time("weight norm (hinge frozen)", "norm of all weights"),
            ],
            ..Default::default()
        };
        // Per model: the escape time of each loss, measured and from the ODE.
        let mut escapes: Vec<[(f64, f64); 2]> = vec![[(f64::NAN, f64::NAN); 2]; self.models.len()];
        for (&(m, loss), log) in runs.iter().zip(logs) {
            let model = &self.models[m];
            let name = run_name(model, loss);
            let color = color(m, loss);
            // The error panel is the sigmoid figure's, renamed.
            let errors = self.base(loss, model).assemble(std::slice::from_ref(log))?;
            // The balanced init starts every point correct (right sign), and
            // descent only raises an aligned mode's margin: its error is zero
            // throughout, and its curves in (a) would lie on the axis, one over
            // another. Known from the config, so the kind declares no such series.
            let never_wrong = matches!(model.init, Init::Balanced { .. });
            for mut s in errors.series.into_iter().filter(|_| !never_wrong) {
                s.name = s.name.replacen(&model.name, &name, 1);
                if s.source == Source::Measured {
                    s.color = color.into();
                    s.legend_label.clone_from(&name);
                }
                s.panel = 0;
                // One legend entry for all the (black, dashed) theory curves.
                s.legend = s.source == Source::Measured || (m == 0 && loss == Loss::CrossEntropy);
                body.series.push(s);
            }
            // Only the gap to theory: the curve shape is the sigmoid figure's subject.
            for (k, v) in errors.scalars.into_iter().filter(|(k, _)| k.ends_with("largest gap to theory (points)")) {
                body.scalars.insert(k.replacen(&model.name, &name, 1), v);
            }
            // The theory of the other panels, mode by mode.
            let states = self.mode_states(model, log, &times, loss);
            let theory_margin: Vec<Vec<f64>> = states
                .iter()
                .map(|modes| {
                    (0..times.len()).map(|t| modes.iter().map(|m| m[t].margin()).sum::<f64>() / n as f64).collect()
                })
                .collect();
            let theory_norm: Vec<Vec<f64>> = states
                .iter()
                .map(|modes| {
                    (0..times.len())
                        .map(|t| {
                            modes.iter().map(|m| m[t].weights.iter().map(|w| w * w).sum::<f64>()).sum::<f64>().sqrt()
                        })
                        .collect()
                })
                .collect();
            let measured_margin: Vec<Vec<f64>> = (0..seeds.len())
                .map(|k| {
                    log.margins
                        .iter()
                        .map(|ms| ms[k * n..(k + 1) * n].iter().map(|&m| m as f64).sum::<f64>() / n as f64)
                        .collect()
                })
                .collect();
            let measured_norm: Vec<Vec<f64>> =
                (0..seeds.len()).map(|k| log.weight_norms.iter().map(|w| w[k] as f64).collect()).collect();
            for (panel, measured, theory) in [(1, &measured_margin, &theory_margin), (2, &measured_norm, &theory_norm)]
            {
                let quantity = self.panel_quantity(panel);
                body.series.push(
                    Series::mean_over_seeds(format!("{name}: {quantity}"), panel, color, times.clone(), measured)
                        .skipping(skip)
                        .legend_label(&name)
                        // Named in the legend by its error curve, unless that is not drawn.
                        .in_legend(never_wrong && panel == 1),
                );
                let (theory_mean, _, _) = mean_min_max(theory);
                body.series.push(
                    Series::theory(format!("{name}: {quantity} (theory)"), panel, times.clone(), theory_mean)
                        .skipping(skip)
                        .legend_label(super::sigmoid::THEORY_LABEL)
                        .in_legend(false),
                );
            }
            let slot = if loss == Loss::CrossEntropy { 0 } else { 1 };
            escapes[m][slot] = self.escape_times(log, &states, &times);
            let last = times.len() - 1;
            match loss {
                Loss::Hinge => {
                    if model.depth.get() == 1 {
                        body.scalars.insert(hinge_gap_scalar(model), self.hinge_gap_in_steps(model, log, &times));
                    }
                }
                Loss::CrossEntropy => {
                    let decade = times.iter().position(|&t| t >= times[last] / 10.0).unwrap_or(0);
                    let gain = |curves: &[Vec<f64>]| {
                        let (mean, _, _) = mean_min_max(curves);
                        mean[last] - mean[decade]
                    };
                    body.scalars.insert(gain_scalar(model), gain(&measured_margin));
                    body.scalars.insert(gain_theory_scalar(model), gain(&theory_margin));
                }
            }
        }
        for (model, [ce, hinge]) in self.models.iter().zip(escapes) {
            body.scalars.insert(ratio_scalar(model), ce.0 / hinge.0);
            body.scalars.insert(ratio_theory_scalar(model), ce.1 / hinge.1);
        }
        // The sweep: runs come in (cross-entropy, hinge) pairs per scale.
        for (pair, logs) in sweep.chunks(2).zip(sweep_logs.chunks(2)) {
            let (m, at_scale, _) = &pair[0];
            let Init::Balanced { scale } = at_scale.init else { unreachable!("the sweep trains balanced inits") };
            let [ce, hinge] = [0, 1].map(|r| {
                let states = self.mode_states(at_scale, &logs[r], &times, pair[r].2);
                self.escape_times(&logs[r], &states, &times)
            });
            let model = &self.models[*m];
            body.scalars.insert(sweep_scalar(model, scale.get()), ce.0 / hinge.0);
            body.scalars.insert(sweep_theory_scalar(model, scale.get()), ce.1 / hinge.1);
        }
        Ok(body)
    }
}
