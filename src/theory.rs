//! The paper's theory: closed forms and ODEs under gradient flow, drawn next
//! to every measurement. Derivations are in SCIENCE notes and ARCHITECTURE.md;
//! `tests/theory.rs` checks each closed form against numerical integration.

use crate::values::Loss;

/// -l'(m): how hard the loss pushes a margin m. sigma(-m) for cross-entropy,
/// 1[m < 1] for hinge.
pub fn push(loss: Loss, m: f64) -> f64 {
    match loss {
        Loss::CrossEntropy => sigmoid(-m),
        Loss::Hinge => {
            if m < 1.0 {
                1.0
            } else {
                0.0
            }
        }
    }
}

pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// W0(e^k), the principal Lambert W of e^k, without forming e^k (which
/// overflows for large k): solves w + ln w = k by Newton's method.
pub fn lambert_w0_of_exp(k: f64) -> f64 {
    let mut w = if k > 1.0 { k - k.ln() } else { k.exp().max(1e-300) };
    for _ in 0..100 {
        let step = (w + w.ln() - k) / (1.0 + 1.0 / w);
        let next = (w - step).max(w * 1e-3);
        if (next - w).abs() <= 1e-15 * w.max(1.0) {
            return next;
        }
        w = next;
    }
    w
}

/// Linear model, cross-entropy, orthogonal data: the exact margin of a point of
/// norm `s` (of `n` points) at time t, from m0. dm/dt = (s^2/n) sigma(-m)
/// integrates to m + e^m = m0 + e^m0 + s^2 t / n =: K, so m = K - W0(e^K).
pub fn linear_ce_margin(m0: f64, s: f64, n: f64, t: f64) -> f64 {
    let k = m0 + m0.exp() + s * s * t / n;
    k - lambert_w0_of_exp(k)
}

/// Linear model, cross-entropy: when a point with m0 < 0 becomes correct
/// (m = 0, i.e. K = 1). Zero if it starts correct.
pub fn linear_ce_crossing_time(m0: f64, s: f64, n: f64) -> f64 {
    if m0 > 0.0 {
        0.0
    } else {
        n * (1.0 - m0 - m0.exp()) / (s * s)
    }
}

/// Late in training the flow is slow (its time scale grows with t), so RK4
/// steps may grow to this fraction of t: integrations to any horizon take a
/// bounded number of steps (a few thousand per decade of t).
pub const LATE_STEP: f64 = 1e-3;

/// One independent mode of an aligned bias-free ReLU net: the scalar chain
/// m = s p_1 ... p_L, where p_1..p_{L-1} are the mode's hidden weights (> 0
/// while its units are active) and p_L its output weight times the label.
/// Under gradient flow on the mean loss over n points,
///   dp_l/dt = (1/n) push(m) s prod_{j != l} p_j,
/// while every hidden pre-activation s p_1 ... p_l is > 0; once one reaches 0
/// the unit is dead and nothing moves again.
#[derive(Debug, Clone)]
pub struct Mode {
    pub norm: f64,
    pub weights: Vec<f64>,
}

impl Mode {
    pub fn margin(&self) -> f64 {
        self.norm * self.weights.iter().product::<f64>()
    }

    /// Whether every hidden unit of the mode is active.
    pub fn alive(&self) -> bool {
        let depth = self.weights.len();
        let mut pre = self.norm;
        for &w in &self.weights[..depth - 1] {
            pre *= w;
            if pre <= 0.0 {
                return false;
            }
        }
        true
    }

    fn velocity(&self, weights: &[f64], loss: Loss, n: f64) -> Vec<f64> {
        let m = self.norm * weights.iter().product::<f64>();
        let g = push(loss, m) * self.norm / n;
        (0..weights.len())
            .map(|l| g * weights.iter().enumerate().filter(|&(j, _)| j != l).map(|(_, w)| w).product::<f64>())
            .collect()
    }

    /// One classical Runge-Kutta step of length dt.
    pub fn rk4_step(&mut self, loss: Loss, n: f64, dt: f64) {
        if !self.alive() {
            return;
        }
        let w0 = self.weights.clone();
        let add = |k: &[f64], h: f64| -> Vec<f64> { w0.iter().zip(k).map(|(w, k)| w + h * k).collect() };
        let k1 = self.velocity(&w0, loss, n);
        let k2 = self.velocity(&add(&k1, dt / 2.0), loss, n);
        let k3 = self.velocity(&add(&k2, dt / 2.0), loss, n);
        let k4 = self.velocity(&add(&k3, dt), loss, n);
        for (l, w) in self.weights.iter_mut().enumerate() {
            *w += dt / 6.0 * (k1[l] + 2.0 * k2[l] + 2.0 * k3[l] + k4[l]);
        }
    }

    /// The first time the margin reaches `target`, by RK4 with steps of `dt`
    /// (growing to `LATE_STEP` x t), linearly interpolated within the step;
    /// None if it has not by `t_max` or the mode dies first.
    pub fn time_to_reach(&self, target: f64, loss: Loss, n: f64, dt: f64, t_max: f64) -> Option<f64> {
        let mut mode = self.clone();
        let mut m = mode.margin();
        if m >= target {
            return Some(0.0);
        }
        let mut t = 0.0;
        // The step that crosses the target is retried, halving, down to dt:
        // the crossing is then located as precisely as with fixed steps.
        let mut cap = f64::INFINITY;
        while t < t_max {
            if !mode.alive() {
                return None;
            }
            let h = dt.max(LATE_STEP * t).min(cap);
            let mut next = mode.clone();
            next.rk4_step(loss, n, h);
            let next_margin = next.margin();
            if next_margin >= target {
                if h > dt {
                    cap = (h / 2.0).max(dt);
                    continue;
                }
                return Some(t + h * (target - m) / (next_margin - m));
            }
            mode = next;
            m = next_margin;
            t += h;
        }
        None
    }
}

impl Mode {
    /// The mode at each of `times` (ascending, from 0), by RK4 with steps of
    /// at most `dt`, and of at most `rel` x t once that is larger: late in
    /// training the push has decayed and the flow is slow, so steps can grow
    /// with t (rel = 0 keeps every step at dt).
    pub fn states_at(&self, times: &[f64], loss: Loss, n: f64, dt: f64, rel: f64) -> Vec<Mode> {
        let mut mode = self.clone();
        let mut t = 0.0;
        times
            .iter()
            .map(|&target| {
                while t < target {
                    if loss == Loss::Hinge && mode.margin() >= 1.0 {
                        // No push at all: frozen for good.
                        t = target;
                        break;
                    }
                    let mut h = dt.max(rel * t).min(target - t);
                    let mut next = mode.clone();
                    next.rk4_step(loss, n, h);
                    // The hinge push jumps to 0 at margin 1: shorten the step
                    // that crosses it, so the margin lands on 1, not past it.
                    while loss == Loss::Hinge && next.margin() > 1.0 + 1e-9 && h > 1e-12 {
                        h /= 2.0;
                        next = mode.clone();
                        next.rk4_step(loss, n, h);
                    }
                    mode = next;
                    t += h;
                }
                mode.clone()
            })
            .collect()
    }

    /// The margin at each of `times`, with steps of at most `dt` (and of
    /// `LATE_STEP` x t once that is larger).
    pub fn margins_at(&self, times: &[f64], loss: Loss, n: f64, dt: f64) -> Vec<f64> {
        self.states_at(times, loss, n, dt, LATE_STEP).iter().map(Mode::margin).collect()
    }
}

/// Gradient starvation, linear model from zero weights. Features A, B, C, D
/// orthonormal; positives carry A, and B too with probability p; negatives
/// carry C, and D too with probability p; half the points are positive. By
/// symmetry w_C = -w_A = -a and w_D = -w_B = -b, and with the loss averaged
/// over all N points (each class weighs 1/2):
///   da/dt = ((1 - p) push(a) + p push(a + b)) / 2,   db/dt = p push(a + b) / 2.
/// The control replaces A + B by B alone:
///   da/dt = (1 - p) push(a) / 2,   db/dt = p push(b) / 2.
/// Under spectral decoupling (the loss plus (penalty / 2) f^2 per point,
/// f^2 = m^2) every push(m) becomes push(m) - penalty m (see
/// `decoupled_margin` for where this flow ends).
/// Returns (a, b) at each of `times` (ascending), RK4 with steps of at most
/// `dt`, growing to 1% of t late in training when the flow is slow.
///
/// Hinge without the penalty is piecewise linear (each push is 0 or 1): it is
/// solved exactly, from kink to kink ([`starvation_hinge`]). A smooth
/// integrator would step across the kink where a margin reaches 1 (its steps
/// grow to 1% of t) and miss the switch by up to a step.
pub fn starvation_weights(p: f64, loss: Loss, control: bool, penalty: f64, times: &[f64], dt: f64) -> Vec<(f64, f64)> {
    if loss == Loss::Hinge && penalty == 0.0 {
        return starvation_hinge(p, control, times);
    }
    let pull = |m: f64| push(loss, m) - penalty * m;
    let velocity = |a: f64, b: f64| -> (f64, f64) {
        if control {
            ((1.0 - p) * pull(a) / 2.0, p * pull(b) / 2.0)
        } else {
            let both = pull(a + b);
            (((1.0 - p) * pull(a) + p * both) / 2.0, p * both / 2.0)
        }
    };
    // The penalty keeps the flow stiff at late times (its Jacobian has entries
    // up to 1/4 + penalty, where plain cross-entropy's fade): RK4 is stable
    // for steps below 2.78 over that, so the step stops growing there.
    let longest = if penalty > 0.0 { 1.0 / (0.25 + penalty) } else { f64::INFINITY };
    // With the penalty the flow ends at (m*, 0) (`decoupled_margin`; the
    // control's, whose margins are a and b, at (m*, m*)); once there to 1e-12,
    // it stays: later times skip ahead.
    let end = (penalty > 0.0).then(|| {
        let m = decoupled_margin(loss, penalty);
        (m, if control { m } else { 0.0 })
    });
    let (mut a, mut b, mut t): (f64, f64, f64) = (0.0, 0.0, 0.0);
    times
        .iter()
        .map(|&target| {
            while t < target {
                if end.is_some_and(|(ea, eb)| (a - ea).abs() <= 1e-12 * ea && (b - eb).abs() <= 1e-12 * ea) {
                    t = target;
                    break;
                }
                let h = dt.max((0.01 * t).min(longest)).min(target - t);
                let k1 = velocity(a, b);
                let k2 = velocity(a + h / 2.0 * k1.0, b + h / 2.0 * k1.1);
                let k3 = velocity(a + h / 2.0 * k2.0, b + h / 2.0 * k2.1);
                let k4 = velocity(a + h * k3.0, b + h * k3.1);
                a += h / 6.0 * (k1.0 + 2.0 * k2.0 + 2.0 * k3.0 + k4.0);
                b += h / 6.0 * (k1.1 + 2.0 * k2.1 + 2.0 * k3.1 + k4.1);
                t += h;
            }
            (a, b)
        })
        .collect()
}

/// The hinge flow of `starvation_weights` (no penalty), exactly: between
/// kinks every velocity is constant, so the state moves in straight lines
/// and each kink (a margin reaching 1, where its push switches off) is
/// located, not stepped across. Tracked in the two margins that switch,
/// m1 = a and m2 = a + b (the control's: a and b), each set to exactly 1 when
/// it arrives:
///   dm1/dt = ((1 - p) [m1 < 1] + p [m2 < 1]) / 2,   dm2/dt = dm1/dt + p [m2 < 1] / 2
/// (control: (1 - p) [m1 < 1] / 2 and p [m2 < 1] / 2). From zero both rise
/// until a + b = 1 at t = 2 / (1 + p), with b = p / (1 + p); then a alone, to
/// 1 at t = 2 / (1 + p) + 2 p / ((1 + p)(1 - p)); then nothing moves.
fn starvation_hinge(p: f64, control: bool, times: &[f64]) -> Vec<(f64, f64)> {
    let on = |m: f64| f64::from(u8::from(m < 1.0));
    let (mut m, mut t) = ([0.0f64; 2], 0.0f64);
    times
        .iter()
        .map(|&target| {
            while t < target {
                let v = if control {
                    [(1.0 - p) * on(m[0]) / 2.0, p * on(m[1]) / 2.0]
                } else {
                    let v1 = ((1.0 - p) * on(m[0]) + p * on(m[1])) / 2.0;
                    [v1, v1 + p * on(m[1]) / 2.0]
                };
                if v == [0.0, 0.0] {
                    break;
                }
                // The next kink, if it comes before the target.
                let arrival = |i: usize| if m[i] < 1.0 && v[i] > 0.0 { (1.0 - m[i]) / v[i] } else { f64::INFINITY };
                let h = (target - t).min(arrival(0)).min(arrival(1));
                let arrives = [arrival(0) <= h, arrival(1) <= h];
                for i in 0..2 {
                    m[i] = if arrives[i] { 1.0 } else { m[i] + v[i] * h };
                }
                t += h;
            }
            t = t.max(target);
            if control {
                (m[0], m[1])
            } else {
                (m[0], m[1] - m[0])
            }
        })
        .collect()
}

/// Where spectral decoupling's flow ends, for the linear model on the
/// starvation data (`starvation_weights` with penalty lambda > 0).
///
/// Derivation. Per class, the loss is (1 - p) g(m_A) + p g(m_AB) with
/// g(m) = l(m) + (lambda / 2) m^2, where m_A = a is the margin of the points
/// with the common feature alone and m_AB = a + b that of the points with
/// both. (a, b) -> (m_A, m_AB) is linear and invertible, so the loss is a
/// separable function of the two margins, each term strictly convex (l is
/// convex, the penalty strictly so). Its unique minimum has g'(m_A) =
/// g'(m_AB) = 0, i.e. both margins equal m*, the root of push(m) = lambda m:
/// a = m*, b = 0. B is not kept: A alone separates the data, and the penalty
/// makes the redundant feature cost something for nothing. (The flow gets
/// there: it is the gradient flow of a strictly convex function.) For
/// cross-entropy, sigma(-m*) = lambda m*, found by bisection (the left side
/// falls and the right rises); for hinge, m* = 1 when lambda < 1 (the kink),
/// 1 / lambda otherwise.
pub fn decoupled_margin(loss: Loss, penalty: f64) -> f64 {
    assert!(penalty > 0.0, "the penalty must be positive");
    match loss {
        Loss::Hinge => {
            if penalty < 1.0 {
                1.0
            } else {
                1.0 / penalty
            }
        }
        Loss::CrossEntropy => {
            // sigma(-m) - lambda m is 1/2 at m = 0 and negative at m = 1 / (2 lambda).
            let (mut lo, mut hi) = (0.0, 1.0 / (2.0 * penalty));
            for _ in 0..200 {
                let mid = 0.5 * (lo + hi);
                if sigmoid(-mid) > penalty * mid {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            0.5 * (lo + hi)
        }
    }
}

/// The balanced chain's closed-form velocity of z = f = s w^L (all layers
/// equal to w): dz/dt = L s^{2/L} z^{2-2/L} push(z) / n. The formula is
/// defined for every real L >= 1 (a chain exists only at whole L): the depth
/// figure draws it continued between the depths it trains.
pub fn balanced_chain_velocity(depth: f64, s: f64, z: f64, loss: Loss, n: f64) -> f64 {
    let l = depth;
    l * s.powf(2.0 / l) * z.powf(2.0 - 2.0 / l) * push(loss, z) / n
}

/// Leading-order escape time of the balanced chain of depth L >= 3 from a
/// small margin z0, cross-entropy: while z << 1, push = sigma(-z) ~ 1/2, so
/// dz/dt ~ L s^{2/L} z^{2-2/L} / (2n), which reaches infinity in
///   t* ~ 2n / (L (1 - 2/L) s^{2/L} z0^{1-2/L}).
/// (The project's notes give this without the factor 2 of sigma(0) = 1/2;
/// that form is the hinge loss's, whose push is 1.)
pub fn balanced_chain_escape_time(depth: u32, s: f64, z0: f64, loss: Loss, n: f64) -> f64 {
    let l = depth as f64;
    let push0 = push(loss, 0.0);
    n / (push0 * l * (1.0 - 2.0 / l) * s.powf(2.0 / l) * z0.powf(1.0 - 2.0 / l))
}

/// Softmax cross-entropy, linear model, orthogonal inputs x_i = s e_i, the
/// loss a mean over N points: point i's logits z = s W e_i move on their own,
///   dz/dt = (s^2 / N) (e_y - softmax(z)).
/// From zero logits the wrong ones stay equal (symmetry), and the margin
/// m = z_y - z_j obeys dm/dt = (s^2 / N) K e^-m / (1 + (K - 1) e^-m), whose
/// integral is `multiclass_time_to_margin`. Here: RK4 from any z0, with steps
/// of at most `dt` (growing to 1% of t late, when the flow is slow); the
/// logits at each of `times`.
pub fn multiclass_logits(z0: &[f64], class: usize, s: f64, n: f64, times: &[f64], dt: f64) -> Vec<Vec<f64>> {
    let velocity = |z: &[f64]| -> Vec<f64> { softmax_minus_one_hot(z, class).iter().map(|g| -s * s / n * g).collect() };
    integrate(z0, times, dt, 0.01, velocity)
}

/// RK4 of dz/dt = velocity(z) from z0 at t = 0, the state at each of `times`
/// (ascending). Steps are of at most `dt`, growing to `growth` x t late in
/// training, when these flows are slow.
pub fn integrate(
    z0: &[f64],
    times: &[f64],
    dt: f64,
    growth: f64,
    velocity: impl Fn(&[f64]) -> Vec<f64>,
) -> Vec<Vec<f64>> {
    let step = |z: &[f64], k: &[f64], h: f64| -> Vec<f64> { z.iter().zip(k).map(|(a, b)| a + h * b).collect() };
    let (mut z, mut t) = (z0.to_vec(), 0.0f64);
    times
        .iter()
        .map(|&target| {
            while t < target {
                let h = dt.max(growth * t).min(target - t);
                let k1 = velocity(&z);
                let k2 = velocity(&step(&z, &k1, h / 2.0));
                let k3 = velocity(&step(&z, &k2, h / 2.0));
                let k4 = velocity(&step(&z, &k3, h));
                for j in 0..z.len() {
                    z[j] += h / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]);
                }
                t += h;
            }
            z.clone()
        })
        .collect()
}

/// Softmax cross-entropy, two-layer ReLU net with the aligned init: hidden
/// unit i sees point i alone (first-layer weight a on e_i, a > 0) and feeds
/// the K logits through its output column v, so z = s relu(a) v and the
/// points move on their own. With g = (softmax(z) - e_y) / N:
///   da/dt = -s [a > 0] v.g,   dv/dt = -s relu(a) g,
/// which keeps a^2 - |v|^2 fixed (balanced: a = |v|). The state [a, v] at
/// each of `times`, by RK4 from [a0, v0].
pub fn multiclass_two_layer(
    a0: f64,
    v0: &[f64],
    class: usize,
    s: f64,
    n: f64,
    times: &[f64],
    dt: f64,
) -> Vec<Vec<f64>> {
    let velocity = |state: &[f64]| -> Vec<f64> {
        let (a, v) = (state[0], &state[1..]);
        let g = softmax_minus_one_hot(&two_layer_logits(state, s), class);
        let alive = f64::from(u8::from(a > 0.0));
        let mut d = vec![-s * alive * v.iter().zip(&g).map(|(v, g)| v * g).sum::<f64>() / n];
        d.extend(g.iter().map(|g| -s * a.max(0.0) * g / n));
        d
    };
    let mut state = vec![a0];
    state.extend_from_slice(v0);
    integrate(&state, times, dt, 0.01, velocity)
}

/// The logits z = s relu(a) v of a state [a, v] of `multiclass_two_layer`.
pub fn two_layer_logits(state: &[f64], s: f64) -> Vec<f64> {
    state[1..].iter().map(|v| s * state[0].max(0.0) * v).collect()
}

fn softmax_minus_one_hot(z: &[f64], class: usize) -> Vec<f64> {
    let top = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - top).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().enumerate().map(|(j, e)| e / sum - f64::from(u8::from(j == class))).collect()
}

/// The two-layer flow from the symmetric start v = b u, u the unit vector
/// along e_y - 1/K (all wrong logits equal), balanced (a = b). The softmax
/// gradient then points along -u: p - e_y = -(1 - p_y) c u with
/// c = sqrt(K / (K - 1)), so v keeps its direction, a = b stays, and the
/// margin m = z_y - z_j = s c b^2 obeys
///   dm/dt = (2 s c / N) m (1 - p_y),  1 - p_y = (K - 1) e^-m / (1 + (K - 1) e^-m).
/// Separating, (1 + (K - 1) e^-m) / ((K - 1) e^-m m) = e^m / ((K - 1) m) + 1 / m,
/// so the time from m0 to m1 is
///   (N / (2 s c)) [ (Ei(m1) - Ei(m0)) / (K - 1) + ln(m1 / m0) ].
/// Near m = 0 the margin grows at the rate (2 s / N) sqrt(1 - 1/K): the
/// plateau, about N ln(1/m0) / (2 s sqrt(1 - 1/K)) long, shortens with K.
pub fn multiclass_two_layer_symmetric_time(m0: f64, m1: f64, k: usize, s: f64, n: f64) -> f64 {
    let k = k as f64;
    let c = (k / (k - 1.0)).sqrt();
    n / (2.0 * s * c) * ((exponential_integral(m1) - exponential_integral(m0)) / (k - 1.0) + (m1 / m0).ln())
}

/// Ei(x) for x > 0 by its series, gamma + ln x + sum x^j / (j j!), whose
/// terms are summed until they no longer change the total (fine for the
/// margins used here, x below a few tens).
pub fn exponential_integral(x: f64) -> f64 {
    const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;
    let (mut sum, mut term) = (0.0f64, 1.0f64);
    for j in 1..500 {
        term *= x / j as f64;
        let add = term / j as f64;
        sum += add;
        if add.abs() <= f64::EPSILON * sum.abs() {
            break;
        }
    }
    EULER_GAMMA + x.ln() + sum
}

/// The true class's logit minus the largest other one.
pub fn multiclass_margin(z: &[f64], class: usize) -> f64 {
    let other = z.iter().enumerate().filter(|&(j, _)| j != class).map(|(_, &v)| v).fold(f64::NEG_INFINITY, f64::max);
    z[class] - other
}

/// From zero logits, when the margin reaches m: separating
/// (1 + (K - 1) e^-m) e^m dm = (K s^2 / N) dt and integrating from m = 0,
///   e^m + (K - 1) m - 1 = K s^2 t / N.
pub fn multiclass_time_to_margin(m: f64, k: usize, s: f64, n: f64) -> f64 {
    n * (m.exp() + (k as f64 - 1.0) * m - 1.0) / (k as f64 * s * s)
}

/// Fraction of points still misclassified at each time, given each point's
/// crossing time (None = never).
pub fn error_curve(crossing_times: &[Option<f64>], times: &[f64]) -> Vec<f64> {
    times
        .iter()
        .map(|&t| {
            let wrong = crossing_times.iter().filter(|c| c.is_none_or(|c| c > t)).count();
            wrong as f64 / crossing_times.len() as f64
        })
        .collect()
}

/// Phase diagram of one ReLU unit on one point, f = z relu(u.x), label +1,
/// y = u.x/|x|. Flow: dy/dt = s z g, dz/dt = s y g with g >= 0, so y^2 - z^2
/// is conserved. Success (f grows positive) iff y > 0 and z > -y.
pub fn phase_succeeds(z0: f64, y0: f64) -> bool {
    y0 > 0.0 && z0 > -y0
}

/// Distance of (z, y) from the boundary between the regions: the half-line
/// z = -y (y > 0) and the dead axis y = 0.
pub fn phase_boundary_distance(z: f64, y: f64) -> f64 {
    // Project onto the half-line's direction (-1, 1)/sqrt(2); behind its
    // start, the nearest point of it is the origin.
    let along = (y - z) / 2f64.sqrt();
    let to_half_line = if along <= 0.0 { z.hypot(y) } else { (z + y).abs() / 2f64.sqrt() };
    to_half_line.min(y.abs())
}

/// The branch of the phase flow's hyperbola y^2 - z^2 = c that a point lies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Branch {
    /// c > 0: y = sqrt(z^2 + c); dz/dt = s y g > 0, so it runs left to right.
    Upper,
    /// c <= 0, z > 0: z = sqrt(y^2 - c); y and z both grow (learning).
    Right,
    /// c <= 0, z < 0: z = -sqrt(y^2 - c); y falls to 0 (the unit dies).
    Left,
}

/// Points of one branch inside the box [z_min, z_max] x [0, y_max], in the
/// order the flow visits them, starting at parameter `from` (z for Upper,
/// y for Right and Left). Exact: every point lies on the hyperbola.
pub fn phase_branch(
    c: f64,
    branch: Branch,
    from: f64,
    z_range: (f64, f64),
    y_max: f64,
    samples: usize,
) -> Vec<(f64, f64)> {
    let (z_min, z_max) = z_range;
    let lerp = |a: f64, b: f64, i: usize| a + (b - a) * i as f64 / (samples - 1) as f64;
    (0..samples)
        .map(|i| match branch {
            Branch::Upper => {
                let z = lerp(from, z_max, i);
                (z, (z * z + c).sqrt())
            }
            Branch::Right => {
                let y = lerp(from, y_max, i);
                ((y * y - c).sqrt(), y)
            }
            Branch::Left => {
                let y = lerp(from, 0.0, i);
                (-(y * y - c).sqrt(), y)
            }
        })
        .filter(|&(z, y)| z >= z_min && z <= z_max && y <= y_max && y.is_finite() && z.is_finite())
        .collect()
}

/// The theory trajectory from (z0, y0), y0 > 0, until it leaves the box.
pub fn phase_hyperbola_from(z0: f64, y0: f64, z_range: (f64, f64), y_max: f64, samples: usize) -> Vec<(f64, f64)> {
    let c = y0 * y0 - z0 * z0;
    if c > 0.0 {
        phase_branch(c, Branch::Upper, z0, z_range, y_max, samples)
    } else if z0 > 0.0 {
        phase_branch(c, Branch::Right, y0, z_range, y_max, samples)
    } else {
        phase_branch(c, Branch::Left, y0, z_range, y_max, samples)
    }
}

/// A family of streamlines that fills the box: upper branches entering from
/// the left or top edge, right branches rising from the z axis, left branches
/// falling from the top or left edge, and the two separatrices y = |z|.
pub fn phase_streamlines(z_range: (f64, f64), y_max: f64) -> Vec<Vec<(f64, f64)>> {
    let (z_min, z_max) = z_range;
    const SAMPLES: usize = 160;
    let mut out = Vec::new();
    let span = z_max.max(-z_min).max(y_max);
    for k in 1..=6 {
        // c spaced so that the curves are spread evenly near the origin.
        let c = (span * k as f64 / 6.0).powi(2) * 0.9;
        // Upper: enters at the left edge, or at the top edge if higher than it.
        let z_enter = if z_min * z_min + c <= y_max * y_max { z_min } else { -(y_max * y_max - c).max(0.0).sqrt() };
        out.push(phase_branch(c, Branch::Upper, z_enter, z_range, y_max, SAMPLES));
        // Right: rises from the z axis at z = sqrt(-c').
        out.push(phase_branch(-c, Branch::Right, 0.0, z_range, y_max, SAMPLES));
        // Left: falls from the top edge (or the left edge) to the z axis.
        let y_enter = if y_max * y_max + c <= z_min * z_min { y_max } else { (z_min * z_min - c).max(0.0).sqrt() };
        out.push(phase_branch(-c, Branch::Left, y_enter, z_range, y_max, SAMPLES));
    }
    out.push(phase_branch(0.0, Branch::Right, 0.0, z_range, y_max, SAMPLES));
    out.push(phase_branch(0.0, Branch::Left, y_max.min(-z_min), z_range, y_max, SAMPLES));
    out
}
