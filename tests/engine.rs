//! The engines against each other and against Candle's autograd: the batched
//! engine's hand-derived gradients, the fused engine against the batched one,
//! the fused kernels' AVX2 path against their portable path bit for bit, and
//! training repeated in another process.

use candle_core::{Device, Tensor, Var};
use learning_dynamics::engine::{self, Engine, EnsembleData, EnsembleWeights, RecordWeights, TrainConfig, TrainLog};
use learning_dynamics::rng;
use learning_dynamics::values::Loss;

/// A random ensemble and data set (no exactly-zero pre-activations, where the
/// two ReLU conventions differ).
fn problem(depth: usize, members: usize, n: usize, d: usize, width: usize) -> (EnsembleWeights, EnsembleData) {
    let mut r = rng::stream("test/engine", depth as u64);
    let shapes: Vec<(usize, usize)> =
        (0..depth).map(|l| (if l == depth - 1 { 1 } else { width }, if l == 0 { d } else { width })).collect();
    let layers = shapes
        .iter()
        .map(|&(o, i)| (0..members * o * i).map(|_| (0.8 * rng::normal(&mut r)) as f32).collect())
        .collect();
    let x = (0..members * n * d).map(|_| rng::normal(&mut r) as f32).collect();
    let y = (0..members * n).map(|_| rng::sign(&mut r) as f32).collect();
    (EnsembleWeights { members, shapes, layers }, EnsembleData { members, points: n, dim: d, x, y })
}

/// Gradients of the summed (over members) mean loss, by Candle's autograd on
/// the plain model: f = W_L relu(... relu(W_1 x)).
fn autograd(init: &EnsembleWeights, data: &EnsembleData, loss: Loss, penalty: f64) -> Vec<Vec<f32>> {
    let dev = Device::Cpu;
    let (e, n, d) = (data.members, data.points, data.dim);
    let vars: Vec<Var> = init
        .shapes
        .iter()
        .zip(&init.layers)
        .map(|(&(o, i), w)| Var::from_tensor(&Tensor::from_vec(w.clone(), (e, o, i), &dev).unwrap()).unwrap())
        .collect();
    let mut h = Tensor::from_vec(data.x.clone(), (e, n, d), &dev).unwrap();
    for (l, w) in vars.iter().enumerate() {
        h = h.matmul(&w.as_tensor().t().unwrap()).unwrap();
        if l + 1 < vars.len() {
            h = h.relu().unwrap();
        }
    }
    let y = Tensor::from_vec(data.y.clone(), (e, n), &dev).unwrap();
    let f = h.squeeze(2).unwrap();
    let m = (&f * y).unwrap();
    let per_point = match loss {
        // log(1 + e^-m) = relu(-m) + log(1 + e^-|m|), stable for any m.
        Loss::CrossEntropy => (m.neg().unwrap().relu().unwrap()
            + (m.abs().unwrap().neg().unwrap().exp().unwrap() + 1.0).unwrap().log().unwrap())
        .unwrap(),
        Loss::Hinge => (m.neg().unwrap() + 1.0).unwrap().relu().unwrap(),
    };
    // Spectral decoupling: + (penalty / 2) f^2 per point.
    let per_point = (per_point + f.sqr().unwrap().affine(penalty / 2.0, 0.0).unwrap()).unwrap();
    let total = (per_point.sum_all().unwrap() / n as f64).unwrap();
    let grads = total.backward().unwrap();
    vars.iter().map(|v| grads.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
}

/// Gradients implied by one step of `engine` with rate 1: w0 - w1.
fn gradients(engine: Engine, init: &EnsembleWeights, data: &EnsembleData, loss: Loss, penalty: f64) -> Vec<Vec<f32>> {
    let cfg = TrainConfig {
        loss,
        output_penalty: penalty,
        learning_rate: 1.0,
        log_steps: vec![0, 1],
        record_weights: RecordWeights::Every,
        probe: None,
    };
    let log = engine::train_with(engine, init, data, &cfg).unwrap();
    let after = &log.weights[1].1;
    init.layers.iter().zip(&after.layers).map(|(a, b)| a.iter().zip(b).map(|(a, b)| a - b).collect()).collect()
}

/// Both engines, each named, whatever `engine::train` would pick at this size
/// (at the sizes here it picks the fused one).
#[test]
fn hand_derived_gradients_match_candle_autograd_in_both_engines() {
    engine::pin_candle_threads();
    for engine in [Engine::Batched, Engine::Fused] {
        for depth in 1..=4 {
            for loss in [Loss::CrossEntropy, Loss::Hinge] {
                // The plain loss, and with the output penalty of spectral decoupling.
                for penalty in [0.0, 0.3] {
                    let (init, data) = problem(depth, 3, 5, 4, 6);
                    let want = autograd(&init, &data, loss, penalty);
                    let got = gradients(engine, &init, &data, loss, penalty);
                    for (l, (w, g)) in want.iter().zip(&got).enumerate() {
                        for (a, b) in w.iter().zip(g) {
                            assert!(
                                (a - b).abs() <= 2e-5 * a.abs().max(1.0),
                                "{engine:?}, depth {depth}, {loss:?}, penalty {penalty}, layer {l}: autograd {a}, engine {b}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn zero_preactivations_get_no_gradient() {
    // Depth 2, one hidden unit whose pre-activation is exactly 0: Candle's
    // relu'(0) = 1 would move its incoming weights; the paper's networks
    // (and ours) use relu'(0) = 0.
    let init = EnsembleWeights { members: 1, shapes: vec![(1, 2), (1, 1)], layers: vec![vec![0.0, 0.0], vec![-0.5]] };
    let data = EnsembleData { members: 1, points: 1, dim: 2, x: vec![1.0, 0.0], y: vec![1.0] };
    for engine in [Engine::Batched, Engine::Fused] {
        let grads = gradients(engine, &init, &data, Loss::CrossEntropy, 0.0);
        assert_eq!(grads[0], vec![0.0, 0.0], "{engine:?}");
    }
}

#[test]
fn margins_are_logged_at_the_schedule() {
    assert_eq!(engine::log_schedule(100, 5), vec![0, 1, 3, 10, 32, 100]);
    let (init, data) = problem(2, 2, 3, 3, 4);
    let cfg = TrainConfig {
        loss: Loss::CrossEntropy,
        output_penalty: 0.0,
        learning_rate: 0.1,
        log_steps: vec![0, 2, 7],
        record_weights: RecordWeights::Last,
        probe: None,
    };
    let log = engine::train(&init, &data, &cfg).unwrap();
    assert_eq!(log.margins.len(), 3);
    assert_eq!(log.margins[0].len(), 2 * 3);
    assert_eq!(log.weights.len(), 1);
    assert_eq!(log.weights[0].0, 7);
    assert_eq!(log.times(), vec![0.0, 0.2, 0.7000000000000001]);
}

/// One training for the repeatability tests, in the engine `engine::train` picks.
fn repeatable_training() -> TrainLog {
    let (init, data) = problem(3, 4, 6, 5, 7);
    let cfg = TrainConfig {
        loss: Loss::CrossEntropy,
        output_penalty: 0.0,
        learning_rate: 0.3,
        log_steps: engine::log_schedule(300, 20),
        record_weights: RecordWeights::Last,
        probe: None,
    };
    engine::train(&init, &data, &cfg).unwrap()
}

/// Set in the child process of `training_is_bit_for_bit_repeatable_across_processes`.
const CHILD: &str = "LEARNING_DYNAMICS_REPEATABILITY_CHILD";

/// In the child process only: prints the training's log as JSON.
#[test]
fn repeatable_training_child() {
    if std::env::var_os(CHILD).is_some() {
        println!("LOG {}", serde_json::to_string(&repeatable_training()).unwrap());
    }
}

/// The same training in this process and in a fresh one (this test binary
/// run again, with its own allocations, threads and CPU-feature detection)
/// gives the same bits.
#[test]
fn training_is_bit_for_bit_repeatable_across_processes() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "repeatable_training_child", "--nocapture", "--test-threads", "1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line =
        stdout.lines().find_map(|l| l.split_once("LOG ").map(|(_, log)| log)).expect("the child printed its log");
    let theirs: TrainLog = serde_json::from_str(line).unwrap();
    assert_eq!(repeatable_training(), theirs);
}

/// Every path of the fused kernels this CPU can take (portable, with FMA in
/// software; AVX2 + FMA; AVX-512) gives the same bits, and so do the lane
/// kernel (tiny nets, in groups of 16, 4 and 1 lanes) and the one-member
/// kernel, on every depth, loss and objective. A path the CPU lacks cannot
/// run here, and the test says which it compared; CI runs it on machines
/// with and without AVX-512.
#[test]
fn every_vector_path_and_the_lane_and_member_kernels_give_the_same_bits() {
    let paths = engine::fused::paths();
    eprintln!(
        "comparing the paths {:?} (the widest this CPU has: {})",
        paths.iter().map(|p| p.name()).collect::<Vec<_>>(),
        engine::fused::widest_path().name()
    );
    for depth in 1..=4 {
        for loss in [Loss::CrossEntropy, Loss::Hinge] {
            // The first two and the lone chain (1, 1, 1, 1) are the narrow nets
            // (one unit per layer, one point) of `narrow_step`.
            for (members, n, d, width) in [
                (11, 1, 2, 1),
                (3, 1, 9, 1),
                (1, 1, 1, 1),
                (9, 2, 3, 2),
                (3, 2, 2, 3),
                (1, 3, 2, 2),
                (3, 5, 4, 6),
                (2, 9, 17, 11),
            ] {
                let (init, data) = problem(depth, members, n, d, width);
                let cfg = TrainConfig {
                    loss,
                    // Even depths add the output penalty of spectral decoupling.
                    output_penalty: if depth % 2 == 0 { 0.2 } else { 0.0 },
                    learning_rate: 0.05,
                    log_steps: vec![0, 1, 7, 40],
                    record_weights: RecordWeights::Every,
                    probe: None,
                };
                let native = engine::train_with(Engine::Fused, &init, &data, &cfg).unwrap();
                for &path in &paths {
                    let on_path =
                        engine::fused::at_most(path, || engine::train_with(Engine::Fused, &init, &data, &cfg).unwrap());
                    assert!(
                        native == on_path,
                        "depth {depth}, {loss:?}, {members}x{n}x{d}, width {width}: the {} path differs",
                        path.name()
                    );
                }
                let one_by_one = engine::fused::member_kernel_only(|| {
                    engine::train_with(Engine::Fused, &init, &data, &cfg).unwrap()
                });
                assert!(
                    native == one_by_one,
                    "depth {depth}, {loss:?}, {members}x{n}x{d}, width {width}: the lane and member kernels differ"
                );
            }
        }
    }
}

/// The member kernel's four-rows-at-once sums (`combine_rows`) give the bits
/// of its one-row sums, on dense nets wide enough for its blocks of 16
/// columns, point counts with and without a remainder of four, both paths.
#[test]
fn four_rows_at_once_give_the_bits_of_one_row_at_a_time() {
    for depth in 2..=3 {
        for loss in [Loss::CrossEntropy, Loss::Hinge] {
            for (members, n, d, width) in [(2, 8, 20, 40), (3, 13, 35, 17), (1, 6, 9, 33)] {
                let (init, data) = problem(depth, members, n, d, width);
                let cfg = TrainConfig {
                    loss,
                    output_penalty: if depth == 3 { 0.1 } else { 0.0 },
                    // Small enough that nothing diverges: with an infinite weight, a
                    // zero coefficient's product is NaN, which the one-row sum skips.
                    learning_rate: 0.002,
                    log_steps: vec![0, 1, 9, 30],
                    record_weights: RecordWeights::Every,
                    probe: None,
                };
                let train = || engine::train_with(Engine::Fused, &init, &data, &cfg).unwrap();
                let blocked = train();
                let one_by_one = engine::fused::one_row_at_a_time(train);
                assert!(blocked.diverged_at.iter().all(Option::is_none), "the test problem diverged");
                assert!(blocked == one_by_one, "depth {depth}, {loss:?}, {members}x{n}x{d}, width {width}");
                for path in engine::fused::paths() {
                    let on_path = engine::fused::at_most(path, train);
                    assert!(
                        blocked == on_path,
                        "depth {depth}, {loss:?}, {members}x{n}x{d}, width {width}: {}",
                        path.name()
                    );
                }
            }
        }
    }
}

#[test]
fn divergence_is_detected_not_plotted() {
    let (init, data) = problem(3, 2, 4, 3, 5);
    let cfg = TrainConfig {
        loss: Loss::Hinge,
        output_penalty: 0.0,
        learning_rate: 1e30,
        log_steps: vec![0, 1, 5, 50],
        record_weights: RecordWeights::Never,
        probe: None,
    };
    let log = engine::train(&init, &data, &cfg).unwrap();
    assert!(log.diverged_at.iter().all(|d| d.is_some()), "{:?}", log.diverged_at);
}

/// The fused engine against the batched program (itself checked against
/// autograd above): same weights, margins, norms and probe margins after
/// many steps, for depth 1 to 4, both losses, and shapes with and without a
/// remainder after the 8-wide chunks of the fused dot products.
#[test]
fn fused_engine_matches_the_batched_program() {
    for depth in 1..=4 {
        for loss in [Loss::CrossEntropy, Loss::Hinge] {
            // The first two are tiny (stepped 8 members at a time, 11 and 9 pad a
            // last group), the others member by member.
            for (members, n, d, width) in
                [(11, 1, 2, 1), (9, 2, 3, 2), (3, 2, 2, 3), (1, 3, 2, 2), (3, 5, 4, 6), (2, 9, 17, 11)]
            {
                let (init, data) = problem(depth, members, n, d, width);
                let (_, probe) = problem(depth, members, 4, d, width);
                let cfg = TrainConfig {
                    loss,
                    // Even depths add the output penalty of spectral decoupling.
                    output_penalty: if depth % 2 == 0 { 0.2 } else { 0.0 },
                    learning_rate: 0.05,
                    log_steps: vec![0, 1, 7, 40],
                    record_weights: RecordWeights::Every,
                    probe: Some(probe),
                };
                let fused = engine::train_with(Engine::Fused, &init, &data, &cfg).unwrap();
                let batched = engine::train_with(Engine::Batched, &init, &data, &cfg).unwrap();
                let what = format!("depth {depth}, {loss:?}, {members}x{n}x{d}, width {width}");
                let near = |a: &[f32], b: &[f32], what: &str| {
                    for (x, y) in a.iter().zip(b) {
                        assert!((x - y).abs() <= 1e-4 * x.abs().max(y.abs()).max(1.0), "{what}: {x} vs {y}");
                    }
                };
                for k in 0..cfg.log_steps.len() {
                    near(&fused.margins[k], &batched.margins[k], &format!("{what}: margins at log {k}"));
                    near(
                        &fused.probe_margins[k],
                        &batched.probe_margins[k],
                        &format!("{what}: probe margins at log {k}"),
                    );
                    near(&fused.weight_norms[k], &batched.weight_norms[k], &format!("{what}: norms at log {k}"));
                    for (a, b) in fused.weights[k].1.layers.iter().zip(&batched.weights[k].1.layers) {
                        near(a, b, &format!("{what}: weights at log {k}"));
                    }
                }
            }
        }
    }
}

#[test]
fn the_vectorized_exp_is_within_a_few_ulp() {
    use learning_dynamics::engine::fused::exp_for_tests as exp;
    for k in -7900..=8000 {
        let x = k as f32 * 0.011;
        let got = exp(x);
        let want = x.exp();
        assert!((got - want).abs() <= 4.0 * f32::EPSILON * want, "e^{x}: {got} vs {want}");
    }
}

/// K outputs: softmax cross-entropy, labels the class indices 0..K, in both
/// engines, against Candle's autograd; then both engines' training against
/// each other, and the fused engine's on every vector path, bit for bit.
#[test]
fn softmax_cross_entropy_gradients_match_candle_autograd() {
    let dev = Device::Cpu;
    let (members, n, d, width, k) = (2, 6, 4, 5, 3);
    for depth in 1..=3 {
        let mut r = rng::stream("test/engine-softmax", depth as u64);
        let shapes: Vec<(usize, usize)> =
            (0..depth).map(|l| (if l == depth - 1 { k } else { width }, if l == 0 { d } else { width })).collect();
        let layers: Vec<Vec<f32>> = shapes
            .iter()
            .map(|&(o, i)| (0..members * o * i).map(|_| (0.8 * rng::normal(&mut r)) as f32).collect())
            .collect();
        let x: Vec<f32> = (0..members * n * d).map(|_| rng::normal(&mut r) as f32).collect();
        let y: Vec<f32> = (0..members * n).map(|i| (i % k) as f32).collect();
        let init = EnsembleWeights { members, shapes: shapes.clone(), layers: layers.clone() };
        let data = EnsembleData { members, points: n, dim: d, x: x.clone(), y: y.clone() };
        let by_engine = [Engine::Batched, Engine::Fused]
            .map(|engine| (engine, gradients(engine, &init, &data, Loss::CrossEntropy, 0.0)));
        // Autograd: mean over points of -log softmax(f)_y, summed over members.
        let vars: Vec<Var> = shapes
            .iter()
            .zip(&layers)
            .map(|(&(o, i), w)| Var::from_tensor(&Tensor::from_vec(w.clone(), (members, o, i), &dev).unwrap()).unwrap())
            .collect();
        let mut h = Tensor::from_vec(x, (members, n, d), &dev).unwrap();
        for (l, w) in vars.iter().enumerate() {
            h = h.matmul(&w.as_tensor().t().unwrap()).unwrap();
            if l + 1 < vars.len() {
                h = h.relu().unwrap();
            }
        }
        let one_hot: Vec<f32> =
            y.iter().flat_map(|&c| (0..k).map(move |j| if j == c as usize { 1.0 } else { 0.0 })).collect();
        let one_hot = Tensor::from_vec(one_hot, (members, n, k), &dev).unwrap();
        let log_p = candle_nn::ops::log_softmax(&h, 2).unwrap();
        let total = ((log_p * one_hot).unwrap().sum_all().unwrap() * (-1.0 / n as f64)).unwrap();
        let grads = total.backward().unwrap();
        for (engine, got) in &by_engine {
            for (l, v) in vars.iter().enumerate() {
                let want = grads.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                for (a, b) in want.iter().zip(&got[l]) {
                    assert!(
                        (a - b).abs() <= 2e-5 * a.abs().max(1.0),
                        "{engine:?}, depth {depth}, layer {l}: autograd {a}, engine {b}"
                    );
                }
            }
        }
        // Trained for a while, with a probe set: the two engines agree to float
        // rounding, and every path of the fused one gives its bits.
        assert_eq!(engine::choose_engine(&shapes), Engine::Fused);
        let probe = EnsembleData { members, points: 3, dim: d, x: x_probe(members, 3, d), y: vec![1.0; members * 3] };
        let cfg = TrainConfig {
            loss: Loss::CrossEntropy,
            output_penalty: 0.0,
            learning_rate: 0.1,
            log_steps: vec![0, 1, 10, 60],
            record_weights: RecordWeights::Every,
            probe: Some(probe),
        };
        let fused = engine::train_with(Engine::Fused, &init, &data, &cfg).unwrap();
        let batched = engine::train_with(Engine::Batched, &init, &data, &cfg).unwrap();
        for (k, (a, b)) in fused.margins.iter().zip(&batched.margins).enumerate() {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-4 * x.abs().max(1.0), "depth {depth}, log {k}: margins {x} vs {y}");
            }
        }
        for (a, b) in fused.probe_margins.iter().flatten().zip(batched.probe_margins.iter().flatten()) {
            assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "depth {depth}: probe margins {a} vs {b}");
        }
        assert!(fused.margins[3].iter().all(|m| m.is_finite()));
        for path in engine::fused::paths() {
            let on_path =
                engine::fused::at_most(path, || engine::train_with(Engine::Fused, &init, &data, &cfg).unwrap());
            assert!(fused == on_path, "depth {depth}: the {} path differs", path.name());
        }
        let hinge = TrainConfig::logged(Loss::Hinge, 0.1, 2, 2);
        assert!(engine::train(&init, &data, &hinge).is_err(), "hinge with several outputs is refused");
    }
}

/// Inputs of a probe set for the softmax test: fixed, not from the training stream.
fn x_probe(members: usize, n: usize, d: usize) -> Vec<f32> {
    (0..members * n * d).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3).collect()
}
