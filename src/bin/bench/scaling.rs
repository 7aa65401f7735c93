//! `cargo xtask bench --scaling`: time per network-step of one synthetic
//! workload as the ensemble, the width and the number of points grow, one at
//! a time from a base, in our two engines and in the references where they
//! are installed; drawn by the pipeline's own renderer, so that where each
//! engine takes over can be seen.
//!
//! The workload: a bias-free two-layer ReLU net (`DIM` inputs, one output),
//! cross-entropy, full-batch gradient descent, every member with its own
//! random init (normal, variance 1 / fan-in) and its own data (normal inputs,
//! labels from a random linear teacher).

use anyhow::Result;
use learning_dynamics::engine::{EnsembleData, EnsembleWeights, RecordWeights, TrainConfig, TrainInput};
use learning_dynamics::figure::{palette, FigureBody, FigureData, Panel, Provenance, Series, Source};
use learning_dynamics::rng;
use learning_dynamics::values::Loss;

use super::{human, median, python_refs, time_engine, Engine};

/// Inputs per point.
const DIM: usize = 8;

/// One workload's size.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Size {
    pub members: usize,
    pub width: usize,
    pub points: usize,
}

/// Where every axis starts from.
pub const BASE: Size = Size { members: 16, width: 32, points: 128 };

/// An axis: its name, the values it takes, and the size at one value.
type Axis = (&'static str, &'static [usize], fn(usize) -> Size);

const AXES: [Axis; 3] = [
    ("networks in the ensemble", &[1, 4, 16, 64, 256, 1024, 4096], |members| Size { members, ..BASE }),
    ("hidden width", &[16, 32, 64, 128, 256, 512, 1024], |width| Size { width, ..BASE }),
    ("points", &[32, 128, 512, 2048, 8192], |points| Size { points, ..BASE }),
];

/// Seconds per network-step at one size, per engine (None: not installed).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Measurement {
    pub axis: usize,
    pub value: usize,
    pub size: Size,
    pub fused: f64,
    pub batched: f64,
    pub jax: Option<f64>,
    pub torch: Option<f64>,
}

/// The synthetic training at `size`.
pub fn workload(size: Size) -> TrainInput {
    let Size { members, width, points } = size;
    let shapes = vec![(width, DIM), (1, width)];
    let mut layers = vec![Vec::new(), Vec::new()];
    let (mut x, mut y) = (Vec::with_capacity(members * points * DIM), Vec::with_capacity(members * points));
    for e in 0..members as u64 {
        for (all, one) in layers.iter_mut().zip(rng::random_layers("bench scaling init", e, &shapes, 1.0)) {
            all.extend(one);
        }
        let mut r = rng::stream("bench scaling data", e);
        let teacher: Vec<f64> = (0..DIM).map(|_| rng::normal(&mut r)).collect();
        for _ in 0..points {
            let point: Vec<f64> = (0..DIM).map(|_| rng::normal(&mut r)).collect();
            let side: f64 = point.iter().zip(&teacher).map(|(a, b)| a * b).sum();
            y.push(if side >= 0.0 { 1.0 } else { -1.0 });
            x.extend(point.iter().map(|&v| v as f32));
        }
    }
    TrainInput {
        init: EnsembleWeights { members, shapes, layers },
        data: EnsembleData { members, points, dim: DIM, x, y },
        cfg: TrainConfig {
            loss: Loss::CrossEntropy,
            output_penalty: 0.0,
            learning_rate: 0.05,
            log_steps: vec![0, 1],
            record_weights: RecordWeights::Never,
            probe: None,
        },
    }
}

/// Measures every size of every axis, printing a line each.
pub fn measure(python: Option<&str>, repeats: usize, seconds: f64) -> Result<Vec<Measurement>> {
    println!(
        "scaling: a two-layer ReLU net ({DIM} inputs, one output), cross-entropy; base: {} networks, width {}, {} points",
        BASE.members, BASE.width, BASE.points
    );
    println!(
        "{:<26} {:>6} {:>11} {:>11} {:>11} {:>11} {:>8}",
        "axis", "value", "fused", "batched", "jax scan", "torch", "jax/ours"
    );
    let mut out = Vec::new();
    for (axis, (name, values, size_at)) in AXES.iter().enumerate() {
        for &value in *values {
            let size = size_at(value);
            let input = workload(size);
            // Steps such that the fused engine takes about `seconds`.
            let probe = time_engine(Engine::Fused, &input, 2)? / 2.0;
            // At least 5, so that the two logged steps (a forward pass each) weigh little.
            let steps = ((seconds / probe).round() as u64).clamp(5, 1_000_000);
            let per = |s: f64| s / (steps as f64 * size.members as f64);
            let fused = per(median(repeats, || time_engine(Engine::Fused, &input, steps))?);
            let batched_steps = (steps / 10).max(2);
            let batched = median(repeats, || time_engine(Engine::Batched, &input, batched_steps))?
                / (batched_steps as f64 * size.members as f64);
            let [jax, _, torch] = match python {
                Some(python) => python_refs(python, &input, steps, repeats)?,
                None => [None; 3],
            };
            let show = |t: Option<f64>| t.map_or("-".to_string(), human);
            println!(
                "{:<26} {:>6} {:>11} {:>11} {:>11} {:>11} {:>8}",
                name,
                value,
                human(fused),
                human(batched),
                show(jax),
                show(torch),
                jax.map_or("-".to_string(), |j| format!("{:.2}", j / fused))
            );
            out.push(Measurement { axis, value, size, fused, batched, jax, torch });
        }
    }
    Ok(out)
}

/// Where along each axis the faster of our fused engine and JAX changes, in words.
fn takeovers(measured: &[Measurement]) -> Vec<String> {
    let mut out = Vec::new();
    for (axis, (name, _, _)) in AXES.iter().enumerate() {
        let ahead: Vec<(usize, bool)> =
            measured.iter().filter(|m| m.axis == axis).filter_map(|m| m.jax.map(|j| (m.value, m.fused <= j))).collect();
        if ahead.is_empty() {
            continue;
        }
        let changes: Vec<String> = ahead
            .windows(2)
            .filter(|w| w[0].1 != w[1].1)
            .map(|w| {
                let who = if w[1].1 { "ours" } else { "JAX" };
                format!("{who} ahead from {} on", w[1].0)
            })
            .collect();
        let first = if ahead[0].1 { "ours" } else { "JAX" };
        let text = if changes.is_empty() {
            format!("{name}: {first} ahead throughout")
        } else {
            format!("{name}: {first} ahead at {}, {}", ahead[0].0, changes.join(", "))
        };
        out.push(text);
    }
    out
}

/// The figure: one log-log panel per axis, a line per engine.
pub fn figure(measured: &[Measurement], machine: &str) -> Result<FigureData> {
    let mut body = FigureBody::default();
    for (axis, (name, _, _)) in AXES.iter().enumerate() {
        let base = match axis {
            0 => format!("width {}, {} points", BASE.width, BASE.points),
            1 => format!("{} networks, {} points", BASE.members, BASE.points),
            _ => format!("{} networks, width {}", BASE.members, BASE.width),
        };
        body.panels.push(Panel::new(base, *name, "microseconds per network-step").log_x().log_y());
        let here: Vec<&Measurement> = measured.iter().filter(|m| m.axis == axis).collect();
        type Line = (&'static str, &'static str, fn(&Measurement) -> Option<f64>);
        let engines: [Line; 4] = [
            ("ours, fused (the pipeline's)", palette::BLUE, |m| Some(m.fused)),
            ("ours, batched Candle", palette::ORANGE, |m| Some(m.batched)),
            ("JAX jit + vmap + scan", palette::GREEN, |m| m.jax),
            ("PyTorch eager", palette::PURPLE, |m| m.torch),
        ];
        for (label, color, time) in engines {
            let (x, y): (Vec<f64>, Vec<f64>) =
                here.iter().filter_map(|m| time(m).map(|t| (m.value as f64, t * 1e6))).unzip();
            if !x.is_empty() {
                let series = Series::line(format!("{label}, {name}"), axis, Source::Measured, color, x, y);
                body.series.push(series.legend_label(label));
            }
        }
    }
    let config =
        serde_json::json!({ "base": BASE, "inputs": DIM, "axes": AXES.map(|(n, v, _)| (n, v)), "machine": machine });
    let (commit, dirty) = learning_dynamics::provenance::git_state();
    let mut caption = format!(
        "Time per network-step (one gradient step of one network) of a bias-free two-layer ReLU net ({DIM} inputs, \
         one output, cross-entropy, full batch), each axis grown from the base ({} networks, width {}, {} points). \
         Measured on {machine}, median of repeated runs.",
        BASE.members, BASE.width, BASE.points
    );
    let turns = takeovers(measured);
    if !turns.is_empty() {
        caption.push_str(&format!(" Faster of ours (fused) and JAX: {}.", turns.join("; ")));
    }
    Ok(FigureData {
        id: "bench-scaling".into(),
        title: "Where each engine takes over: time per network-step against ensemble, width and points".into(),
        caption,
        provenance: Provenance {
            key: learning_dynamics::provenance::hash_json(&config),
            code_fingerprint: learning_dynamics::provenance::figure_fingerprint(),
            commit,
            dirty,
            config,
            seeds: Vec::new(),
            toolchain: learning_dynamics::provenance::TOOLCHAIN.to_string(),
            files: Default::default(),
        },
        body,
        claims: Vec::new(),
    })
}
