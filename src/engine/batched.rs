//! The batched engine: every member advanced by the same batched Candle ops
//! (tensors with a leading ensemble axis), with the hand-derived backward
//! pass that `tests/engine.rs` checks against Candle's autograd.
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

use anyhow::Result;
use candle_core::{DType, Device, Tensor};

use super::types::{Advance, EnsembleData, EnsembleWeights, Objective, TrainConfig};
use crate::values::Loss;

struct Net {
    weights: Vec<Tensor>,
}

/// One tensor (E, out, in) per layer, advanced by batched Candle ops.
pub(super) struct BatchedState<'a> {
    net: Net,
    x: Tensor,
    y: Tensor,
    like: &'a EnsembleWeights,
    cfg: &'a TrainConfig,
    points: usize,
}

impl<'a> BatchedState<'a> {
    pub(super) fn new(init: &'a EnsembleWeights, data: &'a EnsembleData, cfg: &'a TrainConfig) -> Result<Self> {
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
            let grads = self.net.backward(&pass, &self.y, self.cfg.objective(), self.points)?;
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
    /// The outputs f, (E, N, K).
    outputs: Tensor,
    /// With K > 1 outputs: 1 at each point's class, else 0, (E, N, K).
    one_hot: Option<Tensor>,
    /// K = 1: y f. K > 1: the true class's logit minus the largest other one.
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
        let outputs = inputs.last().unwrap().matmul(&self.weights[depth - 1].t()?)?;
        let (e, n, k) = outputs.dims3()?;
        if k == 1 {
            let margins = (outputs.squeeze(2)? * y)?;
            return Ok(Pass { inputs, masks, outputs, one_hot: None, margins });
        }
        // y holds class indices 0..K.
        let classes = Tensor::arange(0f32, k as f32, y.device())?.reshape((1, 1, k))?.broadcast_as((e, n, k))?;
        let one_hot = y.unsqueeze(2)?.broadcast_as((e, n, k))?.eq(&classes)?.to_dtype(DType::F32)?;
        let true_logit = (&outputs * &one_hot)?.sum(2)?;
        // The largest other logit: the true one pushed far below every other first.
        let largest_other = (&outputs - one_hot.affine(1e30, 0.0)?)?.max(2)?;
        let margins = (true_logit - largest_other)?;
        Ok(Pass { inputs, masks, outputs, one_hot: Some(one_hot), margins })
    }

    /// Gradients of the mean loss with respect to each layer's weights.
    fn backward(&self, pass: &Pass, y: &Tensor, objective: Objective, n: usize) -> Result<Vec<Tensor>> {
        // dl/dm: -sigma(-m) for cross-entropy (stable for any m), -1[m < 1] for hinge,
        // plus lambda m for the output penalty (lambda/2) m^2.
        let mut dl_dm = match objective.loss {
            Loss::CrossEntropy => candle_nn::ops::sigmoid(&pass.margins.neg()?)?.neg()?,
            Loss::Hinge => pass.margins.lt(1.0)?.to_dtype(DType::F32)?.neg()?,
        };
        if objective.output_penalty != 0.0 {
            dl_dm = (dl_dm + pass.margins.affine(objective.output_penalty as f64, 0.0)?)?;
        }
        // dL/df per point, (E, N, K): softmax cross-entropy's softmax(f) - one_hot(y)
        // with K > 1 outputs (checked by `train_with` to come with cross-entropy alone).
        let mut delta = match &pass.one_hot {
            None => (dl_dm * y)?.affine(1.0 / n as f64, 0.0)?.unsqueeze(2)?,
            Some(one_hot) => {
                (candle_nn::ops::softmax_last_dim(&pass.outputs)? - one_hot)?.affine(1.0 / n as f64, 0.0)?
            }
        };
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
