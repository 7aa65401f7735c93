//! The figure kinds: one file per kind, each a config type that implements
//! [`Kind`], and the registry below that names them. ARCHITECTURE.md ("How to
//! add a figure kind") walks through adding one.

use std::ops::Range;

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

use crate::engine::{TrainInput, TrainLog};
use crate::figure::FigureBody;
use crate::values::Outputs;

/// What a figure kind provides: the trainings it needs, how to prepare one
/// for the engine, and how to build its figure (measurement and theory) from
/// their logs. Implemented by the kind's config, the `[figure.experiment.<kind>]`
/// table of paper.toml. (Its source files are its module's `FILES`, see
/// `files`: a constant, not a trait item, so that `&dyn Kind` stays possible.)
pub trait Kind: Sync {
    /// Every seed the figure uses (for citation).
    fn seeds(&self) -> Vec<u64>;

    /// Problems that involve several values at once (each value alone was
    /// checked while parsing), in words; empty when the config is sound.
    fn problems(&self) -> Vec<String>;

    /// The series and scalars the figure will have, known from the config
    /// alone, so that claims and captions naming others fail before any run.
    fn outputs(&self) -> Outputs;

    /// The trainings, each a cacheable unit; `Job::id` is its position here
    /// (`numbered_jobs` sets it).
    fn jobs(&self) -> Vec<Job>;

    /// What the engine needs to run one job: init, data and schedule.
    fn prepare_job(&self, job: &Job) -> Result<TrainInput>;

    /// Runs networks `members` of one job (a shard of it; `0..job.members()`
    /// is the whole job) and returns their log: the same bits as those
    /// members' rows of the whole job's log (tests/shards.rs), as every
    /// network trains on its own. Every kind but one trains an ensemble of
    /// classifiers: the engine runs those members of what `prepare_job`
    /// prepared. A kind whose training is another loop (the GAN's two
    /// networks) runs it here instead.
    fn train(&self, job: &Job, members: Range<usize>) -> Result<TrainLog> {
        let input = self.prepare_job(job)?;
        // `member_seeds` names the seed of each network: a kind that gets its length wrong would mislabel divergences.
        ensure!(
            input.init.members == job.members(),
            "the kind prepared {} networks for job {:?}, which lists {} member seeds (a bug in the kind)",
            input.init.members,
            job.name,
            job.members()
        );
        ensure!(members.end <= job.members(), "networks {members:?} of a job of {}", job.members());
        // Prepared whole and cut, so that a shard's members are drawn exactly as in the whole job.
        let shard = input.select(members);
        crate::engine::train(&shard.init, &shard.data, &shard.cfg)
    }

    /// The figure from its jobs' logs, given in the order of `jobs()`.
    /// Divergences are the pipeline's to record, from `Job::member_seeds`.
    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody>;
}

/// Which job of its figure a job is: its position in the kind's `jobs()`.
/// Kinds find a job's model or run by this, never by its display name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub usize);

/// One training of an ensemble: the unit of caching and of parallelism.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: JobId,
    /// Shown in progress and reports, unique within the figure, e.g.
    /// "grid" or "depth 2, aligned". A label, not an input.
    pub name: String,
    /// Everything the job's result depends on besides seeds and code.
    pub config: serde_json::Value,
    /// The seeds the job draws from (in its cache key).
    pub seeds: Vec<u64>,
    /// Per network trained side by side: the seed it was drawn with (for the
    /// figure's record of diverged trainings); its length is the job's size.
    pub member_seeds: Vec<u64>,
}

impl Job {
    /// `jobs()` in order, with each job's id set to its position.
    pub fn numbered(jobs: impl IntoIterator<Item = Job>) -> Vec<Job> {
        jobs.into_iter().enumerate().map(|(i, job)| Job { id: JobId(i), ..job }).collect()
    }

    /// Networks trained side by side.
    pub fn members(&self) -> usize {
        self.member_seeds.len()
    }
}

/// A kind's jobs with each id set to its position: how the pipeline (and
/// anything else that prepares jobs) takes them, so that a kind that forgets
/// `Job::numbered` cannot train job 0 under every job's key.
pub fn numbered_jobs(kind: &dyn Kind) -> Vec<Job> {
    Job::numbered(kind.jobs())
}

/// Declares the kinds: one line `module: ConfigType` per kind, where
/// `src/kinds/<module>.rs` defines `ConfigType: Kind` and `<module>` is the
/// table name in `[figure.experiment.<module>]`: serde names the variant
/// `ConfigType` in snake_case, so the two must agree (tests/kinds.rs checks).
macro_rules! registry {
    ($($kind:ident: $config:ident,)*) => {
        $(pub mod $kind;)*

        /// The experiment of a figure: `[figure.experiment.<kind>]` in paper.toml.
        /// (A variant's snake_case name is its module's: `registry!` lines pair them.)
        #[derive(Debug, Clone, Deserialize, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ExperimentSpec {
            $($config($kind::$config),)*
        }

        impl ExperimentSpec {
            /// The kind's name, as in `[figure.experiment.<name>]`.
            pub fn name(&self) -> &'static str {
                match self {
                    $(ExperimentSpec::$config(_) => stringify!($kind),)*
                }
            }

            /// The source files of this kind's jobs: see `files`.
            pub fn files(&self) -> &'static [&'static str] {
                match self {
                    $(ExperimentSpec::$config(_) => $kind::FILES,)*
                }
            }

            /// The kind's config, behind the trait every kind implements.
            pub fn kind(&self) -> &dyn Kind {
                match self {
                    $(ExperimentSpec::$config(config) => config,)*
                }
            }
        }

        /// The registered kinds' names, in registry order.
        pub const NAMES: &[&str] = &[$(stringify!($kind)),*];

        /// The source files of a kind's jobs, by the kind's name: its module's
        /// `FILES`, which lists its own file (`file!()`) first, then those of
        /// the kinds it trains through. A job's cache key covers these and
        /// every shared file (see `provenance`); tests/fingerprint.rs fails if
        /// a kind's file uses another kind's module without listing it.
        pub fn files(kind: &str) -> &'static [&'static str] {
            match kind {
                $(stringify!($kind) => $kind::FILES,)*
                _ => panic!("no figure kind is named {kind:?}"),
            }
        }
    };
}

registry! {
    phase_diagram: PhaseDiagram,
    sigmoid: Sigmoid,
    chain: Chain,
    modes: Modes,
    losses: Losses,
    frequency: Frequency,
    starvation: Starvation,
    digits: Digits,
    shortcut_strength: ShortcutStrength,
    spectral_decoupling: SpectralDecoupling,
    discriminator: Discriminator,
    multiclass: Multiclass,
    gan: Gan,
    colored_digits: ColoredDigits,
    two_moons: TwoMoons,
}

/// A job's config: the experiment's config as JSON with some fields replaced.
pub fn job_config<T: Serialize>(config: &T, replace: &[(&str, serde_json::Value)]) -> serde_json::Value {
    let mut value = serde_json::to_value(config).expect("configs serialize");
    if let serde_json::Value::Object(map) = &mut value {
        for (k, v) in replace {
            map.insert((*k).to_string(), v.clone());
        }
    }
    value
}
