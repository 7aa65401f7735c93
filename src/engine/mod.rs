//! The training engines: full-batch gradient descent on an ensemble of
//! bias-free ReLU MLPs. `train` picks the engine for the network's size:
//! `fused` (one custom op per block of steps) or `batched` (one batched Candle
//! program); both fill the same `TrainLog` through the loop in `train_with`.

use anyhow::{ensure, Context, Result};

use crate::values::Loss;

mod batched;
pub mod fused;
pub mod gan;
mod types;

use batched::BatchedState;
use fused::FusedState;
use types::Advance;
pub use types::{
    forward, log_schedule, EnsembleData, EnsembleWeights, Objective, RecordWeights, TrainConfig, TrainInput, TrainLog,
};

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
    train_with(choose_engine(&init.shapes), init, data, cfg)
}

/// The fused engine, for every network: its arithmetic is defined to the
/// last bit (a fixed order of every sum, fused multiply-adds, its own exp,
/// softmax included), so it gives the same bits on every CPU with FMA and on
/// the portable path, and it is the faster engine on every figure's nets
/// (`cargo xtask bench`). The batched program's matmuls are gemm's, whose
/// kernels and blocking depend on the CPU: it stays as the independent
/// implementation the fused one is tested against (and where a GPU build
/// would be chosen). This is the one place that chooses.
pub fn choose_engine(_shapes: &[(usize, usize)]) -> Engine {
    Engine::Fused
}

pub fn train_with(engine: Engine, init: &EnsembleWeights, data: &EnsembleData, cfg: &TrainConfig) -> Result<TrainLog> {
    ensure!(!init.shapes.is_empty(), "no layers");
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
    let outputs = init.shapes.last().map_or(0, |s| s.0);
    if outputs > 1 {
        // K classes: labels are class indices 0..K, the loss softmax cross-entropy.
        ensure!(
            cfg.loss == Loss::CrossEntropy && cfg.output_penalty == 0.0,
            "several outputs train with softmax cross-entropy only (no hinge, no output penalty)"
        );
        let labels = [&data.y].into_iter().chain(cfg.probe.as_ref().map(|p| &p.y));
        ensure!(
            labels.flatten().all(|&c| c >= 0.0 && c < outputs as f32 && c.fract() == 0.0),
            "with {outputs} outputs every label must be a class index 0..{outputs}"
        );
    }
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
        samples: Vec::new(),
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

/// Candle reads its thread counts from the environment on every op; unset,
/// each matmul asks the OS for the core count, and its threads fight with
/// ours. One thread per Candle op, parallelism across jobs only. Must run
/// before the first Candle op.
pub fn pin_candle_threads() {
    std::env::set_var("RAYON_NUM_THREADS", "1");
    std::env::set_var("CANDLE_NUM_THREADS", "1");
}
