//! The figure kinds as a set: the registry names exactly the files of
//! src/kinds/, the small test specs cover every kind, every kind produces
//! the names it declares, and the how-to's template kind (tests/example_kind/)
//! runs through the pipeline's steps like a registered one.

mod common;
mod example_kind;

use std::collections::BTreeSet;
use std::path::Path;

use learning_dynamics::claims;
use learning_dynamics::engine;
use learning_dynamics::kinds::{self, Kind};
use learning_dynamics::pipeline;
use learning_dynamics::spec::{ClaimSpec, Paper};

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
}
