//! The training engine: full-batch gradient descent on an ensemble of
//! bias-free ReLU MLPs, run as one batched Candle program.
//!
//! Every tensor carries a leading ensemble axis E, so one Candle op advances
//! all members at once: the per-op overhead, which dominates these tiny
//! networks, is paid once per step instead of once per network.
//!
//! The backward pass is derived by hand rather than taken from Candle's
//! autograd, for two reasons: it skips the gradient with respect to the data,
//! and it uses relu'(0) = 0. Candle's autograd uses relu'(0) = 1, which would
//! wake the exactly-zero units of an aligned initialisation and break the
//! independence of its modes. `tests/engine.rs` checks these gradients
//! against Candle's autograd wherever no pre-activation is exactly zero.

use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::fused;
use crate::spec::Loss;

/// Weights of E networks of the same shape, layer by layer.
/// Layer l is stored flat, shape (E, out_l, in_l), row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleWeights {
    pub members: usize,
    /// (out, in) of each layer; the last layer has out = 1.
    pub shapes: Vec<(usize, usize)>,
    pub layers: Vec<Vec<f32>>,
}

impl EnsembleWeights {
    /// Member `e`'s weights of layer `l`, row-major (out, in).
    pub fn member_layer(&self, e: usize, l: usize) -> &[f32] {
        let (o, i) = self.shapes[l];
        &self.layers[l][e * o * i..(e + 1) * o * i]
    }
}

/// Member `member`'s output f(x) for one input, in plain Rust (for test sets,
/// after training).
pub fn forward(weights: &EnsembleWeights, member: usize, x: &[f32]) -> f64 {
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
    /// (E, N), labels in {-1, +1}.
    pub y: Vec<f32>,
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

#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub loss: Loss,
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

impl TrainConfig {
    /// `steps` steps at `learning_rate`, margins logged at `log_points`
    /// log-spaced steps, no weights recorded, no probe points.
    pub fn logged(loss: Loss, learning_rate: f64, steps: u64, log_points: u64) -> TrainConfig {
        TrainConfig {
            loss,
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
}

impl TrainLog {
    /// Gradient-flow time t = learning rate x step of each logged step.
    pub fn times(&self) -> Vec<f64> {
        self.log_steps.iter().map(|&s| s as f64 * self.learning_rate).collect()
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

struct Net {
    weights: Vec<Tensor>,
}

/// Which implementation advances the ensemble. Both compute the same
/// arithmetic (in different summation orders): `Batched` as a batched Candle
/// program with the hand-derived backward pass, checked against Candle's
/// autograd; `Fused` as one Candle custom op per block of steps, checked
/// against `Batched` (tests/engine.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Fused,
    Batched,
}

/// Trains every member of the ensemble by full-batch gradient descent, with
/// the faster engine for its size (`choose_engine`).
pub fn train(init: &EnsembleWeights, data: &EnsembleData, cfg: &TrainConfig) -> Result<TrainLog> {
    train_with(choose_engine(&init.shapes, data.points), init, data, cfg)
}

/// The fused engine, except for large dense layers, where the batched
/// program's gemm (register-tiled, FMA) beats its loops: measured with
/// `cargo xtask bench` on 2 cores, fused was 1.1x-15x faster up to ~200k
/// multiply-adds per network-step (every figure but one), and 2.6x slower
/// on the digits net (1.5M).
pub fn choose_engine(shapes: &[(usize, usize)], points: usize) -> Engine {
    let work: usize = shapes.iter().map(|(o, i)| 3 * points * o * i).sum();
    if work > 500_000 {
        Engine::Batched
    } else {
        Engine::Fused
    }
}

/// The state of a training between two logged steps.
trait Advance {
    fn advance(&mut self, steps: u64) -> Result<()>;
    /// Margins on a data set of the ensemble's layout, flat (E, N).
    fn margins(&self, data: &EnsembleData) -> Result<Vec<f32>>;
    fn weights(&self) -> Result<EnsembleWeights>;
}

pub fn train_with(engine: Engine, init: &EnsembleWeights, data: &EnsembleData, cfg: &TrainConfig) -> Result<TrainLog> {
    ensure!(
        init.members == data.members,
        "ensemble size mismatch: {} weights, {} data sets",
        init.members,
        data.members
    );
    ensure!(
        init.shapes[0].1 == data.dim,
        "input size mismatch: first layer takes {}, data has {}",
        init.shapes[0].1,
        data.dim
    );
    ensure!(init.shapes.last().unwrap().0 == 1, "the last layer must have one output");
    ensure!(cfg.log_steps.windows(2).all(|w| w[0] < w[1]), "log steps must ascend");
    if let Some(p) = &cfg.probe {
        ensure!(
            p.members == data.members && p.dim == data.dim,
            "probe points must have the training data's ensemble size and dimension"
        );
    }
    let mut state: Box<dyn Advance + '_> = match engine {
        Engine::Fused => Box::new(FusedState::new(init, data, cfg)?),
        Engine::Batched => Box::new(BatchedState::new(init, data, cfg)?),
    };
    let last_step = *cfg.log_steps.last().context("empty log schedule")?;
    let (e, n) = (data.members, data.points);
    let mut log = TrainLog {
        learning_rate: cfg.learning_rate,
        log_steps: cfg.log_steps.clone(),
        margins: Vec::with_capacity(cfg.log_steps.len()),
        weight_norms: Vec::with_capacity(cfg.log_steps.len()),
        probe_margins: Vec::new(),
        weights: Vec::new(),
        diverged_at: vec![None; e],
    };
    let mut step = 0;
    for &target in &cfg.log_steps {
        state.advance(target - step)?;
        step = target;
        let margins = state.margins(data)?;
        for (member, slot) in log.diverged_at.iter_mut().enumerate() {
            if slot.is_none() && margins[member * n..(member + 1) * n].iter().any(|m| !m.is_finite()) {
                *slot = Some(step);
            }
        }
        log.margins.push(margins);
        let weights = state.weights()?;
        log.weight_norms.push((0..e).map(|m| weights_norm(&weights, m)).collect());
        if let Some(probe) = &cfg.probe {
            log.probe_margins.push(state.margins(probe)?);
        }
        let record = match cfg.record_weights {
            RecordWeights::Never => false,
            RecordWeights::Last => step == last_step,
            RecordWeights::Every => true,
        };
        if record {
            log.weights.push((step, weights));
        }
    }
    Ok(log)
}

/// Member `m`'s weight norm over all layers (Frobenius).
fn weights_norm(w: &EnsembleWeights, m: usize) -> f32 {
    (0..w.shapes.len()).flat_map(|l| w.member_layer(m, l)).map(|&v| v as f64 * v as f64).sum::<f64>().sqrt() as f32
}

/// Parameters packed (member, parameters) in one tensor, advanced by
/// `fused::Steps`.
struct FusedState<'a> {
    params: Tensor,
    like: &'a EnsembleWeights,
    data: &'a EnsembleData,
    cfg: &'a TrainConfig,
}

impl<'a> FusedState<'a> {
    fn new(init: &'a EnsembleWeights, data: &'a EnsembleData, cfg: &'a TrainConfig) -> Result<Self> {
        let packed = fused::pack(init);
        let len = packed.len();
        Ok(FusedState { params: Tensor::from_vec(packed, len, &Device::Cpu)?, like: init, data, cfg })
    }
}

impl Advance for FusedState<'_> {
    fn advance(&mut self, steps: u64) -> Result<()> {
        if steps > 0 {
            let op = fused::Steps {
                shapes: &self.like.shapes,
                data: self.data,
                loss: self.cfg.loss,
                learning_rate: self.cfg.learning_rate as f32,
                steps,
            };
            self.params.inplace_op1(&op)?;
        }
        Ok(())
    }
    fn margins(&self, data: &EnsembleData) -> Result<Vec<f32>> {
        let m = self.params.apply_op1_no_bwd(&fused::Margins { shapes: &self.like.shapes, data })?;
        Ok(m.flatten_all()?.to_vec1::<f32>()?)
    }
    fn weights(&self) -> Result<EnsembleWeights> {
        Ok(fused::unpack(&self.params.to_vec1::<f32>()?, self.like))
    }
}

/// One tensor (E, out, in) per layer, advanced by batched Candle ops.
struct BatchedState<'a> {
    net: Net,
    x: Tensor,
    y: Tensor,
    like: &'a EnsembleWeights,
    cfg: &'a TrainConfig,
    points: usize,
}

impl<'a> BatchedState<'a> {
    fn new(init: &'a EnsembleWeights, data: &'a EnsembleData, cfg: &'a TrainConfig) -> Result<Self> {
        let dev = Device::Cpu;
        let e = data.members;
        let net = Net {
            weights: init
                .shapes
                .iter()
                .zip(&init.layers)
                .map(|(&(o, i), w)| Tensor::from_vec(w.clone(), (e, o, i), &dev))
                .collect::<candle_core::Result<_>>()?,
        };
        let (x, y) = tensors(data)?;
        Ok(BatchedState { net, x, y, like: init, cfg, points: data.points })
    }
}

fn tensors(data: &EnsembleData) -> Result<(Tensor, Tensor)> {
    let dev = Device::Cpu;
    let (e, n, d) = (data.members, data.points, data.dim);
    Ok((Tensor::from_vec(data.x.clone(), (e, n, d), &dev)?, Tensor::from_vec(data.y.clone(), (e, n), &dev)?))
}

impl Advance for BatchedState<'_> {
    fn advance(&mut self, steps: u64) -> Result<()> {
        for _ in 0..steps {
            let pass = self.net.forward(&self.x, &self.y)?;
            let grads = self.net.backward(&pass, &self.y, self.cfg.loss, self.points)?;
            for (w, g) in self.net.weights.iter_mut().zip(grads) {
                *w = (&*w - g.affine(self.cfg.learning_rate, 0.0)?)?;
            }
        }
        Ok(())
    }
    fn margins(&self, data: &EnsembleData) -> Result<Vec<f32>> {
        let (x, y) = tensors(data)?;
        Ok(self.net.forward(&x, &y)?.margins.flatten_all()?.to_vec1::<f32>()?)
    }
    fn weights(&self) -> Result<EnsembleWeights> {
        self.net.snapshot(self.like)
    }
}

struct Pass {
    /// Activations entering each layer: x, then relu(pre) of each hidden layer.
    inputs: Vec<Tensor>,
    /// 1 where a hidden pre-activation is > 0, else 0 (relu'(0) = 0).
    masks: Vec<Tensor>,
    margins: Tensor,
}

impl Net {
    fn forward(&self, x: &Tensor, y: &Tensor) -> Result<Pass> {
        let depth = self.weights.len();
        let mut inputs = vec![x.clone()];
        let mut masks = Vec::with_capacity(depth - 1);
        for w in &self.weights[..depth - 1] {
            let pre = inputs.last().unwrap().matmul(&w.t()?)?;
            let mask = pre.gt(0.0)?.to_dtype(DType::F32)?;
            inputs.push((&pre * &mask)?);
            masks.push(mask);
        }
        let f = inputs.last().unwrap().matmul(&self.weights[depth - 1].t()?)?.squeeze(2)?;
        let margins = (f * y)?;
        Ok(Pass { inputs, masks, margins })
    }

    /// Gradients of the mean loss with respect to each layer's weights.
    fn backward(&self, pass: &Pass, y: &Tensor, loss: Loss, n: usize) -> Result<Vec<Tensor>> {
        // dl/dm: -sigma(-m) for cross-entropy (stable for any m), -1[m < 1] for hinge.
        let dl_dm = match loss {
            Loss::CrossEntropy => candle_nn::ops::sigmoid(&pass.margins.neg()?)?.neg()?,
            Loss::Hinge => pass.margins.lt(1.0)?.to_dtype(DType::F32)?.neg()?,
        };
        // dL/df per point, as a column (E, N, 1).
        let mut delta = (dl_dm * y)?.affine(1.0 / n as f64, 0.0)?.unsqueeze(2)?;
        let depth = self.weights.len();
        let mut grads = vec![None; depth];
        for l in (0..depth).rev() {
            grads[l] = Some(delta.t()?.matmul(&pass.inputs[l])?);
            if l > 0 {
                delta = (delta.matmul(&self.weights[l])? * &pass.masks[l - 1])?;
            }
        }
        Ok(grads.into_iter().map(Option::unwrap).collect())
    }

    fn snapshot(&self, like: &EnsembleWeights) -> Result<EnsembleWeights> {
        Ok(EnsembleWeights {
            members: like.members,
            shapes: like.shapes.clone(),
            layers: self
                .weights
                .iter()
                .map(|w| w.flatten_all()?.to_vec1::<f32>())
                .collect::<candle_core::Result<_>>()?,
        })
    }
}

/// Candle reads its thread counts from the environment on every op; unset,
/// each matmul asks the OS for the core count, and its threads fight with
/// ours. One thread per Candle op, parallelism across jobs only. Must run
/// before the first Candle op.
pub fn pin_candle_threads() {
    std::env::set_var("RAYON_NUM_THREADS", "1");
    std::env::set_var("CANDLE_NUM_THREADS", "1");
}
