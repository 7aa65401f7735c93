//! `cargo xtask bench`: time per network-step of each figure's real workload
//! (its ensembles and sizes from paper.toml, a fixed number of steps), in
//! the fused engine, in the batched Candle program, in a plain hand-written
//! Rust loop of the same step (a baseline, not a floor: no tiling, no SIMD
//! by hand), and, where installed, in the JAX and PyTorch reference scripts
//! under bench/; with the achieved GFLOP/s beside this core's FMA peak
//! (measured at start). Medians over repetitions.

mod scaling;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use learning_dynamics::engine::fused::VectorPath;
use learning_dynamics::engine::{self, Engine, EnsembleData, EnsembleWeights, RecordWeights, TrainConfig, TrainInput};
use learning_dynamics::kinds::Job;
use learning_dynamics::spec;
use learning_dynamics::values::Loss;

#[derive(Parser)]
#[command(
    about = "Time per network-step of every figure's workload: fused engine, batched Candle, a plain-loop baseline, JAX and PyTorch references; GFLOP/s against the core's FMA peak"
)]
struct Args {
    /// The figure specification whose workloads are timed.
    #[arg(long, default_value = "paper.toml")]
    spec: PathBuf,
    /// Only these figures (repeatable).
    #[arg(long)]
    only: Vec<String>,
    /// Repetitions per measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Target seconds per repetition of the fused engine (sets the step count).
    #[arg(long, default_value_t = 0.2)]
    seconds: f64,
    /// Python interpreter for the JAX and PyTorch references.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Skip the Python references.
    #[arg(long)]
    no_python: bool,
    /// Time every job of each figure, not only the one with the most work.
    #[arg(long)]
    every_job: bool,
    /// The fused kernels' instruction set, at the widest: portable, avx2 or
    /// avx512 (default: the widest this CPU has). Every path gives the same
    /// bits (the GAN's row too: its lane groups run on the path of the thread that starts them).
    #[arg(long, value_parser = parse_path)]
    vector_path: Option<VectorPath>,
    /// Instead of the figures' workloads: the scaling curves, one synthetic
    /// workload as the ensemble (1 to 4096), the width (16 to 1024) and the
    /// points (32 to 8192) grow, drawn to --scaling-out (SVG, and its data as JSON beside it).
    #[arg(long)]
    scaling: bool,
    /// Where --scaling draws its figure.
    #[arg(long, default_value = "bench/scaling.svg", requires = "scaling")]
    scaling_out: PathBuf,
}

fn parse_path(name: &str) -> Result<VectorPath, String> {
    let path = match name {
        "portable" => VectorPath::Portable,
        "avx2" => VectorPath::Avx2Fma,
        "avx512" => VectorPath::Avx512,
        _ => return Err("expected portable, avx2 or avx512".into()),
    };
    if path > engine::fused::widest_path() {
        return Err(format!(
            "this CPU cannot take the {} path (its widest: {})",
            path.name(),
            engine::fused::widest_path().name()
        ));
    }
    Ok(path)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> Result<()> {
    engine::pin_candle_threads();
    let args = Args::parse();
    let path = args.vector_path.unwrap_or_else(engine::fused::widest_path);
    // Candle runs a custom op on the calling thread, so the path set here is the one taken.
    engine::fused::at_most(path, || measure(&args))
}

fn measure(args: &Args) -> Result<()> {
    if args.scaling {
        return scaling_curves(args);
    }
    let paper = spec::load(&args.spec)?;
    for id in &args.only {
        anyhow::ensure!(
            paper.figures.iter().any(|f| f.id() == id),
            "--only {id:?}: {} has no such figure",
            args.spec.display()
        );
    }
    let path = engine::fused::path();
    println!("fused kernels: the {} path (this CPU's widest: {})", path.name(), engine::fused::widest_path().name());
    let peak = fma_peak_gflops(path);
    match peak {
        Some((p, lanes)) => {
            println!("FMA peak of one core, measured: {p:.1} GFLOP/s (f32, 10 chains of {lanes}-lane FMAs)")
        }
        None => println!("FMA peak: not measured (the portable path)"),
    }
    let peak = peak.map(|(p, _)| p);
    println!("time per network-step (median of {} repetitions)", args.repeats);
    println!(
        "the pipeline uses the engine marked *; GFLOP/s: its dense-equivalent rate (2 x multiply-adds of the dense \
         step, zeros it skips included), and % of the FMA peak; jax/ours: JAX scan's time over ours"
    );
    println!(
        "{:<16} {:<40} {:>5} {:>11} {:>11} {:>10} {:>10} {:>10} {:>10} {:>7} {:>5} {:>7}",
        "figure",
        "job (most work per step)",
        "nets",
        "fused",
        "batched",
        "loop",
        "jax scan",
        "jax loop",
        "torch",
        "GFLOP/s",
        "peak",
        "jax/ours"
    );
    let mut missed = Vec::new();
    let mut against_jax: Vec<f64> = Vec::new();
    for fig in &paper.figures {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == fig.id()) {
            continue;
        }
        let kind = fig.experiment.kind();
        let jobs = learning_dynamics::kinds::numbered_jobs(kind);
        if fig.experiment.name() == "gan" {
            // Not the classifier engine: timed whole, one job, per network-step (both networks).
            let job = &jobs[0];
            let start = std::time::Instant::now();
            let log = kind.train(job, 0..job.members())?;
            let steps = *log.log_steps.last().unwrap_or(&1) as f64;
            let per = start.elapsed().as_secs_f64() / (steps * job.members() as f64);
            println!(
                "{:<16} {:<40} {:>5} {:>11}  (engine::gan: generator and discriminator, lanes across seeds)",
                fig.id(),
                job.name,
                job.members(),
                human(per)
            );
            continue;
        }
        // The job with the most work per step stands for the figure.
        let mut prepared =
            jobs.into_iter().map(|j| Ok((kind.prepare_job(&j)?, j))).collect::<Result<Vec<(TrainInput, Job)>>>()?;
        prepared.sort_by_key(|(i, _)| std::cmp::Reverse(work(i)));
        if !args.every_job {
            prepared.truncate(1);
        }
        for (input, job) in prepared {
            let members = input.data.members;
            if input.init.shapes.last().is_some_and(|&(out, _)| out > 1) {
                // Softmax over several outputs: our two engines only (neither the plain
                // loop nor the references are written for it).
                let steps = 200;
                let time = |engine| -> Result<f64> {
                    Ok(median(args.repeats, || time_engine(engine, &input, steps))? / (steps as f64 * members as f64))
                };
                let mark = |engine, t| {
                    if engine::choose_engine(&input.init.shapes) == engine {
                        format!("{}*", human(t))
                    } else {
                        human(t)
                    }
                };
                println!(
                    "{:<16} {:<40} {:>5} {:>11} {:>11}  (softmax over {} outputs: no loop or reference written for it)",
                    fig.id(),
                    job.name,
                    members,
                    mark(Engine::Fused, time(Engine::Fused)?),
                    mark(Engine::Batched, time(Engine::Batched)?),
                    input.init.shapes.last().map_or(0, |s| s.0)
                );
                continue;
            }
            // Steps such that the fused engine takes about `seconds`.
            let probe = time_engine(Engine::Fused, &input, 20)?;
            let steps = ((args.seconds / (probe / 20.0)).round() as u64).clamp(20, 2_000_000);
            let per = |seconds: f64| seconds / (steps as f64 * members as f64);
            let fused = per(median(args.repeats, || time_engine(Engine::Fused, &input, steps))?);
            let batched_steps = (steps / 20).max(5);
            let batched = median(args.repeats, || time_engine(Engine::Batched, &input, batched_steps))?
                / (batched_steps as f64 * members as f64);
            let baseline = per(median(args.repeats, || Ok(time_plain_loop(&input, steps)))?);
            let refs = if args.no_python {
                [None, None, None]
            } else {
                python_refs(&args.python, &input, steps, args.repeats)?
            };
            let fmt = |v: Option<f64>| v.map_or("-".to_string(), human);
            let chosen = engine::choose_engine(&input.init.shapes);
            let ours = if chosen == Engine::Fused { fused } else { batched };
            let mark = |e: Engine, t: f64| format!("{}{}", human(t), if e == chosen { "*" } else { " " });
            let multiply_adds = work(&input) as f64 / members as f64;
            let gflops = 2.0 * multiply_adds / ours / 1e9;
            let of_peak = peak.map_or("-".to_string(), |p| format!("{:.0}%", 100.0 * gflops / p));
            let ratio = refs[0].map_or("-".to_string(), |jax| format!("{:.2}", jax / ours));
            println!(
                "{:<16} {:<40} {:>5} {:>11} {:>11} {:>10} {:>10} {:>10} {:>10} {:>7.2} {:>5} {:>7}",
                fig.id(),
                job.name,
                members,
                mark(Engine::Fused, fused),
                mark(Engine::Batched, batched),
                human(baseline),
                fmt(refs[0]),
                fmt(refs[1]),
                fmt(refs[2]),
                gflops,
                of_peak,
                ratio
            );
            if let Some(jax) = refs[0] {
                against_jax.push(jax / ours);
                if ours > jax {
                    missed.push(format!(
                        "{}: slower than JAX jit+vmap+scan ({} vs {})",
                        fig.id(),
                        human(ours),
                        human(jax)
                    ));
                }
            }
            // Dense: the digits nets (the old threshold of the batched engine's gemm).
            if let Some(p) = peak.filter(|_| multiply_adds > 500_000.0) {
                if gflops < 0.4 * p {
                    missed.push(format!(
                        "{}: {:.1} GFLOP/s on a dense workload, {:.0}% of the FMA peak (target 40%)",
                        fig.id(),
                        gflops,
                        100.0 * gflops / p
                    ));
                }
            }
            if let Some(torch) = refs[2] {
                if ours >= torch {
                    missed.push(format!("{}: not faster than PyTorch ({} vs {})", fig.id(), human(ours), human(torch)));
                }
            }
        }
    }
    if !against_jax.is_empty() {
        against_jax.sort_by(f64::total_cmp);
        let mid = against_jax.len() / 2;
        // With an even count, the mean of the two in the middle.
        let median = if against_jax.len().is_multiple_of(2) {
            (against_jax[mid - 1] + against_jax[mid]) / 2.0
        } else {
            against_jax[mid]
        };
        if median < 1.5 {
            missed.push(format!("the median workload is {median:.2}x JAX's speed (target: at least 1.5x faster)"));
        }
    }
    if against_jax.is_empty() {
        println!("the JAX targets were not checked: JAX did not run (--no-python, or not installed)");
    }
    if missed.is_empty() {
        println!("targets met (of those checked): no workload slower than JAX or PyTorch, the median at least 1.5x faster than JAX, dense workloads at 40% of the FMA peak");
    } else {
        println!("targets missed:");
        for m in missed {
            println!("  {m}");
        }
    }
    Ok(())
}

/// Multiply-adds of one step of the whole ensemble (dense count).
/// `--scaling`: measures, prints, and draws the curves with the pipeline's renderer.
fn scaling_curves(args: &Args) -> Result<()> {
    let machine = machine();
    println!("{machine}");
    let python = (!args.no_python).then_some(args.python.as_str());
    let measured = scaling::measure(python, args.repeats, args.seconds)?;
    let fig = scaling::figure(&measured, &machine)?;
    let render: learning_dynamics::spec::RenderSpec =
        serde_json::from_value(serde_json::json!({"width": 1500, "height": 560}))?;
    let svg = learning_dynamics::render::svg(&fig, &render)?;
    std::fs::write(&args.scaling_out, svg).with_context(|| format!("writing {}", args.scaling_out.display()))?;
    let json = args.scaling_out.with_extension("json");
    let data = serde_json::json!({ "figure": fig, "measurements": measured });
    std::fs::write(&json, serde_json::to_string_pretty(&data)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    println!("wrote {} and {}", args.scaling_out.display(), json.display());
    Ok(())
}

/// The CPU's model name, its cores and the kernels' path, in words.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "an unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu}, {cores} cores, the kernels on the {} path", engine::fused::path().name())
}

fn work(input: &TrainInput) -> usize {
    let n = input.data.points;
    input.data.members * input.init.shapes.iter().map(|(o, i)| 3 * n * o * i).sum::<usize>()
}

fn human(seconds: f64) -> String {
    if seconds < 1e-6 {
        format!("{:.1} ns", seconds * 1e9)
    } else if seconds < 1e-3 {
        format!("{:.2} us", seconds * 1e6)
    } else {
        format!("{:.2} ms", seconds * 1e3)
    }
}

fn median(repeats: usize, mut f: impl FnMut() -> Result<f64>) -> Result<f64> {
    let mut v = (0..repeats.max(1)).map(|_| f()).collect::<Result<Vec<f64>>>()?;
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

/// Seconds for `steps` steps of the whole ensemble (logging only at the ends).
fn time_engine(engine: Engine, input: &TrainInput, steps: u64) -> Result<f64> {
    let cfg = TrainConfig {
        log_steps: vec![0, steps],
        record_weights: RecordWeights::Never,
        probe: None,
        ..input.cfg.clone()
    };
    let start = Instant::now();
    let log = engine::train_with(engine, &input.init, &input.data, &cfg)?;
    std::hint::black_box(&log);
    Ok(start.elapsed().as_secs_f64())
}

/// The baseline: the same gradient-descent step written as plain nested
/// loops over (out, in)-major weights, one member after another, with
/// nothing else in the way (no logging, no tensors, no dispatch). A
/// baseline, not a floor: the compiler vectorizes what it can, nothing more.
fn time_plain_loop(input: &TrainInput, steps: u64) -> f64 {
    let TrainInput { init, data, cfg } = input;
    let mut w = init.clone();
    let start = Instant::now();
    for e in 0..data.members {
        plain_loop_member(&mut w, data, e, cfg.loss, cfg.learning_rate as f32, steps);
    }
    std::hint::black_box(&w);
    start.elapsed().as_secs_f64()
}

fn plain_loop_member(w: &mut EnsembleWeights, data: &EnsembleData, e: usize, loss: Loss, lr: f32, steps: u64) {
    let (n, d) = (data.points, data.dim);
    let x = &data.x[e * n * d..(e + 1) * n * d];
    let y = &data.y[e * n..(e + 1) * n];
    let shapes = w.shapes.clone();
    let depth = shapes.len();
    let mut layers: Vec<Vec<f32>> = (0..depth).map(|l| w.member_layer(e, l).to_vec()).collect();
    let mut acts: Vec<Vec<f32>> =
        std::iter::once(x.to_vec()).chain(shapes[..depth - 1].iter().map(|(o, _)| vec![0.0; n * o])).collect();
    let mut out = vec![0.0f32; n];
    let widest = shapes.iter().map(|s| s.0.max(s.1)).max().unwrap();
    let (mut delta, mut below) = (vec![0.0f32; n * widest], vec![0.0f32; n * widest]);
    for _ in 0..steps {
        for l in 0..depth {
            let (o, i) = shapes[l];
            for p in 0..n {
                for k in 0..o {
                    let mut pre = 0.0f32;
                    for j in 0..i {
                        pre += acts[l][p * i + j] * layers[l][k * i + j];
                    }
                    if l + 1 < depth {
                        acts[l + 1][p * o + k] = pre.max(0.0);
                    } else {
                        out[p] = pre;
                    }
                }
            }
        }
        for p in 0..n {
            let m = out[p] * y[p];
            let push = match loss {
                Loss::CrossEntropy => 1.0 / (1.0 + m.exp()),
                Loss::Hinge => f32::from(m < 1.0),
            };
            delta[p] = -push * y[p] / n as f32;
        }
        for l in (0..depth).rev() {
            let (o, i) = shapes[l];
            if l > 0 {
                for p in 0..n {
                    for j in 0..i {
                        let mut s = 0.0f32;
                        for k in 0..o {
                            s += delta[p * o + k] * layers[l][k * i + j];
                        }
                        below[p * i + j] = if acts[l][p * i + j] > 0.0 { s } else { 0.0 };
                    }
                }
            }
            for k in 0..o {
                for j in 0..i {
                    let mut g = 0.0f32;
                    for p in 0..n {
                        g += delta[p * o + k] * acts[l][p * i + j];
                    }
                    layers[l][k * i + j] -= lr * g;
                }
            }
            if l > 0 {
                std::mem::swap(&mut delta, &mut below);
            }
        }
    }
    for (l, layer) in layers.into_iter().enumerate() {
        let (o, i) = shapes[l];
        w.layers[l][e * o * i..(e + 1) * o * i].copy_from_slice(&layer);
    }
}

/// Runs bench/jax_reference.py and bench/torch_reference.py on the workload
/// (written as JSON); None for a reference that is not installed.
fn python_refs(python: &str, input: &TrainInput, steps: u64, repeats: usize) -> Result<[Option<f64>; 3]> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("workload.json");
    let workload = serde_json::json!({
        "shapes": input.init.shapes, "layers": input.init.layers, "members": input.data.members,
        "points": input.data.points, "dim": input.data.dim, "x": input.data.x, "y": input.data.y,
        "loss": input.cfg.loss, "learning_rate": input.cfg.learning_rate, "steps": steps, "repeats": repeats,
    });
    std::fs::write(&path, serde_json::to_vec(&workload)?)?;
    let mut out = [None, None, None];
    for (script, slots) in [("bench/jax_reference.py", &[0usize, 1][..]), ("bench/torch_reference.py", &[2][..])] {
        let result = Command::new(python)
            .arg(script)
            .arg(&path)
            .output()
            .with_context(|| format!("running {python} {script}"))?;
        let text = String::from_utf8_lossy(&result.stdout);
        if !result.status.success() {
            let err = String::from_utf8_lossy(&result.stderr);
            eprintln!("  {script}: skipped ({})", err.lines().last().unwrap_or("failed"));
            continue;
        }
        // One line per variant: "<name> <seconds per network-step>".
        for (line, &slot) in text.lines().zip(slots) {
            out[slot] = line.split_whitespace().nth(1).and_then(|v| v.parse().ok());
        }
    }
    Ok(out)
}

/// This core's f32 FMA peak in GFLOP/s on `path`, and the lanes per
/// register it used, measured: 10 independent chains of fused multiply-adds
/// as wide as the path's registers (enough chains to cover the FMA latency
/// on current x86 cores), best of 5 runs of about 20 ms.
fn fma_peak_gflops(path: VectorPath) -> Option<(f64, usize)> {
    #[cfg(target_arch = "x86_64")]
    {
        const ITERATIONS: usize = 2_000_000;
        let lanes = match path {
            VectorPath::Portable => return None,
            VectorPath::Avx2Fma => 8,
            VectorPath::Avx512 => 16,
        };
        let best = (0..5)
            .map(|_| {
                let start = Instant::now();
                // SAFETY: the CPU has the path's instructions (`VectorPath` is at most `widest_path`).
                let sink = unsafe {
                    if lanes == 16 {
                        fma_chains_512(ITERATIONS)
                    } else {
                        fma_chains(ITERATIONS)
                    }
                };
                std::hint::black_box(sink);
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        Some(((ITERATIONS * 10 * lanes * 2) as f64 / best / 1e9, lanes))
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains(iterations: usize) -> f32 {
    use std::arch::x86_64::*;
    let a = _mm256_set1_ps(0.999_999);
    let b = _mm256_set1_ps(1e-7);
    let mut acc = [_mm256_set1_ps(1.0); 10];
    for _ in 0..iterations {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    let mut out = [0.0f32; 8];
    let sum = acc.iter().fold(_mm256_setzero_ps(), |s, v| _mm256_add_ps(s, *v));
    _mm256_storeu_ps(out.as_mut_ptr(), sum);
    out.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains_512(iterations: usize) -> f32 {
    use std::arch::x86_64::*;
    let a = _mm512_set1_ps(0.999_999);
    let b = _mm512_set1_ps(1e-7);
    let mut acc = [_mm512_set1_ps(1.0); 10];
    for _ in 0..iterations {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |s, v| _mm512_add_ps(s, *v)))
}
