//! Two moons: the follow-up's own test of spectral decoupling (Pezeshki et
//! al. 2020, "Gradient Starvation", arXiv:2011.09468, its Figures 1-3). On
//! sklearn's two moons (300 points, noise 0.1) a two-layer ReLU net trained
//! with cross-entropy leaves its decision boundary close to the data along
//! the second feature; with the penalty on the outputs the boundary moves
//! away from the nearer moon (a larger margin). This kind trains both arms
//! on the same data and init per seed and measures where the boundary sits.
//!
//! The data: per seed its own draw (the follow-up draws one per seed), from
//! the stream ("two-moons/data", seed): the first half of the points on the
//! upper moon (cos t, sin t), label -1 (sklearn's class 0), the rest on the
//! lower moon (1 - cos t, 1 - sin t - 0.5), label +1, t uniform in [0, pi],
//! plus Gaussian noise of standard deviation `noise` on both coordinates.
//!
//! What differs from the follow-up, and why:
//! - Biases. The engine's nets are bias-free; the hidden layer gets biases
//!   through a constant third input c (`bias_input`): unit j computes
//!   relu(w_j1 x1 + w_j2 x2 + w_j3 c), so its bias is b_j = c w_j3. That bias
//!   is initialised like a weight of fan-in 3 (b_j ~ normal(0, c^2 scale^2 / 3),
//!   the weights normal(0, scale^2 / 3) instead of fan-in 2's scale^2 / 2) and
//!   trained like one: a step moves w_j3 by -lr c dL/db_j, so b_j moves by
//!   -lr c^2 dL/db_j (its learning rate is c^2 lr; c = 1 gives the follow-up's,
//!   where every parameter shares one rate). No weight penalty touches it (the
//!   engine has none; the spectral-decoupling penalty is on the outputs f),
//!   but the weight norm the engine logs counts it as b_j / c. There is no
//!   output bias (the follow-up's last layer has one).
//! - Full-batch gradient descent stands in for SGD with momentum (the engine
//!   has neither mini-batches nor momentum); the rate and steps are ours.
//! - The init: normal with variance scale^2 / fan-in in both layers, where
//!   PyTorch's default is uniform with variance 1 / (3 fan-in): scale = 0.577
//!   matches its variance, not its shape.
//! - The penalty. The follow-up adds `penalty` * mean(f^2) to the mean
//!   cross-entropy; the engine's `Objective` adds (lambda / 2) f^2 per point,
//!   averaged over the points, so lambda = 2 `penalty` (the config holds the
//!   follow-up's number, 0.003, and the engine gets 0.006).
//!
//! Measurements, from the weights logged at every logged step (in f64 from
//! the f32 weights, assembly only):
//! - f on a grid (spacing `grid_step`) over the moons' box [-1, 2] x [-0.5, 1]
//!   padded by `grid_padding`; on every grid edge whose ends differ in sign
//!   the zero is found exactly (f is piecewise linear along a segment: the
//!   kinks are where a unit turns on or off, walked in order). The boundary
//!   drawn is the marching-squares contour through those zeros (saddle cells
//!   split by the sign at the centre).
//! - A point's distance from the boundary: the distance to the nearest of
//!   those zeros (the zeros lie on the boundary, at most a grid step apart
//!   along it, so the error is about grid_step^2 / (8 d) at distance d),
//!   negative for a misclassified point, clamped to +-grid_padding (beyond
//!   the box nothing is measured). A moon's distance is the smallest over its
//!   points; the nearer moon's is the smaller of the two (the margin in the
//!   input space).
//! - The margin along the second feature: per point, the distance along x2
//!   (up or down, whichever is nearer) to the boundary on the vertical line
//!   through it, found exactly by the same walk, signed and clamped alike;
//!   the net's is the smallest over the points.
//!
//! Theory: none. The follow-up explains the effect through the linearized
//! (neural tangent kernel) dynamics, where the penalty decouples the kernel's
//! modes; for this data that needs the tangent kernel of a width-500 net on
//! 300 points and its penalized flow, which we have not derived in closed
//! form, so nothing is drawn beside the measurement.

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{job_config, Job, JobId, Kind};
use crate::engine::{EnsembleData, EnsembleWeights, RecordWeights, TrainConfig, TrainInput, TrainLog};
use crate::figure::{palette, FigureBody, Panel, Series};
use crate::rng::{self, random_layers};
use crate::values::{Count, Loss, NonNegative, Outputs, Positive};

/// This kind's source files (see `kinds::files`).
pub const FILES: &[&str] = &[file!()];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TwoMoons {
    /// Training points of both moons together (the upper moon gets the
    /// first half, rounded down, as in sklearn).
    pub points: Count,
    /// Standard deviation of the Gaussian noise on each coordinate.
    pub noise: NonNegative,
    /// The constant third input c through which the hidden units get biases.
    pub bias_input: Positive,
    pub hidden_width: Count,
    /// Init: weights ~ normal(0, scale^2 / fan_in) in both layers.
    pub init_scale: Positive,
    /// The follow-up's coefficient of mean(f^2) (the engine's lambda is twice it).
    pub penalty: Positive,
    pub learning_rate: Positive,
    pub steps: Count,
    /// Logged steps (log-spaced); the weights are recorded at each.
    pub log_points: Count,
    pub seed_count: Count,
    /// Assembly only: the spacing of the grid on which the boundary is found.
    pub grid_step: Positive,
    /// Assembly only: how far the grid reaches beyond the moons' box, and the
    /// largest distance measured.
    pub grid_padding: Positive,
}

/// The two trainings: without and with the penalty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arm {
    Plain,
    Penalized,
}

const ARMS: [Arm; 2] = [Arm::Plain, Arm::Penalized];

impl Arm {
    fn name(self) -> &'static str {
        match self {
            Arm::Plain => "plain",
            Arm::Penalized => "penalized",
        }
    }

    /// What the legend says.
    fn label(self) -> &'static str {
        match self {
            Arm::Plain => "cross-entropy alone",
            Arm::Penalized => "with the penalty",
        }
    }

    fn color(self) -> &'static str {
        match self {
            Arm::Plain => palette::BLACK,
            Arm::Penalized => palette::VERMILLION,
        }
    }
}

/// The moons' noiseless box: x1 in [-1, 2], x2 in [-0.5, 1].
const BOX: [f64; 4] = [-1.0, 2.0, -0.5, 1.0];
const UPPER: &str = "upper moon (label -1)";
const LOWER: &str = "lower moon (label +1)";

fn boundary_series(arm: Arm) -> String {
    format!("decision boundary, {}, first seed", arm.name())
}
fn nearer_series(arm: Arm) -> String {
    format!("{}: distance from the nearer moon", arm.name())
}
fn vertical_series(arm: Arm) -> String {
    format!("{}: margin along x2", arm.name())
}
const PER_SEED: &str = "distance from the nearer moon at the end, per seed";
const DIAGONAL: &str = "equal distances";

fn nearer_scalar(arm: Arm) -> String {
    format!("{}: distance from the nearer moon at the end, mean over seeds", arm.name())
}
fn moon_scalar(arm: Arm, upper: bool) -> String {
    let moon = if upper { "upper" } else { "lower" };
    format!("{}: distance from the {moon} moon at the end, mean over seeds", arm.name())
}
fn vertical_scalar(arm: Arm) -> String {
    format!("{}: margin along x2 at the end, mean over seeds", arm.name())
}
fn vertical_samples(arm: Arm) -> String {
    format!("{}: margin along x2 at the end, per seed", arm.name())
}
const GAIN_SCALAR: &str = "distance from the nearer moon at the end, penalized minus plain, mean over seeds";
const GAIN_SAMPLES: &str = "distance from the nearer moon at the end, penalized minus plain, per seed";
/// The counterfactual of `GAIN_SAMPLES`: the two arms swapped.
const SWAPPED_SAMPLES: &str = "distance from the nearer moon at the end, plain minus penalized, per seed";
const ACCURACY: &str = "training accuracy at the end, both arms, lowest over seeds";

/// One member's net in f64: hidden rows (w1, w2, w3) and output weights.
struct Net {
    w: Vec<[f64; 3]>,
    v: Vec<f64>,
    c: f64,
}

impl Net {
    fn of(weights: &EnsembleWeights, member: usize, c: f64) -> Net {
        let w = weights.member_layer(member, 0).chunks(3).map(|r| [r[0] as f64, r[1] as f64, r[2] as f64]).collect();
        let v = weights.member_layer(member, 1).iter().map(|&v| v as f64).collect();
        Net { w, v, c }
    }

    fn f(&self, x: f64, y: f64) -> f64 {
        self.w.iter().zip(&self.v).map(|(w, v)| v * (w[0] * x + w[1] * y + w[2] * self.c).max(0.0)).sum()
    }

    /// f at every point of a row x2 = y, x1 = xs.
    fn row(&self, y: f64, xs: &[f64], out: &mut [f64]) {
        out.iter_mut().for_each(|o| *o = 0.0);
        for (w, &v) in self.w.iter().zip(&self.v) {
            let a = w[1] * y + w[2] * self.c;
            for (o, &x) in out.iter_mut().zip(xs) {
                let pre = w[0] * x + a;
                // Not f64::max, whose NaN rule keeps the loop from vectorizing.
                *o += v * if pre > 0.0 { pre } else { 0.0 };
            }
        }
    }

    /// The smallest s in (0, reach] at which the sign of f (f > 0 or not)
    /// along (x, y) + s (dx, dy) differs from its sign at s = 0: f is linear
    /// between the points where a unit turns on or off, walked in order.
    fn first_zero(&self, (x, y): (f64, f64), (dx, dy): (f64, f64), reach: f64) -> Option<f64> {
        if reach <= 0.0 {
            return None;
        }
        let mut f = 0.0;
        let mut slope = 0.0;
        let mut kinks: Vec<(f64, f64)> = Vec::new();
        for (w, &v) in self.w.iter().zip(&self.v) {
            let p = w[0] * x + w[1] * y + w[2] * self.c;
            let q = w[0] * dx + w[1] * dy;
            if p > 0.0 || (p == 0.0 && q > 0.0) {
                f += v * p.max(0.0);
                slope += v * q;
            }
            if q != 0.0 {
                let s = -p / q;
                if s > 0.0 && s <= reach {
                    // Crossing its kink, the unit turns on (q > 0) or off (q < 0).
                    kinks.push((s, v * q.signum() * q));
                }
            }
        }
        let positive = f > 0.0;
        kinks.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut at = 0.0;
        for end in kinks.iter().map(|k| Some(*k)).chain(std::iter::once(None)) {
            let s_end = end.map_or(reach, |k| k.0);
            let f_end = f + slope * (s_end - at);
            if (f_end > 0.0) != positive {
                // The zero of the linear piece (f_end <= 0 < f, or f <= 0 < f_end).
                return Some(if slope == 0.0 { s_end } else { (at - f / slope).clamp(at, s_end) });
            }
            f = f_end;
            at = s_end;
            if let Some((_, change)) = end {
                slope += change;
            }
        }
        None
    }
}

/// The grid over the padded box.
struct Grid {
    xs: Vec<f64>,
    ys: Vec<f64>,
}

/// The boundary of one net: the exact zeros on the grid's edges, and the
/// contour pieces through them.
struct Boundary {
    zeros: Vec<(f64, f64)>,
    /// Per edge (horizontal 2 k, vertical 2 k + 1, k = j nx + i), its zero.
    edge_zero: Vec<Option<(f64, f64)>>,
    values: Vec<f64>,
}

impl Grid {
    fn new(step: f64, padding: f64) -> Grid {
        let axis = |lo: f64, hi: f64| -> Vec<f64> {
            let (lo, hi) = (lo - padding, hi + padding);
            let n = ((hi - lo) / step).ceil() as usize;
            (0..=n).map(|i| lo + (hi - lo) * i as f64 / n as f64).collect()
        };
        Grid { xs: axis(BOX[0], BOX[1]), ys: axis(BOX[2], BOX[3]) }
    }

    fn boundary(&self, net: &Net) -> Boundary {
        let (nx, ny) = (self.xs.len(), self.ys.len());
        let mut values = vec![0.0; nx * ny];
        for (j, &y) in self.ys.iter().enumerate() {
            net.row(y, &self.xs, &mut values[j * nx..(j + 1) * nx]);
        }
        let mut edge_zero = vec![None; 2 * nx * ny];
        let mut zeros = Vec::new();
        let mut refine = |from: (f64, f64), to: (f64, f64), fa: f64, fb: f64| -> (f64, f64) {
            let (dx, dy) = (to.0 - from.0, to.1 - from.1);
            let len = dx.hypot(dy);
            let s = net
                .first_zero(from, (dx / len, dy / len), len)
                // The f64 walk and the grid disagree on a sign only at a zero on a corner: interpolate there.
                .unwrap_or(len * fa / (fa - fb));
            let z = (from.0 + dx * s / len, from.1 + dy * s / len);
            zeros.push(z);
            z
        };
        for j in 0..ny {
            for i in 0..nx {
                let k = j * nx + i;
                let fa = values[k];
                if i + 1 < nx && (fa > 0.0) != (values[k + 1] > 0.0) {
                    edge_zero[2 * k] =
                        Some(refine((self.xs[i], self.ys[j]), (self.xs[i + 1], self.ys[j]), fa, values[k + 1]));
                }
                if j + 1 < ny && (fa > 0.0) != (values[k + nx] > 0.0) {
                    edge_zero[2 * k + 1] =
                        Some(refine((self.xs[i], self.ys[j]), (self.xs[i], self.ys[j + 1]), fa, values[k + nx]));
                }
            }
        }
        Boundary { zeros, edge_zero, values }
    }

    /// The contour pieces (marching squares), longest first.
    fn contour(&self, b: &Boundary, net: &Net) -> Vec<Vec<(f64, f64)>> {
        let (nx, ny) = (self.xs.len(), self.ys.len());
        let mut segments: Vec<[usize; 2]> = Vec::new();
        for j in 0..ny.saturating_sub(1) {
            for i in 0..nx.saturating_sub(1) {
                let k = j * nx + i;
                let (bottom, top, left, right) = (2 * k, 2 * (k + nx), 2 * k + 1, 2 * (k + 1) + 1);
                let crossed: Vec<usize> =
                    [bottom, right, top, left].into_iter().filter(|&e| b.edge_zero[e].is_some()).collect();
                match crossed.len() {
                    2 => segments.push([crossed[0], crossed[1]]),
                    4 => {
                        let centre = net.f((self.xs[i] + self.xs[i + 1]) / 2.0, (self.ys[j] + self.ys[j + 1]) / 2.0);
                        if (centre > 0.0) == (b.values[k] > 0.0) {
                            // The corner (i, j) joins (i + 1, j + 1): cut off the other two.
                            segments.extend([[bottom, right], [left, top]]);
                        } else {
                            segments.extend([[bottom, left], [right, top]]);
                        }
                    }
                    _ => {}
                }
            }
        }
        // Each edge belongs to at most two segments: chain them.
        let mut at_edge: Vec<Vec<usize>> = vec![Vec::new(); b.edge_zero.len()];
        for (s, seg) in segments.iter().enumerate() {
            for &e in seg {
                at_edge[e].push(s);
            }
        }
        let mut used = vec![false; segments.len()];
        let mut pieces = Vec::new();
        for start in 0..segments.len() {
            if used[start] {
                continue;
            }
            used[start] = true;
            let mut chain: std::collections::VecDeque<usize> = segments[start].into_iter().collect();
            for forward in [true, false] {
                loop {
                    let end = if forward { *chain.back().unwrap() } else { *chain.front().unwrap() };
                    let Some(&next) = at_edge[end].iter().find(|&&s| !used[s]) else { break };
                    used[next] = true;
                    let other = if segments[next][0] == end { segments[next][1] } else { segments[next][0] };
                    if forward {
                        chain.push_back(other);
                    } else {
                        chain.push_front(other);
                    }
                }
            }
            pieces.push(chain.into_iter().map(|e| b.edge_zero[e].expect("a crossed edge")).collect::<Vec<_>>());
        }
        pieces.sort_by_key(|p: &Vec<(f64, f64)>| std::cmp::Reverse(p.len()));
        pieces
    }
}

/// A net's measurements at one logged step.
#[derive(Debug, Clone, Copy)]
struct Measures {
    upper: f64,
    lower: f64,
    vertical: f64,
    accuracy: f64,
}

impl Measures {
    fn nearer(self) -> f64 {
        self.upper.min(self.lower)
    }
}

/// The points of one seed: (x1, x2, label).
type Moons = Vec<(f64, f64, f64)>;

impl TwoMoons {
    fn moons(&self, seed: u64) -> Moons {
        let mut r = rng::stream("two-moons/data", seed);
        let n = self.points.usize();
        let upper = n / 2;
        (0..n)
            .map(|i| {
                let t = rng::uniform(&mut r, 0.0, std::f64::consts::PI);
                let (x, y, label) =
                    if i < upper { (t.cos(), t.sin(), -1.0) } else { (1.0 - t.cos(), 1.0 - t.sin() - 0.5, 1.0) };
                let noise = self.noise.get();
                (x + noise * rng::normal(&mut r), y + noise * rng::normal(&mut r), label)
            })
            .collect()
    }

    fn engine_penalty(&self, arm: Arm) -> f64 {
        match arm {
            Arm::Plain => 0.0,
            Arm::Penalized => 2.0 * self.penalty.get(),
        }
    }

    fn measure(&self, grid: &Grid, net: &Net, moons: &Moons) -> (Measures, Boundary) {
        let b = grid.boundary(net);
        let cap = self.grid_padding.get();
        let (mut upper, mut lower, mut vertical) = (cap, cap, cap);
        let mut correct = 0usize;
        for &(x, y, label) in moons {
            let f = net.f(x, y);
            let sign = if label * f > 0.0 { 1.0 } else { -1.0 };
            correct += usize::from(sign > 0.0);
            let d2 =
                b.zeros.iter().map(|&(zx, zy)| (zx - x) * (zx - x) + (zy - y) * (zy - y)).fold(cap * cap, f64::min);
            let d = d2.sqrt();
            let slot = if label < 0.0 { &mut upper } else { &mut lower };
            *slot = slot.min(sign * d);
            // Along x2 the distance is at least the Euclidean one, which d
            // overestimates by less than a grid step: only a point nearer
            // than that can lower the smallest.
            // A misclassified point's (negative) one can always be lower.
            if sign < 0.0 || (vertical > 0.0 && d - self.grid_step.get() < vertical) {
                let reach = if sign > 0.0 { vertical } else { cap };
                let up = net.first_zero((x, y), (0.0, 1.0), reach).unwrap_or(reach);
                let down = net.first_zero((x, y), (0.0, -1.0), reach).unwrap_or(reach);
                vertical = vertical.min(sign * up.min(down));
            }
        }
        let accuracy = correct as f64 / moons.len() as f64;
        (Measures { upper, lower, vertical, accuracy }, b)
    }
}

impl Kind for TwoMoons {
    fn seeds(&self) -> Vec<u64> {
        (0..self.seed_count.get()).collect()
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.points.get() < 4 {
            p.push("points: expected at least 4 (two per moon)".into());
        }
        if self.grid_step.get() >= self.grid_padding.get() {
            p.push("grid_step: expected a step below grid_padding".into());
        }
        p
    }

    fn outputs(&self) -> Outputs {
        let mut out = Outputs::default();
        out.series.extend([UPPER.to_string(), LOWER.to_string(), PER_SEED.to_string(), DIAGONAL.to_string()]);
        for arm in ARMS {
            // The longest piece of each boundary; further pieces (islands), if
            // any, follow as "<name>, piece k", which the config cannot foresee.
            out.series.extend([boundary_series(arm), nearer_series(arm), vertical_series(arm)]);
            out.scalars.extend([
                nearer_scalar(arm),
                moon_scalar(arm, true),
                moon_scalar(arm, false),
                vertical_scalar(arm),
            ]);
            out.samples.push(vertical_samples(arm));
        }
        out.scalars.extend([GAIN_SCALAR.to_string(), ACCURACY.to_string()]);
        out.samples.extend([GAIN_SAMPLES.to_string(), SWAPPED_SAMPLES.to_string()]);
        out
    }

    fn jobs(&self) -> Vec<Job> {
        Job::numbered(ARMS.iter().map(|&arm| {
            let mut config = job_config(self, &[("grid_step", json!(null)), ("grid_padding", json!(null))]);
            config["penalty"] = json!(self.engine_penalty(arm));
            Job { id: JobId(0), name: arm.name().into(), config, seeds: self.seeds(), member_seeds: self.seeds() }
        }))
    }

    fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        let arm = *ARMS.get(job.id.0).with_context(|| format!("two_moons has no job {:?}", job.id))?;
        let width = self.hidden_width.usize();
        let shapes = vec![(width, 3), (1, width)];
        let (mut x, mut y) = (Vec::new(), Vec::new());
        let mut layers = vec![Vec::new(); 2];
        for &seed in &job.member_seeds {
            for (x1, x2, label) in self.moons(seed) {
                x.extend([x1 as f32, x2 as f32, self.bias_input.get() as f32]);
                y.push(label as f32);
            }
            for (l, w) in random_layers("two-moons/init", seed, &shapes, self.init_scale.get()).into_iter().enumerate()
            {
                layers[l].extend(w);
            }
        }
        let members = job.members();
        let cfg = TrainConfig {
            output_penalty: self.engine_penalty(arm),
            record_weights: RecordWeights::Every,
            ..TrainConfig::logged(Loss::CrossEntropy, self.learning_rate.get(), self.steps.get(), self.log_points.get())
        };
        Ok(TrainInput {
            init: EnsembleWeights { members, shapes, layers },
            data: EnsembleData { members, points: self.points.usize(), dim: 3, x, y },
            cfg,
        })
    }

    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        ensure!(logs.len() == ARMS.len(), "two_moons expects {} job logs, got {}", ARMS.len(), logs.len());
        let seeds = self.seeds();
        let grid = Grid::new(self.grid_step.get(), self.grid_padding.get());
        let c = self.bias_input.get();
        let pad = self.grid_padding.get();
        let mut body = FigureBody {
            panels: vec![
                Panel::new("the data and the decision boundaries (first seed, end)", "x1", "x2")
                    .x_range(BOX[0] - pad, BOX[1] + pad)
                    .y_range(BOX[2] - pad, BOX[3] + pad)
                    .equal_aspect(),
                Panel::over_log_time(
                    "distance of the boundary from the nearer moon",
                    "distance (<0: a point misclassified)",
                ),
                Panel::over_log_time("margin along the second feature x2", "distance along x2"),
                Panel::new(
                    "per seed, at the end: distance from the nearer moon",
                    "cross-entropy alone",
                    "with the penalty",
                ),
            ],
            ..Default::default()
        };
        let all_moons: Vec<Moons> = seeds.iter().map(|&s| self.moons(s)).collect();
        let first = &all_moons[0];
        for (name, label, color) in [(UPPER, -1.0, palette::SKY_BLUE), (LOWER, 1.0, palette::ORANGE)] {
            let (xs, ys) = first.iter().filter(|p| p.2 == label).map(|p| (p.0, p.1)).unzip();
            body.series.push(Series::points(name, 0, color, xs, ys));
        }
        // Per arm, per seed: the measurements at each logged step.
        let mut ends: Vec<Vec<Measures>> = Vec::new();
        let mut lowest_accuracy = f64::INFINITY;
        for (&arm, log) in ARMS.iter().zip(logs) {
            ensure!(log.weights.len() == log.log_steps.len(), "{}: weights not logged at every step", arm.name());
            let times = log.times();
            let skip = crate::stats::leading_zero_times(&times);
            let mut per_seed: Vec<Vec<Measures>> = Vec::new();
            for (e, moons) in all_moons.iter().enumerate() {
                let mut curve = Vec::new();
                for (t, (_, weights)) in log.weights.iter().enumerate() {
                    let net = Net::of(weights, e, c);
                    let (m, b) = self.measure(&grid, &net, moons);
                    if e == 0 && t + 1 == log.weights.len() {
                        for (k, piece) in grid.contour(&b, &net).into_iter().enumerate() {
                            let name = if k == 0 {
                                boundary_series(arm)
                            } else {
                                format!("{}, piece {}", boundary_series(arm), k + 1)
                            };
                            let (xs, ys) = piece.into_iter().unzip();
                            body.series.push(
                                Series::line(name, 0, crate::figure::Source::Measured, arm.color(), xs, ys)
                                    .legend_label(arm.label())
                                    .in_legend(k == 0),
                            );
                        }
                    }
                    curve.push(m);
                }
                per_seed.push(curve);
            }
            for (name, panel, pick) in [
                (nearer_series(arm), 1, Measures::nearer as fn(Measures) -> f64),
                (vertical_series(arm), 2, |m: Measures| m.vertical),
            ] {
                let curves: Vec<Vec<f64>> = per_seed.iter().map(|c| c.iter().map(|&m| pick(m)).collect()).collect();
                body.series.push(
                    Series::mean_over_seeds(name, panel, arm.color(), times.clone(), &curves)
                        .skipping(skip)
                        .legend_label(arm.label()),
                );
            }
            let end: Vec<Measures> = per_seed.iter().map(|c| *c.last().expect("logged steps")).collect();
            let mean = |pick: &dyn Fn(&Measures) -> f64| end.iter().map(pick).sum::<f64>() / end.len() as f64;
            body.scalars.insert(nearer_scalar(arm), mean(&|m| m.nearer()));
            body.scalars.insert(moon_scalar(arm, true), mean(&|m| m.upper));
            body.scalars.insert(moon_scalar(arm, false), mean(&|m| m.lower));
            body.scalars.insert(vertical_scalar(arm), mean(&|m| m.vertical));
            body.samples.insert(vertical_samples(arm), end.iter().map(|m| m.vertical).collect());
            lowest_accuracy = end.iter().map(|m| m.accuracy).fold(lowest_accuracy, f64::min);
            ends.push(end);
        }
        let (plain, penalized): (Vec<f64>, Vec<f64>) =
            ends[0].iter().zip(&ends[1]).map(|(a, b)| (a.nearer(), b.nearer())).unzip();
        let gain: Vec<f64> = penalized.iter().zip(&plain).map(|(b, a)| b - a).collect();
        body.scalars.insert(GAIN_SCALAR.into(), gain.iter().sum::<f64>() / gain.len() as f64);
        body.scalars.insert(ACCURACY.into(), lowest_accuracy);
        body.samples.insert(SWAPPED_SAMPLES.into(), gain.iter().map(|g| -g).collect());
        body.samples.insert(GAIN_SAMPLES.into(), gain);
        let all = plain.iter().chain(&penalized);
        let lo = all.clone().copied().fold(f64::INFINITY, f64::min).min(0.0);
        let hi = all.copied().fold(f64::NEG_INFINITY, f64::max);
        body.series.push(Series::line(
            DIAGONAL,
            3,
            crate::figure::Source::Measured,
            palette::GREY,
            vec![lo, hi],
            vec![lo, hi],
        ));
        body.series.push(Series::points(PER_SEED, 3, palette::BLUE, plain, penalized));
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_net(seed: u64, width: usize) -> Net {
        let mut r = rng::stream("two-moons/test-net", seed);
        let w = (0..width).map(|_| [rng::normal(&mut r), rng::normal(&mut r), rng::normal(&mut r)]).collect();
        let v = (0..width).map(|_| rng::normal(&mut r) / width as f64).collect();
        Net { w, v, c: 1.0 }
    }

    /// The walk's zero against a dense scan of the same segment.
    #[test]
    fn the_first_zero_is_where_a_dense_scan_finds_the_sign_change() {
        for seed in 0..20 {
            let net = random_net(seed, 40);
            let mut r = rng::stream("two-moons/test-point", seed);
            let p = (rng::uniform(&mut r, -1.0, 2.0), rng::uniform(&mut r, -0.5, 1.0));
            let angle = rng::uniform(&mut r, 0.0, 6.3);
            let d = (angle.cos(), angle.sin());
            let walked = net.first_zero(p, d, 1.0);
            let positive = net.f(p.0, p.1) > 0.0;
            let n = 200_000;
            let scanned =
                (1..=n).map(|k| k as f64 / n as f64).find(|&s| (net.f(p.0 + s * d.0, p.1 + s * d.1) > 0.0) != positive);
            match (walked, scanned) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-4, "seed {seed}: walked {a}, scanned {b}"),
                (None, None) => {}
                other => panic!("seed {seed}: {other:?}"),
            }
        }
    }

    /// A point's distance from the grid's zeros against the nearest zero
    /// over 3600 directions, each found by the walk.
    #[test]
    fn the_distance_from_the_grid_zeros_is_the_distance_from_the_boundary() {
        let grid = Grid::new(0.04, 0.5);
        for seed in 0..10 {
            let net = random_net(seed, 40);
            let b = grid.boundary(&net);
            let mut r = rng::stream("two-moons/test-point", seed);
            let (x, y) = (rng::uniform(&mut r, -1.0, 2.0), rng::uniform(&mut r, -0.5, 1.0));
            let from_grid =
                b.zeros.iter().map(|&(zx, zy)| (zx - x).hypot(zy - y)).fold(f64::INFINITY, f64::min).min(0.5);
            let exact = (0..3600)
                .filter_map(|k| {
                    let a = k as f64 * std::f64::consts::TAU / 3600.0;
                    net.first_zero((x, y), (a.cos(), a.sin()), 0.5)
                })
                .fold(0.5, f64::min);
            // The zeros are at most a grid step apart along the boundary.
            assert!(
                from_grid >= exact - 1e-3 && from_grid <= exact + 0.04f64.powi(2) / (8.0 * exact.max(0.01)) + 1e-3,
                "seed {seed}: grid {from_grid}, exact {exact}"
            );
        }
    }
}
