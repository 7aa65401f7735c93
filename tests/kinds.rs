//! The figure kinds as a set: the registry names exactly the files of
//! src/kinds/, the small test specs cover every kind, every kind produces
//! the names it declares, and the how-to's template kind (tests/example_kind/)
//! runs through the pipeline's steps like a registered one.

mod common;
mod example_kind;

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Result;
use learning_dynamics::claims;
use learning_dynamics::engine::{self, TrainInput, TrainLog};
use learning_dynamics::figure::{palette, FigureBody, Panel, Series, Source, Style};
use learning_dynamics::kinds::{self, Job, Kind};
use learning_dynamics::pipeline;
use learning_dynamics::spec::{ClaimSpec, Paper};
use learning_dynamics::values::Outputs;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The kind of each figure of a spec, by its registry name.
fn kinds_of(paper: &Paper) -> BTreeSet<String> {
    paper.figures.iter().map(|f| f.experiment.name().to_string()).collect()
}

fn registered() -> BTreeSet<String> {
    kinds::NAMES.iter().map(|k| k.to_string()).collect()
}

#[test]
fn a_kind_is_one_file_and_one_registry_line() {
    let files: BTreeSet<String> = std::fs::read_dir(root().join("src/kinds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "mod.rs")
        .map(|name| {
            name.strip_suffix(".rs").unwrap_or_else(|| panic!("src/kinds/{name} is not a .rs file")).to_string()
        })
        .collect();
    assert_eq!(files, registered(), "each src/kinds/<kind>.rs is named in `registry!`, and only those");
    for kind in kinds::NAMES {
        let own = format!("src/kinds/{kind}.rs");
        assert_eq!(kinds::files(kind)[0], own, "{kind}'s FILES lists its own file first");
    }
    // The how-to names the steps as they are.
    let how_to = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    for step in ["## How to add a figure kind", "tests/example_kind/mod.rs", "registry! {", "src/kinds/mod.rs"] {
        assert!(how_to.contains(step), "ARCHITECTURE.md's how-to does not mention {step:?}");
    }
}

/// serde names each kind's table after its config type (snake_case), the
/// registry after its module: they must be the same word.
#[test]
fn each_kind_is_read_from_the_table_named_after_its_module() {
    for paper in [common::small_paper(), common::small_kinds_paper()] {
        for fig in &paper.figures {
            let value = serde_json::to_value(&fig.experiment).unwrap();
            let tables: Vec<&String> = value.as_object().unwrap().keys().collect();
            assert_eq!(tables, [fig.experiment.name()], "{}", fig.id());
        }
    }
}

#[test]
fn the_small_specs_cover_every_kind() {
    let covered: BTreeSet<String> =
        kinds_of(&common::small_paper()).union(&kinds_of(&common::small_kinds_paper())).cloned().collect();
    assert_eq!(
        covered,
        registered(),
        "tests/data/small*.toml need a figure of every kind (its snapshot, its divergence test)"
    );
}

#[test]
fn every_kind_produces_the_series_and_exactly_the_scalars_it_declares() {
    for paper in [common::small_paper(), common::small_kinds_paper()] {
        let dir = tempfile::tempdir().unwrap();
        let run = common::run(&paper, dir.path(), 2);
        for (fig, (data, _)) in paper.figures.iter().zip(&run.figures) {
            let declared = fig.experiment.kind().outputs();
            let produced: BTreeSet<&str> = data.body.series.iter().map(|s| s.name.as_str()).collect();
            for name in &declared.series {
                assert!(
                    produced.contains(name.as_str()),
                    "{}: declares series {name:?} but does not produce it",
                    data.id
                );
            }
            let scalars: BTreeSet<&str> = data.body.scalars.keys().map(String::as_str).collect();
            let declared_scalars: BTreeSet<&str> = declared.scalars.iter().map(String::as_str).collect();
            assert_eq!(declared_scalars, scalars, "{}: the scalars declared and produced differ", data.id);
        }
    }
}

fn claim(text: &str) -> ClaimSpec {
    toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The template kind, as ARCHITECTURE.md tells to write one, through the
/// pipeline's own steps: config from TOML, jobs, engine, figure body (with
/// the pipeline's divergence, finiteness and naming checks), and a claim
/// with its negative control.
#[test]
fn the_how_to_template_runs_through_the_pipeline() {
    let kind: example_kind::OnePoint =
        toml::from_str("norms = [0.5, 1.0, 2.0]\nlearning_rate = 0.01\nsteps = 2000\nlog_points = 30").unwrap();
    assert!(kind.problems().is_empty());
    assert_eq!(example_kind::FILES, ["tests/example_kind/mod.rs"]);
    let jobs = kinds::numbered_jobs(&kind);
    assert_eq!(jobs.iter().map(|j| j.id.0).collect::<Vec<_>>(), [0, 1, 2]);
    let logs: Vec<_> = jobs
        .iter()
        .map(|job| {
            let input = kind.prepare_job(job).unwrap();
            engine::train(&input.init, &input.data, &input.cfg).unwrap()
        })
        .collect();
    let body = pipeline::figure_body(&kind, &jobs.iter().collect::<Vec<_>>(), &logs).unwrap();
    let declared = kind.outputs();
    for name in &declared.series {
        assert!(body.series(name).is_some(), "declares {name:?} but does not produce it");
    }
    // Gradient descent at this rate tracks its flow to about 1e-3.
    let gap = body.scalars["largest gap to theory"];
    assert!(gap > 0.0 && gap < 0.01, "gap {gap}");
    let results = claims::evaluate(
        &[claim(
            "name = \"descent tracks its flow\"\nclass = \"consistency\"\n\
             check.at_most = { scalar = \"largest gap to theory\", max = 0.01 }\n\
             control.offset = { scalar = \"largest gap to theory\", by = 1.0 }",
        )],
        &body,
    );
    assert!(results[0].passed, "{:?}", results[0]);
    assert!(!results[0].control.passed && !results[0].control_failed(), "the control flips the claim");

    // The negative control of the legend rule, through the pipeline's own
    // step: the same kind with every measured curve drawn blue is refused.
    let blue = AllBlue(kind);
    let refused = pipeline::figure_body(&blue, &jobs.iter().collect::<Vec<_>>(), &logs).unwrap_err();
    let message = refused.to_string();
    assert!(message.contains("both drawn as solid line in #0072b2"), "{message}");
    assert!(message.contains("one colour and mark must mean one thing"), "{message}");
}

/// The template kind with every measured series recoloured blue: three norms
/// in one colour, a figure whose legend cannot tell them apart.
struct AllBlue(example_kind::OnePoint);

impl Kind for AllBlue {
    fn seeds(&self) -> Vec<u64> {
        self.0.seeds()
    }
    fn problems(&self) -> Vec<String> {
        self.0.problems()
    }
    fn outputs(&self) -> Outputs {
        self.0.outputs()
    }
    fn jobs(&self) -> Vec<Job> {
        self.0.jobs()
    }
    fn prepare_job(&self, job: &Job) -> Result<TrainInput> {
        self.0.prepare_job(job)
    }
    fn assemble(&self, logs: &[TrainLog]) -> Result<FigureBody> {
        let mut body = self.0.assemble(logs)?;
        for s in body.series.iter_mut().filter(|s| s.source == Source::Measured) {
            s.color = palette::BLUE.into();
        }
        Ok(body)
    }
}

/// Every figure of the small specs keeps the legend rule: one colour and mark,
/// one meaning, and every drawn series in the legend. (The pipeline refuses
/// a figure that breaks it; this names the rule as what is tested.)
#[test]
fn every_small_figure_has_one_meaning_per_colour_and_a_legend_for_every_series() {
    for paper in [common::small_paper(), common::small_kinds_paper()] {
        let dir = tempfile::tempdir().unwrap();
        let run = common::run(&paper, dir.path(), 2);
        assert_eq!(run.figures.len(), paper.figures.len());
        for (data, _) in &run.figures {
            assert_eq!(data.body.legend_problem(), None, "{}", data.id);
        }
    }
}

fn body(series: Vec<Series>) -> FigureBody {
    FigureBody { panels: vec![Panel::new("a", "x", "y"), Panel::new("b", "x", "y")], series, ..Default::default() }
}

fn line(name: &str, panel: usize, color: &str) -> Series {
    Series::line(name, panel, Source::Measured, color, vec![1.0, 2.0], vec![0.0, 1.0])
}

/// The rule on hand-built figures: what it refuses (the review's own
/// findings), with a message naming the series, and what it accepts.
#[test]
fn the_legend_rule_refuses_one_colour_for_two_things_and_series_missing_from_the_legend() {
    // One blue for "p = 0.05" and "linear CE, starved", both in the legend.
    let two_things = body(vec![line("p = 0.05", 0, palette::BLUE), line("linear CE, starved", 1, palette::BLUE)]);
    let why = two_things.legend_problem().expect("one colour for two things is refused");
    assert!(why.contains("\"p = 0.05\" and \"linear CE, starved\"") && why.contains("#0072b2"), "{why}");
    // The same colour in another case of the hex string is the same colour.
    let case = body(vec![line("a", 0, "#0072b2"), line("b", 1, "#0072B2")]);
    assert!(case.legend_problem().is_some());
    // A series hidden from the legend that no entry describes: the middle
    // panel of input-norm as it was.
    let hidden =
        body(vec![line("depth 1", 0, palette::BLUE), line("other init, depth 1", 1, palette::ORANGE).in_legend(false)]);
    let why = hidden.legend_problem().expect("a series missing from the legend is refused");
    assert!(why.contains("\"other init, depth 1\"") && why.contains("no legend entry"), "{why}");
    // An entry with no text says nothing.
    let blank = body(vec![line("a", 0, palette::BLUE).legend_label(" ")]);
    assert!(blank.legend_problem().is_some());

    // Accepted: one thing in two panels under one label, shown once...
    let shared = body(vec![
        line("K = 2: error", 0, palette::BLUE).legend_label("K = 2"),
        line("K = 2: mean margin", 1, palette::BLUE).legend_label("K = 2").in_legend(false),
    ]);
    assert_eq!(shared.legend_problem(), None);
    // ... but hidden everywhere, it has no entry.
    let unshown = body(vec![line("K = 2: error", 0, palette::BLUE).in_legend(false)]);
    assert!(unshown.legend_problem().is_some());
    // Black dashed theory lines are one thing when they share their label.
    let theory = |name: &str| Series::theory(name, 0, vec![1.0, 2.0], vec![0.0, 1.0]);
    let theories = body(vec![theory("ODE, p = 0.05").legend_label("ODE"), theory("ODE, p = 0.1").legend_label("ODE")]);
    assert_eq!(theories.legend_problem(), None);
    let unlabelled = body(vec![theory("ODE, p = 0.05"), theory("ODE, p = 0.1")]);
    assert!(unlabelled.legend_problem().is_some(), "two names and no shared label are two things");
    // One colour with another mark is another look: measured points beside
    // their own dashed theory line, or the same line's colour as markers.
    let marks = body(vec![
        line("control", 0, palette::BLACK),
        line("control at the end", 1, palette::BLACK).styled(Style::Points),
        Series::line("control (theory)", 0, Source::Theory, palette::BLACK, vec![1.0], vec![1.0]),
    ]);
    assert_eq!(marks.legend_problem(), None);
    // A series with no points draws nothing and needs no entry.
    let empty = body(vec![
        line("a", 0, palette::BLUE),
        Series::points("grid: undecided", 0, palette::BLUE, Vec::new(), Vec::new()).in_legend(false),
    ]);
    assert_eq!(empty.legend_problem(), None);
}
