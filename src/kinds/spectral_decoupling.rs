//! Spectral decoupling (Pezeshki et al. 2020, arXiv:2011.09468), the cure
//! the paper's authors later proposed for gradient starvation: the loss plus
//! (lambda / 2) f(x)^2 per point. Run on the starvation kind's synthetic data
//! (linear model and two-layer net) and on the digits kind's shortcut, over a
//! few lambdas, beside the runs without it (lambda = 0) and the controls.
//!
//! Theory (linear model, `theory::starvation_weights` with the penalty and
//! `theory::decoupled_margin`). With the loss averaged over the points, the
//! weights a = w_A, b = w_B follow
//!   da/dt = ((1 - p) u(a) + p u(a + b)) / 2,   db/dt = p u(a + b) / 2,
//! where u(m) = sigma(-m) - lambda m is the loss's pull on a margin m. Per
//! class the loss is (1 - p) g(m_A) + p g(m_AB) with g(m) = l(m) +
//! (lambda / 2) m^2, separable and strictly convex in the two margins
//! m_A = a and m_AB = a + b, so the flow ends where both equal m*, the root
//! of sigma(-m*) = lambda m*: a = m*, b = 0. On this data, where the common
//! feature A alone separates every point, the penalty does not keep B; B is
//! learned for a while and then given back. Whether a two-layer net or the
//! digits keep it is what the figure measures; the follow-up's argument (the
//! decoupling of the linearized network's modes) does not settle it here.

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::digits::{self, Digits};
use super::starvation::{self, Model, Starvation};
use super::{job_config, Job, JobId, Kind};
use crate::engine::{self, TrainInput, TrainLog};
use crate::figure::{palette, FigureBody, Panel, Series, Source};
use crate::theory;
use crate::values::{Loss, Outputs, Positive};

/// This kind's source files: its own, then those of the kinds whose models it trains.
pub const FILES: &[&str] = &[file!(), starvation::FILES[0], digits::FILES[0]];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpectralDecoupling {
    /// lambda > 0, increasing; the runs without the penalty (lambda = 0) are added.
    pub penalties: Vec<Positive>,
    /// `[figure.experiment.spectral_decoupling.starvation]`: the synthetic
    /// data, nets and schedule, as for the starvation figure, with one
    /// frequency p. Only cross-entropy runs (its hinge values are not read).
    pub starvation: Starvation,
    /// `[figure.experiment.spectral_decoupling.digits]`: the digits shortcut,
    /// as for the digits figure, with `shortcut_fractions = [0, q]`: the
    /// control and the shortcut at q.
    pub digits: Digits,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Run {
    /// The synthetic data; `control` is B without A.
    Synthetic { model: Model, control: bool, penalty: f64 },
    /// The digits; the control has no shortcut.
    Digits { control: bool, penalty: f64 },
}

fn model_name(model: Model) -> &'static str {
    if model == Model::Linear {
        "linear"
    } else {
        "two-layer"
    }
}

impl Run {
    fn name(self) -> String {
        match self {
            Run::Synthetic { model, control: true, .. } => format!("{}, control (B without A)", model_name(model)),
            Run::Synthetic { model, penalty, .. } => format!("{}, lambda = {penalty}", model_name(model)),
            Run::Digits { control: true, .. } => "digits, control (no shortcut)".into(),
            Run::Digits { penalty, .. } => format!("digits, lambda = {penalty}"),
        }
    }

    fn penalty(self) -> f64 {
        match self {
            Run::Synthetic { penalty, .. } | Run::Digits { penalty, .. } => penalty,
        }
    }

    /// The scalar of its end-of-training test accuracy (B-only, or clean digits).
    fn accuracy_scalar(self) -> String {
        match self {
            Run::Synthetic { .. } => format!("{}: B-only test accuracy", self.name()),
            Run::Digits { .. } => format!("{}: clean test accuracy at the end", self.name()),
        }
    }

    fn ratio_scalar(self) -> String {
        format!("{}: B / A strength at the end", self.name())
    }
}

fn gain_scalar(what: &str) -> String {
    format!("{what}: test accuracy, largest lambda minus none")
}
/// `gain_scalar` per seed (the runs of one model share their seeds: paired).
fn gain_samples(what: &str) -> String {
    format!("{what}: test accuracy, largest lambda minus none, per seed")
}
/// `control_gain_scalar` per seed.
fn control_gain_samples(what: &str) -> String {
    format!("{what}: test accuracy, control minus none, per seed")
}
/// What the control (trained without A, or without the shortcut, and without
/// the penalty) gains over the unpenalized net: the counterfactual of an arm
/// that does bring B (or the digit) back.
fn control_gain_scalar(what: &str) -> String {
    format!("{what}: test accuracy, control minus none")
}

const GAP: &str = "linear: largest gap of w_B to the ODE for t >= 1 (% of w_A)";
const FIXED_POINT: &str = "linear, largest lambda: w_A at the end / m* (its fixed point)";

/// One colour per lambda (0 first), in every panel.
/// One per lambda, apart from the models' colours of the lower panels (black,
/// vermillion, sky blue): no yellow, which is too faint on white, and no pair
/// whose translucent bands blend into a third colour of the list.
const LAMBDA_COLORS: [&str; 4] = [palette::BLUE, palette::GREEN, palette::PURPLE, palette::ORANGE];

impl SpectralDecoupling {
    /// 0, then the penalties.
    fn lambdas(&self) -> Vec<f64> {
        std::iter::once(0.0).chain(self.penalties.iter().map(|l| l.get())).collect()
    }

    fn p(&self) -> f64 {
        self.starvation.frequencies.first().map_or(f64::NAN, |f| f.get())
    }

    fn runs(&self) -> Vec<Run> {
        let mut out = Vec::new();
        for model in [Model::Linear, Model::TwoLayer] {
            out.push(Run::Synthetic { model, control: true, penalty: 0.0 });
            out.extend(self.lambdas().into_iter().map(|penalty| Run::Synthetic { model, control: false, penalty }));
        }
        out.push(Run::Digits { control: true, penalty: 0.0 });
        out.extend(self.lambdas().into_iter().map(|penalty| Run::Digits { control: false, penalty }));
        out
    }

    fn member_seeds(&self, run: Run) -> Vec<u64> {
        match run {
            // The linear model starts at zero: one member, "seed 0".
            Run::Synthetic { model: Model::Linear, .. } => vec![0],
            Run::Synthetic { model: Model::TwoLayer, .. } => self.starvation.seeds(),
            Run::Digits { .. } => self.digits.seeds(),
        }
    }
}

impl Kind for SpectralDecoupling {
    fn seeds(&self) -> Vec<u64> {
        let (a, b) = (self.starvation.seeds(), self.digits.seeds());
        if a.len() >= b.len() {
            a
        } else {
            b
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut p: Vec<String> = self.starvation.problems().into_iter().map(|s| format!("starvation: {s}")).collect();
        p.extend(self.digits.problems().into_iter().map(|s| format!("digits: {s}")));
        if self.starvation.frequencies.len() != 1 {
            p.push("starvation.frequencies: expected exactly one frequency p".into());
        }
        // One colour per lambda, 0 included (the legend rule refuses a colour that means two things).
        if self.lambdas().len() > LAMBDA_COLORS.len() {
            p.push(format!("penalties: expected at most {}, one colour each", LAMBDA_COLORS.len() - 1));
        }
        if self.digits.shortcut_fractions.len() != 2 {
            p.push("digits.shortcut_fractions: expected [0, q]: the control and one fraction".into());
        }
        if self.penalties.is_empty() || !self.penalties.windows(2).all(|w| w[0].get() < w[1].get()) {
            p.push("penalties: expected at least one lambda, increasing".into());
        }
        p
    }

    fn outputs(&self) -> Outputs {
        let runs = self.runs();
        let mut out = Outputs::default();
        for &run in &runs {
            out.scalars.push(run.accuracy_scalar());
            if matches!(run, Run::Synthetic { control: false, .. }) {
                out.series.push(run.name());
                out.scalars.push(run.ratio_scalar());
            }
        }
        for penalty in self.lambdas() {
            out.series.push(format!("linear ODE, lambda = {penalty}"));
        }
        for (what, control) in [("linear", "B without A"), ("two-layer", "B without A"), ("digits", "no shortcut")] {
            out.series.extend([format!("{what}, end"), format!("{what}, control ({control})")]);
        }
        out.scalars.extend([GAP.to_string(), FIXED_POINT.to_string()]);
        out.scalars.extend(["linear", "two-layer", "digits"].map(gain_scalar));
        out.scalars.extend(["linear", "two-layer", "digits"].map(control_gain_scalar));
        out.samples
            .extend(["two-layer", "digits"].into_iter().flat_map(|w| [gain_samples(w), control_gain_samples(w)]));
        out
    }

    fn jobs(&self) -> Vec<Job> {
        Job::numbered(self.runs().into_iter().map(|run| {
            let mut config = match run {
                Run::Synthetic { model, control, .. } => job_config(
                    &self.starvation,
                    &[
                        ("theory_dt", json!(null)),
                        ("test_points", json!(null)),
                        ("test_noise", json!(null)),
                        ("test_seed", json!(null)),
                        ("hinge_learning_rate", json!(null)),
                        ("hinge_steps", json!(null)),
                        ("model", json!(model_name(model))),
                        ("control", json!(control)),
                    ],
                ),
                Run::Digits { control, .. } => job_config(
                    &self.digits,
                    // The path is where the file is, the hash what it is.
                    &[("data", json!(null)), ("control", json!(control))],
                ),
            };
            if matches!(run, Run::Synthetic { model: Model::Linear, .. }) {
                for key in ["hidden_width", "random_scale", "seed_count"] {
                    config[key] = json!(null);
                }
            }
            config["output_penalty"] = json!(run.penalty());
            let member_seeds = self.member_seeds(run);
            let seeds = if matches!(run, Run::Synthetic { model: Model::Linear, .. }) {
                Vec::new()
            } else {
                member_seeds.clone()
            };
            Job { id: JobId(0), name: run.name(), config, seeds, member_seeds }
        }))
    }

    fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        let run = *self.runs().get(job.id.0).with_context(|| format!("spectral_decoupling has no job {:?}", job.id))?;
        let mut input = match run {
            Run::Synthetic { model, control, .. } => {
                self.starvation.training_input(starvation::Run { model, loss: Loss::CrossEntropy, control })
            }
            Run::Digits { control, .. } => {
                let q = if control { 0.0 } else { self.digits.shortcut_fractions[1].get() };
                self.digits.training_input(q, self.digits.shortcut_value.get(), true, &job.seeds)?
            }
        };
        input.cfg.output_penalty = run.penalty();
        Ok(input)
    }

    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        let runs = self.runs();
        ensure!(logs.len() == runs.len(), "spectral_decoupling expects {} job logs, got {}", runs.len(), logs.len());
        let p = self.p();
        let n = 2 * self.starvation.per_class.usize();
        let test = self.starvation.test_set();
        let lambdas = self.lambdas();
        // Over time, one colour per lambda (black is the flow's); at the end, one per model.
        let colors = LAMBDA_COLORS;
        let color_of = |penalty: f64| colors[lambdas.iter().position(|&l| l == penalty).unwrap_or(0) % colors.len()];
        let mut body = FigureBody {
            panels: vec![
                Panel::over_log_time(
                    format!("linear, p = {p}: B's strength (dashed: the flow)"),
                    "w_B / w_A (solid: measured, dashed: ODE)",
                ),
                Panel::over_log_time("two-layer: what B adds, from m_A at 10%", "(m_A+B - m_A) / m_A"),
                Panel::new("noisy B-only test points, end of training", "lambda", "B-only test accuracy"),
                Panel::new("digits, clean held-out images, end of training", "lambda", "clean test accuracy"),
            ],
            ..Default::default()
        };
        let mut gaps: Vec<f64> = Vec::new();
        // Per model (linear, two-layer, digits): the accuracy at the end for each lambda, and the control's.
        let mut ends: [Vec<f64>; 3] = Default::default();
        let mut controls = [f64::NAN; 3];
        // The same per seed (every run of a model shares its seeds: paired).
        let mut ends_per_seed: [Vec<Vec<f64>>; 3] = Default::default();
        let mut controls_per_seed: [Vec<f64>; 3] = Default::default();
        for (&run, log) in runs.iter().zip(logs) {
            let times = log.times();
            let skip = crate::stats::leading_zero_times(&times);
            let (slot, per_seed) = match run {
                Run::Synthetic { model, control, penalty } => {
                    let members = self.member_seeds(run).len();
                    let (_, weights) =
                        log.weights.last().with_context(|| format!("{}: no final weights", run.name()))?;
                    let accuracy_of = |member: usize| {
                        test.iter().filter(|(label, x)| label * engine::forward(weights, member, x) > 0.0).count()
                            as f64
                            / test.len() as f64
                    };
                    let per_seed: Vec<f64> = (0..members).map(accuracy_of).collect();
                    if !control {
                        let strengths: Vec<Vec<(f64, f64)>> = (0..members)
                            .map(|e| {
                                log.margins
                                    .iter()
                                    .map(|m| self.starvation.strengths(&m[e * n..(e + 1) * n], p, false))
                                    .collect()
                            })
                            .collect();
                        let curves: Vec<Vec<f64>> =
                            strengths.iter().map(|c| c.iter().map(|(b, a)| b / a).collect()).collect();
                        let panel = usize::from(model == Model::TwoLayer);
                        let line =
                            Series::mean_over_seeds(run.name(), panel, color_of(penalty), times.clone(), &curves)
                                // Bands of the extreme lambdas only: four, translucent
                                // over each other, blend into one block of colour.
                                .keep_band_if(
                                    members > 1 && (penalty == lambdas[0] || Some(&penalty) == lambdas.last()),
                                )
                                // A colour is a lambda in both panels; their titles say the model.
                                .legend_label(format!("lambda = {penalty}"));
                        body.scalars.insert(run.ratio_scalar(), line.y[line.y.len() - 1]);
                        let from = if model == Model::TwoLayer {
                            starvation::ratio_defined_from(&strengths, skip)
                        } else {
                            skip
                        };
                        body.series.push(line.skipping(from));
                        if model == Model::Linear {
                            let flow = theory::starvation_weights(
                                p,
                                Loss::CrossEntropy,
                                false,
                                penalty,
                                &times,
                                self.starvation.theory_dt.get(),
                            );
                            for ((&t, &(measured_b, _)), &(a, b)) in times.iter().zip(&strengths[0]).zip(&flow) {
                                if t >= 1.0 {
                                    gaps.push(100.0 * (measured_b - b).abs() / a);
                                }
                            }
                            let ratio = flow[skip..].iter().map(|(a, b)| b / a).collect();
                            body.series.push(
                                Series::theory(
                                    format!("linear ODE, lambda = {penalty}"),
                                    0,
                                    times[skip..].to_vec(),
                                    ratio,
                                )
                                .legend_label("ODE (linear model)")
                                .in_legend(Some(&penalty) == lambdas.last()),
                            );
                            if Some(&penalty) == lambdas.last() {
                                let a_end = strengths[0].last().map_or(f64::NAN, |s| s.1);
                                let fixed = theory::decoupled_margin(Loss::CrossEntropy, penalty);
                                body.scalars.insert(FIXED_POINT.into(), a_end / fixed);
                            }
                        }
                    }
                    (usize::from(model == Model::TwoLayer), per_seed)
                }
                Run::Digits { .. } => {
                    // The curves over time are the digits figure's subject: only the end is drawn here.
                    let curves = digits::clean_accuracy(log, self.member_seeds(run).len())?;
                    (2, curves.iter().map(|c| c[c.len() - 1]).collect())
                }
            };
            let accuracy = per_seed.iter().sum::<f64>() / per_seed.len() as f64;
            body.scalars.insert(run.accuracy_scalar(), accuracy);
            match run {
                Run::Synthetic { control: true, .. } | Run::Digits { control: true, .. } => {
                    controls[slot] = accuracy;
                    controls_per_seed[slot] = per_seed;
                }
                _ => {
                    ends[slot].push(accuracy);
                    ends_per_seed[slot].push(per_seed);
                }
            }
        }
        body.scalars.insert(GAP.into(), crate::stats::largest_gap(&gaps));
        for (slot, (what, control, panel, color)) in [
            ("linear", "B without A", 2, palette::BLACK),
            ("two-layer", "B without A", 2, palette::VERMILLION),
            ("digits", "no shortcut", 3, palette::SKY_BLUE),
        ]
        .into_iter()
        .enumerate()
        {
            let end = &ends[slot];
            body.scalars.insert(gain_scalar(what), end[end.len() - 1] - end[0]);
            body.scalars.insert(control_gain_scalar(what), controls[slot] - end[0]);
            // Per seed, where there are seeds (the linear model has one run).
            if slot > 0 {
                let (none, largest) = (&ends_per_seed[slot][0], &ends_per_seed[slot][end.len() - 1]);
                let minus = |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(a, b)| a - b).collect() };
                body.samples.insert(gain_samples(what), minus(largest, none));
                body.samples.insert(control_gain_samples(what), minus(&controls_per_seed[slot], none));
            }
            body.series.push(Series::line(
                format!("{what}, end"),
                panel,
                Source::Measured,
                color,
                lambdas.clone(),
                end.clone(),
            ));
            // The control, trained without the penalty: a marker at lambda = 0 in the model's colour.
            body.series.push(
                Series::points(format!("{what}, control ({control})"), panel, color, vec![0.0], vec![controls[slot]])
                    .with_labels(vec!["control".into()]),
            );
        }
        Ok(body)
    }
}
