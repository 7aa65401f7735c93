//! The fused engine: many full-batch gradient-descent steps of every member
//! of an ensemble in one Candle custom op (`InplaceOp1`) over a packed
//! (member, parameters) tensor.
//!
//! For the paper's small networks the batched Candle program spends most of
//! its time in per-op overhead and in one gemm call per member and op; here
//! one call runs a whole block of steps (between two logged steps) with
//! plain loops written so that the compiler vectorizes them, and no
//! allocation inside the loop. The arithmetic is the same as the batched
//! program's (`batched.rs`), in another summation order, so the
//! two agree to float tolerance (tests/engine.rs).

use anyhow::Result;
use candle_core::{CpuStorage, CustomOp1, Device, InplaceOp1, Layout, Shape, Tensor};

use super::types::{Advance, EnsembleData, EnsembleWeights, Objective, TrainConfig};
use crate::values::Loss;

/// Number of parameters of one member.
pub fn params_per_member(shapes: &[(usize, usize)]) -> usize {
    shapes.iter().map(|(o, i)| o * i).sum()
}

/// Packs weights member-major, member e's layers one after the other, each
/// transposed to (in, out): then every inner loop of a step runs along a
/// contiguous row and can skip the zeros of the activations (ReLU zeros,
/// orthogonal inputs) that multiply a whole row.
pub fn pack(w: &EnsembleWeights) -> Vec<f32> {
    let mut out = Vec::with_capacity(w.members * params_per_member(&w.shapes));
    for e in 0..w.members {
        for (l, &(o, i)) in w.shapes.iter().enumerate() {
            let layer = w.member_layer(e, l);
            out.extend((0..i * o).map(|k| layer[(k % o) * i + k / o]));
        }
    }
    out
}

/// The inverse of `pack`.
pub fn unpack(packed: &[f32], like: &EnsembleWeights) -> EnsembleWeights {
    let per = params_per_member(&like.shapes);
    let mut layers: Vec<Vec<f32>> = like.shapes.iter().map(|(o, i)| Vec::with_capacity(like.members * o * i)).collect();
    for e in 0..like.members {
        let mut at = e * per;
        for (l, &(o, i)) in like.shapes.iter().enumerate() {
            let t = &packed[at..at + o * i];
            layers[l].extend((0..o * i).map(|k| t[(k % i) * o + k / i]));
            at += o * i;
        }
    }
    EnsembleWeights { members: like.members, shapes: like.shapes.clone(), layers }
}

/// Parameters packed (member, parameters) in one tensor, advanced by
/// `Steps`.
pub(super) struct FusedState<'a> {
    params: Tensor,
    like: &'a EnsembleWeights,
    data: &'a EnsembleData,
    cfg: &'a TrainConfig,
}

impl<'a> FusedState<'a> {
    pub(super) fn new(init: &'a EnsembleWeights, data: &'a EnsembleData, cfg: &'a TrainConfig) -> Result<Self> {
        let packed = pack(init);
        let len = packed.len();
        Ok(FusedState { params: Tensor::from_vec(packed, len, &Device::Cpu)?, like: init, data, cfg })
    }
}

impl Advance for FusedState<'_> {
    fn advance(&mut self, steps: u64) -> Result<()> {
        if steps > 0 {
            let op = Steps {
                shapes: &self.like.shapes,
                data: self.data,
                objective: self.cfg.objective(),
                learning_rate: self.cfg.learning_rate as f32,
                steps,
            };
            self.params.inplace_op1(&op)?;
        }
        Ok(())
    }
    fn margins(&self, data: &EnsembleData) -> Result<Vec<f32>> {
        let m = self.params.apply_op1_no_bwd(&Margins { shapes: &self.like.shapes, data })?;
        Ok(m.flatten_all()?.to_vec1::<f32>()?)
    }
    fn weights(&self) -> Result<EnsembleWeights> {
        Ok(unpack(&self.params.to_vec1::<f32>()?, self.like))
    }
}

/// `steps` gradient-descent steps of every member, in place.
pub struct Steps<'a> {
    pub shapes: &'a [(usize, usize)],
    pub data: &'a EnsembleData,
    pub objective: Objective,
    pub learning_rate: f32,
    pub steps: u64,
}

impl InplaceOp1 for Steps<'_> {
    fn name(&self) -> &'static str {
        "fused-gradient-descent-steps"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(all) = storage else {
            candle_core::bail!("fused steps need f32 parameters");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("fused steps need contiguous parameters");
        };
        let params = &mut all[start..end];
        let per = params_per_member(self.shapes);
        if params.len() != per * self.data.members {
            candle_core::bail!("fused steps: {} parameters for {} members of {per}", params.len(), self.data.members);
        }
        // By the network's size alone, never by the number of members. The member kernel
        // gives the lane kernel's bits (one arithmetic, one order: tests/engine.rs) as long
        // as every weight is finite; once one is infinite, a zero activation's product is
        // NaN in the lanes and skipped by the member kernel. So a shard of one network
        // takes the whole ensemble's kernel, diverging or not.
        let one_output = self.shapes.last().is_some_and(|&(out, _)| out == 1);
        if one_output && self.data.points * per <= MAX_LANE_WORK && !MEMBER_KERNEL_ONLY.with(|m| m.get()) {
            run_lanes(params, self.shapes, self.data, self.objective, self.learning_rate, self.steps);
            return Ok(());
        }
        let mut scratch = Scratch::new(self.shapes, self.data.points);
        for (e, member) in params.chunks_exact_mut(per).enumerate() {
            let (x, y) = member_data(self.data, e);
            run_steps(member, self.shapes, x, y, self.objective, self.learning_rate, self.steps, &mut scratch);
        }
        Ok(())
    }
}

/// Margins of every member on a data set (flat (E, N)), computed exactly as
/// the fused steps compute them.
pub struct Margins<'a> {
    pub shapes: &'a [(usize, usize)],
    pub data: &'a EnsembleData,
}

impl CustomOp1 for Margins<'_> {
    fn name(&self) -> &'static str {
        "fused-margins"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(all) = storage else {
            candle_core::bail!("fused margins need f32 parameters");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("fused margins need contiguous parameters");
        };
        let mut out = Vec::with_capacity(self.data.members * self.data.points);
        all_margins(&all[start..end], self.shapes, self.data, &mut out);
        Ok((CpuStorage::F32(out), Shape::from((self.data.members, self.data.points))))
    }
}

fn member_data(data: &EnsembleData, e: usize) -> (&[f32], &[f32]) {
    let (n, d) = (data.points, data.dim);
    (&data.x[e * n * d..(e + 1) * n * d], &data.y[e * n..(e + 1) * n])
}

/// Buffers of one member's step, reused across steps and members.
struct Scratch {
    /// Post-activations of each hidden layer, (N, out_l).
    hidden: Vec<Vec<f32>>,
    /// f(x) per point: (N, K), K = 1 for one output.
    output: Vec<f32>,
    /// dL/d(pre-activation) of the layer being differentiated, and of the one below.
    delta: Vec<f32>,
    below: Vec<f32>,
    grad: Vec<f32>,
    /// Where each layer starts in a member's packed parameters.
    offsets: Vec<usize>,
}

impl Scratch {
    fn new(shapes: &[(usize, usize)], n: usize) -> Scratch {
        let widest = shapes.iter().map(|s| s.0.max(s.1)).max().unwrap_or(1);
        Scratch {
            hidden: shapes[..shapes.len() - 1].iter().map(|(o, _)| vec![0.0; n * o]).collect(),
            output: vec![0.0; n * shapes[shapes.len() - 1].0],
            delta: vec![0.0; n * widest],
            below: vec![0.0; n * widest],
            grad: vec![0.0; ROWS * widest],
            offsets: shapes.iter().scan(0, |at, (o, i)| Some(std::mem::replace(at, *at + o * i))).collect(),
        }
    }
}

/// The instruction sets the fused kernels are compiled for, narrowest first.
/// Every one gives the same bits: see `with_vector_paths!`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum VectorPath {
    /// Plain x86-64 (SSE2) or another architecture; fused multiply-adds in software (`fmaf`).
    Portable,
    /// AVX2 with FMA: 8 lanes per register.
    Avx2Fma,
    /// AVX-512 (F and VL): 16 lanes per register, 32 registers.
    Avx512,
}

impl VectorPath {
    pub fn name(self) -> &'static str {
        match self {
            VectorPath::Portable => "portable",
            VectorPath::Avx2Fma => "AVX2+FMA",
            VectorPath::Avx512 => "AVX-512",
        }
    }
}

/// The widest path this CPU can take.
pub fn widest_path() -> VectorPath {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx2") && has!("fma") {
            if has!("avx512f") && has!("avx512vl") {
                return VectorPath::Avx512;
            }
            return VectorPath::Avx2Fma;
        }
    }
    VectorPath::Portable
}

/// Every path this CPU can take, narrowest first (for the tests and the benchmark).
pub fn paths() -> Vec<VectorPath> {
    [VectorPath::Portable, VectorPath::Avx2Fma, VectorPath::Avx512]
        .into_iter()
        .filter(|p| *p <= widest_path())
        .collect()
}

/// The path the kernels take on this thread now.
pub fn path() -> VectorPath {
    widest_path().min(WIDEST_ALLOWED.with(|p| p.get()))
}

/// Runs `f` with the fused kernels on `path` at the widest on this thread (a
/// Candle CPU op runs on it), restored when `f` returns or panics: for
/// comparing the paths bit for bit (tests/engine.rs) and timing each (the benchmark).
#[doc(hidden)]
pub fn at_most<R>(path: VectorPath, f: impl FnOnce() -> R) -> R {
    struct Restore(VectorPath);
    impl Drop for Restore {
        fn drop(&mut self) {
            WIDEST_ALLOWED.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(WIDEST_ALLOWED.with(|p| p.replace(path)));
    f()
}

thread_local! {
    /// Set by `at_most` for the calling thread.
    static WIDEST_ALLOWED: std::cell::Cell<VectorPath> = const { std::cell::Cell::new(VectorPath::Avx512) };
    /// Set by `member_kernel_only`: tiny nets too are stepped one member at a time.
    static MEMBER_KERNEL_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Set by `one_row_at_a_time`: `combine` alone, never `combine_rows`.
    static ONE_ROW_AT_A_TIME: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the member kernel may combine `ROWS` rows at once (see `one_row_at_a_time`).
fn rows_at_once() -> bool {
    !ONE_ROW_AT_A_TIME.with(|f| f.get())
}

/// Runs `f` with the member kernel combining one row at a time on this
/// thread: for comparing `combine_rows` with `combine` bit for bit (tests/engine.rs).
#[doc(hidden)]
pub fn one_row_at_a_time<R>(f: impl FnOnce() -> R) -> R {
    with_flag(&ONE_ROW_AT_A_TIME, f)
}

/// Runs `f` with `flag` set on this thread, restored when `f` returns or panics.
fn with_flag<R>(flag: &'static std::thread::LocalKey<std::cell::Cell<bool>>, f: impl FnOnce() -> R) -> R {
    struct Restore(&'static std::thread::LocalKey<std::cell::Cell<bool>>, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            self.0.with(|p| p.set(self.1));
        }
    }
    let _restore = Restore(flag, flag.with(|p| p.replace(true)));
    f()
}

/// Runs `f` with every network stepped by the one-member kernel on this
/// thread, the tiny ones too: for comparing it with the lane kernel bit for
/// bit (tests/engine.rs).
#[doc(hidden)]
pub fn member_kernel_only<R>(f: impl FnOnce() -> R) -> R {
    with_flag(&MEMBER_KERNEL_ONLY, f)
}

/// Defines `fn $name(args) body` three times over: compiled for AVX-512,
/// for AVX2 with FMA, and portable, and runs the one `path()` names. One
/// body, so the paths cannot drift apart; its arithmetic is written out lane
/// by lane in a fixed order, every multiply-add a `mul_add`, and the
/// compiler keeps the order of float operations whatever the vector width
/// (it never reassociates them). A fused multiply-add is correctly rounded
/// (IEEE 754), so the FMA instruction and the portable path's software
/// `fmaf` give the same bits; and so every path, and every CPU, does.
macro_rules! with_vector_paths {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) $body
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) $body
                match path() {
                    // SAFETY: the CPU has AVX-512 F and VL, AVX2 and FMA (`widest_path` checked it).
                    VectorPath::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: the CPU has AVX2 and FMA (`widest_path` checked it).
                    VectorPath::Avx2Fma => return unsafe { avx2($($arg),*) },
                    VectorPath::Portable => {}
                }
            }
            $body
        }
    };
}
pub(super) use with_vector_paths;

with_vector_paths! {
    /// `steps` steps of one member, with the widest vector instructions the CPU has.
    fn run_steps(
        params: &mut [f32],
        shapes: &[(usize, usize)],
        x: &[f32],
        y: &[f32],
        objective: Objective,
        lr: f32,
        steps: u64,
        s: &mut Scratch,
    ) {
        for _ in 0..steps {
            step(params, shapes, x, y, objective, lr, s);
        }
    }
}

with_vector_paths! {
    /// f(x) y of every member's points, appended to `out` member by member,
    /// with the widest vector instructions the CPU has (compiled without
    /// them, `forward`'s every `mul_add` would be a call to software `fmaf`).
    fn all_margins(params: &[f32], shapes: &[(usize, usize)], data: &EnsembleData, out: &mut Vec<f32>) {
        let mut scratch = Scratch::new(shapes, data.points);
        let classes = shapes[shapes.len() - 1].0;
        for (e, member) in params.chunks_exact(params_per_member(shapes)).enumerate() {
            let (x, y) = member_data(data, e);
            forward(member, shapes, x, &mut scratch);
            if classes == 1 {
                out.extend(scratch.output.iter().zip(y).map(|(f, y)| f * y));
            } else {
                out.extend(scratch.output.chunks_exact(classes).zip(y).map(|(f, &c)| class_margin(f, c as usize)));
            }
        }
    }
}

/// Dot product with 8 independent accumulators, so that it vectorizes (a
/// single float accumulator would force one add after another). Its order is
/// part of the arithmetic, the same on every path: accumulator k sums the
/// products of the indices k, k + 8, ... below the last multiple of 8 (each
/// a fused multiply-add), the 8 are added in order 0..7, then the rest of
/// the products in order. `lane_dot` sums in this order too.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] = x[k].mul_add(y[k], acc[k]);
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for (x, y) in ra.iter().zip(rb) {
        sum = x.mul_add(*y, sum);
    }
    sum
}

/// Register-blocked sum of scaled rows: out[c] = sum_k coef(k) m[k * stride + c]
/// for k in 0..count, skipping zero coefficients. The accumulators stay in
/// registers, 16 columns (two AVX registers) per block and up to 4 blocks in
/// one pass over the coefficients, so a multiply-add costs one load, not a
/// load and a store, and each coefficient is read and tested once per 64
/// columns. Every column sums over k in order, whatever the blocking.
#[inline(always)]
fn combine(count: usize, coef: impl Fn(usize) -> f32 + Copy, m: &[f32], stride: usize, out: &mut [f32]) {
    let width = out.len();
    let mut start = 0;
    while width - start >= BLOCK {
        let blocks = ((width - start) / BLOCK).min(4);
        let cols = &mut out[start..start + blocks * BLOCK];
        match blocks {
            4 => combine_blocks::<4>(count, coef, m, stride, start, cols),
            3 => combine_blocks::<3>(count, coef, m, stride, start, cols),
            2 => combine_blocks::<2>(count, coef, m, stride, start, cols),
            _ => combine_blocks::<1>(count, coef, m, stride, start, cols),
        }
        start += blocks * BLOCK;
    }
    for (j, o) in out[start..].iter_mut().enumerate() {
        let mut acc = 0.0f32;
        for k in 0..count {
            acc = coef(k).mul_add(m[k * stride + start + j], acc);
        }
        *o = acc;
    }
}

const BLOCK: usize = 16;

/// Rows that `combine_rows` computes at once.
const ROWS: usize = 4;

/// `combine` for `ROWS` rows at once: out[r * width + c] = sum_k coef(k)[r]
/// m[k * stride + c], where width = out.len() / ROWS. Every column sums over
/// k in order, as `combine` does, so every output has `combine`'s bits: a k
/// is skipped only where all its coefficients are zero, and the product of
/// a zero coefficient (+-0) leaves a nonzero or +0 accumulator as it was
/// (tested). Not with an infinite weight (0 x inf is NaN), which only a
/// diverged training has; which of the two runs is fixed by the shapes and
/// the point count, so a job's bits never depend on the machine. Each row of
/// `m` is loaded once for `ROWS` rows: 4 x 16 accumulators stay in registers.
#[inline(always)]
fn combine_rows(coefs: impl Iterator<Item = [f32; ROWS]> + Clone, m: &[f32], stride: usize, out: &mut [f32]) {
    let width = out.len() / ROWS;
    let mut start = 0;
    while width - start >= BLOCK {
        let mut acc = [[0.0f32; BLOCK]; ROWS];
        for (c, m_row) in coefs.clone().zip(m.chunks(stride)) {
            if c.iter().any(|&v| v != 0.0) {
                let row: &[f32; BLOCK] = m_row[start..start + BLOCK].try_into().unwrap();
                for r in 0..ROWS {
                    for j in 0..BLOCK {
                        acc[r][j] = c[r].mul_add(row[j], acc[r][j]);
                    }
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            out[r * width + start..r * width + start + BLOCK].copy_from_slice(a);
        }
        start += BLOCK;
    }
    for j in start..width {
        for r in 0..ROWS {
            let mut acc = 0.0f32;
            for (c, m_row) in coefs.clone().zip(m.chunks(stride)) {
                acc = c[r].mul_add(m_row[j], acc);
            }
            out[r * width + j] = acc;
        }
    }
}

#[inline(always)]
fn combine_blocks<const B: usize>(
    count: usize,
    coef: impl Fn(usize) -> f32,
    m: &[f32],
    stride: usize,
    col0: usize,
    out: &mut [f32],
) {
    let mut acc = [[0.0f32; BLOCK]; B];
    for k in 0..count {
        let c = coef(k);
        if c != 0.0 {
            let row = &m[k * stride + col0..k * stride + col0 + B * BLOCK];
            for b in 0..B {
                for j in 0..BLOCK {
                    acc[b][j] = c.mul_add(row[b * BLOCK + j], acc[b][j]);
                }
            }
        }
    }
    for b in 0..B {
        out[b * BLOCK..(b + 1) * BLOCK].copy_from_slice(&acc[b]);
    }
}

#[inline(always)]
fn forward(params: &[f32], shapes: &[(usize, usize)], x: &[f32], s: &mut Scratch) {
    let depth = shapes.len();
    let n = s.output.len() / shapes[depth - 1].0;
    for l in 0..depth {
        let (out, inp) = shapes[l];
        // Transposed: wt[i * out + o] is the weight from input i to output o.
        let wt = &params[s.offsets[l]..s.offsets[l] + out * inp];
        let (done, rest) = s.hidden.split_at_mut(l);
        let input: &[f32] = if l == 0 { x } else { &done[l - 1] };
        let target: &mut [f32] = if l + 1 < depth { &mut rest[0] } else { &mut s.output };
        let mut p = 0;
        if out > 1 && rows_at_once() {
            // Four points at a time: each weight row loaded once for four.
            while p + ROWS <= n {
                let rows = &input[p * inp..(p + ROWS) * inp];
                let (r0, rest) = rows.split_at(inp);
                let (r1, rest) = rest.split_at(inp);
                let (r2, r3) = rest.split_at(inp);
                let coefs = r0.iter().zip(r1).zip(r2).zip(r3).map(|(((a, b), c), d)| [*a, *b, *c, *d]);
                combine_rows(coefs, wt, out, &mut target[p * out..(p + ROWS) * out]);
                p += ROWS;
            }
        }
        for p in p..n {
            let a = &input[p * inp..(p + 1) * inp];
            let row = &mut target[p * out..(p + 1) * out];
            if out == 1 {
                // One output: a dot product along the input row.
                row[0] = dot(a, wt);
            } else {
                combine(inp, |i| a[i], wt, out, row);
            }
        }
        if l + 1 < depth {
            // relu; relu'(0) = 0 below, as in the batched program.
            for v in target[..n * out].iter_mut() {
                *v = v.max(0.0);
            }
        }
    }
}

// The loops run over points and index several arrays by the same point.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn step(
    params: &mut [f32],
    shapes: &[(usize, usize)],
    x: &[f32],
    y: &[f32],
    objective: Objective,
    lr: f32,
    s: &mut Scratch,
) {
    let depth = shapes.len();
    let n = y.len();
    forward(params, shapes, x, s);
    let classes = shapes[depth - 1].0;
    if classes > 1 {
        // Softmax cross-entropy over K classes, y the class index:
        // dL/df[p][k] = (softmax(f[p])[k] - 1[k = y[p]]) / N.
        for p in 0..n {
            let f = &s.output[p * classes..(p + 1) * classes];
            let delta = &mut s.delta[p * classes..(p + 1) * classes];
            softmax_into(f, delta);
            delta[y[p] as usize] -= 1.0;
            for d in delta.iter_mut() {
                *d /= n as f32;
            }
        }
    } else {
        for p in 0..n {
            s.delta[p] = output_delta(s.output[p], y[p], n, objective);
        }
    }
    for l in (0..depth).rev() {
        let (out, inp) = shapes[l];
        let input: &[f32] = if l == 0 { x } else { &s.hidden[l - 1] };
        let wt = &mut params[s.offsets[l]..s.offsets[l] + out * inp];
        if l > 0 {
            // Through the old weights: below[p][i] = relu'(pre[p][i]) sum_o delta[p][o] wt[i][o],
            // only where the unit is active.
            let below = &mut s.below[..n * inp];
            for p in 0..n {
                let active = &input[p * inp..(p + 1) * inp];
                let below = &mut below[p * inp..(p + 1) * inp];
                if out == 1 {
                    // `dot` of one product is that product added to +0 (its 8
                    // accumulators sum to +0): one multiply-add per unit, across units.
                    let d = s.delta[p];
                    for ((b, a), w) in below.iter_mut().zip(active).zip(wt.iter()) {
                        *b = if *a > 0.0 { d.mul_add(*w, 0.0) } else { 0.0 };
                    }
                    continue;
                }
                let delta = &s.delta[p * out..(p + 1) * out];
                for (i, (b, a)) in below.iter_mut().zip(active).enumerate() {
                    *b = if *a > 0.0 { dot(delta, &wt[i * out..(i + 1) * out]) } else { 0.0 };
                }
            }
        }
        if out == 1 {
            // One output: grad = sum_p delta[p] input[p], in registers (`combine`).
            let grad = &mut s.grad[..inp];
            combine(n, |p| s.delta[p], input, inp, grad);
            for (w, g) in wt.iter_mut().zip(grad.iter()) {
                *w = (-lr).mul_add(*g, *w);
            }
            if l > 0 {
                std::mem::swap(&mut s.delta, &mut s.below);
            }
            continue;
        }
        // grad[i][o] = sum_p input[p][i] delta[p][o], then one step on row i;
        // four rows at a time, each row of delta loaded once for four.
        let mut i = 0;
        while rows_at_once() && i + ROWS <= inp {
            let grad = &mut s.grad[..ROWS * out];
            let coefs = input.chunks_exact(inp).take(n).map(|row| <[f32; ROWS]>::try_from(&row[i..i + ROWS]).unwrap());
            combine_rows(coefs, &s.delta, out, grad);
            for (w, g) in wt[i * out..(i + ROWS) * out].iter_mut().zip(grad.iter()) {
                *w = (-lr).mul_add(*g, *w);
            }
            i += ROWS;
        }
        for i in i..inp {
            let grad = &mut s.grad[..out];
            combine(n, |p| input[p * inp + i], &s.delta, out, grad);
            for (w, g) in wt[i * out..(i + 1) * out].iter_mut().zip(grad.iter()) {
                *w = (-lr).mul_add(*g, *w);
            }
        }
        if l > 0 {
            std::mem::swap(&mut s.delta, &mut s.below);
        }
    }
}

/// Networks this small (points x parameters) are stepped 16 members at a
/// time, one member per vector lane: their loops are too short to vectorize
/// within a member, and their loop overhead is then shared by 16; two
/// 8-lane registers per operation give two independent chains of fused
/// multiply-adds, which hides their latency.
const MAX_LANE_WORK: usize = 64;
/// Lanes per group: 16 for an ensemble that fills them (two 8-lane registers
/// per operation: two independent chains of fused multiply-adds, which hides
/// their latency), 4 or 1 for a few networks or a lone one, so that a lone
/// tiny network does not pay for 15 empty lanes. Every lane computes the
/// same arithmetic in the same order whatever the group's width, so the
/// width changes no bit.
const LANES: usize = 16;

/// Steps every member in groups of lanes (the last group padded with copies
/// of the last member, whose results are dropped), as wide as the ensemble fills.
fn run_lanes(
    params: &mut [f32],
    shapes: &[(usize, usize)],
    data: &EnsembleData,
    objective: Objective,
    lr: f32,
    steps: u64,
) {
    match data.members {
        m if m >= LANES / 2 => run_lanes_of::<LANES>(params, shapes, data, objective, lr, steps, run_lane_steps_16),
        m if m >= 2 => run_lanes_of::<4>(params, shapes, data, objective, lr, steps, run_lane_steps_4),
        _ => run_lanes_of::<1>(params, shapes, data, objective, lr, steps, run_lane_steps_1),
    }
}

/// One group's steps, compiled for one lane count (see `with_vector_paths!`).
type LaneSteps<const L: usize> = fn(
    &mut [[f32; L]],
    &[(usize, usize)],
    &[usize],
    &[[f32; L]],
    &[[f32; L]],
    Objective,
    f32,
    u64,
    &mut LaneScratch<L>,
);

#[allow(clippy::too_many_arguments)]
fn run_lanes_of<const L: usize>(
    params: &mut [f32],
    shapes: &[(usize, usize)],
    data: &EnsembleData,
    objective: Objective,
    lr: f32,
    steps: u64,
    run: LaneSteps<L>,
) {
    let per = params_per_member(shapes);
    let (n, d, members) = (data.points, data.dim, data.members);
    let offsets: Vec<usize> = shapes.iter().scan(0, |at, (o, i)| Some(std::mem::replace(at, *at + o * i))).collect();
    let widest = shapes.iter().map(|s| s.0.max(s.1)).max().unwrap_or(1);
    let mut s = LaneScratch {
        hidden: shapes[..shapes.len() - 1].iter().map(|(o, _)| vec![[0.0; L]; n * o]).collect(),
        output: vec![[0.0; L]; n],
        delta: vec![[0.0; L]; n * widest],
        below: vec![[0.0; L]; n * widest],
    };
    for first in (0..members).step_by(L) {
        let lanes: [usize; L] = std::array::from_fn(|j| (first + j).min(members - 1));
        let mut p: Vec<[f32; L]> = (0..per).map(|k| lanes.map(|e| params[e * per + k])).collect();
        let x: Vec<[f32; L]> = (0..n * d).map(|k| lanes.map(|e| data.x[e * n * d + k])).collect();
        let y: Vec<[f32; L]> = (0..n).map(|k| lanes.map(|e| data.y[e * n + k])).collect();
        run(&mut p, shapes, &offsets, &x, &y, objective, lr, steps, &mut s);
        for (j, &e) in lanes.iter().enumerate().take(members - first) {
            for k in 0..per {
                params[e * per + k] = p[k][j];
            }
        }
    }
}

struct LaneScratch<const L: usize> {
    hidden: Vec<Vec<[f32; L]>>,
    output: Vec<[f32; L]>,
    delta: Vec<[f32; L]>,
    below: Vec<[f32; L]>,
}

macro_rules! lane_steps {
    ($name:ident, $lanes:expr) => {
        with_vector_paths! {
            /// `steps` steps of a group of lanes, with the widest vector instructions the CPU has.
            fn $name(
                p: &mut [[f32; $lanes]],
                shapes: &[(usize, usize)],
                offsets: &[usize],
                x: &[[f32; $lanes]],
                y: &[[f32; $lanes]],
                objective: Objective,
                lr: f32,
                steps: u64,
                s: &mut LaneScratch<$lanes>,
            ) {
                if y.len() == 1 && shapes.len() <= MAX_NARROW_DEPTH && shapes.iter().all(|&(out, _)| out == 1) {
                    for _ in 0..steps {
                        narrow_step(p, shapes, offsets, x, &y[0], objective, lr);
                    }
                    return;
                }
                for _ in 0..steps {
                    lane_step(p, shapes, offsets, x, y, objective, lr, s);
                }
            }
        }
    };
}
lane_steps!(run_lane_steps_16, 16);
lane_steps!(run_lane_steps_4, 4);
lane_steps!(run_lane_steps_1, 1);

/// The deepest net `narrow_step` takes (a net's depth is at most 8).
const MAX_NARROW_DEPTH: usize = 8;

/// `lane_step` for the narrowest nets, one unit per layer and one point
/// (the phase grid, the depth figure's lone chain): the same arithmetic in
/// the same order, with every activation in registers instead of the
/// scratch's vectors and no loop over points or units.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn narrow_step<const L: usize>(
    p: &mut [[f32; L]],
    shapes: &[(usize, usize)],
    offsets: &[usize],
    x: &[[f32; L]],
    y: &[f32; L],
    objective: Objective,
    lr: f32,
) {
    let depth = shapes.len();
    // h[l]: the input of layer l past the first (relu of the one below), h[depth]: f.
    let mut h = [[0.0f32; L]; MAX_NARROW_DEPTH + 1];
    h[1] = lane_dot(shapes[0].1, |i| (&x[i], &p[i]));
    for l in 1..depth {
        let (a, w) = (h[l], &p[offsets[l]]);
        for j in 0..L {
            // relu of the layer below, then `lane_dot` of one term: a product added to +0.
            let a = a[j].max(0.0);
            h[l][j] = a;
            h[l + 1][j] = a.mul_add(w[j], 0.0);
        }
    }
    let mut delta = [0.0f32; L];
    for j in 0..L {
        delta[j] = output_delta(h[depth][j], y[j], 1, objective);
    }
    for l in (1..depth).rev() {
        let w = &mut p[offsets[l]];
        for j in 0..L {
            // Through the old weight, where the unit is active; then the step.
            let below = if h[l][j] > 0.0 { delta[j].mul_add(w[j], 0.0) } else { 0.0 };
            let grad = h[l][j].mul_add(delta[j], 0.0);
            w[j] = (-lr).mul_add(grad, w[j]);
            delta[j] = below;
        }
    }
    for i in 0..shapes[0].1 {
        for j in 0..L {
            let grad = x[i][j].mul_add(delta[j], 0.0);
            p[i][j] = (-lr).mul_add(grad, p[i][j]);
        }
    }
}

/// One step of `L` members, lane by lane: the same arithmetic, in the
/// same order, as `step` (which only skips additions of zero products).
// The loops run over points and index several arrays by the same point.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline(always)]
fn lane_step<const L: usize>(
    p: &mut [[f32; L]],
    shapes: &[(usize, usize)],
    offsets: &[usize],
    x: &[[f32; L]],
    y: &[[f32; L]],
    objective: Objective,
    lr: f32,
    s: &mut LaneScratch<L>,
) {
    let depth = shapes.len();
    let n = y.len();
    for l in 0..depth {
        let (out, inp) = shapes[l];
        let wt = &p[offsets[l]..offsets[l] + out * inp];
        let (done, rest) = s.hidden.split_at_mut(l);
        let input: &[[f32; L]] = if l == 0 { x } else { &done[l - 1] };
        let target: &mut [[f32; L]] = if l + 1 < depth { &mut rest[0] } else { &mut s.output };
        for pt in 0..n {
            for o in 0..out {
                // The member kernel's order: `dot` for one output, `combine` (in order) for several.
                let mut acc = if out == 1 {
                    lane_dot(inp, |i| (&input[pt * inp + i], &wt[i]))
                } else {
                    let mut acc = [0.0f32; L];
                    for i in 0..inp {
                        let (a, w) = (&input[pt * inp + i], &wt[i * out + o]);
                        for j in 0..L {
                            acc[j] = a[j].mul_add(w[j], acc[j]);
                        }
                    }
                    acc
                };
                if l + 1 < depth {
                    for v in acc.iter_mut() {
                        *v = v.max(0.0);
                    }
                }
                target[pt * out + o] = acc;
            }
        }
    }
    for pt in 0..n {
        // A plain loop, not `array::map` or `from_fn`: those were not inlined,
        // so they ran compiled without AVX2 (exp's floor a call to libm).
        for j in 0..L {
            s.delta[pt][j] = output_delta(s.output[pt][j], y[pt][j], n, objective);
        }
    }
    for l in (0..depth).rev() {
        let (out, inp) = shapes[l];
        let input: &[[f32; L]] = if l == 0 { x } else { &s.hidden[l - 1] };
        let wt = &mut p[offsets[l]..offsets[l] + out * inp];
        if l > 0 {
            for pt in 0..n {
                for i in 0..inp {
                    let acc = lane_dot(out, |o| (&s.delta[pt * out + o], &wt[i * out + o]));
                    let a = &input[pt * inp + i];
                    for j in 0..L {
                        s.below[pt * inp + i][j] = if a[j] > 0.0 { acc[j] } else { 0.0 };
                    }
                }
            }
        }
        for i in 0..inp {
            for o in 0..out {
                let mut grad = [0.0f32; L];
                for pt in 0..n {
                    let (a, d) = (&input[pt * inp + i], &s.delta[pt * out + o]);
                    for j in 0..L {
                        grad[j] = a[j].mul_add(d[j], grad[j]);
                    }
                }
                let w = &mut wt[i * out + o];
                for j in 0..L {
                    w[j] = (-lr).mul_add(grad[j], w[j]);
                }
            }
        }
        if l > 0 {
            std::mem::swap(&mut s.delta, &mut s.below);
        }
    }
}

/// `dot`'s sum, lane by lane: `count` products `term(k)`, in `dot`'s order.
#[inline(always)]
fn lane_dot<'a, const L: usize>(count: usize, term: impl Fn(usize) -> (&'a [f32; L], &'a [f32; L])) -> [f32; L] {
    let whole = count - count % 8;
    let mut sum = [0.0f32; L];
    // Without a whole chunk the 8 accumulators are zeros, and adding them to
    // zero changes nothing: skipped (most tiny nets have fewer than 8 terms).
    if whole > 0 {
        let mut acc = [[0.0f32; L]; 8];
        for chunk in (0..whole).step_by(8) {
            for (k, part) in acc.iter_mut().enumerate() {
                let (a, b) = term(chunk + k);
                for j in 0..L {
                    part[j] = a[j].mul_add(b[j], part[j]);
                }
            }
        }
        for part in &acc {
            for j in 0..L {
                sum[j] += part[j];
            }
        }
    }
    for k in whole..count {
        let (a, b) = term(k);
        for j in 0..L {
            sum[j] = a[j].mul_add(b[j], sum[j]);
        }
    }
    sum
}

/// dL/df at one point of `n` for one output f and label y: -descent(m) y / n,
/// m = f y, with descent = -dl/dm = sigma(-m) or 1[m < 1], less lambda m
/// under the output penalty (left out at 0, so the plain loss keeps its
/// bits). The one formula of the member, lane and narrow kernels.
#[inline(always)]
fn output_delta(f: f32, y: f32, n: usize, objective: Objective) -> f32 {
    let m = f * y;
    let mut descent = match objective.loss {
        Loss::CrossEntropy => 1.0 / (1.0 + exp(m)),
        Loss::Hinge => {
            if m < 1.0 {
                1.0
            } else {
                0.0
            }
        }
    };
    if objective.output_penalty != 0.0 {
        descent = (-objective.output_penalty).mul_add(m, descent);
    }
    -descent * y / n as f32
}

/// softmax(f) into `out`: e^(f[k] - max f) over their sum, every sum in
/// order of k, with the kernels' own exp (so every path gives the same bits).
#[inline(always)]
fn softmax_into(f: &[f32], out: &mut [f32]) {
    let top = f.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0f32;
    for (o, &v) in out.iter_mut().zip(f) {
        *o = exp(v - top);
        total += *o;
    }
    for o in out.iter_mut() {
        *o /= total;
    }
}

/// The true class's logit minus the largest other one (the batched program's margin).
#[inline(always)]
fn class_margin(f: &[f32], class: usize) -> f32 {
    let other = f.iter().enumerate().filter(|&(k, _)| k != class).map(|(_, &v)| v).fold(f32::NEG_INFINITY, f32::max);
    f[class] - other
}

/// The kernels' exp of one number, for the tests.
pub fn exp_for_tests(x: f32) -> f32 {
    exp(x)
}

/// e^x as a polynomial (Cephes' expf: within about 2 ulp of the true value
/// for -87 < x < 88, and vectorizable across lanes, where libm's scalar call
/// is not). Outside that range it saturates instead of reaching infinity or
/// 0, which leaves sigma(-m) = 1 / (1 + e^m) the same in f32. The one exp of
/// both kernels, so that they give the same bits (and no libm's exp, which
/// differs between C libraries and between their variants for different CPUs).
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    {
        let x = x.clamp(-87.0, 88.0);
        let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
        let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
        let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
            * r
            + 0.5;
        let y = p * r * r + r + 1.0;
        y * f32::from_bits(((n as i32 + 127) as u32) << 23)
    }
}
