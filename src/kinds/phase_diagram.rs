//! The paper's phase diagram: one ReLU unit f = z relu(u.x) on one point x
//! (norm s, label +1). With y = u.x/|x|, the flow conserves y^2 - z^2, and the
//! unit learns iff y0 > 0 and z0 > -y0 (see `theory::phase_succeeds`).
//!
//! Measured: a grid of initial points (z0, y0), every seed, trained as one
//! ensemble, each classified by where it ended; and the trajectories from the
//! marked starting points c1, c2, c3. x lives in R^d with d > 1 and u gets a
//! random component orthogonal to x, which the theory says never moves.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{job_config, Job, JobId, Kind};
use crate::engine::{EnsembleData, EnsembleWeights, RecordWeights, TrainConfig, TrainInput, TrainLog};
use crate::figure::{palette, FigureBody, Panel, Series, Source, Style};
use crate::rng;
use crate::theory;
use crate::values::{Count, Loss, NonNegative, Outputs, Positive};

/// This kind's source files (see `kinds::files`).
pub const FILES: &[&str] = &[file!()];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseDiagram {
    /// Dimension d of the input (> 1, so the reduction to (z, y) is tested).
    pub input_dim: Count,
    /// Norm s of the training point.
    pub input_norm: Positive,
    pub loss: Loss,
    pub learning_rate: Positive,
    pub steps: Count,
    /// Number of log-spaced logged steps.
    pub log_points: Count,
    /// Seeds 0..seed_count: each draws x's direction and u's orthogonal part.
    pub seed_count: Count,
    /// Standard deviation of u's component orthogonal to x.
    pub orthogonal_scale: NonNegative,
    pub grid: Grid,
    /// Grid points closer than this to the boundary are not checked: they
    /// sit next to the saddle and need unbounded time to decide.
    pub boundary_distance: Positive,
    #[serde(rename = "start")]
    pub starts: Vec<Start>,
}

/// The viewed box [z_min, z_max] x [min(y_min, 0), y_max] and the grid of
/// initial points in it. Rows with y <= 0 start dead: the paper's y < 0 strip.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    pub z_min: f64,
    pub z_max: f64,
    pub z_count: Count,
    pub y_min: f64,
    pub y_max: Positive,
    pub y_count: Count,
}

/// A marked starting point whose trajectory is drawn.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Start {
    pub name: String,
    pub z: f64,
    pub y: f64,
}

/// Agreement of the grid points with y0 > 0 (away from the boundary) with the rule.
const GRID_AGREEMENT: &str = "grid agreement";
const GRID_CHECKED: &str = "grid points checked";
/// The largest |c - c0| of a trained trajectory in view, c = y^2 - z^2, and
/// the same for discrete gradient descent's own map of (z, y) in float64.
const DRIFT: &str = "largest hyperbola drift";
const DRIFT_PREDICTED: &str = "largest hyperbola drift of discrete GD (float64 map)";
/// The naive rival rule, "learns iff z0 > 0", scored on the same points and
/// outcomes: the counterfactual that the paper's rule must beat.
const NAIVE_AGREEMENT: &str = "grid agreement of the naive rule (learns iff z0 > 0)";
/// The same for the rows that start dead (y0 < 0): the rule's other branch.
const DEAD_AGREEMENT: &str = "grid agreement, y0 < 0 (dead from the start)";
const DEAD_CHECKED: &str = "grid points checked, y0 < 0";

/// The two jobs: every grid point, and the marked starts' trajectories.
const JOB_NAMES: [&str; 2] = ["grid", "trajectories"];
const GRID: JobId = JobId(0);
const TRAJECTORIES: JobId = JobId(1);

/// c1 (on the boundary), c2 (a success: a blue, apart from the failure
/// region's reds), c3 (a failure: orange, the failure family), and a fourth.
const TRAJECTORY_COLORS: [&str; 4] = [palette::BLUE, palette::SKY_BLUE, palette::ORANGE, palette::GREEN];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    Undecided,
}

impl PhaseDiagram {
    fn grid_points(&self) -> Vec<(f64, f64)> {
        let g = &self.grid;
        let lin =
            |lo: f64, hi: f64, n: u64, i: u64| if n == 1 { lo } else { lo + (hi - lo) * i as f64 / (n - 1) as f64 };
        let mut pts = Vec::new();
        for iy in 0..g.y_count.get() {
            for iz in 0..g.z_count.get() {
                pts.push((
                    lin(g.z_min, g.z_max, g.z_count.get(), iz),
                    lin(g.y_min, g.y_max.get(), g.y_count.get(), iy),
                ));
            }
        }
        pts
    }

    fn starting_points(&self, job: JobId) -> Vec<(f64, f64)> {
        match job {
            GRID => self.grid_points(),
            _ => self.starts.iter().map(|s| (s.z, s.y)).collect(),
        }
    }

    /// The analytic picture: regions, streamlines with arrows.
    fn add_theory(&self, body: &mut FigureBody) {
        let g = &self.grid;
        let (z_min, z_max, y_max) = (g.z_min, g.z_max, g.y_max.get());
        // Success: y > 0 and z > -y. Failure: the rest of the box (y >= 0).
        let corner = (-y_max).max(z_min);
        let (sx, sy): (Vec<f64>, Vec<f64>) =
            [(0.0, 0.0), (z_max, 0.0), (z_max, y_max), (corner, y_max), (corner, -corner)].into_iter().unzip();
        body.series.push(
            Series::line("success region (theory)", 0, Source::Theory, palette::GREEN, sx, sy).styled(Style::Area),
        );
        // Failure also covers the strip y < 0 in view, where the unit starts dead.
        let y_lo = g.y_min.min(0.0);
        let mut failure = vec![(z_min, y_lo)];
        if y_lo < 0.0 {
            failure.extend([(z_max, y_lo), (z_max, 0.0)]);
        }
        failure.extend([(0.0, 0.0), (corner, -corner), (corner, y_max), (z_min, y_max)]);
        let (fx, fy): (Vec<f64>, Vec<f64>) = failure.into_iter().unzip();
        body.series.push(
            Series::line("failure region (theory)", 0, Source::Theory, palette::VERMILLION, fx, fy).styled(Style::Area),
        );

        let mut arrows: (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
        let mut heads: Vec<(f64, f64)> = Vec::new();
        let paths = theory::phase_streamlines((z_min, z_max), y_max).into_iter().filter(|p| p.len() >= 16);
        // Distance in the panel's proportions: the box's width and height count alike.
        let (width, height) = (z_max - z_min, y_max - y_lo);
        let apart = |a: (f64, f64), b: (f64, f64)| ((a.0 - b.0) / width).hypot((a.1 - b.1) / height);
        for (k, path) in paths.enumerate() {
            // The arrow where it is farthest from the arrows placed so far, along the
            // path's middle half (arrows of neighbouring streamlines drawn at their
            // midpoints overlapped where the hyperbolas crowd together).
            let room = |p: (f64, f64)| heads.iter().map(|&h| apart(p, h)).fold(f64::INFINITY, f64::min);
            let at = (path.len() / 4..=3 * path.len() / 4)
                .step_by((path.len() / 20).max(1))
                .max_by(|&a, &b| room(path[a]).total_cmp(&room(path[b])))
                .unwrap_or(path.len() / 2)
                .max(6);
            // Tail and head several samples apart, so the direction survives
            // rounding to whole pixels.
            for p in [path[at - 6], path[at]] {
                arrows.0.push(p.0);
                arrows.1.push(p.1);
            }
            heads.push(path[at]);
            let name =
                if k == 0 { "streamlines (theory)".to_string() } else { format!("streamline {} (theory)", k + 1) };
            let (x, y) = path.into_iter().unzip();
            body.series.push(
                Series::line(name, 0, Source::Theory, palette::GREY, x, y)
                    .legend_label("streamlines (theory)")
                    .in_legend(k == 0),
            );
        }
        body.series.push(
            Series::line("flow direction (theory)", 0, Source::Theory, palette::GREY, arrows.0, arrows.1)
                .styled(Style::Arrows),
        );
    }
}

impl Kind for PhaseDiagram {
    /// Seeds 0..seed_count.
    fn seeds(&self) -> Vec<u64> {
        (0..self.seed_count.get()).collect()
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let g = &self.grid;
        if self.input_dim.get() < 2 {
            p.push("input_dim: must be at least 2 (d > 1 is what tests the reduction to (z, y))".into());
        }
        if !(g.z_min < 0.0 && g.z_max > 0.0) {
            // At the bound on the wrong side of 0 (the field to change).
            let field = if g.z_min >= 0.0 { "z_min" } else { "z_max" };
            p.push(format!("grid: {field}: expected z_min < 0 < z_max, got {} and {}", g.z_min, g.z_max));
        }
        if !(g.y_min.is_finite() && g.y_min < g.y_max.get()) {
            p.push(format!("grid: y_min: expected a finite y_min < y_max, got {} and {}", g.y_min, g.y_max.get()));
        }
        if self.starts.len() > TRAJECTORY_COLORS.len() {
            p.push(format!("at most {} marked starts, got {}", TRAJECTORY_COLORS.len(), self.starts.len()));
        }
        for (i, s) in self.starts.iter().enumerate() {
            if !(s.y > 0.0 && s.y <= g.y_max.get() && s.z >= g.z_min && s.z <= g.z_max) {
                p.push(format!(
                    "start[{i}]: start {:?} at (z, y) = ({}, {}) is outside the viewed box with y > 0",
                    s.name, s.z, s.y
                ));
            }
        }
        p
    }

    fn outputs(&self) -> Outputs {
        let mut series: Vec<String> = [
            "success region (theory)",
            "failure region (theory)",
            "streamlines (theory)",
            "flow direction (theory)",
            "grid: success",
            "grid: failure",
            "grid: undecided",
            "grid: seeds disagree",
            "marked starts",
        ]
        .map(String::from)
        .to_vec();
        for s in &self.starts {
            series.push(format!("{} (trained)", s.name));
            series.push(format!("{} (theory)", s.name));
        }
        let scalars =
            [GRID_AGREEMENT, NAIVE_AGREEMENT, GRID_CHECKED, DEAD_AGREEMENT, DEAD_CHECKED, DRIFT, DRIFT_PREDICTED]
                .map(String::from)
                .to_vec();
        Outputs { series, scalars, ..Outputs::default() }
    }

    fn jobs(&self) -> Vec<Job> {
        let seeds = self.seeds();
        // Members run seed by seed, every start of a seed side by side.
        let member_seeds = |starts: usize| seeds.iter().flat_map(|&s| std::iter::repeat_n(s, starts)).collect();
        Job::numbered([
            Job {
                id: JobId(0),
                name: JOB_NAMES[GRID.0].into(),
                config: job_config(
                    self,
                    &[("start", json!(null)), ("boundary_distance", json!(null)), ("job", json!(JOB_NAMES[GRID.0]))],
                ),
                seeds: seeds.clone(),
                member_seeds: member_seeds(self.grid_points().len()),
            },
            Job {
                id: JobId(0),
                name: JOB_NAMES[TRAJECTORIES.0].into(),
                config: job_config(
                    self,
                    &[
                        ("grid", json!(null)),
                        ("boundary_distance", json!(null)),
                        ("job", json!(JOB_NAMES[TRAJECTORIES.0])),
                    ],
                ),
                member_seeds: member_seeds(self.starts.len()),
                seeds,
            },
        ])
    }

    /// Member order: seed-major, then starting point.
    fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        let starts = self.starting_points(job.id);
        let d = self.input_dim.usize();
        let s = self.input_norm.get();
        let members = starts.len() * job.seeds.len();
        let (mut x, mut w1, mut w2) = (Vec::new(), Vec::new(), Vec::new());
        for &seed in &job.seeds {
            let direction = x_direction(seed, d);
            let mut orthogonal_rng = rng::stream(&format!("phase_diagram/u-orthogonal/{}", JOB_NAMES[job.id.0]), seed);
            for &(z0, y0) in &starts {
                let other = orthogonal_unit_vector(&mut orthogonal_rng, &direction);
                let r = self.orthogonal_scale.get() * rng::normal(&mut orthogonal_rng);
                x.extend(direction.iter().map(|v| (s * v) as f32));
                w1.extend(direction.iter().zip(&other).map(|(a, b)| (y0 * a + r * b) as f32));
                w2.push(z0 as f32);
            }
        }
        let data = EnsembleData { members, points: 1, dim: d, x, y: vec![1.0; members] };
        let init = EnsembleWeights { members, shapes: vec![(1, d), (1, 1)], layers: vec![w1, w2] };
        let record_weights = if job.id == GRID { RecordWeights::Last } else { RecordWeights::Every };
        let cfg = TrainConfig {
            record_weights,
            ..TrainConfig::logged(self.loss, self.learning_rate.get(), self.steps.get(), self.log_points.get())
        };
        Ok(TrainInput { init, data, cfg })
    }

    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        ensure!(logs.len() == 2, "phase diagram expects 2 job logs, got {}", logs.len());
        let (grid_log, traj_log) = (&logs[0], &logs[1]);
        let seeds = self.seeds();
        let g = &self.grid;
        let (z_range, y_max) = ((g.z_min, g.z_max), g.y_max.get());
        let mut body = FigureBody {
            panels: vec![Panel::new(
                // Short enough for one line at the publication's column width.
                format!(
                    "|x| = {}, x in R^{}, {}, lr {}",
                    self.input_norm.get(),
                    self.input_dim.get(),
                    self.loss.name(),
                    self.learning_rate.get()
                ),
                "z (output weight)",
                "y = u.x / |x| (first-layer projection)",
            )
            .x_range(z_range.0, z_range.1)
            .y_range(g.y_min.min(0.0), y_max)
            // Both axes are weights: hyperbolas read true only at one scale.
            .equal_aspect()],
            ..Default::default()
        };
        self.add_theory(&mut body);

        // Grid outcomes, per seed, from the final weights and margins.
        let grid = self.grid_points();
        let directions: Vec<Vec<f64>> = seeds.iter().map(|&s| x_direction(s, self.input_dim.usize())).collect();
        let outcomes = final_outcomes(grid_log)?;
        // (checked, agreeing) for the rows alive at the start, then the dead
        // ones, then the naive rule on the rows alive at the start.
        let mut tally = [(0usize, 0usize); 3];
        let mut groups: [(Vec<f64>, Vec<f64>); 4] = Default::default();
        for (i, &(z0, y0)) in grid.iter().enumerate() {
            let per_seed: Vec<Outcome> = (0..seeds.len()).map(|k| outcomes[k * grid.len() + i]).collect();
            if theory::phase_boundary_distance(z0, y0) > self.boundary_distance.get() {
                let expected = if theory::phase_succeeds(z0, y0) { Outcome::Success } else { Outcome::Failure };
                let t = &mut tally[usize::from(y0 <= 0.0)];
                t.0 += per_seed.len();
                t.1 += per_seed.iter().filter(|&&o| o == expected).count();
                if y0 > 0.0 {
                    let naive = if z0 > 0.0 { Outcome::Success } else { Outcome::Failure };
                    tally[2].0 += per_seed.len();
                    tally[2].1 += per_seed.iter().filter(|&&o| o == naive).count();
                }
            }
            let group = if per_seed.iter().all(|&o| o == per_seed[0]) {
                match per_seed[0] {
                    Outcome::Success => 0,
                    Outcome::Failure => 1,
                    Outcome::Undecided => 2,
                }
            } else {
                3
            };
            groups[group].0.push(z0);
            groups[group].1.push(y0);
        }
        let group_style = [
            ("grid: success", palette::GREEN),
            ("grid: failure", palette::VERMILLION),
            ("grid: undecided", palette::GREY),
            // Not black: the marked starts are black.
            ("grid: seeds disagree", palette::PURPLE),
        ];
        for ((name, color), (x, y)) in group_style.iter().zip(groups) {
            let legend = !x.is_empty();
            body.series.push(Series::points(*name, 0, color, x, y).in_legend(legend));
        }
        // No point checked is no evidence: 0, so the claim fails.
        let fraction =
            |(checked, agree): (usize, usize)| if checked == 0 { 0.0 } else { agree as f64 / checked as f64 };
        for (t, (agreement, count)) in
            tally.into_iter().zip([(GRID_AGREEMENT, GRID_CHECKED), (DEAD_AGREEMENT, DEAD_CHECKED)])
        {
            body.scalars.insert(agreement.into(), fraction(t));
            body.scalars.insert(count.into(), t.0 as f64);
        }
        body.scalars.insert(NAIVE_AGREEMENT.into(), fraction(tally[2]));

        // Trajectories from the marked starts (seed 0 drawn; every seed checked).
        let mut drift: f64 = 0.0;
        let mut drift_predicted: f64 = 0.0;
        let in_view = |z: f64, y: f64| z >= z_range.0 && z <= z_range.1 && y > 0.0 && y <= y_max;
        let logged_steps: Vec<u64> = traj_log.weights.iter().map(|(step, _)| *step).collect();
        let per_seed = self.starts.len();
        for (i, start) in self.starts.iter().enumerate() {
            let color = TRAJECTORY_COLORS[i];
            let c0 = start.y * start.y - start.z * start.z;
            for (k, _) in seeds.iter().enumerate() {
                let path = trajectory(traj_log, k * per_seed + i, &directions[k]);
                for &(z, y) in &path {
                    if in_view(z, y) {
                        drift = drift.max((y * y - z * z - c0).abs());
                    }
                }
                if k == 0 {
                    // Drawn until it first leaves the view (plotters would
                    // otherwise run the line along the edge).
                    let inside = |&(z, y): &(f64, f64)| z >= z_range.0 && z <= z_range.1 && y >= 0.0 && y <= y_max;
                    let (x, y): (Vec<f64>, Vec<f64>) = path.into_iter().take_while(inside).unzip();
                    let name = format!("{} (trained)", start.name);
                    body.series.push(Series::line(name, 0, Source::Measured, color, x, y));
                }
            }
            let (x, y): (Vec<f64>, Vec<f64>) =
                theory::phase_hyperbola_from(start.z, start.y, z_range, y_max, 200).into_iter().unzip();
            // The start's theory hyperbola is a streamline through it, drawn
            // like the others: grey dashes, through which the coloured trained
            // path shows (in its own colour, or black, they hid it).
            body.series.push(
                Series::line(format!("{} (theory)", start.name), 0, Source::Theory, palette::GREY, x, y)
                    .legend_label("streamlines (theory)")
                    .in_legend(false),
            );
        }
        // Discrete GD's own map of (z, y), from the same starts at the same rate,
        // read at the same logged steps: the drift the trained nets should show.
        for start in &self.starts {
            let c0 = start.y * start.y - start.z * start.z;
            for (z, y) in self.discrete_gd(start.z, start.y, &logged_steps) {
                if in_view(z, y) {
                    drift_predicted = drift_predicted.max((y * y - z * z - c0).abs());
                }
            }
        }
        body.scalars.insert(DRIFT.into(), drift);
        body.scalars.insert(DRIFT_PREDICTED.into(), drift_predicted);
        let (x, y) = self.starts.iter().map(|s| (s.z, s.y)).unzip();
        let labels = self.starts.iter().map(|s| s.name.clone()).collect();
        body.series.push(Series::points("marked starts", 0, palette::BLACK, x, y).with_labels(labels));
        Ok(body)
    }
}

impl PhaseDiagram {
    /// (z, y) under discrete gradient descent of the reduced unit, in float64,
    /// at each of `steps` (ascending): with pre-activation s y and g = -l'(f),
    /// z' = z + lr g s y and y' = y + lr g s z while y > 0 (nothing moves once
    /// y <= 0). Each step multiplies c = y^2 - z^2 by 1 - lr^2 s^2 g^2, so GD
    /// drifts off the flow's hyperbola by exactly that shrinkage, proportional
    /// to lr over a fixed time.
    fn discrete_gd(&self, z0: f64, y0: f64, steps: &[u64]) -> Vec<(f64, f64)> {
        let (lr, s) = (self.learning_rate.get(), self.input_norm.get());
        let (mut z, mut y, mut step) = (z0, y0, 0u64);
        let mut out = Vec::with_capacity(steps.len());
        for &target in steps {
            while step < target {
                if y > 0.0 {
                    let f = z * s * y;
                    let g = match self.loss {
                        Loss::CrossEntropy => 1.0 / (1.0 + f.exp()),
                        Loss::Hinge => f64::from(u8::from(f < 1.0)),
                    };
                    (z, y) = (z + lr * g * s * y, y + lr * g * s * z);
                }
                step += 1;
            }
            out.push((z, y));
        }
        out
    }
}

/// (z, y) of a member at every logged step where weights were recorded.
fn trajectory(log: &TrainLog, member: usize, direction: &[f64]) -> Vec<(f64, f64)> {
    log.weights.iter().map(|(_, w)| unit_coordinates(w, member, direction)).collect()
}

/// (z, y) with y = u.x/|x|, from a member's weights and its x's direction.
fn unit_coordinates(w: &EnsembleWeights, member: usize, direction: &[f64]) -> (f64, f64) {
    let u = w.member_layer(member, 0);
    let z = w.member_layer(member, 1)[0] as f64;
    (z, u.iter().zip(direction).map(|(a, b)| *a as f64 * b).sum())
}

/// Where each member ended, read from the engine's own float32 state (its
/// margin m = f = z relu(u.x)): success (m > 0), failure (m = 0: the unit's
/// pre-activation is <= 0 in the engine's arithmetic, so it is dead and
/// frozen, a step that landed on the kink included), or undecided (alive and
/// still wrong, or not finite). A float64 recomputation of y from the weights
/// would call a unit frozen at y = -6e-8 alive (+1e-10..5e-8), which the
/// training never saw.
fn final_outcomes(log: &TrainLog) -> Result<Vec<Outcome>> {
    let margins = log.margins.last().ok_or_else(|| anyhow::anyhow!("grid log has no margins"))?;
    Ok(margins
        .iter()
        .map(|&m| {
            if !m.is_finite() {
                Outcome::Undecided
            } else if m == 0.0 {
                Outcome::Failure
            } else if m > 0.0 {
                Outcome::Success
            } else {
                Outcome::Undecided
            }
        })
        .collect())
}

fn x_direction(seed: u64, d: usize) -> Vec<f64> {
    unit_vector(&mut rng::stream("phase_diagram/x-direction", seed), d)
}

fn unit_vector(rng: &mut rand_chacha::ChaCha8Rng, d: usize) -> Vec<f64> {
    let v: Vec<f64> = (0..d).map(|_| rng::normal(rng)).collect();
    let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
    v.into_iter().map(|a| a / norm).collect()
}

fn orthogonal_unit_vector(rng: &mut rand_chacha::ChaCha8Rng, to: &[f64]) -> Vec<f64> {
    let v = unit_vector(rng, to.len());
    let dot: f64 = v.iter().zip(to).map(|(a, b)| a * b).sum();
    let w: Vec<f64> = v.iter().zip(to).map(|(a, b)| a - dot * b).collect();
    let norm = w.iter().map(|a| a * a).sum::<f64>().sqrt();
    w.into_iter().map(|a| a / norm).collect()
}
