//! Gradient starvation on real images: the 8x8 UCI handwritten digits (the
//! copy scikit-learn ships, committed under data/), two classes, and a
//! label-encoding shortcut (a few corner pixels switched on, different for
//! each class) in a fraction q of the training images. The net is tested on
//! clean held-out images: what it learned of the digits themselves. q = 0 is
//! the control. There is no exact theory for this figure.

use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{job_config, Job, JobId, Kind};
use crate::datasets::{self, PIXELS};
use crate::engine::{EnsembleData, EnsembleWeights, TrainConfig, TrainInput, TrainLog};
use crate::figure::{palette, FigureBody, Panel, Series};
use crate::rng;
use crate::rng::random_layers;
use crate::values::{Count, Fraction, Outputs, Positive};

/// This kind's source files (see `kinds::files`).
pub const FILES: &[&str] = &[file!()];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Digits {
    /// The data file, relative to the directory the pipeline runs in (the
    /// repository root): gzip CSV, 64 pixels in 0..16 then the digit.
    pub data: PathBuf,
    /// The file's SHA-256: part of every cache key, and checked on load.
    pub data_sha256: String,
    /// The two digits: the first is labelled +1, the second -1.
    pub classes: [u8; 2],
    pub test_fraction: Fraction,
    pub split_seed: u64,
    /// q: the fractions of training images that carry the shortcut.
    pub shortcut_fractions: Vec<Fraction>,
    /// Value (pixels scaled to 0..1) of the shortcut pixels.
    pub shortcut_value: Positive,
    pub hidden_width: Count,
    /// Weights ~ normal(0, init_scale^2 / fan_in).
    pub init_scale: Positive,
    pub learning_rate: Positive,
    pub steps: Count,
    pub log_points: Count,
    pub seed_count: Count,
}

/// The shortcut: top-left corner pixels for the first class, top-right for
/// the second (pixels that are blank in almost every image).
const SHORTCUT: [[usize; 2]; 2] = [[0, 1], [6, 7]];

fn q_name(q: f64) -> String {
    if q == 0.0 {
        "q = 0 (control)".into()
    } else {
        format!("q = {q}")
    }
}
fn final_scalar(q: f64) -> String {
    format!("{}: clean test accuracy at the end", q_name(q))
}
/// The first shortcut fraction is 0 and they increase (checked in `problems`).
const DROP_SCALAR: &str = "clean test accuracy, control minus largest q";
/// Per seed (every q shares the seed's init, so the runs are paired).
const DROP_SAMPLES: &str = "clean test accuracy, control minus largest q, per seed";
/// The counterfactual: the control arm in place of the shortcut one (seed k's
/// control minus seed k+1's), where no shortcut can act.
const NULL_DROP_SAMPLES: &str = "clean test accuracy, control minus another seed's control, per seed";
/// The trend across q: each seed's least-squares slope of its final clean
/// accuracy on q (a trend test, not strict monotonicity, which one test
/// image of noise breaks).
const TREND_SAMPLES: &str = "slope of the clean test accuracy on q, per seed";
/// The same slope with the q values permuted: a pairing that carries no trend.
const NULL_TREND_SAMPLES: &str =
    "slope of the clean test accuracy on q permuted (a pairing that carries no trend), per seed";

/// The images of the two classes: pixels scaled to 0..1 and labels +-1.
pub(crate) struct Images {
    pub x: Vec<[f32; PIXELS]>,
    pub y: Vec<f32>,
}

/// The images of digits `classes` in the data file (checked against its
/// SHA-256): the first class labelled +1, the second -1.
pub(crate) fn load(data: &std::path::Path, sha256: &str, classes: [u8; 2]) -> Result<Images> {
    let all = datasets::uci_digits(data, sha256)?;
    let mut images = Images { x: Vec::new(), y: Vec::new() };
    for (x, digit) in all.x.iter().zip(&all.digit) {
        if let Some(class) = classes.iter().position(|c| c == digit) {
            images.x.push(*x);
            images.y.push(if class == 0 { 1.0 } else { -1.0 });
        }
    }
    ensure!(!images.y.is_empty(), "{}: no image of the digits {:?}", data.display(), classes);
    Ok(images)
}

/// The rules on a digits data selection, shared by the kinds that read the digits.
pub(crate) fn data_problems(classes: [u8; 2], test_fraction: f64, data_sha256: &str) -> Vec<String> {
    let mut p = Vec::new();
    if classes[0] == classes[1] || classes.iter().any(|&c| c > 9) {
        p.push(format!("classes: expected two different digits 0..9, got {classes:?}"));
    }
    if !(0.0 < test_fraction && test_fraction < 1.0) {
        p.push("test_fraction: expected a value strictly between 0 and 1".into());
    }
    if data_sha256.len() != 64 || !data_sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        p.push("data_sha256: expected 64 hexadecimal digits".into());
    }
    p
}

/// Indices of the training and test images among `count`: a seeded shuffle, then split.
pub(crate) fn split(count: usize, test_fraction: f64, split_seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut r = rng::stream("digits/split", split_seed);
    let mut order: Vec<usize> = (0..count).collect();
    order.shuffle(&mut r);
    let test = (test_fraction * count as f64).round() as usize;
    let train = order.split_off(test);
    (train, order)
}

impl Digits {
    fn load(&self) -> Result<Images> {
        load(&self.data, &self.data_sha256, self.classes)
    }

    fn split(&self, count: usize) -> (Vec<usize>, Vec<usize>) {
        split(count, self.test_fraction.get(), self.split_seed)
    }
}

impl Kind for Digits {
    fn seeds(&self) -> Vec<u64> {
        (0..self.seed_count.get()).collect()
    }

    fn problems(&self) -> Vec<String> {
        let mut p = data_problems(self.classes, self.test_fraction.get(), &self.data_sha256);
        if self.shortcut_fractions.first().is_none_or(|q| q.get() != 0.0) {
            p.push("shortcut_fractions: expected 0 (the control) first".into());
        }
        if !self.shortcut_fractions.windows(2).all(|w| w[0].get() < w[1].get()) {
            p.push("shortcut_fractions: expected increasing values".into());
        }
        // One colour per run (the legend rule refuses a colour that means two things).
        if self.shortcut_fractions.len() > COLORS.len() {
            p.push(format!("shortcut_fractions: expected at most {} values, one colour each", COLORS.len()));
        }
        p
    }

    fn outputs(&self) -> Outputs {
        let mut out = Outputs::default();
        for q in &self.shortcut_fractions {
            out.series.push(q_name(q.get()));
            out.scalars.push(final_scalar(q.get()));
        }
        out.series.push("clean test accuracy at the end".into());
        out.scalars.push(DROP_SCALAR.into());
        out.samples = [DROP_SAMPLES, NULL_DROP_SAMPLES, TREND_SAMPLES, NULL_TREND_SAMPLES].map(String::from).to_vec();
        out
    }

    fn jobs(&self) -> Vec<Job> {
        let seeds = self.seeds();
        Job::numbered(self.shortcut_fractions.iter().map(|q| Job {
            id: JobId(0),
            name: q_name(q.get()),
            // The path is where the file is, the hash what it is.
            config: job_config(self, &[("data", json!(null)), ("shortcut_fractions", json!(null)), ("q", json!(q))]),
            seeds: seeds.clone(),
            member_seeds: seeds.clone(),
        }))
    }

    fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        let q = self.shortcut_fractions.get(job.id.0).with_context(|| format!("digits has no job {:?}", job.id))?.get();
        self.training_input(q, self.shortcut_value.get(), true, &job.seeds)
    }

    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        ensure!(
            logs.len() == self.shortcut_fractions.len(),
            "digits expects {} job logs, got {}",
            self.shortcut_fractions.len(),
            logs.len()
        );
        let seeds = self.seeds();
        let mut body = FigureBody {
            panels: accuracy_panels("fraction q of training images with the shortcut"),
            ..Default::default()
        };
        // Per seed, the final accuracy at each q: the right panel, averaged like the curves.
        let mut finals_per_seed = vec![Vec::new(); seeds.len()];
        let last = self.shortcut_fractions.len() - 1;
        for (j, (q, log)) in self.shortcut_fractions.iter().zip(logs).enumerate() {
            let q = q.get();
            let (line, finals) = accuracy_over_time(q_name(q), COLORS[j % COLORS.len()], log, seeds.len())?;
            let line = line.keep_band_if(band_shown(j, last));
            for (per_seed, end) in finals_per_seed.iter_mut().zip(finals) {
                per_seed.push(end);
            }
            body.scalars.insert(final_scalar(q), line.y[line.y.len() - 1]);
            body.series.push(line);
        }
        let qs: Vec<f64> = self.shortcut_fractions.iter().map(|q| q.get()).collect();
        let drops: Vec<f64> = finals_per_seed.iter().map(|f| f[0] - f[last]).collect();
        let controls: Vec<f64> = finals_per_seed.iter().map(|f| f[0]).collect();
        let next_control = crate::stats::next_seed(&controls);
        body.samples.insert(DROP_SAMPLES.into(), drops);
        body.samples.insert(
            NULL_DROP_SAMPLES.into(),
            finals_per_seed.iter().zip(&next_control).map(|(f, c)| f[0] - c).collect(),
        );
        body.samples
            .insert(TREND_SAMPLES.into(), finals_per_seed.iter().map(|f| crate::stats::slope(&qs, f)).collect());
        body.samples.insert(
            NULL_TREND_SAMPLES.into(),
            (finals_per_seed.iter().enumerate())
                .map(|(k, f)| crate::stats::slope(&crate::rng::permuted("digits/permuted-q", k as u64, &qs), f))
                .collect(),
        );
        let finals = Series::mean_over_seeds(END_OF_TRAINING, 1, END_OF_TRAINING_COLOR, qs, &finals_per_seed);
        body.scalars.insert(DROP_SCALAR.into(), finals.y[0] - finals.y[finals.y.len() - 1]);
        body.series.push(finals);
        Ok(body)
    }
}

/// The two panels of a figure of clean test accuracy: over time, and at the
/// end against `x_label` (what the runs vary).
pub(crate) fn accuracy_panels(x_label: &str) -> Vec<Panel> {
    vec![
        Panel::over_log_time("clean held-out images, during training", "clean test accuracy"),
        Panel::new("clean held-out images, end of training", x_label, "clean test accuracy"),
    ]
}

/// One run's clean test accuracy over time in the left panel (mean and
/// min-max band over seeds, from the first logged time after t = 0), and
/// each seed's at the end.
pub(crate) fn accuracy_over_time(
    name: String,
    color: &str,
    log: &TrainLog,
    seeds: usize,
) -> Result<(Series, Vec<f64>)> {
    let times = log.times();
    let skip = crate::stats::leading_zero_times(&times);
    let curves = clean_accuracy(log, seeds).with_context(|| name.clone())?;
    let finals = curves.iter().map(|c| c[c.len() - 1]).collect();
    Ok((Series::mean_over_seeds(name, 0, color, times, &curves).skipping(skip), finals))
}

/// Colours of the runs, in order. Purple is left for the right panel's
/// curve, which is another quantity (a seventh run would repeat black, and
/// the figure's legend check would refuse it).
pub(crate) const COLORS: [&str; 6] =
    [palette::BLACK, palette::SKY_BLUE, palette::BLUE, palette::GREEN, palette::ORANGE, palette::VERMILLION];

/// The right panel's curve: the final clean accuracy against what the runs vary.
pub(crate) const END_OF_TRAINING: &str = "clean test accuracy at the end";
pub(crate) const END_OF_TRAINING_COLOR: &str = palette::PURPLE;

/// Whether run `j` of `0..=last` keeps its band over seeds in the left panel:
/// only the control (first) and the last run's, the two extremes. Every
/// band drawn, translucent over the others, blends into one block of colour.
pub(crate) fn band_shown(j: usize, last: usize) -> bool {
    j == 0 || j == last
}

/// Per seed (member), the fraction of clean test images classified right at
/// each logged step.
pub(crate) fn clean_accuracy(log: &TrainLog, seeds: usize) -> Result<Vec<Vec<f64>>> {
    let tests = log.probe_margins.first().map_or(0, Vec::len) / seeds.max(1);
    ensure!(tests > 0, "no test margins logged");
    Ok((0..seeds)
        .map(|k| {
            log.probe_margins
                .iter()
                .map(|m| m[k * tests..(k + 1) * tests].iter().filter(|&&v| v > 0.0).count() as f64 / tests as f64)
                .collect()
        })
        .collect())
}

impl Digits {
    /// One ensemble, a member per seed: the shortcut at `value` in a fraction
    /// `q` of the training images, the clean test images as probe points.
    /// The training set with the shortcut (value `value`) in a fraction `q` of
    /// the images. `informative`: the shortcut's corner encodes the label; off,
    /// each marked image gets one corner or the other by a coin of its own (the
    /// same pixels at the same value, independent of the label: what the input's
    /// scale alone does).
    pub(crate) fn training_input(&self, q: f64, value: f64, informative: bool, seeds: &[u64]) -> Result<TrainInput> {
        let images = self.load()?;
        let (train_idx, test_idx) = self.split(images.y.len());
        let members = seeds.len();
        let (n, h) = (train_idx.len(), self.hidden_width.usize());
        let with_shortcut = (q * n as f64).round() as usize;
        let mut x = Vec::with_capacity(members * n * PIXELS);
        let mut y = Vec::with_capacity(members * n);
        let mut layers = vec![Vec::new(), Vec::new()];
        let shapes = vec![(h, PIXELS), (1, h)];
        for &seed in seeds {
            // Which images carry the shortcut: the first q n of a per-seed
            // order, so a larger q adds images to a smaller q's set.
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng::stream("digits/shortcut", seed));
            let mut marked = vec![false; n];
            for &i in &order[..with_shortcut] {
                marked[i] = true;
            }
            let mut coin = rng::stream("digits/shortcut-uninformative", seed);
            for (j, &i) in train_idx.iter().enumerate() {
                let mut pixels = images.x[i];
                if marked[j] {
                    let class = if informative {
                        usize::from(images.y[i] < 0.0)
                    } else {
                        usize::from(rng::sign(&mut coin) < 0.0)
                    };
                    for p in SHORTCUT[class] {
                        pixels[p] = value as f32;
                    }
                }
                x.extend(pixels);
                y.push(images.y[i]);
            }
            // The same init for every q: the comparison across q is paired.
            for (l, w) in random_layers("digits/init", seed, &shapes, self.init_scale.get()).into_iter().enumerate() {
                layers[l].extend(w);
            }
        }
        let probe = EnsembleData {
            members,
            points: test_idx.len(),
            dim: PIXELS,
            x: (0..members).flat_map(|_| test_idx.iter().flat_map(|&i| images.x[i])).collect(),
            y: (0..members).flat_map(|_| test_idx.iter().map(|&i| images.y[i])).collect(),
        };
        let cfg = TrainConfig {
            probe: Some(probe),
            ..TrainConfig::logged(
                crate::values::Loss::CrossEntropy,
                self.learning_rate.get(),
                self.steps.get(),
                self.log_points.get(),
            )
        };
        Ok(TrainInput {
            init: EnsembleWeights { members, shapes, layers },
            data: EnsembleData { members, points: n, dim: PIXELS, x, y },
            cfg,
        })
    }
}
