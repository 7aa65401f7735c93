//! Gradient starvation against the shortcut's intensity, on the digits: the
//! digits-shortcut setup (`digits.rs`, whose models and data this kind
//! trains) with the shortcut in a fixed fraction of the training images and
//! its two corner pixels set to v times the data's maximum, for several v,
//! beside a control without the shortcut.
//!
//! Why the intensity: the input-norm figure shows that a feature's speed
//! grows with its norm, and a pixel's value is the norm of the shortcut
//! feature. A stronger shortcut is learned sooner, so the loss it leaves for
//! the digits themselves is smaller, earlier: the prediction (written into
//! paper.toml before the first run) is that the clean test accuracy falls
//! further as v grows. There is no exact theory for the two-layer net on
//! real images, so the figure shows the measurement alone.

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::digits::{self, Digits};
use super::{job_config, Job, JobId, Kind};
use crate::engine::{TrainInput, TrainLog};
use crate::figure::{palette, FigureBody, Series, Source};
use crate::values::{Count, Fraction, Outputs, Positive};

/// This kind's source files: its own, then the digits kind's, whose models it trains.
pub const FILES: &[&str] = &[file!(), digits::FILES[0]];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShortcutStrength {
    /// As in `[figure.experiment.digits]`.
    pub data: std::path::PathBuf,
    pub data_sha256: String,
    pub classes: [u8; 2],
    pub test_fraction: Fraction,
    pub split_seed: u64,
    /// q: the fraction of training images that carry the shortcut (> 0).
    pub shortcut_fraction: Fraction,
    /// v: the shortcut pixels' values, in units of the data's maximum; increasing.
    pub shortcut_values: Vec<Positive>,
    pub hidden_width: Count,
    pub init_scale: Positive,
    pub learning_rate: Positive,
    pub steps: Count,
    pub log_points: Count,
    pub seed_count: Count,
}

/// The runs in job order: the control (no shortcut), one per value, then one
/// per value with the same pixels independent of the label: the arm that
/// separates what the shortcut's information does from what its scale does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Run {
    Control,
    Shortcut(f64),
    Uninformative(f64),
}

impl Run {
    fn name(self) -> String {
        match self {
            Run::Control => "control (no shortcut)".into(),
            Run::Shortcut(v) => format!("shortcut x{v}"),
            Run::Uninformative(v) => format!("label-independent pixels x{v}"),
        }
    }

    fn final_scalar(self) -> String {
        format!("{}: clean test accuracy at the end", self.name())
    }
}

const TRAINED_INTENSITIES: &str = "the intensities trained, both arms";
const CONTROL_LEVEL: &str = "control (no shortcut) at the end";
const WEAKEST_MINUS_STRONGEST: &str = "clean test accuracy, weakest minus strongest shortcut";
const CONTROL_MINUS_STRONGEST: &str = "clean test accuracy, control minus strongest shortcut";
/// Per seed (every run shares the seed's init, so the runs are paired).
const WEAKEST_MINUS_STRONGEST_SAMPLES: &str = "clean test accuracy, weakest minus strongest shortcut, per seed";
/// The counterfactual: the weakest arm in place of the strongest (seed k's
/// weakest run minus seed k+1's), where the intensity does not change.
const NULL_SAMPLES: &str = "clean test accuracy, weakest shortcut minus another seed's weakest, per seed";
/// The trend across intensities: each seed's least-squares slope of its final
/// clean accuracy on log2 v.
const TREND_SAMPLES: &str = "slope of the clean test accuracy on log2 v, per seed";
/// The right panel's second line: the label-independent arm at the end.
const UNINFORMATIVE_END: &str = "label-independent pixels: clean test accuracy at the end";
/// Per seed, at the strongest value: the label-independent arm minus the
/// shortcut (paired: one init per seed): what the label's information costs
/// beyond the pixels' scale.
const INFORMATION_COST_SAMPLES: &str =
    "clean test accuracy at the strongest value, label-independent minus label-encoding pixels, per seed";
/// The counterfactual: the label-independent arm in place of the shortcut
/// (seed k's against seed k+1's), where no information can act.
const NULL_INFORMATION_SAMPLES: &str =
    "clean test accuracy at the strongest value, label-independent minus another seed's label-independent, per seed";
const NULL_TREND_SAMPLES: &str =
    "slope of the clean test accuracy on log2 v permuted (a pairing that carries no trend), per seed";

impl ShortcutStrength {
    fn runs(&self) -> Vec<Run> {
        let values = || self.shortcut_values.iter().map(|v| v.get());
        std::iter::once(Run::Control)
            .chain(values().map(Run::Shortcut))
            .chain(values().map(Run::Uninformative))
            .collect()
    }

    /// The digits experiment this one is a sweep of (its data, split, net and schedule).
    fn base(&self) -> Digits {
        Digits {
            data: self.data.clone(),
            data_sha256: self.data_sha256.clone(),
            classes: self.classes,
            test_fraction: self.test_fraction,
            split_seed: self.split_seed,
            shortcut_fractions: vec![Fraction(0.0), self.shortcut_fraction],
            shortcut_value: Positive(1.0),
            hidden_width: self.hidden_width,
            init_scale: self.init_scale,
            learning_rate: self.learning_rate,
            steps: self.steps,
            log_points: self.log_points,
            seed_count: self.seed_count,
        }
    }
}

impl Kind for ShortcutStrength {
    fn seeds(&self) -> Vec<u64> {
        (0..self.seed_count.get()).collect()
    }

    fn problems(&self) -> Vec<String> {
        // The digits kind's own rules (classes, split, hash), on the base.
        let mut p = self.base().problems();
        if self.shortcut_fraction.get() == 0.0 {
            p.push("shortcut_fraction: expected a fraction > 0 (the control is added by itself)".into());
        }
        if self.shortcut_values.is_empty() || !self.shortcut_values.windows(2).all(|w| w[0].get() < w[1].get()) {
            p.push("shortcut_values: expected at least one value, increasing".into());
        }
        // One colour per run, the control's included.
        if self.shortcut_values.len() + 1 > digits::COLORS.len() {
            p.push(format!("shortcut_values: expected at most {} values, one colour each", digits::COLORS.len() - 1));
        }
        p
    }

    fn outputs(&self) -> Outputs {
        let runs = self.runs();
        // The label-independent runs are drawn at the end only (right panel).
        let mut series: Vec<String> =
            runs.iter().filter(|r| !matches!(r, Run::Uninformative(_))).map(|r| r.name()).collect();
        series.extend([
            "clean test accuracy at the end".to_string(),
            CONTROL_LEVEL.to_string(),
            UNINFORMATIVE_END.to_string(),
            TRAINED_INTENSITIES.to_string(),
        ]);
        let mut scalars: Vec<String> = runs.iter().map(|r| r.final_scalar()).collect();
        scalars.extend([WEAKEST_MINUS_STRONGEST.to_string(), CONTROL_MINUS_STRONGEST.to_string()]);
        let samples = [
            WEAKEST_MINUS_STRONGEST_SAMPLES,
            NULL_SAMPLES,
            TREND_SAMPLES,
            NULL_TREND_SAMPLES,
            INFORMATION_COST_SAMPLES,
            NULL_INFORMATION_SAMPLES,
        ]
        .map(String::from)
        .to_vec();
        Outputs { series, scalars, samples }
    }

    fn jobs(&self) -> Vec<Job> {
        let seeds = self.seeds();
        Job::numbered(self.runs().into_iter().map(|run| {
            let (q, v) = match run {
                Run::Control => (0.0, json!(null)),
                Run::Shortcut(v) | Run::Uninformative(v) => (self.shortcut_fraction.get(), json!(v)),
            };
            let mut fields = vec![
                ("data", json!(null)),
                ("shortcut_fraction", json!(null)),
                ("shortcut_values", json!(null)),
                ("q", json!(q)),
                ("value", v),
            ];
            if matches!(run, Run::Uninformative(_)) {
                fields.push(("informative", json!(false)));
            }
            Job {
                id: JobId(0),
                name: run.name(),
                // The path is where the file is, the hash what it is.
                config: job_config(self, &fields),
                seeds: seeds.clone(),
                member_seeds: seeds.clone(),
            }
        }))
    }

    fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        let run = *self.runs().get(job.id.0).with_context(|| format!("shortcut_strength has no job {:?}", job.id))?;
        let (q, v) = match run {
            Run::Control => (0.0, 0.0),
            Run::Shortcut(v) | Run::Uninformative(v) => (self.shortcut_fraction.get(), v),
        };
        self.base().training_input(q, v, !matches!(run, Run::Uninformative(_)), &job.seeds)
    }

    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        let runs = self.runs();
        ensure!(logs.len() == runs.len(), "shortcut_strength expects {} job logs, got {}", runs.len(), logs.len());
        let seeds = self.seeds();
        let mut body = FigureBody {
            panels: digits::accuracy_panels("shortcut intensity v (x the data's maximum)"),
            ..Default::default()
        };
        // The runs take the digits figure's colours (black for the control);
        // the right panel's line, a different quantity, takes one they leave free.
        let mut finals_per_seed = vec![Vec::new(); seeds.len()];
        let mut uninformative_per_seed = vec![Vec::new(); seeds.len()];
        let mut control_final = f64::NAN;
        let drawn = runs.iter().filter(|r| !matches!(r, Run::Uninformative(_))).count();
        for (j, (run, log)) in runs.iter().zip(logs).enumerate() {
            if let Run::Uninformative(_) = run {
                let curves = digits::clean_accuracy(log, seeds.len())?;
                let ends: Vec<f64> = curves.iter().map(|c| c[c.len() - 1]).collect();
                body.scalars.insert(run.final_scalar(), ends.iter().sum::<f64>() / ends.len() as f64);
                for (per_seed, end) in uninformative_per_seed.iter_mut().zip(ends) {
                    per_seed.push(end);
                }
                continue;
            }
            let color = digits::COLORS[j % digits::COLORS.len()];
            let (line, finals) = digits::accuracy_over_time(run.name(), color, log, seeds.len())?;
            let line = line.keep_band_if(digits::band_shown(j, drawn - 1));
            let last = line.y[line.y.len() - 1];
            body.scalars.insert(run.final_scalar(), last);
            body.series.push(line);
            match run {
                Run::Control => control_final = last,
                Run::Shortcut(_) => {
                    for (per_seed, end) in finals_per_seed.iter_mut().zip(finals) {
                        per_seed.push(end);
                    }
                }
                Run::Uninformative(_) => unreachable!("drawn at the end only, above"),
            }
        }
        let values: Vec<f64> = self.shortcut_values.iter().map(|v| v.get()).collect();
        let last = values.len() - 1;
        let weakest_per_seed: Vec<f64> = finals_per_seed.iter().map(|f| f[0]).collect();
        let next_weakest = crate::stats::next_seed(&weakest_per_seed);
        body.samples
            .insert(WEAKEST_MINUS_STRONGEST_SAMPLES.into(), finals_per_seed.iter().map(|f| f[0] - f[last]).collect());
        body.samples
            .insert(NULL_SAMPLES.into(), finals_per_seed.iter().zip(&next_weakest).map(|(f, w)| f[0] - w).collect());
        let log_v: Vec<f64> = values.iter().map(|v| v.log2()).collect();
        body.samples
            .insert(TREND_SAMPLES.into(), finals_per_seed.iter().map(|f| crate::stats::slope(&log_v, f)).collect());
        body.samples.insert(
            NULL_TREND_SAMPLES.into(),
            (finals_per_seed.iter().enumerate())
                .map(|(k, f)| {
                    crate::stats::slope(&crate::rng::permuted("shortcut_strength/permuted-v", k as u64, &log_v), f)
                })
                .collect(),
        );
        let finals = Series::mean_over_seeds(
            digits::END_OF_TRAINING,
            1,
            digits::END_OF_TRAINING_COLOR,
            values.clone(),
            &finals_per_seed,
        );
        let (weakest, strongest) = (finals.y[0], finals.y[finals.y.len() - 1]);
        let at_strongest: Vec<f64> = uninformative_per_seed.iter().map(|u| u[last]).collect();
        let next = crate::stats::next_seed(&at_strongest);
        body.samples.insert(
            INFORMATION_COST_SAMPLES.into(),
            at_strongest.iter().zip(&finals_per_seed).map(|(u, f)| u - f[last]).collect(),
        );
        body.samples
            .insert(NULL_INFORMATION_SAMPLES.into(), at_strongest.iter().zip(&next).map(|(u, n)| u - n).collect());
        body.series.push(
            Series::mean_over_seeds(UNINFORMATIVE_END, 1, palette::VERMILLION, values, &uninformative_per_seed)
                .legend_label("label-independent pixels, at the end"),
        );
        // The control as a level across the right panel, to read the shortcut runs against.
        let span = vec![finals.x[0], finals.x[finals.x.len() - 1]];
        body.series.push(
            Series::line(CONTROL_LEVEL, 1, Source::Measured, palette::BLACK, span, vec![control_final; 2])
                .legend_label(Run::Control.name())
                .in_legend(false),
        );
        body.scalars.insert(WEAKEST_MINUS_STRONGEST.into(), weakest - strongest);
        body.scalars.insert(CONTROL_MINUS_STRONGEST.into(), control_final - strongest);
        // Beside the label-independent arm, name what this line is.
        let (xs, encoding_means, independent_means) = (
            finals.x.clone(),
            finals.y.clone(),
            body.series.iter().find(|s| s.name == UNINFORMATIVE_END).map(|s| s.y.clone()).unwrap_or_default(),
        );
        body.series.push(finals.legend_label("label-encoding shortcut, at the end"));
        // The intensities trained, on both arms: the lines between them are only a guide.
        let mut trained = (xs.clone(), encoding_means);
        trained.0.extend(&xs);
        trained.1.extend(independent_means);
        body.series.push(
            Series::points(TRAINED_INTENSITIES, 1, palette::BLACK, trained.0, trained.1)
                .legend_label("the intensities trained (mean over seeds)"),
        );
        // v doubles from one run to the next: equal steps on a log axis.
        body.panels[1] = body.panels[1].clone().log_x();
        Ok(body)
    }
}
