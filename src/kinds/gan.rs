//! A small GAN on a ring of Gaussians, with a cross-entropy or a hinge
//! discriminator: the paper's remark that its comparison of the two losses
//! "could prove useful to understand recent progress in the training of
//! generative adversarial networks", measured rather than argued.
//!
//! The discriminator-signal figure (`discriminator.rs`) fixes the samples and
//! shows what each loss does to the signal a generator would get, grad_x D
//! at the fakes: under hinge it freezes once every margin reaches 1, under
//! cross-entropy it keeps growing. Here the generator moves, so the fakes
//! move with it, and the question is what that does to the modes covered.
//! There is no closed form for this; the figure reports what it measures,
//! with the signal's norm beside the coverage.
//!
//! Setup. Real data: `modes` Gaussians of standard deviation `std` at radius
//! `radius`, equally spaced on a circle. Generator: noise in R^noise_dim ->
//! two ReLU layers of `width` -> R^2. Discriminator: R^2 -> two ReLU layers
//! of `width` -> R. Biases everywhere. Each step draws a fresh batch of real
//! samples and of noise, takes one Adam step of the discriminator, then one
//! of the generator on the same noise. The discriminator's losses:
//!   cross-entropy: D minimizes softplus(-D(real)) + softplus(D(fake));
//!   hinge:         D minimizes relu(1 - D(real)) + relu(1 + D(fake)).
//! The generator's loss is set apart (`generator_loss`), so that a comparison
//! of the two discriminators changes nothing else: `non_saturating`, G
//! minimizes softplus(-D(G(z))); `linear`, G minimizes -D(G(z)); or `matched`,
//! each discriminator with its usual partner (cross-entropy with the
//! non-saturating form, hinge with the linear one, as in the hinge GANs of
//! 2018), which confounds the two losses' effects.
//! Adam, not plain descent: GANs this small rarely train with plain descent,
//! and both losses get the same optimizer, rate and steps.
//!
//! Measured at each logged step on a fixed set of noise draws: a generated
//! sample is on a mode when it lies within 3 std of that mode's centre; a
//! mode is covered when it holds at least a quarter of its fair share of the
//! samples (eval_samples / (4 modes)). The signal is the mean of |grad_x D|
//! over those samples.
//!
//! The networks are written out here in plain f32 loops (forward, backward,
//! Adam), not with Candle: a GAN's training amplifies the low bits of every
//! step, and Candle's matmul picks its SIMD path from the CPU, so the same
//! seeds would give different GANs on different machines. Plain loops with
//! one fixed order of every sum, compiled for the baseline x86-64, do the
//! same arithmetic on every CPU. Not all of it is ours: `exp` (the sigmoid),
//! `hypot` and the normal draws come from the C library, as in every other
//! kind, and glibc picks its `exp` by the CPU's features (the AVX2 and the
//! AVX-512 machines we use both take its FMA variant).

use std::ops::Range;

use anyhow::{bail, ensure, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{job_config, Job, JobId, Kind};
use crate::engine::{TrainInput, TrainLog};
use crate::figure::{palette, FigureBody, Panel, Series};
use crate::rng::{self, normal, RngExt};
use crate::stats::mean_min_max;
use crate::values::{Count, Loss, Outputs, Positive};
use rand_chacha::ChaCha8Rng;

/// This kind's source files.
pub const FILES: &[&str] = &[file!()];

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ring {
    pub modes: Count,
    pub radius: Positive,
    pub std: Positive,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Gan {
    /// The discriminator's losses: one job each, on the same seeds.
    pub losses: Vec<Loss>,
    pub ring: Ring,
    pub noise_dim: Count,
    /// Hidden width of both networks.
    pub width: Count,
    pub batch: Count,
    /// Adam's rate (betas 0.5 and 0.999), for both networks.
    pub learning_rate: Positive,
    pub steps: Count,
    pub log_points: Count,
    pub seed_count: Count,
    /// Noise draws for the measurements, fixed per seed.
    pub eval_samples: Count,
    /// What the generator minimizes, the same for every discriminator loss
    /// unless `matched` (see the module doc). Required: it decides whether a
    /// comparison of the losses is confounded.
    pub generator_loss: GeneratorLoss,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GeneratorLoss {
    /// softplus(-D(G(z))), whatever the discriminator's loss.
    NonSaturating,
    /// -D(G(z)), whatever the discriminator's loss.
    Linear,
    /// Each discriminator loss with its usual partner: cross-entropy with the
    /// non-saturating form, hinge with the linear one.
    Matched,
}

impl GeneratorLoss {
    /// The generator's loss when the discriminator trains with `loss`.
    fn with(self, loss: Loss) -> GeneratorLoss {
        match (self, loss) {
            (GeneratorLoss::Matched, Loss::CrossEntropy) => GeneratorLoss::NonSaturating,
            (GeneratorLoss::Matched, Loss::Hinge) => GeneratorLoss::Linear,
            (other, _) => other,
        }
    }
}

/// Per member and logged step, in this order (a row of the log's `margins`).
const MEASURES: usize = 3;
const COVERED: usize = 0;
const ON_MODE: usize = 1;
const SIGNAL: usize = 2;

const COLORS: [&str; 2] = [palette::BLUE, palette::VERMILLION];

fn covered_series(loss: Loss) -> String {
    format!("{}: modes covered", loss.name())
}
fn on_mode_series(loss: Loss) -> String {
    format!("{}: fraction of samples on a mode", loss.name())
}
fn signal_series(loss: Loss) -> String {
    format!("{}: |grad_x D| at the fakes", loss.name())
}
fn final_covered(loss: Loss) -> String {
    format!("{}: modes covered at the end (mean over seeds)", loss.name())
}
fn final_on_mode(loss: Loss) -> String {
    format!("{}: fraction of samples on a mode at the end (mean over seeds)", loss.name())
}
fn all_modes(loss: Loss) -> String {
    format!("{}: fraction of seeds covering every mode at the end", loss.name())
}
/// Hinge against cross-entropy on the same seeds: the per-seed differences,
/// for claims that decide on their interval (a t statistic would grow like
/// sqrt(n) for any nonzero difference and so measure the seed count).
const PAIRED_ON_MODE: &str = "hinge minus cross-entropy, fraction on a mode at the end, per seed (paired)";
/// The counterfactual of a real difference: each seed's trained hinge
/// generator against its own untrained one (step 0).
const TRAINED_ON_MODE: &str =
    "hinge at the end minus the same seed's untrained generator (step 0), fraction on a mode, per seed";
/// The counterfactual of no difference between the losses: cross-entropy in
/// place of hinge (seed k's cross-entropy against seed k+1's).
const NULL_ON_MODE: &str = "cross-entropy minus another seed's cross-entropy, fraction on a mode at the end, per seed";
/// The signal's growth (end over step 1), cross-entropy minus hinge, per seed.
const PAIRED_GROWTH: &str = "cross-entropy minus hinge, |grad_x D| at the end over step 1, per seed (paired)";
/// Each loss's signal growth (end over step 1), per seed: whether the
/// fixed-sample freeze carries over is a per-seed question too.
fn growth_samples(loss: Loss) -> String {
    format!("{}: |grad_x D| at the end over its value at step 1, per seed", loss.name())
}
/// The fixed-sample picture's prediction for hinge, a frozen signal (growth
/// 1 on every seed), in place of hinge's measured growth.
const FROZEN_SIGNAL: &str = "a frozen signal (growth 1, the fixed-sample picture's hinge), per seed";
/// The counterfactual: cross-entropy in place of hinge (seed k's
/// cross-entropy against seed k+1's), where the loss does not differ.
const NULL_GROWTH: &str =
    "cross-entropy minus another seed's cross-entropy, |grad_x D| at the end over step 1, per seed";

fn signal_growth(loss: Loss) -> String {
    format!("{}: |grad_x D| at the end over its value at step 1", loss.name())
}

impl Kind for Gan {
    fn seeds(&self) -> Vec<u64> {
        (0..self.seed_count.get()).collect()
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let repeated = self.losses.iter().enumerate().any(|(i, loss)| self.losses[..i].contains(loss));
        if self.losses.is_empty() || repeated {
            p.push("losses: expected one or more losses, each once".into());
        }
        if self.ring.modes.get() > 64 {
            p.push("ring.modes: expected at most 64 modes".into());
        }
        // Work per step grows with width^2 x batch: keep one job within minutes.
        if self.width.get() > 256 || self.batch.get() > 4096 || self.eval_samples.get() > 100_000 {
            p.push("width, batch, eval_samples: expected at most 256, 4096 and 100000".into());
        }
        p
    }

    fn outputs(&self) -> Outputs {
        let mut out = Outputs::default();
        for &loss in &self.losses {
            out.series.extend([covered_series(loss), on_mode_series(loss), signal_series(loss)]);
            out.series.push(format!("{}: samples at the end, seed 0", loss.name()));
            out.scalars.extend([final_covered(loss), final_on_mode(loss), all_modes(loss), signal_growth(loss)]);
        }
        out.series.push("real modes".into());
        if self.compares_losses() {
            out.samples =
                [PAIRED_ON_MODE, TRAINED_ON_MODE, NULL_ON_MODE, PAIRED_GROWTH, NULL_GROWTH].map(String::from).to_vec();
        }
        out.samples.extend(self.losses.iter().map(|&loss| growth_samples(loss)));
        out.samples.push(FROZEN_SIGNAL.into());
        out
    }

    fn jobs(&self) -> Vec<Job> {
        let seeds = self.seeds();
        Job::numbered(self.losses.iter().map(|&loss| Job {
            id: JobId(0),
            name: loss.name().to_string(),
            config: job_config(self, &[("losses", json!(null)), ("loss", json!(loss))]),
            seeds: seeds.clone(),
            member_seeds: seeds.clone(),
        }))
    }

    fn prepare_job(&self, _job: &Job) -> Result<TrainInput> {
        bail!("the GAN trains in its own loop (Kind::train), not through the classifier engine")
    }

    fn train(&self, job: &Job, members: Range<usize>) -> Result<TrainLog> {
        let loss = self.losses[job.id.0];
        let log_steps = crate::engine::log_schedule(self.steps.get(), self.log_points.get());
        // Each seed's run is its own: a shard runs its seeds alone.
        let seeds = job
            .member_seeds
            .get(members.clone())
            .with_context(|| format!("no networks {members:?} in job {:?}", job.name))?;
        let runs: Vec<Run> = seeds.par_iter().map(|&seed| self.run(loss, seed, &log_steps)).collect();
        let margins =
            (0..log_steps.len()).map(|t| runs.iter().flat_map(|run| run.rows[t].iter().copied()).collect()).collect();
        Ok(TrainLog {
            learning_rate: self.learning_rate.get(),
            log_steps,
            margins,
            probe_margins: Vec::new(),
            weight_norms: Vec::new(),
            weights: Vec::new(),
            diverged_at: runs.iter().map(|run| run.diverged_at).collect(),
            samples: runs.into_iter().map(|run| run.samples).collect(),
        })
    }

    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        ensure!(logs.len() == self.losses.len(), "gan expects {} job logs, got {}", self.losses.len(), logs.len());
        let modes = self.ring.modes.usize();
        let mut body = FigureBody {
            panels: vec![
                Panel::new("modes covered", "training step", "modes").log_x().y_range(0.0, modes as f64),
                Panel::new("generated samples on a mode (within 3 std)", "training step", "fraction")
                    .log_x()
                    .y_range(0.0, 1.0),
                Panel::new("the generator's signal, mean |grad_x D| at the fakes", "training step", "|grad_x D|")
                    .log_x()
                    .log_y(),
                // Points in the plane: the ring prints as a ring.
                Panel::new("samples at the end (seed 0)", "x1", "x2").equal_aspect(),
            ],
            ..Default::default()
        };
        let seeds = self.seeds().len();
        // Per loss, per seed: the fraction on a mode at the start and at the
        // end, and the signal's growth.
        let mut per_seed = std::collections::BTreeMap::new();
        for (j, (&loss, log)) in self.losses.iter().zip(logs).enumerate() {
            let color = COLORS[j % COLORS.len()];
            // The first logged step is step 0, which a log axis cannot show.
            let steps: Vec<f64> = log.log_steps.iter().map(|&s| s as f64).collect();
            let skip = log.log_steps.iter().take_while(|&&s| s == 0).count();
            let measure = |m: usize| -> Vec<Vec<f64>> {
                (0..seeds).map(|e| log.margins.iter().map(|row| row[e * MEASURES + m] as f64).collect()).collect()
            };
            let (covered, on_mode, signal) = (measure(COVERED), measure(ON_MODE), measure(SIGNAL));
            for (name, panel, curves) in [
                (covered_series(loss), 0, &covered),
                (on_mode_series(loss), 1, &on_mode),
                (signal_series(loss), 2, &signal),
            ] {
                // A colour is a loss in every panel; the titles say the measure.
                body.series.push(
                    Series::mean_over_seeds(name, panel, color, steps.clone(), curves)
                        .skipping(skip)
                        .legend_label(loss.name()),
                );
            }
            let last = |curves: &[Vec<f64>]| -> Vec<f64> { curves.iter().map(|c| *c.last().unwrap()).collect() };
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            body.scalars.insert(final_covered(loss), mean(&last(&covered)));
            body.scalars.insert(final_on_mode(loss), mean(&last(&on_mode)));
            let first: Vec<f64> = on_mode.iter().map(|c| c[0]).collect();
            let growth: Vec<f64> = signal.iter().map(|c| c.last().unwrap() / c[skip]).collect();
            body.samples.insert(growth_samples(loss), growth.clone());
            body.samples.insert(FROZEN_SIGNAL.into(), vec![1.0; growth.len()]);
            per_seed.insert(loss.name(), (first, last(&on_mode), growth));
            let every = last(&covered).iter().filter(|&&c| c as usize == modes).count();
            body.scalars.insert(all_modes(loss), every as f64 / seeds as f64);
            let (signal_mean, _, _) = mean_min_max(&signal);
            body.scalars.insert(signal_growth(loss), signal_mean.last().unwrap() / signal_mean[skip]);
            let (xs, ys) = log.samples[0].chunks(2).map(|p| (p[0] as f64, p[1] as f64)).unzip();
            body.series.push(Series::points(format!("{}: samples at the end, seed 0", loss.name()), 3, color, xs, ys));
        }
        if self.compares_losses() {
            let (hinge, ce) = (&per_seed["hinge"], &per_seed["cross-entropy"]);
            let minus = |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(a, b)| a - b).collect() };
            body.samples.insert(PAIRED_ON_MODE.into(), minus(&hinge.1, &ce.1));
            body.samples.insert(TRAINED_ON_MODE.into(), minus(&hinge.1, &hinge.0));
            body.samples.insert(NULL_ON_MODE.into(), minus(&ce.1, &crate::stats::next_seed(&ce.1)));
            body.samples.insert(PAIRED_GROWTH.into(), minus(&ce.2, &hinge.2));
            body.samples.insert(NULL_GROWTH.into(), minus(&ce.2, &crate::stats::next_seed(&ce.2)));
        }
        let (cx, cy) = (0..modes).map(|k| self.centre(k)).map(|(x, y)| (x as f64, y as f64)).unzip();
        body.series.push(Series::points("real modes", 3, palette::BLACK, cx, cy));
        Ok(body)
    }
}

/// One seed's training: per logged step its `MEASURES`, the first logged
/// step at which one was not finite, and its generator's final samples.
struct Run {
    rows: Vec<Vec<f32>>,
    diverged_at: Option<u64>,
    samples: Vec<f32>,
}

/// A dense ReLU network with biases: layer l is weights (out, in) row-major, then biases.
#[derive(Clone)]
struct Mlp {
    shapes: Vec<(usize, usize)>,
    params: Vec<Vec<f32>>,
}

impl Mlp {
    fn new(shapes: Vec<(usize, usize)>, r: &mut ChaCha8Rng) -> Mlp {
        let mut params = Vec::new();
        for &(o, i) in &shapes {
            // He init: weights ~ normal(0, 2 / fan_in), biases 0.
            let std = (2.0 / i as f64).sqrt();
            params.push((0..o * i).map(|_| (std * normal(r)) as f32).collect());
            params.push(vec![0.0; o]);
        }
        Mlp { shapes, params }
    }

    /// Activations of a batch of `b` inputs: the input, each hidden layer after ReLU, the output.
    /// Each output is bias + w[k][0] a[0] + w[k][1] a[1] + ..., summed in that
    /// order; the loops run over k innermost (on the transposed weights) so
    /// that the compiler can use vector registers without reordering a sum.
    #[inline(always)]
    fn forward(&self, x: &[f32], b: usize) -> Vec<Vec<f32>> {
        let mut acts = vec![x.to_vec()];
        let depth = self.shapes.len();
        for (l, &(o, i)) in self.shapes.iter().enumerate() {
            let (w, bias) = (&self.params[2 * l], &self.params[2 * l + 1]);
            let mut transposed = vec![0f32; o * i];
            for k in 0..o {
                for j in 0..i {
                    transposed[j * o + k] = w[k * i + j];
                }
            }
            let a = &acts[l];
            let mut out = Vec::with_capacity(b * o);
            for row in a.chunks_exact(i) {
                let start = out.len();
                out.extend_from_slice(bias);
                let sums = &mut out[start..];
                for (&input, column) in row.iter().zip(transposed.chunks_exact(o)) {
                    for (sum, &weight) in sums.iter_mut().zip(column) {
                        *sum += weight * input;
                    }
                }
                if l + 1 < depth {
                    for v in sums.iter_mut() {
                        *v = v.max(0.0);
                    }
                }
            }
            acts.push(out);
        }
        acts
    }

    /// Given d loss / d output for each of the batch's `b` rows, the gradient
    /// of every parameter and of the inputs (relu'(0) = 0). Every gradient
    /// entry sums over the batch rows in order (and the inputs' over the
    /// outputs in order).
    #[inline(always)]
    fn backward(&self, acts: &[Vec<f32>], b: usize, d_out: Vec<f32>) -> (Vec<Vec<f32>>, Vec<f32>) {
        let mut grads: Vec<Vec<f32>> = self.params.iter().map(|p| vec![0.0; p.len()]).collect();
        let mut d = d_out;
        for l in (0..self.shapes.len()).rev() {
            let (o, i) = self.shapes[l];
            let (w, a) = (&self.params[2 * l], &acts[l]);
            let mut d_in = vec![0f32; b * i];
            let (weight_grads, rest) = grads.split_at_mut(2 * l + 1);
            let (weight_grads, bias_grads) = (&mut weight_grads[2 * l], &mut rest[0]);
            for ((d_row, a_row), d_in_row) in d.chunks_exact(o).zip(a.chunks_exact(i)).zip(d_in.chunks_exact_mut(i)) {
                for (k, &g) in d_row.iter().enumerate() {
                    bias_grads[k] += g;
                    for (gw, &av) in weight_grads[k * i..(k + 1) * i].iter_mut().zip(a_row) {
                        *gw += g * av;
                    }
                    for (di, &wv) in d_in_row.iter_mut().zip(&w[k * i..(k + 1) * i]) {
                        *di += g * wv;
                    }
                }
            }
            if l > 0 {
                // Through the ReLU that made this layer's input.
                for (g, &v) in d_in.iter_mut().zip(a) {
                    if v <= 0.0 {
                        *g = 0.0;
                    }
                }
            }
            d = d_in;
        }
        (grads, d)
    }
}

/// Adam (betas 0.5 and 0.999, eps 1e-8) over one network's parameters.
struct Adam {
    rate: f32,
    step: i32,
    first: Vec<Vec<f32>>,
    second: Vec<Vec<f32>>,
}

impl Adam {
    const BETA1: f32 = 0.5;
    const BETA2: f32 = 0.999;

    fn new(net: &Mlp, rate: f32) -> Adam {
        let zeros: Vec<Vec<f32>> = net.params.iter().map(|p| vec![0.0; p.len()]).collect();
        Adam { rate, step: 0, first: zeros.clone(), second: zeros }
    }

    #[inline(always)]
    fn update(&mut self, net: &mut Mlp, grads: &[Vec<f32>]) {
        self.step += 1;
        let (c1, c2) = (1.0 - Self::BETA1.powi(self.step), 1.0 - Self::BETA2.powi(self.step));
        for (((p, g), m), v) in net.params.iter_mut().zip(grads).zip(&mut self.first).zip(&mut self.second) {
            for j in 0..p.len() {
                m[j] = Self::BETA1 * m[j] + (1.0 - Self::BETA1) * g[j];
                v[j] = Self::BETA2 * v[j] + (1.0 - Self::BETA2) * g[j] * g[j];
                p[j] -= self.rate * (m[j] / c1) / ((v[j] / c2).sqrt() + 1e-8);
            }
        }
    }
}

#[inline(always)]
fn sigmoid(z: f32) -> f32 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

impl Gan {
    fn compares_losses(&self) -> bool {
        self.losses.contains(&Loss::CrossEntropy) && self.losses.contains(&Loss::Hinge)
    }

    fn centre(&self, k: usize) -> (f32, f32) {
        let angle = 2.0 * std::f64::consts::PI * k as f64 / self.ring.modes.get() as f64;
        let r = self.ring.radius.get();
        ((r * angle.cos()) as f32, (r * angle.sin()) as f32)
    }

    fn networks(&self, seed: u64) -> (Mlp, Mlp) {
        let (w, z) = (self.width.usize(), self.noise_dim.usize());
        let mut r = rng::stream("gan/init", seed);
        let generator = Mlp::new(vec![(w, z), (w, w), (2, w)], &mut r);
        let discriminator = Mlp::new(vec![(w, 2), (w, w), (1, w)], &mut r);
        (generator, discriminator)
    }

    #[inline(always)]
    fn noise(&self, r: &mut ChaCha8Rng, count: usize) -> Vec<f32> {
        (0..count * self.noise_dim.usize()).map(|_| normal(r) as f32).collect()
    }

    #[inline(always)]
    fn real(&self, r: &mut ChaCha8Rng, count: usize) -> Vec<f32> {
        let (modes, std) = (self.ring.modes.get(), self.ring.std.get());
        let mut x = Vec::with_capacity(2 * count);
        for _ in 0..count {
            let (cx, cy) = self.centre(r.random_range(0..modes) as usize);
            x.push(cx + (std * normal(r)) as f32);
            x.push(cy + (std * normal(r)) as f32);
        }
        x
    }

    /// One seed's training, measured at each logged step, with AVX2 where
    /// the CPU has it (`engine::fused::path`): about 1.2x faster than without.
    /// The same bits on every path: Rust never fuses a multiply and an add
    /// (and FMA is not enabled here), never reorders a float sum, and every
    /// path calls the same `exp` and the exact `sqrt`.
    fn run(&self, loss: Loss, seed: u64, log_steps: &[u64]) -> Run {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2")]
            unsafe fn avx2(gan: &Gan, loss: Loss, seed: u64, log_steps: &[u64]) -> Run {
                gan.run_on_this_path(loss, seed, log_steps)
            }
            if crate::engine::fused::path() >= crate::engine::fused::VectorPath::Avx2Fma {
                // SAFETY: the CPU has AVX2 (`path` is at most the widest it has).
                return unsafe { avx2(self, loss, seed, log_steps) };
            }
        }
        self.run_on_this_path(loss, seed, log_steps)
    }

    /// `run`'s body; it and everything it calls per step are inlined, so
    /// that they are compiled for the path `run` chose.
    #[inline(always)]
    fn run_on_this_path(&self, loss: Loss, seed: u64, log_steps: &[u64]) -> Run {
        let (mut generator, mut discriminator) = self.networks(seed);
        let rate = self.learning_rate.get() as f32;
        let (mut adam_g, mut adam_d) = (Adam::new(&generator, rate), Adam::new(&discriminator, rate));
        let mut r = rng::stream("gan/batches", seed);
        let eval = self.noise(&mut rng::stream("gan/eval-noise", seed), self.eval_samples.usize());
        let b = self.batch.usize();
        let mut run = Run { rows: Vec::with_capacity(log_steps.len()), diverged_at: None, samples: Vec::new() };
        let mut step = 0u64;
        for &log_step in log_steps {
            while step < log_step {
                self.step(loss, &mut generator, &mut discriminator, &mut adam_g, &mut adam_d, &mut r, b);
                step += 1;
            }
            let (row, samples) = self.measure(&generator, &discriminator, &eval);
            if run.diverged_at.is_none() && !row.iter().all(|v| v.is_finite()) {
                run.diverged_at = Some(step);
            }
            run.rows.push(row);
            run.samples = samples;
        }
        run
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn step(
        &self,
        loss: Loss,
        generator: &mut Mlp,
        discriminator: &mut Mlp,
        adam_g: &mut Adam,
        adam_d: &mut Adam,
        r: &mut ChaCha8Rng,
        b: usize,
    ) {
        let real = self.real(r, b);
        let z = self.noise(r, b);
        let g_acts = generator.forward(&z, b);
        let fake = g_acts.last().unwrap();
        // The discriminator's step, on real and fake, each a mean over the batch.
        let real_acts = discriminator.forward(&real, b);
        let fake_acts = discriminator.forward(fake, b);
        let scale = 1.0 / b as f32;
        let d_real: Vec<f32> = real_acts
            .last()
            .unwrap()
            .iter()
            .map(|&d| match loss {
                Loss::CrossEntropy => -sigmoid(-d) * scale,
                Loss::Hinge => f32::from(u8::from(d < 1.0)) * -scale,
            })
            .collect();
        let d_fake: Vec<f32> = fake_acts
            .last()
            .unwrap()
            .iter()
            .map(|&d| match loss {
                Loss::CrossEntropy => sigmoid(d) * scale,
                Loss::Hinge => f32::from(u8::from(d > -1.0)) * scale,
            })
            .collect();
        let (mut grads, _) = discriminator.backward(&real_acts, b, d_real);
        let (fake_grads, _) = discriminator.backward(&fake_acts, b, d_fake);
        for (g, f) in grads.iter_mut().zip(&fake_grads) {
            for (a, b) in g.iter_mut().zip(f) {
                *a += b;
            }
        }
        adam_d.update(discriminator, &grads);
        // The generator's step, through the updated discriminator.
        let acts = discriminator.forward(fake, b);
        let d_out: Vec<f32> = acts
            .last()
            .unwrap()
            .iter()
            .map(|&d| match self.generator_loss.with(loss) {
                GeneratorLoss::NonSaturating => -sigmoid(-d) * scale,
                _ => -scale,
            })
            .collect();
        let (_, d_fake_x) = discriminator.backward(&acts, b, d_out);
        let (g_grads, _) = generator.backward(&g_acts, b, d_fake_x);
        adam_g.update(generator, &g_grads);
    }

    /// [modes covered, fraction on a mode, mean |grad_x D|] on the evaluation
    /// noise, and the samples it measured.
    #[inline(always)]
    fn measure(&self, generator: &Mlp, discriminator: &Mlp, eval: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let count = self.eval_samples.usize();
        let modes = self.ring.modes.usize();
        let samples = generator.forward(eval, count).pop().unwrap();
        let reach = 3.0 * self.ring.std.get() as f32;
        let mut per_mode = vec![0usize; modes];
        for p in samples.chunks(2) {
            let nearest = (0..modes)
                .map(|k| {
                    let (cx, cy) = self.centre(k);
                    (k, (p[0] - cx).hypot(p[1] - cy))
                })
                .min_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((k, dist)) = nearest {
                if dist <= reach {
                    per_mode[k] += 1;
                }
            }
        }
        let fair_quarter = count as f64 / (4.0 * modes as f64);
        let covered = per_mode.iter().filter(|&&c| c as f64 >= fair_quarter).count();
        let on_mode = per_mode.iter().sum::<usize>() as f32 / count as f32;
        // d D / d x for each sample on its own: a backward pass with d D = 1 per row.
        let acts = discriminator.forward(&samples, count);
        let (_, dx) = discriminator.backward(&acts, count, vec![1.0; count]);
        let signal = dx.chunks(2).map(|g| g[0].hypot(g[1])).sum::<f32>() / count as f32;
        // A non-finite sample lands nowhere, so check the samples themselves too.
        let finite = samples.iter().all(|v| v.is_finite());
        (vec![covered as f32, if finite { on_mode } else { f32::NAN }, signal], samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Gan {
        toml::from_str(
            "losses = [\"cross_entropy\", \"hinge\"]\nnoise_dim = 2\nwidth = 8\nbatch = 16\n\
             learning_rate = 0.001\nsteps = 200\nlog_points = 5\nseed_count = 3\neval_samples = 64\n\
             generator_loss = \"matched\"\n\
             [ring]\nmodes = 4\nradius = 2.0\nstd = 0.05",
        )
        .unwrap()
    }

    /// The same seeds give the same bits, whichever thread trains which seed
    /// (members run side by side), and a repeated loss is refused.
    #[test]
    fn training_is_repeatable_and_losses_are_distinct() {
        let gan = small();
        assert!(gan.problems().is_empty());
        let jobs = crate::kinds::numbered_jobs(&gan);
        let once = gan.train(&jobs[1], 0..jobs[1].members()).unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let again = pool.install(|| gan.train(&jobs[1], 0..jobs[1].members())).unwrap();
        assert_eq!(once, again);
        assert_eq!(once.samples.len(), 3);
        let repeated = Gan { losses: vec![Loss::Hinge, Loss::CrossEntropy, Loss::Hinge], ..small() };
        assert_eq!(repeated.problems().len(), 1);
    }

    /// Both losses train to the same bits on every vector path the CPU has.
    #[test]
    fn every_vector_path_gives_the_same_bits() {
        let gan = small();
        let log_steps = crate::engine::log_schedule(gan.steps.get(), gan.log_points.get());
        for loss in [Loss::CrossEntropy, Loss::Hinge] {
            let native = gan.run(loss, 1, &log_steps);
            for path in crate::engine::fused::paths() {
                let on_path = crate::engine::fused::at_most(path, || gan.run(loss, 1, &log_steps));
                let bits = |run: &Run| {
                    run.rows.iter().chain([&run.samples]).flatten().map(|v| v.to_bits()).collect::<Vec<u32>>()
                };
                assert_eq!(bits(&native), bits(&on_path), "{loss:?}: the {} path differs", path.name());
            }
        }
    }

    /// The hand-written backward pass against central differences (in f64 of
    /// an f32 network: tolerances of a few 1e-3), for the weights, biases
    /// and inputs of a net with the GAN's shape.
    #[test]
    fn backward_matches_finite_differences() {
        let mut r = rng::stream("gan/test", 1);
        let net = Mlp::new(vec![(5, 2), (5, 5), (1, 5)], &mut r);
        let b = 3;
        let x: Vec<f32> = (0..b * 2).map(|_| normal(&mut r) as f32).collect();
        // Loss: sum of the outputs times fixed weights.
        let weights = [0.7f32, -1.3, 0.4];
        let loss = |net: &Mlp, x: &[f32]| -> f64 {
            net.forward(x, b).last().unwrap().iter().zip(&weights).map(|(o, w)| (o * w) as f64).sum()
        };
        let acts = net.forward(&x, b);
        let (grads, dx) = net.backward(&acts, b, weights.to_vec());
        let h = 1e-2f32;
        for (l, layer_grads) in grads.iter().enumerate() {
            for (j, &grad) in layer_grads.iter().enumerate() {
                let (mut up, mut down) = (net.clone(), net.clone());
                up.params[l][j] += h;
                down.params[l][j] -= h;
                let numeric = (loss(&up, &x) - loss(&down, &x)) / (2.0 * h as f64);
                assert!((numeric - grad as f64).abs() < 5e-3, "param {l}/{j}: {numeric} vs {grad}");
            }
        }
        for j in 0..x.len() {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[j] += h;
            down[j] -= h;
            let numeric = (loss(&net, &up) - loss(&net, &down)) / (2.0 * h as f64);
            assert!((numeric - dx[j] as f64).abs() < 5e-3, "input {j}: {numeric} vs {}", dx[j]);
        }
    }
}
