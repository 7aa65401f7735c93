//! The GAN kind's training (src/kinds/gan.rs has the setup and the figure):
//! a generator and a discriminator, each a three-layer ReLU MLP with biases,
//! trained by Adam, with the fused engine's arithmetic. Every sum runs in one
//! fixed order, every multiply-add is a fused multiply-add (`mul_add`), the
//! sigmoid is built on the fused engine's polynomial `exp`, and distances
//! and Adam's denominators use only the correctly rounded `sqrt` and
//! divisions: no libm call feeds the training or the measurements.
//!
//! Lanes run across seeds: every number of the networks is an `[f32; L]`,
//! lane j being seed j's network, and every operation is done lane by lane,
//! so a seed's bits are the same in any lane of any group (a seed alone or
//! beside others: the shard split changes nothing). The groups are compiled
//! for each vector path (`with_vector_paths!`: AVX-512, AVX2 + FMA,
//! portable), which give the same bits.
//!
//! The sums are tiled (`tiled`): several independent chains at once (rows x
//! output units, or units x inputs), each chain still summed in order of its
//! index, so that the tile's shape changes no bit.

use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::fused::{at_most, exp, path, VectorPath};
use crate::rng::{self, normal, RngExt};
use crate::values::Loss;

/// Per logged step, the measures of one seed, in this order.
pub const MEASURES: usize = 3;
/// Modes holding at least a quarter of their fair share of the samples.
pub const COVERED: usize = 0;
/// The fraction of samples within 3 std of a mode's centre (NaN if a sample is not finite).
pub const ON_MODE: usize = 1;
/// The mean of |grad_x D| over the samples.
pub const SIGNAL: usize = 2;

/// Adam's betas and epsilon.
const BETA1: f32 = 0.5;
const BETA2: f32 = 0.999;
const EPSILON: f32 = 1e-8;

/// What the GAN's training needs to know (the kind builds it from its config).
#[derive(Debug, Clone)]
pub struct GanConfig {
    pub noise_dim: usize,
    /// Hidden width of both networks.
    pub width: usize,
    pub batch: usize,
    /// Noise draws for the measurements, fixed per seed.
    pub eval_samples: usize,
    /// The real modes' centres (f32, as the samples are drawn around them).
    pub centres: Vec<(f32, f32)>,
    /// The modes' standard deviation.
    pub std: f64,
    pub learning_rate: f32,
    /// The discriminator's loss.
    pub loss: Loss,
    /// The generator minimizes softplus(-D(G(z))) if true, else -D(G(z)).
    pub non_saturating: bool,
}

/// One seed's training: per logged step its `MEASURES`, the first logged
/// step at which one was not finite, and its generator's final samples.
#[derive(Debug, Clone, PartialEq)]
pub struct GanRun {
    pub rows: Vec<Vec<f32>>,
    pub diverged_at: Option<u64>,
    pub samples: Vec<f32>,
}

/// Trains each seed's GAN and measures it at each of `log_steps`. Seeds run
/// in lane groups (as many lanes as the vector path has, fewer for a few
/// seeds), the groups side by side on the current rayon pool, each on the
/// calling thread's vector path.
pub fn train(cfg: &GanConfig, seeds: &[u64], log_steps: &[u64]) -> Vec<GanRun> {
    let path = path();
    let widest = match path {
        VectorPath::Avx512 => 16,
        VectorPath::Avx2Fma => 8,
        VectorPath::Portable => 1,
    };
    let lanes = if seeds.len() <= 1 { 1 } else { widest.min(if seeds.len() <= 8 { 8 } else { 16 }) };
    let groups: Vec<&[u64]> = seeds.chunks(lanes).collect();
    let runs: Vec<Vec<GanRun>> = groups
        .par_iter()
        .map(|group| {
            at_most(path, || {
                let mut out = Vec::new();
                match lanes {
                    16 => run_group_16(cfg, group, log_steps, &mut out),
                    8 => run_group_8(cfg, group, log_steps, &mut out),
                    _ => run_group_1(cfg, group, log_steps, &mut out),
                }
                out
            })
        })
        .collect();
    runs.into_iter().flatten().collect()
}

/// Trains each seed in lanes of `lanes` on this thread's vector path, for
/// the tests: any lane count gives the same bits.
#[cfg(test)]
fn train_in_lanes(cfg: &GanConfig, seeds: &[u64], log_steps: &[u64], lanes: usize) -> Vec<GanRun> {
    let mut out = Vec::new();
    for group in seeds.chunks(lanes) {
        match lanes {
            16 => run_group_16(cfg, group, log_steps, &mut out),
            8 => run_group_8(cfg, group, log_steps, &mut out),
            1 => run_group_1(cfg, group, log_steps, &mut out),
            _ => panic!("lanes: expected 1, 8 or 16"),
        }
    }
    out
}

macro_rules! group_runner {
    ($name:ident, $lanes:expr) => {
        super::fused::with_vector_paths! {
            /// Trains a group of at most `$lanes` seeds, one per lane, appending their runs to `out`.
            fn $name(cfg: &GanConfig, seeds: &[u64], log_steps: &[u64], out: &mut Vec<GanRun>) {
                out.extend(run_group::<$lanes>(cfg, seeds, log_steps));
            }
        }
    };
}
group_runner!(run_group_16, 16);
group_runner!(run_group_8, 8);
group_runner!(run_group_1, 1);

/// Layer shapes (out, in) and where each layer's weights (row-major) and
/// biases start in a network's parameters.
struct Net {
    shapes: [(usize, usize); 3],
    weights: [usize; 3],
    biases: [usize; 3],
    params: usize,
}

impl Net {
    fn new(shapes: [(usize, usize); 3]) -> Net {
        let (mut weights, mut biases, mut at) = ([0; 3], [0; 3], 0);
        for (l, &(o, i)) in shapes.iter().enumerate() {
            weights[l] = at;
            biases[l] = at + o * i;
            at += o * i + o;
        }
        Net { shapes, weights, biases, params: at }
    }
}

/// One network's parameters and Adam's moments, lanes across seeds.
struct Trained<const L: usize> {
    params: Vec<[f32; L]>,
    first: Vec<[f32; L]>,
    second: Vec<[f32; L]>,
    grads: Vec<[f32; L]>,
}

impl<const L: usize> Trained<L> {
    fn new(params: Vec<[f32; L]>) -> Self {
        let zeros = vec![[0.0; L]; params.len()];
        Trained { params, first: zeros.clone(), second: zeros.clone(), grads: zeros }
    }

    /// One Adam step from `grads`; c1 and c2 are 1 - beta^t for this step t.
    #[inline(always)]
    fn adam(&mut self, rate: f32, c1: f32, c2: f32) {
        for (((p, g), m), v) in self.params.iter_mut().zip(&self.grads).zip(&mut self.first).zip(&mut self.second) {
            for j in 0..L {
                m[j] = g[j].mul_add(1.0 - BETA1, BETA1 * m[j]);
                v[j] = ((1.0 - BETA2) * g[j]).mul_add(g[j], BETA2 * v[j]);
                let step = (m[j] / c1) / ((v[j] / c2).sqrt() + EPSILON);
                p[j] = (-rate).mul_add(step, p[j]);
            }
        }
    }
}

/// A network's activations on a number of rows: each layer's output (the
/// hidden ones after ReLU), and the backward pass's deltas.
struct Acts<const L: usize> {
    layers: [Vec<[f32; L]>; 3],
    delta: Vec<[f32; L]>,
    below: Vec<[f32; L]>,
}

impl<const L: usize> Acts<L> {
    fn new(net: &Net, rows: usize) -> Self {
        let widest = net.shapes.iter().map(|&(o, i)| o.max(i)).max().unwrap_or(1);
        Acts {
            layers: net.shapes.map(|(o, _)| vec![[0.0; L]; rows * o]),
            delta: vec![[0.0; L]; rows * widest],
            below: vec![[0.0; L]; rows * widest],
        }
    }
}

/// Chains of fused multiply-adds, `R x C` of them at once: for every tile
/// entry (r, c), starting from `init(r, c)`, acc = x(r, t) * y(c, t) + acc for
/// t = 0, 1, ..., len - 1 in that order, then `store(r, c, acc)`. Rows and
/// columns are absolute indices; the remainders take narrower tiles, which
/// sum each entry in the same order, so the tiling changes no bit.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tiled<const L: usize, const R: usize, const C: usize>(
    rows: usize,
    cols: usize,
    len: usize,
    init: &impl Fn(usize, usize) -> [f32; L],
    x: Strided<L>,
    y: Strided<L>,
    store: &mut impl FnMut(usize, usize, [f32; L]),
) {
    assert!(x.count >= rows && y.count >= cols && x.len >= len && y.len >= len);
    let (main_rows, main_cols) = (rows - rows % R, cols - cols % C);
    for r0 in (0..main_rows).step_by(R) {
        for c0 in (0..main_cols).step_by(C) {
            tile::<L, R, C>(r0, c0, len, init, x, y, store);
        }
        for c0 in main_cols..cols {
            tile::<L, R, 1>(r0, c0, len, init, x, y, store);
        }
    }
    for r0 in main_rows..rows {
        for c0 in (0..main_cols).step_by(C) {
            tile::<L, 1, C>(r0, c0, len, init, x, y, store);
        }
        for c0 in main_cols..cols {
            tile::<L, 1, 1>(r0, c0, len, init, x, y, store);
        }
    }
}

/// `tiled` with the widest tile the registers hold: 4 x 4 accumulators on
/// AVX-512 (16 lanes, 32 registers), 4 x 2 for fewer lanes (AVX2's 16).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tiled_for_lanes<const L: usize>(
    rows: usize,
    cols: usize,
    len: usize,
    init: &impl Fn(usize, usize) -> [f32; L],
    x: Strided<L>,
    y: Strided<L>,
    store: &mut impl FnMut(usize, usize, [f32; L]),
) {
    if L >= 16 {
        tiled::<L, 4, 4>(rows, cols, len, init, x, y, store)
    } else {
        tiled::<L, 4, 2>(rows, cols, len, init, x, y, store)
    }
}

#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline(always)]
fn tile<const L: usize, const R: usize, const C: usize>(
    r0: usize,
    c0: usize,
    len: usize,
    init: &impl Fn(usize, usize) -> [f32; L],
    x: Strided<L>,
    y: Strided<L>,
    store: &mut impl FnMut(usize, usize, [f32; L]),
) {
    let mut acc = [[[0.0f32; L]; C]; R];
    for r in 0..R {
        for c in 0..C {
            acc[r][c] = init(r0 + r, c0 + c);
        }
    }
    for t in 0..len {
        for r in 0..R {
            let a = x.at(r0 + r, t);
            for c in 0..C {
                acc[r][c] = fma_lanes(a, y.at(c0 + c, t), acc[r][c]);
            }
        }
    }
    for r in 0..R {
        for c in 0..C {
            store(r0 + r, c0 + c, acc[r][c]);
        }
    }
}

/// Entries (r, t) of a slice at r x `across` + t x `along`, for r below
/// `count` and t below `len` (checked once, in `new`).
#[derive(Clone, Copy)]
struct Strided<'a, const L: usize> {
    data: &'a [[f32; L]],
    across: usize,
    along: usize,
    count: usize,
    len: usize,
}

impl<'a, const L: usize> Strided<'a, L> {
    #[inline(always)]
    fn new(data: &'a [[f32; L]], across: usize, along: usize, count: usize, len: usize) -> Self {
        assert!(count == 0 || len == 0 || (count - 1) * across + (len - 1) * along < data.len());
        Strided { data, across, along, count, len }
    }

    #[inline(always)]
    fn at(&self, r: usize, t: usize) -> [f32; L] {
        debug_assert!(r < self.count && t < self.len);
        // SAFETY: r < count and t < len (`tiled` checks them against its
        // bounds), and `new` checked that every such entry is in `data`.
        unsafe { *self.data.get_unchecked(r * self.across + t * self.along) }
    }
}

/// a b + c, lane by lane, each a fused multiply-add. (Written on values:
/// the compiler then keeps a tile's accumulators in vector registers.)
#[inline(always)]
fn fma_lanes<const L: usize>(a: [f32; L], b: [f32; L], c: [f32; L]) -> [f32; L] {
    let mut out = [0.0; L];
    for j in 0..L {
        out[j] = a[j].mul_add(b[j], c[j]);
    }
    out
}

/// g where the unit was active (v > 0), else 0: a select (vectorizable on
/// every path), not a branch per lane.
#[inline(always)]
fn relu_mask<const L: usize>(g: [f32; L], v: &[f32; L]) -> [f32; L] {
    let mut out = [0.0; L];
    for j in 0..L {
        out[j] = if v[j] <= 0.0 { 0.0 } else { g[j] };
    }
    out
}

/// The network on `rows` inputs: each output is bias + w[k][0] a[0] + w[k][1]
/// a[1] + ..., in that order; ReLU after the hidden layers.
#[inline(always)]
fn forward<const L: usize>(net: &Net, params: &[[f32; L]], input: &[[f32; L]], rows: usize, acts: &mut Acts<L>) {
    for l in 0..3 {
        let (o, i) = net.shapes[l];
        let (below, above) = acts.layers.split_at_mut(l);
        let a: &[[f32; L]] = if l == 0 { input } else { &below[l - 1] };
        let out = &mut above[0];
        let (w, b) = (&params[net.weights[l]..net.biases[l]], &params[net.biases[l]..net.biases[l] + o]);
        let relu = l < 2;
        tiled_for_lanes(
            rows,
            o,
            i,
            &|_, k| b[k],
            Strided::new(a, i, 1, rows, i),
            Strided::new(w, i, 1, o, i),
            &mut |n, k, mut v| {
                if relu {
                    for x in v.iter_mut() {
                        *x = x.max(0.0);
                    }
                }
                out[n * o + k] = v;
            },
        );
    }
}

/// Given d loss / d output in `acts.delta` (rows x 1 or rows x 2), the
/// gradient of every parameter into `grads` (if given), each summed over
/// the rows in order, and that of the inputs into `d_input` (if given), each
/// summed over the units in order (relu'(0) = 0).
#[inline(always)]
fn backward<const L: usize>(
    net: &Net,
    params: &[[f32; L]],
    input: &[[f32; L]],
    rows: usize,
    acts: &mut Acts<L>,
    mut grads: Option<&mut [[f32; L]]>,
    d_input: Option<&mut [[f32; L]]>,
) {
    let mut d_input = d_input;
    for l in (0..3).rev() {
        let (o, i) = net.shapes[l];
        let a: &[[f32; L]] = if l == 0 { input } else { &acts.layers[l - 1] };
        let d = &acts.delta[..rows * o];
        if let Some(grads) = grads.as_deref_mut() {
            let (gw, gb) = grads[net.weights[l]..net.biases[l] + o].split_at_mut(o * i);
            for (k, gb) in gb.iter_mut().enumerate() {
                let mut sum = [0.0f32; L];
                for n in 0..rows {
                    for j in 0..L {
                        sum[j] += d[n * o + k][j];
                    }
                }
                *gb = sum;
            }
            tiled_for_lanes(
                o,
                i,
                rows,
                &|_, _| [0.0; L],
                Strided::new(d, 1, o, o, rows),
                Strided::new(a, 1, i, i, rows),
                &mut |k, j, v| gw[k * i + j] = v,
            );
        }
        let into: &mut [[f32; L]] = if l > 0 {
            &mut acts.below[..rows * i]
        } else if let Some(d_input) = d_input.as_deref_mut() {
            &mut d_input[..rows * i]
        } else {
            break;
        };
        let w = &params[net.weights[l]..net.biases[l]];
        tiled_for_lanes(
            rows,
            i,
            o,
            &|_, _| [0.0; L],
            Strided::new(d, o, 1, rows, o),
            Strided::new(w, 1, i, i, o),
            &mut |n, j, v| into[n * i + j] = v,
        );
        if l > 0 {
            // Through the ReLU that made this layer's input.
            for (g, v) in into.iter_mut().zip(a) {
                *g = relu_mask(*g, v);
            }
            std::mem::swap(&mut acts.delta, &mut acts.below);
        }
    }
}

/// The logistic function from the fused engine's `exp`, without overflow:
/// 1 / (1 + e^-z) for z >= 0, e^z / (1 + e^z) below.
#[inline(always)]
fn sigmoid(z: f32) -> f32 {
    let e = exp(-z.abs());
    if z >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

/// A standard normal vector of `count` entries per seed, lane by lane.
fn noise_into<const L: usize>(cfg: &GanConfig, streams: &mut [ChaCha8Rng], count: usize, out: &mut [[f32; L]]) {
    for (lane, r) in streams.iter_mut().enumerate() {
        for v in out[..count * cfg.noise_dim].iter_mut() {
            v[lane] = normal(r) as f32;
        }
    }
}

/// A batch of real samples per seed: a mode drawn uniformly, plus std times two normal draws.
fn real_into<const L: usize>(cfg: &GanConfig, streams: &mut [ChaCha8Rng], out: &mut [[f32; L]]) {
    let modes = cfg.centres.len() as u64;
    for (lane, r) in streams.iter_mut().enumerate() {
        for p in out[..2 * cfg.batch].chunks_exact_mut(2) {
            let (cx, cy) = cfg.centres[r.random_range(0..modes) as usize];
            p[0][lane] = cx + (cfg.std * normal(r)) as f32;
            p[1][lane] = cy + (cfg.std * normal(r)) as f32;
        }
    }
}

/// He init, weights ~ normal(0, 2 / fan_in) layer by layer, biases 0, into lane `lane`.
fn init_into<const L: usize>(net: &Net, r: &mut ChaCha8Rng, params: &mut [[f32; L]], lane: usize) {
    for (l, &(o, i)) in net.shapes.iter().enumerate() {
        let std = (2.0 / i as f64).sqrt();
        for w in params[net.weights[l]..net.biases[l]].iter_mut() {
            w[lane] = (std * normal(r)) as f32;
        }
        for b in params[net.biases[l]..net.biases[l] + o].iter_mut() {
            b[lane] = 0.0;
        }
    }
}

/// Trains `seeds` (at most `L`) in the lanes of one group. The lanes past
/// the last seed repeat it, and their runs are dropped.
#[inline(always)]
fn run_group<const L: usize>(cfg: &GanConfig, seeds: &[u64], log_steps: &[u64]) -> Vec<GanRun> {
    assert!(!seeds.is_empty() && seeds.len() <= L);
    let lane_seed = |lane: usize| seeds[lane.min(seeds.len() - 1)];
    let (w, z, b, e) = (cfg.width, cfg.noise_dim, cfg.batch, cfg.eval_samples);
    let (gnet, dnet) = (Net::new([(w, z), (w, w), (2, w)]), Net::new([(w, 2), (w, w), (1, w)]));
    let (mut gp, mut dp) = (vec![[0.0; L]; gnet.params], vec![[0.0; L]; dnet.params]);
    for lane in 0..L {
        let mut r = rng::stream("gan/init", lane_seed(lane));
        init_into(&gnet, &mut r, &mut gp, lane);
        init_into(&dnet, &mut r, &mut dp, lane);
    }
    let (mut generator, mut discriminator) = (Trained::new(gp), Trained::new(dp));
    let mut streams: Vec<ChaCha8Rng> = (0..L).map(|lane| rng::stream("gan/batches", lane_seed(lane))).collect();
    let mut eval = vec![[0.0; L]; e * z];
    let mut eval_streams: Vec<ChaCha8Rng> = (0..L).map(|lane| rng::stream("gan/eval-noise", lane_seed(lane))).collect();
    noise_into(cfg, &mut eval_streams, e, &mut eval);

    // The discriminator sees the real batch in rows 0..b and the fakes in b..2b.
    let mut d_input = vec![[0.0; L]; 2 * b * 2];
    let mut noise = vec![[0.0; L]; b * z];
    let mut d_fake_x = vec![[0.0; L]; b * 2];
    let (mut g_acts, mut d_acts) = (Acts::new(&gnet, b), Acts::new(&dnet, 2 * b));
    let (mut g_eval, mut d_eval) = (Acts::new(&gnet, e), Acts::new(&dnet, e));
    let mut dx_eval = vec![[0.0; L]; e * 2];
    let rate = cfg.learning_rate;
    let scale = 1.0 / b as f32;
    let (mut beta1_t, mut beta2_t) = (1.0f32, 1.0f32);

    let mut runs: Vec<GanRun> = (0..seeds.len())
        .map(|_| GanRun { rows: Vec::with_capacity(log_steps.len()), diverged_at: None, samples: Vec::new() })
        .collect();
    let mut step = 0u64;
    for &log_step in log_steps {
        while step < log_step {
            real_into(cfg, &mut streams, &mut d_input);
            noise_into(cfg, &mut streams, b, &mut noise);
            forward(&gnet, &generator.params, &noise, b, &mut g_acts);
            d_input[2 * b..].copy_from_slice(&g_acts.layers[2]);
            // The discriminator's step, on real and fake, each a mean over the batch.
            forward(&dnet, &discriminator.params, &d_input, 2 * b, &mut d_acts);
            for n in 0..2 * b {
                let (out, delta) = (&d_acts.layers[2][n], &mut d_acts.delta[n]);
                for j in 0..L {
                    let d = out[j];
                    delta[j] = match (cfg.loss, n < b) {
                        (Loss::CrossEntropy, true) => -sigmoid(-d) * scale,
                        (Loss::CrossEntropy, false) => sigmoid(d) * scale,
                        (Loss::Hinge, true) => f32::from(u8::from(d < 1.0)) * -scale,
                        (Loss::Hinge, false) => f32::from(u8::from(d > -1.0)) * scale,
                    };
                }
            }
            backward(&dnet, &discriminator.params, &d_input, 2 * b, &mut d_acts, Some(&mut discriminator.grads), None);
            (beta1_t, beta2_t) = (beta1_t * BETA1, beta2_t * BETA2);
            let (c1, c2) = (1.0 - beta1_t, 1.0 - beta2_t);
            discriminator.adam(rate, c1, c2);
            // The generator's step, through the updated discriminator.
            let fake = &g_acts.layers[2];
            forward(&dnet, &discriminator.params, fake, b, &mut d_acts);
            for n in 0..b {
                let (out, delta) = (&d_acts.layers[2][n], &mut d_acts.delta[n]);
                for j in 0..L {
                    delta[j] = if cfg.non_saturating { -sigmoid(-out[j]) * scale } else { -scale };
                }
            }
            backward(&dnet, &discriminator.params, fake, b, &mut d_acts, None, Some(&mut d_fake_x));
            g_acts.delta[..b * 2].copy_from_slice(&d_fake_x);
            backward(&gnet, &generator.params, &noise, b, &mut g_acts, Some(&mut generator.grads), None);
            generator.adam(rate, c1, c2);
            step += 1;
        }
        // The measures, on the evaluation noise.
        forward(&gnet, &generator.params, &eval, e, &mut g_eval);
        let samples = &g_eval.layers[2];
        forward(&dnet, &discriminator.params, samples, e, &mut d_eval);
        // d D / d x for each sample on its own: a backward pass with d D = 1 per row.
        d_eval.delta[..e].fill([1.0; L]);
        backward(&dnet, &discriminator.params, samples, e, &mut d_eval, None, Some(&mut dx_eval));
        for (lane, run) in runs.iter_mut().enumerate() {
            let lane_samples: Vec<f32> = samples.iter().map(|v| v[lane]).collect();
            let row = measure(cfg, &lane_samples, dx_eval.iter().map(|v| v[lane]));
            if run.diverged_at.is_none() && !row.iter().all(|v| v.is_finite()) {
                run.diverged_at = Some(step);
            }
            run.rows.push(row);
            run.samples = lane_samples;
        }
    }
    runs
}

/// [modes covered, fraction on a mode, mean |grad_x D|] of one seed's
/// samples and the discriminator's gradients there (x1, x2 per sample).
#[inline(always)]
fn measure(cfg: &GanConfig, samples: &[f32], dx: impl Iterator<Item = f32>) -> Vec<f32> {
    let count = samples.len() / 2;
    let modes = cfg.centres.len();
    let reach = 3.0 * cfg.std as f32;
    let norm = |x: f32, y: f32| x.mul_add(x, y * y).sqrt();
    let mut per_mode = vec![0usize; modes];
    for p in samples.chunks_exact(2) {
        // The nearest centre, the first of equals.
        let mut nearest: Option<(usize, f32)> = None;
        for (k, &(cx, cy)) in cfg.centres.iter().enumerate() {
            let dist = norm(p[0] - cx, p[1] - cy);
            if nearest.is_none_or(|(_, best)| dist.total_cmp(&best).is_lt()) {
                nearest = Some((k, dist));
            }
        }
        if let Some((k, dist)) = nearest {
            if dist <= reach {
                per_mode[k] += 1;
            }
        }
    }
    let fair_quarter = count as f64 / (4.0 * modes as f64);
    let covered = per_mode.iter().filter(|&&c| c as f64 >= fair_quarter).count();
    let on_mode = per_mode.iter().sum::<usize>() as f32 / count as f32;
    let dx: Vec<f32> = dx.collect();
    let signal = dx.chunks_exact(2).map(|g| norm(g[0], g[1])).sum::<f32>() / count as f32;
    // A non-finite sample lands nowhere, so check the samples themselves too.
    let finite = samples.iter().all(|v| v.is_finite());
    vec![covered as f32, if finite { on_mode } else { f32::NAN }, signal]
}

/// The GAN's first implementation, plain f32 loops one seed at a time (with
/// libm's `exp` and `hypot`), kept as the reference the kernel is tested against.
#[cfg(test)]
pub(crate) mod reference {
    use super::*;

    /// A dense ReLU network with biases: layer l is weights (out, in) row-major, then biases.
    #[derive(Clone)]
    pub struct Mlp {
        pub shapes: Vec<(usize, usize)>,
        pub params: Vec<Vec<f32>>,
    }

    impl Mlp {
        pub fn new(shapes: Vec<(usize, usize)>, r: &mut ChaCha8Rng) -> Mlp {
            let mut params = Vec::new();
            for &(o, i) in &shapes {
                let std = (2.0 / i as f64).sqrt();
                params.push((0..o * i).map(|_| (std * normal(r)) as f32).collect());
                params.push(vec![0.0; o]);
            }
            Mlp { shapes, params }
        }

        pub fn forward(&self, x: &[f32], b: usize) -> Vec<Vec<f32>> {
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

        pub fn backward(&self, acts: &[Vec<f32>], b: usize, d_out: Vec<f32>) -> (Vec<Vec<f32>>, Vec<f32>) {
            let mut grads: Vec<Vec<f32>> = self.params.iter().map(|p| vec![0.0; p.len()]).collect();
            let mut d = d_out;
            for l in (0..self.shapes.len()).rev() {
                let (o, i) = self.shapes[l];
                let (w, a) = (&self.params[2 * l], &acts[l]);
                let mut d_in = vec![0f32; b * i];
                let (weight_grads, rest) = grads.split_at_mut(2 * l + 1);
                let (weight_grads, bias_grads) = (&mut weight_grads[2 * l], &mut rest[0]);
                for ((d_row, a_row), d_in_row) in d.chunks_exact(o).zip(a.chunks_exact(i)).zip(d_in.chunks_exact_mut(i))
                {
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

    struct Adam {
        rate: f32,
        step: i32,
        first: Vec<Vec<f32>>,
        second: Vec<Vec<f32>>,
    }

    impl Adam {
        fn new(net: &Mlp, rate: f32) -> Adam {
            let zeros: Vec<Vec<f32>> = net.params.iter().map(|p| vec![0.0; p.len()]).collect();
            Adam { rate, step: 0, first: zeros.clone(), second: zeros }
        }

        fn update(&mut self, net: &mut Mlp, grads: &[Vec<f32>]) {
            self.step += 1;
            let (c1, c2) = (1.0 - BETA1.powi(self.step), 1.0 - BETA2.powi(self.step));
            for (((p, g), m), v) in net.params.iter_mut().zip(grads).zip(&mut self.first).zip(&mut self.second) {
                for j in 0..p.len() {
                    m[j] = BETA1 * m[j] + (1.0 - BETA1) * g[j];
                    v[j] = BETA2 * v[j] + (1.0 - BETA2) * g[j] * g[j];
                    p[j] -= self.rate * (m[j] / c1) / ((v[j] / c2).sqrt() + 1e-8);
                }
            }
        }
    }

    fn sigmoid(z: f32) -> f32 {
        if z >= 0.0 {
            1.0 / (1.0 + (-z).exp())
        } else {
            let e = z.exp();
            e / (1.0 + e)
        }
    }

    fn noise(cfg: &GanConfig, r: &mut ChaCha8Rng, count: usize) -> Vec<f32> {
        (0..count * cfg.noise_dim).map(|_| normal(r) as f32).collect()
    }

    fn real(cfg: &GanConfig, r: &mut ChaCha8Rng, count: usize) -> Vec<f32> {
        let mut x = Vec::with_capacity(2 * count);
        for _ in 0..count {
            let (cx, cy) = cfg.centres[r.random_range(0..cfg.centres.len() as u64) as usize];
            x.push(cx + (cfg.std * normal(r)) as f32);
            x.push(cy + (cfg.std * normal(r)) as f32);
        }
        x
    }

    /// One seed's run, as the GAN kind first trained it.
    pub fn run(cfg: &GanConfig, seed: u64, log_steps: &[u64]) -> GanRun {
        let (w, z) = (cfg.width, cfg.noise_dim);
        let mut r = rng::stream("gan/init", seed);
        let mut generator = Mlp::new(vec![(w, z), (w, w), (2, w)], &mut r);
        let mut discriminator = Mlp::new(vec![(w, 2), (w, w), (1, w)], &mut r);
        let (mut adam_g, mut adam_d) =
            (Adam::new(&generator, cfg.learning_rate), Adam::new(&discriminator, cfg.learning_rate));
        let mut r = rng::stream("gan/batches", seed);
        let eval = noise(cfg, &mut rng::stream("gan/eval-noise", seed), cfg.eval_samples);
        let b = cfg.batch;
        let scale = 1.0 / b as f32;
        let mut run = GanRun { rows: Vec::new(), diverged_at: None, samples: Vec::new() };
        let mut step = 0u64;
        for &log_step in log_steps {
            while step < log_step {
                let real = real(cfg, &mut r, b);
                let z = noise(cfg, &mut r, b);
                let g_acts = generator.forward(&z, b);
                let fake = g_acts.last().unwrap();
                let real_acts = discriminator.forward(&real, b);
                let fake_acts = discriminator.forward(fake, b);
                let d_real: Vec<f32> = real_acts
                    .last()
                    .unwrap()
                    .iter()
                    .map(|&d| match cfg.loss {
                        Loss::CrossEntropy => -sigmoid(-d) * scale,
                        Loss::Hinge => f32::from(u8::from(d < 1.0)) * -scale,
                    })
                    .collect();
                let d_fake: Vec<f32> = fake_acts
                    .last()
                    .unwrap()
                    .iter()
                    .map(|&d| match cfg.loss {
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
                adam_d.update(&mut discriminator, &grads);
                let acts = discriminator.forward(fake, b);
                let d_out: Vec<f32> = acts
                    .last()
                    .unwrap()
                    .iter()
                    .map(|&d| if cfg.non_saturating { -sigmoid(-d) * scale } else { -scale })
                    .collect();
                let (_, d_fake_x) = discriminator.backward(&acts, b, d_out);
                let (g_grads, _) = generator.backward(&g_acts, b, d_fake_x);
                adam_g.update(&mut generator, &g_grads);
                step += 1;
            }
            let count = cfg.eval_samples;
            let samples = generator.forward(&eval, count).pop().unwrap();
            let modes = cfg.centres.len();
            let reach = 3.0 * cfg.std as f32;
            let mut per_mode = vec![0usize; modes];
            for p in samples.chunks(2) {
                let nearest = (0..modes)
                    .map(|k| (k, (p[0] - cfg.centres[k].0).hypot(p[1] - cfg.centres[k].1)))
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
            let acts = discriminator.forward(&samples, count);
            let (_, dx) = discriminator.backward(&acts, count, vec![1.0; count]);
            let signal = dx.chunks(2).map(|g| g[0].hypot(g[1])).sum::<f32>() / count as f32;
            let finite = samples.iter().all(|v| v.is_finite());
            let row = vec![covered as f32, if finite { on_mode } else { f32::NAN }, signal];
            if run.diverged_at.is_none() && !row.iter().all(|v| v.is_finite()) {
                run.diverged_at = Some(step);
            }
            run.rows.push(row);
            run.samples = samples;
        }
        run
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fused::paths;

    fn small(loss: Loss, non_saturating: bool) -> GanConfig {
        let modes = 4;
        let centres = (0..modes)
            .map(|k| {
                let angle = 2.0 * std::f64::consts::PI * k as f64 / modes as f64;
                ((2.0 * angle.cos()) as f32, (2.0 * angle.sin()) as f32)
            })
            .collect();
        GanConfig {
            noise_dim: 2,
            width: 8,
            batch: 16,
            eval_samples: 64,
            centres,
            std: 0.05,
            learning_rate: 0.001,
            loss,
            non_saturating,
        }
    }

    fn bits(runs: &[GanRun]) -> Vec<u32> {
        runs.iter().flat_map(|run| run.rows.iter().chain([&run.samples]).flatten().map(|v| v.to_bits())).collect()
    }

    /// Every vector path the CPU has, and every lane count (a seed alone, or
    /// in a group of 8 or 16 beside others, in any lane), gives the same bits,
    /// for both discriminator losses and both generator losses.
    #[test]
    fn every_path_and_every_lane_group_gives_the_same_bits() {
        let log_steps = crate::engine::log_schedule(60, 4);
        let seeds: Vec<u64> = (0..10).collect();
        for (loss, non_saturating) in [(Loss::CrossEntropy, true), (Loss::Hinge, false), (Loss::Hinge, true)] {
            let cfg = small(loss, non_saturating);
            let alone: Vec<GanRun> = seeds
                .iter()
                .flat_map(|&s| at_most(VectorPath::Portable, || train_in_lanes(&cfg, &[s], &log_steps, 1)))
                .collect();
            for path in paths() {
                for lanes in [1, 8, 16] {
                    let runs = at_most(path, || train_in_lanes(&cfg, &seeds, &log_steps, lanes));
                    assert_eq!(
                        bits(&alone),
                        bits(&runs),
                        "{loss:?}: the {} path with {lanes} lanes differs",
                        path.name()
                    );
                }
                // The pool's split, a shard of seeds 3..7 and its lanes padded.
                let shard = at_most(path, || train(&cfg, &seeds[3..7], &log_steps));
                assert_eq!(bits(&alone[3..7]), bits(&shard), "{loss:?}: a shard on the {} path differs", path.name());
            }
        }
    }

    /// Against the first implementation (plain f32 loops, separate multiplies
    /// and adds, libm's exp and hypot, the real and fake batches summed apart):
    /// the same mathematics rounded in another order. After 300 steps most
    /// seeds' final samples agree within 1e-4 (on a ring of radius 2: f32's
    /// rounding, 6e-8 relative per operation, amplified about a hundredfold by
    /// the steps), and their signal within 1e-4 relative at every logged step.
    /// A seed on which a ReLU unit or a hinge margin sits on its kink at some
    /// step, on one side in one implementation and on the other in the other,
    /// takes a different gradient there and moves further apart (up to 3e-2 of
    /// its samples measured here; 10 of the 16 runs agree within 1e-4): so at
    /// least half the runs must agree that closely, and every run within 0.1
    /// (samples) and 1e-2 (signal).
    #[test]
    fn agrees_with_the_first_implementation() {
        let log_steps = crate::engine::log_schedule(300, 6);
        let mut close = 0;
        for (loss, non_saturating) in [(Loss::CrossEntropy, true), (Loss::Hinge, false)] {
            let cfg = small(loss, non_saturating);
            let runs = train(&cfg, &[0, 1, 2, 3, 4, 5, 6, 7], &log_steps);
            for (seed, run) in runs.iter().enumerate() {
                let old = reference::run(&cfg, seed as u64, &log_steps);
                let samples = old.samples.iter().zip(&run.samples).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                let signal = old
                    .rows
                    .iter()
                    .zip(&run.rows)
                    .map(|(a, b)| ((a[SIGNAL] - b[SIGNAL]) / a[SIGNAL]).abs())
                    .fold(0.0, f32::max);
                assert!(samples < 0.1 && signal < 1e-2, "{loss:?} seed {seed}: {samples} (samples), {signal} (signal)");
                if samples < 1e-4 && signal < 1e-4 {
                    close += 1;
                }
            }
        }
        assert!(close >= 8, "only {close} of 16 runs agree within 1e-4");
    }

    /// The reference's hand-written backward pass against central differences
    /// (in f64 of an f32 network: tolerances of a few 1e-3), for the weights,
    /// biases and inputs of a net with the GAN's shape.
    #[test]
    fn backward_matches_finite_differences() {
        use reference::Mlp;
        let mut r = rng::stream("gan/test", 1);
        let net = Mlp::new(vec![(5, 2), (5, 5), (1, 5)], &mut r);
        let b = 3;
        let x: Vec<f32> = (0..b * 2).map(|_| normal(&mut r) as f32).collect();
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
