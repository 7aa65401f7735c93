//! The template of ARCHITECTURE.md's "How to add a figure kind": a complete,
//! minimal figure kind. Copied to `src/kinds/<name>.rs` (with
//! `learning_dynamics::` read as `crate::`) and named in the registry by one
//! line, it is a kind like the others; tests/kinds.rs runs it through the
//! same pipeline steps as theirs, so the template cannot rot.
//!
//! The experiment: the linear model f(x) = w x on one point (x = s, y = +1)
//! under cross-entropy, from w = 0, over several input norms s. Its margin
//! m = s^2 w follows dm/dt = s^2 sigma(-m) exactly (gradient flow), so the
//! theory is drawn beside the measurement, and a claim checks the gap.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use learning_dynamics::engine::{EnsembleData, EnsembleWeights, TrainConfig, TrainInput, TrainLog};
use learning_dynamics::figure::{palette, FigureBody, Panel, Series, Source, TIME_LABEL};
use learning_dynamics::kinds::{job_config, Job, JobId, Kind};
use learning_dynamics::values::{Count, Loss, Outputs, Positive};

/// This kind's source files: its own; a kind that trains through another
/// kind's models lists that kind's file too (see `kinds::files`).
pub const FILES: &[&str] = &[file!()];

/// `[figure.experiment.<name>]` in paper.toml. Value rules live in the
/// field types (`Positive`, `Count`), so a bad value is reported at its line.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OnePoint {
    /// One job per input norm s.
    pub norms: Vec<Positive>,
    pub learning_rate: Positive,
    pub steps: Count,
    pub log_points: Count,
}

/// Names are part of the figure's interface: claims and captions use them.
/// One colour per norm: a colour (with its mark) must mean one thing in the figure.
const COLORS: [&str; 4] = [palette::BLUE, palette::ORANGE, palette::GREEN, palette::VERMILLION];

fn measured_name(norm: f64) -> String {
    format!("s = {norm}")
}

fn theory_name(norm: f64) -> String {
    format!("s = {norm} (theory)")
}

fn gap_scalar() -> String {
    "largest gap to theory".to_string()
}

impl Kind for OnePoint {
    fn seeds(&self) -> Vec<u64> {
        // Nothing random: the one network starts at w = 0.
        Vec::new()
    }

    fn problems(&self) -> Vec<String> {
        if self.norms.is_empty() {
            vec!["expected at least one input norm".into()]
        } else if self.norms.len() > COLORS.len() {
            vec![format!("at most {} input norms (one colour each)", COLORS.len())]
        } else {
            Vec::new()
        }
    }

    fn outputs(&self) -> Outputs {
        let norms = self.norms.iter().map(|s| s.get());
        Outputs {
            series: norms.clone().flat_map(|s| [measured_name(s), theory_name(s)]).collect(),
            scalars: vec![gap_scalar()],
            ..Outputs::default()
        }
    }

    fn jobs(&self) -> Vec<Job> {
        Job::numbered(self.norms.iter().map(|s| Job {
            id: JobId(0),
            name: measured_name(s.get()),
            // What this job's result depends on: the shared values and its own norm.
            config: job_config(self, &[("norms", json!(null)), ("this_norm", json!(s))]),
            seeds: Vec::new(),
            member_seeds: vec![0],
        }))
    }

    fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        let s = self.norms[job.id.0].get() as f32;
        Ok(TrainInput {
            init: EnsembleWeights { members: 1, shapes: vec![(1, 1)], layers: vec![vec![0.0]] },
            data: EnsembleData { members: 1, points: 1, dim: 1, x: vec![s], y: vec![1.0] },
            cfg: TrainConfig::logged(
                Loss::CrossEntropy,
                self.learning_rate.get(),
                self.steps.get(),
                self.log_points.get(),
            ),
        })
    }

    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        ensure!(logs.len() == self.norms.len(), "expected one log per norm");
        let mut body = FigureBody {
            panels: vec![Panel::new(
                "margin of one point: measured (colour) vs gradient flow (black)",
                TIME_LABEL,
                "margin",
            )],
            ..Default::default()
        };
        let mut gap: f64 = 0.0;
        // One colour per norm, and every series drawn alike shares one legend
        // label (`FigureBody::legend_problem`, checked by the pipeline).
        for (j, (norm, log)) in self.norms.iter().zip(logs).enumerate() {
            let s = norm.get();
            let times = log.times();
            let measured: Vec<f64> = log.margins.iter().map(|m| m[0] as f64).collect();
            let theory = gradient_flow(s, &times);
            gap = measured.iter().zip(&theory).map(|(a, b)| (a - b).abs()).fold(gap, f64::max);
            // One network, so no band; a kind with seeds draws `Series::mean_over_seeds`.
            body.series.push(Series::line(measured_name(s), 0, Source::Measured, COLORS[j], times.clone(), measured));
            // Every black dashed curve is one thing: one legend entry.
            body.series
                .push(Series::theory(theory_name(s), 0, times, theory).legend_label("gradient flow").in_legend(j == 0));
        }
        body.scalars.insert(gap_scalar(), gap);
        Ok(body)
    }
}

/// dm/dt = s^2 sigma(-m) from m = 0, by RK4 between the logged times.
fn gradient_flow(s: f64, times: &[f64]) -> Vec<f64> {
    let f = |m: f64| s * s / (1.0 + m.exp());
    let mut m = 0.0;
    let mut t = 0.0;
    times
        .iter()
        .map(|&target| {
            let steps = ((target - t) / 1e-3).ceil().max(1.0) as usize;
            let h = (target - t) / steps as f64;
            for _ in 0..steps {
                let (k1, k2) = (f(m), f(m + h / 2.0 * f(m)));
                let k3 = f(m + h / 2.0 * k2);
                let k4 = f(m + h * k3);
                m += h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
            }
            t = target;
            m
        })
        .collect()
}
