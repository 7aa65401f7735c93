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

use super::sigmoid::{self, Init, Model};
use super::{crossing_time, mean_min_max, Job};
use crate::figure::{palette, Band, FigureBody, Panel, Series, Source, Style};
use crate::spec::{Count, Loss, NonNegative, Outputs, Positive};
use crate::theory::Mode;
use crate::train::{TrainInput, TrainLog};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub points: Count,
    pub norm_log_std: NonNegative,
    pub learning_rate: Positive,
    pub steps: Count,
    pub log_points: Count,
    pub data_seed: u64,
    pub seed_count: Count,
    /// Largest step of the RK4 integration of the theory.
    pub theory_dt: Positive,
    /// The escape time of a point: when its margin first reaches this.
    pub escape_margin: Positive,
    #[serde(rename = "model")]
    pub models: Vec<Model>,
}

const LOSSES: [Loss; 2] = [Loss::CrossEntropy, Loss::Hinge];

fn loss_name(loss: Loss) -> &'static str {
    match loss {
        Loss::CrossEntropy => "cross-entropy",
        Loss::Hinge => "hinge",
    }
}

fn run_name(model: &Model, loss: Loss) -> String {
    format!("{}, {}", model.name, loss_name(loss))
}

fn ratio_scalar(model: &Model) -> String {
    format!("{}: escape-time ratio cross-entropy / hinge", model.name)
}
fn ratio_theory_scalar(model: &Model) -> String {
    format!("{}: escape-time ratio cross-entropy / hinge (ODE)", model.name)
}
fn frozen_scalar(model: &Model) -> String {
    format!("{}, hinge: relative change of the weight norm after every margin reached 1", model.name)
}
fn gain_scalar(model: &Model) -> String {
    format!("{}, cross-entropy: mean margin gained over the last decade of t", model.name)
}
fn gain_theory_scalar(model: &Model) -> String {
    format!("{}, cross-entropy: mean margin gained over the last decade of t (ODE)", model.name)
}

/// Each (model, loss) its own colour, the same in every panel.
fn color(model_index: usize, loss: Loss) -> &'static str {
    match (model_index % 2, loss) {
        (0, Loss::CrossEntropy) => palette::BLUE,
        (0, Loss::Hinge) => palette::VERMILLION,
        (_, Loss::CrossEntropy) => palette::SKY_BLUE,
        (_, Loss::Hinge) => palette::ORANGE,
    }
}

impl Config {
    /// The sigmoid-figure experiment with one loss and one model.
    fn base(&self, loss: Loss, model: &Model) -> sigmoid::Config {
        sigmoid::Config {
            points: self.points,
            norm_log_std: self.norm_log_std,
            loss,
            learning_rate: self.learning_rate,
            steps: self.steps,
            log_points: self.log_points,
            data_seed: self.data_seed,
            seed_count: self.seed_count,
            theory_dt: self.theory_dt,
            models: vec![model.clone()],
        }
    }

    fn runs(&self) -> Vec<(usize, Loss)> {
        (0..self.models.len()).flat_map(|m| LOSSES.map(|l| (m, l))).collect()
    }

    pub fn seeds(&self) -> Vec<u64> {
        (0..self.seed_count.get()).collect()
    }

    pub fn problems(&self) -> Vec<String> {
        let mut p = sigmoid::model_problems(self.points, &self.models, "losses");
        for m in &self.models {
            if m.depth.get() > 1 && matches!(m.init, Init::Random { .. }) {
                p.push(format!("model {:?}: a random init of a deep net has no exact theory; use an aligned or balanced init", m.name));
            }
        }
        p
    }

    pub fn outputs(&self) -> Outputs {
        let mut out = Outputs::default();
        for m in &self.models {
            for loss in LOSSES {
                out.series.push(run_name(m, loss));
                out.series.push(format!("{} (theory)", run_name(m, loss)));
                out.scalars.push(format!("{}: largest gap to theory (points)", run_name(m, loss)));
            }
            out.scalars.extend([ratio_scalar(m), ratio_theory_scalar(m), frozen_scalar(m), gain_scalar(m), gain_theory_scalar(m)]);
        }
        out
    }

    pub fn jobs(&self) -> Vec<Job> {
        self.runs()
            .into_iter()
            .map(|(m, loss)| {
                let model = &self.models[m];
                let mut job = self.base(loss, model).jobs().remove(0);
                job.name = run_name(model, loss);
                job
            })
            .collect()
    }

    pub fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        let (m, loss) = self.runs().into_iter().find(|&(m, l)| run_name(&self.models[m], l) == job.name).ok_or_else(|| anyhow::anyhow!("no run named {:?}", job.name))?;
        let model = &self.models[m];
        self.base(loss, model).prepare_job(&Job { name: model.name.clone(), ..job.clone() })
    }

    /// Each seed's modes: one scalar chain per point, as the net starts it.
    fn modes(&self, model: &Model, log: &TrainLog) -> Vec<Vec<Mode>> {
        let base = self.base(Loss::CrossEntropy, model);
        let (norms, labels) = base.data();
        let n = self.points.usize();
        self.seeds()
            .iter()
            .enumerate()
            .map(|(k, &seed)| {
                if model.depth.get() == 1 {
                    // Point i moves only its own weight: margin = s_i (y_i w_i).
                    (0..n).map(|i| Mode { norm: norms[i], weights: vec![log.margins[0][k * n + i] as f64 / norms[i]] }).collect()
                } else {
                    base.init(model, seed, &labels).1
                }
            })
            .collect()
    }

    pub fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        let runs = self.runs();
        ensure!(logs.len() == runs.len(), "losses expects {} job logs, got {}", runs.len(), logs.len());
        let n = self.points.usize();
        let seeds = self.seeds();
        let times = logs[0].times();
        let skip = super::leading_zero_times(&times);
        let panel = |title: &str, y_label: &str| Panel {
            title: title.into(),
            x_label: "time t = lr x step".into(),
            y_label: y_label.into(),
            x_log: true,
            y_log: false,
            x_range: None,
            y_range: None,
        };
        let mut body = FigureBody {
            panels: vec![
                panel("training error", "fraction misclassified"),
                panel("mean margin (hinge stops at 1)", "mean margin y f(x)"),
                panel("weight norm (hinge: frozen; CE: grows)", "norm of all weights"),
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
            for mut s in errors.series {
                s.name = s.name.replacen(&model.name, &name, 1);
                if s.source == Source::Measured {
                    s.color = color.into();
                }
                s.panel = 0;
                // One legend entry for all the (black, dashed) theory curves.
                s.legend = s.source == Source::Measured || (m == 0 && loss == Loss::CrossEntropy);
                body.series.push(s);
            }
            for (k, v) in errors.scalars {
                body.scalars.insert(k.replacen(&model.name, &name, 1), v);
            }
            body.divergences.extend(errors.divergences.into_iter().map(|mut d| {
                d.job = name.clone();
                d
            }));
            // The theory of the other panels, mode by mode.
            let states: Vec<Vec<Vec<Mode>>> = self
                .modes(model, log)
                .iter()
                .map(|seed_modes| seed_modes.iter().map(|mode| mode.states_at(&times, loss, n as f64, self.theory_dt.get(), 0.01)).collect())
                .collect();
            let theory_margin: Vec<Vec<f64>> = states.iter().map(|modes| (0..times.len()).map(|t| modes.iter().map(|m| m[t].margin()).sum::<f64>() / n as f64).collect()).collect();
            let theory_norm: Vec<Vec<f64>> = states
                .iter()
                .map(|modes| (0..times.len()).map(|t| modes.iter().map(|m| m[t].weights.iter().map(|w| w * w).sum::<f64>()).sum::<f64>().sqrt()).collect())
                .collect();
            let measured_margin: Vec<Vec<f64>> = (0..seeds.len()).map(|k| log.margins.iter().map(|ms| ms[k * n..(k + 1) * n].iter().map(|&m| m as f64).sum::<f64>() / n as f64).collect()).collect();
            let measured_norm: Vec<Vec<f64>> = (0..seeds.len()).map(|k| log.weight_norms.iter().map(|w| w[k] as f64).collect()).collect();
            for (panel, measured, theory) in [(1, &measured_margin, &theory_margin), (2, &measured_norm, &theory_norm)] {
                let (mean, lo, hi) = mean_min_max(measured);
                let (theory_mean, _, _) = mean_min_max(theory);
                body.series.push(Series {
                    name: format!("{name}: {}", self.panel_quantity(panel)),
                    panel,
                    source: Source::Measured,
                    style: Style::Line,
                    color: color.into(),
                    legend: false,
                    x: times[skip..].to_vec(),
                    y: mean[skip..].to_vec(),
                    band: Some(Band { what: format!("min-max over {} seeds", seeds.len()), lo: lo[skip..].to_vec(), hi: hi[skip..].to_vec() }),
                    labels: None,
                });
                body.series.push(Series {
                    name: format!("{name}: {} (theory)", self.panel_quantity(panel)),
                    panel,
                    source: Source::Theory,
                    style: Style::Line,
                    color: palette::BLACK.into(),
                    legend: false,
                    x: times[skip..].to_vec(),
                    y: theory_mean[skip..].to_vec(),
                    band: None,
                    labels: None,
                });
            }
            // Escape: the median over points and seeds of the time a margin
            // first reaches `escape_margin`, over the points that start below
            // it; NaN if there are none, or if most never get there.
            let below = self.escape_margin.get();
            let starting_below: Vec<(usize, usize)> =
                (0..seeds.len()).flat_map(|k| (0..n).map(move |i| (k, i))).filter(|&(k, i)| (log.margins[0][k * n + i] as f64) < below).collect();
            let escape = |per_point: &dyn Fn(usize, usize) -> Vec<f64>| -> f64 {
                let mut ts: Vec<f64> = starting_below.iter().map(|&(k, i)| crossing_time(&times, &per_point(k, i), below).unwrap_or(f64::INFINITY)).collect();
                ts.sort_by(f64::total_cmp);
                ts.get(ts.len() / 2).copied().filter(|t| t.is_finite()).unwrap_or(f64::NAN)
            };
            let slot = if loss == Loss::CrossEntropy { 0 } else { 1 };
            escapes[m][slot] = (
                escape(&|k, i| log.margins.iter().map(|ms| ms[k * n + i] as f64).collect()),
                escape(&|k, i| states[k][i].iter().map(Mode::margin).collect()),
            );
            let last = times.len() - 1;
            match loss {
                Loss::Hinge => {
                    // Weights are frozen once no margin is below 1 (in every seed).
                    let converged = log.margins.iter().position(|ms| ms.iter().all(|&m| m >= 1.0));
                    // Undefined when that happens only at the last logged step.
                    let change = converged.filter(|&c| c < last).map_or(f64::NAN, |c| {
                        (0..seeds.len()).map(|k| ((measured_norm[k][last] - measured_norm[k][c]) / measured_norm[k][c]).abs()).fold(0.0, f64::max)
                    });
                    body.scalars.insert(frozen_scalar(model), change);
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
        Ok(body)
    }

    fn panel_quantity(&self, panel: usize) -> &'static str {
        if panel == 1 {
            "mean margin"
        } else {
            "weight norm"
        }
    }
}
