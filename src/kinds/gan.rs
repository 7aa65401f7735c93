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
//! The networks are trained by the engine (`engine::gan`): both networks
//! and Adam in fused multiply-adds with one fixed order of every sum, lanes
//! across seeds, on every vector path with the same bits. A GAN's training
//! amplifies the low bits of every step, so its arithmetic must be defined
//! to the last bit (Candle's matmul picks its SIMD path from the CPU; libm's
//! `exp` differs between C libraries): the engine uses its own polynomial
//! `exp` and only correctly rounded operations. This file holds the setup,
//! the jobs and the figure.

use std::ops::Range;

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{job_config, Job, JobId, Kind};
use crate::engine::gan::GanConfig;
use crate::engine::{TrainInput, TrainLog};
use crate::figure::{palette, FigureBody, Panel, Series};
use crate::stats::mean_min_max;
use crate::values::{Count, Loss, Outputs, Positive};

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

// Per member and logged step, the engine's measures in this order (a row of the log's `margins`).
use crate::engine::gan::{COVERED, MEASURES, ON_MODE, SIGNAL};

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
        let runs = crate::engine::gan::train(&self.engine_config(loss), seeds, &log_steps);
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

impl Gan {
    fn compares_losses(&self) -> bool {
        self.losses.contains(&Loss::CrossEntropy) && self.losses.contains(&Loss::Hinge)
    }

    fn centre(&self, k: usize) -> (f32, f32) {
        let angle = 2.0 * std::f64::consts::PI * k as f64 / self.ring.modes.get() as f64;
        let r = self.ring.radius.get();
        ((r * angle.cos()) as f32, (r * angle.sin()) as f32)
    }

    /// What the engine's GAN training needs, for the discriminator's `loss`.
    fn engine_config(&self, loss: Loss) -> GanConfig {
        GanConfig {
            noise_dim: self.noise_dim.usize(),
            width: self.width.usize(),
            batch: self.batch.usize(),
            eval_samples: self.eval_samples.usize(),
            centres: (0..self.ring.modes.usize()).map(|k| self.centre(k)).collect(),
            std: self.ring.std.get(),
            learning_rate: self.learning_rate.get() as f32,
            loss,
            non_saturating: self.generator_loss.with(loss) == GeneratorLoss::NonSaturating,
        }
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
    /// and however the seeds are split into shards, and a repeated loss is refused.
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
        let split = TrainLog::concat(vec![gan.train(&jobs[1], 0..1).unwrap(), gan.train(&jobs[1], 1..3).unwrap()]);
        assert_eq!(once, split.unwrap());
        let repeated = Gan { losses: vec![Loss::Hinge, Loss::CrossEntropy, Loss::Hinge], ..small() };
        assert_eq!(repeated.problems().len(), 1);
    }
}
