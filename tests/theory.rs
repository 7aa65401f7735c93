//! The theory functions, checked against numerical integration of the ODEs
//! they solve, and against the reference numbers in the project's notes.

use learning_dynamics::figure::{Series, Source};
use learning_dynamics::shapes::{fit_logistic_in_log_x, transition_width};
use learning_dynamics::theory::{self, Mode};
use learning_dynamics::values::Loss;

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-12)
}

#[test]
fn lambert_w_of_exp_solves_its_equation() {
    for k in [-30.0, -5.0, -1.0, 0.0, 0.5, 1.0, 3.0, 20.0, 300.0] {
        let w: f64 = theory::lambert_w0_of_exp(k);
        assert!(close(w + w.ln(), k, 1e-12) || (w + w.ln() - k).abs() < 1e-12, "k = {k}: w = {w}");
    }
    assert!(close(theory::lambert_w0_of_exp(1.0), 1.0, 1e-14));
}

#[test]
fn linear_ce_closed_form_matches_the_integrated_ode() {
    for (m0, s) in [(-0.3, 1.0), (-0.05, 0.4), (0.2, 2.5), (-1.5, 1.3)] {
        let n = 8.0;
        let mut mode = Mode { norm: s, weights: vec![m0 / s] };
        let dt = 1e-3;
        let mut t = 0.0;
        for checkpoint in [0.5, 3.0, 20.0] {
            while t < checkpoint - 1e-12 {
                mode.rk4_step(Loss::CrossEntropy, n, dt);
                t += dt;
            }
            let exact = theory::linear_ce_margin(m0, s, n, t);
            assert!(
                close(mode.margin(), exact, 1e-8),
                "m0 {m0}, s {s}, t {t}: ode {} vs closed form {exact}",
                mode.margin()
            );
        }
    }
}

#[test]
fn linear_ce_crossing_time_matches_the_integrated_ode() {
    for (m0, s) in [(-0.3, 1.0), (-0.05, 0.4), (-1.5, 1.3)] {
        let n = 8.0;
        let mode = Mode { norm: s, weights: vec![m0 / s] };
        let ode = mode.time_to_reach(0.0, Loss::CrossEntropy, n, 1e-3, 1e3).unwrap();
        let exact = theory::linear_ce_crossing_time(m0, s, n);
        assert!(close(ode, exact, 1e-5), "m0 {m0}: {ode} vs {exact}");
    }
    assert_eq!(theory::linear_ce_crossing_time(0.1, 1.0, 8.0), 0.0);
}

/// The notes' own numbers: time for a balanced chain (N = 1, CE) to reach
/// margin 1 from weights eps (0.01 for L = 1, 0.1 for L > 1), s = 0.5..4.
#[test]
fn balanced_chain_matches_the_reference_escape_times() {
    let table = [
        (1, 0.01, [10.83, 2.70, 0.67, 0.17]),
        (2, 0.1, [11.91, 5.26, 2.28, 0.97]),
        (3, 0.1, [37.82, 18.62, 9.13, 4.45]),
    ];
    for (depth, eps, expected) in table {
        for (s, want) in [0.5, 1.0, 2.0, 4.0].into_iter().zip(expected) {
            let mode = Mode { norm: s, weights: vec![eps; depth] };
            let t = mode.time_to_reach(1.0, Loss::CrossEntropy, 1.0, 1e-4, 1e3).unwrap();
            // The table is rounded to 2 decimals and came from gradient descent
            // with rate 1e-3, so allow that much.
            assert!((t - want).abs() <= 0.006 + 0.002 * want, "L = {depth}, s = {s}: {t} vs {want}");
        }
    }
}

#[test]
fn balanced_chain_velocity_is_the_chain_rule_of_the_mode() {
    for depth in 1..=4u32 {
        for (s, w) in [(0.5, 0.3), (2.0, 0.7)] {
            let mode = Mode { norm: s, weights: vec![w; depth as usize] };
            let z = mode.margin();
            let dt = 1e-7;
            let mut next = mode.clone();
            next.rk4_step(Loss::CrossEntropy, 3.0, dt);
            let numeric = (next.margin() - z) / dt;
            let closed = theory::balanced_chain_velocity(depth as f64, s, z, Loss::CrossEntropy, 3.0);
            assert!(close(numeric, closed, 1e-5), "L = {depth}: {numeric} vs {closed}");
        }
    }
}

#[test]
fn deep_chain_escape_time_has_the_factor_two_of_cross_entropy() {
    // From a tiny margin, the escape time to margin 1 is dominated by the
    // plateau, where the asymptotic form holds to leading order.
    for (depth, s, w0) in [(3u32, 1.0, 1e-3f64), (3, 2.0, 1e-3), (4, 0.5, 1e-2)] {
        let mode = Mode { norm: s, weights: vec![w0; depth as usize] };
        let z0 = mode.margin();
        let n = 2.0;
        let ode = mode.time_to_reach(1.0, Loss::CrossEntropy, n, 0.05, 1e9).unwrap();
        let asymptotic = theory::balanced_chain_escape_time(depth, s, z0, Loss::CrossEntropy, n);
        assert!(close(ode, asymptotic, 0.05), "L = {depth}, s = {s}: ode {ode}, asymptotic {asymptotic}");
        // The same formula for hinge (push 1) is half as long.
        let hinge = theory::balanced_chain_escape_time(depth, s, z0, Loss::Hinge, n);
        assert!(close(asymptotic, 2.0 * hinge, 1e-12));
    }
}

#[test]
fn hinge_two_layer_escape_time_has_its_closed_form() {
    // dz/dt = 2 s z / N until z = 1: t* = (N / (2 s)) ln(1 / z0).
    for (s, w, n) in [(1.0, 0.1, 1.0), (0.5, 0.2, 4.0), (3.0, 0.05, 2.0)] {
        let mode = Mode { norm: s, weights: vec![w, w] };
        let z0 = mode.margin();
        let t = mode.time_to_reach(1.0, Loss::Hinge, n, 1e-4, 1e4).unwrap();
        let exact = n / (2.0 * s) * (1.0 / z0).ln();
        assert!(close(t, exact, 1e-4), "s {s}: {t} vs {exact}");
    }
}

#[test]
fn phase_rule_matches_the_integrated_flow() {
    // The unit f = z relu(s y) on one point is the depth-2 chain (y, z).
    let mut checked = 0;
    for i in 0..25 {
        for j in 1..13 {
            let (z0, y0) = (-2.0 + 4.0 * i as f64 / 24.0, 2.0 * j as f64 / 12.0);
            if theory::phase_boundary_distance(z0, y0) < 0.08 {
                continue;
            }
            let mut mode = Mode { norm: 1.0, weights: vec![y0, z0] };
            for _ in 0..4000 {
                mode.rk4_step(Loss::CrossEntropy, 1.0, 0.01);
            }
            let learned = mode.alive() && mode.margin() > 0.0;
            assert_eq!(learned, theory::phase_succeeds(z0, y0), "start (z, y) = ({z0}, {y0})");
            if !learned {
                // It died with z frozen at -sqrt(z0^2 - y0^2).
                assert!(
                    close(mode.weights[1], -(z0 * z0 - y0 * y0).sqrt(), 1e-2),
                    "({z0}, {y0}): z = {}",
                    mode.weights[1]
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 200);
}

#[test]
fn streamlines_lie_on_their_hyperbolas() {
    for (z0, y0) in [(-0.8, 1.5), (-1.5, 0.9), (0.5, 0.2), (-0.5, 0.5)] {
        let c = y0 * y0 - z0 * z0;
        let path = theory::phase_hyperbola_from(z0, y0, (-2.0, 2.0), 2.0, 100);
        assert!(path.len() > 10);
        assert!(close(path[0].0, z0, 1e-9) && close(path[0].1, y0, 1e-9), "starts at its start point");
        for (z, y) in path {
            assert!((y * y - z * z - c).abs() < 1e-9);
        }
    }
    for path in theory::phase_streamlines((-2.0, 2.0), 2.0) {
        for w in path.windows(2) {
            // Flow direction: dz/dt = y >= 0 and dy/dt = z.
            let (dz, dy) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
            let z_mid = (w[0].0 + w[1].0) / 2.0;
            assert!(dz >= -1e-12 && dy * z_mid >= -1e-9, "against the flow at {:?}", w[0]);
        }
    }
}

#[test]
fn boundary_distance() {
    assert!(close(theory::phase_boundary_distance(-1.0, 1.0), 0.0, 1e-12));
    assert!(close(theory::phase_boundary_distance(0.0, 1.0), 2f64.sqrt() / 2.0, 1e-12));
    assert!(close(theory::phase_boundary_distance(1.0, 0.5), 0.5, 1e-12));
    assert!(close(theory::phase_boundary_distance(3.0, 4.0), 4.0, 1e-12));
}

#[test]
fn error_curve_counts_points_not_yet_crossed() {
    let crossings = [Some(0.0), Some(1.0), Some(3.0), None];
    assert_eq!(theory::error_curve(&crossings, &[0.0, 0.5, 2.0, 10.0]), vec![0.75, 0.75, 0.5, 0.25]);
}

fn curve(x: Vec<f64>, y: Vec<f64>) -> Series {
    Series::line("c", 0, Source::Measured, "#000000", x, y)
}

#[test]
fn logistic_fit_recovers_a_logistic_and_rejects_a_staircase() {
    let x: Vec<f64> = (0..60).map(|i| 10f64.powf(-1.0 + i as f64 / 15.0)).collect();
    let y: Vec<f64> = x.iter().map(|t| 0.4 * theory::sigmoid(-(t.ln() - 2.0) / 0.7)).collect();
    let fit = fit_logistic_in_log_x(&x, &y);
    assert!(fit.r2 > 0.9999, "{fit:?}");
    assert!(close(fit.center, 2.0, 1e-2) && close(fit.width, 0.7, 1e-2) && close(fit.amplitude, 0.4, 1e-2), "{fit:?}");
    // Two plateaus separated by decades is not one logistic step.
    let stairs: Vec<f64> = x
        .iter()
        .map(|&t| {
            if t < 0.5 {
                0.5
            } else if t < 50.0 {
                0.25
            } else {
                0.0
            }
        })
        .collect();
    assert!(fit_logistic_in_log_x(&x, &stairs).r2 < 0.95);
}

#[test]
fn transition_width_in_decades() {
    let x: Vec<f64> = std::iter::once(0.0).chain((0..=40).map(|i| 10f64.powf(i as f64 / 10.0))).collect();
    // A linear fall in log10 x from 1 (x = 10) to 0 (x = 1000).
    let y: Vec<f64> = x.iter().map(|&t| if t <= 10.0 { 1.0 } else { (3.0 - t.log10()).max(0.0) / 2.0 }).collect();
    assert!(close(transition_width(&curve(x.clone(), y.clone())), 1.6, 1e-9));
    // Never down to 10%: infinite. Already falling at the first logged x: NaN.
    let stuck: Vec<f64> = y.iter().map(|v| v.max(0.5)).collect();
    assert!(transition_width(&curve(x.clone(), stuck)).is_infinite());
    let mut early = y.clone();
    early[1] = 0.5;
    assert!(transition_width(&curve(x, early)).is_nan());
}

#[test]
fn starvation_reproduces_the_notes_reference_values_at_twice_the_time() {
    // The notes average the loss within each class; we average over all N
    // points, so each class weighs 1/2 and our time runs at half speed: their
    // values at t are ours at 2t.
    let times = [20.0, 200.0, 2000.0, 20000.0];
    let w = theory::starvation_weights(0.1, Loss::CrossEntropy, false, 0.0, &times, 1e-3);
    let (a_ref, b_ref) = ([2.2, 4.5, 6.9, 9.2], [0.20, 0.38, 0.54, 0.67]);
    for (i, &(a, b)) in w.iter().enumerate() {
        assert!((a - a_ref[i]).abs() < 0.05, "t = {}: w_A = {a}, notes {}", times[i], a_ref[i]);
        assert!((b - b_ref[i]).abs() < 0.005, "t = {}: w_B = {b}, notes {}", times[i], b_ref[i]);
    }
}

#[test]
fn starvation_hinge_freezes_at_p_over_one_plus_p() {
    // Both kinds of positive points move until w_A + w_B = 1 (at t = 2/(1+p)),
    // then the A-only points alone until w_A = 1. The notes' 0.335 for p = 0.5
    // is gradient descent with a finite rate; the flow gives 1/3.
    // The flow is solved from kink to kink, so these hold to rounding, at any
    // logging times (the step size is not a parameter of the hinge path).
    for p in [0.1, 0.5] {
        let t1 = 2.0 / (1.0 + p);
        let t2 = t1 + 2.0 * p / ((1.0 + p) * (1.0 - p));
        let times = [0.5 * t1, t1, 0.5 * (t1 + t2), t2, 50.0];
        let w = theory::starvation_weights(p, Loss::Hinge, false, 0.0, &times, 1e-4);
        let close = |x: f64, y: f64| (x - y).abs() < 1e-12;
        assert!(close(w[0].0, t1 / 4.0) && close(w[0].1, p * t1 / 4.0), "p = {p}: before the kink {:?}", w[0]);
        assert!(close(w[1].0 + w[1].1, 1.0) && close(w[1].1, p / (1.0 + p)), "p = {p}: at a + b = 1 {:?}", w[1]);
        assert!(w[2].0 < 1.0 && close(w[2].1, p / (1.0 + p)), "p = {p}: B frozen while A goes on {:?}", w[2]);
        for &(a, b) in &w[3..] {
            assert!(close(a, 1.0) && close(b, p / (1.0 + p)), "p = {p}: w_A = {a}, w_B = {b}");
        }
    }
    // The control: B alone rises at p / 2 until its margin reaches 1, at t = 2 / p.
    let w = theory::starvation_weights(0.1, Loss::Hinge, true, 0.0, &[10.0, 20.0, 30.0], 1e-4);
    assert!((w[0].1 - 0.5).abs() < 1e-12 && w[1].1 == 1.0 && w[2].1 == 1.0, "{w:?}");
}

#[test]
fn starvation_control_learns_b_like_a_lone_linear_point() {
    // Without A, the B points form their own decoupled mode with rate p/2:
    // the linear closed form with s = 1 and n = 2/p.
    let p = 0.1;
    let times = [1.0, 30.0, 900.0];
    let w = theory::starvation_weights(p, Loss::CrossEntropy, true, 0.0, &times, 1e-3);
    for (&t, &(_, b)) in times.iter().zip(&w) {
        let exact = theory::linear_ce_margin(0.0, 1.0, 2.0 / p, t);
        assert!(close(b, exact, 1e-5), "t = {t}: {b} vs {exact}");
    }
}

#[test]
fn growing_rk4_steps_track_fixed_small_steps() {
    let times: Vec<f64> = (0..60).map(|i| 0.1 * 1.15f64.powi(i)).collect();
    for loss in [Loss::CrossEntropy, Loss::Hinge] {
        let mode = Mode { norm: 1.3, weights: vec![0.1, 0.1] };
        let coarse: Vec<f64> = mode.states_at(&times, loss, 4.0, 0.01, 0.01).iter().map(Mode::margin).collect();
        let fine = mode.margins_at(&times, loss, 4.0, 1e-3);
        for (c, f) in coarse.iter().zip(&fine) {
            assert!((c - f).abs() < 1e-3 * f.abs().max(1.0), "{loss:?}: {c} vs {f}");
        }
    }
}

/// Ei(x) for small x > 0 by its series.
fn ei(x: f64) -> f64 {
    let mut sum = 0.5772156649015329 + x.ln();
    let mut term = 1.0;
    for k in 1..60 {
        term *= x / k as f64;
        sum += term / k as f64;
    }
    sum
}

#[test]
fn cross_entropy_escapes_about_twice_as_late_as_hinge() {
    // Balanced two-layer chain, s = 1, n = 1, weights w0: hinge dz/dt = 2z
    // reaches 1 at ln(1/w0); cross-entropy at (ln(1/w0^2) + Ei(1) - Ei(w0^2)) / 2.
    // Their ratio tends to 2 as w0 -> 0, from above.
    let mut previous = f64::INFINITY;
    for w0 in [0.1, 0.05, 0.01, 0.001] {
        let mode = Mode { norm: 1.0, weights: vec![w0, w0] };
        let ce = mode.time_to_reach(1.0, Loss::CrossEntropy, 1.0, 1e-3, 100.0).unwrap();
        // The hinge push jumps to 0 at the target: the crossing step needs a finer dt.
        let hinge = mode.time_to_reach(1.0, Loss::Hinge, 1.0, 1e-4, 100.0).unwrap();
        assert!(close(hinge, (1.0 / w0).ln(), 1e-4), "hinge {hinge}");
        let exact_ce = ((1.0 / (w0 * w0)).ln() + ei(1.0) - ei(w0 * w0)) / 2.0;
        assert!(close(ce, exact_ce, 1e-4), "cross-entropy {ce} vs {exact_ce}");
        let ratio = ce / hinge;
        assert!(ratio > 2.0 && ratio < previous, "w0 = {w0}: ratio {ratio}");
        previous = ratio;
    }
}

/// Spectral decoupling on the starvation data, linear model: the penalized
/// flow ends at a = m*, b = 0 (`theory::decoupled_margin`), with
/// sigma(-m*) = lambda m*; B rises first, then is given back.
#[test]
fn spectral_decoupling_drives_the_linear_model_to_its_fixed_point() {
    for penalty in [0.01, 0.1, 0.5] {
        let m = theory::decoupled_margin(Loss::CrossEntropy, penalty);
        assert!((theory::sigmoid(-m) - penalty * m).abs() < 1e-12, "lambda {penalty}: m* = {m}");
        let times = [1.0, 10.0, 100.0, 20000.0];
        let w = theory::starvation_weights(0.1, Loss::CrossEntropy, false, penalty, &times, 1e-2);
        let (a, b) = w[3];
        assert!((a - m).abs() < 1e-3 * m && b.abs() < 1e-3 * m, "lambda {penalty}: (a, b) = ({a}, {b}), m* = {m}");
        assert!(w[1].1 > 10.0 * b.abs(), "lambda {penalty}: B was learned transiently ({:?})", w);
    }
    // Hinge: the kink holds the margins at 1 while lambda < 1.
    assert_eq!(theory::decoupled_margin(Loss::Hinge, 0.5), 1.0);
    assert_eq!(theory::decoupled_margin(Loss::Hinge, 2.0), 0.5);
    // Without the penalty nothing stops w_B: the plain flow keeps it growing.
    let plain = theory::starvation_weights(0.1, Loss::CrossEntropy, false, 0.0, &[100.0, 20000.0], 1e-2);
    assert!(plain[1].1 > plain[0].1);
}

/// The multiclass margin ODE: from zero logits, the integrated K-dimensional
/// flow reaches each margin when the closed form says, for K = 2, 4, 10.
#[test]
fn multiclass_flow_from_zero_matches_its_closed_form() {
    for k in [2usize, 4, 10] {
        let (s, n, class) = (1.3, 32.0, 1);
        for m in [0.5, 1.0, 3.0] {
            let t = theory::multiclass_time_to_margin(m, k, s, n);
            let z = theory::multiclass_logits(&vec![0.0; k], class, s, n, &[t], 1e-3);
            let reached = theory::multiclass_margin(&z[0], class);
            assert!((reached - m).abs() < 1e-6, "K = {k}: margin {reached} at the closed form's time for {m}");
        }
    }
    // K = 2 is the binary logistic flow of the margin: dm/dt = 2 s^2 sigma(-m) / N.
    let t = theory::multiclass_time_to_margin(1.0, 2, 1.0, 1.0);
    assert!((t - std::f64::consts::E / 2.0).abs() < 1e-12);
}

/// Ei by its series against tabulated values (Abramowitz and Stegun, table 5.1).
#[test]
fn exponential_integral_matches_tables() {
    for (x, ei) in [(0.01, -4.017_929_465), (0.5, 0.454_219_904_9), (1.0, 1.895_117_816), (5.0, 40.185_275_36)] {
        let got = theory::exponential_integral(x);
        assert!((got - ei).abs() < 1e-8 * ei.abs().max(1.0), "Ei({x}) = {got}, tables say {ei}");
    }
}

/// The two-layer multiclass flow from the symmetric balanced start reaches
/// each margin when its closed form says (K = 2, 4, 10), keeps a^2 - |v|^2,
/// and from a random direction it keeps it too.
#[test]
fn multiclass_two_layer_flow_matches_its_closed_form_from_the_symmetric_start() {
    let (s, n, class, b) = (1.3, 32.0, 1usize, 0.1);
    for k in [2usize, 4, 10] {
        let norm = ((k as f64 - 1.0) / k as f64).sqrt();
        let v0: Vec<f64> = (0..k).map(|j| b * (f64::from(u8::from(j == class)) - 1.0 / k as f64) / norm).collect();
        let m0 = theory::multiclass_margin(&theory::two_layer_logits(&[&[b][..], &v0].concat(), s), class);
        let c = (k as f64 / (k as f64 - 1.0)).sqrt();
        assert!((m0 - s * c * b * b).abs() < 1e-12, "K = {k}: starting margin {m0}");
        for m1 in [0.5, 1.0, 3.0] {
            let t = theory::multiclass_two_layer_symmetric_time(m0, m1, k, s, n);
            let state = theory::multiclass_two_layer(b, &v0, class, s, n, &[t], 1e-3).remove(0);
            let reached = theory::multiclass_margin(&theory::two_layer_logits(&state, s), class);
            assert!((reached - m1).abs() < 1e-5, "K = {k}: margin {reached} at the closed form's time for {m1}");
            let v2: f64 = state[1..].iter().map(|v| v * v).sum();
            assert!(
                (state[0] * state[0] - v2).abs() < 1e-9,
                "K = {k}: a^2 - |v|^2 moved to {}",
                state[0] * state[0] - v2
            );
        }
    }
    // A random direction: still balanced along the way, and it gets there later.
    let v0 = [0.06, -0.07, 0.03, -0.0412310562561766];
    let a0 = v0.iter().map(|v| v * v).sum::<f64>().sqrt();
    let states = theory::multiclass_two_layer(a0, &v0, 1, s, n, &[0.0, 100.0, 1000.0], 1e-3);
    for state in &states {
        let v2: f64 = state[1..].iter().map(|v| v * v).sum();
        assert!((state[0] * state[0] - v2).abs() < 1e-9);
    }
    let margins: Vec<f64> =
        states.iter().map(|st| theory::multiclass_margin(&theory::two_layer_logits(st, s), 1)).collect();
    assert!(margins[0] < 0.0 && margins[2] > 1.0, "margins {margins:?}: starts wrong, ends learned");
    // Later than the symmetric start of the same length: at its time to margin 1, still below.
    let c = (4.0f64 / 3.0).sqrt();
    let symmetric = theory::multiclass_two_layer_symmetric_time(s * c * a0 * a0, 1.0, 4, s, n);
    let state = theory::multiclass_two_layer(a0, &v0, 1, s, n, &[symmetric], 1e-3).remove(0);
    let reached = theory::multiclass_margin(&theory::two_layer_logits(&state, s), 1);
    assert!(reached < 1.0, "margin {reached} at the symmetric start's time to 1");
}
