//! The types an engine reads and writes: an ensemble's weights and data,
//! what to log, and the log. Shared by the engines and by every figure kind,
//! which prepares a `TrainInput` and assembles its figure from `TrainLog`s.

use std::ops::Range;

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

use crate::values::Loss;

/// Weights of E networks of the same shape, layer by layer.
/// Layer l is stored flat, shape (E, out_l, in_l), row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleWeights {
    pub members: usize,
    /// (out, in) of each layer; the last layer has out = 1, or K classes (softmax).
    pub shapes: Vec<(usize, usize)>,
    pub layers: Vec<Vec<f32>>,
}

impl EnsembleWeights {
    /// Member `e`'s weights of layer `l`, row-major (out, in).
    pub fn member_layer(&self, e: usize, l: usize) -> &[f32] {
        let (o, i) = self.shapes[l];
        &self.layers[l][e * o * i..(e + 1) * o * i]
    }

    /// Members `range` alone (a shard of the ensemble), in order.
    pub fn select(&self, range: Range<usize>) -> EnsembleWeights {
        let layers =
            self.shapes.iter().zip(&self.layers).map(|(&(o, i), w)| w[range.start * o * i..range.end * o * i].to_vec());
        EnsembleWeights { members: range.len(), shapes: self.shapes.clone(), layers: layers.collect() }
    }

    /// The members of several ensembles of the same shapes, one after the other.
    fn concat(parts: &[&EnsembleWeights]) -> EnsembleWeights {
        let shapes = parts[0].shapes.clone();
        let layers = (0..shapes.len()).map(|l| parts.iter().flat_map(|p| p.layers[l].iter().copied()).collect());
        EnsembleWeights { members: parts.iter().map(|p| p.members).sum(), shapes, layers: layers.collect() }
    }
}

/// Member `member`'s output f(x) for one input, in plain Rust (for test sets,
/// after training).
pub fn forward(weights: &EnsembleWeights, member: usize, x: &[f32]) -> f64 {
    assert_eq!(weights.shapes.last().map(|s| s.0), Some(1), "forward computes a network of one output");
    let mut h: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let depth = weights.shapes.len();
    for l in 0..depth {
        let (out, inp) = weights.shapes[l];
        let w = weights.member_layer(member, l);
        h = (0..out)
            .map(|o| {
                let pre: f64 = (0..inp).map(|i| w[o * inp + i] as f64 * h[i]).sum();
                if l + 1 < depth {
                    pre.max(0.0)
                } else {
                    pre
                }
            })
            .collect();
    }
    h[0]
}

/// The training set of every member: E copies (or variants) of N points in R^d.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleData {
    pub members: usize,
    pub points: usize,
    pub dim: usize,
    /// (E, N, d), row-major.
    pub x: Vec<f32>,
    /// (E, N), labels in {-1, +1}; with K outputs, class indices 0..K.
    pub y: Vec<f32>,
}

impl EnsembleData {
    /// Members `range` alone (a shard of the ensemble), in order.
    pub fn select(&self, range: Range<usize>) -> EnsembleData {
        let (n, d) = (self.points, self.dim);
        EnsembleData {
            members: range.len(),
            points: n,
            dim: d,
            x: self.x[range.start * n * d..range.end * n * d].to_vec(),
            y: self.y[range.start * n..range.end * n].to_vec(),
        }
    }
}

/// What to record at each logged step besides the margins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordWeights {
    Never,
    /// Only at the last logged step.
    Last,
    /// At every logged step.
    Every,
}

/// What gradient descent minimizes, per point: the loss on the margin
/// m = y f(x), plus (output_penalty / 2) f(x)^2, spectral decoupling
/// (Pezeshki et al. 2020); since y = +-1, f(x)^2 = m^2. Zero is the plain loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    pub loss: Loss,
    pub output_penalty: f32,
}

#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub loss: Loss,
    /// lambda of spectral decoupling (see `Objective`); 0 for the plain loss.
    pub output_penalty: f64,
    pub learning_rate: f64,
    /// Steps at which margins are logged, ascending; the last is the final step.
    pub log_steps: Vec<u64>,
    pub record_weights: RecordWeights,
    /// Points that are evaluated at each logged step but not trained on
    /// (a test set), with the same ensemble layout as the training data.
    pub probe: Option<EnsembleData>,
}

/// Everything one training needs: what an experiment hands to the engine.
#[derive(Debug, Clone)]
pub struct TrainInput {
    pub init: EnsembleWeights,
    pub data: EnsembleData,
    pub cfg: TrainConfig,
}

impl TrainInput {
    /// The training of members `range` alone: every member trains on its own
    /// data, so a shard's log is those members' rows of the whole ensemble's.
    pub fn select(&self, range: Range<usize>) -> TrainInput {
        let mut cfg = self.cfg.clone();
        cfg.probe = cfg.probe.map(|p| p.select(range.clone()));
        TrainInput { init: self.init.select(range.clone()), data: self.data.select(range), cfg }
    }
}

impl TrainConfig {
    pub fn objective(&self) -> Objective {
        Objective { loss: self.loss, output_penalty: self.output_penalty as f32 }
    }

    /// `steps` steps at `learning_rate`, margins logged at `log_points`
    /// log-spaced steps, no weights recorded, no probe points.
    pub fn logged(loss: Loss, learning_rate: f64, steps: u64, log_points: u64) -> TrainConfig {
        TrainConfig {
            loss,
            output_penalty: 0.0,
            learning_rate,
            log_steps: log_schedule(steps, log_points),
            record_weights: RecordWeights::Never,
            probe: None,
        }
    }
}

/// What training produced: margins at each logged step, and weights where asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainLog {
    pub learning_rate: f64,
    pub log_steps: Vec<u64>,
    /// Per logged step: margins m = y f(x), flat (E, N).
    pub margins: Vec<Vec<f32>>,
    /// Per logged step: margins on the probe points, flat (E, P); empty
    /// without probe points.
    pub probe_margins: Vec<Vec<f32>>,
    /// Per logged step: each member's weight norm (all layers, Frobenius).
    pub weight_norms: Vec<Vec<f32>>,
    /// Per logged step where recorded: the weights then.
    pub weights: Vec<(u64, EnsembleWeights)>,
    /// Per member: the first logged step at which a margin was NaN or infinite.
    pub diverged_at: Vec<Option<u64>>,
    /// Per member: points that a kind's own training loop generated at the
    /// end (the GAN's samples, flat (x, y) pairs); empty from the engines.
    #[serde(default)]
    pub samples: Vec<Vec<f32>>,
}

impl TrainLog {
    /// Gradient-flow time t = learning rate x step of each logged step.
    pub fn times(&self) -> Vec<f64> {
        self.log_steps.iter().map(|&s| s as f64 * self.learning_rate).collect()
    }

    /// The log of an ensemble from the logs of its shards, in member order:
    /// every per-member row is the shards' rows one after the other, so the
    /// result is the log of the whole ensemble trained at once.
    pub fn concat(parts: Vec<TrainLog>) -> Result<TrainLog> {
        ensure!(!parts.is_empty(), "no shard logs to merge");
        if parts.len() == 1 {
            return Ok(parts.into_iter().next().expect("one part"));
        }
        let first = &parts[0];
        for p in &parts[1..] {
            ensure!(
                p.learning_rate == first.learning_rate
                    && p.log_steps == first.log_steps
                    && p.margins.len() == first.margins.len()
                    && p.probe_margins.len() == first.probe_margins.len()
                    && p.weight_norms.len() == first.weight_norms.len()
                    && p.weights.len() == first.weights.len()
                    && p.samples.is_empty() == first.samples.is_empty(),
                "shard logs of one job disagree in schedule or contents"
            );
        }
        let rows = |pick: fn(&TrainLog) -> &Vec<Vec<f32>>| -> Vec<Vec<f32>> {
            (0..pick(first).len()).map(|t| parts.iter().flat_map(|p| pick(p)[t].iter().copied()).collect()).collect()
        };
        let weights = (0..first.weights.len())
            .map(|t| {
                let step = first.weights[t].0;
                ensure!(parts.iter().all(|p| p.weights[t].0 == step), "shard logs recorded weights at other steps");
                Ok((step, EnsembleWeights::concat(&parts.iter().map(|p| &p.weights[t].1).collect::<Vec<_>>())))
            })
            .collect::<Result<_>>()?;
        Ok(TrainLog {
            learning_rate: first.learning_rate,
            log_steps: first.log_steps.clone(),
            margins: rows(|p| &p.margins),
            probe_margins: rows(|p| &p.probe_margins),
            weight_norms: rows(|p| &p.weight_norms),
            weights,
            diverged_at: parts.iter().flat_map(|p| p.diverged_at.iter().copied()).collect(),
            samples: parts.iter().flat_map(|p| p.samples.iter().cloned()).collect(),
        })
    }
}

/// `points` log-spaced steps in [1, steps], rounded and deduplicated, after step 0.
pub fn log_schedule(steps: u64, points: u64) -> Vec<u64> {
    let mut out = vec![0];
    let points = points.max(2);
    for i in 0..points {
        let frac = i as f64 / (points - 1) as f64;
        let s = ((steps as f64).ln() * frac).exp().round() as u64;
        let s = s.clamp(1, steps);
        if *out.last().unwrap() != s {
            out.push(s);
        }
    }
    out
}

/// The state of a training between two logged steps.
pub(super) trait Advance {
    fn advance(&mut self, steps: u64) -> Result<()>;
    /// Margins on a data set of the ensemble's layout, flat (E, N).
    fn margins(&self, data: &EnsembleData) -> Result<Vec<f32>>;
    fn weights(&self) -> Result<EnsembleWeights>;
}
