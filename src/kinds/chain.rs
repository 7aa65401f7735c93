//! Balanced scalar chains: how the input norm and the depth set the speed.
//!
//! One training point x = s (label +1) and a bias-free ReLU net of width 1
//! and depth L with every weight equal at the start: f = s w_1 ... w_L. All
//! layers then stay equal (balanced) and the margin z = f obeys
//!   dz/dt = L s^{2/L} z^{2-2/L} push(z) / N   (N = 1 here),
//! so the time t* to reach a target margin is exact from the ODE
//! (`theory::Mode`). Each norm s is one member of the ensemble; each
//! (init, depth) is one job. There is nothing random in this setup: the
//! ensemble has no seeds.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{job_config, Job, JobId, Kind};
use crate::engine::{EnsembleData, EnsembleWeights, TrainConfig, TrainInput, TrainLog};
use crate::figure::{palette, FigureBody, Panel, Series, Source};
use crate::stats::{crossing_time, loglog_slope};
use crate::theory;
use crate::values::{Count, Depth, Loss, Outputs, Positive};

/// This kind's source files (see `kinds::files`).
pub const FILES: &[&str] = &[file!()];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Chain {
    pub loss: Loss,
    pub depths: Vec<Depth>,
    /// Input norms s, log-spaced from min to max.
    pub norms: NormRange,
    /// t* is the first time the margin reaches this value.
    pub target_margin: Positive,
    /// The norm whose margin trajectories are drawn (one of `norms`).
    pub trajectory_norm: Positive,
    pub learning_rate: Positive,
    pub steps: Count,
    pub log_points: Count,
    /// Step of the RK4 integration of the theory.
    pub theory_dt: Positive,
    #[serde(rename = "init")]
    pub inits: Vec<Init>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NormRange {
    pub min: Positive,
    pub max: Positive,
    pub count: Count,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Init {
    /// Names the init in series and scalars, e.g. "weights at 0.1".
    pub name: String,
    #[serde(flatten)]
    pub start: Start,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// Every weight starts at this value, whatever s: z0 = s eps^L grows with s.
    Weight(Positive),
    /// Weights start at (z0 / s)^{1/L}: the same initial margin for every s.
    Margin(Positive),
}

impl Start {
    fn weight(self, s: f64, depth: u64) -> f64 {
        match self {
            Start::Weight(eps) => eps.get(),
            Start::Margin(z0) => (z0.get() / s).powf(1.0 / depth as f64),
        }
    }
}

/// Names of the scalars and series, shared by `outputs` and `assemble`.
fn slope_scalar(init: &str, depth: u64) -> String {
    format!("{init}, depth {depth}: log-log slope of t* vs s")
}
fn measured_name(init: &str, depth: u64) -> String {
    format!("{init}, depth {depth}")
}
fn theory_name(init: &str, depth: u64) -> String {
    format!("{init}, depth {depth} (ODE)")
}
/// What a depth's colour means in the legend (the panels' titles say the init).
fn depth_label(depth: u64) -> String {
    format!("depth {depth}")
}
/// Every black dashed line of these figures.
const ODE_LABEL: &str = "ODE";
fn escape_scalar(depth: u64) -> String {
    format!("depth {depth}: t* at the trajectory norm")
}
fn width_scalar(depth: u64) -> String {
    format!("depth {depth}: rise width (decades)")
}
const GAP_SCALAR: &str = "largest gap of t* to the ODE (%)";

impl Chain {
    fn norm_values(&self) -> Vec<f64> {
        let (lo, hi, n) = (self.norms.min.get(), self.norms.max.get(), self.norms.count.usize());
        if n == 1 {
            return vec![lo];
        }
        (0..n).map(|i| lo * (hi / lo).powf(i as f64 / (n - 1) as f64)).collect()
    }

    /// The index of `trajectory_norm` among the norms (found arithmetically:
    /// the count may be large, and this runs while the spec is validated).
    fn trajectory_member(&self) -> Option<usize> {
        let (lo, hi, n) = (self.norms.min.get(), self.norms.max.get(), self.norms.count.get());
        let s = self.trajectory_norm.get();
        if n == 1 || hi == lo {
            return ((s - lo).abs() <= 1e-9 * s).then_some(0);
        }
        let k = ((n - 1) as f64 * (s / lo).ln() / (hi / lo).ln()).round();
        let at = lo * (hi / lo).powf(k / (n - 1) as f64);
        (k >= 0.0 && k < n as f64 && (at - s).abs() <= 1e-9 * s).then_some(k as usize)
    }

    /// Whether the figure shows t* and rise width against depth (one norm only).
    fn depth_view(&self) -> bool {
        self.norms.count.get() == 1
    }

    /// Each job's start and depth, in the order of `jobs()`.
    fn job_parts(&self, job: &Job) -> Result<(&Init, u64)> {
        self.inits
            .iter()
            .flat_map(|init| self.depths.iter().map(move |d| (init, d.get())))
            .nth(job.id.0)
            .ok_or_else(|| anyhow::anyhow!("chain has no job {:?}", job.id))
    }

    /// The chain as the network starts it, in f32 like the network.
    fn mode(&self, start: Start, s: f64, depth: u64) -> theory::Mode {
        let w = start.weight(s, depth) as f32 as f64;
        theory::Mode { norm: s as f32 as f64, weights: vec![w; depth as usize] }
    }

    /// The balanced chain's ODE at a real depth L (`theory::balanced_chain_velocity`)
    /// from the init's margin s w^L: the time t* it reaches the target margin, and
    /// its 10%-90% rise in decades of t, from RK4 on 4000 times up to `t_max`
    /// (geometric from t_max / 10^6, so that the early rise is resolved).
    fn continued_ode(&self, start: Start, s: f64, l: f64, t_max: f64) -> (f64, f64) {
        let z0 = match start {
            Start::Weight(eps) => s * eps.get().powf(l),
            Start::Margin(z0) => z0.get(),
        };
        let times: Vec<f64> = (0..4000).map(|k| t_max * 10f64.powf(-6.0 + 6.0 * k as f64 / 3999.0)).collect();
        let velocity = |z: &[f64]| vec![theory::balanced_chain_velocity(l, s, z[0], self.loss, 1.0)];
        let z: Vec<f64> =
            theory::integrate(&[z0], &times, self.theory_dt.get(), 0.01, velocity).iter().map(|z| z[0]).collect();
        let target = self.target_margin.get();
        (crossing_time(&times, &z, target).unwrap_or(f64::NAN), rise_decades(&times, &z, target))
    }
}

/// The sharpness of a margin's escape: the decades of t it takes to rise from
/// 10% to 90% of `target` (NaN if it never gets there or starts above 10%).
fn rise_decades(times: &[f64], margins: &[f64], target: f64) -> f64 {
    match (crossing_time(times, margins, 0.1 * target), crossing_time(times, margins, 0.9 * target)) {
        (Some(a), Some(b)) if a > 0.0 => (b / a).log10(),
        _ => f64::NAN,
    }
}

impl Kind for Chain {
    fn seeds(&self) -> Vec<u64> {
        Vec::new()
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.depths.is_empty() {
            p.push("depths: expected at least one depth".into());
        }
        for (i, d) in self.depths.iter().enumerate() {
            if self.depths[..i].contains(d) {
                p.push(format!("depths: {} is listed twice", d.get()));
            }
        }
        if self.depth_view() && self.inits.len() > 1 {
            p.push("init: with a single norm (the depth view) expected exactly one init".into());
        }
        if self.inits.is_empty() {
            p.push("expected at least one [[figure.experiment.chain.init]]".into());
        }
        for (i, init) in self.inits.iter().enumerate() {
            if self.inits[..i].iter().any(|o| o.name == init.name) {
                p.push(format!("init[{i}].name: duplicate init name {:?}", init.name));
            }
        }
        if self.norms.min.get() > self.norms.max.get() {
            p.push(format!("norms: expected min <= max, got {} > {}", self.norms.min.get(), self.norms.max.get()));
        }
        if self.norms.count.get() == 1 && self.norms.min.get() != self.norms.max.get() {
            p.push("norms: a single norm needs min = max".into());
        }
        if self.trajectory_member().is_none() {
            p.push(format!(
                "trajectory_norm: {} is not one of the norms {:?}",
                self.trajectory_norm.get(),
                self.norm_values()
            ));
        }
        if self.depth_view() {
            let s = self.norms.min.get();
            for (i, init) in self.inits.iter().enumerate() {
                for d in &self.depths {
                    let z0 = s * init.start.weight(s, d.get()).powi(d.get() as i32);
                    if z0 >= 0.1 * self.target_margin.get() {
                        p.push(format!("init[{i}]: init {:?}, depth {}: the rise width needs an initial margin below 10% of target_margin, got {z0}", init.name, d.get()));
                    }
                }
            }
        }
        p
    }

    fn outputs(&self) -> Outputs {
        let mut out = Outputs::default();
        out.scalars.push(GAP_SCALAR.into());
        for init in &self.inits {
            for d in &self.depths {
                out.series.push(measured_name(&init.name, d.get()));
                out.series.push(theory_name(&init.name, d.get()));
                if !self.depth_view() {
                    out.scalars.push(slope_scalar(&init.name, d.get()));
                }
            }
        }
        if self.depth_view() {
            for d in &self.depths {
                out.scalars.push(escape_scalar(d.get()));
                out.scalars.push(width_scalar(d.get()));
            }
        }
        out
    }

    fn jobs(&self) -> Vec<Job> {
        let mut jobs = Vec::new();
        for init in &self.inits {
            for d in &self.depths {
                jobs.push(Job {
                    id: JobId(0),
                    name: measured_name(&init.name, d.get()),
                    config: job_config(
                        self,
                        &[
                            ("init", json!(null)),
                            ("depths", json!(null)),
                            ("theory_dt", json!(null)),
                            ("trajectory_norm", json!(null)),
                            ("target_margin", json!(null)),
                            ("this_depth", json!(d)),
                            ("this_start", json!(init.start)),
                        ],
                    ),
                    // Nothing random: one chain per norm, all drawn as "seed 0".
                    seeds: Vec::new(),
                    member_seeds: vec![0; self.norms.count.usize()],
                });
            }
        }
        Job::numbered(jobs)
    }

    fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        let (init, depth) = self.job_parts(job)?;
        let norms = self.norm_values();
        let members = norms.len();
        let data = EnsembleData {
            members,
            points: 1,
            dim: 1,
            x: norms.iter().map(|&s| s as f32).collect(),
            y: vec![1.0; members],
        };
        let weights = EnsembleWeights {
            members,
            shapes: vec![(1, 1); depth as usize],
            layers: (0..depth).map(|_| norms.iter().map(|&s| init.start.weight(s, depth) as f32).collect()).collect(),
        };
        let cfg = TrainConfig::logged(self.loss, self.learning_rate.get(), self.steps.get(), self.log_points.get());
        Ok(TrainInput { init: weights, data, cfg })
    }

    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        let jobs = self.jobs();
        ensure!(logs.len() == jobs.len(), "chain expects {} job logs, got {}", jobs.len(), logs.len());
        let norms = self.norm_values();
        let target = self.target_margin.get();
        let dt = self.theory_dt.get();
        let loss = self.loss;
        let traj = self.trajectory_member().expect("validated");
        let depth_view = self.depth_view();
        let mut body = FigureBody::default();
        if !depth_view {
            for init in &self.inits {
                body.panels.push(
                    Panel::new(
                        format!("{}: time t* to reach margin {target} vs input norm s", init.name),
                        "input norm s",
                        "t* (points: measured, dashed: ODE)",
                    )
                    .log_x()
                    .log_y(),
                );
            }
        }
        let traj_panel = body.panels.len();
        body.panels.push(
            Panel::over_log_time(
                // The trajectories are the first init's.
                format!("margin over time, s = {}, {}; dashed: ODE", self.trajectory_norm.get(), self.inits[0].name),
                "margin z = f(x)",
            )
            .log_y(),
        );
        let mut gap: f64 = 0.0;
        let mut unmatched = false;
        let mut depth_points: Vec<(u64, f64, f64, f64, f64)> = Vec::new();
        for ((init, depth), log) in
            self.inits.iter().flat_map(|i| self.depths.iter().map(move |d| (i, d.get()))).zip(logs)
        {
            let times = log.times();
            let t_max = *times.last().unwrap_or(&0.0);
            let color = palette::depth(depth);
            let init_index = self.inits.iter().position(|i| i.name == init.name).unwrap_or(0);
            let margins_of = |member: usize| -> Vec<f64> { log.margins.iter().map(|m| m[member] as f64).collect() };
            let measured: Vec<Option<f64>> =
                (0..norms.len()).map(|k| crossing_time(&times, &margins_of(k), target)).collect();
            let theory: Vec<Option<f64>> = norms
                .iter()
                .map(|&s| self.mode(init.start, s, depth).time_to_reach(target, loss, 1.0, dt, t_max))
                .collect();
            for (m, t) in measured.iter().zip(&theory) {
                match (m, t) {
                    (Some(m), Some(t)) => gap = gap.max(100.0 * (m - t).abs() / t),
                    (None, None) => {}
                    // One reached the target and the other did not: no gap
                    // can be measured, and the claim on it must fail.
                    _ => unmatched = true,
                }
            }
            if !depth_view {
                let pairs: Vec<(f64, f64)> =
                    norms.iter().zip(&measured).filter_map(|(&s, t)| t.map(|t| (s, t))).collect();
                let (xs, ys): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
                body.scalars.insert(
                    slope_scalar(&init.name, depth),
                    if xs.len() == norms.len() { loglog_slope(&xs, &ys) } else { f64::NAN },
                );
                let (tx, ty): (Vec<f64>, Vec<f64>) =
                    norms.iter().zip(&theory).filter_map(|(&s, t)| t.map(|t| (s, t))).unzip();
                // A colour is a depth in every panel (the titles say the init).
                let legend = init_index == 0;
                body.series.push(
                    Series::points(measured_name(&init.name, depth), init_index, color, xs, ys)
                        .legend_label(depth_label(depth))
                        .in_legend(legend),
                );
                // Black dashes through each depth's coloured points: one
                // legend entry for every ODE (its depth is its points' colour).
                body.series.push(
                    Series::theory(theory_name(&init.name, depth), init_index, tx, ty)
                        .legend_label(ODE_LABEL)
                        .in_legend(false),
                );
            }
            if init_index == 0 {
                // The trajectory of one norm: the measured margin and the ODE's.
                let s = norms[traj];
                let theory_margins = self.mode(init.start, s, depth).margins_at(&times, loss, 1.0, dt);
                let name = if depth_view {
                    measured_name(&init.name, depth)
                } else {
                    format!("{} at s = {s}", measured_name(&init.name, depth))
                };
                let theory_series = if depth_view {
                    theory_name(&init.name, depth)
                } else {
                    format!("{} at s = {s}", theory_name(&init.name, depth))
                };
                let skip = crate::stats::leading_zero_times(&times);
                let (x, traj_margins) = (times[skip..].to_vec(), margins_of(traj)[skip..].to_vec());
                body.series.push(
                    Series::line(name, traj_panel, Source::Measured, color, x.clone(), traj_margins)
                        .legend_label(depth_label(depth)),
                );
                body.series.push(
                    Series::theory(theory_series, traj_panel, x, theory_margins[skip..].to_vec())
                        .legend_label(ODE_LABEL)
                        .in_legend(self.depths.last().is_some_and(|d| d.get() == depth)),
                );
                if depth_view {
                    let m = margins_of(traj);
                    let rise = |series: &[f64]| rise_decades(&times, series, target);
                    let t_meas = measured[traj].unwrap_or(f64::NAN);
                    let t_theory = theory[traj].unwrap_or(f64::NAN);
                    body.scalars.insert(escape_scalar(depth), t_meas);
                    body.scalars.insert(width_scalar(depth), rise(&m));
                    depth_points.push((depth, t_meas, t_theory, rise(&m), rise(&theory_margins)));
                }
            }
        }
        body.scalars.insert(GAP_SCALAR.into(), if unmatched { f64::NAN } else { gap });
        if depth_view {
            let depth_panel =
                |title: &str, y_label: &str| Panel::new(title, "depth L (number of weight layers)", y_label);
            let s = self.trajectory_norm.get();
            body.panels.push(depth_panel(&format!("plateau: t* to margin {target}, s = {s}"), "t*"));
            body.panels.push(depth_panel("sharpness: the 10%-90% rise", "rise width (decades of t)"));
            // A depth that never reached the target has no point to draw (its scalars are NaN).
            let column = |f: fn(&(u64, f64, f64, f64, f64)) -> f64| -> (Vec<f64>, Vec<f64>) {
                depth_points.iter().map(|p| (p.0 as f64, f(p))).filter(|(_, v)| v.is_finite()).unzip()
            };
            // The ODE between the depths too: its formula holds for every real L, so a line
            // through the trained depths means something (a chain exists only at whole L).
            let (first, last) = (self.depths[0].get() as f64, self.depths[self.depths.len() - 1].get() as f64);
            let t_max = logs.first().and_then(|l| l.times().last().copied()).unwrap_or(1.0);
            let continued: Vec<(f64, f64, f64)> = (0..=((last - first) * 20.0).round() as usize)
                .map(|k| {
                    let l = first + k as f64 / 20.0;
                    let (t_star, rise) = self.continued_ode(self.inits[0].start, s, l, t_max);
                    (l, t_star, rise)
                })
                .collect();
            let curve = |f: fn(&(f64, f64, f64)) -> f64| -> (Vec<f64>, Vec<f64>) {
                continued.iter().map(|p| (p.0, f(p))).filter(|(_, v)| v.is_finite()).unzip()
            };
            // Black: these points are no one depth, and the ODE is black dashed throughout.
            for (panel, name, source, (xs, y)) in [
                (traj_panel + 1, "t* measured", Source::Measured, column(|p| p.1)),
                (traj_panel + 1, "t* ODE", Source::Theory, curve(|p| p.1)),
                (traj_panel + 2, "rise width measured", Source::Measured, column(|p| p.3)),
                (traj_panel + 2, "rise width ODE", Source::Theory, curve(|p| p.2)),
            ] {
                body.series.push(match source {
                    Source::Measured => Series::points(name, panel, palette::BLACK, xs, y).legend_label("measured"),
                    Source::Theory => Series::theory(name, panel, xs, y).legend_label(ODE_LABEL),
                });
            }
        }
        Ok(body)
    }
}
