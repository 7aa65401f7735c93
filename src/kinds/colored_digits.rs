//! Colored digits: the Colored MNIST recipe (Arjovsky et al. 2019, as the
//! spectral-decoupling paper, Pezeshki et al. 2020, arXiv:2011.09468, runs
//! it) on the 8x8 UCI digits, where the follow-up reports its cure at work:
//! plain training 23.7% test accuracy, with the penalty 68.4%.
//!
//! Two digits; every label (training and test) flipped with probability
//! `label_noise`, so the digit's shape predicts the label in 1 - noise of
//! the images. A colour that agrees with the (noisy) label in a share
//! `train_colour_agreement` of the training images, more than the shape
//! does, and in `test_colour_agreement` of the test images (flipped). The
//! colour is a channel: an image is its 64 pixels in the red half of a
//! 128-long input, or in the green half. A bias-free ReLU MLP with two hidden
//! layers (the recipe's three layers), cross-entropy, full-batch gradient
//! descent (the recipe uses Adam). Runs, each from the same init per seed:
//! plain; with the penalty (lambda / 2) f(x)^2 per point switched on at step
//! `penalty_from` (the recipe's warm-up), for each lambda; and the control,
//! a net that never sees the colour (each image at 1/sqrt 2 in both halves:
//! the same norm, no colour). The measure is the accuracy on the test images
//! with the colour flipped, against their (noisy) labels: a net that reads
//! the shape alone scores up to 1 - noise, one that reads the colour alone
//! scores `test_colour_agreement`.
//!
//! There is no exact theory: the follow-up's argument (the linearized net's
//! modes decouple under the penalty) does not give the accuracy of a net
//! trained on this data.
//!
//! The penalty's units: the follow-up's code adds c * mean(f^2) to the mean
//! loss, which is lambda = 2c here; its c = 2e-5 is for logits of another
//! scale (a wide MLP on 28x28 images trained by Adam), so the lambdas here
//! are this figure's own, chosen before its first run (paper.toml).

use std::ops::Range;

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::digits;
use super::{job_config, Job, JobId, Kind};
use crate::datasets::PIXELS;
use crate::engine::{EnsembleData, EnsembleWeights, RecordWeights, TrainConfig, TrainInput, TrainLog};
use crate::figure::{palette, FigureBody, Panel, Series, Source};
use crate::rng::{self, random_layers};
use crate::values::{Count, Fraction, Loss, Outputs, Positive};

/// This kind's source files: its own, then the digits kind's (its data loading).
pub const FILES: &[&str] = &[file!(), digits::FILES[0]];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColoredDigits {
    /// The data file and its SHA-256, as for the digits figure.
    pub data: std::path::PathBuf,
    pub data_sha256: String,
    /// The two digits: the first is labelled +1, the second -1.
    pub classes: [u8; 2],
    pub test_fraction: Fraction,
    pub split_seed: u64,
    /// The probability that a label (training or test) is flipped.
    pub label_noise: Fraction,
    /// The share of training images whose colour agrees with their label.
    pub train_colour_agreement: Fraction,
    /// The same on the test images (the colour flipped: small).
    pub test_colour_agreement: Fraction,
    /// lambda > 0, increasing; the plain runs (lambda = 0) are added.
    pub penalties: Vec<Positive>,
    /// The step from which the penalty is on (the recipe's warm-up); 0: from the start.
    pub penalty_from: u64,
    /// The widths of the two hidden layers.
    pub hidden_widths: [Count; 2],
    /// Weights ~ normal(0, init_scale^2 / fan_in).
    pub init_scale: Positive,
    pub learning_rate: Positive,
    pub steps: Count,
    pub log_points: Count,
    pub seed_count: Count,
}

/// One trained ensemble (a member per seed).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Run {
    /// lambda = 0 is the plain run.
    Coloured { penalty: f64 },
    /// The control: no colour to see.
    Grayscale,
}

impl Run {
    fn name(self) -> String {
        match self {
            Run::Coloured { penalty: 0.0 } => "plain (no penalty)".into(),
            Run::Coloured { penalty } => format!("penalty lambda = {penalty}"),
            Run::Grayscale => "control: no colour (grayscale)".into(),
        }
    }

    fn is_penalized(self) -> bool {
        matches!(self, Run::Coloured { penalty } if penalty > 0.0)
    }

    fn final_scalar(self) -> String {
        format!("{}: flipped-colour test accuracy at the end", self.name())
    }

    fn gain_samples(self) -> String {
        format!("{} minus plain: flipped-colour test accuracy, per seed", self.name())
    }
}

const CONTROL_GAIN: &str = "control (grayscale) minus plain: flipped-colour test accuracy, per seed";
/// The counterfactual of every difference: the arm against itself, each seed against the next.
const NULL_PLAIN: &str = "plain minus another seed's plain: flipped-colour test accuracy, per seed";
const NULL_CONTROL: &str = "control minus another seed's control: flipped-colour test accuracy, per seed";
const AT_THE_END: &str = "flipped-colour test accuracy at the end";
const SHAPE_CEILING: &str = "1 - label noise: the most the shape alone can score";
const COLOUR_FLOOR: &str = "test colour agreement: what the colour alone scores";
const CONTROL_LEVEL: &str = "control (grayscale) at the end";

/// Colours of the runs, in order (the control last, black).
const COLORS: [&str; 4] = [palette::VERMILLION, palette::BLUE, palette::GREEN, palette::PURPLE];

impl ColoredDigits {
    fn runs(&self) -> Vec<Run> {
        let mut runs = vec![Run::Coloured { penalty: 0.0 }];
        runs.extend(self.penalties.iter().map(|p| Run::Coloured { penalty: p.get() }));
        runs.push(Run::Grayscale);
        runs
    }

    /// The runs drawn over time: the plain one, the control and the largest
    /// lambda (from the step the penalty is on). Nearer lambdas lie on top of
    /// one another there; every run is at the end, against lambda.
    fn drawn_over_time(&self, run: Run) -> bool {
        match run {
            Run::Coloured { penalty } => penalty == 0.0 || self.penalties.last().is_some_and(|p| p.get() == penalty),
            Run::Grayscale => true,
        }
    }

    fn run(&self, id: JobId) -> Result<Run> {
        self.runs().get(id.0).copied().with_context(|| format!("colored digits has no job {id:?}"))
    }

    /// Seed `seed`'s images of `indices`: (input of 128, noisy label), the
    /// colour agreeing with the label in a share `agreement` (none when grayscale).
    fn images(
        &self,
        images: &digits::Images,
        indices: &[usize],
        purpose: &str,
        seed: u64,
        agreement: f64,
        grayscale: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut noise = rng::stream(&format!("colored_digits/{purpose}/label-noise"), seed);
        let mut colour = rng::stream(&format!("colored_digits/{purpose}/colour"), seed);
        let (mut x, mut y) = (Vec::with_capacity(indices.len() * 2 * PIXELS), Vec::with_capacity(indices.len()));
        for &i in indices {
            // Both draws for every image, whatever the run: every run sees the same labels.
            let flip = rng::uniform(&mut noise, 0.0, 1.0) < self.label_noise.get();
            let agrees = rng::uniform(&mut colour, 0.0, 1.0) < agreement;
            let label = if flip { -images.y[i] } else { images.y[i] };
            let red = (label > 0.0) == agrees;
            let pixels = &images.x[i];
            if grayscale {
                let half = std::f32::consts::FRAC_1_SQRT_2;
                x.extend(pixels.iter().map(|p| p * half));
                x.extend(pixels.iter().map(|p| p * half));
            } else if red {
                x.extend(pixels);
                x.extend([0.0; PIXELS]);
            } else {
                x.extend([0.0; PIXELS]);
                x.extend(pixels);
            }
            y.push(label);
        }
        (x, y)
    }

    fn training_input(&self, run: Run, seeds: &[u64]) -> Result<TrainInput> {
        let images = digits::load(&self.data, &self.data_sha256, self.classes)?;
        let (train_idx, test_idx) = digits::split(images.y.len(), self.test_fraction.get(), self.split_seed);
        let members = seeds.len();
        let [h1, h2] = self.hidden_widths.map(Count::usize);
        let shapes = vec![(h1, 2 * PIXELS), (h2, h1), (1, h2)];
        let grayscale = run == Run::Grayscale;
        let (mut x, mut y, mut test_x, mut test_y) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut layers = vec![Vec::new(); shapes.len()];
        for &seed in seeds {
            let (tx, ty) =
                self.images(&images, &train_idx, "train", seed, self.train_colour_agreement.get(), grayscale);
            x.extend(tx);
            y.extend(ty);
            let (px, py) = self.images(&images, &test_idx, "test", seed, self.test_colour_agreement.get(), grayscale);
            test_x.extend(px);
            test_y.extend(py);
            // The same init in every run: the arms are paired per seed.
            for (l, w) in
                random_layers("colored_digits/init", seed, &shapes, self.init_scale.get()).into_iter().enumerate()
            {
                layers[l].extend(w);
            }
        }
        let probe = EnsembleData { members, points: test_idx.len(), dim: 2 * PIXELS, x: test_x, y: test_y };
        let mut cfg = TrainConfig {
            probe: Some(probe),
            ..TrainConfig::logged(Loss::CrossEntropy, self.learning_rate.get(), self.steps.get(), self.log_points.get())
        };
        if let Run::Coloured { penalty } = run {
            cfg.output_penalty = penalty;
        }
        Ok(TrainInput {
            init: EnsembleWeights { members, shapes, layers },
            data: EnsembleData { members, points: train_idx.len(), dim: 2 * PIXELS, x, y },
            cfg,
        })
    }
}

/// Trains `input` with its penalty off until step `from`, then on: two calls
/// of the engine, the second from the first's last weights, logged as one.
fn train_with_warm_up(input: &TrainInput, from: u64) -> Result<TrainLog> {
    let all = &input.cfg.log_steps;
    let mut warm = input.cfg.clone();
    warm.output_penalty = 0.0;
    warm.record_weights = RecordWeights::Last;
    warm.log_steps = all.iter().copied().filter(|&s| s < from).chain([from]).collect();
    let first = crate::engine::train(&input.init, &input.data, &warm)?;
    let (_, at_from) = first.weights.last().context("the warm-up recorded no weights")?.clone();
    let mut rest = input.cfg.clone();
    rest.log_steps = [0].into_iter().chain(all.iter().filter(|&&s| s > from).map(|s| s - from)).collect();
    let second = crate::engine::train(&at_from, &input.data, &rest)?;
    // The second log's step 0 is the first's last: kept once, and only if it was asked for.
    let keep_from = all.contains(&from);
    let cut = if keep_from { first.log_steps.len() } else { first.log_steps.len() - 1 };
    // Rows of the first log up to the cut, then the second's after its step 0
    // (a log without probe points has no probe rows at all).
    let joined = |a: &[Vec<f32>], b: &[Vec<f32>]| -> Vec<Vec<f32>> {
        a[..cut.min(a.len())].iter().chain(b.iter().skip(1)).cloned().collect()
    };
    let mut log = TrainLog {
        learning_rate: first.learning_rate,
        log_steps: first.log_steps[..cut]
            .iter()
            .copied()
            .chain(second.log_steps[1..].iter().map(|s| s + from))
            .collect(),
        margins: joined(&first.margins, &second.margins),
        probe_margins: joined(&first.probe_margins, &second.probe_margins),
        weight_norms: joined(&first.weight_norms, &second.weight_norms),
        weights: Vec::new(),
        diverged_at: first.diverged_at.clone(),
        samples: Vec::new(),
    };
    for (d, later) in log.diverged_at.iter_mut().zip(&second.diverged_at) {
        *d = d.or(later.map(|s| s + from));
    }
    ensure!(log.log_steps == *all, "the two phases logged other steps than asked (a bug in the warm-up)");
    Ok(log)
}

impl Kind for ColoredDigits {
    fn seeds(&self) -> Vec<u64> {
        (0..self.seed_count.get()).collect()
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.classes[0] == self.classes[1] || self.classes.iter().any(|&c| c > 9) {
            p.push(format!("classes: expected two different digits 0..9, got {:?}", self.classes));
        }
        if self.penalties.is_empty() || !self.penalties.windows(2).all(|w| w[0].get() < w[1].get()) {
            p.push("penalties: expected at least one lambda, increasing".into());
        }
        if self.penalties.len() + 1 > COLORS.len() {
            p.push(format!("penalties: expected at most {} lambdas, one colour each", COLORS.len() - 1));
        }
        if self.penalty_from >= self.steps.get() {
            p.push("penalty_from: expected a step before the last".into());
        }
        if !(0.0 < self.test_fraction.get() && self.test_fraction.get() < 1.0) {
            p.push("test_fraction: expected a value strictly between 0 and 1".into());
        }
        if self.seed_count.get() < 2 {
            p.push("seed_count: expected at least 2 (the claims decide on intervals over seeds)".into());
        }
        p
    }

    fn outputs(&self) -> Outputs {
        let runs = self.runs();
        let mut series: Vec<String> = runs.iter().filter(|r| self.drawn_over_time(**r)).map(|r| r.name()).collect();
        series.extend([AT_THE_END, SHAPE_CEILING, COLOUR_FLOOR, CONTROL_LEVEL].map(String::from));
        let mut samples: Vec<String> = runs
            .iter()
            .filter(|r| matches!(r, Run::Coloured { penalty } if *penalty > 0.0))
            .map(|r| r.gain_samples())
            .collect();
        samples.extend([CONTROL_GAIN, NULL_PLAIN, NULL_CONTROL].map(String::from));
        Outputs { series, scalars: runs.iter().map(|r| r.final_scalar()).collect(), samples }
    }

    fn jobs(&self) -> Vec<Job> {
        let seeds = self.seeds();
        Job::numbered(self.runs().into_iter().map(|run| {
            let (penalty, grayscale) = match run {
                Run::Coloured { penalty } => (penalty, false),
                Run::Grayscale => (0.0, true),
            };
            Job {
                id: JobId(0),
                name: run.name(),
                // The path is where the file is, the hash what it is; a run needs its own lambda only.
                config: job_config(
                    self,
                    &[
                        ("data", json!(null)),
                        ("penalties", json!(null)),
                        ("penalty", json!(penalty)),
                        ("grayscale", json!(grayscale)),
                    ],
                ),
                seeds: seeds.clone(),
                member_seeds: seeds.clone(),
            }
        }))
    }

    fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        self.training_input(self.run(job.id)?, &job.seeds)
    }

    fn train(&self, job: &Job, members: Range<usize>) -> Result<TrainLog> {
        ensure!(members.end <= job.members(), "networks {members:?} of a job of {}", job.members());
        // Prepared whole and cut, so that a shard's members are drawn exactly as in the whole job.
        let input = self.prepare_job(job)?.select(members);
        match self.run(job.id)? {
            Run::Coloured { penalty } if penalty > 0.0 && self.penalty_from > 0 => {
                train_with_warm_up(&input, self.penalty_from)
            }
            _ => crate::engine::train(&input.init, &input.data, &input.cfg),
        }
    }

    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        let runs = self.runs();
        ensure!(logs.len() == runs.len(), "colored digits expects {} job logs, got {}", runs.len(), logs.len());
        let seeds = self.seeds().len();
        let mut body = FigureBody {
            panels: vec![
                Panel::over_log_time("test images, colour flipped, during training", "test accuracy (noisy labels)"),
                Panel::new(
                    "test images, colour flipped, end of training",
                    "penalty lambda",
                    "test accuracy (noisy labels)",
                ),
            ],
            ..Default::default()
        };
        let mut ends: Vec<Vec<f64>> = Vec::new();
        for (j, (run, log)) in runs.iter().zip(logs).enumerate() {
            let color = if *run == Run::Grayscale { palette::BLACK } else { COLORS[j % COLORS.len()] };
            let (line, finals) = digits::accuracy_over_time(run.name(), color, log, seeds)?;
            body.scalars.insert(run.final_scalar(), line.y[line.y.len() - 1]);
            if self.drawn_over_time(*run) {
                // A penalized run is the plain run until the penalty is on: drawn from then.
                let before = log.log_steps.iter().filter(|&&s| s < self.penalty_from).count();
                let skipped = log.log_steps.len() - line.x.len();
                let warm_up = if run.is_penalized() { before.saturating_sub(skipped) } else { 0 };
                body.series.push(line.skipping(warm_up));
            }
            ends.push(finals);
        }
        let (plain, control) = (&ends[0], &ends[runs.len() - 1]);
        let minus = |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(a, b)| a - b).collect() };
        for (run, end) in runs.iter().zip(&ends).skip(1).take(self.penalties.len()) {
            body.samples.insert(run.gain_samples(), minus(end, plain));
        }
        body.samples.insert(CONTROL_GAIN.into(), minus(control, plain));
        body.samples.insert(NULL_PLAIN.into(), minus(plain, &crate::stats::next_seed(plain)));
        body.samples.insert(NULL_CONTROL.into(), minus(control, &crate::stats::next_seed(control)));
        // Right: the end against lambda (0 is the plain run), the control as a level.
        let lambdas: Vec<f64> = [0.0].into_iter().chain(self.penalties.iter().map(|p| p.get())).collect();
        let per_seed: Vec<Vec<f64>> =
            (0..seeds).map(|k| ends[..lambdas.len()].iter().map(|end| end[k]).collect()).collect();
        body.series.push(
            Series::mean_over_seeds(AT_THE_END, 1, palette::ORANGE, lambdas.clone(), &per_seed)
                .legend_label("plain (at 0) and penalized, at the end, against lambda"),
        );
        let span = vec![lambdas[0], lambdas[lambdas.len() - 1]];
        let control_mean = control.iter().sum::<f64>() / control.len() as f64;
        body.series.push(
            Series::line(CONTROL_LEVEL, 1, Source::Measured, palette::BLACK, span.clone(), vec![control_mean; 2])
                .legend_label(Run::Grayscale.name())
                .in_legend(false),
        );
        let ceiling = 1.0 - self.label_noise.get();
        let floor = self.test_colour_agreement.get();
        body.series.push(Series::line(SHAPE_CEILING, 1, Source::Theory, palette::GREY, span.clone(), vec![ceiling; 2]));
        body.series.push(
            Series::line(COLOUR_FLOOR, 1, Source::Theory, palette::SKY_BLUE, span, vec![floor; 2])
                .legend_label(COLOUR_FLOOR),
        );
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TrainInput;

    /// A small random training: 2 members, 12 points in R^6, a 6-4-3-1 net.
    fn input(penalty: f64) -> TrainInput {
        let shapes = vec![(4, 6), (3, 4), (1, 3)];
        let layers = (0..2u64).map(|seed| random_layers("test/warm-up", seed, &shapes, 1.0)).fold(
            vec![Vec::new(); 3],
            |mut all, member| {
                for (l, w) in member.into_iter().enumerate() {
                    all[l].extend(w);
                }
                all
            },
        );
        let mut r = rng::stream("test/warm-up-data", 0);
        let x: Vec<f32> = (0..2 * 12 * 6).map(|_| rng::normal(&mut r) as f32).collect();
        let y: Vec<f32> = (0..2 * 12).map(|_| rng::sign(&mut r) as f32).collect();
        let mut cfg = TrainConfig::logged(Loss::CrossEntropy, 0.1, 200, 15);
        cfg.output_penalty = penalty;
        TrainInput {
            init: EnsembleWeights { members: 2, shapes, layers },
            data: EnsembleData { members: 2, points: 12, dim: 6, x, y },
            cfg,
        }
    }

    #[test]
    fn a_warm_up_without_penalty_is_the_plain_run_bit_for_bit() {
        // Gradient descent's state is its weights: resumed from them, the run goes on as if never stopped,
        // whether the switch falls on a logged step or between two.
        let plain = crate::engine::train(&input(0.0).init, &input(0.0).data, &input(0.0).cfg).unwrap();
        for from in [37, plain.log_steps[5]] {
            let resumed = train_with_warm_up(&input(0.0), from).unwrap();
            assert_eq!(resumed.log_steps, plain.log_steps);
            assert_eq!(resumed.margins, plain.margins, "switch at step {from}");
            assert_eq!(resumed.weight_norms, plain.weight_norms);
        }
    }

    #[test]
    fn the_penalty_acts_only_from_its_step() {
        let plain = crate::engine::train(&input(0.0).init, &input(0.0).data, &input(0.0).cfg).unwrap();
        let from = 50;
        let warmed = train_with_warm_up(&input(0.5), from).unwrap();
        for (k, &step) in plain.log_steps.iter().enumerate() {
            if step <= from {
                assert_eq!(warmed.margins[k], plain.margins[k], "step {step}, before the penalty");
            } else {
                assert_ne!(warmed.margins[k], plain.margins[k], "step {step}, with the penalty");
            }
        }
    }
}
